//! Shared helpers: a peer, clients on it, a counting token source.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use relayport_core::{
    ClientEvent, Message, PresenceEvent, PresenceStream, RealtimeClient, Result, Subscription,
};
use relayport_firebase::{
    AccessToken, FirebaseConfig, FirebaseProvider, RulesAuthorizer, TokenSource,
};
use relayport_peer_firebase::{FirebasePeer, PeerConfig};
use tokio::sync::broadcast;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(20);

/// How much virtual time a paused-clock test waits for something that should happen.
pub const VIRTUAL_WAIT: Duration = Duration::from_secs(300);

pub async fn peer(config: PeerConfig) -> FirebasePeer {
    FirebasePeer::start(config).await.expect("peer starts")
}

pub fn config(peer: &FirebasePeer, client_id: &str) -> FirebaseConfig {
    FirebaseConfig::new(&peer.url())
        .expect("url")
        .with_client_id(client_id)
}

pub fn client(cfg: FirebaseConfig) -> RealtimeClient {
    RealtimeClient::builder(FirebaseProvider::new(cfg).expect("provider"))
        .authorizer(Arc::new(RulesAuthorizer))
        .jitter_seed(7)
        .build()
}

/// On tokio's paused clock, every wait for the network lets the clock jump to the next timer;
/// so tests there move time in small steps: `fut` is polled while the clock advances 10 ms at
/// a time, for at most [`VIRTUAL_WAIT`] of virtual time.
pub async fn stepped<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(fut);
    for _ in 0..VIRTUAL_WAIT.as_millis() / 10 {
        tokio::select! {
            biased;
            v = &mut fut => return v,
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    panic!("nothing happened within {VIRTUAL_WAIT:?} of virtual time")
}

/// Lets `total` of virtual time pass in 10 ms steps (network I/O keeps flowing meanwhile).
pub async fn pass(total: Duration) {
    for _ in 0..total.as_millis() / 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn next(sub: &mut Subscription) -> Message {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("a message in time")
        .expect("the subscription is open")
}

pub async fn next_presence(stream: &mut PresenceStream) -> PresenceEvent {
    stepped(stream.recv())
        .await
        .expect("the presence stream is open")
}

/// Waits for the first event matching `pick`.
pub async fn wait_event<T>(
    events: &mut broadcast::Receiver<ClientEvent>,
    mut pick: impl FnMut(&ClientEvent) -> Option<T>,
) -> T {
    stepped(async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(&e) {
                        return t;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
}

/// Hands out the given tokens in turn (the last one forever) and counts the calls.
pub struct Tokens {
    pub tokens: Vec<(String, Option<Duration>)>,
    pub calls: Arc<AtomicUsize>,
}

#[relayport_core::async_trait]
impl TokenSource for Tokens {
    async fn token(&self) -> Result<AccessToken> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let (token, ttl) = self.tokens[n.min(self.tokens.len() - 1)].clone();
        Ok(AccessToken::id_token(token, ttl))
    }
}

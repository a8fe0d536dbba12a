//! Shared helpers for the runtime tests: a client over the scripted provider, and bounded
//! waits that fail (instead of hanging) when the expected thing never happens. Every wait runs
//! on tokio's paused clock, so a ten-minute bound costs nothing when things go right.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use relayport_core::auth::hmac_sha256_hex;
use relayport_core::testing::{Script, ScriptedProvider};
use relayport_core::{
    AuthRequest, ChannelAuth, ChannelAuthorizer, ClientBuilder, ClientEvent, ConnectionState,
    Message, RealtimeClient, RealtimeError, Subscription, async_trait,
};
use serde_json::json;
use tokio::sync::broadcast;

/// The bound on every wait: far beyond any schedule under test.
pub const BOUND: Duration = Duration::from_secs(3600);

/// The subscription's next `n` messages, each within [`BOUND`].
pub async fn recv_n(sub: &mut Subscription, n: usize) -> Vec<Message> {
    let mut out = Vec::new();
    for _ in 0..n {
        let m = tokio::time::timeout(BOUND, sub.recv())
            .await
            .expect("message never came")
            .expect("stream ended");
        out.push(m);
    }
    out
}

/// A client over a fresh scripted provider, with an authorizer and a fixed jitter seed.
pub fn client(configure: impl FnOnce(ClientBuilder) -> ClientBuilder) -> (RealtimeClient, Script) {
    let (provider, script) = ScriptedProvider::new();
    let builder = RealtimeClient::builder(provider)
        .client_id("alice")
        .jitter_seed(42)
        .authorizer(Arc::new(TestAuthorizer::default()));
    (configure(builder).build(), script)
}

/// Waits until the state satisfies `pred`.
pub async fn wait_state(
    client: &RealtimeClient,
    pred: impl Fn(&ConnectionState) -> bool,
) -> ConnectionState {
    let mut rx = client.state_changes();
    let fut = async {
        loop {
            let s = rx.borrow_and_update().clone();
            if pred(&s) {
                return s;
            }
            rx.changed().await.expect("client runtime stopped");
        }
    };
    tokio::time::timeout(BOUND, fut)
        .await
        .expect("state never reached")
}

/// Waits for the first event satisfying `pred`.
pub async fn wait_event(
    rx: &mut broadcast::Receiver<ClientEvent>,
    pred: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    };
    tokio::time::timeout(BOUND, fut)
        .await
        .expect("event never came")
}

/// Waits until `pred` holds on the script (polling on the paused clock).
pub async fn wait_until(what: &str, pred: impl Fn() -> bool) {
    let fut = async {
        while !pred() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(BOUND, fut)
        .await
        .unwrap_or_else(|_| panic!("never happened: {what}"));
}

/// Lets the runtime process everything pending without moving the clock meaningfully.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Signs like the self-hosted server: HMAC-SHA256 over `socket_id:channel`, and refuses
/// channels whose name starts with `denied`. Records every request.
#[derive(Default)]
pub struct TestAuthorizer {
    pub requests: Mutex<Vec<AuthRequest>>,
}

#[async_trait]
impl ChannelAuthorizer for TestAuthorizer {
    async fn authorize(&self, request: &AuthRequest) -> Result<ChannelAuth, RealtimeError> {
        self.requests.lock().unwrap().push(request.clone());
        if request.channel.name().starts_with("denied") {
            return Err(RealtimeError::Forbidden {
                channel: request.channel.to_string(),
                reason: "not a member".into(),
            });
        }
        let sig = hmac_sha256_hex(
            b"secret",
            format!("{}:{}", request.socket_id, request.channel).as_bytes(),
        );
        Ok(ChannelAuth(json!({ "auth": sig })))
    }
}

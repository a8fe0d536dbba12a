//! relayport's Supabase provider, through the core client, against the behavioural peer:
//! the mixed scenarios of issue 15 (items 1, 3 and 4 each have one that failed before their
//! fix).
//!
//! Channel tokens come from the facade's `SupabaseAuthorizer` or from [`PeerAuthorizer`]; the
//! peer times a token's life on tokio's clock from when it arrives, so lifetimes pass on the
//! paused clock as on a real one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use relayport_core::{
    AuthRequest, ChannelAuth, ChannelAuthorizer, PresenceAction, RealtimeClient, Subscription,
};
use relayport_peer_supabase::{PeerHandle, SupabasePeer};
use relayport_supabase::{SupabaseConfig, SupabaseProvider};
use serde_json::{Value, json};

/// Long enough for any one step, including a channel rejoin after realtime-js's 1 s backoff.
const WAIT: Duration = Duration::from_secs(30);

/// Mints `authenticated` channel tokens of `ttl` with the peer's secret, `sub` = the user (or
/// `backend-user`), counting how often it was asked.
struct PeerAuthorizer {
    peer: Arc<PeerHandle>,
    ttl: Duration,
    minted: AtomicUsize,
}

#[relayport_core::async_trait]
impl ChannelAuthorizer for PeerAuthorizer {
    async fn authorize(&self, request: &AuthRequest) -> relayport_core::Result<ChannelAuth> {
        self.minted.fetch_add(1, Ordering::SeqCst);
        let user = request.user.as_ref().map(|u| u.id.clone());
        let sub = user.clone().unwrap_or_else(|| "backend-user".into());
        let token = self
            .peer
            .token("authenticated", Some(&sub), self.ttl, json!({}));
        let mut body = json!({"access_token": token});
        if let Some(user) = user {
            body["presence_key"] = json!(user);
        }
        Ok(ChannelAuth(body))
    }
}

async fn peer() -> Arc<PeerHandle> {
    Arc::new(
        SupabasePeer::builder()
            .join_error_backoff(Duration::ZERO)
            .connect_error_backoff(Duration::ZERO)
            .bind("127.0.0.1:0")
            .await
            .expect("the peer binds"),
    )
}

fn provider(peer: &PeerHandle) -> SupabaseProvider {
    SupabaseProvider::new(SupabaseConfig::new(&peer.project_url(), peer.anon_key()))
}

fn client(
    peer: &Arc<PeerHandle>,
    id: &str,
    ttl: Option<Duration>,
) -> (RealtimeClient, Option<Arc<PeerAuthorizer>>) {
    let mut b = RealtimeClient::builder(provider(peer)).client_id(id);
    let auth = ttl.map(|ttl| {
        Arc::new(PeerAuthorizer {
            peer: peer.clone(),
            ttl,
            minted: AtomicUsize::new(0),
        })
    });
    if let Some(a) = &auth {
        b = b.authorizer(a.clone());
    }
    (b.build(), auth)
}

async fn next_data(what: &str, sub: &mut Subscription) -> Value {
    match tokio::time::timeout(WAIT, sub.recv()).await {
        Ok(Some(m)) => m.data.into_json().unwrap(),
        Ok(None) => panic!("{what}: the subscription ended"),
        Err(_) => panic!("{what}: nothing within {WAIT:?}"),
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"));
}

/// One channel's `phx_error` must not cost its siblings anything: no reconnect, and a
/// broadcast on a sibling right after the error arrives; the failed channel rejoins alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_channel_leaves_its_siblings_flowing() {
    let peer = peer().await;
    let (client, _) = client(&peer, "multi", None);
    let mut alpha = client.subscribe("alpha").await.expect("alpha");
    let mut beta = client.subscribe("beta").await.expect("beta");
    let mut gamma = client.subscribe("gamma").await.expect("gamma");
    let sockets = peer.stats().connections;
    assert_eq!(peer.fail_channel("beta"), 1);
    assert!(peer.broadcast("alpha", false, "e", json!("a1")));
    assert!(peer.broadcast("gamma", false, "e", json!("g1")));
    assert_eq!(
        next_data("alpha after beta failed", &mut alpha).await,
        json!("a1")
    );
    assert_eq!(
        next_data("gamma after beta failed", &mut gamma).await,
        json!("g1")
    );
    until("beta rejoins", || peer.joined("beta", false) == 1).await;
    assert!(peer.broadcast("beta", false, "e", json!("b1")));
    assert_eq!(
        next_data("beta after its rejoin", &mut beta).await,
        json!("b1")
    );
    assert_eq!(
        peer.stats().connections,
        sockets,
        "a channel error reconnected the whole socket"
    );
    client.close().await;
}

/// The facade's configuration for this peer: the project URL, its anon and service-role keys
/// and its JWT secret (so the facade's own `SupabaseAuthorizer` signs channel tokens).
fn facade_config(peer: &PeerHandle, client_id: &str) -> relayport::ProviderConfig {
    let (url, anon, service) = (peer.project_url(), peer.anon_key(), peer.service_role_key());
    let secret = String::from_utf8_lossy(peer.secret()).into_owned();
    relayport::ProviderConfig::from_env(&relayport::config::MapEnv::from([
        ("REALTIME_PROVIDER", "supabase"),
        ("SUPABASE_URL", url.as_str()),
        ("SUPABASE_ANON_KEY", anon.as_str()),
        ("SUPABASE_SERVICE_ROLE_KEY", service.as_str()),
        ("SUPABASE_JWT_SECRET", secret.as_str()),
    ]))
    .expect("config")
    .with_client_id(client_id)
}

/// A private listener, built by the facade as an application would (its `SupabaseAuthorizer`
/// mints 10-minute tokens), keeps receiving across three token lifetimes: 2,000 s of paused
/// time, a message every 100 s, and the peer never has to close the channel for an expired
/// token (the provider refreshes it with `access_token` first).
#[tokio::test(start_paused = true)]
async fn a_private_listener_survives_three_token_lifetimes() {
    let peer = peer().await;
    let client = relayport::trusted_client_builder(&facade_config(&peer, "listener"))
        .expect("client")
        .build();
    let mut sub = client.subscribe("private:ledger").await.expect("subscribe");
    let mut events = peer.events();
    for i in 0..20 {
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(peer.broadcast("ledger", true, "tick", json!({"i": i})));
        assert_eq!(
            next_data("a tick", &mut sub).await,
            json!({"i": i}),
            "tick {i}"
        );
    }
    while let Ok(e) = events.try_recv() {
        if let relayport_peer_supabase::PeerEvent::ChannelClosed { reason, .. } = e {
            panic!("the peer closed the channel: {reason}");
        }
    }
    let refreshed = peer.stats().access_tokens;
    assert!(
        refreshed >= 3,
        "{refreshed} access_token pushes in 2,000 s of 600 s tokens"
    );
    client.close().await;
}

/// Private, presence and public channels share one socket, and each delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_presence_and_public_share_one_socket() {
    let peer = peer().await;
    let ttl = Some(Duration::from_secs(600));
    let (carol, _) = client(&peer, "carol", ttl);
    let mut vault = carol.subscribe("private:vault").await.expect("private");
    let mut news = carol.subscribe("news").await.expect("public");
    carol
        .presence_enter("presence:room", json!({"v": 1}))
        .await
        .expect("presence");
    let mut members = carol
        .presence_events("presence:room")
        .await
        .expect("events");
    assert_eq!(peer.connections(), 1, "one socket for every channel");
    assert_eq!(peer.joined("vault", true), 1);
    assert_eq!(peer.joined("news", false), 1);
    assert!(peer.broadcast("vault", true, "e", json!("secret")));
    assert!(peer.broadcast("news", false, "e", json!("headline")));
    assert_eq!(next_data("private", &mut vault).await, json!("secret"));
    assert_eq!(next_data("public", &mut news).await, json!("headline"));
    // A second user arrives; carol sees the join, the peer holds both.
    let (dave, _) = client(&peer, "dave", ttl);
    dave.presence_enter("presence:room", json!({"v": 2}))
        .await
        .expect("dave enters");
    tokio::time::timeout(WAIT, async {
        while let Some(e) = members.recv().await {
            if e.action == PresenceAction::Joined && e.member.id == "dave" {
                assert_eq!(e.member.data, json!({"v": 2}));
                return;
            }
        }
        panic!("the presence stream ended");
    })
    .await
    .expect("dave's join within the wait");
    let state = match peer.presence("room", true) {
        s if s.as_object().is_some_and(|m| !m.is_empty()) => s,
        _ => peer.presence("room", false),
    };
    let mut keys: Vec<&String> = state.as_object().expect("a map").keys().collect();
    keys.sort();
    assert_eq!(keys, ["carol", "dave"]);
    dave.close().await;
    carol.close().await;
}

/// Presence and privacy are separate (realtime-js allows presence on public channels): with a
/// policy that lets no user token into any private channel, a `presence:` channel still works,
/// as a public channel with presence on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_does_not_need_a_private_channel() {
    let peer = Arc::new(
        SupabasePeer::builder()
            .policy(relayport_peer_supabase::Policy::deny_all())
            .join_error_backoff(Duration::ZERO)
            .bind("127.0.0.1:0")
            .await
            .expect("the peer binds"),
    );
    let (erin, _) = client(&peer, "erin", Some(Duration::from_secs(600)));
    erin.presence_enter("presence:lobby", json!({"here": true}))
        .await
        .expect("presence with no private access");
    let state = peer.presence("lobby", false);
    assert_eq!(state["erin"]["metas"][0]["here"], true, "{state}");
    erin.close().await;
}

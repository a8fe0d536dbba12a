//! The provider against the behavioural RTDB peer, through the core's client runtime.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use relayport_core::{ClientEvent, ConnectionState, ErrorKind, PresenceAction, RealtimeClient};
use relayport_firebase::{FirebaseProvider, RulesAuthorizer};
use relayport_peer_firebase::PeerConfig;
use serde_json::{Value, json};

#[tokio::test]
async fn published_messages_arrive_in_order_with_server_positions() {
    let peer = peer(PeerConfig::default()).await;
    let alice = client(config(&peer, "alice"));
    let bob = client(config(&peer, "bob"));
    let mut sub = bob.subscribe("chat.room:1").await.expect("subscribed");
    for i in 0..20 {
        alice
            .publish("chat.room:1", "said", json!({"n": i}))
            .await
            .expect("published");
    }
    let mut last = None;
    for i in 0..20 {
        let m = next(&mut sub).await;
        assert_eq!(m.event, "said");
        assert_eq!(m.data, json!({"n": i}));
        assert_eq!(m.sender.as_deref(), Some("alice"));
        let ts = m.timestamp.expect("a server timestamp");
        assert!(ts.abs_diff(peer.now_ms()) < 60_000, "{ts}");
        let pos = m.position.clone().expect("a position from the push id");
        if let Some(prev) = &last {
            assert!(!pos.is_at_or_before(prev), "positions increase");
        }
        last = Some(pos);
    }
    // The documented layout: the encoded channel key, push ids, a server timestamp.
    let stored = peer.get("/realtime/chat%2Eroom:1/messages");
    let map = stored.as_object().expect("messages stored");
    assert_eq!(map.len(), 20);
    for (id, record) in map {
        assert_eq!(id.len(), 20, "a push id");
        assert!(record["ts"].is_u64(), "{record}");
    }
}

#[tokio::test]
async fn a_dropped_stream_recovers_every_missed_message_exactly_once() {
    let peer = peer(PeerConfig::default()).await;
    let alice = client(config(&peer, "alice"));
    let bob = client(config(&peer, "bob"));
    let mut events = bob.events();
    let mut sub = bob.subscribe("room").await.expect("subscribed");
    alice
        .publish("room", "m", json!(0))
        .await
        .expect("published");
    assert_eq!(next(&mut sub).await.data, json!(0));
    peer.drop_streams();
    wait_event(&mut events, |e| {
        matches!(e, ClientEvent::LinkLost { .. }).then_some(())
    })
    .await;
    for i in 1..=5 {
        alice
            .publish("room", "m", json!(i))
            .await
            .expect("published");
    }
    let recovered = wait_event(&mut events, |e| match e {
        ClientEvent::Resubscribed { recovered, .. } => Some(*recovered),
        _ => None,
    })
    .await;
    assert!(recovered, "the core replayed history");
    alice
        .publish("room", "m", json!(6))
        .await
        .expect("published");
    for i in 1..=6 {
        assert_eq!(next(&mut sub).await.data, json!(i), "in order, none lost");
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), sub.recv()).await;
    assert!(extra.is_err(), "nothing twice: {extra:?}");
}

/// One user on two devices (the same client id), both with echo off: each gets the other's
/// messages and never its own.
#[tokio::test]
async fn echo_off_tells_two_clients_with_one_client_id_apart() {
    let peer = peer(PeerConfig::default()).await;
    let quiet = |cfg| {
        RealtimeClient::builder(FirebaseProvider::new(cfg).expect("provider"))
            .authorizer(Arc::new(RulesAuthorizer))
            .echo(false)
            .build()
    };
    let phone = quiet(config(&peer, "alice"));
    let laptop = quiet(config(&peer, "alice"));
    let mut on_phone = phone.subscribe("room").await.expect("subscribed");
    let mut on_laptop = laptop.subscribe("room").await.expect("subscribed");
    phone
        .publish("room", "from-phone", json!(1))
        .await
        .expect("published");
    laptop
        .publish("room", "from-laptop", json!(2))
        .await
        .expect("published");
    phone
        .publish("room", "from-phone", json!(3))
        .await
        .expect("published");
    let on_laptop_saw = [next(&mut on_laptop).await, next(&mut on_laptop).await];
    assert_eq!(
        on_laptop_saw.map(|m| (m.event, m.sender)),
        [
            ("from-phone".to_owned(), Some("alice".to_owned())),
            ("from-phone".to_owned(), Some("alice".to_owned()))
        ]
    );
    let m = next(&mut on_phone).await;
    assert_eq!(m.event, "from-laptop");
    assert_eq!(m.data, json!(2));
    let extra = tokio::time::timeout(Duration::from_millis(300), on_phone.recv()).await;
    assert!(
        extra.is_err(),
        "the phone's own messages stay away: {extra:?}"
    );
    let extra = tokio::time::timeout(Duration::from_millis(300), on_laptop.recv()).await;
    assert!(
        extra.is_err(),
        "the laptop's own message stays away: {extra:?}"
    );
}

#[tokio::test]
async fn revoked_read_access_loses_the_subscription_with_its_reason() {
    let peer = peer(PeerConfig::default()).await;
    let bob = client(config(&peer, "bob"));
    let mut events = bob.events();
    let mut sub = bob.subscribe("room").await.expect("subscribed");
    peer.revoke_prefix("/realtime/room");
    let error = wait_event(&mut events, |e| match e {
        ClientEvent::SubscriptionFailed { error, .. } => Some(error.clone()),
        _ => None,
    })
    .await;
    assert_eq!(error.kind(), ErrorKind::Forbidden);
    assert!(error.to_string().contains("security rules"), "{error}");
    let end = tokio::time::timeout(WAIT, sub.recv()).await.expect("ends");
    assert!(end.is_none(), "the subscription ended");
}

#[tokio::test]
async fn an_expired_token_is_replaced_by_a_fresh_one() {
    let peer = peer(PeerConfig {
        auth_prefix: Some("/realtime".into()),
        ..PeerConfig::default()
    })
    .await;
    peer.add_token("first", None);
    peer.add_token("second", None);
    peer.add_token("writer", None);
    let calls = Arc::new(AtomicUsize::new(0));
    let bob = client(config(&peer, "bob").with_token_source(Tokens {
        tokens: vec![("first".into(), None), ("second".into(), None)],
        calls: calls.clone(),
    }));
    let alice = client(config(&peer, "alice").with_token("writer"));
    let mut events = bob.events();
    let mut sub = bob.subscribe("room").await.expect("subscribed");
    peer.expire_token("first");
    let lost = wait_event(&mut events, |e| match e {
        ClientEvent::LinkLost { message, .. } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert!(lost.contains("credential revoked"), "{lost}");
    wait_event(&mut events, |e| {
        matches!(e, ClientEvent::Resubscribed { .. }).then_some(())
    })
    .await;
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "the source was asked again"
    );
    alice
        .publish("room", "after", json!(1))
        .await
        .expect("published");
    assert_eq!(next(&mut sub).await.event, "after");
    assert_eq!(bob.state(), ConnectionState::Connected);
}

#[tokio::test]
async fn without_a_token_the_rules_refuse_a_protected_channel() {
    let peer = peer(PeerConfig {
        auth_prefix: Some("/realtime".into()),
        ..PeerConfig::default()
    })
    .await;
    let bob = client(config(&peer, "bob"));
    let error = bob.subscribe("room").await.expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::Forbidden, "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_token_is_refreshed_before_it_expires() {
    let peer = peer(PeerConfig {
        auth_prefix: Some("/realtime".into()),
        ..PeerConfig::default()
    })
    .await;
    peer.add_token("t1", Some(Duration::from_secs(600)));
    peer.add_token("t2", None);
    let calls = Arc::new(AtomicUsize::new(0));
    let bob = client(
        config(&peer, "bob")
            .with_refresh_margin(Duration::from_secs(300))
            .with_token_source(Tokens {
                tokens: vec![
                    ("t1".into(), Some(Duration::from_secs(600))),
                    ("t2".into(), None),
                ],
                calls: calls.clone(),
            }),
    );
    let _sub = stepped(bob.subscribe("room")).await.expect("subscribed");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Past the refresh point (600 s - 300 s), a heartbeat asks for the next token.
    pass(Duration::from_secs(340)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "refreshed before expiry");
    // A request now carries the new token: publishing works after t1's expiry.
    pass(Duration::from_secs(300)).await;
    stepped(bob.publish("room", "late", json!(1)))
        .await
        .expect("published with t2");
}

#[tokio::test(start_paused = true)]
async fn a_silent_stream_is_a_stale_link_and_reconnects() {
    let peer = peer(PeerConfig {
        keep_alive: Duration::from_secs(30),
        ..PeerConfig::default()
    })
    .await;
    let bob = client(config(&peer, "bob").with_keep_alive_timeout(Duration::from_secs(90)));
    let mut events = bob.events();
    let _sub = stepped(bob.subscribe("room")).await.expect("subscribed");
    // Keep-alives keep the link up well past the bound.
    pass(Duration::from_secs(200)).await;
    assert_eq!(bob.state(), ConnectionState::Connected);
    peer.mute(true);
    let lost = wait_event(&mut events, |e| match e {
        ClientEvent::LinkLost { message, .. } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert!(lost.contains("stale"), "{lost}");
    peer.mute(false);
    wait_event(&mut events, |e| {
        matches!(e, ClientEvent::Resubscribed { .. }).then_some(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn presence_joins_leaves_and_prunes_stale_members() {
    let peer = peer(PeerConfig::default()).await;
    let alice = client(config(&peer, "alice"));
    let bob = client(config(&peer, "bob").with_presence_stale_after(Duration::from_secs(90)));
    let mut presence = stepped(bob.presence_events("presence:room"))
        .await
        .expect("watching");
    stepped(alice.presence_enter("presence:room", json!({"name": "Alice"})))
        .await
        .expect("entered");
    let joined = next_presence(&mut presence).await;
    assert_eq!(joined.action, PresenceAction::Joined);
    assert_eq!(joined.member.id, "alice");
    assert_eq!(joined.member.data, json!({"name": "Alice"}));
    // A crashed client's record: written once, never refreshed.
    peer.put(
        "/realtime/presence:room/presence/ghost",
        json!({"id": "ghost", "data": {}, "ts": peer.now_ms()}),
    );
    let written = tokio::time::Instant::now();
    let ghost = next_presence(&mut presence).await;
    assert_eq!(
        (ghost.action, ghost.member.id.as_str()),
        (PresenceAction::Joined, "ghost")
    );
    // Alice refreshes on her heartbeat; the ghost goes stale and is pruned.
    let left = next_presence(&mut presence).await;
    assert_eq!(
        (left.action, left.member.id.as_str()),
        (PresenceAction::Left, "ghost")
    );
    let latency = written.elapsed();
    // Not before the stale age; within it plus one heartbeat (30 s) of the observer.
    assert!(
        latency >= Duration::from_secs(90) && latency <= Duration::from_secs(121),
        "{latency:?}"
    );
    // …and its record is deleted from the database by the client that pruned it.
    stepped(async {
        while peer.get("/realtime/presence:room/presence/ghost") != Value::Null {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let members = stepped(bob.presence_members("presence:room"))
        .await
        .expect("members");
    assert_eq!(
        members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["alice"]
    );
    // An explicit leave is immediate.
    stepped(alice.presence_leave("presence:room"))
        .await
        .expect("left");
    let left = next_presence(&mut presence).await;
    assert_eq!(
        (left.action, left.member.id.as_str()),
        (PresenceAction::Left, "alice")
    );
}

/// Against a real database: `FIREBASE_DATABASE_URL` and `FIREBASE_AUTH_TOKEN` (an ID token or
/// database secret allowed to read and write under `relayport-live-test`). Run with
/// `cargo test -p relayport-firebase --test loopback -- --ignored live`.
#[tokio::test]
#[ignore = "needs a real Firebase database (FIREBASE_DATABASE_URL, FIREBASE_AUTH_TOKEN)"]
async fn live_publish_and_receive() {
    let (Ok(url), Ok(token)) = (
        std::env::var("FIREBASE_DATABASE_URL"),
        std::env::var("FIREBASE_AUTH_TOKEN"),
    ) else {
        eprintln!("SKIP: FIREBASE_DATABASE_URL and FIREBASE_AUTH_TOKEN are not set");
        return;
    };
    let cfg = |id: &str| {
        relayport_firebase::FirebaseConfig::new(&url)
            .expect("url")
            .with_root("relayport-live-test")
            .expect("root")
            .with_token(token.clone())
            .with_client_id(id)
    };
    let alice = client(cfg("alice"));
    let bob = client(cfg("bob"));
    let mut sub = bob.subscribe("live").await.expect("subscribed");
    let nonce = format!("{:016x}", std::process::id());
    alice
        .publish("live", "ping", json!({"nonce": nonce}))
        .await
        .expect("published");
    let m = next(&mut sub).await;
    assert_eq!(m.data, json!({"nonce": nonce}));
    assert!(m.position.is_some() && m.timestamp.is_some());
}

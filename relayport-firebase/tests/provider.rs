//! The provider on its own (no client runtime), events read straight from its sink.

mod common;

use common::*;
use relayport_core::{Channel, PresenceChange, ProviderEvent, RealtimeProvider, SubscribeOptions};
use relayport_firebase::FirebaseProvider;
use relayport_peer_firebase::PeerConfig;
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn stream_events_reach_the_sink() {
    let peer = peer(PeerConfig::default()).await;
    let provider = FirebaseProvider::new(config(&peer, "bob")).expect("provider");
    let (sink, mut rx) = relayport_core::EventSink::channel();
    stepped(provider.connect(sink)).await.expect("connected");
    let channel = Channel::presence("room");
    stepped(provider.subscribe(&channel, &SubscribeOptions::default()))
        .await
        .expect("subscribed");
    let snapshot = stepped(rx.recv()).await.expect("open");
    assert_eq!(
        snapshot.1,
        ProviderEvent::Presence {
            channel: channel.clone(),
            change: PresenceChange::Snapshot(vec![])
        }
    );
    let other = FirebaseProvider::new(config(&peer, "alice")).expect("provider");
    let (sink2, _rx2) = relayport_core::EventSink::channel();
    stepped(other.connect(sink2)).await.expect("connected");
    stepped(other.subscribe(&channel, &SubscribeOptions::default()))
        .await
        .expect("subscribed");
    stepped(provider.presence_enter(&channel, json!({"n": 1})))
        .await
        .expect("entered");
    let joined = stepped(rx.recv()).await.expect("open");
    match joined.1 {
        ProviderEvent::Presence {
            change: PresenceChange::Joined(m),
            ..
        } => assert_eq!((m.id.as_str(), m.data), ("bob", json!({"n": 1}))),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn history_pages_through_and_keeps_only_what_follows_the_position() {
    use relayport_core::{OutboundMessage, Position, Publisher};
    use relayport_firebase::{FirebasePublisher, HISTORY_PAGE};
    let peer = peer(PeerConfig::default()).await;
    let publisher = FirebasePublisher::new(config(&peer, "backend")).expect("publisher");
    let channel = Channel::public("long");
    let total = HISTORY_PAGE + 20;
    for i in 0..total {
        publisher
            .publish(&OutboundMessage::new(channel.clone(), "n", json!(i)))
            .await
            .expect("published");
    }
    let provider = FirebaseProvider::new(config(&peer, "bob")).expect("provider");
    let all = provider
        .history(&channel, &Position::new(0))
        .await
        .expect("history");
    assert!(all.complete);
    let got: Vec<_> = all.messages.iter().map(|m| m.data.clone()).collect();
    assert_eq!(got, (0..total).map(|i| json!(i)).collect::<Vec<_>>());
    // After the 10th message: exactly the rest, in order, across the page boundary.
    let since = all.messages[9].position.clone().expect("a position");
    let rest = provider.history(&channel, &since).await.expect("history");
    assert!(rest.complete);
    let got: Vec<_> = rest.messages.iter().map(|m| m.data.clone()).collect();
    assert_eq!(got, (10..total).map(|i| json!(i)).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_malformed_record_is_reported_not_dropped_and_the_stream_goes_on() {
    let peer = peer(PeerConfig::default()).await;
    let provider = FirebaseProvider::new(config(&peer, "bob")).expect("provider");
    let (sink, mut rx) = relayport_core::EventSink::channel();
    provider.connect(sink).await.expect("connected");
    let channel = Channel::public("room");
    provider
        .subscribe(&channel, &SubscribeOptions::default())
        .await
        .expect("subscribed");
    peer.put(
        "/realtime/room/messages/-NQ5zV0xgYlQeK6pa9hA",
        json!({"data": 1}),
    );
    let (_, event) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("event")
        .expect("open");
    match event {
        ProviderEvent::Error {
            channel: Some(c),
            error,
        } => {
            assert_eq!(c, channel);
            assert_eq!(error.kind(), relayport_core::ErrorKind::Protocol);
        }
        other => panic!("{other:?}"),
    }
    peer.put(
        "/realtime/room/messages/-NQ5zV0xgYlQeK6pa9hB",
        json!({"event": "ok", "data": 2, "ts": 1}),
    );
    let (_, event) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("event")
        .expect("open");
    match event {
        ProviderEvent::Message(m) => assert_eq!(
            (m.event.as_str(), m.data.into_json().unwrap()),
            ("ok", json!(2))
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_token_never_reaches_errors_or_debug_output() {
    use relayport_core::OutboundMessage;
    // A loopback port nothing listens on: the request fails in transport.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let cfg = relayport_firebase::FirebaseConfig::new(&format!("http://127.0.0.1:{port}"))
        .expect("url")
        .with_token("very-secret-id-token");
    assert!(!format!("{cfg:?}").contains("very-secret"));
    let provider = FirebaseProvider::new(cfg).expect("provider");
    assert!(!format!("{provider:?}").contains("very-secret"));
    let error = provider
        .publish(&OutboundMessage::new(Channel::public("a"), "e", json!(1)))
        .await
        .expect_err("nothing listens");
    assert_eq!(error.kind(), relayport_core::ErrorKind::Connection);
    assert!(
        !format!("{error} {error:?}").contains("very-secret"),
        "{error:?}"
    );
}

/// Echo off: the recovery read skips this instance's own writes, not those of another client
/// with the same client id; and only such a client's records carry `origin`.
#[tokio::test]
async fn with_echo_off_history_skips_only_this_instances_own_writes() {
    use relayport_core::{OutboundMessage, Position};
    let peer = peer(PeerConfig::default()).await;
    let channel = Channel::public("shared-id");
    let phone = FirebaseProvider::new(config(&peer, "alice")).expect("provider");
    let laptop = FirebaseProvider::new(config(&peer, "alice")).expect("provider");
    phone.set_echo(false);
    for (who, n) in [(&phone, 1), (&laptop, 2), (&phone, 3)] {
        who.publish(&OutboundMessage::new(channel.clone(), "n", json!(n)))
            .await
            .expect("published");
    }
    let seen = |page: relayport_core::HistoryPage| -> Vec<serde_json::Value> {
        page.messages
            .into_iter()
            .map(|m| m.data.as_json().cloned().unwrap_or_default())
            .collect()
    };
    let phone_reads = phone.history(&channel, &Position::new(0)).await;
    assert_eq!(seen(phone_reads.expect("history")), vec![json!(2)]);
    let laptop_reads = laptop.history(&channel, &Position::new(0)).await;
    assert_eq!(
        seen(laptop_reads.expect("history")),
        vec![json!(1), json!(2), json!(3)],
        "echo on sees everything"
    );
    let stored = peer.get("/realtime/shared-id/messages");
    let origins: Vec<bool> = stored
        .as_object()
        .expect("stored")
        .values()
        .map(|r| r.get("origin").is_some_and(serde_json::Value::is_string))
        .collect();
    assert_eq!(origins, vec![true, false, true], "{stored}");
}

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

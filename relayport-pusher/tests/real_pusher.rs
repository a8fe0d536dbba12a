//! Against the real Pusher service: ignored by default (tests use loopback only). Run with
//! `PUSHER_APP_ID`, `PUSHER_KEY`, `PUSHER_SECRET` and `PUSHER_CLUSTER` set:
//! `cargo test -p relayport-pusher --test real_pusher -- --ignored`.

use std::sync::Arc;
use std::time::Duration;

use relayport_core::{OutboundMessage, Publisher, RealtimeClient};
use relayport_pusher::{Credentials, PusherAuthorizer, PusherConfig, PusherProvider, PusherRest};
use serde_json::json;

#[tokio::test]
#[ignore = "talks to the real Pusher service; needs PUSHER_* credentials"]
async fn real_pusher_round_trip() {
    let var = |k: &str| std::env::var(k).ok();
    let (Some(app), Some(key), Some(secret), Some(cluster)) = (
        var("PUSHER_APP_ID"),
        var("PUSHER_KEY"),
        var("PUSHER_SECRET"),
        var("PUSHER_CLUSTER"),
    ) else {
        eprintln!("skipping: set PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET, PUSHER_CLUSTER");
        return;
    };
    let creds = Credentials::new(app, &key, secret);
    let client =
        RealtimeClient::builder(PusherProvider::new(PusherConfig::cluster(&key, &cluster)))
            .authorizer(Arc::new(PusherAuthorizer::new(creds.clone())))
            .client_id("rust-e2e")
            .build();
    let mut sub = client.subscribe("private:rust-e2e").await.unwrap();
    let rest = PusherRest::cluster(creds, &cluster);
    let channel = "private:rust-e2e".parse().unwrap();
    rest.publish(&OutboundMessage::new(channel, "hello", json!({"n": 1})))
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(20), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.data, json!({"n": 1}));
    client.close().await;
}

//! Against real Ably: ignored by default, and skipped unless `ABLY_API_KEY` is set.
//! `ABLY_API_KEY=appId.keyId:secret cargo test -p relayport-ably --test live -- --ignored`

use std::time::Duration;

use relayport_ably::{AblyConfig, AblyRealtime, AblyRest, ApiKey, Credentials, RestConfig};
use relayport_core::{Channel, OutboundMessage, Publisher, RealtimeClient};
use serde_json::json;

#[tokio::test]
#[ignore = "needs ABLY_API_KEY and the network"]
async fn live_publish_and_receive() {
    let Ok(key) = std::env::var("ABLY_API_KEY") else {
        eprintln!("ABLY_API_KEY not set: skipped");
        return;
    };
    let key = ApiKey::parse(&key).unwrap();
    let client = RealtimeClient::builder(AblyRealtime::new(
        AblyConfig::new(Credentials::Key(key.clone())).client_id("live-test"),
    ))
    .client_id("live-test")
    .build();
    let channel = format!("realtime-rs-live-{}", fastrand::u64(..));
    let mut sub = client.subscribe(channel.as_str()).await.unwrap();
    let rest = AblyRest::new(RestConfig::with_key(key)).unwrap();
    rest.publish(&OutboundMessage::new(
        Channel::public(&channel),
        "hello",
        json!({"n": 1}),
    ))
    .await
    .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(20), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.event, "hello");
    assert_eq!(m.data, json!({"n": 1}));
    client.close().await;
}

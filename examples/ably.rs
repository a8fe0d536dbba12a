//! Ably with relayport: a `RealtimeClient` subscribes over Ably's realtime protocol, the REST
//! API (`AblyRest`, the backend's `Publisher`) publishes, the client receives.
//!
//! ```sh
//! ABLY_API_KEY=appId.keyId:secret cargo run --example ably
//! ```
//!
//! Without `ABLY_API_KEY` it says so and exits with status 2. (A client in the field would use
//! `Credentials::AuthUrl` or a token callback instead of the key: see the relayport-ably README.)

use std::time::Duration;

use relayport::ably::{AblyConfig, AblyRealtime, AblyRest, ApiKey, Credentials, RestConfig};
use relayport::{Channel, OutboundMessage, Publisher, RealtimeClient, RealtimeError};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(key) = std::env::var("ABLY_API_KEY").ok().filter(|k| !k.is_empty()) else {
        eprintln!("set ABLY_API_KEY (appId.keyId:secret) to run this example");
        std::process::exit(2);
    };
    if let Err(e) = run(&key).await {
        eprintln!("ably example: {e}");
        std::process::exit(1);
    }
}

async fn run(key: &str) -> relayport::Result<()> {
    let key = ApiKey::parse(key)?;
    let provider = AblyRealtime::new(AblyConfig::new(Credentials::Key(key.clone())));
    let rest = AblyRest::new(RestConfig::with_key(key))?;
    let client = RealtimeClient::builder(provider)
        .client_id("example")
        .build();
    let mut news = client.subscribe("relayport-example").await?;
    let message = OutboundMessage::new(
        Channel::public("relayport-example"),
        "greeting",
        json!({"text": "hello from relayport"}),
    );
    rest.publish(&message).await?;
    let wait = Duration::from_secs(10);
    match tokio::time::timeout(wait, news.recv()).await {
        Ok(Some(got)) => println!("received {} {}", got.event, got.data),
        Ok(None) => return Err(RealtimeError::Closed("subscription ended".into())),
        Err(_) => return Err(RealtimeError::timeout("the published message", wait)),
    }
    client.close().await;
    Ok(())
}

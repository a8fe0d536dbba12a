//! The self-hosted server with relayport: a `RealtimeClient` subscribes to a private channel
//! (signed by `SelfHostedAuthorizer`), the HTTP publisher (`SelfHostedPublisher`, the
//! backend's `Publisher`) publishes, the client receives.
//!
//! ```sh
//! cargo run -p relayport-selfhosted --features server --bin relayport-server -- --port 8080 --secret s3cret &
//! REALTIME_URL=http://127.0.0.1:8080 REALTIME_SECRET=s3cret cargo run --example selfhosted
//! ```
//!
//! This process holds the secret, so it signs its own subscription; a client in the field asks
//! the application's auth endpoint instead (`HttpAuthorizer`). Without `REALTIME_URL` and
//! `REALTIME_SECRET` it says so and exits with status 2. (`cargo run --example chat` runs a
//! server in-process instead.)

use std::sync::Arc;
use std::time::Duration;

use relayport::selfhosted::SelfHostedAuthorizer;
use relayport::selfhosted::client::{SelfHostedProvider, SelfHostedPublisher};
use relayport::{Channel, OutboundMessage, Publisher, RealtimeClient, RealtimeError};
use serde_json::json;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (Some(url), Some(secret)) = (var("REALTIME_URL"), var("REALTIME_SECRET")) else {
        eprintln!("set REALTIME_URL and REALTIME_SECRET to run this example");
        std::process::exit(2);
    };
    if let Err(e) = run(&url, &secret).await {
        eprintln!("selfhosted example: {e}");
        std::process::exit(1);
    }
}

async fn run(url: &str, secret: &str) -> relayport::Result<()> {
    let provider = SelfHostedProvider::new(url)?;
    let rest = SelfHostedPublisher::new(url, secret)?;
    let client = RealtimeClient::builder(provider)
        .authorizer(Arc::new(SelfHostedAuthorizer::new(secret)))
        .client_id("example")
        .build();
    let channel = Channel::parse("private:relayport-example")?;
    let mut orders = client.subscribe(channel.clone()).await?;
    let message =
        OutboundMessage::new(channel, "greeting", json!({"text": "hello from relayport"}));
    rest.publish(&message).await?;
    let wait = Duration::from_secs(10);
    match tokio::time::timeout(wait, orders.recv()).await {
        Ok(Some(got)) => println!("received {} {}", got.event, got.data),
        Ok(None) => return Err(RealtimeError::Closed("subscription ended".into())),
        Err(_) => return Err(RealtimeError::timeout("the published message", wait)),
    }
    client.close().await;
    Ok(())
}

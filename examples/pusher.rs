//! Pusher Channels with relayport: a `RealtimeClient` subscribes over the realtime protocol,
//! the HTTP API (`PusherRest`, the backend's `Publisher`) publishes, the client receives.
//!
//! ```sh
//! # Pusher itself
//! PUSHER_APP_ID=… PUSHER_KEY=… PUSHER_SECRET=… PUSHER_CLUSTER=eu cargo run --example pusher
//! # any Pusher-protocol server (sockudo, soketi, Reverb) on this machine
//! PUSHER_APP_ID=1234567 PUSHER_KEY=test-key PUSHER_SECRET=test-secret-0123456789 \
//!   PUSHER_HOST=127.0.0.1 PUSHER_PORT=6001 PUSHER_TLS=false cargo run --example pusher
//! ```
//!
//! Without those variables it says which are missing and exits with status 2.

use std::time::Duration;

use relayport::pusher::{Credentials, PusherConfig, PusherProvider, PusherRest};
use relayport::{Channel, OutboundMessage, Publisher, RealtimeClient, RealtimeError};
use serde_json::json;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (Some(app_id), Some(key), Some(secret)) = (
        var("PUSHER_APP_ID"),
        var("PUSHER_KEY"),
        var("PUSHER_SECRET"),
    ) else {
        eprintln!(
            "set PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET and PUSHER_CLUSTER \
             (or PUSHER_HOST, PUSHER_PORT, PUSHER_TLS for a local server) to run this example"
        );
        std::process::exit(2);
    };
    let credentials = Credentials::new(app_id, key.clone(), secret);
    let (config, rest) = match var("PUSHER_HOST") {
        Some(host) => {
            let port = var("PUSHER_PORT")
                .and_then(|p| p.parse().ok())
                .unwrap_or(6001);
            let tls = var("PUSHER_TLS").is_none_or(|t| t != "false");
            (
                PusherConfig::host(key, host.clone(), port, tls),
                PusherRest::host(credentials, &host, port, tls),
            )
        }
        None => {
            let cluster = var("PUSHER_CLUSTER").unwrap_or_else(|| "mt1".into());
            (
                PusherConfig::cluster(key, &cluster),
                PusherRest::cluster(credentials, &cluster),
            )
        }
    };
    if let Err(e) = run(PusherProvider::new(config), rest).await {
        eprintln!("pusher example: {e}");
        std::process::exit(1);
    }
}

async fn run(provider: PusherProvider, rest: PusherRest) -> relayport::Result<()> {
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

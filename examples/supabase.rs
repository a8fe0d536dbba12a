//! Supabase Realtime with relayport: a `RealtimeClient` joins a broadcast channel over Phoenix
//! channels, the REST broadcast API (`SupabasePublisher`, the backend's `Publisher`) sends, the
//! client receives.
//!
//! ```sh
//! SUPABASE_URL=https://<ref>.supabase.co SUPABASE_ANON_KEY=… cargo run --example supabase
//! ```
//!
//! The publisher uses `SUPABASE_SERVICE_ROLE_KEY` when set, the anon key otherwise. Without
//! `SUPABASE_URL` and `SUPABASE_ANON_KEY` it says so and exits with status 2.

use std::time::Duration;

use relayport::supabase::{SupabaseConfig, SupabaseProvider, SupabasePublisher};
use relayport::{Channel, OutboundMessage, Publisher, RealtimeClient, RealtimeError};
use serde_json::json;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (Some(url), Some(anon)) = (var("SUPABASE_URL"), var("SUPABASE_ANON_KEY")) else {
        eprintln!("set SUPABASE_URL and SUPABASE_ANON_KEY to run this example");
        std::process::exit(2);
    };
    let publish_key = var("SUPABASE_SERVICE_ROLE_KEY").unwrap_or_else(|| anon.clone());
    if let Err(e) = run(&url, &anon, &publish_key).await {
        eprintln!("supabase example: {e}");
        std::process::exit(1);
    }
}

async fn run(url: &str, anon: &str, publish_key: &str) -> relayport::Result<()> {
    let provider = SupabaseProvider::new(SupabaseConfig::new(url, anon));
    let rest = SupabasePublisher::new(url, publish_key);
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

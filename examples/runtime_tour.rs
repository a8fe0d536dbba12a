//! A tour of the client runtime's policies, offline and in a second: a flaky link that fails
//! three times, publishes queued while offline and flushed in order, a link drop with missed
//! messages recovered on resubscribe, and the heartbeat's latency.
//!
//! It runs on the scripted provider (the one the runtime's tests use) and on tokio's paused
//! clock, so the backoff schedule plays out in full without waiting.
//!
//! ```sh
//! cargo run --example runtime_tour
//! ```

use std::time::Duration;

use relayport_core::testing::ScriptedProvider;
use relayport_core::{
    Channel, ClientEvent, CloseReason, ConnectionState, RealtimeClient, RealtimeError,
};
use serde_json::json;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), RealtimeError> {
    let (provider, server) = ScriptedProvider::new();
    server.echo_publishes(true);
    server.fail_connects(3, RealtimeError::Connection("network unreachable".into()));
    let client = RealtimeClient::builder(provider).client_id("tour").build();
    let started = tokio::time::Instant::now();

    let mut events = client.events();
    let log = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            let t = started.elapsed().as_secs_f64();
            match event {
                ClientEvent::StateChanged(ConnectionState::Reconnecting { attempt, retry_in }) => {
                    println!("[{t:6.2}s] reconnecting: retry {attempt} in {retry_in:.2?}")
                }
                ClientEvent::StateChanged(state) => println!("[{t:6.2}s] state: {state:?}"),
                other => println!("[{t:6.2}s] event: {other:?}"),
            }
        }
    });

    println!("publishing 3 messages before any connection exists (they queue)…");
    for i in 1..=3 {
        client.publish_nowait("news", "post", json!({ "n": i }))?;
    }
    let mut news = client.subscribe("news").await?;
    for _ in 0..3 {
        if let Some(m) = news.recv().await {
            println!(
                "  received {} #{:?}: {}",
                m.event,
                m.position.map(|p| p.sequence),
                m.data
            );
        }
    }

    println!("the server drops the link; 2 messages are published while we are away…");
    server.drop_link(CloseReason::retry(Some(1006), "connection reset"));
    let news_channel = Channel::parse("news")?;
    server.server_publish(&news_channel, "post", json!({"n": 4}));
    server.server_publish(&news_channel, "post", json!({"n": 5}));
    for _ in 0..2 {
        if let Some(m) = news.recv().await {
            println!(
                "  recovered {} #{:?}: {}",
                m.event,
                m.position.map(|p| p.sequence),
                m.data
            );
        }
    }

    tokio::time::sleep(Duration::from_secs(31)).await;
    println!("heartbeat latency: {:?}", client.latency());
    client.close().await;
    let _ = log.await;
    Ok(())
}

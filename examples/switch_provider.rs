//! One application, any provider: a small notification feed with a presence channel of
//! viewers. Nothing below names a provider; the environment picks it.
//!
//! ```sh
//! # the self-hosted server
//! relayport-server --port 8080 --secret s3cret &
//! REALTIME_PROVIDER=selfhosted REALTIME_URL=http://127.0.0.1:8080 REALTIME_SECRET=s3cret \
//!   cargo run --example switch_provider
//!
//! # a local sockudo as "Pusher": only the variables change
//! REALTIME_PROVIDER=pusher PUSHER_APP_ID=1234567 PUSHER_KEY=test-key \
//!   PUSHER_SECRET=test-secret-0123456789 PUSHER_HOST=127.0.0.1 PUSHER_PORT=6001 PUSHER_TLS=false \
//!   cargo run --example switch_provider
//! ```
//!
//! The backend publishes notifications with the provider's publisher; two viewers (clients)
//! watch the feed and see each other on `presence:feed-viewers`. This demo process holds the
//! secret, so it signs the viewers' presence subscriptions itself (`trusted_client_builder`);
//! a real viewer app would set `REALTIME_AUTH_ENDPOINT` and use `relayport::client`.
//! Every wait is bounded: on failure the program exits with status 1 and the reason.

use std::time::Duration;

use relayport::config::ProcessEnv;
use relayport::{
    Channel, OutboundMessage, PresenceAction, ProviderConfig, RealtimeClient, RealtimeError, Result,
};
use serde_json::json;

const FEED: &str = "notifications";
const VIEWERS: &str = "presence:feed-viewers";
const STEP: Duration = Duration::from_secs(15);

async fn within<T>(what: &str, f: impl Future<Output = Option<T>>) -> Result<T> {
    match tokio::time::timeout(STEP, f).await {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(RealtimeError::Closed(format!("{what}: the stream ended"))),
        Err(_) => Err(RealtimeError::timeout(what, STEP)),
    }
}

fn viewer(cfg: &ProviderConfig, name: &str) -> Result<RealtimeClient> {
    Ok(relayport::trusted_client_builder(&cfg.clone().with_client_id(name))?.build())
}

async fn app(cfg: &ProviderConfig) -> Result<()> {
    println!("provider: {}", cfg.provider_name());
    let backend = relayport::publisher(cfg)?;

    let alice = viewer(cfg, "alice")?;
    let mut feed = alice.subscribe(FEED).await?;
    alice
        .presence_enter(VIEWERS, json!({"name": "Alice"}))
        .await?;
    let mut viewers = alice.presence_events(VIEWERS).await?;
    let members = alice.presence_members(VIEWERS).await?;
    println!(
        "alice is watching; viewers: {:?}",
        members.iter().map(|m| &m.id).collect::<Vec<_>>()
    );

    let bob = viewer(cfg, "bob")?;
    bob.presence_enter(VIEWERS, json!({"name": "Bob"})).await?;
    loop {
        let e = within("bob's join", viewers.recv()).await?;
        if e.action == PresenceAction::Joined && e.member.id == "bob" {
            println!("bob joined: {}", e.member.data);
            break;
        }
    }

    for (n, text) in ["deploy finished", "new comment", "build is green"]
        .iter()
        .enumerate()
    {
        let note = json!({"n": n + 1, "text": text});
        backend
            .publish(&OutboundMessage::new(
                Channel::parse(FEED)?,
                "notification",
                note,
            ))
            .await?;
    }
    for _ in 0..3 {
        let m = within("a notification", feed.recv()).await?;
        println!("alice got #{}: {}", m.data["n"], m.data["text"]);
    }

    bob.presence_leave(VIEWERS).await?;
    loop {
        let e = within("bob's leave", viewers.recv()).await?;
        if e.action == PresenceAction::Left && e.member.id == "bob" {
            println!("bob left");
            break;
        }
    }
    bob.close().await;
    alice.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let outcome = match ProviderConfig::from_env(&ProcessEnv) {
        Ok(cfg) => app(&cfg).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switch_provider: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

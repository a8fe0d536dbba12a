//! The commands, one module each, and what they share: the client they connect with and the
//! way a long-running command ends.

mod auth;
mod history;
mod listen;
mod presence;
mod publish;

use std::future::Future;

use relayport::config::ProviderConfig;
use relayport::{Channel, RealtimeClient, Result};

use crate::args::Command;
use crate::{events, signals, status};

/// Runs `command` against the provider `cfg` names.
pub(crate) async fn run(command: Command, cfg: &ProviderConfig) -> Result<()> {
    match command {
        Command::Listen { channels, postgres } => {
            let cfg = listen::with_postgres(cfg, &channels, &postgres)?;
            listen::run(&cfg, channels).await
        }
        Command::Publish {
            channel,
            event,
            data,
            base64,
            client,
        } => {
            let payload =
                base64.unwrap_or_else(|| relayport::Payload::Json(data.unwrap_or_default()));
            publish::run(cfg, channel, &event, payload, client).await
        }
        Command::Presence { channel, data } => presence::run(cfg, channel, data).await,
        Command::History {
            channel,
            limit,
            newest_first,
        } => history::run(cfg, channel, limit, newest_first).await,
        Command::Auth {
            socket_id,
            channel,
            user_data,
        } => auth::run(cfg, socket_id, channel, user_data).await,
    }
}

/// A client for the CLI: the provider gets the public settings; private and presence channels
/// are signed by `REALTIME_AUTH_ENDPOINT`, or here when the configuration holds the secret.
fn client(cfg: &ProviderConfig) -> Result<RealtimeClient> {
    Ok(relayport::trusted_client_builder(cfg)?.build())
}

/// Runs `work` on `client` until it finishes, the client fails, the server ends the
/// subscription of one of `channels` with an error, or the process is asked to stop (ctrl-c,
/// SIGTERM: a clean exit). Connection states and client events go to stderr meanwhile. The
/// client then says goodbye (`close()`) whatever happened.
async fn supervise<F>(client: RealtimeClient, channels: &[Channel], work: F) -> Result<()>
where
    F: Future<Output = Result<()>>,
{
    // Taken before `work` subscribes, so no event about its channels can be missed.
    let mut client_events = client.events();
    // The states arrive as events too, in order with the rest; the current one is printed first.
    let current = client.state_changes().borrow().clone();
    if let Some(error) = status::report(&current) {
        client.close().await;
        return Err(error);
    }
    let outcome = tokio::select! {
        biased;
        e = events::watch(&mut client_events, channels) => Err(e),
        r = signals::stop_requested() => r,
        r = work => r,
    };
    client.close().await;
    outcome
}

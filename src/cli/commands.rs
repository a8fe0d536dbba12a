//! The commands.

mod auth;
mod history;
mod listen;
mod presence;
mod publish;

use relayport_core::{Channel, RealtimeClient, RealtimeError, Result};

use super::args::Command;
use super::output::note;
use crate::config::ProviderConfig;

/// Runs `command` against the provider `cfg` names.
pub(crate) async fn run(command: Command, cfg: &ProviderConfig) -> Result<()> {
    match command {
        Command::Listen { channels } => listen::run(cfg, &channels).await,
        Command::Publish {
            channel,
            event,
            data,
            client,
        } => publish::run(cfg, &channel, &event, &data, client).await,
        Command::Presence { channel, data } => presence::run(cfg, &channel, data.as_deref()).await,
        Command::History { channel } => history::run(cfg, &channel).await,
        Command::Auth {
            socket_id,
            channel,
            user_data,
        } => auth::run(cfg, &socket_id, &channel, user_data.as_deref()).await,
    }
}

/// A client for the CLI: the provider gets the public settings; private and presence channels
/// are signed by `REALTIME_AUTH_ENDPOINT`, or here when the configuration holds the secret.
pub(crate) fn client(cfg: &ProviderConfig) -> Result<RealtimeClient> {
    Ok(crate::trusted_client_builder(cfg)?.build())
}

/// Parses a channel argument.
pub(crate) fn channel(name: &str) -> Result<Channel> {
    Channel::parse(name)
}

/// Waits for ctrl-c; an error installing the handler ends the command.
pub(crate) async fn ctrl_c() -> Result<()> {
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| RealtimeError::Config(format!("cannot listen for ctrl-c: {e}")))?;
    note("interrupted: leaving");
    Ok(())
}

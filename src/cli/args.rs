//! The command line, parsed by clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// One realtime client over Pusher, Ably, Supabase Realtime and the self-hosted server.
///
/// The provider comes from --config, or from the environment: REALTIME_PROVIDER (or
/// --provider) and that provider's variables (PUSHER_KEY, ABLY_API_KEY, SUPABASE_URL,
/// REALTIME_URL, …).
#[derive(Debug, Parser)]
#[command(name = "relayport", version)]
pub struct Cli {
    /// The provider (pusher, ably, supabase, selfhosted); its settings come from the
    /// environment.
    #[arg(long, global = true)]
    pub provider: Option<String>,
    /// A configuration file (TOML, or JSON when it ends in .json).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The client id (presence user id); overrides REALTIME_CLIENT_ID.
    #[arg(long, global = true, value_name = "ID")]
    pub client_id: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Subscribe and print every message as one JSON object per line.
    Listen {
        /// The channels (neutral names: `news`, `private:orders`, `presence:room`).
        #[arg(required = true)]
        channels: Vec<String>,
    },
    /// Publish one event.
    Publish {
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// The payload, as JSON.
        data: String,
        /// Publish through a client connection instead of the backend publisher.
        #[arg(long)]
        client: bool,
    },
    /// Join a presence channel; print the members, then joins, updates and leaves.
    Presence {
        /// The presence channel (`presence:room`).
        channel: String,
        /// The member data to join with, as JSON.
        #[arg(long, value_name = "JSON")]
        data: Option<String>,
    },
    /// Print the messages the provider retained on a channel.
    History {
        /// The channel.
        channel: String,
    },
    /// Print the auth body the configured provider signs for a subscription.
    Auth {
        /// The connection's socket id.
        socket_id: String,
        /// The private or presence channel.
        channel: String,
        /// For presence channels: the user, `{"id": …, "info": …}` (or Pusher's
        /// `{"user_id": …, "user_info": …}`).
        #[arg(long, value_name = "JSON")]
        user_data: Option<String>,
    },
}

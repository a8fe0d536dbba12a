//! The command line, parsed by clap. Every argument is checked here, so a bad one is a usage
//! error (status 2, clap's message) before anything connects.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use relayport::{Channel, ChannelKind, Payload, PresenceUser};
use serde_json::Value;

/// The environment variables and the exit statuses, after the options in `--help`. Names only:
/// values (some are secrets) are never printed.
const AFTER_HELP: &str = "\
Examples:
  relayport listen news private:orders
  relayport publish news headline '{\"text\":\"hi\"}'
  relayport --client-id alice presence presence:lobby --data '{\"name\":\"Alice\"}'
  relayport --config relayport.toml history news
  REALTIME_PROVIDER=selfhosted REALTIME_URL=http://127.0.0.1:8080 relayport listen news
  relayport --user-id alice listen server-to-user     (Pusher: sign in, print the user's events)

Provider settings come from --config FILE or from the environment (secrets marked *):
  pusher      PUSHER_APP_ID PUSHER_KEY PUSHER_CLUSTER PUSHER_HOST PUSHER_PORT PUSHER_TLS
              PUSHER_MAX_PAYLOAD PUSHER_CLIENT_EVENT_PREFIX PUSHER_USER_AUTH_ENDPOINT
              PUSHER_USER_DATA PUSHER_SECRET* PUSHER_ENCRYPTION_MASTER_KEY_BASE64*
  ably        ABLY_CLIENT_KEY* ABLY_AUTH_URL ABLY_HOST ABLY_PORT ABLY_TLS ABLY_API_KEY*
  supabase    SUPABASE_URL SUPABASE_ANON_KEY SUPABASE_REALTIME_URL
              SUPABASE_SERVICE_ROLE_KEY* SUPABASE_JWT_SECRET*
  selfhosted  REALTIME_URL REALTIME_SECRET*
  socketio    SOCKETIO_URL SOCKETIO_NAMESPACE SOCKETIO_PATH SOCKETIO_AUTH* SOCKETIO_SECRET*
  firebase    FIREBASE_DATABASE_URL FIREBASE_AUTH_TOKEN* FIREBASE_ROOT
  all         REALTIME_AUTH_ENDPOINT (signs private and presence channels),
              REALTIME_CLIENT_ID, REALTIME_ECHO (false: not your own publishes)

Output: messages and presence events on stdout, one JSON object per line (a binary payload as
base64 text with \"encoding\": \"base64\"); connection
states, reconnect reasons and client events on stderr.
Exit status: 0 done, or interrupted (ctrl-c, SIGTERM) after a clean goodbye; 1 a fatal error
(one line on stderr), including a subscription the server ended with an error; 2 a usage
error.";

/// One realtime client over Pusher, Ably, Supabase Realtime, Firebase and the self-hosted server.
#[derive(Debug, Parser)]
#[command(name = "relayport", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// The provider; its settings come from the environment. A --config file names its own.
    #[arg(long, global = true, env = "REALTIME_PROVIDER", value_enum)]
    pub(crate) provider: Option<ProviderName>,
    /// A configuration file (TOML, or JSON when it ends in .json).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The client id (presence user id).
    #[arg(long, global = true, value_name = "ID", env = "REALTIME_CLIENT_ID")]
    pub(crate) client_id: Option<String>,
    /// Pusher: sign the connection in as this user (`pusher:signin`, signed with
    /// PUSHER_SECRET), as PUSHER_USER_DATA's `id`; the user's events arrive on the channel
    /// `server-to-user`.
    #[arg(long, global = true, value_name = "ID")]
    pub(crate) user_id: Option<String>,
    /// Pusher: the signed-in user's `user_info`, as JSON (with --user-id).
    #[arg(long, global = true, value_name = "JSON", value_parser = json, requires = "user_id")]
    pub(crate) user_info: Option<Value>,
    /// Do not receive this client's own publishes (REALTIME_ECHO=false); by default a client
    /// receives them, on every provider.
    #[arg(long, global = true)]
    pub(crate) no_echo: bool,
    /// Pusher: add `client-` to client-event names on send and strip it on receive, as
    /// Laravel Echo's whisper does (PUSHER_CLIENT_EVENT_PREFIX).
    #[arg(long, global = true)]
    pub(crate) client_event_prefix: bool,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// Checks what clap cannot check argument by argument: a usage error (status 2) when
    /// arguments do not go together.
    pub(crate) fn check(&self) -> Result<(), clap::Error> {
        match &self.command {
            Command::Auth {
                channel,
                user_data: None,
                ..
            } if channel.kind() == ChannelKind::Presence => {
                Err(<Self as clap::CommandFactory>::command().error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    format!("{channel} is a presence channel: give --user-data '{{\"id\": …}}'"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The providers `--provider` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProviderName {
    /// Pusher Channels, or a Pusher-compatible server (sockudo, soketi, Reverb).
    Pusher,
    /// Ably.
    Ably,
    /// Supabase Realtime.
    Supabase,
    /// The self-hosted relayport server.
    Selfhosted,
    /// A Socket.IO v4 server running the relayport adapter.
    Socketio,
    /// Firebase Realtime Database.
    Firebase,
}

impl ProviderName {
    /// The name the configuration uses.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pusher => "pusher",
            Self::Ably => "ably",
            Self::Supabase => "supabase",
            Self::Selfhosted => "selfhosted",
            Self::Socketio => "socketio",
            Self::Firebase => "firebase",
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Subscribe and print every message as one JSON object per line.
    #[command(
        after_help = "Examples:\n  relayport listen news\n  relayport listen news \
                            private:orders 'feed.*' | jq .data"
    )]
    Listen {
        /// The channels (neutral names: `news`, `private:orders`, `presence:room`).
        #[arg(required = true, value_parser = channel)]
        channels: Vec<Channel>,
        /// Supabase: also listen to Postgres changes on these channels (repeatable), each
        /// `schema[:table[:EVENT[:filter]]]`, e.g. `public:messages:INSERT`; printed as
        /// `postgres_changes:INSERT` messages.
        #[arg(long = "postgres", value_name = "SCHEMA:TABLE:EVENT[:FILTER]")]
        postgres: Vec<String>,
    },
    /// Publish one event.
    #[command(
        after_help = "Examples:\n  relayport publish news headline '{\"text\":\"hi\"}'\n  \
                            relayport publish private:orders created '{\"id\":7}' --client"
    )]
    Publish {
        /// The channel.
        #[arg(value_parser = channel)]
        channel: Channel,
        /// The event name.
        event: String,
        /// The payload, as JSON.
        #[arg(value_parser = json, required_unless_present = "base64")]
        data: Option<Value>,
        /// Publish these bytes (standard base64) instead of JSON: a binary payload, on the
        /// providers that carry one (Ably, Supabase, self-hosted).
        #[arg(long, value_name = "BASE64", value_parser = base64_bytes, conflicts_with = "data")]
        base64: Option<Payload>,
        /// Publish through a client connection instead of the backend publisher.
        #[arg(long)]
        client: bool,
    },
    /// Join a presence channel; print the members, then joins, updates and leaves.
    #[command(
        after_help = "Example:\n  relayport --client-id alice presence presence:lobby \
                            --data '{\"name\":\"Alice\"}'"
    )]
    Presence {
        /// The presence channel (`presence:room`).
        #[arg(value_parser = presence_channel)]
        channel: Channel,
        /// The member data to join with, as JSON.
        #[arg(long, value_name = "JSON", value_parser = json)]
        data: Option<Value>,
    },
    /// Print the messages the provider retained on a channel, every page, oldest first.
    #[command(
        after_help = "Examples:\n  relayport history news | jq -c .data\n  relayport history news \
                      --newest-first --limit 20"
    )]
    History {
        /// The channel.
        #[arg(value_parser = channel)]
        channel: Channel,
        /// Messages per page (the provider caps it: 100 self-hosted, 1000 Ably).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Newest first instead of oldest first.
        #[arg(long)]
        newest_first: bool,
    },
    /// Print the auth body the configured provider signs for a subscription.
    #[command(
        after_help = "Examples:\n  relayport auth 1234.5678 private:orders\n  relayport \
                            auth 1234.5678 presence:lobby --user-data \
                            '{\"id\":\"alice\",\"info\":{\"name\":\"Alice\"}}'"
    )]
    Auth {
        /// The connection's socket id.
        socket_id: String,
        /// The private or presence channel.
        #[arg(value_parser = channel)]
        channel: Channel,
        /// For presence channels: the user, `{"id": …, "info": …}` (or Pusher's
        /// `{"user_id": …, "user_info": …}`).
        #[arg(long, value_name = "JSON", value_parser = user)]
        user_data: Option<PresenceUser>,
    },
}

/// A channel argument.
fn channel(text: &str) -> Result<Channel, String> {
    Channel::parse(text).map_err(|e| e.to_string())
}

/// A presence channel argument.
fn presence_channel(text: &str) -> Result<Channel, String> {
    let ch = channel(text)?;
    match ch.kind() {
        ChannelKind::Presence => Ok(ch),
        _ => Err("presence needs a presence channel (`presence:…`)".into()),
    }
}

/// A JSON argument.
fn json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))
}

/// Standard base64 text as a binary payload.
fn base64_bytes(text: &str) -> Result<Payload, String> {
    Payload::from_wire(Value::String(text.to_owned()), Some("base64"))
        .map_err(|_| "not valid base64 (standard alphabet, padded)".to_owned())
}

/// `{"id"|"user_id": …, "info"|"user_info": …}` as a presence user.
fn user(text: &str) -> Result<PresenceUser, String> {
    let value = json(text)?;
    let id = match value.get("id").or_else(|| value.get("user_id")) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("needs a non-empty `id` (or `user_id`)".into()),
    };
    let info = value
        .get("info")
        .or_else(|| value.get("user_info"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(PresenceUser { id, info })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("relayport").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn arguments_are_checked_while_parsing() {
        let bad = [
            (&["--provider", "soketi", "listen", "x"][..], "soketi"),
            (&["publish", "news", "e", "{not json"], "not valid JSON"),
            (&["listen", "bad channel"], "bad channel"),
            (&["presence", "news"], "presence channel"),
            (&["auth", "1.2", "presence:r", "--user-data", "{}"], "`id`"),
            (&["listen"], "<CHANNELS>"),
        ];
        for (args, needle) in bad {
            let e = parse(args).expect_err("refused");
            assert_eq!(e.exit_code(), 2, "{args:?}");
            let text = e.to_string();
            assert!(text.contains(needle), "{args:?}: {text}");
        }
        let e = parse(&["--provider", "soketi", "listen", "x"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        let text = e.to_string();
        for name in [
            "pusher",
            "ably",
            "supabase",
            "selfhosted",
            "socketio",
            "firebase",
        ] {
            assert!(text.contains(name), "the values are listed: {text}");
        }
    }

    #[test]
    fn socketio_is_selectable() {
        let cli = parse(&["--provider", "socketio", "listen", "news"]).unwrap();
        assert_eq!(cli.provider, Some(ProviderName::Socketio));
        assert_eq!(ProviderName::Socketio.as_str(), "socketio");
    }

    #[test]
    fn good_arguments_arrive_typed() {
        let cli = parse(&["--provider", "ably", "publish", "news", "e", r#"{"a":1}"#]).unwrap();
        assert_eq!(cli.provider, Some(ProviderName::Ably));
        match cli.command {
            Command::Publish { channel, data, .. } => {
                assert_eq!(channel, Channel::public("news"));
                assert_eq!(data, Some(serde_json::json!({"a": 1})));
            }
            other => panic!("{other:?}"),
        }
        let e = parse(&["auth", "1.2", "presence:r"])
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(
            (e.exit_code(), e.kind()),
            (2, ErrorKind::MissingRequiredArgument)
        );
        assert!(
            parse(&["auth", "1.2", "private:r"])
                .unwrap()
                .check()
                .is_ok()
        );
        let cli = parse(&[
            "auth",
            "1.2",
            "presence:r",
            "--user-data",
            r#"{"user_id":7}"#,
        ]);
        match cli.unwrap().command {
            Command::Auth { user_data, .. } => assert_eq!(user_data.unwrap().id, "7"),
            other => panic!("{other:?}"),
        }
    }
}

//! The `relayport` command-line client.
//!
//! ```text
//! relayport [--provider NAME | --config FILE] [--client-id ID] <command>
//!   listen <channel>…                      print every message, one JSON object per line
//!          [--postgres SCHEMA:TABLE:EVENT] …and Supabase Postgres changes on those channels
//!   publish <channel> <event> <json>       publish through the backend publisher
//!           [--client]                     …or as a client (Supabase public channels:
//!                                          REST with the anon key, no WebSocket)
//!   presence <channel> [--data json]       join; print the members, then joins and leaves
//!   history <channel>                      print the retained messages
//!   auth <socket_id> <channel>             print the auth body the configured provider's
//!        [--user-data json]                authorizer signs
//! ```
//!
//! The provider comes from `--config FILE` (TOML, or JSON by extension), otherwise from the
//! environment (`REALTIME_PROVIDER`, or `--provider`, plus the provider's variables; see
//! `relayport::config`). Messages and presence events go to stdout as JSON lines; connection
//! states, reconnect reasons and client events go to stderr. Fatal errors (a subscription the
//! server ended with an error among them) end the process with status 1 and a one-line reason
//! on stderr; usage errors with status 2; ctrl-c and SIGTERM leave cleanly (status 0).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod args;
mod commands;
mod events;
mod output;
mod signals;
mod status;

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use relayport::config::{EnvSource, ProcessEnv, ProviderConfig};
use relayport::{RealtimeError, Result};

use args::Cli;

/// Runs the CLI with the process's arguments and environment; returns the exit status.
fn main() -> ExitCode {
    let (cli, flags) = parse(Cli::command().get_matches());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fatal(&RealtimeError::Config(format!("cannot start tokio: {e}"))),
    };
    match runtime.block_on(run(cli, flags, &ProcessEnv)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fatal(&e),
    }
}

/// Which global options were given on the command line (rather than by their environment
/// variable): only those override a configuration file.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    provider: bool,
    client_id: bool,
}

/// The parsed command line (a usage error exits with clap's message and status 2).
fn parse(matches: ArgMatches) -> (Cli, Flags) {
    let on_command_line = |id: &str| {
        // Global options given after the subcommand are recorded on its matches.
        let mut m = Some(&matches);
        while let Some(current) = m {
            if current.value_source(id) == Some(ValueSource::CommandLine) {
                return true;
            }
            m = current.subcommand().map(|(_, sub)| sub);
        }
        false
    };
    let flags = Flags {
        provider: on_command_line("provider"),
        client_id: on_command_line("client_id"),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = cli.check() {
        e.exit();
    }
    (cli, flags)
}

fn fatal(e: &RealtimeError) -> ExitCode {
    output::note(&format!("relayport: {e}"));
    ExitCode::FAILURE
}

/// Runs one command with configuration read through `env`.
async fn run(cli: Cli, flags: Flags, env: &dyn EnvSource) -> Result<()> {
    let cfg = load_config(&cli, flags, env)?;
    commands::run(cli.command, &cfg).await
}

/// The configuration the flags and `env` select. A file names its provider: `--provider`
/// given on the command line must agree with it, `REALTIME_PROVIDER` is ignored.
fn load_config(cli: &Cli, flags: Flags, env: &dyn EnvSource) -> Result<ProviderConfig> {
    let cfg = match (&cli.config, cli.provider) {
        (Some(path), provider) => {
            let cfg = ProviderConfig::from_file(path)?;
            if let Some(p) = provider.filter(|_| flags.provider)
                && p.as_str() != cfg.provider_name()
            {
                return Err(RealtimeError::Config(format!(
                    "--provider {} contradicts the configuration file's provider `{}`",
                    p.as_str(),
                    cfg.provider_name()
                )));
            }
            cfg
        }
        (None, Some(p)) => ProviderConfig::from_env_for(p.as_str(), env)?,
        (None, None) => ProviderConfig::from_env(env)?,
    };
    let cfg = match (&cli.client_id, flags.client_id) {
        (Some(id), true) => cfg.with_client_id(id.clone()),
        _ => cfg,
    };
    let cfg = if cli.no_echo {
        cfg.with_echo(false)
    } else {
        cfg
    };
    pusher_flags(cli, cfg)
}

/// Applies the Pusher-only flags (`--user-id`, `--user-info`, `--client-event-prefix`); with
/// another provider they are a `Config` error.
fn pusher_flags(cli: &Cli, cfg: ProviderConfig) -> Result<ProviderConfig> {
    if cli.user_id.is_none() && !cli.client_event_prefix {
        return Ok(cfg);
    }
    match cfg {
        ProviderConfig::Pusher(mut p) => {
            if let Some(id) = &cli.user_id {
                let mut user = serde_json::Map::new();
                user.insert("id".into(), id.clone().into());
                if let Some(info) = &cli.user_info {
                    user.insert("user_info".into(), info.clone());
                }
                p.user_data = Some(user.into());
            }
            if cli.client_event_prefix {
                p.client_event_prefix = Some(true);
            }
            Ok(ProviderConfig::Pusher(p))
        }
        other => Err(RealtimeError::Config(format!(
            "--user-id, --user-info and --client-event-prefix are Pusher settings, and the provider is `{}`",
            other.provider_name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport::config::MapEnv;

    fn cli(args: &[&str]) -> (Cli, Flags) {
        let argv = std::iter::once("relayport").chain(args.iter().copied());
        parse(Cli::command().try_get_matches_from(argv).expect("parses"))
    }

    fn load(args: &[&str], env: &MapEnv) -> Result<ProviderConfig> {
        let (cli, flags) = cli(args);
        load_config(&cli, flags, env)
    }

    fn env() -> MapEnv {
        MapEnv::from([
            ("REALTIME_PROVIDER", "selfhosted"),
            ("REALTIME_URL", "http://127.0.0.1:8080"),
            ("PUSHER_KEY", "k"),
            ("PUSHER_CLUSTER", "eu"),
        ])
    }

    #[test]
    fn the_provider_comes_from_the_flag_then_the_environment() {
        let cfg = load(&["listen", "x"], &env()).unwrap();
        assert_eq!(cfg.provider_name(), "selfhosted");
        let cfg = load(&["--provider", "pusher", "listen", "x"], &env()).unwrap();
        assert_eq!(cfg.provider_name(), "pusher");
        let cfg = load(&["listen", "x", "--provider", "pusher"], &env()).unwrap();
        assert_eq!(cfg.provider_name(), "pusher");
        let cfg = load(&["--client-id", "bob", "listen", "x"], &env()).unwrap();
        assert_eq!(cfg.client_id(), Some("bob"));
        let (_, flags) = cli(&["listen", "x", "--client-id", "bob"]);
        assert!(flags.client_id && !flags.provider);
    }

    #[test]
    fn pusher_flags_set_the_user_and_the_prefix() {
        let args = [
            "--provider",
            "pusher",
            "--user-id",
            "alice",
            "--user-info",
            r#"{"name":"Alice"}"#,
            "--client-event-prefix",
            "listen",
            "server-to-user",
        ];
        let ProviderConfig::Pusher(p) = load(&args, &env()).unwrap() else {
            panic!()
        };
        assert_eq!(
            p.user_data,
            Some(serde_json::json!({"id": "alice", "user_info": {"name": "Alice"}}))
        );
        assert_eq!(p.client_event_prefix, Some(true));
        let err = load(&["--user-id", "alice", "listen", "x"], &env()).unwrap_err();
        assert!(err.to_string().contains("Pusher settings"), "{err}");
    }

    #[test]
    fn no_echo_turns_echo_off_for_any_provider() {
        assert_eq!(load(&["listen", "x"], &env()).unwrap().echo(), None);
        let cfg = load(&["--no-echo", "listen", "x"], &env()).unwrap();
        assert_eq!(cfg.echo(), Some(false));
    }

    #[test]
    fn a_file_wins_and_a_contradicting_flag_is_refused() {
        let dir = std::env::temp_dir().join(format!("relayport-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "provider = \"pusher\"\nkey = \"k\"\ncluster = \"eu\"\n",
        )
        .unwrap();
        let file = path.to_string_lossy().into_owned();
        let cfg = load(&["--config", &file, "listen", "x"], &env()).unwrap();
        assert_eq!(cfg.provider_name(), "pusher");
        let args = ["--config", &file, "--provider", "ably", "listen", "x"];
        let err = load(&args, &env()).unwrap_err();
        assert!(err.to_string().contains("--provider ably"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

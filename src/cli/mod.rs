//! The `relayport` command-line client (feature `cli`).
//!
//! ```text
//! realtime [--provider NAME | --config FILE] [--client-id ID] <command>
//!   listen <channel>…                      print every message, one JSON object per line
//!   publish <channel> <event> <json>       publish through the backend publisher
//!           [--client]                     …or through a client connection
//!   presence <channel> [--data json]       join; print the members, then joins and leaves
//!   history <channel>                      print the retained messages
//!   auth <socket_id> <channel>             print the auth body the configured provider's
//!        [--user-data json]                authorizer signs
//! ```
//!
//! The provider comes from `--config FILE` (TOML, or JSON by extension), otherwise from the
//! environment (`REALTIME_PROVIDER`, or `--provider`, plus the provider's variables; see
//! [`crate::config`]). Messages and presence events go to stdout as JSON lines; connection
//! states and the reconnect countdown go to stderr. Fatal errors end the process with status
//! 1 and a one-line reason on stderr; usage errors with status 2; ctrl-c leaves cleanly
//! (status 0).

mod args;
mod commands;
mod output;
mod status;

use std::process::ExitCode;

use clap::Parser;
use relayport_core::{RealtimeError, Result};

pub use args::{Cli, Command};

use crate::config::{EnvSource, ProcessEnv, ProviderConfig};

/// Runs the CLI with the process's arguments and environment; returns the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fatal(&RealtimeError::Config(format!("cannot start tokio: {e}"))),
    };
    match runtime.block_on(run(cli, &ProcessEnv)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fatal(&e),
    }
}

fn fatal(e: &RealtimeError) -> ExitCode {
    eprintln!("realtime: {}", output::one_line(&e.to_string()));
    ExitCode::FAILURE
}

/// Runs one command with configuration read through `env`.
pub async fn run(cli: Cli, env: &dyn EnvSource) -> Result<()> {
    let cfg = load_config(&cli, env)?;
    commands::run(cli.command, &cfg).await
}

/// The configuration the flags and `env` select.
pub fn load_config(cli: &Cli, env: &dyn EnvSource) -> Result<ProviderConfig> {
    let cfg = match (&cli.config, &cli.provider) {
        (Some(path), provider) => {
            let cfg = ProviderConfig::from_file(path)?;
            if let Some(p) = provider
                && !p.eq_ignore_ascii_case(cfg.provider_name())
            {
                return Err(RealtimeError::Config(format!(
                    "--provider {p} contradicts the configuration file's provider `{}`",
                    cfg.provider_name()
                )));
            }
            cfg
        }
        (None, Some(p)) => ProviderConfig::from_env_for(p, env)?,
        (None, None) => ProviderConfig::from_env(env)?,
    };
    Ok(match &cli.client_id {
        Some(id) => cfg.with_client_id(id.clone()),
        None => cfg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MapEnv;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("relayport").chain(args.iter().copied()))
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
        let cfg = load_config(&cli(&["listen", "x"]), &env()).unwrap();
        assert_eq!(cfg.provider_name(), "selfhosted");
        let cfg = load_config(&cli(&["--provider", "pusher", "listen", "x"]), &env()).unwrap();
        assert_eq!(cfg.provider_name(), "pusher");
        let cfg = load_config(&cli(&["--client-id", "bob", "listen", "x"]), &env()).unwrap();
        assert_eq!(cfg.client_id(), Some("bob"));
    }

    #[test]
    fn a_file_wins_and_a_contradicting_flag_is_refused() {
        let dir = std::env::temp_dir().join(format!("realtime-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "provider = \"pusher\"\nkey = \"k\"\ncluster = \"eu\"\n",
        )
        .unwrap();
        let file = path.to_string_lossy().into_owned();
        let cfg = load_config(&cli(&["--config", &file, "listen", "x"]), &env()).unwrap();
        assert_eq!(cfg.provider_name(), "pusher");
        let args = ["--config", &file, "--provider", "ably", "listen", "x"];
        let err = load_config(&cli(&args), &env()).unwrap_err();
        assert!(err.to_string().contains("--provider ably"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

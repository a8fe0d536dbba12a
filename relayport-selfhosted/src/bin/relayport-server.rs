//! `relayport-server`: the self-hosted realtime server.
//!
//! ```text
//! REALTIME_SECRET=… relayport-server --port 8080
//! relayport-server --secret-file /run/secrets/realtime --port 8080
//! relayport-server --help
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use relayport_selfhosted::protocol::Limits;
use relayport_selfhosted::server::pusher::PusherApp;
use relayport_selfhosted::server::{Server, ServerError};

/// The self-hosted realtime server: WebSocket (`/ws`), Server-Sent Events (`/sse`), HTTP
/// publish (`POST /publish`), presence, history, Prometheus metrics (`/metrics`), and the
/// Pusher protocol (`/app/{key}`, `/apps/{id}/…`) for pusher-js and the Pusher server SDKs.
#[derive(Debug, Parser)]
#[command(name = "relayport-server", version)]
struct Args {
    /// The app secret: signs private/presence subscriptions (HMAC-SHA256) and authorizes the
    /// HTTP API (`Authorization: Bearer <secret>`). Required: set it in the environment or
    /// use --secret-file; the flag itself is visible to every user in `ps`.
    #[arg(long, env = "REALTIME_SECRET", hide_env_values = true)]
    secret: Option<String>,

    /// Read the app secret from this file (surrounding whitespace is ignored).
    #[arg(long, env = "REALTIME_SECRET_FILE", conflicts_with = "secret")]
    secret_file: Option<std::path::PathBuf>,

    /// The address to listen on (`0.0.0.0` for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// The port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,

    /// Allow browsers from this origin (`*` for any); no CORS headers when unset.
    #[arg(long, env = "CORS_ORIGIN")]
    cors_origin: Option<String>,

    /// The largest message payload (JSON `data`), in bytes.
    #[arg(long, env = "REALTIME_MAX_PAYLOAD", default_value_t = 64 * 1024)]
    max_payload: usize,

    /// Subscriptions per connection.
    #[arg(long, env = "REALTIME_MAX_SUBSCRIPTIONS", default_value_t = 50)]
    max_subscriptions: usize,

    /// Client publishes per connection per minute.
    #[arg(long, env = "REALTIME_PUBLISHES_PER_MINUTE", default_value_t = 100)]
    publishes_per_minute: u32,

    /// Frames queued per connection before it is disconnected as a slow consumer (close 4008).
    #[arg(long, env = "REALTIME_SEND_QUEUE", default_value_t = 1000)]
    send_queue: usize,

    /// Messages kept per channel for recovery.
    #[arg(long, env = "REALTIME_HISTORY_SIZE", default_value_t = 100)]
    history_size: usize,

    /// How long messages stay in history, in seconds.
    #[arg(long, env = "REALTIME_HISTORY_TTL", default_value_t = 120)]
    history_ttl_secs: u64,

    /// Allow client publishes on public channels (otherwise private and presence only).
    #[arg(long, env = "REALTIME_ALLOW_PUBLIC_PUBLISH")]
    allow_public_publish: bool,

    /// Redis URL for scale-out across nodes (`redis://127.0.0.1:6379`); in-memory when unset.
    /// It may hold a password: prefer the environment to the flag.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,

    /// Bytes queued per connection and not yet written before it is disconnected as a slow
    /// consumer (close 4008). Keep it above history-size × max-payload.
    #[arg(long, env = "REALTIME_SEND_QUEUE_BYTES", default_value_t = 16 * 1024 * 1024)]
    send_queue_bytes: usize,

    /// Subscribe requests per connection per minute (re-subscribes and replays count).
    #[arg(long, env = "REALTIME_SUBSCRIBES_PER_MINUTE", default_value_t = 120)]
    subscribes_per_minute: u32,

    /// Presence enter/update requests per connection per minute.
    #[arg(
        long,
        env = "REALTIME_PRESENCE_UPDATES_PER_MINUTE",
        default_value_t = 60
    )]
    presence_updates_per_minute: u32,

    /// Open connections at most (TCP and WebSocket); further clients wait in the backlog.
    /// Keep it below the process's file-descriptor limit.
    #[arg(long, env = "REALTIME_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,

    /// Seconds a client may take to send a request's headers.
    #[arg(long, env = "REALTIME_HEADER_READ_TIMEOUT", default_value_t = 10)]
    header_read_timeout_secs: u64,

    /// Seconds an HTTP API request may take, body included (408 past it).
    #[arg(long, env = "REALTIME_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout_secs: u64,

    /// Seconds an SSE ticket stays valid (single use).
    #[arg(long, env = "REALTIME_SSE_TICKET_TTL", default_value_t = 30)]
    sse_ticket_ttl_secs: u64,

    /// With Redis: seconds the keys of a channel that was only read (never published) live.
    #[arg(long, env = "REALTIME_IDLE_CHANNEL_TTL", default_value_t = 600)]
    idle_channel_ttl_secs: u64,

    /// Pusher protocol mode: a JSON file of apps (`{"apps": [{"id", "key", "secret", …}]}`,
    /// see SERVER.md); the first app shares the native channels. Without it, one app with
    /// id and key `relayport` (or --pusher-app-id/--pusher-key) and the server secret.
    #[arg(long, env = "REALTIME_PUSHER_APPS_FILE")]
    pusher_apps_file: Option<std::path::PathBuf>,

    /// Pusher protocol mode: the default app's id (`/apps/{id}/…`).
    #[arg(
        long,
        env = "REALTIME_PUSHER_APP_ID",
        conflicts_with = "pusher_apps_file"
    )]
    pusher_app_id: Option<String>,

    /// Pusher protocol mode: the default app's key (`/app/{key}`; public).
    #[arg(long, env = "REALTIME_PUSHER_KEY", conflicts_with = "pusher_apps_file")]
    pusher_key: Option<String>,
}

/// The Pusher apps from the file, or the default app's id/key overrides (empty: derived).
fn pusher_apps(args: &Args, secret: &str) -> Result<Vec<PusherApp>, String> {
    if let Some(path) = &args.pusher_apps_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the pusher apps file {}: {e}", path.display()))?;
        return PusherApp::parse_list(&text);
    }
    if args.pusher_app_id.is_none() && args.pusher_key.is_none() {
        return Ok(Vec::new());
    }
    let derived = PusherApp::derived(secret);
    Ok(vec![PusherApp::new(
        args.pusher_app_id.clone().unwrap_or(derived.id),
        args.pusher_key.clone().unwrap_or(derived.key),
        secret,
    )])
}

/// Prints a line to stdout, ignoring a closed stdout (a server must not die because whoever
/// started it stopped reading; `println!` would panic on the broken pipe).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The secret from the flag, the environment or the file; `Err` when the file is unreadable.
fn secret(args: &Args) -> Result<Option<String>, String> {
    if let Some(path) = &args.secret_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
        return Ok(Some(text.trim().to_owned()).filter(|s| !s.is_empty()));
    }
    Ok(args.secret.clone().filter(|s| !s.is_empty()))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let secret = match secret(&args) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("relayport-server: {}", ServerError::MissingSecret);
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("relayport-server: {e}");
            return ExitCode::from(2);
        }
    };
    let apps = match pusher_apps(&args, &secret) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relayport-server: {e}");
            return ExitCode::from(2);
        }
    };
    let limits = Limits {
        max_payload: args.max_payload,
        max_subscriptions: args.max_subscriptions,
        publishes_per_minute: args.publishes_per_minute,
        send_queue: args.send_queue,
    };
    let mut builder = Server::builder()
        .secret(secret)
        .pusher_apps(apps)
        .limits(limits)
        .history_size(args.history_size)
        .history_ttl(Duration::from_secs(args.history_ttl_secs))
        .allow_public_publish(args.allow_public_publish)
        .send_queue_bytes(args.send_queue_bytes)
        .subscribes_per_minute(args.subscribes_per_minute)
        .presence_updates_per_minute(args.presence_updates_per_minute)
        .max_connections(args.max_connections)
        .header_read_timeout(Duration::from_secs(args.header_read_timeout_secs))
        .request_timeout(Duration::from_secs(args.request_timeout_secs))
        .sse_ticket_ttl(Duration::from_secs(args.sse_ticket_ttl_secs))
        .idle_channel_ttl(Duration::from_secs(args.idle_channel_ttl_secs));
    if let Some(origin) = args.cors_origin {
        builder = builder.cors_origin(origin);
    }
    if let Some(url) = args.redis_url {
        builder = builder.redis_url(url);
    }
    let handle = match builder.bind((args.host.as_str(), args.port)).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("relayport-server: {e}");
            return ExitCode::from(1);
        }
    };
    say!(
        "relayport-server listening on http://{}",
        handle.local_addr()
    );
    match handle.config().pusher_apps.as_slice() {
        [] => say!(
            "pusher protocol: ws://{}/app/relayport (app id relayport, the server secret)",
            handle.local_addr()
        ),
        apps => {
            for a in apps {
                say!(
                    "pusher protocol: ws://{}/app/{} (app id {})",
                    handle.local_addr(),
                    a.key,
                    a.id
                );
            }
        }
    }
    shutdown_signal().await;
    say!("relayport-server shutting down: telling clients to reconnect");
    handle.shutdown().await;
    ExitCode::SUCCESS
}

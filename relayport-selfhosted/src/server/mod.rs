//! The self-hosted realtime server (feature `server`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), relayport_selfhosted::server::ServerError> {
//! use relayport_selfhosted::server::Server;
//! let handle = Server::builder().secret("s3cret").bind("127.0.0.1:0").await?;
//! println!("listening on {}", handle.local_addr());
//! // Stop the listener, tell clients to reconnect, start again on the same port and broker:
//! let handle = handle.restart().await?;
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules: [`broker`] (channels, history, presence, fan-out), [`ws`] (the native protocol
//! over WebSocket), [`sse`] (Server-Sent Events), [`http`] (publish and channel API),
//! [`metrics`], [`auth`] (signatures and [`SelfHostedAuthorizer`]), [`redis`] (scale-out),
//! [`pusher`] (the Pusher protocol mode: `GET /app/{key}` and `/apps/{id}/…`).

pub mod accept;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod config;
pub mod connection;
pub mod history;
pub mod http;
pub mod metrics;
pub mod presence;
pub mod pusher;
pub mod ratelimit;
pub mod redis;
pub mod sse;
pub mod sse_tickets;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use auth::SelfHostedAuthorizer;
pub use broker::{Broker, BrokerConfig, Publication, Refusal, RemoteStream};
pub use clock::Clock;
pub use config::ServerConfig;
pub use metrics::{Metrics, MetricsSnapshot};

use crate::protocol::{Limits, MessageFrame, close};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No secret was configured.
    #[error(
        "no secret configured: set REALTIME_SECRET (or --secret-file; --secret works but is visible in ps); it signs subscriptions and authorizes the HTTP API"
    )]
    MissingSecret,
    /// The address could not be bound.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is invalid (the Pusher apps).
    #[error("configuration: {0}")]
    Config(String),
    /// The Redis engine could not start.
    #[error("redis engine: {0}")]
    Redis(String),
}

/// Where publishes go: straight into the local broker, or through Redis to every node.
#[derive(Clone)]
pub(crate) enum Engine {
    Memory,
    Redis(redis::RedisEngine),
}

impl Engine {
    /// Publishes and returns the message as sequenced.
    pub(crate) async fn publish(
        &self,
        broker: &Broker,
        p: Publication,
    ) -> Result<MessageFrame, String> {
        match self {
            Engine::Memory => Ok(broker.publish(p)),
            Engine::Redis(r) => r.publish(p).await,
        }
    }

    /// Stores a channel's snapshot without publishing it (on every node with Redis).
    pub(crate) async fn set_snapshot(
        &self,
        broker: &Broker,
        channel: &relayport_core::Channel,
        event: String,
        data: serde_json::Value,
    ) -> Result<MessageFrame, String> {
        match self {
            Engine::Memory => Ok(broker.set_snapshot(channel, event, data)),
            Engine::Redis(r) => r.set_snapshot(channel, event, data).await,
        }
    }

    /// The engine's copy of a concrete channel's stream, to seed a subscription with (`None`
    /// in memory, for patterns, or when the engine cannot be read: the local stream serves).
    pub(crate) async fn remote_stream(
        &self,
        channel: &relayport_core::Channel,
    ) -> Option<broker::RemoteStream> {
        match self {
            Engine::Memory => None,
            Engine::Redis(_) if channel.is_wildcard() => None,
            Engine::Redis(r) => match r.stream(channel).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("reading {channel} from redis: {e}; using local history");
                    None
                }
            },
        }
    }
}

/// What every request handler shares.
pub(crate) struct AppState {
    pub(crate) config: ServerConfig,
    pub(crate) broker: Broker,
    pub(crate) engine: Engine,
    pub(crate) shutdown: CancellationToken,
    /// Ends the scale-out engine gracefully, once connections are gone.
    pub(crate) engine_stop: CancellationToken,
    /// Ends the scale-out engine at once (a simulated crash).
    pub(crate) engine_kill: CancellationToken,
    pub(crate) tracker: connection::Tracker,
    /// The cap on open connections (TCP connections and upgraded WebSockets).
    pub(crate) limit: accept::ConnectionLimit,
    /// Pending SSE tickets.
    pub(crate) tickets: sse_tickets::Tickets,
    /// The Pusher protocol mode's apps.
    pub(crate) pusher: pusher::PusherState,
}

/// The server's entry point: [`Server::builder`].
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the defaults (no secret: set one).
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

/// Configures and starts a server.
#[derive(Debug, Default)]
pub struct ServerBuilder {
    config: ServerConfig,
    broker: Option<Broker>,
    max_frame_set: bool,
}

impl ServerBuilder {
    /// Starts from a whole configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self.max_frame_set = true;
        self
    }

    /// The app secret (required).
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.config.secret = secret.into();
        self
    }

    /// The limits enforced and announced.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// The Pusher protocol mode's apps; the first shares the native broker. Without any, one
    /// app derived from the secret (id and key `relayport`).
    pub fn pusher_apps(mut self, apps: Vec<pusher::PusherApp>) -> Self {
        self.config.pusher_apps = apps;
        self
    }

    /// Messages kept per channel for recovery.
    pub fn history_size(mut self, n: usize) -> Self {
        self.config.history_size = n;
        self
    }

    /// How long messages stay in history.
    pub fn history_ttl(mut self, ttl: Duration) -> Self {
        self.config.history_ttl = ttl;
        self
    }

    /// The heartbeat interval announced to clients.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.config.heartbeat = every;
        self
    }

    /// Close connections silent for this long with `IDLE_TIMEOUT`.
    pub fn idle_timeout(mut self, after: Duration) -> Self {
        self.config.idle_timeout = after;
        self
    }

    /// Allow client publishes on public channels.
    pub fn allow_public_publish(mut self, allow: bool) -> Self {
        self.config.allow_public_publish = allow;
        self
    }

    /// The CORS origin (`*` for any).
    pub fn cors_origin(mut self, origin: impl Into<String>) -> Self {
        self.config.cors_origin = Some(origin.into());
        self
    }

    /// The largest WebSocket frame answered (default: a maximal payload as base64 + 16 KiB,
    /// [`frame_size_for`](config::frame_size_for)).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame_size = bytes;
        self.max_frame_set = true;
        self
    }

    /// The window the publish rate limit counts over (default 60 s).
    pub fn rate_window(mut self, window: Duration) -> Self {
        self.config.rate_window = window;
        self
    }

    /// WebSocket buffer sizes per connection: read, write, and the most the write buffer
    /// may grow to.
    pub fn ws_buffers(mut self, read: usize, write: usize, max_write: usize) -> Self {
        self.config.ws_read_buffer = read;
        self.config.ws_write_buffer = write;
        self.config.ws_max_write_buffer = max_write;
        self
    }

    /// How long a closing connection may take to flush its close frame.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_timeout = timeout;
        self
    }

    /// With Redis: how often a node proves it is alive, and after how long without proof its
    /// presence members are removed (default 10 s and 30 s).
    pub fn node_liveness(mut self, heartbeat: Duration, ttl: Duration) -> Self {
        self.config.node_heartbeat = heartbeat;
        self.config.node_ttl = ttl;
        self
    }

    /// Bytes queued per connection before it is closed as a slow consumer (default 16 MiB).
    pub fn send_queue_bytes(mut self, bytes: usize) -> Self {
        self.config.send_queue_bytes = bytes;
        self
    }

    /// `subscribe` requests per connection per rate window (default 120 per minute).
    pub fn subscribes_per_minute(mut self, n: u32) -> Self {
        self.config.subscribes_per_minute = n;
        self
    }

    /// `presence_enter`/`presence_update` requests per connection per rate window (default
    /// 60 per minute).
    pub fn presence_updates_per_minute(mut self, n: u32) -> Self {
        self.config.presence_updates_per_minute = n;
        self
    }

    /// Open TCP connections at most (default 10 000).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n;
        self
    }

    /// How long a client may take to send request headers (default 10 s).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.header_read_timeout = timeout;
        self
    }

    /// How long an HTTP API request may take, body included (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// How long an SSE ticket stays valid (default 30 s).
    pub fn sse_ticket_ttl(mut self, ttl: Duration) -> Self {
        self.config.sse_ticket_ttl = ttl;
        self
    }

    /// With Redis: how long the keys of a channel only ever read live (default 10 min).
    pub fn idle_channel_ttl(mut self, ttl: Duration) -> Self {
        self.config.idle_channel_ttl = ttl;
        self
    }

    /// Use the Redis engine (scale-out across nodes).
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.config.redis_url = Some(url.into());
        self
    }

    /// The clock for rate limits and history TTLs (a manual one in tests).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.config.clock = clock;
        self
    }

    /// Serve an existing broker (its history, snapshots and channels), e.g. after a restart.
    /// The broker keeps its own history and queue settings.
    pub fn broker(mut self, broker: Broker) -> Self {
        self.broker = Some(broker);
        self
    }

    /// The configuration as it will be used.
    pub fn build_config(&self) -> ServerConfig {
        let mut config = self.config.clone();
        if !self.max_frame_set {
            config.max_frame_size = config::frame_size_for(config.limits.max_payload);
        }
        if config.ws_max_write_buffer <= config.ws_write_buffer {
            config.ws_max_write_buffer = config.ws_write_buffer * 2;
        }
        config
    }

    /// Binds and starts serving. Refuses to start without a secret.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> Result<ServerHandle, ServerError> {
        let config = self.build_config();
        if config.secret.is_empty() {
            return Err(ServerError::MissingSecret);
        }
        pusher::PusherApp::check_list(&config.pusher_apps).map_err(ServerError::Config)?;
        let broker = self.broker.unwrap_or_else(|| {
            Broker::new(BrokerConfig {
                history_size: config.history_size,
                history_ttl: config.history_ttl,
                max_subscriptions: config.limits.max_subscriptions,
                send_queue: config.limits.send_queue,
                send_queue_bytes: config.send_queue_bytes,
                clock: config.clock.clone(),
            })
        });
        let shutdown = CancellationToken::new();
        let engine_stop = CancellationToken::new();
        let engine_kill = CancellationToken::new();
        let engine = match &config.redis_url {
            None => Engine::Memory,
            Some(url) => Engine::Redis(
                redis::RedisEngine::start(
                    url,
                    broker.clone(),
                    (config.node_heartbeat, config.node_ttl),
                    engine_stop.clone(),
                    engine_kill.clone(),
                )
                .await
                .map_err(ServerError::Redis)?
                .with_idle_channel_ttl(config.idle_channel_ttl),
            ),
        };
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let limit = accept::ConnectionLimit::new(config.max_connections);
        let tickets = sse_tickets::Tickets::new(
            config.sse_ticket_ttl,
            config.max_connections,
            config.clock.clone(),
        );
        let pusher = pusher::PusherState::new(&config, &broker);
        let state = Arc::new(AppState {
            pusher,
            config,
            broker: broker.clone(),
            engine,
            shutdown: shutdown.clone(),
            engine_stop,
            engine_kill,
            tracker: connection::Tracker::default(),
            limit,
            tickets,
        });
        let app = http::router(state.clone());
        let serve = tokio::spawn(accept::serve(
            listener,
            app,
            state.limit.clone(),
            state.config.header_read_timeout,
            shutdown.clone(),
        ));
        let sweeper_broker = broker.clone();
        let sweeper_pusher = state.pusher.clone();
        let sweeper_token = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = sweeper_token.cancelled() => break,
                    _ = every.tick() => {
                        sweeper_broker.sweep();
                        sweeper_pusher.sweep();
                    }
                }
            }
        });
        tracing::info!("realtime server listening on {local_addr}");
        Ok(ServerHandle {
            local_addr,
            state,
            serve,
        })
    }
}

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    state: Arc<AppState>,
    serve: JoinHandle<()>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The broker (shared state: channels, history, presence).
    pub fn broker(&self) -> Broker {
        self.state.broker.clone()
    }

    /// The counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.broker.metrics().clone()
    }

    /// Open connections (TCP connections and upgraded WebSockets), as counted against
    /// `max_connections`.
    pub fn open_connections(&self) -> usize {
        self.state.limit.open()
    }

    /// The configuration in use.
    pub fn config(&self) -> &ServerConfig {
        &self.state.config
    }

    /// Publishes from inside the process (through the engine, like `POST /publish`).
    pub async fn publish(&self, p: Publication) -> Result<MessageFrame, String> {
        self.state.engine.publish(&self.state.broker, p).await
    }

    /// Stops accepting, sends every WebSocket client a close frame `SERVICE_RESTART`, ends
    /// SSE streams, and waits (bounded) for connections to finish. The broker lives on.
    pub async fn shutdown(self) {
        let timeout = self.state.config.shutdown_timeout;
        self.state.shutdown.cancel();
        self.state.broker.kick_all(close::SERVICE_RESTART);
        self.state.pusher.kick_all(close::SERVICE_RESTART);
        let _ = tokio::time::timeout(timeout, self.state.tracker.wait()).await;
        let mut serve = self.serve;
        if tokio::time::timeout(timeout, &mut serve).await.is_err() {
            serve.abort();
        }
        self.state.engine_stop.cancel();
        if let Engine::Redis(r) = &self.state.engine {
            r.stopped(timeout).await;
        }
    }

    /// Stops at once without a word to the scale-out engine, as a crash would look to other
    /// nodes (their presence lists drop this node's members when its liveness key expires);
    /// clients are still closed. For tests.
    pub async fn abort(self) {
        self.state.broker.set_presence_sink(None);
        self.state.engine_kill.cancel();
        self.shutdown().await;
    }

    /// Shuts down and starts again on the same address with the same broker and settings,
    /// so clients reconnect and recover through history.
    pub async fn restart(self) -> Result<ServerHandle, ServerError> {
        let addr = self.local_addr;
        let config = self.state.config.clone();
        let broker = self.state.broker.clone();
        self.shutdown().await;
        Server::builder()
            .config(config)
            .broker(broker)
            .bind(addr)
            .await
    }
}

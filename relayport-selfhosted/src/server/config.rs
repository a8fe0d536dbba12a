//! The server's settings, with the defaults the binary documents.

use std::time::Duration;

use super::clock::Clock;
use crate::protocol::Limits;

/// Everything a server is configured with. The secret is never printed.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The app secret: signs subscriptions, authorizes the HTTP API.
    pub secret: String,
    /// Limits announced in `connected` and enforced.
    pub limits: Limits,
    /// Messages kept per channel for recovery.
    pub history_size: usize,
    /// How long a message stays in history.
    pub history_ttl: Duration,
    /// The heartbeat interval announced to clients.
    pub heartbeat: Duration,
    /// A connection that sends nothing for this long is closed with `IDLE_TIMEOUT`.
    pub idle_timeout: Duration,
    /// Allow client publishes on public channels (otherwise private/presence only).
    pub allow_public_publish: bool,
    /// The `Access-Control-Allow-Origin` for browsers; `None` disables CORS headers, `*` any.
    pub cors_origin: Option<String>,
    /// The largest WebSocket text frame read and answered; bigger ones get `frame_too_large`.
    /// Default [`frame_size_for`]`(limits.max_payload)`.
    pub max_frame_size: usize,
    /// The largest batch of `POST /publish`.
    pub max_batch: usize,
    /// The window `publishes_per_minute` counts over (60 s; shorter only for tests).
    pub rate_window: Duration,
    /// WebSocket read buffer per connection, in bytes.
    pub ws_read_buffer: usize,
    /// WebSocket write buffer per connection, in bytes.
    pub ws_write_buffer: usize,
    /// The most a WebSocket write buffer may grow to before writes fail, in bytes. It must
    /// hold the largest frame (a `subscribed` replay can carry a whole history), so the
    /// default is unlimited: memory is bounded by the send queue, whose frames are written
    /// in batches of at most 64 per flush.
    pub ws_max_write_buffer: usize,
    /// SSE comment heartbeat interval.
    pub sse_keep_alive: Duration,
    /// How long a closing connection may take to flush its close frame.
    pub close_timeout: Duration,
    /// How long a graceful shutdown waits for connections to close.
    pub shutdown_timeout: Duration,
    /// With Redis: how often a node refreshes its liveness key.
    pub node_heartbeat: Duration,
    /// With Redis: how long a node's liveness key lives; the presence members of a node
    /// whose key expired are removed by the others.
    pub node_ttl: Duration,
    /// Redis URL for the scale-out engine (`None`: in-memory, single node).
    pub redis_url: Option<String>,
    /// The clock for rate limits and history TTLs.
    pub clock: Clock,
    /// Bytes queued per connection and not yet written before it is closed as a slow
    /// consumer (4008). It should hold the largest `subscribed` replay
    /// (`history_size` × `max_payload`).
    pub send_queue_bytes: usize,
    /// `subscribe` requests per connection per `rate_window` (every request counts:
    /// re-subscribes and replays too); past it, `rate_limited`.
    pub subscribes_per_minute: u32,
    /// `presence_enter`/`presence_update` requests per connection per `rate_window`.
    pub presence_updates_per_minute: u32,
    /// Open TCP connections (WebSocket, SSE and HTTP); further clients wait in the listen
    /// backlog until one closes.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long an HTTP API request may take, body included (not the WebSocket or SSE
    /// streams once open); past it, 408.
    pub request_timeout: Duration,
    /// How long an SSE ticket (`POST /sse/tickets`) stays valid; it is single-use.
    pub sse_ticket_ttl: Duration,
    /// With Redis: how long the keys of a channel that was only ever read (never published
    /// to) live.
    pub idle_channel_ttl: Duration,
    /// The Pusher protocol mode's apps (`GET /app/{key}`, `/apps/{id}/…`); the first shares
    /// the native broker. Empty: one app derived from `secret` (id and key `relayport`).
    pub pusher_apps: Vec<super::pusher::PusherApp>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("secret", &"<redacted>")
            .field("limits", &self.limits)
            .field("history_size", &self.history_size)
            .field("history_ttl", &self.history_ttl)
            .field("heartbeat", &self.heartbeat)
            .field("allow_public_publish", &self.allow_public_publish)
            .field("cors_origin", &self.cors_origin)
            .field("max_frame_size", &self.max_frame_size)
            .field("send_queue_bytes", &self.send_queue_bytes)
            .field("subscribes_per_minute", &self.subscribes_per_minute)
            .field(
                "presence_updates_per_minute",
                &self.presence_updates_per_minute,
            )
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("pusher_apps", &self.pusher_apps)
            .finish_non_exhaustive()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            secret: String::new(),
            limits,
            history_size: 100,
            history_ttl: Duration::from_secs(120),
            heartbeat: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(75),
            allow_public_publish: false,
            cors_origin: None,
            max_frame_size: frame_size_for(limits.max_payload),
            max_batch: 100,
            rate_window: Duration::from_secs(60),
            ws_read_buffer: 1024,
            ws_write_buffer: 16 * 1024,
            ws_max_write_buffer: usize::MAX,
            sse_keep_alive: Duration::from_secs(15),
            close_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(10),
            node_heartbeat: Duration::from_secs(10),
            node_ttl: Duration::from_secs(30),
            redis_url: None,
            clock: Clock::system(),
            send_queue_bytes: super::broker::DEFAULT_SEND_QUEUE_BYTES,
            subscribes_per_minute: 120,
            presence_updates_per_minute: 60,
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            sse_ticket_ttl: Duration::from_secs(30),
            idle_channel_ttl: Duration::from_secs(600),
            pusher_apps: Vec::new(),
        }
    }
}

/// The default frame limit for a payload limit: one maximal payload as base64 (a binary
/// payload travels as base64 text, 4/3 of its size) plus 16 KiB for the frame around it.
pub fn frame_size_for(max_payload: usize) -> usize {
    max_payload
        .div_ceil(3)
        .saturating_mul(4)
        .saturating_add(16 * 1024)
}

//! # relayport-peer-supabase
//!
//! A behavioural Supabase Realtime server for tests (never for production): it does what the
//! Elixir server does on the wire, from `protocols/supabase.md` and the official sources, so
//! a client can be tested against rules that are enforced rather than replayed.
//!
//! - `GET /realtime/v1/websocket?apikey=..&vsn=1.0.0|2.0.0` (also `/socket/websocket`):
//!   vsn 1 JSON objects, vsn 2 JSON arrays plus binary broadcasts (kind 3 in, kind 4 out);
//!   the API key must be an HS256 JWT with `role` and `exp` (else HTTP 401 after the
//!   connect-error backoff).
//! - `phx_join` with `config` (`broadcast.self/ack`, `presence.key/enabled`, `private`,
//!   `postgres_changes`) and `access_token`; join errors come after the channel-error backoff
//!   with the server's `<Code>: <message>` reasons.
//! - Token expiry per channel on a **tokio** timer (see [`clock`]) (`system` "Token has expired N seconds
//!   ago" + `phx_close`), `access_token` pushes replacing a channel's token.
//! - A claims-based [`Policy`] standing in for RLS on private channels.
//! - Presence (`presence_state`, `presence_diff`), broadcast with self/ack, postgres_changes
//!   filters ("Subscribed to PostgreSQL"), heartbeat, `phx_leave`/`phx_close`, `phx_error`.
//! - REST broadcast (`POST /realtime/v1/api/broadcast`, single-event endpoint).
//! - A control API: [`PeerHandle`] in Rust, `/_peer/*` over HTTP for other languages.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use relayport_peer_supabase::{Policy, SupabasePeer};
//! let peer = SupabasePeer::builder()
//!     .secret("a-test-secret-of-at-least-32-bytes!!")
//!     .policy(Policy::claim_names_topic("channel"))
//!     .bind("127.0.0.1:0")
//!     .await?;
//! let url = peer.project_url(); // SUPABASE_URL
//! let anon = peer.anon_key(); // SUPABASE_ANON_KEY
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

/// The README's examples, compiled as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod clock;
pub mod frame;
mod hub;
pub mod jwt;
pub mod policy;
pub mod postgres;
mod rest;
mod socket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use frame::Vsn;
pub use policy::{Access, Action, Extension, Policy};
pub use postgres::Change;

use hub::Hub;

/// The server's settings.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The JWT secret (HS256).
    pub secret: Vec<u8>,
    /// The RLS stand-in for private channels.
    pub policy: Policy,
    /// `CHANNEL_ERROR_BACKOFF_MS`: the delay before a join error (5 s on the server).
    pub join_error_backoff: Duration,
    /// `CONNECT_ERROR_BACKOFF_MS`: the delay before a refused handshake (2 s).
    pub connect_error_backoff: Duration,
    /// Phoenix's idle timeout: a socket silent this long is closed (60 s; `None`: never).
    pub idle_timeout: Option<Duration>,
    /// The broadcast payload limit in bytes (the server's 3,000 KB default).
    pub max_payload: usize,
    /// Refuse public joins (`PrivateOnly`).
    pub private_only: bool,
}

/// The default JWT secret (the Supabase CLI's well-known local secret is this long too).
pub const DEFAULT_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            secret: DEFAULT_SECRET.as_bytes().to_vec(),
            policy: Policy::default(),
            join_error_backoff: Duration::from_secs(5),
            connect_error_backoff: Duration::from_secs(2),
            idle_timeout: Some(Duration::from_secs(60)),
            max_payload: 3_000_000,
            private_only: false,
        }
    }
}

/// Something the server did, for tests to wait on.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerEvent {
    /// A socket passed the handshake.
    Connected {
        /// The socket's id.
        socket: u64,
        /// Its serializer.
        vsn: Vsn,
    },
    /// A socket went away.
    Disconnected {
        /// The socket's id.
        socket: u64,
    },
    /// A channel joined.
    Joined {
        /// The socket's id.
        socket: u64,
        /// The channel name (without `realtime:`).
        name: String,
        /// `config.private`.
        private: bool,
    },
    /// A join was refused (the reply follows after the backoff).
    JoinRefused {
        /// The socket's id.
        socket: u64,
        /// The channel name.
        name: String,
        /// The error reason.
        reason: String,
    },
    /// The client left a channel.
    Left {
        /// The socket's id.
        socket: u64,
        /// The channel name.
        name: String,
    },
    /// An `access_token` push arrived.
    AccessToken {
        /// The socket's id.
        socket: u64,
        /// The channel name.
        name: String,
    },
    /// The server shut a channel down (`system` error + `phx_close`).
    ChannelClosed {
        /// The socket's id.
        socket: u64,
        /// The channel name.
        name: String,
        /// The `system` message.
        reason: String,
    },
    /// A channel got `phx_error` (control API).
    ChannelErrored {
        /// The socket's id.
        socket: u64,
        /// The channel name.
        name: String,
    },
    /// A frame could not be read (logged and dropped by the server; the socket stays).
    Malformed {
        /// The socket's id.
        socket: u64,
        /// Why.
        why: String,
    },
}

/// Counters of what the server did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sockets accepted.
    pub connections: u64,
    /// Channels joined.
    pub joins: u64,
    /// Joins refused.
    pub joins_refused: u64,
    /// Client broadcasts delivered.
    pub broadcasts: u64,
    /// REST broadcasts delivered.
    pub rest_broadcasts: u64,
    /// `access_token` pushes received.
    pub access_tokens: u64,
    /// Channels shut down by the server.
    pub channels_closed: u64,
    /// Writes the policy denied (dropped, as the server does).
    pub denied_writes: u64,
    /// Broadcasts over the payload limit.
    pub oversize: u64,
    /// Unreadable frames.
    pub malformed: u64,
    /// Messages for an old join_ref (ignored).
    pub stale: u64,
    /// Unknown events.
    pub unknown: u64,
}

/// Entry point: [`SupabasePeer::builder`].
pub struct SupabasePeer;

impl SupabasePeer {
    /// A builder with [`PeerConfig::default`].
    pub fn builder() -> PeerBuilder {
        PeerBuilder {
            cfg: PeerConfig::default(),
        }
    }
}

/// Configures and starts a peer.
#[derive(Debug, Clone)]
pub struct PeerBuilder {
    cfg: PeerConfig,
}

impl PeerBuilder {
    /// The JWT secret.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.cfg.secret = secret.as_ref().to_vec();
        self
    }

    /// The channel policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.cfg.policy = policy;
        self
    }

    /// The join-error backoff.
    pub fn join_error_backoff(mut self, d: Duration) -> Self {
        self.cfg.join_error_backoff = d;
        self
    }

    /// The handshake-error backoff.
    pub fn connect_error_backoff(mut self, d: Duration) -> Self {
        self.cfg.connect_error_backoff = d;
        self
    }

    /// The idle timeout (`None`: never).
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.cfg.idle_timeout = d;
        self
    }

    /// The payload limit in bytes.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.cfg.max_payload = bytes;
        self
    }

    /// Refuse public channels.
    pub fn private_only(mut self, on: bool) -> Self {
        self.cfg.private_only = on;
        self
    }

    /// Binds (loopback addresses only) and serves in a background task.
    pub async fn bind(self, addr: &str) -> std::io::Result<PeerHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the Supabase test peer binds to loopback only",
            ));
        }
        let hub = Hub::new(self.cfg);
        let app = router(hub.clone());
        // TCP_NODELAY: frames leave at once. With Nagle's algorithm a second small frame
        // waits for the peer's (delayed) ACK, which on a paused test clock is long enough for
        // tokio to jump time ahead to the next timer.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(PeerHandle {
            hub,
            addr: local,
            task,
        })
    }
}

fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/realtime/v1/websocket", get(socket::upgrade))
        .route("/socket/websocket", get(socket::upgrade))
        .route("/realtime/v1/api/broadcast", post(rest::batch))
        .route("/api/broadcast", post(rest::batch))
        .route(
            "/realtime/v1/api/broadcast/{topic}/events/{event}",
            post(rest::single),
        )
        .route("/api/broadcast/{topic}/events/{event}", post(rest::single))
        .route("/_peer/postgres", post(rest::control::postgres))
        .route("/_peer/fail", post(rest::control::fail))
        .route("/_peer/close", post(rest::control::close))
        .route("/_peer/drop", post(rest::control::drop_all))
        .route("/_peer/presence", get(rest::control::presence))
        .route("/_peer/stats", get(rest::control::stats))
        .with_state(hub)
}

/// A running peer and its control API. Dropping it stops the server.
pub struct PeerHandle {
    hub: Arc<Hub>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for PeerHandle {
    fn drop(&mut self) {
        self.task.abort();
        self.hub.drop_sockets();
    }
}

impl PeerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The project URL (`SUPABASE_URL`): `http://127.0.0.1:<port>`.
    pub fn project_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket endpoint before `/websocket`: `ws://127.0.0.1:<port>/realtime/v1`.
    pub fn endpoint(&self) -> String {
        format!("ws://{}/realtime/v1", self.addr)
    }

    /// Unix seconds now (the wall clock tokens are checked against, see [`clock`]).
    pub fn now(&self) -> u64 {
        clock::unix_now()
    }

    /// Signs `claims` as they are.
    pub fn sign(&self, claims: Value) -> String {
        let claims = match claims {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        jwt::sign(&claims, &self.hub.cfg.secret)
    }

    /// A token with `role`, `iat`/`exp` (`ttl` from now), `sub` and `extra` claims.
    pub fn token(&self, role: &str, sub: Option<&str>, ttl: Duration, extra: Value) -> String {
        let now = self.now();
        let mut claims = match extra {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        claims.insert("role".into(), json!(role));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + ttl.as_secs()));
        if let Some(sub) = sub {
            claims.insert("sub".into(), json!(sub));
        }
        jwt::sign(&claims, &self.hub.cfg.secret)
    }

    /// The project's anon key (`role: anon`, valid for ten years).
    pub fn anon_key(&self) -> String {
        self.token(
            "anon",
            None,
            Duration::from_secs(10 * 365 * 86_400),
            json!({}),
        )
    }

    /// The service-role key (bypasses the policy).
    pub fn service_role_key(&self) -> String {
        self.token(
            "service_role",
            None,
            Duration::from_secs(10 * 365 * 86_400),
            json!({}),
        )
    }

    /// The JWT secret (for an authorizer that signs channel tokens).
    pub fn secret(&self) -> &[u8] {
        &self.hub.cfg.secret
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.hub.policy()
    }

    /// What the server does from now on.
    pub fn events(&self) -> broadcast::Receiver<PeerEvent> {
        self.hub.subscribe_events()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.hub.stats()
    }

    /// Open sockets.
    pub fn connections(&self) -> usize {
        self.hub.connections()
    }

    /// How many sockets have joined channel `name` (public or private).
    pub fn joined(&self, name: &str, private: bool) -> usize {
        self.hub.joined(name, private)
    }

    /// Drops every socket without a close frame (the client sees 1006); the server stays up
    /// on the same address. Returns how many.
    pub fn drop_sockets(&self) -> usize {
        self.hub.drop_sockets()
    }

    /// A channel crash: `phx_error` to every channel named `name`; returns how many.
    pub fn fail_channel(&self, name: &str) -> usize {
        self.hub.fail_channel(name, None)
    }

    /// A channel crash of channel `name` on socket `socket` only (ids from [`PeerEvent`]);
    /// returns how many (0 or 1).
    pub fn fail_channel_on(&self, socket: u64, name: &str) -> usize {
        self.hub.fail_channel(name, Some(socket))
    }

    /// Drops one socket without a close frame; `false` if it is not open.
    pub fn drop_socket(&self, socket: u64) -> bool {
        self.hub.drop_socket(socket)
    }

    /// A server-side shutdown (`system` error `message` + `phx_close`) of every channel
    /// named `name`; returns how many.
    pub fn close_channel(&self, name: &str, message: &str) -> usize {
        self.hub.close_channel(name, message)
    }

    /// Refuses the next `count` joins of `name` with `reason`.
    pub fn fail_next_joins(&self, name: &str, reason: &str, count: usize) {
        self.hub.fail_next_joins(name, reason, count)
    }

    /// Delivers a row change to every channel whose filters match; returns how many channels.
    pub fn inject_change(&self, change: &Change) -> usize {
        self.hub.inject_change(change)
    }

    /// A server-originated broadcast (as `realtime.send` from the database would make) to
    /// every subscriber of `name`; returns whether it was delivered (always, for the service
    /// role that sends it).
    pub fn broadcast(&self, name: &str, private: bool, event: &str, payload: Value) -> bool {
        let service = Map::from_iter([("role".to_owned(), json!("service_role"))]);
        let b = frame::Broadcast {
            event: event.to_owned(),
            payload: frame::UserPayload::Json(payload),
            meta: None,
            binary_frame: false,
        };
        self.hub.rest_broadcast(name, private, &service, b)
    }

    /// The presence state of channel `name` (`presence_state`'s shape).
    pub fn presence(&self, name: &str, private: bool) -> Value {
        self.hub.presence_of(name, private)
    }
}

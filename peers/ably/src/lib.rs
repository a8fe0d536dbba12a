//! A behavioural Ably test server for relayport's tests: it enforces what Ably enforces
//! (key and token auth with capabilities and client ids, msgSerial/ACK/NACK, presence with
//! SYNC and a leave grace, resume within `connectionStateTtl` with channelSerial replay,
//! in-band AUTH, token expiry, REST publish/history/presence/requestToken), on loopback only.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use relayport_peer_ably::{AblyPeer, PeerConfig, keys};
//! let peer = AblyPeer::start(PeerConfig::default()).await?;
//! println!("ws://{} with key {}", peer.addr(), keys::FULL);
//! # Ok(()) }
//! ```
//!
//! See `README.md` for the rules it enforces and the official-SDK proof.

pub mod capability;
pub mod config;
mod control;
pub mod error;
pub mod keys;
mod realtime;
mod rest;
mod state;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use capability::Capability;
pub use config::{KeyConfig, PeerConfig};
pub use error::AblyError;
pub use state::{ConnectionInfo, Member};
pub use token::{Token, TokenSpec};

use state::Shared;

/// A running peer on 127.0.0.1; stopped when dropped.
#[derive(Debug)]
pub struct AblyPeer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(realtime::upgrade))
        .route("/time", get(rest::time))
        .route(
            "/channels/{name}/messages",
            post(rest::publish).get(rest::history),
        )
        .route("/channels/{name}/presence", get(rest::presence))
        .route("/keys/{key}/requestToken", post(rest::request_token))
        .route("/_peer/connections", get(control::connections))
        .route(
            "/_peer/connections/{id}/drop",
            post(control::drop_connection),
        )
        .route(
            "/_peer/connections/{id}/expire",
            post(control::expire_connection),
        )
        .route("/_peer/connections/{id}/auth", post(control::request_auth))
        .route("/_peer/tokens/expire", post(control::expire_tokens))
        .route("/_peer/clock/advance", post(control::advance_clock))
        .route("/_peer/channels/{name}/members", get(control::members))
        .route("/_peer/channels/{name}/publish", post(control::publish))
        .with_state(shared)
}

impl AblyPeer {
    /// Binds 127.0.0.1:`cfg.port` (0: a free port) and serves.
    pub async fn start(cfg: PeerConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", cfg.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Shared::new(cfg);
        let app = router(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &PeerConfig {
        &self.shared.cfg
    }

    /// Every connection the peer holds (live or resumable).
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.shared.connections()
    }

    /// The connections of `client_id`.
    pub fn connections_of(&self, client_id: &str) -> Vec<ConnectionInfo> {
        self.connections()
            .into_iter()
            .filter(|c| c.client_id.as_deref() == Some(client_id))
            .collect()
    }

    /// Drops a connection's socket without a close frame. It stays resumable for
    /// `connectionStateTtl`; its members leave after the leave grace. `false`: not live.
    pub fn drop_connection(&self, id: &str) -> bool {
        self.shared.drop_link(id)
    }

    /// Drops every live socket (as [`drop_connection`](Self::drop_connection)); returns how many.
    pub fn drop_all(&self) -> usize {
        self.connections()
            .into_iter()
            .filter(|c| c.live && self.drop_connection(&c.id))
            .count()
    }

    /// Forgets a connection now (as if `connectionStateTtl` had passed): its members leave
    /// at once and a resume gets a new connection id with 80008.
    pub fn expire_connection(&self, id: &str) -> bool {
        self.shared.expire_connection(id)
    }

    /// Moves the peer's clock forward (token expiry, TokenRequest timestamps).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.advance(by);
    }

    /// Expires every token now: live links on a token get DISCONNECTED 40142.
    pub fn expire_tokens(&self) {
        self.shared.expire_tokens();
    }

    /// Loses `channel`'s continuity: no channelSerial issued so far can be continued from, so
    /// the next re-attach is not RESUMED and the client must catch up from history (what
    /// Ably does after a long outage, 90003).
    pub fn break_continuity(&self, channel: &str) {
        self.shared.break_continuity(channel);
    }

    /// Sends AUTH to a connection (the server asking for a new token).
    pub fn request_auth(&self, id: &str) -> bool {
        self.shared.request_auth(id)
    }

    /// The presence members of `channel`.
    pub fn members(&self, channel: &str) -> Vec<Member> {
        self.shared.members(channel)
    }

    /// The messages stored on `channel`, oldest first.
    pub fn history(&self, channel: &str) -> Vec<Value> {
        self.shared
            .history(channel)
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    }

    /// Publishes as the server (like a REST publish with a full key).
    pub fn publish(&self, channel: &str, name: &str, data: Value) -> Result<(), AblyError> {
        let msg = serde_json::json!({"name": name, "data": data});
        self.shared
            .publish_rest(channel, (None, true), vec![msg])
            .map(|_| ())
    }

    /// Issues a token from the key named `key_name` directly (no TokenRequest).
    pub fn issue_token(&self, key_name: &str, spec: TokenSpec) -> Result<Token, AblyError> {
        let key = self
            .shared
            .key(key_name)
            .cloned()
            .ok_or_else(|| AblyError::new(40400, 404, format!("no key `{key_name}`")))?;
        let now = self.shared.now_ms();
        self.shared
            .lock()
            .tokens
            .issue(&self.shared.cfg, &key, spec, now)
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.drop_all();
        if let Some(mut t) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut t)
                .await
                .is_err()
        {
            // Not drained in time: stop it, so the port is free when this returns.
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for AblyPeer {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.drop_all();
    }
}

//! The client side (feature `client`): [`SelfHostedProvider`] (the [`RealtimeProvider`] over
//! the native protocol, WebSocket with an SSE + HTTP fallback), [`SelfHostedPublisher`] (backend
//! publishing over `POST /publish`) and [`HttpAuthorizer`] (asks an app's auth endpoint, for any
//! provider). `CLIENT.md` in the crate describes the behaviour and the limits of the fallback.
//!
//! [`RealtimeProvider`]: relayport_core::RealtimeProvider

pub mod errors;
pub mod http_auth;
pub mod provider;
pub mod publisher;
pub mod sse;
mod ws;

use std::future::Future;
use std::time::Duration;

use relayport_core::{RealtimeError, Result};

pub use http_auth::{AuthBody, HttpAuthorizer};
pub use provider::SelfHostedProvider;
pub use publisher::SelfHostedPublisher;

/// The transport a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The native protocol over one WebSocket: everything is available.
    WebSocket,
    /// The fallback: Server-Sent Events to receive (one stream per channel) and `POST /publish`
    /// to publish. Public channels only, no presence, publishing only with a publish token;
    /// missed messages are recovered through `Last-Event-ID`.
    Sse,
}

/// Runs `fut`, bounded by `limit` when one is set. Inside a `RealtimeClient` the runtime bounds
/// every provider call (its `connect_timeout`, `request_timeout` and heartbeat timeout), so the
/// provider sets none of its own unless one is asked for (a provider used directly).
pub(crate) async fn bounded<T>(
    what: &str,
    limit: Option<Duration>,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match limit {
        None => fut.await,
        Some(limit) => tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(RealtimeError::timeout(what, limit))),
    }
}

/// Which transports a [`SelfHostedProvider`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TransportPreference {
    /// WebSocket; SSE when the WebSocket upgrade is refused with a 4xx status.
    #[default]
    Auto,
    /// WebSocket only: a refused upgrade is a connection error.
    WebSocketOnly,
    /// SSE only (for networks known to block WebSockets).
    SseOnly,
}

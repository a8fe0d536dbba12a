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

//! Socket.IO v4 servers for relayport: a [`RealtimeProvider`] over Engine.IO v4 (WebSocket) and
//! Socket.IO v5 packets, so that a Rust client reaches the Node backend most apps already run
//! and gets every policy of the core (reconnect, resubscribe, offline queue, heartbeat).
//!
//! - [`SocketIoProvider`]: the client (WebSocket; HTTP long-polling when the upgrade is
//!   refused). Channels follow a convention of events with acks
//!   ([`convention`]), implemented on the server by the Node adapter shipped in this crate's
//!   repository (`adapter/`, `attachRealtime(io, { secret })`). Raw
//!   [`SocketIoProvider::emit`], [`SocketIoProvider::emit_with_ack`] and
//!   [`SocketIoProvider::on`] stay available for events outside the convention.
//! - [`SocketIoAuthorizer`]: signs private and presence subscriptions (the same HMAC-SHA256 as
//!   the other relayport providers); the adapter verifies them.
//! - [`SocketIoPublisher`]: publishes from a backend through the adapter's HTTP endpoint.
//! - [`packet`]: the codec, written for this crate (see the README for why not
//!   `rust_socketio`).
//!
//! [`RealtimeProvider`]: relayport_core::RealtimeProvider
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod config;
mod connection;
pub mod convention;
pub mod packet;
mod polling;
mod provider;
mod publisher;
#[cfg(feature = "testing")]
pub mod testing;

pub use auth::SocketIoAuthorizer;
pub use config::{DEFAULT_PATH, DEFAULT_REQUEST_TIMEOUT, SocketIoConfig, Transports};
pub use connection::{AckResponder, IncomingEvent, Transport};
pub use convention::EventNames;
pub use packet::Arg;
pub use provider::SocketIoProvider;
pub use publisher::{DEFAULT_HTTP_TIMEOUT, DEFAULT_PUBLISH_PATH, SocketIoPublisher};

/// The provider's name, as [`relayport_core::RealtimeProvider::name`] reports it.
pub const PROVIDER_NAME: &str = "socketio";

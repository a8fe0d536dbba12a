//! The self-hosted provider: our own realtime server and its client.
//!
//! - [`protocol`]: the native wire protocol, shared by both sides.
//! - `server` (feature `server`): the realtime server; see `SERVER.md` and `PROTOCOL.md`.
#![warn(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod protocol;
#[cfg(feature = "server")]
pub mod server;

/// The provider's short name, as `RealtimeProvider::name` reports it.
pub const PROVIDER_NAME: &str = "selfhosted";

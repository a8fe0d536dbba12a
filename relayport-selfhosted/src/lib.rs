//! # relayport-selfhosted
//!
//! The self-hosted provider of `relayport`: our own realtime server and its client.
//!
//! - [`protocol`]: the native wire protocol, shared by both sides (see `PROTOCOL.md`);
//! - [`SelfHostedAuthorizer`]: the backend's signer for private and presence subscriptions
//!   (always available);
//! - `client` (feature `client`, on by default): the `RealtimeProvider`, the HTTP publisher and
//!   an authorizer that asks your auth endpoint;
//! - `server` (feature `server`, off by default): the realtime server and the
//!   `relayport-server` binary (axum, Redis scale-out); see `SERVER.md`.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod authorizer;
#[cfg(feature = "client")]
pub mod client;
pub mod protocol;
#[cfg(feature = "server")]
pub mod server;

pub use authorizer::SelfHostedAuthorizer;

/// The README's examples, compiled as doc tests.
#[cfg(all(doctest, feature = "client"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The provider's short name, as `RealtimeProvider::name` reports it.
pub const PROVIDER_NAME: &str = "selfhosted";

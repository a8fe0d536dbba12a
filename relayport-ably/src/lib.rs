//! # relayport-ably
//!
//! The Ably provider for the `relayport` workspace: a complete Ably realtime client (protocol
//! v6, JSON) implementing [`relayport_core::RealtimeProvider`], the REST API as a
//! [`relayport_core::Publisher`] ([`rest::AblyRest`]), and signed TokenRequests as a
//! [`relayport_core::ChannelAuthorizer`] ([`token::AblyAuthorizer`]).
//!
//! Behaviour follows ably-js 2.28.0 frame for frame (see the crate README and the vectors in
//! `tests/vectors/ably.json`); reconnect timing, queuing and resubscription are the core's.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
pub mod channels;
pub mod client;
pub mod config;
pub mod connection;
pub mod encoding;
pub mod errors;
pub mod presence;
pub mod protocol;
pub mod rest;
#[cfg(test)]
mod testdata;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub mod token;

pub use client::{AblyMessage, AblyRealtime, PublishHandle, RecoveryKey};
pub use config::{AblyConfig, ChannelMode, ChannelOptions, Credentials};
pub use rest::{AblyRest, RestAuth, RestConfig};
pub use token::{AblyAuthorizer, ApiKey, ConnectionCapability, TokenParams, TokenRequest};

/// The provider's short name, as `RealtimeProvider::name` reports it.
pub const PROVIDER_NAME: &str = "ably";

/// The default host for REST and realtime (`REC1`).
pub const DEFAULT_HOST: &str = "main.realtime.ably.net";

/// This library's part of the agent string (`relayport-ably/<version>`).
pub const AGENT: &str = concat!("relayport-ably/", env!("CARGO_PKG_VERSION"));

/// The agent this library announces (`agent=` / `Ably-Agent`), like ably-js's
/// `ably-js/2.28.0 nodejs/20.20.2`: the library, the Rust compiler it was built with and the
/// OS, e.g. `relayport-ably/0.1.0 rust/1.95.0 linux`.
pub fn agent() -> String {
    format!(
        "{AGENT} rust/{} {}",
        env!("RELAYPORT_ABLY_RUSTC"),
        std::env::consts::OS
    )
}

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

/// The agent this library announces (`agent=` / `Ably-Agent`).
pub const AGENT: &str = concat!("realtime-rs-ably/", env!("CARGO_PKG_VERSION"));

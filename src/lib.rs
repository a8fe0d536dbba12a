//! # relayport
//!
//! One realtime API over Pusher, Ably, Supabase Realtime and a self-hosted server. This facade
//! re-exports [`relayport_core`] and, behind one cargo feature each (all on by default), the
//! provider crates.
//!
//! It also turns configuration into a working provider, whichever it names:
//!
//! - [`config::ProviderConfig`]: the provider and its settings, from a TOML/JSON file or from
//!   the environment variables each provider's users know (`REALTIME_PROVIDER`,
//!   `PUSHER_KEY`, `ABLY_API_KEY`, `SUPABASE_URL`, `REALTIME_URL`, …);
//! - [`client()`], [`publisher()`], [`authorizer()`]: a [`RealtimeClient`], a [`Publisher`] and
//!   a [`ChannelAuthorizer`] for it (a client only ever sees the public settings);
//! - [`auth_endpoint`] (feature `auth-endpoint`): the axum channel auth endpoint.
//!
//! The `relayport` command-line client is its own crate, `relayport-cli`.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use relayport_core::*;

/// A scripted in-memory provider for testing code written against [`RealtimeClient`]
/// (feature `testing`; see [`relayport_core::testing`]).
#[cfg(feature = "testing")]
pub use relayport_core::testing;

#[cfg(feature = "auth-endpoint")]
pub mod auth_endpoint;
pub mod config;
mod factory;

pub use config::ProviderConfig;
pub use factory::{
    authorizer, client, client_builder, client_publisher, provider, publisher,
    trusted_client_builder, trusted_provider,
};

/// The Pusher Channels provider (feature `pusher`).
#[cfg(feature = "pusher")]
pub use relayport_pusher as pusher;

/// The Ably provider (feature `ably`).
#[cfg(feature = "ably")]
pub use relayport_ably as ably;

/// The Supabase Realtime provider (feature `supabase`).
#[cfg(feature = "supabase")]
pub use relayport_supabase as supabase;

/// The self-hosted server and its client (feature `selfhosted`).
#[cfg(feature = "selfhosted")]
pub use relayport_selfhosted as selfhosted;

/// The Socket.IO provider (feature `socketio`).
#[cfg(feature = "socketio")]
pub use relayport_socketio as socketio;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

//! # relayport-supabase
//!
//! The Supabase Realtime provider for the `relayport` workspace: a Phoenix-channels client that
//! speaks vsn 2.0.0 (JSON arrays and binary broadcast frames, the default) and vsn 1.0.0 (JSON
//! objects) byte for byte as `@supabase/realtime-js` does, a REST broadcast [`Publisher`]
//! (`POST /realtime/v1/api/broadcast`) and a [`ChannelAuthorizer`] that mints short-lived HS256
//! JWTs for RLS-guarded private channels.
//!
//! Modules: [`frame`] (text and binary codec), [`topic`] (channel names ↔ topics), [`join`]
//! (the `phx_join` payload and reply), [`presence`] (presence folding), [`postgres`] (postgres
//! changes), [`errors`] (the error table), [`dispatch`] (what incoming frames mean),
//! [`client`] (the [`RealtimeProvider`]), [`rest`] (REST broadcast) and [`jwt`] (HS256 token
//! minting and verification).
//!
//! [`Publisher`]: relayport_core::Publisher
//! [`ChannelAuthorizer`]: relayport_core::ChannelAuthorizer
//! [`RealtimeProvider`]: relayport_core::RealtimeProvider
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client;
pub mod dispatch;
pub mod errors;
pub mod frame;
pub mod join;
pub mod jwt;
pub mod postgres;
pub mod presence;
pub mod push;
pub mod rejoin;
pub mod rest;
pub mod system;
pub mod topic;

/// The provider's short name, as `RealtimeProvider::name` reports it.
pub const PROVIDER_NAME: &str = "supabase";

pub use client::{AccessTokenHandle, SupabaseConfig, SupabaseProvider};
pub use frame::ProtocolVersion;
pub use join::{BroadcastOptions, ChannelOptions, Replay};
pub use jwt::SupabaseAuthorizer;
pub use postgres::{PostgresChangesFilter, PostgresEvent};
pub use rest::{EventBody, Persist, SupabasePublisher};

/// The README's examples, compiled as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

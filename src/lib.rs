//! # realtime
//!
//! One realtime API over Pusher, Ably, Supabase Realtime and a self-hosted server. This facade
//! re-exports [`realtime_core`] and, behind one cargo feature each (all on by default), the
//! provider crates.
#![warn(missing_docs)]

pub use realtime_core::*;

/// The Pusher Channels provider (feature `pusher`).
#[cfg(feature = "pusher")]
pub use provider_pusher as pusher;

/// The Ably provider (feature `ably`).
#[cfg(feature = "ably")]
pub use provider_ably as ably;

/// The Supabase Realtime provider (feature `supabase`).
#[cfg(feature = "supabase")]
pub use provider_supabase as supabase;

/// The self-hosted server and its client (feature `selfhosted`).
#[cfg(feature = "selfhosted")]
pub use provider_selfhosted as selfhosted;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

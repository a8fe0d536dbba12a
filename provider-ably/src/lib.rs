//! The `ably` provider for the `realtime` workspace.
//!
//! This crate is a placeholder: its protocol implementation is tracked by its own issue.
#![warn(missing_docs)]

/// The provider's short name, as `RealtimeProvider::name` reports it.
pub const PROVIDER_NAME: &str = "ably";

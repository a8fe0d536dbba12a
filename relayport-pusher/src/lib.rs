//! # relayport-pusher
//!
//! Pusher Channels for the `relayport` workspace, byte-compatible with the official SDKs and
//! real Pusher-protocol servers (Pusher, sockudo, soketi, Laravel Reverb):
//!
//! - [`PusherProvider`]: the protocol 7 realtime client (a [`relayport_core::RealtimeProvider`]);
//! - [`PusherRest`]: the HTTP API (trigger, batch, channel queries, terminate, send-to-user),
//!   also the core's [`relayport_core::Publisher`];
//! - [`PusherAuthorizer`]: private, presence and encrypted channel authorization and user
//!   sign-in (the core's [`relayport_core::ChannelAuthorizer`]);
//! - [`EndpointUserAuthenticator`]: user sign-in through the application's endpoint, as
//!   pusher-js's `userAuthentication`; the signed-in user's events arrive on [`USER_CHANNEL`];
//! - [`webhooks::WebhookVerifier`]: webhook signature checks;
//! - [`encryption`]: end-to-end encrypted channels (NaCl secretbox);
//! - [`names`]: the channel-name mapping (`private:room:1` ↔ `private-room-1`);
//! - [`errors`]: Pusher error and close codes → `RealtimeError` and the reconnect decision.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
pub mod client;
pub mod client_events;
pub mod config;
pub mod encryption;
pub mod errors;
pub mod names;
pub mod protocol;
pub mod rest;
pub mod signing;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhooks;

pub use auth::{Credentials, EndpointUserAuthenticator, PusherAuthorizer, UserAuthenticator};
pub use client::{PusherProvider, USER_CHANNEL, UserEvent};
pub use config::PusherConfig;
pub use rest::{BatchEvent, PusherRest, RestRequest, TriggerOptions};
pub use webhooks::{Webhook, WebhookEvent, WebhookVerifier};

/// The provider's short name, as `RealtimeProvider::name` reports it.
pub const PROVIDER_NAME: &str = "pusher";

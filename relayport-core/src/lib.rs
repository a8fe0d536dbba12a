//! # relayport-core
//!
//! The provider-neutral heart of the `relayport` workspace:
//!
//! - [`RealtimeProvider`]: the trait each provider crate implements (protocol only);
//! - [`Publisher`] and [`ChannelAuthorizer`]: the server-side traits (publish over HTTP, sign
//!   private and presence subscriptions);
//! - the shared types: [`Channel`], [`Message`], [`PresenceMember`], [`ConnectionState`],
//!   [`ClientEvent`], [`RealtimeError`], typed events ([`EventType`]);
//! - [`RealtimeClient`]: the client runtime every provider gets for free (jittered exponential
//!   backoff reconnect, a 100-message FIFO offline queue, automatic resubscribe with history
//!   recovery, per-channel throttling, heartbeats, presence and typing helpers).
//!
//! Providers speak protocols; the core owns policy. See the workspace README for the
//! architecture.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
pub mod channel;
pub mod client;
pub mod error;
pub mod history;
pub mod message;
pub mod options;
pub mod payload;
pub mod policy;
pub mod presence;
pub mod provider;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(feature = "transport")]
pub mod transport;
#[cfg(feature = "typescript")]
#[cfg_attr(docsrs, doc(cfg(feature = "typescript")))]
pub mod typescript;

pub use auth::{AuthRequest, ChannelAuth, ChannelAuthorizer, PresenceUser, Publisher};
pub use channel::{Channel, ChannelKind, IntoChannel};
pub use client::{
    ClientBuilder, ClientConfig, ClientEvents, DEFAULT_MAX_PAYLOAD, PresenceStream, RealtimeClient,
    StateStream, Subscription, TypedSubscription,
};
pub use error::{ErrorKind, RealtimeError, Result};
pub use history::{History, HistoryDirection, HistoryQuery, MessagePage, page_log};
pub use message::{EventType, Message, OutboundMessage, Position, Typed};
pub use options::SubscriptionOptions;
pub use payload::Payload;
pub use policy::backoff::Backoff;
pub use policy::throttle::RateLimit;
pub use policy::typing::TypingPolicy;
pub use presence::{PresenceAction, PresenceChange, PresenceEvent, PresenceMember};
pub use provider::{
    Capabilities, CloseReason, Echo, EventSink, HistoryPage, ProviderEvent, RealtimeProvider,
    Reconnect, Recovery, Session, SubscribeOptions, Subscribed,
};
pub use state::{ClientEvent, ConnectionState};

/// The README's examples, compiled and run as doc tests.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Re-exported so provider crates implement the trait with the same macro version.
pub use async_trait::async_trait;
/// The byte buffer a binary [`Payload`] holds (re-exported from the `bytes` crate).
pub use bytes::Bytes;

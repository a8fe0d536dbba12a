//! # relayport-firebase
//!
//! Firebase Realtime Database through relayport's [`RealtimeProvider`] trait, over the
//! database's documented REST API with streaming (Server-Sent Events).
//!
//! - A channel is the node `{root}/{encoded channel name}` ([`key::encode_key`]); its messages
//!   live under `messages/{push id}`, its presence records under `presence/{client id}`
//!   ([`records`]).
//! - Subscribe opens one stream per channel (`GET … .json`, `Accept: text/event-stream`).
//! - Publish is `POST …/messages.json`: the server's push id orders the message and is its
//!   position ([`position`]); the timestamp is the server's (`{".sv": "timestamp"}`).
//! - History is a key query (`orderBy="$key"`, `startAt`), which is how the core replays
//!   what a channel missed while its stream was down.
//! - Presence is a convention (REST has no `onDisconnect`): records refreshed on every
//!   heartbeat, members older than the stale age pruned.
//! - Credentials come from a [`TokenSource`], asked again before they expire.
//! - Access to private and presence channels is the database's rules: [`RulesAuthorizer`]
//!   approves locally; [`CustomTokenAuthorizer`] mints Firebase custom tokens (RS256) on a
//!   backend.
//!
//! ```no_run
//! use relayport_core::RealtimeClient;
//! use relayport_firebase::{FirebaseConfig, FirebaseProvider};
//! # async fn run() -> relayport_core::Result<()> {
//! let cfg = FirebaseConfig::new("https://my-db.firebaseio.com")?
//!     .with_root("realtime")?
//!     .with_token(std::env::var("FIREBASE_AUTH_TOKEN").unwrap_or_default());
//! let client = RealtimeClient::builder(FirebaseProvider::new(cfg)?).build();
//! let mut sub = client.subscribe("chat").await?;
//! # let _ = sub.recv().await;
//! # Ok(()) }
//! ```
//!
//! [`RealtimeProvider`]: relayport_core::RealtimeProvider
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authorizer;
mod config;
pub mod custom_token;
pub mod event;
pub mod key;
pub mod position;
mod provider;
mod publisher;
pub mod records;
mod rest;
mod state;
mod stream;
mod token;

pub use authorizer::RulesAuthorizer;
pub use config::{
    DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_PRESENCE_STALE_AFTER, DEFAULT_REFRESH_MARGIN, DEFAULT_ROOT,
    FirebaseConfig,
};
pub use custom_token::{CustomTokenAuthorizer, ServiceAccount};
pub use provider::{FirebaseProvider, HISTORY_MAX_PAGES, HISTORY_PAGE};
pub use publisher::FirebasePublisher;
pub use token::{AccessToken, StaticToken, TokenKind, TokenSource};

/// The README's example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

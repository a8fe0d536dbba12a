//! `relayport-bench`: the benchmark harness for the self-hosted server and the client runtime.
//!
//! Every scenario runs its peers in the same run on the same machine and reports ratios:
//!
//! - **the limit** ([`baseline`]): a bare tokio-tungstenite broadcast server, no protocol;
//! - **our server** (`relayport-server`, or the same server in-process);
//! - **sockudo**, a Pusher-protocol server, driven through the Pusher protocol.
//!
//! The load generator ([`wsclient`]) is a lean hand-rolled WebSocket client (handshake,
//! unmasked-frame parser) that speaks the native protocol, the Pusher protocol and the
//! baseline's raw frames. Latency is publish → receive: the publisher writes a timestamp into
//! each payload ([`payload`]), the receiver subtracts it from its own clock (same process).
//!
//! Scenarios live in [`scenarios`]; results are written as JSON and Markdown by [`report`] and
//! plotted by [`plot`]. Nothing here asserts a time: the smoke test (`tests/smoke.rs`) checks
//! only that each scenario runs and delivers exactly once.
#![warn(missing_docs)]

pub mod baseline;
pub mod payload;
pub mod peer;
pub mod plot;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod sys;
pub mod wsclient;

pub use peer::{Launch, PeerKind};

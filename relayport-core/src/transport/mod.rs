//! The link layer every provider runs on (feature `transport`).
//!
//! Each provider keeps only its codec and its [`Dispatcher`]; the machinery underneath is here,
//! once:
//!
//! - [`LinkConfig`]: the injectable TLS configuration (`Arc<rustls::ClientConfig>`, ring passed
//!   explicitly, webpki roots by default, the system store with feature `native-roots`, a
//!   private CA with [`tls::add_pem_certificates`]) and the injectable [`reqwest::Client`] built
//!   from it. Nothing installs a process-global crypto provider.
//! - [`open`] → [`Handshake`] → [`Link`]: one WebSocket, one writer task, one reader task
//!   feeding the dispatcher, the peer's close frame parsed into a [`PeerClose`], and
//!   [`Link::close`] with a grace period for the goodbye.
//! - [`Pending`]: request/reply correlation whose [`Waiter`] removes itself when dropped.
//! - [`lock`]: the one poison-tolerant lock helper.
//! - [`sse`]: the bounded, linear-time `text/event-stream` parser for SSE transports.
//!
//! No timeout lives here beyond the close grace: the core's runtime owns connect, request and
//! heartbeat timeouts.

mod close;
mod config;
mod link;
mod lock;
mod pending;
pub mod sse;
pub mod tls;

#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

pub use close::PeerClose;
pub use config::{LinkConfig, http_client};
pub use link::{
    CLOSE_REPLY_GRACE, DEFAULT_CLOSE_GRACE, Dispatcher, Flow, Frame, Handshake, Link, LinkIo,
    LinkSender, OpenError, Received, open, open_over, redact_url,
};
pub use lock::lock;
pub use pending::{Pending, Unanswered, Waiter};

//! The client runtime's settings; every number is a default that the builder can change.

use std::time::Duration;

use crate::policy::backoff::Backoff;
use crate::policy::throttle::RateLimit;
use crate::policy::typing::TypingPolicy;

/// The payload limit of a provider that announces none: 64 KiB ([`Capabilities::default`]).
///
/// [`Capabilities::default`]: crate::Capabilities
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;

/// Settings of a [`RealtimeClient`](crate::RealtimeClient).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Reconnect timing and the give-up limit.
    pub backoff: Backoff,
    /// Connect on the first subscribe, publish or presence call (default `true`).
    pub lazy_connect: bool,
    /// The longest one connection attempt may take (default 20 s).
    pub connect_timeout: Duration,
    /// The longest a subscribe, publish, presence or history call may take (default 15 s);
    /// past it the link is treated as broken and reconnected.
    pub request_timeout: Duration,
    /// Capacity of the offline queue (default 100).
    pub queue_capacity: usize,
    /// Publishes per channel (default 10 per second).
    pub publish_rate: RateLimit,
    /// Typing-indicator timing.
    pub typing: TypingPolicy,
    /// Heartbeat interval when the provider does not name one (default 30 s).
    pub heartbeat_interval: Duration,
    /// How long a heartbeat may go unanswered before the link is reconnected (default 10 s).
    pub heartbeat_timeout: Duration,
    /// A round trip above this fires `ConnectionDegraded` (default 2000 ms).
    pub degraded_threshold: Duration,
    /// An application cap on the payload size in bytes. `None` (the default): the provider's
    /// announced limit ([`Capabilities::max_payload`](crate::Capabilities::max_payload), then a
    /// smaller one its server announces in the `Session`). `Some(n)`: the smaller of `n` and
    /// the provider's limit.
    pub max_payload: Option<usize>,
    /// Messages buffered per subscription handle before it counts as lagging (default 1024).
    pub subscriber_buffer: usize,
    /// This client's user id for presence; the connection id when `None`.
    pub client_id: Option<String>,
    /// Seed for the reconnect jitter; random when `None`. Set it to make a schedule repeatable.
    pub jitter_seed: Option<u64>,
    /// Whether this client receives its own publishes on channels it subscribes (default
    /// `true`, on every provider: the runtime drops them or loops them back where the server
    /// does otherwise; see [`Echo`](crate::Echo)).
    pub echo: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            lazy_connect: true,
            connect_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(15),
            queue_capacity: 100,
            publish_rate: RateLimit::per_second(10),
            typing: TypingPolicy::default(),
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(10),
            degraded_threshold: Duration::from_millis(2000),
            max_payload: None,
            subscriber_buffer: 1024,
            client_id: None,
            jitter_seed: None,
            echo: true,
        }
    }
}

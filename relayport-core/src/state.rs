//! Connection states and the events a client reports.

use std::time::Duration;

use crate::channel::Channel;
use crate::error::RealtimeError;

/// The state of a client's connection.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Built, never connected.
    Initialized,
    /// A connection attempt is under way.
    Connecting,
    /// Connected; subscriptions are live.
    Connected,
    /// The link is down; the next attempt is scheduled.
    Reconnecting {
        /// The number of this upcoming attempt since the last successful connection (1-based).
        attempt: u32,
        /// How long until it starts.
        retry_in: Duration,
    },
    /// Disconnected by the application; `connect()` brings it back.
    Disconnected,
    /// Gave up after the configured number of failed attempts; `connect()` starts afresh.
    PermanentlyDisconnected,
    /// A fatal error (auth refused, app disabled, protocol mismatch); no retry.
    Failed(RealtimeError),
    /// Closed for good; the client can no longer be used.
    Closed,
}

impl ConnectionState {
    /// Whether the link is up.
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected)
    }

    /// Whether the client stopped trying by itself (failed, gave up, disconnected or closed).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Disconnected | Self::PermanentlyDisconnected | Self::Failed(_) | Self::Closed
        )
    }
}

/// Events a client reports besides messages, through [`RealtimeClient::events`](crate::RealtimeClient::events).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The connection state changed.
    StateChanged(ConnectionState),
    /// The link went down (before the reconnect, or the failure, its state change announces):
    /// the close or error code and the server's text, as the provider reported them.
    LinkLost {
        /// The provider's close or error code, if any.
        code: Option<i64>,
        /// The reason, as the server or the provider put it.
        message: String,
    },
    /// A heartbeat round trip took longer than the degraded threshold.
    ConnectionDegraded {
        /// The measured round trip.
        rtt: Duration,
    },
    /// Publishes were evicted from the full offline queue (oldest first).
    MessagesDropped {
        /// The channel of the evicted publish.
        channel: Channel,
        /// How many were evicted this time.
        count: u64,
        /// How many have been evicted since the client was built.
        total: u64,
    },
    /// Messages may have been missed on this channel and could not be recovered: reload the
    /// application's state from its source of truth.
    SyncRequired {
        /// The channel.
        channel: Channel,
    },
    /// A subscription was restored after a reconnect.
    Resubscribed {
        /// The channel.
        channel: Channel,
        /// Whether the messages missed while disconnected were replayed.
        recovered: bool,
    },
    /// A subscription (or presence membership) could not be restored, or was refused; its
    /// streams end.
    SubscriptionFailed {
        /// The channel.
        channel: Channel,
        /// Why.
        error: RealtimeError,
    },
    /// A subscriber did not keep up: its buffer was full and messages were not delivered to it.
    SubscriberLagged {
        /// The channel.
        channel: Channel,
        /// How many messages this subscriber has missed so far.
        missed: u64,
    },
    /// This reader of [`ClientEvents`](crate::client::ClientEvents) fell behind: `missed`
    /// events were not delivered to it (the others' readers are unaffected).
    EventsLagged {
        /// How many events this reader missed.
        missed: u64,
    },
    /// An error the provider reported outside any call (an undecryptable payload, say).
    Error {
        /// The channel concerned, if any.
        channel: Option<Channel>,
        /// The error.
        error: RealtimeError,
    },
}

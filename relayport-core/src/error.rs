//! The one error type of the library, [`RealtimeError`], and its stable [`ErrorKind`].

use std::time::Duration;

/// Every failure a caller can act on.
///
/// Errors carry strings rather than sources so that one error can be handed to several waiters
/// (`Clone`). Match on [`RealtimeError::kind`] for a stable classification, and use
/// [`RealtimeError::is_retryable`] to decide whether trying again can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RealtimeError {
    /// The transport could not be opened or was lost.
    #[error("connection error: {0}")]
    Connection(String),
    /// An operation did not complete in time.
    #[error("timed out after {after:?}: {what}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long it was waited for.
        after: Duration,
    },
    /// The credentials were refused (bad key, expired token, wrong signature).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The credentials are valid but do not grant access to this channel.
    #[error("access to channel `{channel}` refused: {reason}")]
    Forbidden {
        /// The channel that was refused (provider-neutral name).
        channel: String,
        /// Why, as the provider or authorizer said it.
        reason: String,
    },
    /// A channel name that is malformed or that the provider cannot carry.
    #[error("invalid channel `{name}`: {reason}")]
    InvalidChannel {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A payload over the size limit, refused before sending.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The payload's serialized size in bytes.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The provider or a local limit refused the operation for its rate.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// A frame or response that does not follow the protocol, or a protocol mismatch.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An error reported by the provider with its own code.
    #[error("{provider} error {code}: {message}")]
    Provider {
        /// The provider's name (`pusher`, `ably`, …).
        provider: &'static str,
        /// The provider's numeric code.
        code: i64,
        /// The provider's message.
        message: String,
        /// Whether the provider says trying again can succeed.
        retryable: bool,
    },
    /// The provider does not offer this capability.
    #[error("{0} is not supported by this provider")]
    Unsupported(String),
    /// A missing or malformed setting.
    #[error("configuration error: {0}")]
    Config(String),
    /// A queued publish was evicted from the full offline queue by a newer one.
    #[error("publish evicted from the full offline queue (capacity {capacity})")]
    Evicted {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The client was closed (or disconnected by the application) before the operation completed.
    #[error("client closed: {0}")]
    Closed(String),
}

/// A stable, matchable classification of [`RealtimeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`RealtimeError::Connection`].
    Connection,
    /// See [`RealtimeError::Timeout`].
    Timeout,
    /// See [`RealtimeError::Unauthorized`].
    Unauthorized,
    /// See [`RealtimeError::Forbidden`].
    Forbidden,
    /// See [`RealtimeError::InvalidChannel`].
    InvalidChannel,
    /// See [`RealtimeError::PayloadTooLarge`].
    PayloadTooLarge,
    /// See [`RealtimeError::RateLimited`].
    RateLimited,
    /// See [`RealtimeError::Protocol`].
    Protocol,
    /// See [`RealtimeError::Provider`].
    Provider,
    /// See [`RealtimeError::Unsupported`].
    Unsupported,
    /// See [`RealtimeError::Config`].
    Config,
    /// See [`RealtimeError::Evicted`].
    Evicted,
    /// See [`RealtimeError::Closed`].
    Closed,
}

impl RealtimeError {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connection(_) => ErrorKind::Connection,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Unauthorized(_) => ErrorKind::Unauthorized,
            Self::Forbidden { .. } => ErrorKind::Forbidden,
            Self::InvalidChannel { .. } => ErrorKind::InvalidChannel,
            Self::PayloadTooLarge { .. } => ErrorKind::PayloadTooLarge,
            Self::RateLimited(_) => ErrorKind::RateLimited,
            Self::Protocol(_) => ErrorKind::Protocol,
            Self::Provider { .. } => ErrorKind::Provider,
            Self::Unsupported(_) => ErrorKind::Unsupported,
            Self::Config(_) => ErrorKind::Config,
            Self::Evicted { .. } => ErrorKind::Evicted,
            Self::Closed(_) => ErrorKind::Closed,
        }
    }

    /// Whether trying again (after a reconnect or a wait) can succeed.
    ///
    /// Connection losses, timeouts and rate limits are retryable; so is a provider error the
    /// provider marks retryable. Authorization failures, invalid input, protocol mismatches,
    /// missing capabilities and configuration errors are not: retrying them would fail the same
    /// way.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connection(_) | Self::Timeout { .. } | Self::RateLimited(_) => true,
            Self::Provider { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Shorthand for [`RealtimeError::InvalidChannel`].
    pub fn invalid_channel(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidChannel {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`RealtimeError::Timeout`].
    pub fn timeout(what: impl Into<String>, after: Duration) -> Self {
        Self::Timeout {
            what: what.into(),
            after,
        }
    }
}

/// The result type used throughout the library.
pub type Result<T, E = RealtimeError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        let retryable = [
            RealtimeError::Connection("reset".into()),
            RealtimeError::timeout("pong", Duration::from_secs(1)),
            RealtimeError::RateLimited("slow down".into()),
            RealtimeError::Provider {
                provider: "x",
                code: 1,
                message: "m".into(),
                retryable: true,
            },
        ];
        for e in &retryable {
            assert!(e.is_retryable(), "{e} should be retryable");
        }
        let fatal = [
            RealtimeError::Unauthorized("bad key".into()),
            RealtimeError::Forbidden {
                channel: "private:a".into(),
                reason: "no".into(),
            },
            RealtimeError::invalid_channel("", "empty"),
            RealtimeError::PayloadTooLarge { size: 2, limit: 1 },
            RealtimeError::Protocol("mismatch".into()),
            RealtimeError::Provider {
                provider: "x",
                code: 4001,
                message: "app disabled".into(),
                retryable: false,
            },
            RealtimeError::Unsupported("history".into()),
            RealtimeError::Config("PUSHER_KEY missing".into()),
            RealtimeError::Evicted { capacity: 100 },
            RealtimeError::Closed("bye".into()),
        ];
        for e in &fatal {
            assert!(!e.is_retryable(), "{e} should not be retryable");
        }
    }

    #[test]
    fn kinds_are_stable() {
        assert_eq!(
            RealtimeError::PayloadTooLarge { size: 2, limit: 1 }.kind(),
            ErrorKind::PayloadTooLarge
        );
        assert_eq!(
            RealtimeError::invalid_channel("a b", "space").kind(),
            ErrorKind::InvalidChannel
        );
        assert_eq!(RealtimeError::Closed("x".into()).kind(), ErrorKind::Closed);
        assert_eq!(
            RealtimeError::PayloadTooLarge {
                size: 65537,
                limit: 65536
            }
            .to_string(),
            "payload of 65537 bytes exceeds the limit of 65536 bytes"
        );
    }
}

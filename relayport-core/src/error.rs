//! The one error type of the library, [`RealtimeError`], and its stable [`ErrorKind`].
//!
//! [`ErrorKind`] is derived from [`RealtimeError`] by the `errors!` macro below (one variant per
//! kind, same names), so the two can never drift apart.

use std::sync::Arc;
use std::time::Duration;

/// The underlying cause of a [`RealtimeError::Provider`] (a decode failure, an HTTP client
/// error), shared so that the error stays `Clone`. [`std::error::Error::source`] reaches it.
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl ErrorSource {
    /// Wraps a cause.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The cause.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ErrorSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for ErrorSource {
    /// Two causes are equal when they are the same or read the same.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

/// Declares [`RealtimeError`] and derives [`ErrorKind`] and [`RealtimeError::kind`] from its
/// variants.
macro_rules! errors {
    // The enum is emitted token for token (so `thiserror` sees its types as written); its
    // variant names are collected into `ErrorKind`.
    (
        $(#[$meta:meta])*
        pub enum RealtimeError { $($body:tt)* }
    ) => {
        $(#[$meta])*
        pub enum RealtimeError { $($body)* }
        errors!(@kinds [] $($body)*);
    };
    (@kinds [$($done:ident)*]
        $(#[$vmeta:meta])* $variant:ident $(($($tuple:tt)*))? $({$($fields:tt)*})? , $($rest:tt)*
    ) => {
        errors!(@kinds [$($done)* $variant] $($rest)*);
    };
    (@kinds [$($done:ident)*]
        $(#[$vmeta:meta])* $variant:ident $(($($tuple:tt)*))? $({$($fields:tt)*})?
    ) => {
        errors!(@kinds [$($done)* $variant]);
    };
    (@kinds [$($variant:ident)*]) => {
        /// A stable, matchable classification of [`RealtimeError`]: one kind per variant, with
        /// the same name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $(
                #[doc = concat!("See [`RealtimeError::", stringify!($variant), "`].")]
                $variant,
            )*
        }

        impl ErrorKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant),*];
        }

        impl RealtimeError {
            /// The stable kind of this error.
            pub fn kind(&self) -> ErrorKind {
                match self {
                    $( Self::$variant { .. } => ErrorKind::$variant, )*
                }
            }
        }
    };
}

errors! {
/// Every failure a caller can act on.
///
/// Errors are `Clone` so that one error can be handed to several waiters; a provider error's
/// cause is shared ([`ErrorSource`]). Match on [`RealtimeError::kind`] for a stable
/// classification, and use [`RealtimeError::is_retryable`] to decide whether trying again can
/// help.
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
    /// An error reported by the provider with its own numeric code. Build it with
    /// [`RealtimeError::provider`] and attach a cause with [`RealtimeError::with_source`].
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
        /// What caused it, if anything below the provider's protocol did.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The provider does not offer this capability. The text names what was asked (and, after
    /// a semicolon, what to do instead), so that the message reads as one sentence.
    #[error("not supported by this provider: {0}")]
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
}

impl RealtimeError {
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

    /// A [`RealtimeError::Provider`] without a cause.
    pub fn provider(
        provider: &'static str,
        code: i64,
        message: impl Into<String>,
        retryable: bool,
    ) -> Self {
        Self::Provider {
            provider,
            code,
            message: message.into(),
            retryable,
            source: None,
        }
    }

    /// Attaches `cause` to a [`RealtimeError::Provider`] (reachable through
    /// [`std::error::Error::source`]); other variants are returned unchanged.
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let Self::Provider { source, .. } = &mut self {
            *source = Some(ErrorSource::new(cause));
        }
        self
    }

    /// The provider's numeric code, for a [`RealtimeError::Provider`].
    pub fn provider_code(&self) -> Option<i64> {
        match self {
            Self::Provider { code, .. } => Some(*code),
            _ => None,
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
            RealtimeError::provider("x", 1, "m", true),
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
            RealtimeError::provider("x", 4001, "app disabled", false),
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

    #[test]
    fn every_variant_has_its_own_kind() {
        let samples = [
            RealtimeError::Connection("c".into()),
            RealtimeError::timeout("t", Duration::from_secs(1)),
            RealtimeError::Unauthorized("u".into()),
            RealtimeError::Forbidden {
                channel: "c".into(),
                reason: "r".into(),
            },
            RealtimeError::invalid_channel("n", "r"),
            RealtimeError::PayloadTooLarge { size: 2, limit: 1 },
            RealtimeError::RateLimited("r".into()),
            RealtimeError::Protocol("p".into()),
            RealtimeError::provider("x", 1, "m", false),
            RealtimeError::Unsupported("u".into()),
            RealtimeError::Config("c".into()),
            RealtimeError::Evicted { capacity: 1 },
            RealtimeError::Closed("c".into()),
        ];
        let kinds: Vec<ErrorKind> = samples.iter().map(RealtimeError::kind).collect();
        assert_eq!(kinds, ErrorKind::ALL);
        assert_eq!(
            format!("{:?}", ErrorKind::ALL),
            "[Connection, Timeout, Unauthorized, Forbidden, InvalidChannel, PayloadTooLarge, \
             RateLimited, Protocol, Provider, Unsupported, Config, Evicted, Closed]"
        );
    }

    #[test]
    fn a_provider_error_keeps_its_code_and_its_source() {
        use std::error::Error as _;
        let cause = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let cause_text = cause.to_string();
        let error = RealtimeError::provider("ably", 40013, "Data type is unsupported", false)
            .with_source(cause);
        assert_eq!(error.provider_code(), Some(40013));
        assert!(matches!(error, RealtimeError::Provider { code: 40013, .. }));
        assert_eq!(
            error.to_string(),
            "ably error 40013: Data type is unsupported"
        );
        let source = error.source().expect("the cause is kept");
        assert_eq!(source.to_string(), cause_text);
        // Clones share the cause and stay equal.
        assert_eq!(error.clone(), error);
        assert!(
            RealtimeError::provider("ably", 1, "m", false)
                .source()
                .is_none()
        );
        // Other variants have no code and ignore a cause.
        let other = RealtimeError::Protocol("p".into()).with_source(std::fmt::Error);
        assert_eq!(other.provider_code(), None);
        assert!(other.source().is_none());
    }

    #[test]
    fn unsupported_reads_as_one_sentence() {
        assert_eq!(
            RealtimeError::Unsupported("presence".into()).to_string(),
            "not supported by this provider: presence"
        );
    }
}

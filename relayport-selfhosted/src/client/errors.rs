//! How the server's error codes and close codes become the core's errors and close reasons.
//!
//! Two tables, each one `match`: [`error_for_code`] for the stable codes of `error` frames and
//! HTTP error bodies ([`crate::protocol::code`]), and [`close_reason`] for WebSocket close codes
//! ([`crate::protocol::close`]). `tests/client_errors.rs` checks every row.

use relayport_core::{CloseReason, RealtimeError};

use crate::PROVIDER_NAME;
use crate::protocol::{close, code};

/// What the client knew when the server refused a request, so that the error can say it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CodeContext<'a> {
    /// The channel the request was about, if any (the frame's own `channel` wins).
    pub channel: Option<&'a str>,
    /// The size of the refused payload, for `payload_too_large`.
    pub payload_size: Option<usize>,
    /// The payload limit the server announced, for `payload_too_large`.
    pub limit: Option<usize>,
}

/// The numeric code carried by [`RealtimeError::Provider`] for a server code that has no more
/// specific kind (`too_many_subscriptions`), or for a code this client does not know.
pub fn provider_code(code: &str) -> i64 {
    match code {
        code::BATCH_TOO_LARGE => 4013,
        code::NOT_FOUND => 4004,
        code::CONFLICT => 4009,
        code::TOO_MANY_SUBSCRIPTIONS => 4029,
        code::UNAVAILABLE => 5003,
        _ => 0,
    }
}

/// Maps a server error `code` (with its human-readable `message`) to a [`RealtimeError`].
///
/// | code | error |
/// |---|---|
/// | `malformed`, `unknown_type`, `frame_too_large`, `unsupported_version`, `not_subscribed` | `Protocol` |
/// | `invalid_channel` | `InvalidChannel` |
/// | `unauthorized` | `Unauthorized` |
/// | `forbidden` | `Forbidden` |
/// | `payload_too_large` | `PayloadTooLarge` |
/// | `rate_limited` | `RateLimited` |
/// | `too_many_subscriptions` | `Provider` (code 4029, not retryable) |
/// | `batch_too_large` | `Provider` (code 4013, not retryable) |
/// | `not_found` | `Provider` (code 4004, not retryable) |
/// | `conflict` | `Provider` (code 4009, not retryable) |
/// | `unavailable` | `Provider` (code 5003, **retryable**) |
/// | anything else | `Provider` (code 0, not retryable) |
pub fn error_for_code(
    error_code: &str,
    message: &str,
    channel: Option<&str>,
    ctx: CodeContext<'_>,
) -> RealtimeError {
    let channel = channel.or(ctx.channel).unwrap_or_default().to_owned();
    match error_code {
        code::MALFORMED
        | code::UNKNOWN_TYPE
        | code::FRAME_TOO_LARGE
        | code::UNSUPPORTED_VERSION
        | code::NOT_SUBSCRIBED => RealtimeError::Protocol(format!("{error_code}: {message}")),
        code::INVALID_CHANNEL => RealtimeError::invalid_channel(channel, message),
        code::UNAUTHORIZED => RealtimeError::Unauthorized(message.to_owned()),
        code::FORBIDDEN => RealtimeError::Forbidden {
            channel,
            reason: message.to_owned(),
        },
        code::PAYLOAD_TOO_LARGE => RealtimeError::PayloadTooLarge {
            size: ctx.payload_size.unwrap_or(0),
            limit: ctx.limit.unwrap_or(0),
        },
        code::RATE_LIMITED => RealtimeError::RateLimited(message.to_owned()),
        other => RealtimeError::Provider {
            provider: PROVIDER_NAME,
            code: provider_code(other),
            message: format!("{other}: {message}"),
            retryable: other == code::UNAVAILABLE,
            source: None,
        },
    }
}

/// Maps how the WebSocket closed to what the core should do.
///
/// `code` is the close frame's code, or `None` when the connection dropped without one (a
/// reset TCP connection, a crashed server): that is always retried with backoff.
///
/// | close code | reconnect |
/// |---|---|
/// | 1012 service restart | at once |
/// | 4000 unsupported version | never (fatal `Protocol` error) |
/// | 4008 slow consumer | with backoff (missed messages are recovered through history) |
/// | 4009 idle timeout | with backoff |
/// | none, 1000, 1001, 1006, 1011, any other | with backoff |
pub fn close_reason(code: Option<u16>, reason: &str) -> CloseReason {
    let described = |what: &str| {
        if reason.is_empty() {
            what.to_owned()
        } else {
            format!("{what}: {reason}")
        }
    };
    let numeric = code.map(i64::from);
    match code {
        Some(close::SERVICE_RESTART) => {
            CloseReason::retry_now(numeric, described("the server is restarting"))
        }
        Some(close::UNSUPPORTED_VERSION) => CloseReason::fatal(
            numeric,
            RealtimeError::Protocol(described("the server does not speak protocol version 1")),
        ),
        Some(close::SLOW_CONSUMER) => CloseReason::retry(
            numeric,
            described("disconnected as a slow consumer (send queue full)"),
        ),
        Some(close::IDLE_TIMEOUT) => {
            CloseReason::retry(numeric, described("disconnected after being idle too long"))
        }
        Some(other) => CloseReason::retry(numeric, described(&format!("closed with code {other}"))),
        None => CloseReason::retry(None, described("connection lost")),
    }
}

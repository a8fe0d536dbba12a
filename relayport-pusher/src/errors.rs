//! Pusher error and close codes mapped to [`RealtimeError`] kinds and to the core's reconnect
//! decision, in one table each.
//!
//! | code | meaning | [`RealtimeError`] | close action |
//! |---|---|---|---|
//! | `null` | subscription auth refused (Pusher sends no code) | `Unauthorized` | — |
//! | 4000 | app requires TLS / invalid message | `Provider` (not retryable) | fatal |
//! | 4001 | app does not exist | `Config` | fatal |
//! | 4003 | app disabled | `Unauthorized` | fatal |
//! | 4004 | over connection quota | `Provider` (not retryable) | fatal |
//! | 4005 | path not found | `Config` | fatal |
//! | 4006–4008 | bad version / unsupported or missing protocol | `Protocol` | fatal |
//! | 4009 | unauthorized (bad signature, terminated by the app) | `Unauthorized` | fatal |
//! | other 4000–4099 | do not reconnect unchanged | `Provider` (not retryable) | fatal |
//! | 4100–4199 | over capacity: reconnect after a backoff | `Provider` (retryable) | retry with backoff |
//! | 4200–4299 | generic / pong missing / inactivity: reconnect at once | `Provider` (retryable) | retry at once |
//! | 4301 | client event rejected (rate limit) | `RateLimited` | fatal |
//! | other ≥ 4300 | other errors | `Provider` (not retryable) | fatal |
//! | 1000–3999, none | WebSocket-level closes | `Connection` | retry with backoff |
//!
//! A link that drops without a close frame is decided by the last connection-level
//! `pusher:error` (4000–4299) when nothing followed it, by the same table, with the server's
//! text as the reason (see [`crate::client`]).

use relayport_core::{CloseReason, RealtimeError};

use crate::PROVIDER_NAME;

fn provider(code: i64, message: &str, retryable: bool) -> RealtimeError {
    RealtimeError::Provider {
        provider: PROVIDER_NAME,
        code,
        message: message.to_owned(),
        retryable,
        source: None,
    }
}

/// The [`RealtimeError`] for a Pusher error code (from `pusher:error`, or a close code).
///
/// ```
/// use relayport_pusher::errors::error_for_code;
/// use relayport_core::ErrorKind;
/// assert_eq!(error_for_code(Some(4009), "bad auth").kind(), ErrorKind::Unauthorized);
/// assert!(error_for_code(Some(4100), "over capacity").is_retryable());
/// ```
pub fn error_for_code(code: Option<i64>, message: &str) -> RealtimeError {
    let Some(code) = code else {
        return RealtimeError::Unauthorized(message.to_owned());
    };
    match code {
        4001 | 4005 => RealtimeError::Config(format!("pusher error {code}: {message}")),
        4003 | 4009 => RealtimeError::Unauthorized(format!("pusher error {code}: {message}")),
        4006..=4008 => RealtimeError::Protocol(format!("pusher error {code}: {message}")),
        4000..=4099 => provider(code, message, false),
        4100..=4299 => provider(code, message, true),
        4301 => RealtimeError::RateLimited(format!("pusher error {code}: {message}")),
        4300..=4999 => provider(code, message, false),
        1000..=3999 => RealtimeError::Connection(format!("closed with code {code}: {message}")),
        _ => provider(code, message, false),
    }
}

/// What the core should do after the server closed the WebSocket with `code` (`None`: the link
/// dropped without a close frame).
///
/// 4000–4099 and ≥ 4300 are fatal, 4100–4199 retry after a backoff, 4200–4299 retry at once,
/// anything else retries with backoff.
///
/// ```
/// use relayport_pusher::errors::close_reason;
/// use relayport_core::Reconnect;
/// assert_eq!(close_reason(Some(4200), "").reconnect, Reconnect::Immediately);
/// assert_eq!(close_reason(Some(1006), "").reconnect, Reconnect::Backoff);
/// assert!(matches!(close_reason(Some(4009), "").reconnect, Reconnect::Never(_)));
/// ```
pub fn close_reason(code: Option<i64>, reason: &str) -> CloseReason {
    let message = if reason.is_empty() {
        match code {
            Some(c) => format!("closed with code {c}"),
            None => "connection lost".to_owned(),
        }
    } else {
        reason.to_owned()
    };
    match code {
        Some(c @ (4000..=4099 | 4300..)) => {
            CloseReason::fatal(Some(c), error_for_code(Some(c), &message))
        }
        Some(c @ 4100..=4199) => CloseReason::retry(Some(c), message),
        Some(c @ 4200..=4299) => CloseReason::retry_now(Some(c), message),
        other => CloseReason::retry(other, message),
    }
}

/// The [`RealtimeError`] for a failed HTTP API call: a non-2xx status, or a 2xx body with an
/// `error` key (`status` is then the HTTP status as received).
pub fn http_error(status: u16, body: &str) -> RealtimeError {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(500).collect());
    let body_code = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_i64()));
    // A 2xx status with an error body (soketi behind newer uWS): trust the body's code.
    let effective = match (status, body_code) {
        (200..=299, Some(c)) => c,
        _ => i64::from(status),
    };
    match effective {
        401 => RealtimeError::Unauthorized(format!("pusher HTTP 401: {message}")),
        403 => RealtimeError::Unauthorized(format!("pusher HTTP 403: {message}")),
        404 => RealtimeError::Config(format!("pusher HTTP 404: {message}")),
        413 => RealtimeError::Provider {
            provider: PROVIDER_NAME,
            code: 413,
            message: format!("payload too large: {message}"),
            retryable: false,
            source: None,
        },
        429 => RealtimeError::RateLimited(format!("pusher HTTP 429: {message}")),
        500..=599 => provider(effective, &message, true),
        c => provider(c, &message, false),
    }
}

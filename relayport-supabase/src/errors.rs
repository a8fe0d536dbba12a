//! Supabase errors → [`RealtimeError`] kinds, in one table.
//!
//! Realtime reports failures as text: a join error `reason` (`"<Code>: <message>"`), a `system`
//! message before the server closes a channel, a bare-string ack error, an HTTP status at the
//! WebSocket handshake, and an HTTP status from the REST API. [`TABLE`] classifies the codes
//! and messages; [`classify`] looks a text up in it.

use relayport_core::{Channel, RealtimeError};

use crate::PROVIDER_NAME;

/// What an error amounts to, before it is given its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad, expired or malformed JWT → [`RealtimeError::Unauthorized`].
    Unauthorized,
    /// Valid credentials without access to the channel → [`RealtimeError::Forbidden`].
    Forbidden,
    /// A rate or count limit → [`RealtimeError::RateLimited`] (retryable).
    RateLimited,
    /// A message over the size limit → [`RealtimeError::PayloadTooLarge`].
    PayloadTooLarge,
    /// A topic the server does not route → [`RealtimeError::InvalidChannel`].
    InvalidChannel,
    /// A setup problem (unknown tenant) → [`RealtimeError::Config`].
    Config,
    /// A transient server condition → retryable [`RealtimeError::Provider`].
    Transient,
    /// Anything else → non-retryable [`RealtimeError::Provider`].
    Fatal,
}

/// The table: a code or message fragment (matched at the start of the text, or anywhere for
/// entries of system messages) and its class. The first match wins.
pub const TABLE: &[(&str, ErrorClass)] = &[
    // join error reasons, "<Code>: <message>"
    ("Unauthorized", ErrorClass::Forbidden),
    ("PrivateOnly", ErrorClass::Forbidden),
    ("InvalidJWTToken", ErrorClass::Unauthorized),
    ("MalformedJWT", ErrorClass::Unauthorized),
    ("JwtSignatureError", ErrorClass::Unauthorized),
    ("ChannelRateLimitReached", ErrorClass::RateLimited),
    ("ClientJoinRateLimitReached", ErrorClass::RateLimited),
    ("ConnectionRateLimitReached", ErrorClass::RateLimited),
    ("TopicNameRequired", ErrorClass::InvalidChannel),
    ("unmatched topic", ErrorClass::InvalidChannel),
    ("TenantNotFound", ErrorClass::Config),
    ("RealtimeDisabledForTenant", ErrorClass::Fatal),
    ("UnableToReplayMessages", ErrorClass::Fatal),
    ("RealtimeRestarting", ErrorClass::Transient),
    ("InitializingProjectConnection", ErrorClass::Transient),
    ("IncreaseConnectionPool", ErrorClass::Transient),
    ("DatabaseLackOfConnections", ErrorClass::Transient),
    ("UnknownErrorOnChannel", ErrorClass::Transient),
    // system messages and bare ack errors
    ("Too many messages per second", ErrorClass::RateLimited),
    (
        "Too many presence messages per second",
        ErrorClass::RateLimited,
    ),
    (
        "Client presence rate limit exceeded",
        ErrorClass::RateLimited,
    ),
    ("Too many channels", ErrorClass::RateLimited),
    ("Too many joins per second", ErrorClass::RateLimited),
    ("Too many connected users", ErrorClass::RateLimited),
    ("Track message size exceeded", ErrorClass::PayloadTooLarge),
    ("payload_size_exceeded", ErrorClass::PayloadTooLarge),
    ("Payload size exceeds", ErrorClass::PayloadTooLarge),
    ("Token has expired", ErrorClass::Unauthorized),
    ("You no longer have permission", ErrorClass::Forbidden),
    (
        "Replication connection was not established in time",
        ErrorClass::Transient,
    ),
];

/// Classifies an error text with [`TABLE`]: a code prefix (`"<Code>: …"`) wins, then any
/// entry the text contains; unknown texts are [`ErrorClass::Fatal`].
pub fn classify(text: &str) -> ErrorClass {
    TABLE
        .iter()
        .find(|(needle, _)| text.starts_with(needle))
        .or_else(|| TABLE.iter().find(|(needle, _)| text.contains(needle)))
        .map_or(ErrorClass::Fatal, |(_, class)| *class)
}

/// Context for turning a class into an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorContext<'a> {
    /// The channel concerned, if any.
    pub channel: Option<&'a Channel>,
    /// The size of the payload that was sent, if known.
    pub size: Option<usize>,
    /// The payload limit in force.
    pub limit: usize,
    /// An HTTP status, if the error came with one.
    pub status: Option<u16>,
}

/// The [`RealtimeError`] for a server error text.
///
/// ```
/// use relayport_supabase::errors::{to_error, ErrorContext};
/// use relayport_core::ErrorKind;
/// let e = to_error("ChannelRateLimitReached: Too many channels", ErrorContext::default());
/// assert_eq!(e.kind(), ErrorKind::RateLimited);
/// ```
pub fn to_error(text: &str, ctx: ErrorContext<'_>) -> RealtimeError {
    let channel = || ctx.channel.map(ToString::to_string).unwrap_or_default();
    let code = i64::from(ctx.status.unwrap_or(0));
    match classify(text) {
        ErrorClass::Unauthorized => RealtimeError::Unauthorized(text.to_owned()),
        ErrorClass::Forbidden => RealtimeError::Forbidden {
            channel: channel(),
            reason: text.to_owned(),
        },
        ErrorClass::RateLimited => RealtimeError::RateLimited(text.to_owned()),
        ErrorClass::PayloadTooLarge => RealtimeError::PayloadTooLarge {
            size: ctx.size.unwrap_or(ctx.limit.saturating_add(1)),
            limit: ctx.limit,
        },
        ErrorClass::InvalidChannel => RealtimeError::invalid_channel(channel(), text),
        ErrorClass::Config => RealtimeError::Config(text.to_owned()),
        ErrorClass::Transient => RealtimeError::Provider {
            provider: PROVIDER_NAME,
            code,
            message: text.to_owned(),
            retryable: true,
            source: None,
        },
        ErrorClass::Fatal => RealtimeError::Provider {
            provider: PROVIDER_NAME,
            code,
            message: text.to_owned(),
            retryable: false,
            source: None,
        },
    }
}

/// The error for a refused WebSocket handshake (status and the `{"error": …}` body).
///
/// realtime-js cannot see these (a browser only sees close 1006) and retries everything; a
/// Rust client can, so a refused key is fatal here instead of being retried forever.
pub fn handshake_error(status: u16, body: &str) -> RealtimeError {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    let text = format!("handshake refused with HTTP {status}: {message}");
    match status {
        401 => RealtimeError::Unauthorized(text),
        403 => RealtimeError::Provider {
            provider: PROVIDER_NAME,
            code: 403,
            message: text,
            retryable: false,
            source: None,
        },
        404 => RealtimeError::Config(format!(
            "{text}: no Realtime WebSocket at this address; check SUPABASE_URL \
             (https://<project-ref>.supabase.co) or SUPABASE_REALTIME_URL (a self-hosted \
             server: ws://host:4000/socket)"
        )),
        429 => RealtimeError::RateLimited(text),
        _ => RealtimeError::Connection(text),
    }
}

/// The error for a REST response that is not a success.
pub fn rest_error(status: u16, body: &str, size: Option<usize>, limit: usize) -> RealtimeError {
    let text = format!("HTTP {status}: {}", body.trim());
    match status {
        401 => RealtimeError::Unauthorized(text),
        403 => RealtimeError::Forbidden {
            channel: String::new(),
            reason: text,
        },
        413 => RealtimeError::PayloadTooLarge {
            size: size.unwrap_or(limit.saturating_add(1)),
            limit,
        },
        422 if classify(body) == ErrorClass::PayloadTooLarge => RealtimeError::PayloadTooLarge {
            size: size.unwrap_or(limit.saturating_add(1)),
            limit,
        },
        422 => RealtimeError::Protocol(text),
        429 => RealtimeError::RateLimited(text),
        s if s >= 500 => RealtimeError::Connection(text),
        s => RealtimeError::Provider {
            provider: PROVIDER_NAME,
            code: i64::from(s),
            message: text,
            retryable: false,
            source: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::ErrorKind;

    fn kind_of(class: ErrorClass) -> ErrorKind {
        match class {
            ErrorClass::Unauthorized => ErrorKind::Unauthorized,
            ErrorClass::Forbidden => ErrorKind::Forbidden,
            ErrorClass::RateLimited => ErrorKind::RateLimited,
            ErrorClass::PayloadTooLarge => ErrorKind::PayloadTooLarge,
            ErrorClass::InvalidChannel => ErrorKind::InvalidChannel,
            ErrorClass::Config => ErrorKind::Config,
            ErrorClass::Transient | ErrorClass::Fatal => ErrorKind::Provider,
        }
    }

    #[test]
    fn every_table_entry_maps_to_its_kind() {
        for (needle, class) in TABLE {
            let text = format!("{needle}: some detail");
            assert_eq!(classify(&text), *class, "{text}");
            let err = to_error(&text, ErrorContext::default());
            assert_eq!(err.kind(), kind_of(*class), "{text}");
            let retryable = matches!(class, ErrorClass::RateLimited | ErrorClass::Transient);
            assert_eq!(err.is_retryable(), retryable, "{text}");
        }
        assert_eq!(classify("something new"), ErrorClass::Fatal);
        // The code prefix decides, whatever the message mentions.
        assert_eq!(
            classify("RealtimeRestarting: Unauthorized clients will be dropped"),
            ErrorClass::Transient
        );
    }

    #[test]
    fn documented_texts() {
        let ch: Channel = "private:secret".parse().unwrap();
        let ctx = ErrorContext {
            channel: Some(&ch),
            ..Default::default()
        };
        let e = to_error(
            "Unauthorized: You do not have permissions to read from this Channel topic: secret",
            ctx,
        );
        assert!(
            matches!(&e, RealtimeError::Forbidden { channel, .. } if channel == "private:secret")
        );
        assert_eq!(
            to_error("InvalidJWTToken: Token has expired 12 seconds ago", ctx).kind(),
            ErrorKind::Unauthorized
        );
        let e = to_error(
            "payload_size_exceeded",
            ErrorContext {
                size: Some(10),
                limit: 5,
                ..ctx
            },
        );
        assert_eq!(e, RealtimeError::PayloadTooLarge { size: 10, limit: 5 });
        assert_eq!(
            handshake_error(401, r#"{"error":"Token expired"}"#).kind(),
            ErrorKind::Unauthorized
        );
        assert!(handshake_error(401, "{}").to_string().contains("401"));
        assert_eq!(handshake_error(404, "").kind(), ErrorKind::Config);
        assert_eq!(handshake_error(429, "").kind(), ErrorKind::RateLimited);
        assert!(handshake_error(500, "").is_retryable());
        assert!(!handshake_error(403, "").is_retryable());
        assert_eq!(rest_error(401, "", None, 1).kind(), ErrorKind::Unauthorized);
        assert_eq!(
            rest_error(422, "Payload size exceeds tenant limit", Some(9), 8),
            RealtimeError::PayloadTooLarge { size: 9, limit: 8 }
        );
        assert_eq!(rest_error(422, "bad", None, 1).kind(), ErrorKind::Protocol);
        assert_eq!(rest_error(429, "", None, 1).kind(), ErrorKind::RateLimited);
        assert!(rest_error(503, "", None, 1).is_retryable());
        assert_eq!(rest_error(418, "", None, 1).kind(), ErrorKind::Provider);
    }
}

//! Ably error codes: what the client does about them (the classification of `ably.md` §3.4, in
//! one table, [`RULES`]) and how they map to [`RealtimeError`].

use std::ops::RangeInclusive;

use relayport_core::RealtimeError;

use crate::PROVIDER_NAME;
use crate::protocol::ErrorInfo;

/// Where an error arrived: the same code means different things in different frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// An `ERROR` frame without a channel (a connection error), before or after CONNECTED.
    ConnectionError,
    /// A `DISCONNECTED` frame while the connection was established.
    DisconnectedWhileConnected,
    /// A `DISCONNECTED` frame (or a refused transport) while connecting.
    DisconnectedWhileConnecting,
    /// The `error` of a `CONNECTED` frame.
    Connected,
}

/// What the client does about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A token error: renew the token (once) and reconnect at once; fatal (40171) when the
    /// token cannot be renewed.
    RenewToken,
    /// Reconnect (resuming) at once.
    ReconnectNow,
    /// Reconnect after the core's backoff.
    Reconnect,
    /// Do not reconnect: the connection is failed.
    Fatal,
    /// Connected, but the resume failed: continuity is lost (non-fatal).
    ResumeFailed,
}

/// Codes that are always retriable, whatever the frame (ably-js `connectionerrors.ts
/// isRetriable`): disconnected, suspended, failed, closed, internal errors.
pub const RETRIABLE_CODES: [i64; 6] = [80000, 80002, 80003, 80017, 50001, 50002];

/// The classification table: the first rule whose context and code range match wins. Rules
/// with `None` as status range apply whatever the status.
pub const RULES: &[Rule] = &[
    // Token errors anywhere: renew once, then reconnect (RTN14b, RTN15h1/2).
    Rule::new(None, 40140..=40149, None, Action::RenewToken),
    // A CONNECTED with an error is a failed resume, never fatal (RTN15c7).
    Rule::new(
        Some(Context::Connected),
        i64::MIN..=i64::MAX,
        None,
        Action::ResumeFailed,
    ),
    // Server errors (5xx) and the retriable set: reconnect with backoff (RTN17f, isRetriable).
    Rule::new(
        None,
        i64::MIN..=i64::MAX,
        Some(500..=599),
        Action::Reconnect,
    ),
    // Connection terminated for rate abuse (4292x): reconnect later.
    Rule::new(None, 42920..=42929, None, Action::Reconnect),
    // DISCONNECTED while connected (non-token): resume at once (RTN15h3).
    Rule::new(
        Some(Context::DisconnectedWhileConnected),
        i64::MIN..=i64::MAX,
        None,
        Action::ReconnectNow,
    ),
    // The retriable set (ably-js isRetriable), e.g. in an ERROR or while connecting.
    Rule::new(None, 80000..=80000, None, Action::Reconnect),
    Rule::new(None, 80002..=80003, None, Action::Reconnect),
    Rule::new(None, 80017..=80017, None, Action::Reconnect),
    Rule::new(None, 50001..=50002, None, Action::Reconnect),
    // An ERROR without channel is fatal (RTN14g, RTN15j): bad credentials, app disabled, …
    Rule::new(
        Some(Context::ConnectionError),
        i64::MIN..=i64::MAX,
        None,
        Action::Fatal,
    ),
    // Any other refusal while connecting (e.g. 42910): DISCONNECTED, retry later.
    Rule::new(
        Some(Context::DisconnectedWhileConnecting),
        i64::MIN..=i64::MAX,
        None,
        Action::Reconnect,
    ),
];

/// One row of [`RULES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The frame the rule applies to (`None`: any).
    pub context: Option<Context>,
    /// The codes it applies to.
    pub codes: RangeInclusive<i64>,
    /// The statuses it applies to (`None`: any).
    pub statuses: Option<RangeInclusive<i64>>,
    /// What to do.
    pub action: Action,
}

impl Rule {
    const fn new(
        context: Option<Context>,
        codes: RangeInclusive<i64>,
        statuses: Option<RangeInclusive<i64>>,
        action: Action,
    ) -> Self {
        Self {
            context,
            codes,
            statuses,
            action,
        }
    }

    fn matches(&self, context: Context, code: i64, status: i64) -> bool {
        self.context.is_none_or(|c| c == context)
            && self.codes.contains(&code)
            && self.statuses.as_ref().is_none_or(|s| s.contains(&status))
    }
}

/// What to do about `error` arriving in `context`.
pub fn classify(context: Context, error: &ErrorInfo) -> Action {
    let (code, status) = (error.code(), error.status());
    RULES
        .iter()
        .find(|r| r.matches(context, code, status))
        .map_or(Action::Reconnect, |r| r.action)
}

/// Whether an error answering an authorization (an in-band `AUTH`, a token fetch) refuses it
/// for good, as ably-js's `actOnErrorFromAuthorize` decides: 403, 40171, and every other 401xx
/// that is not a token error (40102 "incompatible credentials", 40160 capability, …). The
/// connection then fails instead of reconnecting into the same refusal.
pub fn refused_authorization(error: &ErrorInfo) -> bool {
    let code = error.code();
    error.status() == 403
        || (40100..=40199).contains(&code) && !is_token_error(code)
        || (40300..=40399).contains(&code)
}

/// Whether `code` is a token error (40140–40149) that a renewed token can fix.
pub fn is_token_error(code: i64) -> bool {
    (40140..=40149).contains(&code)
}

/// The error for "a token error and no way to renew the token" (`RSA4a2`).
pub fn not_renewable(cause: &ErrorInfo) -> RealtimeError {
    RealtimeError::Unauthorized(format!(
        "ably error 40171: token expired or rejected ({} {}) and no means to renew it (configure a key, \
         an auth callback or an auth URL)",
        cause.code(),
        cause.text()
    ))
}

/// Maps an Ably error to the library's error. `channel` names the channel concerned, if any,
/// for `Forbidden`.
pub fn to_realtime_error(error: &ErrorInfo, channel: Option<&str>) -> RealtimeError {
    let code = error.code();
    let status = error.status();
    let message = format!("ably error {code}: {}", error.text());
    match code {
        40100..=40159 | 40171 => RealtimeError::Unauthorized(message),
        40160..=40169 | 40300..=40399 => RealtimeError::Forbidden {
            channel: channel.unwrap_or("").to_owned(),
            reason: message,
        },
        42900..=42999 => RealtimeError::RateLimited(message),
        80000..=80003 | 80017 | 50000..=50099 => RealtimeError::Connection(message),
        _ => RealtimeError::Provider {
            provider: PROVIDER_NAME,
            code,
            message: error.text().to_owned(),
            retryable: status >= 500 || RETRIABLE_CODES.contains(&code),
            source: None,
        },
    }
}

/// Ably's 40013 "Data type is unsupported": a bare number or boolean as message data.
pub fn unsupported_data(what: &str) -> RealtimeError {
    RealtimeError::Provider {
        provider: PROVIDER_NAME,
        code: 40013,
        message: format!("Data type is unsupported: {what} (send a string, object or array)"),
        retryable: false,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::ErrorKind;

    fn e(code: i64, status: i64) -> ErrorInfo {
        ErrorInfo::new(code, status, "x")
    }

    /// The table of `ably.md` §3.4, row by row.
    #[test]
    fn classification_table() {
        use Action::*;
        use Context::*;
        let cases = [
            (ConnectionError, e(40142, 401), RenewToken),
            (DisconnectedWhileConnected, e(40142, 401), RenewToken),
            (DisconnectedWhileConnecting, e(40140, 401), RenewToken),
            (ConnectionError, e(40149, 401), RenewToken),
            (DisconnectedWhileConnected, e(80003, 400), ReconnectNow),
            (DisconnectedWhileConnected, e(40000, 400), ReconnectNow),
            (DisconnectedWhileConnected, e(50000, 500), Reconnect),
            (DisconnectedWhileConnected, e(0, 503), Reconnect),
            (ConnectionError, e(40101, 401), Fatal),
            (ConnectionError, e(40102, 401), Fatal),
            (ConnectionError, e(40103, 401), Fatal),
            (ConnectionError, e(40005, 400), Fatal),
            (ConnectionError, e(40160, 401), Fatal),
            (ConnectionError, e(40150, 401), Fatal),
            (ConnectionError, e(50002, 500), Reconnect),
            (ConnectionError, e(80000, 400), Reconnect),
            (Connected, e(80008, 400), ResumeFailed),
            (Connected, e(80018, 400), ResumeFailed),
            (DisconnectedWhileConnecting, e(42910, 429), Reconnect),
            (DisconnectedWhileConnecting, e(80003, 400), Reconnect),
            (DisconnectedWhileConnected, e(42924, 429), Reconnect),
        ];
        for (context, err, want) in cases {
            assert_eq!(classify(context, &err), want, "{context:?} {err:?}");
        }
    }

    /// Every error frame in the recorded transcripts, classified as ably-js reacted to it
    /// (the connection state that followed: failed, disconnected then an immediate
    /// reconnect, or connected).
    #[test]
    fn recorded_error_frames_classify_as_ably_js_reacted() {
        let v = crate::testdata::vectors();
        let mut checked = 0;
        for (name, sc) in v["realtime"].as_object().unwrap() {
            let events: Vec<&serde_json::Value> = sc["events"]
                .as_array()
                .map(|e| e.iter().collect())
                .unwrap_or_default();
            for conn in sc["connections"].as_array().into_iter().flatten() {
                let frames = conn["frames"].as_array().unwrap();
                for (i, f) in frames.iter().enumerate() {
                    let pm: crate::protocol::ProtocolMessage =
                        serde_json::from_str(f["raw"].as_str().unwrap()).unwrap();
                    let (Some(err), "s2c") = (pm.error.clone(), f["dir"].as_str().unwrap()) else {
                        continue;
                    };
                    use crate::protocol::action::{CONNECTED, DISCONNECTED, ERROR};
                    if pm.channel.is_some()
                        || ![CONNECTED, DISCONNECTED, ERROR].contains(&pm.action)
                    {
                        continue; // NACKs and channel errors are not connection errors
                    }
                    let connected_before = frames[..i]
                        .iter()
                        .any(|f| f["raw"].as_str().unwrap().starts_with("{\"action\":4"));
                    let context = match pm.action {
                        crate::protocol::action::CONNECTED => Context::Connected,
                        crate::protocol::action::ERROR => Context::ConnectionError,
                        _ if connected_before => Context::DisconnectedWhileConnected,
                        _ => Context::DisconnectedWhileConnecting,
                    };
                    // The state ably-js entered with this error as its reason.
                    let Some(state) = events
                        .iter()
                        .find(|e| e["reason"]["code"] == serde_json::json!(err.code()))
                        .and_then(|e| e["current"].as_str())
                    else {
                        assert!(events.is_empty(), "{name}: no event for {}", err.code());
                        continue; // a scenario that recorded no state changes
                    };
                    let ours = classify(context, &err);
                    let agrees = match state {
                        "failed" => ours == Action::Fatal,
                        "connected" => ours == Action::ResumeFailed,
                        "disconnected" => {
                            matches!(ours, Action::ReconnectNow | Action::RenewToken)
                        }
                        other => panic!("{name}: unexpected state {other}"),
                    };
                    assert!(
                        agrees,
                        "{name}: {} -> ably-js {state}, ours {ours:?}",
                        err.code()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 4, "{checked}");
    }

    #[test]
    fn mapping_to_error_kinds() {
        let cases = [
            (e(40101, 401), ErrorKind::Unauthorized, false),
            (e(40142, 401), ErrorKind::Unauthorized, false),
            (e(40160, 401), ErrorKind::Forbidden, false),
            (e(42911, 429), ErrorKind::RateLimited, true),
            (e(80003, 400), ErrorKind::Connection, true),
            (e(40013, 400), ErrorKind::Provider, false),
            (e(40009, 400), ErrorKind::Provider, false),
            (e(90003, 500), ErrorKind::Provider, true),
        ];
        for (err, kind, retryable) in cases {
            let got = to_realtime_error(&err, Some("room"));
            assert_eq!(got.kind(), kind, "{err:?}");
            assert_eq!(got.is_retryable(), retryable, "{err:?}");
        }
        assert!(!not_renewable(&e(40142, 401)).is_retryable());
        assert!(not_renewable(&e(40142, 401)).to_string().contains("40171"));
    }
}

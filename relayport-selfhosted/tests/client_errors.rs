//! The two mapping tables: server error codes to `RealtimeError`, close codes to what the core
//! does next. Every row of each table is checked.
#![cfg(feature = "client")]

use relayport_core::{ErrorKind, RealtimeError, Reconnect};
use relayport_selfhosted::client::errors::{CodeContext, close_reason, error_for_code};
use relayport_selfhosted::protocol::{close, code};

#[test]
fn every_error_code_maps_to_its_kind() {
    let table = [
        (code::MALFORMED, ErrorKind::Protocol),
        (code::UNKNOWN_TYPE, ErrorKind::Protocol),
        (code::UNSUPPORTED_VERSION, ErrorKind::Protocol),
        (code::FRAME_TOO_LARGE, ErrorKind::Protocol),
        (code::NOT_SUBSCRIBED, ErrorKind::Protocol),
        (code::INVALID_CHANNEL, ErrorKind::InvalidChannel),
        (code::UNAUTHORIZED, ErrorKind::Unauthorized),
        (code::FORBIDDEN, ErrorKind::Forbidden),
        (code::PAYLOAD_TOO_LARGE, ErrorKind::PayloadTooLarge),
        (code::RATE_LIMITED, ErrorKind::RateLimited),
        (code::TOO_MANY_SUBSCRIPTIONS, ErrorKind::Provider),
        (code::BATCH_TOO_LARGE, ErrorKind::Provider),
        (code::NOT_FOUND, ErrorKind::Provider),
        (code::CONFLICT, ErrorKind::Provider),
        (code::UNAVAILABLE, ErrorKind::Provider),
        ("something_new", ErrorKind::Provider),
    ];
    for (c, kind) in table {
        let e = error_for_code(c, "why", Some("private:a"), CodeContext::default());
        assert_eq!(e.kind(), kind, "{c}");
        // Only a rate limit and a server that is temporarily unavailable are worth retrying.
        let retryable = kind == ErrorKind::RateLimited || c == code::UNAVAILABLE;
        assert_eq!(e.is_retryable(), retryable, "{c}");
    }
    let numbers: Vec<i64> = [
        code::TOO_MANY_SUBSCRIPTIONS,
        code::BATCH_TOO_LARGE,
        code::NOT_FOUND,
        code::CONFLICT,
        code::UNAVAILABLE,
        "something_new",
    ]
    .iter()
    .map(
        |c| match error_for_code(c, "", None, CodeContext::default()) {
            RealtimeError::Provider { code, .. } => code,
            other => panic!("{c}: {other:?}"),
        },
    )
    .collect();
    assert_eq!(numbers, vec![4029, 4013, 4004, 4009, 5003, 0]);
}

#[test]
fn errors_carry_the_details_the_server_and_the_request_gave() {
    let ctx = CodeContext {
        channel: Some("private:room"),
        payload_size: Some(70_000),
        limit: Some(65_536),
    };
    assert_eq!(
        error_for_code(code::FORBIDDEN, "no publishing here", None, ctx),
        RealtimeError::Forbidden {
            channel: "private:room".into(),
            reason: "no publishing here".into()
        }
    );
    assert_eq!(
        error_for_code(code::INVALID_CHANNEL, "bad name", Some("a b"), ctx),
        RealtimeError::InvalidChannel {
            name: "a b".into(),
            reason: "bad name".into()
        },
        "the frame's channel wins over the request's"
    );
    assert_eq!(
        error_for_code(code::PAYLOAD_TOO_LARGE, "too big", None, ctx),
        RealtimeError::PayloadTooLarge {
            size: 70_000,
            limit: 65_536
        }
    );
    assert_eq!(
        error_for_code(code::TOO_MANY_SUBSCRIPTIONS, "50 max", None, ctx),
        RealtimeError::Provider {
            provider: "selfhosted",
            code: 4029,
            message: "too_many_subscriptions: 50 max".into(),
            retryable: false,
            source: None,
        }
    );
    let unknown = error_for_code("brand_new", "m", None, ctx);
    assert!(unknown.to_string().contains("brand_new"), "{unknown}");
}

#[test]
fn every_close_code_maps_to_a_reconnect_policy() {
    assert_eq!(
        close_reason(Some(close::SERVICE_RESTART), "").reconnect,
        Reconnect::Immediately
    );
    match close_reason(Some(close::UNSUPPORTED_VERSION), "v2 only").reconnect {
        Reconnect::Never(e) => {
            assert_eq!(e.kind(), ErrorKind::Protocol);
            assert!(e.to_string().contains("v2 only"), "{e}");
        }
        other => panic!("4000 must be fatal, got {other:?}"),
    }
    for code in [
        Some(close::SLOW_CONSUMER),
        Some(close::IDLE_TIMEOUT),
        Some(1000),
        Some(1001),
        Some(1006),
        Some(1011),
        Some(4999),
        None,
    ] {
        let reason = close_reason(code, "x");
        assert_eq!(reason.reconnect, Reconnect::Backoff, "{code:?}");
        assert_eq!(reason.code, code.map(i64::from));
    }
    assert!(
        close_reason(Some(close::SLOW_CONSUMER), "")
            .message
            .contains("slow consumer")
    );
}

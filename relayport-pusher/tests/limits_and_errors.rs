//! Every limit at and just past it, and the error/close-code tables.

mod common;

use relayport_core::{ErrorKind, RealtimeError, Reconnect};
use relayport_pusher::errors::{close_reason, error_for_code, http_error};
use relayport_pusher::rest::{
    BatchEvent, DEFAULT_MAX_PAYLOAD, MAX_BATCH_EVENTS, MAX_TRIGGER_CHANNELS, TriggerOptions,
    interpret_response,
};
use relayport_pusher::{Credentials, PusherRest};
use serde_json::{Value, json};

fn rest() -> PusherRest {
    PusherRest::cluster(Credentials::new("1", "k", "s"), "eu").with_fixed_timestamp(1)
}

#[test]
fn payload_limit_at_and_past_10_kb() {
    let r = rest();
    let at = Value::String("x".repeat(DEFAULT_MAX_PAYLOAD));
    assert!(
        r.trigger_request(&["c"], "e", &at, &TriggerOptions::default())
            .is_ok()
    );
    let past = Value::String("x".repeat(DEFAULT_MAX_PAYLOAD + 1));
    let err = r
        .trigger_request(&["c"], "e", &past, &TriggerOptions::default())
        .unwrap_err();
    assert_eq!(
        err,
        RealtimeError::PayloadTooLarge {
            size: DEFAULT_MAX_PAYLOAD + 1,
            limit: DEFAULT_MAX_PAYLOAD
        }
    );
    // Batches and send-to-user check each event's data too.
    let ev = |data: &Value| BatchEvent {
        channel: "c".into(),
        name: "e".into(),
        data: data.clone(),
        socket_id: None,
        info: None,
    };
    assert!(r.batch_request(&[ev(&at)]).is_ok());
    assert_eq!(
        r.batch_request(&[ev(&past)]).unwrap_err().kind(),
        ErrorKind::PayloadTooLarge
    );
    assert!(r.send_to_user_request("u", "e", &at).is_ok());
    assert_eq!(
        r.send_to_user_request("u", "e", &past).unwrap_err().kind(),
        ErrorKind::PayloadTooLarge
    );
    // A self-hosted server's larger limit is configurable.
    let big = rest().with_max_payload(100 * 1024);
    assert!(
        big.trigger_request(&["c"], "e", &past, &TriggerOptions::default())
            .is_ok()
    );
}

#[test]
fn trigger_channels_at_and_past_100() {
    let r = rest();
    let names: Vec<String> = (0..=MAX_TRIGGER_CHANNELS)
        .map(|i| format!("c{i}"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let at = r
        .trigger_request(
            &refs[..MAX_TRIGGER_CHANNELS],
            "e",
            &json!({}),
            &TriggerOptions::default(),
        )
        .unwrap();
    let body: Value = serde_json::from_str(at.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["channels"].as_array().unwrap().len(), 100);
    let err = r
        .trigger_request(&refs, "e", &json!({}), &TriggerOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("more than 100 channels"));
    assert!(
        r.trigger_request(&[], "e", &json!({}), &TriggerOptions::default())
            .is_err()
    );
}

#[test]
fn batch_at_and_past_10_events() {
    let r = rest();
    let events: Vec<BatchEvent> = (0..=MAX_BATCH_EVENTS)
        .map(|i| BatchEvent {
            channel: format!("c{i}"),
            name: "e".into(),
            data: json!({"i": i}),
            socket_id: None,
            info: None,
        })
        .collect();
    assert!(r.batch_request(&events[..MAX_BATCH_EVENTS]).is_ok());
    assert_eq!(
        r.batch_request(&events).unwrap_err().kind(),
        ErrorKind::Protocol
    );
    assert!(r.batch_request(&[]).is_err());
}

#[test]
fn channel_and_event_names_at_and_past_200() {
    let r = rest();
    let o = TriggerOptions::default();
    let ch200 = "c".repeat(200);
    let ch201 = "c".repeat(201);
    assert!(r.trigger_request(&[&ch200], "e", &json!(1), &o).is_ok());
    assert_eq!(
        r.trigger_request(&[&ch201], "e", &json!(1), &o)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidChannel
    );
    assert!(
        r.trigger_request(&["c"], &"e".repeat(200), &json!(1), &o)
            .is_ok()
    );
    assert_eq!(
        r.trigger_request(&["c"], &"e".repeat(201), &json!(1), &o)
            .unwrap_err()
            .kind(),
        ErrorKind::Protocol
    );
    assert!(r.channel_info_request(&ch200, None).is_ok());
    assert!(r.channel_info_request(&ch201, None).is_err());
}

#[test]
fn error_code_table() {
    use ErrorKind::*;
    let table: &[(Option<i64>, ErrorKind, bool)] = &[
        (None, Unauthorized, false),
        (Some(4000), Provider, false),
        (Some(4001), Config, false),
        (Some(4003), Unauthorized, false),
        (Some(4004), Provider, false),
        (Some(4005), Config, false),
        (Some(4006), Protocol, false),
        (Some(4007), Protocol, false),
        (Some(4008), Protocol, false),
        (Some(4009), Unauthorized, false),
        (Some(4099), Provider, false),
        (Some(4100), Provider, true),
        (Some(4199), Provider, true),
        (Some(4200), Provider, true),
        (Some(4201), Provider, true),
        (Some(4299), Provider, true),
        (Some(4300), Provider, false),
        (Some(4301), RateLimited, true),
        (Some(4302), Provider, false),
        (Some(1006), Connection, true),
    ];
    for (code, kind, retryable) in table {
        let e = error_for_code(*code, "m");
        assert_eq!(e.kind(), *kind, "{code:?}");
        assert_eq!(e.is_retryable(), *retryable, "{code:?}");
    }
}

#[test]
fn close_code_ranges() {
    for (code, expect) in [
        (4000, "never"),
        (4099, "never"),
        (4100, "backoff"),
        (4199, "backoff"),
        (4200, "now"),
        (4299, "now"),
        (4300, "never"),
        (4301, "never"),
        (4999, "never"),
        (1000, "backoff"),
        (1002, "backoff"),
        (1006, "backoff"),
        (3999, "backoff"),
    ] {
        let got = match close_reason(Some(code), "r").reconnect {
            Reconnect::Never(_) => "never",
            Reconnect::Backoff => "backoff",
            Reconnect::Immediately => "now",
        };
        assert_eq!(got, expect, "{code}");
    }
    assert_eq!(close_reason(None, "").reconnect, Reconnect::Backoff);
}

/// pusher-js's measured reaction to each close code (the transcript's `close_codes`) agrees
/// with ours: no reconnect → fatal; reconnect within a few ms → at once; else → backoff.
#[test]
fn close_codes_agree_with_pusher_js_transcript() {
    let t = common::vector("pusher-js-transcript.json");
    let cases = t["close_codes"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        let code = c["close_code"].as_i64().unwrap();
        let expected = match c["reconnect_delay_after_close_ms"].as_u64() {
            None => "never",
            Some(ms) if ms < 100 => "now",
            Some(_) => "backoff",
        };
        assert_eq!(
            c["connections_seen"].as_u64().unwrap() == 1,
            expected == "never",
            "{code}"
        );
        let got = match close_reason(Some(code), "test").reconnect {
            Reconnect::Never(_) => "never",
            Reconnect::Backoff => "backoff",
            Reconnect::Immediately => "now",
        };
        assert_eq!(got, expected, "close code {code}");
    }
}

#[test]
fn http_errors_by_status_and_body() {
    assert_eq!(
        http_error(401, "Invalid signature").kind(),
        ErrorKind::Unauthorized
    );
    assert_eq!(http_error(403, "").kind(), ErrorKind::Unauthorized);
    assert_eq!(http_error(429, "").kind(), ErrorKind::RateLimited);
    assert!(http_error(503, "").is_retryable());
    assert!(!http_error(400, "{\"error\":\"bad\"}").is_retryable());
    // soketi: 200 with the real code in the body.
    assert_eq!(
        http_error(
            200,
            "{\"error\":\"The secret authentication failed\",\"code\":401}"
        )
        .kind(),
        ErrorKind::Unauthorized
    );
}

/// What real servers answered (`pusher-sockudo-live.json`, `pusher-soketi-live.json`): a
/// failure is a non-2xx status or a body with an `error` key, and a wrong secret is
/// `Unauthorized` on both.
#[test]
fn live_server_answers_are_classified() {
    for file in ["pusher-sockudo-live.json", "pusher-soketi-live.json"] {
        let v = common::vector(file);
        let steps = v["steps"].as_array().unwrap();
        assert!(!steps.is_empty());
        for s in steps {
            let what = s["rest"].as_str().unwrap();
            let status = s["res"]["status"].as_u64().unwrap() as u16;
            let body = s["res"]["body"].as_str().unwrap();
            let has_error = serde_json::from_str::<Value>(body)
                .ok()
                .is_some_and(|b| b.get("error").is_some());
            let failed = !(200..300).contains(&status) || has_error;
            let got = interpret_response(status, body);
            assert_eq!(got.is_err(), failed, "{file}: {what}: {got:?}");
            if what.contains("wrong secret") {
                assert_eq!(got.unwrap_err().kind(), ErrorKind::Unauthorized, "{file}");
            }
        }
    }
}

/// Every complete server frame recorded from sockudo and soketi parses.
#[test]
fn live_server_frames_parse() {
    for file in ["pusher-sockudo-live.json", "pusher-soketi-live.json"] {
        let v = common::vector(file);
        let mut n = 0;
        for client in ["client_A", "client_B"] {
            for f in v[client]["frames"].as_array().unwrap() {
                if f["dir"] != "server->client" || f.get("note").is_some() {
                    continue;
                }
                let raw = f["raw"].as_str().unwrap();
                relayport_pusher::protocol::parse_frame(raw)
                    .unwrap_or_else(|e| panic!("{file}: {raw}: {e}"));
                n += 1;
            }
        }
        assert!(n > 10, "{file}");
    }
}

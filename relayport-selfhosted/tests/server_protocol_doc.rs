//! Every example frame in `PROTOCOL.md` parses as the protocol type it documents and
//! serializes back to the same JSON, and every frame type has an example.
#![cfg(feature = "server")]

use std::collections::BTreeSet;

use relayport_selfhosted::protocol::{ClientFrame, ServerFrame};
use serde_json::Value;

const DOC: &str = include_str!("../PROTOCOL.md");

fn blocks(tag: &str) -> Vec<String> {
    let fence = format!("```json {tag}\n");
    let mut out = Vec::new();
    let mut rest = DOC;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```").expect("closed fence");
        out.push(body[..end].trim().to_owned());
        rest = &body[end..];
    }
    out
}

fn check<T: serde::de::DeserializeOwned + serde::Serialize>(tag: &str) -> BTreeSet<String> {
    let mut types = BTreeSet::new();
    for text in blocks(tag) {
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let frame: T =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {text}"));
        let back = serde_json::to_value(&frame).unwrap();
        assert_eq!(back, value, "round trip of {text}");
        types.insert(value["type"].as_str().unwrap_or_default().to_owned());
    }
    types
}

#[test]
fn client_examples_cover_every_client_frame() {
    let types = check::<ClientFrame>("client");
    let expected: BTreeSet<String> = [
        "subscribe",
        "unsubscribe",
        "publish",
        "presence_enter",
        "presence_update",
        "presence_leave",
        "ping",
        "history",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(types, expected);
}

#[test]
fn server_examples_cover_every_server_frame() {
    let types = check::<ServerFrame>("server");
    let expected: BTreeSet<String> = [
        "connected",
        "subscribed",
        "unsubscribed",
        "ack",
        "message",
        "presence",
        "error",
        "pong",
        "history",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(types, expected);
}

#[test]
fn every_error_and_close_code_is_documented() {
    use relayport_selfhosted::protocol::{close, code};
    for c in [
        code::MALFORMED,
        code::UNKNOWN_TYPE,
        code::UNSUPPORTED_VERSION,
        code::INVALID_CHANNEL,
        code::UNAUTHORIZED,
        code::FORBIDDEN,
        code::PAYLOAD_TOO_LARGE,
        code::TOO_MANY_SUBSCRIPTIONS,
        code::RATE_LIMITED,
        code::NOT_SUBSCRIBED,
        code::FRAME_TOO_LARGE,
        code::BATCH_TOO_LARGE,
        code::UNAVAILABLE,
        code::NOT_FOUND,
        code::CONFLICT,
    ] {
        assert!(
            DOC.contains(&format!("| `{c}` |")),
            "error code {c} is not in the table"
        );
    }
    for c in [
        close::SERVICE_RESTART,
        close::UNSUPPORTED_VERSION,
        close::SLOW_CONSUMER,
        close::IDLE_TIMEOUT,
    ] {
        assert!(
            DOC.contains(&format!("| {c} ")),
            "close code {c} is not in the table"
        );
    }
}

//! Pusher protocol 7 frames as the client reads them (`protocol::parse_frame`), and what the
//! client then reads out of a frame: channel names, user ids, error codes, encrypted payloads;
//! and webhook bodies as the application's backend reads them (`WebhookVerifier::verify`).

use relayport_pusher::encryption::decrypt;
use relayport_pusher::errors::{close_reason, error_for_code};
use relayport_pusher::names::{from_wire, to_wire};
use relayport_pusher::protocol::{Frame, parse_frame, user_id_of};
use relayport_pusher::webhooks::WebhookVerifier;
use serde_json::{Map, Value};

use crate::json::has_float;

/// A key no frame was encrypted with.
const WRONG_KEY: [u8; 32] = [7; 32];

/// Parses `text` as a server frame; a frame that parses re-encodes (with `data` double-encoded,
/// as servers send it) to a frame that parses to the same value.
pub fn check_frame(text: &str) {
    let Ok(frame) = parse_frame(text) else {
        return;
    };
    if let Some(wire) = &frame.channel
        && let Ok(channel) = from_wire(wire)
    {
        assert_eq!(
            to_wire(&channel).ok().as_deref(),
            Some(wire.as_str()),
            "channel {wire:?} → {channel:?}"
        );
    }
    let _ = user_id_of(&frame.data);
    let code = frame.data.get("code").and_then(Value::as_i64);
    let _ = error_for_code(code, "fuzz");
    let _ = close_reason(code, "fuzz");
    assert!(
        decrypt(&frame.data, &WRONG_KEY).is_err(),
        "data decrypted under a key it was not encrypted with: {text:?}"
    );
    if !has_float(&frame.data) {
        let again = parse_frame(&encode(&frame))
            .unwrap_or_else(|e| panic!("re-encoded frame of {text:?} does not parse: {e}"));
        assert_eq!(again, frame, "re-encoded frame of {text:?}");
    }
}

/// A frame as a server writes it: `data` as a JSON string.
pub fn encode(frame: &Frame) -> String {
    let mut obj = Map::new();
    obj.insert("event".into(), Value::String(frame.event.clone()));
    if let Some(channel) = &frame.channel {
        obj.insert("channel".into(), Value::String(channel.clone()));
    }
    obj.insert("data".into(), Value::String(frame.data.to_string()));
    if let Some(user_id) = &frame.user_id {
        obj.insert("user_id".into(), Value::String(user_id.clone()));
    }
    Value::Object(obj).to_string()
}

/// A webhook body is accepted only with the right signature, and then exactly when it is a
/// webhook; an accepted one re-serializes to a body that verifies to the same webhook.
pub fn check_webhook(body: &[u8]) {
    const KEY: &str = "fuzz-key";
    const SECRET: &str = "fuzz-secret";
    let verifier = WebhookVerifier::new(KEY, SECRET);
    let sign = |b: &[u8]| relayport_core::auth::hmac_sha256_hex(SECRET.as_bytes(), b);
    let json = Some("application/json");
    let wrong = sign(b"another body");
    assert!(
        verifier
            .verify(Some(KEY), Some(&wrong), json, body)
            .is_err()
            || sign(body) == wrong,
        "a webhook verified with another body's signature"
    );
    let accepted = verifier.verify(Some(KEY), Some(&sign(body)), json, body);
    let is_webhook = serde_json::from_slice::<relayport_pusher::webhooks::Webhook>(body).is_ok();
    assert_eq!(accepted.is_ok(), is_webhook, "signed body {body:?}");
    if let Ok(hook) = accepted {
        let floats = hook
            .events
            .iter()
            .any(|e| e.data.as_ref().is_some_and(has_float) || e.other.values().any(has_float));
        if !floats {
            let again = serde_json::to_vec(&hook).expect("a webhook serializes");
            assert_eq!(
                verifier
                    .verify(Some(KEY), Some(&sign(&again)), json, &again)
                    .ok(),
                Some(hook),
                "re-serialized webhook"
            );
        }
    }
}

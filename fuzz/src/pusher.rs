//! Pusher protocol 7 frames as the client reads them (`protocol::parse_frame`), and what the
//! client then reads out of a frame: channel names, user ids, error codes, encrypted payloads.

use relayport_pusher::encryption::decrypt;
use relayport_pusher::errors::{close_reason, error_for_code};
use relayport_pusher::names::{from_wire, to_wire};
use relayport_pusher::protocol::{Frame, parse_frame, user_id_of};
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

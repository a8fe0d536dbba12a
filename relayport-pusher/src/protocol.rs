//! Protocol 7 frames: parsing what the server sends (with the double-encoded `data`) and
//! writing what the client sends, byte for byte as pusher-js 8.6.0 writes it.

use relayport_core::{RealtimeError, Result};
use serde_json::Value;

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: u8 = 7;

/// A frame from the server, `data` decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The event name.
    pub event: String,
    /// The channel, if any.
    pub channel: Option<String>,
    /// The data, decoded: a string holding JSON is parsed; a string that is not JSON stays a
    /// string; a missing `data` is `Null`.
    pub data: Value,
    /// The sender's user id (client events on presence channels).
    pub user_id: Option<String>,
}

/// Decodes a `data` field: a string that holds JSON is parsed again; anything else is kept.
///
/// ```
/// use serde_json::json;
/// use relayport_pusher::protocol::decode_data;
/// assert_eq!(decode_data(json!("{\"a\":1}")), json!({"a": 1}));
/// assert_eq!(decode_data(json!("plain")), json!("plain"));
/// assert_eq!(decode_data(json!({"a": 1})), json!({"a": 1}));
/// ```
pub fn decode_data(data: Value) -> Value {
    match data {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    }
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a text frame. A frame that is not a JSON object with a string `event` is a
/// `Protocol` error.
pub fn parse_frame(text: &str) -> Result<Frame> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| RealtimeError::Protocol(format!("frame is not JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(RealtimeError::Protocol("frame is not a JSON object".into()));
    };
    let event = match obj.remove("event") {
        Some(Value::String(s)) => s,
        _ => {
            return Err(RealtimeError::Protocol(
                "frame without an `event` string".into(),
            ));
        }
    };
    let channel = match obj.remove("channel") {
        Some(Value::String(s)) => Some(s),
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(RealtimeError::Protocol(format!(
                "frame `{event}` has a non-string channel: {other}"
            )));
        }
    };
    let data = decode_data(obj.remove("data").unwrap_or(Value::Null));
    let user_id = obj.get("user_id").and_then(id_string);
    Ok(Frame {
        event,
        channel,
        data,
        user_id,
    })
}

/// A user id from decoded data (`user_id` may be a string or a number).
pub fn user_id_of(data: &Value) -> Option<String> {
    data.get("user_id").and_then(id_string)
}

fn q(s: &str) -> String {
    // Serializing a &str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

/// `pusher:subscribe`, as pusher-js writes it: `auth` first (`""` for public channels), then
/// `channel_data` for presence, then `channel`.
pub fn subscribe(channel: &str, auth: Option<&str>, channel_data: Option<&str>) -> String {
    let mut data = format!("\"auth\":{}", q(auth.unwrap_or("")));
    if let Some(cd) = channel_data {
        data.push_str(&format!(",\"channel_data\":{}", q(cd)));
    }
    format!(
        "{{\"event\":\"pusher:subscribe\",\"data\":{{{data},\"channel\":{}}}}}",
        q(channel)
    )
}

/// `pusher:unsubscribe`.
pub fn unsubscribe(channel: &str) -> String {
    format!(
        "{{\"event\":\"pusher:unsubscribe\",\"data\":{{\"channel\":{}}}}}",
        q(channel)
    )
}

/// `pusher:ping`.
pub fn ping() -> String {
    "{\"event\":\"pusher:ping\",\"data\":{}}".to_owned()
}

/// `pusher:pong`.
pub fn pong() -> String {
    "{\"event\":\"pusher:pong\",\"data\":{}}".to_owned()
}

/// A client event: `event`, `data` (as a JSON value), `channel`.
pub fn client_event(event: &str, channel: &str, data: &Value) -> String {
    format!(
        "{{\"event\":{},\"data\":{},\"channel\":{}}}",
        q(event),
        data,
        q(channel)
    )
}

/// `pusher:signin` with the exact `auth` and `user_data` strings.
pub fn signin(auth: &str, user_data: &str) -> String {
    format!(
        "{{\"event\":\"pusher:signin\",\"data\":{{\"auth\":{},\"user_data\":{}}}}}",
        q(auth),
        q(user_data)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tolerates_the_variants_servers_send() {
        let f = parse_frame(r#"{"event":"pusher:pong"}"#).unwrap();
        assert_eq!(f.data, Value::Null);
        let f =
            parse_frame(r#"{"event":"pusher:error","data":{"code":null,"message":"m"}}"#).unwrap();
        assert_eq!(f.data["code"], Value::Null);
        let f = parse_frame(r#"{"event":"pusher_internal:subscription_succeeded","channel":"c"}"#)
            .unwrap();
        assert_eq!(f.channel.as_deref(), Some("c"));
        let f = parse_frame(
            r#"{"event":"client-x","channel":"presence-a","data":{"a":1},"user_id":7}"#,
        )
        .unwrap();
        assert_eq!(f.user_id.as_deref(), Some("7"));
        assert_eq!(f.data, json!({"a": 1}));
    }

    #[test]
    fn malformed_frames_are_protocol_errors() {
        for bad in [
            "this is not json",
            "[]",
            "{}",
            r#"{"event":1}"#,
            r#"{"event":"e","channel":5}"#,
        ] {
            assert!(parse_frame(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_escape_strings() {
        assert_eq!(
            subscribe("c", Some("a\"b"), None),
            r#"{"event":"pusher:subscribe","data":{"auth":"a\"b","channel":"c"}}"#
        );
    }
}

//! What the provider stores: message and presence records, and how they read back.
//!
//! - a message, under `{root}/{channel}/messages/{push id}`:
//!   `{"event": "<name>", "data": <payload>, "ts": <server ms>, "sender": "<client id>"}`,
//!   plus `"origin": "<provider instance id>"` from a client that asked for no echo (how it
//!   recognises its own writes: two clients may share a client id);
//! - a member, under `{root}/{channel}/presence/{encoded client id}`:
//!   `{"id": "<client id>", "data": <member data>, "ts": <server ms>}`.
//!
//! `ts` is written as `{".sv": "timestamp"}`, so the server's clock stamps it.

use relayport_core::{Channel, Message, OutboundMessage, PresenceMember, RealtimeError, Result};
use serde_json::{Value, json};

use crate::key::decode_key;
use crate::position::position_of;

/// The server-timestamp placeholder.
pub fn server_timestamp() -> Value {
    json!({".sv": "timestamp"})
}

/// The record a publish writes; `origin` (the writing provider instance's id) only from a
/// client that asked for no echo.
/// Firebase stores JSON only: bytes are refused with `Unsupported`.
pub fn message_record(
    message: &OutboundMessage,
    sender: &str,
    origin: Option<&str>,
) -> Result<Value> {
    let data = message.data.json_for("firebase")?;
    let mut record = json!({
        "event": message.event,
        "data": data,
        "ts": server_timestamp(),
        "sender": sender,
    });
    if let (Some(origin), Some(fields)) = (origin, record.as_object_mut()) {
        fields.insert("origin".into(), Value::from(origin));
    }
    Ok(record)
}

/// The `origin` of a stored message record, if it has one.
pub fn origin_of(record: &Value) -> Option<&str> {
    record.get("origin").and_then(Value::as_str)
}

/// Reads a stored message (`id` is its key).
pub fn decode_message(channel: &Channel, id: &str, record: &Value) -> Result<Message> {
    let event = record
        .get("event")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            RealtimeError::Protocol(format!("message `{id}` on `{channel}` has no event name"))
        })?;
    let mut message = Message::new(
        channel.clone(),
        event,
        record.get("data").cloned().unwrap_or(Value::Null),
    );
    message.id = Some(id.to_owned());
    message.position = position_of(id);
    message.timestamp = record.get("ts").and_then(Value::as_u64);
    message.sender = record
        .get("sender")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(message)
}

/// The record a presence enter or update writes.
pub fn member_record(client_id: &str, data: &Value) -> Value {
    json!({"id": client_id, "data": data, "ts": server_timestamp()})
}

/// A member as stored: who, with what data, last refreshed when (server ms).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMember {
    /// The member.
    pub member: PresenceMember,
    /// The last refresh, if the record has one.
    pub ts: Option<u64>,
}

/// Reads a stored member (`key` is its encoded id).
pub fn decode_member(key: &str, record: &Value) -> Result<StoredMember> {
    let id = match record.get("id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => decode_key(key)?,
    };
    let data = record.get("data").cloned().unwrap_or(Value::Null);
    Ok(StoredMember {
        member: PresenceMember::new(id, data),
        ts: record.get("ts").and_then(Value::as_u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_with_their_envelope() {
        let ch = Channel::public("room");
        let m = decode_message(
            &ch,
            "-NQ5zV0xgYlQeK6pa9hA",
            &json!({"event": "e", "data": {"a": 1}, "ts": 5, "sender": "u"}),
        )
        .expect("valid");
        assert_eq!(m.event, "e");
        assert_eq!(m.timestamp, Some(5));
        assert_eq!(m.sender.as_deref(), Some("u"));
        assert!(m.position.is_some());
        assert!(decode_message(&ch, "x", &json!({"data": 1})).is_err());
        assert!(decode_message(&ch, "x", &json!("text")).is_err());
    }

    #[test]
    fn an_origin_is_written_only_when_given() {
        let out = OutboundMessage::new(Channel::public("room"), "e", json!(1));
        let plain = message_record(&out, "alice", None).expect("json");
        assert_eq!(
            plain.as_object().map(|o| o.len()),
            Some(4),
            "the documented four fields: {plain}"
        );
        assert_eq!(origin_of(&plain), None);
        let marked = message_record(&out, "alice", Some("0123abcd")).expect("json");
        assert_eq!(marked["sender"], "alice");
        assert_eq!(origin_of(&marked), Some("0123abcd"));
    }

    #[test]
    fn members_fall_back_to_their_key() {
        let m = decode_member("a%2Eb", &json!({"data": 1, "ts": 9})).expect("valid");
        assert_eq!(m.member.id, "a.b");
        assert_eq!(m.ts, Some(9));
        assert!(decode_member("%zz", &json!({})).is_err());
    }
}

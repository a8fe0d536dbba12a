//! The channel convention: how relayport channels travel over Socket.IO events with acks.
//!
//! Socket.IO has no channels on the wire (rooms live on the server), so channels map to events
//! that the Node adapter (`adapter/` in this crate's repository, `attachRealtime(io, {secret})`)
//! answers with an ack:
//!
//! | call | event (default name) | payload | ack |
//! |---|---|---|---|
//! | subscribe | `rp:subscribe` | `{channel, auth?, channel_data?}` | `{ok, position, members?}` |
//! | unsubscribe | `rp:unsubscribe` | `{channel}` | `{ok}` |
//! | publish | `rp:publish` | `{channel, event, data, echo?}` | `{ok}` |
//! | presence enter / update / leave | `rp:presence:enter` / `:update` / `:leave` | `{channel, data?}` | `{ok}` |
//! | presence members | `rp:presence:members` | `{channel}` | `{ok, members}` |
//!
//! Bytes travel as `data` = a binary attachment's placeholder (`{"_placeholder":true,"num":0}`
//! and one binary frame); `echo: false` asks the adapter to leave the publisher's own socket
//! out of the broadcast.
//!
//! The server sends `rp:message` (`{channel, event, data, id, position, timestamp, sender?}`,
//! `data` possibly an attachment, `sender` the publisher's `socket.id`) and `rp:presence` (`{channel, action: join|update|leave, member: {id, data}}`). A refusal is
//! `{ok: false, error: {code, message}}` with `code` one of `unauthorized`, `forbidden`,
//! `bad_request`, `internal`. Every name is configurable ([`EventNames`]) so that an app's
//! existing events (`chat:join`, say) can serve.

use relayport_core::{
    Channel, Message, Payload, Position, PresenceChange, PresenceMember, RealtimeError, Result,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::PROVIDER_NAME;
use crate::packet::{Arg, Packet};

/// The event names of the convention. Defaults match the adapter's `DEFAULT_EVENTS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct EventNames {
    /// Subscribe to a channel (`rp:subscribe`).
    pub subscribe: String,
    /// Leave a channel (`rp:unsubscribe`).
    pub unsubscribe: String,
    /// Publish from the client (`rp:publish`).
    pub publish: String,
    /// A message on a channel, server to client (`rp:message`).
    pub message: String,
    /// A presence change, server to client (`rp:presence`).
    pub presence: String,
    /// Enter a presence channel (`rp:presence:enter`).
    pub presence_enter: String,
    /// Change this member's data (`rp:presence:update`).
    pub presence_update: String,
    /// Leave the member set (`rp:presence:leave`).
    pub presence_leave: String,
    /// The member list (`rp:presence:members`).
    pub presence_members: String,
}

impl Default for EventNames {
    fn default() -> Self {
        Self {
            subscribe: "rp:subscribe".into(),
            unsubscribe: "rp:unsubscribe".into(),
            publish: "rp:publish".into(),
            message: "rp:message".into(),
            presence: "rp:presence".into(),
            presence_enter: "rp:presence:enter".into(),
            presence_update: "rp:presence:update".into(),
            presence_leave: "rp:presence:leave".into(),
            presence_members: "rp:presence:members".into(),
        }
    }
}

/// A message as the adapter sends it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MessageWire {
    pub(crate) channel: String,
    pub(crate) event: String,
    #[serde(default)]
    pub(crate) data: Value,
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) position: Option<Position>,
    #[serde(default)]
    pub(crate) timestamp: Option<u64>,
    #[serde(default)]
    pub(crate) sender: Option<String>,
}

impl MessageWire {
    /// The message in `raw`, the first argument of a message event as it came in `packet`
    /// (placeholders intact): a `data` that is a placeholder becomes [`Payload::Binary`]
    /// (bytes published natively, a Buffer on the Node side), anything else JSON (a Buffer
    /// nested deeper arrives in Node's JSON form, `{"type":"Buffer","data":[…]}`).
    pub(crate) fn decode(raw: &Value, packet: &Packet) -> Result<Message> {
        let wire: Self = serde_json::from_value(raw.clone())
            .map_err(|e| RealtimeError::Protocol(format!("a malformed message: {e}")))?;
        let data = match packet.resolve(&wire.data) {
            Ok(Arg::Binary(bytes)) => Payload::from(bytes),
            Ok(Arg::Json(value)) => Payload::Json(value),
            Err(e) => return Err(RealtimeError::Protocol(format!("a message's data: {e}"))),
        };
        wire.into_message(data)
    }

    fn into_message(self, data: Payload) -> Result<Message> {
        let channel = Channel::parse(&self.channel).map_err(|e| {
            RealtimeError::Protocol(format!("a message on an invalid channel: {e}"))
        })?;
        let mut m = Message::new(channel, self.event, data);
        m.id = self.id;
        m.position = self.position;
        m.timestamp = self.timestamp;
        m.sender = self.sender;
        Ok(m)
    }
}

/// A presence change as the adapter sends it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PresenceWire {
    pub(crate) channel: String,
    pub(crate) action: String,
    pub(crate) member: PresenceMember,
}

impl PresenceWire {
    pub(crate) fn into_change(self) -> Result<(Channel, PresenceChange)> {
        let channel = Channel::parse(&self.channel)
            .map_err(|e| RealtimeError::Protocol(format!("presence on an invalid channel: {e}")))?;
        let change = match self.action.as_str() {
            "join" => PresenceChange::Joined(self.member),
            "update" => PresenceChange::Updated(self.member),
            "leave" => PresenceChange::Left(self.member),
            other => {
                return Err(RealtimeError::Protocol(format!(
                    "an unknown presence action `{other}`"
                )));
            }
        };
        Ok((channel, change))
    }
}

/// An ack of the convention: `{ok: true, …}` or `{ok: false, error: {code, message}}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AckWire {
    pub(crate) ok: bool,
    #[serde(default)]
    pub(crate) error: Option<ErrorWire>,
    #[serde(default)]
    pub(crate) position: Option<Position>,
    #[serde(default)]
    pub(crate) members: Option<Vec<PresenceMember>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorWire {
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) message: String,
}

/// The provider code of a refusal the adapter answered with, for [`RealtimeError::Provider`].
pub const CODE_BAD_REQUEST: i64 = 400;
/// The provider code of an adapter failure.
pub const CODE_INTERNAL: i64 = 500;

impl AckWire {
    /// The ack of `what` on `channel` as a result.
    pub(crate) fn parse(what: &str, channel: &Channel, args: &[Value]) -> Result<Self> {
        let first = args.first().ok_or_else(|| {
            RealtimeError::Protocol(format!("an empty ack to {what} (is the adapter attached?)"))
        })?;
        let ack: AckWire = serde_json::from_value(first.clone())
            .map_err(|e| RealtimeError::Protocol(format!("a malformed ack to {what}: {e}")))?;
        if ack.ok {
            return Ok(ack);
        }
        let (code, message) = ack.error.map(|e| (e.code, e.message)).unwrap_or_else(|| {
            (
                "internal".into(),
                format!("{what} refused without a reason"),
            )
        });
        Err(match code.as_str() {
            "unauthorized" => RealtimeError::Unauthorized(message),
            "forbidden" => relayport_core::auth::forbidden(channel, message),
            "bad_request" => {
                RealtimeError::provider(PROVIDER_NAME, CODE_BAD_REQUEST, message, false)
            }
            _ => RealtimeError::provider(PROVIDER_NAME, CODE_INTERNAL, message, true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_map_to_typed_errors() {
        let ch = Channel::private("room");
        let e = AckWire::parse(
            "subscribe",
            &ch,
            &[json!({"ok": false, "error": {"code": "forbidden", "message": "bad sig"}})],
        )
        .unwrap_err();
        assert!(
            matches!(e, RealtimeError::Forbidden { ref channel, .. } if channel == "private:room"),
            "{e}"
        );
        let e = AckWire::parse(
            "subscribe",
            &ch,
            &[json!({"ok": false, "error": {"code": "unauthorized", "message": "no sig"}})],
        )
        .unwrap_err();
        assert_eq!(e, RealtimeError::Unauthorized("no sig".into()));
        let e = AckWire::parse("publish", &ch, &[json!({"ok": false})]).unwrap_err();
        assert_eq!(e.provider_code(), Some(CODE_INTERNAL));
        assert!(AckWire::parse("publish", &ch, &[]).is_err());
        assert!(AckWire::parse("publish", &ch, &[json!("yes")]).is_err());
        let ok = AckWire::parse(
            "subscribe",
            &ch,
            &[json!({"ok": true, "position": {"epoch": "e", "sequence": 3}})],
        )
        .unwrap();
        assert_eq!(
            ok.position,
            Some(Position {
                epoch: Some("e".into()),
                sequence: 3
            })
        );
    }

    #[test]
    fn messages_and_presence_decode() {
        let raw = json!({"channel": "private:a", "event": "e", "data": {"x": 1}, "id": "ep:1", "position": {"epoch": "ep", "sequence": 1}, "timestamp": 5, "sender": "s1"});
        let m = MessageWire::decode(&raw, &carrier(&raw, vec![])).unwrap();
        assert_eq!(m.data, json!({"x": 1}));
        assert_eq!(m.channel, Channel::private("a"));
        assert_eq!(
            m.position,
            Some(Position {
                epoch: Some("ep".into()),
                sequence: 1
            })
        );
        assert_eq!(m.sender.as_deref(), Some("s1"));
        let bad = json!({"channel": "private:", "event": "e"});
        assert!(MessageWire::decode(&bad, &carrier(&bad, vec![])).is_err());
        assert!(MessageWire::decode(&json!(["x"]), &carrier(&json!(1), vec![])).is_err());
        let p: PresenceWire = serde_json::from_value(json!({"channel": "presence:l", "action": "leave", "member": {"id": "bob", "data": null}})).unwrap();
        assert_eq!(
            p.into_change().unwrap().1,
            PresenceChange::Left(PresenceMember::new("bob", Value::Null))
        );
        let p: PresenceWire = serde_json::from_value(
            json!({"channel": "presence:l", "action": "wave", "member": {"id": "bob"}}),
        )
        .unwrap();
        assert!(p.into_change().is_err());
    }

    /// The packet that carried `raw` as a message event's argument, with `attachments`.
    fn carrier(raw: &Value, attachments: Vec<Vec<u8>>) -> Packet {
        Packet::event_with_attachments("/", "rp:message", vec![raw.clone()], attachments, None)
    }

    #[test]
    fn a_placeholder_data_is_bytes_and_json_stays_json() {
        let raw = json!({"channel": "news", "event": "img", "data": crate::packet::placeholder_value(0), "sender": "s1"});
        let m = MessageWire::decode(&raw, &carrier(&raw, vec![vec![0, 0xff, 0]])).unwrap();
        assert_eq!(m.data, Payload::from(vec![0, 0xff, 0]));
        let m = MessageWire::decode(&raw, &carrier(&raw, vec![vec![]])).unwrap();
        assert_eq!(m.data, Payload::from(Vec::new()));
        // A placeholder whose attachment never came is a protocol error, not a panic.
        let err = MessageWire::decode(&raw, &carrier(&raw, vec![])).unwrap_err();
        assert_eq!(err.kind(), relayport_core::ErrorKind::Protocol, "{err}");
        // A JSON object that merely looks like Node's Buffer JSON stays JSON.
        let raw = json!({"channel": "news", "event": "e", "data": {"type": "Buffer", "data": [1]}});
        let m = MessageWire::decode(&raw, &carrier(&raw, vec![])).unwrap();
        assert_eq!(m.data, json!({"type": "Buffer", "data": [1]}));
        // Bytes nested deeper than `data` arrive in Node's JSON form of a Buffer.
        let raw = json!({"channel": "news", "event": "e", "data": {"file": crate::packet::placeholder_value(0)}});
        let m = MessageWire::decode(&raw, &carrier(&raw, vec![vec![7]])).unwrap();
        assert_eq!(m.data, json!({"file": {"type": "Buffer", "data": [7]}}));
    }

    #[test]
    fn names_are_configurable_from_json() {
        let names: EventNames = serde_json::from_value(json!({"subscribe": "chat:join"})).unwrap();
        assert_eq!(names.subscribe, "chat:join");
        assert_eq!(names.publish, "rp:publish");
        assert!(serde_json::from_value::<EventNames>(json!({"subscrbe": "x"})).is_err());
    }
}

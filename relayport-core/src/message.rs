//! Messages in both directions, their positions in a channel's stream, and typed events.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::error::{RealtimeError, Result};
use crate::payload::Payload;

/// The longest event name accepted, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 200;

/// Where a message stands in its channel's stream, for recovery and de-duplication.
///
/// Sequences are ordered within one `epoch`; a provider whose stream restarts (a server without
/// persistence restarting, say) starts a new epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Position {
    /// The stream's generation; `None` when the provider has one eternal stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// The message's sequence number within the epoch.
    pub sequence: u64,
}

impl Position {
    /// A position in a stream without epochs.
    pub fn new(sequence: u64) -> Self {
        Self {
            epoch: None,
            sequence,
        }
    }

    /// Whether `self` is at or before `other` in the same epoch (a message at `self` was
    /// already seen if `other` was).
    pub fn is_at_or_before(&self, other: &Position) -> bool {
        self.epoch == other.epoch && self.sequence <= other.sequence
    }
}

/// A message received on a channel.
///
/// As JSON (its serde form) a binary payload is its base64 text with `"encoding": "base64"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The channel it arrived on (a concrete channel, never a wildcard).
    pub channel: Channel,
    /// The event name, e.g. `chat:message`.
    pub event: String,
    /// The payload: JSON or bytes.
    #[serde(flatten, with = "crate::payload::wire")]
    pub data: Payload,
    /// The server-assigned id, where the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The position in the channel's stream, where the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// The server's timestamp in milliseconds since the Unix epoch (client clocks are never
    /// trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// The sender's connection or client id, where the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

impl Message {
    /// A message with only channel, event and data set.
    pub fn new(channel: Channel, event: impl Into<String>, data: impl Into<Payload>) -> Self {
        Self {
            channel,
            event: event.into(),
            data: data.into(),
            id: None,
            position: None,
            timestamp: None,
            sender: None,
        }
    }

    /// Sets the position (builder style).
    pub fn with_position(mut self, position: Position) -> Self {
        self.position = Some(position);
        self
    }

    /// Decodes the payload as `T`, with a `Protocol` error naming the event on mismatch.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        self.data.decode().map_err(|e| {
            RealtimeError::Protocol(format!(
                "event `{}` on `{}` does not decode: {e}",
                self.event, self.channel
            ))
        })
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The target channel.
    pub channel: Channel,
    /// The event name.
    pub event: String,
    /// The payload: JSON or bytes.
    #[serde(flatten, with = "crate::payload::wire")]
    pub data: Payload,
    /// An idempotency id, where the provider supports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Server-side publishing only: the connection (socket id) that must not receive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_socket_id: Option<String>,
}

impl OutboundMessage {
    /// A message with channel, event and data; no id, nobody excluded.
    pub fn new(channel: Channel, event: impl Into<String>, data: impl Into<Payload>) -> Self {
        Self {
            channel,
            event: event.into(),
            data: data.into(),
            id: None,
            exclude_socket_id: None,
        }
    }

    /// A typed event: the event name is `T::NAME`.
    pub fn typed<T: EventType>(channel: Channel, event: &T) -> Result<Self> {
        let data = serde_json::to_value(event).map_err(|e| {
            RealtimeError::Protocol(format!("event `{}` does not serialize: {e}", T::NAME))
        })?;
        Ok(Self::new(channel, T::NAME, data))
    }

    /// The payload's size in bytes (as JSON text, or the number of bytes), the size the
    /// payload limit applies to.
    pub fn payload_size(&self) -> usize {
        self.data.size()
    }

    /// Checks the event name and the payload size against `max_payload`.
    pub fn validate(&self, max_payload: usize) -> Result<()> {
        if self.channel.is_wildcard() {
            return Err(RealtimeError::invalid_channel(
                self.channel.to_string(),
                "cannot publish to a wildcard pattern",
            ));
        }
        if self.event.is_empty() || self.event.len() > MAX_EVENT_NAME_LEN {
            return Err(RealtimeError::Protocol(format!(
                "event names must be 1 to {MAX_EVENT_NAME_LEN} bytes long (got {})",
                self.event.len()
            )));
        }
        let size = self.payload_size();
        if size > max_payload {
            return Err(RealtimeError::PayloadTooLarge {
                size,
                limit: max_payload,
            });
        }
        Ok(())
    }
}

/// A typed event: a payload type bound to its event name, so that subscribing and publishing
/// are checked at compile time.
///
/// ```
/// use relayport_core::EventType;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct ChatMessage { text: String }
/// impl EventType for ChatMessage { const NAME: &'static str = "chat:message"; }
/// assert_eq!(ChatMessage::NAME, "chat:message");
/// ```
pub trait EventType: Serialize + DeserializeOwned + Send + 'static {
    /// The event name this type travels under.
    const NAME: &'static str;
}

/// A typed message as a typed subscription yields it: the decoded payload and its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed<T> {
    /// The decoded payload.
    pub data: T,
    /// The channel it arrived on.
    pub channel: Channel,
    /// The server id, if any.
    pub id: Option<String>,
    /// The stream position, if any.
    pub position: Option<Position>,
    /// The server timestamp (ms since the Unix epoch), if any.
    pub timestamp: Option<u64>,
    /// The sender, if known.
    pub sender: Option<String>,
}

impl<T: EventType> Typed<T> {
    /// Decodes `msg` as `T` (the caller has checked the event name).
    pub fn from_message(msg: Message) -> Result<Self> {
        let data = msg.decode::<T>()?;
        Ok(Self {
            data,
            channel: msg.channel,
            id: msg.id,
            position: msg.position,
            timestamp: msg.timestamp,
            sender: msg.sender,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    #[test]
    fn payload_limit_at_and_past() {
        let limit = 64 * 1024;
        // A JSON string of n chars serializes to n + 2 bytes (the quotes).
        let at = OutboundMessage::new(Channel::public("a"), "e", json!("x".repeat(limit - 2)));
        assert_eq!(at.payload_size(), limit);
        assert!(at.validate(limit).is_ok());
        let past = OutboundMessage::new(Channel::public("a"), "e", json!("x".repeat(limit - 1)));
        let err = past.validate(limit).unwrap_err();
        assert_eq!(
            err,
            RealtimeError::PayloadTooLarge {
                size: limit + 1,
                limit
            }
        );
    }

    #[test]
    fn event_name_limits() {
        let ok = OutboundMessage::new(Channel::public("a"), "e".repeat(200), json!(1));
        assert!(ok.validate(10).is_ok());
        for bad in [String::new(), "e".repeat(201)] {
            let m = OutboundMessage::new(Channel::public("a"), bad, json!(1));
            assert_eq!(m.validate(10).unwrap_err().kind(), ErrorKind::Protocol);
        }
        let wild = OutboundMessage::new("a.*".parse().unwrap(), "e", json!(1));
        assert_eq!(
            wild.validate(10).unwrap_err().kind(),
            ErrorKind::InvalidChannel
        );
    }

    #[test]
    fn json_form_carries_bytes_as_base64_with_their_encoding() {
        let mut m = Message::new(Channel::public("files"), "blob", vec![0u8, 255]);
        m.id = Some("7".into());
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            json!({"channel": "files", "event": "blob", "data": "AP8=", "encoding": "base64", "id": "7"})
        );
        assert_eq!(serde_json::from_value::<Message>(v).unwrap(), m);
        let text = Message::new(Channel::public("news"), "e", json!({"a": 1}));
        let v = serde_json::to_value(&text).unwrap();
        assert_eq!(
            v,
            json!({"channel": "news", "event": "e", "data": {"a": 1}})
        );
        assert_eq!(serde_json::from_value::<Message>(v).unwrap(), text);
        let out = OutboundMessage::new(Channel::public("files"), "blob", vec![1u8]);
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(
            (&v["data"], &v["encoding"]),
            (&json!("AQ=="), &json!("base64"))
        );
        assert_eq!(serde_json::from_value::<OutboundMessage>(v).unwrap(), out);
        // Undecodable bytes are an error, not a string.
        let bad = json!({"channel": "f", "event": "e", "data": "%%", "encoding": "base64"});
        let err = serde_json::from_value::<Message>(bad).unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    }

    #[test]
    fn positions_order_within_an_epoch() {
        let a = Position::new(3);
        assert!(a.is_at_or_before(&Position::new(3)));
        assert!(a.is_at_or_before(&Position::new(4)));
        assert!(!a.is_at_or_before(&Position::new(2)));
        let other_epoch = Position {
            epoch: Some("e2".into()),
            sequence: 10,
        };
        assert!(!a.is_at_or_before(&other_epoch));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Chat {
        text: String,
    }
    impl EventType for Chat {
        const NAME: &'static str = "chat:message";
    }

    #[test]
    fn typed_round_trip_and_mismatch() {
        let out =
            OutboundMessage::typed(Channel::public("r"), &Chat { text: "hi".into() }).unwrap();
        assert_eq!(out.event, "chat:message");
        let msg = Message::new(out.channel.clone(), out.event.clone(), out.data.clone());
        let typed = Typed::<Chat>::from_message(msg).unwrap();
        assert_eq!(typed.data, Chat { text: "hi".into() });
        let bad = Message::new(Channel::public("r"), "chat:message", json!({"txt": 1}));
        let err = Typed::<Chat>::from_message(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.to_string().contains("chat:message"));
    }
}

//! The Ably realtime wire format (JSON protocol, version 6): [`ProtocolMessage`] and the types
//! it carries. Every field is optional and unknown fields are ignored, so that frames from a
//! newer server still parse; absent and `null` fields are equivalent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this client speaks (`v=` query parameter, `X-Ably-Version` header).
pub const PROTOCOL_VERSION: &str = "6";

/// Protocol message actions (`TR2`).
pub mod action {
    /// Keep-alive from the server; a client ping (with `id`) is echoed back.
    pub const HEARTBEAT: i64 = 0;
    /// Publishes acknowledged.
    pub const ACK: i64 = 1;
    /// Publishes refused.
    pub const NACK: i64 = 2;
    /// The connection is established.
    pub const CONNECTED: i64 = 4;
    /// Client asks to disconnect (unused by this client).
    pub const DISCONNECT: i64 = 5;
    /// The server is closing the transport; `error` says why.
    pub const DISCONNECTED: i64 = 6;
    /// Graceful close request from the client.
    pub const CLOSE: i64 = 7;
    /// The server's reply to `CLOSE`.
    pub const CLOSED: i64 = 8;
    /// A connection error (no `channel`) or a channel error.
    pub const ERROR: i64 = 9;
    /// Attach request.
    pub const ATTACH: i64 = 10;
    /// Attach confirmation.
    pub const ATTACHED: i64 = 11;
    /// Detach request.
    pub const DETACH: i64 = 12;
    /// Detach confirmation (or a server-initiated detach).
    pub const DETACHED: i64 = 13;
    /// Presence messages, both ways.
    pub const PRESENCE: i64 = 14;
    /// Messages, both ways.
    pub const MESSAGE: i64 = 15;
    /// A presence sync page.
    pub const SYNC: i64 = 16;
    /// Re-authentication (server request, or client token).
    pub const AUTH: i64 = 17;
}

/// Protocol message flags (`TR3`).
pub mod flags {
    /// On ATTACHED: a presence SYNC follows.
    pub const HAS_PRESENCE: u64 = 1;
    /// On ATTACHED: a backlog follows.
    pub const HAS_BACKLOG: u64 = 2;
    /// On ATTACHED: channel continuity was preserved.
    pub const RESUMED: u64 = 4;
    /// Channel mode: presence.
    pub const MODE_PRESENCE: u64 = 1 << 16;
    /// Channel mode: publish.
    pub const MODE_PUBLISH: u64 = 1 << 17;
    /// Channel mode: subscribe.
    pub const MODE_SUBSCRIBE: u64 = 1 << 18;
    /// Channel mode: presence subscribe.
    pub const MODE_PRESENCE_SUBSCRIBE: u64 = 1 << 19;
}

/// Presence actions (`TP2`).
pub mod presence_action {
    /// Not present (a leave seen during a sync).
    pub const ABSENT: i64 = 0;
    /// Present (from a sync).
    pub const PRESENT: i64 = 1;
    /// Entered.
    pub const ENTER: i64 = 2;
    /// Left.
    pub const LEAVE: i64 = 3;
    /// Changed its data.
    pub const UPDATE: i64 = 4;
}

/// An Ably error (`ErrorInfo`): `{code, statusCode, message, href}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    /// Ably's error code (e.g. 40142).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// The HTTP-like status (e.g. 401).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A link to the error's documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

impl ErrorInfo {
    /// An error with a code, status and message.
    pub fn new(code: i64, status_code: i64, message: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            status_code: Some(status_code),
            message: Some(message.into()),
            href: None,
        }
    }

    /// The code, or 0 when absent.
    pub fn code(&self) -> i64 {
        self.code.unwrap_or(0)
    }

    /// The status, or 0 when absent.
    pub fn status(&self) -> i64 {
        self.status_code.unwrap_or(0)
    }

    /// The message, or an empty string.
    pub fn text(&self) -> &str {
        self.message.as_deref().unwrap_or("")
    }
}

/// `connectionDetails` of a CONNECTED message (`CD2`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDetails {
    /// The client id the connection is bound to (`*` for any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The key to resume this connection with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_key: Option<String>,
    /// The largest message the server accepts, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<u64>,
    /// The largest frame, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frame_size: Option<u64>,
    /// How long the server keeps the connection's state after it drops, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state_ttl: Option<u64>,
    /// The longest the server stays silent, in ms (0: no guarantee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_interval: Option<u64>,
}

/// The `auth` field of an AUTH message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthDetails {
    /// The new token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
}

/// One message inside a MESSAGE protocol message (`TM2`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireMessage {
    /// The message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The client id of the publisher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The publisher's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// The (encoded) payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Opaque extras (headers, push, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extras: Option<Value>,
    /// Message action (0 = create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<i64>,
    /// The encoding chain of `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Server timestamp, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// The message's serial (timeserial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// One presence message (`TP3`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePresence {
    /// The presence message id (`connId:msgSerial:index`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The member's client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The member's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// The (encoded) member data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The presence action (see [`presence_action`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<i64>,
    /// The encoding chain of `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Server timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// The serials an ACK reports for one acknowledged protocol message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublishResult {
    /// One serial per message (`null` for a message conflated away).
    #[serde(default)]
    pub serials: Vec<Option<String>>,
}

/// One frame of the realtime protocol (`TR4`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolMessage {
    /// The action (see [`action`]).
    pub action: i64,
    /// Frame id (ping id, or `connectionId:msgSerial` on server messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Re-authentication token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthDetails>,
    /// The channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The channel serial (or, on SYNC, the sync cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_serial: Option<String>,
    /// Channel parameters (rewind, delta, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<BTreeMap<String, String>>,
    /// Flags (see [`flags`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u64>,
    /// The connection id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// Connection details (CONNECTED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_details: Option<ConnectionDetails>,
    /// The number of acknowledged protocol messages (ACK, NACK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// An error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Server timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Messages (MESSAGE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<WireMessage>>,
    /// Presence messages (PRESENCE, SYNC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Vec<WirePresence>>,
    /// The serial of the (first) acknowledged or published protocol message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_serial: Option<u64>,
    /// ACK results, one per acknowledged protocol message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub res: Option<Vec<PublishResult>>,
}

impl ProtocolMessage {
    /// A message with only an action.
    pub fn new(action: i64) -> Self {
        Self {
            action,
            ..Self::default()
        }
    }

    /// Whether a flag bit is set.
    pub fn has_flag(&self, flag: u64) -> bool {
        self.flags.unwrap_or(0) & flag != 0
    }

    /// Parses a text frame. Malformed JSON or a missing `action` is an error.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The JSON text of this frame.
    pub fn to_json(&self) -> String {
        // Serializing plain data structures with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_nulls_are_tolerated() {
        let m = ProtocolMessage::parse(
            r#"{"action":99,"channel":null,"newField":{"x":1},"connectionDetails":{"clientId":null,"futureThing":3}}"#,
        )
        .unwrap();
        assert_eq!(m.action, 99);
        assert_eq!(m.channel, None);
        assert_eq!(m.connection_details.unwrap().client_id, None);
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bad in [
            "",
            "{",
            "[]",
            "{\"channel\":\"x\"}",
            "{\"action\":\"four\"}",
            "null",
        ] {
            assert!(
                ProtocolMessage::parse(bad).is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn serializes_without_absent_fields() {
        let mut m = ProtocolMessage::new(action::ATTACH);
        m.channel = Some("room".into());
        assert_eq!(m.to_json(), r#"{"action":10,"channel":"room"}"#);
    }
}

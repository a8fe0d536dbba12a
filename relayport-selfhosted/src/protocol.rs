//! The native wire protocol (version 1), shared by the server and the client.
//!
//! One JSON object per WebSocket text frame, both ways, tagged by `"type"`. The protocol
//! version is chosen by the `v` query parameter of `GET /ws` (only [`PROTOCOL_VERSION`] is
//! supported; any other gets an `error` frame with code `unsupported_version` and a close with
//! [`close::UNSUPPORTED_VERSION`]). `PROTOCOL.md` documents every frame with an example.
//!
//! Requests may carry a `ref` (any string chosen by the client); the answer to that request
//! (`subscribed`, `unsubscribed`, `ack`, `error`, `pong`) carries the same `ref`.

use relayport_core::{
    Channel, Message, OutboundMessage, Payload, Position, PresenceMember, RealtimeError, Result,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// WebSocket close codes the server uses.
pub mod close {
    /// The server is shutting down or restarting: reconnect at once (RFC 6455 1012).
    pub const SERVICE_RESTART: u16 = 1012;
    /// The `v` query parameter names a version the server does not speak: fatal.
    pub const UNSUPPORTED_VERSION: u16 = 4000;
    /// The client stopped reading and its send queue filled: reconnect (with backoff) and
    /// recover through history.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The client sent no frame (not even a ping) for too long: reconnect.
    pub const IDLE_TIMEOUT: u16 = 4009;
    /// The client sent a frame larger than the server reads at all (past twice
    /// `max_frame_size`; RFC 6455 1009, message too big). Frames up to that size get a
    /// `frame_too_large` error instead and the connection stays open.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

/// Stable error codes carried by `error` frames and HTTP error bodies.
pub mod code {
    /// The frame is not valid JSON, or a field has the wrong type.
    pub const MALFORMED: &str = "malformed";
    /// The frame's `type` is unknown.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// The `v` query parameter names an unsupported protocol version.
    pub const UNSUPPORTED_VERSION: &str = "unsupported_version";
    /// The channel name is invalid.
    pub const INVALID_CHANNEL: &str = "invalid_channel";
    /// A private or presence subscription without a valid signature.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The operation is not allowed on this channel (client publish on a public channel…).
    pub const FORBIDDEN: &str = "forbidden";
    /// The payload exceeds the limit.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// The connection has as many subscriptions as allowed.
    pub const TOO_MANY_SUBSCRIPTIONS: &str = "too_many_subscriptions";
    /// The connection publishes faster than allowed.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The operation needs a subscription the connection does not have.
    pub const NOT_SUBSCRIBED: &str = "not_subscribed";
    /// The frame is larger than the server reads.
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    /// `POST /publish`: a batch with more events than allowed (100).
    pub const BATCH_TOO_LARGE: &str = "batch_too_large";
    /// The server cannot do it now (the scale-out engine is unreachable…): try again.
    pub const UNAVAILABLE: &str = "unavailable";
    /// HTTP: the resource does not exist.
    pub const NOT_FOUND: &str = "not_found";
    /// SSE: the requested `socket_id` is already in use.
    pub const CONFLICT: &str = "conflict";
    /// HTTP: the request (body included) took longer than the server waits.
    pub const TIMEOUT: &str = "timeout";
}

/// The limits a server enforces, announced in `connected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Limits {
    /// The largest `data` payload, in bytes (as JSON).
    pub max_payload: usize,
    /// Subscriptions per connection.
    pub max_subscriptions: usize,
    /// Client publishes per connection per minute.
    pub publishes_per_minute: u32,
    /// Frames the server queues for one connection before disconnecting it as a slow
    /// consumer.
    pub send_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload: 64 * 1024,
            max_subscriptions: 50,
            publishes_per_minute: 100,
            send_queue: 1000,
        }
    }
}

/// A frame from client to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Subscribe to a channel or a wildcard pattern.
    Subscribe {
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The neutral channel name (`room`, `private:room`, `presence:room`, `agent.*`).
        channel: String,
        /// For private and presence channels: the hex HMAC signature from the auth endpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<String>,
        /// For presence channels: the exact JSON string that was signed,
        /// `{"user_id": …, "user_info": …}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel_data: Option<String>,
        /// Replay what was published after this position.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
    },
    /// Leave a channel.
    Unsubscribe {
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The channel.
        channel: String,
    },
    /// Publish on a channel (private/presence, unless the server allows public client
    /// publishes). The sender receives it too.
    Publish {
        /// Echoed in the `ack` or `error`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// The payload (base64 text when `encoding` is `base64`).
        data: Value,
        /// `base64` for a binary payload; absent for JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "typescript", ts(optional))]
        encoding: Option<String>,
    },
    /// Enter a presence channel's member set (the user is the one signed in `channel_data`).
    PresenceEnter {
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The channel.
        channel: String,
        /// Member data shown to others (replaces `user_info`).
        #[serde(default)]
        data: Value,
    },
    /// Change this member's data.
    PresenceUpdate {
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The channel.
        channel: String,
        /// The new data.
        data: Value,
    },
    /// Leave a presence channel's member set (staying subscribed).
    PresenceLeave {
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The channel.
        channel: String,
    },
    /// A heartbeat; answered with `pong`.
    Ping {
        /// Echoed in the `pong`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Read one page of a channel's retained history; answered with `history`. Public
    /// channels: anyone; private and presence channels: connections subscribed to them.
    History {
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The channel (not a pattern).
        channel: String,
        /// At most this many messages (capped at 100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        /// `backwards` (newest first, the default) or `forwards`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        direction: Option<HistoryDirection>,
        /// Only messages after this position (ignored when its epoch is not the channel's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
        /// Only messages with `ts` at or after this (ms since the Unix epoch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<u64>,
        /// Only messages with `ts` at or before this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<u64>,
        /// The `cursor` of the previous page's answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
}

/// The order of a `history` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum HistoryDirection {
    /// Newest first.
    Backwards,
    /// Oldest first.
    Forwards,
}

/// The most messages one `history` answer carries.
pub const MAX_HISTORY_PAGE: usize = 100;

/// A message as the server sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct MessageFrame {
    /// The concrete channel.
    pub channel: String,
    /// The event name.
    pub event: String,
    /// The payload (base64 text when `encoding` is `base64`).
    pub data: Value,
    /// `base64` for a binary payload; absent for JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "typescript", ts(optional))]
    pub encoding: Option<String>,
    /// The server-assigned id.
    pub id: String,
    /// The per-channel sequence number (1-based, gapless within an epoch).
    pub seq: u64,
    /// The channel stream's epoch (changes when the server loses its history).
    pub epoch: String,
    /// Server time, milliseconds since the Unix epoch.
    pub ts: u64,
    /// The publishing connection's socket id, when a client published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

/// The body of one `POST /publish` event for `message`: channel, event, data (with its
/// `encoding` for bytes) and the socket id to exclude.
pub fn publish_body(message: &OutboundMessage) -> Value {
    let (data, encoding) = message.data.to_wire();
    let mut body = serde_json::json!({
        "channel": message.channel.to_string(),
        "event": message.event,
        "data": data,
    });
    if let Some(encoding) = encoding {
        body["encoding"] = Value::from(encoding);
    }
    if let Some(socket_id) = &message.exclude_socket_id {
        body["socket_id"] = Value::from(socket_id.as_str());
    }
    body
}

impl MessageFrame {
    /// The core's [`Message`]; a `Protocol` error for an invalid channel name or a payload
    /// whose encoding does not decode.
    pub fn to_message(&self) -> Result<Message> {
        let channel = Channel::parse(&self.channel).map_err(|_| {
            RealtimeError::Protocol(format!(
                "a message on an invalid channel `{}`",
                self.channel
            ))
        })?;
        Ok(Message {
            channel,
            event: self.event.clone(),
            data: Payload::from_wire(self.data.clone(), self.encoding.as_deref())?,
            id: Some(self.id.clone()),
            position: Some(Position {
                epoch: Some(self.epoch.clone()),
                sequence: self.seq,
            }),
            timestamp: Some(self.ts),
            sender: self.sender.clone(),
        })
    }
}

/// What happened in a `presence` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum PresenceAction {
    /// A member joined (its first connection entered).
    Join,
    /// A member left (its last connection left).
    Leave,
    /// A member changed its data.
    Update,
}

/// A frame from server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The first frame on every connection.
    Connected {
        /// This connection's id; signatures are bound to it.
        socket_id: String,
        /// The protocol version in use.
        protocol: u32,
        /// How often the client should ping, in milliseconds.
        heartbeat_ms: u64,
        /// The limits in force.
        limits: Limits,
    },
    /// A subscription is live.
    Subscribed {
        /// The request's `ref`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The channel.
        channel: String,
        /// The channel's retained state, delivered before any live message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<MessageFrame>,
        /// Presence channels: the current members.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        members: Option<Vec<PresenceMember>>,
        /// With `since`: whether every missed message is in `messages`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// With `since`: the missed messages, oldest first.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        messages: Vec<MessageFrame>,
        /// The channel's current position (the last sequence published), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<Position>,
    },
    /// A subscription ended at the client's request.
    Unsubscribed {
        /// The request's `ref`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The channel.
        channel: String,
    },
    /// A publish or presence request succeeded.
    Ack {
        /// The request's `ref`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// A message on a subscribed channel.
    Message(MessageFrame),
    /// A presence change on a subscribed presence channel.
    Presence {
        /// The channel.
        channel: String,
        /// What happened.
        action: PresenceAction,
        /// The member.
        member: PresenceMember,
    },
    /// A request failed, or the server refuses something.
    Error {
        /// The failed request's `ref`, if it had one and could be read.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// A stable code from [`code`].
        code: String,
        /// A human-readable message.
        message: String,
        /// The channel concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    /// The answer to `ping`.
    Pong {
        /// The ping's `ref`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// The answer to `history`: one page.
    History {
        /// The request's `ref`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The channel.
        channel: String,
        /// The messages, in the requested direction.
        messages: Vec<MessageFrame>,
        /// Where the next page starts (send it as `cursor`); absent on the last page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
    },
}

/// The string a private subscription's signature covers: `socket_id:channel`.
pub fn private_signing_string(socket_id: &str, channel: &str) -> String {
    format!("{socket_id}:{channel}")
}

/// The string a presence subscription's signature covers: `socket_id:channel:channel_data`.
pub fn presence_signing_string(socket_id: &str, channel: &str, channel_data: &str) -> String {
    format!("{socket_id}:{channel}:{channel_data}")
}

/// The native protocol's frames as a TypeScript module (feature `typescript`): the committed
/// `bindings/protocol.ts` of this crate, checked in CI by `tests/typescript.rs`.
#[cfg(feature = "typescript")]
pub fn typescript_declarations() -> String {
    relayport_core::typescript::Declarations::new("relayport-selfhosted")
        .ty::<Value>()
        .ty::<Position>()
        .ty::<PresenceMember>()
        .ty::<Limits>()
        .ty::<MessageFrame>()
        .ty::<PresenceAction>()
        .ty::<HistoryDirection>()
        .ty::<ClientFrame>()
        .ty::<ServerFrame>()
        .render()
}

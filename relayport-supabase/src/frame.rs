//! The wire codec: Phoenix text frames (vsn 1.0.0 JSON objects, vsn 2.0.0 JSON arrays) and the
//! vsn 2.0.0 binary frames (kind 3 user broadcast push, kind 4 user broadcast, and the Phoenix
//! kinds 0, 1 and 2).
//!
//! Every length in a binary header is one unsigned byte, so each variable-length header field
//! (join_ref, ref, topic, event, metadata) is at most [`MAX_HEADER_FIELD`] bytes of UTF-8. The
//! encoder refuses longer fields instead of truncating them; the decoder refuses truncated or
//! inconsistent frames with a [`FrameError`], never a panic.

use serde_json::Value;

/// The longest variable-length field of a binary frame header, in bytes (lengths are `u8`).
pub const MAX_HEADER_FIELD: usize = 255;

/// Binary frame kind: Phoenix push (server→client here).
pub const KIND_PUSH: u8 = 0;
/// Binary frame kind: Phoenix reply.
pub const KIND_REPLY: u8 = 1;
/// Binary frame kind: Phoenix broadcast.
pub const KIND_BROADCAST: u8 = 2;
/// Binary frame kind: user broadcast push (client→server).
pub const KIND_USER_BROADCAST_PUSH: u8 = 3;
/// Binary frame kind: user broadcast (server→client).
pub const KIND_USER_BROADCAST: u8 = 4;

/// The Phoenix serializer version, chosen by the `vsn` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolVersion {
    /// `1.0.0`: JSON objects in text frames; the server never sends `join_ref`.
    V1,
    /// `2.0.0` (the default, as in realtime-js ≥ 2.91): JSON arrays and binary broadcasts.
    #[default]
    V2,
}

impl ProtocolVersion {
    /// The value of the `vsn` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "1.0.0",
            Self::V2 => "2.0.0",
        }
    }

    /// Parses a `vsn` value.
    pub fn parse(vsn: &str) -> Option<Self> {
        match vsn {
            "1.0.0" => Some(Self::V1),
            "2.0.0" => Some(Self::V2),
            _ => None,
        }
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A header field longer than the `u8` length allows.
    #[error("binary frame field `{field}` is {len} bytes long; the limit is {MAX_HEADER_FIELD}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The frame ends before a header or field it announces.
    #[error("binary frame truncated: {0}")]
    Truncated(String),
    /// A binary kind this client does not know.
    #[error("unknown binary frame kind {0}")]
    UnknownKind(u8),
    /// A user payload encoding other than 0 (binary) and 1 (JSON).
    #[error("unknown user payload encoding {0}")]
    UnknownEncoding(u8),
    /// A header field that is not UTF-8.
    #[error("binary frame field `{0}` is not UTF-8")]
    NotUtf8(&'static str),
    /// Text that is not JSON, or JSON that is not a Phoenix message.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl From<FrameError> for relayport_core::RealtimeError {
    fn from(e: FrameError) -> Self {
        relayport_core::RealtimeError::Protocol(e.to_string())
    }
}

/// A user payload: JSON or raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum UserPayload {
    /// JSON (binary encoding byte 1; UTF-8 JSON text on the wire).
    Json(Value),
    /// Raw bytes (binary encoding byte 0).
    Binary(Vec<u8>),
}

/// One message the client sends as a text frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutgoingText<'a> {
    /// The channel's join ref (`None` for the `phoenix` topic).
    pub join_ref: Option<&'a str>,
    /// This push's ref.
    pub ref_: &'a str,
    /// The topic (`realtime:<name>` or `phoenix`).
    pub topic: &'a str,
    /// The Phoenix event (`phx_join`, `broadcast`, `presence`, …).
    pub event: &'a str,
    /// The payload, as JSON text (kept as text so that key order is exactly what the caller
    /// serialized).
    pub payload_json: &'a str,
}

fn json_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Encodes a client text frame the way realtime-js does.
///
/// ```
/// use relayport_supabase::frame::{encode_text, OutgoingText, ProtocolVersion};
/// let hb = OutgoingText { join_ref: None, ref_: "12", topic: "phoenix", event: "heartbeat", payload_json: "{}" };
/// assert_eq!(encode_text(ProtocolVersion::V2, &hb), r#"[null,"12","phoenix","heartbeat",{}]"#);
/// assert_eq!(encode_text(ProtocolVersion::V1, &hb), r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"12"}"#);
/// ```
pub fn encode_text(vsn: ProtocolVersion, msg: &OutgoingText<'_>) -> String {
    match vsn {
        ProtocolVersion::V2 => format!(
            "[{},{},{},{},{}]",
            msg.join_ref.map_or_else(|| "null".to_owned(), json_str),
            json_str(msg.ref_),
            json_str(msg.topic),
            json_str(msg.event),
            msg.payload_json
        ),
        ProtocolVersion::V1 => {
            let mut s = format!(
                "{{\"topic\":{},\"event\":{},\"payload\":{},\"ref\":{}",
                json_str(msg.topic),
                json_str(msg.event),
                msg.payload_json,
                json_str(msg.ref_)
            );
            if let Some(jr) = msg.join_ref {
                s.push_str(",\"join_ref\":");
                s.push_str(&json_str(jr));
            }
            s.push('}');
            s
        }
    }
}

/// A kind-3 user broadcast push, as the client sends it on vsn 2.0.0.
#[derive(Debug, Clone, PartialEq)]
pub struct UserBroadcastPush {
    /// The channel's join ref.
    pub join_ref: String,
    /// This push's ref.
    pub ref_: String,
    /// The topic (`realtime:<name>`).
    pub topic: String,
    /// The user event name.
    pub user_event: String,
    /// Metadata (a JSON object such as `{"persist":true}`), if any.
    pub metadata: Option<Value>,
    /// The user payload.
    pub payload: UserPayload,
}

fn check_len(field: &'static str, bytes: &[u8]) -> Result<u8, FrameError> {
    u8::try_from(bytes.len()).map_err(|_| FrameError::FieldTooLong {
        field,
        len: bytes.len(),
    })
}

/// Encodes a kind-3 frame byte for byte as realtime-js does; refuses header fields over
/// [`MAX_HEADER_FIELD`] bytes.
///
/// ```
/// use relayport_supabase::frame::{encode_user_broadcast_push, UserBroadcastPush, UserPayload};
/// let frame = encode_user_broadcast_push(&UserBroadcastPush {
///     join_ref: "6".into(), ref_: "8".into(), topic: "realtime:room1".into(),
///     user_event: "bin".into(), metadata: None, payload: UserPayload::Binary(vec![1, 2, 3, 0xff]),
/// }).unwrap();
/// assert_eq!(frame[..7], [3, 1, 1, 14, 3, 0, 0]);
/// ```
pub fn encode_user_broadcast_push(push: &UserBroadcastPush) -> Result<Vec<u8>, FrameError> {
    let metadata = match &push.metadata {
        None => Vec::new(),
        Some(m) => serde_json::to_vec(m).map_err(|e| FrameError::Malformed(e.to_string()))?,
    };
    let (encoding, body) = match &push.payload {
        UserPayload::Binary(b) => (0u8, b.clone()),
        UserPayload::Json(v) => (
            1u8,
            serde_json::to_vec(v).map_err(|e| FrameError::Malformed(e.to_string()))?,
        ),
    };
    let lens = [
        check_len("join_ref", push.join_ref.as_bytes())?,
        check_len("ref", push.ref_.as_bytes())?,
        check_len("topic", push.topic.as_bytes())?,
        check_len("user_event", push.user_event.as_bytes())?,
        check_len("metadata", &metadata)?,
    ];
    let mut out =
        Vec::with_capacity(7 + lens.iter().map(|l| *l as usize).sum::<usize>() + body.len());
    out.push(KIND_USER_BROADCAST_PUSH);
    out.extend_from_slice(&lens);
    out.push(encoding);
    out.extend_from_slice(push.join_ref.as_bytes());
    out.extend_from_slice(push.ref_.as_bytes());
    out.extend_from_slice(push.topic.as_bytes());
    out.extend_from_slice(push.user_event.as_bytes());
    out.extend_from_slice(&metadata);
    out.extend_from_slice(&body);
    Ok(out)
}

/// A frame from the server, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFrame {
    /// The join ref, when the server sent one.
    pub join_ref: Option<String>,
    /// The ref (set on replies).
    pub ref_: Option<String>,
    /// The topic.
    pub topic: String,
    /// The Phoenix event (`phx_reply`, `broadcast`, `presence_diff`, …).
    pub event: String,
    /// The payload.
    pub body: Body,
}

/// The payload of a [`ServerFrame`].
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A JSON payload (text frames).
    Json(Value),
    /// A kind-4 user broadcast.
    UserBroadcast {
        /// The user event name.
        user_event: String,
        /// The metadata object, if any (`{"id": …}`, `{"replayed": true, …}`).
        metadata: Option<Value>,
        /// The user payload.
        payload: UserPayload,
    },
    /// A kind-1 reply: status and raw response bytes.
    Reply {
        /// `ok` or `error`.
        status: String,
        /// The response bytes.
        data: Vec<u8>,
    },
    /// The raw data of a kind-0 push or kind-2 broadcast.
    Binary(Vec<u8>),
}

fn ref_field(v: &Value, what: &str) -> Result<Option<String>, FrameError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(FrameError::Malformed(format!(
            "{what} must be a string or null, got {other}"
        ))),
    }
}

fn str_field(v: &Value, what: &str) -> Result<String, FrameError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| FrameError::Malformed(format!("{what} must be a string")))
}

/// Decodes a server text frame: a vsn 2.0.0 array `[join_ref, ref, topic, event, payload]`
/// (extra trailing items tolerated) or a vsn 1.0.0 object.
pub fn decode_text(text: &str) -> Result<ServerFrame, FrameError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| FrameError::Malformed(format!("not JSON: {e}")))?;
    match v {
        Value::Array(items) => {
            if items.len() < 5 {
                return Err(FrameError::Malformed(format!(
                    "a vsn 2.0.0 frame has at least 5 items, got {}",
                    items.len()
                )));
            }
            Ok(ServerFrame {
                join_ref: ref_field(&items[0], "join_ref")?,
                ref_: ref_field(&items[1], "ref")?,
                topic: str_field(&items[2], "topic")?,
                event: str_field(&items[3], "event")?,
                body: Body::Json(items[4].clone()),
            })
        }
        Value::Object(map) => {
            let get = |k: &str| map.get(k).cloned().unwrap_or(Value::Null);
            Ok(ServerFrame {
                join_ref: ref_field(&get("join_ref"), "join_ref")?,
                ref_: ref_field(&get("ref"), "ref")?,
                topic: str_field(&get("topic"), "topic")?,
                event: str_field(&get("event"), "event")?,
                body: Body::Json(map.get("payload").cloned().unwrap_or(Value::Null)),
            })
        }
        other => Err(FrameError::Malformed(format!(
            "expected a JSON array or object, got {other}"
        ))),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn header(buf: &'a [u8], n: usize, kind: u8) -> Result<(Self, &'a [u8]), FrameError> {
        let head = buf.get(1..1 + n).ok_or_else(|| {
            FrameError::Truncated(format!(
                "kind {kind} needs a {n}-byte header, the frame has {} bytes after the kind",
                buf.len().saturating_sub(1)
            ))
        })?;
        Ok((Self { buf, pos: 1 + n }, head))
    }

    fn take(&mut self, len: u8, field: &'static str) -> Result<&'a [u8], FrameError> {
        let end = self.pos + len as usize;
        let bytes = self.buf.get(self.pos..end).ok_or_else(|| {
            FrameError::Truncated(format!(
                "field `{field}` announces {len} bytes, only {} remain",
                self.buf.len().saturating_sub(self.pos)
            ))
        })?;
        self.pos = end;
        Ok(bytes)
    }

    fn take_str(&mut self, len: u8, field: &'static str) -> Result<String, FrameError> {
        let bytes = self.take(len, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| FrameError::NotUtf8(field))
    }

    fn rest(&self) -> Vec<u8> {
        self.buf.get(self.pos..).unwrap_or_default().to_vec()
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn decode_metadata(bytes: &[u8]) -> Result<Option<Value>, FrameError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(Some(v)),
        Ok(other) => Err(FrameError::Malformed(format!(
            "metadata must be a JSON object, got {other}"
        ))),
        Err(e) => Err(FrameError::Malformed(format!("metadata is not JSON: {e}"))),
    }
}

fn decode_user_payload(encoding: u8, bytes: Vec<u8>) -> Result<UserPayload, FrameError> {
    match encoding {
        0 => Ok(UserPayload::Binary(bytes)),
        1 => serde_json::from_slice(&bytes)
            .map(UserPayload::Json)
            .map_err(|e| FrameError::Malformed(format!("JSON user payload is not JSON: {e}"))),
        other => Err(FrameError::UnknownEncoding(other)),
    }
}

/// Decodes a server binary frame: kind 4 (user broadcast), and defensively kinds 0, 1 and 2.
pub fn decode_binary(buf: &[u8]) -> Result<ServerFrame, FrameError> {
    let kind = *buf
        .first()
        .ok_or_else(|| FrameError::Truncated("empty binary frame".into()))?;
    match kind {
        KIND_USER_BROADCAST => {
            let (mut r, h) = Reader::header(buf, 4, kind)?;
            let topic = r.take_str(h[0], "topic")?;
            let user_event = r.take_str(h[1], "user_event")?;
            let metadata = decode_metadata(r.take(h[2], "metadata")?)?;
            let payload = decode_user_payload(h[3], r.rest())?;
            Ok(ServerFrame {
                join_ref: None,
                ref_: None,
                topic,
                event: "broadcast".into(),
                body: Body::UserBroadcast {
                    user_event,
                    metadata,
                    payload,
                },
            })
        }
        KIND_PUSH => {
            let (mut r, h) = Reader::header(buf, 3, kind)?;
            let join_ref = non_empty(r.take_str(h[0], "join_ref")?);
            let topic = r.take_str(h[1], "topic")?;
            let event = r.take_str(h[2], "event")?;
            Ok(ServerFrame {
                join_ref,
                ref_: None,
                topic,
                event,
                body: Body::Binary(r.rest()),
            })
        }
        KIND_REPLY => {
            let (mut r, h) = Reader::header(buf, 4, kind)?;
            let join_ref = non_empty(r.take_str(h[0], "join_ref")?);
            let ref_ = non_empty(r.take_str(h[1], "ref")?);
            let topic = r.take_str(h[2], "topic")?;
            let status = r.take_str(h[3], "status")?;
            Ok(ServerFrame {
                join_ref,
                ref_,
                topic,
                event: "phx_reply".into(),
                body: Body::Reply {
                    status,
                    data: r.rest(),
                },
            })
        }
        KIND_BROADCAST => {
            let (mut r, h) = Reader::header(buf, 2, kind)?;
            let topic = r.take_str(h[0], "topic")?;
            let event = r.take_str(h[1], "event")?;
            Ok(ServerFrame {
                join_ref: None,
                ref_: None,
                topic,
                event,
                body: Body::Binary(r.rest()),
            })
        }
        other => Err(FrameError::UnknownKind(other)),
    }
}

/// Decodes a kind-3 frame (what a client sends): for servers and test peers.
pub fn decode_user_broadcast_push(buf: &[u8]) -> Result<UserBroadcastPush, FrameError> {
    let kind = *buf
        .first()
        .ok_or_else(|| FrameError::Truncated("empty binary frame".into()))?;
    if kind != KIND_USER_BROADCAST_PUSH {
        return Err(FrameError::UnknownKind(kind));
    }
    let (mut r, h) = Reader::header(buf, 6, kind)?;
    let join_ref = r.take_str(h[0], "join_ref")?;
    let ref_ = r.take_str(h[1], "ref")?;
    let topic = r.take_str(h[2], "topic")?;
    let user_event = r.take_str(h[3], "user_event")?;
    let metadata = decode_metadata(r.take(h[4], "metadata")?)?;
    let payload = decode_user_payload(h[5], r.rest())?;
    Ok(UserBroadcastPush {
        join_ref,
        ref_,
        topic,
        user_event,
        metadata,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push(topic: &str, event: &str, meta: Option<Value>) -> UserBroadcastPush {
        UserBroadcastPush {
            join_ref: "1".into(),
            ref_: "2".into(),
            topic: topic.into(),
            user_event: event.into(),
            metadata: meta,
            payload: UserPayload::Json(json!({})),
        }
    }

    #[test]
    fn header_fields_at_and_past_255_bytes() {
        let at = "t".repeat(255);
        let past = "t".repeat(256);
        let frame = encode_user_broadcast_push(&push(&at, "e", None)).unwrap();
        assert_eq!(frame[3], 255);
        assert_eq!(decode_user_broadcast_push(&frame).unwrap().topic, at);
        assert_eq!(
            encode_user_broadcast_push(&push(&past, "e", None)).unwrap_err(),
            FrameError::FieldTooLong {
                field: "topic",
                len: 256
            }
        );
        let frame = encode_user_broadcast_push(&push("t", &at, None)).unwrap();
        assert_eq!(frame[4], 255);
        assert!(matches!(
            encode_user_broadcast_push(&push("t", &past, None)),
            Err(FrameError::FieldTooLong {
                field: "user_event",
                len: 256
            })
        ));
        // {"k":"…"} is 8 bytes around the string.
        let meta_at = json!({ "k": "m".repeat(247) });
        let frame = encode_user_broadcast_push(&push("t", "e", Some(meta_at))).unwrap();
        assert_eq!(frame[5], 255);
        let meta_past = json!({ "k": "m".repeat(248) });
        assert!(matches!(
            encode_user_broadcast_push(&push("t", "e", Some(meta_past))),
            Err(FrameError::FieldTooLong {
                field: "metadata",
                len: 256
            })
        ));
        let mut p = push("t", "e", None);
        p.join_ref = "9".repeat(256);
        assert!(matches!(
            encode_user_broadcast_push(&p),
            Err(FrameError::FieldTooLong {
                field: "join_ref",
                ..
            })
        ));
        let mut p = push("t", "e", None);
        p.ref_ = "9".repeat(256);
        assert!(matches!(
            encode_user_broadcast_push(&p),
            Err(FrameError::FieldTooLong { field: "ref", .. })
        ));
    }

    #[test]
    fn malformed_binary_frames_are_errors() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "empty"),
            (vec![4], "kind 4 without header"),
            (vec![4, 14, 6, 0], "kind 4 with a 3-byte header"),
            (vec![4, 14, 6, 0, 1, b'r'], "topic longer than the frame"),
            (vec![4, 1, 1, 0, 7, b't', b'e'], "unknown encoding"),
            (vec![4, 1, 1, 0, 1, b't', b'e', b'{'], "bad JSON payload"),
            (vec![4, 1, 1, 1, 0, b't', b'e', b'['], "metadata not JSON"),
            (
                vec![4, 1, 1, 1, 0, b't', b'e', b'1'],
                "metadata not an object",
            ),
            (vec![4, 1, 1, 0, 0, 0xff, b'e'], "topic not UTF-8"),
            (vec![9, 0, 0], "unknown kind"),
            (vec![3, 0, 0, 0, 0, 0, 1], "kind 3 is client to server"),
            (vec![0, 1, 1], "kind 0 short header"),
            (vec![1, 1, 1, 1], "kind 1 short header"),
            (vec![1, 1, 1, 1, 5, b'1'], "kind 1 truncated fields"),
            (vec![2, 5], "kind 2 short header"),
            (vec![2, 5, 0, b'a'], "kind 2 truncated topic"),
        ];
        for (bytes, what) in cases {
            assert!(decode_binary(&bytes).is_err(), "{what} should be refused");
        }
    }

    #[test]
    fn phoenix_binary_kinds_decode() {
        let mut f = vec![0, 1, 1, 2, b'6', b't', b'e', b'v'];
        f.extend_from_slice(b"data");
        let d = decode_binary(&f).unwrap();
        assert_eq!(d.join_ref.as_deref(), Some("6"));
        assert_eq!(d.topic, "t");
        assert_eq!(d.event, "ev");
        assert_eq!(d.body, Body::Binary(b"data".to_vec()));
        let f = [1, 1, 1, 1, 2, b'6', b'7', b't', b'o', b'k', b'x'];
        let d = decode_binary(&f).unwrap();
        assert_eq!(d.ref_.as_deref(), Some("7"));
        assert_eq!(
            d.body,
            Body::Reply {
                status: "ok".into(),
                data: vec![b'x']
            }
        );
        let f = [2, 1, 1, b't', b'e', 1, 2];
        let d = decode_binary(&f).unwrap();
        assert_eq!((d.topic.as_str(), d.event.as_str()), ("t", "e"));
        assert_eq!(d.body, Body::Binary(vec![1, 2]));
    }

    #[test]
    fn malformed_text_frames_are_errors() {
        for bad in [
            "",
            "not json",
            "[1,2,3",
            "[null,null,\"t\",\"e\"]",
            "[1,null,\"t\",\"e\",{}]",
            "[null,null,7,\"e\",{}]",
            "[null,null,\"t\",null,{}]",
            "42",
            "\"s\"",
            "{\"event\":\"e\"}",
            "{\"topic\":\"t\",\"event\":\"e\",\"ref\":5}",
        ] {
            assert!(decode_text(bad).is_err(), "{bad:?} should be refused");
        }
        let extra = decode_text("[null,null,\"t\",\"e\",{},\"extra\"]").unwrap();
        assert_eq!(extra.topic, "t");
    }
}

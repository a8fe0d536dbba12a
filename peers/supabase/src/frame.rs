//! The wire: Phoenix messages in vsn 1.0.0 (JSON objects) and vsn 2.0.0 (JSON arrays, plus
//! the binary user-broadcast frames: kind 3 from clients, kind 4 to clients).

use serde_json::{Map, Value, json};

/// The serializer a socket negotiated with `vsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsn {
    /// `1.0.0`: JSON objects; the server never sends `join_ref`.
    V1,
    /// `2.0.0`: JSON arrays `[join_ref, ref, topic, event, payload]` and binary broadcasts.
    V2,
}

impl Vsn {
    /// The `vsn` query value (missing means 1.0.0, as in Phoenix).
    pub fn parse(v: Option<&str>) -> Option<Vsn> {
        match v {
            None | Some("1.0.0") => Some(Vsn::V1),
            Some("2.0.0") => Some(Vsn::V2),
            Some(_) => None,
        }
    }
}

/// A user broadcast's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum UserPayload {
    /// JSON.
    Json(Value),
    /// Raw bytes (only a binary frame or REST octet-stream carries them).
    Binary(Vec<u8>),
}

/// A user broadcast on its way to subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// The user event name.
    pub event: String,
    /// The user payload.
    pub payload: UserPayload,
    /// Server metadata (`{"id": ..}`), if any.
    pub meta: Option<Value>,
    /// Arrived as a binary frame: vsn 2 subscribers get a kind-4 frame.
    pub binary_frame: bool,
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The channel's join ref (None on the heartbeat).
    pub join_ref: Option<String>,
    /// This push's ref.
    pub msg_ref: Option<String>,
    /// `realtime:<name>` or `phoenix`.
    pub topic: String,
    /// The Phoenix event.
    pub event: String,
    /// The payload (for a binary broadcast: `{type, event}` only; the user payload is in
    /// `broadcast`).
    pub payload: Value,
    /// Set for a kind-3 binary broadcast push.
    pub broadcast: Option<Broadcast>,
}

/// Why a frame could not be read (the server logs `MalformedWebSocketMessage` and keeps the
/// socket open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

fn opt_str(v: &Value) -> Result<Option<String>, Malformed> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(Malformed(format!("a ref is not a string: {other}"))),
    }
}

fn req_str(v: &Value, what: &str) -> Result<String, Malformed> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| Malformed(format!("{what} is not a string")))
}

/// Decodes a text frame.
pub fn decode_text(vsn: Vsn, text: &str) -> Result<Inbound, Malformed> {
    let v: Value = serde_json::from_str(text).map_err(|e| Malformed(format!("not JSON: {e}")))?;
    match vsn {
        Vsn::V2 => {
            let Value::Array(items) = v else {
                return Err(Malformed("vsn 2.0.0 text must be a JSON array".into()));
            };
            if items.len() < 5 {
                return Err(Malformed(format!(
                    "a message array has {} items, not 5",
                    items.len()
                )));
            }
            Ok(Inbound {
                join_ref: opt_str(&items[0])?,
                msg_ref: opt_str(&items[1])?,
                topic: req_str(&items[2], "topic")?,
                event: req_str(&items[3], "event")?,
                payload: items[4].clone(),
                broadcast: None,
            })
        }
        Vsn::V1 => {
            let Value::Object(m) = v else {
                return Err(Malformed("vsn 1.0.0 text must be a JSON object".into()));
            };
            let get = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
            Ok(Inbound {
                join_ref: opt_str(&get("join_ref"))?,
                msg_ref: opt_str(&get("ref"))?,
                topic: req_str(&get("topic"), "topic")?,
                event: req_str(&get("event"), "event")?,
                payload: get("payload"),
                broadcast: None,
            })
        }
    }
}

/// Decodes a binary frame: only kind 3 (user broadcast push) is valid from a client.
pub fn decode_binary(bytes: &[u8]) -> Result<Inbound, Malformed> {
    let short = || {
        Malformed(format!(
            "a binary frame of {} bytes is truncated",
            bytes.len()
        ))
    };
    match bytes.first() {
        Some(3) => {}
        Some(k) => return Err(Malformed(format!("binary kind {k} is not a client push"))),
        None => return Err(short()),
    }
    let header = bytes.get(1..7).ok_or_else(short)?;
    let encoding = header[5];
    let mut at = 7usize;
    let mut field = |len: u8| -> Result<&[u8], Malformed> {
        let end = at + usize::from(len);
        let f = bytes.get(at..end).ok_or_else(short)?;
        at = end;
        Ok(f)
    };
    let text = |b: &[u8], what: &str| {
        String::from_utf8(b.to_vec()).map_err(|_| Malformed(format!("{what} is not UTF-8")))
    };
    let join_ref = text(field(header[0])?, "join_ref")?;
    let msg_ref = text(field(header[1])?, "ref")?;
    let topic = text(field(header[2])?, "topic")?;
    let user_event = text(field(header[3])?, "event")?;
    let metadata = field(header[4])?.to_vec();
    let rest = bytes.get(at..).unwrap_or_default();
    if !metadata.is_empty() {
        match serde_json::from_slice::<Value>(&metadata) {
            Ok(Value::Object(_)) => {}
            _ => return Err(Malformed("binary metadata is not a JSON object".into())),
        }
    }
    let payload = match encoding {
        0 => UserPayload::Binary(rest.to_vec()),
        1 => UserPayload::Json(
            serde_json::from_slice(rest)
                .map_err(|e| Malformed(format!("a JSON-encoded payload is not JSON: {e}")))?,
        ),
        other => return Err(Malformed(format!("unknown payload encoding {other}"))),
    };
    let empty = |s: String| (!s.is_empty()).then_some(s);
    Ok(Inbound {
        join_ref: empty(join_ref),
        msg_ref: empty(msg_ref),
        topic,
        event: "broadcast".into(),
        payload: json!({"type": "broadcast", "event": user_event}),
        broadcast: Some(Broadcast {
            event: user_event,
            payload,
            meta: None,
            binary_frame: true,
        }),
    })
}

/// A frame to a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// Encodes a Phoenix message (`join_ref` is left out on vsn 1, as the V1 serializer does).
pub fn encode(
    vsn: Vsn,
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: Value,
) -> Outbound {
    let text = match vsn {
        Vsn::V2 => json!([join_ref, msg_ref, topic, event, payload]).to_string(),
        Vsn::V1 => {
            let mut m = Map::new();
            m.insert("topic".into(), json!(topic));
            m.insert("event".into(), json!(event));
            m.insert("payload".into(), payload);
            m.insert("ref".into(), json!(msg_ref));
            Value::Object(m).to_string()
        }
    };
    Outbound::Text(text)
}

/// Encodes a user broadcast for one subscriber; `None` when it cannot be delivered there (a
/// binary payload to a vsn 1 socket, as `MessageDispatcher.fastlane!/2` drops it).
pub fn encode_broadcast(vsn: Vsn, topic: &str, b: &Broadcast) -> Option<Outbound> {
    if vsn == Vsn::V2 && b.binary_frame {
        let meta = b.meta.as_ref().map(Value::to_string).unwrap_or_default();
        let (encoding, body) = match &b.payload {
            UserPayload::Binary(bytes) => (0u8, bytes.clone()),
            UserPayload::Json(v) => (1u8, v.to_string().into_bytes()),
        };
        let lens = [topic.len(), b.event.len(), meta.len()];
        if lens.iter().all(|l| *l <= 255) {
            let mut out = vec![4u8, lens[0] as u8, lens[1] as u8, lens[2] as u8, encoding];
            out.extend_from_slice(topic.as_bytes());
            out.extend_from_slice(b.event.as_bytes());
            out.extend_from_slice(meta.as_bytes());
            out.extend_from_slice(&body);
            return Some(Outbound::Binary(out));
        }
    }
    let UserPayload::Json(payload) = &b.payload else {
        return None;
    };
    let mut body = json!({"type": "broadcast", "event": b.event, "payload": payload});
    if let Some(meta) = &b.meta {
        body["meta"] = meta.clone();
    }
    Some(encode(vsn, None, None, topic, "broadcast", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn kind3_from_realtime_js_decodes() {
        // The capture in protocols/supabase.md §2.4: event "cursor", {"x":1,"y":2}.
        let mut f = vec![3, 1, 1, 14, 6, 0, 1];
        f.extend_from_slice(b"67realtime:room1cursor{\"x\":1,\"y\":2}");
        let m = decode_binary(&f).unwrap();
        assert_eq!(m.join_ref.as_deref(), Some("6"));
        assert_eq!(m.msg_ref.as_deref(), Some("7"));
        assert_eq!(m.topic, "realtime:room1");
        let b = m.broadcast.unwrap();
        assert_eq!(b.event, "cursor");
        assert_eq!(b.payload, UserPayload::Json(json!({"x":1,"y":2})));
        // Binary payload 01 02 03 ff.
        let mut f = vec![3, 1, 1, 14, 3, 0, 0];
        f.extend_from_slice(b"68realtime:room1bin");
        f.extend_from_slice(&hex("010203ff"));
        let b = decode_binary(&f).unwrap().broadcast.unwrap();
        assert_eq!(b.payload, UserPayload::Binary(vec![1, 2, 3, 255]));
        // Truncated and unknown kinds are errors, not panics.
        for bad in [&[][..], &[3, 1, 1], &[4, 0, 0, 0, 0], &f[..10]] {
            assert!(decode_binary(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kind4_matches_the_documented_layout() {
        let b = Broadcast {
            event: "cursor".into(),
            payload: UserPayload::Json(json!({"x":9})),
            meta: Some(json!({"replayed":true,"id":"abc"})),
            binary_frame: true,
        };
        let Some(Outbound::Binary(f)) = encode_broadcast(Vsn::V2, "realtime:room1", &b) else {
            panic!("binary expected");
        };
        let mut want = vec![4, 0x0e, 0x06, 0x1c, 1];
        // (serde_json writes object keys sorted; the layout is what matters.)
        want.extend_from_slice(b"realtime:room1cursor{\"id\":\"abc\",\"replayed\":true}{\"x\":9}");
        assert_eq!(f, want);
        // vsn 1 gets JSON text without join_ref; a binary payload cannot go there.
        let Some(Outbound::Text(t)) = encode_broadcast(Vsn::V1, "realtime:room1", &b) else {
            panic!("text expected");
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["payload"]["payload"], json!({"x":9}));
        assert!(v.get("join_ref").is_none());
        let bin = Broadcast {
            payload: UserPayload::Binary(vec![1]),
            ..b
        };
        assert_eq!(encode_broadcast(Vsn::V1, "realtime:room1", &bin), None);
    }

    #[test]
    fn text_frames_both_versions() {
        let m = decode_text(Vsn::V2, r#"[null,"12","phoenix","heartbeat",{}]"#).unwrap();
        assert_eq!((m.join_ref, m.msg_ref.as_deref()), (None, Some("12")));
        let m = decode_text(
            Vsn::V1,
            r#"{"topic":"realtime:a","event":"phx_join","payload":{},"ref":"1","join_ref":"1"}"#,
        )
        .unwrap();
        assert_eq!(m.event, "phx_join");
        assert!(decode_text(Vsn::V2, r#"["1","2","t","e"]"#).is_err());
        assert!(decode_text(Vsn::V2, r#"{"topic":"t"}"#).is_err());
        assert!(decode_text(Vsn::V1, "[1,2,3,4,5]").is_err());
        assert!(decode_text(Vsn::V2, "not json").is_err());
        assert!(decode_text(Vsn::V2, r#"[1,"2","t","e",{}]"#).is_err());
    }
}

//! Supabase Realtime (Phoenix) frames as the client reads them: vsn 1.0.0 objects and vsn
//! 2.0.0 arrays in text frames, vsn 2.0.0 binary frames (kinds 0–4), and what the client's
//! dispatcher makes of a decoded frame (broadcasts, presence state and diffs, postgres
//! changes, join replies, system messages).

use relayport_supabase::dispatch::{ChannelEntry, Dispatcher, JoinState};
use relayport_supabase::frame::{
    Body, KIND_BROADCAST, KIND_PUSH, KIND_REPLY, KIND_USER_BROADCAST, ServerFrame, UserPayload,
    decode_binary, decode_text, decode_user_broadcast_push, encode_user_broadcast_push,
};
use relayport_supabase::join::JoinParams;
use relayport_supabase::postgres::{PostgresChangesFilter, PostgresEvent};
use relayport_supabase::topic::channel_for_topic;
use serde_json::json;

use crate::json::has_float;

/// Decodes a text frame; one that decodes re-encodes (in the vsn it came in) to a frame that
/// decodes to the same value, and goes through the dispatcher.
pub fn check_text(text: &str) {
    let Ok(frame) = decode_text(text) else {
        return;
    };
    let Body::Json(payload) = &frame.body else {
        panic!("a text frame decoded to a non-JSON body: {text:?}");
    };
    if !has_float(payload) {
        let again = if text.trim_start().starts_with('[') {
            json!([
                frame.join_ref,
                frame.ref_,
                frame.topic,
                frame.event,
                payload
            ])
        } else {
            json!({"join_ref": frame.join_ref, "ref": frame.ref_, "topic": frame.topic,
                   "event": frame.event, "payload": payload})
        };
        assert_eq!(
            decode_text(&again.to_string()).ok().as_ref(),
            Some(&frame),
            "re-encoded {text:?}"
        );
    }
    dispatch(frame);
}

/// Decodes a binary frame both as the client does (server kinds) and as a server or test peer
/// does (kind 3); whatever decodes re-encodes to a frame that decodes to the same value
/// (byte for byte when no JSON is re-serialized).
pub fn check_binary(bytes: &[u8]) {
    if let Ok(frame) = decode_binary(bytes) {
        let floats = match &frame.body {
            Body::UserBroadcast {
                metadata, payload, ..
            } => {
                metadata.as_ref().is_some_and(has_float)
                    || matches!(payload, UserPayload::Json(v) if has_float(v))
            }
            _ => false,
        };
        if !floats && let Some(encoded) = encode_server_binary(bytes[0], &frame) {
            match &frame.body {
                Body::UserBroadcast {
                    metadata: Some(_), ..
                }
                | Body::UserBroadcast {
                    payload: UserPayload::Json(_),
                    ..
                } => assert_eq!(
                    decode_binary(&encoded).ok().as_ref(),
                    Some(&frame),
                    "re-encoded {bytes:?}"
                ),
                _ => assert_eq!(encoded, bytes, "re-encoded {frame:?}"),
            }
        }
        dispatch(frame);
    }
    if let Ok(push) = decode_user_broadcast_push(bytes) {
        let floats = push.metadata.as_ref().is_some_and(has_float)
            || matches!(&push.payload, UserPayload::Json(v) if has_float(v));
        // Float-free metadata re-serialized compactly is never longer than what was read, so
        // the encoder's 255-byte limit cannot refuse it (a float can grow: `1e2` → `100.0`).
        if !floats {
            let encoded = encode_user_broadcast_push(&push)
                .unwrap_or_else(|e| panic!("decoded push {push:?} does not re-encode: {e}"));
            assert_eq!(
                decode_user_broadcast_push(&encoded).ok().as_ref(),
                Some(&push),
                "re-encoded {bytes:?}"
            );
        }
    }
}

fn header_len(field: &[u8]) -> Option<u8> {
    u8::try_from(field.len()).ok()
}

/// Encodes a server binary frame of `kind` the way the Supabase server does (the client has no
/// encoder for these kinds); `None` for a text-frame body or a field over 255 bytes.
pub fn encode_server_binary(kind: u8, frame: &ServerFrame) -> Option<Vec<u8>> {
    let s = |o: &Option<String>| o.clone().unwrap_or_default().into_bytes();
    let mut fields: Vec<Vec<u8>> = Vec::new();
    let (kind, rest, tail) = match &frame.body {
        Body::Json(_) => return None,
        Body::UserBroadcast {
            user_event,
            metadata,
            payload,
        } => {
            let meta = match metadata {
                Some(m) => serde_json::to_vec(m).ok()?,
                None => Vec::new(),
            };
            let (encoding, body) = match payload {
                UserPayload::Binary(b) => (0u8, b.clone()),
                UserPayload::Json(v) => (1u8, serde_json::to_vec(v).ok()?),
            };
            fields.extend([
                frame.topic.clone().into_bytes(),
                user_event.clone().into_bytes(),
                meta,
            ]);
            (KIND_USER_BROADCAST, vec![encoding], body)
        }
        Body::Reply { status, data } => {
            fields.extend([
                s(&frame.join_ref),
                s(&frame.ref_),
                frame.topic.clone().into_bytes(),
                status.clone().into_bytes(),
            ]);
            (KIND_REPLY, Vec::new(), data.clone())
        }
        // Kind 0 (push) and kind 2 (broadcast) both decode to raw data; kind 0 has a join_ref.
        Body::Binary(data) if kind == KIND_PUSH => {
            fields.extend([
                s(&frame.join_ref),
                frame.topic.clone().into_bytes(),
                frame.event.clone().into_bytes(),
            ]);
            (KIND_PUSH, Vec::new(), data.clone())
        }
        Body::Binary(data) => {
            fields.extend([
                frame.topic.clone().into_bytes(),
                frame.event.clone().into_bytes(),
            ]);
            (KIND_BROADCAST, Vec::new(), data.clone())
        }
    };
    let mut out = vec![kind];
    for f in &fields {
        out.push(header_len(f)?);
    }
    out.extend(rest);
    for f in fields {
        out.extend(f);
    }
    out.extend(tail);
    Some(out)
}

/// Runs a decoded frame through a dispatcher that has joined its topic (as a presence channel
/// with a postgres filter, so that every branch is reachable), twice.
pub fn dispatch(frame: ServerFrame) {
    let mut dispatcher = Dispatcher::default();
    if let Ok(channel) = channel_for_topic(&frame.topic, true, true) {
        let replying = frame.event == "phx_reply";
        let join_ref = if replying {
            frame.ref_.clone()
        } else {
            frame.join_ref.clone()
        };
        let params = JoinParams {
            broadcast: None,
            presence_key: "fuzz".into(),
            presence_enabled: true,
            postgres_changes: vec![PostgresChangesFilter::new(PostgresEvent::All, "public")],
            private: true,
            access_token: None,
        };
        let mut entry =
            ChannelEntry::joining(channel, join_ref.unwrap_or_else(|| "1".into()), params);
        if !replying {
            entry.state = JoinState::Joined;
            entry.server_ids = vec![1];
        }
        dispatcher.insert(frame.topic.clone(), entry);
    }
    let _ = dispatcher.handle(frame.clone());
    let _ = dispatcher.handle(frame);
}

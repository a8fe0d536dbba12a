//! The self-hosted protocol on both sides: client frames as the server reads them (and the
//! signature check of a subscription, the `channel_data` of a presence subscription, the SSE
//! `Last-Event-ID` cursor), and server frames as the client reads them (WebSocket frames and
//! the `text/event-stream` of the SSE fallback).

use relayport_core::auth::hmac_sha256_hex;
use relayport_core::{Channel, ChannelKind};
use relayport_selfhosted::client::errors::{CodeContext, error_for_code, provider_code};
use relayport_selfhosted::client::sse::SseParser;
use relayport_selfhosted::protocol::{
    ClientFrame, MessageFrame, ServerFrame, presence_signing_string, private_signing_string,
};
use relayport_selfhosted::server::auth::{parse_channel_data, verify_subscription};
use relayport_selfhosted::server::sse::{decode_cursor, encode_cursor};
use serde_json::Value;

use crate::json::has_float;

const SECRET: &str = "fuzz-secret";
const SOCKET_ID: &str = "1234.5678";

/// Everything the server decodes from one piece of client input: the text as a WebSocket
/// frame, as a `Last-Event-ID` header, and as a presence `channel_data`.
pub fn check_server_input(text: &str) {
    check_client_frame(text);
    check_cursor(text);
    if let Ok((user_id, _)) = parse_channel_data(text) {
        assert!(!user_id.is_empty(), "empty user id from {text:?}");
    }
}

/// A client frame, decoded the way the server's session does (JSON first, then the typed
/// frame), round-trips; its channel and signature are checked.
pub fn check_client_frame(text: &str) {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Ok(frame) = serde_json::from_value::<ClientFrame>(value.clone()) else {
        return;
    };
    if !has_float(&value) {
        let back = serde_json::to_value(&frame).expect("a client frame serializes");
        assert_eq!(
            serde_json::from_value::<ClientFrame>(back).ok().as_ref(),
            Some(&frame),
            "round trip of {text:?}"
        );
    }
    match &frame {
        ClientFrame::Subscribe {
            channel,
            auth,
            channel_data,
            ..
        } => check_subscription(channel, auth.as_deref(), channel_data.as_deref()),
        ClientFrame::Unsubscribe { channel, .. }
        | ClientFrame::Publish { channel, .. }
        | ClientFrame::PresenceEnter { channel, .. }
        | ClientFrame::PresenceUpdate { channel, .. }
        | ClientFrame::PresenceLeave { channel, .. }
        | ClientFrame::History { channel, .. } => {
            let _ = Channel::parse(channel);
        }
        ClientFrame::Ping { .. } => {}
    }
}

/// A subscription's signature verifies exactly when it is the right one: the fuzzed `auth`
/// only if it equals the HMAC the server's secret gives, the right HMAC always (for presence,
/// when the signed `channel_data` names a user).
pub fn check_subscription(name: &str, auth: Option<&str>, channel_data: Option<&str>) {
    let Ok(channel) = Channel::parse(name) else {
        return;
    };
    let verify = |auth: Option<&str>, data: Option<&str>| {
        verify_subscription(SECRET, SOCKET_ID, &channel, auth, data)
    };
    let full = channel.to_string();
    let is = |auth: Option<&str>, good: &str| auth.is_some_and(|a| a.eq_ignore_ascii_case(good));
    match channel.kind() {
        ChannelKind::Public => assert!(matches!(verify(auth, channel_data), Ok(None))),
        ChannelKind::Private => {
            let good = hmac_sha256_hex(
                SECRET.as_bytes(),
                private_signing_string(SOCKET_ID, &full).as_bytes(),
            );
            assert_eq!(
                verify(auth, channel_data).is_ok(),
                is(auth, &good),
                "private {full:?} with auth {auth:?}"
            );
            assert!(verify(Some(&good), None).is_ok(), "the right signature");
        }
        ChannelKind::Presence => {
            let data = channel_data.unwrap_or(r#"{"user_id":"u1"}"#);
            let good = hmac_sha256_hex(
                SECRET.as_bytes(),
                presence_signing_string(SOCKET_ID, &full, data).as_bytes(),
            );
            let right = verify(Some(&good), Some(data));
            assert_eq!(right.is_ok(), parse_channel_data(data).is_ok(), "{data:?}");
            if let Ok(user) = right {
                assert_eq!(
                    user,
                    parse_channel_data(data).ok(),
                    "signed user of {data:?}"
                );
            }
            if verify(auth, channel_data).is_ok() {
                assert!(is(auth, &good), "presence {full:?} accepted auth {auth:?}");
            }
        }
    }
}

/// An SSE `Last-Event-ID` decodes to a cursor that encodes and decodes to itself.
///
/// Skipped when a key is a channel whose printed form reads back as another channel
/// (`public:public:x` → `public:x` → `x`): issue 11, item 1, see
/// [`crate::channel::aliases_another_kind`].
pub fn check_cursor(text: &str) {
    let cursor = decode_cursor(text);
    let canonical = |key: &String| Channel::parse(key).is_ok_and(|c| c.to_string() == *key);
    if !cursor.keys().all(canonical) {
        return;
    }
    let encoded = encode_cursor(&cursor);
    assert_eq!(decode_cursor(&encoded), cursor, "cursor of {text:?}");
}

/// Everything the client decodes from one piece of server input: the text as a WebSocket
/// frame and the bytes as an SSE stream.
pub fn check_client_input(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        check_server_frame(text);
    }
    check_sse(bytes);
}

/// A server frame as the client reads it round-trips; its messages convert to core messages
/// exactly when their channel is valid; errors map to the library's errors.
pub fn check_server_frame(text: &str) {
    let Ok(frame) = serde_json::from_str::<ServerFrame>(text) else {
        return;
    };
    let value = serde_json::to_value(&frame).expect("a server frame serializes");
    if !has_float(&value) {
        assert_eq!(
            serde_json::from_value::<ServerFrame>(value).ok().as_ref(),
            Some(&frame),
            "round trip of {text:?}"
        );
    }
    match &frame {
        ServerFrame::Message(m) => check_message(m),
        ServerFrame::Subscribed {
            channel,
            snapshot,
            messages,
            ..
        } => {
            let _ = Channel::parse(channel);
            snapshot.iter().chain(messages).for_each(check_message);
        }
        ServerFrame::Error {
            code,
            message,
            channel,
            ..
        } => {
            let _ = provider_code(code);
            let _ = error_for_code(code, message, channel.as_deref(), CodeContext::default());
        }
        ServerFrame::Presence { channel, .. } | ServerFrame::Unsubscribed { channel, .. } => {
            let _ = Channel::parse(channel);
        }
        ServerFrame::History {
            channel, messages, ..
        } => {
            let _ = Channel::parse(channel);
            messages.iter().for_each(check_message);
        }
        ServerFrame::Connected { .. } | ServerFrame::Ack { .. } | ServerFrame::Pong { .. } => {}
    }
}

fn check_message(m: &MessageFrame) {
    match m.to_message() {
        Ok(message) => {
            assert_eq!(Channel::parse(&m.channel).ok(), Some(message.channel));
            assert_eq!(message.event, m.event);
            assert_eq!(message.position.map(|p| p.sequence), Some(m.seq));
            // The payload is the frame's, bytes decoded from their base64.
            let (data, encoding) = message.data.to_wire();
            if m.encoding.as_deref().is_none_or(str::is_empty) {
                assert_eq!(data, m.data);
            } else {
                assert_eq!(encoding, Some("base64"));
            }
        }
        // Refused, never dropped silently: an invalid channel or a payload that does not
        // decode.
        Err(_) => assert!(
            Channel::parse(&m.channel).is_err()
                || relayport_core::Payload::from_wire(m.data.clone(), m.encoding.as_deref())
                    .is_err(),
            "{m:?} was refused"
        ),
    }
}

/// An SSE stream yields the same events however the bytes are split into reads; every event's
/// data is decoded as the client does.
pub fn check_sse(bytes: &[u8]) {
    // Inputs are at most 64 KiB (-max_len), under the parser's 1 MiB bound: never refused.
    let whole = SseParser::default().feed(bytes).expect("under the bound");
    let step = 1 + bytes.first().map_or(0, |b| usize::from(*b % 13));
    let mut parser = SseParser::default();
    let chunked: Vec<_> = bytes
        .chunks(step)
        .flat_map(|c| parser.feed(c).expect("under the bound"))
        .collect();
    assert_eq!(
        chunked, whole,
        "events of {bytes:?} read {step} bytes at a time"
    );
    for event in whole {
        if let Some(id) = &event.id {
            assert!(!id.contains('\0'), "an event id with NUL");
            let _ = decode_cursor(id);
        }
        match event.event.as_str() {
            "message" => {
                if let Ok(m) = serde_json::from_str::<MessageFrame>(&event.data) {
                    check_message(&m);
                }
            }
            _ => check_server_frame(&event.data),
        }
    }
}

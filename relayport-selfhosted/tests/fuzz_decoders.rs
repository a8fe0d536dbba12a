//! Property tests for the self-hosted protocol decoders on both sides: client frames as the
//! server reads them (with the subscription signature check and the SSE `Last-Event-ID`
//! cursor), server frames as the client reads them, and the client's `text/event-stream`
//! parser. The same properties run for longer under `cargo fuzz` (fuzz/, `scripts/fuzz`).
#![cfg(all(feature = "client", feature = "server"))]

use proptest::prelude::*;
use relayport_core::auth::hmac_sha256_hex;
use relayport_core::{Channel, ChannelKind, Position};
use relayport_selfhosted::client::sse::{SseEvent, SseParser};
use relayport_selfhosted::protocol::{
    ClientFrame, MessageFrame, ServerFrame, presence_signing_string, private_signing_string,
};
use relayport_selfhosted::server::auth::verify_subscription;
use relayport_selfhosted::server::sse::{Cursor, decode_cursor, encode_cursor};
use serde_json::{Value, json};

const SECRET: &str = "test-secret";
const SOCKET: &str = "12.34";
const DOC: &str = include_str!("../PROTOCOL.md");

/// The example frames of PROTOCOL.md tagged `tag` (`client` or `server`).
fn examples(tag: &str) -> Vec<String> {
    let fence = format!("```json {tag}\n");
    DOC.split(&fence)
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .map(|b| b.trim().to_owned())
        .collect()
}

fn damage(text: &str, at: usize, len: usize, how: u8, byte: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let at = at % (bytes.len() + 1);
    let end = (at + len).min(bytes.len());
    match how % 3 {
        0 => {
            bytes.drain(at..end);
        }
        1 => {
            let copy = bytes[at..end].to_vec();
            bytes.splice(at..at, copy);
        }
        _ => bytes.splice(at..end, [byte]).for_each(drop),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

/// A client frame, decoded as the server does (JSON, then the typed frame), round-trips.
fn check_client_frame(text: &str) -> Result<(), TestCaseError> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Ok(());
    };
    if let Ok(frame) = serde_json::from_value::<ClientFrame>(value.clone())
        && !has_float(&value)
    {
        let back = serde_json::to_value(&frame).unwrap();
        prop_assert_eq!(
            serde_json::from_value::<ClientFrame>(back).ok(),
            Some(frame)
        );
    }
    Ok(())
}

/// A server frame, decoded as the client does, round-trips; its messages convert exactly when
/// their channel is valid.
fn check_server_frame(text: &str) -> Result<(), TestCaseError> {
    let Ok(frame) = serde_json::from_str::<ServerFrame>(text) else {
        return Ok(());
    };
    let value = serde_json::to_value(&frame).unwrap();
    if !has_float(&value) {
        prop_assert_eq!(
            serde_json::from_value::<ServerFrame>(value).ok(),
            Some(frame.clone())
        );
    }
    if let ServerFrame::Message(m) = &frame {
        let payload_ok =
            relayport_core::Payload::from_wire(m.data.clone(), m.encoding.as_deref()).is_ok();
        prop_assert_eq!(
            m.to_message().is_ok(),
            Channel::parse(&m.channel).is_ok() && payload_ok
        );
    }
    Ok(())
}

fn sse_stream() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "data: [a-z{}\":, ]{0,12}",
        "data",
        "event: [a-z]{1,8}",
        "id: [a-z0-9~|]{0,8}",
        "id: a\u{0}b",
        ": [a-z ]{0,8}",
        "retry: [0-9]{1,4}",
        "[a-z]{1,4}",
        Just(String::new()),
    ];
    let end = prop_oneof![Just("\n"), Just("\r"), Just("\r\n")];
    prop::collection::vec((line, end), 0..12)
        .prop_map(|ls| ls.into_iter().map(|(l, e)| l + e).collect())
}

fn feed_in_chunks(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts.into_iter().chain([bytes.len()]) {
        events.extend(
            parser
                .feed(&bytes[at..cut.max(at)])
                .expect("under the bound"),
        );
        at = cut.max(at);
    }
    events
}

fn channel_name() -> impl Strategy<Value = String> {
    "(private:|presence:|public:)?[a-z0-9.:]{1,10}"
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(300)
    })]

    #[test]
    fn arbitrary_text_is_a_frame_or_an_error(text in any::<String>()) {
        check_client_frame(&text)?;
        check_server_frame(&text)?;
        let cursor = decode_cursor(&text);
        // Keys that print as another channel (`public:public:x`) are issue 11, item 1.
        if cursor.keys().all(|k| Channel::parse(k).is_ok_and(|c| c.to_string() == *k)) {
            prop_assert_eq!(decode_cursor(&encode_cursor(&cursor)), cursor);
        }
    }

    #[test]
    fn damaged_protocol_examples_never_panic(
        client in any::<bool>(), i in any::<prop::sample::Index>(),
        at in any::<usize>(), len in 0usize..8, how in any::<u8>(), byte in any::<u8>(),
    ) {
        let blocks = examples(if client { "client" } else { "server" });
        let text = damage(&blocks[i.index(blocks.len())], at, len, how, byte);
        check_client_frame(&text)?;
        check_server_frame(&text)?;
    }

    #[test]
    fn generated_message_frames_reach_the_client_intact(
        channel in channel_name(), event in "[a-z:]{1,10}", seq in any::<u64>(), ts in any::<u64>(),
        epoch in "[a-f0-9]{1,16}", sender in prop::option::of("[0-9.]{1,8}"), n in any::<i64>(),
        bytes in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
    ) {
        // JSON, or bytes as base64 with their encoding.
        let payload = match &bytes {
            Some(b) => relayport_core::Payload::from(b.clone()),
            None => json!({"n": n}).into(),
        };
        let (data, encoding) = payload.to_wire();
        let frame = MessageFrame {
            encoding: encoding.map(str::to_owned),
            channel: channel.clone(), event: event.clone(), data,
            id: format!("{epoch}-{seq}"), seq, epoch: epoch.clone(), ts, sender: sender.clone(),
        };
        let text = serde_json::to_string(&ServerFrame::Message(frame.clone())).unwrap();
        let decoded: ServerFrame = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&decoded, &ServerFrame::Message(frame.clone()));
        match frame.to_message() {
            Ok(m) => {
                prop_assert_eq!(&m.data, &payload);
                prop_assert_eq!(m.channel, Channel::parse(&channel).unwrap());
                prop_assert_eq!(m.position, Some(Position { epoch: Some(epoch), sequence: seq }));
                prop_assert_eq!(m.sender, sender);
            }
            Err(_) => prop_assert!(Channel::parse(&channel).is_err()),
        }
        check_server_frame(&text)?;
    }

    #[test]
    fn sse_events_do_not_depend_on_how_the_stream_is_read(
        stream in sse_stream(), cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let bytes = stream.as_bytes();
        let whole = SseParser::default().feed(bytes).expect("under the bound");
        prop_assert_eq!(feed_in_chunks(bytes, &cuts), whole.clone());
        let byte_by_byte: Vec<_> = {
            let mut p = SseParser::default();
            bytes.iter().flat_map(|b| p.feed(&[*b]).expect("under the bound")).collect()
        };
        prop_assert_eq!(byte_by_byte, whole.clone());
        for e in whole {
            prop_assert!(e.id.is_none_or(|id| !id.contains('\0')));
        }
    }

    #[test]
    fn cursors_round_trip(entries in prop::collection::btree_map(
        channel_name(), ("[a-f0-9]{1,8}", any::<u64>()), 0..4,
    )) {
        let cursor: Cursor = entries
            .into_iter()
            .filter_map(|(ch, pos)| Some((Channel::parse(&ch).ok()?.to_string(), pos)))
            .filter(|(ch, _)| Channel::parse(ch).is_ok_and(|c| c.to_string() == *ch))
            .collect();
        prop_assert_eq!(decode_cursor(&encode_cursor(&cursor)), cursor);
    }

    #[test]
    fn signatures_verify_only_when_right(
        channel in channel_name(), auth in prop::option::of("[0-9a-fA-F]{0,64}"),
        user in "[a-z0-9]{0,6}",
    ) {
        let Ok(ch) = Channel::parse(&channel) else { return Ok(()) };
        let name = ch.to_string();
        let data = json!({"user_id": user}).to_string();
        let right = match ch.kind() {
            ChannelKind::Public => None,
            ChannelKind::Private => Some(hmac_sha256_hex(SECRET.as_bytes(), private_signing_string(SOCKET, &name).as_bytes())),
            ChannelKind::Presence => Some(hmac_sha256_hex(SECRET.as_bytes(), presence_signing_string(SOCKET, &name, &data).as_bytes())),
        };
        let fuzzed = verify_subscription(SECRET, SOCKET, &ch, auth.as_deref(), Some(&data));
        match &right {
            None => prop_assert!(matches!(fuzzed, Ok(None))),
            Some(good) => {
                let is_right = auth.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(good));
                let accepted = is_right && (ch.kind() == ChannelKind::Private || !user.is_empty());
                prop_assert_eq!(fuzzed.is_ok(), accepted);
                let with_right = verify_subscription(SECRET, SOCKET, &ch, Some(good), Some(&data));
                prop_assert_eq!(with_right.is_ok(), ch.kind() == ChannelKind::Private || !user.is_empty());
                prop_assert!(verify_subscription("other", SOCKET, &ch, Some(good), Some(&data)).is_err());
            }
        }
    }
}

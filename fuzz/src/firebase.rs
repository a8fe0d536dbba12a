//! The Firebase stream as the client reads it: bytes through the link layer's SSE parser, each
//! event through the event decoder, each change through the record decoders; and the key and
//! push-id rules on arbitrary text.

use relayport_core::Channel;
use relayport_core::transport::sse::SseParser;
use relayport_firebase::event::{Change, changes, decode_event};
use relayport_firebase::key::{decode_key, encode_key};
use relayport_firebase::position::{history_start, position_of};
use relayport_firebase::records::{decode_member, decode_message};

/// A small bound, so that the fuzzer reaches the parser's limits too.
const MAX_EVENT_BYTES: usize = 4096;

/// Decodes a whole stream; checks the key rules on every key it carries.
pub fn check_stream(data: &[u8]) {
    let channel = Channel::public("fuzz");
    let mut parser = SseParser::with_max_event_bytes(MAX_EVENT_BYTES);
    // Fed in two chunks, split where the input says, to cover partial lines.
    let split = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut events = Vec::new();
    for chunk in [&data[..split], &data[split..]] {
        match parser.feed(chunk) {
            Ok(more) => events.extend(more),
            Err(_) => return,
        }
    }
    for event in events {
        assert!(event.data.len() <= MAX_EVENT_BYTES, "an event past the bound");
        let Ok(decoded) = decode_event(&event) else {
            continue;
        };
        for change in changes(decoded) {
            match change {
                Change::Snapshot { messages, presence } => {
                    for (id, record) in &messages {
                        check_message(&channel, id, record);
                    }
                    for (key, record) in &presence {
                        check_key(key);
                        let _ = decode_member(key, record);
                    }
                }
                Change::Messages(list) => {
                    for (id, record) in &list {
                        check_message(&channel, id, record);
                    }
                }
                Change::Message(id, record) => check_message(&channel, &id, &record),
                Change::Presence(list) => {
                    for (key, record) in &list {
                        check_key(key);
                        let _ = decode_member(key, record);
                    }
                }
                Change::Member(key, record) => {
                    check_key(&key);
                    if let Some(record) = record {
                        let _ = decode_member(&key, &record);
                    }
                }
                Change::MemberFields(key, _) => check_key(&key),
            }
        }
    }
}

fn check_message(channel: &Channel, id: &str, record: &serde_json::Value) {
    check_key(id);
    if let Ok(m) = decode_message(channel, id, record) {
        assert!(!m.event.is_empty(), "a message without an event name");
        assert_eq!(m.position, position_of(id));
    }
}

/// The key encoding reverses, and decodes only its own canonical output; a push id's position
/// starts its history at its own millisecond.
pub fn check_key(text: &str) {
    assert_eq!(decode_key(&encode_key(text)).as_deref(), Ok(text));
    if let Ok(name) = decode_key(text) {
        assert_eq!(encode_key(&name), text, "a non-canonical key decoded");
    }
    if let Some(position) = position_of(text) {
        assert!(
            text.starts_with(&history_start(&position)),
            "{text}: history would start after its own message"
        );
    }
}

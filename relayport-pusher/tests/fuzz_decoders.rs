//! Property tests for the decoder of Pusher server frames (`protocol::parse_frame`) and what
//! the client reads out of a frame: arbitrary text, generated frames, and recorded frames
//! from real servers with random damage. The same properties run for longer under
//! `cargo fuzz` (fuzz/, `scripts/fuzz`).

use std::sync::OnceLock;

use proptest::prelude::*;
use relayport_pusher::encryption::{decrypt, encrypt, shared_secret};
use relayport_pusher::names::{from_wire, to_wire};
use relayport_pusher::protocol::{Frame, parse_frame};
use serde_json::{Map, Value};

/// Server frames recorded from pusher-js, sockudo and soketi (testdata/vectors).
fn recorded() -> &'static [String] {
    static FRAMES: OnceLock<Vec<String>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let mut out = Vec::new();
        for name in [
            "pusher-js-transcript.json",
            "pusher-sockudo-live.json",
            "pusher-soketi-live.json",
        ] {
            let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            collect(&serde_json::from_str(&text).unwrap(), &mut out);
        }
        assert!(out.len() > 20, "the vectors hold server frames");
        out
    })
}

fn collect(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if o.get("dir").and_then(Value::as_str) == Some("server->client")
                && let Some(raw) = o.get("raw").and_then(Value::as_str)
            {
                out.push(raw.to_owned());
            }
            o.values().for_each(|x| collect(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

/// JSON without floats (floats do not round-trip exactly through serde_json's parser).
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z\"\\\\{}:, ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Damages `text`: deletes, duplicates or replaces a byte range (kept valid UTF-8).
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

/// The oracle: a frame that parses re-encodes (data double-encoded, as servers send it) to a
/// frame that parses to the same value; its channel maps back to the same Pusher name; its
/// data never decrypts under a key it was not encrypted with.
fn check(text: &str) -> Result<(), TestCaseError> {
    let Ok(frame) = parse_frame(text) else {
        return Ok(());
    };
    if let Some(wire) = &frame.channel
        && let Ok(ch) = from_wire(wire)
    {
        prop_assert_eq!(to_wire(&ch).ok(), Some(wire.clone()));
    }
    prop_assert!(decrypt(&frame.data, &[7; 32]).is_err());
    if !has_float(&frame.data) {
        let again = parse_frame(&encode(&frame));
        prop_assert_eq!(again.ok(), Some(frame));
    }
    Ok(())
}

/// Floats may come back one ULP off through serde_json's default parser: not compared.
fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

fn encode(frame: &Frame) -> String {
    let mut obj = Map::new();
    obj.insert("event".into(), Value::String(frame.event.clone()));
    if let Some(c) = &frame.channel {
        obj.insert("channel".into(), Value::String(c.clone()));
    }
    obj.insert("data".into(), Value::String(frame.data.to_string()));
    if let Some(u) = &frame.user_id {
        obj.insert("user_id".into(), Value::String(u.clone()));
    }
    Value::Object(obj).to_string()
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(300)
    })]

    #[test]
    fn arbitrary_text_is_a_frame_or_a_protocol_error(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn damaged_recorded_frames_never_panic(
        i in any::<prop::sample::Index>(),
        at in any::<usize>(), len in 0usize..8, how in any::<u8>(), byte in any::<u8>(),
    ) {
        let frames = recorded();
        let text = damage(&frames[i.index(frames.len())], at, len, how, byte);
        check(&text)?;
    }

    #[test]
    fn generated_frames_decode_to_what_was_sent(
        event in "[a-z:_-]{1,16}",
        channel in prop::option::of("(private-|presence-)?[a-z0-9_-]{1,12}"),
        data in json(),
        double_encoded in any::<bool>(),
        user_id in prop::option::of(0u32..1000),
    ) {
        let mut obj = Map::new();
        obj.insert("event".into(), Value::String(event.clone()));
        if let Some(c) = &channel {
            obj.insert("channel".into(), Value::String(c.clone()));
        }
        let wire_data = if double_encoded { Value::String(data.to_string()) } else { data.clone() };
        obj.insert("data".into(), wire_data);
        if let Some(u) = user_id {
            obj.insert("user_id".into(), Value::from(u));
        }
        let frame = parse_frame(&Value::Object(obj).to_string()).unwrap();
        prop_assert_eq!(&frame.event, &event);
        prop_assert_eq!(&frame.channel, &channel);
        prop_assert_eq!(frame.user_id, user_id.map(|u| u.to_string()));
        if double_encoded || !data.is_string() {
            prop_assert_eq!(&frame.data, &data);
        }
    }

    #[test]
    fn encrypted_data_decrypts_only_intact_and_under_its_key(
        plain in prop::collection::vec(any::<u8>(), 0..64),
        flip in any::<prop::sample::Index>(),
    ) {
        let secret = shared_secret("private-encrypted-a", &[1; 32]);
        let data: Value = serde_json::from_str(&encrypt(&plain, &secret, &[9; 24]).unwrap().to_json()).unwrap();
        prop_assert_eq!(decrypt(&data, &secret).unwrap(), plain);
        prop_assert!(decrypt(&data, &shared_secret("private-encrypted-b", &[1; 32])).is_err());
        let mut text = data.to_string().into_bytes();
        let i = flip.index(text.len());
        text[i] ^= 0x01;
        if let Ok(tampered) = serde_json::from_slice::<Value>(&text)
            && tampered != data
        {
            prop_assert!(decrypt(&tampered, &secret).is_err());
        }
    }
}

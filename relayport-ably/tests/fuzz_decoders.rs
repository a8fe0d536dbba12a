//! Property tests for the decoder of Ably protocol messages (JSON protocol v6; the client does
//! not speak msgpack) and the payload encoding chains: arbitrary text, generated messages, and
//! recorded frames with random damage. The same properties run for longer under `cargo fuzz`
//! (fuzz/, `scripts/fuzz`).

use std::sync::OnceLock;

use proptest::prelude::*;
use relayport_ably::connection::position_from_serial;
use relayport_ably::encoding::{Payload, decode};
use relayport_ably::protocol::{ProtocolMessage, WireMessage, WirePresence};
use serde_json::Value;

/// Server frames recorded against ably-js (testdata/vectors/ably.json).
fn recorded() -> &'static [String] {
    static FRAMES: OnceLock<Vec<String>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let path = format!("{}/tests/vectors/ably.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut out = Vec::new();
        collect(&serde_json::from_str(&text).unwrap(), &mut out);
        assert!(out.len() > 20, "the vectors hold server frames");
        out
    })
}

fn collect(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if o.get("dir").and_then(Value::as_str) == Some("s2c")
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

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

/// Payload data as it can appear on the wire: absent, or a JSON value other than `null`
/// (`null` and absent are the same thing to the protocol).
fn data() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(json()).prop_map(|d| d.filter(|v| !v.is_null()))
}

/// JSON without floats.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9+/=\"{}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,5}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn encoding() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("json".to_owned()),
        Just("base64".to_owned()),
        Just("utf-8/base64".to_owned()),
        Just("json/utf-8/base64".to_owned()),
        Just("json/base64".to_owned()),
        Just("cipher+aes-128-cbc/base64".to_owned()),
        Just("vcdiff".to_owned()),
        Just(String::new()),
        "[a-z0-9/+-]{0,12}",
    ])
}

/// The oracle: a message that parses serializes to JSON that parses back to it; every payload
/// decodes, or stops at a named prefix of its chain; a payload that decodes re-encodes to one
/// that decodes to the same payload; serials map to positions in range.
fn check(text: &str) -> Result<(), TestCaseError> {
    let Ok(pm) = ProtocolMessage::parse(text) else {
        return Ok(());
    };
    let floats = pm.messages.iter().flatten().any(|m| {
        m.data.as_ref().is_some_and(has_float) || m.extras.as_ref().is_some_and(has_float)
    }) || pm
        .presence
        .iter()
        .flatten()
        .any(|p| p.data.as_ref().is_some_and(has_float));
    if !floats {
        prop_assert_eq!(ProtocolMessage::parse(&pm.to_json()).ok(), Some(pm.clone()));
    }
    let payloads = pm
        .messages
        .iter()
        .flatten()
        .map(|m| (m.data.clone(), m.encoding.clone()))
        .chain(
            pm.presence
                .iter()
                .flatten()
                .map(|p| (p.data.clone(), p.encoding.clone())),
        );
    for (data, enc) in payloads {
        check_payload(data, enc.as_deref())?;
    }
    for serial in pm
        .messages
        .iter()
        .flatten()
        .filter_map(|m| m.serial.as_deref())
    {
        if let Some(p) = position_from_serial(serial) {
            let ms: u64 = serial.split_once('-').unwrap().0.parse().unwrap();
            prop_assert_eq!(p.sequence / 1_000_000, ms);
        }
    }
    Ok(())
}

fn check_payload(data: Option<Value>, enc: Option<&str>) -> Result<(), TestCaseError> {
    match decode(data, enc) {
        Ok(payload) => {
            let (d, e) = payload.encode();
            if !matches!(&payload, Payload::Json(v) if has_float(v)) {
                prop_assert_eq!(decode(d, e.as_deref()).ok(), Some(payload));
            }
        }
        Err(u) => {
            let chain = enc.unwrap_or_default();
            prop_assert!(
                chain.starts_with(&u.remaining),
                "{} / {}",
                chain,
                u.remaining
            );
        }
    }
    Ok(())
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

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(300)
    })]

    #[test]
    fn arbitrary_text_is_a_message_or_an_error(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn damaged_recorded_frames_never_panic(
        i in any::<prop::sample::Index>(),
        at in any::<usize>(), len in 0usize..8, how in any::<u8>(), byte in any::<u8>(),
    ) {
        let frames = recorded();
        check(&damage(&frames[i.index(frames.len())], at, len, how, byte))?;
    }

    #[test]
    fn generated_messages_round_trip(
        action in 0i64..20,
        channel in prop::option::of("[a-z:]{1,10}"),
        messages in prop::option::of(prop::collection::vec(
            (data(), encoding(), prop::option::of("[0-9]{1,14}-[0-9]{1,4}@[a-z]{1,3}(:[0-9]{1,4})?")),
            0..3,
        )),
        presence in prop::option::of(prop::collection::vec((data(), encoding(), 0i64..5), 0..3)),
        flags in prop::option::of(any::<u64>()),
    ) {
        let pm = ProtocolMessage {
            action,
            channel,
            flags,
            messages: messages.map(|ms| ms.into_iter().map(|(data, encoding, serial)| WireMessage {
                data, encoding, serial, ..WireMessage::default()
            }).collect()),
            presence: presence.map(|ps| ps.into_iter().map(|(data, encoding, action)| WirePresence {
                data, encoding, action: Some(action), ..WirePresence::default()
            }).collect()),
            ..ProtocolMessage::default()
        };
        let json = pm.to_json();
        prop_assert_eq!(ProtocolMessage::parse(&json).ok(), Some(pm));
        check(&json)?;
    }

    #[test]
    fn payloads_survive_their_own_encoding(
        payload in prop_oneof![
            Just(Payload::None),
            any::<String>().prop_map(Payload::Text),
            prop::collection::vec(any::<u8>(), 0..32).prop_map(Payload::Binary),
            json().prop_map(Payload::Json),
        ],
    ) {
        let (data, enc) = payload.encode();
        prop_assert_eq!(decode(data, enc.as_deref()).ok(), Some(payload));
    }
}

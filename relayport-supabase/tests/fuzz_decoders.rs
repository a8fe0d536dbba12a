//! Property tests for the Supabase/Phoenix frame decoders (vsn 1.0.0 and 2.0.0 text frames,
//! vsn 2.0.0 binary frames) and the dispatcher that interprets decoded frames: arbitrary input,
//! generated frames, every truncation of the recorded binary frames, and recorded text frames
//! with random damage. The same properties run for longer under `cargo fuzz` (fuzz/,
//! `scripts/fuzz`).

use std::sync::OnceLock;

use proptest::prelude::*;
use relayport_supabase::dispatch::{ChannelEntry, Dispatcher, JoinState};
use relayport_supabase::frame::{
    Body, FrameError, MAX_HEADER_FIELD, UserBroadcastPush, UserPayload, decode_binary, decode_text,
    decode_user_broadcast_push, encode_user_broadcast_push,
};
use relayport_supabase::join::JoinParams;
use relayport_supabase::postgres::{PostgresChangesFilter, PostgresEvent, convert_cell};
use relayport_supabase::topic::channel_for_topic;
use serde_json::{Number, Value};

struct Recorded {
    text: Vec<String>,
    binary: Vec<Vec<u8>>,
}

/// Server frames recorded against realtime-js and the Supabase server (testdata/vectors).
fn recorded() -> &'static Recorded {
    static FRAMES: OnceLock<Recorded> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let path = format!("{}/tests/vectors/supabase.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut out = Recorded {
            text: Vec::new(),
            binary: Vec::new(),
        };
        collect(&serde_json::from_str(&text).unwrap(), &mut out);
        assert!(out.text.len() > 20 && !out.binary.is_empty());
        out
    })
}

fn collect(v: &Value, out: &mut Recorded) {
    match v {
        Value::Object(o) => {
            if o.get("dir").and_then(Value::as_str) == Some("server->client") {
                if let Some(t) = o.get("text").and_then(Value::as_str) {
                    out.text.push(t.to_owned());
                }
                if let Some(h) = o.get("hex").and_then(Value::as_str) {
                    out.binary.push(hex(h));
                }
            }
            o.values().for_each(|x| collect(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

fn hex(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs a decoded frame through a dispatcher that has joined its topic as a presence channel
/// with a postgres filter, so that every branch can be reached; twice (diffs applied again).
fn dispatch(frame: relayport_supabase::frame::ServerFrame) {
    let mut d = Dispatcher::default();
    if let Ok(channel) = channel_for_topic(&frame.topic, true, true) {
        let replying = frame.event == "phx_reply";
        let join_ref = if replying {
            &frame.ref_
        } else {
            &frame.join_ref
        };
        let params = JoinParams {
            broadcast: None,
            presence_key: "k".into(),
            presence_enabled: true,
            postgres_changes: vec![PostgresChangesFilter::new(PostgresEvent::All, "public")],
            private: true,
            access_token: None,
        };
        let mut entry =
            ChannelEntry::joining(channel, join_ref.clone().unwrap_or("1".into()), params);
        if !replying {
            entry.state = JoinState::Joined;
            entry.server_ids = vec![1];
        }
        d.insert(frame.topic.clone(), entry);
    }
    let _ = d.handle(frame.clone());
    let _ = d.handle(frame);
}

fn damage(bytes: &[u8], at: usize, len: usize, how: u8, byte: u8) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
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
    bytes
}

fn check_text(text: &str) {
    if let Ok(frame) = decode_text(text) {
        assert!(matches!(frame.body, Body::Json(_)));
        dispatch(frame);
    }
}

fn check_binary(bytes: &[u8]) {
    if let Ok(frame) = decode_binary(bytes) {
        dispatch(frame);
    }
    let _ = decode_user_broadcast_push(bytes);
}

fn field(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::char::range('a', 'z'), 0..=max).prop_map(String::from_iter)
}

/// `parseFloat` as the cell conversion defined it before it was made linear: the longest
/// prefix of digits, `.`, `e`, `E`, `+`, `-` that parses as an `f64`, trying every prefix.
fn reference_numeric(s: &str) -> Option<Value> {
    let t = s.trim_start();
    let mut best = None;
    for (i, _) in t.char_indices().skip(1).chain([(t.len(), ' ')]) {
        let prefix = &t[..i];
        if prefix
            .chars()
            .all(|c| c.is_ascii_digit() || ".eE+-".contains(c))
            && let Ok(f) = prefix.parse::<f64>()
        {
            best = Some(f);
        }
    }
    let f = best?;
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Some(Value::from(f as i64))
    } else {
        Number::from_f64(f).map(Value::Number)
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(300)
    })]

    #[test]
    fn arbitrary_input_is_a_frame_or_a_frame_error(text in any::<String>(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        check_text(&text);
        check_binary(&bytes);
        check_binary(text.as_bytes());
    }

    #[test]
    fn damaged_recorded_frames_never_panic(
        i in any::<prop::sample::Index>(),
        at in any::<usize>(), len in 0usize..8, how in any::<u8>(), byte in any::<u8>(),
    ) {
        let r = recorded();
        let text = damage(r.text[i.index(r.text.len())].as_bytes(), at, len, how, byte);
        check_text(&String::from_utf8_lossy(&text));
        check_binary(&damage(&r.binary[i.index(r.binary.len())], at, len, how, byte));
    }

    #[test]
    fn user_broadcast_pushes_round_trip_or_are_refused(
        join_ref in field(4), ref_ in field(4), topic in field(300), user_event in field(20),
        metadata in prop::option::of(prop::collection::btree_map("[a-z]{1,4}", any::<i32>(), 0..4)),
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..32).prop_map(UserPayload::Binary),
            prop::collection::btree_map("[a-z]{1,4}", any::<i64>(), 0..4)
                .prop_map(|m| UserPayload::Json(serde_json::to_value(m).unwrap())),
        ],
    ) {
        let push = UserBroadcastPush {
            join_ref, ref_, topic, user_event,
            metadata: metadata.map(|m| serde_json::to_value(m).unwrap()),
            payload,
        };
        match encode_user_broadcast_push(&push) {
            Ok(bytes) => {
                prop_assert!(push.topic.len() <= MAX_HEADER_FIELD);
                prop_assert_eq!(decode_user_broadcast_push(&bytes), Ok(push));
                // Every strict prefix is truncated, never a panic or a shorter frame.
                for cut in 0..bytes.len().min(40) {
                    if let Ok(p) = decode_user_broadcast_push(&bytes[..cut]) {
                        prop_assert!(matches!(p.payload, UserPayload::Binary(_)));
                    }
                }
            }
            Err(e) => {
                prop_assert!(push.topic.len() > MAX_HEADER_FIELD);
                let refused_topic = matches!(e, FrameError::FieldTooLong { field: "topic", .. });
                prop_assert!(refused_topic);
            }
        }
    }

    #[test]
    fn user_broadcasts_decode_to_their_fields(
        topic in field(40), user_event in field(20), id in prop::option::of("[a-z0-9-]{1,12}"),
        body in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let meta = id.as_ref().map(|id| serde_json::json!({"id": id}).to_string()).unwrap_or_default();
        let mut frame = vec![4, topic.len() as u8, user_event.len() as u8, meta.len() as u8, 0];
        frame.extend(topic.as_bytes());
        frame.extend(user_event.as_bytes());
        frame.extend(meta.as_bytes());
        frame.extend(&body);
        let decoded = decode_binary(&frame).unwrap();
        prop_assert_eq!(&decoded.topic, &topic);
        match decoded.body {
            Body::UserBroadcast { user_event: e, metadata, payload } => {
                prop_assert_eq!(e, user_event);
                prop_assert_eq!(metadata.and_then(|m| m["id"].as_str().map(str::to_owned)), id);
                prop_assert_eq!(payload, UserPayload::Binary(body));
            }
            other => prop_assert!(false, "decoded to {:?}", other),
        }
        for cut in 1..5 + topic.len() {
            prop_assert!(decode_binary(&frame[..cut]).is_err(), "prefix of {} bytes", cut);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(1000)
    })]

    #[test]
    fn numeric_cells_convert_as_parse_float_does(
        text in prop_oneof!["[ ]?[-+]?[0-9]{0,4}[.]?[0-9]{0,3}([eE][-+]?[0-9]{0,3})?[-+.eEx0-9]{0,3}", "[0-9.eE+ -]{0,10}", any::<String>()],
    ) {
        let cell = Value::String(text.clone());
        let want = reference_numeric(&text).unwrap_or_else(|| cell.clone());
        prop_assert_eq!(convert_cell("numeric", &cell), want, "{:?}", text);
    }
}

/// A `numeric` cell may hold 131072 digits. Converting it must be linear: trying every prefix
/// (the earlier definition) took minutes for this cell.
#[test]
fn a_huge_numeric_cell_converts_in_one_pass() {
    let digits = format!("1.{}e2x", "0".repeat(131_072));
    let converted = convert_cell("numeric", &Value::String(digits));
    assert_eq!(converted, serde_json::json!(100));
    let junk = Value::String("e".repeat(200_000));
    assert_eq!(convert_cell("numeric", &junk), junk);
}

#[test]
fn every_prefix_of_every_recorded_binary_frame_is_an_error_or_a_frame() {
    for frame in &recorded().binary {
        for cut in 0..frame.len() {
            check_binary(&frame[..cut]);
        }
        assert!(decode_binary(frame).is_ok(), "{frame:?}");
    }
}

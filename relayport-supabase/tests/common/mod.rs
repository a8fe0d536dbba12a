//! Shared helpers for the vector-driven tests: loading the file and reading realtime-js's
//! client frames back into our own push types.
#![allow(dead_code)]

use relayport_core::Channel;
use relayport_supabase::frame::{ProtocolVersion, UserPayload, decode_user_broadcast_push};
use relayport_supabase::join::{BroadcastOptions, ChannelOptions, JoinParams};
use relayport_supabase::postgres::PostgresChangesFilter;
use relayport_supabase::push::ClientPush;
use serde_json::{Value, json};

/// The vector file, copied from the shared captures into the repository.
pub fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/vectors/supabase.json"
    );
    let text = std::fs::read_to_string(path).expect("testdata/vectors/supabase.json");
    serde_json::from_str(&text).expect("vector file is JSON")
}

/// Hex to bytes (test input only).
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Bytes to lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A client frame of the file, read back.
#[derive(Debug, Clone)]
pub struct ClientFrame {
    pub vsn: ProtocolVersion,
    pub join_ref: Option<String>,
    pub ref_: String,
    pub topic: String,
    pub push: ClientPush,
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// The join parameters of a `phx_join` payload. A broadcast object equal to realtime-js's
/// default (`{"ack":false,"self":false}`) means "nothing set".
pub fn join_params(payload: &Value) -> JoinParams {
    let config = &payload["config"];
    let broadcast = &config["broadcast"];
    let broadcast = if *broadcast == json!({"ack": false, "self": false}) {
        None
    } else {
        Some(serde_json::from_value::<BroadcastOptions>(broadcast.clone()).expect("broadcast"))
    };
    JoinParams {
        broadcast,
        presence_key: config["presence"]["key"].as_str().unwrap_or("").to_owned(),
        presence_enabled: config["presence"]["enabled"].as_bool().unwrap_or(false),
        postgres_changes: serde_json::from_value::<Vec<PostgresChangesFilter>>(
            config["postgres_changes"].clone(),
        )
        .expect("postgres_changes"),
        private: config["private"].as_bool().unwrap_or(false),
        access_token: opt_str(&payload["access_token"]),
    }
}

/// The neutral channel and options that make our provider join exactly like this payload.
pub fn channel_and_options(topic: &str, params: &JoinParams) -> (Channel, ChannelOptions) {
    let name = topic.strip_prefix("realtime:").expect("realtime: topic");
    let channel = if params.private {
        Channel::private(name)
    } else {
        Channel::public(name)
    };
    let options = ChannelOptions {
        broadcast: params.broadcast.clone(),
        presence_enabled: Some(params.presence_enabled),
        presence_key: Some(params.presence_key.clone()),
        private: Some(params.private),
        postgres_changes: params.postgres_changes.clone(),
    };
    (channel, options)
}

fn push_of(event: &str, payload: &Value) -> ClientPush {
    match event {
        "phx_join" => ClientPush::Join(join_params(payload)),
        "phx_leave" => ClientPush::Leave,
        "heartbeat" => ClientPush::Heartbeat,
        "access_token" => {
            ClientPush::AccessToken(opt_str(&payload["access_token"]).expect("token"))
        }
        "presence" => match payload["event"].as_str() {
            Some("track") => ClientPush::Track(payload["payload"].clone()),
            Some("untrack") => ClientPush::Untrack,
            other => panic!("unknown presence event {other:?}"),
        },
        "broadcast" => ClientPush::Broadcast {
            event: opt_str(&payload["event"]).expect("event"),
            payload: UserPayload::Json(payload["payload"].clone()),
            metadata: None,
        },
        other => panic!("unknown client event {other}"),
    }
}

/// Reads a client→server frame of the file (`text` or `hex`) back into a push.
pub fn client_frame(frame: &Value) -> ClientFrame {
    if let Some(h) = frame["hex"].as_str() {
        let p = decode_user_broadcast_push(&unhex(h)).expect("kind 3 frame");
        return ClientFrame {
            vsn: ProtocolVersion::V2,
            join_ref: Some(p.join_ref),
            ref_: p.ref_,
            topic: p.topic,
            push: ClientPush::Broadcast {
                event: p.user_event,
                payload: p.payload,
                metadata: p.metadata,
            },
        };
    }
    let text = frame["text"].as_str().expect("text frame");
    let v: Value = serde_json::from_str(text).expect("client frame is JSON");
    match &v {
        Value::Array(a) => ClientFrame {
            vsn: ProtocolVersion::V2,
            join_ref: opt_str(&a[0]),
            ref_: opt_str(&a[1]).expect("ref"),
            topic: opt_str(&a[2]).expect("topic"),
            push: push_of(a[3].as_str().expect("event"), &a[4]),
        },
        Value::Object(o) => ClientFrame {
            vsn: ProtocolVersion::V1,
            join_ref: o.get("join_ref").and_then(opt_str_ref),
            ref_: o.get("ref").and_then(opt_str_ref).expect("ref"),
            topic: o.get("topic").and_then(opt_str_ref).expect("topic"),
            push: push_of(
                o.get("event").and_then(Value::as_str).expect("event"),
                o.get("payload").unwrap_or(&Value::Null),
            ),
        },
        other => panic!("client frame {other}"),
    }
}

fn opt_str_ref(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// Every frame of every scenario, with the scenario's name.
pub fn all_frames(v: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (name, s) in v["scenarios"].as_object().expect("scenarios") {
        for f in s["frames"].as_array().into_iter().flatten() {
            out.push((name.clone(), f.clone()));
        }
    }
    for f in v["key_vectors"].as_array().expect("key_vectors") {
        out.push(("key_vectors".into(), f.clone()));
    }
    out
}

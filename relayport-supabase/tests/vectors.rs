//! The vector file, entry by entry: our encoder reproduces every client frame realtime-js sent,
//! our decoder reads every server frame, and the frames of each scenario produce what
//! realtime-js's callbacks recorded.

mod common;

use std::collections::BTreeMap;

use common::{all_frames, client_frame, hex, join_params, unhex, vectors};
use relayport_core::{Channel, Message};
use relayport_supabase::dispatch::{Action, ChannelEntry, Dispatcher};
use relayport_supabase::frame::{Body, UserPayload, decode_binary, decode_text};
use relayport_supabase::postgres::{EVENT_PREFIX, PostgresChangesFilter};
use relayport_supabase::presence::RawPresenceEvent;
use relayport_supabase::push::{ClientPush, WireFrame};
use serde_json::{Value, json};

#[test]
fn every_client_frame_is_reproduced_byte_for_byte() {
    let v = vectors();
    let mut checked = 0;
    for (scenario, frame) in all_frames(&v) {
        if frame["dir"] != "client->server" {
            continue;
        }
        let mut expected = frame.clone();
        // realtime-js 2.119.1 adds `"version":"realtime-js/2.119.1"` to rejoins after a
        // reconnect; we do not impersonate realtime-js (README, "Deliberate differences").
        if let Some(t) = expected["text"].as_str() {
            expected["text"] = json!(t.replace(",\"version\":\"realtime-js/2.119.1\"", ""));
        }
        let f = client_frame(&expected);
        let ours = f
            .push
            .encode(f.vsn, f.join_ref.as_deref(), &f.ref_, &f.topic)
            .unwrap_or_else(|e| panic!("{scenario}: {e}"));
        match ours {
            WireFrame::Text(t) => {
                assert_eq!(Some(t.as_str()), expected["text"].as_str(), "{scenario}")
            }
            WireFrame::Binary(b) => assert_eq!(
                Some(hex(&b).as_str()),
                expected["hex"].as_str(),
                "{scenario}"
            ),
        }
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} client frames checked");
}

fn arraybuffer_to_binary(v: &Value) -> Value {
    match v.get("__arraybuffer_hex").and_then(Value::as_str) {
        // How a binary message's data shows in this test's JSON view (base64 text).
        Some(h) => serde_json::to_value(relayport_core::Payload::from(unhex(h))).unwrap(),
        None => v.clone(),
    }
}

#[test]
fn binary_frames_match_the_harness_decode() {
    let v = vectors();
    let mut checked = 0;
    for (scenario, frame) in all_frames(&v) {
        let Some(h) = frame["hex"].as_str() else {
            continue;
        };
        let d = &frame["decoded"];
        if frame["dir"] == "server->client" {
            let f = decode_binary(&unhex(h)).unwrap_or_else(|e| panic!("{scenario}: {e}"));
            let Body::UserBroadcast {
                user_event,
                metadata,
                payload,
            } = f.body
            else {
                panic!("{scenario}: not a user broadcast")
            };
            assert_eq!(f.topic, d["topic"], "{scenario}");
            assert_eq!(user_event, d["userEvent"], "{scenario}");
            assert_eq!(metadata.unwrap_or(Value::Null), d["metadata"], "{scenario}");
            match (payload, d["encoding"].as_str()) {
                (UserPayload::Json(p), Some("json")) => assert_eq!(p, d["payload"]),
                (UserPayload::Binary(b), Some("binary")) => assert_eq!(json!(b), d["payload"]),
                other => panic!("{scenario}: {other:?}"),
            }
        } else {
            let f = client_frame(&frame);
            assert_eq!(Some(f.ref_.as_str()), d["ref"].as_str());
            assert_eq!(f.join_ref.as_deref(), d["join_ref"].as_str());
            assert_eq!(f.topic, d["topic"]);
            let ClientPush::Broadcast {
                event,
                payload,
                metadata,
            } = f.push
            else {
                panic!("{scenario}: not a broadcast")
            };
            assert_eq!(event, d["user_event"]);
            assert_eq!(metadata.unwrap_or(Value::Null), d["metadata"]);
            match payload {
                UserPayload::Json(p) => assert_eq!(p, d["user_payload"]),
                UserPayload::Binary(b) => {
                    assert_eq!(json!({"__bytes_hex": hex(&b)}), d["user_payload"])
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} binary frames checked");
}

#[test]
fn every_server_frame_decodes() {
    let v = vectors();
    let mut checked = 0;
    for (scenario, frame) in all_frames(&v) {
        if frame["dir"] != "server->client" {
            continue;
        }
        let decoded = match (frame["text"].as_str(), frame["hex"].as_str()) {
            (Some(t), _) => decode_text(t),
            (None, Some(h)) => decode_binary(&unhex(h)),
            _ => panic!("{scenario}: frame without text or hex"),
        };
        let f = decoded.unwrap_or_else(|e| panic!("{scenario}: {e}"));
        assert!(
            f.topic == "phoenix" || f.topic.starts_with("realtime:"),
            "{scenario}"
        );
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} server frames checked");
}

/// What realtime-js's callbacks recorded, reduced to what frames determine.
fn expected_events(callbacks: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for cb in callbacks {
        let name = cb["callback"].as_str().unwrap_or_default();
        let arg = &cb["args"][0];
        // Two-channel scenarios prefix callbacks with the channel's variable (`a.`, `b.`).
        let name = match name.split_once('.') {
            Some((var, rest)) if var.len() == 1 => rest,
            _ => name,
        };
        if name.starts_with("on(broadcast") {
            out.push(json!({"kind": "broadcast", "event": arg["event"],
                "payload": arraybuffer_to_binary(&arg["payload"]), "id": arg["meta"]["id"]}));
        } else if name.starts_with("on(system") {
            out.push(json!({"kind": "system", "payload": arg}));
        } else if let Some(label) = name.strip_prefix("on(postgres_changes,") {
            out.push(
                json!({"kind": "postgres", "label": label.trim_end_matches(')'), "args": arg}),
            );
        } else if name == "on(presence,{event:join})" {
            out.push(json!({"kind": "join", "key": arg["key"], "current": arg["currentPresences"], "new": arg["newPresences"]}));
        } else if name == "on(presence,{event:leave})" {
            out.push(json!({"kind": "leave", "key": arg["key"], "current": arg["currentPresences"], "left": arg["leftPresences"]}));
        } else if name == "on(presence,{event:sync})" {
            out.push(json!({"kind": "sync", "state": cb["presenceState"]}));
        }
    }
    out
}

fn label(f: &PostgresChangesFilter) -> String {
    let mut s = format!("{} {}", f.event.as_str(), f.schema);
    if let Some(t) = &f.table {
        s.push('.');
        s.push_str(t);
    }
    if let Some(x) = &f.filter {
        s.push(' ');
        s.push_str(x);
    }
    s
}

fn message_events(
    m: &Message,
    filters: &BTreeMap<Channel, Vec<PostgresChangesFilter>>,
) -> Vec<Value> {
    if m.event.starts_with(EVENT_PREFIX) {
        let mut args = m.data.as_json().cloned().unwrap_or_default();
        let bindings = args
            .as_object_mut()
            .and_then(|o| o.remove("bindings"))
            .unwrap_or_default();
        let fs = &filters[&m.channel];
        return bindings
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| json!({"kind": "postgres", "label": label(&fs[i.as_u64().unwrap() as usize]), "args": args}))
            .collect();
    }
    vec![json!({"kind": "broadcast", "event": m.event, "payload": m.data, "id": m.id})]
}

/// Sorts each run of join/leave events (realtime-js walks a diff's keys in insertion order,
/// serde_json in sorted order; within one diff the order of keys carries no meaning).
fn canonical(mut events: Vec<Value>) -> Vec<Value> {
    let mut i = 0;
    while i < events.len() {
        let is_pres = |e: &Value| e["kind"] == "join" || e["kind"] == "leave";
        if !is_pres(&events[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < events.len() && is_pres(&events[i]) {
            i += 1;
        }
        events[start..i].sort_by_key(|e| format!("{}{}", e["kind"], e["key"]));
    }
    events
}

#[test]
fn server_frames_produce_what_realtime_js_callbacks_recorded() {
    let v = vectors();
    let mut scenarios_checked = 0;
    for (name, s) in v["scenarios"].as_object().unwrap() {
        let Some(frames) = s["frames"].as_array() else {
            continue;
        };
        let expected = canonical(expected_events(s["client_callbacks"].as_array().unwrap()));
        let mut d = Dispatcher::default();
        let mut filters = BTreeMap::new();
        let mut actual = Vec::new();
        for f in frames {
            if f["dir"] == "client->server" {
                let c = client_frame(f);
                match &c.push {
                    ClientPush::Join(params) => {
                        let payload =
                            serde_json::from_str::<Value>(f["text"].as_str().unwrap()).unwrap();
                        let payload = payload.get(4).or(payload.get("payload")).cloned().unwrap();
                        let params2 = join_params(&payload);
                        assert_eq!(params, &params2);
                        let (channel, _) = common::channel_and_options(&c.topic, params);
                        filters.insert(channel.clone(), params.postgres_changes.clone());
                        d.insert(
                            c.topic.clone(),
                            ChannelEntry::joining(
                                channel,
                                c.join_ref.clone().unwrap(),
                                params.clone(),
                            ),
                        );
                    }
                    ClientPush::Leave => {
                        if let Some(e) = d.get_mut(&c.topic) {
                            e.state = relayport_supabase::dispatch::JoinState::Leaving;
                        }
                    }
                    _ => {}
                }
                continue;
            }
            let frame = match (f["text"].as_str(), f["hex"].as_str()) {
                (Some(t), _) => decode_text(t).unwrap(),
                (_, Some(h)) => decode_binary(&unhex(h)).unwrap(),
                _ => unreachable!(),
            };
            for action in d.handle(frame) {
                match action {
                    Action::Message(m) => actual.extend(message_events(&m, &filters)),
                    // Typed, not a message (issue 15 item 6); what realtime-js's `system`
                    // callback got is still all there.
                    Action::System(e) => actual.push(json!({"kind": "system", "payload": {
                        "channel": e.channel.name(),
                        "extension": e.extension,
                        "message": e.message,
                        "status": e.status,
                    }})),
                    Action::Presence { update, .. } => {
                        for r in update.raw {
                            actual.push(match r {
                                RawPresenceEvent::Join { key, current, new } => json!({"kind": "join", "key": key, "current": current, "new": new}),
                                RawPresenceEvent::Leave { key, current, left } => json!({"kind": "leave", "key": key, "current": current, "left": left}),
                            });
                        }
                        if update.synced {
                            actual.push(json!({"kind": "sync", "state": update.state}));
                        }
                    }
                    Action::Error { error, .. }
                        if !matches!(error, relayport_core::RealtimeError::RateLimited(_)) =>
                    {
                        panic!("{name}: unexpected error {error}")
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(canonical(actual), expected, "{name}");
        if !expected.is_empty() {
            scenarios_checked += 1;
        }
    }
    assert!(
        scenarios_checked >= 5,
        "only {scenarios_checked} scenarios had callbacks to check"
    );
}

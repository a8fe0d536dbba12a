//! Protocol 7 frames as the server writes them (`{"event", "channel"?, "data"?, "user_id"?}`,
//! `data` a JSON-encoded string as Pusher sends it, objects where Pusher sends objects), and
//! the translation of native broker frames for Pusher-protocol connections.
//!
//! Payloads: a native message whose `data` is a JSON string reaches Pusher clients as that
//! string verbatim; any other value is sent JSON-encoded (a string holding JSON, which
//! pusher-js parses). Client events (`client-*`) keep the value the sender sent, as Pusher
//! relays them. In the other direction a Pusher `data` string that holds JSON becomes that
//! JSON value for native subscribers; any other string stays a string.

use relayport_core::PresenceMember;
use serde_json::{Map, Value, json};

use super::names::key_to_wire;
use crate::protocol::{PresenceAction, ServerFrame};

fn frame(event: &str, channel: Option<&str>, data: Option<Value>, user_id: Option<&str>) -> String {
    let mut o = Map::new();
    o.insert("event".into(), Value::String(event.into()));
    if let Some(c) = channel {
        o.insert("channel".into(), Value::String(c.into()));
    }
    if let Some(d) = data {
        o.insert("data".into(), d);
    }
    if let Some(u) = user_id {
        o.insert("user_id".into(), Value::String(u.into()));
    }
    Value::Object(o).to_string()
}

/// `data` as a JSON-encoded string.
fn encoded(v: Value) -> Value {
    Value::String(v.to_string())
}

/// `pusher:connection_established`.
pub fn connection_established(socket_id: &str, activity_timeout_secs: u64) -> String {
    frame(
        "pusher:connection_established",
        None,
        Some(encoded(
            json!({"socket_id": socket_id, "activity_timeout": activity_timeout_secs}),
        )),
        None,
    )
}

/// `pusher:error` (`code` null for errors without a documented code).
pub fn error(code: Option<u16>, message: &str) -> String {
    frame(
        "pusher:error",
        None,
        Some(json!({"code": code, "message": message})),
        None,
    )
}

/// `pusher:pong`.
pub fn pong() -> String {
    frame("pusher:pong", None, Some(json!({})), None)
}

/// `pusher:subscription_error` for a channel (`{type, error, status}`, as pusher-js reports
/// authorization failures).
pub fn subscription_error(channel: &str, kind: &str, message: &str, status: u16) -> String {
    frame(
        "pusher:subscription_error",
        Some(channel),
        Some(json!({"type": kind, "error": message, "status": status})),
        None,
    )
}

/// `pusher_internal:subscription_succeeded`, with the presence set for presence channels.
pub fn subscription_succeeded(channel: &str, members: Option<&[PresenceMember]>) -> String {
    let data = match members {
        None => json!({}),
        Some(members) => {
            let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
            let hash: Map<String, Value> = members
                .iter()
                .map(|m| (m.id.clone(), m.data.clone()))
                .collect();
            json!({"presence": {"ids": ids, "hash": hash, "count": members.len()}})
        }
    };
    frame(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        Some(encoded(data)),
        None,
    )
}

/// `pusher:signin_success` (data an object holding the `user_data` string).
pub fn signin_success(user_data: &str) -> String {
    frame(
        "pusher:signin_success",
        None,
        Some(json!({"user_data": user_data})),
        None,
    )
}

/// `pusher_internal:watchlist_events`: `{"events": [{"name": "online"|"offline", "user_ids"}]}`.
pub fn watchlist_events(events: &[(&str, Vec<String>)]) -> String {
    let events: Vec<Value> = events
        .iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(name, ids)| json!({"name": name, "user_ids": ids}))
        .collect();
    frame(
        "pusher_internal:watchlist_events",
        None,
        Some(encoded(json!({"events": events}))),
        None,
    )
}

/// A channel event. `client-*` events keep their value; others carry a string.
pub fn event(channel: &str, name: &str, data: &Value, user_id: Option<&str>) -> String {
    let data = if name.starts_with("client-") {
        data.clone()
    } else {
        match data {
            Value::String(_) => data.clone(),
            other => encoded(other.clone()),
        }
    };
    frame(name, Some(channel), Some(data), user_id)
}

/// A Pusher `data` string as a native payload: JSON when it holds JSON, else the string.
pub fn payload_from_wire(data: Value) -> Value {
    match data {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    }
}

/// Translates a native broker frame for a Pusher-protocol connection into the frames to
/// send: none for an unsubscribe acknowledgement, a presence data update (Pusher has no event
/// for it) or a channel without a Pusher name; `subscription_succeeded` followed by the
/// channel's retained snapshot (as the event it was stored as) for a subscription. `user_of`
/// finds the presence user id of a sender's socket on a channel (for client events on
/// presence channels).
pub fn translate(
    native: &ServerFrame,
    user_of: impl Fn(&str, &str) -> Option<String>,
) -> Vec<String> {
    match native {
        // `channel` is the name the Pusher client subscribed with.
        ServerFrame::Subscribed {
            channel,
            members,
            snapshot,
            ..
        } => {
            let mut out = vec![subscription_succeeded(channel, members.as_deref())];
            if let Some(s) = snapshot {
                out.push(event(channel, &s.event, &s.data, None));
            }
            out
        }
        // A binary payload (native protocol, `encoding: base64`) reaches Pusher clients as its
        // base64 text: Pusher's `data` is text only.
        ServerFrame::Message(m) => {
            let Some(wire) = key_to_wire(&m.channel) else {
                return Vec::new();
            };
            let user = if m.event.starts_with("client-") && wire.starts_with("presence-") {
                m.sender.as_deref().and_then(|s| user_of(s, &m.channel))
            } else {
                None
            };
            vec![event(&wire, &m.event, &m.data, user.as_deref())]
        }
        ServerFrame::Presence {
            channel,
            action,
            member,
        } => {
            let Some(wire) = key_to_wire(channel) else {
                return Vec::new();
            };
            match action {
                PresenceAction::Join => vec![frame(
                    "pusher_internal:member_added",
                    Some(&wire),
                    Some(encoded(
                        json!({"user_id": member.id, "user_info": member.data}),
                    )),
                    None,
                )],
                PresenceAction::Leave => vec![frame(
                    "pusher_internal:member_removed",
                    Some(&wire),
                    Some(encoded(json!({"user_id": member.id}))),
                    None,
                )],
                _ => Vec::new(),
            }
        }
        ServerFrame::Error {
            message, channel, ..
        } => vec![match channel.as_deref() {
            Some(c) => subscription_error(c, "SubscriptionError", message, 400),
            None => error(None, message),
        }],
        ServerFrame::Pong { .. } => vec![pong()],
        // Pusher clients never ask for history (the native protocol's request).
        ServerFrame::Connected { .. }
        | ServerFrame::Unsubscribed { .. }
        | ServerFrame::Ack { .. }
        | ServerFrame::History { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MessageFrame;

    fn one(mut frames: Vec<String>) -> String {
        assert_eq!(frames.len(), 1, "{frames:?}");
        frames.remove(0)
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).expect("json")
    }

    fn message(channel: &str, event: &str, data: Value, sender: Option<&str>) -> ServerFrame {
        ServerFrame::Message(MessageFrame {
            encoding: None,
            channel: channel.into(),
            event: event.into(),
            data,
            id: "e-1".into(),
            seq: 1,
            epoch: "e".into(),
            ts: 0,
            sender: sender.map(str::to_owned),
        })
    }

    #[test]
    fn frames_are_double_encoded_like_pushers() {
        let f = parse(&connection_established("1.2", 30));
        assert_eq!(
            f["data"],
            json!("{\"activity_timeout\":30,\"socket_id\":\"1.2\"}")
        );
        let members = [PresenceMember::new("u1", json!({"n": 1}))];
        let f = parse(&subscription_succeeded("presence-x", Some(&members)));
        let data = parse(f["data"].as_str().expect("string"));
        assert_eq!(
            data,
            json!({"presence": {"ids": ["u1"], "hash": {"u1": {"n": 1}}, "count": 1}})
        );
        assert_eq!(
            parse(&error(Some(4301), "slow down"))["data"]["code"],
            json!(4301)
        );
    }

    #[test]
    fn messages_translate_with_pusher_names_and_payloads() {
        let none = |_: &str, _: &str| None;
        let f = parse(&one(translate(
            &message("private:room:1", "e", json!({"a": 1}), None),
            none,
        )));
        assert_eq!(
            f,
            json!({"event": "e", "channel": "private-room-1", "data": "{\"a\":1}"})
        );
        let f = parse(&one(translate(
            &message("feed", "e", json!("plain"), None),
            none,
        )));
        assert_eq!(f["data"], json!("plain"));
        // Bytes published natively arrive as their base64 text.
        let mut bytes = message("feed", "blob", json!("AP8="), None);
        if let ServerFrame::Message(m) = &mut bytes {
            m.encoding = Some("base64".into());
        }
        assert_eq!(parse(&one(translate(&bytes, none)))["data"], json!("AP8="));
        // A channel with no Pusher name is never sent to Pusher clients.
        assert!(translate(&message("room-1", "e", json!(1), None), none).is_empty());
        // Client events on presence channels carry the sender's user id, verbatim data.
        let who =
            |s: &str, c: &str| (s == "1.1" && c == "presence:lobby").then(|| "ada".to_owned());
        let f = parse(&one(translate(
            &message(
                "presence:lobby",
                "client-typing",
                json!({"t": true}),
                Some("1.1"),
            ),
            who,
        )));
        assert_eq!(
            f,
            json!({"event": "client-typing", "channel": "presence-lobby", "data": {"t": true}, "user_id": "ada"})
        );
        assert_eq!(payload_from_wire(json!("{\"a\":1}")), json!({"a": 1}));
        assert_eq!(payload_from_wire(json!("hi")), json!("hi"));
    }
}

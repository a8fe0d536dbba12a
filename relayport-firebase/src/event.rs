//! Decoding the stream: SSE events into [`StreamEvent`]s, and those into what changed under
//! a channel's node ([`Change`]). Everything here reads network input: malformed input is a
//! typed error, never a panic.

use relayport_core::transport::sse::SseEvent;
use relayport_core::{RealtimeError, Result};
use serde_json::{Map, Value};

/// One event of a Firebase REST stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// `put`: the data at `path` (relative to the streamed location) was replaced.
    Put {
        /// The location, `/` for the streamed node itself.
        path: String,
        /// The new value (`null`: deleted).
        data: Value,
    },
    /// `patch`: the children named in `data` were replaced under `path`.
    Patch {
        /// The location.
        path: String,
        /// Child key (possibly a relative path) → new value.
        data: Map<String, Value>,
    },
    /// `keep-alive`: nothing changed; the link is alive.
    KeepAlive,
    /// `cancel`: the security rules no longer allow reading the location.
    Cancel,
    /// `auth_revoked`: the credential expired or was revoked; the stream ends.
    AuthRevoked(String),
}

fn protocol(what: impl Into<String>) -> RealtimeError {
    RealtimeError::Protocol(what.into())
}

/// Decodes one SSE event.
pub fn decode_event(event: &SseEvent) -> Result<StreamEvent> {
    let parse = || -> Result<(String, Value)> {
        let mut body: Map<String, Value> = serde_json::from_str(&event.data)
            .map_err(|e| protocol(format!("`{}` event is not a JSON object: {e}", event.event)))?;
        let path = match body.remove("path") {
            Some(Value::String(p)) => p,
            _ => return Err(protocol(format!("`{}` event without a path", event.event))),
        };
        let data = body.remove("data").unwrap_or(Value::Null);
        Ok((path, data))
    };
    match event.event.as_str() {
        "put" => parse().map(|(path, data)| StreamEvent::Put { path, data }),
        "patch" => match parse()? {
            (path, Value::Object(data)) => Ok(StreamEvent::Patch { path, data }),
            _ => Err(protocol("`patch` event whose data is not an object")),
        },
        "keep-alive" => Ok(StreamEvent::KeepAlive),
        "cancel" => Ok(StreamEvent::Cancel),
        "auth_revoked" => Ok(StreamEvent::AuthRevoked(
            serde_json::from_str::<String>(&event.data)
                .unwrap_or_else(|_| "credential revoked".into()),
        )),
        other => Err(protocol(format!("unknown stream event `{other}`"))),
    }
}

/// What changed under a channel's node (`{root}/{channel}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The whole node: its messages and presence members (key → record).
    Snapshot {
        /// The stored messages, in key order.
        messages: Vec<(String, Value)>,
        /// The presence records, in key order.
        presence: Vec<(String, Value)>,
    },
    /// The whole messages node was replaced.
    Messages(Vec<(String, Value)>),
    /// A message was added (or rewritten).
    Message(String, Value),
    /// The whole presence node was replaced.
    Presence(Vec<(String, Value)>),
    /// A member's record was written (`None`: deleted).
    Member(String, Option<Value>),
    /// A member's record was changed in part (its `ts` refreshed, say): the fields written.
    MemberFields(String, Map<String, Value>),
}

fn children(value: Value) -> Vec<(String, Value)> {
    match value {
        Value::Object(map) => {
            let mut v: Vec<_> = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
        _ => Vec::new(),
    }
}

/// The changes a `put` at `path` amounts to (paths this provider does not write are
/// ignored: they change nothing it reports).
fn put_changes(path: &str, data: Value, out: &mut Vec<Change>) {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [] => {
            let mut node = match data {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            out.push(Change::Snapshot {
                messages: children(node.remove("messages").unwrap_or(Value::Null)),
                presence: children(node.remove("presence").unwrap_or(Value::Null)),
            });
        }
        ["messages"] => out.push(Change::Messages(children(data))),
        ["messages", id] if !data.is_null() => out.push(Change::Message((*id).to_owned(), data)),
        ["presence"] => out.push(Change::Presence(children(data))),
        ["presence", member] => out.push(Change::Member(
            (*member).to_owned(),
            (!data.is_null()).then_some(data),
        )),
        ["presence", member, field] => {
            let mut fields = Map::new();
            fields.insert((*field).to_owned(), data);
            out.push(Change::MemberFields((*member).to_owned(), fields));
        }
        _ => {}
    }
}

/// The changes a stream event amounts to under a channel's node.
pub fn changes(event: StreamEvent) -> Vec<Change> {
    let mut out = Vec::new();
    match event {
        StreamEvent::Put { path, data } => put_changes(&path, data, &mut out),
        StreamEvent::Patch { path, data } => {
            let base = path.trim_end_matches('/');
            // A patch of one member's fields stays one change.
            let segs: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
            if let ["presence", member] = segs.as_slice() {
                out.push(Change::MemberFields((*member).to_owned(), data));
                return out;
            }
            let mut keys: Vec<_> = data.into_iter().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, value) in keys {
                put_changes(&format!("{base}/{key}"), value, &mut out);
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: None,
        }
    }

    #[test]
    fn decodes_every_documented_event() {
        assert_eq!(
            decode_event(&ev("put", r#"{"path":"/messages/a","data":{"x":1}}"#)).unwrap(),
            StreamEvent::Put {
                path: "/messages/a".into(),
                data: json!({"x": 1})
            }
        );
        assert_eq!(
            decode_event(&ev("keep-alive", "null")).unwrap(),
            StreamEvent::KeepAlive
        );
        assert_eq!(
            decode_event(&ev("cancel", "null")).unwrap(),
            StreamEvent::Cancel
        );
        assert_eq!(
            decode_event(&ev("auth_revoked", "\"expired\"")).unwrap(),
            StreamEvent::AuthRevoked("expired".into())
        );
        for (name, data) in [
            ("put", "{"),
            ("put", r#"{"data":1}"#),
            ("patch", r#"{"path":"/","data":1}"#),
            ("rules_changed", "null"),
        ] {
            assert!(decode_event(&ev(name, data)).is_err(), "{name} {data}");
        }
    }

    #[test]
    fn patches_and_puts_become_changes() {
        let snap = changes(StreamEvent::Put {
            path: "/".into(),
            data: json!({"messages": {"b": 2, "a": 1}, "presence": {"u": {"ts": 1}}}),
        });
        assert_eq!(
            snap,
            vec![Change::Snapshot {
                messages: vec![("a".into(), json!(1)), ("b".into(), json!(2))],
                presence: vec![("u".into(), json!({"ts": 1}))],
            }]
        );
        let patch = changes(StreamEvent::Patch {
            path: "/".into(),
            data: json!({"messages/x": {"e": 1}, "presence/u": null})
                .as_object()
                .cloned()
                .unwrap(),
        });
        assert_eq!(
            patch,
            vec![
                Change::Message("x".into(), json!({"e": 1})),
                Change::Member("u".into(), None)
            ]
        );
        let touch = changes(StreamEvent::Patch {
            path: "/presence/u".into(),
            data: json!({"ts": 5}).as_object().cloned().unwrap(),
        });
        assert_eq!(
            touch,
            vec![Change::MemberFields(
                "u".into(),
                json!({"ts": 5}).as_object().cloned().unwrap()
            )]
        );
    }
}

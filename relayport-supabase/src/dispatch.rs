//! What incoming frames mean: the joined channels of one socket and a pure function from a
//! decoded [`ServerFrame`] to [`Action`]s. The reader task runs it; tests feed it every server
//! frame of the vector file.

use std::collections::BTreeMap;

use serde_json::Value;

use relayport_core::{Channel, CloseReason, Message, Payload, RealtimeError};

use crate::errors::{ErrorContext, to_error};
use crate::frame::{Body, ServerFrame, UserPayload};
use crate::join::{JoinParams, Reply, parse_join_reply};
use crate::postgres::change_message;
use crate::presence::{PresenceState, PresenceUpdate};
use crate::system::SystemEvent;

/// The event name of the server's `system` frames (typed as [`SystemEvent`]s, never
/// delivered as messages: a user broadcast may be named `system` too).
pub const SYSTEM_EVENT: &str = "system";

/// Where a channel's join stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinState {
    /// `phx_join` sent, no reply yet.
    Joining,
    /// Joined.
    Joined,
    /// `phx_leave` sent.
    Leaving,
    /// The server errored the channel (`phx_error`) or closed it for an expired token: it
    /// waits for its next rejoin attempt (see [`crate::rejoin`]).
    Errored,
}

/// One channel on the socket.
#[derive(Debug, Clone)]
pub struct ChannelEntry {
    /// The neutral channel.
    pub channel: Channel,
    /// The current join ref; frames carrying another one are stale.
    pub join_ref: String,
    /// The join state.
    pub state: JoinState,
    /// What the channel joined with.
    pub params: JoinParams,
    /// Server ids of `params.postgres_changes`, same order (set by the join reply).
    pub server_ids: Vec<u64>,
    /// Presence state.
    pub presence: PresenceState,
    /// The last `system` error, reported as the reason of a following `phx_close`.
    pub last_system_error: Option<String>,
    /// Whether `params.access_token` came from the channel authorization (a per-channel
    /// token, refreshed through the provider's authorizer) rather than the provider's token.
    pub authorized: bool,
    /// The presence key the channel authorization named (the user of a re-authorization).
    pub auth_user: Option<String>,
    /// Rejoin attempts since the last successful join.
    pub rejoins: u32,
}

impl ChannelEntry {
    /// A channel whose `phx_join` (with ref `join_ref`) is on its way.
    pub fn joining(channel: Channel, join_ref: String, params: JoinParams) -> Self {
        Self {
            channel,
            join_ref,
            state: JoinState::Joining,
            params,
            server_ids: Vec::new(),
            presence: PresenceState::default(),
            last_system_error: None,
            authorized: false,
            auth_user: None,
            rejoins: 0,
        }
    }
}

/// What a frame asks the connection to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Hand a reply to whoever waits for `ref_`.
    Reply {
        /// The push's ref.
        ref_: String,
        /// The reply.
        reply: Reply,
    },
    /// Deliver a message.
    Message(Message),
    /// Presence changed on a channel.
    Presence {
        /// The channel.
        channel: Channel,
        /// What changed.
        update: PresenceUpdate,
    },
    /// The server closed a channel for good (`phx_close`): no rejoin.
    Lost {
        /// The channel.
        channel: Channel,
        /// Why.
        error: RealtimeError,
    },
    /// Close the link and let the core reconnect.
    CloseLink(CloseReason),
    /// Rejoin this one channel on the channel schedule (it crashed, `phx_error`, or the server
    /// closed it for an expired token); the socket and the other channels are untouched.
    Rejoin {
        /// The topic.
        topic: String,
        /// The channel.
        channel: Channel,
        /// What happened to it.
        reason: RealtimeError,
        /// Whether its token expired (a fresh one is needed before rejoining).
        token_expired: bool,
    },
    /// A `system` frame, typed.
    System(SystemEvent),
    /// Report an error outside any call.
    Error {
        /// The channel, if any.
        channel: Option<Channel>,
        /// The error.
        error: RealtimeError,
    },
    /// Nothing to do (stale or unknown frames); the text says why, for the debug log.
    Ignored(String),
}

/// The channels of one socket.
#[derive(Debug, Default)]
pub struct Dispatcher {
    entries: BTreeMap<String, ChannelEntry>,
}

impl Dispatcher {
    /// Adds (or replaces) the entry of `topic`.
    pub fn insert(&mut self, topic: String, entry: ChannelEntry) {
        self.entries.insert(topic, entry);
    }

    /// The entry of `topic`.
    pub fn get(&self, topic: &str) -> Option<&ChannelEntry> {
        self.entries.get(topic)
    }

    /// The entry of `topic`, mutably.
    pub fn get_mut(&mut self, topic: &str) -> Option<&mut ChannelEntry> {
        self.entries.get_mut(topic)
    }

    /// Removes `topic`'s entry if its join ref is still `join_ref`.
    pub fn remove_if(&mut self, topic: &str, join_ref: &str) -> Option<ChannelEntry> {
        if self.entries.get(topic)?.join_ref == join_ref {
            self.entries.remove(topic)
        } else {
            None
        }
    }

    /// Forgets every channel (the link is gone).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The joined channels: `(topic, join_ref)`, ordered by topic.
    pub fn joined(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.state == JoinState::Joined)
            .map(|(t, e)| (t.clone(), e.join_ref.clone()))
            .collect()
    }

    /// What `frame` means.
    pub fn handle(&mut self, frame: ServerFrame) -> Vec<Action> {
        if frame.event == "phx_reply" {
            return self.on_reply(frame);
        }
        let Some(entry) = self.entries.get_mut(&frame.topic) else {
            return vec![Action::Ignored(format!(
                "`{}` on `{}`, a topic that is not joined",
                frame.event, frame.topic
            ))];
        };
        if let Some(jr) = &frame.join_ref
            && *jr != entry.join_ref
        {
            return vec![Action::Ignored(format!(
                "stale `{}` on `{}` (join_ref {jr}, current {})",
                frame.event, frame.topic, entry.join_ref
            ))];
        }
        let channel = entry.channel.clone();
        let protocol = |e: RealtimeError| Action::Error {
            channel: Some(channel.clone()),
            error: e,
        };
        match (frame.event.as_str(), frame.body) {
            (
                "broadcast",
                Body::UserBroadcast {
                    user_event,
                    metadata,
                    payload,
                },
            ) => {
                let data = match payload {
                    UserPayload::Json(v) => Payload::Json(v),
                    UserPayload::Binary(b) => Payload::from(b),
                };
                let mut m = Message::new(channel, user_event, data);
                m.id = meta_id(metadata.as_ref());
                vec![Action::Message(m)]
            }
            ("broadcast", Body::Json(v)) => {
                let Some(event) = v.get("event").and_then(Value::as_str) else {
                    return vec![protocol(RealtimeError::Protocol(format!(
                        "broadcast without an event name: {v}"
                    )))];
                };
                let data = v.get("payload").cloned().unwrap_or(Value::Null);
                let mut m = Message::new(channel, event, data);
                m.id = meta_id(v.get("meta"));
                vec![Action::Message(m)]
            }
            ("presence_state", Body::Json(v)) => match entry.presence.apply_state(&v) {
                Ok(update) => vec![Action::Presence { channel, update }],
                Err(e) => vec![protocol(e)],
            },
            ("presence_diff", Body::Json(v)) => match entry.presence.apply_diff(&v) {
                Ok(update) => vec![Action::Presence { channel, update }],
                Err(e) => vec![protocol(e)],
            },
            ("postgres_changes", Body::Json(v)) => {
                match change_message(
                    &channel,
                    &entry.params.postgres_changes,
                    &entry.server_ids,
                    &v,
                ) {
                    Ok(Some(m)) => vec![Action::Message(m)],
                    Ok(None) => vec![Action::Ignored(
                        "postgres change matching none of this join's filters".into(),
                    )],
                    Err(e) => vec![protocol(e)],
                }
            }
            ("system", Body::Json(v)) => {
                let event = SystemEvent::from_payload(channel.clone(), &v);
                let mut actions = Vec::with_capacity(2);
                if event.is_error() {
                    let text = match event.message.as_str() {
                        "" => "unknown error".to_owned(),
                        m => m.to_owned(),
                    };
                    let error = to_error(
                        &text,
                        ErrorContext {
                            channel: Some(&channel),
                            ..Default::default()
                        },
                    );
                    entry.last_system_error = Some(text);
                    actions.push(Action::Error {
                        channel: Some(channel),
                        error,
                    });
                }
                actions.insert(0, Action::System(event));
                actions
            }
            ("phx_close", _) => {
                if entry.state != JoinState::Leaving
                    && entry
                        .last_system_error
                        .as_deref()
                        .is_some_and(crate::system::is_token_expiry)
                {
                    entry.state = JoinState::Errored;
                    let text = entry.last_system_error.take().unwrap_or_default();
                    return vec![Action::Rejoin {
                        topic: frame.topic,
                        channel: channel.clone(),
                        reason: RealtimeError::Unauthorized(format!(
                            "`{channel}` was closed by the server: {text}"
                        )),
                        token_expired: true,
                    }];
                }
                let entry = self.entries.remove(&frame.topic);
                match entry {
                    Some(e) if e.state == JoinState::Leaving => {
                        vec![Action::Ignored("channel closed after our leave".into())]
                    }
                    Some(e) => {
                        let error = e.last_system_error.map_or_else(
                            || {
                                RealtimeError::Closed(format!(
                                    "`{channel}` was closed by the server"
                                ))
                            },
                            |text| {
                                to_error(
                                    &text,
                                    ErrorContext {
                                        channel: Some(&channel),
                                        ..Default::default()
                                    },
                                )
                            },
                        );
                        vec![Action::Lost { channel, error }]
                    }
                    None => vec![],
                }
            }
            ("phx_error", _) if entry.state == JoinState::Leaving => {
                self.entries.remove(&frame.topic);
                vec![Action::Ignored("channel errored while we left it".into())]
            }
            ("phx_error", _) => {
                entry.state = JoinState::Errored;
                vec![Action::Rejoin {
                    topic: frame.topic,
                    channel: channel.clone(),
                    reason: RealtimeError::Closed(format!(
                        "channel `{channel}` crashed on the server (phx_error); rejoining it"
                    )),
                    token_expired: false,
                }]
            }
            (event, Body::Binary(data)) => {
                vec![Action::Message(Message::new(channel, event, data))]
            }
            (event, _) => vec![Action::Ignored(format!(
                "unexpected `{event}` on `{}`",
                frame.topic
            ))],
        }
    }

    fn on_reply(&mut self, frame: ServerFrame) -> Vec<Action> {
        let Some(ref_) = frame.ref_ else {
            return vec![Action::Error {
                channel: None,
                error: RealtimeError::Protocol(format!(
                    "phx_reply without a ref on `{}`",
                    frame.topic
                )),
            }];
        };
        let reply = match frame.body {
            Body::Json(v) => match Reply::from_payload(&v) {
                Ok(r) => r,
                Err(error) => {
                    return vec![Action::Error {
                        channel: None,
                        error,
                    }];
                }
            },
            Body::Reply { status, data } => Reply {
                status,
                response: serde_json::from_slice(&data).unwrap_or(Value::Null),
            },
            other => {
                return vec![Action::Error {
                    channel: None,
                    error: RealtimeError::Protocol(format!("unexpected reply body {other:?}")),
                }];
            }
        };
        if let Some(entry) = self.entries.get_mut(&frame.topic)
            && entry.state == JoinState::Joining
            && entry.join_ref == ref_
            && let Ok(ids) =
                parse_join_reply(&reply, &entry.channel, &entry.params.postgres_changes)
        {
            entry.server_ids = ids;
            entry.state = JoinState::Joined;
        }
        vec![Action::Reply { ref_, reply }]
    }
}

fn meta_id(meta: Option<&Value>) -> Option<String> {
    meta?.get("id")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode_text;

    fn joined(d: &mut Dispatcher, topic: &str, jr: &str) {
        let params = JoinParams {
            broadcast: None,
            presence_key: String::new(),
            presence_enabled: false,
            postgres_changes: vec![],
            private: false,
            access_token: None,
        };
        let mut e = ChannelEntry::joining(Channel::public("room1"), jr.into(), params);
        e.state = JoinState::Joined;
        d.insert(topic.into(), e);
    }

    #[test]
    fn stale_and_unknown_frames_are_ignored() {
        let mut d = Dispatcher::default();
        joined(&mut d, "realtime:room1", "6");
        let stale = decode_text(r#"["5",null,"realtime:room1","presence_state",{}]"#).unwrap();
        assert!(matches!(d.handle(stale).as_slice(), [Action::Ignored(_)]));
        let other = decode_text(r#"[null,null,"realtime:x","broadcast",{"event":"e"}]"#).unwrap();
        assert!(matches!(d.handle(other).as_slice(), [Action::Ignored(_)]));
        let current = decode_text(r#"["6",null,"realtime:room1","presence_state",{}]"#).unwrap();
        assert!(matches!(
            d.handle(current).as_slice(),
            [Action::Presence { .. }]
        ));
        let no_event = decode_text(r#"[null,null,"realtime:room1","broadcast",{}]"#).unwrap();
        assert!(matches!(
            d.handle(no_event).as_slice(),
            [Action::Error { .. }]
        ));
        let bad_reply = decode_text(r#"[null,"1","phoenix","phx_reply",{}]"#).unwrap();
        assert!(matches!(
            d.handle(bad_reply).as_slice(),
            [Action::Error { .. }]
        ));
        let no_ref = decode_text(r#"[null,null,"phoenix","phx_reply",{"status":"ok"}]"#).unwrap();
        assert!(matches!(
            d.handle(no_ref).as_slice(),
            [Action::Error { .. }]
        ));
    }

    #[test]
    fn phx_error_rejoins_one_channel_and_phx_close_loses_it() {
        let mut d = Dispatcher::default();
        joined(&mut d, "realtime:room1", "6");
        let err = decode_text(r#"["6","6","realtime:room1","phx_error",{}]"#).unwrap();
        // Issue 15 item 4: only this channel rejoins; the link stays.
        assert!(matches!(
            d.handle(err).as_slice(),
            [Action::Rejoin {
                token_expired: false,
                ..
            }]
        ));
        assert_eq!(d.get("realtime:room1").unwrap().state, JoinState::Errored);
        assert!(d.joined().is_empty());
        joined(&mut d, "realtime:room1", "7");
        let close = decode_text(r#"["7","7","realtime:room1","phx_close",{}]"#).unwrap();
        assert!(matches!(
            d.handle(close).as_slice(),
            [Action::Lost {
                error: RealtimeError::Closed(_),
                ..
            }]
        ));
    }

    #[test]
    fn system_frames_are_typed_events_and_token_expiry_rejoins() {
        let mut d = Dispatcher::default();
        joined(&mut d, "realtime:room1", "6");
        let ok = decode_text(r#"["6",null,"realtime:room1","system",{"extension":"postgres_changes","status":"ok","message":"Subscribed to PostgreSQL","channel":"room1"}]"#).unwrap();
        let actions = d.handle(ok);
        let [Action::System(e)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(e.kind, crate::system::SystemKind::PostgresSubscribed);
        // A user broadcast named `system` is still a message.
        let user = decode_text(r#"[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"system","payload":{"a":1}}]"#).unwrap();
        assert!(matches!(d.handle(user).as_slice(), [Action::Message(m)] if m.event == "system"));
        let expired = decode_text(r#"["6",null,"realtime:room1","system",{"extension":"system","status":"error","message":"Token has expired 0 seconds ago","channel":"room1"}]"#).unwrap();
        let actions = d.handle(expired);
        assert!(
            matches!(actions.as_slice(), [Action::System(e), Action::Error { error, .. }]
                if e.kind == crate::system::SystemKind::TokenExpired && error.kind() == relayport_core::ErrorKind::Unauthorized),
            "{actions:?}"
        );
        let close = decode_text(r#"["6","6","realtime:room1","phx_close",{}]"#).unwrap();
        assert!(matches!(
            d.handle(close).as_slice(),
            [Action::Rejoin {
                token_expired: true,
                ..
            }]
        ));
        assert_eq!(d.get("realtime:room1").unwrap().state, JoinState::Errored);
    }

    #[test]
    fn phoenix_binary_kinds_are_tolerated() {
        use crate::frame::decode_binary;
        let mut d = Dispatcher::default();
        joined(&mut d, "realtime:room1", "6");
        // kind 1: a reply whose response is JSON bytes
        let mut reply = vec![1, 1, 1, 14, 2, b'6', b'9'];
        reply.extend_from_slice(b"realtime:room1ok{}");
        let actions = d.handle(decode_binary(&reply).unwrap());
        assert_eq!(
            actions,
            vec![Action::Reply {
                ref_: "9".into(),
                reply: Reply {
                    status: "ok".into(),
                    response: serde_json::json!({})
                }
            }]
        );
        // kind 2: a Phoenix broadcast with raw data
        let mut bcast = vec![2, 14, 4];
        bcast.extend_from_slice(b"realtime:room1ping");
        bcast.extend_from_slice(&[0xde, 0xad]);
        let actions = d.handle(decode_binary(&bcast).unwrap());
        let [Action::Message(m)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(m.event, "ping");
        assert_eq!(m.data.as_bytes(), Some(&[0xde, 0xad][..]));
        // kind 0 with a stale join_ref is dropped
        let mut push = vec![0, 1, 14, 4];
        push.extend_from_slice(b"5realtime:room1ping");
        assert!(matches!(
            d.handle(decode_binary(&push).unwrap()).as_slice(),
            [Action::Ignored(_)]
        ));
    }
}

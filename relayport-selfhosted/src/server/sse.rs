//! `GET /sse`: Server-Sent Events for clients that cannot open a WebSocket.
//!
//! Query: `channel=<name>` (repeatable; public and private channels, wildcard patterns).
//! Private channels need `ticket=<ticket>`: a single-use, short-lived ticket from
//! `POST /sse/tickets` whose server-assigned socket id the client had signed and handed in
//! with `POST /sse/auth` (see [`super::sse_tickets`]); signatures never travel in the URL,
//! and `socket_id`/`auth` query parameters are refused. Presence channels need a WebSocket. Every `message` event carries `id:` = a cursor of the
//! positions seen (`channel~epoch~seq|…`); reconnecting with `Last-Event-ID` (or the
//! `last_event_id` query parameter) resumes from history. A comment heartbeat keeps the
//! stream alive.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use relayport_core::{Channel, ChannelKind, Position};
use serde_json::json;

use super::AppState;
use super::broker::{Broker, Registration, SubscribeOptions};
use super::http::error_response;
use super::metrics::Metrics;
use super::presence::ConnId;
use crate::protocol::{PROTOCOL_VERSION, ServerFrame, close, code};

/// The positions a stream has delivered, per channel.
pub type Cursor = BTreeMap<String, (String, u64)>;

/// Encodes a cursor as an SSE event id: `channel~epoch~seq` joined by `|`.
pub fn encode_cursor(cursor: &Cursor) -> String {
    cursor
        .iter()
        .map(|(ch, (epoch, seq))| format!("{ch}~{epoch}~{seq}"))
        .collect::<Vec<_>>()
        .join("|")
}

/// Decodes an SSE event id; unreadable entries are skipped.
pub fn decode_cursor(id: &str) -> Cursor {
    id.split('|')
        .filter_map(|entry| {
            let mut parts = entry.split('~');
            let (ch, epoch, seq) = (parts.next()?, parts.next()?, parts.next()?);
            let ch = Channel::parse(ch).ok()?.to_string();
            Some((ch, (epoch.to_owned(), seq.parse().ok()?)))
        })
        .collect()
}

struct Unregister {
    broker: Broker,
    conn: ConnId,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.broker.unregister(self.conn);
    }
}

struct SseState {
    reg: Registration,
    cursor: Cursor,
    pending: VecDeque<Event>,
    done: bool,
    metrics: Arc<Metrics>,
    _guard: Unregister,
}

fn json_event(kind: &str, value: &impl serde::Serialize) -> Event {
    let data = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    Event::default().event(kind).data(data)
}

impl SseState {
    fn push_frame(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Message(m) => {
                self.cursor
                    .insert(m.channel.clone(), (m.epoch.clone(), m.seq));
                let ev = json_event("message", m).id(encode_cursor(&self.cursor));
                self.pending.push_back(ev);
            }
            ServerFrame::Subscribed {
                channel,
                messages,
                position,
                ..
            } => {
                if let (
                    Ok(ch),
                    Some(Position {
                        epoch: Some(epoch),
                        sequence,
                    }),
                ) = (Channel::parse(channel), position)
                    && !ch.is_wildcard()
                {
                    // Start from the requested position if replaying, else from now.
                    let start = messages
                        .first()
                        .map_or(*sequence, |m| m.seq.saturating_sub(1));
                    self.cursor.insert(ch.to_string(), (epoch.clone(), start));
                }
                let mut head = frame.clone();
                if let ServerFrame::Subscribed { messages, .. } = &mut head {
                    messages.clear();
                }
                self.pending.push_back(json_event("subscribed", &head));
                for m in messages {
                    self.push_frame(&ServerFrame::Message(m.clone()));
                }
            }
            ServerFrame::Presence { .. } => self.pending.push_back(json_event("presence", frame)),
            ServerFrame::Error { .. } => self.pending.push_back(json_event("error", frame)),
            ServerFrame::Connected { .. } => self.pending.push_back(json_event("connected", frame)),
            other => self.pending.push_back(json_event("frame", other)),
        }
    }
}

fn event_stream(state: SseState) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                return Some((Ok(ev), st));
            }
            if st.done {
                return None;
            }
            let kick = st.reg.kick.clone();
            tokio::select! {
                biased;
                _ = kick.kicked() => {
                    st.done = true;
                    let code = kick.code().unwrap_or(close::SERVICE_RESTART);
                    st.reg.rx.close();
                    while st.reg.rx.try_recv().is_ok() {}
                    st.pending.push_back(json_event("close", &json!({"code": code})));
                    st.metrics.disconnect(code);
                }
                item = st.reg.rx.recv() => match item {
                    Some(item) => match item.decode() {
                        Some(frame) => st.push_frame(&frame),
                        // Every queued text was encoded from a frame; if one ever fails to
                        // decode, say so rather than drop it silently.
                        None => st.pending.push_back(json_event(
                            "error",
                            &json!({"code": code::MALFORMED, "message": "undecodable frame"}),
                        )),
                    },
                    None => st.done = true,
                },
            }
        }
    })
}

/// The `GET /sse` handler.
pub(crate) async fn handler(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut channels = Vec::new();
    let mut ticket = None;
    let mut last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    for (k, v) in params {
        match k.as_str() {
            "channel" => channels.push(v),
            "ticket" => ticket = Some(v),
            "auth" | "socket_id" => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    code::MALFORMED,
                    "signatures and socket ids do not travel in URLs: POST /sse/tickets, then \
                     POST /sse/auth, then GET /sse?ticket=…",
                );
            }
            "last_event_id" if last_event_id.is_none() => last_event_id = Some(v),
            _ => {}
        }
    }
    if channels.is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            code::MALFORMED,
            "give at least one channel",
        );
    }
    let max_subs = app.config.limits.max_subscriptions;
    if channels.len() > max_subs {
        let msg = format!("limit max_subscriptions: at most {max_subs} channels");
        return error_response(StatusCode::BAD_REQUEST, code::TOO_MANY_SUBSCRIPTIONS, &msg);
    }
    let mut parsed = Vec::new();
    for name in &channels {
        match Channel::parse(name) {
            Ok(c) if c.kind() == ChannelKind::Presence => {
                let msg = format!("{name}: presence channels need a WebSocket");
                return error_response(StatusCode::BAD_REQUEST, code::FORBIDDEN, &msg);
            }
            Ok(c) => parsed.push((name.clone(), c)),
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    code::INVALID_CHANNEL,
                    &e.to_string(),
                );
            }
        }
    }
    let needs_auth = parsed.iter().any(|(_, c)| c.kind() == ChannelKind::Private);
    let ticket = match ticket {
        Some(id) => match app.tickets.redeem(&id) {
            Some(t) => Some(t),
            None => return super::sse_tickets::refused(),
        },
        None if needs_auth => {
            return error_response(
                StatusCode::UNAUTHORIZED,
                code::UNAUTHORIZED,
                "private channels need a ticket: POST /sse/tickets, then POST /sse/auth",
            );
        }
        None => None,
    };
    let reg = match &ticket {
        Some(t) => match app.broker.register_as(&t.socket_id) {
            Ok(r) => r,
            Err(r) => return error_response(StatusCode::CONFLICT, r.code, &r.message),
        },
        None => app.broker.register(),
    };
    let guard = Unregister {
        broker: app.broker.clone(),
        conn: reg.conn,
    };
    if app.shutdown.is_cancelled() {
        reg.kick.kick(close::SERVICE_RESTART);
    }
    let c = &app.config;
    app.broker.send(
        reg.conn,
        ServerFrame::Connected {
            socket_id: reg.socket_id.clone(),
            protocol: PROTOCOL_VERSION,
            heartbeat_ms: u64::try_from(c.sse_keep_alive.as_millis()).unwrap_or(u64::MAX),
            limits: c.limits,
        },
    );
    let resume = last_event_id
        .as_deref()
        .map(decode_cursor)
        .unwrap_or_default();
    for (name, channel) in parsed {
        if channel.kind() == ChannelKind::Private
            && !ticket
                .as_ref()
                .is_some_and(|t| t.authorized.contains(&channel.to_string()))
        {
            let msg = format!("{name}: no valid signature was handed in for this ticket");
            return error_response(StatusCode::UNAUTHORIZED, code::UNAUTHORIZED, &msg);
        }
        let since = resume
            .get(&channel.to_string())
            .map(|(epoch, seq)| Position {
                epoch: Some(epoch.clone()),
                sequence: *seq,
            });
        let opts = SubscribeOptions {
            reference: None,
            user: None,
            since,
            remote: app.engine.remote_stream(&channel).await,
        };
        if let Err(r) = app.broker.subscribe(reg.conn, &channel, &name, opts) {
            return error_response(StatusCode::BAD_REQUEST, r.code, &r.message);
        }
    }
    let state = SseState {
        reg,
        cursor: Cursor::new(),
        pending: VecDeque::new(),
        done: false,
        metrics: app.broker.metrics().clone(),
        _guard: guard,
    };
    Sse::new(event_stream(state))
        .keep_alive(
            KeepAlive::new()
                .interval(c.sse_keep_alive)
                .text("heartbeat"),
        )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let mut c = Cursor::new();
        c.insert("room".into(), ("e1".into(), 5));
        c.insert("private:a:b".into(), ("e2".into(), 0));
        let id = encode_cursor(&c);
        assert_eq!(decode_cursor(&id), c);
        assert!(decode_cursor("garbage|a~b").is_empty());
    }
}

//! `GET /ws`: the native protocol over WebSocket.
//!
//! Each connection has two halves: a reader (this connection's requests, answered through the
//! broker so that answers and messages share one ordered, bounded queue) and a writer (drains
//! the queue into the socket). The publish path never awaits a socket: it `try_send`s into the
//! queue, and a full queue kicks the connection, whose writer then sends the close frame.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use relayport_core::message::MAX_EVENT_NAME_LEN;
use relayport_core::{Channel, ChannelKind};
use serde_json::Value;

use super::AppState;
use super::auth::verify_subscription;
use super::broker::{Publication, Refusal, SubscribeOptions, check_payload};
use super::connection::{Encoded, Kick, Outbound};
use super::presence::ConnId;
use super::ratelimit::RateLimiter;
use crate::protocol::{
    ClientFrame, HistoryDirection, MAX_HISTORY_PAGE, PROTOCOL_VERSION, ServerFrame, close, code,
};

/// The normal close code (RFC 6455 1000): the client went away or asked to close.
pub(crate) const NORMAL: u16 = 1000;
/// The socket refused a write (RFC 6455 1011, internal error); recorded as the disconnect
/// reason.
const WRITE_FAILED: u16 = 1011;

const KNOWN_TYPES: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "publish",
    "presence_enter",
    "presence_update",
    "presence_leave",
    "ping",
    "history",
];

/// The `GET /ws` handler: negotiates the version (`v`, default 1) and upgrades.
pub(crate) async fn handler(
    State(app): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let c = &app.config;
    let ws = ws
        .read_buffer_size(c.ws_read_buffer)
        .write_buffer_size(c.ws_write_buffer)
        .max_write_buffer_size(c.ws_max_write_buffer)
        // Frames up to twice our frame limit are read and answered with `frame_too_large`;
        // beyond that tungstenite refuses to read them and the connection closes.
        .max_message_size(c.max_frame_size.saturating_mul(2))
        .max_frame_size(c.max_frame_size.saturating_mul(2));
    let version = params.get("v").cloned();
    // The upgraded socket outlives the HTTP connection (and its permit): it needs its own.
    let Some(permit) = app.limit.try_acquire() else {
        return super::http::error_response(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            "limit max_connections: the server is at its connection cap; retry later",
        );
    };
    let tracker = app.tracker.clone();
    let guard = tracker.enter();
    ws.on_upgrade(move |socket| async move {
        let _guard = guard;
        let _permit = permit;
        {
            match version.as_deref() {
                None => run(socket, app).await,
                Some(v) if v.trim().parse::<u32>().ok() == Some(PROTOCOL_VERSION) => {
                    run(socket, app).await
                }
                Some(v) => refuse_version(socket, v).await,
            }
        }
    })
}

async fn refuse_version(mut socket: WebSocket, v: &str) {
    let frame = Encoded::new(ServerFrame::Error {
        reference: None,
        code: code::UNSUPPORTED_VERSION.into(),
        message: format!(
            "protocol version {v:?} is not supported; this server speaks v={PROTOCOL_VERSION}"
        ),
        channel: None,
    });
    let _ = socket.send(Message::Text(frame.text.clone())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close::UNSUPPORTED_VERSION,
            reason: Utf8Bytes::from_static("unsupported protocol version"),
        })))
        .await;
}

fn close_reason(code: u16) -> &'static str {
    match code {
        close::SERVICE_RESTART => "server restarting: reconnect",
        close::SLOW_CONSUMER => "slow consumer: send queue full; reconnect and recover",
        close::IDLE_TIMEOUT => "idle timeout",
        close::MESSAGE_TOO_BIG => "frame too large",
        _ => "closing",
    }
}

/// The most frames fed into the socket before one flush.
const WRITE_BATCH: usize = 64;

async fn writer(
    sink: futures_util::stream::SplitSink<WebSocket, Message>,
    rx: tokio::sync::mpsc::Receiver<Outbound>,
    kick: Arc<Kick>,
    close_timeout: std::time::Duration,
) {
    write_frames(
        sink,
        rx,
        kick,
        close_timeout,
        |f| std::iter::once(f.text.clone()),
        |code| {
            vec![Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(close_reason(code)),
            }))]
        },
    )
    .await
}

/// The one writer of a server WebSocket (native and Pusher protocol): frames as `texts_of`
/// renders them, every frame already queued (up to [`WRITE_BATCH`]) fed into the socket before
/// a single flush, until the connection is kicked or its queue closes; then, for a kick with a
/// code, the `goodbye` frames and the close, each bounded by `close_timeout`.
pub(crate) async fn write_frames<T, I, G>(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: tokio::sync::mpsc::Receiver<Outbound>,
    kick: Arc<Kick>,
    close_timeout: std::time::Duration,
    texts_of: T,
    goodbye: G,
) where
    T: Fn(&Outbound) -> I,
    I: IntoIterator<Item = Utf8Bytes>,
    G: FnOnce(u16) -> Vec<Message>,
{
    // One kick future for the connection's life, and every frame already queued (up to
    // WRITE_BATCH) fed into the socket before a single flush: one syscall for a burst instead
    // of one per frame (measured: +19% fan-out throughput at 100 subscribers, BENCHMARKS.md).
    let kicked = kick.kicked();
    tokio::pin!(kicked);
    loop {
        let first = tokio::select! {
            biased;
            _ = &mut kicked => break,
            item = rx.recv() => match item {
                Some(f) => f,
                None => break,
            },
        };
        let sent = tokio::select! {
            biased;
            _ = &mut kicked => break,
            r = async {
                // The batch stays charged to the connection's byte budget until it is
                // flushed: bytes sitting in the socket's write buffer count too.
                let mut batch = Vec::with_capacity(WRITE_BATCH);
                for t in texts_of(&first) {
                    sink.feed(Message::Text(t)).await?;
                }
                batch.push(first);
                while batch.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(f) => {
                            for t in texts_of(&f) {
                                sink.feed(Message::Text(t)).await?;
                            }
                            batch.push(f);
                        }
                        Err(_) => break,
                    }
                }
                let flushed = sink.flush().await;
                drop(batch);
                flushed
            } => r,
        };
        if let Err(e) = sent {
            tracing::debug!("websocket write failed: {e}");
            kick.kick(WRITE_FAILED);
            return;
        }
    }
    // Kicked: whatever is still queued is dropped (the client recovers it from history),
    // which frees the queue at once; then the goodbye and the close frame, bounded in time.
    rx.close();
    while rx.try_recv().is_ok() {}
    let code = kick.code().unwrap_or(NORMAL);
    if code != NORMAL {
        let frames = goodbye(code);
        let send_all = async {
            for frame in frames {
                sink.send(frame).await?;
            }
            Ok::<(), axum::Error>(())
        };
        let _ = tokio::time::timeout(close_timeout, send_all).await;
    }
    let _ = tokio::time::timeout(close_timeout, sink.close()).await;
}

async fn run(socket: WebSocket, app: Arc<AppState>) {
    let reg = app.broker.register();
    let conn = reg.conn;
    let kick = reg.kick.clone();
    let socket_id = reg.socket_id.clone();
    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(writer(sink, reg.rx, kick.clone(), app.config.close_timeout));
    if app.shutdown.is_cancelled() {
        kick.kick(close::SERVICE_RESTART);
    }
    let c = &app.config;
    app.broker.send(
        conn,
        ServerFrame::Connected {
            socket_id: socket_id.clone(),
            protocol: PROTOCOL_VERSION,
            heartbeat_ms: u64::try_from(c.heartbeat.as_millis()).unwrap_or(u64::MAX),
            limits: c.limits,
        },
    );
    let limiter = |per: u32| RateLimiter::new(per, c.rate_window, c.clock.clone());
    let mut session = Session {
        app: app.clone(),
        conn,
        socket_id,
        limiter: limiter(c.limits.publishes_per_minute),
        subscribes: limiter(c.subscribes_per_minute),
        presence_updates: limiter(c.presence_updates_per_minute),
    };
    loop {
        tokio::select! {
            biased;
            _ = kick.kicked() => break,
            next = tokio::time::timeout(app.config.idle_timeout, stream.next()) => match next {
                Err(_) => {
                    kick.kick(close::IDLE_TIMEOUT);
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    if is_too_big(&e) {
                        kick.kick(close::MESSAGE_TOO_BIG);
                    }
                    break;
                }
                Ok(Some(Ok(msg))) => match msg {
                    Message::Text(text) => session.handle_text(text.as_str()).await,
                    Message::Binary(_) => session.error(
                        None,
                        code::MALFORMED,
                        "binary frames are not supported: send JSON text frames",
                        None,
                    ),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => {}
                },
            }
        }
    }
    app.broker.unregister(conn);
    match kick.code() {
        Some(code) => app.broker.metrics().disconnect(code),
        None => kick.kick(NORMAL),
    }
    let _ = writer.await;
}

/// Whether a read failed because the frame was larger than the socket reads at all
/// (tungstenite's capacity error: "Space limit exceeded: Message too long…").
fn is_too_big(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("Message too long")
}

struct Session {
    app: Arc<AppState>,
    conn: ConnId,
    socket_id: String,
    /// Client publishes.
    limiter: RateLimiter,
    /// Subscribe requests (re-subscribes and replays included).
    subscribes: RateLimiter,
    /// Presence enter/update requests.
    presence_updates: RateLimiter,
}

fn string_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Session {
    fn error(&self, reference: Option<String>, code: &str, message: &str, channel: Option<&str>) {
        self.app.broker.send(
            self.conn,
            ServerFrame::Error {
                reference,
                code: code.to_owned(),
                message: message.to_owned(),
                channel: channel.map(str::to_owned),
            },
        );
    }

    fn refuse(&self, reference: Option<String>, refusal: Refusal, channel: &str) {
        self.error(reference, refusal.code, &refusal.message, Some(channel));
    }

    fn ack(&self, reference: Option<String>) {
        self.app
            .broker
            .send(self.conn, ServerFrame::Ack { reference });
    }

    async fn handle_text(&mut self, text: &str) {
        let max = self.app.config.max_frame_size;
        if text.len() > max {
            self.error(
                None,
                code::FRAME_TOO_LARGE,
                &format!(
                    "limit max_frame_size: frames are at most {max} bytes (got {})",
                    text.len()
                ),
                None,
            );
            return;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.error(None, code::MALFORMED, &format!("not JSON: {e}"), None);
                return;
            }
        };
        let reference = string_field(&value, "ref");
        let Some(kind) = string_field(&value, "type") else {
            self.error(
                reference,
                code::MALFORMED,
                "a frame needs a string \"type\"",
                None,
            );
            return;
        };
        if !KNOWN_TYPES.contains(&kind.as_str()) {
            let msg = format!("unknown frame type {kind:?}");
            self.error(reference, code::UNKNOWN_TYPE, &msg, None);
            return;
        }
        let frame: ClientFrame = match serde_json::from_value(value) {
            Ok(f) => f,
            Err(e) => {
                self.error(
                    reference,
                    code::MALFORMED,
                    &format!("bad {kind} frame: {e}"),
                    None,
                );
                return;
            }
        };
        self.handle(frame).await;
    }

    fn parse_channel(&self, reference: &Option<String>, name: &str) -> Option<Channel> {
        match Channel::parse(name) {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(
                    reference.clone(),
                    code::INVALID_CHANNEL,
                    &e.to_string(),
                    Some(name),
                );
                None
            }
        }
    }

    async fn handle(&mut self, frame: ClientFrame) {
        match frame {
            ClientFrame::Ping { reference } => {
                self.app
                    .broker
                    .send(self.conn, ServerFrame::Pong { reference });
            }
            ClientFrame::Subscribe {
                reference,
                channel: name,
                auth,
                channel_data,
                since,
            } => {
                let Some(channel) = self.parse_channel(&reference, &name) else {
                    return;
                };
                if !self.subscribes.try_acquire() {
                    let per = self.app.config.subscribes_per_minute;
                    let msg = format!(
                        "limit subscribes_per_minute: at most {per} subscribe requests per minute"
                    );
                    return self.error(reference, code::RATE_LIMITED, &msg, Some(&name));
                }
                let user = match verify_subscription(
                    &self.app.config.secret,
                    &self.socket_id,
                    &channel,
                    auth.as_deref(),
                    channel_data.as_deref(),
                ) {
                    Ok(u) => u,
                    Err(r) => return self.refuse(reference, r, &name),
                };
                let opts = SubscribeOptions {
                    reference: reference.clone(),
                    user,
                    since,
                    remote: self.app.engine.remote_stream(&channel).await,
                };
                if let Err(r) = self.app.broker.subscribe(self.conn, &channel, &name, opts) {
                    self.refuse(reference, r, &name);
                }
            }
            ClientFrame::History {
                reference,
                channel: name,
                limit,
                direction,
                since,
                start,
                end,
                cursor,
            } => {
                let Some(channel) = self.parse_channel(&reference, &name) else {
                    return;
                };
                if channel.is_wildcard() {
                    let msg = "history is read from one channel, not a pattern";
                    return self.error(reference, code::INVALID_CHANNEL, msg, Some(&name));
                }
                // Reads cost like subscribes (a replay of up to a page): one budget for both.
                if !self.subscribes.try_acquire() {
                    let per = self.app.config.subscribes_per_minute;
                    let msg = format!(
                        "limit subscribes_per_minute: at most {per} subscribe and history \
                         requests per minute"
                    );
                    return self.error(reference, code::RATE_LIMITED, &msg, Some(&name));
                }
                if channel.kind() != ChannelKind::Public
                    && !self.app.broker.is_subscribed(self.conn, &channel)
                {
                    let msg = "the history of a private or presence channel is read by \
                               connections subscribed to it";
                    return self.error(reference, code::NOT_SUBSCRIBED, msg, Some(&name));
                }
                let mut query = relayport_core::HistoryQuery::new();
                query.limit = limit;
                if direction == Some(HistoryDirection::Forwards) {
                    query = query.forwards();
                }
                query.since = since;
                query.start = start;
                query.end = end;
                query.cursor = cursor;
                match self
                    .app
                    .broker
                    .history_page(&channel, &query, MAX_HISTORY_PAGE)
                {
                    Ok((messages, next)) => {
                        self.app.broker.send(
                            self.conn,
                            ServerFrame::History {
                                reference,
                                channel: name,
                                messages,
                                cursor: next.and_then(|q| q.cursor),
                            },
                        );
                    }
                    Err(e) => self.error(reference, code::MALFORMED, &e.to_string(), Some(&name)),
                }
            }
            ClientFrame::Unsubscribe {
                reference,
                channel: name,
            } => {
                let Some(channel) = self.parse_channel(&reference, &name) else {
                    return;
                };
                if let Err(r) =
                    self.app
                        .broker
                        .unsubscribe(self.conn, &channel, &name, reference.clone())
                {
                    self.refuse(reference, r, &name);
                }
            }
            ClientFrame::Publish {
                reference,
                channel: name,
                event,
                data,
                encoding,
            } => self.publish(reference, name, event, data, encoding).await,
            ClientFrame::PresenceEnter {
                reference,
                channel: name,
                data,
            } => {
                let Some(channel) = self.parse_channel(&reference, &name) else {
                    return;
                };
                if let Err((code, msg)) = self.presence_guard(&data) {
                    return self.error(reference, code, &msg, Some(&name));
                }
                match self.app.broker.presence_enter(self.conn, &channel, data) {
                    Ok(()) => self.ack(reference),
                    Err(r) => self.refuse(reference, r, &name),
                }
            }
            ClientFrame::PresenceUpdate {
                reference,
                channel: name,
                data,
            } => {
                let Some(channel) = self.parse_channel(&reference, &name) else {
                    return;
                };
                if let Err((code, msg)) = self.presence_guard(&data) {
                    return self.error(reference, code, &msg, Some(&name));
                }
                match self.app.broker.presence_update(self.conn, &channel, data) {
                    Ok(()) => self.ack(reference),
                    Err(r) => self.refuse(reference, r, &name),
                }
            }
            ClientFrame::PresenceLeave {
                reference,
                channel: name,
            } => {
                let Some(channel) = self.parse_channel(&reference, &name) else {
                    return;
                };
                match self.app.broker.presence_leave(self.conn, &channel) {
                    Ok(()) => self.ack(reference),
                    Err(r) => self.refuse(reference, r, &name),
                }
            }
        }
    }

    /// Presence enter/update: member data within `max_payload`, and within the rate limit.
    fn presence_guard(&mut self, data: &Value) -> Result<(), (&'static str, String)> {
        let size = serde_json::to_vec(data).map_or(usize::MAX, |v| v.len());
        let max = self.app.config.limits.max_payload;
        if size > max {
            return Err((
                code::PAYLOAD_TOO_LARGE,
                format!("limit max_payload: member data is at most {max} bytes (got {size})"),
            ));
        }
        if !self.presence_updates.try_acquire() {
            let per = self.app.config.presence_updates_per_minute;
            return Err((
                code::RATE_LIMITED,
                format!(
                    "limit presence_updates_per_minute: at most {per} presence enters and \
                     updates per minute"
                ),
            ));
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        reference: Option<String>,
        name: String,
        event: String,
        data: Value,
        encoding: Option<String>,
    ) {
        let Some(channel) = self.parse_channel(&reference, &name) else {
            return;
        };
        if channel.is_wildcard() {
            return self.error(
                reference,
                code::INVALID_CHANNEL,
                "cannot publish to a wildcard pattern",
                Some(&name),
            );
        }
        if channel.kind() == ChannelKind::Public {
            if !self.app.config.allow_public_publish {
                return self.error(
                    reference,
                    code::FORBIDDEN,
                    "client publishes are allowed on private and presence channels only",
                    Some(&name),
                );
            }
        } else if !self.app.broker.is_subscribed(self.conn, &channel) {
            return self.error(
                reference,
                code::NOT_SUBSCRIBED,
                "subscribe (with a valid signature) before publishing",
                Some(&name),
            );
        }
        if event.is_empty() || event.len() > MAX_EVENT_NAME_LEN {
            let msg = format!("event names are 1 to {MAX_EVENT_NAME_LEN} bytes long");
            return self.error(reference, code::MALFORMED, &msg, Some(&name));
        }
        let max = self.app.config.limits.max_payload;
        if let Err((code, msg)) = check_payload(&data, encoding.as_deref(), max) {
            return self.error(reference, code, &msg, Some(&name));
        }
        if !self.limiter.try_acquire() {
            let per = self.app.config.limits.publishes_per_minute;
            let msg = format!("limit publishes_per_minute: at most {per} publishes per minute");
            return self.error(reference, code::RATE_LIMITED, &msg, Some(&name));
        }
        let p = Publication {
            channel,
            event,
            data,
            encoding,
            sender: Some(self.socket_id.clone()),
            exclude: None,
            retain: false,
        };
        match self.app.engine.publish(&self.app.broker, p).await {
            Ok(_) => self.ack(reference),
            Err(e) => self.error(reference, code::UNAVAILABLE, &e, Some(&name)),
        }
    }
}

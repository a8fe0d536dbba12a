//! `GET /app/{key}?protocol=7`: the Pusher WebSocket protocol.
//!
//! The connection is registered with the app's broker like a native one, so messages,
//! presence changes and answers share one ordered, bounded queue; the writer translates native
//! frames into Pusher frames (once per frame, shared by every Pusher recipient). Refusals close
//! with Pusher's codes: 4001 unknown app key, 4003 app disabled, 4004 over the app's connection
//! quota, 4007 unsupported protocol, 4008 no protocol, 4009 terminated by the app, 4100 slow
//! consumer (over capacity: reconnect after a backoff), 4200 server restarting (reconnect now),
//! 4201 no activity (pong not received), 1009 frame too large.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::StreamExt;
use relayport_core::{Channel, ChannelKind};
use serde_json::{Value, json};

use super::super::AppState;
use super::super::auth::parse_channel_data;
use super::super::broker::{Publication, SubscribeOptions};
use super::super::connection::{Encoded, Kick, Outbound};
use super::super::presence::ConnId;
use super::super::ratelimit::RateLimiter;
use super::super::ws::{NORMAL, write_frames};
use super::AppRuntime;
use super::frames;
use super::names::{self, SERVER_TO_USER_PREFIX};
use super::signing::{signin_string, subscription_string, verify_token};
use crate::protocol::{close, code};

/// The protocol version spoken.
pub const PROTOCOL: &str = "7";

/// Pusher close codes.
pub mod close_code {
    /// The app key is unknown.
    pub const APP_NOT_FOUND: u16 = 4001;
    /// The app is disabled.
    pub const APP_DISABLED: u16 = 4003;
    /// The app is over its connection quota.
    pub const OVER_QUOTA: u16 = 4004;
    /// The protocol version is not supported.
    pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
    /// No protocol version was given.
    pub const NO_PROTOCOL: u16 = 4008;
    /// Unauthorized: the app terminated the user's connections.
    pub const UNAUTHORIZED: u16 = 4009;
    /// Over capacity (the client reads too slowly): reconnect after a backoff.
    pub const OVER_CAPACITY: u16 = 4100;
    /// Generic reconnect-now (the server restarts).
    pub const RECONNECT: u16 = 4200;
    /// No activity (pong not received) within the timeout.
    pub const PONG_NOT_RECEIVED: u16 = 4201;
    /// Client event refused (`pusher:error` code, not a close code here).
    pub const CLIENT_EVENT_REJECTED: u16 = 4301;
    /// Watchlist over its limit (`pusher:error` code; the first entries are kept).
    pub const WATCHLIST_LIMIT: u16 = 4302;
}

/// The most users a watchlist holds (Pusher: 100).
pub const MAX_WATCHLIST: usize = 100;

/// The kick code the HTTP API uses to terminate a user's connections (the native idle code
/// is 4009 too, so terminate has its own internal code, closed as 4009).
pub(crate) const TERMINATED: u16 = 4909;

/// The Pusher close code and message for a kick code.
fn pusher_close(kick: u16) -> (u16, &'static str) {
    match kick {
        close::SLOW_CONSUMER => (
            close_code::OVER_CAPACITY,
            "Over capacity: the client does not read fast enough",
        ),
        close::SERVICE_RESTART => (close_code::RECONNECT, "Server restarting: reconnect"),
        close::IDLE_TIMEOUT => (
            close_code::PONG_NOT_RECEIVED,
            "Pong reply not received: no activity within the timeout",
        ),
        close::MESSAGE_TOO_BIG => (close::MESSAGE_TOO_BIG, "Frame too large"),
        TERMINATED => (close_code::UNAUTHORIZED, "You got disconnected by the app."),
        other => (other, "closing"),
    }
}

/// The `GET /app/{key}` handler.
pub(crate) async fn handler(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let c = &state.config;
    let ws = ws
        .read_buffer_size(c.ws_read_buffer)
        .write_buffer_size(c.ws_write_buffer)
        .max_write_buffer_size(c.ws_max_write_buffer)
        .max_message_size(c.max_frame_size.saturating_mul(2))
        .max_frame_size(c.max_frame_size.saturating_mul(2));
    let Some(permit) = state.limit.try_acquire() else {
        return super::super::http::error_response(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            "limit max_connections: the server is at its connection cap; retry later",
        );
    };
    let guard = state.tracker.enter();
    let protocol = params.get("protocol").cloned();
    ws.on_upgrade(move |socket| async move {
        let _guard = guard;
        let _permit = permit;
        let Some(app) = state.pusher.by_key(&key) else {
            // Close reasons hold at most 123 bytes: show a short, plain part of the key.
            let shown: String = key
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .take(40)
                .collect();
            let msg = format!("App key {shown} does not exist.");
            return refuse(socket, close_code::APP_NOT_FOUND, &msg).await;
        };
        if !app.app.enabled {
            return refuse(socket, close_code::APP_DISABLED, "The app is disabled.").await;
        }
        match protocol.as_deref() {
            None => {
                return refuse(
                    socket,
                    close_code::NO_PROTOCOL,
                    "No protocol version supplied.",
                )
                .await;
            }
            Some(p) if p.trim() != PROTOCOL => {
                return refuse(
                    socket,
                    close_code::UNSUPPORTED_PROTOCOL,
                    "Unsupported protocol version: this server speaks protocol 7.",
                )
                .await;
            }
            Some(_) => {}
        }
        if !app.try_connect() {
            return refuse(
                socket,
                close_code::OVER_QUOTA,
                "The app is over its connection quota.",
            )
            .await;
        }
        run(socket, state, app.clone()).await;
        app.disconnect();
    })
}

async fn refuse(mut socket: WebSocket, code: u16, message: &str) {
    let _ = socket
        .send(Message::Text(Utf8Bytes::from(frames::error(
            Some(code),
            message,
        ))))
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(message.to_owned()),
        })))
        .await;
}

async fn writer(
    sink: futures_util::stream::SplitSink<WebSocket, Message>,
    rx: tokio::sync::mpsc::Receiver<Outbound>,
    kick: Arc<Kick>,
    app: Arc<AppRuntime>,
    close_timeout: std::time::Duration,
) {
    let texts_of = |item: &Outbound| -> Vec<Utf8Bytes> {
        if item.is_raw() {
            return vec![item.text.clone()];
        }
        item.pusher_texts(|e| {
            let Some(frame) = e.decode() else {
                return Vec::new();
            };
            frames::translate(&frame, |socket, key| {
                app.users
                    .presence_user(socket, key)
                    .or_else(|| app.broker.presence_user_of_socket(key, socket))
            })
        })
        .to_vec()
    };
    // Pusher clients read the reason from a `pusher:error` before the close frame.
    let goodbye = |code: u16| {
        let (code, reason) = pusher_close(code);
        let mut frames = Vec::with_capacity(2);
        if (4000..5000).contains(&code) {
            let err = frames::error(Some(code), reason);
            frames.push(Message::Text(Utf8Bytes::from(err)));
        }
        frames.push(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })));
        frames
    };
    write_frames(sink, rx, kick, close_timeout, texts_of, goodbye).await
}

/// Registers under a Pusher-style socket id (`digits.digits`, as the server SDKs require).
fn register(app: &AppRuntime) -> Option<super::super::broker::Registration> {
    (0..16).find_map(|_| {
        let id = format!("{}.{}", fastrand::u32(1..), fastrand::u32(1..));
        app.broker.register_as(&id).ok()
    })
}

async fn run(socket: WebSocket, state: Arc<AppState>, app: Arc<AppRuntime>) {
    let Some(reg) = register(&app) else {
        return refuse(socket, close_code::OVER_CAPACITY, "No socket id available.").await;
    };
    let conn = reg.conn;
    let kick = reg.kick.clone();
    let socket_id = reg.socket_id.clone();
    let (sink, mut stream) = socket.split();
    let writer = tokio::spawn(writer(
        sink,
        reg.rx,
        kick.clone(),
        app.clone(),
        state.config.close_timeout,
    ));
    if state.shutdown.is_cancelled() {
        kick.kick(close::SERVICE_RESTART);
    }
    let c = &state.config;
    let activity = c.heartbeat.as_secs().max(1);
    app.broker.send_encoded(
        conn,
        &Encoded::raw(frames::connection_established(&socket_id, activity)),
    );
    let mut session = Session {
        client_events: RateLimiter::new(
            app.app.client_events_per_second,
            std::time::Duration::from_secs(1),
            c.clock.clone(),
        ),
        subscribes: RateLimiter::new(c.subscribes_per_minute, c.rate_window, c.clock.clone()),
        state: state.clone(),
        app: app.clone(),
        conn,
        kick: kick.clone(),
        socket_id,
        subs: HashMap::new(),
        user: None,
        watchlist: Vec::new(),
    };
    loop {
        tokio::select! {
            biased;
            _ = kick.kicked() => break,
            next = tokio::time::timeout(state.config.idle_timeout, stream.next()) => match next {
                Err(_) => {
                    kick.kick(close::IDLE_TIMEOUT);
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    let text = e.to_string();
                    if text.contains("Space limit exceeded") || text.contains("Message too long") {
                        kick.kick(close::MESSAGE_TOO_BIG);
                    }
                    break;
                }
                Ok(Some(Ok(msg))) => match msg {
                    Message::Text(text) => session.handle_text(text.as_str()).await,
                    Message::Binary(_) => session.error(None, "Invalid message format: binary frames are not supported"),
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => {}
                },
            }
        }
    }
    session.closed();
    match kick.code() {
        Some(code) => app.broker.metrics().disconnect(code),
        None => kick.kick(NORMAL),
    }
    let _ = writer.await;
}

/// A subscription of this connection: the native channel and, on presence channels, the user.
struct Sub {
    native: Channel,
    user: Option<String>,
}

struct Session {
    state: Arc<AppState>,
    app: Arc<AppRuntime>,
    conn: ConnId,
    kick: Arc<Kick>,
    socket_id: String,
    client_events: RateLimiter,
    subscribes: RateLimiter,
    /// By Pusher name.
    subs: HashMap<String, Sub>,
    /// The signed-in user: id and `user_info`.
    user: Option<(String, Value)>,
    /// The users the signed-in user watches.
    watchlist: Vec<String>,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

impl Session {
    fn send(&self, text: String) {
        self.app.broker.send_encoded(self.conn, &Encoded::raw(text));
    }

    fn error(&self, code: Option<u16>, message: &str) {
        self.app.broker.metrics().error_sent();
        self.send(frames::error(code, message));
    }

    fn sub_error(&self, channel: &str, kind: &str, message: &str, status: u16) {
        self.app.broker.metrics().error_sent();
        self.send(frames::subscription_error(channel, kind, message, status));
    }

    async fn handle_text(&mut self, text: &str) {
        let max = self.state.config.max_frame_size;
        if text.len() > max {
            let msg = format!(
                "Frame too large: frames are at most {max} bytes (got {})",
                text.len()
            );
            return self.error(None, &msg);
        }
        let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(text) else {
            return self.error(None, "Invalid message format: expected a JSON object");
        };
        let Some(Value::String(event)) = frame.remove("event") else {
            return self.error(
                None,
                "Invalid message format: a frame needs a string \"event\"",
            );
        };
        let data = frames::payload_from_wire(frame.remove("data").unwrap_or(Value::Null));
        match event.as_str() {
            "pusher:ping" => self.send(frames::pong()),
            "pusher:pong" => {}
            "pusher:subscribe" => self.subscribe(&data).await,
            "pusher:unsubscribe" => self.unsubscribe(&data),
            "pusher:signin" => self.signin(&data),
            e if e.starts_with("client-") => {
                let channel = frame
                    .get("channel")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.client_event(event.clone(), channel, data).await;
            }
            other => {
                let shown: String = other.chars().take(64).collect();
                self.error(None, &format!("Unsupported event {shown:?}"));
            }
        }
    }

    async fn subscribe(&mut self, data: &Value) {
        let Some(wire) = str_field(data, "channel").map(str::to_owned) else {
            return self.error(None, "pusher:subscribe needs data.channel");
        };
        if !self.subscribes.try_acquire() {
            let per = self.state.config.subscribes_per_minute;
            let msg = format!("Subscription rate limit reached: at most {per} per minute");
            return self.sub_error(&wire, "LimitReached", &msg, 429);
        }
        if let Some(user) = wire.strip_prefix(SERVER_TO_USER_PREFIX) {
            return if self.user.as_ref().is_some_and(|(id, _)| id == user) {
                self.send(frames::subscription_succeeded(&wire, None));
            } else {
                self.sub_error(&wire, "AuthError", "Sign in as this user first", 403);
            };
        }
        let native = match names::to_native(&wire) {
            Ok(c) => c,
            Err(e) => return self.sub_error(&wire, "InvalidChannel", &e, 400),
        };
        let user = match self.authorize(&wire, &native, data) {
            Ok(u) => u,
            Err((status, msg)) => return self.sub_error(&wire, "AuthError", &msg, status),
        };
        let broker = &self.app.broker;
        let webhooks = self.app.webhooks.enabled();
        let before = webhooks.then(|| broker.channel_info(&native));
        let mut was_member = false;
        if let Some((id, _)) = &user {
            let members = broker.members(&native);
            was_member = members.iter().any(|m| &m.id == id);
            if !was_member && members.len() >= self.app.app.max_presence_members {
                let max = self.app.app.max_presence_members;
                let msg = format!("Presence channel is full: at most {max} members");
                return self.sub_error(&wire, "LimitReached", &msg, 403);
            }
        }
        let remote = if self.app.native {
            self.state.engine.remote_stream(&native).await
        } else {
            None
        };
        let user_id = user.as_ref().map(|(id, _)| id.clone());
        let opts = SubscribeOptions {
            reference: None,
            user,
            since: None,
            remote,
        };
        if let Err(r) = broker.subscribe(self.conn, &native, &wire, opts) {
            return self.sub_error(&wire, "SubscriptionError", &r.message, 400);
        }
        if let Some(id) = &user_id {
            self.app
                .users
                .set_presence(&self.socket_id, &native.to_string(), id);
        }
        if let Some(before) = before {
            if before.occupancy == 0 {
                self.app
                    .webhooks
                    .send(json!({"name": "channel_occupied", "channel": wire}));
            }
            if let Some(id) = &user_id
                && !was_member
            {
                self.app
                    .webhooks
                    .send(json!({"name": "member_added", "channel": wire, "user_id": id}));
            }
        }
        self.subs.insert(
            wire,
            Sub {
                native,
                user: user_id,
            },
        );
    }

    /// Checks a subscription's signature; returns the presence user.
    #[allow(clippy::type_complexity)]
    fn authorize(
        &self,
        wire: &str,
        native: &Channel,
        data: &Value,
    ) -> Result<Option<(String, Value)>, (u16, String)> {
        if !names::requires_auth(wire) {
            return Ok(None);
        }
        let auth = str_field(data, "auth").unwrap_or("");
        let invalid = || {
            (
                401,
                format!(
                    "Invalid signature: expected HMAC SHA256 hex digest of {}:{wire}[:channel_data], keyed with the app secret",
                    self.socket_id
                ),
            )
        };
        if native.kind() != ChannelKind::Presence {
            let msg = subscription_string(&self.socket_id, wire, None);
            return if verify_token(&self.app.app, &msg, auth) {
                Ok(None)
            } else {
                Err(invalid())
            };
        }
        match str_field(data, "channel_data") {
            Some(cd) => {
                let msg = subscription_string(&self.socket_id, wire, Some(cd));
                if !verify_token(&self.app.app, &msg, auth) {
                    return Err(invalid());
                }
                let (id, info) = parse_channel_data(cd).map_err(|r| (400, r.message))?;
                if id.len() > 128 {
                    return Err((400, "user_id is at most 128 characters".into()));
                }
                let size = info.to_string().len();
                let max = self.app.app.max_user_info;
                if size > max {
                    return Err((
                        400,
                        format!("user_info is at most {max} bytes (got {size})"),
                    ));
                }
                Ok(Some((id, info)))
            }
            // Signed in: the member is the signed-in user (pusher-js ≥ 7.4).
            None => match &self.user {
                Some((id, info)) => {
                    let msg = subscription_string(&self.socket_id, wire, None);
                    if verify_token(&self.app.app, &msg, auth) {
                        Ok(Some((id.clone(), info.clone())))
                    } else {
                        Err(invalid())
                    }
                }
                None => Err((
                    401,
                    "presence channels need channel_data (or a sign-in)".into(),
                )),
            },
        }
    }

    fn unsubscribe(&mut self, data: &Value) {
        let Some(wire) = str_field(data, "channel") else {
            return self.error(None, "pusher:unsubscribe needs data.channel");
        };
        // Unsubscribing from a channel one is not subscribed to is a no-op, as on Pusher.
        if let Some(sub) = self.subs.remove(wire) {
            let _ = self
                .app
                .broker
                .unsubscribe(self.conn, &sub.native, wire, None);
            self.left(wire, &sub);
        }
    }

    /// After a subscription ended: forget its presence user and tell the webhooks.
    fn left(&self, wire: &str, sub: &Sub) {
        let key = sub.native.to_string();
        if sub.user.is_some() {
            self.app.users.clear_presence(&self.socket_id, &key);
        }
        if !self.app.webhooks.enabled() {
            return;
        }
        if let Some(id) = &sub.user
            && !self
                .app
                .broker
                .members(&sub.native)
                .iter()
                .any(|m| &m.id == id)
        {
            self.app
                .webhooks
                .send(json!({"name": "member_removed", "channel": wire, "user_id": id}));
        }
        if self.app.broker.channel_info(&sub.native).occupancy == 0 {
            self.app
                .webhooks
                .send(json!({"name": "channel_vacated", "channel": wire}));
        }
    }

    fn signin(&mut self, data: &Value) {
        if !self.app.app.user_authentication {
            return self.error(None, "User authentication is not enabled for this app");
        }
        let (Some(auth), Some(user_data)) = (str_field(data, "auth"), str_field(data, "user_data"))
        else {
            return self.error(None, "pusher:signin needs data.auth and data.user_data");
        };
        let msg = signin_string(&self.socket_id, user_data);
        if !verify_token(&self.app.app, &msg, auth) {
            return self.error(
                Some(close_code::UNAUTHORIZED),
                "Invalid signature for pusher:signin",
            );
        }
        let parsed: Value = match serde_json::from_str(user_data) {
            Ok(v) => v,
            Err(_) => return self.error(None, "user_data is not JSON"),
        };
        let Some(id) = str_field(&parsed, "id") else {
            return self.error(None, "user_data needs a non-empty string id");
        };
        if let Err(e) = names::validate_user_id(id) {
            return self.error(None, &e);
        }
        let info = parsed.get("user_info").cloned().unwrap_or(Value::Null);
        let mut watchlist: Vec<String> = match parsed.get("watchlist") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(_) => return self.error(None, "watchlist is an array of user ids"),
        };
        self.sign_out();
        let id = id.to_owned();
        if self.app.users.sign_in(&id, self.conn, self.kick.clone()) {
            self.notify_watchers(&id, "online");
        }
        self.user = Some((id, info));
        self.send(frames::signin_success(user_data));
        if watchlist.len() > MAX_WATCHLIST {
            watchlist.truncate(MAX_WATCHLIST);
            self.error(
                Some(close_code::WATCHLIST_LIMIT),
                &format!("Watchlist limit exceeded: the first {MAX_WATCHLIST} users are watched"),
            );
        }
        if !watchlist.is_empty() {
            self.app.users.watch(self.conn, &watchlist);
            let (online, offline): (Vec<String>, Vec<String>) = watchlist
                .iter()
                .cloned()
                .partition(|u| self.app.users.is_online(u));
            self.send(frames::watchlist_events(&[
                ("online", online),
                ("offline", offline),
            ]));
        }
        self.watchlist = watchlist;
    }

    /// Ends the current sign-in (a new sign-in or the close): its watchlist and, for the
    /// user's last connection, an `offline` event to the user's watchers.
    fn sign_out(&mut self) {
        let watchlist = std::mem::take(&mut self.watchlist);
        self.app.users.unwatch(self.conn, &watchlist);
        if let Some((old, _)) = self.user.take()
            && self.app.users.sign_out(&old, self.conn)
        {
            self.notify_watchers(&old, "offline");
        }
    }

    /// Tells the connections watching `user` that it went `online` or `offline` (watchers on
    /// this node).
    fn notify_watchers(&self, user: &str, status: &str) {
        let watchers = self.app.users.watchers(user);
        if watchers.is_empty() {
            return;
        }
        let frame = Encoded::raw(frames::watchlist_events(&[(status, vec![user.to_owned()])]));
        for conn in watchers {
            self.app.broker.send_encoded(conn, &frame);
        }
    }

    async fn client_event(&mut self, event: String, channel: Option<String>, data: Value) {
        let reject = |s: &Self, msg: &str| s.error(Some(close_code::CLIENT_EVENT_REJECTED), msg);
        if !self.app.app.client_events {
            return reject(self, "Client events are not enabled for this app");
        }
        let Some(wire) = channel else {
            return reject(self, "A client event needs a channel");
        };
        if !names::requires_auth(&wire) || names::is_encrypted(&wire) {
            return reject(
                self,
                "Client events can only be sent to private or presence channels (not encrypted ones)",
            );
        }
        let Some(sub) = self.subs.get(&wire) else {
            return reject(
                self,
                "Subscribe to the channel before sending client events",
            );
        };
        if event.len() > names::MAX_EVENT_LEN {
            return reject(self, "Event names are at most 200 characters");
        }
        let size = data.to_string().len();
        let max = self.app.app.max_payload;
        if size > max {
            return reject(
                self,
                &format!("Client event payload is at most {max} bytes (got {size})"),
            );
        }
        if !self.client_events.try_acquire() {
            let per = self.app.app.client_events_per_second;
            return reject(
                self,
                &format!("Client event rate limit reached: at most {per} per second"),
            );
        }
        let native = sub.native.clone();
        let user = sub.user.clone();
        let p = Publication {
            channel: native,
            event: event.clone(),
            data: data.clone(),
            encoding: None,
            sender: Some(self.socket_id.clone()),
            exclude: Some(self.socket_id.clone()),
            retain: false,
        };
        if let Err(e) = self.app.publish(&self.state.engine, p).await {
            return self.error(None, &format!("Client event not published: {e}"));
        }
        if self.app.webhooks.enabled() {
            let data = match data {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let mut hook = json!({"name": "client_event", "channel": wire, "event": event,
                "data": data, "socket_id": self.socket_id});
            if let Some(u) = user {
                hook["user_id"] = Value::String(u);
            }
            self.app.webhooks.send(hook);
        }
    }

    /// The connection closed: leave everything.
    fn closed(&mut self) {
        self.app.broker.unregister(self.conn);
        self.sign_out();
        self.app.users.forget_socket(&self.socket_id);
        for (wire, sub) in std::mem::take(&mut self.subs) {
            self.left(&wire, &sub);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kicks_close_with_pushers_codes() {
        assert_eq!(
            pusher_close(close::SLOW_CONSUMER).0,
            close_code::OVER_CAPACITY
        );
        assert_eq!(
            pusher_close(close::SERVICE_RESTART).0,
            close_code::RECONNECT
        );
        assert_eq!(
            pusher_close(close::IDLE_TIMEOUT).0,
            close_code::PONG_NOT_RECEIVED
        );
        assert_eq!(pusher_close(close::MESSAGE_TOO_BIG).0, 1009);
        assert_eq!(pusher_close(TERMINATED).0, close_code::UNAUTHORIZED);
        // Every reason fits a close frame (at most 123 bytes).
        for code in [
            close::SLOW_CONSUMER,
            close::SERVICE_RESTART,
            close::IDLE_TIMEOUT,
            TERMINATED,
        ] {
            assert!(pusher_close(code).1.len() <= 123);
        }
    }
}

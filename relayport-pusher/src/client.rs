//! The realtime client: [`PusherProvider`], a [`RealtimeProvider`] speaking protocol 7.
//!
//! One `connect` opens one link on the core's link layer ([`relayport_core::transport`]), waits
//! for `pusher:connection_established` and hands the reader to this module's dispatcher, which
//! answers `pusher:ping`, settles pending subscribes, reports messages, presence changes and
//! errors through the [`EventSink`], and reports why the link closed (by close code, see
//! [`crate::errors`]). `disconnect` says goodbye with a WebSocket close frame. The provider never
//! reconnects by itself, and it leaves timing to the core: the connect, each subscribe and each
//! `pusher:ping` wait as long as the runtime's timeouts let them (only a direct
//! [`PusherProvider::signin`] call has a bound of its own, [`PusherConfig::signin_timeout`]).
//!
//! # Why a link closed
//!
//! A close frame decides (see [`crate::errors::close_reason`]). When the link drops without one
//! (a server that sends `pusher:error` and then closes the TCP connection, or a close frame
//! that was never read), the last connection-level `pusher:error` (code 4000–4299) decides
//! instead, provided no other frame arrived after it: 4000–4099 are fatal, 4100–4199 retry
//! after a backoff, 4200–4299 reconnect at once, and the server's text is the reason the user
//! sees (`pusher error 4009: Connection not authorized within timeout.`).
//!
//! # The signed-in user's events
//!
//! With a [`UserAuthenticator`](crate::UserAuthenticator) configured the connection signs in
//! after every connect. The user's events then arrive on the reserved public channel
//! [`USER_CHANNEL`] (`server-to-user`): subscribe to it like any other channel
//! (`client.subscribe("server-to-user")`). Server-to-user events (`#server-to-user-{id}`)
//! keep their event name; watchlist changes arrive as events `online` and `offline` with data
//! `{"user_ids": [...]}`. [`PusherProvider::user_events`] has the same, plus the sign-in
//! confirmation, for code that holds the provider.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use relayport_core::transport::{
    self, Dispatcher, Flow, Frame as WireFrame, LinkConfig, LinkSender, PeerClose, Received,
};
use relayport_core::{
    Capabilities, Channel, ChannelAuth, ChannelKind, CloseReason, EventSink, Message,
    OutboundMessage, PresenceChange, PresenceMember, RealtimeError, RealtimeProvider, Reconnect,
    Result, Session, SubscribeOptions, Subscribed,
};
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};
use tokio::time::{Instant, timeout};

pub use crate::names::USER_CHANNEL;
use tracing::debug;

use crate::client_events::{ClientEventLimiter, ClientEventNames, check_client_event};
use crate::config::PusherConfig;
use crate::encryption::{KEY_LEN, decrypt, parse_shared_secret};
use crate::errors::{close_reason, error_for_code};
use crate::names::{SERVER_TO_USER_PREFIX, from_wire, is_encrypted, is_presence, to_wire};
use crate::protocol::{self, Frame, parse_frame, user_id_of};

/// Something that arrived for the signed-in user rather than for a channel.
#[derive(Debug, Clone, PartialEq)]
pub enum UserEvent {
    /// `pusher:signin_success`: the connection is signed in as this user.
    SignedIn {
        /// The user's id.
        user_id: String,
        /// The user data the server confirmed.
        user_data: Value,
    },
    /// A server-to-user event (`#server-to-user-{id}`).
    Event {
        /// The event name.
        event: String,
        /// The decoded data.
        data: Value,
    },
    /// A watchlist change (`online` / `offline`).
    Watchlist {
        /// `online` or `offline`.
        name: String,
        /// The users concerned.
        user_ids: Vec<String>,
    },
}

struct Sub {
    /// The neutral channel; `None` for the reserved server-to-user channel.
    channel: Option<Channel>,
    waiter: Option<oneshot::Sender<Result<()>>>,
    active: bool,
    secret: Option<[u8; KEY_LEN]>,
    members: BTreeMap<String, Value>,
}

#[derive(Default)]
struct Shared {
    subs: HashMap<String, Sub>,
    pending: VecDeque<String>,
    pings: VecDeque<oneshot::Sender<()>>,
    signin: Option<oneshot::Sender<Result<String>>>,
    user_id: Option<String>,
    /// The last connection-level `pusher:error` (code 4000–4299) with nothing after it: what
    /// decides the close reason when the link drops without a close frame.
    last_error: Option<(i64, String)>,
    closing: bool,
    closed: bool,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    transport::lock(shared)
}

/// The close code of a goodbye (RFC 6455 normal closure).
const GOODBYE_CODE: u16 = 1000;

struct Conn {
    link: transport::Link,
    shared: Arc<Mutex<Shared>>,
    limiter: ClientEventLimiter,
}

impl Conn {
    fn send(&self, text: String) -> Result<()> {
        self.link.send_text(text)
    }
}

/// The Pusher Channels client.
///
/// ```no_run
/// # async fn demo() -> relayport_core::Result<()> {
/// use std::sync::Arc;
/// use relayport_pusher::{Credentials, PusherAuthorizer, PusherConfig, PusherProvider};
/// use relayport_core::RealtimeClient;
/// let provider = PusherProvider::new(PusherConfig::host("app-key", "127.0.0.1", 6001, false));
/// // On a real client the authorizer calls your backend's auth endpoint instead.
/// let authorizer = PusherAuthorizer::new(Credentials::new("1", "app-key", "secret"));
/// let client = RealtimeClient::builder(provider)
///     .authorizer(Arc::new(authorizer))
///     .client_id("u1")
///     .build();
/// let mut sub = client.subscribe("private:room:1").await?;
/// # Ok(()) }
/// ```
pub struct PusherProvider {
    config: PusherConfig,
    link_config: Option<LinkConfig>,
    /// The current connection. Held across an await only by `connect`, `disconnect` and
    /// `signin`; the other calls release it before waiting for the server.
    conn: tokio::sync::Mutex<Option<Conn>>,
    /// The current socket id, readable without waiting for `conn`.
    socket_id: Mutex<Option<String>>,
    user_events: broadcast::Sender<UserEvent>,
}

impl std::fmt::Debug for PusherProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherProvider")
            .field("config", &self.config)
            .field("socket_id", &self.socket_id())
            .finish_non_exhaustive()
    }
}

impl PusherProvider {
    /// A provider for this configuration (not connected).
    pub fn new(config: PusherConfig) -> Self {
        let (user_events, _) = broadcast::channel(256);
        Self {
            config,
            link_config: None,
            conn: tokio::sync::Mutex::new(None),
            socket_id: Mutex::new(None),
            user_events,
        }
    }

    /// The TLS configuration (and HTTP client) to connect with; default:
    /// [`LinkConfig::shared_default`] (the compiled-in webpki roots). Inject one to trust a
    /// private CA or the system store.
    pub fn with_link_config(mut self, config: LinkConfig) -> Self {
        self.link_config = Some(config);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &PusherConfig {
        &self.config
    }

    /// The current socket id, while connected.
    pub fn socket_id(&self) -> Option<String> {
        transport::lock(&self.socket_id).clone()
    }

    fn set_socket_id(&self, id: Option<String>) {
        *transport::lock(&self.socket_id) = id;
    }

    /// Events for the signed-in user (sign-in confirmations, server-to-user events, watchlist).
    /// Take a receiver before handing the provider to a `RealtimeClient`.
    pub fn user_events(&self) -> broadcast::Receiver<UserEvent> {
        self.user_events.subscribe()
    }

    fn live(conn: &mut Option<Conn>) -> Result<&mut Conn> {
        conn.as_mut()
            .ok_or_else(|| RealtimeError::Connection("not connected".into()))
    }

    /// Signs this connection in (`pusher:signin`) with a body `{"auth":…,"user_data":…}` from a
    /// user authentication endpoint; returns the user id once the server confirmed it. After
    /// the confirmation the client subscribes to the user's server-to-user channel, as
    /// pusher-js does.
    ///
    /// Waits at most [`PusherConfig::signin_timeout`] for the confirmation. (The sign-in a
    /// configured [`UserAuthenticator`](crate::UserAuthenticator) makes while connecting is
    /// bounded by the runtime's connect timeout instead.)
    pub async fn signin(&self, auth: &ChannelAuth) -> Result<String> {
        let mut conn = self.conn.lock().await;
        let limit = self.config.signin_timeout;
        match timeout(limit, self.signin_on(Self::live(&mut conn)?, auth)).await {
            Ok(result) => result,
            Err(_) => Err(RealtimeError::timeout("pusher:signin_success", limit)),
        }
    }

    async fn signin_on(&self, conn: &Conn, auth: &ChannelAuth) -> Result<String> {
        let token = auth
            .str_field("auth")
            .ok_or_else(|| RealtimeError::Protocol("sign-in body without `auth`".into()))?
            .to_owned();
        let user_data = auth
            .str_field("user_data")
            .ok_or_else(|| RealtimeError::Protocol("sign-in body without `user_data`".into()))?
            .to_owned();
        let (tx, rx) = oneshot::channel();
        lock(&conn.shared).signin = Some(tx);
        conn.send(protocol::signin(&token, &user_data))?;
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(RealtimeError::Connection(
                "the connection closed during sign-in".into(),
            )),
        }
    }

    async fn open(&self, slot: &mut Option<Conn>, sink: EventSink) -> Result<Session> {
        let url = self.config.url();
        let link_config = match &self.link_config {
            Some(config) => config.clone(),
            None => LinkConfig::shared_default()?,
        };
        let (handshake, established) = async {
            let mut handshake = transport::open(&url, &link_config).await?;
            loop {
                match handshake.recv().await {
                    Ok(Received::Text(t)) => {
                        let frame = parse_frame(&t)?;
                        match frame.event.as_str() {
                            "pusher:connection_established" => return Ok((handshake, frame.data)),
                            "pusher:error" => {
                                let (code, message) = error_fields(&frame.data);
                                return Err(error_for_code(code, &message));
                            }
                            other => debug!(event = other, "frame before connection_established"),
                        }
                    }
                    Ok(Received::Binary(_)) => {}
                    Err(close) if close.clean => {
                        return Err(
                            match close_reason(close.code_i64(), &close.reason).reconnect {
                                Reconnect::Never(e) => e,
                                _ => RealtimeError::Connection(format!(
                                    "closed before connection_established: {} ({:?})",
                                    close.reason, close.code
                                )),
                            },
                        );
                    }
                    Err(close) => {
                        return Err(RealtimeError::Connection(format!(
                            "before connection_established: {close}"
                        )));
                    }
                }
            }
        }
        .await?;
        let socket_id = match established.get("socket_id") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(RealtimeError::Protocol(format!(
                    "connection_established without socket_id: {established}"
                )));
            }
        };
        let server_timeout = established
            .get("activity_timeout")
            .and_then(Value::as_u64)
            .map(Duration::from_secs);
        let heartbeat = match server_timeout {
            Some(s) if !s.is_zero() => s.min(self.config.activity_timeout),
            _ => self.config.activity_timeout,
        };

        let shared = Arc::new(Mutex::new(Shared::default()));
        let link = handshake.start(Reader {
            shared: shared.clone(),
            sink,
            user_events: self.user_events.clone(),
            names: ClientEventNames::from_flag(self.config.client_event_prefix),
        });
        let conn = slot.insert(Conn {
            link,
            shared,
            limiter: ClientEventLimiter::new(self.config.client_events_per_second),
        });
        self.set_socket_id(Some(socket_id.clone()));
        if let Some(authenticator) = self.config.user_authenticator.clone() {
            let body = authenticator.authenticate(&socket_id).await?;
            self.signin_on(conn, &body).await?;
        }
        Ok(Session::new(socket_id)
            .with_heartbeat_interval(Some(heartbeat))
            .with_max_payload(Some(self.config.max_payload)))
    }

    async fn close_conn(&self, slot: &mut Option<Conn>) {
        self.set_socket_id(None);
        let Some(conn) = slot.take() else {
            return;
        };
        {
            let mut s = lock(&conn.shared);
            s.closing = true;
            s.subs.clear();
            s.pending.clear();
            s.pings.clear();
            s.signin = None;
        }
        // The goodbye: a close frame after everything queued, bounded by the link's grace.
        conn.link
            .close(GOODBYE_CODE, "", transport::DEFAULT_CLOSE_GRACE)
            .await;
    }
}

fn error_fields(data: &Value) -> (Option<i64>, String) {
    let code = data.get("code").and_then(Value::as_i64);
    let message = data
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| data.to_string());
    (code, message)
}

/// Pusher's side of the link's reader: the protocol-7 codec and its bookkeeping.
struct Reader {
    shared: Arc<Mutex<Shared>>,
    sink: EventSink,
    user_events: broadcast::Sender<UserEvent>,
    names: ClientEventNames,
}

impl Dispatcher for Reader {
    fn on_frame(&mut self, frame: WireFrame<'_>, link: &LinkSender) -> Flow {
        match frame {
            WireFrame::Text(t) => self.on_text(t, link),
            WireFrame::Binary(_) => {
                self.sink.error(
                    None,
                    RealtimeError::Protocol("binary frames are not part of the protocol".into()),
                );
            }
        }
        Flow::from(!self.sink.is_closed())
    }

    fn on_close(&mut self, close: PeerClose) {
        let last_error = lock(&self.shared).last_error.take();
        self.closed(reason_for_close(&close, last_error));
    }
}

/// Why the link closed: the close frame's code, or (no close frame, or one without a code)
/// the last connection-level `pusher:error`; the server's text fills an empty close reason.
fn reason_for_close(close: &PeerClose, last_error: Option<(i64, String)>) -> CloseReason {
    match (close.clean, close.code_i64(), last_error) {
        (true, Some(code), last) => {
            let text = match last {
                Some((c, message)) if c == code && close.reason.is_empty() => message,
                _ => close.reason.clone(),
            };
            close_reason(Some(code), &text)
        }
        (_, _, Some((code, message))) => close_reason(Some(code), &message),
        (true, None, None) => close_reason(None, &close.reason),
        (false, _, None) => CloseReason::retry(None, close.to_string()),
    }
}

impl Reader {
    /// The link ended: fails everything still waiting and reports why.
    fn closed(&self, reason: CloseReason) {
        let r = self;
        let mut s = lock(&r.shared);
        if s.closing || s.closed {
            return;
        }
        s.closed = true;
        let error = match &reason.reconnect {
            Reconnect::Never(e) => e.clone(),
            _ => RealtimeError::Connection(reason.message.clone()),
        };
        for (_, sub) in s.subs.drain() {
            if let Some(w) = sub.waiter {
                let _ = w.send(Err(error.clone()));
            }
        }
        s.pending.clear();
        s.pings.clear();
        if let Some(w) = s.signin.take() {
            let _ = w.send(Err(error));
        }
        drop(s);
        r.sink.closed(reason);
    }
}

fn members_of(data: &Value) -> Vec<PresenceMember> {
    let presence = data.get("presence");
    let hash = presence
        .and_then(|p| p.get("hash"))
        .and_then(Value::as_object);
    let ids: Vec<String> = presence
        .and_then(|p| p.get("ids"))
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_else(|| {
            hash.map(|h| h.keys().cloned().collect())
                .unwrap_or_default()
        });
    ids.into_iter()
        .map(|id| {
            let info = hash
                .and_then(|h| h.get(&id))
                .cloned()
                .unwrap_or(Value::Null);
            PresenceMember::new(id, info)
        })
        .collect()
}

impl Reader {
    fn on_text(&self, text: &str, link: &LinkSender) {
        let frame = match parse_frame(text) {
            Ok(f) => f,
            Err(e) => {
                self.sink.error(None, e);
                return;
            }
        };
        if frame.event != "pusher:error" {
            // The server kept talking: an earlier error did not end the connection.
            lock(&self.shared).last_error = None;
        }
        match frame.event.as_str() {
            "pusher:ping" => {
                let _ = link.send_text(protocol::pong());
            }
            "pusher:pong" => {
                let mut s = lock(&self.shared);
                while let Some(w) = s.pings.pop_front() {
                    if w.send(()).is_ok() {
                        break;
                    }
                }
            }
            "pusher_internal:subscription_succeeded" => self.on_succeeded(frame),
            "pusher:subscription_error" => {
                let status = frame.data.get("status").and_then(Value::as_i64);
                let message = frame
                    .data
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| frame.data.to_string());
                let error = match status {
                    Some(401) | Some(403) | None => RealtimeError::Unauthorized(message),
                    Some(code) => error_for_code(Some(code), &message),
                };
                self.fail_subscription(frame.channel.as_deref(), error);
            }
            "pusher:error" => self.on_error(frame),
            "pusher_internal:member_added" => self.on_member(frame, true),
            "pusher_internal:member_removed" => self.on_member(frame, false),
            "pusher:signin_success" => self.on_signin(frame, link),
            "pusher_internal:watchlist_events" => {
                let events = frame
                    .data
                    .get("events")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for e in events {
                    self.watchlist(&e);
                }
            }
            "online" | "offline" if frame.channel.is_none() => {
                let mut data = frame.data.clone();
                if let Value::Object(o) = &mut data {
                    o.insert("name".into(), Value::String(frame.event.clone()));
                }
                self.watchlist(&data);
            }
            "pusher:cache_miss"
            | "pusher_internal:subscription_count"
            | "pusher:connection_established" => {
                debug!(event = %frame.event, "informational frame");
            }
            _ => self.on_event(frame),
        }
    }

    fn watchlist(&self, e: &Value) {
        let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
        let user_ids: Vec<String> = e
            .get("user_ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        self.user_message(name, serde_json::json!({ "user_ids": user_ids.clone() }));
        let _ = self.user_events.send(UserEvent::Watchlist {
            name: name.to_owned(),
            user_ids,
        });
    }

    /// Delivers an event for the signed-in user on [`USER_CHANNEL`].
    fn user_message(&self, event: &str, data: Value) {
        let channel = Channel::public(USER_CHANNEL);
        self.sink.message(Message::new(channel, event, data));
    }

    fn on_succeeded(&self, frame: Frame) {
        let Some(wire) = frame.channel else {
            self.sink.error(
                None,
                RealtimeError::Protocol("subscription_succeeded without a channel".into()),
            );
            return;
        };
        let mut s = lock(&self.shared);
        s.pending.retain(|p| p != &wire);
        let Some(sub) = s.subs.get_mut(&wire) else {
            drop(s);
            debug!(channel = %wire, "subscription_succeeded for a channel not subscribed");
            return;
        };
        sub.active = true;
        let mut snapshot = None;
        if is_presence(&wire) {
            let members = members_of(&frame.data);
            sub.members = members
                .iter()
                .map(|m| (m.id.clone(), m.data.clone()))
                .collect();
            snapshot = sub.channel.clone().map(|c| (c, members));
        }
        let waiter = sub.waiter.take();
        drop(s);
        if let Some((channel, members)) = snapshot {
            self.sink
                .presence(channel, PresenceChange::Snapshot(members));
        }
        if let Some(w) = waiter {
            let _ = w.send(Ok(()));
        }
    }

    /// Fails the pending subscription on `channel`, or (for channel-less errors) the oldest
    /// pending one. Returns whether one was pending.
    fn fail_subscription(&self, channel: Option<&str>, error: RealtimeError) -> bool {
        let mut s = lock(&self.shared);
        let wire = match channel {
            Some(c) => Some(c.to_owned()),
            None => s.pending.front().cloned(),
        };
        let Some(wire) = wire else {
            return false;
        };
        let pending = s.subs.get(&wire).is_some_and(|sub| !sub.active);
        if !pending {
            return false;
        }
        s.pending.retain(|p| p != &wire);
        let sub = s.subs.remove(&wire);
        drop(s);
        if let Some(w) = sub.and_then(|sub| sub.waiter) {
            let _ = w.send(Err(error));
        }
        true
    }

    fn on_error(&self, frame: Frame) {
        let (code, message) = error_fields(&frame.data);
        let error = error_for_code(code, &message);
        self.remember_error(&frame, code, &message);
        // Subscription refusals come without a channel (Pusher: code null; sockudo: 4009).
        let about_auth = matches!(code, None | Some(4009));
        if frame.channel.is_some() || about_auth {
            if self.fail_subscription(frame.channel.as_deref(), error.clone()) {
                return;
            }
            if about_auth {
                let waiter = lock(&self.shared).signin.take();
                if let Some(w) = waiter {
                    let _ = w.send(Err(error));
                    return;
                }
            }
        }
        let channel = frame.channel.as_deref().and_then(|c| from_wire(c).ok());
        self.sink.error(channel, error);
    }

    /// Keeps a connection-level error (4000–4299, no channel, no pending subscription or
    /// sign-in it answers) as the close reason should the link drop without a close frame.
    fn remember_error(&self, frame: &Frame, code: Option<i64>, message: &str) {
        let mut s = lock(&self.shared);
        s.last_error = match code {
            Some(c @ 4000..=4299) if frame.channel.is_none() => {
                let answers_a_request = c == 4009 && (!s.pending.is_empty() || s.signin.is_some());
                (!answers_a_request).then(|| (c, message.to_owned()))
            }
            _ => None,
        };
    }

    fn on_member(&self, frame: Frame, added: bool) {
        let Some(wire) = frame.channel.as_deref() else {
            self.sink.error(
                None,
                RealtimeError::Protocol(format!("{} without a channel", frame.event)),
            );
            return;
        };
        let Some(user_id) = user_id_of(&frame.data) else {
            self.sink.error(
                from_wire(wire).ok(),
                RealtimeError::Protocol(format!("{} without user_id", frame.event)),
            );
            return;
        };
        let mut s = lock(&self.shared);
        let Some(sub) = s.subs.get_mut(wire) else {
            return;
        };
        let Some(channel) = sub.channel.clone() else {
            return;
        };
        let change = if added {
            let info = frame.data.get("user_info").cloned().unwrap_or(Value::Null);
            sub.members.insert(user_id.clone(), info.clone());
            PresenceChange::Joined(PresenceMember::new(user_id, info))
        } else {
            let info = sub.members.remove(&user_id).unwrap_or(Value::Null);
            PresenceChange::Left(PresenceMember::new(user_id, info))
        };
        drop(s);
        self.sink.presence(channel, change);
    }

    fn on_signin(&self, frame: Frame, link: &LinkSender) {
        let user_data = frame
            .data
            .get("user_data")
            .cloned()
            .map(protocol::decode_data)
            .unwrap_or(Value::Null);
        let user_id = match user_data.get("id") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                let error = RealtimeError::Protocol(format!(
                    "signin_success without a user id: {}",
                    frame.data
                ));
                let waiter = lock(&self.shared).signin.take();
                match waiter {
                    Some(w) => {
                        let _ = w.send(Err(error));
                    }
                    None => {
                        self.sink.error(None, error);
                    }
                }
                return;
            }
        };
        let wire = format!("{SERVER_TO_USER_PREFIX}{user_id}");
        let waiter = {
            let mut s = lock(&self.shared);
            s.user_id = Some(user_id.clone());
            s.subs.insert(
                wire.clone(),
                Sub {
                    channel: None,
                    waiter: None,
                    active: false,
                    secret: None,
                    members: BTreeMap::new(),
                },
            );
            s.signin.take()
        };
        let _ = link.send_text(protocol::subscribe(&wire, None, None));
        let _ = self.user_events.send(UserEvent::SignedIn {
            user_id: user_id.clone(),
            user_data,
        });
        if let Some(w) = waiter {
            let _ = w.send(Ok(user_id));
        }
    }

    fn on_event(&self, frame: Frame) {
        let Some(wire) = frame.channel.clone() else {
            if frame.event.starts_with("pusher") {
                debug!(event = %frame.event, "unhandled protocol frame");
            } else {
                self.sink.error(
                    None,
                    RealtimeError::Protocol(format!("event `{}` without a channel", frame.event)),
                );
            }
            return;
        };
        if wire.starts_with(SERVER_TO_USER_PREFIX) {
            if frame.event.starts_with("pusher_internal:") || frame.event.starts_with("pusher:") {
                debug!(event = %frame.event, "protocol event on the user's channel");
                return;
            }
            self.user_message(&frame.event, frame.data.clone());
            let _ = self.user_events.send(UserEvent::Event {
                event: frame.event,
                data: frame.data,
            });
            return;
        }
        if frame.event.starts_with("pusher_internal:") || frame.event.starts_with("pusher:") {
            debug!(event = %frame.event, channel = %wire, "unhandled protocol event");
            return;
        }
        let (channel, secret) = {
            let s = lock(&self.shared);
            match s.subs.get(&wire) {
                Some(sub) => (sub.channel.clone(), sub.secret),
                None => (None, None),
            }
        };
        let Some(channel) = channel else {
            self.sink.error(
                from_wire(&wire).ok(),
                RealtimeError::Protocol(format!(
                    "event `{}` for `{wire}`, which is not subscribed",
                    frame.event
                )),
            );
            return;
        };
        let data = match secret {
            Some(secret) => match decrypt(&frame.data, &secret) {
                Ok(plain) => match String::from_utf8(plain) {
                    Ok(text) => protocol::decode_data(Value::String(text)),
                    Err(_) => {
                        self.sink.error(
                            Some(channel),
                            RealtimeError::Protocol("decrypted payload is not UTF-8".into()),
                        );
                        return;
                    }
                },
                Err(e) => {
                    self.sink.error(Some(channel), e);
                    return;
                }
            },
            None => frame.data,
        };
        let event = self.names.received_name(&frame.event).to_owned();
        let mut message = Message::new(channel, event, data);
        message.sender = frame.user_id;
        self.sink.message(message);
    }
}

#[async_trait]
impl RealtimeProvider for PusherProvider {
    fn name(&self) -> &'static str {
        crate::PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.presence = true;
        caps.presence_update = false;
        caps.history = false;
        caps.client_publish = true;
        // Pusher relays client events on private and presence channels only.
        caps.client_publish_public = false;
        caps.wildcards = false;
        caps.max_payload = self.config.max_payload;
        // Client events are never sent back to the client that triggered them: the runtime
        // delivers its own copy when the application wants echo.
        caps.echo = relayport_core::Echo::ServerSkips;
        caps
    }

    async fn connect(&self, sink: EventSink) -> Result<Session> {
        let mut slot = self.conn.lock().await;
        self.close_conn(&mut slot).await;
        match self.open(&mut slot, sink).await {
            Ok(session) => Ok(session),
            Err(e) => {
                self.close_conn(&mut slot).await;
                Err(e)
            }
        }
    }

    async fn disconnect(&self) -> Result<()> {
        let mut slot = self.conn.lock().await;
        self.close_conn(&mut slot).await;
        Ok(())
    }

    /// Subscribes; waits for the server's answer as long as the caller does (the runtime's
    /// request timeout bounds it). [`USER_CHANNEL`] is answered here: it needs a signed-in
    /// connection and sends nothing.
    async fn subscribe(&self, channel: &Channel, options: &SubscribeOptions) -> Result<Subscribed> {
        if is_user_channel(channel) {
            let mut slot = self.conn.lock().await;
            let conn = Self::live(&mut slot)?;
            return match lock(&conn.shared).user_id {
                Some(_) => Ok(Subscribed::plain()),
                None => Err(RealtimeError::Config(format!(
                    "`{USER_CHANNEL}` carries the signed-in user's events, and this connection is not signed in (configure user sign-in: PUSHER_USER_DATA with PUSHER_SECRET, or PUSHER_USER_AUTH_ENDPOINT)"
                ))),
            };
        }
        let wire = to_wire(channel)?;
        let (auth, channel_data, secret) = if channel.kind().requires_auth() {
            let body = options.auth.as_ref().ok_or_else(|| {
                RealtimeError::Unauthorized(format!("`{channel}` needs an authorization"))
            })?;
            let auth = body
                .str_field("auth")
                .ok_or_else(|| RealtimeError::Protocol("auth body without `auth`".into()))?
                .to_owned();
            let channel_data = if channel.kind() == ChannelKind::Presence {
                Some(
                    body.str_field("channel_data")
                        .ok_or_else(|| {
                            RealtimeError::Protocol(
                                "presence auth body without `channel_data`".into(),
                            )
                        })?
                        .to_owned(),
                )
            } else {
                None
            };
            let secret = if is_encrypted(&wire) {
                let s = body.str_field("shared_secret").ok_or_else(|| {
                    RealtimeError::Config(format!(
                        "`{channel}` is encrypted and its auth has no `shared_secret`"
                    ))
                })?;
                Some(parse_shared_secret(s)?)
            } else {
                None
            };
            (Some(auth), channel_data, secret)
        } else {
            (None, None, None)
        };
        let mut slot = self.conn.lock().await;
        let conn = Self::live(&mut slot)?;
        let shared = conn.shared.clone();
        let (tx, rx) = oneshot::channel();
        {
            let mut s = lock(&shared);
            if let Some(existing) = s.subs.get(&wire) {
                match &existing.channel {
                    Some(c) if c != channel => {
                        return Err(RealtimeError::invalid_channel(
                            channel.to_string(),
                            format!("maps to the Pusher channel `{wire}`, already used by `{c}`"),
                        ));
                    }
                    Some(_) if existing.active => return Ok(Subscribed::plain()),
                    _ => {}
                }
            }
            s.subs.insert(
                wire.clone(),
                Sub {
                    channel: Some(channel.clone()),
                    waiter: Some(tx),
                    active: false,
                    secret,
                    members: BTreeMap::new(),
                },
            );
            s.pending.retain(|p| p != &wire);
            s.pending.push_back(wire.clone());
        }
        conn.send(protocol::subscribe(
            &wire,
            auth.as_deref(),
            channel_data.as_deref(),
        ))?;
        drop(slot);
        // Cleans up if this call fails or the caller stops waiting (its timeout).
        let mut guard = PendingSubscribe {
            shared,
            wire,
            armed: true,
        };
        let result = match rx.await {
            Ok(r) => r,
            Err(_) => Err(RealtimeError::Connection(
                "the connection closed while subscribing".into(),
            )),
        };
        guard.armed = result.is_err();
        result.map(|()| Subscribed::plain())
    }

    async fn unsubscribe(&self, channel: &Channel) -> Result<()> {
        if is_user_channel(channel) {
            return Ok(());
        }
        let wire = to_wire(channel)?;
        let slot = self.conn.lock().await;
        let Some(conn) = slot.as_ref() else {
            return Ok(());
        };
        let removed = {
            let mut s = lock(&conn.shared);
            s.pending.retain(|p| p != &wire);
            s.subs.remove(&wire).is_some()
        };
        if removed {
            conn.send(protocol::unsubscribe(&wire))?;
        }
        Ok(())
    }

    /// Sends a client event. Pusher only relays events named `client-…` (with
    /// [`PusherConfig::client_event_prefix`] the prefix is added here), on private and
    /// presence channels this connection has subscribed to, not encrypted, at most 10 per
    /// second and connection; these are checked here, before sending. The sender does not get
    /// its own event back.
    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        let names = ClientEventNames::from_flag(self.config.client_event_prefix);
        let (wire, event) = check_client_event(message, self.config.max_payload, names)?;
        let mut slot = self.conn.lock().await;
        let conn = Self::live(&mut slot)?;
        let subscribed = lock(&conn.shared).subs.get(&wire).is_some_and(|s| s.active);
        if !subscribed {
            return Err(RealtimeError::Protocol(format!(
                "client events need an active subscription to `{}`",
                message.channel
            )));
        }
        conn.limiter.try_acquire(Instant::now())?;
        let data = message.data.json_for("pusher")?;
        conn.send(protocol::client_event(&event, &wire, data))?;
        Ok(())
    }

    /// On Pusher, joining a presence channel is part of subscribing to it (with the user data
    /// the authorizer signed); this only checks that the subscription is active.
    async fn presence_enter(&self, channel: &Channel, _data: Value) -> Result<()> {
        let wire = to_wire(channel)?;
        let mut slot = self.conn.lock().await;
        let conn = Self::live(&mut slot)?;
        if lock(&conn.shared).subs.get(&wire).is_some_and(|s| s.active) {
            Ok(())
        } else {
            Err(RealtimeError::Protocol(format!(
                "`{channel}` is joined by subscribing to it"
            )))
        }
    }

    /// Pusher has no way to leave a presence channel but unsubscribing: this unsubscribes.
    async fn presence_leave(&self, channel: &Channel) -> Result<()> {
        self.unsubscribe(channel).await
    }

    async fn presence_members(&self, channel: &Channel) -> Result<Vec<PresenceMember>> {
        let wire = to_wire(channel)?;
        let mut slot = self.conn.lock().await;
        let conn = Self::live(&mut slot)?;
        let s = lock(&conn.shared);
        let sub = s
            .subs
            .get(&wire)
            .filter(|s| s.active)
            .ok_or_else(|| RealtimeError::Protocol(format!("`{channel}` is not subscribed")))?;
        Ok(sub
            .members
            .iter()
            .map(|(id, info)| PresenceMember::new(id.clone(), info.clone()))
            .collect())
    }

    /// Sends `pusher:ping` and waits for `pusher:pong`, as long as the caller waits (the
    /// core's heartbeat timeout bounds it).
    async fn ping(&self) -> Result<Duration> {
        let mut slot = self.conn.lock().await;
        let conn = Self::live(&mut slot)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut s = lock(&conn.shared);
            s.pings.retain(|w| !w.is_closed());
            s.pings.push_back(tx);
        }
        let start = Instant::now();
        conn.send(protocol::ping())?;
        drop(slot);
        match rx.await {
            Ok(()) => Ok(start.elapsed()),
            Err(_) => Err(RealtimeError::Connection(
                "the connection closed while waiting for pusher:pong".into(),
            )),
        }
    }
}

/// Whether `channel` is the reserved [`USER_CHANNEL`].
fn is_user_channel(channel: &Channel) -> bool {
    channel.kind() == ChannelKind::Public && channel.name() == USER_CHANNEL
}

/// A subscribe in flight: unless disarmed (the server confirmed), dropping it forgets the
/// subscription, so a later channel-less refusal is not charged to it.
struct PendingSubscribe {
    shared: Arc<Mutex<Shared>>,
    wire: String,
    armed: bool,
}

impl Drop for PendingSubscribe {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut s = lock(&self.shared);
        s.pending.retain(|p| p != &self.wire);
        if s.subs.get(&self.wire).is_some_and(|sub| !sub.active) {
            s.subs.remove(&self.wire);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_before_connect_are_connection_errors() {
        let p = PusherProvider::new(PusherConfig::cluster("k", "eu"));
        let ch = Channel::public("a");
        let err = p
            .subscribe(&ch, &SubscribeOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), relayport_core::ErrorKind::Connection);
        assert!(p.ping().await.is_err());
        assert!(p.unsubscribe(&ch).await.is_ok());
        assert!(p.disconnect().await.is_ok());
        assert_eq!(p.socket_id(), None);
    }
}

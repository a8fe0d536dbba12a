//! [`SupabaseProvider`]: the [`RealtimeProvider`] for Supabase Realtime.
//!
//! One `connect` opens one WebSocket (`{endpoint}/websocket?apikey=…&vsn=2.0.0`) and spawns a
//! reader and a writer task; `disconnect` stops both. Every call makes one attempt: the core
//! owns reconnecting, backoff, resubscribing and the heartbeat schedule (it calls
//! [`RealtimeProvider::ping`], which sends Phoenix's `heartbeat` and waits for its reply; the
//! core's heartbeat timeout bounds that wait).
//!
//! Channel-level recovery stays here, on the open socket, as realtime-js does it: a channel the
//! server errors (`phx_error`) or closes for an expired token rejoins on its own schedule
//! ([`crate::rejoin`]) while every other channel keeps flowing, and a channel token minted by
//! the provider's authorizer ([`SupabaseProvider::with_authorizer`]) is refreshed ahead of its
//! `exp` and pushed to the channel (`access_token`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use relayport_core::transport::{
    self, Flow, Frame as LinkFrame, Handshake, LinkConfig, LinkSender, OpenError, PeerClose,
};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};
use tracing::{debug, warn};

use relayport_core::{
    AuthRequest, Capabilities, Channel, ChannelAuthorizer, CloseReason, EventSink, OutboundMessage,
    Payload, PresenceMember, PresenceUser, ProviderEvent, RealtimeError, RealtimeProvider,
    Recovery, Result, Session, SubscribeOptions, Subscribed,
};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::PROVIDER_NAME;
use crate::dispatch::{Action, ChannelEntry, Dispatcher, JoinState};
use crate::errors::{ErrorContext, handshake_error, to_error};
use crate::frame::{ProtocolVersion, UserPayload, decode_binary, decode_text};
use crate::join::{ChannelOptions, JoinParams, Reply, parse_join_reply};
use crate::postgres::PostgresChangesFilter;
use crate::push::{ClientPush, WireFrame};
use crate::rejoin::{refresh_after, rejoin_delay, token_exp, unix_now};
use crate::rest::{DEFAULT_MAX_PAYLOAD, Persist, SupabasePublisher};
use crate::system::SystemEvent;
use crate::topic::{PHOENIX_TOPIC, check_channel, has_presence, is_private_with, topic_for};

/// realtime-js's heartbeat interval: 25 s.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(25);
/// How long `disconnect` lets the reader deliver what arrives before the server's close reply.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// realtime-js's push and join timeout: 10 s (the server answers join errors ~5 s late).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach a Supabase Realtime server.
#[derive(Clone)]
#[non_exhaustive]
pub struct SupabaseConfig {
    /// The socket endpoint, before `/websocket`: `https://<ref>.supabase.co/realtime/v1`
    /// (http(s) is turned into ws(s)), or `ws://host:4000/socket` for a server reached directly.
    pub endpoint: String,
    /// The project API key (a JWT: the anon key on clients), sent as the `apikey` parameter.
    pub api_key: String,
    /// The user's JWT, sent as `access_token` on every join and rejoin; the server uses the
    /// API key when there is none.
    pub access_token: Option<String>,
    /// The serializer version (default 2.0.0).
    pub vsn: ProtocolVersion,
    /// How long a join may wait for its reply (default 10 s; keep it over 5 s).
    pub join_timeout: Duration,
    /// How long a broadcast ack, presence reply or leave reply may take (default 10 s).
    pub push_timeout: Duration,
    /// The heartbeat interval announced to the core (default 25 s). How long a heartbeat may
    /// go unanswered is the core's `heartbeat_timeout`.
    pub heartbeat_interval: Duration,
    /// The payload limit, announced to the core as `Capabilities::max_payload` (default
    /// 256 KB, the Free plan's; raise it to your plan's, e.g. 3,000 KB on paid plans).
    pub max_payload: usize,
    /// Whether `presence:` channels are joined as private (RLS-guarded) channels (default
    /// `false`: presence and privacy are separate, as in realtime-js).
    pub presence_private: bool,
    /// This client's presence key when neither the channel options nor the channel
    /// authorization give one (empty: the server picks a UUID).
    pub presence_key: Option<String>,
    /// The optional `log_level` parameter (`info`, `warning`, `error`).
    pub log_level: Option<String>,
}

impl std::fmt::Debug for SupabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseConfig")
            .field("endpoint", &self.endpoint)
            .field("api_key", &"<redacted>")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .field("vsn", &self.vsn)
            .field("join_timeout", &self.join_timeout)
            .field("push_timeout", &self.push_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("max_payload", &self.max_payload)
            .field("presence_private", &self.presence_private)
            .field("presence_key", &self.presence_key)
            .finish_non_exhaustive()
    }
}

impl SupabaseConfig {
    /// A hosted project: `project_url` is `https://<ref>.supabase.co` (or any base URL that
    /// serves `/realtime/v1`), `api_key` the anon key.
    ///
    /// ```
    /// use relayport_supabase::client::SupabaseConfig;
    /// let c = SupabaseConfig::new("https://abc.supabase.co", "anon");
    /// assert_eq!(c.socket_url().unwrap(), "wss://abc.supabase.co/realtime/v1/websocket?apikey=anon&vsn=2.0.0");
    /// assert_eq!(c.rest_base().unwrap(), "https://abc.supabase.co/realtime/v1");
    /// ```
    pub fn new(project_url: &str, api_key: impl Into<String>) -> Self {
        Self::with_endpoint(
            format!("{}/realtime/v1", project_url.trim_end_matches('/')),
            api_key,
        )
    }

    /// An explicit socket endpoint (everything before `/websocket`).
    pub fn with_endpoint(endpoint: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            api_key: api_key.into(),
            access_token: None,
            vsn: ProtocolVersion::V2,
            join_timeout: DEFAULT_TIMEOUT,
            push_timeout: DEFAULT_TIMEOUT,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            max_payload: DEFAULT_MAX_PAYLOAD,
            presence_private: false,
            presence_key: None,
            log_level: None,
        }
    }

    fn url_with_scheme(&self, suffix: &str, ws: bool) -> Result<url::Url> {
        let raw = format!("{}{suffix}", self.endpoint);
        let mut url = url::Url::parse(&raw)
            .map_err(|e| RealtimeError::Config(format!("bad Supabase endpoint `{raw}`: {e}")))?;
        let scheme = match (url.scheme(), ws) {
            ("http" | "ws", true) => "ws",
            ("https" | "wss", true) => "wss",
            ("http" | "ws", false) => "http",
            ("https" | "wss", false) => "https",
            (other, _) => {
                return Err(RealtimeError::Config(format!(
                    "unsupported scheme `{other}` in the Supabase endpoint"
                )));
            }
        };
        url.set_scheme(scheme)
            .map_err(|_| RealtimeError::Config(format!("cannot use scheme {scheme}")))?;
        Ok(url)
    }

    /// `{endpoint}/websocket?apikey=…[&log_level=…]&vsn=…`, as realtime-js builds it.
    pub fn socket_url(&self) -> Result<String> {
        let mut url = self.url_with_scheme("/websocket", true)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("apikey", &self.api_key);
            if let Some(level) = &self.log_level {
                q.append_pair("log_level", level);
            }
            q.append_pair("vsn", self.vsn.as_str());
        }
        Ok(url.to_string())
    }

    /// The REST base (`http(s)://…/realtime/v1`) derived from the endpoint.
    pub fn rest_base(&self) -> Result<String> {
        Ok(self
            .url_with_scheme("", false)?
            .to_string()
            .trim_end_matches('/')
            .to_owned())
    }
}

/// A byte stream a WebSocket can run over (the link layer's `LinkIo`).
pub use relayport_core::transport::LinkIo as Io;

/// The future a [`Connector`] returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = std::io::Result<Box<dyn Io>>> + Send>>;

/// Opens the byte stream for a socket URL, for custom transports (an in-memory pipe in
/// tests, a proxy tunnel); the WebSocket handshake (and TLS for `wss`, from the
/// [`LinkConfig`]) then runs over it. The default (no connector) is TCP.
pub type Connector = Arc<dyn Fn(&str) -> ConnectFuture + Send + Sync>;

struct Conn {
    id: u64,
    sender: LinkSender,
    sink: EventSink,
    /// The session's connection id (the `socket_id` of re-authorizations).
    connection_id: String,
    /// We are closing it: its end is not reported.
    closing: bool,
}

struct Shared {
    vsn: ProtocolVersion,
    next_ref: u64,
    access_token: Option<String>,
    conn: Option<Conn>,
    dispatcher: Dispatcher,
    pending: HashMap<String, oneshot::Sender<Reply>>,
    /// Each channel's timer task (its token refresh or its rejoin), by topic.
    timers: HashMap<String, AbortHandle>,
    /// Typed `system` frames, for [`SupabaseProvider::system_events`].
    system: broadcast::Sender<SystemEvent>,
}

impl Shared {
    fn next_ref(&mut self) -> String {
        self.next_ref = self.next_ref.wrapping_add(1);
        self.next_ref.to_string()
    }

    /// Forgets the link: pending waiters fail (their senders drop), channels and their timers
    /// are gone.
    fn drop_link(&mut self) -> Option<Conn> {
        self.pending.clear();
        self.dispatcher.clear();
        for (_, timer) in self.timers.drain() {
            timer.abort();
        }
        self.conn.take()
    }

    /// Replaces `topic`'s timer task.
    fn set_timer(&mut self, topic: &str, timer: AbortHandle) {
        if let Some(old) = self.timers.insert(topic.to_owned(), timer) {
            old.abort();
        }
    }

    /// Stops `topic`'s timer task, if any.
    fn cancel_timer(&mut self, topic: &str) {
        if let Some(old) = self.timers.remove(topic) {
            old.abort();
        }
    }

    fn send(&self, frame: WireFrame) -> Result<()> {
        let conn = self
            .conn
            .as_ref()
            .ok_or_else(|| RealtimeError::Connection("not connected".into()))?;
        send_wire(&conn.sender, frame)
    }

    fn is_current(&self, id: u64) -> bool {
        self.conn.as_ref().is_some_and(|c| c.id == id)
    }

    fn sink(&self) -> Option<EventSink> {
        self.conn.as_ref().map(|c| c.sink.clone())
    }
}

fn send_wire(sender: &LinkSender, frame: WireFrame) -> Result<()> {
    match frame {
        WireFrame::Text(t) => sender.send_text(t),
        WireFrame::Binary(b) => sender.send_binary(b),
    }
    .map_err(|_| RealtimeError::Connection("the link is closed".into()))
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    relayport_core::transport::lock(shared)
}

/// Sets the user's JWT from anywhere, including while the provider is owned by a
/// `RealtimeClient`: the new token goes into every later join and rejoin, and is pushed at once
/// (`access_token`) to every joined channel that uses it (channels joined with their own
/// channel-scoped token from the authorization keep theirs; the authorizer refreshes those).
#[derive(Clone)]
pub struct AccessTokenHandle {
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for AccessTokenHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessTokenHandle(<redacted>)")
    }
}

impl AccessTokenHandle {
    /// Sets the token; returns how many joined channels it was pushed to (0 when unchanged:
    /// the server ignores a repeated token, and realtime-js does not resend it either).
    pub fn set(&self, token: impl Into<String>) -> usize {
        let token = token.into();
        let mut s = lock(&self.shared);
        if s.access_token.as_deref() == Some(token.as_str()) {
            return 0;
        }
        s.access_token = Some(token.clone());
        let vsn = s.vsn;
        let mut pushed = 0;
        for (topic, join_ref) in s.dispatcher.joined() {
            match s.dispatcher.get_mut(&topic) {
                Some(e) if !e.authorized => e.params.access_token = Some(token.clone()),
                _ => continue,
            }
            let r = s.next_ref();
            let push = ClientPush::AccessToken(token.clone());
            if let Ok(frame) = push.encode(vsn, Some(&join_ref), &r, &topic)
                && s.send(frame).is_ok()
            {
                pushed += 1;
            }
        }
        pushed
    }

    /// Whether a token is set.
    pub fn is_set(&self) -> bool {
        lock(&self.shared).access_token.is_some()
    }
}

/// What the link's reader and the channel timers share: the state, the timeouts and the
/// authorizer that refreshes channel tokens.
#[derive(Clone)]
struct Ctx {
    shared: Arc<Mutex<Shared>>,
    vsn: ProtocolVersion,
    join_timeout: Duration,
    authorizer: Option<Arc<dyn ChannelAuthorizer>>,
}

impl Ctx {
    /// Sends a push; with `reply`, registers a waiter for its ref first.
    fn push(
        &self,
        join_ref: Option<&str>,
        topic: &str,
        push: &ClientPush,
        reply: bool,
    ) -> Result<(String, Option<oneshot::Receiver<Reply>>)> {
        let mut s = lock(&self.shared);
        if s.conn.is_none() {
            return Err(RealtimeError::Connection("not connected".into()));
        }
        let r = s.next_ref();
        let frame = push.encode(self.vsn, join_ref, &r, topic)?;
        let rx = reply.then(|| {
            let (tx, rx) = oneshot::channel();
            s.pending.insert(r.clone(), tx);
            rx
        });
        if let Err(e) = s.send(frame) {
            s.pending.remove(&r);
            return Err(e);
        }
        Ok((r, rx))
    }

    /// Waits for a reply; `limit: None` waits as long as the caller does (the core bounds it).
    async fn wait(
        &self,
        r: &str,
        rx: Option<oneshot::Receiver<Reply>>,
        limit: Option<Duration>,
        what: &str,
    ) -> Result<Reply> {
        let rx = rx.ok_or_else(|| RealtimeError::Protocol(format!("no waiter for {what}")))?;
        let closed =
            || RealtimeError::Connection(format!("the link closed while waiting for {what}"));
        let Some(limit) = limit else {
            return rx.await.map_err(|_| closed());
        };
        match timeout(limit, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(closed()),
            Err(_) => {
                lock(&self.shared).pending.remove(r);
                Err(RealtimeError::timeout(what, limit))
            }
        }
    }

    /// The re-authorization request of `topic`'s channel, if the provider has an authorizer
    /// and the channel's token came from one.
    fn auth_request(&self, s: &Shared, topic: &str) -> Option<AuthRequest> {
        self.authorizer.as_ref()?;
        let e = s.dispatcher.get(topic).filter(|e| e.authorized)?;
        Some(AuthRequest {
            socket_id: s
                .conn
                .as_ref()
                .map(|c| c.connection_id.clone())
                .unwrap_or_default(),
            channel: e.channel.clone(),
            user: e.auth_user.clone().map(|id| PresenceUser {
                id,
                info: Value::Null,
            }),
        })
    }

    /// Starts the refresh timer of a joined channel whose token came from the authorizer and
    /// has an `exp`: [`refresh_after`] before it expires, a fresh token is minted and pushed.
    fn schedule_refresh(&self, s: &mut Shared, topic: &str, link: u64) {
        if self.auth_request(s, topic).is_none() {
            return;
        }
        let Some(e) = s.dispatcher.get(topic) else {
            return;
        };
        let Some(exp) = e.params.access_token.as_deref().and_then(token_exp) else {
            return;
        };
        let wait = refresh_after(exp, unix_now());
        let (ctx, t, join_ref) = (self.clone(), topic.to_owned(), e.join_ref.clone());
        let task = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            ctx.refresh(t, link, join_ref).await;
        });
        s.set_timer(topic, task.abort_handle());
    }

    /// Mints a fresh token for a joined channel and pushes it (`access_token`), then schedules
    /// the next refresh. A failed authorization is reported and retried every 10 s; if the
    /// token expires meanwhile, the server closes the channel and the rejoin takes over.
    async fn refresh(self, topic: String, link: u64, join_ref: String) {
        let Some(authorizer) = self.authorizer.clone() else {
            return;
        };
        loop {
            let (request, sink) = {
                let s = lock(&self.shared);
                let joined = s.is_current(link)
                    && s.dispatcher
                        .get(&topic)
                        .is_some_and(|e| e.join_ref == join_ref && e.state == JoinState::Joined);
                match (joined, self.auth_request(&s, &topic), s.sink()) {
                    (true, Some(request), Some(sink)) => (request, sink),
                    _ => return,
                }
            };
            let token = authorizer.authorize(&request).await.and_then(|auth| {
                auth.str_field("access_token")
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        RealtimeError::Unauthorized(
                            "the channel authorization has no access_token".into(),
                        )
                    })
            });
            match token {
                Ok(token) => {
                    let mut s = lock(&self.shared);
                    let vsn = self.vsn;
                    match s.dispatcher.get_mut(&topic) {
                        Some(e) if e.join_ref == join_ref && e.state == JoinState::Joined => {
                            e.params.access_token = Some(token.clone());
                        }
                        _ => return,
                    }
                    if !s.is_current(link) {
                        return;
                    }
                    let r = s.next_ref();
                    match ClientPush::AccessToken(token).encode(vsn, Some(&join_ref), &r, &topic) {
                        Ok(frame) => {
                            if s.send(frame).is_err() {
                                return;
                            }
                            debug!(%topic, "channel token refreshed");
                        }
                        Err(e) => {
                            sink.error(Some(request.channel.clone()), e.into());
                        }
                    }
                    self.schedule_refresh(&mut s, &topic, link);
                    return;
                }
                Err(e) => {
                    warn!(%topic, error = %e, "channel token refresh failed; retrying in 10 s");
                    sink.error(Some(request.channel.clone()), e);
                    tokio::time::sleep(rejoin_delay(4)).await;
                }
            }
        }
    }

    /// Starts the rejoin of `topic` (see [`Ctx::rejoin`]).
    fn spawn_rejoin(&self, s: &mut Shared, topic: String, link: u64, token_expired: bool) {
        let ctx = self.clone();
        let t = topic.clone();
        let task = tokio::spawn(async move { ctx.rejoin(t, link, token_expired).await });
        s.set_timer(&topic, task.abort_handle());
    }

    /// Rejoins one errored channel on the channel schedule ([`rejoin_delay`]) with a fresh
    /// token when its own expired (from the authorizer; otherwise the provider's current
    /// token), until a join succeeds (then `ContinuityLost`, so the core resynchronizes that
    /// channel alone) or fails for good (`SubscriptionLost`). Retryable failures and join
    /// timeouts try again; the other channels are never touched.
    async fn rejoin(self, topic: String, link: u64, token_expired: bool) {
        loop {
            let attempt = {
                let mut s = lock(&self.shared);
                if !s.is_current(link) {
                    return;
                }
                match s.dispatcher.get_mut(&topic) {
                    Some(e) if e.state == JoinState::Errored => {
                        e.rejoins += 1;
                        e.rejoins
                    }
                    _ => return,
                }
            };
            tokio::time::sleep(rejoin_delay(attempt)).await;
            let (request, sink, channel) = {
                let s = lock(&self.shared);
                let (Some(sink), Some(e)) = (s.sink(), s.dispatcher.get(&topic)) else {
                    return;
                };
                if !s.is_current(link) || e.state != JoinState::Errored {
                    return;
                }
                (self.auth_request(&s, &topic), sink, e.channel.clone())
            };
            let mut fresh = None;
            if let (Some(request), Some(authorizer)) = (request, self.authorizer.as_ref())
                && token_expired
            {
                match authorizer.authorize(&request).await {
                    Ok(auth) => fresh = auth.str_field("access_token").map(str::to_owned),
                    Err(e) if e.is_retryable() => {
                        sink.error(Some(channel.clone()), e);
                        continue;
                    }
                    Err(e) => {
                        self.lose(&topic, link, e);
                        return;
                    }
                }
            }
            let sent = {
                let mut s = lock(&self.shared);
                if !s.is_current(link) {
                    return;
                }
                let token = s.access_token.clone();
                let r = s.next_ref();
                let Some(e) = s.dispatcher.get_mut(&topic) else {
                    return;
                };
                if e.state != JoinState::Errored {
                    return;
                }
                if let Some(t) = fresh {
                    e.params.access_token = Some(t);
                } else if !e.authorized {
                    e.params.access_token = token;
                }
                e.join_ref = r.clone();
                e.state = JoinState::Joining;
                e.presence = Default::default();
                let frame =
                    ClientPush::Join(e.params.clone()).encode(self.vsn, Some(&r), &r, &topic);
                let (tx, rx) = oneshot::channel();
                s.pending.insert(r.clone(), tx);
                match frame.map_err(RealtimeError::from).and_then(|f| s.send(f)) {
                    Ok(()) => Some((r, rx)),
                    Err(_) => None,
                }
            };
            let Some((r, rx)) = sent else {
                return;
            };
            match self
                .wait(&r, Some(rx), Some(self.join_timeout), "rejoin reply")
                .await
            {
                Ok(reply) => {
                    let filters = {
                        let s = lock(&self.shared);
                        match s.dispatcher.get(&topic) {
                            Some(e) => e.params.postgres_changes.clone(),
                            None => return,
                        }
                    };
                    match parse_join_reply(&reply, &channel, &filters) {
                        Ok(_) => {
                            let mut s = lock(&self.shared);
                            if let Some(e) = s.dispatcher.get_mut(&topic) {
                                e.rejoins = 0;
                            }
                            sink.emit(ProviderEvent::ContinuityLost {
                                channel: channel.clone(),
                                reason: RealtimeError::Closed(format!(
                                    "`{channel}` was rejoined: messages sent meanwhile are missed"
                                )),
                            });
                            self.schedule_refresh(&mut s, &topic, link);
                            return;
                        }
                        Err(e) if e.is_retryable() => {
                            sink.error(Some(channel.clone()), e);
                            self.errored(&topic, &r);
                        }
                        Err(e) => {
                            self.lose(&topic, link, e);
                            return;
                        }
                    }
                }
                Err(RealtimeError::Timeout { .. }) => {
                    // As phoenix.js: leave the timed-out join so a late reply cannot revive it.
                    let _ = self.push(Some(&r), &topic, &ClientPush::Leave, false);
                    self.errored(&topic, &r);
                }
                Err(_) => return,
            }
        }
    }

    /// Marks `topic` errored again after its join `r` failed.
    fn errored(&self, topic: &str, r: &str) {
        let mut s = lock(&self.shared);
        if let Some(e) = s.dispatcher.get_mut(topic)
            && e.join_ref == r
        {
            e.state = JoinState::Errored;
        }
    }

    /// Gives a channel up: it is forgotten and the core is told (`SubscriptionLost`).
    fn lose(&self, topic: &str, link: u64, error: RealtimeError) {
        let mut s = lock(&self.shared);
        if !s.is_current(link) {
            return;
        }
        let Some(e) = s.dispatcher.get(topic).cloned() else {
            return;
        };
        s.dispatcher.remove_if(topic, &e.join_ref);
        s.timers.remove(topic);
        if let Some(sink) = s.sink() {
            sink.emit(ProviderEvent::SubscriptionLost {
                channel: e.channel,
                error,
            });
        }
    }
}

/// The broadcast options a join sends for the runtime's echo choice `echo`: the channel's own
/// `self` wins; without a choice (the provider used directly) nothing changes, so the join is
/// realtime-js's; echo off with nothing set keeps realtime-js's default
/// `{"ack":false,"self":false}`.
fn with_echo(
    broadcast: Option<crate::join::BroadcastOptions>,
    echo: Option<bool>,
) -> Option<crate::join::BroadcastOptions> {
    match (broadcast, echo) {
        (Some(mut b), Some(echo)) => {
            b.self_broadcast.get_or_insert(echo);
            Some(b)
        }
        (None, Some(true)) => Some(crate::join::BroadcastOptions {
            self_broadcast: Some(true),
            ack: Some(false),
            replay: None,
        }),
        (b, _) => b,
    }
}

/// The Supabase Realtime provider.
///
/// ```
/// use relayport_supabase::client::{SupabaseConfig, SupabaseProvider};
/// use relayport_supabase::postgres::{PostgresChangesFilter, PostgresEvent};
/// use relayport_core::{Channel, RealtimeProvider};
/// let provider = SupabaseProvider::new(SupabaseConfig::new("https://abc.supabase.co", "anon-key"))
///     .with_postgres_changes(
///         Channel::public("db"),
///         [PostgresChangesFilter::new(PostgresEvent::Insert, "public").table("todos")],
///     );
/// assert_eq!(provider.name(), "supabase");
/// ```
pub struct SupabaseProvider {
    config: SupabaseConfig,
    channels: HashMap<Channel, ChannelOptions>,
    ctx: Ctx,
    /// The link's tasks; held across an await by `connect` and `disconnect` only, so those
    /// never overlap while the other calls run alongside each other.
    tasks: tokio::sync::Mutex<LinkTasks>,
    rest: Mutex<Option<SupabasePublisher>>,
    connector: Option<Connector>,
    link_config: Option<LinkConfig>,
    /// The client runtime's echo choice (`set_echo`): sent as `broadcast.self` on every join
    /// whose channel options do not set `self` themselves.
    echo: std::sync::OnceLock<bool>,
}

/// The current link (its reader and writer), and how many links were opened.
#[derive(Default)]
struct LinkTasks {
    link: Option<transport::Link>,
    connections: u64,
}

impl std::fmt::Debug for SupabaseProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SupabaseProvider {
    /// A provider with this configuration; nothing is opened until `connect`.
    pub fn new(config: SupabaseConfig) -> Self {
        let shared = Shared {
            vsn: config.vsn,
            next_ref: 0,
            access_token: config.access_token.clone(),
            conn: None,
            dispatcher: Dispatcher::default(),
            pending: HashMap::new(),
            timers: HashMap::new(),
            system: broadcast::channel(64).0,
        };
        let ctx = Ctx {
            shared: Arc::new(Mutex::new(shared)),
            vsn: config.vsn,
            join_timeout: config.join_timeout,
            authorizer: None,
        };
        Self {
            config,
            channels: HashMap::new(),
            ctx,
            tasks: tokio::sync::Mutex::new(LinkTasks::default()),
            rest: Mutex::new(None),
            connector: None,
            link_config: None,
            echo: std::sync::OnceLock::new(),
        }
    }

    /// The TLS configuration to open `wss` sockets with; default:
    /// [`LinkConfig::shared_default`] (the compiled-in webpki roots). Inject one to trust a
    /// private CA or the system store. Never installs a process-global crypto provider.
    pub fn with_link_config(mut self, config: LinkConfig) -> Self {
        self.link_config = Some(config);
        self
    }

    /// The authorizer that refreshes channel tokens: the same one the `RealtimeClient` signs
    /// subscriptions with (`ClientBuilder::authorizer`; the facade wires both). With it, a
    /// channel whose token came from the authorization is re-authorized
    /// [`REFRESH_MARGIN`](crate::rejoin::REFRESH_MARGIN) before its `exp` (the new token is
    /// pushed to that channel as `access_token`, as realtime-js's `setAuth`), and a channel
    /// the server closed for an expired token rejoins with a fresh one. Without it, such a
    /// channel makes the link reconnect, and the core re-authorizes every channel.
    pub fn with_authorizer(mut self, authorizer: Arc<dyn ChannelAuthorizer>) -> Self {
        self.ctx.authorizer = Some(authorizer);
        self
    }

    /// Typed `system` frames of every channel ([`SystemEvent`]: subscribed to Postgres,
    /// Postgres errors, token expiry, rate limits …), from now on. They are never delivered as
    /// messages; errors among them also reach the core as `Error` events.
    pub fn system_events(&self) -> broadcast::Receiver<SystemEvent> {
        lock(&self.ctx.shared).system.subscribe()
    }

    /// Opens sockets through `connector` instead of TCP/TLS (see [`Connector`]).
    pub fn with_connector(mut self, connector: Connector) -> Self {
        self.connector = Some(connector);
        self
    }

    /// Sets a channel's join options (broadcast self/ack/replay, presence, private, postgres
    /// changes), used by every join of that channel.
    pub fn with_channel_options(mut self, channel: Channel, options: ChannelOptions) -> Self {
        self.channels.insert(channel, options);
        self
    }

    /// Listens to postgres changes on `channel` (joined with these filters; see
    /// [`crate::postgres`] for the messages).
    pub fn with_postgres_changes(
        mut self,
        channel: Channel,
        filters: impl IntoIterator<Item = PostgresChangesFilter>,
    ) -> Self {
        self.channels
            .entry(channel)
            .or_default()
            .postgres_changes
            .extend(filters);
        self
    }

    /// A handle to change the user's JWT later (see [`AccessTokenHandle`]).
    pub fn access_token_handle(&self) -> AccessTokenHandle {
        AccessTokenHandle {
            shared: self.ctx.shared.clone(),
        }
    }

    /// The join parameters for `channel` (the naming rule of [`crate::topic`], overridden by
    /// the channel's options, with the authorization's token and presence key).
    pub fn join_params(&self, channel: &Channel, options: &SubscribeOptions) -> JoinParams {
        // `subscribe_with` options first, then the ones set on the provider for this channel.
        let opts = options
            .extensions
            .get::<ChannelOptions>()
            .or_else(|| self.channels.get(channel))
            .cloned()
            .unwrap_or_default();
        let auth_str = |k: &str| {
            options
                .auth
                .as_ref()
                .and_then(|a| a.str_field(k))
                .map(str::to_owned)
        };
        JoinParams {
            broadcast: with_echo(opts.broadcast.clone(), self.echo.get().copied()),
            presence_key: opts
                .presence_key
                .clone()
                .or_else(|| auth_str("presence_key"))
                .or_else(|| self.config.presence_key.clone())
                .unwrap_or_default(),
            presence_enabled: opts.presence_enabled.unwrap_or(has_presence(channel)),
            postgres_changes: opts.postgres_changes.clone(),
            private: opts
                .private
                .unwrap_or_else(|| is_private_with(channel, self.config.presence_private)),
            access_token: auth_str("access_token")
                .or_else(|| lock(&self.ctx.shared).access_token.clone()),
        }
    }

    fn rest(&self) -> Result<SupabasePublisher> {
        let rest = {
            let mut slot = relayport_core::transport::lock(&self.rest);
            if slot.is_none() {
                let mut publisher = SupabasePublisher::with_base_url(
                    self.config.rest_base()?,
                    &self.config.api_key,
                )
                .max_payload(self.config.max_payload)
                .presence_private(self.config.presence_private);
                if let Some(config) = &self.link_config {
                    publisher = publisher.with_link_config(config);
                }
                *slot = Some(publisher);
            }
            slot.clone()
        };
        let token = lock(&self.ctx.shared).access_token.clone();
        let rest =
            rest.ok_or_else(|| RealtimeError::Config("REST publisher unavailable".into()))?;
        Ok(match token {
            Some(t) => rest.bearer(t),
            None => rest,
        })
    }

    fn push(
        &self,
        join_ref: Option<&str>,
        topic: &str,
        push: &ClientPush,
        reply: bool,
    ) -> Result<(String, Option<oneshot::Receiver<Reply>>)> {
        self.ctx.push(join_ref, topic, push, reply)
    }

    async fn wait(
        &self,
        r: &str,
        rx: Option<oneshot::Receiver<Reply>>,
        limit: Duration,
        what: &str,
    ) -> Result<Reply> {
        self.ctx.wait(r, rx, Some(limit), what).await
    }

    /// The topic and join ref of a joined channel.
    fn joined(&self, channel: &Channel) -> Option<(String, String, bool)> {
        let topic = topic_for(channel);
        let s = lock(&self.ctx.shared);
        let e = s.dispatcher.get(&topic)?;
        (e.channel == *channel && e.state == JoinState::Joined).then(|| {
            (
                topic.clone(),
                e.join_ref.clone(),
                e.params
                    .broadcast
                    .as_ref()
                    .and_then(|b| b.ack)
                    .unwrap_or(false),
            )
        })
    }

    fn not_joined(channel: &Channel) -> RealtimeError {
        RealtimeError::invalid_channel(
            channel.to_string(),
            "not joined on this connection; subscribe first",
        )
    }

    /// Closes the link: with `goodbye` (a `disconnect`), a `phx_leave` for every joined channel
    /// first; then the close frame (the reader keeps delivering what the server sent before its
    /// close reply, for at most [`CLOSE_GRACE`]); then stops both tasks.
    async fn stop_tasks(&self, link: &mut LinkTasks, goodbye: bool) {
        {
            let mut s = lock(&self.ctx.shared);
            let leaves = if goodbye {
                self.leaves(&mut s)
            } else {
                Vec::new()
            };
            if let Some(c) = s.conn.as_mut() {
                c.closing = true;
                for leave in leaves {
                    let _ = send_wire(&c.sender, leave);
                }
            }
        }
        if let Some(live) = link.link.take() {
            // No code: the server sees 1005, as with realtime-js's disconnect(). The close
            // frame follows the leaves; the grace bounds the wait for the server's reply.
            live.close_without_code(CLOSE_GRACE).await;
        }
        lock(&self.ctx.shared).drop_link();
    }

    /// The `phx_leave` of every joined channel, as realtime-js's `removeAllChannels` sends
    /// them: the server drops this client's presence and subscriptions at once.
    fn leaves(&self, s: &mut Shared) -> Vec<WireFrame> {
        let joined = s.dispatcher.joined();
        let mut frames = Vec::with_capacity(joined.len());
        for (topic, join_ref) in joined {
            let r = s.next_ref();
            match ClientPush::Leave.encode(self.config.vsn, Some(&join_ref), &r, &topic) {
                Ok(frame) => frames.push(frame),
                Err(e) => debug!(%topic, error = %e, "phx_leave does not encode"),
            }
        }
        frames
    }

    fn start_link(&self, link: &mut LinkTasks, handshake: Handshake, sink: EventSink) -> Session {
        link.connections += 1;
        let id = link.connections;
        let connection_id = format!("supabase-{id}");
        {
            let mut s = lock(&self.ctx.shared);
            s.drop_link();
            s.conn = Some(Conn {
                id,
                sender: handshake.sender().clone(),
                sink: sink.clone(),
                connection_id: connection_id.clone(),
                closing: false,
            });
        }
        link.link = Some(handshake.start(PhoenixReader {
            ctx: self.ctx.clone(),
            id,
            sink,
        }));
        Session::new(connection_id).with_heartbeat_interval(Some(self.config.heartbeat_interval))
    }

    /// Resolves the endpoint's host before dialing. A name that does not resolve before the
    /// first connection is a wrong `SUPABASE_URL` far more often than a DNS outage: a `Config`
    /// error with a hint (fatal: no minutes of silent retries); after a connection worked it
    /// is retryable.
    async fn resolve(&self, first: bool) -> Result<()> {
        let url = self.config.url_with_scheme("", false)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let found = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map(|mut addrs| addrs.next().is_some());
        if let Ok(true) = found {
            return Ok(());
        }
        let why = match found {
            Err(e) => e.to_string(),
            Ok(_) => "no address".into(),
        };
        let hint = format!(
            "the Supabase host `{host}` does not resolve ({why}): check SUPABASE_URL \
             (https://<project-ref>.supabase.co) or SUPABASE_REALTIME_URL"
        );
        Err(if first {
            RealtimeError::Config(hint)
        } else {
            RealtimeError::Connection(hint)
        })
    }

    fn handshake_failed(&self, e: OpenError) -> RealtimeError {
        match e {
            OpenError::Refused { status, body } => handshake_error(status, &body),
            OpenError::Failed(e) => RealtimeError::Connection(format!(
                "cannot open {}/websocket: {e}",
                self.config.endpoint
            )),
        }
    }

    /// Publishes with kind-3 metadata (`persist`), as realtime-js's `send({…, persist})`.
    /// Without a joined channel the message goes over REST (realtime-js's fallback).
    pub async fn publish_with(
        &self,
        message: &OutboundMessage,
        persist: Option<Persist>,
    ) -> Result<()> {
        check_channel(&message.channel)?;
        let size = message.payload_size();
        if size > self.config.max_payload {
            return Err(RealtimeError::PayloadTooLarge {
                size,
                limit: self.config.max_payload,
            });
        }
        let Some((topic, join_ref, acked)) = self.joined(&message.channel) else {
            debug!(channel = %message.channel, "not joined: broadcasting over REST");
            let rest = self.rest()?;
            return match persist {
                None => relayport_core::Publisher::publish(&rest, message).await,
                Some(p) => {
                    let body = match &message.data {
                        Payload::Binary(b) => crate::rest::EventBody::Binary(b.to_vec()),
                        Payload::Json(v) => crate::rest::EventBody::Json(v.clone()),
                    };
                    rest.send_event(&message.channel, &message.event, body, Some(p))
                        .await
                }
            };
        };
        let payload = match &message.data {
            Payload::Binary(b) => UserPayload::Binary(b.to_vec()),
            Payload::Json(v) => UserPayload::Json(v.clone()),
        };
        let push = ClientPush::Broadcast {
            event: message.event.clone(),
            payload,
            metadata: persist.map(Persist::metadata),
        };
        let (r, rx) = self.push(Some(&join_ref), &topic, &push, acked)?;
        if !acked {
            return Ok(());
        }
        match self
            .wait(&r, rx, self.config.push_timeout, "broadcast ack")
            .await
        {
            Ok(reply) if reply.is_ok() => Ok(()),
            Ok(reply) => Err(to_error(
                &reply.reason(),
                ErrorContext {
                    channel: Some(&message.channel),
                    size: Some(size),
                    limit: self.config.max_payload,
                    status: None,
                },
            )),
            Err(RealtimeError::Timeout { after, .. })
                if is_private_with(&message.channel, self.config.presence_private) =>
            {
                Err(RealtimeError::Forbidden {
                    channel: message.channel.to_string(),
                    reason: format!(
                        "no broadcast ack within {after:?}: the server drops a private-channel \
                         broadcast that its RLS write policy denies, without replying"
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn presence_push(&self, channel: &Channel, push: ClientPush) -> Result<()> {
        let (topic, join_ref, _) = self
            .joined(channel)
            .ok_or_else(|| Self::not_joined(channel))?;
        let (r, rx) = self.push(Some(&join_ref), &topic, &push, true)?;
        let reply = self
            .wait(&r, rx, self.config.push_timeout, "presence reply")
            .await?;
        if reply.is_ok() {
            Ok(())
        } else {
            Err(to_error(
                &reply.reason(),
                ErrorContext {
                    channel: Some(channel),
                    limit: self.config.max_payload,
                    ..Default::default()
                },
            ))
        }
    }
}

/// The Phoenix side of the link's reader: decodes frames, hands them to the channel
/// [`Dispatcher`] and carries out what it says.
struct PhoenixReader {
    ctx: Ctx,
    /// The link this reader belongs to; frames of a replaced link are not acted on.
    id: u64,
    sink: EventSink,
}

impl transport::Dispatcher for PhoenixReader {
    fn on_frame(&mut self, frame: LinkFrame<'_>, link: &LinkSender) -> Flow {
        let decoded = match frame {
            LinkFrame::Text(t) => decode_text(t),
            LinkFrame::Binary(b) => decode_binary(b),
        };
        let frame = match decoded {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, "malformed frame from the server");
                self.sink.error(None, e.into());
                return Flow::Continue;
            }
        };
        let sink = &self.sink;
        let mut s = lock(&self.ctx.shared);
        if !s.is_current(self.id) {
            return Flow::Stop;
        }
        let closing = s.conn.as_ref().is_some_and(|c| c.closing);
        for action in s.dispatcher.handle(frame) {
            match action {
                Action::Reply { ref_, reply } => match s.pending.remove(&ref_) {
                    Some(tx) => {
                        let _ = tx.send(reply);
                    }
                    None => debug!(%ref_, "reply nobody waits for"),
                },
                Action::Message(m) => {
                    sink.message(m);
                }
                Action::Presence { channel, update } => {
                    for change in update.changes {
                        sink.presence(channel.clone(), change);
                    }
                }
                Action::Lost { channel, error } => {
                    s.cancel_timer(&topic_for(&channel));
                    sink.emit(ProviderEvent::SubscriptionLost { channel, error });
                }
                Action::System(event) => {
                    debug!(channel = %event.channel, kind = ?event.kind, message = %event.message, "system");
                    let _ = s.system.send(event);
                }
                Action::Rejoin { .. } if closing => {}
                Action::Rejoin {
                    topic,
                    channel,
                    reason,
                    token_expired,
                } => {
                    let authorized = s.dispatcher.get(&topic).is_some_and(|e| e.authorized);
                    if token_expired && authorized && self.ctx.authorizer.is_none() {
                        // No authorizer here to mint the channel a fresh token: the core's
                        // reconnect re-authorizes every channel.
                        if s.drop_link().is_some() {
                            let _ = link.send_close(1000, "token expired");
                        }
                        sink.closed(CloseReason::retry(
                            None,
                            format!("{reason}; reconnecting to re-authorize it"),
                        ));
                        return Flow::Stop;
                    }
                    if !token_expired {
                        sink.error(Some(channel), reason);
                    }
                    self.ctx.spawn_rejoin(&mut s, topic, self.id, token_expired);
                }
                Action::CloseLink(_) if closing => {}
                Action::CloseLink(reason) => {
                    if s.drop_link().is_some() {
                        let _ = link.send_close(1000, "channel error");
                    }
                    sink.closed(reason);
                    return Flow::Stop;
                }
                Action::Error { channel, error } => {
                    sink.error(channel, error);
                }
                Action::Ignored(why) => debug!(%why, "frame ignored"),
            }
        }
        Flow::Continue
    }

    fn on_close(&mut self, close: PeerClose) {
        let (code, why) = match (close.clean, close.code) {
            (true, Some(code)) => (Some(i64::from(code)), close.reason),
            (true, None) => (Some(1005), "closed by the server".to_owned()),
            (false, _) if close.reason.is_empty() => {
                (Some(1006), "the connection ended".to_owned())
            }
            (false, _) => (Some(1006), close.reason),
        };
        let ours = {
            let mut s = lock(&self.ctx.shared);
            let current = s.is_current(self.id);
            let closing = s.conn.as_ref().is_some_and(|c| c.closing);
            if current {
                s.drop_link();
            }
            current && !closing
        };
        if ours {
            self.sink.closed(CloseReason::retry(
                code,
                format!("connection closed: {why}"),
            ));
        }
    }
}

#[async_trait]
impl RealtimeProvider for SupabaseProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.presence = true;
        caps.presence_update = true;
        caps.history = false;
        caps.client_publish = true;
        caps.wildcards = false;
        caps.max_payload = self.config.max_payload;
        // Binary broadcasts exist in the 2.0.0 serializer only.
        caps.binary_payloads = self.config.vsn == ProtocolVersion::V2;
        caps.echo = relayport_core::Echo::Configurable;
        caps
    }

    /// Sent as `broadcast.self` on every join from now on (a channel whose options set `self`
    /// keeps its own choice).
    fn set_echo(&self, echo: bool) {
        let _ = self.echo.set(echo);
    }

    async fn connect(&self, sink: EventSink) -> Result<Session> {
        let mut link = self.tasks.lock().await;
        // Replacing a link (usually a dead one) is no goodbye: the channels rejoin.
        self.stop_tasks(&mut link, false).await;
        let url = self.config.socket_url()?;
        let config = match &self.link_config {
            Some(config) => config.clone(),
            None => LinkConfig::shared_default()?,
        };
        let first = link.connections == 0;
        let opened = match self.connector.clone() {
            None => {
                self.resolve(first).await?;
                transport::open(&url, &config).await
            }
            Some(connector) => {
                let io = connector(&url).await.map_err(|e| {
                    RealtimeError::Connection(format!(
                        "cannot open {}/websocket: {e}",
                        self.config.endpoint
                    ))
                })?;
                transport::open_over(&url, io, &config).await
            }
        };
        match opened {
            Ok(handshake) => Ok(self.start_link(&mut link, handshake, sink)),
            Err(e) => Err(self.handshake_failed(e)),
        }
    }

    /// A lost link's teardown: the close frame only (no `phx_leave`s, so a link the core
    /// replaces does not make this client's presence flap for the others).
    async fn disconnect(&self) -> Result<()> {
        let mut link = self.tasks.lock().await;
        self.stop_tasks(&mut link, false).await;
        Ok(())
    }

    /// `RealtimeClient::close()`/`disconnect()`: a `phx_leave` for every joined channel (the
    /// server drops this client's presence at once), then the close frame.
    async fn goodbye(&self) -> Result<()> {
        let mut link = self.tasks.lock().await;
        self.stop_tasks(&mut link, true).await;
        Ok(())
    }

    async fn subscribe(&self, channel: &Channel, options: &SubscribeOptions) -> Result<Subscribed> {
        check_channel(channel)?;
        let topic = topic_for(channel);
        let params = self.join_params(channel, options);
        let (join_ref, rx) = {
            let mut s = lock(&self.ctx.shared);
            if s.conn.is_none() {
                return Err(RealtimeError::Connection("not connected".into()));
            }
            if let Some(e) = s.dispatcher.get(&topic) {
                if e.channel != *channel {
                    return Err(RealtimeError::invalid_channel(
                        channel.to_string(),
                        format!(
                            "`{}` already uses topic `{topic}` on this connection",
                            e.channel
                        ),
                    ));
                }
                if e.state == JoinState::Joined {
                    return Ok(Subscribed::plain());
                }
            }
            let r = s.next_ref();
            let frame =
                ClientPush::Join(params.clone()).encode(self.config.vsn, Some(&r), &r, &topic)?;
            let mut entry = ChannelEntry::joining(channel.clone(), r.clone(), params.clone());
            if let Some(auth) = &options.auth {
                entry.authorized = auth.str_field("access_token").is_some();
                entry.auth_user = auth.str_field("presence_key").map(str::to_owned);
            }
            s.cancel_timer(&topic);
            s.dispatcher.insert(topic.clone(), entry);
            let (tx, rx) = oneshot::channel();
            s.pending.insert(r.clone(), tx);
            if let Err(e) = s.send(frame) {
                s.dispatcher.remove_if(&topic, &r);
                s.pending.remove(&r);
                return Err(e);
            }
            (r, rx)
        };
        let reply = match self
            .wait(&join_ref, Some(rx), self.config.join_timeout, "join reply")
            .await
        {
            Ok(reply) => reply,
            Err(e) => {
                let timed_out = matches!(e, RealtimeError::Timeout { .. });
                lock(&self.ctx.shared)
                    .dispatcher
                    .remove_if(&topic, &join_ref);
                if timed_out {
                    // As phoenix.js: leave the timed-out join so a late reply cannot revive it.
                    let _ = self.push(Some(&join_ref), &topic, &ClientPush::Leave, false);
                }
                return Err(e);
            }
        };
        match parse_join_reply(&reply, channel, &params.postgres_changes) {
            Ok(_) => {
                let mut s = lock(&self.ctx.shared);
                if let Some(link) = s.conn.as_ref().map(|c| c.id) {
                    self.ctx.schedule_refresh(&mut s, &topic, link);
                }
                drop(s);
                let recovery = Recovery::NotAttempted;
                Ok(Subscribed {
                    recovery,
                    position: None,
                })
            }
            Err(e) => {
                lock(&self.ctx.shared)
                    .dispatcher
                    .remove_if(&topic, &join_ref);
                Err(e)
            }
        }
    }

    async fn unsubscribe(&self, channel: &Channel) -> Result<()> {
        let topic = topic_for(channel);
        let join_ref = {
            let mut s = lock(&self.ctx.shared);
            match s.dispatcher.get_mut(&topic) {
                Some(e) if e.channel == *channel => {
                    e.state = JoinState::Leaving;
                    let join_ref = e.join_ref.clone();
                    s.cancel_timer(&topic);
                    join_ref
                }
                _ => return Ok(()),
            }
        };
        let result = match self.push(Some(&join_ref), &topic, &ClientPush::Leave, true) {
            Ok((r, rx)) => self
                .wait(&r, rx, self.config.push_timeout, "leave reply")
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        lock(&self.ctx.shared)
            .dispatcher
            .remove_if(&topic, &join_ref);
        if let Err(e) = result {
            // The channel is gone on our side either way; the server drops it with the socket.
            debug!(%channel, error = %e, "leave without a reply");
        }
        Ok(())
    }

    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        self.publish_with(message, None).await
    }

    async fn presence_enter(&self, channel: &Channel, data: Value) -> Result<()> {
        self.presence_push(channel, ClientPush::Track(data)).await
    }

    async fn presence_update(&self, channel: &Channel, data: Value) -> Result<()> {
        self.presence_push(channel, ClientPush::Track(data)).await
    }

    async fn presence_leave(&self, channel: &Channel) -> Result<()> {
        self.presence_push(channel, ClientPush::Untrack).await
    }

    async fn presence_members(&self, channel: &Channel) -> Result<Vec<PresenceMember>> {
        let topic = topic_for(channel);
        let s = lock(&self.ctx.shared);
        match s.dispatcher.get(&topic) {
            Some(e) if e.channel == *channel => Ok(e.presence.members()),
            _ => Err(Self::not_joined(channel)),
        }
    }

    async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        let (r, rx) = self.push(None, PHOENIX_TOPIC, &ClientPush::Heartbeat, true)?;
        // No timeout of our own: the core's heartbeat timeout bounds this wait and closes
        // the link when it passes.
        let reply = self.ctx.wait(&r, rx, None, "heartbeat reply").await?;
        if reply.is_ok() {
            Ok(start.elapsed())
        } else {
            Err(RealtimeError::Protocol(format!(
                "heartbeat refused: {}",
                reply.reason()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_urls() {
        let mut c = SupabaseConfig::with_endpoint("ws://localhost:4000/socket/", "k.e.y");
        c.vsn = ProtocolVersion::V1;
        c.log_level = Some("info".into());
        assert_eq!(
            c.socket_url().unwrap(),
            "ws://localhost:4000/socket/websocket?apikey=k.e.y&log_level=info&vsn=1.0.0"
        );
        assert_eq!(c.rest_base().unwrap(), "http://localhost:4000/socket");
        let bad = SupabaseConfig::with_endpoint("ftp://x", "k");
        assert_eq!(
            bad.socket_url().unwrap_err().kind(),
            relayport_core::ErrorKind::Config
        );
        assert_eq!(
            SupabaseConfig::with_endpoint("not a url", "k")
                .socket_url()
                .unwrap_err()
                .kind(),
            relayport_core::ErrorKind::Config
        );
    }

    #[test]
    fn secrets_are_redacted_from_debug() {
        let mut c = SupabaseConfig::new("https://abc.supabase.co", "anon-key-value");
        c.access_token = Some("user-jwt-value".into());
        let p = SupabaseProvider::new(c);
        let shown = format!("{p:?} {:?}", p.access_token_handle());
        assert!(!shown.contains("anon-key-value") && !shown.contains("user-jwt-value"));
    }

    #[test]
    fn the_runtimes_echo_choice_becomes_broadcast_self_unless_the_channel_sets_it() {
        use relayport_core::RealtimeProvider;
        let cfg = || SupabaseConfig::new("https://abc.supabase.co", "anon");
        let room = Channel::public("room");
        let none = SubscribeOptions::default();
        let direct = SupabaseProvider::new(cfg()).join_params(&room, &none);
        assert!(
            direct
                .payload_json()
                .contains(r#""broadcast":{"ack":false,"self":false}"#)
        );
        let on = SupabaseProvider::new(cfg());
        on.set_echo(true);
        let json = on.join_params(&room, &none).payload_json();
        assert!(
            json.contains(r#""broadcast":{"self":true,"ack":false}"#),
            "{json}"
        );
        let off = SupabaseProvider::new(cfg());
        off.set_echo(false);
        assert_eq!(
            off.join_params(&room, &none).payload_json(),
            direct.payload_json()
        );
        // A channel that sets `self` keeps it.
        let opts = ChannelOptions {
            broadcast: Some(crate::join::BroadcastOptions {
                self_broadcast: Some(false),
                ack: Some(true),
                replay: None,
            }),
            ..Default::default()
        };
        let own = SupabaseProvider::new(cfg()).with_channel_options(room.clone(), opts);
        own.set_echo(true);
        let json = own.join_params(&room, &none).payload_json();
        assert!(
            json.contains(r#""broadcast":{"self":false,"ack":true}"#),
            "{json}"
        );
    }

    #[test]
    fn join_params_follow_the_naming_rule_and_the_authorization() {
        let p = SupabaseProvider::new(SupabaseConfig::new("https://abc.supabase.co", "anon"));
        let auth = SubscribeOptions {
            auth: Some(relayport_core::ChannelAuth(serde_json::json!({
                "access_token": "minted", "presence_key": "u1"
            }))),
            ..Default::default()
        };
        let presence = p.join_params(&Channel::presence("room"), &auth);
        // Issue 15 item 3: presence without privacy by default.
        assert!(!presence.private && presence.presence_enabled);
        let mut private_presence = SupabaseConfig::new("https://abc.supabase.co", "anon");
        private_presence.presence_private = true;
        let pp =
            SupabaseProvider::new(private_presence).join_params(&Channel::presence("room"), &auth);
        assert!(pp.private && pp.presence_enabled);
        assert_eq!(presence.presence_key, "u1");
        assert_eq!(presence.access_token.as_deref(), Some("minted"));
        let public = p.join_params(&Channel::public("room"), &SubscribeOptions::default());
        assert!(!public.private && !public.presence_enabled);
        assert_eq!(public.access_token, None);
        p.access_token_handle().set("jwt");
        let private = p.join_params(&Channel::private("room"), &SubscribeOptions::default());
        assert!(private.private && !private.presence_enabled);
        assert_eq!(private.access_token.as_deref(), Some("jwt"));
    }

    /// Issue 17: `subscribe_with` options (the core hands them to every subscribe) decide the
    /// join over the provider's own per-channel options.
    #[test]
    fn subscribe_with_channel_options_decide_the_join() {
        use crate::postgres::{PostgresChangesFilter, PostgresEvent};
        let filter = PostgresChangesFilter::new(PostgresEvent::Insert, "public").table("todos");
        let configured = PostgresChangesFilter::new(PostgresEvent::Delete, "public");
        let p = SupabaseProvider::new(SupabaseConfig::new("https://abc.supabase.co", "anon"))
            .with_postgres_changes(Channel::public("db"), [configured.clone()]);
        let options = ChannelOptions {
            postgres_changes: vec![filter.clone()],
            ..ChannelOptions::default()
        };
        let with = SubscribeOptions {
            extensions: relayport_core::SubscriptionOptions::new().with(options),
            ..Default::default()
        };
        assert_eq!(
            p.join_params(&Channel::public("db"), &with)
                .postgres_changes,
            vec![filter]
        );
        assert_eq!(
            p.join_params(&Channel::public("db"), &SubscribeOptions::default())
                .postgres_changes,
            vec![configured]
        );
    }
}

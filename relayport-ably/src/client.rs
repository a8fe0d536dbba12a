//! [`AblyRealtime`]: the Ably realtime client as a [`RealtimeProvider`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relayport_core::transport::{self, LinkConfig, OpenError, Received};
use relayport_core::{
    Capabilities, Channel, EventSink, HistoryPage, Message, OutboundMessage, Position,
    PresenceMember, RealtimeError, RealtimeProvider, Recovery, Result, Session, SubscribeOptions,
    Subscribed, async_trait,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tracing::debug;

use crate::PROVIDER_NAME;
use crate::channels::ably_name;
use crate::config::AblyConfig;
use crate::connection::{Pending, PublishOutcome, Reader, Shared, lock, to_message};
use crate::encoding::{Payload, check_size, message_size};
use crate::errors::{Action, Context, classify, not_renewable, to_realtime_error};
use crate::protocol::{
    AuthDetails, ErrorInfo, PROTOCOL_VERSION, ProtocolMessage, WireMessage, WirePresence, action,
    flags, presence_action,
};
use crate::rest::{HistoryQuery, encode_component, requests};
use crate::token::AuthResponse;

/// The default `maxMessageSize` until the server says otherwise.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 65536;

/// A message to publish with Ably-specific fields.
#[derive(Debug, Clone, PartialEq)]
pub struct AblyMessage {
    /// The event name.
    pub name: Option<String>,
    /// The payload.
    pub data: Payload,
    /// Extras (`headers`, …).
    pub extras: Option<Value>,
    /// An id (idempotency).
    pub id: Option<String>,
}

impl AblyMessage {
    /// A message with a name and payload.
    pub fn new(name: impl Into<String>, data: Payload) -> Self {
        Self {
            name: Some(name.into()),
            data,
            extras: None,
            id: None,
        }
    }

    fn to_wire(&self) -> WireMessage {
        let (data, encoding) = self.data.encode();
        WireMessage {
            id: self.id.clone(),
            name: self.name.clone(),
            data,
            extras: self.extras.clone(),
            action: Some(0),
            encoding,
            ..WireMessage::default()
        }
    }
}

/// A publish in flight: await [`PublishHandle::outcome`] for the ACK's serials or the NACK.
#[derive(Debug)]
pub struct PublishHandle {
    rx: oneshot::Receiver<PublishOutcome>,
    link: watch::Receiver<bool>,
}

impl PublishHandle {
    /// The ACK's serials, or the NACK's error. If the link drops before the server answered,
    /// the publish stays queued in the provider, is resent on the next connection (`RTN19a`)
    /// and this resolves when that connection acknowledges it.
    pub async fn outcome(self) -> PublishOutcome {
        self.rx.await.unwrap_or_else(|_| {
            Err(RealtimeError::Closed(
                "the publish was abandoned (connection closed or expired)".into(),
            ))
        })
    }
}

/// The recovery key (`createRecoveryKey`): what a new process needs to recover this
/// connection (`RTN16`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryKey {
    /// The connection key.
    pub connection_key: String,
    /// The next msgSerial.
    pub msg_serial: u64,
    /// channelSerial per attached channel.
    pub channel_serials: BTreeMap<String, String>,
}

/// How long a goodbye waits for the server's `CLOSED` after sending `CLOSE`.
pub const CLOSED_WAIT: Duration = Duration::from_secs(2);

/// The Ably realtime client (protocol v6, JSON).
///
/// Resume state (connection key, msgSerial, unacknowledged publishes, channel serials) lives
/// here across `connect` calls, so every reconnect attempts a resume.
///
/// ```
/// use relayport_ably::{AblyConfig, AblyRealtime, Credentials};
/// use relayport_ably::token::ApiKey;
/// let cfg = AblyConfig::new(Credentials::Key(ApiKey::parse("appId.keyId:secret").unwrap())).client_id("u1");
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let provider = AblyRealtime::new(cfg);
/// let client = relayport_core::RealtimeClient::builder(provider).client_id("u1").build();
/// # drop(client);
/// # });
/// ```
pub struct AblyRealtime {
    cfg: Arc<AblyConfig>,
    shared: Arc<Mutex<Shared>>,
    /// The current link; held across an await by `connect`, `disconnect` and `close` only,
    /// so those three never overlap while the other calls run alongside each other.
    link: tokio::sync::Mutex<Option<transport::Link>>,
    recover: Mutex<Option<RecoveryKey>>,
    last_url: Mutex<Option<String>>,
    updates: Arc<watch::Sender<u64>>,
    /// When the server was last heard from (any frame on the current link).
    activity: Arc<watch::Sender<Instant>>,
    /// The injected TLS configuration and HTTP client, if any (otherwise the shared default).
    link_config: Option<LinkConfig>,
    /// Whether this connection receives its own publishes: `AblyConfig::echo`, replaced by
    /// the client runtime's choice (`set_echo`).
    echo: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for AblyRealtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AblyRealtime")
            .field("host", &self.cfg.realtime_host)
            .finish()
    }
}

impl AblyRealtime {
    /// A client for `cfg`; nothing happens until `connect`.
    pub fn new(cfg: AblyConfig) -> Self {
        let cfg_echo = cfg.echo;
        let recover = cfg
            .recover
            .as_deref()
            .and_then(|k| serde_json::from_str::<RecoveryKey>(k).ok());
        Self {
            cfg: Arc::new(cfg),
            shared: Arc::new(Mutex::new(Shared::default())),
            link: tokio::sync::Mutex::new(None),
            recover: Mutex::new(recover),
            last_url: Mutex::new(None),
            updates: Arc::new(watch::channel(0).0),
            activity: Arc::new(watch::channel(Instant::now()).0),
            link_config: None,
            echo: std::sync::atomic::AtomicBool::new(cfg_echo),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AblyConfig {
        &self.cfg
    }

    /// The current connection id.
    pub fn connection_id(&self) -> Option<String> {
        lock(&self.shared).connection_id.clone()
    }

    /// Counts CONNECTED messages, including the in-band ones that follow a re-authentication
    /// (ably-js's connection `update` event).
    pub fn connection_updates(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }

    /// The current connection key.
    pub fn connection_key(&self) -> Option<String> {
        lock(&self.shared).connection_key.clone()
    }

    /// The path and query of the last connection attempt.
    pub fn last_url(&self) -> Option<String> {
        self.last_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The recovery key of this connection (`createRecoveryKey`), as JSON.
    pub fn recovery_key(&self) -> Option<String> {
        let s = lock(&self.shared);
        let key = RecoveryKey {
            connection_key: s.connection_key.clone()?,
            msg_serial: s.msg_serial,
            channel_serials: s
                .channels
                .iter()
                .filter_map(|(n, c)| c.serial.clone().map(|s| (n.clone(), s)))
                .collect(),
        };
        serde_json::to_string(&key).ok()
    }

    fn request_timeout(&self) -> Duration {
        self.cfg.realtime_request_timeout
    }

    fn url(&self, token: Option<&str>, resume: Option<&str>, recover: Option<&str>) -> String {
        let mut q: Vec<(&str, String)> = Vec::new();
        match (&self.cfg.credentials, token) {
            (crate::Credentials::Key(k), _) => q.push(("key", k.full())),
            (_, Some(t)) => q.push(("access_token", t.to_owned())),
            _ => {}
        }
        if let Some(r) = resume {
            q.push(("resume", r.to_owned()));
        } else if let Some(r) = recover {
            q.push(("recover", r.to_owned()));
        }
        if let Some(c) = &self.cfg.client_id {
            q.push(("clientId", c.clone()));
        }
        if !self.echo.load(std::sync::atomic::Ordering::Relaxed) {
            q.push(("echo", "false".into()));
        }
        q.push(("format", "json".into()));
        // Server HEARTBEAT frames, not WebSocket pings: the link layer answers pings itself,
        // so only protocol frames count as activity for the idle check (`RTN23b`).
        q.push(("heartbeats", "true".into()));
        q.push(("v", PROTOCOL_VERSION.into()));
        q.push(("agent", crate::agent()));
        for (k, v) in &self.cfg.transport_params {
            q.push((k, v.clone()));
        }
        let qs: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        format!("/?{}", qs.join("&"))
    }

    /// Tears the current link down without a goodbye (the server keeps the connection for a
    /// resume): a close frame, the link layer's grace, then its tasks stop.
    async fn stop_link(&self, slot: &mut Option<transport::Link>) {
        let aux: Vec<JoinHandle<()>> = std::mem::take(&mut lock(&self.shared).aux_tasks);
        for t in aux {
            t.abort();
        }
        {
            let mut s = lock(&self.shared);
            if s.writer.is_some() {
                s.link_down();
            }
        }
        if let Some(link) = slot.take() {
            link.close(1000, "", transport::DEFAULT_CLOSE_GRACE).await;
        }
    }

    /// The token for the next connection, fetching a new one when needed.
    async fn token_for_connect(&self) -> Result<Option<String>> {
        let (cached, stale) = {
            let s = lock(&self.shared);
            (s.token.clone(), s.token_stale)
        };
        if let Some(t) = cached.filter(|_| !stale) {
            return Ok(Some(t));
        }
        if stale && !self.cfg.credentials.renewable() {
            return Err(not_renewable(&ErrorInfo::new(40142, 401, "token rejected")));
        }
        let token = crate::auth::fetch_token(&self.cfg, &self.link_config()?).await?;
        let mut s = lock(&self.shared);
        s.token = token.clone();
        s.token_stale = false;
        Ok(token)
    }

    /// The link configuration: the injected one, or the process-wide default.
    fn link_config(&self) -> Result<LinkConfig> {
        match &self.link_config {
            Some(config) => Ok(config.clone()),
            None => LinkConfig::shared_default(),
        }
    }

    /// Opens the WebSocket through the link layer. No timeout here: the core's connect
    /// timeout bounds the whole connect.
    async fn open(&self, path: &str) -> Result<transport::Handshake> {
        let scheme = if self.cfg.tls { "wss" } else { "ws" };
        let port = self
            .cfg
            .realtime_port
            .unwrap_or(if self.cfg.tls { 443 } else { 80 });
        let url = format!("{scheme}://{}:{port}{path}", self.cfg.realtime_host);
        match transport::open(&url, &self.link_config()?).await {
            Ok(handshake) => Ok(handshake),
            Err(OpenError::Refused { status, body }) => {
                // Ably answers a refused upgrade with `{"error": ErrorInfo}`.
                let info = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| serde_json::from_value::<ErrorInfo>(v["error"].clone()).ok());
                match info {
                    Some(info) => Err(self.connect_refused(Context::ConnectionError, &info)),
                    None => Err(RealtimeError::Connection(format!(
                        "ably websocket: the upgrade was answered with HTTP {status}"
                    ))),
                }
            }
            Err(OpenError::Failed(e)) => Err(e),
        }
    }

    /// Registers and sends a protocol message that the server acknowledges.
    fn send_acked(&self, channel: &str, mut frame: ProtocolMessage) -> Result<PublishHandle> {
        let (tx, rx) = oneshot::channel();
        let mut s = lock(&self.shared);
        if s.writer.is_none() {
            return Err(RealtimeError::Connection("not connected".into()));
        }
        let link = s
            .link_up
            .as_ref()
            .map(watch::Sender::subscribe)
            .ok_or_else(|| RealtimeError::Connection("not connected".into()))?;
        let serial = s.msg_serial;
        frame.msg_serial = Some(serial);
        s.send(&frame)?;
        s.msg_serial += 1;
        s.pending.insert(
            serial,
            Pending {
                channel: channel.to_owned(),
                frame,
                waiter: Some(tx),
            },
        );
        Ok(PublishHandle { rx, link })
    }

    /// Publishes messages in one protocol message without waiting for the ACK.
    pub fn publish_messages(
        &self,
        channel: &Channel,
        messages: &[AblyMessage],
    ) -> Result<PublishHandle> {
        let name = ably_name(channel)?;
        let limit = {
            let s = lock(&self.shared);
            s.details
                .max_message_size
                .map_or(DEFAULT_MAX_MESSAGE_SIZE, |m| m as usize)
        };
        let total = messages
            .iter()
            .map(|m| message_size(m.name.as_deref(), None, m.extras.as_ref(), &m.data))
            .sum();
        check_size(total, limit)?;
        let mut frame = ProtocolMessage::new(action::MESSAGE);
        frame.channel = Some(name.clone());
        frame.messages = Some(messages.iter().map(AblyMessage::to_wire).collect());
        self.send_acked(&name, frame)
    }

    fn presence_frame(
        &self,
        channel: &Channel,
        act: i64,
        data: Option<&Value>,
    ) -> Result<PublishHandle> {
        let name = ably_name(channel)?;
        let (data, encoding) = match data {
            Some(v) => Payload::from_value(v)?.encode(),
            None => (None, None),
        };
        let mut frame = ProtocolMessage::new(action::PRESENCE);
        frame.channel = Some(name.clone());
        frame.presence = Some(vec![WirePresence {
            data,
            action: Some(act),
            encoding,
            ..WirePresence::default()
        }]);
        self.send_acked(&name, frame)
    }

    /// Waits for the ACK of a publish made through the trait. If the link drops first, the
    /// publish is retained for resending on the next connection and this returns `Ok`: the core
    /// must not queue it a second time (a later NACK is reported through the sink). No timer
    /// of its own (`RTN7a`): the core's request timeout bounds the call.
    async fn await_ack(&self, handle: PublishHandle) -> Result<()> {
        let PublishHandle { rx, mut link } = handle;
        let outcome = PublishHandle {
            rx,
            link: link.clone(),
        }
        .outcome();
        let link_lost = async move {
            let _ = link.wait_for(|up| !*up).await;
        };
        tokio::select! {
            r = outcome => r.map(|_| ()),
            () = link_lost => Ok(()),
        }
    }

    /// Fetches a new token from the configured source and re-authenticates the live
    /// connection in-band (`AUTH`, ably-js `authorize()`); resolves on the server's CONNECTED.
    /// Bounded by `realtime_request_timeout` (this call does not go through the core).
    pub async fn reauthorize(&self) -> Result<()> {
        let limit = self.request_timeout();
        match crate::auth::fetch_token(&self.cfg, &self.link_config()?).await? {
            Some(token) => match timeout(limit, self.send_auth(token)).await {
                Ok(r) => r,
                Err(_) => Err(RealtimeError::timeout("ably AUTH", limit)),
            },
            None => Err(RealtimeError::Unsupported(
                "re-authentication of a basic-auth (key) connection".into(),
            )),
        }
    }

    async fn send_auth(&self, token: String) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = lock(&self.shared);
            let mut frame = ProtocolMessage::new(action::AUTH);
            frame.auth = Some(AuthDetails {
                access_token: Some(token.clone()),
            });
            s.send(&frame)?;
            s.token = Some(token);
            s.auth_waiter = Some(tx);
            s.authorizing = true;
        }
        // Cleared however this ends, also when the caller (the core's timeout) drops it.
        let _authorizing = Authorizing(&self.shared);
        rx.await
            .unwrap_or_else(|_| Err(RealtimeError::Connection("link lost during AUTH".into())))
    }

    /// Exchanges a channel authorization (a TokenRequest, TokenDetails or token from the
    /// application's auth endpoint) for a token and re-authenticates in-band (`AUTH`).
    ///
    /// Skipped when the connection's own credentials carry the capability (a key, basic or
    /// token auth signed here: the key's capability covers every channel, and a narrower
    /// per-channel token would replace it and fail the other channels), and when this channel
    /// was already authorized on this connection (a successful resume keeps the token).
    async fn apply_channel_auth(&self, name: &str, auth: &Value) -> Result<()> {
        if auth.is_null() || self.cfg.credentials.holds_key() {
            return Ok(());
        }
        if lock(&self.shared)
            .channels
            .get(name)
            .is_some_and(|c| c.authorized)
        {
            return Ok(());
        }
        let response = AuthResponse::from_json(auth)?;
        self.check_client_id(name, &response)?;
        let token = crate::auth::resolve(&self.cfg, response, &self.link_config()?).await?;
        let current = lock(&self.shared).token.as_deref() == Some(token.as_str());
        if !current {
            self.send_auth(token).await?;
        }
        lock(&self.shared)
            .channels
            .entry(name.to_owned())
            .or_default()
            .authorized = true;
        Ok(())
    }

    /// A channel token must carry the connection's clientId: Ably refuses an AUTH that changes
    /// it (40102) and fails the whole connection. Refused here, for this channel only.
    fn check_client_id(&self, name: &str, response: &AuthResponse) -> Result<()> {
        let theirs = match response {
            AuthResponse::Request(r) => r.client_id.as_deref(),
            AuthResponse::Details(d) => d.client_id.as_deref(),
            AuthResponse::Token(_) => return Ok(()),
        };
        let ours = self.cfg.client_id.as_deref();
        match (theirs, ours) {
            (None | Some("*"), _) => Ok(()),
            (Some(t), Some(o)) if t == o => Ok(()),
            (Some(t), o) => Err(RealtimeError::Forbidden {
                channel: name.to_owned(),
                reason: format!(
                    "the channel token is bound to clientId `{t}` but the connection's clientId is {}: \
                     Ably would fail the connection (40102); sign channel tokens with the connection's clientId",
                    o.map_or("unset".to_owned(), |o| format!("`{o}`"))
                ),
            }),
        }
    }

    /// The TLS configuration to open `wss` links with; default:
    /// [`LinkConfig::shared_default`] (ring, the compiled-in webpki roots). Inject one to trust
    /// a private CA or the system store.
    pub fn with_link_config(mut self, config: LinkConfig) -> Self {
        self.link_config = Some(config);
        self
    }

    /// One HEARTBEAT round trip (ably-js `connection.ping()`, `RTN13`): a HEARTBEAT with a
    /// random id, answered by the server with the same id within `realtime_request_timeout`.
    /// The core never calls this (its liveness check is [`RealtimeProvider::ping`]).
    pub async fn ping_server(&self) -> Result<Duration> {
        let id: String = (0..16)
            .map(|_| char::from(b'0' + fastrand::u8(0..10)))
            .collect();
        let (tx, rx) = oneshot::channel();
        {
            let mut s = lock(&self.shared);
            let mut frame = ProtocolMessage::new(action::HEARTBEAT);
            frame.id = Some(id.clone());
            s.send(&frame)?;
            s.pings.insert(id, tx);
        }
        let start = Instant::now();
        match timeout(self.request_timeout(), rx).await {
            Ok(Ok(())) => Ok(start.elapsed()),
            Ok(Err(_)) => Err(RealtimeError::Connection("link lost during ping".into())),
            Err(_) => Err(RealtimeError::timeout(
                "ably HEARTBEAT",
                self.request_timeout(),
            )),
        }
    }

    /// Closes the Ably connection for good (`CLOSE`, then at most [`CLOSED_WAIT`] for
    /// `CLOSED`): the server discards its state (others see this client's presence leave at
    /// once), so the next `connect` starts a fresh connection.
    pub async fn close(&self) -> Result<()> {
        let mut link = self.link.lock().await;
        let (tx, rx) = oneshot::channel();
        let sent = {
            let mut s = lock(&self.shared);
            s.goodbye = true;
            s.closed_waiter = Some(tx);
            s.send(&ProtocolMessage::new(action::CLOSE)).is_ok()
        };
        if sent {
            let _ = timeout(self.request_timeout().min(CLOSED_WAIT), rx).await;
        }
        self.stop_link(&mut link).await;
        let mut s = lock(&self.shared);
        s.connection_id = None;
        s.connection_key = None;
        s.msg_serial = 0;
        s.pending.clear();
        s.channels.clear();
        s.goodbye = false;
        Ok(())
    }

    fn history_messages(channel: &Channel, items: Vec<Value>) -> Result<Vec<Message>> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let m: WireMessage = serde_json::from_value(item)
                .map_err(|e| RealtimeError::Protocol(format!("history item: {e}")))?;
            let (message, error) = to_message(channel, None, None, None, 0, m);
            if let Some(e) = error {
                debug!(%e, "history item left partly encoded");
            }
            out.push(message);
        }
        Ok(out)
    }
}

#[async_trait]
impl RealtimeProvider for AblyRealtime {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.presence = true;
        caps.presence_update = true;
        caps.history = true;
        caps.history_pages = true;
        caps.client_publish = true;
        caps.wildcards = false;
        caps.max_payload = DEFAULT_MAX_MESSAGE_SIZE;
        caps.binary_payloads = true;
        caps.echo = relayport_core::Echo::Configurable;
        caps
    }

    /// Sent as the `echo` connection parameter (`echo=false` when off) from the next connect.
    fn set_echo(&self, echo: bool) {
        self.echo.store(echo, std::sync::atomic::Ordering::Relaxed);
    }

    async fn connect(&self, sink: EventSink) -> Result<Session> {
        let mut link = self.link.lock().await;
        self.stop_link(&mut link).await;
        let token = self.token_for_connect().await?;
        let (resume, previous_id, recover) = {
            let mut s = lock(&self.shared);
            // A goodbye that was abandoned half-way does not silence this link's end.
            s.goodbye = false;
            if s.failed {
                // A fatal error discarded the connection: start afresh.
                s.failed = false;
                s.connection_id = None;
                s.connection_key = None;
                s.msg_serial = 0;
                s.pending.clear();
            }
            let expired = match (s.disconnected_at, s.details.connection_state_ttl) {
                (Some(at), Some(ttl)) => at.elapsed() > Duration::from_millis(ttl),
                _ => false,
            };
            if expired {
                // Past connectionStateTtl the server has discarded the connection (RTN7e):
                // its unacknowledged publishes fail; the resume attempt below lets the server
                // confirm (spec 6.1 always attempts it).
                let failed: Vec<Pending> = std::mem::take(&mut s.pending).into_values().collect();
                for p in failed {
                    let err = RealtimeError::Connection(format!(
                        "ably error 80002: publish on `{}` lost: connection suspended past connectionStateTtl",
                        p.channel
                    ));
                    let unheard = match p.waiter {
                        Some(w) => w.send(Err(err)).err(),
                        None => Some(Err(err)),
                    };
                    if let Some(Err(err)) = unheard {
                        sink.error(crate::channels::from_ably_name(&p.channel).ok(), err);
                    }
                }
            }
            let recover = if s.connection_key.is_none() {
                self.recover
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            } else {
                None
            };
            (s.connection_key.clone(), s.connection_id.clone(), recover)
        };
        let path = self.url(
            token.as_deref(),
            resume.as_deref(),
            recover.as_ref().map(|r| r.connection_key.as_str()),
        );
        *self.last_url.lock().unwrap_or_else(|p| p.into_inner()) = Some(path.clone());
        let mut handshake = self.open(&path).await?;
        // Wait for CONNECTED (the core's connect timeout bounds this).
        let connected = loop {
            let text = match handshake.recv().await {
                Ok(Received::Text(t)) => t,
                Ok(Received::Binary(_)) => continue,
                Err(close) => {
                    return Err(RealtimeError::Connection(format!(
                        "ably error 80003: the transport closed before CONNECTED ({close})"
                    )));
                }
            };
            let pm = match ProtocolMessage::parse(&text) {
                Ok(pm) => pm,
                Err(e) => {
                    sink.error(
                        None,
                        RealtimeError::Protocol(format!("malformed frame: {e}")),
                    );
                    return Err(RealtimeError::Connection(format!(
                        "protocol error before CONNECTED: {e}"
                    )));
                }
            };
            match pm.action {
                action::CONNECTED => break pm,
                action::ERROR | action::DISCONNECTED => {
                    let error = pm
                        .error
                        .unwrap_or_else(|| ErrorInfo::new(80000, 400, "refused"));
                    let context = if pm.action == action::ERROR {
                        Context::ConnectionError
                    } else {
                        Context::DisconnectedWhileConnecting
                    };
                    return Err(self.connect_refused(context, &error));
                }
                other => debug!(action = other, "frame before CONNECTED ignored"),
            }
        };
        let Some(details) = connected.connection_details.clone() else {
            return Err(RealtimeError::Connection(
                "protocol error: CONNECTED without connectionDetails".into(),
            ));
        };
        let new_id = connected.connection_id.clone().unwrap_or_default();
        let resumed;
        {
            let mut s = lock(&self.shared);
            let attempted = resume.is_some() || recover.is_some();
            resumed = resume.is_some()
                && previous_id.as_deref() == Some(new_id.as_str())
                && connected.error.is_none();
            if let (Some(r), None) = (&recover, &connected.error) {
                // Recovered: continue the msgSerial and channel serials of the key (RTN16f).
                s.msg_serial = r.msg_serial;
                for (name, serial) in &r.channel_serials {
                    s.channels.entry(name.clone()).or_default().serial = Some(serial.clone());
                }
            } else if attempted && !resumed && resume.is_some() {
                // Resume failed (RTN15c7): msgSerial restarts, pending publishes renumbered.
                let pending: Vec<Pending> = std::mem::take(&mut s.pending).into_values().collect();
                s.msg_serial = 0;
                for mut p in pending {
                    let serial = s.msg_serial;
                    p.frame.msg_serial = Some(serial);
                    s.pending.insert(serial, p);
                    s.msg_serial += 1;
                }
            }
            if previous_id.as_deref() != Some(new_id.as_str()) {
                // A new connection (a failed resume, even if a channel's re-attach later says
                // RESUMED): the server holds neither our presence entries (RTP17i) nor the
                // channel authorizations of the old one.
                for ch in s.channels.values_mut() {
                    ch.entered = None;
                    ch.authorized = false;
                }
            }
            *self.recover.lock().unwrap_or_else(|p| p.into_inner()) = None;
            s.resumed = resumed;
            s.connection_id = Some(new_id.clone());
            if details.connection_key.is_some() {
                s.connection_key = details.connection_key.clone();
            }
            s.details = details.clone();
            s.disconnected_at = None;
            s.writer = Some(handshake.sender().clone());
            s.link_up = Some(watch::channel(true).0);
            // Resend what was never acknowledged, before anything else (RTN19a).
            let frames: Vec<ProtocolMessage> =
                s.pending.values().map(|p| p.frame.clone()).collect();
            for f in &frames {
                s.send(f)?;
            }
        }
        if let Some(e) = &connected.error {
            sink.error(None, to_realtime_error(e, None));
        }
        let now = Instant::now();
        self.activity.send_replace(now);
        let reader = Reader {
            shared: self.shared.clone(),
            cfg: self.cfg.clone(),
            sink,
            updates: self.updates.clone(),
            activity: self.activity.clone(),
            connected_at: now,
            link_config: self.link_config()?,
        };
        self.updates.send_modify(|n| *n += 1);
        *link = Some(handshake.start(reader));
        Ok(Session::new(new_id)
            .with_heartbeat_interval(
                details
                    .max_idle_interval
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis),
            )
            .with_max_payload(details.max_message_size.map(|m| m as usize))
            .with_resumed(resumed))
    }

    async fn disconnect(&self) -> Result<()> {
        let mut link = self.link.lock().await;
        self.stop_link(&mut link).await;
        Ok(())
    }

    /// `CLOSE`, a brief wait for `CLOSED`, then the link's teardown ([`AblyRealtime::close`]):
    /// others see this client's presence leave at once and the server discards its state.
    async fn goodbye(&self) -> Result<()> {
        AblyRealtime::close(self).await
    }

    async fn subscribe(&self, channel: &Channel, options: &SubscribeOptions) -> Result<Subscribed> {
        let name = ably_name(channel)?;
        if let Some(auth) = &options.auth {
            self.apply_channel_auth(&name, &auth.0).await?;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut s = lock(&self.shared);
            // `subscribe_with` options first, then the configuration's for this channel.
            let opts = options
                .extensions
                .get::<crate::config::ChannelOptions>()
                .or_else(|| self.cfg.channel_options.get(&name));
            let ch = s.channels.entry(name.clone()).or_default();
            let mut frame = ProtocolMessage::new(action::ATTACH);
            frame.channel = Some(name.clone());
            frame.channel_serial = ch.serial.clone();
            if let Some(o) = opts {
                if !o.params.is_empty() {
                    frame.params = Some(o.params.clone());
                }
                let modes = o.modes.iter().fold(0, |acc, m| acc | m.flag());
                if modes != 0 {
                    frame.flags = Some(modes);
                }
            }
            ch.attach_waiter = Some(tx);
            s.send(&frame)?;
        }
        // No timer of its own: the core's request timeout bounds the call.
        let flags_value = match rx.await {
            Ok(r) => r?,
            Err(_) => return Err(RealtimeError::Connection("link lost during ATTACH".into())),
        };
        let recovery = match &options.since {
            Some(_) if flags_value & flags::RESUMED != 0 => Recovery::Recovered,
            _ => Recovery::NotAttempted,
        };
        Ok(Subscribed {
            recovery,
            position: None,
        })
    }

    async fn unsubscribe(&self, channel: &Channel) -> Result<()> {
        let name = ably_name(channel)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut s = lock(&self.shared);
            let mut frame = ProtocolMessage::new(action::DETACH);
            frame.channel = Some(name.clone());
            s.channels.entry(name.clone()).or_default().detach_waiter = Some(tx);
            s.send(&frame)?;
        }
        rx.await
            .unwrap_or_else(|_| Err(RealtimeError::Connection("link lost during DETACH".into())))
    }

    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        if message.exclude_socket_id.is_some() {
            return Err(RealtimeError::Unsupported(
                "excluding a connection from an Ably publish".into(),
            ));
        }
        let mut m = AblyMessage::new(message.event.clone(), Payload::from_core(&message.data)?);
        m.id = message.id.clone();
        let handle = self.publish_messages(&message.channel, &[m])?;
        self.await_ack(handle).await
    }

    async fn presence_enter(&self, channel: &Channel, data: Value) -> Result<()> {
        let name = ably_name(channel)?;
        let already = lock(&self.shared)
            .channels
            .get(&name)
            .is_some_and(|c| c.entered.as_ref() == Some(&data));
        if already {
            // The server kept our entry across a resumed attach: nothing to re-enter.
            return Ok(());
        }
        let handle = self.presence_frame(channel, presence_action::ENTER, Some(&data))?;
        self.await_ack(handle).await?;
        lock(&self.shared).channels.entry(name).or_default().entered = Some(data);
        Ok(())
    }

    async fn presence_update(&self, channel: &Channel, data: Value) -> Result<()> {
        let name = ably_name(channel)?;
        let handle = self.presence_frame(channel, presence_action::UPDATE, Some(&data))?;
        self.await_ack(handle).await?;
        lock(&self.shared).channels.entry(name).or_default().entered = Some(data);
        Ok(())
    }

    async fn presence_leave(&self, channel: &Channel) -> Result<()> {
        let name = ably_name(channel)?;
        let handle = self.presence_frame(channel, presence_action::LEAVE, None)?;
        self.await_ack(handle).await?;
        if let Some(c) = lock(&self.shared).channels.get_mut(&name) {
            c.entered = None;
        }
        Ok(())
    }

    async fn presence_members(&self, channel: &Channel) -> Result<Vec<PresenceMember>> {
        let name = ably_name(channel)?;
        Ok(lock(&self.shared)
            .channels
            .get(&name)
            .map(|c| c.presence.members())
            .unwrap_or_default())
    }

    /// The core's liveness check, as ably-js does it (`RTN23a`): no client HEARTBEAT; the
    /// server promised a frame at least every `maxIdleInterval`, so the link is alive if one
    /// came within that interval, otherwise this waits for the next one until
    /// `maxIdleInterval + realtimeRequestTimeout` after the last (then the link is idle and
    /// the core reconnects). The core's heartbeat timer schedules the check (every
    /// `maxIdleInterval`, from the session); no provider timer runs. Returns zero: this is
    /// not a round trip (see [`AblyRealtime::ping_server`] for one).
    async fn ping(&self) -> Result<Duration> {
        let max_idle = {
            let s = lock(&self.shared);
            if s.writer.is_none() {
                return Err(RealtimeError::Connection("not connected".into()));
            }
            s.details.max_idle_interval.filter(|ms| *ms > 0)
        };
        let Some(max_idle) = max_idle.map(Duration::from_millis) else {
            // maxIdleInterval 0 or absent: the server guarantees nothing, ably-js checks nothing.
            return Ok(Duration::ZERO);
        };
        let mut activity = self.activity.subscribe();
        let last = *activity.borrow_and_update();
        if last.elapsed() < max_idle {
            return Ok(Duration::ZERO);
        }
        let limit = max_idle + self.request_timeout();
        match tokio::time::timeout_at(last + limit, activity.changed()).await {
            Ok(Ok(())) => Ok(Duration::ZERO),
            Ok(Err(_)) => Err(RealtimeError::Connection("the link is closed".into())),
            Err(_) => Err(RealtimeError::Connection(format!(
                "ably error 80003: no activity for {limit:?} (maxIdleInterval + realtimeRequestTimeout)"
            ))),
        }
    }

    /// Fetches what was published after `since` through REST history (forwards from the
    /// position's timestamp, up to `history_max_pages` pages of 1000). `complete` is false
    /// when more pages remain.
    async fn history(&self, channel: &Channel, since: &Position) -> Result<HistoryPage> {
        let max_pages = self.cfg.history_max_pages.max(1);
        let name = ably_name(channel)?;
        let token = lock(&self.shared).token.clone();
        let rest = crate::auth::rest_client(&self.cfg, token.as_deref(), &self.link_config()?)?;
        let query = HistoryQuery {
            start: Some(since.sequence / 1_000_000),
            end: None,
            direction: Some("forwards".into()),
            limit: Some(1000),
        };
        let first = requests::history(&name, &query);
        let mut page = rest.history(&name, &query).await?;
        let mut messages = Self::history_messages(channel, std::mem::take(&mut page.items))?;
        let mut pages = 1;
        while let Some(next) = page.next.clone() {
            if pages == max_pages {
                break;
            }
            page = rest.next_page(&first.path, &next).await?;
            messages.extend(Self::history_messages(
                channel,
                std::mem::take(&mut page.items),
            )?);
            pages += 1;
        }
        messages.retain(|m| {
            m.position
                .as_ref()
                .is_none_or(|p| !p.is_at_or_before(since))
        });
        Ok(HistoryPage {
            messages,
            complete: page.next.is_none(),
        })
    }

    /// One page of REST history (`GET /channels/{name}/messages`); the next page's cursor is
    /// the `Link: rel="next"` path Ably returns, followed as given.
    async fn history_page(
        &self,
        channel: &Channel,
        query: &relayport_core::HistoryQuery,
    ) -> Result<relayport_core::MessagePage> {
        let name = ably_name(channel)?;
        let token = lock(&self.shared).token.clone();
        let rest = crate::auth::rest_client(&self.cfg, token.as_deref(), &self.link_config()?)?;
        let wire = HistoryQuery {
            // Ably positions carry the timestamp (ms × 10⁶): `since` reads from its time.
            start: query
                .start
                .or_else(|| query.since.as_ref().map(|p| p.sequence / 1_000_000)),
            end: query.end,
            direction: Some(
                match query.direction {
                    relayport_core::HistoryDirection::Backwards => "backwards",
                    relayport_core::HistoryDirection::Forwards => "forwards",
                }
                .into(),
            ),
            limit: query
                .limit
                .map(|l| u32::try_from(l.clamp(1, 1000)).unwrap_or(1000)),
        };
        let mut page = match &query.cursor {
            None => rest.history(&name, &wire).await?,
            Some(next) => {
                let first = requests::history(&name, &wire);
                rest.next_page(&first.path, next).await?
            }
        };
        let mut messages = Self::history_messages(channel, std::mem::take(&mut page.items))?;
        if let Some(since) = &query.since {
            messages.retain(|m| {
                m.position
                    .as_ref()
                    .is_none_or(|p| !p.is_at_or_before(since))
            });
        }
        let next = page.next.map(|cursor| {
            let mut next = query.clone();
            next.cursor = Some(cursor);
            next
        });
        Ok(relayport_core::MessagePage::new(messages, next))
    }
}

impl AblyRealtime {
    fn connect_refused(&self, context: Context, error: &ErrorInfo) -> RealtimeError {
        let message = format!("ably error {}: {}", error.code(), error.text());
        match classify(context, error) {
            Action::RenewToken => {
                let mut s = lock(&self.shared);
                if !self.cfg.credentials.renewable() {
                    return not_renewable(error);
                }
                let now = Instant::now();
                if s.last_renewal
                    .is_some_and(|t| now.duration_since(t) < self.cfg.min_renewal_interval)
                {
                    return RealtimeError::Unauthorized(format!(
                        "{message}: rejected again right after a renewal; not renewing in a loop"
                    ));
                }
                s.last_renewal = Some(now);
                s.token_stale = true;
                RealtimeError::Connection(format!("{message} (token renewed for the next attempt)"))
            }
            Action::Fatal => {
                let mut s = lock(&self.shared);
                s.failed = true;
                to_realtime_error(error, None)
            }
            _ => RealtimeError::Connection(message),
        }
    }
}

/// Marks the end of an in-band AUTH when dropped.
struct Authorizing<'a>(&'a Mutex<Shared>);

impl Drop for Authorizing<'_> {
    fn drop(&mut self) {
        let mut s = lock(self.0);
        s.authorizing = false;
        s.auth_waiter = None;
    }
}

impl Drop for AblyRealtime {
    fn drop(&mut self) {
        // Dropping the link stops its reader and writer.
        drop(self.link.get_mut().take());
        for t in lock(&self.shared).aux_tasks.drain(..) {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::connection::position_from_serial;

    #[test]
    fn timeserial_positions_order() {
        let a = position_from_serial("01700000000000-000@abcdef:000").unwrap();
        let b = position_from_serial("01700000000000-000@abcdef:001").unwrap();
        let c = position_from_serial("01700000000001-000@abcdef:000").unwrap();
        assert!(a.sequence < b.sequence && b.sequence < c.sequence);
        assert_eq!(position_from_serial("s1"), None);
        assert_eq!(position_from_serial("1-1000@x:0"), None);
    }
}

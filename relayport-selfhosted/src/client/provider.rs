//! [`SelfHostedProvider`]: the [`RealtimeProvider`] over the native protocol.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use relayport_core::transport::LinkConfig;
use relayport_core::{
    Capabilities, Channel, ChannelKind, EventSink, HistoryQuery, MessagePage, OutboundMessage,
    RealtimeError, RealtimeProvider, Recovery, Result, Session, SubscribeOptions, Subscribed,
};
use serde_json::Value;
use tokio::time::Instant;
use tracing::info;
use url::Url;

use crate::PROVIDER_NAME;
use crate::client::errors::CodeContext;
use crate::client::sse::SseLink;
use crate::client::ws::{Opened, WsLink, open};
use crate::client::{Transport, TransportPreference};
use crate::protocol::{ClientFrame, HistoryDirection, Limits, PROTOCOL_VERSION, ServerFrame};

enum Link {
    Ws(Arc<WsLink>),
    Sse(SseLink),
}

/// The client of the self-hosted server.
///
/// Speaks the native protocol over a WebSocket (`GET /ws?v=1`). When the WebSocket upgrade is
/// refused with a 4xx status (a proxy that does not pass WebSockets), it falls back to
/// Server-Sent Events for receiving and `POST /publish` for publishing; see
/// [`Transport::Sse`] for what that mode cannot do. [`SelfHostedProvider::transport`] says
/// which one is in use.
///
/// The provider holds no secret: private and presence subscriptions are signed by the
/// application's auth endpoint (see [`crate::client::HttpAuthorizer`]).
///
/// ```no_run
/// # async fn demo() -> relayport_core::Result<()> {
/// use relayport_selfhosted::client::SelfHostedProvider;
/// use relayport_core::RealtimeClient;
///
/// let provider = SelfHostedProvider::new("http://127.0.0.1:8080")?;
/// let client = RealtimeClient::new(provider);
/// let mut room = client.subscribe("room:1").await?;
/// client.publish("private:room:1", "chat:message", serde_json::json!({"text": "hi"})).await?;
/// # Ok(()) }
/// ```
pub struct SelfHostedProvider {
    base: Url,
    preference: TransportPreference,
    request_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    publish_token: Option<String>,
    /// Whether the server takes client publishes on public channels (`allow_public_publish`).
    public_publishes: bool,
    link_config: LinkConfig,
    /// The current link. WebSocket calls clone their `Arc<WsLink>` and release it before
    /// waiting, so they run alongside each other; `connect`, `disconnect` and the SSE fallback's
    /// subscribe hold it across an await.
    link: tokio::sync::Mutex<Option<Link>>,
    /// The transport and limits of the current link, readable without waiting for `link`.
    current: std::sync::Mutex<(Option<Transport>, Limits)>,
}

impl std::fmt::Debug for SelfHostedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfHostedProvider")
            .field("base", &self.base.as_str())
            .field("preference", &self.preference)
            .field("transport", &self.transport())
            .field(
                "publish_token",
                &self.publish_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Parses a server base URL (`http`, `https`, `ws` or `wss`), keeping its path as a prefix.
pub(crate) fn parse_base(url: &str) -> Result<Url> {
    let mut base =
        Url::parse(url).map_err(|e| RealtimeError::Config(format!("server URL `{url}`: {e}")))?;
    let scheme = match base.scheme() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        other => {
            return Err(RealtimeError::Config(format!(
                "server URL `{url}`: unsupported scheme `{other}` (use http, https, ws or wss)"
            )));
        }
    };
    if base.set_scheme(scheme).is_err() || base.cannot_be_a_base() {
        return Err(RealtimeError::Config(format!(
            "server URL `{url}` cannot be a base URL"
        )));
    }
    base.set_query(None);
    base.set_fragment(None);
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

/// `base` joined with a relative `path` (`ws`, `publish`, …).
pub(crate) fn endpoint(base: &Url, path: &str) -> Result<Url> {
    base.join(path)
        .map_err(|e| RealtimeError::Config(format!("endpoint `{path}`: {e}")))
}

impl SelfHostedProvider {
    /// A provider for the server at `url` (`http://host:port`, `https://…`, or the same with
    /// `ws`/`wss`; a path is kept as a prefix, for a server behind a reverse proxy).
    pub fn new(url: &str) -> Result<Self> {
        Ok(Self {
            base: parse_base(url)?,
            preference: TransportPreference::Auto,
            public_publishes: false,
            request_timeout: None,
            connect_timeout: None,
            publish_token: None,
            link_config: LinkConfig::shared_default()?,
            link: tokio::sync::Mutex::new(None),
            current: std::sync::Mutex::new((None, Limits::default())),
        })
    }

    /// Which transports to use (default: WebSocket, SSE when the upgrade is refused).
    pub fn with_transport(mut self, preference: TransportPreference) -> Self {
        self.preference = preference;
        self
    }

    /// Says that the server takes client publishes on public channels too (it was started with
    /// `allow_public_publish`); by default clients publish on private and presence channels
    /// only, and `capabilities().client_publish_on(Public)` is `false`.
    pub fn with_public_publishes(mut self, allowed: bool) -> Self {
        self.public_publishes = allowed;
        self
    }

    /// Bounds how long a request (subscribe, publish, presence, ping) waits for the server's
    /// answer. Unbounded by default: inside a `RealtimeClient` the runtime bounds every call
    /// (`ClientConfig::request_timeout`); set this only when using the provider directly.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Bounds how long a connection attempt waits for the `connected` frame. Unbounded by
    /// default: inside a `RealtimeClient` the runtime bounds it (`ClientConfig::connect_timeout`);
    /// set this only when using the provider directly.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The TLS configuration and HTTP client to connect with (default:
    /// [`LinkConfig::shared_default`], the compiled-in webpki roots). Inject one to trust a
    /// private CA or the system store, or to share an HTTP client; the SSE fallback uses its
    /// HTTP client.
    pub fn with_link_config(mut self, config: LinkConfig) -> Self {
        self.link_config = config;
        self
    }

    /// A bearer token for `POST /publish`, used only in SSE mode (the WebSocket publishes on
    /// its own connection). The server accepts its app secret there, so configure this only
    /// in a process trusted with that secret (a backend, an operator's CLI), never in an
    /// end-user's client. Without it, publishing in SSE mode is `Unsupported`.
    pub fn with_publish_token(mut self, token: impl Into<String>) -> Self {
        self.publish_token = Some(token.into());
        self
    }

    /// The transport of the current connection, `None` when not connected.
    pub fn transport(&self) -> Option<Transport> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    fn set_current(&self, transport: Option<Transport>, limits: Limits) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = (transport, limits);
    }

    /// The limits the server announced on the current connection (the protocol's defaults in
    /// SSE mode and before connecting).
    pub fn limits(&self) -> Limits {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    fn ws_url(&self) -> Result<String> {
        let mut url = endpoint(&self.base, "ws")?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| RealtimeError::Config("cannot make a WebSocket URL".into()))?;
        url.set_query(Some(&format!("v={PROTOCOL_VERSION}")));
        Ok(url.into())
    }

    /// The WebSocket link, released from `link` before the caller waits on it.
    async fn ws(&self) -> Result<Arc<WsLink>> {
        match &*self.link.lock().await {
            Some(Link::Ws(ws)) => Ok(ws.clone()),
            Some(Link::Sse(_)) => Err(RealtimeError::Unsupported(
                "this operation over the SSE fallback; it needs the WebSocket".into(),
            )),
            None => Err(not_connected()),
        }
    }

    async fn connect_sse(
        &self,
        slot: &mut Option<Link>,
        sink: EventSink,
        status: Option<u16>,
    ) -> Result<Session> {
        let link = SseLink::open(
            self.link_config.http().clone(),
            self.base.clone(),
            self.publish_token.clone(),
            sink,
            self.connect_timeout,
        )
        .await?;
        let session = Session::new(link.connection_id());
        match status {
            Some(status) => info!(
                transport = "sse",
                status,
                "the WebSocket upgrade was refused; using Server-Sent Events + HTTP publish"
            ),
            None => info!(transport = "sse", "using Server-Sent Events + HTTP publish"),
        }
        self.set_current(Some(Transport::Sse), Limits::default());
        *slot = Some(Link::Sse(link));
        Ok(session)
    }
}

fn not_connected() -> RealtimeError {
    RealtimeError::Connection("not connected".into())
}

fn unexpected(what: &str, frame: &ServerFrame) -> RealtimeError {
    RealtimeError::Protocol(format!("unexpected answer to {what}: {frame:?}"))
}

/// The `auth` and `channel_data` to send for a private or presence channel.
fn signature(
    channel: &Channel,
    options: &SubscribeOptions,
) -> Result<(Option<String>, Option<String>)> {
    if !channel.kind().requires_auth() {
        return Ok((None, None));
    }
    let Some(auth) = &options.auth else {
        return Err(RealtimeError::Unauthorized(format!(
            "`{channel}` needs an authorization and none was given"
        )));
    };
    let Some(sig) = auth.str_field("auth") else {
        return Err(RealtimeError::Unauthorized(format!(
            "the authorization for `{channel}` has no string field `auth`"
        )));
    };
    let data = match channel.kind() {
        ChannelKind::Presence => match auth.str_field("channel_data") {
            Some(d) => Some(d.to_owned()),
            None => {
                return Err(RealtimeError::Unauthorized(format!(
                    "the authorization for `{channel}` has no string field `channel_data`"
                )));
            }
        },
        _ => None,
    };
    Ok((Some(sig.to_owned()), data))
}

#[async_trait]
impl RealtimeProvider for SelfHostedProvider {
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
        caps.client_publish_public = self.public_publishes;
        caps.wildcards = true;
        caps.max_payload = Limits::default().max_payload;
        // Bytes travel as base64 with `"encoding": "base64"`.
        caps.binary_payloads = true;
        // The server sends every publish to its sender too, with `sender` = the socket id.
        caps.echo = relayport_core::Echo::ServerEchoes;
        caps
    }

    async fn connect(&self, sink: EventSink) -> Result<Session> {
        let mut slot = self.link.lock().await;
        self.close_link(&mut slot).await;
        if self.preference == TransportPreference::SseOnly {
            return self.connect_sse(&mut slot, sink, None).await;
        }
        let url = self.ws_url()?;
        match open(&url, &self.link_config, sink.clone(), self.connect_timeout).await? {
            Opened::Link(link) => {
                let hello = link.hello.clone();
                info!(transport = "websocket", socket_id = %hello.socket_id, "connected");
                self.set_current(Some(Transport::WebSocket), hello.limits);
                *slot = Some(Link::Ws(Arc::new(link)));
                Ok(Session::new(hello.socket_id)
                    .with_heartbeat_interval(Some(hello.heartbeat))
                    .with_max_payload(Some(hello.limits.max_payload)))
            }
            Opened::Refused(status) if self.preference == TransportPreference::Auto => {
                self.connect_sse(&mut slot, sink, Some(status)).await
            }
            Opened::Refused(status) => Err(RealtimeError::Connection(format!(
                "the WebSocket upgrade was refused with HTTP {status}"
            ))),
        }
    }

    async fn disconnect(&self) -> Result<()> {
        let mut slot = self.link.lock().await;
        self.close_link(&mut slot).await;
        Ok(())
    }

    async fn subscribe(&self, channel: &Channel, options: &SubscribeOptions) -> Result<Subscribed> {
        let wait = self.request_timeout;
        {
            let mut slot = self.link.lock().await;
            if let Some(Link::Sse(sse)) = &mut *slot {
                return sse.subscribe(channel, options, wait).await;
            }
        }
        let (auth, channel_data) = signature(channel, options)?;
        let name = channel.to_string();
        let since = options.since.clone();
        let asked = since.is_some();
        let ctx = CodeContext {
            channel: Some(&name),
            ..CodeContext::default()
        };
        let frame = self
            .ws()
            .await?
            .request("subscribe", wait, ctx, |reference| ClientFrame::Subscribe {
                reference,
                channel: name.clone(),
                auth,
                channel_data,
                since,
            })
            .await?;
        match frame {
            ServerFrame::Subscribed {
                recovered,
                position,
                ..
            } => Ok(Subscribed {
                recovery: match (asked, recovered) {
                    (false, _) => Recovery::NotAttempted,
                    (true, Some(true)) => Recovery::Recovered,
                    (true, _) => Recovery::Gap,
                },
                position,
            }),
            other => Err(unexpected("subscribe", &other)),
        }
    }

    async fn unsubscribe(&self, channel: &Channel) -> Result<()> {
        let wait = self.request_timeout;
        if let Some(Link::Sse(sse)) = &mut *self.link.lock().await {
            sse.unsubscribe(channel);
            return Ok(());
        }
        let name = channel.to_string();
        let ctx = CodeContext {
            channel: Some(&name),
            ..CodeContext::default()
        };
        match self
            .ws()
            .await?
            .request("unsubscribe", wait, ctx, |reference| {
                ClientFrame::Unsubscribe {
                    reference,
                    channel: name.clone(),
                }
            })
            .await?
        {
            ServerFrame::Unsubscribed { .. } => Ok(()),
            other => Err(unexpected("unsubscribe", &other)),
        }
    }

    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        let wait = self.request_timeout;
        let limit = self.limits().max_payload;
        message.validate(limit)?;
        {
            let slot = self.link.lock().await;
            if let Some(Link::Sse(sse)) = &*slot {
                return sse.publish(message, wait).await;
            }
        }
        let name = message.channel.to_string();
        let ctx = CodeContext {
            channel: Some(&name),
            payload_size: Some(message.payload_size()),
            limit: Some(limit),
        };
        let (data, encoding) = message.data.to_wire();
        match self
            .ws()
            .await?
            .request("publish", wait, ctx, |reference| ClientFrame::Publish {
                reference,
                channel: name.clone(),
                event: message.event.clone(),
                data: data.clone(),
                encoding: encoding.map(str::to_owned),
            })
            .await?
        {
            ServerFrame::Ack { .. } => Ok(()),
            other => Err(unexpected("publish", &other)),
        }
    }

    async fn presence_enter(&self, channel: &Channel, data: Value) -> Result<()> {
        let name = channel.to_string();
        self.presence_request("presence enter", channel, |reference| {
            ClientFrame::PresenceEnter {
                reference,
                channel: name,
                data,
            }
        })
        .await
    }

    async fn presence_update(&self, channel: &Channel, data: Value) -> Result<()> {
        let name = channel.to_string();
        self.presence_request("presence update", channel, |reference| {
            ClientFrame::PresenceUpdate {
                reference,
                channel: name,
                data,
            }
        })
        .await
    }

    async fn presence_leave(&self, channel: &Channel) -> Result<()> {
        let name = channel.to_string();
        self.presence_request("presence leave", channel, |reference| {
            ClientFrame::PresenceLeave {
                reference,
                channel: name,
            }
        })
        .await
    }

    async fn history_page(&self, channel: &Channel, query: &HistoryQuery) -> Result<MessagePage> {
        let name = channel.to_string();
        let ctx = CodeContext {
            channel: Some(&name),
            ..CodeContext::default()
        };
        let frame = self
            .ws()
            .await?
            .request("history", self.request_timeout, ctx, |reference| {
                ClientFrame::History {
                    reference,
                    channel: name.clone(),
                    limit: query.limit,
                    direction: Some(match query.direction {
                        relayport_core::HistoryDirection::Backwards => HistoryDirection::Backwards,
                        relayport_core::HistoryDirection::Forwards => HistoryDirection::Forwards,
                    }),
                    since: query.since.clone(),
                    start: query.start,
                    end: query.end,
                    cursor: query.cursor.clone(),
                }
            })
            .await?;
        let ServerFrame::History {
            messages, cursor, ..
        } = frame
        else {
            return Err(unexpected("history", &frame));
        };
        let messages = messages
            .iter()
            .map(|m| m.to_message())
            .collect::<Result<Vec<_>>>()?;
        let next = cursor.map(|cursor| {
            let mut next = query.clone();
            next.cursor = Some(cursor);
            next
        });
        Ok(MessagePage::new(messages, next))
    }

    async fn ping(&self) -> Result<Duration> {
        let wait = self.request_timeout;
        let started = Instant::now();
        {
            let slot = self.link.lock().await;
            if let Some(Link::Sse(sse)) = &*slot {
                sse.ping(wait).await?;
                return Ok(started.elapsed());
            }
        }
        match self
            .ws()
            .await?
            .request("ping", wait, CodeContext::default(), |reference| {
                ClientFrame::Ping { reference }
            })
            .await?
        {
            ServerFrame::Pong { .. } => Ok(started.elapsed()),
            other => Err(unexpected("ping", &other)),
        }
    }
}

impl SelfHostedProvider {
    /// Closes the link in `slot`, if any.
    async fn close_link(&self, slot: &mut Option<Link>) {
        self.set_current(None, self.limits());
        match slot.take() {
            Some(Link::Ws(ws)) => ws.close().await,
            Some(Link::Sse(sse)) => sse.close(),
            None => {}
        }
    }

    async fn presence_request(
        &self,
        what: &str,
        channel: &Channel,
        build: impl FnOnce(Option<String>) -> ClientFrame,
    ) -> Result<()> {
        let wait = self.request_timeout;
        let name = channel.to_string();
        let ctx = CodeContext {
            channel: Some(&name),
            ..CodeContext::default()
        };
        match self.ws().await?.request(what, wait, ctx, build).await? {
            ServerFrame::Ack { .. } => Ok(()),
            other => Err(unexpected(what, &other)),
        }
    }
}

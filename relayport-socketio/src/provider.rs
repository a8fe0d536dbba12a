//! [`SocketIoProvider`]: the [`RealtimeProvider`] for Socket.IO v4 servers, plus the raw
//! `emit` / `emit_with_ack` / `on` for events outside the channel convention.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use relayport_core::transport::{LinkConfig, lock};
use relayport_core::{
    Capabilities, Channel, ChannelKind, Echo, EventSink, OutboundMessage, Payload, PresenceChange,
    PresenceMember, RealtimeError, RealtimeProvider, Recovery, Result, Session, SubscribeOptions,
    Subscribed,
};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tracing::info;

use crate::PROVIDER_NAME;
use crate::config::SocketIoConfig;
use crate::connection::{Conn, IncomingEvent, Shared, Transport, open};
use crate::convention::AckWire;
use crate::packet::{Arg, placeholder_value};

/// The largest payload this provider sends by default: Socket.IO's default `maxHttpBufferSize`
/// is 1 MB, the core's default limit (64 KiB) is smaller and applies.
const MAX_PAYLOAD: usize = relayport_core::client::DEFAULT_MAX_PAYLOAD;

/// The client of a Socket.IO v4 server (Engine.IO v4 over WebSocket, Socket.IO v5 packets).
///
/// Channels follow the convention of [`crate::convention`], which the Node adapter
/// (`attachRealtime(io, { secret })`) implements on the server. Cheap to clone: clones share
/// one connection, so an application can keep a clone for [`SocketIoProvider::emit`],
/// [`SocketIoProvider::emit_with_ack`] and [`SocketIoProvider::on`] while a `RealtimeClient`
/// owns the other.
///
/// One connection attempt per `connect`, no reconnects of its own: the core's policies decide.
/// A session the server resumed through connection state recovery (`pid` + `offset`) is
/// reported as [`Session::resumed`].
///
/// ```no_run
/// # async fn demo() -> relayport_core::Result<()> {
/// use relayport_socketio::{SocketIoConfig, SocketIoProvider};
/// use relayport_core::RealtimeClient;
///
/// let provider = SocketIoProvider::new(SocketIoConfig::new("http://127.0.0.1:3000")?.with_namespace("/chat")?)?;
/// let client = RealtimeClient::new(provider.clone());
/// let mut room = client.subscribe("room:1").await?;
/// let mut typing = provider.on("typing"); // a raw event outside the convention
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SocketIoProvider {
    inner: Arc<Inner>,
}

struct Inner {
    config: SocketIoConfig,
    link_config: LinkConfig,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    /// The current connection, readable without waiting for `conn` (held across connect).
    current: std::sync::Mutex<Option<Arc<Conn>>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SocketIoProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoProvider")
            .field("config", &self.inner.config)
            .field("connected", &self.current().is_some())
            .finish_non_exhaustive()
    }
}

fn not_connected() -> RealtimeError {
    RealtimeError::Connection("not connected".into())
}

impl SocketIoProvider {
    /// Sends this member's `data` on `channel` as `event` (enter or update) and waits for the
    /// acknowledgement.
    async fn member_data(&self, event: &str, channel: &Channel, data: Value) -> Result<()> {
        self.request(
            event,
            channel,
            json!({"channel": channel.to_string(), "data": data}),
        )
        .await
        .map(|_| ())
    }

    /// A provider for `config`, with the default TLS configuration (webpki roots).
    pub fn new(config: SocketIoConfig) -> Result<Self> {
        Ok(Self::with_link_config(
            config,
            LinkConfig::shared_default()?,
        ))
    }

    /// A provider with an injected TLS configuration (a private CA, the system store).
    pub fn with_link_config(config: SocketIoConfig, link_config: LinkConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                link_config,
                conn: tokio::sync::Mutex::new(None),
                current: std::sync::Mutex::new(None),
                shared: Arc::new(Shared::default()),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SocketIoConfig {
        &self.inner.config
    }

    fn current(&self) -> Option<Arc<Conn>> {
        lock(&self.inner.current).clone()
    }

    fn conn(&self) -> Result<Arc<Conn>> {
        self.current().ok_or_else(not_connected)
    }

    /// The transport of the current connection (`None` when not connected).
    pub fn transport(&self) -> Option<Transport> {
        self.current().map(|c| c.transport)
    }

    /// The namespace socket's id (`socket.id` on the server) while connected.
    pub fn socket_id(&self) -> Option<String> {
        self.current().map(|c| c.sid.clone())
    }

    /// Sends a raw event (binary arguments as attachments), without an acknowledgement.
    pub fn emit(&self, event: &str, args: Vec<Arg>) -> Result<()> {
        self.conn()?.emit(event, args)
    }

    /// Sends a raw event and waits for the server's acknowledgement (at most the configured
    /// request timeout); returns the ack's arguments.
    pub async fn emit_with_ack(&self, event: &str, args: Vec<Arg>) -> Result<Vec<Arg>> {
        let conn = self.conn()?;
        conn.emit_with_ack(
            event,
            args,
            self.inner.config.request_timeout,
            &self.inner.shared,
        )
        .await
    }

    /// Receives every `event` the server sends on this namespace, across reconnects. A later
    /// `on` for the same event replaces this listener. Events nobody listens for are reported
    /// to the client as errors, never dropped silently.
    pub fn on(&self, event: &str) -> mpsc::UnboundedReceiver<IncomingEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.shared.listeners).insert(event.to_owned(), tx);
        rx
    }

    /// Stops delivering `event` to its listener.
    pub fn off(&self, event: &str) {
        lock(&self.inner.shared.listeners).remove(event);
    }

    /// One request of the convention: `event` with `body`, the ack parsed.
    async fn request(&self, event: &str, channel: &Channel, body: Value) -> Result<AckWire> {
        let conn = self.conn()?;
        let args = conn
            .emit_with_ack(
                event,
                vec![Arg::Json(body)],
                self.inner.config.request_timeout,
                &self.inner.shared,
            )
            .await?;
        ack_of(event, channel, args)
    }

    async fn close_current(&self, slot: &mut Option<Arc<Conn>>, leave: bool) {
        *lock(&self.inner.current) = None;
        if let Some(conn) = slot.take() {
            conn.close(leave).await;
        }
    }
}

/// The ack of `event` on `channel` (its JSON arguments) as a result.
fn ack_of(event: &str, channel: &Channel, args: Vec<Arg>) -> Result<AckWire> {
    let json: Vec<Value> = args
        .into_iter()
        .filter_map(|a| match a {
            Arg::Json(v) => Some(v),
            Arg::Binary(_) => None,
        })
        .collect();
    AckWire::parse(event, channel, &json)
}

/// The `auth` and `channel_data` to send for a private or presence channel.
fn signature(
    channel: &Channel,
    options: &SubscribeOptions,
    body: &mut Map<String, Value>,
) -> Result<()> {
    if !channel.kind().requires_auth() {
        return Ok(());
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
    body.insert("auth".into(), Value::String(sig.to_owned()));
    if channel.kind() == ChannelKind::Presence {
        let Some(data) = auth.str_field("channel_data") else {
            return Err(RealtimeError::Unauthorized(format!(
                "the authorization for `{channel}` has no string field `channel_data`"
            )));
        };
        body.insert("channel_data".into(), Value::String(data.to_owned()));
    }
    Ok(())
}

#[async_trait]
impl RealtimeProvider for SocketIoProvider {
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
        caps.max_payload = MAX_PAYLOAD;
        // Bytes travel as a Socket.IO binary attachment (the adapter relays a Buffer).
        caps.binary_payloads = true;
        // A publish says `echo: false` and the adapter skips the publisher's socket.
        caps.echo = Echo::Configurable;
        caps
    }

    /// Echo off: every publish from now on carries `echo: false`, and the adapter broadcasts
    /// it to the channel's room except the publisher's own socket. An own message that still
    /// arrives (an adapter older than that option) is not delivered either.
    fn set_echo(&self, echo: bool) {
        self.inner.shared.no_echo.store(!echo, Ordering::Relaxed);
    }

    async fn connect(&self, sink: EventSink) -> Result<Session> {
        let mut slot = self.inner.conn.lock().await;
        // A previous link is dropped without DISCONNECT, so the server can still resume it.
        self.close_current(&mut slot, false).await;
        let conn = Arc::new(
            open(
                &self.inner.config,
                &self.inner.link_config,
                self.inner.shared.clone(),
                sink,
            )
            .await?,
        );
        info!(sid = %conn.sid, namespace = %self.inner.config.namespace, transport = ?conn.transport, resumed = conn.resumed, "connected");
        let session = Session::new(conn.sid.clone())
            .with_heartbeat_interval(Some(conn.ping_interval))
            .with_max_payload(conn.max_payload.map(|m| m.min(MAX_PAYLOAD)))
            .with_resumed(conn.resumed);
        *lock(&self.inner.current) = Some(conn.clone());
        *slot = Some(conn);
        Ok(session)
    }

    /// Drops the WebSocket without a Socket.IO DISCONNECT: a server with connection state
    /// recovery keeps the session for the next `connect`.
    async fn disconnect(&self) -> Result<()> {
        let mut slot = self.inner.conn.lock().await;
        self.close_current(&mut slot, false).await;
        Ok(())
    }

    /// Leaves the namespace (a DISCONNECT packet, as socket.io-client's `disconnect()`), then
    /// closes: the session ends and is not recovered.
    async fn goodbye(&self) -> Result<()> {
        let mut slot = self.inner.conn.lock().await;
        self.close_current(&mut slot, true).await;
        *lock(&self.inner.shared.recovery) = Default::default();
        Ok(())
    }

    async fn subscribe(&self, channel: &Channel, options: &SubscribeOptions) -> Result<Subscribed> {
        let mut body = Map::new();
        body.insert("channel".into(), Value::String(channel.to_string()));
        signature(channel, options, &mut body)?;
        let events = &self.inner.config.events;
        let ack = self
            .request(&events.subscribe, channel, Value::Object(body))
            .await?;
        if let Some(members) = ack.members
            && channel.kind() == ChannelKind::Presence
        {
            // The member list reaches the sink before `subscribe` returns.
            let conn = self.conn()?;
            conn.sink
                .presence(channel.clone(), PresenceChange::Snapshot(members));
        }
        let recovery = match (&options.since, &ack.position) {
            (None, _) => Recovery::NotAttempted,
            // The adapter keeps no history: nothing was missed only if the channel has not
            // moved since the position the client last saw.
            (Some(since), Some(now))
                if since.epoch == now.epoch && since.sequence >= now.sequence =>
            {
                Recovery::Recovered
            }
            (Some(_), _) => Recovery::Gap,
        };
        Ok(Subscribed {
            recovery,
            position: ack.position,
        })
    }

    async fn unsubscribe(&self, channel: &Channel) -> Result<()> {
        let event = &self.inner.config.events.unsubscribe;
        self.request(event, channel, json!({"channel": channel.to_string()}))
            .await
            .map(|_| ())
    }

    /// `{channel, event, data}` with an ack; bytes travel as the packet's one binary
    /// attachment, `data` being its placeholder (a Buffer on the Node side), and `echo: false`
    /// is added when the client asked for no echo.
    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        message.validate(MAX_PAYLOAD)?;
        let (data, attachments) = match &message.data {
            Payload::Json(value) => (value.clone(), Vec::new()),
            Payload::Binary(bytes) => (placeholder_value(0), vec![bytes.to_vec()]),
        };
        let mut body = json!({
            "channel": message.channel.to_string(),
            "event": message.event,
            "data": data,
        });
        if self.inner.shared.no_echo.load(Ordering::Relaxed) {
            body["echo"] = Value::Bool(false);
        }
        let conn = self.conn()?;
        let event = &self.inner.config.events.publish;
        let args = conn
            .emit_attached_with_ack(
                event,
                vec![body],
                attachments,
                self.inner.config.request_timeout,
                &self.inner.shared,
            )
            .await?;
        ack_of(event, &message.channel, args).map(|_| ())
    }

    async fn presence_enter(&self, channel: &Channel, data: Value) -> Result<()> {
        let event = &self.inner.config.events.presence_enter;
        self.member_data(event, channel, data).await
    }

    async fn presence_update(&self, channel: &Channel, data: Value) -> Result<()> {
        let event = &self.inner.config.events.presence_update;
        self.member_data(event, channel, data).await
    }

    async fn presence_leave(&self, channel: &Channel) -> Result<()> {
        let event = &self.inner.config.events.presence_leave;
        self.request(event, channel, json!({"channel": channel.to_string()}))
            .await
            .map(|_| ())
    }

    async fn presence_members(&self, channel: &Channel) -> Result<Vec<PresenceMember>> {
        let event = &self.inner.config.events.presence_members;
        let ack = self
            .request(event, channel, json!({"channel": channel.to_string()}))
            .await?;
        Ok(ack.members.unwrap_or_default())
    }

    /// Socket.IO's heartbeat runs the other way (the server pings, this client answers at
    /// once), so there is nothing to send: the link is alive while the server has been heard
    /// from within `pingInterval + pingTimeout`, the bound socket.io-client uses. The latency
    /// reported is the last ack round trip (zero before the first).
    async fn ping(&self) -> Result<Duration> {
        let conn = self.conn()?;
        let bound = conn.ping_interval + conn.ping_timeout;
        let idle = conn.idle();
        if idle > bound {
            return Err(RealtimeError::Connection(format!(
                "nothing from the server for {idle:?} (pingInterval + pingTimeout is {bound:?})"
            )));
        }
        Ok(lock(&self.inner.shared.rtt).unwrap_or_default())
    }
}

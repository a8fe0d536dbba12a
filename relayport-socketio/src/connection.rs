//! One Engine.IO WebSocket connection on the core's link layer, joined to one namespace: the
//! handshake (`0` open → CONNECT → CONNECT or CONNECT_ERROR), acks matched by id through
//! [`Pending`], and the dispatcher that answers pings and reports what arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relayport_core::transport::{
    self, Dispatcher, Flow, Frame, Handshake, LinkConfig, LinkSender, OpenError, PeerClose,
    Pending, Received, lock,
};
use relayport_core::{CloseReason, EventSink, RealtimeError, Reconnect, Result};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{SocketIoConfig, Transports};
use crate::convention::{EventNames, MessageWire, PresenceWire};
use crate::packet::{Arg, Assembler, ENGINE_PONG, EnginePacket, OpenPacket, Packet, PacketType};
use crate::polling::{self, Inbound, PollingLink};

/// The close code of a goodbye (RFC 6455 normal closure).
const GOODBYE_CODE: u16 = 1000;

type AckResult = Result<Vec<Arg>>;

/// An event the server sent to a raw listener ([`crate::SocketIoProvider::on`]).
#[derive(Debug)]
pub struct IncomingEvent {
    /// The event name.
    pub name: String,
    /// Its arguments (binary ones as [`Arg::Binary`]).
    pub args: Vec<Arg>,
    /// Set when the server asked for an acknowledgement.
    pub ack: Option<AckResponder>,
}

/// Answers one event the server sent with an ack id. Dropping it sends nothing.
#[derive(Debug)]
pub struct AckResponder {
    outbox: Outbox,
    namespace: String,
    id: u64,
}

impl AckResponder {
    /// Sends the acknowledgement with `args` (binary ones as attachments).
    pub fn send(self, args: Vec<Arg>) -> Result<()> {
        self.outbox
            .send(&Packet::ack(&self.namespace, self.id, args))
    }
}

/// The raw listeners and the recovery state, shared by every connection of one provider.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) listeners: Mutex<HashMap<String, mpsc::UnboundedSender<IncomingEvent>>>,
    /// Connection state recovery: the private session id and the last offset seen.
    pub(crate) recovery: Mutex<Recovery>,
    /// The last ack round trip, reported by `ping`.
    pub(crate) rtt: Mutex<Option<Duration>>,
    /// The client asked for no echo ([`relayport_core::RealtimeProvider::set_echo`]): its
    /// publishes ask the adapter to skip its own socket, and an own message that still
    /// arrives (an adapter without that option) is not delivered.
    pub(crate) no_echo: AtomicBool,
}

/// What Socket.IO's connection state recovery needs to resume a session.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Recovery {
    pub(crate) pid: Option<String>,
    pub(crate) offset: Option<String>,
}

/// Sends packets: a text frame and its attachments go out together, never interleaved with
/// another packet's.
#[derive(Debug, Clone)]
enum Outbox {
    /// The WebSocket's writer.
    Ws {
        sender: LinkSender,
        order: Arc<Mutex<()>>,
    },
    /// The polling writer's queue (one queue: its order is the wire's).
    Polling(mpsc::UnboundedSender<Received>),
}

fn gone() -> RealtimeError {
    RealtimeError::Connection("the connection is closed".into())
}

impl Outbox {
    fn send(&self, packet: &Packet) -> Result<()> {
        let (text, binaries) = packet.encode();
        match self {
            Self::Ws { sender, order } => {
                let _guard = lock(order);
                sender.send_text(text)?;
                for b in binaries {
                    sender.send_binary(b)?;
                }
            }
            Self::Polling(tx) => {
                tx.send(Received::Text(text)).map_err(|_| gone())?;
                for b in binaries {
                    tx.send(Received::Binary(b)).map_err(|_| gone())?;
                }
            }
        }
        Ok(())
    }

    fn pong(&self) -> Result<()> {
        match self {
            Self::Ws { sender, .. } => sender.send_text(ENGINE_PONG),
            Self::Polling(tx) => tx
                .send(Received::Text(ENGINE_PONG.into()))
                .map_err(|_| gone()),
        }
    }

    /// Ends the transport from the reader's side (after the server's DISCONNECT).
    fn end(&self, reason: &str) {
        match self {
            Self::Ws { sender, .. } => {
                let _ = sender.send_close(GOODBYE_CODE, reason);
            }
            Self::Polling(tx) => {
                let _ = tx.send(Received::Text("1".into()));
            }
        }
    }
}

/// The transport under a connection.
enum Wire {
    Ws(transport::Link),
    Polling(PollingLink),
}

/// The handshake's frame source: the WebSocket, or the polling reader's channel.
enum Greeting {
    Ws(Handshake),
    Polling(mpsc::UnboundedReceiver<Inbound>),
}

impl Greeting {
    async fn recv(&mut self) -> Result<Received, PeerClose> {
        match self {
            Self::Ws(h) => h.recv().await,
            Self::Polling(rx) => match rx.recv().await {
                Some(Inbound::Frame(f)) => Ok(f),
                Some(Inbound::Closed(c)) => Err(c),
                None => Err(PeerClose::lost("the polling reader stopped")),
            },
        }
    }
}

/// Which transport a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Engine.IO over one WebSocket.
    WebSocket,
    /// Engine.IO HTTP long-polling: the fallback when the WebSocket upgrade is refused.
    Polling,
}

/// One open connection, joined to its namespace.
pub(crate) struct Conn {
    wire: Wire,
    outbox: Outbox,
    namespace: String,
    /// The transport in use.
    pub(crate) transport: Transport,
    pending: Pending<u64, AckResult>,
    next_id: AtomicU64,
    last_seen: Arc<Mutex<Instant>>,
    pub(crate) sink: EventSink,
    /// The namespace socket's id (`socket.id` on the server).
    pub(crate) sid: String,
    /// Whether the server resumed the previous session (same `pid`).
    pub(crate) resumed: bool,
    pub(crate) ping_interval: Duration,
    pub(crate) ping_timeout: Duration,
    pub(crate) max_payload: Option<usize>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("sid", &self.sid)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Opens the WebSocket, reads the Engine.IO handshake and joins the namespace.
pub(crate) async fn open(
    config: &SocketIoConfig,
    link_config: &LinkConfig,
    shared: Arc<Shared>,
    sink: EventSink,
) -> Result<Conn> {
    let url = config.websocket_url();
    let ws = if config.transports == Transports::PollingOnly {
        None
    } else {
        match transport::open(&url, link_config).await {
            Ok(h) => Some(h),
            Err(OpenError::Refused { status, .. }) if config.transports == Transports::Auto => {
                info!(
                    status,
                    "the WebSocket upgrade was refused; falling back to HTTP long-polling"
                );
                None
            }
            Err(OpenError::Refused { status, .. }) => {
                return Err(RealtimeError::Connection(format!(
                    "the WebSocket upgrade was refused with HTTP {status}"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let (mut greeting, open, outbox, polling) = match ws {
        Some(handshake) => {
            let outbox = Outbox::Ws {
                sender: handshake.sender().clone(),
                order: Arc::new(Mutex::new(())),
            };
            let mut greeting = Greeting::Ws(handshake);
            let open = read_open(&mut greeting).await?;
            (greeting, open, outbox, None)
        }
        None => {
            let (link, open, rx) = polling::open(link_config.http().clone(), &url).await?;
            let outbox = Outbox::Polling(link.tx.clone());
            (Greeting::Polling(rx), open, outbox, Some(link))
        }
    };
    let previous = lock(&shared.recovery).clone();
    let mut auth = config.auth.clone().unwrap_or(Value::Object(Map::new()));
    if let (Some(pid), Some(offset), Some(obj)) =
        (&previous.pid, &previous.offset, auth.as_object_mut())
    {
        obj.insert("pid".into(), Value::String(pid.clone()));
        obj.insert("offset".into(), Value::String(offset.clone()));
    }
    let auth = auth
        .as_object()
        .is_some_and(|o| !o.is_empty())
        .then_some(auth);
    outbox.send(&Packet::connect(&config.namespace, auth))?;
    let (sid, pid, early) = read_connect(&mut greeting, &outbox, &config.namespace).await?;
    let resumed = previous.offset.is_some() && previous.pid.is_some() && pid == previous.pid;
    {
        let mut recovery = lock(&shared.recovery);
        recovery.pid = pid;
        if !resumed {
            recovery.offset = None;
        }
    }
    let pending = Pending::new();
    let last_seen = Arc::new(Mutex::new(Instant::now()));
    let mut dispatcher = SioDispatcher {
        sink: sink.clone(),
        pending: pending.clone(),
        namespace: config.namespace.clone(),
        events: config.events.clone(),
        shared,
        assembler: Assembler::new(),
        last_seen: last_seen.clone(),
        outbox: outbox.clone(),
        sid: sid.clone(),
    };
    // What came before the CONNECT (a recovered session's missed packets) goes first.
    for packet in early {
        if dispatcher.on_packet(packet) == Flow::Stop {
            break;
        }
    }
    let (wire, transport) = match (greeting, polling) {
        (Greeting::Ws(handshake), _) => {
            (Wire::Ws(handshake.start(dispatcher)), Transport::WebSocket)
        }
        (Greeting::Polling(mut rx), Some(link)) => {
            tokio::spawn(async move {
                while let Some(inbound) = rx.recv().await {
                    match inbound {
                        Inbound::Frame(frame) => {
                            if dispatcher.handle(frame.as_frame()) == Flow::Stop {
                                return;
                            }
                        }
                        Inbound::Closed(close) => return dispatcher.on_close(close),
                    }
                }
            });
            (Wire::Polling(link), Transport::Polling)
        }
        (Greeting::Polling(_), None) => {
            return Err(RealtimeError::Protocol(
                "a polling greeting without its link".into(),
            ));
        }
    };
    Ok(Conn {
        wire,
        transport,
        outbox,
        namespace: config.namespace.clone(),
        pending,
        next_id: AtomicU64::new(0),
        last_seen,
        sink,
        sid,
        resumed,
        ping_interval: Duration::from_millis(open.ping_interval.max(1)),
        ping_timeout: Duration::from_millis(open.ping_timeout),
        max_payload: open.max_payload.and_then(|m| usize::try_from(m).ok()),
    })
}

fn closed_early(close: &PeerClose, what: &str) -> RealtimeError {
    RealtimeError::Connection(format!("closed before {what}: {close}"))
}

/// The Engine.IO `0` packet.
async fn read_open(handshake: &mut Greeting) -> Result<OpenPacket> {
    match handshake.recv().await {
        Ok(Received::Text(text)) => match EnginePacket::decode(&text) {
            Ok(EnginePacket::Open(json)) => {
                OpenPacket::parse(json).map_err(|e| RealtimeError::Protocol(e.to_string()))
            }
            Ok(other) => Err(RealtimeError::Protocol(format!(
                "expected the Engine.IO handshake first, got {other:?}"
            ))),
            Err(e) => Err(RealtimeError::Protocol(e.to_string())),
        },
        Ok(Received::Binary(_)) => Err(RealtimeError::Protocol(
            "a binary frame where the Engine.IO handshake was expected".into(),
        )),
        Err(close) => Err(closed_early(&close, "the Engine.IO handshake")),
    }
}

/// Waits for the namespace's CONNECT (or CONNECT_ERROR); answers pings meanwhile. Returns
/// the sid, the pid, and the packets of this namespace that came first: a server resuming a
/// session sends the missed packets before its CONNECT (socket.io-client buffers them too).
async fn read_connect(
    handshake: &mut Greeting,
    outbox: &Outbox,
    namespace: &str,
) -> Result<(String, Option<String>, Vec<Packet>)> {
    let mut early = Vec::new();
    let mut assembler = Assembler::new();
    loop {
        let text = match handshake.recv().await {
            Ok(Received::Text(text)) => text,
            Ok(Received::Binary(bytes)) => {
                if let Some(p) = assembler
                    .binary(&bytes)
                    .map_err(|e| RealtimeError::Protocol(e.to_string()))?
                {
                    early.push(p);
                }
                continue;
            }
            Err(close) => return Err(closed_early(&close, "the namespace CONNECT")),
        };
        let engine =
            EnginePacket::decode(&text).map_err(|e| RealtimeError::Protocol(e.to_string()))?;
        let body = match engine {
            EnginePacket::Ping => {
                outbox.pong()?;
                continue;
            }
            EnginePacket::Close => {
                return Err(RealtimeError::Connection(
                    "the server closed the session before the namespace CONNECT".into(),
                ));
            }
            EnginePacket::Message(body) => body,
            _ => continue,
        };
        let packet = match assembler.text(body) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => return Err(RealtimeError::Protocol(e.to_string())),
        };
        if packet.namespace != namespace {
            continue;
        }
        match packet.kind {
            PacketType::Connect => {
                let data = packet.data.unwrap_or(Value::Null);
                let sid = data
                    .get("sid")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| RealtimeError::Protocol("a CONNECT without a sid".into()))?;
                let pid = data.get("pid").and_then(Value::as_str).map(str::to_owned);
                return Ok((sid.to_owned(), pid, early));
            }
            PacketType::ConnectError => return Err(connect_error(namespace, packet.data)),
            _ => early.push(packet),
        }
    }
}

/// A CONNECT_ERROR as a typed error: an unknown namespace is a configuration error, a refusal
/// by the server's middleware an authorization error (neither is retried, as socket.io-client
/// does not retry them).
fn connect_error(namespace: &str, data: Option<Value>) -> RealtimeError {
    let message = match &data {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("refused")
            .to_owned(),
        None => "refused".into(),
    };
    if message == "Invalid namespace" {
        RealtimeError::Config(format!("the server has no namespace `{namespace}`"))
    } else {
        RealtimeError::Unauthorized(format!(
            "namespace `{namespace}` refused the connection: {message}"
        ))
    }
}

impl Conn {
    /// Sends an event without an ack.
    pub(crate) fn emit(&self, event: &str, args: Vec<Arg>) -> Result<()> {
        self.outbox
            .send(&Packet::event(&self.namespace, event, args, None))
    }

    /// Sends an event and waits at most `wait` for its ack.
    pub(crate) async fn emit_with_ack(
        &self,
        event: &str,
        args: Vec<Arg>,
        wait: Duration,
        shared: &Shared,
    ) -> Result<Vec<Arg>> {
        self.request(event, wait, shared, |ns, id| {
            Packet::event(ns, event, args, Some(id))
        })
        .await
    }

    /// Sends an event whose JSON arguments hold placeholders for `attachments` (bytes nested
    /// in an object, see [`Packet::event_with_attachments`]) and waits at most `wait` for its
    /// ack.
    pub(crate) async fn emit_attached_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
        wait: Duration,
        shared: &Shared,
    ) -> Result<Vec<Arg>> {
        self.request(event, wait, shared, |ns, id| {
            Packet::event_with_attachments(ns, event, args, attachments, Some(id))
        })
        .await
    }

    /// Sends the packet `make` builds for (namespace, ack id) and waits for its ack.
    async fn request(
        &self,
        event: &str,
        wait: Duration,
        shared: &Shared,
        make: impl FnOnce(&str, u64) -> Packet,
    ) -> Result<Vec<Arg>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Registered before sending, so that no ack can overtake it.
        let waiter = self.pending.register(id);
        let started = Instant::now();
        self.outbox.send(&make(&self.namespace, id))?;
        let answer = waiter
            .answer(&format!("the ack to `{event}`"), wait)
            .await??;
        *lock(&shared.rtt) = Some(started.elapsed());
        Ok(answer)
    }

    /// How long since the server last sent anything.
    pub(crate) fn idle(&self) -> Duration {
        lock(&self.last_seen).elapsed()
    }

    /// Closes the WebSocket; with `leave`, a DISCONNECT first (the session ends and cannot be
    /// recovered). Waiting acks fail at once.
    pub(crate) async fn close(&self, leave: bool) {
        self.pending.clear();
        match &self.wire {
            Wire::Ws(link) => {
                if leave {
                    let _ = self.outbox.send(&Packet::disconnect(&self.namespace));
                }
                link.close(
                    GOODBYE_CODE,
                    "client disconnect",
                    transport::DEFAULT_CLOSE_GRACE,
                )
                .await;
            }
            Wire::Polling(link) => {
                let last = if leave {
                    vec![Received::Text(
                        Packet::disconnect(&self.namespace).encode().0,
                    )]
                } else {
                    Vec::new()
                };
                link.close(last, transport::DEFAULT_CLOSE_GRACE).await;
            }
        }
    }
}

/// The Socket.IO side of the reader.
struct SioDispatcher {
    sink: EventSink,
    pending: Pending<u64, AckResult>,
    namespace: String,
    events: EventNames,
    shared: Arc<Shared>,
    assembler: Assembler,
    last_seen: Arc<Mutex<Instant>>,
    outbox: Outbox,
    /// This connection's namespace socket id (a message's `sender` when it published it).
    sid: String,
}

impl Dispatcher for SioDispatcher {
    fn on_frame(&mut self, frame: Frame<'_>, _link: &LinkSender) -> Flow {
        self.handle(frame)
    }

    fn on_close(&mut self, close: PeerClose) {
        self.pending.clear();
        debug!(%close, "the Socket.IO link closed");
        self.sink
            .closed(CloseReason::retry(close.code_i64(), close.to_string()));
    }
}

impl SioDispatcher {
    /// Whether `message` is this connection's own publish while the client asked for no
    /// echo (the adapter skips it when asked; one from an adapter that does not is dropped
    /// here).
    fn is_unwanted_echo(&self, message: &relayport_core::Message) -> bool {
        self.shared.no_echo.load(Ordering::Relaxed)
            && message.sender.as_deref() == Some(self.sid.as_str())
    }

    /// One Engine.IO packet from either transport.
    fn handle(&mut self, frame: Frame<'_>) -> Flow {
        *lock(&self.last_seen) = Instant::now();
        let assembled = match frame {
            Frame::Binary(bytes) => self.assembler.binary(bytes),
            Frame::Text(text) => match EnginePacket::decode(text) {
                Ok(EnginePacket::Ping) => {
                    return Flow::from(self.outbox.pong().is_ok() && !self.sink.is_closed());
                }
                Ok(EnginePacket::Message(body)) => self.assembler.text(body),
                Ok(EnginePacket::Close) => {
                    self.pending.clear();
                    self.sink.closed(CloseReason::retry(
                        None,
                        "the server closed the Engine.IO session",
                    ));
                    return Flow::Stop;
                }
                Ok(EnginePacket::Open(_)) => {
                    return self.protocol_error("a second Engine.IO handshake".into());
                }
                Ok(_) => return Flow::Continue,
                Err(e) => return self.protocol_error(e.to_string()),
            },
        };
        match assembled {
            Ok(Some(packet)) => self.on_packet(packet),
            Ok(None) => Flow::Continue,
            Err(e) => self.protocol_error(e.to_string()),
        }
    }

    fn protocol_error(&self, what: String) -> Flow {
        warn!(error = %what, "a malformed frame from the Socket.IO server");
        Flow::from(self.sink.error(None, RealtimeError::Protocol(what)))
    }

    fn on_packet(&mut self, packet: Packet) -> Flow {
        if packet.namespace != self.namespace {
            debug!(namespace = %packet.namespace, "a packet for another namespace, ignored");
            return Flow::Continue;
        }
        match packet.kind {
            PacketType::Event | PacketType::BinaryEvent => match packet.event_data() {
                Ok(event) => self.on_event(event.name, event.args, &packet),
                Err(e) => self.protocol_error(e.to_string()),
            },
            PacketType::Ack | PacketType::BinaryAck => {
                let Some(id) = packet.id else {
                    return self.protocol_error("an ack without an id".into());
                };
                let answer = packet
                    .args()
                    .map_err(|e| RealtimeError::Protocol(e.to_string()));
                if !self.pending.settle(&id, answer) {
                    debug!(id, "an ack nobody waits for (late, or never asked)");
                }
                Flow::from(!self.sink.is_closed())
            }
            PacketType::Disconnect => {
                // `socket.disconnect(true)` on the server: socket.io-client does not reconnect
                // after it either, so neither does the core.
                self.pending.clear();
                *lock(&self.shared.recovery) = Default::default();
                self.outbox.end("the server disconnected this client");
                self.sink.closed(CloseReason {
                    code: None,
                    message: "the server disconnected this client (io server disconnect)".into(),
                    reconnect: Reconnect::Never(RealtimeError::Connection(
                        "the server ended this Socket.IO session".into(),
                    )),
                });
                Flow::Stop
            }
            PacketType::ConnectError => Flow::from(
                self.sink
                    .error(None, connect_error(&self.namespace, packet.data)),
            ),
            PacketType::Connect => self.protocol_error("a second namespace CONNECT".into()),
        }
    }

    fn on_event(&mut self, name: String, mut args: Vec<Arg>, packet: &Packet) -> Flow {
        let id = packet.id;
        // With connection state recovery on, the server appends the packet's offset to every
        // event that wants no ack, as a last string argument: remembered (as socket.io-client
        // does) and taken off, so listeners see the arguments the server's code emitted.
        {
            let mut recovery = lock(&self.shared.recovery);
            if recovery.pid.is_some()
                && id.is_none()
                && let Some(Arg::Json(Value::String(_))) = args.last()
                && let Some(Arg::Json(Value::String(offset))) = args.pop()
            {
                recovery.offset = Some(offset);
            }
        }
        if name == self.events.message || name == self.events.presence {
            let Some(Arg::Json(body)) = args.drain(..).next() else {
                return self.protocol_error(format!("`{name}` without a JSON body"));
            };
            let alive = if name == self.events.message {
                // The body as it came (placeholders intact): bytes published as `data` are
                // bytes again, not Node's JSON form of a Buffer.
                let raw = packet.data.as_ref().and_then(|d| d.get(1)).unwrap_or(&body);
                match MessageWire::decode(raw, packet)
                    .map_err(|e| RealtimeError::Protocol(format!("a malformed `{name}`: {e}")))
                {
                    Ok(m) if self.is_unwanted_echo(&m) => {
                        debug!(channel = %m.channel, "an own message while echo is off, not delivered");
                        !self.sink.is_closed()
                    }
                    Ok(m) => self.sink.message(m),
                    Err(e) => self.sink.error(None, e),
                }
            } else {
                match serde_json::from_value::<PresenceWire>(body)
                    .map_err(|e| RealtimeError::Protocol(format!("a malformed `{name}`: {e}")))
                    .and_then(PresenceWire::into_change)
                {
                    Ok((channel, change)) => self.sink.presence(channel, change),
                    Err(e) => self.sink.error(None, e),
                }
            };
            return Flow::from(alive);
        }
        let ack = id.map(|id| AckResponder {
            outbox: self.outbox.clone(),
            namespace: self.namespace.clone(),
            id,
        });
        let listener = lock(&self.shared.listeners).get(&name).cloned();
        let delivered = listener.is_some_and(|tx| {
            tx.send(IncomingEvent {
                name: name.clone(),
                args,
                ack,
            })
            .is_ok()
        });
        if delivered {
            return Flow::from(!self.sink.is_closed());
        }
        // Not silently dropped: an event nobody listens for is reported.
        Flow::from(self.sink.error(
            None,
            RealtimeError::Protocol(format!(
                "the server sent event `{name}` and nothing listens for it (see SocketIoProvider::on)"
            )),
        ))
    }
}

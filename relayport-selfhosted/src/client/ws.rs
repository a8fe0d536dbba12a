//! The WebSocket link: one connection to `GET /ws?v=1` on the core's link layer
//! ([`relayport_core::transport`]). This module keeps only the native protocol: the `connected`
//! greeting, requests matched to their answers by `ref`, and the dispatcher that reports what
//! arrives through the [`EventSink`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use relayport_core::transport::{
    self, Dispatcher, Flow, Frame, Handshake, LinkConfig, LinkSender, OpenError, PeerClose,
    Pending, Received,
};
use relayport_core::{Channel, EventSink, PresenceChange, RealtimeError, Reconnect, Result};
use serde_json::Value;
use tracing::{debug, warn};

use crate::client::bounded;
use crate::client::errors::{CodeContext, close_reason, error_for_code};
use crate::protocol::{
    ClientFrame, Limits, MessageFrame, PROTOCOL_VERSION, PresenceAction, ServerFrame,
};

type Answer = Result<ServerFrame>;

/// The close code of a goodbye (RFC 6455 normal closure).
const GOODBYE_CODE: u16 = 1000;
/// The reason sent with the goodbye.
const GOODBYE_REASON: &str = "client disconnect";

/// What the `connected` frame said.
#[derive(Debug, Clone)]
pub(crate) struct Hello {
    pub(crate) socket_id: String,
    pub(crate) heartbeat: Duration,
    pub(crate) limits: Limits,
}

/// The outcome of trying to open the WebSocket.
pub(crate) enum Opened {
    /// The link is up.
    Link(WsLink),
    /// The HTTP upgrade was answered with this 4xx status (a proxy that does not pass
    /// WebSockets, say): the caller may fall back to SSE.
    Refused(u16),
}

/// One open WebSocket connection.
pub(crate) struct WsLink {
    link: transport::Link,
    pending: Pending<String, Answer>,
    next_ref: AtomicU64,
    pub(crate) hello: Hello,
}

impl std::fmt::Debug for WsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsLink")
            .field("socket_id", &self.hello.socket_id)
            .finish_non_exhaustive()
    }
}

/// Opens the WebSocket at `url` and waits (at most `wait`, if set) for the `connected` frame.
pub(crate) async fn open(
    url: &str,
    config: &LinkConfig,
    sink: EventSink,
    wait: Option<Duration>,
) -> Result<Opened> {
    let attempt = async {
        let mut handshake = match transport::open(url, config).await {
            Ok(handshake) => handshake,
            Err(OpenError::Refused { status, .. }) if (400..500).contains(&status) => {
                return Ok(Err(status));
            }
            Err(e) => return Err(RealtimeError::from(e)),
        };
        let hello = read_hello(&mut handshake).await?;
        Ok(Ok((handshake, hello)))
    };
    let (handshake, hello) = match bounded("the `connected` frame", wait, attempt).await? {
        Err(status) => return Ok(Opened::Refused(status)),
        Ok(parts) => parts,
    };
    let pending = Pending::new();
    let link = handshake.start(NativeDispatcher {
        sink,
        pending: pending.clone(),
    });
    Ok(Opened::Link(WsLink {
        link,
        pending,
        next_ref: AtomicU64::new(0),
        hello,
    }))
}

/// Reads frames until the first one that matters, which must be `connected`.
async fn read_hello(handshake: &mut Handshake) -> Result<Hello> {
    let text = match handshake.recv().await {
        Ok(Received::Text(text)) => text,
        Ok(Received::Binary(_)) => {
            return Err(RealtimeError::Protocol(
                "a binary frame where `connected` was expected".into(),
            ));
        }
        Err(close) if !close.clean => {
            return Err(RealtimeError::Connection(format!(
                "closed before `connected`: {close}"
            )));
        }
        Err(close) => {
            return Err(match close_reason(close.code, &close.reason).reconnect {
                Reconnect::Never(e) => e,
                _ => RealtimeError::Connection(format!("closed before `connected`: {close}")),
            });
        }
    };
    match serde_json::from_str::<ServerFrame>(&text) {
        Ok(ServerFrame::Connected {
            socket_id,
            protocol,
            heartbeat_ms,
            limits,
        }) => {
            if protocol != PROTOCOL_VERSION {
                return Err(RealtimeError::Protocol(format!(
                    "the server speaks protocol {protocol}, this client {PROTOCOL_VERSION}"
                )));
            }
            if socket_id.is_empty() {
                return Err(RealtimeError::Protocol("an empty socket id".into()));
            }
            Ok(Hello {
                socket_id,
                heartbeat: Duration::from_millis(heartbeat_ms.max(1)),
                limits,
            })
        }
        Ok(ServerFrame::Error {
            code,
            message,
            channel,
            ..
        }) => Err(error_for_code(
            &code,
            &message,
            channel.as_deref(),
            CodeContext::default(),
        )),
        Ok(other) => Err(RealtimeError::Protocol(format!(
            "expected `connected` first, got {other:?}"
        ))),
        Err(e) => Err(RealtimeError::Protocol(format!(
            "malformed first frame: {e}"
        ))),
    }
}

impl WsLink {
    /// Sends `frame` with a fresh `ref` and waits (at most `wait`, if set) for its answer. An `error`
    /// answer becomes the mapped [`RealtimeError`] (with `ctx`).
    pub(crate) async fn request(
        &self,
        what: &str,
        wait: Option<Duration>,
        ctx: CodeContext<'_>,
        build: impl FnOnce(Option<String>) -> ClientFrame,
    ) -> Result<ServerFrame> {
        let reference = (self.next_ref.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        // Registered before sending, so that no answer can overtake it; the waiter leaves the
        // table however this call ends (answer, timeout, or the caller dropping it).
        let waiter = self.pending.register(reference.clone());
        let frame = build(Some(reference));
        let text = serde_json::to_string(&frame)
            .map_err(|e| RealtimeError::Protocol(format!("{what} does not serialize: {e}")))?;
        self.link.send_text(text)?;
        let answer = bounded(what, wait, async {
            waiter.await.map_err(|_| {
                RealtimeError::Connection(format!(
                    "the connection closed before the answer to {what}"
                ))
            })
        });
        match answer.await? {
            Err(e) => Err(e),
            Ok(ServerFrame::Error {
                code,
                message,
                channel,
                ..
            }) => Err(error_for_code(&code, &message, channel.as_deref(), ctx)),
            Ok(frame) => Ok(frame),
        }
    }

    /// Says goodbye with a WebSocket close frame (1000) and stops the reader. Nothing more
    /// reaches the sink; requests still waiting fail at once.
    pub(crate) async fn close(&self) {
        self.pending.clear();
        self.link
            .close(GOODBYE_CODE, GOODBYE_REASON, transport::DEFAULT_CLOSE_GRACE)
            .await;
    }
}

/// The native protocol's side of the reader.
struct NativeDispatcher {
    sink: EventSink,
    pending: Pending<String, Answer>,
}

impl Dispatcher for NativeDispatcher {
    fn on_frame(&mut self, frame: Frame<'_>, _link: &LinkSender) -> Flow {
        let alive = match frame {
            Frame::Text(text) => on_text(&self.sink, &self.pending, text),
            Frame::Binary(_) => self.sink.error(
                None,
                RealtimeError::Protocol("the server sent a binary frame".into()),
            ),
        };
        if !alive {
            self.pending.clear();
        }
        Flow::from(alive)
    }

    fn on_close(&mut self, close: PeerClose) {
        let reason = match (close.clean, close.code) {
            (true, None) => close_reason(None, "closed without a code"),
            _ => close_reason(close.code, &close.reason),
        };
        debug!(code = ?reason.code, message = %reason.message, "websocket closed");
        self.sink.closed(reason);
        self.pending.clear();
    }
}

/// The concrete channel of a frame, or a protocol error event.
fn parse_channel(sink: &EventSink, name: &str) -> Option<Channel> {
    match Channel::parse(name) {
        Ok(c) => Some(c),
        Err(e) => {
            sink.error(
                None,
                RealtimeError::Protocol(format!("the server named an invalid channel: {e}")),
            );
            None
        }
    }
}

/// A message frame to the sink; `None` position for a snapshot (retained state is not part of
/// the stream, so it neither advances nor is skipped by the core's de-duplication).
fn emit_message(sink: &EventSink, frame: &MessageFrame, snapshot: bool) -> bool {
    match frame.to_message() {
        Ok(mut message) => {
            if snapshot {
                message.position = None;
            }
            sink.message(message)
        }
        Err(e) => sink.error(None, e),
    }
}

/// Handles one text frame; returns whether the sink still has a listener.
fn on_text(sink: &EventSink, pending: &Pending<String, Answer>, text: &str) -> bool {
    let frame = match serde_json::from_str::<ServerFrame>(text) {
        Ok(frame) => frame,
        Err(e) => {
            let error = RealtimeError::Protocol(format!("malformed frame from the server: {e}"));
            // A malformed answer still fails its request instead of leaving it to time out.
            let reference = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("ref").and_then(Value::as_str).map(str::to_owned));
            if let Some(reference) = reference {
                pending.settle(&reference, Err(error.clone()));
            }
            return sink.error(None, error);
        }
    };
    match frame {
        ServerFrame::Subscribed {
            ref reference,
            ref channel,
            ref snapshot,
            ref members,
            ref messages,
            ..
        } => {
            // What the subscription brings reaches the sink before `subscribe` returns, and
            // before any live message read after this frame.
            if let Some(channel) = parse_channel(sink, channel) {
                if let Some(snapshot) = snapshot {
                    emit_message(sink, snapshot, true);
                }
                if let Some(members) = members {
                    sink.presence(channel, PresenceChange::Snapshot(members.clone()));
                }
                for m in messages {
                    emit_message(sink, m, false);
                }
            }
            answer(sink, pending, reference.clone(), frame)
        }
        ServerFrame::Unsubscribed { ref reference, .. }
        | ServerFrame::Ack { ref reference }
        | ServerFrame::Pong { ref reference }
        | ServerFrame::History { ref reference, .. } => {
            answer(sink, pending, reference.clone(), frame)
        }
        ServerFrame::Error {
            ref reference,
            ref code,
            ref message,
            ref channel,
        } => {
            // A refusal answers its request; one nobody waits for is still reported.
            if let Some(r) = reference.as_deref()
                && pending.settle(r, Ok(frame.clone()))
            {
                return true;
            }
            let ch = channel.as_deref().and_then(|c| Channel::parse(c).ok());
            let error = error_for_code(code, message, channel.as_deref(), CodeContext::default());
            sink.error(ch, error)
        }
        ServerFrame::Message(m) => emit_message(sink, &m, false),
        ServerFrame::Presence {
            channel,
            action,
            member,
        } => match parse_channel(sink, &channel) {
            Some(channel) => sink.presence(
                channel,
                match action {
                    PresenceAction::Join => PresenceChange::Joined(member),
                    PresenceAction::Update => PresenceChange::Updated(member),
                    PresenceAction::Leave => PresenceChange::Left(member),
                },
            ),
            None => true,
        },
        ServerFrame::Connected { .. } => sink.error(
            None,
            RealtimeError::Protocol("a second `connected` frame".into()),
        ),
    }
}

/// Hands an answer to the request waiting for its `ref`.
fn answer(
    sink: &EventSink,
    pending: &Pending<String, Answer>,
    reference: Option<String>,
    frame: ServerFrame,
) -> bool {
    let settled = match reference.as_deref() {
        Some(r) => pending.settle(r, Ok(frame)),
        None => false,
    };
    if !settled {
        warn!(
            ?reference,
            "an answer nobody waits for (late, or never asked)"
        );
    }
    !sink.is_closed()
}

//! The WebSocket link: one connection to `GET /ws?v=1`, a reader task that reports what arrives
//! through the [`EventSink`], and requests matched to their answers by `ref`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use relayport_core::{Channel, EventSink, PresenceChange, RealtimeError, Reconnect, Result};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, warn};

use crate::client::errors::{CodeContext, close_reason, error_for_code};
use crate::protocol::{
    ClientFrame, Limits, MessageFrame, PROTOCOL_VERSION, PresenceAction, ServerFrame,
};

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Answer = Result<ServerFrame>;

/// Requests waiting for their answer, by `ref`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pending(Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>);

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, oneshot::Sender<Answer>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, reference: String) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(reference, tx);
        rx
    }

    fn take(&self, reference: &str) -> Option<oneshot::Sender<Answer>> {
        self.lock().remove(reference)
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

/// Removes a request from [`Pending`] when its caller stops waiting (answer, timeout, or the
/// caller's future dropped by the core's own timeout).
struct PendingGuard<'a> {
    pending: &'a Pending,
    reference: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.take(&self.reference);
    }
}

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
    writer: tokio::sync::Mutex<SplitSink<WsStream, WsMessage>>,
    pending: Pending,
    reader: JoinHandle<()>,
    next_ref: std::sync::atomic::AtomicU64,
    pub(crate) hello: Hello,
}

impl std::fmt::Debug for WsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsLink")
            .field("socket_id", &self.hello.socket_id)
            .finish_non_exhaustive()
    }
}

fn connection_error(e: impl std::fmt::Display) -> RealtimeError {
    RealtimeError::Connection(e.to_string())
}

/// Opens the WebSocket at `url` and waits (at most `wait`) for the `connected` frame.
pub(crate) async fn open(url: &str, sink: EventSink, wait: Duration) -> Result<Opened> {
    let attempt = async {
        let (stream, _response) = match tokio_tungstenite::connect_async(url).await {
            Ok(ok) => ok,
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status();
                if status.is_client_error() {
                    return Ok(Err(status.as_u16()));
                }
                return Err(RealtimeError::Connection(format!(
                    "the WebSocket upgrade was answered with HTTP {status}"
                )));
            }
            Err(e) => return Err(connection_error(e)),
        };
        let (writer, mut reader) = stream.split();
        let hello = read_hello(&mut reader).await?;
        Ok(Ok((writer, reader, hello)))
    };
    let (writer, reader, hello) = match timeout(wait, attempt).await {
        Err(_) => return Err(RealtimeError::timeout("the `connected` frame", wait)),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(Err(status))) => return Ok(Opened::Refused(status)),
        Ok(Ok(Ok(parts))) => parts,
    };
    let pending = Pending::default();
    let reader = tokio::spawn(read_loop(reader, sink, pending.clone()));
    Ok(Opened::Link(WsLink {
        writer: tokio::sync::Mutex::new(writer),
        pending,
        reader,
        next_ref: std::sync::atomic::AtomicU64::new(0),
        hello,
    }))
}

/// Reads frames until the first one that matters, which must be `connected`.
async fn read_hello(reader: &mut SplitStream<WsStream>) -> Result<Hello> {
    loop {
        let frame = match reader.next().await {
            None => {
                return Err(RealtimeError::Connection(
                    "closed before `connected`".into(),
                ));
            }
            Some(Err(e)) => return Err(connection_error(e)),
            Some(Ok(frame)) => frame,
        };
        let text = match frame {
            WsMessage::Text(text) => text,
            WsMessage::Close(close) => {
                let (code, reason) = close
                    .map(|c| (Some(u16::from(c.code)), c.reason.to_string()))
                    .unwrap_or((None, String::new()));
                let reason = close_reason(code, &reason);
                finish_close(reader).await;
                return Err(match reason.reconnect {
                    Reconnect::Never(e) => e,
                    _ => RealtimeError::Connection(reason.message),
                });
            }
            WsMessage::Binary(_) => {
                return Err(RealtimeError::Protocol(
                    "a binary frame where `connected` was expected".into(),
                ));
            }
            _ => continue,
        };
        return match serde_json::from_str::<ServerFrame>(&text) {
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
        };
    }
}

impl WsLink {
    /// Sends `frame` with a fresh `ref` and waits (at most `wait`) for its answer. An `error`
    /// answer becomes the mapped [`RealtimeError`] (with `ctx`).
    pub(crate) async fn request(
        &self,
        what: &str,
        wait: Duration,
        ctx: CodeContext<'_>,
        build: impl FnOnce(Option<String>) -> ClientFrame,
    ) -> Result<ServerFrame> {
        let reference = (self
            .next_ref
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1)
        .to_string();
        let rx = self.pending.insert(reference.clone());
        let _guard = PendingGuard {
            pending: &self.pending,
            reference: reference.clone(),
        };
        let frame = build(Some(reference));
        let text = serde_json::to_string(&frame)
            .map_err(|e| RealtimeError::Protocol(format!("{what} does not serialize: {e}")))?;
        self.writer
            .lock()
            .await
            .send(WsMessage::text(text))
            .await
            .map_err(connection_error)?;
        match timeout(wait, rx).await {
            Err(_) => Err(RealtimeError::timeout(what, wait)),
            Ok(Err(_)) => Err(RealtimeError::Connection(format!(
                "the connection closed before the answer to {what}"
            ))),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Ok(Ok(ServerFrame::Error {
                code,
                message,
                channel,
                ..
            }))) => Err(error_for_code(&code, &message, channel.as_deref(), ctx)),
            Ok(Ok(Ok(frame))) => Ok(frame),
        }
    }

    /// Closes the connection politely and stops the reader. Nothing more reaches the sink.
    pub(crate) async fn close(&self) {
        self.reader.abort();
        self.pending.clear();
        let mut writer = self.writer.lock().await;
        let _ = timeout(Duration::from_secs(1), writer.close()).await;
    }
}

impl Drop for WsLink {
    fn drop(&mut self) {
        self.reader.abort();
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
        Some(mut message) => {
            if snapshot {
                message.position = None;
            }
            sink.message(message)
        }
        None => sink.error(
            None,
            RealtimeError::Protocol(format!(
                "a message on an invalid channel `{}`",
                frame.channel
            )),
        ),
    }
}

/// Reads frames until the link closes; reports every one, and why the link closed, through
/// the sink. Exits early when nobody listens to the sink any more.
async fn read_loop(mut reader: SplitStream<WsStream>, sink: EventSink, pending: Pending) {
    let reason = loop {
        let frame = match reader.next().await {
            None => break close_reason(None, ""),
            Some(Err(e)) => break close_reason(None, &e.to_string()),
            Some(Ok(frame)) => frame,
        };
        let alive = match frame {
            WsMessage::Text(text) => on_text(&sink, &pending, &text),
            WsMessage::Binary(_) => sink.error(
                None,
                RealtimeError::Protocol("the server sent a binary frame".into()),
            ),
            WsMessage::Close(close) => {
                break match close {
                    Some(c) => close_reason(Some(u16::from(c.code)), &c.reason),
                    None => close_reason(None, "closed without a code"),
                };
            }
            _ => true,
        };
        if !alive {
            pending.clear();
            return;
        }
    };
    debug!(code = ?reason.code, message = %reason.message, "websocket closed");
    sink.closed(reason);
    pending.clear();
    finish_close(&mut reader).await;
}

/// After the server's close frame: reads on briefly so that the close reply is flushed and the
/// server sees a clean close handshake.
async fn finish_close(reader: &mut SplitStream<WsStream>) {
    let _ = timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = reader.next().await {}
    })
    .await;
}

/// Handles one text frame; returns whether the sink still has a listener.
fn on_text(sink: &EventSink, pending: &Pending, text: &str) -> bool {
    let frame = match serde_json::from_str::<ServerFrame>(text) {
        Ok(frame) => frame,
        Err(e) => {
            let error = RealtimeError::Protocol(format!("malformed frame from the server: {e}"));
            // A malformed answer still fails its request instead of leaving it to time out.
            let reference = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("ref").and_then(Value::as_str).map(str::to_owned));
            if let Some(waiter) = reference.and_then(|r| pending.take(&r)) {
                let _ = waiter.send(Err(error.clone()));
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
        | ServerFrame::Pong { ref reference } => answer(sink, pending, reference.clone(), frame),
        ServerFrame::Error {
            ref reference,
            ref code,
            ref message,
            ref channel,
        } => {
            let waiter = reference.as_deref().and_then(|r| pending.take(r));
            match waiter {
                Some(w) => {
                    let _ = w.send(Ok(frame));
                    true
                }
                None => {
                    let ch = channel.as_deref().and_then(|c| Channel::parse(c).ok());
                    let error =
                        error_for_code(code, message, channel.as_deref(), CodeContext::default());
                    sink.error(ch, error)
                }
            }
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
    pending: &Pending,
    reference: Option<String>,
    frame: ServerFrame,
) -> bool {
    match reference.as_deref().and_then(|r| pending.take(r)) {
        Some(waiter) => {
            let _ = waiter.send(Ok(frame));
        }
        None => warn!(
            ?reference,
            "an answer nobody waits for (late, or never asked)"
        ),
    }
    !sink.is_closed()
}

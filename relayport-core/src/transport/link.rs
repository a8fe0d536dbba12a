//! The WebSocket link: open (TLS from the [`LinkConfig`]), one writer task, one reader task
//! feeding the provider's [`Dispatcher`], and a close with a grace period.
//!
//! A link's life: [`open`] returns a [`Handshake`] (the writer already runs, so the provider can
//! send while it reads its protocol's greeting with [`Handshake::recv`]); [`Handshake::start`]
//! hands the reader to the dispatcher and returns the [`Link`]; [`Link::close`] says goodbye.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::debug;

use crate::error::{RealtimeError, Result};
use crate::transport::LinkConfig;
use crate::transport::close::PeerClose;

/// A byte stream a link runs over: TCP, or whatever a provider's custom connector opens (an
/// in-memory pipe in tests, a proxy tunnel).
pub trait LinkIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> LinkIo for T {}

type WsStream = WebSocketStream<MaybeTlsStream<Box<dyn LinkIo>>>;

/// How long the reader goes on reading after the peer's close frame, so that the close reply
/// is flushed and the peer sees a clean close handshake.
pub const CLOSE_REPLY_GRACE: Duration = Duration::from_secs(1);

/// The default time [`Link::close`] waits for the peer to answer the close frame.
pub const DEFAULT_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// One data frame, borrowed from the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A text frame.
    Text(&'a str),
    /// A binary frame.
    Binary(&'a [u8]),
}

/// One data frame received during the [`Handshake`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl Received {
    /// The frame, borrowed (to feed the same codec as the [`Dispatcher`]).
    pub fn as_frame(&self) -> Frame<'_> {
        match self {
            Self::Text(t) => Frame::Text(t),
            Self::Binary(b) => Frame::Binary(b),
        }
    }
}

/// Whether the reader goes on after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next frame.
    Continue,
    /// Stop reading, without calling [`Dispatcher::on_close`] (nobody listens any more).
    Stop,
}

impl From<bool> for Flow {
    /// `true` (the sink still has a listener, as [`crate::EventSink::emit`] reports) continues.
    fn from(alive: bool) -> Self {
        if alive { Self::Continue } else { Self::Stop }
    }
}

/// A provider's side of the reader: its codec and what it does with each decoded frame.
///
/// Called from the link's reader task, one frame at a time, in arrival order. It must not
/// block: hand frames to the [`crate::EventSink`], settle [`crate::transport::Pending`]
/// requests, answer protocol pings through the [`LinkSender`].
pub trait Dispatcher: Send + 'static {
    /// One text or binary frame from the peer.
    fn on_frame(&mut self, frame: Frame<'_>, link: &LinkSender) -> Flow;

    /// The peer closed the link, or it was lost. Not called after [`Link::close`] (a goodbye
    /// this side asked for), nor after [`Flow::Stop`].
    fn on_close(&mut self, close: PeerClose);
}

/// Why [`open`] failed.
#[derive(Debug, Clone, PartialEq)]
pub enum OpenError {
    /// The server answered the upgrade with this HTTP status instead of switching protocols
    /// (a proxy that does not pass WebSockets, a refused key).
    Refused {
        /// The HTTP status.
        status: u16,
        /// The response body (lossy UTF-8; empty when there was none).
        body: String,
    },
    /// Anything else: DNS, TCP, TLS, a malformed URL.
    Failed(RealtimeError),
}

impl From<OpenError> for RealtimeError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Refused { status, .. } => RealtimeError::Connection(format!(
                "the WebSocket upgrade was answered with HTTP {status}"
            )),
            OpenError::Failed(e) => e,
        }
    }
}

/// The URL without its query and fragment: what may appear in an error or a log (a query may
/// carry an API key).
pub fn redact_url(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// Opens a WebSocket to `url` (`ws://` or `wss://`, TLS from `config`) over TCP and starts its
/// writer.
///
/// No timeout of its own: the caller (the core's connect timeout) bounds it.
pub async fn open(url: &str, config: &LinkConfig) -> Result<Handshake, OpenError> {
    let (host, port) = host_and_port(url)?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| {
            OpenError::Failed(RealtimeError::Connection(format!(
                "WebSocket to {}: {e}",
                redact_url(url)
            )))
        })?;
    let _ = tcp.set_nodelay(true);
    open_over(url, Box::new(tcp), config).await
}

/// The host and port of a `ws://` / `wss://` URL (default ports 80 and 443).
fn host_and_port(url: &str) -> Result<(String, u16), OpenError> {
    let bad = |why: &str| {
        OpenError::Failed(RealtimeError::Config(format!(
            "WebSocket URL `{}`: {why}",
            redact_url(url)
        )))
    };
    let request = url.into_client_request().map_err(|e| bad(&e.to_string()))?;
    let uri = request.uri();
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = match (uri.port_u16(), uri.scheme_str()) {
        (Some(port), _) => port,
        (None, Some("wss")) => 443,
        (None, Some("ws")) => 80,
        _ => return Err(bad("the scheme must be ws or wss")),
    };
    Ok((host, port))
}

/// Opens a WebSocket to `url` over `io`, a stream the caller opened (TLS from `config` for
/// `wss://`), and starts its writer.
pub async fn open_over(
    url: &str,
    io: Box<dyn LinkIo>,
    config: &LinkConfig,
) -> Result<Handshake, OpenError> {
    let request = url.into_client_request().map_err(|e| {
        OpenError::Failed(RealtimeError::Config(format!(
            "WebSocket URL `{}`: {e}",
            redact_url(url)
        )))
    })?;
    let connector = Connector::Rustls(config.tls().clone());
    let (stream, _response) =
        match tokio_tungstenite::client_async_tls_with_config(request, io, None, Some(connector))
            .await
        {
            Ok(ok) => ok,
            Err(tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                return Err(OpenError::Refused {
                    status: response.status().as_u16(),
                    body,
                });
            }
            Err(e) => {
                return Err(OpenError::Failed(RealtimeError::Connection(format!(
                    "WebSocket to {}: {e}",
                    redact_url(url)
                ))));
            }
        };
    let (write, read) = stream.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(write, rx));
    Ok(Handshake {
        read: Some(read),
        sender: LinkSender { tx },
        writer: Some(writer),
    })
}

/// The one writer: sends what the [`LinkSender`]s queue, in order, until a close frame went out
/// or every sender is gone.
async fn write_loop(
    mut write: SplitSink<WsStream, WsMessage>,
    mut rx: mpsc::UnboundedReceiver<WsMessage>,
) {
    while let Some(message) = rx.recv().await {
        let is_close = matches!(message, WsMessage::Close(_));
        if let Err(e) = write.send(message).await {
            debug!(error = %e, "the link's writer stopped");
            return;
        }
        if is_close {
            return;
        }
    }
    let _ = write.close().await;
}

/// Queues frames for the link's writer. Cheap to clone; sending never blocks.
#[derive(Debug, Clone)]
pub struct LinkSender {
    tx: mpsc::UnboundedSender<WsMessage>,
}

fn gone() -> RealtimeError {
    RealtimeError::Connection("the connection is closed".into())
}

impl LinkSender {
    /// Queues a text frame.
    pub fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.tx
            .send(WsMessage::text(text.into()))
            .map_err(|_| gone())
    }

    /// Queues a binary frame.
    pub fn send_binary(&self, bytes: impl Into<Vec<u8>>) -> Result<()> {
        self.tx
            .send(WsMessage::binary(bytes.into()))
            .map_err(|_| gone())
    }

    /// Whether the writer is gone (the link closed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Queues a close frame: the writer sends it after everything queued before, then stops.
    /// For a dispatcher ending the link itself (then returning [`Flow::Stop`]); a goodbye
    /// from outside the reader is [`Link::close`].
    pub fn send_close(&self, code: u16, reason: &str) -> Result<()> {
        self.tx
            .send(WsMessage::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            })))
            .map_err(|_| gone())
    }
}

/// An open WebSocket before its reader runs: the provider reads its protocol's greeting here.
pub struct Handshake {
    read: Option<SplitStream<WsStream>>,
    sender: LinkSender,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake").finish_non_exhaustive()
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
    }
}

impl Handshake {
    /// The link's sender (usable before and after [`Handshake::start`]).
    pub fn sender(&self) -> &LinkSender {
        &self.sender
    }

    /// The next data frame (pings and pongs are skipped). `Err` when the peer closed or the
    /// connection was lost; after a close frame the close reply is flushed before returning.
    pub async fn recv(&mut self) -> Result<Received, PeerClose> {
        let Some(read) = self.read.as_mut() else {
            return Err(PeerClose::lost("the reader has started"));
        };
        loop {
            match read.next().await {
                Some(Ok(WsMessage::Text(t))) => return Ok(Received::Text(t.as_str().to_owned())),
                Some(Ok(WsMessage::Binary(b))) => return Ok(Received::Binary(b.to_vec())),
                Some(Ok(WsMessage::Close(frame))) => {
                    let close = PeerClose::from_frame(frame.as_ref());
                    finish_close(read).await;
                    return Err(close);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(PeerClose::lost(e.to_string())),
                None => return Err(PeerClose::lost("")),
            }
        }
    }

    /// Starts the reader: every frame from now on goes to `dispatcher`.
    pub fn start(mut self, dispatcher: impl Dispatcher) -> Link {
        let read = self.read.take().expect("a handshake starts once");
        let writer = self.writer.take().expect("a handshake starts once");
        let closing = Arc::new(AtomicBool::new(false));
        let (finished_tx, finished) = watch::channel(false);
        let reader = tokio::spawn(read_loop(
            read,
            dispatcher,
            self.sender.clone(),
            closing.clone(),
            Finished(finished_tx),
        ));
        Link {
            sender: self.sender.clone(),
            reader,
            writer,
            closing,
            finished,
        }
    }
}

/// After the peer's close frame: reads on briefly so that the close reply is flushed.
async fn finish_close(read: &mut SplitStream<WsStream>) {
    let _ = timeout(CLOSE_REPLY_GRACE, async {
        while let Some(Ok(_)) = read.next().await {}
    })
    .await;
}

/// Tells [`Link::close`] that the reader ended, however it ended (returned or aborted).
struct Finished(watch::Sender<bool>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// The one reader: feeds every data frame to the dispatcher until the link ends.
async fn read_loop(
    mut read: SplitStream<WsStream>,
    mut dispatcher: impl Dispatcher,
    sender: LinkSender,
    closing: Arc<AtomicBool>,
    _finished: Finished,
) {
    let close = loop {
        let message = read.next().await;
        if closing.load(Ordering::Acquire)
            && matches!(message, Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None)
        {
            // A goodbye this side asked for ended: the peer's reply is not a close to report.
            return;
        }
        let flow = match message {
            Some(Ok(WsMessage::Text(t))) => dispatcher.on_frame(Frame::Text(t.as_str()), &sender),
            Some(Ok(WsMessage::Binary(b))) => dispatcher.on_frame(Frame::Binary(&b), &sender),
            Some(Ok(WsMessage::Close(frame))) => break PeerClose::from_frame(frame.as_ref()),
            Some(Ok(_)) => Flow::Continue,
            Some(Err(e)) => break PeerClose::lost(e.to_string()),
            None => break PeerClose::lost(""),
        };
        if flow == Flow::Stop {
            return;
        }
    };
    if closing.load(Ordering::Acquire) {
        return;
    }
    debug!(code = ?close.code, reason = %close.reason, clean = close.clean, "link closed by the peer");
    let clean = close.clean;
    dispatcher.on_close(close);
    if clean {
        finish_close(&mut read).await;
    }
}

/// An open link: its writer and its reader run until [`Link::close`] or drop (drop stops both
/// at once, without a goodbye).
pub struct Link {
    sender: LinkSender,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    closing: Arc<AtomicBool>,
    finished: watch::Receiver<bool>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("closing", &self.closing.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Link {
    /// The link's sender.
    pub fn sender(&self) -> &LinkSender {
        &self.sender
    }

    /// Queues a text frame.
    pub fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.sender.send_text(text)
    }

    /// Queues a binary frame.
    pub fn send_binary(&self, bytes: impl Into<Vec<u8>>) -> Result<()> {
        self.sender.send_binary(bytes)
    }

    /// Whether the reader has stopped (the peer closed, the connection was lost, or the
    /// dispatcher stopped it).
    pub fn is_finished(&self) -> bool {
        self.reader.is_finished()
    }

    /// Says goodbye: sends a close frame with `code` and `reason` after every frame queued
    /// before it, then waits at most `grace` for the peer's close reply, and stops both tasks.
    /// What the peer sent before its reply still reaches the dispatcher; the end of the link
    /// does not (no [`Dispatcher::on_close`]). Idempotent: a second call (or one after the
    /// peer closed) returns at once.
    pub async fn close(&self, code: u16, reason: &str, grace: Duration) {
        self.close_with(
            Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }),
            grace,
        )
        .await;
    }

    /// [`Link::close`] with a close frame without a code (the peer sees 1005, as after
    /// realtime-js's `disconnect()`).
    pub async fn close_without_code(&self, grace: Duration) {
        self.close_with(None, grace).await;
    }

    async fn close_with(&self, frame: Option<CloseFrame>, grace: Duration) {
        let already = self.closing.swap(true, Ordering::AcqRel);
        if !already
            && !self.reader.is_finished()
            && self.sender.tx.send(WsMessage::Close(frame)).is_ok()
        {
            let mut finished = self.finished.clone();
            let _ = timeout(grace, finished.wait_for(|done| *done)).await;
        }
        self.reader.abort();
        self.writer.abort();
    }
}

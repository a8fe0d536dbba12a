//! Test support for the client tests: a scripted WebSocket peer that plays the server and
//! asserts every frame the client sends, and helpers to await sink events with a bound.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relayport_core::{EventSink, ProviderEvent};
use relayport_selfhosted::protocol::{ClientFrame, Limits, ServerFrame};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// How long a test waits for something that should happen (generous: never reached when
/// things work, so it costs nothing).
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `fut` at most [`WAIT`], failing the test with `what` otherwise.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A listener playing the server.
pub struct PeerServer {
    listener: TcpListener,
    /// The base URL to give the provider.
    pub url: String,
}

/// One accepted client connection.
pub struct Peer {
    ws: WebSocketStream<TcpStream>,
    /// The request path and query of the upgrade.
    pub uri: String,
}

impl PeerServer {
    /// Binds on a free loopback port.
    pub async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        Self { listener, url }
    }

    /// Accepts one WebSocket connection (no frame sent yet).
    pub async fn accept(&self) -> Peer {
        let (tcp, _) = within("a TCP connection", self.listener.accept())
            .await
            .expect("accept");
        let (uri_tx, uri_rx) = std::sync::mpsc::channel();
        #[allow(clippy::result_large_err)] // the callback's signature is tungstenite's
        let callback = |req: &Request, resp: Response| {
            let _ = uri_tx.send(req.uri().to_string());
            Ok(resp)
        };
        let ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
            .await
            .expect("handshake");
        let uri = uri_rx.recv().unwrap_or_default();
        Peer { ws, uri }
    }

    /// Accepts one connection and greets it with `connected`.
    pub async fn accept_connected(&self, socket_id: &str) -> Peer {
        let mut peer = self.accept().await;
        peer.send(&connected(socket_id)).await;
        peer
    }
}

/// A `connected` frame with the default limits and a 25 s heartbeat.
pub fn connected(socket_id: &str) -> ServerFrame {
    ServerFrame::Connected {
        socket_id: socket_id.into(),
        protocol: 1,
        heartbeat_ms: 25_000,
        limits: Limits::default(),
    }
}

impl Peer {
    /// Sends a frame.
    pub async fn send(&mut self, frame: &ServerFrame) {
        let text = serde_json::to_string(frame).expect("serialize");
        self.send_raw(&text).await;
    }

    /// Sends a text frame as is.
    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::binary(bytes.to_vec()))
            .await
            .expect("send");
    }

    /// The next frame the client sent, which must be a valid [`ClientFrame`].
    pub async fn recv(&mut self) -> ClientFrame {
        loop {
            let msg = within("a frame from the client", self.ws.next())
                .await
                .expect("the client closed the connection")
                .expect("read");
            match msg {
                Message::Text(text) => {
                    return serde_json::from_str(&text).unwrap_or_else(|e| {
                        panic!("the client sent an invalid frame {text}: {e}")
                    });
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Waits until the client closes the connection (close frame or end of stream); panics
    /// if it sends a text frame first.
    pub async fn expect_closed(&mut self) {
        loop {
            match within("the client to close", self.ws.next()).await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(t))) => panic!("expected a close, got {t}"),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits for the client's close frame and returns its code and reason; panics on a data
    /// frame or a connection dropped without a close frame (no goodbye).
    pub async fn expect_close_frame(&mut self) -> (u16, String) {
        loop {
            match within("the client's close frame", self.ws.next()).await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a close frame with a code, got {other:?}"),
            }
        }
    }

    /// Closes with a code.
    pub async fn close(mut self, code: u16, reason: &str) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }))
            .await;
        // Let the close handshake finish so the client reads the frame.
        let _ = tokio::time::timeout(WAIT, async { while self.ws.next().await.is_some() {} }).await;
    }

    /// Drops the TCP connection without a close frame.
    pub fn drop_tcp(self) {
        drop(self.ws);
    }
}

/// The `ref` of a client frame.
pub fn reference(frame: &ClientFrame) -> Option<String> {
    match frame {
        ClientFrame::Subscribe { reference, .. }
        | ClientFrame::Unsubscribe { reference, .. }
        | ClientFrame::Publish { reference, .. }
        | ClientFrame::PresenceEnter { reference, .. }
        | ClientFrame::PresenceUpdate { reference, .. }
        | ClientFrame::PresenceLeave { reference, .. }
        | ClientFrame::History { reference, .. }
        | ClientFrame::Ping { reference } => reference.clone(),
    }
}

/// The receiving side of a test sink.
pub struct Events {
    rx: mpsc::UnboundedReceiver<(u64, ProviderEvent)>,
}

/// A fresh sink and its receiver.
pub fn sink() -> (EventSink, Events) {
    let (sink, rx) = EventSink::channel();
    (sink, Events { rx })
}

impl Events {
    /// The next event, within [`WAIT`].
    pub async fn next(&mut self) -> ProviderEvent {
        within("a provider event", self.rx.recv())
            .await
            .expect("the sink was dropped")
            .1
    }

    /// An event already delivered, if any (no waiting).
    pub fn try_next(&mut self) -> Option<ProviderEvent> {
        self.rx.try_recv().ok().map(|(_, e)| e)
    }

    /// Every event already delivered.
    pub fn drain(&mut self) -> Vec<ProviderEvent> {
        std::iter::from_fn(|| self.try_next()).collect()
    }
}

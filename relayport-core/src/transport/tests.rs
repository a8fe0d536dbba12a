//! The link layer against loopback WebSocket servers (plain and TLS with a private CA).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::testdata::{CA_PEM, SERVER_CERT_PEM, SERVER_KEY_PEM};
use super::*;

/// What the test dispatcher saw.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Closed(PeerClose),
}

/// Records every frame; answers `ping` with `pong` through the link; stops on `stop`.
struct Recorder(mpsc::UnboundedSender<Seen>);

impl Dispatcher for Recorder {
    fn on_frame(&mut self, frame: Frame<'_>, link: &LinkSender) -> Flow {
        match frame {
            Frame::Text("ping") => {
                link.send_text("pong").unwrap();
            }
            Frame::Text("stop") => return Flow::Stop,
            _ => {}
        }
        let seen = match frame {
            Frame::Text(t) => Seen::Text(t.to_owned()),
            Frame::Binary(b) => Seen::Binary(b.to_vec()),
        };
        self.0.send(seen).is_ok().into()
    }

    fn on_close(&mut self, close: PeerClose) {
        let _ = self.0.send(Seen::Closed(close));
    }
}

fn recorder() -> (Recorder, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Recorder(tx), rx)
}

/// A one-connection WebSocket server on loopback; `url` to connect, `accept` to get the
/// server's side of the connection.
struct Server {
    listener: TcpListener,
    url: String,
}

impl Server {
    async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        Self { listener, url }
    }

    async fn accept(&self) -> WebSocketStream<TcpStream> {
        let (tcp, _) = self.listener.accept().await.unwrap();
        tokio_tungstenite::accept_async(tcp).await.unwrap()
    }
}

/// Opens a link to `server`, whose first frame is `hello`; returns the started link, the
/// server's side and the recorder's receiver.
async fn connected(
    server: &Server,
) -> (
    Link,
    WebSocketStream<TcpStream>,
    mpsc::UnboundedReceiver<Seen>,
) {
    let config = LinkConfig::new().unwrap();
    let (handshake, mut peer) = tokio::join!(open(&server.url, &config), server.accept());
    let mut handshake = handshake.unwrap();
    peer.send(WsMessage::text("hello")).await.unwrap();
    assert_eq!(
        handshake.recv().await.unwrap(),
        Received::Text("hello".into())
    );
    let (dispatcher, seen) = recorder();
    (handshake.start(dispatcher), peer, seen)
}

async fn next_text(peer: &mut WebSocketStream<TcpStream>) -> String {
    loop {
        match peer.next().await {
            Some(Ok(WsMessage::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

fn close_frame(code: u16, reason: &str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

#[tokio::test]
async fn frames_flow_both_ways_in_order() {
    let server = Server::bind().await;
    let (link, mut peer, mut seen) = connected(&server).await;

    link.send_text("a").unwrap();
    link.sender().send_text("b").unwrap();
    link.send_binary(vec![9u8]).unwrap();
    assert_eq!(next_text(&mut peer).await, "a");
    assert_eq!(next_text(&mut peer).await, "b");
    assert_eq!(
        peer.next().await.unwrap().unwrap(),
        WsMessage::binary(vec![9u8])
    );

    peer.send(WsMessage::text("x")).await.unwrap();
    peer.send(WsMessage::binary(vec![1u8, 2])).await.unwrap();
    peer.send(WsMessage::text("ping")).await.unwrap();
    assert_eq!(seen.recv().await, Some(Seen::Text("x".into())));
    assert_eq!(seen.recv().await, Some(Seen::Binary(vec![1, 2])));
    assert_eq!(seen.recv().await, Some(Seen::Text("ping".into())));
    // The dispatcher answered through the same writer.
    assert_eq!(next_text(&mut peer).await, "pong");
    assert!(!link.is_finished());
}

#[tokio::test]
async fn the_peers_close_frame_reaches_on_close_and_is_answered() {
    let server = Server::bind().await;
    let (_link, mut peer, mut seen) = connected(&server).await;

    peer.send(close_frame(4009, "idle too long")).await.unwrap();
    assert_eq!(
        seen.recv().await,
        Some(Seen::Closed(PeerClose {
            code: Some(4009),
            reason: "idle too long".into(),
            clean: true,
        }))
    );
    // The reader flushed the close reply: the server completes a clean close handshake.
    match peer.next().await {
        Some(Ok(WsMessage::Close(Some(reply)))) => assert_eq!(u16::from(reply.code), 4009),
        other => panic!("expected the close reply, got {other:?}"),
    }
    assert_eq!(seen.recv().await, None, "nothing after on_close");
}

#[tokio::test]
async fn a_lost_connection_is_reported_as_unclean() {
    let server = Server::bind().await;
    let (_link, peer, mut seen) = connected(&server).await;
    drop(peer);
    match seen.recv().await {
        Some(Seen::Closed(close)) => {
            assert!(!close.clean, "{close:?}");
            assert_eq!(close.code, None);
        }
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn close_says_goodbye_after_queued_frames_and_reports_nothing() {
    let server = Server::bind().await;
    let (link, mut peer, mut seen) = connected(&server).await;

    link.send_text("last words").unwrap();
    let goodbye = tokio::spawn(async move {
        link.close(1000, "client closed", DEFAULT_CLOSE_GRACE).await;
        // A second goodbye is a no-op.
        link.close(1000, "again", DEFAULT_CLOSE_GRACE).await;
    });
    assert_eq!(next_text(&mut peer).await, "last words");
    match peer.next().await {
        Some(Ok(WsMessage::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1000);
            assert_eq!(frame.reason.as_str(), "client closed");
        }
        other => panic!("expected the close frame, got {other:?}"),
    }
    // The server's reply (sent by tungstenite while reading) ends the client's wait.
    let _ = peer.next().await;
    goodbye.await.unwrap();
    assert_eq!(
        seen.recv().await,
        None,
        "a goodbye is not reported as a close"
    );
}

#[tokio::test]
async fn what_the_peer_sent_before_its_close_reply_is_still_dispatched() {
    let server = Server::bind().await;
    let (link, mut peer, mut seen) = connected(&server).await;
    let goodbye = tokio::spawn(async move { link.close(1000, "", DEFAULT_CLOSE_GRACE).await });
    // The server still has something to say when the goodbye starts; it answers the close
    // frame (tungstenite replies while reading) only after that.
    peer.send(WsMessage::text("late but valid")).await.unwrap();
    match peer.next().await {
        Some(Ok(WsMessage::Close(_))) => {}
        other => panic!("expected the close frame, got {other:?}"),
    }
    let _ = peer.next().await;
    goodbye.await.unwrap();
    assert_eq!(seen.recv().await, Some(Seen::Text("late but valid".into())));
    assert_eq!(seen.recv().await, None, "and no close report");
}

#[tokio::test]
async fn a_link_runs_over_a_stream_the_caller_opened() {
    let (client_io, server_io) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        let mut ws = tokio_tungstenite::accept_async(server_io).await.unwrap();
        ws.send(WsMessage::text("hello over a pipe")).await.unwrap();
        match ws.next().await {
            Some(Ok(WsMessage::Text(t))) => t.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    });
    let config = LinkConfig::new().unwrap();
    let mut handshake = open_over("ws://pipe.invalid/socket", Box::new(client_io), &config)
        .await
        .unwrap();
    assert_eq!(
        handshake.recv().await.unwrap(),
        Received::Text("hello over a pipe".into())
    );
    handshake.sender().send_text("answer").unwrap();
    assert_eq!(server.await.unwrap(), "answer");
}

#[tokio::test(start_paused = true)]
async fn close_gives_up_after_the_grace_when_the_peer_never_answers() {
    let server = Server::bind().await;
    let (link, mut peer, mut seen) = connected(&server).await;

    // The server does not read, so it never answers the close frame.
    let grace = Duration::from_secs(3);
    let started = tokio::time::Instant::now();
    link.close(1000, "", grace).await;
    assert_eq!(started.elapsed(), grace);
    assert_eq!(seen.recv().await, None);
    // The close frame did go out before the grace ran.
    match peer.next().await {
        Some(Ok(WsMessage::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected the close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn flow_stop_ends_the_reader_without_on_close() {
    let server = Server::bind().await;
    let (link, mut peer, mut seen) = connected(&server).await;
    peer.send(WsMessage::text("stop")).await.unwrap();
    peer.send(WsMessage::text("after")).await.unwrap();
    assert_eq!(
        seen.recv().await,
        None,
        "the dispatcher was dropped unheard"
    );
    assert!(link.is_finished());
}

#[tokio::test]
async fn the_handshake_reports_a_close_before_the_greeting() {
    let server = Server::bind().await;
    let config = LinkConfig::new().unwrap();
    let (handshake, mut peer) = tokio::join!(open(&server.url, &config), server.accept());
    let mut handshake = handshake.unwrap();
    peer.send(close_frame(4001, "app disabled")).await.unwrap();
    let close = handshake.recv().await.unwrap_err();
    assert_eq!(close.code, Some(4001));
    assert_eq!(close.reason, "app disabled");
    assert!(close.clean);
}

#[tokio::test]
async fn a_refused_upgrade_reports_its_status() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client hung up mid-request");
            request.extend_from_slice(&buf[..n]);
        }
        tcp.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
    });
    let err = open(&url, &LinkConfig::new().unwrap()).await.unwrap_err();
    assert_eq!(
        err,
        OpenError::Refused {
            status: 403,
            body: String::new()
        }
    );
    server.await.unwrap();
}

#[tokio::test]
async fn an_open_error_never_shows_the_query() {
    // Nothing listens on a just-released port: the connection is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/socket?apikey=sekrit");
    let err = RealtimeError::from(open(&url, &LinkConfig::new().unwrap()).await.unwrap_err());
    assert_eq!(err.kind(), crate::ErrorKind::Connection);
    let text = err.to_string();
    assert!(!text.contains("sekrit"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}/socket")), "{text}");
    assert_eq!(redact_url("wss://h/p?k=v#f"), "wss://h/p");
}

use crate::error::RealtimeError;

/// A TLS acceptor presenting the test CA's `localhost` / `127.0.0.1` certificate.
fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(SERVER_CERT_PEM)
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A TLS WebSocket server on loopback with the test CA's `localhost` certificate.
async fn tls_server() -> (String, tokio::task::JoinHandle<Option<String>>) {
    let acceptor = tls_acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "wss://localhost:{}/ws",
        listener.local_addr().unwrap().port()
    );
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // A client refusing the certificate ends the handshake: report that as `None`.
        let tls = acceptor.accept(tcp).await.ok()?;
        let mut ws = tokio_tungstenite::accept_async(tls).await.ok()?;
        ws.send(WsMessage::text("hello over tls")).await.ok()?;
        match ws.next().await {
            Some(Ok(WsMessage::Text(t))) => Some(t.as_str().to_owned()),
            _ => None,
        }
    });
    (url, task)
}

#[tokio::test]
async fn tls_with_a_private_ca_connects() {
    let (url, server) = tls_server().await;
    let mut roots = rustls::RootCertStore::empty();
    tls::add_pem_certificates(&mut roots, CA_PEM).unwrap();
    let config = LinkConfig::with_tls(tls::client_config(roots).unwrap()).unwrap();
    let mut handshake = open(&url, &config).await.unwrap();
    assert_eq!(
        handshake.recv().await.unwrap(),
        Received::Text("hello over tls".into())
    );
    handshake.sender().send_text("hi back").unwrap();
    assert_eq!(server.await.unwrap().as_deref(), Some("hi back"));
}

#[tokio::test]
async fn tls_refuses_a_certificate_outside_the_trust_store() {
    let (url, server) = tls_server().await;
    // The default trust store (webpki roots) does not know the test CA.
    let err = open(&url, &LinkConfig::new().unwrap()).await.unwrap_err();
    match err {
        OpenError::Failed(e) => {
            assert_eq!(e.kind(), crate::ErrorKind::Connection);
            assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    assert_eq!(server.await.unwrap(), None);
}

#[tokio::test]
async fn the_http_client_uses_the_injected_tls_config() {
    // An HTTPS request to the test server succeeds only if the private CA is trusted.
    let acceptor = tls_acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut buf = [0u8; 2048];
            let _ = tls.read(&mut buf).await;
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
            let _ = tls.shutdown().await;
        }
    });
    let url = format!("https://localhost:{port}/");

    let mut roots = rustls::RootCertStore::empty();
    tls::add_pem_certificates(&mut roots, CA_PEM).unwrap();
    let trusted = LinkConfig::with_tls(tls::client_config(roots).unwrap()).unwrap();
    let body = trusted
        .http()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");

    let default = LinkConfig::new().unwrap();
    assert!(default.http().get(&url).send().await.is_err());
}

//! Against a scripted Engine.IO peer on loopback. The heartbeat, on tokio's paused clock: the
//! client answers the server's ping at once, and `ping()` fails once nothing has come from the
//! server for longer than `pingInterval + pingTimeout` (what socket.io-client waits too). And
//! garbage from the server: every bad frame is a protocol error event, none stops the link.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relayport_core::{EventSink, RealtimeError, RealtimeProvider};
use relayport_socketio::{SocketIoConfig, SocketIoProvider};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Engine.IO's open packet with socket.io's default heartbeat.
const OPEN: &str = r#"0{"sid":"e","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#;

/// A loopback listener and the URL a provider connects to.
async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// Accepts the provider's WebSocket and sends Engine.IO's `open` packet.
async fn accept_engine(listener: TcpListener, open: &str) -> WebSocketStream<TcpStream> {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    ws.send(Message::text(open)).await.unwrap();
    ws
}

/// A peer that does the handshake (pingInterval 1000 ms, pingTimeout 500 ms), then sends a
/// ping whenever told and reports every text frame the client sends.
async fn scripted_peer() -> (
    String,
    mpsc::UnboundedSender<()>,
    mpsc::UnboundedReceiver<String>,
) {
    let (listener, url) = listen().await;
    let (ping_tx, mut ping_rx) = mpsc::unbounded_channel::<()>();
    let (seen_tx, seen_rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut ws = accept_engine(
            listener,
            r#"0{"sid":"engine-1","upgrades":[],"pingInterval":1000,"pingTimeout":500,"maxPayload":1000000}"#,
        )
        .await;
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        if t.as_str() == "40" {
                            ws.send(Message::text(r#"40{"sid":"socket-1"}"#)).await.unwrap();
                        }
                        let _ = seen_tx.send(t.as_str().to_owned());
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                Some(()) = ping_rx.recv() => ws.send(Message::text("2")).await.unwrap(),
            }
        }
    });
    (url, ping_tx, seen_rx)
}

#[tokio::test(start_paused = true)]
async fn pongs_at_once_and_bounds_silence_by_ping_interval_plus_timeout() {
    let (url, ping, mut seen) = scripted_peer().await;
    let provider = SocketIoProvider::new(SocketIoConfig::new(&url).unwrap()).unwrap();
    let (sink, _events) = EventSink::channel();
    let session = provider.connect(sink).await.unwrap();
    assert_eq!(session.connection_id, "socket-1");
    assert_eq!(
        session.heartbeat_interval,
        Some(Duration::from_millis(1000))
    );
    assert_eq!(seen.recv().await.as_deref(), Some("40"));

    ping.send(()).unwrap();
    assert_eq!(seen.recv().await.as_deref(), Some("3"), "the pong");
    assert!(provider.ping().await.is_ok());

    // Within the bound (1000 + 500 ms) the link counts as alive…
    tokio::time::advance(Duration::from_millis(1400)).await;
    assert!(provider.ping().await.is_ok());
    // …past it, the heartbeat fails and the core rebuilds the link.
    tokio::time::advance(Duration::from_millis(200)).await;
    let err = provider.ping().await.unwrap_err();
    assert!(
        matches!(err, RealtimeError::Connection(ref m) if m.contains("pingInterval")),
        "{err}"
    );

    // The server's next ping makes it alive again.
    ping.send(()).unwrap();
    assert_eq!(seen.recv().await.as_deref(), Some("3"));
    assert!(provider.ping().await.is_ok());
    provider.disconnect().await.unwrap();
}

/// A peer that does the handshake, then sends `frames` and stays open.
async fn peer_sending(mut frames: Vec<Message>) -> String {
    let (listener, url) = listen().await;
    tokio::spawn(async move {
        let mut ws = accept_engine(listener, OPEN).await;
        while let Some(Ok(frame)) = ws.next().await {
            if frame.to_text().is_ok_and(|t| t == "40") {
                ws.send(Message::text(r#"40{"sid":"s"}"#)).await.unwrap();
                for f in frames.drain(..) {
                    ws.send(f).await.unwrap();
                }
            }
        }
    });
    url
}

#[tokio::test]
async fn garbage_from_the_server_is_reported_never_dropped_or_fatal() {
    use relayport_core::ProviderEvent;
    let frames = vec![
        Message::text("9nonsense"),
        Message::text(r#"42["rp:message",{"channel":"private:","event":"e"}]"#),
        Message::text(
            r#"42["rp:presence",{"channel":"presence:x","action":"wave","member":{"id":"a"}}]"#,
        ),
        Message::binary(vec![1, 2, 3]),
        Message::text(r#"42["nobody-listens",1]"#),
        Message::text(r#"451-["e",{"_placeholder":true,"num":0}]"#),
        Message::text(r#"42["e"]"#),
        Message::text(r#"42["rp:message",{"channel":"news","event":"ok","data":1}]"#),
    ];
    let url = peer_sending(frames).await;
    let provider = SocketIoProvider::new(SocketIoConfig::new(&url).unwrap()).unwrap();
    let (sink, mut events) = EventSink::channel();
    provider.connect(sink).await.unwrap();
    let mut errors = 0;
    loop {
        let (_, event) = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event")
            .expect("the sink is open");
        match event {
            ProviderEvent::Error { error, .. } => {
                assert!(matches!(error, RealtimeError::Protocol(_)), "{error}");
                errors += 1;
            }
            ProviderEvent::Message(m) => {
                assert_eq!(
                    (m.event.as_str(), m.data.as_json().cloned().unwrap()),
                    ("ok", serde_json::json!(1))
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Six bad frames, six errors: the invalid channel, the unknown presence action, the stray
    // binary frame, the unheard event, the text frame cutting an attachment short, the
    // unknown Engine.IO type.
    assert_eq!(errors, 6);
    provider.disconnect().await.unwrap();
}

/// Echo off against an adapter that ignores `echo: false` (one older than the option): the
/// publish still asks for it, carries its bytes as one attachment, and the own message that
/// comes back anyway is not delivered, while another sender's bytes are.
#[tokio::test]
async fn echo_off_drops_an_own_message_an_old_adapter_sends_anyway() {
    use relayport_core::{Channel, OutboundMessage, Payload, ProviderEvent};
    let (listener, url) = listen().await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        let mut ws = accept_engine(listener, OPEN).await;
        while let Some(Ok(frame)) = ws.next().await {
            let _ = seen_tx.send(frame.clone());
            let Ok(text) = frame.to_text() else {
                // The publish's attachment: ack it (id 0, the first request), then relay the
                // message to everyone, the publisher ("me") included, and another's after it.
                ws.send(Message::text(r#"430[{"ok":true}]"#)).await.unwrap();
                for sender in ["me", "other"] {
                    ws.send(Message::text(format!(
                        r#"451-["rp:message",{{"channel":"files","event":"f","data":{{"_placeholder":true,"num":0}},"sender":"{sender}"}}]"#
                    )))
                    .await
                    .unwrap();
                    ws.send(Message::binary(frame.clone().into_data()))
                        .await
                        .unwrap();
                }
                continue;
            };
            if text == "40" {
                ws.send(Message::text(r#"40{"sid":"me"}"#)).await.unwrap();
            }
        }
    });
    let provider = SocketIoProvider::new(SocketIoConfig::new(&url).unwrap()).unwrap();
    provider.set_echo(false);
    let (sink, mut events) = EventSink::channel();
    provider.connect(sink).await.unwrap();
    let publishing = {
        let provider = provider.clone();
        tokio::spawn(async move {
            provider
                .publish(&OutboundMessage::new(
                    Channel::parse("files").unwrap(),
                    "f",
                    vec![0u8, 0xff],
                ))
                .await
        })
    };
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("a frame")
            .expect("the peer runs")
    };
    assert_eq!(next().await.to_text().unwrap(), "40");
    assert_eq!(
        next().await.to_text().unwrap(),
        r#"451-0["rp:publish",{"channel":"files","data":{"_placeholder":true,"num":0},"echo":false,"event":"f"}]"#
    );
    assert_eq!(next().await.into_data().as_ref(), &[0u8, 0xff][..]);
    publishing.await.unwrap().expect("acked");
    let (_, event) = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event")
        .expect("the sink is open");
    let ProviderEvent::Message(m) = event else {
        panic!("unexpected {event:?}")
    };
    // The first one delivered is the other sender's: "me" (own, echo off) was not.
    assert_eq!(m.sender.as_deref(), Some("other"));
    assert_eq!(m.data, Payload::from(vec![0u8, 0xff]));
    provider.disconnect().await.unwrap();
}

//! A scripted Pusher-protocol peer on loopback: it sends the server's frames and ASSERTS that
//! every frame the client sends is, byte for byte, the one the script expects. Any mismatch,
//! a missing frame or an unexpected extra frame fails the run.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send this text frame.
    Send(String),
    /// The client must send exactly this text frame next.
    Expect(String),
    /// Close with this code and reason.
    Close(u16, String),
    /// Wait until the client closes (or the socket drops).
    AwaitClose,
    /// Drop the TCP connection at once, without a close frame.
    Drop,
    /// The client must send nothing but heartbeats for this long (paused clock: no real
    /// wait): `pusher:ping` is answered with `pusher:pong`, any other text frame fails.
    Quiet(Duration),
    /// As `Quiet`, until the client says goodbye (close code 1000); bounded by an hour, a
    /// span no other timer of a test reaches (on the paused clock, every wait for I/O
    /// advances the clock to the next timer).
    Serve,
    /// The client must say goodbye with a close frame carrying this code (a dropped socket
    /// or a data frame fails the script).
    AwaitGoodbye(u16),
}

/// What the peer saw.
#[derive(Debug)]
pub struct PeerReport {
    /// The request path and query of the WebSocket handshake.
    pub path_and_query: String,
}

/// A running peer.
pub struct Peer {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    handle: JoinHandle<Result<PeerReport, String>>,
}

/// How long the peer waits for a frame before failing (bounded: never hangs a test).
pub const FRAME_WAIT: Duration = Duration::from_secs(60);

impl Peer {
    /// Starts a peer that serves one connection with `script`.
    pub async fn start(script: Vec<Step>) -> Peer {
        Self::start_many(vec![script]).await
    }

    /// Starts a peer that serves consecutive connections, one script each, in order.
    pub async fn start_many(scripts: Vec<Vec<Step>>) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        let handle = tokio::spawn(async move {
            let mut first = None;
            for (n, script) in scripts.into_iter().enumerate() {
                let report = serve(&listener, script)
                    .await
                    .map_err(|e| format!("connection {n}: {e}"))?;
                first.get_or_insert(report);
            }
            first.ok_or_else(|| "no script".to_string())
        });
        Peer { port, handle }
    }

    /// Waits for the script to finish; `Err` names the first mismatch.
    pub async fn finish(self) -> Result<PeerReport, String> {
        match tokio::time::timeout(Duration::from_secs(120), self.handle).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(format!("peer task failed: {e}")),
            Err(_) => Err("peer did not finish in 120 s".into()),
        }
    }
}

/// The `pusher:connection_established` frame for a socket id and activity timeout.
pub fn established(socket_id: &str, activity_timeout: u64) -> String {
    let data = serde_json::json!({"socket_id": socket_id, "activity_timeout": activity_timeout})
        .to_string();
    serde_json::json!({"event": "pusher:connection_established", "data": data}).to_string()
}

/// Answers heartbeats until `until` (`false`) or the client's goodbye (`true`).
async fn quiet(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    until: tokio::time::Instant,
    step: usize,
) -> Result<bool, String> {
    let ping = r#"{"event":"pusher:ping","data":{}}"#;
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => return Ok(false),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == ping => {
                let pong = r#"{"event":"pusher:pong","data":{}}"#;
                ws.send(Message::text(pong))
                    .await
                    .map_err(|e| format!("step {step}: pong: {e}"))?;
            }
            Ok(Some(Ok(Message::Close(Some(frame))))) if u16::from(frame.code) == 1000 => {
                let _ = ws.next().await;
                return Ok(true);
            }
            Ok(other) => return Err(format!("step {step}: expected quiet, got {other:?}")),
        }
    }
}

async fn serve(listener: &TcpListener, script: Vec<Step>) -> Result<PeerReport, String> {
    let (tcp, _) = tokio::time::timeout(FRAME_WAIT, listener.accept())
        .await
        .map_err(|_| "no client connected".to_string())?
        .map_err(|e| e.to_string())?;
    let mut path = String::new();
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
        path = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        Ok(resp)
    })
    .await
    .map_err(|e| format!("handshake: {e}"))?;
    for (i, step) in script.into_iter().enumerate() {
        match step {
            Step::Send(text) => ws
                .send(Message::text(text))
                .await
                .map_err(|e| format!("step {i}: send: {e}"))?,
            Step::Expect(want) => loop {
                let got = tokio::time::timeout(FRAME_WAIT, ws.next())
                    .await
                    .map_err(|_| {
                        format!("step {i}: no frame within {FRAME_WAIT:?}; expected {want}")
                    })?;
                match got {
                    Some(Ok(Message::Text(t))) => {
                        if t.as_str() != want {
                            return Err(format!("step {i}: expected\n  {want}\ngot\n  {t}"));
                        }
                        break;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => return Err(format!("step {i}: expected {want}, got {other:?}")),
                }
            },
            Step::Close(code, reason) => {
                ws.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                })))
                .await
                .map_err(|e| format!("step {i}: close: {e}"))?;
            }
            Step::AwaitGoodbye(code) => loop {
                match tokio::time::timeout(FRAME_WAIT, ws.next()).await {
                    Err(_) => return Err(format!("step {i}: client did not close")),
                    Ok(Some(Ok(Message::Close(Some(frame))))) if u16::from(frame.code) == code => {
                        // Answer it, so the client's goodbye completes without its grace.
                        let _ = ws.next().await;
                        break;
                    }
                    Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                    Ok(other) => {
                        return Err(format!(
                            "step {i}: expected a close frame {code}, got {other:?}"
                        ));
                    }
                }
            },
            Step::Drop => {
                drop(ws);
                return Ok(PeerReport {
                    path_and_query: path,
                });
            }
            Step::Quiet(span) => {
                let until = tokio::time::Instant::now() + span;
                if quiet(&mut ws, until, i).await? {
                    return Err(format!("step {i}: the client closed while quiet"));
                }
            }
            Step::Serve => {
                let until = tokio::time::Instant::now() + Duration::from_secs(3600);
                if !quiet(&mut ws, until, i).await? {
                    return Err(format!("step {i}: the client did not say goodbye"));
                }
            }
            Step::AwaitClose => loop {
                match tokio::time::timeout(FRAME_WAIT, ws.next()).await {
                    Err(_) => return Err(format!("step {i}: client did not close")),
                    Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => break,
                    Ok(Some(Ok(Message::Text(t)))) => {
                        return Err(format!("step {i}: unexpected frame from the client: {t}"));
                    }
                    Ok(Some(Ok(_))) => continue,
                }
            },
        }
    }
    Ok(PeerReport {
        path_and_query: path,
    })
}

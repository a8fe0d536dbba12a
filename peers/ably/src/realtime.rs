//! The realtime WebSocket endpoint (`GET /?key=…|access_token=…&v=…&format=json`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::state::{Out, Shared};

/// Upgrades and runs one socket.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| run(shared, q, socket))
}

async fn run(shared: Arc<Shared>, q: HashMap<String, String>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let opened = shared.open(&q, tx);
    // maxIdleInterval 0 means "no guarantee": no heartbeats at all.
    let beat = shared.cfg.max_idle_interval;
    let beats = !beat.is_zero();
    let period = if beats {
        beat
    } else {
        std::time::Duration::from_secs(3600)
    };
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Frame(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close) => {
                    let _ = sink.send(Message::Close(None)).await;
                    let _ = sink.flush().await;
                    // Give the peer a moment to read the close before the socket goes.
                    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), async {
                        while let Some(Ok(_)) = stream.next().await {}
                    }).await;
                    break;
                }
                Some(Out::Abort) | None => break,
            },
            frame = stream.next() => {
                let Some((id, epoch)) = &opened else {
                    // Refused at connect: only the queued ERROR and close remain to be sent.
                    if frame.is_none() { break; }
                    continue;
                };
                match frame {
                    Some(Ok(Message::Text(text))) => shared.inbound(id, *epoch, text.as_str()),
                    Some(Ok(Message::Binary(_))) => shared.inbound(id, *epoch, "binary"),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                }
            }
            _ = heartbeat.tick(), if beats && opened.is_some() => {
                if sink.send(Message::Text(r#"{"action":0}"#.into())).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some((id, epoch)) = opened {
        shared.link_lost(&id, epoch);
    }
}

//! The WebSocket endpoint: the handshake checks (`apikey`/`x-api-key` JWT, `vsn`), then one
//! task per socket moving frames between the client and the [`Hub`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;

use crate::frame::{self, Outbound, Vsn};
use crate::hub::{Cmd, Hub};

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({"error": error}))).into_response()
}

/// `GET /realtime/v1/websocket` (and `/socket/websocket`).
pub(crate) async fn upgrade(
    State(hub): State<Arc<Hub>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(vsn) = Vsn::parse(q.get("vsn").map(String::as_str)) else {
        return refuse(StatusCode::BAD_REQUEST, "unsupported vsn");
    };
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| q.get("apikey").cloned());
    let refused = match &key {
        None => Some("API key missing".to_owned()),
        Some(k) => hub.verify(k).err().map(|e| e.message()),
    };
    if let Some(error) = refused {
        tokio::time::sleep(hub.cfg.connect_error_backoff).await;
        return refuse(StatusCode::UNAUTHORIZED, &error);
    }
    let apikey = key.unwrap_or_default();
    ws.max_frame_size(5_000_000)
        .on_upgrade(move |socket| run(hub, socket, vsn, apikey))
}

async fn run(hub: Arc<Hub>, ws: WebSocket, vsn: Vsn, apikey: String) {
    let (id, mut rx) = hub.register(vsn, apikey);
    let (mut sink, mut stream) = ws.split();
    let idle = hub.cfg.idle_timeout;
    loop {
        let next = async {
            match idle {
                Some(t) => tokio::time::timeout(t, stream.next()).await.ok(),
                None => Some(stream.next().await),
            }
        };
        tokio::select! {
            cmd = rx.recv() => {
                // Everything queued goes out in one flush (a `system` + `phx_close` pair
                // leaves together, as one write).
                let Some(first) = cmd else { break };
                let mut cmd = Some(first);
                let mut open = true;
                while let Some(c) = cmd.take() {
                    let m = match c {
                        Cmd::Frame(Outbound::Text(t)) => Message::Text(t.into()),
                        Cmd::Frame(Outbound::Binary(b)) => Message::Binary(b.into()),
                        Cmd::Drop => {
                            open = false;
                            break;
                        }
                    };
                    if sink.feed(m).await.is_err() {
                        open = false;
                        break;
                    }
                    cmd = rx.try_recv().ok();
                }
                if !open || sink.flush().await.is_err() {
                    break;
                }
            }
            msg = next => {
                let decoded = match msg {
                    None => {
                        // Phoenix's idle timeout: nothing (not even a heartbeat) for too long.
                        let _ = sink.send(Message::Close(None)).await;
                        break;
                    }
                    Some(None) | Some(Some(Err(_))) | Some(Some(Ok(Message::Close(_)))) => break,
                    Some(Some(Ok(Message::Text(t)))) => frame::decode_text(vsn, t.as_str()),
                    Some(Some(Ok(Message::Binary(b)))) if vsn == Vsn::V2 => frame::decode_binary(&b),
                    Some(Some(Ok(Message::Binary(_)))) => {
                        Err(frame::Malformed("binary frame on a vsn 1.0.0 socket".into()))
                    }
                    Some(Some(Ok(_))) => continue, // ping/pong
                };
                match decoded {
                    Err(e) => hub.malformed(id, e.0),
                    Ok(m) => {
                        let (join_ref, msg_ref, topic) =
                            (m.join_ref.clone(), m.msg_ref.clone(), m.topic.clone());
                        if let Err(refused) = hub.handle(id, m) {
                            // The server sleeps CHANNEL_ERROR_BACKOFF_MS before a join error.
                            let delay = hub.join_error_backoff();
                            let hub = hub.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                hub.join_error(id, join_ref, msg_ref, &topic, &refused.0);
                            });
                        }
                    }
                }
            }
        }
    }
    hub.unregister(id);
}

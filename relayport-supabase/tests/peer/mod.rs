//! A scripted Realtime peer on loopback: it replays a scenario's server frames and asserts that
//! every frame the client sends equals the one realtime-js sent (byte for byte for binary
//! frames), modulo the refs, which are socket-wide counters: each ref realtime-js used is
//! mapped, on first sight, to the one our client used, consistently and one-to-one, and the
//! server frames are sent with the mapped refs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relayport_supabase::client::{Connector, Io};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::common::unhex;

/// How a connection of the script ends.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// The client closes with exactly this code and reason (`None`: no code, seen as 1005).
    ClientCloses(Option<(u16, String)>),
    /// The client closes, with any code (our documented deviation after `phx_error`).
    ClientClosesAny,
    /// The server drops the TCP connection without a close frame (1006).
    ServerDrops,
}

/// One accepted connection of the script.
#[derive(Debug, Clone)]
pub struct ConnScript {
    pub path_and_query: String,
    pub frames: Vec<Value>,
    pub end: End,
}

/// One handshake: refused with a status, or accepted and played.
#[derive(Debug, Clone)]
pub enum Attempt {
    Refuse { path_and_query: String, status: u16 },
    Accept(ConnScript),
}

/// realtime-js adds this to rejoins after a reconnect; we do not impersonate it.
pub const VERSION_FIELD: &str = ",\"version\":\"realtime-js/2.119.1\"";

fn v1_or_v2(text: &str) -> bool {
    text.starts_with('[')
}

fn refs_of(text: &str) -> Result<(Option<String>, Option<String>), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}: {text}"))?;
    let s = |x: Option<&Value>| x.and_then(Value::as_str).map(str::to_owned);
    Ok(match &v {
        Value::Array(a) => (s(a.first()), s(a.get(1))),
        Value::Object(o) => (s(o.get("join_ref")), s(o.get("ref"))),
        _ => return Err(format!("not a Phoenix message: {text}")),
    })
}

fn json_ref(r: &Option<String>) -> String {
    r.as_ref().map_or_else(
        || "null".to_owned(),
        |r| Value::String(r.clone()).to_string(),
    )
}

/// Rewrites the refs of a text frame, byte-exactly elsewhere.
fn rewrite_text(text: &str, jr: &Option<String>, r: &Option<String>) -> Result<String, String> {
    let (old_jr, old_r) = refs_of(text)?;
    if v1_or_v2(text) {
        let mut commas = text.match_indices(',').map(|(i, _)| i);
        let second = commas.nth(1).ok_or("short array")?;
        let rebuilt_old = format!("[{},{}", json_ref(&old_jr), json_ref(&old_r));
        if text[..second] != rebuilt_old {
            return Err(format!("unexpected ref layout in {text}"));
        }
        Ok(format!(
            "[{},{}{}",
            json_ref(jr),
            json_ref(r),
            &text[second..]
        ))
    } else {
        let at = text.rfind(",\"ref\":").ok_or("no ref key")?;
        let has_jr = text[at..].contains("\"join_ref\":");
        let suffix = |jr: &Option<String>, r: &Option<String>| {
            let mut s = format!(",\"ref\":{}", json_ref(r));
            if has_jr {
                s.push_str(&format!(",\"join_ref\":{}", json_ref(jr)));
            }
            s.push('}');
            s
        };
        if text[at..] != suffix(&old_jr, &old_r) {
            return Err(format!("unexpected ref layout in {text}"));
        }
        Ok(format!("{}{}", &text[..at], suffix(jr, r)))
    }
}

/// The kind-3 frame with other refs (pure byte surgery on the header).
fn rewrite_binary(bytes: &[u8], jr: &str, r: &str) -> Result<Vec<u8>, String> {
    if bytes.len() < 7 || bytes[0] != 3 {
        return Err("not a kind-3 frame".into());
    }
    let (jl, rl) = (bytes[1] as usize, bytes[2] as usize);
    let mut out = vec![3, jr.len() as u8, r.len() as u8];
    out.extend_from_slice(&bytes[3..7]);
    out.extend_from_slice(jr.as_bytes());
    out.extend_from_slice(r.as_bytes());
    out.extend_from_slice(bytes.get(7 + jl + rl..).ok_or("truncated")?);
    Ok(out)
}

fn binary_refs(bytes: &[u8]) -> Result<(String, String), String> {
    if bytes.len() < 7 {
        return Err("short binary frame".into());
    }
    let (jl, rl) = (bytes[1] as usize, bytes[2] as usize);
    let jr = bytes.get(7..7 + jl).ok_or("truncated")?;
    let r = bytes.get(7 + jl..7 + jl + rl).ok_or("truncated")?;
    Ok((
        String::from_utf8_lossy(jr).into_owned(),
        String::from_utf8_lossy(r).into_owned(),
    ))
}

/// realtime-js ref → our ref.
#[derive(Default)]
pub struct RefMap {
    map: HashMap<String, String>,
}

impl RefMap {
    fn learn(&mut self, exp: &Option<String>, act: &Option<String>) -> Result<(), String> {
        match (exp, act) {
            (None, None) => Ok(()),
            (Some(e), Some(a)) => match self.map.get(e) {
                Some(known) if known == a => Ok(()),
                Some(known) => Err(format!("ref {e} was {known}, now {a}")),
                None if self.map.values().any(|v| v == a) => {
                    Err(format!("our ref {a} stands for two refs of realtime-js"))
                }
                None => {
                    self.map.insert(e.clone(), a.clone());
                    Ok(())
                }
            },
            _ => Err(format!(
                "ref presence differs: expected {exp:?}, got {act:?}"
            )),
        }
    }

    fn get(&self, exp: &Option<String>) -> Result<Option<String>, String> {
        match exp {
            None => Ok(None),
            Some(e) => self
                .map
                .get(e)
                .cloned()
                .map(Some)
                .ok_or(format!("server frame uses ref {e} the client never sent")),
        }
    }
}

async fn next_client_message<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> Result<WsMessage, String> {
    loop {
        let msg = timeout(Duration::from_secs(120), ws.next())
            .await
            .map_err(|_| "timed out waiting for a client frame".to_owned())?
            .ok_or("client went away")?
            .map_err(|e| format!("read error: {e}"))?;
        match msg {
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            m => return Ok(m),
        }
    }
}

async fn play<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    script: &ConnScript,
    refs: &mut RefMap,
) -> Result<(), String> {
    for (i, f) in script.frames.iter().enumerate() {
        let at = format!("frame {i} ({})", f["t_ms"]);
        if f["dir"] == "client->server" {
            let got = next_client_message(ws)
                .await
                .map_err(|e| format!("{at}: {e}"))?;
            match (f["text"].as_str(), f["hex"].as_str(), got) {
                (Some(exp), _, WsMessage::Text(t)) => {
                    let exp = exp.replace(VERSION_FIELD, "");
                    let (ejr, er) = refs_of(&exp)?;
                    let (ajr, ar) = refs_of(t.as_str())?;
                    refs.learn(&ejr, &ajr).map_err(|e| format!("{at}: {e}"))?;
                    refs.learn(&er, &ar).map_err(|e| format!("{at}: {e}"))?;
                    let want = rewrite_text(&exp, &ajr, &ar)?;
                    if want != t.as_str() {
                        return Err(format!(
                            "{at}: client sent\n  {}\nrealtime-js sent\n  {want}",
                            t.as_str()
                        ));
                    }
                }
                (_, Some(exp), WsMessage::Binary(b)) => {
                    let exp = unhex(exp);
                    let (ejr, er) = binary_refs(&exp)?;
                    let (ajr, ar) = binary_refs(&b)?;
                    refs.learn(&Some(ejr), &Some(ajr.clone()))
                        .map_err(|e| format!("{at}: {e}"))?;
                    refs.learn(&Some(er), &Some(ar.clone()))
                        .map_err(|e| format!("{at}: {e}"))?;
                    let want = rewrite_binary(&exp, &ajr, &ar)?;
                    if want != b.as_ref() {
                        return Err(format!(
                            "{at}: binary frame differs: {:02x?} vs {want:02x?}",
                            b.as_ref()
                        ));
                    }
                }
                (_, _, other) => return Err(format!("{at}: unexpected client message {other:?}")),
            }
        } else if let Some(text) = f["text"].as_str() {
            let (jr, r) = refs_of(text)?;
            let out = rewrite_text(text, &refs.get(&jr)?, &refs.get(&r)?)?;
            ws.send(WsMessage::Text(out.into()))
                .await
                .map_err(|e| format!("{at}: {e}"))?;
        } else if let Some(h) = f["hex"].as_str() {
            ws.send(WsMessage::Binary(unhex(h).into()))
                .await
                .map_err(|e| format!("{at}: {e}"))?;
        }
    }
    match &script.end {
        End::ServerDrops => Ok(()),
        End::ClientClosesAny => match after_goodbye_leaves(ws).await? {
            WsMessage::Close(_) => Ok(()),
            other => Err(format!("expected a close, got {other:?}")),
        },
        End::ClientCloses(want) => match after_goodbye_leaves(ws).await? {
            WsMessage::Close(frame) => {
                let got = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                if &got == want {
                    Ok(())
                } else {
                    Err(format!("close {got:?}, realtime-js closed with {want:?}"))
                }
            }
            other => Err(format!("expected a close, got {other:?}")),
        },
    }
}

/// The next client message after the `phx_leave`s of a goodbye. realtime-js's `disconnect()`
/// sends none (the transcripts end with its close frame); this client's `disconnect` leaves
/// every joined channel before its close frame, so the leaves are skipped here (and only
/// leaves: any other frame still fails the script).
async fn after_goodbye_leaves<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> Result<WsMessage, String> {
    loop {
        let message = next_client_message(ws).await?;
        let is_leave = match &message {
            WsMessage::Text(t) => serde_json::from_str::<Value>(t.as_str())
                .ok()
                .is_some_and(|v| v[3] == "phx_leave"),
            _ => false,
        };
        if !is_leave {
            return Ok(message);
        }
    }
}

/// Where the peer's connections come from.
pub enum Incoming {
    /// TCP on 127.0.0.1.
    Tcp(TcpListener),
    /// In-memory pipes handed over by [`memory_connector`] (for paused-clock tests).
    Memory(mpsc::UnboundedReceiver<DuplexStream>),
}

impl Incoming {
    async fn accept(&mut self) -> Result<Box<dyn Io>, String> {
        match self {
            Self::Tcp(l) => l
                .accept()
                .await
                .map(|(s, _)| Box::new(s) as Box<dyn Io>)
                .map_err(|e| e.to_string()),
            Self::Memory(rx) => rx
                .recv()
                .await
                .map(|s| Box::new(s) as Box<dyn Io>)
                .ok_or_else(|| "no more pipes".to_owned()),
        }
    }
}

/// A TCP listener on loopback and its port.
pub async fn tcp() -> (Incoming, u16) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    (Incoming::Tcp(listener), port)
}

/// An in-memory "listener" and the connector that dials it.
pub fn memory() -> (Incoming, Connector) {
    let (tx, rx) = mpsc::unbounded_channel::<DuplexStream>();
    let connector: Connector = std::sync::Arc::new(move |_url: &str| {
        let tx = tx.clone();
        Box::pin(async move {
            let (client, server) = tokio::io::duplex(1 << 20);
            tx.send(server)
                .map_err(|_| std::io::Error::other("peer gone"))?;
            Ok(Box::new(client) as Box<dyn Io>)
        })
    });
    (Incoming::Memory(rx), connector)
}

/// Starts the peer; the task reports the first mismatch.
pub fn start(mut incoming: Incoming, attempts: Vec<Attempt>) -> JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        let mut refs = RefMap::default();
        for (n, attempt) in attempts.into_iter().enumerate() {
            let tcp = timeout(Duration::from_secs(120), incoming.accept())
                .await
                .map_err(|_| format!("attempt {n}: no connection"))??;
            let (want_path, refuse) = match &attempt {
                Attempt::Refuse {
                    path_and_query,
                    status,
                } => (path_and_query.clone(), Some(*status)),
                Attempt::Accept(s) => (s.path_and_query.clone(), None),
            };
            let mut seen = String::new();
            #[allow(clippy::result_large_err)] // the signature tungstenite asks for
            let callback = |req: &Request, resp: Response| {
                seen = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                match refuse {
                    None => Ok(resp),
                    Some(status) => {
                        let mut e =
                            ErrorResponse::new(Some(r#"{"error":"Unauthorized"}"#.to_owned()));
                        *e.status_mut() =
                            StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
                        Err(e)
                    }
                }
            };
            let accepted = tokio_tungstenite::accept_hdr_async(tcp, callback).await;
            if seen != want_path {
                return Err(format!(
                    "attempt {n}: path\n  {seen}\nexpected\n  {want_path}"
                ));
            }
            match (attempt, accepted) {
                (Attempt::Refuse { .. }, _) => continue,
                (Attempt::Accept(script), Ok(mut ws)) => {
                    play(&mut ws, &script, &mut refs)
                        .await
                        .map_err(|e| format!("attempt {n}: {e}"))?;
                }
                (Attempt::Accept(_), Err(e)) => return Err(format!("attempt {n}: handshake {e}")),
            }
        }
        Ok(())
    })
}

/// The attempts of a scenario, normalized for our documented deviations:
/// - a connection realtime-js closed with `1000 "heartbeat timeout"` may end with any close:
///   the core's heartbeat timeout ends it through the provider's `disconnect`;
/// - a reply is moved right after its request when realtime-js had sent other frames in
///   between (it joins channels concurrently; a provider call waits for its reply).
pub fn attempts(scenario: &Value, port_free_path: impl Fn(&str) -> String) -> Vec<Attempt> {
    let conns = scenario["connections"].as_array().expect("connections");
    let frames = scenario["frames"].as_array().expect("frames");
    let mut scripts = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        let mine: Vec<Value> = frames.iter().filter(|f| f["conn"] == i).cloned().collect();
        let mine = move_replies(mine);
        let close = &c["close"];
        let end = match close["code"].as_u64() {
            Some(1006) => End::ServerDrops,
            Some(1000) if close["reason"] == "heartbeat timeout" => End::ClientClosesAny,
            Some(1005) | None => End::ClientCloses(None),
            Some(code) => End::ClientCloses(Some((
                code as u16,
                close["reason"].as_str().unwrap_or("").to_owned(),
            ))),
        };
        let path = port_free_path(c["path_and_query"].as_str().expect("path"));
        scripts.push(ConnScript {
            path_and_query: path,
            frames: mine,
            end,
        });
    }
    let mut out = Vec::new();
    let mut scripts = scripts.into_iter();
    match scenario["handshake_attempts"].as_array() {
        Some(hs) => {
            for h in hs {
                match h["rejected_with"].as_u64() {
                    Some(status) => out.push(Attempt::Refuse {
                        path_and_query: port_free_path(h["path_and_query"].as_str().expect("path")),
                        status: status as u16,
                    }),
                    None => out.push(Attempt::Accept(
                        scripts.next().expect("a script per accepted handshake"),
                    )),
                }
            }
        }
        None => out.extend(scripts.map(Attempt::Accept)),
    }
    out
}

fn frame_ref(f: &Value) -> Option<String> {
    if let Some(t) = f["text"].as_str() {
        return refs_of(t).ok()?.1;
    }
    binary_refs(&unhex(f["hex"].as_str()?)).ok().map(|(_, r)| r)
}

fn move_replies(mut frames: Vec<Value>) -> Vec<Value> {
    let mut i = 0;
    while i < frames.len() {
        let f = &frames[i];
        let is_reply = f["dir"] == "server->client"
            && f["text"]
                .as_str()
                .is_some_and(|t| t.contains("\"phx_reply\""));
        if is_reply && let Some(r) = frame_ref(f) {
            let req = frames[..i].iter().rposition(|g| {
                g["dir"] == "client->server" && frame_ref(g).as_deref() == Some(r.as_str())
            });
            if let Some(req) = req {
                let between_client = frames[req + 1..i]
                    .iter()
                    .any(|g| g["dir"] == "client->server");
                if between_client {
                    let reply = frames.remove(i);
                    let mut at = req + 1;
                    while at < i && frames[at]["dir"] == "server->client" {
                        at += 1;
                    }
                    frames.insert(at, reply);
                }
            }
        }
        i += 1;
    }
    frames
}

/// Accepts one WebSocket (for hand-written server scripts).
pub async fn accept_ws(incoming: &mut Incoming) -> WebSocketStream<Box<dyn Io>> {
    let io = timeout(Duration::from_secs(120), incoming.accept())
        .await
        .expect("a connection in time")
        .expect("connection");
    tokio_tungstenite::accept_async(io)
        .await
        .expect("handshake")
}

/// The next client message (pings skipped), or a panic.
pub async fn recv<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> WsMessage {
    next_client_message(ws).await.expect("client message")
}

/// The next client text frame, or a panic.
pub async fn recv_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> String {
    match recv(ws).await {
        WsMessage::Text(t) => t.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Sends a text frame.
pub async fn send_text<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, text: &str) {
    ws.send(WsMessage::Text(text.to_owned().into()))
        .await
        .expect("send");
}

/// Accepts one connection and refuses its WebSocket handshake with `status`.
pub async fn refuse(incoming: &mut Incoming, status: u16) {
    let io = timeout(Duration::from_secs(120), incoming.accept())
        .await
        .expect("a connection in time")
        .expect("connection");
    #[allow(clippy::result_large_err)] // the signature tungstenite asks for
    let callback = |_: &Request, _: Response| {
        let mut e = ErrorResponse::new(Some(r#"{"error":"refused"}"#.to_owned()));
        *e.status_mut() = StatusCode::from_u16(status).expect("status");
        Err(e)
    };
    let _ = tokio_tungstenite::accept_hdr_async(io, callback).await;
}

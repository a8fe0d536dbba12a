//! Loopback peers that replay the frames and responses ably-js 2.28.0 saw, and assert that
//! every frame and request our client sends matches the one ably-js sent, modulo the fields
//! the vector file documents as random (ping ids, auto idempotent ids, token request
//! timestamps and nonces) and ably-js's leaked `size` field (`ably.md` §2.9, §9.7).

#![allow(dead_code, clippy::result_large_err)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// The vector file.
pub fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/ably.json"
    ))
    .expect("tests/vectors/ably.json");
    serde_json::from_str(&text).expect("JSON")
}

/// Waits for a future with a bound; a hang is a test failure, not a stuck run.
pub async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Parses a query string (`a=b&c=d`, percent-decoded) into a map.
pub fn parse_query(qs: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(qs.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Compares our connection URL with the recorded one: same path, same parameters with the
/// same values, except `agent`, which names this library instead of ably-js.
pub fn check_url(ours: &str, recorded: &Value) -> Result<(), String> {
    let (path, qs) = ours.split_once('?').unwrap_or((ours, ""));
    if recorded.is_null() {
        return Ok(()); // a synthetic script that does not care
    }
    if recorded["partial"] == json!(true) {
        // A synthetic script checking only some parameters.
        let got = parse_query(qs);
        for (k, v) in recorded["query"].as_object().unwrap() {
            if got.get(k).map(String::as_str) != v.as_str() {
                return Err(format!("parameter {k}: {:?} != {v}", got.get(k)));
            }
        }
        return Ok(());
    }
    if path != recorded["path"].as_str().unwrap_or("/") {
        return Err(format!("path {path} != {}", recorded["path"]));
    }
    let mut got = parse_query(qs);
    let want: BTreeMap<String, String> = serde_json::from_value(recorded["query"].clone()).unwrap();
    match got.remove("agent") {
        Some(a) if !a.is_empty() && want.contains_key("agent") => {}
        other => return Err(format!("agent parameter: {other:?}")),
    }
    let mut want = want;
    want.remove("agent");
    // The one deliberate difference: ably-js on node asks for WebSocket pings
    // (`heartbeats=false`); the shared link layer answers pings itself, so this client asks for
    // HEARTBEAT frames instead (what browsers' ably-js sends, `RTN23b`).
    if want.get("heartbeats").map(String::as_str) == Some("false") {
        want.insert("heartbeats".into(), "true".into());
    }
    if got != want {
        return Err(format!("query {got:?}\n  != recorded {want:?}"));
    }
    Ok(())
}

/// An idempotent id made by the SDK: `<base64 of 9 bytes>:<index>`.
pub fn random_id_index(id: &str) -> Option<(String, u64)> {
    let (base, idx) = id.rsplit_once(':')?;
    let ok = base.len() == 12
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    Some((base.to_owned(), idx.parse().ok()?)).filter(|_| ok)
}

/// Normalises a client-to-server realtime frame for comparison: ably-js's `size` leak is
/// removed from messages; a ping id (random) must be a non-empty string and is then removed.
pub fn normalize_c2s(mut v: Value, recorded: bool) -> Result<Value, String> {
    if let Some(ms) = v.get_mut("messages").and_then(Value::as_array_mut) {
        for m in ms {
            if let Some(o) = m.as_object_mut()
                && recorded
            {
                o.remove("size");
            }
        }
    }
    if v["action"] == json!(0)
        && let Some(o) = v.as_object_mut()
    {
        {
            match o.remove("id") {
                Some(Value::String(s))
                    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {}
                None if recorded => {}
                other => return Err(format!("ping id {other:?} is not a random digit string")),
            }
        }
    }
    Ok(v)
}

/// A server-side script entry `"#sleep <ms>"`: the peer pauses before its next frame.
pub const SLEEP: &str = "#sleep ";

/// What a scripted connection does after its last recorded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Drop the TCP connection without a close frame (an unclean transport loss).
    Drop,
    /// Expect at most a CLOSE (`{"action":7}`), answer CLOSED; EOF is fine too.
    AcceptClose,
    /// Keep the socket open and silent until the client goes away (a goodbye's CLOSE is
    /// answered with CLOSED).
    Hold,
    /// A server that never answers: the client's CLOSE is expected and left unanswered; the
    /// connection ends when the client closes it.
    Unanswered,
    /// The client must say goodbye: a CLOSE (`{"action":7}`), answered with CLOSED, then the
    /// close frame. EOF or a close frame without a CLOSE first fails the script.
    ExpectGoodbye,
}

/// One scripted connection: the recorded upgrade and frames.
#[derive(Debug, Clone)]
pub struct Script {
    pub upgrade: Value,
    pub frames: Vec<(bool, String)>,
    pub tail: Tail,
}

impl Script {
    /// A synthetic script: `(server_to_client, raw)` frames, URL parameters to check.
    pub fn synthetic(query: Value, frames: &[(bool, &str)], tail: Tail) -> Self {
        Self {
            upgrade: if query.is_null() {
                Value::Null
            } else {
                json!({"partial": true, "query": query})
            },
            frames: frames.iter().map(|(d, r)| (*d, (*r).to_owned())).collect(),
            tail,
        }
    }

    /// A recorded connection of the vector file.
    pub fn from_recorded(conn: &Value, tail: Tail) -> Self {
        let frames = conn["frames"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .map(|f| (f["dir"] == "s2c", f["raw"].as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            upgrade: conn["upgrade"].clone(),
            frames,
            tail,
        }
    }

    /// The scripts of a scenario: every connection but the last drops; the last accepts CLOSE.
    pub fn scenario(scenario: &Value) -> Vec<Self> {
        let conns = scenario["connections"].as_array().unwrap();
        conns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let tail = if i + 1 == conns.len() {
                    Tail::AcceptClose
                } else {
                    Tail::Drop
                };
                Self::from_recorded(c, tail)
            })
            .collect()
    }
}

/// The WebSocket peer: serves the scripts in order, one per accepted connection.
pub struct WsPeer {
    pub port: u16,
    failures: Arc<Mutex<Vec<String>>>,
    done: mpsc::UnboundedReceiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl WsPeer {
    pub async fn start(scripts: Vec<Script>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done) = mpsc::unbounded_channel();
        let f = failures.clone();
        let task = tokio::spawn(async move {
            for (i, script) in scripts.into_iter().enumerate() {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                if let Err(e) = serve(tcp, &script).await {
                    f.lock().unwrap().push(format!("connection #{i}: {e}"));
                }
                let _ = done_tx.send(i);
            }
            // Nothing more is scripted: any further connection is a failure.
            while let Ok((_tcp, _)) = listener.accept().await {
                f.lock()
                    .unwrap()
                    .push("an unscripted extra connection".into());
            }
        });
        Self {
            port,
            failures,
            done,
            task,
        }
    }

    /// Waits until connection `index` has played its script to the end.
    pub async fn finished(&mut self, index: usize) {
        loop {
            let got = tokio::time::timeout(Duration::from_secs(10), self.done.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for the peer to finish connection #{index}; mismatches: {:?}",
                        self.failures.lock().unwrap()
                    )
                });
            match got {
                Some(i) if i >= index => return,
                Some(_) => continue,
                None => panic!("peer stopped"),
            }
        }
    }

    /// Panics with every mismatch the peer saw.
    pub fn assert_clean(&self) {
        let f = self.failures.lock().unwrap();
        assert!(
            f.is_empty(),
            "the peer saw frames ably-js did not send:\n{}",
            f.join("\n")
        );
    }
}

impl Drop for WsPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(tcp: TcpStream, script: &Script) -> Result<(), String> {
    let uri = Arc::new(Mutex::new(String::new()));
    let u = uri.clone();
    let cb = move |req: &Request, resp: Response| {
        *u.lock().unwrap() = req.uri().to_string();
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, cb)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let url = uri.lock().unwrap().clone();
    check_url(&url, &script.upgrade)?;
    // The ping id is random: the recorded HEARTBEAT reply echoes ably-js's id, so the peer
    // echoes ours in its place.
    let mut ping_ids: Option<(String, String)> = None;
    for (s2c, raw) in &script.frames {
        if *s2c && let Some(ms) = raw.strip_prefix(SLEEP) {
            // A pause in the server's frames (on tokio's clock: paused in timing tests).
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            continue;
        }
        if *s2c {
            let mut raw = raw.clone();
            if let Some((recorded, ours)) = &ping_ids {
                let mut v: Value = serde_json::from_str(&raw).unwrap();
                if v["action"] == json!(0) && v["id"] == json!(recorded) {
                    v["id"] = json!(ours);
                    raw = v.to_string();
                }
            }
            ws.send(WsMessage::text(raw))
                .await
                .map_err(|e| format!("send: {e}"))?;
            continue;
        }
        let got = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Err(_) => return Err(format!("timed out waiting for the client to send {raw}")),
                Ok(None) | Ok(Some(Err(_))) => {
                    return Err(format!("the client went away before sending {raw}"));
                }
                Ok(Some(Ok(WsMessage::Text(t)))) => break t.to_string(),
                Ok(Some(Ok(WsMessage::Close(_)))) => {
                    return Err(format!("the client closed before sending {raw}"));
                }
                Ok(Some(Ok(_))) => continue,
            }
        };
        let ours: Value =
            serde_json::from_str(&got).map_err(|e| format!("not JSON: {got}: {e}"))?;
        let want: Value = serde_json::from_str(raw).unwrap();
        if want["action"] == json!(0)
            && let (Some(r), Some(o)) = (want["id"].as_str(), ours["id"].as_str())
        {
            ping_ids = Some((r.to_owned(), o.to_owned()));
        }
        let (ours_n, want_n) = (normalize_c2s(ours, false)?, normalize_c2s(want, true)?);
        if ours_n != want_n {
            return Err(format!(
                "frame mismatch:\n  ours:    {got}\n  ably-js: {raw}"
            ));
        }
    }
    match script.tail {
        Tail::Drop => Ok(()),
        Tail::Hold => {
            while let Some(Ok(m)) = ws.next().await {
                if let WsMessage::Text(t) = m {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v != json!({"action": 7}) {
                        return Err(format!("unexpected frame after the script: {t}"));
                    }
                    let _ = ws.send(WsMessage::text(r#"{"action":8}"#)).await;
                }
            }
            Ok(())
        }
        Tail::Unanswered => {
            let mut saw_close = false;
            while let Some(Ok(m)) = ws.next().await {
                if let WsMessage::Text(t) = m {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v != json!({"action": 7}) {
                        return Err(format!("unexpected frame after the script: {t}"));
                    }
                    saw_close = true;
                }
            }
            if saw_close {
                Ok(())
            } else {
                Err("no CLOSE before the client left".into())
            }
        }
        Tail::ExpectGoodbye => {
            let close = loop {
                match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                    Err(_) => {
                        return Err("no goodbye: the client neither sent CLOSE nor left".into());
                    }
                    Ok(Some(Ok(WsMessage::Text(t)))) => break t.to_string(),
                    Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
                    Ok(other) => return Err(format!("no CLOSE before the client left: {other:?}")),
                }
            };
            let v: Value = serde_json::from_str(&close).unwrap_or(Value::Null);
            if v != json!({"action": 7}) {
                return Err(format!("expected CLOSE, got {close}"));
            }
            ws.send(WsMessage::text(r#"{"action":8}"#))
                .await
                .map_err(|e| format!("send CLOSED: {e}"))?;
            // After CLOSED the client closes the socket.
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(None | Some(Err(_)) | Some(Ok(WsMessage::Close(_)))) => Ok(()),
                other => Err(format!(
                    "expected the socket to close after CLOSED, got {other:?}"
                )),
            }
        }
        Tail::AcceptClose => loop {
            match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                Err(_) | Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(WsMessage::Close(_)))) => {
                    return Ok(());
                }
                Ok(Some(Ok(WsMessage::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v != json!({"action": 7}) {
                        return Err(format!("unexpected frame after the script: {t}"));
                    }
                    let _ = ws.send(WsMessage::text(r#"{"action":8}"#)).await;
                }
                Ok(Some(Ok(_))) => {}
            }
        },
    }
}

/// One recorded REST exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: Value,
}

/// The HTTP peer: answers the recorded requests in order, asserting each one.
pub struct HttpPeer {
    pub port: u16,
    failures: Arc<Mutex<Vec<String>>>,
    remaining: Arc<Mutex<VecDeque<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

/// The headers ably-js sent that carry meaning (others are its HTTP library's).
pub const MEANINGFUL_HEADERS: [&str; 5] = [
    "authorization",
    "accept",
    "content-type",
    "x-ably-version",
    "x-ably-clientid",
];

impl HttpPeer {
    pub async fn start(requests: Vec<Value>, key: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let failures = Arc::new(Mutex::new(Vec::new()));
        let remaining = Arc::new(Mutex::new(VecDeque::from(requests)));
        let (f, r) = (failures.clone(), remaining.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (f, r, key) = (f.clone(), r.clone(), key.clone());
                tokio::spawn(async move { http_conn(tcp, f, r, key).await });
            }
        });
        Self {
            port,
            failures,
            remaining,
            task,
        }
    }

    /// Asserts every request matched and every recorded request was made.
    pub fn assert_clean(&self) {
        let f = self.failures.lock().unwrap();
        assert!(f.is_empty(), "REST mismatches:\n{}", f.join("\n"));
        let r = self.remaining.lock().unwrap();
        assert!(r.is_empty(), "recorded requests never made: {r:?}");
    }
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn http_conn(
    mut tcp: TcpStream,
    failures: Arc<Mutex<Vec<String>>>,
    remaining: Arc<Mutex<VecDeque<Value>>>,
    key: Option<String>,
) {
    let mut buf = Vec::new();
    loop {
        // Read one request head.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let mut headers = BTreeMap::new();
        for l in lines.filter(|l| !l.is_empty()) {
            if let Some((k, v)) = l.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
        buf.drain(..head_end + len);
        let expected = remaining.lock().unwrap().pop_front();
        let (status, resp_headers, resp_body) = match expected {
            None => {
                failures
                    .lock()
                    .unwrap()
                    .push(format!("unexpected request {method} {target}"));
                (500, BTreeMap::new(), json!({"error": {"code": 50000}}))
            }
            Some(exp) => {
                if let Err(e) =
                    check_request(&method, &target, &headers, &body, &exp, key.as_deref())
                {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{method} {target}: {e}"));
                }
                let r = &exp["response"];
                let hs: BTreeMap<String, String> =
                    serde_json::from_value(r["headers"].clone()).unwrap_or_default();
                (r["status"].as_u64().unwrap_or(200), hs, r["body"].clone())
            }
        };
        let body = resp_body.to_string();
        let mut out = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in resp_headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        if tcp.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Normalises a REST body: `size` removed (ably-js leak); random idempotent ids checked for
/// shape (one shared base, index = position) and replaced by their index; token request
/// timestamp/nonce/mac of an auto-generated request checked (mac verified with `key`) and
/// removed when `random_token` is set.
pub fn normalize_body(v: &mut Value, key: Option<&str>, random_token: bool) -> Result<(), String> {
    if let Some(items) = v.as_array_mut() {
        let mut base: Option<String> = None;
        for (i, m) in items.iter_mut().enumerate() {
            let Some(o) = m.as_object_mut() else { continue };
            o.remove("size");
            if let Some(Value::String(id)) = o.get("id").cloned()
                && let Some((b, idx)) = random_id_index(&id)
            {
                if idx != i as u64 || base.as_ref().is_some_and(|x| *x != b) {
                    return Err(format!("idempotent id {id} out of sequence"));
                }
                base = Some(b);
                o.insert("id".into(), json!(format!("<random>:{idx}")));
            }
        }
    }
    if random_token && let Some(o) = v.as_object_mut() {
        let tr: relayport_ably::TokenRequest = serde_json::from_value(Value::Object(o.clone()))
            .map_err(|e| format!("token request: {e}"))?;
        if let Some(k) = key {
            let k = relayport_ably::ApiKey::parse(k).unwrap();
            if !k.verify(&tr) {
                return Err("token request MAC does not verify".into());
            }
        }
        if tr.nonce.len() < 16 {
            return Err("nonce shorter than 16".into());
        }
        o.remove("timestamp");
        o.remove("nonce");
        o.remove("mac");
    }
    Ok(())
}

fn check_request(
    method: &str,
    target: &str,
    headers: &BTreeMap<String, String>,
    body: &str,
    exp: &Value,
    key: Option<&str>,
) -> Result<(), String> {
    if method != exp["method"] {
        return Err(format!("method {method} != {}", exp["method"]));
    }
    let (path, qs) = target.split_once('?').unwrap_or((target, ""));
    if path != exp["path"] {
        return Err(format!("path {path} != {}", exp["path"]));
    }
    let want_q: BTreeMap<String, String> = serde_json::from_value(exp["query"].clone()).unwrap();
    if parse_query(qs) != want_q {
        return Err(format!("query {qs} != {want_q:?}"));
    }
    for h in MEANINGFUL_HEADERS {
        let want = exp["headers"].get(h).and_then(Value::as_str);
        let got = headers.get(h).map(String::as_str);
        // A random token request's Bearer token is checked by the flow itself.
        if got != want {
            return Err(format!("header {h}: {got:?} != {want:?}"));
        }
    }
    if exp["foreign"] != json!(true) && !headers.contains_key("ably-agent") {
        return Err("no ably-agent header".into());
    }
    match exp["body"].as_str() {
        None => {
            if !body.is_empty() {
                return Err(format!("unexpected body {body}"));
            }
        }
        Some(want) => {
            let mut w: Value = serde_json::from_str(want).unwrap();
            let mut g: Value =
                serde_json::from_str(body).map_err(|e| format!("body not JSON: {e}"))?;
            let random_token = exp["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/requestToken"))
                && w.get("nonce")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                && w.get("timestamp")
                    .and_then(Value::as_u64)
                    .is_some_and(|t| t > 1_700_100_000_000);
            normalize_body(&mut w, None, random_token)?;
            normalize_body(&mut g, key, random_token)?;
            if g != w {
                return Err(format!("body\n  ours:    {g}\n  ably-js: {w}"));
            }
        }
    }
    Ok(())
}

/// Decodes a base64 header value.
pub fn b64_decode(s: &str) -> String {
    String::from_utf8(B64.decode(s).unwrap()).unwrap()
}

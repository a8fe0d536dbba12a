//! A behavioural Firebase Realtime Database REST server for tests (publish = false).
//!
//! Written from Firebase's REST documentation: every path ends in `.json`; `GET`, `PUT`,
//! `POST` (a push id, answered `{"name": id}`), `PATCH` (multi-path update) and `DELETE`;
//! server timestamps (`{".sv": "timestamp"}`); key queries (`orderBy="$key"` with `startAt`,
//! `endAt`, `limitToFirst`, `limitToLast`) and `shallow=true`; streaming (`Accept:
//! text/event-stream`) with `put`, `patch`, `keep-alive`, `cancel` and `auth_revoked` events;
//! and simple rules: everything under [`PeerConfig::auth_prefix`] needs a valid token (`auth=`,
//! `access_token=` or a bearer header) from the configured set, each with an optional expiry.
//!
//! The control API is [`FirebasePeer`]'s methods: add, expire or revoke tokens, revoke a path
//! prefix (streams there get `cancel`), drop every stream, mute the server (no events, no
//! keep-alives) to simulate a silent link. Time is tokio's clock, so a test on the paused
//! clock controls server timestamps and token expiry too.
//!
//! Not modelled: rules beyond the auth prefix, `orderByChild`/`orderByValue`, queries on
//! streams (a stream always carries the whole location), ETags, `print`/`format` options.

// Handlers return `Result<_, Response>`: the error is the HTTP answer itself.
#![allow(clippy::result_large_err)]

mod pushid;
mod tree;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;

pub use pushid::{ALPHABET, PushIds};
pub use tree::KeyQuery;

/// How the peer behaves.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The interval between `keep-alive` events on every stream.
    pub keep_alive: Duration,
    /// Paths under this prefix (e.g. `/secure`) need a valid token; `None`: no rules.
    pub auth_prefix: Option<String>,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(30),
            auth_prefix: None,
        }
    }
}

struct Stream {
    path: Vec<String>,
    token: Option<String>,
    tx: mpsc::UnboundedSender<Bytes>,
}

struct State {
    root: Value,
    ids: PushIds,
    streams: Vec<Stream>,
    /// Token → expiry (`None`: never).
    tokens: HashMap<String, Option<Instant>>,
    revoked: Vec<Vec<String>>,
    muted: bool,
    requests: Vec<String>,
}

struct Shared {
    config: PeerConfig,
    start: Instant,
    base_ms: u64,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }
}

/// A running peer on a loopback port; stops when dropped.
pub struct FirebasePeer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    keep_alive: JoinHandle<()>,
}

impl Drop for FirebasePeer {
    fn drop(&mut self) {
        self.server.abort();
        self.keep_alive.abort();
    }
}

fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn starts_with(path: &[String], prefix: &[String]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

/// Whether two locations overlap (one contains the other).
fn touches(a: &[String], b: &[String]) -> bool {
    starts_with(a, b) || starts_with(b, a)
}

fn rel(path: &[String], base: &[String]) -> String {
    format!("/{}", path[base.len()..].join("/"))
}

impl FirebasePeer {
    /// Starts a peer on `127.0.0.1` with an ephemeral port.
    pub async fn start(config: PeerConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let keep = config.keep_alive;
        let shared = Arc::new(Shared {
            config,
            start: Instant::now(),
            base_ms,
            state: Mutex::new(State {
                root: Value::Null,
                ids: PushIds::default(),
                streams: Vec::new(),
                tokens: HashMap::new(),
                revoked: Vec::new(),
                muted: false,
                requests: Vec::new(),
            }),
        });
        let app_state = shared.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = app_state.clone();
                async move { handle(&s, method, uri, headers, body) }
            },
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let ka = shared.clone();
        let keep_alive = tokio::spawn(async move {
            let mut tick = tokio::time::interval(keep);
            tick.tick().await;
            loop {
                tick.tick().await;
                let mut st = ka.lock();
                if st.muted {
                    continue;
                }
                st.streams
                    .retain(|s| s.tx.send(sse("keep-alive", &Value::Null)).is_ok());
            }
        });
        Ok(Self {
            addr,
            shared,
            server,
            keep_alive,
        })
    }

    /// The database URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server clock in milliseconds since the Unix epoch (what `{".sv":"timestamp"}`
    /// resolves to).
    pub fn now_ms(&self) -> u64 {
        self.shared.now_ms()
    }

    /// Accepts `token` until `ttl` has passed (`None`: forever).
    pub fn add_token(&self, token: &str, ttl: Option<Duration>) {
        let expiry = ttl.map(|t| Instant::now() + t);
        self.shared.lock().tokens.insert(token.to_owned(), expiry);
    }

    /// Expires `token` now: its streams get `auth_revoked` and end; requests with it get 401.
    pub fn expire_token(&self, token: &str) {
        let mut st = self.shared.lock();
        st.tokens.insert(token.to_owned(), Some(Instant::now()));
        expire_streams(&mut st);
    }

    /// Revokes read access under `prefix`: its streams get `cancel` and end; reads get 401.
    pub fn revoke_prefix(&self, prefix: &str) {
        let prefix = tree::segments(prefix);
        let mut st = self.shared.lock();
        st.streams.retain(|s| {
            if touches(&s.path, &prefix) {
                let _ = s.tx.send(sse("cancel", &Value::Null));
                false
            } else {
                true
            }
        });
        st.revoked.push(prefix);
    }

    /// Ends every open stream (the connection just closes, no event).
    pub fn drop_streams(&self) {
        self.shared.lock().streams.clear();
    }

    /// Mutes (`true`) or unmutes the server: muted, streams get no events and no keep-alives
    /// (writes still apply), like a link that went silent.
    pub fn mute(&self, muted: bool) {
        self.shared.lock().muted = muted;
    }

    /// The number of open streams.
    pub fn stream_count(&self) -> usize {
        let mut st = self.shared.lock();
        st.streams.retain(|s| !s.tx.is_closed());
        st.streams.len()
    }

    /// The value at `path`.
    pub fn get(&self, path: &str) -> Value {
        let st = self.shared.lock();
        tree::get(&st.root, &tree::segments(path))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Writes `value` at `path` as a `PUT` would (streams are told).
    pub fn put(&self, path: &str, value: Value) {
        let now = self.shared.now_ms();
        let mut st = self.shared.lock();
        write(&mut st, &tree::segments(path), value, now);
    }

    /// Every request so far as `METHOD /path` (queries left out: they hold tokens).
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }
}

/// Streams whose token expired get `auth_revoked` and end.
fn expire_streams(st: &mut State) {
    let now = Instant::now();
    let tokens = st.tokens.clone();
    st.streams.retain(|s| {
        let expired = s
            .token
            .as_ref()
            .is_some_and(|t| tokens.get(t).is_some_and(|e| e.is_some_and(|at| at <= now)));
        if expired {
            let _ =
                s.tx.send(sse("auth_revoked", &json!("credential is no longer valid")));
        }
        !expired
    });
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// Applies a `PUT` at `path` and tells the streams.
fn write(st: &mut State, path: &[String], value: Value, now: u64) -> Value {
    let value = tree::normalize(tree::resolve_server_values(value, now));
    tree::set(&mut st.root, path, value.clone());
    notify(st, path, |_, rel_path| {
        ("put", json!({"path": rel_path, "data": value}))
    });
    value
}

/// Tells every stream overlapping `path`: those containing it get `event(stream, rel)`,
/// those inside it get a `put` of their whole new value.
fn notify(
    st: &mut State,
    path: &[String],
    event: impl Fn(&[String], String) -> (&'static str, Value),
) {
    if st.muted {
        return;
    }
    let root = st.root.clone();
    st.streams.retain(|s| {
        let sent = if starts_with(path, &s.path) {
            let (name, data) = event(&s.path, rel(path, &s.path));
            s.tx.send(sse(name, &data))
        } else if starts_with(&s.path, path) {
            let now = tree::get(&root, &s.path).cloned().unwrap_or(Value::Null);
            s.tx.send(sse("put", &json!({"path": "/", "data": now})))
        } else {
            Ok(())
        };
        sent.is_ok()
    });
}

fn token_of(query: &HashMap<String, String>, headers: &HeaderMap) -> Option<String> {
    query
        .get("auth")
        .or_else(|| query.get("access_token"))
        .cloned()
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)?
                .to_str()
                .ok()?
                .strip_prefix("Bearer ")
                .map(str::to_owned)
        })
}

fn json_param(query: &HashMap<String, String>, name: &str) -> Result<Option<String>, Response> {
    match query.get(name) {
        None => Ok(None),
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::String(s)) => Ok(Some(s)),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                &format!("{name} must be a JSON string"),
            )),
        },
    }
}

fn key_query(query: &HashMap<String, String>) -> Result<Option<KeyQuery>, Response> {
    let Some(order) = json_param(query, "orderBy")? else {
        return Ok(None);
    };
    if order != "$key" {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "this peer only orders by \"$key\"",
        ));
    }
    let limit = |name: &str| -> Result<Option<usize>, Response> {
        query
            .get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    error(StatusCode::BAD_REQUEST, &format!("{name} must be a number"))
                })
            })
            .transpose()
    };
    Ok(Some(KeyQuery {
        start_at: json_param(query, "startAt")?,
        end_at: json_param(query, "endAt")?,
        limit_to_first: limit("limitToFirst")?,
        limit_to_last: limit("limitToLast")?,
    }))
}

fn handle(s: &Arc<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let raw_path = uri.path();
    s.lock().requests.push(format!("{method} {raw_path}"));
    let Some(path) = raw_path.strip_suffix(".json") else {
        return error(StatusCode::NOT_FOUND, "paths end in .json");
    };
    let path: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let token = token_of(&query, &headers);
    if let Err(denied) = check_rules(s, &path, token.as_deref()) {
        return denied;
    }
    let now = s.now_ms();
    let parse_body = || -> Result<Value, Response> {
        serde_json::from_slice(&body).map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                "Invalid data; couldn't parse JSON object, array, or value.",
            )
        })
    };
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    match method {
        Method::GET if streaming => open_stream(s, path, token),
        Method::GET => {
            let q = match key_query(&query) {
                Ok(q) => q,
                Err(e) => return e,
            };
            let st = s.lock();
            let mut value = tree::get(&st.root, &path).cloned().unwrap_or(Value::Null);
            if let Some(q) = q {
                value = q.apply(value);
            }
            if query.get("shallow").is_some_and(|v| v == "true")
                && let Value::Object(map) = &value
            {
                value = Value::Object(map.keys().map(|k| (k.clone(), Value::Bool(true))).collect());
            }
            axum::Json(value).into_response()
        }
        Method::PUT => match parse_body() {
            Ok(v) => axum::Json(write(&mut s.lock(), &path, v, now)).into_response(),
            Err(e) => e,
        },
        Method::POST => match parse_body() {
            Ok(v) => {
                let mut st = s.lock();
                let id = st.ids.next(now);
                let mut at = path.clone();
                at.push(id.clone());
                write(&mut st, &at, v, now);
                axum::Json(json!({"name": id})).into_response()
            }
            Err(e) => e,
        },
        Method::PATCH => match parse_body() {
            Ok(Value::Object(map)) => {
                axum::Json(patch(&mut s.lock(), &path, map, now)).into_response()
            }
            Ok(_) => error(StatusCode::BAD_REQUEST, "PATCH needs an object"),
            Err(e) => e,
        },
        Method::DELETE => {
            write(&mut s.lock(), &path, Value::Null, now);
            axum::Json(Value::Null).into_response()
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "unsupported method"),
    }
}

/// A multi-path update: each key (possibly `a/b`) is written under `path`.
fn patch(st: &mut State, path: &[String], map: Map<String, Value>, now: u64) -> Value {
    let resolved: Map<String, Value> = map
        .into_iter()
        .map(|(k, v)| (k, tree::resolve_server_values(v, now)))
        .collect();
    for (k, v) in &resolved {
        let mut at = path.to_vec();
        at.extend(tree::segments(k));
        tree::set(&mut st.root, &at, v.clone());
    }
    let data = Value::Object(resolved.clone());
    notify(st, path, |_, rel_path| {
        ("patch", json!({"path": rel_path, "data": data}))
    });
    Value::Object(resolved)
}

fn check_rules(s: &Shared, path: &[String], token: Option<&str>) -> Result<(), Response> {
    let mut st = s.lock();
    if st.revoked.iter().any(|r| touches(path, r)) {
        return Err(error(StatusCode::UNAUTHORIZED, "Permission denied"));
    }
    let Some(prefix) = &s.config.auth_prefix else {
        return Ok(());
    };
    if !touches(path, &tree::segments(prefix)) {
        return Ok(());
    }
    let Some(token) = token else {
        return Err(error(StatusCode::UNAUTHORIZED, "Permission denied"));
    };
    match st.tokens.get(token) {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "Could not parse auth token.",
        )),
        Some(Some(at)) if *at <= Instant::now() => {
            expire_streams(&mut st);
            Err(error(StatusCode::UNAUTHORIZED, "Auth token is expired"))
        }
        Some(_) => Ok(()),
    }
}

fn open_stream(s: &Arc<Shared>, path: Vec<String>, token: Option<String>) -> Response {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut st = s.lock();
    let now = tree::get(&st.root, &path).cloned().unwrap_or(Value::Null);
    let _ = tx.send(sse("put", &json!({"path": "/", "data": now})));
    st.streams.push(Stream { path, token, tx });
    let body = Body::from_stream(futures_util::StreamExt::map(
        UnboundedReceiverStream::new(rx),
        Ok::<_, std::convert::Infallible>,
    ));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "stream"))
}

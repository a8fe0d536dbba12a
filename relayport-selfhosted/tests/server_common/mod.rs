//! Test support for the server tests: start a server in-process on loopback, a minimal raw
//! WebSocket client (tokio-tungstenite) that awaits frames with a bound, signing helpers and
//! reqwest helpers for the HTTP API.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relayport_core::auth::hmac_sha256_hex;
use relayport_selfhosted::server::{Server, ServerBuilder, ServerHandle};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The secret every test server uses.
pub const SECRET: &str = "test-secret-0123456789";

/// How long a test waits for something that should happen (never reached when things work).
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `fut` at most [`WAIT`], failing the test with `what` otherwise.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A builder with the test secret.
pub fn builder() -> ServerBuilder {
    Server::builder().secret(SECRET)
}

/// A server with the defaults on a free loopback port.
pub async fn start() -> ServerHandle {
    start_with(builder()).await
}

/// A server from `b` on a free loopback port.
pub async fn start_with(b: ServerBuilder) -> ServerHandle {
    match b.bind("127.0.0.1:0").await {
        Ok(h) => h,
        Err(e) => panic!("server did not start: {e}"),
    }
}

/// `socket_id:channel` signed with the test secret.
pub fn sign_private(socket_id: &str, channel: &str) -> String {
    hmac_sha256_hex(
        SECRET.as_bytes(),
        format!("{socket_id}:{channel}").as_bytes(),
    )
}

/// `socket_id:channel:channel_data` signed with the test secret.
pub fn sign_presence(socket_id: &str, channel: &str, channel_data: &str) -> String {
    hmac_sha256_hex(
        SECRET.as_bytes(),
        format!("{socket_id}:{channel}:{channel_data}").as_bytes(),
    )
}

/// The `channel_data` string for a user.
pub fn channel_data(user_id: &str, info: Value) -> String {
    json!({"user_id": user_id, "user_info": info}).to_string()
}

/// A raw WebSocket client speaking JSON frames.
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The socket id from `connected`.
    pub socket_id: String,
    /// The `connected` frame.
    pub connected: Value,
}

impl WsClient {
    /// Connects to `/ws` and reads `connected`.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_query(addr, "").await
    }

    /// Connects to `/ws{query}` and reads `connected`.
    pub async fn connect_query(addr: SocketAddr, query: &str) -> Self {
        let mut c = Self::connect_raw(addr, query).await;
        let connected = c.next().await;
        assert_eq!(connected["type"], "connected", "{connected}");
        c.socket_id = connected["socket_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no socket_id in {connected}"))
            .to_owned();
        c.connected = connected;
        c
    }

    /// Connects without reading anything.
    pub async fn connect_raw(addr: SocketAddr, query: &str) -> Self {
        let url = format!("ws://{addr}/ws{query}");
        let (ws, _) = within(
            "the websocket handshake",
            tokio_tungstenite::connect_async(url),
        )
        .await
        .unwrap_or_else(|e| panic!("handshake failed: {e}"));
        Self {
            ws,
            socket_id: String::new(),
            connected: Value::Null,
        }
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, v: Value) {
        self.send_raw(Message::text(v.to_string())).await;
    }

    /// Sends any WebSocket message.
    pub async fn send_raw(&mut self, m: Message) {
        if let Err(e) = self.ws.send(m).await {
            panic!("send failed: {e}");
        }
    }

    /// The next JSON text frame (fails on close, binary or timeout).
    pub async fn next(&mut self) -> Value {
        loop {
            let msg = within("a frame", self.ws.next()).await;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("server sent invalid JSON {t}: {e}"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, which must be of type `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let f = self.next().await;
        assert_eq!(f["type"], kind, "expected {kind}, got {f}");
        f
    }

    /// The next frame, which must be an error with `code`.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let f = self.expect("error").await;
        assert_eq!(f["code"], code, "{f}");
        f
    }

    /// Reads until the close frame and returns its code; text frames before it are returned too.
    pub async fn until_close(&mut self) -> (Option<u16>, Vec<Value>) {
        let mut frames = Vec::new();
        loop {
            let msg = within("the close frame", self.ws.next()).await;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(v) = serde_json::from_str(t.as_str()) {
                        frames.push(v);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return (frame.map(|f| u16::from(f.code)), frames);
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return (None, frames),
            }
        }
    }

    /// Subscribes and returns `subscribed`.
    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(json!({"type": "subscribe", "channel": channel}))
            .await;
        self.expect("subscribed").await
    }

    /// Subscribes to a private channel with a valid signature.
    pub async fn subscribe_private(&mut self, channel: &str) -> Value {
        let auth = sign_private(&self.socket_id, channel);
        self.send(json!({"type": "subscribe", "channel": channel, "auth": auth}))
            .await;
        self.expect("subscribed").await
    }

    /// Subscribes to a presence channel as `user_id` with a valid signature.
    pub async fn subscribe_presence(&mut self, channel: &str, user_id: &str, info: Value) -> Value {
        let data = channel_data(user_id, info);
        let auth = sign_presence(&self.socket_id, channel, &data);
        self.send(
            json!({"type": "subscribe", "channel": channel, "auth": auth, "channel_data": data}),
        )
        .await;
        self.expect("subscribed").await
    }

    /// Round-trips a ping: everything queued before it has been read once this returns.
    pub async fn sync(&mut self) -> Vec<Value> {
        let r = format!("sync-{}", fastrand::u64(..));
        self.send(json!({"type": "ping", "ref": r})).await;
        let mut before = Vec::new();
        loop {
            let f = self.next().await;
            if f["type"] == "pong" && f["ref"] == r.as_str() {
                return before;
            }
            before.push(f);
        }
    }
}

/// An HTTP client.
pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// `POST /publish` with the right secret; returns status and JSON body.
pub async fn publish(addr: SocketAddr, body: Value) -> (u16, Value) {
    let resp = within(
        "POST /publish",
        http()
            .post(format!("http://{addr}/publish"))
            .bearer_auth(SECRET)
            .json(&body)
            .send(),
    )
    .await
    .unwrap_or_else(|e| panic!("publish failed: {e}"));
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// `GET path` with the right secret; returns status and JSON body.
pub async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let resp = within(
        "GET",
        http()
            .get(format!("http://{addr}{path}"))
            .bearer_auth(SECRET)
            .send(),
    )
    .await
    .unwrap_or_else(|e| panic!("GET {path} failed: {e}"));
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

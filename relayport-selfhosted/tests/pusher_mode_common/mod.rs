//! Test support for the Pusher protocol mode: a server in-process on loopback with the app
//! derived from the secret, a raw Pusher-protocol WebSocket client and signing helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relayport_core::auth::hmac_sha256_hex;
use relayport_pusher::Credentials;
use relayport_selfhosted::server::{Server, ServerBuilder, ServerHandle};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The server secret (also the derived Pusher app's secret).
pub const SECRET: &str = "test-secret-0123456789";
/// The derived app's id and key.
pub const APP: &str = "relayport";
/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// The derived app's credentials.
pub fn credentials() -> Credentials {
    Credentials::new(APP, APP, SECRET)
}

/// A builder with the test secret.
pub fn builder() -> ServerBuilder {
    Server::builder().secret(SECRET)
}

/// A server from `b` on a free loopback port.
pub async fn start_with(b: ServerBuilder) -> ServerHandle {
    b.bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("server did not start: {e}"))
}

/// Awaits `fut` at most [`WAIT`].
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// `key:hex(hmac(secret, message))`.
pub fn token(key: &str, secret: &str, message: &str) -> String {
    format!(
        "{key}:{}",
        hmac_sha256_hex(secret.as_bytes(), message.as_bytes())
    )
}

/// A raw Pusher-protocol client.
pub struct PusherWs {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The socket id from `pusher:connection_established`.
    pub socket_id: String,
}

impl PusherWs {
    /// Opens `path` (e.g. `/app/relayport?protocol=7`) without reading anything.
    pub async fn open(addr: SocketAddr, path: &str) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        let url = format!("ws://{addr}{path}");
        within("websocket", tokio_tungstenite::connect_async(url))
            .await
            .unwrap_or_else(|e| panic!("connect {path}: {e}"))
            .0
    }

    /// Wraps an opened stream (nothing read yet).
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            ws,
            socket_id: String::new(),
        }
    }

    /// Connects to the derived app and reads `pusher:connection_established`.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_key(addr, APP).await
    }

    /// Connects with an app key.
    pub async fn connect_key(addr: SocketAddr, key: &str) -> Self {
        let ws = Self::open(
            addr,
            &format!("/app/{key}?protocol=7&client=test&version=1"),
        )
        .await;
        let mut c = Self {
            ws,
            socket_id: String::new(),
        };
        let f = c.expect("pusher:connection_established").await;
        let data: Value = serde_json::from_str(f["data"].as_str().expect("string data")).unwrap();
        c.socket_id = data["socket_id"].as_str().expect("socket_id").to_owned();
        c
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    /// Sends a raw message.
    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    /// The next text frame, as JSON.
    pub async fn next(&mut self) -> Value {
        loop {
            match within("a frame", self.ws.next()).await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("json"),
                Some(Ok(Message::Close(c))) => panic!("closed: {c:?}"),
                Some(Ok(_)) => continue,
                other => panic!("no frame: {other:?}"),
            }
        }
    }

    /// The next frame, which must be `event`.
    pub async fn expect(&mut self, event: &str) -> Value {
        let f = self.next().await;
        assert_eq!(f["event"], event, "{f}");
        f
    }

    /// Frames until the close frame: (close code, frames before it).
    pub async fn until_close(&mut self) -> (Option<u16>, Vec<Value>) {
        let mut frames = Vec::new();
        loop {
            match within("the close", self.ws.next()).await {
                Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(&t).expect("json")),
                Some(Ok(Message::Close(c))) => return (c.map(|c| u16::from(c.code)), frames),
                Some(Ok(_)) => continue,
                _ => return (None, frames),
            }
        }
    }

    /// Subscribes with an optional auth and channel_data (no answer read).
    pub async fn subscribe_with(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) {
        let mut data = json!({"channel": channel, "auth": auth.unwrap_or("")});
        if let Some(cd) = channel_data {
            data["channel_data"] = json!(cd);
        }
        self.send(json!({"event": "pusher:subscribe", "data": data}))
            .await;
    }

    /// Subscribes, signing with the test secret, and expects `subscription_succeeded`.
    pub async fn subscribe(&mut self, channel: &str, channel_data: Option<&str>) -> Value {
        let auth = channel_data.map_or_else(
            || token(APP, SECRET, &format!("{}:{channel}", self.socket_id)),
            |cd| token(APP, SECRET, &format!("{}:{channel}:{cd}", self.socket_id)),
        );
        self.subscribe_with(channel, Some(&auth), channel_data)
            .await;
        let f = self.expect("pusher_internal:subscription_succeeded").await;
        assert_eq!(f["channel"], channel);
        f
    }

    /// A ping/pong round trip: every frame queued before it has been read when it returns.
    pub async fn sync(&mut self) -> Vec<Value> {
        self.send(json!({"event": "pusher:ping", "data": {}})).await;
        let mut before = Vec::new();
        loop {
            let f = self.next().await;
            if f["event"] == "pusher:pong" {
                return before;
            }
            before.push(f);
        }
    }
}

/// The `data` field decoded (a string holding JSON is parsed).
pub fn data_of(frame: &Value) -> Value {
    match &frame["data"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        other => other.clone(),
    }
}

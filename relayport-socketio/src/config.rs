//! [`SocketIoConfig`]: where the server is and how to talk to it.

use std::time::Duration;

use relayport_core::{RealtimeError, Result};
use serde_json::Value;
use url::Url;

use crate::convention::EventNames;

/// The default time an ack (subscribe, publish, presence, `emit_with_ack`) is waited for.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The default Engine.IO path, as socket.io servers and clients use.
pub const DEFAULT_PATH: &str = "/socket.io/";

/// Which Engine.IO transports a connection may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transports {
    /// WebSocket; HTTP long-polling when the upgrade is refused with an HTTP status (as
    /// socket.io-client falls back).
    #[default]
    Auto,
    /// WebSocket only: a refused upgrade is a connection error.
    WebSocketOnly,
    /// HTTP long-polling only (networks known to block WebSockets).
    PollingOnly,
}

/// How to reach a Socket.IO server. Built with [`SocketIoConfig::new`] and the `with_*` methods.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct SocketIoConfig {
    /// The server's base URL (`http`, `https`, `ws` or `wss`).
    pub url: Url,
    /// The Engine.IO path (default `/socket.io/`).
    pub path: String,
    /// The namespace to connect to (default `/`).
    pub namespace: String,
    /// The `auth` payload of the CONNECT packet (`socket.handshake.auth` on the server): a
    /// JSON object such as `{"token": "…"}`. Redacted in `Debug`.
    pub auth: Option<Value>,
    /// The convention's event names.
    pub events: EventNames,
    /// How long an ack is waited for.
    pub request_timeout: Duration,
    /// The transports to use (default: WebSocket, polling when the upgrade is refused).
    pub transports: Transports,
}

impl std::fmt::Debug for SocketIoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoConfig")
            .field("url", &self.url.as_str())
            .field("path", &self.path)
            .field("namespace", &self.namespace)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("events", &self.events)
            .field("request_timeout", &self.request_timeout)
            .field("transports", &self.transports)
            .finish()
    }
}

impl SocketIoConfig {
    /// The server at `url` (`http://host:port`, `https://…`, or `ws`/`wss`); a path in the
    /// URL is ignored (use [`SocketIoConfig::with_path`] for a server mounted elsewhere).
    pub fn new(url: &str) -> Result<Self> {
        let mut parsed = Url::parse(url)
            .map_err(|e| RealtimeError::Config(format!("server URL `{}`: {e}", redact(url))))?;
        let scheme = match parsed.scheme() {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            other => {
                return Err(RealtimeError::Config(format!(
                    "server URL `{}`: unsupported scheme `{other}` (use http, https, ws or wss)",
                    redact(url)
                )));
            }
        };
        if parsed.set_scheme(scheme).is_err() || parsed.host_str().is_none() {
            return Err(RealtimeError::Config(format!(
                "server URL `{}` has no host",
                redact(url)
            )));
        }
        parsed.set_query(None);
        parsed.set_fragment(None);
        Ok(Self {
            url: parsed,
            path: DEFAULT_PATH.into(),
            namespace: "/".into(),
            auth: None,
            events: EventNames::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            transports: Transports::Auto,
        })
    }

    /// The namespace to connect to (`/chat`; a missing leading slash is added).
    pub fn with_namespace(mut self, namespace: &str) -> Result<Self> {
        let ns = if namespace.starts_with('/') {
            namespace.to_owned()
        } else {
            format!("/{namespace}")
        };
        if ns.contains(',') || ns.chars().any(char::is_whitespace) {
            return Err(RealtimeError::Config(format!(
                "namespace `{namespace}` may not contain commas or spaces"
            )));
        }
        self.namespace = ns;
        Ok(self)
    }

    /// The CONNECT `auth` payload; must be a JSON object.
    pub fn with_auth(mut self, auth: Value) -> Result<Self> {
        if !auth.is_object() {
            return Err(RealtimeError::Config(
                "the Socket.IO auth payload must be a JSON object".into(),
            ));
        }
        self.auth = Some(auth);
        Ok(self)
    }

    /// The Engine.IO path (default `/socket.io/`).
    pub fn with_path(mut self, path: &str) -> Self {
        let mut p = path.to_owned();
        if !p.starts_with('/') {
            p.insert(0, '/');
        }
        if !p.ends_with('/') {
            p.push('/');
        }
        self.path = p;
        self
    }

    /// The convention's event names.
    pub fn with_events(mut self, events: EventNames) -> Self {
        self.events = events;
        self
    }

    /// Which transports to use (default [`Transports::Auto`]).
    pub fn with_transports(mut self, transports: Transports) -> Self {
        self.transports = transports;
        self
    }

    /// How long an ack is waited for (default 10 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The WebSocket URL of the Engine.IO endpoint.
    pub fn websocket_url(&self) -> String {
        let mut url = self.url.clone();
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // Both schemes are special, so the change cannot fail.
        let _ = url.set_scheme(scheme);
        url.set_path(&self.path);
        url.set_query(Some("EIO=4&transport=websocket"));
        url.into()
    }
}

/// A URL without its query (which may carry a key), for error messages.
fn redact(url: &str) -> &str {
    relayport_core::transport::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_the_engine_io_url() {
        let c = SocketIoConfig::new("http://127.0.0.1:3000/ignored?token=x").unwrap();
        assert_eq!(
            c.websocket_url(),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        let c = SocketIoConfig::new("https://example.com")
            .unwrap()
            .with_path("rt");
        assert_eq!(
            c.websocket_url(),
            "wss://example.com/rt/?EIO=4&transport=websocket"
        );
        assert!(SocketIoConfig::new("ftp://x").is_err());
        assert!(SocketIoConfig::new("not a url").is_err());
    }

    #[test]
    fn namespaces_and_auth_are_checked() {
        let c = SocketIoConfig::new("http://h").unwrap();
        assert_eq!(c.clone().with_namespace("chat").unwrap().namespace, "/chat");
        assert!(c.clone().with_namespace("/a,b").is_err());
        assert!(c.clone().with_auth(json!("token")).is_err());
        let c = c.with_auth(json!({"token": "t0p-s3cret"})).unwrap();
        assert!(!format!("{c:?}").contains("t0p-s3cret"));
    }
}

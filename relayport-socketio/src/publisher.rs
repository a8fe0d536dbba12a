//! [`SocketIoPublisher`]: publishing from a backend through the Node adapter's HTTP endpoint
//! (`POST /relayport/publish`), signed with the shared secret (the secret itself never
//! travels).
//!
//! Headers: `x-relayport-timestamp` (Unix seconds) and `x-relayport-signature`, the hex
//! HMAC-SHA256 of `"{timestamp}.{body}"`; the adapter refuses a signature that does not match
//! and a timestamp more than 300 s away from its clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use relayport_core::auth::hmac_sha256_hex;
use relayport_core::transport::LinkConfig;
use relayport_core::{OutboundMessage, Publisher, RealtimeError, Result};
use serde_json::{Value, json};
use url::Url;

use crate::PROVIDER_NAME;

/// The adapter's default publish path.
pub const DEFAULT_PUBLISH_PATH: &str = "/relayport/publish";
/// The default time one HTTP call may take.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes over the adapter's HTTP endpoint.
pub struct SocketIoPublisher {
    endpoint: Url,
    secret: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for SocketIoPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoPublisher")
            .field("endpoint", &self.endpoint.as_str())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl SocketIoPublisher {
    /// A publisher for the server at `url` (the HTTP server the adapter's `httpHandler` is
    /// mounted on) signing with `secret`.
    pub fn new(url: &str, secret: impl Into<String>) -> Result<Self> {
        Self::with_link_config(url, secret, &LinkConfig::shared_default()?)
    }

    /// The same, with an injected TLS configuration and HTTP client.
    pub fn with_link_config(
        url: &str,
        secret: impl Into<String>,
        link: &LinkConfig,
    ) -> Result<Self> {
        let mut endpoint = Url::parse(url).map_err(|e| {
            RealtimeError::Config(format!(
                "server URL `{}`: {e}",
                relayport_core::transport::redact_url(url)
            ))
        })?;
        let scheme = match endpoint.scheme() {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            other => {
                return Err(RealtimeError::Config(format!(
                    "server URL: unsupported scheme `{other}`"
                )));
            }
        };
        let _ = endpoint.set_scheme(scheme);
        endpoint.set_path(DEFAULT_PUBLISH_PATH);
        endpoint.set_query(None);
        Ok(Self {
            endpoint,
            secret: secret.into(),
            http: link.http().clone(),
            timeout: DEFAULT_HTTP_TIMEOUT,
        })
    }

    /// A publish path other than `/relayport/publish` (the adapter's `publishPath`).
    pub fn with_path(mut self, path: &str) -> Self {
        self.endpoint.set_path(path);
        self
    }

    /// The signature headers for `body` at `timestamp` (Unix seconds).
    pub fn signature(&self, timestamp: u64, body: &str) -> String {
        hmac_sha256_hex(
            self.secret.as_bytes(),
            format!("{timestamp}.{body}").as_bytes(),
        )
    }

    async fn post(&self, body: Value) -> Result<()> {
        let body = body.to_string();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let response = self
            .http
            .post(self.endpoint.clone())
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("x-relayport-timestamp", timestamp.to_string())
            .header("x-relayport-signature", self.signature(timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                RealtimeError::Connection(format!("publish to {}: {e}", self.endpoint.path()))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(match status.as_u16() {
            401 => RealtimeError::Unauthorized(message),
            code => RealtimeError::provider(
                PROVIDER_NAME,
                i64::from(code),
                message,
                status.is_server_error(),
            ),
        })
    }
}

/// A message as the adapter's endpoint takes it: `{channel, event, data}`, bytes as
/// `data` = their base64 text with `encoding: "base64"` (the adapter relays a Buffer).
fn wire(m: &OutboundMessage) -> Value {
    let (data, encoding) = m.data.to_wire();
    let mut body = json!({"channel": m.channel.to_string(), "event": m.event, "data": data});
    if let Some(encoding) = encoding {
        body["encoding"] = Value::String(encoding.to_owned());
    }
    body
}

#[async_trait]
impl Publisher for SocketIoPublisher {
    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        message.validate(relayport_core::DEFAULT_MAX_PAYLOAD)?;
        self.post(wire(message)).await
    }

    async fn publish_batch(&self, messages: &[OutboundMessage]) -> Result<()> {
        for m in messages {
            m.validate(relayport_core::DEFAULT_MAX_PAYLOAD)?;
        }
        let messages: Vec<Value> = messages.iter().map(wire).collect();
        self.post(json!({ "messages": messages })).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_travel_as_base64_with_their_encoding() {
        let ch = relayport_core::Channel::parse("news").unwrap();
        let bytes = OutboundMessage::new(ch.clone(), "img", vec![0u8, 0xff]);
        assert_eq!(
            wire(&bytes),
            json!({"channel": "news", "event": "img", "data": "AP8=", "encoding": "base64"})
        );
        let text = OutboundMessage::new(ch, "t", json!({"a": 1}));
        assert_eq!(
            wire(&text),
            json!({"channel": "news", "event": "t", "data": {"a": 1}})
        );
    }

    #[test]
    fn signs_timestamp_and_body() {
        let p = SocketIoPublisher::new("ws://127.0.0.1:3000/x?k=v", "s3cret").unwrap();
        assert_eq!(
            p.endpoint.as_str(),
            "http://127.0.0.1:3000/relayport/publish"
        );
        // hmac-sha256("s3cret", "1700000000.{}") computed with Python's hmac module.
        assert_eq!(
            p.signature(1_700_000_000, "{}"),
            "97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf"
        );
        assert_ne!(
            p.signature(1_700_000_000, "{}"),
            p.signature(1_700_000_001, "{}")
        );
        assert!(!format!("{p:?}").contains("s3cret"));
        assert!(SocketIoPublisher::new("ftp://x", "s").is_err());
    }
}

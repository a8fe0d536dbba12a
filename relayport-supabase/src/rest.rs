//! REST broadcast: the batch endpoint `POST {base}/api/broadcast` as a core [`Publisher`], and
//! the single-event endpoint `POST {base}/api/broadcast/<topic>/events/<event>`.
//!
//! `base` is `https://<ref>.supabase.co/realtime/v1` for hosted projects, or the server root of
//! a self-hosted Realtime server reached directly. Requests carry `apikey: <key>` and
//! `Authorization: Bearer <token>` (the key itself unless a token is set); on a backend the key
//! is usually the service-role key, which bypasses RLS and must never reach a client.
//! realtime-js 2.119.1 also appends the socket's query (`?apikey=…&vsn=2.0.0`) to these URLs;
//! this publisher does not (the key already travels in a header, as in realtime-js 2.15.5).

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use relayport_core::transport::LinkConfig;
use relayport_core::{Channel, OutboundMessage, Publisher, RealtimeError, Result};

use crate::errors::rest_error;
use crate::topic::{check_channel, is_private_with, rest_topic};

/// The default payload limit: 256 KB, the Free plan's broadcast payload limit.
pub const DEFAULT_MAX_PAYLOAD: usize = 256 * 1024;

/// How long a stored broadcast is kept (private channels; newer servers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// `persist=true` / metadata `{"persist":true}`.
    Forever,
    /// `persist[ttl]=N` / metadata `{"persist":{"ttl":N}}`, in seconds.
    Ttl(u64),
}

impl Persist {
    /// The kind-3 metadata object realtime-js sends for this option.
    pub fn metadata(self) -> Value {
        match self {
            Self::Forever => serde_json::json!({"persist": true}),
            Self::Ttl(ttl) => serde_json::json!({"persist": {"ttl": ttl}}),
        }
    }
}

/// The body of a single-event REST broadcast.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// `application/json`.
    Json(Value),
    /// `application/octet-stream`.
    Binary(Vec<u8>),
}

#[derive(Serialize)]
struct RestMessage<'a> {
    topic: &'a str,
    event: &'a str,
    payload: &'a Value,
    private: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

#[derive(Serialize)]
struct Batch<'a> {
    messages: Vec<RestMessage<'a>>,
}

/// Publishes over Supabase's REST broadcast API. Its `Debug` output never shows the keys.
#[derive(Clone)]
pub struct SupabasePublisher {
    base: String,
    api_key: String,
    bearer: String,
    max_payload: usize,
    presence_private: bool,
    http: reqwest::Client,
}

impl std::fmt::Debug for SupabasePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabasePublisher")
            .field("base", &self.base)
            .field("api_key", &"<redacted>")
            .field("bearer", &"<redacted>")
            .field("max_payload", &self.max_payload)
            .finish_non_exhaustive()
    }
}

impl SupabasePublisher {
    /// A publisher for a hosted project (`https://<ref>.supabase.co`), authenticated with
    /// `api_key` (the service-role key on a backend).
    pub fn new(project_url: &str, api_key: impl Into<String>) -> Self {
        Self::with_base_url(
            format!("{}/realtime/v1", project_url.trim_end_matches('/')),
            api_key,
        )
    }

    /// A publisher for an explicit base URL (everything before `/api/broadcast`). Its HTTP
    /// client is the link layer's shared default ([`LinkConfig::shared_default`]: rustls with
    /// the webpki roots); [`SupabasePublisher::with_link_config`] injects another.
    pub fn with_base_url(base: impl Into<String>, api_key: impl Into<String>) -> Self {
        let api_key = api_key.into();
        let http = LinkConfig::shared_default()
            .map(|c| c.http().clone())
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "no shared link configuration; a plain HTTP client");
                reqwest::Client::new()
            });
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            bearer: api_key.clone(),
            api_key,
            max_payload: DEFAULT_MAX_PAYLOAD,
            presence_private: false,
            http,
        }
    }

    /// Sends through the `reqwest::Client` of `config` (its TLS: a private CA, the system
    /// store), the same configuration the provider's sockets use.
    pub fn with_link_config(mut self, config: &LinkConfig) -> Self {
        self.http = config.http().clone();
        self
    }

    /// Sends `Authorization: Bearer <token>` instead of the API key (a user JWT, for RLS).
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = token.into();
        self
    }

    /// Whether `presence:` channels are private (RLS-guarded) ones, as the provider's
    /// `SupabaseConfig::presence_private` (default `false`).
    pub fn presence_private(mut self, private: bool) -> Self {
        self.presence_private = private;
        self
    }

    /// Changes the payload limit checked before sending.
    pub fn max_payload(mut self, limit: usize) -> Self {
        self.max_payload = limit;
        self
    }

    /// The batch endpoint's URL.
    pub fn batch_url(&self) -> String {
        format!("{}/api/broadcast", self.base)
    }

    /// The single-event endpoint's URL.
    pub fn event_url(
        &self,
        channel: &Channel,
        event: &str,
        persist: Option<Persist>,
    ) -> Result<String> {
        let mut url = url::Url::parse(&self.batch_url()).map_err(|e| {
            RealtimeError::Config(format!("bad REST base URL `{}`: {e}", self.base))
        })?;
        url.path_segments_mut()
            .map_err(|_| RealtimeError::Config(format!("bad REST base URL `{}`", self.base)))?
            .push(rest_topic(channel))
            .push("events")
            .push(event);
        {
            let mut q = url.query_pairs_mut();
            if is_private_with(channel, self.presence_private) {
                q.append_pair("private", "true");
            }
            match persist {
                Some(Persist::Forever) => {
                    q.append_pair("persist", "true");
                }
                Some(Persist::Ttl(ttl)) => {
                    q.append_pair("persist[ttl]", &ttl.to_string());
                }
                None => {}
            }
        }
        let mut s = url.to_string();
        if s.ends_with('?') {
            s.pop();
        }
        Ok(s)
    }

    fn check(&self, message: &OutboundMessage) -> Result<usize> {
        check_channel(&message.channel)?;
        if message.exclude_socket_id.is_some() {
            return Err(RealtimeError::Unsupported(
                "excluding a connection from a Supabase broadcast".into(),
            ));
        }
        let size = message.payload_size();
        if size > self.max_payload {
            return Err(RealtimeError::PayloadTooLarge {
                size,
                limit: self.max_payload,
            });
        }
        Ok(size)
    }

    async fn post(&self, url: &str, content_type: &str, body: Vec<u8>, size: usize) -> Result<()> {
        let response = self
            .http
            .post(url)
            .header("apikey", &self.api_key)
            .header("authorization", format!("Bearer {}", self.bearer))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| RealtimeError::Connection(format!("REST broadcast: {e}")))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(rest_error(status, &text, Some(size), self.max_payload))
    }

    /// Sends one event to the single-event endpoint (server ≥ 2.97.0).
    pub async fn send_event(
        &self,
        channel: &Channel,
        event: &str,
        body: EventBody,
        persist: Option<Persist>,
    ) -> Result<()> {
        check_channel(channel)?;
        let url = self.event_url(channel, event, persist)?;
        let (content_type, bytes) = match body {
            EventBody::Json(v) => (
                "application/json",
                serde_json::to_vec(&v).map_err(|e| RealtimeError::Protocol(e.to_string()))?,
            ),
            EventBody::Binary(b) => ("application/octet-stream", b),
        };
        let size = bytes.len();
        if size > self.max_payload {
            return Err(RealtimeError::PayloadTooLarge {
                size,
                limit: self.max_payload,
            });
        }
        self.post(&url, content_type, bytes, size).await
    }

    /// The batch body for `messages` (JSON text).
    pub fn batch_body(&self, messages: &[OutboundMessage]) -> Result<Vec<u8>> {
        let mut batch = Batch {
            messages: Vec::with_capacity(messages.len()),
        };
        for m in messages {
            self.check(m)?;
            let Some(payload) = m.data.as_json().filter(|v| v.is_object()) else {
                return Err(RealtimeError::Protocol(format!(
                    "REST batch payloads must be JSON objects (event `{}`)",
                    m.event
                )));
            };
            batch.messages.push(RestMessage {
                topic: rest_topic(&m.channel),
                event: &m.event,
                payload,
                private: is_private_with(&m.channel, self.presence_private),
                id: m.id.as_deref(),
            });
        }
        serde_json::to_vec(&batch).map_err(|e| RealtimeError::Protocol(e.to_string()))
    }
}

#[async_trait]
impl Publisher for SupabasePublisher {
    /// One message: a binary payload goes to the single-event endpoint as
    /// `application/octet-stream`; anything else to the batch endpoint.
    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        if let Some(bytes) = message.data.as_bytes() {
            let bytes = bytes.to_vec();
            self.check(message)?;
            return self
                .send_event(
                    &message.channel,
                    &message.event,
                    EventBody::Binary(bytes),
                    None,
                )
                .await;
        }
        self.publish_batch(std::slice::from_ref(message)).await
    }

    /// One request to the batch endpoint for all of them (the server counts the whole batch
    /// against the tenant's events-per-second limit).
    async fn publish_batch(&self, messages: &[OutboundMessage]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let body = self.batch_body(messages)?;
        let size = body.len();
        self.post(&self.batch_url(), "application/json", body, size)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::ErrorKind;
    use serde_json::json;

    #[test]
    fn debug_never_shows_the_key() {
        let p = SupabasePublisher::new("https://abc.supabase.co", "service-role-secret-jwt");
        let shown = format!("{p:?}");
        assert!(!shown.contains("service-role-secret-jwt"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn bodies_and_urls() {
        let p = SupabasePublisher::new("https://abc.supabase.co/", "key");
        assert_eq!(
            p.batch_url(),
            "https://abc.supabase.co/realtime/v1/api/broadcast"
        );
        let ch: Channel = "private:room:1".parse().unwrap();
        assert_eq!(
            p.event_url(&ch, "a b", Some(Persist::Ttl(60))).unwrap(),
            "https://abc.supabase.co/realtime/v1/api/broadcast/room:1/events/a%20b?private=true&persist%5Bttl%5D=60"
        );
        assert_eq!(
            p.event_url(&Channel::public("r"), "e", None).unwrap(),
            "https://abc.supabase.co/realtime/v1/api/broadcast/r/events/e"
        );
        let body = p
            .batch_body(&[OutboundMessage::new(ch.clone(), "e", json!({"x": 1}))])
            .unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"messages":[{"topic":"room:1","event":"e","payload":{"x":1},"private":true}]}"#
        );
        let not_object = OutboundMessage::new(ch.clone(), "e", json!(1));
        assert_eq!(
            p.batch_body(&[not_object]).unwrap_err().kind(),
            ErrorKind::Protocol
        );
        let mut excl = OutboundMessage::new(ch, "e", json!({}));
        excl.exclude_socket_id = Some("s".into());
        assert_eq!(
            p.batch_body(&[excl]).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
    }

    #[test]
    fn payload_limit_at_and_past() {
        let p = SupabasePublisher::new("https://abc.supabase.co", "key").max_payload(20);
        // {"k":"…"} is 8 bytes around the string.
        let at = OutboundMessage::new(Channel::public("r"), "e", json!({"k": "x".repeat(12)}));
        assert_eq!(at.payload_size(), 20);
        assert!(p.batch_body(std::slice::from_ref(&at)).is_ok());
        let past = OutboundMessage::new(Channel::public("r"), "e", json!({"k": "x".repeat(13)}));
        assert_eq!(
            p.batch_body(&[past]).unwrap_err(),
            RealtimeError::PayloadTooLarge {
                size: 21,
                limit: 20
            }
        );
    }
}

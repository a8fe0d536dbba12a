//! Webhook verification (protocol notes §5): `X-Pusher-Key` must be the app key and
//! `X-Pusher-Signature` the lowercase hex HMAC-SHA256 of the raw body with the app secret,
//! compared in constant time; then the body is parsed into its event list.
//!
//! By default a `Content-Type` of `application/json` with parameters (`; charset=utf-8`) is
//! accepted, as the protocol checklist asks; [`WebhookVerifier::strict_content_type`]
//! reproduces the official Node SDK, which insists on exactly `application/json`.

use relayport_core::auth::hmac_sha256_hex;
use relayport_core::{RealtimeError, Result};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// One webhook event (`channel_occupied`, `member_added`, `client_event`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// The event type.
    pub name: String,
    /// The channel concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// For `client_event`: the client event's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// For `client_event`: its data (a string, as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// For `client_event`: the sender's socket id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// For member and presence client events: the user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Any other field, kept as received (`subscription_count`, …).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// A verified webhook request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Pusher's timestamp, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The events, in order.
    pub events: Vec<WebhookEvent>,
}

/// Verifies webhook requests for one app.
#[derive(Clone)]
pub struct WebhookVerifier {
    key: String,
    secret: String,
    strict_content_type: bool,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field("key", &self.key)
            .field("strict_content_type", &self.strict_content_type)
            .finish_non_exhaustive()
    }
}

impl WebhookVerifier {
    /// A verifier for the app with this key and secret.
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            secret: secret.into(),
            strict_content_type: false,
        }
    }

    /// Requires `Content-Type` to be exactly `application/json`, as the Node SDK does.
    pub fn strict_content_type(mut self, strict: bool) -> Self {
        self.strict_content_type = strict;
        self
    }

    /// Checks the headers and raw body; returns the parsed webhook. A missing or wrong key, a
    /// missing, malformed or wrong signature (any case other than lowercase hex), a non-JSON
    /// content type or an unparsable body is an error, never a panic.
    ///
    /// ```
    /// use relayport_pusher::webhooks::WebhookVerifier;
    /// let v = WebhookVerifier::new("key", "secret");
    /// let body = br#"{"time_ms":1,"events":[{"name":"channel_occupied","channel":"a"}]}"#;
    /// let sig = relayport_core::auth::hmac_sha256_hex(b"secret", body);
    /// let hook = v.verify(Some("key"), Some(&sig), Some("application/json"), body).unwrap();
    /// assert_eq!(hook.events[0].name, "channel_occupied");
    /// assert!(v.verify(Some("key"), Some("not hex"), Some("application/json"), body).is_err());
    /// ```
    pub fn verify(
        &self,
        key_header: Option<&str>,
        signature_header: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Webhook> {
        let content_ok = match content_type {
            Some(ct) if self.strict_content_type => ct == "application/json",
            Some(ct) => ct
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")),
            None => false,
        };
        if !content_ok {
            return Err(RealtimeError::Protocol(format!(
                "webhook content type must be application/json, got {content_type:?}"
            )));
        }
        let key = key_header.unwrap_or_default();
        if !bool::from(key.as_bytes().ct_eq(self.key.as_bytes())) {
            return Err(RealtimeError::Unauthorized(
                "webhook X-Pusher-Key is not this app's key".into(),
            ));
        }
        let expected = hmac_sha256_hex(self.secret.as_bytes(), body);
        let given = signature_header.unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(RealtimeError::Unauthorized(
                "webhook X-Pusher-Signature does not match the body".into(),
            ));
        }
        serde_json::from_slice(body)
            .map_err(|e| RealtimeError::Protocol(format!("webhook body does not parse: {e}")))
    }
}

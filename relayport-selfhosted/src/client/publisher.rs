//! [`SelfHostedPublisher`]: publishing from a backend over `POST /publish` with the bearer
//! secret, without a socket.

use std::time::Duration;

use async_trait::async_trait;
use relayport_core::{DEFAULT_MAX_PAYLOAD, OutboundMessage, Publisher, RealtimeError, Result};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::PROVIDER_NAME;
use crate::client::errors::{CodeContext, error_for_code};
use crate::client::provider::{endpoint, parse_base};

/// The default time one HTTP call may take.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON body of an HTTP error answer: `{"error": {"code": …, "message": …}}` (a bare
/// `{"code": …, "message": …}` is read too).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ErrorEnvelope {
    Wrapped { error: ErrorBody },
    Bare(ErrorBody),
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    channel: Option<String>,
}

/// Turns a non-success HTTP answer into a [`RealtimeError`]: the body's stable `code` when it
/// has one (see [`error_for_code`]), otherwise by status (401 `Unauthorized`, 403 `Forbidden`,
/// 413 `PayloadTooLarge`, 429 `RateLimited`, 5xx a retryable `Provider` error, any other a
/// `Provider` error with the status as its code).
pub(crate) async fn check_response(
    response: reqwest::Response,
    ctx: CodeContext<'_>,
) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    if let Ok(ErrorEnvelope::Wrapped { error: body } | ErrorEnvelope::Bare(body)) =
        serde_json::from_str::<ErrorEnvelope>(&text)
    {
        return Err(error_for_code(
            &body.code,
            &body.message,
            body.channel.as_deref(),
            ctx,
        ));
    }
    let message = if text.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {}", text.chars().take(200).collect::<String>())
    };
    Err(match status.as_u16() {
        401 => RealtimeError::Unauthorized(message),
        403 => RealtimeError::Forbidden {
            channel: ctx.channel.unwrap_or_default().to_owned(),
            reason: message,
        },
        413 => RealtimeError::PayloadTooLarge {
            size: ctx.payload_size.unwrap_or(0),
            limit: ctx.limit.unwrap_or(0),
        },
        429 => RealtimeError::RateLimited(message),
        code => RealtimeError::Provider {
            provider: PROVIDER_NAME,
            code: i64::from(code),
            message,
            retryable: status.is_server_error(),
            source: None,
        },
    })
}

/// Publishes to the self-hosted server from a backend: `POST /publish` with
/// `Authorization: Bearer <secret>`, one message or a batch in one request.
///
/// The secret stays in this process: it is never given to a client provider, and `Debug`
/// does not print it.
///
/// ```no_run
/// # async fn demo() -> relayport_core::Result<()> {
/// use relayport_selfhosted::client::SelfHostedPublisher;
/// use relayport_core::{Channel, OutboundMessage, Publisher};
///
/// let publisher = SelfHostedPublisher::new("http://127.0.0.1:8080", "s3cret")?;
/// let msg = OutboundMessage::new(Channel::public("news"), "headline", serde_json::json!("hi"));
/// publisher.publish(&msg).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SelfHostedPublisher {
    base: Url,
    secret: String,
    http: reqwest::Client,
    timeout: Duration,
    max_payload: usize,
}

impl std::fmt::Debug for SelfHostedPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfHostedPublisher")
            .field("base", &self.base.as_str())
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl SelfHostedPublisher {
    /// A publisher for the server at `url` (`http://host:port`), authenticating with `secret`.
    pub fn new(url: &str, secret: impl Into<String>) -> Result<Self> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(RealtimeError::Config("the publish secret is empty".into()));
        }
        Ok(Self {
            base: parse_base(url)?,
            secret,
            http: reqwest::Client::new(),
            timeout: DEFAULT_HTTP_TIMEOUT,
            max_payload: DEFAULT_MAX_PAYLOAD,
        })
    }

    /// How long one HTTP call may take (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The payload limit checked before sending (default 64 KiB, the server's default).
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    async fn post(&self, body: &Value, ctx: CodeContext<'_>) -> Result<()> {
        let url = endpoint(&self.base, "publish")?;
        let send = self
            .http
            .post(url)
            .bearer_auth(&self.secret)
            .json(body)
            .timeout(self.timeout)
            .send();
        let response = send.await.map_err(|e| {
            if e.is_timeout() {
                RealtimeError::timeout("publish", self.timeout)
            } else {
                RealtimeError::Connection(e.to_string())
            }
        })?;
        check_response(response, ctx).await.map(|_| ())
    }
}

#[async_trait]
impl Publisher for SelfHostedPublisher {
    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        message.validate(self.max_payload)?;
        let name = message.channel.to_string();
        let ctx = CodeContext {
            channel: Some(&name),
            payload_size: Some(message.payload_size()),
            limit: Some(self.max_payload),
        };
        self.post(&crate::protocol::publish_body(message), ctx)
            .await
    }

    async fn publish_batch(&self, messages: &[OutboundMessage]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        for m in messages {
            m.validate(self.max_payload)?;
        }
        let batch: Vec<Value> = messages.iter().map(crate::protocol::publish_body).collect();
        let ctx = CodeContext {
            limit: Some(self.max_payload),
            ..CodeContext::default()
        };
        self.post(&json!({ "batch": batch }), ctx).await
    }
}

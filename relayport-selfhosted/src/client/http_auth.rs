//! [`HttpAuthorizer`]: a client-side [`ChannelAuthorizer`] that asks the application's auth
//! endpoint, for any provider.

use std::time::Duration;

use async_trait::async_trait;
use relayport_core::{AuthRequest, ChannelAuth, ChannelAuthorizer, RealtimeError, Result};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use url::Url;

/// How [`HttpAuthorizer`] encodes its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthBody {
    /// JSON: `{"socket_id", "channel_name", "user": {"id", "info"}}`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`: `socket_id`, `channel_name`, and for presence
    /// channels `user_id` and `user_info` (a JSON string) — the shape many existing Pusher-style
    /// auth endpoints read.
    Form,
}

/// Asks an application's auth endpoint to sign a subscription.
///
/// It POSTs JSON
/// `{"socket_id": "…", "channel_name": "private:room:1", "user": {"id": "…", "info": …}}`
/// (`user` only for presence channels; or the same as a form, see [`AuthBody::Form`]) with the
/// headers given to
/// [`HttpAuthorizer::with_header`] (a session cookie or a bearer token proving who the user
/// is), and returns the endpoint's JSON body unchanged as the [`ChannelAuth`] — the body a
/// backend's provider authorizer produced (`{"auth": …, "channel_data": …}` for the
/// self-hosted server and Pusher, a token request for Ably, …). Nothing here is specific to
/// one provider.
///
/// Answers: 2xx with a JSON body is the authorization; 401 is `Unauthorized`; 403 is
/// `Forbidden`; 5xx and network failures are `Connection` errors (the client runtime retries
/// them with a reconnect); a non-JSON body is a `Protocol` error.
#[derive(Clone)]
pub struct HttpAuthorizer {
    url: Url,
    headers: HeaderMap,
    http: reqwest::Client,
    timeout: Duration,
    body: AuthBody,
}

impl std::fmt::Debug for HttpAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAuthorizer")
            .field("url", &self.url.as_str())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl HttpAuthorizer {
    /// An authorizer posting to the endpoint at `url` (`https://app.example/realtime/auth`).
    pub fn new(url: &str) -> Result<Self> {
        let url = Url::parse(url)
            .map_err(|e| RealtimeError::Config(format!("auth endpoint `{url}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RealtimeError::Config(format!(
                "auth endpoint `{url}`: the scheme must be http or https"
            )));
        }
        Ok(Self {
            url,
            headers: HeaderMap::new(),
            http: reqwest::Client::new(),
            timeout: Duration::from_secs(10),
            body: AuthBody::Json,
        })
    }

    /// How the request is encoded (default JSON).
    pub fn with_body(mut self, body: AuthBody) -> Self {
        self.body = body;
        self
    }

    /// Adds a header sent with every request (`authorization`, `cookie`, …).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| RealtimeError::Config(format!("header name `{name}`: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| RealtimeError::Config(format!("header `{name}`: {e}")))?;
        self.headers.insert(name, value);
        Ok(self)
    }

    /// How long one request may take (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The JSON body posted for `request`.
    pub fn request_body(request: &AuthRequest) -> Value {
        let mut body = json!({
            "socket_id": request.socket_id,
            "channel_name": request.channel.to_string(),
        });
        if let Some(user) = &request.user {
            body["user"] = json!({"id": user.id, "info": user.info});
        }
        body
    }

    /// The form fields posted for `request` with [`AuthBody::Form`].
    pub fn request_form(request: &AuthRequest) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("socket_id", request.socket_id.clone()),
            ("channel_name", request.channel.to_string()),
        ];
        if let Some(user) = &request.user {
            form.push(("user_id", user.id.clone()));
            form.push(("user_info", user.info.to_string()));
        }
        form
    }
}

#[async_trait]
impl ChannelAuthorizer for HttpAuthorizer {
    async fn authorize(&self, request: &AuthRequest) -> Result<ChannelAuth> {
        let channel = request.channel.to_string();
        let post = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout);
        let post = match self.body {
            AuthBody::Json => post.json(&Self::request_body(request)),
            AuthBody::Form => post.form(&Self::request_form(request)),
        };
        let response = post.send().await.map_err(|e| {
            if e.is_timeout() {
                RealtimeError::timeout("the auth endpoint", self.timeout)
            } else {
                RealtimeError::Connection(format!("auth endpoint: {e}"))
            }
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| RealtimeError::Connection(format!("auth endpoint: {e}")))?;
        let reason = || {
            let t: String = text.chars().take(200).collect();
            if t.is_empty() { status.to_string() } else { t }
        };
        match status.as_u16() {
            200..=299 => {}
            401 => return Err(RealtimeError::Unauthorized(reason())),
            403 => {
                return Err(RealtimeError::Forbidden {
                    channel,
                    reason: reason(),
                });
            }
            500..=599 => {
                return Err(RealtimeError::Connection(format!(
                    "auth endpoint answered {status}"
                )));
            }
            _ => {
                return Err(RealtimeError::Unauthorized(format!(
                    "auth endpoint answered {status}: {}",
                    reason()
                )));
            }
        }
        let body: Value = serde_json::from_str(&text).map_err(|e| {
            RealtimeError::Protocol(format!("the auth endpoint's answer is not JSON: {e}"))
        })?;
        if !body.is_object() {
            return Err(RealtimeError::Protocol(
                "the auth endpoint's answer is not a JSON object".into(),
            ));
        }
        Ok(ChannelAuth(body))
    }
}

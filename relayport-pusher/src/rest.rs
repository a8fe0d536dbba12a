//! The HTTP API: trigger, batch, channel queries, user termination and send-to-user, signed as
//! protocol notes §4.1 describe; and the core's [`Publisher`] over it.
//!
//! Every call is built first as a [`RestRequest`] (pure, inspectable, reproducible with a
//! pinned timestamp and nonce) and then sent. A call fails on a non-2xx status **or** a 2xx
//! body with an `error` key. The payload limit (10 KB by default) is checked before sending.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use relayport_core::transport::LinkConfig;
use relayport_core::{OutboundMessage, Publisher, RealtimeError, Result};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Credentials;
use crate::encryption::{NONCE_LEN, encrypt, random_nonce, shared_secret};
use crate::errors::http_error;
use crate::names::{
    SERVER_TO_USER_PREFIX, is_encrypted, to_wire, validate_channel_name, validate_event_name,
    validate_socket_id, validate_user_id,
};
use crate::signing::{SignedQuery, sign};

/// Pusher's payload limit for one event's `data`, in bytes (the hosted cluster's; a
/// self-hosted server's may be larger: [`PusherRest::with_max_payload`]).
pub const DEFAULT_MAX_PAYLOAD: usize = 10 * 1024;
/// How long one HTTP API call may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most channels one trigger may name.
pub const MAX_TRIGGER_CHANNELS: usize = 100;
/// The most events one batch may hold.
pub const MAX_BATCH_EVENTS: usize = 10;
/// The `X-Pusher-Library` header this crate sends.
pub const LIBRARY_HEADER: &str = concat!("realtime-relayport-pusher ", env!("CARGO_PKG_VERSION"));

/// A signed request, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, `/apps/{id}/…`.
    pub path: String,
    /// The signed query.
    pub query: SignedQuery,
    /// The full URL (values percent-encoded where needed).
    pub url: String,
    /// The exact body bytes, for `POST`.
    pub body: Option<String>,
    /// Headers (lowercase names).
    pub headers: Vec<(String, String)>,
}

/// Options of a trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerOptions {
    /// The connection that must not receive the event.
    pub socket_id: Option<String>,
    /// Attributes to return per channel (`user_count`, `subscription_count`).
    pub info: Option<String>,
}

/// One event of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEvent {
    /// The Pusher channel name.
    pub channel: String,
    /// The event name.
    pub name: String,
    /// The data: a string is sent verbatim, anything else as its JSON text.
    pub data: Value,
    /// The connection that must not receive the event.
    pub socket_id: Option<String>,
    /// Attributes to return (`user_count`, `subscription_count`).
    pub info: Option<String>,
}

#[derive(Serialize)]
struct TriggerBody<'a> {
    name: &'a str,
    data: &'a str,
    channels: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a str>,
}

#[derive(Serialize)]
struct BatchItem<'a> {
    channel: &'a str,
    name: &'a str,
    data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a str>,
}

#[derive(Serialize)]
struct BatchBody<'a> {
    batch: Vec<BatchItem<'a>>,
}

/// A client of one app's HTTP API.
#[derive(Clone)]
pub struct PusherRest {
    credentials: Arc<Credentials>,
    base: String,
    /// `None`: [`LinkConfig::shared_default`]'s client, taken at the first call.
    http: Option<reqwest::Client>,
    max_payload: usize,
    fixed_timestamp: Option<u64>,
    fixed_nonce: Option<[u8; NONCE_LEN]>,
}

impl std::fmt::Debug for PusherRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherRest")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .field("max_payload", &self.max_payload)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn data_string(data: &Value) -> String {
    match data {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Interprets an HTTP API answer: a failure is a non-2xx status **or** a JSON body with an
/// `error` key (soketi behind newer uWS answers errors with 200); otherwise the parsed body
/// (`Null` when empty, a JSON string when the body is not JSON).
///
/// ```
/// use relayport_pusher::rest::interpret_response;
/// assert!(interpret_response(200, r#"{"ok":true}"#).is_ok());
/// assert!(interpret_response(200, r#"{"error":"The secret authentication failed","code":401}"#).is_err());
/// assert!(interpret_response(401, "Invalid signature").is_err());
/// ```
pub fn interpret_response(status: u16, text: &str) -> Result<Value> {
    if !(200..300).contains(&status) {
        return Err(http_error(status, text));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => Value::String(text.to_owned()),
    };
    if value.get("error").is_some() {
        return Err(http_error(status, text));
    }
    Ok(value)
}

impl PusherRest {
    /// The API of a Pusher cluster: `https://api-{cluster}.pusher.com`.
    pub fn cluster(credentials: Credentials, cluster: &str) -> Self {
        Self::with_base(credentials, format!("https://api-{cluster}.pusher.com"))
    }

    /// A self-hosted Pusher-compatible server (sockudo, soketi, Reverb).
    pub fn host(credentials: Credentials, host: &str, port: u16, tls: bool) -> Self {
        let scheme = if tls { "https" } else { "http" };
        Self::with_base(credentials, format!("{scheme}://{host}:{port}"))
    }

    fn with_base(credentials: Credentials, base: String) -> Self {
        Self {
            credentials: Arc::new(credentials),
            base,
            http: None,
            max_payload: DEFAULT_MAX_PAYLOAD,
            fixed_timestamp: None,
            fixed_nonce: None,
        }
    }

    /// Changes the payload limit (self-hosted servers often allow 100 KB).
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// The payload limit, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The HTTP client (and so the TLS trust) to call the API with; default: the one of
    /// [`LinkConfig::shared_default`] (rustls, the compiled-in webpki roots). Inject one to
    /// trust a private CA, use the system store or a proxy. Each call is bounded by
    /// [`REQUEST_TIMEOUT`] either way.
    pub fn with_link_config(mut self, config: &LinkConfig) -> Self {
        self.http = Some(config.http().clone());
        self
    }

    /// Pins `auth_timestamp`: for reproducing signed requests in tests only (the server
    /// refuses timestamps more than 600 s off).
    pub fn with_fixed_timestamp(mut self, timestamp: u64) -> Self {
        self.fixed_timestamp = Some(timestamp);
        self
    }

    /// Pins the encryption nonce: for reproducing encrypted requests in tests only. Reusing a
    /// nonce with the same key breaks the encryption.
    pub fn with_fixed_nonce(mut self, nonce: [u8; NONCE_LEN]) -> Self {
        self.fixed_nonce = Some(nonce);
        self
    }

    /// The credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    fn build(
        &self,
        method: &'static str,
        sub_path: &str,
        params: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<RestRequest> {
        let path = format!("/apps/{}{}", self.credentials.app_id, sub_path);
        let ts = self.fixed_timestamp.unwrap_or_else(now_secs);
        let query = sign(
            &self.credentials.key,
            &self.credentials.secret,
            method,
            &path,
            ts,
            params,
            body.as_deref().map(str::as_bytes),
        )?;
        let url = format!("{}{}?{}", self.base, path, query.encoded());
        let mut headers = vec![("x-pusher-library".to_owned(), LIBRARY_HEADER.to_owned())];
        if body.is_some() {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        Ok(RestRequest {
            method,
            path,
            query,
            url,
            body,
            headers,
        })
    }

    fn check_size(&self, data: &str) -> Result<()> {
        if data.len() > self.max_payload {
            return Err(RealtimeError::PayloadTooLarge {
                size: data.len(),
                limit: self.max_payload,
            });
        }
        Ok(())
    }

    fn encrypt_for(&self, channel: &str, data: &Value) -> Result<String> {
        let key = self.credentials.encryption_master_key.ok_or_else(|| {
            RealtimeError::Config(format!(
                "`{channel}` is encrypted and no encryption master key is configured"
            ))
        })?;
        let secret = shared_secret(channel, &key);
        let nonce = self.fixed_nonce.unwrap_or_else(random_nonce);
        let plaintext = data.to_string();
        Ok(encrypt(plaintext.as_bytes(), &secret, &nonce)?.to_json())
    }

    /// The request for `POST /events` to one or up to 100 channels (Pusher names).
    pub fn trigger_request(
        &self,
        channels: &[&str],
        event: &str,
        data: &Value,
        options: &TriggerOptions,
    ) -> Result<RestRequest> {
        if let Some(id) = &options.socket_id {
            validate_socket_id(id)?;
        }
        if channels.len() > MAX_TRIGGER_CHANNELS {
            return Err(RealtimeError::Protocol(format!(
                "Can't trigger a message to more than {MAX_TRIGGER_CHANNELS} channels"
            )));
        }
        if channels.is_empty() {
            return Err(RealtimeError::Protocol(
                "trigger needs at least one channel".into(),
            ));
        }
        validate_event_name(event)?;
        for ch in channels {
            validate_channel_name(ch)?;
        }
        let encrypted = channels.iter().any(|c| is_encrypted(c));
        if encrypted && channels.len() > 1 {
            return Err(RealtimeError::Protocol(
                "You cannot trigger to multiple channels when using encrypted channels".into(),
            ));
        }
        let data = if encrypted {
            self.encrypt_for(channels[0], data)?
        } else {
            data_string(data)
        };
        self.check_size(&data)?;
        self.trigger_unchecked(channels, event, &data, options)
    }

    fn trigger_unchecked(
        &self,
        channels: &[&str],
        event: &str,
        data: &str,
        options: &TriggerOptions,
    ) -> Result<RestRequest> {
        let body = TriggerBody {
            name: event,
            data,
            channels,
            socket_id: options.socket_id.as_deref(),
            info: options.info.as_deref(),
        };
        let body = serde_json::to_string(&body)
            .map_err(|e| RealtimeError::Protocol(format!("trigger body: {e}")))?;
        self.build("POST", "/events", &[], Some(body))
    }

    /// The request for `POST /batch_events` (1 to 10 events).
    pub fn batch_request(&self, events: &[BatchEvent]) -> Result<RestRequest> {
        if events.len() > MAX_BATCH_EVENTS {
            return Err(RealtimeError::Protocol(format!(
                "Can't send more than {MAX_BATCH_EVENTS} events in a batch (got {})",
                events.len()
            )));
        }
        if events.is_empty() {
            return Err(RealtimeError::Protocol(
                "a batch needs at least one event".into(),
            ));
        }
        let mut batch = Vec::with_capacity(events.len());
        for e in events {
            validate_channel_name(&e.channel)?;
            validate_event_name(&e.name)?;
            if let Some(id) = &e.socket_id {
                validate_socket_id(id)?;
            }
            let data = if is_encrypted(&e.channel) {
                self.encrypt_for(&e.channel, &e.data)?
            } else {
                data_string(&e.data)
            };
            self.check_size(&data)?;
            batch.push(BatchItem {
                channel: &e.channel,
                name: &e.name,
                data,
                socket_id: e.socket_id.as_deref(),
                info: e.info.as_deref(),
            });
        }
        let body = serde_json::to_string(&BatchBody { batch })
            .map_err(|e| RealtimeError::Protocol(format!("batch body: {e}")))?;
        self.build("POST", "/batch_events", &[], Some(body))
    }

    /// The request for `GET /channels`, optionally filtered by prefix and with `info`.
    pub fn channels_request(
        &self,
        filter_by_prefix: Option<&str>,
        info: Option<&str>,
    ) -> Result<RestRequest> {
        let mut params = Vec::new();
        if let Some(p) = filter_by_prefix {
            params.push(("filter_by_prefix", p));
        }
        if let Some(i) = info {
            params.push(("info", i));
        }
        self.build("GET", "/channels", &params, None)
    }

    /// The request for `GET /channels/{channel}` with optional `info`.
    pub fn channel_info_request(&self, channel: &str, info: Option<&str>) -> Result<RestRequest> {
        validate_channel_name(channel)?;
        let params: Vec<(&str, &str)> = info.map(|i| ("info", i)).into_iter().collect();
        self.build("GET", &format!("/channels/{channel}"), &params, None)
    }

    /// The request for `GET /channels/{channel}/users` (presence channels).
    pub fn presence_users_request(&self, channel: &str) -> Result<RestRequest> {
        validate_channel_name(channel)?;
        self.build("GET", &format!("/channels/{channel}/users"), &[], None)
    }

    /// The request for `POST /users/{user_id}/terminate_connections`.
    pub fn terminate_user_connections_request(&self, user_id: &str) -> Result<RestRequest> {
        validate_user_id(user_id)?;
        self.build(
            "POST",
            &format!("/users/{user_id}/terminate_connections"),
            &[],
            Some("{}".to_owned()),
        )
    }

    /// The request that sends an event to every connection signed in as `user_id`
    /// (`POST /events` to `#server-to-user-{user_id}`).
    pub fn send_to_user_request(
        &self,
        user_id: &str,
        event: &str,
        data: &Value,
    ) -> Result<RestRequest> {
        validate_user_id(user_id)?;
        validate_event_name(event)?;
        let data = data_string(data);
        self.check_size(&data)?;
        let channel = format!("{SERVER_TO_USER_PREFIX}{user_id}");
        self.trigger_unchecked(&[&channel], event, &data, &TriggerOptions::default())
    }

    /// Sends a request; returns the parsed JSON body (`Null` when empty).
    pub async fn execute(&self, request: &RestRequest) -> Result<Value> {
        let http = match &self.http {
            Some(http) => http.clone(),
            None => LinkConfig::shared_default()?.http().clone(),
        };
        let mut builder = match request.method {
            "GET" => http.get(&request.url),
            _ => http.post(&request.url),
        }
        .timeout(REQUEST_TIMEOUT);
        for (k, v) in &request.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder.send().await.map_err(|e| {
            if e.is_timeout() {
                RealtimeError::timeout("pusher HTTP API", REQUEST_TIMEOUT)
            } else {
                RealtimeError::Connection(format!("pusher HTTP API: {e}"))
            }
        })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| RealtimeError::Connection(format!("pusher HTTP API body: {e}")))?;
        interpret_response(status, &text)
    }

    /// Triggers an event on one or up to 100 channels (Pusher names).
    pub async fn trigger(
        &self,
        channels: &[&str],
        event: &str,
        data: &Value,
        options: &TriggerOptions,
    ) -> Result<Value> {
        let req = self.trigger_request(channels, event, data, options)?;
        self.execute(&req).await
    }

    /// Triggers up to 10 events at once.
    pub async fn trigger_batch(&self, events: &[BatchEvent]) -> Result<Value> {
        let req = self.batch_request(events)?;
        self.execute(&req).await
    }

    /// The occupied channels (`{"channels":{name:{…}}}`).
    pub async fn channels(
        &self,
        filter_by_prefix: Option<&str>,
        info: Option<&str>,
    ) -> Result<Value> {
        let req = self.channels_request(filter_by_prefix, info)?;
        self.execute(&req).await
    }

    /// One channel's state (`{"occupied":…, …}`).
    pub async fn channel_info(&self, channel: &str, info: Option<&str>) -> Result<Value> {
        let req = self.channel_info_request(channel, info)?;
        self.execute(&req).await
    }

    /// The user ids on a presence channel.
    pub async fn presence_users(&self, channel: &str) -> Result<Vec<String>> {
        let req = self.presence_users_request(channel)?;
        let body = self.execute(&req).await?;
        let users = body.get("users").and_then(Value::as_array).ok_or_else(|| {
            RealtimeError::Protocol(format!("users response without `users`: {body}"))
        })?;
        users
            .iter()
            .map(|u| match u.get("id") {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                _ => Err(RealtimeError::Protocol(format!("user without id: {u}"))),
            })
            .collect()
    }

    /// Closes every connection signed in as `user_id`.
    pub async fn terminate_user_connections(&self, user_id: &str) -> Result<Value> {
        let req = self.terminate_user_connections_request(user_id)?;
        self.execute(&req).await
    }

    /// Sends an event to every connection signed in as `user_id`.
    pub async fn send_to_user(&self, user_id: &str, event: &str, data: &Value) -> Result<Value> {
        let req = self.send_to_user_request(user_id, event, data)?;
        self.execute(&req).await
    }
}

#[async_trait]
impl Publisher for PusherRest {
    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        let wire = to_wire(&message.channel)?;
        let options = TriggerOptions {
            socket_id: message.exclude_socket_id.clone(),
            info: None,
        };
        let data = message.data.json_for("pusher")?;
        self.trigger(&[&wire], &message.event, data, &options)
            .await
            .map(|_| ())
    }

    /// Sends the messages in batches of up to 10, in order.
    async fn publish_batch(&self, messages: &[OutboundMessage]) -> Result<()> {
        for chunk in messages.chunks(MAX_BATCH_EVENTS) {
            let events = chunk
                .iter()
                .map(|m| {
                    Ok(BatchEvent {
                        channel: to_wire(&m.channel)?,
                        name: m.event.clone(),
                        data: m.data.json_for("pusher")?.clone(),
                        socket_id: m.exclude_socket_id.clone(),
                        info: None,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            self.trigger_batch(&events).await?;
        }
        Ok(())
    }
}

//! The Ably REST API: request building (pure, see [`RestRequest`]) and [`AblyRest`], which
//! executes requests over HTTP(S) and implements the core's [`Publisher`]: publish (single,
//! batch) with idempotent message ids, history with `Link`-header paging, presence, time and
//! `requestToken`, with Basic or Bearer auth.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use relayport_core::transport::LinkConfig;
use relayport_core::{OutboundMessage, Publisher, RealtimeError, Result, async_trait};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::DEFAULT_HOST;
use crate::channels::ably_name;
use crate::encoding::{Payload, check_size, message_size};
use crate::errors::to_realtime_error;
use crate::protocol::{ErrorInfo, PROTOCOL_VERSION};
use crate::token::{ApiKey, TokenDetails, TokenParams, TokenRequest};

/// How REST requests authenticate.
#[derive(Clone)]
pub enum RestAuth {
    /// `Authorization: Basic base64(key)`.
    Basic(ApiKey),
    /// `Authorization: Bearer base64(token)` with a fixed token.
    Token(String),
    /// Token auth with a key (`useTokenAuth`): a token is requested with these params on first
    /// use and renewed once on a token error.
    TokenFromKey(ApiKey, TokenParams),
}

impl std::fmt::Debug for RestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic(k) => write!(f, "Basic({k:?})"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::TokenFromKey(k, _) => write!(f, "TokenFromKey({k:?})"),
        }
    }
}

/// Where and how to reach the REST API.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// Host (default `main.realtime.ably.net`).
    pub host: String,
    /// Port (default 443 with TLS, 80 without).
    pub port: Option<u16>,
    /// HTTPS (default true).
    pub tls: bool,
    /// Authentication.
    pub auth: RestAuth,
    /// The client id, sent as `X-Ably-ClientId` with basic auth.
    pub client_id: Option<String>,
    /// The largest message batch accepted, in bytes (default 65536).
    pub max_message_size: usize,
}

impl RestConfig {
    /// Basic auth with `key` against the production host.
    pub fn with_key(key: ApiKey) -> Self {
        Self {
            host: DEFAULT_HOST.into(),
            port: None,
            tls: true,
            auth: RestAuth::Basic(key),
            client_id: None,
            max_message_size: 65536,
        }
    }

    fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let port = self.port.unwrap_or(if self.tls { 443 } else { 80 });
        format!("{scheme}://{}:{port}", self.host)
    }
}

/// One REST request, ready to send: what the vectors compare.
#[derive(Debug, Clone, PartialEq)]
pub struct RestRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, percent-encoded.
    pub path: String,
    /// Query parameters in order (not encoded).
    pub query: Vec<(String, String)>,
    /// Headers (lowercase names) except authorization, added when sent.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Option<String>,
    /// Whether the request carries the configured authorization.
    pub authenticated: bool,
}

impl RestRequest {
    fn new(method: &'static str, path: String) -> Self {
        let mut headers = vec![("accept".to_owned(), "application/json".to_owned())];
        if method == "POST" {
            headers.push(("content-type".into(), "application/json".into()));
        }
        headers.push(("x-ably-version".into(), PROTOCOL_VERSION.into()));
        headers.push(("ably-agent".into(), crate::agent()));
        Self {
            method,
            path,
            query: Vec::new(),
            headers,
            body: None,
            authenticated: true,
        }
    }

    /// The path and encoded query string.
    pub fn url_path(&self) -> String {
        if self.query.is_empty() {
            return self.path.clone();
        }
        let qs: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        format!("{}?{}", self.path, qs.join("&"))
    }
}

/// `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` percent-encoded as UTF-8.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A message for the REST API.
#[derive(Debug, Clone, PartialEq)]
pub struct RestMessage {
    /// The id (idempotency); generated when no message of a publish has one.
    pub id: Option<String>,
    /// The event name.
    pub name: Option<String>,
    /// The payload.
    pub data: Payload,
    /// Extras.
    pub extras: Option<Value>,
    /// The client id (publishing on behalf, with a wildcard token).
    pub client_id: Option<String>,
}

impl RestMessage {
    /// A message with a name and payload.
    pub fn new(name: impl Into<String>, data: Payload) -> Self {
        Self {
            id: None,
            name: Some(name.into()),
            data,
            extras: None,
            client_id: None,
        }
    }

    fn size(&self) -> usize {
        message_size(
            self.name.as_deref(),
            self.client_id.as_deref(),
            self.extras.as_ref(),
            &self.data,
        )
    }

    fn to_wire(&self) -> Value {
        let mut m = serde_json::Map::new();
        if let Some(id) = &self.id {
            m.insert("id".into(), json!(id));
        }
        if let Some(name) = &self.name {
            m.insert("name".into(), json!(name));
        }
        if let Some(c) = &self.client_id {
            m.insert("clientId".into(), json!(c));
        }
        let (data, encoding) = self.data.encode();
        if let Some(d) = data {
            m.insert("data".into(), d);
        }
        if let Some(e) = &self.extras {
            m.insert("extras".into(), e.clone());
        }
        m.insert("action".into(), json!(0));
        if let Some(e) = encoding {
            m.insert("encoding".into(), json!(e));
        }
        Value::Object(m)
    }
}

/// History query (`RSL2`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryQuery {
    /// Earliest time, ms.
    pub start: Option<u64>,
    /// Latest time, ms.
    pub end: Option<u64>,
    /// `backwards` (default) or `forwards`.
    pub direction: Option<String>,
    /// Page size (≤ 1000).
    pub limit: Option<u32>,
}

/// A page of a paginated REST result.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The items, as JSON.
    pub items: Vec<Value>,
    /// The request path (with query) of the next page, if any.
    pub next: Option<String>,
}

/// Request builders, one per REST operation.
pub mod requests {
    use super::*;

    /// `GET /time`.
    pub fn time() -> RestRequest {
        let mut r = RestRequest::new("GET", "/time".into());
        r.authenticated = false;
        r
    }

    /// `POST /channels/{name}/messages`. Ids `<base>:<index>` are generated with `id_base`
    /// when no message has one (idempotent publishing, `RSL1k`).
    pub fn publish(
        channel: &str,
        messages: &[RestMessage],
        params: &[(String, String)],
        max_size: usize,
        id_base: &str,
    ) -> Result<RestRequest> {
        let total: usize = messages.iter().map(RestMessage::size).sum();
        check_size(total, max_size)?;
        let generate = messages.iter().all(|m| m.id.is_none());
        let wire: Vec<Value> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut m = m.clone();
                if generate {
                    m.id = Some(format!("{id_base}:{i}"));
                }
                m.to_wire()
            })
            .collect();
        let mut r = RestRequest::new(
            "POST",
            format!("/channels/{}/messages", encode_component(channel)),
        );
        r.query = params.to_vec();
        r.body = Some(Value::Array(wire).to_string());
        Ok(r)
    }

    /// `POST /messages` with batch specs `[{channels, messages}]`.
    pub fn batch_publish(specs: &[Value]) -> RestRequest {
        let mut r = RestRequest::new("POST", "/messages".into());
        r.body = Some(Value::Array(specs.to_vec()).to_string());
        r
    }

    fn with_query(mut r: RestRequest, q: &HistoryQuery) -> RestRequest {
        if let Some(s) = q.start {
            r.query.push(("start".into(), s.to_string()));
        }
        if let Some(e) = q.end {
            r.query.push(("end".into(), e.to_string()));
        }
        if let Some(d) = &q.direction {
            r.query.push(("direction".into(), d.clone()));
        }
        if let Some(l) = q.limit {
            r.query.push(("limit".into(), l.to_string()));
        }
        r
    }

    /// `GET /channels/{name}/messages?start&end&direction&limit`.
    pub fn history(channel: &str, q: &HistoryQuery) -> RestRequest {
        let path = format!("/channels/{}/messages", encode_component(channel));
        with_query(RestRequest::new("GET", path), q)
    }

    /// `GET /channels/{name}/presence?limit&clientId&connectionId`.
    pub fn presence_get(
        channel: &str,
        limit: Option<u32>,
        client_id: Option<&str>,
        connection_id: Option<&str>,
    ) -> RestRequest {
        let mut r = RestRequest::new(
            "GET",
            format!("/channels/{}/presence", encode_component(channel)),
        );
        if let Some(l) = limit {
            r.query.push(("limit".into(), l.to_string()));
        }
        if let Some(c) = client_id {
            r.query.push(("clientId".into(), c.into()));
        }
        if let Some(c) = connection_id {
            r.query.push(("connectionId".into(), c.into()));
        }
        r
    }

    /// `GET /channels/{name}/presence/history`.
    pub fn presence_history(channel: &str, q: &HistoryQuery) -> RestRequest {
        let path = format!("/channels/{}/presence/history", encode_component(channel));
        with_query(RestRequest::new("GET", path), q)
    }

    /// `GET /channels/{name}?envelope=json` (channel status).
    pub fn channel_status(channel: &str) -> RestRequest {
        let mut r = RestRequest::new("GET", format!("/channels/{}", encode_component(channel)));
        // ably-js sends a content type on this GET.
        r.headers
            .insert(1, ("content-type".into(), "application/json".into()));
        r.query.push(("envelope".into(), "json".into()));
        r
    }

    /// `GET /presence?channels=a,b`.
    pub fn batch_presence(channels: &[&str]) -> RestRequest {
        let mut r = RestRequest::new("GET", "/presence".into());
        r.query.push(("channels".into(), channels.join(",")));
        r
    }

    /// `GET /stats?unit&limit`.
    pub fn stats(unit: Option<&str>, limit: Option<u32>) -> RestRequest {
        let mut r = RestRequest::new("GET", "/stats".into());
        if let Some(u) = unit {
            r.query.push(("unit".into(), u.into()));
        }
        if let Some(l) = limit {
            r.query.push(("limit".into(), l.to_string()));
        }
        r
    }

    /// `POST /keys/{keyName}/requestToken` with a signed TokenRequest (no Authorization).
    pub fn request_token(tr: &TokenRequest) -> RestRequest {
        let mut r = RestRequest::new("POST", format!("/keys/{}/requestToken", tr.key_name));
        r.body = serde_json::to_string(tr).ok();
        r.authenticated = false;
        r
    }

    /// A follow-up page: `link` is a `Link` target (`./messages?…`) relative to `base_path`.
    pub fn follow(base_path: &str, link: &str) -> RestRequest {
        let dir = base_path.rsplit_once('/').map_or("", |(d, _)| d);
        let rel = link.strip_prefix("./").unwrap_or(link);
        let (path, qs) = rel.split_once('?').unwrap_or((rel, ""));
        let mut r = RestRequest::new("GET", format!("{dir}/{path}"));
        for pair in qs.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            r.query.push((decode_component(k), decode_component(v)));
        }
        r
    }
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `rel="next"` target of `Link` header values (`<./messages?…>; rel="next"`).
pub fn next_link(values: &[String]) -> Option<String> {
    values.iter().flat_map(|v| v.split(',')).find_map(|part| {
        let part = part.trim();
        let (target, rel) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        (rel.trim() == "rel=\"next\"").then(|| target.to_owned())
    })
}

/// A fresh idempotency base: base64 of 9 random bytes (12 characters).
pub fn random_id_base() -> String {
    let bytes: Vec<u8> = (0..9).map(|_| fastrand::u8(..)).collect();
    B64.encode(bytes)
}

/// The response of a publish: serials per message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublishResponse {
    /// The serials assigned.
    #[serde(default)]
    pub serials: Vec<Option<String>>,
}

/// The Ably REST client; implements [`Publisher`].
///
/// ```no_run
/// use relayport_ably::rest::{AblyRest, RestConfig};
/// use relayport_ably::token::ApiKey;
/// let rest = AblyRest::new(RestConfig::with_key(ApiKey::parse("appId.keyId:secret").unwrap())).unwrap();
/// ```
#[derive(Clone)]
pub struct AblyRest {
    cfg: Arc<RestConfig>,
    http: reqwest::Client,
    token: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for AblyRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AblyRest")
            .field("host", &self.cfg.host)
            .finish()
    }
}

/// How long one REST request may take (ably-js `httpRequestTimeout`, 10 s).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A response: status, `Link` headers and the JSON body.
#[derive(Debug, Clone)]
pub struct RestResponse {
    /// HTTP status.
    pub status: u16,
    /// `Link` header values.
    pub links: Vec<String>,
    /// The body as JSON (`null` if empty).
    pub body: Value,
}

impl AblyRest {
    /// A client for `cfg` on the process-wide default link configuration
    /// ([`LinkConfig::shared_default`]: rustls, the compiled-in webpki roots).
    pub fn new(cfg: RestConfig) -> Result<Self> {
        Ok(Self::with_link_config(cfg, &LinkConfig::shared_default()?))
    }

    /// A client for `cfg` on `link`'s HTTP client (its TLS configuration, proxy and pool).
    pub fn with_link_config(cfg: RestConfig, link: &LinkConfig) -> Self {
        Self::with_http(cfg, link.http().clone())
    }

    /// A client for `cfg` on this HTTP client. Each request is bounded by
    /// [`REQUEST_TIMEOUT`] (ably-js `httpRequestTimeout`).
    pub fn with_http(cfg: RestConfig, http: reqwest::Client) -> Self {
        Self {
            cfg: Arc::new(cfg),
            http,
            token: Arc::new(Mutex::new(None)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RestConfig {
        &self.cfg
    }

    async fn authorization(&self, renew: bool) -> Result<Option<String>> {
        match &self.cfg.auth {
            RestAuth::Basic(key) => Ok(Some(format!("Basic {}", B64.encode(key.full())))),
            RestAuth::Token(t) => Ok(Some(format!("Bearer {}", B64.encode(t)))),
            RestAuth::TokenFromKey(key, params) => {
                let mut cached = self.token.lock().await;
                if renew || cached.is_none() {
                    let tr = key.create_token_request(params)?;
                    let details: Result<TokenDetails> = Box::pin(self.request_token(&tr)).await;
                    *cached = Some(details?.token);
                }
                Ok(cached.as_ref().map(|t| format!("Bearer {}", B64.encode(t))))
            }
        }
    }

    /// Sends a request; on a token error with renewable token auth, renews once and retries.
    pub async fn execute(&self, req: &RestRequest) -> Result<RestResponse> {
        match self.send(req, false).await? {
            Ok(r) => Ok(r),
            Err(info)
                if matches!(self.cfg.auth, RestAuth::TokenFromKey(..))
                    && crate::errors::is_token_error(info.code()) =>
            {
                self.execute_once(req, true).await
            }
            Err(info) => Err(to_realtime_error(&info, None)),
        }
    }

    async fn execute_once(&self, req: &RestRequest, renew: bool) -> Result<RestResponse> {
        self.send(req, renew)
            .await?
            .map_err(|info| to_realtime_error(&info, None))
    }

    /// One request: transport failures as the outer error, the API's error as the inner.
    async fn send(
        &self,
        req: &RestRequest,
        renew: bool,
    ) -> Result<std::result::Result<RestResponse, ErrorInfo>> {
        let url = format!("{}{}", self.cfg.base_url(), req.url_path());
        let method = if req.method == "POST" {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        };
        let mut builder = self.http.request(method, &url).timeout(REQUEST_TIMEOUT);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        if req.authenticated {
            if let Some(a) = self.authorization(renew).await? {
                builder = builder.header("authorization", a);
            }
            if let (Some(c), RestAuth::Basic(_)) = (&self.cfg.client_id, &self.cfg.auth) {
                builder = builder.header("x-ably-clientid", B64.encode(c));
            }
        }
        if let Some(b) = &req.body {
            builder = builder.body(b.clone());
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| RealtimeError::Connection(format!("ably REST {}: {e}", req.path)))?;
        let status = resp.status().as_u16();
        let links = resp
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| RealtimeError::Connection(format!("ably REST body: {e}")))?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                RealtimeError::Protocol(format!("ably REST {}: body is not JSON: {e}", req.path))
            })?
        };
        if status >= 400 {
            let info: ErrorInfo = body
                .get("error")
                .and_then(|e| serde_json::from_value(e.clone()).ok())
                .unwrap_or_else(|| {
                    ErrorInfo::new(i64::from(status) * 100, i64::from(status), "HTTP error")
                });
            return Ok(Err(info));
        }
        Ok(Ok(RestResponse {
            status,
            links,
            body,
        }))
    }

    async fn page(&self, req: &RestRequest) -> Result<Page> {
        let resp = self.execute(req).await?;
        let items = match resp.body {
            Value::Array(a) => a,
            Value::Null => Vec::new(),
            other => {
                return Err(RealtimeError::Protocol(format!(
                    "expected an array of items, got {other}"
                )));
            }
        };
        Ok(Page {
            items,
            next: next_link(&resp.links),
        })
    }

    /// Server time, ms since the epoch.
    pub async fn time(&self) -> Result<u64> {
        let resp = self.execute(&requests::time()).await?;
        resp.body
            .get(0)
            .and_then(Value::as_u64)
            .ok_or_else(|| RealtimeError::Protocol("GET /time: expected [ms]".into()))
    }

    /// Publishes messages to an Ably channel name (ids generated if none has one).
    pub async fn publish_messages(
        &self,
        channel: &str,
        messages: &[RestMessage],
        params: &[(String, String)],
    ) -> Result<PublishResponse> {
        let req = requests::publish(
            channel,
            messages,
            params,
            self.cfg.max_message_size,
            &random_id_base(),
        )?;
        let resp = self.execute(&req).await?;
        Ok(serde_json::from_value(resp.body).unwrap_or_default())
    }

    /// Batch publish (`POST /messages`); returns the per-channel results as JSON.
    pub async fn batch_publish(&self, specs: &[Value]) -> Result<Value> {
        Ok(self.execute(&requests::batch_publish(specs)).await?.body)
    }

    /// A history page of an Ably channel name.
    pub async fn history(&self, channel: &str, q: &HistoryQuery) -> Result<Page> {
        self.page(&requests::history(channel, q)).await
    }

    /// The page a `next` link of an earlier page (of `channel`'s history) points at.
    pub async fn next_page(&self, base_path: &str, next: &str) -> Result<Page> {
        self.page(&requests::follow(base_path, next)).await
    }

    /// Current presence members of an Ably channel name.
    pub async fn presence_get(
        &self,
        channel: &str,
        limit: Option<u32>,
        client_id: Option<&str>,
    ) -> Result<Page> {
        self.page(&requests::presence_get(channel, limit, client_id, None))
            .await
    }

    /// Presence history of an Ably channel name.
    pub async fn presence_history(&self, channel: &str, q: &HistoryQuery) -> Result<Page> {
        self.page(&requests::presence_history(channel, q)).await
    }

    /// Channel status (occupancy).
    pub async fn channel_status(&self, channel: &str) -> Result<Value> {
        Ok(self.execute(&requests::channel_status(channel)).await?.body)
    }

    /// Presence of several channels at once.
    pub async fn batch_presence(&self, channels: &[&str]) -> Result<Value> {
        Ok(self
            .execute(&requests::batch_presence(channels))
            .await?
            .body)
    }

    /// Application stats.
    pub async fn stats(&self, unit: Option<&str>, limit: Option<u32>) -> Result<Page> {
        self.page(&requests::stats(unit, limit)).await
    }

    /// Exchanges a signed TokenRequest for a token.
    pub async fn request_token(&self, tr: &TokenRequest) -> Result<TokenDetails> {
        let resp = self
            .execute_once(&requests::request_token(tr), false)
            .await?;
        serde_json::from_value(resp.body).map_err(|e| {
            RealtimeError::Protocol(format!("requestToken: malformed TokenDetails: {e}"))
        })
    }

    fn rest_message(m: &OutboundMessage) -> Result<(String, RestMessage)> {
        let channel = ably_name(&m.channel)?;
        let mut msg = RestMessage::new(m.event.clone(), Payload::from_core(&m.data)?);
        msg.id = m.id.clone();
        if let Some(exclude) = &m.exclude_socket_id {
            // Ably has no per-publish exclusion; say so instead of ignoring it.
            return Err(RealtimeError::Unsupported(format!(
                "excluding a connection ({exclude}) from an Ably publish"
            )));
        }
        Ok((channel, msg))
    }
}

#[async_trait]
impl Publisher for AblyRest {
    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        let (channel, msg) = Self::rest_message(message)?;
        self.publish_messages(&channel, &[msg], &[])
            .await
            .map(|_| ())
    }

    async fn publish_batch(&self, messages: &[OutboundMessage]) -> Result<()> {
        let mut specs = Vec::with_capacity(messages.len());
        let base = random_id_base();
        for (i, m) in messages.iter().enumerate() {
            let (channel, mut msg) = Self::rest_message(m)?;
            if msg.id.is_none() {
                msg.id = Some(format!("{base}:{i}"));
            }
            check_size(msg.size(), self.cfg.max_message_size)?;
            specs.push(json!({"channels": [channel], "messages": [msg.to_wire()]}));
        }
        let body = self.batch_publish(&specs).await?;
        if let Some(failure) = body.as_array().and_then(|results| {
            results.iter().find_map(|r| {
                r.get("error")
                    .and_then(|e| serde_json::from_value::<ErrorInfo>(e.clone()).ok())
            })
        }) {
            return Err(to_realtime_error(&failure, None));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        let v = vec![
            "<./messages?limit=2&cursor=page2>; rel=\"next\", <./messages?limit=2>; rel=\"first\""
                .to_owned(),
        ];
        assert_eq!(
            next_link(&v).as_deref(),
            Some("./messages?limit=2&cursor=page2")
        );
        assert_eq!(next_link(&["<./m>; rel=\"first\"".to_owned()]), None);
        let r = requests::follow("/channels/a/messages", "./messages?limit=2&x=a%2Cb");
        assert_eq!(r.path, "/channels/a/messages");
        assert_eq!(
            r.query,
            vec![("limit".into(), "2".into()), ("x".into(), "a,b".into())]
        );
    }

    #[test]
    fn component_encoding_matches_encode_uri_component() {
        assert_eq!(
            encode_component("ns:room/1 ü?"),
            "ns%3Aroom%2F1%20%C3%BC%3F"
        );
        assert_eq!(encode_component("a,b"), "a%2Cb");
        assert_eq!(decode_component("a%2Cb%"), "a,b%");
    }

    #[test]
    fn idempotent_id_base_shape() {
        let b = random_id_base();
        assert_eq!(b.len(), 12);
    }
}

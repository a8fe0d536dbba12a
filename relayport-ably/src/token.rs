//! Ably token requests: API keys, capability canonicalisation, the TokenRequest MAC
//! (`ably.md` §4.3), token details, and [`AblyAuthorizer`], the server-side
//! [`ChannelAuthorizer`] that signs a TokenRequest for a subscription.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use relayport_core::{
    AuthRequest, ChannelAuth, ChannelAuthorizer, ChannelKind, RealtimeError, Result, async_trait,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::channels::ably_name;

/// An Ably API key, `appId.keyId:secret`. The secret never leaves the process: it is used to
/// sign, and sent only when the application chose basic auth.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    key_name: String,
    secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("key_name", &self.key_name)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ApiKey {
    /// Parses `appId.keyId:secret`.
    ///
    /// ```
    /// let key = relayport_ably::token::ApiKey::parse("appId.keyId:keySecret").unwrap();
    /// assert_eq!(key.key_name(), "appId.keyId");
    /// assert!(relayport_ably::token::ApiKey::parse("no-secret").is_err());
    /// ```
    pub fn parse(key: &str) -> Result<Self> {
        match key.split_once(':') {
            Some((name, secret)) if !name.is_empty() && !secret.is_empty() => Ok(Self {
                key_name: name.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => Err(RealtimeError::Config(
                "an Ably key has the form `appId.keyId:secret`".into(),
            )),
        }
    }

    /// `appId.keyId`.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The full key, for basic auth.
    pub fn full(&self) -> String {
        format!("{}:{}", self.key_name, self.secret)
    }

    /// Signs `params` into a TokenRequest. A missing timestamp is the local clock; a missing
    /// nonce is 16 random decimal digits (as ably-js makes them).
    pub fn create_token_request(&self, params: &TokenParams) -> Result<TokenRequest> {
        let capability = match &params.capability {
            Some(c) => Some(canonical_capability(c)?),
            None => None,
        };
        if params.client_id.as_deref() == Some("") {
            return Err(RealtimeError::Config(
                "a token request's clientId must not be empty".into(),
            ));
        }
        let timestamp = params.timestamp.unwrap_or_else(now_ms);
        let nonce = params.nonce.clone().unwrap_or_else(random_nonce);
        let mut request = TokenRequest {
            key_name: self.key_name.clone(),
            ttl: params.ttl,
            capability,
            client_id: params.client_id.clone(),
            timestamp,
            nonce,
            mac: None,
        };
        request.mac = Some(self.mac(&request));
        Ok(request)
    }

    /// The MAC of a request: HMAC-SHA256 with the secret over [`sign_text`], standard base64.
    pub fn mac(&self, request: &TokenRequest) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(sign_text(request).as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// Whether `request` was signed with this key (constant-time comparison of the MAC).
    pub fn verify(&self, request: &TokenRequest) -> bool {
        let Some(given) = request.mac.as_deref() else {
            return false;
        };
        if request.key_name != self.key_name {
            return false;
        }
        let expected = self.mac(request);
        expected.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

/// The text a TokenRequest's MAC covers: keyName, ttl, capability, clientId, timestamp and
/// nonce, each followed by `\n`, absent ones empty.
pub fn sign_text(r: &TokenRequest) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n",
        r.key_name,
        r.ttl.map(|t| t.to_string()).unwrap_or_default(),
        r.capability.as_deref().unwrap_or(""),
        r.client_id.as_deref().unwrap_or(""),
        r.timestamp,
        r.nonce
    )
}

/// Canonical capability JSON: resources sorted, each operation list sorted, no whitespace.
/// Accepts an object or a JSON string holding one.
///
/// ```
/// use serde_json::json;
/// let c = relayport_ably::token::canonical_capability(&json!({"b":["subscribe","publish"],"a":["*"]})).unwrap();
/// assert_eq!(c, r#"{"a":["*"],"b":["publish","subscribe"]}"#);
/// ```
pub fn canonical_capability(capability: &Value) -> Result<String> {
    let parsed;
    let object = match capability {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|e| RealtimeError::Config(format!("capability is not JSON: {e}")))?;
            &parsed
        }
        other => other,
    };
    let Value::Object(map) = object else {
        return Err(RealtimeError::Config(
            "a capability is an object of resource -> operations".into(),
        ));
    };
    let mut canonical: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (resource, ops) in map {
        let Value::Array(ops) = ops else {
            return Err(RealtimeError::Config(format!(
                "capability operations for `{resource}` must be an array"
            )));
        };
        let mut list = Vec::with_capacity(ops.len());
        for op in ops {
            let Value::String(op) = op else {
                return Err(RealtimeError::Config(format!(
                    "capability operations for `{resource}` must be strings"
                )));
            };
            list.push(op.as_str());
        }
        list.sort_unstable();
        canonical.insert(resource.as_str(), list);
    }
    serde_json::to_string(&canonical).map_err(|e| RealtimeError::Config(e.to_string()))
}

/// What a token request asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenParams {
    /// Lifetime in ms; omitted: the server default (60 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// Capability (object or JSON string); omitted: the key's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<Value>,
    /// The client id the token is bound to (`*` for any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// ms since the epoch; omitted: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// At least 16 characters; omitted: random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// A signed token request (`TE1`–`TE5`): what an auth endpoint returns and what a client
/// exchanges for a token at `POST /keys/{keyName}/requestToken`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    /// `appId.keyId`.
    pub key_name: String,
    /// Lifetime in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// Canonical capability JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// The client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// ms since the epoch.
    pub timestamp: u64,
    /// The nonce.
    pub nonce: String,
    /// The MAC (`None` for an unsigned request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// An issued token (`TokenDetails`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenDetails {
    /// The token string.
    pub token: String,
    /// The key it was issued from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// Issue time, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<u64>,
    /// Expiry time, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Capability JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// Bound client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// What an auth callback or auth URL may return (`RSA8d`).
#[derive(Debug, Clone, PartialEq)]
pub enum AuthResponse {
    /// A token string (Ably token or JWT).
    Token(String),
    /// Token details.
    Details(TokenDetails),
    /// A signed token request, to exchange for a token.
    Request(TokenRequest),
}

impl AuthResponse {
    /// Interprets a JSON body: a TokenRequest (has `mac` and `keyName`), TokenDetails (has
    /// `token`), or a bare JSON string token.
    pub fn from_json(value: &Value) -> Result<Self> {
        match value {
            Value::String(s) if !s.is_empty() => Ok(Self::Token(s.clone())),
            Value::Object(map) if map.contains_key("token") => {
                serde_json::from_value(value.clone())
                    .map(Self::Details)
                    .map_err(|e| RealtimeError::Protocol(format!("malformed TokenDetails: {e}")))
            }
            Value::Object(map) if map.contains_key("keyName") => {
                serde_json::from_value(value.clone())
                    .map(Self::Request)
                    .map_err(|e| RealtimeError::Protocol(format!("malformed TokenRequest: {e}")))
            }
            _ => Err(RealtimeError::Protocol(
                "auth response is neither a token, TokenDetails nor a TokenRequest".into(),
            )),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 16 random decimal digits.
pub fn random_nonce() -> String {
    (0..16)
        .map(|_| char::from(b'0' + fastrand::u8(0..10)))
        .collect()
}

/// Signs TokenRequests for subscriptions on the server side: the Ably [`ChannelAuthorizer`].
///
/// The capability granted is the application's `base` capability (default: none beyond the
/// channel) plus every channel granted to the same connection (`socket_id`) so far: an Ably
/// token's capability *replaces* the connection's, so a token for one channel alone would make
/// the server fail the others (40160). Each channel gets `subscribe`, `publish`, `history`
/// and, for presence channels, `presence`. The grants of the last [`GRANTS_REMEMBERED`]
/// connections are remembered. A `capability` function replaces the whole rule.
///
/// The token's clientId is the presence user's id, or the one set with
/// [`AblyAuthorizer::client_id`]; a client whose connection has a clientId needs tokens
/// bound to that same id for every channel kind (Ably refuses a change with 40102).
///
/// ```
/// use relayport_ably::token::{AblyAuthorizer, ApiKey, TokenRequest};
/// use relayport_core::{AuthRequest, Channel, ChannelAuthorizer};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let key = ApiKey::parse("appId.keyId:keySecret").unwrap();
/// let auth = AblyAuthorizer::new(key.clone());
/// let body = auth.authorize(&AuthRequest {
///     socket_id: "conn".into(), channel: Channel::private("orders"), user: None,
/// }).await.unwrap();
/// let req: TokenRequest = serde_json::from_value(body.0).unwrap();
/// assert!(key.verify(&req));
/// assert_eq!(req.capability.as_deref(), Some(r#"{"private:orders":["history","publish","subscribe"]}"#));
/// # });
/// ```
pub struct AblyAuthorizer {
    key: ApiKey,
    ttl: Option<u64>,
    base: serde_json::Map<String, Value>,
    capability: Option<CapabilityFn>,
    client_id: Option<String>,
    grants: std::sync::Mutex<Grants>,
}

/// How many connections' grants an [`AblyAuthorizer`] remembers (oldest forgotten first).
pub const GRANTS_REMEMBERED: usize = 4096;

/// The channels granted per connection, oldest connection first.
#[derive(Default)]
struct Grants {
    order: std::collections::VecDeque<String>,
    by_connection: std::collections::HashMap<String, serde_json::Map<String, Value>>,
}

impl Grants {
    /// Adds `resource → ops` to the connection's grants; returns all of them.
    fn add(
        &mut self,
        connection: &str,
        resource: String,
        ops: Value,
    ) -> serde_json::Map<String, Value> {
        if !self.by_connection.contains_key(connection) {
            if self.order.len() >= GRANTS_REMEMBERED
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_connection.remove(&oldest);
            }
            self.order.push_back(connection.to_owned());
        }
        let grants = self.by_connection.entry(connection.to_owned()).or_default();
        grants.insert(resource, ops);
        grants.clone()
    }
}

type CapabilityFn = Box<dyn Fn(&AuthRequest) -> Result<Value> + Send + Sync>;

impl AblyAuthorizer {
    /// An authorizer signing with `key`; tokens live one hour.
    pub fn new(key: ApiKey) -> Self {
        Self {
            key,
            ttl: Some(3_600_000),
            base: serde_json::Map::new(),
            capability: None,
            client_id: None,
            grants: std::sync::Mutex::new(Grants::default()),
        }
    }

    /// Binds every token to this clientId (the connection's), whatever the channel kind; by
    /// default only presence tokens carry one (the presence user's id).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Sets the token lifetime in ms (`None`: the server default).
    pub fn ttl(mut self, ttl: Option<u64>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Adds resources granted to every token (e.g. `{"*": ["subscribe"]}` for public channels).
    pub fn base_capability(mut self, base: serde_json::Map<String, Value>) -> Self {
        self.base = base;
        self
    }

    /// Replaces the capability rule entirely.
    pub fn capability(
        mut self,
        f: impl Fn(&AuthRequest) -> Result<Value> + Send + Sync + 'static,
    ) -> Self {
        self.capability = Some(Box::new(f));
        self
    }

    /// The TokenRequest for `request` (timestamp now, random nonce).
    pub fn token_request(&self, request: &AuthRequest) -> Result<TokenRequest> {
        let capability = match &self.capability {
            Some(f) => f(request)?,
            None => {
                let mut ops = vec!["history", "presence", "publish", "subscribe"];
                if request.channel.kind() != ChannelKind::Presence {
                    ops.retain(|op| *op != "presence");
                }
                let granted = relayport_core::transport::lock(&self.grants).add(
                    &request.socket_id,
                    ably_name(&request.channel)?,
                    Value::from(ops),
                );
                let mut cap = self.base.clone();
                cap.extend(granted);
                Value::Object(cap)
            }
        };
        let client_id = self
            .client_id
            .clone()
            .or_else(|| request.user.as_ref().map(|u| u.id.clone()));
        self.key.create_token_request(&TokenParams {
            ttl: self.ttl,
            capability: Some(capability),
            client_id,
            timestamp: None,
            nonce: None,
        })
    }
}

#[async_trait]
impl ChannelAuthorizer for AblyAuthorizer {
    async fn authorize(&self, request: &AuthRequest) -> Result<ChannelAuth> {
        let tr = self.token_request(request)?;
        serde_json::to_value(&tr)
            .map(ChannelAuth)
            .map_err(|e| RealtimeError::Protocol(e.to_string()))
    }
}

/// A client-side [`ChannelAuthorizer`] for connections whose own credentials already carry
/// the channel capabilities (a key with basic auth, or a token the application issued with
/// every capability the user needs). It returns an empty authorization (`null`), so the
/// provider attaches without re-authenticating; Ably itself enforces the capability.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionCapability;

#[async_trait]
impl ChannelAuthorizer for ConnectionCapability {
    async fn authorize(&self, _request: &AuthRequest) -> Result<ChannelAuth> {
        Ok(ChannelAuth(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::vectors;

    /// Every `tokenRequests` vector: output fields, sign text and MAC reproduced exactly.
    #[test]
    fn token_request_vectors() {
        let v = vectors();
        let cases = v["tokenRequests"].as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let key = ApiKey::parse(case["key"].as_str().unwrap()).unwrap();
            let params: TokenParams = serde_json::from_value(case["input"].clone()).unwrap();
            let req = key.create_token_request(&params).unwrap();
            assert_eq!(
                sign_text(&req),
                case["signText"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                serde_json::to_value(&req).unwrap(),
                case["output"],
                "{name}"
            );
            assert!(key.verify(&req), "{name}");
            let mut tampered = req.clone();
            tampered.nonce.push('x');
            assert!(!key.verify(&tampered), "{name}");
        }
    }

    /// A second channel's token still covers the first (an Ably token replaces the
    /// connection's capability); another connection's grants stay apart.
    #[tokio::test]
    async fn tokens_cover_every_channel_granted_to_the_connection() {
        use relayport_core::Channel;
        let key = ApiKey::parse("appId.keyId:keySecret").unwrap();
        let auth = AblyAuthorizer::new(key).client_id("u1");
        let req = |socket: &str, channel: Channel| AuthRequest {
            socket_id: socket.into(),
            channel,
            user: None,
        };
        let first = auth
            .token_request(&req("C1", Channel::private("a")))
            .unwrap();
        assert_eq!(
            first.capability.as_deref(),
            Some(r#"{"private:a":["history","publish","subscribe"]}"#)
        );
        let second = auth
            .token_request(&req("C1", Channel::presence("room")))
            .unwrap();
        assert_eq!(
            second.capability.as_deref(),
            Some(
                r#"{"presence:room":["history","presence","publish","subscribe"],"private:a":["history","publish","subscribe"]}"#
            )
        );
        assert_eq!(
            second.client_id.as_deref(),
            Some("u1"),
            "the connection's clientId, every kind"
        );
        assert_eq!(first.client_id.as_deref(), Some("u1"));
        let other = auth
            .token_request(&req("C2", Channel::private("b")))
            .unwrap();
        assert_eq!(
            other.capability.as_deref(),
            Some(r#"{"private:b":["history","publish","subscribe"]}"#)
        );
    }

    #[test]
    fn nonce_shape_matches_ably_js() {
        let v = vectors();
        let example = v["tokenRequestNonceShape"]["example"].as_str().unwrap();
        let ours = random_nonce();
        assert_eq!(ours.len(), example.len());
        assert!(ours.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn bad_capabilities_are_config_errors() {
        use serde_json::json;
        for bad in [
            json!([1]),
            json!({"a": "x"}),
            json!({"a": [1]}),
            json!("{nope"),
        ] {
            assert!(canonical_capability(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auth_responses_are_recognised() {
        use serde_json::json;
        assert!(matches!(
            AuthResponse::from_json(&json!("tok")).unwrap(),
            AuthResponse::Token(_)
        ));
        assert!(matches!(
            AuthResponse::from_json(&json!({"token":"t","expires":1})).unwrap(),
            AuthResponse::Details(_)
        ));
        assert!(matches!(
            AuthResponse::from_json(&json!({"keyName":"a.b","timestamp":1,"nonce":"n","mac":"m"}))
                .unwrap(),
            AuthResponse::Request(_)
        ));
        assert!(AuthResponse::from_json(&json!(42)).is_err());
    }
}

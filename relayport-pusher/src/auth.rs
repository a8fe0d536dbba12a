//! Channel authorization and user authentication: the bodies an application's auth endpoints
//! return, signed with the app secret (protocol notes §3).
//!
//! - private: HMAC over `socket_id:channel` → `{"auth":"key:hex"}`;
//! - presence: HMAC over `socket_id:channel:channel_data`, where `channel_data` is the exact
//!   string returned → `{"auth":…,"channel_data":…}`;
//! - encrypted (`private-encrypted-…`): as private, plus `shared_secret` (base64);
//! - user sign-in: HMAC over `socket_id::user::user_data` → `{"auth":…,"user_data":…}`.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use relayport_core::auth::hmac_sha256_hex;
use relayport_core::{
    AuthRequest, ChannelAuth, ChannelAuthorizer, ChannelKind, RealtimeError, Result,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::encryption::{KEY_LEN, parse_master_key, shared_secret};
use crate::names::{is_encrypted, is_presence, to_wire, validate_channel_name, validate_socket_id};

/// An app's credentials (server side only: the secret never goes to a client).
#[derive(Clone)]
pub struct Credentials {
    /// The app id (HTTP API paths).
    pub app_id: String,
    /// The app key (public).
    pub key: String,
    /// The app secret.
    pub secret: String,
    /// The 32-byte master key for encrypted channels, if the app uses them.
    pub encryption_master_key: Option<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("app_id", &self.app_id)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field(
                "encryption_master_key",
                &self.encryption_master_key.map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// Credentials without an encryption master key.
    pub fn new(
        app_id: impl Into<String>,
        key: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            app_id: app_id.into(),
            key: key.into(),
            secret: secret.into(),
            encryption_master_key: None,
        }
    }

    /// Adds the encryption master key, given in base64 (32 bytes).
    pub fn with_encryption_master_key_base64(mut self, base64: &str) -> Result<Self> {
        self.encryption_master_key = Some(parse_master_key(base64)?);
        Ok(self)
    }

    fn token(&self, string_to_sign: &str) -> String {
        format!(
            "{}:{}",
            self.key,
            hmac_sha256_hex(self.secret.as_bytes(), string_to_sign.as_bytes())
        )
    }
}

/// Signs channel subscriptions and user sign-ins with the app secret.
///
/// ```
/// use relayport_pusher::{Credentials, PusherAuthorizer};
/// let a = PusherAuthorizer::new(Credentials::new("3", "278d425bdf160c739803", "7ad3773142a6692b25b8"));
/// let body = a.authorize_channel("1234.1234", "private-foobar", None::<&()>).unwrap();
/// assert_eq!(body.str_field("auth"), Some("278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"));
/// ```
#[derive(Debug, Clone)]
pub struct PusherAuthorizer {
    credentials: Arc<Credentials>,
}

impl PusherAuthorizer {
    /// An authorizer for these credentials.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials: Arc::new(credentials),
        }
    }

    /// The credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The auth body for a Pusher channel (`private-…`, `private-encrypted-…`, `presence-…`).
    ///
    /// For presence channels `presence_data` is `{"user_id": …, "user_info": …}`; it is
    /// serialized once, in its own field order, and the exact string is both signed and
    /// returned. Encrypted channels get `shared_secret` (needs the master key).
    pub fn authorize_channel<T: Serialize + ?Sized>(
        &self,
        socket_id: &str,
        channel: &str,
        presence_data: Option<&T>,
    ) -> Result<ChannelAuth> {
        validate_socket_id(socket_id)?;
        validate_channel_name(channel)?;
        let mut body = serde_json::Map::new();
        if is_presence(channel) {
            let data = presence_data.ok_or_else(|| {
                RealtimeError::Protocol(format!("presence channel `{channel}` needs user data"))
            })?;
            let channel_data = serde_json::to_string(data)
                .map_err(|e| RealtimeError::Protocol(format!("presence data: {e}")))?;
            let auth = self
                .credentials
                .token(&format!("{socket_id}:{channel}:{channel_data}"));
            body.insert("auth".into(), Value::String(auth));
            body.insert("channel_data".into(), Value::String(channel_data));
        } else {
            let auth = self.credentials.token(&format!("{socket_id}:{channel}"));
            body.insert("auth".into(), Value::String(auth));
            if is_encrypted(channel) {
                let key = self.credentials.encryption_master_key.ok_or_else(|| {
                    RealtimeError::Config(format!(
                        "`{channel}` is encrypted and no encryption master key is configured"
                    ))
                })?;
                body.insert(
                    "shared_secret".into(),
                    Value::String(B64.encode(shared_secret(channel, &key))),
                );
            }
        }
        Ok(ChannelAuth(Value::Object(body)))
    }

    /// The sign-in body for a user: `user_data` must have a non-empty string `id`; it is
    /// serialized once, in its own field order, signed and returned.
    pub fn authenticate_user<T: Serialize + ?Sized>(
        &self,
        socket_id: &str,
        user_data: &T,
    ) -> Result<ChannelAuth> {
        validate_socket_id(socket_id)?;
        let value = serde_json::to_value(user_data)
            .map_err(|e| RealtimeError::Protocol(format!("user data: {e}")))?;
        match value.get("id") {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(other) => {
                let shown = match other {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                return Err(RealtimeError::Protocol(format!(
                    "Invalid user id: '{shown}'"
                )));
            }
            None => {
                return Err(RealtimeError::Protocol(
                    "Invalid user id: 'undefined'".into(),
                ));
            }
        }
        let user_data = serde_json::to_string(user_data)
            .map_err(|e| RealtimeError::Protocol(format!("user data: {e}")))?;
        let auth = self
            .credentials
            .token(&format!("{socket_id}::user::{user_data}"));
        Ok(ChannelAuth(json!({"auth": auth, "user_data": user_data})))
    }

    /// A [`UserAuthenticator`] that signs in as this user on every connection.
    pub fn user_authenticator(&self, user_data: Value) -> Arc<dyn UserAuthenticator> {
        Arc::new(SignedUser {
            authorizer: self.clone(),
            user_data,
        })
    }
}

#[derive(Serialize)]
struct PresenceData<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Value::is_null")]
    user_info: &'a Value,
}

#[async_trait]
impl ChannelAuthorizer for PusherAuthorizer {
    async fn authorize(&self, request: &AuthRequest) -> Result<ChannelAuth> {
        let wire = to_wire(&request.channel)?;
        match request.channel.kind() {
            ChannelKind::Public => Err(RealtimeError::invalid_channel(
                request.channel.to_string(),
                "public channels need no authorization",
            )),
            ChannelKind::Private => self.authorize_channel(&request.socket_id, &wire, None::<&()>),
            ChannelKind::Presence => {
                let user = request.user.as_ref().ok_or_else(|| {
                    RealtimeError::Protocol(format!(
                        "presence channel `{}` needs a user",
                        request.channel
                    ))
                })?;
                let data = PresenceData {
                    user_id: &user.id,
                    user_info: &user.info,
                };
                self.authorize_channel(&request.socket_id, &wire, Some(&data))
            }
        }
    }
}

/// Signs a connection in as a user (`pusher:signin`): called by the client after every
/// connect, since the socket id changes. Returns the body `{"auth":…,"user_data":…}`.
#[async_trait]
pub trait UserAuthenticator: Send + Sync + 'static {
    /// The sign-in body for this socket.
    async fn authenticate(&self, socket_id: &str) -> Result<ChannelAuth>;
}

struct SignedUser {
    authorizer: PusherAuthorizer,
    user_data: Value,
}

#[async_trait]
impl UserAuthenticator for SignedUser {
    async fn authenticate(&self, socket_id: &str) -> Result<ChannelAuth> {
        self.authorizer
            .authenticate_user(socket_id, &self.user_data)
    }
}

/// Signs in through the application's user authentication endpoint, as pusher-js's
/// `userAuthentication` does: `POST {endpoint}` with the form body `socket_id=…`
/// (`application/x-www-form-urlencoded`); the endpoint answers `{"auth":…,"user_data":…}`
/// (what [`PusherAuthorizer::authenticate_user`] returns on the server).
///
/// The endpoint decides who the user is (from its session cookie or the headers given
/// here); the client never holds the secret. A refusal (401/403) is `Unauthorized`, an answer
/// without `auth`/`user_data` a `Protocol` error.
#[derive(Clone)]
pub struct EndpointUserAuthenticator {
    endpoint: String,
    headers: Vec<(String, String)>,
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for EndpointUserAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values may be credentials: only their names are shown.
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("EndpointUserAuthenticator")
            .field(
                "endpoint",
                &relayport_core::transport::redact_url(&self.endpoint),
            )
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

impl EndpointUserAuthenticator {
    /// Signs in through `endpoint` (an `http://` or `https://` URL).
    pub fn new(endpoint: impl Into<String>) -> Result<Self> {
        let endpoint = endpoint.into();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(RealtimeError::Config(format!(
                "the user authentication endpoint must be an http:// or https:// URL (got `{}`)",
                relayport_core::transport::redact_url(&endpoint)
            )));
        }
        Ok(Self {
            endpoint,
            headers: Vec::new(),
            http: None,
        })
    }

    /// Sends this header with every request (a session token, say).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The HTTP client (and TLS trust) to call the endpoint with; default:
    /// [`relayport_core::transport::LinkConfig::shared_default`]'s.
    pub fn with_link_config(mut self, config: &relayport_core::transport::LinkConfig) -> Self {
        self.http = Some(config.http().clone());
        self
    }
}

#[async_trait]
impl UserAuthenticator for EndpointUserAuthenticator {
    async fn authenticate(&self, socket_id: &str) -> Result<ChannelAuth> {
        validate_socket_id(socket_id)?;
        let http = match &self.http {
            Some(http) => http.clone(),
            None => relayport_core::transport::LinkConfig::shared_default()?
                .http()
                .clone(),
        };
        let mut request = http
            .post(&self.endpoint)
            .timeout(crate::rest::REQUEST_TIMEOUT)
            .header("content-type", "application/x-www-form-urlencoded")
            // A socket id is digits and one dot: nothing to escape.
            .body(format!("socket_id={socket_id}"));
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = request.send().await.map_err(|e| {
            RealtimeError::Connection(format!("user authentication endpoint: {}", e.without_url()))
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| {
            RealtimeError::Connection(format!(
                "user authentication endpoint body: {}",
                e.without_url()
            ))
        })?;
        if !(200..300).contains(&status) {
            return Err(match status {
                401 | 403 => RealtimeError::Unauthorized(format!(
                    "the user authentication endpoint refused the sign-in (HTTP {status})"
                )),
                _ => crate::errors::http_error(status, &text),
            });
        }
        let body: Value = serde_json::from_str(&text).map_err(|_| {
            RealtimeError::Protocol("the user authentication endpoint did not answer JSON".into())
        })?;
        let body = ChannelAuth(body);
        if body.str_field("auth").is_none() || body.str_field("user_data").is_none() {
            return Err(RealtimeError::Protocol(
                "the user authentication endpoint's answer lacks `auth` or `user_data`".into(),
            ));
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::{Channel, ErrorKind, PresenceUser};

    fn authorizer() -> PusherAuthorizer {
        PusherAuthorizer::new(Credentials::new("1", "k", "s"))
    }

    #[tokio::test]
    async fn neutral_requests_are_signed_for_the_pusher_name() {
        let a = authorizer();
        let req = AuthRequest {
            socket_id: "1.2".into(),
            channel: Channel::private("room:1"),
            user: None,
        };
        let body = a.authorize(&req).await.unwrap();
        let expected = a
            .authorize_channel("1.2", "private-room-1", None::<&()>)
            .unwrap();
        assert_eq!(body, expected);
        let req = AuthRequest {
            socket_id: "1.2".into(),
            channel: Channel::presence("lobby"),
            user: Some(PresenceUser {
                id: "u1".into(),
                info: json!({"name": "A"}),
            }),
        };
        let body = a.authorize(&req).await.unwrap();
        assert_eq!(
            body.str_field("channel_data"),
            Some(r#"{"user_id":"u1","user_info":{"name":"A"}}"#)
        );
        let public = AuthRequest {
            socket_id: "1.2".into(),
            channel: Channel::public("x"),
            user: None,
        };
        assert_eq!(
            a.authorize(&public).await.unwrap_err().kind(),
            ErrorKind::InvalidChannel
        );
        let no_user = AuthRequest {
            socket_id: "1.2".into(),
            channel: Channel::presence("lobby"),
            user: None,
        };
        assert!(a.authorize(&no_user).await.is_err());
    }

    #[test]
    fn encrypted_without_master_key_is_a_config_error() {
        let err = authorizer()
            .authorize_channel("1.2", "private-encrypted-x", None::<&()>)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = Credentials::new("1", "k", "super-secret");
        assert!(!format!("{c:?}").contains("super-secret"));
    }
}

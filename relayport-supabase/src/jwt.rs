//! Server-side channel authorization: short-lived HS256 JWTs signed with the project's JWT
//! secret, for private channels guarded by RLS policies on `realtime.messages`.
//!
//! The secret stays on the backend; what leaves it is the [`ChannelAuth`] body
//! `{"access_token": "<jwt>", "presence_key": "<user id>"}` (the key only for presence
//! channels), which the client provider puts into the channel's `phx_join`. Realtime requires
//! the `role` and `exp` claims; `sub` is what policies usually check with `auth.uid()`.
//!
//! Every token is **scoped to its channel**: the [`TOPIC_CLAIM`] claim (`"topic"`) holds the
//! channel's Realtime topic name (what `realtime.topic()` returns in a policy, e.g. `room1` for
//! `private:room1`), and `sub` the user (the configured subject, else the presence user). An
//! RLS policy that compares the two makes one channel's token useless on every other channel:
//!
//! ```sql
//! create policy "channel-scoped tokens read" on realtime.messages
//!   for select to authenticated
//!   using ( realtime.topic() = (auth.jwt() ->> 'topic') );
//! create policy "channel-scoped tokens write" on realtime.messages
//!   for insert to authenticated
//!   with check ( realtime.topic() = (auth.jwt() ->> 'topic') );
//! ```
//!
//! Tokens are signed by [`hs256`], a small HS256-only codec on HMAC-SHA256 (no general JWT
//! crate, so no RSA code in the dependency tree); [`hs256::verify`] checks one on a backend.

pub mod hs256;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use relayport_core::{AuthRequest, ChannelAuth, ChannelAuthorizer, RealtimeError, Result};

/// The default token lifetime: 10 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// The claim naming the channel a token is for: its Realtime topic name (`realtime.topic()`).
pub const TOPIC_CLAIM: &str = "topic";

/// Claims the authorizer sets itself; [`SupabaseAuthorizer::claim`] cannot override them.
pub const RESERVED_CLAIMS: [&str; 5] = ["role", "iat", "exp", "sub", TOPIC_CLAIM];

/// Mints channel tokens with the project's JWT secret.
#[derive(Clone)]
pub struct SupabaseAuthorizer {
    key: Arc<[u8]>,
    ttl: Duration,
    role: String,
    subject: Option<String>,
    claims: Map<String, Value>,
}

impl std::fmt::Debug for SupabaseAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseAuthorizer")
            .field("key", &"<redacted>")
            .field("ttl", &self.ttl)
            .field("role", &self.role)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl SupabaseAuthorizer {
    /// An authorizer signing with the project's JWT secret, role `authenticated`, 10-minute
    /// tokens.
    pub fn new(jwt_secret: impl AsRef<[u8]>) -> Self {
        Self {
            key: Arc::from(jwt_secret.as_ref()),
            ttl: DEFAULT_TTL,
            role: "authenticated".into(),
            subject: None,
            claims: Map::new(),
        }
    }

    /// Changes the token lifetime.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Changes the `role` claim (the Postgres role RLS runs as).
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = role.into();
        self
    }

    /// Sets the `sub` claim: the user the backend authenticated (`auth.uid()` in policies).
    /// Without it, a presence request's user id is used; a private-channel request has none.
    pub fn subject(mut self, sub: impl Into<String>) -> Self {
        self.subject = Some(sub.into());
        self
    }

    /// Adds an application claim (the [`RESERVED_CLAIMS`] `role`, `exp`, `iat`, `sub` and
    /// `topic` cannot be overridden).
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    /// Adds every claim of `claims` (see [`SupabaseAuthorizer::claim`]).
    pub fn claims(mut self, claims: Map<String, Value>) -> Self {
        self.claims.extend(claims);
        self
    }

    /// Mints a token for `sub` as of `now` (seconds since the Unix epoch), not scoped to a
    /// channel (see [`SupabaseAuthorizer::mint_for_at`]).
    pub fn mint_at(&self, sub: Option<&str>, now: u64) -> Result<String> {
        self.mint_for_at(None, sub, now)
    }

    /// Mints a token for `sub` as of `now`, scoped to the Realtime topic name `topic` (the
    /// [`TOPIC_CLAIM`] claim) when given.
    pub fn mint_for_at(&self, topic: Option<&str>, sub: Option<&str>, now: u64) -> Result<String> {
        let mut claims = self.claims.clone();
        claims.insert("role".into(), json!(self.role));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + self.ttl.as_secs()));
        match sub {
            Some(sub) => claims.insert("sub".into(), json!(sub)),
            None => claims.remove("sub"),
        };
        match topic {
            Some(topic) => claims.insert(TOPIC_CLAIM.into(), json!(topic)),
            None => claims.remove(TOPIC_CLAIM),
        };
        Ok(hs256::sign(&claims, &self.key))
    }

    /// The auth body for a request, as of `now`: a token scoped to the request's channel
    /// ([`TOPIC_CLAIM`]) and user (`sub`).
    pub fn authorize_at(&self, request: &AuthRequest, now: u64) -> Result<ChannelAuth> {
        let user = request.user.as_ref().map(|u| u.id.as_str());
        let sub = self.subject.as_deref().or(user);
        let topic = crate::topic::rest_topic(&request.channel);
        let token = self.mint_for_at(Some(topic), sub, now)?;
        let mut body = json!({ "access_token": token });
        if let Some(user) = user {
            body["presence_key"] = json!(user);
        }
        Ok(ChannelAuth(body))
    }
}

#[async_trait]
impl ChannelAuthorizer for SupabaseAuthorizer {
    async fn authorize(&self, request: &AuthRequest) -> Result<ChannelAuth> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| RealtimeError::Config(format!("system clock before 1970: {e}")))?
            .as_secs();
        self.authorize_at(request, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use relayport_core::{Channel, PresenceUser};

    const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";

    /// The verified claims of `token`, checked as of its own `iat` (expiry is tested in
    /// `hs256`).
    fn claims(token: &str, secret: &str) -> std::result::Result<Value, hs256::JwtError> {
        let iat = |t: &str| -> Option<u64> {
            let body = t.split('.').nth(1)?;
            let bytes = base64::Engine::decode(&URL_SAFE_NO_PAD, body).ok()?;
            serde_json::from_slice::<Value>(&bytes).ok()?["iat"].as_u64()
        };
        let now = iat(token).expect("an iat claim");
        hs256::verify(token, secret.as_bytes(), now).map(Value::Object)
    }

    #[test]
    fn presence_token_carries_role_exp_sub_and_app_claims() {
        let auth = SupabaseAuthorizer::new(SECRET)
            .ttl(Duration::from_secs(60))
            .claim("app", json!("chat"))
            .claim("role", json!("ignored"));
        let req = AuthRequest {
            socket_id: "s".into(),
            channel: Channel::presence("room"),
            user: Some(PresenceUser {
                id: "user-1".into(),
                info: Value::Null,
            }),
        };
        let body = auth.authorize_at(&req, 1_700_000_000).unwrap();
        assert_eq!(body.str_field("presence_key"), Some("user-1"));
        let token = body.str_field("access_token").unwrap();
        // Byte for byte what jsonwebtoken minted (computed independently with Python's hmac):
        // its header, sorted compact claims, unpadded base64url.
        assert_eq!(
            token,
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.\
             eyJhcHAiOiJjaGF0IiwiZXhwIjoxNzAwMDAwMDYwLCJpYXQiOjE3MDAwMDAwMDAsInJvbGUiOiJhdXRoZW50aWNhdGVkIiwic3ViIjoidXNlci0xIiwidG9waWMiOiJyb29tIn0.\
             4EAWCYpA25AAcnlOtI2I_jgvmklohJHiD74jyF2Zt7E"
        );
        let c = claims(token, SECRET).unwrap();
        assert_eq!(c["role"], "authenticated");
        assert_eq!(c["sub"], "user-1");
        assert_eq!(
            c[TOPIC_CLAIM], "room",
            "scoped to its channel (issue 15 item 2)"
        );
        assert_eq!(c["iat"], 1_700_000_000u64);
        assert_eq!(c["exp"], 1_700_000_060u64);
        assert_eq!(c["app"], "chat");
        assert!(claims(token, "another-secret-another-secret-another").is_err());
        assert!(!body.0.to_string().contains(SECRET));
        assert!(!format!("{auth:?}").contains(SECRET));
    }

    #[tokio::test]
    async fn private_token_uses_the_configured_subject() {
        let auth = SupabaseAuthorizer::new(SECRET)
            .subject("uid-9")
            .role("service_role");
        let req = AuthRequest {
            socket_id: "s".into(),
            channel: Channel::private("room"),
            user: None,
        };
        let body = auth.authorize(&req).await.unwrap();
        assert_eq!(body.str_field("presence_key"), None);
        let c = claims(body.str_field("access_token").unwrap(), SECRET).unwrap();
        assert_eq!(c["sub"], "uid-9");
        assert_eq!(c[TOPIC_CLAIM], "room");
        assert_eq!(c["role"], "service_role");
        let exp = c["exp"].as_u64().unwrap();
        let iat = c["iat"].as_u64().unwrap();
        assert_eq!(exp - iat, DEFAULT_TTL.as_secs());
    }

    /// Issue 15 item 2: one channel's token names that channel only, the application cannot
    /// override the scope, and extra claims and the role are configurable.
    #[test]
    fn tokens_are_scoped_to_their_channel() {
        let auth = SupabaseAuthorizer::new(SECRET)
            .role("member")
            .claims(Map::from_iter([
                ("org".to_owned(), json!("acme")),
                (TOPIC_CLAIM.to_owned(), json!("everything")),
            ]));
        let mint = |ch: Channel| {
            let req = AuthRequest {
                socket_id: "s".into(),
                channel: ch,
                user: None,
            };
            let body = auth.authorize_at(&req, 1_700_000_000).unwrap();
            claims(body.str_field("access_token").unwrap(), SECRET).unwrap()
        };
        let a = mint(Channel::private("room-a"));
        let b = mint(Channel::private("room-b"));
        assert_eq!(
            (&a[TOPIC_CLAIM], &b[TOPIC_CLAIM]),
            (&json!("room-a"), &json!("room-b"))
        );
        assert_eq!(a["role"], "member");
        assert_eq!(a["org"], "acme");
        assert!(a.get("sub").is_none());
    }
}

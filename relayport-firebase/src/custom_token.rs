//! Firebase custom tokens, minted on a backend with a service account's RSA key (RS256), and
//! [`CustomTokenAuthorizer`], the [`ChannelAuthorizer`] that hands them out.
//!
//! A custom token is not a database credential: the client exchanges it with Firebase Auth
//! (`signInWithCustomToken`) for an ID token, which it then gives the provider through a
//! [`crate::TokenSource`]. That exchange is Firebase Auth's API, not this crate's.
//!
//! Signing is `ring`'s RSASSA-PKCS1-v1_5 with SHA-256 (already in the dependency tree through
//! rustls); the claims follow Firebase's documented format: `iss` and `sub` the service
//! account's email, `aud` the Identity Toolkit audience, `iat`/`exp` at most an hour apart,
//! `uid`, and optional developer `claims`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use relayport_core::{AuthRequest, ChannelAuth, ChannelAuthorizer, RealtimeError, Result};
use ring::rand::SystemRandom;
use ring::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

/// The audience of every Firebase custom token.
pub const CUSTOM_TOKEN_AUDIENCE: &str =
    "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit";

/// The longest a custom token may live.
pub const MAX_CUSTOM_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// A service account's email and RSA private key (never printed: `Debug` shows the email).
pub struct ServiceAccount {
    client_email: String,
    key: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

fn config(what: impl Into<String>) -> RealtimeError {
    RealtimeError::Config(what.into())
}

impl ServiceAccount {
    /// From a service account key file's JSON (`client_email`, `private_key`).
    pub fn from_json(text: &str) -> Result<Self> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| config(format!("service account JSON: {e}")))?;
        let field = |name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| config(format!("service account JSON has no `{name}`")))
        };
        Self::from_pem(field("client_email")?, field("private_key")?)
    }

    /// From the account's email and its PKCS#8 private key in PEM (`BEGIN PRIVATE KEY`).
    pub fn from_pem(client_email: &str, pem: &str) -> Result<Self> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PRIVATE KEY-----")
            .collect();
        if body.is_empty() {
            return Err(config(
                "the private key is not a PKCS#8 PEM (BEGIN PRIVATE KEY)",
            ));
        }
        let der = STANDARD
            .decode(body)
            .map_err(|_| config("the private key's PEM is not base64"))?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| config(format!("the private key is not a usable RSA key: {e}")))?;
        if client_email.is_empty() {
            return Err(config("the service account email is empty"));
        }
        Ok(Self {
            client_email: client_email.to_owned(),
            key,
        })
    }

    /// The account's email.
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// The public key (DER `RSAPublicKey`), to verify what this account signed.
    pub fn public_key_der(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// A custom token for `uid` (1 to 128 bytes) issued at `issued_at` (seconds since the
    /// Unix epoch), valid for `ttl` (at most [`MAX_CUSTOM_TOKEN_TTL`]), with developer
    /// `claims` (an object) if any.
    pub fn mint(
        &self,
        uid: &str,
        claims: Option<&Value>,
        issued_at: u64,
        ttl: Duration,
    ) -> Result<String> {
        if uid.is_empty() || uid.len() > 128 {
            return Err(config("a custom token's uid must be 1 to 128 bytes"));
        }
        if ttl > MAX_CUSTOM_TOKEN_TTL || ttl.is_zero() {
            return Err(config(
                "a custom token lives more than 0 s and at most 3600 s",
            ));
        }
        let mut payload = json!({
            "iss": self.client_email,
            "sub": self.client_email,
            "aud": CUSTOM_TOKEN_AUDIENCE,
            "iat": issued_at,
            "exp": issued_at + ttl.as_secs(),
            "uid": uid,
        });
        if let Some(claims) = claims {
            if !claims.is_object() {
                return Err(config("custom token claims must be a JSON object"));
            }
            payload["claims"] = claims.clone();
        }
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(payload.to_string());
        let signing_input = format!("{header}.{body}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| RealtimeError::Config("RS256 signing failed".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// Hands out a custom token per authorized subscription: `uid` is the presence user's id, or
/// else the connection id; the claims carry the channel (`{"channel": "…"}`), for the
/// database's rules to check as `auth.token.channel`. The answer is
/// `{"custom_token": "…", "uid": "…", "expires_in": seconds}`.
#[derive(Debug)]
pub struct CustomTokenAuthorizer {
    account: ServiceAccount,
    ttl: Duration,
}

impl CustomTokenAuthorizer {
    /// Tokens from `account`, valid for an hour.
    pub fn new(account: ServiceAccount) -> Self {
        Self {
            account,
            ttl: MAX_CUSTOM_TOKEN_TTL,
        }
    }

    /// Tokens valid for `ttl` (capped at [`MAX_CUSTOM_TOKEN_TTL`]).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.min(MAX_CUSTOM_TOKEN_TTL);
        self
    }
}

#[async_trait]
impl ChannelAuthorizer for CustomTokenAuthorizer {
    async fn authorize(&self, request: &AuthRequest) -> Result<ChannelAuth> {
        let uid = request
            .user
            .as_ref()
            .map_or(request.socket_id.as_str(), |u| u.id.as_str());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| config("the system clock is before 1970"))?
            .as_secs();
        let claims = json!({"channel": request.channel.to_string()});
        let token = self.account.mint(uid, Some(&claims), now, self.ttl)?;
        Ok(ChannelAuth(json!({
            "custom_token": token,
            "uid": uid,
            "expires_in": self.ttl.as_secs(),
        })))
    }
}

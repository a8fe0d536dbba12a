//! Tokens: issuing from signed TokenRequests (`POST /keys/{keyName}/requestToken`), looking
//! them up, expiring them.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::capability::Capability;
use crate::config::{KeyConfig, PeerConfig};
use crate::error::AblyError;

/// An issued token.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token string.
    pub token: String,
    /// The key it was issued from.
    pub key_name: String,
    /// Issue time, ms since the epoch (peer clock).
    pub issued: i64,
    /// Expiry, ms since the epoch (peer clock).
    pub expires: i64,
    /// What it allows.
    pub capability: Capability,
    /// Its client id (`*` = any), if any.
    pub client_id: Option<String>,
}

impl Token {
    /// The TokenDetails JSON.
    pub fn details(&self) -> Value {
        let mut v = json!({
            "token": self.token,
            "keyName": self.key_name,
            "issued": self.issued,
            "expires": self.expires,
            "capability": self.capability.to_json_string(),
        });
        if let Some(c) = &self.client_id {
            v["clientId"] = json!(c);
        }
        v
    }
}

/// What a token is requested with (the peer's own API, without signing).
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    /// Requested capability (default: the key's).
    pub capability: Option<Capability>,
    /// Client id (`*` = any).
    pub client_id: Option<String>,
    /// Lifetime in ms (default: the peer's).
    pub ttl_ms: Option<i64>,
}

/// Every token issued, and the nonces seen.
#[derive(Debug, Default)]
pub struct Tokens {
    by_token: HashMap<String, Token>,
    nonces: HashSet<(String, String)>,
}

impl Tokens {
    /// Looks a token up.
    pub fn get(&self, token: &str) -> Option<&Token> {
        self.by_token.get(token)
    }

    /// Sets every token's expiry to `now` at the latest.
    pub fn expire_all(&mut self, now: i64) {
        for t in self.by_token.values_mut() {
            t.expires = t.expires.min(now);
        }
    }

    /// Issues a token for `key` (capability intersected with the key's).
    pub fn issue(
        &mut self,
        cfg: &PeerConfig,
        key: &KeyConfig,
        spec: TokenSpec,
        now: i64,
    ) -> Result<Token, AblyError> {
        let capability = match spec.capability {
            Some(c) => c.intersect(&key.capability).ok_or_else(|| {
                AblyError::not_permitted("requested capability is not a subset of the key's")
            })?,
            None => key.capability.clone(),
        };
        let ttl = spec
            .ttl_ms
            .unwrap_or(cfg.default_token_ttl.as_millis() as i64);
        if ttl <= 0 || ttl > 24 * 3600 * 1000 {
            return Err(AblyError::bad_request(format!("invalid ttl {ttl}")));
        }
        if spec.client_id.as_deref() == Some("") {
            return Err(AblyError::new(40012, 400, "clientId must not be empty"));
        }
        let token = Token {
            token: format!(
                "{}.peer-{:016x}",
                key.name.split('.').next().unwrap_or("app"),
                fastrand::u64(..)
            ),
            key_name: key.name.clone(),
            issued: now,
            expires: now + ttl,
            capability,
            client_id: spec.client_id,
        };
        self.by_token.insert(token.token.clone(), token.clone());
        Ok(token)
    }

    /// Checks and exchanges a TokenRequest body for `key` (`key_name` from the path).
    /// `basic_ok`: the request carried the key's basic auth (then it need not be signed).
    pub fn exchange(
        &mut self,
        cfg: &PeerConfig,
        key: &KeyConfig,
        body: &Value,
        basic_ok: bool,
        now: i64,
    ) -> Result<Token, AblyError> {
        let obj = body
            .as_object()
            .ok_or_else(|| AblyError::bad_request("a TokenRequest is a JSON object"))?;
        let field = |name: &str| -> Result<Option<String>, AblyError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(AblyError::bad_request(format!("`{name}` has a wrong type"))),
            }
        };
        let key_name = field("keyName")?.unwrap_or_default();
        if key_name != key.name {
            return Err(AblyError::new(40101, 401, "keyName does not match the key"));
        }
        let ttl = field("ttl")?;
        let capability = field("capability")?;
        let client_id = field("clientId")?;
        let timestamp = field("timestamp")?;
        let nonce = field("nonce")?;
        let mac = field("mac")?;
        match &mac {
            Some(mac) => {
                let nonce = nonce
                    .as_deref()
                    .ok_or_else(|| AblyError::bad_request("a signed TokenRequest needs a nonce"))?;
                if nonce.len() < 16 {
                    return Err(AblyError::bad_request("nonce shorter than 16 characters"));
                }
                let ts: i64 = timestamp
                    .as_deref()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| AblyError::bad_request("timestamp missing or not a number"))?;
                let text = format!(
                    "{key_name}\n{}\n{}\n{}\n{ts}\n{nonce}\n",
                    ttl.as_deref().unwrap_or(""),
                    capability.as_deref().unwrap_or(""),
                    client_id.as_deref().unwrap_or("")
                );
                let expected = sign(&key.secret, &text);
                if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
                    return Err(AblyError::new(40101, 401, "invalid mac"));
                }
                let window = cfg.token_request_window.as_millis() as i64;
                if (ts - now).abs() > window {
                    return Err(AblyError::new(40104, 401, "timestamp not current"));
                }
                if !self.nonces.insert((key_name.clone(), nonce.to_owned())) {
                    return Err(AblyError::new(40105, 401, "nonce value replayed"));
                }
            }
            None if basic_ok => {}
            None => {
                return Err(AblyError::new(
                    40101,
                    401,
                    "an unsigned TokenRequest needs the key's basic auth",
                ));
            }
        }
        let ttl_ms = match ttl {
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| AblyError::bad_request("ttl is not a number"))?,
            ),
            None => None,
        };
        let capability = match capability {
            Some(c) => Some(Capability::parse(&Value::String(c)).map_err(AblyError::bad_request)?),
            None => None,
        };
        self.issue(
            cfg,
            key,
            TokenSpec {
                capability,
                client_id,
                ttl_ms,
            },
            now,
        )
    }
}

/// base64(HMAC-SHA256(secret, text)).
pub fn sign(secret: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(text.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_matches_the_recorded_vector() {
        // ably.md §4.3, "minimal" case (secret `keySecret`).
        let text = "appId.keyId\n\n\n\n1700000000000\n0000000000000001\n";
        assert_eq!(
            sign("keySecret", text),
            "wshZ+6BDHseHyn3MmiNiqbsl7lEP71C5cAIcz+VuUUI="
        );
    }
}

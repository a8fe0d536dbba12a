//! HS256 JWTs as the Realtime server checks them (`jwt_verification.ex`): `alg` must be
//! HS256, the signature must verify against the configured secret, `role` and `exp` are
//! required, and `exp` must be in the future (no leeway). The peer's own code, independent of
//! the provider's, so a provider bug cannot make both sides agree.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a token was refused; [`JwtError::reason`] is the server's join-error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    Malformed,
    /// A header algorithm other than HS256.
    Algorithm(String),
    /// The signature does not verify with the secret.
    Signature,
    /// `role` or `exp` is missing (or `exp` is not a number).
    MissingClaims,
    /// `exp` has passed, `.0` seconds ago.
    Expired(u64),
}

impl JwtError {
    /// The `reason` the server puts into a join error (`<Code>: <message>`).
    pub fn reason(&self) -> String {
        match self {
            JwtError::Malformed => "MalformedJWT: The token provided is not a valid JWT".into(),
            JwtError::Algorithm(alg) => {
                format!("JwtSignatureError: Unsupported algorithm {alg}")
            }
            JwtError::Signature => "JwtSignatureError: Failed to validate JWT signature".into(),
            JwtError::MissingClaims => {
                "InvalidJWTToken: Fields `role` and `exp` are required in JWT".into()
            }
            JwtError::Expired(ago) => format!("InvalidJWTToken: {}", expired_message(*ago)),
        }
    }

    /// The bare message (what a `system` message carries when a channel is shut down).
    pub fn message(&self) -> String {
        match self {
            JwtError::Expired(ago) => expired_message(*ago),
            other => {
                let r = other.reason();
                r.split_once(": ").map_or(r.clone(), |(_, m)| m.to_owned())
            }
        }
    }
}

/// The server's expiry text.
pub fn expired_message(ago: u64) -> String {
    format!("Token has expired {ago} seconds ago")
}

fn mac(secret: &[u8], signing_input: &str) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut m = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(signing_input.as_bytes());
    m.finalize().into_bytes().into()
}

/// Signs `claims` with HS256.
pub fn sign(claims: &Map<String, Value>, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let body = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
    let input = format!("{header}.{body}");
    let sig = URL_SAFE_NO_PAD.encode(mac(secret, &input));
    format!("{input}.{sig}")
}

fn part(b64: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwtError::Malformed),
    }
}

/// The claims of `token`, if it verifies with `secret` and has not expired as of `now` (Unix
/// seconds).
pub fn verify(token: &str, secret: &[u8], now: u64) -> Result<Map<String, Value>, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(b), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header = part(h)?;
    let claims = part(b)?;
    match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => {}
        other => return Err(JwtError::Algorithm(other.unwrap_or("none").to_owned())),
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed)?;
    let expected = mac(secret, &format!("{h}.{b}"));
    if sig.len() != expected.len() || !bool::from(sig.ct_eq(&expected)) {
        return Err(JwtError::Signature);
    }
    let exp = claims.get("exp").and_then(Value::as_f64);
    let (Some(exp), true) = (exp, claims.get("role").is_some_and(Value::is_string)) else {
        return Err(JwtError::MissingClaims);
    };
    let exp = exp as u64;
    if exp <= now {
        return Err(JwtError::Expired(now - exp));
    }
    Ok(claims)
}

/// The `exp` claim of a verified claim set.
pub fn exp(claims: &Map<String, Value>) -> Option<u64> {
    claims.get("exp").and_then(Value::as_f64).map(|e| e as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"peer-secret-peer-secret-peer-secret!";

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn round_trip_and_every_refusal() {
        let t = sign(&claims(json!({"role": "anon", "exp": 100})), SECRET);
        assert_eq!(verify(&t, SECRET, 99).unwrap()["role"], "anon");
        assert_eq!(verify(&t, SECRET, 130), Err(JwtError::Expired(30)));
        assert_eq!(verify(&t, b"other", 99), Err(JwtError::Signature));
        assert_eq!(verify("a.b", SECRET, 0), Err(JwtError::Malformed));
        assert_eq!(
            verify("not a jwt at all", SECRET, 0),
            Err(JwtError::Malformed)
        );
        let no_role = sign(&claims(json!({"exp": 100})), SECRET);
        assert_eq!(verify(&no_role, SECRET, 0), Err(JwtError::MissingClaims));
        // alg none with an empty signature is refused before the signature is looked at.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"role":"anon","exp":100}"#)
        );
        assert_eq!(
            verify(&none, SECRET, 0),
            Err(JwtError::Algorithm("none".into()))
        );
        assert_eq!(
            JwtError::Expired(3).reason(),
            "InvalidJWTToken: Token has expired 3 seconds ago"
        );
    }
}

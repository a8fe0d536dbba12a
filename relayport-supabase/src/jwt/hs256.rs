//! Compact HS256 JSON Web Tokens (RFC 7519 over RFC 7515), minted and verified on the HMAC-SHA256
//! the workspace already uses, without a general-purpose JWT crate.
//!
//! [`sign`] writes the header `{"typ":"JWT","alg":"HS256"}` (the bytes `jsonwebtoken` wrote),
//! the claims as compact JSON, and the base64url (unpadded) HMAC-SHA256 of
//! `header.claims`. [`verify`] accepts only that algorithm: the header must say
//! `"alg": "HS256"` (`none`, `HS512`, `RS256`, … are refused before any signature work), the
//! signature is compared in constant time, and the claims must hold a numeric `exp` not in the
//! past and, when present, an `nbf` not in the future, each with [`LEEWAY`] seconds of slack
//! (jsonwebtoken's default).
//!
//! ```
//! use relayport_supabase::jwt::hs256;
//! use serde_json::json;
//!
//! let claims = json!({"sub": "user-1", "role": "authenticated", "exp": 1_700_000_600u64});
//! let token = hs256::sign(claims.as_object().unwrap(), b"the-project-jwt-secret");
//! let verified = hs256::verify(&token, b"the-project-jwt-secret", 1_700_000_000)?;
//! assert_eq!(verified["sub"], "user-1");
//! assert!(hs256::verify(&token, b"another-secret", 1_700_000_000).is_err());
//! # Ok::<(), hs256::JwtError>(())
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use relayport_core::auth::hmac_sha256;

/// The header every minted token carries, as `jsonwebtoken` serialized it.
const HEADER: &str = r#"{"typ":"JWT","alg":"HS256"}"#;

/// The only algorithm accepted.
pub const ALGORITHM: &str = "HS256";

/// Seconds of clock skew tolerated on `exp` and `nbf` (60, as `jsonwebtoken` did).
pub const LEEWAY: u64 = 60;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three base64url segments of a JSON header and a JSON object of claims.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names another algorithm than HS256 (or none at all).
    #[error("unsupported token algorithm `{0}` (only HS256 is accepted)")]
    UnsupportedAlgorithm(String),
    /// The header lists critical extensions this verifier does not implement.
    #[error("the token has critical header extensions (`crit`), which are not supported")]
    CriticalHeader,
    /// The signature does not match the secret.
    #[error("invalid token signature")]
    BadSignature,
    /// A required claim is missing, or a time claim is not a number.
    #[error("token claim `{0}` is missing or not a number")]
    BadClaim(&'static str),
    /// `exp` is in the past (beyond the leeway).
    #[error("the token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`, seconds since the Unix epoch.
        exp: u64,
        /// The verification time.
        now: u64,
    },
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The token's `nbf`, seconds since the Unix epoch.
        nbf: u64,
        /// The verification time.
        now: u64,
    },
}

/// Signs `claims` as a compact HS256 JWT with `secret`.
pub fn sign(claims: &Map<String, Value>, secret: &[u8]) -> String {
    // A map of JSON values always serializes.
    let payload = Value::Object(claims.clone()).to_string();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mac = hmac_sha256(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// Verifies `token` against `secret` as of `now` (seconds since the Unix epoch) and returns its
/// claims. See the [module documentation](self) for what is checked.
pub fn verify(token: &str, secret: &[u8], now: u64) -> Result<Map<String, Value>, JwtError> {
    let mut segments = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwtError::Malformed(
            "a JWT has exactly three `.`-separated segments",
        ));
    };

    let header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwtError::Malformed("the header is not base64url"))?;
    let header =
        json_object(&header).ok_or(JwtError::Malformed("the header is not a JSON object"))?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == ALGORITHM => {}
        Some(Value::String(alg)) => return Err(JwtError::UnsupportedAlgorithm(alg.clone())),
        Some(_) => return Err(JwtError::Malformed("the header's `alg` is not a string")),
        None => return Err(JwtError::UnsupportedAlgorithm(String::new())),
    }
    if header.contains_key("crit") {
        return Err(JwtError::CriticalHeader);
    }
    let claims = URL_SAFE_NO_PAD
        .decode(claims_b64)
        .map_err(|_| JwtError::Malformed("the claims are not base64url"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| JwtError::Malformed("the signature is not base64url"))?;

    let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
    let expected = hmac_sha256(secret, signing_input.as_bytes());
    // `ct_eq` on slices of different lengths is false without comparing contents.
    if !bool::from(expected.as_slice().ct_eq(&signature)) {
        return Err(JwtError::BadSignature);
    }

    // Only authenticated claims are interpreted.
    let claims =
        json_object(&claims).ok_or(JwtError::Malformed("the claims are not a JSON object"))?;
    let exp = time_claim(&claims, "exp")?.ok_or(JwtError::BadClaim("exp"))?;
    if exp.saturating_add(LEEWAY) < now {
        return Err(JwtError::Expired { exp, now });
    }
    if let Some(nbf) = time_claim(&claims, "nbf")?
        && nbf > now.saturating_add(LEEWAY)
    {
        return Err(JwtError::NotYetValid { nbf, now });
    }
    Ok(claims)
}

/// `bytes` as a JSON object, if they are one.
fn json_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// A NumericDate claim in whole seconds: absent is `None`; present but not a non-negative
/// number is an error.
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
            _ => Err(JwtError::BadClaim(name)),
        },
        Some(_) => Err(JwtError::BadClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"super-secret-jwt-token-with-at-least-32-characters";
    const NOW: u64 = 1_700_000_000;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().expect("an object").clone()
    }

    /// A token with any header and claims, signed with `SECRET` (for forged headers).
    fn forge(header: &str, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mac = hmac_sha256(SECRET, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// RFC 7515 appendix A.1: the HS256 example, with its JWK `k` as the key.
    #[test]
    fn the_rfc_7515_example_verifies_until_it_expires() {
        let key = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                     eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
                     dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = verify(token, &key, 1_300_819_000).expect("verifies");
        assert_eq!(c["iss"], "joe");
        assert_eq!(c["http://example.com/is_root"], true);
        assert_eq!(
            verify(token, &key, 1_300_819_380 + LEEWAY + 1),
            Err(JwtError::Expired {
                exp: 1_300_819_380,
                now: 1_300_819_441
            })
        );
        assert_eq!(
            verify(token, b"not-the-key", 1_300_819_000),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn a_minted_token_has_jsonwebtokens_header_and_round_trips() {
        let c = claims(json!({"sub": "u", "role": "authenticated", "exp": NOW + 600}));
        let token = sign(&c, SECRET);
        assert!(
            token.starts_with("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9."),
            "{token}"
        );
        assert_eq!(verify(&token, SECRET, NOW), Ok(c));
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let token = sign(&claims(json!({"sub": "u", "exp": NOW + 600})), SECRET);
        let (input, sig) = token.rsplit_once('.').unwrap();
        // Another payload under the original signature.
        let (header, _) = input.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(r#"{"sub":"admin","exp":1700000600}"#);
        let swapped = format!("{header}.{other}.{sig}");
        assert_eq!(verify(&swapped, SECRET, NOW), Err(JwtError::BadSignature));
        // One signature character changed; a truncated and an empty signature.
        let mut flipped = sig.to_owned().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{input}.{}", String::from_utf8(flipped).unwrap());
        assert_eq!(verify(&flipped, SECRET, NOW), Err(JwtError::BadSignature));
        let short = format!("{input}.{}", &sig[..12]);
        assert_eq!(verify(&short, SECRET, NOW), Err(JwtError::BadSignature));
        assert_eq!(
            verify(&format!("{input}."), SECRET, NOW),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn only_hs256_is_accepted() {
        let body = r#"{"sub":"u","exp":1700000600}"#;
        // alg=none with an empty signature, as the classic attack sends it.
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(body)
        );
        assert_eq!(
            verify(&format!("{input}."), SECRET, NOW),
            Err(JwtError::UnsupportedAlgorithm("none".into()))
        );
        for alg in ["none", "None", "HS512", "RS256", "hs256"] {
            let token = forge(&format!(r#"{{"alg":"{alg}"}}"#), body);
            assert_eq!(
                verify(&token, SECRET, NOW),
                Err(JwtError::UnsupportedAlgorithm(alg.into())),
                "{alg}"
            );
        }
        let token = forge(r#"{"typ":"JWT"}"#, body);
        assert_eq!(
            verify(&token, SECRET, NOW),
            Err(JwtError::UnsupportedAlgorithm(String::new()))
        );
        let token = forge(r#"{"alg":"HS256","crit":["exp"]}"#, body);
        assert_eq!(verify(&token, SECRET, NOW), Err(JwtError::CriticalHeader));
        // The same claims under the right header pass: the refusals above are the header's.
        assert!(verify(&forge(r#"{"alg":"HS256"}"#, body), SECRET, NOW).is_ok());
    }

    #[test]
    fn exp_and_nbf_are_checked_with_the_leeway() {
        let exp = |exp: u64| sign(&claims(json!({"exp": exp})), SECRET);
        assert!(verify(&exp(NOW), SECRET, NOW + LEEWAY).is_ok());
        assert_eq!(
            verify(&exp(NOW), SECRET, NOW + LEEWAY + 1),
            Err(JwtError::Expired {
                exp: NOW,
                now: NOW + LEEWAY + 1
            })
        );
        let nbf = sign(&claims(json!({"exp": NOW + 600, "nbf": NOW + 100})), SECRET);
        assert!(verify(&nbf, SECRET, NOW + 40).is_ok());
        assert_eq!(
            verify(&nbf, SECRET, NOW + 39),
            Err(JwtError::NotYetValid {
                nbf: NOW + 100,
                now: NOW + 39
            })
        );
        // `exp` is required and numeric; a fractional NumericDate counts in whole seconds.
        let none = sign(&claims(json!({"sub": "u"})), SECRET);
        assert_eq!(verify(&none, SECRET, NOW), Err(JwtError::BadClaim("exp")));
        let text = sign(&claims(json!({"exp": "tomorrow"})), SECRET);
        assert_eq!(verify(&text, SECRET, NOW), Err(JwtError::BadClaim("exp")));
        let negative = sign(&claims(json!({"exp": NOW + 600, "nbf": -1})), SECRET);
        assert_eq!(
            verify(&negative, SECRET, NOW),
            Err(JwtError::BadClaim("nbf"))
        );
        let fraction = sign(&claims(json!({"exp": 1_700_000_000.9})), SECRET);
        assert!(verify(&fraction, SECRET, NOW + LEEWAY).is_ok());
    }

    #[test]
    fn malformed_segments_are_typed_errors() {
        let good = sign(&claims(json!({"exp": NOW + 600})), SECRET);
        let (header, rest) = good.split_once('.').unwrap();
        let (body, sig) = rest.split_once('.').unwrap();
        let cases = [
            String::new(),
            "abc".into(),
            format!("{header}.{body}"),
            format!("{good}.extra"),
            format!("!!!.{body}.{sig}"),
            format!("{header}=.{body}.{sig}"),
            format!("{}.{body}.{sig}", URL_SAFE_NO_PAD.encode("not json")),
            format!("{}.{body}.{sig}", URL_SAFE_NO_PAD.encode("[1,2]")),
            format!(r#"{}.{body}.{sig}"#, URL_SAFE_NO_PAD.encode(r#"{"alg":7}"#)),
            format!("{header}.{body}.not*base64"),
            forge(r#"{"alg":"HS256"}"#, "not json"),
            forge(r#"{"alg":"HS256"}"#, "[]"),
            format!("{header}.%%%.{sig}"),
        ];
        for token in &cases {
            match verify(token, SECRET, NOW) {
                Err(JwtError::Malformed(_)) => {}
                other => panic!("{token:?}: {other:?}"),
            }
        }
    }

    /// The workspace's recorded realtime-js vectors carry JWT-shaped tokens whose signature is
    /// the placeholder `signature`: they parse, and are refused as not signed by the secret.
    #[test]
    fn the_recorded_placeholder_tokens_are_refused() {
        let user_jwt_1 = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJyb2xlIjoiYXV0aGVudGljYXRlZCIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoyMDAwMDAwMDAwfQ.c2lnbmF0dXJl";
        assert_eq!(verify(user_jwt_1, SECRET, NOW), Err(JwtError::BadSignature));
    }
}

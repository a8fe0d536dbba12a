//! HTTP API request signing, auth version 1.0 (protocol notes §4.1).
//!
//! `string_to_sign = METHOD + "\n" + path + "\n" + sorted_query`, where `sorted_query` holds
//! every parameter except `auth_signature` (the caller's plus `auth_key`, `auth_timestamp`,
//! `auth_version=1.0` and, for a non-empty body, `body_md5` of the exact body bytes), sorted
//! by key and joined unescaped. The signature is the lowercase hex HMAC-SHA256 with the app
//! secret.

use md5::{Digest, Md5};
use relayport_core::auth::hmac_sha256_hex;
use relayport_core::{RealtimeError, Result};

/// The parameters the signer sets itself; a caller may not pass them.
pub const RESERVED_PARAMS: [&str; 5] = [
    "auth_key",
    "auth_timestamp",
    "auth_version",
    "auth_signature",
    "body_md5",
];

/// A signed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedQuery {
    /// Every parameter, sorted by key, then `auth_signature` last (values unescaped).
    pub params: Vec<(String, String)>,
    /// The exact string that was signed.
    pub string_to_sign: String,
    /// The hex signature.
    pub signature: String,
}

impl SignedQuery {
    /// The query string as the official SDK writes it (values unescaped).
    pub fn unescaped(&self) -> String {
        join(&self.params, str::to_owned)
    }

    /// The query string for a URL: values percent-encoded where they must be (the signature
    /// covers the unescaped form, as Pusher expects).
    pub fn encoded(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn join(params: &[(String, String)], f: impl Fn(&str) -> String) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", f(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value, keeping the unreserved characters and the sub-delimiters
/// that are safe inside a value (`,`, `:`, `@`, `;`, `/`).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~,:@;/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Lowercase hex MD5 of the exact body bytes.
///
/// ```
/// assert_eq!(relayport_pusher::signing::body_md5(b"{}"), "99914b932bd37a50b983c5e7c90ae93b");
/// ```
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// Signs a request.
///
/// `params` are the caller's query parameters; `body` the exact body bytes (`None` or empty:
/// no `body_md5`).
pub fn sign(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    timestamp: u64,
    params: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<SignedQuery> {
    let mut all: Vec<(String, String)> = Vec::with_capacity(params.len() + 4);
    for (k, v) in params {
        if RESERVED_PARAMS.contains(k) {
            return Err(RealtimeError::Config(format!(
                "{k} is a required parameter and cannot be overidden"
            )));
        }
        all.push(((*k).to_owned(), (*v).to_owned()));
    }
    all.push(("auth_key".into(), key.to_owned()));
    all.push(("auth_timestamp".into(), timestamp.to_string()));
    all.push(("auth_version".into(), "1.0".into()));
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        all.push(("body_md5".into(), body_md5(body)));
    }
    all.sort();
    let sorted = join(&all, str::to_owned);
    let string_to_sign = format!("{}\n{}\n{}", method.to_ascii_uppercase(), path, sorted);
    let signature = hmac_sha256_hex(secret.as_bytes(), string_to_sign.as_bytes());
    all.push(("auth_signature".into(), signature.clone()));
    Ok(SignedQuery {
        params: all,
        string_to_sign,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_params_are_refused() {
        for k in RESERVED_PARAMS {
            let err = sign("k", "s", "GET", "/p", 1, &[(k, "x")], None).unwrap_err();
            assert!(err.to_string().contains(k), "{err}");
        }
    }

    #[test]
    fn encoding_keeps_commas_and_escapes_separators() {
        assert_eq!(
            percent_encode("user_count,subscription_count"),
            "user_count,subscription_count"
        );
        assert_eq!(percent_encode("a b&c=d+e#"), "a%20b%26c%3Dd%2Be%23");
    }

    #[test]
    fn empty_body_has_no_md5() {
        let s = sign("k", "s", "POST", "/p", 1, &[], Some(b"")).unwrap();
        assert!(!s.string_to_sign.contains("body_md5"));
    }
}

//! Pusher's signatures, verified exactly as Pusher computes them, always in constant time:
//!
//! - subscriptions: `auth = "{key}:" + hex(HMAC-SHA256(secret, "{socket_id}:{channel}"))`,
//!   presence channels append `":{channel_data}"` (the exact string the client sends);
//! - sign-in: `hex(HMAC-SHA256(secret, "{socket_id}::user::{user_data}"))`;
//! - HTTP requests: `auth_signature = hex(HMAC-SHA256(secret, "METHOD\n/path\nsorted_query"))`
//!   over every query parameter but `auth_signature`, sorted by key, joined `k=v` with `&`,
//!   not URL-escaped; `auth_timestamp` within [`TIMESTAMP_WINDOW_SECS`] of now;
//!   `body_md5` = hex MD5 of the exact body bytes;
//! - webhooks: `X-Pusher-Signature = hex(HMAC-SHA256(secret, body))`.

use md5::{Digest, Md5};
use relayport_core::auth::{hmac_sha256_hex, verify_hmac_sha256_hex};

use super::apps::PusherApp;

/// How far `auth_timestamp` may be from the server's clock, in seconds (Pusher: 600).
pub const TIMESTAMP_WINDOW_SECS: u64 = 600;

/// Checks a `"{key}:{hex}"` token over `message`: the key must be the app's and the HMAC
/// must match (compared in constant time).
pub fn verify_token(app: &PusherApp, message: &str, token: &str) -> bool {
    let Some((key, sig)) = token.split_once(':') else {
        return false;
    };
    // Both checks always run: the answer takes the same time whichever part is wrong.
    let key_ok = verify_hmac_sha256_hex(
        b"relayport-key-compare",
        key.as_bytes(),
        &hmac_sha256_hex(b"relayport-key-compare", app.key.as_bytes()),
    );
    let sig_ok = verify_hmac_sha256_hex(app.secret.as_bytes(), message.as_bytes(), sig);
    key_ok & sig_ok
}

/// The string a subscription signs.
pub fn subscription_string(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(d) => format!("{socket_id}:{channel}:{d}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// The string a sign-in signs.
pub fn signin_string(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// Lowercase hex MD5 of `body`.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// Signs a webhook body: the `X-Pusher-Signature` value.
pub fn webhook_signature(app: &PusherApp, body: &[u8]) -> String {
    hmac_sha256_hex(app.secret.as_bytes(), body)
}

/// Why an HTTP request's signature was refused (the message is safe to return: it never
/// holds the expected signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// The checked authentication parameters of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// `body_md5`, if sent (checked against the body once it is read).
    pub body_md5: Option<String>,
}

/// Verifies an HTTP request's signature from its method, path and decoded query parameters
/// (before the body is read). `now` is Unix seconds.
pub fn verify_request(
    app: &PusherApp,
    method: &str,
    path: &str,
    params: &[(String, String)],
    now: u64,
) -> Result<SignedRequest, Refused> {
    let get = |k: &str| {
        let mut it = params.iter().filter(|(key, _)| key == k);
        match (it.next(), it.next()) {
            (Some((_, v)), None) => Ok(Some(v.as_str())),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(Refused(format!("{k} is given twice"))),
        }
    };
    let mut seen = std::collections::HashSet::new();
    if let Some((k, _)) = params.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        return Err(Refused(format!("query parameter {k} is given twice")));
    }
    let (Some(key), Some(ts), Some(version), Some(sig)) = (
        get("auth_key")?,
        get("auth_timestamp")?,
        get("auth_version")?,
        get("auth_signature")?,
    ) else {
        return Err(Refused(
            "auth_key, auth_timestamp, auth_version and auth_signature are required".into(),
        ));
    };
    if version != "1.0" {
        return Err(Refused("auth_version must be 1.0".into()));
    }
    if key != app.key {
        return Err(Refused("unknown auth_key for this app".into()));
    }
    let Ok(ts) = ts.parse::<u64>() else {
        return Err(Refused("auth_timestamp must be Unix seconds".into()));
    };
    if ts.abs_diff(now) > TIMESTAMP_WINDOW_SECS {
        return Err(Refused(format!(
            "auth_timestamp is more than {TIMESTAMP_WINDOW_SECS} s from the server's clock ({now})"
        )));
    }
    let mut signed: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    signed.sort();
    let query = signed
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let message = format!("{}\n{path}\n{query}", method.to_ascii_uppercase());
    if !verify_hmac_sha256_hex(app.secret.as_bytes(), message.as_bytes(), sig) {
        return Err(Refused(format!(
            "Invalid signature: you should have sent HmacSHA256Hex({:?}, your_secret_key)",
            message
        )));
    }
    Ok(SignedRequest {
        body_md5: get("body_md5")?.map(str::to_owned),
    })
}

/// Checks the body against the signed `body_md5`: required for a non-empty body.
pub fn verify_body(signed: &SignedRequest, body: &[u8]) -> Result<(), Refused> {
    match &signed.body_md5 {
        None if body.is_empty() => Ok(()),
        None => Err(Refused("body_md5 is required with a body".into())),
        Some(md5) => {
            let actual = body_md5(body);
            if verify_hmac_sha256_hex(
                b"relayport-md5",
                md5.as_bytes(),
                &hmac_sha256_hex(b"relayport-md5", actual.as_bytes()),
            ) {
                Ok(())
            } else {
                Err(Refused("body_md5 does not match the body".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs_app() -> PusherApp {
        PusherApp::new("3", "278d425bdf160c739803", "7ad3773142a6692b25b8")
    }

    #[test]
    fn the_docs_worked_examples_verify() {
        let app = docs_app();
        // auth-signatures.md, private channel.
        let token =
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
        let msg = subscription_string("1234.1234", "private-foobar", None);
        assert!(verify_token(&app, &msg, token));
        assert!(!verify_token(
            &app,
            &subscription_string("1234.1235", "private-foobar", None),
            token
        ));
        let other_key = token.replacen("278d", "278e", 1);
        assert!(!verify_token(&app, &msg, &other_key));
        assert!(!verify_token(&app, &msg, "no-colon"));
        // authenticating-users.md, sign-in.
        let sig = "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba";
        let msg = signin_string("1234.1234", r#"{"id":"12345"}"#);
        assert!(verify_token(
            &app,
            &msg,
            &format!("278d425bdf160c739803:{sig}")
        ));
        // rest-api.md, POST /apps/3/events.
        let params = |ts: &str, sig: &str| {
            vec![
                ("auth_key".to_owned(), "278d425bdf160c739803".to_owned()),
                ("auth_timestamp".to_owned(), ts.to_owned()),
                ("auth_version".to_owned(), "1.0".to_owned()),
                (
                    "body_md5".to_owned(),
                    "ec365a775a4cd0599faeb73354201b6f".to_owned(),
                ),
                ("auth_signature".to_owned(), sig.to_owned()),
            ]
        };
        let good = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
        let signed = verify_request(
            &app,
            "POST",
            "/apps/3/events",
            &params("1353088179", good),
            1353088179,
        )
        .expect("docs example");
        assert_eq!(
            signed.body_md5.as_deref(),
            Some("ec365a775a4cd0599faeb73354201b6f")
        );
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert!(verify_body(&signed, body).is_ok());
        assert!(verify_body(&signed, b"{}").is_err());
        // Replayed outside the window, tampered, or a different path: refused.
        assert!(
            verify_request(
                &app,
                "POST",
                "/apps/3/events",
                &params("1353088179", good),
                1353088179 + 601
            )
            .is_err()
        );
        assert!(
            verify_request(
                &app,
                "POST",
                "/apps/3/events",
                &params("1353088180", good),
                1353088180
            )
            .is_err()
        );
        assert!(
            verify_request(
                &app,
                "POST",
                "/apps/4/events",
                &params("1353088179", good),
                1353088179
            )
            .is_err()
        );
        let mut twice = params("1353088179", good);
        twice.push(("auth_key".into(), "x".into()));
        assert!(verify_request(&app, "POST", "/apps/3/events", &twice, 1353088179).is_err());
    }
}

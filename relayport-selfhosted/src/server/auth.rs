//! Subscription signatures (HMAC-SHA256 over `socket_id:channel[:channel_data]`, checked in
//! constant time), the bearer secret check for the HTTP API, and [`SelfHostedAuthorizer`], the
//! backend side that produces the signatures.

use relayport_core::auth::{hmac_sha256_hex, verify_hmac_sha256_hex};
use relayport_core::{Channel, ChannelKind};
use serde_json::Value;

use super::broker::Refusal;
pub use crate::authorizer::SelfHostedAuthorizer;
use crate::protocol::{code, presence_signing_string, private_signing_string};

/// The user a presence subscription is signed for: `(user_id, user_info)`.
pub type SignedUser = (String, Value);

/// Checks a subscription's signature. Public channels need none; private channels need
/// `auth`; presence channels need `auth` and the exact `channel_data` string that was signed.
/// Returns the signed presence user.
pub fn verify_subscription(
    secret: &str,
    socket_id: &str,
    channel: &Channel,
    auth: Option<&str>,
    channel_data: Option<&str>,
) -> Result<Option<SignedUser>, Refusal> {
    let name = channel.to_string();
    match channel.kind() {
        ChannelKind::Public => Ok(None),
        ChannelKind::Private => {
            let Some(sig) = auth else {
                return Err(Refusal::new(
                    code::UNAUTHORIZED,
                    format!("{name} needs auth"),
                ));
            };
            let msg = private_signing_string(socket_id, &name);
            if verify_hmac_sha256_hex(secret.as_bytes(), msg.as_bytes(), sig) {
                Ok(None)
            } else {
                Err(Refusal::new(
                    code::UNAUTHORIZED,
                    format!("invalid signature for {name}"),
                ))
            }
        }
        ChannelKind::Presence => {
            let (Some(sig), Some(data)) = (auth, channel_data) else {
                return Err(Refusal::new(
                    code::UNAUTHORIZED,
                    format!("{name} needs auth and channel_data"),
                ));
            };
            let msg = presence_signing_string(socket_id, &name, data);
            if !verify_hmac_sha256_hex(secret.as_bytes(), msg.as_bytes(), sig) {
                return Err(Refusal::new(
                    code::UNAUTHORIZED,
                    format!("invalid signature for {name}"),
                ));
            }
            parse_channel_data(data).map(Some)
        }
    }
}

/// Reads `{"user_id": …, "user_info": …}` (a numeric user id is accepted as its decimal text).
pub fn parse_channel_data(data: &str) -> Result<SignedUser, Refusal> {
    let value: Value = serde_json::from_str(data)
        .map_err(|e| Refusal::new(code::MALFORMED, format!("channel_data is not JSON: {e}")))?;
    let user_id = match value.get("user_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(Refusal::new(
                code::MALFORMED,
                "channel_data needs a non-empty user_id",
            ));
        }
    };
    let info = value.get("user_info").cloned().unwrap_or(Value::Null);
    Ok((user_id, info))
}

/// Whether an `Authorization` header value is `Bearer <secret>`, compared in constant time
/// (both sides go through HMAC so the comparison never depends on where they differ).
pub fn bearer_matches(secret: &str, header: Option<&str>) -> bool {
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    const KEY: &[u8] = b"realtime-bearer-compare";
    let expected = hmac_sha256_hex(KEY, secret.as_bytes());
    verify_hmac_sha256_hex(KEY, token.trim().as_bytes(), &expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::AuthRequest;
    use relayport_core::auth::PresenceUser;
    use serde_json::json;

    fn req(channel: &str, user: Option<PresenceUser>) -> AuthRequest {
        AuthRequest {
            socket_id: "n.1".into(),
            channel: Channel::parse(channel).unwrap_or_else(|e| panic!("{e}")),
            user,
        }
    }

    #[test]
    fn authorizer_signatures_verify_and_bind_to_the_socket() {
        let a = SelfHostedAuthorizer::new("s3cret");
        let r = req("private:room:1", None);
        let body = a.sign(&r).unwrap();
        let sig = body.str_field("auth");
        assert!(verify_subscription("s3cret", "n.1", &r.channel, sig, None).is_ok());
        let other = verify_subscription("s3cret", "n.2", &r.channel, sig, None);
        assert_eq!(other.map_err(|e| e.code), Err(code::UNAUTHORIZED));
        let missing = verify_subscription("s3cret", "n.1", &r.channel, None, None);
        assert_eq!(missing.map_err(|e| e.code), Err(code::UNAUTHORIZED));
        let wrong = verify_subscription("other", "n.1", &r.channel, sig, None);
        assert_eq!(wrong.map_err(|e| e.code), Err(code::UNAUTHORIZED));
    }

    #[test]
    fn presence_signature_covers_channel_data() {
        let a = SelfHostedAuthorizer::new("s3cret");
        let user = PresenceUser {
            id: "u1".into(),
            info: json!({"name": "Ada"}),
        };
        let r = req("presence:room", Some(user));
        let body = a.sign(&r).unwrap();
        let (sig, data) = (body.str_field("auth"), body.str_field("channel_data"));
        let got = verify_subscription("s3cret", "n.1", &r.channel, sig, data).unwrap();
        assert_eq!(got, Some(("u1".to_owned(), json!({"name": "Ada"}))));
        let forged = r#"{"user_id":"admin","user_info":null}"#;
        let bad = verify_subscription("s3cret", "n.1", &r.channel, sig, Some(forged));
        assert_eq!(bad.map_err(|e| e.code), Err(code::UNAUTHORIZED));
    }

    #[test]
    fn bearer_compare() {
        assert!(bearer_matches("abc", Some("Bearer abc")));
        assert!(!bearer_matches("abc", Some("Bearer abd")));
        assert!(!bearer_matches("abc", Some("abc")));
        assert!(!bearer_matches("abc", None));
        assert!(!bearer_matches("abc", Some("Bearer ")));
    }
}

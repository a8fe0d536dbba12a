//! [`SelfHostedAuthorizer`]: the backend side of the self-hosted server's subscription
//! signatures (HMAC-SHA256 over `socket_id:channel[:channel_data]`, see `PROTOCOL.md`).
//!
//! It needs neither the server nor the client feature: a backend that only signs
//! subscriptions compiles neither axum nor a WebSocket client.

use async_trait::async_trait;
use relayport_core::auth::hmac_sha256_hex;
use relayport_core::{AuthRequest, ChannelAuth, ChannelAuthorizer, ChannelKind};
use serde_json::json;

use crate::protocol::{presence_signing_string, private_signing_string};

/// Signs private and presence subscriptions for the self-hosted server with the app secret.
///
/// The body is `{"auth": "<hex>"}`, plus `"channel_data": "<json string>"` for presence
/// channels (built from `AuthRequest.user`: `{"user_id": …, "user_info": …}`). A client sends
/// both back in its `subscribe` frame unchanged.
pub struct SelfHostedAuthorizer {
    secret: String,
}

impl std::fmt::Debug for SelfHostedAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfHostedAuthorizer")
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl SelfHostedAuthorizer {
    /// An authorizer signing with `secret` (the server's `REALTIME_SECRET`).
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    /// The auth body for a request, synchronously.
    pub fn sign(&self, request: &AuthRequest) -> relayport_core::Result<ChannelAuth> {
        let name = request.channel.to_string();
        match request.channel.kind() {
            ChannelKind::Public => Err(relayport_core::auth::forbidden(
                &request.channel,
                "public channels need no authorization",
            )),
            ChannelKind::Private => {
                let msg = private_signing_string(&request.socket_id, &name);
                Ok(ChannelAuth(json!({
                    "auth": hmac_sha256_hex(self.secret.as_bytes(), msg.as_bytes())
                })))
            }
            ChannelKind::Presence => {
                let Some(user) = &request.user else {
                    return Err(relayport_core::auth::forbidden(
                        &request.channel,
                        "presence channels need a user",
                    ));
                };
                let data = json!({"user_id": user.id, "user_info": user.info}).to_string();
                let msg = presence_signing_string(&request.socket_id, &name, &data);
                Ok(ChannelAuth(json!({
                    "auth": hmac_sha256_hex(self.secret.as_bytes(), msg.as_bytes()),
                    "channel_data": data,
                })))
            }
        }
    }
}

#[async_trait]
impl ChannelAuthorizer for SelfHostedAuthorizer {
    async fn authorize(&self, request: &AuthRequest) -> relayport_core::Result<ChannelAuth> {
        self.sign(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::Channel;
    use relayport_core::auth::PresenceUser;

    fn req(channel: &str, user: Option<PresenceUser>) -> AuthRequest {
        AuthRequest {
            socket_id: "n.1".into(),
            channel: Channel::parse(channel).unwrap_or_else(|e| panic!("{e}")),
            user,
        }
    }

    // Expected values computed independently (Python's hmac module) from PROTOCOL.md's
    // signing strings, so a change of the string or the key use fails here.
    #[test]
    fn private_signature_matches_an_independent_hmac() {
        let body = SelfHostedAuthorizer::new("s3cret")
            .sign(&req("private:room:1", None))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            body.0,
            json!({"auth": "47786c5f9e2345165cedb6a4c18e56ffd18333fcf7ce6d18a92f3191c2995ba9"})
        );
    }

    #[test]
    fn presence_signature_covers_the_channel_data() {
        let user = PresenceUser {
            id: "u1".into(),
            info: json!({"name": "Ada"}),
        };
        let body = SelfHostedAuthorizer::new("s3cret")
            .sign(&req("presence:room", Some(user)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            body.0,
            json!({
                "auth": "1fa7403314133f1928ca3d30b9c65bc21db574bc2daa45195892654bd6419ed6",
                "channel_data": r#"{"user_id":"u1","user_info":{"name":"Ada"}}"#,
            })
        );
    }

    #[test]
    fn public_channels_and_userless_presence_are_refused() {
        let a = SelfHostedAuthorizer::new("s3cret");
        assert!(a.sign(&req("room", None)).is_err());
        assert!(a.sign(&req("presence:room", None)).is_err());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let shown = format!("{:?}", SelfHostedAuthorizer::new("s3cret"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

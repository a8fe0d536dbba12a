//! [`SocketIoAuthorizer`]: the backend side of the channel signatures the Node adapter checks.
//!
//! The same HMAC-SHA256 as relayport's self-hosted server, made with the core's signing helper:
//! a private channel's signature covers `socket_id:channel`, a presence channel's
//! `socket_id:channel:channel_data`, where `socket_id` is the namespace socket's id
//! (`socket.id`) and `channel_data` is `{"user_id": …, "user_info": …}` as a JSON string.

use async_trait::async_trait;
use relayport_core::auth::{forbidden, hmac_sha256_hex};
use relayport_core::{AuthRequest, ChannelAuth, ChannelAuthorizer, ChannelKind, Result};
use serde_json::json;

/// Signs private and presence subscriptions with the adapter's secret (`attachRealtime(io,
/// { secret })`). The body is `{"auth": "<hex>"}`, plus `"channel_data"` for presence.
pub struct SocketIoAuthorizer {
    secret: String,
}

impl std::fmt::Debug for SocketIoAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoAuthorizer")
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl SocketIoAuthorizer {
    /// An authorizer signing with `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    /// The auth body for a request, synchronously.
    pub fn sign(&self, request: &AuthRequest) -> Result<ChannelAuth> {
        let name = request.channel.to_string();
        let key = self.secret.as_bytes();
        match request.channel.kind() {
            ChannelKind::Public => Err(forbidden(
                &request.channel,
                "public channels need no authorization",
            )),
            ChannelKind::Private => {
                let msg = format!("{}:{name}", request.socket_id);
                Ok(ChannelAuth(
                    json!({ "auth": hmac_sha256_hex(key, msg.as_bytes()) }),
                ))
            }
            ChannelKind::Presence => {
                let Some(user) = &request.user else {
                    return Err(forbidden(&request.channel, "presence channels need a user"));
                };
                let data = json!({"user_id": user.id, "user_info": user.info}).to_string();
                let msg = format!("{}:{name}:{data}", request.socket_id);
                Ok(ChannelAuth(json!({
                    "auth": hmac_sha256_hex(key, msg.as_bytes()),
                    "channel_data": data,
                })))
            }
        }
    }
}

#[async_trait]
impl ChannelAuthorizer for SocketIoAuthorizer {
    async fn authorize(&self, request: &AuthRequest) -> Result<ChannelAuth> {
        self.sign(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::Channel;
    use relayport_core::auth::PresenceUser;

    // Expected values from the self-hosted authorizer's tests (computed independently with
    // Python's hmac module): the adapter verifies exactly the same signatures.
    #[test]
    fn signs_like_the_other_hmac_providers() {
        let a = SocketIoAuthorizer::new("s3cret");
        let private = a
            .sign(&AuthRequest {
                socket_id: "n.1".into(),
                channel: Channel::private("room:1"),
                user: None,
            })
            .unwrap();
        assert_eq!(
            private.0,
            json!({"auth": "47786c5f9e2345165cedb6a4c18e56ffd18333fcf7ce6d18a92f3191c2995ba9"})
        );
        let presence = a
            .sign(&AuthRequest {
                socket_id: "n.1".into(),
                channel: Channel::presence("room"),
                user: Some(PresenceUser {
                    id: "u1".into(),
                    info: json!({"name": "Ada"}),
                }),
            })
            .unwrap();
        assert_eq!(
            presence.0["auth"],
            "1fa7403314133f1928ca3d30b9c65bc21db574bc2daa45195892654bd6419ed6"
        );
        assert!(
            a.sign(&AuthRequest {
                socket_id: "n.1".into(),
                channel: Channel::public("x"),
                user: None
            })
            .is_err()
        );
        assert!(!format!("{a:?}").contains("s3cret"));
    }
}

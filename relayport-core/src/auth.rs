//! Server-side traits, [`Publisher`] and [`ChannelAuthorizer`], and the signing helpers that
//! HMAC-based providers share.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::channel::Channel;
use crate::error::{RealtimeError, Result};
use crate::message::OutboundMessage;

/// The authorization for one private or presence subscription: the JSON body an auth endpoint
/// returns (Pusher's `{"auth": …, "channel_data": …}`, an Ably token request, a Supabase JWT,
/// the self-hosted server's signature).
///
/// The same type is what a backend's [`ChannelAuthorizer`] produces and what a client hands to
/// its provider, so an auth endpoint serializes it and a client deserializes it unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelAuth(pub Value);

impl ChannelAuth {
    /// A string field of the body, if present.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
}

/// The user a presence subscription is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceUser {
    /// The user's id.
    pub id: String,
    /// What other members see of the user.
    #[serde(default)]
    pub info: Value,
}

/// A request to authorize a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The connection's id (socket id) the signature is bound to.
    pub socket_id: String,
    /// The channel (neutral name).
    pub channel: Channel,
    /// For presence channels: the joining user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<PresenceUser>,
}

/// Signs private and presence subscriptions.
///
/// On a backend, an implementation signs with the provider's secret; on a client, an
/// implementation asks the application's auth endpoint (which calls the backend's). The
/// client runtime asks again after every reconnect, because the socket id changes.
#[async_trait]
pub trait ChannelAuthorizer: Send + Sync + 'static {
    /// The auth response body for this request, or `Forbidden`/`Unauthorized`.
    async fn authorize(&self, request: &AuthRequest) -> Result<ChannelAuth>;
}

/// Publishes from a backend over a provider's HTTP API, without a socket.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publishes one message.
    async fn publish(&self, message: &OutboundMessage) -> Result<()>;

    /// Publishes several messages, in order. The default publishes them one by one; providers
    /// with a batch endpoint override it.
    async fn publish_batch(&self, messages: &[OutboundMessage]) -> Result<()> {
        for m in messages {
            self.publish(m).await?;
        }
        Ok(())
    }
}

/// HMAC-SHA256 of `message` with `secret`, as lowercase hex.
///
/// ```
/// let sig = relayport_core::auth::hmac_sha256_hex(b"key", b"The quick brown fox jumps over the lazy dog");
/// assert_eq!(sig, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
/// ```
pub fn hmac_sha256_hex(secret: &[u8], message: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, message))
}

/// HMAC-SHA256 of `message` with `secret`, as raw bytes.
pub fn hmac_sha256(secret: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Checks a hex HMAC-SHA256 signature in constant time. Malformed hex is simply not valid.
pub fn verify_hmac_sha256_hex(secret: &[u8], message: &[u8], signature_hex: &str) -> bool {
    let Ok(sig) = hex::decode(signature_hex) else {
        return false;
    };
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.verify_slice(&sig).is_ok()
}

/// A refusal for `channel` as [`RealtimeError::Forbidden`].
pub fn forbidden(channel: &Channel, reason: impl Into<String>) -> RealtimeError {
    RealtimeError::Forbidden {
        channel: channel.to_string(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_accepts_only_the_right_signature() {
        let sig = hmac_sha256_hex(b"secret", b"1.2:private-a");
        assert!(verify_hmac_sha256_hex(b"secret", b"1.2:private-a", &sig));
        assert!(!verify_hmac_sha256_hex(b"secret", b"1.3:private-a", &sig));
        assert!(!verify_hmac_sha256_hex(b"other", b"1.2:private-a", &sig));
        assert!(!verify_hmac_sha256_hex(
            b"secret",
            b"1.2:private-a",
            &sig[..62]
        ));
        assert!(!verify_hmac_sha256_hex(b"secret", b"1.2:private-a", "zz"));
        assert!(!verify_hmac_sha256_hex(b"secret", b"1.2:private-a", ""));
    }
}

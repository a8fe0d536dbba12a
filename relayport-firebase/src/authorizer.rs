//! [`RulesAuthorizer`]: the channel authorizer for a database whose security rules decide.

use async_trait::async_trait;
use relayport_core::{AuthRequest, ChannelAuth, ChannelAuthorizer, Result};
use serde_json::json;

/// Approves every private and presence subscription locally: with Firebase, access is decided
/// by the database's security rules against the client's token, on every request and stream,
/// so there is nothing to sign. The core asks an authorizer before private and presence
/// subscriptions; give it this one.
#[derive(Debug, Clone, Copy, Default)]
pub struct RulesAuthorizer;

#[async_trait]
impl ChannelAuthorizer for RulesAuthorizer {
    async fn authorize(&self, request: &AuthRequest) -> Result<ChannelAuth> {
        Ok(ChannelAuth(json!({
            "channel": request.channel.to_string(),
            "decided_by": "firebase security rules",
        })))
    }
}

//! `relayport auth <socket_id> <channel> [--user-data json]` (a presence channel needs the
//! user data: `Cli::check`).

use relayport::config::ProviderConfig;
use relayport::{AuthRequest, Channel, PresenceUser, Result};

use crate::output::json_line;

pub(super) async fn run(
    cfg: &ProviderConfig,
    socket_id: String,
    channel: Channel,
    user: Option<PresenceUser>,
) -> Result<()> {
    let request = AuthRequest {
        socket_id,
        channel,
        user,
    };
    let body = relayport::authorizer(cfg)?.authorize(&request).await?;
    json_line(&body)
}

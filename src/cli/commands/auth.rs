//! `relayport auth <socket_id> <channel> [--user-data json]`

use relayport_core::{AuthRequest, ChannelKind, PresenceUser, RealtimeError, Result};
use serde_json::Value;

use super::channel;
use crate::cli::output::{json_line, parse_json};
use crate::config::ProviderConfig;

/// `{"id"|"user_id": …, "info"|"user_info": …}` as a presence user.
fn user(text: &str) -> Result<PresenceUser> {
    let value = parse_json("--user-data", text)?;
    let id = match value.get("id").or_else(|| value.get("user_id")) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(RealtimeError::Config(
                "--user-data needs a non-empty `id` (or `user_id`)".into(),
            ));
        }
    };
    let info = value
        .get("info")
        .or_else(|| value.get("user_info"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(PresenceUser { id, info })
}

pub(super) async fn run(
    cfg: &ProviderConfig,
    socket_id: &str,
    name: &str,
    user_data: Option<&str>,
) -> Result<()> {
    let ch = channel(name)?;
    let user = match (ch.kind(), user_data) {
        (_, Some(text)) => Some(user(text)?),
        (ChannelKind::Presence, None) => {
            return Err(RealtimeError::Config(format!(
                "{ch} is a presence channel: give --user-data '{{\"id\": …}}'"
            )));
        }
        _ => None,
    };
    let request = AuthRequest {
        socket_id: socket_id.to_owned(),
        channel: ch,
        user,
    };
    let body = crate::authorizer(cfg)?.authorize(&request).await?;
    json_line(&body)
}

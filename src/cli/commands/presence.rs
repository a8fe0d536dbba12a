//! `relayport presence <channel> [--data json]`

use std::collections::HashMap;

use relayport_core::{ChannelKind, PresenceAction, RealtimeError, Result};
use serde_json::{Value, json};

use super::{channel, client, ctrl_c};
use crate::cli::output::{json_line, note, parse_json};
use crate::cli::status::watch_states;
use crate::config::ProviderConfig;

pub(super) async fn run(cfg: &ProviderConfig, name: &str, data: Option<&str>) -> Result<()> {
    let ch = channel(name)?;
    if ch.kind() != ChannelKind::Presence {
        return Err(RealtimeError::invalid_channel(
            name,
            "presence needs a presence channel (`presence:…`)",
        ));
    }
    let data = match data {
        Some(d) => parse_json("--data", d)?,
        None => Value::Null,
    };
    let client = client(cfg)?;
    let outcome = tokio::select! {
        r = async {
            client.presence_enter(ch.clone(), data).await?;
            let mut events = client.presence_events(ch.clone()).await?;
            note(&format!("joined {ch}"));
            let mut known = HashMap::new();
            for member in client.presence_members(ch.clone()).await? {
                json_line(&json!({"channel": ch, "action": "member", "member": member}))?;
                known.insert(member.id, member.data);
            }
            while let Some(event) = events.recv().await {
                let member = &event.member;
                let news = match event.action {
                    PresenceAction::Left => known.remove(&member.id).is_some(),
                    _ => known.insert(member.id.clone(), member.data.clone()).as_ref()
                        != Some(&member.data),
                };
                if news {
                    json_line(&event)?;
                }
            }
            note("the presence stream ended");
            Ok(())
        } => r,
        e = watch_states(&client) => Err(e),
        r = ctrl_c() => r,
    };
    client.close().await;
    outcome
}

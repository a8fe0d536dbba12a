//! `relayport presence <channel> [--data json]`

use std::collections::HashMap;

use relayport::config::ProviderConfig;
use relayport::{Channel, PresenceAction, RealtimeError, Result};
use serde_json::{Value, json};

use super::{client, supervise};
use crate::events::GRACE;
use crate::output::{json_line, note};

pub(super) async fn run(cfg: &ProviderConfig, ch: Channel, data: Option<Value>) -> Result<()> {
    let client = client(cfg)?;
    let work = async {
        client
            .presence_enter(ch.clone(), data.unwrap_or(Value::Null))
            .await?;
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
                _ => {
                    known
                        .insert(member.id.clone(), member.data.clone())
                        .as_ref()
                        != Some(&member.data)
                }
            };
            if news {
                json_line(&event)?;
            }
        }
        // As in `listen`: the reason follows as an event; this is the fallback.
        tokio::time::sleep(GRACE).await;
        Err(RealtimeError::Closed(format!(
            "the presence stream of {ch} ended without a reason"
        )))
    };
    supervise(client.clone(), std::slice::from_ref(&ch), work).await
}

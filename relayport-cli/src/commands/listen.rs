//! `relayport listen <channel>…`

use futures::StreamExt;
use futures::stream::select_all;
use relayport::config::ProviderConfig;
use relayport::{Channel, RealtimeError, Result};

use super::{client, supervise};
use crate::events::GRACE;
use crate::output::{json_line, note};

pub(super) async fn run(cfg: &ProviderConfig, channels: Vec<Channel>) -> Result<()> {
    let client = client(cfg)?;
    let work = async {
        let mut subs = Vec::with_capacity(channels.len());
        for ch in &channels {
            subs.push(client.subscribe(ch.clone()).await?);
            note(&format!("subscribed to {ch}"));
        }
        let mut all = select_all(subs);
        while let Some(message) = all.next().await {
            json_line(&message)?;
        }
        // Streams end only when the server or the runtime drops the subscriptions: the
        // `SubscriptionFailed` event with the reason follows at once, and ends the command
        // with it; this error is the fallback.
        tokio::time::sleep(GRACE).await;
        Err(RealtimeError::Closed(
            "every subscription ended without a reason".into(),
        ))
    };
    supervise(client.clone(), &channels, work).await
}

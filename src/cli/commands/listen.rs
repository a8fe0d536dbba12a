//! `relayport listen <channel>…`

use futures::StreamExt;
use futures::stream::select_all;
use relayport_core::Result;

use super::{channel, client, ctrl_c};
use crate::cli::output::{json_line, note};
use crate::cli::status::watch_states;
use crate::config::ProviderConfig;

pub(super) async fn run(cfg: &ProviderConfig, names: &[String]) -> Result<()> {
    let channels = names
        .iter()
        .map(|n| channel(n))
        .collect::<Result<Vec<_>>>()?;
    let client = client(cfg)?;
    let outcome = tokio::select! {
        r = async {
            let mut subs = Vec::with_capacity(channels.len());
            for ch in &channels {
                subs.push(client.subscribe(ch.clone()).await?);
                note(&format!("subscribed to {ch}"));
            }
            let mut all = select_all(subs);
            while let Some(message) = all.next().await {
                json_line(&message)?;
            }
            note("every subscription ended");
            Ok(())
        } => r,
        e = watch_states(&client) => Err(e),
        r = ctrl_c() => r,
    };
    client.close().await;
    outcome
}

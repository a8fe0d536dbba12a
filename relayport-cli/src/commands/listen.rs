//! `relayport listen <channel>…`

use futures::StreamExt;
use futures::stream::select_all;
use relayport::config::ProviderConfig;
use relayport::{Channel, RealtimeError, Result};

use super::{client, supervise};
use crate::events::GRACE;
use crate::output::{json_line, note};

/// `cfg` with `--postgres` filters on every listened channel (Supabase only; the filters join
/// the configuration's own `SUPABASE_POSTGRES_CHANGES`, so every rejoin carries them).
pub(super) fn with_postgres(
    cfg: &ProviderConfig,
    channels: &[Channel],
    specs: &[String],
) -> Result<ProviderConfig> {
    if specs.is_empty() {
        return Ok(cfg.clone());
    }
    let ProviderConfig::Supabase(settings) = cfg else {
        return Err(RealtimeError::Config(format!(
            "--postgres is for Supabase (the configured provider is {})",
            cfg.provider_name()
        )));
    };
    let mut settings = settings.clone();
    for spec in specs {
        spec.parse::<relayport::supabase::PostgresChangesFilter>()?;
        for ch in channels {
            settings.postgres_changes.push(format!("{ch}={spec}"));
        }
    }
    Ok(ProviderConfig::Supabase(settings))
}

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

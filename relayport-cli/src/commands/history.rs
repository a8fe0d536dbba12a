//! `relayport history <channel>`: the channel's retained messages through
//! `RealtimeClient::history`, every page, oldest first unless `--newest-first`.

use relayport::config::ProviderConfig;
use relayport::{Channel, HistoryQuery, Result};

use super::client;
use crate::output::json_line;

pub(super) async fn run(
    cfg: &ProviderConfig,
    ch: Channel,
    limit: Option<usize>,
    newest_first: bool,
) -> Result<()> {
    let client = client(cfg)?;
    let outcome = async {
        // A private or presence channel's history is read by a signed subscriber (the
        // self-hosted server's rule; harmless elsewhere).
        let _subscription = match ch.kind().requires_auth() {
            true => Some(client.subscribe(ch.clone()).await?),
            false => None,
        };
        let mut query = HistoryQuery::new();
        if !newest_first {
            query = query.forwards();
        }
        if let Some(limit) = limit {
            query = query.limit(limit);
        }
        let mut page = client.history(ch.clone(), query).await?;
        loop {
            for m in page.messages() {
                json_line(m)?;
            }
            match page.next().await? {
                Some(next) => page = next,
                None => return Ok(()),
            }
        }
    }
    .await;
    client.close().await;
    outcome
}

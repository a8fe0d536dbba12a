//! `relayport publish <channel> <event> <json> [--client]`

use relayport_core::{OutboundMessage, Result};

use super::{channel, client};
use crate::cli::output::{note, parse_json};
use crate::cli::status::watch_states;
use crate::config::ProviderConfig;

pub(super) async fn run(
    cfg: &ProviderConfig,
    name: &str,
    event: &str,
    data: &str,
    through_client: bool,
) -> Result<()> {
    let ch = channel(name)?;
    let data = parse_json("the payload", data)?;
    if through_client {
        let client = client(cfg)?;
        let outcome = tokio::select! {
            r = async {
                // Private and presence channels take client publishes only from subscribers.
                let _held = match ch.kind().requires_auth() {
                    true => Some(client.subscribe(ch.clone()).await?),
                    false => None,
                };
                client.publish(ch.clone(), event, data).await
            } => r,
            e = watch_states(&client) => Err(e),
        };
        client.close().await;
        outcome?;
    } else {
        let message = OutboundMessage::new(ch.clone(), event, data);
        message.validate(relayport_core::DEFAULT_MAX_PAYLOAD)?;
        crate::publisher(cfg)?.publish(&message).await?;
    }
    note(&format!("published `{event}` to {ch}"));
    Ok(())
}

//! `relayport publish <channel> <event> <json> [--client]`

use relayport::config::ProviderConfig;
use relayport::{Channel, OutboundMessage, RealtimeError, Result};
use serde_json::Value;

use super::{client, supervise};
use crate::output::note;

pub(super) async fn run(
    cfg: &ProviderConfig,
    ch: Channel,
    event: &str,
    data: Value,
    through_client: bool,
) -> Result<()> {
    if through_client {
        let client = client(cfg)?;
        if !client.capabilities().client_publish_on(ch.kind()) {
            return Err(RealtimeError::Unsupported(format!(
                "{} does not relay client publishes on {} channels such as {ch}: publish without \
                 --client (the backend publisher), or on a private or presence channel",
                client.provider_name(),
                ch.kind().prefix()
            )));
        }
        let work = async {
            // Private and presence channels take client publishes only from subscribers.
            let _held = match ch.kind().requires_auth() {
                true => Some(client.subscribe(ch.clone()).await?),
                false => None,
            };
            client.publish(ch.clone(), event, data).await
        };
        supervise(client.clone(), std::slice::from_ref(&ch), work).await?;
    } else {
        let message = OutboundMessage::new(ch.clone(), event, data);
        message.validate(relayport::DEFAULT_MAX_PAYLOAD)?;
        relayport::publisher(cfg)?.publish(&message).await?;
    }
    note(&format!("published `{event}` to {ch}"));
    Ok(())
}

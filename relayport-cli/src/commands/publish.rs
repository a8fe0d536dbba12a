//! `relayport publish <channel> <event> (<json> | --base64 <bytes>) [--client]`

use relayport::config::ProviderConfig;
use relayport::{Channel, ChannelKind, OutboundMessage, Payload, RealtimeError, Result};

use super::{client, supervise};
use crate::output::note;

pub(super) async fn run(
    cfg: &ProviderConfig,
    ch: Channel,
    event: &str,
    data: Payload,
    through_client: bool,
) -> Result<()> {
    let rest = match (through_client, ch.kind()) {
        // Supabase clients publish to a public channel over REST with the anon key, as
        // realtime-js's `send()` on a channel it has not joined: no WebSocket to open.
        (true, ChannelKind::Public) => relayport::client_publisher(cfg)?,
        _ => None,
    };
    if let Some(publisher) = rest {
        publisher
            .publish(&OutboundMessage::new(ch.clone(), event, data))
            .await?;
    } else if through_client {
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
        // Supabase's publisher checks its own, larger limit (256 KB by default).
        let limit = match cfg {
            ProviderConfig::Supabase(_) => usize::MAX,
            _ => relayport::DEFAULT_MAX_PAYLOAD,
        };
        message.validate(limit)?;
        relayport::publisher(cfg)?.publish(&message).await?;
    }
    note(&format!("published `{event}` to {ch}"));
    Ok(())
}

//! `relayport history <channel>`: the provider's history, or (for providers that replay
//! through a resubscribe, like the self-hosted server) what a resubscribe from the start of
//! the channel's current stream replays.

use relayport_core::{
    AuthRequest, ChannelAuth, EventSink, Position, PresenceUser, ProviderEvent, RealtimeError,
    Recovery, Result, SubscribeOptions,
};

use super::channel;
use crate::cli::output::{json_line, note};
use crate::config::ProviderConfig;

pub(super) async fn run(cfg: &ProviderConfig, name: &str) -> Result<()> {
    let ch = channel(name)?;
    let provider = crate::factory::build_provider(&cfg.client_side(), Some(cfg))?;
    let (sink, mut events) = EventSink::channel();
    let session = provider.connect(sink).await?;
    let outcome = async {
        match provider.history(&ch, &Position::new(0)).await {
            Ok(page) => {
                for m in &page.messages {
                    json_line(m)?;
                }
                if !page.complete {
                    note("older messages are no longer retained");
                }
                return Ok(());
            }
            Err(RealtimeError::Unsupported(_)) if provider.capabilities().history => {}
            Err(e) => return Err(e),
        }
        let auth = if ch.kind().requires_auth() {
            Some(sign(cfg, &session.connection_id, &ch).await?)
        } else {
            None
        };
        let first = SubscribeOptions {
            auth: auth.clone(),
            ..Default::default()
        };
        let baseline = provider.subscribe(&ch, &first).await?.position;
        let Some(baseline) = baseline else {
            return Err(RealtimeError::Unsupported(format!(
                "history of {ch} (the provider reports no position)"
            )));
        };
        provider.unsubscribe(&ch).await?;
        while events.try_recv().is_ok() {}
        let replay = SubscribeOptions {
            auth,
            since: Some(Position {
                epoch: baseline.epoch.clone(),
                sequence: 0,
            }),
            ..Default::default()
        };
        let recovery = provider.subscribe(&ch, &replay).await?.recovery;
        while let Ok((_, event)) = events.try_recv() {
            if let ProviderEvent::Message(m) = event {
                json_line(&m)?;
            }
        }
        match recovery {
            Recovery::Recovered => Ok(()),
            Recovery::Gap if baseline.sequence == 0 => Ok(()),
            Recovery::Gap => Err(RealtimeError::Unsupported(format!(
                "the full history of {ch} (older messages are no longer retained)"
            ))),
            Recovery::NotAttempted => Err(RealtimeError::Unsupported(format!("history of {ch}"))),
        }
    }
    .await;
    let _ = provider.disconnect().await;
    outcome
}

async fn sign(
    cfg: &ProviderConfig,
    socket_id: &str,
    ch: &relayport_core::Channel,
) -> Result<ChannelAuth> {
    let user = (ch.kind() == relayport_core::ChannelKind::Presence).then(|| PresenceUser {
        id: cfg.client_id().unwrap_or("realtime-cli").to_owned(),
        info: serde_json::Value::Null,
    });
    crate::authorizer(cfg)?
        .authorize(&AuthRequest {
            socket_id: socket_id.to_owned(),
            channel: ch.clone(),
            user,
        })
        .await
}

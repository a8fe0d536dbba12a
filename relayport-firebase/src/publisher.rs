//! [`FirebasePublisher`]: publishing from a backend, without a stream.

use async_trait::async_trait;
use relayport_core::{OutboundMessage, Publisher, RealtimeProvider, Result};

use crate::config::FirebaseConfig;
use crate::provider::FirebaseProvider;

/// Publishes over REST exactly as a client does (`POST …/messages.json`, a server push id and
/// timestamp), with the configuration's token; the sender is the configured client id.
#[derive(Debug)]
pub struct FirebasePublisher {
    provider: FirebaseProvider,
}

impl FirebasePublisher {
    /// A publisher for `cfg`.
    pub fn new(cfg: FirebaseConfig) -> Result<Self> {
        Ok(Self {
            provider: FirebaseProvider::new(cfg)?,
        })
    }
}

#[async_trait]
impl Publisher for FirebasePublisher {
    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        self.provider.publish(message).await
    }
}

//! The heartbeat: one ping per interval, off the loop, so it never waits behind another call;
//! an unanswered or failed one means the link is broken.

use std::time::Duration;

use tokio::time::{Instant, timeout};

use crate::client::driver::Actor;
use crate::client::ops::{Done, Pending};
use crate::error::Result;
use crate::provider::CloseReason;
use crate::state::ClientEvent;

impl Actor {
    fn heartbeat_interval(&self) -> Duration {
        self.session
            .as_ref()
            .and_then(|s| s.heartbeat_interval)
            .unwrap_or(self.cfg.heartbeat_interval)
    }

    pub(super) fn start_ping(&mut self) {
        if self.pinging {
            return;
        }
        self.pinging = true;
        self.next_ping = None;
        let limit = self.cfg.heartbeat_timeout;
        let provider = self.provider.clone();
        self.spawn_call(Pending::Ping, async move {
            Done::Ping(timeout(limit, provider.ping()).await.ok())
        });
    }

    pub(super) fn on_ping_done(&mut self, result: Option<Result<Duration>>) {
        self.pinging = false;
        match result {
            Some(Ok(rtt)) => {
                self.latency_tx.send_replace(Some(rtt));
                if rtt > self.cfg.degraded_threshold {
                    self.emit(ClientEvent::ConnectionDegraded { rtt });
                }
                self.next_ping = Some(Instant::now() + self.heartbeat_interval());
            }
            None => {
                let limit = self.cfg.heartbeat_timeout;
                self.link_lost(CloseReason::retry(
                    None,
                    format!("heartbeat timeout: no answer within {limit:?}"),
                ));
            }
            Some(Err(e)) => {
                self.link_lost(CloseReason::retry(None, format!("heartbeat failed: {e}")));
            }
        }
    }
}

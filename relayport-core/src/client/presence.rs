//! Presence: the membership the application asked for (kept across reconnects and entered
//! again after each), enter/update/leave calls off the loop, and member lists.

use serde_json::Value;

use crate::channel::Channel;
use crate::client::command::Reply;
use crate::client::driver::Actor;
use crate::client::ops::{Done, Pending, breaks_link, timed};
use crate::error::{ErrorKind, RealtimeError, Result};
use crate::presence::PresenceMember;
use crate::provider::CloseReason;

impl Actor {
    pub(super) fn on_presence_enter(&mut self, channel: Channel, data: Value, reply: Reply) {
        if let Err(e) = self.check_channel(&channel, true) {
            let _ = reply.send(Err(e));
            return;
        }
        let entry = self.entry_for(&channel);
        entry.presence = Some(data.clone());
        if !entry.established {
            // Entered as part of bringing the channel up.
            entry.waiters.push(reply);
            self.bring_up(&channel);
            return;
        }
        self.start_presence_call(&channel, data, Some(reply), false);
    }

    pub(super) fn on_presence_update(&mut self, channel: Channel, data: Value, reply: Reply) {
        if let Err(e) = self.check_channel(&channel, true) {
            let _ = reply.send(Err(e));
            return;
        }
        let entered = self
            .channels
            .get(&channel)
            .is_some_and(|e| e.presence.is_some());
        if !entered {
            return self.on_presence_enter(channel, data, reply);
        }
        let entry = self.entry_for(&channel);
        entry.presence = Some(data.clone());
        if !entry.established || self.session.is_none() {
            // Restored with this data on the next connection (or once the channel is up).
            let _ = reply.send(Ok(()));
            return;
        }
        if !self.caps.presence_update {
            let _ = reply.send(Err(RealtimeError::Unsupported("presence update".into())));
            return;
        }
        self.start_presence_call(&channel, data, Some(reply), true);
    }

    /// Enters (or, with `update`, changes the data of) this client's membership off the loop.
    pub(super) fn start_presence_call(
        &mut self,
        channel: &Channel,
        data: Value,
        reply: Option<Reply>,
        update: bool,
    ) {
        let provider = self.provider.clone();
        let limit = self.cfg.request_timeout;
        let c = channel.clone();
        let pending = Pending::Presence {
            reply,
            release: None,
        };
        self.spawn_call(pending, async move {
            Done::Presence(if update {
                timed("presence update", limit, provider.presence_update(&c, data)).await
            } else {
                timed("presence enter", limit, provider.presence_enter(&c, data)).await
            })
        });
    }

    pub(super) fn on_presence_leave(&mut self, channel: Channel, reply: Reply) {
        let Some(entry) = self.channels.get_mut(&channel) else {
            let _ = reply.send(Ok(()));
            return;
        };
        if entry.presence.take().is_none() {
            let _ = reply.send(Ok(()));
            return;
        }
        if !entry.established || self.session.is_none() {
            let _ = reply.send(Ok(()));
            self.release_if_unused(&channel, None);
            return;
        }
        let provider = self.provider.clone();
        let limit = self.cfg.request_timeout;
        let c = channel.clone();
        let pending = Pending::Presence {
            reply: Some(reply),
            release: Some(channel),
        };
        self.spawn_call(pending, async move {
            Done::Presence(timed("presence leave", limit, provider.presence_leave(&c)).await)
        });
    }

    pub(super) fn on_presence_done(
        &mut self,
        reply: Option<Reply>,
        release: Option<Channel>,
        result: Result<()>,
    ) {
        match result {
            Err(e) if breaks_link(&e) => {
                // The membership is recorded and is restored on the next connection.
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
                self.link_lost(CloseReason::retry(None, format!("presence failed: {e}")));
            }
            result => {
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
        }
        if let Some(channel) = release {
            self.release_if_unused(&channel, None);
        }
    }

    pub(super) fn on_members(&mut self, channel: Channel, reply: Reply<Vec<PresenceMember>>) {
        if let Err(e) = self.check_channel(&channel, true) {
            let _ = reply.send(Err(e));
            return;
        }
        let established = self.channels.get(&channel).is_some_and(|e| e.established);
        if !established || self.session.is_none() {
            let _ = reply.send(Ok(self.roster(&channel)));
            return;
        }
        let provider = self.provider.clone();
        let limit = self.cfg.request_timeout;
        let c = channel.clone();
        self.spawn_call(Pending::Members { channel, reply }, async move {
            Done::Members(timed("presence members", limit, provider.presence_members(&c)).await)
        });
    }

    pub(super) fn on_members_done(
        &mut self,
        channel: Channel,
        reply: Reply<Vec<PresenceMember>>,
        result: Result<Vec<PresenceMember>>,
    ) {
        let _ = reply.send(match result {
            Ok(members) => Ok(members),
            Err(e) if e.kind() == ErrorKind::Unsupported => Ok(self.roster(&channel)),
            Err(e) => Err(e),
        });
    }
}

//! What the provider reports: messages to every matching listener exactly once, presence
//! changes folded into each channel's roster, and the link's own events.

use tokio::sync::mpsc;
use tracing::debug;

use crate::channel::Channel;
use crate::client::command::ListenerSink;
use crate::client::driver::Actor;
use crate::message::Message;
use crate::presence::{PresenceChange, PresenceEvent};
use crate::provider::ProviderEvent;
use crate::state::ClientEvent;

impl Actor {
    pub(super) fn on_provider_event(&mut self, generation: u64, event: ProviderEvent) {
        let current = generation == self.generation;
        match event {
            // What arrived is delivered even from a link that has since closed: de-duplication
            // by position keeps it exactly-once.
            ProviderEvent::Message(m) => match self.recovering.get_mut(&m.channel) {
                // Held back until the channel's missed messages are delivered.
                Some(held) => held.push(m),
                None => self.deliver(m),
            },
            ProviderEvent::Presence { channel, change } if current => {
                self.on_presence(channel, change)
            }
            ProviderEvent::SubscriptionLost { channel, error } if current => {
                self.fail_channel(&channel, error)
            }
            ProviderEvent::ContinuityLost { channel, reason } if current => {
                self.on_continuity_lost(&channel, reason)
            }
            ProviderEvent::Error { channel, error } => {
                self.emit(ClientEvent::Error { channel, error })
            }
            ProviderEvent::Closed(reason) if current => self.on_closed(reason),
            stale => debug!(?stale, "stale provider event ignored"),
        }
    }

    /// Delivers a message to every listener whose channel or pattern matches, once: a message
    /// at or before the last position seen on its channel is a duplicate and is skipped.
    pub(super) fn deliver(&mut self, message: Message) {
        if self.is_unwanted_echo(&message) {
            debug!(channel = %message.channel, "own publish not delivered (echo off)");
            return;
        }
        if let Some(pos) = &message.position {
            match self.positions.get_mut(&message.channel) {
                Some(last) if pos.is_at_or_before(last) => {
                    debug!(channel = %message.channel, seq = pos.sequence, "duplicate skipped");
                    return;
                }
                // The common case allocates nothing: same epoch, a later sequence.
                Some(last) if last.epoch == pos.epoch => last.sequence = pos.sequence,
                Some(last) => *last = pos.clone(),
                None => {
                    self.positions.insert(message.channel.clone(), pos.clone());
                }
            }
        }
        let wanted = self
            .channels
            .iter()
            .filter(|(pattern, _)| pattern.matches(&message.channel))
            .flat_map(|(_, e)| &e.listeners)
            .filter(|l| matches!(l.sink, ListenerSink::Messages(_)))
            .count();
        if wanted == 0 {
            debug!(channel = %message.channel, "message for a channel nobody listens to");
            return;
        }
        // Every listener but the last gets a copy; the last gets the message itself.
        let mut message = Some(message);
        let mut handed = 0;
        let mut lagged = Vec::new();
        'channels: for (pattern, entry) in &mut self.channels {
            let Some(m) = &message else { break };
            if !pattern.matches(&m.channel) {
                continue;
            }
            for l in &mut entry.listeners {
                let ListenerSink::Messages(tx) = &l.sink else {
                    continue;
                };
                handed += 1;
                let item = if handed == wanted {
                    message.take()
                } else {
                    message.clone()
                };
                let Some(item) = item else {
                    break 'channels;
                };
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(item) {
                    l.missed += 1;
                    lagged.push((pattern.clone(), l.missed));
                }
            }
        }
        for (channel, missed) in lagged {
            self.emit(ClientEvent::SubscriberLagged { channel, missed });
        }
    }

    fn on_presence(&mut self, channel: Channel, change: PresenceChange) {
        let Some(entry) = self.channels.get_mut(&channel) else {
            return;
        };
        let mut lagged = Vec::new();
        let complete = matches!(change, PresenceChange::Snapshot(_));
        for (action, member) in entry.roster.apply(change) {
            let event = PresenceEvent {
                channel: channel.clone(),
                action,
                member,
            };
            for l in &mut entry.listeners {
                if let ListenerSink::Presence(tx) = &l.sink
                    && let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(event.clone())
                {
                    l.missed += 1;
                    lagged.push(l.missed);
                }
            }
        }
        if complete {
            entry.synced = true;
            let members = entry.roster.members();
            for w in entry.here.drain(..) {
                let _ = w.send(Ok(members.clone()));
            }
        }
        for missed in lagged {
            self.emit(ClientEvent::SubscriberLagged {
                channel: channel.clone(),
                missed,
            });
        }
    }
}

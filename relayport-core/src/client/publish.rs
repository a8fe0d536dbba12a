//! Publishing: the offline queue, the per-channel throttle, and one publish in flight per
//! channel (so each channel stays FIFO) while different channels publish together. Typing
//! signals share the throttle but are never queued.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use serde_json::json;
use tokio::time::Instant;
use tracing::debug;

use crate::channel::Channel;
use crate::client::channels::ChannelEntry;
use crate::client::command::PendingPublish;
use crate::client::driver::Actor;
use crate::client::ops::{Done, Pending, breaks_link, timed};
use crate::error::{RealtimeError, Result};
use crate::message::OutboundMessage;
use crate::provider::CloseReason;
use crate::state::ClientEvent;

/// A channel's next publish waits while one is in flight on it (FIFO per channel), and while
/// the channel itself is being subscribed (a provider may only relay publishes on a channel the
/// connection has joined, as Pusher's client events).
fn is_blocked(
    publishing: &HashSet<Channel>,
    channels: &HashMap<Channel, ChannelEntry>,
    channel: &Channel,
) -> bool {
    publishing.contains(channel) || channels.get(channel).is_some_and(|e| e.establishing)
}

impl Actor {
    pub(super) fn on_publish(&mut self, publish: PendingPublish) {
        let checked = match self.terminal_error() {
            Some(e) => Err(e),
            None if !self.caps.client_publish => Err(RealtimeError::Unsupported(
                "publishing from a client".into(),
            )),

            None => publish
                .message
                .validate(self.max_payload.load(Ordering::Relaxed)),
        };
        if let Err(e) = checked {
            match publish.reply {
                Some(reply) => {
                    let _ = reply.send(Err(e));
                }
                None => self.emit(ClientEvent::Error {
                    channel: Some(publish.message.channel),
                    error: e,
                }),
            }
            return;
        }
        self.enqueue(publish);
        if self.session.is_some() {
            self.flush_outbox();
        } else {
            self.maybe_lazy_connect();
        }
    }

    fn enqueue(&mut self, publish: PendingPublish) {
        if let Some(evicted) = self.outbox.push(publish) {
            self.evicted_total += 1;
            let channel = evicted.message.channel.clone();
            if let Some(reply) = evicted.reply {
                let _ = reply.send(Err(RealtimeError::Evicted {
                    capacity: self.outbox.capacity(),
                }));
            }
            self.emit(ClientEvent::MessagesDropped {
                channel,
                count: 1,
                total: self.evicted_total,
            });
        }
    }

    /// Whether `channel`'s next publish must wait for something other than the throttle.
    pub(super) fn publish_blocked(&self, channel: &Channel) -> bool {
        is_blocked(&self.publishing, &self.channels, channel)
    }

    /// Starts every queued publish whose channel is free and whose rate allows it now, in order.
    pub(super) fn flush_outbox(&mut self) {
        while self.session.is_some() {
            let now = Instant::now();
            let (throttle, publishing, channels) =
                (&self.throttle, &self.publishing, &self.channels);
            let Some(ticket) = self.outbox.pop_ready(|ch| {
                !is_blocked(publishing, channels, ch) && throttle.ready_at(ch, now) <= now
            }) else {
                break;
            };
            let channel = ticket.1.message.channel.clone();
            self.throttle.record(&channel, now);
            self.publishing.insert(channel);
            let provider = self.provider.clone();
            let limit = self.cfg.request_timeout;
            let message = ticket.1.message.clone();
            self.spawn_call(Pending::Publish(ticket), async move {
                Done::Publish(timed("publish", limit, provider.publish(&message)).await)
            });
        }
    }

    pub(super) fn on_publish_done(&mut self, ticket: (u64, PendingPublish), result: Result<()>) {
        self.publishing.remove(&ticket.1.message.channel);
        match result {
            Ok(()) => {
                self.loop_back(&ticket.1.message);
                if let Some(reply) = ticket.1.reply {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) if breaks_link(&e) => {
                self.outbox.restore(ticket);
                self.link_lost(CloseReason::retry(None, format!("publish failed: {e}")));
                return;
            }
            Err(e) => match ticket.1.reply {
                Some(reply) => {
                    let _ = reply.send(Err(e));
                }
                None => self.emit(ClientEvent::Error {
                    channel: Some(ticket.1.message.channel),
                    error: e,
                }),
            },
        }
        self.flush_outbox();
    }

    /// Sends a typing signal now if the channel's rate allows it (skipped otherwise).
    pub(super) fn send_typing(&mut self, channel: &Channel, typing: bool) {
        if self.session.is_none() {
            return;
        }
        let now = Instant::now();
        if self.throttle.ready_at(channel, now) > now {
            debug!(%channel, "typing signal skipped: publish rate reached");
            return;
        }
        self.throttle.record(channel, now);
        let message = OutboundMessage::new(
            channel.clone(),
            self.cfg.typing.event.clone(),
            json!({"typing": typing, "client_id": self.cfg.client_id}),
        );
        let provider = self.provider.clone();
        let limit = self.cfg.request_timeout;
        self.spawn_call(Pending::Typing(channel.clone()), async move {
            Done::Publish(timed("typing", limit, provider.publish(&message)).await)
        });
    }

    pub(super) fn on_typing_done(&mut self, channel: Channel, result: Result<()>) {
        match result {
            Ok(()) => {}
            Err(e) if breaks_link(&e) => {
                self.link_lost(CloseReason::retry(None, format!("publish failed: {e}")))
            }
            Err(e) => self.emit(ClientEvent::Error {
                channel: Some(channel),
                error: e,
            }),
        }
    }
}

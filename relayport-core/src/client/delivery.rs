//! What the provider reports: messages to every matching listener exactly once, presence
//! changes folded into each channel's roster, and the link's own events.
//!
//! Messages take one of two roads, and both end in [`Table::deliver`], the one function every
//! delivered message passes through:
//!
//! - **The fast path.** A message a provider hands its [`EventSink`](crate::EventSink) is
//!   delivered right there, on the provider's reader task, into the subscribers' queues: no
//!   hop through the actor's task. The [`Router`] that does it is shared with the actor, which
//!   keeps its listener table up to date (subscribe, unsubscribe, a refused channel, close).
//! - **The queue.** Every other event (presence, a closed link, lost continuity, …) goes to the
//!   actor's queue. While any queued event is not yet handled, messages queue behind it, so
//!   that they never overtake it: a message after a `ContinuityLost` is held back with the
//!   recovery the actor starts for it, a message after `Closed` is seen after the link went.
//!
//! The guarantees live in the [`Table`], under one lock: de-duplication by position (each
//! channel's last position is kept once, here), messages held back while their channel
//! recovers, FIFO per channel (one lock, one order), wildcard listeners, and
//! [`ClientEvent::SubscriberLagged`] for a full subscriber queue.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{broadcast, mpsc};
use tracing::debug;

use crate::channel::Channel;
use crate::client::driver::Actor;
use crate::client::echo::EchoFilter;
use crate::client::subscription::{MessageTx, Pushed};
use crate::message::{Message, Position};
use crate::presence::{PresenceChange, PresenceEvent};
use crate::provider::ProviderEvent;
use crate::state::ClientEvent;

/// The delivery state shared by the actor and every [`EventSink`](crate::EventSink) it hands
/// out: the listener table, each channel's last position and held-back messages.
pub(crate) struct Router {
    table: Mutex<Table>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Router")
    }
}

impl Router {
    /// An empty table; lagging subscribers are reported on `events`; `echo` drops this
    /// client's own publishes where it asked for no echo.
    pub(crate) fn new(events: broadcast::Sender<ClientEvent>, echo: EchoFilter) -> Self {
        Self {
            table: Mutex::new(Table {
                echo,
                queued: 0,
                slots: HashMap::default(),
                patterns: Vec::new(),
                matched: Vec::new(),
                events,
            }),
        }
    }

    /// The table, locked. Held only for short, synchronous steps (never across an await).
    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        // Nothing in the table is left half-updated by a panic that matters more than
        // carrying on (a listener list, a position).
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What [`EventSink::emit`](crate::EventSink::emit) does: a message is delivered at once
    /// when nothing is queued before it; anything else is queued for the actor. Returns
    /// `false` when the actor is gone.
    pub(crate) fn route(
        &self,
        queue: &mpsc::UnboundedSender<(u64, ProviderEvent)>,
        generation: u64,
        event: ProviderEvent,
    ) -> bool {
        let mut table = self.table();
        let event = match event {
            ProviderEvent::Message(message) if table.queued == 0 => {
                if queue.is_closed() {
                    return false;
                }
                table.deliver(message, true);
                return true;
            }
            other => other,
        };
        // Counted under the lock, so that no message can slip past an event being queued.
        match queue.send((generation, event)) {
            Ok(()) => {
                table.queued += 1;
                true
            }
            Err(_) => false,
        }
    }
}

/// One message listener: a [`Subscription`](crate::Subscription)'s queue.
struct Listener {
    id: u64,
    tx: MessageTx,
    /// Messages it missed because its queue was full.
    missed: u64,
}

/// What is known about one concrete channel (or a non-wildcard subscription).
#[derive(Default)]
struct Slot {
    /// The last position delivered: anything at or before it is a duplicate.
    position: Option<Position>,
    /// `Some` while the channel's missed messages are being fetched: live messages wait here,
    /// so that the older ones are delivered first.
    held: Option<Vec<Message>>,
    /// The subscriptions on exactly this channel.
    listeners: Vec<Listener>,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.position.is_none() && self.held.is_none() && self.listeners.is_empty()
    }
}

/// The delivery state; see the [module docs](self).
pub(crate) struct Table {
    /// Own publishes not to deliver (echo off on a server that always echoes).
    pub(crate) echo: EchoFilter,
    /// Events in the actor's queue and not yet handled: messages take the fast path only when
    /// this is zero.
    queued: usize,
    /// Keyed with FxHash, not SipHash: a lookup per delivered message, and the keys are only
    /// channels this client listens to (a message on any other channel gets no slot), so no
    /// server can choose colliding keys to fill it.
    slots: HashMap<Channel, Slot, rustc_hash::FxBuildHasher>,
    /// Wildcard subscriptions, by pattern.
    patterns: Vec<(Channel, Vec<Listener>)>,
    /// Scratch: the patterns matching the message being delivered (kept to reuse its memory).
    matched: Vec<usize>,
    events: broadcast::Sender<ClientEvent>,
}

impl Table {
    /// The actor handled a queued event other than a message.
    pub(crate) fn handled(&mut self) {
        self.queued = self.queued.saturating_sub(1);
    }

    /// The actor took a queued message: delivered (or held back) and counted as handled.
    pub(crate) fn handled_message(&mut self, message: Message) {
        self.deliver(message, true);
        self.handled();
    }

    /// Delivers a message to every listener whose channel or pattern matches, once: a message
    /// at or before the last position seen on its channel is a duplicate and is skipped. A
    /// `live` message (one from the link, not one the runtime fetched or released itself) is
    /// held back instead while its channel recovers.
    ///
    /// Every message the application receives passes through here (the fast path, queued
    /// messages, recovered history and released held-back messages alike): a filter on what
    /// is delivered belongs here and nowhere else.
    pub(crate) fn deliver(&mut self, message: Message, live: bool) {
        if self.echo.is_unwanted(&message) {
            debug!(channel = %message.channel, "own publish not delivered (echo off)");
            return;
        }
        let Table {
            slots,
            patterns,
            matched,
            events,
            ..
        } = self;
        matched.clear();
        for (i, (pattern, listeners)) in patterns.iter().enumerate() {
            if !listeners.is_empty() && pattern.matches(&message.channel) {
                matched.push(i);
            }
        }
        let mut slot = match slots.get_mut(&message.channel) {
            Some(slot) => Some(slot),
            // A channel reached through a wildcard keeps its own position from its first
            // message. One nobody listens to gets no slot: a server sending messages on ever
            // new channels must not grow the table.
            None if message.position.is_some() && !matched.is_empty() => {
                Some(slots.entry(message.channel.clone()).or_default())
            }
            None => None,
        };
        if live && let Some(held) = slot.as_mut().and_then(|s| s.held.as_mut()) {
            held.push(message);
            return;
        }
        if let Some(pos) = &message.position
            && let Some(slot) = slot.as_deref_mut()
        {
            match &mut slot.position {
                Some(last) if pos.is_at_or_before(last) => {
                    debug!(channel = %message.channel, seq = pos.sequence, "duplicate skipped");
                    return;
                }
                // The common case allocates nothing: same epoch, a later sequence.
                Some(last) if last.epoch == pos.epoch => last.sequence = pos.sequence,
                last => *last = Some(pos.clone()),
            }
        }
        let exact = slot.map_or(&mut [][..], |s| &mut s.listeners[..]);
        let wanted = exact.len() + matched.iter().map(|&i| patterns[i].1.len()).sum::<usize>();
        if wanted == 0 {
            debug!(channel = %message.channel, "message for a channel nobody listens to");
            return;
        }
        // Every listener but the last gets a copy; the last gets the message itself.
        let mut hand = Handout {
            message: Some(message),
            left: wanted,
            events,
        };
        for l in exact {
            hand.give(l, None);
        }
        for &i in matched.iter() {
            let (pattern, listeners) = &mut patterns[i];
            for l in listeners {
                hand.give(l, Some(pattern));
            }
        }
    }

    /// Adds a subscription's queue for `channel` (a channel or a wildcard pattern).
    pub(crate) fn add_listener(&mut self, channel: &Channel, id: u64, tx: MessageTx) {
        let listener = Listener { id, tx, missed: 0 };
        if channel.is_wildcard() {
            match self.patterns.iter_mut().find(|(p, _)| p == channel) {
                Some((_, listeners)) => listeners.push(listener),
                None => self.patterns.push((channel.clone(), vec![listener])),
            }
        } else {
            self.slots
                .entry(channel.clone())
                .or_default()
                .listeners
                .push(listener);
        }
    }

    /// Removes subscription `id` of `channel`; its stream ends once it has read what it got.
    pub(crate) fn remove_listener(&mut self, channel: &Channel, id: u64) {
        if let Some((_, listeners)) = self.patterns.iter_mut().find(|(p, _)| p == channel) {
            listeners.retain(|l| l.id != id);
        }
        if let Some(slot) = self.slots.get_mut(channel) {
            slot.listeners.retain(|l| l.id != id);
        }
    }

    /// Whether any subscription listens on `channel` (as named, not through a pattern).
    pub(crate) fn has_listeners(&self, channel: &Channel) -> bool {
        self.slots
            .get(channel)
            .is_some_and(|s| !s.listeners.is_empty())
            || self
                .patterns
                .iter()
                .any(|(p, l)| p == channel && !l.is_empty())
    }

    /// Forgets `channel`: its subscriptions (their streams end), its position and anything
    /// held back for it.
    pub(crate) fn forget(&mut self, channel: &Channel) {
        self.slots.remove(channel);
        self.patterns.retain(|(p, _)| p != channel);
    }

    /// Forgets everything (the client closed): every stream ends.
    pub(crate) fn clear(&mut self) {
        self.slots.clear();
        self.patterns.clear();
    }

    /// The last position delivered on `channel`.
    pub(crate) fn position(&self, channel: &Channel) -> Option<Position> {
        self.slots.get(channel).and_then(|s| s.position.clone())
    }

    /// Whether anything with a position was delivered on `channel`.
    pub(crate) fn has_position(&self, channel: &Channel) -> bool {
        self.slots
            .get(channel)
            .is_some_and(|s| s.position.is_some())
    }

    /// Sets the position from which `channel` continues (a baseline or a resync).
    pub(crate) fn set_position(&mut self, channel: &Channel, position: Position) {
        self.slots.entry(channel.clone()).or_default().position = Some(position);
    }

    /// Starts holding `channel`'s live messages back (its recovery begins).
    pub(crate) fn hold(&mut self, channel: &Channel) {
        let slot = self.slots.entry(channel.clone()).or_default();
        if slot.held.is_none() {
            slot.held = Some(Vec::new());
        }
    }

    /// Whether `channel`'s live messages are being held back.
    pub(crate) fn is_holding(&self, channel: &Channel) -> bool {
        self.slots.get(channel).is_some_and(|s| s.held.is_some())
    }

    /// Stops holding `channel`'s messages back and returns them, oldest first.
    pub(crate) fn release(&mut self, channel: &Channel) -> Vec<Message> {
        let Some(slot) = self.slots.get_mut(channel) else {
            return Vec::new();
        };
        let held = slot.held.take().unwrap_or_default();
        if slot.is_empty() {
            self.slots.remove(channel);
        }
        held
    }

    /// Drops every held-back message (the link is gone: the next resubscribe recovers them
    /// from the last position delivered).
    pub(crate) fn drop_held(&mut self) {
        self.slots.retain(|_, s| {
            s.held = None;
            !s.is_empty()
        });
    }
}

/// Hands one message to its listeners: a copy to each but the last, which gets the message.
struct Handout<'a> {
    message: Option<Message>,
    left: usize,
    events: &'a broadcast::Sender<ClientEvent>,
}

impl Handout<'_> {
    /// Gives `l` its copy; `pattern` is the wildcard it subscribed with, if any.
    fn give(&mut self, l: &mut Listener, pattern: Option<&Channel>) {
        self.left = self.left.saturating_sub(1);
        let item = if self.left == 0 {
            self.message.take()
        } else {
            self.message.clone()
        };
        let Some(item) = item else { return };
        if let Pushed::Full(item) = l.tx.try_send(item) {
            l.missed += 1;
            // Never dropped silently: the application learns which subscription missed how many.
            let channel = pattern.cloned().unwrap_or(item.channel);
            let _ = self.events.send(ClientEvent::SubscriberLagged {
                channel,
                missed: l.missed,
            });
        }
    }
}

impl Actor {
    /// Handles one event from the queue (everything but the fast path's messages).
    pub(super) fn on_provider_event(&mut self, generation: u64, event: ProviderEvent) {
        let current = generation == self.generation;
        match event {
            // What arrived is delivered even from a link that has since closed: de-duplication
            // by position keeps it exactly-once.
            ProviderEvent::Message(m) => return self.router.table().handled_message(m),
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
        // Only now may messages behind it take the fast path again.
        self.router.table().handled();
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
                if let Err(mpsc::error::TrySendError::Full(_)) = l.tx.try_send(event.clone()) {
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

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use serde_json::json;

    use super::*;
    use crate::client::subscription::{MessageRx, queue};

    fn ch(name: &str) -> Channel {
        Channel::parse(name).unwrap()
    }

    fn msg(channel: &str, seq: u64) -> Message {
        Message::new(ch(channel), "e", json!(seq)).with_position(Position::new(seq))
    }

    fn seqs(rx: &mut MessageRx) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(Some(m)) = rx.recv().now_or_never() {
            out.push(m.position.map_or(0, |p| p.sequence));
        }
        out
    }

    struct Rig {
        router: Router,
        queue: mpsc::UnboundedSender<(u64, ProviderEvent)>,
        queued: mpsc::UnboundedReceiver<(u64, ProviderEvent)>,
        events: broadcast::Receiver<ClientEvent>,
    }

    #[test]
    fn messages_on_channels_nobody_listens_to_leave_nothing_behind() {
        let r = rig();
        let (tx, mut rx) = queue(8);
        r.router.table().add_listener(&ch("feed.*"), 1, tx);
        for i in 0..1000 {
            assert!(r.router.route(
                &r.queue,
                0,
                ProviderEvent::Message(msg(&format!("x{i}"), 1))
            ));
        }
        assert_eq!(
            r.router.table().slots.len(),
            0,
            "no slot for unheard channels"
        );
        // A channel heard through the wildcard keeps its position (duplicates skipped).
        for seq in [1, 2, 2, 3] {
            r.router
                .route(&r.queue, 0, ProviderEvent::Message(msg("feed.a", seq)));
        }
        assert_eq!(seqs(&mut rx), [1, 2, 3]);
        assert_eq!(r.router.table().slots.len(), 1);
    }

    fn rig() -> Rig {
        let (events_tx, events) = broadcast::channel(16);
        let (queue, queued) = mpsc::unbounded_channel();
        Rig {
            router: Router::new(events_tx, EchoFilter::default()),
            queue,
            queued,
            events,
        }
    }

    impl Rig {
        fn listen(&self, channel: &str, id: u64, capacity: usize) -> MessageRx {
            let (tx, rx) = queue(capacity);
            self.router.table().add_listener(&ch(channel), id, tx);
            rx
        }

        fn route(&self, event: ProviderEvent) -> bool {
            self.router.route(&self.queue, 1, event)
        }
    }

    #[test]
    fn the_fast_path_delivers_at_once_and_skips_duplicate_positions() {
        let mut rig = rig();
        let mut rx = rig.listen("news", 1, 16);
        for seq in [1, 2, 2, 1, 3] {
            assert!(rig.route(ProviderEvent::Message(msg("news", seq))));
        }
        assert_eq!(seqs(&mut rx), [1, 2, 3], "duplicates skipped, in order");
        assert!(
            rig.queued.try_recv().is_err(),
            "nothing went through the queue"
        );
        assert_eq!(
            rig.router.table().position(&ch("news")),
            Some(Position::new(3))
        );
    }

    #[test]
    fn a_live_message_is_held_back_while_its_channel_recovers() {
        let rig = rig();
        let mut rx = rig.listen("news", 1, 16);
        rig.route(ProviderEvent::Message(msg("news", 1)));
        rig.router.table().hold(&ch("news"));
        // 4 and 5 arrive live while 2 and 3 are being fetched.
        rig.route(ProviderEvent::Message(msg("news", 4)));
        rig.route(ProviderEvent::Message(msg("news", 5)));
        assert_eq!(seqs(&mut rx), [1], "held back, not delivered");
        assert!(rig.router.table().is_holding(&ch("news")));
        // The recovery completes: the missed ones first, then those held back.
        let mut table = rig.router.table();
        let held = table.release(&ch("news"));
        for m in [msg("news", 2), msg("news", 3)] {
            table.deliver(m, false);
        }
        for m in held {
            table.deliver(m, false);
        }
        drop(table);
        assert_eq!(seqs(&mut rx), [2, 3, 4, 5]);
        assert!(!rig.router.table().is_holding(&ch("news")));
    }

    #[test]
    fn a_message_queues_behind_an_event_the_actor_has_not_handled() {
        let mut rig = rig();
        let mut rx = rig.listen("news", 1, 16);
        let lost = ProviderEvent::ContinuityLost {
            channel: ch("news"),
            reason: crate::RealtimeError::Protocol("gap".into()),
        };
        rig.route(lost.clone());
        rig.route(ProviderEvent::Message(msg("news", 7)));
        assert!(
            seqs(&mut rx).is_empty(),
            "must not overtake the queued event"
        );
        assert_eq!(rig.queued.try_recv().unwrap(), (1, lost));
        rig.router.table().handled();
        let (_, queued) = rig.queued.try_recv().unwrap();
        let ProviderEvent::Message(m) = queued else {
            panic!("expected the message, got {queued:?}");
        };
        rig.router.table().handled_message(m);
        assert_eq!(seqs(&mut rx), [7]);
        // The queue is empty again: the fast path resumes.
        rig.route(ProviderEvent::Message(msg("news", 8)));
        assert_eq!(seqs(&mut rx), [8]);
        assert!(rig.queued.try_recv().is_err());
    }

    #[test]
    fn a_full_subscriber_is_reported_as_lagged() {
        let mut rig = rig();
        let mut slow = rig.listen("news", 1, 1);
        let mut fast = rig.listen("news", 2, 16);
        for seq in 1..=3 {
            rig.route(ProviderEvent::Message(msg("news", seq)));
        }
        assert_eq!(seqs(&mut fast), [1, 2, 3]);
        assert_eq!(seqs(&mut slow), [1]);
        for missed in 1..=2 {
            assert_eq!(
                rig.events.try_recv().unwrap(),
                ClientEvent::SubscriberLagged {
                    channel: ch("news"),
                    missed
                }
            );
        }
        assert!(rig.events.try_recv().is_err());
    }

    #[test]
    fn wildcards_and_exact_listeners_each_get_one_copy() {
        let mut rig = rig();
        let mut exact = rig.listen("agent.7", 1, 16);
        let mut all = rig.listen("agent.*", 2, 1);
        let mut other = rig.listen("other", 3, 16);
        rig.route(ProviderEvent::Message(msg("agent.7", 1)));
        rig.route(ProviderEvent::Message(msg("agent.8", 1)));
        assert_eq!(seqs(&mut exact), [1]);
        assert_eq!(
            seqs(&mut all),
            [1],
            "agent.8 found the pattern's queue full"
        );
        assert!(seqs(&mut other).is_empty());
        // A pattern's lag names the pattern it subscribed with.
        assert_eq!(
            rig.events.try_recv().unwrap(),
            ClientEvent::SubscriberLagged {
                channel: ch("agent.*"),
                missed: 1
            }
        );
        rig.router.table().remove_listener(&ch("agent.*"), 2);
        assert!(!rig.router.table().has_listeners(&ch("agent.*")));
        assert!(rig.router.table().has_listeners(&ch("agent.7")));
        rig.router.table().forget(&ch("agent.7"));
        assert_eq!(exact.recv().now_or_never(), Some(None), "its stream ends");
    }

    #[test]
    fn nothing_is_delivered_once_the_actor_is_gone() {
        let Rig {
            router,
            queue: events_in,
            queued,
            ..
        } = rig();
        let (tx, mut rx) = queue(4);
        router.table().add_listener(&ch("news"), 1, tx);
        drop(queued);
        assert!(!router.route(&events_in, 1, ProviderEvent::Message(msg("news", 1))));
        assert!(seqs(&mut rx).is_empty());
    }
}

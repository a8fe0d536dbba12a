//! Channels: what the application wants, bringing each up on the link (authorize, subscribe,
//! enter, in that order, off the loop), resubscribing every channel together after a
//! reconnect, recovering what a channel missed, and leaving.

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::auth::{AuthRequest, PresenceUser};
use crate::channel::{Channel, ChannelKind};
use crate::client::command::{ListenerSink, Reply};
use crate::client::driver::Actor;
use crate::client::ops::{Done, Pending, Step, breaks_link, timed};
use crate::error::{ErrorKind, RealtimeError, Result};
use crate::message::Position;
use crate::presence::{PresenceEvent, Roster};
use crate::provider::{CloseReason, HistoryPage, Recovery, SubscribeOptions, Subscribed};
use crate::state::ClientEvent;

/// One presence stream of a channel. (Subscriptions live in the shared
/// [`delivery`](super::delivery) table, where the provider's sink reaches them.)
pub(super) struct Listener {
    pub(super) id: u64,
    pub(super) tx: mpsc::Sender<PresenceEvent>,
    pub(super) missed: u64,
}

/// One channel the application wants: its listeners, its presence membership and its state on
/// the current link.
pub(super) struct ChannelEntry {
    pub(super) order: u64,
    /// Its presence streams.
    pub(super) listeners: Vec<Listener>,
    /// The member data to (re-)enter with; `None` when not a member.
    pub(super) presence: Option<Value>,
    pub(super) established: bool,
    /// Being brought up on the current link.
    pub(super) establishing: bool,
    pub(super) ever_established: bool,
    pub(super) roster: Roster,
    pub(super) waiters: Vec<Reply>,
    /// The roster holds a full member list from the provider, received on the current link.
    pub(super) synced: bool,
    /// `PresenceStream::here()` calls waiting for the member list to be complete.
    pub(super) here: Vec<Reply<Vec<crate::PresenceMember>>>,
    /// The provider reported lost continuity while the channel was being brought up (a
    /// resumed link whose re-attach could not resume the channel): recover once it is up.
    pub(super) continuity_lost: bool,
    /// The application's options for this channel (`subscribe_with`), on every subscribe.
    pub(super) options: crate::options::SubscriptionOptions,
}

impl ChannelEntry {
    /// Nothing but its subscriptions (if any) needs it.
    fn idle(&self) -> bool {
        self.listeners.is_empty() && self.presence.is_none() && self.waiters.is_empty()
    }
}

/// A channel's completed bring-up, waiting for its turn in a resubscribe.
pub(super) struct Settled {
    presence: Option<Value>,
    since: Option<Position>,
    result: std::result::Result<Subscribed, (Step, RealtimeError)>,
}

impl Actor {
    /// Common checks before an operation that needs the channel.
    pub(super) fn check_channel(&self, channel: &Channel, presence_op: bool) -> Result<()> {
        if let Some(e) = self.terminal_error() {
            return Err(e);
        }
        if channel.is_wildcard() && !self.caps.wildcards {
            return Err(RealtimeError::Unsupported("wildcard subscriptions".into()));
        }
        if presence_op {
            if channel.kind() != ChannelKind::Presence {
                return Err(RealtimeError::invalid_channel(
                    channel.to_string(),
                    "presence operations need a presence channel (`presence:` prefix)",
                ));
            }
            if !self.caps.presence {
                return Err(RealtimeError::Unsupported("presence".into()));
            }
        }
        Ok(())
    }

    pub(super) fn entry_for(&mut self, channel: &Channel) -> &mut ChannelEntry {
        let order = &mut self.next_order;
        self.channels.entry(channel.clone()).or_insert_with(|| {
            *order += 1;
            ChannelEntry {
                order: *order,
                listeners: Vec::new(),
                presence: None,
                established: false,
                establishing: false,
                ever_established: false,
                roster: Roster::default(),
                waiters: Vec::new(),
                synced: false,
                here: Vec::new(),
                continuity_lost: false,
                options: crate::options::SubscriptionOptions::default(),
            }
        })
    }

    /// Answers with the member list once it is complete: at once when the provider's full list
    /// has arrived on the current link, otherwise when it does.
    pub(super) fn on_presence_here(
        &mut self,
        channel: Channel,
        reply: Reply<Vec<crate::PresenceMember>>,
    ) {
        if let Err(e) = self.check_channel(&channel, true) {
            let _ = reply.send(Err(e));
            return;
        }
        match self.channels.get_mut(&channel) {
            Some(entry) if entry.synced => {
                let _ = reply.send(Ok(entry.roster.members()));
            }
            Some(entry) => entry.here.push(reply),
            None => {
                let _ = reply.send(Err(crate::RealtimeError::Closed(format!(
                    "`{channel}` is no longer subscribed"
                ))));
            }
        }
    }

    /// The last member list known for `channel`.
    pub(super) fn roster(&self, channel: &Channel) -> Vec<crate::PresenceMember> {
        self.channels
            .get(channel)
            .map(|e| e.roster.members())
            .unwrap_or_default()
    }

    pub(super) fn on_listen(
        &mut self,
        channel: Channel,
        id: u64,
        sink: ListenerSink,
        options: Option<crate::options::SubscriptionOptions>,
        reply: Reply,
    ) {
        let presence_op = matches!(sink, ListenerSink::Presence(_));
        if let Err(e) = self.check_channel(&channel, presence_op) {
            let _ = reply.send(Err(e));
            return;
        }
        if let Some(options) = &options
            && let Some(entry) = self.channels.get(&channel)
            && entry.options != *options
        {
            // One wire subscription per channel: its options are the same for every handle.
            let _ = reply.send(Err(RealtimeError::Config(format!(
                "`{channel}` is already subscribed with other options; unsubscribe it first"
            ))));
            return;
        }
        let entry = self.entry_for(&channel);
        if let Some(options) = options {
            entry.options = options;
        }
        match sink {
            ListenerSink::Presence(tx) => {
                // A late listener first learns who is already there, as joins.
                for member in entry.roster.members() {
                    let _ = tx.try_send(PresenceEvent {
                        channel: channel.clone(),
                        action: crate::PresenceAction::Joined,
                        member,
                    });
                }
                entry.listeners.push(Listener { id, tx, missed: 0 });
            }
            ListenerSink::Messages(tx) => self.router.table().add_listener(&channel, id, tx),
        }
        let Some(entry) = self.channels.get_mut(&channel) else {
            return;
        };
        if entry.established {
            let _ = reply.send(Ok(()));
            return;
        }
        entry.waiters.push(reply);
        self.bring_up(&channel);
    }

    /// Brings a wanted channel up if the link is up, or arranges for the link to come up.
    pub(super) fn bring_up(&mut self, channel: &Channel) {
        if self.session.is_some() {
            self.start_establish(channel);
        } else {
            self.maybe_lazy_connect();
        }
    }

    /// Brings every wanted channel up on a new link, all at once; their outcomes are applied
    /// in the order the channels were first asked for.
    pub(super) fn resubscribe_all(&mut self) {
        let mut order: Vec<(u64, Channel)> = self
            .channels
            .iter()
            .map(|(c, e)| (e.order, c.clone()))
            .collect();
        order.sort();
        for (_, channel) in order {
            if self.start_establish(&channel) {
                self.resubscribing.push_back(channel);
            }
        }
    }

    /// Starts authorize → subscribe → enter for one channel off the loop; false when there is
    /// nothing to start (no link, unknown channel, already under way or up).
    fn start_establish(&mut self, channel: &Channel) -> bool {
        let Some(resumed) = self.session.as_ref().map(|s| s.resumed) else {
            return false;
        };
        let Some(entry) = self.channels.get_mut(channel) else {
            return false;
        };
        if entry.establishing || entry.established {
            return false;
        }
        entry.establishing = true;
        entry.continuity_lost = false;
        let presence = entry.presence.clone();
        let extensions = entry.options.clone();
        let since = if entry.ever_established && !resumed {
            self.position(channel)
        } else {
            None
        };
        if since.is_some() {
            // From now until the outcome is applied, live messages wait: one that arrived
            // before the missed ones were fetched would move the position past them, and they
            // would then be skipped as duplicates.
            self.router.table().hold(channel);
        }
        let auth_request = channel
            .kind()
            .requires_auth()
            .then(|| self.auth_request(channel, presence.as_ref()));
        let authorizer = self.authorizer.clone();
        let provider = self.provider.clone();
        let limit = self.cfg.request_timeout;
        let channel = channel.clone();
        let pending = Pending::Establish(channel.clone());
        self.spawn_call(pending, async move {
            let result = async {
                let auth = match auth_request {
                    None => None,
                    Some(request) => {
                        let Some(authorizer) = authorizer else {
                            return Err((
                                Step::Authorize,
                                RealtimeError::Unauthorized(format!(
                                    "`{channel}` needs authorization and no authorizer is configured"
                                )),
                            ));
                        };
                        let auth = timed(
                            Step::Authorize.name(),
                            limit,
                            authorizer.authorize(&request),
                        )
                        .await
                        .map_err(|e| (Step::Authorize, e))?;
                        Some(auth)
                    }
                };
                let options = SubscribeOptions {
                    auth,
                    since: since.clone(),
                    presence_data: presence
                        .clone()
                        .filter(|_| channel.kind() == ChannelKind::Presence),
                    extensions,
                };
                let subscribed = timed(
                    Step::Subscribe.name(),
                    limit,
                    provider.subscribe(&channel, &options),
                )
                .await
                .map_err(|e| (Step::Subscribe, e))?;
                if let Some(data) = presence.clone() {
                    timed(
                        Step::PresenceEnter.name(),
                        limit,
                        provider.presence_enter(&channel, data),
                    )
                    .await
                    .map_err(|e| (Step::PresenceEnter, e))?;
                }
                Ok(subscribed)
            }
            .await;
            Done::Establish {
                channel,
                presence,
                since,
                result,
            }
        });
        true
    }

    fn auth_request(&self, channel: &Channel, presence: Option<&Value>) -> AuthRequest {
        let socket_id = self
            .session
            .as_ref()
            .map(|s| s.connection_id.clone())
            .unwrap_or_default();
        let user = (channel.kind() == ChannelKind::Presence).then(|| PresenceUser {
            id: self
                .cfg
                .client_id
                .clone()
                .unwrap_or_else(|| socket_id.clone()),
            info: presence.cloned().unwrap_or(Value::Null),
        });
        AuthRequest {
            socket_id,
            channel: channel.clone(),
            user,
        }
    }

    pub(super) fn on_establish_done(
        &mut self,
        channel: Channel,
        presence: Option<Value>,
        since: Option<Position>,
        result: std::result::Result<Subscribed, (Step, RealtimeError)>,
    ) {
        if let Some(entry) = self.channels.get_mut(&channel) {
            entry.establishing = false;
        }
        let settled = Settled {
            presence,
            since,
            result,
        };
        if self.resubscribing.contains(&channel) {
            self.settled.insert(channel, settled);
            self.apply_resubscribed_in_order();
        } else {
            self.apply_settled(channel, settled);
        }
        // Publishes that waited for the channel to be joined.
        self.flush_outbox();
    }

    /// Applies the resubscribe outcomes that are next in line.
    fn apply_resubscribed_in_order(&mut self) {
        while let Some(head) = self.resubscribing.front() {
            let Some(settled) = self.settled.remove(head) else {
                return;
            };
            let Some(channel) = self.resubscribing.pop_front() else {
                return;
            };
            self.apply_settled(channel, settled);
            if self.session.is_none() {
                return;
            }
        }
    }

    fn apply_settled(&mut self, channel: Channel, settled: Settled) {
        let recovering = settled.since.is_some();
        self.apply_settled_inner(&channel, settled);
        // The live messages held back since the resubscribe began: delivered after what it
        // recovered, unless a history fetch now holds them (it releases them itself). When
        // the channel failed or the link went, they are dropped with the slot; the next
        // resubscribe fetches them again from the last position delivered.
        if recovering && self.session.is_some() && !self.fetching_history(&channel) {
            let router = self.router.clone();
            let mut table = router.table();
            for m in table.release(&channel) {
                table.deliver(m, false);
            }
        }
    }

    /// Whether a history fetch for `channel` is in flight.
    fn fetching_history(&self, channel: &Channel) -> bool {
        self.pending
            .values()
            .any(|p| matches!(p, Pending::History { channel: c, .. } if c == channel))
    }

    fn apply_settled_inner(&mut self, channel: &Channel, settled: Settled) {
        let channel = channel.clone();
        let subscribed = match settled.result {
            Ok(s) => s,
            // The auth endpoint is unreachable: treat it like the link (retry later).
            Err((Step::Authorize, e)) if e.kind() == ErrorKind::Connection => {
                self.link_lost(CloseReason::retry(None, e.to_string()));
                return;
            }
            Err((step, e)) if step != Step::Authorize && breaks_link(&e) => {
                self.link_lost(CloseReason::retry(
                    None,
                    format!("{} failed: {e}", step.name()),
                ));
                return;
            }
            Err((_, e)) => return self.fail_channel(&channel, e),
        };
        let Some(resumed) = self.session.as_ref().map(|s| s.resumed) else {
            return;
        };
        let Some(entry) = self.channels.get_mut(&channel) else {
            // Nobody wants it any more: leave it again.
            self.start_unsubscribe(&channel, None);
            return;
        };
        let again = entry.ever_established;
        let lost = std::mem::take(&mut entry.continuity_lost);
        entry.established = true;
        entry.ever_established = true;
        for w in entry.waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
        // Membership changed while the subscribe was in flight: catch up.
        let changed = entry
            .presence
            .clone()
            .filter(|p| Some(p) != settled.presence.as_ref());
        if let Some(p) = &subscribed.position
            && settled.since.is_none()
        {
            let mut table = self.router.table();
            if !table.has_position(&channel) {
                table.set_position(&channel, p.clone());
            }
        }
        if let Some(data) = changed {
            self.start_presence_call(&channel, data, None, false);
        }
        if self.is_unused(&channel) {
            self.release_if_unused(&channel, None);
            return;
        }
        if !again {
            return;
        }
        match settled.since {
            // Resumed, but the channel itself could not resume: recover it like any gap.
            None if lost => match self.position(&channel) {
                Some(since) if self.caps.history => {
                    self.start_history(&channel, since, subscribed.position, true)
                }
                _ => self.finish_resubscribe(&channel, false, subscribed.position),
            },
            None => self.finish_resubscribe(&channel, resumed, subscribed.position),
            Some(since) => match subscribed.recovery {
                Recovery::Recovered => self.finish_resubscribe(&channel, true, None),
                Recovery::Gap => self.finish_resubscribe(&channel, false, subscribed.position),
                Recovery::NotAttempted if !self.caps.history => {
                    self.finish_resubscribe(&channel, false, subscribed.position)
                }
                Recovery::NotAttempted => {
                    self.start_history(&channel, since, subscribed.position, true)
                }
            },
        }
    }

    /// Announces a resubscribed channel; a channel that could not recover gets its position
    /// reset to `position` and a `SyncRequired`.
    fn finish_resubscribe(
        &mut self,
        channel: &Channel,
        recovered: bool,
        position: Option<Position>,
    ) {
        if !recovered && let Some(p) = position {
            self.router.table().set_position(channel, p);
        }
        self.announce_resubscribed(channel, recovered);
    }

    /// `Resubscribed`, after a `SyncRequired` when the channel could not recover.
    fn announce_resubscribed(&self, channel: &Channel, recovered: bool) {
        if !recovered {
            self.emit(ClientEvent::SyncRequired {
                channel: channel.clone(),
            });
        }
        self.emit(ClientEvent::Resubscribed {
            channel: channel.clone(),
            recovered,
        });
    }

    /// Fetches what `channel` missed after `since`, holding its live messages back meanwhile.
    fn start_history(
        &mut self,
        channel: &Channel,
        since: Position,
        position: Option<Position>,
        resubscribe: bool,
    ) {
        self.router.table().hold(channel);
        let provider = self.provider.clone();
        let limit = self.cfg.request_timeout;
        let c = channel.clone();
        self.spawn_call(
            Pending::History {
                channel: channel.clone(),
                position,
                resubscribe,
            },
            async move { Done::History(timed("history", limit, provider.history(&c, &since)).await) },
        );
    }

    pub(super) fn on_history_done(
        &mut self,
        channel: Channel,
        position: Option<Position>,
        resubscribe: bool,
        result: Result<HistoryPage>,
    ) {
        let (missed, recovered) = match result {
            Ok(page) => (page.messages, page.complete),
            Err(e) if breaks_link(&e) => {
                // What was held back is fetched again by the next resubscribe.
                self.router.table().release(&channel);
                self.link_lost(CloseReason::retry(None, format!("history failed: {e}")));
                return;
            }
            Err(e) => {
                self.emit(ClientEvent::Error {
                    channel: Some(channel.clone()),
                    error: e,
                });
                (Vec::new(), false)
            }
        };
        // One locked step: the recovered messages, then those held back, with no live message
        // from the fast path in between.
        let router = self.router.clone();
        let mut table = router.table();
        let held = table.release(&channel);
        for m in missed {
            table.deliver(m, false);
        }
        if resubscribe {
            if !recovered && let Some(p) = position {
                table.set_position(&channel, p);
            }
            self.announce_resubscribed(&channel, recovered);
        } else if !recovered {
            self.emit(ClientEvent::SyncRequired {
                channel: channel.clone(),
            });
        }
        for m in held {
            table.deliver(m, false);
        }
    }

    /// A live channel lost messages: recover them from the last position seen, or tell the
    /// application to resynchronize.
    pub(super) fn on_continuity_lost(&mut self, channel: &Channel, reason: RealtimeError) {
        if self.session.is_some()
            && let Some(entry) = self.channels.get_mut(channel)
            && !entry.established
        {
            // Reported by the re-attach itself: applied when the resubscribe settles.
            warn!(%channel, %reason, "continuity lost while resubscribing");
            entry.continuity_lost = true;
            return;
        }
        let live = self.channels.get(channel).is_some_and(|e| e.established);
        if !live || self.session.is_none() || self.router.table().is_holding(channel) {
            return;
        }
        warn!(%channel, %reason, "continuity lost");
        match self.position(channel) {
            Some(since) if self.caps.history => self.start_history(channel, since, None, false),
            _ => self.emit(ClientEvent::SyncRequired {
                channel: channel.clone(),
            }),
        }
    }

    /// Drops a channel the provider or the authorizer refused: its streams end, its waiters
    /// get the error, and the application is told.
    pub(super) fn fail_channel(&mut self, channel: &Channel, error: RealtimeError) {
        warn!(%channel, %error, "subscription refused");
        if let Some(mut entry) = self.channels.remove(channel) {
            for w in entry.waiters.drain(..) {
                let _ = w.send(Err(error.clone()));
            }
            for w in entry.here.drain(..) {
                let _ = w.send(Err(error.clone()));
            }
        }
        self.forget_resubscribe(channel);
        self.router.table().forget(channel);
        self.emit(ClientEvent::SubscriptionFailed {
            channel: channel.clone(),
            error,
        });
    }

    fn forget_resubscribe(&mut self, channel: &Channel) {
        let before = self.resubscribing.len();
        self.resubscribing.retain(|c| c != channel);
        self.settled.remove(channel);
        if self.resubscribing.len() != before {
            self.apply_resubscribed_in_order();
        }
    }

    /// The last position delivered on `channel`.
    fn position(&self, channel: &Channel) -> Option<Position> {
        self.router.table().position(channel)
    }

    /// Whether `channel` is wanted but nothing uses it any more (no subscription, presence
    /// stream, membership or waiting subscribe).
    fn is_unused(&self, channel: &Channel) -> bool {
        self.channels.get(channel).is_some_and(ChannelEntry::idle)
            && !self.router.table().has_listeners(channel)
    }

    /// Forgets `channel` if nothing uses it any more, unsubscribing it from the provider if it
    /// was live; `reply` (a confirmed unsubscribe) answers when that is done, or at once.
    pub(super) fn release_if_unused(&mut self, channel: &Channel, reply: Option<Reply>) {
        if !self.is_unused(channel) {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        let was_established = self.channels.get(channel).is_some_and(|e| e.established);
        self.channels.remove(channel);
        self.router.table().forget(channel);
        self.throttle.forget(channel);
        if was_established && self.session.is_some() {
            self.start_unsubscribe(channel, reply);
        } else if let Some(reply) = reply {
            let _ = reply.send(Ok(()));
        }
    }

    fn start_unsubscribe(&mut self, channel: &Channel, reply: Option<Reply>) {
        let provider = self.provider.clone();
        let limit = self.cfg.request_timeout;
        let c = channel.clone();
        self.spawn_call(Pending::Unsubscribe(channel.clone(), reply), async move {
            Done::Unsubscribe(timed("unsubscribe", limit, provider.unsubscribe(&c)).await)
        });
    }

    pub(super) fn on_unsubscribe_done(
        &mut self,
        channel: Channel,
        reply: Option<Reply>,
        result: Result<()>,
    ) {
        if let Some(reply) = reply {
            let _ = reply.send(result.clone());
        }
        match result {
            Ok(()) => {}
            Err(e) if breaks_link(&e) => {
                self.link_lost(CloseReason::retry(None, format!("unsubscribe failed: {e}")))
            }
            Err(e) => self.emit(ClientEvent::Error {
                channel: Some(channel),
                error: e,
            }),
        }
    }

    /// Leaves every channel and presence membership: the state changes at once; the leaves
    /// and unsubscribes run off the loop, in channel order, and `reply` answers after them.
    pub(super) fn on_unsubscribe_all(&mut self, reply: oneshot::Sender<()>) {
        let mut order: Vec<(u64, Channel)> = self
            .channels
            .iter()
            .map(|(c, e)| (e.order, c.clone()))
            .collect();
        order.sort();
        let live = self.session.is_some();
        let mut goodbyes = Vec::new();
        for (_, channel) in order {
            let Some(entry) = self.channels.get_mut(&channel) else {
                continue;
            };
            entry.listeners.clear();
            let had_presence = entry.presence.take().is_some();
            for w in entry.waiters.drain(..) {
                let _ = w.send(Err(RealtimeError::Closed("unsubscribed".into())));
            }
            let established = entry.established;
            self.channels.remove(&channel);
            self.router.table().forget(&channel);
            self.throttle.forget(&channel);
            self.resubscribing.retain(|c| c != &channel);
            self.settled.remove(&channel);
            if live && established {
                goodbyes.push((channel, had_presence));
            }
        }
        self.typing.clear();
        if goodbyes.is_empty() {
            let _ = reply.send(());
            return;
        }
        let provider = self.provider.clone();
        let limit = self.cfg.request_timeout;
        self.spawn_call(Pending::Goodbye(reply), async move {
            let mut errors = Vec::new();
            for (channel, had_presence) in goodbyes {
                if had_presence {
                    // Best effort: unsubscribing ends the membership anyway.
                    let _ = timed("presence leave", limit, provider.presence_leave(&channel)).await;
                }
                if let Err(e) = timed("unsubscribe", limit, provider.unsubscribe(&channel)).await {
                    errors.push((channel, e));
                }
            }
            Done::Goodbye(errors)
        });
    }

    pub(super) fn on_goodbye_done(
        &mut self,
        reply: oneshot::Sender<()>,
        errors: Vec<(Channel, RealtimeError)>,
    ) {
        let _ = reply.send(());
        let mut broken = None;
        for (channel, error) in errors {
            if breaks_link(&error) {
                broken.get_or_insert(error);
            } else {
                self.emit(ClientEvent::Error {
                    channel: Some(channel),
                    error,
                });
            }
        }
        if let Some(e) = broken {
            debug!(error = %e, "unsubscribe failed: the link is broken");
            self.link_lost(CloseReason::retry(None, format!("unsubscribe failed: {e}")));
        }
    }
}

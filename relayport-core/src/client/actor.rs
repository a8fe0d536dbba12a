//! The actor task that owns the provider. It is the one place where the policies run:
//! reconnect with backoff, resubscribe and recovery, the offline queue and throttle, the
//! heartbeat, presence and typing. Handles talk to it through [`Command`]s.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, warn};

use crate::auth::{AuthRequest, ChannelAuth, ChannelAuthorizer, PresenceUser};
use crate::channel::{Channel, ChannelKind};
use crate::client::command::{Command, ListenerSink, PendingPublish, Reply};
use crate::client::config::ClientConfig;
use crate::error::{ErrorKind, RealtimeError, Result};
use crate::message::{Message, OutboundMessage, Position};
use crate::policy::outbox::Outbox;
use crate::policy::throttle::Throttle;
use crate::policy::typing::Typing;
use crate::presence::{PresenceChange, PresenceEvent, Roster};
use crate::provider::{
    Capabilities, CloseReason, EventSink, ProviderEvent, RealtimeProvider, Reconnect, Recovery,
    Session, SubscribeOptions,
};
use crate::state::{ClientEvent, ConnectionState};

pub(crate) struct Parts {
    pub(crate) provider: Arc<dyn RealtimeProvider>,
    pub(crate) capabilities: Capabilities,
    pub(crate) config: ClientConfig,
    pub(crate) authorizer: Option<Arc<dyn ChannelAuthorizer>>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) state: watch::Sender<ConnectionState>,
    pub(crate) latency: watch::Sender<Option<Duration>>,
    pub(crate) events: broadcast::Sender<ClientEvent>,
    pub(crate) max_payload: Arc<AtomicUsize>,
}

struct Listener {
    id: u64,
    sink: ListenerSink,
    missed: u64,
}

/// One channel the application wants: its listeners, its presence membership and its state on
/// the current link.
struct ChannelEntry {
    order: u64,
    listeners: Vec<Listener>,
    /// The member data to (re-)enter with; `None` when not a member.
    presence: Option<Value>,
    established: bool,
    ever_established: bool,
    roster: Roster,
    waiters: Vec<Reply>,
}

impl ChannelEntry {
    fn unused(&self) -> bool {
        self.listeners.is_empty() && self.presence.is_none() && self.waiters.is_empty()
    }
}

pub(crate) struct Actor {
    provider: Arc<dyn RealtimeProvider>,
    caps: Capabilities,
    cfg: ClientConfig,
    authorizer: Option<Arc<dyn ChannelAuthorizer>>,
    commands: mpsc::UnboundedReceiver<Command>,
    events_in_tx: mpsc::UnboundedSender<(u64, ProviderEvent)>,
    events_in: mpsc::UnboundedReceiver<(u64, ProviderEvent)>,
    state_tx: watch::Sender<ConnectionState>,
    latency_tx: watch::Sender<Option<Duration>>,
    events_tx: broadcast::Sender<ClientEvent>,
    max_payload: Arc<AtomicUsize>,
    /// Bumped for every connection; events tagged with an older one are stale.
    generation: u64,
    /// `Some` while the link is up.
    session: Option<Session>,
    channels: HashMap<Channel, ChannelEntry>,
    next_order: u64,
    positions: HashMap<Channel, Position>,
    outbox: Outbox<PendingPublish>,
    evicted_total: u64,
    throttle: Throttle,
    typing: Typing,
    retry_at: Option<Instant>,
    /// The number of the next retry in the current outage (1-based once scheduled).
    retry: u32,
    /// Failed connection attempts in the current outage.
    failed: u32,
    next_ping: Option<Instant>,
    connect_waiters: Vec<Reply>,
    rng: fastrand::Rng,
    closed: bool,
}

/// The most provider events handled per wake-up of the actor.
const EVENT_BATCH: usize = 64;

async fn maybe_sleep(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs one provider call under the request timeout.
async fn timed<T>(what: &str, limit: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(RealtimeError::timeout(what, limit)),
    }
}

/// Whether a failed call means the link itself is broken (so the runtime reconnects).
fn breaks_link(e: &RealtimeError) -> bool {
    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout)
        || matches!(
            e,
            RealtimeError::Provider {
                retryable: true,
                ..
            }
        )
}

fn closed_error() -> RealtimeError {
    RealtimeError::Closed("the client was closed".into())
}

impl Actor {
    pub(crate) fn new(p: Parts) -> Self {
        let (events_in_tx, events_in) = mpsc::unbounded_channel();
        let rng = match p.config.jitter_seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        Self {
            provider: p.provider,
            outbox: Outbox::new(p.config.queue_capacity),
            throttle: Throttle::new(p.config.publish_rate),
            caps: p.capabilities,
            cfg: p.config,
            authorizer: p.authorizer,
            commands: p.commands,
            events_in_tx,
            events_in,
            state_tx: p.state,
            latency_tx: p.latency,
            events_tx: p.events,
            max_payload: p.max_payload,
            generation: 0,
            session: None,
            channels: HashMap::new(),
            next_order: 0,
            positions: HashMap::new(),
            evicted_total: 0,
            typing: Typing::default(),
            retry_at: None,
            retry: 0,
            failed: 0,
            next_ping: None,
            connect_waiters: Vec::new(),
            rng,
            closed: false,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut batch = Vec::with_capacity(EVENT_BATCH);
        while !self.closed {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                // Drained in batches: one wake-up of the actor for a burst of frames.
                n = self.events_in.recv_many(&mut batch, EVENT_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    for (generation, event) in batch.drain(..) {
                        self.on_provider_event(generation, event).await;
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => break,
                },
                () = maybe_sleep(deadline) => self.on_timer().await,
            }
        }
        self.shut_down(closed_error()).await;
    }

    // ---- state and events -------------------------------------------------------------

    fn state(&self) -> ConnectionState {
        self.state_tx.borrow().clone()
    }

    fn set_state(&mut self, state: ConnectionState) {
        if *self.state_tx.borrow() == state {
            return;
        }
        debug!(?state, "connection state");
        self.state_tx.send_replace(state.clone());
        self.emit(ClientEvent::StateChanged(state));
    }

    fn emit(&self, event: ClientEvent) {
        let _ = self.events_tx.send(event);
    }

    /// The error a new operation gets in a terminal state, if any.
    fn terminal_error(&self) -> Option<RealtimeError> {
        match self.state() {
            ConnectionState::Closed => Some(closed_error()),
            ConnectionState::Failed(e) => Some(e),
            ConnectionState::PermanentlyDisconnected => Some(RealtimeError::Connection(format!(
                "gave up after {} failed attempts; call connect() to start again",
                self.cfg.backoff.max_attempts
            ))),
            _ => None,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut deadline = self.retry_at;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        };
        if self.session.is_some() {
            consider(self.next_ping);
            let now = Instant::now();
            consider(
                self.outbox
                    .heads()
                    .into_iter()
                    .map(|ch| self.throttle.ready_at(ch, now))
                    .min(),
            );
        }
        consider(self.typing.next_deadline());
        deadline
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            self.attempt_connect().await;
        }
        if self.session.is_some() && self.next_ping.is_some_and(|at| at <= now) {
            self.heartbeat().await;
        }
        self.flush_outbox().await;
        for channel in self.typing.expired(Instant::now()) {
            self.send_typing(&channel, false).await;
        }
    }

    // ---- connection lifecycle ---------------------------------------------------------

    fn maybe_lazy_connect(&mut self) {
        if self.cfg.lazy_connect
            && self.state() == ConnectionState::Initialized
            && self.retry_at.is_none()
        {
            self.retry_at = Some(Instant::now());
        }
    }

    async fn attempt_connect(&mut self) {
        self.set_state(ConnectionState::Connecting);
        self.generation += 1;
        let sink = EventSink::new(self.events_in_tx.clone(), self.generation);
        let limit = self.cfg.connect_timeout;
        let result = match timeout(limit, self.provider.connect(sink)).await {
            Ok(r) => r,
            Err(_) => {
                let _ = self.provider.disconnect().await;
                Err(RealtimeError::timeout("connect", limit))
            }
        };
        match result {
            Ok(session) => self.on_connected(session).await,
            Err(e) => self.on_connect_failed(e),
        }
    }

    fn on_connect_failed(&mut self, error: RealtimeError) {
        warn!(%error, "connection attempt failed");
        for w in self.connect_waiters.drain(..) {
            let _ = w.send(Err(error.clone()));
        }
        if !error.is_retryable() {
            self.fail(error);
            return;
        }
        self.failed += 1;
        if self.failed >= self.cfg.backoff.max_attempts {
            self.give_up();
            return;
        }
        self.schedule_retry(Reconnect::Backoff);
    }

    fn schedule_retry(&mut self, how: Reconnect) {
        // An immediate attempt does not use up a step of the backoff schedule: if the server
        // that asked for it is not back yet, the next retry waits the first step, not the second.
        let (attempt, delay) = match how {
            Reconnect::Immediately => (self.retry + 1, Duration::ZERO),
            _ => {
                self.retry += 1;
                (
                    self.retry,
                    self.cfg.backoff.delay(self.retry, &mut self.rng),
                )
            }
        };
        self.retry_at = Some(Instant::now() + delay);
        self.set_state(ConnectionState::Reconnecting {
            attempt,
            retry_in: delay,
        });
    }

    async fn on_connected(&mut self, session: Session) {
        self.failed = 0;
        self.retry = 0;
        let limit = [
            Some(self.cfg.max_payload),
            Some(self.caps.max_payload),
            session.max_payload,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.cfg.max_payload);
        self.max_payload.store(limit, Ordering::Relaxed);
        let interval = session
            .heartbeat_interval
            .unwrap_or(self.cfg.heartbeat_interval);
        self.next_ping = Some(Instant::now() + interval);
        self.session = Some(session);
        self.set_state(ConnectionState::Connected);
        for w in self.connect_waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
        let mut order: Vec<(u64, Channel)> = self
            .channels
            .iter()
            .map(|(c, e)| (e.order, c.clone()))
            .collect();
        order.sort();
        for (_, channel) in order {
            if self.session.is_none() {
                return;
            }
            self.establish(&channel).await;
        }
        self.flush_outbox().await;
    }

    /// The link is gone: clean up and reconnect as the reason says.
    async fn link_lost(&mut self, reason: CloseReason) {
        if self.session.take().is_none() {
            return;
        }
        warn!(code = ?reason.code, message = %reason.message, "link lost");
        let _ = self.provider.disconnect().await;
        self.next_ping = None;
        self.typing.clear();
        for entry in self.channels.values_mut() {
            entry.established = false;
        }
        self.failed = 0;
        self.retry = 0;
        match reason.reconnect {
            Reconnect::Never(error) => self.fail(error),
            how => self.schedule_retry(how),
        }
    }

    /// Fails every pending operation with `error`.
    fn fail_pending(&mut self, error: &RealtimeError) {
        for w in self.connect_waiters.drain(..) {
            let _ = w.send(Err(error.clone()));
        }
        for entry in self.channels.values_mut() {
            for w in entry.waiters.drain(..) {
                let _ = w.send(Err(error.clone()));
            }
        }
        for p in self.outbox.drain() {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }

    fn fail(&mut self, error: RealtimeError) {
        self.retry_at = None;
        self.fail_pending(&error);
        self.set_state(ConnectionState::Failed(error));
    }

    fn give_up(&mut self) {
        self.retry_at = None;
        self.set_state(ConnectionState::PermanentlyDisconnected);
        if let Some(e) = self.terminal_error() {
            self.fail_pending(&e);
        }
    }

    async fn drop_link(&mut self) {
        self.session = None;
        self.retry_at = None;
        self.next_ping = None;
        self.typing.clear();
        // The application ends the session: the protocol's goodbye.
        let _ = self.provider.goodbye().await;
        // Anything still in flight from this link is stale from now on.
        self.generation += 1;
        for entry in self.channels.values_mut() {
            entry.established = false;
        }
    }

    async fn shut_down(&mut self, error: RealtimeError) {
        self.drop_link().await;
        self.fail_pending(&error);
        self.channels.clear();
        self.set_state(ConnectionState::Closed);
    }

    async fn heartbeat(&mut self) {
        let interval = self
            .session
            .as_ref()
            .and_then(|s| s.heartbeat_interval)
            .unwrap_or(self.cfg.heartbeat_interval);
        let limit = self.cfg.heartbeat_timeout;
        match timeout(limit, self.provider.ping()).await {
            Ok(Ok(rtt)) => {
                self.latency_tx.send_replace(Some(rtt));
                if rtt > self.cfg.degraded_threshold {
                    self.emit(ClientEvent::ConnectionDegraded { rtt });
                }
                self.next_ping = Some(Instant::now() + interval);
            }
            Ok(Err(e)) => {
                self.link_lost(CloseReason::retry(None, format!("heartbeat failed: {e}")))
                    .await;
            }
            Err(_) => {
                self.link_lost(CloseReason::retry(
                    None,
                    format!("heartbeat timeout: no answer within {limit:?}"),
                ))
                .await;
            }
        }
    }

    // ---- channels -----------------------------------------------------------------------

    async fn authorize(&self, channel: &Channel, presence: Option<&Value>) -> Result<ChannelAuth> {
        let Some(authorizer) = &self.authorizer else {
            return Err(RealtimeError::Unauthorized(format!(
                "`{channel}` needs authorization and no authorizer is configured"
            )));
        };
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
        let request = AuthRequest {
            socket_id,
            channel: channel.clone(),
            user,
        };
        timed(
            "channel authorization",
            self.cfg.request_timeout,
            authorizer.authorize(&request),
        )
        .await
    }

    /// Subscribes one wanted channel on the current link, restoring its presence membership
    /// and recovering what it missed. Resolves its waiters.
    async fn establish(&mut self, channel: &Channel) {
        let Some(entry) = self.channels.get(channel) else {
            return;
        };
        let Some(resumed) = self.session.as_ref().map(|s| s.resumed) else {
            return;
        };
        let again = entry.ever_established;
        let presence = entry.presence.clone();
        let since = if again && !resumed {
            self.positions.get(channel).cloned()
        } else {
            None
        };
        let auth = if channel.kind().requires_auth() {
            match self.authorize(channel, presence.as_ref()).await {
                Ok(a) => Some(a),
                // The auth endpoint is unreachable: treat it like the link (retry later).
                Err(e) if e.kind() == ErrorKind::Connection => {
                    self.link_lost(CloseReason::retry(None, e.to_string()))
                        .await;
                    return;
                }
                Err(e) => return self.fail_channel(channel, e),
            }
        } else {
            None
        };
        let options = SubscribeOptions {
            auth,
            since: since.clone(),
            presence_data: presence
                .clone()
                .filter(|_| channel.kind() == ChannelKind::Presence),
        };
        let limit = self.cfg.request_timeout;
        let subscribed = timed(
            "subscribe",
            limit,
            self.provider.subscribe(channel, &options),
        )
        .await;
        let subscribed = match subscribed {
            Ok(s) => s,
            Err(e) if breaks_link(&e) => {
                self.link_lost(CloseReason::retry(None, format!("subscribe failed: {e}")))
                    .await;
                return;
            }
            Err(e) => return self.fail_channel(channel, e),
        };
        if let Some(data) = presence {
            let entered = timed(
                "presence enter",
                limit,
                self.provider.presence_enter(channel, data),
            )
            .await;
            match entered {
                Ok(()) => {}
                Err(e) if breaks_link(&e) => {
                    self.link_lost(CloseReason::retry(
                        None,
                        format!("presence enter failed: {e}"),
                    ))
                    .await;
                    return;
                }
                Err(e) => return self.fail_channel(channel, e),
            }
        }
        if let Some(p) = &subscribed.position
            && since.is_none()
            && !self.positions.contains_key(channel)
        {
            self.positions.insert(channel.clone(), p.clone());
        }
        if let Some(entry) = self.channels.get_mut(channel) {
            entry.established = true;
            entry.ever_established = true;
            for w in entry.waiters.drain(..) {
                let _ = w.send(Ok(()));
            }
        }
        if !again {
            return;
        }
        let recovered = match since {
            None => resumed,
            Some(since) => self.recover(channel, &since, subscribed.recovery).await,
        };
        if self.session.is_none() {
            return;
        }
        if !recovered {
            if let Some(p) = subscribed.position {
                self.positions.insert(channel.clone(), p);
            }
            self.emit(ClientEvent::SyncRequired {
                channel: channel.clone(),
            });
        }
        self.emit(ClientEvent::Resubscribed {
            channel: channel.clone(),
            recovered,
        });
    }

    /// Replays what `channel` missed after `since`; returns whether nothing is missing.
    async fn recover(&mut self, channel: &Channel, since: &Position, recovery: Recovery) -> bool {
        match recovery {
            Recovery::Recovered => true,
            Recovery::Gap => false,
            Recovery::NotAttempted if !self.caps.history => false,
            Recovery::NotAttempted => {
                let limit = self.cfg.request_timeout;
                match timed("history", limit, self.provider.history(channel, since)).await {
                    Ok(page) => {
                        for m in page.messages {
                            self.deliver(m);
                        }
                        page.complete
                    }
                    Err(e) if breaks_link(&e) => {
                        self.link_lost(CloseReason::retry(None, format!("history failed: {e}")))
                            .await;
                        false
                    }
                    Err(e) => {
                        self.emit(ClientEvent::Error {
                            channel: Some(channel.clone()),
                            error: e,
                        });
                        false
                    }
                }
            }
        }
    }

    /// A live channel lost messages: recover them from the last position seen, or tell the
    /// application to resynchronize.
    async fn on_continuity_lost(&mut self, channel: &Channel, reason: RealtimeError) {
        let live = self.channels.get(channel).is_some_and(|e| e.established);
        if !live || self.session.is_none() {
            return;
        }
        warn!(%channel, %reason, "continuity lost");
        let recovered = match self.positions.get(channel).cloned() {
            Some(since) => self.recover(channel, &since, Recovery::NotAttempted).await,
            None => false,
        };
        if self.session.is_some() && !recovered {
            self.emit(ClientEvent::SyncRequired {
                channel: channel.clone(),
            });
        }
    }

    /// Drops a channel the provider or the authorizer refused: its streams end, its waiters
    /// get the error, and the application is told.
    fn fail_channel(&mut self, channel: &Channel, error: RealtimeError) {
        warn!(%channel, %error, "subscription refused");
        if let Some(mut entry) = self.channels.remove(channel) {
            for w in entry.waiters.drain(..) {
                let _ = w.send(Err(error.clone()));
            }
        }
        self.positions.remove(channel);
        self.emit(ClientEvent::SubscriptionFailed {
            channel: channel.clone(),
            error,
        });
    }

    fn entry_for(&mut self, channel: &Channel) -> &mut ChannelEntry {
        let order = &mut self.next_order;
        self.channels.entry(channel.clone()).or_insert_with(|| {
            *order += 1;
            ChannelEntry {
                order: *order,
                listeners: Vec::new(),
                presence: None,
                established: false,
                ever_established: false,
                roster: Roster::default(),
                waiters: Vec::new(),
            }
        })
    }

    /// Brings a wanted channel up if the link is up, or arranges for the link to come up.
    async fn bring_up(&mut self, channel: &Channel) {
        if self.session.is_some() {
            self.establish(channel).await;
        } else {
            self.maybe_lazy_connect();
        }
    }

    async fn release_if_unused(&mut self, channel: &Channel) {
        let Some(entry) = self.channels.get(channel) else {
            return;
        };
        if !entry.unused() {
            return;
        }
        let was_established = entry.established;
        self.channels.remove(channel);
        self.positions.remove(channel);
        self.throttle.forget(channel);
        if was_established && self.session.is_some() {
            let limit = self.cfg.request_timeout;
            match timed("unsubscribe", limit, self.provider.unsubscribe(channel)).await {
                Ok(()) => {}
                Err(e) if breaks_link(&e) => {
                    self.link_lost(CloseReason::retry(None, format!("unsubscribe failed: {e}")))
                        .await;
                }
                Err(e) => self.emit(ClientEvent::Error {
                    channel: Some(channel.clone()),
                    error: e,
                }),
            }
        }
    }

    // ---- deliveries ---------------------------------------------------------------------

    /// Delivers a message to every listener whose channel or pattern matches, once: a message
    /// at or before the last position seen on its channel is a duplicate and is skipped.
    fn deliver(&mut self, message: Message) {
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
        for missed in lagged {
            self.emit(ClientEvent::SubscriberLagged {
                channel: channel.clone(),
                missed,
            });
        }
    }

    async fn on_provider_event(&mut self, generation: u64, event: ProviderEvent) {
        let current = generation == self.generation;
        match event {
            // What arrived is delivered even from a link that has since closed: de-duplication
            // by position keeps it exactly-once.
            ProviderEvent::Message(m) => self.deliver(m),
            ProviderEvent::Presence { channel, change } if current => {
                self.on_presence(channel, change)
            }
            ProviderEvent::SubscriptionLost { channel, error } if current => {
                self.fail_channel(&channel, error)
            }
            ProviderEvent::ContinuityLost { channel, reason } if current => {
                self.on_continuity_lost(&channel, reason).await
            }
            ProviderEvent::Error { channel, error } => {
                self.emit(ClientEvent::Error { channel, error })
            }
            ProviderEvent::Closed(reason) if current => self.link_lost(reason).await,
            stale => debug!(?stale, "stale provider event ignored"),
        }
    }

    // ---- publishing ---------------------------------------------------------------------

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

    /// Sends every queued publish whose channel's rate allows it now, in order.
    async fn flush_outbox(&mut self) {
        while self.session.is_some() {
            let now = Instant::now();
            let throttle = &self.throttle;
            let Some(ticket) = self
                .outbox
                .pop_ready(|ch| throttle.ready_at(ch, now) <= now)
            else {
                break;
            };
            self.throttle.record(&ticket.1.message.channel, now);
            let limit = self.cfg.request_timeout;
            let sent = timed("publish", limit, self.provider.publish(&ticket.1.message)).await;
            match sent {
                Ok(()) => {
                    if let Some(reply) = ticket.1.reply {
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(e) if breaks_link(&e) => {
                    self.outbox.restore(ticket);
                    self.link_lost(CloseReason::retry(None, format!("publish failed: {e}")))
                        .await;
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
        }
    }

    async fn send_typing(&mut self, channel: &Channel, typing: bool) {
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
        let limit = self.cfg.request_timeout;
        match timed("typing", limit, self.provider.publish(&message)).await {
            Ok(()) => {}
            Err(e) if breaks_link(&e) => {
                self.link_lost(CloseReason::retry(None, format!("publish failed: {e}")))
                    .await;
            }
            Err(e) => self.emit(ClientEvent::Error {
                channel: Some(channel.clone()),
                error: e,
            }),
        }
    }

    // ---- commands -----------------------------------------------------------------------

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Connect(reply) => self.on_connect(reply),
            Command::Disconnect(reply) => {
                self.drop_link().await;
                if self.state() != ConnectionState::Closed {
                    self.set_state(ConnectionState::Disconnected);
                }
                let _ = reply.send(());
            }
            Command::Close(reply) => {
                self.shut_down(closed_error()).await;
                self.closed = true;
                let _ = reply.send(());
            }
            Command::Listen {
                channel,
                id,
                sink,
                reply,
            } => self.on_listen(channel, id, sink, reply).await,
            Command::Unlisten { channel, id } => {
                if let Some(entry) = self.channels.get_mut(&channel) {
                    entry.listeners.retain(|l| l.id != id);
                }
                self.release_if_unused(&channel).await;
            }
            Command::UnsubscribeAll(reply) => {
                self.on_unsubscribe_all().await;
                let _ = reply.send(());
            }
            Command::Publish(publish) => self.on_publish(publish).await,
            Command::PresenceEnter {
                channel,
                data,
                reply,
            } => self.on_presence_enter(channel, data, reply).await,
            Command::PresenceUpdate {
                channel,
                data,
                reply,
            } => self.on_presence_update(channel, data, reply).await,
            Command::PresenceLeave { channel, reply } => {
                self.on_presence_leave(channel, reply).await
            }
            Command::PresenceMembers { channel, reply } => {
                let result = self.members(&channel).await;
                let _ = reply.send(result);
            }
            Command::StartTyping(channel) => {
                if self.session.is_some()
                    && self
                        .typing
                        .start(&self.cfg.typing, &channel, Instant::now())
                {
                    self.send_typing(&channel, true).await;
                }
            }
            Command::StopTyping(channel) => {
                if self.typing.stop(&channel) {
                    self.send_typing(&channel, false).await;
                }
            }
        }
    }

    fn on_connect(&mut self, reply: Reply) {
        match self.state() {
            ConnectionState::Connected => {
                let _ = reply.send(Ok(()));
            }
            ConnectionState::Closed => {
                let _ = reply.send(Err(closed_error()));
            }
            state => {
                self.connect_waiters.push(reply);
                if self.retry_at.is_none() {
                    if state.is_terminal() {
                        self.failed = 0;
                        self.retry = 0;
                    }
                    self.retry_at = Some(Instant::now());
                }
            }
        }
    }

    /// Common checks before an operation that needs the channel.
    fn check_channel(&self, channel: &Channel, presence_op: bool) -> Result<()> {
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

    async fn on_listen(&mut self, channel: Channel, id: u64, sink: ListenerSink, reply: Reply) {
        let presence_op = matches!(sink, ListenerSink::Presence(_));
        if let Err(e) = self.check_channel(&channel, presence_op) {
            let _ = reply.send(Err(e));
            return;
        }
        let entry = self.entry_for(&channel);
        if let ListenerSink::Presence(tx) = &sink {
            // A late listener first learns who is already there, as joins.
            for member in entry.roster.members() {
                let _ = tx.try_send(PresenceEvent {
                    channel: channel.clone(),
                    action: crate::PresenceAction::Joined,
                    member,
                });
            }
        }
        entry.listeners.push(Listener {
            id,
            sink,
            missed: 0,
        });
        if entry.established {
            let _ = reply.send(Ok(()));
            return;
        }
        entry.waiters.push(reply);
        let first = entry.waiters.len() == 1;
        if first {
            self.bring_up(&channel).await;
        }
    }

    async fn on_publish(&mut self, publish: PendingPublish) {
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
            self.flush_outbox().await;
        } else {
            self.maybe_lazy_connect();
        }
    }

    async fn on_presence_enter(&mut self, channel: Channel, data: Value, reply: Reply) {
        if let Err(e) = self.check_channel(&channel, true) {
            let _ = reply.send(Err(e));
            return;
        }
        let entry = self.entry_for(&channel);
        entry.presence = Some(data.clone());
        if !entry.established {
            entry.waiters.push(reply);
            let first = entry.waiters.len() == 1;
            if first {
                self.bring_up(&channel).await;
            }
            return;
        }
        let limit = self.cfg.request_timeout;
        let result = timed(
            "presence enter",
            limit,
            self.provider.presence_enter(&channel, data),
        )
        .await;
        self.reply_presence(reply, result).await;
    }

    async fn on_presence_update(&mut self, channel: Channel, data: Value, reply: Reply) {
        if let Err(e) = self.check_channel(&channel, true) {
            let _ = reply.send(Err(e));
            return;
        }
        let entered = self
            .channels
            .get(&channel)
            .is_some_and(|e| e.presence.is_some());
        if !entered {
            return self.on_presence_enter(channel, data, reply).await;
        }
        let entry = self.entry_for(&channel);
        entry.presence = Some(data.clone());
        if !entry.established || self.session.is_none() {
            // Restored with this data on the next connection.
            let _ = reply.send(Ok(()));
            return;
        }
        let limit = self.cfg.request_timeout;
        let result = if self.caps.presence_update {
            timed(
                "presence update",
                limit,
                self.provider.presence_update(&channel, data),
            )
            .await
        } else {
            Err(RealtimeError::Unsupported("presence update".into()))
        };
        self.reply_presence(reply, result).await;
    }

    async fn on_presence_leave(&mut self, channel: Channel, reply: Reply) {
        let Some(entry) = self.channels.get_mut(&channel) else {
            let _ = reply.send(Ok(()));
            return;
        };
        if entry.presence.take().is_none() {
            let _ = reply.send(Ok(()));
            return;
        }
        let result = if entry.established && self.session.is_some() {
            let limit = self.cfg.request_timeout;
            timed(
                "presence leave",
                limit,
                self.provider.presence_leave(&channel),
            )
            .await
        } else {
            Ok(())
        };
        self.reply_presence(reply, result).await;
        self.release_if_unused(&channel).await;
    }

    async fn reply_presence(&mut self, reply: Reply, result: Result<()>) {
        if let Err(e) = &result
            && breaks_link(e)
        {
            // The membership is recorded and is restored on the next connection.
            let _ = reply.send(Ok(()));
            self.link_lost(CloseReason::retry(None, format!("presence failed: {e}")))
                .await;
            return;
        }
        let _ = reply.send(result);
    }

    async fn members(&mut self, channel: &Channel) -> Result<Vec<crate::PresenceMember>> {
        self.check_channel(channel, true)?;
        let established = self.channels.get(channel).is_some_and(|e| e.established);
        if established && self.session.is_some() {
            let limit = self.cfg.request_timeout;
            match timed(
                "presence members",
                limit,
                self.provider.presence_members(channel),
            )
            .await
            {
                Ok(members) => return Ok(members),
                Err(e) if e.kind() == ErrorKind::Unsupported => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self
            .channels
            .get(channel)
            .map(|e| e.roster.members())
            .unwrap_or_default())
    }

    async fn on_unsubscribe_all(&mut self) {
        let mut order: Vec<(u64, Channel)> = self
            .channels
            .iter()
            .map(|(c, e)| (e.order, c.clone()))
            .collect();
        order.sort();
        for (_, channel) in order {
            if let Some(entry) = self.channels.get_mut(&channel) {
                entry.listeners.clear();
                let had_presence = entry.presence.take().is_some();
                for w in entry.waiters.drain(..) {
                    let _ = w.send(Err(RealtimeError::Closed("unsubscribed".into())));
                }
                if had_presence && entry.established && self.session.is_some() {
                    let limit = self.cfg.request_timeout;
                    let _ = timed(
                        "presence leave",
                        limit,
                        self.provider.presence_leave(&channel),
                    )
                    .await;
                }
            }
            self.release_if_unused(&channel).await;
        }
        self.typing.clear();
    }
}

//! The actor: a state machine over the connection, the channels, the offline queue and the
//! heartbeat, and the driver loop that feeds it. The loop never awaits a provider call or an
//! authorization: every call runs as its own task in a [`JoinSet`], and its completion comes
//! back to the loop as one more event beside commands, provider events and timers. So a slow
//! call delays nothing else, and calls that the protocol lets overlap (the subscribes of a
//! resubscribe, publishes on different channels, a heartbeat) are in flight together.
//!
//! Messages mostly do not pass through this loop: the provider's sink delivers them on the
//! provider's own task through the table the actor shares with it (the fast path, see
//! [`delivery`](super::delivery)); the loop sees a message only when it queued behind another
//! provider event.
//!
//! Each concern lives in its own file, as `impl Actor` blocks: [`connection`](super::connection)
//! (connect, reconnect, teardown), [`channels`](super::channels) (subscribe, resubscribe,
//! recovery), [`delivery`](super::delivery), [`publish`](super::publish),
//! [`presence`](super::presence) and [`heartbeat`](super::heartbeat).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tracing::debug;

use crate::auth::ChannelAuthorizer;
use crate::channel::Channel;
use crate::client::channels::{ChannelEntry, Settled};
use crate::client::command::{Command, PendingPublish};
use crate::client::config::ClientConfig;
use crate::client::delivery::Router;
use crate::client::echo::EchoFilter;
use crate::client::ops::{Completion, Done, Pending};
use crate::error::RealtimeError;
use crate::policy::outbox::Outbox;
use crate::policy::throttle::Throttle;
use crate::policy::typing::Typing;
use crate::provider::{Capabilities, CloseReason, ProviderEvent, RealtimeProvider, Session};
use crate::state::{ClientEvent, ConnectionState};

/// What the handle hands the actor when the client is built.
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

/// The runtime's state, and the calls in flight.
pub(crate) struct Actor {
    pub(super) provider: Arc<dyn RealtimeProvider>,
    pub(super) caps: Capabilities,
    pub(super) cfg: ClientConfig,
    pub(super) authorizer: Option<Arc<dyn ChannelAuthorizer>>,
    commands: mpsc::UnboundedReceiver<Command>,
    pub(super) events_in_tx: mpsc::UnboundedSender<(u64, ProviderEvent)>,
    events_in: mpsc::UnboundedReceiver<(u64, ProviderEvent)>,
    pub(super) state_tx: watch::Sender<ConnectionState>,
    pub(super) latency_tx: watch::Sender<Option<Duration>>,
    pub(super) events_tx: broadcast::Sender<ClientEvent>,
    pub(super) max_payload: Arc<AtomicUsize>,
    /// Bumped for every connection; events and completions tagged with an older one are stale.
    pub(super) generation: u64,
    /// `Some` while the link is up.
    pub(super) session: Option<Session>,
    pub(super) channels: HashMap<Channel, ChannelEntry>,
    pub(super) next_order: u64,
    /// Listeners, positions and held-back messages, shared with the provider's event sinks
    /// (the fast path); see [`delivery`](super::delivery).
    pub(super) router: Arc<Router>,
    pub(super) outbox: Outbox<PendingPublish>,
    pub(super) evicted_total: u64,
    pub(super) throttle: Throttle,
    pub(super) typing: Typing,
    pub(super) retry_at: Option<Instant>,
    /// The number of the next retry in the current outage (1-based once scheduled).
    pub(super) retry: u32,
    /// Failed connection attempts in the current outage.
    pub(super) failed: u32,
    pub(super) next_ping: Option<Instant>,
    pub(super) connect_waiters: Vec<crate::client::command::Reply>,
    pub(super) rng: fastrand::Rng,
    pub(super) closed: bool,
    /// The calls in flight, each a task; and what to do with each when it completes.
    calls: JoinSet<Completion>,
    pub(super) pending: HashMap<tokio::task::Id, Pending>,
    /// A lost link's `disconnect` is in flight: the next `connect` waits for it (the state
    /// stays `Reconnecting` meanwhile).
    pub(super) tearing_down: bool,
    /// A `connect` is in flight.
    pub(super) connecting: bool,
    /// The link closed before its `connect` returned: applied once it has.
    pub(super) early_close: Option<CloseReason>,
    /// A heartbeat is in flight.
    pub(super) pinging: bool,
    /// Channels with a publish in flight: the next one waits (FIFO per channel).
    pub(super) publishing: HashSet<Channel>,
    /// The channels brought up together after a connection, in order: their outcomes are
    /// applied in this order whatever order they complete in.
    pub(super) resubscribing: VecDeque<Channel>,
    pub(super) settled: HashMap<Channel, Settled>,
}

impl Drop for Actor {
    /// The event sinks a provider still holds keep the shared table alive: forgetting every
    /// listener here ends the application's streams however the actor stopped.
    fn drop(&mut self) {
        self.router.table().clear();
    }
}

/// The most provider events handled per wake-up of the actor.
const EVENT_BATCH: usize = 64;

async fn maybe_sleep(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub(super) fn closed_error() -> RealtimeError {
    RealtimeError::Closed("the client was closed".into())
}

impl Actor {
    pub(crate) fn new(p: Parts) -> Self {
        let (events_in_tx, events_in) = mpsc::unbounded_channel();
        let rng = match p.config.jitter_seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        let echo = EchoFilter::new(&p.config, &p.capabilities);
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
            router: Arc::new(Router::new(p.events.clone(), echo)),
            events_tx: p.events,
            max_payload: p.max_payload,
            generation: 0,
            session: None,
            channels: HashMap::new(),
            next_order: 0,
            evicted_total: 0,
            typing: Typing::default(),
            retry_at: None,
            retry: 0,
            failed: 0,
            next_ping: None,
            connect_waiters: Vec::new(),
            rng,
            closed: false,
            calls: JoinSet::new(),
            pending: HashMap::new(),
            tearing_down: false,
            connecting: false,
            early_close: None,
            pinging: false,
            publishing: HashSet::new(),
            resubscribing: VecDeque::new(),
            settled: HashMap::new(),
        }
    }

    /// The driver: waits for the next provider event, completed call, command or timer, and
    /// hands it to the state machine. Nothing in here awaits a provider.
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
                        self.on_provider_event(generation, event);
                    }
                }
                Some(joined) = self.calls.join_next_with_id(), if !self.calls.is_empty() => {
                    self.on_joined(joined, true);
                }
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => break,
                },
                () = maybe_sleep(deadline) => self.on_timer(),
            }
        }
        self.shut_down(closed_error()).await;
    }

    // ---- calls in flight ----------------------------------------------------------------

    /// Runs `call` off the loop; `pending` says what to do when it completes.
    pub(super) fn spawn_call(
        &mut self,
        pending: Pending,
        call: impl Future<Output = Done> + Send + 'static,
    ) {
        let generation = self.generation;
        let handle = self.calls.spawn(async move {
            Completion {
                generation,
                done: call.await,
            }
        });
        self.pending.insert(handle.id(), pending);
    }

    /// Applies every call that has already completed but was not joined yet, without
    /// waiting: called before the link is given up, so that what did complete on it counts
    /// (a subscribe the server confirmed, a publish it accepted).
    pub(super) fn reap_completed(&mut self) {
        while let Some(joined) = self.calls.try_join_next_with_id() {
            self.on_joined(joined, false);
        }
    }

    fn on_joined(
        &mut self,
        joined: std::result::Result<(tokio::task::Id, Completion), tokio::task::JoinError>,
        drain_events: bool,
    ) {
        let (id, completion) = match joined {
            Ok(ok) => ok,
            Err(e) => {
                // A provider call panicked: settle it as cancelled and treat the link as broken.
                let id = e.id();
                if let Some(pending) = self.pending.remove(&id) {
                    self.settle_cancelled(pending, None);
                }
                if e.is_panic() {
                    self.link_lost(CloseReason::retry(None, "a provider call panicked"));
                }
                return;
            }
        };
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        // What the provider reported before its call returned is handled first (a replay at
        // subscribe time, say).
        while drain_events && let Ok((generation, event)) = self.events_in.try_recv() {
            self.on_provider_event(generation, event);
        }
        if completion.generation != self.generation {
            debug!(?pending, "stale completion ignored");
            match (pending, completion.done) {
                // It did reach the server: sending it again would duplicate it.
                (Pending::Publish(ticket), Done::Publish(Ok(()))) => {
                    if let Some(reply) = ticket.1.reply {
                        let _ = reply.send(Ok(()));
                    }
                }
                (pending, _) => self.settle_cancelled(pending, None),
            }
            return;
        }
        match (pending, completion.done) {
            (Pending::Connect, Done::Connect(result)) => self.on_connect_done(result),
            (Pending::Teardown, Done::Teardown) => self.tearing_down = false,
            (
                Pending::Establish(channel),
                Done::Establish {
                    channel: c,
                    presence,
                    since,
                    result,
                },
            ) => {
                debug_assert_eq!(channel, c);
                self.on_establish_done(channel, presence, since, result);
            }
            (
                Pending::History {
                    channel,
                    position,
                    resubscribe,
                },
                Done::History(result),
            ) => self.on_history_done(channel, position, resubscribe, result),
            (Pending::Publish(ticket), Done::Publish(result)) => {
                self.on_publish_done(ticket, result)
            }
            (Pending::Typing(channel), Done::Publish(result)) => {
                self.on_typing_done(channel, result)
            }
            (Pending::Ping, Done::Ping(result)) => self.on_ping_done(result),
            (Pending::Presence { reply, release }, Done::Presence(result)) => {
                self.on_presence_done(reply, release, result)
            }
            (Pending::Members { channel, reply }, Done::Members(result)) => {
                self.on_members_done(channel, reply, result)
            }
            (Pending::Unsubscribe(channel, reply), Done::Unsubscribe(result)) => {
                self.on_unsubscribe_done(channel, reply, result)
            }
            (Pending::Goodbye(reply), Done::Goodbye(errors)) => self.on_goodbye_done(reply, errors),
            (pending, done) => {
                debug_assert!(false, "mismatched completion {done:?} for {pending:?}");
                self.settle_cancelled(pending, None);
            }
        }
    }

    /// Cancels every call in flight (their link is gone) and settles each: publishes go back
    /// to the queue in their place, presence changes are kept for the next connection, member
    /// lists fall back to the last one known. With `terminal`, replies get that error instead.
    pub(super) fn cancel_calls(&mut self, terminal: Option<&RealtimeError>) {
        self.calls.abort_all();
        self.calls.detach_all();
        let mut pending: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        // Publishes first, so their queue order is restored before anything else looks at it.
        pending.sort_by_key(|p| !matches!(p, Pending::Publish(_)));
        for p in pending {
            self.settle_cancelled(p, terminal);
        }
        self.connecting = false;
        self.pinging = false;
        self.publishing.clear();
        self.router.table().drop_held();
        self.resubscribing.clear();
        self.settled.clear();
        for entry in self.channels.values_mut() {
            entry.establishing = false;
        }
    }

    fn settle_cancelled(&mut self, pending: Pending, terminal: Option<&RealtimeError>) {
        match pending {
            Pending::Publish(ticket) => {
                self.publishing.remove(&ticket.1.message.channel);
                self.outbox.restore(ticket);
            }
            Pending::Presence { reply, release } => {
                if let Some(reply) = reply {
                    let _ = reply.send(terminal.map_or(Ok(()), |e| Err(e.clone())));
                }
                if let Some(channel) = release {
                    self.release_if_unused(&channel, None);
                }
            }
            Pending::Members { channel, reply } => {
                let _ = reply.send(match terminal {
                    Some(e) => Err(e.clone()),
                    None => Ok(self.roster(&channel)),
                });
            }
            Pending::Goodbye(reply) => {
                let _ = reply.send(());
            }
            Pending::Establish(channel) => {
                let delivered = self.router.table().has_position(&channel);
                if let Some(entry) = self.channels.get_mut(&channel) {
                    entry.establishing = false;
                    // Messages arrived for it: it was live, so the next subscribe recovers
                    // from the last one delivered.
                    entry.ever_established |= delivered;
                }
            }
            Pending::History { channel, .. } => {
                // Live messages held back for the recovery are fetched again by the next
                // resubscribe, which recovers from the last position delivered.
                self.router.table().release(&channel);
            }
            Pending::Ping => self.pinging = false,
            Pending::Connect => self.connecting = false,
            Pending::Teardown => self.tearing_down = false,
            // The link the unsubscribe ran on is gone, and the channel with it.
            Pending::Unsubscribe(_, reply) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
            Pending::Typing(_) => {}
        }
    }

    // ---- state and events -------------------------------------------------------------

    pub(super) fn state(&self) -> ConnectionState {
        self.state_tx.borrow().clone()
    }

    pub(super) fn set_state(&mut self, state: ConnectionState) {
        if *self.state_tx.borrow() == state {
            return;
        }
        debug!(?state, "connection state");
        self.state_tx.send_replace(state.clone());
        self.emit(ClientEvent::StateChanged(state));
    }

    pub(super) fn emit(&self, event: ClientEvent) {
        let _ = self.events_tx.send(event);
    }

    /// The error a new operation gets in a terminal state, if any.
    pub(super) fn terminal_error(&self) -> Option<RealtimeError> {
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
        // A retry waits for the lost link's teardown (its completion wakes the loop).
        let mut deadline = self.retry_at.filter(|_| !self.tearing_down);
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
                    .filter(|ch| !self.publish_blocked(ch))
                    .map(|ch| self.throttle.ready_at(ch, now))
                    .min(),
            );
        }
        consider(self.typing.next_deadline());
        deadline
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if !self.tearing_down && self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            self.start_connect();
        }
        if self.session.is_some() && self.next_ping.is_some_and(|at| at <= now) {
            self.start_ping();
        }
        self.flush_outbox();
        for channel in self.typing.expired(Instant::now()) {
            self.send_typing(&channel, false);
        }
    }

    // ---- commands -----------------------------------------------------------------------

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Connect(reply) => self.on_connect(reply),
            Command::Disconnect(reply) => {
                self.drop_link().await;
                let error = RealtimeError::Connection("disconnect() was called".into());
                for w in self.connect_waiters.drain(..) {
                    let _ = w.send(Err(error.clone()));
                }
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
                options,
                reply,
            } => self.on_listen(channel, id, sink, options, reply),
            Command::Unlisten { channel, id, reply } => {
                if let Some(entry) = self.channels.get_mut(&channel) {
                    entry.listeners.retain(|l| l.id != id);
                }
                self.router.table().remove_listener(&channel, id);
                self.release_if_unused(&channel, reply);
            }
            Command::UnsubscribeAll(reply) => self.on_unsubscribe_all(reply),
            Command::Publish(publish) => self.on_publish(publish),
            Command::PresenceEnter {
                channel,
                data,
                reply,
            } => self.on_presence_enter(channel, data, reply),
            Command::PresenceUpdate {
                channel,
                data,
                reply,
            } => self.on_presence_update(channel, data, reply),
            Command::PresenceLeave { channel, reply } => self.on_presence_leave(channel, reply),
            Command::PresenceMembers { channel, reply } => self.on_members(channel, reply),
            Command::PresenceHere { channel, reply } => self.on_presence_here(channel, reply),
            Command::StartTyping(channel) => {
                if self.session.is_some()
                    && self
                        .typing
                        .start(&self.cfg.typing, &channel, Instant::now())
                {
                    self.send_typing(&channel, true);
                }
            }
            Command::StopTyping(channel) => {
                if self.typing.stop(&channel) {
                    self.send_typing(&channel, false);
                }
            }
        }
    }
}

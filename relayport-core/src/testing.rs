//! A scripted provider for testing code written against [`RealtimeClient`](crate::RealtimeClient)
//! (feature `testing`).
//!
//! [`ScriptedProvider`] records every call and can be told to fail, drop or delay. Behind it
//! stands a tiny in-memory "server": per-channel logs with sequence numbers, so that messages
//! published while a client is away can be replayed (at subscribe time or through `history`),
//! or lost, as the test chooses. It runs on tokio's clock, so it works under `start_paused`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::channel::Channel;
use crate::error::{RealtimeError, Result};
use crate::message::{Message, OutboundMessage, Position};
use crate::payload::Payload;
use crate::presence::{PresenceChange, PresenceMember};
use crate::provider::{
    Capabilities, CloseReason, EventSink, HistoryPage, ProviderEvent, RealtimeProvider, Recovery,
    Session, SubscribeOptions, Subscribed,
};

/// A call the provider received, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `connect`.
    Connect,
    /// `disconnect`.
    Disconnect,
    /// `subscribe`, with what it was given.
    Subscribe {
        /// The channel.
        channel: Channel,
        /// The replay position asked for.
        since: Option<Position>,
        /// The authorization given.
        auth: Option<crate::auth::ChannelAuth>,
        /// The presence data given.
        presence_data: Option<Value>,
        /// The per-subscription options given.
        extensions: crate::options::SubscriptionOptions,
    },
    /// `unsubscribe`.
    Unsubscribe(Channel),
    /// `publish`.
    Publish(OutboundMessage),
    /// `presence_enter`.
    PresenceEnter(Channel, Value),
    /// `presence_update`.
    PresenceUpdate(Channel, Value),
    /// `presence_leave`.
    PresenceLeave(Channel),
    /// `presence_members`.
    PresenceMembers(Channel),
    /// `ping`.
    Ping,
    /// `history`.
    History(Channel, Position),
    /// `history_page`.
    HistoryPage(Channel, crate::history::HistoryQuery),
}

/// How `ping` behaves.
#[derive(Debug, Clone, PartialEq)]
pub enum PingBehavior {
    /// Answer after this round trip (slept on tokio's clock).
    Rtt(Duration),
    /// Never answer.
    Hang,
    /// Fail with this error.
    Fail(RealtimeError),
}

/// How the provider recovers missed messages when resubscribed with `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Replay the log through the sink at subscribe time (like the self-hosted server).
    AtSubscribe,
    /// Answer `NotAttempted` and serve the log through `history` (like Ably).
    History,
    /// No recovery at all (like Pusher): `capabilities().history` is false.
    None,
}

#[derive(Debug)]
struct ServerState {
    calls: Vec<Call>,
    connect_failures: VecDeque<RealtimeError>,
    connect_hangs: u32,
    subscribe_refusals: HashMap<Channel, RealtimeError>,
    publish_failures: VecDeque<RealtimeError>,
    ping: PingBehavior,
    recovery: RecoveryMode,
    echo: bool,
    /// What the client runtime asked through `set_echo`, if it did.
    echo_requested: Option<bool>,
    capabilities: Capabilities,
    heartbeat_interval: Option<Duration>,
    max_payload: Option<usize>,
    resumed: bool,
    connections: u32,
    logs: HashMap<Channel, Vec<Message>>,
    /// Per channel: messages at or before this sequence are gone from the log.
    truncated: HashMap<Channel, u64>,
    members: HashMap<Channel, Vec<PresenceMember>>,
    sink: Option<EventSink>,
    subscribed: HashSet<Channel>,
    /// How long every subscribe takes (a server round trip), unless `subscribe_delays` names
    /// the channel.
    subscribe_delay: Duration,
    subscribe_delays: HashMap<Channel, Duration>,
    publish_delay: Duration,
    /// Subscribes and publishes waiting out their delay now, and the most at once so far.
    in_flight: usize,
    peak_in_flight: usize,
}

/// The control side of a [`ScriptedProvider`]: cheap to clone, usable while the client owns
/// the provider.
#[derive(Debug, Clone)]
pub struct Script {
    state: Arc<Mutex<ServerState>>,
    live_tasks: Arc<AtomicUsize>,
}

/// A provider that records every call and does what its [`Script`] says.
#[derive(Debug)]
pub struct ScriptedProvider {
    script: Script,
    stop_reader: Mutex<Option<oneshot::Sender<()>>>,
}

impl ScriptedProvider {
    /// A provider and its script. Defaults: connects succeed, pings answer in 10 ms, presence,
    /// presence updates and history (replayed at subscribe time) are supported, publishes are
    /// recorded but not echoed.
    pub fn new() -> (Self, Script) {
        let script = Script {
            state: Arc::new(Mutex::new(ServerState {
                calls: Vec::new(),
                connect_failures: VecDeque::new(),
                connect_hangs: 0,
                subscribe_refusals: HashMap::new(),
                publish_failures: VecDeque::new(),
                ping: PingBehavior::Rtt(Duration::from_millis(10)),
                recovery: RecoveryMode::AtSubscribe,
                echo: false,
                echo_requested: None,
                capabilities: Capabilities {
                    presence: true,
                    presence_update: true,
                    history: true,
                    client_publish: true,
                    client_publish_public: true,
                    wildcards: true,
                    history_pages: true,
                    max_payload: crate::DEFAULT_MAX_PAYLOAD,
                    binary_payloads: true,
                    // What `echo_publishes(true)` does; a test of the runtime's local echo sets
                    // `Echo::ServerSkips` through `set_capabilities`.
                    echo: crate::provider::Echo::ServerEchoes,
                },
                heartbeat_interval: None,
                max_payload: None,
                resumed: false,
                connections: 0,
                logs: HashMap::new(),
                truncated: HashMap::new(),
                members: HashMap::new(),
                sink: None,
                subscribed: HashSet::new(),
                subscribe_delay: Duration::ZERO,
                subscribe_delays: HashMap::new(),
                publish_delay: Duration::ZERO,
                in_flight: 0,
                peak_in_flight: 0,
            })),
            live_tasks: Arc::new(AtomicUsize::new(0)),
        };
        (
            Self {
                script: script.clone(),
                stop_reader: Mutex::new(None),
            },
            script,
        )
    }
}

impl Script {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Every call so far, forgetting them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.lock().calls)
    }

    /// The published messages so far, in order.
    pub fn published(&self) -> Vec<OutboundMessage> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Publish(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// How many connections succeeded.
    pub fn connections(&self) -> u32 {
        self.lock().connections
    }

    /// How many reader tasks the provider has running.
    pub fn live_tasks(&self) -> usize {
        self.live_tasks.load(Ordering::SeqCst)
    }

    /// Whether a link is up.
    pub fn is_connected(&self) -> bool {
        self.lock().sink.is_some()
    }

    /// The next `n` connection attempts fail with `error`.
    pub fn fail_connects(&self, n: usize, error: RealtimeError) {
        let mut s = self.lock();
        for _ in 0..n {
            s.connect_failures.push_back(error.clone());
        }
    }

    /// The next `n` connection attempts never answer.
    pub fn hang_connects(&self, n: u32) {
        self.lock().connect_hangs += n;
    }

    /// Subscribing to `channel` fails with `error` (until [`Script::allow_subscribe`]).
    pub fn refuse_subscribe(&self, channel: &Channel, error: RealtimeError) {
        self.lock()
            .subscribe_refusals
            .insert(channel.clone(), error);
    }

    /// Subscribing to `channel` succeeds again.
    pub fn allow_subscribe(&self, channel: &Channel) {
        self.lock().subscribe_refusals.remove(channel);
    }

    /// Every subscribe answers after `delay` on tokio's clock (a server round trip); the
    /// subscription is live, and any replay delivered, once it answers.
    pub fn delay_subscribes(&self, delay: Duration) {
        self.lock().subscribe_delay = delay;
    }

    /// Subscribing to `channel` answers after `delay` (overrides [`Script::delay_subscribes`]).
    pub fn delay_subscribe(&self, channel: &Channel, delay: Duration) {
        self.lock().subscribe_delays.insert(channel.clone(), delay);
    }

    /// Every publish answers after `delay` on tokio's clock; it reaches the log when it answers.
    pub fn delay_publishes(&self, delay: Duration) {
        self.lock().publish_delay = delay;
    }

    /// Delayed subscribes and publishes waiting for their answer right now.
    pub fn calls_in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// The most delayed subscribes and publishes that were waiting for their answer at once.
    pub fn peak_calls_in_flight(&self) -> usize {
        self.lock().peak_in_flight
    }

    /// The next publish fails with `error`.
    pub fn fail_next_publish(&self, error: RealtimeError) {
        self.lock().publish_failures.push_back(error);
    }

    /// How `ping` behaves from now on.
    pub fn set_ping(&self, ping: PingBehavior) {
        self.lock().ping = ping;
    }

    /// How missed messages are recovered (also sets `capabilities().history`).
    pub fn set_recovery(&self, mode: RecoveryMode) {
        let mut s = self.lock();
        s.recovery = mode;
        s.capabilities.history = mode != RecoveryMode::None;
    }

    /// Replaces the capabilities reported (read by the client when it is built).
    pub fn set_capabilities(&self, caps: Capabilities) {
        self.lock().capabilities = caps;
    }

    /// What the client runtime passed to [`RealtimeProvider::set_echo`] (it calls it only when
    /// the capabilities say [`Echo::Configurable`](crate::Echo::Configurable)); `None` if it
    /// did not.
    pub fn echo_requested(&self) -> Option<bool> {
        self.lock().echo_requested
    }

    /// Whether publishes from the client are delivered back to it (as a server would to every
    /// subscriber, sender included), with `sender` = the publishing connection's id.
    pub fn echo_publishes(&self, echo: bool) {
        self.lock().echo = echo;
    }

    /// Server hints returned by the next connections.
    pub fn set_session_hints(
        &self,
        heartbeat_interval: Option<Duration>,
        max_payload: Option<usize>,
        resumed: bool,
    ) {
        let mut s = self.lock();
        s.heartbeat_interval = heartbeat_interval;
        s.max_payload = max_payload;
        s.resumed = resumed;
    }

    /// The member list `presence_members` answers with.
    pub fn set_members(&self, channel: &Channel, members: Vec<PresenceMember>) {
        self.lock().members.insert(channel.clone(), members);
    }

    /// Someone else publishes on `channel`: the message is logged with the next sequence and
    /// delivered now if the client is connected and subscribed. Returns its position.
    pub fn server_publish(&self, channel: &Channel, event: &str, data: Value) -> Position {
        let mut s = self.lock();
        server_append(&mut s, channel, event, data, None)
    }

    /// Forgets the log of `channel` up to and including `sequence` (the history window moved).
    pub fn truncate_history(&self, channel: &Channel, sequence: u64) {
        let mut s = self.lock();
        s.truncated.insert(channel.clone(), sequence);
        if let Some(log) = s.logs.get_mut(channel) {
            log.retain(|m| m.position.as_ref().is_some_and(|p| p.sequence > sequence));
        }
    }

    /// Reports an event through the current link's sink; false when no link is up.
    pub fn emit(&self, event: ProviderEvent) -> bool {
        let s = self.lock();
        s.sink.as_ref().is_some_and(|sink| sink.emit(event))
    }

    /// Emits a message as if the server sent it (not logged).
    pub fn emit_message(&self, message: Message) -> bool {
        self.emit(ProviderEvent::Message(message))
    }

    /// Emits a presence change.
    pub fn emit_presence(&self, channel: &Channel, change: PresenceChange) -> bool {
        self.emit(ProviderEvent::Presence {
            channel: channel.clone(),
            change,
        })
    }

    /// The server drops the link with `reason` (the client sees `Closed`).
    pub fn drop_link(&self, reason: CloseReason) -> bool {
        let mut s = self.lock();
        s.subscribed.clear();
        match s.sink.take() {
            Some(sink) => sink.closed(reason),
            None => false,
        }
    }
}

fn server_append(
    s: &mut ServerState,
    channel: &Channel,
    event: &str,
    data: impl Into<Payload>,
    sender: Option<String>,
) -> Position {
    let floor = s.truncated.get(channel).copied().unwrap_or(0);
    let log = s.logs.entry(channel.clone()).or_default();
    let sequence = log
        .last()
        .and_then(|m| m.position.as_ref())
        .map_or(floor, |p| p.sequence)
        + 1;
    let position = Position::new(sequence);
    let mut message = Message::new(channel.clone(), event, data).with_position(position.clone());
    message.sender = sender;
    message.id = Some(format!("{channel}#{sequence}"));
    message.timestamp = Some(1_700_000_000_000 + sequence);
    log.push(message.clone());
    let subscribed = s.subscribed.iter().any(|pattern| pattern.matches(channel));
    if subscribed && let Some(sink) = &s.sink {
        sink.message(message);
    }
    position
}

fn replay_after(s: &ServerState, channel: &Channel, since: &Position) -> Option<Vec<Message>> {
    let floor = s.truncated.get(channel).copied().unwrap_or(0);
    if since.sequence < floor {
        return None;
    }
    Some(
        s.logs
            .get(channel)
            .map(|log| {
                log.iter()
                    .filter(|m| {
                        m.position
                            .as_ref()
                            .is_some_and(|p| p.sequence > since.sequence)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// Counts a delayed call as in flight until it answers or is cancelled.
struct InFlight(Script);

impl InFlight {
    fn enter(script: &Script) -> Self {
        let mut s = script.lock();
        s.in_flight += 1;
        s.peak_in_flight = s.peak_in_flight.max(s.in_flight);
        Self(script.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
    }
}

/// Waits out a scripted delay, counted as in flight meanwhile.
async fn answer_after(script: &Script, delay: Duration) {
    if delay.is_zero() {
        return;
    }
    let _in_flight = InFlight::enter(script);
    tokio::time::sleep(delay).await;
}

struct TaskGuard(Arc<AtomicUsize>);
impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl RealtimeProvider for ScriptedProvider {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn capabilities(&self) -> Capabilities {
        self.script.lock().capabilities.clone()
    }

    fn set_echo(&self, echo: bool) {
        self.script.lock().echo_requested = Some(echo);
    }

    async fn connect(&self, sink: EventSink) -> Result<Session> {
        let hang = {
            let mut s = self.script.lock();
            s.calls.push(Call::Connect);
            if let Some(e) = s.connect_failures.pop_front() {
                return Err(e);
            }
            if s.connect_hangs > 0 {
                s.connect_hangs -= 1;
                true
            } else {
                false
            }
        };
        if hang {
            std::future::pending::<()>().await;
        }
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        *self.stop_reader.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop_tx);
        self.script.live_tasks.fetch_add(1, Ordering::SeqCst);
        let guard = TaskGuard(self.script.live_tasks.clone());
        // Stands for a real provider's reader task: it lives as long as the link.
        tokio::spawn(async move {
            let _guard = guard;
            let _ = stop_rx.await;
        });
        let mut s = self.script.lock();
        s.connections += 1;
        s.sink = Some(sink);
        s.subscribed.clear();
        Ok(Session::new(format!("conn-{}", s.connections))
            .with_heartbeat_interval(s.heartbeat_interval)
            .with_max_payload(s.max_payload)
            .with_resumed(s.resumed))
    }

    async fn disconnect(&self) -> Result<()> {
        let stop = self
            .stop_reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let mut s = self.script.lock();
        s.calls.push(Call::Disconnect);
        s.sink = None;
        s.subscribed.clear();
        Ok(())
    }

    async fn subscribe(&self, channel: &Channel, options: &SubscribeOptions) -> Result<Subscribed> {
        let delay = {
            let mut s = self.script.lock();
            s.calls.push(Call::Subscribe {
                channel: channel.clone(),
                since: options.since.clone(),
                auth: options.auth.clone(),
                presence_data: options.presence_data.clone(),
                extensions: options.extensions.clone(),
            });
            s.subscribe_delays
                .get(channel)
                .copied()
                .unwrap_or(s.subscribe_delay)
        };
        answer_after(&self.script, delay).await;
        let mut s = self.script.lock();
        if s.sink.is_none() {
            return Err(RealtimeError::Connection("not connected".into()));
        }
        if let Some(e) = s.subscribe_refusals.get(channel) {
            return Err(e.clone());
        }
        if channel.kind().requires_auth() && options.auth.is_none() {
            return Err(RealtimeError::Unauthorized(format!("{channel} needs auth")));
        }
        s.subscribed.insert(channel.clone());
        let position = s
            .logs
            .get(channel)
            .and_then(|l| l.last())
            .and_then(|m| m.position.clone());
        let recovery = match (&options.since, s.recovery) {
            (Some(since), RecoveryMode::AtSubscribe) => match replay_after(&s, channel, since) {
                Some(missed) => {
                    if let Some(sink) = &s.sink {
                        for m in missed {
                            sink.message(m);
                        }
                    }
                    Recovery::Recovered
                }
                None => Recovery::Gap,
            },
            _ => Recovery::NotAttempted,
        };
        Ok(Subscribed { recovery, position })
    }

    async fn unsubscribe(&self, channel: &Channel) -> Result<()> {
        let mut s = self.script.lock();
        s.calls.push(Call::Unsubscribe(channel.clone()));
        s.subscribed.remove(channel);
        Ok(())
    }

    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        let delay = {
            let mut s = self.script.lock();
            s.calls.push(Call::Publish(message.clone()));
            s.publish_delay
        };
        answer_after(&self.script, delay).await;
        let mut s = self.script.lock();
        if s.sink.is_none() {
            return Err(RealtimeError::Connection("not connected".into()));
        }
        if let Some(e) = s.publish_failures.pop_front() {
            return Err(e);
        }
        if s.echo {
            // The publisher is the current connection (ids are `conn-<n>`).
            let sender = Some(format!("conn-{}", s.connections));
            server_append(
                &mut s,
                &message.channel,
                &message.event,
                message.data.clone(),
                sender,
            );
        }
        Ok(())
    }

    async fn presence_enter(&self, channel: &Channel, data: Value) -> Result<()> {
        self.script
            .lock()
            .calls
            .push(Call::PresenceEnter(channel.clone(), data));
        Ok(())
    }

    async fn presence_update(&self, channel: &Channel, data: Value) -> Result<()> {
        self.script
            .lock()
            .calls
            .push(Call::PresenceUpdate(channel.clone(), data));
        Ok(())
    }

    async fn presence_leave(&self, channel: &Channel) -> Result<()> {
        self.script
            .lock()
            .calls
            .push(Call::PresenceLeave(channel.clone()));
        Ok(())
    }

    async fn presence_members(&self, channel: &Channel) -> Result<Vec<PresenceMember>> {
        let mut s = self.script.lock();
        s.calls.push(Call::PresenceMembers(channel.clone()));
        s.members
            .get(channel)
            .cloned()
            .ok_or_else(|| RealtimeError::Unsupported("presence members (none scripted)".into()))
    }

    async fn ping(&self) -> Result<Duration> {
        let behavior = {
            let mut s = self.script.lock();
            s.calls.push(Call::Ping);
            s.ping.clone()
        };
        match behavior {
            PingBehavior::Rtt(d) => {
                tokio::time::sleep(d).await;
                Ok(d)
            }
            PingBehavior::Hang => std::future::pending().await,
            PingBehavior::Fail(e) => Err(e),
        }
    }

    async fn history(&self, channel: &Channel, since: &Position) -> Result<HistoryPage> {
        let mut s = self.script.lock();
        s.calls.push(Call::History(channel.clone(), since.clone()));
        if s.recovery != RecoveryMode::History {
            return Err(RealtimeError::Unsupported("history".into()));
        }
        Ok(match replay_after(&s, channel, since) {
            Some(messages) => HistoryPage {
                messages,
                complete: true,
            },
            None => HistoryPage {
                messages: s.logs.get(channel).cloned().unwrap_or_default(),
                complete: false,
            },
        })
    }

    /// Pages the channel's log (at most 100 a page) with the core's one paging rule.
    async fn history_page(
        &self,
        channel: &Channel,
        query: &crate::history::HistoryQuery,
    ) -> Result<crate::history::MessagePage> {
        let mut s = self.script.lock();
        s.calls
            .push(Call::HistoryPage(channel.clone(), query.clone()));
        let log = s.logs.get(channel).map(Vec::as_slice).unwrap_or_default();
        let (page, next) = crate::history::page_log(log, query, 100, None, |m| {
            (m.position.as_ref().map_or(0, |p| p.sequence), m.timestamp)
        })?;
        Ok(crate::history::MessagePage::new(
            page.into_iter().cloned().collect(),
            next,
        ))
    }
}

//! The in-memory broker: channels, their streams (sequence, epoch, history), retained
//! snapshots, presence, subscriptions (exact and wildcard) and the fan-out to connections.
//!
//! All state sits behind one mutex that is never held across an `.await`. Fan-out only ever
//! `try_send`s into a connection's queue, bounded in frames and in bytes: a connection whose
//! queue is full is kicked as a slow consumer, never awaited, so a client that stops reading
//! cannot grow memory or slow anyone else down.
//!
//! Wildcard patterns are matched against a published channel before the lock is taken, on a
//! copy of the pattern list; each match is linear in pattern × name (see
//! [`Channel::match_with_steps`]). A channel nobody uses any more (no subscriber, member,
//! snapshot or live history) is forgotten as soon as its last subscriber leaves.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use relayport_core::{Channel, ChannelKind, Position, PresenceMember};
use serde_json::Value;
use tokio::sync::mpsc;

use super::clock::{Clock, unix_ms};
use super::connection::{ByteBudget, Encoded, Kick, Outbound};
use super::history::{Adopted, Recovery, Stream};
use super::metrics::Metrics;
use super::presence::{ConnId, PresenceChange, PresenceSet};
use crate::protocol::{Limits, MessageFrame, ServerFrame, close, code};

/// The broker's settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Messages kept per channel for recovery.
    pub history_size: usize,
    /// How long a message stays in history.
    pub history_ttl: Duration,
    /// Subscriptions per connection.
    pub max_subscriptions: usize,
    /// Frames queued per connection before it is disconnected as a slow consumer.
    pub send_queue: usize,
    /// Bytes queued per connection (frames not yet written to its socket) before it is
    /// disconnected as a slow consumer. A single frame always fits an empty queue.
    pub send_queue_bytes: usize,
    /// The clock for history TTLs.
    pub clock: Clock,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            history_size: 100,
            history_ttl: Duration::from_secs(120),
            max_subscriptions: limits.max_subscriptions,
            send_queue: limits.send_queue,
            send_queue_bytes: DEFAULT_SEND_QUEUE_BYTES,
            clock: Clock::system(),
        }
    }
}

/// The default byte budget of a connection's send queue: 16 MiB, room for the largest
/// `subscribed` replay with the default history (100 messages of at most 64 KiB).
pub const DEFAULT_SEND_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// A refusal, as an `error` frame's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A code from [`crate::protocol::code`].
    pub code: &'static str,
    /// A human-readable message.
    pub message: String,
}

impl Refusal {
    /// A refusal with a code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// The concrete channel (never a wildcard).
    pub channel: Channel,
    /// The event name.
    pub event: String,
    /// The payload (base64 text when `encoding` is `base64`).
    pub data: Value,
    /// `base64` for a binary payload (checked on the way in); `None` for JSON.
    pub encoding: Option<String>,
    /// The publishing connection's socket id (client publishes).
    pub sender: Option<String>,
    /// A socket id that must not receive it.
    pub exclude: Option<String>,
    /// Store it as the channel's snapshot.
    pub retain: bool,
}

/// Checks a published payload as it arrived (`data` with its `encoding`) against
/// `max_payload`, counted as the payload's own size (the JSON text, or the decoded bytes), the
/// way clients count it. The error is `(code, message)` for an error frame or response.
pub fn check_payload(
    data: &Value,
    encoding: Option<&str>,
    max_payload: usize,
) -> Result<(), (&'static str, String)> {
    let size = match encoding {
        None => serde_json::to_vec(data).map_or(usize::MAX, |v| v.len()),
        Some(_) => relayport_core::Payload::from_wire(data.clone(), encoding)
            .map_err(|e| (code::MALFORMED, e.to_string()))?
            .size(),
    };
    if size > max_payload {
        return Err((
            code::PAYLOAD_TOO_LARGE,
            format!("limit max_payload: payloads are at most {max_payload} bytes (got {size})"),
        ));
    }
    Ok(())
}

/// A connection's registration: its id, socket id, queue and kick signal.
#[derive(Debug)]
pub struct Registration {
    /// The broker's id for the connection.
    pub conn: ConnId,
    /// The public socket id (signatures are bound to it).
    pub socket_id: String,
    /// The receiving end of the bounded send queue.
    pub rx: mpsc::Receiver<Outbound>,
    /// Closes the connection with a code.
    pub kick: Arc<Kick>,
}

/// What a subscription asks for.
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    /// The request's `ref`.
    pub reference: Option<String>,
    /// Presence channels: the user (id, info), already verified.
    pub user: Option<(String, Value)>,
    /// Replay after this position.
    pub since: Option<Position>,
    /// The scale-out engine's copy of the channel's stream, to seed the local one with.
    pub remote: Option<RemoteStream>,
}

/// A channel's stream as the scale-out engine holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteStream {
    /// The stream's epoch.
    pub epoch: String,
    /// The last sequence assigned.
    pub last_seq: u64,
    /// The retained messages, oldest first.
    pub messages: Vec<MessageFrame>,
    /// The channel's snapshot.
    pub snapshot: Option<MessageFrame>,
    /// Presence channels: the members' connections on live nodes.
    pub presence: Option<Vec<RemoteMember>>,
}

/// Whether snapshot `new` may replace `old` (the same stream, not older).
fn newer_snapshot(old: Option<&MessageFrame>, new: &MessageFrame) -> bool {
    match old {
        None => true,
        Some(old) => old.epoch != new.epoch || (new.seq, new.ts) >= (old.seq, old.ts),
    }
}

/// A presence change of one connection, as the scale-out engine carries it between nodes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PresenceOp {
    /// The presence channel (canonical name).
    pub channel: String,
    /// The connection's socket id.
    pub socket_id: String,
    /// The node the connection is on.
    pub node: String,
    /// What happened.
    pub op: PresenceOpKind,
    /// The user.
    pub user_id: String,
    /// The member data (enter, update).
    #[serde(default)]
    pub data: Value,
}

/// The kind of a [`PresenceOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceOpKind {
    /// The connection entered as the user.
    Enter,
    /// The connection changed the member's data.
    Update,
    /// The connection left.
    Leave,
}

/// One connection's presence entry on another node, as the scale-out engine holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteMember {
    /// The connection's socket id.
    pub socket_id: String,
    /// The node it is on.
    pub node: String,
    /// The user.
    pub user_id: String,
    /// The member data.
    pub data: Value,
}

/// A channel's counts, for `GET /channels/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelInfo {
    /// The channel.
    pub channel: String,
    /// Distinct connections that receive the channel (directly or through a pattern).
    pub occupancy: usize,
    /// Subscriptions that deliver the channel (exact plus matching patterns).
    pub subscription_count: usize,
    /// Presence members (users).
    pub presence_members: usize,
    /// The stream's position.
    pub position: Option<Position>,
    /// Whether a snapshot is retained.
    pub has_snapshot: bool,
}

struct Conn {
    socket_id: Arc<str>,
    tx: mpsc::Sender<Outbound>,
    budget: Arc<ByteBudget>,
    max_bytes: usize,
    kick: Arc<Kick>,
    kicked: bool,
    /// Channel keys and pattern keys this connection is subscribed to.
    subs: HashSet<String>,
    /// Presence channels: the user this connection is signed in as.
    users: HashMap<String, (String, Value)>,
}

struct ChannelState {
    stream: Stream,
    snapshot: Option<Arc<MessageFrame>>,
    subs: BTreeSet<ConnId>,
    presence: PresenceSet,
    /// Connections on other nodes in `presence`: socket id -> (local id, user id).
    remote: HashMap<String, (ConnId, String)>,
    /// Whether `presence` holds the other nodes' members (scale-out engine).
    presence_seeded: bool,
}

struct PatternState {
    pattern: Channel,
    subs: BTreeSet<ConnId>,
}

#[derive(Default)]
struct State {
    node: String,
    presence_sink: Option<mpsc::Sender<PresenceOp>>,
    conns: HashMap<ConnId, Conn>,
    socket_ids: HashSet<Arc<str>>,
    channels: HashMap<String, ChannelState>,
    patterns: HashMap<String, PatternState>,
}

/// The subscribed patterns, copied out of the state whenever the set of patterns changes, so
/// that matching a published channel against them never runs under the state lock.
type PatternList = Arc<Vec<(String, Channel)>>;

struct Inner {
    config: BrokerConfig,
    state: Mutex<State>,
    pattern_list: Mutex<PatternList>,
    metrics: Arc<Metrics>,
    next_conn: AtomicU64,
    node: String,
}

/// The in-memory broker. Cheap to clone; clones share state, which is what lets a server be
/// stopped and started again on the same broker (history survives an in-process restart).
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("config", &self.inner.config)
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl Default for Broker {
    fn default() -> Self {
        Self::new(BrokerConfig::default())
    }
}

fn deliver(conn: &mut Conn, frame: &Arc<Encoded>, metrics: &Metrics) -> bool {
    if conn.kicked {
        metrics.drop_frame();
        return false;
    }
    let Some(item) = Outbound::charge(frame, &conn.budget, conn.max_bytes) else {
        // Over the byte budget: the client is not reading fast enough.
        metrics.drop_frame();
        conn.kicked = true;
        conn.kick.kick(close::SLOW_CONSUMER);
        return false;
    };
    match conn.tx.try_send(item) {
        Ok(()) => {
            let depth = conn.tx.max_capacity() - conn.tx.capacity();
            metrics.message_out(depth as u64);
            true
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            metrics.drop_frame();
            conn.kicked = true;
            conn.kick.kick(close::SLOW_CONSUMER);
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            metrics.drop_frame();
            false
        }
    }
}

fn presence_frame(channel: &str, change: PresenceChange) -> Arc<Encoded> {
    Encoded::new(ServerFrame::Presence {
        channel: channel.to_owned(),
        action: change.action,
        member: change.member,
    })
}

impl State {
    fn broadcast_presence(
        &mut self,
        key: &str,
        change: PresenceChange,
        except: Option<ConnId>,
        metrics: &Metrics,
    ) {
        let Some(ch) = self.channels.get(key) else {
            return;
        };
        let frame = presence_frame(key, change);
        let targets: Vec<ConnId> = ch
            .subs
            .iter()
            .copied()
            .filter(|c| Some(*c) != except)
            .collect();
        for id in targets {
            if let Some(conn) = self.conns.get_mut(&id) {
                deliver(conn, &frame, metrics);
            }
        }
    }

    /// Tells the scale-out engine (if any) about a local connection's presence change.
    fn emit(
        &self,
        conn_id: ConnId,
        channel: &str,
        op: PresenceOpKind,
        user_id: &str,
        data: Value,
        metrics: &Metrics,
    ) {
        let (Some(sink), Some(conn)) = (&self.presence_sink, self.conns.get(&conn_id)) else {
            return;
        };
        let op = PresenceOp {
            channel: channel.to_owned(),
            socket_id: conn.socket_id.to_string(),
            node: self.node.clone(),
            op,
            user_id: user_id.to_owned(),
            data,
        };
        if let Err(e) = sink.try_send(op) {
            metrics.drop_frame();
            tracing::warn!("presence change not shared with other nodes: {e}");
        }
    }

    /// Ends one subscription; returns whether the pattern set changed (the caller refreshes
    /// the pattern list) in the second field.
    fn remove_sub(
        &mut self,
        conn_id: ConnId,
        key: &str,
        now: Duration,
        metrics: &Metrics,
    ) -> (bool, bool) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return (false, false);
        };
        if !conn.subs.remove(key) {
            return (false, false);
        }
        let user = conn.users.remove(key);
        if let Some((user_id, _)) = &user {
            self.emit(
                conn_id,
                key,
                PresenceOpKind::Leave,
                user_id,
                Value::Null,
                metrics,
            );
        }
        let mut patterns_changed = false;
        if let Some(p) = self.patterns.get_mut(key) {
            p.subs.remove(&conn_id);
            if p.subs.is_empty() {
                self.patterns.remove(key);
                patterns_changed = true;
            }
        } else if let Some(ch) = self.channels.get_mut(key) {
            ch.subs.remove(&conn_id);
            if let Some((user_id, _)) = user
                && let Some(change) = ch.presence.leave(conn_id, &user_id)
            {
                self.broadcast_presence(key, change, Some(conn_id), metrics);
            }
            self.forget_if_unused(key, now);
        }
        metrics.unsubscribed(1);
        (true, patterns_changed)
    }

    /// Removes a channel nobody uses: no subscriber, no member, no snapshot, no live history
    /// (subscribe/unsubscribe churn must not leave channels behind).
    fn forget_if_unused(&mut self, key: &str, now: Duration) {
        if let Some(ch) = self.channels.get_mut(key)
            && ch.subs.is_empty()
            && ch.presence.is_empty()
            && ch.snapshot.is_none()
            && ch.stream.is_empty_at(now)
        {
            self.channels.remove(key);
        }
    }

    fn pattern_list(&self) -> PatternList {
        Arc::new(
            self.patterns
                .iter()
                .map(|(k, p)| (k.clone(), p.pattern.clone()))
                .collect(),
        )
    }
}

impl Broker {
    /// A broker with these settings.
    pub fn new(config: BrokerConfig) -> Self {
        let node = format!("{:08x}", fastrand::u32(..));
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    node: node.clone(),
                    ..State::default()
                }),
                pattern_list: Mutex::new(Arc::new(Vec::new())),
                metrics: Arc::new(Metrics::default()),
                next_conn: AtomicU64::new(1),
                node,
            }),
        }
    }

    /// This broker's node id (the prefix of its socket ids).
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// Where local presence changes go for other nodes (the scale-out engine); `None` stops.
    pub fn set_presence_sink(&self, sink: Option<mpsc::Sender<PresenceOp>>) {
        self.lock().presence_sink = sink;
    }

    /// Applies another node's presence change to a channel this node follows, telling the
    /// local subscribers about member joins, updates and leaves.
    pub fn apply_presence_op(&self, op: PresenceOp) {
        if op.node == self.inner.node {
            return;
        }
        let Ok(channel) = Channel::parse(&op.channel) else {
            return;
        };
        if channel.kind() != ChannelKind::Presence {
            return;
        }
        let key = channel.to_string();
        let metrics = &self.inner.metrics;
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(ch) = state.channels.get_mut(&key).filter(|c| c.presence_seeded) else {
            return;
        };
        let mut changes = Vec::new();
        match op.op {
            PresenceOpKind::Enter => {
                let cid = match ch.remote.get(&op.socket_id).cloned() {
                    Some((cid, old)) if old == op.user_id => cid,
                    Some((cid, old)) => {
                        changes.extend(ch.presence.leave(cid, &old));
                        ch.remote
                            .insert(op.socket_id.clone(), (cid, op.user_id.clone()));
                        cid
                    }
                    None => {
                        let cid = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
                        ch.remote
                            .insert(op.socket_id.clone(), (cid, op.user_id.clone()));
                        cid
                    }
                };
                changes.extend(ch.presence.enter(cid, &op.user_id, op.data));
            }
            PresenceOpKind::Update => {
                if let Some((cid, user)) = ch.remote.get(&op.socket_id)
                    && *user == op.user_id
                {
                    changes.extend(ch.presence.update(*cid, &op.user_id, op.data));
                }
            }
            PresenceOpKind::Leave => {
                if let Some((cid, user)) = ch.remote.remove(&op.socket_id) {
                    changes.extend(ch.presence.leave(cid, &user));
                }
            }
        }
        for change in changes {
            state.broadcast_presence(&key, change, None, metrics);
        }
    }

    /// The broker's settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than refusing service; keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> Duration {
        self.inner.config.clock.now()
    }

    /// Publishes a fresh copy of the pattern list; called with the state lock held, so a
    /// pattern acknowledged as subscribed is in the list before any later publish reads it.
    fn refresh_patterns(&self, state: &State) {
        let list = state.pattern_list();
        *self
            .inner
            .pattern_list
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = list;
    }

    /// The keys of the subscribed patterns that match `channel`, computed without the state
    /// lock (each match costs at most (pattern segments + 2) × (name segments + 1) steps).
    fn matching_patterns(&self, channel: &Channel) -> Vec<String> {
        if channel.kind() != ChannelKind::Public || channel.is_wildcard() {
            return Vec::new();
        }
        let list = self
            .inner
            .pattern_list
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        list.iter()
            .filter(|(_, p)| p.matches(channel))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Registers a connection, with a bounded send queue of `send_queue` frames.
    pub fn register(&self) -> Registration {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        let mut socket_id = format!("{}.{}", self.inner.node, conn);
        // A client-chosen SSE socket id may have taken the generated one: never share an id.
        while state.socket_ids.contains(socket_id.as_str()) {
            socket_id = format!("{}.{}.{:08x}", self.inner.node, conn, fastrand::u32(..));
        }
        self.register_inner(conn, socket_id, &mut state)
    }

    /// Registers a connection under a socket id the client chose (SSE with signed private
    /// channels), refused when that id is in use.
    pub fn register_as(&self, socket_id: &str) -> Result<Registration, Refusal> {
        let valid = !socket_id.is_empty()
            && socket_id.len() <= 64
            && socket_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !valid {
            return Err(Refusal::new(
                code::MALFORMED,
                "socket_id: 1 to 64 characters of A-Z a-z 0-9 . _ -",
            ));
        }
        let mut state = self.lock();
        if state.socket_ids.contains(socket_id) {
            return Err(Refusal::new(code::CONFLICT, "socket_id is in use"));
        }
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        Ok(self.register_inner(conn, socket_id.to_owned(), &mut state))
    }

    fn register_inner(&self, conn: ConnId, socket_id: String, state: &mut State) -> Registration {
        let (tx, rx) = mpsc::channel(self.inner.config.send_queue.max(1));
        let budget = Arc::new(ByteBudget::default());
        let kick = Arc::new(Kick::default());
        let id: Arc<str> = Arc::from(socket_id.as_str());
        state.socket_ids.insert(id.clone());
        state.conns.insert(
            conn,
            Conn {
                socket_id: id,
                tx,
                budget,
                max_bytes: self.inner.config.send_queue_bytes,
                kick: kick.clone(),
                kicked: false,
                subs: HashSet::new(),
                users: HashMap::new(),
            },
        );
        self.inner.metrics.connection_opened();
        Registration {
            conn,
            socket_id,
            rx,
            kick,
        }
    }

    /// Removes a connection: its subscriptions end and its presence memberships leave.
    pub fn unregister(&self, conn_id: ConnId) {
        let mut state = self.lock();
        let Some(keys) = state
            .conns
            .get(&conn_id)
            .map(|c| c.subs.iter().cloned().collect::<Vec<_>>())
        else {
            return;
        };
        let now = self.now();
        let mut patterns_changed = false;
        for key in keys {
            patterns_changed |= state.remove_sub(conn_id, &key, now, &self.inner.metrics).1;
        }
        if patterns_changed {
            self.refresh_patterns(&state);
        }
        if let Some(conn) = state.conns.remove(&conn_id) {
            state.socket_ids.remove(&conn.socket_id);
        }
        drop(state);
        self.inner.metrics.connection_closed();
    }

    /// Asks every connection to close with `code` (shutdown: `SERVICE_RESTART`).
    pub fn kick_all(&self, code: u16) {
        let state = self.lock();
        for conn in state.conns.values() {
            conn.kick.kick(code);
        }
    }

    /// How many connections are registered.
    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }

    /// Queues one frame to one connection (answers: ack, pong, error…). Returns whether it
    /// was queued.
    pub fn send(&self, conn_id: ConnId, frame: ServerFrame) -> bool {
        if matches!(frame, ServerFrame::Error { .. }) {
            self.inner.metrics.error_sent();
        }
        let encoded = Encoded::new(frame);
        let mut state = self.lock();
        match state.conns.get_mut(&conn_id) {
            Some(conn) => deliver(conn, &encoded, &self.inner.metrics),
            None => false,
        }
    }

    /// Queues one already encoded frame to one connection (a Pusher-protocol frame). Returns
    /// whether it was queued.
    pub fn send_encoded(&self, conn_id: ConnId, frame: &Arc<Encoded>) -> bool {
        let mut state = self.lock();
        match state.conns.get_mut(&conn_id) {
            Some(conn) => deliver(conn, frame, &self.inner.metrics),
            None => false,
        }
    }

    /// The concrete channels that have at least one exact subscriber, with their counts
    /// (pattern subscribers are not counted), for the Pusher channel list.
    pub fn occupied_channels(&self) -> Vec<ChannelInfo> {
        let state = self.lock();
        state
            .channels
            .iter()
            .filter(|(_, ch)| !ch.subs.is_empty())
            .map(|(key, ch)| ChannelInfo {
                channel: key.clone(),
                occupancy: ch.subs.len(),
                subscription_count: ch.subs.len(),
                presence_members: ch.presence.len(),
                position: Some(ch.stream.position()),
                has_snapshot: ch.snapshot.is_some(),
            })
            .collect()
    }

    /// Subscribes a connection to a channel or a public wildcard pattern and queues the
    /// `subscribed` answer (with snapshot, members and replay) before any later message.
    ///
    /// Authorization is the caller's: by the time this is called the signature was checked.
    pub fn subscribe(
        &self,
        conn_id: ConnId,
        channel: &Channel,
        requested: &str,
        opts: SubscribeOptions,
    ) -> Result<(), Refusal> {
        let key = channel.to_string();
        let now = self.now();
        let metrics = &self.inner.metrics;
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(conn) = state.conns.get_mut(&conn_id) else {
            return Err(Refusal::new(
                code::NOT_SUBSCRIBED,
                "the connection is closed",
            ));
        };
        let already = conn.subs.contains(&key);
        if !already && conn.subs.len() >= self.inner.config.max_subscriptions {
            return Err(Refusal::new(
                code::TOO_MANY_SUBSCRIPTIONS,
                format!(
                    "limit max_subscriptions: at most {} subscriptions per connection",
                    self.inner.config.max_subscriptions
                ),
            ));
        }
        if channel.kind() == ChannelKind::Presence && opts.user.is_none() {
            return Err(Refusal::new(
                code::UNAUTHORIZED,
                "presence channels need channel_data",
            ));
        }
        conn.subs.insert(key.clone());
        if !already {
            metrics.subscribed();
        }

        if channel.is_wildcard() {
            let mut added = false;
            state
                .patterns
                .entry(key.clone())
                .or_insert_with(|| {
                    added = true;
                    PatternState {
                        pattern: channel.clone(),
                        subs: BTreeSet::new(),
                    }
                })
                .subs
                .insert(conn_id);
            if added {
                self.refresh_patterns(state);
            }
            let frame = Encoded::new(ServerFrame::Subscribed {
                reference: opts.reference,
                channel: requested.to_owned(),
                snapshot: None,
                members: None,
                recovered: opts.since.as_ref().map(|_| false),
                messages: Vec::new(),
                position: None,
            });
            if let Some(conn) = state.conns.get_mut(&conn_id) {
                deliver(conn, &frame, metrics);
            }
            return Ok(());
        }

        let config = &self.inner.config;
        let ch = state
            .channels
            .entry(key.clone())
            .or_insert_with(|| ChannelState {
                stream: Stream::new(config.history_size, config.history_ttl),
                snapshot: None,
                subs: BTreeSet::new(),
                presence: PresenceSet::default(),
                remote: HashMap::new(),
                presence_seeded: false,
            });
        let mut seeded_changes = Vec::new();
        if let Some(remote) = opts.remote {
            if let Some(members) = remote.presence
                && !ch.presence_seeded
            {
                ch.presence_seeded = true;
                for m in members.into_iter().filter(|m| m.node != self.inner.node) {
                    let cid = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
                    if let Some((old_cid, old_user)) =
                        ch.remote.insert(m.socket_id, (cid, m.user_id.clone()))
                    {
                        seeded_changes.extend(ch.presence.leave(old_cid, &old_user));
                    }
                    seeded_changes.extend(ch.presence.enter(cid, &m.user_id, m.data));
                }
            }
            if let Some(snap) = remote.snapshot
                && snap.epoch == remote.epoch
                && newer_snapshot(ch.snapshot.as_deref(), &snap)
            {
                ch.snapshot = Some(Arc::new(snap));
            }
            ch.stream.seed(
                now,
                unix_ms(),
                &remote.epoch,
                remote.last_seq,
                remote.messages,
            );
        }
        for change in seeded_changes {
            state.broadcast_presence(&key, change, None, metrics);
        }
        let Some(ch) = state.channels.get_mut(&key) else {
            return Err(Refusal::new(code::INVALID_CHANNEL, "channel vanished"));
        };
        ch.subs.insert(conn_id);
        let mut change = None;
        if let Some((user_id, info)) = &opts.user {
            // Re-subscribing as another user first leaves as the previous one.
            if let Some(conn) = state.conns.get_mut(&conn_id)
                && let Some((old, _)) = conn
                    .users
                    .insert(key.clone(), (user_id.clone(), info.clone()))
                && &old != user_id
                && let Some(ch) = state.channels.get_mut(&key)
                && let Some(left) = ch.presence.leave(conn_id, &old)
            {
                state.broadcast_presence(&key, left, Some(conn_id), metrics);
            }
            if let Some(ch) = state.channels.get_mut(&key) {
                change = ch.presence.enter(conn_id, user_id, info.clone());
            }
            state.emit(
                conn_id,
                &key,
                PresenceOpKind::Enter,
                user_id,
                info.clone(),
                metrics,
            );
        }
        if let Some(change) = change {
            state.broadcast_presence(&key, change, Some(conn_id), metrics);
        }
        let Some(ch) = state.channels.get_mut(&key) else {
            return Err(Refusal::new(code::INVALID_CHANNEL, "channel vanished"));
        };
        let (recovered, messages) = match &opts.since {
            None => (None, Vec::new()),
            Some(since) => match ch.stream.recover(now, since) {
                Recovery::Recovered(m) => (Some(true), m),
                Recovery::NotRecovered => (Some(false), Vec::new()),
            },
        };
        let members = (channel.kind() == ChannelKind::Presence).then(|| ch.presence.members());
        let frame = Encoded::new(ServerFrame::Subscribed {
            reference: opts.reference,
            channel: requested.to_owned(),
            snapshot: ch.snapshot.as_deref().cloned(),
            members,
            recovered,
            messages,
            position: Some(ch.stream.position()),
        });
        if let Some(conn) = state.conns.get_mut(&conn_id) {
            deliver(conn, &frame, metrics);
        }
        Ok(())
    }

    /// Ends a subscription and queues `unsubscribed`.
    pub fn unsubscribe(
        &self,
        conn_id: ConnId,
        channel: &Channel,
        requested: &str,
        reference: Option<String>,
    ) -> Result<(), Refusal> {
        let key = channel.to_string();
        let now = self.now();
        let mut state = self.lock();
        let (removed, patterns_changed) = state.remove_sub(conn_id, &key, now, &self.inner.metrics);
        if !removed {
            return Err(Refusal::new(
                code::NOT_SUBSCRIBED,
                format!("not subscribed to {requested}"),
            ));
        }
        if patterns_changed {
            self.refresh_patterns(&state);
        }
        let frame = Encoded::new(ServerFrame::Unsubscribed {
            reference,
            channel: requested.to_owned(),
        });
        if let Some(conn) = state.conns.get_mut(&conn_id) {
            deliver(conn, &frame, &self.inner.metrics);
        }
        Ok(())
    }

    /// Whether the connection is subscribed to exactly this channel.
    pub fn is_subscribed(&self, conn_id: ConnId, channel: &Channel) -> bool {
        let key = channel.to_string();
        self.lock()
            .conns
            .get(&conn_id)
            .is_some_and(|c| c.subs.contains(&key))
    }

    /// Publishes: assigns the next sequence, stores history (and the snapshot when retained)
    /// and fans out. Returns the message as delivered.
    ///
    /// This is the in-memory path; a server running the Redis engine must publish through
    /// `ServerHandle::publish` (or `POST /publish`) so that every node agrees on sequences.
    pub fn publish(&self, p: Publication) -> MessageFrame {
        let key = p.channel.to_string();
        let now = self.now();
        let patterns = self.matching_patterns(&p.channel);
        let mut guard = self.lock();
        let state = &mut *guard;
        let ch = self.channel_entry(state, &key);
        let seq = ch.stream.next_seq();
        let epoch = ch.stream.epoch().to_owned();
        let frame = MessageFrame {
            channel: key.clone(),
            event: p.event,
            data: p.data,
            encoding: p.encoding,
            id: format!("{epoch}-{seq}"),
            seq,
            epoch,
            ts: unix_ms(),
            sender: p.sender,
        };
        self.store_and_fan_out(
            state, &key, &patterns, now, frame, p.exclude, p.retain, true,
        )
    }

    /// Applies a message sequenced elsewhere (another node, through the scale-out engine):
    /// adopts its epoch and sequence, stores it and fans out locally.
    pub fn apply_remote(&self, frame: MessageFrame, exclude: Option<String>, retain: bool) {
        let Ok(channel) = Channel::parse(&frame.channel) else {
            return;
        };
        if channel.is_wildcard() {
            return;
        }
        let key = channel.to_string();
        let now = self.now();
        let patterns = self.matching_patterns(&channel);
        let mut guard = self.lock();
        let state = &mut *guard;
        let ch = self.channel_entry(state, &key);
        let exact = match ch.stream.adopt(&frame.epoch, frame.seq) {
            Adopted::Next | Adopted::Reset => true,
            // Seeded from the engine while in flight: exact subscribers have it (or are past
            // it); pattern subscribers never saw it.
            Adopted::Duplicate => false,
        };
        self.store_and_fan_out(state, &key, &patterns, now, frame, exclude, retain, exact);
    }

    fn channel_entry<'a>(&self, state: &'a mut State, key: &str) -> &'a mut ChannelState {
        let config = &self.inner.config;
        state
            .channels
            .entry(key.to_owned())
            .or_insert_with(|| ChannelState {
                stream: Stream::new(config.history_size, config.history_ttl),
                snapshot: None,
                subs: BTreeSet::new(),
                presence: PresenceSet::default(),
                remote: HashMap::new(),
                presence_seeded: false,
            })
    }

    #[allow(clippy::too_many_arguments)]
    fn store_and_fan_out(
        &self,
        state: &mut State,
        key: &str,
        patterns: &[String],
        now: Duration,
        frame: MessageFrame,
        exclude: Option<String>,
        retain: bool,
        exact: bool,
    ) -> MessageFrame {
        let metrics = &self.inner.metrics;
        metrics.message_in();
        let shared = Arc::new(frame.clone());
        let mut targets: BTreeSet<ConnId> = BTreeSet::new();
        let mut exact_subs: BTreeSet<ConnId> = BTreeSet::new();
        if let Some(ch) = state.channels.get_mut(key) {
            if exact {
                ch.stream.push(now, shared.clone());
                if retain {
                    ch.snapshot = Some(shared);
                }
                targets.extend(ch.subs.iter().copied());
            } else {
                exact_subs.extend(ch.subs.iter().copied());
            }
        }
        for p in patterns.iter().filter_map(|k| state.patterns.get(k)) {
            targets.extend(p.subs.iter().filter(|c| !exact_subs.contains(c)).copied());
        }
        let encoded = Encoded::new(ServerFrame::Message(frame.clone()));
        for id in targets {
            if let Some(conn) = state.conns.get_mut(&id) {
                if exclude.as_deref() == Some(&*conn.socket_id) {
                    continue;
                }
                deliver(conn, &encoded, metrics);
            }
        }
        metrics.notify();
        frame
    }

    /// Stores a snapshot without publishing it; it carries the channel's current position.
    pub fn set_snapshot(&self, channel: &Channel, event: String, data: Value) -> MessageFrame {
        let key = channel.to_string();
        let mut guard = self.lock();
        let ch = self.channel_entry(&mut guard, &key);
        let epoch = ch.stream.epoch().to_owned();
        let seq = ch.stream.last_seq();
        let frame = MessageFrame {
            channel: key,
            event,
            data,
            encoding: None,
            id: format!("snapshot-{epoch}-{seq}"),
            seq,
            epoch,
            ts: unix_ms(),
            sender: None,
        };
        ch.snapshot = Some(Arc::new(frame.clone()));
        frame
    }

    /// Stores a snapshot made elsewhere (another node, through the scale-out engine), unless
    /// a newer one is already here.
    pub fn store_snapshot(&self, frame: MessageFrame) {
        let Ok(channel) = Channel::parse(&frame.channel) else {
            return;
        };
        if channel.is_wildcard() {
            return;
        }
        let mut guard = self.lock();
        let ch = self.channel_entry(&mut guard, &channel.to_string());
        if newer_snapshot(ch.snapshot.as_deref(), &frame) {
            ch.snapshot = Some(Arc::new(frame));
        }
    }

    /// The presence user a connection subscribed as on a channel.
    pub fn presence_user(&self, conn_id: ConnId, channel: &Channel) -> Option<(String, Value)> {
        let key = channel.to_string();
        self.lock()
            .conns
            .get(&conn_id)
            .and_then(|c| c.users.get(&key).cloned())
    }

    /// The presence user of the connection with `socket_id` on the presence channel `key`,
    /// local or on another node (for the `user_id` of Pusher client events).
    pub fn presence_user_of_socket(&self, key: &str, socket_id: &str) -> Option<String> {
        let state = self.lock();
        let ch = state.channels.get(key)?;
        if let Some((_, user)) = ch.remote.get(socket_id) {
            return Some(user.clone());
        }
        ch.subs.iter().find_map(|c| {
            let conn = state.conns.get(c)?;
            (&*conn.socket_id == socket_id)
                .then(|| conn.users.get(key).map(|(u, _)| u.clone()))
                .flatten()
        })
    }

    /// Runs a presence operation for the user the connection signed in as; `f` returns the
    /// change to broadcast and the data to tell other nodes (as a `kind` op).
    fn with_presence(
        &self,
        conn_id: ConnId,
        channel: &Channel,
        kind: PresenceOpKind,
        f: impl FnOnce(
            &mut PresenceSet,
            &str,
            &Value,
        ) -> Result<(Option<PresenceChange>, Value), Refusal>,
    ) -> Result<(), Refusal> {
        if channel.kind() != ChannelKind::Presence {
            return Err(Refusal::new(
                code::FORBIDDEN,
                format!("{channel} is not a presence channel"),
            ));
        }
        let key = channel.to_string();
        let metrics = &self.inner.metrics;
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some((user_id, info)) = state
            .conns
            .get(&conn_id)
            .filter(|c| c.subs.contains(&key))
            .and_then(|c| c.users.get(&key).cloned())
        else {
            return Err(Refusal::new(
                code::NOT_SUBSCRIBED,
                format!("not subscribed to {channel}"),
            ));
        };
        let Some(ch) = state.channels.get_mut(&key) else {
            return Err(Refusal::new(code::NOT_SUBSCRIBED, "the channel is gone"));
        };
        let (change, data) = f(&mut ch.presence, &user_id, &info)?;
        if let Some(change) = change {
            state.broadcast_presence(&key, change, Some(conn_id), metrics);
        }
        state.emit(conn_id, &key, kind, &user_id, data, metrics);
        Ok(())
    }

    /// Enters the presence set as the signed user, with `data` (or the signed user info when
    /// `data` is null). Entering again updates the data.
    pub fn presence_enter(
        &self,
        conn_id: ConnId,
        channel: &Channel,
        data: Value,
    ) -> Result<(), Refusal> {
        self.with_presence(
            conn_id,
            channel,
            PresenceOpKind::Enter,
            |set, user, info| {
                let data = if data.is_null() { info.clone() } else { data };
                Ok((set.enter(conn_id, user, data.clone()), data))
            },
        )
    }

    /// Changes the member's data; the connection must have entered.
    pub fn presence_update(
        &self,
        conn_id: ConnId,
        channel: &Channel,
        data: Value,
    ) -> Result<(), Refusal> {
        self.with_presence(conn_id, channel, PresenceOpKind::Update, |set, user, _| {
            if !set.is_entered(conn_id, user) {
                return Err(Refusal::new(
                    code::FORBIDDEN,
                    "not a member: send presence_enter first",
                ));
            }
            Ok((set.update(conn_id, user, data.clone()), data))
        })
    }

    /// Leaves the presence set, staying subscribed.
    pub fn presence_leave(&self, conn_id: ConnId, channel: &Channel) -> Result<(), Refusal> {
        self.with_presence(conn_id, channel, PresenceOpKind::Leave, |set, user, _| {
            Ok((set.leave(conn_id, user), Value::Null))
        })
    }

    /// A presence channel's members.
    pub fn members(&self, channel: &Channel) -> Vec<PresenceMember> {
        let key = channel.to_string();
        self.lock()
            .channels
            .get(&key)
            .map(|c| c.presence.members())
            .unwrap_or_default()
    }

    /// A channel's counts.
    pub fn channel_info(&self, channel: &Channel) -> ChannelInfo {
        let key = channel.to_string();
        let patterns = self.matching_patterns(channel);
        let state = self.lock();
        let mut conns: BTreeSet<ConnId> = BTreeSet::new();
        let mut subscription_count = 0;
        let (presence_members, position, has_snapshot) = match state.channels.get(&key) {
            Some(ch) => {
                conns.extend(ch.subs.iter().copied());
                subscription_count += ch.subs.len();
                (
                    ch.presence.len(),
                    Some(ch.stream.position()),
                    ch.snapshot.is_some(),
                )
            }
            None => (0, None, false),
        };
        for p in patterns.iter().filter_map(|k| state.patterns.get(k)) {
            conns.extend(p.subs.iter().copied());
            subscription_count += p.subs.len();
        }
        ChannelInfo {
            channel: key,
            occupancy: conns.len(),
            subscription_count,
            presence_members,
            position,
            has_snapshot,
        }
    }

    /// Retained messages after `since` (at most `limit`), and the channel's position.
    pub fn history(
        &self,
        channel: &Channel,
        since: u64,
        limit: usize,
    ) -> (Option<Position>, Vec<MessageFrame>) {
        let key = channel.to_string();
        let now = self.now();
        let mut state = self.lock();
        match state.channels.get_mut(&key) {
            Some(ch) => (
                Some(ch.stream.position()),
                ch.stream.range(now, since, limit),
            ),
            None => (None, Vec::new()),
        }
    }

    /// One page of `channel`'s retained history (empty for a channel the broker does not
    /// know), with the query of the next page. The work is bounded by the history size.
    pub fn history_page(
        &self,
        channel: &Channel,
        query: &relayport_core::HistoryQuery,
        max_limit: usize,
    ) -> relayport_core::Result<(Vec<MessageFrame>, Option<relayport_core::HistoryQuery>)> {
        let key = channel.to_string();
        let now = self.now();
        let mut state = self.lock();
        match state.channels.get_mut(&key) {
            Some(ch) => ch.stream.page(now, query, max_limit),
            None => Ok((Vec::new(), None)),
        }
    }

    /// Forgets channels with no subscriber, no member, no snapshot and no live history.
    /// Returns how many were removed.
    pub fn sweep(&self) -> usize {
        let now = self.now();
        let mut state = self.lock();
        let before = state.channels.len();
        state.channels.retain(|_, ch| {
            !ch.subs.is_empty()
                || !ch.presence.is_empty()
                || ch.snapshot.is_some()
                || !ch.stream.is_empty_at(now)
        });
        before - state.channels.len()
    }

    /// How many channels the broker holds.
    pub fn channel_count(&self) -> usize {
        self.lock().channels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PresenceAction;
    use serde_json::json;

    fn ch(s: &str) -> Channel {
        Channel::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn publication(c: &str, data: Value) -> Publication {
        Publication {
            encoding: None,
            channel: ch(c),
            event: "e".into(),
            data,
            sender: None,
            exclude: None,
            retain: false,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<ServerFrame> {
        let mut out = Vec::new();
        while let Ok(f) = rx.try_recv() {
            out.push(f.decode().expect("a server frame"));
        }
        out
    }

    fn messages(frames: &[ServerFrame]) -> Vec<(String, u64)> {
        frames
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Message(m) => Some((m.channel.clone(), m.seq)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn publish_sequences_and_fans_out_to_subscribers_only() {
        let b = Broker::default();
        let mut a = b.register();
        let mut other = b.register();
        b.subscribe(a.conn, &ch("room"), "room", SubscribeOptions::default())
            .unwrap();
        b.publish(publication("room", json!(1)));
        b.publish(publication("public:room", json!(2)));
        b.publish(publication("elsewhere", json!(3)));
        let got = drain(&mut a.rx);
        assert!(matches!(got[0], ServerFrame::Subscribed { .. }));
        assert_eq!(messages(&got), vec![("room".into(), 1), ("room".into(), 2)]);
        assert!(drain(&mut other.rx).is_empty());
    }

    #[test]
    fn wildcards_match_public_channels_only_and_deliver_once() {
        let b = Broker::default();
        let mut a = b.register();
        for p in ["agent.*.status", "agent.#", "agent.7.status"] {
            b.subscribe(a.conn, &ch(p), p, SubscribeOptions::default())
                .unwrap();
        }
        b.publish(publication("agent.7.status", json!(1)));
        b.publish(publication("agent.7.x.status", json!(2)));
        b.publish(publication("private:agent.7.status", json!(3)));
        b.publish(publication("other.7.status", json!(4)));
        let got = drain(&mut a.rx);
        assert_eq!(
            messages(&got),
            vec![("agent.7.status".into(), 1), ("agent.7.x.status".into(), 1)]
        );
        let info = b.channel_info(&ch("agent.7.status"));
        assert_eq!((info.occupancy, info.subscription_count), (1, 3));
    }

    #[test]
    fn exclude_skips_the_sender_socket() {
        let b = Broker::default();
        let mut a = b.register();
        let mut c = b.register();
        for r in [&a, &c] {
            b.subscribe(r.conn, &ch("room"), "room", SubscribeOptions::default())
                .unwrap();
        }
        let mut p = publication("room", json!(1));
        p.exclude = Some(a.socket_id.clone());
        b.publish(p);
        assert!(messages(&drain(&mut a.rx)).is_empty());
        assert_eq!(messages(&drain(&mut c.rx)).len(), 1);
    }

    #[test]
    fn subscribe_with_since_replays_the_gap_or_says_not_recovered() {
        let b = Broker::new(BrokerConfig {
            history_size: 3,
            ..BrokerConfig::default()
        });
        for i in 0..5 {
            b.publish(publication("room", json!(i)));
        }
        let epoch = b.history(&ch("room"), 0, 10).0.and_then(|p| p.epoch);
        let mut a = b.register();
        let since = Position {
            epoch: epoch.clone(),
            sequence: 2,
        };
        let opts = SubscribeOptions {
            since: Some(since),
            ..Default::default()
        };
        b.subscribe(a.conn, &ch("room"), "room", opts).unwrap();
        match &drain(&mut a.rx)[0] {
            ServerFrame::Subscribed {
                recovered,
                messages,
                position,
                ..
            } => {
                assert_eq!(*recovered, Some(true));
                assert_eq!(
                    messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
                    [3, 4, 5]
                );
                assert_eq!(position.as_ref().map(|p| p.sequence), Some(5));
            }
            other => panic!("{other:?}"),
        }
        let opts = SubscribeOptions {
            since: Some(Position { epoch, sequence: 1 }),
            ..Default::default()
        };
        b.subscribe(a.conn, &ch("room"), "room", opts).unwrap();
        match &drain(&mut a.rx)[0] {
            ServerFrame::Subscribed {
                recovered,
                messages,
                ..
            } => {
                assert_eq!(*recovered, Some(false));
                assert!(messages.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn snapshot_is_delivered_on_subscribe() {
        let b = Broker::default();
        let mut p = publication("state", json!({"v": 1}));
        p.retain = true;
        b.publish(p);
        b.publish(publication("state", json!({"v": 2})));
        let mut a = b.register();
        b.subscribe(a.conn, &ch("state"), "state", SubscribeOptions::default())
            .unwrap();
        match &drain(&mut a.rx)[0] {
            ServerFrame::Subscribed { snapshot, .. } => {
                assert_eq!(
                    snapshot.as_ref().map(|s| s.data.clone()),
                    Some(json!({"v": 1}))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subscription_limit_is_enforced() {
        let b = Broker::new(BrokerConfig {
            max_subscriptions: 2,
            ..BrokerConfig::default()
        });
        let a = b.register();
        b.subscribe(a.conn, &ch("a"), "a", SubscribeOptions::default())
            .unwrap();
        b.subscribe(a.conn, &ch("b"), "b", SubscribeOptions::default())
            .unwrap();
        b.subscribe(a.conn, &ch("b"), "b", SubscribeOptions::default())
            .expect("re-subscribing does not count twice");
        let err = b
            .subscribe(a.conn, &ch("c"), "c", SubscribeOptions::default())
            .unwrap_err();
        assert_eq!(err.code, code::TOO_MANY_SUBSCRIPTIONS);
        assert_eq!(b.metrics().snapshot().subscriptions, 2);
    }

    #[test]
    fn full_queue_kicks_a_slow_consumer() {
        let b = Broker::new(BrokerConfig {
            send_queue: 2,
            ..BrokerConfig::default()
        });
        let a = b.register();
        b.subscribe(a.conn, &ch("room"), "room", SubscribeOptions::default())
            .unwrap();
        for i in 0..5 {
            b.publish(publication("room", json!(i)));
        }
        assert_eq!(a.kick.code(), Some(close::SLOW_CONSUMER));
        let m = b.metrics().snapshot();
        assert!(m.queue_high_water <= 2, "{m:?}");
        assert_eq!(m.drops, 4);
    }

    #[test]
    fn presence_join_leave_across_connections() {
        let b = Broker::default();
        let room = ch("presence:room");
        let user = |id: &str| SubscribeOptions {
            user: Some((id.into(), json!({"name": id}))),
            ..Default::default()
        };
        let mut watcher = b.register();
        b.subscribe(watcher.conn, &room, "presence:room", user("w"))
            .unwrap();
        let one = b.register();
        let two = b.register();
        b.subscribe(one.conn, &room, "presence:room", user("u"))
            .unwrap();
        b.subscribe(two.conn, &room, "presence:room", user("u"))
            .unwrap();
        assert_eq!(b.members(&room).len(), 2);
        b.unregister(one.conn);
        assert_eq!(b.members(&room).len(), 2);
        b.unregister(two.conn);
        assert_eq!(b.members(&room).len(), 1);
        let actions: Vec<PresenceAction> = drain(&mut watcher.rx)
            .into_iter()
            .filter_map(|f| match f {
                ServerFrame::Presence { action, .. } => Some(action),
                _ => None,
            })
            .collect();
        assert_eq!(actions, vec![PresenceAction::Join, PresenceAction::Leave]);
    }

    #[test]
    fn seeded_messages_arriving_late_reach_pattern_subscribers_only() {
        let b = Broker::default();
        let mut pattern = b.register();
        b.subscribe(
            pattern.conn,
            &ch("feed.#"),
            "feed.#",
            SubscribeOptions::default(),
        )
        .unwrap();
        let remote_msg = |seq: u64| MessageFrame {
            encoding: None,
            channel: "feed.a".into(),
            event: "e".into(),
            data: json!(seq),
            id: format!("R-{seq}"),
            seq,
            epoch: "R".into(),
            ts: unix_ms(),
            sender: None,
        };
        // Message 2 is in Redis history and still in flight to this node when the first exact
        // subscriber seeds the channel.
        let mut exact = b.register();
        let opts = SubscribeOptions {
            since: Some(Position {
                epoch: Some("R".into()),
                sequence: 1,
            }),
            remote: Some(RemoteStream {
                epoch: "R".into(),
                last_seq: 2,
                messages: vec![remote_msg(1), remote_msg(2)],
                snapshot: None,
                presence: None,
            }),
            ..Default::default()
        };
        b.subscribe(exact.conn, &ch("feed.a"), "feed.a", opts)
            .unwrap();
        match &drain(&mut exact.rx)[0] {
            ServerFrame::Subscribed {
                recovered,
                messages,
                ..
            } => {
                assert_eq!(*recovered, Some(true));
                assert_eq!(messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [2]);
            }
            other => panic!("{other:?}"),
        }
        b.apply_remote(remote_msg(2), None, false);
        b.apply_remote(remote_msg(3), None, false);
        assert_eq!(messages(&drain(&mut exact.rx)), vec![("feed.a".into(), 3)]);
        assert_eq!(
            messages(&drain(&mut pattern.rx)),
            vec![("feed.a".into(), 2), ("feed.a".into(), 3)]
        );
        let (_, history) = b.history(&ch("feed.a"), 0, 10);
        assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn remote_presence_is_seeded_then_followed() {
        let b = Broker::default();
        let room = ch("presence:r");
        let op = |socket: &str, node: &str, kind: PresenceOpKind, user: &str| PresenceOp {
            channel: "presence:r".into(),
            socket_id: socket.into(),
            node: node.into(),
            op: kind,
            user_id: user.into(),
            data: json!({"u": user}),
        };
        // Not followed yet: remote changes are ignored (the seed will bring them).
        b.apply_presence_op(op("x.1", "x", PresenceOpKind::Enter, "early"));
        let (tx, mut ops) = mpsc::channel(16);
        b.set_presence_sink(Some(tx));
        let mut me = b.register();
        let opts = SubscribeOptions {
            user: Some(("me".into(), json!(null))),
            remote: Some(RemoteStream {
                epoch: "R".into(),
                presence: Some(vec![RemoteMember {
                    socket_id: "x.1".into(),
                    node: "x".into(),
                    user_id: "alice".into(),
                    data: json!({"u": "alice"}),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        b.subscribe(me.conn, &room, "presence:r", opts).unwrap();
        let ids: Vec<String> = b.members(&room).into_iter().map(|m| m.id).collect();
        assert_eq!(ids, vec!["alice", "me"]);
        // The local enter went to the sink, for other nodes.
        let sent = ops.try_recv().unwrap();
        assert_eq!(
            (sent.op, sent.user_id.as_str(), sent.node.as_str()),
            (PresenceOpKind::Enter, "me", b.node_id())
        );
        drain(&mut me.rx);
        // A second connection of alice on another node: no join; her first leaves: no leave.
        b.apply_presence_op(op("y.1", "y", PresenceOpKind::Enter, "alice"));
        b.apply_presence_op(op("x.1", "x", PresenceOpKind::Leave, "alice"));
        assert!(drain(&mut me.rx).is_empty());
        b.apply_presence_op(op("y.1", "y", PresenceOpKind::Leave, "alice"));
        b.apply_presence_op(op("z.1", "z", PresenceOpKind::Enter, "bob"));
        // This node's own changes coming back are ignored.
        b.apply_presence_op(op("own.1", b.node_id(), PresenceOpKind::Enter, "echo"));
        let actions: Vec<(PresenceAction, String)> = drain(&mut me.rx)
            .into_iter()
            .filter_map(|f| match f {
                ServerFrame::Presence { action, member, .. } => Some((action, member.id)),
                _ => None,
            })
            .collect();
        assert_eq!(
            actions,
            vec![
                (PresenceAction::Leave, "alice".into()),
                (PresenceAction::Join, "bob".into())
            ]
        );
        b.unregister(me.conn);
        let sent = ops.try_recv().unwrap();
        assert_eq!(
            (sent.op, sent.user_id.as_str()),
            (PresenceOpKind::Leave, "me")
        );
    }

    #[test]
    fn socket_ids_are_never_shared() {
        let b = Broker::default();
        let next = format!(
            "{}.{}",
            b.inner.node,
            b.inner.next_conn.load(Ordering::Relaxed) + 1
        );
        let sse = b.register_as(&next).unwrap();
        assert_eq!(sse.socket_id, next);
        let ws = b.register();
        assert_ne!(ws.socket_id, next, "the generated id skips the taken one");
        let again = b.register_as(&next).unwrap_err();
        assert_eq!(again.code, code::CONFLICT);
        b.unregister(sse.conn);
        assert!(
            b.register_as(&next).is_ok(),
            "free again once its owner left"
        );
        assert_eq!(b.register_as("bad id!").unwrap_err().code, code::MALFORMED);
    }

    #[test]
    fn the_pattern_list_follows_subscriptions() {
        let b = Broker::default();
        let a = b.register();
        let c = b.register();
        let target = ch("agent.7.status");
        assert!(b.matching_patterns(&target).is_empty());
        for r in [&a, &c] {
            b.subscribe(
                r.conn,
                &ch("agent.#"),
                "agent.#",
                SubscribeOptions::default(),
            )
            .unwrap();
        }
        assert_eq!(b.matching_patterns(&target), vec!["agent.#".to_owned()]);
        assert!(b.matching_patterns(&ch("private:agent.7")).is_empty());
        b.unsubscribe(a.conn, &ch("agent.#"), "agent.#", None)
            .unwrap();
        assert_eq!(b.matching_patterns(&target).len(), 1, "c still holds it");
        b.unregister(c.conn);
        assert!(b.matching_patterns(&target).is_empty());
    }

    #[test]
    fn a_byte_budget_kicks_a_connection_that_does_not_drain() {
        let b = Broker::new(BrokerConfig {
            send_queue_bytes: 2000,
            ..BrokerConfig::default()
        });
        let mut a = b.register();
        b.subscribe(a.conn, &ch("room"), "room", SubscribeOptions::default())
            .unwrap();
        drain(&mut a.rx);
        for _ in 0..4 {
            b.publish(publication("room", json!("x".repeat(200))));
        }
        assert_eq!(a.kick.code(), None, "4 × ~330 bytes: not yet");
        // Draining frees the budget.
        assert_eq!(messages(&drain(&mut a.rx)).len(), 4);
        for _ in 0..7 {
            b.publish(publication("room", json!("x".repeat(200))));
        }
        assert_eq!(a.kick.code(), Some(close::SLOW_CONSUMER));
    }

    #[test]
    fn sweep_keeps_channels_with_history_until_ttl() {
        let clock = Clock::manual();
        let b = Broker::new(BrokerConfig {
            history_ttl: Duration::from_secs(120),
            clock: clock.clone(),
            ..BrokerConfig::default()
        });
        b.publish(publication("room", json!(1)));
        assert_eq!(b.sweep(), 0);
        clock.advance(Duration::from_secs(121));
        assert_eq!(b.sweep(), 1);
        assert_eq!(b.channel_count(), 0);
    }
}

//! The Redis scale-out engine (`--redis-url`).
//!
//! A publish runs one Lua script on Redis that assigns the channel's epoch (created once,
//! `SET` if absent) and next sequence (`INCR`), appends the sequenced message to the channel's
//! history list (trimmed to the history size, expiring with the history TTL), then
//! `PUBLISH`es it on one Redis pub/sub channel that every node subscribes to. Every node, the
//! publishing one included, applies what it receives to its local broker (history, snapshot,
//! fan-out), so sequences and epochs agree across nodes.
//!
//! A subscription to a concrete channel first reads the channel's stream from Redis (epoch,
//! last sequence, history) and seeds the local stream with it: a node started after some
//! messages can replay them, and every node reports the same epoch even before the first
//! message. Messages that were in flight to the node while it seeded are recognised as
//! duplicates by their sequence.
//!
//! Presence: every local connection's enter/update/leave is written to the channel's Redis
//! hash and broadcast on [`PRESENCE_CHANNEL`]; nodes keep the other nodes' connections in their
//! member sets (seeded from the hash on subscribe), so a user is one member across nodes. A
//! liveness key per node lets the others remove a crashed node's members.
//!
//! Shared through Redis: fan-out, sequences and epochs, history, snapshots, presence.
//! Node-local: occupancy counts and metrics.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use relayport_core::{Channel, ChannelKind};
use tokio::sync::mpsc;

use super::broker::{Broker, PresenceOp, PresenceOpKind, Publication, RemoteMember, RemoteStream};
use super::clock::unix_ms;
use crate::protocol::MessageFrame;

/// The Redis pub/sub channel every node listens on.
pub const FANOUT_CHANNEL: &str = "realtime:fanout";
/// The Redis pub/sub channel presence changes travel on.
pub const PRESENCE_CHANNEL: &str = "realtime:presence";
/// The set of node ids that have presence entries.
const NODES_KEY: &str = "realtime:nodes";

fn presence_key(channel: &str) -> String {
    format!("realtime:{{{channel}}}:presence")
}

fn node_key(node: &str) -> String {
    format!("realtime:node:{node}")
}

fn node_channels_key(node: &str) -> String {
    format!("realtime:node:{node}:channels")
}

/// A connection's presence change: the hash entry (set or deleted), the node's channel index,
/// and the broadcast to every node. KEYS: presence hash, node channel set. ARGV: `leave` or
/// not, socket id, entry JSON, channel, op JSON, presence pub/sub channel.
const PRESENCE_SCRIPT: &str = r#"
if ARGV[1] == 'leave' then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[6], ARGV[5])
return 1
"#;

/// One presence entry in a channel's Redis hash (field: socket id).
#[derive(Debug, Serialize, Deserialize)]
struct PresenceEntry {
    node: String,
    user_id: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// Writes one presence change to Redis and tells every node.
async fn send_presence_op(
    conn: &mut redis::aio::ConnectionManager,
    op: &PresenceOp,
) -> Result<(), String> {
    let entry = serde_json::to_string(&PresenceEntry {
        node: op.node.clone(),
        user_id: op.user_id.clone(),
        data: op.data.clone(),
    })
    .map_err(|e| e.to_string())?;
    let op_json = serde_json::to_string(op).map_err(|e| e.to_string())?;
    let leave = if op.op == PresenceOpKind::Leave {
        "leave"
    } else {
        "set"
    };
    redis::cmd("EVAL")
        .arg(PRESENCE_SCRIPT)
        .arg(2)
        .arg(presence_key(&op.channel))
        .arg(node_channels_key(&op.node))
        .arg(leave)
        .arg(&op.socket_id)
        .arg(entry)
        .arg(&op.channel)
        .arg(op_json)
        .arg(PRESENCE_CHANNEL)
        .query_async::<i64>(conn)
        .await
        .map(|_| ())
        .map_err(|e| format!("redis presence update failed: {e}"))
}

/// Forwards local presence changes to Redis. On `stop` it forwards what is queued and removes
/// the node's liveness key; on `kill` it returns at once (a crash, as other nodes see it).
async fn forward_presence(
    mut conn: redis::aio::ConnectionManager,
    mut rx: mpsc::Receiver<PresenceOp>,
    node: String,
    stop: CancellationToken,
    kill: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            _ = kill.cancelled() => return,
            op = rx.recv() => match op {
                Some(op) => {
                    if let Err(e) = send_presence_op(&mut conn, &op).await {
                        tracing::warn!("{e}");
                    }
                }
                None => return,
            },
            _ = stop.cancelled() => {
                while let Ok(op) = rx.try_recv() {
                    if let Err(e) = send_presence_op(&mut conn, &op).await {
                        tracing::warn!("{e}");
                    }
                }
                let _: Result<(), _> = redis::pipe()
                    .del(node_key(&node))
                    .srem(NODES_KEY, &node)
                    .query_async(&mut conn)
                    .await;
                return;
            }
        }
    }
}

/// Keeps this node's liveness key alive and removes the presence entries of nodes whose key
/// expired (crashed without leaving), which tells every node they left.
async fn node_liveness(
    mut conn: redis::aio::ConnectionManager,
    node: String,
    every: Duration,
    ttl: Duration,
    stop: CancellationToken,
    kill: CancellationToken,
) {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = kill.cancelled() => return,
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let alive: Result<(), _> = redis::pipe()
            .cmd("SET")
            .arg(node_key(&node))
            .arg(1)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .sadd(NODES_KEY, &node)
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(e) = alive {
            tracing::warn!("redis liveness update failed: {e}");
            continue;
        }
        if let Err(e) = reap_dead_nodes(&mut conn, &node).await {
            tracing::warn!("reaping dead nodes' presence: {e}");
        }
    }
}

async fn reap_dead_nodes(
    conn: &mut redis::aio::ConnectionManager,
    me: &str,
) -> Result<(), redis::RedisError> {
    let nodes: Vec<String> = conn.smembers(NODES_KEY).await?;
    for dead in nodes.into_iter().filter(|n| n != me) {
        let alive: bool = conn.exists(node_key(&dead)).await?;
        if alive {
            continue;
        }
        let channels: Vec<String> = conn.smembers(node_channels_key(&dead)).await?;
        for channel in channels {
            let entries: Vec<(String, String)> = conn.hgetall(presence_key(&channel)).await?;
            for (socket_id, raw) in entries {
                let Ok(entry) = serde_json::from_str::<PresenceEntry>(&raw) else {
                    continue;
                };
                if entry.node != dead {
                    continue;
                }
                let op = PresenceOp {
                    channel: channel.clone(),
                    socket_id,
                    node: dead.clone(),
                    op: PresenceOpKind::Leave,
                    user_id: entry.user_id,
                    data: serde_json::Value::Null,
                };
                if let Err(e) = send_presence_op(conn, &op).await {
                    tracing::warn!("{e}");
                }
            }
        }
        tracing::info!("node {dead} stopped without leaving: its presence entries are removed");
        let _: () = redis::pipe()
            .del(node_channels_key(&dead))
            .srem(NODES_KEY, &dead)
            .query_async(conn)
            .await?;
    }
    Ok(())
}

/// The members of a presence channel on live nodes.
async fn live_members(
    conn: &mut redis::aio::ConnectionManager,
    channel: &str,
) -> Result<Vec<RemoteMember>, String> {
    let entries: Vec<(String, String)> = conn
        .hgetall(presence_key(channel))
        .await
        .map_err(|e| format!("redis presence read failed: {e}"))?;
    let mut members = Vec::new();
    let mut liveness: std::collections::HashMap<String, bool> = Default::default();
    for (socket_id, raw) in entries {
        let Ok(entry) = serde_json::from_str::<PresenceEntry>(&raw) else {
            continue;
        };
        let alive = match liveness.get(&entry.node) {
            Some(a) => *a,
            None => {
                let a: bool = conn
                    .exists(node_key(&entry.node))
                    .await
                    .map_err(|e| format!("redis presence read failed: {e}"))?;
                liveness.insert(entry.node.clone(), a);
                a
            }
        };
        if alive {
            members.push(RemoteMember {
                socket_id,
                node: entry.node,
                user_id: entry.user_id,
                data: entry.data,
            });
        }
    }
    Ok(members)
}

/// Publishes: the channel's epoch (created once), the next sequence, the history list
/// (trimmed to the history size, expiring with the history TTL) and the fan-out.
/// KEYS: epoch, seq, history, snapshot. ARGV: new epoch, envelope JSON, fan-out channel,
/// history size, history TTL in ms, retain (`1`/`0`).
const PUBLISH_SCRIPT: &str = r#"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
else
  redis.call('PERSIST', KEYS[1])
end
local seq = redis.call('INCR', KEYS[2])
local payload = epoch .. '\n' .. seq .. '\n' .. ARGV[2]
if ARGV[6] == '1' then
  redis.call('SET', KEYS[4], payload)
end
local size = tonumber(ARGV[4])
if size > 0 then
  redis.call('RPUSH', KEYS[3], payload)
  redis.call('LTRIM', KEYS[3], -size, -1)
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.call('PUBLISH', ARGV[3], payload)
return {epoch, seq}
"#;

/// Reads a channel's stream: its epoch (created if the channel never had one, so that every
/// node reports the same), last sequence, history and snapshot. KEYS: epoch, seq, history,
/// snapshot. ARGV: new epoch, idle channel TTL in ms.
///
/// An epoch created by a read expires after the idle TTL unless the channel is published
/// to (which makes it permanent, like its sequence): subscribe churn on channels nobody
/// publishes to leaves no keys behind.
const STREAM_SCRIPT: &str = r#"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch, 'PX', ARGV[2])
end
local seq = redis.call('GET', KEYS[2]) or '0'
return {epoch, seq, redis.call('LRANGE', KEYS[3], 0, -1), redis.call('GET', KEYS[4])}
"#;

/// `PUT …/snapshot`: stores the snapshot at the channel's current position and tells every
/// node. KEYS: epoch, seq, snapshot. ARGV: new epoch, envelope JSON, fan-out channel.
const SNAPSHOT_SCRIPT: &str = r#"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
else
  redis.call('PERSIST', KEYS[1])
end
local seq = redis.call('GET', KEYS[2]) or '0'
local payload = epoch .. '\n' .. seq .. '\n' .. ARGV[2]
redis.call('SET', KEYS[3], payload)
redis.call('PUBLISH', ARGV[3], payload)
return {epoch, seq}
"#;

fn keys(channel: &str) -> [String; 4] {
    [
        format!("realtime:{{{channel}}}:epoch"),
        format!("realtime:{{{channel}}}:seq"),
        format!("realtime:{{{channel}}}:history"),
        format!("realtime:{{{channel}}}:snapshot"),
    ]
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    channel: String,
    event: String,
    data: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoding: Option<String>,
    ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exclude: Option<String>,
    #[serde(default)]
    retain: bool,
    /// `PUT …/snapshot`: store as the snapshot, do not deliver.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    snapshot_only: bool,
}

/// A message read back from Redis.
#[derive(Debug)]
struct Decoded {
    frame: MessageFrame,
    exclude: Option<String>,
    retain: bool,
    snapshot_only: bool,
}

/// A connection to Redis for publishing (reconnects on its own); a background task applies
/// what other nodes publish and re-subscribes when the pub/sub connection drops.
#[derive(Clone)]
pub struct RedisEngine {
    conn: redis::aio::ConnectionManager,
    forwarder: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    history_size: usize,
    history_ttl: Duration,
    idle_channel_ttl: Duration,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine").finish_non_exhaustive()
    }
}

fn decode(payload: &[u8]) -> Option<Decoded> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, '\n');
    let epoch = parts.next()?.to_owned();
    let seq: u64 = parts.next()?.parse().ok()?;
    let env: Envelope = serde_json::from_str(parts.next()?).ok()?;
    let id = if env.snapshot_only {
        format!("snapshot-{epoch}-{seq}")
    } else {
        format!("{epoch}-{seq}")
    };
    let frame = MessageFrame {
        channel: env.channel,
        event: env.event,
        data: env.data,
        encoding: env.encoding,
        id,
        seq,
        epoch,
        ts: env.ts,
        sender: env.sender,
    };
    Some(Decoded {
        frame,
        exclude: env.exclude,
        retain: env.retain,
        snapshot_only: env.snapshot_only,
    })
}

async fn subscribe(client: &redis::Client) -> Result<redis::aio::PubSub, String> {
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| format!("cannot open pub/sub: {e}"))?;
    pubsub
        .subscribe(&[FANOUT_CHANNEL, PRESENCE_CHANNEL])
        .await
        .map_err(|e| format!("cannot subscribe: {e}"))?;
    Ok(pubsub)
}

/// Applies what arrives on the fan-out channel until shutdown, re-subscribing (with a capped
/// exponential delay) whenever the pub/sub connection drops.
async fn receive(
    client: redis::Client,
    first: redis::aio::PubSub,
    broker: Broker,
    shutdown: CancellationToken,
) {
    const FIRST_DELAY: Duration = Duration::from_millis(100);
    const MAX_DELAY: Duration = Duration::from_secs(5);
    let mut next = Some(first);
    let mut delay = FIRST_DELAY;
    loop {
        let pubsub = match next.take() {
            Some(p) => p,
            None => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                match subscribe(&client).await {
                    Ok(p) => {
                        tracing::info!("redis pub/sub reconnected");
                        broker.metrics().engine_connected();
                        delay = FIRST_DELAY;
                        p
                    }
                    Err(e) => {
                        tracing::warn!("redis pub/sub: {e}; retrying in {delay:?}");
                        delay = (delay * 2).min(MAX_DELAY);
                        continue;
                    }
                }
            }
        };
        let mut stream = pubsub.into_on_message();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                msg = stream.next() => match msg {
                    Some(msg) if msg.get_channel_name() == PRESENCE_CHANNEL => {
                        match serde_json::from_slice::<PresenceOp>(msg.get_payload_bytes()) {
                            Ok(op) => broker.apply_presence_op(op),
                            Err(e) => tracing::warn!("ignoring an unreadable presence change: {e}"),
                        }
                    }
                    Some(msg) => match decode(msg.get_payload_bytes()) {
                        Some(d) if d.snapshot_only => broker.store_snapshot(d.frame),
                        Some(d) => broker.apply_remote(d.frame, d.exclude, d.retain),
                        None => tracing::warn!("ignoring an unreadable message on {FANOUT_CHANNEL}"),
                    },
                    None => {
                        tracing::error!(
                            "redis pub/sub connection lost: reconnecting (messages from other nodes published meanwhile are missed; clients recover them on resubscribe where history has them)"
                        );
                        break;
                    }
                }
            }
        }
    }
}

impl RedisEngine {
    /// Connects, subscribes to the fan-out channel and starts applying what arrives to
    /// `broker` until `shutdown`.
    ///
    /// Presence: local changes go to Redis (a hash per channel, a broadcast to every node);
    /// the node proves it is alive every `liveness.0` with a key that expires after
    /// `liveness.1`, and removes the entries of nodes whose key expired. `stop` ends it
    /// gracefully (queued presence changes are written, the node's key removed); `kill` ends
    /// it at once, as a crash would.
    pub async fn start(
        url: &str,
        broker: Broker,
        liveness: (Duration, Duration),
        stop: CancellationToken,
        kill: CancellationToken,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad redis url: {e}"))?;
        // Fail fast when Redis is not there at all (the manager below would retry).
        match tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
            Err(_) => return Err("cannot connect: timed out after 5s".into()),
        }
        // Reconnects after a drop: a few quick attempts per failed command, bounded in time.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(3)
            .set_factor(100)
            .set_max_delay(1_000)
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(5));
        let mut conn = redis::aio::ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("ping failed: {e}"))?;
        let pubsub = subscribe(&client).await?;
        broker.metrics().engine_connected();
        let history_size = broker.config().history_size;
        let history_ttl = broker.config().history_ttl;
        let node = broker.node_id().to_owned();
        // Alive from the start, before any of this node's presence entries can exist.
        let ttl_ms = u64::try_from(liveness.1.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let _: () = redis::pipe()
            .cmd("SET")
            .arg(node_key(&node))
            .arg(1)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .sadd(NODES_KEY, &node)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("liveness key: {e}"))?;
        let (tx, rx) = mpsc::channel(10_000);
        broker.set_presence_sink(Some(tx));
        let forwarder = tokio::spawn(forward_presence(
            conn.clone(),
            rx,
            node.clone(),
            stop.clone(),
            kill.clone(),
        ));
        tokio::spawn(node_liveness(
            conn.clone(),
            node,
            liveness.0,
            liveness.1,
            stop.clone(),
            kill.clone(),
        ));
        let receive_stop = CancellationToken::new();
        let (s1, s2, s3) = (stop, kill, receive_stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = s1.cancelled() => {}
                _ = s2.cancelled() => {}
            }
            s3.cancel();
        });
        tokio::spawn(receive(client, pubsub, broker, receive_stop));
        Ok(Self {
            conn,
            forwarder: Arc::new(std::sync::Mutex::new(Some(forwarder))),
            history_size,
            history_ttl,
            idle_channel_ttl: Duration::from_secs(600),
        })
    }

    /// How long the keys of a channel that was only ever read (never published to) live in
    /// Redis (default 10 minutes).
    pub fn with_idle_channel_ttl(mut self, ttl: Duration) -> Self {
        self.idle_channel_ttl = ttl;
        self
    }

    /// Sequences the message in Redis and publishes it to every node. Returns the message as
    /// it will be delivered.
    pub async fn publish(&self, p: Publication) -> Result<MessageFrame, String> {
        let channel = p.channel.to_string();
        let env = Envelope {
            channel: channel.clone(),
            event: p.event,
            data: p.data,
            encoding: p.encoding,
            ts: unix_ms(),
            sender: p.sender,
            exclude: p.exclude,
            retain: p.retain,
            snapshot_only: false,
        };
        let json = serde_json::to_string(&env).map_err(|e| e.to_string())?;
        let mut conn = self.conn.clone();
        let [epoch_key, seq_key, history_key, snapshot_key] = keys(&channel);
        let ttl_ms = u64::try_from(self.history_ttl.as_millis()).unwrap_or(u64::MAX);
        let (epoch, seq): (String, u64) = redis::cmd("EVAL")
            .arg(PUBLISH_SCRIPT)
            .arg(4)
            .arg(epoch_key)
            .arg(seq_key)
            .arg(history_key)
            .arg(snapshot_key)
            .arg(super::history::new_epoch())
            .arg(&json)
            .arg(FANOUT_CHANNEL)
            .arg(self.history_size)
            .arg(ttl_ms.max(1))
            .arg(if env.retain { "1" } else { "0" })
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("redis publish failed: {e}"))?;
        Ok(MessageFrame {
            channel,
            event: env.event,
            data: env.data,
            encoding: env.encoding,
            id: format!("{epoch}-{seq}"),
            seq,
            epoch,
            ts: env.ts,
            sender: env.sender,
        })
    }

    /// Waits (at most `timeout`) until the presence forwarder has finished after a stop.
    pub async fn stopped(&self, timeout: Duration) {
        let handle = self.forwarder.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = tokio::time::timeout(timeout, handle).await;
        }
    }

    /// The channel's stream as Redis holds it: epoch, last sequence, history (oldest first).
    pub async fn stream(&self, channel: &Channel) -> Result<RemoteStream, String> {
        let name = channel.to_string();
        let [epoch_key, seq_key, history_key, snapshot_key] = keys(&name);
        let mut conn = self.conn.clone();
        let (epoch, seq, entries, snapshot): (String, String, Vec<Vec<u8>>, Option<Vec<u8>>) =
            redis::cmd("EVAL")
                .arg(STREAM_SCRIPT)
                .arg(4)
                .arg(epoch_key)
                .arg(seq_key)
                .arg(history_key)
                .arg(snapshot_key)
                .arg(super::history::new_epoch())
                .arg(
                    u64::try_from(self.idle_channel_ttl.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1),
                )
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("redis read failed: {e}"))?;
        let last_seq = seq
            .parse()
            .map_err(|_| format!("redis holds a bad sequence {seq:?} for {name}"))?;
        let messages = entries
            .iter()
            .filter_map(|e| decode(e).map(|d| d.frame))
            .filter(|m| m.channel == name)
            .collect();
        let snapshot = snapshot
            .and_then(|s| decode(&s).map(|d| d.frame))
            .filter(|m| m.channel == name);
        let presence = if channel.kind() == ChannelKind::Presence {
            Some(live_members(&mut conn, &name).await?)
        } else {
            None
        };
        Ok(RemoteStream {
            epoch,
            last_seq,
            messages,
            snapshot,
            presence,
        })
    }

    /// Stores a snapshot at the channel's current position on every node, without
    /// delivering it.
    pub async fn set_snapshot(
        &self,
        channel: &Channel,
        event: String,
        data: serde_json::Value,
    ) -> Result<MessageFrame, String> {
        let name = channel.to_string();
        let env = Envelope {
            channel: name.clone(),
            event,
            data,
            encoding: None,
            ts: unix_ms(),
            sender: None,
            exclude: None,
            retain: false,
            snapshot_only: true,
        };
        let json = serde_json::to_string(&env).map_err(|e| e.to_string())?;
        let [epoch_key, seq_key, _, snapshot_key] = keys(&name);
        let mut conn = self.conn.clone();
        let (epoch, seq): (String, String) = redis::cmd("EVAL")
            .arg(SNAPSHOT_SCRIPT)
            .arg(3)
            .arg(epoch_key)
            .arg(seq_key)
            .arg(snapshot_key)
            .arg(super::history::new_epoch())
            .arg(&json)
            .arg(FANOUT_CHANNEL)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("redis snapshot failed: {e}"))?;
        let seq: u64 = seq
            .parse()
            .map_err(|_| format!("redis holds a bad sequence {seq:?} for {name}"))?;
        Ok(MessageFrame {
            channel: name,
            event: env.event,
            data: env.data,
            encoding: None,
            id: format!("snapshot-{epoch}-{seq}"),
            seq,
            epoch,
            ts: env.ts,
            sender: None,
        })
    }

    /// Deletes the keys of a channel's stream (tests and operators).
    pub async fn reset_channel(&self, channel: &str) -> Result<(), String> {
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(&keys(channel)[..])
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reads_the_script_payload() {
        let env = r#"{"channel":"room","event":"e","data":[1,2.5,{}],"ts":7,"retain":true}"#;
        let payload = format!("ab12\n42\n{env}");
        let d = decode(payload.as_bytes()).unwrap();
        assert_eq!(
            (d.frame.seq, d.frame.epoch.as_str(), d.frame.id.as_str()),
            (42, "ab12", "ab12-42")
        );
        assert_eq!(d.frame.data, serde_json::json!([1, 2.5, {}]));
        assert_eq!((d.exclude, d.retain, d.snapshot_only), (None, true, false));
        let snap = r#"{"channel":"room","event":"s","data":1,"ts":7,"snapshot_only":true}"#;
        let d = decode(format!("ab12\n42\n{snap}").as_bytes()).unwrap();
        assert_eq!(
            (d.snapshot_only, d.frame.id.as_str()),
            (true, "snapshot-ab12-42")
        );
        assert!(decode(b"no newline").is_none());
    }
}

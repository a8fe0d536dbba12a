//! The server's state and rules: connections, channels, presence, history, tokens. Every
//! operation runs under one lock and only queues frames to the sockets (never awaits), so the
//! order of fan-out is the order of arrival.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::capability::{Capability, Op};
use crate::config::{KeyConfig, PeerConfig};
use crate::error::AblyError;
use crate::token::Tokens;

/// Protocol actions (`TR2`).
pub mod action {
    /// Keep-alive / ping.
    pub const HEARTBEAT: u64 = 0;
    /// Publish acknowledged.
    pub const ACK: u64 = 1;
    /// Publish refused.
    pub const NACK: u64 = 2;
    /// Connection established.
    pub const CONNECTED: u64 = 4;
    /// Client asks to disconnect.
    pub const DISCONNECT: u64 = 5;
    /// Server drops the transport.
    pub const DISCONNECTED: u64 = 6;
    /// Client closes.
    pub const CLOSE: u64 = 7;
    /// Reply to CLOSE.
    pub const CLOSED: u64 = 8;
    /// Error (fatal without `channel`).
    pub const ERROR: u64 = 9;
    /// Attach a channel.
    pub const ATTACH: u64 = 10;
    /// Channel attached.
    pub const ATTACHED: u64 = 11;
    /// Detach a channel.
    pub const DETACH: u64 = 12;
    /// Channel detached.
    pub const DETACHED: u64 = 13;
    /// Presence.
    pub const PRESENCE: u64 = 14;
    /// Messages.
    pub const MESSAGE: u64 = 15;
    /// Presence sync.
    pub const SYNC: u64 = 16;
    /// Re-authentication.
    pub const AUTH: u64 = 17;
}

/// ATTACHED flags (`TR3`).
pub mod flags {
    /// A SYNC follows.
    pub const HAS_PRESENCE: u64 = 1;
    /// Channel continuity preserved.
    pub const RESUMED: u64 = 4;
    /// Mode: presence.
    pub const PRESENCE: u64 = 1 << 16;
    /// Mode: publish.
    pub const PUBLISH: u64 = 1 << 17;
    /// Mode: subscribe.
    pub const SUBSCRIBE: u64 = 1 << 18;
    /// Mode: presence subscribe.
    pub const PRESENCE_SUBSCRIBE: u64 = 1 << 19;
}

/// Presence actions (`TP2`).
mod presence_action {
    pub const PRESENT: u64 = 1;
    pub const ENTER: u64 = 2;
    pub const LEAVE: u64 = 3;
    pub const UPDATE: u64 = 4;
}

/// Stored messages kept per channel (history, resume replay).
const HISTORY_LIMIT: usize = 10_000;
/// Members per SYNC page.
const SYNC_PAGE: usize = 100;

/// What a socket task is told to do.
#[derive(Debug)]
pub(crate) enum Out {
    /// Send this text frame.
    Frame(String),
    /// Send a close frame and end.
    Close,
    /// End without a close frame (a dropped link).
    Abort,
}

#[derive(Debug)]
struct Link {
    tx: UnboundedSender<Out>,
}

#[derive(Debug)]
struct Conn {
    id: String,
    key: String,
    client_id: Option<String>,
    /// May act as any client id (key without clientId, or a `*` token).
    wildcard: bool,
    capability: Capability,
    token: Option<String>,
    echo: bool,
    link: Option<Link>,
    /// Bumped whenever the link changes; timers started for an older one do nothing.
    epoch: u64,
    next_serial: u64,
    /// Attached channels, with the link epoch each was attached on.
    attached: BTreeMap<String, u64>,
}

impl Conn {
    fn send(&self, frame: &Value) {
        if let Some(link) = &self.link {
            let _ = link.tx.send(Out::Frame(frame.to_string()));
        }
    }

    fn end(&mut self, how: Out) {
        if let Some(link) = self.link.take() {
            let _ = link.tx.send(how);
        }
    }
}

/// A presence member as the peer holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Client id.
    pub client_id: String,
    /// Connection id.
    pub connection_id: String,
    /// Data as sent (with `encoding`).
    pub data: Option<Value>,
    /// Encoding of `data`.
    pub encoding: Option<String>,
    /// Id of the presence message that set it.
    pub id: String,
    /// When, ms since the epoch.
    pub timestamp: i64,
}

impl Member {
    fn wire(&self, action: u64) -> Value {
        let mut v = json!({
            "action": action,
            "clientId": self.client_id,
            "connectionId": self.connection_id,
            "id": self.id,
            "timestamp": self.timestamp,
        });
        if let Some(d) = &self.data {
            v["data"] = d.clone();
        }
        if let Some(e) = &self.encoding {
            v["encoding"] = json!(e);
        }
        v
    }
}

#[derive(Debug)]
struct Stored {
    seq: u64,
    from_conn: Option<String>,
    frame: Value,
}

#[derive(Debug, Default)]
struct Chan {
    seq: u64,
    /// channelSerials below this cannot be continued from (continuity lost).
    resumable_from: u64,
    last_ms: i64,
    counter: u64,
    history: VecDeque<Stored>,
    members: BTreeMap<(String, String), Member>,
}

/// A connection as the test API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Connection id.
    pub id: String,
    /// Its client id, if identified.
    pub client_id: Option<String>,
    /// Whether a socket is attached to it now.
    pub live: bool,
    /// The channels it is attached to.
    pub attached: Vec<String>,
    /// The capability it holds now (canonical JSON).
    pub capability: String,
}

/// The mutable state.
#[derive(Debug, Default)]
pub(crate) struct State {
    conns: HashMap<String, Conn>,
    by_key: HashMap<String, String>,
    channels: HashMap<String, Chan>,
    pub(crate) tokens: Tokens,
    next: u64,
    offset_ms: i64,
    instance: String,
}

/// The state plus configuration, shared by the sockets, REST handlers, timers and test API.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: PeerConfig,
    state: Mutex<State>,
    instance: String,
    /// The peer's clock runs on tokio time (a paused test clock moves it) from the wall
    /// time at start.
    started_wall: i64,
    started: tokio::time::Instant,
}

/// Who is authenticated and what they may do.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub(crate) capability: Capability,
    /// `None`: no token clientId; `Some("*")`: any.
    pub(crate) token_client_id: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) is_key: bool,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn error_frame(err: &AblyError, channel: Option<&str>) -> Value {
    let mut v = json!({"action": action::ERROR, "error": err.to_json()});
    if let Some(c) = channel {
        v["channel"] = json!(c);
    }
    v
}

impl Shared {
    pub(crate) fn new(cfg: PeerConfig) -> Arc<Self> {
        let instance = format!("{:08x}", fastrand::u32(..));
        Arc::new(Self {
            cfg,
            state: Mutex::new(State {
                instance: instance.clone(),
                ..State::default()
            }),
            instance,
            started_wall: wall_ms(),
            started: tokio::time::Instant::now(),
        })
    }

    fn clock(&self, offset_ms: i64) -> i64 {
        self.started_wall + self.started.elapsed().as_millis() as i64 + offset_ms
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The peer's clock: wall time at start, plus tokio time since, plus what the test API
    /// advanced it by.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock(self.lock().offset_ms)
    }

    pub(crate) fn key(&self, name: &str) -> Option<&KeyConfig> {
        self.cfg.keys.iter().find(|k| k.name == name)
    }

    /// Basic auth with the full key `appId.keyId:secret`.
    pub(crate) fn auth_key(&self, full: &str) -> Result<Auth, AblyError> {
        let (name, secret) = full.split_once(':').ok_or_else(|| {
            AblyError::new(40101, 401, "invalid key (expected appId.keyId:secret)")
        })?;
        let key = self
            .key(name)
            .filter(|k| {
                use subtle::ConstantTimeEq;
                bool::from(k.secret.as_bytes().ct_eq(secret.as_bytes()))
            })
            .ok_or_else(|| AblyError::new(40101, 401, "invalid credentials"))?;
        Ok(Auth {
            capability: key.capability.clone(),
            token_client_id: None,
            token: None,
            is_key: true,
        })
    }

    /// Token auth: known and not expired.
    pub(crate) fn auth_token(&self, token: &str) -> Result<Auth, AblyError> {
        let now = self.now_ms();
        let st = self.lock();
        let t = st
            .tokens
            .get(token)
            .ok_or_else(|| AblyError::new(40143, 401, "token unrecognised"))?;
        if t.expires <= now {
            return Err(AblyError::new(40142, 401, "token expired"));
        }
        Ok(Auth {
            capability: t.capability.clone(),
            token_client_id: t.client_id.clone(),
            token: Some(t.token.clone()),
            is_key: false,
        })
    }

    fn channel_serial(&self, seq: u64) -> String {
        format!("{}:{seq}", self.instance)
    }

    fn parse_channel_serial(&self, s: &str) -> Option<u64> {
        let (inst, seq) = s.rsplit_once(':')?;
        (inst == self.instance).then(|| seq.parse().ok())?
    }

    // ---- connections -------------------------------------------------------------------

    /// A new socket with the connect query. Sends CONNECTED (or a fatal ERROR and a close)
    /// through `tx`; returns the connection id and link generation when connected.
    pub(crate) fn open(
        self: &Arc<Self>,
        q: &HashMap<String, String>,
        tx: UnboundedSender<Out>,
    ) -> Option<(String, u64)> {
        let fail = |err: AblyError| {
            let _ = tx.send(Out::Frame(error_frame(&err, None).to_string()));
            let _ = tx.send(Out::Close);
            None
        };
        match q.get("v").map(|v| v.parse::<f64>()) {
            Some(Ok(v)) if v >= 2.0 => {}
            Some(_) => return fail(AblyError::bad_request("unsupported protocol version")),
            None => return fail(AblyError::bad_request("missing protocol version `v`")),
        }
        if q.get("format").is_some_and(|f| f != "json") {
            return fail(AblyError::bad_request("only format=json is supported"));
        }
        let auth = match (q.get("key"), q.get("access_token")) {
            (Some(k), _) => self.auth_key(k),
            (None, Some(t)) => self.auth_token(t),
            (None, None) => Err(AblyError::new(40101, 401, "no credentials")),
        };
        let auth = match auth {
            Ok(a) => a,
            Err(e) => return fail(e),
        };
        let asked = q.get("clientId").cloned();
        let (client_id, wildcard) = match resolve_client_id(&auth, asked) {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        let echo = q.get("echo").is_none_or(|e| e != "false");
        let now = self.now_ms();
        let mut st = self.lock();
        st.next += 1;
        let epoch = st.next;
        let link = Link { tx: tx.clone() };
        let wanted = q.get("resume").or_else(|| q.get("recover"));
        let existing = wanted
            .and_then(|k| st.by_key.get(k).cloned())
            .filter(|id| st.conns.get(id).is_some_and(|c| c.client_id == client_id));
        let (id, resume_error) = match existing {
            Some(id) => {
                let c = st.conns.get_mut(&id).expect("indexed connection exists");
                c.end(Out::Abort); // a superseded transport
                c.link = Some(link);
                c.epoch = epoch;
                c.capability = auth.capability.clone();
                c.token = auth.token.clone();
                c.echo = echo;
                (id, None)
            }
            None => {
                let id = format!("peer{:x}{:06x}", epoch, fastrand::u32(..0xff_ffff));
                let key = format!("{id}!{:016x}", fastrand::u64(..));
                st.by_key.insert(key.clone(), id.clone());
                st.conns.insert(
                    id.clone(),
                    Conn {
                        id: id.clone(),
                        key,
                        client_id: client_id.clone(),
                        wildcard,
                        capability: auth.capability.clone(),
                        token: auth.token.clone(),
                        echo,
                        link: Some(link),
                        epoch,
                        next_serial: 0,
                        attached: BTreeMap::new(),
                    },
                );
                let err = wanted.map(|_| {
                    AblyError::new(
                        80008,
                        400,
                        "unable to recover connection: connection expired or unknown",
                    )
                });
                (id, err)
            }
        };
        let c = &st.conns[&id];
        let mut frame = json!({
            "action": action::CONNECTED,
            "connectionId": id,
            "connectionDetails": self.details(c, &auth),
        });
        if let Some(e) = resume_error {
            frame["error"] = e.to_json();
        }
        c.send(&frame);
        drop(st);
        let _ = now;
        self.watch_expiry(&id, epoch);
        Some((id, epoch))
    }

    fn details(&self, c: &Conn, auth: &Auth) -> Value {
        let mut d = json!({
            "connectionKey": c.key,
            "maxMessageSize": self.cfg.max_message_size,
            "maxFrameSize": 524_288,
            "maxInboundRate": 50,
            "connectionStateTtl": self.cfg.connection_state_ttl.as_millis() as u64,
            "maxIdleInterval": self.cfg.max_idle_interval.as_millis() as u64,
            "serverId": format!("relayport-peer-ably.{}", self.instance),
        });
        if let Some(cid) = &c.client_id {
            d["clientId"] = json!(cid);
        } else if auth.token_client_id.as_deref() == Some("*") {
            d["clientId"] = json!("*");
        }
        d
    }

    /// The socket of `epoch` closed or failed: the connection stays resumable for
    /// `connectionStateTtl`; its presence members leave after the grace period.
    pub(crate) fn link_lost(self: &Arc<Self>, id: &str, epoch: u64) {
        let mut st = self.lock();
        let Some(c) = st.conns.get_mut(id) else {
            return;
        };
        if c.epoch != epoch || c.link.is_none() {
            return;
        }
        c.link = None;
        drop(st);
        self.after_drop(id, epoch);
    }

    fn after_drop(self: &Arc<Self>, id: &str, epoch: u64) {
        let me = Arc::clone(self);
        let (id1, id2) = (id.to_owned(), id.to_owned());
        let grace = self.cfg.presence_leave_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let mut st = me.lock();
            if st
                .conns
                .get(&id1)
                .is_some_and(|c| c.epoch == epoch && c.link.is_none())
            {
                let now = me.clock(st.offset_ms);
                st.leave_all(&id1, now);
            }
        });
        let me = Arc::clone(self);
        let ttl = self.cfg.connection_state_ttl;
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            let mut st = me.lock();
            if st
                .conns
                .get(&id2)
                .is_some_and(|c| c.epoch == epoch && c.link.is_none())
            {
                let now = me.clock(st.offset_ms);
                st.forget(&id2, now);
            }
        });
    }

    /// Ends the link at its token's expiry with DISCONNECTED 40142.
    fn watch_expiry(self: &Arc<Self>, id: &str, epoch: u64) {
        let token = {
            let st = self.lock();
            st.conns.get(id).and_then(|c| c.token.clone())
        };
        let Some(token) = token else { return };
        let me = Arc::clone(self);
        let id = id.to_owned();
        tokio::spawn(async move {
            loop {
                let left = {
                    let st = me.lock();
                    let Some(t) = st.tokens.get(&token) else {
                        return;
                    };
                    t.expires - me.clock(st.offset_ms)
                };
                if left <= 0 {
                    break;
                }
                // Re-checked at least every second so an advanced clock is noticed.
                tokio::time::sleep(Duration::from_millis(left.min(1000) as u64)).await;
                let st = me.lock();
                let still = st
                    .conns
                    .get(&id)
                    .is_some_and(|c| c.epoch == epoch && c.token.as_deref() == Some(&token));
                if !still {
                    return;
                }
            }
            me.expire_link(&id, epoch, &token);
        });
    }

    fn expire_link(self: &Arc<Self>, id: &str, epoch: u64, token: &str) {
        let mut st = self.lock();
        let Some(c) = st.conns.get_mut(id) else {
            return;
        };
        if c.epoch != epoch || c.token.as_deref() != Some(token) || c.link.is_none() {
            return;
        }
        c.send(&json!({
            "action": action::DISCONNECTED,
            "error": AblyError::new(40142, 401, "token expired").to_json(),
        }));
        c.end(Out::Close);
        drop(st);
        self.after_drop(id, epoch);
    }

    /// One inbound text frame.
    pub(crate) fn inbound(self: &Arc<Self>, id: &str, epoch: u64, text: &str) {
        let msg: Value = match serde_json::from_str(text) {
            Ok(Value::Object(m)) => Value::Object(m),
            _ => {
                self.fatal(
                    id,
                    epoch,
                    AblyError::bad_request("malformed protocol message"),
                );
                return;
            }
        };
        let Some(act) = msg.get("action").and_then(Value::as_u64) else {
            self.fatal(
                id,
                epoch,
                AblyError::bad_request("protocol message without action"),
            );
            return;
        };
        let channel = msg
            .get("channel")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match act {
            action::HEARTBEAT => {
                let st = self.lock();
                if let Some(c) = st.live(id, epoch) {
                    let mut hb = json!({"action": action::HEARTBEAT});
                    if let Some(i) = msg.get("id") {
                        hb["id"] = i.clone();
                    }
                    c.send(&hb);
                }
            }
            action::CLOSE => {
                let now = self.now_ms();
                let mut st = self.lock();
                if st.live(id, epoch).is_none() {
                    return;
                }
                st.leave_all(id, now);
                if let Some(c) = st.conns.get_mut(id) {
                    c.send(&json!({"action": action::CLOSED}));
                    c.end(Out::Close);
                }
                st.forget(id, now);
            }
            action::DISCONNECT => {
                let mut st = self.lock();
                if let Some(c) = st.conns.get_mut(id).filter(|c| c.epoch == epoch) {
                    c.send(&json!({"action": action::DISCONNECTED}));
                    c.end(Out::Close);
                    drop(st);
                    self.after_drop(id, epoch);
                }
            }
            action::ATTACH | action::DETACH | action::MESSAGE | action::PRESENCE
                if channel.is_none() =>
            {
                self.fatal(id, epoch, AblyError::bad_request("channel missing"));
            }
            action::ATTACH => {
                let serial = msg.get("channelSerial").and_then(Value::as_str);
                let from = serial.and_then(|s| self.parse_channel_serial(s));
                let requested = msg.get("flags").and_then(Value::as_u64).unwrap_or(0);
                self.attach(id, epoch, &channel.unwrap_or_default(), from, requested);
            }
            action::DETACH => {
                let now = self.now_ms();
                let mut st = self.lock();
                let ch = channel.unwrap_or_default();
                if st.live(id, epoch).is_none() {
                    return;
                }
                st.leave_channel(id, &ch, now);
                if let Some(c) = st.conns.get_mut(id) {
                    c.attached.remove(&ch);
                    c.send(&json!({"action": action::DETACHED, "channel": ch}));
                }
            }
            action::MESSAGE => self.publish_realtime(id, epoch, &channel.unwrap_or_default(), &msg),
            action::PRESENCE => self.presence(id, epoch, &channel.unwrap_or_default(), &msg),
            action::AUTH => self.reauth(id, epoch, &msg),
            _ => {} // unknown or unused actions are ignored (forward compatibility)
        }
    }

    fn fatal(self: &Arc<Self>, id: &str, epoch: u64, err: AblyError) {
        let now = self.now_ms();
        let mut st = self.lock();
        let Some(c) = st.conns.get_mut(id).filter(|c| c.epoch == epoch) else {
            return;
        };
        c.send(&error_frame(&err, None));
        c.end(Out::Close);
        st.leave_all(id, now);
        st.forget(id, now);
    }

    fn attach(self: &Arc<Self>, id: &str, epoch: u64, ch: &str, from: Option<u64>, requested: u64) {
        let mut st = self.lock();
        let Some(c) = st.live(id, epoch) else { return };
        if !c.capability.covers(ch) {
            let err = AblyError::not_permitted(format!(
                "channel denied access based on given capability; channel = {ch}"
            ));
            c.send(&error_frame(&err, Some(ch)));
            return;
        }
        let cap = c.capability.clone();
        // Continuity without a channelSerial only on the very link it was attached on.
        let (echo, same_link) = (c.echo, c.attached.get(ch) == Some(&c.epoch));
        let chan = st.channels.entry(ch.to_owned()).or_default();
        let oldest = chan
            .history
            .front()
            .map_or(chan.seq, |s| s.seq.saturating_sub(1));
        let resumable =
            from.filter(|f| *f >= oldest && *f >= chan.resumable_from && *f <= chan.seq);
        let mut fl = 0;
        if resumable.is_some() || same_link {
            fl |= flags::RESUMED;
        }
        if !chan.members.is_empty() {
            fl |= flags::HAS_PRESENCE;
        }
        for (op, bit) in [
            (Op::Subscribe, flags::SUBSCRIBE),
            (Op::Publish, flags::PUBLISH),
            (Op::Presence, flags::PRESENCE),
            (Op::Subscribe, flags::PRESENCE_SUBSCRIBE),
        ] {
            let asked = requested & 0xffff_0000;
            if cap.allows(ch, op) && (asked == 0 || asked & bit != 0) {
                fl |= bit;
            }
        }
        let attached = json!({
            "action": action::ATTACHED,
            "channel": ch,
            "flags": fl,
            "channelSerial": self.channel_serial(chan.seq),
        });
        let replay: Vec<Value> = match resumable {
            Some(f) if cap.allows(ch, Op::Subscribe) => chan
                .history
                .iter()
                .filter(|s| s.seq > f && (echo || s.from_conn.as_deref() != Some(id)))
                .map(|s| s.frame.clone())
                .collect(),
            _ => Vec::new(),
        };
        let members: Vec<Value> = chan
            .members
            .values()
            .map(|m| m.wire(presence_action::PRESENT))
            .collect();
        let c = st.conns.get_mut(id).expect("live connection");
        let epoch_now = c.epoch;
        c.attached.insert(ch.to_owned(), epoch_now);
        c.send(&attached);
        for f in replay {
            c.send(&f);
        }
        if !members.is_empty() {
            let sync_id = format!("sync{:x}", fastrand::u32(..));
            let pages: Vec<&[Value]> = members.chunks(SYNC_PAGE).collect();
            let n = pages.len();
            for (i, page) in pages.into_iter().enumerate() {
                let cursor = if i + 1 == n {
                    String::new()
                } else {
                    format!("{}", i + 1)
                };
                c.send(&json!({
                    "action": action::SYNC,
                    "channel": ch,
                    "channelSerial": format!("{sync_id}:{cursor}"),
                    "presence": page,
                }));
            }
        }
    }

    fn ack(c: &Conn, serial: u64, serials: Vec<Value>) {
        c.send(&json!({
            "action": action::ACK, "msgSerial": serial, "count": 1,
            "res": [{"serials": serials}],
        }));
    }

    fn nack(c: &Conn, serial: u64, err: &AblyError) {
        c.send(&json!({
            "action": action::NACK, "msgSerial": serial, "count": 1, "error": err.to_json(),
        }));
    }

    /// Admits a publish or presence request on `ch`: its msgSerial is taken (`Err` when it is
    /// missing: fatal), a repeated serial is acknowledged again without being processed twice
    /// and a request the capability does not allow is NACKed (both `Ok(None)`: answered
    /// here); otherwise `Ok(Some(serial))`.
    fn admit(
        c: &mut Conn,
        msg: &Value,
        ch: &str,
        op: Op,
        what: &str,
    ) -> Result<Option<u64>, AblyError> {
        let serial = msg
            .get("msgSerial")
            .and_then(Value::as_u64)
            .ok_or_else(|| AblyError::bad_request("msgSerial missing"))?;
        if serial < c.next_serial {
            Self::ack(c, serial, Vec::new());
            return Ok(None);
        }
        c.next_serial = serial + 1;
        if !c.capability.allows(ch, op) {
            let err = AblyError::not_permitted(format!(
                "unable to perform channel operation ({what}); channel = {ch}"
            ));
            Self::nack(c, serial, &err);
            return Ok(None);
        }
        Ok(Some(serial))
    }

    fn publish_realtime(self: &Arc<Self>, id: &str, epoch: u64, ch: &str, msg: &Value) {
        let now = self.now_ms();
        let mut st = self.lock();
        let Some(c) = st
            .conns
            .get_mut(id)
            .filter(|c| c.epoch == epoch && c.link.is_some())
        else {
            return;
        };
        let serial = match Self::admit(c, msg, ch, Op::Publish, "publish") {
            Ok(Some(serial)) => serial,
            Ok(None) => return,
            Err(e) => {
                drop(st);
                self.fatal(id, epoch, e);
                return;
            }
        };
        let Some(items) = msg.get("messages").and_then(Value::as_array) else {
            Self::nack(c, serial, &AblyError::bad_request("messages missing"));
            return;
        };
        let identity = (c.client_id.clone(), c.wildcard);
        let mut out = Vec::with_capacity(items.len());
        for (i, m) in items.iter().enumerate() {
            match self.prepare_message(m, &identity, Some(id), &format!("{id}:{serial}:{i}"), now) {
                Ok(m) => out.push(m),
                Err(e) => {
                    Self::nack(c, serial, &e);
                    return;
                }
            }
        }
        let pm_id = format!("{id}:{serial}");
        let serials = st.store(self, ch, out, Some(id), &pm_id, now);
        let c = &st.conns[id];
        Self::ack(c, serial, serials.into_iter().map(Value::from).collect());
    }

    /// Validates one message and fills in what the server adds.
    pub(crate) fn prepare_message(
        &self,
        m: &Value,
        (client_id, wildcard): &(Option<String>, bool),
        conn: Option<&str>,
        default_id: &str,
        now: i64,
    ) -> Result<Map<String, Value>, AblyError> {
        let Value::Object(m) = m else {
            return Err(AblyError::bad_request("a message is a JSON object"));
        };
        let mut m = m.clone();
        m.remove("size"); // ably-js 2.x leaks its cached size onto the wire
        match m.get("data") {
            None | Some(Value::Null | Value::String(_) | Value::Object(_) | Value::Array(_)) => {}
            Some(_) => return Err(AblyError::new(40013, 400, "invalid message data type")),
        }
        let size = m.get("name").and_then(Value::as_str).map_or(0, str::len)
            + match m.get("data") {
                Some(Value::String(s)) => s.len(),
                Some(Value::Null) | None => 0,
                Some(other) => other.to_string().len(),
            };
        if size > self.cfg.max_message_size {
            return Err(AblyError::new(
                40009,
                400,
                "maximum message length exceeded",
            ));
        }
        match m.get("clientId") {
            Some(Value::String(given)) => {
                let ok = match client_id {
                    Some(own) => own == given,
                    None => *wildcard,
                };
                if !ok {
                    return Err(AblyError::new(
                        40012,
                        400,
                        format!("mismatched clientId `{given}`"),
                    ));
                }
            }
            Some(Value::Null) | None => {
                if let Some(own) = client_id {
                    m.insert("clientId".into(), json!(own));
                }
            }
            Some(_) => return Err(AblyError::bad_request("clientId must be a string")),
        }
        if !m.contains_key("id") {
            m.insert("id".into(), json!(default_id));
        }
        if let Some(conn) = conn {
            m.insert("connectionId".into(), json!(conn));
        }
        m.insert("timestamp".into(), json!(now));
        Ok(m)
    }

    fn presence(self: &Arc<Self>, id: &str, epoch: u64, ch: &str, msg: &Value) {
        let now = self.now_ms();
        let mut st = self.lock();
        let Some(c) = st
            .conns
            .get_mut(id)
            .filter(|c| c.epoch == epoch && c.link.is_some())
        else {
            return;
        };
        let serial = match Self::admit(c, msg, ch, Op::Presence, "presence") {
            Ok(Some(serial)) => serial,
            Ok(None) => return,
            Err(e) => {
                drop(st);
                self.fatal(id, epoch, e);
                return;
            }
        };
        let Some(items) = msg.get("presence").and_then(Value::as_array).cloned() else {
            Self::nack(c, serial, &AblyError::bad_request("presence missing"));
            return;
        };
        let (own, wildcard) = (c.client_id.clone(), c.wildcard);
        let mut changes = Vec::new();
        for (i, p) in items.iter().enumerate() {
            let given = p.get("clientId").and_then(Value::as_str).map(str::to_owned);
            let client = match (&own, given) {
                (Some(o), Some(g)) if *o != g => {
                    let e = AblyError::new(40012, 400, format!("mismatched clientId `{g}`"));
                    Self::nack(c, serial, &e);
                    return;
                }
                (Some(o), _) => o.clone(),
                (None, Some(g)) if wildcard => g,
                _ => {
                    let e = AblyError::new(
                        91000,
                        400,
                        "unable to enter presence channel (no clientId)",
                    );
                    Self::nack(c, serial, &e);
                    return;
                }
            };
            let act = p.get("action").and_then(Value::as_u64).unwrap_or(0);
            if !matches!(
                act,
                presence_action::ENTER | presence_action::UPDATE | presence_action::LEAVE
            ) {
                Self::nack(
                    c,
                    serial,
                    &AblyError::bad_request("invalid presence action"),
                );
                return;
            }
            changes.push((
                act,
                Member {
                    client_id: client,
                    connection_id: id.to_owned(),
                    data: p.get("data").cloned().filter(|d| !d.is_null()),
                    encoding: p.get("encoding").and_then(Value::as_str).map(str::to_owned),
                    id: format!("{id}:{serial}:{i}"),
                    timestamp: now,
                },
            ));
        }
        Self::ack(c, serial, Vec::new());
        let pm_id = format!("{id}:{serial}");
        for (act, member) in changes {
            st.apply_presence(self, ch, act, member, &pm_id, now);
        }
    }

    fn reauth(self: &Arc<Self>, id: &str, epoch: u64, msg: &Value) {
        let token = msg
            .get("auth")
            .and_then(|a| a.get("accessToken"))
            .and_then(Value::as_str);
        let auth = match token {
            Some(t) => self.auth_token(t),
            None => Err(AblyError::new(40101, 401, "AUTH without auth.accessToken")),
        };
        let auth = match auth {
            Ok(a) => a,
            Err(e) if (40140..40150).contains(&e.code) => {
                // A token error: the link ends, the client may renew and resume.
                let mut st = self.lock();
                if let Some(c) = st.conns.get_mut(id).filter(|c| c.epoch == epoch) {
                    c.send(&json!({"action": action::DISCONNECTED, "error": e.to_json()}));
                    c.end(Out::Close);
                    drop(st);
                    self.after_drop(id, epoch);
                }
                return;
            }
            Err(e) => return self.fatal(id, epoch, e),
        };
        let now = self.now_ms();
        let mut st = self.lock();
        let Some(c) = st.live(id, epoch) else { return };
        let compatible = match (&auth.token_client_id, &c.client_id) {
            (Some(t), _) if t == "*" => true,
            (Some(t), Some(own)) => t == own,
            (Some(_), None) => false,
            (None, own) => own.is_none(),
        };
        if !compatible {
            drop(st);
            let e = AblyError::new(
                40102,
                401,
                "incompatible credentials: the new token's clientId does not match the connection's",
            );
            return self.fatal(id, epoch, e);
        }
        let c = st.conns.get_mut(id).expect("live connection");
        c.capability = auth.capability.clone();
        c.token = auth.token.clone();
        let lost: Vec<String> = c
            .attached
            .keys()
            .filter(|ch| !c.capability.covers(ch))
            .cloned()
            .collect();
        for ch in &lost {
            let err = AblyError::not_permitted(format!(
                "channel denied access based on given capability; channel = {ch}"
            ));
            c.attached.remove(ch);
            c.send(&error_frame(&err, Some(ch)));
        }
        let details = self.details(c, &auth);
        c.send(&json!({
            "action": action::CONNECTED, "connectionId": id, "connectionDetails": details,
        }));
        for ch in &lost {
            st.leave_channel(id, ch, now);
        }
        drop(st);
        self.watch_expiry(id, epoch);
    }

    // ---- test API and REST ---------------------------------------------------------------

    pub(crate) fn publish_rest(
        self: &Arc<Self>,
        ch: &str,
        identity: (Option<String>, bool),
        items: Vec<Value>,
    ) -> Result<(String, Vec<String>), AblyError> {
        let now = self.now_ms();
        let base = format!("rest{:012x}", fastrand::u64(..1 << 48));
        let mut out = Vec::new();
        let mut st = self.lock();
        for (i, m) in items.iter().enumerate() {
            let m = self.prepare_message(m, &identity, None, &format!("{base}:{i}"), now)?;
            // Idempotent publishing: an id already stored on the channel is not published twice.
            let dup = m.get("id").is_some_and(|id| {
                st.channels.get(ch).is_some_and(|c| {
                    c.history.iter().any(|s| {
                        s.frame["messages"]
                            .as_array()
                            .is_some_and(|ms| ms.iter().any(|x| x.get("id") == Some(id)))
                    })
                })
            });
            if !dup {
                out.push(m);
            }
        }
        if out.is_empty() {
            return Ok((base, Vec::new()));
        }
        let serials = st.store(self, ch, out, None, &base, now);
        Ok((base, serials))
    }

    pub(crate) fn history(&self, ch: &str) -> Vec<(u64, Value)> {
        let st = self.lock();
        let Some(c) = st.channels.get(ch) else {
            return Vec::new();
        };
        c.history
            .iter()
            .flat_map(|s| {
                let pm = &s.frame;
                pm["messages"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |m| (s.seq, m))
            })
            .collect()
    }

    pub(crate) fn members(&self, ch: &str) -> Vec<Member> {
        let st = self.lock();
        st.channels
            .get(ch)
            .map(|c| c.members.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn connections(&self) -> Vec<ConnectionInfo> {
        let st = self.lock();
        let mut v: Vec<ConnectionInfo> = st
            .conns
            .values()
            .map(|c| ConnectionInfo {
                id: c.id.clone(),
                client_id: c.client_id.clone(),
                live: c.link.is_some(),
                attached: c.attached.keys().cloned().collect(),
                capability: c.capability.to_json_string(),
            })
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub(crate) fn drop_link(self: &Arc<Self>, id: &str) -> bool {
        let mut st = self.lock();
        let Some(c) = st.conns.get_mut(id) else {
            return false;
        };
        if c.link.is_none() {
            return false;
        }
        c.end(Out::Abort);
        let epoch = c.epoch;
        drop(st);
        self.after_drop(id, epoch);
        true
    }

    pub(crate) fn expire_connection(&self, id: &str) -> bool {
        let now = self.now_ms();
        let mut st = self.lock();
        let Some(c) = st.conns.get_mut(id) else {
            return false;
        };
        c.end(Out::Abort);
        st.leave_all(id, now);
        st.forget(id, now);
        true
    }

    pub(crate) fn advance(self: &Arc<Self>, by: Duration) {
        self.lock().offset_ms += by.as_millis() as i64;
        self.sweep_expired();
    }

    pub(crate) fn expire_tokens(self: &Arc<Self>) {
        let now = self.now_ms();
        self.lock().tokens.expire_all(now);
        self.sweep_expired();
    }

    fn sweep_expired(self: &Arc<Self>) {
        let now = self.now_ms();
        let due: Vec<(String, u64, String)> = {
            let st = self.lock();
            st.conns
                .values()
                .filter(|c| c.link.is_some())
                .filter_map(|c| {
                    let t = c.token.as_ref()?;
                    let tok = st.tokens.get(t)?;
                    (tok.expires <= now).then(|| (c.id.clone(), c.epoch, t.clone()))
                })
                .collect()
        };
        for (id, epoch, token) in due {
            self.expire_link(&id, epoch, &token);
        }
    }

    pub(crate) fn break_continuity(&self, ch: &str) {
        let mut st = self.lock();
        let chan = st.channels.entry(ch.to_owned()).or_default();
        chan.resumable_from = chan.seq + 1;
    }

    pub(crate) fn request_auth(&self, id: &str) -> bool {
        let st = self.lock();
        match st.conns.get(id).filter(|c| c.link.is_some()) {
            Some(c) => {
                c.send(&json!({"action": action::AUTH}));
                true
            }
            None => false,
        }
    }
}

fn resolve_client_id(
    auth: &Auth,
    asked: Option<String>,
) -> Result<(Option<String>, bool), AblyError> {
    if asked.as_deref() == Some("*") || asked.as_deref() == Some("") {
        return Err(AblyError::new(40012, 400, "invalid clientId"));
    }
    if auth.is_key {
        let wildcard = asked.is_none();
        return Ok((asked, wildcard));
    }
    match (auth.token_client_id.as_deref(), asked) {
        (Some("*"), asked) => {
            let wildcard = asked.is_none();
            Ok((asked, wildcard))
        }
        (Some(t), None) => Ok((Some(t.to_owned()), false)),
        (Some(t), Some(a)) if t == a => Ok((Some(a), false)),
        (_, Some(a)) => Err(AblyError::new(
            40102,
            401,
            format!("incompatible credentials: clientId `{a}` is not the token's"),
        )),
        (None, None) => Ok((None, false)),
    }
}

impl State {
    fn live(&self, id: &str, epoch: u64) -> Option<&Conn> {
        self.conns
            .get(id)
            .filter(|c| c.epoch == epoch && c.link.is_some())
    }

    /// Stores one protocol message's worth of messages and fans it out; returns their serials.
    fn store(
        &mut self,
        shared: &Shared,
        ch: &str,
        mut messages: Vec<Map<String, Value>>,
        from: Option<&str>,
        pm_id: &str,
        now: i64,
    ) -> Vec<String> {
        let chan = self.channels.entry(ch.to_owned()).or_default();
        let mut ms = now.max(chan.last_ms);
        if ms == chan.last_ms {
            chan.counter += 1;
            if chan.counter >= 1000 {
                ms += 1;
                chan.counter = 0;
            }
        } else {
            chan.counter = 0;
        }
        chan.last_ms = ms;
        chan.seq += 1;
        let seq = chan.seq;
        let serials: Vec<String> = (0..messages.len())
            .map(|i| format!("{ms:014}-{:03}@peer:{:03}", chan.counter, i.min(999)))
            .collect();
        for (m, s) in messages.iter_mut().zip(&serials) {
            m.insert("serial".into(), json!(s));
        }
        let mut frame = json!({
            "action": action::MESSAGE,
            "id": pm_id,
            "channel": ch,
            "channelSerial": shared.channel_serial(seq),
            "timestamp": now,
            "messages": messages,
        });
        if let Some(f) = from {
            frame["connectionId"] = json!(f);
        }
        chan.history.push_back(Stored {
            seq,
            from_conn: from.map(str::to_owned),
            frame: frame.clone(),
        });
        if chan.history.len() > HISTORY_LIMIT {
            chan.history.pop_front();
        }
        for c in self.conns.values() {
            if c.attached.contains_key(ch)
                && c.capability.allows(ch, Op::Subscribe)
                && (c.echo || from != Some(c.id.as_str()))
            {
                c.send(&frame);
            }
        }
        serials
    }

    fn apply_presence(
        &mut self,
        shared: &Shared,
        ch: &str,
        act: u64,
        mut member: Member,
        pm_id: &str,
        now: i64,
    ) {
        let chan = self.channels.entry(ch.to_owned()).or_default();
        let key = (member.connection_id.clone(), member.client_id.clone());
        let broadcast = match act {
            presence_action::LEAVE => match chan.members.remove(&key) {
                Some(old) => {
                    if member.data.is_none() {
                        member.data = old.data;
                        member.encoding = old.encoding;
                    }
                    Some(presence_action::LEAVE)
                }
                None => None,
            },
            _ => {
                let existed = chan.members.insert(key, member.clone()).is_some();
                Some(if existed {
                    presence_action::UPDATE
                } else {
                    presence_action::ENTER
                })
            }
        };
        let Some(b) = broadcast else { return };
        let frame = json!({
            "action": action::PRESENCE,
            "id": pm_id,
            "channel": ch,
            "channelSerial": shared.channel_serial(chan.seq),
            "connectionId": member.connection_id,
            "timestamp": now,
            "presence": [member.wire(b)],
        });
        self.send_presence(ch, &frame);
    }

    fn send_presence(&self, ch: &str, frame: &Value) {
        for c in self.conns.values() {
            if c.attached.contains_key(ch)
                && (c.capability.allows(ch, Op::Subscribe) || c.capability.allows(ch, Op::Presence))
            {
                c.send(frame);
            }
        }
    }

    /// Removes `id`'s members on `ch`, broadcasting synthesized LEAVEs (ids not prefixed by
    /// the connection id, so clients order them by timestamp, `RTP2b1`).
    fn leave_channel(&mut self, id: &str, ch: &str, now: i64) {
        let Some(chan) = self.channels.get_mut(ch) else {
            return;
        };
        let gone: Vec<Member> = chan
            .members
            .iter()
            .filter(|((conn, _), _)| conn == id)
            .map(|(_, m)| m.clone())
            .collect();
        for m in &gone {
            chan.members
                .remove(&(m.connection_id.clone(), m.client_id.clone()));
        }
        let serial = chan.seq;
        for mut m in gone {
            self.next += 1;
            m.timestamp = now.max(m.timestamp + 1);
            m.id = format!("leave-{}:0:0", self.next);
            let frame = json!({
                "action": action::PRESENCE,
                "channel": ch,
                "channelSerial": format!("{}:{serial}", self.instance),
                "timestamp": m.timestamp,
                "presence": [m.wire(presence_action::LEAVE)],
            });
            self.send_presence(ch, &frame);
        }
    }

    fn leave_all(&mut self, id: &str, now: i64) {
        let chans: Vec<String> = self.channels.keys().cloned().collect();
        for ch in chans {
            self.leave_channel(id, &ch, now);
        }
    }

    fn forget(&mut self, id: &str, now: i64) {
        self.leave_all(id, now);
        if let Some(c) = self.conns.remove(id) {
            self.by_key.remove(&c.key);
        }
    }
}

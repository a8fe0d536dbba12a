//! The server's state and behaviour: sockets, joined channels, pub/sub fan-out, presence,
//! token checks. Every Phoenix event a client sends lands in one `Hub` method; the socket
//! task ([`crate::socket`]) only moves frames. No lock is held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::clock;
use crate::frame::{self, Broadcast, Inbound, Outbound, UserPayload, Vsn};
use crate::jwt::{self, JwtError};
use crate::policy::{Access, Action, Extension, Policy};
use crate::postgres::{Change, Filter};
use crate::{PeerConfig, PeerEvent, Stats};

/// What the socket task is told to do.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Write a frame.
    Frame(Outbound),
    /// Drop the TCP connection without a close frame.
    Drop,
}

struct Sock {
    tx: mpsc::UnboundedSender<Cmd>,
    vsn: Vsn,
    apikey: String,
}

/// A channel joined by one socket.
struct Chan {
    name: String,
    join_ref: Option<String>,
    private: bool,
    self_broadcast: bool,
    ack: bool,
    presence: bool,
    presence_key: String,
    read_broadcast: bool,
    read_presence: bool,
    filters: Vec<Filter>,
    token: String,
    claims: Map<String, Value>,
    token_gen: u64,
    /// The pending expiry check of the current token.
    expiry: Option<tokio::task::AbortHandle>,
}

impl Drop for Chan {
    fn drop(&mut self) {
        if let Some(timer) = self.expiry.take() {
            timer.abort();
        }
    }
}

impl Chan {
    fn pubsub(&self) -> String {
        pubsub(&self.name, self.private)
    }
}

fn pubsub(name: &str, private: bool) -> String {
    format!("{}:{name}", if private { "private" } else { "public" })
}

struct Meta {
    owner: (u64, String),
    phx_ref: String,
    data: Map<String, Value>,
}

impl Meta {
    fn wire(&self) -> Value {
        let mut m = self.data.clone();
        m.insert("phx_ref".into(), json!(self.phx_ref));
        Value::Object(m)
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    sockets: HashMap<u64, Sock>,
    chans: HashMap<(u64, String), Chan>,
    /// pub/sub topic → presence key → metas.
    presence: HashMap<String, BTreeMap<String, Vec<Meta>>>,
    fail_joins: HashMap<String, (String, usize)>,
    stats: Stats,
}

impl State {
    fn send(&self, socket: u64, frame: Outbound) {
        if let Some(s) = self.sockets.get(&socket) {
            let _ = s.tx.send(Cmd::Frame(frame));
        }
    }

    fn push(
        &self,
        socket: u64,
        join_ref: Option<&str>,
        msg_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) {
        if let Some(s) = self.sockets.get(&socket) {
            let f = frame::encode(s.vsn, join_ref, msg_ref, topic, event, payload);
            let _ = s.tx.send(Cmd::Frame(f));
        }
    }

    fn reply(&self, socket: u64, m: &Inbound, status: &str, response: Value) {
        self.push(
            socket,
            m.join_ref.as_deref(),
            m.msg_ref.as_deref(),
            &m.topic,
            "phx_reply",
            json!({"status": status, "response": response}),
        );
    }

    fn fresh_ref(&mut self) -> String {
        self.next_id += 1;
        format!("F{:x}-{}", self.next_id, fastrand::u32(..))
    }
}

/// The shared server.
pub(crate) struct Hub {
    pub(crate) cfg: PeerConfig,
    state: Mutex<State>,
    events: broadcast::Sender<PeerEvent>,
}

fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn uuid() -> String {
    let b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A refused join: the reason, sent after the configured backoff.
pub(crate) struct JoinRefused(pub String);

impl Hub {
    pub(crate) fn new(cfg: PeerConfig) -> Arc<Hub> {
        Arc::new(Hub {
            cfg,
            state: Mutex::new(State::default()),
            events: broadcast::channel(1024).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, e: PeerEvent) {
        let _ = self.events.send(e);
    }

    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<PeerEvent> {
        self.events.subscribe()
    }

    pub(crate) fn policy(&self) -> Policy {
        self.cfg.policy.clone()
    }

    fn allowed(
        &self,
        name: &str,
        claims: &Map<String, Value>,
        ext: Extension,
        act: Action,
    ) -> bool {
        self.cfg.policy.allows(&Access {
            topic: name,
            claims,
            extension: ext,
            action: act,
        })
    }

    /// Verifies a token as of now (wall clock, see [`clock`]).
    pub(crate) fn verify(&self, token: &str) -> Result<Map<String, Value>, JwtError> {
        jwt::verify(token, &self.cfg.secret, clock::unix_now())
    }

    // ---- sockets ------------------------------------------------------------------------

    pub(crate) fn register(&self, vsn: Vsn, apikey: String) -> (u64, mpsc::UnboundedReceiver<Cmd>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.sockets.insert(id, Sock { tx, vsn, apikey });
        st.stats.connections += 1;
        drop(st);
        self.emit(PeerEvent::Connected { socket: id, vsn });
        (id, rx)
    }

    pub(crate) fn unregister(&self, socket: u64) {
        let mut st = self.lock();
        let topics: Vec<String> = st
            .chans
            .keys()
            .filter(|(s, _)| *s == socket)
            .map(|(_, t)| t.clone())
            .collect();
        for t in topics {
            remove_chan(&mut st, socket, &t);
        }
        st.sockets.remove(&socket);
        drop(st);
        self.emit(PeerEvent::Disconnected { socket });
    }

    pub(crate) fn malformed(&self, socket: u64, why: String) {
        self.lock().stats.malformed += 1;
        self.emit(PeerEvent::Malformed { socket, why });
    }

    // ---- the Phoenix events ---------------------------------------------------------------

    /// One decoded client message. `Err` is a refused join, answered by the caller after the
    /// server's backoff.
    pub(crate) fn handle(self: &Arc<Self>, socket: u64, m: Inbound) -> Result<(), JoinRefused> {
        if m.topic == "phoenix" {
            let st = self.lock();
            if m.event == "heartbeat" {
                st.reply(socket, &m, "ok", json!({}));
            } else {
                st.reply(socket, &m, "error", json!({"reason": "unmatched topic"}));
            }
            return Ok(());
        }
        if m.event == "phx_join" {
            return self.join(socket, m);
        }
        let mut st = self.lock();
        let Some(chan) = st.chans.get(&(socket, m.topic.clone())) else {
            st.reply(socket, &m, "error", json!({"reason": "unmatched topic"}));
            return Ok(());
        };
        if m.join_ref.is_some() && chan.join_ref.is_some() && m.join_ref != chan.join_ref {
            st.stats.stale += 1;
            return Ok(()); // Phoenix ignores messages for an old join.
        }
        match m.event.as_str() {
            "phx_leave" => {
                let join_ref = chan.join_ref.clone();
                let name = chan.name.clone();
                st.reply(socket, &m, "ok", json!({}));
                st.push(
                    socket,
                    join_ref.as_deref(),
                    join_ref.as_deref(),
                    &m.topic,
                    "phx_close",
                    json!({}),
                );
                remove_chan(&mut st, socket, &m.topic);
                drop(st);
                self.emit(PeerEvent::Left { socket, name });
            }
            "broadcast" => self.broadcast(st, socket, m),
            "presence" => self.presence(st, socket, m),
            "access_token" => {
                drop(st);
                self.access_token(socket, m);
            }
            other => {
                st.stats.unknown += 1;
                st.reply(
                    socket,
                    &m,
                    "error",
                    json!({"reason": format!("unknown event `{other}`")}),
                );
            }
        }
        Ok(())
    }

    fn join(self: &Arc<Self>, socket: u64, m: Inbound) -> Result<(), JoinRefused> {
        let Some(name) = m.topic.strip_prefix("realtime:") else {
            self.lock()
                .reply(socket, &m, "error", json!({"reason": "unmatched topic"}));
            return Ok(());
        };
        let name = name.to_owned();
        let refuse = |reason: String| {
            self.lock().stats.joins_refused += 1;
            self.emit(PeerEvent::JoinRefused {
                socket,
                name: name.clone(),
                reason: reason.clone(),
            });
            Err(JoinRefused(reason))
        };
        if name.is_empty() {
            return refuse("TopicNameRequired: You must provide a topic name".into());
        }
        // A second join of a joined topic closes the first (Phoenix).
        {
            let mut st = self.lock();
            if let Some(old) = st.chans.get(&(socket, m.topic.clone())) {
                let jr = old.join_ref.clone();
                st.push(
                    socket,
                    jr.as_deref(),
                    jr.as_deref(),
                    &m.topic,
                    "phx_close",
                    json!({}),
                );
                remove_chan(&mut st, socket, &m.topic);
            }
        }
        let p = &m.payload;
        let config = p.get("config").cloned().unwrap_or(json!({}));
        let token = ["access_token", "user_token"]
            .iter()
            .find_map(|k| p.get(*k).and_then(Value::as_str))
            .filter(|t| !t.starts_with("sb_"))
            .map(str::to_owned);
        let token = match token {
            Some(t) => t,
            None => match self.lock().sockets.get(&socket) {
                Some(s) => s.apikey.clone(),
                None => return Ok(()),
            },
        };
        let claims = match self.verify(&token) {
            Ok(c) => c,
            Err(e) => return refuse(e.reason()),
        };
        let private = flag(config.get("private")).unwrap_or(false);
        if self.cfg.private_only && !private {
            return refuse("PrivateOnly: This project only allows private channels".into());
        }
        {
            let mut st = self.lock();
            if let Some((reason, left)) = st.fail_joins.get_mut(&name) {
                let reason = reason.clone();
                *left -= 1;
                if *left == 0 {
                    st.fail_joins.remove(&name);
                }
                drop(st);
                return refuse(reason);
            }
        }
        let bcfg = config.get("broadcast");
        let pcfg = config.get("presence");
        let presence = flag(pcfg.and_then(|c| c.get("enabled"))).unwrap_or(false);
        let presence_key = match pcfg.and_then(|c| c.get("key")) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(v @ Value::Number(_)) => v.to_string(),
            _ => uuid(),
        };
        let (read_broadcast, read_presence) = if private {
            (
                self.allowed(&name, &claims, Extension::Broadcast, Action::Read),
                self.allowed(&name, &claims, Extension::Presence, Action::Read),
            )
        } else {
            (true, true)
        };
        if private && !read_broadcast && !(presence && read_presence) {
            return refuse(format!(
                "Unauthorized: You do not have permissions to read from this Channel topic: {name}"
            ));
        }
        let mut filters = Vec::new();
        let mut filter_errors = Vec::new();
        if let Some(Value::Array(items)) = config.get("postgres_changes") {
            for item in items {
                match Filter::parse(item) {
                    Ok(f) => filters.push(f),
                    Err(e) => filter_errors.push(e),
                }
            }
        }
        let exp = jwt::exp(&claims);
        let chan = Chan {
            name: name.clone(),
            join_ref: m.join_ref.clone(),
            private,
            self_broadcast: flag(bcfg.and_then(|c| c.get("self"))).unwrap_or(false),
            ack: flag(bcfg.and_then(|c| c.get("ack"))).unwrap_or(false),
            presence,
            presence_key,
            read_broadcast,
            read_presence,
            filters,
            token,
            claims,
            token_gen: 0,
            expiry: None,
        };
        let mut st = self.lock();
        let echo: Vec<Value> = chan.filters.iter().map(|f| f.echo.clone()).collect();
        let has_filters = !chan.filters.is_empty();
        let jr = chan.join_ref.clone();
        let state =
            (chan.presence && chan.read_presence).then(|| presence_state(&st, &chan.pubsub()));
        st.chans.insert((socket, m.topic.clone()), chan);
        st.stats.joins += 1;
        st.reply(socket, &m, "ok", json!({"postgres_changes": echo}));
        if let Some(state) = state {
            st.push(
                socket,
                jr.as_deref(),
                None,
                &m.topic,
                "presence_state",
                state,
            );
        }
        for e in filter_errors {
            let body = json!({"extension": "postgres_changes", "status": "error",
                "message": format!("Error parsing `filter` params: {e}"), "channel": name});
            st.push(socket, jr.as_deref(), None, &m.topic, "system", body);
        }
        if has_filters {
            let body = json!({"extension": "postgres_changes", "status": "ok",
                "message": "Subscribed to PostgreSQL", "channel": name});
            st.push(socket, jr.as_deref(), None, &m.topic, "system", body);
        }
        drop(st);
        self.emit(PeerEvent::Joined {
            socket,
            name,
            private,
        });
        if let Some(exp) = exp {
            self.schedule_expiry(socket, m.topic, 0, exp);
        }
        Ok(())
    }

    /// Checks the channel's token at its `exp` (the server's `confirm_token`); replaces the
    /// previous check.
    fn schedule_expiry(self: &Arc<Self>, socket: u64, topic: String, token_gen: u64, exp: u64) {
        let hub = Arc::downgrade(self);
        let at = clock::deadline(exp);
        let key = (socket, topic.clone());
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let Some(hub) = hub.upgrade() else { return };
            let still = hub
                .lock()
                .chans
                .get(&(socket, topic.clone()))
                .is_some_and(|c| c.token_gen == token_gen);
            if still {
                let ago = clock::unix_now().saturating_sub(exp);
                hub.shutdown(socket, &topic, &jwt::expired_message(ago));
            }
        });
        match self.lock().chans.get_mut(&key) {
            Some(c) if c.token_gen == token_gen => {
                if let Some(old) = c.expiry.replace(task.abort_handle()) {
                    old.abort();
                }
            }
            _ => task.abort(),
        }
    }

    /// Realtime's `shutdown_response`: a `system` error, then `phx_close`; the channel is gone.
    fn shutdown(&self, socket: u64, topic: &str, message: &str) -> bool {
        let mut st = self.lock();
        let Some(chan) = st.chans.get(&(socket, topic.to_owned())) else {
            return false;
        };
        let jr = chan.join_ref.clone();
        let name = chan.name.clone();
        let body =
            json!({"extension": "system", "status": "error", "message": message, "channel": name});
        st.push(socket, jr.as_deref(), None, topic, "system", body);
        st.push(
            socket,
            jr.as_deref(),
            jr.as_deref(),
            topic,
            "phx_close",
            json!({}),
        );
        remove_chan(&mut st, socket, topic);
        st.stats.channels_closed += 1;
        drop(st);
        self.emit(PeerEvent::ChannelClosed {
            socket,
            name,
            reason: message.to_owned(),
        });
        true
    }

    fn access_token(self: &Arc<Self>, socket: u64, m: Inbound) {
        let key = (socket, m.topic.clone());
        let Some(token) = m.payload.get("access_token").and_then(Value::as_str) else {
            return; // null: ignored, as on the server.
        };
        let (name, private, presence, same) = {
            let mut st = self.lock();
            st.stats.access_tokens += 1;
            let Some(c) = st.chans.get(&key) else { return };
            (c.name.clone(), c.private, c.presence, c.token == token)
        };
        self.emit(PeerEvent::AccessToken {
            socket,
            name: name.clone(),
        });
        if token.starts_with("sb_") {
            return;
        }
        if same {
            // The server ignores an unchanged token. Its expiry check is re-armed for the time
            // the token has left: on a real clock the same deadline; on a paused one (where
            // the wall clock stands still and a re-minted token can be byte-identical) the
            // arrival of the token is what its life is timed from (see `clock`).
            let exp = jwt::exp(
                &self
                    .lock()
                    .chans
                    .get(&key)
                    .map(|c| c.claims.clone())
                    .unwrap_or_default(),
            );
            let token_gen = {
                let mut st = self.lock();
                let Some(c) = st.chans.get_mut(&key) else {
                    return;
                };
                c.token_gen += 1;
                c.token_gen
            };
            if let Some(exp) = exp {
                self.schedule_expiry(socket, m.topic, token_gen, exp);
            }
            return;
        }
        let claims = match self.verify(token) {
            Ok(c) => c,
            Err(e) => {
                self.shutdown(socket, &m.topic, &e.message());
                return;
            }
        };
        let (rb, rp) = if private {
            (
                self.allowed(&name, &claims, Extension::Broadcast, Action::Read),
                self.allowed(&name, &claims, Extension::Presence, Action::Read),
            )
        } else {
            (true, true)
        };
        if private && !rb && !(presence && rp) {
            self.shutdown(
                socket,
                &m.topic,
                &format!("You no longer have permission to read from this Channel topic: {name}"),
            );
            return;
        }
        let exp = jwt::exp(&claims);
        let token_gen = {
            let mut st = self.lock();
            let Some(c) = st.chans.get_mut(&key) else {
                return;
            };
            c.token = token.to_owned();
            c.claims = claims;
            c.read_broadcast = rb;
            c.read_presence = rp;
            c.token_gen += 1;
            c.token_gen
        };
        if let Some(exp) = exp {
            self.schedule_expiry(socket, m.topic, token_gen, exp);
        }
    }

    fn broadcast(&self, mut st: MutexGuard<'_, State>, socket: u64, m: Inbound) {
        let key = (socket, m.topic.clone());
        let Some(chan) = st.chans.get(&key) else {
            return;
        };
        let b = match &m.broadcast {
            Some(b) => b.clone(),
            None => match (
                m.payload.get("event").and_then(Value::as_str),
                m.payload.get("payload"),
            ) {
                (Some(event), payload) => Broadcast {
                    event: event.to_owned(),
                    payload: UserPayload::Json(payload.cloned().unwrap_or(json!({}))),
                    meta: None,
                    binary_frame: false,
                },
                (None, _) => {
                    st.stats.malformed += 1;
                    st.reply(
                        socket,
                        &m,
                        "error",
                        json!({"reason": "a broadcast needs a string `event`"}),
                    );
                    return;
                }
            },
        };
        let size = match &b.payload {
            UserPayload::Json(v) => v.to_string().len(),
            UserPayload::Binary(bytes) => bytes.len(),
        };
        let (ack, self_b, private, name) = (
            chan.ack,
            chan.self_broadcast,
            chan.private,
            chan.name.clone(),
        );
        if size > self.cfg.max_payload {
            st.stats.oversize += 1;
            if ack {
                st.reply(socket, &m, "error", json!("payload_size_exceeded"));
            }
            return;
        }
        if private && !self.allowed(&name, &chan.claims, Extension::Broadcast, Action::Write) {
            st.stats.denied_writes += 1;
            return; // The server drops a denied write without a reply, even with ack.
        }
        let ps = pubsub(&name, private);
        fan_out(&st, &ps, &b, (!self_b).then_some(socket));
        st.stats.broadcasts += 1;
        if ack {
            st.reply(socket, &m, "ok", json!({}));
        }
    }

    fn presence(&self, mut st: MutexGuard<'_, State>, socket: u64, m: Inbound) {
        let key = (socket, m.topic.clone());
        let event = m.payload.get("event").and_then(Value::as_str).unwrap_or("");
        let Some(chan) = st.chans.get(&key) else {
            return;
        };
        let (name, private, pkey) = (chan.name.clone(), chan.private, chan.presence_key.clone());
        if private && !self.allowed(&name, &chan.claims, Extension::Presence, Action::Write) {
            st.stats.denied_writes += 1;
            st.reply(socket, &m, "error", json!({"reason": format!(
                "Unauthorized: You do not have permissions to write to this Channel topic: {name}")}));
            return;
        }
        let ps = pubsub(&name, private);
        match event {
            "track" => {
                let Some(Value::Object(data)) = m.payload.get("payload").cloned() else {
                    st.reply(
                        socket,
                        &m,
                        "error",
                        json!({"reason": "Presence track payload must be a map"}),
                    );
                    return;
                };
                if let Some(c) = st.chans.get_mut(&key) {
                    c.presence = true;
                }
                let phx_ref = st.fresh_ref();
                let metas = st
                    .presence
                    .entry(ps.clone())
                    .or_default()
                    .entry(pkey.clone())
                    .or_default();
                let old = metas.iter().position(|x| x.owner == key);
                let diff = match old {
                    Some(i) if metas[i].data == data => None,
                    Some(i) => {
                        let before = metas[i].wire();
                        metas[i].data = data;
                        let prev = std::mem::replace(&mut metas[i].phx_ref, phx_ref);
                        let mut after = metas[i].wire();
                        after["phx_ref_prev"] = json!(prev);
                        Some(json!({"joins": {&pkey: {"metas": [after]}},
                                    "leaves": {&pkey: {"metas": [before]}}}))
                    }
                    None => {
                        let meta = Meta {
                            owner: key.clone(),
                            phx_ref,
                            data,
                        };
                        let wire = meta.wire();
                        metas.push(meta);
                        Some(json!({"joins": {&pkey: {"metas": [wire]}}, "leaves": {}}))
                    }
                };
                st.reply(socket, &m, "ok", json!({}));
                if let Some(diff) = diff {
                    send_diff(&st, &ps, diff);
                }
            }
            "untrack" => {
                st.reply(socket, &m, "ok", json!({}));
                if let Some(diff) = untrack(&mut st, &ps, &pkey, &key) {
                    send_diff(&st, &ps, diff);
                }
            }
            other => st.reply(
                socket,
                &m,
                "error",
                json!({"reason": format!("unknown presence event `{other}`")}),
            ),
        }
    }

    // ---- REST and the control API -----------------------------------------------------------

    /// Delivers a server-originated broadcast (REST) if `claims` may write; `true` if delivered.
    pub(crate) fn rest_broadcast(
        &self,
        name: &str,
        private: bool,
        claims: &Map<String, Value>,
        b: Broadcast,
    ) -> bool {
        if private && !self.allowed(name, claims, Extension::Broadcast, Action::Write) {
            self.lock().stats.denied_writes += 1;
            return false;
        }
        let mut st = self.lock();
        fan_out(&st, &pubsub(name, private), &b, None);
        st.stats.rest_broadcasts += 1;
        true
    }

    pub(crate) fn inject_change(&self, change: &Change) -> usize {
        let st = self.lock();
        let mut n = 0;
        for ((socket, topic), c) in &st.chans {
            let ids: Vec<u32> = c
                .filters
                .iter()
                .filter(|f| f.matches(change))
                .map(|f| f.id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let body = json!({"ids": ids, "data": change.data()});
            st.push(*socket, None, None, topic, "postgres_changes", body);
            n += 1;
        }
        n
    }

    fn chans_named(&self, name: &str) -> Vec<(u64, String)> {
        let mut v: Vec<_> = self
            .lock()
            .chans
            .iter()
            .filter(|(_, c)| c.name == name)
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    /// A channel crash: `phx_error` (ref = join_ref) to every channel named `name` (on one
    /// socket only, if given).
    pub(crate) fn fail_channel(&self, name: &str, only: Option<u64>) -> usize {
        let mut keys = self.chans_named(name);
        keys.retain(|(s, _)| only.is_none_or(|o| o == *s));
        let mut st = self.lock();
        for (socket, topic) in &keys {
            let jr = st
                .chans
                .get(&(*socket, topic.clone()))
                .and_then(|c| c.join_ref.clone());
            st.push(
                *socket,
                jr.as_deref(),
                jr.as_deref(),
                topic,
                "phx_error",
                json!({}),
            );
            remove_chan(&mut st, *socket, topic);
        }
        drop(st);
        for (socket, _) in &keys {
            self.emit(PeerEvent::ChannelErrored {
                socket: *socket,
                name: name.to_owned(),
            });
        }
        keys.len()
    }

    /// A server-side shutdown of every channel named `name`.
    pub(crate) fn close_channel(&self, name: &str, message: &str) -> usize {
        self.chans_named(name)
            .into_iter()
            .filter(|(s, t)| self.shutdown(*s, t, message))
            .count()
    }

    pub(crate) fn fail_next_joins(&self, name: &str, reason: &str, count: usize) {
        if count > 0 {
            self.lock()
                .fail_joins
                .insert(name.to_owned(), (reason.to_owned(), count));
        }
    }

    pub(crate) fn drop_socket(&self, socket: u64) -> bool {
        self.lock()
            .sockets
            .get(&socket)
            .is_some_and(|s| s.tx.send(Cmd::Drop).is_ok())
    }

    pub(crate) fn drop_sockets(&self) -> usize {
        let st = self.lock();
        for s in st.sockets.values() {
            let _ = s.tx.send(Cmd::Drop);
        }
        st.sockets.len()
    }

    pub(crate) fn presence_of(&self, name: &str, private: bool) -> Value {
        presence_state(&self.lock(), &pubsub(name, private))
    }

    pub(crate) fn joined(&self, name: &str, private: bool) -> usize {
        self.lock()
            .chans
            .values()
            .filter(|c| c.name == name && c.private == private)
            .count()
    }

    pub(crate) fn connections(&self) -> usize {
        self.lock().sockets.len()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub(crate) fn join_error_backoff(&self) -> Duration {
        self.cfg.join_error_backoff
    }
}

fn fan_out(st: &State, ps: &str, b: &Broadcast, except: Option<u64>) {
    for ((socket, topic), c) in &st.chans {
        if Some(*socket) == except || !c.read_broadcast || c.pubsub() != ps {
            continue;
        }
        let Some(sock) = st.sockets.get(socket) else {
            continue;
        };
        if let Some(f) = frame::encode_broadcast(sock.vsn, topic, b) {
            st.send(*socket, f);
        }
    }
}

fn presence_state(st: &State, ps: &str) -> Value {
    let mut out = Map::new();
    if let Some(keys) = st.presence.get(ps) {
        for (k, metas) in keys {
            if !metas.is_empty() {
                let list: Vec<Value> = metas.iter().map(Meta::wire).collect();
                out.insert(k.clone(), json!({"metas": list}));
            }
        }
    }
    Value::Object(out)
}

fn send_diff(st: &State, ps: &str, diff: Value) {
    for ((socket, topic), c) in &st.chans {
        if c.pubsub() == ps && c.presence && c.read_presence {
            st.push(*socket, None, None, topic, "presence_diff", diff.clone());
        }
    }
}

fn untrack(st: &mut State, ps: &str, pkey: &str, owner: &(u64, String)) -> Option<Value> {
    let keys = st.presence.get_mut(ps)?;
    let metas = keys.get_mut(pkey)?;
    let i = metas.iter().position(|x| x.owner == *owner)?;
    let gone = metas.remove(i);
    if metas.is_empty() {
        keys.remove(pkey);
    }
    Some(json!({"joins": {}, "leaves": {pkey: {"metas": [gone.wire()]}}}))
}

/// Removes a channel and its presence (a leave diff to the others).
fn remove_chan(st: &mut State, socket: u64, topic: &str) {
    let key = (socket, topic.to_owned());
    let Some(c) = st.chans.remove(&key) else {
        return;
    };
    let ps = c.pubsub();
    if let Some(diff) = untrack(st, &ps, &c.presence_key, &key) {
        send_diff(st, &ps, diff);
    }
}

impl Hub {
    /// Sends a delayed join error reply.
    pub(crate) fn join_error(
        &self,
        socket: u64,
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: &str,
        reason: &str,
    ) {
        self.lock().push(
            socket,
            join_ref.as_deref(),
            msg_ref.as_deref(),
            topic,
            "phx_reply",
            json!({"status": "error", "response": {"reason": reason}}),
        );
    }
}

//! What the provider's tasks share: the credential, an estimate of the server's clock, each
//! presence channel's members as the stream reported them, and the echo choice.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use relayport_core::transport::lock;
use relayport_core::{Channel, PresenceMember};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::records::{StoredMember, origin_of};
use crate::token::Tokens;

/// What a partial write to a member's record amounted to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Touched {
    /// Its data changed.
    DataChanged(PresenceMember),
    /// Only its timestamp moved.
    Refreshed,
    /// No such member is known.
    Unknown,
}

pub(crate) struct Shared {
    pub(crate) tokens: Tokens,
    stale_after: Duration,
    /// The latest server time seen (ms) and when it was seen.
    clock: Mutex<Option<(u64, Instant)>>,
    members: Mutex<HashMap<Channel, BTreeMap<String, StoredMember>>>,
    /// Whether this client wants its own publishes back (the runtime's `set_echo`).
    echo: AtomicBool,
    /// This provider instance's id, written as `origin` when echo is off: the client id
    /// cannot tell this client's writes apart from another client's with the same id (one
    /// user on two devices).
    origin: String,
}

impl Shared {
    pub(crate) fn new(tokens: Tokens, stale_after: Duration) -> Self {
        Self {
            tokens,
            stale_after,
            clock: Mutex::new(None),
            members: Mutex::new(HashMap::new()),
            echo: AtomicBool::new(true),
            origin: format!("{:016x}", fastrand::u64(..)),
        }
    }

    /// Records the runtime's echo choice.
    pub(crate) fn set_echo(&self, echo: bool) {
        self.echo.store(echo, Ordering::Relaxed);
    }

    /// The `origin` a publish writes: this instance's id when echo is off, else none (the
    /// record keeps its documented four fields).
    pub(crate) fn origin(&self) -> Option<&str> {
        (!self.echo.load(Ordering::Relaxed)).then_some(self.origin.as_str())
    }

    /// Whether a stored message `record` is this client's own write that it does not want
    /// back.
    pub(crate) fn is_unwanted(&self, record: &Value) -> bool {
        self.origin()
            .is_some_and(|own| origin_of(record) == Some(own))
    }

    /// Records a server timestamp (the newest one wins).
    pub(crate) fn observe_clock(&self, server_ms: u64) {
        let mut clock = lock(&self.clock);
        let newer = match *clock {
            None => true,
            Some((ms, at)) => server_ms > ms + at.elapsed().as_millis() as u64,
        };
        if newer {
            *clock = Some((server_ms, Instant::now()));
        }
    }

    /// The server's time now, as estimated from the last timestamp seen.
    pub(crate) fn server_now(&self) -> Option<u64> {
        lock(&self.clock).map(|(ms, at)| ms + at.elapsed().as_millis() as u64)
    }

    fn is_stale(&self, member: &StoredMember, now: Option<u64>) -> bool {
        match (member.ts, now) {
            (Some(ts), Some(now)) => ts.saturating_add(self.stale_after.as_millis() as u64) < now,
            _ => false,
        }
    }

    /// Replaces a channel's members; returns the live ones (stale records are left out).
    pub(crate) fn set_members(
        &self,
        channel: &Channel,
        table: BTreeMap<String, StoredMember>,
    ) -> Vec<StoredMember> {
        let now = self.server_now();
        let live: BTreeMap<String, StoredMember> = table
            .into_iter()
            .filter(|(_, m)| !self.is_stale(m, now))
            .collect();
        let out = live.values().cloned().collect();
        lock(&self.members).insert(channel.clone(), live);
        out
    }

    /// Records a member's full record.
    pub(crate) fn put_member(&self, channel: &Channel, key: &str, member: StoredMember) {
        lock(&self.members)
            .entry(channel.clone())
            .or_default()
            .insert(key.to_owned(), member);
    }

    /// Forgets a member; returns it if it was known.
    pub(crate) fn remove_member(&self, channel: &Channel, key: &str) -> Option<StoredMember> {
        lock(&self.members).get_mut(channel)?.remove(key)
    }

    /// Applies a partial write to a member's record.
    pub(crate) fn touch_member(
        &self,
        channel: &Channel,
        key: &str,
        fields: &Map<String, Value>,
    ) -> Touched {
        let mut members = lock(&self.members);
        let Some(m) = members.get_mut(channel).and_then(|t| t.get_mut(key)) else {
            return Touched::Unknown;
        };
        if let Some(ts) = fields.get("ts").and_then(Value::as_u64) {
            m.ts = Some(ts);
        }
        match fields.get("data") {
            Some(data) if *data != m.member.data => {
                m.member.data = data.clone();
                Touched::DataChanged(m.member.clone())
            }
            _ => Touched::Refreshed,
        }
    }

    /// Removes and returns the channel's members that have not refreshed within the stale age.
    pub(crate) fn prune(&self, channel: &Channel) -> Vec<(String, StoredMember)> {
        let now = self.server_now();
        let mut members = lock(&self.members);
        let Some(table) = members.get_mut(channel) else {
            return Vec::new();
        };
        let stale: Vec<String> = table
            .iter()
            .filter(|(_, m)| self.is_stale(m, now))
            .map(|(k, _)| k.clone())
            .collect();
        stale
            .into_iter()
            .filter_map(|k| table.remove(&k).map(|m| (k, m)))
            .collect()
    }

    /// The channel's live members.
    pub(crate) fn live_members(&self, channel: &Channel) -> Vec<PresenceMember> {
        let now = self.server_now();
        lock(&self.members)
            .get(channel)
            .map(|t| {
                t.values()
                    .filter(|m| !self.is_stale(m, now))
                    .map(|m| m.member.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets a channel's members (unsubscribed).
    pub(crate) fn forget(&self, channel: &Channel) {
        lock(&self.members).remove(channel);
    }
}

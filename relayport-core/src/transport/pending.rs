//! Request/reply correlation: [`Pending`] holds the callers waiting for an answer, by key (a
//! `ref`, a serial, a channel name); a [`Waiter`] takes itself out again when its caller stops
//! waiting, whatever the reason (answer, timeout, the caller's future dropped by the core).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::RealtimeError;
use crate::transport::lock::lock;

struct Slot<V> {
    id: u64,
    tx: oneshot::Sender<V>,
}

struct Table<K, V> {
    next_id: u64,
    slots: HashMap<K, Slot<V>>,
}

/// The requests waiting for their answer, by key. Cheap to clone: clones share one table (the
/// provider keeps one, its dispatcher another).
pub struct Pending<K, V> {
    table: Arc<Mutex<Table<K, V>>>,
}

impl<K, V> Clone for Pending<K, V> {
    fn clone(&self) -> Self {
        Self {
            table: self.table.clone(),
        }
    }
}

impl<K: Eq + Hash, V> Default for Pending<K, V> {
    fn default() -> Self {
        Self {
            table: Arc::new(Mutex::new(Table {
                next_id: 0,
                slots: HashMap::new(),
            })),
        }
    }
}

impl<K, V> std::fmt::Debug for Pending<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("waiting", &lock(&self.table).slots.len())
            .finish()
    }
}

/// Why a [`Waiter`] got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Its entry was dropped: the link closed, [`Pending::clear`] ran, or a newer request took
    /// the same key.
    Abandoned,
    /// No answer within the time given to [`Waiter::within`].
    TimedOut,
}

impl<K: Eq + Hash + Clone, V> Pending<K, V> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a request under `key` (before sending it, so that no answer can overtake the
    /// registration). A request already waiting under the same key is abandoned.
    pub fn register(&self, key: K) -> Waiter<K, V> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut table = lock(&self.table);
            table.next_id += 1;
            let id = table.next_id;
            table.slots.insert(key.clone(), Slot { id, tx });
            id
        };
        Waiter {
            rx,
            pending: self.clone(),
            key,
            id,
        }
    }

    /// Hands `value` to the request waiting under `key`. Returns `false` (and drops the value)
    /// when nobody waits for it any more: a late answer, or one never asked for.
    pub fn settle<Q>(&self, key: &Q, value: V) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let slot = lock(&self.table).slots.remove(key);
        match slot {
            Some(slot) => slot.tx.send(value).is_ok(),
            None => false,
        }
    }

    /// Whether a request waits under `key`.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        lock(&self.table).slots.contains_key(key)
    }

    /// Settles every waiting request with a value made from its key (failing them all when the
    /// link closed, say).
    pub fn settle_all(&self, mut value: impl FnMut(&K) -> V) {
        let slots: Vec<(K, Slot<V>)> = lock(&self.table).slots.drain().collect();
        for (key, slot) in slots {
            let _ = slot.tx.send(value(&key));
        }
    }

    /// Abandons every waiting request: each [`Waiter`] resolves to
    /// [`Unanswered::Abandoned`].
    pub fn clear(&self) {
        let slots: Vec<(K, Slot<V>)> = lock(&self.table).slots.drain().collect();
        drop(slots);
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        lock(&self.table).slots.len()
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn forget(&self, key: &K, id: u64) {
        let mut table = lock(&self.table);
        if table.slots.get(key).is_some_and(|slot| slot.id == id) {
            table.slots.remove(key);
        }
    }
}

/// One request waiting for its answer. A future resolving to the answer; dropping it (answered
/// or not) removes its entry from the [`Pending`] table, and never a newer entry under the same
/// key.
pub struct Waiter<K: Eq + Hash + Clone, V> {
    rx: oneshot::Receiver<V>,
    pending: Pending<K, V>,
    key: K,
    id: u64,
}

impl<K: Eq + Hash + Clone, V> std::fmt::Debug for Waiter<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter").field("id", &self.id).finish()
    }
}

impl<K: Eq + Hash + Clone, V> Waiter<K, V> {
    /// The key this request waits under.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Waits at most `limit` for the answer.
    pub async fn within(self, limit: Duration) -> Result<V, Unanswered> {
        match tokio::time::timeout(limit, self).await {
            Ok(answer) => answer,
            Err(_) => Err(Unanswered::TimedOut),
        }
    }

    /// Waits at most `limit` for the answer to `what`, as a [`RealtimeError`]: a timeout, or a
    /// connection error when the link closed first.
    pub async fn answer(self, what: &str, limit: Duration) -> Result<V, RealtimeError> {
        self.within(limit).await.map_err(|e| match e {
            Unanswered::TimedOut => RealtimeError::timeout(what, limit),
            Unanswered::Abandoned => RealtimeError::Connection(format!(
                "the connection closed before the answer to {what}"
            )),
        })
    }
}

// No field is ever pinned: the receiver is `Unpin` and the key is only read on drop.
impl<K: Eq + Hash + Clone, V> Unpin for Waiter<K, V> {}

impl<K: Eq + Hash + Clone, V> Future for Waiter<K, V> {
    type Output = Result<V, Unanswered>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.map_err(|_| Unanswered::Abandoned))
    }
}

impl<K: Eq + Hash + Clone, V> Drop for Waiter<K, V> {
    fn drop(&mut self) {
        self.pending.forget(&self.key, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_reaches_its_waiter_and_frees_the_slot() {
        let pending: Pending<String, u32> = Pending::new();
        let waiter = pending.register("1".into());
        assert!(pending.contains("1"));
        assert!(pending.settle("1", 7));
        assert_eq!(waiter.await, Ok(7));
        assert!(pending.is_empty());
        assert!(!pending.settle("1", 8), "a late answer finds nobody");
    }

    #[tokio::test]
    async fn a_dropped_waiter_frees_its_slot() {
        let pending: Pending<u64, ()> = Pending::new();
        let waiter = pending.register(1);
        assert_eq!(pending.len(), 1);
        drop(waiter);
        assert!(pending.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_waiter_frees_its_slot() {
        let pending: Pending<u64, ()> = Pending::new();
        let started = tokio::time::Instant::now();
        let err = pending
            .register(1)
            .answer("subscribe", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(
            err,
            RealtimeError::timeout("subscribe", Duration::from_secs(5))
        );
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn a_newer_request_under_the_same_key_survives_the_older_ones_drop() {
        let pending: Pending<&'static str, u8> = Pending::new();
        let old = pending.register("room");
        let new = pending.register("room");
        assert_eq!(old.await, Err(Unanswered::Abandoned));
        assert!(
            pending.contains("room"),
            "the old waiter removed the new one"
        );
        assert!(pending.settle("room", 1));
        assert_eq!(new.await, Ok(1));
    }

    #[tokio::test]
    async fn clear_and_settle_all_end_every_waiter() {
        let pending: Pending<u64, Result<u64, String>> = Pending::new();
        let a = pending.register(1);
        let b = pending.register(2);
        pending.settle_all(|k| Err(format!("closed {k}")));
        assert_eq!(a.await, Ok(Err("closed 1".into())));
        assert_eq!(b.await, Ok(Err("closed 2".into())));
        let c = pending.register(3);
        pending.clear();
        let err = c.answer("ping", Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(
            err,
            RealtimeError::Connection("the connection closed before the answer to ping".into())
        );
    }
}

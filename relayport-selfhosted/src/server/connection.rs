//! What the broker keeps per connection: the send queue, bounded in frames and in bytes
//! ([`ByteBudget`]), the kick signal that closes the connection from the publish path without
//! ever awaiting its socket, and the frames encoded once and shared by every recipient.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use axum::extract::ws::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use crate::protocol::ServerFrame;

/// A server frame's JSON text, encoded once and shared by every recipient. Only the text is
/// kept (not the frame as well), so a queued frame costs its length in bytes, which is what
/// the byte budget counts.
#[derive(Debug)]
pub struct Encoded {
    /// The frame's JSON text.
    pub text: Utf8Bytes,
    /// Whether `text` is already in the receiving connection's wire format (a Pusher-protocol
    /// frame) rather than a native [`ServerFrame`].
    raw: bool,
    /// The frame translated once for Pusher-protocol connections (shared by every one of
    /// them; empty: nothing to send them).
    pusher: std::sync::OnceLock<Vec<Utf8Bytes>>,
}

impl Encoded {
    /// Encodes `frame`.
    pub fn new(frame: ServerFrame) -> Arc<Self> {
        let text = serde_json::to_string(&frame).unwrap_or_else(|e| {
            format!(
                r#"{{"type":"error","code":"internal","message":"frame encoding failed: {}"}}"#,
                e.to_string().replace(['"', '\\'], "'")
            )
        });
        Arc::new(Self {
            text: Utf8Bytes::from(text),
            raw: false,
            pusher: std::sync::OnceLock::new(),
        })
    }

    /// A frame already in its wire format (a Pusher-protocol frame), sent as is.
    pub fn raw(text: String) -> Arc<Self> {
        Arc::new(Self {
            text: Utf8Bytes::from(text),
            raw: true,
            pusher: std::sync::OnceLock::new(),
        })
    }

    /// Whether this frame was made with [`Encoded::raw`].
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// The frame's Pusher-protocol translation (zero or more frames), computed by
    /// `translate` on first use and shared by every Pusher-protocol recipient.
    pub fn pusher_texts(&self, translate: impl FnOnce(&Self) -> Vec<String>) -> &[Utf8Bytes] {
        self.pusher
            .get_or_init(|| translate(self).into_iter().map(Utf8Bytes::from).collect())
    }

    /// The frame, decoded again from its text (SSE, which re-frames it, and tests).
    pub fn decode(&self) -> Option<ServerFrame> {
        serde_json::from_str(self.text.as_str()).ok()
    }
}

/// The bytes a connection has queued and not yet written: charged when a frame is queued,
/// released when the queue item is dropped (after the writer flushed it, or when a kicked
/// connection's queue is emptied).
#[derive(Debug, Default)]
pub struct ByteBudget {
    used: AtomicUsize,
}

impl ByteBudget {
    /// Charges `len` bytes if they fit under `max`; a frame always fits an empty queue, so
    /// one frame larger than the budget is still delivered (alone). `false`: over budget,
    /// nothing charged.
    pub fn try_charge(&self, len: usize, max: usize) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used > 0 && used.saturating_add(len) > max {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + len,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    fn release(&self, len: usize) {
        self.used.fetch_sub(len, Ordering::AcqRel);
    }

    /// Bytes queued and not yet written.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// One item of a connection's send queue: a shared frame, charged to the connection's
/// [`ByteBudget`] until dropped.
#[derive(Debug)]
pub struct Outbound {
    frame: Arc<Encoded>,
    budget: Arc<ByteBudget>,
}

impl Outbound {
    /// Charges `frame` to `budget` (under `max` bytes); `None` when over budget.
    pub fn charge(frame: &Arc<Encoded>, budget: &Arc<ByteBudget>, max: usize) -> Option<Self> {
        budget.try_charge(frame.text.len(), max).then(|| Self {
            frame: frame.clone(),
            budget: budget.clone(),
        })
    }
}

impl std::ops::Deref for Outbound {
    type Target = Encoded;
    fn deref(&self) -> &Encoded {
        &self.frame
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.budget.release(self.frame.text.len());
    }
}

/// Tells a connection's task to close with a code (slow consumer, shutdown…).
#[derive(Debug, Default)]
pub struct Kick {
    token: CancellationToken,
    code: AtomicU16,
}

impl Kick {
    /// Asks the connection to close with `code`; the first code wins.
    pub fn kick(&self, code: u16) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }

    /// The close code, once kicked.
    pub fn code(&self) -> Option<u16> {
        match self.code.load(Ordering::SeqCst) {
            0 => None,
            c => Some(c),
        }
    }

    /// Resolves when the connection is kicked.
    pub async fn kicked(&self) {
        self.token.cancelled().await;
    }
}

/// Counts live connection tasks so that shutdown can wait for them.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    inner: Arc<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    live: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Held by a live task; dropping it marks the task finished.
#[derive(Debug)]
pub struct TrackGuard {
    inner: Arc<TrackerInner>,
}

impl Drop for TrackGuard {
    fn drop(&mut self) {
        self.inner.live.fetch_sub(1, Ordering::SeqCst);
        self.inner.idle.notify_waiters();
    }
}

impl Tracker {
    /// Marks a task live until the guard drops.
    pub fn enter(&self) -> TrackGuard {
        self.inner.live.fetch_add(1, Ordering::SeqCst);
        TrackGuard {
            inner: self.inner.clone(),
        }
    }

    /// Live tasks.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Resolves when no task is live.
    pub async fn wait(&self) {
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            idle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_budget_is_charged_until_the_item_drops() {
        let budget = Arc::new(ByteBudget::default());
        let frame = Encoded::new(ServerFrame::Pong { reference: None });
        let len = frame.text.len();
        let max = 2 * len;
        let a = Outbound::charge(&frame, &budget, max).expect("fits");
        let b = Outbound::charge(&frame, &budget, max).expect("fits exactly");
        assert_eq!(budget.used(), 2 * len);
        assert!(
            Outbound::charge(&frame, &budget, max).is_none(),
            "one byte past"
        );
        drop(a);
        assert_eq!(budget.used(), len);
        drop(b);
        assert_eq!(budget.used(), 0);
        // A frame larger than the whole budget still fits an empty queue, alone.
        let big = Outbound::charge(&frame, &budget, 1).expect("alone");
        assert!(Outbound::charge(&frame, &budget, 1).is_none());
        drop(big);
        assert_eq!(budget.used(), 0);
    }
}

//! What the broker keeps per connection: the bounded send queue, the kick signal that closes
//! the connection from the publish path without ever awaiting its socket, and the frames
//! encoded once and shared by every recipient.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use axum::extract::ws::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use crate::protocol::ServerFrame;

/// A server frame with its JSON text, encoded once and shared by every recipient.
#[derive(Debug)]
pub struct Encoded {
    /// The frame.
    pub frame: ServerFrame,
    /// Its JSON text.
    pub text: Utf8Bytes,
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
            frame,
            text: Utf8Bytes::from(text),
        })
    }
}

/// One item of a connection's send queue.
pub type Outbound = Arc<Encoded>;

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

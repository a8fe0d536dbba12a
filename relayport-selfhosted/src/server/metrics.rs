//! Server counters, rendered as Prometheus text exposition at `GET /metrics`, and awaitable
//! from tests (no sleeping: [`Metrics::wait_for`] wakes on every change).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The server's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    connections: AtomicU64,
    connections_total: AtomicU64,
    subscriptions: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    drops: AtomicU64,
    slow_consumer_disconnects: AtomicU64,
    queue_high_water: AtomicU64,
    errors_sent: AtomicU64,
    engine_connects: AtomicU64,
    disconnects: Mutex<BTreeMap<u16, u64>>,
    changed: Notify,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Open connections (WebSocket and SSE).
    pub connections: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Live subscriptions (channels and patterns) over all connections.
    pub subscriptions: u64,
    /// Messages accepted for publishing (client and HTTP).
    pub messages_in: u64,
    /// Frames queued to connections.
    pub messages_out: u64,
    /// Frames not delivered because a connection's queue was full or closed.
    pub drops: u64,
    /// Connections closed as slow consumers.
    pub slow_consumer_disconnects: u64,
    /// The deepest any connection's send queue has been, in frames.
    pub queue_high_water: u64,
    /// Error frames sent.
    pub errors_sent: u64,
    /// Times the scale-out engine (Redis pub/sub) connected or reconnected.
    pub engine_connects: u64,
    /// Server-initiated disconnects by close code.
    pub disconnects: BTreeMap<u16, u64>,
}

impl Metrics {
    fn bump(&self, c: &AtomicU64, by: u64) {
        c.fetch_add(by, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.bump(&self.connections, 1);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    pub(crate) fn subscribed(&self) {
        self.bump(&self.subscriptions, 1);
    }

    pub(crate) fn unsubscribed(&self, n: u64) {
        if n > 0 {
            self.subscriptions.fetch_sub(n, Ordering::Relaxed);
            self.changed.notify_waiters();
        }
    }

    pub(crate) fn message_in(&self) {
        self.bump(&self.messages_in, 1);
    }

    pub(crate) fn message_out(&self, queue_depth: u64) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
        self.queue_high_water
            .fetch_max(queue_depth, Ordering::Relaxed);
    }

    pub(crate) fn drop_frame(&self) {
        self.bump(&self.drops, 1);
    }

    pub(crate) fn error_sent(&self) {
        self.bump(&self.errors_sent, 1);
    }

    pub(crate) fn disconnect(&self, code: u16) {
        if code == crate::protocol::close::SLOW_CONSUMER {
            self.slow_consumer_disconnects
                .fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut d) = self.disconnects.lock() {
            *d.entry(code).or_default() += 1;
        }
        self.changed.notify_waiters();
    }

    pub(crate) fn engine_connected(&self) {
        self.bump(&self.engine_connects, 1);
    }

    /// Wakes waiters after a batch of relaxed updates.
    pub(crate) fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            connections: self.connections.load(Ordering::Relaxed),
            connections_total: self.connections_total.load(Ordering::Relaxed),
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
            slow_consumer_disconnects: self.slow_consumer_disconnects.load(Ordering::Relaxed),
            queue_high_water: self.queue_high_water.load(Ordering::Relaxed),
            errors_sent: self.errors_sent.load(Ordering::Relaxed),
            engine_connects: self.engine_connects.load(Ordering::Relaxed),
            disconnects: self
                .disconnects
                .lock()
                .map(|d| d.clone())
                .unwrap_or_default(),
        }
    }

    /// Waits until `cond` holds for the counters, at most `timeout`; returns the snapshot that
    /// satisfied it, or `None` on timeout.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        cond: impl Fn(&MetricsSnapshot) -> bool,
    ) -> Option<MetricsSnapshot> {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let snap = self.snapshot();
                if cond(&snap) {
                    return snap;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        metric(
            "realtime_connections",
            "gauge",
            "Open connections (WebSocket and SSE).",
            s.connections,
        );
        metric(
            "realtime_connections_total",
            "counter",
            "Connections accepted.",
            s.connections_total,
        );
        metric(
            "realtime_subscriptions",
            "gauge",
            "Live subscriptions.",
            s.subscriptions,
        );
        metric(
            "realtime_messages_in_total",
            "counter",
            "Messages accepted for publishing.",
            s.messages_in,
        );
        metric(
            "realtime_messages_out_total",
            "counter",
            "Frames queued to connections.",
            s.messages_out,
        );
        metric(
            "realtime_drops_total",
            "counter",
            "Frames dropped (queue full or closed).",
            s.drops,
        );
        metric(
            "realtime_slow_consumer_disconnects_total",
            "counter",
            "Connections closed because their send queue filled.",
            s.slow_consumer_disconnects,
        );
        metric(
            "realtime_send_queue_high_water",
            "gauge",
            "Deepest per-connection send queue seen, in frames.",
            s.queue_high_water,
        );
        metric(
            "realtime_errors_sent_total",
            "counter",
            "Error frames sent.",
            s.errors_sent,
        );
        metric(
            "realtime_engine_connects_total",
            "counter",
            "Times the scale-out engine's pub/sub connected or reconnected.",
            s.engine_connects,
        );
        let _ = writeln!(
            out,
            "# HELP realtime_disconnects_total Server-initiated disconnects by close code."
        );
        let _ = writeln!(out, "# TYPE realtime_disconnects_total counter");
        for (code, n) in &s.disconnects {
            let _ = writeln!(out, "realtime_disconnects_total{{code=\"{code}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_prometheus_text() {
        let m = Metrics::default();
        m.connection_opened();
        m.disconnect(4008);
        let text = m.render();
        assert!(text.contains("# TYPE realtime_connections gauge\nrealtime_connections 1\n"));
        assert!(text.contains("realtime_slow_consumer_disconnects_total 1\n"));
        assert!(text.contains("realtime_disconnects_total{code=\"4008\"} 1\n"));
    }

    #[tokio::test]
    async fn wait_for_wakes_on_change() {
        let m = std::sync::Arc::new(Metrics::default());
        let m2 = m.clone();
        let waiter =
            tokio::spawn(
                async move { m2.wait_for(Duration::from_secs(5), |s| s.drops >= 2).await },
            );
        tokio::task::yield_now().await;
        m.drop_frame();
        m.drop_frame();
        let got = waiter.await.ok().flatten().map(|s| s.drops);
        assert_eq!(got, Some(2));
    }
}

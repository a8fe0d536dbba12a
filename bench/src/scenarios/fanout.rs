//! Scenario 1, fan-out: one channel × N subscribers, stepped offered load; deliveries/s,
//! p50/p99/max publish → receive latency, delivery ratio, per peer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{Plan, connect_all, cpu_percent, disconnect_all, drain, publish_paced};
use crate::peer::{Launch, Peer, PeerKind, PeerOptions};
use crate::stats::Latency;
use crate::sys;
use crate::wsclient::RecvCtx;

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// Subscriber counts.
    pub subscribers: Vec<usize>,
    /// Offered deliveries per second to step through (empty: the default ladder).
    pub steps: Vec<u64>,
    /// Measured seconds per step.
    pub step_secs: f64,
    /// Warm-up seconds per step (published, not counted).
    pub warmup_secs: f64,
    /// Longest wait for the last deliveries after publishing stopped.
    pub drain_secs: f64,
    /// The peers, in the order they run.
    pub peers: Vec<PeerKind>,
    /// Payload size in bytes.
    pub payload: usize,
    /// Concurrent handshakes while connecting subscribers.
    pub connect_concurrency: usize,
    /// Publishers in flight (HTTP publishes are one round trip each: one publisher caps the
    /// message rate at roughly 1 / round trip).
    pub publishers: usize,
    /// A step above this p99 (or with losses) ends the ladder for that peer.
    pub stop_p99_ms: f64,
    /// The latency bound of the headline figure ("deliveries/s at p99 ≤ this").
    pub slo_p99_ms: f64,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            subscribers: vec![100, 1_000, 10_000],
            steps: Vec::new(),
            step_secs: 4.0,
            warmup_secs: 1.0,
            drain_secs: 3.0,
            peers: vec![PeerKind::Baseline, PeerKind::Ours, PeerKind::Sockudo],
            payload: 64,
            connect_concurrency: 128,
            publishers: 4,
            stop_p99_ms: 1_000.0,
            slo_p99_ms: 20.0,
        }
    }
}

/// The default ladder of offered deliveries/s for a subscriber count.
pub fn default_steps(subscribers: usize) -> Vec<u64> {
    if subscribers >= 10_000 {
        vec![10_000, 20_000, 50_000, 100_000, 150_000, 200_000]
    } else {
        vec![
            10_000, 25_000, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000, 500_000, 600_000,
        ]
    }
}

/// One step of one peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutRow {
    /// The peer.
    pub peer: PeerKind,
    /// Subscribers on the channel.
    pub subscribers: usize,
    /// Offered deliveries per second.
    pub offered_dps: u64,
    /// Offered publishes per second.
    pub msg_rate: f64,
    /// Counted messages published.
    pub published: u64,
    /// Publishes that failed.
    pub publish_errors: u64,
    /// Deliveries expected (published × subscribers).
    pub expected: u64,
    /// Deliveries received.
    pub received: u64,
    /// received / expected.
    pub delivery_ratio: f64,
    /// Deliveries per second achieved (received over first publish → last receive).
    pub achieved_dps: f64,
    /// Publish → receive latency.
    pub latency: Latency,
    /// Messages received twice or out of order.
    pub duplicates: u64,
    /// Subscribers the server disconnected.
    pub disconnected: usize,
    /// Server CPU over the step, % of one core (process peers only).
    pub server_cpu_pct: Option<f64>,
}

impl FanoutRow {
    /// Whether the step was healthy: everything delivered, nothing duplicated, nobody
    /// disconnected.
    pub fn clean(&self) -> bool {
        self.delivery_ratio >= 0.999 && self.duplicates == 0 && self.disconnected == 0
    }
}

/// The headline per subscriber count and peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutBest {
    /// The peer.
    pub peer: PeerKind,
    /// Subscribers.
    pub subscribers: usize,
    /// The highest deliveries/s of a clean step with p99 at or under the SLO (0 if none).
    pub best_dps_within_slo: f64,
    /// The highest deliveries/s of any clean step.
    pub best_dps_clean: f64,
}

/// Everything scenario 1 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutResult {
    /// The machine and its load at the start.
    pub machine: sys::Machine,
    /// The p99 bound of `best_dps_within_slo`.
    pub slo_p99_ms: f64,
    /// Every step.
    pub rows: Vec<FanoutRow>,
    /// The headlines.
    pub best: Vec<FanoutBest>,
    /// Peers that could not run, with the reason.
    pub skipped: Vec<(PeerKind, String)>,
}

/// Runs scenario 1.
pub async fn run(cfg: &FanoutConfig, launch: &Launch) -> Result<FanoutResult> {
    let machine = sys::Machine::now();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let mut seq = 0u64;
    for &subs in &cfg.subscribers {
        let steps = if cfg.steps.is_empty() {
            default_steps(subs)
        } else {
            cfg.steps.clone()
        };
        for &kind in &cfg.peers {
            let peer = match Peer::start(kind, launch, PeerOptions::default()).await {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("fanout: skipping {}: {e:#}", kind.name());
                    skipped.push((kind, format!("{e:#}")));
                    continue;
                }
            };
            let outcome = run_peer(cfg, &peer, subs, &steps, &mut seq, &mut rows).await;
            peer.stop().await;
            if let Err(e) = outcome {
                eprintln!("fanout: {} with {subs} subscribers: {e:#}", kind.name());
                skipped.push((kind, format!("{subs} subscribers: {e:#}")));
            }
        }
    }
    let best = best_rows(&rows, cfg.slo_p99_ms);
    Ok(FanoutResult {
        machine,
        slo_p99_ms: cfg.slo_p99_ms,
        rows,
        best,
        skipped,
    })
}

/// The headline figures of a set of rows.
pub fn best_rows(rows: &[FanoutRow], slo_p99_ms: f64) -> Vec<FanoutBest> {
    let mut best: Vec<FanoutBest> = Vec::new();
    for r in rows {
        let entry = match best
            .iter_mut()
            .find(|b| b.peer == r.peer && b.subscribers == r.subscribers)
        {
            Some(b) => b,
            None => {
                best.push(FanoutBest {
                    peer: r.peer,
                    subscribers: r.subscribers,
                    best_dps_within_slo: 0.0,
                    best_dps_clean: 0.0,
                });
                let last = best.len() - 1;
                &mut best[last]
            }
        };
        if r.clean() {
            entry.best_dps_clean = entry.best_dps_clean.max(r.achieved_dps);
            if r.latency.p99_ms <= slo_p99_ms {
                entry.best_dps_within_slo = entry.best_dps_within_slo.max(r.achieved_dps);
            }
        }
    }
    best
}

async fn run_peer(
    cfg: &FanoutConfig,
    peer: &Peer,
    subs: usize,
    steps: &[u64],
    seq: &mut u64,
    rows: &mut Vec<FanoutRow>,
) -> Result<()> {
    let ctx = RecvCtx::new();
    ctx.reset(u64::MAX);
    eprintln!("fanout: {} ← {subs} subscribers", peer.kind.name());
    let connected = connect_all(
        &peer.target(),
        subs,
        |_| "bench".to_owned(),
        &ctx,
        cfg.connect_concurrency,
    )
    .await;
    if let Err(e) = connected {
        disconnect_all(&ctx).await;
        return Err(e);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for &offered in steps {
        let row = run_step(cfg, peer, &ctx, subs, offered, seq).await?;
        eprintln!(
            "fanout: {:>8} subs={subs:>5} offered={offered:>7}/s achieved={:>9.0}/s ratio={:.4} p50={:.2}ms p99={:.2}ms max={:.2}ms dup={} disc={} cpu={:?}",
            peer.kind.name(),
            row.achieved_dps,
            row.delivery_ratio,
            row.latency.p50_ms,
            row.latency.p99_ms,
            row.latency.max_ms,
            row.duplicates,
            row.disconnected,
            row.server_cpu_pct,
        );
        let stop = !row.clean() || row.latency.p99_ms > cfg.stop_p99_ms;
        rows.push(row);
        if stop {
            break;
        }
    }
    disconnect_all(&ctx).await;
    Ok(())
}

async fn run_step(
    cfg: &FanoutConfig,
    peer: &Peer,
    ctx: &Arc<RecvCtx>,
    subs: usize,
    offered: u64,
    seq: &mut u64,
) -> Result<FanoutRow> {
    let msg_rate = offered as f64 / subs as f64;
    let warm = (msg_rate * cfg.warmup_secs).ceil() as u64;
    let counted = ((msg_rate * cfg.step_secs).ceil() as u64).max(1);
    let first_seq = *seq;
    let count_from = first_seq + warm;
    *seq += warm + counted;
    ctx.reset(count_from);
    let disconnected_before = ctx.closed_by_server.load(Ordering::SeqCst);
    let pid = peer.pid();
    let cpu0 = if peer.is_process() {
        sys::cpu_seconds(pid)
    } else {
        None
    };
    let published = publish_paced(Plan {
        kind: peer.kind,
        addr: peer.addr,
        rate: msg_rate,
        total: warm + counted,
        first_seq,
        count_from,
        channels: Arc::new(vec!["bench".to_owned()]),
        payload: cfg.payload,
        concurrency: cfg.publishers,
    })
    .await?;
    let cpu1 = if peer.is_process() {
        sys::cpu_seconds(pid)
    } else {
        None
    };
    let publish_secs = (published.end_ns - published.start_ns) as f64 / 1e9;
    let counted_ok = counted.min(published.ok.saturating_sub(warm));
    let expected = counted_ok * subs as u64;
    drain(ctx, expected, Duration::from_secs_f64(cfg.drain_secs)).await;
    let received = ctx.received.load(Ordering::SeqCst);
    let last = ctx.last_ns.load(Ordering::SeqCst);
    let span = last.saturating_sub(published.first_counted_ns) as f64 / 1e9;
    Ok(FanoutRow {
        peer: peer.kind,
        subscribers: subs,
        offered_dps: offered,
        msg_rate,
        published: counted_ok,
        publish_errors: published.failed,
        expected,
        received,
        delivery_ratio: if expected == 0 {
            0.0
        } else {
            received as f64 / expected as f64
        },
        achieved_dps: if span > 0.0 {
            received as f64 / (span + 1.0 / msg_rate)
        } else {
            0.0
        },
        latency: ctx.recorder.summary(),
        duplicates: ctx.duplicates.load(Ordering::SeqCst),
        disconnected: ctx.closed_by_server.load(Ordering::SeqCst) - disconnected_before,
        server_cpu_pct: cpu_percent(cpu0, cpu1, publish_secs),
    })
}

//! Scenario 3, many channels: N channels × 1 subscriber, publishes through the HTTP API
//! (ours: `POST /publish`; sockudo: Pusher's `POST /apps/{id}/events`), stepped rates and
//! one unpaced step.

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
pub struct ChannelsConfig {
    /// Channels, one subscriber each.
    pub channels: usize,
    /// Offered publishes per second; 0 means as fast as the publishers go.
    pub rates: Vec<f64>,
    /// Messages of the unpaced step.
    pub unpaced_messages: u64,
    /// Measured seconds per paced step.
    pub step_secs: f64,
    /// Warm-up seconds per step.
    pub warmup_secs: f64,
    /// Longest wait for the last deliveries.
    pub drain_secs: f64,
    /// HTTP publishers in flight.
    pub publishers: usize,
    /// The peers (the baseline has no channels and no HTTP API).
    pub peers: Vec<PeerKind>,
    /// Payload bytes.
    pub payload: usize,
    /// Concurrent handshakes.
    pub connect_concurrency: usize,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        Self {
            channels: 1_000,
            rates: vec![1_000.0, 2_000.0, 5_000.0, 10_000.0, 0.0],
            unpaced_messages: 40_000,
            step_secs: 4.0,
            warmup_secs: 1.0,
            drain_secs: 3.0,
            publishers: 16,
            peers: vec![PeerKind::Ours, PeerKind::Sockudo],
            payload: 64,
            connect_concurrency: 128,
        }
    }
}

/// One step of one peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelsRow {
    /// The peer.
    pub peer: PeerKind,
    /// Offered publishes/s (0: unpaced).
    pub offered_rate: f64,
    /// Successful HTTP publishes per second over the whole step.
    pub publish_rate: f64,
    /// Counted publishes that succeeded.
    pub published: u64,
    /// Publishes that failed.
    pub publish_errors: u64,
    /// Deliveries received.
    pub received: u64,
    /// received / published.
    pub delivery_ratio: f64,
    /// Deliveries per second.
    pub achieved_dps: f64,
    /// Publish → receive latency.
    pub latency: Latency,
    /// Duplicates.
    pub duplicates: u64,
    /// Server CPU, % of one core.
    pub server_cpu_pct: Option<f64>,
}

/// Everything scenario 3 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelsResult {
    /// The machine.
    pub machine: sys::Machine,
    /// Channels.
    pub channels: usize,
    /// Every step.
    pub rows: Vec<ChannelsRow>,
    /// Peers that could not run.
    pub skipped: Vec<(PeerKind, String)>,
}

/// Runs scenario 3.
pub async fn run(cfg: &ChannelsConfig, launch: &Launch) -> Result<ChannelsResult> {
    let machine = sys::Machine::now();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let names: Arc<Vec<String>> = Arc::new((0..cfg.channels).map(|i| format!("ch-{i}")).collect());
    let mut seq = 0u64;
    for &kind in &cfg.peers {
        if kind == PeerKind::Baseline {
            skipped.push((kind, "no channels and no HTTP API: not applicable".into()));
            continue;
        }
        let peer = match Peer::start(kind, launch, PeerOptions::default()).await {
            Ok(p) => p,
            Err(e) => {
                skipped.push((kind, format!("{e:#}")));
                continue;
            }
        };
        let ctx = RecvCtx::new();
        ctx.reset(u64::MAX);
        let names2 = names.clone();
        let connected = connect_all(
            &peer.target(),
            cfg.channels,
            move |i| names2[i].clone(),
            &ctx,
            cfg.connect_concurrency,
        )
        .await;
        if let Err(e) = connected {
            skipped.push((kind, format!("{e:#}")));
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for &rate in &cfg.rates {
                match step(cfg, &peer, &ctx, &names, rate, &mut seq).await {
                    Ok(row) => {
                        eprintln!(
                            "channels: {:>8} offered={:>6.0}/s http={:>7.0}/s deliveries={:>7.0}/s ratio={:.4} p50={:.2}ms p99={:.2}ms errors={} cpu={:?}",
                            kind.name(),
                            row.offered_rate,
                            row.publish_rate,
                            row.achieved_dps,
                            row.delivery_ratio,
                            row.latency.p50_ms,
                            row.latency.p99_ms,
                            row.publish_errors,
                            row.server_cpu_pct
                        );
                        let bad = row.delivery_ratio < 0.99;
                        rows.push(row);
                        if bad {
                            break;
                        }
                    }
                    Err(e) => {
                        skipped.push((kind, format!("rate {rate}: {e:#}")));
                        break;
                    }
                }
            }
        }
        disconnect_all(&ctx).await;
        peer.stop().await;
    }
    Ok(ChannelsResult {
        machine,
        channels: cfg.channels,
        rows,
        skipped,
    })
}

async fn step(
    cfg: &ChannelsConfig,
    peer: &Peer,
    ctx: &Arc<RecvCtx>,
    names: &Arc<Vec<String>>,
    rate: f64,
    seq: &mut u64,
) -> Result<ChannelsRow> {
    let (warm, counted, plan_rate) = if rate > 0.0 {
        (
            (rate * cfg.warmup_secs).ceil() as u64,
            ((rate * cfg.step_secs).ceil() as u64).max(1),
            rate,
        )
    } else {
        (
            (cfg.unpaced_messages / 10).max(1),
            cfg.unpaced_messages.max(1),
            f64::INFINITY,
        )
    };
    let first_seq = *seq;
    let count_from = first_seq + warm;
    *seq += warm + counted;
    ctx.reset(count_from);
    let pid = peer.pid();
    let cpu0 = if peer.is_process() {
        sys::cpu_seconds(pid)
    } else {
        None
    };
    let p = publish_paced(Plan {
        kind: peer.kind,
        addr: peer.addr,
        rate: plan_rate,
        total: warm + counted,
        first_seq,
        count_from,
        channels: names.clone(),
        payload: cfg.payload,
        concurrency: cfg.publishers,
    })
    .await?;
    let cpu1 = if peer.is_process() {
        sys::cpu_seconds(pid)
    } else {
        None
    };
    let secs = (p.end_ns - p.start_ns) as f64 / 1e9;
    let published = counted.min(p.ok.saturating_sub(warm));
    drain(ctx, published, Duration::from_secs_f64(cfg.drain_secs)).await;
    let received = ctx.received.load(Ordering::SeqCst);
    let span = ctx
        .last_ns
        .load(Ordering::SeqCst)
        .saturating_sub(p.first_counted_ns) as f64
        / 1e9;
    Ok(ChannelsRow {
        peer: peer.kind,
        offered_rate: rate,
        publish_rate: if secs > 0.0 { p.ok as f64 / secs } else { 0.0 },
        published,
        publish_errors: p.failed,
        received,
        delivery_ratio: if published == 0 {
            0.0
        } else {
            received as f64 / published as f64
        },
        achieved_dps: if span > 0.0 {
            received as f64 / span
        } else {
            0.0
        },
        latency: ctx.recorder.summary(),
        duplicates: ctx.duplicates.load(Ordering::SeqCst),
        server_cpu_pct: cpu_percent(cpu0, cpu1, secs),
    })
}

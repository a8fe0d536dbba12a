//! Scenario 2, idle memory: N idle connections, each subscribed to its own channel; server
//! RSS per connection and idle CPU per connection.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::{connect_all, disconnect_all};
use crate::peer::{Launch, Peer, PeerKind, PeerOptions};
use crate::sys;
use crate::wsclient::RecvCtx;

/// What to run.
#[derive(Debug, Clone)]
pub struct IdleConfig {
    /// Idle connections.
    pub connections: usize,
    /// The peers.
    pub peers: Vec<PeerKind>,
    /// Seconds to let the server settle before each RSS read.
    pub settle_secs: f64,
    /// Seconds over which idle CPU is measured.
    pub cpu_secs: f64,
    /// Concurrent handshakes.
    pub connect_concurrency: usize,
}

impl Default for IdleConfig {
    fn default() -> Self {
        Self {
            connections: 10_000,
            peers: vec![PeerKind::Baseline, PeerKind::Ours, PeerKind::Sockudo],
            settle_secs: 3.0,
            cpu_secs: 5.0,
            connect_concurrency: 128,
        }
    }
}

/// One peer's idle cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleRow {
    /// The peer.
    pub peer: PeerKind,
    /// Connections held.
    pub connections: usize,
    /// Server RSS before any connection, bytes.
    pub rss_before: u64,
    /// Server RSS with every connection open and subscribed, bytes.
    pub rss_after: u64,
    /// (after − before) / connections, bytes.
    pub bytes_per_connection: f64,
    /// Server CPU while idle, microseconds per connection per second.
    pub idle_cpu_us_per_conn_s: Option<f64>,
    /// Seconds to open and subscribe every connection.
    pub connect_secs: f64,
    /// Whether the server ran in its own process (otherwise the RSS includes the clients).
    pub own_process: bool,
}

/// Everything scenario 2 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleResult {
    /// The machine.
    pub machine: sys::Machine,
    /// One row per peer.
    pub rows: Vec<IdleRow>,
    /// Peers that could not run.
    pub skipped: Vec<(PeerKind, String)>,
}

/// Runs scenario 2.
pub async fn run(cfg: &IdleConfig, launch: &Launch) -> Result<IdleResult> {
    let machine = sys::Machine::now();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for &kind in &cfg.peers {
        let peer = match Peer::start(kind, launch, PeerOptions::default()).await {
            Ok(p) => p,
            Err(e) => {
                skipped.push((kind, format!("{e:#}")));
                continue;
            }
        };
        let r = run_peer(cfg, &peer).await;
        peer.stop().await;
        match r {
            Ok(row) => {
                eprintln!(
                    "idle: {:>8} {} conns: {:.0} B/conn ({} → {} B), cpu {:?} µs/conn/s, connect {:.1}s",
                    kind.name(),
                    row.connections,
                    row.bytes_per_connection,
                    row.rss_before,
                    row.rss_after,
                    row.idle_cpu_us_per_conn_s,
                    row.connect_secs
                );
                rows.push(row);
            }
            Err(e) => skipped.push((kind, format!("{e:#}"))),
        }
    }
    Ok(IdleResult {
        machine,
        rows,
        skipped,
    })
}

async fn run_peer(cfg: &IdleConfig, peer: &Peer) -> Result<IdleRow> {
    let pid = peer.pid();
    let settle = Duration::from_secs_f64(cfg.settle_secs);
    tokio::time::sleep(settle).await;
    let Some(rss_before) = sys::rss_bytes(pid) else {
        bail!("cannot read the RSS of pid {pid}");
    };
    let ctx = RecvCtx::new();
    let t0 = std::time::Instant::now();
    let r = connect_all(
        &peer.target(),
        cfg.connections,
        |i| format!("idle-{i}"),
        &ctx,
        cfg.connect_concurrency,
    )
    .await;
    let connect_secs = t0.elapsed().as_secs_f64();
    if let Err(e) = r {
        disconnect_all(&ctx).await;
        return Err(e);
    }
    tokio::time::sleep(settle).await;
    let rss_after = sys::rss_bytes(pid).unwrap_or(0);
    let cpu0 = sys::cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs_f64(cfg.cpu_secs)).await;
    let cpu1 = sys::cpu_seconds(pid);
    let idle_cpu_us_per_conn_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) if peer.is_process() => {
            Some((b - a) * 1e6 / cfg.cpu_secs / cfg.connections as f64)
        }
        _ => None,
    };
    disconnect_all(&ctx).await;
    Ok(IdleRow {
        peer: peer.kind,
        connections: cfg.connections,
        rss_before,
        rss_after,
        bytes_per_connection: rss_after.saturating_sub(rss_before) as f64
            / cfg.connections.max(1) as f64,
        idle_cpu_us_per_conn_s,
        connect_secs,
        own_process: peer.is_process(),
    })
}

//! Scenario 4, client runtime overhead: one subscriber on our server, received three ways —
//! a raw socket (the lean client), `SelfHostedProvider` used directly (its event sink), and
//! `RealtimeClient` over the same provider (a `Subscription`).
//!
//! Throughput: a scripted native-protocol peer (its own thread) writes a burst of
//! pre-encoded `message` frames in one go, so the client path is the bottleneck; measured are
//! messages/s and the client's CPU per message. Latency: a paced stream through our real
//! server. Rounds are interleaved and the medians reported.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use relayport_core::{
    Channel, ClientConfig, EventSink, Message, ProviderEvent, RealtimeClient, RealtimeProvider,
    SubscribeOptions,
};
use relayport_selfhosted::client::SelfHostedProvider;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::{Plan, SUBSCRIBE_TIMEOUT, drain, publish_paced};
use crate::payload;
use crate::peer::{Launch, Peer, PeerKind, PeerOptions};
use crate::stats::median;
use crate::sys;
use crate::wsclient::{self, RecvCtx};

/// What to run.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Messages of the throughput burst (pre-encoded, about 180 bytes each).
    pub burst: u64,
    /// Messages per second of the latency run.
    pub rate: f64,
    /// Seconds of the latency run.
    pub latency_secs: f64,
    /// Interleaved rounds.
    pub rounds: usize,
    /// Payload bytes.
    pub payload: usize,
    /// Longest wait for a burst to drain.
    pub drain_secs: f64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            burst: 100_000,
            rate: 2_000.0,
            latency_secs: 4.0,
            rounds: 3,
            payload: 64,
            drain_secs: 20.0,
        }
    }
}

/// One path's medians.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeRow {
    /// `raw socket`, `provider directly` or `RealtimeClient`.
    pub path: String,
    /// Burst throughput from the scripted peer, messages per second, start of the burst →
    /// receipt of the last (median of rounds): the path is the bottleneck.
    pub msgs_per_sec: f64,
    /// Client CPU per message received during the burst, microseconds (all the harness's
    /// threads but the publisher's; median of rounds).
    pub cpu_us_per_msg: f64,
    /// What one core could receive through this path: 1 / `cpu_us_per_msg`.
    pub capacity_msgs_per_sec: f64,
    /// Paced latency p50 (median of rounds).
    pub p50_ms: f64,
    /// Paced latency p99 (median of rounds).
    pub p99_ms: f64,
    /// Paced latency max (median of rounds).
    pub max_ms: f64,
    /// Messages not received (all rounds, both runs).
    pub lost: u64,
    /// Messages received twice (all rounds).
    pub duplicates: u64,
    /// Every round's throughput.
    pub rounds_msgs_per_sec: Vec<f64>,
    /// Every round's p99.
    pub rounds_p99_ms: Vec<f64>,
    /// Every round's client CPU per message, microseconds (absent in older results).
    #[serde(default)]
    pub rounds_cpu_us_per_msg: Vec<f64>,
}

/// `RealtimeClient` against the provider used directly, compared round by round (each round
/// runs the two back to back, so a slow spell of the shared machine hits both): the medians of
/// the per-round differences, which are steadier than the difference of the medians.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedOverhead {
    /// Client CPU the runtime adds per message, microseconds.
    pub added_cpu_us: f64,
    /// One-core capacity through `RealtimeClient` over the provider's (1.0 = no overhead).
    pub capacity_ratio: f64,
    /// Burst throughput through `RealtimeClient` over the provider's (wall clock, noisier).
    pub throughput_ratio: f64,
}

/// The per-round comparison of `RealtimeClient` with the provider; `None` when either row or
/// its per-round numbers are missing.
pub fn paired_overhead(r: &RuntimeResult) -> Option<PairedOverhead> {
    let row = |path: Path| r.rows.iter().find(|x| x.path == path.name());
    let (p, c) = (row(Path::Provider)?, row(Path::Client)?);
    let pairs = |a: &[f64], b: &[f64]| -> Vec<(f64, f64)> {
        a.iter().copied().zip(b.iter().copied()).collect()
    };
    let cpu = pairs(&p.rounds_cpu_us_per_msg, &c.rounds_cpu_us_per_msg);
    let tput = pairs(&p.rounds_msgs_per_sec, &c.rounds_msgs_per_sec);
    if cpu.is_empty() || tput.is_empty() {
        return None;
    }
    let added: Vec<f64> = cpu.iter().map(|(p, c)| c - p).collect();
    let capacity: Vec<f64> = cpu.iter().map(|(p, c)| p / c).collect();
    let throughput: Vec<f64> = tput.iter().map(|(p, c)| c / p).collect();
    Some(PairedOverhead {
        added_cpu_us: median(&added),
        capacity_ratio: median(&capacity),
        throughput_ratio: median(&throughput),
    })
}

/// Everything scenario 4 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeResult {
    /// The machine.
    pub machine: sys::Machine,
    /// Burst size.
    pub burst: u64,
    /// Paced rate.
    pub rate: f64,
    /// Paced seconds.
    pub latency_secs: f64,
    /// Rounds.
    pub rounds: usize,
    /// One row per path.
    pub rows: Vec<RuntimeRow>,
}

/// The three ways to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The lean client.
    Raw,
    /// `SelfHostedProvider` and its event sink.
    Provider,
    /// `RealtimeClient`.
    Client,
}

impl Path {
    /// Its display name.
    pub fn name(self) -> &'static str {
        match self {
            Path::Raw => "raw socket",
            Path::Provider => "provider directly",
            Path::Client => "RealtimeClient",
        }
    }
}

const CHANNEL: &str = "rt";

/// Records a message received through the provider or the client.
fn record(ctx: &RecvCtx, seen: &mut wsclient::SeenWindow, m: &Message) {
    let Some(s) = m.data.as_json().and_then(serde_json::Value::as_str) else {
        return;
    };
    let Some((t, seq)) = payload::parse(s.as_bytes()) else {
        return;
    };
    let now = payload::now_ns();
    if seq >= ctx.count_from.load(Ordering::Relaxed) {
        ctx.recorder.record_ns(now.saturating_sub(t));
        ctx.received.fetch_add(1, Ordering::Relaxed);
        ctx.last_ns.fetch_max(now, Ordering::Relaxed);
    }
    if !seen.insert(seq) {
        ctx.duplicates.fetch_add(1, Ordering::Relaxed);
    }
}

struct Running {
    task: JoinHandle<()>,
    client: Option<RealtimeClient>,
}

async fn start(path: Path, addr: std::net::SocketAddr, ctx: Arc<RecvCtx>) -> Result<Running> {
    let url = format!("http://{addr}");
    match path {
        Path::Raw => {
            let target = wsclient::Target {
                addr,
                path: "/ws?v=1".into(),
                proto: wsclient::Proto::Native,
            };
            let mut conn = wsclient::open(&target, CHANNEL, None, SUBSCRIBE_TIMEOUT).await?;
            // tungstenite (under the provider) reads 128 KiB at a time: match it.
            conn.set_read_buffer(128 * 1024);
            let task = tokio::spawn(wsclient::receive(conn, wsclient::Proto::Native, ctx));
            Ok(Running { task, client: None })
        }
        Path::Provider => {
            let provider = SelfHostedProvider::new(&url).map_err(|e| anyhow!("{e}"))?;
            let (sink, mut rx) = EventSink::channel();
            provider
                .connect(sink)
                .await
                .map_err(|e| anyhow!("connect: {e}"))?;
            let channel = Channel::parse(CHANNEL).map_err(|e| anyhow!("{e}"))?;
            provider
                .subscribe(&channel, &SubscribeOptions::default())
                .await
                .map_err(|e| anyhow!("subscribe: {e}"))?;
            let task = tokio::spawn(async move {
                let mut last = wsclient::SeenWindow::default();
                loop {
                    tokio::select! {
                        _ = ctx.cancel.cancelled() => break,
                        ev = rx.recv() => match ev {
                            Some((_, ProviderEvent::Message(m))) => record(&ctx, &mut last, &m),
                            Some(_) => {}
                            None => break,
                        }
                    }
                }
                let _ = provider.disconnect().await;
            });
            Ok(Running { task, client: None })
        }
        Path::Client => {
            let provider = SelfHostedProvider::new(&url).map_err(|e| anyhow!("{e}"))?;
            let mut config = ClientConfig::default();
            config.subscriber_buffer = 1 << 17;
            let client = RealtimeClient::builder(provider).config(config).build();
            client
                .connect()
                .await
                .map_err(|e| anyhow!("connect: {e}"))?;
            let mut sub = client
                .subscribe(CHANNEL)
                .await
                .map_err(|e| anyhow!("subscribe: {e}"))?;
            let task = tokio::spawn(async move {
                let mut last = wsclient::SeenWindow::default();
                loop {
                    tokio::select! {
                        _ = ctx.cancel.cancelled() => break,
                        m = sub.recv() => match m {
                            Some(m) => record(&ctx, &mut last, &m),
                            None => break,
                        }
                    }
                }
            });
            Ok(Running {
                task,
                client: Some(client),
            })
        }
    }
}

async fn stop(r: Running, ctx: &RecvCtx) {
    ctx.cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), r.task).await;
    if let Some(c) = r.client {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
    }
}

const CONNECTED: &str = r#"{"type":"connected","socket_id":"blast.1","protocol":1,"heartbeat_ms":25000,"limits":{"max_payload":65536,"max_subscriptions":50,"publishes_per_minute":100,"send_queue":1000}}"#;

/// `n` native `message` frames on [`CHANNEL`], sequences 1..=n, encoded back to back.
pub fn blast_blob(n: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n as usize * (size + 140));
    for seq in 1..=n {
        let data = payload::make(seq, size);
        let text = format!(
            r#"{{"type":"message","channel":"{CHANNEL}","event":"e","data":"{data}","id":"b-{seq}","seq":{seq},"epoch":"b","ts":0}}"#
        );
        wsclient::encode_server_text(&mut out, &text);
    }
    out
}

fn reference(text: &str) -> String {
    text.split_once(r#""ref":""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(r, _)| r.to_owned())
        .unwrap_or_default()
}

/// A scripted native-protocol peer for one connection: `connected`, answers `subscribe`
/// (and pings), then on `go` writes `blob` in one go — so the client, not a server, is the
/// bottleneck. Runs on its own thread (`bench-peer`), outside the client's CPU account.
fn scripted_peer(
    blob: Arc<Vec<u8>>,
) -> Result<(std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("bench-peer".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let _ = rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let (stream, _) =
                    tokio::time::timeout(Duration::from_secs(30), listener.accept()).await??;
                let mut conn = wsclient::WsConn::accept(stream).await?;
                let mut out = Vec::new();
                wsclient::encode_server_text(&mut out, CONNECTED);
                conn.write_raw(&out).await?;
                // Until subscribed.
                loop {
                    let Some(text) = conn.next_text().await? else {
                        return anyhow::Ok(());
                    };
                    let r = reference(&text);
                    let mut out = Vec::new();
                    if text.contains(r#""subscribe""#) {
                        wsclient::encode_server_text(
                            &mut out,
                            &format!(
                                r#"{{"type":"subscribed","ref":"{r}","channel":"{CHANNEL}","position":{{"epoch":"b","sequence":0}}}}"#
                            ),
                        );
                        conn.write_raw(&out).await?;
                        break;
                    }
                    if text.contains(r#""ping""#) {
                        wsclient::encode_server_text(
                            &mut out,
                            &format!(r#"{{"type":"pong","ref":"{r}"}}"#),
                        );
                        conn.write_raw(&out).await?;
                    }
                }
                if go_rx.await.is_ok() {
                    conn.write_raw(&blob).await?;
                }
                // Answer pings until the client goes away (bounded).
                let _ = tokio::time::timeout(Duration::from_secs(30), async {
                    while let Ok(Some(text)) = conn.next_text().await {
                        if text.contains(r#""ping""#) {
                            let mut out = Vec::new();
                            let r = reference(&text);
                            wsclient::encode_server_text(
                                &mut out,
                                &format!(r#"{{"type":"pong","ref":"{r}"}}"#),
                            );
                            if conn.write_raw(&out).await.is_err() {
                                break;
                            }
                        }
                    }
                })
                .await;
                anyhow::Ok(())
            });
        })?;
    Ok((addr, go_tx))
}

/// Runs scenario 4 against our server.
pub async fn run(cfg: &RuntimeConfig, launch: &Launch) -> Result<RuntimeResult> {
    let machine = sys::Machine::now();
    let peer = Peer::start(PeerKind::Ours, launch, PeerOptions::default())
        .await
        .context("starting our server")?;
    let paths = [Path::Raw, Path::Provider, Path::Client];
    let mut tput: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut lat: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); 3];
    let mut lost = [0u64; 3];
    let mut dups = [0u64; 3];
    let mut seq = 0u64;
    let blob = Arc::new(blast_blob(cfg.burst, cfg.payload));
    let result: Result<()> = async {
        for round in 0..cfg.rounds {
            for (i, &path) in paths.iter().enumerate() {
                // Throughput: the scripted peer blasts `burst` frames; the client is the
                // bottleneck.
                let ctx = RecvCtx::new();
                ctx.reset(0);
                let (addr, go) = scripted_peer(blob.clone())?;
                let running = start(path, addr, ctx.clone()).await?;
                let c0 = sys::own_threads_cpu_seconds("bench-");
                let t0 = payload::now_ns();
                let _ = go.send(());
                drain(&ctx, cfg.burst, Duration::from_secs_f64(cfg.drain_secs)).await;
                let c1 = sys::own_threads_cpu_seconds("bench-");
                let got = ctx.received.load(Ordering::SeqCst);
                let span = ctx.last_ns.load(Ordering::SeqCst).saturating_sub(t0) as f64 / 1e9;
                let mps = if span > 0.0 { got as f64 / span } else { 0.0 };
                if got > 0 {
                    cpu[i].push((c1 - c0) * 1e6 / got as f64);
                }
                lost[i] += cfg.burst.saturating_sub(got);
                dups[i] += ctx.duplicates.load(Ordering::SeqCst);
                tput[i].push(mps);
                stop(running, &ctx).await;
                // Latency, through our server.
                let ctx = RecvCtx::new();
                ctx.reset(seq);
                let running = start(path, peer.addr, ctx.clone()).await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
                // Latency.
                let warm = (cfg.rate * 0.5).ceil() as u64;
                let counted = (cfg.rate * cfg.latency_secs).ceil() as u64;
                let first = seq;
                seq += warm + counted;
                ctx.reset(first + warm);
                let p = publish_paced(Plan {
                    kind: PeerKind::Ours,
                    addr: peer.addr,
                    rate: cfg.rate,
                    total: warm + counted,
                    first_seq: first,
                    count_from: first + warm,
                    channels: Arc::new(vec![CHANNEL.to_owned()]),
                    payload: cfg.payload,
                    concurrency: 1,
                })
                .await?;
                let expected = counted.min(p.ok.saturating_sub(warm));
                drain(&ctx, expected, Duration::from_secs(3)).await;
                let got = ctx.received.load(Ordering::SeqCst);
                lost[i] += expected.saturating_sub(got);
                dups[i] += ctx.duplicates.load(Ordering::SeqCst);
                let s = ctx.recorder.summary();
                lat[i].push((s.p50_ms, s.p99_ms, s.max_ms));
                eprintln!(
                    "runtime: round {round} {:>18}: {:>8.0} msgs/s, {:.2} µs CPU/msg, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                    path.name(),
                    mps,
                    cpu[i].last().copied().unwrap_or(f64::NAN),
                    s.p50_ms,
                    s.p99_ms,
                    s.max_ms
                );
                stop(running, &ctx).await;
            }
        }
        Ok(())
    }
    .await;
    peer.stop().await;
    result?;
    let rows = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let p50: Vec<f64> = lat[i].iter().map(|x| x.0).collect();
            let p99: Vec<f64> = lat[i].iter().map(|x| x.1).collect();
            let max: Vec<f64> = lat[i].iter().map(|x| x.2).collect();
            let cpu_us = median(&cpu[i]);
            RuntimeRow {
                path: p.name().to_owned(),
                msgs_per_sec: median(&tput[i]),
                cpu_us_per_msg: cpu_us,
                capacity_msgs_per_sec: if cpu_us > 0.0 { 1e6 / cpu_us } else { 0.0 },
                p50_ms: median(&p50),
                p99_ms: median(&p99),
                max_ms: median(&max),
                lost: lost[i],
                duplicates: dups[i],
                rounds_msgs_per_sec: tput[i].clone(),
                rounds_p99_ms: p99,
                rounds_cpu_us_per_msg: cpu[i].clone(),
            }
        })
        .collect();
    let result = RuntimeResult {
        machine,
        burst: cfg.burst,
        rate: cfg.rate,
        latency_secs: cfg.latency_secs,
        rounds: cfg.rounds,
        rows,
    };
    if let Some(o) = paired_overhead(&result) {
        eprintln!(
            "runtime: RealtimeClient vs provider directly, per-round medians: {:+.3} µs CPU/msg, capacity {:.3}×, throughput {:.3}×",
            o.added_cpu_us, o.capacity_ratio, o.throughput_ratio
        );
    }
    Ok(result)
}

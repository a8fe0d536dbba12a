//! Scenario 5, reconnect storm: N `RealtimeClient`s subscribed to one channel while a
//! publisher keeps publishing; the server is restarted (same broker, so history survives, as
//! with the Redis engine); measures how long until every client has resubscribed and
//! recovered, and counts lost and duplicated messages (both must be 0).
//!
//! The server runs in this process because the restart must keep the broker
//! (`ServerHandle::restart`); the publisher publishes straight into the broker so that it
//! keeps publishing while the listener is down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use relayport_core::{Channel, RealtimeClient};
use relayport_selfhosted::client::SelfHostedProvider;
use relayport_selfhosted::server::{Publication, Server};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::payload;
use crate::peer::SECRET;
use crate::stats::median;
use crate::sys;

/// What to run.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// Clients.
    pub clients: usize,
    /// Messages per second published throughout.
    pub rate: f64,
    /// Seconds of publishing before the restart.
    pub before_secs: f64,
    /// Seconds of publishing after the restart.
    pub after_secs: f64,
    /// Messages the server keeps per channel for recovery.
    pub history_size: usize,
    /// Longest wait for every client to catch up after publishing stopped.
    pub settle_secs: f64,
    /// Concurrent client connects.
    pub connect_concurrency: usize,
}

impl Default for StormConfig {
    fn default() -> Self {
        Self {
            clients: 1_000,
            rate: 100.0,
            before_secs: 2.0,
            after_secs: 3.0,
            history_size: 1_000,
            settle_secs: 60.0,
            connect_concurrency: 100,
        }
    }
}

/// What scenario 5 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StormResult {
    /// The machine.
    pub machine: sys::Machine,
    /// Clients.
    pub clients: usize,
    /// Messages per second published.
    pub rate: f64,
    /// History kept per channel.
    pub history_size: usize,
    /// Messages published in all.
    pub published: u64,
    /// How long `restart()` took (listener down → up again).
    pub restart_ms: f64,
    /// From the restart until the last client had every message published before the server
    /// was back (`None`: not every client got there within the bound).
    pub all_recovered_ms: Option<f64>,
    /// The median client's time to recover.
    pub p50_recovered_ms: Option<f64>,
    /// Messages some client never received.
    pub lost: u64,
    /// Messages some client received twice.
    pub duplicates: u64,
    /// Clients that received every message.
    pub complete_clients: usize,
}

#[derive(Default)]
struct ClientState {
    seen: Vec<bool>,
    next: u64,
    dups: u64,
    recovered_ns: Option<u64>,
}

/// Runs scenario 5.
pub async fn run(cfg: &StormConfig) -> Result<StormResult> {
    let machine = sys::Machine::now();
    let handle = Server::builder()
        .secret(SECRET)
        .history_size(cfg.history_size)
        .bind("127.0.0.1:0")
        .await
        .context("starting our server in-process")?;
    let url = format!("http://{}", handle.local_addr());
    let broker = handle.broker();
    let restart_seq = Arc::new(AtomicU64::new(u64::MAX));
    let cancel = CancellationToken::new();
    let states: Vec<Arc<Mutex<ClientState>>> = (0..cfg.clients)
        .map(|_| {
            Arc::new(Mutex::new(ClientState {
                next: 1,
                ..Default::default()
            }))
        })
        .collect();

    // Clients.
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.connect_concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for state in &states {
        let url = url.clone();
        let sem = sem.clone();
        let state = state.clone();
        let restart_seq = restart_seq.clone();
        let cancel = cancel.clone();
        set.spawn(async move {
            let permit = sem.acquire_owned().await;
            let provider = SelfHostedProvider::new(&url).map_err(|e| anyhow!("{e}"))?;
            let client = RealtimeClient::new(provider);
            client
                .connect()
                .await
                .map_err(|e| anyhow!("connect: {e}"))?;
            let mut sub = client
                .subscribe("storm")
                .await
                .map_err(|e| anyhow!("subscribe: {e}"))?;
            drop(permit);
            tokio::spawn(async move {
                loop {
                    let m = tokio::select! {
                        _ = cancel.cancelled() => break,
                        m = sub.recv() => m,
                    };
                    let Some(m) = m else { break };
                    let Some(seq) = m.position.as_ref().map(|p| p.sequence) else {
                        continue;
                    };
                    let Ok(mut s) = state.lock() else { break };
                    let idx = seq as usize;
                    if s.seen.len() <= idx {
                        s.seen.resize(idx + 1024, false);
                    }
                    if s.seen[idx] {
                        s.dups += 1;
                        continue;
                    }
                    s.seen[idx] = true;
                    while s.seen.get(s.next as usize).copied().unwrap_or(false) {
                        s.next += 1;
                    }
                    let r = restart_seq.load(Ordering::SeqCst);
                    if s.recovered_ns.is_none() && r != u64::MAX && s.next > r {
                        s.recovered_ns = Some(payload::now_ns());
                    }
                }
                client.close().await;
            });
            anyhow::Ok(())
        });
    }
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !failures.is_empty() {
        cancel.cancel();
        handle.shutdown().await;
        return Err(anyhow!(
            "{} clients failed to subscribe; first: {}",
            failures.len(),
            failures[0]
        ));
    }
    eprintln!("storm: {} clients subscribed", cfg.clients);

    // Publisher: straight into the broker, at a fixed rate, until told to stop.
    let last_seq = Arc::new(AtomicU64::new(0));
    let stop_pub = CancellationToken::new();
    let publisher = {
        let broker = broker.clone();
        let last_seq = last_seq.clone();
        let stop_pub = stop_pub.clone();
        let rate = cfg.rate;
        let channel = Channel::parse("storm").map_err(|e| anyhow!("{e}"))?;
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut i = 0u64;
            while !stop_pub.is_cancelled() {
                tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
                let m = broker.publish(Publication {
                    encoding: None,
                    channel: channel.clone(),
                    event: "e".into(),
                    data: serde_json::Value::String(payload::make(i, 32)),
                    sender: None,
                    exclude: None,
                    retain: false,
                });
                last_seq.store(m.seq, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs_f64(cfg.before_secs)).await;
    let t0 = payload::now_ns();
    eprintln!("storm: restarting the server");
    let handle = handle.restart().await.context("restarting the server")?;
    let restart_ms = (payload::now_ns() - t0) as f64 / 1e6;
    restart_seq.store(last_seq.load(Ordering::SeqCst), Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs_f64(cfg.after_secs)).await;
    stop_pub.cancel();
    let _ = publisher.await;
    let end = last_seq.load(Ordering::SeqCst);
    eprintln!("storm: restart took {restart_ms:.0} ms; published {end}; waiting for every client");

    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(cfg.settle_secs);
    loop {
        let done = states
            .iter()
            .all(|s| s.lock().map(|s| s.next > end).unwrap_or(true));
        if done || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    let mut lost = 0u64;
    let mut dups = 0u64;
    let mut complete = 0usize;
    let mut recovered = Vec::new();
    for s in &states {
        let Ok(s) = s.lock() else { continue };
        let got = (1..=end)
            .filter(|q| s.seen.get(*q as usize).copied().unwrap_or(false))
            .count() as u64;
        lost += end - got;
        dups += s.dups;
        if got == end {
            complete += 1;
        }
        if let Some(ns) = s.recovered_ns {
            recovered.push((ns.saturating_sub(t0)) as f64 / 1e6);
        }
    }
    let all_recovered_ms =
        (recovered.len() == cfg.clients).then(|| recovered.iter().copied().fold(0.0, f64::max));
    let p50_recovered_ms = (!recovered.is_empty()).then(|| median(&recovered));
    // Let the clients close, then stop the server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.shutdown().await;
    Ok(StormResult {
        machine,
        clients: cfg.clients,
        rate: cfg.rate,
        history_size: cfg.history_size,
        published: end,
        restart_ms,
        all_recovered_ms,
        p50_recovered_ms,
        lost,
        duplicates: dups,
        complete_clients: complete,
    })
}

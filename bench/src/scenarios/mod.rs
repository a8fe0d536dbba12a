//! The scenarios. Each takes a config (sizes, peers, durations), runs bounded in time and
//! returns a serialisable result; `report` turns results into JSON and Markdown.

pub mod channels;
pub mod fanout;
pub mod idle;
pub mod runtime;
pub mod storm;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::task::JoinSet;

use crate::payload;
use crate::peer::{PeerKind, Publisher};
use crate::wsclient::{self, RecvCtx, Target};

/// How long one subscriber may take to connect and subscribe.
pub const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens `n` subscribers (subscriber `i` on `channel(i)`, from source address
/// `127.0.0.{2+i%8}`), `concurrency` handshakes at a time, and starts their receive loops on
/// `ctx`. Fails with the first error if any subscriber could not subscribe.
pub async fn connect_all(
    target: &Target,
    n: usize,
    channel: impl Fn(usize) -> String,
    ctx: &Arc<RecvCtx>,
    concurrency: usize,
) -> Result<()> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for i in 0..n {
        let target = target.clone();
        let ch = channel(i);
        let ctx = ctx.clone();
        let sem = sem.clone();
        set.spawn(async move {
            let permit = sem.acquire_owned().await;
            let conn = wsclient::open(
                &target,
                &ch,
                Some(wsclient::source_ip(i)),
                SUBSCRIBE_TIMEOUT,
            )
            .await;
            drop(permit);
            match conn {
                Ok(conn) => {
                    tokio::spawn(wsclient::receive(conn, target.proto, ctx));
                    Ok(())
                }
                Err(e) => Err(e),
            }
        });
    }
    let mut first_err = None;
    let mut failed = 0usize;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                first_err.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                failed += 1;
                first_err.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {n} subscribers failed to subscribe; first error: {}",
            first_err.unwrap_or_default()
        );
    }
    // Receivers register themselves as alive when first polled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ctx.alive.load(Ordering::SeqCst) < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Cancels every receiver of `ctx` and waits (bounded) until they have closed.
pub async fn disconnect_all(ctx: &Arc<RecvCtx>) {
    ctx.cancel.cancel();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while ctx.alive.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give the servers a moment to notice the closes before the next measurement.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// What a paced publishing run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Published {
    /// Messages published successfully.
    pub ok: u64,
    /// Publishes that failed.
    pub failed: u64,
    /// When the first counted message was published (`payload::now_ns`).
    pub first_counted_ns: u64,
    /// When the last publish returned.
    pub end_ns: u64,
    /// When publishing started.
    pub start_ns: u64,
}

/// A paced publishing plan: `total` messages at `rate` per second, sequences from
/// `first_seq`, round-robin over `channels`, with `concurrency` publishers in flight.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The peer to publish to.
    pub kind: PeerKind,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// Messages per second (all publishers together); `f64::INFINITY` for as fast as possible.
    pub rate: f64,
    /// Messages to publish.
    pub total: u64,
    /// The first sequence number.
    pub first_seq: u64,
    /// The first sequence that counts (the ones before are warm-up).
    pub count_from: u64,
    /// Channels, used round-robin by sequence.
    pub channels: Arc<Vec<String>>,
    /// Payload size in bytes.
    pub payload: usize,
    /// Publishers in flight.
    pub concurrency: usize,
}

/// Runs `plan` on its own thread and runtime (so that receivers never delay the
/// publisher's clock) and waits for it.
pub async fn publish_paced(plan: Plan) -> Result<Published> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-publisher".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let result = match rt {
                Ok(rt) => rt.block_on(run_plan(plan)),
                Err(e) => Err(e.into()),
            };
            let _ = tx.send(result);
        })?;
    rx.await?
}

async fn run_plan(plan: Plan) -> Result<Published> {
    let plan = Arc::new(plan);
    let conc = plan.concurrency.max(1) as u64;
    let start_ns = payload::now_ns();
    let start = tokio::time::Instant::now();
    let mut set = JoinSet::new();
    for worker in 0..conc {
        let plan = plan.clone();
        set.spawn(async move {
            let mut publisher = Publisher::connect(plan.kind, plan.addr).await?;
            let mut out = Published::default();
            let mut i = worker;
            while i < plan.total {
                if plan.rate.is_finite() && plan.rate > 0.0 {
                    let at = start + Duration::from_secs_f64(i as f64 / plan.rate);
                    tokio::time::sleep_until(at).await;
                }
                let seq = plan.first_seq + i;
                let channel = &plan.channels[(seq as usize) % plan.channels.len()];
                let data = payload::make(seq, plan.payload);
                if seq == plan.count_from {
                    out.first_counted_ns = payload::now_ns();
                }
                match publisher.publish(channel, &data).await {
                    Ok(()) => out.ok += 1,
                    Err(_) => out.failed += 1,
                }
                i += conc;
            }
            anyhow::Ok(out)
        });
    }
    let mut total = Published {
        start_ns,
        ..Published::default()
    };
    while let Some(r) = set.join_next().await {
        let r = r??;
        total.ok += r.ok;
        total.failed += r.failed;
        if r.first_counted_ns != 0 {
            total.first_counted_ns = r.first_counted_ns;
        }
    }
    total.end_ns = payload::now_ns();
    if total.first_counted_ns == 0 {
        total.first_counted_ns = start_ns;
    }
    Ok(total)
}

/// Waits until `ctx` has received `expected` counted messages or `within` has passed.
pub async fn drain(ctx: &RecvCtx, expected: u64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while ctx.received.load(Ordering::SeqCst) < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// CPU seconds of a process between two reads, as a percentage of one core over `secs`.
pub fn cpu_percent(before: Option<f64>, after: Option<f64>, secs: f64) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if secs > 0.0 => Some(((a - b) / secs * 1000.0).round() / 10.0),
        _ => None,
    }
}

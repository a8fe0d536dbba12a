//! Latency recording: HDR histograms in microseconds, sharded by thread so that receivers on
//! several worker threads rarely contend.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

const SHARDS: usize = 8;
/// The largest latency recorded, in microseconds (60 s); larger values are clamped.
const MAX_US: u64 = 60_000_000;

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
}

/// A latency recorder shared by every receiver of a run.
#[derive(Debug)]
pub struct Recorder {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
        }
    }

    /// Records one latency in nanoseconds.
    pub fn record_ns(&self, ns: u64) {
        let us = (ns / 1000).clamp(1, MAX_US);
        let shard = SHARD.with(|s| *s);
        if let Ok(mut h) = self.shards[shard].lock() {
            let _ = h.record(us);
        }
    }

    /// Clears every sample.
    pub fn reset(&self) {
        for s in &self.shards {
            if let Ok(mut h) = s.lock() {
                h.reset();
            }
        }
    }

    /// The merged histogram.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for s in &self.shards {
            if let Ok(h) = s.lock() {
                let _ = all.add(&*h);
            }
        }
        all
    }

    /// Percentiles of everything recorded so far.
    pub fn summary(&self) -> Latency {
        Latency::of(&self.merged())
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of a histogram recorded in microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// The median of a few values (for repeated rounds); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_summarises() {
        let r = Recorder::new();
        for i in 1..=100u64 {
            r.record_ns(i * 1_000_000);
        }
        let s = r.summary();
        assert_eq!(s.count, 100);
        assert!(s.p50_ms > 45.0 && s.p50_ms < 55.0);
        assert!(s.max_ms >= 99.0);
        r.reset();
        assert_eq!(r.summary().count, 0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}

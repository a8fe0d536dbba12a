//! Client-side publish throttling: at most `max` publishes per `per` on each channel.
//!
//! A sliding-window log (the last `max` send instants per channel) gives the exact guarantee
//! "never more than `max` in any window of `per`", and tells when the next send may go. It runs
//! on `tokio::time::Instant`, so tests drive it with the paused clock; `governor` measures time
//! with its own clocks, which tokio's paused clock does not move.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::channel::Channel;

/// A rate: `max` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Events allowed in any window of `per`.
    pub max: u32,
    /// The window.
    pub per: Duration,
}

impl RateLimit {
    /// `max` per second.
    pub fn per_second(max: u32) -> Self {
        Self {
            max,
            per: Duration::from_secs(1),
        }
    }
}

/// Per-channel sliding-window limiter.
#[derive(Debug)]
pub struct Throttle {
    limit: RateLimit,
    sent: HashMap<Channel, VecDeque<Instant>>,
}

impl Throttle {
    /// A limiter with this rate (a `max` of 0 is treated as 1).
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit: RateLimit {
                max: limit.max.max(1),
                per: limit.per,
            },
            sent: HashMap::new(),
        }
    }

    /// The earliest instant (not before `now`) at which `channel` may send.
    pub fn ready_at(&self, channel: &Channel, now: Instant) -> Instant {
        match self.sent.get(channel) {
            Some(log) if log.len() >= self.limit.max as usize => log
                .front()
                .map_or(now, |first| (*first + self.limit.per).max(now)),
            _ => now,
        }
    }

    /// Records a send on `channel` at `now`.
    pub fn record(&mut self, channel: &Channel, now: Instant) {
        let per = self.limit.per;
        if self.sent.len() > 64 {
            self.sent
                .retain(|_, log| log.back().is_some_and(|last| *last + per > now));
        }
        let log = self.sent.entry(channel.clone()).or_default();
        log.push_back(now);
        while log.len() > self.limit.max as usize {
            log.pop_front();
        }
    }

    /// Forgets a channel's history.
    pub fn forget(&mut self, channel: &Channel) {
        self.sent.remove(channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_max_in_any_window() {
        let mut t = Throttle::new(RateLimit::per_second(10));
        let ch = Channel::public("c");
        let start = Instant::now();
        for _ in 0..10 {
            assert_eq!(t.ready_at(&ch, start), start, "the first 10 go at once");
            t.record(&ch, start);
        }
        assert_eq!(
            t.ready_at(&ch, start),
            start + Duration::from_secs(1),
            "the 11th waits"
        );
        let other = Channel::public("d");
        assert_eq!(t.ready_at(&other, start), start, "channels are independent");
        let later = start + Duration::from_millis(1500);
        assert_eq!(t.ready_at(&ch, later), later);
    }
}

//! A per-connection sliding-window publish limiter on the server's [`Clock`].

use std::collections::VecDeque;
use std::time::Duration;

use super::clock::Clock;

/// Allows at most `max` events in any `window`.
#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    clock: Clock,
    events: VecDeque<Duration>,
}

impl RateLimiter {
    /// A limiter of `max` per `window`.
    pub fn new(max: u32, window: Duration, clock: Clock) -> Self {
        Self {
            max: max as usize,
            window,
            clock,
            events: VecDeque::new(),
        }
    }

    /// Records an event if allowed; `false` when the window is full.
    pub fn try_acquire(&mut self) -> bool {
        let now = self.clock.now();
        while let Some(at) = self.events.front() {
            if now.saturating_sub(*at) >= self.window {
                self.events.pop_front();
            } else {
                break;
            }
        }
        if self.events.len() >= self.max {
            return false;
        }
        self.events.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_per_window_then_refills() {
        let clock = Clock::manual();
        let mut r = RateLimiter::new(3, Duration::from_secs(60), clock.clone());
        assert!(r.try_acquire() && r.try_acquire() && r.try_acquire());
        assert!(!r.try_acquire());
        clock.advance(Duration::from_secs(59));
        assert!(!r.try_acquire());
        clock.advance(Duration::from_secs(1));
        assert!(r.try_acquire());
    }
}

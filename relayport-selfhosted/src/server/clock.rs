//! The server's monotonic clock: real time in production, a manual clock in tests so that
//! rate-limit windows and history TTLs can be crossed without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A monotonic clock measured from the clock's creation.
#[derive(Debug, Clone)]
pub struct Clock {
    kind: ClockKind,
}

#[derive(Debug, Clone)]
enum ClockKind {
    System(Instant),
    Manual(Arc<AtomicU64>),
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The real monotonic clock.
    pub fn system() -> Self {
        Self {
            kind: ClockKind::System(Instant::now()),
        }
    }

    /// A clock that only moves when [`Clock::advance`] is called (for tests).
    pub fn manual() -> Self {
        Self {
            kind: ClockKind::Manual(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Time elapsed since the clock started.
    pub fn now(&self) -> Duration {
        match &self.kind {
            ClockKind::System(start) => start.elapsed(),
            ClockKind::Manual(ms) => Duration::from_millis(ms.load(Ordering::SeqCst)),
        }
    }

    /// Moves a manual clock forward; does nothing on the system clock.
    pub fn advance(&self, by: Duration) {
        if let ClockKind::Manual(ms) = &self.kind {
            let add = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            ms.fetch_add(add, Ordering::SeqCst);
        }
    }
}

/// Wall-clock time in milliseconds since the Unix epoch (message timestamps).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = Clock::manual();
        assert_eq!(c.now(), Duration::ZERO);
        c.advance(Duration::from_secs(61));
        assert_eq!(c.now(), Duration::from_secs(61));
        let c2 = c.clone();
        c2.advance(Duration::from_millis(5));
        assert_eq!(c.now(), Duration::from_millis(61_005));
    }
}

//! The peer's clock: Unix seconds that advance with **tokio's** clock, so token expiry runs on
//! a paused test clock exactly as on a real one (`tokio::time::pause` + `advance`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Unix time anchored at the peer's start and advanced by tokio time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    unix_at_start: u64,
    start: Instant,
}

impl Clock {
    /// Anchors at the current wall-clock time.
    pub fn start() -> Clock {
        let unix_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Clock {
            unix_at_start,
            start: Instant::now(),
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> u64 {
        self.unix_at_start + self.start.elapsed().as_secs()
    }

    /// The tokio instant at which Unix second `unix` begins.
    pub fn instant_of(&self, unix: u64) -> Instant {
        self.start + Duration::from_secs(unix.saturating_sub(self.unix_at_start))
    }
}

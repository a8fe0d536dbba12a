//! Time as the server sees it: token `exp` claims are checked against the **wall clock**
//! (Unix seconds), and a channel's expiry check is a **tokio** timer set, when the token
//! arrives, for the time it has left. On a real clock the two agree. On a paused test clock
//! (`tokio::time::pause`), where the wall clock stands still, a token received with `L`
//! seconds left expires `L` tokio-seconds later, whoever minted it (a client minting with
//! `SystemTime`, the peer's own [`crate::PeerHandle::token`]); refreshes computed from
//! `exp - SystemTime::now()` line up with it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Unix seconds now, by the system clock (0 before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When a token with this `exp`, received now, expires on tokio's clock.
pub fn deadline(exp: u64) -> Instant {
    Instant::now() + Duration::from_secs(exp.saturating_sub(unix_now()))
}

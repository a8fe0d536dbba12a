//! Channel-level timing: the rejoin schedule of a channel the server errored or closed for an
//! expired token, and when a channel token is refreshed ahead of its `exp`.
//!
//! - **Rejoin** ([`rejoin_delay`]): phoenix.js's `rejoinAfterMs`, which realtime-js keeps: 1 s,
//!   2 s, 5 s, then every 10 s, counted per channel and reset by a successful join. Only the
//!   failed channel rejoins; the socket and every other channel keep flowing.
//! - **Refresh** ([`refresh_after`]): a token whose `exp` is known is refreshed
//!   [`REFRESH_MARGIN`] (60 s) before it expires, or a fifth of its remaining lifetime before
//!   when that is shorter (a 30 s token is refreshed after 24 s).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// How long before its `exp` a channel token is refreshed (at most; see [`refresh_after`]).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The wait before rejoin attempt `attempt` (1-based): 1 s, 2 s, 5 s, then 10 s.
///
/// ```
/// use relayport_supabase::rejoin::rejoin_delay;
/// use std::time::Duration;
/// let s: Vec<u64> = (1..=5).map(|n| rejoin_delay(n).as_secs()).collect();
/// assert_eq!(s, [1, 2, 5, 10, 10]);
/// ```
pub fn rejoin_delay(attempt: u32) -> Duration {
    Duration::from_millis(match attempt {
        0 | 1 => 1000,
        2 => 2000,
        3 => 5000,
        _ => 10_000,
    })
}

/// The `exp` claim of a JWT (seconds since the Unix epoch), read without verifying it (the
/// server verifies; the client only needs to know when to refresh). `None` for anything that
/// is not a JWT with a numeric `exp`.
///
/// ```
/// use relayport_supabase::rejoin::token_exp;
/// // {"exp":1700000060}
/// assert_eq!(token_exp("e30.eyJleHAiOjE3MDAwMDAwNjB9.sig"), Some(1_700_000_060));
/// assert_eq!(token_exp("sb_publishable_abc"), None);
/// ```
pub fn token_exp(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, body, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(body.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_u64()
        .or_else(|| exp.as_f64().map(|f| f.max(0.0) as u64))
}

/// How long from now (`now`: seconds since the Unix epoch) until a token expiring at `exp`
/// should be refreshed: `exp - now` minus the smaller of [`REFRESH_MARGIN`] and a fifth of
/// `exp - now`; zero when it is already due or past.
///
/// ```
/// use relayport_supabase::rejoin::refresh_after;
/// use std::time::Duration;
/// assert_eq!(refresh_after(1000 + 600, 1000), Duration::from_secs(540));
/// assert_eq!(refresh_after(1000 + 30, 1000), Duration::from_secs(24));
/// assert_eq!(refresh_after(900, 1000), Duration::ZERO);
/// ```
pub fn refresh_after(exp: u64, now: u64) -> Duration {
    let left = Duration::from_secs(exp.saturating_sub(now));
    left.saturating_sub(REFRESH_MARGIN.min(left / 5))
}

/// Seconds since the Unix epoch by the system clock (0 if it is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

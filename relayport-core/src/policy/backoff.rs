//! Reconnect timing: exponential backoff with uniform jitter and a give-up limit.

use std::time::Duration;

/// The reconnect schedule.
///
/// Retry `n` (1-based, counted since the last successful connection) waits
/// `min(initial × factorⁿ⁻¹, max) + U[0, jitter]`; with the defaults, 1, 2, 4, 8, 16, 30, 30 …
/// seconds plus up to one second. After `max_attempts` failed connection attempts the client
/// stops and reports `PermanentlyDisconnected`.
///
/// This is the core's own small policy: the `backoff` crate is unmaintained
/// (RUSTSEC-2025-0012) and `backon` drives retries of one future, whereas the runtime needs the
/// delay as a value to publish in `ConnectionState::Reconnecting { retry_in }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry's base delay.
    pub initial: Duration,
    /// The multiplier between consecutive retries.
    pub factor: u32,
    /// The cap on the base delay.
    pub max: Duration,
    /// The upper bound of the uniform random jitter added to each delay.
    pub jitter: Duration,
    /// How many failed connection attempts end in `PermanentlyDisconnected`.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            factor: 2,
            max: Duration::from_secs(30),
            jitter: Duration::from_secs(1),
            max_attempts: 20,
        }
    }
}

impl Backoff {
    /// The delay before retry `n` (1-based) without jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(32);
        let multiplier = u64::from(self.factor).saturating_pow(exponent);
        let nanos = (self.initial.as_nanos() as u64).saturating_mul(multiplier);
        Duration::from_nanos(nanos).min(self.max)
    }

    /// The delay before retry `n` (1-based), jitter drawn from `rng`.
    pub fn delay(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let jitter_nanos = self.jitter.as_nanos() as u64;
        let jitter = if jitter_nanos == 0 {
            0
        } else {
            rng.u64(0..=jitter_nanos)
        };
        self.base_delay(retry) + Duration::from_nanos(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_1_2_4_8_16_then_capped_at_30() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=8).map(|n| b.base_delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.base_delay(1000), Duration::from_secs(30), "no overflow");
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let b = Backoff::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut seen = std::collections::HashSet::new();
        for n in 1..=20 {
            for _ in 0..50 {
                let d = b.delay(n, &mut rng);
                let base = b.base_delay(n);
                assert!(d >= base && d <= base + Duration::from_secs(1), "{d:?}");
                seen.insert(d);
            }
        }
        assert!(seen.len() > 900, "jitter should spread retries");
    }

    #[test]
    fn no_jitter_when_disabled() {
        let b = Backoff {
            jitter: Duration::ZERO,
            ..Backoff::default()
        };
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(b.delay(3, &mut rng), Duration::from_secs(4));
    }
}

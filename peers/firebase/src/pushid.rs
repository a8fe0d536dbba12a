//! Firebase push ids: 20 characters, 8 of milliseconds then 12 of randomness, in an alphabet
//! whose ASCII order is its numeric order, so that ids sort by creation time. Ids made in the
//! same millisecond increment the random part, so they sort in creation order too.

/// The push id alphabet, in ASCII order.
pub const ALPHABET: &[u8; 64] = b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/// A generator of strictly increasing push ids.
#[derive(Debug, Default)]
pub struct PushIds {
    last_ms: u64,
    last_rand: [u8; 12],
}

impl PushIds {
    /// The next id for a write at `now_ms`.
    pub fn next(&mut self, now_ms: u64) -> String {
        let now_ms = now_ms.max(self.last_ms);
        if now_ms == self.last_ms {
            // Same millisecond: increment the random part (carry towards the front).
            for i in (0..12).rev() {
                if self.last_rand[i] == 63 {
                    self.last_rand[i] = 0;
                } else {
                    self.last_rand[i] += 1;
                    break;
                }
            }
        } else {
            for r in &mut self.last_rand {
                *r = fastrand::u8(0..64);
            }
        }
        self.last_ms = now_ms;
        let mut id = [0u8; 20];
        let mut t = now_ms;
        for i in (0..8).rev() {
            id[i] = ALPHABET[(t % 64) as usize];
            t /= 64;
        }
        for (i, r) in self.last_rand.iter().enumerate() {
            id[8 + i] = ALPHABET[*r as usize];
        }
        String::from_utf8_lossy(&id).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_within_and_across_milliseconds() {
        let mut g = PushIds::default();
        let a = g.next(1_700_000_000_000);
        let b = g.next(1_700_000_000_000);
        let c = g.next(1_700_000_000_001);
        assert_eq!(a.len(), 20);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a[..8], b[..8]);
    }
}

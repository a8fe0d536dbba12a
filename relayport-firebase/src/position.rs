//! Push ids as positions.
//!
//! A push id is 20 characters of an alphabet whose ASCII order is its numeric order: 8 for
//! the milliseconds since the Unix epoch (48 bits), then 12 random characters (72 bits) which
//! the generator increments for ids made in the same millisecond. The core's [`Position`]
//! holds a `u64`, so a push id becomes `milliseconds << 22 | the random part's low 22 bits`:
//! ordered like the ids across milliseconds (until the year 2109) and, for ids from one
//! generator (the database server's `POST`), within a millisecond too (unless the low 22
//! bits wrap, about once in four million same-millisecond ids). [`history_start`] turns a
//! position back into the `startAt` key of its millisecond; ids of that millisecond at or
//! before the position are then filtered out by position.

use relayport_core::Position;

/// The push id alphabet, in ASCII (and numeric) order.
const ALPHABET: &[u8; 64] = b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/// Bits of the random part kept in a position.
const RANDOM_BITS: u32 = 22;

fn digit(c: u8) -> Option<u64> {
    ALPHABET.iter().position(|a| *a == c).map(|d| d as u64)
}

/// The millisecond a push id was made in, or `None` for a key that is not a push id.
pub fn push_id_millis(id: &str) -> Option<u64> {
    let bytes = id.as_bytes();
    if bytes.len() != 20 {
        return None;
    }
    bytes[..8]
        .iter()
        .try_fold(0u64, |acc, c| Some(acc * 64 + digit(*c)?))
}

/// The position of a push id, or `None` for a key that is not one.
pub fn position_of(id: &str) -> Option<Position> {
    let ms = push_id_millis(id)?;
    if ms >= 1 << (64 - RANDOM_BITS) {
        return None;
    }
    let random = id.as_bytes()[8..]
        .iter()
        .try_fold(0u128, |acc, c| Some(acc * 64 + u128::from(digit(*c)?)))?;
    let low = (random & ((1 << RANDOM_BITS) - 1)) as u64;
    Some(Position::new((ms << RANDOM_BITS) | low))
}

/// The millisecond a position stands in.
pub fn position_millis(position: &Position) -> u64 {
    position.sequence >> RANDOM_BITS
}

/// The `startAt` key for the history after `since`: the first possible id of its millisecond.
pub fn history_start(since: &Position) -> String {
    let mut ms = position_millis(since);
    let mut out = [b'-'; 8];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(ms % 64) as usize];
        ms /= 64;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, tail: &str) -> String {
        format!("{}{tail}", history_start(&Position::new(ms << RANDOM_BITS)))
    }

    #[test]
    fn positions_follow_push_id_order() {
        let a = id(1_700_000_000_000, "abcdefghijkl");
        let b = id(1_700_000_000_000, "abcdefghijkm");
        let c = id(1_700_000_000_001, "------------");
        let (pa, pb, pc) = (
            position_of(&a).expect("id"),
            position_of(&b).expect("id"),
            position_of(&c).expect("id"),
        );
        assert!(pa.sequence < pb.sequence && pb.sequence < pc.sequence);
        assert_eq!(push_id_millis(&a), Some(1_700_000_000_000));
        assert_eq!(position_millis(&pb), 1_700_000_000_000);
        assert!(history_start(&pb).as_str() <= a.as_str());
    }

    #[test]
    fn other_keys_have_no_position() {
        for key in ["", "short", "~~~~~~~~~~~~~~~~~~~~", "-NQ5zV0xgYlQeK6pa9h!"] {
            assert_eq!(position_of(key), None, "{key}");
        }
    }
}

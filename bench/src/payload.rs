//! The benchmark payload: a publish timestamp and a sequence number inside the message data.
//!
//! The data is a plain JSON string `@T<nanos>:<seq>:<padding>` so that it passes unchanged
//! through every protocol (the native `data`, Pusher's string `data`, the baseline's raw
//! frame) and can be found in a received frame without parsing the JSON.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process (a monotonic clock shared by the
/// publisher and the receivers, which always run in the same process).
pub fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The data string for message `seq` published now, padded to about `size` bytes.
pub fn make(seq: u64, size: usize) -> String {
    let mut s = format!("@T{}:{}:", now_ns(), seq);
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Finds `@T<nanos>:<seq>:` in a frame and returns `(nanos, seq)`.
pub fn parse(frame: &[u8]) -> Option<(u64, u64)> {
    let at = frame.windows(2).position(|w| w == b"@T")?;
    let rest = &frame[at + 2..];
    let (t, rest) = digits(rest)?;
    let rest = rest.strip_prefix(b":")?;
    let (seq, _) = digits(rest)?;
    Some((t, seq))
}

fn digits(b: &[u8]) -> Option<(u64, &[u8])> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for c in &b[..n] {
        v = v * 10 + u64::from(c - b'0');
    }
    Some((v, &b[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_each_protocol_shape() {
        let data = make(42, 64);
        assert!(data.len() >= 64);
        let t = parse(data.as_bytes()).map(|(_, s)| s);
        assert_eq!(t, Some(42));
        let native = format!(r#"{{"type":"message","channel":"c","data":"{data}","seq":1}}"#);
        assert_eq!(parse(native.as_bytes()).map(|x| x.1), Some(42));
        let pusher = format!(r#"{{"event":"e","channel":"c","data":"{data}"}}"#);
        assert_eq!(parse(pusher.as_bytes()).map(|x| x.1), Some(42));
        assert_eq!(parse(b"no marker"), None);
        assert_eq!(parse(b"@Tx:1:"), None);
    }
}

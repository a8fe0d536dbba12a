//! Channel names as database keys: a documented, reversible encoding.
//!
//! Firebase keys may not contain `.`, `$`, `#`, `[`, `]`, `/` or ASCII control characters.
//! Each of those, and `%` itself (so the rule reverses), is written as `%` followed by two
//! upper-case hex digits of its byte: `chat.room/1` → `chat%2Eroom%2F1`. Every other character
//! is kept as it is. [`decode_key`] reverses it exactly; a key that is not a valid encoding
//! is refused rather than guessed at.

use relayport_core::{RealtimeError, Result};

fn escaped(c: char) -> bool {
    matches!(c, '.' | '$' | '#' | '[' | ']' | '/' | '%') || c.is_ascii_control()
}

/// Encodes `name` as one database key.
pub fn encode_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if escaped(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes a key written by [`encode_key`].
pub fn decode_key(key: &str) -> Result<String> {
    let bad = || RealtimeError::Protocol(format!("`{key}` is not an encoded relayport key"));
    let mut out = String::with_capacity(key.len());
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            if escaped(c) {
                return Err(bad());
            }
            out.push(c);
            continue;
        }
        let hex: String = chars.by_ref().take(2).collect();
        let byte = u8::from_str_radix(&hex, 16).map_err(|_| bad())?;
        let c = char::from(byte);
        if hex.len() != 2 || !escaped(c) || hex != format!("{byte:02X}") {
            return Err(bad());
        }
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_characters_round_trip() {
        for name in [
            "plain",
            "chat.room/1",
            "a$b#c[d]e",
            "100%",
            "x\u{1}y",
            "ünï-cödé",
        ] {
            let key = encode_key(name);
            assert!(!key.contains(['.', '$', '#', '[', ']', '/']), "{key}");
            assert_eq!(decode_key(&key).expect("reversible"), name);
        }
        assert_eq!(encode_key("chat.room/1"), "chat%2Eroom%2F1");
    }

    #[test]
    fn malformed_keys_are_refused() {
        for key in ["%", "%2", "%zz", "%41", "%2e", "a.b"] {
            assert!(decode_key(key).is_err(), "{key}");
        }
    }
}

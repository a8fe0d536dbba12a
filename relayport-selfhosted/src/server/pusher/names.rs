//! The channel-name rule between the Pusher protocol and the native one.
//!
//! A Pusher name maps to exactly one native channel:
//!
//! - `presence-X` → `presence:Y`, `private-X` → `private:Y` (so `private-encrypted-X` →
//!   `private:encrypted:Y`), any other name → the public channel `Y`;
//! - `Y` is `X` with every `-` turned into `:` (Pusher names may not hold `:`, so the turn is
//!   reversible);
//! - the result must be a valid native channel: a public Pusher name whose native form would
//!   begin with a kind prefix (`public-x`, which would print as `public:x` = `x`) is refused,
//!   so no two Pusher names ever reach one native channel.
//!
//! The reverse ([`to_wire`]) is defined for native channels whose name holds no `-`:
//! `private:room:1` ↔ `private-room-1`. A native channel with a `-` in its name (`room-1`)
//! has no Pusher name: Pusher-protocol clients can neither subscribe to it nor receive it.
//! Wildcard patterns are native only (`*` and `#` are not Pusher characters).
//!
//! `#server-to-user-{id}` is the reserved server-to-user channel; it is never a broker channel.

use relayport_core::{Channel, ChannelKind};

/// The longest Pusher channel name (the official SDK, soketi and sockudo allow 200).
pub const MAX_NAME_LEN: usize = 200;
/// The longest Pusher event name.
pub const MAX_EVENT_LEN: usize = 200;
/// The prefix of the reserved server-to-user channel.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";
/// The prefix of end-to-end encrypted channels (no client events).
pub const ENCRYPTED_PREFIX: &str = "private-encrypted-";

/// Whether `c` is in Pusher's channel alphabet (`A-Z a-z 0-9 _ - = @ , . ;`).
pub fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-=@,.;".contains(c)
}

/// Checks a Pusher channel name's alphabet and length.
pub fn validate(wire: &str) -> Result<(), String> {
    if wire.is_empty() || wire.len() > MAX_NAME_LEN {
        return Err(format!(
            "channel names are 1 to {MAX_NAME_LEN} characters long"
        ));
    }
    if !wire.chars().all(allowed) {
        return Err(format!(
            "invalid channel name {wire:?}: only A-Z a-z 0-9 _ - = @ , . ; are allowed"
        ));
    }
    Ok(())
}

/// The native channel for a Pusher channel name, by the module's rule.
pub fn to_native(wire: &str) -> Result<Channel, String> {
    validate(wire)?;
    let (kind, rest) = if let Some(rest) = wire.strip_prefix("presence-") {
        (ChannelKind::Presence, rest)
    } else if let Some(rest) = wire.strip_prefix("private-") {
        (ChannelKind::Private, rest)
    } else {
        (ChannelKind::Public, wire)
    };
    Channel::new(kind, &rest.replace('-', ":")).map_err(|e| format!("{wire}: {e}"))
}

/// The Pusher name of a native channel; `None` for wildcard patterns and names holding `-`.
pub fn to_wire(channel: &Channel) -> Option<String> {
    if channel.is_wildcard() || channel.name().contains('-') {
        return None;
    }
    let body = channel.name().replace(':', "-");
    let wire = match channel.kind() {
        ChannelKind::Public => body,
        ChannelKind::Private => format!("private-{body}"),
        ChannelKind::Presence => format!("presence-{body}"),
    };
    validate(&wire).ok()?;
    // Only names that map back to the same channel (a public `private-x` would not).
    (to_native(&wire).ok().as_ref() == Some(channel)).then_some(wire)
}

/// The Pusher name of a native channel given as text (a broker key).
pub fn key_to_wire(key: &str) -> Option<String> {
    Channel::parse(key).ok().as_ref().and_then(to_wire)
}

/// Whether a Pusher channel is end-to-end encrypted.
pub fn is_encrypted(wire: &str) -> bool {
    wire.starts_with(ENCRYPTED_PREFIX)
}

/// Whether a Pusher channel is a presence channel.
pub fn is_presence(wire: &str) -> bool {
    wire.starts_with("presence-")
}

/// Whether a Pusher channel needs a signature (private, presence, encrypted).
pub fn requires_auth(wire: &str) -> bool {
    wire.starts_with("private-") || wire.starts_with("presence-")
}

/// Checks a user id (sign-in, server-to-user): Pusher's channel alphabet, 1 to 200 characters.
pub fn validate_user_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_NAME_LEN || !id.chars().all(allowed) {
        return Err(format!(
            "invalid user id {id:?}: 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 _ - = @ , . ;"
        ));
    }
    Ok(())
}

/// Checks a socket id as Pusher writes them: `digits.digits`.
pub fn is_socket_id(s: &str) -> bool {
    s.len() <= 64
        && s.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(s: &str) -> String {
        to_native(s).map(|c| c.to_string()).unwrap_or_else(|e| e)
    }

    #[test]
    fn the_documented_examples_map_both_ways() {
        for (wire, n) in [
            ("private-room-1", "private:room:1"),
            ("presence-lobby", "presence:lobby"),
            ("private-encrypted-vault", "private:encrypted:vault"),
            ("news", "news"),
            ("my-feed.v2", "my:feed.v2"),
        ] {
            assert_eq!(native(wire), n);
            let ch = Channel::parse(n).expect("native");
            assert_eq!(to_wire(&ch).as_deref(), Some(wire), "{n}");
        }
    }

    #[test]
    fn no_two_pusher_names_reach_one_channel_and_kinds_never_alias() {
        // A public Pusher name cannot smuggle a kind prefix in.
        for bad in ["public-x", "presence-", "private-", "a:b", "#x", "a*", ""] {
            assert!(to_native(bad).is_err(), "{bad} must be refused");
        }
        assert_eq!(native("privatex"), "privatex");
        assert!(to_native("private-x").unwrap().kind() == ChannelKind::Private);
        assert!(to_native("presence-x").unwrap().kind() == ChannelKind::Presence);
        // Native names with `-` and wildcard patterns have no Pusher name.
        for n in ["room-1", "private:a-b", "agent.*", "agent.#"] {
            let ch = Channel::parse(n).expect("native");
            assert_eq!(to_wire(&ch), None, "{n}");
        }
        // Every accepted Pusher name round-trips exactly.
        for wire in ["a", "a-b-c", "private-a-b", "presence-x.y", "x=y@z,w;v"] {
            let ch = to_native(wire).expect(wire);
            assert_eq!(to_wire(&ch).as_deref(), Some(wire));
        }
    }

    #[test]
    fn socket_ids_and_user_ids() {
        assert!(is_socket_id("123.456"));
        for bad in ["123", ".1", "1.", "a.1", "1.2.3", "1.-2"] {
            assert!(!is_socket_id(bad), "{bad}");
        }
        assert!(validate_user_id("user-1@x").is_ok());
        assert!(validate_user_id("").is_err());
        assert!(validate_user_id("a b").is_err());
        assert!(validate_user_id(&"x".repeat(201)).is_err());
    }
}

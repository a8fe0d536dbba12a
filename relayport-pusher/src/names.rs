//! Channel-name mapping between the workspace's neutral names and Pusher's, and the Pusher
//! name checks the official server SDK applies.
//!
//! # The mapping rule
//!
//! - the neutral kind prefix becomes Pusher's: `private:x` → `private-x`, `presence:x` →
//!   `presence-x`, `public:x` and `x` → `x`;
//! - inside the name every `:` becomes `-` (Pusher forbids `:`); every other character is kept;
//! - the result must be a valid Pusher name: at most [`MAX_CHANNEL_NAME_LEN`] characters from
//!   `[A-Za-z0-9_\-=@,.;]`, otherwise the channel is refused with
//!   [`RealtimeError::InvalidChannel`] (never rewritten further);
//! - a public channel whose Pusher name would start with `private-`, `presence-` or `#` is
//!   refused: Pusher would treat it as a different kind of channel.
//!
//! The reverse ([`from_wire`]) maps the prefix back and keeps the rest verbatim, so
//! `private-room-1` → `private:room-1`. Because `:` and `-` meet on the same character,
//! `room:1` and `room-1` name the same Pusher channel; the client keeps the neutral name you
//! subscribed with and refuses to hold two neutral names for one Pusher channel at once.
//!
//! Encrypted channels need no extra kind: `private:encrypted-secrets` maps to
//! `private-encrypted-secrets`, which Pusher treats as end-to-end encrypted.
//!
//! ```
//! use relayport_pusher::names::{to_wire, from_wire};
//! let ch = "private:room:1".parse().unwrap();
//! assert_eq!(to_wire(&ch).unwrap(), "private-room-1");
//! assert_eq!(from_wire("presence-lobby").unwrap().to_string(), "presence:lobby");
//! ```

use relayport_core::{Channel, ChannelKind, RealtimeError, Result};

/// The longest Pusher channel name (the official SDK, soketi and sockudo allow 200).
pub const MAX_CHANNEL_NAME_LEN: usize = 200;
/// The longest Pusher event name.
pub const MAX_EVENT_NAME_LEN: usize = 200;
/// The prefix of end-to-end encrypted channels.
pub const ENCRYPTED_PREFIX: &str = "private-encrypted-";
/// The prefix of the reserved channel that carries server-to-user events.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";
/// The neutral (public) channel on which a signed-in connection delivers its user's events:
/// server-to-user events under their own names, watchlist changes as `online` / `offline`
/// with `{"user_ids": [...]}`. Reserved: the client never subscribes a Pusher channel of this
/// name.
pub const USER_CHANNEL: &str = "server-to-user";

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-=@,.;".contains(c)
}

/// The Pusher name of a neutral channel, following the module's rule.
pub fn to_wire(channel: &Channel) -> Result<String> {
    let body = channel.name().replace(':', "-");
    let wire = match channel.kind() {
        ChannelKind::Public => {
            if body.starts_with("private-") || body.starts_with("presence-") {
                return Err(RealtimeError::invalid_channel(
                    channel.to_string(),
                    "a public channel cannot carry a Pusher `private-`/`presence-` name; use the `private:`/`presence:` prefix",
                ));
            }
            body
        }
        ChannelKind::Private => format!("private-{body}"),
        ChannelKind::Presence => format!("presence-{body}"),
    };
    validate_channel_name(&wire).map_err(|e| match e {
        RealtimeError::InvalidChannel { reason, .. } => {
            RealtimeError::invalid_channel(channel.to_string(), reason)
        }
        other => other,
    })?;
    Ok(wire)
}

/// The neutral channel for a Pusher name: the kind from the prefix, the rest kept verbatim.
pub fn from_wire(name: &str) -> Result<Channel> {
    validate_channel_name(name)?;
    if let Some(rest) = name.strip_prefix("presence-") {
        Channel::new(ChannelKind::Presence, rest)
    } else if let Some(rest) = name.strip_prefix("private-") {
        Channel::new(ChannelKind::Private, rest)
    } else {
        Channel::new(ChannelKind::Public, name)
    }
}

/// Checks a Pusher channel name as the official SDK does (same messages).
pub fn validate_channel_name(name: &str) -> Result<()> {
    if name.chars().count() > MAX_CHANNEL_NAME_LEN {
        return Err(RealtimeError::invalid_channel(
            name,
            format!("Channel name too long: '{name}'"),
        ));
    }
    if name.is_empty() || !name.chars().all(allowed) {
        return Err(RealtimeError::invalid_channel(
            name,
            format!("Invalid channel name: '{name}'"),
        ));
    }
    Ok(())
}

/// Checks an event name (1 to [`MAX_EVENT_NAME_LEN`] characters), with the SDK's message.
pub fn validate_event_name(name: &str) -> Result<()> {
    if name.chars().count() > MAX_EVENT_NAME_LEN {
        return Err(RealtimeError::Protocol(format!(
            "Too long event name: '{name}'"
        )));
    }
    if name.is_empty() {
        return Err(RealtimeError::Protocol("Empty event name".into()));
    }
    Ok(())
}

/// Checks a socket id (`^\d+\.\d+$`), with the SDK's message.
pub fn validate_socket_id(socket_id: &str) -> Result<()> {
    let ok = socket_id.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(RealtimeError::Protocol(format!(
            "Invalid socket id: '{socket_id}'"
        )))
    }
}

/// Checks a user id for user authentication and server-to-user events (Pusher's channel
/// alphabet, at most 200 characters), with the SDK's message.
pub fn validate_user_id(user_id: &str) -> Result<()> {
    if user_id.is_empty() || user_id.chars().count() > 200 || !user_id.chars().all(allowed) {
        return Err(RealtimeError::Protocol(format!(
            "Invalid user id: '{user_id}'"
        )));
    }
    Ok(())
}

/// Whether a Pusher channel is end-to-end encrypted (`private-encrypted-…`).
pub fn is_encrypted(wire: &str) -> bool {
    wire.starts_with(ENCRYPTED_PREFIX)
}

/// Whether a Pusher channel needs authorization (`private-…` or `presence-…`).
pub fn requires_auth(wire: &str) -> bool {
    wire.starts_with("private-") || wire.starts_with("presence-")
}

/// Whether a Pusher channel is a presence channel.
pub fn is_presence(wire: &str) -> bool {
    wire.starts_with("presence-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::ErrorKind;

    #[test]
    fn maps_both_ways() {
        for (neutral, wire, back) in [
            ("private:room:1", "private-room-1", "private:room-1"),
            (
                "presence:room:456",
                "presence-room-456",
                "presence:room-456",
            ),
            ("public:feed", "feed", "public:feed"),
            (
                "feed.a;b,c=d@e_f",
                "feed.a;b,c=d@e_f",
                "public:feed.a;b,c=d@e_f",
            ),
            (
                "private:encrypted-x",
                "private-encrypted-x",
                "private:encrypted-x",
            ),
        ] {
            let ch: Channel = neutral.parse().unwrap();
            assert_eq!(to_wire(&ch).unwrap(), wire);
            assert_eq!(from_wire(wire).unwrap(), back.parse::<Channel>().unwrap());
            // Reverse then forward is the identity on Pusher names.
            assert_eq!(to_wire(&from_wire(wire).unwrap()).unwrap(), wire);
        }
    }

    #[test]
    fn refuses_what_pusher_cannot_carry() {
        for bad in ["agent.*", "agent.#", "private-x", "presence-y"] {
            let ch: Channel = bad.parse().unwrap();
            assert_eq!(
                to_wire(&ch).unwrap_err().kind(),
                ErrorKind::InvalidChannel,
                "{bad}"
            );
        }
        for bad in ["", "bad channel", "a:b", "#server-to-user-1", "é"] {
            assert_eq!(
                validate_channel_name(bad).unwrap_err().kind(),
                ErrorKind::InvalidChannel,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn channel_name_length_at_and_past_the_limit() {
        let at = "c".repeat(MAX_CHANNEL_NAME_LEN);
        assert!(validate_channel_name(&at).is_ok());
        let past = "c".repeat(MAX_CHANNEL_NAME_LEN + 1);
        let err = validate_channel_name(&past).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidChannel);
        assert!(err.to_string().contains("Channel name too long"));
        assert!(from_wire(&past).is_err());
    }

    #[test]
    fn event_name_length_at_and_past_the_limit() {
        assert!(validate_event_name(&"e".repeat(200)).is_ok());
        assert_eq!(
            validate_event_name(&"e".repeat(201)).unwrap_err().kind(),
            ErrorKind::Protocol
        );
        assert!(validate_event_name("").is_err());
    }

    #[test]
    fn socket_ids() {
        assert!(validate_socket_id("123.456").is_ok());
        assert!(validate_socket_id("4318234086.1196744714").is_ok());
        for bad in ["123", "abc", "1.", ".1", "1.2.3", "1a.2", ""] {
            assert!(validate_socket_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_by_prefix() {
        assert!(is_encrypted("private-encrypted-a"));
        assert!(!is_encrypted("private-a"));
        assert!(requires_auth("private-encrypted-a"));
        assert!(requires_auth("presence-a"));
        assert!(!requires_auth("a"));
        assert!(is_presence("presence-a"));
    }
}

//! Channel-name mapping between the neutral names of `relayport-core` and Ably.
//!
//! Ably channel names may contain `:` (it separates namespaces), so the neutral prefix is kept
//! as an Ably namespace: `public:feed` (or `feed`) -> `feed`, `private:user:1` ->
//! `private:user:1`, `presence:room:2` -> `presence:room:2`. The rule is reversible: an Ably
//! name in the `private` or `presence` namespace maps back to that kind, anything else is
//! public. A public channel whose name would land in those namespaces (`public:private:x`) is
//! refused with `InvalidChannel`, never rewritten.

use relayport_core::{Channel, ChannelKind, RealtimeError, Result};

/// The Ably channel name for a neutral channel.
///
/// ```
/// use relayport_ably::channels::ably_name;
/// use relayport_core::Channel;
/// assert_eq!(ably_name(&Channel::public("feed")).unwrap(), "feed");
/// assert_eq!(ably_name(&Channel::presence("room:1")).unwrap(), "presence:room:1");
/// // A public name in those namespaces is refused by `Channel` itself.
/// assert!(Channel::parse("public:private:x").is_err());
/// ```
pub fn ably_name(channel: &Channel) -> Result<String> {
    match channel.kind() {
        ChannelKind::Public => {
            let name = channel.name();
            if name.starts_with("private:") || name.starts_with("presence:") {
                return Err(RealtimeError::invalid_channel(
                    format!("public:{name}"),
                    "a public channel cannot live in Ably's `private:` or `presence:` namespace",
                ));
            }
            if channel.is_wildcard() {
                return Err(RealtimeError::invalid_channel(
                    channel.to_string(),
                    "Ably has no wildcard subscriptions",
                ));
            }
            Ok(name.to_owned())
        }
        kind => Ok(format!("{}:{}", kind.prefix(), channel.name())),
    }
}

/// The neutral channel for an Ably channel name.
pub fn from_ably_name(name: &str) -> Result<Channel> {
    if name.starts_with("private:") || name.starts_with("presence:") {
        Channel::parse(name)
    } else {
        Channel::new(ChannelKind::Public, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_reversible() {
        for neutral in ["feed", "private:user:1", "presence:room:2", "ns:room"] {
            let ch = Channel::parse(neutral).unwrap();
            let ably = ably_name(&ch).unwrap();
            assert_eq!(from_ably_name(&ably).unwrap(), ch, "{neutral}");
        }
    }

    #[test]
    fn colliding_public_names_are_refused() {
        // `relayport-core` refuses these names at parse time (a public name may not begin
        // with a kind prefix), before they could reach the Ably mapping.
        for bad in ["public:private:x", "public:presence:x"] {
            assert_eq!(
                Channel::parse(bad).unwrap_err().kind(),
                relayport_core::ErrorKind::InvalidChannel
            );
        }
    }
}

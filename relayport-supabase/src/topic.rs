//! How neutral channel names map to Supabase topics, and back.
//!
//! | neutral channel | WebSocket topic | `config.private` | presence | REST `topic` |
//! |---|---|---|---|---|
//! | `room1` / `public:room1` | `realtime:room1` | `false` | off (unless configured) | `room1` |
//! | `private:room1` | `realtime:room1` | `true` | off (unless configured) | `room1` |
//! | `presence:room1` | `realtime:room1` | `true` | on | `room1` |
//!
//! The rule is reversible given the `private` flag and whether presence is on. Public and
//! private channels with the same name are separate streams on the server, but one socket can
//! join a topic only once, so subscribing to two neutral channels that share a topic is refused
//! with [`RealtimeError::InvalidChannel`] rather than silently closing the first one (which is
//! what the server would do).

use relayport_core::{Channel, ChannelKind, RealtimeError};

/// The prefix of every Realtime topic.
pub const TOPIC_PREFIX: &str = "realtime:";

/// The topic Phoenix uses for heartbeats.
pub const PHOENIX_TOPIC: &str = "phoenix";

/// The WebSocket topic of a neutral channel: `realtime:<name>`.
///
/// ```
/// use relayport_supabase::topic::topic_for;
/// assert_eq!(topic_for(&"private:room1".parse().unwrap()), "realtime:room1");
/// ```
pub fn topic_for(channel: &Channel) -> String {
    format!("{TOPIC_PREFIX}{}", channel.name())
}

/// The REST topic: the bare name, without the `realtime:` prefix.
pub fn rest_topic(channel: &Channel) -> &str {
    channel.name()
}

/// Whether the channel is joined with `config.private: true` (RLS-guarded).
pub fn is_private(channel: &Channel) -> bool {
    channel.kind() != ChannelKind::Public
}

/// The neutral channel for a topic, given the `private` flag and whether presence is on.
pub fn channel_for_topic(
    topic: &str,
    private: bool,
    presence: bool,
) -> Result<Channel, RealtimeError> {
    let name = topic.strip_prefix(TOPIC_PREFIX).ok_or_else(|| {
        RealtimeError::invalid_channel(topic, "Supabase topics start with `realtime:`")
    })?;
    let kind = match (private, presence) {
        (false, _) => ChannelKind::Public,
        (true, false) => ChannelKind::Private,
        (true, true) => ChannelKind::Presence,
    };
    Channel::new(kind, name)
}

/// Refuses channels Supabase cannot carry: wildcard patterns (Realtime has none).
pub fn check_channel(channel: &Channel) -> Result<(), RealtimeError> {
    if channel.is_wildcard() {
        return Err(RealtimeError::invalid_channel(
            channel.to_string(),
            "Supabase Realtime has no wildcard subscriptions",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_reversible() {
        for (neutral, private, presence) in [
            ("room1", false, false),
            ("private:room1", true, false),
            ("presence:room:1", true, true),
        ] {
            let ch: Channel = neutral.parse().unwrap();
            let topic = topic_for(&ch);
            assert!(topic.starts_with("realtime:"));
            assert_eq!(is_private(&ch), private);
            assert_eq!(channel_for_topic(&topic, private, presence).unwrap(), ch);
            assert_eq!(rest_topic(&ch), ch.name());
        }
        assert!(channel_for_topic("phoenix", false, false).is_err());
        assert!(channel_for_topic("realtime:", false, false).is_err());
        assert!(check_channel(&"a.*".parse().unwrap()).is_err());
    }
}

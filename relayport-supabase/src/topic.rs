//! How neutral channel names map to Supabase topics, and back.
//!
//! | neutral channel | WebSocket topic | `config.private` | presence | REST `topic` |
//! |---|---|---|---|---|
//! | `room1` / `public:room1` | `realtime:room1` | `false` | off (unless configured) | `room1` |
//! | `private:room1` | `realtime:room1` | `true` | off (unless configured) | `room1` |
//! | `presence:room1` | `realtime:room1` | `false` (`true` with `presence_private`) | on | `room1` |
//!
//! Presence and privacy are separate, as in realtime-js: a `presence:` channel is a public
//! channel with presence on, unless the provider is configured with
//! `SupabaseConfig::presence_private` (then RLS guards it like a `private:` channel). The rule
//! is reversible given the `private` flag and whether presence is on. Public and
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

/// Whether the channel is joined with `config.private: true` (RLS-guarded) by default: only
/// `private:` channels (presence channels are public unless configured otherwise; see
/// [`is_private_with`]).
pub fn is_private(channel: &Channel) -> bool {
    is_private_with(channel, false)
}

/// Whether the channel is joined with `config.private: true`, with `presence_private` saying
/// whether `presence:` channels are RLS-guarded too.
pub fn is_private_with(channel: &Channel, presence_private: bool) -> bool {
    match channel.kind() {
        ChannelKind::Private => true,
        ChannelKind::Presence => presence_private,
        _ => false,
    }
}

/// Whether Supabase presence is on for the channel by default: `presence:` channels.
pub fn has_presence(channel: &Channel) -> bool {
    channel.kind() == ChannelKind::Presence
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
        (_, true) => ChannelKind::Presence,
        (true, false) => ChannelKind::Private,
        (false, false) => ChannelKind::Public,
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
            ("presence:room:1", false, true),
        ] {
            let ch: Channel = neutral.parse().unwrap();
            let topic = topic_for(&ch);
            assert!(topic.starts_with("realtime:"));
            assert_eq!(is_private(&ch), private);
            assert_eq!(has_presence(&ch), presence);
            assert_eq!(channel_for_topic(&topic, private, presence).unwrap(), ch);
            assert_eq!(rest_topic(&ch), ch.name());
        }
        // Issue 15 item 3: presence does not imply privacy; privacy is opt-in for presence.
        let presence: Channel = "presence:lobby".parse().unwrap();
        assert!(!is_private(&presence) && has_presence(&presence));
        assert!(is_private_with(&presence, true));
        assert!(!is_private_with(&Channel::public("x"), true));
        assert_eq!(
            channel_for_topic("realtime:lobby", true, true).unwrap(),
            presence
        );
        assert!(channel_for_topic("phoenix", false, false).is_err());
        assert!(channel_for_topic("realtime:", false, false).is_err());
        assert!(check_channel(&"a.*".parse().unwrap()).is_err());
    }
}

//! `Channel::parse`, `Channel::matches` and the providers' channel-name mappings (each
//! provider maps channel names the server sends back to neutral channels).

use relayport_core::channel::MAX_CHANNEL_NAME_LEN;
use relayport_core::{Channel, ChannelKind};

/// The kind prefixes `Channel::parse` strips.
pub const KIND_PREFIXES: [&str; 3] = ["public:", "private:", "presence:"];

/// The most `#` segments a pattern may have for [`check_matches`] to run it.
///
/// The library's matcher is linear (issue 11, item 2), but the reference matcher here
/// backtracks on `#`, so its work grows like `name_segments ^ hashes`; three keep every run
/// under a millisecond while still covering every combination of `#`, `*` and literal segments.
pub const MAX_HASH_SEGMENTS_CHECKED: usize = 3;

/// Whether the public channel `channel` has a name that starts with a kind prefix, so that its
/// printed form (`private:x` for the public channel named `private:x`) reads back as another
/// channel: issue 11, item 1 (channel aliasing), fixed by refusing such names in
/// `Channel::parse`/`Channel::new`; [`check_parse`] asserts that none parses.
pub fn aliases_another_kind(channel: &Channel) -> bool {
    channel.kind() == ChannelKind::Public
        && KIND_PREFIXES.iter().any(|p| channel.name().starts_with(p))
}

fn segments(name: &str) -> impl Iterator<Item = &str> {
    name.split(['.', ':'])
}

/// Parses `text` as a channel and checks every invariant of a valid channel, its printed and
/// serialized forms, and the providers' name mappings.
pub fn check_parse(text: &str) {
    check_provider_names(text);
    let Ok(channel) = Channel::parse(text) else {
        return;
    };
    let name = channel.name();
    assert!(!name.is_empty(), "{text:?} parsed with an empty name");
    assert!(
        name.len() <= MAX_CHANNEL_NAME_LEN,
        "{text:?} parsed with a {}-byte name",
        name.len()
    );
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-=@,.;:*#".contains(c)),
        "{text:?} parsed with a character outside the portable alphabet"
    );
    for seg in segments(name) {
        if seg.contains(['*', '#']) {
            assert!(
                seg == "*" || seg == "#",
                "{text:?}: wildcard inside {seg:?}"
            );
        }
    }
    if channel.kind() != ChannelKind::Public {
        assert!(!channel.is_wildcard(), "{text:?}: a non-public wildcard");
    }
    assert_eq!(
        Channel::new(channel.kind(), name).ok().as_ref(),
        Some(&channel),
        "Channel::new disagrees with Channel::parse on {text:?}"
    );
    let prefixed = format!("{}:{name}", channel.kind().prefix());
    // Issue 11, item 1: a public name may not begin with a kind prefix, so none parses.
    assert!(
        !aliases_another_kind(&channel),
        "{text:?} parsed as a public channel whose name aliases another kind"
    );
    {
        let shown = channel.to_string();
        assert_eq!(
            Channel::parse(&shown).ok().as_ref(),
            Some(&channel),
            "{text:?} prints as {shown:?}, which reads back as another channel"
        );
        assert_eq!(
            Channel::parse(&prefixed).ok().as_ref(),
            Some(&channel),
            "{prefixed:?} is not {text:?}"
        );
        let json = serde_json::to_string(&channel).expect("a channel serializes");
        assert_eq!(
            serde_json::from_str::<Channel>(&json).ok().as_ref(),
            Some(&channel),
            "serde round trip of {text:?}"
        );
    }
    check_mappings(&channel);
}

/// The neutral channel → provider name → neutral channel round trips.
fn check_mappings(channel: &Channel) {
    if let Ok(wire) = relayport_pusher::names::to_wire(channel) {
        let back = relayport_pusher::names::from_wire(&wire).unwrap_or_else(|e| {
            panic!("pusher name {wire:?} of {channel:?} does not map back: {e}")
        });
        assert_eq!(back.kind(), channel.kind(), "pusher kind of {channel:?}");
        assert_eq!(
            relayport_pusher::names::to_wire(&back).ok().as_deref(),
            Some(wire.as_str()),
            "pusher name of {channel:?}"
        );
    }
    if let Ok(ably) = relayport_ably::channels::ably_name(channel) {
        assert_eq!(
            relayport_ably::channels::from_ably_name(&ably)
                .ok()
                .as_ref(),
            Some(channel),
            "ably name {ably:?} of {channel:?}"
        );
    }
    let topic = relayport_supabase::topic::topic_for(channel);
    let back = relayport_supabase::topic::channel_for_topic(
        &topic,
        relayport_supabase::topic::is_private(channel),
        channel.kind() == ChannelKind::Presence,
    );
    assert_eq!(
        back.ok().as_ref(),
        Some(channel),
        "supabase topic {topic:?}"
    );
}

/// Provider channel names as servers send them: whatever maps to a neutral channel maps back
/// to the same provider name.
fn check_provider_names(text: &str) {
    if let Ok(channel) = relayport_pusher::names::from_wire(text) {
        assert_eq!(
            relayport_pusher::names::to_wire(&channel).ok().as_deref(),
            Some(text),
            "pusher name {text:?} → {channel:?} does not map back"
        );
    }
    if let Ok(channel) = relayport_ably::channels::from_ably_name(text)
        && !channel.is_wildcard()
    {
        assert_eq!(
            relayport_ably::channels::ably_name(&channel)
                .ok()
                .as_deref(),
            Some(text),
            "ably name {text:?} → {channel:?} does not map back"
        );
    }
}

/// Splits a fuzz input into a pattern and a name at its first newline.
pub fn split_pattern_name(text: &str) -> Option<(&str, &str)> {
    text.split_once('\n')
}

/// Checks `Channel::matches` against [`reference_matches`] on a pattern × name pair, plus its
/// structural rules.
pub fn check_matches(pattern: &str, name: &str) {
    let (Ok(p), Ok(n)) = (Channel::parse(pattern), Channel::parse(name)) else {
        return;
    };
    if !n.is_wildcard() {
        assert!(n.matches(&n), "{name:?} does not match itself");
    }
    for ch in [&p, &n] {
        if segments(ch.name()).filter(|s| *s == "#").count() > MAX_HASH_SEGMENTS_CHECKED {
            return;
        }
    }
    let got = p.matches(&n);
    let want = reference_matches(&p, &n);
    assert_eq!(got, want, "{pattern:?}.matches({name:?})");
    if got && p.is_wildcard() {
        assert_eq!(n.kind(), ChannelKind::Public, "a wildcard matched {name:?}");
    }
}

/// The matching rule of `Channel::matches`, written independently: segments split on `.` and
/// `:`, `*` is exactly one segment, `#` zero or more; wildcards match only concrete public
/// channels; a concrete channel matches only itself. Dynamic programming over
/// (pattern prefix, name prefix): `O(pattern × name)` steps.
pub fn reference_matches(pattern: &Channel, name: &Channel) -> bool {
    if !pattern.is_wildcard() {
        return pattern == name;
    }
    if name.kind() != ChannelKind::Public || name.is_wildcard() {
        return false;
    }
    let name: Vec<&str> = segments(name.name()).collect();
    // reach[j]: the pattern segments seen so far match exactly the first j name segments.
    let mut reach = vec![false; name.len() + 1];
    reach[0] = true;
    for seg in segments(pattern.name()) {
        let mut next = vec![false; name.len() + 1];
        match seg {
            "#" => {
                let mut any = false;
                for j in 0..=name.len() {
                    any |= reach[j];
                    next[j] = any;
                }
            }
            "*" => next[1..].copy_from_slice(&reach[..name.len()]),
            literal => {
                for j in 0..name.len() {
                    next[j + 1] = reach[j] && name[j] == literal;
                }
            }
        }
        reach = next;
    }
    reach[name.len()]
}

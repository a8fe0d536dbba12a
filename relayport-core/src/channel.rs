//! Provider-neutral channel names: `public:feed`, `private:user:123`, `presence:room:456`.
//!
//! The prefix sets the [`ChannelKind`]; a name without a known prefix is public. Names are
//! validated once, here, so that every provider starts from the same portable alphabet:
//! ASCII letters and digits and `_ - = @ , . ; :`, at most [`MAX_CHANNEL_NAME_LEN`] bytes after
//! the prefix. Public channels may also be wildcard patterns (see [`Channel::matches`]).
//!
//! A channel's text ([`Channel`]'s `Display`, which is also its key in every map, Redis key
//! and SSE cursor) is unambiguous: a public name may not itself begin with a kind prefix
//! (`private:`, `presence:`, `public:`), so `public:private:x` is refused instead of becoming
//! a public channel that prints as the private channel `private:x`. Distinct (kind, name)
//! pairs never share text, and parsing a channel's text gives the same channel back.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{RealtimeError, Result};

/// The longest channel name accepted, in bytes, not counting the kind prefix.
pub const MAX_CHANNEL_NAME_LEN: usize = 164;

/// The most wildcard segments (`*` or `#`) a pattern may hold; more is refused with
/// `InvalidChannel`. Consecutive `#` segments count once (they match the same names).
pub const MAX_WILDCARD_SEGMENTS: usize = 16;

/// The kind prefixes, with their colon, that a public name may not begin with.
const RESERVED_PREFIXES: [&str; 3] = ["private:", "presence:", "public:"];

/// The kind of a channel, set by its name's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Anyone may subscribe; no authorization.
    Public,
    /// Subscribing needs a signature from the application's backend.
    Private,
    /// Like private, and members are visible to each other.
    Presence,
}

impl ChannelKind {
    /// The neutral prefix of this kind, without the colon.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Presence => "presence",
        }
    }

    /// Whether subscribing needs authorization.
    pub fn requires_auth(self) -> bool {
        !matches!(self, Self::Public)
    }
}

/// A validated, provider-neutral channel.
///
/// ```
/// use relayport_core::{Channel, ChannelKind};
/// let ch: Channel = "presence:room:456".parse().unwrap();
/// assert_eq!(ch.kind(), ChannelKind::Presence);
/// assert_eq!(ch.name(), "room:456");
/// assert_eq!(ch.to_string(), "presence:room:456");
/// assert_eq!("feed".parse::<Channel>().unwrap(), "public:feed".parse().unwrap());
/// assert!("private:".parse::<Channel>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel {
    kind: ChannelKind,
    name: String,
}

impl Channel {
    /// Parses a neutral name (`private:x`, `presence:x`, `public:x` or just `x`).
    pub fn parse(full: &str) -> Result<Self> {
        let (kind, name) = if let Some(rest) = full.strip_prefix("private:") {
            (ChannelKind::Private, rest)
        } else if let Some(rest) = full.strip_prefix("presence:") {
            (ChannelKind::Presence, rest)
        } else if let Some(rest) = full.strip_prefix("public:") {
            (ChannelKind::Public, rest)
        } else {
            (ChannelKind::Public, full)
        };
        Self::new(kind, name).map_err(|e| match e {
            RealtimeError::InvalidChannel { reason, .. } => {
                RealtimeError::invalid_channel(full, reason)
            }
            other => other,
        })
    }

    /// Builds a channel from a kind and a bare name (without prefix).
    pub fn new(kind: ChannelKind, name: &str) -> Result<Self> {
        validate_name(kind, name)?;
        Ok(Self {
            kind,
            name: name.to_owned(),
        })
    }

    /// A public channel. Panics on an invalid name; use [`Channel::new`] for untrusted input.
    pub fn public(name: &str) -> Self {
        Self::new(ChannelKind::Public, name).expect("invalid public channel name")
    }

    /// A private channel. Panics on an invalid name; use [`Channel::new`] for untrusted input.
    pub fn private(name: &str) -> Self {
        Self::new(ChannelKind::Private, name).expect("invalid private channel name")
    }

    /// A presence channel. Panics on an invalid name; use [`Channel::new`] for untrusted input.
    pub fn presence(name: &str) -> Self {
        Self::new(ChannelKind::Presence, name).expect("invalid presence channel name")
    }

    /// The channel's kind.
    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// The name without the kind prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is a wildcard pattern (a `*` or `#` segment).
    pub fn is_wildcard(&self) -> bool {
        segments(&self.name).any(|s| s == "*" || s == "#")
    }

    /// Whether this pattern matches `other`.
    ///
    /// Segments are split on `.` and `:`; `*` matches exactly one segment and `#` zero or more.
    /// A wildcard is only ever public and never matches a private or presence channel. A
    /// channel without wildcards matches only itself.
    ///
    /// ```
    /// use relayport_core::Channel;
    /// let p: Channel = "agent.*.status".parse().unwrap();
    /// assert!(p.matches(&"agent.7.status".parse().unwrap()));
    /// assert!(!p.matches(&"agent.7.x.status".parse().unwrap()));
    /// let all: Channel = "agent.#".parse().unwrap();
    /// assert!(all.matches(&"agent".parse().unwrap()));
    /// assert!(all.matches(&"agent.7.status".parse().unwrap()));
    /// assert!(!all.matches(&"private:agent.7".parse().unwrap()));
    /// ```
    ///
    /// Matching is linear in (pattern segments × name segments): see
    /// [`Channel::match_with_steps`].
    pub fn matches(&self, other: &Channel) -> bool {
        self.match_with_steps(other).0
    }

    /// [`Channel::matches`], and the number of steps the matcher took.
    ///
    /// The matcher walks the name once, keeping the set of pattern positions reachable so far
    /// (consecutive `#` collapsed into one), so it never takes more than
    /// `(pattern segments + 2) × (name segments + 1)` steps, whatever the input. This count
    /// is what tests bound instead of timing the match.
    pub fn match_with_steps(&self, other: &Channel) -> (bool, usize) {
        if !self.is_wildcard() {
            return (self == other, 1);
        }
        if other.kind != ChannelKind::Public || other.is_wildcard() {
            return (false, 1);
        }
        let pattern = collapsed_pattern(&self.name);
        let mut steps = 0;
        let matched = match_segments(&pattern, segments(&other.name), &mut steps);
        (matched, steps)
    }
}

fn segments(name: &str) -> impl Iterator<Item = &str> {
    name.split(['.', ':'])
}

/// A pattern's segments with runs of `#` collapsed into one `#` (`#.#` matches what `#` does).
fn collapsed_pattern(name: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for seg in segments(name) {
        if seg == "#" && out.last() == Some(&"#") {
            continue;
        }
        out.push(seg);
    }
    out
}

/// Matches by walking `name` once over the set of reachable pattern positions (a
/// nondeterministic automaton without backtracking): `reach[i]` means `pattern[..i]` matches
/// the name segments read so far. Every step is one (position, segment) pair.
fn match_segments<'a>(
    pattern: &[&str],
    name: impl Iterator<Item = &'a str>,
    steps: &mut usize,
) -> bool {
    let len = pattern.len();
    let mut reach = vec![false; len + 1];
    let mut next = vec![false; len + 1];
    reach[0] = true;
    close_over_hashes(pattern, &mut reach, steps);
    for seg in name {
        next.iter_mut().for_each(|r| *r = false);
        let mut any = false;
        for (i, p) in pattern.iter().enumerate() {
            *steps += 1;
            if !reach[i] {
                continue;
            }
            match *p {
                "#" => next[i] = true,
                "*" => next[i + 1] = true,
                lit => next[i + 1] |= lit == seg,
            }
            any = true;
        }
        *steps += 1;
        std::mem::swap(&mut reach, &mut next);
        if !any {
            return false;
        }
        close_over_hashes(pattern, &mut reach, steps);
    }
    reach[len]
}

/// A reachable `#` may also match zero segments: whatever follows it is reachable too.
fn close_over_hashes(pattern: &[&str], reach: &mut [bool], steps: &mut usize) {
    for (i, p) in pattern.iter().enumerate() {
        if *p == "#" && reach[i] {
            reach[i + 1] = true;
        }
    }
    *steps += 1;
}

fn validate_name(kind: ChannelKind, name: &str) -> Result<()> {
    let full = || format!("{}:{}", kind.prefix(), name);
    if name.is_empty() {
        return Err(RealtimeError::invalid_channel(full(), "the name is empty"));
    }
    if name.len() > MAX_CHANNEL_NAME_LEN {
        return Err(RealtimeError::invalid_channel(
            full(),
            format!(
                "the name is {} bytes long; the limit is {MAX_CHANNEL_NAME_LEN}",
                name.len()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-=@,.;:*#".contains(*c)))
    {
        return Err(RealtimeError::invalid_channel(
            full(),
            format!(
                "character {bad:?} is not allowed (allowed: ASCII letters, digits and _ - = @ , . ; :)"
            ),
        ));
    }
    if kind == ChannelKind::Public
        && let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(**p))
    {
        return Err(RealtimeError::invalid_channel(
            full(),
            format!(
                "a public name may not begin with the kind prefix {prefix:?} (it would read as \
                 another channel); write private:, presence: or public: once, in front"
            ),
        ));
    }
    let mut wildcards = 0;
    let mut previous = "";
    for seg in segments(name) {
        if (seg == "*" || seg == "#") && !(seg == "#" && previous == "#") {
            wildcards += 1;
        }
        previous = seg;
        if (seg.contains('*') || seg.contains('#')) && seg != "*" && seg != "#" {
            return Err(RealtimeError::invalid_channel(
                full(),
                format!("wildcard segment {seg:?} must be exactly `*` or `#`"),
            ));
        }
        if (seg == "*" || seg == "#") && kind != ChannelKind::Public {
            return Err(RealtimeError::invalid_channel(
                full(),
                "wildcards are only allowed on public channels",
            ));
        }
    }
    if wildcards > MAX_WILDCARD_SEGMENTS {
        return Err(RealtimeError::invalid_channel(
            full(),
            format!(
                "the pattern has {wildcards} wildcard segments; the limit is \
                 {MAX_WILDCARD_SEGMENTS} (limit max_wildcard_segments)"
            ),
        ));
    }
    Ok(())
}

impl fmt::Debug for Channel {
    /// `Channel("private:room")`: the neutral name, readable in logs and events.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel(\"{self}\")")
    }
}

impl fmt::Display for Channel {
    /// Public channels print without prefix; private and presence channels with theirs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ChannelKind::Public => f.write_str(&self.name),
            kind => write!(f, "{}:{}", kind.prefix(), self.name),
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = RealtimeError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for Channel {
    type Error = RealtimeError;
    fn try_from(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Channel {
    type Error = RealtimeError;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl TryFrom<&String> for Channel {
    type Error = RealtimeError;
    fn try_from(s: &String) -> Result<Self> {
        Self::parse(s)
    }
}

/// Anything that names a channel: a [`Channel`], or a string parsed with [`Channel::parse`].
pub trait IntoChannel {
    /// The channel, or `InvalidChannel`.
    fn into_channel(self) -> Result<Channel>;
}

impl IntoChannel for Channel {
    fn into_channel(self) -> Result<Channel> {
        Ok(self)
    }
}

impl IntoChannel for &Channel {
    fn into_channel(self) -> Result<Channel> {
        Ok(self.clone())
    }
}

impl IntoChannel for &str {
    fn into_channel(self) -> Result<Channel> {
        Channel::parse(self)
    }
}

impl IntoChannel for String {
    fn into_channel(self) -> Result<Channel> {
        Channel::parse(&self)
    }
}

impl IntoChannel for &String {
    fn into_channel(self) -> Result<Channel> {
        Channel::parse(self)
    }
}

impl Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Channel::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn prefixes_set_the_kind() {
        let cases = [
            ("feed", ChannelKind::Public, "feed"),
            ("public:feed", ChannelKind::Public, "feed"),
            ("private:user:123", ChannelKind::Private, "user:123"),
            ("presence:room:456", ChannelKind::Presence, "room:456"),
            ("other:thing", ChannelKind::Public, "other:thing"),
        ];
        for (input, kind, name) in cases {
            let ch = Channel::parse(input).unwrap();
            assert_eq!((ch.kind(), ch.name()), (kind, name), "{input}");
        }
        assert_eq!(
            Channel::parse("private:a").unwrap().to_string(),
            "private:a"
        );
        assert_eq!(Channel::parse("public:a").unwrap().to_string(), "a");
    }

    #[test]
    fn invalid_names_are_refused_with_a_reason() {
        for bad in [
            "",
            "private:",
            "presence:",
            "public:",
            "a b",
            "naïve",
            "a/b",
            "a.*x",
            "private:a.*",
            "presence:#",
        ] {
            let err = Channel::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidChannel, "{bad:?}");
        }
        let err = Channel::parse("a b").unwrap_err();
        assert!(err.to_string().contains("' '"), "{err}");
    }

    #[test]
    fn length_limit_at_and_past() {
        let at = "a".repeat(MAX_CHANNEL_NAME_LEN);
        assert!(Channel::parse(&format!("private:{at}")).is_ok());
        let past = "a".repeat(MAX_CHANNEL_NAME_LEN + 1);
        let err = Channel::parse(&format!("private:{past}")).unwrap_err();
        assert!(err.to_string().contains("165 bytes"), "{err}");
    }

    #[test]
    fn wildcard_matching() {
        let p = |s: &str| Channel::parse(s).unwrap();
        assert!(p("a.*.c").matches(&p("a.b.c")));
        assert!(p("a.*.c").matches(&p("a:b:c")));
        assert!(!p("a.*.c").matches(&p("a.c")));
        assert!(p("a.#.c").matches(&p("a.c")));
        assert!(p("a.#.c").matches(&p("a.b.b.c")));
        assert!(!p("a.#.c").matches(&p("a.b.d")));
        assert!(p("#").matches(&p("anything.at.all")));
        assert!(!p("#").matches(&p("private:x")));
        assert!(!p("#").matches(&p("presence:x")));
        assert!(
            !p("a.*").matches(&p("a.#")),
            "patterns never match patterns"
        );
        assert!(p("a.b").matches(&p("a.b")));
        assert!(!p("a.b").matches(&p("a.c")));
    }

    #[test]
    fn a_public_name_cannot_alias_another_kind() {
        for bad in [
            "public:private:secret",
            "public:presence:room",
            "public:public:x",
            "private:x",
        ] {
            // `private:x` itself is fine; as a bare public name it is not.
            if bad == "private:x" {
                let err = Channel::new(ChannelKind::Public, bad).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidChannel);
                continue;
            }
            let err = Channel::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidChannel, "{bad:?}");
            assert!(err.to_string().contains("kind prefix"), "{err}");
        }
        // Prefix words that are not followed by a colon are ordinary public names.
        for ok in [
            "private",
            "private.x",
            "presence_room",
            "publicity:x",
            "x:private:y",
        ] {
            let ch = Channel::parse(ok).unwrap();
            assert_eq!((ch.kind(), ch.name()), (ChannelKind::Public, ok));
        }
        assert_ne!(
            Channel::parse("private:secret").unwrap().to_string(),
            Channel::new(ChannelKind::Public, "secret")
                .unwrap()
                .to_string()
        );
    }

    /// Property: distinct (kind, name) pairs never share text, and the text parses back to
    /// the same channel. Checked exhaustively over every name of up to five tokens drawn
    /// from the pieces an attacker would combine (kind words, separators, wildcards).
    #[test]
    fn distinct_kind_name_pairs_never_share_text() {
        const TOKENS: [&str; 9] = [
            "private", "presence", "public", ":", ".", "a", "#", "*", "private:",
        ];
        let kinds = [
            ChannelKind::Public,
            ChannelKind::Private,
            ChannelKind::Presence,
        ];
        let mut seen: std::collections::HashMap<String, (ChannelKind, String)> =
            std::collections::HashMap::new();
        let mut names = vec![String::new()];
        let mut checked = 0;
        for _ in 0..5 {
            let mut longer = Vec::with_capacity(names.len() * TOKENS.len());
            for n in &names {
                for t in TOKENS {
                    longer.push(format!("{n}{t}"));
                }
            }
            for name in &longer {
                for kind in kinds {
                    let Ok(ch) = Channel::new(kind, name) else {
                        continue;
                    };
                    checked += 1;
                    let text = ch.to_string();
                    if let Some(prev) = seen.insert(text.clone(), (kind, name.clone())) {
                        assert_eq!(prev, (kind, name.clone()), "both print as {text:?}");
                    }
                    let back = Channel::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert_eq!(back, ch, "{text:?} parses as another channel");
                }
            }
            names = longer;
        }
        assert!(checked > 10_000, "only {checked} channels were checked");
    }

    #[test]
    fn wildcard_segments_limit_at_and_past() {
        let at = vec!["*"; MAX_WILDCARD_SEGMENTS].join(".");
        assert!(Channel::parse(&at).is_ok());
        let past = vec!["*"; MAX_WILDCARD_SEGMENTS + 1].join(".");
        let err = Channel::parse(&past).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidChannel);
        assert!(err.to_string().contains("max_wildcard_segments"), "{err}");
        // Consecutive `#` collapse, so they count once.
        let hashes = format!("{}zz", "#.".repeat(81));
        assert!(Channel::parse(&hashes).is_ok());
    }

    #[test]
    fn matching_is_linear_in_pattern_times_name() {
        let bound = |p: &Channel, n: &Channel| {
            let ps = p.name().split(['.', ':']).count();
            let ns = n.name().split(['.', ':']).count();
            (ps + 2) * (ns + 1)
        };
        // The pattern that froze the old backtracking matcher: 81 `#` then a miss.
        let p = Channel::parse(&format!("{}zz", "#.".repeat(81))).unwrap();
        let n = Channel::parse("a.b.c.d.e.f.g").unwrap();
        let (matched, steps) = p.match_with_steps(&n);
        assert!(!matched);
        assert!(steps <= 4 * 8, "{steps} steps for a collapsed `#.zz`");
        // The worst shape allowed: every other segment a `#`, a long name that misses at the
        // end. Backtracking would take ~ n^16 steps; this takes at most (p+2)(n+1).
        let p = Channel::parse(&format!("{}z", "#.a.".repeat(MAX_WILDCARD_SEGMENTS))).unwrap();
        let n = Channel::parse(&vec!["a"; 80].join(".")).unwrap();
        let (matched, steps) = p.match_with_steps(&n);
        assert!(!matched);
        assert!(steps <= bound(&p, &n), "{steps} > {}", bound(&p, &n));
        let hit = Channel::parse(&format!("{}.z", vec!["a"; 79].join("."))).unwrap();
        let (matched, steps) = p.match_with_steps(&hit);
        assert!(matched);
        assert!(steps <= bound(&p, &hit));
    }

    #[test]
    fn collapsed_hashes_match_like_one() {
        let p = |s: &str| Channel::parse(s).unwrap();
        for name in ["a", "a.b", "x.a.y", "a.b.c.d"] {
            assert_eq!(
                p("#.#.a.#.#").matches(&p(name)),
                p("#.a.#").matches(&p(name)),
                "{name}"
            );
        }
        assert!(p("*.#.*").matches(&p("a.b")));
        assert!(!p("*.#.*").matches(&p("a")));
        assert!(p("a.#.#").matches(&p("a")));
    }

    #[test]
    fn serde_round_trip() {
        let ch = Channel::parse("presence:room:1").unwrap();
        let json = serde_json::to_string(&ch).unwrap();
        assert_eq!(json, "\"presence:room:1\"");
        assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), ch);
        assert!(serde_json::from_str::<Channel>("\"a b\"").is_err());
    }
}

//! Provider-neutral channel names: `public:feed`, `private:user:123`, `presence:room:456`.
//!
//! The prefix sets the [`ChannelKind`]; a name without a known prefix is public. Names are
//! validated once, here, so that every provider starts from the same portable alphabet:
//! ASCII letters and digits and `_ - = @ , . ; :`, at most [`MAX_CHANNEL_NAME_LEN`] bytes after
//! the prefix. Public channels may also be wildcard patterns (see [`Channel::matches`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{RealtimeError, Result};

/// The longest channel name accepted, in bytes, not counting the kind prefix.
pub const MAX_CHANNEL_NAME_LEN: usize = 164;

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
    pub fn matches(&self, other: &Channel) -> bool {
        if !self.is_wildcard() {
            return self == other;
        }
        if other.kind != ChannelKind::Public || other.is_wildcard() {
            return false;
        }
        let pattern: Vec<&str> = segments(&self.name).collect();
        let name: Vec<&str> = segments(&other.name).collect();
        match_segments(&pattern, &name)
    }
}

fn segments(name: &str) -> impl Iterator<Item = &str> {
    name.split(['.', ':'])
}

fn match_segments(pattern: &[&str], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((&"#", rest)) => (0..=name.len()).any(|skip| match_segments(rest, &name[skip..])),
        Some((&"*", rest)) => !name.is_empty() && match_segments(rest, &name[1..]),
        Some((seg, rest)) => name.first() == Some(seg) && match_segments(rest, &name[1..]),
    }
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
    for seg in segments(name) {
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
    fn serde_round_trip() {
        let ch = Channel::parse("presence:room:1").unwrap();
        let json = serde_json::to_string(&ch).unwrap();
        assert_eq!(json, "\"presence:room:1\"");
        assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), ch);
        assert!(serde_json::from_str::<Channel>("\"a b\"").is_err());
    }
}

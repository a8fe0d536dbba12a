//! Ably capabilities: `{"resource pattern": ["operation", …]}`, matching and intersection.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// An operation a capability grants on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Receive messages (and presence events).
    Subscribe,
    /// Publish messages.
    Publish,
    /// Enter, update and leave presence.
    Presence,
    /// Read history over REST.
    History,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Publish => "publish",
            Self::Presence => "presence",
            Self::History => "history",
        }
    }
}

/// A parsed capability: resource patterns to operation sets (`*` = all).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capability(pub BTreeMap<String, BTreeSet<String>>);

impl Capability {
    /// Everything on every channel (`{"*":["*"]}`).
    pub fn all() -> Self {
        Self::from_pairs([("*", &["*"][..])])
    }

    /// From `(pattern, operations)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [&'a str])>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(r, ops)| (r.to_owned(), ops.iter().map(|o| (*o).to_owned()).collect()))
                .collect(),
        )
    }

    /// Parses the JSON object form (or a string holding it, as TokenRequests carry it).
    pub fn parse(v: &Value) -> Result<Self, String> {
        let owned;
        let v = match v {
            Value::String(s) => {
                owned = serde_json::from_str::<Value>(s)
                    .map_err(|e| format!("capability is not JSON: {e}"))?;
                &owned
            }
            other => other,
        };
        let obj = v
            .as_object()
            .ok_or_else(|| "capability must be a JSON object".to_owned())?;
        let mut out = BTreeMap::new();
        for (resource, ops) in obj {
            let ops = ops
                .as_array()
                .ok_or_else(|| format!("capability of `{resource}` must be an array"))?;
            let mut set = BTreeSet::new();
            for op in ops {
                let op = op
                    .as_str()
                    .ok_or_else(|| format!("capability of `{resource}`: operations are strings"))?;
                set.insert(op.to_owned());
            }
            if set.is_empty() {
                return Err(format!("capability of `{resource}` grants nothing"));
            }
            out.insert(resource.clone(), set);
        }
        if out.is_empty() {
            return Err("capability grants nothing".into());
        }
        Ok(Self(out))
    }

    /// The canonical JSON string (sorted keys and operations, no whitespace).
    pub fn to_json_string(&self) -> String {
        let v: serde_json::Map<String, Value> = self
            .0
            .iter()
            .map(|(r, ops)| {
                (
                    r.clone(),
                    Value::from(ops.iter().cloned().collect::<Vec<_>>()),
                )
            })
            .collect();
        Value::Object(v).to_string()
    }

    fn ops_for(&self, channel: &str) -> BTreeSet<String> {
        self.0
            .iter()
            .filter(|(pattern, _)| matches_pattern(pattern, channel))
            .flat_map(|(_, ops)| ops.iter().cloned())
            .collect()
    }

    /// Whether `op` is granted on `channel`.
    pub fn allows(&self, channel: &str, op: Op) -> bool {
        let ops = self.ops_for(channel);
        ops.contains("*") || ops.contains(op.name())
    }

    /// Whether anything at all is granted on `channel` (what attaching needs).
    pub fn covers(&self, channel: &str) -> bool {
        !self.ops_for(channel).is_empty()
    }

    /// What a token asking for `self` gets from a key holding `key`: each requested resource
    /// keeps the operations the key grants on it (Ably intersects rather than refuses).
    /// `None` when nothing is left.
    pub fn intersect(&self, key: &Capability) -> Option<Capability> {
        let mut out = BTreeMap::new();
        for (resource, ops) in &self.0 {
            let granted: BTreeSet<String> = key
                .0
                .iter()
                .filter(|(kp, _)| pattern_covers(kp, resource))
                .flat_map(|(_, o)| o.iter().cloned())
                .collect();
            let kept: BTreeSet<String> = if granted.contains("*") {
                ops.clone()
            } else if ops.contains("*") {
                granted
            } else {
                ops.intersection(&granted).cloned().collect()
            };
            if !kept.is_empty() {
                out.insert(resource.clone(), kept);
            }
        }
        (!out.is_empty()).then_some(Capability(out))
    }
}

/// Whether a resource pattern matches a channel name: `*` (all), `ns:*` / `prefix*`
/// (prefix), or the exact name.
pub fn matches_pattern(pattern: &str, channel: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => pattern == channel,
    }
}

/// Whether key pattern `kp` covers everything the requested pattern `rp` names.
fn pattern_covers(kp: &str, rp: &str) -> bool {
    match kp.strip_suffix('*') {
        Some(prefix) => rp.starts_with(prefix),
        None => kp == rp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_and_ops() {
        let c = Capability::parse(&json!({"chat:*": ["subscribe"], "news": ["*"]})).unwrap();
        assert!(c.allows("chat:a", Op::Subscribe));
        assert!(!c.allows("chat:a", Op::Publish));
        assert!(c.allows("news", Op::Presence));
        assert!(!c.covers("newsx"));
        assert!(!c.covers("other"));
        assert!(Capability::all().allows("x:y", Op::Publish));
    }

    #[test]
    fn intersection_keeps_what_the_key_grants() {
        let key = Capability::parse(&json!({"chat:*": ["subscribe", "publish"]})).unwrap();
        let asked = Capability::parse(&json!(r#"{"chat:a":["*"],"other":["subscribe"]}"#)).unwrap();
        let got = asked.intersect(&key).unwrap();
        assert_eq!(
            got.to_json_string(),
            r#"{"chat:a":["publish","subscribe"]}"#
        );
        let none = Capability::parse(&json!({"other": ["*"]})).unwrap();
        assert_eq!(none.intersect(&key), None);
    }

    #[test]
    fn bad_capabilities_are_errors() {
        assert!(Capability::parse(&json!([1])).is_err());
        assert!(Capability::parse(&json!({"a": "b"})).is_err());
        assert!(Capability::parse(&json!({"a": []})).is_err());
        assert!(Capability::parse(&json!("not json")).is_err());
    }
}

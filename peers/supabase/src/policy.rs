//! The channel policy standing in for Postgres RLS on `realtime.messages`: a rule over the
//! JWT's claims and the channel name, asked for read (join, receive) and write (broadcast,
//! track) per extension, for **private** channels and private REST messages only (public
//! channels need nothing but a valid token, as on the real server). A `service_role` token
//! bypasses it, as it bypasses RLS.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

/// What the client wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `SELECT` on `realtime.messages`: join, receive.
    Read,
    /// `INSERT` on `realtime.messages`: broadcast, track.
    Write,
}

/// Which `realtime.messages.extension` the probe row has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// Broadcast messages.
    Broadcast,
    /// Presence.
    Presence,
}

/// One policy question, as `realtime.topic()` and `request.jwt.claims` would answer it.
#[derive(Debug)]
pub struct Access<'a> {
    /// The channel name without `realtime:` (`realtime.topic()`).
    pub topic: &'a str,
    /// The verified JWT claims.
    pub claims: &'a Map<String, Value>,
    /// The extension asked about.
    pub extension: Extension,
    /// Read or write.
    pub action: Action,
}

impl Access<'_> {
    /// A string claim.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

type Rule = dyn Fn(&Access<'_>) -> bool + Send + Sync;

/// A claims-based channel policy.
#[derive(Clone)]
pub struct Policy(Arc<Rule>);

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Policy(..)")
    }
}

impl Default for Policy {
    /// [`Policy::authenticated`].
    fn default() -> Self {
        Policy::authenticated()
    }
}

impl Policy {
    /// A rule of your own.
    pub fn new(rule: impl Fn(&Access<'_>) -> bool + Send + Sync + 'static) -> Self {
        Policy(Arc::new(rule))
    }

    /// The policy Supabase's docs start from: any `authenticated` role may read and write.
    pub fn authenticated() -> Self {
        Policy::new(|a| a.claim("role") == Some("authenticated"))
    }

    /// Everyone with a valid token (any role).
    pub fn allow_all() -> Self {
        Policy::new(|_| true)
    }

    /// No one but `service_role`.
    pub fn deny_all() -> Self {
        Policy::new(|_| false)
    }

    /// Scoped tokens: `authenticated` and the claim `claim` names this channel (a string
    /// equal to the topic, or an array containing it).
    pub fn claim_names_topic(claim: impl Into<String>) -> Self {
        let claim = claim.into();
        Policy::new(move |a| {
            a.claim("role") == Some("authenticated")
                && match a.claims.get(&claim) {
                    Some(Value::String(s)) => s == a.topic,
                    Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(a.topic)),
                    _ => false,
                }
        })
    }

    /// The decision: `service_role` always passes, everyone else asks the rule.
    pub fn allows(&self, access: &Access<'_>) -> bool {
        access.claim("role") == Some("service_role") || (self.0)(access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ask(p: &Policy, claims: Value, topic: &str) -> bool {
        let claims = claims.as_object().cloned().unwrap_or_default();
        p.allows(&Access {
            topic,
            claims: &claims,
            extension: Extension::Broadcast,
            action: Action::Read,
        })
    }

    #[test]
    fn rules() {
        let scoped = Policy::claim_names_topic("channel");
        let user = json!({"role": "authenticated", "channel": "room-1"});
        assert!(ask(&scoped, user.clone(), "room-1"));
        assert!(!ask(&scoped, user, "room-2"));
        assert!(ask(
            &scoped,
            json!({"role": "authenticated", "channel": ["a", "room-2"]}),
            "room-2"
        ));
        assert!(!ask(&scoped, json!({"role": "anon", "channel": "r"}), "r"));
        assert!(ask(
            &Policy::deny_all(),
            json!({"role": "service_role"}),
            "r"
        ));
        assert!(!ask(
            &Policy::deny_all(),
            json!({"role": "authenticated"}),
            "r"
        ));
        assert!(ask(
            &Policy::default(),
            json!({"role": "authenticated"}),
            "r"
        ));
        assert!(!ask(&Policy::default(), json!({"role": "anon"}), "r"));
    }
}

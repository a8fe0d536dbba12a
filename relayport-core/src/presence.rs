//! Presence members, the changes providers report, and the roster the core keeps per channel.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::channel::Channel;

/// One member of a presence channel: a user (not a connection; a user with two connections is
/// one member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct PresenceMember {
    /// The user's (client's) id.
    pub id: String,
    /// The member's data (user info).
    #[serde(default)]
    pub data: Value,
}

impl PresenceMember {
    /// A member with an id and data.
    pub fn new(id: impl Into<String>, data: Value) -> Self {
        Self {
            id: id.into(),
            data,
        }
    }
}

/// What a provider reports about a presence channel.
#[derive(Debug, Clone, PartialEq)]
pub enum PresenceChange {
    /// The full member list (on subscribe, or a resync).
    Snapshot(Vec<PresenceMember>),
    /// A member joined.
    Joined(PresenceMember),
    /// A member changed its data.
    Updated(PresenceMember),
    /// A member left.
    Left(PresenceMember),
}

/// What happened to a member, as presence streams yield it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceAction {
    /// The member joined.
    Joined,
    /// The member's data changed.
    Updated,
    /// The member left.
    Left,
}

/// A presence event on a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceEvent {
    /// The channel.
    pub channel: Channel,
    /// What happened.
    pub action: PresenceAction,
    /// The member it happened to (for `Left`, the member as last known).
    pub member: PresenceMember,
}

/// The members of one channel as the core knows them, kept from provider reports.
///
/// A snapshot is folded in as a diff, so a resync after a reconnect yields only the joins,
/// updates and leaves that really happened while the link was down.
#[derive(Debug, Default, Clone)]
pub struct Roster {
    members: BTreeMap<String, PresenceMember>,
}

impl Roster {
    /// The members, ordered by id.
    pub fn members(&self) -> Vec<PresenceMember> {
        self.members.values().cloned().collect()
    }

    /// Forgets everyone (on leaving the channel).
    pub fn clear(&mut self) {
        self.members.clear();
    }

    /// Applies a change and returns the events it amounts to.
    pub fn apply(&mut self, change: PresenceChange) -> Vec<(PresenceAction, PresenceMember)> {
        match change {
            PresenceChange::Joined(m) => match self.members.insert(m.id.clone(), m.clone()) {
                None => vec![(PresenceAction::Joined, m)],
                Some(old) if old.data != m.data => vec![(PresenceAction::Updated, m)],
                Some(_) => vec![],
            },
            PresenceChange::Updated(m) => {
                let action = if self.members.contains_key(&m.id) {
                    PresenceAction::Updated
                } else {
                    PresenceAction::Joined
                };
                self.members.insert(m.id.clone(), m.clone());
                vec![(action, m)]
            }
            PresenceChange::Left(m) => match self.members.remove(&m.id) {
                Some(known) => vec![(PresenceAction::Left, known)],
                None => vec![],
            },
            PresenceChange::Snapshot(list) => {
                let mut next: BTreeMap<String, PresenceMember> = BTreeMap::new();
                for m in list {
                    next.insert(m.id.clone(), m);
                }
                let mut events = Vec::new();
                for (id, old) in &self.members {
                    if !next.contains_key(id) {
                        events.push((PresenceAction::Left, old.clone()));
                    }
                }
                for (id, m) in &next {
                    match self.members.get(id) {
                        None => events.push((PresenceAction::Joined, m.clone())),
                        Some(old) if old.data != m.data => {
                            events.push((PresenceAction::Updated, m.clone()))
                        }
                        Some(_) => {}
                    }
                }
                self.members = next;
                events
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(id: &str, v: i64) -> PresenceMember {
        PresenceMember::new(id, json!(v))
    }

    #[test]
    fn joins_updates_leaves() {
        let mut r = Roster::default();
        assert_eq!(
            r.apply(PresenceChange::Joined(m("a", 1))),
            vec![(PresenceAction::Joined, m("a", 1))]
        );
        assert_eq!(
            r.apply(PresenceChange::Joined(m("a", 1))),
            vec![],
            "a second connection of one user is not a second join"
        );
        assert_eq!(
            r.apply(PresenceChange::Updated(m("a", 2))),
            vec![(PresenceAction::Updated, m("a", 2))]
        );
        assert_eq!(
            r.apply(PresenceChange::Left(m("a", 0))),
            vec![(PresenceAction::Left, m("a", 2))]
        );
        assert_eq!(r.apply(PresenceChange::Left(m("a", 0))), vec![]);
    }

    #[test]
    fn snapshot_is_folded_in_as_a_diff() {
        let mut r = Roster::default();
        r.apply(PresenceChange::Snapshot(vec![m("a", 1), m("b", 1)]));
        let events = r.apply(PresenceChange::Snapshot(vec![m("b", 2), m("c", 1)]));
        assert_eq!(
            events,
            vec![
                (PresenceAction::Left, m("a", 1)),
                (PresenceAction::Updated, m("b", 2)),
                (PresenceAction::Joined, m("c", 1)),
            ]
        );
        assert_eq!(r.members(), vec![m("b", 2), m("c", 1)]);
    }
}

//! A presence channel's members, keyed by user id: a user with several connections is one
//! member, who joins with the first connection and leaves with the last.

use std::collections::{BTreeMap, BTreeSet};

use relayport_core::PresenceMember;
use serde_json::Value;

use crate::protocol::PresenceAction;

/// A connection's id inside the broker.
pub type ConnId = u64;

#[derive(Debug)]
struct Member {
    data: Value,
    conns: BTreeSet<ConnId>,
}

/// The members of one presence channel.
#[derive(Debug, Default)]
pub struct PresenceSet {
    members: BTreeMap<String, Member>,
}

/// A change to broadcast.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceChange {
    /// What happened.
    pub action: PresenceAction,
    /// The member concerned.
    pub member: PresenceMember,
}

impl PresenceSet {
    /// Enters `conn` as `user_id`. A first connection is a join; a later one with different
    /// data is an update; otherwise nothing changes for others.
    pub fn enter(&mut self, conn: ConnId, user_id: &str, data: Value) -> Option<PresenceChange> {
        match self.members.get_mut(user_id) {
            None => {
                self.members.insert(
                    user_id.to_owned(),
                    Member {
                        data: data.clone(),
                        conns: BTreeSet::from([conn]),
                    },
                );
                Some(PresenceChange {
                    action: PresenceAction::Join,
                    member: PresenceMember::new(user_id, data),
                })
            }
            Some(m) => {
                m.conns.insert(conn);
                if m.data != data {
                    m.data = data.clone();
                    Some(PresenceChange {
                        action: PresenceAction::Update,
                        member: PresenceMember::new(user_id, data),
                    })
                } else {
                    None
                }
            }
        }
    }

    /// Changes the data of the member `conn` entered as. `None` if the connection is not a
    /// member (the caller reports it) or nothing changed.
    pub fn update(&mut self, conn: ConnId, user_id: &str, data: Value) -> Option<PresenceChange> {
        let m = self.members.get_mut(user_id)?;
        if !m.conns.contains(&conn) || m.data == data {
            return None;
        }
        m.data = data.clone();
        Some(PresenceChange {
            action: PresenceAction::Update,
            member: PresenceMember::new(user_id, data),
        })
    }

    /// Whether `conn` has entered as `user_id`.
    pub fn is_entered(&self, conn: ConnId, user_id: &str) -> bool {
        self.members
            .get(user_id)
            .is_some_and(|m| m.conns.contains(&conn))
    }

    /// Removes `conn`; the member leaves when it was the last connection.
    pub fn leave(&mut self, conn: ConnId, user_id: &str) -> Option<PresenceChange> {
        let m = self.members.get_mut(user_id)?;
        if !m.conns.remove(&conn) || !m.conns.is_empty() {
            return None;
        }
        let m = self.members.remove(user_id)?;
        Some(PresenceChange {
            action: PresenceAction::Leave,
            member: PresenceMember::new(user_id, m.data),
        })
    }

    /// The current members, ordered by user id.
    pub fn members(&self) -> Vec<PresenceMember> {
        self.members
            .iter()
            .map(|(id, m)| PresenceMember::new(id.clone(), m.data.clone()))
            .collect()
    }

    /// The number of members (users, not connections).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn two_connections_of_one_user_are_one_member() {
        let mut p = PresenceSet::default();
        let join = p.enter(1, "u1", json!({"n": 1})).map(|c| c.action);
        assert_eq!(join, Some(PresenceAction::Join));
        assert_eq!(p.enter(2, "u1", json!({"n": 1})), None);
        assert_eq!(p.len(), 1);
        assert_eq!(p.leave(1, "u1"), None, "the second connection remains");
        assert_eq!(p.len(), 1);
        let left = p.leave(2, "u1").map(|c| c.action);
        assert_eq!(left, Some(PresenceAction::Leave));
        assert!(p.is_empty());
    }

    #[test]
    fn update_needs_membership_and_a_change() {
        let mut p = PresenceSet::default();
        assert_eq!(p.update(1, "u1", json!(1)), None);
        p.enter(1, "u1", json!(1));
        assert_eq!(p.update(1, "u1", json!(1)), None);
        assert_eq!(p.update(2, "u1", json!(2)), None, "conn 2 never entered");
        let up = p.update(1, "u1", json!(2)).map(|c| c.member.data);
        assert_eq!(up, Some(json!(2)));
        assert_eq!(p.members(), vec![PresenceMember::new("u1", json!(2))]);
    }
}

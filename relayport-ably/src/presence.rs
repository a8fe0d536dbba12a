//! The presence member map of one channel (`RTP2`) and multi-page SYNC (`RTP18`, `RTP19`),
//! turned into the core's [`PresenceChange`]s.

use std::collections::{BTreeMap, HashSet};

use relayport_core::{PresenceChange, PresenceMember};
use serde_json::Value;

use crate::protocol::presence_action;

/// One presence entry: a client on a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The client id (the member id the core sees).
    pub client_id: String,
    /// The connection.
    pub connection_id: String,
    /// The decoded data.
    pub data: Value,
}

/// The members of one channel, keyed by `connectionId:clientId` (`TP3h`).
#[derive(Debug, Default, Clone)]
pub struct PresenceMap {
    members: BTreeMap<String, Entry>,
    sync: Option<(String, HashSet<String>)>,
}

fn key(e: &Entry) -> String {
    format!("{}:{}", e.connection_id, e.client_id)
}

impl PresenceMap {
    /// The members as the core sees them: one per client id.
    pub fn members(&self) -> Vec<PresenceMember> {
        let mut by_client: BTreeMap<&str, &Entry> = BTreeMap::new();
        for e in self.members.values() {
            by_client.entry(&e.client_id).or_insert(e);
        }
        by_client
            .values()
            .map(|e| PresenceMember::new(e.client_id.clone(), e.data.clone()))
            .collect()
    }

    fn other_connection_of(&self, e: &Entry) -> Option<&Entry> {
        self.members
            .values()
            .find(|m| m.client_id == e.client_id && m.connection_id != e.connection_id)
    }

    /// Applies one presence message; returns the change to report.
    pub fn apply(&mut self, action: i64, entry: Entry) -> Option<PresenceChange> {
        if let Some((_, seen)) = &mut self.sync {
            seen.insert(key(&entry));
        }
        match action {
            presence_action::LEAVE | presence_action::ABSENT => {
                let removed = self.members.remove(&key(&entry))?;
                match self.other_connection_of(&removed) {
                    Some(other) => Some(PresenceChange::Updated(PresenceMember::new(
                        other.client_id.clone(),
                        other.data.clone(),
                    ))),
                    None => Some(PresenceChange::Left(PresenceMember::new(
                        removed.client_id,
                        removed.data,
                    ))),
                }
            }
            presence_action::ENTER | presence_action::PRESENT | presence_action::UPDATE => {
                let member = PresenceMember::new(entry.client_id.clone(), entry.data.clone());
                let known = self.other_connection_of(&entry).is_some()
                    || self.members.contains_key(&key(&entry));
                self.members.insert(key(&entry), entry);
                Some(if known || action == presence_action::UPDATE {
                    PresenceChange::Updated(member)
                } else {
                    PresenceChange::Joined(member)
                })
            }
            _ => None,
        }
    }

    /// Handles one SYNC page: `serial` is `<syncId>:<cursor>` (absent: a one-page sync).
    /// Returns the snapshot once the sync is complete (empty cursor).
    pub fn sync_page(
        &mut self,
        serial: Option<&str>,
        entries: Vec<(i64, Entry)>,
    ) -> Option<PresenceChange> {
        let (sync_id, cursor) = match serial.and_then(|s| s.split_once(':')) {
            Some((id, cursor)) => (id.to_owned(), cursor.to_owned()),
            None => (String::new(), String::new()),
        };
        if self.sync.as_ref().is_none_or(|(id, _)| *id != sync_id) {
            self.sync = Some((sync_id, HashSet::new()));
        }
        for (action, entry) in entries {
            let _ = self.apply(action, entry);
        }
        if !cursor.is_empty() {
            return None;
        }
        let (_, seen) = self.sync.take().unwrap_or_default();
        self.members.retain(|k, _| seen.contains(k));
        Some(PresenceChange::Snapshot(self.members()))
    }

    /// Forgets every member (an ATTACHED without HAS_PRESENCE, `RTP19a`).
    pub fn clear(&mut self) -> PresenceChange {
        self.members.clear();
        self.sync = None;
        PresenceChange::Snapshot(Vec::new())
    }

    /// Whether a sync is in progress.
    pub fn syncing(&self) -> bool {
        self.sync.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(conn: &str, client: &str, v: i64) -> Entry {
        Entry {
            client_id: client.into(),
            connection_id: conn.into(),
            data: json!(v),
        }
    }

    #[test]
    fn multi_page_sync_removes_members_not_seen() {
        let mut m = PresenceMap::default();
        m.apply(presence_action::ENTER, e("c0", "gone", 0));
        assert!(
            m.sync_page(Some("s1:cur"), vec![(1, e("c1", "bob", 1))])
                .is_none()
        );
        assert!(m.syncing());
        let snap = m
            .sync_page(Some("s1:"), vec![(1, e("c2", "carol", 2))])
            .unwrap();
        assert_eq!(
            snap,
            PresenceChange::Snapshot(vec![
                PresenceMember::new("bob", json!(1)),
                PresenceMember::new("carol", json!(2)),
            ])
        );
        assert!(!m.syncing());
    }

    #[test]
    fn a_client_on_two_connections_leaves_once() {
        let mut m = PresenceMap::default();
        assert!(matches!(
            m.apply(2, e("a", "u", 1)),
            Some(PresenceChange::Joined(_))
        ));
        assert!(matches!(
            m.apply(2, e("b", "u", 2)),
            Some(PresenceChange::Updated(_))
        ));
        assert!(matches!(
            m.apply(3, e("a", "u", 1)),
            Some(PresenceChange::Updated(_))
        ));
        assert!(matches!(
            m.apply(3, e("b", "u", 2)),
            Some(PresenceChange::Left(_))
        ));
        assert_eq!(m.apply(3, e("b", "u", 2)), None);
        assert_eq!(
            m.apply(42, e("b", "u", 2)),
            None,
            "unknown actions are ignored"
        );
    }
}

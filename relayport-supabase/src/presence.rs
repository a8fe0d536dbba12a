//! Phoenix presence bookkeeping: `presence_state` and `presence_diff` folded the way phoenix.js
//! (and so realtime-js) folds them, then reported as core [`PresenceChange`]s.
//!
//! The server keys presence by the channel's `presence.key`; each key holds one meta per
//! connection (`{"phx_ref": …, …user fields}`). The core sees one [`PresenceMember`] per key:
//! its id is the key and its data is the newest meta without `phx_ref`/`phx_ref_prev`.
//! `presence_state` becomes a [`PresenceChange::Snapshot`] (the core folds it as a diff); a
//! diff becomes `Joined` (key appeared), `Updated` (key's data changed, e.g. a re-track) or
//! `Left` (key's last meta left). Diffs that arrive before the first `presence_state` of a join
//! are buffered, as phoenix.js does.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use relayport_core::{PresenceChange, PresenceMember, RealtimeError};

/// One join or leave callback, as realtime-js reports it (metas in its public shape:
/// `phx_ref` renamed `presence_ref`, `phx_ref_prev` dropped).
#[derive(Debug, Clone, PartialEq)]
pub enum RawPresenceEvent {
    /// `{event: 'join', key, currentPresences, newPresences}`.
    Join {
        /// The presence key.
        key: String,
        /// The key's metas before the join.
        current: Vec<Value>,
        /// The joining metas.
        new: Vec<Value>,
    },
    /// `{event: 'leave', key, currentPresences, leftPresences}`.
    Leave {
        /// The presence key.
        key: String,
        /// The key's metas after the leave.
        current: Vec<Value>,
        /// The leaving metas.
        left: Vec<Value>,
    },
}

/// What one presence message amounted to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceUpdate {
    /// realtime-js's join/leave callbacks, in order.
    pub raw: Vec<RawPresenceEvent>,
    /// The changes for the core.
    pub changes: Vec<PresenceChange>,
    /// Whether realtime-js would fire `sync` (false while a diff is buffered).
    pub synced: bool,
    /// The state afterwards, in realtime-js's `presenceState()` shape.
    pub state: BTreeMap<String, Vec<Value>>,
}

type Metas = Vec<Map<String, Value>>;

/// The presence state of one joined channel.
#[derive(Debug, Clone, Default)]
pub struct PresenceState {
    state: BTreeMap<String, Metas>,
    synced: bool,
    pending: Vec<Value>,
}

fn phx_ref(meta: &Map<String, Value>) -> Option<&Value> {
    meta.get("phx_ref")
}

fn public_meta(meta: &Map<String, Value>) -> Value {
    let mut m = meta.clone();
    if let Some(r) = m.remove("phx_ref") {
        m.insert("presence_ref".into(), r);
    }
    m.remove("phx_ref_prev");
    Value::Object(m)
}

fn public_metas(metas: &Metas) -> Vec<Value> {
    metas.iter().map(public_meta).collect()
}

fn parse_presences(v: &Value, what: &str) -> Result<Vec<(String, Metas)>, RealtimeError> {
    let bad = |m: String| RealtimeError::Protocol(format!("{what}: {m}"));
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(Vec::new()),
        other => return Err(bad(format!("expected an object, got {other}"))),
    };
    let mut out = Vec::with_capacity(obj.len());
    for (key, entry) in obj {
        let metas = entry
            .get("metas")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("key `{key}` has no `metas` list")))?;
        let metas = metas
            .iter()
            .map(|m| {
                m.as_object()
                    .cloned()
                    .ok_or_else(|| bad(format!("a meta of `{key}` is not an object")))
            })
            .collect::<Result<Metas, _>>()?;
        out.push((key.clone(), metas));
    }
    Ok(out)
}

impl PresenceState {
    /// The state in realtime-js's `presenceState()` shape: key → metas.
    pub fn view(&self) -> BTreeMap<String, Vec<Value>> {
        self.state
            .iter()
            .map(|(k, m)| (k.clone(), public_metas(m)))
            .collect()
    }

    /// The members as the core sees them.
    pub fn members(&self) -> Vec<PresenceMember> {
        self.state.keys().filter_map(|k| self.member(k)).collect()
    }

    fn member(&self, key: &str) -> Option<PresenceMember> {
        let meta = self.state.get(key)?.last()?;
        let mut data = meta.clone();
        data.remove("phx_ref");
        data.remove("phx_ref_prev");
        Some(PresenceMember::new(key, Value::Object(data)))
    }

    /// Folds a `presence_state` payload.
    pub fn apply_state(&mut self, payload: &Value) -> Result<PresenceUpdate, RealtimeError> {
        let new_state = parse_presences(payload, "presence_state")?;
        let new_keys: Vec<&String> = new_state.iter().map(|(k, _)| k).collect();
        let mut joins = Vec::new();
        let mut leaves = Vec::new();
        for (key, metas) in &self.state {
            if !new_keys.contains(&key) {
                leaves.push((key.clone(), metas.clone()));
            }
        }
        for (key, new_metas) in &new_state {
            match self.state.get(key) {
                Some(cur) => {
                    let cur_refs: Vec<_> = cur.iter().filter_map(phx_ref).collect();
                    let new_refs: Vec<_> = new_metas.iter().filter_map(phx_ref).collect();
                    let joined: Metas = new_metas
                        .iter()
                        .filter(|m| phx_ref(m).is_none_or(|r| !cur_refs.contains(&r)))
                        .cloned()
                        .collect();
                    let left: Metas = cur
                        .iter()
                        .filter(|m| phx_ref(m).is_none_or(|r| !new_refs.contains(&r)))
                        .cloned()
                        .collect();
                    if !joined.is_empty() {
                        joins.push((key.clone(), joined));
                    }
                    if !left.is_empty() {
                        leaves.push((key.clone(), left));
                    }
                }
                None => joins.push((key.clone(), new_metas.clone())),
            }
        }
        self.synced = true;
        let mut update = self.sync_diff(joins, leaves);
        update.changes = vec![PresenceChange::Snapshot(self.members())];
        for diff in std::mem::take(&mut self.pending) {
            let more = self.apply_diff(&diff)?;
            update.raw.extend(more.raw);
            update.changes.extend(more.changes);
        }
        update.synced = true;
        update.state = self.view();
        Ok(update)
    }

    /// Folds a `presence_diff` payload (buffered until the first `presence_state`).
    pub fn apply_diff(&mut self, payload: &Value) -> Result<PresenceUpdate, RealtimeError> {
        let joins = parse_presences(
            payload.get("joins").unwrap_or(&Value::Null),
            "presence_diff joins",
        )?;
        let leaves = parse_presences(
            payload.get("leaves").unwrap_or(&Value::Null),
            "presence_diff leaves",
        )?;
        if !self.synced {
            self.pending.push(payload.clone());
            return Ok(PresenceUpdate::default());
        }
        Ok(self.sync_diff(joins, leaves))
    }

    fn sync_diff(
        &mut self,
        joins: Vec<(String, Metas)>,
        leaves: Vec<(String, Metas)>,
    ) -> PresenceUpdate {
        let mut touched: Vec<String> = Vec::new();
        let mut before: BTreeMap<String, Option<PresenceMember>> = BTreeMap::new();
        for key in joins.iter().chain(leaves.iter()).map(|(k, _)| k) {
            if !touched.contains(key) {
                touched.push(key.clone());
                before.insert(key.clone(), self.member(key));
            }
        }
        let mut raw = Vec::new();
        for (key, new_metas) in joins {
            let current = self.state.get(&key).cloned();
            let mut next = new_metas.clone();
            if let Some(cur) = &current {
                let joined_refs: Vec<_> = next.iter().filter_map(phx_ref).cloned().collect();
                let kept: Metas = cur
                    .iter()
                    .filter(|m| phx_ref(m).is_none_or(|r| !joined_refs.contains(r)))
                    .cloned()
                    .collect();
                next.splice(0..0, kept);
            }
            self.state.insert(key.clone(), next);
            raw.push(RawPresenceEvent::Join {
                key,
                current: current.as_ref().map(public_metas).unwrap_or_default(),
                new: public_metas(&new_metas),
            });
        }
        for (key, left_metas) in leaves {
            let Some(cur) = self.state.get_mut(&key) else {
                continue;
            };
            let refs: Vec<_> = left_metas.iter().filter_map(phx_ref).cloned().collect();
            cur.retain(|m| phx_ref(m).is_none_or(|r| !refs.contains(r)));
            let current = public_metas(cur);
            if cur.is_empty() {
                self.state.remove(&key);
            }
            raw.push(RawPresenceEvent::Leave {
                key,
                current,
                left: public_metas(&left_metas),
            });
        }
        let mut changes = Vec::new();
        for key in touched {
            let was = before.remove(&key).flatten();
            match (was, self.member(&key)) {
                (None, Some(now)) => changes.push(PresenceChange::Joined(now)),
                (Some(old), None) => changes.push(PresenceChange::Left(old)),
                (Some(old), Some(now)) if old.data != now.data => {
                    changes.push(PresenceChange::Updated(now))
                }
                _ => {}
            }
        }
        PresenceUpdate {
            raw,
            changes,
            synced: true,
            state: self.view(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_before_the_state_are_buffered() {
        let mut p = PresenceState::default();
        let diff = json!({"joins":{"a":{"metas":[{"phx_ref":"1","n":1}]}},"leaves":{}});
        let u = p.apply_diff(&diff).unwrap();
        assert!(!u.synced && u.changes.is_empty());
        let u = p.apply_state(&json!({})).unwrap();
        assert_eq!(
            u.changes,
            vec![
                PresenceChange::Snapshot(vec![]),
                PresenceChange::Joined(PresenceMember::new("a", json!({"n":1})))
            ]
        );
        assert_eq!(p.members().len(), 1);
    }

    #[test]
    fn a_second_connection_of_a_key_is_not_a_leave() {
        let mut p = PresenceState::default();
        p.apply_state(&json!({"a":{"metas":[{"phx_ref":"1","n":1},{"phx_ref":"2","n":1}]}}))
            .unwrap();
        let u = p
            .apply_diff(&json!({"joins":{},"leaves":{"a":{"metas":[{"phx_ref":"2","n":1}]}}}))
            .unwrap();
        assert!(u.changes.is_empty());
        let u = p
            .apply_diff(&json!({"joins":{},"leaves":{"a":{"metas":[{"phx_ref":"1","n":1}]}}}))
            .unwrap();
        assert_eq!(
            u.changes,
            vec![PresenceChange::Left(PresenceMember::new(
                "a",
                json!({"n":1})
            ))]
        );
    }

    #[test]
    fn a_retrack_is_an_update_and_the_last_meta_is_the_data() {
        let mut p = PresenceState::default();
        p.apply_state(&json!({"u1": {"metas": [{"phx_ref": "1", "name": "alice", "at": 0}]}}))
            .unwrap();
        let u = p
            .apply_diff(&json!({
                "joins": {"u1": {"metas": [{"phx_ref": "2", "phx_ref_prev": "1", "name": "alice", "at": 5}]},
                          "u2": {"metas": [{"phx_ref": "3", "name": "bob"}]}},
                "leaves": {"u1": {"metas": [{"phx_ref": "1", "name": "alice", "at": 0}]}}
            }))
            .unwrap();
        assert_eq!(
            u.changes,
            vec![
                PresenceChange::Updated(PresenceMember::new(
                    "u1",
                    json!({"name": "alice", "at": 5})
                )),
                PresenceChange::Joined(PresenceMember::new("u2", json!({"name": "bob"}))),
            ]
        );
        assert_eq!(
            u.state["u1"],
            vec![json!({"presence_ref": "2", "name": "alice", "at": 5})]
        );
    }

    #[test]
    fn malformed_presence_payloads_are_errors() {
        let mut p = PresenceState::default();
        assert!(p.apply_state(&json!([1])).is_err());
        assert!(p.apply_state(&json!({"a": {}})).is_err());
        assert!(p.apply_state(&json!({"a": {"metas": [1]}})).is_err());
        assert!(p.apply_diff(&json!({"joins": 5})).is_err());
    }
}

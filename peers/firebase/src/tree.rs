//! The database: one JSON tree. Empty objects and nulls vanish, as in Firebase.

use serde_json::{Map, Value};

/// A path split into its keys (`/a/b` → `["a", "b"]`; the root is empty).
pub fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The value at `path`, or `Null`.
pub fn get<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut at = root;
    for key in path {
        at = at.as_object()?.get(key)?;
    }
    Some(at)
}

/// Replaces the value at `path` (`Null` deletes), pruning emptied parents.
pub fn set(root: &mut Value, path: &[String], value: Value) {
    let value = normalize(value);
    let Some((last, parents)) = path.split_last() else {
        *root = value;
        return;
    };
    if !root.is_object() {
        *root = Value::Object(Map::new());
    }
    let mut at = &mut *root;
    for key in parents {
        let Value::Object(map) = at else { return };
        let child = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        at = child;
    }
    if let Value::Object(map) = at {
        if value.is_null() {
            map.remove(last);
        } else {
            map.insert(last.clone(), value);
        }
    }
    prune(root);
}

/// Removes nulls and empty objects recursively.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let map: Map<String, Value> = map
                .into_iter()
                .map(|(k, v)| (k, normalize(v)))
                .filter(|(_, v)| !v.is_null())
                .collect();
            if map.is_empty() {
                Value::Null
            } else {
                Value::Object(map)
            }
        }
        other => other,
    }
}

fn prune(root: &mut Value) {
    let v = std::mem::take(root);
    *root = normalize(v);
}

/// Replaces `{".sv": "timestamp"}` anywhere in `value` with `now_ms`.
pub fn resolve_server_values(value: Value, now_ms: u64) -> Value {
    match value {
        Value::Object(map) => {
            if map.len() == 1 && map.get(".sv").and_then(Value::as_str) == Some("timestamp") {
                return Value::from(now_ms);
            }
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, resolve_server_values(v, now_ms)))
                    .collect(),
            )
        }
        other => other,
    }
}

/// A key query: `orderBy="$key"` with `startAt`, `endAt`, `limitToFirst`, `limitToLast`.
#[derive(Debug, Default, Clone)]
pub struct KeyQuery {
    /// Inclusive lower bound.
    pub start_at: Option<String>,
    /// Inclusive upper bound.
    pub end_at: Option<String>,
    /// Keep the first n.
    pub limit_to_first: Option<usize>,
    /// Keep the last n.
    pub limit_to_last: Option<usize>,
}

impl KeyQuery {
    /// Applies the query to an object's children (a non-object is returned unchanged).
    pub fn apply(&self, value: Value) -> Value {
        let Value::Object(map) = value else {
            return value;
        };
        let mut keys: Vec<(String, Value)> = map
            .into_iter()
            .filter(|(k, _)| self.start_at.as_ref().is_none_or(|s| k >= s))
            .filter(|(k, _)| self.end_at.as_ref().is_none_or(|e| k <= e))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(n) = self.limit_to_first {
            keys.truncate(n);
        }
        if let Some(n) = self.limit_to_last {
            let skip = keys.len().saturating_sub(n);
            keys.drain(..skip);
        }
        normalize(Value::Object(keys.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_get_delete_prunes_empty_parents() {
        let mut root = Value::Null;
        set(&mut root, &segments("/a/b/c"), json!(1));
        assert_eq!(root, json!({"a": {"b": {"c": 1}}}));
        set(&mut root, &segments("/a/b/c"), Value::Null);
        assert_eq!(root, Value::Null);
    }

    #[test]
    fn key_queries_bound_and_limit() {
        let v = json!({"a": 1, "b": 2, "c": 3, "d": 4});
        let q = KeyQuery {
            start_at: Some("b".into()),
            limit_to_first: Some(2),
            ..KeyQuery::default()
        };
        assert_eq!(q.apply(v), json!({"b": 2, "c": 3}));
    }

    #[test]
    fn server_timestamps_resolve() {
        let v = resolve_server_values(json!({"x": {".sv": "timestamp"}, "y": 2}), 42);
        assert_eq!(v, json!({"x": 42, "y": 2}));
    }
}

//! postgres_changes: the subscription filters a join carries (`{event, schema, table?,
//! filter?}`), their server ids, and which of them a change matches. No database: a test
//! injects changes through the control API.

use serde_json::{Value, json};

/// One row change, as the replication stream would report it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The schema, e.g. `public`.
    pub schema: String,
    /// The table.
    pub table: String,
    /// `INSERT`, `UPDATE` or `DELETE`.
    pub kind: String,
    /// The new row (INSERT/UPDATE), as column → value.
    pub record: Value,
    /// The old row (UPDATE/DELETE).
    pub old_record: Value,
    /// `[{"name": .., "type": ..}]`.
    pub columns: Value,
    /// ISO 8601.
    pub commit_timestamp: String,
}

impl Change {
    /// An INSERT of `record` into `schema.table`, with text columns named after its keys.
    pub fn insert(schema: &str, table: &str, record: Value) -> Change {
        let columns = record
            .as_object()
            .map(|m| {
                m.keys()
                    .map(|k| json!({"name": k, "type": "text"}))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        Change {
            schema: schema.into(),
            table: table.into(),
            kind: "INSERT".into(),
            record,
            old_record: json!({}),
            columns: Value::Array(columns),
            commit_timestamp: "2024-01-01T00:00:00.000Z".into(),
        }
    }

    /// From the control API's JSON (`{schema, table, type, record?, old_record?, columns?,
    /// commit_timestamp?}`).
    pub fn from_json(v: &Value) -> Result<Change, String> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("`{k}` must be a string"))
        };
        let kind = s("type")?.to_ascii_uppercase();
        if !["INSERT", "UPDATE", "DELETE"].contains(&kind.as_str()) {
            return Err(format!("`type` {kind} is not INSERT, UPDATE or DELETE"));
        }
        let mut c = Change::insert(&s("schema")?, &s("table")?, json!({}));
        c.kind = kind;
        c.record = v.get("record").cloned().unwrap_or(json!({}));
        c.old_record = v.get("old_record").cloned().unwrap_or(json!({}));
        c.columns = match v.get("columns") {
            Some(cols) => cols.clone(),
            None => Change::insert("", "", c.record.clone()).columns,
        };
        if let Ok(ts) = s("commit_timestamp") {
            c.commit_timestamp = ts;
        }
        Ok(c)
    }

    /// The `data` object of a `postgres_changes` message.
    pub fn data(&self) -> Value {
        json!({
            "schema": self.schema,
            "table": self.table,
            "commit_timestamp": self.commit_timestamp,
            "type": self.kind,
            "columns": self.columns,
            "record": self.record,
            "old_record": self.old_record,
            "errors": null,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    In(Vec<String>),
}

/// A parsed `config.postgres_changes` entry with its server id.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The id the join reply gives it.
    pub id: u32,
    /// What the join reply echoes (the client's object, plus `id`).
    pub echo: Value,
    event: String,
    schema: String,
    table: Option<String>,
    column: Option<(String, Op, String)>,
}

fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h & 0x07ff_ffff
}

impl Filter {
    /// Parses one entry; an error is the server's "Error parsing `filter` params" text.
    pub fn parse(v: &Value) -> Result<Filter, String> {
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let event = field("event")
            .unwrap_or_else(|| "*".into())
            .to_ascii_uppercase();
        if !["*", "INSERT", "UPDATE", "DELETE"].contains(&event.as_str()) {
            return Err(format!("unknown event `{event}`"));
        }
        let schema = field("schema").ok_or("`schema` is required")?;
        let table = field("table").filter(|t| t != "*");
        let column = match field("filter") {
            None => None,
            Some(f) => Some(parse_column_filter(&f)?),
        };
        let mut echo = v.clone();
        let id = fnv(&v.to_string());
        if let Some(m) = echo.as_object_mut() {
            m.insert("id".into(), json!(id));
        }
        Ok(Filter {
            id,
            echo,
            event,
            schema,
            table,
            column,
        })
    }

    /// Whether `change` is one this filter subscribed to.
    pub fn matches(&self, change: &Change) -> bool {
        if self.event != "*" && self.event != change.kind {
            return false;
        }
        if self.schema != "*" && self.schema != change.schema {
            return false;
        }
        if self.table.as_ref().is_some_and(|t| *t != change.table) {
            return false;
        }
        let Some((col, op, want)) = &self.column else {
            return true;
        };
        let row = if change.kind == "DELETE" {
            &change.old_record
        } else {
            &change.record
        };
        let Some(got) = row.get(col) else {
            return false;
        };
        let got = match got {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let ord = || match (got.parse::<f64>(), want.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b),
            _ => Some(got.as_str().cmp(want.as_str())),
        };
        use std::cmp::Ordering::*;
        match op {
            Op::Eq => got == *want,
            Op::Neq => got != *want,
            Op::Lt => ord() == Some(Less),
            Op::Lte => matches!(ord(), Some(Less | Equal)),
            Op::Gt => ord() == Some(Greater),
            Op::Gte => matches!(ord(), Some(Greater | Equal)),
            Op::In(values) => values.contains(&got),
        }
    }
}

fn parse_column_filter(f: &str) -> Result<(String, Op, String), String> {
    let (col, rest) = f
        .split_once('=')
        .ok_or_else(|| format!("filter `{f}` is not column=op.value"))?;
    let (op, value) = rest
        .split_once('.')
        .ok_or_else(|| format!("filter `{f}` is not column=op.value"))?;
    let op = match op {
        "eq" => Op::Eq,
        "neq" => Op::Neq,
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "in" => {
            let inner = value
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| format!("filter `{f}`: in needs (a,b)"))?;
            Op::In(inner.split(',').map(|s| s.trim().to_owned()).collect())
        }
        other => return Err(format!("filter `{f}`: unknown operator `{other}`")),
    };
    if col.is_empty() {
        return Err(format!("filter `{f}` names no column"));
    }
    Ok((col.to_owned(), op, value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_the_server() {
        let f = |v: Value| Filter::parse(&v).unwrap();
        let ins = Change::insert("public", "todos", json!({"id": 5, "owner": "ann"}));
        assert!(f(json!({"event": "*", "schema": "public"})).matches(&ins));
        assert!(f(json!({"event": "INSERT", "schema": "public", "table": "todos"})).matches(&ins));
        assert!(!f(json!({"event": "UPDATE", "schema": "public"})).matches(&ins));
        assert!(!f(json!({"event": "*", "schema": "public", "table": "other"})).matches(&ins));
        let by = |flt: &str| {
            f(json!({"event": "*", "schema": "public", "table": "todos", "filter": flt}))
                .matches(&ins)
        };
        assert!(by("owner=eq.ann"));
        assert!(!by("owner=eq.bob"));
        assert!(by("id=gt.4") && !by("id=gt.5") && by("id=gte.5") && by("id=lt.10"));
        assert!(by("id=in.(1,5)") && !by("id=in.(1,2)") && by("owner=neq.bob"));
        assert!(Filter::parse(&json!({"event": "*", "schema": "public", "filter": "x"})).is_err());
        assert!(Filter::parse(&json!({"event": "NOPE", "schema": "public"})).is_err());
        assert!(Filter::parse(&json!({"event": "*"})).is_err());
        let a = f(json!({"event": "INSERT", "schema": "public"}));
        assert_eq!(a.id, f(json!({"event": "INSERT", "schema": "public"})).id);
        assert_eq!(a.echo["id"], json!(a.id));
    }
}

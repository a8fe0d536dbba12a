//! Postgres changes: the filters a channel joins with, and the change messages it receives.
//!
//! A change arrives as a `postgres_changes` message whose `payload.ids` lists the server ids of
//! every filter it matched. It is surfaced as one core [`Message`] on the channel with the
//! event name `postgres_changes:INSERT`, `postgres_changes:UPDATE` or
//! `postgres_changes:DELETE`, and data shaped as realtime-js hands it to its callbacks
//! (`schema, table, commit_timestamp, eventType, new, old, errors`, with string cells converted
//! by column type) plus `bindings`: the indexes of the channel's filters that matched.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use relayport_core::{Channel, Message, RealtimeError};

/// The event name prefix of postgres change messages.
pub const EVENT_PREFIX: &str = "postgres_changes:";

/// Which row events a filter listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostgresEvent {
    /// Every event (`*`).
    #[serde(rename = "*")]
    All,
    /// `INSERT`.
    #[serde(rename = "INSERT")]
    Insert,
    /// `UPDATE`.
    #[serde(rename = "UPDATE")]
    Update,
    /// `DELETE`.
    #[serde(rename = "DELETE")]
    Delete,
}

impl PostgresEvent {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "*",
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }

    /// Whether a change of type `kind` (`INSERT`, …) matches.
    pub fn matches(self, kind: &str) -> bool {
        self == Self::All || self.as_str() == kind
    }
}

/// One `config.postgres_changes` entry: `{event, schema, table?, filter?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresChangesFilter {
    /// The row event.
    pub event: PostgresEvent,
    /// The schema (`public`).
    pub schema: String,
    /// The table; all tables of the schema when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// A PostgREST-style row filter such as `id=eq.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl PostgresChangesFilter {
    /// A filter on every table of `schema`.
    ///
    /// ```
    /// use relayport_supabase::postgres::{PostgresChangesFilter, PostgresEvent};
    /// let f = PostgresChangesFilter::new(PostgresEvent::Insert, "public").table("todos").filter("id=eq.1");
    /// assert_eq!(serde_json::to_string(&f).unwrap(),
    ///     r#"{"event":"INSERT","schema":"public","table":"todos","filter":"id=eq.1"}"#);
    /// ```
    pub fn new(event: PostgresEvent, schema: impl Into<String>) -> Self {
        Self {
            event,
            schema: schema.into(),
            table: None,
            filter: None,
        }
    }

    /// Restricts the filter to a table.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// Adds a row filter (`column=op.value`).
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }
}

/// The one-line form of a filter, used by configuration (`SUPABASE_POSTGRES_CHANGES`, the
/// `postgres_changes` list of a configuration file) and the CLI (`--postgres`):
/// `schema[:table[:EVENT[:filter]]]`, `EVENT` one of `*` (the default), `INSERT`, `UPDATE`,
/// `DELETE` (any case); an empty or `*` table means every table of the schema.
///
/// ```
/// use relayport_supabase::postgres::{PostgresChangesFilter, PostgresEvent};
/// let f: PostgresChangesFilter = "public:messages:INSERT:room_id=eq.1".parse().unwrap();
/// assert_eq!(f, PostgresChangesFilter::new(PostgresEvent::Insert, "public")
///     .table("messages").filter("room_id=eq.1"));
/// let all: PostgresChangesFilter = "public".parse().unwrap();
/// assert_eq!(all, PostgresChangesFilter::new(PostgresEvent::All, "public"));
/// assert!("public:t:TRUNCATE".parse::<PostgresChangesFilter>().is_err());
/// ```
impl std::str::FromStr for PostgresChangesFilter {
    type Err = RealtimeError;

    fn from_str(spec: &str) -> Result<Self, RealtimeError> {
        let bad = |why: &str| {
            RealtimeError::Config(format!(
                "postgres_changes `{spec}`: {why} (expected schema[:table[:EVENT[:filter]]], \
                 EVENT one of *, INSERT, UPDATE, DELETE)"
            ))
        };
        let mut parts = spec.trim().splitn(4, ':');
        let schema = parts.next().unwrap_or_default().trim();
        if schema.is_empty() {
            return Err(bad("no schema"));
        }
        let table = parts
            .next()
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "*");
        let event = match parts
            .next()
            .map(|e| e.trim().to_ascii_uppercase())
            .as_deref()
        {
            None | Some("") | Some("*") => PostgresEvent::All,
            Some("INSERT") => PostgresEvent::Insert,
            Some("UPDATE") => PostgresEvent::Update,
            Some("DELETE") => PostgresEvent::Delete,
            Some(_) => return Err(bad("unknown event")),
        };
        let mut f = Self::new(event, schema);
        f.table = table.map(str::to_owned);
        f.filter = parts
            .next()
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_owned);
        Ok(f)
    }
}

/// Builds the message for one `postgres_changes` payload, given the channel's filters and the
/// server ids the join reply assigned them (same order). `Ok(None)` when no filter matched.
pub fn change_message(
    channel: &Channel,
    filters: &[PostgresChangesFilter],
    server_ids: &[u64],
    payload: &Value,
) -> Result<Option<Message>, RealtimeError> {
    let bad = |what: &str| RealtimeError::Protocol(format!("postgres_changes payload {what}"));
    let ids: Vec<u64> = payload
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("has no `ids` list"))?
        .iter()
        .map(|v| v.as_u64().ok_or_else(|| bad("has a non-integer id")))
        .collect::<Result<_, _>>()?;
    let data = payload
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("has no `data` object"))?;
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("has no `data.type`"))?;
    let bindings: Vec<Value> = filters
        .iter()
        .zip(server_ids)
        .enumerate()
        .filter(|(_, (f, id))| ids.contains(id) && f.event.matches(kind))
        .map(|(i, _)| Value::from(i))
        .collect();
    if bindings.is_empty() {
        return Ok(None);
    }
    let mut out = realtime_js_shape(data);
    out.insert("bindings".into(), Value::Array(bindings));
    Ok(Some(Message::new(
        channel.clone(),
        format!("{EVENT_PREFIX}{kind}"),
        Value::Object(out),
    )))
}

/// The payload as realtime-js's postgres_changes callback receives it.
pub fn realtime_js_shape(data: &Map<String, Value>) -> Map<String, Value> {
    let columns: Vec<(String, String)> = data
        .get("columns")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .filter_map(|c| {
                    Some((
                        c.get("name")?.as_str()?.to_owned(),
                        c.get("type")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let convert = |key: &str| match data.get(key) {
        Some(Value::Object(record)) => Value::Object(convert_record(&columns, record)),
        _ => Value::Object(Map::new()),
    };
    let mut out = Map::new();
    for k in ["schema", "table", "commit_timestamp"] {
        out.insert(k.into(), data.get(k).cloned().unwrap_or(Value::Null));
    }
    out.insert(
        "eventType".into(),
        data.get("type").cloned().unwrap_or(Value::Null),
    );
    out.insert("new".into(), convert("record"));
    out.insert("old".into(), convert("old_record"));
    out.insert(
        "errors".into(),
        data.get("errors").cloned().unwrap_or(Value::Null),
    );
    out
}

/// Converts a record's cells by column type, as realtime-js's `convertChangeData` does: only
/// the listed columns are kept.
pub fn convert_record(
    columns: &[(String, String)],
    record: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, ty) in columns {
        if let Some(v) = record.get(name) {
            out.insert(name.clone(), convert_cell(ty, v));
        }
    }
    out
}

/// Converts one cell value by its Postgres type name.
pub fn convert_cell(ty: &str, value: &Value) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    if let Some(elem) = ty.strip_prefix('_') {
        return to_array(elem, value);
    }
    match ty {
        "bool" => match value.as_str() {
            Some("t") => Value::Bool(true),
            Some("f") => Value::Bool(false),
            _ => value.clone(),
        },
        "float4" | "float8" | "int2" | "int4" | "int8" | "numeric" | "oid" => match value {
            Value::String(s) => parse_float(s).unwrap_or_else(|| value.clone()),
            _ => value.clone(),
        },
        "json" | "jsonb" => match value {
            Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| value.clone()),
            _ => value.clone(),
        },
        "timestamp" => match value {
            Value::String(s) => Value::String(s.replacen(' ', "T", 1)),
            _ => value.clone(),
        },
        _ => value.clone(),
    }
}

fn to_array(elem: &str, value: &Value) -> Value {
    let Value::String(s) = value else {
        return value.clone();
    };
    let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return value.clone();
    };
    let items: Vec<Value> = match serde_json::from_str::<Value>(&format!("[{inner}]")) {
        Ok(Value::Array(a)) => a,
        _ if inner.is_empty() => Vec::new(),
        _ => inner
            .split(',')
            .map(|p| Value::String(p.to_owned()))
            .collect(),
    };
    Value::Array(items.iter().map(|v| convert_cell(elem, v)).collect())
}

/// JavaScript's `parseFloat` on the longest numeric prefix; integral values become integers.
///
/// One pass over the text (a `numeric` cell can hold 131072 digits, so trying every prefix
/// would be quadratic): the longest prefix of the form
/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`, which is exactly the longest
/// prefix of digits, `.`, `e`, `E`, `+` and `-` that parses as an `f64`.
fn parse_float(s: &str) -> Option<Value> {
    let t = s.trim_start();
    let b = t.as_bytes();
    let digits_from = |mut i: usize| {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i - start)
    };
    let mut end = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let (after_int, int_digits) = digits_from(end);
    end = after_int;
    let mut mantissa_digits = int_digits;
    if b.get(end) == Some(&b'.') {
        let (after_frac, frac_digits) = digits_from(end + 1);
        if int_digits + frac_digits > 0 {
            end = after_frac;
            mantissa_digits += frac_digits;
        }
    }
    if mantissa_digits == 0 {
        return None;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(end + 1), Some(b'+' | b'-')));
        let (after_exp, exp_digits) = digits_from(end + 1 + sign);
        if exp_digits > 0 {
            end = after_exp;
        }
    }
    let best: Option<f64> = t[..end].parse().ok();
    let f = best.filter(|_| end > 0)?;
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Some(Value::from(f as i64))
    } else {
        Number::from_f64(f).map(Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_convert_like_realtime_js() {
        assert_eq!(convert_cell("int8", &json!("3")), json!(3));
        assert_eq!(convert_cell("float8", &json!("1.5")), json!(1.5));
        assert_eq!(convert_cell("int4", &json!("12abc")), json!(12));
        assert_eq!(convert_cell("int4", &json!("abc")), json!("abc"));
        assert_eq!(convert_cell("bool", &json!("t")), json!(true));
        assert_eq!(convert_cell("bool", &json!("f")), json!(false));
        assert_eq!(convert_cell("jsonb", &json!("{\"b\":2}")), json!({"b":2}));
        assert_eq!(convert_cell("jsonb", &json!("{bad")), json!("{bad"));
        assert_eq!(convert_cell("_text", &json!("{a,b}")), json!(["a", "b"]));
        assert_eq!(convert_cell("_int4", &json!("{1,2}")), json!([1, 2]));
        assert_eq!(convert_cell("_int4", &json!("{}")), json!([]));
        assert_eq!(convert_cell("_int4", &json!("nope")), json!("nope"));
        assert_eq!(
            convert_cell("timestamp", &json!("2024-01-01 00:00:00")),
            json!("2024-01-01T00:00:00")
        );
        assert_eq!(
            convert_cell("timestamptz", &json!("2024-01-01 00:00:00+00")),
            json!("2024-01-01 00:00:00+00")
        );
        assert_eq!(convert_cell("int8", &Value::Null), Value::Null);
    }

    #[test]
    fn malformed_change_payloads_are_errors() {
        let ch = Channel::public("db");
        let f = [PostgresChangesFilter::new(PostgresEvent::All, "public")];
        for bad in [
            json!({}),
            json!({"ids": "x"}),
            json!({"ids": ["1"], "data": {"type": "INSERT"}}),
            json!({"ids": [1]}),
            json!({"ids": [1], "data": {}}),
        ] {
            assert!(change_message(&ch, &f, &[1], &bad).is_err(), "{bad}");
        }
        let other = json!({"ids": [2], "data": {"type": "INSERT"}});
        assert_eq!(change_message(&ch, &f, &[1], &other).unwrap(), None);
    }
}

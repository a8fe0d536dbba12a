//! JSON helpers shared by the oracles.

use serde_json::Value;

/// Whether `value` holds a floating-point number anywhere.
///
/// serde_json parses floats on a best-effort basis (its `float_roundtrip` feature is off), so
/// a float may come back one ULP off after a text round trip: the round-trip assertions skip
/// such values rather than report a difference that is not the decoder's.
pub fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// Whether any of `values` holds a float (see [`has_float`]).
pub fn any_float<'a>(values: impl IntoIterator<Item = &'a Value>) -> bool {
    values.into_iter().any(has_float)
}

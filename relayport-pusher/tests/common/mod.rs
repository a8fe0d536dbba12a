//! Shared test helpers: loading the vector files and an order-preserving JSON value.
#![allow(dead_code)]

pub mod peer;

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// Reads a vector file from this crate's `tests/vectors/`.
pub fn vector_text(name: &str) -> String {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// A vector file as a `serde_json::Value`.
pub fn vector(name: &str) -> serde_json::Value {
    serde_json::from_str(&vector_text(name)).expect("vector file is JSON")
}

/// JSON that keeps object keys in document order (as JS `JSON.stringify` does), so objects
/// from the vectors serialize back to the exact bytes the SDK produced.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderedJson {
    /// `null`
    Null,
    /// A boolean.
    Bool(bool),
    /// A number (kept as serde_json's).
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<OrderedJson>),
    /// An object, keys in document order.
    Object(Vec<(String, OrderedJson)>),
}

impl Serialize for OrderedJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OrderedJson::Null => s.serialize_unit(),
            OrderedJson::Bool(b) => s.serialize_bool(*b),
            OrderedJson::Number(n) => n.serialize(s),
            OrderedJson::String(v) => s.serialize_str(v),
            OrderedJson::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            OrderedJson::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for OrderedJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E: de::Error>(self) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Number(n.into()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<OrderedJson, E> {
                Ok(OrderedJson::Number(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<OrderedJson, E> {
                serde_json::Number::from_f64(n)
                    .map(OrderedJson::Number)
                    .ok_or_else(|| E::custom("non-finite number"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OrderedJson, E> {
                Ok(OrderedJson::String(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<OrderedJson, E> {
                Ok(OrderedJson::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<OrderedJson, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(OrderedJson::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OrderedJson, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = m.next_entry::<String, OrderedJson>()? {
                    v.push((k, x));
                }
                Ok(OrderedJson::Object(v))
            }
        }
        d.deserialize_any(V)
    }
}

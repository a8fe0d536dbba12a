//! A message's payload: a JSON value or raw bytes.
//!
//! Every provider carries JSON. Bytes travel natively where the protocol can (Ably's binary
//! data, Supabase's binary broadcast frames, Socket.IO's binary attachments, our own server's
//! base64 with an `encoding` field); a provider that cannot carry them reports
//! [`Capabilities::binary_payloads`](crate::Capabilities::binary_payloads) `false` and the
//! client refuses a binary publish with [`RealtimeError::Unsupported`] before it leaves.
//!
//! ```
//! use relayport_core::Payload;
//! use serde_json::json;
//!
//! let text: Payload = json!({"text": "hi"}).into();
//! assert_eq!(text, json!({"text": "hi"}));
//! assert_eq!(text["text"], "hi");
//!
//! let image = Payload::from(vec![0x89, b'P', b'N', b'G']);
//! assert_eq!(image.as_bytes(), Some(&b"\x89PNG"[..]));
//! assert_eq!(image.size(), 4);
//! ```

use std::fmt;
use std::ops::Index;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{RealtimeError, Result};

/// The `encoding` value that marks a payload as base64-encoded bytes in a JSON frame (our own
/// server's wire format, Ably's JSON protocol).
pub const BASE64_ENCODING: &str = "base64";

/// A message's payload: JSON or bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A JSON value (what every provider carries).
    Json(Value),
    /// Raw bytes, carried natively where the provider can.
    Binary(Bytes),
}

static NULL: Value = Value::Null;

impl Payload {
    /// The JSON value; `None` for bytes.
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Payload::Json(v) => Some(v),
            Payload::Binary(_) => None,
        }
    }

    /// The bytes; `None` for JSON.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Payload::Json(_) => None,
            Payload::Binary(b) => Some(b),
        }
    }

    /// Whether this is bytes.
    pub fn is_binary(&self) -> bool {
        matches!(self, Payload::Binary(_))
    }

    /// The JSON value, or the payload itself back when it is bytes.
    pub fn into_json(self) -> std::result::Result<Value, Payload> {
        match self {
            Payload::Json(v) => Ok(v),
            other => Err(other),
        }
    }

    /// The JSON value, or an `Unsupported` error naming `provider` for bytes: for a provider
    /// whose protocol carries only JSON.
    pub fn json_for(&self, provider: &str) -> Result<&Value> {
        self.as_json().ok_or_else(|| {
            RealtimeError::Unsupported(format!("binary payloads ({provider} carries JSON only)"))
        })
    }

    /// The payload's size in bytes, the size the payload limit applies to: the JSON text's
    /// length, or the number of bytes.
    pub fn size(&self) -> usize {
        match self {
            Payload::Json(v) => serde_json::to_vec(v).map_or(usize::MAX, |b| b.len()),
            Payload::Binary(b) => b.len(),
        }
    }

    /// Decodes a JSON payload as `T`; bytes decode as JSON text.
    pub fn decode<T: DeserializeOwned>(&self) -> std::result::Result<T, serde_json::Error> {
        match self {
            Payload::Json(v) => T::deserialize(v),
            Payload::Binary(b) => serde_json::from_slice(b),
        }
    }

    /// The payload as a JSON frame carries it: the value and an `encoding` (`Some("base64")`
    /// for bytes, whose value is then their standard base64 text).
    pub fn to_wire(&self) -> (Value, Option<&'static str>) {
        match self {
            Payload::Json(v) => (v.clone(), None),
            Payload::Binary(b) => (Value::String(STANDARD.encode(b)), Some(BASE64_ENCODING)),
        }
    }

    /// The payload a JSON frame carried as `data` with `encoding` (see [`Payload::to_wire`]):
    /// a `Protocol` error for an unknown encoding or base64 that does not decode.
    pub fn from_wire(data: Value, encoding: Option<&str>) -> Result<Self> {
        match encoding {
            None | Some("") => Ok(Payload::Json(data)),
            Some(BASE64_ENCODING) => match data {
                Value::String(s) => STANDARD.decode(s.as_bytes()).map(Self::from).map_err(|e| {
                    RealtimeError::Protocol(format!("base64 payload does not decode: {e}"))
                }),
                _ => Err(RealtimeError::Protocol(
                    "a base64 payload must be a string".into(),
                )),
            },
            Some(other) => Err(RealtimeError::Protocol(format!(
                "unknown payload encoding `{other}`"
            ))),
        }
    }
}

impl Default for Payload {
    /// JSON `null`.
    fn default() -> Self {
        Payload::Json(Value::Null)
    }
}

impl fmt::Display for Payload {
    /// JSON as its text; bytes as `<N bytes>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Json(v) => write!(f, "{v}"),
            Payload::Binary(b) => write!(f, "<{} bytes>", b.len()),
        }
    }
}

impl Serialize for Payload {
    /// JSON as itself; bytes as their standard base64 text (the `encoding` that says so is
    /// the enclosing frame's business: see [`Payload::to_wire`]).
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Payload::Json(v) => v.serialize(serializer),
            Payload::Binary(b) => serializer.serialize_str(&STANDARD.encode(b)),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    /// Always JSON: bytes are recognised only with their frame's `encoding`
    /// ([`Payload::from_wire`]).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Payload::Json)
    }
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Json(v)
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload::Binary(b)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(b: Vec<u8>) -> Self {
        Payload::Binary(Bytes::from(b))
    }
}

impl From<&[u8]> for Payload {
    fn from(b: &[u8]) -> Self {
        Payload::Binary(Bytes::copy_from_slice(b))
    }
}

impl<const N: usize> From<&[u8; N]> for Payload {
    fn from(b: &[u8; N]) -> Self {
        Payload::Binary(Bytes::copy_from_slice(b))
    }
}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        self.as_json() == Some(other)
    }
}

impl PartialEq<Payload> for Value {
    fn eq(&self, other: &Payload) -> bool {
        other == self
    }
}

impl<I: serde_json::value::Index> Index<I> for Payload {
    type Output = Value;

    /// Indexes a JSON payload like a [`Value`]; bytes (like a missing key) give `null`.
    fn index(&self, index: I) -> &Value {
        match self {
            Payload::Json(v) => &v[index],
            Payload::Binary(_) => &NULL,
        }
    }
}

/// A payload as a message's JSON form carries it, in two fields: `data` and, for bytes,
/// `"encoding": "base64"` (`#[serde(flatten, with = "crate::payload::wire")]`).
pub(crate) mod wire {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    use super::Payload;

    #[derive(Serialize, Deserialize)]
    struct Fields {
        data: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoding: Option<String>,
    }

    pub(crate) fn serialize<S: Serializer>(p: &Payload, s: S) -> Result<S::Ok, S::Error> {
        let (data, encoding) = p.to_wire();
        Fields {
            data,
            encoding: encoding.map(str::to_owned),
        }
        .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        let f = Fields::deserialize(d)?;
        Payload::from_wire(f.data, f.encoding.as_deref()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_round_trip() {
        let bytes = Payload::from(vec![0u8, 1, 2, 255]);
        let (data, encoding) = bytes.to_wire();
        assert_eq!(data, json!("AAEC/w=="));
        assert_eq!(encoding, Some("base64"));
        assert_eq!(Payload::from_wire(data, encoding).unwrap(), bytes);
        let text = Payload::from(json!({"a": [1]}));
        let (data, encoding) = text.to_wire();
        assert_eq!(encoding, None);
        assert_eq!(Payload::from_wire(data, encoding).unwrap(), text);
    }

    #[test]
    fn bad_wire_input_is_a_protocol_error() {
        for (data, enc) in [
            (json!("not base64!"), Some("base64")),
            (json!(12), Some("base64")),
            (json!("x"), Some("utf-7")),
        ] {
            let err = Payload::from_wire(data, enc).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Protocol, "{err}");
        }
    }

    #[test]
    fn sizes_and_accessors() {
        assert_eq!(Payload::from(json!("ab")).size(), 4);
        assert_eq!(Payload::from(&[1u8, 2, 3]).size(), 3);
        let b = Payload::from(b"{\"n\":1}");
        assert_eq!(b["n"], Value::Null);
        assert_eq!(b.decode::<Value>().unwrap(), json!({"n": 1}));
        assert!(b.json_for("pusher").is_err());
        assert_eq!(b.to_string(), "<7 bytes>");
        assert_ne!(b, json!({"n": 1}));
    }
}

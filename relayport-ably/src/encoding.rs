//! Message payload encodings (`RSL4`, `RSL6`): what a payload becomes on the wire
//! (`data` + `encoding`) and back, and the message size Ably counts against `maxMessageSize`.
//!
//! On the JSON protocol a string travels as is, an object or array as a JSON string with
//! encoding `json`, and binary as base64 with encoding `base64`. On receipt the encoding chain
//! is undone right to left (`utf-8/base64`, `json/utf-8/base64`, …); a step this client cannot
//! undo (`cipher+…`, `vcdiff`) stops decoding and is reported, never silently dropped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use relayport_core::{RealtimeError, Result};
use serde_json::Value;

use crate::errors::unsupported_data;

/// A message payload as Ably knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// No data.
    None,
    /// A string.
    Text(String),
    /// Bytes.
    Binary(Vec<u8>),
    /// A JSON object or array.
    Json(Value),
}

impl Payload {
    /// A payload from a JSON value: strings are text, objects and arrays JSON, `null` nothing.
    /// Bare numbers and booleans are refused with Ably's 40013 semantics.
    pub fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Null => Ok(Self::None),
            Value::String(s) => Ok(Self::Text(s.clone())),
            Value::Object(_) | Value::Array(_) => Ok(Self::Json(value.clone())),
            Value::Number(n) => Err(unsupported_data(&format!("number {n}"))),
            Value::Bool(b) => Err(unsupported_data(&format!("boolean {b}"))),
        }
    }

    /// A payload from the core's: JSON as [`Payload::from_value`], bytes as Ably binary data.
    pub fn from_core(payload: &relayport_core::Payload) -> Result<Self> {
        match payload {
            relayport_core::Payload::Binary(b) => Ok(Self::Binary(b.to_vec())),
            relayport_core::Payload::Json(v) => Self::from_value(v),
        }
    }

    /// The payload as the core's message payload: bytes as bytes, everything else as
    /// [`Payload::into_value`].
    pub fn into_core(self) -> relayport_core::Payload {
        match self {
            Self::Binary(b) => relayport_core::Payload::Binary(b.into()),
            other => relayport_core::Payload::Json(other.into_value()),
        }
    }

    /// The payload as a JSON value (presence data): text as a string, JSON as is, binary as
    /// `{"base64": "<standard base64>"}`, nothing as `null`.
    pub fn into_value(self) -> Value {
        match self {
            Self::None => Value::Null,
            Self::Text(s) => Value::String(s),
            Self::Json(v) => v,
            Self::Binary(b) => serde_json::json!({ "base64": B64.encode(b) }),
        }
    }

    /// The wire form: `(data, encoding)`.
    pub fn encode(&self) -> (Option<Value>, Option<String>) {
        match self {
            Self::None => (None, None),
            Self::Text(s) => (Some(Value::String(s.clone())), None),
            Self::Binary(b) => (Some(Value::String(B64.encode(b))), Some("base64".into())),
            Self::Json(v) => (Some(Value::String(v.to_string())), Some("json".into())),
        }
    }

    /// The size Ably counts for the data (`TM6`): UTF-8 bytes of a string, raw bytes of
    /// binary, the JSON length of an object.
    pub fn size(&self) -> usize {
        match self {
            Self::None => 0,
            Self::Text(s) => s.len(),
            Self::Binary(b) => b.len(),
            Self::Json(v) => v.to_string().len(),
        }
    }
}

/// A decoding that stopped at a step this client cannot undo.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    /// The payload as far as it was decoded (raw string or bytes).
    pub partial: Payload,
    /// The encoding steps left undone.
    pub remaining: String,
    /// Why decoding stopped.
    pub reason: String,
}

/// Undoes an encoding chain, right to left.
///
/// ```
/// use relayport_ably::encoding::{decode, Payload};
/// use serde_json::json;
/// assert_eq!(decode(Some(json!("aMOpbGxv")), Some("utf-8/base64")).unwrap(), Payload::Text("héllo".into()));
/// assert_eq!(decode(Some(json!("{\"x\":1}")), Some("json")).unwrap(), Payload::Json(json!({"x":1})));
/// ```
pub fn decode(
    data: Option<Value>,
    encoding: Option<&str>,
) -> std::result::Result<Payload, Undecodable> {
    let mut payload = match data {
        None | Some(Value::Null) => Payload::None,
        Some(Value::String(s)) => Payload::Text(s),
        // Non-string data on the JSON protocol: delivered as JSON.
        Some(other) => Payload::Json(other),
    };
    let Some(encoding) = encoding.filter(|e| !e.is_empty()) else {
        return Ok(payload);
    };
    let steps: Vec<&str> = encoding.split('/').collect();
    for (i, step) in steps.iter().enumerate().rev() {
        let fail = |partial: Payload, reason: String| Undecodable {
            partial,
            remaining: steps[..=i].join("/"),
            reason,
        };
        payload = match (*step, payload) {
            ("base64", Payload::Text(s)) => match B64.decode(s.as_bytes()) {
                Ok(bytes) => Payload::Binary(bytes),
                Err(e) => return Err(fail(Payload::Text(s), format!("bad base64: {e}"))),
            },
            ("utf-8", Payload::Binary(b)) => match String::from_utf8(b) {
                Ok(s) => Payload::Text(s),
                Err(e) => {
                    let bytes = e.as_bytes().to_vec();
                    return Err(fail(Payload::Binary(bytes), "bad UTF-8".into()));
                }
            },
            ("utf-8", Payload::Text(s)) => Payload::Text(s),
            ("json", Payload::Text(s)) => match serde_json::from_str::<Value>(&s) {
                Ok(v) => Payload::Json(v),
                Err(e) => return Err(fail(Payload::Text(s), format!("bad JSON: {e}"))),
            },
            ("json", Payload::Binary(b)) => match serde_json::from_slice::<Value>(&b) {
                Ok(v) => Payload::Json(v),
                Err(e) => return Err(fail(Payload::Binary(b), format!("bad JSON: {e}"))),
            },
            (step, p) => {
                return Err(fail(p, format!("encoding step `{step}` is not supported")));
            }
        };
    }
    Ok(payload)
}

/// The size of one message as Ably counts it (`TM6`): name + clientId + JSON(extras) + data.
pub fn message_size(
    name: Option<&str>,
    client_id: Option<&str>,
    extras: Option<&Value>,
    data: &Payload,
) -> usize {
    name.map_or(0, str::len)
        + client_id.map_or(0, str::len)
        + extras.map_or(0, |e| e.to_string().len())
        + data.size()
}

/// Refuses a batch over `limit` bytes with Ably's 40009 semantics, before anything is sent.
pub fn check_size(total: usize, limit: usize) -> Result<()> {
    if total > limit {
        return Err(RealtimeError::PayloadTooLarge { size: total, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// ably-common `messages-encoding.json` and `presence-messages-encoding.json`, as ably-js
    /// decoded them (`fixtureCrossCheck`).
    #[test]
    fn fixture_cross_check_vectors() {
        let v = crate::testdata::vectors();
        for file in ["messages-encoding.json", "presence-messages-encoding.json"] {
            let cases = v["fixtureCrossCheck"][file].as_array().unwrap();
            assert!(!cases.is_empty());
            for case in cases {
                let input = &case["input"];
                let got = decode(Some(input["data"].clone()), input["encoding"].as_str()).unwrap();
                let expected = match case["expectedType"].as_str().unwrap() {
                    "binary" => {
                        let hex = case["decoded"]["hex"].as_str().unwrap();
                        let bytes = (0..hex.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                            .collect();
                        Payload::Binary(bytes)
                    }
                    "string" => Payload::Text(case["decoded"].as_str().unwrap().into()),
                    _ => Payload::Json(case["decoded"].clone()),
                };
                assert_eq!(got, expected, "{file}: {input}");
            }
        }
    }

    #[test]
    fn encode_then_decode_round_trips() {
        for p in [
            Payload::Text("héllo".into()),
            Payload::Binary(vec![0, 1, 255]),
            Payload::Json(json!({"a": [1, null]})),
            Payload::Json(json!([1, "x"])),
            Payload::None,
        ] {
            let (data, enc) = p.encode();
            assert_eq!(decode(data, enc.as_deref()).unwrap(), p);
        }
    }

    #[test]
    fn numbers_and_booleans_are_refused_with_40013() {
        for v in [json!(1), json!(1.5), json!(true), json!(false)] {
            match Payload::from_value(&v).unwrap_err() {
                RealtimeError::Provider { code, .. } => assert_eq!(code, 40013),
                other => panic!("{other:?}"),
            }
        }
        assert!(Payload::from_value(&json!("1")).is_ok());
        assert!(Payload::from_value(&json!([1])).is_ok());
    }

    #[test]
    fn undecodable_steps_are_reported_with_the_remaining_encoding() {
        let err = decode(Some(json!("AAEC")), Some("utf-8/cipher+aes-128-cbc/base64")).unwrap_err();
        assert_eq!(err.remaining, "utf-8/cipher+aes-128-cbc");
        assert_eq!(err.partial, Payload::Binary(vec![0, 1, 2]));
        let err = decode(Some(json!("not base64!")), Some("base64")).unwrap_err();
        assert_eq!(err.remaining, "base64");
        let err = decode(Some(json!("{")), Some("json")).unwrap_err();
        assert_eq!(err.partial, Payload::Text("{".into()));
    }

    /// ably-js leaks its computed `size` into the wire messages it sends: every one of them,
    /// realtime and REST, must equal our TM6 size.
    #[test]
    fn sizes_match_every_size_ably_js_leaked() {
        let v = crate::testdata::vectors();
        let mut bodies: Vec<Value> = Vec::new();
        for sc in v["realtime"].as_object().unwrap().values() {
            for conn in sc["connections"].as_array().into_iter().flatten() {
                for f in conn["frames"].as_array().unwrap() {
                    let frame: Value = serde_json::from_str(f["raw"].as_str().unwrap()).unwrap();
                    if let Some(ms) = frame.get("messages").and_then(Value::as_array) {
                        bodies.extend(ms.iter().cloned());
                    }
                }
            }
        }
        for r in v["rest"]["requests"].as_array().unwrap() {
            for req in r["requests"].as_array().unwrap() {
                if let Some(Ok(Value::Array(ms))) = req["body"].as_str().map(serde_json::from_str) {
                    bodies.extend(ms);
                }
            }
        }
        let mut checked = 0;
        for m in bodies.iter().filter(|m| m.get("size").is_some()) {
            let data = decode(m.get("data").cloned(), m["encoding"].as_str()).unwrap();
            let size = message_size(
                m["name"].as_str(),
                m["clientId"].as_str(),
                m.get("extras"),
                &data,
            );
            assert_eq!(json!(size), m["size"], "{m}");
            checked += 1;
        }
        assert!(checked >= 15, "{checked}");
    }

    #[test]
    fn sizes_follow_tm6() {
        // The sizes ably-js recorded next to its wire messages (its leaked `size` field).
        assert_eq!(
            message_size(
                Some("obj"),
                None,
                None,
                &Payload::Json(json!({"a":1,"b":[true,null]}))
            ),
            26
        );
        assert_eq!(
            message_size(
                Some("bin"),
                None,
                None,
                &Payload::Binary(vec![0xde, 0xad, 0xbe, 0xef])
            ),
            7
        );
        assert_eq!(
            message_size(
                Some("ext"),
                None,
                Some(&json!({"headers":{"h":"v"}})),
                &Payload::Text("x".into())
            ),
            25
        );
        assert!(check_size(65536, 65536).is_ok());
        assert_eq!(
            check_size(65537, 65536).unwrap_err(),
            RealtimeError::PayloadTooLarge {
                size: 65537,
                limit: 65536
            }
        );
    }
}

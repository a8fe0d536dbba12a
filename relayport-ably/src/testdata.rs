//! The recorded vectors, read from this crate's `tests/vectors/`.

use serde_json::Value;

/// `tests/vectors/ably.json`.
pub(crate) fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/ably.json"
    ))
    .expect("tests/vectors/ably.json");
    serde_json::from_str(&text).expect("ably.json is JSON")
}

//! The shared vectors, read from the workspace's `testdata/`.

use serde_json::Value;

/// `testdata/vectors/ably.json`.
pub(crate) fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/vectors/ably.json"
    ))
    .expect("testdata/vectors/ably.json");
    serde_json::from_str(&text).expect("ably.json is JSON")
}

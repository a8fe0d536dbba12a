//! A Firebase REST stream (SSE) as the client reads it, and the key rules on the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relayport_fuzz::firebase::check_stream(data);
    if let Ok(text) = std::str::from_utf8(data) {
        relayport_fuzz::firebase::check_key(text);
    }
});

//! Ably protocol messages (JSON) as the client reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        relayport_fuzz::ably::check_protocol_message(text);
    }
});

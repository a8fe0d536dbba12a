//! Pusher protocol 7 server frames as the client reads them; webhook bodies.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        relayport_fuzz::pusher::check_frame(text);
    }
    relayport_fuzz::pusher::check_webhook(data);
});

//! Self-hosted: client frames, `Last-Event-ID` cursors and `channel_data` as the server reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        relayport_fuzz::selfhosted::check_server_input(text);
    }
});

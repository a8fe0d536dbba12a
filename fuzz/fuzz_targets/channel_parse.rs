//! `Channel::parse` on any text, and the providers' channel-name mappings.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        relayport_fuzz::channel::check_parse(text);
    }
});

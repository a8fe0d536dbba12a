//! `Channel::matches` on `pattern\nname` against the reference matcher.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((pattern, name)) = std::str::from_utf8(data)
        .ok()
        .and_then(relayport_fuzz::channel::split_pattern_name)
    {
        relayport_fuzz::channel::check_matches(pattern, name);
    }
});

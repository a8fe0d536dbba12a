//! Supabase/Phoenix text frames (vsn 1.0.0 and 2.0.0) as the client reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        relayport_fuzz::supabase::check_text(text);
    }
});

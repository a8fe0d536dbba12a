//! Supabase vsn 2.0.0 binary frames (kinds 0-4).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relayport_fuzz::supabase::check_binary(data);
});

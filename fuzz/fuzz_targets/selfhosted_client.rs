//! Self-hosted: server frames (WebSocket) and SSE streams as the client reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relayport_fuzz::selfhosted::check_client_input(data);
});

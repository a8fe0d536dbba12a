//! Engine.IO / Socket.IO frames (text, then binary attachments) as the Socket.IO client reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relayport_fuzz::socketio::check_frames(data);
});

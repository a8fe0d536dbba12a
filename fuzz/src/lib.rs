//! The oracles of the fuzz targets: one module per decoder family, each with `check_*`
//! functions that take raw network input, run it through the decoder the library uses on the
//! wire, and assert what must hold beyond "no panic" (round trips, agreement with a reference
//! implementation, signatures that only verify when they are right).
//!
//! The targets in `fuzz_targets/` are one line each; the logic lives here so that a crash
//! found by `cargo fuzz` can be replayed from a unit test or a debugger with the same code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ably;
pub mod channel;
pub mod firebase;
pub mod json;
pub mod pusher;
pub mod selfhosted;
pub mod socketio;
pub mod supabase;

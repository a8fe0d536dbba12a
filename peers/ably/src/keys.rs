//! The keys a default peer accepts (fake; loopback only).

use crate::capability::Capability;
use crate::config::KeyConfig;

/// Everything on every channel.
pub const FULL: &str = "peerapp.full:full-secret-0123456789";
/// `allowed:*` (everything) and `readonly` (subscribe only); nothing else.
pub const LIMITED: &str = "peerapp.limited:limited-secret-0123456789";

/// The default keys: [`FULL`] and [`LIMITED`].
pub fn all() -> Vec<KeyConfig> {
    vec![
        KeyConfig::new(FULL, Capability::all()),
        KeyConfig::new(
            LIMITED,
            Capability::from_pairs([("allowed:*", &["*"][..]), ("readonly", &["subscribe"][..])]),
        ),
    ]
}

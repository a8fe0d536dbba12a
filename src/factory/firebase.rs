//! Firebase: `FirebaseProvider` and `FirebasePublisher` from [`FirebaseSettings`].

use relayport_core::{RealtimeError, Result};
use relayport_firebase::{FirebaseConfig, FirebaseProvider, FirebasePublisher};

use crate::config::FirebaseSettings;

fn config(f: &FirebaseSettings) -> Result<FirebaseConfig> {
    let mut cfg = FirebaseConfig::new(&f.database_url)?;
    if let Some(root) = &f.root {
        cfg = cfg.with_root(root)?;
    }
    if let Some(token) = &f.auth_token {
        cfg = cfg.with_token(token.expose());
    }
    if let Some(id) = &f.client_id {
        cfg = cfg.with_client_id(id.clone());
    }
    Ok(cfg)
}

/// The client provider: the database URL, the root, the client's token.
pub(crate) fn provider(f: &FirebaseSettings) -> Result<FirebaseProvider> {
    FirebaseProvider::new(config(f)?)
}

/// `POST` to the channel's messages with `FIREBASE_AUTH_TOKEN` (on a backend, a token its rules
/// allow to write).
pub(crate) fn publisher(f: &FirebaseSettings) -> Result<FirebasePublisher> {
    if f.auth_token.is_none() {
        return Err(RealtimeError::Config(
            "FIREBASE_AUTH_TOKEN is not set (publishing from a backend needs a token the database rules allow to write)".into(),
        ));
    }
    FirebasePublisher::new(config(f)?)
}

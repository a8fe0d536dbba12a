//! Pusher apps: id, key, secret, enabled features and limits, read from a JSON file or the
//! environment. Without any, the server runs one app derived from its secret (id and key
//! `relayport`, secret = the server secret), so the one-secret start keeps working.
//!
//! ```
//! use relayport_selfhosted::server::pusher::PusherApp;
//! let apps = PusherApp::parse_list(r#"{"apps": [
//!     {"id": "1", "key": "web-key", "secret": "web-secret", "client_events": false}
//! ]}"#).unwrap();
//! assert_eq!(apps[0].key, "web-key");
//! assert!(!apps[0].client_events && apps[0].user_authentication);
//! ```

use serde::Deserialize;

/// The id and key of the app derived from the server secret when none is configured.
pub const DEFAULT_APP: &str = "relayport";

/// One Pusher app. The secret is never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PusherApp {
    /// The app id (`/apps/{id}/…` in the HTTP API).
    pub id: String,
    /// The app key (`/app/{key}` on the WebSocket; public).
    pub key: String,
    /// The app secret: signs subscriptions, sign-ins, HTTP requests and webhooks.
    pub secret: String,
    /// A disabled app refuses connections (close 4003) and HTTP requests (403).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether clients may send `client-*` events (private and presence channels only).
    #[serde(default = "yes")]
    pub client_events: bool,
    /// Whether clients may sign in (`pusher:signin`) and receive server-to-user events.
    #[serde(default = "yes")]
    pub user_authentication: bool,
    /// Open WebSocket connections for this app at most (0: only the server's cap); past it,
    /// close 4004.
    #[serde(default)]
    pub max_connections: usize,
    /// Client events per connection per second (Pusher: 10); past it, `pusher:error` 4301.
    #[serde(default = "ten")]
    pub client_events_per_second: u32,
    /// The largest event payload (`data`), in bytes, from the HTTP API and client events
    /// (Pusher: 10 KB); past it, 413 or `pusher:error` 4301.
    #[serde(default = "max_payload")]
    pub max_payload: usize,
    /// Members per presence channel (Pusher: 100).
    #[serde(default = "hundred")]
    pub max_presence_members: usize,
    /// The largest presence `user_info`, in bytes (Pusher: 1 KB; soketi: 2 KB).
    #[serde(default = "user_info")]
    pub max_user_info: usize,
    /// Events per `POST /batch_events` (Pusher: 10).
    #[serde(default = "ten_usize")]
    pub max_batch: usize,
    /// Webhook URLs (`http://` only, for a local backend); each receives every event.
    #[serde(default)]
    pub webhooks: Vec<String>,
}

fn yes() -> bool {
    true
}
fn ten() -> u32 {
    10
}
fn ten_usize() -> usize {
    10
}
fn hundred() -> usize {
    100
}
fn max_payload() -> usize {
    10 * 1024
}
fn user_info() -> usize {
    2 * 1024
}

impl std::fmt::Debug for PusherApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherApp")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("enabled", &self.enabled)
            .field("client_events", &self.client_events)
            .field("user_authentication", &self.user_authentication)
            .field("max_connections", &self.max_connections)
            .field("webhooks", &self.webhooks.len())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AppList {
    Wrapped { apps: Vec<PusherApp> },
    Bare(Vec<PusherApp>),
}

impl PusherApp {
    /// An app with Pusher's default features and limits.
    pub fn new(id: impl Into<String>, key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            enabled: true,
            client_events: true,
            user_authentication: true,
            max_connections: 0,
            client_events_per_second: ten(),
            max_payload: max_payload(),
            max_presence_members: hundred(),
            max_user_info: user_info(),
            max_batch: ten_usize(),
            webhooks: Vec::new(),
        }
    }

    /// The app derived from the server secret: id and key [`DEFAULT_APP`].
    pub fn derived(secret: &str) -> Self {
        Self::new(DEFAULT_APP, DEFAULT_APP, secret)
    }

    /// Parses `{"apps": [...]}` or a bare `[...]` and checks the list: ids and keys
    /// non-empty, distinct and URL-safe, secrets non-empty.
    pub fn parse_list(json: &str) -> Result<Vec<PusherApp>, String> {
        let list: AppList = serde_json::from_str(json).map_err(|e| format!("pusher apps: {e}"))?;
        let apps = match list {
            AppList::Wrapped { apps } | AppList::Bare(apps) => apps,
        };
        Self::check_list(&apps)?;
        Ok(apps)
    }

    /// Checks a list of apps (see [`PusherApp::parse_list`]).
    pub fn check_list(apps: &[PusherApp]) -> Result<(), String> {
        let safe = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        let mut ids = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for (i, a) in apps.iter().enumerate() {
            if !safe(&a.id) || !safe(&a.key) {
                return Err(format!(
                    "pusher app {i}: id and key are 1 to 128 characters of A-Z a-z 0-9 . _ -"
                ));
            }
            if a.secret.is_empty() {
                return Err(format!("pusher app {}: the secret is empty", a.id));
            }
            if !ids.insert(a.id.as_str()) || !keys.insert(a.key.as_str()) {
                return Err(format!("pusher app {}: duplicate id or key", a.id));
            }
            if let Some(bad) = a.webhooks.iter().find(|u| !u.starts_with("http://")) {
                return Err(format!(
                    "pusher app {}: webhook {bad:?} must be an http:// URL",
                    a.id
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_refuses_bad_lists() {
        let apps = PusherApp::parse_list(r#"[{"id":"1","key":"k","secret":"s"}]"#).unwrap();
        assert_eq!(apps[0], PusherApp::new("1", "k", "s"));
        assert_eq!(apps[0].max_batch, 10);
        for bad in [
            r#"[{"id":"1","key":"k","secret":""}]"#,
            r#"[{"id":"1","key":"k/x","secret":"s"}]"#,
            r#"[{"id":"1","key":"k","secret":"s"},{"id":"1","key":"j","secret":"s"}]"#,
            r#"[{"id":"1","key":"k","secret":"s","typo":1}]"#,
            r#"[{"id":"1","key":"k","secret":"s","webhooks":["https://x"]}]"#,
        ] {
            assert!(PusherApp::parse_list(bad).is_err(), "{bad}");
        }
        let printed = format!("{:?}", PusherApp::derived("hunter2"));
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}

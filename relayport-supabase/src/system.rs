//! `system` messages as typed events, never as user messages.
//!
//! The server reports the state of a channel's extensions in `system` frames:
//! `{"extension": "system" | "postgres_changes", "status": "ok" | "error", "message": "…",
//! "channel": "<name>"}`. A user broadcast can be named `system` too, so these frames are not
//! delivered as [`Message`](relayport_core::Message)s: [`SystemEvent::from_payload`] reads them
//! into a [`SystemEvent`], which [`SupabaseProvider::system_events`] streams (and the `tracing`
//! log records). Errors among them also reach the core as an `Error` event with the mapped
//! [`RealtimeError`](relayport_core::RealtimeError) kind, and a token expiry makes the provider
//! refresh the token and rejoin the channel.
//!
//! [`SupabaseProvider::system_events`]: crate::SupabaseProvider::system_events

use relayport_core::Channel;
use serde_json::Value;

/// What a `system` frame reported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemKind {
    /// `postgres_changes` ok: "Subscribed to PostgreSQL" (the channel's filters are live).
    PostgresSubscribed,
    /// `postgres_changes` error: the filters could not be subscribed.
    PostgresError,
    /// The channel's token expired ("Token has expired N seconds ago"): the server closes the
    /// channel next; the provider refreshes the token and rejoins it.
    TokenExpired,
    /// Any other `status: "error"` (rate limits, revoked permission, …): the server usually
    /// closes the channel next.
    Error,
    /// Any other `status: "ok"` ("Replication connection established", "Server requested
    /// disconnect", …).
    Info,
}

/// One `system` frame of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemEvent {
    /// The channel it arrived on.
    pub channel: Channel,
    /// What it means.
    pub kind: SystemKind,
    /// `extension`: `system` or `postgres_changes`.
    pub extension: String,
    /// `status`: `ok` or `error`.
    pub status: String,
    /// `message`, the server's text.
    pub message: String,
}

impl SystemEvent {
    /// Reads a `system` payload received on `channel`.
    ///
    /// ```
    /// use relayport_supabase::system::{SystemEvent, SystemKind};
    /// use serde_json::json;
    /// let e = SystemEvent::from_payload(
    ///     relayport_core::Channel::private("room"),
    ///     &json!({"extension": "system", "status": "error",
    ///             "message": "Token has expired 3 seconds ago", "channel": "room"}),
    /// );
    /// assert_eq!(e.kind, SystemKind::TokenExpired);
    /// assert!(e.is_error());
    /// ```
    pub fn from_payload(channel: Channel, payload: &Value) -> Self {
        let field = |k: &str| {
            payload
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (extension, status, message) = (field("extension"), field("status"), field("message"));
        let error = status == "error";
        let kind = if is_token_expiry(&message) {
            SystemKind::TokenExpired
        } else if extension == "postgres_changes" {
            if error {
                SystemKind::PostgresError
            } else {
                SystemKind::PostgresSubscribed
            }
        } else if error {
            SystemKind::Error
        } else {
            SystemKind::Info
        };
        Self {
            channel,
            kind,
            extension,
            status,
            message,
        }
    }

    /// Whether the server reported an error (`status: "error"`).
    pub fn is_error(&self) -> bool {
        self.status == "error"
    }
}

/// Whether a server text reports an expired token (`system` messages and join errors such as
/// `InvalidJWTToken: Token has expired 3 seconds ago`).
pub fn is_token_expiry(text: &str) -> bool {
    text.contains("Token has expired")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds() {
        let ch = Channel::public("db");
        let read = |v: Value| SystemEvent::from_payload(ch.clone(), &v).kind;
        assert_eq!(
            read(
                json!({"extension": "postgres_changes", "status": "ok", "message": "Subscribed to PostgreSQL"})
            ),
            SystemKind::PostgresSubscribed
        );
        assert_eq!(
            read(json!({"extension": "postgres_changes", "status": "error", "message": "x"})),
            SystemKind::PostgresError
        );
        assert_eq!(
            read(
                json!({"extension": "system", "status": "error", "message": "Too many messages per second"})
            ),
            SystemKind::Error
        );
        assert_eq!(
            read(
                json!({"extension": "system", "status": "ok", "message": "Server requested disconnect"})
            ),
            SystemKind::Info
        );
        assert_eq!(read(json!("not an object")), SystemKind::Info);
    }
}

//! Client configuration: where to connect, the protocol's limits and user sign-in.
//!
//! Connect, subscribe and heartbeat timeouts belong to the core's runtime
//! ([`relayport_core::ClientConfig`]); the provider keeps only [`PusherConfig::signin_timeout`],
//! the bound of a direct [`PusherProvider::signin`](crate::PusherProvider::signin) call made
//! outside the runtime.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::UserAuthenticator;

/// How a [`PusherProvider`](crate::PusherProvider) connects.
#[derive(Clone)]
#[non_exhaustive]
pub struct PusherConfig {
    /// The app key.
    pub key: String,
    /// The WebSocket host (`ws-{cluster}.pusher.com`, or a self-hosted server).
    pub host: String,
    /// The WebSocket port.
    pub port: u16,
    /// Whether to use TLS (`wss`).
    pub tls: bool,
    /// The `client` query parameter.
    pub client_name: String,
    /// The `version` query parameter.
    pub client_version: String,
    /// The client's activity timeout; the heartbeat interval is the smaller of this and the
    /// server's `activity_timeout` (default 120 s).
    pub activity_timeout: Duration,
    /// How long a direct [`PusherProvider::signin`](crate::PusherProvider::signin) call waits
    /// for `pusher:signin_success` (default 10 s). The sign-in made while connecting is bounded
    /// by the runtime's connect timeout instead.
    pub signin_timeout: Duration,
    /// Client events allowed per second and connection (default 10, Pusher's limit).
    pub client_events_per_second: usize,
    /// The payload limit for client events, in bytes (default 10 KB, pusher.com's limit;
    /// self-hosted servers may allow more).
    pub max_payload: usize,
    /// Client-event names as Laravel Echo's `whisper` writes them (default `false`): when
    /// `true`, publishing `typing` sends `client-typing`, and a received `client-typing` is
    /// delivered as `typing`. When `false`, names are sent and delivered verbatim and a name
    /// without `client-` is refused.
    pub client_event_prefix: bool,
    /// Signs the connection in as a user after every connect (`pusher:signin`), if set.
    pub user_authenticator: Option<Arc<dyn UserAuthenticator>>,
}

impl std::fmt::Debug for PusherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherConfig")
            .field("key", &self.key)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("activity_timeout", &self.activity_timeout)
            .field("max_payload", &self.max_payload)
            .field("client_event_prefix", &self.client_event_prefix)
            .field("user_authenticator", &self.user_authenticator.is_some())
            .finish_non_exhaustive()
    }
}

impl PusherConfig {
    /// Pusher Channels in `cluster` (`wss://ws-{cluster}.pusher.com:443`).
    ///
    /// ```
    /// let c = relayport_pusher::PusherConfig::cluster("app-key", "eu");
    /// assert!(c.url().starts_with("wss://ws-eu.pusher.com:443/app/app-key?protocol=7&client=rust&version="));
    /// ```
    pub fn cluster(key: impl Into<String>, cluster: &str) -> Self {
        Self::host(key, format!("ws-{cluster}.pusher.com"), 443, true)
    }

    /// A self-hosted Pusher-compatible server (sockudo, soketi, Laravel Reverb).
    pub fn host(key: impl Into<String>, host: impl Into<String>, port: u16, tls: bool) -> Self {
        Self {
            key: key.into(),
            host: host.into(),
            port,
            tls,
            client_name: "rust".into(),
            client_version: env!("CARGO_PKG_VERSION").into(),
            activity_timeout: Duration::from_secs(120),
            signin_timeout: Duration::from_secs(10),
            client_events_per_second: 10,
            max_payload: crate::rest::DEFAULT_MAX_PAYLOAD,
            client_event_prefix: false,
            user_authenticator: None,
        }
    }

    /// Signs in as a user after every connect.
    pub fn with_user_authenticator(mut self, authenticator: Arc<dyn UserAuthenticator>) -> Self {
        self.user_authenticator = Some(authenticator);
        self
    }

    /// Changes the client-event payload limit (builder style).
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Adds and strips the `client-` prefix of client events, as Laravel Echo's `whisper`
    /// does (builder style); see [`PusherConfig::client_event_prefix`].
    pub fn with_client_event_prefix(mut self, on: bool) -> Self {
        self.client_event_prefix = on;
        self
    }

    /// The path and query the client requests: `/app/{key}?protocol=7&client=…&version=…&flash=false`.
    pub fn path_and_query(&self) -> String {
        format!(
            "/app/{}?protocol={}&client={}&version={}&flash=false",
            self.key,
            crate::protocol::PROTOCOL_VERSION,
            self.client_name,
            self.client_version
        )
    }

    /// The full WebSocket URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!(
            "{scheme}://{}:{}{}",
            self.host,
            self.port,
            self.path_and_query()
        )
    }
}

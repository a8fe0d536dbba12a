//! [`ProviderConfig`]: which provider to use and how to reach it, from a TOML or JSON file or
//! from environment variables with the names each provider's users already know.
//!
//! # Public and secret settings
//!
//! Every setting is either **public** (safe in a browser, a desktop app or a CLI handed to end
//! users) or a **server secret** (only ever on the backend). Building a client
//! ([`crate::client()`], [`crate::provider()`]) uses only the public parts, whatever the
//! configuration holds: see [`ProviderConfig::client_side`].
//!
//! | provider | public (client) | server secret (publisher, authorizer) |
//! |---|---|---|
//! | `pusher` | `PUSHER_KEY`, `PUSHER_CLUSTER`, `PUSHER_HOST`, `PUSHER_PORT`, `PUSHER_TLS`, `PUSHER_APP_ID`, `PUSHER_MAX_PAYLOAD`, `PUSHER_CLIENT_EVENT_PREFIX`, `PUSHER_USER_AUTH_ENDPOINT`, `PUSHER_USER_DATA` | `PUSHER_SECRET`, `PUSHER_ENCRYPTION_MASTER_KEY_BASE64` |
//! | `ably` | `ABLY_CLIENT_KEY` (a key restricted for clients) or `ABLY_AUTH_URL` (a token endpoint), `ABLY_HOST`, `ABLY_PORT`, `ABLY_TLS` | `ABLY_API_KEY` |
//! | `supabase` | `SUPABASE_URL`, `SUPABASE_ANON_KEY`, `SUPABASE_REALTIME_URL`, `SUPABASE_POSTGRES_CHANGES`, `SUPABASE_PRESENCE_PRIVATE`, `SUPABASE_MAX_PAYLOAD` | `SUPABASE_SERVICE_ROLE_KEY`, `SUPABASE_JWT_SECRET` (with `SUPABASE_JWT_ROLE`, `SUPABASE_JWT_CLAIMS`) |
//! | `selfhosted` | `REALTIME_URL` | `REALTIME_SECRET` |
//! | `socketio` | `SOCKETIO_URL`, `SOCKETIO_NAMESPACE`, `SOCKETIO_PATH`, `SOCKETIO_AUTH` (the CONNECT `auth` JSON object; redacted in logs) | `SOCKETIO_SECRET` (the adapter's secret) |
//! | `firebase` | `FIREBASE_DATABASE_URL`, `FIREBASE_AUTH_TOKEN` (the client's own ID token; redacted in logs), `FIREBASE_ROOT` | none (the database's security rules decide) |
//!
//! Common to all (public): `REALTIME_PROVIDER` (`pusher`, `ably`, `supabase`, `selfhosted`,
//! `socketio`, `firebase`),
//! `REALTIME_AUTH_ENDPOINT` (the application's channel auth endpoint a client asks to sign
//! private and presence subscriptions) and `REALTIME_CLIENT_ID` (the user id a client presents).
//!
//! In a file the same settings are snake_case fields of a table tagged by `provider`:
//!
//! ```
//! use relayport::config::ProviderConfig;
//! let cfg = ProviderConfig::from_toml_str(r#"
//!     provider = "pusher"
//!     app_id = "1234567"
//!     key = "app-key"
//!     secret = "app-secret"
//!     host = "127.0.0.1"
//!     port = 6001
//!     tls = false
//! "#)?;
//! assert_eq!(cfg.provider_name(), "pusher");
//! assert!(!format!("{cfg:?}").contains("app-secret"));
//! # Ok::<(), relayport::RealtimeError>(())
//! ```

mod env;
mod secret;

use std::path::Path;

use relayport_core::{RealtimeError, Result};
use serde::Deserialize;

pub use env::{EnvSource, ProcessEnv};
pub use secret::Secret;

/// Which provider, and its settings. Deserializes from a table tagged by `provider`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum ProviderConfig {
    /// Pusher Channels or a Pusher-compatible server (sockudo, soketi, Reverb).
    Pusher(PusherSettings),
    /// Ably.
    Ably(AblySettings),
    /// Supabase Realtime.
    Supabase(SupabaseSettings),
    /// The self-hosted `relayport-server`.
    #[serde(rename = "selfhosted", alias = "self-hosted")]
    SelfHosted(SelfHostedSettings),
    /// A Socket.IO v4 server running the relayport adapter.
    #[serde(rename = "socketio", alias = "socket.io")]
    SocketIo(SocketIoSettings),
    /// Firebase Realtime Database.
    Firebase(FirebaseSettings),
}

/// Pusher settings (`PUSHER_*`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PusherSettings {
    /// `PUSHER_APP_ID` (public; needed by the publisher's HTTP API paths).
    #[serde(default)]
    pub app_id: Option<String>,
    /// `PUSHER_KEY` (public).
    pub key: String,
    /// `PUSHER_SECRET` (server secret).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// `PUSHER_CLUSTER`, e.g. `eu` (public). Either this or `host`.
    #[serde(default)]
    pub cluster: Option<String>,
    /// `PUSHER_HOST`: a Pusher-compatible server's host (public). Overrides the cluster.
    #[serde(default)]
    pub host: Option<String>,
    /// `PUSHER_PORT` (public; default 443 with TLS, 80 without).
    #[serde(default)]
    pub port: Option<u16>,
    /// `PUSHER_TLS` (public; default true).
    #[serde(default)]
    pub tls: Option<bool>,
    /// `PUSHER_ENCRYPTION_MASTER_KEY_BASE64`: for end-to-end encrypted channels (server secret).
    #[serde(default)]
    pub encryption_master_key_base64: Option<Secret>,
    /// `PUSHER_MAX_PAYLOAD`: the payload limit in bytes of a self-hosted server (public;
    /// needs `host`). The hosted cluster's limit is fixed at 10 KB, the default.
    #[serde(default)]
    pub max_payload: Option<usize>,
    /// `PUSHER_CLIENT_EVENT_PREFIX`: add `client-` to client-event names on send and strip it
    /// on receive, as Laravel Echo's `whisper` does (public; default false).
    #[serde(default)]
    pub client_event_prefix: Option<bool>,
    /// `PUSHER_USER_AUTH_ENDPOINT`: the application's user authentication endpoint; every
    /// connection signs in through it (`pusher:signin`, as pusher-js's `userAuthentication`)
    /// (public).
    #[serde(default)]
    pub user_auth_endpoint: Option<String>,
    /// `PUSHER_USER_DATA`: the user to sign in as, `{"id": …, "user_info": …, "watchlist":
    /// […]}` (JSON; a table in TOML), signed in this process by a trusted client holding
    /// `PUSHER_SECRET` (public).
    #[serde(default)]
    pub user_data: Option<serde_json::Value>,
    /// `REALTIME_AUTH_ENDPOINT` (public).
    #[serde(default)]
    pub auth_endpoint: Option<String>,
    /// `REALTIME_CLIENT_ID` (public).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `REALTIME_ECHO` (public): whether a client receives its own publishes (default true,
    /// the same on every provider; see `ClientBuilder::echo`).
    #[serde(default)]
    pub echo: Option<bool>,
}

/// Ably settings (`ABLY_*`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AblySettings {
    /// `ABLY_API_KEY`, `appId.keyId:secret` (server secret: publisher and token requests).
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// `ABLY_CLIENT_KEY`: a key restricted for client use (public by the app's choice; still
    /// redacted in logs).
    #[serde(default)]
    pub client_key: Option<Secret>,
    /// `ABLY_AUTH_URL`: the app's token endpoint a client fetches tokens from (public).
    #[serde(default)]
    pub auth_url: Option<String>,
    /// `ABLY_HOST`: REST and realtime host (public; default Ably's).
    #[serde(default)]
    pub host: Option<String>,
    /// `ABLY_PORT` (public).
    #[serde(default)]
    pub port: Option<u16>,
    /// `ABLY_TLS` (public; default true).
    #[serde(default)]
    pub tls: Option<bool>,
    /// `REALTIME_AUTH_ENDPOINT` (public).
    #[serde(default)]
    pub auth_endpoint: Option<String>,
    /// `REALTIME_CLIENT_ID` (public).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `REALTIME_ECHO` (public): whether a client receives its own publishes (default true,
    /// the same on every provider; see `ClientBuilder::echo`).
    #[serde(default)]
    pub echo: Option<bool>,
}

/// Supabase settings (`SUPABASE_*`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupabaseSettings {
    /// `SUPABASE_URL`, `https://<ref>.supabase.co` (public).
    pub url: String,
    /// `SUPABASE_ANON_KEY` (public: it ships in every client; redacted in logs anyway).
    #[serde(default)]
    pub anon_key: Option<Secret>,
    /// `SUPABASE_SERVICE_ROLE_KEY` (server secret: the publisher).
    #[serde(default)]
    pub service_role_key: Option<Secret>,
    /// `SUPABASE_JWT_SECRET` (server secret: the authorizer).
    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    /// `SUPABASE_REALTIME_URL`: an explicit realtime endpoint (`ws://host:4000/socket`) for a
    /// server reached directly (public).
    #[serde(default)]
    pub realtime_url: Option<String>,
    /// `SUPABASE_JWT_ROLE`: the `role` claim of the channel tokens the authorizer mints
    /// (default `authenticated`; the Postgres role RLS runs as).
    #[serde(default)]
    pub jwt_role: Option<String>,
    /// `SUPABASE_JWT_CLAIMS`: extra claims of those tokens, a JSON object (in a file, a
    /// table). `role`, `exp`, `iat`, `sub` and `topic` are the authorizer's own.
    #[serde(default)]
    pub jwt_claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// `SUPABASE_POSTGRES_CHANGES`: postgres_changes filters per channel, each
    /// `channel=schema[:table[:EVENT[:filter]]]` (in the variable, separated by spaces or `;`),
    /// e.g. `db=public:messages:INSERT` (public).
    #[serde(default)]
    pub postgres_changes: Vec<String>,
    /// `SUPABASE_PRESENCE_PRIVATE`: join `presence:` channels as private (RLS-guarded)
    /// channels (default false: presence is public, as in realtime-js) (public).
    #[serde(default)]
    pub presence_private: Option<bool>,
    /// `SUPABASE_MAX_PAYLOAD`: the payload limit in bytes the provider announces (default
    /// 256 KB, the Free plan's; set your plan's) (public).
    #[serde(default)]
    pub max_payload: Option<usize>,
    /// `REALTIME_AUTH_ENDPOINT` (public).
    #[serde(default)]
    pub auth_endpoint: Option<String>,
    /// `REALTIME_CLIENT_ID` (public).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `REALTIME_ECHO` (public): whether a client receives its own publishes (default true,
    /// the same on every provider; see `ClientBuilder::echo`).
    #[serde(default)]
    pub echo: Option<bool>,
}

/// Self-hosted server settings (`REALTIME_URL`, `REALTIME_SECRET`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfHostedSettings {
    /// `REALTIME_URL`, `http://host:port` (public).
    pub url: String,
    /// `REALTIME_SECRET` (server secret).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// `REALTIME_AUTH_ENDPOINT` (public).
    #[serde(default)]
    pub auth_endpoint: Option<String>,
    /// `REALTIME_CLIENT_ID` (public).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `REALTIME_ECHO` (public): whether a client receives its own publishes (default true,
    /// the same on every provider; see `ClientBuilder::echo`).
    #[serde(default)]
    pub echo: Option<bool>,
}

/// Socket.IO settings (`SOCKETIO_*`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketIoSettings {
    /// `SOCKETIO_URL`, `http://host:port` (public).
    pub url: String,
    /// `SOCKETIO_NAMESPACE`, default `/` (public).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `SOCKETIO_PATH`, the Engine.IO path, default `/socket.io/` (public).
    #[serde(default)]
    pub path: Option<String>,
    /// `SOCKETIO_AUTH`: the CONNECT `auth` payload, a JSON object (`{"token": "…"}`); the
    /// client's own credential, redacted in logs.
    #[serde(default)]
    pub auth: Option<Secret>,
    /// The convention's event names, where the server's adapter renames them (file only:
    /// `[events]` with `subscribe = "chat:join"`, …; see `relayport_socketio::EventNames`).
    #[serde(default)]
    pub events: Option<std::collections::BTreeMap<String, String>>,
    /// `SOCKETIO_SECRET`: the adapter's secret (server secret: signing and publishing).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// `REALTIME_AUTH_ENDPOINT` (public).
    #[serde(default)]
    pub auth_endpoint: Option<String>,
    /// `REALTIME_CLIENT_ID` (public).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `REALTIME_ECHO` (public): whether a client receives its own publishes (default true,
    /// the same on every provider; see `ClientBuilder::echo`).
    #[serde(default)]
    pub echo: Option<bool>,
}

/// Firebase Realtime Database settings (`FIREBASE_*`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirebaseSettings {
    /// `FIREBASE_DATABASE_URL`, `https://<db>.firebaseio.com` (public).
    pub database_url: String,
    /// `FIREBASE_AUTH_TOKEN`: the client's ID token (or, on a backend, a database secret);
    /// travels as `auth=` (redacted in logs).
    #[serde(default)]
    pub auth_token: Option<Secret>,
    /// `FIREBASE_ROOT`: the path under which channels live (public; default `realtime`).
    #[serde(default)]
    pub root: Option<String>,
    /// `REALTIME_AUTH_ENDPOINT` (public).
    #[serde(default)]
    pub auth_endpoint: Option<String>,
    /// `REALTIME_CLIENT_ID` (public).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `REALTIME_ECHO` (public): whether a client receives its own publishes (default true,
    /// the same on every provider; see `ClientBuilder::echo`).
    #[serde(default)]
    pub echo: Option<bool>,
}

/// The provider names `REALTIME_PROVIDER` accepts.
pub const PROVIDERS: [&str; 6] = [
    "pusher",
    "ably",
    "supabase",
    "selfhosted",
    "socketio",
    "firebase",
];

impl ProviderConfig {
    /// The provider's short name (`pusher`, `ably`, `supabase`, `selfhosted`).
    pub fn provider_name(&self) -> &'static str {
        match self {
            Self::Pusher(_) => "pusher",
            Self::Ably(_) => "ably",
            Self::Supabase(_) => "supabase",
            Self::SelfHosted(_) => "selfhosted",
            Self::SocketIo(_) => "socketio",
            Self::Firebase(_) => "firebase",
        }
    }

    /// Reads the configuration from environment variables, through `env` (a map in tests,
    /// [`ProcessEnv`] in programs). `REALTIME_PROVIDER` picks the provider.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self> {
        let name = env::required(env, "REALTIME_PROVIDER")?;
        Self::from_env_for(&name, env)
    }

    /// Reads the settings of provider `name` from environment variables (ignoring
    /// `REALTIME_PROVIDER`; for a `--provider` flag).
    pub fn from_env_for(name: &str, env: &dyn EnvSource) -> Result<Self> {
        env::load(name, env)
    }

    /// Parses a TOML document.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        toml::from_str(text)
            .map_err(|e| RealtimeError::Config(format!("TOML configuration: {}", e.message())))
    }

    /// Parses a JSON document.
    pub fn from_json_str(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| RealtimeError::Config(format!("JSON configuration: {e}")))
    }

    /// Reads a file: JSON when its name ends in `.json`, TOML otherwise.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            RealtimeError::Config(format!("configuration file `{}`: {e}", path.display()))
        })?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            Self::from_json_str(&text)
        } else {
            Self::from_toml_str(&text)
        };
        parsed.map_err(|e| match e {
            RealtimeError::Config(m) => {
                RealtimeError::Config(format!("configuration file `{}`: {m}", path.display()))
            }
            other => other,
        })
    }

    /// The same configuration without any server secret: what a client may hold.
    ///
    /// ```
    /// use relayport::config::{MapEnv, ProviderConfig};
    /// let env = MapEnv::from([
    ///     ("REALTIME_PROVIDER", "selfhosted"),
    ///     ("REALTIME_URL", "http://127.0.0.1:8080"),
    ///     ("REALTIME_SECRET", "s3cret"),
    /// ]);
    /// let cfg = ProviderConfig::from_env(&env)?;
    /// assert!(cfg.has_server_secret());
    /// assert!(!cfg.client_side().has_server_secret());
    /// # Ok::<(), relayport::RealtimeError>(())
    /// ```
    pub fn client_side(&self) -> Self {
        match self {
            Self::Pusher(p) => Self::Pusher(PusherSettings {
                secret: None,
                encryption_master_key_base64: None,
                ..p.clone()
            }),
            Self::Ably(a) => Self::Ably(AblySettings {
                api_key: None,
                ..a.clone()
            }),
            Self::Supabase(s) => Self::Supabase(SupabaseSettings {
                service_role_key: None,
                jwt_secret: None,
                ..s.clone()
            }),
            Self::SelfHosted(s) => Self::SelfHosted(SelfHostedSettings {
                secret: None,
                ..s.clone()
            }),
            Self::SocketIo(s) => Self::SocketIo(SocketIoSettings {
                secret: None,
                ..s.clone()
            }),
            // The token is the client's own credential: no server secret to strip.
            Self::Firebase(f) => Self::Firebase(f.clone()),
        }
    }

    /// Whether any server secret is present.
    pub fn has_server_secret(&self) -> bool {
        match self {
            Self::Pusher(p) => p.secret.is_some() || p.encryption_master_key_base64.is_some(),
            Self::Ably(a) => a.api_key.is_some(),
            Self::Supabase(s) => s.service_role_key.is_some() || s.jwt_secret.is_some(),
            Self::SelfHosted(s) => s.secret.is_some(),
            Self::SocketIo(s) => s.secret.is_some(),
            Self::Firebase(_) => false,
        }
    }

    /// The application's channel auth endpoint, if configured (`REALTIME_AUTH_ENDPOINT`).
    pub fn auth_endpoint(&self) -> Option<&str> {
        match self {
            Self::Pusher(p) => p.auth_endpoint.as_deref(),
            Self::Ably(a) => a.auth_endpoint.as_deref(),
            Self::Supabase(s) => s.auth_endpoint.as_deref(),
            Self::SelfHosted(s) => s.auth_endpoint.as_deref(),
            Self::SocketIo(s) => s.auth_endpoint.as_deref(),
            Self::Firebase(f) => f.auth_endpoint.as_deref(),
        }
    }

    /// The client id, if configured (`REALTIME_CLIENT_ID`).
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::Pusher(p) => p.client_id.as_deref(),
            Self::Ably(a) => a.client_id.as_deref(),
            Self::Supabase(s) => s.client_id.as_deref(),
            Self::SelfHosted(s) => s.client_id.as_deref(),
            Self::SocketIo(s) => s.client_id.as_deref(),
            Self::Firebase(f) => f.client_id.as_deref(),
        }
    }

    /// `REALTIME_ECHO`: whether a client receives its own publishes (`None`: the default,
    /// `true`).
    pub fn echo(&self) -> Option<bool> {
        match self {
            Self::Pusher(p) => p.echo,
            Self::Ably(a) => a.echo,
            Self::Supabase(s) => s.echo,
            Self::SelfHosted(s) => s.echo,
            Self::SocketIo(s) => s.echo,
            Self::Firebase(f) => f.echo,
        }
    }

    /// Sets `echo` (builder style).
    pub fn with_echo(mut self, echo: bool) -> Self {
        let echo = Some(echo);
        match &mut self {
            Self::Pusher(p) => p.echo = echo,
            Self::Ably(a) => a.echo = echo,
            Self::Supabase(s) => s.echo = echo,
            Self::SelfHosted(s) => s.echo = echo,
            Self::SocketIo(s) => s.echo = echo,
            Self::Firebase(f) => f.echo = echo,
        }
        self
    }

    /// Sets the client id (builder style).
    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        let id = Some(id.into());
        match &mut self {
            Self::Pusher(p) => p.client_id = id,
            Self::Ably(a) => a.client_id = id,
            Self::Supabase(s) => s.client_id = id,
            Self::SelfHosted(s) => s.client_id = id,
            Self::SocketIo(s) => s.client_id = id,
            Self::Firebase(f) => f.client_id = id,
        }
        self
    }
}

pub use env::MapEnv;

#[cfg(test)]
mod tests;

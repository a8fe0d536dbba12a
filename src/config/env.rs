//! Reading [`ProviderConfig`] from environment variables through an injectable source.

use std::collections::{BTreeMap, HashMap};

use relayport_core::{RealtimeError, Result};

use super::{
    AblySettings, FirebaseSettings, PROVIDERS, ProviderConfig, PusherSettings, Secret,
    SelfHostedSettings, SocketIoSettings, SupabaseSettings,
};

/// Where environment variables come from: the process ([`ProcessEnv`]) or a map
/// ([`MapEnv`], `HashMap`, `BTreeMap`), so tests never touch the process environment.
pub trait EnvSource {
    /// The variable's value; an empty value counts as unset.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Variables held in a map.
#[derive(Debug, Clone, Default)]
pub struct MapEnv(BTreeMap<String, String>);

impl MapEnv {
    /// Sets a variable (builder style).
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for MapEnv {
    fn from(pairs: [(K, V); N]) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl EnvSource for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

fn optional(env: &dyn EnvSource, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

pub(super) fn required(env: &dyn EnvSource, name: &str) -> Result<String> {
    optional(env, name).ok_or_else(|| RealtimeError::Config(format!("{name} is not set")))
}

fn secret(env: &dyn EnvSource, name: &str) -> Option<Secret> {
    optional(env, name).map(Secret::new)
}

fn port(env: &dyn EnvSource, name: &str) -> Result<Option<u16>> {
    optional(env, name)
        .map(|v| match v.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(RealtimeError::Config(format!(
                "{name} must be a port number from 1 to 65535 (got `{v}`)"
            ))),
        })
        .transpose()
}

fn flag(env: &dyn EnvSource, name: &str) -> Result<Option<bool>> {
    optional(env, name)
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(RealtimeError::Config(format!(
                "{name} must be true or false (got `{v}`)"
            ))),
        })
        .transpose()
}

fn bytes(env: &dyn EnvSource, name: &str) -> Result<Option<usize>> {
    optional(env, name)
        .map(|v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(RealtimeError::Config(format!(
                "{name} must be a positive number of bytes (got `{v}`)"
            ))),
        })
        .transpose()
}

fn json_object(
    env: &dyn EnvSource,
    name: &str,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
    optional(env, name)
        .map(|v| match serde_json::from_str::<serde_json::Value>(&v) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(RealtimeError::Config(format!(
                "{name} must be a JSON object such as {{\"id\":\"alice\"}}"
            ))),
        })
        .transpose()
}

fn url(name: &str, value: Option<String>) -> Result<Option<String>> {
    match value {
        Some(v) if !(v.contains("://") && v.split("://").nth(1).is_some_and(|r| !r.is_empty())) => {
            Err(RealtimeError::Config(format!(
                "{name} must be a URL such as https://host:port (got `{v}`)"
            )))
        }
        other => Ok(other),
    }
}

pub(super) fn load(name: &str, env: &dyn EnvSource) -> Result<ProviderConfig> {
    let auth_endpoint = url(
        "REALTIME_AUTH_ENDPOINT",
        optional(env, "REALTIME_AUTH_ENDPOINT"),
    )?;
    let client_id = optional(env, "REALTIME_CLIENT_ID");
    let echo = flag(env, "REALTIME_ECHO")?;
    match name.trim().to_ascii_lowercase().as_str() {
        "pusher" => {
            let settings = PusherSettings {
                app_id: optional(env, "PUSHER_APP_ID"),
                key: required(env, "PUSHER_KEY")?,
                secret: secret(env, "PUSHER_SECRET"),
                cluster: optional(env, "PUSHER_CLUSTER"),
                host: optional(env, "PUSHER_HOST"),
                port: port(env, "PUSHER_PORT")?,
                tls: flag(env, "PUSHER_TLS")?,
                encryption_master_key_base64: secret(env, "PUSHER_ENCRYPTION_MASTER_KEY_BASE64"),
                max_payload: bytes(env, "PUSHER_MAX_PAYLOAD")?,
                client_event_prefix: flag(env, "PUSHER_CLIENT_EVENT_PREFIX")?,
                user_auth_endpoint: url(
                    "PUSHER_USER_AUTH_ENDPOINT",
                    optional(env, "PUSHER_USER_AUTH_ENDPOINT"),
                )?,
                user_data: json_object(env, "PUSHER_USER_DATA")?.map(serde_json::Value::Object),
                auth_endpoint,
                client_id,
                echo,
            };
            if settings.cluster.is_none() && settings.host.is_none() {
                return Err(RealtimeError::Config(
                    "PUSHER_CLUSTER is not set (set PUSHER_CLUSTER, or PUSHER_HOST for a Pusher-compatible server)".into(),
                ));
            }
            Ok(ProviderConfig::Pusher(settings))
        }
        "ably" => Ok(ProviderConfig::Ably(AblySettings {
            api_key: secret(env, "ABLY_API_KEY"),
            client_key: secret(env, "ABLY_CLIENT_KEY"),
            auth_url: url("ABLY_AUTH_URL", optional(env, "ABLY_AUTH_URL"))?,
            host: optional(env, "ABLY_HOST"),
            port: port(env, "ABLY_PORT")?,
            tls: flag(env, "ABLY_TLS")?,
            auth_endpoint,
            client_id,
            echo,
        })),
        "supabase" => Ok(ProviderConfig::Supabase(SupabaseSettings {
            url: url("SUPABASE_URL", Some(required(env, "SUPABASE_URL")?))?.unwrap_or_default(),
            anon_key: secret(env, "SUPABASE_ANON_KEY"),
            service_role_key: secret(env, "SUPABASE_SERVICE_ROLE_KEY"),
            jwt_secret: secret(env, "SUPABASE_JWT_SECRET"),
            realtime_url: url(
                "SUPABASE_REALTIME_URL",
                optional(env, "SUPABASE_REALTIME_URL"),
            )?,
            jwt_role: optional(env, "SUPABASE_JWT_ROLE"),
            jwt_claims: json_object(env, "SUPABASE_JWT_CLAIMS")?,
            postgres_changes: optional(env, "SUPABASE_POSTGRES_CHANGES")
                .map(|v| {
                    v.split([' ', ';', '\n', '\t'])
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            presence_private: flag(env, "SUPABASE_PRESENCE_PRIVATE")?,
            max_payload: bytes(env, "SUPABASE_MAX_PAYLOAD")?,
            auth_endpoint,
            client_id,
            echo,
        })),
        "selfhosted" | "self-hosted" => Ok(ProviderConfig::SelfHosted(SelfHostedSettings {
            url: url("REALTIME_URL", Some(required(env, "REALTIME_URL")?))?.unwrap_or_default(),
            secret: secret(env, "REALTIME_SECRET"),
            auth_endpoint,
            client_id,
            echo,
        })),
        "socketio" | "socket.io" => {
            let auth = optional(env, "SOCKETIO_AUTH");
            if let Some(a) = &auth
                && !serde_json::from_str::<serde_json::Value>(a).is_ok_and(|v| v.is_object())
            {
                return Err(RealtimeError::Config(
                    "SOCKETIO_AUTH must be a JSON object such as {\"token\":\"…\"}".into(),
                ));
            }
            Ok(ProviderConfig::SocketIo(SocketIoSettings {
                url: url("SOCKETIO_URL", Some(required(env, "SOCKETIO_URL")?))?.unwrap_or_default(),
                namespace: optional(env, "SOCKETIO_NAMESPACE"),
                path: optional(env, "SOCKETIO_PATH"),
                auth: auth.map(Secret::new),
                events: None,
                secret: secret(env, "SOCKETIO_SECRET"),
                auth_endpoint,
                client_id,
                echo,
            }))
        }
        "firebase" => Ok(ProviderConfig::Firebase(FirebaseSettings {
            database_url: url(
                "FIREBASE_DATABASE_URL",
                Some(required(env, "FIREBASE_DATABASE_URL")?),
            )?
            .unwrap_or_default(),
            auth_token: secret(env, "FIREBASE_AUTH_TOKEN"),
            root: optional(env, "FIREBASE_ROOT"),
            auth_endpoint,
            client_id,
            echo,
        })),
        other => Err(RealtimeError::Config(format!(
            "REALTIME_PROVIDER `{other}` is not one of {}",
            PROVIDERS.join(", ")
        ))),
    }
}

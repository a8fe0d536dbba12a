//! The peer's configuration: its keys (with capabilities) and its timings.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::capability::Capability;

/// An API key the peer accepts: `appId.keyId:secret` with its capability.
#[derive(Debug, Clone)]
pub struct KeyConfig {
    /// `appId.keyId`.
    pub name: String,
    /// The secret after the colon.
    pub secret: String,
    /// What the key (and tokens issued from it) may do.
    pub capability: Capability,
}

impl KeyConfig {
    /// A key from its full form `appId.keyId:secret` and a capability.
    pub fn new(full: &str, capability: Capability) -> Self {
        let (name, secret) = full.split_once(':').unwrap_or((full, ""));
        Self {
            name: name.to_owned(),
            secret: secret.to_owned(),
            capability,
        }
    }

    /// `appId.keyId:secret`.
    pub fn full(&self) -> String {
        format!("{}:{}", self.name, self.secret)
    }
}

/// The peer's settings. `Default` gives Ably's timings and the keys of [`keys`](crate::keys).
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// The accepted keys.
    pub keys: Vec<KeyConfig>,
    /// How long a dropped connection can be resumed (`connectionStateTtl`, Ably: 2 min).
    pub connection_state_ttl: Duration,
    /// Server HEARTBEAT period, also announced as `maxIdleInterval` (Ably: 15 s).
    pub max_idle_interval: Duration,
    /// How long a dropped connection's presence members stay before they leave (Ably: 15 s).
    pub presence_leave_grace: Duration,
    /// Token lifetime when a TokenRequest has no `ttl` (Ably: 60 min).
    pub default_token_ttl: Duration,
    /// How far a TokenRequest's timestamp may be from the peer's clock (Ably: ~2 min).
    pub token_request_window: Duration,
    /// `maxMessageSize` in connectionDetails and the REST limit.
    pub max_message_size: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            port: 0,
            keys: crate::keys::all(),
            connection_state_ttl: Duration::from_secs(120),
            max_idle_interval: Duration::from_secs(15),
            presence_leave_grace: Duration::from_secs(15),
            default_token_ttl: Duration::from_secs(3600),
            token_request_window: Duration::from_secs(120),
            max_message_size: 65536,
        }
    }
}

/// The JSON form of a configuration file (`--config`): every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// `[{"key": "appId.keyId:secret", "capability": {...}}]`, replacing the default keys.
    pub keys: Option<Vec<KeyEntry>>,
    /// ms.
    pub connection_state_ttl: Option<u64>,
    /// ms.
    pub max_idle_interval: Option<u64>,
    /// ms.
    pub presence_leave_grace: Option<u64>,
    /// ms.
    pub default_token_ttl: Option<u64>,
}

/// One key of a configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// `appId.keyId:secret`.
    pub key: String,
    /// The capability object (default: everything).
    pub capability: Option<Value>,
}

impl ConfigFile {
    /// Applies the file over `cfg`.
    pub fn apply(self, mut cfg: PeerConfig) -> Result<PeerConfig, String> {
        if let Some(keys) = self.keys {
            cfg.keys = keys
                .into_iter()
                .map(|k| {
                    if !k.key.contains(':') || !k.key.contains('.') {
                        return Err(format!("key `{}` is not appId.keyId:secret", k.key));
                    }
                    let cap = match k.capability {
                        Some(v) => Capability::parse(&v)?,
                        None => Capability::all(),
                    };
                    Ok(KeyConfig::new(&k.key, cap))
                })
                .collect::<Result<_, String>>()?;
        }
        let ms = Duration::from_millis;
        if let Some(v) = self.connection_state_ttl {
            cfg.connection_state_ttl = ms(v);
        }
        if let Some(v) = self.max_idle_interval {
            cfg.max_idle_interval = ms(v);
        }
        if let Some(v) = self.presence_leave_grace {
            cfg.presence_leave_grace = ms(v);
        }
        if let Some(v) = self.default_token_ttl {
            cfg.default_token_ttl = ms(v);
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::Op;

    #[test]
    fn a_config_file_replaces_keys_and_timings() {
        let file: ConfigFile = serde_json::from_str(
            r#"{"keys": [{"key": "a.b:s", "capability": {"x:*": ["subscribe"]}}, {"key": "a.c:t"}],
                "connectionStateTtl": 2000, "presenceLeaveGrace": 500}"#,
        )
        .unwrap();
        let cfg = file.apply(PeerConfig::default()).unwrap();
        assert_eq!(cfg.keys.len(), 2);
        assert_eq!(
            (cfg.keys[0].name.as_str(), cfg.keys[0].secret.as_str()),
            ("a.b", "s")
        );
        assert!(cfg.keys[0].capability.allows("x:1", Op::Subscribe));
        assert!(!cfg.keys[0].capability.allows("x:1", Op::Publish));
        assert_eq!(cfg.keys[1].capability, Capability::all());
        assert_eq!(cfg.connection_state_ttl, Duration::from_secs(2));
        assert_eq!(cfg.presence_leave_grace, Duration::from_millis(500));
        assert_eq!(cfg.max_idle_interval, Duration::from_secs(15), "untouched");
    }

    #[test]
    fn bad_config_files_are_refused() {
        assert!(serde_json::from_str::<ConfigFile>(r#"{"unknown": 1}"#).is_err());
        let no_secret: ConfigFile =
            serde_json::from_str(r#"{"keys": [{"key": "nosecret"}]}"#).unwrap();
        assert!(no_secret.apply(PeerConfig::default()).is_err());
        let bad_cap: ConfigFile =
            serde_json::from_str(r#"{"keys": [{"key": "a.b:s", "capability": {"x": []}}]}"#)
                .unwrap();
        assert!(bad_cap.apply(PeerConfig::default()).is_err());
    }
}

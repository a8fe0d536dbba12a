//! Dispatch from a configuration to the provider crate behind its feature.

use relayport_core::{ChannelAuthorizer, Publisher, RealtimeError, RealtimeProvider, Result};

use crate::config::ProviderConfig;

#[cfg(feature = "ably")]
use super::ably;
#[cfg(feature = "firebase")]
use super::firebase;
#[cfg(feature = "pusher")]
use super::pusher;
#[cfg(feature = "selfhosted")]
use super::selfhosted;
#[cfg(feature = "socketio")]
use super::socketio;
#[cfg(feature = "supabase")]
use super::supabase;

#[allow(dead_code)]
fn disabled(name: &str) -> RealtimeError {
    RealtimeError::Config(format!(
        "provider `{name}` is not compiled in (enable the `{name}` cargo feature of `relayport`)"
    ))
}

/// The provider for a public configuration. `trusted` is the full configuration when the
/// caller holds the secret and allows signing in this process.
pub(crate) fn build_provider(
    public: &ProviderConfig,
    trusted: Option<&ProviderConfig>,
) -> Result<Box<dyn RealtimeProvider>> {
    let _ = trusted;
    match public {
        #[cfg(feature = "pusher")]
        ProviderConfig::Pusher(p) => {
            let full = match trusted {
                Some(ProviderConfig::Pusher(full)) => Some(full),
                _ => None,
            };
            Ok(Box::new(relayport_pusher::PusherProvider::new(
                pusher::client_config(p, full)?,
            )))
        }
        #[cfg(feature = "ably")]
        ProviderConfig::Ably(a) => {
            let key = match trusted {
                Some(ProviderConfig::Ably(full)) => full.api_key.as_ref(),
                _ => None,
            };
            Ok(Box::new(relayport_ably::AblyRealtime::new(
                ably::client_config(a, key)?,
            )))
        }
        #[cfg(feature = "supabase")]
        ProviderConfig::Supabase(s) => Ok(Box::new(supabase::provider(s, trusted)?)),
        #[cfg(feature = "selfhosted")]
        ProviderConfig::SelfHosted(s) => Ok(Box::new(selfhosted::provider(s)?)),
        #[cfg(feature = "socketio")]
        ProviderConfig::SocketIo(s) => Ok(Box::new(socketio::provider(s)?)),
        #[cfg(feature = "firebase")]
        ProviderConfig::Firebase(f) => Ok(Box::new(firebase::provider(f)?)),
        #[allow(unreachable_patterns)]
        other => Err(disabled(other.provider_name())),
    }
}

/// The backend publisher.
pub(crate) fn build_publisher(cfg: &ProviderConfig) -> Result<Box<dyn Publisher>> {
    match cfg {
        #[cfg(feature = "pusher")]
        ProviderConfig::Pusher(p) => Ok(Box::new(pusher::rest(p)?)),
        #[cfg(feature = "ably")]
        ProviderConfig::Ably(a) => Ok(Box::new(ably::rest(a)?)),
        #[cfg(feature = "supabase")]
        ProviderConfig::Supabase(s) => Ok(Box::new(supabase::publisher(s)?)),
        #[cfg(feature = "selfhosted")]
        ProviderConfig::SelfHosted(s) => Ok(Box::new(selfhosted::publisher(s)?)),
        #[cfg(feature = "socketio")]
        ProviderConfig::SocketIo(s) => Ok(Box::new(socketio::publisher(s)?)),
        #[cfg(feature = "firebase")]
        ProviderConfig::Firebase(f) => Ok(Box::new(firebase::publisher(f)?)),
        #[allow(unreachable_patterns)]
        other => Err(disabled(other.provider_name())),
    }
}

/// The backend authorizer.
pub(crate) fn build_authorizer(cfg: &ProviderConfig) -> Result<Box<dyn ChannelAuthorizer>> {
    match cfg {
        #[cfg(feature = "pusher")]
        ProviderConfig::Pusher(p) => Ok(Box::new(pusher::authorizer(p)?)),
        #[cfg(feature = "ably")]
        ProviderConfig::Ably(a) => Ok(Box::new(ably::authorizer(a)?)),
        #[cfg(feature = "supabase")]
        ProviderConfig::Supabase(s) => Ok(Box::new(supabase::authorizer(s)?)),
        #[cfg(feature = "selfhosted")]
        ProviderConfig::SelfHosted(s) => Ok(Box::new(selfhosted::authorizer(s)?)),
        #[cfg(feature = "socketio")]
        ProviderConfig::SocketIo(s) => Ok(Box::new(socketio::authorizer(s)?)),
        #[cfg(feature = "firebase")]
        ProviderConfig::Firebase(_) => Ok(Box::new(relayport_firebase::RulesAuthorizer)),
        #[allow(unreachable_patterns)]
        other => Err(disabled(other.provider_name())),
    }
}

/// A required secret, or a `Config` error naming its variable and why it is needed.
#[allow(dead_code)]
pub(crate) fn need<'a>(
    value: Option<&'a crate::config::Secret>,
    var: &str,
    what: &str,
) -> Result<&'a str> {
    match value.map(|s| s.expose()).filter(|s| !s.is_empty()) {
        Some(v) => Ok(v),
        None => Err(RealtimeError::Config(format!("{var} is not set ({what})"))),
    }
}

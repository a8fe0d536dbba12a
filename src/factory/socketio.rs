//! Socket.IO: `SocketIoProvider`, `SocketIoPublisher`, `SocketIoAuthorizer` from
//! [`SocketIoSettings`].

use relayport_core::{RealtimeError, Result};
use relayport_socketio::{
    EventNames, SocketIoAuthorizer, SocketIoConfig, SocketIoProvider, SocketIoPublisher,
};

use super::build::need;
use crate::config::SocketIoSettings;

fn config_error(var: &str, e: &RealtimeError) -> RealtimeError {
    RealtimeError::Config(format!("{var}: {}", super::strip_config(e)))
}

/// The client configuration: URL, namespace, path, CONNECT auth and event names.
pub(crate) fn client_config(s: &SocketIoSettings) -> Result<SocketIoConfig> {
    let mut config =
        SocketIoConfig::new(&s.url).map_err(|e| config_error("SOCKETIO_URL is malformed", &e))?;
    if let Some(ns) = &s.namespace {
        config = config
            .with_namespace(ns)
            .map_err(|e| config_error("SOCKETIO_NAMESPACE", &e))?;
    }
    if let Some(path) = &s.path {
        config = config.with_path(path);
    }
    if let Some(auth) = &s.auth {
        let value = serde_json::from_str(auth.expose())
            .map_err(|_| RealtimeError::Config("SOCKETIO_AUTH must be a JSON object".into()))?;
        config = config
            .with_auth(value)
            .map_err(|e| config_error("SOCKETIO_AUTH", &e))?;
    }
    if let Some(events) = &s.events {
        let names: EventNames = serde_json::to_value(events)
            .and_then(serde_json::from_value)
            .map_err(|e| RealtimeError::Config(format!("socketio events: {e}")))?;
        config = config.with_events(names);
    }
    Ok(config)
}

/// The client provider (public settings only).
pub(crate) fn provider(s: &SocketIoSettings) -> Result<SocketIoProvider> {
    SocketIoProvider::new(client_config(s)?)
}

/// The adapter's HTTP publish endpoint, signed with the secret.
pub(crate) fn publisher(s: &SocketIoSettings) -> Result<SocketIoPublisher> {
    let secret = need(
        s.secret.as_ref(),
        "SOCKETIO_SECRET",
        "server side only: publishing needs it",
    )?;
    SocketIoPublisher::new(&s.url, secret)
        .map_err(|e| config_error("SOCKETIO_URL is malformed", &e))
}

/// HMAC signatures with the secret.
pub(crate) fn authorizer(s: &SocketIoSettings) -> Result<SocketIoAuthorizer> {
    let secret = need(
        s.secret.as_ref(),
        "SOCKETIO_SECRET",
        "server side only: signing needs it",
    )?;
    Ok(SocketIoAuthorizer::new(secret))
}

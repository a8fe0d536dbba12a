//! Ably: `AblyRealtime`, `AblyRest`, `AblyAuthorizer` from [`AblySettings`].

use relayport_ably::{AblyAuthorizer, AblyConfig, AblyRest, ApiKey, Credentials, RestConfig};
use relayport_core::{RealtimeError, Result};

use super::build::need;
use crate::config::{AblySettings, Secret};

fn parse_key(value: &str, var: &str) -> Result<ApiKey> {
    ApiKey::parse(value).map_err(|_| {
        RealtimeError::Config(format!(
            "{var} is malformed (an Ably key has the form `appId.keyId:secret`)"
        ))
    })
}

/// The client configuration. Credentials: for a trusted caller passing `server_key`, token
/// requests signed in this process with the server key (its full capability: no per-channel
/// tokens); otherwise `ABLY_CLIENT_KEY` (its capability decides what the client reaches), else
/// `ABLY_AUTH_URL` (the app's token endpoint, whose tokens name the user's channels).
pub(crate) fn client_config(a: &AblySettings, server_key: Option<&Secret>) -> Result<AblyConfig> {
    let credentials = if let Some(k) = server_key {
        Credentials::TokenFromKey(parse_key(k.expose(), "ABLY_API_KEY")?)
    } else if let Some(k) = &a.client_key {
        Credentials::Key(parse_key(k.expose(), "ABLY_CLIENT_KEY")?)
    } else if let Some(url) = &a.auth_url {
        Credentials::AuthUrl(url.clone())
    } else {
        return Err(RealtimeError::Config(
            "ABLY_CLIENT_KEY or ABLY_AUTH_URL is not set (a client never uses ABLY_API_KEY, the server key)".into(),
        ));
    };
    let mut cfg = AblyConfig::new(credentials);
    if let Some(host) = &a.host {
        cfg.realtime_host = host.clone();
        cfg.rest_host = host.clone();
    }
    if let Some(tls) = a.tls {
        cfg.tls = tls;
    }
    if let Some(port) = a.port {
        cfg.realtime_port = Some(port);
        cfg.rest_port = Some(port);
    }
    if let Some(id) = &a.client_id {
        cfg.client_id = Some(id.clone());
    }
    Ok(cfg)
}

fn server_key(a: &AblySettings, what: &str) -> Result<ApiKey> {
    parse_key(
        need(a.api_key.as_ref(), "ABLY_API_KEY", what)?,
        "ABLY_API_KEY",
    )
}

/// The REST publisher (basic auth with the server key).
pub(crate) fn rest(a: &AblySettings) -> Result<AblyRest> {
    let mut cfg = RestConfig::with_key(server_key(a, "server side only: publishing needs it")?);
    if let Some(host) = &a.host {
        cfg.host = host.clone();
    }
    if let Some(tls) = a.tls {
        cfg.tls = tls;
    }
    cfg.port = a.port;
    AblyRest::new(cfg)
}

/// Token requests signed with the server key.
pub(crate) fn authorizer(a: &AblySettings) -> Result<AblyAuthorizer> {
    Ok(AblyAuthorizer::new(server_key(
        a,
        "server side only: token requests are signed with it",
    )?))
}

//! Pusher: `PusherProvider`, `PusherRest`, `PusherAuthorizer` from [`PusherSettings`].
//!
//! User sign-in (`pusher:signin`, needed by apps with user authentication enabled, which
//! close a connection that has not signed in within 30 s): through
//! `PUSHER_USER_AUTH_ENDPOINT` when set, otherwise signed in this process from
//! `PUSHER_USER_DATA` when the trusted configuration holds `PUSHER_SECRET`.

use std::sync::Arc;

use relayport_core::{RealtimeError, Result};
use relayport_pusher::rest::DEFAULT_MAX_PAYLOAD;
use relayport_pusher::{
    Credentials, EndpointUserAuthenticator, PusherAuthorizer, PusherConfig, PusherRest,
    UserAuthenticator,
};

use super::build::need;
use crate::config::PusherSettings;

fn key(p: &PusherSettings) -> Result<&str> {
    if p.key.trim().is_empty() {
        return Err(RealtimeError::Config("PUSHER_KEY is empty".into()));
    }
    Ok(&p.key)
}

fn endpoint(p: &PusherSettings) -> Result<Endpoint<'_>> {
    match (&p.host, &p.cluster) {
        (Some(host), _) => {
            let tls = p.tls.unwrap_or(true);
            let port = p.port.unwrap_or(if tls { 443 } else { 80 });
            Ok(Endpoint::Host(host, port, tls))
        }
        (None, Some(cluster)) if p.port.is_none() && p.tls.is_none() => {
            Ok(Endpoint::Cluster(cluster))
        }
        (None, Some(_)) => Err(RealtimeError::Config(
            "PUSHER_PORT and PUSHER_TLS need PUSHER_HOST (a cluster is always TLS on 443)".into(),
        )),
        (None, None) => Err(RealtimeError::Config(
            "PUSHER_CLUSTER is not set (set PUSHER_CLUSTER, or PUSHER_HOST for a Pusher-compatible server)".into(),
        )),
    }
}

enum Endpoint<'a> {
    Cluster(&'a str),
    Host(&'a str, u16, bool),
}

/// The payload limit: 10 KB on the hosted cluster, `PUSHER_MAX_PAYLOAD` on a custom host.
fn max_payload(p: &PusherSettings) -> Result<usize> {
    match (p.max_payload, &p.host) {
        (None, _) => Ok(DEFAULT_MAX_PAYLOAD),
        (Some(0), _) => Err(RealtimeError::Config(
            "PUSHER_MAX_PAYLOAD must be a positive number of bytes".into(),
        )),
        (Some(n), Some(_)) => Ok(n),
        (Some(_), None) => Err(RealtimeError::Config(
            "PUSHER_MAX_PAYLOAD applies to a self-hosted server (PUSHER_HOST); the hosted cluster's limit is 10 KB".into(),
        )),
    }
}

/// The client configuration: key, host, port, TLS, limits and user sign-in. It has no field
/// for a secret; `trusted` (the full settings of a process holding the secret) lets it sign
/// the user in here.
pub(crate) fn client_config(
    p: &PusherSettings,
    trusted: Option<&PusherSettings>,
) -> Result<PusherConfig> {
    let key = key(p)?;
    let config = match endpoint(p)? {
        Endpoint::Cluster(c) => PusherConfig::cluster(key, c),
        Endpoint::Host(h, port, tls) => PusherConfig::host(key, h, port, tls),
    }
    .with_max_payload(max_payload(p)?)
    .with_client_event_prefix(p.client_event_prefix.unwrap_or(false));
    Ok(match user_authenticator(p, trusted)? {
        Some(a) => config.with_user_authenticator(a),
        None => config,
    })
}

/// Who signs the user in, if anyone: the endpoint, or this process with the secret.
fn user_authenticator(
    p: &PusherSettings,
    trusted: Option<&PusherSettings>,
) -> Result<Option<Arc<dyn UserAuthenticator>>> {
    if let Some(url) = &p.user_auth_endpoint {
        let endpoint = EndpointUserAuthenticator::new(url.clone()).map_err(|e| {
            RealtimeError::Config(format!(
                "PUSHER_USER_AUTH_ENDPOINT: {}",
                super::strip_config(&e)
            ))
        })?;
        return Ok(Some(Arc::new(endpoint)));
    }
    let Some(user_data) = &p.user_data else {
        return Ok(None);
    };
    match user_data.get("id") {
        Some(serde_json::Value::String(id)) if !id.is_empty() => {}
        _ => {
            return Err(RealtimeError::Config(
                "PUSHER_USER_DATA needs a non-empty string `id`".into(),
            ));
        }
    }
    match trusted.filter(|full| full.secret.is_some()) {
        Some(full) => Ok(Some(authorizer(full)?.user_authenticator(user_data.clone()))),
        None => Err(RealtimeError::Config(
            "PUSHER_USER_DATA is signed with PUSHER_SECRET, which only a trusted client holds; a client without the secret signs in through PUSHER_USER_AUTH_ENDPOINT".into(),
        )),
    }
}

fn credentials(p: &PusherSettings) -> Result<Credentials> {
    let app_id = p
        .app_id
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            RealtimeError::Config("PUSHER_APP_ID is not set (the publisher needs it)".into())
        })?;
    let secret = need(
        p.secret.as_ref(),
        "PUSHER_SECRET",
        "server side only: publishing and signing need it",
    )?;
    let creds = Credentials::new(app_id, key(p)?, secret);
    match &p.encryption_master_key_base64 {
        None => Ok(creds),
        Some(k) => creds
            .with_encryption_master_key_base64(k.expose())
            .map_err(|e| {
                RealtimeError::Config(format!(
                    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is malformed: {}",
                    super::strip_config(&e)
                ))
            }),
    }
}

/// The HTTP API publisher.
pub(crate) fn rest(p: &PusherSettings) -> Result<PusherRest> {
    let creds = credentials(p)?;
    Ok(match endpoint(p)? {
        Endpoint::Cluster(c) => PusherRest::cluster(creds, c),
        Endpoint::Host(h, port, tls) => PusherRest::host(creds, h, port, tls),
    }
    .with_max_payload(max_payload(p)?))
}

/// The channel authorizer (also signs users in).
pub(crate) fn authorizer(p: &PusherSettings) -> Result<PusherAuthorizer> {
    let secret = need(
        p.secret.as_ref(),
        "PUSHER_SECRET",
        "server side only: signing needs it",
    )?;
    let app_id = p.app_id.clone().unwrap_or_default();
    let creds = Credentials::new(app_id, key(p)?, secret);
    let creds = match &p.encryption_master_key_base64 {
        None => creds,
        Some(k) => creds
            .with_encryption_master_key_base64(k.expose())
            .map_err(|e| {
                RealtimeError::Config(format!(
                    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is malformed: {}",
                    super::strip_config(&e)
                ))
            })?,
    };
    Ok(PusherAuthorizer::new(creds))
}

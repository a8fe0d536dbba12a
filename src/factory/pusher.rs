//! Pusher: `PusherProvider`, `PusherRest`, `PusherAuthorizer` from [`PusherSettings`].

use relayport_core::{RealtimeError, Result};
use relayport_pusher::{Credentials, PusherAuthorizer, PusherConfig, PusherRest};

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

/// The client configuration: key, host, port, TLS. It has no field for a secret.
pub(crate) fn client_config(p: &PusherSettings) -> Result<PusherConfig> {
    let key = key(p)?;
    Ok(match endpoint(p)? {
        Endpoint::Cluster(c) => PusherConfig::cluster(key, c),
        Endpoint::Host(h, port, tls) => PusherConfig::host(key, h, port, tls),
    })
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
    })
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

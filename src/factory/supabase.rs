//! Supabase: `SupabaseProvider`, `SupabasePublisher`, `SupabaseAuthorizer` from
//! [`SupabaseSettings`].

use std::sync::Arc;

use relayport_core::{Channel, ChannelAuthorizer, RealtimeError, Result};
use relayport_supabase::{
    PostgresChangesFilter, SupabaseAuthorizer, SupabaseConfig, SupabaseProvider, SupabasePublisher,
};

use super::build::need;
use crate::config::{ProviderConfig, SupabaseSettings};

fn config_with(s: &SupabaseSettings, api_key: &str) -> SupabaseConfig {
    let mut config = match &s.realtime_url {
        Some(endpoint) => SupabaseConfig::with_endpoint(endpoint.clone(), api_key),
        None => SupabaseConfig::new(&s.url, api_key),
    };
    if let Some(private) = s.presence_private {
        config.presence_private = private;
    }
    if let Some(limit) = s.max_payload {
        config.max_payload = limit;
    }
    config
}

/// The client configuration: the URL, the anon key and the public options.
pub(crate) fn client_config(s: &SupabaseSettings) -> Result<SupabaseConfig> {
    let anon = need(
        s.anon_key.as_ref(),
        "SUPABASE_ANON_KEY",
        "a client connects with the anon key",
    )?;
    let cfg = config_with(s, anon);
    cfg.socket_url().map_err(|e| {
        RealtimeError::Config(format!(
            "SUPABASE_URL is malformed: {}",
            super::strip_config(&e)
        ))
    })?;
    Ok(cfg)
}

/// The `postgres_changes` settings (`channel=schema[:table[:EVENT[:filter]]]`), by channel,
/// in order.
pub(crate) fn postgres_changes(
    s: &SupabaseSettings,
) -> Result<Vec<(Channel, Vec<PostgresChangesFilter>)>> {
    let mut out: Vec<(Channel, Vec<PostgresChangesFilter>)> = Vec::new();
    for entry in &s.postgres_changes {
        let (channel, spec) = entry.split_once('=').ok_or_else(|| {
            RealtimeError::Config(format!(
                "SUPABASE_POSTGRES_CHANGES entry `{entry}`: expected channel=schema[:table[:EVENT[:filter]]]"
            ))
        })?;
        let channel = Channel::parse(channel.trim()).map_err(|e| {
            RealtimeError::Config(format!("SUPABASE_POSTGRES_CHANGES entry `{entry}`: {e}"))
        })?;
        let filter: PostgresChangesFilter = spec.parse()?;
        match out.iter_mut().find(|(c, _)| *c == channel) {
            Some((_, filters)) => filters.push(filter),
            None => out.push((channel, vec![filter])),
        }
    }
    Ok(out)
}

/// The client provider: the public settings, the postgres_changes filters, and the
/// authorizer that refreshes channel tokens before they expire (the one the client signs
/// with: this process's when it holds the JWT secret, else `REALTIME_AUTH_ENDPOINT`).
pub(crate) fn provider(
    s: &SupabaseSettings,
    trusted: Option<&ProviderConfig>,
) -> Result<SupabaseProvider> {
    let mut provider = SupabaseProvider::new(client_config(s)?);
    for (channel, filters) in postgres_changes(s)? {
        provider = provider.with_postgres_changes(channel, filters);
    }
    let refresher: Option<Arc<dyn ChannelAuthorizer>> = match (&s.auth_endpoint, trusted) {
        // Without the HTTP authorizer compiled in, the client builder reports it; the
        // provider then simply does not refresh.
        (Some(url), _) => super::http_authorizer(url).ok(),
        (None, Some(ProviderConfig::Supabase(full))) if full.jwt_secret.is_some() => {
            Some(Arc::new(authorizer(full)?))
        }
        _ => None,
    };
    if let Some(refresher) = refresher {
        provider = provider.with_authorizer(refresher);
    }
    Ok(provider)
}

/// REST broadcast with the service-role key.
pub(crate) fn publisher(s: &SupabaseSettings) -> Result<SupabasePublisher> {
    let key = need(
        s.service_role_key.as_ref(),
        "SUPABASE_SERVICE_ROLE_KEY",
        "server side only: publishing needs it",
    )?;
    rest_with(s, key)
}

/// REST broadcast with the anon key: what realtime-js's `send()` does on a channel it has
/// not joined (public channels; no WebSocket).
pub(crate) fn client_publisher(s: &SupabaseSettings) -> Result<SupabasePublisher> {
    let anon = need(
        s.anon_key.as_ref(),
        "SUPABASE_ANON_KEY",
        "a client publishes with the anon key",
    )?;
    rest_with(s, anon)
}

fn rest_with(s: &SupabaseSettings, key: &str) -> Result<SupabasePublisher> {
    let config = config_with(s, key);
    let base = config.rest_base().map_err(|e| {
        RealtimeError::Config(format!(
            "SUPABASE_URL is malformed: {}",
            super::strip_config(&e)
        ))
    })?;
    Ok(SupabasePublisher::with_base_url(base, key)
        .max_payload(config.max_payload)
        .presence_private(config.presence_private))
}

/// Channel JWTs signed with the project's JWT secret, scoped to their channel, with the
/// configured role and extra claims.
pub(crate) fn authorizer(s: &SupabaseSettings) -> Result<SupabaseAuthorizer> {
    let secret = need(
        s.jwt_secret.as_ref(),
        "SUPABASE_JWT_SECRET",
        "server side only: channel tokens are signed with it",
    )?;
    let mut auth = SupabaseAuthorizer::new(secret);
    if let Some(role) = &s.jwt_role {
        auth = auth.role(role.clone());
    }
    if let Some(claims) = &s.jwt_claims {
        auth = auth.claims(claims.clone());
    }
    Ok(auth)
}

//! Supabase: `SupabaseProvider`, `SupabasePublisher`, `SupabaseAuthorizer` from
//! [`SupabaseSettings`].

use relayport_core::{RealtimeError, Result};
use relayport_supabase::{SupabaseAuthorizer, SupabaseConfig, SupabasePublisher};

use super::build::need;
use crate::config::SupabaseSettings;

fn config_with(s: &SupabaseSettings, api_key: &str) -> SupabaseConfig {
    match &s.realtime_url {
        Some(endpoint) => SupabaseConfig::with_endpoint(endpoint.clone(), api_key),
        None => SupabaseConfig::new(&s.url, api_key),
    }
}

/// The client configuration: the URL and the anon key, nothing else.
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

/// REST broadcast with the service-role key.
pub(crate) fn publisher(s: &SupabaseSettings) -> Result<SupabasePublisher> {
    let key = need(
        s.service_role_key.as_ref(),
        "SUPABASE_SERVICE_ROLE_KEY",
        "server side only: publishing needs it",
    )?;
    let base = config_with(s, key).rest_base().map_err(|e| {
        RealtimeError::Config(format!(
            "SUPABASE_URL is malformed: {}",
            super::strip_config(&e)
        ))
    })?;
    Ok(SupabasePublisher::with_base_url(base, key))
}

/// Channel JWTs signed with the project's JWT secret.
pub(crate) fn authorizer(s: &SupabaseSettings) -> Result<SupabaseAuthorizer> {
    let secret = need(
        s.jwt_secret.as_ref(),
        "SUPABASE_JWT_SECRET",
        "server side only: channel tokens are signed with it",
    )?;
    Ok(SupabaseAuthorizer::new(secret))
}

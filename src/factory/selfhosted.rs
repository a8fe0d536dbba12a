//! The self-hosted server: `SelfHostedProvider`, `SelfHostedPublisher`,
//! `SelfHostedAuthorizer` from [`SelfHostedSettings`].

use relayport_core::{RealtimeError, Result};
use relayport_selfhosted::client::{SelfHostedProvider, SelfHostedPublisher};
use relayport_selfhosted::server::auth::SelfHostedAuthorizer;

use super::build::need;
use crate::config::SelfHostedSettings;

fn url_error(e: RealtimeError) -> RealtimeError {
    RealtimeError::Config(format!(
        "REALTIME_URL is malformed: {}",
        super::strip_config(&e)
    ))
}

/// The client provider: the URL only (no publish token: that would be the secret).
pub(crate) fn provider(s: &SelfHostedSettings) -> Result<SelfHostedProvider> {
    SelfHostedProvider::new(&s.url).map_err(url_error)
}

/// `POST /publish` with the secret as bearer.
pub(crate) fn publisher(s: &SelfHostedSettings) -> Result<SelfHostedPublisher> {
    let secret = need(
        s.secret.as_ref(),
        "REALTIME_SECRET",
        "server side only: publishing needs it",
    )?;
    SelfHostedPublisher::new(&s.url, secret).map_err(url_error)
}

/// HMAC signatures with the secret.
pub(crate) fn authorizer(s: &SelfHostedSettings) -> Result<SelfHostedAuthorizer> {
    let secret = need(
        s.secret.as_ref(),
        "REALTIME_SECRET",
        "server side only: signing needs it",
    )?;
    Ok(SelfHostedAuthorizer::new(secret))
}

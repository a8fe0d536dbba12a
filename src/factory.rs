//! From a [`ProviderConfig`] to a working client, publisher or authorizer, whichever provider
//! it names. Each provider sits behind its cargo feature; a disabled one is a `Config` error.
//!
//! - [`provider`], [`client_builder`], [`client`]: the client side, built from the
//!   configuration's **public** parts only ([`ProviderConfig::client_side`]); with
//!   `REALTIME_AUTH_ENDPOINT` set, private and presence channels are signed by that endpoint.
//! - [`publisher`], [`authorizer`]: the server side, which needs the server secret.
//! - [`client_publisher`]: REST publishing with a client's public credentials, for providers
//!   whose clients publish without a connection (Supabase public channels).
//! - [`trusted_client_builder`]: a client for a process that holds the secret anyway (a backend,
//!   an operator's CLI, a test): the provider still gets only the public parts, and
//!   subscriptions are signed in this process by [`authorizer`].

use std::sync::Arc;

use relayport_core::{
    ChannelAuthorizer, ClientBuilder, Publisher, RealtimeClient, RealtimeError, RealtimeProvider,
    Result,
};

use crate::config::ProviderConfig;

#[cfg(feature = "ably")]
pub(crate) mod ably;
mod build;
#[cfg(feature = "firebase")]
pub(crate) mod firebase;
#[cfg(feature = "pusher")]
pub(crate) mod pusher;
#[cfg(feature = "selfhosted")]
pub(crate) mod selfhosted;
#[cfg(feature = "socketio")]
pub(crate) mod socketio;
#[cfg(feature = "supabase")]
pub(crate) mod supabase;

pub(crate) use build::{build_authorizer, build_provider, build_publisher};

/// The client-side provider for `cfg`, built from its public parts only.
///
/// ```
/// use relayport::config::{MapEnv, ProviderConfig};
/// let env = MapEnv::from([("REALTIME_PROVIDER", "pusher"), ("PUSHER_KEY", "k"), ("PUSHER_CLUSTER", "eu")]);
/// let provider = relayport::provider(&ProviderConfig::from_env(&env)?)?;
/// assert_eq!(provider.name(), "pusher");
/// # Ok::<(), relayport::RealtimeError>(())
/// ```
pub fn provider(cfg: &ProviderConfig) -> Result<Box<dyn RealtimeProvider>> {
    build_provider(&cfg.client_side(), None)
}

/// The client-side provider for a trusted process holding the server secret (see
/// [`trusted_client_builder`]): the public settings, plus what the provider signs locally (an
/// Ably provider configured with only `ABLY_API_KEY` signs its token requests here).
pub fn trusted_provider(cfg: &ProviderConfig) -> Result<Box<dyn RealtimeProvider>> {
    build_provider(&cfg.client_side(), Some(cfg))
}

/// A [`ClientBuilder`] for `cfg` (public parts only), with the client id and, when
/// `REALTIME_AUTH_ENDPOINT` is set, an authorizer calling that endpoint. Adjust the runtime's
/// policies on it, then `build()`.
pub fn client_builder(cfg: &ProviderConfig) -> Result<ClientBuilder> {
    let public = cfg.client_side();
    let mut builder = RealtimeClient::builder_boxed(build_provider(&public, None)?);
    builder = apply_common(builder, &public);
    if let Some(url) = public.auth_endpoint() {
        builder = builder.authorizer(http_authorizer(url)?);
    } else if let Some(rules) = rules_authorizer(&public) {
        builder = builder.authorizer(rules);
    }
    Ok(builder)
}

/// A [`RealtimeClient`] for `cfg`, with the runtime's default policies.
pub fn client(cfg: &ProviderConfig) -> Result<RealtimeClient> {
    Ok(client_builder(cfg)?.build())
}

/// A client for a trusted process holding the server secret. The provider gets only the
/// public settings; private and presence subscriptions are signed here by [`authorizer`]
/// (unless `REALTIME_AUTH_ENDPOINT` is set), and an Ably client configured with only
/// `ABLY_API_KEY` authenticates with token requests signed here (the key never travels).
pub fn trusted_client_builder(cfg: &ProviderConfig) -> Result<ClientBuilder> {
    let public = cfg.client_side();
    let provider = build_provider(&public, Some(cfg))?;
    let mut builder = apply_common(RealtimeClient::builder_boxed(provider), &public);
    if let Some(url) = public.auth_endpoint() {
        builder = builder.authorizer(http_authorizer(url)?);
    } else if let Some(rules) = rules_authorizer(&public) {
        builder = builder.authorizer(rules);
    } else if cfg.has_server_secret() {
        builder = builder.authorizer(Arc::from(authorizer(cfg)?));
    }
    Ok(builder)
}

/// A publisher with a client's public credentials, for providers whose clients publish over
/// REST without a connection (Supabase's `send()` on a channel it has not joined, with the
/// anon key); `None` for the others (they publish through a client connection).
pub fn client_publisher(cfg: &ProviderConfig) -> Result<Option<Box<dyn Publisher>>> {
    match cfg {
        #[cfg(feature = "supabase")]
        ProviderConfig::Supabase(s) => Ok(Some(Box::new(supabase::client_publisher(s)?))),
        _ => Ok(None),
    }
}

/// The backend publisher for `cfg` (needs the server secret).
pub fn publisher(cfg: &ProviderConfig) -> Result<Box<dyn Publisher>> {
    build_publisher(cfg)
}

/// The backend channel authorizer for `cfg` (needs the server secret): what an auth endpoint
/// answers with.
pub fn authorizer(cfg: &ProviderConfig) -> Result<Box<dyn ChannelAuthorizer>> {
    build_authorizer(cfg)
}

/// A provider whose database rules decide access (Firebase) needs no signature: the core's
/// authorizer for private and presence channels approves locally.
fn rules_authorizer(public: &ProviderConfig) -> Option<Arc<dyn ChannelAuthorizer>> {
    match public {
        #[cfg(feature = "firebase")]
        ProviderConfig::Firebase(_) => Some(Arc::new(relayport_firebase::RulesAuthorizer)),
        _ => None,
    }
}

fn apply_common(mut builder: ClientBuilder, public: &ProviderConfig) -> ClientBuilder {
    if let Some(id) = public.client_id() {
        builder = builder.client_id(id);
    }
    if let Some(echo) = public.echo() {
        builder = builder.echo(echo);
    }
    if let ProviderConfig::Pusher(p) = public {
        // Pusher carries client events only under `client-…` names; with the client-event
        // prefix on, the provider adds it on send and strips it on receive.
        let event = match p.client_event_prefix {
            Some(true) => "typing",
            _ => "client-typing",
        };
        builder = builder.typing(relayport_core::TypingPolicy {
            event: event.into(),
            ..Default::default()
        });
    }
    builder
}

#[cfg(feature = "selfhosted")]
pub(crate) fn http_authorizer(url: &str) -> Result<Arc<dyn ChannelAuthorizer>> {
    let auth = relayport_selfhosted::client::HttpAuthorizer::new(url).map_err(|e| {
        RealtimeError::Config(format!("REALTIME_AUTH_ENDPOINT: {}", strip_config(&e)))
    })?;
    Ok(Arc::new(auth))
}

#[cfg(not(feature = "selfhosted"))]
pub(crate) fn http_authorizer(_url: &str) -> Result<Arc<dyn ChannelAuthorizer>> {
    Err(RealtimeError::Config(
        "REALTIME_AUTH_ENDPOINT needs the `selfhosted` feature (its HTTP authorizer)".into(),
    ))
}

/// The message of a `Config` error without the `configuration error: ` prefix.
#[cfg_attr(
    not(any(
        feature = "pusher",
        feature = "supabase",
        feature = "selfhosted",
        feature = "socketio"
    )),
    allow(dead_code)
)]
pub(crate) fn strip_config(e: &RealtimeError) -> String {
    match e {
        RealtimeError::Config(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(all(
    test,
    feature = "pusher",
    feature = "ably",
    feature = "supabase",
    feature = "selfhosted",
    feature = "socketio"
))]
mod tests;

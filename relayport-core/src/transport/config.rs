//! [`LinkConfig`]: the injectable TLS configuration and HTTP client a provider's links use.

use std::sync::Arc;

use rustls::ClientConfig;

use crate::error::{RealtimeError, Result};
use crate::transport::tls;

/// What every link and HTTP request of a provider is opened with: one rustls
/// [`ClientConfig`] (WebSocket over TLS) and one [`reqwest::Client`] (token requests, REST,
/// SSE), built from the same configuration unless another client is injected.
///
/// ```no_run
/// use relayport_core::transport::{LinkConfig, tls};
/// // The default: the compiled-in webpki roots.
/// let default = LinkConfig::new()?;
/// // A private CA on top of the webpki roots.
/// let mut roots = tls::webpki_roots();
/// let pem = std::fs::read("private-ca.pem").expect("the CA bundle");
/// tls::add_pem_certificates(&mut roots, &pem)?;
/// let private = LinkConfig::with_tls(tls::client_config(roots)?)?;
/// # let _ = (default, private);
/// # Ok::<(), relayport_core::RealtimeError>(())
/// ```
#[derive(Clone)]
pub struct LinkConfig {
    tls: Arc<ClientConfig>,
    http: reqwest::Client,
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("alpn", &self.tls.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// A [`reqwest::Client`] using `tls` (rustls; never OpenSSL).
pub fn http_client(tls: &ClientConfig) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .build()
        .map_err(|e| RealtimeError::Config(format!("HTTP client: {e}")))
}

impl LinkConfig {
    /// The default: [`tls::default_client_config`] (webpki roots) and an HTTP client built on
    /// it.
    pub fn new() -> Result<Self> {
        Self::with_tls(tls::default_client_config()?)
    }

    /// The default configuration, built once per process and shared (cloning a `LinkConfig` is
    /// cheap: the TLS configuration and the HTTP client's pool are reference-counted). What a
    /// provider uses when none was injected.
    pub fn shared_default() -> Result<Self> {
        static SHARED: std::sync::OnceLock<LinkConfig> = std::sync::OnceLock::new();
        if let Some(config) = SHARED.get() {
            return Ok(config.clone());
        }
        let config = Self::new()?;
        Ok(SHARED.get_or_init(|| config).clone())
    }

    /// The system trust store instead of the compiled-in roots (feature `native-roots`).
    #[cfg(feature = "native-roots")]
    pub fn native() -> Result<Self> {
        Self::with_tls(tls::client_config(tls::native_roots()?)?)
    }

    /// This TLS configuration, and an HTTP client built on it.
    pub fn with_tls(tls: Arc<ClientConfig>) -> Result<Self> {
        let http = http_client(&tls)?;
        Ok(Self { tls, http })
    }

    /// Replaces the HTTP client (one with a proxy, other timeouts, a shared connection pool).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The TLS configuration WebSocket links are opened with.
    pub fn tls(&self) -> &Arc<ClientConfig> {
        &self.tls
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

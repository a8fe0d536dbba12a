//! TLS: one way to build the rustls client configuration every link and HTTP client uses.
//!
//! The crypto provider (ring) is passed explicitly to the config builder; nothing here installs
//! a process-global `CryptoProvider`, so an application remains free to install its own.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::error::{RealtimeError, Result};

/// The crypto provider of every configuration built here (ring).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The Mozilla root certificates compiled in (`webpki-roots`): the default trust store.
pub fn webpki_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

/// The operating system's trust store (feature `native-roots`). Certificates the platform
/// lists but rustls cannot parse are skipped; finding none at all is a configuration error.
#[cfg(feature = "native-roots")]
pub fn native_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(RealtimeError::Config(format!(
            "no usable root certificate in the system trust store ({} errors while loading)",
            found.errors.len()
        )));
    }
    Ok(roots)
}

/// Adds every certificate of a PEM bundle (a private CA, a test server's self-signed
/// certificate) to `roots`. Returns how many were added; a bundle without any certificate, or
/// with one rustls refuses, is a configuration error.
pub fn add_pem_certificates(roots: &mut RootCertStore, pem: &[u8]) -> Result<usize> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| RealtimeError::Config(format!("CA bundle: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| RealtimeError::Config(format!("CA certificate refused: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(RealtimeError::Config(
            "the CA bundle holds no PEM certificate".into(),
        ));
    }
    Ok(added)
}

/// A client configuration trusting `roots`, with the ring provider and rustls' safe default
/// protocol versions (TLS 1.2 and 1.3). No ALPN: WebSocket upgrades and HTTP/1.1 both work.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RealtimeError::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The default configuration: [`webpki_roots()`](webpki_roots()).
pub fn default_client_config() -> Result<Arc<ClientConfig>> {
    client_config(webpki_roots())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_trusts_the_webpki_roots() {
        let roots = webpki_roots();
        assert!(roots.len() > 100, "only {} roots", roots.len());
        let config = default_client_config().unwrap();
        assert!(config.alpn_protocols.is_empty());
    }

    #[test]
    fn a_pem_bundle_adds_its_certificates() {
        let mut roots = RootCertStore::empty();
        let added = add_pem_certificates(&mut roots, super::super::testdata::CA_PEM).unwrap();
        assert_eq!(added, 1);
        assert_eq!(roots.len(), 1);
    }

    #[test]
    fn a_bundle_without_certificates_is_a_config_error() {
        let mut roots = RootCertStore::empty();
        let err = add_pem_certificates(&mut roots, b"not a certificate").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        let garbled = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = add_pem_certificates(&mut roots, garbled).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }
}

//! End-to-end encrypted channels (`private-encrypted-…`): the per-channel shared secret and
//! NaCl secretbox (XSalsa20-Poly1305, 24-byte nonce), as the official SDKs use them.
//!
//! - shared secret = SHA-256(UTF-8 channel name ‖ 32-byte master key);
//! - an encrypted event's `data` is the JSON string
//!   `{"nonce":"<base64 24 bytes>","ciphertext":"<base64 secretbox>"}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::aead::{Aead, AeadCore, KeyInit, OsRng};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use relayport_core::{RealtimeError, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The length of a master key and of a shared secret, in bytes.
pub const KEY_LEN: usize = 32;
/// The length of a secretbox nonce, in bytes.
pub const NONCE_LEN: usize = 24;

/// Decodes a base64 master key (`encryptionMasterKeyBase64`), which must be 32 bytes.
pub fn parse_master_key(base64: &str) -> Result<[u8; KEY_LEN]> {
    let bytes = B64
        .decode(base64.trim())
        .map_err(|e| RealtimeError::Config(format!("encryption master key is not base64: {e}")))?;
    bytes.try_into().map_err(|v: Vec<u8>| {
        RealtimeError::Config(format!(
            "encryption master key must be {KEY_LEN} bytes, got {}",
            v.len()
        ))
    })
}

/// The shared secret of `channel`: SHA-256(channel name ‖ master key).
pub fn shared_secret(channel: &str, master_key: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut h = Sha256::new();
    h.update(channel.as_bytes());
    h.update(master_key);
    h.finalize().into()
}

/// Decodes a base64 shared secret from an auth response (`shared_secret`).
pub fn parse_shared_secret(base64: &str) -> Result<[u8; KEY_LEN]> {
    let bytes = B64
        .decode(base64)
        .map_err(|e| RealtimeError::Protocol(format!("shared_secret is not base64: {e}")))?;
    bytes.try_into().map_err(|v: Vec<u8>| {
        RealtimeError::Protocol(format!(
            "shared_secret must be {KEY_LEN} bytes, got {}",
            v.len()
        ))
    })
}

/// An encrypted payload as it travels in an event's `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedPayload {
    /// Base64 of the 24-byte nonce.
    pub nonce: String,
    /// Base64 of the secretbox output (MAC + ciphertext).
    pub ciphertext: String,
}

impl EncryptedPayload {
    /// The JSON string that goes into an event's `data` (`nonce` first, as the SDK writes it).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A fresh random nonce from the operating system's CSPRNG.
pub fn random_nonce() -> [u8; NONCE_LEN] {
    XSalsa20Poly1305::generate_nonce(&mut OsRng).into()
}

/// Encrypts `plaintext` with `shared_secret` and `nonce`.
pub fn encrypt(
    plaintext: &[u8],
    shared_secret: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
) -> Result<EncryptedPayload> {
    let cipher = XSalsa20Poly1305::new(Key::from_slice(shared_secret));
    let ct = cipher
        .encrypt(Nonce::from_slice(nonce), plaintext)
        .map_err(|_| RealtimeError::Protocol("encryption failed".into()))?;
    Ok(EncryptedPayload {
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ct),
    })
}

/// Decrypts an event's `data` (already JSON-decoded: an object with `nonce` and `ciphertext`).
/// Any failure (missing fields, bad base64, wrong nonce length, authentication failure) is a
/// `Protocol` error; the plaintext is never returned unauthenticated.
pub fn decrypt(data: &serde_json::Value, shared_secret: &[u8; KEY_LEN]) -> Result<Vec<u8>> {
    let payload: EncryptedPayload = match data {
        serde_json::Value::String(s) => serde_json::from_str(s),
        other => serde_json::from_value(other.clone()),
    }
    .map_err(|e| RealtimeError::Protocol(format!("encrypted payload malformed: {e}")))?;
    let nonce = B64
        .decode(&payload.nonce)
        .map_err(|e| RealtimeError::Protocol(format!("nonce is not base64: {e}")))?;
    if nonce.len() != NONCE_LEN {
        return Err(RealtimeError::Protocol(format!(
            "nonce must be {NONCE_LEN} bytes, got {}",
            nonce.len()
        )));
    }
    let ct = B64
        .decode(&payload.ciphertext)
        .map_err(|e| RealtimeError::Protocol(format!("ciphertext is not base64: {e}")))?;
    let cipher = XSalsa20Poly1305::new(Key::from_slice(shared_secret));
    cipher
        .decrypt(Nonce::from_slice(&nonce), ct.as_slice())
        .map_err(|_| {
            RealtimeError::Protocol("payload failed to decrypt (wrong key or tampered)".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = [7u8; 32];
        let secret = shared_secret("private-encrypted-a", &key);
        let nonce = random_nonce();
        let p = encrypt(b"{\"a\":1}", &secret, &nonce).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(decrypt(&v, &secret).unwrap(), b"{\"a\":1}");
        let other = shared_secret("private-encrypted-b", &key);
        assert!(decrypt(&v, &other).is_err());
        let mut bad = p.clone();
        bad.ciphertext = B64.encode(b"short");
        assert!(decrypt(&serde_json::to_value(&bad).unwrap(), &secret).is_err());
        bad.nonce = "!!".into();
        assert!(decrypt(&serde_json::to_value(&bad).unwrap(), &secret).is_err());
        assert!(decrypt(&serde_json::json!("not json"), &secret).is_err());
        assert!(
            decrypt(
                &serde_json::json!({"nonce": B64.encode([0u8; 23]), "ciphertext": ""}),
                &secret
            )
            .is_err()
        );
        assert_ne!(random_nonce(), random_nonce());
    }

    #[test]
    fn master_key_length() {
        assert!(parse_master_key(&B64.encode([1u8; 32])).is_ok());
        assert!(parse_master_key(&B64.encode([1u8; 31])).is_err());
        assert!(parse_master_key("***").is_err());
    }
}

//! Publisher keys: an ed25519 key pair per publisher. The secret key signs
//! bundles and never leaves the publisher; operators trust the public key.

use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::BundleError;

/// How a public key is written: `tessera-publisher:` and 64 hex digits.
pub const PUBLIC_PREFIX: &str = "tessera-publisher:";
/// How a secret key is written: `tessera-publisher-secret:` and 64 hex digits.
pub const SECRET_PREFIX: &str = "tessera-publisher-secret:";
const KEY_ID_DOMAIN: &[u8] = b"tessera-bundle/v1 key-id\0";

/// A publisher's public key, as operators trust it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(crate) VerifyingKey);

impl PublicKey {
    /// From the 32 bytes of an ed25519 public key; refuses bytes that are not one.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, BundleError> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| BundleError::BadKey("the bytes are not an ed25519 public key".into()))
    }

    /// From `tessera-publisher:<hex>` or bare hex (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, BundleError> {
        let text = text.trim();
        if text.starts_with(SECRET_PREFIX) {
            return Err(BundleError::BadKey(
                "this is a publisher's secret key; trust its public key (the `.pub` file) instead"
                    .into(),
            ));
        }
        let hex_text = text.strip_prefix(PUBLIC_PREFIX).unwrap_or(text);
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut bytes).map_err(|_| {
            BundleError::BadKey(format!(
                "a public key is `{PUBLIC_PREFIX}` and 64 hex digits (or the 64 hex digits alone)"
            ))
        })?;
        Self::from_bytes(&bytes)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// A short id to tell keys apart: 16 hex digits of a SHA-256 of the key.
    pub fn key_id(&self) -> String {
        let digest = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(self.0.as_bytes())
            .finalize();
        hex::encode(&digest[..8])
    }
}

impl fmt::Display for PublicKey {
    /// `tessera-publisher:<hex>`, the form key files and `--trust` use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", hex::encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// A publisher's secret key. Wiped from memory when dropped; its `Debug`
/// shows only the key id.
pub struct PublisherKey(SigningKey);

impl PublisherKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, BundleError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(seed.as_mut())
            .map_err(|e| BundleError::BadKey(format!("no randomness for a new key: {e}")))?;
        Ok(PublisherKey(SigningKey::from_bytes(&seed)))
    }

    /// From `tessera-publisher-secret:<hex>` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, BundleError> {
        let hex_text = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            BundleError::BadKey(format!(
                "a publisher secret key is `{SECRET_PREFIX}` and 64 hex digits \
                 (made by `tessera keys publisher new`)"
            ))
        })?;
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_text, seed.as_mut()).map_err(|_| {
            BundleError::BadKey(format!(
                "a publisher secret key is `{SECRET_PREFIX}` and 64 hex digits"
            ))
        })?;
        Ok(PublisherKey(SigningKey::from_bytes(&seed)))
    }

    /// `tessera-publisher-secret:<hex>`, wiped when dropped.
    pub fn to_secret_text(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(self.0.to_bytes());
        Zeroizing::new(format!("{SECRET_PREFIX}{}", hex::encode(seed.as_ref())))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for PublisherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublisherKey({})", self.public().key_id())
    }
}

//! The primitives the crate builds on: AES-256-GCM, OS randomness, zeroizing key bytes, encoding.
//! It must never reuse a nonce, join fields without lengths, or copy key bytes out of their box.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Tag};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::ZeroizeOnDrop;

/// Length of every key in the hierarchy: AES-256.
pub(crate) const KEY_LEN: usize = 32;
/// AES-GCM's 96-bit nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM's 128-bit tag.
pub(crate) const TAG_LEN: usize = 16;

/// 32 secret bytes on the heap (so moves never leave copies on the stack),
/// zeroized when dropped.
#[derive(ZeroizeOnDrop)]
pub(crate) struct KeyBytes(Box<[u8; KEY_LEN]>);

impl KeyBytes {
    pub(crate) fn zeroed() -> Self {
        Self(Box::new([0; KEY_LEN]))
    }

    /// Fresh key bytes from the OS; the error is the OS's reason.
    pub(crate) fn random() -> Result<Self, String> {
        let mut key = Self::zeroed();
        fill_random(&mut key.0[..])?;
        Ok(key)
    }

    pub(crate) fn get(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn get_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }
}

/// Fills `buf` from the OS random number generator; the error is its reason.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), String> {
    OsRng.try_fill_bytes(buf).map_err(|e| e.to_string())
}

pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN], String> {
    let mut nonce = [0; NONCE_LEN];
    fill_random(&mut nonce)?;
    Ok(nonce)
}

/// Encodes `fields` so that no two different lists encode the same: each
/// field is its length (8 bytes, big-endian) followed by its bytes.
pub(crate) fn encode_fields(fields: &[&[u8]]) -> Vec<u8> {
    let len = fields.iter().map(|f| 8 + f.len()).sum();
    let mut out = Vec::with_capacity(len);
    for field in fields {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// Derives a 32-byte key for one use from `ikm` with HKDF-SHA256 (no salt);
/// `info` names the use, so keys derived for different uses are unrelated.
pub(crate) fn derive_key(ikm: &KeyBytes, info: &[u8]) -> KeyBytes {
    let hkdf = Hkdf::<Sha256>::new(None, ikm.get());
    let mut key = KeyBytes::zeroed();
    // HKDF-SHA256 yields up to 255 × 32 bytes; 32 are always available.
    hkdf.expand(info, key.get_mut())
        .expect("HKDF-SHA256 can always expand to 32 bytes");
    key
}

/// HMAC-SHA256 under `key`, fed with the [length-prefixed](encode_fields)
/// `fields`; the caller finalizes or verifies it.
pub(crate) fn hmac_fields(key: &KeyBytes, fields: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.get()).expect("HMAC accepts keys of any length");
    mac.update(&encode_fields(fields));
    mac
}

/// Encrypts `buf` in place under `key`, authenticating `aad` too; returns the tag.
/// Fails only when `buf` is longer than AES-GCM allows (64 GiB).
pub(crate) fn encrypt(
    key: &KeyBytes,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], aes_gcm::Error> {
    let cipher = Aes256Gcm::new(key.get().into());
    let tag = cipher.encrypt_in_place_detached(nonce.into(), aad, buf)?;
    Ok(tag.into())
}

/// Decrypts `buf` in place; fails, leaving no plaintext in `buf`, unless the
/// key, nonce, `aad`, ciphertext and tag are exactly those sealed together.
pub(crate) fn decrypt(
    key: &KeyBytes,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), aes_gcm::Error> {
    let cipher = Aes256Gcm::new(key.get().into());
    cipher.decrypt_in_place_detached(nonce.into(), aad, buf, Tag::from_slice(tag))
}

#[cfg(test)]
mod tests {
    use super::encode_fields;

    #[test]
    fn moving_bytes_between_fields_changes_the_encoding() {
        assert_ne!(encode_fields(&[b"ab", b"c"]), encode_fields(&[b"a", b"bc"]));
        assert_ne!(encode_fields(&[b"", b"a"]), encode_fields(&[b"a", b""]));
        assert_ne!(encode_fields(&[b"a"]), encode_fields(&[b"a", b""]));
    }
}

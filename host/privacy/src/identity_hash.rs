//! Keyed per-tenant hashes of normalised identities, for lookup without storing the identity.
//! It must never hash with a key shared across tenants, nor normalise values itself.
//!
//! The hash key is derived from the tenant key with HKDF-SHA256 (info
//! `tessera:identity-hash:v1`); a hash is HMAC-SHA256 over the length-prefixed
//! kind and value. Hashes are stable for a tenant across master key rotations
//! (the tenant key does not change) and unrelated between tenants. Callers pass
//! values already normalised, always the same way.

use std::fmt;

use hmac::Mac;

use crate::crypto::{self, KeyBytes};
use crate::keys::TenantKey;

/// HKDF info that derives the identity hash key from a tenant key.
const INFO: &[u8] = b"tessera:identity-hash:v1";

/// One tenant's identity hash key. Its `Debug` shows nothing of it.
pub struct IdentityHasher {
    key: KeyBytes,
}

impl IdentityHasher {
    /// Derives the tenant's identity hash key from its tenant key.
    pub fn new(tenant_key: &TenantKey) -> Self {
        Self {
            key: crypto::derive_key(tenant_key.bytes(), INFO),
        }
    }

    /// The lookup hash of an identity: HMAC-SHA256 over the length-prefixed
    /// `kind` (e.g. `email`) and `normalized_value`.
    pub fn hash(&self, kind: &str, normalized_value: &str) -> [u8; 32] {
        crypto::hmac_fields(&self.key, &[kind.as_bytes(), normalized_value.as_bytes()])
            .finalize()
            .into_bytes()
            .into()
    }
}

impl fmt::Debug for IdentityHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityHasher { .. }")
    }
}

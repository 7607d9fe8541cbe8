//! Keyed per-tenant MACs for one purpose each (audit chains, receipts, subject tokens, login codes, plugin pseudonyms), derived from the tenant key.
//! It must never use one key for two purposes, compare tags in variable time, or reveal its key.
//!
//! The MAC key is derived from the tenant key with HKDF-SHA256, with an info
//! label per [`MacPurpose`], so a tag made for one purpose never verifies for
//! another, and tags of different tenants are unrelated. A tag is HMAC-SHA256
//! over the length-prefixed fields, so moving bytes from one field to the next
//! changes it. Tags stay valid across master key rotations (the tenant key
//! does not change), and become unverifiable if the tenant key is lost.

use std::fmt;

use hmac::Mac;

use crate::crypto::{self, KeyBytes};
use crate::keys::TenantKey;

/// Length of a tag: HMAC-SHA256.
pub const MAC_LEN: usize = 32;

/// What a [`TenantMac`] authenticates; each purpose has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacPurpose {
    /// Links of a tenant's audit log hash chain.
    Audit,
    /// Receipts handed out to callers (e.g. for a deletion request).
    Receipt,
    /// Short-lived subject tokens of the HTTP service (`/v1/me`).
    SubjectToken,
    /// One-time login codes, stored only as keyed hashes, and the keys of
    /// the addresses they were sent to.
    LoginCode,
    /// Console sessions: the signed cookie an operator's, marketer's or
    /// analyst's browser holds instead of their API token.
    ConsoleSession,
    /// The pseudonymous keys plugins see instead of subject ids, one per
    /// subject and installation.
    Pseudonym,
}

impl MacPurpose {
    /// The HKDF info that derives this purpose's key from the tenant key.
    pub fn label(self) -> &'static str {
        match self {
            MacPurpose::Audit => "tessera:audit-chain:v1",
            MacPurpose::Receipt => "tessera:receipt:v1",
            MacPurpose::SubjectToken => "tessera:subject-token:v1",
            MacPurpose::LoginCode => "tessera:login-code:v1",
            MacPurpose::ConsoleSession => "tessera:console-session:v1",
            MacPurpose::Pseudonym => "tessera:plugin-pseudonym:v1",
        }
    }
}

/// One tenant's MAC key for one [`MacPurpose`]. Zeroized when dropped; its
/// `Debug` shows the purpose only.
pub struct TenantMac {
    key: KeyBytes,
    purpose: MacPurpose,
}

impl TenantMac {
    /// Derives the tenant's MAC key for `purpose` from its tenant key.
    pub fn new(tenant_key: &TenantKey, purpose: MacPurpose) -> Self {
        Self {
            key: crypto::derive_key(tenant_key.bytes(), purpose.label().as_bytes()),
            purpose,
        }
    }

    /// The purpose this key was derived for.
    pub fn purpose(&self) -> MacPurpose {
        self.purpose
    }

    /// The tag of `fields`: HMAC-SHA256 over each field with its length.
    pub fn mac(&self, fields: &[&[u8]]) -> [u8; MAC_LEN] {
        crypto::hmac_fields(&self.key, fields)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `tag` is the tag of `fields`, compared in constant time. A tag
    /// of any other length (truncated, extended) is rejected.
    pub fn verify(&self, fields: &[&[u8]], tag: &[u8]) -> bool {
        crypto::hmac_fields(&self.key, fields)
            .verify_slice(tag)
            .is_ok()
    }
}

impl fmt::Debug for TenantMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantMac")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_key() -> TenantKey {
        TenantKey::generate().expect("the OS has randomness")
    }

    const FIELDS: &[&[u8]] = &[b"acme", b"seq-7", b"previous-tag"];

    #[test]
    fn a_tag_verifies_and_is_stable() {
        let key = tenant_key();
        let mac = TenantMac::new(&key, MacPurpose::Audit);
        let tag = mac.mac(FIELDS);
        assert!(mac.verify(FIELDS, &tag));
        assert_eq!(TenantMac::new(&key, MacPurpose::Audit).mac(FIELDS), tag);
    }

    #[test]
    fn purposes_and_tenant_keys_give_different_tags() {
        let key = tenant_key();
        let audit = TenantMac::new(&key, MacPurpose::Audit);
        let receipt = TenantMac::new(&key, MacPurpose::Receipt);
        let other_tenant = TenantMac::new(&tenant_key(), MacPurpose::Audit);
        let tag = audit.mac(FIELDS);
        for other in [
            MacPurpose::Receipt,
            MacPurpose::SubjectToken,
            MacPurpose::LoginCode,
            MacPurpose::ConsoleSession,
            MacPurpose::Pseudonym,
        ] {
            let mac = TenantMac::new(&key, other);
            assert_ne!(mac.mac(FIELDS), tag, "{other:?}");
            assert!(!mac.verify(FIELDS, &tag), "{other:?}");
        }
        assert_ne!(
            TenantMac::new(&key, MacPurpose::SubjectToken).mac(FIELDS),
            TenantMac::new(&key, MacPurpose::LoginCode).mac(FIELDS)
        );
        assert_ne!(
            TenantMac::new(&key, MacPurpose::SubjectToken).mac(FIELDS),
            TenantMac::new(&key, MacPurpose::ConsoleSession).mac(FIELDS)
        );
        assert_ne!(receipt.mac(FIELDS), tag);
        assert_ne!(other_tenant.mac(FIELDS), tag);
        assert!(!receipt.verify(FIELDS, &tag));
        assert!(!other_tenant.verify(FIELDS, &tag));
    }

    #[test]
    fn verify_rejects_a_changed_field_tag_or_length() {
        let mac = TenantMac::new(&tenant_key(), MacPurpose::Receipt);
        let tag = mac.mac(FIELDS);
        assert!(!mac.verify(&[b"acme", b"seq-8", b"previous-tag"], &tag));
        assert!(!mac.verify(&FIELDS[..2], &tag));
        for i in 0..MAC_LEN {
            let mut changed = tag;
            changed[i] ^= 0x01;
            assert!(!mac.verify(FIELDS, &changed));
        }
        assert!(!mac.verify(FIELDS, &tag[..MAC_LEN - 1]));
        assert!(!mac.verify(FIELDS, &tag[..16]));
        assert!(!mac.verify(FIELDS, &[]));
        let mut extended = tag.to_vec();
        extended.push(0);
        assert!(!mac.verify(FIELDS, &extended));
    }

    #[test]
    fn field_boundaries_matter() {
        let mac = TenantMac::new(&tenant_key(), MacPurpose::Audit);
        assert_ne!(mac.mac(&[b"ab", b"c"]), mac.mac(&[b"a", b"bc"]));
        assert_ne!(mac.mac(&[b"abc"]), mac.mac(&[b"ab", b"c"]));
        assert_ne!(mac.mac(&[b"a"]), mac.mac(&[b"a", b""]));
        assert!(!mac.verify(&[b"a", b"bc"], &mac.mac(&[b"ab", b"c"])));
    }

    #[test]
    fn the_mac_is_not_the_identity_hash() {
        // Same tenant key, same input bytes: the derived keys must differ.
        let key = tenant_key();
        let hash = crate::IdentityHasher::new(&key).hash("email", "a@example.com");
        let tag = TenantMac::new(&key, MacPurpose::Audit).mac(&[b"email", b"a@example.com"]);
        assert_ne!(hash, tag);
    }

    #[test]
    fn debug_shows_only_the_purpose() {
        let mac = TenantMac::new(&tenant_key(), MacPurpose::Receipt);
        assert_eq!(format!("{mac:?}"), "TenantMac { purpose: Receipt, .. }");
    }
}

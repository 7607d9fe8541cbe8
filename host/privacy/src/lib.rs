//! Tessera's key hierarchy (master → tenant → subject keys), record sealing, identity hashes.
//! It must never hand-roll cryptography, reveal key material, or panic on bad input.
//!
//! Every secret is zeroized when dropped; every failure is an error value whose
//! message tells an operator what to do.
//!
//! # The hierarchy
//!
//! - [`MasterKey`]: one per deployment, kept outside the data directory (a
//!   0600 file or an environment variable). It only wraps tenant keys.
//! - [`TenantKey`]: one per tenant, stored only as a [`WrappedKey`] (sealed
//!   under the master key, bound to the tenant id). Rotating the master key
//!   rewraps tenant keys ([`WrappedKey::rewrap`]); no data is re-encrypted.
//! - [`SubjectKey`]: one per subject, stored only as a [`WrappedSubjectKey`]
//!   (sealed under the tenant key, bound to tenant and subject id). It seals
//!   every record of that subject ([`envelope::seal`]).
//! - [`IdentityHasher`]: derived from the tenant key; turns normalised
//!   identities into keyed hashes, so lookups never store the plaintext.
//! - [`TenantMac`]: derived from the tenant key, one key per [`MacPurpose`];
//!   authenticates audit chains and receipts.
//!
//! # Crypto-shredding
//!
//! Deleting a subject's [`WrappedSubjectKey`] from every place it is stored
//! erases the subject: every record sealed under that key, in the live store,
//! in a copy, a backup or a log segment, can no longer be opened by anyone,
//! because the key exists nowhere else. Wrapped subject keys therefore live in
//! the [`SubjectKeyStore`], outside the data directory, which erases a key by
//! overwriting it in place ([`SubjectKeyStore::erase`]); its module documents
//! what that does and does not guarantee, and how to back it up.
//! Crypto-shredding covers what was sealed: identity hashes are keyed per
//! tenant, not per subject, so they are removed (or kept as a suppression
//! entry) by the store, not by shredding.

mod crypto;
pub mod envelope;
mod error;
pub mod identity_hash;
pub mod key_store;
pub mod keys;
// Positioned file I/O and flock: unix only.
#[cfg(unix)]
pub mod keystore;
pub mod mac;

pub use envelope::{DocumentAad, RecordAad};
pub use error::{KeyGenError, KeyStoreError, KeyWrapError, MasterKeyError, OpenError, SealError};
pub use identity_hash::IdentityHasher;
pub use key_store::{Erasure, ErasureCause, KeyStore, LedgerRead};
pub use keys::{DocumentKey, MasterKey, SubjectKey, TenantKey, WrappedKey, WrappedSubjectKey};
#[cfg(unix)]
pub use keystore::SubjectKeyStore;
pub use mac::{MacPurpose, TenantMac};

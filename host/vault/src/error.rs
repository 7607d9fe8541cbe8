//! The vault's one error type. Messages name the problem and what to do; they
//! never carry personal data (identity values, trait values, event contents).

use tessera_privacy::{KeyGenError, KeyWrapError, OpenError, SealError};
use tessera_store::StoreError;

use crate::normalize::NormalizeError;

/// Why a vault operation failed. Nothing was changed unless the variant says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    #[error("tenant {tenant:?} does not exist; create it with `Vault::create_tenant` first")]
    UnknownTenant { tenant: String },
    #[error("tenant {tenant:?} already exists")]
    TenantExists { tenant: String },
    #[error("subject {subject:?} does not exist in tenant {tenant:?}")]
    UnknownSubject { tenant: String, subject: String },
    #[error(
        "the {kind} identity is not linked to subject {subject:?} of tenant {tenant:?} (nor to \
         anyone merged with it)"
    )]
    NotLinked {
        tenant: String,
        subject: String,
        kind: String,
    },
    #[error(
        "subject {subject:?} of tenant {tenant:?} was erased (its key is destroyed); \
         its records can no longer be read or written"
    )]
    SubjectErased { tenant: String, subject: String },
    #[error("invalid tenant settings: {reason}")]
    InvalidSettings { reason: String },
    #[error("invalid identity: {source}")]
    InvalidIdentity {
        kind: String,
        #[source]
        source: NormalizeError,
    },
    #[error(
        "a record needs at least one identity (email, phone, member id, device id or external id)"
    )]
    NoIdentity,
    #[error(
        "trait {name:?} is not in tenant {tenant:?}'s schema; add it to the schema with its class first"
    )]
    UnknownTrait { tenant: String, name: String },
    #[error("trait {name:?} is invalid: {reason}")]
    InvalidTrait { name: String, reason: String },
    #[error("invalid event: {reason}")]
    InvalidEvent { reason: String },
    /// An event property breaks a rule of the tenant's event schema. The
    /// rule names the value only where the schema classes the property
    /// `standard` and lists its allowed values.
    #[error("invalid event: {}{event}.{property}: {rule}", record_prefix(.record))]
    InvalidProperty {
        /// The record's index in its batch, when the batch had several.
        record: Option<usize>,
        event: String,
        property: String,
        rule: String,
    },
    #[error("purpose {purpose:?} is not one of tenant {tenant:?}'s purposes ({known})")]
    UnknownPurpose {
        tenant: String,
        purpose: String,
        known: String,
    },
    #[error(
        "a retention of {days} days is outside tenant {tenant:?}'s bounds ({min} to {max} days)"
    )]
    RetentionOutOfBounds {
        tenant: String,
        days: u32,
        min: u32,
        max: u32,
    },
    #[error(
        "subject {subject:?} of tenant {tenant:?} belongs to a person merged from more than {max} \
         subjects; un-merge wrongly merged subjects first"
    )]
    GroupTooLarge {
        tenant: String,
        subject: String,
        max: usize,
    },
    #[error("subjects {survivor:?} and {absorbed:?} are not merged (no merge to undo)")]
    NotMerged { survivor: String, absorbed: String },
    #[error("deletion request {id:?} does not exist in tenant {tenant:?}")]
    UnknownRequest { tenant: String, id: String },
    #[error(
        "the audit trail of tenant {tenant:?} is damaged at entry {seq} ({reason}); \
         run `tessera audit verify` and restore the data directory from a backup"
    )]
    AuditDamaged {
        tenant: String,
        seq: u64,
        reason: String,
    },
    #[error(
        "a stored {what} of tenant {tenant:?} cannot be decoded ({detail}); the data \
         directory was damaged or edited outside Tessera"
    )]
    Corrupt {
        tenant: String,
        what: &'static str,
        detail: String,
    },
    #[error("cannot create the key directory {}: {detail}", path.display())]
    KeyDir {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error(
        "the subject key store {} is empty, but tenant {tenant:?} has subjects: this is not \
         the key directory of this data directory; point --key-dir at the right one (a new \
         key store would make every person unreadable)",
        path.display()
    )]
    KeyStoreMismatch {
        path: std::path::PathBuf,
        tenant: String,
    },
    #[error(
        "the shared subject key store {location} holds no key, but tenant {tenant:?} has \
         subjects: the keys are elsewhere (in the key directory's subject-keys file if this \
         deployment kept them there; see docs/operations.md) and a new key store would make \
         every person unreadable"
    )]
    SharedKeyStoreMismatch { location: String, tenant: String },
    #[error(
        "another tessera process runs as the node named in {}; give each node its own key \
         directory (server.key_dir)",
        path.display()
    )]
    NodeInUse { path: std::path::PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyStore(#[from] tessera_privacy::KeyStoreError),
    #[error(transparent)]
    KeyWrap(#[from] KeyWrapError),
    #[error(transparent)]
    KeyGen(#[from] KeyGenError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("a record of subject {subject:?} cannot be opened: {source}")]
    Open {
        subject: String,
        #[source]
        source: OpenError,
    },
    #[error("the sealed document {kind}/{id} cannot be opened: {source}")]
    OpenDocument {
        kind: String,
        id: String,
        #[source]
        source: OpenError,
    },
}

fn record_prefix(record: &Option<usize>) -> String {
    record.map_or_else(String::new, |index| format!("record {index}: "))
}

impl VaultError {
    pub(crate) fn corrupt(tenant: &str, what: &'static str, detail: impl ToString) -> Self {
        Self::Corrupt {
            tenant: tenant.to_owned(),
            what,
            detail: detail.to_string(),
        }
    }
}

//! The one error type of every storage backend. Each variant is a sentence an
//! operator or a caller can act on; none carries record contents.

use std::path::PathBuf;

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("invalid {field}: it must be 1 to {max} bytes long", max = crate::MAX_ID_LEN)]
    InvalidId { field: &'static str },
    #[error("tenant {tenant:?} does not exist; create it first")]
    UnknownTenant { tenant: String },
    #[error("subject {subject:?} does not exist in tenant {tenant:?}; create it first")]
    UnknownSubject { tenant: String, subject: String },
    #[error(
        "subject id {subject:?} contains '/', so the plugin state keys `subject/<id>/…` \
         cannot name it unambiguously; subject ids must not contain '/'"
    )]
    AmbiguousSubject { subject: String },
    #[error(
        "the subject record passed with events for subject {subject:?} is for subject \
         {record:?}; pass the record of the subject the events belong to"
    )]
    SubjectMismatch { subject: String, record: String },
    #[error(
        "subject {subject:?} already exists in tenant {tenant:?}; a batch that creates a \
         subject must use a new id"
    )]
    SubjectExists { tenant: String, subject: String },
    /// An identity hash a batch was to link already points at another subject.
    #[error(
        "an identity to be linked to subject {subject:?} of tenant {tenant:?} already \
         belongs to subject {linked:?}; another writer linked it: look it up again"
    )]
    IdentityLinked {
        tenant: String,
        subject: String,
        linked: String,
    },
    #[error("audit sequence number 0 is invalid: sequence numbers start at 1")]
    InvalidAuditSeq,
    /// `expected` is the last sequence number the writer based its entry on
    /// (its `seq - 1`), `last` the tenant's actual last one.
    #[error(
        "the last audit entry of tenant {tenant:?} is {last}, not {expected}: another \
         writer appended first; read the audit head and retry"
    )]
    AuditConflict {
        tenant: String,
        expected: u64,
        last: u64,
    },
    #[error(
        "cannot open the store at {}: {detail}; check that the directory is writable \
         and that no other Tessera process has it open",
        path.display()
    )]
    Open { path: PathBuf, detail: String },
    #[error(
        "the store at {} has format version {found}, this build reads version {expected}; \
         use a Tessera build that matches the data directory",
        path.display()
    )]
    Format {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// A database server (the PostgreSQL backend) could not be reached or
    /// refused the login; `target` names it without the password.
    #[error(
        "cannot connect to the database {target}: {detail}; check that the server runs, \
         that the URL is right and that the role may log in"
    )]
    Connect { target: String, detail: String },
    #[error(
        "the database schema is at migration {found}, this build knows migrations up to \
         {expected}; use a Tessera build at least as new as the one that migrated it"
    )]
    Schema { found: u32, expected: u32 },
    #[error(
        "a stored {family} record is corrupt ({detail}); the data directory was damaged \
         or edited outside Tessera: restore it from a backup"
    )]
    Corrupt {
        family: &'static str,
        detail: String,
    },
    #[error("the storage backend failed: {detail}; check free disk space and the data directory")]
    Backend { detail: String },
}

impl StoreError {
    pub(crate) fn backend(error: impl std::fmt::Display) -> Self {
        Self::Backend {
            detail: error.to_string(),
        }
    }

    pub(crate) fn corrupt(family: &'static str, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            family,
            detail: detail.into(),
        }
    }
}

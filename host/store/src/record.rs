//! The records a [`Store`](crate::Store) holds, as the privacy layer hands them
//! down: ids and times in the clear, everything else already encrypted bytes.

/// A keyed hash (HMAC-SHA-256 with a tenant key) of a normalised identity.
pub type IdentityHash = [u8; 32];

/// A tenant: its key wrapped by the master key, and its encrypted settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub id: String,
    pub wrapped_key: Vec<u8>,
    pub settings: Vec<u8>,
}

/// A data subject: its data key wrapped by the tenant key, and its encrypted
/// traits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRecord {
    pub id: String,
    pub wrapped_key: Vec<u8>,
    pub created_at_ms: i64,
    pub data: Vec<u8>,
}

/// One event of a subject. `source_id` makes ingestion idempotent within the
/// tenant; callers pass an opaque id (a keyed hash if the source's own id could
/// identify someone), because it is stored in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub source_id: String,
    pub at_ms: i64,
    pub data: Vec<u8>,
}

/// One entry of a subject's consent history (purpose, grant and provenance
/// are inside the encrypted `data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub at_ms: i64,
    pub data: Vec<u8>,
}

/// One audit entry and its per-tenant sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: u64,
    pub data: Vec<u8>,
}

/// Work for a background worker (purges, retention sweeps). Claimable once
/// `now_ms >= not_before_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub not_before_ms: i64,
    pub payload: Vec<u8>,
}

/// One subject's share of [`Store::append_batch`](crate::Store::append_batch):
/// everything one subject gains from a batch, written in the batch's one
/// transaction. `Default` is an empty append for subject `""`; set at least
/// `subject`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubjectAppend<'a> {
    pub subject: &'a str,
    pub events: &'a [EventRecord],
    /// Replaces the subject record in the same transaction.
    pub update: Option<&'a SubjectRecord>,
    /// The append creates the subject, with `update` as its record: the
    /// subject must not exist yet, and `update` must be given.
    pub create: bool,
    /// Identity hashes to point at the subject, in the same transaction.
    pub links: &'a [IdentityHash],
    /// Entries appended to the subject's consent history.
    pub consents: &'a [ConsentRecord],
}

/// What [`Store::append_events`](crate::Store::append_events) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub inserted: u64,
    pub duplicates: u64,
}

/// What [`Store::append_new`](crate::Store::append_new) did.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewEvents {
    /// Every event was new: everything was stored.
    Stored,
    /// Nothing was stored: these events' source ids were stored already or
    /// earlier in the batch, as (append, event) positions in batch order.
    Duplicates(Vec<(usize, usize)>),
}

/// What [`Store::purge_subject`](crate::Store::purge_subject) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Whether the subject record existed.
    pub subject: bool,
    pub identities: u64,
    pub events: u64,
    pub consents: u64,
}

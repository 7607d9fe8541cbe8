//! Where Tessera's data lives: the [`Store`] trait, its embedded sled backend
//! and the conformance suite; it stores opaque bytes and never sees plaintext or keys.
//!
//! Everything the privacy layer hands down is already encrypted (record `data`,
//! wrapped keys) or a keyed hash (identities), so the store knows nothing of
//! crypto, plugins or purposes. Every record is scoped by tenant, and every key
//! is laid out for ordered range scans so that a PostgreSQL backend can follow
//! with the same trait and pass the same `conformance` suite (feature
//! `conformance`).
//!
//! # Durability
//!
//! A write that returned `Ok` is durable once a later [`Store::flush`] has
//! returned `Ok`; callers that acknowledge writes to someone else (ingestion
//! batches, deletion receipts) flush first. The sled backend also flushes in
//! the background every [`sled_store::BACKGROUND_FLUSH_MS`] milliseconds, which
//! bounds what a crash can lose but is not a promise. A backend that is durable
//! on commit (PostgreSQL) implements `flush` as a no-op.
//!
//! # Atomicity
//!
//! Each method is atomic on its own, except [`Store::purge_subject`],
//! [`Store::purge_subject_state`] and [`Store::delete_events_before`], which
//! remove records in bounded batches and can be re-run to finish after a
//! crash. Nothing is atomic across calls; callers that read, decide and write
//! (audit chains, merges) use the compare-and-set methods
//! ([`Store::append_audit`], [`Store::relink_identity`]) and retry.

mod codec;
mod error;
mod keys;
mod record;
pub mod sled_store;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use error::StoreError;
pub use record::{
    AppendOutcome, AuditRecord, ConsentRecord, EventRecord, IdentityHash, JobRecord, NewEvents,
    PurgeReport, SubjectAppend, SubjectRecord, TenantRecord,
};
pub use sled_store::{DEFAULT_CACHE_BYTES, SledStore};

/// The longest tenant, subject, source, job, job kind, worker, document kind or
/// document id, in bytes.
pub const MAX_ID_LEN: usize = 1024;

/// Refuses an id that no caller means and no backend stores: empty, or
/// longer than [`MAX_ID_LEN`]. Every backend checks ids with it, so that
/// they refuse the same ones ([`StoreError::InvalidId`] naming `field`).
/// When a lease of `lease_ms` taken at `now_ms` ends (saturating: a lease
/// as long as time never ends).
pub fn lease_end(now_ms: i64, lease_ms: u64) -> i64 {
    now_ms.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX))
}

/// Held while a process writes a tenant's records ([`Store::lock_tenant`]);
/// dropping it lets the next writer in.
pub type TenantLock = Box<dyn Send>;

pub fn check_id(field: &'static str, id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(StoreError::InvalidId { field });
    }
    Ok(())
}

/// Tessera's storage: tenants, subjects, identity links, events, consents,
/// the suppression list, audit entries, named documents, jobs and subject
/// erasure. Plugin state is the [`tessera_state::StateStore`] supertrait, so
/// that one backend keeps everything and an `Arc<dyn Store>` serves as the
/// plugins' state store; [`Store::subject_state`] and
/// [`Store::purge_subject_state`] reach into it for erasure.
///
/// Ids are UTF-8 strings of 1 to [`MAX_ID_LEN`] bytes; a longer or empty id is
/// refused with [`StoreError::InvalidId`]. Looking up something that does not
/// exist yields `None` or an empty list, never an error; writing a record that
/// belongs to a subject that does not exist is refused with
/// [`StoreError::UnknownSubject`], so nothing can be written for a subject once
/// [`Store::purge_subject`] has begun.
pub trait Store: tessera_state::StateStore + Send + Sync + std::fmt::Debug {
    /// Creates or replaces a tenant.
    fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError>;
    /// One tenant.
    fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError>;
    /// Every tenant, ordered by id.
    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;

    /// Creates or replaces a subject of an existing tenant.
    fn put_subject(&self, tenant: &str, subject: &SubjectRecord) -> Result<(), StoreError>;
    /// Creates or replaces several subjects of an existing tenant atomically:
    /// all are written, or none (a merge changes two subjects at once).
    fn put_subjects(&self, tenant: &str, subjects: &[SubjectRecord]) -> Result<(), StoreError>;
    /// One subject.
    fn subject(&self, tenant: &str, id: &str) -> Result<Option<SubjectRecord>, StoreError>;
    /// At most `limit` subjects ordered by id (byte order), starting after the
    /// id `after` (which need not exist): pass the last id of a page to get the
    /// next one.
    fn subjects(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SubjectRecord>, StoreError>;
    /// The ids of the subjects of `tenant` whose `wrapped_key` (the
    /// reference to their key) is one of `refs`, ordered by id. The default
    /// reads every subject; a backend with an index on the reference
    /// overrides it.
    fn subjects_with_key_refs(
        &self,
        tenant: &str,
        refs: &[Vec<u8>],
    ) -> Result<Vec<String>, StoreError> {
        let wanted: std::collections::HashSet<&[u8]> = refs.iter().map(Vec::as_slice).collect();
        let mut found = Vec::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut after: Option<String> = None;
        loop {
            let page = self.subjects(tenant, after.as_deref(), 1024)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            found.extend(
                page.into_iter()
                    .filter(|s| wanted.contains(s.wrapped_key.as_slice()))
                    .map(|s| s.id),
            );
        }
        Ok(found)
    }

    /// Points an identity hash at a subject. If the hash already points at a
    /// subject (this one or another), nothing changes and that subject is
    /// returned, so the caller decides about merges.
    fn link_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
        subject: &str,
    ) -> Result<Option<String>, StoreError>;
    /// The subject an identity hash points at.
    fn find_identity(&self, tenant: &str, hash: IdentityHash)
    -> Result<Option<String>, StoreError>;
    /// Removes an identity link; returns the subject it pointed at.
    fn unlink_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
    ) -> Result<Option<String>, StoreError>;
    /// The identity hashes pointing at a subject, in byte order.
    fn identities_of(&self, tenant: &str, subject: &str) -> Result<Vec<IdentityHash>, StoreError>;
    /// Repoints an identity hash from subject `from` to subject `to`, if and
    /// only if it points at `from` now (compare-and-set); for merging and
    /// un-merging subjects. Returns `false` and changes nothing if the hash
    /// points elsewhere or nowhere. `to` must exist (else
    /// [`StoreError::UnknownSubject`], checked first, whatever the hash points
    /// at); `from` need not. With `from == to` it only reports whether the
    /// hash points there. Afterwards [`Store::identities_of`] lists the hash
    /// under `to` and no longer under `from`.
    fn relink_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
        from: &str,
        to: &str,
    ) -> Result<bool, StoreError>;

    /// Adds an identity hash to the tenant's suppression list with an opaque
    /// (encrypted) entry, or replaces its entry. The tenant must exist (else
    /// [`StoreError::UnknownTenant`]). Suppressions are keyed by hash, not by
    /// subject: [`Store::purge_subject`] never touches them.
    fn suppress(&self, tenant: &str, hash: IdentityHash, entry: &[u8]) -> Result<(), StoreError>;
    /// The suppression entry of an identity hash.
    fn suppression(&self, tenant: &str, hash: IdentityHash) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes an identity hash from the suppression list; returns `false` if
    /// it was not on it.
    fn unsuppress(&self, tenant: &str, hash: IdentityHash) -> Result<bool, StoreError>;
    /// How many identity hashes the tenant's suppression list holds. Costs a
    /// scan of the tenant's list.
    fn suppressions(&self, tenant: &str) -> Result<usize, StoreError>;
    /// At most `limit` entries of the tenant's suppression list as `(hash,
    /// entry)`, ordered by hash (byte order), starting after the hash `after`
    /// (which need not be listed): pass the last hash of a page to get the
    /// next one. For copying and checking a whole store (`tessera migrate`).
    fn suppression_entries(
        &self,
        tenant: &str,
        after: Option<&IdentityHash>,
        limit: usize,
    ) -> Result<Vec<(IdentityHash, Vec<u8>)>, StoreError>;

    /// Appends events to a subject. Idempotent on `source_id` within the
    /// tenant: an event whose source id is already stored (for any subject of
    /// the tenant, or earlier in the same batch) is skipped and counted as a
    /// duplicate. If `update` is given, it replaces the subject record in the
    /// same transaction, even if every event was a duplicate; its `id` must be
    /// `subject` (else [`StoreError::SubjectMismatch`]). The subject must
    /// exist, with or without `update` (a purged subject is not recreated).
    /// Atomic: all new events and the update are stored, or nothing.
    fn append_events(
        &self,
        tenant: &str,
        subject: &str,
        events: &[EventRecord],
        update: Option<&SubjectRecord>,
    ) -> Result<AppendOutcome, StoreError> {
        let append = SubjectAppend {
            subject,
            events,
            update,
            ..SubjectAppend::default()
        };
        let mut outcomes = self.append_batch(tenant, &[append])?;
        Ok(outcomes.pop().unwrap_or_default())
    }
    /// [`Store::append_events`] for several subjects in one transaction,
    /// each [`SubjectAppend`] also able to create its subject, link identity
    /// hashes to it and append consent entries: all of it is stored, or
    /// nothing. A source id earlier in the batch (for any subject) is a
    /// duplicate too. Appends are applied in order, so a later append sees
    /// what an earlier one wrote (a subject it created, its links).
    ///
    /// Per append, in one transaction with all the others:
    ///
    /// - With `create`, the subject must not exist yet (else
    ///   [`StoreError::SubjectExists`]) and `update` must be given (else
    ///   [`StoreError::UnknownSubject`]); its record is `update`. The tenant
    ///   must exist (else [`StoreError::UnknownTenant`]). Without `create`,
    ///   the subject must exist (a purged subject is not recreated).
    /// - `events` are appended as by [`Store::append_events`], then the
    ///   record is replaced by `update` if given.
    /// - Each hash of `links` is pointed at the subject as by
    ///   [`Store::link_identity`] and listed by [`Store::identities_of`]; a
    ///   hash that already points at this subject is left as it is, one that
    ///   points at another subject refuses the whole batch with
    ///   [`StoreError::IdentityLinked`].
    /// - `consents` are appended as by [`Store::append_consent`].
    ///
    /// Returns one outcome per append, in order.
    fn append_batch(
        &self,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
    ) -> Result<Vec<AppendOutcome>, StoreError>;
    /// [`Store::append_batch`] for a caller that has already counted every
    /// event as new (in aggregates sealed into `update`): all or nothing on
    /// duplicates too. If any event's source id is stored already (for any
    /// subject of the tenant) or earlier in the batch, nothing at all is
    /// stored and [`NewEvents::Duplicates`] names every such event by its
    /// (append, event) index, so that the caller can leave them out and try
    /// again. The errors of `append_batch` come first: a batch that would be
    /// refused is refused, duplicates or not.
    fn append_new(
        &self,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
    ) -> Result<NewEvents, StoreError>;
    /// Whether an event with this source id is stored for any subject of the
    /// tenant (what [`Store::append_events`] would count as a duplicate).
    fn has_event_source(&self, tenant: &str, source_id: &str) -> Result<bool, StoreError>;
    /// A subject's events with `from_ms <= at_ms < to_ms`, in time order (equal
    /// times in the order they were appended).
    fn events(
        &self,
        tenant: &str,
        subject: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// Removes a subject's events with `at_ms < before_ms`; returns how many.
    /// Their source ids are forgotten: the same source id may be appended again.
    fn delete_events_before(
        &self,
        tenant: &str,
        subject: &str,
        before_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Appends an entry to a subject's consent history.
    fn append_consent(
        &self,
        tenant: &str,
        subject: &str,
        consent: &ConsentRecord,
    ) -> Result<(), StoreError>;
    /// A subject's consent history ordered by `at_ms`, equal times in the order
    /// they were appended.
    fn consents(&self, tenant: &str, subject: &str) -> Result<Vec<ConsentRecord>, StoreError>;

    /// Stores an audit entry as number `seq` if the tenant's audit head
    /// ([`Store::audit_head`]) is exactly `seq - 1`, and makes `seq` the head
    /// (compare-and-append: of two writers numbered alike, one wins).
    /// Otherwise refuses with
    /// [`StoreError::AuditConflict`] and changes nothing: the caller reads the
    /// head again, recomputes its entry (a hash chain links to the previous
    /// one) and retries. `seq == 0` is refused with
    /// [`StoreError::InvalidAuditSeq`]. Numbers thus start at 1 and grow by
    /// exactly 1 per entry of the tenant, so a gap means a removed entry. The
    /// tenant need not exist.
    fn append_audit(&self, tenant: &str, seq: u64, entry: &[u8]) -> Result<(), StoreError>;
    /// The tenant's audit head: the last sequence number ever appended, 0 if
    /// none. It is kept apart from the entries, so it does not go back when
    /// the last entry is removed; compare it with [`Store::audit`] to detect
    /// that. (A backend that writes the entry and the head in two steps
    /// counts an entry just past its stored head as appended, and anchors
    /// it at the next append; see the sled backend.)
    fn audit_head(&self, tenant: &str) -> Result<u64, StoreError>;
    /// At most `limit` audit entries with `seq >= from_seq`, in order.
    fn audit(
        &self,
        tenant: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Creates or replaces a named document (deletion requests, receipts,
    /// tenant schemas): opaque bytes under a `kind` and an `id` within a
    /// tenant, which must exist (else [`StoreError::UnknownTenant`]).
    /// Documents are not keyed to subjects: [`Store::purge_subject`] never
    /// touches them.
    fn put_document(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
        value: &[u8],
    ) -> Result<(), StoreError>;
    /// Stores several documents of `tenant` at once, each `(kind, id,
    /// value)` replacing one of that name: all of them or, on any error,
    /// none.
    fn put_documents(
        &self,
        tenant: &str,
        documents: &[(&str, &str, &[u8])],
    ) -> Result<(), StoreError>;
    /// Stores several documents of `tenant` one after another, in order,
    /// each as [`Store::put_document`] does: for records written often whose
    /// readers tolerate a crash between them. Every id and the tenant are
    /// checked before anything is written; on a later error the documents
    /// before it may be stored; after a crash, a document is never stored
    /// without those before it. The default stores them all at once
    /// ([`Store::put_documents`]), which keeps that promise; a backend
    /// whose multi-key writes cost more than single ones writes them singly.
    fn put_documents_in_order(
        &self,
        tenant: &str,
        documents: &[(&str, &str, &[u8])],
    ) -> Result<(), StoreError> {
        self.put_documents(tenant, documents)
    }
    /// One document.
    fn document(&self, tenant: &str, kind: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// At most `limit` documents of a kind as `(id, value)`, ordered by id
    /// (byte order), starting after the id `after` (which need not exist):
    /// pass the last id of a page to get the next one.
    fn documents(
        &self,
        tenant: &str,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// [`Store::documents`] restricted to the ids that start with
    /// `prefix`: the scan ends at the first id outside it, so a page of a
    /// small prefix costs what its documents cost, however many other
    /// documents the kind holds. `after` outside the prefix (or absent)
    /// starts at the prefix's first id.
    fn documents_under(
        &self,
        tenant: &str,
        kind: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Removes a document; returns `false` if there was none.
    fn delete_document(&self, tenant: &str, kind: &str, id: &str) -> Result<bool, StoreError>;
    /// Every kind under which the tenant holds at least one document, in
    /// byte order, for walking all of a tenant's documents with
    /// [`Store::documents`].
    fn document_kinds(&self, tenant: &str) -> Result<Vec<String>, StoreError>;

    /// Serialises the writes of `tenant` among every process that shares
    /// this store: blocks until no other process holds the tenant's lock,
    /// and holds it until the returned guard is dropped (a process that
    /// dies holding it releases it). Callers read a subject, change it and
    /// write it back under it. A store that only one process can open (sled
    /// locks its directory) returns `None`: the caller's own lock suffices.
    fn lock_tenant(&self, tenant: &str) -> Result<Option<TenantLock>, StoreError> {
        check_id("tenant id", tenant)?;
        Ok(None)
    }

    /// Queues a job; returns `false` (and changes nothing) if a job with that
    /// id is already queued, so enqueueing is idempotent.
    fn enqueue_job(&self, job: &JobRecord) -> Result<bool, StoreError>;
    /// Leases the due job of a kind (`not_before_ms <= now_ms`) with the
    /// earliest `not_before_ms` that no worker holds, for `lease_ms`. A job
    /// whose lease expired can be claimed again: workers must be idempotent.
    fn claim_job(
        &self,
        kind: &str,
        worker: &str,
        lease_ms: u64,
        now_ms: i64,
    ) -> Result<Option<JobRecord>, StoreError>;
    /// Extends the lease that `worker` holds on the job `id` to `lease_ms`
    /// from `now_ms`: a worker whose job runs longer than a lease renews it
    /// while it works, so that the lease can stay short and a dead worker's
    /// job is taken over soon. Returns `false` (and changes nothing) if the
    /// job is gone or another worker holds it (`worker`'s lease expired and
    /// the job was claimed again: the worker should stop). A lease of
    /// `worker` that expired but that nobody claimed since is renewed.
    fn renew_job(
        &self,
        id: &str,
        worker: &str,
        lease_ms: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Removes a finished job; returns `false` if there was none.
    fn complete_job(&self, id: &str) -> Result<bool, StoreError>;
    /// At most `limit` queued jobs of every kind, ordered by id (byte
    /// order), starting after the id `after` (which need not exist). A job
    /// is listed as it was queued, whether a worker holds it or not.
    fn jobs(&self, after: Option<&str>, limit: usize) -> Result<Vec<JobRecord>, StoreError>;

    /// Removes every record keyed to a subject: the subject record first (so
    /// concurrent writes for it are refused from then on), then its identity
    /// links, events (and their source ids) and consents. Re-running it after
    /// a crash, or once the subject record is gone, finishes the job (the
    /// report then counts only what this run removed). Identity links already
    /// repointed to another subject are kept. Audit entries, suppressions and
    /// documents are never touched; plugin state is removed by
    /// [`Store::purge_subject_state`].
    fn purge_subject(&self, tenant: &str, subject: &str) -> Result<PurgeReport, StoreError>;

    /// Every plugin state entry of the tenant that belongs to a subject, as
    /// `(plugin, key, value)` ordered by plugin then key (byte order). By
    /// convention a state key belongs to subject `s` if it begins with
    /// `subject/<s>/`; a subject id containing `/` would make that ambiguous
    /// and is refused with [`StoreError::AmbiguousSubject`]. Plugin state is
    /// not checked against subjects: the subject need not exist. Costs a scan
    /// of all the tenant's plugin state.
    fn subject_state(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError>;
    /// Removes the entries [`Store::subject_state`] lists; returns how many.
    /// Each changed plugin scope's usage drops by what was removed and its
    /// version moves on, so a plugin write based on an earlier version
    /// conflicts; scopes with nothing removed are left as they are. Removes
    /// in bounded batches (each atomic) and can be re-run to finish after a
    /// crash. Costs a scan of all the tenant's plugin state.
    fn purge_subject_state(&self, tenant: &str, subject: &str) -> Result<u64, StoreError>;

    /// At most `limit` entries of one plugin state scope as `(key, value)`,
    /// ordered by key (byte order), starting after the key `after` (which
    /// need not exist). With [`tessera_state::StateStore::scopes`] it walks
    /// all of a tenant's plugin state, which the plugins' own `keys` (by
    /// prefix, without a cursor) cannot page through.
    fn state_entries(
        &self,
        scope: &tessera_state::StateScope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Makes every write that returned before this call durable.
    fn flush(&self) -> Result<(), StoreError>;
}

//! A store that passes everything to another and tells whether writes of
//! one document kind have been made durable (flushed) since.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_runtime::{StateError, StateScope, StateStore, StateWrite};
use tessera_store::{
    AppendOutcome, AuditRecord, ConsentRecord, EventRecord, IdentityHash, JobRecord, NewEvents,
    PurgeReport, Store, StoreError, SubjectAppend, SubjectRecord, TenantRecord,
};

#[derive(Debug)]
pub struct WatchedStore {
    inner: Arc<dyn Store>,
    watched: &'static str,
    unflushed: AtomicBool,
}

impl WatchedStore {
    pub fn new(inner: Arc<dyn Store>, watched: &'static str) -> Self {
        Self {
            inner,
            watched,
            unflushed: AtomicBool::new(false),
        }
    }

    /// Whether a document of the watched kind was written and not flushed
    /// since: what a crash now would lose.
    pub fn unflushed(&self) -> bool {
        self.unflushed.load(Ordering::SeqCst)
    }
}

impl StateStore for WatchedStore {
    fn get(&self, scope: &StateScope, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.inner.get(scope, key)
    }
    fn usage(&self, scope: &StateScope) -> Result<u64, StateError> {
        self.inner.usage(scope)
    }
    fn version(&self, scope: &StateScope) -> Result<u64, StateError> {
        self.inner.version(scope)
    }
    fn keys(
        &self,
        scope: &StateScope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        self.inner.keys(scope, prefix, limit)
    }
    fn apply(
        &self,
        scope: &StateScope,
        base: u64,
        writes: &[StateWrite],
        quota: u64,
    ) -> Result<(), StateError> {
        self.inner.apply(scope, base, writes, quota)
    }
    fn retire(&self, scope: &StateScope) -> Result<u64, StateError> {
        self.inner.retire(scope)
    }
    fn scopes(&self, tenant: &str, prefix: &str) -> Result<Vec<StateScope>, StateError> {
        self.inner.scopes(tenant, prefix)
    }
}

impl Store for WatchedStore {
    fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        self.inner.put_tenant(tenant)
    }

    fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        self.inner.tenant(id)
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.inner.tenants()
    }

    fn put_subject(&self, tenant: &str, subject: &SubjectRecord) -> Result<(), StoreError> {
        self.inner.put_subject(tenant, subject)
    }

    fn put_subjects(&self, tenant: &str, subjects: &[SubjectRecord]) -> Result<(), StoreError> {
        self.inner.put_subjects(tenant, subjects)
    }

    fn subject(&self, tenant: &str, id: &str) -> Result<Option<SubjectRecord>, StoreError> {
        self.inner.subject(tenant, id)
    }

    fn subjects(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SubjectRecord>, StoreError> {
        self.inner.subjects(tenant, after, limit)
    }

    fn link_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
        subject: &str,
    ) -> Result<Option<String>, StoreError> {
        self.inner.link_identity(tenant, hash, subject)
    }

    fn find_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
    ) -> Result<Option<String>, StoreError> {
        self.inner.find_identity(tenant, hash)
    }

    fn unlink_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
    ) -> Result<Option<String>, StoreError> {
        self.inner.unlink_identity(tenant, hash)
    }

    fn identities_of(&self, tenant: &str, subject: &str) -> Result<Vec<IdentityHash>, StoreError> {
        self.inner.identities_of(tenant, subject)
    }

    fn relink_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
        from: &str,
        to: &str,
    ) -> Result<bool, StoreError> {
        self.inner.relink_identity(tenant, hash, from, to)
    }

    fn suppress(&self, tenant: &str, hash: IdentityHash, entry: &[u8]) -> Result<(), StoreError> {
        self.inner.suppress(tenant, hash, entry)
    }

    fn suppression(&self, tenant: &str, hash: IdentityHash) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.suppression(tenant, hash)
    }

    fn unsuppress(&self, tenant: &str, hash: IdentityHash) -> Result<bool, StoreError> {
        self.inner.unsuppress(tenant, hash)
    }

    fn suppressions(&self, tenant: &str) -> Result<usize, StoreError> {
        self.inner.suppressions(tenant)
    }

    fn suppression_entries(
        &self,
        tenant: &str,
        after: Option<&IdentityHash>,
        limit: usize,
    ) -> Result<Vec<(IdentityHash, Vec<u8>)>, StoreError> {
        self.inner.suppression_entries(tenant, after, limit)
    }

    fn append_events(
        &self,
        tenant: &str,
        subject: &str,
        events: &[EventRecord],
        update: Option<&SubjectRecord>,
    ) -> Result<AppendOutcome, StoreError> {
        self.inner.append_events(tenant, subject, events, update)
    }

    fn append_batch(
        &self,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        self.inner.append_batch(tenant, appends)
    }

    fn append_new(
        &self,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
    ) -> Result<NewEvents, StoreError> {
        self.inner.append_new(tenant, appends)
    }

    fn has_event_source(&self, tenant: &str, source_id: &str) -> Result<bool, StoreError> {
        self.inner.has_event_source(tenant, source_id)
    }

    fn events(
        &self,
        tenant: &str,
        subject: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.events(tenant, subject, from_ms, to_ms)
    }

    fn delete_events_before(
        &self,
        tenant: &str,
        subject: &str,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        self.inner.delete_events_before(tenant, subject, before_ms)
    }

    fn append_consent(
        &self,
        tenant: &str,
        subject: &str,
        consent: &ConsentRecord,
    ) -> Result<(), StoreError> {
        self.inner.append_consent(tenant, subject, consent)
    }

    fn consents(&self, tenant: &str, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        self.inner.consents(tenant, subject)
    }

    fn append_audit(&self, tenant: &str, seq: u64, entry: &[u8]) -> Result<(), StoreError> {
        self.inner.append_audit(tenant, seq, entry)
    }

    fn audit_head(&self, tenant: &str) -> Result<u64, StoreError> {
        self.inner.audit_head(tenant)
    }

    fn audit(
        &self,
        tenant: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit(tenant, from_seq, limit)
    }

    fn put_document(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        if kind == self.watched {
            self.unflushed.store(true, Ordering::SeqCst);
        }
        self.inner.put_document(tenant, kind, id, value)
    }

    fn document(&self, tenant: &str, kind: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.document(tenant, kind, id)
    }

    fn put_documents(
        &self,
        tenant: &str,
        documents: &[(&str, &str, &[u8])],
    ) -> Result<(), StoreError> {
        self.inner.put_documents(tenant, documents)
    }

    fn put_documents_in_order(
        &self,
        tenant: &str,
        documents: &[(&str, &str, &[u8])],
    ) -> Result<(), StoreError> {
        if documents.iter().any(|(kind, _, _)| *kind == self.watched) {
            self.unflushed.store(true, Ordering::SeqCst);
        }
        self.inner.put_documents_in_order(tenant, documents)
    }

    fn documents(
        &self,
        tenant: &str,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.documents(tenant, kind, after, limit)
    }

    fn documents_under(
        &self,
        tenant: &str,
        kind: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner
            .documents_under(tenant, kind, prefix, after, limit)
    }

    fn delete_document(&self, tenant: &str, kind: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_document(tenant, kind, id)
    }

    fn document_kinds(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        self.inner.document_kinds(tenant)
    }

    fn enqueue_job(&self, job: &JobRecord) -> Result<bool, StoreError> {
        self.inner.enqueue_job(job)
    }

    fn claim_job(
        &self,
        kind: &str,
        worker: &str,
        lease_ms: u64,
        now_ms: i64,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.inner.claim_job(kind, worker, lease_ms, now_ms)
    }

    fn renew_job(
        &self,
        id: &str,
        worker: &str,
        lease_ms: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.inner.renew_job(id, worker, lease_ms, now_ms)
    }

    fn complete_job(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.complete_job(id)
    }

    fn jobs(&self, after: Option<&str>, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        self.inner.jobs(after, limit)
    }

    fn purge_subject(&self, tenant: &str, subject: &str) -> Result<PurgeReport, StoreError> {
        self.inner.purge_subject(tenant, subject)
    }

    fn subject_state(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        self.inner.subject_state(tenant, subject)
    }

    fn purge_subject_state(&self, tenant: &str, subject: &str) -> Result<u64, StoreError> {
        self.inner.purge_subject_state(tenant, subject)
    }

    fn state_entries(
        &self,
        scope: &StateScope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.state_entries(scope, after, limit)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let flushed = self.inner.flush();
        if flushed.is_ok() {
            self.unflushed.store(false, Ordering::SeqCst);
        }
        flushed
    }
}

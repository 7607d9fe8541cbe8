//! The embedded backend: one sled database per data directory, one tree per
//! record family; it must never decode, log or index the bytes it is given.
//!
//! # Key layout
//!
//! `part(x)` is a 2-byte big-endian length then the bytes of `x`, so that no
//! tenant's (or subject's) prefix matches another's keys; `time(t)` is `t` as 8
//! big-endian bytes with the sign bit flipped, so that keys sort by time,
//! negative times first; `seq` is 8 big-endian bytes from sled's id generator
//! (monotonic, unique across restarts) and keeps equal times in append order.
//! A component that comes last is stored raw, so that it sorts in byte order.
//!
//! | tree             | key                                          | value                                |
//! |------------------|----------------------------------------------|--------------------------------------|
//! | `tenants`        | `tenant`                                     | wrapped key, settings                |
//! | `subjects`       | `part(tenant) subject`                       | wrapped key, created at, data        |
//! | `identities`     | `part(tenant) hash`                          | subject                              |
//! | `identity_index` | `part(tenant) part(subject) hash`            | (empty)                              |
//! | `suppressions`   | `part(tenant) hash`                          | entry                                |
//! | `events`         | `part(tenant) part(subject) time(at) seq`    | source id, data                      |
//! | `event_sources`  | `part(tenant) source_id`                     | the `events` key                     |
//! | `consents`       | `part(tenant) part(subject) time(at) seq`    | data                                 |
//! | `audit`          | `part(tenant) seq(u64, from 1)`              | entry                                |
//! | `counters`       | `"audit" part(tenant)`                       | audit counter: anchored head (u64)   |
//! | `documents`      | `part(tenant) part(kind) id`                 | value                                |
//! | `state`          | `part(tenant) part(plugin) key`              | value (raw)                          |
//! | `state_meta`     | `part(tenant) part(plugin)`                  | version (u64), usage (u64)           |
//! | `jobs`           | `part(kind) time(not_before) id`             | payload, attempts, lease             |
//! | `job_ids`        | `id`                                         | the `jobs` key                       |
//!
//! Record values start with a format byte and hold 4-byte-length-prefixed
//! fields (see `codec`); the default tree holds the store's format version.
//!
//! Plugin state keys are not indexed by subject: [`Store::subject_state`] and
//! [`Store::purge_subject_state`] scan the whole `part(tenant)` range of
//! `state`, which costs time linear in the tenant's plugin state.
//!
//! # Concurrency and flush policy
//!
//! Writes that touch more than one key run in sled transactions, which sled
//! 0.34 serialises behind one process-wide lock: correct under concurrent
//! writers, at the cost of write parallelism. Each transaction also makes
//! sled write out its current log buffer before and after it (its
//! `PageCache::pin_log`), so the writes on hot paths avoid them: a document
//! is one `insert` (tenants are never removed, so checking the tenant first
//! is enough), and an audit entry is two single-key writes, the entry with
//! a compare-and-swap from nothing and then the counter with a
//! compare-and-swap that only moves it forward. An append interrupted
//! between the two leaves its entry past the counter; the head
//! ([`Store::audit_head`]) counts such entries, so the next append goes
//! after them and the counter catches up. Reads are lock-free. sled writes
//! go to an in-memory log buffer that a background thread flushes every
//! [`BACKGROUND_FLUSH_MS`]; [`Store::flush`] forces it, and only a write
//! followed by a successful `flush` is guaranteed to survive a crash.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::{IVec, Tree};
use tessera_state::{StateError, StateScope, StateStore};

use crate::codec::{Reader, Writer, u64_at};
use crate::keys;
use crate::{
    AppendOutcome, AuditRecord, ConsentRecord, EventRecord, IdentityHash, JobRecord, MAX_ID_LEN,
    NewEvents, PurgeReport, Store, StoreError, SubjectAppend, SubjectRecord, TenantRecord,
    check_id,
};

/// How often sled flushes on its own, in milliseconds.
pub const BACKGROUND_FLUSH_MS: u64 = 500;

/// The default size of sled's page cache, in bytes (sled's own default),
/// filled once that much of the store has been read or written. sled also
/// keeps some memory for every page of the store, cached or not, so a
/// server's resident set grows with its store beyond this (docs/BENCHMARKS.md,
/// the soak run). Set per deployment with [`SledStore::open_with_cache`].
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// The on-disk layout version this build reads and writes.
const FORMAT: u32 = 1;
const FORMAT_KEY: &[u8] = b"tessera-store-format";

/// How long opening waits for a directory lock this process just released.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How many records one deletion transaction removes.
const DELETE_BATCH: usize = 512;

/// The sled backend. Cloning is cheap and shares the database.
#[derive(Clone)]
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    trees: Arc<Trees>,
}

struct Trees {
    tenants: Tree,
    subjects: Tree,
    identities: Tree,
    identity_index: Tree,
    suppressions: Tree,
    events: Tree,
    event_sources: Tree,
    consents: Tree,
    audit: Tree,
    counters: Tree,
    documents: Tree,
    state: Tree,
    state_meta: Tree,
    jobs: Tree,
    job_ids: Tree,
}

// sled's own Debug prints the trees' contents; ours names the directory only.
impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// The tenant's audit head: the counter, or the last of the entries
    /// written without a gap right after it (appends in flight, or cut by
    /// a crash between their two writes). The counter never goes back, so
    /// a removed entry at or below it still shows as a head past the
    /// entries; entries past it are anchored once the next append moves it.
    /// Also returns the counter's stored bytes, for
    /// [`SledStore::advance_audit_counter`].
    fn audit_position(&self, tenant: &str) -> Result<(Option<IVec>, u64), StoreError> {
        let stored = self
            .trees
            .counters
            .get(keys::audit_counter(tenant))
            .map_err(StoreError::backend)?;
        let mut head = audit_head(stored.as_ref())?;
        while head < u64::MAX
            && self
                .trees
                .audit
                .contains_key(keys::audit(tenant, head.saturating_add(1)))
                .map_err(StoreError::backend)?
        {
            head += 1;
        }
        Ok((stored, head))
    }

    /// Refuses a tenant the store does not hold. Outside a transaction this
    /// is enough before a single-key write: tenants are never removed.
    fn require_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        if self
            .trees
            .tenants
            .contains_key(tenant.as_bytes())
            .map_err(StoreError::backend)?
        {
            Ok(())
        } else {
            Err(StoreError::UnknownTenant {
                tenant: tenant.to_owned(),
            })
        }
    }

    /// Moves the tenant's audit counter up to `to` (from `current`, its
    /// stored bytes as last read, or wherever another writer left it),
    /// never back: every entry up to `to` is written. Each swap compares
    /// the stored bytes as they are.
    fn advance_audit_counter(
        &self,
        tenant: &str,
        mut current: Option<IVec>,
        to: u64,
    ) -> Result<(), StoreError> {
        let key = keys::audit_counter(tenant);
        let counters = &self.trees.counters;
        while audit_head(current.as_ref())? < to {
            let swapped = counters
                .compare_and_swap(&key, current.as_ref(), Some(&to.to_be_bytes()[..]))
                .map_err(StoreError::backend)?;
            match swapped {
                Ok(()) => break,
                Err(found) => current = found.current,
            }
        }
        Ok(())
    }

    /// Opens (creating if needed) the store in a data directory. Only one
    /// process may have a directory open at a time.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`SledStore::open`] with a page cache of at most `cache_bytes`.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: u64) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |error: sled::Error| StoreError::Open {
            path: path.clone(),
            detail: error.to_string(),
        };
        let config = sled::Config::new()
            .path(&path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(BACKGROUND_FLUSH_MS));
        // sled's I/O threads let go of the directory lock a moment after the
        // last handle drops, so reopening in the same process waits briefly;
        // another process holding the directory is still refused.
        let deadline = Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(error))
                    if error.to_string().contains("could not acquire lock")
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                result => break result.map_err(open_error)?,
            }
        };
        match db.get(FORMAT_KEY).map_err(open_error)? {
            Some(found) => {
                let found = <[u8; 4]>::try_from(found.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::corrupt("format", "format version is not 4 bytes"))?;
                if found != FORMAT {
                    return Err(StoreError::Format {
                        path,
                        found,
                        expected: FORMAT,
                    });
                }
            }
            None => {
                db.insert(FORMAT_KEY, &FORMAT.to_be_bytes()[..])
                    .map_err(open_error)?;
            }
        }
        let tree = |name: &str| db.open_tree(name).map_err(open_error);
        let trees = Trees {
            tenants: tree("tenants")?,
            subjects: tree("subjects")?,
            identities: tree("identities")?,
            identity_index: tree("identity_index")?,
            suppressions: tree("suppressions")?,
            events: tree("events")?,
            event_sources: tree("event_sources")?,
            consents: tree("consents")?,
            audit: tree("audit")?,
            counters: tree("counters")?,
            documents: tree("documents")?,
            state: tree("state")?,
            state_meta: tree("state_meta")?,
            jobs: tree("jobs")?,
            job_ids: tree("job_ids")?,
        };
        Ok(Self {
            path,
            db,
            trees: Arc::new(trees),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        self.db.generate_id().map_err(StoreError::backend)
    }

    /// Removes events (and their source ids, if they still point at them) in
    /// bounded transactions; returns how many were removed.
    fn remove_events(&self, found: &[(IVec, Vec<u8>)]) -> Result<u64, StoreError> {
        let mut removed = 0;
        for chunk in found.chunks(DELETE_BATCH) {
            removed += transact((&self.trees.events, &self.trees.event_sources).transaction(
                |(events, sources)| {
                    let mut removed = 0;
                    for (key, source_key) in chunk {
                        if events.remove(key)?.is_some() {
                            removed += 1;
                        }
                        if sources.get(source_key.as_slice())?.as_ref() == Some(key) {
                            sources.remove(source_key.as_slice())?;
                        }
                    }
                    Ok(removed)
                },
            ))?;
        }
        Ok(removed)
    }

    /// The plugin state entries of a tenant that belong to a subject
    /// (`subject/<subject>/…` keys, in any plugin scope), in sled's order.
    /// Scans all the tenant's state: keys are not indexed by subject.
    fn subject_state_entries(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<SubjectStateEntry>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        if subject.contains('/') {
            return Err(StoreError::AmbiguousSubject {
                subject: subject.to_owned(),
            });
        }
        let prefix = keys::tenant(tenant);
        let wanted = keys::subject_state_prefix(subject);
        let mut found = Vec::new();
        for item in scan_from(&self.trees.state, &prefix, Bound::Included(prefix.clone())) {
            let (full, value) = item?;
            let scope_len = prefix.len() + part_len(&full[prefix.len()..])?;
            let key = &full[scope_len..];
            if !key.starts_with(wanted.as_bytes()) {
                continue;
            }
            found.push(SubjectStateEntry {
                plugin: utf8(&full[prefix.len() + 2..scope_len], "state")?,
                key: utf8(key, "state")?,
                scope_len,
                full,
                value,
            });
        }
        Ok(found)
    }

    /// [`Store::append_batch`], and with `all_new` [`Store::append_new`]:
    /// `Err` holds the duplicates' positions, and then nothing was stored.
    fn append_core(
        &self,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
        all_new: bool,
    ) -> Result<AppendResult, StoreError> {
        check_id("tenant id", tenant)?;
        /// One append's keys and values, encoded before the transaction (which
        /// may run more than once).
        struct Prepared {
            subject_key: Vec<u8>,
            update: Option<Vec<u8>>,
            /// (event key, source key, value), as sled's shared buffers: the
            /// transaction writes them without copying.
            events: Vec<(IVec, IVec, IVec)>,
            /// (identity key, index key)
            links: Vec<(Vec<u8>, Vec<u8>)>,
            /// (consent key, value)
            consents: Vec<(Vec<u8>, Vec<u8>)>,
            /// The identity value: the subject id.
            linked_value: Vec<u8>,
        }
        let mut prepared = Vec::with_capacity(appends.len());
        let mut creates = false;
        let tenant_part = keys::tenant(tenant);
        let mut scratch = Vec::new();
        for append in appends {
            let subject = append.subject;
            check_id("subject id", subject)?;
            let update = match append.update {
                Some(record) if record.id != subject => {
                    return Err(StoreError::SubjectMismatch {
                        subject: subject.to_owned(),
                        record: record.id.clone(),
                    });
                }
                Some(record) => Some(encode_subject(record)?),
                None if append.create => {
                    return Err(StoreError::UnknownSubject {
                        tenant: tenant.to_owned(),
                        subject: subject.to_owned(),
                    });
                }
                None => None,
            };
            creates |= append.create;
            let scope = keys::subject_scope(tenant, subject);
            let mut events = Vec::with_capacity(append.events.len());
            for event in append.events {
                check_id("event source id", &event.source_id)?;
                scratch.clear();
                scratch.extend_from_slice(&scope);
                scratch.extend_from_slice(&keys::time(event.at_ms));
                scratch.extend_from_slice(&self.next_seq()?.to_be_bytes());
                let key = IVec::from(scratch.as_slice());
                scratch.clear();
                scratch.extend_from_slice(&tenant_part);
                scratch.extend_from_slice(event.source_id.as_bytes());
                let source_key = IVec::from(scratch.as_slice());
                scratch = Writer::reusing(scratch)
                    .bytes(event.source_id.as_bytes())?
                    .bytes(&event.data)?
                    .finish();
                events.push((key, source_key, IVec::from(scratch.as_slice())));
            }
            let links = append
                .links
                .iter()
                .map(|hash| {
                    (
                        keys::identity(tenant, hash),
                        [scope.as_slice(), hash].concat(),
                    )
                })
                .collect();
            let mut consents = Vec::with_capacity(append.consents.len());
            for consent in append.consents {
                consents.push((
                    keys::timed_in(&scope, consent.at_ms, self.next_seq()?),
                    encode_bytes(&consent.data)?,
                ));
            }
            prepared.push(Prepared {
                subject_key: keys::subject(tenant, subject),
                update,
                events,
                links,
                consents,
                linked_value: encode_bytes(subject.as_bytes())?,
            });
        }
        let trees = &self.trees;
        let result = (
            &trees.tenants,
            &trees.subjects,
            &trees.events,
            &trees.event_sources,
            &trees.identities,
            &trees.identity_index,
            &trees.consents,
        )
            .transaction(
                |(tenants, subjects, events, sources, identities, index, consents)| {
                    if creates {
                        require_tenant(tenants, tenant).map_err(lift)?;
                    }
                    let mut outcomes = Vec::with_capacity(prepared.len());
                    let mut duplicates = Vec::new();
                    for (a, (append, prepared)) in appends.iter().zip(&prepared).enumerate() {
                        let exists = subjects.get(prepared.subject_key.as_slice())?.is_some();
                        if append.create && exists {
                            return Err(abort(AppendAbort::Store(StoreError::SubjectExists {
                                tenant: tenant.to_owned(),
                                subject: append.subject.to_owned(),
                            })));
                        }
                        if !append.create && !exists {
                            return Err(abort(AppendAbort::Store(StoreError::UnknownSubject {
                                tenant: tenant.to_owned(),
                                subject: append.subject.to_owned(),
                            })));
                        }
                        let mut outcome = AppendOutcome::default();
                        for (e, (key, source_key, value)) in prepared.events.iter().enumerate() {
                            if sources.get(source_key)?.is_some() {
                                outcome.duplicates += 1;
                                duplicates.push((a, e));
                                continue;
                            }
                            events.insert(key.clone(), value.clone())?;
                            sources.insert(source_key.clone(), key.clone())?;
                            outcome.inserted += 1;
                        }
                        for (key, index_key) in &prepared.links {
                            if let Some(existing) = identities.get(key.as_slice())? {
                                let linked = decode_identity(&existing)
                                    .map_err(|e| abort(AppendAbort::Store(e)))?;
                                if linked == append.subject {
                                    continue;
                                }
                                return Err(abort(AppendAbort::Store(
                                    StoreError::IdentityLinked {
                                        tenant: tenant.to_owned(),
                                        subject: append.subject.to_owned(),
                                        linked,
                                    },
                                )));
                            }
                            identities.insert(key.as_slice(), prepared.linked_value.as_slice())?;
                            index.insert(index_key.as_slice(), &[][..])?;
                        }
                        for (key, value) in &prepared.consents {
                            consents.insert(key.as_slice(), value.as_slice())?;
                        }
                        if let Some(value) = &prepared.update {
                            subjects.insert(prepared.subject_key.as_slice(), value.as_slice())?;
                        }
                        outcomes.push(outcome);
                    }
                    if all_new && !duplicates.is_empty() {
                        // Undoes every write above.
                        return Err(abort(AppendAbort::Duplicates(duplicates)));
                    }
                    Ok(outcomes)
                },
            );
        match result {
            Ok(outcomes) => Ok(Ok(outcomes)),
            Err(TransactionError::Abort(AppendAbort::Duplicates(at))) => Ok(Err(at)),
            Err(TransactionError::Abort(AppendAbort::Store(error))) => Err(error),
            Err(TransactionError::Storage(error)) => Err(StoreError::backend(error)),
        }
    }

    /// Event keys (of one subject), with the source key of each.
    fn event_keys(events: sled::Iter) -> Result<Vec<(IVec, Vec<u8>)>, StoreError> {
        let mut found = Vec::new();
        for item in events {
            let (key, value) = item.map_err(StoreError::backend)?;
            let tenant_part = part_len(&key)?;
            let mut reader = Reader::new(&value, "event")?;
            let source_id = reader.string()?;
            let mut source_key = key[..tenant_part].to_vec();
            source_key.extend_from_slice(source_id.as_bytes());
            found.push((key, source_key));
        }
        Ok(found)
    }
}

/// Turns a finished transaction's error into ours.
fn transact<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    result.map_err(|error| match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => StoreError::backend(error),
    })
}

fn abort<E>(error: E) -> ConflictableTransactionError<E> {
    ConflictableTransactionError::Abort(error)
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn require_subject(subjects: &TransactionalTree, tenant: &str, subject: &str) -> TxResult<()> {
    if subjects.get(keys::subject(tenant, subject))?.is_none() {
        return Err(abort(StoreError::UnknownSubject {
            tenant: tenant.to_owned(),
            subject: subject.to_owned(),
        }));
    }
    Ok(())
}

fn require_tenant(tenants: &TransactionalTree, tenant: &str) -> TxResult<()> {
    if tenants.get(tenant.as_bytes())?.is_none() {
        return Err(abort(StoreError::UnknownTenant {
            tenant: tenant.to_owned(),
        }));
    }
    Ok(())
}

/// What `append_core` did: the outcomes, or the positions of the events that
/// were not new (and then nothing was stored).
type AppendResult = Result<Vec<AppendOutcome>, Vec<(usize, usize)>>;

/// Why [`SledStore::append_core`] undoes its transaction.
enum AppendAbort {
    Store(StoreError),
    /// (append, event) positions of events whose source id is not new.
    Duplicates(Vec<(usize, usize)>),
}

/// A transaction error of ours as one of `append_core`'s.
fn lift(
    error: ConflictableTransactionError<StoreError>,
) -> ConflictableTransactionError<AppendAbort> {
    match error {
        ConflictableTransactionError::Abort(error) => abort(AppendAbort::Store(error)),
        ConflictableTransactionError::Storage(error) => {
            ConflictableTransactionError::Storage(error)
        }
        ConflictableTransactionError::Conflict => ConflictableTransactionError::Conflict,
    }
}

/// The length of the `part(x)` that starts a key (or the rest of one).
fn part_len(key: &[u8]) -> Result<usize, StoreError> {
    let len = key
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])) + 2)
        .filter(|&len| len <= key.len())
        .ok_or_else(|| StoreError::corrupt("key", "a length-prefixed part is truncated"))?;
    Ok(len)
}

/// The least byte string greater than every string that starts with
/// `prefix`, or `None` if there is none (all bytes 0xff, or empty).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The 8-byte time and 8-byte seq after a scope prefix.
fn timed_key_time(key: &[u8], scope_len: usize, family: &'static str) -> Result<i64, StoreError> {
    if key.len() != scope_len + 16 {
        return Err(StoreError::corrupt(family, "key has the wrong length"));
    }
    let mut time = [0; 8];
    time.copy_from_slice(&key[scope_len..scope_len + 8]);
    Ok(keys::time_from(time))
}

fn utf8(bytes: &[u8], family: &'static str) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| StoreError::corrupt(family, "id is not UTF-8"))
}

/// Iterates the keys of a tree that start with `prefix`, from `start` on.
fn scan_from<'a>(
    tree: &Tree,
    prefix: &'a [u8],
    start: Bound<Vec<u8>>,
) -> impl Iterator<Item = Result<(IVec, IVec), StoreError>> + 'a {
    tree.range((start, Bound::<Vec<u8>>::Unbounded))
        .map(|item| item.map_err(StoreError::backend))
        .take_while(move |item| match item {
            Ok((key, _)) => key.starts_with(prefix),
            Err(_) => true,
        })
}

fn decode_tenant(key: &[u8], value: &[u8]) -> Result<TenantRecord, StoreError> {
    let mut reader = Reader::new(value, "tenant")?;
    let record = TenantRecord {
        id: utf8(key, "tenant")?,
        wrapped_key: reader.bytes()?,
        settings: reader.bytes()?,
    };
    reader.finish()?;
    Ok(record)
}

fn encode_subject(subject: &SubjectRecord) -> Result<Vec<u8>, StoreError> {
    Ok(Writer::new()
        .bytes(&subject.wrapped_key)?
        .i64(subject.created_at_ms)
        .bytes(&subject.data)?
        .finish())
}

fn decode_subject(id: &[u8], value: &[u8]) -> Result<SubjectRecord, StoreError> {
    let mut reader = Reader::new(value, "subject")?;
    let record = SubjectRecord {
        id: utf8(id, "subject")?,
        wrapped_key: reader.bytes()?,
        created_at_ms: reader.i64()?,
        data: reader.bytes()?,
    };
    reader.finish()?;
    Ok(record)
}

fn decode_identity(value: &[u8]) -> Result<String, StoreError> {
    let mut reader = Reader::new(value, "identity")?;
    let subject = reader.string()?;
    reader.finish()?;
    Ok(subject)
}

/// A value of one bytes field (audit entries, consents, suppressions,
/// documents).
fn encode_bytes(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    Ok(Writer::new().bytes(bytes)?.finish())
}

fn decode_bytes(value: &[u8], family: &'static str) -> Result<Vec<u8>, StoreError> {
    let mut reader = Reader::new(value, family)?;
    let bytes = reader.bytes()?;
    reader.finish()?;
    Ok(bytes)
}

/// A tenant's audit head, from its counter.
fn audit_head(value: Option<&IVec>) -> Result<u64, StoreError> {
    value.map_or(Ok(0), |value| u64_at(value, 0, "audit counter"))
}

/// A sled key and the value stored under it.
type Entry = (Vec<u8>, Vec<u8>);

/// Each `(kind, id, value)` of `tenant` as its key and stored value, once
/// every id is checked.
fn document_entries(
    tenant: &str,
    documents: &[(&str, &str, &[u8])],
) -> Result<Vec<Entry>, StoreError> {
    check_id("tenant id", tenant)?;
    documents
        .iter()
        .map(|(kind, id, value)| {
            check_id("document kind", kind)?;
            check_id("document id", id)?;
            Ok((keys::document(tenant, kind, id), encode_bytes(value)?))
        })
        .collect()
}

/// A plugin state entry that belongs to a subject.
struct SubjectStateEntry {
    /// The full sled key: `part(tenant) part(plugin) key`.
    full: IVec,
    /// How much of `full` is the scope (`part(tenant) part(plugin)`).
    scope_len: usize,
    plugin: String,
    key: String,
    value: IVec,
}

/// A job's value: payload, attempts so far, and the lease if one is held.
struct JobState {
    payload: Vec<u8>,
    attempts: u32,
    lease: Option<(String, i64)>,
}

impl JobState {
    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let writer = Writer::new().bytes(&self.payload)?.u32(self.attempts);
        Ok(match &self.lease {
            None => writer.u8(0).finish(),
            Some((worker, until_ms)) => writer
                .u8(1)
                .bytes(worker.as_bytes())?
                .i64(*until_ms)
                .finish(),
        })
    }

    fn decode(value: &[u8]) -> Result<Self, StoreError> {
        let mut reader = Reader::new(value, "job")?;
        let payload = reader.bytes()?;
        let attempts = reader.u32()?;
        let lease = match reader.u8()? {
            0 => None,
            1 => Some((reader.string()?, reader.i64()?)),
            other => {
                return Err(StoreError::corrupt(
                    "job",
                    format!("unknown lease tag {other}"),
                ));
            }
        };
        reader.finish()?;
        Ok(Self {
            payload,
            attempts,
            lease,
        })
    }

    fn claimable(&self, now_ms: i64) -> bool {
        self.lease
            .as_ref()
            .is_none_or(|(_, until)| *until <= now_ms)
    }
}

impl Store for SledStore {
    fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        check_id("tenant id", &tenant.id)?;
        let value = Writer::new()
            .bytes(&tenant.wrapped_key)?
            .bytes(&tenant.settings)?
            .finish();
        self.trees
            .tenants
            .insert(tenant.id.as_bytes(), value)
            .map_err(StoreError::backend)?;
        Ok(())
    }

    fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        check_id("tenant id", id)?;
        self.trees
            .tenants
            .get(id.as_bytes())
            .map_err(StoreError::backend)?
            .map(|value| decode_tenant(id.as_bytes(), &value))
            .transpose()
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.trees
            .tenants
            .iter()
            .map(|item| {
                let (key, value) = item.map_err(StoreError::backend)?;
                decode_tenant(&key, &value)
            })
            .collect()
    }

    fn put_subject(&self, tenant: &str, subject: &SubjectRecord) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", &subject.id)?;
        let key = keys::subject(tenant, &subject.id);
        let value = encode_subject(subject)?;
        transact(
            (&self.trees.tenants, &self.trees.subjects).transaction(|(tenants, subjects)| {
                require_tenant(tenants, tenant)?;
                subjects.insert(key.as_slice(), value.as_slice())?;
                Ok(())
            }),
        )
    }

    fn put_subjects(&self, tenant: &str, subjects: &[SubjectRecord]) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        let mut writes = Vec::with_capacity(subjects.len());
        for subject in subjects {
            check_id("subject id", &subject.id)?;
            writes.push((keys::subject(tenant, &subject.id), encode_subject(subject)?));
        }
        transact(
            (&self.trees.tenants, &self.trees.subjects).transaction(|(tenants, subjects)| {
                require_tenant(tenants, tenant)?;
                for (key, value) in &writes {
                    subjects.insert(key.as_slice(), value.as_slice())?;
                }
                Ok(())
            }),
        )
    }

    fn subject(&self, tenant: &str, id: &str) -> Result<Option<SubjectRecord>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", id)?;
        self.trees
            .subjects
            .get(keys::subject(tenant, id))
            .map_err(StoreError::backend)?
            .map(|value| decode_subject(id.as_bytes(), &value))
            .transpose()
    }

    fn subjects(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SubjectRecord>, StoreError> {
        check_id("tenant id", tenant)?;
        let prefix = keys::tenant(tenant);
        let start = match after {
            Some(after) => Bound::Excluded(keys::subject(tenant, after)),
            None => Bound::Included(prefix.clone()),
        };
        scan_from(&self.trees.subjects, &prefix, start)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                decode_subject(&key[prefix.len()..], &value)
            })
            .collect()
    }

    fn link_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
        subject: &str,
    ) -> Result<Option<String>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        let key = keys::identity(tenant, &hash);
        let index_key = keys::identity_of(tenant, subject, &hash);
        let value = Writer::new().bytes(subject.as_bytes())?.finish();
        let trees = &self.trees;
        transact(
            (&trees.subjects, &trees.identities, &trees.identity_index).transaction(
                |(subjects, identities, index)| {
                    require_subject(subjects, tenant, subject)?;
                    if let Some(existing) = identities.get(key.as_slice())? {
                        return decode_identity(&existing).map(Some).map_err(abort);
                    }
                    identities.insert(key.as_slice(), value.as_slice())?;
                    index.insert(index_key.as_slice(), &[][..])?;
                    Ok(None)
                },
            ),
        )
    }

    fn find_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
    ) -> Result<Option<String>, StoreError> {
        check_id("tenant id", tenant)?;
        self.trees
            .identities
            .get(keys::identity(tenant, &hash))
            .map_err(StoreError::backend)?
            .map(|value| decode_identity(&value))
            .transpose()
    }

    fn unlink_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
    ) -> Result<Option<String>, StoreError> {
        check_id("tenant id", tenant)?;
        let key = keys::identity(tenant, &hash);
        transact(
            (&self.trees.identities, &self.trees.identity_index).transaction(
                |(identities, index)| {
                    let Some(value) = identities.remove(key.as_slice())? else {
                        return Ok(None);
                    };
                    let subject = decode_identity(&value).map_err(abort)?;
                    index.remove(keys::identity_of(tenant, &subject, &hash))?;
                    Ok(Some(subject))
                },
            ),
        )
    }

    fn identities_of(&self, tenant: &str, subject: &str) -> Result<Vec<IdentityHash>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        let prefix = keys::subject_scope(tenant, subject);
        scan_from(
            &self.trees.identity_index,
            &prefix,
            Bound::Included(prefix.clone()),
        )
        .map(|item| {
            let (key, _) = item?;
            IdentityHash::try_from(&key[prefix.len()..])
                .map_err(|_| StoreError::corrupt("identity index", "hash is not 32 bytes"))
        })
        .collect()
    }

    fn relink_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
        from: &str,
        to: &str,
    ) -> Result<bool, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", from)?;
        check_id("subject id", to)?;
        let key = keys::identity(tenant, &hash);
        let from_index = keys::identity_of(tenant, from, &hash);
        let to_index = keys::identity_of(tenant, to, &hash);
        let value = encode_bytes(to.as_bytes())?;
        let trees = &self.trees;
        transact(
            (&trees.subjects, &trees.identities, &trees.identity_index).transaction(
                |(subjects, identities, index)| {
                    require_subject(subjects, tenant, to)?;
                    let points_at_from = match identities.get(key.as_slice())? {
                        Some(existing) => decode_identity(&existing).map_err(abort)? == from,
                        None => false,
                    };
                    if !points_at_from {
                        return Ok(false);
                    }
                    if from != to {
                        identities.insert(key.as_slice(), value.as_slice())?;
                        index.remove(from_index.as_slice())?;
                        index.insert(to_index.as_slice(), &[][..])?;
                    }
                    Ok(true)
                },
            ),
        )
    }

    fn suppress(&self, tenant: &str, hash: IdentityHash, entry: &[u8]) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        let key = keys::suppression(tenant, &hash);
        let value = encode_bytes(entry)?;
        transact((&self.trees.tenants, &self.trees.suppressions).transaction(
            |(tenants, suppressions)| {
                require_tenant(tenants, tenant)?;
                suppressions.insert(key.as_slice(), value.as_slice())?;
                Ok(())
            },
        ))
    }

    fn suppression(&self, tenant: &str, hash: IdentityHash) -> Result<Option<Vec<u8>>, StoreError> {
        check_id("tenant id", tenant)?;
        self.trees
            .suppressions
            .get(keys::suppression(tenant, &hash))
            .map_err(StoreError::backend)?
            .map(|value| decode_bytes(&value, "suppression"))
            .transpose()
    }

    fn unsuppress(&self, tenant: &str, hash: IdentityHash) -> Result<bool, StoreError> {
        check_id("tenant id", tenant)?;
        let removed = self
            .trees
            .suppressions
            .remove(keys::suppression(tenant, &hash))
            .map_err(StoreError::backend)?;
        Ok(removed.is_some())
    }

    fn suppressions(&self, tenant: &str) -> Result<usize, StoreError> {
        check_id("tenant id", tenant)?;
        let prefix = keys::tenant(tenant);
        scan_from(
            &self.trees.suppressions,
            &prefix,
            Bound::Included(prefix.clone()),
        )
        .try_fold(0, |count, item| item.map(|_| count + 1))
    }

    fn suppression_entries(
        &self,
        tenant: &str,
        after: Option<&IdentityHash>,
        limit: usize,
    ) -> Result<Vec<(IdentityHash, Vec<u8>)>, StoreError> {
        check_id("tenant id", tenant)?;
        let prefix = keys::tenant(tenant);
        let start = match after {
            Some(after) => Bound::Excluded(keys::suppression(tenant, after)),
            None => Bound::Included(prefix.clone()),
        };
        scan_from(&self.trees.suppressions, &prefix, start)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                let hash = IdentityHash::try_from(&key[prefix.len()..])
                    .map_err(|_| StoreError::corrupt("suppression", "hash is not 32 bytes"))?;
                Ok((hash, decode_bytes(&value, "suppression")?))
            })
            .collect()
    }

    fn append_batch(
        &self,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        Ok(self
            .append_core(tenant, appends, false)?
            .unwrap_or_else(|_| unreachable!("only append_new refuses duplicates")))
    }

    fn append_new(
        &self,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
    ) -> Result<NewEvents, StoreError> {
        Ok(match self.append_core(tenant, appends, true)? {
            Ok(_) => NewEvents::Stored,
            Err(at) => NewEvents::Duplicates(at),
        })
    }

    fn has_event_source(&self, tenant: &str, source_id: &str) -> Result<bool, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("source id", source_id)?;
        self.trees
            .event_sources
            .contains_key(keys::source(tenant, source_id))
            .map_err(StoreError::backend)
    }

    fn events(
        &self,
        tenant: &str,
        subject: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let scope = keys::subject_scope(tenant, subject);
        let low = [scope.as_slice(), &keys::time(from_ms)].concat();
        let high = [scope.as_slice(), &keys::time(to_ms)].concat();
        self.trees
            .events
            .range(low..high)
            .map(|item| {
                let (key, value) = item.map_err(StoreError::backend)?;
                let at_ms = timed_key_time(&key, scope.len(), "event")?;
                let mut reader = Reader::new(&value, "event")?;
                let record = EventRecord {
                    source_id: reader.string()?,
                    at_ms,
                    data: reader.bytes()?,
                };
                reader.finish()?;
                Ok(record)
            })
            .collect()
    }

    fn delete_events_before(
        &self,
        tenant: &str,
        subject: &str,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        let scope = keys::subject_scope(tenant, subject);
        let low = [scope.as_slice(), &keys::time(i64::MIN)].concat();
        let high = [scope.as_slice(), &keys::time(before_ms)].concat();
        let found = Self::event_keys(self.trees.events.range(low..high))?;
        self.remove_events(&found)
    }

    fn append_consent(
        &self,
        tenant: &str,
        subject: &str,
        consent: &ConsentRecord,
    ) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        let key = keys::timed(tenant, subject, consent.at_ms, self.next_seq()?);
        let value = encode_bytes(&consent.data)?;
        transact((&self.trees.subjects, &self.trees.consents).transaction(
            |(subjects, consents)| {
                require_subject(subjects, tenant, subject)?;
                consents.insert(key.as_slice(), value.as_slice())?;
                Ok(())
            },
        ))
    }

    fn consents(&self, tenant: &str, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        let scope = keys::subject_scope(tenant, subject);
        scan_from(&self.trees.consents, &scope, Bound::Included(scope.clone()))
            .map(|item| {
                let (key, value) = item?;
                let at_ms = timed_key_time(&key, scope.len(), "consent")?;
                let data = decode_bytes(&value, "consent")?;
                Ok(ConsentRecord { at_ms, data })
            })
            .collect()
    }

    fn append_audit(&self, tenant: &str, seq: u64, entry: &[u8]) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        let expected = seq.checked_sub(1).ok_or(StoreError::InvalidAuditSeq)?;
        let (counter, last) = self.audit_position(tenant)?;
        if last != expected {
            return Err(StoreError::AuditConflict {
                tenant: tenant.to_owned(),
                expected,
                last,
            });
        }
        // Two single-key writes instead of a transaction (see "Concurrency
        // and flush policy"): the entry goes in only where no entry is, and
        // then the counter moves on. Whoever loses the race for `seq` finds
        // the winner's entry and retries on the new head.
        let value = encode_bytes(entry)?;
        let claimed = self
            .trees
            .audit
            .compare_and_swap(keys::audit(tenant, seq), None::<&[u8]>, Some(value))
            .map_err(StoreError::backend)?;
        if claimed.is_err() {
            return Err(StoreError::AuditConflict {
                tenant: tenant.to_owned(),
                expected,
                last: seq,
            });
        }
        // The entry is written and counts in the head from now on (see
        // `audit_position`), so the append has happened: a counter that
        // cannot move now is moved over it by the next append.
        let _ = self.advance_audit_counter(tenant, counter, seq);
        Ok(())
    }

    fn audit_head(&self, tenant: &str) -> Result<u64, StoreError> {
        check_id("tenant id", tenant)?;
        Ok(self.audit_position(tenant)?.1)
    }

    fn audit(
        &self,
        tenant: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        check_id("tenant id", tenant)?;
        let prefix = keys::tenant(tenant);
        let start = Bound::Included(keys::audit(tenant, from_seq));
        scan_from(&self.trees.audit, &prefix, start)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                if key.len() != prefix.len() + 8 {
                    return Err(StoreError::corrupt("audit", "key has the wrong length"));
                }
                let seq = u64_at(&key, prefix.len(), "audit")?;
                let data = decode_bytes(&value, "audit")?;
                Ok(AuditRecord { seq, data })
            })
            .collect()
    }

    fn put_document(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        self.put_documents_in_order(tenant, &[(kind, id, value)])
    }

    fn put_documents(
        &self,
        tenant: &str,
        documents: &[(&str, &str, &[u8])],
    ) -> Result<(), StoreError> {
        let entries = document_entries(tenant, documents)?;
        transact((&self.trees.tenants, &self.trees.documents).transaction(
            |(tenants, documents)| {
                require_tenant(tenants, tenant)?;
                for (key, value) in &entries {
                    documents.insert(key.as_slice(), value.as_slice())?;
                }
                Ok(())
            },
        ))
    }

    /// Single inserts, no transaction, once every id and the tenant are
    /// checked. sled writes its log in order and its recovery stops at the
    /// first torn message, so a crash keeps a prefix of the inserts: how
    /// sled 0.34 is built rather than a promise it documents, and not for
    /// values large enough for its blob files (over a quarter of a
    /// segment, 128 KiB), which it does not sync.
    fn put_documents_in_order(
        &self,
        tenant: &str,
        documents: &[(&str, &str, &[u8])],
    ) -> Result<(), StoreError> {
        let entries = document_entries(tenant, documents)?;
        self.require_tenant(tenant)?;
        for (key, value) in entries {
            self.trees
                .documents
                .insert(key, value)
                .map_err(StoreError::backend)?;
        }
        Ok(())
    }

    fn document(&self, tenant: &str, kind: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("document kind", kind)?;
        check_id("document id", id)?;
        self.trees
            .documents
            .get(keys::document(tenant, kind, id))
            .map_err(StoreError::backend)?
            .map(|value| decode_bytes(&value, "document"))
            .transpose()
    }

    fn documents(
        &self,
        tenant: &str,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("document kind", kind)?;
        let prefix = keys::document_kind(tenant, kind);
        let start = match after {
            Some(after) => Bound::Excluded(keys::document(tenant, kind, after)),
            None => Bound::Included(prefix.clone()),
        };
        scan_from(&self.trees.documents, &prefix, start)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((
                    utf8(&key[prefix.len()..], "document")?,
                    decode_bytes(&value, "document")?,
                ))
            })
            .collect()
    }

    fn documents_under(
        &self,
        tenant: &str,
        kind: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("document kind", kind)?;
        let kind_prefix = keys::document_kind(tenant, kind);
        let under = keys::document(tenant, kind, prefix);
        let start = match after.filter(|a| a.starts_with(prefix)) {
            Some(after) => Bound::Excluded(keys::document(tenant, kind, after)),
            None => Bound::Included(under.clone()),
        };
        scan_from(&self.trees.documents, &under, start)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((
                    utf8(&key[kind_prefix.len()..], "document")?,
                    decode_bytes(&value, "document")?,
                ))
            })
            .collect()
    }

    fn delete_document(&self, tenant: &str, kind: &str, id: &str) -> Result<bool, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("document kind", kind)?;
        check_id("document id", id)?;
        let removed = self
            .trees
            .documents
            .remove(keys::document(tenant, kind, id))
            .map_err(StoreError::backend)?;
        Ok(removed.is_some())
    }

    fn document_kinds(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        check_id("tenant id", tenant)?;
        let prefix = keys::tenant(tenant);
        let mut kinds = Vec::new();
        let mut start = Bound::Included(prefix.clone());
        // One seek per kind: after a kind's first document, jump past all
        // of its keys (`part(tenant) part(kind) …`).
        while let Some(item) = scan_from(&self.trees.documents, &prefix, start).next() {
            let (key, _) = item?;
            let len = part_len(&key[prefix.len()..])?;
            let kind_prefix = &key[..prefix.len() + len];
            kinds.push(utf8(&kind_prefix[prefix.len() + 2..], "document")?);
            start = match prefix_end(kind_prefix) {
                Some(end) => Bound::Included(end),
                None => break,
            };
        }
        // sled orders kinds by length first (`part(kind)`).
        kinds.sort_unstable();
        Ok(kinds)
    }

    fn enqueue_job(&self, job: &JobRecord) -> Result<bool, StoreError> {
        check_id("job id", &job.id)?;
        check_id("job kind", &job.kind)?;
        let key = keys::job(&job.kind, job.not_before_ms, &job.id);
        let value = JobState {
            payload: job.payload.clone(),
            attempts: 0,
            lease: None,
        }
        .encode()?;
        transact(
            (&self.trees.jobs, &self.trees.job_ids).transaction(|(jobs, ids)| {
                if ids.get(job.id.as_bytes())?.is_some() {
                    return Ok(false);
                }
                jobs.insert(key.as_slice(), value.as_slice())?;
                ids.insert(job.id.as_bytes(), key.as_slice())?;
                Ok(true)
            }),
        )
    }

    fn claim_job(
        &self,
        kind: &str,
        worker: &str,
        lease_ms: u64,
        now_ms: i64,
    ) -> Result<Option<JobRecord>, StoreError> {
        check_id("job kind", kind)?;
        check_id("worker id", worker)?;
        let prefix = keys::job_kind(kind);
        let until_ms = crate::lease_end(now_ms, lease_ms);
        for item in scan_from(&self.trees.jobs, &prefix, Bound::Included(prefix.clone())) {
            let (key, value) = item?;
            let rest = &key[prefix.len()..];
            let (Some(time), Some(id)) = (rest.get(..8), rest.get(8..)) else {
                return Err(StoreError::corrupt("job", "key is truncated"));
            };
            let not_before_ms = keys::time_from(time.try_into().unwrap_or_default());
            if not_before_ms > now_ms {
                break;
            }
            if !JobState::decode(&value)?.claimable(now_ms) {
                continue;
            }
            let id = utf8(id, "job")?;
            // Another worker may have claimed it since the scan read it.
            let claimed = transact(self.trees.jobs.transaction(|jobs| {
                let Some(value) = jobs.get(&key)? else {
                    return Ok(None);
                };
                let mut state = JobState::decode(&value).map_err(abort)?;
                if !state.claimable(now_ms) {
                    return Ok(None);
                }
                state.attempts = state.attempts.saturating_add(1);
                state.lease = Some((worker.to_owned(), until_ms));
                jobs.insert(&key, state.encode().map_err(abort)?)?;
                Ok(Some(state.payload))
            }))?;
            if let Some(payload) = claimed {
                return Ok(Some(JobRecord {
                    id,
                    kind: kind.to_owned(),
                    not_before_ms,
                    payload,
                }));
            }
        }
        Ok(None)
    }

    fn renew_job(
        &self,
        id: &str,
        worker: &str,
        lease_ms: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        check_id("job id", id)?;
        check_id("worker id", worker)?;
        let until_ms = crate::lease_end(now_ms, lease_ms);
        transact(
            (&self.trees.jobs, &self.trees.job_ids).transaction(|(jobs, ids)| {
                let Some(key) = ids.get(id.as_bytes())? else {
                    return Ok(false);
                };
                let Some(value) = jobs.get(&key)? else {
                    return Ok(false);
                };
                let mut state = JobState::decode(&value).map_err(abort)?;
                match &state.lease {
                    Some((holder, _)) if holder == worker => {}
                    _ => return Ok(false),
                }
                state.lease = Some((worker.to_owned(), until_ms));
                jobs.insert(&key, state.encode().map_err(abort)?)?;
                Ok(true)
            }),
        )
    }

    fn complete_job(&self, id: &str) -> Result<bool, StoreError> {
        check_id("job id", id)?;
        transact(
            (&self.trees.jobs, &self.trees.job_ids).transaction(|(jobs, ids)| {
                let Some(key) = ids.remove(id.as_bytes())? else {
                    return Ok(false);
                };
                jobs.remove(key)?;
                Ok(true)
            }),
        )
    }

    fn jobs(&self, after: Option<&str>, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        let start = match after {
            Some(after) => Bound::Excluded(after.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut found = Vec::new();
        for item in self
            .trees
            .job_ids
            .range((start, Bound::<Vec<u8>>::Unbounded))
        {
            if found.len() >= limit {
                break;
            }
            let (id, key) = item.map_err(StoreError::backend)?;
            // Completed between the two reads: no longer queued.
            let Some(value) = self.trees.jobs.get(&key).map_err(StoreError::backend)? else {
                continue;
            };
            let kind_len = part_len(&key)?;
            let rest = &key[kind_len..];
            let Some(time) = rest.get(..8) else {
                return Err(StoreError::corrupt("job", "key is truncated"));
            };
            found.push(JobRecord {
                id: utf8(&id, "job")?,
                kind: utf8(&key[2..kind_len], "job")?,
                not_before_ms: keys::time_from(time.try_into().unwrap_or_default()),
                payload: JobState::decode(&value)?.payload,
            });
        }
        Ok(found)
    }

    fn purge_subject(&self, tenant: &str, subject: &str) -> Result<PurgeReport, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        let trees = &self.trees;
        // First, so that every later write for the subject is refused.
        let mut report = PurgeReport {
            subject: trees
                .subjects
                .remove(keys::subject(tenant, subject))
                .map_err(StoreError::backend)?
                .is_some(),
            ..PurgeReport::default()
        };
        let scope = keys::subject_scope(tenant, subject);

        let links: Vec<IVec> = scan_from(
            &trees.identity_index,
            &scope,
            Bound::Included(scope.clone()),
        )
        .map(|item| item.map(|(key, _)| key))
        .collect::<Result<_, _>>()?;
        for chunk in links.chunks(DELETE_BATCH) {
            report.identities += transact((&trees.identities, &trees.identity_index).transaction(
                |(identities, index)| {
                    let mut removed = 0;
                    for index_key in chunk {
                        index.remove(index_key)?;
                        let hash = &index_key[scope.len()..];
                        let key = [keys::tenant(tenant).as_slice(), hash].concat();
                        let points_here = match identities.get(key.as_slice())? {
                            Some(value) => decode_identity(&value).map_err(abort)? == subject,
                            None => false,
                        };
                        if points_here {
                            identities.remove(key)?;
                            removed += 1;
                        }
                    }
                    Ok(removed)
                },
            ))?;
        }

        let found = Self::event_keys(trees.events.scan_prefix(&scope))?;
        report.events = self.remove_events(&found)?;

        let consents: Vec<IVec> =
            scan_from(&trees.consents, &scope, Bound::Included(scope.clone()))
                .map(|item| item.map(|(key, _)| key))
                .collect::<Result<_, _>>()?;
        for chunk in consents.chunks(DELETE_BATCH) {
            let mut batch = sled::Batch::default();
            for key in chunk {
                batch.remove(key);
            }
            trees
                .consents
                .apply_batch(batch)
                .map_err(StoreError::backend)?;
        }
        report.consents = consents.len() as u64;
        Ok(report)
    }

    fn subject_state(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        let mut found: Vec<_> = self
            .subject_state_entries(tenant, subject)?
            .into_iter()
            .map(|entry| (entry.plugin, entry.key, entry.value.to_vec()))
            .collect();
        // sled orders plugins by length first (`part(plugin)`).
        found.sort_unstable_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Ok(found)
    }

    fn purge_subject_state(&self, tenant: &str, subject: &str) -> Result<u64, StoreError> {
        let mut by_scope: BTreeMap<Vec<u8>, Vec<(IVec, usize)>> = BTreeMap::new();
        for entry in self.subject_state_entries(tenant, subject)? {
            by_scope
                .entry(entry.full[..entry.scope_len].to_vec())
                .or_default()
                .push((entry.full, entry.key.len()));
        }
        let mut removed = 0;
        for (scope, entries) in &by_scope {
            for chunk in entries.chunks(DELETE_BATCH) {
                removed += transact((&self.trees.state, &self.trees.state_meta).transaction(
                    |(state, meta)| {
                        let mut gone = 0_u64;
                        let mut freed = 0_u64;
                        for (full, key_len) in chunk {
                            // Re-read: a plugin may have changed it since the scan.
                            if let Some(old) = state.remove(full)? {
                                gone += 1;
                                freed = freed.saturating_add(entry_size(*key_len, old.len()));
                            }
                        }
                        if gone == 0 {
                            return Ok(0);
                        }
                        let (version, usage) =
                            state_meta(meta.get(scope.as_slice())?.as_ref()).map_err(abort)?;
                        let next = version.checked_add(1).ok_or_else(|| {
                            abort(StoreError::corrupt("state meta", "version is exhausted"))
                        })?;
                        let value = [
                            next.to_be_bytes(),
                            usage.saturating_sub(freed).to_be_bytes(),
                        ];
                        meta.insert(scope.as_slice(), value.concat())?;
                        Ok(gone)
                    },
                ))?;
            }
        }
        Ok(removed)
    }

    fn state_entries(
        &self,
        scope: &StateScope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_id("tenant id", &scope.tenant)?;
        check_id("plugin id", &scope.plugin)?;
        let prefix = keys::state_scope(&scope.tenant, &scope.plugin);
        let start = match after {
            Some(after) => Bound::Excluded([prefix.as_slice(), after.as_bytes()].concat()),
            None => Bound::Included(prefix.clone()),
        };
        scan_from(&self.trees.state, &prefix, start)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((utf8(&key[prefix.len()..], "state")?, value.to_vec()))
            })
            .collect()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(StoreError::backend)?;
        Ok(())
    }
}

fn state_error(error: impl fmt::Display) -> StateError {
    StateError::Backend(error.to_string())
}

/// The scope's key prefix (and meta key).
fn state_prefix(scope: &StateScope) -> Result<Vec<u8>, StateError> {
    if scope.tenant.len() > MAX_ID_LEN || scope.plugin.len() > MAX_ID_LEN {
        return Err(StateError::Backend(format!(
            "tenant and plugin names must be at most {MAX_ID_LEN} bytes long"
        )));
    }
    Ok(keys::state_scope(&scope.tenant, &scope.plugin))
}

/// `(version, usage)` of a scope.
fn state_meta(value: Option<&IVec>) -> Result<(u64, u64), StoreError> {
    match value {
        None => Ok((0, 0)),
        Some(value) if value.len() == 16 => Ok((
            u64_at(value, 0, "state meta")?,
            u64_at(value, 8, "state meta")?,
        )),
        Some(_) => Err(StoreError::corrupt("state meta", "value is not 16 bytes")),
    }
}

/// A state write: its full sled key, the plugin's key, the new value.
type PreparedWrite<'a> = (Vec<u8>, &'a str, Option<&'a [u8]>);

/// What a state entry counts against its scope's quota: key plus value bytes.
fn entry_size(key_len: usize, value_len: usize) -> u64 {
    (key_len as u64).saturating_add(value_len as u64)
}

impl StateStore for SledStore {
    fn get(&self, scope: &StateScope, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let mut full = state_prefix(scope)?;
        full.extend_from_slice(key.as_bytes());
        let value = self.trees.state.get(full).map_err(state_error)?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn usage(&self, scope: &StateScope) -> Result<u64, StateError> {
        let meta = self
            .trees
            .state_meta
            .get(state_prefix(scope)?)
            .map_err(state_error)?;
        Ok(state_meta(meta.as_ref()).map_err(state_error)?.1)
    }

    fn version(&self, scope: &StateScope) -> Result<u64, StateError> {
        let meta = self
            .trees
            .state_meta
            .get(state_prefix(scope)?)
            .map_err(state_error)?;
        Ok(state_meta(meta.as_ref()).map_err(state_error)?.0)
    }

    fn keys(
        &self,
        scope: &StateScope,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StateError> {
        let scope_prefix = state_prefix(scope)?;
        let mut start = scope_prefix.clone();
        start.extend_from_slice(prefix.as_bytes());
        scan_from(&self.trees.state, &start, Bound::Included(start.clone()))
            .take(limit)
            .map(|item| {
                let (key, _) = item.map_err(state_error)?;
                utf8(&key[scope_prefix.len()..], "state").map_err(state_error)
            })
            .collect()
    }

    fn apply(
        &self,
        scope: &StateScope,
        base: u64,
        writes: &[(String, Option<Vec<u8>>)],
        quota: u64,
    ) -> Result<(), StateError> {
        let prefix = state_prefix(scope)?;
        // Applying the writes in order leaves the last write of each key.
        let last: BTreeMap<&str, Option<&[u8]>> = writes
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_deref()))
            .collect();
        let writes: Vec<PreparedWrite<'_>> = last
            .into_iter()
            .map(|(key, value)| ([prefix.as_slice(), key.as_bytes()].concat(), key, value))
            .collect();
        // Subjects that writes (not deletes) file state under: each must
        // still exist when the writes apply, in the same transaction, so
        // that state never outlives an erasure that began meanwhile.
        let subjects: Vec<(String, Vec<u8>)> = writes
            .iter()
            .filter(|(_, _, value)| value.is_some())
            .filter_map(|(_, key, _)| {
                // `subject/<id>/…` with a non-empty id: the convention by
                // which the export and erasure find a subject's state.
                let rest = key.strip_prefix(tessera_state::SUBJECT_PREFIX)?;
                let (subject, _) = rest.split_once('/')?;
                (!subject.is_empty())
                    .then(|| (subject.to_owned(), keys::subject(&scope.tenant, subject)))
            })
            .collect();
        let trees = (
            &self.trees.state,
            &self.trees.state_meta,
            &self.trees.subjects,
        );
        let result = trees.transaction(|(state, meta, subject_records)| {
            let (version, usage) = state_meta(meta.get(prefix.as_slice())?.as_ref())
                .map_err(|error| abort(state_error(error)))?;
            if version == tessera_state::RETIRED {
                return Err(abort(StateError::Retired));
            }
            if version != base {
                return Err(abort(StateError::Conflict));
            }
            for (subject, key) in &subjects {
                if subject_records.get(key.as_slice())?.is_none() {
                    return Err(abort(StateError::UnknownSubject {
                        subject: subject.clone(),
                    }));
                }
            }
            let mut needed = usage;
            for (full, key, value) in &writes {
                if let Some(old) = state.get(full.as_slice())? {
                    needed = needed.saturating_sub(entry_size(key.len(), old.len()));
                }
                if let Some(value) = value {
                    needed = needed.saturating_add(entry_size(key.len(), value.len()));
                }
            }
            if needed > quota && needed > usage {
                return Err(abort(StateError::Quota { quota, needed }));
            }
            for (full, _, value) in &writes {
                match value {
                    Some(value) => state.insert(full.as_slice(), *value)?,
                    None => state.remove(full.as_slice())?,
                };
            }
            let next = version
                .checked_add(1)
                .ok_or_else(|| abort(StateError::Backend("state version is exhausted".into())))?;
            let meta_value = [next.to_be_bytes(), needed.to_be_bytes()].concat();
            meta.insert(prefix.as_slice(), meta_value)?;
            Ok(())
        });
        result.map_err(|error| match error {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => state_error(error),
        })
    }

    fn retire(&self, scope: &StateScope) -> Result<u64, StateError> {
        let prefix = state_prefix(scope)?;
        // Retired first, so that no write lands while the entries go; then
        // the entries, in bounded batches (re-running finishes the job).
        let retired = [tessera_state::RETIRED.to_be_bytes(), 0u64.to_be_bytes()].concat();
        self.trees
            .state_meta
            .insert(prefix.as_slice(), retired)
            .map_err(state_error)?;
        let mut removed = 0u64;
        loop {
            let batch: Vec<IVec> =
                scan_from(&self.trees.state, &prefix, Bound::Included(prefix.clone()))
                    .take(512)
                    .map(|item| item.map(|(key, _)| key).map_err(state_error))
                    .collect::<Result<_, _>>()?;
            if batch.is_empty() {
                return Ok(removed);
            }
            let mut remove = sled::Batch::default();
            for key in &batch {
                remove.remove(key.clone());
            }
            self.trees.state.apply_batch(remove).map_err(state_error)?;
            removed += batch.len() as u64;
        }
    }

    fn scopes(&self, tenant: &str, prefix: &str) -> Result<Vec<StateScope>, StateError> {
        if tenant.len() > MAX_ID_LEN {
            return Ok(Vec::new());
        }
        let tenant_prefix = keys::tenant(tenant);
        let mut found = Vec::new();
        // Every scope that was ever written or retired has its meta entry
        // (`part(tenant) part(plugin)`).
        for item in scan_from(
            &self.trees.state_meta,
            &tenant_prefix,
            Bound::Included(tenant_prefix.clone()),
        ) {
            let (key, _) = item.map_err(state_error)?;
            let rest = &key[tenant_prefix.len()..];
            let len = part_len(rest).map_err(state_error)?;
            let plugin = utf8(&rest[2..len], "state meta").map_err(state_error)?;
            if plugin.starts_with(prefix) {
                found.push(StateScope {
                    tenant: tenant.to_owned(),
                    plugin,
                });
            }
        }
        found.sort_unstable_by(|a, b| a.plugin.cmp(&b.plugin));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    //! What only a crash or damage outside Tessera can produce, made by
    //! writing the trees directly.

    use super::*;

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn subject(id: &str) -> SubjectRecord {
        SubjectRecord {
            id: id.to_owned(),
            wrapped_key: vec![1],
            created_at_ms: 0,
            data: vec![2],
        }
    }

    fn event(source_id: &str) -> EventRecord {
        EventRecord {
            source_id: source_id.to_owned(),
            at_ms: 1,
            data: vec![3],
        }
    }

    #[test]
    fn a_purge_that_crashed_after_removing_the_subject_record_finishes_on_a_rerun() {
        let (_dir, store) = store();
        store
            .put_tenant(&TenantRecord {
                id: "t".into(),
                wrapped_key: vec![],
                settings: vec![],
            })
            .unwrap();
        for (n, id) in [(1, "s1"), (2, "s2")] {
            store.put_subject("t", &subject(id)).unwrap();
            store.link_identity("t", [n; 32], id).unwrap();
        }
        store.link_identity("t", [9; 32], "s1").unwrap();
        store
            .append_events("t", "s1", &[event("a"), event("b")], None)
            .unwrap();
        store
            .append_consent(
                "t",
                "s1",
                &ConsentRecord {
                    at_ms: 1,
                    data: vec![4],
                },
            )
            .unwrap();
        // The crash: the subject record went, nothing else did.
        store
            .trees
            .subjects
            .remove(keys::subject("t", "s1"))
            .unwrap();

        let report = store.purge_subject("t", "s1").unwrap();
        assert_eq!(
            report,
            PurgeReport {
                subject: false,
                identities: 2,
                events: 2,
                consents: 1,
            }
        );
        assert_eq!(store.find_identity("t", [1; 32]).unwrap(), None);
        assert_eq!(store.find_identity("t", [9; 32]).unwrap(), None);
        assert!(store.identities_of("t", "s1").unwrap().is_empty());
        assert_eq!(store.identities_of("t", "s2").unwrap(), vec![[2; 32]]);
        assert_eq!(store.events("t", "s1", i64::MIN, i64::MAX).unwrap(), vec![]);
        assert_eq!(store.consents("t", "s1").unwrap(), vec![]);
        assert!(store.trees.event_sources.is_empty(), "source ids are gone");
        assert_eq!(store.subject("t", "s2").unwrap(), Some(subject("s2")));
        assert_eq!(
            store.purge_subject("t", "s1").unwrap(),
            PurgeReport::default()
        );
    }

    #[test]
    fn a_removed_last_audit_entry_shows_as_a_head_past_the_entries() {
        let (_dir, store) = store();
        for seq in 1..=3 {
            store.append_audit("t", seq, b"entry").unwrap();
        }
        store.trees.audit.remove(keys::audit("t", 3)).unwrap();
        assert_eq!(store.audit_head("t").unwrap(), 3);
        let last = store.audit("t", 0, 10).unwrap().last().map(|r| r.seq);
        assert_eq!(last, Some(2));
        assert!(matches!(
            store.append_audit("t", 3, b"forged"),
            Err(StoreError::AuditConflict { last: 3, .. })
        ));
    }

    #[test]
    fn an_append_cut_between_its_two_writes_counts_and_the_counter_catches_up() {
        let (_dir, store) = store();
        for seq in 1..=2 {
            store.append_audit("t", seq, b"entry").unwrap();
        }
        // A crash after the entries' writes and before the counter's.
        for seq in 3..=4 {
            store
                .trees
                .audit
                .insert(keys::audit("t", seq), encode_bytes(b"cut").unwrap())
                .unwrap();
        }
        let counter = || {
            audit_head(
                store
                    .trees
                    .counters
                    .get(keys::audit_counter("t"))
                    .unwrap()
                    .as_ref(),
            )
            .unwrap()
        };
        assert_eq!(counter(), 2);
        assert_eq!(store.audit_head("t").unwrap(), 4);
        assert!(matches!(
            store.append_audit("t", 3, b"over a cut entry"),
            Err(StoreError::AuditConflict { last: 4, .. })
        ));
        store.append_audit("t", 5, b"after them").unwrap();
        assert_eq!(counter(), 5);
        assert_eq!(store.audit_head("t").unwrap(), 5);
        let seqs: Vec<u64> = store
            .audit("t", 0, 10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_damaged_audit_counter_is_reported_as_corrupt() {
        let (_dir, store) = store();
        store
            .trees
            .counters
            .insert(keys::audit_counter("t"), &[1, 2, 3][..])
            .unwrap();
        assert!(matches!(
            store.audit_head("t"),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            store.append_audit("t", 1, b"entry"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}

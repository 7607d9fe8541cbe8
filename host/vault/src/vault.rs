//! The [`Vault`]: tenants and their keys, subject records and the shared
//! plumbing (sealing, loading, locking, auditing) of every operation.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_privacy::envelope::{self, RecordAad};
use tessera_privacy::{
    DocumentKey, ErasureCause, IdentityHasher, KeyStore, MacPurpose, MasterKey, SubjectKey,
    SubjectKeyStore, TenantKey, TenantMac, WrappedKey,
};
use tessera_store::{IdentityHash, SledStore, Store, SubjectRecord, TenantRecord};

use crate::audit::{self, AuditEntry, AuditReport};
use crate::changes::{Changes, NodeIdentity};
use crate::error::VaultError;
use crate::model::{Actor, Aggregate, Membership, MergeEntry, PastMembership, SubjectView};
use crate::normalize::IdentityKind;
use crate::settings::TenantSettings;

/// Milliseconds since the Unix epoch; replaceable in tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The file, in the key directory, that holds wrapped subject keys.
pub const SUBJECT_KEYS_FILE: &str = "subject-keys";
/// The file, in the key directory of a node sharing its key store, that
/// names the node (and is locked while it runs).
pub const NODE_ID_FILE: &str = "node-id";

/// How many fresh subject keys are written (and synced) at a time.
const KEY_POOL: usize = 256;
/// The most subjects one person may be merged from (and the longest chain
/// of merges followed from a subject to its person).
pub const MAX_GROUP: usize = 4096;
/// How many unwrapped subject keys a tenant keeps in memory (see `KeyCache`).
const KEY_CACHE: usize = 10_000;
/// Store document kind listing one refill of the key pool: each pooled
/// subject id with its key-store slot. Removed once every id it lists is a
/// stored subject.
const KEY_BATCH_DOC: &str = "key-batch";
/// Store document kind of earlier versions, one pooled id per document (the
/// value its slot); read and removed when the pool is restored.
const KEY_POOL_DOC: &str = "key-pool";

/// Record kinds in the associated data of sealed records.
pub(crate) const KIND_PROFILE: &str = "profile";
pub(crate) const KIND_EVENT: &str = "event";
pub(crate) const KIND_CONSENT: &str = "consent";

/// Tessera's data core. Every read and write of customer data goes through
/// it: it seals records under subject keys before the store sees them,
/// hashes identities, enforces the tenant schema and writes the audit trail.
///
/// Writes within one tenant are serialised by a per-tenant lock (the sled
/// backend serialises its transactions anyway); reads take no lock.
pub struct Vault {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: Arc<dyn KeyStore>,
    /// For a shared key store: this node's name, which prefixes its
    /// `key-batch` documents so that no other node takes its pooled ids.
    node: Option<NodeIdentity>,
    pub(crate) changes: Changes,
    master: MasterKey,
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
    pub(crate) clock: Clock,
    listeners: RwLock<Vec<Arc<dyn ChangeListener>>>,
    erasure_listeners: RwLock<Vec<Arc<dyn ErasureListener>>>,
    access_listeners: RwLock<Vec<Arc<dyn AccessListener>>>,
}

/// Told which subjects are being erased, before their keys are destroyed:
/// for services that keep records naming a person outside the person's
/// sealed records (a campaign's decision log), which must go with them.
/// An error stops the erasure before anything of it is recorded; the
/// request can be made again.
pub trait ErasureListener: Send + Sync {
    fn erasing(&self, tenant: &str, subjects: &[String]) -> Result<(), VaultError>;
}

/// Asked, whenever the vault gathers everything held about a person (the
/// access and export rights), for what a service keeps about them outside
/// the person's own records (a campaign's decisions about them): it fills
/// its part of the view ([`SubjectView::decisions`]). `subjects` are the
/// person's root subject and every subject merged into it, since records
/// name the root of their time. Called without the tenant's lock; an error
/// fails the request.
pub trait AccessListener: Send + Sync {
    fn gathering(
        &self,
        tenant: &str,
        subjects: &[String],
        view: &mut SubjectView,
    ) -> Result<(), VaultError>;
}

/// Told which subjects changed, after every write that can change what a
/// segment decides about them: ingestion (events, traits, consents, merges),
/// trait edits, consent changes and un-merges. Called on the writing
/// thread, after the write is durable and possibly under the tenant's lock:
/// a listener queues the work and returns; it never calls the vault back.
pub trait ChangeListener: Send + Sync {
    fn subjects_changed(&self, tenant: &str, subjects: &[String]);
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("store", &self.store)
            .field("master_key", &self.master.id())
            .finish_non_exhaustive()
    }
}

/// One tenant's unwrapped keys and settings, cached in memory.
pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) key: TenantKey,
    pub(crate) hasher: IdentityHasher,
    pub(crate) audit_mac: TenantMac,
    pub(crate) receipt_mac: TenantMac,
    /// Derives the pseudonyms plugins know subjects by.
    pub(crate) pseudonym_mac: TenantMac,
    /// Seals the tenant's sealed documents ([`Vault::put_sealed_document`]).
    pub(crate) document_key: DocumentKey,
    pub(crate) settings: TenantSettings,
    /// Serialises this tenant's writes.
    pub(crate) lock: Arc<Mutex<()>>,
    /// Serialises this process's audit appends (the store's compare-and-set
    /// handles other processes).
    pub(crate) audit_lock: Arc<Mutex<()>>,
    /// Subject keys already written and synced to the key store.
    /// `None` until restored from the store's key-pool documents.
    pool: Arc<Mutex<Option<Pool>>>,
    /// Recently used subject keys, unwrapped.
    key_cache: Arc<Mutex<KeyCache>>,
}

impl Tenant {
    /// An identity as the tenant stores it: normalised with its rules, as
    /// `(kind label, normalised value)`, and its keyed hash. The error names
    /// the kind and the rule, never the value.
    pub(crate) fn identity(
        &self,
        kind: &IdentityKind,
        raw: &str,
    ) -> Result<((String, String), IdentityHash), VaultError> {
        let label = kind.label();
        let normalized = crate::normalize::normalize(kind, raw, &self.settings.identity_rules)
            .map_err(|source| VaultError::InvalidIdentity {
                kind: label.clone(),
                source,
            })?;
        let hash = self.hasher.hash(&label, &normalized);
        Ok(((label, normalized), hash))
    }
}

/// Unwrapped keys of recently loaded subjects, so that loading a subject
/// again skips the key store's read and the unwrap. At most [`KEY_CACHE`]
/// keys in two generations: a hit moves a key to the current one, and when
/// the current one is half full the previous one is dropped (keys zeroize
/// when dropped). Never persisted, and nothing but keys: profiles are read
/// from the store every time.
///
/// [`Vault::destroy_key`] removes the subject's key before and after erasing
/// its slot, each time moving `epoch` on; a load inserts the key it read
/// only if `epoch` has not moved since it began, so a load that raced with
/// an erasure cannot put the destroyed key back.
#[derive(Default)]
struct KeyCache {
    current: HashMap<String, (u64, Arc<SubjectKey>)>,
    previous: HashMap<String, (u64, Arc<SubjectKey>)>,
    epoch: u64,
}

impl KeyCache {
    /// The key of `subject` if cached for `slot`.
    fn get(&mut self, subject: &str, slot: u64) -> Option<Arc<SubjectKey>> {
        if let Some((cached, key)) = self.current.get(subject) {
            return (*cached == slot).then(|| key.clone());
        }
        let (cached, key) = self.previous.remove(subject)?;
        if cached != slot {
            return None;
        }
        self.insert(subject.to_owned(), slot, key.clone());
        Some(key)
    }

    fn insert(&mut self, subject: String, slot: u64, key: Arc<SubjectKey>) {
        if self.current.len() >= KEY_CACHE / 2 {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(subject, (slot, key));
    }

    /// Inserts a key read by a load that began at `epoch`.
    fn insert_read(&mut self, subject: &str, slot: u64, key: &Arc<SubjectKey>, epoch: u64) {
        if self.epoch == epoch {
            self.insert(subject.to_owned(), slot, key.clone());
        }
    }

    fn forget(&mut self, subject: &str) {
        self.epoch += 1;
        self.current.remove(subject);
        self.previous.remove(subject);
    }

    /// Drops every key: another node may have erased any of them.
    fn forget_all(&mut self) {
        self.epoch += 1;
        self.current.clear();
        self.previous.clear();
    }
}

/// Pooled subject keys, and the `key-batch` documents listing them.
#[derive(Default)]
struct Pool {
    fresh: Vec<Fresh>,
    /// Per `key-batch` document: how many of its ids are not yet used by a
    /// stored subject (as far as this process knows).
    outstanding: HashMap<String, usize>,
}

/// A subject id with its key, durable in the key store before any record
/// refers to it.
pub(crate) struct Fresh {
    pub id: String,
    pub slot: u64,
    pub key: SubjectKey,
    /// The `key-batch` document that lists it.
    pub batch: String,
}

/// What the tenant record's settings field holds.
#[derive(Serialize, Deserialize)]
struct StoredTenant {
    key: WrappedKey,
    settings: TenantSettings,
}

/// A subject's profile: the one sealed record of the subject itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Profile {
    pub traits: std::collections::BTreeMap<String, Value>,
    /// (kind label, normalised value) of the identities first seen on this subject.
    pub identities: BTreeSet<(String, String)>,
    /// Those of `identities` that only untrusted sources (anyone holding a
    /// public write key) asserted: kept for resolution, never proof that
    /// the person controls them, so never a way to sign in as the person.
    /// A trusted source asserting one again removes it from here.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub untrusted: BTreeSet<(String, String)>,
    pub aggregates: std::collections::BTreeMap<String, Aggregate>,
    pub retention_days: Option<u32>,
    pub merged_into: Option<String>,
    pub absorbed: Vec<String>,
    /// Subjects an un-merge separated from this one: never merged again automatically.
    pub separated: Vec<String>,
    pub merges: Vec<MergeEntry>,
    pub segments: Vec<Membership>,
    /// Segments left, oldest first (bounded, see `memberships`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub past_segments: Vec<PastMembership>,
    pub updated_at_ms: i64,
    pub last_event_ms: Option<i64>,
    /// The time of the newest consent entry (entries get increasing times).
    pub last_consent_ms: Option<i64>,
}

/// A subject's record, key and profile, opened.
pub(crate) struct Loaded {
    pub id: String,
    pub created_at_ms: i64,
    pub slot: u64,
    pub key: Arc<SubjectKey>,
    pub profile: Profile,
}

impl Loaded {
    /// The last time anything happened to the subject.
    pub(crate) fn last_activity_ms(&self) -> i64 {
        self.profile
            .last_event_ms
            .unwrap_or(i64::MIN)
            .max(self.profile.updated_at_ms)
            .max(self.created_at_ms)
    }
}

/// A tenant's write lock ([`Vault::write_lock`]): the store's, then this
/// process's, released in that order.
pub(crate) struct WriteGuard<'t> {
    _cluster: Option<tessera_store::TenantLock>,
    _local: MutexGuard<'t, ()>,
}

impl Vault {
    /// Takes `tenant`'s write lock: this process's, and with a store that
    /// other nodes share, the store's ([`Store::lock_tenant`]), so that a
    /// subject read, changed and written back by one node is not changed
    /// by another in between.
    pub(crate) fn write_lock<'t>(&self, tenant: &'t Tenant) -> Result<WriteGuard<'t>, VaultError> {
        let local = lock(&tenant.lock);
        let cluster = if self.is_shared() {
            self.store.lock_tenant(&tenant.id)?
        } else {
            None
        };
        Ok(WriteGuard {
            _cluster: cluster,
            _local: local,
        })
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves nothing half-written in memory
    // that the store does not also hold; carry on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn random_id() -> Result<String, VaultError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|error| {
        VaultError::KeyGen(tessera_privacy::KeyGenError::Randomness {
            reason: error.to_string(),
        })
    })?;
    Ok(hex::encode(bytes))
}

fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

impl Vault {
    /// A vault over `store`, keeping subject keys in `key_dir` (outside the
    /// data directory: see `docs/privacy.md`).
    pub fn new(
        store: Arc<dyn Store>,
        key_dir: impl AsRef<Path>,
        master: MasterKey,
    ) -> Result<Self, VaultError> {
        let key_dir = key_dir.as_ref();
        create_key_dir(key_dir).map_err(|error| VaultError::KeyDir {
            path: key_dir.to_path_buf(),
            detail: error.to_string(),
        })?;
        let keys = SubjectKeyStore::open(key_dir.join(SUBJECT_KEYS_FILE))?;
        if keys.is_empty()
            && let Some(tenant) = tenant_with_subjects(store.as_ref())?
        {
            // An empty key store beside a store that has subjects is a wrong
            // key directory, not a fresh start: refuse before anything
            // treats every person as erased.
            return Err(VaultError::KeyStoreMismatch {
                path: key_dir.join(SUBJECT_KEYS_FILE),
                tenant,
            });
        }
        Ok(Self::assemble(store, Arc::new(keys), None, master))
    }

    /// A vault over `store` whose subject keys are in `keys`, a key store
    /// that other nodes may share (PostgreSQL's). If it is shared, `node_dir`
    /// (the node's key directory, created if missing) holds the file
    /// [`NODE_ID_FILE`] that names this node, locked while the vault lives:
    /// two processes never run as the same node.
    pub fn with_key_store(
        store: Arc<dyn Store>,
        keys: Arc<dyn KeyStore>,
        node_dir: impl AsRef<Path>,
        master: MasterKey,
    ) -> Result<Self, VaultError> {
        if keys.holds_no_key()?
            && let Some(tenant) = tenant_with_subjects(store.as_ref())?
        {
            return Err(VaultError::SharedKeyStoreMismatch {
                location: keys.location(),
                tenant,
            });
        }
        let node = if keys.is_shared() {
            let dir = node_dir.as_ref();
            create_key_dir(dir).map_err(|error| VaultError::KeyDir {
                path: dir.to_path_buf(),
                detail: error.to_string(),
            })?;
            Some(NodeIdentity::claim(&dir.join(NODE_ID_FILE))?)
        } else {
            None
        };
        Ok(Self::assemble(store, keys, node, master))
    }

    fn assemble(
        store: Arc<dyn Store>,
        keys: Arc<dyn KeyStore>,
        node: Option<NodeIdentity>,
        master: MasterKey,
    ) -> Self {
        Self {
            store,
            keys,
            node,
            changes: Changes::default(),
            master,
            tenants: RwLock::default(),
            clock: system_clock(),
            listeners: RwLock::default(),
            erasure_listeners: RwLock::default(),
            access_listeners: RwLock::default(),
        }
    }

    /// Whether other nodes share this vault's store and key store, so that
    /// what it caches must follow their changes ([`Vault::poll_changes`]).
    pub fn is_shared(&self) -> bool {
        self.node.is_some()
    }

    /// This node's name when the key store is shared.
    pub fn node_id(&self) -> Option<&str> {
        self.node.as_ref().map(NodeIdentity::id)
    }

    /// Where the subject keys are, for messages.
    pub fn key_location(&self) -> String {
        self.keys.location()
    }

    /// Opens the embedded store in `data_dir` and the key store in `key_dir`.
    pub fn open(
        data_dir: impl AsRef<Path>,
        key_dir: impl AsRef<Path>,
        master: MasterKey,
    ) -> Result<Self, VaultError> {
        let store = SledStore::open(data_dir)?;
        Self::new(Arc::new(store), key_dir, master)
    }

    /// Adds a listener told of every change to subjects ([`ChangeListener`]).
    pub fn watch(&self, listener: Arc<dyn ChangeListener>) {
        self.listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }

    /// Adds a listener told of every erasure ([`ErasureListener`]).
    pub fn on_erasure(&self, listener: Arc<dyn ErasureListener>) {
        self.erasure_listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }

    /// Adds a listener asked for its part of every access view
    /// ([`AccessListener`]).
    pub fn on_access(&self, listener: Arc<dyn AccessListener>) {
        self.access_listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(listener);
    }

    /// Lets the access listeners add what they keep about `subjects` of
    /// `tenant` to `view`.
    pub(crate) fn gather_elsewhere(
        &self,
        tenant: &str,
        subjects: &[String],
        view: &mut SubjectView,
    ) -> Result<(), VaultError> {
        let listeners = self
            .access_listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for listener in listeners {
            listener.gathering(tenant, subjects, view)?;
        }
        Ok(())
    }

    /// Tells the erasure listeners that `subjects` of `tenant` are being
    /// erased.
    pub(crate) fn notify_erasure(
        &self,
        tenant: &str,
        subjects: &[String],
    ) -> Result<(), VaultError> {
        let listeners = self
            .erasure_listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for listener in listeners {
            listener.erasing(tenant, subjects)?;
        }
        Ok(())
    }

    /// Tells the listeners that `subjects` of `tenant` changed.
    pub(crate) fn notify(&self, tenant: &str, subjects: &[String]) {
        if subjects.is_empty() {
            return;
        }
        for listener in self
            .listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            listener.subjects_changed(tenant, subjects);
        }
    }

    /// Replaces the clock (tests, simulations).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub(crate) fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The vault's time, milliseconds since the Unix epoch: what services
    /// over the vault use for expiries, so that they follow its clock.
    pub fn now_ms(&self) -> i64 {
        self.now()
    }

    /// The tenant's MAC key for a purpose served outside the data core
    /// (subject tokens, login codes), derived from the tenant key, so that
    /// any node with the master key verifies what another node made. The
    /// keys of the vault's own purposes, the audit chain, receipts and
    /// plugin pseudonyms, are never handed out (`None`): nothing outside the
    /// vault can forge an audit entry or a receipt, or turn a subject id into
    /// a plugin's key for it.
    pub fn service_mac(
        &self,
        tenant: &str,
        purpose: MacPurpose,
    ) -> Result<Option<TenantMac>, VaultError> {
        if matches!(
            purpose,
            MacPurpose::Audit | MacPurpose::Receipt | MacPurpose::Pseudonym
        ) {
            return Ok(None);
        }
        let tenant = self.tenant(tenant)?;
        Ok(Some(TenantMac::new(&tenant.key, purpose)))
    }

    /// The store underneath, for jobs and diagnostics.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Makes every acknowledged write durable: key store, then data store.
    pub fn flush(&self) -> Result<(), VaultError> {
        self.keys.sync()?;
        self.store.flush()?;
        Ok(())
    }

    // ---- tenants -------------------------------------------------------

    /// Creates a tenant with a fresh tenant key wrapped under the master key.
    pub fn create_tenant(
        &self,
        id: &str,
        settings: TenantSettings,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        settings
            .check()
            .map_err(|reason| VaultError::InvalidSettings { reason })?;
        if self.store.tenant(id)?.is_some() {
            return Err(VaultError::TenantExists {
                tenant: id.to_owned(),
            });
        }
        let key = TenantKey::generate()?;
        let stored = StoredTenant {
            key: key.wrap(&self.master, id)?,
            settings,
        };
        self.put_tenant(id, &stored)?;
        self.store.flush()?;
        let tenant = self.tenant(id)?;
        self.audit(&tenant, AuditEntry::new(actor, "tenant.create"))?;
        Ok(())
    }

    fn put_tenant(&self, id: &str, stored: &StoredTenant) -> Result<(), VaultError> {
        let wrapped = serde_json::to_vec(&stored.key)
            .map_err(|e| VaultError::corrupt(id, "tenant key", e))?;
        let settings = serde_json::to_vec(&stored.settings)
            .map_err(|e| VaultError::corrupt(id, "settings", e))?;
        self.store.put_tenant(&TenantRecord {
            id: id.to_owned(),
            wrapped_key: wrapped,
            settings,
        })?;
        Ok(())
    }

    /// Replaces a tenant's settings.
    pub fn update_settings(
        &self,
        id: &str,
        settings: TenantSettings,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        settings
            .check()
            .map_err(|reason| VaultError::InvalidSettings { reason })?;
        let tenant = self.tenant(id)?;
        let _guard = self.write_lock(&tenant)?;
        self.write_settings(&tenant, settings, actor)
    }

    /// Changes a tenant's settings with `change`, all under the tenant's
    /// write lock, so that no record is ingested or rectified between what
    /// `change` checks and what it writes. `change` sees the settings of
    /// now and a count of the people holding a value of a trait (it reads
    /// every person of the tenant), and returns the new settings (`None`:
    /// nothing to write) with its own answer.
    pub fn change_settings<R, E: From<VaultError>>(
        &self,
        id: &str,
        actor: &Actor,
        change: impl FnOnce(
            &TenantSettings,
            &mut dyn FnMut(&str) -> Result<u64, VaultError>,
        ) -> Result<(Option<TenantSettings>, R), E>,
    ) -> Result<R, E> {
        let lock_of = self.tenant(id)?;
        let _guard = self.write_lock(&lock_of)?;
        let tenant = self.tenant(id)?;
        let mut holders = |name: &str| -> Result<u64, VaultError> {
            let mut count = 0;
            let mut after: Option<String> = None;
            loop {
                let (people, next) = self.people(id, after.as_deref(), 512)?;
                count += people
                    .iter()
                    .filter(|p| p.traits.contains_key(name))
                    .count() as u64;
                match next {
                    Some(next) => after = Some(next),
                    None => return Ok(count),
                }
            }
        };
        let (settings, answer) = change(&tenant.settings, &mut holders)?;
        if let Some(settings) = settings {
            settings
                .check()
                .map_err(|reason| VaultError::InvalidSettings { reason })?;
            self.write_settings(&tenant, settings, actor)?;
        }
        Ok(answer)
    }

    /// Writes `settings` (checked) for `tenant`; the caller holds its lock.
    fn write_settings(
        &self,
        tenant: &Tenant,
        settings: TenantSettings,
        actor: &Actor,
    ) -> Result<(), VaultError> {
        let id = tenant.id.as_str();
        if settings.identity_rules != tenant.settings.identity_rules
            && (!self.store.subjects(id, None, 1)?.is_empty() || self.store.suppressions(id)? > 0)
        {
            return Err(VaultError::InvalidSettings {
                reason: "identity_rules cannot change once the tenant holds subjects or \
                         suppressed identities: every stored identity hash depends on them"
                    .into(),
            });
        }
        let record = self.tenant_record(id)?;
        let stored = StoredTenant {
            key: decode_json(id, "tenant key", &record.wrapped_key)?,
            settings,
        };
        self.put_tenant(id, &stored)?;
        self.store.flush()?;
        // Replaced in place: the new entry keeps the tenant's write lock and
        // key pool, so writers holding the old entry stay serialised with
        // writers of the new one.
        self.load_tenant(id, true)?;
        self.announce_change_or_log(id);
        self.audit(tenant, AuditEntry::new(actor, "tenant.settings"))?;
        Ok(())
    }

    /// A tenant's settings.
    pub fn settings(&self, id: &str) -> Result<TenantSettings, VaultError> {
        Ok(self.tenant(id)?.settings.clone())
    }

    /// Every tenant id.
    pub fn tenant_ids(&self) -> Result<Vec<String>, VaultError> {
        Ok(self.store.tenants()?.into_iter().map(|t| t.id).collect())
    }

    fn tenant_record(&self, id: &str) -> Result<TenantRecord, VaultError> {
        self.store
            .tenant(id)?
            .ok_or_else(|| VaultError::UnknownTenant {
                tenant: id.to_owned(),
            })
    }

    /// Forgets what this process caches of `tenant` that another node may
    /// have changed: its unwrapped subject keys go, its settings are read
    /// again (a tenant not cached yet is left alone).
    pub(crate) fn forget_cached(&self, id: &str) -> Result<(), VaultError> {
        let cached = self
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        if let Some(tenant) = cached {
            lock(&tenant.key_cache).forget_all();
            self.load_tenant(id, true)?;
        }
        Ok(())
    }

    /// The tenant's keys and settings, unwrapped once and cached.
    pub(crate) fn tenant(&self, id: &str) -> Result<Arc<Tenant>, VaultError> {
        self.load_tenant(id, false)
    }

    /// Reads the tenant from the store into the cache; with `replace`, over
    /// an existing entry (whose lock and key pool the new entry inherits).
    fn load_tenant(&self, id: &str, replace: bool) -> Result<Arc<Tenant>, VaultError> {
        let cached = self
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        if let (false, Some(tenant)) = (replace, cached) {
            return Ok(tenant);
        }
        let record = self.tenant_record(id)?;
        let wrapped: WrappedKey = decode_json(id, "tenant key", &record.wrapped_key)?;
        let settings: TenantSettings = decode_json(id, "settings", &record.settings)?;
        let key = TenantKey::unwrap(&wrapped, &self.master, id)?;
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        let existing = tenants.get(id);
        if let (false, Some(existing)) = (replace, existing) {
            // Another thread cached it meanwhile; never overwrite a newer entry.
            return Ok(existing.clone());
        }
        let (lock_, audit_lock, pool, key_cache) = existing
            .map(|t| {
                (
                    t.lock.clone(),
                    t.audit_lock.clone(),
                    t.pool.clone(),
                    t.key_cache.clone(),
                )
            })
            .unwrap_or_default();
        let tenant = Arc::new(Tenant {
            id: id.to_owned(),
            hasher: IdentityHasher::new(&key),
            audit_mac: TenantMac::new(&key, MacPurpose::Audit),
            receipt_mac: TenantMac::new(&key, MacPurpose::Receipt),
            pseudonym_mac: TenantMac::new(&key, MacPurpose::Pseudonym),
            document_key: DocumentKey::new(&key),
            key,
            settings,
            lock: lock_,
            audit_lock,
            pool,
            key_cache,
        });
        tenants.insert(id.to_owned(), tenant.clone());
        Ok(tenant)
    }

    // ---- subjects ------------------------------------------------------

    /// A new subject id and key, durable in the key store. Keys are written
    /// [`KEY_POOL`] at a time with one sync, and listed with their slots in
    /// one `key-batch` document, so that a restart reuses the pool instead of
    /// leaking its slots; the caller calls [`Vault::consume_fresh`] once the
    /// subject record is stored.
    pub(crate) fn fresh_subject(&self, tenant: &Tenant) -> Result<Fresh, VaultError> {
        let mut guard = lock(&tenant.pool);
        if guard.is_none() {
            *guard = Some(self.restore_pool(tenant)?);
        }
        let pool = guard.get_or_insert_with(Pool::default);
        if pool.fresh.is_empty() {
            let batch = self.batch_id()?;
            let mut made = Vec::with_capacity(KEY_POOL);
            let mut wrapped = Vec::with_capacity(KEY_POOL);
            for _ in 0..KEY_POOL {
                let id = random_id()?;
                let key = SubjectKey::generate()?;
                wrapped.push(key.wrap(&tenant.key, &tenant.id, &id)?);
                made.push((id, key));
            }
            let slots = self.keys.insert_many(&wrapped)?;
            let fresh: Vec<Fresh> = made
                .into_iter()
                .zip(slots)
                .map(|((id, key), slot)| Fresh {
                    id,
                    slot,
                    key,
                    batch: batch.clone(),
                })
                .collect();
            // Synced before any record can name one of these slots, so a
            // crash never leaves a subject whose key was lost (and pooled
            // only once synced: nothing else syncs the key store for ingest).
            self.keys.sync()?;
            pool.fresh = fresh;
            self.put_key_batch(tenant, pool, batch)?;
        }
        let fresh = pool.fresh.pop().expect("the pool was just filled");
        Ok(fresh)
    }

    /// Lists the pool's keys of `batch` in a `key-batch` document, durably.
    fn put_key_batch(
        &self,
        tenant: &Tenant,
        pool: &mut Pool,
        batch: String,
    ) -> Result<(), VaultError> {
        let mut value = Vec::new();
        let mut count = 0;
        for fresh in pool.fresh.iter().filter(|f| f.batch == batch) {
            let len = u8::try_from(fresh.id.len())
                .map_err(|_| VaultError::corrupt(&tenant.id, "key pool", "subject id too long"))?;
            value.extend_from_slice(&fresh.slot.to_be_bytes());
            value.push(len);
            value.extend_from_slice(fresh.id.as_bytes());
            count += 1;
        }
        self.store
            .put_document(&tenant.id, KEY_BATCH_DOC, &batch, &value)?;
        // Flushed, so that a crash does not leave the synced slots unlisted.
        self.store.flush()?;
        pool.outstanding.insert(batch, count);
        Ok(())
    }

    /// Marks a pooled id of `batch` as used once its subject record is
    /// stored; the batch's document goes once all its ids are used.
    pub(crate) fn consume_fresh(&self, tenant: &Tenant, batch: &str) -> Result<(), VaultError> {
        let mut guard = lock(&tenant.pool);
        let Some(pool) = guard.as_mut() else {
            return Ok(());
        };
        let Some(left) = pool.outstanding.get_mut(batch) else {
            return Ok(());
        };
        *left = left.saturating_sub(1);
        if *left == 0 {
            pool.outstanding.remove(batch);
            self.store
                .delete_document(&tenant.id, KEY_BATCH_DOC, batch)?;
        }
        Ok(())
    }

    /// The pooled keys a previous run wrote but did not use, listed again in
    /// one new `key-batch` document (the old documents are removed after it
    /// is written; ids listed twice after a crash in between count once).
    ///
    /// With a shared key store only this node's batches are restored: the
    /// others' ids may be in their pools right now.
    fn restore_pool(&self, tenant: &Tenant) -> Result<Pool, VaultError> {
        let mut listed: Vec<(String, Option<u64>)> = Vec::new();
        let mut documents: Vec<(&str, String)> = Vec::new();
        let (kinds, prefix): (&[&str], String) = match &self.node {
            Some(node) => (&[KEY_BATCH_DOC], format!("{}.", node.id())),
            None => (&[KEY_BATCH_DOC, KEY_POOL_DOC], String::new()),
        };
        for &kind in kinds {
            let mut after: Option<String> = None;
            loop {
                let page =
                    self.store
                        .documents_under(&tenant.id, kind, &prefix, after.as_deref(), 256)?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                for (doc, value) in page {
                    if kind == KEY_POOL_DOC {
                        let slot = <[u8; 8]>::try_from(value.as_slice())
                            .ok()
                            .map(u64::from_be_bytes);
                        listed.push((doc.clone(), slot));
                    } else {
                        listed.extend(decode_key_batch(&value));
                    }
                    documents.push((kind, doc));
                }
            }
        }
        let mut pool = Pool::default();
        let mut seen = std::collections::HashSet::new();
        let batch = self.batch_id()?;
        for (id, slot) in listed {
            if !seen.insert(id.clone()) || self.store.subject(&tenant.id, &id)?.is_some() {
                continue;
            }
            let Some(slot) = slot else { continue };
            let key = self
                .keys
                .get(slot)?
                .and_then(|w| SubjectKey::unwrap(&w, &tenant.key, &tenant.id, &id).ok());
            if let Some(key) = key {
                pool.fresh.push(Fresh {
                    id,
                    slot,
                    key,
                    batch: batch.clone(),
                });
            }
        }
        if !pool.fresh.is_empty() {
            self.put_key_batch(tenant, &mut pool, batch)?;
        }
        for (kind, doc) in documents {
            self.store.delete_document(&tenant.id, kind, &doc)?;
        }
        Ok(pool)
    }

    /// A new `key-batch` document id: this node's name and a random part
    /// when the key store is shared, else the random part alone.
    fn batch_id(&self) -> Result<String, VaultError> {
        let random = random_id()?;
        Ok(match &self.node {
            Some(node) => format!("{}.{random}", node.id()),
            None => random,
        })
    }

    /// Destroys a subject's key, but only if the slot still holds *that*
    /// subject's key: an erased slot may have been reused by someone else.
    /// `cause` goes to the key store's erasure ledger.
    pub(crate) fn destroy_key(
        &self,
        tenant: &Tenant,
        subject: &str,
        cause: ErasureCause,
    ) -> Result<bool, VaultError> {
        lock(&tenant.key_cache).forget(subject);
        let Some(record) = self.store.subject(&tenant.id, subject)? else {
            return Ok(false);
        };
        let slot = slot_of(&tenant.id, &record)?;
        let ours = self
            .keys
            .get(slot)?
            .is_some_and(|w| SubjectKey::unwrap(&w, &tenant.key, &tenant.id, subject).is_ok());
        let erased = if ours {
            self.keys.erase_for(slot, cause)
        } else {
            Ok(false)
        };
        // Again, whatever happened: a load may have read the slot before.
        lock(&tenant.key_cache).forget(subject);
        Ok(erased?)
    }

    /// Drops a subject's key from the cache (its key is gone).
    pub(crate) fn forget_key(&self, tenant: &Tenant, subject: &str) {
        lock(&tenant.key_cache).forget(subject);
    }

    /// Keeps a new subject's key in the cache once its record is stored.
    pub(crate) fn cache_key(&self, tenant: &Tenant, loaded: &Loaded) {
        lock(&tenant.key_cache).insert(loaded.id.clone(), loaded.slot, loaded.key.clone());
    }

    pub(crate) fn load(&self, tenant: &Tenant, subject: &str) -> Result<Loaded, VaultError> {
        self.try_load(tenant, subject)?
            .ok_or_else(|| VaultError::UnknownSubject {
                tenant: tenant.id.clone(),
                subject: subject.to_owned(),
            })
    }

    pub(crate) fn try_load(
        &self,
        tenant: &Tenant,
        subject: &str,
    ) -> Result<Option<Loaded>, VaultError> {
        let Some(record) = self.store.subject(&tenant.id, subject)? else {
            return Ok(None);
        };
        let slot = slot_of(&tenant.id, &record)?;
        let key = self.subject_key(tenant, subject, slot)?;
        let aad = RecordAad {
            tenant: &tenant.id,
            subject,
            kind: KIND_PROFILE,
            id: subject,
        };
        let plain =
            envelope::open(&key, &aad, &record.data).map_err(|source| VaultError::Open {
                subject: subject.to_owned(),
                source,
            })?;
        let profile = decode_json(&tenant.id, "profile", &plain)?;
        Ok(Some(Loaded {
            id: subject.to_owned(),
            created_at_ms: record.created_at_ms,
            slot,
            key,
            profile,
        }))
    }

    /// A subject's unwrapped key, from the cache or the key store.
    fn subject_key(
        &self,
        tenant: &Tenant,
        subject: &str,
        slot: u64,
    ) -> Result<Arc<SubjectKey>, VaultError> {
        let epoch = {
            let mut cache = lock(&tenant.key_cache);
            if let Some(key) = cache.get(subject, slot) {
                return Ok(key);
            }
            cache.epoch
        };
        let erased = || VaultError::SubjectErased {
            tenant: tenant.id.clone(),
            subject: subject.to_owned(),
        };
        let wrapped = self.keys.get(slot)?.ok_or_else(erased)?;
        // An unwrap failure: the slot was erased and reused by another subject.
        let key =
            SubjectKey::unwrap(&wrapped, &tenant.key, &tenant.id, subject).map_err(|_| erased())?;
        let key = Arc::new(key);
        lock(&tenant.key_cache).insert_read(subject, slot, &key, epoch);
        Ok(key)
    }

    /// Follows `merged_into` to the subject that stands for the person.
    pub(crate) fn load_root(&self, tenant: &Tenant, subject: &str) -> Result<Loaded, VaultError> {
        let mut loaded = self.load(tenant, subject)?;
        for _ in 0..MAX_GROUP {
            match loaded.profile.merged_into.clone() {
                Some(root) => loaded = self.load(tenant, &root)?,
                None => return Ok(loaded),
            }
        }
        Err(VaultError::GroupTooLarge {
            tenant: tenant.id.clone(),
            subject: subject.to_owned(),
            max: MAX_GROUP,
        })
    }

    /// The root and, recursively, every subject merged into it. A member is
    /// one whose `merged_into` names the subject listing it in `absorbed`
    /// (both are written together; an un-merge clears both).
    pub(crate) fn load_group(
        &self,
        tenant: &Tenant,
        root: Loaded,
    ) -> Result<Vec<Loaded>, VaultError> {
        let mut group = vec![root];
        let mut next = 0;
        while next < group.len() {
            let parent = group[next].id.clone();
            let absorbed = group[next].profile.absorbed.clone();
            for id in absorbed {
                if group.iter().any(|l| l.id == id) {
                    continue;
                }
                match self.try_load(tenant, &id) {
                    Ok(Some(loaded)) if loaded.profile.merged_into.as_deref() == Some(&parent) => {
                        if group.len() >= MAX_GROUP {
                            return Err(VaultError::GroupTooLarge {
                                tenant: tenant.id.clone(),
                                subject: group[0].id.clone(),
                                max: MAX_GROUP,
                            });
                        }
                        group.push(loaded);
                    }
                    Ok(_) | Err(VaultError::SubjectErased { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
            next += 1;
        }
        Ok(group)
    }

    pub(crate) fn seal_record(
        &self,
        tenant: &Tenant,
        loaded: &Loaded,
    ) -> Result<SubjectRecord, VaultError> {
        let plain = serde_json::to_vec(&loaded.profile)
            .map_err(|e| VaultError::corrupt(&tenant.id, "profile", e))?;
        let aad = RecordAad {
            tenant: &tenant.id,
            subject: &loaded.id,
            kind: KIND_PROFILE,
            id: &loaded.id,
        };
        Ok(SubjectRecord {
            id: loaded.id.clone(),
            wrapped_key: loaded.slot.to_be_bytes().to_vec(),
            created_at_ms: loaded.created_at_ms,
            data: envelope::seal(&loaded.key, &aad, &plain)?,
        })
    }

    pub(crate) fn save(&self, tenant: &Tenant, loaded: &Loaded) -> Result<(), VaultError> {
        let record = self.seal_record(tenant, loaded)?;
        self.store.put_subject(&tenant.id, &record)?;
        Ok(())
    }

    pub(crate) fn seal(
        &self,
        tenant: &Tenant,
        subject: &Loaded,
        kind: &str,
        id: &str,
        value: &impl Serialize,
    ) -> Result<Vec<u8>, VaultError> {
        let plain =
            serde_json::to_vec(value).map_err(|e| VaultError::corrupt(&tenant.id, "record", e))?;
        let aad = RecordAad {
            tenant: &tenant.id,
            subject: &subject.id,
            kind,
            id,
        };
        Ok(envelope::seal(&subject.key, &aad, &plain)?)
    }

    pub(crate) fn open_record<T: for<'de> Deserialize<'de>>(
        &self,
        tenant: &Tenant,
        subject: &Loaded,
        kind: &str,
        id: &str,
        sealed: &[u8],
    ) -> Result<T, VaultError> {
        let aad = RecordAad {
            tenant: &tenant.id,
            subject: &subject.id,
            kind,
            id,
        };
        let plain =
            envelope::open(&subject.key, &aad, sealed).map_err(|source| VaultError::Open {
                subject: subject.id.clone(),
                source,
            })?;
        decode_json(&tenant.id, "record", &plain)
    }

    // ---- audit ---------------------------------------------------------

    pub(crate) fn audit(&self, tenant: &Tenant, entry: AuditEntry) -> Result<u64, VaultError> {
        let _guard = lock(&tenant.audit_lock);
        audit::append(
            self.store.as_ref(),
            &tenant.audit_mac,
            &tenant.id,
            entry,
            self.now(),
        )
    }

    /// Audits an action that must happen even if the audit trail is damaged
    /// (an erasure must not be blocked by it); a failure is logged loudly.
    pub(crate) fn audit_or_log(&self, tenant: &Tenant, entry: AuditEntry) {
        let action = entry.action.clone();
        if let Err(error) = self.audit(tenant, entry) {
            tracing::error!(tenant = %tenant.id, %action, %error, "audit entry not written");
        }
    }

    /// Records a plugin's read of subject data: plugin, version, the subject
    /// (or how many subjects, for a batch), the fields and the purpose.
    pub fn record_plugin_access(&self, tenant: &str, entry: AuditEntry) -> Result<u64, VaultError> {
        let tenant = self.tenant(tenant)?;
        self.audit(&tenant, entry)
    }

    /// Appends an admin action to the trail.
    pub fn record_admin_action(&self, tenant: &str, entry: AuditEntry) -> Result<u64, VaultError> {
        self.record_plugin_access(tenant, entry)
    }

    /// At most `limit` audit entries from `from_seq` on (not verified: use
    /// [`Vault::verify_audit`] for that).
    pub fn audit_entries(
        &self,
        tenant: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, VaultError> {
        self.tenant(tenant)?;
        audit::read(self.store.as_ref(), tenant, from_seq, limit)
    }

    /// Starts a new chain after the newest audit entry was destroyed (which
    /// otherwise refuses every audited write). The restart entry names who
    /// did it; `verify` reports the damage and the restart for ever.
    pub fn restart_audit_chain(&self, tenant: &str, actor: &Actor) -> Result<u64, VaultError> {
        let tenant = self.tenant(tenant)?;
        self.audit(
            &tenant,
            AuditEntry::new(actor, audit::RESTART).detail("chain restarted after damage"),
        )
    }

    /// Walks the tenant's audit chain and reports every edited, removed,
    /// reordered or added entry.
    pub fn verify_audit(&self, tenant: &str) -> Result<AuditReport, VaultError> {
        let tenant = self.tenant(tenant)?;
        audit::verify(self.store.as_ref(), &tenant.audit_mac, &tenant.id)
    }
}

/// Master-key rotation: rewraps every tenant key under `new`. Tenants already
/// wrapped under `new` are skipped, so an interrupted rotation is finished by
/// running it again. No record is re-encrypted. Returns how many tenants were
/// rewrapped.
pub fn rotate_master_key(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<u64, VaultError> {
    let mut rewrapped = 0;
    for record in store.tenants()? {
        let mut stored: StoredTenant = StoredTenant {
            key: decode_json(&record.id, "tenant key", &record.wrapped_key)?,
            settings: decode_json(&record.id, "settings", &record.settings)?,
        };
        if stored.key.master_key_id == new.id() {
            continue;
        }
        stored.key = stored.key.rewrap(old, new, &record.id)?;
        store.put_tenant(&TenantRecord {
            id: record.id.clone(),
            wrapped_key: serde_json::to_vec(&stored.key)
                .map_err(|e| VaultError::corrupt(&record.id, "tenant key", e))?,
            settings: record.settings.clone(),
        })?;
        rewrapped += 1;
    }
    store.flush()?;
    Ok(rewrapped)
}

/// A tenant that has at least one subject, if any does.
fn tenant_with_subjects(store: &dyn Store) -> Result<Option<String>, VaultError> {
    for tenant in store.tenants()? {
        if !store.subjects(&tenant.id, None, 1)?.is_empty() {
            return Ok(Some(tenant.id));
        }
    }
    Ok(None)
}

/// Creates the key directory, readable by its owner only.
fn create_key_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

pub(crate) fn decode_json<T: for<'de> Deserialize<'de>>(
    tenant: &str,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, VaultError> {
    serde_json::from_slice(bytes).map_err(|e| VaultError::corrupt(tenant, what, json_problem(&e)))
}

/// A decoding error without serde's excerpt of the input, which may be a
/// decrypted personal value.
pub(crate) fn json_problem(error: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        error.classify(),
        error.line(),
        error.column()
    )
    .to_lowercase()
}

/// The (subject id, slot) entries of a `key-batch` document: each an 8-byte
/// slot, a 1-byte id length and the id. A damaged tail is ignored (its slots
/// stay used in the key store, which is safe).
fn decode_key_batch(mut value: &[u8]) -> Vec<(String, Option<u64>)> {
    let mut entries = Vec::new();
    while let Some((slot, rest)) = value.split_first_chunk::<8>() {
        let Some((&len, rest)) = rest.split_first() else {
            break;
        };
        let Some((id, rest)) = rest.split_at_checked(usize::from(len)) else {
            break;
        };
        let Ok(id) = std::str::from_utf8(id) else {
            break;
        };
        entries.push((id.to_owned(), Some(u64::from_be_bytes(*slot))));
        value = rest;
    }
    entries
}

pub(crate) fn slot_of(tenant: &str, record: &SubjectRecord) -> Result<u64, VaultError> {
    let bytes: [u8; 8] = record
        .wrapped_key
        .as_slice()
        .try_into()
        .map_err(|_| VaultError::corrupt(tenant, "subject key reference", "not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const TENANT: &str = "acme";

    fn open(dir: &Path) -> Vault {
        let master = MasterKey::from_file(dir.join("master.key")).expect("master key");
        Vault::open(dir.join("data"), dir.join("keys"), master).expect("open")
    }

    /// A fresh deployment in a temporary directory, with tenant `TENANT`.
    fn with_tenant() -> (tempfile::TempDir, Vault) {
        let dir = tempfile::tempdir().expect("temp dir");
        MasterKey::generate()
            .expect("master key")
            .write_new(dir.path().join("master.key"))
            .expect("write master key");
        let vault = open(dir.path());
        vault
            .create_tenant(
                TENANT,
                TenantSettings::default(),
                &Actor::new("operator", "test"),
            )
            .expect("tenant");
        (dir, vault)
    }

    fn documents(vault: &Vault, kind: &str) -> Vec<(String, Vec<u8>)> {
        vault
            .store
            .documents(TENANT, kind, None, 10_000)
            .expect("documents")
    }

    #[test]
    fn a_restored_pool_holds_each_unused_pooled_key_once_in_one_document() {
        let (dir, vault) = with_tenant();
        let tenant = vault.tenant(TENANT).expect("tenant");
        let taken = vault.fresh_subject(&tenant).expect("fresh");
        let mut pooled: BTreeSet<String> = lock(&tenant.pool)
            .as_ref()
            .expect("pool")
            .fresh
            .iter()
            .map(|f| f.id.clone())
            .collect();
        assert_eq!(pooled.len(), KEY_POOL - 1);
        // `taken` was handed out but never stored: it is reused too.
        pooled.insert(taken.id.clone());
        // One of the pool became a stored subject: it is not.
        let used = pooled.pop_first().expect("an id");
        let record = SubjectRecord {
            id: used.clone(),
            wrapped_key: vec![0; 8],
            created_at_ms: 0,
            data: vec![1],
        };
        vault.store.put_subject(TENANT, &record).expect("subject");
        // A pooled key recorded the way earlier versions did.
        let key = SubjectKey::generate().expect("key");
        let old = "0123456789abcdef0123456789abcdef";
        let slot = vault
            .keys
            .insert(&key.wrap(&tenant.key, TENANT, old).expect("wrap"))
            .expect("insert");
        vault.keys.sync().expect("sync");
        vault
            .store
            .put_document(TENANT, KEY_POOL_DOC, old, &slot.to_be_bytes())
            .expect("old document");
        pooled.insert(old.to_owned());
        // A crash between listing a restored pool and removing the
        // documents it came from lists ids twice.
        let (_, first) = documents(&vault, KEY_BATCH_DOC).pop().expect("batch");
        vault
            .store
            .put_document(TENANT, KEY_BATCH_DOC, "copy", &first)
            .expect("copy");
        vault.flush().expect("flush");
        drop((tenant, vault));

        let vault = open(dir.path());
        let tenant = vault.tenant(TENANT).expect("tenant");
        let pool = vault.restore_pool(&tenant).expect("restore");
        let restored: Vec<&str> = pool.fresh.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(restored.len(), pooled.len(), "each id once");
        assert_eq!(
            restored
                .iter()
                .map(|id| id.to_string())
                .collect::<BTreeSet<_>>(),
            pooled
        );
        assert!(documents(&vault, KEY_POOL_DOC).is_empty());
        let batches = documents(&vault, KEY_BATCH_DOC);
        assert_eq!(batches.len(), 1, "one document lists the restored pool");
        assert_eq!(decode_key_batch(&batches[0].1).len(), pooled.len());
        assert_eq!(pool.outstanding.get(&batches[0].0), Some(&pooled.len()));
        for fresh in &pool.fresh {
            let wrapped = vault.keys.get(fresh.slot).expect("get").expect("a key");
            SubjectKey::unwrap(&wrapped, &tenant.key, TENANT, &fresh.id).expect("its own key");
        }
    }

    #[test]
    fn a_key_batch_document_goes_once_every_id_it_lists_is_used() {
        let (_dir, vault) = with_tenant();
        let tenant = vault.tenant(TENANT).expect("tenant");
        let first = vault.fresh_subject(&tenant).expect("fresh");
        assert_eq!(documents(&vault, KEY_BATCH_DOC).len(), 1);
        for _ in 1..KEY_POOL {
            let fresh = vault.fresh_subject(&tenant).expect("fresh");
            assert_eq!(fresh.batch, first.batch);
            vault.consume_fresh(&tenant, &fresh.batch).expect("consume");
        }
        assert_eq!(
            documents(&vault, KEY_BATCH_DOC).len(),
            1,
            "one id is not used yet"
        );
        vault.consume_fresh(&tenant, &first.batch).expect("consume");
        assert!(documents(&vault, KEY_BATCH_DOC).is_empty());
        let next = vault.fresh_subject(&tenant).expect("fresh");
        assert_ne!(next.batch, first.batch, "a new batch");
        assert_eq!(documents(&vault, KEY_BATCH_DOC).len(), 1);
    }

    #[test]
    fn the_key_cache_is_bounded_and_never_takes_back_a_forgotten_key() {
        let key = || Arc::new(SubjectKey::generate().expect("key"));
        let mut cache = KeyCache::default();
        for n in 0..3 * KEY_CACHE {
            cache.insert(n.to_string(), 1, key());
            assert!(cache.current.len() + cache.previous.len() <= KEY_CACHE);
        }
        let last = (3 * KEY_CACHE - 1).to_string();
        assert!(cache.get(&last, 1).is_some());
        assert!(cache.get(&last, 2).is_none(), "another slot is another key");
        assert!(cache.get("0", 1).is_none(), "the oldest went");

        // A load that began before a forget does not insert what it read.
        let epoch = cache.epoch;
        cache.forget(&last);
        assert!(cache.get(&last, 1).is_none());
        cache.insert_read(&last, 1, &key(), epoch);
        assert!(cache.get(&last, 1).is_none());
        cache.insert_read(&last, 1, &key(), cache.epoch);
        assert!(cache.get(&last, 1).is_some());
    }
}

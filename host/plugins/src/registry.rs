//! The [`Registry`]: a tenant's trusted publishers and installed plugins,
//! kept in the store and loaded into the runtime.
//!
//! Installing a bundle is verify → type-check → store, and leaves each
//! plugin *pending*: nothing runs until an operator approves all or part of
//! what it asked for. Approving checks the component's imports against the
//! grant (capability = linking) and precompiles it; every step that fails
//! leaves the plugin as it was. An upgrade that asks for no more than the
//! running version was granted goes live at once; one that asks for more
//! waits, with its [`PermissionDiff`], for approval. A rollback returns to
//! the previously approved version with its grants; a removal deletes the
//! plugin's state and keeps its audit trail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tessera_bundle::{Bundle, BundleError, Kind, Permissions, PluginEntry, PublicKey};
use tessera_runtime::api::types::{FieldValue, Manifest};
use tessera_runtime::{
    CallError, CallScope, GrantedHost, Grants, InstallError, InstallRequest, IpNet, Limits,
    MemoryState, Needs, Outbound, Plugin, PluginKind, RETIRED, Runtime, StateError, StateScope,
    StateStore, StateWrite, TraitKinds,
};
use tessera_store::Store;
use tessera_vault::{Actor, AuditEntry, Vault, VaultError};

use crate::permissions::{
    PermissionDiff, check_limits_within, check_subset, limits_for, normalized,
};
use crate::records::{
    KIND_COMPONENT, KIND_PLUGIN, KIND_PUBLISHER, PluginRecord, PublisherRecord, QuarantineRecord,
    VersionRecord,
};
use crate::views::{
    Subjects, Ungranted, View, ViewError, ViewRequest, build_view, trait_kinds, ungranted,
    unknown_segments,
};

/// Why the registry refused an operation. Each names what was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The bundle failed verification; nothing was stored.
    #[error("the bundle is refused ({reason}): {error}", reason = .0.reason(), error = .0)]
    Bundle(#[from] BundleError),
    #[error(
        "the bundle is unsigned, and this server does not accept unsigned bundles; sign it \
         (`tessera bundle sign`), or, for development only, start the server with \
         --allow-unsigned-bundles"
    )]
    UnsignedNotAllowed,
    /// The runtime refused a component (type-check, imports against the
    /// grants, limits over the caps, describe failed).
    #[error("plugin `{plugin}` is refused: {error}")]
    Install { plugin: String, error: InstallError },
    /// What a component declares does not match what its bundle says.
    #[error("plugin `{plugin}` is refused: {detail}")]
    Inconsistent { plugin: String, detail: String },
    #[error("the tenant already has a plugin named `{name}`; upload a new version with upgrade")]
    Taken { name: String },
    #[error("the tenant has no plugin named `{name}`")]
    UnknownPlugin { name: String },
    /// An upgrade signed by another key than the installed plugin's.
    #[error(
        "plugin `{name}` was installed from bundles signed by {installed}; this one is signed \
         by {offered}. Another publisher cannot upgrade it (it would inherit its grant and \
         state): remove it first, or install the bundle under another name"
    )]
    PublisherChanged {
        name: String,
        installed: String,
        offered: String,
    },
    #[error("the bundle holds no plugin named `{name}`")]
    NotInBundle { name: String },
    #[error("plugin `{name}` has no version waiting for approval")]
    NothingPending { name: String },
    #[error(
        "the version of plugin `{name}` waiting for approval ({pending}) is not the one that \
         was reviewed; review it again (`tessera plugin show {name}`)"
    )]
    PendingChanged { name: String, pending: String },
    #[error("plugin `{name}` has no earlier approved version to roll back to")]
    NoEarlierVersion { name: String },
    /// Rejecting the only version would leave a plugin with none.
    #[error(
        "plugin `{name}` has no approved version to keep: remove it instead of rejecting its \
         install (`tessera plugin remove {name}`, `DELETE /v1/plugins/{name}`)"
    )]
    NothingToKeep { name: String },
    #[error("plugin `{name}` is built in; it cannot be {what}")]
    BuiltIn { name: String, what: &'static str },
    /// The grant is not part of the request, or limits above those asked for.
    #[error("the grant is refused: {0}")]
    Grant(String),
    #[error("plugin `{name}` is quarantined: {reason}")]
    Quarantined { name: String, reason: String },
    #[error("plugin `{name}` is not quarantined")]
    NotQuarantined { name: String },
    #[error("no trusted publisher key has the id `{key_id}`")]
    UnknownKey { key_id: String },
    /// A publisher key or its name could not be read.
    #[error("the publisher key is refused: {0}")]
    BadKey(String),
    /// Parameters whose plan reads what the plugin may not read (not
    /// granted, or not in the tenant's schema): it would get empty columns.
    #[error(
        "plugin `{plugin}` may not read what these parameters need: {missing}; those columns \
         would be empty (an operator grants traits, event types and PII classes)"
    )]
    NotGranted { plugin: String, missing: String },
    /// The view for a call could not be built (a purpose not granted, …).
    #[error(transparent)]
    View(#[from] ViewError),
    /// The plugin's call failed (its error, a trap, a refusal).
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("the store failed: {0}")]
    Store(String),
    /// Something the tenant keeps uses the plugin ([`RemovalListener`]).
    #[error("plugin `{name}` is used by {}; {remedy}", by.join(", "))]
    InUse {
        name: String,
        /// What uses it, each in a few words (`campaign spring (running)`).
        by: Vec<String>,
        /// What to do first.
        remedy: String,
    },
}

/// Asked before a plugin is removed, by a service that keeps things which
/// call it (a campaign runs a strategy plugin): an error refuses the
/// removal, and nothing of it happens. Called under the registry's
/// lifecycle lock: a listener reads its own records and answers; it never
/// calls the registry back.
pub trait RemovalListener: Send + Sync + std::fmt::Debug {
    fn removing(&self, tenant: &str, plugin: &str) -> Result<(), RegistryError>;
}

impl From<tessera_store::StoreError> for RegistryError {
    fn from(error: tessera_store::StoreError) -> Self {
        RegistryError::Store(error.to_string())
    }
}

/// Where a running plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// One of Tessera's own plugins, installed by the server for every tenant.
    BuiltIn,
    /// A bundle: who published it and which key signed it (`None`: unsigned,
    /// accepted under the development flag).
    Bundle {
        publisher: String,
        key_id: Option<String>,
        bundle_version: String,
    },
}

/// A plugin that runs: what the host calls, with what it was granted.
#[derive(Debug, Clone)]
pub struct Live {
    pub tenant: String,
    pub name: String,
    pub installation: String,
    pub plugin: Plugin,
    pub granted: Permissions,
    pub source: Source,
    pub installed_at_ms: i64,
    /// For a bundle's plugin: its installation and the version record it
    /// was loaded from, to tell whether the stored record moved on
    /// ([`Registry::refresh`]).
    loaded_from: Option<Box<(String, VersionRecord)>>,
}

/// What a segment plugin reads for one set of parameters
/// ([`Registry::plan`]), and what of it the grant does not cover.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The plugin's name.
    pub plugin: String,
    /// The parameters as validated, with defaults filled in: what to save.
    pub params: Vec<FieldValue>,
    /// The columns a call with them gets, in order.
    pub needs: Needs,
    /// What of `needs` is not granted, fields first: those columns would
    /// arrive with every row missing.
    pub ungranted: Vec<Ungranted>,
}

impl Planned {
    /// Whether the grant covers everything the parameters read.
    pub fn is_granted(&self) -> bool {
        self.ungranted.is_empty()
    }

    /// The plan, if the grant covers it; else [`RegistryError::NotGranted`]
    /// naming each field and aggregate that is not covered and why. For
    /// refusing to save parameters the plugin could only half evaluate.
    pub fn require_granted(self) -> Result<Planned, RegistryError> {
        if self.is_granted() {
            return Ok(self);
        }
        Err(RegistryError::NotGranted {
            missing: self
                .ungranted
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            plugin: self.plugin,
        })
    }
}

impl Live {
    /// Whether the runtime quarantined it for trapping too often.
    pub fn auto_quarantined(&self) -> bool {
        self.plugin.is_quarantined()
    }
}

/// A segment plugin's verdict on a page of the tenant's people
/// ([`Evaluation::page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvaluatedPage {
    /// (subject, member) per person of the page.
    pub memberships: Vec<(String, bool)>,
    /// Where the next page starts; `None`: this was the last.
    pub next: Option<String>,
}

/// A segment plugin's evaluation of one job's pages ([`Registry::evaluation`]).
/// Holds a pool slot while it holds an instance: drop it when the job ends.
#[derive(Debug)]
pub struct Evaluation<'r> {
    registry: &'r Registry,
    tenant: String,
    name: String,
    purpose: String,
    /// The parameters as the job gave them, validated again for another
    /// version of the plugin.
    given: Vec<FieldValue>,
    live: Live,
    /// `live` was resolved by [`Registry::evaluation`] and no page has run
    /// yet: the first page need not ask the registry again.
    fresh: bool,
    params: Vec<FieldValue>,
    evaluation: tessera_runtime::Evaluation,
}

impl Evaluation<'_> {
    /// A page of the tenant's people, after the subject `after` and up to
    /// the subject `until` (inclusive; `None`: to the end).
    pub fn page(
        &mut self,
        after: Option<&str>,
        until: Option<&str>,
        limit: usize,
    ) -> Result<EvaluatedPage, RegistryError> {
        let (memberships, view) = self.view(Subjects::Page {
            after,
            until,
            limit,
        })?;
        Ok(EvaluatedPage {
            memberships,
            next: view.next().map(str::to_owned),
        })
    }

    /// The memberships of `subjects` by subject id (the plugin saw
    /// pseudonyms), and the view it saw.
    fn view(
        &mut self,
        subjects: Subjects<'_>,
    ) -> Result<(Vec<(String, bool)>, View), RegistryError> {
        let registry = self.registry;
        // Every later page asks the registry again, as a call of its own
        // would: a plugin quarantined or removed since the last page is
        // refused, and another version or grant gets an evaluation of its own.
        if !std::mem::take(&mut self.fresh) {
            let live = registry.callable(&self.tenant, &self.name)?;
            if !live.plugin.is(&self.live.plugin) || live.granted != self.live.granted {
                let params = live.plugin.validate(&self.given)?;
                self.evaluation = live.plugin.evaluation(&params)?;
                self.params = params;
                self.live = live;
            }
        }
        let view = registry.view_of(
            &self.tenant,
            &self.live,
            &self.params,
            &self.purpose,
            subjects,
        )?;
        // The plugin may plan again while evaluating (the SDK does, to name
        // the columns): it learns the same trait kinds as when it planned.
        let scope = view
            .scope()
            .with_trait_kinds(registry.schema_scope_kinds(&self.tenant, &self.live)?);
        let out = self.evaluation.evaluate_with(&view.batch, &scope)?.value;
        let memberships = view
            .subjects()
            .iter()
            .zip(&out.member)
            .map(|(subject, member)| (subject.clone(), *member == 1))
            .collect();
        Ok((memberships, view))
    }
}

/// One plugin of a tenant as the registry knows it: its stored record (none
/// for built-in plugins), what runs now, and why it does not run if it
/// should.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub record: Option<PluginRecord>,
    pub live: Option<Live>,
    /// The approved version could not be loaded at start (the error).
    pub load_error: Option<String>,
}

impl Entry {
    /// The pending version and what approving it would change from the
    /// running version's grant (from nothing for a first install).
    pub fn pending(&self) -> Option<(&VersionRecord, PermissionDiff)> {
        let record = self.record.as_ref()?;
        let pending = &record.versions[record.pending?];
        let (from, from_limits) = match record.active.map(|i| &record.versions[i]) {
            Some(active) => (
                active.granted.clone().unwrap_or_default(),
                limits_for(
                    active
                        .granted_limits
                        .as_ref()
                        .unwrap_or(&active.requested_limits),
                ),
            ),
            None => (Permissions::default(), limits_for(&Default::default())),
        };
        let diff = PermissionDiff::between(
            &from,
            &from_limits,
            &pending.requested,
            &limits_for(&pending.requested_limits),
        );
        Some((pending, diff))
    }
}

/// Tenants' plugins: stored records and the plugins loaded from them. Cheap
/// to clone; clones share everything.
///
/// Operations that install, approve or call plugins block the thread
/// (compiling, `describe`): run them on a blocking pool, never on an async
/// runtime's threads.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runtime: Runtime,
    vault: Arc<Vault>,
    allow_unsigned: bool,
    /// Address ranges connectors may reach although they are internal
    /// (loopback, private, link-local): the operator's explicit allowance.
    outbound_allow: Vec<IpNet>,
    live: RwLock<BTreeMap<(String, String), Live>>,
    load_errors: RwLock<BTreeMap<(String, String), String>>,
    /// Serialises lifecycle changes (they read, check and write records).
    lifecycle: Mutex<()>,
    removal_listeners: RwLock<Vec<Arc<dyn RemovalListener>>>,
}

/// Another node changed the tenant's plugins (or may have): load and unload
/// what the stored records say now.
impl tessera_vault::RemoteChangeListener for Registry {
    fn tenant_changed(&self, tenant: &str) {
        if let Err(error) = self.refresh(tenant) {
            tracing::error!(%tenant, %error, "cannot refresh the plugins after a change elsewhere");
        }
    }
}

/// Where each plugin's state lives: the vault's own store.
fn state_store(vault: &Vault) -> Arc<dyn StateStore> {
    let store: Arc<dyn Store> = vault.store().clone();
    store
}

/// The runtime grants (what gets linked) for a permission grant: the state
/// quota, and for granted outbound hosts the `http` import with the
/// operator's address allowance. A host the runtime cannot grant (a
/// wildcard) is refused with the reason.
pub fn runtime_grants(granted: &Permissions, allow: &[IpNet]) -> Result<Grants, String> {
    let hosts = granted
        .outbound_hosts
        .iter()
        .map(|host| {
            host.parse::<GrantedHost>()
                .map_err(|e| format!("outbound host `{host}` cannot be granted: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outbound = (!hosts.is_empty()).then(|| Outbound {
        hosts,
        allow: allow.to_vec(),
        ..Outbound::default()
    });
    Ok(Grants {
        state_quota: granted.state_quota,
        outbound,
    })
}

fn runtime_kind(kind: Kind) -> PluginKind {
    match kind {
        Kind::Connector => PluginKind::Connector,
        Kind::Segment => PluginKind::Segment,
        Kind::Strategy => PluginKind::Strategy,
    }
}

fn random_installation() -> Result<String, RegistryError> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| RegistryError::Store(format!("no randomness for an installation id: {e}")))?;
    Ok(format!("p-{}", hex::encode(bytes)))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, RegistryError> {
    serde_json::to_vec(value).map_err(|e| RegistryError::Store(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::Store(format!("a stored {what} does not decode: {e}")))
}

impl Registry {
    /// A registry over `vault`'s store. `allow_unsigned` is the development
    /// flag: unsigned bundles are accepted when an install asks for it.
    pub fn new(runtime: Runtime, vault: Arc<Vault>, allow_unsigned: bool) -> Self {
        if allow_unsigned {
            tracing::warn!(
                "DEVELOPMENT MODE: unsigned plugin bundles are accepted; never run a production \
                 server with --allow-unsigned-bundles"
            );
        }
        Registry {
            inner: Arc::new(Inner {
                runtime,
                vault,
                allow_unsigned,
                outbound_allow: Vec::new(),
                live: RwLock::default(),
                load_errors: RwLock::default(),
                lifecycle: Mutex::new(()),
                removal_listeners: RwLock::default(),
            }),
        }
    }

    /// Adds a listener asked before every removal ([`RemovalListener`]).
    pub fn on_removal(&self, listener: Arc<dyn RemovalListener>) {
        self.inner
            .removal_listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// Lets connectors reach these internal address ranges (e.g.
    /// `127.0.0.1/32` for a partner API on the same host). Call before the
    /// registry is cloned.
    pub fn with_outbound_allowance(mut self, ranges: Vec<IpNet>) -> Self {
        if !ranges.is_empty() {
            tracing::warn!(
                ranges = ?ranges,
                "connectors may reach these internal address ranges (operator allowance)"
            );
        }
        Arc::get_mut(&mut self.inner)
            .expect("with_outbound_allowance is called before the registry is shared")
            .outbound_allow = ranges;
        self
    }

    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Whether unsigned bundles may be installed (the development flag).
    pub fn allows_unsigned(&self) -> bool {
        self.inner.allow_unsigned
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.inner.vault.store()
    }

    fn now(&self) -> i64 {
        self.inner.vault.now_ms()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Audits a lifecycle change. Every change is audited once it is
    /// stored, so this is also where the other nodes sharing the store are
    /// told to [`refresh`](Registry::refresh) the tenant.
    fn audit(&self, tenant: &str, entry: AuditEntry) -> Result<(), RegistryError> {
        let audited = self.inner.vault.record_admin_action(tenant, entry);
        self.inner.vault.announce_change_or_log(tenant);
        audited?;
        Ok(())
    }

    // ---- trusted publishers ---------------------------------------------------

    /// Trusts a publisher key for `tenant` (again: renames it).
    pub fn trust(
        &self,
        tenant: &str,
        public_key: &str,
        name: &str,
        actor: &Actor,
    ) -> Result<PublisherRecord, RegistryError> {
        let key = PublicKey::parse(public_key.trim())
            .map_err(|e| RegistryError::BadKey(e.to_string()))?;
        let name = name.trim();
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(RegistryError::BadKey(
                "a publisher's name must be 1-128 printable characters".into(),
            ));
        }
        let record = PublisherRecord {
            key_id: key.key_id(),
            public_key: key.to_string(),
            name: name.to_string(),
            added_at_ms: self.now(),
            added_by: actor.id.clone(),
        };
        self.store()
            .put_document(tenant, KIND_PUBLISHER, &record.key_id, &to_json(&record)?)?;
        self.audit(
            tenant,
            AuditEntry {
                detail: Some(format!("key {} ({})", record.key_id, record.name)),
                ..AuditEntry::new(actor, "publisher.trust")
            },
        )?;
        self.store().flush()?;
        Ok(record)
    }

    /// The tenant's trusted publisher keys, by key id.
    pub fn publishers(&self, tenant: &str) -> Result<Vec<PublisherRecord>, RegistryError> {
        self.all_documents(tenant, KIND_PUBLISHER, "publisher key")
    }

    /// Every document of a kind of the tenant, decoded, in id order.
    fn all_documents<T: serde::de::DeserializeOwned>(
        &self,
        tenant: &str,
        kind: &str,
        what: &str,
    ) -> Result<Vec<T>, RegistryError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store().documents(tenant, kind, after.as_deref(), 64)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, bytes) in &page {
                out.push(from_json(bytes, what)?);
            }
        }
        Ok(out)
    }

    /// Stops trusting a key. Plugins installed from bundles it signed keep
    /// running; new bundles signed by it are refused.
    pub fn distrust(&self, tenant: &str, key_id: &str, actor: &Actor) -> Result<(), RegistryError> {
        if !self
            .store()
            .delete_document(tenant, KIND_PUBLISHER, key_id)?
        {
            return Err(RegistryError::UnknownKey {
                key_id: key_id.to_string(),
            });
        }
        self.audit(
            tenant,
            AuditEntry {
                detail: Some(format!("key {key_id}")),
                ..AuditEntry::new(actor, "publisher.distrust")
            },
        )?;
        self.store().flush()?;
        Ok(())
    }

    fn trusted_keys(&self, tenant: &str) -> Result<Vec<PublicKey>, RegistryError> {
        self.publishers(tenant)?
            .iter()
            .map(|p| PublicKey::parse(&p.public_key).map_err(RegistryError::from))
            .collect()
    }

    // ---- records ---------------------------------------------------------------

    fn record(&self, tenant: &str, name: &str) -> Result<Option<PluginRecord>, RegistryError> {
        self.store()
            .document(tenant, KIND_PLUGIN, name)?
            .map(|bytes| from_json(&bytes, "plugin record"))
            .transpose()
    }

    fn put_record(&self, tenant: &str, record: &PluginRecord) -> Result<(), RegistryError> {
        self.store()
            .put_document(tenant, KIND_PLUGIN, &record.name, &to_json(record)?)?;
        Ok(())
    }

    fn records(&self, tenant: &str) -> Result<Vec<PluginRecord>, RegistryError> {
        self.all_documents(tenant, KIND_PLUGIN, "plugin record")
    }

    fn component(&self, tenant: &str, sha256: &str) -> Result<Vec<u8>, RegistryError> {
        self.store()
            .document(tenant, KIND_COMPONENT, sha256)?
            .ok_or_else(|| RegistryError::Store(format!("component {sha256} is missing")))
    }

    // ---- loading and calling ---------------------------------------------------

    /// Compiles and links a component for `tenant` with a grant, its state
    /// in the store under `installation`. Nothing is stored or made live.
    #[allow(clippy::too_many_arguments)]
    fn link(
        &self,
        tenant: &str,
        installation: &str,
        name: &str,
        kind: Kind,
        bytes: &[u8],
        granted: &Permissions,
        limits: Limits,
    ) -> Result<Plugin, RegistryError> {
        let state = state_store(&self.inner.vault);
        self.link_with(
            tenant,
            installation,
            name,
            kind,
            bytes,
            granted,
            limits,
            state,
            false,
        )
    }

    /// [`Registry::link`] for a plugin that is only being checked: what
    /// `describe` might write goes to a throwaway store, and its `http`
    /// import is linked but refuses every request, so a component that is
    /// not approved leaves nothing behind and reaches no host.
    #[allow(clippy::too_many_arguments)]
    fn link_for_check(
        &self,
        tenant: &str,
        name: &str,
        kind: Kind,
        bytes: &[u8],
        requested: &Permissions,
        limits: Limits,
    ) -> Result<Plugin, RegistryError> {
        let scratch: Arc<dyn StateStore> = Arc::new(MemoryState::new());
        self.link_with(
            tenant, "check", name, kind, bytes, requested, limits, scratch, true,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn link_with(
        &self,
        tenant: &str,
        installation: &str,
        name: &str,
        kind: Kind,
        bytes: &[u8],
        granted: &Permissions,
        limits: Limits,
        state: Arc<dyn StateStore>,
        checking: bool,
    ) -> Result<Plugin, RegistryError> {
        let mut grants = runtime_grants(granted, &self.inner.outbound_allow).map_err(|detail| {
            RegistryError::Inconsistent {
                plugin: name.to_string(),
                detail,
            }
        })?;
        if let Some(outbound) = grants.outbound.as_mut() {
            outbound.paused = checking;
        }
        self.inner
            .runtime
            .install(
                bytes,
                InstallRequest {
                    kind: runtime_kind(kind),
                    grants,
                    limits,
                    tenant: tenant.to_string(),
                    installation: installation.to_string(),
                    state,
                },
            )
            .map_err(|error| RegistryError::Install {
                plugin: name.to_string(),
                error,
            })
    }

    fn make_live(&self, tenant: &str, record: &PluginRecord, plugin: Plugin) -> Live {
        let version = &record.versions[record.active.expect("an active version")];
        Live {
            tenant: tenant.to_string(),
            name: record.name.clone(),
            installation: record.installation.clone(),
            plugin,
            granted: version.granted.clone().unwrap_or_default(),
            source: Source::Bundle {
                publisher: version.publisher.clone(),
                key_id: version.key_id.clone(),
                bundle_version: version.bundle_version.clone(),
            },
            installed_at_ms: version.approved_at_ms.unwrap_or(version.uploaded_at_ms),
            loaded_from: Some(Box::new((record.installation.clone(), version.clone()))),
        }
    }

    fn set_live(&self, live: Live) {
        let key = (live.tenant.clone(), live.name.clone());
        self.inner
            .load_errors
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        self.inner
            .live
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, live);
    }

    /// The running plugin `name` of `tenant`, quarantined or not.
    fn live(&self, tenant: &str, name: &str) -> Option<Live> {
        self.inner
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(tenant.to_string(), name.to_string()))
            .cloned()
    }

    /// Whether `tenant` has a plugin called `name`: running (built in or
    /// approved) or stored (pending too).
    fn taken(&self, tenant: &str, name: &str) -> Result<bool, RegistryError> {
        Ok(self.live(tenant, name).is_some() || self.record(tenant, name)?.is_some())
    }

    fn take_live(&self, tenant: &str, name: &str) -> Option<Live> {
        self.inner
            .live
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(tenant.to_string(), name.to_string()))
    }

    /// Links the approved version of a record.
    fn load_record(&self, tenant: &str, record: &PluginRecord) -> Result<Plugin, RegistryError> {
        let index = record.active.ok_or_else(|| RegistryError::NothingPending {
            name: record.name.clone(),
        })?;
        let version = &record.versions[index];
        let bytes = self.component(tenant, &version.component)?;
        let granted = version.granted.clone().unwrap_or_default();
        let limits = limits_for(
            version
                .granted_limits
                .as_ref()
                .unwrap_or(&version.requested_limits),
        );
        self.link(
            tenant,
            &record.installation,
            &record.name,
            record.kind,
            &bytes,
            &granted,
            limits,
        )
    }

    /// Loads every tenant's approved plugins (at server start). A plugin
    /// that fails to load is logged and reported in its status; the others
    /// load. Returns `(loaded, failed)`.
    pub fn load_all(&self) -> Result<(usize, usize), RegistryError> {
        let (mut loaded, mut failed) = (0, 0);
        for tenant in self.inner.vault.tenant_ids()? {
            for record in self.records(&tenant)? {
                if record.active.is_none() {
                    continue;
                }
                match self.load_record(&tenant, &record) {
                    Ok(plugin) => {
                        let live = self.make_live(&tenant, &record, plugin);
                        self.set_live(live);
                        loaded += 1;
                    }
                    Err(error) => {
                        tracing::error!(%tenant, plugin = %record.name, %error, "plugin not loaded");
                        self.inner
                            .load_errors
                            .write()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert((tenant.clone(), record.name.clone()), error.to_string());
                        failed += 1;
                    }
                }
            }
        }
        Ok((loaded, failed))
    }

    /// Installs one of Tessera's own plugins for `tenant`, granted what it
    /// declares; kept in memory only (the server installs them at start).
    pub fn install_builtin(
        &self,
        tenant: &str,
        bytes: &[u8],
        kind: Kind,
        state_quota: u64,
    ) -> Result<Live, RegistryError> {
        let probe_grant = Permissions {
            state_quota,
            ..Permissions::default()
        };
        self.install_builtin_as(tenant, bytes, kind, probe_grant, |manifest| Permissions {
            traits: manifest.fields.iter().map(|f| f.name.clone()).collect(),
            events: manifest
                .aggregates
                .iter()
                .map(|a| a.event_type.clone())
                .collect(),
            pii: Vec::new(),
            purposes: manifest.purposes.clone(),
            outbound_hosts: Vec::new(),
            state_quota,
        })
    }

    /// Installs one of Tessera's own plugins for `tenant` with the grant
    /// `granted` instead of what it declares: for a plugin whose columns
    /// come from its parameters (the rules plugin declares none), which
    /// the server grants every standard trait and event type (`*`).
    pub fn install_builtin_granted(
        &self,
        tenant: &str,
        bytes: &[u8],
        kind: Kind,
        granted: Permissions,
    ) -> Result<Live, RegistryError> {
        self.install_builtin_as(tenant, bytes, kind, granted.clone(), |_| granted.clone())
    }

    fn install_builtin_as(
        &self,
        tenant: &str,
        bytes: &[u8],
        kind: Kind,
        probe_grant: Permissions,
        grant: impl FnOnce(&Manifest) -> Permissions,
    ) -> Result<Live, RegistryError> {
        // Linked once to read its manifest, with what it will be granted
        // as far as that is known before the manifest is.
        let probe = self.link_for_check(
            tenant,
            "built-in plugin",
            kind,
            bytes,
            &probe_grant,
            Limits::default(),
        )?;
        let manifest = &probe.info().manifest;
        let name = manifest.name.clone();
        if self.taken(tenant, &name)? {
            return Err(RegistryError::Taken { name });
        }
        let granted = grant(manifest);
        let installation = format!("builtin-{name}");
        let plugin = self.link(
            tenant,
            &installation,
            &name,
            kind,
            bytes,
            &granted,
            Limits::default(),
        )?;
        let live = Live {
            tenant: tenant.to_string(),
            name,
            installation,
            plugin,
            granted: normalized(&granted),
            source: Source::BuiltIn,
            installed_at_ms: self.now(),
            loaded_from: None,
        };
        self.set_live(live.clone());
        Ok(live)
    }

    /// Brings this process's loaded plugins of `tenant` in line with the
    /// stored records, which another node sharing the store may have
    /// changed: a plugin approved, upgraded or rolled back there is loaded
    /// (compiled once per content hash by the runtime's cache, from the
    /// component in the store), one removed there is unloaded. Built-in
    /// plugins are left alone. A plugin that fails to load keeps its
    /// error in its status, as at start.
    pub fn refresh(&self, tenant: &str) -> Result<(), RegistryError> {
        let _guard = self.lock();
        let records = self.records(tenant)?;
        let mut stored = BTreeSet::new();
        for record in &records {
            stored.insert(record.name.clone());
            let Some(active) = record.active else {
                if self
                    .live(tenant, &record.name)
                    .is_some_and(|live| live.source != Source::BuiltIn)
                {
                    self.take_live(tenant, &record.name);
                }
                continue;
            };
            let current = self.live(tenant, &record.name).is_some_and(|live| {
                live.loaded_from
                    .as_deref()
                    .is_some_and(|(installation, version)| {
                        *installation == record.installation && *version == record.versions[active]
                    })
            });
            if !current {
                self.load_stored(tenant, record);
            }
        }
        let gone: Vec<String> = self
            .inner
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|((t, name), live)| {
                t == tenant && live.source != Source::BuiltIn && !stored.contains(name)
            })
            .map(|((_, name), _)| name.clone())
            .collect();
        for name in gone {
            self.take_live(tenant, &name);
        }
        Ok(())
    }

    /// Loads a stored record's approved version and makes it live, or
    /// keeps the error in its status.
    fn load_stored(&self, tenant: &str, record: &PluginRecord) {
        match self.load_record(tenant, record) {
            Ok(plugin) => {
                let live = self.make_live(tenant, record, plugin);
                self.set_live(live);
            }
            Err(error) => {
                tracing::error!(%tenant, plugin = %record.name, %error, "plugin not loaded");
                self.inner
                    .load_errors
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert((tenant.to_string(), record.name.clone()), error.to_string());
            }
        }
    }

    /// The running plugin `name` of `tenant`, for a call: refused while it
    /// is quarantined (by an operator or for trapping). A plugin approved
    /// on another node and not loaded here yet is loaded now.
    pub fn callable(&self, tenant: &str, name: &str) -> Result<Live, RegistryError> {
        let live = match self.live(tenant, name) {
            Some(live) => Some(live),
            // A name no record can have (empty, too long) names no plugin:
            // it is unknown, not a store error.
            None if tessera_store::check_id("plugin", name).is_err() => None,
            None => match self.record(tenant, name)? {
                Some(record) if record.active.is_some() => {
                    self.load_stored(tenant, &record);
                    self.live(tenant, name)
                }
                _ => None,
            },
        };
        let Some(live) = live else {
            return Err(RegistryError::UnknownPlugin {
                name: name.to_string(),
            });
        };
        if let Some(q) = self.record(tenant, name)?.and_then(|r| r.quarantine) {
            return Err(RegistryError::Quarantined {
                name: name.to_string(),
                reason: q.reason,
            });
        }
        if live.auto_quarantined() {
            return Err(RegistryError::Quarantined {
                name: name.to_string(),
                reason: "it trapped too often".into(),
            });
        }
        Ok(live)
    }

    /// The view a call of plugin `name` with `params` gets for `purpose`:
    /// the running plugin (refused while quarantined) and its data, built
    /// now from its grant, so that a consent revoked or a grant changed
    /// applies to this very call. `params` are the resolved parameters
    /// ([`Plugin::validate`], or as saved): the view serves the columns the
    /// plugin plans for them ([`Plugin::plan`]; its manifest's if it does
    /// not plan). The view's `plugin.read` audit entry is written.
    pub fn view(
        &self,
        tenant: &str,
        name: &str,
        params: &[FieldValue],
        purpose: &str,
        subjects: Subjects<'_>,
    ) -> Result<(Live, View), RegistryError> {
        let live = self.callable(tenant, name)?;
        let view = self.view_of(tenant, &live, params, purpose, subjects)?;
        Ok((live, view))
    }

    /// The view of `subjects` for a call of `live` with resolved `params`.
    fn view_of(
        &self,
        tenant: &str,
        live: &Live,
        params: &[FieldValue],
        purpose: &str,
        subjects: Subjects<'_>,
    ) -> Result<View, RegistryError> {
        let needs = live
            .plugin
            .plan_with(params, &self.schema_scope(tenant, live)?)?
            .value;
        Ok(build_view(
            &self.inner.vault,
            &ViewRequest {
                tenant,
                plugin: live.plugin.info(),
                needs: &needs,
                installation: &live.installation,
                granted: &live.granted,
                purpose,
                now_ms: self.now(),
            },
            subjects,
        )?)
    }

    /// What `tessera:plan/schema` answers `live` in `tenant`: the kinds of
    /// the schema's traits it may read.
    fn schema_scope_kinds(&self, tenant: &str, live: &Live) -> Result<TraitKinds, RegistryError> {
        let settings = self.inner.vault.settings(tenant)?;
        Ok(trait_kinds(&settings, &live.granted))
    }

    /// A call scope in which `live` learns the trait kinds of `tenant`.
    fn schema_scope(&self, tenant: &str, live: &Live) -> Result<CallScope, RegistryError> {
        Ok(CallScope::new().with_trait_kinds(self.schema_scope_kinds(tenant, live)?))
    }

    /// What segment plugin `name` reads for `params`: the parameters
    /// validated (against the schema, then by the plugin), the columns it
    /// plans for them (its manifest's if it does not plan), and which of
    /// those its grant does not cover, each with the reason. Saving a
    /// segment refuses parameters that read what is not granted
    /// ([`Planned::require_granted`]); nothing is read from the vault.
    pub fn plan(
        &self,
        tenant: &str,
        name: &str,
        params: &[FieldValue],
    ) -> Result<Planned, RegistryError> {
        let live = self.callable(tenant, name)?;
        let params = live.plugin.validate(params)?;
        let settings = self.inner.vault.settings(tenant)?;
        let scope = CallScope::new().with_trait_kinds(trait_kinds(&settings, &live.granted));
        let needs = live.plugin.plan_with(&params, &scope)?.value;
        let mut ungranted = ungranted(&settings, &live.granted, &needs);
        ungranted.extend(unknown_segments(&self.inner.vault, tenant, &needs)?);
        Ok(Planned {
            plugin: live.name,
            params,
            needs,
            ungranted,
        })
    }

    /// Evaluates segment plugin `name` for `purpose` over `subjects`: the
    /// parameters are validated, the plugin plans its columns for them, and
    /// it evaluates the view built from that plan. The memberships by
    /// subject id (the plugin saw pseudonyms).
    pub fn evaluate(
        &self,
        tenant: &str,
        name: &str,
        params: &[FieldValue],
        purpose: &str,
        subjects: Subjects<'_>,
    ) -> Result<Vec<(String, bool)>, RegistryError> {
        self.evaluation(tenant, name, params, purpose)?
            .view(subjects)
            .map(|(memberships, _)| memberships)
    }

    /// Segment plugin `name`'s evaluation for `purpose` of one job's pages
    /// (a recompute, a preview): the parameters validated once, and one
    /// instance serving the pages in turn ([`tessera_runtime::Evaluation`]).
    pub fn evaluation(
        &self,
        tenant: &str,
        name: &str,
        params: &[FieldValue],
        purpose: &str,
    ) -> Result<Evaluation<'_>, RegistryError> {
        let live = self.callable(tenant, name)?;
        let validated = live.plugin.validate(params)?;
        let evaluation = live.plugin.evaluation(&validated)?;
        Ok(Evaluation {
            registry: self,
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            purpose: purpose.to_owned(),
            given: params.to_vec(),
            live,
            fresh: true,
            params: validated,
            evaluation,
        })
    }

    /// Every plugin of `tenant`, by name.
    pub fn entries(&self, tenant: &str) -> Result<Vec<Entry>, RegistryError> {
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        for record in self.records(tenant)? {
            entries.insert(
                record.name.clone(),
                Entry {
                    name: record.name.clone(),
                    record: Some(record),
                    live: None,
                    load_error: None,
                },
            );
        }
        for ((t, name), live) in self
            .inner
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if t == tenant {
                entries
                    .entry(name.clone())
                    .or_insert_with(|| Entry {
                        name: name.clone(),
                        record: None,
                        live: None,
                        load_error: None,
                    })
                    .live = Some(live.clone());
            }
        }
        for ((t, name), error) in self
            .inner
            .load_errors
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if let (true, Some(entry)) = (t == tenant, entries.get_mut(name)) {
                entry.load_error = Some(error.clone());
            }
        }
        Ok(entries.into_values().collect())
    }

    /// One plugin of `tenant`.
    pub fn entry(&self, tenant: &str, name: &str) -> Result<Entry, RegistryError> {
        self.entries(tenant)?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| RegistryError::UnknownPlugin {
                name: name.to_string(),
            })
    }

    /// Every running plugin of every tenant (for metrics).
    pub fn all_live(&self) -> Vec<Live> {
        self.inner
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    // ---- install, approve, upgrade ---------------------------------------------

    /// Reads and verifies a bundle for `tenant`.
    fn verify(
        &self,
        tenant: &str,
        bytes: &[u8],
        allow_unsigned: bool,
    ) -> Result<(Bundle, tessera_bundle::Verified), RegistryError> {
        let bundle = Bundle::read(bytes)?;
        let trusted = self.trusted_keys(tenant)?;
        if bundle.signature().is_none() && allow_unsigned && !self.inner.allow_unsigned {
            return Err(RegistryError::UnsignedNotAllowed);
        }
        let verified = if allow_unsigned && self.inner.allow_unsigned {
            bundle.verify_allowing_unsigned(&trusted)?
        } else {
            bundle.verify(&trusted)?
        };
        if verified.is_unsigned() {
            tracing::warn!(
                %tenant,
                publisher = %verified.manifest.publisher,
                "DEVELOPMENT MODE: accepting an UNSIGNED plugin bundle"
            );
        }
        Ok((bundle, verified))
    }

    /// Type-checks one plugin of a verified bundle against what it asked
    /// for, and checks that what it declares matches its bundle entry.
    fn check_entry(
        &self,
        tenant: &str,
        entry: &PluginEntry,
        bytes: &[u8],
    ) -> Result<Plugin, RegistryError> {
        let plugin = self.link_for_check(
            tenant,
            &entry.name,
            entry.kind,
            bytes,
            &entry.permissions,
            limits_for(&entry.limits),
        )?;
        let manifest = &plugin.info().manifest;
        let inconsistent = |detail: String| RegistryError::Inconsistent {
            plugin: entry.name.clone(),
            detail,
        };
        if manifest.name != entry.name {
            return Err(inconsistent(format!(
                "the component calls itself `{}`, but the bundle names it `{}`",
                manifest.name, entry.name
            )));
        }
        let requested = &entry.permissions;
        if let Some(field) = manifest
            .fields
            .iter()
            .find(|f| !requested.traits.contains(&f.name))
        {
            return Err(inconsistent(format!(
                "it reads trait `{}`, which its bundle does not ask for",
                field.name
            )));
        }
        if let Some(aggregate) = manifest
            .aggregates
            .iter()
            .find(|a| !requested.events.contains(&a.event_type))
        {
            return Err(inconsistent(format!(
                "it aggregates events `{}`, which its bundle does not ask for",
                aggregate.event_type
            )));
        }
        if let Some(purpose) = manifest
            .purposes
            .iter()
            .find(|p| !requested.purposes.contains(p))
        {
            return Err(inconsistent(format!(
                "it works for purpose `{purpose}`, which its bundle does not ask for"
            )));
        }
        Ok(plugin)
    }

    fn version_record(
        verified: &tessera_bundle::Verified,
        bundle: &Bundle,
        entry: &PluginEntry,
        plugin: &Plugin,
        now: i64,
        actor: &Actor,
    ) -> VersionRecord {
        VersionRecord {
            version: plugin.info().manifest.version.clone(),
            bundle_version: verified.manifest.version.clone(),
            publisher: verified.manifest.publisher.clone(),
            key_id: verified.publisher_key.as_ref().map(PublicKey::key_id),
            bundle_digest: hex::encode(bundle.digest()),
            component: entry.component.sha256.clone(),
            wit_version: entry.wit_version.clone(),
            description: entry.description.clone(),
            requested: normalized(&entry.permissions),
            requested_limits: entry.limits.clone(),
            granted: None,
            granted_limits: None,
            uploaded_at_ms: now,
            uploaded_by: actor.id.clone(),
            approved_at_ms: None,
            approved_by: None,
        }
    }

    fn component_bytes<'b>(bundle: &'b Bundle, entry: &PluginEntry) -> &'b [u8] {
        bundle
            .components()
            .iter()
            .find(|c| c.name == entry.name)
            .map(|c| c.bytes.as_slice())
            .expect("a verified bundle has a component per plugin")
    }

    /// Installs a bundle for `tenant`: every plugin in it becomes a pending
    /// installation (nothing runs until [`Registry::approve`]). All or
    /// nothing: if any plugin is refused, none is stored.
    pub fn install(
        &self,
        tenant: &str,
        bytes: &[u8],
        allow_unsigned: bool,
        actor: &Actor,
    ) -> Result<Vec<Entry>, RegistryError> {
        let (bundle, verified) = self.verify(tenant, bytes, allow_unsigned)?;
        let _guard = self.lock();
        let now = self.now();
        let mut records = Vec::new();
        for entry in &verified.manifest.plugins {
            if self.taken(tenant, &entry.name)? {
                return Err(RegistryError::Taken {
                    name: entry.name.clone(),
                });
            }
            let component = Self::component_bytes(&bundle, entry);
            let plugin = self.check_entry(tenant, entry, component)?;
            let version = Self::version_record(&verified, &bundle, entry, &plugin, now, actor);
            records.push((
                PluginRecord {
                    name: entry.name.clone(),
                    kind: entry.kind,
                    installation: random_installation()?,
                    versions: vec![version],
                    active: None,
                    pending: Some(0),
                    quarantine: None,
                    created_at_ms: now,
                },
                component,
            ));
        }
        let mut written: Vec<String> = Vec::new();
        let stored = records.iter().try_for_each(|(record, component)| {
            let sha = &record.versions[0].component;
            self.store()
                .put_document(tenant, KIND_COMPONENT, sha, component)?;
            self.put_record(tenant, record)?;
            written.push(record.name.clone());
            Ok::<_, RegistryError>(())
        });
        if let Err(error) = stored {
            for name in &written {
                let _ = self.store().delete_document(tenant, KIND_PLUGIN, name);
            }
            let components: Vec<&str> = records
                .iter()
                .map(|(r, _)| r.versions[0].component.as_str())
                .collect();
            let _ = self.delete_unused_components(tenant, &components);
            return Err(error);
        }
        for (record, _) in &records {
            let version = &record.versions[0];
            self.audit(
                tenant,
                AuditEntry {
                    plugin: Some(record.name.clone()),
                    plugin_version: Some(version.version.clone()),
                    fields: version.requested.traits.clone(),
                    detail: Some(upload_detail(version)),
                    ..AuditEntry::new(actor, "plugin.install")
                },
            )?;
        }
        self.store().flush()?;
        records
            .iter()
            .map(|(record, _)| self.entry(tenant, &record.name))
            .collect()
    }

    /// Uploads a new version of an installed plugin. If it asks for no more
    /// than the running version was granted, it goes live at once with what
    /// it asks for; else it waits for approval, replacing any version that
    /// was waiting.
    pub fn upgrade(
        &self,
        tenant: &str,
        name: &str,
        bytes: &[u8],
        allow_unsigned: bool,
        actor: &Actor,
    ) -> Result<Entry, RegistryError> {
        let (bundle, verified) = self.verify(tenant, bytes, allow_unsigned)?;
        let entry = verified
            .manifest
            .plugins
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| RegistryError::NotInBundle {
                name: name.to_string(),
            })?;
        let _guard = self.lock();
        let mut record = self.stored_record(tenant, name)?;
        if entry.kind != record.kind {
            return Err(RegistryError::Inconsistent {
                plugin: name.to_string(),
                detail: format!(
                    "it is a {} plugin; the installed one is a {}",
                    entry.kind.as_str(),
                    record.kind.as_str()
                ),
            });
        }
        // The key of the version that runs (else of the latest upload).
        let installed_key = record
            .active
            .or(record.versions.len().checked_sub(1))
            .map(|i| record.versions[i].key_id.clone());
        let offered_key = verified.publisher_key.as_ref().map(PublicKey::key_id);
        if let Some(installed_key) = installed_key
            && installed_key != offered_key
        {
            let show = |key: Option<String>| match key {
                Some(key) => format!("key {key}"),
                None => "no key (unsigned)".to_string(),
            };
            return Err(RegistryError::PublisherChanged {
                name: name.to_string(),
                installed: show(installed_key),
                offered: show(offered_key),
            });
        }
        let component = Self::component_bytes(&bundle, entry);
        let plugin = self.check_entry(tenant, entry, component)?;
        let now = self.now();
        let mut version = Self::version_record(&verified, &bundle, entry, &plugin, now, actor);
        let requested_limits = limits_for(&version.requested_limits);
        let goes_live = record.active.is_some_and(|i| {
            let active = &record.versions[i];
            let granted = active.granted.clone().unwrap_or_default();
            let granted_limits = limits_for(
                active
                    .granted_limits
                    .as_ref()
                    .unwrap_or(&active.requested_limits),
            );
            !PermissionDiff::between(
                &granted,
                &granted_limits,
                &version.requested,
                &requested_limits,
            )
            .asks_for_more()
        });
        let live_plugin = if goes_live {
            let granted = version.requested.clone();
            let plugin = self.link(
                tenant,
                &record.installation,
                name,
                record.kind,
                component,
                &granted,
                requested_limits,
            )?;
            version.granted = Some(granted);
            version.granted_limits = Some(version.requested_limits.clone());
            version.approved_at_ms = Some(now);
            version.approved_by = Some(format!("{} (asks for no more)", actor.id));
            Some(plugin)
        } else {
            None
        };
        let detail = upload_detail(&version);
        let plugin_version = version.version.clone();
        // Stored only once it is known to link (when it goes live) or to
        // type-check (pending): a refused upgrade leaves nothing.
        self.store()
            .put_document(tenant, KIND_COMPONENT, &version.component, component)?;
        record.versions.push(version);
        let index = record.versions.len() - 1;
        if goes_live {
            record.active = Some(index);
            if record.pending.is_some() {
                record.pending = None;
            }
        } else {
            record.pending = Some(index);
        }
        self.put_record(tenant, &record)?;
        if let Some(plugin) = live_plugin {
            let live = self.make_live(tenant, &record, plugin);
            self.set_live(live);
        }
        self.audit(
            tenant,
            AuditEntry {
                plugin: Some(name.to_string()),
                plugin_version: Some(plugin_version),
                detail: Some(format!(
                    "{}; {detail}",
                    if goes_live {
                        "live: asks for no more than granted"
                    } else {
                        "pending approval"
                    }
                )),
                ..AuditEntry::new(actor, "plugin.upgrade")
            },
        )?;
        self.store().flush()?;
        self.entry(tenant, name)
    }

    fn stored_record(&self, tenant: &str, name: &str) -> Result<PluginRecord, RegistryError> {
        match self.record(tenant, name)? {
            Some(record) => Ok(record),
            None if self.is_builtin(tenant, name) => Err(RegistryError::BuiltIn {
                name: name.to_string(),
                what: "changed",
            }),
            None => Err(RegistryError::UnknownPlugin {
                name: name.to_string(),
            }),
        }
    }

    fn is_builtin(&self, tenant: &str, name: &str) -> bool {
        self.live(tenant, name)
            .is_some_and(|l| l.source == Source::BuiltIn)
    }

    /// Approves the pending version of a plugin with all it asked for
    /// (`grant: None`) or a part of it, and optionally lower limits. Links
    /// the component with exactly the grant (an import it was not granted
    /// refuses it) and makes it live. On any error the plugin stays as it was.
    pub fn approve(
        &self,
        tenant: &str,
        name: &str,
        grant: Option<Permissions>,
        limits: Option<tessera_bundle::RequestedLimits>,
        actor: &Actor,
    ) -> Result<Entry, RegistryError> {
        self.approve_reviewed(tenant, name, None, grant, limits, actor)
    }

    /// [`Registry::approve`], only if the pending version is still the one
    /// the operator reviewed (`bundle_digest`, hex, as its status shows):
    /// an upgrade uploaded meanwhile replaces the pending version, and must
    /// not be approved unseen.
    pub fn approve_reviewed(
        &self,
        tenant: &str,
        name: &str,
        bundle_digest: Option<&str>,
        grant: Option<Permissions>,
        limits: Option<tessera_bundle::RequestedLimits>,
        actor: &Actor,
    ) -> Result<Entry, RegistryError> {
        let _guard = self.lock();
        let mut record = self.stored_record(tenant, name)?;
        let index = record
            .pending
            .ok_or_else(|| RegistryError::NothingPending {
                name: name.to_string(),
            })?;
        if let Some(reviewed) = bundle_digest
            && !reviewed.eq_ignore_ascii_case(&record.versions[index].bundle_digest)
        {
            return Err(RegistryError::PendingChanged {
                name: name.to_string(),
                pending: record.versions[index].version.clone(),
            });
        }
        let version = &record.versions[index];
        let grant = normalized(&grant.unwrap_or_else(|| version.requested.clone()));
        check_subset(&grant, &version.requested).map_err(RegistryError::Grant)?;
        let limits_request = limits.unwrap_or_else(|| version.requested_limits.clone());
        let granted_limits = limits_for(&limits_request);
        check_limits_within(&granted_limits, &limits_for(&version.requested_limits))
            .map_err(RegistryError::Grant)?;
        let bytes = self.component(tenant, &version.component)?;
        let plugin = self.link(
            tenant,
            &record.installation,
            name,
            record.kind,
            &bytes,
            &grant,
            granted_limits,
        )?;
        let now = self.now();
        let version = &mut record.versions[index];
        version.granted = Some(grant.clone());
        version.granted_limits = Some(limits_request);
        version.approved_at_ms = Some(now);
        version.approved_by = Some(actor.id.clone());
        let plugin_version = version.version.clone();
        let partial = grant != version.requested;
        record.active = Some(index);
        record.pending = None;
        self.put_record(tenant, &record)?;
        let live = self.make_live(tenant, &record, plugin);
        self.set_live(live);
        self.audit(
            tenant,
            AuditEntry {
                plugin: Some(name.to_string()),
                plugin_version: Some(plugin_version),
                fields: grant.traits.clone(),
                detail: Some(format!(
                    "{}; {}",
                    if partial {
                        "granted part of the request"
                    } else {
                        "granted all of the request"
                    },
                    grant_detail(&grant)
                )),
                ..AuditEntry::new(actor, "plugin.approve")
            },
        )?;
        self.store().flush()?;
        self.entry(tenant, name)
    }

    /// Rejects the pending version of a plugin: it is no longer pending
    /// (it stays in the version history, never approved) and the running
    /// version keeps serving with its grant. Only if the pending version is
    /// still the one reviewed (`bundle_digest`, when given). Audited
    /// (`plugin.reject`, with `reason`).
    pub fn reject(
        &self,
        tenant: &str,
        name: &str,
        bundle_digest: Option<&str>,
        reason: &str,
        actor: &Actor,
    ) -> Result<Entry, RegistryError> {
        let _guard = self.lock();
        let mut record = self.stored_record(tenant, name)?;
        let index = record
            .pending
            .ok_or_else(|| RegistryError::NothingPending {
                name: name.to_string(),
            })?;
        let version = &record.versions[index];
        if let Some(reviewed) = bundle_digest
            && !reviewed.eq_ignore_ascii_case(&version.bundle_digest)
        {
            return Err(RegistryError::PendingChanged {
                name: name.to_string(),
                pending: version.version.clone(),
            });
        }
        if record.active.is_none() {
            return Err(RegistryError::NothingToKeep {
                name: name.to_string(),
            });
        }
        let rejected = version.version.clone();
        let bundle_version = version.bundle_version.clone();
        record.pending = None;
        self.put_record(tenant, &record)?;
        let reason: String = reason.trim().chars().take(500).collect();
        self.audit(
            tenant,
            AuditEntry {
                plugin: Some(name.to_string()),
                plugin_version: Some(rejected),
                detail: Some(if reason.is_empty() {
                    format!("rejected bundle {bundle_version}")
                } else {
                    format!("rejected bundle {bundle_version}: {reason}")
                }),
                ..AuditEntry::new(actor, "plugin.reject")
            },
        )?;
        self.store().flush()?;
        self.entry(tenant, name)
    }

    /// Returns to the approved version before the running one, with the
    /// grant and limits it had. A pending version stays pending.
    pub fn rollback(
        &self,
        tenant: &str,
        name: &str,
        actor: &Actor,
    ) -> Result<Entry, RegistryError> {
        let _guard = self.lock();
        let mut record = self.stored_record(tenant, name)?;
        let active = record
            .active
            .ok_or_else(|| RegistryError::NoEarlierVersion {
                name: name.to_string(),
            })?;
        let previous = (0..active)
            .rev()
            .find(|i| record.versions[*i].granted.is_some())
            .ok_or_else(|| RegistryError::NoEarlierVersion {
                name: name.to_string(),
            })?;
        let mut target = record.clone();
        target.active = Some(previous);
        let plugin = self.load_record(tenant, &target)?;
        let from = record.versions[active].version.clone();
        record.active = Some(previous);
        self.put_record(tenant, &record)?;
        let live = self.make_live(tenant, &record, plugin);
        self.set_live(live);
        let to = &record.versions[previous];
        self.audit(
            tenant,
            AuditEntry {
                plugin: Some(name.to_string()),
                plugin_version: Some(to.version.clone()),
                detail: Some(format!(
                    "rolled back from {from} (bundle {}) to {} (bundle {}); grant now {} \
                     (was {})",
                    record.versions[active].bundle_version,
                    to.version,
                    to.bundle_version,
                    grant_detail(to.granted.as_ref().unwrap_or(&Permissions::default())),
                    grant_detail(
                        record.versions[active]
                            .granted
                            .as_ref()
                            .unwrap_or(&Permissions::default())
                    ),
                )),
                ..AuditEntry::new(actor, "plugin.rollback")
            },
        )?;
        self.store().flush()?;
        self.entry(tenant, name)
    }

    /// Removes a plugin: it stops at once, its state is deleted, its
    /// components are deleted unless another plugin of the tenant uses them;
    /// the audit trail keeps everything it did. Returns the state entries
    /// deleted.
    pub fn remove(&self, tenant: &str, name: &str, actor: &Actor) -> Result<u64, RegistryError> {
        let _guard = self.lock();
        let record = self.stored_record(tenant, name)?;
        let listeners = self
            .inner
            .removal_listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for listener in listeners {
            listener.removing(tenant, name)?;
        }
        // The state first: if that fails, the plugin is as it was. From
        // here on a call still running keeps nothing.
        let removed = self.clear_state(tenant, &record.installation)?;
        self.take_live(tenant, name);
        self.inner
            .load_errors
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(tenant.to_string(), name.to_string()));
        self.store().delete_document(tenant, KIND_PLUGIN, name)?;
        let components: Vec<&str> = record
            .versions
            .iter()
            .map(|v| v.component.as_str())
            .collect();
        self.delete_unused_components(tenant, &components)?;
        self.audit(
            tenant,
            AuditEntry {
                plugin: Some(name.to_string()),
                detail: Some(format!("{removed} state entries deleted")),
                ..AuditEntry::new(actor, "plugin.remove")
            },
        )?;
        self.store().flush()?;
        Ok(removed)
    }

    /// Deletes the component documents no stored plugin of the tenant uses.
    fn delete_unused_components(
        &self,
        tenant: &str,
        components: &[&str],
    ) -> Result<(), RegistryError> {
        let records = self.records(tenant)?;
        for component in components {
            let used = records
                .iter()
                .any(|r| r.versions.iter().any(|v| v.component == *component));
            if !used {
                self.store()
                    .delete_document(tenant, KIND_COMPONENT, component)?;
            }
        }
        Ok(())
    }

    /// Deletes every state entry of an installation, and of each of its
    /// namespaces (a campaign's part of its strategy's state), for good: a
    /// call still running cannot write any back. The installation's own
    /// scope goes last, so that a removal stopped half way is finished by
    /// running it again.
    fn clear_state(&self, tenant: &str, installation: &str) -> Result<u64, RegistryError> {
        let store = state_store(&self.inner.vault);
        let scope = StateScope {
            tenant: tenant.to_string(),
            plugin: installation.to_string(),
        };
        let failed = |e: StateError| RegistryError::Store(e.to_string());
        let mut removed = 0;
        for namespace in store
            .scopes(tenant, &scope.namespace_prefix())
            .map_err(failed)?
        {
            removed += store.retire(&namespace).map_err(failed)?;
        }
        Ok(removed + store.retire(&scope).map_err(failed)?)
    }

    /// Deletes every entry of the namespace `namespace` of plugin `name`'s
    /// state (see `CallScope::with_state_namespace`), which stays usable:
    /// for what a campaign learned, when the campaign is removed and its
    /// name may be used again. A plugin the tenant does not have has no
    /// state to delete. Returns how many entries went.
    pub fn clear_namespace(
        &self,
        tenant: &str,
        name: &str,
        namespace: &str,
    ) -> Result<u64, RegistryError> {
        let installation = match self.record(tenant, name)? {
            Some(record) => record.installation,
            None => match self.live(tenant, name) {
                Some(live) => live.installation,
                None => return Ok(0),
            },
        };
        let scope = StateScope {
            tenant: tenant.to_string(),
            plugin: installation,
        }
        .namespace(namespace);
        let store = state_store(&self.inner.vault);
        let failed = |e: StateError| RegistryError::Store(e.to_string());
        let mut removed = 0;
        loop {
            let version = store.version(&scope).map_err(failed)?;
            if version == RETIRED {
                return Ok(removed);
            }
            let keys = store.keys(&scope, "", 512).map_err(failed)?;
            if keys.is_empty() {
                return Ok(removed);
            }
            let deletes: Vec<StateWrite> = keys.into_iter().map(|key| (key, None)).collect();
            // Deletes only shrink the scope: no quota applies. A call that
            // wrote in between moved the version on; read again.
            match store.apply(&scope, version, &deletes, u64::MAX) {
                Ok(()) => removed += deletes.len() as u64,
                Err(StateError::Conflict) => {}
                Err(error) => return Err(failed(error)),
            }
        }
    }

    /// Quarantines a plugin: its calls are refused until it is released.
    pub fn quarantine(
        &self,
        tenant: &str,
        name: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<Entry, RegistryError> {
        let _guard = self.lock();
        let mut record = self.stored_record(tenant, name)?;
        let reason = reason.trim();
        let reason = if reason.is_empty() {
            "quarantined by an operator"
        } else {
            reason
        };
        record.quarantine = Some(QuarantineRecord {
            reason: reason.chars().take(500).collect(),
            at_ms: self.now(),
            by: actor.id.clone(),
        });
        self.put_record(tenant, &record)?;
        tracing::warn!(%tenant, plugin = %name, %reason, "plugin quarantined by an operator");
        self.audit(
            tenant,
            AuditEntry {
                plugin: Some(name.to_string()),
                detail: Some(reason.to_string()),
                ..AuditEntry::new(actor, "plugin.quarantine")
            },
        )?;
        self.store().flush()?;
        self.entry(tenant, name)
    }

    /// Lifts a quarantine, an operator's or the runtime's (trapping).
    pub fn release(&self, tenant: &str, name: &str, actor: &Actor) -> Result<Entry, RegistryError> {
        let _guard = self.lock();
        let mut record = self.record(tenant, name)?;
        let live = self.live(tenant, name);
        let manual = record.as_ref().is_some_and(|r| r.quarantine.is_some());
        let automatic = live.as_ref().is_some_and(Live::auto_quarantined);
        if record.is_none() && live.is_none() {
            return Err(RegistryError::UnknownPlugin {
                name: name.to_string(),
            });
        }
        if !manual && !automatic {
            return Err(RegistryError::NotQuarantined {
                name: name.to_string(),
            });
        }
        if let Some(record) = record.as_mut().filter(|_| manual) {
            record.quarantine = None;
            self.put_record(tenant, record)?;
        }
        if let Some(live) = live.filter(|_| automatic) {
            live.plugin.release();
        }
        self.audit(
            tenant,
            AuditEntry {
                plugin: Some(name.to_string()),
                ..AuditEntry::new(actor, "plugin.release")
            },
        )?;
        self.store().flush()?;
        self.entry(tenant, name)
    }
}

fn upload_detail(version: &VersionRecord) -> String {
    format!(
        "bundle {} {} by {} ({}); asks for {}",
        version.bundle_version,
        &version.bundle_digest[..16],
        version.publisher,
        match &version.key_id {
            Some(key) => format!("signed by key {key}"),
            None => "UNSIGNED, development mode".to_string(),
        },
        grant_detail(&version.requested)
    )
}

/// A permission set in one line, for audit details.
fn grant_detail(p: &Permissions) -> String {
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(",")
        }
    };
    let pii: Vec<String> = p.pii.iter().map(|c| c.as_str().to_string()).collect();
    format!(
        "traits {}; events {}; pii {}; purposes {}; hosts {}; state {} bytes",
        list(&p.traits),
        list(&p.events),
        list(&pii),
        list(&p.purposes),
        list(&p.outbound_hosts),
        p.state_quota
    )
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use tessera_runtime::{RuntimeConfig, StaticResolver};
    use tessera_vault::TenantSettings;

    use super::*;

    /// A connector is checked at install by running its `describe`, before
    /// anyone approved it: its `http` import must not reach any host then,
    /// even one it asked for and the operator's allowance covers. The same
    /// request from the approved link does reach it.
    #[test]
    fn a_plugin_being_checked_reaches_no_host() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(
            dir.path().join("data"),
            dir.path().join("keys"),
            tessera_privacy::MasterKey::generate().unwrap(),
        )
        .unwrap();
        let actor = Actor::new("operator", "test");
        vault
            .create_tenant("acme", TenantSettings::default(), &actor)
            .unwrap();
        let runtime = Runtime::new(RuntimeConfig {
            resolver: Arc::new(
                StaticResolver::new().with("api.partner.test", ["127.0.0.1".parse().unwrap()]),
            ),
            ..RuntimeConfig::default()
        })
        .unwrap();
        let registry = Registry::new(runtime, Arc::new(vault), false)
            .with_outbound_allowance(vec!["127.0.0.1/32".parse().unwrap()]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = Permissions {
            outbound_hosts: vec![format!("api.partner.test:{port}")],
            ..Permissions::default()
        };
        let bytes = std::fs::read(tessera_guests::test_programs::HTTP_FETCH).unwrap();
        let url = format!("https://api.partner.test:{port}/");
        let fetch = |plugin: &Plugin| {
            let params = plugin.validate(&[]).unwrap();
            plugin
                .parse(&params, url.as_bytes())
                .expect_err("nothing serves TLS there")
                .to_string()
        };

        let checked = registry
            .link_for_check(
                "acme",
                "http-fetch",
                Kind::Connector,
                &bytes,
                &asked,
                Limits::default(),
            )
            .unwrap();
        let refused = fetch(&checked);
        assert!(refused.contains("until an operator approves"), "{refused}");
        assert!(listener.accept().is_err(), "a checked plugin connected");

        let approved = registry
            .link(
                "acme",
                "p-test",
                "http-fetch",
                Kind::Connector,
                &bytes,
                &asked,
                Limits::default(),
            )
            .unwrap();
        let failed = fetch(&approved);
        assert!(!failed.contains("refused"), "{failed}");
        assert!(
            listener.accept().is_ok(),
            "the approved plugin did not connect"
        );
    }
}

//! An installed [`Plugin`] and the sandboxed call path: every call gets a
//! fresh `Store` from the plugin's pre-instantiated component (or, for the
//! pages of one segment job, the store an [`Evaluation`] keeps), with its
//! limits, fuel budget and epoch deadline, and returns its result with its cost.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};

use crate::api::connector::ConnectorPre;
use crate::api::records::{Action, DeliveryReport, Modes, Page, ParseOutput};
use crate::api::segment::SegmentPre;
use crate::api::segments::Memberships;
use crate::api::strategies::{ActionSpec, Context, Decision, FeedbackBatch, Forecast};
use crate::api::strategy::StrategyPre;
use crate::api::types::{self, FieldValue, Manifest, ProfileBatch, ValueKind};
use crate::api::{host, http, records, segments, state, strategies};
use crate::bindings::plan_v0_1::{self as plan_api, Needs, PlannedSegmentPre};
use crate::bindings::strategy_v0_1::{self as strategy_api, PlannedStrategyPre};
use crate::call::{Called, Cost, Failure, classify};
use crate::host::{HostLimit, HostState, StateTxn};
use crate::manifest::{check_manifest, resolve_params};
use crate::outbound::{Outbound, OutboundCall};
use crate::output::{
    OutputSize, check_actions, check_decisions, check_forecast, check_memberships, check_needs,
};
use crate::quarantine::Health;
use crate::runtime::{Keep, RuntimeInner, Slot};
use crate::{
    CallError, ComponentCache, InstallError, Limits, PluginError, StateScope, StateStore,
    TrapReason, WitVersion, detect_version,
};
use tessera_state::{StateError, StateKeys};

/// The world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    Connector,
    Segment,
    Strategy,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Connector => "connector",
            PluginKind::Segment => "segment",
            PluginKind::Strategy => "strategy",
        }
    }
}

impl std::str::FromStr for PluginKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "connector" => Ok(PluginKind::Connector),
            "segment" => Ok(PluginKind::Segment),
            "strategy" => Ok(PluginKind::Strategy),
            other => Err(format!(
                "unknown plugin kind `{other}`; expected connector, segment or strategy"
            )),
        }
    }
}

/// What the operator granted a plugin. Capability = linking: an import that
/// is not granted is not in the plugin's linker, and installing a component
/// that imports it fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Bytes of plugin state (keys + values); 0 = the `state` import is not linked.
    pub state_quota: u64,
    /// Outbound HTTP, for connectors only; `None` or no hosts = the `http`
    /// import is not linked.
    pub outbound: Option<Outbound>,
}

impl Grants {
    /// The outbound HTTP grant, if this kind of plugin may use one.
    fn outbound_for(&self, kind: PluginKind) -> Option<&Outbound> {
        self.outbound
            .as_ref()
            .filter(|o| kind == PluginKind::Connector && o.is_granted())
    }
}

/// What one call may reach beyond its arguments: the subjects of its batch,
/// for subject-keyed state (`subject/<row key>/…`, see
/// [`tessera_state::StateKeys`]). A call without subjects may keep no
/// subject-keyed state. Built by the host's data layer with the batch.
#[derive(Debug, Clone, Default)]
pub struct CallScope {
    subjects: Option<Arc<dyn StateKeys>>,
    trait_kinds: Option<TraitKinds>,
    /// A part of the installation's state of its own (a campaign's).
    state_namespace: Option<String>,
}

/// What `tessera:plan/schema`'s `trait-kind` answers during a call: the
/// kind of each trait the plugin may read, by name. Built by the host's
/// data layer from the tenant's schema and the plugin's grant; a name it
/// does not hold is answered with none.
pub type TraitKinds = Arc<BTreeMap<String, ValueKind>>;

impl CallScope {
    /// A call with no subjects.
    pub fn new() -> Self {
        Self::default()
    }

    /// The call's batch rows, by the keys the plugin sees and the subject
    /// ids they stand for.
    pub fn with_subjects(mut self, subjects: Arc<dyn StateKeys>) -> Self {
        self.subjects = Some(subjects);
        self
    }

    /// The traits the call may learn the kind of (`tessera:plan/schema`);
    /// without them, `trait-kind` answers none.
    pub fn with_trait_kinds(mut self, kinds: TraitKinds) -> Self {
        self.trait_kinds = Some(kinds);
        self
    }

    /// The call sees, and writes, a state of its own within the
    /// installation's: `namespace` (e.g. a campaign) names it. Two
    /// namespaces never see each other's keys; each has the installation's
    /// quota.
    pub fn with_state_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.state_namespace = Some(namespace.into());
        self
    }

    /// The state scope of a call of the installation `base`.
    fn state_scope(&self, base: &StateScope) -> StateScope {
        match &self.state_namespace {
            Some(namespace) => base.namespace(namespace),
            None => base.clone(),
        }
    }
}

/// Everything [`crate::Runtime::install`] needs besides the component bytes.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    pub kind: PluginKind,
    pub grants: Grants,
    pub limits: Limits,
    /// The tenant the plugin is installed for.
    pub tenant: String,
    /// The host's id for this installation, unique within the tenant. It,
    /// never the name a plugin gives itself, scopes the plugin's state.
    pub installation: String,
    /// Where the plugin's state lives.
    pub state: Arc<dyn StateStore>,
}

/// What an installed plugin declared about itself.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub kind: PluginKind,
    pub wit_version: WitVersion,
    pub manifest: Manifest,
    /// Strategy plugins: the actions they choose among (with default
    /// parameters, for one that plans them: see [`Plugin::strategy_actions`]).
    pub actions: Vec<ActionSpec>,
    /// Connector plugins: which of parse / pull / deliver they serve.
    pub modes: Option<Modes>,
    /// Segment plugins: whether the component exports
    /// `tessera:plan/segment-plan`, so [`Plugin::plan`] asks it for the
    /// columns of each set of parameters (else the manifest's serve all).
    /// Strategy plugins: whether it exports `tessera:strategy/campaign-plan`,
    /// so [`Plugin::strategy_actions`] and [`Plugin::strategy_plan`] ask it
    /// for the actions and columns of each set of parameters (else its
    /// `actions()` and its manifest's columns serve all).
    pub plans: bool,
    /// SHA-256 of the component bytes, hex.
    pub content_hash: String,
    /// Whether installing compiled the component (false: loaded from the cache).
    pub compiled: bool,
}

impl PluginInfo {
    /// `name@version`, as plugins are named in errors and logs.
    pub fn label(&self) -> String {
        format!("{}@{}", self.manifest.name, self.manifest.version)
    }
}

impl Needs {
    /// The fields and aggregates a manifest declares: the columns of a
    /// plugin that does not plan them.
    pub fn declared(manifest: &Manifest) -> Needs {
        Needs {
            fields: manifest.fields.clone(),
            aggregates: manifest.aggregates.clone(),
            queries: Vec::new(),
            segments: Vec::new(),
        }
    }
}

/// What an installed plugin has used since it was installed: its calls
/// (those that ran, whether they succeeded, returned an error or trapped;
/// calls refused by a quarantine did not run), the fuel and wall time they
/// took, its traps and whether it is quarantined now. Counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginStats {
    pub calls: u64,
    /// Fuel consumed (0 when the runtime does not meter fuel).
    pub fuel: u64,
    pub wall: Duration,
    pub traps: u64,
    pub quarantined: bool,
}

/// The running totals behind [`PluginStats`].
#[derive(Debug, Default)]
struct Usage {
    calls: AtomicU64,
    fuel: AtomicU64,
    wall_ns: AtomicU64,
}

/// How one attempt at a call ended, when it did not produce a result.
enum Outcome {
    /// The call's state writes conflicted with another call's; run it again.
    Conflict,
    Failed(CallError),
}

impl From<CallError> for Outcome {
    fn from(error: CallError) -> Self {
        Outcome::Failed(error)
    }
}

/// Runs the same code for whichever world's `*Pre` a plugin has: the
/// functions every world exports (`describe`, `validate`) have the same shape
/// but one generated type per world.
macro_rules! for_each_world {
    ($pre:expr, $p:ident => $body:expr) => {
        match $pre {
            Pre::Connector($p) => $body,
            Pre::Segment($p) => $body,
            Pre::Strategy($p) => $body,
        }
    };
}

enum Pre {
    Connector(ConnectorPre<HostState>),
    Segment(SegmentPre<HostState>),
    Strategy(StrategyPre<HostState>),
}

/// An installed plugin. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Sandbox>,
    info: Arc<PluginInfo>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("plugin", &self.inner.label)
            .finish_non_exhaustive()
    }
}

struct Sandbox {
    runtime: Arc<RuntimeInner>,
    pre: Pre,
    /// The `tessera:plan/segment-plan` export of a segment that has one.
    plan: Option<PlannedSegmentPre<HostState>>,
    /// The `tessera:strategy/campaign-plan` export of a strategy that has one.
    campaign: Option<PlannedStrategyPre<HostState>>,
    /// How many actions a planned strategy chooses among, for the last few
    /// sets of parameters it was asked about: decisions and forecasts are
    /// checked against it. The answer is a function of the parameters.
    action_counts: Memo<Vec<FieldValue>, usize>,
    /// The plans of a planned segment or strategy for the last few sets of
    /// parameters (and the schema it was told of): a plan is a function of
    /// those only (the contract says so), and a decision asks for one on
    /// every call.
    plans: Memo<(Vec<FieldValue>, Option<TraitKinds>), Needs>,
    limits: Limits,
    grants: Grants,
    state: Arc<dyn StateStore>,
    scope: StateScope,
    health: Health,
    usage: Usage,
    /// Held by a call re-run after a state conflict, and by every commit.
    commit_lock: Mutex<()>,
    label: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn plugin_error(error: types::Error) -> PluginError {
    match error {
        types::Error::InvalidInput(m) => PluginError::InvalidInput(m),
        types::Error::InvalidConfig(m) => PluginError::InvalidConfig(m),
        types::Error::Unavailable(m) => PluginError::Unavailable(m),
        types::Error::Internal(m) => PluginError::Internal(m),
    }
}

/// The WASI poll interface as `wasmtime-wasi` links it; guests importing any
/// compatible 0.2 version are served by it.
const WASI_POLL: &str = "wasi:io/poll@0.2.12";

/// WASI packages whose (empty) implementation is linked for std guests.
const WASI_PACKAGES: &[&str] = &["io", "cli", "clocks", "random", "filesystem", "sockets"];

fn check_imports(
    component: &Component,
    engine: &wasmtime::Engine,
    kind: PluginKind,
    grants: &Grants,
) -> Result<(), InstallError> {
    let refuse = |import: &str, why: &str| InstallError::UngrantedImport {
        import: import.to_string(),
        kind: kind.as_str().to_string(),
        why: why.to_string(),
    };
    for (name, _) in component.component_type().imports(engine) {
        if let Some(rest) = name.strip_prefix("wasi:") {
            let package = rest.split(['/', '@']).next().unwrap_or("");
            if WASI_PACKAGES.contains(&package) {
                continue;
            }
            return Err(refuse(
                name,
                "plugins get no WASI capability beyond an empty environment",
            ));
        }
        if let Some(rest) = name.strip_prefix("tessera:plan/") {
            let interface = rest.split('@').next().unwrap_or(rest);
            match (interface, kind) {
                ("schema", PluginKind::Segment) if name == plan_api::SCHEMA => continue,
                // `tessera:strategy/planned-strategy` uses its `needs`; its
                // `plan` is linked as a stub that traps when called (see
                // `linker_for`), and any other function is missing, so a
                // component that imports one fails to link.
                ("segment-plan", PluginKind::Strategy)
                    if name == strategy_api::SEGMENT_PLAN_TYPES =>
                {
                    continue;
                }
                ("schema", PluginKind::Segment) => {
                    return Err(refuse(
                        name,
                        &format!(
                            "this host serves {}; rebuild the plugin with an SDK for a served version",
                            plan_api::SCHEMA
                        ),
                    ));
                }
                ("schema", _) => {
                    return Err(refuse(
                        name,
                        "the tenant's schema is only for segment plugins, which plan their columns with it",
                    ));
                }
                (other, _) => {
                    return Err(refuse(
                        name,
                        &format!("`tessera:plan/{other}` is not an import Tessera provides"),
                    ));
                }
            }
        }
        let Some(rest) = name.strip_prefix("tessera:plugin/") else {
            return Err(refuse(name, "Tessera provides no such import"));
        };
        let interface = rest.split('@').next().unwrap_or(rest);
        match (interface, kind) {
            // `records`, `segments` and `strategies` define only types, so they
            // grant nothing; an SDK built for all worlds may import all three.
            ("types" | "host" | "records" | "segments" | "strategies", _) => {}
            ("state", _) if grants.state_quota > 0 => {}
            ("state", _) => return Err(refuse(name, "no state quota was granted")),
            ("http", _) if grants.outbound_for(kind).is_some() => {}
            ("http", PluginKind::Connector) => {
                return Err(refuse(name, "no outbound hosts were granted"));
            }
            ("http", _) => return Err(refuse(name, "outbound HTTP is only for connectors")),
            (other, _) => {
                return Err(refuse(
                    name,
                    &format!("`{other}` is not part of the {} world", kind.as_str()),
                ));
            }
        }
    }
    Ok(())
}

/// An optional capability a plugin of one kind may export: the interfaces
/// of a WIT package, of which this host serves one.
struct Capability {
    /// The WIT package (`tessera:plan`, …).
    package: &'static str,
    /// The one interface of it this host serves.
    served: &'static str,
    /// The only kind that may export it.
    kind: PluginKind,
    /// What exporting it means, for the refusal: "<kind> plugins <does>".
    does: &'static str,
}

/// The plan capability a segment may export.
const SEGMENT_PLAN: Capability = Capability {
    package: plan_api::PACKAGE,
    served: plan_api::SEGMENT_PLAN,
    kind: PluginKind::Segment,
    does: "segment plugins plan their columns",
};

/// The campaign-plan capability a strategy may export.
const CAMPAIGN_PLAN: Capability = Capability {
    package: strategy_api::PACKAGE,
    served: strategy_api::CAMPAIGN_PLAN,
    kind: PluginKind::Strategy,
    does: "strategy plugins plan their actions for a campaign",
};

/// `capability` as the component exports it, if it does, type-checked by
/// `typed`: only a plugin of the capability's kind may export it, and only
/// in the version this host serves. A component that exports none is
/// served from its manifest (and a strategy from its `actions()`), as
/// before.
fn optional_export<P>(
    component: &Component,
    engine: &wasmtime::Engine,
    kind: PluginKind,
    capability: &Capability,
    typed: impl FnOnce() -> wasmtime::Result<P>,
) -> Result<Option<P>, InstallError> {
    let exported: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| {
            name.strip_prefix(capability.package)
                .is_some_and(|rest| rest.starts_with('/'))
        })
        .collect();
    let refuse = |export: &str, detail: String| InstallError::PlanExport {
        export: export.to_string(),
        detail,
    };
    let Some(first) = exported.first() else {
        return Ok(None);
    };
    if kind != capability.kind {
        return Err(refuse(
            first,
            format!(
                "only {}, and this is a {} plugin",
                capability.does,
                kind.as_str()
            ),
        ));
    }
    if let Some(other) = exported.iter().find(|name| *name != capability.served) {
        return Err(refuse(
            other,
            format!(
                "this host serves {}; rebuild the plugin with an SDK for a served version",
                capability.served
            ),
        ));
    }
    typed()
        .map(Some)
        .map_err(|e| refuse(first, format!("{e:#}")))
}

fn linker_for(
    engine: &wasmtime::Engine,
    kind: PluginKind,
    grants: &Grants,
) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    types::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    host::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    records::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    segments::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    strategies::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    if kind == PluginKind::Segment {
        plan_api::schema::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    }
    if kind == PluginKind::Strategy {
        // Its types, and `plan` as a stub that traps with a message naming
        // it (`HostState`'s `segment_plan::Host`): componentize-js and
        // componentize-py import every function of an imported interface.
        strategy_api::segment_plan::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )?;
    }
    if grants.state_quota > 0 {
        state::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    }
    if grants.outbound_for(kind).is_some() {
        http::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    }
    // A synchronous wait would park the host thread where neither fuel nor
    // the epoch deadline can reach it (`std::thread::sleep` waits on a
    // pollable). Plugins have nothing to wait for, so waiting traps.
    linker.allow_shadowing(true);
    let mut poll = linker.instance(WASI_POLL)?;
    for blocking in ["poll", "[method]pollable.block"] {
        poll.func_new(blocking, |_, _, _, _| {
            Err(wasmtime::Error::new(HostLimit::Blocking))
        })?;
    }
    Ok(linker)
}

impl Plugin {
    pub(crate) fn install(
        runtime: Arc<RuntimeInner>,
        bytes: &[u8],
        request: InstallRequest,
    ) -> Result<Plugin, InstallError> {
        let InstallRequest {
            kind,
            grants,
            limits,
            tenant,
            installation,
            state,
        } = request;
        let wit_version = detect_version(bytes)?;
        limits
            .check_within(&runtime.config.caps)
            .map_err(InstallError::LimitsOverCap)?;
        let engine = &runtime.engine;
        let (component, compiled) = runtime.cache.get_or_compile(engine, bytes)?;
        check_imports(&component, engine, kind, &grants)?;

        let mismatch = |e: wasmtime::Error| InstallError::WorldMismatch {
            world: kind.as_str().to_string(),
            version: wit_version.as_str().to_string(),
            detail: format!("{e:#}"),
        };
        let linker = linker_for(engine, kind, &grants)
            .map_err(|e| InstallError::Compile(format!("{e:#}")))?;
        let instance_pre = linker.instantiate_pre(&component).map_err(mismatch)?;
        let pre = match kind {
            PluginKind::Connector => {
                Pre::Connector(ConnectorPre::new(instance_pre.clone()).map_err(mismatch)?)
            }
            PluginKind::Segment => {
                Pre::Segment(SegmentPre::new(instance_pre.clone()).map_err(mismatch)?)
            }
            PluginKind::Strategy => {
                Pre::Strategy(StrategyPre::new(instance_pre.clone()).map_err(mismatch)?)
            }
        };
        // After the world's own check, so that a component of another world
        // is refused with what it is missing.
        let plan = optional_export(&component, engine, kind, &SEGMENT_PLAN, || {
            PlannedSegmentPre::new(instance_pre.clone())
        })?;
        let campaign = optional_export(&component, engine, kind, &CAMPAIGN_PLAN, || {
            PlannedStrategyPre::new(instance_pre.clone())
        })?;
        let content_hash = hex::encode(ComponentCache::content_hash(bytes));
        let health = Health::new(runtime.quarantine.clone());
        let mut sandbox = Sandbox {
            runtime,
            pre,
            plan,
            campaign,
            action_counts: Memo::default(),
            plans: Memo::default(),
            limits,
            grants,
            state,
            scope: StateScope {
                tenant,
                plugin: installation,
            },
            health,
            usage: Usage::default(),
            commit_lock: Mutex::new(()),
            label: format!("component {}", &content_hash[..12]),
        };

        let describe_failed = |e: CallError| InstallError::Describe(Box::new(e));
        let manifest = sandbox.describe().map_err(describe_failed)?.value;
        check_manifest(&manifest).map_err(InstallError::InvalidManifest)?;
        sandbox.label = format!("{}@{}", manifest.name, manifest.version);

        let (actions, modes) = match &sandbox.pre {
            Pre::Strategy(pre) => {
                let actions = sandbox
                    .run(
                        0,
                        now_ms(),
                        |store| {
                            Ok(Ok(pre
                                .instantiate(&mut *store)?
                                .call_actions(&mut *store)?))
                        },
                        |_| Ok(()),
                    )
                    .map_err(describe_failed)?
                    .value;
                check_actions(&actions).map_err(InstallError::InvalidManifest)?;
                (actions, None)
            }
            Pre::Connector(pre) => {
                let modes = sandbox
                    .run(
                        0,
                        now_ms(),
                        |store| {
                            Ok(Ok(pre
                                .instantiate(&mut *store)?
                                .call_supports(&mut *store)?))
                        },
                        |_| Ok(()),
                    )
                    .map_err(describe_failed)?
                    .value;
                if modes == Modes::empty() {
                    return Err(InstallError::InvalidManifest(
                        "the connector supports none of parse, pull and deliver".into(),
                    ));
                }
                (Vec::new(), Some(modes))
            }
            Pre::Segment(_) => (Vec::new(), None),
        };
        let info = PluginInfo {
            kind,
            wit_version,
            manifest,
            actions,
            modes,
            plans: sandbox.plan.is_some() || sandbox.campaign.is_some(),
            content_hash,
            compiled,
        };
        tracing::info!(
            plugin = %sandbox.label,
            kind = kind.as_str(),
            compiled,
            plans = info.plans,
            "plugin installed"
        );
        Ok(Plugin {
            inner: Arc::new(sandbox),
            info: Arc::new(info),
        })
    }

    /// What the plugin declared at install.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The plugin's limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The plugin's grants.
    pub fn grants(&self) -> &Grants {
        &self.inner.grants
    }

    /// Whether the plugin is quarantined.
    pub fn is_quarantined(&self) -> bool {
        self.inner.health.is_quarantined()
    }

    /// Traps since install.
    pub fn total_traps(&self) -> u64 {
        self.inner.health.total_traps()
    }

    /// What the plugin has used since it was installed (the calls of the
    /// install itself included).
    pub fn stats(&self) -> PluginStats {
        let usage = &self.inner.usage;
        PluginStats {
            calls: usage.calls.load(Ordering::Relaxed),
            fuel: usage.fuel.load(Ordering::Relaxed),
            wall: Duration::from_nanos(usage.wall_ns.load(Ordering::Relaxed)),
            traps: self.inner.health.total_traps(),
            quarantined: self.inner.health.is_quarantined(),
        }
    }

    /// Lifts a quarantine (an operator's decision).
    pub fn release(&self) {
        tracing::warn!(plugin = %self.inner.label, "quarantine released");
        self.inner.health.release();
    }

    /// Calls `describe` again (the manifest from install is in [`Plugin::info`]).
    pub fn describe(&self) -> Result<Called<Manifest>, CallError> {
        self.inner.describe()
    }

    /// Checks parameters against the manifest's schema (filling defaults),
    /// then asks the plugin; returns the resolved parameters to save.
    pub fn validate(&self, params: &[FieldValue]) -> Result<Vec<FieldValue>, CallError> {
        let resolved = resolve_params(&self.info.manifest.parameters, params).map_err(|e| {
            CallError::InvalidParams {
                plugin: self.inner.label.clone(),
                detail: e.0,
            }
        })?;
        let p = &resolved;
        let called = for_each_world!(&self.inner.pre, pre => self.inner.run(
            0,
            now_ms(),
            |s| pre.instantiate(&mut *s)?.call_validate(&mut *s, p),
            |_| Ok(()),
        ));
        called.map(|_| resolved)
    }

    fn unsupported(&self, operation: &'static str) -> CallError {
        CallError::Unsupported {
            plugin: self.inner.label.clone(),
            operation,
        }
    }

    /// The columns a call with these parameters gets: the plugin's plan if
    /// it exports `tessera:plan/segment-plan` (or, for a strategy,
    /// `tessera:strategy/campaign-plan`), else, without a call, the fields
    /// and aggregates of its manifest. `params` are the resolved
    /// parameters [`Plugin::validate`] returns. A plan runs in the sandbox
    /// like any call (limits, fuel, traps counted towards quarantine), and
    /// one that breaks the rules (too many columns, names empty or
    /// repeated, an aggregate without its property, a window out of range)
    /// is a [`CallError::InvalidOutput`] naming what is wrong.
    pub fn plan(&self, params: &[FieldValue]) -> Result<Called<Needs>, CallError> {
        self.plan_with(params, &CallScope::new())
    }

    /// [`Plugin::plan`] in `scope`: the plugin may learn the kinds of the
    /// traits `scope` holds ([`CallScope::with_trait_kinds`]).
    ///
    /// A strategy that exports `tessera:strategy/campaign-plan` is asked
    /// through it ([`Plugin::strategy_plan`]), so a caller that builds every
    /// plugin's batches from this plan serves planned strategies too.
    pub fn plan_with(
        &self,
        params: &[FieldValue],
        scope: &CallScope,
    ) -> Result<Called<Needs>, CallError> {
        if self.inner.campaign.is_some() {
            return self.strategy_plan(params);
        }
        let Some(pre) = &self.inner.plan else {
            return Ok(Called::free(Needs::declared(&self.info.manifest)));
        };
        let key = (params.to_vec(), scope.trait_kinds.clone());
        if let Some(needs) = self.inner.plans.get(&key) {
            return Ok(Called::free(needs));
        }
        let called = self.inner.run_scoped(
            scope,
            0,
            now_ms(),
            |s| {
                pre.instantiate(&mut *s)?
                    .tessera_plan_segment_plan()
                    .call_plan(&mut *s, params)
            },
            check_needs,
        )?;
        self.inner.plans.put(key, called.value.clone());
        Ok(called)
    }

    /// Strategy: the actions a campaign with these parameters chooses among,
    /// the ones decisions, feedback and forecasts index. A strategy that
    /// exports `tessera:strategy/campaign-plan` is asked (in the sandbox,
    /// like any call); one that does not answers, without a call, the
    /// actions it declared at install. `params` are the resolved parameters
    /// [`Plugin::validate`] returns. A list that breaks the rules (empty,
    /// over 1,024 actions, names empty, too long or repeated) is a
    /// [`CallError::InvalidOutput`] naming what is wrong.
    pub fn strategy_actions(
        &self,
        params: &[FieldValue],
    ) -> Result<Called<Vec<ActionSpec>>, CallError> {
        if !matches!(self.inner.pre, Pre::Strategy(_)) {
            return Err(self.unsupported("actions"));
        }
        let Some(pre) = &self.inner.campaign else {
            return Ok(Called::free(self.info.actions.clone()));
        };
        let called = self.inner.run(
            0,
            now_ms(),
            |s| {
                pre.instantiate(&mut *s)?
                    .tessera_strategy_campaign_plan()
                    .call_actions(&mut *s, params)
            },
            |out| check_actions(out),
        )?;
        self.inner
            .action_counts
            .put(params.to_vec(), called.value.len());
        Ok(called)
    }

    /// Strategy: the columns decide, observe and simulate batches carry for
    /// these parameters. A strategy that exports
    /// `tessera:strategy/campaign-plan` is asked, and its answer checked
    /// with the rules of [`Plugin::plan`]; one that does not answers,
    /// without a call, the fields and aggregates of its manifest.
    pub fn strategy_plan(&self, params: &[FieldValue]) -> Result<Called<Needs>, CallError> {
        if !matches!(self.inner.pre, Pre::Strategy(_)) {
            return Err(self.unsupported("plan"));
        }
        let Some(pre) = &self.inner.campaign else {
            return Ok(Called::free(Needs::declared(&self.info.manifest)));
        };
        let key = (params.to_vec(), None);
        if let Some(needs) = self.inner.plans.get(&key) {
            return Ok(Called::free(needs));
        }
        let called = self.inner.run(
            0,
            now_ms(),
            |s| {
                Ok(pre
                    .instantiate(&mut *s)?
                    .tessera_strategy_campaign_plan()
                    .call_plan(&mut *s, params)?
                    .map(Needs::from))
            },
            check_needs,
        )?;
        self.inner.plans.put(key, called.value.clone());
        Ok(called)
    }

    /// How many actions a decision or forecast with these parameters may
    /// index: asked of a planned strategy (once for the same parameters,
    /// while they are among the last few asked about), else the declared.
    fn action_count(&self, params: &[FieldValue]) -> Result<usize, CallError> {
        if self.inner.campaign.is_none() {
            return Ok(self.info.actions.len());
        }
        if let Some(count) = self.inner.action_counts.get(&params.to_vec()) {
            return Ok(count);
        }
        Ok(self.strategy_actions(params)?.value.len())
    }

    /// Segment: evaluates a batch of profile views.
    pub fn evaluate(
        &self,
        params: &[FieldValue],
        batch: &ProfileBatch,
    ) -> Result<Called<Memberships>, CallError> {
        self.evaluate_with(params, batch, &CallScope::new())
    }

    /// Segment: evaluates a batch of profile views whose rows are `scope`'s
    /// subjects, so the plugin may keep state per row.
    pub fn evaluate_with(
        &self,
        params: &[FieldValue],
        batch: &ProfileBatch,
        scope: &CallScope,
    ) -> Result<Called<Memberships>, CallError> {
        let Pre::Segment(pre) = &self.inner.pre else {
            return Err(self.unsupported("evaluate"));
        };
        self.inner.run_scoped(
            scope,
            u64::from(batch.rows),
            batch.now,
            |s| {
                pre.instantiate(&mut *s)?
                    .call_evaluate(&mut *s, params, batch)
            },
            |out| check_memberships(out, batch.rows),
        )
    }

    /// Whether `other` is this very installation, as loaded (not another
    /// version of it, nor the same component installed again).
    pub fn is(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Segment: an evaluation of one job's batches (a recompute's pages,
    /// a preview's) that one instance serves in turn, one call each, so
    /// that instantiation, and whatever the plugin prepares once per
    /// instance, are paid once per job rather than once per batch.
    /// `params` are the resolved parameters [`Plugin::validate`] returns.
    pub fn evaluation(&self, params: &[FieldValue]) -> Result<Evaluation, CallError> {
        if !matches!(self.inner.pre, Pre::Segment(_)) {
            return Err(self.unsupported("evaluate"));
        }
        Ok(Evaluation {
            plugin: self.clone(),
            params: params.to_vec(),
            kept: None,
        })
    }

    /// Strategy: one decision per row.
    pub fn decide(
        &self,
        params: &[FieldValue],
        batch: &ProfileBatch,
        context: &Context,
    ) -> Result<Called<Vec<Decision>>, CallError> {
        self.decide_with(params, batch, context, &CallScope::new())
    }

    /// Strategy: one decision per row, the rows being `scope`'s subjects.
    pub fn decide_with(
        &self,
        params: &[FieldValue],
        batch: &ProfileBatch,
        context: &Context,
        scope: &CallScope,
    ) -> Result<Called<Vec<Decision>>, CallError> {
        let Pre::Strategy(pre) = &self.inner.pre else {
            return Err(self.unsupported("decide"));
        };
        let actions = self.action_count(params)?;
        self.inner.run_scoped(
            scope,
            u64::from(batch.rows),
            context.at,
            |s| {
                pre.instantiate(&mut *s)?
                    .call_decide(&mut *s, params, batch, context)
            },
            |out| check_decisions(out, batch.rows, actions),
        )
    }

    /// Strategy: learns from feedback.
    pub fn observe(
        &self,
        params: &[FieldValue],
        feedback: &FeedbackBatch,
    ) -> Result<Called<()>, CallError> {
        self.observe_with(params, feedback, &CallScope::new())
    }

    /// Strategy: learns from feedback whose profile rows are `scope`'s subjects.
    pub fn observe_with(
        &self,
        params: &[FieldValue],
        feedback: &FeedbackBatch,
        scope: &CallScope,
    ) -> Result<Called<()>, CallError> {
        let Pre::Strategy(pre) = &self.inner.pre else {
            return Err(self.unsupported("observe"));
        };
        self.inner.run_scoped(
            scope,
            feedback.items.len() as u64,
            feedback.profiles.now,
            |s| {
                pre.instantiate(&mut *s)?
                    .call_observe(&mut *s, params, feedback)
            },
            |_| Ok(()),
        )
    }

    /// Strategy: forecasts the effect over a batch.
    pub fn simulate(
        &self,
        params: &[FieldValue],
        batch: &ProfileBatch,
        context: &Context,
    ) -> Result<Called<Forecast>, CallError> {
        self.simulate_with(params, batch, context, &CallScope::new())
    }

    /// Strategy: forecasts the effect over a batch of `scope`'s subjects.
    pub fn simulate_with(
        &self,
        params: &[FieldValue],
        batch: &ProfileBatch,
        context: &Context,
        scope: &CallScope,
    ) -> Result<Called<Forecast>, CallError> {
        let Pre::Strategy(pre) = &self.inner.pre else {
            return Err(self.unsupported("simulate"));
        };
        let actions = self.action_count(params)?;
        self.inner.run_scoped(
            scope,
            u64::from(batch.rows),
            context.at,
            |s| {
                pre.instantiate(&mut *s)?
                    .call_simulate(&mut *s, params, batch, context)
            },
            |out| check_forecast(out, actions),
        )
    }

    fn connector(
        &self,
        mode: Modes,
        operation: &'static str,
    ) -> Result<&ConnectorPre<HostState>, CallError> {
        match &self.inner.pre {
            Pre::Connector(pre) if self.info.modes.is_some_and(|m| m.contains(mode)) => Ok(pre),
            _ => Err(self.unsupported(operation)),
        }
    }

    /// Connector: parses pushed bytes.
    pub fn parse(
        &self,
        params: &[FieldValue],
        data: &[u8],
    ) -> Result<Called<ParseOutput>, CallError> {
        let pre = self.connector(Modes::PUSH, "parse")?;
        self.inner.run(
            (data.len() / 64) as u64,
            now_ms(),
            |s| pre.instantiate(&mut *s)?.call_parse(&mut *s, params, data),
            |_| Ok(()),
        )
    }

    /// Connector: fetches one page from a cursor.
    pub fn pull(
        &self,
        params: &[FieldValue],
        cursor: Option<&str>,
    ) -> Result<Called<Page>, CallError> {
        let pre = self.connector(Modes::PULL, "pull")?;
        self.inner.run(
            0,
            now_ms(),
            |s| pre.instantiate(&mut *s)?.call_pull(&mut *s, params, cursor),
            |_| Ok(()),
        )
    }

    /// Connector: delivers actions.
    pub fn deliver(
        &self,
        params: &[FieldValue],
        actions: &[Action],
    ) -> Result<Called<DeliveryReport>, CallError> {
        let pre = self.connector(Modes::DELIVER, "deliver")?;
        self.inner.run(
            actions.len() as u64,
            now_ms(),
            |s| {
                pre.instantiate(&mut *s)?
                    .call_deliver(&mut *s, params, actions)
            },
            |_| Ok(()),
        )
    }
}

/// The answers a plugin gave to the last few calls that are functions of
/// their arguments only, by those arguments: asked again, the host answers
/// without a call.
#[derive(Debug)]
struct Memo<K, V> {
    entries: Mutex<VecDeque<(K, V)>>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
        }
    }
}

impl<K: PartialEq, V: Clone> Memo<K, V> {
    /// How many answers are kept (the least recently stored go first).
    const KEPT: usize = 32;

    fn get(&self, key: &K) -> Option<V> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|(k, _)| *k != key);
        if entries.len() == Self::KEPT {
            entries.pop_front();
        }
        entries.push_back((key, value));
    }
}

/// One job's evaluation by a segment plugin ([`Plugin::evaluation`]): its
/// batches are served by one instance in turn.
///
/// Each call is a call of its own as far as the sandbox goes: the plugin's
/// limits, a fuel budget and a time limit for its batch, its own state
/// transaction and scope (the batch's subjects), its own cost and logs. What
/// carries over between the calls is the instance's memory: the plugin may
/// keep what it prepared (a parsed rule) for the job's next batch. The
/// batches of one job belong to one tenant, one segment and one purpose, so
/// nothing crosses a boundary the host draws; calls of different jobs never
/// share an instance. After a call that fails (a trap, an error, an output
/// that breaks the rules, a state conflict) the instance is dropped and the
/// next call gets a fresh one.
///
/// While it holds an instance, an evaluation holds one of the pool's slots
/// ([`crate::RuntimeConfig::concurrent_calls`]): drop it when the job ends.
/// At most a quarter of the slots are kept so at any time; beyond that, and
/// for plugins granted state (whose answers must come from what they read
/// in the call), each call gets a store of its own, as any call does. A
/// call that hits the memory or table limit in an instance that served
/// earlier calls gets one more try in a fresh one (the trap still counts
/// towards quarantine).
pub struct Evaluation {
    plugin: Plugin,
    params: Vec<FieldValue>,
    kept: Option<Kept>,
}

/// The store an [`Evaluation`] keeps between calls.
struct Kept {
    /// Declared before the slot: fields drop in order, and the slot may go
    /// back to the pool only once the store is gone.
    store: Store<HostState>,
    /// Instantiated by the first call, in its budgets.
    instance: Option<crate::api::segment::Segment>,
    /// The calls it served.
    calls: u32,
    _slot: Slot,
    _keep: Keep,
}

impl std::fmt::Debug for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluation")
            .field("plugin", &self.plugin.inner.label)
            .field("instance", &self.kept.is_some())
            .finish_non_exhaustive()
    }
}

impl Evaluation {
    /// Evaluates a batch of profile views.
    pub fn evaluate(&mut self, batch: &ProfileBatch) -> Result<Called<Memberships>, CallError> {
        self.evaluate_with(batch, &CallScope::new())
    }

    /// Evaluates a batch of profile views whose rows are `scope`'s
    /// subjects, so the plugin may keep state per row.
    pub fn evaluate_with(
        &mut self,
        batch: &ProfileBatch,
        scope: &CallScope,
    ) -> Result<Called<Memberships>, CallError> {
        let Evaluation {
            plugin,
            params,
            kept,
        } = self;
        let sandbox = &*plugin.inner;
        let Pre::Segment(pre) = &sandbox.pre else {
            return Err(plugin.unsupported("evaluate"));
        };
        let frame = Frame {
            scope,
            units: u64::from(batch.rows),
            now_ms: batch.now,
        };
        let check = |out: &Memberships| check_memberships(out, batch.rows);
        let mut fresh = |s: &mut Store<HostState>| {
            pre.instantiate(&mut *s)?
                .call_evaluate(&mut *s, params, batch)
        };
        sandbox.admit()?;
        let mut held = match kept.take() {
            Some(held) => held,
            None => {
                // A plugin granted state must answer from what it reads in
                // the call: a value kept in memory from an earlier page could
                // be written back unseen by the conflict check. Its calls,
                // and any beyond the runtime's share of kept slots, get
                // stores of their own.
                let keep = (sandbox.grants.state_quota == 0)
                    .then(|| sandbox.runtime.take_keep())
                    .flatten();
                let Some(keep) = keep else {
                    return sandbox.run_framed(&frame, fresh, check);
                };
                Kept {
                    _slot: sandbox.take_slot()?,
                    store: sandbox.new_store(),
                    instance: None,
                    calls: 0,
                    _keep: keep,
                }
            }
        };
        let reused = held.calls > 0;
        let instance = &mut held.instance;
        let attempt = sandbox.call_in(
            &mut held.store,
            &frame,
            &mut |s| {
                let segment = match instance {
                    Some(segment) => segment,
                    None => instance.insert(pre.instantiate(&mut *s)?),
                };
                segment.call_evaluate(&mut *s, params, batch)
            },
            &check,
            false,
        );
        match attempt {
            Ok(called) => {
                held.calls += 1;
                *kept = Some(held);
                Ok(called)
            }
            // What the instance gathered over earlier pages (memory that
            // never shrinks, tables) may be why it hit a limit where a fresh
            // one would not: the page gets one more try in a store of its
            // own.
            Err(Outcome::Failed(CallError::Trap {
                reason: TrapReason::MemoryLimit { .. } | TrapReason::TableLimit { .. },
                ..
            })) if reused => {
                drop(held);
                sandbox.run_framed(&frame, fresh, check)
            }
            Err(Outcome::Failed(error)) => Err(error),
            Err(Outcome::Conflict) => {
                // The instance saw state that is no longer current: as any
                // call, run again on the new state in a fresh store.
                drop(held);
                sandbox.run_exclusive(&frame, &mut fresh, &check)
            }
        }
    }
}

/// What a call runs in its store: the guest's answer (or its error), or
/// why wasm stopped.
trait CallBody<R>: FnMut(&mut Store<HostState>) -> wasmtime::Result<Result<R, types::Error>> {}

impl<R, F> CallBody<R> for F where
    F: FnMut(&mut Store<HostState>) -> wasmtime::Result<Result<R, types::Error>>
{
}

/// What one call runs under, the same for a retry: the subjects its rows
/// are (for plugin state), its size in units (its fuel and time limits
/// scale with it), and the time it runs at.
#[derive(Clone, Copy)]
struct Frame<'s> {
    scope: &'s CallScope,
    units: u64,
    now_ms: i64,
}

impl Sandbox {
    fn describe(&self) -> Result<Called<Manifest>, CallError> {
        for_each_world!(&self.pre, pre => self.run(
            0,
            now_ms(),
            |s| Ok(Ok(pre.instantiate(&mut *s)?.call_describe(&mut *s)?)),
            |_| Ok(()),
        ))
    }

    /// Runs one call in a fresh store: limits, fuel scaled to `units`, an epoch
    /// deadline, then the output checks. A trap counts towards quarantine;
    /// state writes are committed only if the call succeeded.
    fn run<R: OutputSize>(
        &self,
        units: u64,
        now_ms: i64,
        body: impl CallBody<R>,
        check: impl Fn(&R) -> Result<(), String>,
    ) -> Result<Called<R>, CallError> {
        self.run_scoped(&CallScope::new(), units, now_ms, body, check)
    }

    /// [`Sandbox::run`] for a call whose batch rows are `scope`'s subjects.
    fn run_scoped<R: OutputSize>(
        &self,
        scope: &CallScope,
        units: u64,
        now_ms: i64,
        body: impl CallBody<R>,
        check: impl Fn(&R) -> Result<(), String>,
    ) -> Result<Called<R>, CallError> {
        let frame = Frame {
            scope,
            units,
            now_ms,
        };
        self.run_framed(&frame, body, check)
    }

    /// [`Sandbox::run_scoped`] under a frame the caller already holds.
    fn run_framed<R: OutputSize>(
        &self,
        frame: &Frame<'_>,
        mut body: impl CallBody<R>,
        check: impl Fn(&R) -> Result<(), String>,
    ) -> Result<Called<R>, CallError> {
        // Calls run concurrently and commit state optimistically. A call whose
        // writes conflict with another's is run again on the new state (calls
        // are functions of their input and state) while holding the commit
        // lock, so no other call of this installation in this process can
        // commit in between: the retry cannot lose to them again.
        match self.run_once(frame, &mut body, &check, false) {
            Err(Outcome::Conflict) => self.run_exclusive(frame, &mut body, &check),
            Err(Outcome::Failed(error)) => Err(error),
            Ok(called) => Ok(called),
        }
    }

    /// A call whose first attempt conflicted, run again in a fresh store
    /// holding the commit lock.
    fn run_exclusive<R: OutputSize>(
        &self,
        frame: &Frame<'_>,
        body: &mut impl CallBody<R>,
        check: &impl Fn(&R) -> Result<(), String>,
    ) -> Result<Called<R>, CallError> {
        let _exclusive = self
            .commit_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match self.run_once(frame, body, check, true) {
            Ok(called) => Ok(called),
            Err(Outcome::Failed(error)) => Err(error),
            Err(Outcome::Conflict) => Err(self.host_error(
                "the plugin's state was changed by another process during the call".into(),
            )),
        }
    }

    fn run_once<R: OutputSize>(
        &self,
        frame: &Frame<'_>,
        body: &mut impl CallBody<R>,
        check: &impl Fn(&R) -> Result<(), String>,
        holding_commit_lock: bool,
    ) -> Result<Called<R>, Outcome> {
        self.admit()?;
        // An instance slot of the pool, held until the store is gone: when
        // every slot is in use the call waits its turn (bounded) instead of
        // failing in the allocator.
        let slot = self.take_slot()?;
        let mut store = self.new_store();
        let called = self.call_in(&mut store, frame, body, check, holding_commit_lock);
        drop(store);
        drop(slot);
        called
    }

    /// Refuses a call to a quarantined plugin.
    fn admit(&self) -> Result<(), CallError> {
        self.health.check().map_err(|q| CallError::Quarantined {
            plugin: self.label.clone(),
            traps: q.traps,
            last: q.last,
        })
    }

    fn take_slot(&self) -> Result<Slot, CallError> {
        self.runtime.take_slot().ok_or_else(|| CallError::Busy {
            plugin: self.label.clone(),
            slots: self.runtime.slots.total(),
            waited_ms: u64::try_from(self.runtime.config.slot_wait.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// A store for this plugin's calls, under its limits.
    fn new_store(&self) -> Store<HostState> {
        let state = HostState::new(&self.limits, Arc::from(self.label.as_str()));
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }

    /// One call in `store` (fresh, or kept from the calls of an
    /// [`Evaluation`] before): the state transaction of the frame's scope,
    /// fuel scaled to its units, an epoch deadline, then the output checks.
    /// A trap counts towards quarantine; state writes are committed only if
    /// the call succeeded.
    fn call_in<R: OutputSize>(
        &self,
        store: &mut Store<HostState>,
        frame: &Frame<'_>,
        body: &mut impl CallBody<R>,
        check: &impl Fn(&R) -> Result<(), String>,
        holding_commit_lock: bool,
    ) -> Result<Called<R>, Outcome> {
        let Frame {
            scope,
            units,
            now_ms,
        } = *frame;
        let config = &self.runtime.config;
        let txn = (self.grants.state_quota > 0).then(|| {
            StateTxn::new(
                self.state.clone(),
                scope.state_scope(&self.scope),
                self.grants.state_quota,
                scope.subjects.clone(),
            )
        });
        store
            .data_mut()
            .begin_call(now_ms, txn, scope.trait_kinds.clone());

        let fuel_budget = if config.fuel {
            self.limits.fuel_for(units)
        } else {
            0
        };
        if config.fuel {
            store
                .set_fuel(fuel_budget)
                .map_err(|e| self.host_error(format!("{e:#}")))?;
        }
        // Bounds what the host copies out of the guest in any one transfer
        // (the result, or one host call's arguments) while copying: strings
        // that alias one buffer could otherwise make the host allocate far
        // more than the guest's memory before the result could be measured.
        store.set_hostcall_fuel(usize::try_from(self.limits.output_bytes).unwrap_or(usize::MAX));
        let time_limit = self.limits.time_for(units);
        if let (Pre::Connector(_), Some(outbound)) =
            (&self.pre, self.grants.outbound_for(PluginKind::Connector))
        {
            // Requests end with the call: none may outlive its time limit.
            store.data_mut().outbound = Some(OutboundCall::new(
                outbound.clone(),
                config.resolver.clone(),
                config.outbound_roots.clone(),
                Instant::now() + time_limit,
            ));
        }
        if config.epochs {
            let tick = config.epoch_tick.as_nanos().max(1);
            let ticks = time_limit.as_nanos().div_ceil(tick).max(1);
            store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
            store.epoch_deadline_trap();
        }

        let started = Instant::now();
        let outcome = body(store);
        let wall = started.elapsed();
        let fuel = if config.fuel {
            fuel_budget - store.get_fuel().unwrap_or(0)
        } else {
            0
        };
        let usage = &self.usage;
        usage.calls.fetch_add(1, Ordering::Relaxed);
        usage.fuel.fetch_add(fuel, Ordering::Relaxed);
        usage.wall_ns.fetch_add(
            u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let data = store.data_mut();
        let outbound = data.outbound.take();
        let mut cost = Cost {
            fuel,
            fuel_budget,
            wall,
            peak_memory: data.limiter.peak_memory,
            host_calls: data.host_calls,
            guest_bytes: data.guest_bytes,
            http_bytes: outbound.as_ref().map_or(0, OutboundCall::received),
            output_bytes: 0,
        };
        let txn = data.state.take();
        let logs = std::mem::take(&mut data.logs);
        let logs_dropped = data.logs_dropped;

        let value = match outcome {
            Ok(Ok(value)) => value,
            Ok(Err(error)) => {
                return Err(Outcome::Failed(CallError::Plugin {
                    plugin: self.label.clone(),
                    error: plugin_error(error),
                }));
            }
            Err(error) => {
                return Err(Outcome::Failed(
                    match classify(&error, fuel_budget, time_limit, self.limits.output_bytes) {
                        Failure::Trap(reason) => self.trapped(reason),
                        Failure::Host(detail) => self.host_error(detail),
                    },
                ));
            }
        };
        cost.output_bytes = value.output_size();
        if cost.output_bytes > self.limits.output_bytes {
            return Err(Outcome::Failed(self.trapped(TrapReason::OutputTooLarge {
                limit: self.limits.output_bytes,
                size: cost.output_bytes,
            })));
        }
        if let Err(detail) = check(&value) {
            self.health
                .record_trap(&TrapReason::Other(format!("invalid output: {detail}")));
            return Err(Outcome::Failed(CallError::InvalidOutput {
                plugin: self.label.clone(),
                detail,
            }));
        }
        let commit = |txn: StateTxn| {
            if holding_commit_lock {
                txn.commit()
            } else {
                let _lock = self
                    .commit_lock
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                txn.commit()
            }
        };
        match txn.map(commit) {
            None | Some(Ok(())) => {}
            Some(Err(StateError::Conflict)) => return Err(Outcome::Conflict),
            // A concurrent call used the quota first, the subject was
            // erased or the plugin removed during the call: nothing of the
            // call's state is kept, and it is not the host failing.
            Some(Err(
                error @ (StateError::Quota { .. }
                | StateError::UnknownSubject { .. }
                | StateError::Retired),
            )) => {
                return Err(Outcome::Failed(CallError::Plugin {
                    plugin: self.label.clone(),
                    error: PluginError::Unavailable(error.to_string()),
                }));
            }
            Some(Err(error)) => return Err(Outcome::Failed(self.host_error(error.to_string()))),
        }
        Ok(Called {
            value,
            cost,
            logs,
            logs_dropped,
        })
    }

    fn trapped(&self, reason: TrapReason) -> CallError {
        let quarantined = self.health.record_trap(&reason);
        tracing::warn!(plugin = %self.label, %reason, quarantined, "plugin trapped");
        CallError::Trap {
            plugin: self.label.clone(),
            reason,
        }
    }

    fn host_error(&self, detail: String) -> CallError {
        tracing::error!(plugin = %self.label, %detail, "host failure during a plugin call");
        CallError::Host {
            plugin: self.label.clone(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value};
    use crate::{
        Grants, InstallRequest, Limits, MemoryState, PluginKind, QuarantinePolicy, Runtime,
        RuntimeConfig,
    };

    fn install(runtime: &Runtime, bytes: &[u8], installation: &str) -> super::Plugin {
        runtime
            .install(
                bytes,
                InstallRequest {
                    kind: PluginKind::Segment,
                    grants: Grants::default(),
                    limits: Limits::default(),
                    tenant: "acme".into(),
                    installation: installation.into(),
                    state: std::sync::Arc::new(MemoryState::new()),
                },
            )
            .expect("install")
    }

    fn spend(values: &[f64]) -> ProfileBatch {
        ProfileBatch {
            rows: values.len() as u32,
            keys: (0..values.len() as u64).collect(),
            fields: vec![Column {
                data: ColumnData::Number(values.to_vec()),
                present: Vec::new(),
            }],
            aggregates: Vec::new(),
            now: 1_780_000_000_000,
        }
    }

    #[test]
    fn stats_count_calls_fuel_and_traps_and_show_the_quarantine() {
        let runtime = Runtime::with_quarantine(
            RuntimeConfig::default(),
            QuarantinePolicy {
                max_traps: 2,
                window: Duration::from_secs(60),
            },
        )
        .expect("runtime");
        let honest = install(&runtime, tessera_guests::plugins::THRESHOLD, "honest");
        let installed = honest.stats();
        assert!(installed.calls >= 1, "install describes the plugin");
        assert_eq!((installed.traps, installed.quarantined), (0, false));

        let params = [FieldValue {
            name: "threshold".into(),
            value: Value::Number(500.0),
        }];
        honest
            .evaluate(&params, &spend(&[100.0, 900.0]))
            .expect("call");
        let after = honest.stats();
        assert_eq!(after.calls, installed.calls + 1);
        assert!(after.fuel > installed.fuel, "{after:?}");
        assert!(after.wall > installed.wall);

        let bytes = std::fs::read(tessera_guests::test_programs::PANIC).expect("panic guest");
        let hostile = install(&runtime, &bytes, "hostile");
        let before = hostile.stats();
        for _ in 0..2 {
            assert!(hostile.evaluate(&[], &spend(&[1.0])).is_err());
        }
        let trapped = hostile.stats();
        assert_eq!(trapped.calls, before.calls + 2);
        assert_eq!((trapped.traps, trapped.quarantined), (2, true));
        // A refused call did not run: it is not counted.
        assert!(hostile.evaluate(&[], &spend(&[1.0])).is_err());
        assert_eq!(hostile.stats().calls, trapped.calls);
        hostile.release();
        assert!(!hostile.stats().quarantined);
        assert_eq!(hostile.stats().traps, 2, "released, the history stays");
        // The honest plugin's counters are its own.
        assert_eq!(honest.stats(), after);
    }
}

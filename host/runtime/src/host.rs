//! What a plugin's store holds and the host imports it may call: `host` (log,
//! clock), `state`, and empty WASI. Every host call is counted and every byte
//! copied out of the guest is charged against the call's budget; a plugin that
//! floods the host is trapped, not served.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result as WasmResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::api::{host, http, records, segments, state, strategies, types};
use crate::bindings::plan_v0_1::schema;
use crate::bindings::strategy_v0_1::{self as strategy_api, segment_plan};
use crate::call::{LogLevel, LogLine};
use crate::limits::Limits;
use crate::outbound::{OutboundCall, SendError};
use tessera_state::{KeyRefused, Listing, StateError, StateKeys, StateScope, StateStore};

/// A limit the host enforces inside a call; raised as a trap and classified
/// into a [`crate::TrapReason`] afterwards.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum HostLimit {
    #[error("more than {limit} host calls")]
    HostCalls { limit: u64 },
    #[error("more than {limit} bytes passed to host calls")]
    GuestBytes { limit: u64 },
    #[error("memory limit of {limit} bytes exceeded (asked for {requested})")]
    Memory { limit: u64, requested: u64 },
    #[error("table limit of {limit} elements exceeded (asked for {requested})")]
    Table { limit: u64, requested: u64 },
    #[error("the plugin tried to block (sleep or wait on I/O), which plugins may not do")]
    Blocking,
}

/// A call of an import the host links only so that a component of its world
/// instantiates, and never serves: a trap whose message names the function.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NotServed(pub &'static str);

/// A failure of the host itself during a call (not the plugin's fault).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HostFault(pub String);

/// Tracks linear memory and tables against the plugin's limits, and the peak.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_limit: u64,
    table_limit: u64,
    instances: usize,
    memory: u64,
    tables: u64,
    /// Growth granted by the last `*_growing` call, taken back if the grow
    /// then fails (e.g. past the memory's own declared maximum).
    pending_memory: u64,
    pending_tables: u64,
    pub peak_memory: u64,
}

impl Limiter {
    fn new(limits: &Limits) -> Self {
        Limiter {
            memory_limit: limits.memory_bytes,
            table_limit: limits.table_elements,
            instances: limits.instances,
            memory: 0,
            tables: 0,
            pending_memory: 0,
            pending_tables: 0,
            peak_memory: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> WasmResult<bool> {
        let next = (self.memory + desired as u64).saturating_sub(current as u64);
        if next > self.memory_limit {
            return Err(wasmtime::Error::new(HostLimit::Memory {
                limit: self.memory_limit,
                requested: next,
            }));
        }
        self.pending_memory = next.saturating_sub(self.memory);
        self.memory = next;
        self.peak_memory = self.peak_memory.max(next);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> WasmResult<()> {
        self.memory -= std::mem::take(&mut self.pending_memory);
        Ok(())
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> WasmResult<()> {
        self.tables -= std::mem::take(&mut self.pending_tables);
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> WasmResult<bool> {
        let next = (self.tables + desired as u64).saturating_sub(current as u64);
        if next > self.table_limit {
            return Err(wasmtime::Error::new(HostLimit::Table {
                limit: self.table_limit,
                requested: next,
            }));
        }
        self.pending_tables = next.saturating_sub(self.tables);
        self.tables = next;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }
    fn tables(&self) -> usize {
        self.instances
    }
    fn memories(&self) -> usize {
        self.instances
    }
}

/// The plugin's view of its state during one call: reads see the call's own
/// writes; writes are applied by [`StateTxn::commit`] only if the call
/// succeeds, and only if no other call changed the scope since this one first
/// read it (optimistic concurrency: the caller re-runs a call that conflicts).
///
/// Keys under `subject/` are translated between the row keys the plugin
/// knows and the subject ids the store keeps (see [`StateKeys`]); the
/// overlay holds keys as stored.
#[derive(Debug)]
pub(crate) struct StateTxn {
    store: Arc<dyn StateStore>,
    scope: StateScope,
    quota: u64,
    /// The subjects of the call's batch, if it was given one.
    subjects: Option<Arc<dyn StateKeys>>,
    overlay: BTreeMap<String, Option<Vec<u8>>>,
    /// The scope's version when this call first touched it.
    base: Option<u64>,
    projected: Option<u64>,
}

impl StateTxn {
    pub fn new(
        store: Arc<dyn StateStore>,
        scope: StateScope,
        quota: u64,
        subjects: Option<Arc<dyn StateKeys>>,
    ) -> Self {
        StateTxn {
            store,
            scope,
            quota,
            subjects,
            overlay: BTreeMap::new(),
            base: None,
            projected: None,
        }
    }

    fn begin(&mut self) -> Result<(), StateError> {
        if self.base.is_none() {
            self.base = Some(self.store.version(&self.scope)?);
        }
        Ok(())
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.begin()?;
        match self.overlay.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.store.get(&self.scope, key),
        }
    }

    fn put(&mut self, key: String, value: Option<Vec<u8>>) -> Result<(), StateError> {
        self.begin()?;
        let projected = match self.projected {
            Some(p) => p,
            None => self.store.usage(&self.scope)?,
        };
        let old = self
            .get(&key)?
            .map(|v| (key.len() + v.len()) as u64)
            .unwrap_or(0);
        let new = value
            .as_ref()
            .map(|v| (key.len() + v.len()) as u64)
            .unwrap_or(0);
        let next = projected.saturating_sub(old) + new;
        // Writes that do not grow the state are always allowed, so a scope
        // over its quota (after the quota was lowered) can still shrink.
        if new > old && next > self.quota {
            self.projected = Some(projected);
            return Err(StateError::Quota {
                quota: self.quota,
                needed: next,
            });
        }
        self.projected = Some(next);
        self.overlay.insert(key, value);
        Ok(())
    }

    fn keys(&mut self, prefix: &str, limit: usize) -> Result<Vec<String>, StateError> {
        self.begin()?;
        let mut keys: std::collections::BTreeSet<String> = self
            .store
            .keys(
                &self.scope,
                prefix,
                limit.saturating_add(self.overlay.len()),
            )?
            .into_iter()
            .collect();
        for (key, value) in self.overlay.range(prefix.to_string()..) {
            if !key.starts_with(prefix) {
                break;
            }
            if value.is_some() {
                keys.insert(key.clone());
            } else {
                keys.remove(key);
            }
        }
        Ok(keys.into_iter().take(limit).collect())
    }

    /// The stored key for a key the plugin used.
    fn store_key(&self, key: &str) -> Result<String, KeyRefused> {
        tessera_state::store_key(self.subjects.as_deref(), key)
    }

    /// Keys the plugin may see with `prefix`, as it names them, in order.
    fn plugin_keys(&mut self, prefix: &str, limit: usize) -> Result<Vec<String>, StateError> {
        let subjects = self.subjects.clone();
        let translate = |stored: Vec<String>| -> Vec<String> {
            stored
                .iter()
                .filter_map(|k| tessera_state::plugin_key(subjects.as_deref(), k))
                .collect()
        };
        let mut keys = match tessera_state::listing(subjects.as_deref(), prefix) {
            Listing::Nothing => return Ok(Vec::new()),
            // Within one subject, or outside `subject/`: translation keeps the order.
            Listing::Prefix(stored) => return Ok(translate(self.keys(&stored, limit)?)),
            Listing::Subjects(prefixes) => {
                let mut keys = Vec::new();
                for stored in prefixes {
                    keys.extend(translate(self.keys(&stored, limit)?));
                }
                keys
            }
            // Spans every subject's state, in subject id order: listed whole
            // (bounded by the quota), so that others' keys neither show nor
            // crowd out the plugin's.
            Listing::Whole(stored) => translate(self.keys(&stored, usize::MAX)?),
        };
        keys.sort_unstable();
        keys.truncate(limit);
        Ok(keys)
    }

    /// Applies the call's writes atomically, if the scope is unchanged since
    /// the call first read it.
    pub fn commit(self) -> Result<(), StateError> {
        let Some(base) = self.base else { return Ok(()) };
        if self.overlay.is_empty() {
            return Ok(());
        }
        let writes: Vec<_> = self.overlay.into_iter().collect();
        self.store.apply(&self.scope, base, &writes, self.quota)
    }
}

/// The data of a plugin's store: one call's, or the calls' of an
/// [`crate::Evaluation`] in turn ([`HostState::begin_call`]).
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    pub host_calls: u64,
    pub guest_bytes: u64,
    max_host_calls: u64,
    max_guest_bytes: u64,
    max_log_lines: u32,
    max_log_line_bytes: usize,
    pub logs: Vec<LogLine>,
    pub logs_dropped: u32,
    /// "Now" for this call, in ms since the epoch.
    now_ms: i64,
    pub state: Option<StateTxn>,
    /// Outbound HTTP, for connectors granted it.
    pub outbound: Option<OutboundCall>,
    /// `name@version` for log lines.
    label: Arc<str>,
    /// What `tessera:plan/schema` answers (none: nothing).
    pub trait_kinds: Option<crate::TraitKinds>,
}

impl HostState {
    pub fn new(limits: &Limits, label: Arc<str>) -> Self {
        // No environment, arguments, preopened directories, sockets or stdio:
        // WASI is linked only because std guests import it.
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(64 << 10);
        // WASI resources (streams, pollables) live in host memory the guest's
        // memory limit does not see; an honest plugin holds a handful.
        let mut table = ResourceTable::new();
        table.set_max_capacity(1024);
        HostState {
            wasi: wasi.build(),
            table,
            limiter: Limiter::new(limits),
            host_calls: 0,
            guest_bytes: 0,
            max_host_calls: limits.host_calls,
            max_guest_bytes: limits.guest_bytes,
            max_log_lines: limits.log_lines,
            max_log_line_bytes: limits.log_line_bytes,
            logs: Vec::new(),
            logs_dropped: 0,
            now_ms: 0,
            state: None,
            outbound: None,
            label,
            trait_kinds: None,
        }
    }

    /// Readies the store for a call at `now_ms` with `state` and
    /// `trait_kinds`: the counters, logs and peak memory of a call before
    /// it (in a kept store) are gone, and so is any outbound session.
    pub fn begin_call(
        &mut self,
        now_ms: i64,
        state: Option<StateTxn>,
        trait_kinds: Option<crate::TraitKinds>,
    ) {
        self.now_ms = now_ms;
        self.state = state;
        self.trait_kinds = trait_kinds;
        self.host_calls = 0;
        self.guest_bytes = 0;
        self.logs.clear();
        self.logs_dropped = 0;
        self.outbound = None;
        self.limiter.peak_memory = self.limiter.memory;
    }

    /// Counts one host call that copies `bytes` out of the guest.
    fn charge(&mut self, bytes: usize) -> WasmResult<()> {
        self.host_calls += 1;
        if self.host_calls > self.max_host_calls {
            return Err(wasmtime::Error::new(HostLimit::HostCalls {
                limit: self.max_host_calls,
            }));
        }
        self.guest_bytes = self.guest_bytes.saturating_add(bytes as u64);
        if self.guest_bytes > self.max_guest_bytes {
            return Err(wasmtime::Error::new(HostLimit::GuestBytes {
                limit: self.max_guest_bytes,
            }));
        }
        Ok(())
    }

    fn state(&mut self) -> WasmResult<&mut StateTxn> {
        // Unreachable by construction: `state` is linked only with a grant.
        self.state
            .as_mut()
            .ok_or_else(|| wasmtime::Error::new(HostFault("state is not granted".into())))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}
impl records::Host for HostState {}
impl segments::Host for HostState {}
impl strategies::Host for HostState {}

impl schema::Host for HostState {
    fn trait_kind(&mut self, name: String) -> WasmResult<Option<types::ValueKind>> {
        self.charge(name.len())?;
        Ok(self
            .trait_kinds
            .as_ref()
            .and_then(|kinds| kinds.get(&name).copied()))
    }
}

// `tessera:strategy/planned-strategy` imports `tessera:plan/segment-plan`
// for its types; a toolchain that imports every function of an imported
// interface (componentize-js, componentize-py) imports `plan` too. It is
// linked so that such a strategy installs, and traps if called: a plan is
// something a plugin exports, never something the host answers, and a
// trap cannot be mistaken for a plan the plugin could act on.
impl segment_plan::Host for HostState {
    fn plan(
        &mut self,
        _params: Vec<types::FieldValue>,
    ) -> WasmResult<Result<segment_plan::Needs, types::Error>> {
        Err(wasmtime::Error::new(NotServed(
            strategy_api::NOT_A_HOST_FUNCTION,
        )))
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: host::Level, message: String) -> WasmResult<()> {
        self.charge(message.len())?;
        if self.logs.len() as u32 >= self.max_log_lines {
            self.logs_dropped = self.logs_dropped.saturating_add(1);
            return Ok(());
        }
        let mut message = message;
        if message.len() > self.max_log_line_bytes {
            let mut end = self.max_log_line_bytes;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        let level = match level {
            host::Level::Trace => LogLevel::Trace,
            host::Level::Debug => LogLevel::Debug,
            host::Level::Info => LogLevel::Info,
            host::Level::Warn => LogLevel::Warn,
            host::Level::Error => LogLevel::Error,
        };
        let plugin = &*self.label;
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
        self.logs.push(LogLine { level, message });
        Ok(())
    }

    fn now(&mut self) -> WasmResult<types::Timestamp> {
        self.charge(0)?;
        Ok(self.now_ms)
    }
}

fn state_error(e: StateError) -> WasmResult<types::Error> {
    match e {
        StateError::Quota { .. } => Ok(types::Error::Unavailable(e.to_string())),
        // Conflicts surface at commit, not here; anything else is the store's.
        _ => Err(wasmtime::Error::new(HostFault(e.to_string()))),
    }
}

// A key under `subject/` that names no row of the call reads as missing,
// deletes nothing and is refused (`invalid-input`) when written.
impl state::Host for HostState {
    fn get(&mut self, key: String) -> WasmResult<Option<Vec<u8>>> {
        self.charge(key.len())?;
        let txn = self.state()?;
        let Ok(key) = txn.store_key(&key) else {
            return Ok(None);
        };
        txn.get(&key)
            .map_err(|e| wasmtime::Error::new(HostFault(e.to_string())))
    }

    fn put(&mut self, key: String, value: Vec<u8>) -> WasmResult<Result<(), types::Error>> {
        self.charge(key.len() + value.len())?;
        let txn = self.state()?;
        let key = match txn.store_key(&key) {
            Ok(key) => key,
            Err(refused) => return Ok(Err(types::Error::InvalidInput(refused.to_string()))),
        };
        match txn.put(key, Some(value)) {
            Ok(()) => Ok(Ok(())),
            Err(e) => state_error(e).map(Err),
        }
    }

    fn delete(&mut self, key: String) -> WasmResult<()> {
        self.charge(key.len())?;
        let txn = self.state()?;
        let Ok(key) = txn.store_key(&key) else {
            return Ok(());
        };
        match txn.put(key, None) {
            Ok(()) => Ok(()),
            Err(e) => state_error(e).map(|_| ()),
        }
    }

    fn keys(&mut self, prefix: String, limit: u32) -> WasmResult<Vec<String>> {
        self.charge(prefix.len())?;
        let keys = self
            .state()?
            .plugin_keys(&prefix, limit.min(10_000) as usize)
            .map_err(|e| wasmtime::Error::new(HostFault(e.to_string())))?;
        Ok(keys)
    }
}

impl http::Host for HostState {
    fn send(&mut self, request: http::Request) -> WasmResult<Result<http::Response, types::Error>> {
        let header_bytes: usize = request
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len())
            .sum();
        self.charge(request.method.len() + request.url.len() + header_bytes + request.body.len())?;
        let plugin = self.label.clone();
        // Unreachable by construction: `http` is linked only with a grant.
        let outbound = self.outbound.as_mut().ok_or_else(|| {
            wasmtime::Error::new(HostFault("outbound HTTP is not granted".into()))
        })?;
        // Refusals and failures are the plugin's to handle, never a trap.
        Ok(outbound
            .send(request, &plugin)
            .map_err(|error| match error {
                SendError::Invalid(message) => {
                    tracing::debug!(plugin = &*plugin, %message, "outbound request invalid");
                    types::Error::InvalidInput(message)
                }
                SendError::Refused(message) => {
                    tracing::warn!(plugin = &*plugin, %message, "outbound request refused");
                    types::Error::Unavailable(format!("outbound request refused: {message}"))
                }
                SendError::Failed(message) => {
                    tracing::info!(plugin = &*plugin, %message, "outbound request failed");
                    types::Error::Unavailable(message)
                }
            }))
    }
}

//! The plugins a server runs: its [`PluginHost`] (the process's plugin
//! runtime and the plugins installed in it, by tenant), `GET /v1/plugins`,
//! `GET /v1/plugins/{name}` and the plugin series of `/metrics`.
//!
//! Installing over HTTP arrives with signed bundles; until then `tessera
//! serve` installs the first-party plugins for every tenant at start.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, PoisonError, RwLock};

use axum::Extension;
use axum::extract::State;
use serde::Serialize;
use tessera_runtime::{InstallError, InstallRequest, Plugin, PluginStats, Runtime};

use crate::AppState;
use crate::error::{ApiError, ErrorBody, Json, Path};
use crate::tokens::Principal;

/// One installed plugin of one tenant.
#[derive(Debug, Clone)]
pub struct Installed {
    pub tenant: String,
    /// The host's id of the installation, unique within the tenant; it
    /// scopes the plugin's state.
    pub installation: String,
    pub plugin: Plugin,
    pub installed_at_ms: i64,
}

/// Why [`PluginHost::install`] refused a plugin.
#[derive(Debug)]
pub enum InstallRefused {
    /// The runtime refused the component.
    Install(InstallError),
    /// The tenant already has a plugin of that name, or that installation id.
    Taken { tenant: String, what: String },
}

impl std::fmt::Display for InstallRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Install(error) => error.fmt(f),
            Self::Taken { tenant, what } => {
                write!(f, "tenant {tenant:?} already has a plugin with {what}")
            }
        }
    }
}

impl std::error::Error for InstallRefused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Install(error) => Some(error),
            Self::Taken { .. } => None,
        }
    }
}

/// The process's plugin runtime and what is installed in it. Cheap to
/// clone; clones share the installations.
///
/// Installing and calling a plugin block the thread (a call may take up to
/// its time limit, and WASI's synchronous bindings refuse to run on an
/// async runtime's thread): run them on tokio's blocking pool
/// (`spawn_blocking`), never on the async threads.
#[derive(Debug, Clone)]
pub struct PluginHost {
    runtime: Runtime,
    installed: Arc<RwLock<Vec<Installed>>>,
}

impl PluginHost {
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            installed: Arc::default(),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Installs a component for `request.tenant`. A tenant has at most one
    /// plugin of each name (the name the plugin declares), so that
    /// `/v1/plugins/{name}` names one installation.
    pub fn install(&self, bytes: &[u8], request: InstallRequest) -> Result<Plugin, InstallRefused> {
        let tenant = request.tenant.clone();
        let installation = request.installation.clone();
        let plugin = self
            .runtime
            .install(bytes, request)
            .map_err(InstallRefused::Install)?;
        let name = plugin.info().manifest.name.clone();
        let mut installed = self
            .installed
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for other in installed.iter().filter(|i| i.tenant == tenant) {
            let what = if other.plugin.info().manifest.name == name {
                format!("the name {name:?}")
            } else if other.installation == installation {
                format!("the installation id {installation:?}")
            } else {
                continue;
            };
            return Err(InstallRefused::Taken { tenant, what });
        }
        installed.push(Installed {
            tenant,
            installation,
            plugin: plugin.clone(),
            installed_at_ms: crate::tokens::now_ms(),
        });
        Ok(plugin)
    }

    /// The plugins installed for `tenant`, by name.
    pub fn plugins(&self, tenant: &str) -> Vec<Installed> {
        let mut plugins: Vec<Installed> = self
            .installed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|i| i.tenant == tenant)
            .cloned()
            .collect();
        plugins.sort_by(|a, b| {
            a.plugin
                .info()
                .manifest
                .name
                .cmp(&b.plugin.info().manifest.name)
        });
        plugins
    }

    /// The plugin of `tenant` named `name`.
    pub fn plugin(&self, tenant: &str, name: &str) -> Option<Installed> {
        self.installed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|i| i.tenant == tenant && i.plugin.info().manifest.name == name)
            .cloned()
    }

    /// Every installation of every tenant (for the metrics).
    fn all(&self) -> Vec<Installed> {
        self.installed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Whether a plugin's calls are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PluginStatus {
    Active,
    /// It trapped too often; calls are refused until an operator releases it.
    Quarantined,
}

/// A plugin as `GET /v1/plugins` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginView {
    pub name: String,
    pub version: String,
    pub description: String,
    /// The world it implements: `connector`, `segment` or `strategy`.
    pub kind: String,
    /// The version of the plugin contract (WIT package) it was built for.
    pub wit_version: String,
    pub installation: String,
    /// SHA-256 of the component, hex.
    pub content_hash: String,
    pub installed_at_ms: i64,
    pub status: PluginStatus,
    /// The processing purposes it declares it works for.
    pub purposes: Vec<String>,
    /// The profile fields it declares it reads.
    pub fields: Vec<String>,
    pub grants: PluginGrants,
    pub limits: PluginLimits,
    pub usage: PluginUsage,
}

/// What the plugin was granted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginGrants {
    /// Bytes of plugin state; 0: no state.
    pub state_quota_bytes: u64,
}

/// What one call of the plugin may use (fuel and time grow with the size
/// of the call: rows of a batch, blocks of a chunk, actions).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginLimits {
    pub fuel_base: u64,
    pub fuel_per_unit: u64,
    pub time_base_ms: u64,
    pub time_per_unit_us: u64,
    pub memory_bytes: u64,
    pub table_elements: u64,
    pub instances: usize,
    pub host_calls: u64,
    pub guest_bytes: u64,
    pub output_bytes: u64,
    pub log_lines: u32,
}

/// What the plugin has used since this server installed it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginUsage {
    /// Calls that ran (succeeded, failed or trapped), install's own included.
    pub calls: u64,
    /// Fuel consumed (≈ wasm instructions).
    pub fuel: u64,
    /// Wall time of those calls, in milliseconds.
    pub wall_ms: u64,
    pub traps: u64,
}

/// `GET /v1/plugins`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginView>,
}

impl PluginView {
    fn of(installed: &Installed) -> Self {
        let plugin = &installed.plugin;
        let info = plugin.info();
        let limits = plugin.limits();
        let stats: PluginStats = plugin.stats();
        Self {
            name: info.manifest.name.clone(),
            version: info.manifest.version.clone(),
            description: info.manifest.description.clone(),
            kind: info.kind.as_str().to_owned(),
            wit_version: info.wit_version.as_str().to_owned(),
            installation: installed.installation.clone(),
            content_hash: info.content_hash.clone(),
            installed_at_ms: installed.installed_at_ms,
            status: if stats.quarantined {
                PluginStatus::Quarantined
            } else {
                PluginStatus::Active
            },
            purposes: info.manifest.purposes.clone(),
            fields: info
                .manifest
                .fields
                .iter()
                .map(|f| f.name.clone())
                .collect(),
            grants: PluginGrants {
                state_quota_bytes: plugin.grants().state_quota,
            },
            limits: PluginLimits {
                fuel_base: limits.fuel_base,
                fuel_per_unit: limits.fuel_per_unit,
                time_base_ms: millis(limits.time_base),
                time_per_unit_us: u64::try_from(limits.time_per_unit.as_micros())
                    .unwrap_or(u64::MAX),
                memory_bytes: limits.memory_bytes,
                table_elements: limits.table_elements,
                instances: limits.instances,
                host_calls: limits.host_calls,
                guest_bytes: limits.guest_bytes,
                output_bytes: limits.output_bytes,
                log_lines: limits.log_lines,
            },
            usage: PluginUsage {
                calls: stats.calls,
                fuel: stats.fuel,
                wall_ms: millis(stats.wall),
                traps: stats.traps,
            },
        }
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `GET /v1/plugins`: the tenant's plugins, by name, with their status and
/// usage. Empty when the server runs without a plugin runtime.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, description = "The tenant's plugins.", body = PluginList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Json<PluginList> {
    let plugins = state
        .plugins
        .as_ref()
        .map(|host| host.plugins(&principal.tenant))
        .unwrap_or_default();
    Json(PluginList {
        plugins: plugins.iter().map(PluginView::of).collect(),
    })
}

/// `GET /v1/plugins/{name}`: one plugin of the tenant.
#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "The plugin.", body = PluginView),
        (status = 404, description = "The tenant has no plugin with that name.", body = ErrorBody),
    ))]
pub(crate) async fn status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    state
        .plugins
        .as_ref()
        .and_then(|host| host.plugin(&principal.tenant, &name))
        .map(|installed| Json(PluginView::of(&installed)))
        .ok_or_else(|| {
            ApiError::not_found("unknown_plugin", "the tenant has no plugin with that name")
        })
}

/// The plugin series of `/metrics`: each plugin (name and version) over
/// the installations of every tenant, since no label names a tenant.
pub(crate) fn render_metrics(host: &PluginHost) -> String {
    #[derive(Default)]
    struct Totals {
        calls: u64,
        fuel: u64,
        wall_seconds: f64,
        traps: u64,
        quarantined: u64,
    }
    let mut totals: BTreeMap<(String, String), Totals> = BTreeMap::new();
    for installed in host.all() {
        let info = installed.plugin.info();
        let stats = installed.plugin.stats();
        let t = totals
            .entry((info.manifest.name.clone(), info.manifest.version.clone()))
            .or_default();
        t.calls += stats.calls;
        t.fuel += stats.fuel;
        t.wall_seconds += stats.wall.as_secs_f64();
        t.traps += stats.traps;
        t.quarantined += u64::from(stats.quarantined);
    }
    /// A series: name, type, help and its value for one plugin.
    type Series = (
        &'static str,
        &'static str,
        &'static str,
        fn(&Totals) -> String,
    );
    let mut out = String::new();
    let series: [Series; 5] = [
        (
            "tessera_plugin_calls_total",
            "counter",
            "Plugin calls that ran (succeeded, failed or trapped).",
            |t| t.calls.to_string(),
        ),
        (
            "tessera_plugin_fuel_total",
            "counter",
            "Fuel plugin calls consumed (about one unit per wasm instruction).",
            |t| t.fuel.to_string(),
        ),
        (
            "tessera_plugin_call_seconds_total",
            "counter",
            "Wall time of plugin calls.",
            |t| t.wall_seconds.to_string(),
        ),
        (
            "tessera_plugin_traps_total",
            "counter",
            "Plugin calls stopped by a trap (fuel, time, memory, panic, invalid output).",
            |t| t.traps.to_string(),
        ),
        (
            "tessera_plugin_quarantined",
            "gauge",
            "Installations of the plugin quarantined now.",
            |t| t.quarantined.to_string(),
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for ((plugin, version), t) in &totals {
            let _ = writeln!(
                out,
                "{name}{{plugin=\"{}\",version=\"{}\"}} {}",
                crate::metrics::escape(plugin),
                crate::metrics::escape(version),
                value(t)
            );
        }
    }
    out
}

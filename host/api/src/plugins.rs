//! The plugins of a tenant over HTTP: trusted publisher keys, installing a
//! signed bundle (each plugin waits for approval), approving all or part of
//! a request, upgrades with their permission diff, rollback, removal,
//! quarantine and release, status and usage, and the plugin series of
//! `/metrics`. The [`Registry`] does the work; these handlers map it onto
//! routes, roles and error codes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tessera_bundle::{Permissions, RequestedLimits};
use tessera_plugins::{
    Entry, PermissionDiff, PublisherRecord, QuarantineRecord, Registry, RegistryError, Source,
    VersionRecord,
};

use crate::AppState;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::tokens::Principal;

/// Whether a plugin's calls are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PluginStatus {
    Active,
    /// Installed, waiting for an operator to approve what it asks for.
    Pending,
    /// Calls are refused until an operator releases it (it trapped too
    /// often, or an operator quarantined it).
    Quarantined,
    /// Its approved version could not be loaded at start (see `load_error`).
    Failed,
}

/// Where the running version came from, and how it was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signature {
    /// One of Tessera's own plugins, built into the server.
    BuiltIn,
    /// A bundle signed by a key the tenant trusts.
    Verified,
    /// A bundle accepted unsigned under the server's development flag.
    UnsignedDevelopment,
}

/// A plugin as `GET /v1/plugins` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginView {
    pub name: String,
    /// The world it implements: `connector`, `segment` or `strategy`.
    pub kind: String,
    pub status: PluginStatus,
    /// Of the running version (of the pending one while nothing runs).
    pub version: String,
    pub description: String,
    /// The version of the plugin contract (WIT package) it was built for.
    pub wit_version: String,
    /// The host's id of the installation: scopes its state.
    pub installation: String,
    pub signature: Signature,
    /// Unsigned, accepted under the development flag: never in production.
    pub development: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// The trusted key that signed the running version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_version: Option<String>,
    /// SHA-256 of the running component, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed_at_ms: Option<i64>,
    /// The processing purposes it declares it works for.
    pub purposes: Vec<String>,
    /// The profile fields it declares it reads.
    pub fields: Vec<String>,
    /// What the running version asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<Permissions>,
    /// What the running version was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<Permissions>,
    pub grants: PluginGrants,
    /// A version waiting for approval, and what approving it would add.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_error: Option<String>,
    /// Every version uploaded, oldest first.
    pub versions: Vec<VersionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<PluginLimits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<PluginUsage>,
}

/// A version waiting for approval.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PendingView {
    pub version: String,
    pub bundle_version: String,
    /// The bundle's digest, hex: approve with it to approve this version only.
    pub bundle_digest: String,
    pub publisher: String,
    pub signature: Signature,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub requested: Permissions,
    pub requested_limits: RequestedLimits,
    /// From the running version's grant (from nothing for a first install).
    pub diff: PermissionDiff,
    pub uploaded_at_ms: i64,
    pub uploaded_by: String,
}

/// One uploaded version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    pub version: String,
    pub bundle_version: String,
    /// SHA-256 of its component, hex.
    pub component: String,
    pub signature: Signature,
    pub uploaded_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at_ms: Option<i64>,
    /// The version that runs.
    pub active: bool,
    pub pending: bool,
}

/// What the plugin was granted that the runtime links.
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

/// What the plugin has used since this server loaded it: its cost so far.
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

fn signature_of(key_id: Option<&String>) -> Signature {
    match key_id {
        Some(_) => Signature::Verified,
        None => Signature::UnsignedDevelopment,
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl PluginView {
    fn of(entry: &Entry) -> Self {
        let record = entry.record.as_ref();
        let active: Option<&VersionRecord> = record.and_then(|r| r.active.map(|i| &r.versions[i]));
        let pending = entry.pending();
        let shown = active.or(pending.as_ref().map(|(v, _)| *v));
        let live = entry.live.as_ref();
        let info = live.map(|l| l.plugin.info());
        let quarantine = record.and_then(|r| r.quarantine.clone());
        let status = if entry.load_error.is_some() {
            PluginStatus::Failed
        } else if quarantine.is_some() || live.is_some_and(|l| l.auto_quarantined()) {
            PluginStatus::Quarantined
        } else if live.is_some() {
            PluginStatus::Active
        } else {
            PluginStatus::Pending
        };
        let (signature, publisher, key_id, bundle_version) = match live.map(|l| &l.source) {
            Some(Source::BuiltIn) => (Signature::BuiltIn, None, None, None),
            Some(Source::Bundle {
                publisher,
                key_id,
                bundle_version,
            }) => (
                signature_of(key_id.as_ref()),
                Some(publisher.clone()),
                key_id.clone(),
                Some(bundle_version.clone()),
            ),
            None => match shown {
                Some(v) => (
                    signature_of(v.key_id.as_ref()),
                    Some(v.publisher.clone()),
                    v.key_id.clone(),
                    Some(v.bundle_version.clone()),
                ),
                None => (Signature::BuiltIn, None, None, None),
            },
        };
        let kind = match (info, record) {
            (Some(info), _) => info.kind.as_str().to_owned(),
            (None, Some(r)) => r.kind.as_str().to_owned(),
            (None, None) => String::new(),
        };
        let manifest = info.map(|i| &i.manifest);
        Self {
            name: entry.name.clone(),
            kind,
            status,
            version: manifest
                .map(|m| m.version.clone())
                .or_else(|| shown.map(|v| v.version.clone()))
                .unwrap_or_default(),
            description: manifest
                .map(|m| m.description.clone())
                .or_else(|| shown.map(|v| v.description.clone()))
                .unwrap_or_default(),
            wit_version: info
                .map(|i| i.wit_version.as_str().to_owned())
                .or_else(|| shown.map(|v| v.wit_version.clone()))
                .unwrap_or_default(),
            installation: live
                .map(|l| l.installation.clone())
                .or_else(|| record.map(|r| r.installation.clone()))
                .unwrap_or_default(),
            development: signature == Signature::UnsignedDevelopment,
            signature,
            publisher,
            key_id,
            bundle_version,
            content_hash: info.map(|i| i.content_hash.clone()),
            installed_at_ms: live.map(|l| l.installed_at_ms),
            purposes: manifest.map(|m| m.purposes.clone()).unwrap_or_default(),
            fields: manifest
                .map(|m| m.fields.iter().map(|f| f.name.clone()).collect())
                .unwrap_or_default(),
            requested: active.map(|v| v.requested.clone()),
            granted: live.map(|l| l.granted.clone()),
            grants: PluginGrants {
                state_quota_bytes: live.map_or(0, |l| l.plugin.grants().state_quota),
            },
            pending: pending.map(|(v, diff)| PendingView {
                version: v.version.clone(),
                bundle_version: v.bundle_version.clone(),
                bundle_digest: v.bundle_digest.clone(),
                publisher: v.publisher.clone(),
                signature: signature_of(v.key_id.as_ref()),
                key_id: v.key_id.clone(),
                requested: v.requested.clone(),
                requested_limits: v.requested_limits.clone(),
                diff,
                uploaded_at_ms: v.uploaded_at_ms,
                uploaded_by: v.uploaded_by.clone(),
            }),
            quarantine,
            load_error: entry.load_error.clone(),
            versions: record
                .map(|r| {
                    r.versions
                        .iter()
                        .enumerate()
                        .map(|(i, v)| VersionView {
                            version: v.version.clone(),
                            bundle_version: v.bundle_version.clone(),
                            component: v.component.clone(),
                            signature: signature_of(v.key_id.as_ref()),
                            uploaded_at_ms: v.uploaded_at_ms,
                            approved_at_ms: v.approved_at_ms,
                            active: r.active == Some(i),
                            pending: r.pending == Some(i),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            limits: live.map(|l| {
                let limits = l.plugin.limits();
                PluginLimits {
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
                }
            }),
            usage: live.map(|l| {
                let stats = l.plugin.stats();
                PluginUsage {
                    calls: stats.calls,
                    fuel: stats.fuel,
                    wall_ms: millis(stats.wall),
                    traps: stats.traps,
                }
            }),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        use RegistryError as E;
        let message = error.to_string();
        match &error {
            E::Bundle(bundle) => ApiError::unprocessable("bundle_refused", message)
                .with_field("bundle", bundle.reason()),
            E::UnsignedNotAllowed => ApiError::unprocessable("unsigned_not_allowed", message),
            E::Install { .. } | E::Inconsistent { .. } => {
                ApiError::unprocessable("plugin_refused", message)
            }
            E::Grant(_) => ApiError::unprocessable("grant_refused", message),
            E::Taken { .. } => ApiError::new(StatusCode::CONFLICT, "plugin_exists", message),
            E::UnknownPlugin { .. } => ApiError::not_found("unknown_plugin", message),
            E::NotInBundle { .. } => ApiError::unprocessable("not_in_bundle", message),
            E::NothingPending { .. } => {
                ApiError::new(StatusCode::CONFLICT, "nothing_pending", message)
            }
            E::PendingChanged { .. } => {
                ApiError::new(StatusCode::CONFLICT, "pending_changed", message)
            }
            E::NoEarlierVersion { .. } => {
                ApiError::new(StatusCode::CONFLICT, "no_earlier_version", message)
            }
            E::NothingToKeep { .. } => {
                ApiError::new(StatusCode::CONFLICT, "nothing_to_keep", message)
            }
            E::BuiltIn { .. } => ApiError::new(StatusCode::CONFLICT, "built_in_plugin", message),
            E::PublisherChanged { .. } => {
                ApiError::new(StatusCode::CONFLICT, "publisher_changed", message)
            }
            E::Quarantined { .. } => {
                ApiError::new(StatusCode::CONFLICT, "plugin_quarantined", message)
            }
            E::NotQuarantined { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_quarantined", message)
            }
            E::InUse { by, .. } => ApiError::new(StatusCode::CONFLICT, "plugin_in_use", message)
                .with_details(serde_json::json!({"used_by": by})),
            E::UnknownKey { .. } => ApiError::not_found("unknown_publisher_key", message),
            E::BadKey(_) => ApiError::unprocessable("invalid_publisher_key", message),
            E::View(tessera_plugins::ViewError::PurposeNotGranted { .. }) => {
                ApiError::unprocessable("purpose_not_granted", message)
            }
            E::NotGranted { .. } => ApiError::unprocessable("not_granted", message),
            E::Call(tessera_runtime::CallError::Busy { .. }) => {
                let mut error =
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "plugins_busy", message);
                error.retry_after = Some(1);
                error
            }
            E::Call(_) => ApiError::unprocessable("plugin_failed", message),
            E::Vault(_) | E::Store(_) | E::View(_) => ApiError::internal(&error),
            _ => ApiError::internal(&error),
        }
    }
}

fn registry(state: &AppState) -> Result<Registry, ApiError> {
    state.plugins.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_plugin_runtime",
            "this server runs without a plugin runtime",
        )
    })
}

/// Runs registry work (it compiles and calls plugins, which blocks) on the
/// blocking pool.
async fn run<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(Registry) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    let registry = registry(state)?;
    crate::blocking(move || work(registry).map_err(ApiError::from)).await
}

/// `GET /v1/plugins`: the tenant's plugins, by name, with their status,
/// grants and usage. Empty when the server runs without a plugin runtime.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, description = "The tenant's plugins.", body = PluginList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<PluginList>, ApiError> {
    if state.plugins.is_none() {
        return Ok(Json(PluginList {
            plugins: Vec::new(),
        }));
    }
    let tenant = principal.tenant.clone();
    let entries = run(&state, move |r| r.entries(&tenant)).await?;
    Ok(Json(PluginList {
        plugins: entries.iter().map(PluginView::of).collect(),
    }))
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
    if state.plugins.is_none() {
        return Err(RegistryError::UnknownPlugin { name }.into());
    }
    let tenant = principal.tenant.clone();
    let entry = run(&state, move |r| r.entry(&tenant, &name)).await?;
    Ok(Json(PluginView::of(&entry)))
}

/// Query of the routes that take a bundle.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct BundleQuery {
    /// Accept an unsigned bundle: only on a server started with
    /// `--allow-unsigned-bundles` (development), and shown in the status.
    #[serde(default)]
    allow_unsigned: bool,
}

/// `POST /v1/plugins`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Installed {
    /// The bundle's plugins, each pending until approved.
    pub plugins: Vec<PluginView>,
}

/// `POST /v1/plugins`: installs a signed bundle (the request body, as
/// `application/octet-stream`). It is verified against the tenant's trusted
/// publisher keys and each plugin type-checked; each then waits, pending,
/// for an operator to approve what it asks for. All or nothing.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins",
    params(BundleQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "A bundle file (`tessera bundle build` / `sign`)."),
    responses(
        (status = 201, description = "Installed, pending approval.", body = Installed),
        (status = 409, description = "The tenant already has a plugin of that name.", body = ErrorBody),
    ))]
pub(crate) async fn install(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<BundleQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Installed>), ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let entries = run(&state, move |r| {
        r.install(&tenant, &body, query.allow_unsigned, &actor)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Installed {
            plugins: entries.iter().map(PluginView::of).collect(),
        }),
    ))
}

/// `POST /v1/plugins/{name}/upgrade`: a new version of an installed
/// plugin, from a bundle. It goes live at once if it asks for no more than
/// the running version was granted; else it waits with its diff.
#[utoipa::path(post, path = "/v1/plugins/{name}/upgrade", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name."), BundleQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "A bundle holding a plugin of that name."),
    responses(
        (status = 200, description = "Live, or pending approval (see `pending`).", body = PluginView),
        (status = 404, description = "The tenant has no plugin with that name.", body = ErrorBody),
        (status = 409, description = "A built-in plugin, or a bundle signed by another publisher key.", body = ErrorBody),
    ))]
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(query): Query<BundleQuery>,
    body: Bytes,
) -> Result<Json<PluginView>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let entry = run(&state, move |r| {
        r.upgrade(&tenant, &name, &body, query.allow_unsigned, &actor)
    })
    .await?;
    Ok(Json(PluginView::of(&entry)))
}

/// `POST /v1/plugins/{name}/approve`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Approve {
    /// The pending version's `bundle_digest` as reviewed: refused (409
    /// `pending_changed`) if another version was uploaded since. Absent:
    /// whatever is pending now.
    #[serde(default)]
    bundle_digest: Option<String>,
    /// What to grant: a part of what the plugin asked for. Absent: all of it.
    #[serde(default)]
    grant: Option<Permissions>,
    /// Lower limits than those asked for. Absent: those asked for.
    #[serde(default)]
    limits: Option<RequestedLimits>,
}

/// `POST /v1/plugins/{name}/approve`: grants the pending version all or
/// part of what it asked for and makes it live. An import it was not
/// granted refuses it, and it stays pending.
#[utoipa::path(post, path = "/v1/plugins/{name}/approve", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name.")),
    request_body = Approve,
    responses(
        (status = 200, description = "Approved and live.", body = PluginView),
        (status = 404, description = "The tenant has no plugin with that name.", body = ErrorBody),
        (status = 409, description = "Nothing is pending, the pending version is not the one reviewed, or a built-in plugin.", body = ErrorBody),
    ))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<Approve>,
) -> Result<Json<PluginView>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let entry = run(&state, move |r| {
        r.approve_reviewed(
            &tenant,
            &name,
            body.bundle_digest.as_deref(),
            body.grant,
            body.limits,
            &actor,
        )
    })
    .await?;
    Ok(Json(PluginView::of(&entry)))
}

/// `POST /v1/plugins/{name}/reject`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reject {
    /// The pending version's `bundle_digest` as reviewed: refused (409
    /// `pending_changed`) if another version was uploaded since. Absent:
    /// whatever is pending now.
    #[serde(default)]
    bundle_digest: Option<String>,
    /// Why, for the audit trail (at most 500 characters kept).
    #[serde(default)]
    reason: String,
}

/// `POST /v1/plugins/{name}/reject`: discards the pending version of an
/// upgrade; the running version keeps serving with its grant.
#[utoipa::path(post, path = "/v1/plugins/{name}/reject", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name.")),
    request_body = Reject,
    responses(
        (status = 200, description = "Rejected: nothing is pending; the running version \
            serves on.", body = PluginView),
        (status = 404, description = "The tenant has no plugin with that name.", body = ErrorBody),
        (status = 409, description = "Nothing is pending (`nothing_pending`), the pending \
            version is not the one reviewed (`pending_changed`), the plugin has no approved \
            version to keep (`nothing_to_keep`: remove it instead), or a built-in plugin.",
            body = ErrorBody),
    ))]
pub(crate) async fn reject(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<Reject>,
) -> Result<Json<PluginView>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let entry = run(&state, move |r| {
        r.reject(
            &tenant,
            &name,
            body.bundle_digest.as_deref(),
            &body.reason,
            &actor,
        )
    })
    .await?;
    Ok(Json(PluginView::of(&entry)))
}

/// `POST /v1/plugins/{name}/rollback`: back to the approved version before
/// the running one, with its grant.
#[utoipa::path(post, path = "/v1/plugins/{name}/rollback", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "Rolled back.", body = PluginView),
        (status = 404, description = "The tenant has no plugin with that name.", body = ErrorBody),
        (status = 409, description = "No earlier approved version, or a built-in plugin.", body = ErrorBody),
    ))]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let entry = run(&state, move |r| r.rollback(&tenant, &name, &actor)).await?;
    Ok(Json(PluginView::of(&entry)))
}

/// `DELETE /v1/plugins/{name}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Removed {
    pub name: String,
    /// State entries deleted with it.
    pub state_entries_deleted: u64,
}

/// `DELETE /v1/plugins/{name}`: removes a plugin and deletes its state (the
/// state of the campaigns it served too); the audit trail keeps what it
/// did. Refused while a campaign that is not completed uses it.
#[utoipa::path(delete, path = "/v1/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "Removed.", body = Removed),
        (status = 404, description = "The tenant has no plugin with that name.", body = ErrorBody),
        (status = 409, description = "A built-in plugin, which cannot be removed; or one that campaigns not yet completed use (`plugin_in_use`, naming them in `used_by`).", body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let shown = name.clone();
    let deleted = run(&state, move |r| r.remove(&tenant, &name, &actor)).await?;
    Ok(Json(Removed {
        name: shown,
        state_entries_deleted: deleted,
    }))
}

/// `POST /v1/plugins/{name}/quarantine`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuarantineBody {
    /// Why, for the audit trail and the status (at most 500 characters kept).
    #[serde(default)]
    reason: String,
}

/// `POST /v1/plugins/{name}/quarantine`: refuses the plugin's calls until
/// it is released.
#[utoipa::path(post, path = "/v1/plugins/{name}/quarantine", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name.")),
    request_body = QuarantineBody,
    responses(
        (status = 200, description = "Quarantined.", body = PluginView),
        (status = 404, description = "The tenant has no plugin with that name.", body = ErrorBody),
        (status = 409, description = "A built-in plugin: it cannot be quarantined by hand.", body = ErrorBody),
    ))]
pub(crate) async fn quarantine(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<QuarantineBody>,
) -> Result<Json<PluginView>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let entry = run(&state, move |r| {
        r.quarantine(&tenant, &name, &body.reason, &actor)
    })
    .await?;
    Ok(Json(PluginView::of(&entry)))
}

/// `POST /v1/plugins/{name}/release`: lifts a quarantine (an operator's,
/// or the runtime's after repeated traps).
#[utoipa::path(post, path = "/v1/plugins/{name}/release", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name.")),
    responses(
        (status = 200, description = "Released.", body = PluginView),
        (status = 404, description = "The tenant has no plugin with that name.", body = ErrorBody),
        (status = 409, description = "It is not quarantined.", body = ErrorBody),
    ))]
pub(crate) async fn release(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let entry = run(&state, move |r| r.release(&tenant, &name, &actor)).await?;
    Ok(Json(PluginView::of(&entry)))
}

/// `GET /v1/publishers`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublisherList {
    pub publishers: Vec<PublisherRecord>,
}

/// `GET /v1/publishers`: the publisher keys the tenant trusts.
#[utoipa::path(get, path = "/v1/publishers", tag = "plugins",
    responses((status = 200, description = "Trusted publisher keys.", body = PublisherList)))]
pub(crate) async fn publishers(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<PublisherList>, ApiError> {
    let tenant = principal.tenant.clone();
    let publishers = run(&state, move |r| r.publishers(&tenant)).await?;
    Ok(Json(PublisherList { publishers }))
}

/// `POST /v1/publishers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Trust {
    /// The public key, `tessera-publisher-public:…` (`tessera keys publisher new` prints it).
    public_key: String,
    /// Who the publisher is, shown next to their bundles.
    name: String,
}

/// `POST /v1/publishers`: trusts a publisher key for the tenant.
#[utoipa::path(post, path = "/v1/publishers", tag = "plugins",
    request_body = Trust,
    responses((status = 201, description = "Trusted.", body = PublisherRecord)))]
pub(crate) async fn trust(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<Trust>,
) -> Result<(StatusCode, Json<PublisherRecord>), ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let record = run(&state, move |r| {
        r.trust(&tenant, &body.public_key, &body.name, &actor)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// `DELETE /v1/publishers/{key_id}`: stops trusting a key; plugins already
/// installed from its bundles keep running.
#[utoipa::path(delete, path = "/v1/publishers/{key_id}", tag = "plugins",
    params(("key_id" = String, Path, description = "The key's id.")),
    responses(
        (status = 204, description = "No longer trusted."),
        (status = 404, description = "No trusted key has that id.", body = ErrorBody),
    ))]
pub(crate) async fn distrust(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    run(&state, move |r| r.distrust(&tenant, &key_id, &actor)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The plugin series of `/metrics`: each plugin (name and version) over
/// the installations of every tenant, since no label names a tenant.
pub(crate) fn render_metrics(registry: &Registry) -> String {
    #[derive(Default)]
    struct Totals {
        calls: u64,
        fuel: u64,
        wall_seconds: f64,
        traps: u64,
        quarantined: u64,
    }
    let mut totals: BTreeMap<(String, String), Totals> = BTreeMap::new();
    for live in registry.all_live() {
        let info = live.plugin.info();
        let stats = live.plugin.stats();
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

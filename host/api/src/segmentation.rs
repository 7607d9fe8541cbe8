//! `/v1/segments`: segments saved from a segment plugin and its parameters,
//! previewed without saving, recomputed, and their members and sizes over
//! time (`docs/api.md`, Segments). Members are also kept current by the
//! streaming worker `tessera serve` runs.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value as JsonValue, json};
use tessera_segments::{
    Export, ExportSpec, ExportStatus, Preview, RecomputeReport, Segment, SegmentError, SegmentSpec,
    Segments, SizePoint,
};
use tessera_vault::{IdentityKind, SegmentMember};

use crate::AppState;
use crate::error::{ApiError, Json, Path, Query, page_limit};
use crate::imports::{params_of, shown_params};
use crate::tokens::Principal;

/// `PUT /v1/segments/{name}` and `POST /v1/segments/preview`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSegment {
    /// The segment plugin that decides membership (e.g. `threshold`).
    plugin: String,
    /// Its parameters, by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    params: BTreeMap<String, JsonValue>,
    /// The processing purpose; only people who consent to it are
    /// evaluated. Default: the first purpose the plugin works for that it
    /// was granted.
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    description: String,
}

impl NewSegment {
    fn spec(self) -> SegmentSpec {
        SegmentSpec {
            plugin: self.plugin,
            params: params_of(&self.params),
            purpose: self.purpose,
            description: self.description,
        }
    }
}

/// A segment as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SegmentView {
    pub name: String,
    pub plugin: String,
    /// Its parameters as saved (defaults filled in; credentials hidden).
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, JsonValue>,
    pub purpose: String,
    pub description: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub updated_by: String,
    /// Members now.
    pub members: u64,
    /// The last batch recompute; none before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_recompute: Option<RecomputeView>,
}

/// What a batch recompute did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecomputeView {
    pub evaluated: u64,
    pub members: u64,
    pub entered: u64,
    pub left: u64,
    /// Results a newer streaming update of the same person replaced.
    pub superseded: u64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

impl From<RecomputeReport> for RecomputeView {
    fn from(r: RecomputeReport) -> Self {
        RecomputeView {
            evaluated: r.evaluated,
            members: r.members,
            entered: r.entered,
            left: r.left,
            superseded: r.superseded,
            started_at_ms: r.started_at_ms,
            finished_at_ms: r.finished_at_ms,
        }
    }
}

/// `GET /v1/segments`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SegmentList {
    pub segments: Vec<SegmentView>,
}

/// `POST /v1/segments/preview`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreviewView {
    pub purpose: String,
    /// People evaluated (those who consent to the purpose).
    pub evaluated: u64,
    pub members: u64,
    /// Up to 100 members' subject ids.
    pub sample: Vec<String>,
}

impl From<Preview> for PreviewView {
    fn from(p: Preview) -> Self {
        PreviewView {
            purpose: p.purpose,
            evaluated: p.evaluated,
            members: p.members,
            sample: p.sample,
        }
    }
}

/// `GET /v1/segments/{name}/members`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberView>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One member.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub subject: String,
    pub entered_at_ms: i64,
}

/// `GET /v1/segments/{name}/sizes`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SizeList {
    /// One point per recompute, oldest first.
    pub sizes: Vec<SizeView>,
}

/// A segment's size after one recompute.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SizeView {
    pub at_ms: i64,
    pub members: u64,
    pub entered: u64,
    pub left: u64,
}

impl From<SizePoint> for SizeView {
    fn from(p: SizePoint) -> Self {
        SizeView {
            at_ms: p.at_ms,
            members: p.members,
            entered: p.entered,
            left: p.left,
        }
    }
}

/// `GET /v1/segments/{name}/members` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct MembersQuery {
    /// The `next` of the previous page.
    #[serde(default)]
    after: Option<String>,
    /// The most to return (1 to 1000, default 100).
    #[serde(default)]
    limit: Option<usize>,
}

impl From<SegmentError> for ApiError {
    fn from(error: SegmentError) -> Self {
        use SegmentError as E;
        let message = error.to_string();
        match error {
            E::BadName { .. } => ApiError::unprocessable("invalid_segment_name", message)
                .with_field("name", "1 to 64 of a-z, 0-9, `-` and `_`"),
            E::Unknown { .. } => ApiError::not_found("unknown_segment", message),
            E::NotASegmentPlugin { .. } => ApiError::unprocessable("not_a_segment_plugin", message),
            E::PurposeNotDeclared { .. }
            | E::NoPurpose { .. }
            | E::PurposeNotGranted { .. }
            | E::UnknownPurpose { .. } => {
                ApiError::unprocessable("invalid_purpose", message).with_field("purpose", "")
            }
            E::Rule { problems } => {
                ApiError::unprocessable("invalid_rule", message).with_details(json!({
                    "field": "params.rule",
                    "problems": problems
                        .iter()
                        .map(|p| json!({"line": p.line, "column": p.column, "message": p.message}))
                        .collect::<Vec<_>>(),
                }))
            }
            E::Cycle { path } => ApiError::unprocessable("segment_cycle", message)
                .with_details(json!({"cycle": path})),
            E::InUse { by, .. } => ApiError::new(StatusCode::CONFLICT, "segment_in_use", message)
                .with_details(json!({"used_by": by})),
            E::DescriptionTooLong => ApiError::unprocessable("invalid_segment", message)
                .with_field("description", "at most 1000 bytes"),
            E::TooMany => ApiError::new(StatusCode::CONFLICT, "too_many_segments", message),
            E::Registry(tessera_plugins::RegistryError::Call(
                tessera_runtime::CallError::InvalidParams { .. },
            )) => ApiError::unprocessable("invalid_params", message),
            E::Registry(inner) => inner.into(),
            E::Vault(inner) => inner.into(),
            E::ExportNotGranted { .. } => ApiError::unprocessable("not_granted", message),
            E::UnknownExport { .. } => ApiError::not_found("unknown_export", message),
            E::Delivery(inner) => inner.into(),
            other => ApiError::internal(&other),
        }
    }
}

fn segments(state: &AppState) -> Result<Segments, ApiError> {
    state.segments.clone().ok_or_else(no_runtime)
}

/// Deliveries through the tenant's destination connectors (503 without a
/// plugin runtime).
pub(crate) fn deliverer(state: &AppState) -> Result<tessera_imports::Deliverer, ApiError> {
    state.deliverer.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_plugin_runtime",
            "this server runs without a plugin runtime, so it has no destination connectors",
        )
    })
}

fn no_runtime() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_plugin_runtime",
        "this server runs without a plugin runtime, so it has no segment plugins",
    )
}

/// Runs segment work (it calls plugins and the store) on the blocking pool.
async fn run<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(Segments) -> Result<T, SegmentError> + Send + 'static,
) -> Result<T, ApiError> {
    let segments = segments(state)?;
    crate::blocking(move || work(segments).map_err(ApiError::from)).await
}

fn view(segments: &Segments, tenant: &str, segment: Segment) -> Result<SegmentView, SegmentError> {
    let members = segments.size(tenant, &segment.name)?;
    let last_recompute = segments
        .last_recompute(tenant, &segment.name)?
        .map(RecomputeView::from);
    Ok(SegmentView {
        params: shown_params(&segment.params),
        name: segment.name,
        plugin: segment.plugin,
        purpose: segment.purpose,
        description: segment.description,
        created_at_ms: segment.created_at_ms,
        updated_at_ms: segment.updated_at_ms,
        updated_by: segment.updated_by,
        members,
        last_recompute,
    })
}

/// Recomputes `name` on a thread of its own (a segment over many people
/// takes a while); the outcome is the segment's `last_recompute`.
fn recompute_in_background(segments: Segments, tenant: String, name: String) {
    let started = std::thread::Builder::new()
        .name("tessera-recompute".into())
        .spawn(move || {
            if let Err(error) = segments.recompute(&tenant, &name) {
                tracing::warn!(%tenant, segment = %name, %error, "segment recompute failed");
            }
        });
    if let Err(error) = started {
        tracing::warn!(%error, "cannot start a segment recompute; the schedule will run it");
    }
}

/// `GET /v1/segments`: the tenant's segments, by name, with their size.
#[utoipa::path(get, path = "/v1/segments", tag = "segments",
    responses((status = 200, description = "The tenant's segments.", body = SegmentList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<SegmentList>, ApiError> {
    let tenant = principal.tenant.clone();
    let segments = run(&state, move |s| {
        s.list(&tenant)?
            .into_iter()
            .map(|segment| view(&s, &tenant, segment))
            .collect()
    })
    .await?;
    Ok(Json(SegmentList { segments }))
}

/// `PUT /v1/segments/{name}`: saves a segment (replacing one of the same
/// name) and starts its recompute. The plugin must be a running segment
/// plugin, granted the purpose, and take the parameters. Audited.
#[utoipa::path(put, path = "/v1/segments/{name}", tag = "segments",
    params(("name" = String, Path, description = "1 to 64 of a-z, 0-9, `-` and `_`.")),
    request_body = NewSegment,
    responses(
        (status = 200, description = "Saved; its recompute has started.", body = SegmentView),
        (status = 404, description = "The tenant has no plugin of that name.", body = crate::error::ErrorBody),
        (status = 409, description = "The plugin is quarantined, or the tenant has as many segments as it may.", body = crate::error::ErrorBody),
        (status = 422, description = "The plugin, its parameters, its rule or the purpose are refused.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<NewSegment>,
) -> Result<Json<SegmentView>, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    let saved = run(&state, move |s| {
        let segment = s.put(&tenant, &name, body.spec(), &actor)?;
        let shown = view(&s, &tenant, segment)?;
        recompute_in_background(s, tenant, name);
        Ok(shown)
    })
    .await?;
    Ok(Json(saved))
}

/// `GET /v1/segments/{name}`.
#[utoipa::path(get, path = "/v1/segments/{name}", tag = "segments",
    params(("name" = String, Path, description = "The segment's name.")),
    responses(
        (status = 200, description = "The segment.", body = SegmentView),
        (status = 404, description = "No segment of that name.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<SegmentView>, ApiError> {
    let tenant = principal.tenant.clone();
    let shown = run(&state, move |s| {
        let segment = s.get(&tenant, &name)?;
        view(&s, &tenant, segment)
    })
    .await?;
    Ok(Json(shown))
}

/// `DELETE /v1/segments/{name}`: removes a segment; its members leave it
/// (their history says so). Audited.
#[utoipa::path(delete, path = "/v1/segments/{name}", tag = "segments",
    params(("name" = String, Path, description = "The segment's name.")),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No segment of that name.", body = crate::error::ErrorBody),
        (status = 409, description = "Another segment's rule names it.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (tenant, actor) = (principal.tenant.clone(), principal.actor());
    run(&state, move |s| s.delete(&tenant, &name, &actor)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/segments/preview`: the members a segment would have now,
/// counted over every consenting person, without saving anything.
#[utoipa::path(post, path = "/v1/segments/preview", tag = "segments",
    request_body = NewSegment,
    responses(
        (status = 200, description = "The count and a sample.", body = PreviewView),
        (status = 404, description = "The tenant has no plugin of that name.", body = crate::error::ErrorBody),
        (status = 409, description = "The plugin is quarantined.", body = crate::error::ErrorBody),
        (status = 422, description = "The plugin, its parameters, its rule or the purpose are refused.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn preview(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<NewSegment>,
) -> Result<Json<PreviewView>, ApiError> {
    let tenant = principal.tenant.clone();
    let preview = run(&state, move |s| s.preview(&tenant, &body.spec())).await?;
    Ok(Json(preview.into()))
}

/// `POST /v1/segments/{name}/recompute`: re-evaluates every person now, on
/// a thread of its own; the outcome is the segment's `last_recompute`.
#[utoipa::path(post, path = "/v1/segments/{name}/recompute", tag = "segments",
    params(("name" = String, Path, description = "The segment's name.")),
    responses(
        (status = 202, description = "Started.", body = SegmentView),
        (status = 404, description = "No segment of that name.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn recompute(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<SegmentView>), ApiError> {
    let tenant = principal.tenant.clone();
    let shown = run(&state, move |s| {
        let segment = s.get(&tenant, &name)?;
        let shown = view(&s, &tenant, segment)?;
        recompute_in_background(s, tenant, name);
        Ok(shown)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(shown)))
}

/// `GET /v1/segments/{name}/members`: a page of members, by subject id.
#[utoipa::path(get, path = "/v1/segments/{name}/members", tag = "segments",
    params(("name" = String, Path, description = "The segment's name."), MembersQuery),
    responses(
        (status = 200, description = "A page of members.", body = MemberList),
        (status = 404, description = "No segment of that name.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn members(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(query): Query<MembersQuery>,
) -> Result<Json<MemberList>, ApiError> {
    let limit = page_limit(query.limit, 100, 1_000)?;
    let tenant = principal.tenant.clone();
    let page = run(&state, move |s| {
        s.get(&tenant, &name)?;
        s.members(&tenant, &name, query.after.as_deref(), limit + 1)
    })
    .await?;
    Ok(Json(member_page(page, limit)))
}

fn member_page(mut page: Vec<SegmentMember>, limit: usize) -> MemberList {
    let more = page.len() > limit;
    page.truncate(limit);
    MemberList {
        next: more
            .then(|| page.last().map(|m| m.subject.clone()))
            .flatten(),
        members: page
            .into_iter()
            .map(|m| MemberView {
                subject: m.subject,
                entered_at_ms: m.entered_at_ms,
            })
            .collect(),
    }
}

/// `GET /v1/segments/{name}/sizes`: the segment's size after each
/// recompute, oldest first.
#[utoipa::path(get, path = "/v1/segments/{name}/sizes", tag = "segments",
    params(("name" = String, Path, description = "The segment's name.")),
    responses(
        (status = 200, description = "Sizes over time.", body = SizeList),
        (status = 404, description = "No segment of that name.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn sizes(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<SizeList>, ApiError> {
    let tenant = principal.tenant.clone();
    let sizes = run(&state, move |s| s.sizes(&tenant, &name)).await?;
    Ok(Json(SizeList {
        sizes: sizes.into_iter().map(SizeView::from).collect(),
    }))
}

/// `POST /v1/segments/{name}/exports`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewExport {
    /// An installed destination connector (e.g. `webhook-out`), granted
    /// the segment's purpose and the PII class of the addresses.
    connector: String,
    /// Its parameters, by name (e.g. `{"url": "https://…"}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    params: BTreeMap<String, JsonValue>,
    /// The identity each member is addressed by: `email`, `phone`,
    /// `member_id`, `device_id` or `external:<namespace>`.
    recipient: String,
}

/// The identity kind a `recipient` names, or 422 `invalid_recipient`.
pub(crate) fn recipient_kind(recipient: &str) -> Result<IdentityKind, ApiError> {
    IdentityKind::parse(recipient).map_err(|_| {
        ApiError::unprocessable(
            "invalid_recipient",
            "`recipient` is one of email, phone, member_id, device_id, external:<namespace>",
        )
        .with_field("recipient", "an identity kind")
    })
}

/// An export of a segment's members, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExportView {
    pub id: String,
    pub segment: String,
    pub connector: String,
    /// The connector's parameters (credentials and URL queries hidden).
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, JsonValue>,
    pub recipient: String,
    pub purpose: String,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub started_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// `<role>:<token id>` of who started it.
    pub started_by: String,
    /// Members read from the segment so far.
    pub members: u64,
    /// Members given to the connector.
    pub sent: u64,
    /// Of those, delivered.
    pub delivered: u64,
    /// Of those, not delivered: dead letters of the delivery runs.
    pub dead_letters: u64,
    /// Members skipped: no consent to the purpose now, no address of the
    /// kind, only addresses no trusted source gave, erased.
    pub without_consent: u64,
    pub without_address: u64,
    pub unconfirmed: u64,
    pub gone: u64,
    /// The delivery runs, one per page of members.
    pub runs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<Export> for ExportView {
    fn from(e: Export) -> Self {
        ExportView {
            params: shown_params(&e.params),
            id: e.id,
            segment: e.segment,
            connector: e.connector,
            recipient: e.recipient,
            purpose: e.purpose,
            status: match e.status {
                ExportStatus::Running => "running",
                ExportStatus::Completed => "completed",
                ExportStatus::Failed => "failed",
            }
            .to_owned(),
            started_at_ms: e.started_at_ms,
            finished_at_ms: e.finished_at_ms,
            started_by: format!("{}:{}", e.started_by.role, e.started_by.id),
            members: e.members,
            sent: e.sent,
            delivered: e.delivered,
            dead_letters: e.dead_letters,
            without_consent: e.without_consent,
            without_address: e.without_address,
            unconfirmed: e.unconfirmed,
            gone: e.gone,
            runs: e.runs,
            error: e.error,
        }
    }
}

/// The exports of a segment, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportList {
    pub exports: Vec<ExportView>,
}

/// `POST /v1/segments/{name}/exports`: sends the segment's members to a
/// destination connector, in the background; the answer is the export,
/// `running`. Only members who consent to the segment's purpose now are
/// sent, each at a trusted address of the kind asked for. Audited.
#[utoipa::path(post, path = "/v1/segments/{name}/exports", tag = "segments",
    params(("name" = String, Path, description = "The segment's name.")),
    request_body = NewExport,
    responses(
        (status = 202, description = "The export, running.", body = ExportView),
        (status = 404, description = "No segment of that name, or no such connector.", body = crate::error::ErrorBody),
        (status = 409, description = "The connector is quarantined.", body = crate::error::ErrorBody),
        (status = 422, description = "Not a destination, not granted the purpose or the address's PII class, bad parameters or recipient kind.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn export(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<NewExport>,
) -> Result<(StatusCode, Json<ExportView>), ApiError> {
    let recipient = recipient_kind(&body.recipient)?;
    let deliverer = deliverer(&state)?;
    let tenant = principal.tenant.clone();
    let actor = principal.actor();
    let spec = ExportSpec {
        connector: body.connector,
        params: params_of(&body.params),
        recipient,
    };
    let shown = run(&state, move |s| {
        let (export, params) = s.start_export(&deliverer, &tenant, &name, spec, &actor)?;
        let shown = ExportView::from(export.clone());
        crate::in_background("tessera-export", move || {
            if let Err(error) = s.run_export(&deliverer, &tenant, export, params) {
                tracing::warn!(%tenant, %error, "segment export failed");
            }
        })
        .map_err(|error| SegmentError::Corrupt(format!("cannot start the export: {error}")))?;
        Ok(shown)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(shown)))
}

/// `GET /v1/segments/{name}/exports`: the segment's exports, oldest first.
#[utoipa::path(get, path = "/v1/segments/{name}/exports", tag = "segments",
    params(("name" = String, Path, description = "The segment's name.")),
    responses(
        (status = 200, description = "The exports.", body = ExportList),
        (status = 404, description = "No segment of that name.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn exports(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<ExportList>, ApiError> {
    let tenant = principal.tenant.clone();
    let exports = run(&state, move |s| {
        s.get(&tenant, &name)?;
        s.exports(&tenant, Some(&name))
    })
    .await?;
    Ok(Json(ExportList {
        exports: exports.into_iter().map(ExportView::from).collect(),
    }))
}

/// `GET /v1/segments/{name}/exports/{id}`: one export and what became of
/// its members.
#[utoipa::path(get, path = "/v1/segments/{name}/exports/{id}", tag = "segments",
    params(
        ("name" = String, Path, description = "The segment's name."),
        ("id" = String, Path, description = "The export's id."),
    ),
    responses(
        (status = 200, description = "The export.", body = ExportView),
        (status = 404, description = "No such segment or export.", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn export_record(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<ExportView>, ApiError> {
    let tenant = principal.tenant.clone();
    let export = run(&state, move |s| {
        let export = s.export(&tenant, &id)?;
        if export.segment != name {
            return Err(SegmentError::UnknownExport { id });
        }
        Ok(export)
    })
    .await?;
    Ok(Json(export.into()))
}

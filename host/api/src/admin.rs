//! Admin and data endpoints: finding a subject by an identity, rectifying
//! and exporting a subject, the tenant's deletion requests, the tenant
//! itself and its trait and event schemas.
//!
//! Identity values travel in request bodies only, never in URLs (which
//! reach access logs, proxies and browser histories), and no answer echoes
//! one back.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_vault::{
    AuditEntry, DeletionRequest, DeletionStatus, EventSpec, IdentityKind, PiiClass, SubjectView,
    TraitClass, TraitSpec, TraitType, Vault, VaultError,
};

use crate::error::{ApiError, ErrorBody, Json, Path, Query, from_body};
use crate::handlers::plain_id;
use crate::tokens::{Principal, now_ms};
use crate::{AppState, blocking, zip};

/// The admin and data routes, merged into the `/v1` router (behind the
/// authorization layer).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/subjects/lookup", post(lookup))
        .route("/v1/subjects/{id}", patch(rectify))
        .route("/v1/subjects/{id}/export", get(export))
        .route(
            "/v1/subjects/{id}/identities/confirm",
            post(confirm_identity),
        )
        .route("/v1/deletions", get(deletions))
        .route("/v1/tenant", get(tenant))
        .route("/v1/schema", get(schema))
        .route(
            "/v1/schema/traits/{name}",
            put(put_trait).delete(delete_trait),
        )
        .route(
            "/v1/schema/events/{type}",
            put(put_event).delete(delete_event),
        )
}

fn unknown_subject() -> ApiError {
    ApiError::not_found("unknown_subject", "the tenant has no subject with that id")
}

// ---- lookup ----------------------------------------------------------------

/// `POST /v1/subjects/lookup`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// `email`, `phone`, `member_id`, `device_id` or `external:<namespace>`.
    pub kind: String,
    /// The identity as any source would send it; normalised as at ingest.
    pub value: String,
}

/// The subject an identity belongs to.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LookupAnswer {
    pub subject: String,
}

/// A body naming an identity (`{kind, value}`), read without ever quoting
/// the value.
fn identity_body(body: Value) -> Result<(IdentityKind, String), ApiError> {
    let body: LookupRequest = from_body(
        body,
        r#"{"kind": "email" | "phone" | "member_id" | "device_id" | "external:<namespace>", "value": "<string>"}"#,
    )?;
    let kind = IdentityKind::parse(&body.kind).map_err(|error| {
        ApiError::unprocessable("invalid_identity", error.to_string())
            .with_field("kind", error.to_string())
    })?;
    Ok((kind, body.value))
}

/// A vault error about an identity from a body: an invalid value names the
/// kind and the normaliser's rule, never the value, with `details.field`
/// `value`.
fn identity_error(error: VaultError) -> ApiError {
    match error {
        VaultError::InvalidIdentity { kind, source } => ApiError::unprocessable(
            "invalid_identity",
            format!("the value is not a valid {kind}: {source}"),
        )
        .with_details(json!({ "field": "value", "kind": kind, "reason": source.to_string() })),
        error => error.into(),
    }
}

/// `POST /v1/subjects/lookup`: the person an identity belongs to. The
/// value is normalised with the tenant's rules and looked up by its keyed
/// hash; the lookup is audited (`subject.lookup`, naming the kind, never
/// the value).
#[utoipa::path(post, path = "/v1/subjects/lookup", tag = "subjects", request_body = LookupRequest,
    responses(
        (status = 200, description = "The subject the identity belongs to.", body = LookupAnswer),
        (status = 404, description = "No subject of the tenant has that identity.", body = ErrorBody),
    ))]
async fn lookup(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<Value>,
) -> Result<Json<LookupAnswer>, ApiError> {
    let (kind, value) = identity_body(body)?;
    let found = blocking(move || {
        state
            .vault
            .find_subject(&principal.tenant, &kind, &value, &principal.actor())
            .map_err(identity_error)
    })
    .await?;
    found
        .map(|subject| Json(LookupAnswer { subject }))
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_subject",
                "no subject of the tenant has that identity",
            )
        })
}

/// What confirming an identity did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConfirmAnswer {
    pub subject: String,
    /// Whether the identity was marked untrusted (it is not any more).
    pub was_untrusted: bool,
}

/// `POST /v1/subjects/{id}/identities/confirm`: the operator confirms,
/// after checking with the person, that an identity a write key linked to
/// them is theirs, so that it no longer stops them from signing in
/// (docs/privacy.md, Trusted and untrusted sources). Audited
/// (`identity.confirm`, the kind, never the value).
#[utoipa::path(post, path = "/v1/subjects/{id}/identities/confirm", tag = "subjects",
    request_body = LookupRequest,
    params(("id" = String, Path, description = "A subject id.")),
    responses(
        (status = 200, description = "Confirmed.", body = ConfirmAnswer),
        (status = 404, description = "No such subject, or the identity is not linked to this \
            person (`unknown_subject`, `identity_not_linked`).", body = ErrorBody),
        (status = 410, description = "The subject was erased.", body = ErrorBody),
    ))]
async fn confirm_identity(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<ConfirmAnswer>, ApiError> {
    if !plain_id(&id) {
        return Err(unknown_subject());
    }
    let (kind, value) = identity_body(body)?;
    let was_untrusted = blocking(move || {
        state
            .vault
            .confirm_identity(&principal.tenant, &id, &kind, &value, &principal.actor())
            .map(|removed| (id, removed))
            .map_err(identity_error)
    })
    .await?;
    Ok(Json(ConfirmAnswer {
        subject: was_untrusted.0,
        was_untrusted: was_untrusted.1,
    }))
}

// ---- rectification -----------------------------------------------------------

/// `PATCH /v1/subjects/{id}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RectifyRequest {
    /// Trait name → new value, or `null` to remove the trait.
    pub traits: BTreeMap<String, Option<Value>>,
}

/// What a rectification changed (names only).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RectifyAnswer {
    pub subject: String,
    /// Traits given a value.
    pub set: Vec<String>,
    /// Traits removed.
    pub removed: Vec<String>,
}

/// The most traits one rectification may name.
const MAX_RECTIFY: usize = 256;

/// `PATCH /v1/subjects/{id}`: corrects or removes traits (the right to
/// rectification). Values are checked against the tenant schema; the audit
/// entry (`subject.rectify`) names the fields, never the values.
#[utoipa::path(patch, path = "/v1/subjects/{id}", tag = "subjects", request_body = RectifyRequest,
    params(("id" = String, Path, description = "A subject id.")),
    responses(
        (status = 200, description = "The traits changed (names only).", body = RectifyAnswer),
        (status = 404, description = "The tenant has no subject with that id.", body = ErrorBody),
        (status = 410, description = "The subject was erased.", body = ErrorBody),
    ))]
async fn rectify(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<RectifyAnswer>, ApiError> {
    if !plain_id(&id) {
        return Err(unknown_subject());
    }
    let body: RectifyRequest = from_body(body, r#"{"traits": {"<name>": <value> | null, …}}"#)?;
    if body.traits.is_empty() || body.traits.len() > MAX_RECTIFY {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("`traits` must name 1 to {MAX_RECTIFY} traits"),
        )
        .with_field("traits", format!("1 to {MAX_RECTIFY} traits")));
    }
    if let Some(bad) = body.traits.keys().find(|name| !valid_name(name)) {
        let field = if bad.len() <= 64 {
            format!("traits.{bad}")
        } else {
            "traits".to_owned()
        };
        return Err(ApiError::unprocessable(
            "unknown_trait",
            "trait names are 1 to 64 characters of a-z, 0-9 and _",
        )
        .with_field(&field, "not a trait name"));
    }
    let (set, removed) = body
        .traits
        .iter()
        .partition::<Vec<_>, _>(|(_, value)| value.is_some());
    let answer = RectifyAnswer {
        subject: id.clone(),
        set: set.into_iter().map(|(name, _)| name.clone()).collect(),
        removed: removed.into_iter().map(|(name, _)| name.clone()).collect(),
    };
    blocking(move || {
        Ok(state
            .vault
            .rectify(&principal.tenant, &id, &body.traits, &principal.actor())?)
    })
    .await?;
    tracing::info!(
        set = answer.set.len(),
        removed = answer.removed.len(),
        "subject rectified"
    );
    Ok(Json(answer))
}

// ---- export ----------------------------------------------------------------

/// The form of an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// The access view as one JSON document.
    #[default]
    Json,
    /// One CSV table per kind of data, in a ZIP archive.
    Csv,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    #[serde(default)]
    pub format: ExportFormat,
}

/// `GET /v1/subjects/{id}/export?format=json|csv`: everything held about
/// the person, as a download (the right to data portability). Audited by
/// the vault (`subject.export`).
#[utoipa::path(get, path = "/v1/subjects/{id}/export", tag = "subjects",
    params(("id" = String, Path, description = "A subject id."), ExportQuery),
    responses(
        (status = 200, description = "A download: the access view as JSON (`format=json`), or \
            one CSV file per kind of data in a ZIP archive (`format=csv`).",
            content(
                (SubjectView = "application/json"),
                (Vec<u8> = "application/zip"),
            )),
        (status = 404, description = "The tenant has no subject with that id.", body = ErrorBody),
        (status = 410, description = "The subject was erased.", body = ErrorBody),
    ))]
async fn export(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    if !plain_id(&id) {
        return Err(unknown_subject());
    }
    let format = query.format;
    let filename = format!("subject-{id}");
    let (content_type, extension, bytes) = blocking(move || {
        let (tenant, actor) = (&principal.tenant, principal.actor());
        Ok(match format {
            ExportFormat::Json => (
                "application/json",
                "json",
                state.vault.export_json(tenant, &id, &actor)?.into_bytes(),
            ),
            ExportFormat::Csv => {
                let tables = state.vault.export_csv(tenant, &id, &actor)?;
                let archive = zip::stored(
                    tables
                        .iter()
                        .map(|(name, text)| (name.as_str(), text.as_bytes())),
                    now_ms(),
                )
                .map_err(|error| ApiError::internal(&error))?;
                ("application/zip", "csv.zip", archive)
            }
        })
    })
    .await?;
    let disposition = format!("attachment; filename=\"{filename}.{extension}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            // Personal data: no cache on the way may keep a copy.
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

// ---- deletion requests -------------------------------------------------------

/// The most deletion requests one page holds.
const DELETIONS_PAGE_MAX: usize = 1_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeletionsQuery {
    /// Only requests in this state.
    pub status: Option<DeletionStatus>,
    /// 1 to 1000, default 100.
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// A page of deletion requests, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeletionList {
    pub deletions: Vec<DeletionRequest>,
    /// Where the next page starts (`?after=`), or null at the end.
    pub next: Option<String>,
}

/// `GET /v1/deletions?status=&limit=&after=`: the tenant's deletion
/// requests, newest first.
#[utoipa::path(get, path = "/v1/deletions", tag = "subjects", params(DeletionsQuery),
    responses((status = 200, description = "A page of requests, newest first.", body = DeletionList)))]
async fn deletions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<DeletionsQuery>,
) -> Result<Json<DeletionList>, ApiError> {
    let limit = crate::error::page_limit(query.limit, 100, DELETIONS_PAGE_MAX)?;
    let after = match &query.after {
        None => None,
        Some(cursor) => Some(
            cursor
                .split_once('.')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_query", "`after` is not a page cursor")
                        .with_field("after", "the `next` of a previous page")
                })?,
        ),
    };
    let mut all = blocking(move || Ok(state.vault.deletion_requests(&principal.tenant)?)).await?;
    // Newest first; ids break ties so that pages never skip or repeat.
    all.sort_by(|a, b| (b.requested_at_ms, &b.id).cmp(&(a.requested_at_ms, &a.id)));
    let mut page: Vec<DeletionRequest> = all
        .into_iter()
        .filter(|r| query.status.is_none_or(|s| r.status == s))
        .filter(|r| {
            after
                .as_ref()
                .is_none_or(|(at, id)| (r.requested_at_ms, &r.id) < (*at, id))
        })
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let next = more
        .then(|| {
            page.last()
                .map(|r| format!("{}.{}", r.requested_at_ms, r.id))
        })
        .flatten();
    Ok(Json(DeletionList {
        deletions: page,
        next,
    }))
}

// ---- tenant ------------------------------------------------------------------

/// The token's tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub id: String,
    pub settings: TenantSettingsView,
    pub counts: TenantCounts,
}

/// A tenant's settings, without its trait schema (`GET /v1/schema`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantSettingsView {
    /// The purposes a person can consent to.
    pub purposes: Vec<String>,
    pub retention: RetentionView,
    /// Days between a deletion request and its deadline.
    pub deletion_deadline_days: u32,
    pub identity_rules: IdentityRulesView,
    /// Identity kinds that, shared by two subjects, merge them.
    pub merge_on: Vec<String>,
    /// How many traits the schema has.
    pub traits: usize,
}

/// The bounds of a person's retention choice, in days.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RetentionView {
    pub min_days: u32,
    pub max_days: u32,
    pub default_days: u32,
}

/// How identities are normalised before they are hashed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IdentityRulesView {
    /// Country calling code assumed for phone numbers without one.
    pub default_country_code: Option<u16>,
    /// Whether Gmail addresses drop dots and `+tags`.
    pub canonical_gmail: bool,
    /// Whether the rules can still change: not once the tenant holds
    /// subjects or suppressed identities, whose hashes depend on them.
    pub locked: bool,
}

/// What the tenant holds, where counting is cheap.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantCounts {
    pub active_tokens: usize,
    pub deletion_requests: usize,
    /// Deletion requests not yet completed.
    pub open_deletion_requests: usize,
    /// Identities of erased people kept from being ingested again.
    pub suppressed_identities: usize,
    pub audit_entries: u64,
}

/// `GET /v1/tenant`: the token's own tenant. Tenants are created from the
/// command line (`tessera tenant create`, `tessera serve --init`), never
/// over the API: a token belongs to exactly one tenant.
#[utoipa::path(get, path = "/v1/tenant", tag = "tenant",
    responses((status = 200, description = "The token's tenant.", body = TenantView)))]
async fn tenant(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<TenantView>, ApiError> {
    blocking(move || {
        let id = principal.tenant;
        let vault = &state.vault;
        let settings = vault.settings(&id)?;
        let store = vault.store();
        let has_subjects = !store
            .subjects(&id, None, 1)
            .map_err(VaultError::from)?
            .is_empty();
        let suppressed = store.suppressions(&id).map_err(VaultError::from)?;
        let requests = vault.deletion_requests(&id)?;
        let tokens = state.tokens.list(&id)?;
        let r = settings.retention;
        Ok(Json(TenantView {
            settings: TenantSettingsView {
                purposes: settings.purposes.clone(),
                retention: RetentionView {
                    min_days: r.min_days,
                    max_days: r.max_days,
                    default_days: r.default_days,
                },
                deletion_deadline_days: settings.deletion_deadline_days,
                identity_rules: IdentityRulesView {
                    default_country_code: settings.identity_rules.default_country_code,
                    canonical_gmail: settings.identity_rules.canonical_gmail,
                    locked: has_subjects || suppressed > 0,
                },
                merge_on: settings.merge_on.clone(),
                traits: settings.schema.len(),
            },
            counts: TenantCounts {
                active_tokens: tokens.iter().filter(|t| !t.revoked).count(),
                deletion_requests: requests.len(),
                open_deletion_requests: requests
                    .iter()
                    .filter(|r| r.status != DeletionStatus::Completed)
                    .count(),
                suppressed_identities: suppressed,
                audit_entries: store.audit_head(&id).map_err(VaultError::from)?,
            },
            id,
        }))
    })
    .await
}

// ---- schema ------------------------------------------------------------------

/// One trait of the schema.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchemaTrait {
    pub name: String,
    /// `pii`, `sensitive` or `standard`.
    pub class: TraitClass,
    /// `string`, `number`, `bool`, `date` or `any`.
    #[serde(rename = "type")]
    pub kind: TraitType,
    /// For pii and sensitive traits: the PII class a plugin must be granted
    /// besides the trait (e.g. `email`, `special-category`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pii_class: Option<PiiClass>,
    /// The values the trait may take (absent: any value of its type).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<Value>,
}

/// One event type of the schema.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchemaEvent {
    /// The event type.
    #[serde(rename = "type")]
    pub name: String,
    pub properties: BTreeMap<String, tessera_vault::PropertySpec>,
    /// Properties not listed are refused.
    pub strict: bool,
}

/// The tenant's trait and event schemas, by name.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchemaView {
    pub traits: Vec<SchemaTrait>,
    /// Event types whose events are checked at ingest.
    pub events: Vec<SchemaEvent>,
    /// Whether events of a type not listed are refused (else they are taken
    /// as they come).
    pub events_strict: bool,
}

/// `PUT /v1/schema/traits/{name}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TraitRequest {
    pub class: TraitClass,
    #[serde(rename = "type")]
    pub kind: TraitType,
    /// For pii and sensitive traits: the PII class a plugin must be granted
    /// besides the trait. A pii or sensitive trait without one is never
    /// shown to a plugin.
    #[serde(default)]
    pub pii_class: Option<PiiClass>,
    /// The values the trait may take, of its type (empty or absent: any).
    #[serde(default)]
    pub allowed: Vec<Value>,
}

/// What a schema change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaChange {
    Added,
    Changed,
    Unchanged,
    Removed,
}

/// The answer to a schema change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TraitChange {
    pub change: SchemaChange,
    /// The trait now (null once removed).
    #[serde(rename = "trait")]
    pub now: Option<SchemaTrait>,
    /// The trait before (null if it was added).
    pub previous: Option<SchemaTrait>,
}

fn schema_trait(name: &str, spec: &TraitSpec) -> SchemaTrait {
    SchemaTrait {
        name: name.to_owned(),
        class: spec.class,
        kind: spec.kind,
        pii_class: spec.pii_class,
        allowed: spec.allowed.clone(),
    }
}

fn schema_event(name: &str, spec: &EventSpec) -> SchemaEvent {
    SchemaEvent {
        name: name.to_owned(),
        properties: spec.properties.clone(),
        strict: spec.strict,
    }
}

/// `GET /v1/schema`: every trait with its class and type, and every event
/// type with its properties.
#[utoipa::path(get, path = "/v1/schema", tag = "tenant",
    responses((status = 200, description = "Every trait with its class and type, and every \
        event type with its properties.", body = SchemaView)))]
async fn schema(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<SchemaView>, ApiError> {
    let settings = blocking(move || Ok(state.vault.settings(&principal.tenant)?)).await?;
    Ok(Json(SchemaView {
        traits: settings
            .schema
            .iter()
            .map(|(name, spec)| schema_trait(name, spec))
            .collect(),
        events: settings
            .events
            .iter()
            .map(|(name, spec)| schema_event(name, spec))
            .collect(),
        events_strict: settings.events_strict,
    }))
}

/// How protected a class is: higher is stricter.
fn strictness(class: TraitClass) -> u8 {
    match class {
        TraitClass::Standard => 0,
        TraitClass::Sensitive => 1,
        TraitClass::Pii => 2,
    }
}

/// Names of traits: what the vault accepts in a schema.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "invalid_trait_name",
            "a trait name is 1 to 64 characters of a-z, 0-9 and _",
        )
        .with_field("name", "1 to 64 characters of a-z, 0-9 and _"))
    }
}

fn in_use(name: &str, held_by: u64, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "trait_in_use",
        format!(
            "{held_by} {} a value of trait {name:?}: {why}",
            if held_by == 1 {
                "person holds"
            } else {
                "people hold"
            }
        ),
    )
    .with_details(json!({ "field": "name", "reason": why, "held_by": held_by }))
}

/// `PUT /v1/schema/traits/{name}`: adds a trait, or changes its class or
/// type. While people hold a value of it, its class may only become
/// stricter (their data was collected under the class it had) and its type
/// may only become `any` (the values were checked against the type they
/// had). Audited as `tenant.settings` and `schema.trait`.
#[utoipa::path(put, path = "/v1/schema/traits/{name}", tag = "tenant", request_body = TraitRequest,
    params(("name" = String, Path, description = "The trait's name.")),
    responses(
        (status = 200, description = "Changed (or already so).", body = TraitChange),
        (status = 201, description = "Added.", body = TraitChange),
        (status = 409, description = "People hold values that the change would loosen or \
            retype (`trait_in_use`, with `held_by`).", body = ErrorBody),
    ))]
async fn put_trait(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<TraitRequest>,
) -> Result<(StatusCode, Json<TraitChange>), ApiError> {
    check_name(&name)?;
    let spec = TraitSpec {
        class: body.class,
        kind: body.kind,
        pii_class: body.pii_class,
        allowed: body.allowed,
    };
    blocking(move || {
        let tenant = &principal.tenant;
        let actor = principal.actor();
        // Checked and written under the tenant's write lock: no value of
        // the trait can be stored between the check and the change.
        let (change, previous) =
            state
                .vault
                .change_settings(tenant, &actor, |settings, holders| {
                    let previous = settings.schema.get(&name).cloned();
                    let change = match &previous {
                        None => SchemaChange::Added,
                        Some(old) if *old == spec => SchemaChange::Unchanged,
                        Some(old) => {
                            let looser = strictness(spec.class) < strictness(old.class);
                            let retyped = spec.kind != old.kind && spec.kind != TraitType::Any;
                            let narrowed = !spec.allowed.is_empty()
                                && (old.allowed.is_empty()
                                    || old.allowed.iter().any(|v| !spec.allowed.contains(v)));
                            if looser || retyped || narrowed {
                                let held_by = holders(&name)?;
                                if held_by > 0 && looser {
                                    return Err(in_use(
                                        &name,
                                        held_by,
                                        "its class can only become stricter while people hold a \
                                     value (remove the values first to loosen it)",
                                    ));
                                }
                                if held_by > 0 && retyped {
                                    return Err(in_use(
                                        &name,
                                        held_by,
                                        "its type can only become `any` while people hold a value \
                                     (remove the values first to retype it)",
                                    ));
                                }
                                if held_by > 0 {
                                    return Err(in_use(
                                        &name,
                                        held_by,
                                        "its allowed values can only grow while people hold a \
                                     value (remove the values first to narrow them)",
                                    ));
                                }
                            }
                            SchemaChange::Changed
                        }
                    };
                    if change == SchemaChange::Unchanged {
                        return Ok::<_, ApiError>((None, (change, previous)));
                    }
                    let mut settings = settings.clone();
                    settings.schema.insert(name.clone(), spec.clone());
                    Ok((Some(settings), (change, previous)))
                })?;
        let answer = TraitChange {
            change,
            now: Some(schema_trait(&name, &spec)),
            previous: previous.as_ref().map(|old| schema_trait(&name, old)),
        };
        if change == SchemaChange::Unchanged {
            return Ok((StatusCode::OK, Json(answer)));
        }
        let detail = match &previous {
            None => format!("added: {}", describe(&spec)),
            Some(old) => format!("changed: {} -> {}", describe(old), describe(&spec)),
        };
        state.vault.record_admin_action(
            tenant,
            AuditEntry::new(&actor, "schema.trait")
                .fields([name.clone()])
                .detail(detail),
        )?;
        tracing::info!(trait_name = %name, ?change, "schema changed");
        let status = if change == SchemaChange::Added {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(answer)))
    })
    .await
}

/// A trait's class and type for the audit trail (never its allowed values,
/// which the schema shows; only how many there are).
fn describe(spec: &TraitSpec) -> String {
    let mut text = format!("{:?} {:?}", spec.class, spec.kind).to_lowercase();
    if !spec.allowed.is_empty() {
        text.push_str(&format!(" ({} allowed values)", spec.allowed.len()));
    }
    text
}

/// `DELETE /v1/schema/traits/{name}`: removes a trait no one holds a value
/// of. Refused (409 `trait_in_use`) while anyone does: the schema must
/// describe every kind of personal data the tenant keeps.
#[utoipa::path(delete, path = "/v1/schema/traits/{name}", tag = "tenant",
    params(("name" = String, Path, description = "The trait's name.")),
    responses(
        (status = 200, description = "Removed.", body = TraitChange),
        (status = 404, description = "The schema has no such trait.", body = ErrorBody),
        (status = 409, description = "People still hold values of it (`trait_in_use`).",
            body = ErrorBody),
    ))]
async fn delete_trait(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<TraitChange>, ApiError> {
    let unknown = || ApiError::not_found("unknown_trait", "the tenant's schema has no such trait");
    if !valid_name(&name) {
        return Err(unknown());
    }
    blocking(move || {
        let tenant = &principal.tenant;
        let actor = principal.actor();
        // Checked and written under the tenant's write lock (see put_trait).
        let previous = state
            .vault
            .change_settings(tenant, &actor, |settings, holders| {
                let mut settings = settings.clone();
                let Some(previous) = settings.schema.remove(&name) else {
                    return Err(unknown());
                };
                let held_by = holders(&name)?;
                if held_by > 0 {
                    return Err(in_use(
                        &name,
                        held_by,
                        "a trait stays in the schema while people hold a value, so that the schema \
                     describes all the data kept (remove the values first)",
                    ));
                }
                Ok((Some(settings), previous))
            })?;
        state.vault.record_admin_action(
            tenant,
            AuditEntry::new(&actor, "schema.trait")
                .fields([name.clone()])
                .detail(format!("removed: {}", describe(&previous))),
        )?;
        tracing::info!(trait_name = %name, "schema trait removed");
        Ok(Json(TraitChange {
            change: SchemaChange::Removed,
            now: None,
            previous: Some(schema_trait(&name, &previous)),
        }))
    })
    .await
}

// ---- event schema --------------------------------------------------------------

/// The answer to an event schema change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventChange {
    pub change: SchemaChange,
    /// The event type's schema now (null once removed).
    pub event: Option<SchemaEvent>,
    /// Its schema before (null if it was added).
    pub previous: Option<SchemaEvent>,
}

fn check_event_type(name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "invalid_event_type",
            "an event type is 1 to 64 characters of a-z, 0-9 and _",
        )
        .with_field("type", "1 to 64 characters of a-z, 0-9 and _"))
    }
}

/// Whether `next` classes any property of `previous` less strictly (a
/// property left out counts as `standard`).
fn loosens(previous: &EventSpec, next: Option<&EventSpec>) -> bool {
    previous.properties.iter().any(|(name, old)| {
        let class = next
            .and_then(|spec| spec.properties.get(name))
            .map_or(TraitClass::Standard, |p| p.class);
        strictness(class) < strictness(old.class)
    })
}

/// How many people hold events of `event_type`. Reads every person; the
/// caller holds the tenant's write lock (`Vault::change_settings`).
fn event_holders(vault: &Vault, tenant: &str, event_type: &str) -> Result<u64, VaultError> {
    let mut count = 0;
    let mut after: Option<String> = None;
    loop {
        let (people, next) = vault.people(tenant, after.as_deref(), 512)?;
        count += people
            .iter()
            .filter(|p| p.aggregates.get(event_type).is_some_and(|a| a.count > 0))
            .count() as u64;
        match next {
            Some(next) => after = Some(next),
            None => return Ok(count),
        }
    }
}

fn event_in_use(event_type: &str, held_by: u64, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "event_type_in_use",
        format!(
            "{held_by} {} events of type {event_type:?}: {why}",
            if held_by == 1 {
                "person holds"
            } else {
                "people hold"
            }
        ),
    )
    .with_details(json!({ "field": "type", "reason": why, "held_by": held_by }))
}

/// An event schema for the audit trail: its shape, never allowed values.
fn describe_event(spec: &EventSpec) -> String {
    let classed = spec
        .properties
        .values()
        .filter(|p| p.class != TraitClass::Standard)
        .count();
    format!(
        "{} properties ({} required, {classed} pii or sensitive){}",
        spec.properties.len(),
        spec.properties.values().filter(|p| p.required).count(),
        if spec.strict { ", strict" } else { "" }
    )
}

/// `PUT /v1/schema/events/{type}`: adds or replaces the schema of an event
/// type. Events of the type are checked against it from the next record on
/// (events already stored are not). While people hold events of the type, a
/// property's class may only become stricter, as for traits: their
/// properties were collected under the class they had. Audited as
/// `tenant.settings` and `schema.event`.
#[utoipa::path(put, path = "/v1/schema/events/{type}", tag = "tenant", request_body = EventSpec,
    params(("type" = String, Path, description = "The event type.")),
    responses(
        (status = 200, description = "Changed (or already so).", body = EventChange),
        (status = 201, description = "Added.", body = EventChange),
        (status = 409, description = "People hold events of the type and the change would \
            class a property less strictly (`event_type_in_use`, with `held_by`).",
            body = ErrorBody),
        (status = 422, description = "The type's name (`invalid_event_type`) or the schema \
            (`invalid_settings`: names, allowed values of the wrong type, a PII class on a \
            standard property) is wrong.", body = ErrorBody),
    ))]
async fn put_event(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(event_type): Path<String>,
    Json(spec): Json<EventSpec>,
) -> Result<(StatusCode, Json<EventChange>), ApiError> {
    check_event_type(&event_type)?;
    tessera_vault::check_event_spec(&event_type, &spec)
        .map_err(|reason| ApiError::from(VaultError::InvalidSettings { reason }))?;
    blocking(move || {
        let tenant = &principal.tenant;
        let actor = principal.actor();
        let vault = &state.vault;
        // Checked and written under the tenant's write lock, as traits are.
        let (change, previous) = vault.change_settings(tenant, &actor, |settings, _| {
            let previous = settings.events.get(&event_type).cloned();
            let change = match &previous {
                None => SchemaChange::Added,
                Some(old) if *old == spec => SchemaChange::Unchanged,
                Some(old) => {
                    if loosens(old, Some(&spec)) {
                        let held_by = event_holders(vault, tenant, &event_type)?;
                        if held_by > 0 {
                            return Err(event_in_use(
                                &event_type,
                                held_by,
                                "a property's class can only become stricter while people hold \
                                 events of the type (erase or let them expire first)",
                            ));
                        }
                    }
                    SchemaChange::Changed
                }
            };
            if change == SchemaChange::Unchanged {
                return Ok::<_, ApiError>((None, (change, previous)));
            }
            let mut settings = settings.clone();
            settings.events.insert(event_type.clone(), spec.clone());
            Ok((Some(settings), (change, previous)))
        })?;
        let answer = EventChange {
            change,
            event: Some(schema_event(&event_type, &spec)),
            previous: previous.as_ref().map(|old| schema_event(&event_type, old)),
        };
        if change == SchemaChange::Unchanged {
            return Ok((StatusCode::OK, Json(answer)));
        }
        let detail = match &previous {
            None => format!("added: {}", describe_event(&spec)),
            Some(old) => format!(
                "changed: {} -> {}",
                describe_event(old),
                describe_event(&spec)
            ),
        };
        vault.record_admin_action(
            tenant,
            AuditEntry::new(&actor, "schema.event")
                .fields([event_type.clone()])
                .detail(detail),
        )?;
        tracing::info!(event_type = %event_type, ?change, "event schema changed");
        let status = if change == SchemaChange::Added {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(answer)))
    })
    .await
}

/// `DELETE /v1/schema/events/{type}`: removes an event type's schema; its
/// events are then taken unchecked (or refused, if the tenant's
/// `events_strict` is set). Refused (409 `event_type_in_use`) while people
/// hold events of the type and the schema classes a property `pii` or
/// `sensitive`: without it the property would count as `standard`.
#[utoipa::path(delete, path = "/v1/schema/events/{type}", tag = "tenant",
    params(("type" = String, Path, description = "The event type.")),
    responses(
        (status = 200, description = "Removed.", body = EventChange),
        (status = 404, description = "The schema has no such event type.", body = ErrorBody),
        (status = 409, description = "People hold events of the type, and the schema classes \
            one of its properties pii or sensitive (`event_type_in_use`).", body = ErrorBody),
    ))]
async fn delete_event(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(event_type): Path<String>,
) -> Result<Json<EventChange>, ApiError> {
    let unknown = || {
        ApiError::not_found(
            "unknown_event_type",
            "the tenant's event schema has no such event type",
        )
    };
    if !valid_name(&event_type) {
        return Err(unknown());
    }
    blocking(move || {
        let tenant = &principal.tenant;
        let actor = principal.actor();
        let vault = &state.vault;
        let previous = vault.change_settings(tenant, &actor, |settings, _| {
            let mut settings = settings.clone();
            let Some(previous) = settings.events.remove(&event_type) else {
                return Err(unknown());
            };
            if loosens(&previous, None) {
                let held_by = event_holders(vault, tenant, &event_type)?;
                if held_by > 0 {
                    return Err(event_in_use(
                        &event_type,
                        held_by,
                        "the schema classes a property pii or sensitive, which it would no longer \
                         be while people hold events of the type (erase or let them expire first)",
                    ));
                }
            }
            Ok((Some(settings), previous))
        })?;
        vault.record_admin_action(
            tenant,
            AuditEntry::new(&actor, "schema.event")
                .fields([event_type.clone()])
                .detail(format!("removed: {}", describe_event(&previous))),
        )?;
        tracing::info!(event_type = %event_type, "event schema removed");
        Ok(Json(EventChange {
            change: SchemaChange::Removed,
            event: None,
            previous: Some(schema_event(&event_type, &previous)),
        }))
    })
    .await
}

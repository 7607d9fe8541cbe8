//! `/v1/me`: a person's own data, with a subject token. Every handler acts
//! on the token's subject only; no URL or body names a subject. Ids in a
//! path (a deletion request, an app) that are not this person's are 404,
//! exactly as ids that do not exist.
//!
//! Once the person is erased, their token (until it expires) reads the
//! status and receipt of their deletion request and can log out; every
//! other route answers 410 `subject_erased`.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_vault::{
    Actor, ConsentChange, ConsentEntry, ConsentState, DeletionRequest, LinkedApp, Retention,
    SubjectView, VaultError,
};

use crate::error::{ApiError, BodyShape, ErrorBody, Json, Path, PrivateJson, Query};
use crate::handlers::plain_id;
use crate::tokens::Principal;
use crate::{AppState, blocking};

/// The `/v1/me` routes (the authorization layer is added over them with
/// the other `/v1` routes). Answers are never cached.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/me", get(view))
        .route("/v1/me/traits", patch(edit_traits))
        .route("/v1/me/export", get(export))
        .route("/v1/me/deletion", post(request_deletion))
        .route("/v1/me/deletions/{id}", get(deletion))
        .route("/v1/me/consents", get(consents))
        .route("/v1/me/consents/{purpose}", put(set_consent))
        .route("/v1/me/apps", get(apps))
        .route("/v1/me/apps/{id}", axum::routing::delete(revoke_app))
        .route("/v1/me/retention", get(retention).put(set_retention))
        .route("/v1/me/session", axum::routing::delete(logout))
        .layer(map_response(no_store))
}

/// Marks an answer as not to be stored by any cache (it holds personal data
/// or a credential).
pub(crate) async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The tenant, the subject and the audit actor of a subject token.
struct Me {
    tenant: String,
    subject: String,
    actor: Actor,
}

fn me(principal: &Principal) -> Result<Me, ApiError> {
    let Some(session) = &principal.subject else {
        // The role matrix admits only subject tokens here.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only a subject token may call /v1/me",
        ));
    };
    Ok(Me {
        tenant: principal.tenant.clone(),
        subject: session.id.clone(),
        actor: principal.actor(),
    })
}

/// A vault error about the caller's own subject: once erased (keys
/// destroyed, or records purged), 410 whatever the route.
fn own(error: VaultError) -> ApiError {
    match error {
        VaultError::SubjectErased { .. } | VaultError::UnknownSubject { .. } => ApiError::new(
            StatusCode::GONE,
            "subject_erased",
            "your data has been erased; only your deletion request's status and receipt \
             remain readable (GET /v1/me/deletions/{id})",
        ),
        error => error.into(),
    }
}

/// `GET /v1/me`: everything held about the person (audited).
#[utoipa::path(get, path = "/v1/me", tag = "me",
    responses(
        (status = 200, description = "Everything held about the person.", body = SubjectView),
        (status = 410, description = "The person was erased.", body = ErrorBody),
    ))]
pub(crate) async fn view(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<SubjectView>, ApiError> {
    let me = me(&principal)?;
    let view = blocking(move || {
        state
            .vault
            .access(&me.tenant, &me.subject, &me.actor)
            .map_err(own)
    })
    .await?;
    Ok(Json(view))
}

/// The most traits one request may change.
const MAX_TRAIT_CHANGES: usize = 64;

/// `PATCH /v1/me/traits`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditTraits {
    /// Trait name → new value, or `null` to remove it.
    pub traits: BTreeMap<String, Option<Value>>,
}

impl BodyShape for EditTraits {
    const SHAPE: &'static str = r#"{"traits": {"<name>": <value> | null, …}}"#;
}

/// The answer to `PATCH /v1/me/traits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraitsEdited {
    /// Traits set to a new value.
    pub set: Vec<String>,
    /// Traits removed.
    pub removed: Vec<String>,
}

/// `PATCH /v1/me/traits`: sets or removes traits the tenant lets subjects
/// edit (audited, naming the fields, never the values).
#[utoipa::path(patch, path = "/v1/me/traits", tag = "me", request_body = EditTraits,
    responses(
        (status = 200, description = "The traits changed (names only).", body = TraitsEdited),
        (status = 410, description = "The person was erased.", body = ErrorBody),
    ))]
pub(crate) async fn edit_traits(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    PrivateJson(body): PrivateJson<EditTraits>,
) -> Result<Json<TraitsEdited>, ApiError> {
    let me = me(&principal)?;
    if body.traits.is_empty() || body.traits.len() > MAX_TRAIT_CHANGES {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("`traits` must name 1 to {MAX_TRAIT_CHANGES} traits"),
        )
        .with_field("traits", format!("1 to {MAX_TRAIT_CHANGES} traits")));
    }
    let edited = blocking(move || {
        let settings = state.vault.settings(&me.tenant)?;
        for name in body.traits.keys() {
            let field = format!("traits.{name}");
            if !settings.schema.contains_key(name) {
                return Err(ApiError::unprocessable(
                    "unknown_trait",
                    format!("there is no trait {name:?}"),
                )
                .with_field(&field, "not a trait of this tenant"));
            }
            if !settings.subject_may_edit(name) {
                return Err(ApiError::unprocessable(
                    "trait_not_editable",
                    format!(
                        "the trait {name:?} is kept by the tenant and cannot be changed here; \
                         ask the tenant to correct it"
                    ),
                )
                .with_field(&field, "not editable by subjects"));
            }
        }
        state
            .vault
            .rectify(&me.tenant, &me.subject, &body.traits, &me.actor)
            .map_err(own)?;
        let (set, removed) = body.traits.iter().fold(
            (Vec::new(), Vec::new()),
            |(mut set, mut removed), (name, value)| {
                if value.is_some() {
                    set.push(name.clone());
                } else {
                    removed.push(name.clone());
                }
                (set, removed)
            },
        );
        Ok(TraitsEdited { set, removed })
    })
    .await?;
    Ok(Json(edited))
}

/// The CSV tables of an export, by `table` name.
pub const EXPORT_TABLES: [&str; 9] = [
    "access_log",
    "consents",
    "decisions",
    "events",
    "identities",
    "linked_apps",
    "plugin_state",
    "segments",
    "traits",
];

/// `GET /v1/me/export` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
    /// With `csv`: which table ([`EXPORT_TABLES`]).
    pub table: Option<String>,
}

/// `GET /v1/me/export?format=json` or `?format=csv&table=T`: the export
/// right, as a download (audited).
#[utoipa::path(get, path = "/v1/me/export", tag = "me", params(ExportQuery),
    responses(
        (status = 200, description = "A download: everything held as JSON, or one table as CSV.",
            content(
                (SubjectView = "application/json"),
                (String = "text/csv"),
            )),
        (status = 410, description = "The person was erased.", body = ErrorBody),
    ))]
pub(crate) async fn export(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let me = me(&principal)?;
    let tables = || {
        json!({
            "field": "table",
            "reason": "one of the export's tables",
            "tables": EXPORT_TABLES,
        })
    };
    let csv_table = match query.format.as_deref().unwrap_or("json") {
        "json" if query.table.is_none() => None,
        "json" => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`table` goes with format=csv only",
            )
            .with_field("table", "only with format=csv"));
        }
        "csv" => match query.table {
            Some(table) if EXPORT_TABLES.contains(&table.as_str()) => Some(table),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "format=csv needs `table`, one of: {}",
                        EXPORT_TABLES.join(", ")
                    ),
                )
                .with_details(tables()));
            }
        },
        _ => {
            return Err(
                ApiError::bad_request("invalid_query", "`format` is json or csv")
                    .with_field("format", "json or csv"),
            );
        }
    };
    let subject = me.subject.clone();
    let (body, content_type, file) = blocking(move || match csv_table {
        None => {
            let text = state
                .vault
                .export_json(&me.tenant, &me.subject, &me.actor)
                .map_err(own)?;
            Ok((
                text,
                "application/json",
                format!("tessera-export-{subject}.json"),
            ))
        }
        Some(table) => {
            let mut files = state
                .vault
                .export_csv(&me.tenant, &me.subject, &me.actor)
                .map_err(own)?;
            let text = files
                .remove(&format!("{table}.csv"))
                .ok_or_else(|| ApiError::internal(&format!("the export has no {table}.csv")))?;
            Ok((
                text,
                "text/csv; charset=utf-8",
                format!("tessera-export-{subject}-{table}.csv"),
            ))
        }
    })
    .await?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
        .map_err(|e| ApiError::internal(&e))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// `POST /v1/me/deletion`: erases the person (keys destroyed now, records
/// purged by the job); 202 with the request to follow.
#[utoipa::path(post, path = "/v1/me/deletion", tag = "me",
    responses(
        (status = 202, description = "Keys destroyed; the purge follows.", body = DeletionRequest),
        (status = 410, description = "The person was erased.", body = ErrorBody),
    ))]
pub(crate) async fn request_deletion(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<(StatusCode, Json<DeletionRequest>), ApiError> {
    let me = me(&principal)?;
    let request = blocking(move || {
        state
            .vault
            .request_deletion(&me.tenant, &me.subject, "subject_request", &me.actor)
            .map_err(own)
    })
    .await?;
    tracing::info!(request = %request.id, "deletion requested by the subject");
    Ok((StatusCode::ACCEPTED, Json(request)))
}

/// `GET /v1/me/deletions/{id}`: the status of the person's own deletion
/// request, with its receipt once completed; 404 for any other id.
#[utoipa::path(get, path = "/v1/me/deletions/{id}", tag = "me",
    params(("id" = String, Path, description = "The person's deletion request id.")),
    responses(
        (status = 200, description = "The request, and its receipt once completed.",
            body = DeletionRequest),
        (status = 404, description = "The person has no deletion request with that id.",
            body = ErrorBody),
    ))]
pub(crate) async fn deletion(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<DeletionRequest>, ApiError> {
    let me = me(&principal)?;
    let unknown = || {
        ApiError::not_found(
            "unknown_deletion_request",
            "you have no deletion request with that id",
        )
    };
    if !plain_id(&id) {
        return Err(unknown());
    }
    let request = blocking(
        move || match state.vault.deletion_request(&me.tenant, &id) {
            Ok(request) if request.subjects.contains(&me.subject) => Ok(request),
            Ok(_) | Err(VaultError::UnknownRequest { .. }) => Err(unknown()),
            Err(error) => Err(error.into()),
        },
    )
    .await?;
    Ok(Json(request))
}

/// The answer to `GET /v1/me/consents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MyConsents {
    /// Each of the tenant's purposes, granted or not (never decided: not).
    pub consents: Vec<ConsentState>,
    /// Every grant and revocation, oldest first, with who and how.
    pub history: Vec<ConsentEntry>,
}

/// `GET /v1/me/consents` (audited).
#[utoipa::path(get, path = "/v1/me/consents", tag = "me",
    responses(
        (status = 200, description = "Consent per purpose, and the history.", body = MyConsents),
        (status = 410, description = "The person was erased.", body = ErrorBody),
    ))]
pub(crate) async fn consents(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<MyConsents>, ApiError> {
    let me = me(&principal)?;
    let consents = blocking(move || {
        state
            .vault
            .consents(&me.tenant, &me.subject, &me.actor)
            .map_err(own)
    })
    .await?;
    Ok(Json(MyConsents {
        consents: consents.consents,
        history: consents
            .history
            .into_iter()
            .filter(|entry| matches!(entry, ConsentEntry::Purpose { .. }))
            .collect(),
    }))
}

/// `PUT /v1/me/consents/{purpose}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetConsent {
    pub granted: bool,
}

impl BodyShape for SetConsent {
    const SHAPE: &'static str = r#"{"granted": true | false}"#;
}

/// What was recorded by `PUT /v1/me/consents/{purpose}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentSet {
    pub purpose: String,
    pub granted: bool,
    /// How it was given: `portal`.
    pub method: String,
}

/// `PUT /v1/me/consents/{purpose}`: grants or revokes a purpose; kept in
/// the history (method `portal`, by the subject) and audited.
#[utoipa::path(put, path = "/v1/me/consents/{purpose}", tag = "me", request_body = SetConsent,
    params(("purpose" = String, Path, description = "One of the tenant's purposes.")),
    responses(
        (status = 200, description = "What was recorded.", body = ConsentSet),
        (status = 410, description = "The person was erased.", body = ErrorBody),
    ))]
pub(crate) async fn set_consent(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(purpose): Path<String>,
    PrivateJson(body): PrivateJson<SetConsent>,
) -> Result<Json<ConsentSet>, ApiError> {
    let me = me(&principal)?;
    let change = ConsentChange {
        purpose,
        granted: body.granted,
        method: "portal".into(),
        given_at_ms: None,
    };
    let change = blocking(move || {
        state
            .vault
            .set_consent(&me.tenant, &me.subject, &change, &me.actor)
            .map_err(own)?;
        Ok(change)
    })
    .await?;
    Ok(Json(ConsentSet {
        purpose: change.purpose,
        granted: change.granted,
        method: change.method,
    }))
}

/// The answer to `GET /v1/me/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MyApps {
    pub apps: Vec<LinkedApp>,
}

/// `GET /v1/me/apps`: the apps and third parties the person granted access
/// (audited).
#[utoipa::path(get, path = "/v1/me/apps", tag = "me",
    responses(
        (status = 200, description = "The apps the person linked.", body = MyApps),
        (status = 410, description = "The person was erased.", body = ErrorBody),
    ))]
pub(crate) async fn apps(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<MyApps>, ApiError> {
    let me = me(&principal)?;
    let consents = blocking(move || {
        state
            .vault
            .consents(&me.tenant, &me.subject, &me.actor)
            .map_err(own)
    })
    .await?;
    Ok(Json(MyApps {
        apps: consents.linked_apps,
    }))
}

/// `DELETE /v1/me/apps/{id}`: revokes a linked app's access; 404 if the
/// person has no such app linked.
#[utoipa::path(delete, path = "/v1/me/apps/{id}", tag = "me",
    params(("id" = String, Path, description = "The app's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 404, description = "The person has no such app linked.", body = ErrorBody),
        (status = 410, description = "The person was erased.", body = ErrorBody),
    ))]
pub(crate) async fn revoke_app(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    let me = me(&principal)?;
    let unknown = || ApiError::not_found("unknown_app", "you have no linked app with that id");
    if app.is_empty() || app.len() > 128 {
        return Err(unknown());
    }
    let revoked = blocking(move || {
        state
            .vault
            .unlink_app(&me.tenant, &me.subject, &app, &me.actor)
            .map_err(own)
    })
    .await?;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(unknown())
    }
}

/// `GET /v1/me/retention`: the period that applies, the person's choice and
/// the tenant's bounds (audited).
#[utoipa::path(get, path = "/v1/me/retention", tag = "me",
    responses(
        (status = 200, description = "The period that applies, the choice and the bounds.",
            body = Retention),
        (status = 410, description = "The person was erased.", body = ErrorBody),
    ))]
pub(crate) async fn retention(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Retention>, ApiError> {
    let me = me(&principal)?;
    let retention = blocking(move || {
        state
            .vault
            .retention(&me.tenant, &me.subject, &me.actor)
            .map_err(own)
    })
    .await?;
    Ok(Json(retention))
}

/// `PUT /v1/me/retention`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRetention {
    /// Days, within the tenant's bounds.
    pub days: u32,
}

impl BodyShape for SetRetention {
    const SHAPE: &'static str = r#"{"days": <whole number>}"#;
}

/// `PUT /v1/me/retention`: chooses the retention period; out of bounds is
/// 422 `retention_out_of_bounds` naming them.
#[utoipa::path(put, path = "/v1/me/retention", tag = "me", request_body = SetRetention,
    responses(
        (status = 200, description = "The new period.", body = Retention),
        (status = 410, description = "The person was erased.", body = ErrorBody),
    ))]
pub(crate) async fn set_retention(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    PrivateJson(body): PrivateJson<SetRetention>,
) -> Result<Json<Retention>, ApiError> {
    let me = me(&principal)?;
    let retention = blocking(move || {
        let settings = state.vault.settings(&me.tenant)?;
        let bounds = settings.retention;
        match state
            .vault
            .set_retention(&me.tenant, &me.subject, body.days, &me.actor)
        {
            Ok(()) => {}
            Err(VaultError::RetentionOutOfBounds { days, min, max, .. }) => {
                return Err(ApiError::unprocessable(
                    "retention_out_of_bounds",
                    format!("{days} days is outside the tenant's bounds: {min} to {max} days"),
                )
                .with_details(json!({
                    "field": "days",
                    "reason": format!("{min} to {max} days"),
                    "min_days": min,
                    "max_days": max,
                })));
            }
            Err(error) => return Err(own(error)),
        }
        Ok(Retention {
            days: settings.retention_days(Some(body.days)),
            chosen: Some(body.days),
            default_days: bounds.default_days,
            min_days: bounds.min_days,
            max_days: bounds.max_days,
        })
    })
    .await?;
    Ok(Json(retention))
}

/// `DELETE /v1/me/session`: ends this subject token now (logout).
#[utoipa::path(delete, path = "/v1/me/session", tag = "me",
    responses((status = 204, description = "This subject token no longer works.")))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<StatusCode, ApiError> {
    me(&principal)?;
    blocking(move || Ok(state.subject_tokens.revoke(&principal)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

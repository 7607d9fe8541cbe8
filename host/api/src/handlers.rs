//! Health, metrics, tokens, subjects, deletions and the audit trail.

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_vault::{AuditEntry, DeletionRequest, SubjectView};

use crate::auth::Role;
use crate::error::{ApiError, Json, Path, Query};
use crate::tokens::{NewToken, Principal, TokenInfo, valid_id};
use crate::{AppState, blocking};

/// `GET /healthz`: the process answers.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store answers.
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    blocking(move || match state.vault.store().tenants() {
        Ok(_) => Ok(Json(json!({ "status": "ready" }))),
        Err(error) => {
            tracing::warn!(%error, "store not ready");
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the store cannot be read",
            );
            e.retry_after = Some(5);
            Err(e)
        }
    })
    .await
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// Ids of subjects and deletion requests are random hex; anything else names
/// nothing (and is not sent to the store, which refuses odd ids loudly).
pub(crate) fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    role: Role,
    name: String,
}

/// `POST /v1/tokens`: a new token of the caller's tenant, shown once.
pub(crate) async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    if body.role == Role::Subject {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "subject tokens are not API tokens: the portal issues them with POST /v1/subject-tokens",
        )
        .with_field("role", "one of operator, marketer, ingest, analyst, portal"));
    }
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "`name` must be 1 to 64 characters without control characters",
        )
        .with_field("name", "1 to 64 printable characters"));
    }
    let created = blocking(move || {
        let actor = principal.actor();
        Ok(state
            .tokens
            .create(&principal.tenant, body.role, &name, &actor)?)
    })
    .await?;
    tracing::info!(token = %created.info.id, role = %created.info.role, "token created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/tokens`: the tenant's tokens, without secrets.
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let tokens = blocking(move || Ok(state.tokens.list(&principal.tenant)?)).await?;
    Ok(Json(json!({ "tokens": tokens })))
}

/// `DELETE /v1/tokens/{id}`: revokes a token of the tenant.
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let unknown = || ApiError::not_found("unknown_token", "the tenant has no token with that id");
    if !valid_id(&id) {
        return Err(unknown());
    }
    let revoked = blocking(move || {
        Ok(state
            .tokens
            .revoke(&principal.tenant, &id, &principal.actor())?)
    })
    .await?;
    let info = revoked.ok_or_else(unknown)?;
    tracing::info!(token = %info.id, "token revoked");
    Ok(Json(info))
}

fn unknown_subject() -> ApiError {
    ApiError::not_found("unknown_subject", "the tenant has no subject with that id")
}

/// `GET /v1/subjects/{id}`: everything held about the person (audited).
pub(crate) async fn subject(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<SubjectView>, ApiError> {
    if !plain_id(&id) {
        return Err(unknown_subject());
    }
    let view = blocking(move || {
        Ok(state
            .vault
            .access(&principal.tenant, &id, &principal.actor())?)
    })
    .await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteQuery {
    reason: Option<String>,
}

/// `DELETE /v1/subjects/{id}`: erases the person (keys destroyed now,
/// records purged by the job) and returns the request to follow.
pub(crate) async fn delete_subject(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<(StatusCode, Json<DeletionRequest>), ApiError> {
    if !plain_id(&id) {
        return Err(unknown_subject());
    }
    let reason = query.reason.unwrap_or_else(|| "operator_request".into());
    let valid = !reason.is_empty()
        && reason.len() <= 64
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`reason` must be 1 to 64 characters of a-z, 0-9 and _",
        )
        .with_field("reason", "1 to 64 characters of a-z, 0-9 and _"));
    }
    let request = blocking(move || {
        Ok(state
            .vault
            .request_deletion(&principal.tenant, &id, &reason, &principal.actor())?)
    })
    .await?;
    tracing::info!(request = %request.id, "deletion requested");
    Ok((StatusCode::ACCEPTED, Json(request)))
}

/// `GET /v1/deletions/{id}`: a deletion request's status, and its receipt
/// once completed.
pub(crate) async fn deletion(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<DeletionRequest>, ApiError> {
    if !plain_id(&id) {
        return Err(ApiError::not_found(
            "unknown_deletion_request",
            "the tenant has no deletion request with that id",
        ));
    }
    let request =
        blocking(move || Ok(state.vault.deletion_request(&principal.tenant, &id)?)).await?;
    Ok(Json(request))
}

/// The most audit entries one page holds.
const AUDIT_PAGE_MAX: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/audit?from=&limit=`: a page of the tenant's audit trail, from
/// sequence number `from` (default 1), and where the next page starts.
pub(crate) async fn audit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > AUDIT_PAGE_MAX {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`limit` must be 1 to {AUDIT_PAGE_MAX}"),
        )
        .with_field("limit", format!("1 to {AUDIT_PAGE_MAX}")));
    }
    let from = query.from.unwrap_or(1);
    let entries: Vec<AuditEntry> =
        blocking(move || Ok(state.vault.audit_entries(&principal.tenant, from, limit)?)).await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq + 1))
        .flatten();
    Ok(Json(json!({ "entries": entries, "next": next })))
}

//! Health, metrics, tokens, subjects, deletions and the audit trail.

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tessera_vault::{AuditEntry, DeletionRequest, SubjectView};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Role;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::tokens::{NewToken, Principal, TokenInfo, valid_id};
use crate::{AppState, blocking};

/// The answer of `/healthz` and `/readyz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Status {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    status: String,
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process answers.", body = Status)))]
pub(crate) async fn health() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// The store answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "The store can be read.", body = Status)))]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    blocking(move || match state.vault.store().tenants() {
        Ok(_) => Ok(Json(Status {
            status: "ready".into(),
        })),
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

/// Prometheus text: requests, latencies and ingest counts.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.",
        body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    if let Some(plugins) = &state.plugins {
        text.push_str(&crate::plugins::render_metrics(plugins));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    role: Role,
    /// What the token is for: 1 to 64 printable characters.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
}

/// A new token of the caller's tenant. The token is in the answer, once: it
/// is stored only as a hash.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, description = "Created; `token` is shown only now.", body = NewToken)))]
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

/// The answer of `GET /v1/tokens`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct TokenList {
    tokens: Vec<TokenInfo>,
}

/// The tenant's tokens, revoked ones included, without secrets.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, description = "The tenant's tokens.", body = TokenList)))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = blocking(move || Ok(state.tokens.list(&principal.tenant)?)).await?;
    Ok(Json(TokenList { tokens }))
}

/// Revokes a token of the tenant; it stops working at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token id (16 hex digits).")),
    responses(
        (status = 200, description = "Revoked (or already revoked).", body = TokenInfo),
        (status = 404, description = "The tenant has no token with that id.", body = ErrorBody),
    ))]
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

/// Everything held about the person the subject belongs to, decrypted
/// (the access right). The read is audited.
#[utoipa::path(get, path = "/v1/subjects/{id}", tag = "subjects",
    params(("id" = String, Path, description = "A subject id.")),
    responses(
        (status = 200, description = "Everything held about the person.", body = SubjectView),
        (status = 404, description = "The tenant has no subject with that id.", body = ErrorBody),
        (status = 410, description = "The subject was erased.", body = ErrorBody),
    ))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteQuery {
    /// Why: 1 to 64 characters of a-z, 0-9 and _ (default `operator_request`).
    #[param(pattern = "^[a-z0-9_]{1,64}$")]
    reason: Option<String>,
}

/// Erases the person: their keys are destroyed now (every copy of their
/// records becomes unreadable), their identities suppressed, and a job
/// purges the records. Answers the request to follow.
#[utoipa::path(delete, path = "/v1/subjects/{id}", tag = "subjects",
    params(("id" = String, Path, description = "A subject id."), DeleteQuery),
    responses(
        (status = 202, description = "Keys destroyed; the purge follows.", body = DeletionRequest),
        (status = 404, description = "The tenant has no subject with that id.", body = ErrorBody),
        (status = 410, description = "The subject was already erased.", body = ErrorBody),
    ))]
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

/// A deletion request's status, and its receipt once completed.
#[utoipa::path(get, path = "/v1/deletions/{id}", tag = "subjects",
    params(("id" = String, Path, description = "A deletion request id.")),
    responses(
        (status = 200, description = "The request.", body = DeletionRequest),
        (status = 404, description = "The tenant has no deletion request with that id.",
            body = ErrorBody),
    ))]
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
/// The most entries one filtered request looks at: a search of a long
/// trail answers in steps, each with the `next` to continue from.
const AUDIT_SCAN_MAX: usize = 10_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// The first sequence number (default 1).
    from: Option<u64>,
    /// Entries per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only entries whose actor is this: a role (`operator`), an id
    /// (`token:0123456789abcdef`), or `role:id`.
    actor: Option<String>,
    /// Only entries of this action (`plugin.approve`), or of every action
    /// that starts with it when it ends with `.` or `*` (`plugin.`).
    action: Option<String>,
    /// Only entries about this subject.
    subject: Option<String>,
    /// Only entries at or after this time (ms since the Unix epoch).
    since_ms: Option<i64>,
    /// Only entries before this time (ms since the Unix epoch).
    until_ms: Option<i64>,
}

/// What a filtered audit search keeps.
struct AuditFilter {
    actor: Option<String>,
    action: Option<String>,
    subject: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
}

impl AuditFilter {
    fn of(query: &AuditQuery) -> Result<Option<Self>, ApiError> {
        let text = |value: &Option<String>, field: &str| -> Result<Option<String>, ApiError> {
            match value.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(v) if v.len() > 200 => Err(ApiError::bad_request(
                    "invalid_query",
                    format!("`{field}` is longer than 200 characters"),
                )
                .with_field(field, "at most 200 characters")),
                Some(v) => Ok(Some(v.to_owned())),
            }
        };
        if let (Some(since), Some(until)) = (query.since_ms, query.until_ms)
            && since > until
        {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("`since_ms` ({since}) is after `until_ms` ({until})"),
            )
            .with_field("since_ms", "at most until_ms"));
        }
        let filter = Self {
            actor: text(&query.actor, "actor")?,
            action: text(&query.action, "action")?,
            subject: text(&query.subject, "subject")?,
            since_ms: query.since_ms,
            until_ms: query.until_ms,
        };
        let any = filter.actor.is_some()
            || filter.action.is_some()
            || filter.subject.is_some()
            || filter.since_ms.is_some()
            || filter.until_ms.is_some();
        Ok(any.then_some(filter))
    }

    fn keeps(&self, entry: &AuditEntry) -> bool {
        let actor = self.actor.as_deref().is_none_or(|wanted| {
            wanted == entry.actor.role
                || wanted == entry.actor.id
                || wanted
                    .split_once(':')
                    .is_some_and(|(role, id)| role == entry.actor.role && id == entry.actor.id)
        });
        let action = self
            .action
            .as_deref()
            .is_none_or(|wanted| match wanted.strip_suffix('*') {
                Some(prefix) => entry.action.starts_with(prefix),
                None if wanted.ends_with('.') => entry.action.starts_with(wanted),
                None => entry.action == wanted,
            });
        let subject = self
            .subject
            .as_deref()
            .is_none_or(|wanted| entry.subject.as_deref() == Some(wanted));
        let since = self.since_ms.is_none_or(|since| entry.at_ms >= since);
        let until = self.until_ms.is_none_or(|until| entry.at_ms < until);
        actor && action && subject && since && until
    }
}

/// A page of the audit trail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Where the next page starts, if there may be one. With filters, a
    /// page may hold fewer than `limit` entries (even none) and still have
    /// a `next`: the search looked at 10,000 entries and stopped there.
    next: Option<u64>,
}

/// A page of the tenant's audit trail, from sequence number `from`, and
/// where the next page starts; with filters, only the entries that match
/// them all.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "A page of entries.", body = AuditPage)))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = crate::error::page_limit(query.limit, 100, AUDIT_PAGE_MAX)?;
    let from = query.from.unwrap_or(1);
    let Some(filter) = AuditFilter::of(&query)? else {
        let entries: Vec<AuditEntry> =
            blocking(move || Ok(state.vault.audit_entries(&principal.tenant, from, limit)?))
                .await?;
        let next = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.seq + 1))
            .flatten();
        return Ok(Json(AuditPage { entries, next }));
    };
    let page = blocking(move || {
        let mut entries = Vec::new();
        let mut at = from;
        let mut scanned = 0;
        loop {
            let chunk = state
                .vault
                .audit_entries(&principal.tenant, at, AUDIT_PAGE_MAX)?;
            let Some(last) = chunk.last().map(|e| e.seq) else {
                return Ok(AuditPage {
                    entries,
                    next: None,
                });
            };
            let full = chunk.len() == AUDIT_PAGE_MAX;
            for entry in chunk {
                scanned += 1;
                let seq = entry.seq;
                if filter.keeps(&entry) {
                    entries.push(entry);
                    if entries.len() == limit {
                        return Ok(AuditPage {
                            entries,
                            next: Some(seq + 1),
                        });
                    }
                }
            }
            if !full {
                return Ok(AuditPage {
                    entries,
                    next: None,
                });
            }
            at = last + 1;
            if scanned >= AUDIT_SCAN_MAX {
                return Ok(AuditPage {
                    entries,
                    next: Some(at),
                });
            }
        }
    })
    .await?;
    Ok(Json(page))
}

//! The one error shape of the API, and extractors whose rejections use it.
//!
//! ```json
//! { "error": { "code": "unknown_subject", "message": "…", "details": { "field": "…" } } }
//! ```
//!
//! Codes are stable snake_case words that clients may match on; messages are
//! for people. A 4xx explains which input was wrong (in `details.field` and
//! `details.reason` where there is one); a 5xx says only that the server
//! failed and logs the cause with the request id.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tessera_vault::VaultError;

/// An error answer: status, stable code, message and optional details.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds, for 429 and 503 answers.
    pub retry_after: Option<u64>,
}

/// The body of every answer that is not a success.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail<'a> {
    /// A stable snake_case word to match on, e.g. `unknown_subject`.
    code: &'a str,
    /// For people: what was wrong and what to do.
    message: &'a str,
    /// When the input was wrong: the `field` at fault and the `reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Details naming the input field that was wrong, and why.
    pub fn with_field(self, field: &str, reason: impl Into<String>) -> Self {
        self.with_details(json!({ "field": field, "reason": reason.into() }))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// A server failure: the cause is logged here, with the request's span,
    /// and the client learns nothing about it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; it has been logged, try again later",
        )
    }
}

/// A list's `limit` query parameter: `default` when absent, else 1 to
/// `max`, or 400 `invalid_query` naming the bounds.
pub(crate) fn page_limit(
    limit: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(
            ApiError::bad_request("invalid_query", format!("`limit` must be 1 to {max}"))
                .with_field("limit", format!("1 to {max}")),
        );
    }
    Ok(limit)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                details: self.details.as_ref(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tessera\", Basic realm=\"tessera\""),
            );
        }
        response
    }
}

impl From<VaultError> for ApiError {
    fn from(error: VaultError) -> Self {
        use VaultError as E;
        let message = error.to_string();
        match &error {
            E::UnknownTenant { .. } => Self::not_found("unknown_tenant", message),
            E::TenantExists { .. } => Self::new(StatusCode::CONFLICT, "tenant_exists", message),
            E::UnknownSubject { .. } => Self::not_found("unknown_subject", message),
            E::NotLinked { .. } => Self::not_found("identity_not_linked", message),
            E::SubjectErased { .. } => Self::new(StatusCode::GONE, "subject_erased", message),
            E::UnknownRequest { .. } => Self::not_found("unknown_deletion_request", message),
            E::InvalidSettings { reason } => {
                Self::unprocessable("invalid_settings", message.clone())
                    .with_field("settings", reason)
            }
            E::InvalidIdentity { kind, source } => {
                Self::unprocessable("invalid_identity", message.clone())
                    .with_field(kind, source.to_string())
            }
            E::NoIdentity => Self::unprocessable("no_identity", message),
            E::UnknownTrait { name, .. } => Self::unprocessable("unknown_trait", message.clone())
                .with_field(
                    &format!("traits.{name}"),
                    "not in the tenant's trait schema",
                ),
            E::InvalidTrait { name, reason } => {
                Self::unprocessable("invalid_trait", message.clone())
                    .with_field(&format!("traits.{name}"), reason.clone())
            }
            E::InvalidEvent { .. } => Self::unprocessable("invalid_event", message),
            E::InvalidProperty { property, rule, .. } => {
                Self::unprocessable("invalid_property", message.clone())
                    .with_field(&format!("properties.{property}"), rule.clone())
            }
            E::UnknownPurpose { purpose, .. } => {
                Self::unprocessable("unknown_purpose", message.clone()).with_field(
                    "purpose",
                    format!("{purpose:?} is not a purpose of the tenant"),
                )
            }
            E::RetentionOutOfBounds { .. } => {
                Self::unprocessable("retention_out_of_bounds", message)
            }
            E::GroupTooLarge { .. } => Self::new(StatusCode::CONFLICT, "group_too_large", message),
            E::NotMerged { .. } => Self::new(StatusCode::CONFLICT, "not_merged", message),
            E::AuditDamaged { .. } => {
                tracing::error!(cause = %error, "audit trail damaged");
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_damaged",
                    "the tenant's audit trail is damaged, so audited changes are refused; an \
                     operator must run `tessera audit verify` and `tessera audit restart`",
                );
                e.retry_after = Some(60);
                e
            }
            _ => Self::internal(&error),
        }
    }
}

/// Whether a vault error is about one ingest record's content (so that the
/// other records of its batch can still be stored).
pub(crate) fn is_item_error(error: &VaultError) -> bool {
    matches!(
        error,
        VaultError::InvalidIdentity { .. }
            | VaultError::NoIdentity
            | VaultError::UnknownTrait { .. }
            | VaultError::InvalidTrait { .. }
            | VaultError::InvalidEvent { .. }
            | VaultError::InvalidProperty { .. }
            | VaultError::UnknownPurpose { .. }
            | VaultError::SubjectErased { .. }
            | VaultError::GroupTooLarge { .. }
    )
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let reason = rejection.body_text();
    match rejection {
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("invalid_json", "the request body is not valid JSON")
                .with_field("body", reason)
        }
        JsonRejection::JsonDataError(_) => ApiError::unprocessable(
            "invalid_body",
            "the request body does not have the expected shape",
        )
        .with_field("body", reason),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON, with the header Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            too_large()
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        _ => ApiError::bad_request("invalid_body", "the request body could not be read")
            .with_field("body", reason),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than the server accepts (limits.max_body_bytes); split it",
    )
}

/// `axum::Json`, whose rejections (bad JSON, wrong types, wrong content
/// type, too large) are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

/// A request body that may hold personal data (identities, traits):
/// like [`Json`], but a body of the wrong shape is refused without
/// repeating any of it, since serde's messages quote the values they
/// stumble on (`invalid type: integer \`33612345678\``) and error answers
/// reach logs and proxies. The answer says what shape was expected
/// ([`BodyShape::SHAPE`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct PrivateJson<T>(pub T);

/// The shape of a [`PrivateJson`] body, as its refusal describes it.
pub trait BodyShape {
    /// E.g. `{"tenant": "<string>", "email": "<string>"}`.
    const SHAPE: &'static str;
}

impl<S, T> FromRequest<S> for PrivateJson<T>
where
    T: DeserializeOwned + BodyShape,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Any JSON reads as a `Value`: only syntax, type and size errors
        // remain here, and their messages give positions, not values.
        let Json(value) = Json::<Value>::from_request(req, state).await?;
        from_body(value, T::SHAPE).map(Self)
    }
}

/// Reads a JSON body into `T` without ever repeating its content; `shape`
/// tells the caller what was expected.
pub(crate) fn from_body<T: DeserializeOwned>(body: Value, shape: &str) -> Result<T, ApiError> {
    T::deserialize(body).map_err(|_| {
        ApiError::unprocessable("invalid_body", format!("the request body must be {shape}"))
            .with_field("body", shape)
    })
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with [`ApiError`] rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        "the query string is not valid for this endpoint",
    )
    .with_field("query", rejection.body_text())
}

/// `axum::extract::Path` with [`ApiError`] rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    if rejection.status().is_server_error() {
        return ApiError::internal(&rejection.body_text());
    }
    ApiError::bad_request("invalid_path", "a path parameter is not valid")
        .with_field("path", rejection.body_text())
}

/// The answer to a path no route matches.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found(
        "not_found",
        "no such endpoint; the API is described in docs/api.md",
    )
}

/// The answer to a method a route does not have.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// A JSON request body as bytes, for handlers that parse it themselves
/// (ingest, where one bad message of a batch must not refuse the others).
/// Takes `application/json`, `…+json` and, for browser beacons,
/// `text/plain`; rejections are [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct JsonBytes(pub axum::body::Bytes);

impl<S> FromRequest<S> for JsonBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .is_some_and(|m| m == "application/json" || m.ends_with("+json") || m == "text/plain");
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON, with the header Content-Type: application/json",
            ));
        }
        match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(too_large())
            }
            Err(rejection) => Err(ApiError::bad_request(
                "invalid_body",
                "the request body could not be read",
            )
            .with_field("body", rejection.body_text())),
        }
    }
}

/// What serde_json found wrong, by kind and position only: its own
/// messages quote the values they stumble on (`invalid type: string
/// "ann@example.com"`), and ingest bodies hold personal data.
pub(crate) fn json_error_reason(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Io => "could not be read",
        Category::Syntax => "is not valid JSON",
        Category::Eof => "ends too early",
        Category::Data => "has a value of the wrong type, or a missing or unknown field,",
    };
    format!(
        "the JSON {what} at line {} column {} (values are not repeated)",
        error.line(),
        error.column()
    )
}

/// A serde_json error as the answer to a body: 400 for broken JSON, 422 for
/// JSON of the wrong shape; neither repeats the body's values.
pub(crate) fn body_error(error: &serde_json::Error) -> ApiError {
    if error.is_syntax() || error.is_eof() {
        ApiError::bad_request("invalid_json", "the request body is not valid JSON")
            .with_field("body", json_error_reason(error))
    } else {
        ApiError::unprocessable(
            "invalid_body",
            "the request body does not have the expected shape",
        )
        .with_field("body", json_error_reason(error))
    }
}

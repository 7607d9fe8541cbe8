//! The subject portal, `/portal/`: the page on which a person signs in with
//! a one-time code and sees, corrects, exports and erases their own data.
//!
//! The page calls `/v1/me` itself, with the session cookie that signing in
//! here sets (the authorization layer takes it in place of a bearer token,
//! [`crate::web::presented_credential`]). This module adds the page, signing
//! in and out (which set and clear the cookie, so the page's scripts never
//! see the token), and one read shaped for the page. It only ever acts for
//! the person of the session.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_vault::{SubjectView, TraitType, VaultError};

use crate::error::{ApiError, ErrorBody, Json, PrivateJson};
use crate::login::CodeExchange;
use crate::profiles::SegmentMembership;
use crate::tokens::Principal;
use crate::{AppState, blocking, web};

/// The portal's routes and the embedded files under `/ui/`, every answer
/// with the security headers ([`web::security_headers`]); the portal's own
/// API answers are never cached.
pub(crate) fn routes() -> Router<AppState> {
    let api = Router::new()
        .route(
            "/portal/api/session",
            get(session).post(sign_in).delete(sign_out),
        )
        .route("/portal/api/me", get(overview))
        .layer(map_response(crate::me::no_store));
    Router::new()
        .route("/portal", get(to_page))
        .route("/portal/", get(page))
        .route("/ui/{*file}", get(web::asset))
        .merge(api)
        .layer(map_response(web::security_headers))
}

/// `GET /portal`: the page is `/portal/` (relative links resolve there).
async fn to_page(request: Request) -> Response {
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let location = HeaderValue::from_str(&format!("/portal/{query}"))
        .unwrap_or_else(|_| HeaderValue::from_static("/portal/"));
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// `GET /portal/`: the page, in the language the browser prefers (the page
/// lets the person switch).
async fn page(headers: HeaderMap) -> Response {
    let html = web::PORTAL_PAGE.replace("{{lang}}", web::page_language(&headers));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::VARY, HeaderValue::from_static("Accept-Language")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        html,
    )
        .into_response()
}

/// A signed-in session, as the page learns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PortalSession {
    pub tenant: String,
    /// Send it as `X-CSRF-Token` with every request that changes data.
    pub csrf_token: String,
    pub expires_at_ms: i64,
}

/// `POST /portal/api/session`: trades a one-time code for a session, as
/// `POST /v1/login/token` does, but keeps the subject token in an
/// `HttpOnly` cookie that lives as long as the token. Only from the
/// portal's own pages (no signing a browser into someone else's session).
#[utoipa::path(post, path = "/portal/api/session", tag = "portal", request_body = CodeExchange,
    responses(
        (status = 200, description = "Signed in: the session cookie is set (`Set-Cookie`, \
            `HttpOnly`, `SameSite=Strict`; `__Host-tessera_session` with `Secure` over HTTPS, \
            `tessera_session` over plain HTTP) and the page gets the CSRF token.",
            body = PortalSession),
        (status = 401, description = "The code is wrong, expired or used up, or the address \
            unknown (`invalid_code`, one answer for all).", body = ErrorBody),
        (status = 403, description = "Not sent by a page of this server: no `Origin`, an \
            `Origin` that is not this host, or `Sec-Fetch-Site` other than `same-origin` \
            (`cross_site_request`).", body = ErrorBody),
        (status = 404, description = "Code login is off (`code_login_disabled`).", body = ErrorBody),
        (status = 429, description = "The login limit of the tenant name asked for is \
            reached (known or not).", body = ErrorBody),
    ))]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    PrivateJson(body): PrivateJson<CodeExchange>,
) -> Result<Response, ApiError> {
    web::check_same_origin(&headers)?;
    let tenant = body.tenant.clone();
    let Json(issued) = crate::login::exchange(State(state.clone()), PrivateJson(body)).await?;
    let max_age_s = issued
        .expires_at_ms
        .saturating_sub(state.vault.now_ms())
        .div_euclid(1000);
    let cookie = web::session_cookie_header(
        web::PORTAL,
        &issued.token,
        max_age_s,
        web::over_https(state.config.tls.is_on(), &headers),
    )?;
    let mut response = Json(PortalSession {
        tenant,
        csrf_token: web::csrf_token(&issued.token),
        expires_at_ms: issued.expires_at_ms,
    })
    .into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// The person of the request's session cookie, and the session token;
/// within the person's own request limit, as on `/v1/me`.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<(Principal, String), ApiError> {
    let token = web::cookie_session(headers, method, web::PORTAL).unwrap_or_else(|| {
        Err(ApiError::unauthorized(
            "not signed in: ask for a code and sign in first",
        ))
    })?;
    let tokens = state.subject_tokens.clone();
    let presented = token.clone();
    let verdict = blocking(move || tokens.verify(&presented).map_err(ApiError::from)).await?;
    let principal = verdict.map_err(|rejected| ApiError::unauthorized(rejected.message()))?;
    let Some(session) = &principal.subject else {
        return Err(ApiError::unauthorized("the session holds no person"));
    };
    if let Err(wait) = state
        .subject_limiter
        .check(&format!("{}/{}", principal.tenant, session.id))
    {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("your request rate limit is reached; retry in {seconds} s"),
        );
        error.retry_after = Some(seconds.max(1));
        return Err(error);
    }
    Ok((principal, token))
}

/// `GET /portal/api/session`: the session of the cookie, with its CSRF
/// token (for a page loaded again); 401 if there is none.
#[utoipa::path(get, path = "/portal/api/session", tag = "portal",
    responses(
        (status = 200, description = "The session of the cookie and its CSRF token.",
            body = PortalSession),
        (status = 401, description = "No session cookie, or its session ended or was revoked.",
            body = ErrorBody),
        (status = 429, description = "The person's own request limit is reached; see \
            Retry-After.", body = ErrorBody),
    ))]
pub(crate) async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<PortalSession>, ApiError> {
    let (principal, token) = signed_in(&state, &headers, &Method::GET).await?;
    Ok(Json(PortalSession {
        expires_at_ms: principal.subject.map_or(0, |s| s.expires_at_ms),
        tenant: principal.tenant,
        csrf_token: web::csrf_token(&token),
    }))
}

/// `DELETE /portal/api/session`: signs out: the token is revoked (as by
/// `DELETE /v1/me/session`) and the cookie removed. Same origin and CSRF
/// token required, like every change made with the cookie.
#[utoipa::path(delete, path = "/portal/api/session", tag = "portal",
    responses(
        (status = 204, description = "Signed out: the session's token is revoked (if there \
            was one) and the cookie removed."),
        (status = 401, description = "The session cookie holds no session token.",
            body = ErrorBody),
        (status = 403, description = "Not sent by a page of this server \
            (`cross_site_request`), or, with the session cookie, without the session's \
            `X-CSRF-Token` (`csrf_token_missing`, `csrf_token_invalid`).", body = ErrorBody),
    ))]
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    web::check_same_origin(&headers)?;
    if let Some(session) = web::cookie_session(&headers, &Method::DELETE, web::PORTAL) {
        let token = session?;
        let tokens = state.subject_tokens.clone();
        blocking(move || {
            // An expired or already revoked token needs no revoking.
            if let Ok(principal) = tokens.verify(&token)? {
                tokens.revoke(&principal)?;
            }
            Ok(())
        })
        .await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    for cookie in web::clear_session_cookies(web::PORTAL) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// A trait the person may set or remove themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EditableTrait {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: TraitType,
    /// The values it may take; empty: any value of its type.
    pub allowed: Vec<Value>,
}

/// The answer to `GET /portal/api/me`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PortalMe {
    /// Everything held about the person, as `GET /v1/me` answers.
    pub data: SubjectView,
    /// The traits the tenant lets the person edit.
    pub editable: Vec<EditableTrait>,
    /// The segments the person is in, each with why in words (the rule
    /// explained, or the segment's description).
    pub segments: Vec<SegmentMembership>,
}

/// `GET /portal/api/me`: what the page shows: the person's data (audited as
/// an access, as `GET /v1/me`), which traits they may edit, and their
/// segments explained. 410 `subject_erased` once the person is erased.
#[utoipa::path(get, path = "/portal/api/me", tag = "portal",
    responses(
        (status = 200, description = "What the page shows: the person's data (an audited \
            access, as `GET /v1/me`), the traits they may edit, their segments explained.",
            body = PortalMe),
        (status = 401, description = "No session cookie, or its session ended or was revoked.",
            body = ErrorBody),
        (status = 410, description = "The person was erased (`subject_erased`).",
            body = ErrorBody),
        (status = 429, description = "The person's own request limit is reached; see \
            Retry-After.", body = ErrorBody),
    ))]
pub(crate) async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<PortalMe>, ApiError> {
    let (principal, _) = signed_in(&state, &headers, &Method::GET).await?;
    let overview = blocking(move || {
        let tenant = &principal.tenant;
        let subject = principal
            .subject
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        let settings = state.vault.settings(tenant)?;
        let data = state
            .vault
            .access(tenant, &subject, &principal.actor())
            .map_err(|error| match error {
                VaultError::SubjectErased { .. } | VaultError::UnknownSubject { .. } => {
                    ApiError::new(
                        StatusCode::GONE,
                        "subject_erased",
                        "your data has been erased; only your deletion request's status and \
                         receipt remain readable",
                    )
                }
                error => error.into(),
            })?;
        let reasons: BTreeMap<String, String> = match &state.segments {
            Some(segments) => segments
                .list(tenant)
                .map_err(ApiError::from)?
                .into_iter()
                .map(|s| {
                    let why = crate::profiles::why(&s);
                    (s.name, why)
                })
                .collect(),
            None => BTreeMap::new(),
        };
        let segments = data
            .segments
            .iter()
            .map(|m| SegmentMembership {
                segment: m.segment.clone(),
                entered_at_ms: m.entered_at_ms,
                why: reasons.get(&m.segment).cloned().unwrap_or_default(),
            })
            .collect();
        let editable = settings
            .subject_editable
            .iter()
            .filter_map(|name| {
                settings.schema.get(name).map(|spec| EditableTrait {
                    name: name.clone(),
                    kind: spec.kind,
                    allowed: spec.allowed.clone(),
                })
            })
            .collect();
        Ok(PortalMe {
            data,
            editable,
            segments,
        })
    })
    .await?;
    Ok(Json(overview))
}

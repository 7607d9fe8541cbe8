//! The console, `/console/`: the page on which operators, marketers and
//! analysts work with their tenant, signed in with an API token.
//!
//! Signing in trades the API token for a *console session*: a short-lived
//! token MAC'd under the tenant's console-session key
//! ([`MacPurpose::ConsoleSession`]) that names the API token by id only. The
//! browser keeps the session in an `HttpOnly` cookie, never the API token,
//! so a stolen cookie dies with its session (or at sign-out) and a page
//! never holds a credential that lasts for months. A session token reads
//! `tcs_<tenant in hex>_<claims>_<tag in hex>`, claims as base64url JSON
//! (version, API token id, a random session id, issue and expiry times),
//! checked like subject tokens (`subject_tokens.rs`); on every request the
//! API token it came from must still be valid, so revoking that token ends
//! its sessions at once. A request made with the cookie acts as the API
//! token: same tenant, role and token id in the audit trail.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tessera_privacy::{MacPurpose, TenantMac};
use tessera_vault::{AuditEntry, Vault, VaultError};

use crate::auth::Role;
use crate::error::{ApiError, BodyShape, ErrorBody, Json, PrivateJson};
use crate::subject_tokens::{
    Revocation, is_random_id, parse_signed, random_hex, record_revocation,
};
use crate::tokens::{Principal, Rejected, TokenStore};
use crate::{AppState, blocking, web};

/// What every console session token starts with.
pub const CONSOLE_SESSION_PREFIX: &str = "tcs_";
/// The store document kind of ended console sessions (until they expire).
pub const REVOKED_CONSOLE_SESSION_DOC: &str = "console-session-revoked";
/// The roles that may sign in to the console.
pub const CONSOLE_ROLES: [Role; 3] = [Role::Operator, Role::Marketer, Role::Analyst];
const CLOCK_SKEW_MS: i64 = 60_000;
const VERSION: u8 = 1;
const TAG_DOMAIN: &[u8] = b"tessera console session v1";

/// What a console session token says, MAC'd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    v: u8,
    /// The id of the API token signed in with.
    tok: String,
    /// The session id: 16 random bytes, hex.
    jti: String,
    iat: i64,
    exp: i64,
}

/// A verified console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSession {
    /// The API token's principal: whom the session's requests act as.
    pub principal: Principal,
    /// The session's own id (on the revocation list once signed out).
    pub session_id: String,
    pub expires_at_ms: i64,
}

/// A session as issued: the only time its token is seen.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub token: String,
    pub session: VerifiedSession,
}

/// Why a console session was not accepted (all become 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsoleRejected {
    /// Not shaped like a console session token.
    Malformed,
    /// The tag does not verify: altered, of another tenant, or made up.
    Invalid,
    Expired,
    /// Ended by signing out.
    SignedOut,
    /// The API token it was made from is revoked or gone.
    TokenRevoked,
}

impl ConsoleRejected {
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => "the session cookie holds no console session; sign in again",
            Self::Invalid => "the console session is not valid; sign in again",
            Self::Expired => "the console session has expired; sign in again",
            Self::SignedOut => "the console session was ended (signed out); sign in again",
            Self::TokenRevoked => {
                "the API token this console session was made from has been revoked; sign in \
                 with a valid token"
            }
        }
    }
}

/// Issues, verifies and ends console sessions over the vault.
#[derive(Debug, Clone)]
pub struct ConsoleSessions {
    vault: Arc<Vault>,
    tokens: TokenStore,
    ttl_ms: i64,
}

impl ConsoleSessions {
    /// Sessions valid for `ttl_s` seconds from sign-in, over `tokens`.
    pub fn new(vault: Arc<Vault>, tokens: TokenStore, ttl_s: u64) -> Self {
        Self {
            vault,
            tokens,
            ttl_ms: i64::try_from(ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX),
        }
    }

    fn mac(&self, tenant: &str) -> Result<TenantMac, VaultError> {
        self.vault
            .service_mac(tenant, MacPurpose::ConsoleSession)?
            .ok_or_else(|| VaultError::Corrupt {
                tenant: tenant.to_owned(),
                what: "console-session key",
                detail: "the vault does not hand out this key".into(),
            })
    }

    /// Issues a session for the API token of `principal` (verified by the
    /// caller). Audited (`console.sign_in`, naming the session id and its
    /// expiry) and durable before it returns; the session token is stored
    /// nowhere.
    pub fn issue(&self, principal: &Principal) -> Result<IssuedSession, VaultError> {
        let tenant = &principal.tenant;
        let mac = self.mac(tenant)?;
        let iat = self.vault.now_ms();
        let claims = Claims {
            v: VERSION,
            tok: principal.token_id.clone(),
            jti: random_hex(16)?,
            iat,
            exp: iat.saturating_add(self.ttl_ms),
        };
        let json = serde_json::to_vec(&claims).map_err(|e| VaultError::Corrupt {
            tenant: tenant.clone(),
            what: "console session",
            detail: e.to_string(),
        })?;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let tag = mac.mac(&[TAG_DOMAIN, tenant.as_bytes(), payload.as_bytes()]);
        let token = format!(
            "{CONSOLE_SESSION_PREFIX}{}_{payload}_{}",
            hex::encode(tenant),
            hex::encode(tag)
        );
        let entry = AuditEntry::new(&principal.actor(), "console.sign_in")
            .detail(format!("session {} until {}", claims.jti, claims.exp));
        self.vault.record_admin_action(tenant, entry)?;
        self.vault.flush()?;
        Ok(IssuedSession {
            token,
            session: VerifiedSession {
                principal: principal.clone(),
                session_id: claims.jti,
                expires_at_ms: claims.exp,
            },
        })
    }

    /// Verifies a session: its tag (constant time), its times by the
    /// vault's clock, the list of ended sessions, and that its API token is
    /// still valid (store reads: call it off the async threads).
    pub fn verify(
        &self,
        token: &str,
    ) -> Result<Result<VerifiedSession, ConsoleRejected>, VaultError> {
        let Some((tenant, payload, tag)) = parse(token) else {
            return Ok(Err(ConsoleRejected::Malformed));
        };
        let mac = match self.mac(&tenant) {
            Ok(mac) => mac,
            Err(VaultError::UnknownTenant { .. }) => return Ok(Err(ConsoleRejected::Invalid)),
            Err(VaultError::Store(tessera_store::StoreError::InvalidId { .. })) => {
                return Ok(Err(ConsoleRejected::Malformed));
            }
            Err(error) => return Err(error),
        };
        if !mac.verify(&[TAG_DOMAIN, tenant.as_bytes(), payload.as_bytes()], &tag) {
            return Ok(Err(ConsoleRejected::Invalid));
        }
        let claims: Claims = match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
        {
            Some(claims) => claims,
            None => return Ok(Err(ConsoleRejected::Invalid)),
        };
        let now = self.vault.now_ms();
        if claims.v != VERSION || claims.iat > now.saturating_add(CLOCK_SKEW_MS) {
            return Ok(Err(ConsoleRejected::Invalid));
        }
        if now >= claims.exp {
            return Ok(Err(ConsoleRejected::Expired));
        }
        if !is_random_id(&claims.jti) {
            return Ok(Err(ConsoleRejected::Invalid));
        }
        if self
            .vault
            .store()
            .document(&tenant, REVOKED_CONSOLE_SESSION_DOC, &claims.jti)?
            .is_some()
        {
            return Ok(Err(ConsoleRejected::SignedOut));
        }
        let principal = match self.tokens.by_id(&tenant, &claims.tok)? {
            Ok(principal) => principal,
            Err(Rejected::Revoked | Rejected::Unknown | Rejected::Malformed) => {
                return Ok(Err(ConsoleRejected::TokenRevoked));
            }
        };
        if !CONSOLE_ROLES.contains(&principal.role) {
            return Ok(Err(ConsoleRejected::Invalid));
        }
        Ok(Ok(VerifiedSession {
            principal,
            session_id: claims.jti,
            expires_at_ms: claims.exp,
        }))
    }

    /// Ends a session before its expiry (sign-out): its id is kept on the
    /// tenant's list of ended sessions until then, and expired entries are
    /// pruned. Audited (`console.sign_out`) once stored; if the audit trail
    /// refuses the entry (damaged), the sign-out still holds and the
    /// failure is logged.
    pub fn revoke(&self, session: &VerifiedSession) -> Result<(), VaultError> {
        let entry = AuditEntry::new(&session.principal.actor(), "console.sign_out")
            .detail(format!("session {}", session.session_id));
        record_revocation(
            &self.vault,
            &session.principal.tenant,
            Revocation {
                kind: REVOKED_CONSOLE_SESSION_DOC,
                id: &session.session_id,
                expires_at_ms: session.expires_at_ms,
                what: "console session",
            },
            entry,
        )
    }
}

/// The tenant, the claims text and the tag of a well-formed session token.
fn parse(token: &str) -> Option<(String, &str, Vec<u8>)> {
    parse_signed(token, CONSOLE_SESSION_PREFIX)
}

/// Whether a token could be a console session (then only the console
/// session verifier looks at it).
pub fn is_console_session(token: &str) -> bool {
    token.starts_with(CONSOLE_SESSION_PREFIX)
}

// ---- routes --------------------------------------------------------------------

/// The console's routes, every answer with the security headers
/// ([`web::security_headers`]); its own API answers are never cached.
pub(crate) fn routes() -> Router<AppState> {
    let api = Router::new()
        .route(
            "/console/api/session",
            get(session).post(sign_in).delete(sign_out),
        )
        .layer(map_response(crate::me::no_store));
    Router::new()
        .route("/console", get(to_page))
        .route("/console/", get(page))
        .merge(api)
        .layer(map_response(web::security_headers))
}

/// `GET /console`: the page is `/console/`.
async fn to_page(request: Request) -> Response {
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let location = HeaderValue::from_str(&format!("/console/{query}"))
        .unwrap_or_else(|_| HeaderValue::from_static("/console/"));
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// `GET /console/`: the page, in the language the browser prefers.
async fn page(headers: HeaderMap) -> Response {
    let html = web::CONSOLE_PAGE.replace("{{lang}}", web::page_language(&headers));
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

/// `POST /console/api/session`: an API token to sign in with.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSignIn {
    /// An API token (`tsk_…`) of role operator, marketer or analyst.
    pub token: String,
}

impl BodyShape for ConsoleSignIn {
    const SHAPE: &'static str = r#"{"token": "tsk_…"}"#;
}

/// A signed-in console session, as the page learns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsoleSession {
    pub tenant: String,
    /// The API token's role: `operator`, `marketer` or `analyst`.
    pub role: Role,
    /// The API token's id, as the audit trail names it.
    pub token_id: String,
    /// Send it as `X-CSRF-Token` with every request that changes data.
    pub csrf_token: String,
    pub expires_at_ms: i64,
}

impl ConsoleSession {
    fn of(session: &VerifiedSession, token: &str) -> Self {
        Self {
            tenant: session.principal.tenant.clone(),
            role: session.principal.role,
            token_id: session.principal.token_id.clone(),
            csrf_token: web::csrf_token(token),
            expires_at_ms: session.expires_at_ms,
        }
    }
}

/// `POST /console/api/session`: trades an API token for a console session
/// kept in an `HttpOnly` cookie. Only from this server's own pages.
#[utoipa::path(post, path = "/console/api/session", tag = "console", request_body = ConsoleSignIn,
    responses(
        (status = 200, description = "Signed in: the session cookie is set (`Set-Cookie`, \
            `HttpOnly`, `SameSite=Strict`; `__Host-tessera_console` with `Secure` over HTTPS, \
            `tessera_console` over plain HTTP). It holds a short-lived console session, never \
            the API token. The page gets the CSRF token.", body = ConsoleSession),
        (status = 401, description = "The token is malformed, unknown or revoked \
            (`unauthorized`).", body = ErrorBody),
        (status = 403, description = "Not sent by a page of this server: no `Origin`, an \
            `Origin` that is not this host, or `Sec-Fetch-Site` other than `same-origin` \
            (`cross_site_request`); or a token whose role may not use the console \
            (`console_role_refused`: ingest and portal tokens).", body = ErrorBody),
    ))]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    PrivateJson(body): PrivateJson<ConsoleSignIn>,
) -> Result<Response, ApiError> {
    web::check_same_origin(&headers)?;
    let token = body.token.trim().to_owned();
    if is_console_session(&token) || crate::subject_tokens::is_subject_token(&token) {
        return Err(ApiError::unauthorized(
            "that is a session token, not an API token: sign in with an API token (tsk_…)",
        ));
    }
    let tokens = state.tokens.clone();
    let verdict = blocking(move || tokens.verify(&token).map_err(ApiError::from)).await?;
    let principal = verdict.map_err(|rejected| {
        ApiError::unauthorized(match rejected {
            Rejected::Malformed => "that is not a Tessera API token (they start with tsk_)",
            Rejected::Unknown => "the token is not valid",
            Rejected::Revoked => "the token has been revoked",
        })
    })?;
    if !CONSOLE_ROLES.contains(&principal.role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "console_role_refused",
            format!(
                "a {} token cannot sign in to the console: only operator, marketer and analyst \
                 tokens may",
                principal.role
            ),
        ));
    }
    let sessions = state.console_sessions.clone();
    let issued = blocking(move || sessions.issue(&principal).map_err(ApiError::from)).await?;
    let max_age_s = issued
        .session
        .expires_at_ms
        .saturating_sub(state.vault.now_ms())
        .div_euclid(1000);
    let cookie = web::session_cookie_header(
        web::CONSOLE,
        &issued.token,
        max_age_s,
        web::over_https(state.config.tls.is_on(), &headers),
    )?;
    let mut response = Json(ConsoleSession::of(&issued.session, &issued.token)).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// The console session of the request's cookie, and its token.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<(VerifiedSession, String), ApiError> {
    let token = web::cookie_session(headers, method, web::CONSOLE).unwrap_or_else(|| {
        Err(ApiError::unauthorized(
            "not signed in: sign in to the console with an API token first",
        ))
    })?;
    let sessions = state.console_sessions.clone();
    let presented = token.clone();
    let verdict = blocking(move || sessions.verify(&presented).map_err(ApiError::from)).await?;
    let session = verdict.map_err(|rejected| ApiError::unauthorized(rejected.message()))?;
    Ok((session, token))
}

/// `GET /console/api/session`: the session of the cookie, with its CSRF
/// token (for a page loaded again); 401 if there is none.
#[utoipa::path(get, path = "/console/api/session", tag = "console",
    responses(
        (status = 200, description = "The session of the cookie and its CSRF token.",
            body = ConsoleSession),
        (status = 401, description = "No console cookie, or its session expired or was ended, \
            or its API token was revoked.", body = ErrorBody),
    ))]
pub(crate) async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ConsoleSession>, ApiError> {
    let (session, token) = signed_in(&state, &headers, &Method::GET).await?;
    Ok(Json(ConsoleSession::of(&session, &token)))
}

/// `DELETE /console/api/session`: signs out: the session is ended (on the
/// list of ended sessions) and the cookie removed. Same origin and CSRF
/// token required, like every change made with the cookie.
#[utoipa::path(delete, path = "/console/api/session", tag = "console",
    responses(
        (status = 204, description = "Signed out: the session is ended (if there was a valid \
            one) and the cookie removed."),
        (status = 401, description = "The console cookie holds no console session.",
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
    if let Some(session) = web::cookie_session(&headers, &Method::DELETE, web::CONSOLE) {
        let token = session?;
        let sessions = state.console_sessions.clone();
        blocking(move || {
            // An expired or already ended session needs no ending.
            if let Ok(session) = sessions.verify(&token)? {
                sessions.revoke(&session)?;
            }
            Ok(())
        })
        .await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    for cookie in web::clear_session_cookies(web::CONSOLE) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject_tokens::MAX_TOKEN_LEN;

    #[test]
    fn parses_only_well_formed_session_tokens() {
        let tag = "ab".repeat(32);
        let tenant = hex::encode("acme");
        let good = format!("tcs_{tenant}_eyJ2IjoxfQ_{tag}");
        assert_eq!(
            parse(&good).map(|(t, p, _)| (t, p.to_owned())),
            Some(("acme".into(), "eyJ2IjoxfQ".into()))
        );
        for bad in [
            String::new(),
            format!("tst_{tenant}_eyJ2IjoxfQ_{tag}"),
            format!("tcs__eyJ2IjoxfQ_{tag}"),
            format!("tcs_{tenant}__{tag}"),
            format!("tcs_{tenant}_eyJ2Ijox!Q_{tag}"),
            format!("tcs_{tenant}_eyJ2IjoxfQ_{}", "ab".repeat(31)),
            format!("tcs_zz_eyJ2IjoxfQ_{tag}"),
            format!("tcs_{tenant}_{}_{tag}", "a".repeat(MAX_TOKEN_LEN)),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }
}

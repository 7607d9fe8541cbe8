//! Authentication and authorization: one layer in front of every `/v1`
//! route. It reads the token (bearer, or HTTP Basic with the token as user
//! name as Segment clients send their write key), verifies it as an API
//! token or, by its prefix, a subject token, looks the route up in
//! [`ROLE_MATRIX`], applies the rate limit (the tenant's, or for a subject
//! token the person's own) and hands the handler a
//! [`Principal`] whose tenant is the token's — never one named by the URL or
//! the body — and, for a subject token, whose subject is the token's.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::tokens::{Principal, Rejected};

/// What a token may do. Each token has exactly one role.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the tenant: tokens, subjects and their rights, deletions, audit.
    Operator,
    /// Ingests data; (next increments) segments, strategies, simulations.
    Marketer,
    /// Only sends events: the Segment "write key", which may sit in a web
    /// page or an app, so it can do nothing else.
    Ingest,
    /// Reads aggregate data and the audit trail; changes nothing.
    Analyst,
    /// The tenant's subject portal backend: issues subject tokens for the
    /// people its own login signed in.
    Portal,
    /// A person acting on their own data under `/v1/me`, with a short-lived
    /// subject token. Never the role of an API token.
    Subject,
}

impl Role {
    /// The roles an API token can have.
    pub const ALL: [Role; 5] = [
        Role::Operator,
        Role::Marketer,
        Role::Ingest,
        Role::Analyst,
        Role::Portal,
    ];

    /// Every kind of caller: the API token roles and subject tokens.
    pub const CALLERS: [Role; 6] = [
        Role::Operator,
        Role::Marketer,
        Role::Ingest,
        Role::Analyst,
        Role::Portal,
        Role::Subject,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Marketer => "marketer",
            Role::Ingest => "ingest",
            Role::Analyst => "analyst",
            Role::Portal => "portal",
            Role::Subject => "subject",
        }
    }

    /// The API token role named `text` (never [`Role::Subject`]).
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the role matrix: a route and the roles that may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    /// `GET`, `POST`, `DELETE`, … (`HEAD` is allowed wherever `GET` is).
    pub method: &'static str,
    /// The route as registered, with `{param}` placeholders.
    pub path: &'static str,
    pub roles: &'static [Role],
}

const OPERATOR: &[Role] = &[Role::Operator];
const AUDIT_READERS: &[Role] = &[Role::Operator, Role::Analyst];
const INGESTERS: &[Role] = &[Role::Operator, Role::Marketer, Role::Ingest];
/// Tenant settings, schema and plugins: what marketers and analysts work
/// with; nothing personal.
const READERS: &[Role] = &[Role::Operator, Role::Marketer, Role::Analyst];
/// The tenant's staff who work with its data: imports, their quality
/// reports (whose rejection reasons may quote a value), dead letters
/// without their content, replays, sources and pulls, and checking segment
/// rules. An ingest token (which may sit in a web page) only pushes to a
/// webhook source, as an untrusted source.
const STAFF: &[Role] = &[Role::Operator, Role::Marketer];
/// Feedback names a decision by its unguessable id, so a page or an app
/// may send it with the write key; deciding (which tells whether a person
/// is in a segment) is for the tenant's own servers, with a staff token.
const FEEDBACK: &[Role] = &[Role::Operator, Role::Marketer, Role::Ingest];
const SUBJECT_TOKEN_ISSUERS: &[Role] = &[Role::Operator, Role::Portal];
const SUBJECT: &[Role] = &[Role::Subject];

const fn rule(method: &'static str, path: &'static str, roles: &'static [Role]) -> RouteRule {
    RouteRule {
        method,
        path,
        roles,
    }
}

/// Every `/v1` route and who may call it, documented in `docs/api.md`. The
/// authorization layer fails closed: a route or method missing here
/// answers 405 to every token, whatever its role. Tests check that every
/// route listed is registered behind the layer, and every role against
/// every route.
pub const ROLE_MATRIX: &[RouteRule] = &[
    rule("POST", "/v1/tokens", OPERATOR),
    rule("GET", "/v1/tokens", OPERATOR),
    rule("DELETE", "/v1/tokens/{id}", OPERATOR),
    rule("GET", "/v1/subjects/{id}", OPERATOR),
    rule("DELETE", "/v1/subjects/{id}", OPERATOR),
    rule("GET", "/v1/deletions/{id}", OPERATOR),
    rule("GET", "/v1/audit", AUDIT_READERS),
    rule("POST", "/v1/subjects/lookup", OPERATOR),
    rule("POST", "/v1/subjects/{id}/identities/confirm", OPERATOR),
    rule("PATCH", "/v1/subjects/{id}", OPERATOR),
    rule("GET", "/v1/subjects/{id}/export", OPERATOR),
    rule("GET", "/v1/deletions", OPERATOR),
    rule("GET", "/v1/tenant", READERS),
    rule("GET", "/v1/schema", READERS),
    rule("PUT", "/v1/schema/traits/{name}", OPERATOR),
    rule("DELETE", "/v1/schema/traits/{name}", OPERATOR),
    rule("PUT", "/v1/schema/events/{type}", OPERATOR),
    rule("DELETE", "/v1/schema/events/{type}", OPERATOR),
    rule("GET", "/v1/plugins", READERS),
    rule("GET", "/v1/plugins/{name}", READERS),
    rule("POST", "/v1/plugins", OPERATOR),
    rule("POST", "/v1/plugins/{name}/upgrade", OPERATOR),
    rule("POST", "/v1/plugins/{name}/approve", OPERATOR),
    rule("POST", "/v1/plugins/{name}/reject", OPERATOR),
    rule("POST", "/v1/plugins/{name}/rollback", OPERATOR),
    rule("DELETE", "/v1/plugins/{name}", OPERATOR),
    rule("POST", "/v1/plugins/{name}/quarantine", OPERATOR),
    rule("POST", "/v1/plugins/{name}/release", OPERATOR),
    rule("GET", "/v1/publishers", OPERATOR),
    rule("POST", "/v1/publishers", OPERATOR),
    rule("DELETE", "/v1/publishers/{key_id}", OPERATOR),
    rule("POST", "/v1/events", INGESTERS),
    rule("POST", "/v1/batch", INGESTERS),
    rule("POST", "/v1/track", INGESTERS),
    rule("POST", "/v1/identify", INGESTERS),
    rule("POST", "/v1/page", INGESTERS),
    rule("POST", "/v1/screen", INGESTERS),
    rule("POST", "/v1/alias", INGESTERS),
    rule("POST", "/v1/group", INGESTERS),
    rule("POST", "/v1/rules/check", STAFF),
    rule("GET", "/v1/profiles/{id}", STAFF),
    rule("GET", "/v1/segments", READERS),
    rule("POST", "/v1/segments/preview", STAFF),
    rule("GET", "/v1/segments/{name}", READERS),
    rule("PUT", "/v1/segments/{name}", STAFF),
    rule("DELETE", "/v1/segments/{name}", STAFF),
    rule("POST", "/v1/segments/{name}/recompute", STAFF),
    rule("GET", "/v1/segments/{name}/members", STAFF),
    rule("GET", "/v1/segments/{name}/sizes", READERS),
    rule("POST", "/v1/segments/{name}/exports", STAFF),
    rule("GET", "/v1/catalog", READERS),
    rule("GET", "/v1/campaigns", READERS),
    rule("GET", "/v1/campaigns/{name}", READERS),
    rule("PUT", "/v1/campaigns/{name}", STAFF),
    rule("DELETE", "/v1/campaigns/{name}", STAFF),
    rule("POST", "/v1/campaigns/{name}/simulate", STAFF),
    rule("POST", "/v1/campaigns/{name}/status", STAFF),
    rule("POST", "/v1/simulate", STAFF),
    rule("GET", "/v1/campaigns/{name}/evaluation", READERS),
    rule("GET", "/v1/campaigns/{name}/shadow", READERS),
    rule("GET", "/v1/segments/{name}/recommendations", READERS),
    rule("POST", "/v1/decide", STAFF),
    rule("POST", "/v1/feedback", FEEDBACK),
    rule("GET", "/v1/segments/{name}/exports", STAFF),
    rule("GET", "/v1/segments/{name}/exports/{id}", STAFF),
    rule("POST", "/v1/campaigns/{name}/sends", STAFF),
    rule("GET", "/v1/campaigns/{name}/sends", STAFF),
    rule("GET", "/v1/campaigns/{name}/sends/{id}", STAFF),
    rule("POST", "/v1/imports", STAFF),
    rule("GET", "/v1/imports", STAFF),
    rule("GET", "/v1/imports/{id}", STAFF),
    rule("PUT", "/v1/imports/{id}/data", STAFF),
    rule("GET", "/v1/imports/{id}/dead-letters", STAFF),
    rule("GET", "/v1/imports/{id}/dead-letters/{letter}", OPERATOR),
    rule("PUT", "/v1/imports/{id}/dead-letters/{letter}", OPERATOR),
    rule("POST", "/v1/imports/{id}/replay", STAFF),
    rule("GET", "/v1/sources", STAFF),
    rule("PUT", "/v1/sources/{name}", OPERATOR),
    rule("DELETE", "/v1/sources/{name}", OPERATOR),
    rule("POST", "/v1/sources/{name}/push", INGESTERS),
    rule("POST", "/v1/sources/{name}/pull", STAFF),
    rule("DELETE", "/v1/sources/{name}/cursor", OPERATOR),
    rule("POST", "/v1/subject-tokens", SUBJECT_TOKEN_ISSUERS),
    rule("GET", "/v1/me", SUBJECT),
    rule("PATCH", "/v1/me/traits", SUBJECT),
    rule("GET", "/v1/me/export", SUBJECT),
    rule("POST", "/v1/me/deletion", SUBJECT),
    rule("GET", "/v1/me/deletions/{id}", SUBJECT),
    rule("GET", "/v1/me/consents", SUBJECT),
    rule("PUT", "/v1/me/consents/{purpose}", SUBJECT),
    rule("GET", "/v1/me/apps", SUBJECT),
    rule("DELETE", "/v1/me/apps/{id}", SUBJECT),
    rule("GET", "/v1/me/retention", SUBJECT),
    rule("PUT", "/v1/me/retention", SUBJECT),
    rule("DELETE", "/v1/me/session", SUBJECT),
];

/// The rule for a request, if the route has one for its method.
pub fn rule_for(method: &Method, path: &str) -> Option<&'static RouteRule> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROLE_MATRIX
        .iter()
        .find(|r| r.method == method && r.path == path)
}

/// The token a request presents: `Authorization: Bearer <token>`, or
/// `Authorization: Basic base64(<token>:)` (the password is ignored).
pub fn presented_token(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "no credentials: send `Authorization: Bearer <token>`, or HTTP Basic with the \
             token as user name and an empty password",
        ));
    };
    let malformed = || {
        ApiError::unauthorized(
            "the Authorization header is neither `Bearer <token>` nor HTTP Basic",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or_else(malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| malformed())?;
        let text = String::from_utf8(decoded).map_err(|_| malformed())?;
        let user = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
        return Ok(user.to_owned());
    }
    Err(malformed())
}

/// The authorization layer (`route_layer` over every `/v1` route).
pub(crate) async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // A bearer token, or a session cookie (`web.rs`).
    let token =
        crate::web::presented_credential(request.headers(), request.method(), request.uri().path());
    let method = request.method().clone();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let client_certificate = request
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::tls::TlsPeer>>()
        .is_some_and(|peer| peer.client_certificate);
    match admit(&state, token, &method, &path, client_certificate).await {
        Ok(principal) => {
            tracing::Span::current().record("tenant", principal.tenant.as_str());
            tracing::Span::current().record("role", principal.role.as_str());
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

async fn admit(
    state: &AppState,
    token: Result<String, ApiError>,
    method: &Method,
    path: &str,
    client_certificate: bool,
) -> Result<Principal, ApiError> {
    let principal = verify(state, token?).await?;
    // Partner systems push data with ingest tokens: with a client CA, such
    // a token alone is not enough, the connection must also have presented
    // a certificate that CA issued (checked in the handshake).
    if principal.role == Role::Ingest
        && state.config.tls.ingest_needs_client_certificate()
        && !client_certificate
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "client_certificate_required",
            "an ingest token is only accepted over a connection that presents a client \
             certificate issued by the server's client CA (tls.client_ca_file)",
        ));
    }
    let Some(rule) = rule_for(method, path) else {
        // Every registered route is in the matrix (tested), so a route
        // without a rule for this method is a method the route lacks.
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        ));
    };
    if !rule.roles.contains(&principal.role) {
        let allowed: Vec<&str> = rule.roles.iter().map(|r| r.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "a {} token may not call {} {}",
                principal.role, rule.method, rule.path
            ),
        )
        .with_details(json!({ "role": principal.role, "allowed": allowed })));
    }
    // A person's requests have a limit of their own, so that nobody with a
    // subject token can spend the tenant's budget (ingest, operators) or
    // another person's.
    let limited = match &principal.subject {
        Some(session) => state
            .subject_limiter
            .check(&format!("{}/{}", principal.tenant, session.id))
            .map_err(|wait| (wait, "your request rate limit")),
        None => state
            .limiter
            .check(&principal.tenant)
            .map_err(|wait| (wait, "the tenant's request rate limit")),
    };
    if let Err((wait, limit)) = limited {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("{limit} is reached; retry in {seconds} s"),
        );
        error.retry_after = Some(seconds.max(1));
        return Err(error);
    }
    Ok(principal)
}

async fn verify(state: &AppState, token: String) -> Result<Principal, ApiError> {
    if crate::console::is_console_session(&token) {
        let sessions = state.console_sessions.clone();
        let verdict =
            crate::blocking(move || sessions.verify(&token).map_err(ApiError::from)).await?;
        return verdict
            .map(|session| session.principal)
            .map_err(|rejected| ApiError::unauthorized(rejected.message()));
    }
    if crate::subject_tokens::is_subject_token(&token) {
        let tokens = state.subject_tokens.clone();
        let verdict =
            crate::blocking(move || tokens.verify(&token).map_err(ApiError::from)).await?;
        return verdict.map_err(|rejected| ApiError::unauthorized(rejected.message()));
    }
    let verdict = match state.tokens.verify_cached(&token) {
        Some(verdict) => verdict,
        None => {
            let tokens = state.tokens.clone();
            crate::blocking(move || tokens.verify(&token).map_err(ApiError::from)).await?
        }
    };
    verdict.map_err(|rejected| {
        ApiError::unauthorized(match rejected {
            Rejected::Malformed => "the token is not a Tessera API token",
            Rejected::Unknown => "the token is not valid",
            Rejected::Revoked => "the token has been revoked",
        })
    })
}

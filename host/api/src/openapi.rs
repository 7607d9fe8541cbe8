//! The API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations and the types they take and return, served
//! at `/openapi.json`, with Swagger UI (vendored: no CDN) at `/docs`.
//!
//! What every operation shares is added here, once, by [`Common`] rather
//! than repeated on each handler: the security requirement of `/v1` routes
//! (derived from [`ROLE_MATRIX`](crate::ROLE_MATRIX), so the document names
//! the roles each route admits: API tokens, or subject tokens for `/v1/me`) and the error answers that the layers in
//! front of every handler can give (401, 403, 429, 500, 503; 400, 413, 415
//! and 422 where a body or parameters are read), and the security of the
//! subject portal's and the console's own routes (`/portal/api`,
//! `/console/api`: their session cookies). A test checks that the document
//! and the router list the same routes.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, HttpMethod, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::auth::{ROLE_MATRIX, Role};
use crate::console::CONSOLE_ROLES;
use crate::{
    admin, campaigns, console, error, handlers, imports, ingest, login, me, plugins, portal,
    profiles, rules, segment, segmentation, subject_tokens, tokens, web,
};

/// The document. `ApiDoc::openapi()` builds it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera API",
        description = "Tessera's HTTP API: Segment-compatible ingest, subjects and their rights, \
                       deletion requests, the audit trail, API tokens, health and metrics. Every \
                       `/v1` call carries a token of one tenant (bearer, or HTTP Basic with the \
                       token as user name); the token's role decides what it may call. The \
                       subject portal's page signs a person in at `/portal/api/session` and then \
                       calls `/portal/api/me` and `/v1/me` with its session cookie instead of a \
                       subject token; a change made with the cookie must come from the page \
                       (`Origin`) and carry the session's `X-CSRF-Token`. The console's page \
                       likewise trades an API token for a console session cookie at \
                       `/console/api/session` and calls `/v1` with it. Errors \
                       have one shape: `{\"error\": {\"code\", \"message\", \"details\"}}`. \
                       docs/api.md describes the API for its users.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        handlers::health,
        handlers::ready,
        handlers::metrics,
        handlers::create_token,
        handlers::list_tokens,
        handlers::revoke_token,
        handlers::subject,
        handlers::delete_subject,
        handlers::deletion,
        handlers::audit,
        ingest::events,
        ingest::batch,
        ingest::track,
        ingest::identify,
        ingest::page,
        ingest::screen,
        ingest::alias,
        ingest::group,
        admin::lookup,
        admin::confirm_identity,
        admin::rectify,
        admin::export,
        admin::deletions,
        admin::tenant,
        admin::schema,
        admin::put_trait,
        admin::delete_trait,
        admin::put_event,
        admin::delete_event,
        plugins::list,
        plugins::status,
        plugins::install,
        plugins::upgrade,
        plugins::approve,
        plugins::reject,
        plugins::rollback,
        plugins::remove,
        plugins::quarantine,
        plugins::release,
        plugins::publishers,
        plugins::trust,
        plugins::distrust,
        rules::check,
        profiles::profile,
        segmentation::list,
        segmentation::put,
        segmentation::show,
        segmentation::delete,
        segmentation::preview,
        segmentation::recompute,
        segmentation::members,
        segmentation::sizes,
        segmentation::export,
        segmentation::exports,
        segmentation::export_record,
        campaigns::catalog,
        campaigns::list,
        campaigns::put,
        campaigns::show,
        campaigns::delete,
        campaigns::simulate,
        campaigns::simulate_spec,
        campaigns::status,
        campaigns::evaluation,
        campaigns::shadow,
        campaigns::recommendations,
        campaigns::decide,
        campaigns::feedback,
        campaigns::send,
        campaigns::sends,
        campaigns::send_record,
        imports::create,
        imports::list,
        imports::show,
        imports::upload,
        imports::dead_letters,
        imports::dead_letter,
        imports::fix,
        imports::replay,
        imports::sources,
        imports::put_source,
        imports::delete_source,
        imports::push,
        imports::pull,
        imports::reset_cursor,
        subject_tokens::issue,
        login::request_code,
        login::exchange,
        me::view,
        me::edit_traits,
        me::export,
        me::request_deletion,
        me::deletion,
        me::consents,
        me::set_consent,
        me::apps,
        me::revoke_app,
        me::retention,
        me::set_retention,
        me::logout,
        portal::session,
        portal::sign_in,
        portal::sign_out,
        portal::overview,
        console::session,
        console::sign_in,
        console::sign_out,
    ),
    components(schemas(
        error::ErrorBody,
        segment::Message,
        ingest::BatchDoc,
        tokens::NewToken,
        admin::ExportFormat,
        portal::PortalSession,
        portal::PortalMe,
        portal::EditableTrait,
        console::ConsoleSignIn,
        console::ConsoleSession,
    )),
    modifiers(&Common),
    tags(
        (name = "health", description = "Liveness, readiness and Prometheus metrics; no token."),
        (name = "ingest", description = "Segment-compatible tracking API (identify, track, page, \
                                         screen, group, alias, batch)."),
        (name = "subjects", description = "The people a tenant holds data about, and their rights."),
        (name = "audit", description = "The tenant's hash-chained audit trail."),
        (name = "tokens", description = "The tenant's API tokens."),
        (name = "tenant", description = "The token's tenant and its trait and event schemas."),
        (name = "plugins", description = "The tenant's plugins, their status and usage."),
        (name = "segments", description = "Segments: a segment plugin and its parameters saved \
                                           under a name, previewed, recomputed, with members and \
                                           sizes over time."),
        (name = "strategies", description = "The strategy catalog, campaigns (a strategy on a \
                                             segment with a holdout), decisions, feedback and \
                                             evaluation."),
        (name = "imports", description = "Files and uploads imported through the tenant's \
                                          connectors: quality reports and dead letters."),
        (name = "me", description = "A person's own data, with a subject token: from the \
                                     tenant's portal (`/v1/subject-tokens`) or a one-time code \
                                     (`/v1/login/…`)."),
        (name = "portal", description = "The subject portal's own routes: signing in and out \
                                         with a session cookie, and the page's view of the \
                                         person (docs/portal.md)."),
        (name = "console", description = "The console's own routes: signing in with an API \
                                          token for a session cookie, and out \
                                          (docs/console.md)."),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Security schemes, per-route roles and the shared error answers.
struct Common;

/// The name of the bearer scheme (any API token).
const BEARER: &str = "token";
/// The name of the HTTP Basic scheme (a token as user name: Segment's write key).
const BASIC: &str = "writeKey";
/// The name of the subject-token scheme (bearer, `/v1/me`).
const SUBJECT: &str = "subjectToken";
/// The names of the portal's session cookie schemes: over HTTPS, and on
/// plain HTTP (development), where browsers refuse the `__Host-` name.
const PORTAL_COOKIE: &str = "portalCookie";
const PORTAL_COOKIE_HTTP: &str = "portalCookieHttp";
/// The names of the console's session cookie schemes, likewise.
const CONSOLE_COOKIE: &str = "consoleCookie";
const CONSOLE_COOKIE_HTTP: &str = "consoleCookieHttp";
/// What the 403 of a route that a session cookie may change adds.
const CSRF_REFUSAL: &str = " With a session cookie, a change must come from this server's \
                            own page and carry its CSRF token: else `cross_site_request` (no \
                            or another `Origin`, or `Sec-Fetch-Site` not `same-origin`), \
                            `csrf_token_missing` or `csrf_token_invalid` (`X-CSRF-Token`).";

impl Modify for Common {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tsk_<tenant hex>_<id>_<secret>")
                    .description(Some(
                        "An API token of one tenant; its role decides the routes it may call.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            BASIC,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "An API token as the user name and an empty password, as Segment and \
                         RudderStack clients send their write key.",
                    ))
                    .build(),
            ),
        );

        components.add_security_scheme(
            SUBJECT,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tst_<tenant hex>_<claims>_<tag>")
                    .description(Some(
                        "A short-lived subject token: from the tenant's portal \
                         (`POST /v1/subject-tokens`) or a one-time code (`POST /v1/login/token`).",
                    ))
                    .build(),
            ),
        );

        for (name, secure, cookie) in [
            (PORTAL_COOKIE, "over HTTPS", web::SECURE_SESSION_COOKIE),
            (
                PORTAL_COOKIE_HTTP,
                "on plain HTTP (development only)",
                web::SESSION_COOKIE,
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    cookie.to_owned(),
                    format!(
                        "The subject portal's session cookie {secure}, set by \
                         `POST /portal/api/session`: it holds a subject token, so it admits \
                         `/v1/me` and `/portal/api` and nothing else. A request made with it \
                         that changes anything (not GET, HEAD or OPTIONS) must also send \
                         `Origin` naming this server and the session's `X-CSRF-Token`, or it \
                         is refused with 403."
                    ),
                ))),
            );
        }

        for (name, secure, cookie) in [
            (CONSOLE_COOKIE, "over HTTPS", web::SECURE_CONSOLE_COOKIE),
            (
                CONSOLE_COOKIE_HTTP,
                "on plain HTTP (development only)",
                web::CONSOLE_COOKIE,
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    cookie.to_owned(),
                    format!(
                        "The console's session cookie {secure}, set by \
                         `POST /console/api/session` in exchange for an API token of role \
                         operator, marketer or analyst: it holds a short-lived console \
                         session (never the API token) and acts as that token, with its role, \
                         on `/v1` (not `/v1/me`). A request made with it that changes anything \
                         must also send `Origin` naming this server and the session's \
                         `X-CSRF-Token`, or it is refused with 403."
                    ),
                ))),
            );
        }

        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                let reads_body = operation.request_body.is_some();
                let reads_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                // The portal's page changes `/v1/me` with its session
                // cookie, the console's page the rest of `/v1` with its own.
                let cookie_changes = method != "GET"
                    && ROLE_MATRIX.iter().any(|rule| {
                        rule.path == path
                            && rule.method == method
                            && (rule.roles == [Role::Subject]
                                || rule.roles.iter().any(|r| CONSOLE_ROLES.contains(r)))
                    });
                let refused = if cookie_changes {
                    format!("The token's role may not call this route.{CSRF_REFUSAL}")
                } else {
                    "The token's role may not call this route.".to_owned()
                };
                if path.starts_with("/portal/api/") {
                    operation.security =
                        cookie_security(method, [PORTAL_COOKIE, PORTAL_COOKIE_HTTP]);
                }
                if path.starts_with("/console/api/") {
                    operation.security =
                        cookie_security(method, [CONSOLE_COOKIE, CONSOLE_COOKIE_HTTP]);
                }
                let mut answers: Vec<(&str, &str)> = vec![
                    (
                        "500",
                        "The server failed; the cause is logged with the request id.",
                    ),
                    (
                        "503",
                        "Not ready, timed out (`timeout`) or the audit trail is damaged; see \
                         Retry-After.",
                    ),
                ];
                if reads_body {
                    answers.extend([
                        ("400", "The body is not valid JSON (`invalid_json`)."),
                        ("413", "The body is larger than the server accepts."),
                        ("415", "The body is not sent as JSON."),
                        (
                            "422",
                            "The body is JSON of the wrong shape; `details` names the field.",
                        ),
                    ]);
                }
                if reads_params {
                    answers.push((
                        "400",
                        "A path or query parameter is not valid (`invalid_path`, `invalid_query`).",
                    ));
                }
                // Routes of the role matrix are behind the authorization
                // layer; the others (health, metrics, login) take no token.
                if let Some(rule) = ROLE_MATRIX
                    .iter()
                    .find(|rule| rule.path == path && rule.method == method)
                {
                    let roles = rule.roles;
                    describe_roles(operation, roles);
                    operation.security = Some(security(roles));
                    answers.extend([
                        ("401", "No token, or a malformed, unknown or revoked one."),
                        ("403", refused.as_str()),
                        (
                            "429",
                            "The rate limit is reached (the tenant's; for a subject token, \
                             the person's own); see Retry-After.",
                        ),
                    ]);
                }
                for (status, description) in answers {
                    if !operation.responses.responses.contains_key(status) {
                        operation
                            .responses
                            .responses
                            .insert(status.to_owned(), error_response(description).into());
                    }
                }
            }
        }
    }
}

/// Each operation of a path item with its method, upper case as in the matrix.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        (HttpMethod::Get, "GET"),
        (HttpMethod::Post, "POST"),
        (HttpMethod::Put, "PUT"),
        (HttpMethod::Patch, "PATCH"),
        (HttpMethod::Delete, "DELETE"),
    ]
    .into_iter()
    .zip([
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.patch.as_mut(),
        item.delete.as_mut(),
    ])
    .filter_map(|((_, name), operation)| operation.map(|operation| (name, operation)))
}

/// A subject token (or the portal's session cookie, which holds one) for
/// `/v1/me`; else an API token as bearer, and as HTTP Basic too where the
/// ingest role is admitted (that is how Segment clients send the write
/// key), and the console's session cookie where a console role is.
fn security(roles: &[Role]) -> Vec<SecurityRequirement> {
    if roles == [Role::Subject] {
        return [SUBJECT, PORTAL_COOKIE, PORTAL_COOKIE_HTTP]
            .map(|name| SecurityRequirement::new(name, Vec::<String>::new()))
            .to_vec();
    }
    let mut schemes = vec![SecurityRequirement::new(BEARER, Vec::<String>::new())];
    if roles.contains(&Role::Ingest) {
        schemes.push(SecurityRequirement::new(BASIC, Vec::<String>::new()));
    }
    if roles.iter().any(|r| CONSOLE_ROLES.contains(r)) {
        for name in [CONSOLE_COOKIE, CONSOLE_COOKIE_HTTP] {
            schemes.push(SecurityRequirement::new(name, Vec::<String>::new()));
        }
    }
    schemes
}

/// A page's own session routes: signing in needs no session; signing out
/// works with or without one (an empty requirement: none); the reads need
/// one.
fn cookie_security(method: &str, names: [&str; 2]) -> Option<Vec<SecurityRequirement>> {
    let cookies = names.map(|name| SecurityRequirement::new(name, Vec::<String>::new()));
    match method {
        "POST" => None,
        "DELETE" => Some(
            cookies
                .into_iter()
                .chain([SecurityRequirement::default()])
                .collect(),
        ),
        _ => Some(cookies.to_vec()),
    }
}

/// Appends "Roles: …" to the operation's description.
fn describe_roles(operation: &mut Operation, roles: &[Role]) {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let line = format!("Roles: {}.", names.join(", "));
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{line}"),
        _ => line,
    });
}

/// An answer with the error body.
fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

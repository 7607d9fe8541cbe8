//! Tessera's HTTP service: the axum application that `tessera serve` runs.
//!
//! [`app`] builds the router over an [`AppState`] (the vault, the token
//! store, the metrics and the [`Config`]). Every `/v1` route passes one
//! authorization layer ([`ROLE_MATRIX`]); every answer that is not a success
//! has one JSON shape ([`ApiError`]). The vault is blocking (sled, fsync),
//! so handlers run it on tokio's blocking pool.
//!
//! `docs/api.md` describes the API for its users.

mod admin;
mod auth;
mod campaigns;
mod config;
mod console;
mod error;
mod handlers;
mod imports;
mod ingest;
mod login;
mod me;
mod metrics;
mod openapi;
mod plugins;
mod portal;
mod profiles;
mod ratelimit;
mod rules;
pub mod segment;
mod segmentation;
mod subject_tokens;
mod time;
mod tls;
mod tokens;
mod web;
mod zip;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tessera_vault::Vault;
use tracing::Instrument as _;

pub use auth::{ROLE_MATRIX, Role, RouteRule, presented_token, rule_for};
pub use campaigns::{
    CampaignList, CampaignView, CapBody, Catalog, CatalogEntry, DecisionView, FeedbackView,
    GoalBody, SendFallbackView, SendList, SendView,
};
pub use config::{
    CodeSenderKind, Config, ConsoleConfig, Limits, RateLimit, SubjectLoginConfig,
    SubjectTokenConfig,
};
pub use console::{
    CONSOLE_ROLES, CONSOLE_SESSION_PREFIX, ConsoleRejected, ConsoleSession, ConsoleSessions,
    ConsoleSignIn, IssuedSession, REVOKED_CONSOLE_SESSION_DOC, VerifiedSession,
};
pub use error::{ApiError, Json, JsonBytes, Path, Query};
pub use imports::{
    DeadLetterList, DeadLetterView, ImportDesk, ImportList, ImportView, SourceList, SourceView,
};
pub use ingest::{DecodedBatch, IngestReport, ItemReport, decode_batch, parse_message};
pub use login::{
    CODE_TTL_MS, CodeChannel, CodeExchange, CodeLogin, CodeMessage, CodeRequest, CodeRequested,
    CodeSender, FileSender, LOGIN_CODE_DOC, LogSender, MAX_ATTEMPTS, MAX_CODES_PER_WINDOW,
};
pub use me::{
    ConsentSet, EXPORT_TABLES, EditTraits, ExportQuery, MyApps, MyConsents, SetConsent,
    SetRetention, TraitsEdited,
};
pub use metrics::{IngestCounts, Metrics};
pub use openapi::{ApiDoc, document as openapi_document};
pub use portal::{EditableTrait, PortalMe, PortalSession};
pub use profiles::{AggregateView, ConsentView, ProfileView, SegmentMembership};
pub use ratelimit::RateLimiter;
pub use rules::{RuleCheck, RuleProblem, RuleUses};
pub use segmentation::{
    ExportList, ExportView, MemberList, MemberView, PreviewView, RecomputeView, SegmentList,
    SegmentView, SizeList, SizeView,
};
pub use subject_tokens::{
    IdentityRef, IssueSubjectToken, REVOKED_SUBJECT_TOKEN_DOC, SUBJECT_TOKEN_PREFIX,
    SubjectRejected, SubjectTokenIssued, SubjectTokens,
};
pub use tessera_plugins::Registry;
pub use tls::{
    ReloadingCertificate, TlsConfig, TlsError, TlsListener, TlsPeer, serve_tls, server_config,
};
pub use tokens::{NewToken, Principal, Rejected, SubjectSession, TOKEN_DOC, TokenInfo, TokenStore};
pub use web::{
    CONSOLE_COOKIE, CONTENT_SECURITY_POLICY, CSRF_HEADER, SECURE_CONSOLE_COOKIE,
    SECURE_SESSION_COOKIE, SESSION_COOKIE, csrf_token,
};

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub tokens: TokenStore,
    pub metrics: Metrics,
    pub config: Arc<Config>,
    /// The tenant's limit over its API tokens' requests.
    pub limiter: Arc<RateLimiter>,
    /// The limit of each person's subject-token requests (their own, not
    /// their tenant's).
    pub subject_limiter: Arc<RateLimiter>,
    /// The tenants' plugins and the runtime they run in (none: no plugins).
    pub plugins: Option<Registry>,
    /// Imports through the tenants' connectors (with the plugins).
    pub imports: Option<ImportDesk>,
    /// The tenants' segments (with the plugins). The server also runs
    /// their streaming worker ([`Segments::spawn_stream_worker`]).
    ///
    /// [`Segments::spawn_stream_worker`]: tessera_segments::Segments::spawn_stream_worker
    pub segments: Option<tessera_segments::Segments>,
    /// Deliveries through the tenants' destination connectors (with the
    /// plugins): segment exports and campaign sends.
    pub deliverer: Option<tessera_imports::Deliverer>,
    /// The tenants' campaigns (with the plugins).
    pub strategies: Option<tessera_strategies::Strategies>,
    /// Decisions being made at once ([`decide_concurrency`]): more wait
    /// their turn here, on the async runtime, rather than as blocking
    /// threads contending for the store and the plugin instance slots.
    pub decide_gate: Arc<tokio::sync::Semaphore>,
    /// Subject tokens for `/v1/me`, and login with one-time codes.
    pub subject_tokens: SubjectTokens,
    pub login: CodeLogin,
    /// The console's sessions, made from API tokens.
    pub console_sessions: ConsoleSessions,
}

impl AppState {
    /// The state over `vault` with `config`'s limits, fresh metrics and a
    /// token store in the vault's store.
    pub fn new(vault: Arc<Vault>, config: Config) -> Self {
        let tokens = TokenStore::new(
            vault.clone(),
            Duration::from_millis(config.limits.token_cache_ms),
        );
        Self {
            subject_tokens: SubjectTokens::new(vault.clone(), config.subject_tokens.ttl_s),
            login: CodeLogin::new(&config.subject_login),
            console_sessions: ConsoleSessions::new(
                vault.clone(),
                tokens.clone(),
                config.console.session_ttl_s,
            ),
            limiter: Arc::new(RateLimiter::new(&config.rate_limit)),
            subject_limiter: Arc::new(RateLimiter::new(&RateLimit {
                requests_per_second: config.subject_tokens.requests_per_second.max(1),
                burst: config.subject_tokens.burst.max(1),
            })),
            vault,
            tokens,
            metrics: Metrics::default(),
            config: Arc::new(config),
            plugins: None,
            imports: None,
            segments: None,
            deliverer: None,
            strategies: None,
            decide_gate: Arc::new(tokio::sync::Semaphore::new(decide_concurrency())),
        }
    }

    /// The state with the tenants' plugins: `/v1/plugins`, `/v1/publishers`
    /// and the plugin series of `/metrics` serve them.
    /// Imports (`/v1/imports`) run through them with the default
    /// [`ImporterConfig`](tessera_imports::ImporterConfig).
    pub fn with_plugins(mut self, registry: Registry) -> Self {
        let importer = tessera_imports::Importer::new(registry.clone(), self.vault.clone());
        self.imports = Some(ImportDesk::new(importer));
        self.segments = Some(tessera_segments::Segments::new(
            self.vault.clone(),
            registry.clone(),
        ));
        self.strategies = Some(tessera_strategies::Strategies::new(
            self.vault.clone(),
            registry.clone(),
        ));
        self.deliverer = Some(tessera_imports::Deliverer::new(
            registry.clone(),
            self.vault.clone(),
        ));
        self.plugins = Some(registry);
        self
    }

    /// The state with imports run by `importer` (its configuration).
    pub fn with_importer(mut self, importer: tessera_imports::Importer) -> Self {
        self.imports = Some(ImportDesk::new(importer));
        self
    }
}

/// The application: every route, the authorization layer over `/v1`, body
/// limits, request ids, logs, metrics and timeouts.
pub fn app(state: AppState) -> Router {
    // Bundles carry compiled components: a body limit of their own.
    let bundle_limit = DefaultBodyLimit::max(state.config.limits.max_bundle_bytes);
    let v1 = Router::new()
        .route(
            "/v1/tokens",
            post(handlers::create_token).get(handlers::list_tokens),
        )
        .route(
            "/v1/tokens/{id}",
            axum::routing::delete(handlers::revoke_token),
        )
        .route(
            "/v1/subjects/{id}",
            get(handlers::subject).delete(handlers::delete_subject),
        )
        .route("/v1/deletions/{id}", get(handlers::deletion))
        .route("/v1/audit", get(handlers::audit))
        .route("/v1/events", post(ingest::events))
        .route("/v1/batch", post(ingest::batch))
        .route("/v1/track", post(ingest::track))
        .route("/v1/identify", post(ingest::identify))
        .route("/v1/page", post(ingest::page))
        .route("/v1/screen", post(ingest::screen))
        .route("/v1/alias", post(ingest::alias))
        .route("/v1/group", post(ingest::group))
        .merge(admin::routes())
        .route(
            "/v1/plugins",
            get(plugins::list)
                .post(plugins::install)
                .layer(bundle_limit),
        )
        .route(
            "/v1/plugins/{name}",
            get(plugins::status).delete(plugins::remove),
        )
        .route(
            "/v1/plugins/{name}/upgrade",
            post(plugins::upgrade).layer(bundle_limit),
        )
        .route("/v1/plugins/{name}/approve", post(plugins::approve))
        .route("/v1/plugins/{name}/reject", post(plugins::reject))
        .route("/v1/plugins/{name}/rollback", post(plugins::rollback))
        .route("/v1/plugins/{name}/quarantine", post(plugins::quarantine))
        .route("/v1/plugins/{name}/release", post(plugins::release))
        .route(
            "/v1/publishers",
            get(plugins::publishers).post(plugins::trust),
        )
        .route(
            "/v1/publishers/{key_id}",
            axum::routing::delete(plugins::distrust),
        )
        .route("/v1/rules/check", post(rules::check))
        .route("/v1/profiles/{id}", get(profiles::profile))
        .route("/v1/segments", get(segmentation::list))
        .route("/v1/segments/preview", post(segmentation::preview))
        .route(
            "/v1/segments/{name}",
            get(segmentation::show)
                .put(segmentation::put)
                .delete(segmentation::delete),
        )
        .route(
            "/v1/segments/{name}/recompute",
            post(segmentation::recompute),
        )
        .route("/v1/segments/{name}/members", get(segmentation::members))
        .route("/v1/segments/{name}/sizes", get(segmentation::sizes))
        .route(
            "/v1/segments/{name}/recommendations",
            get(campaigns::recommendations),
        )
        .route(
            "/v1/segments/{name}/exports",
            get(segmentation::exports).post(segmentation::export),
        )
        .route(
            "/v1/segments/{name}/exports/{id}",
            get(segmentation::export_record),
        )
        .route("/v1/catalog", get(campaigns::catalog))
        .route("/v1/campaigns", get(campaigns::list))
        .route(
            "/v1/campaigns/{name}",
            get(campaigns::show)
                .put(campaigns::put)
                .delete(campaigns::delete),
        )
        .route("/v1/campaigns/{name}/simulate", post(campaigns::simulate))
        .route("/v1/campaigns/{name}/status", post(campaigns::status))
        .route("/v1/campaigns/{name}/shadow", get(campaigns::shadow))
        .route(
            "/v1/campaigns/{name}/evaluation",
            get(campaigns::evaluation),
        )
        .route(
            "/v1/campaigns/{name}/sends",
            get(campaigns::sends).post(campaigns::send),
        )
        .route(
            "/v1/campaigns/{name}/sends/{id}",
            get(campaigns::send_record),
        )
        .route("/v1/simulate", post(campaigns::simulate_spec))
        .route("/v1/decide", post(campaigns::decide))
        .route("/v1/feedback", post(campaigns::feedback))
        .route("/v1/imports", get(imports::list).post(imports::create))
        .route("/v1/imports/{id}", get(imports::show))
        .route(
            imports::DATA_ROUTE,
            put(imports::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/imports/{id}/dead-letters", get(imports::dead_letters))
        .route(
            "/v1/imports/{id}/dead-letters/{letter}",
            get(imports::dead_letter).put(imports::fix),
        )
        .route("/v1/imports/{id}/replay", post(imports::replay))
        .route("/v1/sources", get(imports::sources))
        .route(
            "/v1/sources/{name}",
            put(imports::put_source).delete(imports::delete_source),
        )
        .route("/v1/sources/{name}/push", post(imports::push))
        .route("/v1/sources/{name}/pull", post(imports::pull))
        .route(
            "/v1/sources/{name}/cursor",
            axum::routing::delete(imports::reset_cursor),
        )
        .route(
            "/v1/subject-tokens",
            post(subject_tokens::issue).layer(axum::middleware::map_response(me::no_store)),
        )
        .merge(me::routes())
        .route_layer(from_fn_with_state(state.clone(), auth::authorize));
    // Public, limited per tenant and per address: how people sign in.
    let login = Router::new()
        .route("/v1/login/code", post(login::request_code))
        .route("/v1/login/token", post(login::exchange))
        .layer(axum::middleware::map_response(me::no_store));
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi::document());
    Router::new()
        .merge(docs)
        .route("/healthz", get(handlers::health))
        .route("/readyz", get(handlers::ready))
        .route("/metrics", get(handlers::metrics))
        .merge(login)
        .merge(v1)
        .merge(portal::routes())
        .merge(console::routes())
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .layer(axum::middleware::from_fn(web::no_password_dialog))
        .layer(from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The request id: the caller's `x-request-id` if it is a short plain
/// token, else a fresh random one.
fn request_id(headers: &HeaderMap) -> String {
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok())
        && !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return id.to_owned();
    }
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        bytes = (Instant::now().elapsed().as_nanos() as u64).to_le_bytes();
    }
    hex::encode(bytes)
}

/// The outermost layer: a span per request (id, method, route; the
/// authorization layer adds tenant and role), the timeout, one log line and
/// the metrics of each answer, and the `x-request-id` header.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(request.headers());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %method,
        route = %route,
        tenant = tracing::field::Empty,
        role = tracing::field::Empty,
    );
    // An upload streams for as long as its data takes: a limit of its own.
    let timeout = Duration::from_millis(if route == imports::DATA_ROUTE {
        state.config.limits.import_timeout_ms
    } else {
        state.config.limits.request_timeout_ms
    });
    let answer = tokio::time::timeout(timeout, next.run(request))
        .instrument(span.clone())
        .await;
    let mut response = answer.unwrap_or_else(|_| {
        let _entered = span.enter();
        tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took longer than the server allows (limits.request_timeout_ms); work \
             already started may still complete, so retry idempotently",
        );
        error.retry_after = Some(1);
        error.into_response()
    });
    let status = response.status();
    let elapsed = start.elapsed();
    state.metrics.observe(
        method.as_str(),
        &route,
        status.as_u16(),
        elapsed.as_secs_f64(),
    );
    span.in_scope(|| {
        let latency_us = elapsed.as_micros() as u64;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), latency_us, "answered");
        } else {
            tracing::info!(status = status.as_u16(), latency_us, "answered");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// How many decisions run at once: two per core (a decision is mostly CPU
/// and short store reads and writes), at least two. Under a burst the rest
/// queue in arrival order instead of slowing every decision down.
pub fn decide_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| 2 * n.get())
}

/// Runs blocking vault work on tokio's blocking pool, in the request's span.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(work)).await {
        Ok(result) => result,
        Err(error) => Err(ApiError::internal(&error)),
    }
}

/// Starts `work` on a thread of its own named `name` and returns at once:
/// long work that blocks and outlives its request (an export, a send),
/// whose record the caller answers with.
pub(crate) fn in_background(
    name: &str,
    work: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .map(drop)
}

/// Serves the application on `listener` until `shutdown` completes, then
/// finishes the requests in flight (their vault writes are durable when
/// they answer) and flushes the vault.
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let vault = state.vault.clone();
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    let flushed = tokio::task::spawn_blocking(move || vault.flush())
        .await
        .map_err(std::io::Error::other)?;
    served?;
    flushed.map_err(|error| std::io::Error::other(error.to_string()))
}

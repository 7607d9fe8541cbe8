//! Shared fixtures of the API tests: a vault in a temporary directory with
//! two tenants and a token of every role in each.
#![allow(dead_code)]

pub mod watched;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tessera_api::{AppState, Config, Registry, Role, app};
use tessera_bundle::Kind;
use tessera_privacy::MasterKey;
use tessera_runtime::{Runtime, RuntimeConfig};
use tessera_store::{SledStore, Store};
use tessera_vault::{
    Actor, IdentityKind, Incoming, TenantSettings, TraitClass, TraitSpec, TraitType, Vault,
};
use tower::ServiceExt as _;
use watched::WatchedStore;

pub const ACME: &str = "acme";
pub const GLOBEX: &str = "globex";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub state: AppState,
    pub app: Router,
    /// (tenant, role) → token.
    pub tokens: BTreeMap<(String, Role), String>,
    /// The vault's clock, when the fixture was built with one.
    pub clock: Option<Arc<AtomicI64>>,
}

pub fn operator() -> Actor {
    Actor::new("operator", "test")
}

impl Fixture {
    /// Default settings, but for a subject-token rate limit high enough
    /// that tests calling many routes with one token never meet it.
    pub fn new() -> Self {
        let mut config = Config::default();
        config.subject_tokens.requests_per_second = 1000;
        config.subject_tokens.burst = 1000;
        Self::with_config(config)
    }

    pub fn with_config(config: Config) -> Self {
        Self::build(config, None)
    }

    /// A fixture whose vault reads the time from a clock the test moves
    /// ([`Fixture::advance`]), starting at the current time.
    pub fn with_clock(config: Config) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_millis();
        Self::build(
            config,
            Some(Arc::new(AtomicI64::new(i64::try_from(now).expect("time")))),
        )
    }

    /// A fixture whose store tells whether documents of `kind` were written
    /// and not yet flushed (what a crash would lose).
    pub fn watching(config: Config, kind: &'static str) -> (Self, Arc<WatchedStore>) {
        let mut watched = None;
        let f = Self::build_with(config, None, |store| {
            let store = Arc::new(WatchedStore::new(store, kind));
            watched = Some(store.clone());
            store as Arc<dyn Store>
        });
        (f, watched.expect("the store is built"))
    }

    fn build(config: Config, clock: Option<Arc<AtomicI64>>) -> Self {
        Self::build_with(config, clock, |store| store)
    }

    fn build_with(
        config: Config,
        clock: Option<Arc<AtomicI64>>,
        wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        MasterKey::generate()
            .expect("master key")
            .write_new(dir.path().join("master.key"))
            .expect("write master key");
        let store = SledStore::open(dir.path().join("data")).expect("open store");
        let mut vault = Vault::new(
            wrap(Arc::new(store)),
            dir.path().join("keys"),
            MasterKey::from_file(dir.path().join("master.key")).expect("master key"),
        )
        .expect("open vault");
        if let Some(clock) = &clock {
            let clock = clock.clone();
            vault = vault.with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
        }
        for tenant in [ACME, GLOBEX] {
            vault
                .create_tenant(tenant, TenantSettings::default(), &operator())
                .expect("create tenant");
        }
        let state = AppState::new(Arc::new(vault), config);
        let mut tokens = BTreeMap::new();
        for tenant in [ACME, GLOBEX] {
            for role in Role::ALL {
                let created = state
                    .tokens
                    .create(tenant, role, &format!("{role} test"), &operator())
                    .expect("create token");
                tokens.insert((tenant.to_owned(), role), created.token);
            }
        }
        let app = app(state.clone());
        Self {
            dir,
            state,
            app,
            tokens,
            clock,
        }
    }

    /// The fixture with plugins run by `registry` (imports, segments,
    /// campaigns and deliveries with them), and ACME's schema with the
    /// `standard` number trait `total_spend` that the threshold segment
    /// plugin reads.
    pub fn with_plugins(&mut self, registry: Registry) {
        self.state = self.state.clone().with_plugins(registry);
        self.app = app(self.state.clone());
        let mut settings = self.vault().settings(ACME).unwrap();
        settings.schema.insert(
            "total_spend".into(),
            TraitSpec {
                class: TraitClass::Standard,
                kind: TraitType::Number,
                pii_class: None,
                allowed: Vec::new(),
            },
        );
        self.vault()
            .update_settings(ACME, settings, &operator())
            .unwrap();
    }

    /// Installs in ACME the built-in plugins a campaign needs: the
    /// threshold segment plugin and the epsilon-greedy strategy (plugin
    /// calls block: on a thread of their own).
    pub fn install_campaign_plugins(&self) {
        let registry = self.state.plugins.clone().expect("a registry");
        std::thread::spawn(move || {
            registry
                .install_builtin(ACME, tessera_guests::plugins::THRESHOLD, Kind::Segment, 0)
                .expect("install");
            registry
                .install_builtin(
                    ACME,
                    tessera_guests::plugins::EPSILON_GREEDY,
                    Kind::Strategy,
                    65_536,
                )
                .expect("install");
        })
        .join()
        .expect("installed");
    }

    /// Moves the vault's clock on (a fixture built [`Fixture::with_clock`]).
    pub fn advance(&self, ms: i64) {
        self.clock
            .as_ref()
            .expect("a fixture with a clock")
            .fetch_add(ms, Ordering::SeqCst);
    }

    /// A subject token for `subject` of `tenant`, as the portal gets one.
    pub fn subject_token(&self, tenant: &str, subject: &str) -> String {
        self.state
            .subject_tokens
            .issue(tenant, subject, &Actor::new("portal", "test"), "test")
            .expect("issue a subject token")
            .token
    }

    pub fn token(&self, tenant: &str, role: Role) -> &str {
        &self.tokens[&(tenant.to_owned(), role)]
    }

    pub fn vault(&self) -> &Vault {
        &self.state.vault
    }

    /// A new subject in `tenant` (by a member id), returning its id.
    pub fn subject(&self, tenant: &str, member: &str) -> String {
        let item = Incoming {
            identities: vec![(IdentityKind::MemberId, member.to_owned())],
            ..Incoming::default()
        };
        self.vault()
            .ingest(tenant, &item, &operator())
            .expect("ingest")
            .subject
            .expect("a subject")
    }

    /// A fixture whose state has a plugin registry on a runtime of
    /// `config` (segments, strategies, imports), and whose ACME schema has
    /// the number trait `total_spend` that the threshold plugin reads.
    pub fn with_registry(config: RuntimeConfig) -> (Self, Registry) {
        let mut f = Fixture::new();
        let runtime = Runtime::new(config).expect("runtime");
        let registry = Registry::new(runtime, f.state.vault.clone(), false);
        f.with_plugins(registry.clone());
        (f, registry)
    }

    /// What a forbidden call must not change: the audit head, the number of
    /// subjects, tokens and deletion requests of a tenant.
    pub fn footprint(&self, tenant: &str) -> (u64, usize, usize, usize) {
        let store = self.vault().store();
        (
            store.audit_head(tenant).expect("audit head"),
            store
                .subjects(tenant, None, 100_000)
                .expect("subjects")
                .len(),
            self.state.tokens.list(tenant).expect("tokens").len(),
            self.vault()
                .deletion_requests(tenant)
                .expect("requests")
                .len(),
        )
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        self.send(request).await
    }

    /// A request whose body is a plugin bundle.
    #[allow(dead_code)]
    pub async fn send_bundle(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        bundle: Vec<u8>,
    ) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Body::from(bundle))
            .expect("request");
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
        }
    }
}

/// Opens the vault of a fixture's directory (after the fixture's own
/// handle is dropped: the store is held exclusively).
pub fn open_vault(dir: &std::path::Path) -> Vault {
    Vault::open(
        dir.join("data"),
        dir.join("keys"),
        MasterKey::from_file(dir.join("master.key")).expect("master key"),
    )
    .expect("open vault")
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts the error shape and returns its code.
    pub fn code(&self) -> &str {
        let error = &self.body["error"];
        assert!(
            error.is_object(),
            "not an error answer: {} {}",
            self.status,
            self.body
        );
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        error["code"].as_str().expect("a code")
    }

    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{}", self.body);
        self
    }
}

//! `tessera serve`: the HTTP service (crate `tessera-api`) over the
//! deployment's vault, with the plugin runtime and Tessera's first-party
//! plugins installed for every tenant.
//!
//! Settings come from, lowest first: defaults, a TOML file (`--config` or
//! TESSERA_CONFIG), environment variables, then flags. With a certificate
//! (`[tls]`) the port speaks HTTPS only (docs/tls.md). `--init --tenant T`
//! creates the tenant if it is missing and, if it has no active operator
//! token, prints a first one once. SIGTERM or SIGINT stops accepting
//! connections, lets the requests in flight finish, flushes the store and
//! exits 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use tessera_api::{
    AppState, CodeSenderKind, Config, ConsoleConfig, Limits, RateLimit, Registry,
    SubjectLoginConfig, SubjectTokenConfig, TlsConfig,
};
use tessera_bundle::Kind;
use tessera_runtime::{IpNet, TrustedRoots};
use tessera_vault::{Actor, TenantSettings};

use crate::CacheArgs;
use crate::data::DataArgs;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file of settings ([server], [storage], [tls], [limits],
    /// [rate_limit], [subject_tokens], [subject_login], [console], [plugins], [jobs];
    /// see docs/api.md, docs/operations.md and docs/tls.md).
    #[arg(long, env = "TESSERA_CONFIG", value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// The address to listen on, e.g. 127.0.0.1:8080 (port 0: any free port).
    /// Overrides the file and TESSERA_LISTEN.
    #[arg(long)]
    listen: Option<String>,
    /// Create the tenant named by --tenant if it is missing (and the data and
    /// key directories if needed), and print a first operator token for it
    /// once, unless it already has an active one.
    #[arg(long, requires = "tenant")]
    init: bool,
    /// The tenant that --init sets up.
    #[arg(long, requires = "init")]
    tenant: Option<String>,
    /// DEVELOPMENT ONLY: accept unsigned plugin bundles when an install
    /// asks for it (`--allow-unsigned`). Logged loudly, and every plugin
    /// installed so shows `"development": true` in its status.
    #[arg(long)]
    allow_unsigned_bundles: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Tessera's first-party plugins, which every tenant gets: (name, component,
/// world, state quota in bytes).
const FIRST_PARTY: [(&str, &[u8], Kind, u64); 4] = [
    (
        "ndjson",
        tessera_guests::plugins::NDJSON,
        Kind::Connector,
        0,
    ),
    ("csv", tessera_guests::plugins::CSV, Kind::Connector, 0),
    (
        "threshold",
        tessera_guests::plugins::THRESHOLD,
        Kind::Segment,
        0,
    ),
    (
        "epsilon-greedy",
        tessera_guests::plugins::EPSILON_GREEDY,
        Kind::Strategy,
        64 << 10,
    ),
];

/// Tessera's segment plugins whose columns come from their parameters
/// (the rules plugin's rule, the RFM window): (name, component, state
/// quota in bytes). Every tenant gets them, granted [`planned_grant`].
pub(crate) const PLANNED_SEGMENTS: [(&str, &[u8], u64); 2] = [
    ("rules", tessera_guests::plugins::RULES, 0),
    // RFM keeps the quantile cut points of its last full page.
    ("rfm", tessera_guests::plugins::RFM, 16 << 10),
];

/// Tessera's strategy plugins whose actions and columns come from their
/// parameters (a campaign's offers, a contextual model's features): (name,
/// component, state quota in bytes). Every tenant gets them, granted
/// [`planned_grant`]; each campaign keeps its own part of their state.
pub(crate) const PLANNED_STRATEGIES: [(&str, &[u8], u64); 4] = [
    ("thompson", tessera_guests::plugins::THOMPSON, 256 << 10),
    // 33×33 matrices per action and feature set.
    ("linucb", tessera_guests::plugins::LINUCB, 1 << 20),
    ("propensity", tessera_guests::plugins::PROPENSITY, 256 << 10),
    ("rule-based", tessera_guests::plugins::RULE_BASED, 0),
];

/// What the first-party plugins of [`PLANNED_SEGMENTS`] and
/// [`PLANNED_STRATEGIES`] are granted: every
/// standard trait and every event type of the tenant's schemas (`*`; a
/// `pii` or `sensitive` field needs its PII class, which they are not
/// granted), for the purposes they work for. What a segment's parameters
/// make them read is checked against this grant when it is saved.
pub(crate) fn planned_grant(state_quota: u64) -> tessera_plugins::Permissions {
    tessera_plugins::Permissions {
        traits: vec!["*".into()],
        events: vec!["*".into()],
        purposes: ["email_marketing", "personalization", "analytics"]
            .map(String::from)
            .to_vec(),
        state_quota,
        ..tessera_plugins::Permissions::default()
    }
}

/// The settings file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    pub server: Server,
    pub tls: TlsConfig,
    pub limits: Limits,
    pub rate_limit: RateLimit,
    pub subject_tokens: SubjectTokenConfig,
    pub subject_login: SubjectLoginConfig,
    pub console: ConsoleConfig,
    pub plugins: PluginSettings,
    pub jobs: crate::upkeep::JobSettings,
    pub storage: StorageSettings,
}

/// Which store keeps the deployment's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// The embedded store in `server.data_dir` (the default).
    #[default]
    Sled,
    /// A PostgreSQL database at `storage.url`, which several servers may
    /// share (docs/operations.md).
    Postgres,
}

/// Where the subject keys are (`storage.keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeysBackend {
    /// The file `subject-keys` in `server.key_dir`, for one process only
    /// (the default with sled).
    File,
    /// The table `subject_keys` of the PostgreSQL store, shared by every
    /// node (the default with PostgreSQL).
    Database,
}

/// `[storage]`: where the records and the subject keys are.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Also TESSERA_STORAGE_BACKEND (`sled` or `postgres`).
    pub backend: StorageBackend,
    /// The PostgreSQL connection URL (`postgres://user:password@host:port/db`).
    /// Also TESSERA_STORAGE_URL.
    pub url: Option<String>,
    /// A schema of its own in that database, created if missing. Also
    /// TESSERA_STORAGE_SCHEMA.
    pub schema: Option<String>,
    /// The most connections this server keeps open to the database.
    pub pool_size: Option<u32>,
    /// Where the subject keys are: `database` (the default with PostgreSQL,
    /// what several nodes need) or `file`. Also TESSERA_STORAGE_KEYS.
    pub keys: Option<KeysBackend>,
    /// With `keys = "database"`: the PostgreSQL database of the subject
    /// keys and their erasure ledger, when not the records' (in practice
    /// another server, with its own, shorter backup retention:
    /// docs/operations.md). Also TESSERA_STORAGE_KEYS_URL.
    pub keys_url: Option<String>,
    /// A schema of its own for the keys in that database (or, without
    /// `keys_url`, in the records' database), created if missing. Also
    /// TESSERA_STORAGE_KEYS_SCHEMA.
    pub keys_schema: Option<String>,
    /// How often, in milliseconds, a node sharing its key store with others
    /// reads the tenants' change marks (docs/operations.md): the bound on
    /// how long a change made through another node takes to reach this
    /// one's caches. Also TESSERA_STORAGE_POLL_MS.
    pub poll_ms: Option<u64>,
    /// A PEM file of the CAs that may sign the database server's
    /// certificate (the URL's `sslrootcert` is the other way to name one);
    /// with it `sslmode` defaults to `verify-full`. Also
    /// TESSERA_STORAGE_CA_FILE.
    pub ca_file: Option<PathBuf>,
}

/// The default of `storage.poll_ms`.
pub const DEFAULT_POLL_MS: u64 = 1_000;

// The URL may carry a password.
impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("backend", &self.backend)
            .field("url", &self.url.as_ref().map(|_| "(set)"))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("keys", &self.keys)
            .field("keys_url", &self.keys_url.as_ref().map(|_| "(set)"))
            .field("keys_schema", &self.keys_schema)
            .field("poll_ms", &self.poll_ms)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl StorageSettings {
    /// The PostgreSQL store's options, if that is the backend.
    pub(crate) fn postgres(&self) -> Option<tessera_store_postgres::PgOptions> {
        if self.backend != StorageBackend::Postgres {
            return None;
        }
        let mut options =
            tessera_store_postgres::PgOptions::new(self.url.clone().unwrap_or_default());
        options.schema.clone_from(&self.schema);
        if let Some(size) = self.pool_size {
            options.pool_size = size;
        }
        options.ca_file.clone_from(&self.ca_file);
        Some(options)
    }

    fn check(&self) -> anyhow::Result<()> {
        let url_set = self.url.as_ref().is_some_and(|url| !url.trim().is_empty());
        match self.backend {
            StorageBackend::Postgres if !url_set => anyhow::bail!(
                "invalid settings: storage.url (or TESSERA_STORAGE_URL) must be set when \
                 storage.backend is \"postgres\""
            ),
            StorageBackend::Sled if url_set || self.schema.is_some() || self.ca_file.is_some() => {
                anyhow::bail!(
                    "invalid settings: storage.url, storage.schema and storage.ca_file are read \
                     only when storage.backend is \"postgres\" (it is \"sled\")"
                )
            }
            _ => {}
        }
        if self.pool_size == Some(0) {
            anyhow::bail!("invalid settings: storage.pool_size must be at least 1");
        }
        if self.backend == StorageBackend::Sled && self.keys == Some(KeysBackend::Database) {
            anyhow::bail!(
                "invalid settings: storage.keys = \"database\" needs storage.backend = \
                 \"postgres\" (with sled the subject keys are in the key directory's file)"
            );
        }
        self.check_key_database()?;
        if let Some(poll) = self.poll_ms
            && !(50..=60_000).contains(&poll)
        {
            anyhow::bail!(
                "invalid settings: storage.poll_ms must be between 50 and 60000 (milliseconds), \
                 not {poll}"
            );
        }
        Ok(())
    }

    /// Refuses `keys_url` and `keys_schema` where they cannot apply.
    fn check_key_database(&self) -> anyhow::Result<()> {
        if self.keys_url.is_none() && self.keys_schema.is_none() {
            return Ok(());
        }
        if self
            .keys_url
            .as_ref()
            .is_some_and(|url| url.trim().is_empty())
        {
            anyhow::bail!(
                "invalid settings: storage.keys_url (or TESSERA_STORAGE_KEYS_URL) is empty; \
                 name the key database or leave the setting out"
            );
        }
        if self.backend != StorageBackend::Postgres {
            anyhow::bail!(
                "invalid settings: storage.keys_url and storage.keys_schema are read only when \
                 storage.backend is \"postgres\" (with sled the subject keys are in the key \
                 directory's file)"
            );
        }
        if self.keys() != KeysBackend::Database {
            anyhow::bail!(
                "invalid settings: storage.keys_url and storage.keys_schema need storage.keys = \
                 \"database\" (with keys = \"file\" the subject keys are in the key \
                 directory's file)"
            );
        }
        let same_database = self
            .keys_url
            .as_ref()
            .is_none_or(|keys| Some(keys.trim()) == self.url.as_deref().map(str::trim));
        if same_database && self.keys_schema == self.schema {
            anyhow::bail!(
                "invalid settings: storage.keys_url and storage.keys_schema name the records' own \
                 database and schema; leave them out to keep the keys beside the records, or \
                 name another database (or schema) for the keys"
            );
        }
        Ok(())
    }

    /// The key database's options, if the keys are in a database (or
    /// schema) other than the records'.
    pub(crate) fn key_database(&self) -> Option<tessera_store_postgres::PgOptions> {
        let records = self.postgres()?;
        if self.keys() != KeysBackend::Database
            || (self.keys_url.is_none() && self.keys_schema.is_none())
        {
            return None;
        }
        let mut options = tessera_store_postgres::PgOptions::new(
            self.keys_url.clone().unwrap_or_else(|| records.url.clone()),
        );
        options.schema.clone_from(&self.keys_schema);
        options.pool_size = records.pool_size;
        Some(options)
    }

    /// Where the subject keys are, with the default filled in.
    pub fn keys(&self) -> KeysBackend {
        self.keys.unwrap_or(match self.backend {
            StorageBackend::Sled => KeysBackend::File,
            StorageBackend::Postgres => KeysBackend::Database,
        })
    }
}

/// The PostgreSQL pool's series for `/metrics`.
fn render_pool_metrics(pool: tessera_store_postgres::PoolStatus) -> String {
    let busy = pool.open.saturating_sub(pool.idle);
    format!(
        "# HELP tessera_db_pool_connections Connections of this node's PostgreSQL pool, by state.\n\
         # TYPE tessera_db_pool_connections gauge\n\
         tessera_db_pool_connections{{state=\"busy\"}} {busy}\n\
         tessera_db_pool_connections{{state=\"idle\"}} {}\n\
         # HELP tessera_db_pool_max_connections The most connections the pool opens (storage.pool_size).\n\
         # TYPE tessera_db_pool_max_connections gauge\n\
         tessera_db_pool_max_connections {}\n\
         # HELP tessera_db_pool_timeouts_total Calls that waited 10 s for a free connection and failed.\n\
         # TYPE tessera_db_pool_timeouts_total counter\n\
         tessera_db_pool_timeouts_total {}\n",
        pool.idle, pool.max, pool.timeouts
    )
}

/// `[plugins]`: what connectors may reach.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Internal address ranges (CIDR, e.g. "127.0.0.1/32") connectors may
    /// reach although loopback, private, link-local and metadata addresses
    /// are refused by default. Also TESSERA_OUTBOUND_ALLOW (comma-separated).
    pub outbound_allow: Vec<String>,
    /// A PEM bundle of the certificate authorities connectors' HTTPS
    /// requests trust, in place of Mozilla's roots (docs/tls.md). Also
    /// TESSERA_OUTBOUND_CA_FILE.
    pub outbound_ca_file: Option<PathBuf>,
}

/// Where the server listens and where the deployment's data and keys are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    pub listen: String,
    pub data_dir: PathBuf,
    pub key_dir: PathBuf,
    /// Not read when TESSERA_MASTER_KEY holds the key in hex.
    pub master_key_file: PathBuf,
    /// The most memory the store's page cache may take, in MiB.
    pub store_cache_mib: u64,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: "tessera-data".into(),
            key_dir: "tessera-keys".into(),
            master_key_file: "tessera-master.key".into(),
            store_cache_mib: crate::data::DEFAULT_STORE_CACHE_MIB,
        }
    }
}

impl ServeConfig {
    /// Reads a settings file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the settings file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("the settings file {} is not valid", path.display()))
    }

    /// Applies the environment variables that are set (`var` reads one).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        fn number<T: std::str::FromStr>(name: &str, text: &str) -> anyhow::Result<T> {
            text.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{name} must be a whole number, not {text:?}"))
        }
        if let Some(v) = var("TESSERA_LISTEN") {
            self.server.listen = v;
        }
        if let Some(v) = var("TESSERA_DATA_DIR") {
            self.server.data_dir = v.into();
        }
        if let Some(v) = var("TESSERA_KEY_DIR") {
            self.server.key_dir = v.into();
        }
        if let Some(v) = var("TESSERA_MASTER_KEY_FILE") {
            self.server.master_key_file = v.into();
        }
        if let Some(v) = var("TESSERA_STORE_CACHE_MIB") {
            self.server.store_cache_mib = number("TESSERA_STORE_CACHE_MIB", &v)?;
        }
        if let Some(v) = var("TESSERA_TLS_CERT_FILE") {
            self.tls.cert_file = Some(v.into());
        }
        if let Some(v) = var("TESSERA_TLS_KEY_FILE") {
            self.tls.key_file = Some(v.into());
        }
        if let Some(v) = var("TESSERA_TLS_CLIENT_CA_FILE") {
            self.tls.client_ca_file = Some(v.into());
        }
        if let Some(v) = var("TESSERA_TLS_REQUIRED") {
            self.tls.required = match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => anyhow::bail!("TESSERA_TLS_REQUIRED must be true or false, not {other:?}"),
            };
        }
        if let Some(v) = var("TESSERA_STORAGE_BACKEND") {
            self.storage.backend = match v.trim() {
                "sled" => StorageBackend::Sled,
                "postgres" => StorageBackend::Postgres,
                other => {
                    anyhow::bail!("TESSERA_STORAGE_BACKEND must be sled or postgres, not {other:?}")
                }
            };
        }
        if let Some(v) = var("TESSERA_STORAGE_URL") {
            self.storage.url = Some(v);
        }
        if let Some(v) = var("TESSERA_STORAGE_SCHEMA") {
            self.storage.schema = Some(v);
        }
        if let Some(v) = var("TESSERA_STORAGE_KEYS") {
            self.storage.keys = Some(match v.trim() {
                "file" => KeysBackend::File,
                "database" => KeysBackend::Database,
                other => {
                    anyhow::bail!("TESSERA_STORAGE_KEYS must be file or database, not {other:?}")
                }
            });
        }
        if let Some(v) = var("TESSERA_STORAGE_KEYS_URL") {
            self.storage.keys_url = Some(v);
        }
        if let Some(v) = var("TESSERA_STORAGE_KEYS_SCHEMA") {
            self.storage.keys_schema = Some(v);
        }
        if let Some(v) = var("TESSERA_STORAGE_POLL_MS") {
            self.storage.poll_ms = Some(number("TESSERA_STORAGE_POLL_MS", &v)?);
        }
        for (name, slot) in [
            ("TESSERA_JOBS_INTERVAL_S", &mut self.jobs.interval_s),
            ("TESSERA_JOBS_LEASE_MS", &mut self.jobs.lease_ms),
        ] {
            if let Some(v) = var(name) {
                *slot = number(name, &v)?;
            }
        }
        if let Some(v) = var("TESSERA_STORAGE_CA_FILE") {
            self.storage.ca_file = Some(v.into());
        }
        if let Some(v) = var("TESSERA_OUTBOUND_CA_FILE") {
            self.plugins.outbound_ca_file = Some(v.into());
        }
        let limits = &mut self.limits;
        for (name, slot) in [
            ("TESSERA_MAX_BODY_BYTES", &mut limits.max_body_bytes),
            ("TESSERA_MAX_MESSAGE_BYTES", &mut limits.max_message_bytes),
            ("TESSERA_MAX_BATCH_MESSAGES", &mut limits.max_batch_messages),
        ] {
            if let Some(v) = var(name) {
                *slot = number(name, &v)?;
            }
        }
        for (name, slot) in [
            ("TESSERA_REQUEST_TIMEOUT_MS", &mut limits.request_timeout_ms),
            ("TESSERA_TOKEN_CACHE_MS", &mut limits.token_cache_ms),
        ] {
            if let Some(v) = var(name) {
                *slot = number(name, &v)?;
            }
        }
        for (name, slot) in [
            (
                "TESSERA_RATE_LIMIT_RPS",
                &mut self.rate_limit.requests_per_second,
            ),
            ("TESSERA_RATE_LIMIT_BURST", &mut self.rate_limit.burst),
            (
                "TESSERA_SUBJECT_LOGIN_RPS",
                &mut self.subject_login.requests_per_second,
            ),
            ("TESSERA_SUBJECT_LOGIN_BURST", &mut self.subject_login.burst),
            (
                "TESSERA_SUBJECT_TOKEN_RPS",
                &mut self.subject_tokens.requests_per_second,
            ),
            (
                "TESSERA_SUBJECT_TOKEN_BURST",
                &mut self.subject_tokens.burst,
            ),
        ] {
            if let Some(v) = var(name) {
                *slot = number(name, &v)?;
            }
        }
        if let Some(v) = var("TESSERA_SUBJECT_TOKEN_TTL_S") {
            self.subject_tokens.ttl_s = number("TESSERA_SUBJECT_TOKEN_TTL_S", &v)?;
        }
        if let Some(v) = var("TESSERA_CONSOLE_SESSION_TTL_S") {
            self.console.session_ttl_s = number("TESSERA_CONSOLE_SESSION_TTL_S", &v)?;
        }
        if let Some(v) = var("TESSERA_SUBJECT_LOGIN_SENDER") {
            self.subject_login.sender = match v.trim() {
                "none" => CodeSenderKind::None,
                "file" => CodeSenderKind::File,
                "log" => CodeSenderKind::Log,
                other => anyhow::bail!(
                    "TESSERA_SUBJECT_LOGIN_SENDER must be none, file or log, not {other:?}"
                ),
            };
        }
        if let Some(v) = var("TESSERA_SUBJECT_LOGIN_FILE") {
            self.subject_login.file = Some(v.into());
        }
        if let Some(v) = var("TESSERA_OUTBOUND_ALLOW") {
            self.plugins.outbound_allow = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        Ok(())
    }

    pub fn api(&self) -> Config {
        Config {
            limits: self.limits.clone(),
            rate_limit: self.rate_limit.clone(),
            subject_tokens: self.subject_tokens.clone(),
            subject_login: self.subject_login.clone(),
            console: self.console.clone(),
            tls: self.tls.clone(),
        }
    }

    /// Refuses settings out of their range, naming the setting.
    fn check(&self) -> anyhow::Result<()> {
        self.api()
            .check()
            .map_err(|reason| anyhow::anyhow!("invalid settings: {reason}"))?;
        if self.server.store_cache_mib < crate::data::MIN_STORE_CACHE_MIB {
            anyhow::bail!(
                "invalid settings: server.store_cache_mib must be at least {} (MiB), not {}",
                crate::data::MIN_STORE_CACHE_MIB,
                self.server.store_cache_mib
            );
        }
        if !(500..=3_600_000).contains(&self.jobs.lease_ms) {
            anyhow::bail!(
                "invalid settings: jobs.lease_ms (or TESSERA_JOBS_LEASE_MS) must be from 500 to \
                 3600000 (milliseconds), not {}",
                self.jobs.lease_ms
            );
        }
        self.storage.check()
    }

    fn data(&self) -> DataArgs {
        DataArgs {
            data_dir: self.server.data_dir.clone(),
            key_dir: self.server.key_dir.clone(),
            key_file: self.server.master_key_file.clone(),
            store_cache_mib: self.server.store_cache_mib,
        }
    }
}

fn load(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let mut config = match &args.config {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    config.apply_env(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))?;
    if let Some(listen) = &args.listen {
        config.server.listen.clone_from(listen);
    }
    config.check()?;
    Ok(config)
}

/// The server's settings as `tessera serve --config` reads them (file,
/// then environment), for commands that work on the same deployment.
pub(crate) fn load_settings(path: Option<&Path>) -> anyhow::Result<ServeConfig> {
    let mut config = match path {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    config.apply_env(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))?;
    config.check()?;
    Ok(config)
}

/// Turns transparent huge pages off for this process. The allocator's
/// arenas ask for them, and the kernel zeroes a 2 MiB page in the page
/// fault that first touches it: on a virtual machine that was a stall of
/// several milliseconds, a few times a second under load, and most of the
/// decide tail at 2,000 requests a second (docs/BENCHMARKS.md, section 9).
/// Without them the closed-loop capacity stayed the same within the noise.
/// Pages already huge stay so; a kernel without the switch costs a warning.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!(
            "tessera serve: warning: cannot turn transparent huge pages off ({error}); \
             latency may have stalls of a few milliseconds"
        );
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args)?;
    without_huge_pages();
    let outbound_roots = match &config.plugins.outbound_ca_file {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| {
                format!("[plugins] outbound_ca_file: cannot read {}", path.display())
            })?;
            let roots = TrustedRoots::from_pem(&pem, &path.display().to_string())
                .map_err(|reason| anyhow::anyhow!("[plugins] outbound_ca_file: {reason}"))?;
            println!(
                "tessera serve: connectors trust the {} certificate authorities of {} \
                 (instead of Mozilla's roots)",
                roots.len(),
                path.display()
            );
            roots
        }
        None => TrustedRoots::default(),
    };
    // Read before anything else starts, so that a bad file stops the
    // server with the file's name and the problem.
    let tls = if config.tls.is_on() {
        Some(
            tessera_api::server_config(&config.tls)
                .map_err(|reason| anyhow::anyhow!("[tls]: {reason}"))?,
        )
    } else {
        None
    };
    match config.subject_login.sender {
        CodeSenderKind::File | CodeSenderKind::Log => eprintln!(
            "tessera serve: warning: subject_login.sender = \"{}\" writes login codes to a \
             file or the log; for development only",
            if config.subject_login.sender == CodeSenderKind::File {
                "file"
            } else {
                "log"
            }
        ),
        CodeSenderKind::None => {}
    }
    let data = config.data();
    let mut pool_metrics = None;
    let vault = match config.storage.postgres() {
        Some(options) => {
            let store = tessera_store_postgres::PgStore::open_with(&options)?;
            pool_metrics = Some(store.clone());
            println!(
                "tessera serve: storage: PostgreSQL {} ({})",
                store.target(),
                store.tls()
            );
            if let Some(warning) = store.tls_warning() {
                eprintln!("tessera serve: warning: storage.url: {warning}");
            }
            match config.storage.keys() {
                KeysBackend::Database => {
                    let keys: Arc<dyn tessera_privacy::KeyStore> =
                        match config.storage.key_database() {
                            Some(options) => {
                                let keys = tessera_store_postgres::PgKeyStore::open(&options)
                                    .context(
                                        "storage.keys_url / storage.keys_schema: cannot open \
                                         the key database",
                                    )?;
                                warn_of_keys_beside_records(&store);
                                Arc::new(keys)
                            }
                            None => Arc::new(store.key_store()),
                        };
                    let vault = data.open_shared(Arc::new(store), keys)?;
                    println!(
                        "tessera serve: subject keys: {} (shared; node {}, changes polled every \
                         {} ms)",
                        vault.key_location(),
                        vault.node_id().unwrap_or("-"),
                        config.storage.poll_ms.unwrap_or(DEFAULT_POLL_MS)
                    );
                    vault
                }
                KeysBackend::File => {
                    eprintln!(
                        "tessera serve: warning: storage.keys = \"file\": the subject keys are \
                         in {}, so only this one server may use the database",
                        config.server.key_dir.display()
                    );
                    data.open_on(Arc::new(store), args.init)?
                }
            }
        }
        None if args.init => data.open_or_create(data.master_key()?)?,
        None => data.open()?,
    };
    let vault = Arc::new(vault);
    let allowance = config
        .plugins
        .outbound_allow
        .iter()
        .map(|range| {
            range.parse::<IpNet>().with_context(|| {
                format!("[plugins] outbound_allow: {range:?} is not an address range (CIDR)")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let registry = Registry::new(
        args.cache.runtime_trusting(outbound_roots)?,
        vault.clone(),
        args.allow_unsigned_bundles,
    )
    .with_outbound_allowance(allowance);
    if args.allow_unsigned_bundles {
        eprintln!(
            "tessera serve: DEVELOPMENT MODE: unsigned plugin bundles are accepted \
             (--allow-unsigned-bundles); never use this in production"
        );
    }
    if vault.is_shared() {
        vault.on_remote_change(Arc::new(registry.clone()));
    }
    let importer = tessera_imports::Importer::new(registry.clone(), vault.clone()).with_config(
        tessera_imports::ImporterConfig {
            lease_ms: config.jobs.lease_ms,
            ..tessera_imports::ImporterConfig::default()
        },
    );
    let state = AppState::new(vault, config.api())
        .with_plugins(registry)
        .with_importer(importer);
    if let Some(segments) = &state.segments {
        segments.set_shard_lease_ms(config.jobs.lease_ms);
    }
    if let Some(store) = pool_metrics {
        state
            .metrics
            .add_source(Box::new(move || render_pool_metrics(store.pool_status())));
    }
    if let Some(tenant) = &args.tenant {
        init(&state, tenant)?;
    }
    // Before the async runtime starts: installing runs plugin calls, which
    // block.
    install_first_party(&state)?;
    load_installed(&state)?;
    crate::upkeep::fail_interrupted_work(&state)?;
    crate::upkeep::reerase_restored(&state)?;
    if state.vault.is_shared() {
        // Once now, so that every later change is one this node has not seen.
        state.vault.poll_changes()?;
        let polls = Arc::new(PollStats::default());
        polls.record(true);
        let rendered = polls.clone();
        state
            .metrics
            .add_source(Box::new(move || rendered.render()));
        spawn_change_poller(
            state.vault.clone(),
            std::time::Duration::from_millis(config.storage.poll_ms.unwrap_or(DEFAULT_POLL_MS)),
            polls,
        )?;
    }
    // Segment members follow every change to a person as it is written.
    let _stream = match &state.segments {
        Some(segments) => {
            segments.watch();
            Some(
                segments
                    .spawn_stream_worker(std::time::Duration::from_millis(250))
                    .context("cannot start the segments' streaming worker")?,
            )
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tessera-serve")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let address = listener.local_addr()?;
        // The handlers are installed before "listening" is announced: a
        // SIGTERM sent right after it must shut down gracefully, not kill.
        let shutdown = shutdown_signal()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("tessera serve: listening on {scheme}://{address}");
        tracing::info!(%address, data_dir = %config.server.data_dir.display(), "listening");
        let jobs = tokio::spawn(crate::upkeep::run(state.clone(), config.jobs.clone()));
        let served = match tls {
            Some(tls) => tessera_api::serve_tls(listener, state, tls, shutdown).await,
            None => tessera_api::serve(listener, state, shutdown).await,
        }
        .context("the server failed");
        jobs.abort();
        served
    })?;
    println!("tessera serve: stopped; in-flight requests finished and the store flushed");
    Ok(ExitCode::SUCCESS)
}

/// With the keys in a database of their own, keys still in the records'
/// database would come back with every restore of its backups: said at
/// start, with what to do.
fn warn_of_keys_beside_records(store: &tessera_store_postgres::PgStore) {
    use tessera_privacy::KeyStore;
    match store.key_store().holds_no_key() {
        Ok(true) => {}
        Ok(false) => eprintln!(
            "tessera serve: warning: the records' database {} still holds subject keys in its \
             table subject_keys although storage.keys_url names another database; backups of \
             the records then carry keys, so delete those rows once the keys are in the key \
             database (docs/operations.md)",
            store.target()
        ),
        Err(error) => eprintln!(
            "tessera serve: warning: cannot tell whether the records' database still holds \
             subject keys: {error}"
        ),
    }
}

/// Polls the tenants' change marks every `interval`, on a thread of its
/// own (the store is blocking), for as long as the process runs.
fn spawn_change_poller(
    vault: Arc<tessera_vault::Vault>,
    interval: std::time::Duration,
    polls: Arc<PollStats>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("tessera-changes".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                let result = vault.poll_changes();
                polls.record(result.is_ok());
                match result {
                    Ok(changed) if !changed.is_empty() => {
                        tracing::debug!(?changed, "caches dropped for changes made elsewhere");
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(%error, "cannot read the other nodes' changes");
                    }
                }
            }
        })
        .context("cannot start the change poller")?;
    Ok(())
}

/// The change poller's outcomes, for `/metrics`: how far behind the other
/// nodes this one may be is the time since its last good poll.
#[derive(Debug, Default)]
struct PollStats {
    ok: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    /// Unix time in milliseconds of the last poll that read every mark.
    last_ok_ms: std::sync::atomic::AtomicU64,
}

impl PollStats {
    fn record(&self, ok: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if ok {
            self.ok.fetch_add(1, Relaxed);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            self.last_ok_ms.store(now, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
    }

    fn render(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.last_ok_ms.load(Relaxed);
        format!(
            "# HELP tessera_change_polls_total Reads of the other nodes' change marks, by outcome.\n\
             # TYPE tessera_change_polls_total counter\n\
             tessera_change_polls_total{{outcome=\"ok\"}} {}\n\
             tessera_change_polls_total{{outcome=\"failed\"}} {}\n\
             # HELP tessera_change_poll_last_success_timestamp_seconds When this node last read every change mark (Unix time).\n\
             # TYPE tessera_change_poll_last_success_timestamp_seconds gauge\n\
             tessera_change_poll_last_success_timestamp_seconds {}.{:03}\n",
            self.ok.load(Relaxed),
            self.failed.load(Relaxed),
            last / 1000,
            last % 1000
        )
    }
}

/// `--init`: the tenant, and a first operator token printed once.
fn init(state: &AppState, tenant: &str) -> anyhow::Result<()> {
    let actor = Actor::new("operator", "init");
    if !state.vault.tenant_ids()?.iter().any(|t| t == tenant) {
        state
            .vault
            .create_tenant(tenant, TenantSettings::default(), &actor)
            .with_context(|| format!("cannot create tenant {tenant}"))?;
        println!("tessera serve: created tenant {tenant}");
    }
    match state.tokens.bootstrap(tenant, &actor)? {
        Some(new) => println!(
            "tessera serve: operator token {} for tenant {tenant} (shown once; store it now):\n{}",
            new.info.id, new.token
        ),
        None => println!(
            "tessera serve: tenant {tenant} already has an active operator token; none created"
        ),
    }
    Ok(())
}

/// Installs the first-party plugins for every tenant, granted what they
/// declare. Their state lives in the store, scoped by tenant and plugin.
fn install_first_party(state: &AppState) -> anyhow::Result<()> {
    let Some(registry) = &state.plugins else {
        return Ok(());
    };
    for tenant in state.vault.tenant_ids()? {
        let mut labels = Vec::new();
        for (name, bytes, kind, state_quota) in FIRST_PARTY {
            let live = registry
                .install_builtin(&tenant, bytes, kind, state_quota)
                .with_context(|| {
                    format!("cannot install the first-party plugin {name} for tenant {tenant}")
                })?;
            labels.push(live.plugin.info().label());
        }
        let planned = PLANNED_SEGMENTS
            .iter()
            .map(|(name, bytes, quota)| (name, bytes, quota, Kind::Segment))
            .chain(
                PLANNED_STRATEGIES
                    .iter()
                    .map(|(name, bytes, quota)| (name, bytes, quota, Kind::Strategy)),
            );
        for (name, bytes, state_quota, kind) in planned {
            let live = registry
                .install_builtin_granted(&tenant, bytes, kind, planned_grant(*state_quota))
                .with_context(|| {
                    format!("cannot install the first-party plugin {name} for tenant {tenant}")
                })?;
            labels.push(live.plugin.info().label());
        }
        println!(
            "tessera serve: plugins {} installed for tenant {tenant}",
            labels.join(", ")
        );
    }
    Ok(())
}

/// Loads every tenant's approved plugins from the store.
fn load_installed(state: &AppState) -> anyhow::Result<()> {
    let Some(registry) = &state.plugins else {
        return Ok(());
    };
    let (loaded, failed) = registry.load_all()?;
    if loaded + failed > 0 {
        println!(
            "tessera serve: {loaded} installed plugins loaded, {failed} failed (see their status)"
        );
    }
    Ok(())
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM. The signal
/// handlers are registered when this is called, not when it is first polled.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests in flight");
        println!("tessera serve: shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings block of docs/api.md parses, and shows the defaults.
    #[test]
    fn the_documented_settings_are_the_defaults() {
        let page = include_str!("../../../docs/api.md");
        let section = &page[page.find("### Settings").expect("the section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").expect("closed")];
        let documented: ServeConfig = toml::from_str(block).expect("the block parses");
        let defaults = ServeConfig::default();
        assert_eq!(documented.server, defaults.server);
        assert_eq!(documented.limits, defaults.limits);
        assert_eq!(documented.rate_limit, defaults.rate_limit);
        assert_eq!(documented.subject_tokens, defaults.subject_tokens);
        assert_eq!(documented.console, defaults.console);
        assert_eq!(documented.jobs, defaults.jobs);
        assert_eq!(documented.plugins, defaults.plugins);
        assert_eq!(documented.tls, defaults.tls);
        assert_eq!(documented.storage, defaults.storage);
    }

    #[test]
    fn subject_keys_follow_the_storage_backend_unless_set_and_bad_values_are_named() {
        let mut config = ServeConfig::default();
        assert_eq!(
            config.storage.keys(),
            KeysBackend::File,
            "sled: the key file"
        );
        config.storage.backend = StorageBackend::Postgres;
        config.storage.url = Some("postgres://t@db/tessera".into());
        assert_eq!(config.storage.keys(), KeysBackend::Database);
        config
            .apply_env(|name| (name == "TESSERA_STORAGE_KEYS").then(|| "file".to_owned()))
            .unwrap();
        assert_eq!(config.storage.keys(), KeysBackend::File);
        config
            .check()
            .expect("a key file with postgres is allowed (one node)");

        let error = ServeConfig::default()
            .apply_env(|name| (name == "TESSERA_STORAGE_KEYS").then(|| "disk".to_owned()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("TESSERA_STORAGE_KEYS") && error.contains("disk"),
            "{error}"
        );

        let mut sled = ServeConfig::default();
        sled.storage.keys = Some(KeysBackend::Database);
        let error = sled.check().unwrap_err().to_string();
        assert!(error.contains("storage.keys"), "{error}");

        config.storage.poll_ms = Some(10);
        let error = config.check().unwrap_err().to_string();
        assert!(
            error.contains("storage.poll_ms") && error.contains("10"),
            "{error}"
        );
        config.storage.poll_ms = Some(250);
        config.check().expect("in range");
        let parsed: ServeConfig = toml::from_str(
            "[storage]\nbackend = \"postgres\"\nurl = \"postgres://db/t\"\nkeys = \"database\"\n\
             poll_ms = 500\n",
        )
        .unwrap();
        assert_eq!(parsed.storage.keys, Some(KeysBackend::Database));
        assert_eq!(parsed.storage.poll_ms, Some(500));
    }

    #[test]
    fn postgres_storage_comes_from_the_file_or_the_environment_and_needs_a_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            "[storage]\nbackend = \"postgres\"\nurl = \"postgres://t:pw@db/tessera\"\n\
             schema = \"node_a\"\npool_size = 4\n",
        )
        .unwrap();
        let config = ServeConfig::from_file(&path).unwrap();
        config.check().unwrap();
        let options = config.storage.postgres().expect("postgres is selected");
        assert_eq!(options.url, "postgres://t:pw@db/tessera");
        assert_eq!(options.schema.as_deref(), Some("node_a"));
        assert_eq!(options.pool_size, 4);
        assert!(
            !format!("{config:?}").contains("pw@"),
            "the password is not printed"
        );

        let mut config = ServeConfig::default();
        assert!(config.storage.postgres().is_none(), "sled by default");
        config
            .apply_env(|name| (name == "TESSERA_STORAGE_BACKEND").then(|| "postgres".into()))
            .unwrap();
        let error = config.check().unwrap_err().to_string();
        assert!(error.contains("storage.url"), "{error}");
        config
            .apply_env(|name| (name == "TESSERA_STORAGE_URL").then(|| "postgres://db/x".into()))
            .unwrap();
        config.check().unwrap();

        let error = ServeConfig::default()
            .apply_env(|name| (name == "TESSERA_STORAGE_BACKEND").then(|| "mysql".into()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("sled or postgres"), "{error}");
        let mut sled_with_url = ServeConfig::default();
        sled_with_url.storage.url = Some("postgres://db/x".into());
        let error = sled_with_url.check().unwrap_err().to_string();
        assert!(error.contains("only when storage.backend"), "{error}");
    }

    #[test]
    fn storage_ca_file_comes_from_the_file_or_the_environment_and_needs_postgres() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            "[storage]\nbackend = \"postgres\"\nurl = \"postgres://db/tessera\"\n\
             ca_file = \"/etc/tessera/db-ca.pem\"\n",
        )
        .unwrap();
        let mut config = ServeConfig::from_file(&path).unwrap();
        config.check().unwrap();
        let options = config.storage.postgres().expect("postgres is selected");
        assert_eq!(
            options.ca_file.as_deref(),
            Some(Path::new("/etc/tessera/db-ca.pem"))
        );
        config
            .apply_env(|name| (name == "TESSERA_STORAGE_CA_FILE").then(|| "/run/ca.pem".into()))
            .unwrap();
        let options = config.storage.postgres().unwrap();
        assert_eq!(options.ca_file.as_deref(), Some(Path::new("/run/ca.pem")));

        let mut sled = ServeConfig::default();
        sled.storage.ca_file = Some("/run/ca.pem".into());
        let error = sled.check().unwrap_err().to_string();
        assert!(
            error.contains("storage.ca_file") && error.contains("only when storage.backend"),
            "{error}"
        );
    }

    #[test]
    fn a_key_database_of_its_own_is_read_from_the_file_or_the_environment_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            "[storage]\nbackend = \"postgres\"\nurl = \"postgres://t:pw@db/tessera\"\n\
             keys_url = \"postgres://k:keypw@keydb/keys\"\nkeys_schema = \"vault\"\n\
             pool_size = 4\n",
        )
        .unwrap();
        let config = ServeConfig::from_file(&path).unwrap();
        config.check().unwrap();
        let keys = config.storage.key_database().expect("a key database");
        assert_eq!(keys.url, "postgres://k:keypw@keydb/keys");
        assert_eq!(keys.schema.as_deref(), Some("vault"));
        assert_eq!(keys.pool_size, 4);
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("keypw") && !printed.contains("pw@"),
            "no password printed: {printed}"
        );

        // Without keys_url or keys_schema: the records' database.
        let mut config = ServeConfig::default();
        config.storage.backend = StorageBackend::Postgres;
        config.storage.url = Some("postgres://db/x".into());
        config.check().unwrap();
        assert!(config.storage.key_database().is_none());
        // A schema of its own in the records' database.
        config
            .apply_env(|name| (name == "TESSERA_STORAGE_KEYS_SCHEMA").then(|| "keys".into()))
            .unwrap();
        config.check().unwrap();
        let keys = config.storage.key_database().expect("another schema");
        assert_eq!(
            (keys.url.as_str(), keys.schema.as_deref()),
            ("postgres://db/x", Some("keys"))
        );
        config
            .apply_env(|name| {
                (name == "TESSERA_STORAGE_KEYS_URL").then(|| "postgres://keydb/k".into())
            })
            .unwrap();
        config.check().unwrap();
        assert_eq!(
            config.storage.key_database().expect("set").url,
            "postgres://keydb/k"
        );

        // Refused, naming the setting.
        let refused = |change: &dyn Fn(&mut StorageSettings), expected: &str| {
            let mut config = ServeConfig::default();
            config.storage.backend = StorageBackend::Postgres;
            config.storage.url = Some("postgres://db/x".into());
            config.storage.schema = Some("records".into());
            change(&mut config.storage);
            let error = config.check().unwrap_err().to_string();
            assert!(
                error.contains("storage.keys_url") && error.contains(expected),
                "{error}"
            );
        };
        refused(
            &|s| {
                s.backend = StorageBackend::Sled;
                s.url = None;
                s.schema = None;
                s.keys_url = Some("postgres://keydb/k".into());
            },
            "storage.backend",
        );
        refused(
            &|s| {
                s.keys = Some(KeysBackend::File);
                s.keys_url = Some("postgres://keydb/k".into());
            },
            "keys = \"database\"",
        );
        refused(&|s| s.keys_url = Some(" ".into()), "empty");
        refused(
            &|s| {
                s.keys_url = Some("postgres://db/x".into());
                s.keys_schema = Some("records".into());
            },
            "records' own",
        );
        refused(&|s| s.keys_schema = Some("records".into()), "records' own");
    }

    #[test]
    fn file_then_environment_then_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"0.0.0.0:9000\"\ndata_dir = \"/srv/data\"\n\n\
             [limits]\nmax_batch_messages = 100\n\n[rate_limit]\nrequests_per_second = 5\nburst = 10\n",
        )
        .unwrap();
        let mut config = ServeConfig::from_file(&path).unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:9000");
        assert_eq!(config.server.key_dir, PathBuf::from("tessera-keys"));
        assert_eq!(config.limits.max_batch_messages, 100);
        assert_eq!(config.limits.max_body_bytes, 512 * 1024);
        config
            .apply_env(|name| match name {
                "TESSERA_LISTEN" => Some("127.0.0.1:1".into()),
                "TESSERA_RATE_LIMIT_BURST" => Some("20".into()),
                "TESSERA_MAX_BODY_BYTES" => Some("2048".into()),
                "TESSERA_STORE_CACHE_MIB" => Some("64".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.server.store_cache_mib, 64);
        assert_eq!(config.server.listen, "127.0.0.1:1");
        assert_eq!(config.server.data_dir, PathBuf::from("/srv/data"));
        assert_eq!(config.rate_limit.burst, 20);
        assert_eq!(config.rate_limit.requests_per_second, 5);
        assert_eq!(config.limits.max_body_bytes, 2048);
        let error = config
            .apply_env(|name| (name == "TESSERA_RATE_LIMIT_RPS").then(|| "fast".into()))
            .unwrap_err();
        assert!(
            error.to_string().contains("TESSERA_RATE_LIMIT_RPS"),
            "{error}"
        );
    }

    #[test]
    fn the_per_person_limit_of_subject_tokens_is_set_by_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            "[subject_tokens]\nttl_s = 600\nrequests_per_second = 3\nburst = 6\n",
        )
        .unwrap();
        let mut config = ServeConfig::from_file(&path).unwrap();
        assert_eq!(
            (
                config.subject_tokens.requests_per_second,
                config.subject_tokens.burst
            ),
            (3, 6)
        );
        config
            .apply_env(|name| match name {
                "TESSERA_SUBJECT_TOKEN_RPS" => Some("4".into()),
                "TESSERA_SUBJECT_TOKEN_BURST" => Some("8".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            (
                config.subject_tokens.ttl_s,
                config.subject_tokens.requests_per_second,
                config.subject_tokens.burst
            ),
            (600, 4, 8)
        );
    }

    #[test]
    fn tls_settings_come_from_the_file_and_the_environment_and_must_go_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(
            &path,
            "[tls]\ncert_file = \"/etc/t/cert.pem\"\nkey_file = \"/etc/t/key.pem\"\n\
             hsts_max_age_s = 600\n\n[plugins]\noutbound_ca_file = \"/etc/t/ca.pem\"\n",
        )
        .unwrap();
        let mut config = ServeConfig::from_file(&path).unwrap();
        assert!(config.tls.is_on() && !config.tls.required);
        assert_eq!(config.tls.hsts_max_age_s, 600);
        assert_eq!(
            config.plugins.outbound_ca_file,
            Some(PathBuf::from("/etc/t/ca.pem"))
        );
        config
            .apply_env(|name| match name {
                "TESSERA_TLS_CERT_FILE" => Some("/run/cert.pem".into()),
                "TESSERA_TLS_REQUIRED" => Some("true".into()),
                "TESSERA_TLS_CLIENT_CA_FILE" => Some("/run/partners.pem".into()),
                "TESSERA_OUTBOUND_CA_FILE" => Some("/run/ca.pem".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.tls.cert_file, Some(PathBuf::from("/run/cert.pem")));
        assert_eq!(config.tls.key_file, Some(PathBuf::from("/etc/t/key.pem")));
        assert!(config.tls.required);
        assert!(config.tls.ingest_needs_client_certificate());
        assert_eq!(
            config.plugins.outbound_ca_file,
            Some(PathBuf::from("/run/ca.pem"))
        );
        assert_eq!(config.api().check(), Ok(()));
        let error = config
            .apply_env(|name| (name == "TESSERA_TLS_REQUIRED").then(|| "yes".into()))
            .unwrap_err();
        assert!(
            error.to_string().contains("TESSERA_TLS_REQUIRED"),
            "{error}"
        );

        let mut required = ServeConfig::default();
        required.tls.required = true;
        let error = required.api().check().unwrap_err();
        assert!(error.contains("tls.required"), "{error}");
        let mut lone_ca = ServeConfig::default();
        lone_ca.tls.client_ca_file = Some("ca.pem".into());
        let error = lone_ca.api().check().unwrap_err();
        assert!(error.contains("tls.client_ca_file"), "{error}");
        let mut empty = ServeConfig::default();
        empty.tls.cert_file = Some(PathBuf::new());
        empty.tls.key_file = Some("key.pem".into());
        let error = empty.api().check().unwrap_err();
        assert!(error.contains("tls.cert_file is empty"), "{error}");
    }

    #[test]
    fn unknown_settings_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "[limits]\nmax_bodybytes = 1\n").unwrap();
        let error = format!("{:#}", ServeConfig::from_file(&path).unwrap_err());
        assert!(error.contains("max_bodybytes"), "{error}");
    }

    #[test]
    fn a_store_cache_below_the_floor_is_refused_by_name() {
        let mut config = ServeConfig::default();
        config.check().unwrap();
        config.server.store_cache_mib = 4;
        let error = config.check().unwrap_err().to_string();
        assert!(
            error.contains("server.store_cache_mib must be at least 8 (MiB), not 4"),
            "{error}"
        );
    }
}

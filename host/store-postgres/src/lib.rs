//! Tessera's [`Store`] and plugin [`StateStore`] on PostgreSQL, for nodes that
//! share one database; like sled's, it stores the bytes it is given and never decodes them.
//!
//! The trait is synchronous and every caller runs it on a thread that may
//! block (the API's `spawn_blocking` pool, worker threads, the CLI), so this
//! backend uses the synchronous `postgres` client from an r2d2 pool
//! (docs/operations.md says why this choice). That client drives a small
//! runtime of its own per call, which tokio forbids on a thread that drives
//! async tasks: a call that arrives on one anyway is moved off it
//! ([`off_runtime`]) rather than left to panic.
//!
//! The schema is in `migrations/` (see [`migrate`]); concurrency is
//! PostgreSQL's, at READ COMMITTED:
//!
//! - compare-and-set writes (audit head, identity relinks, plugin scope
//!   versions) are single `UPDATE … WHERE old value` statements or run under
//!   a row lock (`FOR UPDATE`), so of concurrent writers exactly one wins;
//! - writes for a subject lock its row (`FOR KEY SHARE` or `FOR NO KEY
//!   UPDATE`), and a purge deletes that row first, so nothing is written for
//!   a subject once its purge has begun;
//! - event source ids are unique per tenant (`ON CONFLICT DO NOTHING`);
//! - jobs are claimed with `FOR UPDATE SKIP LOCKED`;
//! - a transaction that PostgreSQL aborts for a deadlock or a serialisation
//!   failure is run again, up to [`RETRIES`] times.

mod copy;
mod keys;
mod locks;
mod migrate;
mod state;
mod tls;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use r2d2_postgres::postgres::error::SqlState;
use r2d2_postgres::postgres::{self, Client, Transaction};
use tessera_store::{
    AppendOutcome, AuditRecord, ConsentRecord, EventRecord, IdentityHash, JobRecord, NewEvents,
    PurgeReport, Store, StoreError, SubjectAppend, SubjectRecord, TenantRecord, check_id,
};

pub use keys::PgKeyStore;
pub use migrate::{KEY_MIGRATIONS, MIGRATIONS, Migration};

/// How many times a transaction aborted by a deadlock or a serialisation
/// failure is run again before the error is returned.
pub const RETRIES: usize = 8;

/// The default most connections one store keeps open.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// How long a call waits for a free connection, or for the server to answer
/// a new one, before it fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Pool = r2d2_postgres::r2d2::Pool<Manager>;

/// Where and how to open a [`PgStore`].
#[derive(Clone)]
pub struct PgOptions {
    /// A libpq-style URL or key=value string
    /// (`postgres://user:password@host:port/database`).
    pub url: String,
    /// A schema of its own for the store's tables, created if missing (a
    /// lowercase SQL identifier); `None` uses the role's `search_path`.
    pub schema: Option<String>,
    /// The most connections the store keeps open.
    pub pool_size: u32,
    /// A PEM file of the CAs that may sign the server's certificate
    /// (`storage.ca_file`); the URL's `sslrootcert` is the other way to
    /// name one. With either, `sslmode` defaults to `verify-full`.
    pub ca_file: Option<PathBuf>,
}

impl PgOptions {
    /// The options for `url`, in the role's default schema.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            pool_size: DEFAULT_POOL_SIZE,
            ca_file: None,
        }
    }

    /// The same options with the store's tables in `schema`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

// The URL may carry a password.
impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptions")
            .field("target", &describe_url(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The PostgreSQL backend. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Host, port, database and schema, for messages; never the password.
    target: String,
    /// What tells this deployment's tenant locks from another's in the
    /// same database: its schema.
    lock_namespace: String,
    lock_slots: std::sync::Arc<locks::LockSlots>,
    /// What TLS the connections use, for the start-up line.
    tls: Arc<str>,
    /// Set when the server is not on this machine and its certificate is
    /// not checked.
    tls_warning: Option<Arc<str>>,
    /// Calls that found no free connection within the timeout.
    timeouts: Arc<AtomicU64>,
}

/// The connection pool of a [`PgStore`] now, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens (`pool_size`).
    pub max: u32,
    /// Connections open now, busy or idle.
    pub open: u32,
    /// Open connections that no call is using.
    pub idle: u32,
    /// Calls, since the store was opened, that waited the whole timeout
    /// (10 s) for a connection and failed.
    pub timeouts: u64,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` and migrates its schema to this
    /// build's.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(&PgOptions::new(url))
    }

    /// [`PgStore::open`] with a schema of its own and a pool size.
    pub fn open_with(options: &PgOptions) -> Result<Self, StoreError> {
        Self::connect(options, migrate::migrate)
    }

    /// Connects, creates the schema if missing, brings it up to this build
    /// with `migrate` on a first connection, and pools connections.
    fn connect(
        options: &PgOptions,
        migrate: fn(&mut Client) -> Result<(), StoreError>,
    ) -> Result<Self, StoreError> {
        let target = match &options.schema {
            Some(schema) => format!("{} (schema {schema})", describe_url(&options.url)),
            None => describe_url(&options.url),
        };
        let connect_error = |detail: String| StoreError::Connect {
            target: target.clone(),
            detail,
        };
        let (url, tls_params) = tls::split(&options.url).map_err(&connect_error)?;
        let mut config: postgres::Config = url.parse().map_err(|error| {
            connect_error(format!(
                "the URL is not a PostgreSQL connection string ({})",
                tls::error_chain(&error)
            ))
        })?;
        let tls = tls::Tls::new(&tls_params, options.ca_file.as_deref()).map_err(&connect_error)?;
        config.ssl_mode(tls.client_mode());
        if let Some(schema) = &options.schema {
            check_schema_name(schema).map_err(connect_error)?;
            // Every connection of the pool works in the schema.
            let mut settings = config.get_options().unwrap_or_default().to_owned();
            settings.push_str(&format!(" -c search_path={schema}"));
            config.options(settings.trim_start());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tessera");
        }
        // One connection first: a wrong URL or a server that is down is
        // reported now, with the server's own reason.
        let manager = Manager { config, tls };
        let mut first = manager
            .open()
            .map_err(|ConnectError(detail)| connect_error(detail))?;
        if let Some(schema) = &options.schema {
            match first.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")) {
                Ok(()) => {}
                // Another node created it at the same moment.
                Err(error)
                    if error.code() == Some(&SqlState::UNIQUE_VIOLATION)
                        || error.code() == Some(&SqlState::DUPLICATE_SCHEMA) => {}
                Err(error) => return Err(connect_error(error_detail(&error))),
            }
        }
        migrate(&mut first)?;
        drop(first);
        let tls_summary = manager.tls.describe();
        let tls_warning =
            (!manager.tls.checks_certificate() && !all_local(&manager.config)).then(|| {
                format!(
                    "the database server is not on this machine and its certificate is not checked \
                 ({}); set sslmode=verify-full in storage.url and name the server's CA with \
                 storage.ca_file (docs/operations.md, \"TLS to the database\")",
                    manager.tls.describe()
                )
            });
        let pool = Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(CONNECT_TIMEOUT)
            // `has_broken` catches closed connections; a query per checkout
            // would double the round trips of short calls.
            .test_on_check_out(false)
            .build(manager)
            .map_err(|error| connect_error(error.to_string()))?;
        Ok(Self {
            pool,
            target,
            lock_namespace: options.schema.clone().unwrap_or_default(),
            lock_slots: locks::LockSlots::new(options.pool_size.max(1)),
            tls: tls_summary.into(),
            tls_warning: tls_warning.map(Into::into),
            timeouts: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The connection pool's state now (this process's pool only).
    pub fn pool_status(&self) -> PoolStatus {
        let state = self.pool.state();
        PoolStatus {
            max: self.pool.max_size(),
            open: state.connections,
            idle: state.idle_connections,
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }

    /// A connection from the pool, counting the calls that found none.
    fn checkout(
        &self,
    ) -> Result<r2d2_postgres::r2d2::PooledConnection<Manager>, r2d2_postgres::r2d2::Error> {
        self.pool.get().inspect_err(|_| {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        })
    }

    /// What TLS the store's connections use (`sslmode` and what is checked).
    pub fn tls(&self) -> &str {
        &self.tls
    }

    /// A warning when the server is reached over the network and its
    /// certificate is not checked (or TLS is off), for the start-up output.
    pub fn tls_warning(&self) -> Option<&str> {
        self.tls_warning.as_deref()
    }

    /// The database's user, host, port, name and schema (no password), for
    /// messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A connection from the pool.
    fn client(&self) -> Result<r2d2_postgres::r2d2::PooledConnection<Manager>, Unavailable> {
        self.checkout().map_err(|error| {
            Unavailable(format!(
                "no connection to the PostgreSQL database {} ({error})",
                self.target
            ))
        })
    }

    /// Runs `work` in a transaction, committing if it returns `Ok` and
    /// rolling back otherwise; runs it again if PostgreSQL aborted it for a
    /// deadlock or a serialisation failure.
    fn transact<T, E>(
        &self,
        mut work: impl FnMut(&mut Transaction<'_>) -> Result<T, Failure<E>> + Send,
    ) -> Result<T, Failure<E>>
    where
        T: Send,
        E: From<Unavailable> + Send,
    {
        off_runtime(|| {
            let mut client = self
                .client()
                .map_err(|unavailable| Failure::Abort(E::from(unavailable)))?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let result = (|| {
                    let mut tx = client.transaction()?;
                    let value = work(&mut tx)?;
                    tx.commit()?;
                    Ok(value)
                })();
                match result {
                    Err(Failure::Db(error)) if retryable(&error) && attempt <= RETRIES => continue,
                    other => return other,
                }
            }
        })
    }

    /// Runs one statement (or a few reads) on a pooled connection.
    fn with_client<T: Send>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| {
            let mut client = self.client()?;
            work(&mut client).map_err(|error| backend(&error))
        })
    }

    /// [`PgStore::with_client`] for the plugin state methods.
    fn with_state_client<T: Send>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, tessera_state::StateError> {
        off_runtime(|| {
            let mut client = self.client()?;
            work(&mut client).map_err(|error| state::state_error(&error))
        })
    }

    /// [`Store::append_batch`], and with `all_new` [`Store::append_new`]:
    /// `Err` holds the duplicates' positions, and then nothing was stored.
    fn append_core(
        &self,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
        all_new: bool,
    ) -> Result<AppendResult, StoreError> {
        check_id("tenant id", tenant)?;
        for append in appends {
            check_id("subject id", append.subject)?;
            match append.update {
                Some(record) if record.id != append.subject => {
                    return Err(StoreError::SubjectMismatch {
                        subject: append.subject.to_owned(),
                        record: record.id.clone(),
                    });
                }
                None if append.create => {
                    return Err(StoreError::UnknownSubject {
                        tenant: tenant.to_owned(),
                        subject: append.subject.to_owned(),
                    });
                }
                _ => {}
            }
            for event in append.events {
                check_id("event source id", &event.source_id)?;
            }
        }
        if appends.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let plan = BatchPlan::new(appends);
        let result = self.transact(|tx| {
            let (outcomes, duplicates) = plan.write(tx, tenant, appends)?;
            if all_new && !duplicates.is_empty() {
                // Undoes every write of the batch.
                return Err(Failure::Abort(AppendAbort::Duplicates(duplicates)));
            }
            Ok(Ok(outcomes))
        });
        match result {
            Ok(outcome) => Ok(outcome),
            Err(Failure::Abort(AppendAbort::Duplicates(at))) => Ok(Err(at)),
            Err(Failure::Abort(AppendAbort::Store(error))) => Err(error),
            Err(Failure::Db(error)) => Err(backend(&error)),
        }
    }
}

/// The pool's connections: the store's client configuration and TLS.
#[derive(Debug)]
struct Manager {
    config: postgres::Config,
    tls: tls::Tls,
}

impl Manager {
    fn open(&self) -> Result<Client, ConnectError> {
        self.config
            .connect(self.tls.connector.clone())
            .map_err(|error| ConnectError(self.tls.explain(&error)))
    }
}

/// Why a connection could not be opened, in words that name the cause.
#[derive(Debug)]
struct ConnectError(String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

impl r2d2_postgres::r2d2::ManageConnection for Manager {
    type Connection = Client;
    type Error = ConnectError;

    fn connect(&self) -> Result<Client, ConnectError> {
        self.open()
    }

    fn is_valid(&self, client: &mut Client) -> Result<(), ConnectError> {
        client
            .simple_query("")
            .map(|_| ())
            .map_err(|error| ConnectError(tls::error_chain(&error)))
    }

    fn has_broken(&self, client: &mut Client) -> bool {
        client.is_closed()
    }
}

/// Whether every host of the configuration is this machine (loopback or a
/// Unix socket).
fn all_local(config: &postgres::Config) -> bool {
    let local_name = |name: &str| {
        name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    if !config.get_hostaddrs().is_empty() {
        return config.get_hostaddrs().iter().all(|ip| ip.is_loopback());
    }
    !config.get_hosts().is_empty()
        && config.get_hosts().iter().all(|host| match host {
            postgres::config::Host::Tcp(name) => local_name(name),
            #[cfg(unix)]
            postgres::config::Host::Unix(_) => true,
        })
}

/// Runs blocking database work where blocking is allowed. On a thread of a
/// multi-threaded tokio runtime that drives tasks, `block_in_place` hands
/// its tasks to another thread first (elsewhere it just runs `work`); on a
/// current-thread runtime, whose one thread cannot be given up, the work
/// runs on a thread of its own. Outside any runtime it runs as it is.
fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::CurrentThread) => std::thread::scope(|scope| {
            scope
                .spawn(work)
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
        Ok(_) => tokio::task::block_in_place(work),
        Err(_) => work(),
    }
}

/// What `append_core` did: the outcomes, or the positions of the events that
/// were not new.
type AppendResult = Result<Vec<AppendOutcome>, Vec<(usize, usize)>>;

/// What a batch wrote: one outcome per append, and the (append, event)
/// positions of the events skipped as duplicates.
type Written = (Vec<AppendOutcome>, Vec<(usize, usize)>);

/// Why a transaction stops: the database failed, or the work refused.
#[derive(Debug)]
enum Failure<E> {
    Db(postgres::Error),
    Abort(E),
}

impl<E> From<postgres::Error> for Failure<E> {
    fn from(error: postgres::Error) -> Self {
        Failure::Db(error)
    }
}

/// A store method's failure.
type Fail = Failure<StoreError>;

impl Fail {
    fn into_store(self) -> StoreError {
        match self {
            Failure::Db(error) => backend(&error),
            Failure::Abort(error) => error,
        }
    }
}

impl From<StoreError> for Fail {
    fn from(error: StoreError) -> Self {
        Failure::Abort(error)
    }
}

/// No connection could be had from the pool (the server is down or every
/// connection is busy for longer than the timeout).
#[derive(Debug)]
struct Unavailable(String);

impl From<Unavailable> for StoreError {
    fn from(Unavailable(detail): Unavailable) -> Self {
        StoreError::Backend { detail }
    }
}

impl From<Unavailable> for tessera_state::StateError {
    fn from(Unavailable(detail): Unavailable) -> Self {
        tessera_state::StateError::Backend(detail)
    }
}

impl From<Unavailable> for AppendAbort {
    fn from(unavailable: Unavailable) -> Self {
        AppendAbort::Store(unavailable.into())
    }
}

/// Why `append_core` undoes its transaction.
#[derive(Debug)]
enum AppendAbort {
    Store(StoreError),
    Duplicates(Vec<(usize, usize)>),
}

impl From<StoreError> for AppendAbort {
    fn from(error: StoreError) -> Self {
        AppendAbort::Store(error)
    }
}

fn abort<E: From<StoreError>>(error: StoreError) -> Failure<E> {
    Failure::Abort(E::from(error))
}

/// Whether PostgreSQL aborted a transaction that may succeed if run again.
fn retryable(error: &postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// The server's message (and its detail) or the client's.
fn error_detail(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => tls::error_chain(error),
    }
}

fn backend(error: &postgres::Error) -> StoreError {
    StoreError::Backend {
        detail: format!("PostgreSQL: {}", error_detail(error)),
    }
}

fn corrupt(family: &'static str, detail: &str) -> StoreError {
    StoreError::Corrupt {
        family,
        detail: detail.to_owned(),
    }
}

/// Host, port, database and user of a connection string, never its password.
fn describe_url(url: &str) -> String {
    let url = tls::split(url).map_or_else(|_| url.to_owned(), |(rest, _)| rest);
    let Ok(config) = url.parse::<postgres::Config>() else {
        return "(an unparsable connection string)".to_owned();
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
            postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
        })
        .collect();
    format!(
        "{}@{}/{}",
        config.get_user().unwrap_or("(default user)"),
        if hosts.is_empty() {
            "(default host)".to_owned()
        } else {
            hosts.join(",")
        },
        config.get_dbname().unwrap_or("(default database)")
    )
}

/// A schema name safe to put in SQL unquoted.
fn check_schema_name(schema: &str) -> Result<(), String> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 {
        Ok(())
    } else {
        Err(format!(
            "schema name {schema:?} must be 1 to 63 lowercase letters, digits or '_', \
             not starting with a digit"
        ))
    }
}

fn utf8(bytes: Vec<u8>, family: &'static str) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| corrupt(family, "id is not UTF-8"))
}

fn hash_of(bytes: &[u8], family: &'static str) -> Result<IdentityHash, StoreError> {
    IdentityHash::try_from(bytes).map_err(|_| corrupt(family, "hash is not 32 bytes"))
}

/// The least byte string greater than every string that starts with
/// `prefix`, or `None` if there is none (all bytes 0xff, or empty).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A row limit as SQL's bigint.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// What a batch writes, worked out before its transaction (which may run
/// more than once).
struct BatchPlan<'a> {
    /// Every subject of the batch, once.
    subjects: Vec<&'a [u8]>,
    /// Every hash the batch links, once.
    hashes: Vec<&'a [u8]>,
    /// The first event of each source id in the batch, by (append, event);
    /// later ones are duplicates whatever the database holds.
    first_events: Vec<(usize, usize)>,
    in_batch_duplicates: Vec<(usize, usize)>,
    /// The record each subject ends the batch with: its last `update`.
    records: BTreeMap<&'a str, &'a SubjectRecord>,
}

impl<'a> BatchPlan<'a> {
    fn new(appends: &'a [SubjectAppend<'a>]) -> Self {
        let mut subjects = Vec::new();
        let mut seen_subjects = HashSet::new();
        let mut hashes = Vec::new();
        let mut seen_hashes = HashSet::new();
        let mut sources = HashSet::new();
        let mut first_events = Vec::new();
        let mut in_batch_duplicates = Vec::new();
        let mut records = BTreeMap::new();
        for (a, append) in appends.iter().enumerate() {
            if seen_subjects.insert(append.subject) {
                subjects.push(append.subject.as_bytes());
            }
            for hash in append.links {
                if seen_hashes.insert(&hash[..]) {
                    hashes.push(&hash[..]);
                }
            }
            for (e, event) in append.events.iter().enumerate() {
                if sources.insert(event.source_id.as_str()) {
                    first_events.push((a, e));
                } else {
                    in_batch_duplicates.push((a, e));
                }
            }
            if let Some(record) = append.update {
                records.insert(append.subject, record);
            }
        }
        Self {
            subjects,
            hashes,
            first_events,
            in_batch_duplicates,
            records,
        }
    }

    /// Checks the batch against the database and writes it; returns the
    /// outcomes and the positions of the duplicate events, which were
    /// skipped.
    fn write(
        &self,
        tx: &mut Transaction<'_>,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
    ) -> Result<Written, Failure<AppendAbort>> {
        let t = tenant.as_bytes();
        if appends.iter().any(|append| append.create) {
            let found = tx.query_opt("SELECT 1 FROM tenants WHERE tenant = $1", &[&t])?;
            if found.is_none() {
                return Err(abort(StoreError::UnknownTenant {
                    tenant: tenant.to_owned(),
                }));
            }
        }
        // Locked until the end: a purge that deletes one of them waits, and
        // one that deleted it first leaves it out.
        let mut exists: HashSet<Vec<u8>> = tx
            .query(
                "SELECT subject FROM subjects WHERE tenant = $1 AND subject = ANY($2) \
                 ORDER BY subject FOR NO KEY UPDATE",
                &[&t, &self.subjects],
            )?
            .into_iter()
            .map(|row| row.get(0))
            .collect();
        let mut linked: HashMap<Vec<u8>, String> = HashMap::new();
        for row in tx.query(
            "SELECT hash, subject FROM identities WHERE tenant = $1 AND hash = ANY($2)",
            &[&t, &self.hashes],
        )? {
            let subject = utf8(row.get(1), "identity").map_err(abort)?;
            linked.insert(row.get(0), subject);
        }

        // The batch in order, as one writer would see it.
        let mut creates: Vec<&str> = Vec::new();
        let mut new_links: Vec<(&[u8], &str)> = Vec::new();
        for append in appends {
            let subject = append.subject;
            let present = exists.contains(subject.as_bytes());
            if append.create && present {
                return Err(abort(StoreError::SubjectExists {
                    tenant: tenant.to_owned(),
                    subject: subject.to_owned(),
                }));
            }
            if !append.create && !present {
                return Err(abort(StoreError::UnknownSubject {
                    tenant: tenant.to_owned(),
                    subject: subject.to_owned(),
                }));
            }
            if append.create {
                exists.insert(subject.as_bytes().to_vec());
                creates.push(subject);
            }
            for hash in append.links {
                match linked.get(&hash[..]) {
                    Some(owner) if owner == subject => {}
                    Some(owner) => {
                        return Err(abort(StoreError::IdentityLinked {
                            tenant: tenant.to_owned(),
                            subject: subject.to_owned(),
                            linked: owner.clone(),
                        }));
                    }
                    None => {
                        linked.insert(hash.to_vec(), subject.to_owned());
                        new_links.push((&hash[..], subject));
                    }
                }
            }
        }

        if !creates.is_empty() {
            let (ids, keys, times, data) = self.record_columns(&creates);
            let created: HashSet<Vec<u8>> = tx
                .query(
                    "INSERT INTO subjects (tenant, subject, wrapped_key, created_at_ms, data) \
                     SELECT $1, s, k, c, d FROM unnest($2::bytea[], $3::bytea[], $4::bigint[], \
                     $5::bytea[]) AS u(s, k, c, d) \
                     ON CONFLICT (tenant, subject) DO NOTHING RETURNING subject",
                    &[&t, &ids, &keys, &times, &data],
                )?
                .into_iter()
                .map(|row| row.get(0))
                .collect();
            if let Some(raced) = creates.iter().find(|s| !created.contains(s.as_bytes())) {
                return Err(abort(StoreError::SubjectExists {
                    tenant: tenant.to_owned(),
                    subject: (*raced).to_owned(),
                }));
            }
        }

        if !new_links.is_empty() {
            let hashes: Vec<&[u8]> = new_links.iter().map(|(hash, _)| *hash).collect();
            let owners: Vec<&[u8]> = new_links.iter().map(|(_, s)| s.as_bytes()).collect();
            let inserted: HashSet<Vec<u8>> = tx
                .query(
                    "INSERT INTO identities (tenant, hash, subject) \
                     SELECT $1, h, s FROM unnest($2::bytea[], $3::bytea[]) AS u(h, s) \
                     ON CONFLICT (tenant, hash) DO NOTHING RETURNING hash",
                    &[&t, &hashes, &owners],
                )?
                .into_iter()
                .map(|row| row.get(0))
                .collect();
            // Linked by another writer since the read above.
            for (hash, subject) in new_links.iter().filter(|(h, _)| !inserted.contains(*h)) {
                let owner: Option<Vec<u8>> = tx
                    .query_opt(
                        "SELECT subject FROM identities WHERE tenant = $1 AND hash = $2",
                        &[&t, hash],
                    )?
                    .map(|row| row.get(0));
                let owner = utf8(owner.unwrap_or_default(), "identity").map_err(abort)?;
                if owner != *subject {
                    return Err(abort(StoreError::IdentityLinked {
                        tenant: tenant.to_owned(),
                        subject: (*subject).to_owned(),
                        linked: owner,
                    }));
                }
            }
        }

        let mut outcomes = vec![AppendOutcome::default(); appends.len()];
        let mut duplicates = self.in_batch_duplicates.clone();
        if !self.first_events.is_empty() {
            let mut subjects = Vec::with_capacity(self.first_events.len());
            let mut times = Vec::with_capacity(self.first_events.len());
            let mut sources = Vec::with_capacity(self.first_events.len());
            let mut data = Vec::with_capacity(self.first_events.len());
            for &(a, e) in &self.first_events {
                let event = &appends[a].events[e];
                subjects.push(appends[a].subject.as_bytes());
                times.push(event.at_ms);
                sources.push(event.source_id.as_bytes());
                data.push(event.data.as_slice());
            }
            // unnest yields the rows in array order, so `seq` grows in
            // append order.
            let inserted: HashSet<Vec<u8>> = tx
                .query(
                    "INSERT INTO events (tenant, subject, at_ms, seq, source_id, data) \
                     SELECT $1, s, a, nextval('append_order'), src, d \
                     FROM unnest($2::bytea[], $3::bigint[], $4::bytea[], $5::bytea[]) \
                     AS u(s, a, src, d) \
                     ON CONFLICT (tenant, source_id) DO NOTHING RETURNING source_id",
                    &[&t, &subjects, &times, &sources, &data],
                )?
                .into_iter()
                .map(|row| row.get(0))
                .collect();
            for (&(a, e), source) in self.first_events.iter().zip(&sources) {
                if !inserted.contains(*source) {
                    duplicates.push((a, e));
                }
            }
        }
        duplicates.sort_unstable();
        for (a, append) in appends.iter().enumerate() {
            let skipped = duplicates.iter().filter(|(d, _)| *d == a).count() as u64;
            outcomes[a] = AppendOutcome {
                inserted: append.events.len() as u64 - skipped,
                duplicates: skipped,
            };
        }

        let consents: Vec<(&[u8], &ConsentRecord)> = appends
            .iter()
            .flat_map(|append| {
                append
                    .consents
                    .iter()
                    .map(move |consent| (append.subject.as_bytes(), consent))
            })
            .collect();
        if !consents.is_empty() {
            let subjects: Vec<&[u8]> = consents.iter().map(|(s, _)| *s).collect();
            let times: Vec<i64> = consents.iter().map(|(_, c)| c.at_ms).collect();
            let data: Vec<&[u8]> = consents.iter().map(|(_, c)| c.data.as_slice()).collect();
            tx.execute(
                "INSERT INTO consents (tenant, subject, at_ms, seq, data) \
                 SELECT $1, s, a, nextval('append_order'), d \
                 FROM unnest($2::bytea[], $3::bigint[], $4::bytea[]) AS u(s, a, d)",
                &[&t, &subjects, &times, &data],
            )?;
        }

        let updated: Vec<&str> = self
            .records
            .keys()
            .copied()
            .filter(|subject| !creates.contains(subject))
            .collect();
        if !updated.is_empty() {
            let (ids, keys, times, data) = self.record_columns(&updated);
            tx.execute(
                "UPDATE subjects SET wrapped_key = u.k, created_at_ms = u.c, data = u.d \
                 FROM unnest($2::bytea[], $3::bytea[], $4::bigint[], $5::bytea[]) \
                 AS u(s, k, c, d) WHERE subjects.tenant = $1 AND subjects.subject = u.s",
                &[&t, &ids, &keys, &times, &data],
            )?;
        }
        Ok((outcomes, duplicates))
    }

    /// The final records of `subjects`, as columns.
    #[allow(clippy::type_complexity)]
    fn record_columns(
        &self,
        subjects: &[&str],
    ) -> (Vec<&'a [u8]>, Vec<&'a [u8]>, Vec<i64>, Vec<&'a [u8]>) {
        let records: Vec<&SubjectRecord> = subjects
            .iter()
            .filter_map(|subject| self.records.get(subject).copied())
            .collect();
        (
            records.iter().map(|r| r.id.as_bytes()).collect(),
            records.iter().map(|r| r.wrapped_key.as_slice()).collect(),
            records.iter().map(|r| r.created_at_ms).collect(),
            records.iter().map(|r| r.data.as_slice()).collect(),
        )
    }
}

/// A subject record from a `subjects` row (subject, wrapped_key,
/// created_at_ms, data).
fn subject_row(row: &postgres::Row) -> Result<SubjectRecord, StoreError> {
    Ok(SubjectRecord {
        id: utf8(row.get(0), "subject")?,
        wrapped_key: row.get(1),
        created_at_ms: row.get(2),
        data: row.get(3),
    })
}

impl Store for PgStore {
    fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        check_id("tenant id", &tenant.id)?;
        self.with_client(|c| {
            c.execute(
                "INSERT INTO tenants (tenant, wrapped_key, settings) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant) DO UPDATE \
                 SET wrapped_key = excluded.wrapped_key, settings = excluded.settings",
                &[&tenant.id.as_bytes(), &tenant.wrapped_key, &tenant.settings],
            )
        })?;
        Ok(())
    }

    fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        check_id("tenant id", id)?;
        let row = self.with_client(|c| {
            c.query_opt(
                "SELECT wrapped_key, settings FROM tenants WHERE tenant = $1",
                &[&id.as_bytes()],
            )
        })?;
        Ok(row.map(|row| TenantRecord {
            id: id.to_owned(),
            wrapped_key: row.get(0),
            settings: row.get(1),
        }))
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let rows = self.with_client(|c| {
            c.query(
                "SELECT tenant, wrapped_key, settings FROM tenants ORDER BY tenant",
                &[],
            )
        })?;
        rows.iter()
            .map(|row| {
                Ok(TenantRecord {
                    id: utf8(row.get(0), "tenant")?,
                    wrapped_key: row.get(1),
                    settings: row.get(2),
                })
            })
            .collect()
    }

    fn put_subject(&self, tenant: &str, subject: &SubjectRecord) -> Result<(), StoreError> {
        self.put_subjects(tenant, std::slice::from_ref(subject))
    }

    fn put_subjects(&self, tenant: &str, subjects: &[SubjectRecord]) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        // The last record of each id wins, as if written in order.
        let mut last: BTreeMap<&str, &SubjectRecord> = BTreeMap::new();
        for subject in subjects {
            check_id("subject id", &subject.id)?;
            last.insert(&subject.id, subject);
        }
        let ids: Vec<&[u8]> = last.keys().map(|id| id.as_bytes()).collect();
        let keys: Vec<&[u8]> = last.values().map(|s| s.wrapped_key.as_slice()).collect();
        let times: Vec<i64> = last.values().map(|s| s.created_at_ms).collect();
        let data: Vec<&[u8]> = last.values().map(|s| s.data.as_slice()).collect();
        let t = tenant.as_bytes();
        self.transact(|tx| {
            if tx
                .query_opt("SELECT 1 FROM tenants WHERE tenant = $1", &[&t])?
                .is_none()
            {
                return Err(abort(StoreError::UnknownTenant {
                    tenant: tenant.to_owned(),
                }));
            }
            tx.execute(
                "INSERT INTO subjects (tenant, subject, wrapped_key, created_at_ms, data) \
                 SELECT $1, s, k, c, d FROM unnest($2::bytea[], $3::bytea[], $4::bigint[], \
                 $5::bytea[]) AS u(s, k, c, d) \
                 ON CONFLICT (tenant, subject) DO UPDATE SET wrapped_key = excluded.wrapped_key, \
                 created_at_ms = excluded.created_at_ms, data = excluded.data",
                &[&t, &ids, &keys, &times, &data],
            )?;
            Ok(())
        })
        .map_err(Fail::into_store)
    }

    fn subject(&self, tenant: &str, id: &str) -> Result<Option<SubjectRecord>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", id)?;
        let row = self.with_client(|c| {
            c.query_opt(
                "SELECT subject, wrapped_key, created_at_ms, data FROM subjects \
                 WHERE tenant = $1 AND subject = $2",
                &[&tenant.as_bytes(), &id.as_bytes()],
            )
        })?;
        row.as_ref().map(subject_row).transpose()
    }

    fn subjects(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SubjectRecord>, StoreError> {
        check_id("tenant id", tenant)?;
        let after = after.map(str::as_bytes);
        let rows = self.with_client(|c| {
            c.query(
                "SELECT subject, wrapped_key, created_at_ms, data FROM subjects \
                 WHERE tenant = $1 AND ($2::bytea IS NULL OR subject > $2) \
                 ORDER BY subject LIMIT $3",
                &[&tenant.as_bytes(), &after, &sql_limit(limit)],
            )
        })?;
        rows.iter().map(subject_row).collect()
    }

    fn subjects_with_key_refs(
        &self,
        tenant: &str,
        refs: &[Vec<u8>],
    ) -> Result<Vec<String>, StoreError> {
        check_id("tenant id", tenant)?;
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.with_client(|c| {
            // The index subjects_by_key (migration 3).
            c.query(
                "SELECT subject FROM subjects WHERE tenant = $1 AND wrapped_key = ANY($2) \
                 ORDER BY subject",
                &[&tenant.as_bytes(), &refs],
            )
        })?;
        rows.iter().map(|row| utf8(row.get(0), "subject")).collect()
    }

    fn link_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
        subject: &str,
    ) -> Result<Option<String>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        let (t, s) = (tenant.as_bytes(), subject.as_bytes());
        self.transact(|tx| {
            require_subject(tx, tenant, subject)?;
            let inserted = tx.execute(
                "INSERT INTO identities (tenant, hash, subject) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, hash) DO NOTHING",
                &[&t, &&hash[..], &s],
            )?;
            if inserted == 1 {
                return Ok(None);
            }
            // The conflicting row is committed (ON CONFLICT waited for it);
            // it may have been unlinked since: then the next attempt links.
            let owner = tx.query_opt(
                "SELECT subject FROM identities WHERE tenant = $1 AND hash = $2",
                &[&t, &&hash[..]],
            )?;
            match owner {
                Some(row) => Ok(Some(utf8(row.get(0), "identity")?)),
                None => Err(Failure::Abort(StoreError::Backend {
                    detail: "an identity link changed during the call; try again".into(),
                })),
            }
        })
        .map_err(Fail::into_store)
    }

    fn find_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
    ) -> Result<Option<String>, StoreError> {
        check_id("tenant id", tenant)?;
        let row = self.with_client(|c| {
            c.query_opt(
                "SELECT subject FROM identities WHERE tenant = $1 AND hash = $2",
                &[&tenant.as_bytes(), &&hash[..]],
            )
        })?;
        row.map(|row| utf8(row.get(0), "identity")).transpose()
    }

    fn unlink_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
    ) -> Result<Option<String>, StoreError> {
        check_id("tenant id", tenant)?;
        let row = self.with_client(|c| {
            c.query_opt(
                "DELETE FROM identities WHERE tenant = $1 AND hash = $2 RETURNING subject",
                &[&tenant.as_bytes(), &&hash[..]],
            )
        })?;
        row.map(|row| utf8(row.get(0), "identity")).transpose()
    }

    fn identities_of(&self, tenant: &str, subject: &str) -> Result<Vec<IdentityHash>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        let rows = self.with_client(|c| {
            c.query(
                "SELECT hash FROM identities WHERE tenant = $1 AND subject = $2 ORDER BY hash",
                &[&tenant.as_bytes(), &subject.as_bytes()],
            )
        })?;
        rows.iter()
            .map(|row| hash_of(row.get(0), "identity"))
            .collect()
    }

    fn relink_identity(
        &self,
        tenant: &str,
        hash: IdentityHash,
        from: &str,
        to: &str,
    ) -> Result<bool, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", from)?;
        check_id("subject id", to)?;
        let t = tenant.as_bytes();
        self.transact(|tx| {
            require_subject(tx, tenant, to)?;
            // Compare-and-set: of concurrent relinks from `from`, the first
            // to commit changes the row and the others find it changed.
            let moved = tx.execute(
                "UPDATE identities SET subject = $4 \
                 WHERE tenant = $1 AND hash = $2 AND subject = $3",
                &[&t, &&hash[..], &from.as_bytes(), &to.as_bytes()],
            )?;
            Ok(moved == 1)
        })
        .map_err(Fail::into_store)
    }

    fn suppress(&self, tenant: &str, hash: IdentityHash, entry: &[u8]) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        let written = self.with_client(|c| {
            c.execute(
                "INSERT INTO suppressions (tenant, hash, entry) \
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM tenants WHERE tenant = $1) \
                 ON CONFLICT (tenant, hash) DO UPDATE SET entry = excluded.entry",
                &[&tenant.as_bytes(), &&hash[..], &entry],
            )
        })?;
        if written == 0 {
            return Err(StoreError::UnknownTenant {
                tenant: tenant.to_owned(),
            });
        }
        Ok(())
    }

    fn suppression(&self, tenant: &str, hash: IdentityHash) -> Result<Option<Vec<u8>>, StoreError> {
        check_id("tenant id", tenant)?;
        let row = self.with_client(|c| {
            c.query_opt(
                "SELECT entry FROM suppressions WHERE tenant = $1 AND hash = $2",
                &[&tenant.as_bytes(), &&hash[..]],
            )
        })?;
        Ok(row.map(|row| row.get(0)))
    }

    fn unsuppress(&self, tenant: &str, hash: IdentityHash) -> Result<bool, StoreError> {
        check_id("tenant id", tenant)?;
        let removed = self.with_client(|c| {
            c.execute(
                "DELETE FROM suppressions WHERE tenant = $1 AND hash = $2",
                &[&tenant.as_bytes(), &&hash[..]],
            )
        })?;
        Ok(removed == 1)
    }

    fn suppressions(&self, tenant: &str) -> Result<usize, StoreError> {
        check_id("tenant id", tenant)?;
        let row = self.with_client(|c| {
            c.query_one(
                "SELECT count(*) FROM suppressions WHERE tenant = $1",
                &[&tenant.as_bytes()],
            )
        })?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX))
    }

    fn suppression_entries(
        &self,
        tenant: &str,
        after: Option<&IdentityHash>,
        limit: usize,
    ) -> Result<Vec<(IdentityHash, Vec<u8>)>, StoreError> {
        check_id("tenant id", tenant)?;
        let after = after.map(|hash| &hash[..]);
        let rows = self.with_client(|c| {
            c.query(
                "SELECT hash, entry FROM suppressions \
                 WHERE tenant = $1 AND ($2::bytea IS NULL OR hash > $2) \
                 ORDER BY hash LIMIT $3",
                &[&tenant.as_bytes(), &after, &sql_limit(limit)],
            )
        })?;
        rows.iter()
            .map(|row| Ok((hash_of(row.get(0), "suppression")?, row.get(1))))
            .collect()
    }

    fn append_batch(
        &self,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        Ok(match self.append_core(tenant, appends, false)? {
            Ok(outcomes) => outcomes,
            // Without `all_new` duplicates are counted, not refused.
            Err(_) => unreachable!("append_core refuses duplicates only when asked"),
        })
    }

    fn append_new(
        &self,
        tenant: &str,
        appends: &[SubjectAppend<'_>],
    ) -> Result<NewEvents, StoreError> {
        Ok(match self.append_core(tenant, appends, true)? {
            Ok(_) => NewEvents::Stored,
            Err(at) => NewEvents::Duplicates(at),
        })
    }

    fn has_event_source(&self, tenant: &str, source_id: &str) -> Result<bool, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("source id", source_id)?;
        let row = self.with_client(|c| {
            c.query_opt(
                "SELECT 1 FROM events WHERE tenant = $1 AND source_id = $2",
                &[&tenant.as_bytes(), &source_id.as_bytes()],
            )
        })?;
        Ok(row.is_some())
    }

    fn events(
        &self,
        tenant: &str,
        subject: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let rows = self.with_client(|c| {
            c.query(
                "SELECT source_id, at_ms, data FROM events \
                 WHERE tenant = $1 AND subject = $2 AND at_ms >= $3 AND at_ms < $4 \
                 ORDER BY at_ms, seq",
                &[&tenant.as_bytes(), &subject.as_bytes(), &from_ms, &to_ms],
            )
        })?;
        rows.iter()
            .map(|row| {
                Ok(EventRecord {
                    source_id: utf8(row.get(0), "event")?,
                    at_ms: row.get(1),
                    data: row.get(2),
                })
            })
            .collect()
    }

    fn delete_events_before(
        &self,
        tenant: &str,
        subject: &str,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        // The source id is part of the row: it goes with it.
        self.with_client(|c| {
            c.execute(
                "DELETE FROM events WHERE tenant = $1 AND subject = $2 AND at_ms < $3",
                &[&tenant.as_bytes(), &subject.as_bytes(), &before_ms],
            )
        })
    }

    fn append_consent(
        &self,
        tenant: &str,
        subject: &str,
        consent: &ConsentRecord,
    ) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        self.transact(|tx| {
            require_subject(tx, tenant, subject)?;
            tx.execute(
                "INSERT INTO consents (tenant, subject, at_ms, seq, data) \
                 VALUES ($1, $2, $3, nextval('append_order'), $4)",
                &[
                    &tenant.as_bytes(),
                    &subject.as_bytes(),
                    &consent.at_ms,
                    &consent.data,
                ],
            )?;
            Ok(())
        })
        .map_err(Fail::into_store)
    }

    fn consents(&self, tenant: &str, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        let rows = self.with_client(|c| {
            c.query(
                "SELECT at_ms, data FROM consents WHERE tenant = $1 AND subject = $2 \
                 ORDER BY at_ms, seq",
                &[&tenant.as_bytes(), &subject.as_bytes()],
            )
        })?;
        Ok(rows
            .iter()
            .map(|row| ConsentRecord {
                at_ms: row.get(0),
                data: row.get(1),
            })
            .collect())
    }

    fn append_audit(&self, tenant: &str, seq: u64, entry: &[u8]) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        let expected = seq.checked_sub(1).ok_or(StoreError::InvalidAuditSeq)?;
        let t = tenant.as_bytes();
        let conflict = |tx: &mut Transaction<'_>| -> Result<(), Fail> {
            let last = audit_head(tx, t)?;
            Err(Failure::Abort(StoreError::AuditConflict {
                tenant: tenant.to_owned(),
                expected,
                last,
            }))
        };
        self.transact(|tx| {
            // A head no bigint can hold is never this store's head.
            let Ok(seq) = i64::try_from(seq) else {
                return conflict(tx);
            };
            // Compare-and-set on the head: of concurrent appenders numbered
            // for the same head, the first to commit moves it and the others
            // find it moved (PostgreSQL re-checks the WHERE after the wait).
            let moved = if seq == 1 {
                tx.execute(
                    "INSERT INTO audit_heads (tenant, head) VALUES ($1, 1) \
                     ON CONFLICT (tenant) DO NOTHING",
                    &[&t],
                )?
            } else {
                tx.execute(
                    "UPDATE audit_heads SET head = $2::bigint \
                     WHERE tenant = $1 AND head = $2::bigint - 1",
                    &[&t, &seq],
                )?
            };
            if moved != 1 {
                return conflict(tx);
            }
            // The unique key (tenant, seq) is the last guard: an entry with
            // this number must never be replaced.
            tx.execute(
                "INSERT INTO audit (tenant, seq, entry) VALUES ($1, $2, $3)",
                &[&t, &seq, &entry],
            )?;
            Ok(())
        })
        .or_else(|fail| match fail {
            Failure::Db(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                let last = self.audit_head(tenant)?;
                Err(StoreError::AuditConflict {
                    tenant: tenant.to_owned(),
                    expected,
                    last,
                })
            }
            other => Err(other.into_store()),
        })
    }

    fn audit_head(&self, tenant: &str) -> Result<u64, StoreError> {
        check_id("tenant id", tenant)?;
        off_runtime(|| {
            let mut client = self.client()?;
            audit_head(&mut *client, tenant.as_bytes()).map_err(Fail::into_store)
        })
    }

    fn audit(
        &self,
        tenant: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        check_id("tenant id", tenant)?;
        let Ok(from) = i64::try_from(from_seq) else {
            return Ok(Vec::new());
        };
        let rows = self.with_client(|c| {
            c.query(
                "SELECT seq, entry FROM audit WHERE tenant = $1 AND seq >= $2 \
                 ORDER BY seq LIMIT $3",
                &[&tenant.as_bytes(), &from, &sql_limit(limit)],
            )
        })?;
        rows.iter()
            .map(|row| {
                let seq = u64::try_from(row.get::<_, i64>(0))
                    .map_err(|_| corrupt("audit", "sequence number is negative"))?;
                Ok(AuditRecord {
                    seq,
                    data: row.get(1),
                })
            })
            .collect()
    }

    fn put_document(
        &self,
        tenant: &str,
        kind: &str,
        id: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        self.put_documents(tenant, &[(kind, id, value)])
    }

    fn put_documents(
        &self,
        tenant: &str,
        documents: &[(&str, &str, &[u8])],
    ) -> Result<(), StoreError> {
        check_id("tenant id", tenant)?;
        let mut last: BTreeMap<(&str, &str), &[u8]> = BTreeMap::new();
        for (kind, id, value) in documents {
            check_id("document kind", kind)?;
            check_id("document id", id)?;
            last.insert((kind, id), value);
        }
        let kinds: Vec<&[u8]> = last.keys().map(|(kind, _)| kind.as_bytes()).collect();
        let ids: Vec<&[u8]> = last.keys().map(|(_, id)| id.as_bytes()).collect();
        let values: Vec<&[u8]> = last.values().copied().collect();
        let t = tenant.as_bytes();
        self.transact(|tx| {
            if tx
                .query_opt("SELECT 1 FROM tenants WHERE tenant = $1", &[&t])?
                .is_none()
            {
                return Err(abort(StoreError::UnknownTenant {
                    tenant: tenant.to_owned(),
                }));
            }
            tx.execute(
                "INSERT INTO documents (tenant, kind, id, value) \
                 SELECT $1, k, i, v FROM unnest($2::bytea[], $3::bytea[], $4::bytea[]) \
                 AS u(k, i, v) \
                 ON CONFLICT (tenant, kind, id) DO UPDATE SET value = excluded.value",
                &[&t, &kinds, &ids, &values],
            )?;
            Ok(())
        })
        .map_err(Fail::into_store)
    }

    fn document(&self, tenant: &str, kind: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("document kind", kind)?;
        check_id("document id", id)?;
        let row = self.with_client(|c| {
            c.query_opt(
                "SELECT value FROM documents WHERE tenant = $1 AND kind = $2 AND id = $3",
                &[&tenant.as_bytes(), &kind.as_bytes(), &id.as_bytes()],
            )
        })?;
        Ok(row.map(|row| row.get(0)))
    }

    fn documents(
        &self,
        tenant: &str,
        kind: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.documents_under(tenant, kind, "", after, limit)
    }

    fn documents_under(
        &self,
        tenant: &str,
        kind: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("document kind", kind)?;
        // From after `after` if it is under the prefix, else from the
        // prefix's first id; up to the first id past the prefix.
        let after = after
            .filter(|after| after.starts_with(prefix))
            .map(str::as_bytes);
        let end = prefix_end(prefix.as_bytes());
        let rows = self.with_client(|c| {
            c.query(
                "SELECT id, value FROM documents WHERE tenant = $1 AND kind = $2 \
                 AND id >= $3 AND ($4::bytea IS NULL OR id < $4) \
                 AND ($5::bytea IS NULL OR id > $5) ORDER BY id LIMIT $6",
                &[
                    &tenant.as_bytes(),
                    &kind.as_bytes(),
                    &prefix.as_bytes(),
                    &end,
                    &after,
                    &sql_limit(limit),
                ],
            )
        })?;
        rows.iter()
            .map(|row| Ok((utf8(row.get(0), "document")?, row.get(1))))
            .collect()
    }

    fn delete_document(&self, tenant: &str, kind: &str, id: &str) -> Result<bool, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("document kind", kind)?;
        check_id("document id", id)?;
        let removed = self.with_client(|c| {
            c.execute(
                "DELETE FROM documents WHERE tenant = $1 AND kind = $2 AND id = $3",
                &[&tenant.as_bytes(), &kind.as_bytes(), &id.as_bytes()],
            )
        })?;
        Ok(removed == 1)
    }

    fn enqueue_job(&self, job: &JobRecord) -> Result<bool, StoreError> {
        check_id("job id", &job.id)?;
        check_id("job kind", &job.kind)?;
        let inserted = self.with_client(|c| {
            c.execute(
                "INSERT INTO jobs (id, kind, not_before_ms, payload) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &job.id.as_bytes(),
                    &job.kind.as_bytes(),
                    &job.not_before_ms,
                    &job.payload,
                ],
            )
        })?;
        Ok(inserted == 1)
    }

    fn claim_job(
        &self,
        kind: &str,
        worker: &str,
        lease_ms: u64,
        now_ms: i64,
    ) -> Result<Option<JobRecord>, StoreError> {
        check_id("job kind", kind)?;
        check_id("worker id", worker)?;
        let until_ms = tessera_store::lease_end(now_ms, lease_ms);
        // SKIP LOCKED: a job another worker is claiming right now is passed
        // over, not waited for.
        let row = self.with_client(|c| {
            c.query_opt(
                "UPDATE jobs SET attempts = attempts + 1, lease_worker = $2, lease_until_ms = $4 \
                 WHERE id = (SELECT id FROM jobs WHERE kind = $1 AND not_before_ms <= $3 \
                   AND (lease_until_ms IS NULL OR lease_until_ms <= $3) \
                   ORDER BY not_before_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, not_before_ms, payload",
                &[&kind.as_bytes(), &worker.as_bytes(), &now_ms, &until_ms],
            )
        })?;
        row.map(|row| {
            Ok(JobRecord {
                id: utf8(row.get(0), "job")?,
                kind: kind.to_owned(),
                not_before_ms: row.get(1),
                payload: row.get(2),
            })
        })
        .transpose()
    }

    fn lock_tenant(&self, tenant: &str) -> Result<Option<tessera_store::TenantLock>, StoreError> {
        self.tenant_lock(tenant)
    }

    fn renew_job(
        &self,
        id: &str,
        worker: &str,
        lease_ms: u64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        check_id("job id", id)?;
        check_id("worker id", worker)?;
        let until_ms = tessera_store::lease_end(now_ms, lease_ms);
        let renewed = self.with_client(|c| {
            c.execute(
                "UPDATE jobs SET lease_until_ms = $3 WHERE id = $1 AND lease_worker = $2",
                &[&id.as_bytes(), &worker.as_bytes(), &until_ms],
            )
        })?;
        Ok(renewed == 1)
    }

    fn document_kinds(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        check_id("tenant id", tenant)?;
        // A skip scan of the primary key: one index probe per kind, however
        // many documents each holds.
        let rows = self.with_client(|c| {
            c.query(
                "WITH RECURSIVE kinds(kind) AS ( \
                     (SELECT kind FROM documents WHERE tenant = $1 ORDER BY kind LIMIT 1) \
                     UNION ALL \
                     SELECT (SELECT d.kind FROM documents d \
                             WHERE d.tenant = $1 AND d.kind > kinds.kind \
                             ORDER BY d.kind LIMIT 1) \
                     FROM kinds WHERE kinds.kind IS NOT NULL) \
                 SELECT kind FROM kinds WHERE kind IS NOT NULL ORDER BY kind",
                &[&tenant.as_bytes()],
            )
        })?;
        rows.into_iter()
            .map(|row| utf8(row.get(0), "document"))
            .collect()
    }

    fn jobs(&self, after: Option<&str>, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        let after = after.map(str::as_bytes);
        let rows = self.with_client(|c| {
            c.query(
                "SELECT id, kind, not_before_ms, payload FROM jobs \
                 WHERE ($1::bytea IS NULL OR id > $1) ORDER BY id LIMIT $2",
                &[&after, &sql_limit(limit)],
            )
        })?;
        rows.into_iter()
            .map(|row| {
                Ok(JobRecord {
                    id: utf8(row.get(0), "job")?,
                    kind: utf8(row.get(1), "job")?,
                    not_before_ms: row.get(2),
                    payload: row.get(3),
                })
            })
            .collect()
    }

    fn complete_job(&self, id: &str) -> Result<bool, StoreError> {
        check_id("job id", id)?;
        let removed =
            self.with_client(|c| c.execute("DELETE FROM jobs WHERE id = $1", &[&id.as_bytes()]))?;
        Ok(removed == 1)
    }

    fn purge_subject(&self, tenant: &str, subject: &str) -> Result<PurgeReport, StoreError> {
        check_id("tenant id", tenant)?;
        check_id("subject id", subject)?;
        let (t, s) = (tenant.as_bytes(), subject.as_bytes());
        // The subject record first, committed on its own: every later write
        // for the subject is refused from then on, and one holding its row
        // lock finishes first (so what it wrote is removed below).
        let removed = self.with_client(|c| {
            c.execute(
                "DELETE FROM subjects WHERE tenant = $1 AND subject = $2",
                &[&t, &s],
            )
        })?;
        self.transact(|tx| {
            let mut report = PurgeReport {
                subject: removed == 1,
                ..PurgeReport::default()
            };
            // Links already repointed to another subject name that one.
            report.identities = tx.execute(
                "DELETE FROM identities WHERE tenant = $1 AND subject = $2",
                &[&t, &s],
            )?;
            report.events = tx.execute(
                "DELETE FROM events WHERE tenant = $1 AND subject = $2",
                &[&t, &s],
            )?;
            report.consents = tx.execute(
                "DELETE FROM consents WHERE tenant = $1 AND subject = $2",
                &[&t, &s],
            )?;
            Ok(report)
        })
        .map_err(Fail::into_store)
    }

    fn subject_state(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        let (low, high) = state::subject_range(tenant, subject)?;
        let rows = self.with_client(|c| {
            c.query(
                "SELECT plugin, key, value FROM plugin_state \
                 WHERE tenant = $1 AND key >= $2 AND key < $3 ORDER BY plugin, key",
                &[&tenant.as_bytes(), &low, &high],
            )
        })?;
        rows.iter()
            .map(|row| {
                Ok((
                    utf8(row.get(0), "state")?,
                    utf8(row.get(1), "state")?,
                    row.get(2),
                ))
            })
            .collect()
    }

    fn purge_subject_state(&self, tenant: &str, subject: &str) -> Result<u64, StoreError> {
        let (low, high) = state::subject_range(tenant, subject)?;
        let t = tenant.as_bytes();
        let plugins: Vec<Vec<u8>> = self
            .with_client(|c| {
                c.query(
                    "SELECT DISTINCT plugin FROM plugin_state \
                     WHERE tenant = $1 AND key >= $2 AND key < $3",
                    &[&t, &low, &high],
                )
            })?
            .into_iter()
            .map(|row| row.get(0))
            .collect();
        let mut removed = 0;
        for plugin in &plugins {
            removed += self
                .transact(|tx| state::purge_scope(tx, t, plugin, &low, &high))
                .map_err(Fail::into_store)?;
        }
        Ok(removed)
    }

    fn state_entries(
        &self,
        scope: &tessera_state::StateScope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_id("tenant id", &scope.tenant)?;
        check_id("plugin id", &scope.plugin)?;
        let after = after.map(str::as_bytes);
        let rows = self.with_client(|c| {
            c.query(
                "SELECT key, value FROM plugin_state WHERE tenant = $1 AND plugin = $2 \
                 AND ($3::bytea IS NULL OR key > $3) ORDER BY key LIMIT $4",
                &[
                    &scope.tenant.as_bytes(),
                    &scope.plugin.as_bytes(),
                    &after,
                    &sql_limit(limit),
                ],
            )
        })?;
        rows.into_iter()
            .map(|row| Ok((utf8(row.get(0), "state")?, row.get(1))))
            .collect()
    }

    fn flush(&self) -> Result<(), StoreError> {
        // A committed transaction is durable: nothing is buffered here.
        Ok(())
    }
}

/// Refuses (with [`StoreError::UnknownSubject`]) unless the subject exists,
/// and locks its row against a purge until the transaction ends.
fn require_subject<E: From<StoreError>>(
    tx: &mut Transaction<'_>,
    tenant: &str,
    subject: &str,
) -> Result<(), Failure<E>> {
    let found = tx.query_opt(
        "SELECT 1 FROM subjects WHERE tenant = $1 AND subject = $2 FOR KEY SHARE",
        &[&tenant.as_bytes(), &subject.as_bytes()],
    )?;
    if found.is_none() {
        return Err(abort(StoreError::UnknownSubject {
            tenant: tenant.to_owned(),
            subject: subject.to_owned(),
        }));
    }
    Ok(())
}

/// A tenant's audit head, 0 if it has none.
fn audit_head(client: &mut impl postgres::GenericClient, tenant: &[u8]) -> Result<u64, Fail> {
    let row = client.query_opt("SELECT head FROM audit_heads WHERE tenant = $1", &[&tenant])?;
    match row {
        None => Ok(0),
        Some(row) => u64::try_from(row.get::<_, i64>(0))
            .map_err(|_| Failure::Abort(corrupt("audit head", "head is negative"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_bound_exactly_the_strings_under_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    /// The start-up warning about an unchecked certificate is for servers
    /// reached over a network only.
    #[test]
    fn only_loopback_addresses_and_sockets_are_local() {
        let local = |url: &str| super::all_local(&url.parse().unwrap());
        assert!(local("postgres://localhost/x"));
        assert!(local("postgres://127.0.0.1:5433,[::1]:5434/x"));
        assert!(local("host=/var/run/postgresql dbname=x"));
        assert!(local("postgres://db.example/x?hostaddr=127.0.0.1"));
        assert!(!local("postgres://db.example/x"));
        assert!(!local("postgres://10.0.0.7/x"));
        assert!(!local("postgres://localhost,db.example/x"));
        assert!(!local("postgres://localhost/x?hostaddr=10.0.0.7"));
    }

    #[test]
    fn a_url_is_described_without_its_password() {
        let described = describe_url("postgres://tessera:s3cret@db.example:6432/prod");
        assert_eq!(described, "tessera@db.example:6432/prod");
        let options = PgOptions::new("postgres://tessera:s3cret@db.example/prod");
        assert!(!format!("{options:?}").contains("s3cret"));
    }

    #[test]
    fn only_plain_lowercase_schema_names_are_accepted() {
        assert!(check_schema_name("tessera_1").is_ok());
        for bad in ["", "1abc", "Tessera", "a-b", "a;drop", &"a".repeat(64)] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }
}

//! The service's limits, read by `tessera serve` from its TOML file and
//! environment; the defaults suit a single node.

use serde::{Deserialize, Serialize};

/// What the HTTP service needs to know besides the vault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub limits: Limits,
    pub rate_limit: RateLimit,
    pub subject_tokens: SubjectTokenConfig,
    pub subject_login: SubjectLoginConfig,
    pub console: ConsoleConfig,
    pub tls: crate::tls::TlsConfig,
}

/// The web console's sessions (`/console/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// How long a console session lasts after signing in, in seconds (300
    /// to 86400). It never outlives the API token it was made from.
    pub session_ttl_s: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            session_ttl_s: 8 * 60 * 60,
        }
    }
}

/// Subject tokens, the short-lived credentials of `/v1/me`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubjectTokenConfig {
    /// How long a subject token is valid, in seconds (60 to 3600).
    pub ttl_s: u64,
    /// Sustained `/v1/me` requests per second per person (1 to 1000).
    /// Subject tokens have this limit of their own instead of their
    /// tenant's, so that no person can spend the tenant's API budget.
    pub requests_per_second: u32,
    /// How many requests a person may make at once after being idle.
    pub burst: u32,
}

impl Default for SubjectTokenConfig {
    fn default() -> Self {
        Self {
            ttl_s: 15 * 60,
            requests_per_second: 5,
            burst: 20,
        }
    }
}

/// How one-time login codes reach people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeSenderKind {
    /// Code login is off (the default).
    #[default]
    None,
    /// Appends each code as a JSON line to `file`: development and tests.
    File,
    /// Writes each code to the log at warn level: development only.
    Log,
}

/// Login with a one-time code sent to a person's email or phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubjectLoginConfig {
    pub sender: CodeSenderKind,
    /// The file of the `file` sender.
    pub file: Option<std::path::PathBuf>,
    /// Sustained login requests (codes and exchanges) per second per tenant
    /// name asked for, whether a tenant has it or not.
    pub requests_per_second: u32,
    /// How many login requests a tenant name may take at once after being
    /// idle.
    pub burst: u32,
}

impl Default for SubjectLoginConfig {
    fn default() -> Self {
        Self {
            sender: CodeSenderKind::None,
            file: None,
            requests_per_second: 2,
            burst: 20,
        }
    }
}

/// Sizes and times that bound every request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The largest request body in bytes (Segment's own limit is 500 KB a batch).
    pub max_body_bytes: usize,
    /// The largest plugin bundle `POST /v1/plugins` and `…/upgrade` accept.
    pub max_bundle_bytes: usize,
    /// The largest single ingest message (one item of a batch), as JSON
    /// (Segment's limit: 32 KB).
    pub max_message_bytes: usize,
    /// The most messages one `/v1/batch` request may carry.
    pub max_batch_messages: usize,
    /// A request still running after this long is answered 503 `timeout`
    /// (work already handed to the data core still completes).
    pub request_timeout_ms: u64,
    /// How long a verified token is trusted from memory before the store is
    /// read again. Revocations through this server take effect at once.
    pub token_cache_ms: u64,
    /// The largest upload `PUT /v1/imports/{id}/data` reads (it streams:
    /// this bounds disk work, not memory).
    pub max_import_bytes: u64,
    /// An upload still running after this long is answered 503 `timeout`
    /// and its import fails (it replaces `request_timeout_ms` there).
    pub import_timeout_ms: u64,
    /// An import created with `POST /v1/imports` whose data does not start
    /// arriving within this long is marked failed.
    pub import_wait_ms: u64,
    /// An upload that sends nothing for this long is cut off (its import
    /// fails).
    pub import_idle_ms: u64,
    /// Uploads read at once by this server, all tenants together; more are
    /// answered 429 `too_many_uploads`.
    pub max_concurrent_uploads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 512 * 1024,
            max_bundle_bytes: 64 << 20,
            max_message_bytes: 32 * 1024,
            max_batch_messages: 2_500,
            request_timeout_ms: 30_000,
            token_cache_ms: 30_000,
            max_import_bytes: 16 << 30,
            import_timeout_ms: 4 * 60 * 60 * 1000,
            import_wait_ms: 15 * 60 * 1000,
            import_idle_ms: 60_000,
            max_concurrent_uploads: 8,
        }
    }
}

/// A token bucket per tenant over its API tokens' `/v1` requests (subject
/// tokens have a limit per person, [`SubjectTokenConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second per tenant; 0 turns the limit off.
    pub requests_per_second: u32,
    /// How many requests a tenant may make at once after being idle.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            requests_per_second: 200,
            burst: 400,
        }
    }
}

impl Config {
    /// Checks the numbers for nonsense; the reason names the field.
    pub fn check(&self) -> Result<(), String> {
        let l = &self.limits;
        if l.max_body_bytes < 1024 || l.max_body_bytes > 64 * 1024 * 1024 {
            return Err(format!(
                "limits.max_body_bytes ({}) must be 1 KiB to 64 MiB",
                l.max_body_bytes
            ));
        }
        if l.max_message_bytes < 256 || l.max_message_bytes > l.max_body_bytes {
            return Err(format!(
                "limits.max_message_bytes ({}) must be at least 256 and at most max_body_bytes ({})",
                l.max_message_bytes, l.max_body_bytes
            ));
        }
        if l.max_batch_messages == 0 || l.max_batch_messages > tessera_vault::MAX_BATCH {
            return Err(format!(
                "limits.max_batch_messages ({}) must be 1 to {}",
                l.max_batch_messages,
                tessera_vault::MAX_BATCH
            ));
        }
        if l.request_timeout_ms < 100 {
            return Err(format!(
                "limits.request_timeout_ms ({}) must be at least 100",
                l.request_timeout_ms
            ));
        }
        if l.max_import_bytes == 0 {
            return Err("limits.max_import_bytes must be at least 1".into());
        }
        if l.import_timeout_ms < l.request_timeout_ms {
            return Err(format!(
                "limits.import_timeout_ms ({}) must be at least request_timeout_ms ({})",
                l.import_timeout_ms, l.request_timeout_ms
            ));
        }
        if l.import_wait_ms < 1000 {
            return Err(format!(
                "limits.import_wait_ms ({}) must be at least 1000",
                l.import_wait_ms
            ));
        }
        if l.import_idle_ms < 1000 || l.import_idle_ms > l.import_timeout_ms {
            return Err(format!(
                "limits.import_idle_ms ({}) must be 1000 to import_timeout_ms ({})",
                l.import_idle_ms, l.import_timeout_ms
            ));
        }
        if l.max_concurrent_uploads == 0 || l.max_concurrent_uploads > 256 {
            return Err(format!(
                "limits.max_concurrent_uploads ({}) must be 1 to 256",
                l.max_concurrent_uploads
            ));
        }
        if self.rate_limit.requests_per_second > 0 && self.rate_limit.burst == 0 {
            return Err("rate_limit.burst must be at least 1 when the limit is on".into());
        }
        let ttl = self.subject_tokens.ttl_s;
        if !(60..=3600).contains(&ttl) {
            return Err(format!(
                "subject_tokens.ttl_s ({ttl}) must be 60 to 3600: subject tokens are short-lived"
            ));
        }
        let subject = &self.subject_tokens;
        if subject.requests_per_second == 0 || subject.requests_per_second > 1000 {
            return Err(format!(
                "subject_tokens.requests_per_second ({}) must be 1 to 1000: anyone with a \
                 subject token reaches /v1/me, so it is always limited",
                subject.requests_per_second
            ));
        }
        if subject.burst == 0 {
            return Err("subject_tokens.burst must be at least 1".into());
        }
        let login = &self.subject_login;
        if login.sender == CodeSenderKind::File
            && login.file.as_ref().is_none_or(|f| f.as_os_str().is_empty())
        {
            return Err(
                "subject_login.file must name a file when subject_login.sender is \"file\"".into(),
            );
        }
        if login.requests_per_second == 0 || login.requests_per_second > 1000 {
            return Err(format!(
                "subject_login.requests_per_second ({}) must be 1 to 1000: the login routes are \
                 public, so they are always limited",
                login.requests_per_second
            ));
        }
        if login.burst == 0 {
            return Err("subject_login.burst must be at least 1".into());
        }
        let console = self.console.session_ttl_s;
        if !(300..=86_400).contains(&console) {
            return Err(format!(
                "console.session_ttl_s ({console}) must be 300 to 86400: a console session \
                 lasts a working day at most"
            ));
        }
        self.tls.check()
    }
}

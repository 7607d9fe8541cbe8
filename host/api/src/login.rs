//! Login with a one-time code: a person asks for a code for their email or
//! phone, receives it there, and trades it for a subject token. Receiving
//! the code is what shows that they control the address.
//!
//! Both routes are public (no token), so they are limited per tenant name
//! asked for (known or not), and per address by what is stored: at most
//! [`MAX_CODES_PER_WINDOW`] codes a day, each valid [`CODE_TTL_MS`] for
//! [`MAX_ATTEMPTS`] tries, a new code replacing the old. Nothing tells a
//! caller whether the tenant exists or knows the address: the limit and the
//! check of the address's syntax come before any lookup and use no
//! tenant's rules, the code request always answers 202 with the same body
//! (the work runs in the background), a record is kept for every address
//! asked for, and a failed exchange is always 401 `invalid_code`. Only
//! codes sent and codes used up are audited, so anonymous callers cannot
//! grow a tenant's audit trail. Codes and addresses are stored only as
//! keyed hashes ([`MacPurpose::LoginCode`]); codes reach people through a
//! pluggable [`CodeSender`].

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tessera_privacy::{MacPurpose, TenantMac};
use tessera_vault::normalize::normalize;
use tessera_vault::{Actor, AuditEntry, IdentityKind, NormalizeRules, Vault, VaultError};

use crate::config::{CodeSenderKind, SubjectLoginConfig};
use crate::error::{ApiError, BodyShape, ErrorBody, Json, PrivateJson};
use crate::ratelimit::RateLimiter;
use crate::subject_tokens::{SubjectTokenIssued, prune_expired};
use crate::{AppState, RateLimit, blocking};

/// The store document kind of login codes (one per address asked for).
pub const LOGIN_CODE_DOC: &str = "login-code";
/// How long a code is valid.
pub const CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// How many tries one code allows.
pub const MAX_ATTEMPTS: u32 = 5;
/// How many codes one address can be sent per [`WINDOW_MS`].
pub const MAX_CODES_PER_WINDOW: u32 = 5;
/// The window of [`MAX_CODES_PER_WINDOW`]: a day.
pub const WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Where a code goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeChannel {
    Email,
    Phone,
}

impl CodeChannel {
    fn label(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    fn kind(self) -> IdentityKind {
        match self {
            Self::Email => IdentityKind::Email,
            Self::Phone => IdentityKind::Phone,
        }
    }
}

/// One code to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeMessage {
    pub tenant: String,
    pub channel: CodeChannel,
    /// The address, normalised as the tenant stores it.
    pub to: String,
    pub code: String,
    pub at_ms: i64,
}

/// Delivers login codes: email, SMS, or for development a file or the log.
/// Called off the async threads; an error is logged (without the code or
/// the address) and the person asks again.
pub trait CodeSender: Send + Sync + fmt::Debug {
    fn send(&self, message: &CodeMessage) -> Result<(), String>;
}

/// Appends each code as one JSON line `{tenant, channel, to, code, at_ms}`
/// to a file created with mode 0600: for development and tests.
#[derive(Debug)]
pub struct FileSender {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileSender {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }
}

impl CodeSender for FileSender {
    fn send(&self, message: &CodeMessage) -> Result<(), String> {
        let mut line = serde_json::to_vec(message).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        file.write_all(&line)
            .and_then(|()| file.flush())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// Writes each code to the log at warn level: development only (the log
/// then holds codes and addresses).
#[derive(Debug, Default)]
pub struct LogSender;

impl CodeSender for LogSender {
    fn send(&self, message: &CodeMessage) -> Result<(), String> {
        tracing::warn!(
            tenant = %message.tenant,
            channel = ?message.channel,
            to = %message.to,
            code = %message.code,
            "login code (log sender: development only)"
        );
        Ok(())
    }
}

/// The code login service: the sender (none: code login is off), the
/// limit per tenant name of the public routes, and the lock that serialises
/// updates of code records in this process.
#[derive(Clone)]
pub struct CodeLogin {
    sender: Option<Arc<dyn CodeSender>>,
    limiter: Arc<RateLimiter>,
    lock: Arc<Mutex<()>>,
}

impl fmt::Debug for CodeLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeLogin")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl CodeLogin {
    /// The service as configured (`[subject_login]`).
    pub fn new(config: &SubjectLoginConfig) -> Self {
        let sender: Option<Arc<dyn CodeSender>> = match config.sender {
            CodeSenderKind::None => None,
            CodeSenderKind::File => config
                .file
                .clone()
                .map(|path| Arc::new(FileSender::new(path)) as Arc<dyn CodeSender>),
            CodeSenderKind::Log => Some(Arc::new(LogSender)),
        };
        match config.sender {
            CodeSenderKind::File => tracing::warn!(
                "subject_login.sender = \"file\": login codes are written to a file, for \
                 development only"
            ),
            CodeSenderKind::Log => tracing::warn!(
                "subject_login.sender = \"log\": login codes are written to the log, for \
                 development only"
            ),
            CodeSenderKind::None => {}
        }
        Self {
            sender,
            limiter: Arc::new(RateLimiter::new(&RateLimit {
                requests_per_second: config.requests_per_second.max(1),
                burst: config.burst.max(1),
            })),
            lock: Arc::default(),
        }
    }

    /// The same, delivering codes with `sender` (an email or SMS gateway).
    pub fn with_sender(mut self, sender: Arc<dyn CodeSender>) -> Self {
        self.sender = Some(sender);
        self
    }

    fn sender(&self) -> Result<Arc<dyn CodeSender>, ApiError> {
        self.sender.clone().ok_or_else(|| {
            ApiError::not_found(
                "code_login_disabled",
                "login with a one-time code is off on this server (subject_login.sender is \
                 \"none\"); sign in through the tenant's portal",
            )
        })
    }

    /// The limit of the tenant name asked for, whether or not a tenant has
    /// it (so a 429 says nothing about its existence); the key is a hash of
    /// the name, so the limiter's memory is bounded however long the names.
    fn check_rate(&self, tenant: &str) -> Result<(), ApiError> {
        let key = hex::encode(&Sha256::digest(tenant.as_bytes())[..16]);
        self.limiter.check(&key).map_err(|wait| {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many login requests for this tenant; retry in {seconds} s"),
            );
            error.retry_after = Some(seconds.max(1));
            error
        })
    }
}

/// `POST /v1/login/code`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// The tenant whose customer is signing in.
    pub tenant: String,
    /// Exactly one of `email` and `phone`.
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// `POST /v1/login/token`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeExchange {
    pub tenant: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// The six digits received.
    pub code: String,
}

impl BodyShape for CodeRequest {
    const SHAPE: &'static str = r#"{"tenant": "<string>", "email": "<string>"} or {"tenant": "<string>", "phone": "<string>"}"#;
}

impl BodyShape for CodeExchange {
    const SHAPE: &'static str =
        r#"{"tenant": "<string>", "email" or "phone": "<string>", "code": "<six digits>"}"#;
}

/// The answer to every well-formed code request, whoever it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CodeRequested {
    pub status: String,
    pub message: String,
    /// How long a code sent now stays valid.
    pub expires_in_s: u64,
}

impl CodeRequested {
    fn new() -> Self {
        Self {
            status: "accepted".into(),
            message: "if this address belongs to someone the tenant knows, a code is on its \
                      way to it"
                .into(),
            expires_in_s: (CODE_TTL_MS / 1000).unsigned_abs(),
        }
    }
}

/// What is stored per address (document id: the address's keyed hash).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CodeRecord {
    /// Keyed hash of the current code, hex; empty once used.
    code_mac: String,
    expires_at_ms: i64,
    attempts_left: u32,
    window_start_ms: i64,
    codes_in_window: u32,
}

impl CodeRecord {
    /// When nothing in the record matters any more.
    fn obsolete_at_ms(&self) -> i64 {
        self.expires_at_ms
            .max(self.window_start_ms.saturating_add(WINDOW_MS))
    }
}

/// An address checked against the tenant's rules, with its keys.
struct Address {
    tenant: String,
    channel: CodeChannel,
    raw: String,
    normalized: String,
    /// The record's id: the keyed hash of the normalised address, hex.
    id: String,
    mac: TenantMac,
}

impl Address {
    fn code_tag(&self, code: &str) -> [u8; 32] {
        self.mac
            .mac(&[b"code", self.id.as_bytes(), code.as_bytes()])
    }
}

fn channel_of(
    email: Option<String>,
    phone: Option<String>,
) -> Result<(CodeChannel, String), ApiError> {
    match (email, phone) {
        (Some(email), None) => Ok((CodeChannel::Email, email)),
        (None, Some(phone)) => Ok((CodeChannel::Phone, phone)),
        _ => Err(ApiError::unprocessable(
            "invalid_body",
            "give exactly one of `email` and `phone`",
        )
        .with_field("email", "exactly one of email and phone")),
    }
}

/// Refuses a value that is no email or phone for any tenant (422
/// `invalid_identity`, which says nothing about any person or tenant): the
/// default rules, or for a phone written without a country code, the rules
/// of a tenant that sets one. Whether it is valid under the requested
/// tenant's own rules is found out later, like whether it is known.
fn check_syntax(channel: CodeChannel, raw: &str) -> Result<(), ApiError> {
    let kind = channel.kind();
    let Err(error) = normalize(&kind, raw, &NormalizeRules::default()) else {
        return Ok(());
    };
    // Country codes of one, two and three digits: whether the national
    // number's length and leading digits fit one of them.
    let with_code = |code: u16| NormalizeRules {
        default_country_code: Some(code),
        ..NormalizeRules::default()
    };
    if channel == CodeChannel::Phone
        && [1, 39, 998]
            .into_iter()
            .any(|code| normalize(&kind, raw, &with_code(code)).is_ok())
    {
        return Ok(());
    }
    let field = channel.label();
    Err(
        ApiError::unprocessable("invalid_identity", format!("invalid {field}: {error}"))
            .with_field(field, error.to_string()),
    )
}

/// The address in `tenant`, or `None` if there is no such tenant or the
/// value is not valid under the tenant's rules (e.g. a phone without a
/// country code where the tenant sets none): both are treated as an
/// address nobody has, so that the answer does not depend on them.
fn address(
    vault: &Vault,
    tenant: &str,
    channel: CodeChannel,
    raw: String,
) -> Result<Option<Address>, ApiError> {
    if tenant.is_empty() || tenant.len() > 256 {
        return Ok(None);
    }
    let settings = match vault.settings(tenant) {
        Ok(settings) => settings,
        Err(
            VaultError::UnknownTenant { .. }
            | VaultError::Store(tessera_store::StoreError::InvalidId { .. }),
        ) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let kind = channel.kind();
    let Ok(normalized) = normalize(&kind, &raw, &settings.identity_rules) else {
        return Ok(None);
    };
    let Some(mac) = vault.service_mac(tenant, MacPurpose::LoginCode)? else {
        return Err(ApiError::internal(
            &"the login-code MAC key is not available",
        ));
    };
    let id = hex::encode(mac.mac(&[b"address", kind.label().as_bytes(), normalized.as_bytes()]));
    Ok(Some(Address {
        tenant: tenant.to_owned(),
        channel,
        raw,
        normalized,
        id,
        mac,
    }))
}

fn read(vault: &Vault, address: &Address) -> Result<Option<CodeRecord>, VaultError> {
    let Some(bytes) = vault
        .store()
        .document(&address.tenant, LOGIN_CODE_DOC, &address.id)?
    else {
        return Ok(None);
    };
    // A record that does not decode is treated as none (it only ever held
    // a code's hash and counters).
    Ok(serde_json::from_slice(&bytes).ok())
}

fn write(vault: &Vault, address: &Address, record: &CodeRecord) -> Result<(), VaultError> {
    let bytes = serde_json::to_vec(record).map_err(|e| VaultError::Corrupt {
        tenant: address.tenant.clone(),
        what: "login code",
        detail: e.to_string(),
    })?;
    vault
        .store()
        .put_document(&address.tenant, LOGIN_CODE_DOC, &address.id, &bytes)?;
    Ok(())
}

/// Six decimal digits, uniformly random.
fn six_digits() -> Result<String, VaultError> {
    // The largest multiple of 10^6 below 2^32: values above it would make
    // low codes likelier.
    const LIMIT: u32 = 4_294_000_000;
    loop {
        let mut bytes = [0u8; 4];
        getrandom::getrandom(&mut bytes).map_err(|error| {
            VaultError::KeyGen(tessera_privacy::KeyGenError::Randomness {
                reason: error.to_string(),
            })
        })?;
        let value = u32::from_le_bytes(bytes);
        if value < LIMIT {
            return Ok(format!("{:06}", value % 1_000_000));
        }
    }
}

fn login_actor() -> Actor {
    Actor::system("subject-login")
}

/// `POST /v1/login/code`: sends a code if the tenant knows the address.
/// Always 202 with the same body once the input is well formed.
#[utoipa::path(post, path = "/v1/login/code", tag = "me", request_body = CodeRequest,
    responses(
        (status = 202, description = "The same answer whether or not the address is known.",
            body = CodeRequested),
        (status = 404, description = "Code login is off (`code_login_disabled`).", body = ErrorBody),
        (status = 429, description = "The login limit of the tenant name asked for is \
            reached (known or not).", body = ErrorBody),
    ))]
pub(crate) async fn request_code(
    State(state): State<AppState>,
    PrivateJson(body): PrivateJson<CodeRequest>,
) -> Result<(StatusCode, Json<CodeRequested>), ApiError> {
    let sender = state.login.sender()?;
    state.login.check_rate(&body.tenant)?;
    let (channel, raw) = channel_of(body.email, body.phone)?;
    check_syntax(channel, &raw)?;
    let (vault, lock) = (state.vault.clone(), state.login.lock.clone());
    let tenant = body.tenant;
    // The lookups (the tenant, then the person) and the sending run after
    // the answer, so that neither it nor its timing says whether either is
    // known.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let sent = address(&vault, &tenant, channel, raw).and_then(|address| {
                address.map_or(Ok(()), |address| {
                    send_code(&vault, &lock, sender.as_ref(), &address)
                        .map_err(|error| ApiError::internal(&error))
                })
            });
            if let Err(error) = sent {
                tracing::warn!(code = error.code, "login code not sent");
            }
        });
    });
    Ok((StatusCode::ACCEPTED, Json(CodeRequested::new())))
}

/// Stores a new code for the address (whoever it names) and sends it if the
/// tenant knows the person.
fn send_code(
    vault: &Vault,
    lock: &Mutex<()>,
    sender: &dyn CodeSender,
    address: &Address,
) -> Result<(), String> {
    let now = vault.now_ms();
    let code = {
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut record = read(vault, address)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        if now.saturating_sub(record.window_start_ms) >= WINDOW_MS {
            record.window_start_ms = now;
            record.codes_in_window = 0;
        }
        if record.codes_in_window >= MAX_CODES_PER_WINDOW {
            tracing::info!("no login code sent: the address had its codes for the day");
            return Ok(());
        }
        let code = six_digits().map_err(|e| e.to_string())?;
        record.code_mac = hex::encode(address.code_tag(&code));
        record.expires_at_ms = now.saturating_add(CODE_TTL_MS);
        record.attempts_left = MAX_ATTEMPTS;
        record.codes_in_window += 1;
        write(vault, address, &record).map_err(|e| e.to_string())?;
        // Under the lock, so that no record refreshed meanwhile is taken
        // for an obsolete one.
        prune_expired(vault, &address.tenant, LOGIN_CODE_DOC, |bytes| {
            serde_json::from_slice::<CodeRecord>(bytes).map_or(true, |r| r.obsolete_at_ms() <= now)
        })
        .map_err(|e| e.to_string())?;
        vault.store().flush().map_err(|e| e.to_string())?;
        code
    };
    // Only an address a trusted source gave (anyone can attach any address
    // to anyone through a public write key), and not audited for an
    // address nobody has: anyone may ask for one, and the audit trail must
    // not grow at their will.
    let found = vault
        .find_trusted_subject_unaudited(&address.tenant, &address.channel.kind(), &address.raw)
        .map_err(|e| e.to_string())?;
    let Some(subject) = found else {
        return Ok(());
    };
    let entry = AuditEntry::new(&login_actor(), "subject.login_code")
        .subject(&subject)
        .detail(format!("a login code sent by {}", address.channel.label()));
    vault
        .record_admin_action(&address.tenant, entry)
        .and_then(|_| vault.flush())
        .map_err(|e| e.to_string())?;
    sender.send(&CodeMessage {
        tenant: address.tenant.clone(),
        channel: address.channel,
        to: address.normalized.clone(),
        code,
        at_ms: now,
    })?;
    tracing::info!("login code sent");
    Ok(())
}

fn invalid_code() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_code",
        "the code is not valid for this address: it may be wrong, expired or used up; ask for \
         a new one",
    )
}

/// `POST /v1/login/token`: a subject token for a valid code, else 401
/// `invalid_code` whatever the reason.
#[utoipa::path(post, path = "/v1/login/token", tag = "me", request_body = CodeExchange,
    responses(
        (status = 200, description = "A subject token.", body = SubjectTokenIssued),
        (status = 401, description = "The code is wrong, expired or used up, or the address \
            unknown (`invalid_code`, one answer for all).", body = ErrorBody),
        (status = 404, description = "Code login is off (`code_login_disabled`).", body = ErrorBody),
        (status = 429, description = "The login limit of the tenant name asked for is \
            reached (known or not).", body = ErrorBody),
    ))]
pub(crate) async fn exchange(
    State(state): State<AppState>,
    PrivateJson(body): PrivateJson<CodeExchange>,
) -> Result<Json<SubjectTokenIssued>, ApiError> {
    state.login.sender()?;
    state.login.check_rate(&body.tenant)?;
    let (channel, raw) = channel_of(body.email, body.phone)?;
    check_syntax(channel, &raw)?;
    let (tenant, code) = (body.tenant, body.code);
    let vault = state.vault.clone();
    let issued = blocking(move || {
        let Some(address) = address(&state.vault, &tenant, channel, raw)? else {
            return Ok(Err(None));
        };
        let vault = &state.vault;
        {
            let _guard = state
                .login
                .lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(mut record) = read(vault, &address)? else {
                return Ok(Err(None));
            };
            if record.code_mac.is_empty()
                || record.attempts_left == 0
                || vault.now_ms() >= record.expires_at_ms
            {
                return Ok(Err(None));
            }
            record.attempts_left -= 1;
            let stored = hex::decode(&record.code_mac).unwrap_or_default();
            let matches = code.len() == 6
                && code.bytes().all(|b| b.is_ascii_digit())
                && address
                    .mac
                    .verify(&[b"code", address.id.as_bytes(), code.as_bytes()], &stored);
            if matches {
                // A code works once.
                record.code_mac.clear();
                record.attempts_left = 0;
            }
            write(vault, &address, &record)?;
            // Durable before either answer: a crash must not give back
            // the try a wrong guess used.
            vault.store().flush().map_err(VaultError::from)?;
            if !matches {
                // The last try of this code was a wrong guess: worth a
                // trace (recorded after the answer, see below).
                let used_up = record.attempts_left == 0;
                return Ok(Err(used_up.then_some(address)));
            }
        }
        // The person may have been erased since the code was sent; nobody
        // else can hold a code for an address the tenant does not know.
        let subject = vault
            .find_trusted_subject(
                &address.tenant,
                &channel.kind(),
                &address.raw,
                &login_actor(),
            )?
            .ok_or_else(invalid_code)?;
        let how = match channel {
            CodeChannel::Email => "one-time code by email",
            CodeChannel::Phone => "one-time code by phone",
        };
        state
            .subject_tokens
            .issue(&address.tenant, &subject, &login_actor(), how)
            .map(Ok)
            .map_err(|error| match error {
                VaultError::SubjectErased { .. } | VaultError::UnknownSubject { .. } => {
                    invalid_code()
                }
                error => error.into(),
            })
    })
    .await?;
    let issued = match issued {
        Ok(issued) => issued,
        Err(used_up) => {
            if let Some(address) = used_up {
                // After the answer, so that its timing does not say whether
                // the address is known.
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || {
                    span.in_scope(|| record_used_up(&vault, &address));
                });
            }
            return Err(invalid_code());
        }
    };
    tracing::info!(token = %issued.token_id, "subject token issued for a login code");
    Ok(Json(issued))
}

/// Leaves a trace of a code whose tries were all wrong guesses: an audit
/// entry for the person (`subject.login_failed`, naming neither the code
/// nor the address) when the tenant knows the address, else a warning
/// naming the address by its keyed hash.
fn record_used_up(vault: &Vault, address: &Address) {
    let found = vault.find_trusted_subject_unaudited(
        &address.tenant,
        &address.channel.kind(),
        &address.raw,
    );
    let recorded = found.and_then(|found| match found {
        Some(subject) => {
            let entry = AuditEntry::new(&login_actor(), "subject.login_failed")
                .subject(&subject)
                .detail(format!(
                    "a login code by {} used up its {MAX_ATTEMPTS} tries with wrong guesses",
                    address.channel.label()
                ));
            vault.record_admin_action(&address.tenant, entry)?;
            vault.flush()
        }
        None => {
            tracing::warn!(
                tenant = %address.tenant,
                address = %address.id,
                "a login code for an address the tenant does not know used up its tries with \
                 wrong guesses"
            );
            Ok(())
        }
    });
    if let Err(error) = recorded {
        tracing::error!(%error, address = %address.id, "failed login code guesses not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::six_digits;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::BTreeSet<String> =
            (0..50).map(|_| six_digits().expect("randomness")).collect();
        assert!(codes.len() > 45);
        for code in &codes {
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}

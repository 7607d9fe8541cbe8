//! API tokens: one tenant and one role each, shown once, stored only as a
//! SHA-256 hash, revocable.
//!
//! A token reads `tsk_<tenant in hex>_<id>_<secret>`: the id is 8 random
//! bytes and the secret 32, both in hex. The tenant and id locate the
//! token's record (store document kind `api-token` in that tenant, id = the
//! token id) without any global index; the record holds the SHA-256 of the
//! whole token string, compared in constant time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tessera_vault::{Actor, AuditEntry, Vault, VaultError};

use crate::auth::Role;

/// The store document kind of token records.
pub const TOKEN_DOC: &str = "api-token";
const PREFIX: &str = "tsk_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A token as listed: everything but the secret and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub role: Role,
    pub name: String,
    pub created_at_ms: i64,
    /// The token id (or `cli`, `init`) that created it.
    pub created_by: String,
    pub revoked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
}

/// What is stored: the info and the hash of the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    #[serde(flatten)]
    info: TokenInfo,
    /// SHA-256 of the whole token string, hex.
    hash: String,
}

/// A freshly created token: the only time its secret is seen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The token itself. Not stored anywhere; shown once.
    pub token: String,
}

/// Who a request is from, once its token is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub role: Role,
    pub token_id: String,
    /// For a subject token: the person it acts for (`/v1/me`), else `None`.
    pub subject: Option<SubjectSession>,
}

/// The person a subject token acts for, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSession {
    pub id: String,
    pub expires_at_ms: i64,
}

impl Principal {
    /// Whom the audit trail names for this request's actions.
    pub fn actor(&self) -> Actor {
        if self.subject.is_some() {
            return Actor::new("subject", format!("subject-token:{}", self.token_id));
        }
        Actor::new(self.role.as_str(), format!("token:{}", self.token_id))
    }
}

/// Why a token was not accepted (all become 401 `unauthorized`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Malformed,
    Unknown,
    Revoked,
}

/// The tenant and token id named by a token string, if it is well formed.
fn parse(token: &str) -> Option<(String, String)> {
    let rest = token.strip_prefix(PREFIX)?;
    let mut parts = rest.split('_');
    let (tenant_hex, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || tenant_hex.is_empty()
        || tenant_hex.len() > 256
        || id.len() != 2 * ID_BYTES
        || secret.len() != 2 * SECRET_BYTES
        || !is_lower_hex(id)
        || !is_lower_hex(secret)
    {
        return None;
    }
    let tenant = String::from_utf8(hex::decode(tenant_hex).ok()?).ok()?;
    Some((tenant, id.to_owned()))
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `id` could be a token id (so that others are 404 without a store read).
pub fn valid_id(id: &str) -> bool {
    id.len() == 2 * ID_BYTES && is_lower_hex(id)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_hex(bytes: usize) -> Result<String, VaultError> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|error| {
        VaultError::KeyGen(tessera_privacy::KeyGenError::Randomness {
            reason: error.to_string(),
        })
    })?;
    Ok(hex::encode(buf))
}

/// A record cached after a store read.
#[derive(Debug, Clone)]
struct Cached {
    record: TokenRecord,
    read_at: Instant,
    /// The vault's cache generation of the tenant when it was read: once
    /// that moves (another node changed something of the tenant, a
    /// revocation perhaps), the record is read again.
    generation: u64,
}

/// The tenant's tokens, in the store through the vault, with a short-lived
/// cache of verified records so that a busy ingest client costs no store
/// read per request.
#[derive(Clone)]
pub struct TokenStore {
    vault: Arc<Vault>,
    cache: Arc<Mutex<HashMap<(String, String), Cached>>>,
    ttl: Duration,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The most entries the cache keeps before it is emptied (a bound on memory,
/// not a policy: entries are cheap to read again).
const CACHE_MAX: usize = 65_536;

impl TokenStore {
    pub fn new(vault: Arc<Vault>, ttl: Duration) -> Self {
        Self {
            vault,
            cache: Arc::default(),
            ttl,
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a token; the result holds its secret, which is stored nowhere.
    /// The creation is audited (`token.create`, naming the token id and
    /// role, never the secret) and durable before this returns.
    pub fn create(
        &self,
        tenant: &str,
        role: Role,
        name: &str,
        actor: &Actor,
    ) -> Result<NewToken, VaultError> {
        // Fails early for an unknown tenant (before anything is written).
        self.vault.settings(tenant)?;
        let id = random_hex(ID_BYTES)?;
        let token = format!(
            "{PREFIX}{}_{id}_{}",
            hex::encode(tenant),
            random_hex(SECRET_BYTES)?
        );
        let info = TokenInfo {
            id: id.clone(),
            role,
            name: name.to_owned(),
            created_at_ms: now_ms(),
            created_by: actor.id.clone(),
            revoked: false,
            revoked_at_ms: None,
        };
        let record = TokenRecord {
            info: info.clone(),
            hash: hex::encode(digest(&token)),
        };
        self.put(tenant, &record)?;
        let entry = AuditEntry::new(actor, "token.create")
            .detail(format!("token {id} with role {}", role.as_str()));
        if let Err(error) = self.vault.record_admin_action(tenant, entry) {
            // Unaudited, the token must not exist.
            self.vault.store().delete_document(tenant, TOKEN_DOC, &id)?;
            self.vault.flush()?;
            return Err(error);
        }
        self.vault.flush()?;
        Ok(NewToken { info, token })
    }

    /// Revokes a token; `None` if the tenant has no token with that id.
    /// Revoking a revoked token changes nothing and is not audited again.
    pub fn revoke(
        &self,
        tenant: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<Option<TokenInfo>, VaultError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let Some(mut record) = self.read(tenant, id)? else {
            return Ok(None);
        };
        self.cache().remove(&(tenant.to_owned(), id.to_owned()));
        if record.info.revoked {
            return Ok(Some(record.info));
        }
        record.info.revoked = true;
        record.info.revoked_at_ms = Some(now_ms());
        // Audited first: if the trail refuses, the token stays valid and the
        // caller learns the revocation failed.
        let entry = AuditEntry::new(actor, "token.revoke").detail(format!("token {id}"));
        self.vault.record_admin_action(tenant, entry)?;
        self.put(tenant, &record)?;
        self.vault.flush()?;
        self.cache().remove(&(tenant.to_owned(), id.to_owned()));
        // Other nodes trust their cached copy until told.
        self.vault.announce_change_or_log(tenant);
        Ok(Some(record.info))
    }

    /// Every token of a tenant, revoked ones included, in id order.
    pub fn list(&self, tenant: &str) -> Result<Vec<TokenInfo>, VaultError> {
        self.vault.settings(tenant)?;
        let store = self.vault.store();
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.documents(tenant, TOKEN_DOC, after.as_deref(), 256)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, bytes) in &page {
                all.push(decode(tenant, bytes)?.info);
            }
        }
        Ok(all)
    }

    /// Creates a first operator token for `tenant` unless it has an active
    /// one already (`tessera serve --init`).
    pub fn bootstrap(&self, tenant: &str, actor: &Actor) -> Result<Option<NewToken>, VaultError> {
        let active = self
            .list(tenant)?
            .into_iter()
            .any(|t| t.role == Role::Operator && !t.revoked);
        if active {
            return Ok(None);
        }
        self.create(tenant, Role::Operator, "bootstrap", actor)
            .map(Some)
    }

    /// The principal of a token from memory, if it was verified recently:
    /// `None` means "ask the store" ([`TokenStore::verify`]).
    pub fn verify_cached(&self, token: &str) -> Option<Result<Principal, Rejected>> {
        let Some((tenant, id)) = parse(token) else {
            return Some(Err(Rejected::Malformed));
        };
        let generation = self.vault.cache_generation(&tenant);
        let cache = self.cache();
        let cached = cache.get(&(tenant.clone(), id))?;
        if cached.read_at.elapsed() > self.ttl || cached.generation != generation {
            return None;
        }
        Some(check(&tenant, &cached.record, token))
    }

    /// Verifies a token against its stored hash (reads the store: call it
    /// off the async threads).
    pub fn verify(&self, token: &str) -> Result<Result<Principal, Rejected>, VaultError> {
        let Some((tenant, id)) = parse(token) else {
            return Ok(Err(Rejected::Malformed));
        };
        // Read before the record: a change announced meanwhile leaves the
        // entry stale rather than current.
        let generation = self.vault.cache_generation(&tenant);
        let record = match self.vault.store().document(&tenant, TOKEN_DOC, &id) {
            Ok(Some(bytes)) => decode(&tenant, &bytes)?,
            Ok(None) => return Ok(Err(Rejected::Unknown)),
            // A tenant id the store refuses (bad characters) names no token.
            Err(tessera_store::StoreError::InvalidId { .. }) => {
                return Ok(Err(Rejected::Malformed));
            }
            Err(error) => return Err(error.into()),
        };
        let verdict = check(&tenant, &record, token);
        if verdict.is_ok() {
            let mut cache = self.cache();
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(
                (tenant, id),
                Cached {
                    record,
                    read_at: Instant::now(),
                    generation,
                },
            );
        }
        Ok(verdict)
    }

    /// The principal of the token with id `id` if it is still valid — for a
    /// console session, which names its API token by id only. From memory
    /// if read recently ([`Limits::token_cache_ms`]; a revocation through
    /// this server empties that entry at once), else from the store: call
    /// it off the async threads.
    ///
    /// [`Limits::token_cache_ms`]: crate::Limits::token_cache_ms
    pub fn by_id(&self, tenant: &str, id: &str) -> Result<Result<Principal, Rejected>, VaultError> {
        if !valid_id(id) {
            return Ok(Err(Rejected::Malformed));
        }
        let key = (tenant.to_owned(), id.to_owned());
        let cached = self
            .cache()
            .get(&key)
            .filter(|c| c.read_at.elapsed() <= self.ttl)
            .map(|c| c.record.clone());
        let record = match cached {
            Some(record) => record,
            None => match self.vault.store().document(tenant, TOKEN_DOC, id) {
                Ok(Some(bytes)) => decode(tenant, &bytes)?,
                Ok(None) => return Ok(Err(Rejected::Unknown)),
                Err(tessera_store::StoreError::InvalidId { .. }) => {
                    return Ok(Err(Rejected::Malformed));
                }
                Err(error) => return Err(error.into()),
            },
        };
        if record.info.revoked {
            return Ok(Err(Rejected::Revoked));
        }
        if record.info.role == Role::Subject {
            return Ok(Err(Rejected::Unknown));
        }
        Ok(Ok(Principal {
            tenant: tenant.to_owned(),
            role: record.info.role,
            token_id: record.info.id.clone(),
            subject: None,
        }))
    }

    fn read(&self, tenant: &str, id: &str) -> Result<Option<TokenRecord>, VaultError> {
        self.vault.settings(tenant)?;
        self.vault
            .store()
            .document(tenant, TOKEN_DOC, id)?
            .map(|bytes| decode(tenant, &bytes))
            .transpose()
    }

    fn put(&self, tenant: &str, record: &TokenRecord) -> Result<(), VaultError> {
        let bytes = serde_json::to_vec(record).map_err(|e| corrupt(tenant, e))?;
        self.vault
            .store()
            .put_document(tenant, TOKEN_DOC, &record.info.id, &bytes)?;
        Ok(())
    }
}

fn check(tenant: &str, record: &TokenRecord, token: &str) -> Result<Principal, Rejected> {
    let stored = hex::decode(&record.hash).unwrap_or_default();
    if !bool::from(stored.as_slice().ct_eq(&digest(token))) {
        return Err(Rejected::Unknown);
    }
    if record.info.revoked {
        return Err(Rejected::Revoked);
    }
    // Subject tokens are never API tokens, whatever a record says.
    if record.info.role == Role::Subject {
        return Err(Rejected::Unknown);
    }
    Ok(Principal {
        tenant: tenant.to_owned(),
        role: record.info.role,
        token_id: record.info.id.clone(),
        subject: None,
    })
}

fn decode(tenant: &str, bytes: &[u8]) -> Result<TokenRecord, VaultError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(tenant, e))
}

fn corrupt(tenant: &str, error: serde_json::Error) -> VaultError {
    VaultError::Corrupt {
        tenant: tenant.to_owned(),
        what: "api token",
        detail: error.to_string(),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_only_well_formed_tokens() {
        let id = "0123456789abcdef";
        let secret = "ab".repeat(32);
        let token = format!("tsk_{}_{id}_{secret}", hex::encode("acme"));
        assert_eq!(parse(&token), Some(("acme".into(), id.into())));
        for bad in [
            String::new(),
            format!("tsk__{id}_{secret}"),
            format!("tsk_{}_{id}_{secret}_x", hex::encode("acme")),
            format!("tsk_{}_{id}_{}", hex::encode("acme"), "AB".repeat(32)),
            format!("tsk_zz_{id}_{secret}"),
            format!("xyz_{}_{id}_{secret}", hex::encode("acme")),
            format!("tsk_{}_{}_{secret}", hex::encode("acme"), "0".repeat(15)),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
    }
}

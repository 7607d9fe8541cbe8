//! Subject tokens: the short-lived credentials with which a person reaches
//! their own data under `/v1/me`.
//!
//! A subject token reads `tst_<tenant in hex>_<claims>_<tag in hex>`. The
//! claims are base64url (no padding) JSON: version, subject id, a random
//! token id, issue and expiry times. The tag is HMAC-SHA256 under the
//! tenant's subject-token key, derived from the tenant key
//! ([`MacPurpose::SubjectToken`]), over the tenant and the claims, and is
//! checked in constant time. Nothing is stored to issue or verify a token,
//! so any node with the master key verifies what another node issued; the
//! one store read is the revocation list, where logging out records a token
//! id until the token would have expired anyway.
//!
//! Base64url may contain `_`: the claims are everything between the first
//! `_` after the tenant and the last `_` before the tag.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tessera_privacy::{MacPurpose, TenantMac};
use tessera_vault::{Actor, AuditEntry, IdentityKind, Vault, VaultError};

use crate::auth::Role;
use crate::error::{ApiError, BodyShape, ErrorBody, Json, PrivateJson};
use crate::handlers::plain_id;
use crate::tokens::{Principal, SubjectSession};
use crate::{AppState, blocking};

/// What every subject token starts with (API tokens start with `tsk_`).
pub const SUBJECT_TOKEN_PREFIX: &str = "tst_";
/// The store document kind of revoked subject token ids (until they expire).
pub const REVOKED_SUBJECT_TOKEN_DOC: &str = "subject-token-revoked";
/// The longest string taken for a signed token (a subject token, a console
/// session).
pub(crate) const MAX_TOKEN_LEN: usize = 2048;
/// How far in the future an issue time may be (clocks of nodes differ).
const CLOCK_SKEW_MS: i64 = 60_000;
/// The version of the claims, and the first field of the tag.
const VERSION: u8 = 1;
const TAG_DOMAIN: &[u8] = b"tessera subject token v1";
/// How many revocation entries a logout looks at to remove expired ones.
const PRUNE_PAGE: usize = 64;

/// What a subject token says, MAC'd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    v: u8,
    /// The subject (the person's root subject when issued).
    sub: String,
    /// The token id: 16 random bytes, hex.
    jti: String,
    iat: i64,
    exp: i64,
}

/// A subject token as issued: the only time the token string is seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubjectTokenIssued {
    /// The bearer token for `/v1/me`.
    pub token: String,
    /// The subject it acts for.
    pub subject: String,
    /// The token's id, as the audit trail names it.
    pub token_id: String,
    pub expires_at_ms: i64,
}

/// Why a subject token was not accepted (all become 401 `unauthorized`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectRejected {
    /// Not shaped like a subject token.
    Malformed,
    /// The tag does not verify: altered, of another tenant, or made up.
    Invalid,
    Expired,
    /// Ended by `DELETE /v1/me/session`.
    Revoked,
}

impl SubjectRejected {
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => "the token is not a Tessera token",
            Self::Invalid => "the token is not valid",
            Self::Expired => "the subject token has expired; sign in again for a new one",
            Self::Revoked => "the subject token was ended (logged out); sign in again",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Revoked {
    expires_at_ms: i64,
}

/// Issues, verifies and revokes subject tokens over the vault.
#[derive(Debug, Clone)]
pub struct SubjectTokens {
    vault: Arc<Vault>,
    ttl_ms: i64,
}

impl SubjectTokens {
    /// Tokens valid for `ttl_s` seconds from issue.
    pub fn new(vault: Arc<Vault>, ttl_s: u64) -> Self {
        Self {
            vault,
            ttl_ms: i64::try_from(ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX),
        }
    }

    fn mac(&self, tenant: &str) -> Result<TenantMac, VaultError> {
        self.vault
            .service_mac(tenant, MacPurpose::SubjectToken)?
            .ok_or_else(|| VaultError::Corrupt {
                tenant: tenant.to_owned(),
                what: "subject-token key",
                detail: "the vault does not hand out this key".into(),
            })
    }

    /// Issues a token for the person `subject` belongs to (its root
    /// subject). Audited (`subject_token.issue`, naming the subject, the
    /// token id, its expiry and `how` it was obtained) and durable before it
    /// returns; the token itself is stored nowhere.
    pub fn issue(
        &self,
        tenant: &str,
        subject: &str,
        actor: &Actor,
        how: &str,
    ) -> Result<SubjectTokenIssued, VaultError> {
        let subject = self.vault.resolve_subject(tenant, subject)?;
        let mac = self.mac(tenant)?;
        let iat = self.vault.now_ms();
        let claims = Claims {
            v: VERSION,
            sub: subject.clone(),
            jti: random_hex(16)?,
            iat,
            exp: iat.saturating_add(self.ttl_ms),
        };
        let json = serde_json::to_vec(&claims).map_err(|e| VaultError::Corrupt {
            tenant: tenant.to_owned(),
            what: "subject token",
            detail: e.to_string(),
        })?;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let tag = mac.mac(&[TAG_DOMAIN, tenant.as_bytes(), payload.as_bytes()]);
        let token = format!(
            "{SUBJECT_TOKEN_PREFIX}{}_{payload}_{}",
            hex::encode(tenant),
            hex::encode(tag)
        );
        let entry = AuditEntry::new(actor, "subject_token.issue")
            .subject(&subject)
            .detail(format!("token {} until {} ({how})", claims.jti, claims.exp));
        self.vault.record_admin_action(tenant, entry)?;
        self.vault.flush()?;
        Ok(SubjectTokenIssued {
            token,
            subject,
            token_id: claims.jti,
            expires_at_ms: claims.exp,
        })
    }

    /// Verifies a subject token: its tag (constant time), its times by the
    /// vault's clock, and the revocation list (one store read: call it off
    /// the async threads).
    pub fn verify(&self, token: &str) -> Result<Result<Principal, SubjectRejected>, VaultError> {
        let Some((tenant, payload, tag)) = parse(token) else {
            return Ok(Err(SubjectRejected::Malformed));
        };
        let mac = match self.mac(&tenant) {
            Ok(mac) => mac,
            Err(VaultError::UnknownTenant { .. }) => return Ok(Err(SubjectRejected::Invalid)),
            Err(VaultError::Store(tessera_store::StoreError::InvalidId { .. })) => {
                return Ok(Err(SubjectRejected::Malformed));
            }
            Err(error) => return Err(error),
        };
        if !mac.verify(&[TAG_DOMAIN, tenant.as_bytes(), payload.as_bytes()], &tag) {
            return Ok(Err(SubjectRejected::Invalid));
        }
        // Made by this tenant's key: a claims body that does not decode is
        // not one Tessera issued.
        let claims: Claims = match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
        {
            Some(claims) => claims,
            None => return Ok(Err(SubjectRejected::Invalid)),
        };
        let now = self.vault.now_ms();
        if claims.v != VERSION || claims.iat > now.saturating_add(CLOCK_SKEW_MS) {
            return Ok(Err(SubjectRejected::Invalid));
        }
        if now >= claims.exp {
            return Ok(Err(SubjectRejected::Expired));
        }
        if !is_random_id(&claims.jti) {
            return Ok(Err(SubjectRejected::Invalid));
        }
        if self
            .vault
            .store()
            .document(&tenant, REVOKED_SUBJECT_TOKEN_DOC, &claims.jti)?
            .is_some()
        {
            return Ok(Err(SubjectRejected::Revoked));
        }
        Ok(Ok(Principal {
            tenant,
            role: Role::Subject,
            token_id: claims.jti,
            subject: Some(SubjectSession {
                id: claims.sub,
                expires_at_ms: claims.exp,
            }),
        }))
    }

    /// Ends a token before its expiry (logout): its id is kept on the
    /// tenant's revocation list until then, and expired entries are pruned.
    /// Audited (`subject_token.revoke`) once stored; if the audit trail
    /// refuses the entry (damaged), the logout still holds and the failure
    /// is logged.
    pub fn revoke(&self, principal: &Principal) -> Result<(), VaultError> {
        let Some(session) = &principal.subject else {
            return Ok(());
        };
        let entry = AuditEntry::new(&principal.actor(), "subject_token.revoke")
            .subject(&session.id)
            .detail(format!("token {}", principal.token_id));
        record_revocation(
            &self.vault,
            &principal.tenant,
            Revocation {
                kind: REVOKED_SUBJECT_TOKEN_DOC,
                id: &principal.token_id,
                expires_at_ms: session.expires_at_ms,
                what: "subject token",
            },
            entry,
        )
    }
}

/// An id to keep on a tenant's list of ended tokens or sessions.
pub(crate) struct Revocation<'a> {
    /// The document kind of the list.
    pub kind: &'static str,
    pub id: &'a str,
    /// When the token would have expired: the entry is pruned after.
    pub expires_at_ms: i64,
    /// What ends, for errors and logs ("subject token").
    pub what: &'static str,
}

/// Ends a signed token or session before its expiry: keeps its id on the
/// tenant's list until it would have expired, then audits `entry`, then
/// prunes the list's expired ids. The revocation is stored first: it holds
/// even if its audit entry cannot be written (a damaged trail, logged),
/// and the trail never records an ending that did not happen.
pub(crate) fn record_revocation(
    vault: &Vault,
    tenant: &str,
    revocation: Revocation<'_>,
    entry: AuditEntry,
) -> Result<(), VaultError> {
    let Revocation {
        kind,
        id,
        expires_at_ms,
        what,
    } = revocation;
    let bytes =
        serde_json::to_vec(&Revoked { expires_at_ms }).map_err(|e| VaultError::Corrupt {
            tenant: tenant.to_owned(),
            what,
            detail: e.to_string(),
        })?;
    vault.store().put_document(tenant, kind, id, &bytes)?;
    vault.flush()?;
    match vault.record_admin_action(tenant, entry) {
        Ok(_) => vault.flush()?,
        Err(error) => {
            tracing::error!(%tenant, %error, %id, "{what} ended, but its audit entry not written");
        }
    }
    let now = vault.now_ms();
    prune_expired(vault, tenant, kind, |bytes| {
        serde_json::from_slice::<Revoked>(bytes)
            .map(|r| r.expires_at_ms <= now)
            .unwrap_or(true)
    })
}

/// The tenant, the claims text and the tag of a well-formed signed token of
/// the kind `prefix` names: `<prefix><tenant hex>_<claims>_<tag hex>`, the
/// claims base64url and the tag 32 bytes.
pub(crate) fn parse_signed<'a>(token: &'a str, prefix: &str) -> Option<(String, &'a str, Vec<u8>)> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let rest = token.strip_prefix(prefix)?;
    let (tenant_hex, rest) = rest.split_once('_')?;
    let (payload, tag_hex) = rest.rsplit_once('_')?;
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if tenant_hex.is_empty()
        || tag_hex.len() != 64
        || payload.is_empty()
        || !payload.bytes().all(base64url)
    {
        return None;
    }
    let tenant = String::from_utf8(hex::decode(tenant_hex).ok()?).ok()?;
    let tag = hex::decode(tag_hex).ok()?;
    Some((tenant, payload, tag))
}

fn parse(token: &str) -> Option<(String, &str, Vec<u8>)> {
    parse_signed(token, SUBJECT_TOKEN_PREFIX)
}

/// Whether a token could be a subject token (then only the subject-token
/// verifier looks at it).
pub fn is_subject_token(token: &str) -> bool {
    token.starts_with(SUBJECT_TOKEN_PREFIX)
}

/// Whether `id` is a token or session id as `random_hex(16)` makes them.
pub(crate) fn is_random_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) fn random_hex(bytes: usize) -> Result<String, VaultError> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|error| {
        VaultError::KeyGen(tessera_privacy::KeyGenError::Randomness {
            reason: error.to_string(),
        })
    })?;
    Ok(hex::encode(buf))
}

/// Removes expired documents of a kind whose ids are random hex: looks at
/// [`PRUNE_PAGE`] of them from a random point (wrapping around), so each
/// call costs the same however many there are, and every entry is looked at
/// by some call.
pub(crate) fn prune_expired(
    vault: &Vault,
    tenant: &str,
    kind: &str,
    expired: impl Fn(&[u8]) -> bool,
) -> Result<(), VaultError> {
    let store = vault.store();
    let start = random_hex(16)?;
    let mut page = store.documents(tenant, kind, Some(&start), PRUNE_PAGE)?;
    if page.len() < PRUNE_PAGE {
        page.extend(store.documents(tenant, kind, None, PRUNE_PAGE - page.len())?);
    }
    for (id, bytes) in page {
        if expired(&bytes) {
            store.delete_document(tenant, kind, &id)?;
        }
    }
    Ok(())
}

/// `POST /v1/subject-tokens` (portal, operator): who is asking, as the
/// tenant's own login established.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueSubjectToken {
    /// A subject id, or
    #[serde(default)]
    pub subject: Option<String>,
    /// an identity of the person (email, phone, member id, external id).
    #[serde(default)]
    pub identity: Option<IdentityRef>,
}

impl BodyShape for IssueSubjectToken {
    const SHAPE: &'static str = r#"{"subject": "<subject id>"} or {"identity": {"kind": "email" | "phone" | "member_id" | "external:<namespace>", "value": "<string>"}}"#;
}

/// An identity by kind and value, as ingest names them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityRef {
    /// `email`, `phone`, `member_id` or `external:<namespace>`.
    pub kind: String,
    pub value: String,
}

enum Lookup {
    Subject(String),
    Identity(IdentityKind, String),
}

/// `POST /v1/subject-tokens`: a subject token for a person the tenant's
/// portal has signed in.
#[utoipa::path(post, path = "/v1/subject-tokens", tag = "me", request_body = IssueSubjectToken,
    responses(
        (status = 201, description = "A subject token for the person.", body = SubjectTokenIssued),
        (status = 404, description = "The tenant has no such subject or identity (by identity, \
            an erased person is unknown too).", body = ErrorBody),
        (status = 410, description = "The subject (asked for by id) was erased.",
            body = ErrorBody),
    ))]
pub(crate) async fn issue(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    PrivateJson(body): PrivateJson<IssueSubjectToken>,
) -> Result<(StatusCode, Json<SubjectTokenIssued>), ApiError> {
    let unknown =
        || ApiError::not_found("unknown_subject", "the tenant has no subject with that id");
    let lookup = match (body.subject, body.identity) {
        (Some(subject), None) => {
            if !plain_id(&subject) {
                return Err(unknown());
            }
            Lookup::Subject(subject)
        }
        (None, Some(identity)) => {
            let kind = IdentityKind::parse(&identity.kind).map_err(|error| {
                ApiError::unprocessable(
                    "invalid_identity",
                    "`identity.kind` is not an identity kind",
                )
                .with_field("identity.kind", error.to_string())
            })?;
            if kind == IdentityKind::DeviceId {
                return Err(ApiError::unprocessable(
                    "invalid_identity",
                    "a device id does not identify one person (devices are shared); use an \
                     email, phone, member id or external id",
                )
                .with_field("identity.kind", "device ids are shared by households"));
            }
            Lookup::Identity(kind, identity.value)
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "give exactly one of `subject` and `identity`",
            )
            .with_field("subject", "exactly one of subject and identity"));
        }
    };
    let issued = blocking(move || {
        let actor = principal.actor();
        let subject = match lookup {
            Lookup::Subject(subject) => subject,
            // Only an identity a trusted source gave (see `Vault::find_trusted_subject`).
            Lookup::Identity(kind, value) => state
                .vault
                .find_trusted_subject(&principal.tenant, &kind, &value, &actor)?
                .ok_or_else(|| {
                    ApiError::not_found(
                        "unknown_subject",
                        "the tenant knows nobody with that identity",
                    )
                })?,
        };
        Ok(state
            .subject_tokens
            .issue(&principal.tenant, &subject, &actor, "portal")?)
    })
    .await?;
    tracing::info!(token = %issued.token_id, "subject token issued");
    Ok((StatusCode::CREATED, Json(issued)))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_only_well_formed_tokens_whose_claims_may_hold_underscores() {
        let tag = "ab".repeat(32);
        let tenant = hex::encode("acme");
        let good = format!("tst_{tenant}_eyJ2Ij_oxfQ_{tag}");
        let (t, payload, mac) = parse(&good).expect("parses");
        assert_eq!(
            (t.as_str(), payload, mac.len()),
            ("acme", "eyJ2Ij_oxfQ", 32)
        );
        for bad in [
            String::new(),
            format!("tsk_{tenant}_eyJ2_{tag}"),
            format!("tst__eyJ2_{tag}"),
            format!("tst_{tenant}__{tag}"),
            format!("tst_{tenant}_eyJ2_{}", "ab".repeat(31)),
            format!("tst_{tenant}_ey.J2_{tag}"),
            format!("tst_zz_eyJ2_{tag}"),
            format!("tst_{tenant}_{}_{tag}", "a".repeat(3000)),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
    }
}

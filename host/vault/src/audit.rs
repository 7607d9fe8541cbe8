//! The audit trail: append-only, one hash chain per tenant, keyed so that
//! nobody without the master key can forge an entry.
//!
//! Entry `n` is stored as `prev ‖ tag ‖ body`, where `body` is the entry's
//! JSON, `prev` is entry `n-1`'s tag (32 zero bytes for the first) and
//! `tag = HMAC-SHA256(audit key; prev, n, body)` under a key derived from the
//! tenant key ([`MacPurpose::Audit`]). Editing a body, reordering, removing
//! or inserting an entry breaks the chain at that point; removing the newest
//! entries is caught by the store's head counter, which records the last
//! sequence number ever appended. What the chain cannot catch alone is an
//! attacker who truncates the tail *and* rewinds the counter: operators who
//! need that anchor the head ([`AuditReport::head_tag`]) outside the machine,
//! e.g. in their SIEM, and compare it on verify.

use serde::{Deserialize, Serialize};
use tessera_privacy::TenantMac;
use tessera_store::{Store, StoreError};

use crate::error::VaultError;
use crate::model::Actor;

const TAG_LEN: usize = 32;
/// The action of the entry that restarts a chain whose newest entry was
/// destroyed: it links to nothing, and verify reports it for ever.
pub(crate) const RESTART: &str = "audit.restart";
const PAGE: usize = 512;
/// How often an append retries after losing a race to another writer.
const APPEND_RETRIES: usize = 64;

/// One audit entry. It names who did what to whose data; it never holds
/// personal data itself (trait values, identities, event contents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: i64,
    pub actor: Actor,
    /// `tenant.create`, `subject.access`, `subject.rectify`, `plugin.read`, …
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// For a batch access: how many subjects it covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_version: Option<String>,
    /// Field names read or changed (never their values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry with the required fields; set the rest with struct update.
    pub fn new(actor: &Actor, action: &str) -> Self {
        Self {
            seq: 0,
            at_ms: 0,
            actor: actor.clone(),
            action: action.to_owned(),
            subject: None,
            batch: None,
            plugin: None,
            plugin_version: None,
            fields: Vec::new(),
            purpose: None,
            detail: None,
        }
    }

    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = Some(subject.to_owned());
        self
    }

    pub fn fields<I: IntoIterator<Item = S>, S: Into<String>>(mut self, fields: I) -> Self {
        self.fields = fields.into_iter().map(Into::into).collect();
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// One problem [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditProblem {
    pub seq: u64,
    pub reason: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditReport {
    pub tenant: String,
    /// Entries read.
    pub entries: u64,
    /// The last sequence number the store says was appended.
    pub head: u64,
    /// The newest entry's tag, hex: anchor it elsewhere to detect truncation.
    pub head_tag: String,
    pub problems: Vec<AuditProblem>,
}

impl AuditReport {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

fn encode(prev: &[u8; TAG_LEN], tag: &[u8; TAG_LEN], body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(2 * TAG_LEN + body.len());
    bytes.extend_from_slice(prev);
    bytes.extend_from_slice(tag);
    bytes.extend_from_slice(body);
    bytes
}

fn decode(bytes: &[u8]) -> Option<([u8; TAG_LEN], [u8; TAG_LEN], &[u8])> {
    let (prev, rest) = bytes.split_first_chunk::<TAG_LEN>()?;
    let (tag, body) = rest.split_first_chunk::<TAG_LEN>()?;
    Some((*prev, *tag, body))
}

fn chain_tag(mac: &TenantMac, prev: &[u8; TAG_LEN], seq: u64, body: &[u8]) -> [u8; TAG_LEN] {
    mac.mac(&[prev, &seq.to_be_bytes(), body])
}

/// Appends `entry` (its `seq` and `at_ms` are filled in) to the tenant's
/// chain; returns the sequence number. Retries when another writer appended
/// first; refuses to extend a chain whose head entry is missing or damaged.
pub(crate) fn append(
    store: &dyn Store,
    mac: &TenantMac,
    tenant: &str,
    mut entry: AuditEntry,
    now_ms: i64,
) -> Result<u64, VaultError> {
    entry.at_ms = now_ms;
    let restart = entry.action == RESTART;
    for _ in 0..APPEND_RETRIES {
        let head = store.audit_head(tenant)?;
        let prev = if head == 0 {
            [0; TAG_LEN]
        } else {
            let last = store.audit(tenant, head, 1)?;
            let record = last.first().filter(|r| r.seq == head);
            match (record.and_then(|r| decode(&r.data)), restart) {
                (Some((_, tag, _)), false) => tag,
                (None, true) => [0; TAG_LEN],
                (Some(_), true) => {
                    return Err(VaultError::AuditDamaged {
                        tenant: tenant.to_owned(),
                        seq: head,
                        reason: "nothing to restart: the newest entry is intact".into(),
                    });
                }
                (None, false) => {
                    return Err(VaultError::AuditDamaged {
                        tenant: tenant.to_owned(),
                        seq: head,
                        reason: "the newest entry is missing or truncated; after \
                                 investigating, `tessera audit restart` starts a new chain \
                                 from here"
                            .into(),
                    });
                }
            }
        };
        let seq = head + 1;
        entry.seq = seq;
        let body = serde_json::to_vec(&entry)
            .map_err(|e| VaultError::corrupt(tenant, "audit entry", e))?;
        let tag = chain_tag(mac, &prev, seq, &body);
        match store.append_audit(tenant, seq, &encode(&prev, &tag, &body)) {
            Ok(()) => return Ok(seq),
            Err(StoreError::AuditConflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(VaultError::Store(StoreError::AuditConflict {
        tenant: tenant.to_owned(),
        expected: 0,
        last: 0,
    }))
}

/// Reads entries `from..` (at most `limit`), checking nothing: for searches
/// and a subject's access log. Undecodable entries are skipped here and
/// reported by [`verify`].
pub(crate) fn read(
    store: &dyn Store,
    tenant: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, VaultError> {
    read_page(store, tenant, from, limit).map(|(entries, _)| entries)
}

/// Like [`read`], and the sequence number to continue from (None at the
/// end): paging follows the store's numbering, never the entries' bodies.
pub(crate) fn read_page(
    store: &dyn Store,
    tenant: &str,
    from: u64,
    limit: usize,
) -> Result<(Vec<AuditEntry>, Option<u64>), VaultError> {
    let records = store.audit(tenant, from, limit)?;
    let next = records
        .last()
        .filter(|_| records.len() == limit)
        .map(|r| r.seq + 1);
    let entries = records
        .iter()
        .filter_map(|record| decode(&record.data))
        .filter_map(|(_, _, body)| serde_json::from_slice(body).ok())
        .collect();
    Ok((entries, next))
}

/// Walks the tenant's whole chain and reports every break.
pub(crate) fn verify(
    store: &dyn Store,
    mac: &TenantMac,
    tenant: &str,
) -> Result<AuditReport, VaultError> {
    let head = store.audit_head(tenant)?;
    let mut report = AuditReport {
        tenant: tenant.to_owned(),
        entries: 0,
        head,
        head_tag: String::new(),
        problems: Vec::new(),
    };
    let mut problems = Vec::new();
    let mut expected = 1u64;
    let mut prev = [0u8; TAG_LEN];
    let mut last_tag = [0u8; TAG_LEN];
    loop {
        let page = store.audit(tenant, expected, PAGE)?;
        let Some(last) = page.last().map(|r| r.seq) else {
            break;
        };
        for record in &page {
            report.entries += 1;
            if record.seq != expected {
                problems.push(problem(
                    expected,
                    if record.seq == expected + 1 {
                        format!("entry {expected} was removed")
                    } else {
                        format!("entries {expected} to {} were removed", record.seq - 1)
                    },
                ));
            }
            let Some((stored_prev, tag, body)) = decode(&record.data) else {
                problems.push(problem(record.seq, "the entry is truncated".into()));
                expected = record.seq + 1;
                continue;
            };
            let restarted = stored_prev == [0; TAG_LEN]
                && record.seq > 1
                && serde_json::from_slice::<AuditEntry>(body).is_ok_and(|e| e.action == RESTART);
            if restarted {
                problems.push(problem(
                    record.seq,
                    "the chain was restarted here after the entries before it were damaged \
                     (`tessera audit restart`)"
                        .into(),
                ));
            } else if record.seq == expected && stored_prev != prev {
                problems.push(problem(
                    record.seq,
                    "the link to the previous entry is broken (an entry was replaced or reordered)"
                        .into(),
                ));
            }
            if !mac.verify(&[&stored_prev, &record.seq.to_be_bytes(), body], &tag) {
                problems.push(problem(
                    record.seq,
                    "the entry was edited (its tag does not match its contents)".into(),
                ));
            } else if serde_json::from_slice::<AuditEntry>(body)
                .map(|entry| entry.seq != record.seq)
                .unwrap_or(true)
            {
                problems.push(problem(
                    record.seq,
                    "the entry's body is not a valid entry".into(),
                ));
            }
            prev = tag;
            last_tag = tag;
            expected = record.seq + 1;
        }
        if page.len() < PAGE {
            break;
        }
        expected = last + 1;
    }
    let last_seen = expected - 1;
    if last_seen < head {
        problems.push(problem(
            last_seen + 1,
            format!(
                "entries {} to {head} were removed from the end of the trail",
                last_seen + 1
            ),
        ));
    } else if last_seen > head {
        problems.push(problem(
            head + 1,
            format!("entries after {head} were added outside Tessera"),
        ));
    }
    report.head_tag = hex::encode(last_tag);
    report.problems = problems;
    Ok(report)
}

fn problem(seq: u64, reason: String) -> AuditProblem {
    AuditProblem { seq, reason }
}

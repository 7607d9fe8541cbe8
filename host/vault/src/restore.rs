//! Erasing again, after the records were restored from a backup, the people
//! whose keys were erased after that backup was taken.
//!
//! The key store keeps an erasure ledger (slot, time, cause; nothing
//! personal) beside the keys, written with each erasure
//! ([`KeyStore::erasures_after`](tessera_privacy::KeyStore::erasures_after)).
//! A restored records backup still holds those people's subjects, identity
//! links and records, but not their suppression entries, deletion requests
//! or purges. Their keys are gone, so nothing of them opens; this puts back
//! the rest: suppression, a deletion request with its purge, an audit entry.
//!
//! Each tenant keeps, in its records, the ledger position it has checked up
//! to (a document). A restore of the records brings that mark back to what
//! it was when the backup was taken, so exactly the erasures since then are
//! checked again; when nothing was restored, a check reads only the ledger
//! entries since the last one (one indexed query) and no subject.

use std::collections::{HashMap, HashSet};

use tessera_privacy::{Erasure, ErasureCause, SubjectKey};

use crate::audit::AuditEntry;
use crate::error::VaultError;
use crate::model::{Actor, DeletionRequest, DeletionStatus};
use crate::rights::{PURGE_JOB, put_deletion_request, queue_deletion};
use crate::vault::{Vault, random_id, slot_of};

/// Store document (kind, id) holding a tenant's ledger mark: 8 bytes,
/// big-endian.
const LEDGER_DOC: &str = "erasure-ledger";
const LEDGER_MARK: &str = "mark";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// What [`Vault::reerase_restored`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReerasureReport {
    /// (tenant, subject) of each person erased again, with the deletion
    /// request made for them.
    pub reerased: Vec<Reerased>,
    /// The key store's ledger was behind a tenant's mark: the key store was
    /// restored from a backup or replaced, and the whole ledger was checked.
    pub ledger_went_back: bool,
}

/// One subject erased again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reerased {
    pub tenant: String,
    pub subject: String,
    pub request: String,
    /// When its key was erased (the key store's clock).
    pub key_erased_at_ms: i64,
}

impl Vault {
    /// Erases again every subject whose key the erasure ledger says was
    /// erased but whose records are there as if it were not (the records
    /// were restored from a backup taken before): its identities are
    /// suppressed (if the erasure was a request, not a retention expiry)
    /// and unlinked, a deletion request and its purge job are recorded and
    /// the audit trail says so. Cheap when nothing was restored. Nothing
    /// happens with a key store that keeps no ledger (the key file).
    pub fn reerase_restored(&self) -> Result<ReerasureReport, VaultError> {
        let mut report = ReerasureReport::default();
        let mut marks = Vec::new();
        for tenant in self.tenant_ids()? {
            let stored = self.ledger_mark(&tenant)?;
            marks.push((tenant, stored, stored));
        }
        let Some(from) = marks.iter().map(|(_, _, mark)| *mark).min() else {
            return Ok(report);
        };
        let Some(mut read) = self.keys.erasures_after(from)? else {
            return Ok(report);
        };
        if marks.iter().any(|(_, _, mark)| *mark > read.head) {
            // The ledger is behind what was checked already: the key store
            // was restored (or is another one). Check all of it again.
            report.ledger_went_back = true;
            for (_, _, mark) in &mut marks {
                if *mark > read.head {
                    *mark = 0;
                }
            }
            if from > 0 {
                read = self.keys.erasures_after(0)?.unwrap_or_default();
            }
        }
        for (tenant, stored, mark) in marks {
            let entries: Vec<Erasure> = read
                .entries
                .iter()
                .filter(|entry| entry.position > mark)
                .copied()
                .collect();
            if !entries.is_empty() {
                report
                    .reerased
                    .extend(self.reerase_tenant(&tenant, &entries)?);
            }
            let settled = read.settled.max(mark);
            if settled != stored {
                self.store.put_document(
                    &tenant,
                    LEDGER_DOC,
                    LEDGER_MARK,
                    &settled.to_be_bytes(),
                )?;
            }
        }
        if !report.reerased.is_empty() {
            self.store.flush()?;
        }
        Ok(report)
    }

    /// The ledger position `tenant` has been checked up to (0: none).
    fn ledger_mark(&self, tenant: &str) -> Result<u64, VaultError> {
        let Some(bytes) = self.store.document(tenant, LEDGER_DOC, LEDGER_MARK)? else {
            return Ok(0);
        };
        let bytes: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::corrupt(tenant, "erasure ledger mark", "not 8 bytes"))?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// The subjects that unfinished deletion requests of `tenant` name:
    /// they are being erased the normal way, and their queued purge jobs
    /// (`purge:<tenant>:<request>`, listed without reading the finished
    /// requests) finish it.
    fn being_purged(&self, tenant: &str) -> Result<HashSet<String>, VaultError> {
        let prefix = format!("{PURGE_JOB}:{tenant}:");
        let mut subjects = HashSet::new();
        let mut after = prefix.clone();
        loop {
            let page = self.store.jobs(Some(&after), 256)?;
            for job in &page {
                let Some(request) = job.id.strip_prefix(&prefix) else {
                    // Past this tenant's purge jobs.
                    return Ok(subjects);
                };
                match self.deletion_request(tenant, request) {
                    Ok(request) if request.status != DeletionStatus::Completed => {
                        subjects.extend(request.subjects);
                    }
                    Ok(_) | Err(VaultError::UnknownRequest { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
            match page.last() {
                Some(last) if page.len() == 256 => after = last.id.clone(),
                _ => return Ok(subjects),
            }
        }
    }

    /// Erases again the subjects of `tenant` that name a slot of `entries`.
    fn reerase_tenant(
        &self,
        tenant: &str,
        entries: &[Erasure],
    ) -> Result<Vec<Reerased>, VaultError> {
        let refs: Vec<Vec<u8>> = entries
            .iter()
            .map(|entry| entry.slot.to_be_bytes().to_vec())
            .collect();
        let found = self.store.subjects_with_key_refs(tenant, &refs)?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = self.tenant(tenant)?;
        let _guard = self.write_lock(&tenant)?;
        let pending = self.being_purged(&tenant.id)?;
        let by_slot: HashMap<u64, &Erasure> =
            entries.iter().map(|entry| (entry.slot, entry)).collect();
        let mut done = Vec::new();
        for subject in found {
            if pending.contains(&subject) {
                continue;
            }
            // Looked up again under the lock: a purge may have run since.
            let Some(record) = self.store.subject(&tenant.id, &subject)? else {
                continue;
            };
            let slot = slot_of(&tenant.id, &record)?;
            let Some(erasure) = by_slot.get(&slot).copied() else {
                continue;
            };
            let key_back = self.keys.get(slot)?.is_some_and(|wrapped| {
                SubjectKey::unwrap(&wrapped, &tenant.key, &tenant.id, &subject).is_ok()
            });
            if key_back {
                // The ledger names the slot but the key is there: not this
                // subject's erasure to redo (the key store disagrees with
                // its own ledger; nothing is destroyed on that word alone).
                tracing::warn!(
                    tenant = %tenant.id, slot,
                    "the erasure ledger names a slot whose key is still stored; left alone"
                );
                continue;
            }
            done.push(self.reerase_subject(&tenant, &subject, erasure)?);
        }
        if !done.is_empty() {
            self.announce_change_or_log(&tenant.id);
        }
        Ok(done)
    }

    fn reerase_subject(
        &self,
        tenant: &crate::vault::Tenant,
        subject: &str,
        erasure: &Erasure,
    ) -> Result<Reerased, VaultError> {
        let store = self.store.as_ref();
        let now = self.now();
        let id = random_id()?;
        let actor = Actor::system("restore");
        self.forget_key(tenant, subject);
        let subjects = vec![subject.to_owned()];
        self.unindex_without_profile(&tenant.id, subject)?;
        self.notify_erasure(&tenant.id, &subjects)?;
        let hashes = store.identities_of(&tenant.id, subject)?;
        // Which kind each identity is cannot be told without the erased key,
        // so every identity of a person who asked is suppressed (device ids
        // too); the entry carries the time of the first erasure, so that a
        // consent given since lifts it as it would have.
        let mut suppressed = 0;
        if erasure.cause == ErasureCause::Request {
            let entry = serde_json::to_vec(
                &serde_json::json!({ "request": id, "at_ms": erasure.erased_at_ms }),
            )
            .map_err(|e| VaultError::corrupt(&tenant.id, "suppression", e))?;
            for hash in &hashes {
                store.suppress(&tenant.id, *hash, &entry)?;
                suppressed += 1;
            }
        }
        let reason = format!(
            "erased again after a restore of the records from a backup: its key was erased \
             ({}) at {} ms since the epoch",
            match erasure.cause {
                ErasureCause::Request => "deletion request",
                ErasureCause::Expiry => "retention",
            },
            erasure.erased_at_ms
        );
        let mut request = DeletionRequest {
            id: id.clone(),
            tenant: tenant.id.clone(),
            subject: subject.to_owned(),
            subjects,
            requested_at_ms: now,
            deadline_ms: now
                .saturating_add(i64::from(tenant.settings.deletion_deadline_days) * DAY_MS),
            keys_destroyed_at_ms: Some(erasure.erased_at_ms),
            status: DeletionStatus::KeysDestroyed,
            reason: reason.clone(),
            actor: actor.clone(),
            identities_suppressed: suppressed,
            identities_unlinked: 0,
            receipt: None,
        };
        queue_deletion(store, tenant, &request, now)?;
        self.audit(
            tenant,
            AuditEntry::new(&actor, "subject.reerase")
                .subject(subject)
                .detail(format!("request {id}; {reason}")),
        )?;
        for hash in hashes {
            if store.unlink_identity(&tenant.id, hash)?.is_some() {
                request.identities_unlinked += 1;
            }
        }
        put_deletion_request(store, tenant, &request)?;
        Ok(Reerased {
            tenant: tenant.id.clone(),
            subject: subject.to_owned(),
            request: id,
            key_erased_at_ms: erasure.erased_at_ms,
        })
    }
}

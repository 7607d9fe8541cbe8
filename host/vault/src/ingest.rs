//! Ingestion and identity resolution.
//!
//! # Resolution rules
//!
//! For each record, in order:
//!
//! 1. Every identity is normalised ([`crate::normalize`]) and hashed with the
//!    tenant's identity key; a record with an invalid identity, an unknown
//!    trait, a badly typed trait, an invalid event or an unknown purpose is
//!    refused before anything of its batch is written.
//! 2. If any identity is on the suppression list (it belonged to an erased
//!    subject), the record is refused and counted, unless it carries an
//!    explicit granted consent: then the suppression of its identities is
//!    lifted (audited) and the record proceeds.
//! 3. The identities are looked up. Subjects found through a *merging* kind
//!    (tenant setting `merge_on`; by default email, phone, member id and
//!    external ids) are candidates. With one candidate, the record belongs to
//!    it. With several, they are the same person: the oldest (earliest
//!    creation time, then smallest id) survives and the others are merged
//!    into it, except pairs that an un-merge separated. A record that
//!    carries no merging identity at all (a device id alone) goes to the
//!    oldest subject found through its other identities. Otherwise, with no
//!    candidate, a new subject is created: a new email next to a known
//!    device id is a new person on a shared device, not the device's owner.
//! 4. Identities not yet linked are linked to the chosen subject; identities
//!    linked elsewhere through a non-merging kind stay where they are.
//! 5. Traits overwrite the subject's values; events are stored unless their
//!    source id was stored before (idempotent re-import), and the subject's
//!    aggregates are updated in the same store transaction as the events.
//!
//! A merge keeps both subjects' records where they are and marks the absorbed
//! subject as merged into the survivor; identity links move to the survivor.
//! [`Vault::unmerge`] reverses it: the absorbed subject's own identities
//! (except those the survivor also had) move back, and the pair is recorded
//! as separated so that automatic resolution does not merge it again.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_store::{ConsentRecord, EventRecord, IdentityHash};

use crate::audit::AuditEntry;
use crate::error::VaultError;
use crate::model::{
    Actor, BatchOutcome, Channel, ConsentChange, ConsentEntry, Incoming, IngestOutcome, MergeEntry,
    Refusal,
};
use crate::normalize::{IdentityKind, normalize};
use crate::settings::{TraitType, valid_name};
use crate::vault::{KIND_CONSENT, KIND_EVENT, Loaded, Profile, Tenant, Vault, lock};

/// The largest event (its properties as JSON) Tessera stores.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// The largest single trait value (as JSON).
pub const MAX_TRAIT_BYTES: usize = 4 * 1024;
/// The most identities one record may carry.
pub const MAX_IDENTITIES: usize = 32;

/// An event as sealed in the store.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    pub channel: Channel,
    pub properties: BTreeMap<String, Value>,
}

/// A validated identity of a record.
struct Resolved {
    kind: IdentityKind,
    label: String,
    normalized: String,
    hash: IdentityHash,
}

/// A record that passed validation.
struct Prepared<'a> {
    item: &'a Incoming,
    identities: Vec<Resolved>,
}

impl Vault {
    /// Ingests one record; see [`Vault::ingest_batch`].
    pub fn ingest(
        &self,
        tenant: &str,
        item: &Incoming,
        actor: &Actor,
    ) -> Result<IngestOutcome, VaultError> {
        let (_, mut outcomes) = self.ingest_batch(tenant, std::slice::from_ref(item), actor)?;
        Ok(outcomes.pop().unwrap_or_default())
    }

    /// Ingests records: validates all of them first (an invalid one refuses
    /// the batch, naming the record and the problem, and nothing is written),
    /// resolves each to a subject and stores it. Returns once everything is
    /// durable, so the caller may acknowledge the batch.
    pub fn ingest_batch(
        &self,
        tenant: &str,
        items: &[Incoming],
        actor: &Actor,
    ) -> Result<(BatchOutcome, Vec<IngestOutcome>), VaultError> {
        let tenant = self.tenant(tenant)?;
        let prepared = items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                self.prepare(&tenant, item).map_err(|error| match error {
                    VaultError::InvalidEvent { reason } => VaultError::InvalidEvent {
                        reason: format!("record {index}: {reason}"),
                    },
                    VaultError::InvalidTrait { name, reason } => VaultError::InvalidTrait {
                        name,
                        reason: format!("record {index}: {reason}"),
                    },
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut total = BatchOutcome::default();
        let mut outcomes = Vec::with_capacity(prepared.len());
        {
            let _guard = lock(&tenant.lock);
            let mut seen_sources = HashSet::new();
            for item in &prepared {
                let outcome = self.write_one(&tenant, item, actor, &mut seen_sources)?;
                total.items += 1;
                total.subjects_created += u64::from(outcome.created);
                total.merges += outcome.merged.len() as u64;
                total.events_inserted += outcome.events_inserted;
                total.duplicates += outcome.duplicates;
                total.suppressed += u64::from(outcome.refused.is_some());
                outcomes.push(outcome);
            }
        }
        self.flush()?;
        Ok((total, outcomes))
    }

    fn prepare<'a>(&self, tenant: &Tenant, item: &'a Incoming) -> Result<Prepared<'a>, VaultError> {
        let settings = &tenant.settings;
        if item.identities.is_empty() {
            return Err(VaultError::NoIdentity);
        }
        if item.identities.len() > MAX_IDENTITIES {
            return Err(VaultError::InvalidEvent {
                reason: format!(
                    "{} identities, more than the {MAX_IDENTITIES} a record may carry",
                    item.identities.len()
                ),
            });
        }
        let mut identities: Vec<Resolved> = Vec::new();
        for (kind, raw) in &item.identities {
            let normalized = normalize(kind, raw, &settings.identity_rules).map_err(|source| {
                VaultError::InvalidIdentity {
                    kind: kind.label(),
                    source,
                }
            })?;
            let label = kind.label();
            let hash = tenant.hasher.hash(&label, &normalized);
            if identities.iter().all(|r| r.hash != hash) {
                identities.push(Resolved {
                    kind: kind.clone(),
                    label,
                    normalized,
                    hash,
                });
            }
        }
        for (name, value) in &item.traits {
            check_trait(tenant, name, Some(value))?;
        }
        for event in &item.events {
            if !valid_name(&event.event_type) {
                return Err(VaultError::InvalidEvent {
                    reason: format!(
                        "event type {:?} must be 1 to 64 characters of a-z, 0-9 and _",
                        event.event_type
                    ),
                });
            }
            let size = serde_json::to_vec(&event.properties).map_or(usize::MAX, |v| v.len());
            if size > MAX_EVENT_BYTES {
                return Err(VaultError::InvalidEvent {
                    reason: format!(
                        "a {} event's properties are {size} bytes, more than {MAX_EVENT_BYTES}",
                        event.event_type
                    ),
                });
            }
            if event
                .source_id
                .as_ref()
                .is_some_and(|s| s.is_empty() || s.len() > 512)
            {
                return Err(VaultError::InvalidEvent {
                    reason: "a source id must be 1 to 512 bytes".into(),
                });
            }
        }
        for consent in &item.consents {
            self.check_purpose(tenant, &consent.purpose)?;
        }
        Ok(Prepared { item, identities })
    }

    pub(crate) fn check_purpose(&self, tenant: &Tenant, purpose: &str) -> Result<(), VaultError> {
        if tenant.settings.purposes.iter().any(|p| p == purpose) {
            return Ok(());
        }
        Err(VaultError::UnknownPurpose {
            tenant: tenant.id.clone(),
            purpose: purpose.to_owned(),
            known: tenant.settings.purposes.join(", "),
        })
    }

    fn write_one(
        &self,
        tenant: &Tenant,
        prepared: &Prepared<'_>,
        actor: &Actor,
        seen_sources: &mut HashSet<String>,
    ) -> Result<IngestOutcome, VaultError> {
        let store = self.store.as_ref();
        let item = prepared.item;
        let now = self.now();
        let mut outcome = IngestOutcome::default();

        // Suppression: an erased person's identities are not silently re-created.
        let mut suppressed = Vec::new();
        for identity in &prepared.identities {
            if store.suppression(&tenant.id, identity.hash)?.is_some() {
                suppressed.push(identity);
            }
        }
        if !suppressed.is_empty() {
            if !item.consents.iter().any(|c| c.granted) {
                outcome.refused = Some(Refusal::Suppressed);
                return Ok(outcome);
            }
            for identity in &suppressed {
                store.unsuppress(&tenant.id, identity.hash)?;
            }
            outcome.unsuppressed = true;
            self.audit(
                tenant,
                AuditEntry::new(actor, "suppression.lift")
                    .fields(suppressed.iter().map(|i| i.label.clone())),
            )?;
        }

        // Lookup.
        let mut links: Vec<Option<String>> = Vec::with_capacity(prepared.identities.len());
        let mut candidates: Vec<Loaded> = Vec::new();
        let mut weak: Vec<Loaded> = Vec::new();
        let mut because: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for identity in &prepared.identities {
            let linked = store.find_identity(&tenant.id, identity.hash)?;
            let root = match &linked {
                Some(subject) => match self.load_root(tenant, subject) {
                    Ok(root) => Some(root),
                    // Linked to an erased subject whose purge has not run
                    // yet (the suppression was just lifted): take the link over.
                    Err(VaultError::SubjectErased { .. }) => {
                        store.unlink_identity(&tenant.id, identity.hash)?;
                        links.push(None);
                        continue;
                    }
                    Err(error) => return Err(error),
                },
                None => None,
            };
            links.push(linked);
            let Some(root) = root else { continue };
            let merging = tenant.settings.merges_on(&identity.kind);
            if merging {
                because
                    .entry(root.id.clone())
                    .or_default()
                    .insert(identity.label.clone());
            }
            let list = if merging { &mut candidates } else { &mut weak };
            if list.iter().all(|l| l.id != root.id) {
                list.push(root);
            }
        }

        // Choose the subject.
        let by_age =
            |a: &Loaded, b: &Loaded| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id));
        candidates.sort_by(by_age);
        weak.sort_by(by_age);
        let mut target = if !candidates.is_empty() {
            let mut rest = candidates.split_off(1);
            let mut survivor = candidates.pop().expect("one candidate");
            for absorbed in rest.drain(..) {
                if survivor.profile.separated.contains(&absorbed.id) {
                    continue;
                }
                let kinds = because.remove(&absorbed.id).unwrap_or_default();
                self.merge(tenant, &mut survivor, absorbed, kinds, actor, &mut outcome)?;
            }
            survivor
        } else if !weak.is_empty()
            && !prepared
                .identities
                .iter()
                .any(|identity| tenant.settings.merges_on(&identity.kind))
        {
            weak.swap_remove(0)
        } else {
            let (id, slot, key) = self.fresh_subject(tenant)?;
            let loaded = Loaded {
                id,
                created_at_ms: now,
                slot,
                key,
                profile: Profile {
                    updated_at_ms: now,
                    ..Profile::default()
                },
            };
            // The subject exists before anything links to it.
            self.save(tenant, &loaded)?;
            self.consume_fresh(tenant, &loaded.id)?;
            outcome.created = true;
            loaded
        };

        // Link new identities.
        for (identity, linked) in prepared.identities.iter().zip(&links) {
            if linked.is_none() {
                let existing = store.link_identity(&tenant.id, identity.hash, &target.id)?;
                if existing.is_some_and(|other| other != target.id) {
                    // Only this tenant's writer links, under its lock; a
                    // link appearing meanwhile means another process.
                    return Err(VaultError::corrupt(
                        &tenant.id,
                        "identity link",
                        "linked concurrently by another writer",
                    ));
                }
                target
                    .profile
                    .identities
                    .insert((identity.label.clone(), identity.normalized.clone()));
            }
        }

        // Traits, events, consents.
        for (name, value) in &item.traits {
            target.profile.traits.insert(name.clone(), value.clone());
        }
        let mut records = Vec::with_capacity(item.events.len());
        for event in &item.events {
            let source = match &event.source_id {
                Some(raw) => hex::encode(tenant.hasher.hash("event-source", raw)),
                None => crate::vault::random_id()?,
            };
            if !seen_sources.insert(source.clone())
                || store.has_event_source(&tenant.id, &source)?
            {
                outcome.duplicates += 1;
                continue;
            }
            let stored = StoredEvent {
                event_type: event.event_type.clone(),
                channel: event.channel,
                properties: event.properties.clone(),
            };
            let data = self.seal(tenant, &target, KIND_EVENT, &source, &stored)?;
            target
                .profile
                .aggregates
                .entry(event.event_type.clone())
                .or_default()
                .add(event.at_ms, &event.properties);
            target.profile.last_event_ms = Some(
                target
                    .profile
                    .last_event_ms
                    .map_or(event.at_ms, |last| last.max(event.at_ms)),
            );
            records.push(EventRecord {
                source_id: source,
                at_ms: event.at_ms,
                data,
            });
        }
        for consent in &item.consents {
            self.append_consent_entry(tenant, &target, consent_entry(consent, actor, now))?;
        }
        target.profile.updated_at_ms = now;
        let record = self.seal_record(tenant, &target)?;
        let appended = store.append_events(&tenant.id, &target.id, &records, Some(&record))?;
        outcome.events_inserted = appended.inserted;
        outcome.duplicates += appended.duplicates;
        outcome.subject = Some(target.id);
        Ok(outcome)
    }

    pub(crate) fn append_consent_entry(
        &self,
        tenant: &Tenant,
        subject: &Loaded,
        entry: ConsentEntry,
    ) -> Result<(), VaultError> {
        let at_ms = entry.at_ms();
        let data = self.seal(tenant, subject, KIND_CONSENT, &at_ms.to_string(), &entry)?;
        self.store
            .append_consent(&tenant.id, &subject.id, &ConsentRecord { at_ms, data })?;
        Ok(())
    }

    fn merge(
        &self,
        tenant: &Tenant,
        survivor: &mut Loaded,
        mut absorbed: Loaded,
        kinds: BTreeSet<String>,
        actor: &Actor,
        outcome: &mut IngestOutcome,
    ) -> Result<(), VaultError> {
        let store = self.store.as_ref();
        let hashes = store.identities_of(&tenant.id, &absorbed.id)?;
        let entry = MergeEntry {
            action: "merge".into(),
            survivor: survivor.id.clone(),
            absorbed: absorbed.id.clone(),
            at_ms: self.now(),
            because: kinds.into_iter().collect(),
            identities_moved: hashes.len() as u64,
            actor: actor.clone(),
        };
        // Both sides of the merge in one transaction, before any identity
        // link moves: if the process stops after this, the absorbed
        // subject's remaining links still lead to the survivor through
        // `merged_into`, and the person's group is complete either way.
        absorbed.profile.merged_into = Some(survivor.id.clone());
        absorbed.profile.merges.push(entry.clone());
        if !survivor.profile.absorbed.contains(&absorbed.id) {
            survivor.profile.absorbed.push(absorbed.id.clone());
        }
        survivor.profile.merges.push(entry);
        store.put_subjects(
            &tenant.id,
            &[
                self.seal_record(tenant, survivor)?,
                self.seal_record(tenant, &absorbed)?,
            ],
        )?;
        for hash in hashes {
            store.relink_identity(&tenant.id, hash, &absorbed.id, &survivor.id)?;
        }
        self.audit(
            tenant,
            AuditEntry::new(actor, "subject.merge")
                .subject(&survivor.id)
                .detail(format!("absorbed {}", absorbed.id)),
        )?;
        outcome.merged.push(absorbed.id);
        Ok(())
    }

    /// Undoes a merge: `absorbed` becomes a subject of its own again with its
    /// own records and the identities first seen on it (identities both had
    /// stay with the survivor), and the pair is never merged automatically
    /// again.
    pub fn unmerge(
        &self,
        tenant: &str,
        survivor: &str,
        absorbed: &str,
        actor: &Actor,
    ) -> Result<MergeEntry, VaultError> {
        let tenant = self.tenant(tenant)?;
        let _guard = lock(&tenant.lock);
        let store = self.store.as_ref();
        let mut survivor = self.load(&tenant, survivor)?;
        let mut absorbed = self.load(&tenant, absorbed)?;
        if absorbed.profile.merged_into.as_deref() != Some(survivor.id.as_str()) {
            return Err(VaultError::NotMerged {
                survivor: survivor.id,
                absorbed: absorbed.id,
            });
        }
        // Identities of the absorbed subject and of subjects merged into it.
        let mut own = BTreeSet::new();
        let group = self.load_group(&tenant, self.load(&tenant, &absorbed.id)?)?;
        for member in &group {
            own.extend(member.profile.identities.iter().cloned());
        }
        let shared: BTreeSet<_> = survivor.profile.identities.iter().cloned().collect();
        let mut moved = 0;
        for (label, normalized) in own.difference(&shared) {
            let hash = tenant.hasher.hash(label, normalized);
            if store.relink_identity(&tenant.id, hash, &survivor.id, &absorbed.id)? {
                moved += 1;
            }
        }
        let entry = MergeEntry {
            action: "unmerge".into(),
            survivor: survivor.id.clone(),
            absorbed: absorbed.id.clone(),
            at_ms: self.now(),
            because: Vec::new(),
            identities_moved: moved,
            actor: actor.clone(),
        };
        absorbed.profile.merged_into = None;
        absorbed.profile.separated.push(survivor.id.clone());
        absorbed.profile.merges.push(entry.clone());
        survivor.profile.absorbed.retain(|id| id != &absorbed.id);
        survivor.profile.separated.push(absorbed.id.clone());
        survivor.profile.merges.push(entry.clone());
        // The links moved first: if the process stops before this write,
        // `merged_into` still makes the pair one person, and unmerging again
        // finishes the job.
        store.put_subjects(
            &tenant.id,
            &[
                self.seal_record(&tenant, &survivor)?,
                self.seal_record(&tenant, &absorbed)?,
            ],
        )?;
        self.audit(
            &tenant,
            AuditEntry::new(actor, "subject.unmerge")
                .subject(&survivor.id)
                .detail(format!("separated {}", absorbed.id)),
        )?;
        self.flush()?;
        Ok(entry)
    }
}

pub(crate) fn consent_entry(consent: &ConsentChange, actor: &Actor, at_ms: i64) -> ConsentEntry {
    ConsentEntry::Purpose {
        purpose: consent.purpose.clone(),
        granted: consent.granted,
        method: consent.method.clone(),
        actor: actor.clone(),
        at_ms,
    }
}

/// Checks a trait name against the schema and its value (None = removal).
pub(crate) fn check_trait(
    tenant: &Tenant,
    name: &str,
    value: Option<&Value>,
) -> Result<(), VaultError> {
    let Some(spec) = tenant.settings.schema.get(name) else {
        return Err(VaultError::UnknownTrait {
            tenant: tenant.id.clone(),
            name: name.to_owned(),
        });
    };
    let Some(value) = value else { return Ok(()) };
    let invalid = |reason: &str| VaultError::InvalidTrait {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let size = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
    if size > MAX_TRAIT_BYTES {
        return Err(invalid(&format!(
            "its value is {size} bytes, more than {MAX_TRAIT_BYTES}"
        )));
    }
    let ok = match spec.kind {
        TraitType::String => value.is_string(),
        TraitType::Number => value.is_number(),
        TraitType::Bool => value.is_boolean(),
        TraitType::Date => value.as_str().is_some_and(looks_like_date),
        TraitType::Any => true,
    };
    if ok || value.is_null() {
        Ok(())
    } else {
        Err(invalid(
            &format!("expected a {:?} value", spec.kind).to_lowercase(),
        ))
    }
}

/// `YYYY-MM-DD`, optionally followed by `T` and a time.
fn looks_like_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    bytes.len() >= 10
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && (bytes.len() == 10 || bytes[10] == b'T')
}

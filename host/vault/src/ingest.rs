//! Ingestion and identity resolution.
//!
//! # Resolution rules
//!
//! For each record, in order:
//!
//! 1. Every identity is normalised ([`crate::normalize`]) and hashed with the
//!    tenant's identity key; a record with an invalid identity, an unknown
//!    trait, a trait value of the wrong type or not among its allowed
//!    values, an invalid event (one its type's schema refuses: a required
//!    property missing, a property of the wrong type or not among its
//!    allowed values, an unknown property of a strict type, or a type the
//!    schema does not list when the tenant's `events_strict` is set) or an
//!    unknown purpose is refused before anything of its batch is written.
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
//!    Records from an untrusted source ([`Vault::ingest_batch_untrusted`])
//!    mark the identities they link as untrusted (the person can then not
//!    sign in until an operator confirms them), and are refused rather than
//!    merge two people who each hold a trusted sign-in identity.
//! 5. Traits overwrite the subject's values; events are stored unless their
//!    source id was stored before (idempotent re-import), and the subject's
//!    aggregates are updated in the same store transaction as the events.
//!
//! A merge keeps both subjects' records where they are and marks the absorbed
//! subject as merged into the survivor; identity links move to the survivor.
//! [`Vault::unmerge`] reverses it: the absorbed subject's own identities
//! (except those the survivor also had) move back, and the pair is recorded
//! as separated so that automatic resolution does not merge it again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_store::{ConsentRecord, EventRecord, IdentityHash, NewEvents, SubjectAppend};

use crate::audit::AuditEntry;
use crate::error::VaultError;
use crate::model::{
    Actor, BatchOutcome, Channel, ConsentChange, ConsentEntry, Incoming, IngestOutcome, MergeEntry,
    NewEvent, Refusal,
};
use crate::normalize::IdentityKind;
use crate::settings::{TenantSettings, TraitClass, TraitType, is_allowed, valid_name};
use crate::vault::{KIND_CONSENT, KIND_EVENT, Loaded, Profile, Tenant, Vault};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// At most 64 characters of an untrusted name, for an error message.
fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

/// When a suppression entry was made (entries name their request and time).
fn suppressed_at(entry: &[u8]) -> i64 {
    serde_json::from_slice::<serde_json::Value>(entry)
        .ok()
        .and_then(|v| v.get("at_ms").and_then(serde_json::Value::as_i64))
        .unwrap_or(i64::MAX)
}

/// The largest event (its properties as JSON) Tessera stores.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// The largest single trait value (as JSON).
pub const MAX_TRAIT_BYTES: usize = 4 * 1024;
/// The most identities one record may carry.
pub const MAX_IDENTITIES: usize = 32;
/// The most records one `ingest_batch` call takes.
pub const MAX_BATCH: usize = 10_000;
/// The most events one record may carry.
pub const MAX_EVENTS: usize = 1_000;
/// How far in the future an event may be dated (clock skew between sources).
pub const MAX_FUTURE_MS: i64 = 24 * 60 * 60 * 1000;

/// How many records one store transaction (and one hold of the tenant's
/// write lock) covers.
const CHUNK: usize = 256;

/// Subjects changed by the current chunk: their newest profile and what the
/// chunk adds to them (events, identity links, consents; for a new subject,
/// the subject itself), written together by `write_pending` in one store
/// transaction.
#[derive(Default)]
pub(crate) struct Pending<'a> {
    subjects: BTreeMap<String, Queued<'a>>,
    /// The identity hashes queued for linking, and the subject each will
    /// point at: later records of the chunk resolve through them.
    linked: HashMap<IdentityHash, String>,
    /// The batch index of the record of each queued event that the store
    /// found to be a duplicate after all (`write_pending`).
    late_duplicates: Vec<usize>,
}

/// One subject's share of the chunk.
struct Queued<'a> {
    /// The profile as of the chunk's records, except that the queued events
    /// are not counted in its aggregates yet: `write_pending` counts them
    /// once the store has confirmed that they are new.
    loaded: Loaded,
    /// The subject is new: the chunk's transaction creates it. Names the
    /// key pool's batch its key came from.
    create: Option<String>,
    events: Vec<EventRecord>,
    /// For each of `events`: its record's index in the batch, and the event.
    counted: Vec<(usize, &'a NewEvent)>,
    links: Vec<IdentityHash>,
    consents: Vec<ConsentRecord>,
}

impl<'a> Queued<'a> {
    fn new(loaded: Loaded) -> Self {
        Self {
            loaded,
            create: None,
            events: Vec::new(),
            counted: Vec::new(),
            links: Vec::new(),
            consents: Vec::new(),
        }
    }

    /// `f` of the subject with the queued events counted in its profile's
    /// aggregates; the profile is left without them (a retry may count
    /// fewer).
    fn with_counted<T>(&mut self, f: impl FnOnce(&Loaded) -> T) -> T {
        if self.counted.is_empty() {
            return f(&self.loaded);
        }
        let profile = &mut self.loaded.profile;
        let aggregates = profile.aggregates.clone();
        let last_event_ms = profile.last_event_ms;
        for (_, event) in &self.counted {
            profile
                .aggregates
                .entry(event.event_type.clone())
                .or_default()
                .add(event.at_ms, &event.properties);
            profile.last_event_ms = Some(
                profile
                    .last_event_ms
                    .map_or(event.at_ms, |last| last.max(event.at_ms)),
            );
        }
        let result = f(&self.loaded);
        self.loaded.profile.aggregates = aggregates;
        self.loaded.profile.last_event_ms = last_event_ms;
        result
    }
}

impl<'a> Pending<'a> {
    fn contains(&self, id: &str) -> bool {
        self.subjects.contains_key(id)
    }

    fn created_at(&self, id: &str) -> i64 {
        self.subjects
            .get(id)
            .map_or(i64::MAX, |q| q.loaded.created_at_ms)
    }

    fn take(&mut self, id: &str) -> Option<Queued<'a>> {
        self.subjects.remove(id)
    }

    fn put(&mut self, queued: Queued<'a>) {
        self.subjects.insert(queued.loaded.id.clone(), queued);
    }
}

/// An event as sealed in the store.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    pub channel: Channel,
    pub properties: BTreeMap<String, Value>,
}

/// [`StoredEvent`] borrowed from the incoming event, to seal it without a
/// copy; it serialises exactly like `StoredEvent`.
#[derive(Serialize)]
struct StoredEventRef<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    channel: Channel,
    properties: &'a BTreeMap<String, Value>,
}

/// The length of `value` as JSON, without building it.
fn json_len(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// A validated identity of a record.
struct Resolved {
    kind: IdentityKind,
    label: String,
    normalized: String,
    hash: IdentityHash,
}

/// Whether an identity of this kind (by its label) can sign a person in:
/// every kind but device ids, which households share.
pub(crate) fn signs_in(label: &str) -> bool {
    IdentityKind::parse(label).is_ok_and(|kind| kind != IdentityKind::DeviceId)
}

/// Whether a batch's source vouches for the identities it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// The tenant's own systems.
    Trusted,
    /// A source anyone can write to (a public write key).
    Untrusted,
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
    ///
    /// The records come from a trusted source (the tenant's own systems):
    /// the identities they name are the person's. For records from a source
    /// anyone can write to, use [`Vault::ingest_batch_untrusted`].
    pub fn ingest_batch(
        &self,
        tenant: &str,
        items: &[Incoming],
        actor: &Actor,
    ) -> Result<(BatchOutcome, Vec<IngestOutcome>), VaultError> {
        self.ingest_from(tenant, items, actor, Trust::Trusted)
    }

    /// [`Vault::ingest_batch`] for records from an untrusted source: one
    /// whose credentials anyone may hold, such as a Segment write key in a
    /// web page or an app. Anyone can claim any identity there, so:
    ///
    /// - identities such a record links to a person are marked untrusted:
    ///   they still resolve records, but a person with such a mark on a
    ///   sign-in identity cannot sign in by any identity
    ///   ([`Vault::find_trusted_subject`]) until an operator confirms it
    ///   ([`Vault::confirm_identity`]); a trusted source naming it again does
    ///   not, since its record may have reached the person through the mark;
    /// - such a record may not merge two people who each hold a trusted
    ///   sign-in identity: it is refused ([`Refusal::UntrustedMerge`]) and
    ///   nothing of it is stored. It may still join subjects known only
    ///   through untrusted identities (a visitor who signs up) to a person;
    /// - its consents never lift a suppression.
    pub fn ingest_batch_untrusted(
        &self,
        tenant: &str,
        items: &[Incoming],
        actor: &Actor,
    ) -> Result<(BatchOutcome, Vec<IngestOutcome>), VaultError> {
        self.ingest_from(tenant, items, actor, Trust::Untrusted)
    }

    fn ingest_from(
        &self,
        tenant: &str,
        items: &[Incoming],
        actor: &Actor,
        trust: Trust,
    ) -> Result<(BatchOutcome, Vec<IngestOutcome>), VaultError> {
        let tenant = self.tenant(tenant)?;
        if items.len() > MAX_BATCH {
            return Err(VaultError::InvalidEvent {
                reason: format!(
                    "a batch of {} records is more than the {MAX_BATCH} one call takes; split it",
                    items.len()
                ),
            });
        }
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
                    VaultError::InvalidProperty {
                        event,
                        property,
                        rule,
                        ..
                    } => VaultError::InvalidProperty {
                        record: Some(index),
                        event,
                        property,
                        rule,
                    },
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut total = BatchOutcome::default();
        let mut outcomes = Vec::with_capacity(prepared.len());
        let mut seen_sources = HashSet::new();
        for chunk in prepared.chunks(CHUNK) {
            // Locked per chunk, so that a consent revocation or a deletion
            // waits for at most one chunk, not a whole batch. A chunk's
            // events and profile updates go to the store in one transaction.
            let _guard = self.write_lock(&tenant)?;
            // The schema may have changed since the records were checked
            // (`Vault::change_settings` holds this lock while it checks the
            // data and writes): check the chunk's traits again against the
            // settings of now, before anything of it is written.
            // A record that no longer fits is refused on its own: earlier
            // chunks are already stored, so the batch cannot be refused.
            // Events are checked again the same way.
            let current = self.tenant(&tenant.id)?;
            let changed = !Arc::ptr_eq(&current, &tenant);
            let mut pending = Pending::default();
            let mut failed = None;
            for item in chunk {
                let index = outcomes.len();
                if changed
                    && let Some(name) = item
                        .item
                        .traits
                        .iter()
                        .find(|(name, value)| check_trait(&current, name, Some(value)).is_err())
                        .map(|(name, _)| name.clone())
                {
                    outcomes.push(IngestOutcome {
                        refused: Some(Refusal::SchemaChanged { name }),
                        ..IngestOutcome::default()
                    });
                    continue;
                }
                if changed && let Some(refusal) = event_refusal(&current.settings, item.item) {
                    outcomes.push(IngestOutcome {
                        refused: Some(refusal),
                        ..IngestOutcome::default()
                    });
                    continue;
                }
                let written = self.write_one(
                    &tenant,
                    item,
                    index,
                    actor,
                    trust,
                    &mut seen_sources,
                    &mut pending,
                );
                match written {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(error) => {
                        failed = Some(error);
                        break;
                    }
                }
            }
            let written = self.write_pending(&tenant, &mut pending);
            for index in pending.late_duplicates.drain(..) {
                let outcome = &mut outcomes[index];
                outcome.events_inserted -= 1;
                outcome.duplicates += 1;
            }
            if let Some(error) = failed.or(written.err()) {
                // What was written before the failure stays written; make it
                // durable, so that a retry finds it (events with a source id
                // are then skipped as duplicates).
                self.flush()?;
                return Err(error);
            }
        }
        for outcome in &outcomes {
            total.items += 1;
            total.subjects_created += u64::from(outcome.created);
            total.merges += outcome.merged.len() as u64;
            total.events_inserted += outcome.events_inserted;
            total.duplicates += outcome.duplicates;
            total.expired += outcome.expired;
            total.suppressed += u64::from(outcome.refused == Some(Refusal::Suppressed));
        }
        // The key store needs no sync here: ingestion only writes keys in
        // `fresh_subject`, which syncs them before handing one out.
        self.store.flush()?;
        let mut changed: Vec<String> = outcomes
            .iter()
            .flat_map(|o| o.subject.iter().chain(&o.merged))
            .cloned()
            .collect();
        changed.sort_unstable();
        changed.dedup();
        self.notify(&tenant.id, &changed);
        Ok((total, outcomes))
    }

    fn prepare<'a>(&self, tenant: &Tenant, item: &'a Incoming) -> Result<Prepared<'a>, VaultError> {
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
            let ((label, normalized), hash) = tenant.identity(kind, raw)?;
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
        if item.events.len() > MAX_EVENTS {
            return Err(VaultError::InvalidEvent {
                reason: format!(
                    "{} events, more than the {MAX_EVENTS} a record may carry",
                    item.events.len()
                ),
            });
        }
        let latest = self.now().saturating_add(MAX_FUTURE_MS);
        for event in &item.events {
            if event.at_ms > latest {
                return Err(VaultError::InvalidEvent {
                    reason: format!(
                        "a {} event is dated more than a day in the future; check the source's clock or time zone",
                        short(&event.event_type)
                    ),
                });
            }
            if !valid_name(&event.event_type) {
                return Err(VaultError::InvalidEvent {
                    reason: format!(
                        "event type {:?} must be 1 to 64 characters of a-z, 0-9 and _",
                        short(&event.event_type)
                    ),
                });
            }
            check_event(&tenant.settings, &event.event_type, &event.properties)?;
            let size = json_len(&event.properties);
            if size > MAX_EVENT_BYTES {
                return Err(VaultError::InvalidEvent {
                    reason: format!(
                        "a {} event's properties are {size} bytes, more than {MAX_EVENT_BYTES}",
                        short(&event.event_type)
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

    /// Whether the person whose root is `root` holds a sign-in identity
    /// that a trusted source asserted, on the root or any subject merged
    /// into it (the chunk's queued profile of the root, if any, is the
    /// newest).
    fn holds_trusted_identity(
        &self,
        tenant: &Tenant,
        root: &str,
        pending: &Pending<'_>,
    ) -> Result<bool, VaultError> {
        let trusted = |profile: &Profile| {
            profile
                .identities
                .iter()
                .any(|pair| !profile.untrusted.contains(pair) && signs_in(&pair.0))
        };
        let stored = match pending.subjects.get(root) {
            Some(queued) => {
                if trusted(&queued.loaded.profile) {
                    return Ok(true);
                }
                if queued.create.is_some() {
                    return Ok(false);
                }
                self.load(tenant, root)?
            }
            None => self.load(tenant, root)?,
        };
        Ok(self
            .load_group(tenant, stored)?
            .iter()
            .any(|member| trusted(&member.profile)))
    }

    /// Checks a record as [`Vault::ingest_batch`] would before writing
    /// anything (identities, traits against the schema, events, purposes),
    /// without storing it: the error [`Vault::ingest_batch`] would refuse
    /// its batch with. Lets a caller set invalid records aside and ingest
    /// the others in one batch.
    pub fn check_incoming(&self, tenant: &str, item: &Incoming) -> Result<(), VaultError> {
        let tenant = self.tenant(tenant)?;
        self.prepare(&tenant, item).map(|_| ())
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

    #[allow(clippy::too_many_arguments)]
    fn write_one<'a>(
        &self,
        tenant: &Tenant,
        prepared: &Prepared<'a>,
        index: usize,
        actor: &Actor,
        trust: Trust,
        seen_sources: &mut HashSet<[u8; 32]>,
        pending: &mut Pending<'a>,
    ) -> Result<IngestOutcome, VaultError> {
        let store = self.store.as_ref();
        let item = prepared.item;
        let now = self.now();
        let mut outcome = IngestOutcome::default();

        // Suppression: an erased person's identities are not silently
        // re-created, unless the record brings a consent given after the
        // erasure.
        let mut suppressed = Vec::new();
        for identity in &prepared.identities {
            if let Some(entry) = store.suppression(&tenant.id, identity.hash)? {
                suppressed.push((identity, suppressed_at(&entry)));
            }
        }
        if !suppressed.is_empty() {
            let erased_at = suppressed
                .iter()
                .map(|(_, at)| *at)
                .max()
                .unwrap_or(i64::MAX);
            // Only a trusted source's consent counts: through a public
            // write key anyone could claim an erased person's consent.
            let fresh_consent = trust == Trust::Trusted
                && item
                    .consents
                    .iter()
                    .any(|c| c.granted && c.given_at_ms.is_none_or(|given| given > erased_at));
            if !fresh_consent {
                outcome.refused = Some(Refusal::Suppressed);
                return Ok(outcome);
            }
            for (identity, _) in &suppressed {
                store.unsuppress(&tenant.id, identity.hash)?;
            }
            outcome.unsuppressed = true;
            self.audit(
                tenant,
                AuditEntry::new(actor, "suppression.lift")
                    .fields(suppressed.iter().map(|(i, _)| i.label.clone())),
            )?;
        }

        // Lookup. Subjects written earlier in this chunk are taken from
        // `pending`, where their newest profile is.
        let mut links: Vec<Option<String>> = Vec::with_capacity(prepared.identities.len());
        let mut roots: BTreeMap<String, Loaded> = BTreeMap::new();
        let mut candidates: Vec<(i64, String)> = Vec::new();
        let mut weak: Vec<(i64, String)> = Vec::new();
        let mut because: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for identity in &prepared.identities {
            let linked = match pending.linked.get(&identity.hash) {
                Some(subject) => Some(subject.clone()),
                None => store.find_identity(&tenant.id, identity.hash)?,
            };
            let root = match &linked {
                Some(subject) if pending.contains(subject) => {
                    (pending.created_at(subject), subject.clone())
                }
                Some(subject) => match self.load_root(tenant, subject) {
                    Ok(root) => {
                        let key = (root.created_at_ms, root.id.clone());
                        if !pending.contains(&root.id) {
                            roots.entry(root.id.clone()).or_insert(root);
                        }
                        key
                    }
                    // Linked to an erased subject whose purge has not run
                    // yet, and the suppression was just lifted: take the
                    // link over. Any other missing key is an error (a wrong
                    // key directory must not split every customer in two).
                    Err(VaultError::SubjectErased { .. })
                        if suppressed.iter().any(|(s, _)| s.hash == identity.hash) =>
                    {
                        store.unlink_identity(&tenant.id, identity.hash)?;
                        links.push(None);
                        continue;
                    }
                    Err(error) => return Err(error),
                },
                None => {
                    links.push(None);
                    continue;
                }
            };
            links.push(linked);
            let merging = tenant.settings.merges_on(&identity.kind);
            if merging {
                because
                    .entry(root.1.clone())
                    .or_default()
                    .insert(identity.label.clone());
            }
            let list = if merging { &mut candidates } else { &mut weak };
            if !list.contains(&root) {
                list.push(root);
            }
        }

        // Choose the subject.
        candidates.sort();
        weak.sort();
        if trust == Trust::Untrusted && candidates.len() > 1 {
            let mut trusted_people = 0;
            for (_, id) in &candidates {
                if self.holds_trusted_identity(tenant, id, pending)? {
                    trusted_people += 1;
                }
            }
            if trusted_people > 1 {
                outcome.refused = Some(Refusal::UntrustedMerge);
                return Ok(outcome);
            }
        }
        let mut target = if candidates.len() > 1 {
            // A merge: the chunk so far goes to the store first, so that the
            // merge starts from stored profiles.
            self.write_pending(tenant, pending)?;
            let mut group = Vec::with_capacity(candidates.len());
            for (_, id) in &candidates {
                group.push(match roots.remove(id) {
                    Some(loaded) => loaded,
                    None => self.load(tenant, id)?,
                });
            }
            let mut survivor = group.remove(0);
            for absorbed in group {
                if self.separated(tenant, &survivor, &absorbed)? {
                    continue;
                }
                let kinds = because.remove(&absorbed.id).unwrap_or_default();
                self.merge(tenant, &mut survivor, absorbed, kinds, actor, &mut outcome)?;
            }
            Queued::new(survivor)
        } else if let Some((_, id)) = candidates.first().or_else(|| {
            // A device id alone attaches to the subject it knows.
            weak.first().filter(|_| {
                !prepared
                    .identities
                    .iter()
                    .any(|identity| tenant.settings.merges_on(&identity.kind))
            })
        }) {
            match pending.take(id) {
                Some(queued) => queued,
                None => Queued::new(match roots.remove(id) {
                    Some(loaded) => loaded,
                    None => self.load(tenant, id)?,
                }),
            }
        } else {
            // A new subject, created by the chunk's transaction: its key is
            // already durable in the key store (`fresh_subject`).
            let fresh = self.fresh_subject(tenant)?;
            outcome.created = true;
            let mut queued = Queued::new(Loaded {
                id: fresh.id,
                created_at_ms: now,
                slot: fresh.slot,
                key: Arc::new(fresh.key),
                profile: Profile {
                    updated_at_ms: now,
                    ..Profile::default()
                },
            });
            queued.create = Some(fresh.batch);
            queued
        };

        // Link new identities: the profile names them and the links are
        // made in the same transaction, so that no crash leaves a linked
        // identity missing from the person's access view.
        for (identity, linked) in prepared.identities.iter().zip(&links) {
            let pair = (identity.label.clone(), identity.normalized.clone());
            if linked.is_some() {
                // An untrusted mark stays even when a trusted source names
                // the identity again: the trusted record may have reached
                // the person only through what the untrusted one linked.
                continue;
            }
            if trust == Trust::Untrusted {
                target.loaded.profile.untrusted.insert(pair.clone());
            }
            target.loaded.profile.identities.insert(pair);
            target.links.push(identity.hash);
            pending
                .linked
                .insert(identity.hash, target.loaded.id.clone());
        }

        // Traits, events, consents.
        for (name, value) in &item.traits {
            target
                .loaded
                .profile
                .traits
                .insert(name.clone(), value.clone());
        }
        let retention = tenant
            .settings
            .retention_days(target.loaded.profile.retention_days);
        let cutoff = now.saturating_sub(i64::from(retention) * DAY_MS);
        let mut records = Vec::with_capacity(item.events.len());
        for event in &item.events {
            if event.at_ms < cutoff {
                // Older than the person keeps data: what the sweeper would
                // remove is not stored in the first place.
                outcome.expired += 1;
                continue;
            }
            let source = match &event.source_id {
                Some(raw) => {
                    let hash = tenant.hasher.hash("event-source", raw);
                    // Repeated in this batch; a source id stored before is
                    // found by the store (`write_pending`).
                    if !seen_sources.insert(hash) {
                        outcome.duplicates += 1;
                        continue;
                    }
                    hex::encode(hash)
                }
                None => crate::vault::random_id()?,
            };
            let stored = StoredEventRef {
                event_type: &event.event_type,
                channel: event.channel,
                properties: &event.properties,
            };
            let data = self.seal(tenant, &target.loaded, KIND_EVENT, &source, &stored)?;
            target.counted.push((index, event));
            records.push(EventRecord {
                source_id: source,
                at_ms: event.at_ms,
                data,
            });
        }
        for consent in &item.consents {
            let record = self.consent_record(
                tenant,
                &mut target.loaded,
                consent_entry(consent, actor, now),
            )?;
            target.consents.push(record);
        }
        target.loaded.profile.updated_at_ms = now;
        outcome.events_inserted = records.len() as u64;
        outcome.subject = Some(target.loaded.id.clone());
        target.events.extend(records);
        pending.put(target);
        Ok(outcome)
    }

    /// Writes the chunk's queued subjects in one transaction. The queued
    /// events are counted in the profiles as new; if the store finds some
    /// stored already, it stores nothing, and they are left out (counted as
    /// duplicates) and the rest written again.
    fn write_pending(&self, tenant: &Tenant, pending: &mut Pending<'_>) -> Result<(), VaultError> {
        if pending.subjects.is_empty() {
            return Ok(());
        }
        loop {
            let sealed = pending
                .subjects
                .values_mut()
                .map(|queued| queued.with_counted(|loaded| self.seal_record(tenant, loaded)))
                .collect::<Result<Vec<_>, _>>()?;
            let appends: Vec<SubjectAppend<'_>> = pending
                .subjects
                .iter()
                .zip(&sealed)
                .map(|((id, queued), record)| SubjectAppend {
                    subject: id,
                    events: &queued.events,
                    update: Some(record),
                    create: queued.create.is_some(),
                    links: &queued.links,
                    consents: &queued.consents,
                })
                .collect();
            let NewEvents::Duplicates(found) = self.store.append_new(&tenant.id, &appends)? else {
                break;
            };
            // Positions are in batch order: remove from the back.
            let mut queues: Vec<&mut Queued<'_>> = pending.subjects.values_mut().collect();
            for &(append, event) in found.iter().rev() {
                let queued = &mut queues[append];
                queued.events.remove(event);
                let (index, _) = queued.counted.remove(event);
                pending.late_duplicates.push(index);
            }
        }
        // The new subjects are stored: their pooled keys are used.
        for queued in pending.subjects.values() {
            if let Some(batch) = &queued.create {
                self.consume_fresh(tenant, batch)?;
                self.cache_key(tenant, &queued.loaded);
            }
        }
        pending.subjects.clear();
        pending.linked.clear();
        Ok(())
    }

    /// Appends to the person's consent history. Times are made strictly
    /// increasing per subject (a clock stepping back must not reorder a
    /// grant and its revocation), which also makes each entry's time its
    /// unique id in the associated data. The caller saves `subject`.
    pub(crate) fn append_consent_entry(
        &self,
        tenant: &Tenant,
        subject: &mut Loaded,
        entry: ConsentEntry,
    ) -> Result<(), VaultError> {
        let record = self.consent_record(tenant, subject, entry)?;
        self.store
            .append_consent(&tenant.id, &subject.id, &record)?;
        Ok(())
    }

    /// The sealed consent entry that [`Vault::append_consent_entry`] appends,
    /// with the profile updated for it; the caller stores both.
    fn consent_record(
        &self,
        tenant: &Tenant,
        subject: &mut Loaded,
        mut entry: ConsentEntry,
    ) -> Result<ConsentRecord, VaultError> {
        let at_ms = match subject.profile.last_consent_ms {
            Some(last) => entry.at_ms().max(last.saturating_add(1)),
            None => entry.at_ms(),
        };
        entry.set_at_ms(at_ms);
        let data = self.seal(tenant, subject, KIND_CONSENT, &at_ms.to_string(), &entry)?;
        subject.profile.last_consent_ms = Some(at_ms);
        subject.profile.updated_at_ms = subject.profile.updated_at_ms.max(at_ms);
        Ok(ConsentRecord { at_ms, data })
    }

    /// Whether an un-merge separated anyone of `a`'s person from anyone of
    /// `b`'s (then the two are not merged automatically, even through a third).
    fn separated(&self, tenant: &Tenant, a: &Loaded, b: &Loaded) -> Result<bool, VaultError> {
        if a.profile.separated.contains(&b.id) || b.profile.separated.contains(&a.id) {
            return Ok(true);
        }
        let group_a = self.load_group(tenant, self.load(tenant, &a.id)?)?;
        let group_b = self.load_group(tenant, self.load(tenant, &b.id)?)?;
        let ids_b: BTreeSet<&str> = group_b.iter().map(|m| m.id.as_str()).collect();
        let ids_a: BTreeSet<&str> = group_a.iter().map(|m| m.id.as_str()).collect();
        Ok(group_a.iter().any(|m| {
            m.profile
                .separated
                .iter()
                .any(|s| ids_b.contains(s.as_str()))
        }) || group_b.iter().any(|m| {
            m.profile
                .separated
                .iter()
                .any(|s| ids_a.contains(s.as_str()))
        }))
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
        let _guard = self.write_lock(&tenant)?;
        let store = self.store.as_ref();
        let mut survivor = self.load(&tenant, survivor)?;
        let mut absorbed = self.load(&tenant, absorbed)?;
        // The links sit with the person's current root, which is the
        // survivor unless the survivor was itself merged since.
        let root = self.load_root(&tenant, &survivor.id)?.id;
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
            if store.relink_identity(&tenant.id, hash, &root, &absorbed.id)? {
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
        self.notify(&tenant.id, &[root, absorbed.id.clone()]);
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
    let invalid = |reason: String| VaultError::InvalidTrait {
        name: name.to_owned(),
        reason,
    };
    let size = json_len(value);
    if size > MAX_TRAIT_BYTES {
        return Err(invalid(format!(
            "its value is {size} bytes, more than {MAX_TRAIT_BYTES}"
        )));
    }
    if value.is_null() {
        return Ok(());
    }
    if !spec.kind.admits(value) {
        return Err(invalid(format!("expected a {} value", spec.kind.as_str())));
    }
    if !spec.allowed.is_empty() && !is_allowed(&spec.allowed, value) {
        return Err(invalid(not_allowed(spec.class, &spec.allowed, value)));
    }
    Ok(())
}

/// Checks an event against its type's schema, if the tenant has one: its
/// required properties are there, its properties have their types and
/// allowed values, and, for a strict type, it has no others. A type not in
/// the schema passes unless the tenant's `events_strict` is set.
pub(crate) fn check_event(
    settings: &TenantSettings,
    event_type: &str,
    properties: &BTreeMap<String, Value>,
) -> Result<(), VaultError> {
    let Some(spec) = settings.events.get(event_type) else {
        if settings.events_strict {
            return Err(VaultError::InvalidEvent {
                reason: format!(
                    "event type {:?} is not in the tenant's event schema, and the tenant takes \
                     only the event types it lists (events_strict); add it to the schema first",
                    short(event_type)
                ),
            });
        }
        return Ok(());
    };
    let invalid = |property: &str, rule: String| VaultError::InvalidProperty {
        record: None,
        event: event_type.to_owned(),
        property: short(property),
        rule,
    };
    for (name, rule) in &spec.properties {
        let Some(value) = properties.get(name).filter(|v| !v.is_null()) else {
            if rule.required {
                return Err(invalid(name, "required".into()));
            }
            continue;
        };
        if !rule.kind.admits(value) {
            return Err(invalid(
                name,
                match rule.kind {
                    TraitType::Date => {
                        "expected a date (YYYY-MM-DD, or an ISO 8601 date-time)".into()
                    }
                    kind => format!("expected a {} value", kind.as_str()),
                },
            ));
        }
        if !rule.allowed.is_empty() && !is_allowed(&rule.allowed, value) {
            return Err(invalid(name, not_allowed(rule.class, &rule.allowed, value)));
        }
    }
    if spec.strict
        && let Some(unknown) = properties
            .keys()
            .find(|name| !spec.properties.contains_key(*name))
    {
        return Err(invalid(
            unknown,
            format!("not in the schema of {event_type}, which takes no other properties (strict)"),
        ));
    }
    Ok(())
}

/// Why a record's events no longer fit a changed event schema, if they do not.
fn event_refusal(settings: &TenantSettings, item: &Incoming) -> Option<Refusal> {
    item.events.iter().find_map(|event| {
        match check_event(settings, &event.event_type, &event.properties) {
            Ok(()) => None,
            Err(VaultError::InvalidProperty { property, .. }) => {
                Some(Refusal::EventSchemaChanged {
                    event: event.event_type.clone(),
                    property: Some(property),
                })
            }
            Err(_) => Some(Refusal::EventSchemaChanged {
                event: event.event_type.clone(),
                property: None,
            }),
        }
    })
}

/// The rule an allowed-values refusal states. The offending value is named
/// only for `standard` fields: a `pii` or `sensitive` one may be the very
/// data the class protects, and error messages reach logs and clients.
fn not_allowed(class: TraitClass, allowed: &[Value], value: &Value) -> String {
    const SHOWN: usize = 8;
    let mut list = allowed
        .iter()
        .take(SHOWN)
        .map(|v| short(&v.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    if allowed.len() > SHOWN {
        list.push_str(&format!(", … ({} in all)", allowed.len()));
    }
    match class {
        TraitClass::Standard => format!("{} is not one of {list}", short(&value.to_string())),
        TraitClass::Pii | TraitClass::Sensitive => {
            format!("the value is not one of the allowed values ({list})")
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tessera_privacy::MasterKey;

    use super::*;

    const NOW: i64 = 1_780_272_000_000;

    fn purchase(source: &str, at_ms: i64, amount: f64) -> NewEvent {
        NewEvent {
            source_id: Some(source.to_owned()),
            event_type: "purchase".into(),
            at_ms,
            channel: Channel::Offline,
            properties: BTreeMap::from([("amount".to_owned(), json!(amount))]),
        }
    }

    fn person(email: &str, events: Vec<NewEvent>) -> Incoming {
        Incoming {
            identities: vec![(IdentityKind::Email, email.to_owned())],
            events,
            ..Incoming::default()
        }
    }

    #[test]
    fn events_the_store_finds_stored_are_left_out_of_outcomes_and_aggregates() {
        let dir = tempfile::tempdir().expect("temp dir");
        let vault = Vault::open(
            dir.path().join("data"),
            dir.path().join("keys"),
            MasterKey::generate().expect("master key"),
        )
        .expect("open")
        .with_clock(Arc::new(|| NOW));
        let actor = Actor::new("ingest", "test");
        vault
            .create_tenant("acme", TenantSettings::default(), &actor)
            .expect("tenant");
        let (_, first) = vault
            .ingest_batch(
                "acme",
                &[
                    person("a@example.com", vec![purchase("a1", NOW - 50, 1.0)]),
                    person("b@example.com", vec![purchase("b1", NOW - 40, 2.0)]),
                ],
                &actor,
            )
            .expect("first batch");
        let a = first[0].subject.clone().expect("a");
        let b = first[1].subject.clone().expect("b");

        // Stored before (a1, and b1 of another person), repeated within the
        // batch (a3), and new, in one chunk with a new person.
        let (total, outcomes) = vault
            .ingest_batch(
                "acme",
                &[
                    person(
                        "a@example.com",
                        vec![purchase("a1", NOW - 50, 1.0), purchase("a3", NOW - 30, 4.0)],
                    ),
                    person(
                        "c@example.com",
                        vec![purchase("c1", NOW - 20, 8.0), purchase("b1", NOW - 40, 2.0)],
                    ),
                    person("b@example.com", vec![purchase("b2", NOW - 10, 16.0)]),
                    person(
                        "a@example.com",
                        vec![
                            purchase("a3", NOW - 30, 4.0),
                            purchase("a4", NOW - 60, 32.0),
                        ],
                    ),
                ],
                &actor,
            )
            .expect("second batch");
        let counts: Vec<(u64, u64, bool)> = outcomes
            .iter()
            .map(|o| (o.events_inserted, o.duplicates, o.created))
            .collect();
        assert_eq!(
            counts,
            [(1, 1, false), (1, 1, true), (1, 0, false), (1, 1, false)]
        );
        assert_eq!((total.events_inserted, total.duplicates), (4, 3));
        let c = outcomes[1].subject.clone().expect("c");

        let operator = Actor::new("operator", "test");
        for (subject, count, sum, first_ms, last_ms) in [
            (&a, 3, 37.0, NOW - 60, NOW - 30),
            (&b, 2, 18.0, NOW - 40, NOW - 10),
            (&c, 1, 8.0, NOW - 20, NOW - 20),
        ] {
            let view = vault.access("acme", subject, &operator).expect("view");
            assert_eq!(view.events.len() as u64, count, "{subject}");
            let aggregate = &view.aggregates["purchase"];
            assert_eq!(aggregate.count, count, "{subject}");
            assert_eq!(aggregate.sums["amount"], sum, "{subject}");
            assert_eq!((aggregate.first_ms, aggregate.last_ms), (first_ms, last_ms));
            let loaded = vault
                .load(&vault.tenant("acme").expect("tenant"), subject)
                .expect("load");
            assert_eq!(loaded.profile.last_event_ms, Some(last_ms), "{subject}");
        }
    }

    #[test]
    fn an_event_seals_the_same_bytes_borrowed_or_owned() {
        let event = purchase("x", NOW, 12.5);
        let owned = StoredEvent {
            event_type: event.event_type.clone(),
            channel: event.channel,
            properties: event.properties.clone(),
        };
        let borrowed = StoredEventRef {
            event_type: &event.event_type,
            channel: event.channel,
            properties: &event.properties,
        };
        let bytes = serde_json::to_vec(&owned).expect("json");
        assert_eq!(serde_json::to_vec(&borrowed).expect("json"), bytes);
        assert_eq!(json_len(&borrowed), bytes.len());
        let back: StoredEvent = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(back.properties, event.properties);
    }
}

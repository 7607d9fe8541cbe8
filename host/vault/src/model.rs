//! The vault's public data: what goes in (ingest items) and what comes out
//! (profiles, subject views, requests, receipts), all plaintext in memory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::normalize::IdentityKind;

/// Who did something, for consent provenance and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    /// `operator`, `marketer`, `ingest`, `subject`, `plugin`, `system`, …
    pub role: String,
    /// The token, user, plugin installation or job that acted.
    pub id: String,
}

impl Actor {
    pub fn new(role: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            id: id.into(),
        }
    }

    /// Tessera itself (sweepers, purge jobs).
    pub fn system(job: &str) -> Self {
        Self::new("system", job)
    }
}

/// Where an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Web and app activity.
    Online,
    /// Store purchases, call centres, loyalty desks.
    Offline,
}

/// One event to ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The source's own id of the event; ingesting the same source id twice
    /// stores it once. Stored only as a keyed hash.
    pub source_id: Option<String>,
    /// `purchase`, `page_view`, … (a-z, 0-9, `_`, at most 64).
    #[serde(rename = "type")]
    pub event_type: String,
    pub at_ms: i64,
    pub channel: Channel,
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
}

/// An explicit consent decision carried by an ingest item or made by a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentChange {
    pub purpose: String,
    pub granted: bool,
    /// How it was given: `portal`, `web_form`, `store_signup`, `import`, …
    pub method: String,
    /// When the person gave it, if the source knows; a consent given before
    /// an erasure does not lift that erasure's suppression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_at_ms: Option<i64>,
}

/// One record from a source: who (identities), what they are (traits), what
/// they did (events) and what they agreed to (consents).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Incoming {
    pub identities: Vec<(IdentityKind, String)>,
    #[serde(default)]
    pub traits: BTreeMap<String, Value>,
    #[serde(default)]
    pub events: Vec<NewEvent>,
    #[serde(default)]
    pub consents: Vec<ConsentChange>,
}

/// Why an ingest item was not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// One of its identities belongs to an erased subject and the item
    /// carried no new explicit consent.
    Suppressed,
    /// An untrusted source (a public write key) named identities of two or
    /// more people the tenant knows through trusted identities: it may not
    /// join them ([`Vault::ingest_batch_untrusted`](crate::Vault::ingest_batch_untrusted)).
    UntrustedMerge,
    /// The tenant's schema changed while the batch was being stored, and
    /// the trait no longer fits it: nothing of the record is stored.
    SchemaChanged { name: String },
    /// The tenant's event schema changed while the batch was being stored,
    /// and an event of the record no longer fits it (`property`: the one at
    /// fault; none: its type is no longer taken): nothing of the record is
    /// stored.
    EventSchemaChanged {
        event: String,
        property: Option<String>,
    },
}

/// What ingesting one item did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestOutcome {
    /// The subject the item resolved to (None if refused).
    pub subject: Option<String>,
    pub created: bool,
    /// Subjects merged into `subject` because the item showed they are one person.
    pub merged: Vec<String>,
    pub events_inserted: u64,
    pub duplicates: u64,
    pub refused: Option<Refusal>,
    /// Whether an explicit consent lifted a suppression.
    pub unsuppressed: bool,
    /// Events older than the person's retention period, not stored.
    pub expired: u64,
}

/// Totals of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub items: u64,
    pub subjects_created: u64,
    pub merges: u64,
    pub events_inserted: u64,
    pub duplicates: u64,
    /// Events older than their person's retention period, not stored.
    pub expired: u64,
    pub suppressed: u64,
}

/// Running totals of one event type for one subject, kept current on ingest
/// so that segment plugins never rescan history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Aggregate {
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Sums of the numeric top-level properties (at most 16 per type).
    pub sums: BTreeMap<String, f64>,
}

/// How many numeric properties per event type get a running sum.
pub(crate) const MAX_SUMS: usize = 16;

impl Aggregate {
    /// The running sum of the numeric property `property`: `Some(0.0)` if no
    /// event had a number there, `None` if it is not kept (the property came
    /// after the type already had its 16 sums), in which case only the
    /// events themselves tell.
    pub fn sum_of(&self, property: &str) -> Option<f64> {
        match self.sums.get(property) {
            Some(sum) => Some(*sum),
            None if self.sums.len() < MAX_SUMS => Some(0.0),
            None => None,
        }
    }

    pub(crate) fn add(&mut self, at_ms: i64, properties: &BTreeMap<String, Value>) {
        if self.count == 0 {
            self.first_ms = at_ms;
            self.last_ms = at_ms;
        } else {
            self.first_ms = self.first_ms.min(at_ms);
            self.last_ms = self.last_ms.max(at_ms);
        }
        self.count += 1;
        for (name, value) in properties {
            let Some(number) = value.as_f64() else {
                continue;
            };
            if self.sums.len() >= MAX_SUMS && !self.sums.contains_key(name) {
                continue;
            }
            let sum = self.sums.entry(name.clone()).or_default();
            *sum = saturating_add(*sum, number);
        }
    }

    pub(crate) fn combine(&mut self, other: &Aggregate) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.count += other.count;
        self.first_ms = self.first_ms.min(other.first_ms);
        self.last_ms = self.last_ms.max(other.last_ms);
        for (name, sum) in &other.sums {
            if self.sums.len() >= MAX_SUMS && !self.sums.contains_key(name) {
                continue;
            }
            let total = self.sums.entry(name.clone()).or_default();
            *total = saturating_add(*total, *sum);
        }
    }
}

/// Sums stay finite (JSON has no infinity): an overflow saturates at ±f64::MAX.
fn saturating_add(a: f64, b: f64) -> f64 {
    let sum = a + b;
    if sum.is_finite() {
        sum
    } else if sum.is_nan() {
        a
    } else {
        f64::MAX.copysign(sum)
    }
}

/// A stored event, opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// The subject record it is stored under (a merged subject's events keep
    /// the id they arrived under).
    pub subject: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub at_ms: i64,
    pub channel: Channel,
    pub properties: BTreeMap<String, Value>,
}

/// One entry of a subject's consent and linked-app history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConsentEntry {
    Purpose {
        purpose: String,
        granted: bool,
        method: String,
        actor: Actor,
        at_ms: i64,
    },
    App {
        app: String,
        name: String,
        scopes: Vec<String>,
        granted: bool,
        actor: Actor,
        at_ms: i64,
    },
}

impl ConsentEntry {
    pub fn at_ms(&self) -> i64 {
        match self {
            Self::Purpose { at_ms, .. } | Self::App { at_ms, .. } => *at_ms,
        }
    }

    pub(crate) fn set_at_ms(&mut self, at: i64) {
        match self {
            Self::Purpose { at_ms, .. } | Self::App { at_ms, .. } => *at_ms = at,
        }
    }
}

/// A purpose's current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentState {
    pub purpose: String,
    pub granted: bool,
    /// When it was last changed; None if never decided (not granted).
    pub at_ms: Option<i64>,
}

/// An app or third party the subject granted access to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkedApp {
    pub app: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub granted_at_ms: i64,
}

/// A person's consents: the current state of each purpose, the apps still
/// linked, and the whole history of both, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Consents {
    pub consents: Vec<ConsentState>,
    pub linked_apps: Vec<LinkedApp>,
    pub history: Vec<ConsentEntry>,
}

/// A person's retention period and the tenant's bounds for their choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Retention {
    /// The period that applies, in days (the choice, else the default,
    /// within the current bounds).
    pub days: u32,
    /// What the person chose, if they did.
    pub chosen: Option<u32>,
    pub default_days: u32,
    pub min_days: u32,
    pub max_days: u32,
}

/// One merge (or un-merge) in a subject's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MergeEntry {
    /// `merge` or `unmerge`.
    pub action: String,
    pub survivor: String,
    pub absorbed: String,
    pub at_ms: i64,
    /// Identity kinds the merge was made on (never their values).
    pub because: Vec<String>,
    /// How many identity links moved to the survivor (and back on un-merge).
    pub identities_moved: u64,
    pub actor: Actor,
}

/// A segment the subject is a member of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Membership {
    pub segment: String,
    pub entered_at_ms: i64,
}

/// A segment the subject was a member of, and when they left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PastMembership {
    pub segment: String,
    pub entered_at_ms: i64,
    pub left_at_ms: i64,
}

/// A decision a campaign made about the person, as the person reads it:
/// where and when, what they were shown, and why. Kept by the campaigns'
/// service, outside the person's own records ([`crate::AccessListener`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignDecision {
    /// The decision's id.
    pub id: String,
    pub campaign: String,
    pub at_ms: i64,
    /// Where it was made for: `web`, `email`, `app`, `store`, …
    pub channel: String,
    /// Whether the person was in the campaign's control group: held out,
    /// they got what everyone gets without the campaign.
    pub control_group: bool,
    /// What the person was shown; none: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
    /// Why, in words.
    pub explanation: String,
}

/// Everything held about one person, decrypted: the access right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubjectView {
    pub tenant: String,
    pub subject: String,
    pub created_at_ms: i64,
    /// Subjects merged into this one (their records are part of this view).
    pub merged_subjects: Vec<String>,
    /// The normalised identities Tessera links to this person.
    pub identities: Vec<(String, String)>,
    /// Traits, with their class.
    pub traits: BTreeMap<String, (Value, crate::TraitClass)>,
    pub events: Vec<Event>,
    pub aggregates: BTreeMap<String, Aggregate>,
    pub consents: Vec<ConsentState>,
    pub consent_history: Vec<ConsentEntry>,
    pub linked_apps: Vec<LinkedApp>,
    pub segments: Vec<Membership>,
    /// Segments the person has left (the newest
    /// [`MAX_PAST_SEGMENTS`](crate::MAX_PAST_SEGMENTS)).
    pub past_segments: Vec<PastMembership>,
    /// The retention period in days, and whether the subject chose it.
    pub retention_days: u32,
    pub retention_chosen: bool,
    pub merge_history: Vec<MergeEntry>,
    /// Plugin state keyed to this subject: (installation, key, value as lossy UTF-8).
    pub plugin_state: Vec<(String, String, String)>,
    /// The decisions campaigns made about the person, oldest first.
    #[serde(default)]
    pub decisions: Vec<CampaignDecision>,
    /// Audit entries about this subject: who read or changed their data.
    pub access_log: Vec<crate::AuditEntry>,
}

/// One person as the host sees them when it builds a plugin view: traits
/// and aggregates of the whole merged group, without events or history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub subject: String,
    pub created_at_ms: i64,
    pub merged_subjects: Vec<String>,
    /// The kinds of identity linked to the person (never their values).
    pub identity_kinds: std::collections::BTreeSet<String>,
    pub traits: BTreeMap<String, Value>,
    pub aggregates: BTreeMap<String, Aggregate>,
    pub retention_days: Option<u32>,
}

/// Where a deletion request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeletionStatus {
    /// Recorded and queued; keys not yet destroyed (only seen if the process
    /// stopped in between: the purge job destroys them first).
    Pending,
    /// Keys destroyed; records waiting for the purge job.
    KeysDestroyed,
    /// Every record removed; the receipt is ready.
    Completed,
}

/// A deletion request: its id, deadline and progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletionRequest {
    pub id: String,
    pub tenant: String,
    pub subject: String,
    /// The subject and every subject merged into it.
    pub subjects: Vec<String>,
    pub requested_at_ms: i64,
    pub deadline_ms: i64,
    /// When the keys were destroyed (None while pending).
    pub keys_destroyed_at_ms: Option<i64>,
    pub status: DeletionStatus,
    pub reason: String,
    pub actor: Actor,
    pub identities_suppressed: u64,
    /// Identity links removed when the keys were destroyed (the rest, if
    /// any, by the purge).
    #[serde(default)]
    pub identities_unlinked: u64,
    pub receipt: Option<Receipt>,
}

/// What a purge removed; the body of a receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Removed {
    pub subjects: u64,
    pub identities: u64,
    pub events: u64,
    pub consents: u64,
    pub plugin_state: u64,
}

/// Proof of a completed deletion: what was removed and when, with a digest of
/// its body and a MAC under the tenant's receipt key, so that neither can be
/// altered without detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    pub request: String,
    pub tenant: String,
    pub subjects: Vec<String>,
    pub requested_at_ms: i64,
    pub keys_destroyed_at_ms: i64,
    pub completed_at_ms: i64,
    pub deadline_ms: i64,
    pub met_deadline: bool,
    pub removed: Removed,
    pub identities_suppressed: u64,
    /// SHA-256 of the receipt's body (every field above), hex.
    pub digest: String,
    /// HMAC-SHA256 of the digest under the tenant's receipt key, hex.
    pub mac: String,
}

/// What a retention sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    pub subjects_scanned: u64,
    pub events_removed: u64,
    /// Subjects with no activity within their retention period, sent down the
    /// deletion path.
    pub subjects_expired: Vec<String>,
}

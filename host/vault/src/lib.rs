//! Tessera's data core: every read and write of customer data passes here.
//! It must never let plaintext personal data reach the store, a log or an
//! error message, and never lose an acknowledged write.
//!
//! The [`Vault`] sits between the store (which holds only sealed bytes and
//! keyed hashes) and everything that uses customer data: ingestion with
//! identity resolution ([`Vault::ingest_batch`]), profiles with trait classes
//! and event aggregates, consents and linked apps, the subject rights
//! (access, rectification, export, deletion with receipts and suppression),
//! the retention sweeper, and the hash-chained audit trail.
//!
//! Subject keys live in a [`KeyStore`](tessera_privacy::KeyStore): the
//! [`SubjectKeyStore`](tessera_privacy::SubjectKeyStore) file in a key
//! directory outside the data directory, or a table that several nodes
//! share: destroying a key there makes every copy of that person's records
//! unreadable, including copies and backups of the data directory. Nodes
//! sharing a store keep their caches in step through per-tenant change
//! marks ([`Vault::poll_changes`]).

mod audience;
mod audit;
mod changes;
mod documents;
mod error;
mod export;
mod ingest;
mod leases;
mod memberships;
mod model;
pub mod normalize;
mod plugin_view;
mod restore;
mod retention;
mod rights;
mod settings;
mod vault;

pub use audience::{Audience, Recipient};
pub use audit::{AuditEntry, AuditProblem, AuditReport};
pub use changes::{CHANGES_DOC, CHANGES_ID, RemoteChangeListener};
pub use error::VaultError;
pub use ingest::{
    MAX_BATCH, MAX_EVENT_BYTES, MAX_EVENTS, MAX_FUTURE_MS, MAX_IDENTITIES, MAX_TRAIT_BYTES,
};
pub use leases::{HeldLease, LOCAL_WORKER};
pub use memberships::{MAX_PAST_SEGMENTS, MembershipChanges, SegmentMember};
pub use model::{
    Actor, Aggregate, BatchOutcome, CampaignDecision, Channel, ConsentChange, ConsentEntry,
    ConsentState, Consents, DeletionRequest, DeletionStatus, Event, Incoming, IngestOutcome,
    LinkedApp, Membership, MergeEntry, NewEvent, PastMembership, Person, Receipt, Refusal, Removed,
    Retention, SubjectView, SweepReport,
};
pub use normalize::{IdentityKind, NormalizeError, NormalizeRules};
pub use plugin_view::{ConsentingPeople, EventReads, Selection, ViewPerson};
pub use restore::{Reerased, ReerasureReport};
pub use rights::{JobsReport, PURGE_JOB};
pub use settings::{
    EventSpec, MAX_ALLOWED, MAX_EVENT_TYPES, MAX_PROPERTIES, PiiClass, PropertySpec,
    RetentionBounds, TenantSettings, TraitClass, TraitSpec, TraitType, check_event_spec,
};
pub use vault::{
    AccessListener, ChangeListener, Clock, ErasureListener, NODE_ID_FILE, SUBJECT_KEYS_FILE, Vault,
    rotate_master_key,
};

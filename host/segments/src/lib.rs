//! Segments: a segment plugin with its parameters saved under a name, whose
//! members Tessera keeps current.
//!
//! - **Save** ([`Segments::put`]): the plugin must be a running segment
//!   plugin granted the segment's purpose, and must accept the parameters.
//! - **Preview** ([`Segments::preview`]): the count and a sample of members,
//!   computed over every person without writing anything.
//! - **Batch recompute** ([`Segments::recompute`]): the plugin evaluates
//!   every person who consents to the purpose, a page at a time; who entered
//!   and who left is recorded, and so is the segment's size (its size over
//!   time). Members the evaluation no longer reaches (consent revoked, merged
//!   into someone else) leave. Time-based conditions change with the clock
//!   alone, so the server recomputes every segment on a schedule.
//! - **Streaming** ([`Segments::watch`], [`Segments::process_pending`]):
//!   every write to a person (an event, a trait edit, a consent change, a
//!   merge) queues that person; the queue's worker re-evaluates only those
//!   people, in every segment of their tenant. A person who revokes consent
//!   leaves every segment of that purpose on the next update.
//!
//! Both paths write through [`Vault::apply_memberships`], one at a time: a
//! recompute page does not overwrite a streaming update that happened while
//! the page was being evaluated (the streamed result is newer).
//!
//! **Export** ([`Segments::start_export`], [`Segments::run_export`]): the
//! members who consent to the purpose now, addressed by a trusted identity
//! of the kind chosen, sent a page at a time through a destination
//! connector granted the purpose and the address's PII class.

mod engine;
mod export;
pub mod rules;
mod shards;
mod stream;

pub use engine::{PAGE, Preview, RecomputeReport, Segment, SegmentSpec, Segments, SizePoint};
pub use export::{EXPORT_ACTION, EXPORT_PAGE, Export, ExportSpec, ExportStatus};
pub use shards::{DEFAULT_SHARD_LEASE_MS, FINISH_JOB, SHARD_JOB, SHARDS, ShardWork};
pub use stream::{StreamReport, StreamWorker};

use tessera_plugins::RegistryError;
use tessera_vault::VaultError;

/// Why a segment operation failed. Nothing was written unless the variant
/// says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    #[error(
        "a segment name is 1 to 64 of a-z, 0-9, `-` and `_`, starting with a letter or a \
         digit; {name:?} is not"
    )]
    BadName { name: String },
    #[error("no segment named {name:?}")]
    Unknown { name: String },
    #[error("plugin {plugin:?} is a {kind} plugin, not a segment plugin")]
    NotASegmentPlugin { plugin: String, kind: String },
    #[error(
        "plugin {plugin:?} works for {declared}, not for purpose {purpose:?}; choose one of \
         those"
    )]
    PurposeNotDeclared {
        plugin: String,
        purpose: String,
        declared: String,
    },
    #[error(
        "plugin {plugin:?} was granted no purpose it works for ({declared}); an operator must \
         grant one before a segment uses it"
    )]
    NoPurpose { plugin: String, declared: String },
    #[error(
        "plugin {plugin:?} is not granted purpose {purpose:?}; an operator must grant it \
         before a segment uses it for that purpose"
    )]
    PurposeNotGranted { plugin: String, purpose: String },
    #[error("{purpose:?} is not a purpose of the tenant (its purposes: {known})")]
    UnknownPurpose { purpose: String, known: String },
    #[error("the rule has {} problem(s): {}", problems.len(), problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "))]
    Rule { problems: Vec<rules::RuleProblem> },
    #[error("segments may not refer to each other in a cycle: {}", path.join(" → "))]
    Cycle { path: Vec<String> },
    #[error("segment {name:?} is used by {}; change or remove those first", by.join(", "))]
    InUse { name: String, by: Vec<String> },
    #[error("a description is at most {max} bytes", max = engine::MAX_DESCRIPTION)]
    DescriptionTooLong,
    #[error("a tenant has at most {max} segments; remove one first", max = engine::MAX_SEGMENTS)]
    TooMany,
    #[error(
        "connector {connector:?} is not granted {what}; an operator must grant it before \
         segments are exported through it"
    )]
    ExportNotGranted { connector: String, what: String },
    #[error("no export {id:?}")]
    UnknownExport { id: String },
    #[error(transparent)]
    Delivery(#[from] tessera_imports::DeliveryError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("a stored segment record is unreadable: {0}")]
    Corrupt(String),
    /// A shard of a recompute run failed (its plugin failed, was
    /// quarantined or removed, or the segment was removed): the run ended
    /// without changing the segment's `last_recompute`.
    #[error("the recompute of segment {segment:?} failed on a shard: {reason}")]
    RunFailed { segment: String, reason: String },
}

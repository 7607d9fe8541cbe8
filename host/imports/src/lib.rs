//! Imports: a tenant's file or upload read in chunks at record boundaries,
//! parsed by an installed connector plugin, resolved and stored by the
//! vault, with a quality report per import and dead letters for every row
//! or record that was not stored. It must never lose a row silently, and
//! never keep personal data in clear: import records and dead letters are
//! sealed with the tenant's document key.
//!
//! [`Importer::run`] does one import of a file; [`Importer::pull`] pulls a
//! source page by page from its stored cursor; [`Importer::dead_letters`],
//! [`Importer::fix_dead_letter`] and [`Importer::replay`] work through what
//! it set aside; [`Importer::purge_dead_letters`] is the job that
//! expires them.
//!
//! The way out is the same shape: [`Deliverer::deliver`] sends actions
//! through a destination connector, retries what may succeed later, and
//! keeps a sealed dead letter for every action not delivered, which
//! [`Deliverer::replay`] delivers again, never twice. An audience (people at
//! their addresses: a segment exported, a campaign sent) goes through a
//! destination granted its purpose and its addresses' PII class
//! ([`Deliverer::audience_destination`]), a page per delivery run
//! ([`Deliverer::deliver_page`]).

mod audience;
mod chunk;
mod convert;
mod deliver;
mod importer;
mod model;
mod pull;
mod sources;
mod upkeep;

pub use chunk::Chunking;
pub use convert::{ImportItem, ItemIdentity};
pub use deliver::{
    Deliverer, DelivererConfig, DeliveryAction, DeliveryError, DeliveryLetter,
    DeliveryLetterSummary, DeliveryReplayReport, DeliveryRun, DeliveryRunReport, DeliverySpec,
    DeliveryStatus, RetryPolicy, Sleeper, StartedDelivery, ThreadSleeper, random_fraction,
};
pub use importer::{ImportSpec, Importer, ImporterConfig, Progress, Started};
pub use model::{
    ConnectorCost, DeadLetter, DeadLetterSummary, Fix, ImportRecord, ImportReport, ImportStatus,
    LetterContent, LetterOrigin, LetterState, ParamValue, PurgeReport, RejectionExample,
    ReplayReport,
};
pub use model::{PullCursor, PullProgress, PulledPage};
pub use pull::{PullSpec, StartedPull};
pub use sources::{Source, SourceSpec};

/// The reason codes of [`ImportReport::rejected`].
pub mod codes {
    /// The connector rejected the row at a field: `invalid_field:<column>`.
    pub const INVALID_FIELD: &str = "invalid_field";
    /// The connector rejected the row, naming no field.
    pub const INVALID_ROW: &str = "invalid_row";
    /// The connector failed or trapped on the row's chunk.
    pub const CONNECTOR_FAILED: &str = "connector_failed";
    /// A record named an identity kind the vault does not know.
    pub const UNKNOWN_IDENTITY_KIND: &str = "unknown_identity_kind";
    /// The vault refused the record: an identity it cannot normalise, no
    /// identity, a trait not in the tenant schema or of the wrong type, an
    /// invalid event, an unknown purpose.
    pub const INVALID_IDENTITY: &str = "invalid_identity";
    pub const NO_IDENTITY: &str = "no_identity";
    pub const UNKNOWN_TRAIT: &str = "unknown_trait";
    pub const INVALID_TRAIT: &str = "invalid_trait";
    pub const INVALID_EVENT: &str = "invalid_event";
    /// An event property the tenant's event schema refuses (required,
    /// type, allowed values, strict).
    pub const INVALID_PROPERTY: &str = "invalid_property";
    pub const UNKNOWN_PURPOSE: &str = "unknown_purpose";
    /// The record names an erased person (on the suppression list). Counted
    /// but never kept as a dead letter: an erased person's data is not kept.
    pub const SUPPRESSED: &str = "suppressed";
    /// The tenant schema changed while the record was being stored.
    pub const SCHEMA_CHANGED: &str = "schema_changed";
    pub const UNTRUSTED_MERGE: &str = "untrusted_merge";
}

/// Why an import, or an operation on its dead letters, failed. Each variant
/// says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The connector is not installed, not running, or quarantined.
    #[error(transparent)]
    Connector(#[from] tessera_plugins::RegistryError),
    /// The connector refused the parameters (schema or its `validate`).
    #[error("the import's parameters are refused: {0}")]
    Params(String),
    #[error("plugin `{name}` is a {kind} plugin; imports need a connector that parses pushed data")]
    NotAConnector { name: String, kind: String },
    /// The plugin is not a connector, or its connector does not declare `pull`.
    #[error("plugin `{name}` cannot be pulled: {why}")]
    NotAPullSource { name: String, why: String },
    #[error("the pull's source name is refused: {0}")]
    BadSource(String),
    #[error(
        "source `{source_name}` is being pulled through connector `{connector}` already; wait \
         for that pull to end"
    )]
    PullRunning {
        connector: String,
        source_name: String,
    },
    /// A pull's page failed (the connector's error or a trap): the cursor
    /// stays at that page, and the next pull fetches it again.
    #[error("page {page} of the pull ({from}) failed: {error}")]
    PageFailed {
        page: u64,
        /// The page's cursor, as words: `the source's start` or `cursor `…``.
        from: String,
        error: Box<tessera_runtime::CallError>,
    },
    /// A page's next cursor cannot be followed (it came back again, or it
    /// is too long); the page's records were not stored.
    #[error("page {page} of the pull ({from}) gave a next cursor that cannot be followed: {why}")]
    BadCursor {
        page: u64,
        from: String,
        why: String,
    },
    #[error("the input could not be read: {0}")]
    Input(String),
    #[error(
        "the input is larger than {limit} bytes, the most one call takes; use the `csv` or \
         `lines` chunking, or split the input"
    )]
    TooLarge { limit: usize },
    #[error(
        "the record starting at row {row} is longer than {limit} bytes{}",
        quote_hint(.unclosed_quote)
    )]
    RecordTooLong {
        row: u64,
        limit: usize,
        unclosed_quote: bool,
    },
    #[error("the header record cannot be passed to the connector: {0}")]
    BadHeader(String),
    #[error("tenant has no webhook source `{name}`")]
    UnknownSource { name: String },
    #[error("`{name}` is not a source name: 1 to 64 of a-z, 0-9, `-` and `_`")]
    BadSourceName { name: String },
    #[error("tenant has no import `{id}`")]
    UnknownImport { id: String },
    #[error("import `{import}` has no dead letter `{id}`")]
    UnknownDeadLetter { import: String, id: String },
    #[error("dead letter `{id}` cannot take this fix: {reason}")]
    BadFix { id: String, reason: String },
    #[error(transparent)]
    Vault(#[from] tessera_vault::VaultError),
    #[error("a stored import document does not decode: {0}")]
    Corrupt(String),
    /// Another node holds the lease of a new import's liveness job: two
    /// nodes made the same import id (a clock gone wrong), or the store
    /// lost the job. Start the import again.
    #[error("import {import} is held by another node already; start the import again")]
    HeldElsewhere { import: String },
    /// The import stopped; its record says `failed` with the reason. What
    /// was stored before stays stored, and importing the input again adds
    /// only what is missing.
    #[error("import {import} failed: {error}")]
    Failed {
        import: String,
        error: Box<ImportError>,
    },
}

fn quote_hint(unclosed_quote: &bool) -> &'static str {
    if *unclosed_quote {
        " (it opens a quote that is never closed)"
    } else {
        ""
    }
}

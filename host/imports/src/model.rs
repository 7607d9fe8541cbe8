//! What an import leaves behind: its record with the quality report, and
//! its dead letters. Both are stored sealed with the tenant's document key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
pub use tessera_plugins::ParamValue;
use tessera_vault::{Actor, Channel};

use crate::chunk::Chunking;
use crate::convert::ImportItem;

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ImportStatus {
    Running,
    Completed,
    /// Stopped before the end of the input (the input could not be read,
    /// a record was longer than the limit, a pulled page failed, the store
    /// failed): what was stored before stays stored, and `error` says why.
    Failed,
}

/// One import of a tenant, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    pub id: String,
    pub tenant: String,
    pub connector: String,
    pub connector_version: String,
    /// What was imported (a file name, an upload id), as the caller named it.
    pub source: String,
    pub chunking: Chunking,
    /// The channel of its events, if the import set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub status: ImportStatus,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub started_by: Actor,
    pub report: ImportReport,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The connector's resolved parameters (without `header`/`first_row`),
    /// for replaying dead letters with the same mapping.
    pub params: Vec<(String, ParamValue)>,
    /// The header record (CSV with a header), as text: replayed rows are
    /// parsed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Whether its records come from a trusted source (an operator's or a
    /// marketer's import): they may mark identities as the person's own
    /// and merge people who each hold one. An ingest token's push is not
    /// trusted (`Vault::ingest_batch_untrusted`); nor are its replays.
    #[serde(default = "trusted")]
    pub trusted: bool,
    /// A pull (chunking `pages`): the cursors it went from and to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullProgress>,
    /// The node that runs it, when nodes share the store: while it runs it
    /// holds the lease of the store job [`ImportRecord::liveness_job`], so
    /// that the others can tell when it died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl ImportRecord {
    /// The store job whose lease the running node holds while the import
    /// runs (its kind is the same string, so that it is claimed by name).
    pub fn liveness_job(&self) -> String {
        format!("imports.running/{}/{}", self.tenant, self.id)
    }
}

/// How far a pull got: the cursor it started from, the cursor it stored
/// after its last page, and whether the source said it had no more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullProgress {
    /// The cursor the pull started from; none: the source's start.
    pub from: Option<String>,
    /// Where the next pull of the source continues: the cursor stored after
    /// the last page that was stored (the last page's own cursor once the
    /// source is exhausted, so that the next pull fetches that page again
    /// for anything added since).
    pub cursor: Option<String>,
    /// Pages fetched and stored.
    pub pages: u64,
    /// The last page had no next cursor.
    pub exhausted: bool,
    /// The most pages this pull was allowed to fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u32>,
}

/// Where pulling a source through a connector continues: one per tenant,
/// connector installation and source, sealed with the tenant's document key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullCursor {
    pub connector: String,
    /// The connector's installation (the same across its upgrades).
    pub installation: String,
    pub source: String,
    /// Where the next pull starts; none: the source's start.
    pub cursor: Option<String>,
    /// The page at `cursor` was the source's last when it was stored.
    pub exhausted: bool,
    /// The import that stored it, and when.
    pub import: String,
    pub updated_at_ms: i64,
}

/// The page of a pull a dead letter came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PulledPage {
    /// 1-based, within its import.
    pub number: u64,
    /// The cursor the page was fetched with; none: the source's start.
    pub cursor: Option<String>,
}

fn trusted() -> bool {
    true
}

/// The quality report of an import. Every count is taken from what the
/// connector returned and what the vault reported; none is estimated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    /// Bytes read from the input (a pull: bytes the connector received
    /// over HTTP).
    pub bytes: u64,
    /// Data rows of the input (non-blank records; a CSV header is not a row;
    /// for `whole`, non-blank lines; a pull: the records and rejected items
    /// of its pages).
    pub rows_read: u64,
    /// Chunks parsed, and those the connector failed on (their rows are
    /// dead letters). A pull: pages stored, and the page that failed (the
    /// next pull fetches it again) or whose next cursor was refused.
    pub chunks: u64,
    pub chunks_failed: u64,
    /// Records the connector produced, by kind.
    pub records: u64,
    pub events: u64,
    pub trait_updates: u64,
    pub identity_links: u64,
    /// Records the vault stored (their events may all be duplicates).
    pub accepted: u64,
    /// Rows the connector rejected, rows of failed chunks, and records that
    /// could not be stored, by reason code (see [`codes`](crate::codes)).
    pub rejected: BTreeMap<String, u64>,
    /// Rows rejected by the connector or lost with their chunk.
    pub rows_rejected: u64,
    /// Records refused on their way into the vault.
    pub records_refused: u64,
    /// The first rejections, in input order.
    pub examples: Vec<RejectionExample>,
    /// Events stored, and events already stored before (by source id):
    /// re-importing a file adds 0 events and counts them all here.
    pub events_inserted: u64,
    pub duplicates: u64,
    /// Events older than the person's retention period, not stored.
    pub expired: u64,
    /// People created by this import, and people it found already stored.
    pub subjects_new: u64,
    pub subjects_matched: u64,
    /// Subjects merged into another because a record showed they are one person.
    pub identities_merged: u64,
    /// Dead letters written.
    pub dead_letters: u64,
    pub connector: ConnectorCost,
}

impl ImportReport {
    /// Rejected rows and refused records, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// One rejection, as an example in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectionExample {
    /// File line number of the row, or a pulled item's 1-based position in
    /// its page (none for a refused record, whose row the connector does not
    /// report).
    pub row: Option<u32>,
    pub field: Option<String>,
    pub code: String,
    pub reason: String,
    /// The dead letter that keeps it, if one was written.
    pub dead_letter: Option<String>,
}

/// What the connector's calls cost, summed over the calls that returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectorCost {
    pub calls: u64,
    /// Calls that failed or trapped.
    pub failed_calls: u64,
    pub fuel: u64,
    pub wall_ms: u64,
    /// The largest linear memory of any call.
    pub peak_memory_bytes: u64,
    pub output_bytes: u64,
}

/// Where a dead letter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LetterOrigin {
    /// The connector rejected the row.
    Rejected,
    /// The connector failed (or trapped) on the row's chunk.
    ChunkFailed,
    /// The connector's record could not be stored.
    Refused,
}

/// Where a dead letter is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LetterState {
    /// Waiting to be fixed or replayed.
    Open,
    /// Its content was replaced; not replayed yet.
    Fixed,
    /// Replayed and stored: a replay does nothing more with it.
    Replayed,
}

/// What a dead letter keeps of the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LetterContent {
    /// The row's bytes as cut from the input (in its encoding), with the
    /// header record it is read with (CSV).
    Raw {
        #[serde(with = "base64_bytes")]
        bytes: Vec<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
    },
    /// The connector's record, refused by the vault.
    Item { item: ImportItem },
    /// Nothing: a `whole` input the connector failed on (import it again),
    /// or a pulled item the connector rejected (fix it with a record).
    None,
}

/// One dead letter, with its content (sealed in the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `<import>:<sequence>`.
    pub id: String,
    pub import: String,
    pub origin: LetterOrigin,
    pub code: String,
    pub row: Option<u32>,
    pub field: Option<String>,
    pub reason: String,
    pub state: LetterState,
    /// Replays tried (each that failed updated `reason`).
    pub attempts: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: i64,
    /// The page of a pull the rejected item was on (its `row` is the
    /// item's 1-based position in that page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PulledPage>,
    pub content: LetterContent,
}

/// A dead letter without its content, as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterSummary {
    pub id: String,
    pub import: String,
    pub origin: LetterOrigin,
    pub code: String,
    pub row: Option<u32>,
    pub field: Option<String>,
    pub reason: String,
    pub state: LetterState,
    pub attempts: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<PulledPage>,
    /// Whether it keeps input an operator can read, fix and replay.
    pub has_content: bool,
}

impl From<&DeadLetter> for DeadLetterSummary {
    fn from(l: &DeadLetter) -> Self {
        DeadLetterSummary {
            id: l.id.clone(),
            import: l.import.clone(),
            origin: l.origin,
            code: l.code.clone(),
            row: l.row,
            field: l.field.clone(),
            reason: l.reason.clone(),
            state: l.state,
            attempts: l.attempts,
            created_at_ms: l.created_at_ms,
            updated_at_ms: l.updated_at_ms,
            expires_at_ms: l.expires_at_ms,
            page: l.page.clone(),
            has_content: !matches!(l.content, LetterContent::None),
        }
    }
}

/// A replacement for a dead letter's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Fix {
    /// New bytes for a row (in the input's encoding; the header stays).
    Raw(Vec<u8>),
    /// A new record for a refused one.
    Item(ImportItem),
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayReport {
    /// Letters replayed and stored now.
    pub replayed: u64,
    /// Letters already replayed before: nothing was done with them.
    pub already_replayed: u64,
    /// Letters that failed again (their reason is updated).
    pub failed: u64,
    /// Ids asked for that are not letters of the import.
    pub unknown: u64,
    pub records: u64,
    pub events_inserted: u64,
    pub duplicates: u64,
    /// Events older than the person's retention period, not stored.
    pub expired: u64,
    pub subjects_new: u64,
    pub identities_merged: u64,
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// What the dead-letter purge job removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PurgeReport {
    /// Letters past their expiry.
    pub expired: u64,
    /// Refused records that name an erased person.
    pub erased: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records and letters stored before pulls existed decode: a file
    /// import, no `pull`, letters without a `page`.
    #[test]
    fn records_stored_before_pulls_still_decode() {
        let record: ImportRecord = serde_json::from_value(serde_json::json!({
            "id": "imp-0000000000001-00000000", "tenant": "acme", "connector": "csv",
            "connector_version": "0.1.0", "source": "a.csv", "chunking": "csv",
            "status": "completed", "started_at_ms": 1, "finished_at_ms": 2,
            "started_by": {"role": "operator", "id": "tok"},
            "report": ImportReport::default(), "params": [],
        }))
        .unwrap();
        assert_eq!((record.chunking, record.pull), (Chunking::Csv, None));
        let letter: DeadLetter = serde_json::from_value(serde_json::json!({
            "id": "imp-1:00000000", "import": "imp-1", "origin": "rejected",
            "code": "invalid_row", "row": 3, "field": null, "reason": "bad", "state": "open",
            "attempts": 0, "created_at_ms": 1, "updated_at_ms": 1, "expires_at_ms": 9,
            "content": {"type": "none"},
        }))
        .unwrap();
        assert_eq!(letter.page, None);
        assert!(!DeadLetterSummary::from(&letter).has_content);
    }
}

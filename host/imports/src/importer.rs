//! The [`Importer`]: runs imports and works through their dead letters.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use tessera_plugins::{Live, Registry};
use tessera_runtime::api::records::{Modes, ParseOutput, Record};
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{CallError, Cost, PluginKind};
use tessera_vault::{
    Actor, AuditEntry, BatchOutcome, Channel, Incoming, IngestOutcome, Refusal, Vault, VaultError,
};

use crate::ImportError;
use crate::chunk::{self, Chunk, Chunker, Chunking, CsvShape, RecordSpan};
use crate::codes;
use crate::convert::ImportItem;
use crate::model::{
    ConnectorCost, DeadLetter, DeadLetterSummary, Fix, ImportRecord, ImportReport, ImportStatus,
    LetterContent, LetterOrigin, LetterState, PulledPage, PurgeReport, RejectionExample,
    ReplayReport,
};
use crate::pull::RunningPulls;

/// Document kind of an import record (sealed; id: the import id).
pub(crate) const KIND_IMPORT: &str = "import";
/// Document kind of a dead letter (sealed; id: `<import>:<sequence>`).
const KIND_LETTER: &str = "import_letter";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Parameters the importer sets per chunk; a caller's are ignored.
const HOST_PARAMS: [&str; 2] = ["header", "first_row"];

/// How the importer cuts, batches and keeps.
#[derive(Debug, Clone)]
pub struct ImporterConfig {
    /// A chunk ends at the first record boundary after this many bytes.
    pub chunk_bytes: usize,
    /// A chunk grows past `chunk_bytes` to hold one long record, up to this;
    /// a longer record (or an unclosed quote) fails the import at its row.
    pub max_chunk_bytes: usize,
    /// The most a `whole` input may be.
    pub whole_max_bytes: usize,
    /// Records per `Vault::ingest_batch` call.
    pub batch: usize,
    /// Rejections kept as examples in a report.
    pub examples: usize,
    /// Days a dead letter is kept before the purge job removes it.
    pub dead_letter_days: u32,
    /// Days an import record (its quality report) is kept after it ended.
    pub import_days: u32,
    /// With a store other nodes share: the lease, in milliseconds, that a
    /// node holds on each import it runs (renewed every third of it); a
    /// node that dies leaves its imports to be marked failed by another
    /// once the lease runs out.
    pub lease_ms: u64,
}

impl Default for ImporterConfig {
    fn default() -> Self {
        ImporterConfig {
            chunk_bytes: 1 << 20,
            max_chunk_bytes: 16 << 20,
            whole_max_bytes: 16 << 20,
            batch: 500,
            examples: 20,
            dead_letter_days: 30,
            import_days: 90,
            lease_ms: 30_000,
        }
    }
}

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportSpec {
    /// The installed connector plugin's name.
    pub connector: String,
    /// Its parameters (e.g. the CSV `mapping`); `header` and `first_row`
    /// are the importer's.
    pub params: Vec<FieldValue>,
    pub chunking: Chunking,
    /// What is imported, for the import record (a file name, an upload id).
    pub source: String,
    /// The channel of the events; `None`: events keyed by a member id and no
    /// web identity are offline, others online.
    pub channel: Option<Channel>,
}

/// How far an import has come; given to the progress callback after each
/// chunk (a pull: after each page, `chunks` counting pages).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    pub bytes_read: u64,
    pub chunks: u64,
    pub rows_read: u64,
    pub records: u64,
    pub accepted: u64,
    pub rejected: u64,
}

/// Runs imports of tenants' data through their connectors into the vault.
/// Cheap to clone. Its calls block (plugins, the store): run them on a
/// blocking pool.
#[derive(Debug, Clone)]
pub struct Importer {
    pub(crate) registry: Registry,
    pub(crate) vault: Arc<Vault>,
    config: ImporterConfig,
    /// Serialises changes to dead letters (fix, replay, purge).
    letters: Arc<Mutex<()>>,
    /// The sources being pulled now: one pull of a source at a time.
    pub(crate) pulls: RunningPulls,
}

/// A connector and its parameters, checked.
pub(crate) struct Checked {
    live: Live,
    pub(crate) params: Vec<FieldValue>,
    declares_first_row: bool,
    csv: Option<CsvShape>,
}

/// An import that was checked and recorded as running; [`Started::run`]
/// reads its input.
#[derive(Debug)]
pub struct Started {
    pub(crate) importer: Importer,
    pub(crate) record: ImportRecord,
    pub(crate) live: Live,
    /// The resolved parameters, without the importer's own.
    pub(crate) params: Vec<FieldValue>,
    csv: Option<CsvShape>,
    declares_first_row: bool,
    channel: Option<Channel>,
    actor: Actor,
    /// The lease that tells other nodes the import still runs.
    liveness: Option<tessera_vault::HeldLease>,
}

impl Importer {
    pub fn new(registry: Registry, vault: Arc<Vault>) -> Self {
        Importer {
            registry,
            vault,
            config: ImporterConfig::default(),
            letters: Arc::default(),
            pulls: RunningPulls::default(),
        }
    }

    pub fn with_config(mut self, config: ImporterConfig) -> Self {
        self.config = config;
        self
    }

    pub fn config(&self) -> &ImporterConfig {
        &self.config
    }

    /// Checks an import and records it as running: the connector is running
    /// and not quarantined, serves `parse`, and takes the parameters.
    pub fn start(
        &self,
        tenant: &str,
        spec: ImportSpec,
        actor: &Actor,
    ) -> Result<Started, ImportError> {
        let Checked {
            live,
            params,
            declares_first_row,
            csv,
        } = self.check(tenant, &spec)?;
        if !live
            .plugin
            .info()
            .modes
            .is_some_and(|m| m.contains(Modes::PUSH))
        {
            return Err(ImportError::NotAConnector {
                name: spec.connector.clone(),
                kind: "pull-only connector".into(),
            });
        }
        let mut record =
            self.new_record(tenant, &live, spec.chunking, &spec.source, &params, actor)?;
        record.channel = spec.channel;
        let liveness = self.hold_liveness(&record)?;
        self.put_import(&record)?;
        Ok(Started {
            importer: self.clone(),
            record,
            live,
            params,
            csv,
            declares_first_row,
            channel: spec.channel,
            actor: actor.clone(),
            liveness,
        })
    }

    /// Checks that the connector `spec` names is running, is a connector,
    /// and takes the parameters; returns them resolved.
    pub(crate) fn check(&self, tenant: &str, spec: &ImportSpec) -> Result<Checked, ImportError> {
        if spec.chunking == Chunking::Pages {
            return Err(ImportError::Params(
                "chunking `pages` is not an input's: pull the source with `Importer::pull`".into(),
            ));
        }
        let live = self.registry.callable(tenant, &spec.connector)?;
        let info = live.plugin.info();
        if info.kind != PluginKind::Connector {
            return Err(ImportError::NotAConnector {
                name: spec.connector.clone(),
                kind: info.kind.as_str().to_string(),
            });
        }
        if !info
            .modes
            .is_some_and(|m| m.intersects(Modes::PUSH | Modes::PULL))
        {
            return Err(ImportError::NotAConnector {
                name: spec.connector.clone(),
                kind: "delivery-only connector".into(),
            });
        }
        let given: Vec<FieldValue> = spec
            .params
            .iter()
            .filter(|p| !HOST_PARAMS.contains(&p.name.as_str()))
            .cloned()
            .collect();
        let mut params = live
            .plugin
            .validate(&given)
            .map_err(|e| ImportError::Params(e.to_string()))?;
        params.retain(|p| !HOST_PARAMS.contains(&p.name.as_str()));
        let declares_first_row = info
            .manifest
            .parameters
            .iter()
            .any(|p| p.name == "first_row");
        let csv = match spec.chunking {
            Chunking::Csv => Some(csv_shape(&params)?),
            _ => None,
        };
        Ok(Checked {
            live,
            params,
            declares_first_row,
            csv,
        })
    }

    /// An import's record as it starts, with a new id.
    pub(crate) fn new_record(
        &self,
        tenant: &str,
        live: &Live,
        chunking: Chunking,
        source: &str,
        params: &[FieldValue],
        actor: &Actor,
    ) -> Result<ImportRecord, ImportError> {
        let now = self.vault.now_ms();
        Ok(ImportRecord {
            id: new_id(now)?,
            tenant: tenant.to_string(),
            connector: live.name.clone(),
            connector_version: live.plugin.info().manifest.version.clone(),
            source: source.to_string(),
            chunking,
            status: ImportStatus::Running,
            started_at_ms: now,
            finished_at_ms: None,
            started_by: actor.clone(),
            report: ImportReport::default(),
            error: None,
            channel: None,
            params: tessera_plugins::stored_params(params),
            header: None,
            pull: None,
            trusted: true,
            node: self.vault.node_id().map(str::to_owned),
        })
    }

    /// With a store other nodes share: claims the import's liveness job
    /// ([`ImportRecord::liveness_job`]) and keeps its lease while the
    /// returned guard lives, so that the other nodes can tell a running
    /// import from one whose node died ([`Importer::fail_abandoned`]).
    pub(crate) fn hold_liveness(
        &self,
        record: &ImportRecord,
    ) -> Result<Option<tessera_vault::HeldLease>, ImportError> {
        if !self.vault.is_shared() {
            return Ok(None);
        }
        let job = record.liveness_job();
        let store = self.vault.store();
        store
            .enqueue_job(&tessera_store::JobRecord {
                id: job.clone(),
                kind: job.clone(),
                not_before_ms: 0,
                payload: Vec::new(),
            })
            .map_err(VaultError::from)?;
        let lease_ms = self.config.lease_ms;
        match self.vault.claim_held(&job, lease_ms)? {
            Some((_, held)) => Ok(Some(held)),
            None => Err(ImportError::HeldElsewhere {
                import: record.id.clone(),
            }),
        }
    }

    /// Ends an import's liveness job (the import ended).
    pub(crate) fn release_liveness(
        &self,
        record: &ImportRecord,
        held: Option<tessera_vault::HeldLease>,
    ) {
        let Some(held) = held else { return };
        drop(held);
        if let Err(error) = self.vault.store().complete_job(&record.liveness_job()) {
            // Its lease runs out, and a node then finds the import ended.
            tracing::warn!(import = %record.id, %error, "cannot end an import's liveness job");
        }
    }

    /// A started import for a pull: no input, no chunking of its own.
    pub(crate) fn started(
        &self,
        record: ImportRecord,
        live: Live,
        params: Vec<FieldValue>,
        actor: &Actor,
        liveness: Option<tessera_vault::HeldLease>,
    ) -> Started {
        Started {
            importer: self.clone(),
            record,
            live,
            params,
            csv: None,
            declares_first_row: false,
            channel: None,
            actor: actor.clone(),
            liveness,
        }
    }

    /// Imports `input` into `tenant` through the connector `spec` names;
    /// see [`Started::run`].
    pub fn run(
        &self,
        tenant: &str,
        spec: ImportSpec,
        input: impl Read,
        actor: &Actor,
        progress: impl FnMut(&Progress),
    ) -> Result<ImportRecord, ImportError> {
        self.start(tenant, spec, actor)?.run(input, progress)
    }

    /// One import of a tenant.
    pub fn import(&self, tenant: &str, id: &str) -> Result<ImportRecord, ImportError> {
        let plain = self
            .vault
            .sealed_document(tenant, KIND_IMPORT, id)?
            .ok_or_else(|| ImportError::UnknownImport { id: id.to_string() })?;
        decode(&plain)
    }

    /// The tenant's imports, oldest first.
    pub fn imports(&self, tenant: &str) -> Result<Vec<ImportRecord>, ImportError> {
        let mut out = Vec::new();
        self.vault
            .for_each_sealed_document(tenant, KIND_IMPORT, |_, plain| {
                out.push(decode(&plain)?);
                Ok::<_, ImportError>(())
            })?;
        Ok(out)
    }

    /// At most `limit` dead letters of an import, by id, after the letter
    /// `after`: row, field, reason and state, never their content.
    pub fn dead_letters(
        &self,
        tenant: &str,
        import: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetterSummary>, ImportError> {
        self.import(tenant, import)?;
        self.vault
            .sealed_documents_under(tenant, KIND_LETTER, &format!("{import}:"), after, limit)?
            .into_iter()
            .map(|(_, plain)| Ok(DeadLetterSummary::from(&decode::<DeadLetter>(&plain)?)))
            .collect()
    }

    /// One dead letter with its content (the row's bytes or the refused
    /// record): personal data, for operators; the read is audited.
    pub fn dead_letter(
        &self,
        tenant: &str,
        import: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<DeadLetter, ImportError> {
        let letter = self.letter(tenant, import, id)?;
        self.vault.record_admin_action(
            tenant,
            AuditEntry {
                detail: Some(format!("dead letter {id} of import {import}")),
                ..AuditEntry::new(actor, "import.dead_letter.read")
            },
        )?;
        Ok(letter)
    }

    /// Replaces a dead letter's content: the row's bytes (in the input's
    /// encoding; the header it is read with stays) or the refused record.
    /// A replayed letter cannot be changed.
    pub fn fix_dead_letter(
        &self,
        tenant: &str,
        import: &str,
        id: &str,
        fix: Fix,
        actor: &Actor,
    ) -> Result<DeadLetterSummary, ImportError> {
        let _guard = self.letters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut letter = self.letter(tenant, import, id)?;
        let bad = |reason: &str| ImportError::BadFix {
            id: id.to_string(),
            reason: reason.to_string(),
        };
        if letter.state == LetterState::Replayed {
            return Err(bad("it was replayed already"));
        }
        let pulled = letter.page.is_some();
        letter.content = match (fix, &letter.content) {
            // A pulled item has no bytes of its own: it is fixed as a record.
            (Fix::Item(item), LetterContent::None) if pulled => LetterContent::Item { item },
            (Fix::Raw(_), _) if pulled => {
                return Err(bad(
                    "it is an item of a pulled page, which keeps no bytes; fix it with a record",
                ));
            }
            (Fix::Raw(bytes), LetterContent::Raw { header, .. }) => LetterContent::Raw {
                bytes,
                header: header.clone(),
            },
            (Fix::Raw(bytes), LetterContent::None) => LetterContent::Raw {
                bytes,
                header: None,
            },
            (Fix::Item(item), LetterContent::Item { .. }) => LetterContent::Item { item },
            (Fix::Raw(_), LetterContent::Item { .. }) => {
                return Err(bad("it keeps a record the vault refused; fix the record"));
            }
            (Fix::Item(_), _) => {
                return Err(bad("it keeps an input row; fix the row's bytes"));
            }
        };
        letter.state = LetterState::Fixed;
        letter.updated_at_ms = self.vault.now_ms();
        self.put_letter(tenant, &letter)?;
        self.vault.record_admin_action(
            tenant,
            AuditEntry {
                detail: Some(format!("dead letter {id} of import {import} fixed")),
                ..AuditEntry::new(actor, "import.dead_letter.fix")
            },
        )?;
        self.vault.flush()?;
        Ok(DeadLetterSummary::from(&letter))
    }

    /// Replays dead letters of an import: a row is parsed again by the
    /// import's connector, with the import's parameters, its header and its
    /// row number; a refused record is converted and ingested again. A
    /// letter that is stored is marked replayed, and replaying it again does
    /// nothing; one that fails again stays open with the new reason.
    pub fn replay(
        &self,
        tenant: &str,
        import: &str,
        ids: &[String],
        actor: &Actor,
    ) -> Result<ReplayReport, ImportError> {
        let _guard = self.letters.lock().unwrap_or_else(PoisonError::into_inner);
        let record = self.import(tenant, import)?;
        let mut report = ReplayReport::default();
        let mut live: Option<Live> = None;
        for id in ids {
            let mut letter = match self.letter(tenant, import, id) {
                Ok(letter) => letter,
                Err(ImportError::UnknownDeadLetter { .. }) => {
                    report.unknown += 1;
                    continue;
                }
                Err(error) => return Err(error),
            };
            if letter.state == LetterState::Replayed {
                report.already_replayed += 1;
                continue;
            }
            let items = match &letter.content {
                LetterContent::Raw { bytes, header } => {
                    if live.is_none() {
                        live = Some(self.registry.callable(tenant, &record.connector)?);
                    }
                    let live = live.as_ref().expect("set above");
                    reparse(live, &record, letter.row, header.as_deref(), bytes)
                }
                LetterContent::Item { item } => Ok(vec![item.clone()]),
                LetterContent::None if letter.page.is_some() => Err(
                    "the letter keeps no input (a pulled item the connector rejected): fix it \
                     with a record, or reset the pull's cursor and pull the source again"
                        .to_string(),
                ),
                LetterContent::None => Err(
                    "the letter keeps no input (the whole input failed): import it again, or \
                     fix the letter with the row's bytes"
                        .to_string(),
                ),
            };
            let outcome = items.and_then(|items| {
                let channel = record.channel;
                let incoming = items
                    .iter()
                    .map(|item| item.to_incoming(channel).map_err(|u| u.reason))
                    .collect::<Result<Vec<Incoming>, String>>()?;
                self.ingest_all(tenant, &incoming, actor, record.trusted)
            });
            letter.attempts += 1;
            letter.updated_at_ms = self.vault.now_ms();
            match outcome {
                Ok(Ok((total, outcomes))) => {
                    report.replayed += 1;
                    report.records += outcomes.len() as u64;
                    report.events_inserted += total.events_inserted;
                    report.duplicates += total.duplicates;
                    report.expired += total.expired;
                    report.subjects_new += total.subjects_created;
                    report.identities_merged += total.merges;
                    letter.state = LetterState::Replayed;
                }
                Ok(Err(vault_error)) => return Err(vault_error.into()),
                Err(reason) => {
                    report.failed += 1;
                    letter.reason = reason;
                }
            }
            self.put_letter(tenant, &letter)?;
        }
        self.vault.record_admin_action(
            tenant,
            AuditEntry {
                plugin: Some(record.connector.clone()),
                detail: Some(format!(
                    "import {import}: {} dead letters replayed, {} already replayed, {} failed \
                     again; {} events stored, {} duplicates",
                    report.replayed,
                    report.already_replayed,
                    report.failed,
                    report.events_inserted,
                    report.duplicates
                )),
                ..AuditEntry::new(actor, "import.replay")
            },
        )?;
        self.vault.flush()?;
        Ok(report)
    }

    /// The purge job: removes the tenant's dead letters past their expiry,
    /// and the refused records that name an erased person (an identity on
    /// the suppression list); returns how many. The server runs it
    /// periodically. A rejected row is kept until it expires even if it
    /// names an erased person: its identities were never parsed.
    pub fn purge_dead_letters(&self, tenant: &str) -> Result<PurgeReport, ImportError> {
        let _guard = self.letters.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.vault.now_ms();
        let mut report = PurgeReport::default();
        self.vault
            .for_each_sealed_document(tenant, KIND_LETTER, |id, plain| {
                let letter: DeadLetter = decode(&plain)?;
                let erased = match &letter.content {
                    LetterContent::Item { item } => self
                        .vault
                        .any_suppressed(tenant, &item.known_identities())?,
                    _ => false,
                };
                if (erased || letter.expires_at_ms <= now)
                    && self.vault.delete_sealed_document(tenant, KIND_LETTER, id)?
                {
                    if erased {
                        report.erased += 1;
                    } else {
                        report.expired += 1;
                    }
                }
                Ok::<_, ImportError>(())
            })?;
        if report.expired + report.erased > 0 {
            self.vault.record_admin_action(
                tenant,
                AuditEntry {
                    detail: Some(format!(
                        "{} expired dead letters and {} naming erased people purged",
                        report.expired, report.erased
                    )),
                    ..AuditEntry::new(
                        &Actor::system("dead-letter-purge"),
                        "import.dead_letter.purge",
                    )
                },
            )?;
            self.vault.flush()?;
        }
        Ok(report)
    }

    fn letter(&self, tenant: &str, import: &str, id: &str) -> Result<DeadLetter, ImportError> {
        let unknown = || ImportError::UnknownDeadLetter {
            import: import.to_string(),
            id: id.to_string(),
        };
        if !id.starts_with(&format!("{import}:")) {
            return Err(unknown());
        }
        let plain = self
            .vault
            .sealed_document(tenant, KIND_LETTER, id)?
            .ok_or_else(unknown)?;
        decode(&plain)
    }

    fn put_letter(&self, tenant: &str, letter: &DeadLetter) -> Result<(), ImportError> {
        self.vault
            .put_sealed_document(tenant, KIND_LETTER, &letter.id, &encode(letter)?)?;
        Ok(())
    }

    pub(crate) fn put_import(&self, record: &ImportRecord) -> Result<(), ImportError> {
        self.vault.put_sealed_document(
            &record.tenant,
            KIND_IMPORT,
            &record.id,
            &encode(record)?,
        )?;
        Ok(())
    }

    /// Ingests `items` (at most a batch): the outer error is a refusal to
    /// report (an item the vault refuses, as its reason), the inner one a
    /// failure of the vault itself.
    fn ingest_all(
        &self,
        tenant: &str,
        items: &[Incoming],
        actor: &Actor,
        trusted: bool,
    ) -> Result<Result<(BatchOutcome, Vec<IngestOutcome>), VaultError>, String> {
        match ingest(&self.vault, tenant, items, actor, trusted) {
            Ok((total, outcomes)) => {
                if let Some(refused) = outcomes.iter().find_map(|o| o.refused.as_ref()) {
                    return Err(refusal(refused).1);
                }
                Ok(Ok((total, outcomes)))
            }
            Err(error) if invalid(&error) => Err(error.to_string()),
            Err(error) => Ok(Err(error)),
        }
    }
}

/// Parses a dead letter's row again: the import's parameters, its header,
/// and its row number as `first_row` (when the connector takes one).
fn reparse(
    live: &Live,
    record: &ImportRecord,
    row: Option<u32>,
    header: Option<&str>,
    bytes: &[u8],
) -> Result<Vec<ImportItem>, String> {
    let mut params = tessera_plugins::field_values(&record.params);
    let declares_first_row = live
        .plugin
        .info()
        .manifest
        .parameters
        .iter()
        .any(|p| p.name == "first_row");
    if let Some(row) = row
        && (record.chunking == Chunking::Csv || declares_first_row)
    {
        params.push(FieldValue {
            name: "first_row".into(),
            value: Value::Integer(i64::from(row)),
        });
    }
    if let Some(header) = header {
        params.push(FieldValue {
            name: "header".into(),
            value: Value::Text(header.to_string()),
        });
    }
    let out = live
        .plugin
        .parse(&params, bytes)
        .map_err(|e| e.to_string())?
        .value;
    if let Some(rejection) = out.rejections.first() {
        return Err(rejection.reason.clone());
    }
    Ok(out.records.iter().map(ImportItem::from_record).collect())
}

impl Started {
    /// The import's id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The import as recorded when it started.
    pub fn record(&self) -> &ImportRecord {
        &self.record
    }

    /// Marks the import's records as coming from an untrusted source (an
    /// ingest token's push): see [`ImportRecord::trusted`].
    pub fn untrusted(mut self) -> Result<Self, ImportError> {
        self.record.trusted = false;
        self.importer.put_import(&self.record)?;
        Ok(self)
    }

    /// Ends the import without reading anything: recorded as failed with
    /// `reason` (an upload that never came), and audited.
    pub fn abandon(mut self, reason: &str) -> Result<ImportRecord, ImportError> {
        let importer = self.importer.clone();
        self.record.status = ImportStatus::Failed;
        self.record.finished_at_ms = Some(importer.vault.now_ms());
        self.record.error = Some(reason.to_string());
        importer.put_import(&self.record)?;
        importer.release_liveness(&self.record, self.liveness.take());
        importer.vault.record_admin_action(
            &self.record.tenant,
            AuditEntry {
                plugin: Some(self.record.connector.clone()),
                plugin_version: Some(self.record.connector_version.clone()),
                detail: Some(format!("import {} failed: {reason}", self.record.id)),
                ..AuditEntry::new(&self.actor, "import.run")
            },
        )?;
        importer.vault.flush()?;
        Ok(self.record)
    }

    /// Reads `input` chunk by chunk: each chunk is parsed by the connector,
    /// its records are converted and stored in batches, its rejected rows
    /// and refused records become dead letters. A chunk the connector fails
    /// on (an error or a trap) becomes dead letters, one per row, and the
    /// import goes on. Calls `progress` after each chunk. Ends with the
    /// import record, completed, and an `import.run` audit entry.
    ///
    /// An error that stops the import (unreadable input, a record over the
    /// limit, the store failing) marks it failed and is returned as
    /// [`ImportError::Failed`]; what was stored before stays stored.
    pub fn run(
        mut self,
        input: impl Read,
        mut progress: impl FnMut(&Progress),
    ) -> Result<ImportRecord, ImportError> {
        let importer = self.importer.clone();
        let config = importer.config.clone();
        let (target, max) = match self.record.chunking {
            Chunking::Whole => (config.whole_max_bytes, config.whole_max_bytes),
            _ => (config.chunk_bytes, config.max_chunk_bytes),
        };
        let mut chunker = Chunker::new(input, self.record.chunking, self.csv.as_ref(), target, max);
        let mut run = Run::new(&mut self, &importer);
        let result = run.all(&mut chunker, &mut progress);
        self.record.report.bytes = chunker.bytes_read;
        self.finish(result)
    }

    /// Ends the import: its status from `result`, its record saved, an
    /// `import.run` (file) or `import.pull` audit entry with its counts, all
    /// of it flushed. An error in `result` or while saving comes back as
    /// [`ImportError::Failed`].
    pub(crate) fn finish(
        mut self,
        result: Result<(), ImportError>,
    ) -> Result<ImportRecord, ImportError> {
        let importer = self.importer.clone();
        self.record.finished_at_ms = Some(importer.vault.now_ms());
        match &result {
            Ok(()) => self.record.status = ImportStatus::Completed,
            Err(error) => {
                self.record.status = ImportStatus::Failed;
                self.record.error = Some(error.to_string());
            }
        }
        let saved = importer.put_import(&self.record);
        importer.release_liveness(&self.record, self.liveness.take());
        let saved = saved.and_then(|()| {
            let r = &self.record.report;
            let status = match self.record.status {
                ImportStatus::Completed => "completed",
                ImportStatus::Failed => "failed",
                ImportStatus::Running => "running",
            };
            let (action, read) = match &self.record.pull {
                Some(pull) => (
                    "import.pull",
                    format!(
                        "{} pages ({} failed, {}), {} items read",
                        pull.pages,
                        r.chunks_failed,
                        if pull.exhausted {
                            "source exhausted"
                        } else {
                            "more to pull"
                        },
                        r.rows_read
                    ),
                ),
                None => (
                    "import.run",
                    format!(
                        "{} rows read in {} chunks ({} failed)",
                        r.rows_read, r.chunks, r.chunks_failed
                    ),
                ),
            };
            importer.vault.record_admin_action(
                &self.record.tenant,
                AuditEntry {
                    plugin: Some(self.record.connector.clone()),
                    plugin_version: Some(self.record.connector_version.clone()),
                    detail: Some(format!(
                        "import {} {status}: {read}, {} records, {} stored, {} rejected, {} \
                         events stored, {} duplicates, {} new and {} matched people, {} merges, \
                         {} dead letters",
                        self.record.id,
                        r.records,
                        r.accepted,
                        r.rejected_total(),
                        r.events_inserted,
                        r.duplicates,
                        r.subjects_new,
                        r.subjects_matched,
                        r.identities_merged,
                        r.dead_letters
                    )),
                    ..AuditEntry::new(&self.actor, action)
                },
            )?;
            importer.vault.flush()?;
            Ok(())
        });
        match (result, saved) {
            (Ok(()), Ok(())) => Ok(self.record),
            (Err(error), _) | (Ok(()), Err(error)) => Err(ImportError::Failed {
                import: self.record.id.clone(),
                error: Box::new(error),
            }),
        }
    }
}

/// One import while it runs: what a file's chunks and a pull's pages share
/// (converting and storing records, counting, dead letters).
pub(crate) struct Run<'s> {
    pub(crate) started: &'s mut Started,
    pub(crate) importer: &'s Importer,
    /// People this import created, and people it found already stored.
    created: HashSet<String>,
    matched: HashSet<String>,
    letters: u64,
    /// The header record as the connector's `header` parameter.
    header: Option<String>,
    /// The pulled page being stored: its dead letters name it.
    pub(crate) page: Option<PulledPage>,
}

impl<'s> Run<'s> {
    pub(crate) fn new(started: &'s mut Started, importer: &'s Importer) -> Self {
        Run {
            started,
            importer,
            created: HashSet::new(),
            matched: HashSet::new(),
            letters: 0,
            header: None,
            page: None,
        }
    }
}

impl Run<'_> {
    fn all<R: Read>(
        &mut self,
        chunker: &mut Chunker<R>,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<(), ImportError> {
        while let Some(chunk) = chunker.next_chunk()? {
            if chunk.index == 0
                && let (Some(csv), Some(header)) = (&self.started.csv, chunker.header())
            {
                let text = chunk::header_text(header, csv.gb18030)?;
                self.started.record.header = Some(text.clone());
                self.header = Some(text);
            }
            self.chunk(&chunk)?;
            let r = &self.started.record.report;
            progress(&Progress {
                bytes_read: chunker.bytes_read,
                chunks: r.chunks,
                rows_read: r.rows_read,
                records: r.records,
                accepted: r.accepted,
                rejected: r.rejected_total(),
            });
            self.importer.put_import(&self.started.record)?;
        }
        Ok(())
    }

    pub(crate) fn report(&mut self) -> &mut ImportReport {
        &mut self.started.record.report
    }

    fn chunk_params(&self, chunk: &Chunk) -> Vec<FieldValue> {
        let mut params = self.started.params.clone();
        let csv = self.started.record.chunking == Chunking::Csv;
        if csv
            || (self.started.declares_first_row && self.started.record.chunking == Chunking::Lines)
        {
            params.push(FieldValue {
                name: "first_row".into(),
                value: Value::Integer(i64::from(chunk.first_row)),
            });
        }
        if csv
            && chunk.index > 0
            && let Some(header) = &self.header
        {
            params.push(FieldValue {
                name: "header".into(),
                value: Value::Text(header.clone()),
            });
        }
        params
    }

    /// The file row of a row the connector reported.
    fn file_row(&self, chunk: &Chunk, row: u32) -> u32 {
        let relative =
            self.started.record.chunking == Chunking::Lines && !self.started.declares_first_row;
        if relative {
            row.saturating_add(chunk.first_row - 1)
        } else {
            row
        }
    }

    /// The chunk's records (the header left out), for cutting rows.
    fn spans(&self, chunk: &Chunk) -> Vec<RecordSpan> {
        let Some(boundaries) =
            chunk::fresh_boundaries(self.started.record.chunking, self.started.csv.as_ref())
        else {
            return Vec::new();
        };
        let delimiter = self.started.csv.as_ref().map(|c| c.delimiter);
        let mut spans = chunk::records(&chunk.bytes, chunk.first_row, boundaries, delimiter);
        spans.retain(|s| !s.blank);
        if chunk.index == 0
            && self.started.csv.as_ref().is_some_and(|c| c.has_header)
            && !spans.is_empty()
        {
            spans.remove(0);
        }
        spans
    }

    fn chunk(&mut self, chunk: &Chunk) -> Result<(), ImportError> {
        self.report().chunks += 1;
        self.report().rows_read += chunk.rows;
        let params = self.chunk_params(chunk);
        let called = self.started.live.plugin.parse(&params, &chunk.bytes);
        match called {
            Ok(called) => {
                self.cost(&called.cost);
                self.rejections(chunk, &called.value)?;
                self.records(&called.value.records)?;
            }
            Err(error) => self.failed_chunk(chunk, &error)?,
        }
        self.importer.vault.flush()?;
        Ok(())
    }

    /// Counts a connector call that returned.
    pub(crate) fn cost(&mut self, called: &Cost) {
        let cost: &mut ConnectorCost = &mut self.report().connector;
        cost.calls += 1;
        cost.fuel += called.fuel;
        cost.wall_ms += called.wall.as_millis() as u64;
        cost.peak_memory_bytes = cost.peak_memory_bytes.max(called.peak_memory);
        cost.output_bytes += called.output_bytes;
    }

    fn rejections(&mut self, chunk: &Chunk, out: &ParseOutput) -> Result<(), ImportError> {
        if out.rejections.is_empty() {
            return Ok(());
        }
        let spans = self.spans(chunk);
        for rejection in &out.rejections {
            let row = self.file_row(chunk, rejection.row);
            let content = match spans.binary_search_by_key(&row, |s| s.row) {
                Ok(i) => LetterContent::Raw {
                    bytes: chunk.bytes[spans[i].start..spans[i].end].to_vec(),
                    header: self.header.clone(),
                },
                Err(_) => LetterContent::None,
            };
            let code = match &rejection.field {
                Some(field) => format!("{}:{field}", codes::INVALID_FIELD),
                None => codes::INVALID_ROW.to_string(),
            };
            self.report().rows_rejected += 1;
            self.reject(
                LetterOrigin::Rejected,
                code,
                Some(row),
                rejection.field.clone(),
                rejection.reason.clone(),
                Some(content),
            )?;
        }
        Ok(())
    }

    fn failed_chunk(&mut self, chunk: &Chunk, error: &CallError) -> Result<(), ImportError> {
        tracing::warn!(
            tenant = %self.started.record.tenant,
            import = %self.started.record.id,
            chunk = chunk.index,
            %error,
            "the connector failed on a chunk; its rows are dead letters"
        );
        let whole = self.started.record.chunking == Chunking::Whole;
        let report = self.report();
        report.chunks_failed += 1;
        report.connector.failed_calls += 1;
        let reason = error.to_string();
        if whole {
            // One letter stands for all the input's rows (counted as rows).
            report.rows_rejected += chunk.rows;
            *report
                .rejected
                .entry(codes::CONNECTOR_FAILED.to_string())
                .or_default() += chunk.rows.max(1) - 1;
            return self.reject(
                LetterOrigin::ChunkFailed,
                codes::CONNECTOR_FAILED.to_string(),
                None,
                None,
                reason,
                Some(LetterContent::None),
            );
        }
        for span in self.spans(chunk) {
            self.report().rows_rejected += 1;
            self.reject(
                LetterOrigin::ChunkFailed,
                codes::CONNECTOR_FAILED.to_string(),
                Some(span.row),
                None,
                reason.clone(),
                Some(LetterContent::Raw {
                    bytes: chunk.bytes[span.start..span.end].to_vec(),
                    header: self.header.clone(),
                }),
            )?;
        }
        Ok(())
    }

    /// Counts a rejection, keeps it as an example, and writes its dead
    /// letter (`content` None: no letter).
    pub(crate) fn reject(
        &mut self,
        origin: LetterOrigin,
        code: String,
        row: Option<u32>,
        field: Option<String>,
        reason: String,
        content: Option<LetterContent>,
    ) -> Result<(), ImportError> {
        let letter_id = match content {
            Some(content) => {
                let now = self.importer.vault.now_ms();
                let id = format!("{}:{:08}", self.started.record.id, self.letters);
                self.letters += 1;
                let letter = DeadLetter {
                    id: id.clone(),
                    import: self.started.record.id.clone(),
                    origin,
                    code: code.clone(),
                    row,
                    field: field.clone(),
                    reason: reason.clone(),
                    state: LetterState::Open,
                    attempts: 0,
                    created_at_ms: now,
                    updated_at_ms: now,
                    expires_at_ms: now
                        .saturating_add(i64::from(self.importer.config.dead_letter_days) * DAY_MS),
                    page: self.page.clone(),
                    content,
                };
                self.importer
                    .put_letter(&self.started.record.tenant, &letter)?;
                self.report().dead_letters += 1;
                Some(id)
            }
            None => None,
        };
        let examples = self.importer.config.examples;
        let report = self.report();
        *report.rejected.entry(code.clone()).or_default() += 1;
        if report.examples.len() < examples {
            report.examples.push(RejectionExample {
                row,
                field,
                code,
                reason,
                dead_letter: letter_id,
            });
        }
        Ok(())
    }

    /// Converts a chunk's or a page's records and stores them in batches.
    pub(crate) fn records(&mut self, records: &[Record]) -> Result<(), ImportError> {
        let mut items = Vec::with_capacity(records.len());
        let mut incoming = Vec::with_capacity(records.len());
        for record in records {
            let report = self.report();
            report.records += 1;
            match record {
                Record::Event(_) => report.events += 1,
                Record::TraitUpdate(_) => report.trait_updates += 1,
                Record::IdentityLink(_) => report.identity_links += 1,
            }
            let item = ImportItem::from_record(record);
            match item.to_incoming(self.started.channel) {
                Ok(converted) => {
                    items.push(item);
                    incoming.push(converted);
                }
                Err(refused) => {
                    self.report().records_refused += 1;
                    self.reject(
                        LetterOrigin::Refused,
                        refused.code.to_string(),
                        None,
                        refused.field,
                        refused.reason,
                        Some(LetterContent::Item { item }),
                    )?;
                }
            }
        }
        let batch = self
            .importer
            .config
            .batch
            .clamp(1, tessera_vault::MAX_BATCH);
        for (items, incoming) in items.chunks(batch).zip(incoming.chunks(batch)) {
            self.batch(items, incoming)?;
        }
        Ok(())
    }

    fn batch(&mut self, items: &[ImportItem], incoming: &[Incoming]) -> Result<(), ImportError> {
        let tenant = self.started.record.tenant.clone();
        let vault = self.importer.vault.clone();
        let actor = self.started.actor.clone();
        let trusted = self.started.record.trusted;
        match ingest(&vault, &tenant, incoming, &actor, trusted) {
            Ok((total, outcomes)) => self.account(&total, &outcomes, items),
            Err(error) if invalid(&error) => {
                // Set the records the vault refuses aside, and store the others.
                let mut keep_items = Vec::new();
                let mut keep = Vec::new();
                for (item, one) in items.iter().zip(incoming) {
                    match vault.check_incoming(&tenant, one) {
                        Ok(()) => {
                            keep_items.push(item.clone());
                            keep.push(one.clone());
                        }
                        Err(error) if invalid(&error) => self.refused(item, &error)?,
                        Err(error) => return Err(error.into()),
                    }
                }
                if keep.is_empty() {
                    return Ok(());
                }
                match ingest(&vault, &tenant, &keep, &actor, trusted) {
                    Ok((total, outcomes)) => self.account(&total, &outcomes, &keep_items),
                    // The schema changed meanwhile: one by one.
                    Err(error) if invalid(&error) => {
                        for (item, one) in keep_items.iter().zip(&keep) {
                            match ingest(
                                &vault,
                                &tenant,
                                std::slice::from_ref(one),
                                &actor,
                                trusted,
                            ) {
                                Ok((total, outcomes)) => {
                                    self.account(&total, &outcomes, std::slice::from_ref(item))?
                                }
                                Err(error) if invalid(&error) => self.refused(item, &error)?,
                                Err(error) => return Err(error.into()),
                            }
                        }
                        Ok(())
                    }
                    Err(error) => Err(error.into()),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    fn refused(&mut self, item: &ImportItem, error: &VaultError) -> Result<(), ImportError> {
        let (code, field) = error_code(error);
        self.report().records_refused += 1;
        self.reject(
            LetterOrigin::Refused,
            code.to_string(),
            None,
            field,
            error.to_string(),
            Some(LetterContent::Item { item: item.clone() }),
        )
    }

    fn account(
        &mut self,
        total: &BatchOutcome,
        outcomes: &[IngestOutcome],
        items: &[ImportItem],
    ) -> Result<(), ImportError> {
        let report = self.report();
        report.events_inserted += total.events_inserted;
        report.duplicates += total.duplicates;
        report.expired += total.expired;
        report.identities_merged += total.merges;
        for (outcome, item) in outcomes.iter().zip(items) {
            if let Some(refused) = &outcome.refused {
                let (code, reason) = refusal(refused);
                self.report().records_refused += 1;
                // An erased person's record is counted, never kept.
                let content = (*refused != Refusal::Suppressed)
                    .then(|| LetterContent::Item { item: item.clone() });
                self.reject(
                    LetterOrigin::Refused,
                    code.to_string(),
                    None,
                    None,
                    reason,
                    content,
                )?;
                continue;
            }
            self.report().accepted += 1;
            if let Some(subject) = &outcome.subject {
                if outcome.created {
                    self.created.insert(subject.clone());
                } else if !self.created.contains(subject) {
                    self.matched.insert(subject.clone());
                }
            }
        }
        let (new, matched) = (self.created.len() as u64, self.matched.len() as u64);
        let report = self.report();
        report.subjects_new = new;
        report.subjects_matched = matched;
        Ok(())
    }
}

/// Whether the vault refused a record for what it holds (nothing was written).
/// Stores a batch as a trusted source, or not (see [`ImportRecord::trusted`]).
fn ingest(
    vault: &Vault,
    tenant: &str,
    items: &[Incoming],
    actor: &Actor,
    trusted: bool,
) -> Result<(BatchOutcome, Vec<IngestOutcome>), VaultError> {
    if trusted {
        vault.ingest_batch(tenant, items, actor)
    } else {
        vault.ingest_batch_untrusted(tenant, items, actor)
    }
}

fn invalid(error: &VaultError) -> bool {
    matches!(
        error,
        VaultError::InvalidIdentity { .. }
            | VaultError::NoIdentity
            | VaultError::UnknownTrait { .. }
            | VaultError::InvalidTrait { .. }
            | VaultError::InvalidEvent { .. }
            | VaultError::InvalidProperty { .. }
            | VaultError::UnknownPurpose { .. }
    )
}

fn error_code(error: &VaultError) -> (&'static str, Option<String>) {
    match error {
        VaultError::InvalidIdentity { kind, .. } => (codes::INVALID_IDENTITY, Some(kind.clone())),
        VaultError::NoIdentity => (codes::NO_IDENTITY, None),
        VaultError::UnknownTrait { name, .. } => (codes::UNKNOWN_TRAIT, Some(name.clone())),
        VaultError::InvalidTrait { name, .. } => (codes::INVALID_TRAIT, Some(name.clone())),
        VaultError::UnknownPurpose { .. } => (codes::UNKNOWN_PURPOSE, None),
        VaultError::InvalidProperty {
            event, property, ..
        } => (codes::INVALID_PROPERTY, Some(format!("{event}.{property}"))),
        _ => (codes::INVALID_EVENT, None),
    }
}

fn refusal(refused: &Refusal) -> (&'static str, String) {
    match refused {
        Refusal::Suppressed => (
            codes::SUPPRESSED,
            "the record names an erased person (suppressed); it was not stored".into(),
        ),
        Refusal::UntrustedMerge => (
            codes::UNTRUSTED_MERGE,
            "the record would merge two people from an untrusted source".into(),
        ),
        Refusal::SchemaChanged { name } => (
            codes::SCHEMA_CHANGED,
            format!(
                "the tenant schema changed while the record was stored; trait {name:?} no longer fits"
            ),
        ),
        Refusal::EventSchemaChanged { event, property } => (
            codes::SCHEMA_CHANGED,
            match property {
                Some(property) => format!(
                    "the event schema changed while the record was stored; {event}.{property} no \
                     longer fits"
                ),
                None => format!(
                    "the event schema changed while the record was stored; events of type \
                     {event:?} are no longer taken"
                ),
            },
        ),
    }
}

/// What the CSV chunking needs of the connector's parameters.
fn csv_shape(params: &[FieldValue]) -> Result<CsvShape, ImportError> {
    let get = |name: &str| params.iter().find(|p| p.name == name).map(|p| &p.value);
    let text = |name: &str| match get(name) {
        Some(Value::Text(t)) => Some(t.as_str()),
        _ => None,
    };
    let delimiter = match text("delimiter").unwrap_or(",") {
        "\\t" | "tab" | "\t" => b'\t',
        d if d.len() == 1 => d.as_bytes()[0],
        other => {
            return Err(ImportError::Params(format!(
                "parameter `delimiter` is {other:?}; the CSV chunking needs one byte"
            )));
        }
    };
    let encoding = text("encoding").unwrap_or("utf-8").to_ascii_lowercase();
    let has_header = !matches!(get("has_header"), Some(Value::Boolean(false)));
    Ok(CsvShape {
        delimiter,
        gb18030: matches!(encoding.as_str(), "gb18030" | "gbk"),
        has_header,
    })
}

/// A new import id: its start time first, so that ids sort by time.
fn new_id(now_ms: i64) -> Result<String, ImportError> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| ImportError::Corrupt(format!("no randomness for an import id: {e}")))?;
    Ok(format!("imp-{:013}-{}", now_ms.max(0), hex::encode(bytes)))
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ImportError> {
    serde_json::to_vec(value).map_err(|e| ImportError::Corrupt(e.to_string()))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(plain: &[u8]) -> Result<T, ImportError> {
    serde_json::from_slice(plain).map_err(|e| ImportError::Corrupt(e.to_string()))
}

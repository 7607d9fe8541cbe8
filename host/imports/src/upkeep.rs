//! What keeps imports tidy over time: imports a stopped server left
//! `running` are marked failed when it starts again, and import records
//! older than [`ImporterConfig::import_days`](crate::ImporterConfig) are
//! removed with their quality reports.

use tessera_store::JobRecord;
use tessera_vault::{Actor, AuditEntry, VaultError};

use crate::importer::{KIND_IMPORT, decode};
use crate::model::{ImportRecord, ImportStatus};
use crate::{ImportError, Importer};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Importer {
    /// Marks the tenant's `running` imports failed: call it when a server
    /// starts, before it takes imports, since an import runs only inside
    /// the process that started it. What they stored stays stored, and
    /// importing the input again adds only what is missing.
    pub fn fail_interrupted(&self, tenant: &str) -> Result<u64, ImportError> {
        let now = self.vault.now_ms();
        let mut failed = 0;
        for mut record in self.imports(tenant)? {
            if record.status != ImportStatus::Running {
                continue;
            }
            record.status = ImportStatus::Failed;
            record.finished_at_ms = Some(now);
            record.error = Some(
                "the server stopped before the import ended; what it stored stays stored, and \
                 importing the input again adds only what is missing"
                    .into(),
            );
            self.put_import(&record)?;
            self.vault.record_admin_action(
                tenant,
                AuditEntry {
                    plugin: Some(record.connector.clone()),
                    plugin_version: Some(record.connector_version.clone()),
                    detail: Some(format!("import {} interrupted: marked failed", record.id)),
                    ..AuditEntry::new(&Actor::system("import-upkeep"), "import.run")
                },
            )?;
            failed += 1;
        }
        if failed > 0 {
            self.vault.flush()?;
        }
        Ok(failed)
    }

    /// With a store other nodes share: marks failed every running import
    /// of the tenant whose node stopped renewing its liveness lease
    /// ([`ImportRecord::liveness_job`]) — the node died or was cut off for
    /// longer than the lease. Its liveness job is claimed first, so that of
    /// several nodes looking at once one marks it. Imports that run on a
    /// live node, or waiting for their data there, are left alone.
    /// Returns how many it marked.
    pub fn fail_abandoned(&self, tenant: &str) -> Result<u64, ImportError> {
        if !self.vault.is_shared() {
            return Ok(0);
        }
        let store = self.vault.store();
        let mut failed = 0;
        for mut record in self.imports(tenant)? {
            if record.status != ImportStatus::Running {
                continue;
            }
            let job = record.liveness_job();
            // A record whose job is missing (its node died before it
            // queued it) gets one here, unleased: claimed at once below.
            store
                .enqueue_job(&JobRecord {
                    id: job.clone(),
                    kind: job.clone(),
                    not_before_ms: 0,
                    payload: Vec::new(),
                })
                .map_err(VaultError::from)?;
            let claimed = store
                .claim_job(
                    &job,
                    self.vault.worker_id(),
                    self.config().lease_ms,
                    self.vault.now_ms(),
                )
                .map_err(VaultError::from)?;
            if claimed.is_none() {
                continue; // its node renews the lease: it runs
            }
            // Read again: it may have ended between the listing and the
            // claim (its node completed the job after the listing).
            record = match self.import(tenant, &record.id) {
                Ok(current) => current,
                Err(ImportError::UnknownImport { .. }) => {
                    store.complete_job(&job).map_err(VaultError::from)?;
                    continue;
                }
                Err(error) => return Err(error),
            };
            if record.status == ImportStatus::Running {
                let node = record.node.as_deref().unwrap_or("another node");
                record.status = ImportStatus::Failed;
                record.finished_at_ms = Some(self.vault.now_ms());
                record.error = Some(format!(
                    "node {node} stopped before the import ended; what it stored stays stored, \
                     and importing the input again adds only what is missing"
                ));
                self.put_import(&record)?;
                self.vault.record_admin_action(
                    tenant,
                    AuditEntry {
                        plugin: Some(record.connector.clone()),
                        plugin_version: Some(record.connector_version.clone()),
                        detail: Some(format!(
                            "import {} abandoned by node {node}: marked failed",
                            record.id
                        )),
                        ..AuditEntry::new(&Actor::system("import-upkeep"), "import.run")
                    },
                )?;
                failed += 1;
            }
            store.complete_job(&job).map_err(VaultError::from)?;
        }
        if failed > 0 {
            self.vault.flush()?;
        }
        Ok(failed)
    }

    /// Removes the tenant's import records that ended more than
    /// `import_days` ago (their dead letters expire on their own, sooner).
    pub fn purge_imports(&self, tenant: &str) -> Result<u64, ImportError> {
        let horizon = self.vault.now_ms() - i64::from(self.config().import_days) * DAY_MS;
        let mut removed = 0;
        self.vault
            .for_each_sealed_document(tenant, KIND_IMPORT, |id, plain| {
                let record: ImportRecord = decode(&plain)?;
                let ended = record.finished_at_ms.is_some_and(|at| at < horizon);
                if ended && self.vault.delete_sealed_document(tenant, KIND_IMPORT, id)? {
                    removed += 1;
                }
                Ok::<_, ImportError>(())
            })?;
        if removed > 0 {
            self.vault.record_admin_action(
                tenant,
                AuditEntry {
                    detail: Some(format!(
                        "{removed} import records older than {} days removed",
                        self.config().import_days
                    )),
                    ..AuditEntry::new(&Actor::system("import-upkeep"), "import.purge")
                },
            )?;
            self.vault.flush()?;
        }
        Ok(removed)
    }
}

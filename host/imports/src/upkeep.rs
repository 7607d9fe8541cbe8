//! What keeps imports tidy over time: imports a stopped server left
//! `running` are marked failed when it starts again, and import records
//! older than [`ImporterConfig::import_days`](crate::ImporterConfig) are
//! removed with their quality reports.

use tessera_vault::{Actor, AuditEntry};

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

//! Webhook sources: a connector with its parameters saved under a name, so
//! that a partner system can push its data to the host as it happens (each
//! HTTP post parsed by the connector and stored like a small import, with
//! its quality report and dead letters), without knowing or sending the
//! mapping.

use serde::{Deserialize, Serialize};
use tessera_runtime::api::types::FieldValue;
use tessera_vault::{Actor, AuditEntry, Channel};

use crate::importer::{decode, encode};
use crate::model::{ImportRecord, ParamValue};
use crate::{Chunking, ImportError, ImportSpec, Importer, PullSpec, StartedPull};

/// Document kind of a source (sealed; id: its name).
const KIND_SOURCE: &str = "import_source";

/// A saved webhook source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// 1 to 64 of a-z, 0-9, `-` and `_`.
    pub name: String,
    pub connector: String,
    /// The connector's parameters, as validated when the source was saved.
    pub params: Vec<(String, ParamValue)>,
    /// How each pushed body is cut: `whole` (one JSON document), `lines`
    /// (NDJSON) or `csv`.
    pub chunking: Chunking,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

/// What a source is saved with.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub connector: String,
    pub params: Vec<FieldValue>,
    pub chunking: Chunking,
    pub channel: Option<Channel>,
}

impl Source {
    /// Its parameters as a connector takes them.
    pub fn field_values(&self) -> Vec<FieldValue> {
        tessera_plugins::field_values(&self.params)
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

impl Importer {
    /// Saves (or replaces) the source `name`: the connector must be running
    /// and take the parameters. Audited.
    pub fn put_source(
        &self,
        tenant: &str,
        name: &str,
        spec: SourceSpec,
        actor: &Actor,
    ) -> Result<Source, ImportError> {
        if !valid_name(name) {
            return Err(ImportError::BadSourceName {
                name: name.to_string(),
            });
        }
        let import = ImportSpec {
            connector: spec.connector.clone(),
            params: spec.params,
            chunking: spec.chunking,
            source: format!("webhook:{name}"),
            channel: spec.channel,
        };
        let checked = self.check(tenant, &import)?;
        let source = Source {
            name: name.to_string(),
            connector: spec.connector,
            params: tessera_plugins::stored_params(&checked.params),
            chunking: spec.chunking,
            channel: spec.channel,
            updated_at_ms: self.vault.now_ms(),
            updated_by: actor.id.clone(),
        };
        self.vault
            .put_sealed_document(tenant, KIND_SOURCE, name, &encode(&source)?)?;
        self.vault.record_admin_action(
            tenant,
            AuditEntry {
                plugin: Some(source.connector.clone()),
                detail: Some(format!("webhook source {name} saved")),
                ..AuditEntry::new(actor, "import.source.put")
            },
        )?;
        self.vault.flush()?;
        Ok(source)
    }

    /// The source `name` of `tenant`.
    pub fn source(&self, tenant: &str, name: &str) -> Result<Source, ImportError> {
        let unknown = || ImportError::UnknownSource {
            name: name.to_string(),
        };
        if !valid_name(name) {
            return Err(unknown());
        }
        let plain = self
            .vault
            .sealed_document(tenant, KIND_SOURCE, name)?
            .ok_or_else(unknown)?;
        decode(&plain)
    }

    /// The tenant's sources, by name.
    pub fn sources(&self, tenant: &str) -> Result<Vec<Source>, ImportError> {
        let mut out = Vec::new();
        self.vault
            .for_each_sealed_document(tenant, KIND_SOURCE, |_, plain| {
                out.push(decode(&plain)?);
                Ok::<_, ImportError>(())
            })?;
        Ok(out)
    }

    /// Removes the source `name`; pushes to it are refused from then on.
    /// Its past imports stay. Audited.
    pub fn delete_source(
        &self,
        tenant: &str,
        name: &str,
        actor: &Actor,
    ) -> Result<(), ImportError> {
        let source = self.source(tenant, name)?;
        self.vault
            .delete_sealed_document(tenant, KIND_SOURCE, name)?;
        self.vault.record_admin_action(
            tenant,
            AuditEntry {
                plugin: Some(source.connector),
                detail: Some(format!("webhook source {name} removed")),
                ..AuditEntry::new(actor, "import.source.delete")
            },
        )?;
        self.vault.flush()?;
        Ok(())
    }

    /// Starts a pull of the source `name` through its connector, from its
    /// stored cursor (see [`Importer::start_pull`]).
    pub fn start_source_pull(
        &self,
        tenant: &str,
        name: &str,
        max_pages: Option<u32>,
        actor: &Actor,
    ) -> Result<StartedPull, ImportError> {
        let source = self.source(tenant, name)?;
        let spec = PullSpec {
            params: source.field_values(),
            connector: source.connector,
            source: name.to_string(),
            max_pages,
        };
        self.start_pull(tenant, spec, actor)
    }

    /// Forgets the stored cursor of the pull source `name` (see
    /// [`Importer::reset_pull_cursor`]).
    pub fn reset_source_cursor(
        &self,
        tenant: &str,
        name: &str,
        actor: &Actor,
    ) -> Result<bool, ImportError> {
        let source = self.source(tenant, name)?;
        self.reset_pull_cursor(tenant, &source.connector, name, actor)
    }

    /// Imports one pushed body through the source `name`: parsed by its
    /// connector with its parameters, recorded as an import of source
    /// `webhook:<name>` with its quality report and dead letters. A push of
    /// an ingest token is not `trusted` (see [`ImportRecord::trusted`]).
    pub fn push(
        &self,
        tenant: &str,
        name: &str,
        body: &[u8],
        actor: &Actor,
        trusted: bool,
    ) -> Result<ImportRecord, ImportError> {
        let source = self.source(tenant, name)?;
        let spec = ImportSpec {
            params: source.field_values(),
            connector: source.connector,
            chunking: source.chunking,
            source: format!("webhook:{name}"),
            channel: source.channel,
        };
        let started = self.start(tenant, spec, actor)?;
        let started = if trusted {
            started
        } else {
            started.untrusted()?
        };
        started.run(body, |_| {})
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn source_names_are_plain_words() {
        assert!(valid_name("shop-orders_2"));
        assert!(!valid_name(""));
        assert!(!valid_name("Shop"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}

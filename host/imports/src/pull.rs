//! Pulls: a source fetched page by page by a connector's `pull`, from the
//! cursor stored for it, each page stored the way a file's chunk is. The
//! cursor moves on only once its page is durably stored, so a page that
//! fails, or a crash, loses nothing: the next pull fetches that page again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};
use tessera_runtime::PluginKind;
use tessera_runtime::api::records::{Modes, Page};
use tessera_runtime::api::types::FieldValue;
use tessera_vault::{Actor, AuditEntry};

use crate::importer::{Importer, Progress, Run, Started, decode, encode};
use crate::model::{
    ImportRecord, LetterContent, LetterOrigin, PullCursor, PullProgress, PulledPage,
};
use crate::{Chunking, ImportError, codes};

/// Document kind of a source's cursor (sealed; id: `<installation>:<hash
/// of the source>`, so the store never shows a source's name).
const KIND_CURSOR: &str = "pull_cursor";
/// The longest next cursor a pull follows.
pub(crate) const MAX_CURSOR_BYTES: usize = 8 * 1024;
/// The longest source name.
const MAX_SOURCE_BYTES: usize = 256;

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullSpec {
    /// The installed connector plugin's name; it must declare `pull`.
    pub connector: String,
    /// Its parameters (for `rest-pull`, the `url` and how to page).
    pub params: Vec<FieldValue>,
    /// The source's name: with the connector's installation it keys the
    /// stored cursor, so the next pull of the same source continues where
    /// this one stopped.
    pub source: String,
    /// The most pages this pull fetches (none: until the source is
    /// exhausted or a page fails).
    pub max_pages: Option<u32>,
}

/// A pull that was checked and recorded as running; [`StartedPull::run`]
/// fetches its pages.
#[derive(Debug)]
pub struct StartedPull {
    started: Started,
    cursor_id: String,
    max_pages: Option<u32>,
    _running: Claim,
}

/// The sources being pulled in this process, by (tenant, installation,
/// source): two pulls of one source at once would race on its cursor.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunningPulls(Arc<Mutex<HashSet<PullKey>>>);

type PullKey = (String, String, String);

/// A source claimed by a running pull (or a reset); released when dropped.
#[derive(Debug)]
struct Claim {
    pulls: RunningPulls,
    key: PullKey,
}

impl RunningPulls {
    fn claim(&self, tenant: &str, installation: &str, source: &str) -> Option<Claim> {
        let key = (
            tenant.to_owned(),
            installation.to_owned(),
            source.to_owned(),
        );
        let mut running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        running.insert(key.clone()).then(|| Claim {
            pulls: self.clone(),
            key,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.pulls
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

impl Importer {
    /// Checks a pull and records it as running: the source is named, the
    /// connector is running and not quarantined, declares `pull`, and takes
    /// the parameters; no other pull of the source runs. The pull starts
    /// from the source's stored cursor (none: from the start).
    pub fn start_pull(
        &self,
        tenant: &str,
        spec: PullSpec,
        actor: &Actor,
    ) -> Result<StartedPull, ImportError> {
        check_source(&spec.source)?;
        let live = self.registry.callable(tenant, &spec.connector)?;
        let info = live.plugin.info();
        let refused = |why: String| ImportError::NotAPullSource {
            name: spec.connector.clone(),
            why,
        };
        if info.kind != PluginKind::Connector {
            return Err(refused(format!(
                "it is a {} plugin, not a connector",
                info.kind.as_str()
            )));
        }
        if !info.modes.is_some_and(|modes| modes.contains(Modes::PULL)) {
            return Err(refused(
                "its connector does not declare `pull` among the modes it supports".into(),
            ));
        }
        let params = live
            .plugin
            .validate(&spec.params)
            .map_err(|e| ImportError::Params(e.to_string()))?;
        let running = self
            .pulls
            .claim(tenant, &live.installation, &spec.source)
            .ok_or_else(|| ImportError::PullRunning {
                connector: spec.connector.clone(),
                source_name: spec.source.clone(),
            })?;
        let cursor_id = cursor_id(&live.installation, &spec.source);
        let from = self
            .stored_cursor(tenant, &cursor_id)?
            .and_then(|stored| stored.cursor);
        let mut record =
            self.new_record(tenant, &live, Chunking::Pages, &spec.source, &params, actor)?;
        record.pull = Some(PullProgress {
            from: from.clone(),
            cursor: from,
            pages: 0,
            exhausted: false,
            max_pages: spec.max_pages,
        });
        let liveness = self.hold_liveness(&record)?;
        self.put_import(&record)?;
        Ok(StartedPull {
            started: self.started(record, live, params, actor, liveness),
            cursor_id,
            max_pages: spec.max_pages,
            _running: running,
        })
    }

    /// Pulls a source into `tenant` through the connector `spec` names,
    /// from its stored cursor; see [`StartedPull::run`].
    pub fn pull(
        &self,
        tenant: &str,
        spec: PullSpec,
        actor: &Actor,
        progress: impl FnMut(&Progress),
    ) -> Result<ImportRecord, ImportError> {
        self.start_pull(tenant, spec, actor)?.run(progress)
    }

    /// Where the next pull of `source` through `connector` starts: none if
    /// it was never pulled (or its cursor was reset).
    pub fn pull_cursor(
        &self,
        tenant: &str,
        connector: &str,
        source: &str,
    ) -> Result<Option<PullCursor>, ImportError> {
        let installation = self.installation(tenant, connector)?;
        self.stored_cursor(tenant, &cursor_id(&installation, source))
    }

    /// Forgets the stored cursor of `source`: its next pull starts from the
    /// source's start (what is stored stays stored, and counts as
    /// duplicates when it is pulled again). Refused while the source is
    /// being pulled. Returns whether there was a cursor; audited
    /// (`import.pull.reset`).
    pub fn reset_pull_cursor(
        &self,
        tenant: &str,
        connector: &str,
        source: &str,
        actor: &Actor,
    ) -> Result<bool, ImportError> {
        let installation = self.installation(tenant, connector)?;
        let _claim = self
            .pulls
            .claim(tenant, &installation, source)
            .ok_or_else(|| ImportError::PullRunning {
                connector: connector.to_string(),
                source_name: source.to_string(),
            })?;
        let id = cursor_id(&installation, source);
        let removed = self
            .vault
            .delete_sealed_document(tenant, KIND_CURSOR, &id)?;
        // The cursor itself stays out of the audit trail, which is not
        // sealed: a cursor may carry what it points at.
        self.vault.record_admin_action(
            tenant,
            AuditEntry {
                plugin: Some(connector.to_string()),
                detail: Some(if removed {
                    format!("the pull cursor of source {source:?} was reset")
                } else {
                    format!("source {source:?} had no pull cursor to reset")
                }),
                ..AuditEntry::new(actor, "import.pull.reset")
            },
        )?;
        self.vault.flush()?;
        Ok(removed)
    }

    /// The installation of a tenant's connector, running or not.
    fn installation(&self, tenant: &str, connector: &str) -> Result<String, ImportError> {
        let entry = self.registry.entry(tenant, connector)?;
        entry
            .live
            .map(|live| live.installation)
            .or_else(|| entry.record.map(|record| record.installation))
            .ok_or_else(|| {
                ImportError::Connector(tessera_plugins::RegistryError::UnknownPlugin {
                    name: connector.to_string(),
                })
            })
    }

    fn stored_cursor(&self, tenant: &str, id: &str) -> Result<Option<PullCursor>, ImportError> {
        self.vault
            .sealed_document(tenant, KIND_CURSOR, id)?
            .map(|plain| decode(&plain))
            .transpose()
    }

    fn put_cursor(&self, tenant: &str, id: &str, cursor: &PullCursor) -> Result<(), ImportError> {
        self.vault
            .put_sealed_document(tenant, KIND_CURSOR, id, &encode(cursor)?)?;
        Ok(())
    }
}

impl StartedPull {
    /// The import's id.
    pub fn id(&self) -> &str {
        &self.started.record.id
    }

    /// The import as recorded when it started.
    pub fn record(&self) -> &ImportRecord {
        &self.started.record
    }

    /// Fetches pages from the stored cursor until the source is exhausted
    /// (a page without a next cursor) or `max_pages` were fetched. Each
    /// page's records are converted and stored in batches, and its rejected
    /// items and refused records become dead letters that name the page;
    /// then, once all of it is durably stored, the page's next cursor is
    /// stored for the source. Calls `progress` after each page. Ends with
    /// the import record, completed, and an `import.pull` audit entry.
    ///
    /// A page the connector fails on (its error or a trap) stops the pull:
    /// it is marked failed with the reason and returned as
    /// [`ImportError::Failed`]; the stored cursor stays at that page, so the
    /// next pull of the source fetches it again (events already stored are
    /// counted as duplicates, never stored twice).
    pub fn run(self, mut progress: impl FnMut(&Progress)) -> Result<ImportRecord, ImportError> {
        let StartedPull {
            mut started,
            cursor_id,
            max_pages,
            _running: running,
        } = self;
        let importer = started.importer.clone();
        let mut run = Run::new(&mut started, &importer);
        let result = run.pages(&cursor_id, max_pages, &mut progress);
        // Every page's cursor is stored: the source may be pulled again, or
        // its cursor reset, as soon as the record says the pull has ended.
        drop(running);
        started.finish(result)
    }
}

impl Run<'_> {
    fn pull_progress(&mut self) -> &mut PullProgress {
        self.started
            .record
            .pull
            .get_or_insert_with(PullProgress::default)
    }

    fn pages(
        &mut self,
        cursor_id: &str,
        max_pages: Option<u32>,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<(), ImportError> {
        // Cursors this pull fetched: one that comes back would loop forever.
        let mut fetched: HashSet<Option<String>> = HashSet::new();
        loop {
            let at = self.pull_progress().clone();
            if max_pages.is_some_and(|max| at.pages >= u64::from(max)) {
                return Ok(());
            }
            let number = at.pages + 1;
            let from = describe_cursor(at.cursor.as_deref());
            fetched.insert(at.cursor.clone());
            let called = self
                .started
                .live
                .plugin
                .pull(&self.started.params, at.cursor.as_deref());
            let page = match called {
                Ok(called) => {
                    self.cost(&called.cost);
                    self.report().bytes += called.cost.http_bytes;
                    called.value
                }
                Err(error) => {
                    let report = self.report();
                    report.chunks_failed += 1;
                    report.connector.failed_calls += 1;
                    tracing::warn!(
                        tenant = %self.started.record.tenant,
                        import = %self.started.record.id,
                        plugin = %self.started.record.connector,
                        page = number,
                        %error,
                        "a pulled page failed; the source's cursor stays at that page"
                    );
                    return Err(ImportError::PageFailed {
                        page: number,
                        from,
                        error: Box::new(error),
                    });
                }
            };
            if let Some(why) = unfollowable(&page, &fetched) {
                self.report().chunks_failed += 1;
                return Err(ImportError::BadCursor {
                    page: number,
                    from,
                    why,
                });
            }
            self.store_page(&page, number, at.cursor.clone())?;
            // The page is durable before the cursor moves past it: a crash
            // in between fetches it again, and its events are duplicates.
            self.importer.vault.flush()?;
            let pull = self.pull_progress();
            pull.pages = number;
            match page.next_cursor {
                Some(next) => pull.cursor = Some(next),
                None => pull.exhausted = true,
            }
            let (cursor, exhausted) = (pull.cursor.clone(), pull.exhausted);
            let stored = PullCursor {
                connector: self.started.record.connector.clone(),
                installation: self.started.live.installation.clone(),
                source: self.started.record.source.clone(),
                cursor,
                exhausted,
                import: self.started.record.id.clone(),
                updated_at_ms: self.importer.vault.now_ms(),
            };
            self.importer
                .put_cursor(&self.started.record.tenant, cursor_id, &stored)?;
            self.importer.put_import(&self.started.record)?;
            self.importer.vault.flush()?;
            let r = &self.started.record.report;
            progress(&Progress {
                bytes_read: r.bytes,
                chunks: r.chunks,
                rows_read: r.rows_read,
                records: r.records,
                accepted: r.accepted,
                rejected: r.rejected_total(),
            });
            if exhausted {
                return Ok(());
            }
        }
    }

    /// Stores one page: its rejected items as dead letters (with no content:
    /// the connector returns no bytes for them), its records in batches.
    fn store_page(
        &mut self,
        page: &Page,
        number: u64,
        cursor: Option<String>,
    ) -> Result<(), ImportError> {
        let report = self.report();
        report.chunks += 1;
        report.rows_read += (page.records.len() + page.rejections.len()) as u64;
        self.page = Some(PulledPage { number, cursor });
        for rejection in &page.rejections {
            let code = match &rejection.field {
                Some(field) => format!("{}:{field}", codes::INVALID_FIELD),
                None => codes::INVALID_ROW.to_string(),
            };
            self.report().rows_rejected += 1;
            self.reject(
                LetterOrigin::Rejected,
                code,
                Some(rejection.row),
                rejection.field.clone(),
                rejection.reason.clone(),
                Some(LetterContent::None),
            )?;
        }
        let stored = self.records(&page.records);
        self.page = None;
        stored
    }
}

/// Why a page's next cursor cannot be followed, if it cannot.
fn unfollowable(page: &Page, fetched: &HashSet<Option<String>>) -> Option<String> {
    let next = page.next_cursor.as_ref()?;
    if next.len() > MAX_CURSOR_BYTES {
        return Some(format!(
            "it is {} bytes long, over the {MAX_CURSOR_BYTES} bytes a cursor may have",
            next.len()
        ));
    }
    fetched.contains(&Some(next.clone())).then(|| {
        format!(
            "it is {}, which this pull fetched already; following it would never end",
            describe_cursor(Some(next))
        )
    })
}

/// A cursor as errors and audit entries name it.
fn describe_cursor(cursor: Option<&str>) -> String {
    match cursor {
        None => "the source's start".into(),
        Some(cursor) => {
            let shown: String = cursor.chars().take(120).collect();
            let more = if shown.len() < cursor.len() {
                "…"
            } else {
                ""
            };
            format!("cursor `{shown}{more}`")
        }
    }
}

fn check_source(source: &str) -> Result<(), ImportError> {
    if source.trim().is_empty() {
        return Err(ImportError::BadSource(
            "it is empty; name the source (e.g. `shop-orders`) so that the next pull continues \
             from its cursor"
                .into(),
        ));
    }
    if source.len() > MAX_SOURCE_BYTES {
        return Err(ImportError::BadSource(format!(
            "it is {} bytes long, over {MAX_SOURCE_BYTES}",
            source.len()
        )));
    }
    if source.chars().any(char::is_control) {
        return Err(ImportError::BadSource(
            "it contains control characters".into(),
        ));
    }
    Ok(())
}

/// The document id of a source's cursor: the installation, then a hash of
/// the source's name (ids are stored in the clear; names may say too much).
fn cursor_id(installation: &str, source: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"tessera pull source\0");
    hash.update(source.as_bytes());
    format!("{installation}:{}", hex::encode(&hash.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_ids_are_per_installation_and_source_and_hide_the_source() {
        let a = cursor_id("p-1", "shop-orders");
        assert!(a.starts_with("p-1:") && !a.contains("shop"));
        assert_eq!(a, cursor_id("p-1", "shop-orders"));
        assert_ne!(a, cursor_id("p-2", "shop-orders"));
        assert_ne!(a, cursor_id("p-1", "shop-refunds"));
    }

    #[test]
    fn a_cursor_that_comes_back_or_is_too_long_is_not_followed() {
        let page = |next: Option<&str>| Page {
            records: Vec::new(),
            rejections: Vec::new(),
            next_cursor: next.map(Into::into),
        };
        let fetched: HashSet<Option<String>> = [None, Some("c2".to_string())].into();
        assert_eq!(unfollowable(&page(None), &fetched), None);
        assert_eq!(unfollowable(&page(Some("c3")), &fetched), None);
        let again = unfollowable(&page(Some("c2")), &fetched).unwrap();
        assert!(again.contains("cursor `c2`"), "{again}");
        let long = "x".repeat(MAX_CURSOR_BYTES + 1);
        assert!(
            unfollowable(&page(Some(&long)), &fetched)
                .unwrap()
                .contains("bytes long")
        );
    }

    #[test]
    fn source_names_are_checked() {
        assert!(check_source("shop-orders").is_ok());
        for bad in ["", "  ", "a\nb", &"s".repeat(MAX_SOURCE_BYTES + 1)] {
            assert!(check_source(bad).is_err(), "{bad:?}");
        }
    }
}

//! Segment definitions, preview and batch recompute.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tessera_plugins::{ParamValue, Registry, field_values, stored_params};
use tessera_runtime::PluginKind;
use tessera_runtime::api::types::FieldValue;
use tessera_vault::{Actor, AuditEntry, ChangeListener, Vault};

use crate::SegmentError;
use crate::rules::{
    check_rule, cycle_through, evaluation_order, rule_grants, rule_schema, rule_text,
};

/// Document kind of a segment definition (sealed; id: its name).
const KIND_SEGMENT: &str = "segment";
/// Document kind of a segment's recorded sizes (sealed; id
/// `<segment>/<at_ms, 20 digits>`).
const KIND_SIZE: &str = "segment_size";
/// Document kind of a segment's last recompute (sealed; id: its name).
const KIND_STATUS: &str = "segment_status";

/// The most segments a tenant keeps.
pub(crate) const MAX_SEGMENTS: usize = 1_000;
/// The longest description, in bytes.
pub(crate) const MAX_DESCRIPTION: usize = 1_000;
/// The most size points kept per segment (the oldest go first).
const MAX_SIZE_POINTS: usize = 2_000;
/// The most members a preview names.
pub const MAX_SAMPLE: usize = 100;
/// People per evaluated page: a recompute or a preview builds the view of
/// this many people at a time and hands it to the plugin in one call (all
/// the calls of one walk in one instance).
pub const PAGE: usize = 1_024;

/// A range of subject ids: those after `after` (`None`: from the first) up
/// to `until` inclusive (`None`: to the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdRange<'a> {
    pub(crate) after: Option<&'a str>,
    pub(crate) until: Option<&'a str>,
}

impl IdRange<'_> {
    pub(crate) const ALL: IdRange<'static> = IdRange {
        after: None,
        until: None,
    };
}

/// A saved segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub name: String,
    /// The segment plugin that decides membership.
    pub plugin: String,
    /// Its parameters, as the plugin validated them (defaults filled in).
    pub params: Vec<(String, ParamValue)>,
    /// The processing purpose: only people who consent to it are evaluated.
    pub purpose: String,
    pub description: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub updated_by: String,
    /// The other segments its rule refers to (evaluated before it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refers_to: Vec<String>,
}

/// A spec that passed [`Segments::check`].
struct Checked {
    params: Vec<FieldValue>,
    purpose: String,
    refers: Vec<String>,
}

impl Segment {
    /// Its parameters as its plugin takes them.
    pub fn field_values(&self) -> Vec<FieldValue> {
        field_values(&self.params)
    }
}

/// What a segment is saved (or previewed) with.
#[derive(Debug, Clone, Default)]
pub struct SegmentSpec {
    pub plugin: String,
    pub params: Vec<FieldValue>,
    /// None: the first purpose the plugin works for that it was granted.
    pub purpose: Option<String>,
    pub description: String,
}

/// A segment's members counted without saving anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub purpose: String,
    /// People evaluated (those who consent to the purpose).
    pub evaluated: u64,
    pub members: u64,
    /// Up to [`MAX_SAMPLE`] members, by subject id.
    pub sample: Vec<String>,
}

/// What a batch recompute did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecomputeReport {
    pub segment: String,
    /// People evaluated (those who consent to the purpose).
    pub evaluated: u64,
    /// Members once it finished.
    pub members: u64,
    pub entered: u64,
    pub left: u64,
    /// Results not written because a streaming update of the same person
    /// came after the page was evaluated (the streamed result is newer).
    pub superseded: u64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

/// A segment's size at one time (after a recompute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizePoint {
    pub at_ms: i64,
    pub members: u64,
    pub entered: u64,
    pub left: u64,
}

/// The segments of every tenant, over one vault and one plugin registry.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Segments {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) vault: Arc<Vault>,
    pub(crate) registry: Registry,
    /// Serialises membership writes (recompute pages, streaming updates).
    apply: Mutex<()>,
    /// Streaming updates, for recomputes running at the same time.
    streamed: Mutex<Streamed>,
    pub(crate) pending: Mutex<crate::stream::Pending>,
    pub(crate) wake: Condvar,
    /// Whether streaming updates run ([`Segments::watch`]): only then are
    /// people queued for them, and a recompute leaves queued people to them.
    pub(crate) watching: AtomicBool,
    /// [`Segments::shard_lease_ms`].
    pub(crate) shard_lease_ms: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments").finish_non_exhaustive()
    }
}

/// Which people a streaming update wrote while a recompute of their
/// tenant was running, and when (a sequence number).
#[derive(Default)]
struct Streamed {
    seq: u64,
    /// Recomputes running, by tenant.
    running: HashMap<String, usize>,
    /// (tenant, subject) → the sequence number of its last streaming write.
    last: HashMap<(String, String), u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn lock_pending(inner: &Inner) -> MutexGuard<'_, crate::stream::Pending> {
    lock(&inner.pending)
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, SegmentError> {
    serde_json::to_vec(value).map_err(|e| SegmentError::Corrupt(e.to_string()))
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, SegmentError> {
    serde_json::from_slice(bytes).map_err(|e| SegmentError::Corrupt(e.to_string()))
}

impl Segments {
    pub fn new(vault: Arc<Vault>, registry: Registry) -> Self {
        Segments {
            inner: Arc::new(Inner {
                vault,
                registry,
                apply: Mutex::default(),
                streamed: Mutex::default(),
                pending: Mutex::default(),
                wake: Condvar::new(),
                watching: AtomicBool::new(false),
                shard_lease_ms: AtomicU64::new(crate::shards::DEFAULT_SHARD_LEASE_MS),
            }),
        }
    }

    /// Queues every person the vault reports as changed for a streaming
    /// update ([`Segments::process_pending`], or a [`StreamWorker`]).
    ///
    /// [`StreamWorker`]: crate::StreamWorker
    pub fn watch(&self) {
        let listener: Arc<dyn ChangeListener> =
            Arc::new(crate::stream::Listener(Arc::downgrade(&self.inner)));
        self.inner.vault.watch(listener);
        self.inner.watching.store(true, Ordering::SeqCst);
    }

    // ---- definitions ------------------------------------------------------

    /// Checks a spec against the running plugin: its kind, its parameters,
    /// its rule if it takes one, and the purpose; and that saving it as
    /// `name` (none: a preview) closes no cycle of segments referring to
    /// each other. Returns the validated parameters, the purpose and the
    /// segments it refers to.
    fn check(
        &self,
        tenant: &str,
        name: Option<&str>,
        spec: &SegmentSpec,
    ) -> Result<Checked, SegmentError> {
        let live = self.inner.registry.callable(tenant, &spec.plugin)?;
        let info = live.plugin.info();
        if info.kind != PluginKind::Segment {
            return Err(SegmentError::NotASegmentPlugin {
                plugin: spec.plugin.clone(),
                kind: info.kind.as_str().to_owned(),
            });
        }
        let declared = &info.manifest.purposes;
        let listed = || {
            if declared.is_empty() {
                "no purpose".to_owned()
            } else {
                declared.join(", ")
            }
        };
        let purpose = match &spec.purpose {
            Some(purpose) if declared.contains(purpose) => purpose.clone(),
            Some(purpose) => {
                return Err(SegmentError::PurposeNotDeclared {
                    plugin: spec.plugin.clone(),
                    purpose: purpose.clone(),
                    declared: listed(),
                });
            }
            None => declared
                .iter()
                .find(|p| live.granted.purposes.contains(p))
                .cloned()
                .ok_or_else(|| SegmentError::NoPurpose {
                    plugin: spec.plugin.clone(),
                    declared: listed(),
                })?,
        };
        if !live.granted.purposes.contains(&purpose) {
            return Err(SegmentError::PurposeNotGranted {
                plugin: spec.plugin.clone(),
                purpose,
            });
        }
        let known = self.inner.vault.settings(tenant)?.purposes;
        if !known.contains(&purpose) {
            return Err(SegmentError::UnknownPurpose {
                purpose,
                known: known.join(", "),
            });
        }
        if spec.description.len() > MAX_DESCRIPTION {
            return Err(SegmentError::DescriptionTooLong);
        }
        let others: Vec<Segment> = self
            .list(tenant)?
            .into_iter()
            .filter(|s| Some(s.name.as_str()) != name)
            .collect();
        // A rule first, so that its mistakes come back with positions.
        let mut refers = BTreeSet::new();
        if let Some(text) = rule_text(&info.manifest.parameters, &spec.params) {
            let settings = self.inner.vault.settings(tenant)?;
            let schema = rule_schema(&settings, others.iter().map(|s| s.name.clone()))
                .with_grants(rule_grants(&settings, &live.granted));
            let checked =
                check_rule(text, &schema).map_err(|problems| SegmentError::Rule { problems })?;
            refers.extend(checked.segments().iter().cloned());
        }
        // The parameters, validated, and every column they make the plugin
        // read granted: a segment is not saved to be half evaluated.
        let planned = self
            .inner
            .registry
            .plan(tenant, &spec.plugin, &spec.params)?
            .require_granted()?;
        refers.extend(planned.needs.segments.iter().cloned());
        let refers: Vec<String> = refers.into_iter().collect();
        if let Some(name) = name {
            let references = others.into_iter().map(|s| (s.name, s.refers_to)).collect();
            if let Some(path) = cycle_through(name, &refers, &references) {
                return Err(SegmentError::Cycle { path });
            }
        }
        Ok(Checked {
            params: planned.params,
            purpose,
            refers,
        })
    }

    /// Saves (or replaces) the segment `name`. Its members are computed by
    /// the next recompute ([`Segments::recompute`]); a replaced segment
    /// keeps its members until then. Audited.
    pub fn put(
        &self,
        tenant: &str,
        name: &str,
        spec: SegmentSpec,
        actor: &Actor,
    ) -> Result<Segment, SegmentError> {
        if !valid_name(name) {
            return Err(SegmentError::BadName {
                name: name.to_owned(),
            });
        }
        let Checked {
            params,
            purpose,
            refers,
        } = self.check(tenant, Some(name), &spec)?;
        let vault = &self.inner.vault;
        let existing = self.find(tenant, name)?;
        if existing.is_none() && self.list(tenant)?.len() >= MAX_SEGMENTS {
            return Err(SegmentError::TooMany);
        }
        let now = vault.now_ms();
        let segment = Segment {
            name: name.to_owned(),
            plugin: spec.plugin,
            params: stored_params(&params),
            purpose,
            description: spec.description,
            created_at_ms: existing.map_or(now, |s| s.created_at_ms),
            updated_at_ms: now,
            updated_by: actor.id.clone(),
            refers_to: refers,
        };
        vault.put_sealed_document(tenant, KIND_SEGMENT, name, &encode(&segment)?)?;
        vault.record_admin_action(
            tenant,
            AuditEntry {
                plugin: Some(segment.plugin.clone()),
                purpose: Some(segment.purpose.clone()),
                detail: Some(format!("segment {name} saved")),
                ..AuditEntry::new(actor, "segment.put")
            },
        )?;
        vault.flush()?;
        Ok(segment)
    }

    fn find(&self, tenant: &str, name: &str) -> Result<Option<Segment>, SegmentError> {
        if !valid_name(name) {
            return Ok(None);
        }
        match self
            .inner
            .vault
            .sealed_document(tenant, KIND_SEGMENT, name)?
        {
            Some(plain) => decode(&plain).map(Some),
            None => Ok(None),
        }
    }

    /// The segment `name` of `tenant`.
    pub fn get(&self, tenant: &str, name: &str) -> Result<Segment, SegmentError> {
        self.find(tenant, name)?
            .ok_or_else(|| SegmentError::Unknown {
                name: name.to_owned(),
            })
    }

    /// The tenant's segments, by name.
    pub fn list(&self, tenant: &str) -> Result<Vec<Segment>, SegmentError> {
        let mut out = Vec::new();
        self.inner
            .vault
            .for_each_sealed_document(tenant, KIND_SEGMENT, |_, plain| {
                out.push(decode(&plain)?);
                Ok::<_, SegmentError>(())
            })?;
        Ok(out)
    }

    /// Removes the segment `name`: its members leave it (their history says
    /// so), and its sizes and status go. Audited.
    pub fn delete(&self, tenant: &str, name: &str, actor: &Actor) -> Result<u64, SegmentError> {
        let segment = self.get(tenant, name)?;
        let by: Vec<String> = self
            .list(tenant)?
            .into_iter()
            .filter(|s| s.refers_to.iter().any(|r| r == name))
            .map(|s| s.name)
            .collect();
        if !by.is_empty() {
            return Err(SegmentError::InUse {
                name: name.to_owned(),
                by,
            });
        }
        let vault = &self.inner.vault;
        // The definition goes first, so that no streaming update re-adds
        // members while they are being removed.
        vault.delete_sealed_document(tenant, KIND_SEGMENT, name)?;
        let left = {
            let _apply = lock(&self.inner.apply);
            vault.clear_segment(tenant, name)?
        };
        vault.delete_sealed_document(tenant, KIND_STATUS, name)?;
        loop {
            let page =
                vault.sealed_documents_under(tenant, KIND_SIZE, &format!("{name}/"), None, 256)?;
            if page.is_empty() {
                break;
            }
            for (id, _) in page {
                vault.delete_sealed_document(tenant, KIND_SIZE, &id)?;
            }
        }
        vault.record_admin_action(
            tenant,
            AuditEntry {
                plugin: Some(segment.plugin),
                detail: Some(format!("segment {name} removed; {left} members left it")),
                ..AuditEntry::new(actor, "segment.delete")
            },
        )?;
        vault.flush()?;
        Ok(left)
    }

    // ---- evaluation -------------------------------------------------------

    /// Counts the members a spec would have, over every person, without
    /// saving anything.
    pub fn preview(&self, tenant: &str, spec: &SegmentSpec) -> Result<Preview, SegmentError> {
        let Checked {
            params, purpose, ..
        } = self.check(tenant, None, spec)?;
        let mut preview = Preview {
            purpose: purpose.clone(),
            evaluated: 0,
            members: 0,
            sample: Vec::new(),
        };
        let mut evaluation =
            self.inner
                .registry
                .evaluation(tenant, &spec.plugin, &params, &purpose)?;
        let mut after: Option<String> = None;
        loop {
            let page = evaluation.page(after.as_deref(), None, PAGE)?;
            preview.evaluated += page.memberships.len() as u64;
            for (subject, member) in page.memberships {
                if member {
                    preview.members += 1;
                    if preview.sample.len() < MAX_SAMPLE {
                        preview.sample.push(subject);
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(preview),
            }
        }
    }

    /// Re-evaluates every person for the segment `name` and records who
    /// entered and who left, and the segment's size. With a store shared by
    /// several nodes the people are split into shards that every node works
    /// on ([`Segments::recompute_sharded`]).
    pub fn recompute(&self, tenant: &str, name: &str) -> Result<RecomputeReport, SegmentError> {
        if self.inner.vault.is_shared() {
            return self.recompute_sharded(tenant, name);
        }
        let segment = self.get(tenant, name)?;
        let vault = &self.inner.vault;
        let mut report = RecomputeReport {
            segment: name.to_owned(),
            started_at_ms: vault.now_ms(),
            ..RecomputeReport::default()
        };
        self.recompute_range(tenant, &segment, IdRange::ALL, &mut report, &|| false)?;
        report.members = vault.segment_size(tenant, name)?;
        report.finished_at_ms = vault.now_ms();
        self.record_size(tenant, &report)?;
        Ok(report)
    }

    /// Re-evaluates the people of `range` for `segment`: who is a member
    /// now, who entered, who left (members in the range the evaluation did
    /// not find: their consent was revoked, they were merged into someone
    /// else), counted into `report`. `stop` is asked between pages; if it
    /// says so, the walk ends early with `Ok(false)` (what was written
    /// stays: each page is a consistent update).
    pub(crate) fn recompute_range(
        &self,
        tenant: &str,
        segment: &Segment,
        range: IdRange<'_>,
        report: &mut RecomputeReport,
        stop: &dyn Fn() -> bool,
    ) -> Result<bool, SegmentError> {
        let name = segment.name.as_str();
        let params = segment.field_values();
        let vault = &self.inner.vault;
        let dependents = self
            .list(tenant)?
            .iter()
            .any(|s| s.refers_to.iter().any(|r| r == name));
        let running = Running::start(&self.inner, tenant);
        let mut members: HashSet<String> = HashSet::new();
        // One instance of the plugin serves every page of the walk.
        let mut evaluation =
            self.inner
                .registry
                .evaluation(tenant, &segment.plugin, &params, &segment.purpose)?;
        let mut after: Option<String> = range.after.map(str::to_owned);
        loop {
            if stop() {
                return Ok(false);
            }
            let since = running.seq();
            let page = evaluation.page(after.as_deref(), range.until, PAGE)?;
            let results = page.memberships;
            report.evaluated += results.len() as u64;
            members.extend(results.iter().filter(|(_, m)| *m).map(|(s, _)| s.clone()));
            self.apply(tenant, name, results, since, dependents, report)?;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        // Its pool slot is not held through the walk over stale members.
        drop(evaluation);
        let mut after: Option<String> = range.after.map(str::to_owned);
        loop {
            if stop() {
                return Ok(false);
            }
            let mut page = vault.segment_members(tenant, name, after.as_deref(), PAGE)?;
            let read = page.len();
            if let Some(until) = range.until {
                page.retain(|m| m.subject.as_str() <= until);
            }
            // The last page of the range: short, or cut at its end.
            let done = read < PAGE || page.len() < read;
            let Some(last) = page.last() else { break };
            after = Some(last.subject.clone());
            let stale: Vec<(String, bool)> = page
                .into_iter()
                .filter(|m| !members.contains(&m.subject))
                .map(|m| (m.subject, false))
                .collect();
            self.apply(tenant, name, stale, 0, dependents, report)?;
            if done {
                break;
            }
        }
        drop(running);
        Ok(true)
    }

    /// Recomputes every segment of `tenant`; a segment that fails is logged
    /// and the others go on. Returns the reports of those that succeeded.
    pub fn recompute_all(&self, tenant: &str) -> Result<Vec<RecomputeReport>, SegmentError> {
        let mut reports = Vec::new();
        for segment in self.in_order(tenant)? {
            match self.recompute(tenant, &segment.name) {
                Ok(report) => reports.push(report),
                Err(error) => {
                    tracing::warn!(%tenant, segment = %segment.name, %error, "segment recompute failed");
                }
            }
        }
        Ok(reports)
    }

    /// Writes a recompute's results under the apply lock. A result for a
    /// person that a streaming update wrote after `since` (the sequence
    /// number from before the results were evaluated), or that waits for
    /// one, is left out: the stream's is newer.
    fn apply(
        &self,
        tenant: &str,
        segment: &str,
        mut results: Vec<(String, bool)>,
        since: u64,
        dependents: bool,
        report: &mut RecomputeReport,
    ) -> Result<(), SegmentError> {
        let _apply = lock(&self.inner.apply);
        let before = results.len();
        let waiting = crate::stream::waiting(&self.inner, tenant);
        let streamed = lock(&self.inner.streamed);
        results.retain(|(subject, _)| {
            let newer = streamed
                .last
                .get(&(tenant.to_owned(), subject.clone()))
                .is_some_and(|seq| *seq > since);
            !(newer || waiting.contains(subject))
        });
        drop(streamed);
        report.superseded += (before - results.len()) as u64;
        if results.is_empty() {
            return Ok(());
        }
        let changes = self
            .inner
            .vault
            .apply_memberships(tenant, segment, &results)?;
        report.entered += changes.entered.len() as u64;
        report.left += changes.left.len() as u64;
        if dependents {
            // Segments built on this one follow through the stream.
            crate::stream::queue(
                &self.inner,
                tenant,
                changes.entered.iter().chain(&changes.left).cloned(),
            );
        }
        Ok(())
    }

    /// A streaming update: `results` of `segment` for people who changed,
    /// written now, and remembered by any recompute running.
    pub(crate) fn apply_streamed(
        &self,
        tenant: &str,
        segment: &str,
        results: &[(String, bool)],
    ) -> Result<(u64, u64), SegmentError> {
        let _apply = lock(&self.inner.apply);
        let changes = self
            .inner
            .vault
            .apply_memberships(tenant, segment, results)?;
        let mut streamed = lock(&self.inner.streamed);
        if streamed.running.contains_key(tenant) {
            streamed.seq += 1;
            let seq = streamed.seq;
            for (subject, _) in results {
                streamed
                    .last
                    .insert((tenant.to_owned(), subject.clone()), seq);
            }
        }
        Ok((changes.entered.len() as u64, changes.left.len() as u64))
    }

    pub(crate) fn record_size(
        &self,
        tenant: &str,
        report: &RecomputeReport,
    ) -> Result<(), SegmentError> {
        let vault = &self.inner.vault;
        let name = &report.segment;
        let point = SizePoint {
            at_ms: report.finished_at_ms,
            members: report.members,
            entered: report.entered,
            left: report.left,
        };
        // Two recomputes in one millisecond keep a point each.
        let mut at = u64::try_from(point.at_ms).unwrap_or(0);
        while vault
            .sealed_document(tenant, KIND_SIZE, &format!("{name}/{at:020}"))?
            .is_some()
        {
            at += 1;
        }
        vault.put_sealed_document(
            tenant,
            KIND_SIZE,
            &format!("{name}/{at:020}"),
            &encode(&point)?,
        )?;
        vault.put_sealed_document(tenant, KIND_STATUS, name, &encode(report)?)?;
        // Keep the newest points: drop the oldest beyond the bound.
        let ids: Vec<String> = vault
            .sealed_documents_under(
                tenant,
                KIND_SIZE,
                &format!("{name}/"),
                None,
                4 * MAX_SIZE_POINTS,
            )?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for id in ids.iter().take(ids.len().saturating_sub(MAX_SIZE_POINTS)) {
            vault.delete_sealed_document(tenant, KIND_SIZE, id)?;
        }
        vault.flush()?;
        Ok(())
    }

    /// The segment's sizes over time, oldest first (one point per
    /// recompute, the newest [`MAX_SIZE_POINTS`] of them).
    pub fn sizes(&self, tenant: &str, name: &str) -> Result<Vec<SizePoint>, SegmentError> {
        self.get(tenant, name)?;
        self.inner
            .vault
            .sealed_documents_under(
                tenant,
                KIND_SIZE,
                &format!("{name}/"),
                None,
                MAX_SIZE_POINTS,
            )?
            .into_iter()
            .map(|(_, plain)| decode(&plain))
            .collect()
    }

    /// The tenant's segments, each after every segment it refers to.
    pub fn in_order(&self, tenant: &str) -> Result<Vec<Segment>, SegmentError> {
        let mut segments: BTreeMap<String, Segment> = self
            .list(tenant)?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        let references = segments
            .values()
            .map(|s| (s.name.clone(), s.refers_to.clone()))
            .collect();
        // Saving refuses cycles; should stored segments hold one anyway,
        // they are evaluated by name.
        let order =
            evaluation_order(&references).unwrap_or_else(|| segments.keys().cloned().collect());
        Ok(order
            .into_iter()
            .filter_map(|name| segments.remove(&name))
            .collect())
    }

    /// The vault the segments live in.
    pub(crate) fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    /// How many members the segment `name` has now.
    pub fn size(&self, tenant: &str, name: &str) -> Result<u64, SegmentError> {
        Ok(self.inner.vault.segment_size(tenant, name)?)
    }

    /// At most `limit` members of the segment `name`, by subject id, after
    /// the subject `after`.
    pub fn members(
        &self,
        tenant: &str,
        name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<tessera_vault::SegmentMember>, SegmentError> {
        Ok(self
            .inner
            .vault
            .segment_members(tenant, name, after, limit)?)
    }

    /// The segment's last recompute, if any.
    pub fn last_recompute(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<RecomputeReport>, SegmentError> {
        self.inner
            .vault
            .sealed_document(tenant, KIND_STATUS, name)?
            .map(|plain| decode(&plain))
            .transpose()
    }

    /// Every segment of `tenant` that each of `subjects` is in now, by
    /// subject (from the membership index).
    pub fn memberships_of(
        &self,
        tenant: &str,
        subjects: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<String>>, SegmentError> {
        let segments = self.list(tenant)?;
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for subject in subjects {
            let entry = out.entry(subject.clone()).or_default();
            for segment in &segments {
                if self.inner.vault.is_member(tenant, &segment.name, subject)? {
                    entry.insert(segment.name.clone());
                }
            }
        }
        Ok(out)
    }
}

/// A recompute of a tenant in progress: while one runs, streaming updates
/// of the tenant are remembered (see [`Segments::apply`]).
pub(crate) struct Running<'a> {
    inner: &'a Inner,
    tenant: String,
}

impl<'a> Running<'a> {
    fn start(inner: &'a Inner, tenant: &str) -> Self {
        *lock(&inner.streamed)
            .running
            .entry(tenant.to_owned())
            .or_default() += 1;
        Running {
            inner,
            tenant: tenant.to_owned(),
        }
    }

    fn seq(&self) -> u64 {
        lock(&self.inner.streamed).seq
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut streamed = lock(&self.inner.streamed);
        let done = match streamed.running.get_mut(&self.tenant) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            _ => true,
        };
        if done {
            streamed.running.remove(&self.tenant);
            let tenant = self.tenant.clone();
            streamed.last.retain(|(t, _), _| *t != tenant);
        }
    }
}

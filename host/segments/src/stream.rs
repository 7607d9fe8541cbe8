//! Streaming updates: people the vault reports as changed are queued, and
//! the queue's worker re-evaluates only them, in every segment of their
//! tenant.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_plugins::Subjects;
use tessera_vault::ChangeListener;

use crate::SegmentError;
use crate::engine::{Inner, Segments};

/// The most people queued per tenant; past it, the tenant's segments are
/// recomputed in full instead (a bulk import changes most people anyway).
pub const MAX_QUEUED: usize = 100_000;
/// People re-evaluated per plugin call.
const CHUNK: usize = 512;

/// People waiting for a streaming update, by tenant.
#[derive(Default)]
pub(crate) struct Pending {
    by_tenant: BTreeMap<String, BTreeSet<String>>,
    /// Tenants whose queue overflowed: recomputed in full.
    overflowed: BTreeSet<String>,
    stopping: bool,
}

/// Queues what the vault reports.
pub(crate) struct Listener(pub(crate) Weak<Inner>);

impl ChangeListener for Listener {
    fn subjects_changed(&self, tenant: &str, subjects: &[String]) {
        if let Some(inner) = self.0.upgrade() {
            queue(&inner, tenant, subjects.iter().cloned());
        }
    }
}

/// Queues `subjects` of `tenant` for a streaming update.
pub(crate) fn queue(inner: &Inner, tenant: &str, subjects: impl IntoIterator<Item = String>) {
    if !inner.watching.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let mut pending = crate::engine::lock_pending(inner);
    if pending.overflowed.contains(tenant) {
        return;
    }
    let queue = pending.by_tenant.entry(tenant.to_owned()).or_default();
    queue.extend(subjects);
    if queue.len() > MAX_QUEUED {
        pending.by_tenant.remove(tenant);
        pending.overflowed.insert(tenant.to_owned());
    }
    drop(pending);
    inner.wake.notify_one();
}

/// The people of `tenant` waiting for a streaming update.
pub(crate) fn waiting(inner: &Inner, tenant: &str) -> HashSet<String> {
    crate::engine::lock_pending(inner)
        .by_tenant
        .get(tenant)
        .map(|queue| queue.iter().cloned().collect())
        .unwrap_or_default()
}

/// What one round of streaming updates did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReport {
    /// People re-evaluated (per segment, each person counts once).
    pub people: u64,
    pub entered: u64,
    pub left: u64,
    /// Tenants recomputed in full because their queue overflowed.
    pub full_recomputes: u64,
    /// Segment evaluations that failed (logged; the scheduled recompute of
    /// every segment catches their people up).
    pub failures: u64,
}

impl Segments {
    /// Runs the streaming updates queued so far, on this thread: each
    /// queued person is re-evaluated in every segment of their tenant. A
    /// person a segment's plugin no longer sees (consent revoked, erased,
    /// merged into someone else) leaves it.
    pub fn process_pending(&self) -> Result<StreamReport, SegmentError> {
        let (queued, overflowed) = {
            let mut pending = crate::engine::lock_pending(&self.inner);
            (
                std::mem::take(&mut pending.by_tenant),
                std::mem::take(&mut pending.overflowed),
            )
        };
        let mut report = StreamReport::default();
        for tenant in overflowed {
            self.recompute_all(&tenant)?;
            report.full_recomputes += 1;
        }
        for (tenant, subjects) in queued {
            let subjects: Vec<String> = subjects.into_iter().collect();
            report.people += subjects.len() as u64;
            for chunk in subjects.chunks(CHUNK) {
                self.update_people(&tenant, chunk, &mut report)?;
            }
        }
        Ok(report)
    }

    /// Re-evaluates `subjects` in every segment of `tenant`.
    fn update_people(
        &self,
        tenant: &str,
        subjects: &[String],
        report: &mut StreamReport,
    ) -> Result<(), SegmentError> {
        // Each segment after those it refers to, so that a change flows
        // through every segment built on another in one round.
        for segment in self.in_order(tenant)? {
            let evaluated = self.inner.registry.evaluate(
                tenant,
                &segment.plugin,
                &segment.field_values(),
                &segment.purpose,
                Subjects::Ids(subjects),
            );
            let rows = match evaluated {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(
                        %tenant,
                        segment = %segment.name,
                        %error,
                        "streaming segment update failed; the next recompute catches up"
                    );
                    report.failures += 1;
                    continue;
                }
            };
            // Every person asked about gets a result: one without a row
            // (no consent, erased, merged away) is not a member. A row of a
            // person asked about by a merged subject's id counts too.
            let mut results: BTreeMap<&str, bool> =
                subjects.iter().map(|s| (s.as_str(), false)).collect();
            for (subject, member) in &rows {
                results.insert(subject, *member);
            }
            let results: Vec<(String, bool)> = results
                .into_iter()
                .map(|(s, m)| (s.to_owned(), m))
                .collect();
            let (entered, left) = self.apply_streamed(tenant, &segment.name, &results)?;
            report.entered += entered;
            report.left += left;
        }
        Ok(())
    }

    /// Starts a thread that runs streaming updates as people change (it
    /// waits at most `idle` between rounds). Stops when dropped.
    pub fn spawn_stream_worker(&self, idle: Duration) -> std::io::Result<StreamWorker> {
        let segments = self.clone();
        let handle = std::thread::Builder::new()
            .name("segments-stream".into())
            .spawn(move || segments.stream_loop(idle))?;
        Ok(StreamWorker {
            inner: Arc::downgrade(&self.inner),
            handle: Some(handle),
        })
    }

    fn stream_loop(&self, idle: Duration) {
        loop {
            {
                let pending = crate::engine::lock_pending(&self.inner);
                let (pending, _) = self
                    .inner
                    .wake
                    .wait_timeout_while(pending, idle, |p| {
                        !p.stopping && p.by_tenant.is_empty() && p.overflowed.is_empty()
                    })
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if pending.stopping {
                    return;
                }
            }
            if let Err(error) = self.process_pending() {
                tracing::warn!(%error, "streaming segment updates failed");
                std::thread::sleep(idle);
            }
        }
    }
}

/// The streaming worker's thread; stops (after its current round) when
/// dropped.
#[derive(Debug)]
pub struct StreamWorker {
    inner: Weak<Inner>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for StreamWorker {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            crate::engine::lock_pending(&inner).stopping = true;
            inner.wake.notify_all();
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

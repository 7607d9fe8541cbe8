//! A recompute split across the nodes that share a store.
//!
//! Subject ids are random hex, so the first hex digit splits the people
//! into [`SHARDS`] shards of about equal size. A recompute of a segment is
//! a *run*: one store job per shard ([`SHARD_JOB`]), claimed by whichever
//! node is free (the node that started the run works on them too, and so
//! does every node's shard worker, [`Segments::work_shards`]), each under a
//! short lease renewed while the shard runs. A node that dies holding a
//! shard stops renewing; the lease runs out and another node does the shard
//! again from its start (a shard's writes are idempotent: a person's
//! membership is set, not toggled). Each finished shard leaves its counts
//! in a document; whoever writes the last one queues the run's finish job
//! ([`FINISH_JOB`]), which sums them into the segment's `last_recompute`
//! and size history once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_store::JobRecord;
use tessera_vault::{HeldLease, VaultError};

use crate::SegmentError;
use crate::engine::{IdRange, RecomputeReport, Segments, decode, encode};

/// Store job kind of one shard of a recompute run.
pub const SHARD_JOB: &str = "segments.recompute-shard";
/// Store job kind of a run's finish (every shard done).
pub const FINISH_JOB: &str = "segments.recompute-finish";
/// Shards per run: one per first hex digit of the subject id.
pub const SHARDS: u8 = 16;
/// The default lease on a shard: renewed every third of it while the shard
/// runs, so it bounds how long a dead node's shard waits to be taken over.
pub const DEFAULT_SHARD_LEASE_MS: u64 = 30_000;

/// Document kind of a finished shard's counts (sealed; id
/// `<segment>/<run>/<shard, 2 digits>`), removed when the run finishes.
const KIND_SHARD: &str = "segment_shard";
/// Document kind of how a run ended (sealed; id `<segment>/<run>`): read
/// and removed by the node waiting for the run, or after [`KEEP_RUN_MS`]
/// if that node died.
const KIND_RUN: &str = "segment_run";
/// How long a run's outcome waits for the node that started it.
const KEEP_RUN_MS: i64 = 24 * 60 * 60 * 1_000;

const DIGITS: [&str; 16] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f",
];

/// The subject ids of shard `shard`: those after its digit and up to the
/// next digit (so shard 3 holds the ids that begin with `3`); the first
/// and last shards are open-ended, so every id belongs to exactly one.
pub(crate) fn shard_range(shard: u8) -> IdRange<'static> {
    let k = usize::from(shard.min(SHARDS - 1));
    IdRange {
        after: (k > 0).then(|| DIGITS[k]),
        until: DIGITS.get(k + 1).copied(),
    }
}

/// What a shard or finish job is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Task {
    tenant: String,
    segment: String,
    run: String,
    /// The shard (unused by the finish job).
    shard: u8,
    started_at_ms: i64,
}

impl Task {
    fn shard_job(&self) -> String {
        format!(
            "{SHARD_JOB}/{}/{}/{}/{:02}",
            self.tenant, self.segment, self.run, self.shard
        )
    }

    fn finish_job(&self) -> String {
        format!("{FINISH_JOB}/{}/{}/{}", self.tenant, self.segment, self.run)
    }

    fn shard_prefix(&self) -> String {
        format!("{}/{}/", self.segment, self.run)
    }

    fn outcome_id(&self) -> String {
        format!("{}/{}", self.segment, self.run)
    }
}

/// One finished shard's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ShardDone {
    node: String,
    evaluated: u64,
    entered: u64,
    left: u64,
    superseded: u64,
    /// Why the shard could not be evaluated (the plugin failed, was
    /// quarantined or removed); the run then fails as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// How a segment's last run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RunOutcome {
    run: String,
    /// `None`: it completed (its report is the segment's `last_recompute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What [`Segments::work_shards`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardWork {
    /// Shards evaluated to their end.
    pub shards: u64,
    /// Shards given up because another node took their lease over.
    pub lost: u64,
    /// Runs finished.
    pub finished: u64,
}

fn store_error(error: tessera_store::StoreError) -> SegmentError {
    SegmentError::Vault(VaultError::from(error))
}

impl Segments {
    /// The lease on a shard, in milliseconds (default
    /// [`DEFAULT_SHARD_LEASE_MS`]).
    pub fn shard_lease_ms(&self) -> u64 {
        self.inner.shard_lease_ms.load(Ordering::Relaxed)
    }

    /// Sets [`Segments::shard_lease_ms`] (at least 300 ms).
    pub fn set_shard_lease_ms(&self, lease_ms: u64) {
        self.inner
            .shard_lease_ms
            .store(lease_ms.max(300), Ordering::Relaxed);
    }

    /// Recomputes `name` as a run of [`SHARDS`] shard jobs, working on
    /// shards (of any run) until this run has finished, and returns its
    /// report. Other nodes' shard workers take shards meanwhile; if this
    /// node dies, they finish the run without it.
    pub fn recompute_sharded(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<RecomputeReport, SegmentError> {
        let run = self.start_recompute(tenant, name)?;
        let vault = &self.inner.vault;
        let outcome_id = format!("{name}/{run}");
        let mut idle = Duration::from_millis(20);
        loop {
            let work = self.work_shards()?;
            if let Some(outcome) = vault
                .sealed_document(tenant, KIND_RUN, &outcome_id)?
                .map(|plain| decode::<RunOutcome>(&plain))
                .transpose()?
            {
                vault.delete_sealed_document(tenant, KIND_RUN, &outcome_id)?;
                return match outcome.error {
                    None => Ok(self.last_recompute(tenant, name)?.unwrap_or_default()),
                    Some(reason) => Err(SegmentError::RunFailed {
                        segment: name.to_owned(),
                        reason,
                    }),
                };
            }
            if work == ShardWork::default() {
                // Other nodes hold the remaining shards: wait for them (or
                // for their leases to run out).
                std::thread::sleep(idle);
                idle = (idle * 2).min(Duration::from_millis(250));
            } else {
                idle = Duration::from_millis(20);
            }
        }
    }

    /// Queues the shard jobs of a new run of segment `name`, for any node's
    /// [`Segments::work_shards`] to take; returns the run's id.
    pub fn start_recompute(&self, tenant: &str, name: &str) -> Result<String, SegmentError> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        self.get(tenant, name)?;
        let vault = &self.inner.vault;
        let now = vault.now_ms();
        let run = format!(
            "{now:013}-{}-{}",
            vault.worker_id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        for shard in 0..SHARDS {
            let task = Task {
                tenant: tenant.to_owned(),
                segment: name.to_owned(),
                run: run.clone(),
                shard,
                started_at_ms: now,
            };
            vault
                .store()
                .enqueue_job(&JobRecord {
                    id: task.shard_job(),
                    kind: SHARD_JOB.to_owned(),
                    not_before_ms: now,
                    payload: encode(&task)?,
                })
                .map_err(store_error)?;
        }
        tracing::info!(%tenant, segment = %name, %run, shards = SHARDS, "segment recompute queued");
        Ok(run)
    }

    /// Runs queued shard and finish jobs of every run until none is left
    /// to claim (the others are held by other nodes, or done).
    pub fn work_shards(&self) -> Result<ShardWork, SegmentError> {
        let mut work = ShardWork::default();
        let lease_ms = self.shard_lease_ms();
        loop {
            let vault = &self.inner.vault;
            if let Some((job, _held)) = vault.claim_held(FINISH_JOB, lease_ms)? {
                self.finish(&decode(&job.payload)?)?;
                vault.store().complete_job(&job.id).map_err(store_error)?;
                work.finished += 1;
                continue;
            }
            let Some((job, held)) = vault.claim_held(SHARD_JOB, lease_ms)? else {
                return Ok(work);
            };
            let task: Task = decode(&job.payload)?;
            if self.shard(&task, &held)? {
                vault.store().complete_job(&job.id).map_err(store_error)?;
                work.shards += 1;
            } else {
                work.lost += 1;
            }
        }
    }

    /// Evaluates one shard and records its counts; `false` if its lease
    /// was lost on the way (another node does it).
    fn shard(&self, task: &Task, held: &HeldLease) -> Result<bool, SegmentError> {
        let vault = &self.inner.vault;
        let tenant = task.tenant.as_str();
        let mut done = ShardDone {
            node: vault.worker_id().to_owned(),
            ..ShardDone::default()
        };
        match self.get(tenant, &task.segment) {
            Ok(segment) => {
                let mut report = RecomputeReport::default();
                let range = shard_range(task.shard);
                match self.recompute_range(tenant, &segment, range, &mut report, &|| held.lost()) {
                    Ok(true) => {}
                    Ok(false) => return Ok(false),
                    // The plugin failed: the run fails, with the reason.
                    Err(SegmentError::Registry(error)) => done.error = Some(error.to_string()),
                    Err(error) => return Err(error),
                }
                done.evaluated = report.evaluated;
                done.entered = report.entered;
                done.left = report.left;
                done.superseded = report.superseded;
            }
            Err(SegmentError::Unknown { .. }) => {
                done.error = Some(format!("segment {:?} was removed", task.segment));
            }
            Err(error) => return Err(error),
        }
        if held.lost() {
            return Ok(false);
        }
        vault.put_sealed_document(
            tenant,
            KIND_SHARD,
            &format!("{}{:02}", task.shard_prefix(), task.shard),
            &encode(&done)?,
        )?;
        let finished = vault
            .sealed_documents_under(
                tenant,
                KIND_SHARD,
                &task.shard_prefix(),
                None,
                usize::from(SHARDS) + 1,
            )?
            .len();
        if finished >= usize::from(SHARDS) {
            // Idempotent: two nodes finishing the last shards together
            // queue one finish job.
            vault
                .store()
                .enqueue_job(&JobRecord {
                    id: task.finish_job(),
                    kind: FINISH_JOB.to_owned(),
                    not_before_ms: vault.now_ms(),
                    payload: encode(task)?,
                })
                .map_err(store_error)?;
        }
        Ok(true)
    }

    /// Sums a run's shards into the segment's `last_recompute` and size
    /// history (once, however often it is called), and removes them.
    fn finish(&self, task: &Task) -> Result<(), SegmentError> {
        let vault = &self.inner.vault;
        let tenant = task.tenant.as_str();
        let name = task.segment.as_str();
        let already = vault
            .sealed_document(tenant, KIND_RUN, &task.outcome_id())?
            .is_some();
        let shards = vault.sealed_documents_under(
            tenant,
            KIND_SHARD,
            &task.shard_prefix(),
            None,
            usize::from(SHARDS) + 1,
        )?;
        if !already {
            let mut report = RecomputeReport {
                segment: name.to_owned(),
                started_at_ms: task.started_at_ms,
                ..RecomputeReport::default()
            };
            let mut error = None;
            for (_, plain) in &shards {
                let done: ShardDone = decode(plain)?;
                report.evaluated += done.evaluated;
                report.entered += done.entered;
                report.left += done.left;
                report.superseded += done.superseded;
                error = error.or(done.error);
            }
            if error.is_none() {
                report.members = vault.segment_size(tenant, name)?;
                report.finished_at_ms = vault.now_ms();
                self.record_size(tenant, &report)?;
                tracing::info!(
                    %tenant, segment = %name, run = %task.run,
                    evaluated = report.evaluated, members = report.members,
                    "segment recompute finished"
                );
            } else {
                tracing::warn!(
                    %tenant, segment = %name, run = %task.run, error = ?error,
                    "segment recompute failed"
                );
            }
            vault.put_sealed_document(
                tenant,
                KIND_RUN,
                &task.outcome_id(),
                &encode(&RunOutcome {
                    run: task.run.clone(),
                    error,
                })?,
            )?;
        }
        for (id, _) in shards {
            vault.delete_sealed_document(tenant, KIND_SHARD, &id)?;
        }
        // Outcomes no node came back for (it died waiting): run ids begin
        // with their start time.
        let horizon = format!("{:013}", vault.now_ms() - KEEP_RUN_MS);
        for (id, _) in
            vault.sealed_documents_under(tenant, KIND_RUN, &format!("{name}/"), None, 64)?
        {
            if id[name.len() + 1..] < *horizon {
                vault.delete_sealed_document(tenant, KIND_RUN, &id)?;
            }
        }
        vault.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shards_cover_every_id_exactly_once() {
        let ids = [
            "", "0", "00", "0f", "1", "10", "1ff", "9", "9z", "a", "a0", "ef", "f", "f0", "ff",
            "g", "zzz", "~",
        ];
        for id in ids {
            let holding: Vec<u8> = (0..SHARDS)
                .filter(|&k| {
                    let range = shard_range(k);
                    range.after.is_none_or(|a| id > a) && range.until.is_none_or(|u| id <= u)
                })
                .collect();
            assert_eq!(holding.len(), 1, "{id:?} is in shards {holding:?}");
        }
        let id = "3b9f00aa";
        let range = shard_range(3);
        assert!(range.after.is_some_and(|a| id > a) && range.until.is_some_and(|u| id <= u));
    }
}

//! The server's background work, every `[jobs] interval_s`: due deletion
//! purges (so that erasure deadlines are met while the server runs),
//! imports whose data never came, expired dead letters and import records,
//! the campaigns' queued feedback given to their strategies to learn from,
//! and, less often, the retention sweep (`[jobs] retention_sweep_s`) and a
//! recompute of every segment (`[jobs] segments_recompute_s`: conditions on
//! time, such as "in the last 30 days", change with the clock alone). A
//! round that fails is logged and tried again on the next tick; none of
//! these jobs loses anything by running late or twice.
//!
//! Nodes that share a store ([`Vault::is_shared`](tessera_vault::Vault::is_shared))
//! take turns: each periodic piece of work is a job in the store that is
//! claimed and never completed, so that its lease, as long as the period,
//! lets one node run it per period ([`cluster_turn`]); a node that dies
//! holding it only delays the next run until the lease ends. Deletion
//! purges are leased job by job; what each node keeps in memory (imports
//! waiting for their data) is looked after by every node. Work a node
//! holds while it runs (a recompute's shards, taken by every node's shard
//! worker; an import) has a short lease (`[jobs] lease_ms`) that the node
//! renews, so that another node takes it over, or marks it failed, soon
//! after the node dies.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tessera_api::AppState;

/// `[jobs]`: how often the background work runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Seconds between rounds of purges and import upkeep; 0 turns the
    /// background work off (then run `tessera jobs run` with the server
    /// stopped).
    pub interval_s: u64,
    /// Seconds between retention sweeps (they read every person).
    pub retention_sweep_s: u64,
    /// Seconds between recomputes of every segment (they evaluate every
    /// consenting person; streaming updates keep segments current between
    /// them as people change).
    pub segments_recompute_s: u64,
    /// With a store other nodes share: the lease, in milliseconds, a node
    /// holds on work it runs (a segment recompute's shard, an import),
    /// renewed every third of it while the work goes on. A node that dies
    /// loses its work to the others when the lease runs out. Also
    /// TESSERA_JOBS_LEASE_MS.
    pub lease_ms: u64,
}

/// How often a node sharing its store looks for recompute shards to take.
const SHARD_POLL: Duration = Duration::from_millis(500);

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            interval_s: 60,
            retention_sweep_s: 6 * 60 * 60,
            segments_recompute_s: 60 * 60,
            lease_ms: tessera_segments::DEFAULT_SHARD_LEASE_MS,
        }
    }
}

/// Ends what a stopped server left running, for every tenant: its imports
/// are marked failed (importing again adds only what is missing), so are
/// its segment exports and campaign sends, and its delivery runs turn
/// their actions into dead letters to replay. Run before the server takes
/// requests.
///
/// Not with a shared store: work marked running there may be running on
/// another node right now (docs/operations.md, "Not built yet").
pub fn fail_interrupted_work(state: &AppState) -> anyhow::Result<()> {
    if state.vault.is_shared() {
        return Ok(());
    }
    let Some(desk) = &state.imports else {
        return Ok(());
    };
    let deliverer = state
        .plugins
        .clone()
        .map(|registry| tessera_imports::Deliverer::new(registry, state.vault.clone()));
    for tenant in state.vault.tenant_ids()? {
        let failed = desk.importer().fail_interrupted(&tenant)?;
        if failed > 0 {
            println!(
                "tessera serve: {failed} imports of tenant {tenant} were cut off by the last \
                 stop; marked failed (import them again: nothing is stored twice)"
            );
        }
        if let Some(segments) = &state.segments {
            let failed = segments.fail_interrupted_exports(&tenant)?;
            if failed > 0 {
                println!(
                    "tessera serve: {failed} segment exports of tenant {tenant} were cut off by \
                     the last stop; marked failed (export again)"
                );
            }
        }
        if let Some(strategies) = &state.strategies {
            let failed = strategies.fail_interrupted_sends(&tenant)?;
            if failed > 0 {
                println!(
                    "tessera serve: {failed} campaign sends of tenant {tenant} were cut off by \
                     the last stop; marked failed (send again: a frequency cap keeps those \
                     already served from a second action)"
                );
            }
        }
        if let Some(deliverer) = &deliverer {
            let ended = deliverer.fail_interrupted(&tenant)?;
            if ended > 0 {
                println!(
                    "tessera serve: {ended} delivery runs of tenant {tenant} were cut off by \
                     the last stop; their actions are dead letters to replay"
                );
            }
        }
    }
    Ok(())
}

/// Erases again the people whose subject keys were erased after the
/// records' backup that the database was restored from (the key store's
/// erasure ledger: [`Vault::reerase_restored`](tessera_vault::Vault::reerase_restored)),
/// before the server takes requests; one line says whom.
pub fn reerase_restored(state: &AppState) -> anyhow::Result<()> {
    let report = state.vault.reerase_restored().map_err(|error| {
        anyhow::anyhow!("cannot check the erasure ledger against the records: {error}")
    })?;
    if report.ledger_went_back {
        eprintln!(
            "tessera serve: warning: the key store's erasure ledger is behind the records (was \
             the key database restored from a backup?); all of it was checked again"
        );
    }
    if !report.reerased.is_empty() {
        let tenants: std::collections::BTreeSet<&str> =
            report.reerased.iter().map(|r| r.tenant.as_str()).collect();
        println!(
            "tessera serve: {} people erased again: their keys were erased after the backup \
             the records were restored from (tenants {}; see the audit trail, subject.reerase)",
            report.reerased.len(),
            tenants.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// The same as [`reerase_restored`], in a background round: logged.
fn reerase_in_round(state: &AppState) {
    match state.vault.reerase_restored() {
        Ok(report) if !report.reerased.is_empty() || report.ledger_went_back => tracing::warn!(
            reerased = report.reerased.len(),
            ledger_went_back = report.ledger_went_back,
            "people erased again after a restore of the records (audit: subject.reerase)"
        ),
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "checking the erasure ledger failed"),
    }
}

/// Runs the background work until the task is dropped with the runtime.
pub async fn run(state: AppState, settings: JobSettings) {
    if settings.interval_s == 0 {
        tracing::warn!("background jobs are off ([jobs] interval_s = 0)");
        return;
    }
    if state.vault.is_shared()
        && let Some(segments) = state.segments.clone()
    {
        tokio::spawn(work_shards(segments));
    }
    let mut ticks = tokio::time::interval(Duration::from_secs(settings.interval_s));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: purges that fell due while the server
    // was stopped run now.
    let mut last_sweep: Option<Instant> = None;
    let mut last_recompute: Option<Instant> = None;
    loop {
        ticks.tick().await;
        let state = state.clone();
        let turns = if state.vault.is_shared() {
            None
        } else {
            Some((
                due(&mut last_sweep, settings.retention_sweep_s),
                due(&mut last_recompute, settings.segments_recompute_s),
            ))
        };
        let settings = settings.clone();
        let round = tokio::task::spawn_blocking(move || {
            // Shared: the store says whose turn it is (it blocks: here).
            let (whole, sweep, recompute) = match turns {
                Some((sweep, recompute)) => (true, sweep, recompute),
                None => (
                    cluster_turn(&state, ROUND_JOB, settings.interval_s),
                    cluster_turn(&state, SWEEP_JOB, settings.retention_sweep_s),
                    cluster_turn(&state, RECOMPUTE_JOB, settings.segments_recompute_s),
                ),
            };
            round(&state, whole, sweep, recompute)
        })
        .await;
        if let Err(error) = round {
            tracing::error!(%error, "a background round panicked");
        }
    }
}

/// With a store other nodes share: takes the shards of segment recomputes
/// (started by any node) as they are queued, every [`SHARD_POLL`], until the
/// task is dropped with the runtime.
async fn work_shards(segments: tessera_segments::Segments) {
    let mut ticks = tokio::time::interval(SHARD_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let segments = segments.clone();
        match tokio::task::spawn_blocking(move || segments.work_shards()).await {
            Ok(Ok(work)) if work != tessera_segments::ShardWork::default() => tracing::info!(
                shards = work.shards,
                lost = work.lost,
                finished = work.finished,
                "recompute shards worked on"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "working on recompute shards failed"),
            Err(error) => tracing::error!(%error, "working on recompute shards panicked"),
        }
    }
}

/// The store jobs whose leases take turns between nodes sharing a store:
/// the store-wide part of each round, the retention sweep, the recompute.
pub const ROUND_JOB: &str = "upkeep.round";
pub const SWEEP_JOB: &str = "upkeep.retention-sweep";
pub const RECOMPUTE_JOB: &str = "upkeep.segments-recompute";

/// Whether this node runs the cluster's work `kind` (one of the jobs
/// above) now: the job is queued once (idempotent) and never completed,
/// and whoever claims it holds it for nine tenths of `period_s`, so of the
/// nodes sharing the store one runs it per period. A store error is logged and
/// counts as "not this node's turn".
fn cluster_turn(state: &AppState, kind: &str, period_s: u64) -> bool {
    let vault = &state.vault;
    let Some(node) = vault.node_id() else {
        return true;
    };
    let store = vault.store();
    let job = tessera_store::JobRecord {
        id: kind.to_owned(),
        kind: kind.to_owned(),
        not_before_ms: 0,
        payload: Vec::new(),
    };
    // A tenth shorter than the period, so that the holder's own next tick
    // (a period after its claim, give or take) finds the lease over.
    let lease_ms = period_s.max(1).saturating_mul(900);
    let claimed = store
        .enqueue_job(&job)
        .and_then(|_| store.claim_job(kind, node, lease_ms, vault.now_ms()));
    match claimed {
        Ok(claimed) => claimed.is_some(),
        Err(error) => {
            tracing::error!(%kind, %error, "cannot claim a turn of the cluster's background work");
            false
        }
    }
}

/// Whether a job run every `every_s` seconds is due (the first time, it
/// is); if so, its time is now.
fn due(last: &mut Option<Instant>, every_s: u64) -> bool {
    let due = last.is_none_or(|at| at.elapsed() >= Duration::from_secs(every_s.max(1)));
    if due {
        *last = Some(Instant::now());
    }
    due
}

/// One round over every tenant; each job's failure is logged, and the
/// others still run. Without `whole` only what this node alone can do
/// runs (purges, leased one by one, and its own waiting imports): another
/// node has the turn for the rest.
fn round(state: &AppState, whole: bool, sweep: bool, recompute: bool) {
    let vault = &state.vault;
    match vault.run_jobs("serve") {
        Ok(jobs) if !jobs.purges_completed.is_empty() => tracing::info!(
            purges = jobs.purges_completed.len(),
            "deletion purges completed"
        ),
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "deletion purges failed"),
    }
    if whole {
        reerase_in_round(state);
    }
    let tenants = match vault.tenant_ids() {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::error!(%error, "cannot list the tenants for background jobs");
            return;
        }
    };
    if let Some(desk) = &state.imports {
        let wait = Duration::from_millis(state.config.limits.import_wait_ms);
        let expired = desk.expire_waiting(wait);
        if expired > 0 {
            tracing::info!(expired, "imports whose data never came marked failed");
        }
        for tenant in tenants.iter().filter(|_| whole) {
            match desk.importer().fail_abandoned(tenant) {
                Ok(0) => {}
                Ok(failed) => tracing::warn!(
                    %tenant, failed,
                    "imports whose node stopped marked failed (import them again: nothing is \
                     stored twice)"
                ),
                Err(error) => {
                    tracing::error!(%tenant, %error, "checking for abandoned imports failed")
                }
            }
            match desk.importer().purge_dead_letters(tenant) {
                Ok(purge) if purge.expired + purge.erased > 0 => tracing::info!(
                    %tenant, expired = purge.expired, erased = purge.erased,
                    "dead letters purged"
                ),
                Ok(_) => {}
                Err(error) => tracing::error!(%tenant, %error, "the dead-letter purge failed"),
            }
            match desk.importer().purge_imports(tenant) {
                Ok(0) => {}
                Ok(removed) => tracing::info!(%tenant, removed, "expired import records removed"),
                Err(error) => tracing::error!(%tenant, %error, "the import-record purge failed"),
            }
        }
    }
    if sweep {
        for tenant in &tenants {
            match vault.sweep_retention(tenant) {
                Ok(report) => tracing::info!(
                    %tenant,
                    scanned = report.subjects_scanned,
                    events_removed = report.events_removed,
                    expired_subjects = report.subjects_expired.len(),
                    "retention sweep"
                ),
                Err(error) => tracing::error!(%tenant, %error, "the retention sweep failed"),
            }
        }
    }
    if let (true, Some(segments)) = (recompute, &state.segments) {
        for tenant in &tenants {
            match segments.recompute_all(tenant) {
                Ok(reports) if !reports.is_empty() => tracing::info!(
                    %tenant,
                    segments = reports.len(),
                    entered = reports.iter().map(|r| r.entered).sum::<u64>(),
                    left = reports.iter().map(|r| r.left).sum::<u64>(),
                    "segments recomputed"
                ),
                Ok(_) => {}
                Err(error) => tracing::error!(%tenant, %error, "the segment recompute failed"),
            }
        }
    }
    if let (true, Some(strategies)) = (whole, &state.strategies) {
        for tenant in &tenants {
            match strategies.learn(tenant) {
                Ok(report) if report.observed + report.without_consent > 0 => tracing::info!(
                    %tenant,
                    observed = report.observed,
                    without_consent = report.without_consent,
                    failed_calls = report.failed_calls,
                    "strategies learned from feedback"
                ),
                Ok(_) => {}
                Err(error) => tracing::error!(%tenant, %error, "learning from feedback failed"),
            }
        }
    }
    if let Err(error) = vault.flush() {
        tracing::error!(%error, "flushing after background jobs failed");
    }
}

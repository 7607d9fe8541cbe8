//! Deliveries: a tenant's actions sent out through a destination connector,
//! what may succeed later retried with exponential backoff and full jitter,
//! a report per delivery run, and a sealed dead letter for every action that
//! was not delivered. An action counts as delivered only when its connector
//! reported it delivered, and a replayed letter is never delivered again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_plugins::{Live, Registry, RegistryError, stored_params};
use tessera_runtime::api::records::{Action, DeliveryReport, Modes};
use tessera_runtime::api::types::FieldValue;
use tessera_runtime::{CallError, Called, PluginError, PluginKind};
use tessera_vault::{Actor, AuditEntry, Vault, VaultError};

use crate::model::{ConnectorCost, LetterState, ParamValue, PurgeReport};

/// Document kind of a delivery run (sealed; id: the run id).
const KIND_RUN: &str = "delivery";
/// Document kind of a delivery dead letter (sealed; id: `<run>:<sequence>`).
const KIND_LETTER: &str = "delivery_letter";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How failed deliveries are retried: exponential backoff with full jitter.
/// The wait before retry *n* is drawn uniformly between zero and
/// `min(max_delay, base_delay × 2^(n−1))`, so that many runs failing at once
/// do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per action, the first one included (1: never retry).
    pub max_attempts: u32,
    /// The longest wait before the first retry; each later one doubles.
    pub base_delay: Duration,
    /// No wait is longer than this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The longest wait before retry `retry` (1: the retry after the first
    /// attempt).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(63);
        let factor = 1u64 << doublings;
        let nanos = (self.base_delay.as_nanos()).saturating_mul(u128::from(factor));
        let capped = nanos.min(self.max_delay.as_nanos());
        Duration::from_nanos(u64::try_from(capped).unwrap_or(u64::MAX))
    }

    /// The wait before retry `retry` for a random `fraction` in [0, 1]: that
    /// fraction of [`RetryPolicy::ceiling`] (full jitter).
    pub fn delay(&self, retry: u32, fraction: f64) -> Duration {
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.ceiling(retry).mul_f64(fraction)
    }
}

/// Waits between attempts. The default sleeps the calling thread; tests
/// record the waits instead.
pub trait Sleeper: Send + Sync + fmt::Debug {
    fn sleep(&self, delay: Duration);
}

/// Sleeps the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&self, delay: Duration) {
        std::thread::sleep(delay);
    }
}

/// A uniform random fraction in [0, 1), from the operating system.
pub fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::getrandom(&mut bytes) {
        // 53 random bits: every value is an exact f64 below 1.
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        // Without randomness, the longest wait: slower, never in step.
        Err(_) => 1.0,
    }
}

/// How the deliverer batches, retries and keeps.
#[derive(Debug, Clone)]
pub struct DelivererConfig {
    pub retry: RetryPolicy,
    /// Actions per `deliver` call (the connector may send them in several
    /// requests). Each call gets the plugin's time limit for that many
    /// actions, which all its requests share.
    pub batch: usize,
    /// Days a dead letter is kept before the purge job removes it.
    pub dead_letter_days: u32,
}

impl Default for DelivererConfig {
    fn default() -> Self {
        DelivererConfig {
            retry: RetryPolicy::default(),
            batch: 500,
            dead_letter_days: 30,
        }
    }
}

/// What to deliver through which connector.
#[derive(Debug, Clone)]
pub struct DeliverySpec {
    /// The installed destination connector's name.
    pub connector: String,
    /// Its parameters (e.g. the webhook's `url`).
    pub params: Vec<FieldValue>,
    /// What the actions come from, for the run record (a campaign, a
    /// strategy's decisions), as the caller names it.
    pub source: String,
}

/// Why a delivery, or an operation on its dead letters, failed. Each
/// variant says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The connector is not installed, not running, or quarantined.
    #[error(transparent)]
    Connector(#[from] RegistryError),
    #[error("plugin `{name}` is a {kind} plugin; deliveries need a connector that delivers")]
    NotAConnector { name: String, kind: String },
    #[error("connector `{name}` does not deliver actions; it serves {serves}")]
    NotADestination { name: String, serves: String },
    /// The connector refused the parameters (schema or its `validate`).
    #[error("the delivery's parameters are refused: {0}")]
    Params(String),
    /// An action cannot be delivered as given; nothing was sent.
    #[error("action {index} is refused: {reason}")]
    InvalidAction { index: usize, reason: String },
    #[error("tenant has no delivery run `{id}`")]
    UnknownRun { id: String },
    #[error("delivery run `{run}` has no dead letter `{id}`")]
    UnknownDeadLetter { run: String, id: String },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("a stored delivery document does not decode: {0}")]
    Corrupt(String),
    /// The run stopped (the store failed); its record says `failed` with
    /// the reason. What the connector reported delivered stays delivered.
    #[error("delivery run {run} failed: {error}")]
    Failed {
        run: String,
        error: Box<DeliveryError>,
    },
}

/// Where a delivery run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Running,
    /// Every action was delivered or set aside as a dead letter.
    Completed,
    /// Stopped by the store failing; `error` says why.
    Failed,
}

/// One delivery run of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRun {
    /// `dlv-<start ms>-<random>`.
    pub id: String,
    pub tenant: String,
    pub connector: String,
    pub connector_version: String,
    pub source: String,
    pub status: DeliveryStatus,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub started_by: Actor,
    /// The connector's resolved parameters.
    pub params: Vec<(String, ParamValue)>,
    pub report: DeliveryRunReport,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The actions while the run is `running`: stored (sealed) before the
    /// first is sent, so that a run a crash cut off turns them into dead
    /// letters ([`Deliverer::fail_interrupted`]) instead of losing them.
    /// Empty once the run ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<DeliveryAction>,
}

/// What a delivery run did, from what its connector reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRunReport {
    /// Actions given to the run.
    pub actions: u64,
    /// Actions the connector reported delivered, on any attempt.
    pub delivered: u64,
    /// Rounds of attempts made (1 when nothing needed a retry).
    pub attempts: u32,
    /// Actions sent again after a retryable failure, once per retry.
    pub retried: u64,
    /// Actions still failing, retryably, after the last attempt.
    pub failed_retryable: u64,
    /// Actions that failed for good (not retryable) on some attempt.
    pub failed_permanent: u64,
    /// Dead letters written: one per action not delivered.
    pub dead_letters: u64,
    /// What the connector's calls cost; `failed_calls` counts calls that
    /// failed as a whole (the connector's error, a trap, a timeout).
    pub connector: ConnectorCost,
}

/// An action as a dead letter keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAction {
    pub delivery_id: String,
    pub recipient: String,
    pub action: String,
    pub attributes: Vec<(String, ParamValue)>,
}

impl From<&Action> for DeliveryAction {
    fn from(a: &Action) -> Self {
        DeliveryAction {
            delivery_id: a.delivery_id.clone(),
            recipient: a.recipient.clone(),
            action: a.action.clone(),
            attributes: tessera_plugins::stored_params(&a.attributes),
        }
    }
}

impl From<&DeliveryAction> for Action {
    fn from(a: &DeliveryAction) -> Self {
        Action {
            delivery_id: a.delivery_id.clone(),
            recipient: a.recipient.clone(),
            action: a.action.clone(),
            attributes: tessera_plugins::field_values(&a.attributes),
        }
    }
}

/// An action that was not delivered, with everything needed to deliver it
/// again (sealed in the store: the recipient and attributes are personal
/// data). Its state goes from `open` to `replayed`, never back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryLetter {
    /// `<run>:<sequence>`.
    pub id: String,
    pub run: String,
    pub connector: String,
    pub connector_version: String,
    /// The connector's parameters, as the run used them.
    pub params: Vec<(String, ParamValue)>,
    pub action: DeliveryAction,
    /// Why the last attempt failed.
    pub reason: String,
    /// Whether that failure was retryable (the receiver may recover on its
    /// own); if not, something must change before a replay can succeed.
    pub retryable: bool,
    /// `open`, or `replayed` once a replay delivered it (never `fixed`).
    pub state: LetterState,
    /// Attempts made, by the run and by replays together.
    pub attempts: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A delivery dead letter without its content (no recipient, attributes or
/// parameters), as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryLetterSummary {
    pub id: String,
    pub run: String,
    pub connector: String,
    pub delivery_id: String,
    pub action: String,
    pub reason: String,
    pub retryable: bool,
    pub state: LetterState,
    pub attempts: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: i64,
}

impl From<&DeliveryLetter> for DeliveryLetterSummary {
    fn from(l: &DeliveryLetter) -> Self {
        DeliveryLetterSummary {
            id: l.id.clone(),
            run: l.run.clone(),
            connector: l.connector.clone(),
            delivery_id: l.action.delivery_id.clone(),
            action: l.action.action.clone(),
            reason: l.reason.clone(),
            retryable: l.retryable,
            state: l.state,
            attempts: l.attempts,
            created_at_ms: l.created_at_ms,
            updated_at_ms: l.updated_at_ms,
            expires_at_ms: l.expires_at_ms,
        }
    }
}

/// What a replay of delivery dead letters did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReplayReport {
    /// Letters delivered now (marked replayed).
    pub delivered: u64,
    /// Letters replayed before: nothing was sent for them.
    pub already_replayed: u64,
    /// Letters that failed again (their reason is updated).
    pub failed: u64,
    /// Ids asked for that are not letters of the run.
    pub unknown: u64,
    /// Rounds of attempts, and actions sent again after a retryable failure.
    pub attempts: u32,
    pub retried: u64,
    pub connector: ConnectorCost,
}

/// A delivery run [`Deliverer::begin`] stored, `running`, whose actions
/// [`Deliverer::finish`] sends.
#[derive(Debug)]
pub struct StartedDelivery {
    live: Live,
    params: Vec<FieldValue>,
    actions: Vec<Action>,
    run: DeliveryRun,
}

impl StartedDelivery {
    /// The run as stored (its actions are in the store, not here).
    pub fn run(&self) -> &DeliveryRun {
        &self.run
    }
}

/// Delivers tenants' actions through their destination connectors. Cheap
/// to clone. Its calls block (plugins, backoff waits, the store): run them
/// on a blocking pool.
#[derive(Debug, Clone)]
pub struct Deliverer {
    registry: Registry,
    vault: Arc<Vault>,
    config: DelivererConfig,
    sleeper: Arc<dyn Sleeper>,
    /// The jitter's random fraction in [0, 1].
    jitter: fn() -> f64,
    /// Serialises changes to dead letters (replay, purge), so that two
    /// replays never deliver one letter twice.
    letters: Arc<Mutex<()>>,
}

/// What became of one action over its attempts.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    Delivered,
    Failed { reason: String, retryable: bool },
}

/// The fates of a list of actions, in order, with what it took.
#[derive(Debug, Default)]
struct Outcome {
    fates: Vec<Fate>,
    /// Attempts per action.
    tries: Vec<u32>,
    rounds: u32,
    retried: u64,
    cost: ConnectorCost,
}

impl Deliverer {
    pub fn new(registry: Registry, vault: Arc<Vault>) -> Self {
        Deliverer {
            registry,
            vault,
            config: DelivererConfig::default(),
            sleeper: Arc::new(ThreadSleeper),
            jitter: random_fraction,
            letters: Arc::default(),
        }
    }

    pub fn with_config(mut self, config: DelivererConfig) -> Self {
        self.config = config;
        self
    }

    /// Waits between attempts with `sleeper` instead of sleeping the thread.
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// Draws the jitter's fraction (in [0, 1]) from `jitter` instead of the
    /// operating system's randomness.
    pub fn with_jitter(mut self, jitter: fn() -> f64) -> Self {
        self.jitter = jitter;
        self
    }

    pub fn config(&self) -> &DelivererConfig {
        &self.config
    }

    /// Delivers `actions` for `tenant` through the connector `spec` names:
    /// [`Deliverer::begin`], then [`Deliverer::finish`], on the calling
    /// thread.
    pub fn deliver(
        &self,
        tenant: &str,
        spec: DeliverySpec,
        actions: Vec<Action>,
        actor: &Actor,
    ) -> Result<DeliveryRun, DeliveryError> {
        let started = self.begin(tenant, spec, actions, actor)?;
        self.finish(started)
    }

    /// Checks a delivery and stores its run, `running`, with its actions,
    /// before anything is sent; [`Deliverer::finish`] sends them.
    ///
    /// The connector must be running and not quarantined, serve `deliver`,
    /// and take the parameters; every action needs a delivery id of its
    /// own. An error here leaves nothing stored.
    pub fn begin(
        &self,
        tenant: &str,
        spec: DeliverySpec,
        actions: Vec<Action>,
        actor: &Actor,
    ) -> Result<StartedDelivery, DeliveryError> {
        let live = self.destination(tenant, &spec.connector)?;
        check_actions(&actions)?;
        let params = live
            .plugin
            .validate(&spec.params)
            .map_err(|e| DeliveryError::Params(e.to_string()))?;
        let now = self.vault.now_ms();
        let mut run = DeliveryRun {
            id: new_id(now)?,
            tenant: tenant.to_string(),
            connector: spec.connector.clone(),
            connector_version: live.plugin.info().manifest.version.clone(),
            source: spec.source,
            status: DeliveryStatus::Running,
            started_at_ms: now,
            finished_at_ms: None,
            started_by: actor.clone(),
            params: stored_params(&params),
            report: DeliveryRunReport {
                actions: actions.len() as u64,
                ..DeliveryRunReport::default()
            },
            error: None,
            pending: actions.iter().map(DeliveryAction::from).collect(),
        };
        self.put_run(&run)?;
        // Durable before anything is sent: a crash leaves the run with its
        // actions, for `fail_interrupted`.
        self.vault.flush()?;
        run.pending.clear();
        Ok(StartedDelivery {
            live,
            params,
            actions,
            run,
        })
    }

    /// Sends the actions of a run [`Deliverer::begin`] stored. Each action
    /// the connector reports failed with a retryable failure, or whose call
    /// failed as a whole (the connector's `unavailable` or `internal`
    /// error, a trap, a timeout), is tried again after a backoff wait, up to
    /// the policy's attempts. What is still not delivered then, and every
    /// failure that is not retryable, becomes a dead letter. Ends with the
    /// run record, completed, and a `delivery.run` audit entry.
    pub fn finish(&self, started: StartedDelivery) -> Result<DeliveryRun, DeliveryError> {
        let StartedDelivery {
            live,
            params,
            actions,
            mut run,
        } = started;
        let outcome = self.attempt(&live, &params, &actions);
        let report = &mut run.report;
        report.attempts = outcome.rounds;
        report.retried = outcome.retried;
        report.connector = outcome.cost.clone();
        let kept = self.keep_failures(&mut run, &actions, &outcome);
        run.finished_at_ms = Some(self.vault.now_ms());
        match &kept {
            Ok(()) => run.status = DeliveryStatus::Completed,
            Err(error) => {
                run.status = DeliveryStatus::Failed;
                run.error = Some(error.to_string());
            }
        }
        let tenant = run.tenant.clone();
        let saved = self.put_run(&run).and_then(|()| {
            self.vault.record_admin_action(
                &tenant,
                AuditEntry {
                    plugin: Some(run.connector.clone()),
                    plugin_version: Some(run.connector_version.clone()),
                    batch: Some(run.report.actions),
                    detail: Some(run_detail(&run)),
                    ..AuditEntry::new(&run.started_by, "delivery.run")
                },
            )?;
            self.vault.flush()?;
            Ok(())
        });
        match (kept, saved) {
            (Ok(()), Ok(())) => Ok(run),
            (Err(error), _) | (Ok(()), Err(error)) => Err(DeliveryError::Failed {
                run: run.id.clone(),
                error: Box::new(error),
            }),
        }
    }

    /// One delivery run of a tenant.
    pub fn run(&self, tenant: &str, id: &str) -> Result<DeliveryRun, DeliveryError> {
        let plain = self
            .vault
            .sealed_document(tenant, KIND_RUN, id)?
            .ok_or_else(|| DeliveryError::UnknownRun { id: id.to_string() })?;
        decode(&plain)
    }

    /// The tenant's delivery runs, oldest first.
    pub fn runs(&self, tenant: &str) -> Result<Vec<DeliveryRun>, DeliveryError> {
        let mut out = Vec::new();
        self.vault
            .for_each_sealed_document(tenant, KIND_RUN, |_, plain| {
                out.push(decode(&plain)?);
                Ok::<_, DeliveryError>(())
            })?;
        Ok(out)
    }

    /// At most `limit` dead letters of a run, by id, after the letter
    /// `after`: delivery id, action, reason and state, never the recipient,
    /// attributes or parameters.
    pub fn dead_letters(
        &self,
        tenant: &str,
        run: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryLetterSummary>, DeliveryError> {
        self.run(tenant, run)?;
        self.vault
            .sealed_documents_under(tenant, KIND_LETTER, &format!("{run}:"), after, limit)?
            .into_iter()
            .map(|(_, plain)| {
                Ok(DeliveryLetterSummary::from(&decode::<DeliveryLetter>(
                    &plain,
                )?))
            })
            .collect()
    }

    /// One dead letter with its content (the recipient and attributes are
    /// personal data, for operators); the read is audited.
    pub fn dead_letter(
        &self,
        tenant: &str,
        run: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<DeliveryLetter, DeliveryError> {
        let letter = self.letter(tenant, run, id)?;
        self.vault.record_admin_action(
            tenant,
            AuditEntry {
                plugin: Some(letter.connector.clone()),
                detail: Some(format!("dead letter {id} of delivery run {run}")),
                ..AuditEntry::new(actor, "delivery.dead_letter.read")
            },
        )?;
        Ok(letter)
    }

    /// Delivers dead letters of a run again, through the connector and with
    /// the parameters each letter keeps, retrying as a run does. A letter
    /// delivered is marked replayed, and replaying it again sends nothing;
    /// one that fails again stays open with the new reason.
    pub fn replay(
        &self,
        tenant: &str,
        run: &str,
        ids: &[String],
        actor: &Actor,
    ) -> Result<DeliveryReplayReport, DeliveryError> {
        let _guard = self.letters.lock().unwrap_or_else(PoisonError::into_inner);
        self.run(tenant, run)?;
        let mut report = DeliveryReplayReport::default();
        // Letters by connector and parameters, so each group is one delivery.
        let mut groups: BTreeMap<(String, String), Vec<DeliveryLetter>> = BTreeMap::new();
        let mut seen = HashSet::new();
        for id in ids {
            if !seen.insert(id.as_str()) {
                continue;
            }
            match self.letter(tenant, run, id) {
                Ok(letter) if letter.state == LetterState::Replayed => report.already_replayed += 1,
                Ok(letter) => groups
                    .entry((letter.connector.clone(), encode_text(&letter.params)?))
                    .or_default()
                    .push(letter),
                Err(DeliveryError::UnknownDeadLetter { .. }) => report.unknown += 1,
                Err(error) => return Err(error),
            }
        }
        // Check every group's connector and parameters before anything is sent.
        let mut ready = Vec::new();
        for ((connector, _), letters) in groups {
            let live = self.destination(tenant, &connector)?;
            let given = tessera_plugins::field_values(&letters[0].params);
            let params = live
                .plugin
                .validate(&given)
                .map_err(|e| DeliveryError::Params(e.to_string()))?;
            ready.push((live, params, letters));
        }
        for (live, params, letters) in ready {
            let actions: Vec<Action> = letters.iter().map(|l| Action::from(&l.action)).collect();
            let outcome = self.attempt(&live, &params, &actions);
            report.attempts = report.attempts.max(outcome.rounds);
            report.retried += outcome.retried;
            add_cost(&mut report.connector, &outcome.cost);
            let now = self.vault.now_ms();
            for (i, mut letter) in letters.into_iter().enumerate() {
                letter.attempts = letter.attempts.saturating_add(outcome.tries[i]);
                letter.updated_at_ms = now;
                match &outcome.fates[i] {
                    Fate::Delivered => {
                        report.delivered += 1;
                        letter.state = LetterState::Replayed;
                    }
                    Fate::Failed { reason, retryable } => {
                        report.failed += 1;
                        letter.reason = reason.clone();
                        letter.retryable = *retryable;
                    }
                }
                self.put_letter(tenant, &letter)?;
            }
        }
        self.vault.record_admin_action(
            tenant,
            AuditEntry {
                detail: Some(format!(
                    "delivery run {run}: {} dead letters delivered, {} already replayed, {} \
                     failed again, {} unknown",
                    report.delivered, report.already_replayed, report.failed, report.unknown
                )),
                ..AuditEntry::new(actor, "delivery.replay")
            },
        )?;
        self.vault.flush()?;
        Ok(report)
    }

    /// The purge job: removes the tenant's delivery dead letters past their
    /// expiry (open or replayed). `erased` stays 0: a letter's recipient is
    /// the destination's key for a person, not an identity the vault can
    /// match against erasures, so letters leave by expiry.
    pub fn purge_dead_letters(&self, tenant: &str) -> Result<PurgeReport, DeliveryError> {
        let _guard = self.letters.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.vault.now_ms();
        let mut report = PurgeReport::default();
        self.vault
            .for_each_sealed_document(tenant, KIND_LETTER, |id, plain| {
                let letter: DeliveryLetter = decode(&plain)?;
                if letter.expires_at_ms <= now
                    && self.vault.delete_sealed_document(tenant, KIND_LETTER, id)?
                {
                    report.expired += 1;
                }
                Ok::<_, DeliveryError>(())
            })?;
        if report.expired > 0 {
            self.vault.record_admin_action(
                tenant,
                AuditEntry {
                    detail: Some(format!(
                        "{} expired delivery dead letters purged",
                        report.expired
                    )),
                    ..AuditEntry::new(
                        &Actor::system("dead-letter-purge"),
                        "delivery.dead_letter.purge",
                    )
                },
            )?;
            self.vault.flush()?;
        }
        Ok(report)
    }

    /// Ends the tenant's runs a stopped process left `running`: each of
    /// their actions becomes an open, retryable dead letter (whether it
    /// reached the receiver is unknown; a replay sends it again with its
    /// delivery id, by which receivers drop duplicates), and the run is
    /// marked failed. Call it when a server starts, before it delivers.
    /// Returns how many runs it ended.
    pub fn fail_interrupted(&self, tenant: &str) -> Result<u64, DeliveryError> {
        let mut ended = 0;
        for mut run in self.runs(tenant)? {
            if run.status != DeliveryStatus::Running {
                continue;
            }
            let now = self.vault.now_ms();
            let reason = "the process stopped before this action's delivery was settled; it may \
                          or may not have reached the receiver: replay it (the receiver drops \
                          duplicates by delivery id)";
            for (i, action) in std::mem::take(&mut run.pending).into_iter().enumerate() {
                let letter = DeliveryLetter {
                    id: format!("{}:{i:08}", run.id),
                    run: run.id.clone(),
                    connector: run.connector.clone(),
                    connector_version: run.connector_version.clone(),
                    params: run.params.clone(),
                    action,
                    reason: reason.to_string(),
                    retryable: true,
                    state: LetterState::Open,
                    attempts: 0,
                    created_at_ms: now,
                    updated_at_ms: now,
                    expires_at_ms: now
                        .saturating_add(i64::from(self.config.dead_letter_days) * DAY_MS),
                };
                self.put_letter(tenant, &letter)?;
                run.report.dead_letters += 1;
                run.report.failed_retryable += 1;
            }
            run.status = DeliveryStatus::Failed;
            run.finished_at_ms = Some(now);
            run.error = Some(
                "the process stopped during the run: its actions are dead letters to replay".into(),
            );
            self.put_run(&run)?;
            self.vault.record_admin_action(
                tenant,
                AuditEntry {
                    plugin: Some(run.connector.clone()),
                    plugin_version: Some(run.connector_version.clone()),
                    batch: Some(run.report.actions),
                    detail: Some(run_detail(&run)),
                    ..AuditEntry::new(&Actor::system("delivery-upkeep"), "delivery.run")
                },
            )?;
            ended += 1;
        }
        if ended > 0 {
            self.vault.flush()?;
        }
        Ok(ended)
    }

    /// The running connector `name`, checked to deliver.
    /// The running destination connector `name` of `tenant`: a connector,
    /// not quarantined, that serves `deliver`.
    pub fn destination(&self, tenant: &str, name: &str) -> Result<Live, DeliveryError> {
        let live = self.registry.callable(tenant, name)?;
        let info = live.plugin.info();
        if info.kind != PluginKind::Connector {
            return Err(DeliveryError::NotAConnector {
                name: name.to_string(),
                kind: info.kind.as_str().to_string(),
            });
        }
        let modes = info.modes.unwrap_or(Modes::empty());
        if !modes.contains(Modes::DELIVER) {
            return Err(DeliveryError::NotADestination {
                name: name.to_string(),
                serves: serves(modes),
            });
        }
        Ok(live)
    }

    /// Tries every action, retrying the retryable failures after backoff
    /// waits, until each is delivered, failed for good, or out of attempts.
    fn attempt(&self, live: &Live, params: &[FieldValue], actions: &[Action]) -> Outcome {
        let policy = self.config.retry;
        let batch = self.config.batch.max(1);
        let mut outcome = Outcome {
            fates: vec![
                Fate::Failed {
                    reason: "not attempted".into(),
                    retryable: true,
                };
                actions.len()
            ],
            tries: vec![0; actions.len()],
            ..Outcome::default()
        };
        let mut pending: Vec<usize> = (0..actions.len()).collect();
        for attempt in 1..=policy.max_attempts.max(1) {
            if pending.is_empty() {
                break;
            }
            if attempt > 1 {
                self.sleeper
                    .sleep(policy.delay(attempt - 1, (self.jitter)()));
                outcome.retried += pending.len() as u64;
            }
            outcome.rounds = attempt;
            let mut again = Vec::new();
            for call in pending.chunks(batch) {
                let sent: Vec<Action> = call.iter().map(|&i| actions[i].clone()).collect();
                let fates = self.call(live, params, &sent, &mut outcome.cost);
                for (&i, fate) in call.iter().zip(fates) {
                    outcome.tries[i] += 1;
                    if matches!(
                        fate,
                        Fate::Failed {
                            retryable: true,
                            ..
                        }
                    ) {
                        again.push(i);
                    }
                    outcome.fates[i] = fate;
                }
            }
            pending = again;
        }
        outcome
    }

    /// One `deliver` call: each action's fate, from the connector's report,
    /// or the call's failure for all of them.
    fn call(
        &self,
        live: &Live,
        params: &[FieldValue],
        actions: &[Action],
        cost: &mut ConnectorCost,
    ) -> Vec<Fate> {
        let label = live.plugin.info().label();
        let failed = |reason: String, retryable: bool| {
            vec![Fate::Failed { reason, retryable }; actions.len()]
        };
        let called = match live.plugin.deliver(params, actions) {
            Ok(called) => called,
            Err(error) => {
                cost.failed_calls += 1;
                tracing::warn!(
                    tenant = %live.tenant,
                    plugin = %label,
                    actions = actions.len(),
                    %error,
                    "a delivery call failed"
                );
                return failed(error.to_string(), call_retryable(&error));
            }
        };
        add_called(cost, &called);
        match fates(actions, &called.value) {
            Ok(fates) => fates,
            Err(detail) => {
                cost.failed_calls += 1;
                tracing::warn!(tenant = %live.tenant, plugin = %label, %detail, "invalid delivery report");
                // Not retried: the same connector would likely report the
                // same way. The actions are kept as dead letters; a receiver
                // that got some of them drops them by delivery id on replay.
                failed(
                    format!("plugin {label} returned an invalid delivery report: {detail}"),
                    false,
                )
            }
        }
    }

    /// Writes a dead letter for every action the outcome did not deliver,
    /// and counts the outcome into the run's report.
    fn keep_failures(
        &self,
        run: &mut DeliveryRun,
        actions: &[Action],
        outcome: &Outcome,
    ) -> Result<(), DeliveryError> {
        // The counts go on even when the store fails half way, so that the
        // run's record says how many letters were kept and how many not.
        let mut report = run.report.clone();
        let mut result = Ok(());
        let now = self.vault.now_ms();
        for (i, fate) in outcome.fates.iter().enumerate() {
            let (reason, retryable) = match fate {
                Fate::Delivered => {
                    report.delivered += 1;
                    continue;
                }
                Fate::Failed { reason, retryable } => (reason, *retryable),
            };
            if retryable {
                report.failed_retryable += 1;
            } else {
                report.failed_permanent += 1;
            }
            if result.is_err() {
                continue;
            }
            let letter = DeliveryLetter {
                id: format!("{}:{:08}", run.id, report.dead_letters),
                run: run.id.clone(),
                connector: run.connector.clone(),
                connector_version: run.connector_version.clone(),
                params: run.params.clone(),
                action: DeliveryAction::from(&actions[i]),
                reason: reason.clone(),
                retryable,
                state: LetterState::Open,
                attempts: outcome.tries[i],
                created_at_ms: now,
                updated_at_ms: now,
                expires_at_ms: now.saturating_add(i64::from(self.config.dead_letter_days) * DAY_MS),
            };
            match self.put_letter(&run.tenant, &letter) {
                Ok(()) => report.dead_letters += 1,
                Err(error) => result = Err(error),
            }
        }
        run.report = report;
        result
    }

    fn letter(&self, tenant: &str, run: &str, id: &str) -> Result<DeliveryLetter, DeliveryError> {
        let unknown = || DeliveryError::UnknownDeadLetter {
            run: run.to_string(),
            id: id.to_string(),
        };
        if !id.starts_with(&format!("{run}:")) {
            return Err(unknown());
        }
        let plain = self
            .vault
            .sealed_document(tenant, KIND_LETTER, id)?
            .ok_or_else(unknown)?;
        decode(&plain)
    }

    fn put_letter(&self, tenant: &str, letter: &DeliveryLetter) -> Result<(), DeliveryError> {
        self.vault
            .put_sealed_document(tenant, KIND_LETTER, &letter.id, &encode(letter)?)?;
        Ok(())
    }

    fn put_run(&self, run: &DeliveryRun) -> Result<(), DeliveryError> {
        self.vault
            .put_sealed_document(&run.tenant, KIND_RUN, &run.id, &encode(run)?)?;
        Ok(())
    }
}

/// Every action needs a delivery id of its own: the report names failures
/// by it, and receivers drop duplicates by it.
fn check_actions(actions: &[Action]) -> Result<(), DeliveryError> {
    let mut ids = HashSet::with_capacity(actions.len());
    for (index, action) in actions.iter().enumerate() {
        let reason = if action.delivery_id.trim().is_empty() {
            "its delivery id is empty".to_string()
        } else if !ids.insert(action.delivery_id.as_str()) {
            format!(
                "its delivery id {:?} is also another action's",
                action.delivery_id
            )
        } else {
            continue;
        };
        return Err(DeliveryError::InvalidAction { index, reason });
    }
    Ok(())
}

/// Each action's fate from a connector's report, or why the report cannot
/// be trusted: a failure naming an action not sent, an action failed twice,
/// or a delivered count that is not the rest.
fn fates(actions: &[Action], report: &DeliveryReport) -> Result<Vec<Fate>, String> {
    let sent: HashMap<&str, usize> = actions
        .iter()
        .enumerate()
        .map(|(i, a)| (a.delivery_id.as_str(), i))
        .collect();
    let mut fates = vec![Fate::Delivered; actions.len()];
    let mut failed = HashSet::new();
    for failure in &report.failed {
        let Some(&i) = sent.get(failure.delivery_id.as_str()) else {
            return Err(format!(
                "it reports delivery id {:?} failed, which was not in the call",
                failure.delivery_id
            ));
        };
        if !failed.insert(i) {
            return Err(format!(
                "it reports delivery id {:?} failed twice",
                failure.delivery_id
            ));
        }
        fates[i] = Fate::Failed {
            reason: failure.reason.clone(),
            retryable: failure.retryable,
        };
    }
    let rest = actions.len() - failed.len();
    if report.delivered as usize != rest {
        return Err(format!(
            "it reports {} delivered and {} failed of {} actions",
            report.delivered,
            failed.len(),
            actions.len()
        ));
    }
    Ok(fates)
}

/// Whether a call that failed as a whole may succeed if tried again: a
/// trap (a timeout among them), the connector's `unavailable` or
/// `internal`, or the host failing to run it. Invalid input or parameters,
/// a quarantine or a refused operation need someone to act first.
fn call_retryable(error: &CallError) -> bool {
    match error {
        CallError::Trap { .. } | CallError::Host { .. } | CallError::Busy { .. } => true,
        CallError::Plugin { error, .. } => matches!(
            error,
            PluginError::Unavailable(_) | PluginError::Internal(_)
        ),
        CallError::InvalidOutput { .. }
        | CallError::Quarantined { .. }
        | CallError::InvalidParams { .. }
        | CallError::Unsupported { .. } => false,
        _ => true,
    }
}

fn add_called(cost: &mut ConnectorCost, called: &Called<DeliveryReport>) {
    cost.calls += 1;
    cost.fuel += called.cost.fuel;
    cost.wall_ms += called.cost.wall.as_millis() as u64;
    cost.peak_memory_bytes = cost.peak_memory_bytes.max(called.cost.peak_memory);
    cost.output_bytes += called.cost.output_bytes;
}

fn add_cost(total: &mut ConnectorCost, more: &ConnectorCost) {
    total.calls += more.calls;
    total.failed_calls += more.failed_calls;
    total.fuel += more.fuel;
    total.wall_ms += more.wall_ms;
    total.peak_memory_bytes = total.peak_memory_bytes.max(more.peak_memory_bytes);
    total.output_bytes += more.output_bytes;
}

fn serves(modes: Modes) -> String {
    let names: Vec<&str> = [(Modes::PUSH, "parse"), (Modes::PULL, "pull")]
        .into_iter()
        .filter(|(mode, _)| modes.contains(*mode))
        .map(|(_, name)| name)
        .collect();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(" and ")
    }
}

fn run_detail(run: &DeliveryRun) -> String {
    let r = &run.report;
    format!(
        "delivery {} {}: {} actions, {} delivered in {} attempts ({} retried), {} failed \
         retryably, {} failed for good, {} dead letters",
        run.id,
        match run.status {
            DeliveryStatus::Completed => "completed",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Running => "running",
        },
        r.actions,
        r.delivered,
        r.attempts,
        r.retried,
        r.failed_retryable,
        r.failed_permanent,
        r.dead_letters
    )
}

/// A new run id: its start time first, so that ids sort by time.
fn new_id(now_ms: i64) -> Result<String, DeliveryError> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| DeliveryError::Corrupt(format!("no randomness for a run id: {e}")))?;
    Ok(format!("dlv-{:013}-{}", now_ms.max(0), hex::encode(bytes)))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, DeliveryError> {
    serde_json::to_vec(value).map_err(|e| DeliveryError::Corrupt(e.to_string()))
}

fn encode_text<T: Serialize>(value: &T) -> Result<String, DeliveryError> {
    serde_json::to_string(value).map_err(|e| DeliveryError::Corrupt(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(plain: &[u8]) -> Result<T, DeliveryError> {
    serde_json::from_slice(plain).map_err(|e| DeliveryError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use tessera_runtime::TrapReason;
    use tessera_runtime::api::records::DeliveryFailure;
    use tessera_runtime::api::types::Value;

    use super::*;

    fn action(id: &str) -> Action {
        Action {
            delivery_id: id.into(),
            recipient: "M-1".into(),
            action: "coupon".into(),
            attributes: Vec::new(),
        }
    }

    fn failure(id: &str, retryable: bool) -> DeliveryFailure {
        DeliveryFailure {
            delivery_id: id.into(),
            reason: format!("{id} failed"),
            retryable,
        }
    }

    #[test]
    fn backoff_ceilings_double_up_to_the_cap_and_full_jitter_stays_under_them() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(3),
        };
        let ceilings: Vec<u128> = (1..=6).map(|n| policy.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [250, 500, 1000, 2000, 3000, 3000]);
        assert_eq!(policy.ceiling(200), Duration::from_secs(3), "no overflow");
        assert_eq!(policy.delay(3, 0.5), Duration::from_millis(500));
        assert_eq!(policy.delay(3, 0.0), Duration::ZERO);
        assert_eq!(policy.delay(3, 7.0), Duration::from_secs(1), "clamped");
        assert_eq!(policy.delay(3, f64::NAN), Duration::ZERO);
        for _ in 0..1000 {
            let fraction = random_fraction();
            assert!((0.0..1.0).contains(&fraction), "{fraction}");
            assert!(policy.delay(4, fraction) <= policy.ceiling(4));
        }
    }

    #[test]
    fn a_report_gives_each_action_its_fate() {
        let actions = [action("a"), action("b"), action("c")];
        let report = DeliveryReport {
            delivered: 1,
            failed: vec![failure("c", true), failure("a", false)],
        };
        assert_eq!(
            fates(&actions, &report).unwrap(),
            [
                Fate::Failed {
                    reason: "a failed".into(),
                    retryable: false
                },
                Fate::Delivered,
                Fate::Failed {
                    reason: "c failed".into(),
                    retryable: true
                },
            ]
        );
    }

    #[test]
    fn a_report_that_does_not_add_up_is_not_trusted() {
        let actions = [action("a"), action("b")];
        for (report, needle) in [
            (
                DeliveryReport {
                    delivered: 1,
                    failed: vec![failure("z", true)],
                },
                "\"z\" failed, which was not in the call",
            ),
            (
                DeliveryReport {
                    delivered: 0,
                    failed: vec![failure("a", true), failure("a", false)],
                },
                "\"a\" failed twice",
            ),
            (
                DeliveryReport {
                    delivered: 2,
                    failed: vec![failure("a", true)],
                },
                "2 delivered and 1 failed of 2 actions",
            ),
            (
                DeliveryReport {
                    delivered: 0,
                    failed: Vec::new(),
                },
                "0 delivered and 0 failed of 2 actions",
            ),
        ] {
            let error = fates(&actions, &report).unwrap_err();
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn traps_and_unavailable_connectors_are_retried_refusals_are_not() {
        let plugin = || "webhook-out@0.1.0".to_string();
        let trap = |reason| CallError::Trap {
            plugin: plugin(),
            reason,
        };
        let failed = |error| CallError::Plugin {
            plugin: plugin(),
            error,
        };
        for (error, retryable) in [
            (
                trap(TrapReason::Timeout {
                    limit: Duration::from_secs(2),
                }),
                true,
            ),
            (trap(TrapReason::Panic), true),
            (failed(PluginError::Unavailable("down".into())), true),
            (failed(PluginError::Internal("bug".into())), true),
            (failed(PluginError::InvalidConfig("bad url".into())), false),
            (
                failed(PluginError::InvalidInput("bad action".into())),
                false,
            ),
            (
                CallError::Quarantined {
                    plugin: plugin(),
                    traps: 3,
                    last: TrapReason::Panic,
                },
                false,
            ),
            (
                CallError::Unsupported {
                    plugin: plugin(),
                    operation: "deliver",
                },
                false,
            ),
        ] {
            assert_eq!(call_retryable(&error), retryable, "{error}");
        }
    }

    #[test]
    fn every_action_needs_a_delivery_id_of_its_own() {
        assert!(check_actions(&[action("a"), action("b")]).is_ok());
        for (actions, index) in [
            (vec![action("a"), action(" ")], 1),
            (vec![action("a"), action("b"), action("a")], 2),
        ] {
            match check_actions(&actions) {
                Err(DeliveryError::InvalidAction { index: i, .. }) => assert_eq!(i, index),
                other => panic!("expected a refused action, got {other:?}"),
            }
        }
    }

    #[test]
    fn actions_survive_the_trip_through_a_dead_letter() {
        let mut original = action("a");
        original.attributes = vec![
            FieldValue {
                name: "amount".into(),
                value: Value::Number(5.5),
            },
            FieldValue {
                name: "tags".into(),
                value: Value::TextList(vec!["spring".into()]),
            },
            FieldValue {
                name: "until".into(),
                value: Value::Timestamp(1_780_272_000_000),
            },
        ];
        let stored: DeliveryAction =
            serde_json::from_slice(&encode(&DeliveryAction::from(&original)).unwrap()).unwrap();
        assert_eq!(Action::from(&stored), original);
    }
}

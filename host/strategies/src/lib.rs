//! Campaigns: a strategy plugin enabled on a segment, and what Tessera does
//! around every decision it makes.
//!
//! - **Campaigns** ([`Strategies::put`], [`Strategies::transition`]): a
//!   strategy plugin with its parameters, the segment it targets, a
//!   **holdout** share (assigned by hashing the subject id with the
//!   campaign's salt, so it is stable across restarts and nodes), a
//!   frequency cap per person, a budget, a schedule and a goal (the event
//!   that counts as a conversion, and its value). Lifecycle: draft →
//!   simulated → running ⇄ paused → completed; every change is audited.
//! - **Simulate** ([`Strategies::simulate`]): the strategy's own forecast
//!   over a consenting sample of the segment, with the reach and cost under
//!   the holdout, caps and budget; a campaign runs only once simulated. A
//!   definition can be tried before it is saved
//!   ([`Strategies::simulate_spec`]).
//! - **Decide** ([`Strategies::decide`]): for one person, in order: the
//!   campaign must run; the person must be in its segment and consent to
//!   its purpose **now** (else the documented fallback, and nothing of the
//!   person reaches the plugin); a person in the holdout gets the control
//!   answer; the caps apply; then the plugin decides over a one-row view of
//!   the person. Every decision that involves the person (treatment and
//!   control) is logged with its propensity.
//! - **Send** ([`Strategies::start_send`], [`Strategies::run_send`]): a
//!   running campaign decided for its whole segment a page at a time, by
//!   the same checks as decide and one strategy call per page, every
//!   decision logged as decide logs it, and one action per person
//!   delivered through a destination connector at a trusted address of
//!   theirs.
//! - **Feedback** ([`Strategies::feedback`]): impressions, clicks,
//!   conversions and revenue, idempotent, joined to the logged decision and
//!   queued (durably) for the strategy to learn from in batches
//!   ([`Strategies::learn`]).
//! - **Evaluation** ([`Strategies::evaluate`]): treatment against holdout
//!   on the campaign's goal, read from the people's events, with
//!   `tessera-stats`.
//! - **Recommendation** ([`Strategies::recommend`]): the catalog ranked
//!   for a segment by off-policy replays over the segment's logged
//!   decisions and by the uplift of past campaigns on similar segments,
//!   with the reasons.
//! - **The people's own data**: the decisions about a person are in their
//!   access view and exports ([`Strategies::decisions_about`]) and are
//!   erased with them ([`Strategies::forget`]); a campaign's part of its
//!   strategy's state goes with the campaign, and a strategy plugin is not
//!   removed while a campaign not yet completed uses it.

mod access;
mod campaign;
mod decide;
mod evaluate;
mod feedback;
mod offpolicy;
mod recommend;
mod send;
mod simulate;
mod store;

use std::sync::{Arc, Mutex};

use tessera_plugins::{Registry, RegistryError};
use tessera_vault::{Vault, VaultError};

pub use campaign::{
    Campaign, CampaignSpec, CampaignStatus, FrequencyCap, Goal, GoalSource, MAX_HOLDOUT, Shadow,
    Transition,
};
pub use decide::{Arm, DecideRequest, DecisionOutcome, DecisionRecord, FallbackReason, RankedView};
pub use evaluate::{Evaluation, GroupEvaluation};
pub use feedback::{FeedbackKind, FeedbackOutcome, FeedbackSpec, LearnReport};
pub use offpolicy::{ActionWeight, MAX_REPLAY, OffPolicyView};
pub use recommend::Recommendation;
pub use send::{CampaignSend, SEND_ACTION, SEND_PAGE, SendFallbacks, SendSpec, SendStatus};
pub use simulate::{ActionForecastView, SIMULATION_SAMPLE, Simulation};

/// Why a campaign operation failed. Nothing was written unless the variant
/// says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    #[error(
        "a campaign name is 1 to 64 of a-z, 0-9, `-` and `_`, starting with a letter or a \
         digit; {name:?} is not"
    )]
    BadName { name: String },
    #[error("no campaign named {name:?}")]
    Unknown { name: String },
    #[error("plugin {plugin:?} is a {kind} plugin, not a strategy plugin")]
    NotAStrategy { plugin: String, kind: String },
    #[error("no segment named {name:?}")]
    UnknownSegment { name: String },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(
        "plugin {plugin:?} was granted no purpose it works for ({declared}); an operator must \
         grant one before a campaign uses it"
    )]
    NoPurpose { plugin: String, declared: String },
    #[error("{purpose:?} is not a purpose of the tenant (its purposes: {known})")]
    UnknownPurpose { purpose: String, known: String },
    #[error("campaign {name:?} is {from}; it cannot become {to}")]
    BadTransition {
        name: String,
        from: CampaignStatus,
        to: CampaignStatus,
    },
    #[error("campaign {name:?} is {status}; only a draft or simulated campaign can be changed")]
    NotEditable {
        name: String,
        status: CampaignStatus,
    },
    #[error("no decision {id:?}")]
    UnknownDecision { id: String },
    #[error("decision {id:?} served no action, so it takes no feedback of kind {kind}")]
    NoActionServed { id: String, kind: String },
    #[error("a tenant has at most {max} campaigns; complete and remove one first", max = campaign::MAX_CAMPAIGNS)]
    TooMany,
    #[error("campaign {name:?} {why}; only a running campaign is sent")]
    NotRunning { name: String, why: String },
    #[error(
        "connector {connector:?} is not granted {what}; an operator must grant it before \
         campaigns are sent through it"
    )]
    SendNotGranted { connector: String, what: String },
    #[error("no send {id:?}")]
    UnknownSend { id: String },
    #[error(transparent)]
    Delivery(#[from] tessera_imports::DeliveryError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Stats(#[from] tessera_stats::uplift::UpliftError),
    #[error("a stored campaign record is unreadable: {0}")]
    Corrupt(String),
}

/// The tenants' campaigns. Cheap to clone. Its calls block (plugins, the
/// store): run them on a blocking pool.
#[derive(Clone)]
pub struct Strategies {
    inner: Arc<Inner>,
}

struct Inner {
    vault: Arc<Vault>,
    registry: Registry,
    /// Serialises the writes that count (served decisions against the
    /// budget, feedback against its idempotency key, the learning queue).
    counters: Mutex<()>,
    /// Campaigns decoded, by tenant and name, with the bytes they were
    /// decoded from (`campaign::Decoded`).
    decoded: Mutex<campaign::Decoded>,
}

/// Erases people's decisions and feedback with them.
struct ForgetOnErasure(std::sync::Weak<Inner>);

impl tessera_vault::ErasureListener for ForgetOnErasure {
    fn erasing(&self, tenant: &str, subjects: &[String]) -> Result<(), VaultError> {
        let Some(inner) = self.0.upgrade() else {
            return Ok(());
        };
        (Strategies { inner })
            .forget(tenant, subjects)
            .map(|_| ())
            .map_err(|e| decision_log_error(tenant, e))
    }
}

/// Shows people the decisions campaigns made about them, when they (or an
/// operator for them) read or export their data.
struct ShowOnAccess(std::sync::Weak<Inner>);

impl tessera_vault::AccessListener for ShowOnAccess {
    fn gathering(
        &self,
        tenant: &str,
        subjects: &[String],
        view: &mut tessera_vault::SubjectView,
    ) -> Result<(), VaultError> {
        let Some(inner) = self.0.upgrade() else {
            return Ok(());
        };
        let decisions = (Strategies { inner })
            .decisions_about(tenant, subjects)
            .map_err(|e| decision_log_error(tenant, e))?;
        view.decisions = decisions.into_iter().map(access::as_seen).collect();
        Ok(())
    }
}

/// A failure to read or change the decision log, as the vault reports it.
fn decision_log_error(tenant: &str, error: StrategyError) -> VaultError {
    match error {
        StrategyError::Vault(error) => error,
        other => VaultError::Corrupt {
            tenant: tenant.to_owned(),
            what: "decision log",
            detail: other.to_string(),
        },
    }
}

/// Keeps a strategy plugin installed while a campaign that is not
/// completed runs it, live or as its shadow: a running or paused campaign
/// would be left deciding with a plugin that is gone, and a draft or a
/// simulated one would name a strategy it cannot run. Completed campaigns
/// stay as the track record; their parts of the plugin's state go with it.
#[derive(Debug)]
struct KeepWhileUsed(std::sync::Weak<Inner>);

impl tessera_plugins::RemovalListener for KeepWhileUsed {
    fn removing(&self, tenant: &str, plugin: &str) -> Result<(), RegistryError> {
        let Some(inner) = self.0.upgrade() else {
            return Ok(());
        };
        let campaigns = (Strategies { inner }).list(tenant).map_err(|e| match e {
            StrategyError::Vault(error) => RegistryError::Vault(error),
            other => RegistryError::Store(other.to_string()),
        })?;
        let by: Vec<String> = campaigns
            .iter()
            .filter(|c| c.status != CampaignStatus::Completed)
            .filter_map(|c| {
                let shadow = c.shadow.as_ref().is_some_and(|s| s.strategy == plugin);
                match (c.strategy == plugin, shadow) {
                    (true, _) => Some(format!("campaign {} ({})", c.name, c.status)),
                    (false, true) => {
                        Some(format!("campaign {} ({}, as its shadow)", c.name, c.status))
                    }
                    (false, false) => None,
                }
            })
            .collect();
        if by.is_empty() {
            return Ok(());
        }
        Err(RegistryError::InUse {
            name: plugin.to_owned(),
            by,
            remedy: "complete the running and paused campaigns, and change or delete the \
                     others, before removing it"
                .into(),
        })
    }
}

impl std::fmt::Debug for Strategies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strategies").finish_non_exhaustive()
    }
}

impl Strategies {
    /// The campaigns of `vault`'s tenants. Their decision logs name people,
    /// so they are erased with them: the new value listens to the vault's
    /// erasures ([`Strategies::forget`]) for as long as it lives, and
    /// shows them in their access view and exports
    /// ([`Strategies::decisions_about`]). It also keeps the registry from
    /// removing a strategy plugin that a campaign not yet completed uses.
    pub fn new(vault: Arc<Vault>, registry: Registry) -> Self {
        let strategies = Strategies {
            inner: Arc::new(Inner {
                vault,
                registry,
                counters: Mutex::new(()),
                decoded: Mutex::default(),
            }),
        };
        strategies
            .inner
            .vault
            .on_erasure(Arc::new(ForgetOnErasure(Arc::downgrade(&strategies.inner))));
        strategies
            .inner
            .vault
            .on_access(Arc::new(ShowOnAccess(Arc::downgrade(&strategies.inner))));
        strategies
            .inner
            .registry
            .on_removal(Arc::new(KeepWhileUsed(Arc::downgrade(&strategies.inner))));
        strategies
    }

    pub(crate) fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn decoded(&self) -> std::sync::MutexGuard<'_, campaign::Decoded> {
        self.inner
            .decoded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn counters(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

//! Off-policy estimation: what a target strategy would have earned, judged
//! from decisions another (logging) strategy made and logged. Never acts and
//! never samples: it only weighs logged rows.
//!
//! Three estimators of the target policy's value `V(π) = E_x Σ_a π(a|x) E[r | x, a]`
//! from `n` logged rows `(x_i, a_i, r_i)` with importance weight
//! `w_i = π(a_i|x_i) / μ(a_i|x_i)`:
//!
//! - **IPS** (inverse propensity scoring): `mean(w_i r_i)`. Unbiased; its
//!   variance grows with the weights.
//! - **SNIPS** (self-normalised IPS): `Σ w_i r_i / Σ w_i`. Slightly biased
//!   (the bias vanishes as `1/n`), usually far less variable than IPS, and
//!   always within the range of the observed rewards.
//! - **DR** (doubly robust): `mean(Σ_a π(a|x_i) r̂(x_i, a) + w_i (r_i − r̂(x_i, a_i)))`
//!   with a reward model `r̂`. Unbiased when the propensities are right,
//!   whatever the model; the better the model, the smaller the variance.
//!
//! All three assume the logged propensities `μ(a|x)` are the true
//! probabilities with which the logging policy chose, positive wherever the
//! target policy acts (`π(a|x) > 0 ⇒ μ(a|x) > 0`); that the logged context
//! holds everything that influenced both the choice and the reward (no
//! unobserved confounders); and that rewards given a context and action do
//! not drift between the logging period and deployment (stationarity).
//!
//! Intervals are normal approximations: `estimate ± 1.96 · SE`, with the SE
//! of a mean of independent rows for IPS and DR and the delta method for the
//! ratio of SNIPS. They are trustworthy when the effective sample size is
//! large; a small one (or a max weight that is a sizeable share of `Σ w`)
//! says a few rows drive the estimate.

use crate::Estimate;
use crate::moments::Moments;

/// One logged decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logged<'a> {
    /// Index of the action the logging policy took.
    pub action: usize,
    /// What that action earned (a conversion as 0 or 1, revenue, …).
    pub reward: f64,
    /// `μ(a|x)`: the probability with which the logging policy took this
    /// action in this context, as logged at decision time. In `(0, 1]`.
    pub logging_propensity: f64,
    /// `π(a|x)`: the probability with which the target policy would take
    /// the same action in the same context. In `[0, 1]`.
    pub target_propensity: f64,
    /// What the doubly robust estimator needs beyond IPS; `None` when only
    /// IPS and SNIPS are wanted.
    pub direct: Option<Direct<'a>>,
}

/// The target policy's full distribution in a row's context and a reward
/// model's predictions there, both indexed by action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Direct<'a> {
    /// `π(·|x)`: probabilities in `[0, 1]` summing to 1; the entry of the
    /// logged action must equal [`Logged::target_propensity`].
    pub target_policy: &'a [f64],
    /// `r̂(x, ·)`: the predicted reward of every action, e.g. from
    /// [`PerActionMean::predictions`].
    pub predicted_rewards: &'a [f64],
}

/// Why logged rows could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OpeError {
    #[error("off-policy estimation needs at least 2 logged rows, got {rows}")]
    TooFewRows { rows: u64 },
    #[error(
        "row {row}: the logged propensity μ(a|x) must be in (0, 1] (log the probability the logging policy gave the action it took), got {value}"
    )]
    LoggingPropensity { row: u64, value: f64 },
    #[error(
        "row {row}: the target policy's probability of the logged action must be in [0, 1], got {value}"
    )]
    TargetPropensity { row: u64, value: f64 },
    #[error("row {row}: the reward must be a finite number, got {value}")]
    Reward { row: u64, value: f64 },
    #[error(
        "row {row}: the target policy covers {policy} actions but the reward model predicts {predictions}; both must cover every action"
    )]
    ActionCount {
        row: u64,
        policy: usize,
        predictions: usize,
    },
    #[error("row {row}: action {action} is not one of the {actions} actions")]
    Action {
        row: u64,
        action: usize,
        actions: usize,
    },
    #[error(
        "row {row}: the target policy's probabilities must each be in [0, 1] and sum to 1, they sum to {sum}"
    )]
    TargetPolicy { row: u64, sum: f64 },
    #[error(
        "row {row}: the target policy gives the logged action probability {in_policy} but the row's target propensity is {stated}"
    )]
    TargetMismatch {
        row: u64,
        in_policy: f64,
        stated: f64,
    },
    #[error("row {row}: every predicted reward must be a finite number")]
    Prediction { row: u64 },
    #[error(
        "the target policy gives probability 0 to every logged action: the logs say nothing about what it would earn"
    )]
    NoOverlap,
}

/// Off-policy estimates of the target policy's value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OffPolicyReport {
    /// Logged rows used.
    pub rows: u64,
    /// Inverse propensity scoring: `mean(w r)`, SE `sd(w r) / √n`.
    pub ips: Estimate,
    /// Self-normalised IPS: `Σ w r / Σ w`, SE by the delta method
    /// `√(Σ w²(r − V̂)²) / Σ w` (with the `n − 1` sample variance).
    pub snips: Estimate,
    /// Doubly robust: `mean(ψ)`, `ψ = Σ_a π(a|x) r̂(x,a) + w (r − r̂(x, a_logged))`,
    /// SE `sd(ψ) / √n`. `None` unless every row carried [`Direct`].
    pub dr: Option<Estimate>,
    /// Kish's effective sample size `(Σ w)² / Σ w²`: how many rows of an
    /// on-policy experiment the logs are worth. Equals `rows` when every
    /// weight is equal.
    pub effective_sample_size: f64,
    /// The largest importance weight `π / μ` seen.
    pub max_weight: f64,
}

/// Streaming accumulator of logged rows: push rows one at a time (or merge
/// accumulators built on shards), then ask for the [`OffPolicyReport`].
/// Holds a fixed few numbers whatever the number of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OffPolicy {
    /// Per row: `w r`, `w` and the doubly robust term `ψ`.
    moments: Moments<3>,
    direct_rows: u64,
    max_weight: f64,
}

const WR: usize = 0;
const W: usize = 1;
const PSI: usize = 2;

/// Slack for probabilities that were computed, not counted.
const TOLERANCE: f64 = 1e-9;

impl OffPolicy {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.moments.n()
    }

    /// Adds one row, or tells what is wrong with it and leaves the
    /// accumulator unchanged. Rows are numbered from 0 in push order.
    pub fn push(&mut self, row: &Logged<'_>) -> Result<(), OpeError> {
        let index = self.rows();
        let mu = row.logging_propensity;
        if !(mu > 0.0 && mu <= 1.0) {
            return Err(OpeError::LoggingPropensity {
                row: index,
                value: mu,
            });
        }
        let pi = row.target_propensity;
        if !(0.0..=1.0).contains(&pi) {
            return Err(OpeError::TargetPropensity {
                row: index,
                value: pi,
            });
        }
        if !row.reward.is_finite() {
            return Err(OpeError::Reward {
                row: index,
                value: row.reward,
            });
        }
        let w = pi / mu;
        let psi = match &row.direct {
            Some(direct) => Some(direct_term(index, row, direct, w)?),
            None => None,
        };
        self.moments.push([w * row.reward, w, psi.unwrap_or(0.0)]);
        if psi.is_some() {
            self.direct_rows += 1;
        }
        self.max_weight = self.max_weight.max(w);
        Ok(())
    }

    /// Adds everything another accumulator saw (e.g. one built on another shard).
    pub fn merge(&mut self, other: &OffPolicy) {
        self.moments.merge(&other.moments);
        self.direct_rows += other.direct_rows;
        self.max_weight = self.max_weight.max(other.max_weight);
    }

    /// The estimates from every row pushed so far.
    pub fn report(&self) -> Result<OffPolicyReport, OpeError> {
        let m = &self.moments;
        let rows = m.n();
        if rows < 2 {
            return Err(OpeError::TooFewRows { rows });
        }
        let n = rows as f64;
        let mean_w = m.mean(W);
        if mean_w <= 0.0 {
            return Err(OpeError::NoOverlap);
        }
        let ips = Estimate::normal(m.mean(WR), (m.var(WR) / n).sqrt());

        let v = m.mean(WR) / mean_w;
        // Delta method for a ratio of means: Var(Ȳ/W̄) ≈ Var(Y − V W) / (n W̄²).
        let linearised = (m.var(WR) - 2.0 * v * m.cov(WR, W) + v * v * m.var(W)).max(0.0);
        let snips = Estimate::normal(v, (linearised / n).sqrt() / mean_w);

        let dr = (self.direct_rows == rows)
            .then(|| Estimate::normal(m.mean(PSI), (m.var(PSI) / n).sqrt()));

        let sum_w = mean_w * n;
        Ok(OffPolicyReport {
            rows,
            ips,
            snips,
            dr,
            effective_sample_size: sum_w * sum_w / m.sum_of_squares(W),
            max_weight: self.max_weight,
        })
    }
}

/// The doubly robust term of one row, after checking its [`Direct`] part.
fn direct_term(index: u64, row: &Logged<'_>, direct: &Direct<'_>, w: f64) -> Result<f64, OpeError> {
    let (policy, predicted) = (direct.target_policy, direct.predicted_rewards);
    if policy.len() != predicted.len() {
        return Err(OpeError::ActionCount {
            row: index,
            policy: policy.len(),
            predictions: predicted.len(),
        });
    }
    if row.action >= policy.len() {
        return Err(OpeError::Action {
            row: index,
            action: row.action,
            actions: policy.len(),
        });
    }
    let sum: f64 = policy.iter().sum();
    if policy.iter().any(|p| !(0.0..=1.0).contains(p)) || (sum - 1.0).abs() > 1e-6 {
        return Err(OpeError::TargetPolicy { row: index, sum });
    }
    if (policy[row.action] - row.target_propensity).abs() > TOLERANCE {
        return Err(OpeError::TargetMismatch {
            row: index,
            in_policy: policy[row.action],
            stated: row.target_propensity,
        });
    }
    if predicted.iter().any(|r| !r.is_finite()) {
        return Err(OpeError::Prediction { row: index });
    }
    let direct_value: f64 = policy.iter().zip(predicted).map(|(p, r)| p * r).sum();
    Ok(direct_value + w * (row.reward - predicted[row.action]))
}

/// IPS, SNIPS and (when every row carries [`Direct`]) DR estimates from a
/// slice of logged rows: [`OffPolicy`] in one call.
pub fn evaluate(rows: &[Logged<'_>]) -> Result<OffPolicyReport, OpeError> {
    let mut acc = OffPolicy::new();
    for row in rows {
        acc.push(row)?;
    }
    acc.report()
}

/// The simplest reward model for DR's direct part: the mean logged reward of
/// each action, ignoring the context.
///
/// It is usually wrong for any one context, which DR tolerates: the
/// importance-weighted correction removes the model's bias when the
/// propensities are right, and a model that captures part of the reward
/// still lowers the variance. Fitting it on the same logs that are then
/// evaluated adds a bias of order `1/n`, negligible at the sizes where the
/// intervals are trustworthy. An action never logged is predicted the
/// overall mean reward (0 before any row).
#[derive(Debug, Clone, PartialEq)]
pub struct PerActionMean {
    counts: Vec<u64>,
    sums: Vec<f64>,
}

impl PerActionMean {
    /// A model over `actions` actions, numbered `0..actions`.
    pub fn new(actions: usize) -> Self {
        Self {
            counts: vec![0; actions],
            sums: vec![0.0; actions],
        }
    }

    /// Fits the model on logged rows.
    pub fn fit(actions: usize, rows: &[Logged<'_>]) -> Result<Self, OpeError> {
        let mut model = Self::new(actions);
        for logged in rows {
            // push numbers rows by the rewards it has taken, so errors name the row.
            model.push(logged.action, logged.reward)?;
        }
        Ok(model)
    }

    /// Adds one logged reward of `action`.
    pub fn push(&mut self, action: usize, reward: f64) -> Result<(), OpeError> {
        let row = self.counts.iter().sum();
        if action >= self.counts.len() {
            return Err(OpeError::Action {
                row,
                action,
                actions: self.counts.len(),
            });
        }
        if !reward.is_finite() {
            return Err(OpeError::Reward { row, value: reward });
        }
        self.counts[action] += 1;
        self.sums[action] += reward;
        Ok(())
    }

    /// The predicted reward of every action, indexed by action.
    pub fn predictions(&self) -> Vec<f64> {
        let total: u64 = self.counts.iter().sum();
        let overall = if total == 0 {
            0.0
        } else {
            self.sums.iter().sum::<f64>() / total as f64
        };
        self.counts
            .iter()
            .zip(&self.sums)
            .map(|(&c, &s)| if c == 0 { overall } else { s / c as f64 })
            .collect()
    }
}

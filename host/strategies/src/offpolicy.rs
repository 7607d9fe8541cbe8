//! What a strategy would have earned on decisions another one made: the
//! logged decisions of a campaign, replayed through a target strategy (or
//! its shadow's answers, logged beside them), weighed with
//! `tessera-stats`'s off-policy estimators.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_plugins::{Subjects, field_values};
use tessera_runtime::api::strategies::Context;
use tessera_stats::ope::{Direct, Logged, OffPolicyReport, PerActionMean};

use crate::campaign::Campaign;
use crate::decide::{Arm, DecisionRecord};
use crate::feedback::select_rows;
use crate::store::KIND_FEEDBACK;
use crate::{Strategies, StrategyError};

/// The most logged decisions a replay weighs (the newest).
pub const MAX_REPLAY: usize = 2_000;
/// People per view while replaying.
const PAGE: usize = 256;

/// One action's part in an off-policy estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionWeight {
    pub action: String,
    /// The share of logged decisions that chose it.
    pub logged_share: f64,
    /// The target's average probability of choosing it over the logged
    /// contexts.
    pub target_share: f64,
    /// The logged conversion rate when it was chosen.
    pub logged_reward: f64,
}

/// An off-policy estimate of a target strategy's conversion rate per
/// decision, from a campaign's logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffPolicyView {
    /// The campaign whose logged decisions were weighed.
    pub logs_from: String,
    /// What the target is: a campaign's strategy, or a shadow.
    pub target: String,
    /// Decisions weighed, and those left out (the person no longer
    /// consents, or the target failed on them).
    pub rows: u64,
    pub skipped: u64,
    /// The logging strategy's own conversion rate on those decisions.
    pub logged_value: f64,
    /// IPS, SNIPS and DR estimates of the target's, with 95% intervals,
    /// the effective sample size and the largest weight.
    pub estimate: OffPolicyReport,
    /// What drives it: per action, how often the logs and the target
    /// choose it, and what it earned.
    pub actions: Vec<ActionWeight>,
}

/// What the target would do in one logged context: its probability for
/// each of its actions.
type Distribution = Vec<f64>;

impl Strategies {
    /// Replays `target`'s strategy (with its parameters) over the newest
    /// [`MAX_REPLAY`] decisions the strategy of campaign `logs_from` made,
    /// each in its logged context over a view of the person now, and
    /// estimates the target's conversion rate per decision from what those
    /// decisions earned (a `conversion` feedback: 1, else 0).
    ///
    /// The profile is the person's now, not at the logged decision: the
    /// estimate assumes what the target reads did not change in between
    /// (docs/strategies.md).
    pub fn replay(
        &self,
        tenant: &str,
        target: &Campaign,
        logs_from: &str,
    ) -> Result<OffPolicyView, StrategyError> {
        let source = self.get(tenant, logs_from)?;
        let logged = self.strategy_decisions(tenant, &source.name)?;
        let params = target.field_values();
        let mut distributions: BTreeMap<String, Distribution> = BTreeMap::new();
        let mut by_subject: BTreeMap<&str, Vec<&DecisionRecord>> = BTreeMap::new();
        for decision in &logged {
            by_subject
                .entry(decision.subject.as_str())
                .or_default()
                .push(decision);
        }
        let subjects: Vec<String> = by_subject.keys().map(|s| (*s).to_owned()).collect();
        for page in subjects.chunks(PAGE) {
            let (live, view) = self.registry().view(
                tenant,
                &target.strategy,
                &params,
                &target.purpose,
                Subjects::Ids(page),
            )?;
            for row in 0..view.batch.rows as usize {
                let Some(subject) = view.subject(row) else {
                    continue;
                };
                let one = select_rows(&view.batch, &[row]);
                for decision in by_subject.get(subject).into_iter().flatten() {
                    let context = Context {
                        channel: decision.channel.clone(),
                        at: decision.at_ms,
                        attributes: field_values(&decision.attributes),
                    };
                    let Ok(called) = live.plugin.decide_with(
                        &params,
                        &one,
                        &context,
                        &target.state_scope(&view),
                    ) else {
                        continue;
                    };
                    if let Some(decision_out) = called.value.first() {
                        let mut distribution = vec![0.0; target.actions.len()];
                        for ranked in &decision_out.ranked {
                            if let Some(p) = distribution.get_mut(ranked.action as usize) {
                                *p += ranked.propensity.max(0.0);
                            }
                        }
                        distributions.insert(decision.id.clone(), distribution);
                    }
                }
            }
        }
        self.weigh(
            tenant,
            &source.name,
            &format!("campaign {} ({})", target.name, target.strategy),
            &target.actions,
            &logged,
            |d| distributions.get(&d.id).cloned(),
        )
    }

    /// The shadow strategy of `campaign` weighed against its live one, from
    /// the shadow's answers logged beside each live decision.
    pub fn shadow_estimate(
        &self,
        tenant: &str,
        campaign: &Campaign,
    ) -> Result<OffPolicyView, StrategyError> {
        let shadow = campaign
            .shadow
            .as_ref()
            .ok_or_else(|| StrategyError::Invalid {
                field: "shadow",
                reason: format!("campaign {:?} has no shadow strategy", campaign.name),
            })?;
        let logged = self.strategy_decisions(tenant, &campaign.name)?;
        self.weigh(
            tenant,
            &campaign.name,
            &format!("shadow {}", shadow.strategy),
            &campaign.actions,
            &logged,
            |d| {
                d.shadow.as_ref().map(|s| {
                    campaign
                        .actions
                        .iter()
                        .map(|a| s.distribution.get(a).copied().unwrap_or(0.0))
                        .collect()
                })
            },
        )
    }

    /// The newest [`MAX_REPLAY`] decisions a campaign's strategy made
    /// (treatment, not a fallback).
    fn strategy_decisions(
        &self,
        tenant: &str,
        campaign: &str,
    ) -> Result<Vec<DecisionRecord>, StrategyError> {
        let mut logged: Vec<DecisionRecord> = self
            .decisions(tenant, campaign)?
            .into_iter()
            .filter(|d| d.arm == Arm::Treatment && !d.ranked.is_empty() && d.action.is_some())
            .collect();
        logged.sort_by_key(|d| std::cmp::Reverse(d.at_ms));
        logged.truncate(MAX_REPLAY);
        Ok(logged)
    }

    /// The estimate over `logged`, with the target's distribution over
    /// `actions` in each logged context (none: leave the row out).
    fn weigh(
        &self,
        tenant: &str,
        logs_from: &str,
        target: &str,
        actions: &[String],
        logged: &[DecisionRecord],
        distribution: impl Fn(&DecisionRecord) -> Option<Distribution>,
    ) -> Result<OffPolicyView, StrategyError> {
        // The target's actions, and one more for a logged action the
        // target does not have (it never chooses it).
        let k = actions.len() + 1;
        let mut rows: Vec<(usize, f64, f64, Distribution)> = Vec::new();
        let mut skipped = 0u64;
        for decision in logged {
            let Some(mut policy) = distribution(decision) else {
                skipped += 1;
                continue;
            };
            let total: f64 = policy.iter().sum();
            if total <= 0.0 {
                skipped += 1;
                continue;
            }
            // Propensities a strategy estimates (by sampling) may not sum
            // to exactly 1.
            policy.iter_mut().for_each(|p| *p /= total);
            policy.push(0.0);
            let action = decision
                .action
                .as_ref()
                .and_then(|a| actions.iter().position(|x| x == a))
                .unwrap_or(k - 1);
            let reward = self.converted(tenant, decision)?;
            rows.push((action, reward, decision.propensity, policy));
        }
        let mut model = PerActionMean::new(k);
        for (action, reward, _, _) in &rows {
            model
                .push(*action, *reward)
                .map_err(|e| StrategyError::Corrupt(e.to_string()))?;
        }
        let predictions = model.predictions();
        let logged_rows: Vec<Logged<'_>> = rows
            .iter()
            .map(|(action, reward, propensity, policy)| Logged {
                action: *action,
                reward: *reward,
                logging_propensity: *propensity,
                target_propensity: policy[*action],
                direct: Some(Direct {
                    target_policy: policy,
                    predicted_rewards: &predictions,
                }),
            })
            .collect();
        let estimate =
            tessera_stats::ope::evaluate(&logged_rows).map_err(|e| StrategyError::Invalid {
                field: "logs_from",
                reason: format!("the logs of {logs_from} cannot be weighed: {e}"),
            })?;
        let n = rows.len().max(1) as f64;
        let actions_view = actions
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let chosen: Vec<&(usize, f64, f64, Distribution)> =
                    rows.iter().filter(|r| r.0 == i).collect();
                ActionWeight {
                    action: name.clone(),
                    logged_share: chosen.len() as f64 / n,
                    target_share: rows.iter().map(|r| r.3[i]).sum::<f64>() / n,
                    logged_reward: if chosen.is_empty() {
                        0.0
                    } else {
                        chosen.iter().map(|r| r.1).sum::<f64>() / chosen.len() as f64
                    },
                }
            })
            .collect();
        Ok(OffPolicyView {
            logs_from: logs_from.to_owned(),
            target: target.to_owned(),
            rows: rows.len() as u64,
            skipped,
            logged_value: rows.iter().map(|r| r.1).sum::<f64>() / n,
            estimate,
            actions: actions_view,
        })
    }

    /// 1 if the decision got a conversion, else 0.
    fn converted(&self, tenant: &str, decision: &DecisionRecord) -> Result<f64, StrategyError> {
        let prefix = format!(
            "{}/conversion/",
            crate::decide::decision_doc(&decision.campaign, &decision.subject, &decision.id)
        );
        let found = self
            .vault()
            .sealed_documents_under(tenant, KIND_FEEDBACK, &prefix, None, 1)?;
        Ok(if found.is_empty() { 0.0 } else { 1.0 })
    }
}

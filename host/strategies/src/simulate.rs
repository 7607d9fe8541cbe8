//! What a campaign is expected to do, before it runs.

use serde::{Deserialize, Serialize};
use tessera_plugins::Subjects;
use tessera_runtime::api::strategies::Context;
use tessera_vault::Actor;

use crate::campaign::{Campaign, CampaignSpec, CampaignStatus};
use crate::{Strategies, StrategyError};

/// The most segment members a forecast looks at.
pub const SIMULATION_SAMPLE: usize = 1_000;

/// The name a what-if simulation's campaign goes by: not a campaign name
/// (those have no parentheses), so it never reads a campaign's state.
const WHAT_IF: &str = "(what-if)";

/// One action's share of the forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionForecastView {
    pub action: String,
    /// The share of decisions expected to choose it.
    pub share: f64,
    /// The strategy's expected reward per person who gets it.
    pub expected_reward: f64,
}

/// A campaign's forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Simulation {
    pub computed_at_ms: i64,
    /// Members of the segment now.
    pub segment_size: u64,
    /// Members looked at (the first [`SIMULATION_SAMPLE`] by subject id).
    pub sampled: u64,
    /// Of those, consenting to the campaign's purpose now.
    pub consenting: u64,
    /// Expected people the campaign reaches: the segment's consenting
    /// share, less the holdout, at most the budget.
    pub expected_treated: u64,
    /// Expected people held out.
    pub expected_control: u64,
    /// The most decisions the campaign would serve: each treated person up
    /// to the frequency cap (one without a cap), at most the budget.
    pub max_decisions: u64,
    /// What the strategy forecasts over the consenting sample.
    pub actions: Vec<ActionForecastView>,
    /// Expected reward per person, by the strategy's own model.
    pub expected_reward: f64,
    /// The strategy's notes: what drives its forecast.
    pub notes: String,
    /// The strategy replayed over another campaign's logged decisions:
    /// off-policy estimates of its conversion rate per decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_policy: Option<crate::OffPolicyView>,
    /// Why there is no off-policy estimate, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_policy_note: Option<String>,
}

impl Strategies {
    /// The campaign on the same segment that started last (other than
    /// `campaign`) and has a strategy decision logged.
    fn logs_for(&self, tenant: &str, campaign: &Campaign) -> Result<Option<String>, StrategyError> {
        let mut candidates: Vec<(i64, String)> = self
            .list(tenant)?
            .into_iter()
            .filter(|c| c.name != campaign.name && c.segment == campaign.segment)
            .filter_map(|c| c.started_at_ms().map(|at| (at, c.name)))
            .collect();
        candidates.sort();
        for (_, name) in candidates.into_iter().rev() {
            if self.counts(tenant, &name)?.served > 0 {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Forecasts the campaign over its segment now (the strategy's own
    /// `simulate`, over a consenting sample, and the reach and cost under
    /// the holdout, caps and budget), keeps the forecast on the campaign
    /// and makes it `simulated`, ready to run. Audited like any change of
    /// status.
    ///
    /// With logs (`logs_from`, or by default the campaign on the same
    /// segment that started last and whose strategy made decisions), the
    /// strategy is also replayed over them ([`Strategies::replay`]).
    pub fn simulate(
        &self,
        tenant: &str,
        name: &str,
        logs_from: Option<&str>,
        actor: &Actor,
    ) -> Result<Simulation, StrategyError> {
        let mut campaign = self.get(tenant, name)?;
        if !matches!(
            campaign.status,
            CampaignStatus::Draft | CampaignStatus::Simulated
        ) {
            return Err(StrategyError::NotEditable {
                name: name.to_owned(),
                status: campaign.status,
            });
        }
        let simulation = self.forecast(tenant, &campaign, logs_from)?;
        campaign.simulation = Some(simulation.clone());
        self.set_status(
            tenant,
            &mut campaign,
            CampaignStatus::Simulated,
            actor,
            format!(
                "forecast: {} treated, {} held out",
                simulation.expected_treated, simulation.expected_control
            ),
        )?;
        Ok(simulation)
    }

    /// What-if: the forecast (and replay) [`Strategies::simulate`] would
    /// give a campaign of `spec`, before there is one. The spec is checked
    /// as [`Strategies::put`] checks it, with the same errors; nothing is
    /// saved, no campaign changes, and what the strategy may have written
    /// to its state during the calls is removed. The only trace is the
    /// audit trail's record of the view the strategy read, as for any
    /// read.
    pub fn simulate_spec(
        &self,
        tenant: &str,
        spec: CampaignSpec,
        logs_from: Option<&str>,
    ) -> Result<Simulation, StrategyError> {
        let campaign = self.define(tenant, WHAT_IF, spec)?;
        let simulation = self.forecast(tenant, &campaign, logs_from);
        self.clear_campaign_state(tenant, &campaign)?;
        simulation
    }

    /// The campaign's forecast over its segment now, with the replay of its
    /// strategy over logs when there are any.
    fn forecast(
        &self,
        tenant: &str,
        campaign: &Campaign,
        logs_from: Option<&str>,
    ) -> Result<Simulation, StrategyError> {
        let vault = self.vault();
        let segment_size = vault.segment_size(tenant, &campaign.segment)?;
        let members: Vec<String> = vault
            .segment_members(tenant, &campaign.segment, None, SIMULATION_SAMPLE)?
            .into_iter()
            .map(|m| m.subject)
            .collect();
        let params = campaign.field_values();
        let (live, view) = self.registry().view(
            tenant,
            &campaign.strategy,
            &params,
            &campaign.purpose,
            Subjects::Ids(&members),
        )?;
        let now = vault.now_ms();
        let forecast = if view.batch.rows > 0 {
            let context = Context {
                channel: "simulation".into(),
                at: now,
                attributes: Vec::new(),
            };
            Some(
                live.plugin
                    .simulate_with(&params, &view.batch, &context, &campaign.state_scope(&view))
                    .map_err(tessera_plugins::RegistryError::Call)?
                    .value,
            )
        } else {
            None
        };
        let sampled = members.len() as u64;
        let consenting = u64::from(view.batch.rows);
        let reachable = if sampled == 0 {
            0.0
        } else {
            segment_size as f64 * consenting as f64 / sampled as f64
        };
        let mut expected_treated = (reachable * (1.0 - campaign.holdout)).round() as u64;
        let expected_control = (reachable * campaign.holdout).round() as u64;
        let per_person = campaign.frequency_cap.map_or(1, |c| u64::from(c.max));
        let mut max_decisions = expected_treated.saturating_mul(per_person);
        if let Some(budget) = campaign.budget {
            expected_treated = expected_treated.min(budget);
            max_decisions = max_decisions.min(budget);
        }
        let mut simulation = Simulation {
            computed_at_ms: now,
            segment_size,
            sampled,
            consenting,
            expected_treated,
            expected_control,
            max_decisions,
            actions: forecast
                .as_ref()
                .map(|f| {
                    f.actions
                        .iter()
                        .map(|a| ActionForecastView {
                            action: campaign
                                .actions
                                .get(a.action as usize)
                                .cloned()
                                .unwrap_or_else(|| format!("#{}", a.action)),
                            share: a.share,
                            expected_reward: a.expected_reward,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            expected_reward: forecast.as_ref().map_or(0.0, |f| f.expected_reward),
            notes: forecast.map_or_else(
                || "no member consents to the campaign's purpose: nothing to forecast".into(),
                |f| f.notes,
            ),
            off_policy: None,
            off_policy_note: None,
        };
        let source = match logs_from {
            Some(source) => Some(source.to_owned()),
            None => self.logs_for(tenant, campaign)?,
        };
        match source {
            Some(source) => match self.replay(tenant, campaign, &source) {
                Ok(view) => simulation.off_policy = Some(view),
                Err(StrategyError::Invalid { reason, .. }) => {
                    simulation.off_policy_note = Some(reason)
                }
                Err(error) => return Err(error),
            },
            None => {
                simulation.off_policy_note = Some(format!(
                    "no other campaign on segment {} has logged decisions to replay",
                    campaign.segment
                ))
            }
        }
        Ok(simulation)
    }
}

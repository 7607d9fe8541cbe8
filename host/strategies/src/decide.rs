//! Decisions: what a campaign answers for one person, and the log of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_plugins::{ParamValue, Subjects, field_values, stored_params};
use tessera_runtime::api::strategies::Context;
use tessera_runtime::api::types::FieldValue;

use crate::campaign::{Campaign, CampaignStatus};
use crate::store::{
    KIND_COUNTS, KIND_DECISION, KIND_DECISION_INDEX, KIND_FEEDBACK, decode, encode, new_id,
};
use crate::{Strategies, StrategyError};

const DAY_MS: i64 = 86_400_000;

/// A request for one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecideRequest {
    pub campaign: String,
    /// The person (any subject id of theirs: a merged one stands for them).
    pub subject: String,
    /// Where the decision is shown (`web`, `email`, `app`, `store`, …).
    pub channel: String,
    /// What else the strategy may know of the moment (page, device, …).
    pub attributes: Vec<FieldValue>,
}

/// Which side of the holdout a person is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    Treatment,
    Control,
}

impl From<tessera_stats::assign::Arm> for Arm {
    fn from(arm: tessera_stats::assign::Arm) -> Self {
        match arm {
            tessera_stats::assign::Arm::Treatment => Arm::Treatment,
            tessera_stats::assign::Arm::Control => Arm::Control,
        }
    }
}

/// Why the strategy did not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    /// The campaign is not running (a draft, paused, completed, or outside
    /// its schedule).
    NotRunning,
    /// The person is not in the campaign's segment now.
    NotInSegment,
    /// The person does not consent to the campaign's purpose now: nothing
    /// of them reached the strategy, and nothing was logged.
    NoConsent,
    /// The person is in the holdout: the control answer, logged.
    Control,
    /// The person got the most decisions the frequency cap allows.
    Capped,
    /// The campaign served its budget.
    BudgetExhausted,
    /// The strategy's call failed (a trap, a timeout, an error); the host
    /// logs why.
    StrategyFailed,
}

impl FallbackReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::NotRunning => "not_running",
            FallbackReason::NotInSegment => "not_in_segment",
            FallbackReason::NoConsent => "no_consent",
            FallbackReason::Control => "control",
            FallbackReason::Capped => "capped",
            FallbackReason::BudgetExhausted => "budget_exhausted",
            FallbackReason::StrategyFailed => "strategy_failed",
        }
    }
}

/// One ranked action of a decision, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedView {
    pub action: String,
    pub score: f64,
    /// The probability the strategy chose it.
    pub propensity: f64,
}

/// A logged decision: every decision that involved a person of the
/// campaign (served by the strategy, or the control answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// `dec-<ms>-<random>`: what feedback names.
    pub id: String,
    pub campaign: String,
    /// The person's root subject.
    pub subject: String,
    pub at_ms: i64,
    pub channel: String,
    pub arm: Arm,
    /// The action the person gets (the fallback in control; none: no
    /// action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The index of `action` among the campaign's actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_index: Option<u32>,
    /// The probability the served action was chosen with (1 for control).
    pub propensity: f64,
    /// Every action the strategy ranked, best first (empty in control).
    pub ranked: Vec<RankedView>,
    pub explanation: String,
    pub strategy_version: String,
    /// The attributes of the moment, as given (for replays).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, ParamValue)>,
    /// What the campaign's shadow strategy would have done (not served).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowRecord>,
}

/// A shadow strategy's answer beside a live decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowRecord {
    pub strategy: String,
    /// The action it would have served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Its probability for each action, by name.
    pub distribution: BTreeMap<String, f64>,
}

/// What [`Strategies::decide`] answers.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionOutcome {
    /// A decision involving the person, logged.
    Logged(Box<DecisionRecord>),
    /// No decision for the person: the campaign's fallback action (if
    /// any), not logged.
    Fallback {
        reason: FallbackReason,
        action: Option<String>,
    },
}

/// A campaign's running counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    /// Decisions served by the strategy.
    pub served: u64,
    /// Control answers logged.
    pub control: u64,
}

impl Strategies {
    /// The campaign's decision for one person now (see the crate
    /// documentation for the order of the checks).
    pub fn decide(
        &self,
        tenant: &str,
        request: &DecideRequest,
    ) -> Result<DecisionOutcome, StrategyError> {
        let campaign = self.get(tenant, &request.campaign)?;
        let fallback = |reason| DecisionOutcome::Fallback {
            reason,
            action: campaign.fallback.clone(),
        };
        let now = self.vault().now_ms();
        if campaign.status != CampaignStatus::Running
            || campaign.starts_at_ms.is_some_and(|s| now < s)
            || campaign.ends_at_ms.is_some_and(|e| now >= e)
        {
            return Ok(fallback(FallbackReason::NotRunning));
        }
        if request.subject.is_empty() || request.subject.len() > 256 {
            return Err(StrategyError::Vault(
                tessera_vault::VaultError::UnknownSubject {
                    tenant: tenant.to_owned(),
                    subject: request.subject.chars().take(64).collect(),
                },
            ));
        }
        let subject = self.vault().resolve_subject(tenant, &request.subject)?;
        if !self
            .vault()
            .is_member(tenant, &campaign.segment, &subject)?
        {
            return Ok(fallback(FallbackReason::NotInSegment));
        }
        if !self
            .vault()
            .has_consent(tenant, &subject, &campaign.purpose)?
        {
            return Ok(fallback(FallbackReason::NoConsent));
        }
        let salt = hex::decode(&campaign.salt)
            .map_err(|e| StrategyError::Corrupt(format!("campaign salt: {e}")))?;
        let arm = Arm::from(tessera_stats::assign::arm(
            &salt,
            &subject,
            campaign.holdout,
        ));
        if arm == Arm::Control {
            let record = DecisionRecord {
                id: new_id("dec", now)?,
                campaign: campaign.name.clone(),
                subject,
                at_ms: now,
                channel: request.channel.clone(),
                arm,
                action_index: campaign
                    .fallback
                    .as_ref()
                    .and_then(|f| campaign.actions.iter().position(|a| a == f))
                    .map(|i| i as u32),
                action: campaign.fallback.clone(),
                propensity: 1.0,
                ranked: Vec::new(),
                explanation: format!(
                    "in the campaign's holdout ({:.0}% of its segment), which gets the \
                     control answer",
                    campaign.holdout * 100.0
                ),
                strategy_version: campaign.strategy_version.clone(),
                attributes: stored_params(&request.attributes),
                shadow: None,
            };
            self.log(tenant, &record)?;
            return Ok(DecisionOutcome::Logged(Box::new(record)));
        }
        if let Some(cap) = campaign.frequency_cap {
            let since = now.saturating_sub(i64::from(cap.days) * DAY_MS);
            let served = self
                .decisions_of(tenant, &campaign.name, &subject)?
                .iter()
                .filter(|d| d.arm == Arm::Treatment && d.at_ms >= since)
                .count();
            if served >= cap.max as usize {
                return Ok(fallback(FallbackReason::Capped));
            }
        }
        if let Some(budget) = campaign.budget
            && self.counts(tenant, &campaign.name)?.served >= budget
        {
            return Ok(fallback(FallbackReason::BudgetExhausted));
        }
        match self.ask_strategy(tenant, &campaign, &subject, request, now)? {
            Some(record) => {
                self.log(tenant, &record)?;
                Ok(DecisionOutcome::Logged(Box::new(record)))
            }
            None => Ok(fallback(FallbackReason::NoConsent)),
        }
    }

    /// The strategy's decision over a one-row view of the person (none: the
    /// person withdrew consent since it was checked).
    fn ask_strategy(
        &self,
        tenant: &str,
        campaign: &Campaign,
        subject: &str,
        request: &DecideRequest,
        now: i64,
    ) -> Result<Option<DecisionRecord>, StrategyError> {
        let params = campaign.field_values();
        let subjects = [subject.to_owned()];
        let (live, view) = self.registry().view(
            tenant,
            &campaign.strategy,
            &params,
            &campaign.purpose,
            Subjects::Ids(&subjects),
        )?;
        if view.batch.rows == 0 {
            return Ok(None);
        }
        let context = Context {
            channel: request.channel.clone(),
            at: now,
            attributes: request.attributes.clone(),
        };
        let decisions = match live.plugin.decide_with(
            &params,
            &view.batch,
            &context,
            &campaign.state_scope(&view),
        ) {
            Ok(called) => called.value,
            Err(error) => {
                tracing::warn!(
                    %tenant, campaign = %campaign.name, %error,
                    "the strategy failed to decide; the fallback was served"
                );
                return Ok(Some(self.failed(campaign, subject, request, now)?));
            }
        };
        let Some(decision) = decisions.into_iter().next() else {
            return Ok(Some(self.failed(campaign, subject, request, now)?));
        };
        let name = |index: u32| {
            campaign
                .actions
                .get(index as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{index}"))
        };
        let ranked: Vec<RankedView> = decision
            .ranked
            .iter()
            .map(|r| RankedView {
                action: name(r.action),
                score: r.score,
                propensity: r.propensity,
            })
            .collect();
        let chosen = decision.ranked.first();
        Ok(Some(DecisionRecord {
            id: new_id("dec", now)?,
            campaign: campaign.name.clone(),
            subject: subject.to_owned(),
            at_ms: now,
            channel: request.channel.clone(),
            arm: Arm::Treatment,
            action: chosen.map(|r| name(r.action)),
            action_index: chosen.map(|r| r.action),
            propensity: chosen.map_or(1.0, |r| r.propensity),
            ranked,
            explanation: decision.explanation,
            strategy_version: live.plugin.info().manifest.version.clone(),
            attributes: stored_params(&request.attributes),
            shadow: self.ask_shadow(tenant, campaign, &subjects, &context),
        }))
    }

    /// The shadow strategy's answer in the same moment, over a view of the
    /// person built for it (its own grant and plan). A shadow never changes
    /// what is served: its failures are logged and leave no answer.
    fn ask_shadow(
        &self,
        tenant: &str,
        campaign: &Campaign,
        subjects: &[String],
        context: &Context,
    ) -> Option<ShadowRecord> {
        let shadow = campaign.shadow.as_ref()?;
        let params = field_values(&shadow.params);
        let answer = self
            .registry()
            .view(
                tenant,
                &shadow.strategy,
                &params,
                &campaign.purpose,
                Subjects::Ids(subjects),
            )
            .map_err(|e| e.to_string())
            .and_then(|(live, view)| {
                if view.batch.rows == 0 {
                    return Err("the person is not in the shadow's view".to_owned());
                }
                let actions: Vec<String> = live
                    .plugin
                    .strategy_actions(&params)
                    .map_err(|e| e.to_string())?
                    .value
                    .into_iter()
                    .map(|a| a.name)
                    .collect();
                live.plugin
                    .decide_with(
                        &params,
                        &view.batch,
                        context,
                        &campaign.shadow_state_scope(&view),
                    )
                    .map(|called| (actions, called.value))
                    .map_err(|e| e.to_string())
            });
        match answer {
            Ok((actions, decisions)) => {
                let decision = decisions.into_iter().next()?;
                let name = |i: u32| actions.get(i as usize).cloned();
                let mut distribution = BTreeMap::new();
                for ranked in &decision.ranked {
                    if let Some(action) = name(ranked.action) {
                        *distribution.entry(action).or_insert(0.0) += ranked.propensity;
                    }
                }
                Some(ShadowRecord {
                    strategy: shadow.strategy.clone(),
                    action: decision.ranked.first().and_then(|r| name(r.action)),
                    distribution,
                })
            }
            Err(error) => {
                tracing::warn!(
                    %tenant, campaign = %campaign.name, shadow = %shadow.strategy, %error,
                    "the shadow strategy failed; the live decision stands"
                );
                None
            }
        }
    }

    /// A treatment decision the strategy could not make: the fallback,
    /// logged as served with certainty (the person is in the experiment).
    fn failed(
        &self,
        campaign: &Campaign,
        subject: &str,
        request: &DecideRequest,
        now: i64,
    ) -> Result<DecisionRecord, StrategyError> {
        Ok(DecisionRecord {
            id: new_id("dec", now)?,
            campaign: campaign.name.clone(),
            subject: subject.to_owned(),
            at_ms: now,
            channel: request.channel.clone(),
            arm: Arm::Treatment,
            action_index: campaign
                .fallback
                .as_ref()
                .and_then(|f| campaign.actions.iter().position(|a| a == f))
                .map(|i| i as u32),
            action: campaign.fallback.clone(),
            propensity: 1.0,
            ranked: Vec::new(),
            explanation: format!("{}: the fallback", FallbackReason::StrategyFailed.as_str()),
            strategy_version: campaign.strategy_version.clone(),
            attributes: stored_params(&request.attributes),
            shadow: None,
        })
    }

    /// Logs a decision and counts it.
    fn log(&self, tenant: &str, record: &DecisionRecord) -> Result<(), StrategyError> {
        let doc = decision_doc(&record.campaign, &record.subject, &record.id);
        let _counting = self.counters();
        let mut counts = self.counts(tenant, &record.campaign)?;
        match record.arm {
            Arm::Treatment => counts.served += 1,
            Arm::Control => counts.control += 1,
        }
        let vault = self.vault();
        vault.put_sealed_document(tenant, KIND_DECISION, &doc, &encode(record)?)?;
        vault.put_sealed_document(tenant, KIND_DECISION_INDEX, &record.id, doc.as_bytes())?;
        vault.put_sealed_document(tenant, KIND_COUNTS, &record.campaign, &encode(&counts)?)?;
        Ok(())
    }

    pub(crate) fn counts(&self, tenant: &str, campaign: &str) -> Result<Counts, StrategyError> {
        self.vault()
            .sealed_document(tenant, KIND_COUNTS, campaign)?
            .map(|plain| decode(&plain))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The logged decision `id`.
    pub fn decision(&self, tenant: &str, id: &str) -> Result<DecisionRecord, StrategyError> {
        let unknown = || StrategyError::UnknownDecision {
            id: id.chars().take(64).collect(),
        };
        // Ids are `dec-<13 digits>-<8 hex digits>`.
        if !id.starts_with("dec-") || id.len() > 64 {
            return Err(unknown());
        }
        let doc = self
            .vault()
            .sealed_document(tenant, KIND_DECISION_INDEX, id)?
            .ok_or_else(unknown)?;
        let doc = String::from_utf8(doc).map_err(|e| StrategyError::Corrupt(e.to_string()))?;
        let plain = self
            .vault()
            .sealed_document(tenant, KIND_DECISION, &doc)?
            .ok_or_else(unknown)?;
        decode(&plain)
    }

    /// The decisions logged for one person in one campaign, oldest first.
    pub fn decisions_of(
        &self,
        tenant: &str,
        campaign: &str,
        subject: &str,
    ) -> Result<Vec<DecisionRecord>, StrategyError> {
        self.decisions_under(tenant, &format!("{campaign}/{subject}/"))
    }

    /// Every decision logged for the campaign, by person.
    pub fn decisions(
        &self,
        tenant: &str,
        campaign: &str,
    ) -> Result<Vec<DecisionRecord>, StrategyError> {
        self.decisions_under(tenant, &format!("{campaign}/"))
    }

    fn decisions_under(
        &self,
        tenant: &str,
        prefix: &str,
    ) -> Result<Vec<DecisionRecord>, StrategyError> {
        const PAGE: usize = 1_000;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.vault().sealed_documents_under(
                tenant,
                KIND_DECISION,
                prefix,
                after.as_deref(),
                PAGE,
            )?;
            let full = page.len() >= PAGE;
            for (id, plain) in page {
                out.push(decode(&plain)?);
                after = Some(id);
            }
            if !full {
                return Ok(out);
            }
        }
    }
}

impl Strategies {
    /// Removes every decision and feedback that names one of `subjects`, in
    /// every campaign of the tenant (an erasure does it through the vault;
    /// the campaigns' counts and evaluations, which name no one, stay).
    /// Returns how many decisions went.
    pub fn forget(&self, tenant: &str, subjects: &[String]) -> Result<u64, StrategyError> {
        let vault = self.vault();
        let mut forgotten = 0;
        for campaign in self.list(tenant)? {
            for subject in subjects {
                let prefix = format!("{}/{subject}/", campaign.name);
                for decision in self.decisions_under(tenant, &prefix)? {
                    vault.delete_sealed_document(tenant, KIND_DECISION_INDEX, &decision.id)?;
                    forgotten += 1;
                }
                for kind in [KIND_DECISION, KIND_FEEDBACK] {
                    loop {
                        let page =
                            vault.sealed_documents_under(tenant, kind, &prefix, None, 1_000)?;
                        if page.is_empty() {
                            break;
                        }
                        for (id, _) in page {
                            vault.delete_sealed_document(tenant, kind, &id)?;
                        }
                    }
                }
            }
        }
        Ok(forgotten)
    }
}

/// `<campaign>/<subject>/<decision id>`.
pub(crate) fn decision_doc(campaign: &str, subject: &str, id: &str) -> String {
    format!("{campaign}/{subject}/{id}")
}

//! Decisions: what a campaign answers for one person, and the log of it.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use tessera_plugins::{ParamValue, Subjects, field_values, stored_params};
use tessera_runtime::api::strategies::{Context, Decision};
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

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Treatment => "treatment",
            Arm::Control => "control",
        }
    }
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

/// The moment a decision is made in: where it is shown, what else the
/// strategy may know of it, and when.
pub(crate) struct Moment<'a> {
    pub channel: &'a str,
    pub attributes: &'a [FieldValue],
    pub now: i64,
}

impl Moment<'_> {
    fn context(&self) -> Context {
        Context {
            channel: self.channel.to_owned(),
            at: self.now,
            attributes: self.attributes.to_vec(),
        }
    }
}

/// Where the holdout, the cap and the budget put a person who is in the
/// segment and consents (checks 4 and 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// In the holdout: the control answer, logged.
    Control,
    /// The strategy decides.
    Treatment,
    /// Capped, or the budget is spent: no decision, nothing logged.
    Skipped(FallbackReason),
}

/// What the strategy answered for people in treatment.
#[derive(Default)]
pub(crate) struct Asked {
    /// One decision per person still in the view, in the view's order
    /// (someone who withdrew consent since they were checked has none).
    pub records: Vec<DecisionRecord>,
    /// The call failed: every record is the fallback, logged as
    /// `strategy_failed`.
    pub failed: bool,
}

impl Campaign {
    /// Whether the campaign decides at `now`: it runs, within its schedule.
    pub(crate) fn runs_at(&self, now: i64) -> bool {
        self.status == CampaignStatus::Running
            && self.starts_at_ms.is_none_or(|s| now >= s)
            && self.ends_at_ms.is_none_or(|e| now < e)
    }

    /// The holdout salt as bytes.
    pub(crate) fn salt_bytes(&self) -> Result<Vec<u8>, StrategyError> {
        hex::decode(&self.salt).map_err(|e| StrategyError::Corrupt(format!("campaign salt: {e}")))
    }

    /// A logged answer that is the campaign's fallback, served with
    /// certainty (the person is in the experiment).
    fn fallback_record(
        &self,
        subject: &str,
        moment: &Moment<'_>,
        arm: Arm,
        explanation: String,
    ) -> Result<DecisionRecord, StrategyError> {
        Ok(DecisionRecord {
            id: new_id("dec", moment.now)?,
            campaign: self.name.clone(),
            subject: subject.to_owned(),
            at_ms: moment.now,
            channel: moment.channel.to_owned(),
            arm,
            action_index: self
                .fallback
                .as_ref()
                .and_then(|f| self.actions.iter().position(|a| a == f))
                .map(|i| i as u32),
            action: self.fallback.clone(),
            propensity: 1.0,
            ranked: Vec::new(),
            explanation,
            strategy_version: self.strategy_version.clone(),
            attributes: stored_params(moment.attributes),
            shadow: None,
        })
    }

    /// The control answer for a person in the holdout.
    pub(crate) fn control_record(
        &self,
        subject: &str,
        moment: &Moment<'_>,
    ) -> Result<DecisionRecord, StrategyError> {
        self.fallback_record(
            subject,
            moment,
            Arm::Control,
            format!(
                "in the campaign's holdout ({:.0}% of its segment), which gets the control answer",
                self.holdout * 100.0
            ),
        )
    }
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
        if !campaign.runs_at(now) {
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
        let moment = Moment {
            channel: &request.channel,
            attributes: &request.attributes,
            now,
        };
        let salt = campaign.salt_bytes()?;
        let record = match self.placement(tenant, &campaign, &salt, &subject, now, 0)? {
            Placement::Skipped(reason) => return Ok(fallback(reason)),
            Placement::Control => campaign.control_record(&subject, &moment)?,
            Placement::Treatment => {
                let asked = self.ask_strategy(tenant, &campaign, &[subject], &moment)?;
                match asked.records.into_iter().next() {
                    Some(record) => record,
                    // The person withdrew consent since it was checked.
                    None => return Ok(fallback(FallbackReason::NoConsent)),
                }
            }
        };
        self.log(tenant, &record)?;
        Ok(DecisionOutcome::Logged(Box::new(record)))
    }

    /// Checks 4 and 5 for a person in the segment who consents: the
    /// holdout arm by the campaign's salt; in treatment, the frequency cap
    /// and the budget, which `in_flight` decisions admitted but not logged
    /// yet count against.
    pub(crate) fn placement(
        &self,
        tenant: &str,
        campaign: &Campaign,
        salt: &[u8],
        subject: &str,
        now: i64,
        in_flight: u64,
    ) -> Result<Placement, StrategyError> {
        let arm = Arm::from(tessera_stats::assign::arm(salt, subject, campaign.holdout));
        if arm == Arm::Control {
            return Ok(Placement::Control);
        }
        if let Some(cap) = campaign.frequency_cap {
            let since = now.saturating_sub(i64::from(cap.days) * DAY_MS);
            let served =
                self.served_since(tenant, &campaign.name, subject, since, cap.max as usize)?;
            if served >= cap.max as usize {
                return Ok(Placement::Skipped(FallbackReason::Capped));
            }
        }
        if let Some(budget) = campaign.budget
            && self.counts(tenant, &campaign.name)?.served + in_flight >= budget
        {
            return Ok(Placement::Skipped(FallbackReason::BudgetExhausted));
        }
        Ok(Placement::Treatment)
    }

    /// The strategy's decisions for people in treatment (root subjects),
    /// in one call over a view of all of them: one decision per row, in
    /// row order, each row a person of the view. A call that fails (or
    /// answers for other than every row) serves every person the
    /// fallback. Nothing is logged here.
    pub(crate) fn ask_strategy(
        &self,
        tenant: &str,
        campaign: &Campaign,
        subjects: &[String],
        moment: &Moment<'_>,
    ) -> Result<Asked, StrategyError> {
        if subjects.is_empty() {
            return Ok(Asked::default());
        }
        let params = campaign.field_values();
        let (live, view) = self.registry().view(
            tenant,
            &campaign.strategy,
            &params,
            &campaign.purpose,
            Subjects::Ids(subjects),
        )?;
        let rows = view.subjects();
        if rows.is_empty() {
            return Ok(Asked::default());
        }
        let context = moment.context();
        let failure = match live.plugin.decide_with(
            &params,
            &view.batch,
            &context,
            &campaign.state_scope(&view),
        ) {
            Ok(called) if called.value.len() == rows.len() => {
                let mut shadows = self.ask_shadow(tenant, campaign, rows, &context);
                let version = &live.plugin.info().manifest.version;
                let records = rows
                    .iter()
                    .zip(called.value)
                    .map(|(subject, decision)| {
                        let mut record =
                            strategy_record(campaign, subject, moment, decision, version)?;
                        record.shadow = shadows.remove(subject);
                        Ok(record)
                    })
                    .collect::<Result<_, StrategyError>>()?;
                return Ok(Asked {
                    records,
                    failed: false,
                });
            }
            Ok(called) => format!(
                "it answered {} decisions for {} people",
                called.value.len(),
                rows.len()
            ),
            Err(error) => error.to_string(),
        };
        tracing::warn!(
            %tenant, campaign = %campaign.name, people = rows.len(), error = %failure,
            "the strategy failed to decide; the fallback was served"
        );
        Ok(Asked {
            records: rows
                .iter()
                .map(|subject| {
                    let failed = FallbackReason::StrategyFailed.as_str();
                    let explanation = format!("{failed}: the fallback");
                    campaign.fallback_record(subject, moment, Arm::Treatment, explanation)
                })
                .collect::<Result<_, _>>()?,
            failed: true,
        })
    }

    /// The shadow strategy's answers in the same moment, by subject, over a
    /// view of the people built for it (its own grant and plan). A shadow
    /// never changes what is served: its failures are logged and leave no
    /// answer.
    fn ask_shadow(
        &self,
        tenant: &str,
        campaign: &Campaign,
        subjects: &[String],
        context: &Context,
    ) -> HashMap<String, ShadowRecord> {
        let Some(shadow) = campaign.shadow.as_ref() else {
            return HashMap::new();
        };
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
                    return Err("the people are not in the shadow's view".to_owned());
                }
                let actions: Vec<String> = live
                    .plugin
                    .strategy_actions(&params)
                    .map_err(|e| e.to_string())?
                    .value
                    .into_iter()
                    .map(|a| a.name)
                    .collect();
                let decisions = live
                    .plugin
                    .decide_with(
                        &params,
                        &view.batch,
                        context,
                        &campaign.shadow_state_scope(&view),
                    )
                    .map_err(|e| e.to_string())?
                    .value;
                if decisions.len() != view.subjects().len() {
                    return Err(format!(
                        "it answered {} decisions for {} people",
                        decisions.len(),
                        view.subjects().len()
                    ));
                }
                Ok((actions, view.subjects().to_vec(), decisions))
            });
        match answer {
            Ok((actions, rows, decisions)) => {
                let name = |i: u32| actions.get(i as usize).cloned();
                rows.into_iter()
                    .zip(decisions)
                    .map(|(subject, decision)| {
                        let mut distribution = BTreeMap::new();
                        for ranked in &decision.ranked {
                            if let Some(action) = name(ranked.action) {
                                *distribution.entry(action).or_insert(0.0) += ranked.propensity;
                            }
                        }
                        let record = ShadowRecord {
                            strategy: shadow.strategy.clone(),
                            action: decision.ranked.first().and_then(|r| name(r.action)),
                            distribution,
                        };
                        (subject, record)
                    })
                    .collect()
            }
            Err(error) => {
                tracing::warn!(
                    %tenant, campaign = %campaign.name, shadow = %shadow.strategy, %error,
                    "the shadow strategy failed; the live decisions stand"
                );
                HashMap::new()
            }
        }
    }

    /// Logs a decision and counts it.
    pub(crate) fn log(&self, tenant: &str, record: &DecisionRecord) -> Result<(), StrategyError> {
        let doc = decision_doc(&record.campaign, &record.subject, &record.id);
        let _counting = self.counters();
        let mut counts = self.counts(tenant, &record.campaign)?;
        match record.arm {
            Arm::Treatment => counts.served += 1,
            Arm::Control => counts.control += 1,
        }
        // In this order, not all at once (a multi-key write costs the
        // embedded store two log writes): the store recovers a prefix of
        // them, so after a crash the count is not behind the decisions and
        // no index entry points to a missing decision (`docs/strategies.md`,
        // "A crash while logging"). `forget` takes the same lock.
        self.vault().put_sealed_documents_in_order(
            tenant,
            &[
                (KIND_COUNTS, &record.campaign, &encode(&counts)?),
                (KIND_DECISION, &doc, &encode(record)?),
                (KIND_DECISION_INDEX, &record.id, doc.as_bytes()),
            ],
        )?;
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

    /// How many decisions the strategy served the person in the campaign
    /// since `since_ms`, counted up to `max`. Decision ids are ordered by
    /// time, so only the decisions logged since then are read.
    fn served_since(
        &self,
        tenant: &str,
        campaign: &str,
        subject: &str,
        since_ms: i64,
        max: usize,
    ) -> Result<usize, StrategyError> {
        /// What the count needs of a logged decision.
        #[derive(Deserialize)]
        struct Served {
            arm: Arm,
            at_ms: i64,
        }
        let prefix = format!("{campaign}/{subject}/");
        // `dec-<ms>` sorts before every id of that millisecond.
        let start = format!("{prefix}dec-{:013}", since_ms.max(0));
        let mut served = 0;
        self.visit_documents_under(tenant, KIND_DECISION, &prefix, Some(start), 64, |plain| {
            let decision: Served = decode(plain)?;
            if decision.arm == Arm::Treatment && decision.at_ms >= since_ms {
                served += 1;
            }
            Ok(if served >= max {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        Ok(served)
    }

    fn decisions_under(
        &self,
        tenant: &str,
        prefix: &str,
    ) -> Result<Vec<DecisionRecord>, StrategyError> {
        self.documents_under(tenant, KIND_DECISION, prefix)
    }

    /// Every sealed document of `kind` whose id starts with `prefix`,
    /// decoded, by id.
    pub(crate) fn documents_under<T: serde::de::DeserializeOwned>(
        &self,
        tenant: &str,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<T>, StrategyError> {
        let mut out = Vec::new();
        self.visit_documents_under(tenant, kind, prefix, None, 1_000, |plain| {
            out.push(decode(plain)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// Opens the sealed documents of `kind` whose ids start with `prefix`,
    /// by id, after the id `after` (from the first when absent), `page` at
    /// a time, and hands each to `visit` until it breaks.
    fn visit_documents_under(
        &self,
        tenant: &str,
        kind: &str,
        prefix: &str,
        mut after: Option<String>,
        page: usize,
        mut visit: impl FnMut(&[u8]) -> Result<ControlFlow<()>, StrategyError>,
    ) -> Result<(), StrategyError> {
        loop {
            let documents = self.vault().sealed_documents_under(
                tenant,
                kind,
                prefix,
                after.as_deref(),
                page,
            )?;
            let full = documents.len() == page;
            for (_, plain) in &documents {
                if visit(plain)?.is_break() {
                    return Ok(());
                }
            }
            match documents.into_iter().last() {
                Some((id, _)) if full => after = Some(id),
                _ => return Ok(()),
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
                // `log` writes a decision and its index entry under this
                // lock, one after the other: holding it here, no index
                // entry is written after its decision was removed.
                let _counting = self.counters();
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

/// A logged decision from the strategy's answer for one person.
fn strategy_record(
    campaign: &Campaign,
    subject: &str,
    moment: &Moment<'_>,
    decision: Decision,
    version: &str,
) -> Result<DecisionRecord, StrategyError> {
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
    Ok(DecisionRecord {
        id: new_id("dec", moment.now)?,
        campaign: campaign.name.clone(),
        subject: subject.to_owned(),
        at_ms: moment.now,
        channel: moment.channel.to_owned(),
        arm: Arm::Treatment,
        action: chosen.map(|r| name(r.action)),
        action_index: chosen.map(|r| r.action),
        propensity: chosen.map_or(1.0, |r| r.propensity),
        ranked,
        explanation: decision.explanation,
        strategy_version: version.to_owned(),
        attributes: stored_params(moment.attributes),
        shadow: None,
    })
}

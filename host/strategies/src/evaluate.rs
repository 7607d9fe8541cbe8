//! A campaign's effect: its treatment arm against its holdout, on the
//! campaign's goal, read from the people's own events.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tessera_stats::uplift::{Experiment, UpliftReport};
use tessera_vault::{EventReads, Selection};

use crate::FeedbackKind;
use crate::campaign::GoalSource;
use crate::decide::Arm;
use crate::store::{decode, encode};
use crate::{Strategies, StrategyError};

/// A campaign's evaluation (id: its name), kept as the strategy's track
/// record.
const KIND_EVALUATION: &str = "campaign_evaluation";
const DAY_MS: i64 = 86_400_000;
/// People per read of their events.
const PAGE: usize = 256;
/// The group of people in none of the segments a breakdown names.
pub const OTHERS: &str = "(others)";

/// Treatment against control for one group of people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupEvaluation {
    /// A segment's name, or [`OTHERS`].
    pub group: String,
    /// None when the group is too small to compare (fewer than two people in
    /// an arm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<UpliftReport>,
    pub treatment_subjects: u64,
    pub control_subjects: u64,
}

/// What a campaign did, as far as its goal tells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub campaign: String,
    pub strategy: String,
    pub strategy_version: String,
    pub segment: String,
    pub computed_at_ms: i64,
    /// The goal's event and window, as evaluated.
    pub goal_event: String,
    pub window_days: u32,
    pub holdout: f64,
    /// People with a logged decision, by arm (their first decision's).
    pub treatment_subjects: u64,
    pub control_subjects: u64,
    /// People left out: they no longer consent to the purpose, or were
    /// erased.
    pub without_consent: u64,
    /// People whose goal window has not ended yet are included with what
    /// happened so far: how many.
    pub window_open: u64,
    /// None when an arm has fewer than two people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<UpliftReport>,
    /// Per segment of the breakdown asked for, in its order, then
    /// [`OTHERS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_segment: Vec<GroupEvaluation>,
}

/// What one person did within the goal's window.
struct Outcome {
    converted: bool,
    revenue: f64,
    /// The CUPED covariate: the same measure in the window before.
    pre: Option<f64>,
}

/// One person of the experiment.
struct Assigned {
    arm: Arm,
    first_ms: i64,
}

impl Strategies {
    /// Evaluates the campaign now: for each person with a logged decision,
    /// in the arm of their first decision, whether they had a goal event
    /// within the goal's window after it (conversion), the goal values of
    /// those events (revenue), and as the pre-period covariate for CUPED the
    /// goal values (or the count of goal events, without a value property)
    /// in the same window before it. `by` names segments for a breakdown
    /// (by membership now; a person counts in the first that holds them).
    /// The evaluation is kept as the campaign's latest.
    pub fn evaluate(
        &self,
        tenant: &str,
        name: &str,
        by: &[String],
    ) -> Result<Evaluation, StrategyError> {
        let campaign = self.get(tenant, name)?;
        let mut assigned: BTreeMap<String, Assigned> = BTreeMap::new();
        for decision in self.decisions(tenant, name)? {
            assigned
                .entry(decision.subject.clone())
                .and_modify(|a| {
                    if decision.at_ms < a.first_ms {
                        *a = Assigned {
                            arm: decision.arm,
                            first_ms: decision.at_ms,
                        };
                    }
                })
                .or_insert(Assigned {
                    arm: decision.arm,
                    first_ms: decision.at_ms,
                });
        }
        let window = i64::from(campaign.goal.window_days) * DAY_MS;
        let now = self.vault().now_ms();
        let outcomes = match campaign.goal.source {
            GoalSource::Events => self.outcomes_from_events(tenant, &campaign, &assigned, now)?,
            GoalSource::Feedback => self.outcomes_from_feedback(tenant, &campaign, &assigned)?,
        };
        let mut overall = Experiment::new();
        let mut groups: tessera_stats::uplift::Segments<String> =
            tessera_stats::uplift::Segments::new();
        let counted = outcomes.len() as u64;
        let mut window_open = 0u64;
        for (subject, outcome) in outcomes {
            let Some(a) = assigned.get(&subject) else {
                continue;
            };
            if a.first_ms + window > now {
                window_open += 1;
            }
            let arm = match a.arm {
                Arm::Treatment => tessera_stats::assign::Arm::Treatment,
                Arm::Control => tessera_stats::assign::Arm::Control,
            };
            overall.push(arm, outcome.converted, outcome.revenue, outcome.pre)?;
            if !by.is_empty() {
                let group = self
                    .group_of(tenant, by, &subject)?
                    .unwrap_or_else(|| OTHERS.to_owned());
                groups.push(group, arm, outcome.converted, outcome.revenue, outcome.pre)?;
            }
        }
        let arms = |e: &Experiment| (e.treatment.subjects(), e.control.subjects());
        let (treatment_subjects, control_subjects) = arms(&overall);
        let report = comparable(&overall)
            .then(|| overall.evaluate(campaign.holdout))
            .transpose()?;
        let mut by_segment = Vec::new();
        for group in by.iter().cloned().chain([OTHERS.to_owned()]) {
            let Some(experiment) = groups.get(&group) else {
                continue;
            };
            let (t, c) = arms(experiment);
            by_segment.push(GroupEvaluation {
                report: comparable(experiment)
                    .then(|| experiment.evaluate(campaign.holdout))
                    .transpose()?,
                group,
                treatment_subjects: t,
                control_subjects: c,
            });
        }
        let evaluation = Evaluation {
            campaign: campaign.name.clone(),
            strategy: campaign.strategy.clone(),
            strategy_version: campaign.strategy_version.clone(),
            segment: campaign.segment.clone(),
            computed_at_ms: now,
            goal_event: campaign.goal.event.clone(),
            window_days: campaign.goal.window_days,
            holdout: campaign.holdout,
            treatment_subjects,
            control_subjects,
            without_consent: assigned.len() as u64 - counted,
            window_open,
            report,
            by_segment,
        };
        self.vault()
            .put_sealed_document(tenant, KIND_EVALUATION, name, &encode(&evaluation)?)?;
        Ok(evaluation)
    }

    /// Each consenting person's outcome from their goal events: within the
    /// window after their first decision, and (the CUPED covariate) the
    /// same window before it.
    fn outcomes_from_events(
        &self,
        tenant: &str,
        campaign: &crate::Campaign,
        assigned: &BTreeMap<String, Assigned>,
        now: i64,
    ) -> Result<Vec<(String, Outcome)>, StrategyError> {
        let window = i64::from(campaign.goal.window_days) * DAY_MS;
        let since = assigned
            .values()
            .map(|a| a.first_ms)
            .min()
            .unwrap_or(now)
            .saturating_sub(window);
        let reads = EventReads {
            types: BTreeSet::from([campaign.goal.event.clone()]),
            since_ms: since,
        };
        let subjects: Vec<String> = assigned.keys().cloned().collect();
        let mut out = Vec::new();
        for page in subjects.chunks(PAGE) {
            let people = self.vault().consenting_people(
                tenant,
                Selection::Subjects(page),
                &campaign.purpose,
                &reads,
            )?;
            for person in people.people {
                let Some(a) = assigned.get(&person.person.subject) else {
                    continue;
                };
                let mut outcome = Outcome {
                    converted: false,
                    revenue: 0.0,
                    pre: Some(0.0),
                };
                for event in &person.events {
                    let value = match &campaign.goal.value {
                        Some(property) => event
                            .properties
                            .get(property)
                            .and_then(serde_json::Value::as_f64)
                            .unwrap_or(0.0),
                        None => 1.0,
                    };
                    if event.at_ms >= a.first_ms && event.at_ms < a.first_ms + window {
                        outcome.converted = true;
                        outcome.revenue += value;
                    } else if event.at_ms < a.first_ms && event.at_ms >= a.first_ms - window {
                        outcome.pre = outcome.pre.map(|p| p + value);
                    }
                }
                out.push((person.person.subject, outcome));
            }
        }
        Ok(out)
    }

    /// Each consenting person's outcome from the feedback on their
    /// decisions within the window after their first (no covariate).
    fn outcomes_from_feedback(
        &self,
        tenant: &str,
        campaign: &crate::Campaign,
        assigned: &BTreeMap<String, Assigned>,
    ) -> Result<Vec<(String, Outcome)>, StrategyError> {
        let window = i64::from(campaign.goal.window_days) * DAY_MS;
        let mut out = Vec::new();
        for (subject, a) in assigned {
            match self.vault().has_consent(tenant, subject, &campaign.purpose) {
                Ok(true) => {}
                Ok(false)
                | Err(
                    tessera_vault::VaultError::SubjectErased { .. }
                    | tessera_vault::VaultError::UnknownSubject { .. },
                ) => continue,
                Err(error) => return Err(error.into()),
            }
            let mut outcome = Outcome {
                converted: false,
                revenue: 0.0,
                pre: None,
            };
            for feedback in self.feedback_of(tenant, &campaign.name, subject)? {
                if feedback.at_ms < a.first_ms || feedback.at_ms >= a.first_ms + window {
                    continue;
                }
                match feedback.kind {
                    FeedbackKind::Conversion => outcome.converted = true,
                    FeedbackKind::Revenue => outcome.revenue += feedback.reward,
                    FeedbackKind::Impression | FeedbackKind::Click => {}
                }
            }
            out.push((subject.clone(), outcome));
        }
        Ok(out)
    }

    /// The campaign's latest evaluation, if it was evaluated.
    pub fn last_evaluation(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Evaluation>, StrategyError> {
        self.vault()
            .sealed_document(tenant, KIND_EVALUATION, name)?
            .map(|plain| decode(&plain))
            .transpose()
    }

    /// The first of `segments` that `subject` is a member of now.
    fn group_of(
        &self,
        tenant: &str,
        segments: &[String],
        subject: &str,
    ) -> Result<Option<String>, StrategyError> {
        for segment in segments {
            if self.vault().is_member(tenant, segment, subject)? {
                return Ok(Some(segment.clone()));
            }
        }
        Ok(None)
    }
}

/// Whether both arms have the two people a comparison needs.
fn comparable(experiment: &Experiment) -> bool {
    experiment.treatment.subjects() >= 2 && experiment.control.subjects() >= 2
}

//! Which strategy to run on a segment next, and why: the catalog ranked by
//! what each strategy would earn on this segment's own logged decisions
//! (replayed off-policy) and by how its campaigns did on similar segments.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tessera_plugins::stored_params;
use tessera_runtime::PluginKind;

use crate::campaign::{Campaign, CampaignStatus, Goal};
use crate::{Strategies, StrategyError};

/// The most members of a segment compared for similarity.
const SIMILARITY_SAMPLE: usize = 5_000;

/// One strategy's rank for a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub strategy: String,
    /// What it is ranked by: the estimated conversion rate per decision
    /// (`off_policy`), else the similarity-weighted uplift of its past
    /// campaigns (`track_record`); `none` without evidence.
    pub basis: String,
    /// The ranking score: the estimate itself for `off_policy`, the
    /// weighted lower bound of the absolute uplift for `track_record`.
    pub score: f64,
    /// What the ranking rests on, in words.
    pub reasons: Vec<String>,
}

impl Strategies {
    /// The tenant's running strategies, best first for `segment`:
    ///
    /// 1. those with an off-policy estimate over decisions logged on this
    ///    segment (by any campaign), by the lower end of its SNIPS
    ///    interval (a strategy is not ranked up by noise);
    /// 2. then those with evaluated campaigns, by the lower end of their
    ///    absolute uplift interval, weighted by how much the campaign's
    ///    segment overlaps this one (Jaccard similarity of their members);
    /// 3. then the rest, by name.
    pub fn recommend(
        &self,
        tenant: &str,
        segment: &str,
    ) -> Result<Vec<Recommendation>, StrategyError> {
        if !tessera_plugins::views::segment_exists(self.vault(), tenant, segment)? {
            return Err(StrategyError::UnknownSegment {
                name: segment.to_owned(),
            });
        }
        let campaigns = self.list(tenant)?;
        let members = self.sample(tenant, segment)?;
        // The campaign whose logs on this segment are replayed: the one
        // that started last with strategy decisions.
        let mut logged: Vec<&Campaign> = campaigns
            .iter()
            .filter(|c| c.segment == segment && c.started_at_ms().is_some())
            .collect();
        logged.sort_by_key(|c| std::cmp::Reverse(c.started_at_ms()));
        let mut logs_from = None;
        for campaign in logged {
            if self.counts(tenant, &campaign.name)?.served > 1 {
                logs_from = Some(campaign);
                break;
            }
        }
        let mut out = Vec::new();
        for entry in self.registry().entries(tenant)? {
            let Some(live) = entry.live else { continue };
            let info = live.plugin.info();
            if info.kind != PluginKind::Strategy {
                continue;
            }
            let mut reasons = Vec::new();
            let mut off_policy = None;
            if let Some(source) = logs_from
                && let Some(target) = self.trial(tenant, &entry.name, source)?
            {
                match self.replay(tenant, &target, &source.name) {
                    Ok(view) => {
                        let snips = view.estimate.snips;
                        reasons.push(format!(
                            "replayed over {} decisions campaign {} logged on {segment}: an \
                             estimated conversion rate of {:.1}% per decision (95% interval \
                             {:.1}% to {:.1}%; effective sample size {:.0}), against {:.1}% \
                             for the strategy that made them",
                            view.rows,
                            source.name,
                            snips.value * 100.0,
                            snips.lower * 100.0,
                            snips.upper * 100.0,
                            view.estimate.effective_sample_size,
                            view.logged_value * 100.0
                        ));
                        off_policy = Some(snips.lower);
                    }
                    Err(StrategyError::Invalid { reason, .. }) => reasons.push(reason),
                    Err(error) => return Err(error),
                }
            }
            let mut track = None;
            for campaign in campaigns.iter().filter(|c| c.strategy == entry.name) {
                let Some(evaluation) = self.last_evaluation(tenant, &campaign.name)? else {
                    continue;
                };
                let Some(report) = &evaluation.report else {
                    continue;
                };
                let other = self.sample(tenant, &campaign.segment)?;
                let similarity = jaccard(&members, &other);
                let uplift = report.absolute_uplift;
                reasons.push(format!(
                    "campaign {} on {} ({:.0}% similar to {segment} by members): {:+.1} points \
                     of conversion (95% interval {:+.1} to {:+.1}) over {} people",
                    campaign.name,
                    campaign.segment,
                    similarity * 100.0,
                    uplift.value * 100.0,
                    uplift.lower * 100.0,
                    uplift.upper * 100.0,
                    evaluation.treatment_subjects + evaluation.control_subjects
                ));
                let weighted = similarity * uplift.lower;
                if similarity > 0.0 && track.is_none_or(|t| weighted > t) {
                    track = Some(weighted);
                }
            }
            let (basis, score) = match (off_policy, track) {
                (Some(score), _) => ("off_policy", score),
                (None, Some(score)) => ("track_record", score),
                (None, None) => {
                    reasons.push(format!(
                        "no evidence yet: no decisions logged on {segment} to replay it over, \
                         and no evaluated campaign on a similar segment"
                    ));
                    ("none", 0.0)
                }
            };
            out.push(Recommendation {
                strategy: entry.name.clone(),
                basis: basis.to_owned(),
                score,
                reasons,
            });
        }
        let rank = |r: &Recommendation| match r.basis.as_str() {
            "off_policy" => 0,
            "track_record" => 1,
            _ => 2,
        };
        out.sort_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then(b.score.total_cmp(&a.score))
                .then(a.strategy.cmp(&b.strategy))
        });
        Ok(out)
    }

    /// A campaign of `strategy` with its default parameters on the
    /// segment and purpose of `source`, never saved: the target of a
    /// replay. None when the strategy is not granted that purpose.
    fn trial(
        &self,
        tenant: &str,
        strategy: &str,
        source: &Campaign,
    ) -> Result<Option<Campaign>, StrategyError> {
        let live = self.registry().callable(tenant, strategy)?;
        if !live.granted.purposes.contains(&source.purpose) {
            return Ok(None);
        }
        let Ok(params) = live.plugin.validate(&[]) else {
            return Ok(None);
        };
        let info = live.plugin.info();
        Ok(Some(Campaign {
            name: format!("{strategy} (defaults)"),
            strategy: strategy.to_owned(),
            strategy_version: info.manifest.version.clone(),
            params: stored_params(&params),
            actions: match live.plugin.strategy_actions(&params) {
                Ok(called) => called.value.into_iter().map(|a| a.name).collect(),
                Err(_) => return Ok(None),
            },
            segment: source.segment.clone(),
            purpose: source.purpose.clone(),
            holdout: 0.0,
            salt: String::new(),
            frequency_cap: None,
            budget: None,
            starts_at_ms: None,
            ends_at_ms: None,
            goal: Goal {
                event: source.goal.event.clone(),
                value: source.goal.value.clone(),
                window_days: source.goal.window_days,
                source: source.goal.source,
            },
            fallback: None,
            shadow: None,
            description: String::new(),
            status: CampaignStatus::Draft,
            simulation: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            history: Vec::new(),
        }))
    }

    /// Up to [`SIMILARITY_SAMPLE`] members of a segment.
    fn sample(&self, tenant: &str, segment: &str) -> Result<BTreeSet<String>, StrategyError> {
        Ok(self
            .vault()
            .segment_members(tenant, segment, None, SIMILARITY_SAMPLE)?
            .into_iter()
            .map(|m| m.subject)
            .collect())
    }
}

/// |a ∩ b| / |a ∪ b| (0 for two empty sets).
fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

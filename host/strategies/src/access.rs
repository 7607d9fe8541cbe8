//! What campaigns decided about a person, for their right of access: the
//! vault gathers it into the person's view and exports
//! ([`tessera_vault::AccessListener`]).

use tessera_vault::CampaignDecision;

use crate::decide::{Arm, DecisionRecord};
use crate::{Strategies, StrategyError};

impl Strategies {
    /// Every decision logged about `subjects` (a person's root subject and
    /// those merged into it), in every campaign of the tenant, oldest
    /// first.
    pub fn decisions_about(
        &self,
        tenant: &str,
        subjects: &[String],
    ) -> Result<Vec<DecisionRecord>, StrategyError> {
        let mut found = Vec::new();
        for campaign in self.list(tenant)? {
            for subject in subjects {
                found.extend(self.decisions_of(tenant, &campaign.name, subject)?);
            }
        }
        found.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        Ok(found)
    }
}

/// A logged decision as the person reads it: what they were shown and
/// why, without the strategy's propensities, its ranking, the shadow's
/// answer or the attributes of the moment.
pub(crate) fn as_seen(record: DecisionRecord) -> CampaignDecision {
    let failed = record.arm == Arm::Treatment && record.ranked.is_empty();
    CampaignDecision {
        explanation: if failed {
            "the campaign's strategy could not decide, so you got the campaign's default".into()
        } else {
            record.explanation
        },
        id: record.id,
        campaign: record.campaign,
        at_ms: record.at_ms,
        channel: record.channel,
        control_group: record.arm == Arm::Control,
        shown: record.action,
    }
}

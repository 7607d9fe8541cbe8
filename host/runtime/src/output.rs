//! The host's decoding of plugin outputs: how large a result is (checked
//! against the output cap) and whether it keeps the contract (one entry per
//! row, known action indices, propensities that are probabilities).

use crate::api::records::Modes;
use crate::api::records::{DeliveryReport, Page, ParseOutput, Record};
use crate::api::segments::Memberships;
use crate::api::strategies::{ActionSpec, Decision, Forecast};
use crate::api::types::{FieldValue, Manifest, TextColumn, Value};

/// Approximate bytes a lifted value occupies: what the host had to copy out.
pub(crate) trait OutputSize {
    fn output_size(&self) -> u64;
}

impl OutputSize for () {
    fn output_size(&self) -> u64 {
        0
    }
}

impl OutputSize for String {
    fn output_size(&self) -> u64 {
        self.len() as u64 + 8
    }
}

impl<T: OutputSize> OutputSize for Vec<T> {
    fn output_size(&self) -> u64 {
        8 + self.iter().map(OutputSize::output_size).sum::<u64>()
    }
}

impl<T: OutputSize> OutputSize for Option<T> {
    fn output_size(&self) -> u64 {
        1 + self.as_ref().map_or(0, OutputSize::output_size)
    }
}

impl OutputSize for Value {
    fn output_size(&self) -> u64 {
        9 + match self {
            Value::Text(s) => s.output_size(),
            Value::TextList(l) => l.output_size(),
            _ => 0,
        }
    }
}

impl OutputSize for FieldValue {
    fn output_size(&self) -> u64 {
        self.name.output_size() + self.value.output_size()
    }
}

impl OutputSize for TextColumn {
    fn output_size(&self) -> u64 {
        self.dictionary.output_size() + 4 * self.codes.len() as u64
    }
}

impl OutputSize for Memberships {
    fn output_size(&self) -> u64 {
        self.member.len() as u64 + 8 * self.scores.len() as u64 + self.tiers.output_size()
    }
}

impl OutputSize for Decision {
    fn output_size(&self) -> u64 {
        24 * self.ranked.len() as u64 + self.explanation.output_size()
    }
}

impl OutputSize for Forecast {
    fn output_size(&self) -> u64 {
        24 * self.actions.len() as u64 + 8 + self.notes.output_size()
    }
}

impl OutputSize for Record {
    fn output_size(&self) -> u64 {
        let identities = |ids: &Vec<crate::api::records::Identity>| -> u64 {
            ids.iter()
                .map(|i| i.kind.output_size() + i.value.output_size())
                .sum()
        };
        match self {
            Record::Event(e) => {
                e.source_id.output_size()
                    + e.event_type.output_size()
                    + 8
                    + identities(&e.identities)
                    + e.properties.output_size()
            }
            Record::TraitUpdate(t) => {
                t.source_id.output_size() + identities(&t.identities) + t.traits.output_size()
            }
            Record::IdentityLink(l) => l.source_id.output_size() + identities(&l.identities),
        }
    }
}

impl OutputSize for crate::api::records::Rejection {
    fn output_size(&self) -> u64 {
        4 + self.field.output_size() + self.reason.output_size()
    }
}

impl OutputSize for ParseOutput {
    fn output_size(&self) -> u64 {
        self.records.output_size() + self.rejections.output_size()
    }
}

impl OutputSize for Page {
    fn output_size(&self) -> u64 {
        self.records.output_size() + self.rejections.output_size() + self.next_cursor.output_size()
    }
}

impl OutputSize for DeliveryReport {
    fn output_size(&self) -> u64 {
        4 + self
            .failed
            .iter()
            .map(|f| f.delivery_id.output_size() + f.reason.output_size() + 1)
            .sum::<u64>()
    }
}

impl OutputSize for Manifest {
    fn output_size(&self) -> u64 {
        self.name.output_size()
            + self.version.output_size()
            + self.description.output_size()
            + self
                .parameters
                .iter()
                .map(|p| {
                    p.name.output_size()
                        + p.description.output_size()
                        + p.default.output_size()
                        + p.choices.output_size()
                        + 24
                })
                .sum::<u64>()
            + self
                .fields
                .iter()
                .map(|f| f.name.output_size() + 2)
                .sum::<u64>()
            + self
                .aggregates
                .iter()
                .map(|a| {
                    a.name.output_size() + a.event_type.output_size() + a.property.output_size() + 8
                })
                .sum::<u64>()
            + self.purposes.output_size()
    }
}

impl OutputSize for ActionSpec {
    fn output_size(&self) -> u64 {
        self.name.output_size() + self.description.output_size()
    }
}

impl OutputSize for Modes {
    fn output_size(&self) -> u64 {
        1
    }
}

/// Segment results: exactly one membership per row; scores absent or one per
/// row and finite; tiers one per row with codes inside the dictionary.
pub(crate) fn check_memberships(out: &Memberships, rows: u32) -> Result<(), String> {
    let rows = rows as usize;
    if out.member.len() != rows {
        return Err(format!("{} memberships for {rows} rows", out.member.len()));
    }
    if let Some(row) = out.member.iter().position(|m| *m > 1) {
        return Err(format!(
            "membership of row {row} is {}, not 0 or 1",
            out.member[row]
        ));
    }
    if !out.scores.is_empty() {
        if out.scores.len() != rows {
            return Err(format!("{} scores for {rows} rows", out.scores.len()));
        }
        if let Some(row) = out.scores.iter().position(|s| !s.is_finite()) {
            return Err(format!("score of row {row} is not finite"));
        }
    }
    if let Some(tiers) = &out.tiers {
        if tiers.codes.len() != rows {
            return Err(format!("{} tiers for {rows} rows", tiers.codes.len()));
        }
        if let Some(row) = tiers
            .codes
            .iter()
            .position(|c| *c as usize >= tiers.dictionary.len())
        {
            return Err(format!("tier of row {row} is outside the tier dictionary"));
        }
    }
    Ok(())
}

/// Strategy decisions: one per row, each ranking known actions without
/// repeats, with finite scores and propensities within 0..=1.
pub(crate) fn check_decisions(out: &[Decision], rows: u32, actions: usize) -> Result<(), String> {
    if out.len() != rows as usize {
        return Err(format!("{} decisions for {rows} rows", out.len()));
    }
    for (row, decision) in out.iter().enumerate() {
        if decision.ranked.is_empty() {
            return Err(format!("decision of row {row} ranks no action"));
        }
        let mut seen = vec![false; actions];
        for ranked in &decision.ranked {
            let index = ranked.action as usize;
            if index >= actions {
                return Err(format!(
                    "decision of row {row} names action {index}, but the strategy has {actions}"
                ));
            }
            if std::mem::replace(&mut seen[index], true) {
                return Err(format!("decision of row {row} ranks action {index} twice"));
            }
            if !(0.0..=1.0).contains(&ranked.propensity) {
                return Err(format!(
                    "decision of row {row} gives action {index} a propensity of {}, outside 0..=1",
                    ranked.propensity
                ));
            }
            if !ranked.score.is_finite() {
                return Err(format!(
                    "decision of row {row} gives action {index} a non-finite score"
                ));
            }
        }
    }
    Ok(())
}

/// Forecasts: known actions, shares within 0..=1, finite rewards.
pub(crate) fn check_forecast(out: &Forecast, actions: usize) -> Result<(), String> {
    for forecast in &out.actions {
        if forecast.action as usize >= actions {
            return Err(format!(
                "forecast names action {}, but the strategy has {actions}",
                forecast.action
            ));
        }
        if !(0.0..=1.0).contains(&forecast.share) || !forecast.expected_reward.is_finite() {
            return Err(format!(
                "forecast for action {} has an invalid share or reward",
                forecast.action
            ));
        }
    }
    if !out.expected_reward.is_finite() {
        return Err("forecast's expected reward is not finite".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memberships(member: Vec<u8>, scores: Vec<f64>) -> Memberships {
        Memberships {
            member,
            scores,
            tiers: None,
        }
    }

    #[test]
    fn memberships_must_be_one_byte_of_zero_or_one_per_row() {
        assert_eq!(
            check_memberships(&memberships(vec![0, 1, 1], Vec::new()), 3),
            Ok(())
        );
        assert_eq!(
            check_memberships(&memberships(vec![0, 1], Vec::new()), 3).unwrap_err(),
            "2 memberships for 3 rows"
        );
        assert_eq!(
            check_memberships(&memberships(vec![0, 2, 1], Vec::new()), 3).unwrap_err(),
            "membership of row 1 is 2, not 0 or 1"
        );
        assert_eq!(
            check_memberships(&memberships(vec![0, 1], vec![1.0, f64::NAN]), 2).unwrap_err(),
            "score of row 1 is not finite"
        );
        let tiers = TextColumn {
            dictionary: vec!["gold".into()],
            codes: vec![0, 1],
        };
        let out = Memberships {
            member: vec![1, 1],
            scores: Vec::new(),
            tiers: Some(tiers),
        };
        assert_eq!(
            check_memberships(&out, 2).unwrap_err(),
            "tier of row 1 is outside the tier dictionary"
        );
    }
}

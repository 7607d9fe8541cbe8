//! The host's decoding of plugin outputs: how large a result is (checked
//! against the output cap) and whether it keeps the contract (one entry per
//! row, known action indices, propensities that are probabilities).

use crate::api::records::Modes;
use crate::api::records::{DeliveryReport, Page, ParseOutput, Record};
use crate::api::segments::Memberships;
use crate::api::strategies::{ActionSpec, Decision, Forecast};
use crate::api::types::{AggregateFn, AggregateSpec, FieldValue, Manifest, TextColumn, Value};
use crate::bindings::plan_v0_1::{EventQuery, Needs};
use crate::manifest::is_name;

/// At most this many fields in a plan.
pub const MAX_PLANNED_FIELDS: usize = 256;
/// At most this many aggregates in a plan.
pub const MAX_PLANNED_AGGREGATES: usize = 256;
/// The longest window a planned aggregate may have, in days (100 years).
pub const MAX_WINDOW_DAYS: u32 = 36_525;
/// The longest trait, event type or property name a plan may use, in bytes.
const MAX_PLANNED_NAME: usize = 256;
/// At most this many event queries in a plan.
pub const MAX_PLANNED_QUERIES: usize = 256;
/// At most this many other segments' memberships in a plan.
pub const MAX_PLANNED_SEGMENTS: usize = 256;
/// The longest name a planned query may have, in bytes.
pub const MAX_QUERY_NAME: usize = 512;
/// At most this many sums per planned query.
pub const MAX_QUERY_SUMS: usize = 16;
/// The longest window a planned query may have, in ms (100 years of days).
pub const MAX_WINDOW_MS: i64 = MAX_WINDOW_DAYS as i64 * 86_400_000;
/// At most this many actions for a strategy to choose among.
pub const MAX_ACTIONS: usize = 1024;
/// The longest action name, in bytes.
pub const MAX_ACTION_NAME: usize = 256;

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
            + self.aggregates.output_size()
            + self.purposes.output_size()
    }
}

impl OutputSize for AggregateSpec {
    fn output_size(&self) -> u64 {
        self.name.output_size() + self.event_type.output_size() + self.property.output_size() + 8
    }
}

impl OutputSize for Needs {
    fn output_size(&self) -> u64 {
        self.fields
            .iter()
            .map(|f| f.name.output_size() + 2)
            .sum::<u64>()
            + self.aggregates.output_size()
            + self.queries.output_size()
            + self.segments.output_size()
    }
}

impl OutputSize for EventQuery {
    fn output_size(&self) -> u64 {
        self.name.output_size()
            + self.event_type.output_size()
            + self.filter.output_size()
            + 9
            + self.sums.output_size()
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

/// A plan: bounded counts; field names non-empty and not repeated;
/// aggregate names lowercase identifiers, not repeated; every aggregate
/// names an event type, `sum`/`min`/`max` the property they read and the
/// other functions none; windows of 1 to [`MAX_WINDOW_DAYS`] days.
pub(crate) fn check_needs(out: &Needs) -> Result<(), String> {
    if out.fields.len() > MAX_PLANNED_FIELDS {
        return Err(format!(
            "the plan asks for {} fields; at most {MAX_PLANNED_FIELDS} are allowed",
            out.fields.len()
        ));
    }
    if out.aggregates.len() > MAX_PLANNED_AGGREGATES {
        return Err(format!(
            "the plan asks for {} aggregates; at most {MAX_PLANNED_AGGREGATES} are allowed",
            out.aggregates.len()
        ));
    }
    let long = |s: &str| s.len() > MAX_PLANNED_NAME;
    let mut seen = std::collections::HashSet::new();
    for (index, field) in out.fields.iter().enumerate() {
        if field.name.is_empty() || long(&field.name) {
            return Err(format!(
                "planned field {index} has an empty name or one over {MAX_PLANNED_NAME} bytes"
            ));
        }
        if !seen.insert(field.name.as_str()) {
            return Err(format!("planned field `{}` is named twice", field.name));
        }
    }
    seen.clear();
    for a in &out.aggregates {
        let name = &a.name;
        if !is_name(name) {
            return Err(format!(
                "planned aggregate `{name}` must be 1-64 characters of a-z, 0-9, `_` or `-`"
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(format!("planned aggregate `{name}` is named twice"));
        }
        if a.event_type.is_empty() || long(&a.event_type) {
            return Err(format!(
                "planned aggregate `{name}` names no event type, or one over {MAX_PLANNED_NAME} bytes"
            ));
        }
        let function = match a.function {
            AggregateFn::Count => "count",
            AggregateFn::Sum => "sum",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
            AggregateFn::FirstAt => "first-at",
            AggregateFn::LastAt => "last-at",
        };
        let reads_property = matches!(
            a.function,
            AggregateFn::Sum | AggregateFn::Min | AggregateFn::Max
        );
        match (&a.property, reads_property) {
            (None, true) => {
                return Err(format!(
                    "planned aggregate `{name}` is a {function} but names no property to read"
                ));
            }
            (Some(property), true) if property.is_empty() || long(property) => {
                return Err(format!(
                    "planned aggregate `{name}` names an empty property, or one over {MAX_PLANNED_NAME} bytes"
                ));
            }
            (Some(property), false) => {
                return Err(format!(
                    "planned aggregate `{name}` is a {function}, which reads no property, but names `{property}`"
                ));
            }
            _ => {}
        }
        if let Some(days) = a.window_days
            && !(1..=MAX_WINDOW_DAYS).contains(&days)
        {
            return Err(format!(
                "planned aggregate `{name}` has a window of {days} days; windows are 1 to {MAX_WINDOW_DAYS} days (none: all time)"
            ));
        }
    }
    check_queries(&out.queries)?;
    check_segments(&out.segments)
}

/// Planned event queries: bounded, named once, each with an event type, a
/// window in range, few sums of named properties, and a filter in the rules
/// language's filter grammar.
fn check_queries(queries: &[EventQuery]) -> Result<(), String> {
    if queries.len() > MAX_PLANNED_QUERIES {
        return Err(format!(
            "the plan asks for {} queries; at most {MAX_PLANNED_QUERIES} are allowed",
            queries.len()
        ));
    }
    let long = |s: &str| s.len() > MAX_PLANNED_NAME;
    let mut seen = std::collections::HashSet::new();
    for (index, q) in queries.iter().enumerate() {
        let name = &q.name;
        if name.is_empty() || name.len() > MAX_QUERY_NAME {
            return Err(format!(
                "planned query {index} has an empty name or one over {MAX_QUERY_NAME} bytes"
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(format!("planned query `{name}` is named twice"));
        }
        if q.event_type.is_empty() || long(&q.event_type) {
            return Err(format!(
                "planned query `{name}` names no event type, or one over {MAX_PLANNED_NAME} bytes"
            ));
        }
        if let Some(ms) = q.window_ms
            && !(1..=MAX_WINDOW_MS).contains(&ms)
        {
            return Err(format!(
                "planned query `{name}` has a window of {ms} ms; windows are 1 ms to 100 years ({MAX_WINDOW_MS} ms; none: all time)"
            ));
        }
        if q.sums.len() > MAX_QUERY_SUMS {
            return Err(format!(
                "planned query `{name}` has {} sums; at most {MAX_QUERY_SUMS} are allowed",
                q.sums.len()
            ));
        }
        let mut sums = std::collections::HashSet::new();
        for sum in &q.sums {
            if sum.is_empty() || long(sum) {
                return Err(format!(
                    "planned query `{name}` sums an empty property, or one over {MAX_PLANNED_NAME} bytes"
                ));
            }
            if !sums.insert(sum.as_str()) {
                return Err(format!("planned query `{name}` sums `{sum}` twice"));
            }
        }
        if let Some(filter) = &q.filter
            && let Err(error) = tessera_rules::parse_filter(filter)
        {
            return Err(format!(
                "planned query `{name}` has a filter that does not parse: {error}"
            ));
        }
    }
    Ok(())
}

/// Planned segments: bounded, each a segment name, each once.
fn check_segments(segments: &[String]) -> Result<(), String> {
    if segments.len() > MAX_PLANNED_SEGMENTS {
        return Err(format!(
            "the plan asks for {} segments; at most {MAX_PLANNED_SEGMENTS} are allowed",
            segments.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for name in segments {
        if !is_name(name) {
            return Err(format!(
                "planned segment `{name}` must be 1-64 characters of a-z, 0-9, `_` or `-`"
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(format!("planned segment `{name}` is named twice"));
        }
    }
    Ok(())
}

/// Strategy decisions: one per row, each ranking known actions without
/// repeats, with finite scores and propensities within 0..=1.
/// The actions a strategy chooses among, declared (`actions`) or planned
/// for a campaign's parameters (`tessera:strategy/campaign-plan`): at least
/// one, at most [`MAX_ACTIONS`], names non-empty, at most
/// [`MAX_ACTION_NAME`] bytes and not repeated.
pub(crate) fn check_actions(actions: &[ActionSpec]) -> Result<(), String> {
    if actions.is_empty() {
        return Err("the strategy declares no actions".into());
    }
    if actions.len() > MAX_ACTIONS {
        return Err(format!(
            "the strategy declares {} actions; at most {MAX_ACTIONS} are allowed",
            actions.len()
        ));
    }
    let mut names = std::collections::HashSet::new();
    for action in actions {
        if action.name.len() > MAX_ACTION_NAME {
            return Err(format!(
                "an action's name is over {MAX_ACTION_NAME} bytes ({} bytes)",
                action.name.len()
            ));
        }
        if action.name.is_empty() || !names.insert(action.name.as_str()) {
            return Err(format!(
                "action `{}` is empty or declared twice",
                action.name
            ));
        }
    }
    Ok(())
}

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

    fn count(name: &str, window_days: Option<u32>) -> AggregateSpec {
        AggregateSpec {
            name: name.into(),
            event_type: "purchase".into(),
            function: AggregateFn::Count,
            property: None,
            window_days,
        }
    }

    fn query(name: &str) -> EventQuery {
        EventQuery {
            name: name.into(),
            event_type: "purchase".into(),
            filter: Some("amount > 10".into()),
            window_ms: Some(3_600_000),
            sums: vec!["amount".into(), "items".into()],
        }
    }

    fn field(name: &str) -> crate::api::types::FieldSpec {
        crate::api::types::FieldSpec {
            name: name.into(),
            kind: crate::api::types::ValueKind::Text,
            class: crate::api::types::FieldClass::Standard,
        }
    }

    #[test]
    fn plans_must_be_bounded_named_once_and_well_formed() {
        let ok = Needs {
            fields: vec![field("city"), field("country")],
            aggregates: vec![
                count("purchases_90d", Some(90)),
                AggregateSpec {
                    function: AggregateFn::Sum,
                    property: Some("amount".into()),
                    ..count("spend", None)
                },
            ],
            queries: vec![query("purchase where amount > 10"), query("product_view")],
            segments: vec!["vip".into(), "lapsed_90d".into()],
        };
        assert_eq!(check_needs(&ok), Ok(()));
        assert_eq!(
            check_needs(&Needs {
                fields: Vec::new(),
                aggregates: Vec::new(),
                queries: Vec::new(),
                segments: Vec::new(),
            }),
            Ok(())
        );
        let bad = |f: fn(&mut Needs)| {
            let mut needs = ok.clone();
            f(&mut needs);
            check_needs(&needs).unwrap_err()
        };
        assert_eq!(
            bad(|n| n.fields.push(field("city"))),
            "planned field `city` is named twice"
        );
        assert!(bad(|n| n.fields[0].name.clear()).contains("planned field 0 has an empty name"));
        assert_eq!(
            bad(|n| n.aggregates.push(count("spend", None))),
            "planned aggregate `spend` is named twice"
        );
        assert!(bad(|n| n.aggregates[0].name = "Purchases".into()).contains("`Purchases` must be"));
        assert!(bad(|n| n.aggregates[0].event_type.clear()).contains("names no event type"));
        assert_eq!(
            bad(|n| n.aggregates[1].property = None),
            "planned aggregate `spend` is a sum but names no property to read"
        );
        assert!(
            bad(|n| n.aggregates[0].property = Some("amount".into()))
                .contains("is a count, which reads no property, but names `amount`")
        );
        assert!(bad(|n| n.aggregates[0].window_days = Some(0)).contains("a window of 0 days"));
        assert!(
            bad(|n| n.aggregates[0].window_days = Some(MAX_WINDOW_DAYS + 1))
                .contains("windows are 1 to 36525 days")
        );
        assert!(
            bad(|n| n.fields = (0..=MAX_PLANNED_FIELDS)
                .map(|i| field(&format!("f{i}")))
                .collect())
            .contains("asks for 257 fields; at most 256")
        );
        assert!(
            bad(|n| n.aggregates = (0..=MAX_PLANNED_AGGREGATES)
                .map(|i| count(&format!("a{i}"), None))
                .collect())
            .contains("asks for 257 aggregates; at most 256")
        );
    }

    #[test]
    fn planned_queries_and_segments_must_be_bounded_named_once_and_well_formed() {
        let ok = Needs {
            fields: Vec::new(),
            aggregates: Vec::new(),
            queries: vec![query("a"), query("b")],
            segments: vec!["vip".into()],
        };
        assert_eq!(check_needs(&ok), Ok(()));
        let bad = |f: fn(&mut Needs)| {
            let mut needs = ok.clone();
            f(&mut needs);
            check_needs(&needs).unwrap_err()
        };
        assert_eq!(
            bad(|n| n.queries[1].name = "a".into()),
            "planned query `a` is named twice"
        );
        assert!(bad(|n| n.queries[0].name.clear()).contains("planned query 0 has an empty name"));
        assert!(
            bad(|n| n.queries[0].name = "x".repeat(MAX_QUERY_NAME + 1)).contains("over 512 bytes")
        );
        assert_eq!(
            check_needs(&Needs {
                queries: vec![query(&"x".repeat(MAX_QUERY_NAME))],
                ..ok.clone()
            }),
            Ok(())
        );
        assert!(bad(|n| n.queries[0].event_type.clear()).contains("`a` names no event type"));
        assert!(bad(|n| n.queries[0].window_ms = Some(0)).contains("a window of 0 ms"));
        assert!(
            bad(|n| n.queries[0].window_ms = Some(MAX_WINDOW_MS + 1))
                .contains("windows are 1 ms to 100 years")
        );
        assert_eq!(
            check_needs(&Needs {
                queries: vec![EventQuery {
                    window_ms: Some(MAX_WINDOW_MS),
                    ..query("a")
                }],
                ..ok.clone()
            }),
            Ok(())
        );
        assert!(
            bad(|n| n.queries[0].sums = (0..=MAX_QUERY_SUMS).map(|i| format!("p{i}")).collect())
                .contains("has 17 sums; at most 16")
        );
        assert!(bad(|n| n.queries[0].sums.push("amount".into())).contains("sums `amount` twice"));
        assert!(bad(|n| n.queries[0].sums.push(String::new())).contains("sums an empty property"));
        let unparsable = bad(|n| n.queries[1].filter = Some("amount >".into()));
        assert!(
            unparsable.starts_with("planned query `b` has a filter that does not parse: 1:"),
            "{unparsable}"
        );
        assert!(
            bad(|n| n.queries[0].filter = Some("trait.city = \"Oslo\"".into()))
                .contains("`a` has a filter that does not parse")
        );
        assert!(
            bad(|n| n.queries = (0..=MAX_PLANNED_QUERIES)
                .map(|i| query(&format!("q{i}")))
                .collect())
            .contains("asks for 257 queries; at most 256")
        );
        assert_eq!(
            bad(|n| n.segments.push("vip".into())),
            "planned segment `vip` is named twice"
        );
        assert!(bad(|n| n.segments[0] = "VIP".into()).contains("`VIP` must be 1-64 characters"));
        assert!(bad(|n| n.segments[0].clear()).contains("planned segment `` must be"));
        assert!(
            bad(|n| n.segments = (0..=MAX_PLANNED_SEGMENTS)
                .map(|i| format!("s{i}"))
                .collect())
            .contains("asks for 257 segments; at most 256")
        );
    }

    #[test]
    fn action_lists_must_be_non_empty_bounded_and_named_once() {
        let actions = |names: Vec<String>| -> Vec<ActionSpec> {
            names
                .into_iter()
                .map(|name| ActionSpec {
                    name,
                    description: String::new(),
                })
                .collect()
        };
        assert!(check_actions(&actions(vec!["a".into(), "b".into()])).is_ok());
        assert!(check_actions(&[]).unwrap_err().contains("no actions"));
        assert!(
            check_actions(&actions(vec!["a".into(), "a".into()]))
                .unwrap_err()
                .contains("declared twice")
        );
        assert!(
            check_actions(&actions(vec![String::new()]))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            check_actions(&actions(vec!["x".repeat(MAX_ACTION_NAME + 1)]))
                .unwrap_err()
                .contains("over 256 bytes")
        );
        let many = (0..=MAX_ACTIONS).map(|i| format!("a{i}")).collect();
        assert!(
            check_actions(&actions(many))
                .unwrap_err()
                .contains("1025 actions; at most 1024")
        );
    }
}

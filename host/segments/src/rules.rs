//! Rules of Tessera's rules language (`docs/rules.md`) in segments.
//!
//! A segment plugin parameter named `rule`, of kind text, is a rule: the
//! host checks it when the segment is saved, against the tenant's trait
//! and event schemas, the plugin's grant and the tenant's other segments,
//! and refuses it with every problem's position. The first-party `rules`
//! plugin takes its rule so; a partner's rules engine that names its
//! parameter `rule` gets the same checks.

use std::collections::{BTreeMap, BTreeSet};

use tessera_plugins::Permissions;
use tessera_plugins::views::{aggregate_granted, field_granted};
use tessera_rules::{CheckedRule, Grants, Schema, Type};
use tessera_runtime::api::types::{
    AggregateFn, AggregateSpec, FieldValue, ParamSpec, Value, ValueKind,
};
use tessera_vault::{TenantSettings, TraitType};

/// The name of a parameter that holds a rule.
pub const RULE_PARAM: &str = "rule";

/// One problem of a rule, where it is (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    pub line: u32,
    pub column: u32,
    /// `line:column: what is wrong`.
    pub message: String,
}

/// The rule of `params`, if the plugin takes one (a text parameter named
/// [`RULE_PARAM`]).
pub fn rule_text<'a>(declared: &[ParamSpec], params: &'a [FieldValue]) -> Option<&'a str> {
    declared
        .iter()
        .any(|p| p.name == RULE_PARAM && p.kind == ValueKind::Text)
        .then(|| {
            params.iter().find_map(|p| match (&p.name[..], &p.value) {
                (RULE_PARAM, Value::Text(text)) => Some(text.as_str()),
                _ => None,
            })
        })
        .flatten()
}

fn rule_type(kind: &TraitType) -> Type {
    match kind {
        TraitType::String => Type::String,
        TraitType::Number => Type::Number,
        TraitType::Bool => Type::Boolean,
        TraitType::Date => Type::Date,
        TraitType::Any => Type::Any,
    }
}

/// The tenant's schemas as the rules checker sees them: its traits, the
/// event types of its event schema with their properties, and `segments`.
pub fn rule_schema(
    settings: &TenantSettings,
    segments: impl IntoIterator<Item = String>,
) -> Schema {
    let mut schema = Schema::new();
    for (name, spec) in &settings.schema {
        schema = schema.with_trait(name, rule_type(&spec.kind));
    }
    for (name, spec) in &settings.events {
        schema = schema.with_event(
            name,
            spec.properties
                .iter()
                .map(|(property, p)| (property.as_str(), rule_type(&p.kind))),
        );
    }
    schema.segments = segments.into_iter().collect();
    schema
}

/// What a plugin's grant lets a rule read, by the host's own grant rules
/// ([`field_granted`], [`aggregate_granted`]): granted traits, granted
/// event types, and their properties whose class passes (a `pii` or
/// `sensitive` property only with its PII class).
pub fn rule_grants(settings: &TenantSettings, granted: &Permissions) -> Grants {
    let traits = settings
        .schema
        .keys()
        .filter(|name| field_granted(settings, granted, name))
        .cloned()
        .collect();
    let spec = |event: &str, function: AggregateFn, property: Option<&str>| AggregateSpec {
        name: "rule".into(),
        event_type: event.to_owned(),
        function,
        property: property.map(str::to_owned),
        window_days: None,
    };
    let mut events = BTreeSet::new();
    let mut properties = BTreeSet::new();
    for (event, event_spec) in &settings.events {
        if !aggregate_granted(settings, granted, &spec(event, AggregateFn::Count, None)) {
            continue;
        }
        events.insert(event.clone());
        for property in event_spec.properties.keys() {
            if aggregate_granted(
                settings,
                granted,
                &spec(event, AggregateFn::Sum, Some(property)),
            ) {
                properties.insert((event.clone(), property.clone()));
            }
        }
    }
    Grants {
        traits,
        events,
        properties,
    }
}

/// Parses and checks `text`: the checked rule, or every problem.
pub fn check_rule(text: &str, schema: &Schema) -> Result<CheckedRule, Vec<RuleProblem>> {
    let rule = tessera_rules::parse(text).map_err(|error| {
        vec![RuleProblem {
            line: error.span.line,
            column: error.span.column,
            message: error.to_string(),
        }]
    })?;
    tessera_rules::check(&rule, schema).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| RuleProblem {
                line: e.span.line,
                column: e.span.column,
                message: e.to_string(),
            })
            .collect()
    })
}

/// The order to evaluate segments in, so that a segment comes after every
/// segment it refers to; `None` if they refer to each other in a cycle.
pub(crate) fn evaluation_order(references: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    let mut order = Vec::with_capacity(references.len());
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut visiting: BTreeSet<&str> = BTreeSet::new();
    fn visit<'a>(
        name: &'a str,
        references: &'a BTreeMap<String, Vec<String>>,
        done: &mut BTreeSet<&'a str>,
        visiting: &mut BTreeSet<&'a str>,
        order: &mut Vec<String>,
    ) -> bool {
        if done.contains(name) {
            return true;
        }
        if !visiting.insert(name) {
            return false;
        }
        for next in references.get(name).into_iter().flatten() {
            if references.contains_key(next) && !visit(next, references, done, visiting, order) {
                return false;
            }
        }
        visiting.remove(name);
        done.insert(name);
        order.push(name.to_owned());
        true
    }
    for name in references.keys() {
        if !visit(name, references, &mut done, &mut visiting, &mut order) {
            return None;
        }
    }
    Some(order)
}

/// A cycle through `start`, if saving `start` with `refers` closes one:
/// the names along it, `start` first and last.
pub(crate) fn cycle_through(
    start: &str,
    refers: &[String],
    references: &BTreeMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    let mut graph = references.clone();
    graph.insert(start.to_owned(), refers.to_vec());
    let mut path = vec![start.to_owned()];
    fn walk(
        at: &str,
        start: &str,
        graph: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(start, start, &graph, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(from, to)| {
                (
                    (*from).to_owned(),
                    to.iter().map(|t| (*t).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn segments_are_ordered_after_what_they_refer_to() {
        let order = evaluation_order(&graph(&[
            ("a", &["b", "c"]),
            ("b", &["c"]),
            ("c", &[]),
            ("d", &[]),
        ]))
        .expect("no cycle");
        let at = |n: &str| order.iter().position(|o| o == n).unwrap();
        assert!(at("c") < at("b") && at("b") < at("a"));
        assert_eq!(order.len(), 4);
    }

    #[test]
    fn a_cycle_is_found_with_its_path() {
        let existing = graph(&[("b", &["c"]), ("c", &["a"])]);
        assert_eq!(
            cycle_through("a", &["b".to_owned()], &existing),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(
            cycle_through("a", &["c".to_owned()], &graph(&[("c", &[])])),
            None
        );
        assert_eq!(
            cycle_through("a", &["a".to_owned()], &BTreeMap::new()),
            Some(vec!["a".into(), "a".into()])
        );
        assert!(evaluation_order(&graph(&[("x", &["y"]), ("y", &["x"])])).is_none());
    }
}

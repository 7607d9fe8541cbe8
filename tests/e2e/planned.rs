//! Plugins in Python and JavaScript that plan, as Rust ones do: a strategy
//! whose actions and columns come from its parameters
//! (`tessera:strategy/planned-strategy`) in both languages, and a Python
//! segment that plans an event query, a segment and a field
//! (`tessera:plan/planned-segment`). Both strategies import
//! `tessera:plan/segment-plan`'s `plan` (their toolchains import every
//! function of an imported interface), which the host links for strategies
//! as a stub that traps: calling it fails with a message that names it, and
//! the host serves the next call.

use std::path::Path;

use tessera_guests::python::{self, PythonPlugin};
use tessera_runtime::api::strategies::Context;
use tessera_runtime::api::types::{Column, ColumnData, ProfileBatch, Value, ValueKind};
use tessera_runtime::{Plugin, PluginKind, TrapReason};
use tessera_tests::{
    assert_honest_call_works, install, members, numbers, param, program, test_programs,
};

use super::runtime;

/// The Python component's bytes, built on first use in this target directory.
fn python_built(plugin: &PythonPlugin) -> Vec<u8> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-components");
    let path = python::component(plugin, &cache)
        .unwrap_or_else(|why| panic!("{} could not be built: {why}", plugin.name));
    std::fs::read(path).unwrap()
}

fn dense(data: ColumnData) -> Column {
    Column {
        data,
        present: Vec::new(),
    }
}

fn texts(values: &[&str]) -> Value {
    Value::TextList(values.iter().map(|v| (*v).to_string()).collect())
}

fn batch(fields: Vec<Column>, aggregates: Vec<Column>, rows: u32) -> ProfileBatch {
    ProfileBatch {
        rows,
        keys: (0..u64::from(rows)).collect(),
        fields,
        aggregates,
        now: 1_780_000_000_000,
    }
}

fn context() -> Context {
    Context {
        channel: "web".into(),
        at: 1_780_000_000_000,
        attributes: Vec::new(),
    }
}

/// What the `campaign-offers` strategy does in every language: its actions
/// are its `offers` parameter, its batches carry the trait and the segment
/// membership its parameters name, and calling the imported
/// `segment-plan.plan` traps with the host's message.
fn campaign_offers_contract(strategy: &Plugin) {
    assert!(strategy.info().plans, "built for planned-strategy");
    let declared: Vec<&str> = strategy
        .info()
        .actions
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(declared, ["fallback"], "the plain world's actions");
    let params = |offers: &[&str], call_host_plan: bool| {
        strategy
            .validate(&[
                param("offers", texts(offers)),
                param("feature", Value::Text("loyalty".into())),
                param("segment", Value::Text("vip".into())),
                param("call-host-plan", Value::Boolean(call_host_plan)),
            ])
            .unwrap()
    };
    let three = params(&["red", "green", "blue"], false);
    let two = params(&["a", "b"], false);

    // Actions differ by a parameter, and were asked of the plugin.
    let actions = strategy.strategy_actions(&three).unwrap();
    let names: Vec<&str> = actions.value.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["red", "green", "blue"]);
    assert!(actions.cost.fuel > 0, "asked in the sandbox");
    assert_eq!(strategy.strategy_actions(&two).unwrap().value.len(), 2);

    // The plan: the named trait, then the named segment's membership.
    let needs = strategy.strategy_plan(&three).unwrap().value;
    let fields: Vec<(&str, ValueKind)> = needs
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.kind))
        .collect();
    assert_eq!(fields, [("loyalty", ValueKind::Number)]);
    assert_eq!(needs.segments, ["vip"]);

    // The batch carries the planned columns, and decisions rank the
    // parameters' offers.
    let rows = batch(
        vec![
            numbers(&[3.5, 1.25]),
            dense(ColumnData::Boolean(vec![1, 0])),
        ],
        Vec::new(),
        2,
    );
    let out = strategy.decide(&three, &rows, &context()).unwrap().value;
    assert_eq!(out[0].ranked.len(), 3);
    assert_eq!(out[0].explanation, "feature 3.5, member true");
    assert_eq!(out[1].explanation, "feature 1.25, member false");
    let out = strategy.decide(&two, &rows, &context()).unwrap().value;
    assert_eq!(out[0].ranked.len(), 2, "other parameters, other actions");
    let forecast = strategy.simulate(&three, &rows, &context()).unwrap().value;
    assert_eq!(forecast.actions.len(), 3, "one share per planned action");

    // The imported `plan` is a stub: calling it traps with its message.
    let error = strategy
        .decide(&params(&["red"], true), &rows, &context())
        .unwrap_err();
    match error.trap_reason() {
        Some(TrapReason::Other(message)) => assert_eq!(
            message,
            "segment-plan.plan is not a host function; a strategy exports campaign-plan.plan"
        ),
        other => panic!("expected a trap naming segment-plan.plan, got {other:?}: {error}"),
    }
    // The same plugin serves the next honest call.
    let out = strategy.decide(&two, &rows, &context()).unwrap().value;
    assert_eq!(out[1].explanation, "feature 1.25, member false");
}

#[test]
fn javascript_strategy_that_plans_takes_its_actions_and_columns_from_its_parameters() {
    let runtime = runtime();
    let path = test_programs::JS_CAMPAIGN_OFFERS.unwrap_or_else(|why| {
        panic!("the JavaScript campaign-offers strategy could not be built: {why}")
    });
    let strategy = install(&runtime, &program(path), PluginKind::Strategy);
    campaign_offers_contract(&strategy);
    assert_honest_call_works(&runtime);
}

#[test]
fn python_strategy_that_plans_takes_its_actions_and_columns_from_its_parameters() {
    let runtime = runtime();
    let bytes = python_built(&python::PLANNED_STRATEGY);
    let strategy = install(&runtime, &bytes, PluginKind::Strategy);
    campaign_offers_contract(&strategy);
    assert_honest_call_works(&runtime);
}

#[test]
fn python_segment_that_plans_reads_its_query_segment_and_field() {
    let runtime = runtime();
    let bytes = python_built(&python::PLANNED_SEGMENT);
    let segment = install(&runtime, &bytes, PluginKind::Segment);
    assert!(segment.info().plans, "built for planned-segment");
    let params = segment
        .validate(&[
            param("event_type", Value::Text("purchase".into())),
            param("window_days", Value::Integer(7)),
            param("within", Value::Text("vip".into())),
            param("feature", Value::Text("ltv".into())),
        ])
        .unwrap();
    let needs = segment.plan(&params).unwrap().value;
    assert_eq!(needs.fields.len(), 1);
    assert_eq!(needs.fields[0].name, "ltv");
    assert_eq!(
        needs.fields[0].kind,
        ValueKind::Number,
        "a number where the schema does not say"
    );
    assert_eq!(needs.segments, ["vip"]);
    assert_eq!(needs.queries.len(), 1);
    let query = &needs.queries[0];
    assert_eq!(
        (query.name.as_str(), query.event_type.as_str()),
        ("recent", "purchase")
    );
    assert_eq!(query.window_ms, Some(7 * 86_400_000));
    assert_eq!(query.sums, ["amount"]);

    // Fields: `ltv`, then `vip`; aggregates: the query's count, first,
    // last and sum of `amount`.
    let now = 1_780_000_000_000;
    let columns = |vip: Option<Vec<u8>>| {
        let mut fields = vec![numbers(&[10.0, 0.0, 1.0])];
        fields.extend(vip.map(|v| dense(ColumnData::Boolean(v))));
        batch(
            fields,
            vec![
                dense(ColumnData::Integer(vec![2, 0, 5])),
                dense(ColumnData::Timestamp(vec![now, 0, now])),
                dense(ColumnData::Timestamp(vec![now, 0, now])),
                numbers(&[5.0, 0.0, 7.0]),
            ],
            3,
        )
    };
    let out = segment
        .evaluate(&params, &columns(Some(vec![1, 1, 0])))
        .unwrap()
        .value;
    assert_eq!(members(&out), [true, false, false]);
    assert_eq!(out.scores, [15.0, 0.0, 8.0]);

    // Without `within`, no segment is planned and none is read.
    let anyone = segment
        .validate(&[
            param("event_type", Value::Text("purchase".into())),
            param("feature", Value::Text("ltv".into())),
        ])
        .unwrap();
    assert!(segment.plan(&anyone).unwrap().value.segments.is_empty());
    let out = segment.evaluate(&anyone, &columns(None)).unwrap().value;
    assert_eq!(members(&out), [true, false, true]);
    assert_honest_call_works(&runtime);
}

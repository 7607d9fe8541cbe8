//! Strategies through the runtime: the `tessera:strategy` campaign plan
//! (actions and columns from parameters, checked like segment plans).

use tessera_runtime::api::strategies::Context;
use tessera_runtime::api::types::{Column, ColumnData, ProfileBatch, Value};
use tessera_runtime::{CallError, PluginKind, TrapReason};
use tessera_tests::{install, numbers, param, plugins, program, test_programs};

use super::runtime;

fn context(at: i64) -> Context {
    Context {
        channel: "web".into(),
        at,
        attributes: Vec::new(),
    }
}

fn texts(values: &[&str]) -> Value {
    Value::TextList(values.iter().map(|v| (*v).to_string()).collect())
}

fn booleans(values: &[bool]) -> Column {
    Column {
        data: ColumnData::Boolean(values.iter().map(|b| u8::from(*b)).collect()),
        present: Vec::new(),
    }
}

fn rows(keys: Vec<u64>, fields: Vec<Column>) -> ProfileBatch {
    ProfileBatch {
        rows: keys.len() as u32,
        keys,
        fields,
        aggregates: Vec::new(),
        now: 1_780_000_000_000,
    }
}

fn invalid_output(error: CallError) -> String {
    match error {
        CallError::InvalidOutput { detail, .. } => detail,
        other => panic!("expected an invalid result, got {other:?}"),
    }
}

#[test]
fn a_strategy_without_a_campaign_plan_is_served_exactly_as_before() {
    let runtime = runtime();
    let plain = install(
        &runtime,
        &program(test_programs::PLAIN_STRATEGY),
        PluginKind::Strategy,
    );
    assert!(!plain.info().plans);
    let params = plain.validate(&[]).unwrap();
    let actions = plain.strategy_actions(&params).unwrap();
    assert_eq!(actions.value, plain.info().actions);
    assert_eq!(actions.cost.fuel, 0, "answered without a call");
    let needs = plain.strategy_plan(&params).unwrap().value;
    assert_eq!(needs.fields, plain.info().manifest.fields);
    assert!(needs.aggregates.is_empty() && needs.segments.is_empty());

    let out = plain
        .decide(
            &params,
            &rows(vec![1, 2], vec![numbers(&[0.9, 0.1])]),
            &context(1),
        )
        .unwrap()
        .value;
    assert_eq!(
        out.iter().map(|d| d.ranked[0].action).collect::<Vec<_>>(),
        [0, 1]
    );
    assert!(
        plain
            .simulate(&params, &rows(vec![1], vec![numbers(&[0.9])]), &context(1))
            .is_ok()
    );
}

#[test]
fn a_planned_strategy_takes_its_actions_and_columns_from_its_parameters() {
    let runtime = runtime();
    let probe = install(
        &runtime,
        &program(test_programs::CAMPAIGN_PROBE),
        PluginKind::Strategy,
    );
    assert!(probe.info().plans, "the SDK exports the campaign plan");
    assert_eq!(probe.info().actions.len(), 1, "the plain world's actions");
    let params = probe
        .validate(&[
            param("offers", texts(&["red", "green", "blue"])),
            param("feature", Value::Text("loyalty".into())),
            param("segment", Value::Text("vip".into())),
        ])
        .unwrap();

    let actions = probe.strategy_actions(&params).unwrap();
    let names: Vec<&str> = actions.value.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["red", "green", "blue"]);
    assert!(actions.cost.fuel > 0, "asked in the sandbox");
    let needs = probe.strategy_plan(&params).unwrap().value;
    assert_eq!(
        needs
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["loyalty"]
    );
    assert_eq!(needs.segments, ["vip"]);

    // The batch carries the planned columns: the field, then the membership.
    let batch = rows(
        vec![7, 8],
        vec![numbers(&[3.5, 1.0]), booleans(&[true, false])],
    );
    let out = probe.decide(&params, &batch, &context(1)).unwrap().value;
    assert_eq!(out[0].ranked.len(), 3, "ranks the three planned offers");
    assert_eq!(out[0].explanation, "feature Some(3.5), member Some(true)");
    assert_eq!(out[1].explanation, "feature Some(1.0), member Some(false)");
    assert!(probe.simulate(&params, &batch, &context(1)).is_ok());

    // Other parameters, other actions: a decision is checked against its own.
    let two = probe
        .validate(&[
            param("offers", texts(&["a", "b"])),
            param("feature", Value::Text("loyalty".into())),
            param("segment", Value::Text("vip".into())),
        ])
        .unwrap();
    assert_eq!(
        probe.decide(&two, &batch, &context(2)).unwrap().value[0]
            .ranked
            .len(),
        2
    );
    let beyond = probe
        .validate(&[
            param("offers", texts(&["a", "b"])),
            param("feature", Value::Text("loyalty".into())),
            param("segment", Value::Text("vip".into())),
            param("flaw", Value::Text("out-of-range".into())),
        ])
        .unwrap();
    let detail = invalid_output(probe.decide(&beyond, &batch, &context(3)).unwrap_err());
    assert!(
        detail.contains("names action 2, but the strategy has 2"),
        "{detail}"
    );
}

#[test]
fn malformed_and_trapping_campaign_plans_are_refused_by_the_host() {
    let runtime = runtime();
    let params = |flaw: &str| {
        vec![
            param("offers", texts(&["a", "b"])),
            param("feature", Value::Text("loyalty".into())),
            param("segment", Value::Text("vip".into())),
            param("flaw", Value::Text(flaw.into())),
        ]
    };
    let batch = rows(vec![1], vec![numbers(&[1.0]), booleans(&[true])]);
    for (flaw, expected) in [
        ("duplicate-offer", "declared twice"),
        ("no-offers", "declares no actions"),
    ] {
        let probe = install(
            &runtime,
            &program(test_programs::CAMPAIGN_PROBE),
            PluginKind::Strategy,
        );
        let p = probe.validate(&params(flaw)).unwrap();
        let detail = invalid_output(probe.strategy_actions(&p).unwrap_err());
        assert!(detail.contains(expected), "{flaw}: {detail}");
        // A decision cannot be checked against a broken list: refused too.
        let detail = invalid_output(probe.decide(&p, &batch, &context(1)).unwrap_err());
        assert!(detail.contains(expected), "{flaw}: {detail}");
        assert_eq!(probe.total_traps(), 2, "invalid results count like traps");
    }
    let probe = install(
        &runtime,
        &program(test_programs::CAMPAIGN_PROBE),
        PluginKind::Strategy,
    );
    let p = probe.validate(&params("bad-plan")).unwrap();
    let detail = invalid_output(probe.strategy_plan(&p).unwrap_err());
    assert!(detail.contains("spend"), "{detail}");

    let probe = install(
        &runtime,
        &program(test_programs::CAMPAIGN_PROBE),
        PluginKind::Strategy,
    );
    let p = probe.validate(&params("trap")).unwrap();
    for error in [
        probe.strategy_actions(&p).unwrap_err(),
        probe.strategy_plan(&p).unwrap_err(),
    ] {
        assert_eq!(error.trap_reason(), Some(&TrapReason::Panic), "{error}");
    }
    // The same installation still serves honest parameters.
    let honest = probe.validate(&params("none")).unwrap();
    assert_eq!(probe.strategy_actions(&honest).unwrap().value.len(), 2);
}

#[test]
fn only_strategies_have_campaign_actions_and_plans() {
    let runtime = runtime();
    let segment = install(&runtime, plugins::THRESHOLD, PluginKind::Segment);
    for error in [
        segment.strategy_actions(&[]).unwrap_err(),
        segment.strategy_plan(&[]).unwrap_err(),
    ] {
        assert!(matches!(error, CallError::Unsupported { .. }), "{error:?}");
    }
}

//! Python plugins built from source with the Python SDK (the examples in
//! `examples/plugins/python` and a hostile guest): each does its job, keeps
//! the contract of its world as the Rust plugins do, and a hostile one is
//! stopped by the same limits while the host serves the next call.
//!
//! Each component is built once and cached by the hash of its inputs
//! (`tessera_guests::python`); the runtime caches its compiled form.

use std::path::Path;
use std::time::Duration;

use tessera_guests::python::{self, PythonPlugin};
use tessera_runtime::api::records::Record;
use tessera_runtime::api::strategies::{Context, Feedback, FeedbackBatch, FeedbackKind};
use tessera_runtime::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value};
use tessera_runtime::{
    CallError, Limits, Plugin, PluginError, PluginKind, TrapReason, api::types::TextColumn,
};
use tessera_tests::{
    assert_honest_call_works, install, install_with, members, param, plugins, spend_batch,
};

use super::runtime;
use super::strategies::assert_contract;

const DAY_MS: i64 = 86_400_000;
const NOW: i64 = 1_780_000_000_000;

/// The component's bytes, built on first use in this target directory.
fn built(plugin: &PythonPlugin) -> Vec<u8> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-components");
    let path = python::component(plugin, &cache)
        .unwrap_or_else(|why| panic!("{} could not be built: {why}", plugin.name));
    std::fs::read(path).unwrap()
}

fn plugin_error(result: Result<impl std::fmt::Debug, CallError>) -> PluginError {
    match result {
        Err(CallError::Plugin { error, .. }) => error,
        other => panic!("expected the plugin to fail, got {other:?}"),
    }
}

fn trap_of(result: Result<impl std::fmt::Debug, CallError>) -> TrapReason {
    match result {
        Err(CallError::Trap { reason, .. }) => reason,
        other => panic!("expected a trap, got {other:?}"),
    }
}

fn dense(data: ColumnData) -> Column {
    Column {
        data,
        present: Vec::new(),
    }
}

/// A batch of aggregate columns only (no fields).
fn aggregates_batch(rows: u32, fields: Vec<Column>, aggregates: Vec<Column>) -> ProfileBatch {
    ProfileBatch {
        rows,
        keys: (0..u64::from(rows)).collect(),
        fields,
        aggregates,
        now: NOW,
    }
}

/// What every segment keeps, in any language: one answer per row of a
/// large batch within its fuel budget, and a column that does not match the
/// rows is the input's fault (a plugin error naming the column, not a trap).
fn segment_world_contract(
    plugin: &Plugin,
    params: &[FieldValue],
    batch: impl Fn(u32) -> ProfileBatch,
) {
    let out = plugin.evaluate(params, &batch(10_000)).expect("evaluates");
    assert_eq!(out.value.member.len(), 10_000);
    assert!(out.value.member.iter().all(|m| *m <= 1));
    assert!(out.cost.fuel > 0 && out.cost.fuel <= out.cost.fuel_budget);
    let empty = plugin.evaluate(params, &batch(0)).expect("evaluates");
    assert!(empty.value.member.is_empty());
    let mut short = batch(3);
    let column = short
        .fields
        .first_mut()
        .or(short.aggregates.first_mut())
        .expect("a column");
    column.data = ColumnData::Number(vec![1.0]);
    column.present = Vec::new();
    match plugin_error(plugin.evaluate(params, &short)) {
        PluginError::InvalidInput(message) => {
            assert!(message.ends_with("has 1 values for 3 rows"), "{message}")
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}

/// The threshold plugin's batch: `total_spend` per row.
fn spend_rows(rows: u32) -> ProfileBatch {
    spend_batch(&(0..rows).map(f64::from).collect::<Vec<_>>())
}

#[test]
fn rust_and_python_segments_keep_the_segment_world_contract() {
    let runtime = runtime();
    let rust = install(&runtime, plugins::THRESHOLD, PluginKind::Segment);
    segment_world_contract(
        &rust,
        &[param("threshold", Value::Number(50.0))],
        spend_rows,
    );

    let python = install(
        &runtime,
        &built(&python::ENGAGEMENT_TIERS),
        PluginKind::Segment,
    );
    let params = python.validate(&[]).expect("the defaults are valid");
    segment_world_contract(&python, &params, engagement_batch);
}

/// `engagement-tiers`' columns: purchases in 90 days, spend in 365 days and
/// the last purchase, one customer in three without any purchase.
fn engagement_batch(rows: u32) -> ProfileBatch {
    let n = rows as usize;
    let missing: Vec<u8> = (0..n).map(|r| u8::from(r % 3 != 2)).collect();
    aggregates_batch(
        rows,
        Vec::new(),
        vec![
            dense(ColumnData::Integer(
                (0..n).map(|r| (r % 9) as i64).collect(),
            )),
            Column {
                data: ColumnData::Number((0..n).map(|r| (r % 7) as f64 * 250.0).collect()),
                present: missing.clone(),
            },
            Column {
                data: ColumnData::Timestamp(
                    (0..n).map(|r| NOW - (r % 200) as i64 * DAY_MS).collect(),
                ),
                present: missing,
            },
        ],
    )
}

#[test]
fn python_segment_example_scores_customers_into_tiers() {
    let runtime = runtime();
    let plugin = install(
        &runtime,
        &built(&python::ENGAGEMENT_TIERS),
        PluginKind::Segment,
    );
    let manifest = &plugin.info().manifest;
    assert_eq!(manifest.name, "engagement-tiers");
    assert_eq!(manifest.aggregates.len(), 3);
    assert!(matches!(
        plugin.validate(&[param("tier", Value::Text("lukewarm".into()))]),
        Err(CallError::InvalidParams { .. })
    ));

    // A recent frequent big spender, a customer of last month, and one who
    // never bought.
    let batch = aggregates_batch(
        3,
        Vec::new(),
        vec![
            dense(ColumnData::Integer(vec![8, 2, 0])),
            Column {
                data: ColumnData::Number(vec![1500.0, 300.0, 0.0]),
                present: vec![1, 1, 0],
            },
            Column {
                data: ColumnData::Timestamp(vec![NOW - DAY_MS, NOW - 20 * DAY_MS, 0]),
                present: vec![1, 1, 0],
            },
        ],
    );
    for (tier, expected) in [
        ("hot", [true, false, false]),
        ("warm", [false, true, false]),
        ("cold", [false, false, true]),
    ] {
        let params = plugin
            .validate(&[param("tier", Value::Text(tier.into()))])
            .unwrap();
        let out = plugin.evaluate(&params, &batch).expect("evaluates");
        assert_eq!(members(&out.value), expected, "tier {tier}");
        assert_eq!(out.value.scores.len(), 3);
        assert!(
            out.value.scores[0] > 90.0 && out.value.scores[2] == 0.0,
            "{:?}",
            out.value.scores
        );
        assert_eq!(
            out.value.tiers,
            Some(TextColumn {
                dictionary: vec!["hot".into(), "warm".into(), "cold".into()],
                codes: vec![0, 1, 2],
            })
        );
    }
}

#[test]
fn python_connector_example_parses_orders_and_rejects_bad_lines_by_row() {
    let runtime = runtime();
    let plugin = install(
        &runtime,
        &built(&python::ORDERS_JSONL),
        PluginKind::Connector,
    );
    let sample = std::fs::read(
        python::root()
            .join(python::ORDERS_JSONL.dir)
            .join("sample.jsonl"),
    )
    .unwrap();
    let params = plugin.validate(&[]).unwrap();
    let out = plugin.parse(&params, &sample).expect("parses").value;
    let events: Vec<_> = out
        .records
        .iter()
        .map(|r| match r {
            Record::Event(e) => e,
            other => panic!("expected events, got {other:?}"),
        })
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].source_id, "order:o-1001");
    assert_eq!(events[0].event_type, "purchase");
    assert_eq!(events[0].at, 1_772_359_200_000, "2026-03-01T10:00:00Z");
    assert_eq!(events[0].identities.len(), 2);
    assert!(
        events[0]
            .properties
            .contains(&param("amount", Value::Number(42.5)))
    );
    assert!(
        events[0]
            .properties
            .contains(&param("items", Value::Integer(3)))
    );
    assert_eq!(events[1].at, 1_772_361_000_000, "11:30 at +01:00 is 10:30Z");
    let rejected: Vec<(u32, Option<&str>)> = out
        .rejections
        .iter()
        .map(|r| (r.row, r.field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        vec![(3, Some("total")), (4, None), (5, Some("placed_at"))]
    );

    // A later chunk: rows are the file's line numbers.
    let later = plugin
        .validate(&[param("first_row", Value::Integer(10))])
        .unwrap();
    let out = plugin.parse(&later, &sample).unwrap().value;
    assert_eq!(out.rejections[0].row, 12);

    // The connector contract: nothing in, nothing out; bytes that are not
    // text are the input's fault, not a trap.
    let empty = plugin.parse(&params, b"").unwrap().value;
    assert!(empty.records.is_empty() && empty.rejections.is_empty());
    assert!(matches!(
        plugin_error(plugin.parse(&params, b"\xff\xfe{")),
        PluginError::InvalidInput(m) if m.starts_with("not UTF-8")
    ));
}

fn context() -> Context {
    Context {
        channel: "web".into(),
        at: NOW,
        attributes: Vec::new(),
    }
}

/// `propensity-offers`' columns: lifetime value, purchases in 90 days, last purchase.
fn offers_batch(rows: &[(f64, i64, i64)]) -> ProfileBatch {
    aggregates_batch(
        rows.len() as u32,
        vec![dense(ColumnData::Number(
            rows.iter().map(|r| r.0).collect(),
        ))],
        vec![
            dense(ColumnData::Integer(rows.iter().map(|r| r.1).collect())),
            dense(ColumnData::Timestamp(
                rows.iter().map(|r| NOW - r.2 * DAY_MS).collect(),
            )),
        ],
    )
}

#[test]
fn python_strategy_example_decides_learns_into_its_state_and_forecasts() {
    let runtime = runtime();
    let plugin = install(
        &runtime,
        &built(&python::PROPENSITY_OFFERS),
        PluginKind::Strategy,
    );
    let actions = plugin.strategy_actions(&[]).unwrap().value;
    let names: Vec<&str> = actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["discount_10", "free_shipping", "vip_preview", "no_offer"]
    );
    let params = plugin.validate(&[]).unwrap();

    let customers = [(1500.0, 6, 3), (50.0, 0, 200), (400.0, 2, 60)];
    let batch = offers_batch(&customers);
    let out = plugin.decide(&params, &batch, &context()).expect("decides");
    assert_contract(&out.value, 4, true);
    assert_eq!(
        actions[out.value[0].ranked[0].action as usize].name, "vip_preview",
        "{}",
        out.value[0].explanation
    );
    assert_eq!(
        actions[out.value[1].ranked[0].action as usize].name, "discount_10",
        "{}",
        out.value[1].explanation
    );

    // Conversions on free shipping for the lapsed customer: the model learns
    // and keeps its weights in state, so free shipping gains for them.
    let before = propensity(&out.value[1], 1);
    let items = (0..40)
        .map(|i| Feedback {
            key: 1,
            action: 1,
            kind: FeedbackKind::Conversion,
            reward: 1.0,
            propensity: 0.25,
            at: NOW + i,
        })
        .collect::<Vec<_>>();
    let profiles = offers_batch(&vec![customers[1]; items.len()]);
    let learned = plugin
        .observe(&params, &FeedbackBatch { items, profiles })
        .expect("learns");
    assert!(
        learned
            .logs
            .iter()
            .any(|l| l.message.contains("learned from 40"))
    );
    let after = plugin.decide(&params, &batch, &context()).unwrap().value;
    assert!(propensity(&after[1], 1) > before, "{before} → {after:?}");

    let forecast = plugin.simulate(&params, &batch, &context()).unwrap().value;
    let shares: f64 = forecast.actions.iter().map(|a| a.share).sum();
    assert!((shares - 1.0).abs() < 1e-9, "{shares}");
    assert!(forecast.expected_reward > 0.0);

    // Greedy: every decision is deterministic.
    let greedy = plugin
        .validate(&[param("temperature", Value::Number(0.0))])
        .unwrap();
    let out = plugin.decide(&greedy, &batch, &context()).unwrap();
    assert_contract(&out.value, 4, false);
    assert!(out.value.iter().all(|d| d.ranked[0].propensity == 1.0));
}

fn propensity(decision: &tessera_runtime::api::strategies::Decision, action: u32) -> f64 {
    decision
        .ranked
        .iter()
        .find(|r| r.action == action)
        .map_or(0.0, |r| r.propensity)
}

fn attack(name: &str) -> Vec<FieldValue> {
    vec![param("attack", Value::Text(name.into()))]
}

/// The hostile guest's honest mode answers like the threshold rule.
fn assert_hostile_guest_is_honest_again(plugin: &Plugin) {
    let out = plugin
        .evaluate(
            &attack("none"),
            &spend_batch(&[100.0, 500.0, 499.99, 12_000.0]),
        )
        .expect("the honest call is served");
    assert_eq!(members(&out.value), vec![false, true, false, true]);
}

#[test]
fn python_infinite_loop_is_stopped_by_fuel_and_the_host_serves_the_next_call() {
    let runtime = runtime();
    // Time enough that only fuel can stop it, however busy the machine.
    let limits = Limits {
        time_base: Duration::from_secs(20),
        ..Limits::default()
    };
    let plugin = install_with(
        &runtime,
        &built(&python::HOSTILE),
        PluginKind::Segment,
        limits,
    );
    let budget = plugin.limits().fuel_for(1);
    assert_eq!(
        trap_of(plugin.evaluate(&attack("loop"), &spend_batch(&[1.0]))),
        TrapReason::OutOfFuel { budget }
    );
    assert_hostile_guest_is_honest_again(&plugin);
    assert_honest_call_works(&runtime);
}

#[test]
fn python_infinite_loop_hits_the_time_limit_when_fuel_is_plentiful() {
    let runtime = runtime();
    let limits = Limits {
        fuel_base: runtime.config().caps.fuel_base,
        // Long enough for the honest call afterwards on a busy machine.
        time_base: Duration::from_secs(1),
        ..Limits::default()
    };
    let plugin = install_with(
        &runtime,
        &built(&python::HOSTILE),
        PluginKind::Segment,
        limits.clone(),
    );
    assert_eq!(
        trap_of(plugin.evaluate(&attack("loop"), &spend_batch(&[1.0]))),
        TrapReason::Timeout {
            limit: limits.time_for(1)
        }
    );
    assert_hostile_guest_is_honest_again(&plugin);
    assert_honest_call_works(&runtime);
}

#[test]
fn python_memory_bomb_is_stopped_at_the_memory_limit() {
    let runtime = runtime();
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let plugin = install_with(
        &runtime,
        &built(&python::HOSTILE),
        PluginKind::Segment,
        limits,
    );
    match trap_of(plugin.evaluate(&attack("bomb"), &spend_batch(&[1.0]))) {
        TrapReason::MemoryLimit { limit, requested } => {
            assert_eq!(limit, 32 << 20);
            assert!(requested > limit, "asked for {requested}");
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
    assert_hostile_guest_is_honest_again(&plugin);
    assert_honest_call_works(&runtime);
}

#[test]
fn python_exception_is_an_internal_plugin_error_not_a_trap() {
    let runtime = runtime();
    let plugin = install(&runtime, &built(&python::HOSTILE), PluginKind::Segment);
    assert_eq!(
        plugin_error(plugin.evaluate(&attack("raise"), &spend_batch(&[1.0]))),
        PluginError::Internal("ValueError: the plugin has a bug".into())
    );
    assert_hostile_guest_is_honest_again(&plugin);
}

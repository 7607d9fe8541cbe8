//! The segment contract, run against the first-party Rust `threshold` plugin
//! and its Python and JavaScript twins: same manifest, same answers, same
//! errors.

use tessera_runtime::api::types::{Column, ColumnData, Value};
use tessera_runtime::{CallError, Grants, Limits, Plugin, PluginError, PluginKind, Runtime};
use tessera_tests::{
    batch, members, numbers, param, plugins, program, request, spend_batch, test_programs,
};

use super::runtime;

fn threshold(value: f64) -> Vec<tessera_runtime::api::types::FieldValue> {
    vec![param("threshold", Value::Number(value))]
}

fn plugin_error(result: Result<impl std::fmt::Debug, CallError>) -> PluginError {
    match result {
        Err(CallError::Plugin { error, .. }) => error,
        other => panic!("expected the plugin to fail, got {other:?}"),
    }
}

/// Everything a `threshold` implementation must do, in any language.
fn threshold_contract(plugin: &Plugin) {
    let manifest = &plugin.info().manifest;
    assert_eq!(manifest.name, "threshold");
    assert_eq!(manifest.fields.len(), 1);
    assert_eq!(manifest.fields[0].name, "total_spend");
    assert_eq!(
        manifest.purposes,
        vec![
            "email_marketing".to_string(),
            "personalization".to_string(),
            "analytics".to_string()
        ]
    );

    // Parameters: the host fills the default `op`; the plugin checks the rest.
    let resolved = plugin
        .validate(&threshold(500.0))
        .expect("valid parameters");
    assert!(
        resolved
            .iter()
            .any(|p| p.name == "op" && p.value == Value::Text(">=".into()))
    );
    match plugin.validate(&[]) {
        Err(CallError::InvalidParams { detail, .. }) => {
            assert!(detail.contains("`threshold` is required"), "{detail}")
        }
        other => panic!("expected missing threshold to be refused, got {other:?}"),
    }
    match plugin.validate(&[
        param("threshold", Value::Number(1.0)),
        param("op", Value::Text("!=".into())),
    ]) {
        Err(CallError::InvalidParams { detail, .. }) => {
            assert!(detail.contains("not one of"), "{detail}")
        }
        other => panic!("expected a bad op to be refused, got {other:?}"),
    }
    match plugin.validate(&threshold(f64::INFINITY)) {
        Err(CallError::InvalidParams { detail, .. }) => {
            assert!(detail.contains("not a finite number"), "{detail}")
        }
        other => panic!("expected an infinite threshold to be refused, got {other:?}"),
    }
    // What the schema cannot check is the plugin's to refuse, as a plugin error.
    assert_eq!(
        plugin_error(plugin.evaluate(
            &[param("op", Value::Text(">=".into()))],
            &spend_batch(&[1.0])
        )),
        PluginError::InvalidConfig("parameter `threshold` is required".into())
    );

    // Evaluation: every operator, integer thresholds, missing values.
    let spend = [100.0, 500.0, 499.99, 12_000.0];
    let cases = [
        (">=", [false, true, false, true]),
        (">", [false, false, false, true]),
        ("<", [true, false, true, false]),
        ("<=", [true, true, true, false]),
        ("==", [false, true, false, false]),
    ];
    for (op, expected) in cases {
        let params = [
            param("threshold", Value::Integer(500)),
            param("op", Value::Text(op.into())),
        ];
        let out = plugin
            .evaluate(&params, &spend_batch(&spend))
            .expect("evaluates");
        assert_eq!(members(&out.value), expected, "op {op}");
        assert!(out.cost.fuel > 0 && out.cost.fuel <= out.cost.fuel_budget);
        assert!(out.cost.peak_memory > 0);
    }
    let sparse = Column {
        data: ColumnData::Number(vec![900.0, 0.0, 900.0]),
        present: vec![1, 0, 1],
    };
    let out = plugin
        .evaluate(&threshold(500.0), &batch(3, vec![sparse]))
        .unwrap();
    assert_eq!(
        members(&out.value),
        vec![true, false, true],
        "missing values are never members"
    );
    let integers = Column {
        data: ColumnData::Integer(vec![499, 500, 501]),
        present: Vec::new(),
    };
    let out = plugin
        .evaluate(&threshold(500.0), &batch(3, vec![integers]))
        .unwrap();
    assert_eq!(
        members(&out.value),
        vec![false, true, true],
        "integer columns are widened"
    );

    // A column whose length does not match the rows is the input's fault.
    let short = batch(3, vec![numbers(&[1.0])]);
    assert_eq!(
        plugin_error(plugin.evaluate(&threshold(0.0), &short)),
        PluginError::InvalidInput("column `total_spend` has 1 values for 3 rows".into())
    );

    // A large batch: one answer per row, in order.
    let big: Vec<f64> = (0..10_000).map(f64::from).collect();
    let out = plugin
        .evaluate(&threshold(5_000.0), &spend_batch(&big))
        .unwrap();
    assert_eq!(members(&out.value).iter().filter(|m| **m).count(), 5_000);
    assert!(out.value.member[5_000] == 1 && out.value.member[4_999] == 0);

    // A job's pages in one instance answer as fresh calls do, page after
    // page, and a page the plugin refuses does not spoil the next.
    let params = plugin.validate(&threshold(5_000.0)).expect("valid");
    let mut job = plugin.evaluation(&params).expect("an evaluation");
    for page in 0..4 {
        let values: Vec<f64> = (0..1_024).map(|i| f64::from(page * 2_500 + i)).collect();
        let kept = job.evaluate(&spend_batch(&values)).expect("a page");
        let fresh = plugin.evaluate(&params, &spend_batch(&values)).unwrap();
        assert_eq!(kept.value, fresh.value, "page {page}");
        assert!(kept.cost.fuel > 0 && kept.cost.fuel <= kept.cost.fuel_budget);
    }
    assert_eq!(
        plugin_error(job.evaluate(&short)),
        PluginError::InvalidInput("column `total_spend` has 1 values for 3 rows".into())
    );
    let out = job.evaluate(&spend_batch(&[4_999.0, 5_000.0])).unwrap();
    assert_eq!(members(&out.value), vec![false, true]);
}

/// Installs a segment with no grants at all: the threshold rule needs none,
/// in whichever language it is written.
fn install_ungranted(runtime: &Runtime, bytes: &[u8]) -> Plugin {
    let mut request = request(PluginKind::Segment, Limits::default());
    request.grants = Grants::default();
    runtime
        .install(bytes, request)
        .unwrap_or_else(|e| panic!("install failed: {e}"))
}

#[test]
fn rust_threshold_passes_the_segment_contract() {
    let runtime = runtime();
    threshold_contract(&install_ungranted(&runtime, plugins::THRESHOLD));
}

#[test]
fn python_threshold_twin_passes_the_same_contract() {
    let path = test_programs::THRESHOLD_PY.unwrap_or_else(|why| {
        panic!("the Python twin could not be built with componentize-py: {why}")
    });
    let runtime = runtime();
    let python = install_ungranted(&runtime, &program(path));
    let rust = install_ungranted(&runtime, plugins::THRESHOLD);
    assert_eq!(
        python.info().manifest,
        rust.info().manifest,
        "the twins describe themselves identically"
    );
    threshold_contract(&python);
}

#[test]
fn javascript_threshold_twin_passes_the_same_contract() {
    let path = test_programs::THRESHOLD_JS.unwrap_or_else(|why| {
        panic!("the JavaScript twin could not be built with componentize-js: {why}")
    });
    let runtime = runtime();
    let js = install_ungranted(&runtime, &program(path));
    let rust = install_ungranted(&runtime, plugins::THRESHOLD);
    assert_eq!(
        js.info().manifest,
        rust.info().manifest,
        "the twins describe themselves identically"
    );
    assert!(
        js.info().plans,
        "the JavaScript SDK exports the plan, as the Rust SDK does"
    );
    threshold_contract(&js);
}

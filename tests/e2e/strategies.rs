//! Strategies through the runtime: the `tessera:strategy` campaign plan
//! (actions and columns from parameters, checked like segment plans), and
//! the first-party strategy plugins' contract — valid indices, honest
//! propensities, explanations, state, hostile feedback — and learning.

use std::sync::Arc;

use tessera_runtime::api::strategies::{Context, Decision, Feedback, FeedbackBatch, FeedbackKind};
use tessera_runtime::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value};
use tessera_runtime::{
    CallError, InstallError, InstallRequest, Limits, MemoryState, Plugin, PluginError, PluginKind,
    Runtime, StateScope, StateStore, TrapReason,
};
use tessera_tests::{install, numbers, param, plugins, program, request, test_programs};

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

/// Installs a plugin with its own in-memory state, which the test can read.
fn install_stateful(
    runtime: &Runtime,
    bytes: &[u8],
    installation: &str,
) -> (Plugin, Arc<MemoryState>, StateScope) {
    let state = Arc::new(MemoryState::new());
    let plugin = runtime
        .install(
            bytes,
            InstallRequest {
                state: state.clone(),
                installation: installation.into(),
                ..request(PluginKind::Strategy, Limits::default())
            },
        )
        .unwrap_or_else(|e| panic!("install failed: {e}"));
    let scope = StateScope {
        tenant: "acme".into(),
        plugin: installation.into(),
    };
    (plugin, state, scope)
}

fn invalid_output(error: CallError) -> String {
    match error {
        CallError::InvalidOutput { detail, .. } => detail,
        other => panic!("expected an invalid result, got {other:?}"),
    }
}

fn invalid_input(error: CallError) -> String {
    match error {
        CallError::Plugin {
            error: PluginError::InvalidInput(message),
            ..
        } => message,
        other => panic!("expected invalid input, got {other:?}"),
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
    assert_eq!(
        probe.plan(&params).unwrap().value,
        needs,
        "the generic plan serves a planned strategy's columns"
    );

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

// --- The stub of `tessera:plan/segment-plan.plan` --------------------------

#[test]
fn a_strategy_that_imports_segment_plan_installs_plans_and_traps_only_if_it_calls_it() {
    let runtime = runtime();
    let bytes = program(test_programs::PLAN_IMPORT);
    let probe = install(&runtime, &bytes, PluginKind::Strategy);
    assert!(probe.info().plans);
    let params = probe
        .validate(&[param("offers", texts(&["red", "green"]))])
        .unwrap();
    let names: Vec<String> = probe
        .strategy_actions(&params)
        .unwrap()
        .value
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["red", "green"]);
    let batch = rows(vec![1, 2], vec![numbers(&[0.25, 4.0])]);
    let honest = |plugin: &Plugin| {
        let out = plugin.decide(&params, &batch, &context(1)).unwrap().value;
        assert_eq!(out[1].explanation, "score 4");
    };
    honest(&probe);

    let calling = probe
        .validate(&[
            param("offers", texts(&["red", "green"])),
            param("call-host-plan", Value::Boolean(true)),
        ])
        .unwrap();
    let error = probe.decide(&calling, &batch, &context(2)).unwrap_err();
    match error.trap_reason() {
        Some(TrapReason::Other(message)) => assert_eq!(
            message,
            "segment-plan.plan is not a host function; a strategy exports campaign-plan.plan"
        ),
        other => panic!("expected a trap naming segment-plan.plan, got {other:?}: {error}"),
    }
    assert!(error.to_string().contains("plan-import@0.1.0"), "{error}");
    assert_eq!(probe.total_traps(), 1);
    // The same installation, and the host, serve the next honest call.
    honest(&probe);
    tessera_tests::assert_honest_call_works(&runtime);

    // Only strategies get the stub: for another kind the import is refused.
    for kind in [PluginKind::Segment, PluginKind::Connector] {
        match runtime.install(&bytes, request(kind, Limits::default())) {
            Err(error @ InstallError::UngrantedImport { .. }) => {
                let message = error.to_string();
                assert!(
                    message.contains("tessera:plan/segment-plan@0.1.0"),
                    "{message}"
                );
                assert!(
                    message.contains("not an import Tessera provides"),
                    "{message}"
                );
            }
            other => panic!("expected segment-plan to be refused for a {kind:?}, got {other:?}"),
        }
    }
}

/// A strategy-kind component whose core module imports `function` of
/// `interface`, which the WIT `package` defines: for imports no SDK emits.
fn component_importing(package: &str, interface: &str, function: &str) -> Vec<u8> {
    let core = format!(
        r#"(module
             (import "{interface}" "{function}" (func))
             (func (export "run") call 0)
             (@custom "tessera:wit-version" "0.1.0"))"#
    );
    let mut module = wat::parse_str(&core).expect("valid WAT");
    let mut resolve = wit_parser::Resolve::default();
    let id = resolve
        .push_str("probe.wit", package)
        .expect("the WIT parses");
    let world = resolve
        .select_world(&[id], Some("probe"))
        .expect("the world exists");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module accepted")
        .validate(true)
        .encode()
        .expect("component encodes")
}

#[test]
fn other_imports_of_segment_plan_and_unknown_imports_stay_refused_for_strategies() {
    let runtime = runtime();
    // Another function in the interface whose `plan` the host stubs: not linked.
    let other_function = component_importing(
        "package tessera:plan@0.1.0;\n\
         interface segment-plan { plan-everything: func(); }\n\
         world probe { import segment-plan; export run: func(); }",
        "tessera:plan/segment-plan@0.1.0",
        "plan-everything",
    );
    match runtime.install(
        &other_function,
        request(PluginKind::Strategy, Limits::default()),
    ) {
        Err(error @ InstallError::WorldMismatch { .. }) => {
            let message = error.to_string();
            assert!(message.contains("plan-everything"), "{message}");
        }
        other => panic!("expected `plan-everything` to be refused, got {other:?}"),
    }
    // An interface Tessera does not provide at all.
    let unknown = component_importing(
        "package acme:evil@0.1.0;\n\
         interface backdoor { open: func(); }\n\
         world probe { import backdoor; export run: func(); }",
        "acme:evil/backdoor@0.1.0",
        "open",
    );
    match runtime.install(&unknown, request(PluginKind::Strategy, Limits::default())) {
        Err(error @ InstallError::UngrantedImport { .. }) => {
            let message = error.to_string();
            assert!(message.contains("acme:evil/backdoor@0.1.0"), "{message}");
            assert!(
                message.contains("Tessera provides no such import"),
                "{message}"
            );
        }
        other => panic!("expected the unknown import to be refused, got {other:?}"),
    }
    tessera_tests::assert_honest_call_works(&runtime);
}

// --- The first-party strategies -------------------------------------------

const OFFERS: [&str; 4] = ["coupon", "bundle", "free_gift", "points"];

fn item(key: u64, action: u32, kind: FeedbackKind, reward: f64) -> Feedback {
    Feedback {
        key,
        action,
        kind,
        reward,
        propensity: 0.25,
        at: 0,
    }
}

/// Feedback for `items`, with one profile row per item (`fields` per row).
fn feedback(items: Vec<Feedback>, fields: Vec<Column>) -> FeedbackBatch {
    let keys = items.iter().map(|i| i.key).collect();
    FeedbackBatch {
        items,
        profiles: rows(keys, fields),
    }
}

/// The contract every strategy keeps: one decision per row, every action
/// ranked once with a valid index, a finite score and a propensity in
/// (0, 1] (for a policy that randomises) summing to 1, and an explanation.
pub(crate) fn assert_contract(decisions: &[Decision], actions: usize, randomised: bool) {
    for (row, d) in decisions.iter().enumerate() {
        assert!(!d.explanation.is_empty(), "row {row}");
        let mut seen = vec![false; actions];
        for r in &d.ranked {
            assert!((r.action as usize) < actions, "row {row}: {r:?}");
            assert!(!std::mem::replace(&mut seen[r.action as usize], true));
            assert!(r.score.is_finite());
            assert!(r.propensity > 0.0 || !randomised, "row {row}: {r:?}");
            assert!(r.propensity <= 1.0, "row {row}: {r:?}");
        }
        if randomised {
            assert!(seen.iter().all(|s| *s), "row {row} ranks every action");
            let total: f64 = d.ranked.iter().map(|r| r.propensity).sum();
            assert!((total - 1.0).abs() < 1e-9, "row {row}: {total}");
        }
    }
}

/// How often each action was chosen (ranked first), as shares.
fn chosen_shares(decisions: &[Decision], actions: usize) -> Vec<f64> {
    let mut counts = vec![0.0; actions];
    for d in decisions {
        counts[d.ranked[0].action as usize] += 1.0;
    }
    counts.iter().map(|c| c / decisions.len() as f64).collect()
}

/// The propensity a decision gives `action`.
fn propensity_of(decision: &Decision, action: u32) -> f64 {
    decision
        .ranked
        .iter()
        .find(|r| r.action == action)
        .map(|r| r.propensity)
        .unwrap()
}

#[test]
fn thompson_keeps_the_contract_and_its_propensities_are_choice_frequencies() {
    let runtime = runtime();
    let (thompson, state, scope) = install_stateful(&runtime, plugins::THOMPSON, "thompson");
    let params = thompson
        .validate(&[
            param("actions", texts(&OFFERS)),
            param("per_segment", texts(&["vip"])),
        ])
        .unwrap();
    assert_eq!(thompson.strategy_actions(&params).unwrap().value.len(), 4);
    assert_eq!(
        thompson.strategy_plan(&params).unwrap().value.segments,
        ["vip"]
    );

    // Everyone has seen the offers; `bundle` is clicked most. VIPs (the
    // first half of the rows) prefer `points`.
    let mut items = Vec::new();
    let mut vip = Vec::new();
    for (action, clicks_all, clicks_vip) in [(0, 20, 2), (1, 60, 2), (2, 30, 2), (3, 25, 40)] {
        for n in 0..400u64 {
            let member = n < 100;
            let key = n;
            items.push(item(key, action, FeedbackKind::Impression, 0.0));
            vip.push(member);
            let clicks = if member { clicks_vip } else { clicks_all };
            if (n % 100) < clicks {
                items.push(item(key, action, FeedbackKind::Click, 1.0));
                vip.push(member);
            }
        }
    }
    thompson
        .observe(&params, &feedback(items, vec![booleans(&vip)]))
        .unwrap();
    let used = state.usage(&scope).unwrap();
    assert!(used > 0);

    let n = 2_000u64;
    let member: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
    let batch = rows((0..n).collect(), vec![booleans(&member)]);
    let out = thompson
        .decide(&params, &batch, &context(42))
        .unwrap()
        .value;
    assert_contract(&out, 4, true);
    assert!(out[0].explanation.contains("mean") && out[0].explanation.contains("trials"));
    assert!(out[0].explanation.contains("vip"), "{}", out[0].explanation);
    // Replayable: the same rows at the same time decide the same.
    assert_eq!(
        out,
        thompson
            .decide(&params, &batch, &context(42))
            .unwrap()
            .value
    );

    // Within a group, every row carries the same propensities, and the
    // actions are chosen about that often.
    for (group, best) in [(0usize, 3u32), (1, 1)] {
        let decisions: Vec<Decision> = out.iter().skip(group).step_by(2).cloned().collect();
        let shares = chosen_shares(&decisions, 4);
        for a in 0..4u32 {
            let p = propensity_of(&decisions[0], a);
            assert!(decisions.iter().all(|d| propensity_of(d, a) == p));
            assert!(
                (shares[a as usize] - p).abs() < 0.05,
                "{a}: {shares:?} vs {p}"
            );
        }
        assert!(shares[best as usize] > 0.6, "group {group}: {shares:?}");
    }

    // Hostile feedback is refused whole, and nothing of it is stored.
    let version = state.version(&scope).unwrap();
    for bad in [
        vec![
            item(1, 0, FeedbackKind::Impression, 0.0),
            item(1, 9, FeedbackKind::Click, 1.0),
        ],
        vec![
            item(1, 0, FeedbackKind::Impression, 0.0),
            item(1, 1, FeedbackKind::Click, f64::NAN),
        ],
    ] {
        let vip = vec![true; bad.len()];
        let message = invalid_input(
            thompson
                .observe(&params, &feedback(bad, vec![booleans(&vip)]))
                .unwrap_err(),
        );
        assert!(message.contains("feedback 1"), "{message}");
    }
    assert_eq!(state.version(&scope).unwrap(), version);
    assert_eq!(state.usage(&scope).unwrap(), used);

    // Simulate forecasts from the posterior: shares sum to 1, `bundle` leads
    // outside the segment, at its global posterior mean (183 / 402).
    let forecast = thompson
        .simulate(
            &params,
            &rows(vec![1, 2], vec![booleans(&[false, false])]),
            &context(5),
        )
        .unwrap()
        .value;
    let total: f64 = forecast.actions.iter().map(|a| a.share).sum();
    assert!((total - 1.0).abs() < 1e-9, "{forecast:?}");
    assert!(forecast.actions[1].share > 0.9, "{forecast:?}");
    assert!(
        (forecast.actions[1].expected_reward - 183.0 / 402.0).abs() < 1e-9,
        "{forecast:?}"
    );
}

#[test]
fn thompson_state_survives_reinstallation_and_is_per_action_list() {
    let runtime = runtime();
    let state = Arc::new(MemoryState::new());
    let install_as = |installation: &str| {
        runtime
            .install(
                plugins::THOMPSON,
                InstallRequest {
                    state: state.clone(),
                    installation: installation.into(),
                    ..request(PluginKind::Strategy, Limits::default())
                },
            )
            .unwrap()
    };
    let first = install_as("campaign");
    let params = first.validate(&[param("actions", texts(&OFFERS))]).unwrap();
    let items = (0..50)
        .map(|k| item(k, 2, FeedbackKind::Impression, 0.0))
        .chain((0..50).map(|k| item(k, 2, FeedbackKind::Click, 1.0)))
        .collect();
    first
        .observe(&params, &feedback(items, Vec::new()))
        .unwrap();
    let forecast = |plugin: &Plugin, params: &[FieldValue]| {
        plugin
            .simulate(params, &rows(vec![1], Vec::new()), &context(1))
            .unwrap()
            .value
    };
    let learnt = forecast(&first, &params);
    // Another instance of the same installation reads the same state.
    let again = install_as("campaign");
    assert_eq!(forecast(&again, &params), learnt);
    // Beta(51, 1) against three Beta(1, 1): each of those wins 1 in 52.
    assert!(
        (learnt.actions[2].share - 49.0 / 52.0).abs() < 0.01,
        "{learnt:?}"
    );
    // Another list of offers starts from the prior.
    let other = again
        .validate(&[param("actions", texts(&["x", "y"]))])
        .unwrap();
    let fresh = forecast(&again, &other);
    assert!((fresh.actions[0].share - 0.5).abs() < 0.05, "{fresh:?}");
}

#[test]
fn rule_based_follows_the_first_matching_rule_with_propensity_one() {
    let runtime = runtime();
    let rules = install(&runtime, plugins::RULE_BASED, PluginKind::Strategy);
    let params = rules
        .validate(&[
            param("rules", texts(&["vip=points", "lapsed=coupon"])),
            param("default", Value::Text("newsletter".into())),
        ])
        .unwrap();
    let names: Vec<String> = rules
        .strategy_actions(&params)
        .unwrap()
        .value
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["points", "coupon", "newsletter"]);
    assert_eq!(
        rules.strategy_plan(&params).unwrap().value.segments,
        ["vip", "lapsed"]
    );

    let batch = rows(
        vec![1, 2, 3, 4],
        vec![
            booleans(&[true, false, true, false]),
            booleans(&[true, true, false, false]),
        ],
    );
    let out = rules.decide(&params, &batch, &context(1)).unwrap().value;
    assert_contract(&out, 3, false);
    let chosen: Vec<u32> = out.iter().map(|d| d.ranked[0].action).collect();
    assert_eq!(chosen, [0, 1, 0, 2]);
    for d in &out {
        assert_eq!(d.ranked[0].propensity, 1.0);
        assert!(d.ranked[1..].iter().all(|r| r.propensity == 0.0));
    }
    assert!(
        out[1].explanation.contains("lapsed"),
        "{}",
        out[1].explanation
    );
    assert!(
        out[3].explanation.contains("default"),
        "{}",
        out[3].explanation
    );

    let forecast = rules.simulate(&params, &batch, &context(1)).unwrap().value;
    let shares: Vec<f64> = forecast.actions.iter().map(|a| a.share).collect();
    assert_eq!(shares, [0.5, 0.25, 0.25]);

    rules
        .observe(
            &params,
            &feedback(vec![item(1, 2, FeedbackKind::Click, 1.0)], Vec::new()),
        )
        .unwrap();
    let message = invalid_input(
        rules
            .observe(
                &params,
                &feedback(vec![item(1, 3, FeedbackKind::Click, 1.0)], Vec::new()),
            )
            .unwrap_err(),
    );
    assert!(message.contains("action 3"), "{message}");
    // A rule naming an unknown offer is refused when the parameters are saved.
    assert!(
        rules
            .validate(&[
                param("rules", texts(&["vip=points"])),
                param("actions", texts(&["coupon"])),
            ])
            .is_err()
    );
}

/// The greedy action of a decision: the one with the largest propensity.
fn greedy(decision: &Decision) -> u32 {
    decision
        .ranked
        .iter()
        .max_by(|a, b| a.propensity.total_cmp(&b.propensity))
        .unwrap()
        .action
}

/// Trains a contextual strategy in rounds of 200 people whose feature
/// `affinity` is 0 or 1: offer 0 is clicked by 70% of those with affinity
/// 1 and 10% of the others, offer 1 the other way round, offer 2 by 5% of
/// everyone.
fn train_planted(plugin: &Plugin, params: &[FieldValue], rounds: u64) {
    let rate = |action: u32, affinity: f64| match action {
        0 => 0.1 + 0.6 * affinity,
        1 => 0.7 - 0.6 * affinity,
        _ => 0.05,
    };
    let mut env = Env(99);
    for round in 0..rounds {
        let keys: Vec<u64> = (round * 200..(round + 1) * 200).collect();
        let affinity: Vec<f64> = keys.iter().map(|k| (k % 2) as f64).collect();
        let decisions = plugin
            .decide(
                params,
                &rows(keys.clone(), vec![numbers(&affinity)]),
                &context(round as i64),
            )
            .unwrap()
            .value;
        let mut items = Vec::new();
        let mut features = Vec::new();
        for ((key, f), d) in keys.iter().zip(&affinity).zip(&decisions) {
            let chosen = d.ranked[0];
            items.push(item(*key, chosen.action, FeedbackKind::Impression, 0.0));
            features.push(*f);
            if env.uniform() < rate(chosen.action, *f) {
                items.push(item(*key, chosen.action, FeedbackKind::Click, 1.0));
                features.push(*f);
            }
        }
        plugin
            .observe(params, &feedback(items, vec![numbers(&features)]))
            .unwrap();
    }
}

#[test]
fn linucb_learns_a_planted_linear_preference_and_keeps_an_epsilon_floor() {
    let runtime = runtime();
    let (linucb, state, scope) = install_stateful(&runtime, plugins::LINUCB, "linucb");
    let params = linucb
        .validate(&[
            param("actions", texts(&["sport", "garden", "books"])),
            param("features", texts(&["affinity"])),
        ])
        .unwrap();
    let needs = linucb.strategy_plan(&params).unwrap().value;
    assert_eq!(needs.fields.len(), 1);
    assert_eq!(needs.fields[0].name, "affinity");
    train_planted(&linucb, &params, 15);
    let used = state.usage(&scope).unwrap();
    // 3 offers x (2 x 2 + 2 + 1) f64, and the key.
    assert_eq!(used, 3 * 7 * 8 + "linucb/".len() as u64 + 16 + 1 + 16);

    let probe = rows(
        vec![10_001, 10_002, 10_003],
        vec![numbers(&[1.0, 0.0, f64::NAN])],
    );
    let out = linucb.decide(&params, &probe, &context(7)).unwrap().value;
    assert_contract(&out, 3, true);
    assert_eq!(greedy(&out[0]), 0, "affinity 1 prefers sport: {:?}", out[0]);
    assert_eq!(
        greedy(&out[1]),
        1,
        "affinity 0 prefers garden: {:?}",
        out[1]
    );
    assert_eq!(greedy(&out[2]), 1, "a missing feature counts as 0");
    for d in &out {
        assert!(
            d.explanation.contains("estimated rate"),
            "{}",
            d.explanation
        );
        for r in &d.ranked {
            assert!(r.propensity >= 0.05 / 3.0 - 1e-12, "{r:?}");
        }
    }
    // Over many rows, the greedy offer is shown about 1 - epsilon + epsilon / K.
    let many = rows((0..3_000).collect(), vec![numbers(&vec![1.0; 3_000])]);
    let decisions = linucb.decide(&params, &many, &context(8)).unwrap().value;
    let shares = chosen_shares(&decisions, 3);
    let expected = propensity_of(&decisions[0], 0);
    assert!(
        (shares[0] - expected).abs() < 0.02,
        "{shares:?} vs {expected}"
    );

    // A new instance reads the same model; hostile feedback changes nothing.
    let again = runtime
        .install(
            plugins::LINUCB,
            InstallRequest {
                state: state.clone(),
                installation: "linucb".into(),
                ..request(PluginKind::Strategy, Limits::default())
            },
        )
        .unwrap();
    assert_eq!(
        again.decide(&params, &probe, &context(7)).unwrap().value,
        out
    );
    let version = state.version(&scope).unwrap();
    for bad in [
        vec![
            item(1, 0, FeedbackKind::Impression, 0.0),
            item(1, 3, FeedbackKind::Click, 1.0),
        ],
        vec![
            item(1, 0, FeedbackKind::Impression, 0.0),
            item(1, 1, FeedbackKind::Click, f64::NAN),
        ],
    ] {
        let n = bad.len();
        invalid_input(
            linucb
                .observe(&params, &feedback(bad, vec![numbers(&vec![1.0; n])]))
                .unwrap_err(),
        );
    }
    assert_eq!(state.version(&scope).unwrap(), version);
    assert_eq!(state.usage(&scope).unwrap(), used);
}

#[test]
fn propensity_ranks_by_predicted_success_times_value_with_known_propensities() {
    let runtime = runtime();
    let (model, state, scope) = install_stateful(&runtime, plugins::PROPENSITY, "propensity");
    let offers = [
        param("actions", texts(&["sport", "garden", "books"])),
        param("features", texts(&["affinity"])),
    ];
    let params = model.validate(&offers).unwrap();
    assert_eq!(
        model.strategy_plan(&params).unwrap().value.fields[0].name,
        "affinity"
    );
    train_planted(&model, &params, 30);
    let used = state.usage(&scope).unwrap();

    let probe = rows(vec![20_001, 20_002], vec![numbers(&[1.0, 0.0])]);
    let out = model.decide(&params, &probe, &context(9)).unwrap().value;
    assert_contract(&out, 3, true);
    assert_eq!(greedy(&out[0]), 0, "affinity 1 prefers sport: {:?}", out[0]);
    assert_eq!(
        greedy(&out[1]),
        1,
        "affinity 0 prefers garden: {:?}",
        out[1]
    );
    assert!(
        out[0].explanation.contains("predicted success"),
        "{}",
        out[0].explanation
    );

    // Worth enough, books (5% for everyone) becomes the best offer.
    let mut valued = offers.to_vec();
    valued.push(param("values", texts(&["books=30"])));
    let valued = model.validate(&valued).unwrap();
    let out = model.decide(&valued, &probe, &context(9)).unwrap().value;
    assert_eq!((greedy(&out[0]), greedy(&out[1])), (2, 2), "{out:?}");

    // Hostile feedback is refused whole.
    for bad in [
        vec![
            item(1, 0, FeedbackKind::Impression, 0.0),
            item(1, 7, FeedbackKind::Click, 1.0),
        ],
        vec![
            item(1, 0, FeedbackKind::Impression, 0.0),
            item(1, 1, FeedbackKind::Click, f64::NAN),
        ],
    ] {
        let n = bad.len();
        invalid_input(
            model
                .observe(&params, &feedback(bad, vec![numbers(&vec![1.0; n])]))
                .unwrap_err(),
        );
    }
    assert_eq!(state.usage(&scope).unwrap(), used);
}

// --- Regret -----------------------------------------------------------------

/// Click rates of the simulated environment, by action: two close
/// offers (5% and 4%).
const RATES: [f64; 4] = [0.02, 0.035, 0.05, 0.04];
/// Click rates a few points apart, as offers of different value tend to
/// be.
const SPREAD_RATES: [f64; 4] = [0.02, 0.04, 0.08, 0.05];
const ROUNDS: usize = 20_000;
const PER_BATCH: usize = 100;
const SEEDS: u64 = 8;

/// The environment's own generator (SplitMix64), independent of the plugins'.
struct Env(u64);

impl Env {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Cumulative (pseudo-)regret of a plugin over [`ROUNDS`] decisions: fresh
/// row keys, [`PER_BATCH`] at a time, then their impressions and clicks.
fn plugin_regret(plugin: &Plugin, params: &[FieldValue], rates: &[f64], seed: u64) -> f64 {
    let best = rates.iter().copied().fold(0.0, f64::max);
    let mut env = Env(seed.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0xE703_7ED1_A0B4_28DB);
    let mut regret = 0.0;
    for round in 0..ROUNDS / PER_BATCH {
        let first = (seed << 40) | (round * PER_BATCH) as u64;
        let keys: Vec<u64> = (first..first + PER_BATCH as u64).collect();
        let at = 1_780_000_000_000 + seed as i64 * 1_000_000_000 + round as i64 * 1_000;
        let decisions = plugin
            .decide(params, &rows(keys.clone(), Vec::new()), &context(at))
            .unwrap()
            .value;
        let mut items = Vec::new();
        for (key, decision) in keys.iter().zip(&decisions) {
            let chosen = decision.ranked[0];
            let rate = rates[chosen.action as usize];
            regret += best - rate;
            let mut shown = item(*key, chosen.action, FeedbackKind::Impression, 0.0);
            shown.propensity = chosen.propensity;
            items.push(shown);
            if env.uniform() < rate {
                items.push(Feedback {
                    kind: FeedbackKind::Click,
                    reward: 1.0,
                    ..shown
                });
            }
        }
        plugin
            .observe(params, &feedback(items, Vec::new()))
            .unwrap();
    }
    regret
}

/// Uniform random choice, natively: the regret of not learning at all.
fn uniform_regret(rates: &[f64], seed: u64) -> f64 {
    let best = rates.iter().copied().fold(0.0, f64::max);
    let mut env = Env(seed ^ 0x5555_5555);
    (0..ROUNDS)
        .map(|_| {
            let a = ((env.uniform() * rates.len() as f64) as usize).min(rates.len() - 1);
            best - rates[a]
        })
        .sum()
}

/// Regret of Thompson, epsilon-greedy (epsilon 0.1) and uniform random
/// over `rates`, seed by seed.
fn regrets(rates: &[f64]) -> Vec<(f64, f64, f64)> {
    let runtime = runtime();
    (0..SEEDS)
        .map(|seed| {
            let (thompson, _, _) =
                install_stateful(&runtime, plugins::THOMPSON, &format!("thompson-{seed}"));
            let ts_params = thompson
                .validate(&[param("actions", texts(&OFFERS))])
                .unwrap();
            let (greedy, _, _) =
                install_stateful(&runtime, plugins::EPSILON_GREEDY, &format!("greedy-{seed}"));
            let eg_params = greedy
                .validate(&[
                    param("actions", texts(&OFFERS)),
                    param("epsilon", Value::Number(0.1)),
                ])
                .unwrap();
            let ts = plugin_regret(&thompson, &ts_params, rates, seed);
            let eg = plugin_regret(&greedy, &eg_params, rates, seed);
            let uniform = uniform_regret(rates, seed);
            println!(
                "rates {rates:?}, seed {seed}: regret thompson {ts:.1}, epsilon-greedy {eg:.1}, \
                 uniform {uniform:.1} (thompson / uniform {:.2}, thompson / epsilon-greedy {:.2})",
                ts / uniform,
                ts / eg
            );
            (ts, eg, uniform)
        })
        .collect()
}

/// The acceptance test of the Thompson plugin: over 20,000 rounds of an
/// environment with known click rates, its cumulative regret is well below
/// uniform random's on every seed, below epsilon-greedy's (epsilon 0.1) over
/// the seeds together, and far below epsilon-greedy's worst seed.
///
/// Epsilon-greedy is not beaten seed by seed, and the margins are set from
/// what was measured (the run is deterministic; it prints every figure).
/// On a seed where its first greedy choices settle on the best offer,
/// epsilon-greedy only pays for its 10% exploration (0.1 x the mean gap of
/// 1.4 points x 20,000 = 27.5): about 30-45 here, as low as Thompson's
/// 25-85, which must still tell 5% from 4% apart (a small divergence, so
/// thousands of impressions). On a seed where it settles on the 4% offer it
/// pays a point of click rate per round until exploration corrects it
/// (217 on seed 1). Measured over 8 seeds: Thompson 0.08-0.31 of uniform;
/// 0.70 of epsilon-greedy in total; worst seed 86 against 217.
#[test]
fn thompson_regret_is_below_uniform_random_and_epsilon_greedy() {
    let mut thompson_total = 0.0;
    let mut greedy_total = 0.0;
    let mut thompson_worst = 0.0f64;
    let mut greedy_worst = 0.0f64;
    for (seed, (ts, eg, uniform)) in regrets(&RATES).into_iter().enumerate() {
        assert!(ts < 0.6 * uniform, "seed {seed}: {ts} vs uniform {uniform}");
        thompson_total += ts;
        greedy_total += eg;
        thompson_worst = thompson_worst.max(ts);
        greedy_worst = greedy_worst.max(eg);
    }
    println!(
        "all seeds: thompson {thompson_total:.1}, epsilon-greedy {greedy_total:.1} ({:.2}); \
         worst seed: thompson {thompson_worst:.1}, epsilon-greedy {greedy_worst:.1}",
        thompson_total / greedy_total
    );
    assert!(
        thompson_total < 0.8 * greedy_total,
        "thompson {thompson_total} vs epsilon-greedy {greedy_total}"
    );
    assert!(
        thompson_worst < 0.6 * greedy_worst,
        "worst seed: thompson {thompson_worst} vs epsilon-greedy {greedy_worst}"
    );
}

/// With offers a few points of click rate apart, Thompson needs a few
/// hundred impressions of each worse offer to set it aside, while
/// epsilon-greedy keeps spending 10% of its decisions on them (0.1 x the
/// mean gap of 3.25 points x 20,000 = 65 at the least): Thompson's regret
/// is below epsilon-greedy's on every seed, and about half of it over the
/// seeds together. Measured over 8 seeds: Thompson 0.04-0.09 of uniform,
/// 0.26-0.71 of epsilon-greedy seed by seed, 0.44 in total.
#[test]
fn thompson_regret_is_below_both_on_every_seed_when_offers_are_points_apart() {
    let (mut thompson_total, mut greedy_total) = (0.0, 0.0);
    for (seed, (ts, eg, uniform)) in regrets(&SPREAD_RATES).into_iter().enumerate() {
        assert!(ts < 0.2 * uniform, "seed {seed}: {ts} vs uniform {uniform}");
        assert!(ts < 0.8 * eg, "seed {seed}: {ts} vs epsilon-greedy {eg}");
        thompson_total += ts;
        greedy_total += eg;
    }
    assert!(
        thompson_total < 0.6 * greedy_total,
        "thompson {thompson_total} vs epsilon-greedy {greedy_total}"
    );
}

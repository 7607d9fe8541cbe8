//! The first-party plugins through the runtime: what each does with real
//! input, including the awkward parts.

use std::sync::Arc;

use tessera_runtime::api::records::Record;
use tessera_runtime::api::strategies::{Context, Feedback, FeedbackBatch, FeedbackKind};
use tessera_runtime::api::types::{ProfileBatch, Value};
use tessera_runtime::{
    InstallRequest, Limits, MemoryState, PluginKind, StateScope, StateStore, TrapReason,
};
use tessera_tests::{
    assert_honest_plugin_works, batch, install, param, plugins, program, request, spend_batch,
    test_programs,
};

use super::runtime;

#[test]
fn ndjson_parses_tracks_identifies_and_aliases_and_rejects_bad_lines_by_number() {
    let runtime = runtime();
    let ndjson = install(&runtime, plugins::NDJSON, PluginKind::Connector);
    let params = ndjson
        .validate(&[param("id_prefix", Value::Text("web:".into()))])
        .unwrap();
    let input = concat!(
        "\u{feff}{\"id\":\"e1\",\"event\":\"purchase\",\"at\":\"2026-11-01T10:00:00+08:00\",",
        "\"identities\":{\"email\":\"A@Example.com\"},\"properties\":{\"amount\":59.9,\"tags\":[\"sale\"]}}\r\n",
        "\n",
        "{\"id\":7,\"type\":\"identify\",\"identities\":{\"member_id\":\"M1\"},\"traits\":{\"tier\":\"gold\"}}\n",
        "{\"id\":\"l1\",\"type\":\"alias\",\"identities\":{\"email\":\"a@example.com\",\"member_id\":\"M1\"}}\n",
        "{\"id\":\"e2\",\"event\":\"view\",\"at\":\"last tuesday\",\"identities\":{\"email\":\"a@example.com\"}}\n",
        "{\"id\":\"e3\",\"event\":\"view\",\"at\":1,\"identities\":{\"email\":\"a@example.com\"},\"properties\":{\"p\":{\"nested\":1}}}\n",
        "{\"id\":\"e4\",\"type\":\"teleport\",\"identities\":{\"email\":\"a@example.com\"}}\n",
        "[1,2,3]\n",
    );
    let out = ndjson.parse(&params, input.as_bytes()).unwrap().value;
    assert_eq!(out.records.len(), 3);
    match &out.records[0] {
        Record::Event(e) => {
            assert_eq!(e.source_id, "web:e1");
            assert_eq!(e.at, 1_793_498_400_000, "the offset is applied: 02:00 UTC");
            assert_eq!(
                e.identities[0].value, "A@Example.com",
                "normalising identities is the host's job"
            );
            assert!(
                e.properties
                    .iter()
                    .any(|p| p.name == "tags" && p.value == Value::TextList(vec!["sale".into()]))
            );
        }
        other => panic!("expected an event, got {other:?}"),
    }
    assert!(matches!(&out.records[1], Record::TraitUpdate(t) if t.source_id == "web:7"));
    assert!(matches!(&out.records[2], Record::IdentityLink(l) if l.identities.len() == 2));
    let rejected: Vec<_> = out
        .rejections
        .iter()
        .map(|r| (r.row, r.field.clone()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (5, Some("at".into())),
            (6, Some("properties".into())),
            (7, Some("type".into())),
            (8, None)
        ]
    );
    assert!(out.rejections[0].reason.contains("not an RFC 3339 time"));
    assert!(out.rejections[2].reason.contains("unknown type `teleport`"));
}

#[test]
fn ndjson_rejects_overlong_lines_and_keeps_the_rest() {
    let runtime = runtime();
    let ndjson = install(&runtime, plugins::NDJSON, PluginKind::Connector);
    let params = ndjson
        .validate(&[param("max_line_bytes", Value::Integer(128))])
        .unwrap();
    let long = format!(
        "{{\"id\":\"x\",\"event\":\"v\",\"at\":1,\"identities\":{{\"email\":\"{}\"}}}}",
        "a".repeat(200)
    );
    let ok = "{\"id\":\"y\",\"event\":\"v\",\"at\":1,\"identities\":{\"email\":\"b@example.com\"}}";
    let out = ndjson
        .parse(&params, format!("{long}\n{ok}").as_bytes())
        .unwrap()
        .value;
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.rejections[0].row, 1);
    assert!(out.rejections[0].reason.contains("over the limit of 128"));
    assert!(
        ndjson
            .validate(&[param("max_line_bytes", Value::Integer(8))])
            .is_err(),
        "below the schema's minimum"
    );
}

fn context(at: i64) -> Context {
    Context {
        channel: "email".into(),
        at,
        attributes: Vec::new(),
    }
}

fn feedback(action: u32, kind: FeedbackKind, reward: f64) -> Feedback {
    Feedback {
        key: 1,
        action,
        kind,
        reward,
        propensity: 0.5,
        at: 0,
    }
}

#[test]
fn epsilon_greedy_learns_from_feedback_kept_in_host_state() {
    let runtime = runtime();
    let state = Arc::new(MemoryState::new());
    let bandit = runtime
        .install(
            plugins::EPSILON_GREEDY,
            InstallRequest {
                state: state.clone(),
                installation: "bandit".into(),
                ..request(PluginKind::Strategy, Limits::default())
            },
        )
        .unwrap();
    let params = bandit
        .validate(&[param("epsilon", Value::Number(0.0))])
        .unwrap();
    let rows = batch(20, Vec::new());

    // Untried offers are tried first, in order.
    let first = bandit.decide(&params, &rows, &context(1)).unwrap().value;
    assert!(
        first
            .iter()
            .all(|d| d.ranked[0].action == 0 && d.ranked[0].propensity == 1.0)
    );
    assert_eq!(first[0].ranked.len(), 4, "every action is ranked");

    // Each offer shown 10 times; double_points (2) converts best.
    let mut items = Vec::new();
    for action in 0..4 {
        for _ in 0..10 {
            items.push(feedback(action, FeedbackKind::Impression, 0.0));
        }
    }
    for (action, conversions) in [(0, 2), (1, 1), (2, 6), (3, 0)] {
        for _ in 0..conversions {
            items.push(feedback(action, FeedbackKind::Conversion, 1.0));
        }
    }
    let profiles = ProfileBatch {
        rows: items.len() as u32,
        keys: vec![1; items.len()],
        fields: Vec::new(),
        aggregates: Vec::new(),
        now: 0,
    };
    let observed = bandit
        .observe(&params, &FeedbackBatch { items, profiles })
        .unwrap();
    assert_eq!(observed.cost.host_calls, 2, "one state read and one write");
    let scope = StateScope {
        tenant: "acme".into(),
        plugin: "bandit".into(),
    };
    assert_eq!(state.usage(&scope).unwrap(), "arms".len() as u64 + 64);

    let next = bandit.decide(&params, &rows, &context(2)).unwrap().value;
    assert!(
        next.iter().all(|d| d.ranked[0].action == 2),
        "exploits the best offer"
    );
    assert!(
        next[0].explanation.contains("double_points"),
        "{}",
        next[0].explanation
    );
    let forecast = bandit.simulate(&params, &rows, &context(2)).unwrap().value;
    assert!(
        (forecast.expected_reward - 0.6).abs() < 1e-9,
        "{forecast:?}"
    );

    // Feedback naming an action that does not exist fails and changes nothing.
    let bad = FeedbackBatch {
        items: vec![feedback(9, FeedbackKind::Impression, 0.0)],
        profiles: ProfileBatch {
            rows: 1,
            keys: vec![1],
            fields: Vec::new(),
            aggregates: Vec::new(),
            now: 0,
        },
    };
    assert!(bandit.observe(&params, &bad).is_err());
    assert_eq!(
        bandit.decide(&params, &rows, &context(3)).unwrap().value[0].ranked[0].action,
        2
    );
}

#[test]
fn concurrent_calls_are_isolated_and_a_trapping_neighbour_does_not_disturb_them() {
    let runtime = runtime();
    let honest = install(&runtime, plugins::THRESHOLD, PluginKind::Segment);
    let hostile = install(
        &runtime,
        &program(test_programs::PANIC),
        PluginKind::Segment,
    );
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (honest, hostile) = (honest.clone(), hostile.clone());
            scope.spawn(move || {
                for i in 0..25 {
                    if t == 0 && i < 2 {
                        let error = hostile.evaluate(&[], &spend_batch(&[1.0])).unwrap_err();
                        assert_eq!(error.trap_reason(), Some(&TrapReason::Panic));
                    }
                    assert_honest_plugin_works(&honest);
                }
            });
        }
    });
    assert_eq!(honest.total_traps(), 0);
    assert_eq!(hostile.total_traps(), 2);
}

fn impressions(action: u32, count: usize) -> FeedbackBatch {
    FeedbackBatch {
        items: vec![feedback(action, FeedbackKind::Impression, 0.0); count],
        profiles: ProfileBatch {
            rows: count as u32,
            keys: vec![1; count],
            fields: Vec::new(),
            aggregates: Vec::new(),
            now: 0,
        },
    }
}

fn observed_impressions(bandit: &tessera_runtime::Plugin) -> String {
    let forecast = bandit
        .simulate(&[], &batch(1, Vec::new()), &context(1))
        .unwrap()
        .value;
    forecast.notes
}

#[test]
fn installations_never_share_state_even_under_the_same_name() {
    let runtime = runtime();
    let state = Arc::new(MemoryState::new());
    let install_as = |installation: &str| {
        runtime
            .install(
                plugins::EPSILON_GREEDY,
                InstallRequest {
                    state: state.clone(),
                    installation: installation.into(),
                    ..request(PluginKind::Strategy, Limits::default())
                },
            )
            .unwrap()
    };
    let ours = install_as("first-party");
    let impostor = install_as("partner-upload");
    assert_eq!(ours.info().manifest.name, impostor.info().manifest.name);
    impostor.observe(&[], &impressions(3, 50)).unwrap();
    assert!(observed_impressions(&impostor).contains("from 50 observed"));
    assert!(
        observed_impressions(&ours).contains("from 0 observed"),
        "{}",
        observed_impressions(&ours)
    );
}

#[test]
fn concurrent_feedback_to_one_installation_loses_no_update() {
    let runtime = runtime();
    let bandit = install(&runtime, plugins::EPSILON_GREEDY, PluginKind::Strategy);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let bandit = bandit.clone();
            scope.spawn(move || {
                for _ in 0..10 {
                    bandit
                        .observe(&[], &impressions(1, 1))
                        .expect("observe succeeds, retried on conflict");
                }
            });
        }
    });
    let notes = observed_impressions(&bandit);
    assert!(notes.contains("from 40 observed"), "{notes}");
}

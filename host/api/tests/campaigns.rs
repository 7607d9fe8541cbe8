//! Campaigns over HTTP, where they meet the rest of the service: a
//! definition tried with `POST /v1/simulate` saves nothing and is refused
//! as saving refuses it; the decisions made about a person are in their
//! `/v1/me` and exports, and go with their erasure; a strategy that a
//! campaign runs cannot be removed from under it.

mod common;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use common::{ACME, Fixture};
use serde_json::{Value, json};
use tessera_api::Role;
use tessera_bundle::{Bundle, Kind, PublisherKey, SourceManifest};
use tessera_runtime::RuntimeConfig;
use tessera_runtime::api::types::{FieldValue, Value as PluginValue};
use tessera_segments::SegmentSpec;
use tessera_vault::{ConsentChange, IdentityKind, Incoming};

const SEGMENT: &str = "spenders";
const PURPOSE: &str = "personalization";

/// Registry work from a test: on a thread of its own (plugin work blocks).
fn blocking<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(work).join().expect("no panic"))
}

/// The fixture with the threshold segment plugin and the epsilon-greedy
/// strategy for ACME, and its segment of people who spent 100 or more.
fn fixture() -> Fixture {
    let (f, registry) = Fixture::with_registry(RuntimeConfig::default());
    let segments = f.state.segments.clone().expect("segments");
    blocking(move || {
        registry
            .install_builtin(ACME, tessera_guests::plugins::THRESHOLD, Kind::Segment, 0)
            .expect("install");
        registry
            .install_builtin(
                ACME,
                tessera_guests::plugins::EPSILON_GREEDY,
                Kind::Strategy,
                65_536,
            )
            .expect("install");
        segments
            .put(
                ACME,
                SEGMENT,
                SegmentSpec {
                    plugin: "threshold".into(),
                    params: vec![FieldValue {
                        name: "threshold".into(),
                        value: PluginValue::Number(100.0),
                    }],
                    purpose: Some(PURPOSE.into()),
                    ..SegmentSpec::default()
                },
                &common::operator(),
            )
            .expect("segment");
    });
    f
}

/// People of the segment who consent to its purpose; their subject ids.
fn people(f: &Fixture, members: &[&str]) -> Vec<String> {
    let subjects = members
        .iter()
        .map(|member| {
            let item = Incoming {
                identities: vec![(IdentityKind::MemberId, (*member).to_owned())],
                traits: BTreeMap::from([("total_spend".to_owned(), json!(500))]),
                events: Vec::new(),
                consents: vec![ConsentChange {
                    purpose: PURPOSE.into(),
                    granted: true,
                    method: "web_form".into(),
                    given_at_ms: None,
                }],
            };
            f.vault()
                .ingest(ACME, &item, &common::operator())
                .unwrap()
                .subject
                .unwrap()
        })
        .collect();
    let segments = f.state.segments.clone().expect("segments");
    blocking(move || segments.recompute(ACME, SEGMENT).expect("recompute"));
    subjects
}

/// A campaign definition of `strategy` on the segment, as the API takes it.
fn definition(strategy: &str, holdout: f64) -> Value {
    json!({"strategy": strategy, "segment": SEGMENT, "purpose": PURPOSE, "holdout": holdout,
           "goal": {"event": "purchase"}})
}

/// Saves, simulates and runs a campaign over HTTP.
async fn launch(f: &Fixture, name: &str, body: Value) {
    let marketer = f.token(ACME, Role::Marketer).to_owned();
    let path = format!("/v1/campaigns/{name}");
    f.call(Method::PUT, &path, Some(&marketer), Some(body))
        .await
        .expect(StatusCode::OK);
    f.call(
        Method::POST,
        &format!("{path}/simulate"),
        Some(&marketer),
        None,
    )
    .await
    .expect(StatusCode::OK);
    f.call(
        Method::POST,
        &format!("{path}/status"),
        Some(&marketer),
        Some(json!({"status": "running"})),
    )
    .await
    .expect(StatusCode::OK);
}

/// The tenant's campaigns, as listed.
async fn campaigns(f: &Fixture) -> Value {
    f.call(
        Method::GET,
        "/v1/campaigns",
        Some(f.token(ACME, Role::Analyst)),
        None,
    )
    .await
    .expect(StatusCode::OK)
    .body["campaigns"]
        .clone()
}

fn audited(f: &Fixture) -> Vec<String> {
    f.vault()
        .audit_entries(ACME, 0, 100_000)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test]
async fn a_definition_is_simulated_without_saving_anything_and_refused_as_saving_refuses_it() {
    let f = fixture();
    people(&f, &["M-1", "M-2", "M-3"]);
    let marketer = f.token(ACME, Role::Marketer).to_owned();
    let before = audited(&f).len();

    let answer = f
        .call(
            Method::POST,
            "/v1/simulate",
            Some(&marketer),
            Some(definition("epsilon-greedy", 0.5)),
        )
        .await
        .expect(StatusCode::OK);

    assert_eq!(answer.body["segment_size"], 3);
    assert_eq!(answer.body["consenting"], 3);
    assert_eq!(answer.body["actions"].as_array().unwrap().len(), 4);
    assert_eq!(
        &audited(&f)[before..],
        ["plugin.read"],
        "nothing but the strategy's read of the segment"
    );
    assert_eq!(campaigns(&f).await, json!([]), "nothing saved");

    let mut wrong = Vec::new();
    for (field, value) in [
        ("holdout", json!(0.7)),
        ("fallback", json!("free_car")),
        ("segment", json!("nobody")),
        ("strategy", json!("threshold")),
        ("strategy", json!("nothing-by-that-name")),
        ("params", json!({"epsilon": 5})),
        ("purpose", json!("analytics")),
        ("goal", json!({"event": "purchase", "source": "neither"})),
        ("nmae", json!("a misspelt field")),
    ] {
        let mut body = definition("epsilon-greedy", 0.1);
        body[field] = value;
        wrong.push(body);
    }
    let mut untyped = definition("epsilon-greedy", 0.1);
    untyped["holdout"] = json!("a tenth");
    wrong.push(untyped);
    for body in wrong {
        let saving = f
            .call(
                Method::PUT,
                "/v1/campaigns/autumn",
                Some(&marketer),
                Some(body.clone()),
            )
            .await;
        let trying = f
            .call(Method::POST, "/v1/simulate", Some(&marketer), Some(body))
            .await;
        assert!(saving.status.is_client_error(), "{}", saving.body);
        assert_eq!((trying.status, &trying.body), (saving.status, &saving.body));
    }
    let refused = f
        .call(
            Method::POST,
            "/v1/simulate?logs_from=nothing",
            Some(&marketer),
            Some(definition("epsilon-greedy", 0.1)),
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(refused.code(), "unknown_campaign");
    assert_eq!(campaigns(&f).await, json!([]), "nothing saved");
}

#[tokio::test]
async fn a_person_sees_the_decisions_made_about_them_in_v1_me_and_its_exports() {
    let f = fixture();
    let subjects = people(&f, &["M-ann", "M-bo"]);
    let (ann, bo) = (&subjects[0], &subjects[1]);
    launch(&f, "spring", definition("epsilon-greedy", 0.0)).await;
    let decided = f
        .call(
            Method::POST,
            "/v1/decide",
            Some(f.token(ACME, Role::Marketer)),
            Some(json!({"campaign": "spring", "subject": ann, "channel": "email"})),
        )
        .await
        .expect(StatusCode::OK);
    let id = decided.body["decision"].as_str().unwrap().to_owned();
    let ann_token = f.subject_token(ACME, ann);

    let mine = f
        .call(Method::GET, "/v1/me", Some(&ann_token), None)
        .await
        .expect(StatusCode::OK);

    let decisions = mine.body["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1);
    let seen = &decisions[0];
    assert_eq!(seen["id"], id.as_str());
    assert_eq!(seen["campaign"], "spring");
    assert_eq!(seen["channel"], "email");
    assert_eq!(seen["control_group"], false);
    assert_eq!(seen["shown"], decided.body["action"]);
    assert_eq!(seen["explanation"], decided.body["explanation"]);
    for internal in ["propensity", "ranked", "shadow", "attributes", "subject"] {
        assert!(seen.get(internal).is_none(), "{internal}: {seen}");
    }
    let exported = f
        .call(Method::GET, "/v1/me/export", Some(&ann_token), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(exported.body["decisions"], mine.body["decisions"]);
    let table = f
        .call(
            Method::GET,
            "/v1/me/export?format=csv&table=decisions",
            Some(&ann_token),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let csv = table.body.as_str().unwrap();
    assert!(csv.starts_with("at_ms,campaign,channel,control_group,shown,explanation,decision\r\n"));
    assert!(csv.contains(",spring,email,false,"), "{csv}");
    assert!(csv.trim_end().ends_with(&id), "{csv}");
    let operator = f.token(ACME, Role::Operator).to_owned();
    let by_operator = f
        .call(
            Method::GET,
            &format!("/v1/subjects/{ann}/export?format=json"),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(by_operator.body["decisions"], mine.body["decisions"]);

    // Another person sees none of them.
    let theirs = f
        .call(
            Method::GET,
            "/v1/me",
            Some(&f.subject_token(ACME, bo)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(theirs.body["decisions"], json!([]));

    // Erased, nothing of them remains in the decision log.
    f.call(Method::POST, "/v1/me/deletion", Some(&ann_token), None)
        .await
        .expect(StatusCode::ACCEPTED);
    let strategies = f.state.strategies.clone().expect("strategies");
    let ann = ann.clone();
    let left = blocking(move || strategies.decisions_about(ACME, &[ann]).expect("log"));
    assert!(left.is_empty(), "{left:?}");
}

/// A signed bundle of the `thompson` strategy.
fn thompson_bundle(key: &PublisherKey) -> Vec<u8> {
    let source: SourceManifest = serde_json::from_value(json!({
        "publisher": "Acme Analytics",
        "version": "1.0.0",
        "plugins": [{
            "name": "thompson",
            "kind": "strategy",
            "wit_version": "0.1.0",
            "component": "thompson.wasm",
            "permissions": {"purposes": [PURPOSE, "email_marketing"], "state_quota": 65_536},
        }]
    }))
    .unwrap();
    let mut bundle =
        Bundle::build(source, vec![tessera_guests::plugins::THOMPSON.to_vec()]).unwrap();
    bundle.sign(key);
    bundle.to_bytes()
}

#[tokio::test]
async fn a_strategy_that_a_campaign_runs_is_not_removed_until_the_campaign_is_completed() {
    let f = fixture();
    people(&f, &["M-1"]);
    let registry = f.state.plugins.clone().expect("registry");
    blocking(move || {
        let key = PublisherKey::generate().unwrap();
        let operator = common::operator();
        registry
            .trust(ACME, &key.public().to_string(), "Acme Analytics", &operator)
            .expect("trust");
        registry
            .install(ACME, &thompson_bundle(&key), false, &operator)
            .expect("install");
        registry
            .approve(ACME, "thompson", None, None, &operator)
            .expect("approve");
    });
    launch(&f, "spring", definition("thompson", 0.0)).await;
    let operator = f.token(ACME, Role::Operator).to_owned();

    let refused = f
        .call(
            Method::DELETE,
            "/v1/plugins/thompson",
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::CONFLICT);

    assert_eq!(refused.code(), "plugin_in_use");
    assert_eq!(
        refused.body["error"]["details"]["used_by"],
        json!(["campaign spring (running)"])
    );
    f.call(Method::GET, "/v1/plugins/thompson", Some(&operator), None)
        .await
        .expect(StatusCode::OK);
    f.call(
        Method::POST,
        "/v1/campaigns/spring/status",
        Some(&operator),
        Some(json!({"status": "completed"})),
    )
    .await
    .expect(StatusCode::OK);
    let removed = f
        .call(
            Method::DELETE,
            "/v1/plugins/thompson",
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(removed.body["name"], "thompson");
    let kept = f
        .call(Method::GET, "/v1/campaigns/spring", Some(&operator), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(kept.body["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_decisions_takes_turns_and_every_one_is_answered_and_logged() {
    let f = fixture();
    let subjects = people(&f, &["M-ann", "M-bo"]);
    launch(&f, "spring", definition("epsilon-greedy", 0.0)).await;
    let burst = 4 * tessera_api::decide_concurrency() + 3;
    let f = std::sync::Arc::new(f);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..burst {
        let (f, ann) = (f.clone(), subjects[0].clone());
        calls.spawn(async move {
            f.call(
                Method::POST,
                "/v1/decide",
                Some(f.token(ACME, Role::Marketer)),
                Some(json!({"campaign": "spring", "subject": ann})),
            )
            .await
            .expect(StatusCode::OK)
            .body["decision"]
                .as_str()
                .expect("a logged decision")
                .to_owned()
        });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(id) = calls.join_next().await {
        ids.insert(id.expect("the call returns"));
    }
    assert_eq!(ids.len(), burst, "one distinct decision per request");
    let mine = f
        .call(
            Method::GET,
            "/v1/me",
            Some(&f.subject_token(ACME, &subjects[0])),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let logged: std::collections::BTreeSet<String> = mine.body["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(logged, ids, "every answered decision is logged");
}

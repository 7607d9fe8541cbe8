//! `POST /v1/campaigns/{name}/sends` and the sends' status: a running
//! campaign sent through `webhook-out` to a loopback receiver, watched
//! over the API until it completes, and the answers for what does not
//! exist or may not be sent.

mod common;
#[path = "../../segments/tests/common/webhook.rs"]
mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{ACME, Fixture};
use serde_json::{Value, json};
use tessera_api::Role;
use tessera_runtime::api::types::{FieldValue, Value as PluginValue};
use tessera_segments::SegmentSpec;
use tessera_vault::{ConsentChange, IdentityKind, Incoming};
use webhook::Destination;

const PURPOSE: &str = "personalization";

/// The fixture with plugins whose connectors may reach a loopback
/// receiver: the threshold segment `buyers` of three consenting people
/// with an email address and a member id, the epsilon-greedy strategy,
/// and `webhook-out` granted the purpose and email addresses.
fn fixture() -> (Fixture, Destination) {
    let mut f = Fixture::new();
    let registry = webhook::registry(f.state.vault.clone());
    f.with_plugins(registry.clone());
    for i in 0..3 {
        let item = Incoming {
            identities: vec![
                (IdentityKind::MemberId, format!("M-{i}")),
                (IdentityKind::Email, format!("buyer{i}@example.com")),
            ],
            traits: BTreeMap::from([("total_spend".to_owned(), json!(500))]),
            events: Vec::new(),
            consents: vec![ConsentChange {
                purpose: PURPOSE.into(),
                granted: true,
                method: "web_form".into(),
                given_at_ms: None,
            }],
        };
        f.vault().ingest(ACME, &item, &common::operator()).unwrap();
    }
    let segments = f.state.segments.clone().expect("segments");
    let vault = f.state.vault.clone();
    // Plugin calls block: off the async runtime's thread.
    f.install_campaign_plugins();
    let destination = std::thread::spawn(move || {
        segments
            .put(
                ACME,
                "buyers",
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
        segments.recompute(ACME, "buyers").expect("recompute");
        Destination::install(&registry, &vault, ACME, &[PURPOSE], &["email"])
    })
    .join()
    .expect("installed");
    (f, destination)
}

/// Saves, simulates and runs the campaign `name` over the API.
async fn running(f: &Fixture, token: &str, name: &str) {
    f.call(
        Method::PUT,
        &format!("/v1/campaigns/{name}"),
        Some(token),
        Some(
            json!({"strategy": "epsilon-greedy", "segment": "buyers", "purpose": PURPOSE,
                    "holdout": 0.3, "fallback": "no_offer", "goal": {"event": "purchase"}}),
        ),
    )
    .await
    .expect(StatusCode::OK);
    f.call(
        Method::POST,
        &format!("/v1/campaigns/{name}/simulate"),
        Some(token),
        None,
    )
    .await
    .expect(StatusCode::OK);
    f.call(
        Method::POST,
        &format!("/v1/campaigns/{name}/status"),
        Some(token),
        Some(json!({"status": "running"})),
    )
    .await
    .expect(StatusCode::OK);
}

/// The sends of the campaign `spring`, over the API.
async fn sends(f: &Fixture, token: &str) -> Vec<Value> {
    let list = f
        .call(Method::GET, "/v1/campaigns/spring/sends", Some(token), None)
        .await
        .expect(StatusCode::OK);
    list.body["sends"].as_array().expect("a list").clone()
}

/// Waits for a send to end (at most ~10 s) and returns it.
async fn ended(f: &Fixture, token: &str, campaign: &str, id: &str) -> Value {
    for _ in 0..500 {
        let shown = f
            .call(
                Method::GET,
                &format!("/v1/campaigns/{campaign}/sends/{id}"),
                Some(token),
                None,
            )
            .await
            .expect(StatusCode::OK);
        if shown.body["status"] != "running" {
            return shown.body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("send {id} still runs");
}

#[tokio::test]
async fn a_send_is_accepted_runs_in_the_background_and_shows_what_became_of_everyone() {
    let (f, destination) = fixture();
    let marketer = f.token(ACME, Role::Marketer).to_owned();
    running(&f, &marketer, "spring").await;
    let body = json!({"connector": "webhook-out", "recipient": "email",
                      "params": {"url": destination.url}});

    let accepted = f
        .call(
            Method::POST,
            "/v1/campaigns/spring/sends",
            Some(&marketer),
            Some(body.clone()),
        )
        .await
        .expect(StatusCode::ACCEPTED);

    let started = &accepted.body;
    assert_eq!(started["status"], "running");
    assert_eq!(started["campaign"], "spring");
    assert_eq!(started["segment"], "buyers");
    assert_eq!(started["recipient"], "email");
    assert_eq!(started["channel"], "email", "the default channel");
    assert_eq!(started["purpose"], PURPOSE);
    let id = started["id"].as_str().unwrap();
    assert!(id.starts_with("snd-"), "{id}");
    let done = ended(&f, &marketer, "spring", id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["members"], 3);
    assert_eq!(
        done["decided"].as_u64().unwrap() + done["control"].as_u64().unwrap(),
        3,
        "{done}"
    );
    assert_eq!((&done["sent"], &done["delivered"]), (&json!(3), &json!(3)));
    assert_eq!(done["fallback"]["no_consent"], 0);
    assert_eq!(done["runs"].as_array().unwrap().len(), 1);
    assert_eq!(sends(&f, &marketer).await, vec![done.clone()]);
    // Each person got their action at their email address, naming the
    // decision the receiver posts feedback on (with the write key).
    let actions = destination.received.actions();
    assert_eq!(actions.len(), 3);
    let recipients: Vec<&str> = actions
        .iter()
        .map(|a| a["recipient"].as_str().unwrap())
        .collect();
    assert!(recipients.iter().all(|r| r.ends_with("@example.com")));
    let write_key = f.token(ACME, Role::Ingest).to_owned();
    for action in &actions {
        let decision = action["attributes"]["decision"].as_str().unwrap();
        let joined = f
            .call(
                Method::POST,
                "/v1/feedback",
                Some(&write_key),
                Some(json!({"decision": decision, "kind": "click"})),
            )
            .await
            .expect(StatusCode::OK);
        assert_eq!(joined.body["campaign"], "spring");
        assert_eq!(joined.body["duplicate"], false);
    }

    // What cannot be sent is refused with the reason, and nothing stored.
    for (body, status, code) in [
        (
            json!({"connector": "webhook-out", "recipient": "fax"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_recipient",
        ),
        (
            json!({"connector": "webhook-out", "recipient": "phone",
                   "params": {"url": destination.url}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_granted",
        ),
        (
            json!({"connector": "webhook-out", "recipient": "email",
                   "params": {"url": destination.url}, "channel": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_send",
        ),
        (
            json!({"connector": "nowhere", "recipient": "email"}),
            StatusCode::NOT_FOUND,
            "unknown_plugin",
        ),
    ] {
        let answer = f
            .call(
                Method::POST,
                "/v1/campaigns/spring/sends",
                Some(&marketer),
                Some(body),
            )
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{}",
            answer.body
        );
    }
    f.call(
        Method::POST,
        "/v1/campaigns/spring/status",
        Some(&marketer),
        Some(json!({"status": "paused"})),
    )
    .await
    .expect(StatusCode::OK);
    let paused = f
        .call(
            Method::POST,
            "/v1/campaigns/spring/sends",
            Some(&marketer),
            Some(body),
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(paused.code(), "campaign_not_running");
    assert_eq!(sends(&f, &marketer).await.len(), 1, "nothing more stored");
}

#[tokio::test]
async fn unknown_or_ill_shaped_campaigns_and_sends_are_not_found() {
    let (f, _destination) = fixture();
    let marketer = f.token(ACME, Role::Marketer).to_owned();
    running(&f, &marketer, "spring").await;
    let long = "x".repeat(2_000);
    for (method, uri, code) in [
        (
            Method::GET,
            "/v1/campaigns/nobody/sends".to_owned(),
            "unknown_campaign",
        ),
        (
            Method::GET,
            "/v1/campaigns/Bad!Name/sends".to_owned(),
            "unknown_campaign",
        ),
        (
            Method::GET,
            format!("/v1/campaigns/{long}/sends"),
            "unknown_campaign",
        ),
        (
            Method::GET,
            "/v1/campaigns/nobody/sends/snd-0000000000000-00000000".to_owned(),
            "unknown_campaign",
        ),
        (
            Method::GET,
            "/v1/campaigns/spring/sends/snd-0000000000000-00000000".to_owned(),
            "unknown_send",
        ),
        (
            Method::GET,
            "/v1/campaigns/spring/sends/nope".to_owned(),
            "unknown_send",
        ),
        (
            Method::GET,
            format!("/v1/campaigns/spring/sends/{long}"),
            "unknown_send",
        ),
        (
            Method::POST,
            "/v1/campaigns/nobody/sends".to_owned(),
            "unknown_campaign",
        ),
    ] {
        let body = (method == Method::POST).then(|| {
            json!({"connector": "webhook-out", "recipient": "email",
                   "params": {"url": "http://127.0.0.1:9/"}})
        });
        let answer = f.call(method.clone(), &uri, Some(&marketer), body).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::NOT_FOUND, code),
            "{method} {}: {}",
            &uri[..uri.len().min(80)],
            answer.body
        );
    }
}

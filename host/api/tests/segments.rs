//! Segments over HTTP: a segment saved from the `threshold` plugin is
//! recomputed by itself, its members listed page by page with when they
//! entered, its sizes recorded; a preview counts without saving; bad
//! segments are refused with the reason; removing one empties it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{ACME, Fixture, GLOBEX};
use serde_json::{Value, json};
use tessera_api::Role;
use tessera_bundle::Kind;
use tessera_runtime::RuntimeConfig;
use tessera_vault::{ConsentChange, IdentityKind, Incoming};

/// The fixture with the threshold segment plugin for ACME, whose schema
/// has `total_spend`.
fn fixture() -> Fixture {
    let (f, registry) = Fixture::with_registry(RuntimeConfig::default());
    std::thread::spawn(move || {
        registry
            .install_builtin(ACME, tessera_guests::plugins::THRESHOLD, Kind::Segment, 0)
            .expect("install");
    })
    .join()
    .expect("installed");
    f
}

/// `count` people spending 0, 100, 200, … who consent to marketing.
fn people(f: &Fixture, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let item = Incoming {
                identities: vec![(IdentityKind::MemberId, format!("M-{i}"))],
                traits: BTreeMap::from([("total_spend".to_owned(), json!(i * 100))]),
                events: Vec::new(),
                consents: vec![ConsentChange {
                    purpose: "email_marketing".into(),
                    granted: true,
                    method: "store_signup".into(),
                    given_at_ms: None,
                }],
            };
            f.vault()
                .ingest(ACME, &item, &common::operator())
                .unwrap()
                .subject
                .unwrap()
        })
        .collect()
}

fn big_spenders(threshold: u32) -> Value {
    json!({
        "plugin": "threshold",
        "params": {"threshold": threshold},
        "description": "spent at least the threshold",
    })
}

/// Waits for the segment's background recompute (at most ~10 s).
async fn recomputed(f: &Fixture, token: &str, name: &str) -> Value {
    for _ in 0..500 {
        let shown = f
            .call(
                Method::GET,
                &format!("/v1/segments/{name}"),
                Some(token),
                None,
            )
            .await
            .expect(StatusCode::OK);
        if shown.body["last_recompute"].is_object() {
            return shown.body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("segment {name} was never recomputed");
}

#[tokio::test]
async fn a_segment_is_saved_recomputed_listed_and_removed() {
    let f = fixture();
    let subjects = people(&f, 12);
    let marketer = f.token(ACME, Role::Marketer).to_owned();

    // Preview: people spending at least 500 are 5..=11; nothing is saved.
    let preview = f
        .call(
            Method::POST,
            "/v1/segments/preview",
            Some(&marketer),
            Some(big_spenders(500)),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(preview.body["purpose"], "email_marketing");
    assert_eq!(preview.body["evaluated"], 12);
    assert_eq!(preview.body["members"], 7);
    assert_eq!(preview.body["sample"].as_array().unwrap().len(), 7);
    let listed = f
        .call(Method::GET, "/v1/segments", Some(&marketer), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.body["segments"], json!([]));

    // Save: the recompute starts by itself.
    let saved = f
        .call(
            Method::PUT,
            "/v1/segments/big-spenders",
            Some(&marketer),
            Some(big_spenders(500)),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(saved.body["plugin"], "threshold");
    assert_eq!(saved.body["params"]["op"], ">=", "defaults are saved");
    let shown = recomputed(&f, &marketer, "big-spenders").await;
    assert_eq!(shown["members"], 7);
    assert_eq!(shown["last_recompute"]["entered"], 7);

    // Members, three at a time, each with when they entered.
    let mut members = Vec::new();
    let mut uri = "/v1/segments/big-spenders/members?limit=3".to_owned();
    loop {
        let page = f
            .call(Method::GET, &uri, Some(&marketer), None)
            .await
            .expect(StatusCode::OK);
        for member in page.body["members"].as_array().unwrap() {
            assert!(member["entered_at_ms"].as_i64().unwrap() > 0);
            members.push(member["subject"].as_str().unwrap().to_owned());
        }
        match page.body["next"].as_str() {
            Some(next) => uri = format!("/v1/segments/big-spenders/members?limit=3&after={next}"),
            None => break,
        }
    }
    let mut expected: Vec<String> = subjects[5..].to_vec();
    expected.sort();
    assert_eq!(members, expected);

    // A recompute on demand records another size point.
    f.call(
        Method::POST,
        "/v1/segments/big-spenders/recompute",
        Some(&marketer),
        None,
    )
    .await
    .expect(StatusCode::ACCEPTED);
    let mut sizes = Value::Null;
    for _ in 0..500 {
        sizes = f
            .call(
                Method::GET,
                "/v1/segments/big-spenders/sizes",
                Some(&marketer),
                None,
            )
            .await
            .expect(StatusCode::OK)
            .body;
        if sizes["sizes"].as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let points = sizes["sizes"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{sizes}");
    assert_eq!(
        (points[0]["members"].as_u64(), points[1]["members"].as_u64()),
        (Some(7), Some(7))
    );
    assert_eq!(points[1]["entered"], 0);

    // The person's own view shows the membership.
    let me = f.subject_token(ACME, &subjects[11]);
    let view = f
        .call(Method::GET, "/v1/me", Some(&me), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(view.body["segments"][0]["segment"], "big-spenders");

    // Another tenant sees none of it.
    let globex = f.token(GLOBEX, Role::Marketer).to_owned();
    let other = f
        .call(
            Method::GET,
            "/v1/segments/big-spenders/members",
            Some(&globex),
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(other.code(), "unknown_segment");

    // Removing it: everyone leaves.
    f.call(
        Method::DELETE,
        "/v1/segments/big-spenders",
        Some(&marketer),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    assert!(
        f.vault()
            .segment_members(ACME, "big-spenders", None, 100)
            .unwrap()
            .is_empty()
    );
    let view = f
        .call(Method::GET, "/v1/me", Some(&me), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(view.body["segments"], json!([]));
    assert_eq!(view.body["past_segments"][0]["segment"], "big-spenders");
}

#[tokio::test]
async fn bad_segments_are_refused_with_the_reason() {
    let f = fixture();
    let marketer = f.token(ACME, Role::Marketer).to_owned();
    let put = |name: &'static str, body: Value| {
        let f = &f;
        let marketer = marketer.clone();
        async move {
            f.call(
                Method::PUT,
                &format!("/v1/segments/{name}"),
                Some(&marketer),
                Some(body),
            )
            .await
        }
    };
    let answer = put("Big", big_spenders(1))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "invalid_segment_name");
    let answer = put("big", json!({"plugin": "threshold", "params": {}}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "invalid_params");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("threshold")
    );
    let answer = put("big", json!({"plugin": "csv-nope", "params": {}}))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "unknown_plugin");
    let mut body = big_spenders(1);
    body["purpose"] = json!("third_party_sharing");
    let answer = put("big", body)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "invalid_purpose");
    let listed = f
        .call(Method::GET, "/v1/segments", Some(&marketer), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.body["segments"], json!([]));
}

#[tokio::test]
async fn a_profile_shows_what_the_role_may_read_and_why_the_person_is_in_a_segment() {
    let f = fixture();
    let subjects = people(&f, 8);
    let ann = &subjects[7];
    f.vault()
        .rectify(
            ACME,
            ann,
            &BTreeMap::from([
                ("email".to_owned(), Some(json!("ann@example.com"))),
                ("city".to_owned(), Some(json!("Lyon"))),
            ]),
            &common::operator(),
        )
        .unwrap();
    let marketer = f.token(ACME, Role::Marketer).to_owned();
    f.call(
        Method::PUT,
        "/v1/segments/big-spenders",
        Some(&marketer),
        Some(big_spenders(500)),
    )
    .await
    .expect(StatusCode::OK);
    recomputed(&f, &marketer, "big-spenders").await;

    let profile = f
        .call(
            Method::GET,
            &format!("/v1/profiles/{ann}"),
            Some(&marketer),
            None,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(profile["traits"]["city"], "Lyon");
    assert_eq!(profile["traits"]["total_spend"], 700);
    assert!(profile["traits"].get("email").is_none(), "{profile}");
    assert_eq!(profile["withheld"]["email"], "pii");
    assert_eq!(profile["segments"][0]["segment"], "big-spenders");
    assert_eq!(
        profile["segments"][0]["why"],
        "threshold: spent at least the threshold"
    );
    assert!(
        profile["consents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["purpose"] == "email_marketing" && c["granted"] == true),
        "{profile}"
    );
    let operator = f.token(ACME, Role::Operator).to_owned();
    let full = f
        .call(
            Method::GET,
            &format!("/v1/profiles/{ann}"),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(full["traits"]["email"], "ann@example.com");
    assert_eq!(full["withheld"], json!({}));
    f.call(Method::GET, "/v1/profiles/nobody", Some(&marketer), None)
        .await
        .expect(StatusCode::NOT_FOUND);
    // An analyst reads aggregates, not people.
    let analyst = f.token(ACME, Role::Analyst).to_owned();
    f.call(
        Method::GET,
        &format!("/v1/profiles/{ann}"),
        Some(&analyst),
        None,
    )
    .await
    .expect(StatusCode::FORBIDDEN);
}

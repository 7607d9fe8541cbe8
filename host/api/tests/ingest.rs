//! Segment-compatible ingest: the calls, write-key authentication,
//! `messageId` idempotency and partial acceptance of batches.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine as _;
use common::{ACME, Fixture, operator};
use serde_json::{Value, json};
use tessera_api::Role;
use tessera_vault::SubjectView;

/// A Segment client's request: the write key as Basic user name, no password.
fn segment_request(write_key: &str, path: &str, body: &Value) -> Request<Body> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{write_key}:"));
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Every person of the tenant, as the access right shows them.
fn people(f: &Fixture) -> Vec<SubjectView> {
    let (people, _) = f.vault().people(ACME, None, 1000).unwrap();
    people
        .iter()
        .map(|p| f.vault().access(ACME, &p.subject, &operator()).unwrap())
        .collect()
}

fn person_with<'a>(people: &'a [SubjectView], kind: &str, value: &str) -> &'a SubjectView {
    people
        .iter()
        .find(|p| p.identities.iter().any(|(k, v)| k == kind && v == value))
        .unwrap_or_else(|| panic!("nobody with {kind} {value}"))
}

#[tokio::test]
async fn track_and_identify_with_the_write_key_store_events_and_traits_under_the_person() {
    let f = Fixture::new();
    let key = f.token(ACME, Role::Ingest).to_owned();
    let identify = json!({
        "userId": "u-100", "messageId": "id-1",
        "traits": {"email": "Ann.Lee@Example.com", "firstName": "Ann", "tier": "gold"},
        "timestamp": "2026-01-02T03:04:05Z"
    });
    let answer = f
        .send(segment_request(&key, "/v1/identify", &identify))
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.body["success"], true);
    assert_eq!(answer.body["accepted"], 1);
    let track = json!({
        "userId": "u-100", "anonymousId": "7f0e2a4c-0000-4000-8000-000000000001",
        "event": "Order Completed", "messageId": "m-1",
        "properties": {"revenue": 42.5, "currency": "EUR"},
        "timestamp": "2026-01-02T03:05:00.000Z",
        "context": {"traits": {"email": "ann.lee@example.com"}, "library": {"name": "analytics-python"}}
    });
    let answer = f
        .send(segment_request(&key, "/v1/track", &track))
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.body["events_inserted"], 1);
    let page =
        json!({"userId": "u-100", "name": "Home", "properties": {"path": "/"}, "messageId": "p-1"});
    f.send(segment_request(&key, "/v1/page", &page))
        .await
        .expect(StatusCode::OK);

    let people = people(&f);
    assert_eq!(people.len(), 1, "one person: {people:?}");
    let ann = &people[0];
    assert!(
        ann.identities
            .contains(&("member_id".into(), "u-100".into()))
    );
    assert!(
        ann.identities
            .contains(&("email".into(), "ann.lee@example.com".into()))
    );
    assert_eq!(ann.traits["first_name"].0, json!("Ann"));
    assert_eq!(ann.traits["tier"].0, json!("gold"));
    let order = ann
        .events
        .iter()
        .find(|e| e.event_type == "order_completed")
        .expect("order");
    assert_eq!(order.properties["revenue"], json!(42.5));
    assert_eq!(order.at_ms, 1_767_323_100_000);
    assert!(
        ann.events
            .iter()
            .any(|e| e.event_type == "page_view" && e.properties["name"] == "Home")
    );
}

#[tokio::test]
async fn a_batch_sent_twice_stores_its_events_once() {
    let f = Fixture::new();
    let key = f.token(ACME, Role::Ingest).to_owned();
    let batch = json!({
        "batch": (0..20).map(|i| json!({
            "type": "track", "userId": format!("u-{}", i % 4), "event": "Viewed Item",
            "messageId": format!("msg-{i}"), "properties": {"item": i}
        })).collect::<Vec<_>>(),
        "sentAt": "2026-01-01T00:00:00Z"
    });
    let first = f
        .send(segment_request(&key, "/v1/batch", &batch))
        .await
        .expect(StatusCode::OK);
    assert_eq!(first.body["events_inserted"], 20);
    assert_eq!(first.body["duplicates"], 0);
    let second = f
        .send(segment_request(&key, "/v1/batch", &batch))
        .await
        .expect(StatusCode::OK);
    assert_eq!(second.body["accepted"], 20);
    assert_eq!(second.body["events_inserted"], 0);
    assert_eq!(second.body["duplicates"], 20);
    let people = people(&f);
    assert_eq!(people.len(), 4);
    let total: usize = people.iter().map(|p| p.events.len()).sum();
    assert_eq!(total, 20);

    let operator = f.token(ACME, Role::Operator).to_owned();
    let metrics = f.call(Method::GET, "/metrics", Some(&operator), None).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(r#"tessera_ingest_events_total{outcome="inserted"} 20"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tessera_ingest_events_total{outcome="duplicate"} 20"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tessera_ingest_messages_total{outcome="accepted"} 40"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_partly_invalid_batch_stores_the_valid_messages_and_lists_the_others() {
    let f = Fixture::new();
    let key = f.token(ACME, Role::Ingest).to_owned();
    let good = |i: usize| json!({"type": "track", "userId": format!("ok-{i}"), "event": "Clicked", "messageId": format!("g-{i}")});
    let batch = json!({"batch": [
        good(0),
        {"type": "track", "event": "Clicked"},                                            // 1: nobody
        good(2),
        {"type": "identify", "userId": "u", "traits": {"shoeSize": 42}},                  // 3: unknown trait
        {"type": "track", "userId": "u", "event": "x", "timestamp": "last tuesday"},      // 4: bad time
        {"type": "teleport", "userId": "u"},                                              // 5: bad type
        {"type": "track", "userId": "u", "event": "x", "properties": {"pad": "z".repeat(40_000)}}, // 6: too large
        {"type": "identify", "userId": "u-7", "traits": {"lifetime_value": "lots"}},      // 7: the vault refuses the type
        good(8),
        "not an object",                                                                  // 9
        {"type": "alias", "userId": "u"},                                                 // 10: no previousId
        good(11)
    ]});
    let answer = f
        .send(segment_request(&key, "/v1/batch", &batch))
        .await
        .expect(StatusCode::OK);
    let body = &answer.body;
    assert_eq!(body["received"], 12);
    assert_eq!(body["accepted"], 4, "{body}");
    assert_eq!(body["events_inserted"], 4);
    let errors: Vec<(u64, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (1, "no_identity"),
            (3, "unknown_trait"),
            (4, "invalid_timestamp"),
            (5, "invalid_message"),
            (6, "message_too_large"),
            (7, "invalid_trait"),
            (9, "invalid_message"),
            (10, "invalid_message"),
        ],
        "{body}"
    );
    let unknown = &body["errors"][1];
    assert_eq!(unknown["details"]["field"], "traits.shoeSize");
    let vault_refused = &body["errors"][5];
    assert_eq!(vault_refused["details"]["field"], "traits.lifetime_value");
    assert!(
        !vault_refused["message"]
            .as_str()
            .unwrap()
            .contains("record 0"),
        "{vault_refused}"
    );
    let people = people(&f);
    assert_eq!(people.len(), 4);
    for i in [0, 2, 8, 11] {
        person_with(&people, "member_id", &format!("ok-{i}"));
    }
}

#[tokio::test]
async fn a_single_invalid_message_is_a_4xx_naming_the_field() {
    let f = Fixture::new();
    let key = f.token(ACME, Role::Ingest).to_owned();
    let answer = f
        .send(segment_request(
            &key,
            "/v1/identify",
            &json!({"userId": "u", "traits": {"shoeSize": 42}}),
        ))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "unknown_trait");
    assert_eq!(answer.body["error"]["details"]["field"], "traits.shoeSize");
    let answer = f
        .send(segment_request(
            &key,
            "/v1/identify",
            &json!({"userId": "u", "traits": {"lifetime_value": "lots"}}),
        ))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "invalid_trait");
    let answer = f
        .send(segment_request(&key, "/v1/events", &json!({"userId": "u"})))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "invalid_message");
    let big = json!({"userId": "u", "event": "x", "properties": {"pad": "z".repeat(40_000)}});
    let answer = f
        .send(segment_request(&key, "/v1/track", &big))
        .await
        .expect(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.code(), "message_too_large");
    assert!(people(&f).is_empty());
}

#[tokio::test]
async fn alias_merges_two_user_ids_and_group_is_an_event() {
    let f = Fixture::new();
    let key = f.token(ACME, Role::Ingest).to_owned();
    for (user, email) in [("old-id", "a@example.org"), ("new-id", "b@example.org")] {
        let identify = json!({"userId": user, "traits": {"email": email}});
        f.send(segment_request(&key, "/v1/identify", &identify))
            .await
            .expect(StatusCode::OK);
    }
    assert_eq!(people(&f).len(), 2);
    f.send(segment_request(
        &key,
        "/v1/alias",
        &json!({"userId": "new-id", "previousId": "old-id"}),
    ))
    .await
    .expect(StatusCode::OK);
    let merged = people(&f);
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert_eq!(merged[0].merged_subjects.len(), 1);
    f.send(segment_request(
        &key,
        "/v1/group",
        &json!({"userId": "new-id", "groupId": "acme-inc", "traits": {"plan": "enterprise"}, "messageId": "g-1"}),
    ))
    .await
    .expect(StatusCode::OK);
    let person = &people(&f)[0];
    let group = person
        .events
        .iter()
        .find(|e| e.event_type == "group")
        .expect("group event");
    assert_eq!(group.properties["group_id"], "acme-inc");
    assert_eq!(group.properties["plan"], "enterprise");
}

#[tokio::test]
async fn batch_context_and_sent_at_apply_to_every_message() {
    let f = Fixture::new();
    let key = f.token(ACME, Role::Ingest).to_owned();
    let batch = json!({
        "batch": [{"type": "track", "anonymousId": "dev-1", "event": "Opened", "messageId": "c-1",
                   "originalTimestamp": "2026-01-01T00:00:00Z"}],
        "context": {"traits": {"email": "carol@example.net"}},
        "sentAt": "2026-01-01T00:00:10Z"
    });
    f.send(segment_request(&key, "/v1/batch", &batch))
        .await
        .expect(StatusCode::OK);
    let people = people(&f);
    let carol = person_with(&people, "email", "carol@example.net");
    assert!(
        carol
            .identities
            .contains(&("device_id".into(), "dev-1".into()))
    );
    // originalTimestamp corrected by the client's clock: 10 s before receipt.
    let at = carol.events[0].at_ms;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now - 10_000 - at).abs() < 60_000, "{at} vs {now}");
}

#[tokio::test]
async fn an_erased_persons_events_are_refused_and_counted() {
    let f = Fixture::new();
    let key = f.token(ACME, Role::Ingest).to_owned();
    let subject = f.subject(ACME, "gone-1");
    f.vault()
        .request_deletion(ACME, &subject, "test", &operator())
        .unwrap();
    let answer = f
        .send(segment_request(
            &key,
            "/v1/track",
            &json!({"userId": "gone-1", "event": "Came Back"}),
        ))
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.body["suppressed"], 1);
    assert_eq!(answer.body["accepted"], 0);
}

#[tokio::test]
async fn a_message_of_the_wrong_shape_is_refused_without_repeating_its_values() {
    let f = Fixture::new();
    let key = f.token(ACME, Role::Ingest).to_owned();
    let single = [
        (
            "/v1/identify",
            json!({"userId": "u", "traits": "ann.secret@example.com"}),
        ),
        (
            "/v1/track",
            json!({"userId": "u", "event": 33_612_345_678_u64}),
        ),
    ];
    for (path, body) in single {
        let answer = f
            .send(segment_request(&key, path, &body))
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.code(), "invalid_message");
        let text = answer.body.to_string();
        assert!(
            !text.contains("secret") && !text.contains("33612345678"),
            "{text}"
        );
    }
    let batch = json!({"batch": [
        {"type": "identify", "userId": "u", "traits": "ann.secret@example.com"},
        {"type": "track", "userId": "u", "event": 33_612_345_678_u64}
    ]});
    let answer = f
        .send(segment_request(&key, "/v1/batch", &batch))
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.body["errors"].as_array().unwrap().len(), 2);
    let text = answer.body.to_string();
    assert!(
        !text.contains("secret") && !text.contains("33612345678"),
        "{text}"
    );
    let answer = f
        .send(segment_request(
            &key,
            "/v1/batch",
            &json!({"batch": "ann.secret@example.com"}),
        ))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        !answer.body.to_string().contains("secret"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn an_event_the_schema_refuses_is_an_item_error_naming_the_property_and_the_rule() {
    let f = Fixture::new();
    let mut settings = f.vault().settings(ACME).unwrap();
    settings
        .events
        .get_mut("purchase")
        .unwrap()
        .properties
        .get_mut("currency")
        .unwrap()
        .allowed = vec![json!("CNY"), json!("USD")];
    f.vault()
        .update_settings(ACME, settings, &operator())
        .unwrap();
    let key = f.token(ACME, Role::Ingest).to_owned();
    let purchase = |i: usize, properties: Value| {
        json!({"type": "track", "userId": format!("buyer-{i}"), "event": "Purchase",
               "messageId": format!("buy-{i}"), "properties": properties})
    };
    let batch = json!({"batch": [
        purchase(0, json!({"amount": 10, "currency": "CNY"})),
        purchase(1, json!({"currency": "CNY"})),
        purchase(2, json!({"amount": "ten"})),
        purchase(3, json!({"amount": 5, "currency": "XYZ"})),
        purchase(4, json!({"amount": 7.5, "channel": "web"})),
    ]});
    let answer = f
        .send(segment_request(&key, "/v1/batch", &batch))
        .await
        .expect(StatusCode::OK);
    let body = &answer.body;
    assert_eq!(body["accepted"], 2, "{body}");
    let errors: Vec<(u64, &str, &str, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["code"].as_str().unwrap(),
                e["details"]["field"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (
                1,
                "invalid_property",
                "properties.amount",
                "invalid event: purchase.amount: required"
            ),
            (
                2,
                "invalid_property",
                "properties.amount",
                "invalid event: purchase.amount: expected a number value"
            ),
            (
                3,
                "invalid_property",
                "properties.currency",
                r#"invalid event: purchase.currency: "XYZ" is not one of "CNY", "USD""#
            ),
        ],
        "{body}"
    );

    // One message alone: the same refusal as the request's answer.
    let single = json!({"userId": "buyer-9", "event": "Purchase", "properties": {}});
    let refused = f
        .send(segment_request(&key, "/v1/track", &single))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.code(), "invalid_property");
    assert_eq!(
        refused.body["error"]["details"]["field"],
        "properties.amount"
    );
    assert_eq!(refused.body["error"]["details"]["reason"], "required");
}

//! The JavaScript examples (`examples/plugins/js/`), built from source by
//! `tessera-guests` with the SDK's build script, signed as bundles with
//! their own `bundle.toml`, installed into a running `tessera serve`,
//! approved, and called through the API: the connector ingests a JSON
//! orders body, the segment finds the lapsed big spenders among those
//! people, the strategy forecasts an offer campaign on that segment.

mod common;

use std::path::Path;

use common::{Server, init_keys, install_bundle, trusted_publisher};
use serde_json::{Value, json};
use tessera_guests::test_programs;

const TENANT: &str = "acme";

/// Bundles an example with its own bundle.toml, signs it, installs and
/// approves it.
fn install_example(server: &Server, operator: &str, key: &Path, name: &str, built: &str) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plugins/js")
        .join(name)
        .join("bundle.toml");
    install_bundle(server, operator, key, name, Path::new(built), &manifest);
}

fn built(component: Result<&'static str, &'static str>, what: &str) -> &'static str {
    component.unwrap_or_else(|why| panic!("the JavaScript {what} example was not built: {why}"))
}

#[test]
fn javascript_examples_install_as_bundles_and_serve_calls_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_keys(root);
    // Installing compiles the component: a JavaScript one carries its
    // engine (12 MB of code), which a debug build on a loaded machine
    // compiles in tens of seconds, past the default 30 s request timeout.
    let server = Server::start_with(root, TENANT, &[("TESSERA_REQUEST_TIMEOUT_MS", "300000")]);
    let operator = server.operator.clone().expect("an operator token");
    let key = trusted_publisher(&server, &operator, "Tessera Examples");

    // The connector: a JSON orders body pushed to a source of it.
    install_example(
        &server,
        &operator,
        &key,
        "json-orders",
        built(test_programs::JS_EXAMPLE_CONNECTOR, "connector"),
    );
    server.ok_call(
        "PUT",
        "/v1/sources/orders",
        &operator,
        json!({"connector": "json-orders"}),
    );
    let orders = json!({"orders": [
        {"id": "o-1", "email": "ann@example.com", "member_id": "M-1",
         "placed_at": "2026-01-10T10:00:00Z", "total": 900.0, "currency": "EUR", "items": 3},
        {"id": "o-2", "email": "bob@example.com",
         "placed_at": "2026-01-12T10:00:00Z", "total": 40.0, "currency": "EUR", "items": 1},
        {"id": "o-3", "email": "not an address", "placed_at": "2026-01-12T10:00:00Z", "total": 5.0}
    ]});
    let pushed = server.ok_call("POST", "/v1/sources/orders/push", &operator, orders);
    let report = &pushed["report"];
    assert_eq!(report["events_inserted"], 2, "{pushed}");
    assert!(
        pushed.to_string().contains("is not an email address"),
        "{pushed}"
    );

    // Both people consent to what the segment and the strategy work for.
    let portal = server.create_token(&operator, "portal", "portal");
    let mut subjects = Vec::new();
    for email in ["ann@example.com", "bob@example.com"] {
        let found = server.ok_call(
            "POST",
            "/v1/subjects/lookup",
            &operator,
            json!({"kind": "email", "value": email}),
        );
        let subject = found["subject"].as_str().expect("a subject").to_owned();
        let token = server.ok_call(
            "POST",
            "/v1/subject-tokens",
            &portal,
            json!({"subject": subject}),
        );
        let token = token["token"].as_str().expect("a subject token").to_owned();
        for purpose in ["analytics", "personalization"] {
            server.ok_call(
                "PUT",
                &format!("/v1/me/consents/{purpose}"),
                &token,
                json!({"granted": true}),
            );
        }
        subjects.push(subject);
    }

    // The segment: Ann spent 900 and has not bought since January.
    install_example(
        &server,
        &operator,
        &key,
        "lapsed-vip",
        built(test_programs::JS_EXAMPLE_SEGMENT, "segment"),
    );
    let preview = server.ok_call(
        "POST",
        "/v1/segments/preview",
        &operator,
        json!({"plugin": "lapsed-vip", "params": {"min_spend": 500, "days": 30},
               "purpose": "analytics"}),
    );
    assert_eq!(preview["evaluated"], 2, "{preview}");
    assert_eq!(preview["members"], 1, "{preview}");
    assert_eq!(preview["sample"], json!([subjects[0]]), "{preview}");

    // The strategy: a forecast of an offer campaign over everyone who bought.
    server.ok_call(
        "PUT",
        "/v1/schema/traits/lifetime_value",
        &operator,
        json!({"class": "standard", "type": "number"}),
    );
    install_example(
        &server,
        &operator,
        &key,
        "next-best-offer",
        built(test_programs::JS_EXAMPLE_STRATEGY, "strategy"),
    );
    server.ok_call(
        "PUT",
        "/v1/segments/buyers",
        &operator,
        json!({"plugin": "lapsed-vip", "params": {"min_spend": 0, "days": 1},
               "purpose": "analytics"}),
    );
    let mut recomputed = Value::Null;
    for _ in 0..300 {
        let (_, segment) = server.call("GET", "/v1/segments/buyers", Some(&operator), None);
        if !segment["last_recompute"].is_null() {
            recomputed = segment;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(recomputed["members"], 2, "both bought: {recomputed}");
    let forecast = server.ok_call(
        "POST",
        "/v1/simulate",
        &operator,
        json!({"strategy": "next-best-offer", "params": {}, "segment": "buyers",
               "purpose": "personalization", "holdout": 0.0, "goal": {"event": "purchase"}}),
    );
    let actions = forecast["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 3, "{forecast}");
    // Neither has a lifetime value: both get 10% off (one order each).
    let ten_percent = actions
        .iter()
        .find(|a| a["action"] == "ten_percent")
        .unwrap_or_else(|| panic!("{forecast}"));
    assert_eq!(ten_percent["share"], 1.0, "{forecast}");
    assert!(server.stop().success());
}

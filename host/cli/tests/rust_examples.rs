//! The Rust examples (`examples/plugins/rust/`), each a standalone project
//! on the Rust SDK, built from source by `tessera-guests` into the shared
//! guest target directory, run through `tessera plugin test --fixtures`,
//! signed as bundles with their own `bundle.toml`, installed into a running
//! `tessera serve`, approved, and called through the API: the connector
//! imports its sample receipt export, the segment finds the slipping
//! regular among those people, the strategy forecasts its win-back ladder
//! on the segment.

mod common;

use std::path::{Path, PathBuf};

use common::{Server, init_keys, install_bundle, ok, p, plugin_test, tessera, trusted_publisher};
use serde_json::{Value, json};
use tessera_guests::test_programs;

const TENANT: &str = "acme";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plugins/rust")
        .join(name)
}

/// The partner's loop on an example: `plugin test` with its fixtures
/// under the grants its bundle.toml requests; then its bundle, signed,
/// installed and approved.
fn test_and_install(
    server: &Server,
    operator: &str,
    key: &Path,
    name: &str,
    built: &str,
) -> String {
    let root = &server.dir;
    let tested = plugin_test(
        root,
        Path::new(built),
        &example(name).join("fixtures.json"),
        &root.join("plugin-test-cache"),
    );
    let manifest = example(name).join("bundle.toml");
    install_bundle(server, operator, key, name, Path::new(built), &manifest);
    tested
}

#[test]
fn rust_examples_build_from_source_install_as_bundles_and_serve_calls_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_keys(root);
    let server = Server::start(root, TENANT);
    let operator = server.operator.clone().expect("an operator token");
    let key = trusted_publisher(&server, &operator, "Example Partner");

    // The connector: its fixtures, then an import of its sample export.
    let tested = test_and_install(
        &server,
        &operator,
        &key,
        "pos-receipts",
        test_programs::RUST_EXAMPLE_CONNECTOR,
    );
    assert!(
        tested.contains("5 events, 0 trait updates, 0 identity links, 4 rejected"),
        "{tested}"
    );
    assert!(
        tested.contains("line 9 (total): `1.299,00` is not an amount"),
        "{tested}"
    );
    // The later chunk keeps the file's line numbers: its bad line is 41.
    assert!(tested.contains("line 41 (total)"), "{tested}");
    let imported = ok(&server.cli(
        &operator,
        &[
            "import",
            p(&example("pos-receipts").join("sample.tsv")),
            "--connector",
            "pos-receipts",
            "--json",
        ],
    ));
    let imported: Value = serde_json::from_str(&imported).expect("JSON");
    assert_eq!(imported["status"], "completed", "{imported}");
    let report = &imported["report"];
    assert_eq!(report["accepted"], 5, "{imported}");
    assert_eq!(report["events_inserted"], 5, "{imported}");
    let text = imported.to_string();
    for rejected in [
        "`05/03/2026 11:00` is not a time",
        "names no customer",
        "`1.299,00` is not an amount",
        "expected 9 tab-separated fields",
    ] {
        assert!(text.contains(rejected), "{rejected}: {imported}");
    }
    // The receipt with both the card and the phone linked them: the
    // phone-only receipt is Ann's.
    let ann = server.ok_call(
        "POST",
        "/v1/subjects/lookup",
        &operator,
        json!({"kind": "phone", "value": "+44 7700 900123"}),
    );
    let by_card = server.ok_call(
        "POST",
        "/v1/subjects/lookup",
        &operator,
        json!({"kind": "member_id", "value": "M-1001"}),
    );
    assert_eq!(ann["subject"], by_card["subject"], "{ann} {by_card}");
    let ann = ann["subject"].as_str().expect("a subject").to_owned();

    // Ann and Bob consent to what the segment and the strategy work for.
    let portal = server.create_token(&operator, "portal", "portal");
    let mut subjects = Vec::new();
    for card in ["M-1001", "M-1002"] {
        let found = server.ok_call(
            "POST",
            "/v1/subjects/lookup",
            &operator,
            json!({"kind": "member_id", "value": card}),
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
    assert_eq!(subjects[0], ann);

    // The segment: Ann bought three times, last in March 2026, so she is a
    // regular slipping away; Bob bought once. (Ten-year window: the sample's
    // dates stay inside it.)
    let tested = test_and_install(
        &server,
        &operator,
        &key,
        "rfm-lifecycle",
        test_programs::RUST_EXAMPLE_SEGMENT,
    );
    // Another window is another plan: the host aggregates what it asks for.
    let planned = ok(&tessera(root)
        .args([
            "plugin",
            "test",
            p(&root.join("bundle-rfm-lifecycle/rfm-lifecycle.wasm")),
            "--param",
            "window_days=90",
            "--cache-dir",
            p(&root.join("plugin-test-cache")),
        ])
        .output()
        .unwrap());
    assert!(
        planned.contains(
            "plan        0 fields, 4 aggregates for these parameters: purchases, spend, \
             first_purchase_at, last_purchase_at"
        ),
        "{planned}"
    );
    for expected in [
        "row 1: member, score 99.44, tier champion",
        "row 2: member, score 54.31, tier new",
        "row 3: member, score 58.77, tier slipping",
        "row 4: not a member, score 0, tier lapsed",
        "row 5: not a member, score 0, tier never",
        // Spend weighing most, the slipping tier only.
        "row 1: not a member, score 99.78, tier champion",
        "row 2: member, score 53.8, tier slipping",
    ] {
        assert!(tested.contains(expected), "{expected}: {tested}");
    }
    let preview = |tier: &str| {
        server.ok_call(
            "POST",
            "/v1/segments/preview",
            &operator,
            json!({"plugin": "rfm-lifecycle", "purpose": "analytics",
                   "params": {"tier": tier, "window_days": 3650}}),
        )
    };
    let slipping = preview("slipping");
    assert_eq!(slipping["evaluated"], 2, "{slipping}");
    assert_eq!(slipping["members"], 1, "{slipping}");
    assert_eq!(slipping["sample"], json!([ann]), "{slipping}");
    let steady = preview("steady");
    assert_eq!(steady["sample"], json!([subjects[1]]), "{steady}");
    assert_eq!(preview("")["members"], 2);
    server.ok_call(
        "PUT",
        "/v1/segments/buyers",
        &operator,
        json!({"plugin": "rfm-lifecycle", "purpose": "personalization",
               "params": {"window_days": 3650}}),
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

    // The strategy: both have been away for more than 180 days, so every
    // rung is open. Ann's orders average 100 (300 over 3; the refund is not
    // a purchase), Bob's 40. At a 40% margin 20% off pays best (10% x
    // order x 20%): 2.0 for Ann, 0.8 for Bob; exploring 30% of the time,
    // 20% off gets 0.7 + 0.1 of everyone and each other rung 0.1.
    let tested = test_and_install(
        &server,
        &operator,
        &key,
        "winback-ladder",
        test_programs::RUST_EXAMPLE_STRATEGY,
    );
    for expected in [
        "row 1: no_offer (propensity 1.00)",
        "row 2: reminder (propensity 1.00)",
        "row 3: twenty_percent (propensity 1.00)",
        "row 4: no_offer (propensity 1.00): never bought",
        "row 1: ten_percent (propensity 1.00)",
    ] {
        assert!(tested.contains(expected), "{expected}: {tested}");
    }
    let forecast = server.ok_call(
        "POST",
        "/v1/simulate",
        &operator,
        json!({"strategy": "winback-ladder", "params": {"epsilon": 0.3},
               "segment": "buyers", "purpose": "personalization", "holdout": 0.0,
               "goal": {"event": "purchase"}}),
    );
    assert_eq!(forecast["consenting"], 2, "{forecast}");
    let share = |action: &str| {
        forecast["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .find(|a| a["action"] == action)
            .and_then(|a| a["share"].as_f64())
            .unwrap_or_else(|| panic!("{action}: {forecast}"))
    };
    for (action, expected) in [
        ("no_offer", 0.0),
        ("reminder", 0.1),
        ("ten_percent", 0.1),
        ("twenty_percent", 0.8),
    ] {
        assert!(
            (share(action) - expected).abs() < 1e-9,
            "{action}: {forecast}"
        );
    }
    // Per subject: Ann 0.1 x 1.2 + 0.1 x 1.8 + 0.8 x 2.0 = 1.9, Bob 0.4
    // of that (his orders are 40): 1.33 on average.
    assert!(
        forecast["notes"]
            .as_str()
            .is_some_and(|n| n.contains("expected margin per subject 1.3300")),
        "{forecast}"
    );

    // A running campaign of the ladder on the segment decides for Bob:
    // greedy, 20% off with propensity 1, and says why.
    server.ok_call(
        "PUT",
        "/v1/campaigns/win-back",
        &operator,
        json!({"strategy": "winback-ladder", "params": {"epsilon": 0.0}, "segment": "buyers",
               "purpose": "personalization", "holdout": 0.0, "fallback": "no_offer",
               "goal": {"event": "purchase", "value": "amount"}}),
    );
    server.ok_call(
        "POST",
        "/v1/campaigns/win-back/simulate",
        &operator,
        json!({}),
    );
    server.ok_call(
        "POST",
        "/v1/campaigns/win-back/status",
        &operator,
        json!({"status": "running"}),
    );
    let decided = server.ok_call(
        "POST",
        "/v1/decide",
        &operator,
        json!({"campaign": "win-back", "identity": {"kind": "member_id", "value": "M-1002"},
               "channel": "email"}),
    );
    assert_eq!(decided["arm"], "treatment", "{decided}");
    assert_eq!(decided["action"], "twenty_percent", "{decided}");
    assert_eq!(decided["propensity"], 1.0, "{decided}");
    assert!(
        decided["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("10.0% conversion x 40.00 order x 20% margin")),
        "{decided}"
    );
    let feedback = server.ok_call(
        "POST",
        "/v1/feedback",
        &operator,
        json!({"decision": decided["decision"], "kind": "impression"}),
    );
    assert_eq!(feedback["queued"], true, "{feedback}");
    assert!(server.stop().success());
}

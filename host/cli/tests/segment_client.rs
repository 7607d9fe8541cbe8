//! Segment's own Python library (`segment-analytics-python`, pinned in
//! `.ci/run`) against a running `tessera serve`: identify, track, page,
//! screen, group and alias calls, one request per call and batched by the
//! library, and the events stored under the right person.
//!
//! The library must be installed (CI does it); without it this test fails
//! and names the pip command: it does not skip.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{Server, init_keys, open_vault};
use serde_json::json;
use tessera_vault::{Actor, IdentityKind, SubjectView, Vault};

const TENANT: &str = "acme";
const PIP: &str = "python3 -m pip install segment-analytics-python==2.4.0";

fn person(vault: &Vault, kind: IdentityKind, value: &str) -> SubjectView {
    let actor = Actor::new("operator", "segment-client-test");
    let subject = vault
        .find_subject(TENANT, &kind, value, &actor)
        .expect("lookup")
        .unwrap_or_else(|| panic!("nobody with {} {value}", kind.label()));
    vault.access(TENANT, &subject, &actor).expect("access")
}

/// Event type → how many the person has.
fn event_counts(view: &SubjectView) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for event in &view.events {
        *counts.entry(event.event_type.as_str()).or_default() += 1;
    }
    counts
}

fn has_identity(view: &SubjectView, kind: &str, value: &str) -> bool {
    view.identities.iter().any(|(k, v)| k == kind && v == value)
}

/// The value of one counter line of the Prometheus text.
fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_segment_python_library_stores_events_under_the_right_person() {
    let dir = tempfile::tempdir().unwrap();
    init_keys(dir.path());
    let server = Server::start(dir.path(), TENANT);
    let operator = server.operator.clone().expect("an operator token");
    let write_key = server.create_token(&operator, "ingest", "python backend");

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/segment-client/send.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .env("TESSERA_URL", &server.url)
        .env("TESSERA_WRITE_KEY", &write_key)
        .output()
        .unwrap_or_else(|error| {
            panic!("python3 cannot be run ({error}); install Python 3, then: {PIP}")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        panic!("the Segment client library is missing; install it with: {PIP}\n{stderr}");
    }
    assert!(
        out.status.success(),
        "the Segment library reported errors ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("no error"), "{stdout}\n{stderr}");

    // The server took every message: none refused, none suppressed; phase 2
    // arrived in fewer requests than messages (the library batched them).
    let (status, metrics) = server.call("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().expect("Prometheus text");
    let accepted = counter(
        metrics,
        r#"tessera_ingest_messages_total{outcome="accepted"}"#,
    );
    let invalid = counter(
        metrics,
        r#"tessera_ingest_messages_total{outcome="invalid"}"#,
    );
    let suppressed = counter(
        metrics,
        r#"tessera_ingest_messages_total{outcome="suppressed"}"#,
    );
    assert_eq!(
        (accepted, invalid, suppressed),
        (9 + 154, 0, 0),
        "{metrics}"
    );
    let batches = counter(
        metrics,
        r#"tessera_http_requests_total{method="POST",route="/v1/batch",status="200"}"#,
    );
    assert!(
        (9 + 2..9 + 154).contains(&batches),
        "9 requests one by one, then 154 messages in a few batches: {batches} requests\n{metrics}"
    );

    // SIGTERM: the server finishes, flushes and exits 0; then the vault is
    // read directly.
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let vault = open_vault(dir.path());

    // u-1: identify traits, her own track, and the track of her device.
    let ann = person(&vault, IdentityKind::MemberId, "u-1");
    assert!(
        has_identity(&ann, "email", "ann.lee@example.com"),
        "{:?}",
        ann.identities
    );
    assert!(
        has_identity(&ann, "device_id", "anon-1"),
        "{:?}",
        ann.identities
    );
    assert_eq!(ann.traits["first_name"].0, json!("Ann"));
    assert_eq!(ann.traits["last_name"].0, json!("Lee"));
    assert_eq!(ann.traits["tier"].0, json!("gold"));
    assert_eq!(ann.traits["city"].0, json!("Lyon"));
    assert_eq!(
        event_counts(&ann),
        BTreeMap::from([("order_completed", 1), ("product_viewed", 1)])
    );
    let order = ann
        .events
        .iter()
        .find(|e| e.event_type == "order_completed")
        .unwrap();
    assert_eq!(order.at_ms, 1_780_315_200_000, "2026-06-01T12:00:00Z");
    assert_eq!(order.properties["revenue"], json!(42.5));
    assert_eq!(order.properties["currency"], json!("EUR"));
    let viewed = ann
        .events
        .iter()
        .find(|e| e.event_type == "product_viewed")
        .unwrap();
    assert_eq!(viewed.properties["sku"], json!("SKU-1"));

    // anon-2 browsed before signing in as u-2: those events stay with the
    // anonymous visitor; a device id never merges two people.
    let visitor = person(&vault, IdentityKind::DeviceId, "anon-2");
    let bob = person(&vault, IdentityKind::MemberId, "u-2");
    assert_ne!(visitor.subject, bob.subject);
    assert_eq!(
        event_counts(&visitor),
        BTreeMap::from([("product_viewed", 2)])
    );
    assert!(
        !visitor.identities.iter().any(|(k, _)| k == "member_id"),
        "{:?}",
        visitor.identities
    );

    // alias(previous_id u-old, user_id u-2): one person under both ids,
    // with the older account's event and both emails.
    let old = person(&vault, IdentityKind::MemberId, "u-old");
    assert_eq!(old.subject, bob.subject, "alias merged u-old and u-2");
    assert!(
        has_identity(&bob, "member_id", "u-old"),
        "{:?}",
        bob.identities
    );
    assert!(has_identity(&bob, "email", "bob@example.com"));
    assert!(has_identity(&bob, "email", "bob.old@example.com"));
    assert_eq!(bob.traits["first_name"].0, json!("Bob"));
    assert_eq!(event_counts(&bob), BTreeMap::from([("signed_up", 1)]));

    // The batched phase: 150 tracks over u-3..u-7, and u-3's page, group
    // and identify, u-4's screen.
    let carol = person(&vault, IdentityKind::MemberId, "u-3");
    assert_eq!(carol.traits["first_name"].0, json!("Carol"));
    assert!(has_identity(&carol, "email", "carol@example.com"));
    assert_eq!(
        event_counts(&carol),
        BTreeMap::from([("group", 1), ("page_view", 1), ("product_added", 30)])
    );
    let page = carol
        .events
        .iter()
        .find(|e| e.event_type == "page_view")
        .unwrap();
    assert_eq!(page.properties["name"], json!("Getting Started"));
    assert_eq!(page.properties["category"], json!("Docs"));
    assert_eq!(page.properties["path"], json!("/docs/start"));
    let group = carol
        .events
        .iter()
        .find(|e| e.event_type == "group")
        .unwrap();
    assert_eq!(group.properties["group_id"], json!("acme-inc"));
    assert_eq!(group.properties["plan"], json!("enterprise"));
    assert_eq!(
        event_counts(&person(&vault, IdentityKind::MemberId, "u-4")),
        BTreeMap::from([("product_added", 30), ("screen_view", 1)])
    );
    for user in ["u-5", "u-6", "u-7"] {
        assert_eq!(
            event_counts(&person(&vault, IdentityKind::MemberId, user)),
            BTreeMap::from([("product_added", 30)]),
            "{user}"
        );
    }
    let added = carol
        .events
        .iter()
        .find(|e| e.event_type == "product_added")
        .unwrap();
    assert_eq!(added.properties["price"], json!(19.9));

    // Nobody else: u-1, the visitor, u-2 (with u-old), u-3 … u-7.
    let (people, _) = vault.people(TENANT, None, 100).unwrap();
    assert_eq!(people.len(), 8, "{people:?}");
}

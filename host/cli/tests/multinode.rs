//! Three `tessera serve` processes on 127.0.0.1 sharing one PostgreSQL schema
//! (records and subject keys): any node serves any request, and what one node
//! changes (a token revoked, a bundle installed or quarantined, a person
//! erased) holds on the others within the change poll interval.
//!
//! Needs `TESSERA_TEST_POSTGRES_URL` (`.ci/postgres start DIR` prints one);
//! `TESSERA_SKIP_POSTGRES=1` skips it and says so on stderr.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{self, DropSchema};
use common::{Server, install_bundle, trusted_publisher};
use serde_json::{Value, json};
use tessera_guests::test_programs;

const TENANT: &str = "acme";
/// How often the nodes read the change marks in this test.
const POLL_MS: &str = "200";
/// The longest a change may take to reach another node here: many poll
/// intervals, so that a slow machine does not fail the test, and still far
/// below the 10-minute token cache the nodes are given (so only the change
/// marks can explain a revocation seen in time).
const BOUND: Duration = Duration::from_secs(30);

/// [`cluster::within`] the test's bound.
fn within_bound<T>(what: &str, attempt: impl FnMut() -> Result<T, String>) -> T {
    cluster::within(BOUND, what, attempt)
}

fn body(value: &Value) -> String {
    value.to_string()
}

#[test]
fn three_nodes_on_one_database_serve_the_same_data_and_follow_each_others_changes() {
    let Some(pg) = cluster::postgres_url("several tessera serve nodes on one PostgreSQL") else {
        return;
    };
    let schema = format!("tessera_multinode_{}", std::process::id());
    let _drop = DropSchema(pg.clone(), schema.clone());

    // Three nodes, each with a directory of its own (key directory for its
    // node name, its own compiled-plugin cache) and the one master key.
    let dirs = cluster::node_dirs(3);
    let start = |dir: &Path| {
        cluster::start_node(
            dir,
            TENANT,
            &pg,
            &schema,
            &[
                ("TESSERA_STORAGE_POLL_MS", POLL_MS),
                ("TESSERA_TOKEN_CACHE_MS", "600000"),
            ],
        )
    };
    let nodes: Vec<Server> = dirs.iter().map(|dir| start(dir.path())).collect();
    let operator = nodes[0]
        .operator
        .clone()
        .expect("the first node made a token");
    assert!(
        nodes[1].operator.is_none() && nodes[2].operator.is_none(),
        "the tenant and its operator token are shared: the later nodes made none"
    );
    assert!(
        !dirs[0].path().join("keys/subject-keys").exists(),
        "the subject keys are in the database, not in a node's key directory"
    );

    // ---- ingestion spread over the nodes, duplicates sent to other nodes
    let ingest = nodes[0].create_token(&operator, "ingest", "ingest");
    for i in 0..30 {
        let event = json!({
            "userId": format!("user-{}", i % 3),
            "event": "Order Completed",
            "messageId": format!("m-{i}"),
            "properties": {"amount": 10.0},
        });
        let node = &nodes[i % 3];
        let (status, answer) = node.call("POST", "/v1/track", Some(&ingest), Some(&body(&event)));
        assert_eq!(status, 200, "event {i} through node {}: {answer}", i % 3);
        assert_eq!(answer["events_inserted"], 1, "event {i}: {answer}");
        if i < 6 {
            // The same message again, through the next node: acknowledged,
            // and not stored again.
            let (status, answer) =
                nodes[(i + 1) % 3].call("POST", "/v1/track", Some(&ingest), Some(&body(&event)));
            assert_eq!(status, 200, "resending event {i}: {answer}");
            assert_eq!(answer["events_inserted"], 0, "resent event {i}: {answer}");
        }
    }
    let mut people = Vec::new();
    for user in 0..3 {
        let lookup = json!({"kind": "member_id", "value": format!("user-{user}")});
        let found: Vec<String> = nodes
            .iter()
            .map(|node| {
                let answer = node.ok_call("POST", "/v1/subjects/lookup", &operator, lookup.clone());
                answer["subject"].as_str().expect("a subject").to_owned()
            })
            .collect();
        assert!(
            found.iter().all(|s| *s == found[0]),
            "user-{user} is one person on every node: {found:?}"
        );
        for (n, node) in nodes.iter().enumerate() {
            let (status, profile) = node.call(
                "GET",
                &format!("/v1/profiles/{}", found[0]),
                Some(&operator),
                None,
            );
            assert_eq!(status, 200, "node {n}: {profile}");
            assert_eq!(
                profile["aggregates"]["order_completed"]["count"], 10,
                "user-{user} on node {n}: each acknowledged event once: {profile}"
            );
        }
        people.push(found[0].clone());
    }

    // ---- a token revoked through one node is refused by the others
    let marketer = nodes[0].create_token(&operator, "marketer", "to revoke");
    let marketer_id = marketer.split('_').nth(2).expect("a token id").to_owned();
    for (n, node) in nodes.iter().enumerate() {
        // Verified (and cached) on every node.
        let (status, answer) = node.call("GET", "/v1/segments", Some(&marketer), None);
        assert_eq!(status, 200, "node {n} accepts the marketer token: {answer}");
    }
    let (status, answer) = nodes[2].call(
        "DELETE",
        &format!("/v1/tokens/{marketer_id}"),
        Some(&operator),
        None,
    );
    assert_eq!(status, 200, "revoking through node 2: {answer}");
    for (n, node) in nodes.iter().enumerate() {
        within_bound(&format!("node {n} refuses the revoked token"), || {
            let (status, answer) = node.call("GET", "/v1/segments", Some(&marketer), None);
            if status == 401 {
                Ok(())
            } else {
                Err(format!("{status} {answer}"))
            }
        });
    }
    let (status, answer) = nodes[1].call("GET", "/v1/segments", Some(&operator), None);
    assert_eq!(status, 200, "other tokens still work: {answer}");

    // ---- a bundle installed through node 0 is served by nodes 1 and 2
    let preview = json!({"plugin": "rfm-lifecycle", "purpose": "analytics",
                         "params": {"tier": "champion", "window_days": 3650}});
    let (status, answer) = nodes[1].call(
        "POST",
        "/v1/segments/preview",
        Some(&operator),
        Some(&body(&preview)),
    );
    assert!(
        (400..500).contains(&status),
        "not installed yet, so not served: {status} {answer}"
    );
    let key = trusted_publisher(&nodes[0], &operator, "Example Partner");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plugins/rust/rfm-lifecycle/bundle.toml");
    install_bundle(
        &nodes[0],
        &operator,
        &key,
        "rfm-lifecycle",
        Path::new(test_programs::RUST_EXAMPLE_SEGMENT),
        &manifest,
    );
    for (n, node) in nodes.iter().enumerate().skip(1) {
        let answer = within_bound(&format!("node {n} serves the new plugin"), || {
            let (status, answer) = node.call(
                "POST",
                "/v1/segments/preview",
                Some(&operator),
                Some(&body(&preview)),
            );
            if status == 200 {
                Ok(answer)
            } else {
                Err(format!("{status} {answer}"))
            }
        });
        assert!(answer["evaluated"].is_u64(), "node {n}: {answer}");
        let (status, listed) = node.call("GET", "/v1/plugins/rfm-lifecycle", Some(&operator), None);
        assert_eq!(status, 200, "node {n}: {listed}");
        assert!(listed.to_string().contains("active"), "node {n}: {listed}");
    }

    // Quarantined through node 1: refused by node 2 (and 0).
    let (status, answer) = nodes[1].call(
        "POST",
        "/v1/plugins/rfm-lifecycle/quarantine",
        Some(&operator),
        Some(&body(&json!({"reason": "checking a report"}))),
    );
    assert_eq!(status, 200, "quarantine through node 1: {answer}");
    for n in [2, 0] {
        within_bound(&format!("node {n} refuses the quarantined plugin"), || {
            let (status, answer) = nodes[n].call(
                "POST",
                "/v1/segments/preview",
                Some(&operator),
                Some(&body(&preview)),
            );
            if status != 200 && answer.to_string().contains("quarantine") {
                Ok(())
            } else {
                Err(format!("{status} {answer}"))
            }
        });
    }

    // ---- a person erased through node 0 is unreadable on every node
    let erased = &people[0];
    for node in &nodes[1..] {
        // Read first, so each node has the person's key cached.
        let (status, answer) = node.call(
            "GET",
            &format!("/v1/subjects/{erased}"),
            Some(&operator),
            None,
        );
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = nodes[0].call(
        "DELETE",
        &format!("/v1/subjects/{erased}"),
        Some(&operator),
        None,
    );
    assert!((200..300).contains(&status), "deleting: {status} {answer}");
    for (n, node) in nodes.iter().enumerate() {
        within_bound(
            &format!("node {n} no longer reads the erased person"),
            || {
                let (status, answer) = node.call(
                    "GET",
                    &format!("/v1/subjects/{erased}"),
                    Some(&operator),
                    None,
                );
                if status == 404 || status == 410 {
                    Ok(())
                } else {
                    Err(format!("{status} {answer}"))
                }
            },
        );
        let (status, answer) = node.call(
            "GET",
            &format!("/v1/profiles/{erased}"),
            Some(&operator),
            None,
        );
        assert!(
            status == 404 || status == 410,
            "node {n}: the profile is gone too: {status} {answer}"
        );
        // The others are untouched.
        let (status, answer) = node.call(
            "GET",
            &format!("/v1/profiles/{}", people[1]),
            Some(&operator),
            None,
        );
        assert_eq!(status, 200, "node {n}: {answer}");
    }

    for (n, node) in nodes.into_iter().enumerate() {
        let status = node.stop();
        assert!(status.success(), "node {n} stops cleanly: {status:?}");
    }
}

//! `tessera migrate`: a sled deployment filled through the real server is
//! copied into PostgreSQL, verified by counts and digests, copied again
//! (nothing new), checked against a tampered row, refused beside a running
//! server and into a destination holding another tenant of the same name,
//! and then served from PostgreSQL with the same answers as from sled.
//!
//! Needs `TESSERA_TEST_POSTGRES_URL` (`.ci/postgres start DIR` prints one);
//! `TESSERA_SKIP_POSTGRES=1` skips it, saying so.

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use common::cluster::{self, DropSchema};
use common::{Server, init_keys, ok, p, tessera};
use serde_json::{Value, json};
use tessera_privacy::MasterKey;
use tessera_store_postgres::{PgOptions, PgStore};
use tessera_vault::Vault;

const TENANT: &str = "acme";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `tessera migrate --from DATA --to PG --schema S ARGS`.
fn migrate(dir: &Path, data: &Path, pg: &str, schema: &str, extra: &[&str]) -> Output {
    tessera(dir)
        .args(["migrate", "--from", p(data), "--to", pg, "--schema", schema])
        .args(extra)
        .output()
        .expect("tessera runs")
}

/// The verification table's row for a tenant and kind: (source count,
/// destination count, result).
fn row(table: &str, tenant: &str, kind: &str) -> (u64, u64, String) {
    let line = table
        .lines()
        .find(|line| {
            line.starts_with(&format!("{tenant} "))
                && line[tenant.len()..].trim_start().starts_with(kind)
        })
        .unwrap_or_else(|| panic!("no row for {tenant} {kind} in\n{table}"));
    let rest = line[tenant.len()..].trim_start()[kind.len()..].to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (
        fields[0].parse().expect("a count"),
        fields[1].parse().expect("a count"),
        fields[fields.len() - 1].to_owned(),
    )
}

/// What the server answers about u-1 and the segment: her profile, the
/// members of `big-spenders`, and u-3's lookup.
fn answers(server: &Server, operator: &str) -> (Value, Value, u16) {
    let found = server.ok_call(
        "POST",
        "/v1/subjects/lookup",
        operator,
        json!({"kind": "member_id", "value": "u-1"}),
    );
    let id = found["subject"].as_str().expect("a subject id").to_owned();
    let (status, profile) = server.call("GET", &format!("/v1/profiles/{id}"), Some(operator), None);
    assert_eq!(status, 200, "{profile}");
    let (status, members) = server.call(
        "GET",
        "/v1/segments/big-spenders/members?limit=100",
        Some(operator),
        None,
    );
    assert_eq!(status, 200, "{members}");
    let (erased, _) = server.call(
        "POST",
        "/v1/subjects/lookup",
        Some(operator),
        Some(r#"{"kind": "member_id", "value": "u-3"}"#),
    );
    (profile, members, erased)
}

#[test]
fn a_sled_deployment_moves_to_postgres_verified_restartable_and_serving_the_same_answers() {
    let Some(pg) = cluster::postgres_url("tessera migrate") else {
        return;
    };
    let schema = format!("tessera_migrate_test_{}", std::process::id());
    let _drop = DropSchema(pg.clone(), schema.clone());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init_keys(dir.path());

    // A deployment on sled, filled through the API: a trait schema, people
    // with identities, traits and events, consents, a recomputed segment,
    // an erased person (suppression, deletion request, purge job).
    let server = Server::start(dir.path(), TENANT);
    let operator = server.operator.clone().expect("an operator token");
    server.ok_call(
        "PUT",
        "/v1/schema/traits/total_spend",
        &operator,
        json!({"class": "standard", "type": "number"}),
    );
    let mut batch = Vec::new();
    for (n, spend) in [(1, 820), (2, 95), (3, 640), (4, 1200)] {
        batch.push(json!({"type": "identify", "userId": format!("u-{n}"),
            "traits": {"total_spend": spend},
            "messageId": format!("id-{n}")}));
        for e in 0..5 {
            batch.push(
                json!({"type": "track", "userId": format!("u-{n}"), "event": "page_view",
                "properties": {"path": format!("/p/{e}")}, "messageId": format!("ev-{n}-{e}")}),
            );
        }
    }
    server.ok_call("POST", "/v1/batch", &operator, json!({ "batch": batch }));
    let portal = server.create_token(&operator, "portal", "portal");
    for n in [1, 3, 4] {
        server.consent(&operator, &portal, &format!("u-{n}"), "email_marketing");
    }
    server.ok_call(
        "PUT",
        "/v1/segments/big-spenders",
        &operator,
        json!({"plugin": "threshold", "params": {"threshold": 500}}),
    );
    let mut recomputed = false;
    for _ in 0..300 {
        let (_, segment) = server.call("GET", "/v1/segments/big-spenders", Some(&operator), None);
        if !segment["last_recompute"].is_null() {
            recomputed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(recomputed, "the segment was never recomputed");
    let u3 = server.ok_call(
        "POST",
        "/v1/subjects/lookup",
        &operator,
        json!({"kind": "member_id", "value": "u-3"}),
    )["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, answer) = server.call(
        "DELETE",
        &format!("/v1/subjects/{u3}"),
        Some(&operator),
        None,
    );
    assert!((200..300).contains(&status), "{status} {answer}");
    let on_sled = answers(&server, &operator);
    let members = on_sled.1["members"].as_array().expect("members");
    assert_eq!(
        members.len(),
        2,
        "u-1 and u-4 spent 500 or more: {}",
        on_sled.1
    );
    assert_ne!(on_sled.2, 200, "u-3 was erased");

    // Beside the running server, the directory is refused and named.
    let out = migrate(dir.path(), &data, &pg, &schema, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("in use by another process") && stderr(&out).contains(p(&data)),
        "{}",
        stderr(&out)
    );
    assert!(server.stop().success());
    // A second tenant, made on the data directory directly.
    ok(&tessera(dir.path())
        .args(["tenant", "create", "beta"])
        .output()
        .unwrap());
    let sled_audit = common::open_vault(dir.path()).verify_audit(TENANT).unwrap();
    assert!(sled_audit.intact(), "{:?}", sled_audit.problems);

    // The copy, verified.
    let out = migrate(dir.path(), &data, &pg, &schema, &["--quiet"]);
    let table = ok(&out);
    assert!(
        table.contains("verified: the destination holds exactly"),
        "{table}"
    );
    assert!(
        table.contains("subject keys are not in the data store"),
        "{table}"
    );
    for (tenant, kind) in [
        (TENANT, "tenant"),
        (TENANT, "subjects"),
        (TENANT, "identities"),
        (TENANT, "events"),
        (TENANT, "consents"),
        (TENANT, "suppressions"),
        (TENANT, "documents"),
        (TENANT, "audit"),
        ("beta", "tenant"),
    ] {
        let (source, destination, result) = row(&table, tenant, kind);
        assert!(source > 0, "{tenant} {kind} holds something:\n{table}");
        assert_eq!((source, result.as_str()), (destination, "ok"), "{table}");
    }
    // Four people, each with an identify and five page views (u-3's
    // records go when the purge job runs, which may be after the stop).
    assert!(row(&table, TENANT, "subjects").0 >= 3, "{table}");
    let events = row(&table, TENANT, "events").0;
    assert!(events >= 18, "{table}");

    // Again: nothing new is copied, and the copy still verifies.
    let again = ok(&migrate(dir.path(), &data, &pg, &schema, &["--quiet"]));
    assert!(
        again.contains(&format!("{TENANT}: 0 records copied"))
            && again.contains("beta: 0 records copied"),
        "{again}"
    );
    assert!(again.contains("verified"), "{again}");

    // A tampered row is found, named and makes the check fail.
    let mut admin = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
    let tampered = admin
        .execute(
            &format!(
                "UPDATE {schema}.events SET data = data || '\\x00'::bytea \
                 WHERE (subject, at_ms, seq) = (SELECT subject, at_ms, seq FROM {schema}.events \
                 ORDER BY subject, at_ms, seq LIMIT 1)"
            ),
            &[],
        )
        .unwrap();
    assert_eq!(tampered, 1);
    let out = migrate(dir.path(), &data, &pg, &schema, &["--verify-only"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "tenant \"acme\", events: {events} records on both sides, but their contents differ"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(row(&stdout(&out), TENANT, "events").2, "DIFFERS");
    assert_eq!(row(&stdout(&out), TENANT, "subjects").2, "ok");
    admin
        .execute(
            &format!(
                "UPDATE {schema}.events SET data = substring(data FROM 1 FOR length(data) - 1) \
                 WHERE (subject, at_ms, seq) = (SELECT subject, at_ms, seq FROM {schema}.events \
                 ORDER BY subject, at_ms, seq LIMIT 1)"
            ),
            &[],
        )
        .unwrap();
    ok(&migrate(
        dir.path(),
        &data,
        &pg,
        &schema,
        &["--verify-only"],
    ));

    // Another deployment's tenant of the same name is refused, by name.
    let other = tempfile::tempdir().unwrap();
    init_keys(other.path());
    ok(&tessera(other.path())
        .args(["tenant", "create", TENANT])
        .output()
        .unwrap());
    let out = migrate(other.path(), &other.path().join("data"), &pg, &schema, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("tenant \"acme\": the destination already holds different data")
            && stderr(&out).contains("tenant record"),
        "{}",
        stderr(&out)
    );
    // A directory that holds no store is refused without creating one.
    let empty = other.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = migrate(other.path(), &empty, &pg, &schema, &[]);
    assert!(
        stderr(&out).contains("not a Tessera data directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // The audit chain verifies on the copy exactly as on sled.
    let store = PgStore::open_with(&PgOptions::new(&pg).schema(&schema)).unwrap();
    let master = MasterKey::from_file(dir.path().join("master.key")).unwrap();
    let vault = Vault::new(Arc::new(store), dir.path().join("keys"), master).unwrap();
    let pg_audit = vault.verify_audit(TENANT).unwrap();
    assert!(pg_audit.intact(), "{:?}", pg_audit.problems);
    assert_eq!(
        (pg_audit.entries, pg_audit.head, &pg_audit.head_tag),
        (sled_audit.entries, sled_audit.head, &sled_audit.head_tag)
    );
    drop(vault);

    // The server on the copy, with the same key directory and token,
    // answers as it did on sled.
    let server = Server::start_with(
        dir.path(),
        TENANT,
        &[
            ("TESSERA_STORAGE_BACKEND", "postgres"),
            ("TESSERA_STORAGE_URL", &pg),
            ("TESSERA_STORAGE_SCHEMA", &schema),
            // The subject keys stay in the key directory's file: one node.
            ("TESSERA_STORAGE_KEYS", "file"),
        ],
    );
    assert_eq!(
        server.operator, None,
        "the tenant's operator token came along"
    );
    let on_postgres = answers(&server, &operator);
    assert_eq!(on_postgres.0, on_sled.0, "u-1's profile");
    assert_eq!(on_postgres.1, on_sled.1, "the segment's members");
    assert_ne!(on_postgres.2, 200, "u-3 stays erased");
    assert!(server.stop().success());
}

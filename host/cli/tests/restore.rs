//! A records database restored from a backup taken before a person was
//! erased does not bring that person back: `tessera serve`, with its subject
//! keys in a database of their own (here another schema, named through
//! `storage.keys_url` and `storage.keys_schema`), erases them again from the
//! key database's erasure ledger before it serves.
//!
//! Needs `TESSERA_TEST_POSTGRES_URL` (`.ci/postgres start DIR` prints one)
//! and PostgreSQL's `pg_dump` and `psql` (Debian's postgresql, found where
//! `.ci/postgres` finds its programs, or on the PATH);
//! `TESSERA_SKIP_POSTGRES=1` skips it and says so on stderr.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::cluster;
use common::{Server, init_keys};
use serde_json::{Value, json};

const TENANT: &str = "acme";

/// A PostgreSQL client program: from the newest /usr/lib/postgresql/*/bin
/// (as .ci/postgres finds them), else from the PATH.
fn pg_program(name: &str) -> PathBuf {
    let mut dirs: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|(_, bin)| bin.join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs a PostgreSQL client program and panics with its output if it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(pg_program(program))
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} does not run ({error}); install postgresql"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drops the test's schemas, with everything in them, when the test ends.
struct DropSchemas(String, Vec<String>);

impl Drop for DropSchemas {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.0, postgres::NoTls) {
            for schema in &self.1 {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

fn track(server: &Server, token: &str, user: &str, message: &str) -> Value {
    let event = json!({
        "userId": user,
        "event": "Order Completed",
        "messageId": message,
        "properties": {"amount": 10.0},
    });
    let (status, answer) = server.call("POST", "/v1/track", Some(token), Some(&event.to_string()));
    assert_eq!(status, 200, "tracking {user}: {answer}");
    answer
}

fn lookup(server: &Server, token: &str, user: &str) -> (u16, Value) {
    let body = json!({"kind": "member_id", "value": user}).to_string();
    server.call("POST", "/v1/subjects/lookup", Some(token), Some(&body))
}

fn subject_rows(url: &str, schema: &str, subject: &str) -> i64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.subjects WHERE subject = $1"),
            &[&subject.as_bytes()],
        )
        .expect("count")
        .get(0)
}

#[test]
fn a_person_erased_after_the_records_backup_stays_erased_when_that_backup_is_restored() {
    let Some(pg) = cluster::postgres_url("restoring the records from a backup after an erasure")
    else {
        return;
    };
    let records = format!("tessera_restore_records_{}", std::process::id());
    let keys = format!("tessera_restore_keys_{}", std::process::id());
    let _drop = DropSchemas(pg.clone(), vec![records.clone(), keys.clone()]);
    let dir = tempfile::tempdir().unwrap();
    init_keys(dir.path());
    let cache = dir.path().join("compiled");
    let env = [
        ("TESSERA_STORAGE_BACKEND", "postgres"),
        ("TESSERA_STORAGE_URL", pg.as_str()),
        ("TESSERA_STORAGE_SCHEMA", records.as_str()),
        ("TESSERA_STORAGE_KEYS_URL", pg.as_str()),
        ("TESSERA_STORAGE_KEYS_SCHEMA", keys.as_str()),
        ("TESSERA_CACHE_DIR", cache.to_str().unwrap()),
    ];

    // ---- two people, A and B
    let server = Server::start_with(dir.path(), TENANT, &env);
    let operator = server.operator.clone().expect("--init made a token");
    track(&server, &operator, "person-a", "a-1");
    track(&server, &operator, "person-b", "b-1");
    let subject_of = |server: &Server, user: &str| -> String {
        let (status, found) = lookup(server, &operator, user);
        assert_eq!(status, 200, "{user}: {found}");
        found["subject"].as_str().expect("a subject").to_owned()
    };
    let a = subject_of(&server, "person-a");
    let b = subject_of(&server, "person-b");
    assert!(server.stop().success());
    {
        let mut client = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
        let mut count = |table: &str, schema: &str| -> i64 {
            client
                .query_one(&format!("SELECT count(*) FROM {schema}.{table}"), &[])
                .unwrap()
                .get(0)
        };
        assert_eq!(
            count("subject_keys", &records),
            0,
            "no key beside the records"
        );
        assert!(
            count("subject_keys", &keys) >= 2,
            "the keys are in the key schema"
        );
    }

    // ---- a backup of the records (not of the keys)
    let backup = dir.path().join("records.sql");
    run(
        "pg_dump",
        &[
            "--dbname",
            &pg,
            "--schema",
            &records,
            "--no-owner",
            "--file",
            backup.to_str().unwrap(),
        ],
    );

    // ---- A is erased
    let server = Server::start_with(dir.path(), TENANT, &env);
    let (status, answer) = server.call(
        "DELETE",
        &format!("/v1/subjects/{a}"),
        Some(&operator),
        None,
    );
    assert!((200..300).contains(&status), "erasing A: {status} {answer}");
    let (status, _) = server.call("GET", &format!("/v1/profiles/{a}"), Some(&operator), None);
    assert!(status == 404 || status == 410, "A is gone: {status}");
    assert!(server.stop().success());

    // ---- the records are restored from the backup: A's records are back
    {
        let mut client = postgres::Client::connect(&pg, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA {records} CASCADE"))
            .unwrap();
    }
    run(
        "psql",
        &[
            "--dbname",
            &pg,
            "--quiet",
            "--no-psqlrc",
            "--set",
            "ON_ERROR_STOP=1",
            "--file",
            backup.to_str().unwrap(),
        ],
    );
    assert_eq!(
        subject_rows(&pg, &records, &a),
        1,
        "the restored records hold A again"
    );

    // ---- started on the restored records: A is erased again before serving
    let server = Server::start_with(dir.path(), TENANT, &env);
    assert!(
        server
            .startup
            .iter()
            .any(|line| line.contains("1 people erased again")),
        "one line says A was erased again: {:?}",
        server.startup
    );
    let (status, answer) = server.call("GET", &format!("/v1/profiles/{a}"), Some(&operator), None);
    assert!(
        status == 404 || status == 410,
        "A is unreadable: {status} {answer}"
    );
    let (status, answer) = lookup(&server, &operator, "person-a");
    assert_eq!(status, 404, "no identity leads to A: {answer}");
    let (status, answer) = server.call(
        "GET",
        "/v1/audit?action=subject.reerase",
        Some(&operator),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    let entries = answer["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{answer}");
    assert_eq!(entries[0]["subject"], a.as_str(), "{answer}");
    assert_eq!(entries[0]["actor"]["role"], "system", "{answer}");
    // Suppressed: A's identity coming in again does not bring A back.
    let answer = track(&server, &operator, "person-a", "a-2");
    assert_eq!(answer["suppressed"], 1, "{answer}");
    assert_eq!(answer["events_inserted"], 0, "{answer}");
    let (status, answer) = lookup(&server, &operator, "person-a");
    assert_eq!(status, 404, "A was not re-created: {answer}");
    // B is intact.
    let (status, profile) = server.call("GET", &format!("/v1/profiles/{b}"), Some(&operator), None);
    assert_eq!(status, 200, "{profile}");
    assert_eq!(
        profile["aggregates"]["order_completed"]["count"], 1,
        "{profile}"
    );
    assert_eq!(subject_of(&server, "person-b"), b);
    // The purge (the first background round, at start) removes A's records.
    let start = std::time::Instant::now();
    while subject_rows(&pg, &records, &a) > 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "A's records were not purged"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(server.stop().success());

    // ---- once done, a restart finds nothing more to do
    let server = Server::start_with(dir.path(), TENANT, &env);
    assert!(
        !server
            .startup
            .iter()
            .any(|line| line.contains("erased again")),
        "{:?}",
        server.startup
    );
    assert!(server.stop().success());
}

#[test]
fn keys_moved_from_the_key_file_into_a_key_database_open_as_before_and_the_file_is_shredded() {
    let Some(pg) = cluster::postgres_url("restoring the records from a backup after an erasure")
    else {
        return;
    };
    let records = format!("tessera_move_records_{}", std::process::id());
    let keys = format!("tessera_move_keys_{}", std::process::id());
    let _drop = DropSchemas(pg.clone(), vec![records.clone(), keys.clone()]);
    let dir = tempfile::tempdir().unwrap();
    init_keys(dir.path());
    let cache = dir.path().join("compiled");
    let storage = [
        ("TESSERA_STORAGE_BACKEND", "postgres"),
        ("TESSERA_STORAGE_URL", pg.as_str()),
        ("TESSERA_STORAGE_SCHEMA", records.as_str()),
        ("TESSERA_CACHE_DIR", cache.to_str().unwrap()),
    ];
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        storage
            .iter()
            .chain(extra)
            .map(|(k, v)| (*k, v.to_string()))
            .collect()
    };
    let file_env = with(&[("TESSERA_STORAGE_KEYS", "file")]);
    let database_env = with(&[
        ("TESSERA_STORAGE_KEYS", "database"),
        ("TESSERA_STORAGE_KEYS_URL", pg.as_str()),
        ("TESSERA_STORAGE_KEYS_SCHEMA", keys.as_str()),
    ]);
    let start = |env: &[(&'static str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start_with(dir.path(), TENANT, &env)
    };
    let key_move = |env: &[(&'static str, String)]| {
        common::tessera(dir.path())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["keys", "move", "--to", "database"])
            .output()
            .expect("tessera runs")
    };

    // ---- one node with the key file: A stays, C is erased
    let server = start(&file_env);
    let operator = server.operator.clone().expect("--init made a token");
    track(&server, &operator, "person-a", "a-1");
    track(&server, &operator, "person-c", "c-1");
    let subject_of = |server: &Server, user: &str| -> String {
        let (status, found) = lookup(server, &operator, user);
        assert_eq!(status, 200, "{user}: {found}");
        found["subject"].as_str().expect("a subject").to_owned()
    };
    let a = subject_of(&server, "person-a");
    let c = subject_of(&server, "person-c");
    let (status, answer) = server.call(
        "DELETE",
        &format!("/v1/subjects/{c}"),
        Some(&operator),
        None,
    );
    assert!((200..300).contains(&status), "erasing C: {status} {answer}");
    assert!(server.stop().success());
    let file = dir.path().join("keys/subject-keys");
    assert!(file.exists());

    // ---- the settings must say where the keys go
    let out = key_move(&file_env);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("storage.keys is \"file\""), "{error}");
    assert!(file.exists(), "nothing moved");

    // ---- moved
    let out = key_move(&database_env);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("subject keys from"), "{printed}");
    assert!(printed.contains(&keys), "names the key database: {printed}");
    assert!(!file.exists(), "the key file is gone");
    let out = key_move(&database_env);
    assert!(!out.status.success(), "nothing left to move");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no key file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // ---- served from the key database: A reads, C stays erased, new
    // people get slots of their own
    let server = start(&database_env);
    let (status, profile) = server.call("GET", &format!("/v1/profiles/{a}"), Some(&operator), None);
    assert_eq!(status, 200, "{profile}");
    assert_eq!(
        profile["aggregates"]["order_completed"]["count"], 1,
        "{profile}"
    );
    let (status, _) = server.call("GET", &format!("/v1/profiles/{c}"), Some(&operator), None);
    assert!(status == 404 || status == 410, "C stays erased: {status}");
    track(&server, &operator, "person-d", "d-1");
    let d = subject_of(&server, "person-d");
    for subject in [&a, &d] {
        let (status, answer) = server.call(
            "GET",
            &format!("/v1/profiles/{subject}"),
            Some(&operator),
            None,
        );
        assert_eq!(status, 200, "{subject}: {answer}");
    }
    assert!(server.stop().success());
}

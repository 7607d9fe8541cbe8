//! The conformance suite against PostgreSQL, each case in a schema of its own
//! that is dropped afterwards; PostgreSQL-specific behaviour (migrations,
//! connection errors) lives here too.
//!
//! The server comes from `TESSERA_TEST_POSTGRES_URL` (`.ci/run` starts one
//! with `.ci/postgres`). Without it every test fails and says how to start
//! one, unless `TESSERA_SKIP_POSTGRES=1` skips them, which each test prints.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use postgres::{Client, NoTls};
use tessera_store::{Store, StoreError, conformance};
use tessera_store_postgres::{KEY_MIGRATIONS, MIGRATIONS, PgKeyStore, PgOptions, PgStore};

const URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";
const SKIP_VAR: &str = "TESSERA_SKIP_POSTGRES";

/// The test server's URL; `None` when the tests are to be skipped.
fn server_url() -> Option<String> {
    if let Ok(url) = std::env::var(URL_VAR)
        && !url.trim().is_empty()
    {
        return Some(url);
    }
    if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
        // Straight to stderr, past the test harness's capture, once.
        static LOUD: std::sync::Once = std::sync::Once::new();
        LOUD.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPED: the PostgreSQL backend's tests did not run \
                 ({SKIP_VAR}=1 and no {URL_VAR})\n"
            );
        });
        return None;
    }
    panic!(
        "{URL_VAR} is not set, so the PostgreSQL backend cannot be tested. Start a \
         throwaway server on 127.0.0.1 and point the tests at it:\n\n    \
         export {URL_VAR}=$(.ci/postgres start /tmp/tessera-pg)\n    \
         cargo test -p tessera-store-postgres\n    .ci/postgres stop /tmp/tessera-pg\n\n\
         (any PostgreSQL 13 or later works: {URL_VAR}=postgres://USER:PASSWORD@127.0.0.1:5432/DB, \
         a role that may create schemas). To skip these tests instead, set {SKIP_VAR}=1."
    )
}

fn skip() -> bool {
    server_url().is_none()
}

/// A schema of one test's own in the test database, dropped with every
/// table in it when the guard goes.
struct Scratch {
    url: String,
    schema: String,
}

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let url = server_url().expect("a test server (the case was not skipped)");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let schema = format!(
            "tessera_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self { url, schema }
    }

    fn options(&self) -> PgOptions {
        PgOptions::new(&self.url).schema(&self.schema)
    }

    fn open(&self) -> PgStore {
        PgStore::open_with(&self.options()).expect("the test schema opens")
    }

    fn admin(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("a connection to the test server")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.url, NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

fn fixture() -> (Scratch, PgStore) {
    let scratch = Scratch::new();
    let store = scratch.open();
    (scratch, store)
}

tessera_store::conformance_tests!(fixture, unless = skip);

#[test]
fn flushed_writes_survive_reopen() {
    if skip() {
        return;
    }
    let scratch = Scratch::new();
    conformance::flushed_writes_survive_reopen(|| scratch.open());
}

#[test]
fn migrations_are_applied_once_recorded_and_skipped_on_reopen() {
    if skip() {
        return;
    }
    let scratch = Scratch::new();
    // Nodes that start together: each opens, one migrates.
    std::thread::scope(|threads| {
        for _ in 0..4 {
            threads.spawn(|| scratch.open());
        }
    });
    let store = scratch.open();
    store.append_audit("acme", 1, b"entry").unwrap();
    drop(store);
    let store = scratch.open();
    assert_eq!(store.audit_head("acme").unwrap(), 1, "reopening keeps data");
    let rows = scratch
        .admin()
        .query(
            &format!(
                "SELECT version, name FROM {}.tessera_schema_migrations ORDER BY version",
                scratch.schema
            ),
            &[],
        )
        .unwrap();
    let recorded: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(i32, String)> = MIGRATIONS
        .iter()
        .map(|m| (m.version as i32, m.name.to_owned()))
        .collect();
    assert_eq!(recorded, expected);
}

#[test]
fn a_schema_migrated_by_a_newer_build_is_refused_with_both_versions() {
    if skip() {
        return;
    }
    let scratch = Scratch::new();
    drop(scratch.open());
    let newer = MIGRATIONS.len() as i32 + 1;
    scratch
        .admin()
        .execute(
            &format!(
                "INSERT INTO {}.tessera_schema_migrations (version, name) VALUES ($1, 'future')",
                scratch.schema
            ),
            &[&newer],
        )
        .unwrap();
    let error = PgStore::open_with(&scratch.options()).unwrap_err();
    assert_eq!(
        error,
        StoreError::Schema {
            found: newer as u32,
            expected: MIGRATIONS.len() as u32
        }
    );
    assert!(error.to_string().contains("at least as new"), "{error}");
}

#[test]
fn every_table_is_keyed_by_tenant_first_except_jobs_and_subject_keys() {
    if skip() {
        return;
    }
    let (scratch, _store) = fixture();
    let rows = scratch
        .admin()
        .query(
            "SELECT c.relname, a.attname FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] \
             WHERE i.indisprimary AND n.nspname = $1 ORDER BY c.relname",
            &[&scratch.schema],
        )
        .unwrap();
    let keys: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(keys.len() >= 12, "{keys:?}");
    for (table, first) in &keys {
        match table.as_str() {
            "jobs" => assert_eq!(first, "id"),
            // Records name their subject key by slot (docs/operations.md).
            "subject_keys" => assert_eq!(first, "slot"),
            // The erasure ledger, in the order of erasures.
            "erased_key_slots" => assert_eq!(first, "position"),
            "tessera_schema_migrations" => assert_eq!(first, "version"),
            _ => assert_eq!(first, "tenant", "{table}"),
        }
    }
}

#[test]
fn an_unreachable_server_is_refused_with_its_address_and_no_password() {
    // Nothing of the test server is needed: a port on loopback that no one
    // listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://tessera:s3cret@127.0.0.1:{port}/tessera");
    let error = PgStore::open(&url).unwrap_err();
    assert!(matches!(error, StoreError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[test]
fn a_malformed_url_or_schema_name_is_refused_naming_the_problem() {
    let error = PgStore::open("postgres://[not a host").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not a PostgreSQL connection string"),
        "{error}"
    );
    let error = PgStore::open_with(&PgOptions::new("postgres://127.0.0.1/x").schema("x; DROP"))
        .unwrap_err();
    assert!(error.to_string().contains("schema name"), "{error}");
}

#[test]
fn a_store_debug_prints_its_target_and_no_contents() {
    if skip() {
        return;
    }
    let (scratch, store) = fixture();
    store.append_audit("acme", 1, b"secret-entry").unwrap();
    let printed = format!("{store:?}");
    assert!(printed.contains(&scratch.schema), "{printed}");
    assert!(!printed.contains("secret"), "{printed}");
}

/// The API calls the store from its blocking pool; a call made on a thread
/// that drives async tasks must still work, not panic in the client.
#[test]
fn calls_from_async_tasks_of_either_runtime_flavour_are_served() {
    if skip() {
        return;
    }
    let (_scratch, store) = fixture();
    let store = std::sync::Arc::new(store);
    for multi_thread in [true, false] {
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread().build()
        }
        .unwrap();
        let store = store.clone();
        let seq = if multi_thread { 1 } else { 2 };
        let head = runtime.block_on(async move {
            let task = tokio::spawn(async move {
                store.append_audit("acme", seq, b"from a task").unwrap();
                store.audit_head("acme").unwrap()
            });
            task.await.unwrap()
        });
        assert_eq!(head, seq);
    }
}

#[test]
fn verbatim_copies_keep_audit_numbers_heads_and_state_versions_and_skip_what_is_there() {
    if skip() {
        return;
    }
    use tessera_state::{RETIRED, StateScope, StateStore};
    use tessera_store::{AuditRecord, TenantRecord};
    let (_scratch, store) = fixture();
    store
        .put_tenant(&TenantRecord {
            id: "acme".into(),
            wrapped_key: b"k".to_vec(),
            settings: b"s".to_vec(),
        })
        .unwrap();
    let entry = |seq: u64, data: &str| AuditRecord {
        seq,
        data: data.as_bytes().to_vec(),
    };
    // Entry 2 was removed in the source and its head is past the last entry.
    store
        .copy_audit("acme", &[entry(1, "one"), entry(3, "three")], 3)
        .unwrap();
    store.copy_audit("acme", &[], 5).unwrap();
    // Copying again changes nothing; a different entry under a stored
    // number does not replace it, and the head never goes back.
    store
        .copy_audit("acme", &[entry(1, "other"), entry(3, "three")], 2)
        .unwrap();
    assert_eq!(store.audit_head("acme").unwrap(), 5);
    assert_eq!(
        store.audit("acme", 1, 10).unwrap(),
        [entry(1, "one"), entry(3, "three")]
    );
    // A live writer goes on from the copied head.
    store.append_audit("acme", 6, b"six").unwrap();
    assert!(matches!(
        store.append_audit("acme", 4, b"four"),
        Err(StoreError::AuditConflict { last: 6, .. })
    ));

    let scope = StateScope {
        tenant: "acme".into(),
        plugin: "rfm".into(),
    };
    let entries = [
        ("a".to_owned(), b"1".to_vec()),
        ("b".to_owned(), b"22".to_vec()),
    ];
    store.copy_state(&scope, 41, 5, &entries[..1]).unwrap();
    store.copy_state(&scope, 41, 5, &entries).unwrap();
    assert_eq!(store.version(&scope).unwrap(), 41);
    assert_eq!(store.usage(&scope).unwrap(), 5);
    assert_eq!(store.state_entries(&scope, None, 10).unwrap(), entries);
    // The next plugin write is based on the copied version.
    assert!(store.apply(&scope, 40, &[], 1 << 20).is_err());
    store
        .apply(&scope, 41, &[("c".into(), Some(b"3".to_vec()))], 1 << 20)
        .unwrap();
    assert_eq!(store.version(&scope).unwrap(), 42);
    assert_eq!(store.usage(&scope).unwrap(), 7);

    let retired = StateScope {
        tenant: "acme".into(),
        plugin: "gone".into(),
    };
    store.copy_state(&retired, RETIRED, 0, &[]).unwrap();
    assert_eq!(store.version(&retired).unwrap(), RETIRED);
    assert!(
        store
            .apply(&retired, RETIRED, &[("x".into(), Some(vec![1]))], 1 << 20)
            .is_err(),
        "a retired scope stays retired"
    );
    let scopes: Vec<String> = store
        .scopes("acme", "")
        .unwrap()
        .into_iter()
        .map(|s| s.plugin)
        .collect();
    assert_eq!(scopes, ["gone", "rfm"]);
}

#[test]
fn the_postgres_key_store_passes_the_key_store_conformance_suite() {
    if skip() {
        return;
    }
    let scratch = Scratch::new();
    // Each call opens a store of its own on the same schema: another node.
    let open = || -> std::sync::Arc<dyn tessera_privacy::KeyStore> {
        std::sync::Arc::new(scratch.open().key_store())
    };
    tessera_privacy::key_store::conformance::run_all(&open);
}

#[test]
fn an_erased_key_row_is_gone_from_the_table_not_only_hidden() {
    if skip() {
        return;
    }
    use tessera_privacy::{KeyStore, SubjectKey, TenantKey};
    let scratch = Scratch::new();
    let keys = scratch.open().key_store();
    let tenant = TenantKey::generate().unwrap();
    let wrapped = SubjectKey::generate()
        .unwrap()
        .wrap(&tenant, "acme", "s1")
        .unwrap();
    let slot = keys.insert(&wrapped).unwrap();
    let count = |client: &mut Client| -> i64 {
        client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}.subject_keys WHERE ciphertext = $1",
                    scratch.schema
                ),
                &[&wrapped.ciphertext],
            )
            .unwrap()
            .get(0)
    };
    let mut admin = scratch.admin();
    assert_eq!(count(&mut admin), 1);
    assert!(keys.erase(slot).unwrap());
    // Read by another connection right after erase returned: committed.
    assert_eq!(count(&mut admin), 0);
    let error = keys
        .insert(&tessera_privacy::WrappedSubjectKey {
            nonce: [0; 12],
            ciphertext: vec![0; 12],
        })
        .expect_err("a short ciphertext is refused");
    assert!(error.to_string().contains("12-byte ciphertext"), "{error}");
}

#[test]
fn a_key_database_of_its_own_passes_the_key_store_conformance_suite() {
    if skip() {
        return;
    }
    let scratch = Scratch::new();
    let open = || -> std::sync::Arc<dyn tessera_privacy::KeyStore> {
        std::sync::Arc::new(PgKeyStore::open(&scratch.options()).expect("the key schema opens"))
    };
    tessera_privacy::key_store::conformance::run_all(&open);
}

#[test]
fn a_key_database_gets_the_key_tables_and_the_ledger_and_nothing_of_the_records() {
    if skip() {
        return;
    }
    let scratch = Scratch::new();
    // Nodes that start together migrate once.
    std::thread::scope(|threads| {
        for _ in 0..3 {
            threads.spawn(|| PgKeyStore::open(&scratch.options()).expect("opens"));
        }
    });
    let keys = PgKeyStore::open(&scratch.options()).unwrap();
    assert!(keys.target().contains(&scratch.schema), "{}", keys.target());
    let mut admin = scratch.admin();
    let tables: Vec<String> = admin
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
             ORDER BY 1",
            &[&scratch.schema],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "erased_key_slots",
            "subject_keys",
            "tessera_key_schema_migrations"
        ]
    );
    let recorded: Vec<i32> = admin
        .query(
            &format!(
                "SELECT version FROM {}.tessera_key_schema_migrations ORDER BY version",
                scratch.schema
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(recorded.len(), KEY_MIGRATIONS.len());
}

#[test]
fn an_erasure_writes_its_ledger_row_in_the_same_statement_and_nothing_personal() {
    if skip() {
        return;
    }
    use tessera_privacy::{ErasureCause, KeyStore, SubjectKey, TenantKey};
    let scratch = Scratch::new();
    let keys = scratch.open().key_store();
    let tenant = TenantKey::generate().unwrap();
    let wrapped = SubjectKey::generate()
        .unwrap()
        .wrap(&tenant, "acme", "s1")
        .unwrap();
    let slot = keys.insert(&wrapped).unwrap();
    let mut admin = scratch.admin();
    let columns: Vec<String> = admin
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'erased_key_slots' ORDER BY ordinal_position",
            &[&scratch.schema],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(columns, ["position", "slot", "erased_at", "cause"]);
    // A failing ledger write takes the erasure with it: the key stays.
    admin
        .batch_execute(&format!(
            "ALTER TABLE {}.erased_key_slots ADD CONSTRAINT no_expiry CHECK (cause <> 'expiry')",
            scratch.schema
        ))
        .unwrap();
    let error = keys.erase_for(slot, ErasureCause::Expiry).unwrap_err();
    assert!(error.to_string().contains("no_expiry"), "{error}");
    assert_eq!(keys.get(slot).unwrap(), Some(wrapped), "nothing erased");
    let read = keys.erasures_after(0).unwrap().expect("a ledger");
    assert!(read.entries.is_empty(), "{read:?}");
    assert!(keys.erase_for(slot, ErasureCause::Request).unwrap());
    let read = keys.erasures_after(0).unwrap().expect("a ledger");
    assert_eq!(read.entries.len(), 1, "{read:?}");
    assert_eq!(read.entries[0].slot, slot);
    assert_eq!(read.entries[0].cause, ErasureCause::Request);
    assert_eq!(read.head, read.entries[0].position);
    // Just written: a reader may not take it as settled yet.
    assert_eq!(read.settled, 0, "{read:?}");
    // Aged past the settling time, it is.
    admin
        .batch_execute(&format!(
            "UPDATE {}.erased_key_slots SET erased_at = erased_at - interval '1 hour'",
            scratch.schema
        ))
        .unwrap();
    let read = keys.erasures_after(0).unwrap().expect("a ledger");
    assert_eq!(read.settled, read.head, "{read:?}");
}

#[test]
fn an_import_keeps_the_slots_given_runs_again_harmlessly_and_refuses_other_keys() {
    if skip() {
        return;
    }
    use tessera_privacy::{KeyStore, SubjectKey, TenantKey};
    let scratch = Scratch::new();
    let keys = PgKeyStore::open(&scratch.options()).unwrap();
    let tenant = TenantKey::generate().unwrap();
    let wrap = |subject: &str| {
        SubjectKey::generate()
            .unwrap()
            .wrap(&tenant, "acme", subject)
            .unwrap()
    };
    let given = vec![(3, wrap("a")), (17, wrap("b")), (40, wrap("c"))];
    assert_eq!(keys.import(&given).unwrap(), 3);
    for (slot, key) in &given {
        assert_eq!(keys.get(*slot).unwrap().as_ref(), Some(key));
    }
    // Again (an interrupted move finished): nothing stored twice.
    assert_eq!(keys.import(&given).unwrap(), 0);
    // The table holding a key the import does not name: refused.
    let error = keys.import(&given[..2]).unwrap_err().to_string();
    assert!(error.contains("holds 1 keys in slots"), "{error}");
    // New keys go past every imported slot.
    let next = keys.insert(&wrap("d")).unwrap();
    assert!(next > 40, "slot {next}");
    // A slot that holds another key: refused, nothing stored.
    let mut other = given.clone();
    other.push((50, wrap("e")));
    other.push((next, wrap("f")));
    let error = keys.import(&other).unwrap_err().to_string();
    assert!(error.contains(&format!("slot {next}")), "{error}");
    assert_eq!(keys.get(50).unwrap(), None, "nothing of it was stored");
}

#[test]
fn a_tenant_write_lock_holds_every_node_of_the_schema_and_dies_with_its_holder() {
    if skip() {
        return;
    }
    let scratch = Scratch::new();
    let (one, two) = (scratch.open(), scratch.open());
    let held = one.lock_tenant("acme").unwrap().expect("a lock");
    // Another tenant, and the same tenant in another schema, are free.
    drop(two.lock_tenant("globex").unwrap().expect("a lock"));
    let other = Scratch::new();
    drop(other.open().lock_tenant("acme").unwrap().expect("a lock"));
    // The same tenant through another node waits for the holder.
    let (sender, taken) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let lock = two.lock_tenant("acme").unwrap().expect("a lock");
        sender.send(()).unwrap();
        drop(lock);
        two
    });
    assert!(
        taken.recv_timeout(Duration::from_millis(500)).is_err(),
        "taken while another node holds it"
    );
    drop(held);
    taken
        .recv_timeout(Duration::from_secs(30))
        .expect("taken once released");
    let two = waiter.join().unwrap();
    // A holder whose session ends (a node killed) releases it.
    let held = two.lock_tenant("acme").unwrap().expect("a lock");
    let mut admin = scratch.admin();
    let key = format!("{}\u{1f}acme", scratch.schema);
    let holder: i32 = admin
        .query_one(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 7365)",
            &[&key],
        )
        .expect("the lock is listed")
        .get(0);
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&holder])
        .expect("terminate");
    let (sender, taken) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lock = one.lock_tenant("acme").unwrap().expect("a lock");
        sender.send(()).unwrap();
        drop(lock);
    });
    taken
        .recv_timeout(Duration::from_secs(30))
        .expect("free once its holder's session ended, the holder's guard still alive");
    drop(held);
}

/// What `/metrics` reports of the pool: connections busy and idle, and the
/// calls that waited the whole timeout for one.
#[test]
fn the_pool_status_counts_busy_connections_and_calls_that_found_none() {
    if skip() {
        return;
    }
    let scratch = Scratch::new();
    let mut options = scratch.options();
    options.pool_size = 1;
    let store = PgStore::open_with(&options).unwrap();
    store.append_audit("acme", 1, b"one").unwrap();
    let status = store.pool_status();
    assert_eq!((status.max, status.timeouts), (1, 0), "{status:?}");
    assert!(status.open <= 1 && status.idle == status.open, "{status:?}");

    // Another session locks the audit head, so the next append waits on
    // the lock holding the pool's only connection.
    let mut admin = scratch.admin();
    let mut lock = admin.transaction().unwrap();
    lock.execute(
        &format!(
            "SELECT head FROM {}.audit_heads WHERE tenant = $1 FOR UPDATE",
            scratch.schema
        ),
        &[&b"acme".as_slice()],
    )
    .unwrap();
    std::thread::scope(|threads| {
        let waiting = threads.spawn(|| store.append_audit("acme", 2, b"two"));
        let mut status = store.pool_status();
        for _ in 0..500 {
            if status.open == 1 && status.idle == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            status = store.pool_status();
        }
        assert_eq!((status.open, status.idle), (1, 0), "{status:?}");
        // No connection comes free within the timeout.
        let error = store.audit_head("acme").unwrap_err();
        assert!(error.to_string().contains("no connection"), "{error}");
        assert_eq!(store.pool_status().timeouts, 1);
        lock.rollback().unwrap();
        waiting.join().unwrap().unwrap();
    });
    assert_eq!(store.audit_head("acme").unwrap(), 2);
    let status = store.pool_status();
    assert_eq!((status.open, status.idle, status.timeouts), (1, 1, 1));
}

//! Pulls end to end: the first-party `rest-pull` connector installed from a
//! signed bundle and granted one outbound host, a paginated API served on
//! 127.0.0.1 (four pages, opaque cursors that need percent-encoding, a bad
//! item and an item with an identity kind Tessera does not know), and a
//! real vault on sled in a temporary directory.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};
use tessera_bundle::{Bundle, Kind, Permissions, PublisherKey, SourceManifest};
use tessera_imports::{
    Chunking, Fix, ImportError, ImportItem, ImportRecord, ImportStatus, Importer, LetterContent,
    LetterOrigin, LetterState, PullSpec,
};
use tessera_plugins::Registry;
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{Runtime, RuntimeConfig, StaticResolver};
use tessera_vault::{Actor, TenantSettings, Vault};

const TENANT: &str = "acme";
/// 2026-06-01T00:00:00Z: the items happened in May 2026.
const NOW_MS: i64 = 1_780_272_000_000;
const TOKEN: &str = "Bearer shop-read-only-7f3a";
const SOURCE: &str = "shop-events";
const PAGE_SIZE: i64 = 3;
/// The cursors that fetch pages 2, 3 and 4: opaque to Tessera, and each
/// needs percent-encoding in a query string.
const CURSORS: [&str; 3] = [
    "eyJhZnRlciI6ImV2dC0xMDAzIn0=",
    "after 2026-05-02T10:00:00+08:00/evt-1006",
    "page-4 ☃ & more=yes",
];
/// Events the API serves that Tessera stores: all but the item whose `at`
/// is not a time (rejected by the connector) and the one with an identity
/// kind Tessera does not know (refused by the host).
const GOOD_EVENTS: u64 = 7;

fn operator() -> Actor {
    Actor::new("operator", "tok-ops")
}

/// The shop's API: four pages of three items.
fn pages() -> Vec<Vec<Json>> {
    vec![
        vec![
            json!({"id": "evt-1001", "event": "page_view", "at": "2026-05-01T09:00:00Z",
                   "identities": {"email": "ana@example.com", "device_id": "d-ana"},
                   "properties": {"path": "/shoes"}}),
            json!({"id": "evt-1002", "event": "purchase", "at": "2026-05-01T09:05:00+02:00",
                   "identities": {"email": "ana@example.com"},
                   "properties": {"amount": 59.9, "currency": "EUR", "order_id": "o-1"}}),
            json!({"id": "usr-ana", "type": "identify",
                   "identities": {"email": "ana@example.com", "member_id": "M-100"},
                   "traits": {"tier": "gold"}}),
        ],
        vec![
            json!({"id": "evt-1004", "event": "page_view", "at": "2026-05-02T08:00:00Z",
                   "identities": {"email": "bo@example.com"}, "properties": {"path": "/bags"}}),
            json!({"id": "evt-1005", "event": "purchase", "at": "yesterday",
                   "identities": {"email": "bo@example.com"}, "properties": {"amount": 20}}),
            json!({"id": "evt-1006", "event": "purchase", "at": 1_777_716_000_000_i64,
                   "identities": {"email": "bo@example.com"},
                   "properties": {"amount": 12.5, "currency": "EUR"}}),
        ],
        vec![
            json!({"id": "evt-1007", "event": "page_view", "at": "2026-05-03T11:00:00Z",
                   "identities": {"member_id": "M-300"}, "properties": {"path": "/store/42"}}),
            json!({"id": "evt-1008", "event": "page_view", "at": "2026-05-03T11:30:00Z",
                   "identities": {"fax": "+1 555 0100"}, "properties": {"path": "/fax"}}),
            json!({"id": "alias-chen", "type": "alias",
                   "identities": {"email": "chen@example.com", "member_id": "M-300"}}),
        ],
        vec![
            json!({"id": "evt-1010", "event": "purchase", "at": "2026-05-04T15:00:00Z",
                   "identities": {"email": "chen@example.com"},
                   "properties": {"amount": 99, "currency": "EUR", "store": "Berlin"}}),
            json!({"id": "evt-1011", "event": "page_view", "at": "2026-05-04T16:00:00Z",
                   "identities": {"email": "ana@example.com"}, "properties": {"path": "/sale"}}),
        ],
    ]
}

/// One request the API received.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    cursor: Option<String>,
    limit: Option<String>,
    authorized: bool,
}

#[derive(Debug, Default)]
struct Api {
    pages: Vec<Vec<Json>>,
    seen: Mutex<Vec<Seen>>,
    /// Pages (by index) that answer 500 the next time they are asked for.
    fail_once: Mutex<HashSet<usize>>,
}

async fn events(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let cursor = query.get("cursor").cloned();
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == TOKEN.as_bytes());
    api.seen.lock().unwrap().push(Seen {
        cursor: cursor.clone(),
        limit: query.get("limit").cloned(),
        authorized,
    });
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let index = match &cursor {
        None => 0,
        Some(cursor) => match CURSORS.iter().position(|c| c == cursor) {
            Some(i) => i + 1,
            None => {
                let error = json!({"error": format!("unknown cursor {cursor:?}")});
                return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
            }
        },
    };
    if api.fail_once.lock().unwrap().remove(&index) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream timeout").into_response();
    }
    let next = CURSORS.get(index).copied();
    axum::Json(json!({"data": api.pages[index], "next_cursor": next})).into_response()
}

/// The API on 127.0.0.1, on a thread of its own; stops when dropped.
struct Server {
    port: u16,
    api: Arc<Api>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(fail_once: &[usize]) -> Self {
        let api = Arc::new(Api {
            pages: pages(),
            fail_once: Mutex::new(fail_once.iter().copied().collect()),
            ..Api::default()
        });
        let app = axum::Router::new()
            .route("/v1/events", axum::routing::get(events))
            .with_state(api.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, port) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                bound.send(listener.local_addr().unwrap().port()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        stopped.await.ok();
                    })
                    .await
                    .unwrap();
            });
        });
        Server {
            port: port.recv().unwrap(),
            api,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The requests received since the last call, oldest first.
    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.api.seen.lock().unwrap())
    }

    /// The cursors asked for since the last call (none: the first page).
    fn cursors(&self) -> Vec<Option<String>> {
        let seen = self.seen();
        assert!(seen.iter().all(|s| s.authorized), "{seen:?}");
        seen.into_iter().map(|s| s.cursor).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    importer: Importer,
    api: Server,
}

impl Fixture {
    /// A tenant with `rest-pull` installed from a signed bundle and granted
    /// the API's host over plain HTTP on its port, and the API itself.
    fn new(fail_once: &[usize]) -> Self {
        let api = Server::start(fail_once);
        let dir = tempfile::tempdir().unwrap();
        let vault = Arc::new(
            Vault::open(
                dir.path().join("data"),
                dir.path().join("keys"),
                MasterKey::generate().unwrap(),
            )
            .unwrap()
            // One tick per reading: imports started one after the other
            // have distinct times, and the items stay within retention.
            .with_clock({
                let ticks = Arc::new(std::sync::atomic::AtomicI64::new(0));
                Arc::new(move || NOW_MS + ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            }),
        );
        vault
            .create_tenant(TENANT, TenantSettings::default(), &operator())
            .unwrap();
        let loopback = ["127.0.0.1".parse().unwrap()];
        let runtime = Runtime::new(RuntimeConfig {
            // Both names lead to the test's server; only the grant tells them apart.
            resolver: Arc::new(
                StaticResolver::new()
                    .with("api.shop.test", loopback)
                    .with("evil.shop.test", loopback),
            ),
            ..RuntimeConfig::default()
        })
        .unwrap();
        let registry = Registry::new(runtime, vault.clone(), false)
            .with_outbound_allowance(vec!["127.0.0.1/32".parse().unwrap()]);
        registry
            .install_builtin(TENANT, tessera_guests::plugins::CSV, Kind::Connector, 0)
            .unwrap();
        let key = PublisherKey::generate().unwrap();
        registry
            .trust(TENANT, &key.public().to_string(), "Tessera", &operator())
            .unwrap();
        let host = format!("http://api.shop.test:{}", api.port);
        let source: SourceManifest = serde_json::from_value(json!({
            "publisher": "Tessera",
            "version": "0.1.0",
            "plugins": [{
                "name": "rest-pull",
                "kind": "connector",
                "wit_version": "0.1.0",
                "component": "rest-pull.wasm",
                "permissions": {"outbound_hosts": [host]},
            }]
        }))
        .unwrap();
        let mut bundle =
            Bundle::build(source, vec![tessera_guests::plugins::REST_PULL.to_vec()]).unwrap();
        bundle.sign(&key);
        registry
            .install(TENANT, &bundle.to_bytes(), false, &operator())
            .unwrap();
        let grant = Permissions {
            outbound_hosts: vec![host],
            ..Permissions::default()
        };
        registry
            .approve(TENANT, "rest-pull", Some(grant), None, &operator())
            .unwrap();
        Fixture {
            dir,
            importer: Importer::new(registry, vault),
            api,
        }
    }

    fn spec(&self, host: &str, max_pages: Option<u32>) -> PullSpec {
        PullSpec {
            connector: "rest-pull".into(),
            params: vec![
                text("url", &format!("http://{host}:{}/v1/events", self.api.port)),
                integer("page_size", PAGE_SIZE),
                text("id_prefix", "shop:"),
                text("auth_header", TOKEN),
            ],
            source: SOURCE.into(),
            max_pages,
        }
    }

    fn pull(&self, max_pages: Option<u32>) -> Result<ImportRecord, ImportError> {
        let mut calls = 0;
        let record = self.importer.pull(
            TENANT,
            self.spec("api.shop.test", max_pages),
            &operator(),
            |_| calls += 1,
        );
        if let Ok(record) = &record {
            assert_eq!(calls, record.report.chunks, "one progress call per page");
        }
        record
    }

    /// The stored cursor, and whether the source was exhausted there.
    fn cursor(&self) -> Option<(Option<String>, bool)> {
        self.importer
            .pull_cursor(TENANT, "rest-pull", SOURCE)
            .unwrap()
            .map(|c| (c.cursor, c.exhausted))
    }
}

fn text(name: &str, value: &str) -> FieldValue {
    FieldValue {
        name: name.into(),
        value: Value::Text(value.into()),
    }
}

fn integer(name: &str, value: i64) -> FieldValue {
    FieldValue {
        name: name.into(),
        value: Value::Integer(value),
    }
}

fn cursor(page: usize) -> Option<String> {
    match page {
        1 => None,
        n => Some(CURSORS[n - 2].to_string()),
    }
}

#[test]
fn a_pull_stores_every_item_once_dead_letters_the_bad_ones_and_continues_from_its_cursor() {
    let f = Fixture::new(&[]);
    assert_eq!(f.cursor(), None, "never pulled");

    // One page: it stops there, with the second page's cursor stored.
    let first = f.pull(Some(1)).unwrap();
    assert_eq!(first.status, ImportStatus::Completed);
    assert_eq!(first.chunking, Chunking::Pages);
    let pull = first.pull.as_ref().unwrap();
    assert_eq!(
        (pull.from.clone(), pull.pages, pull.exhausted),
        (None, 1, false)
    );
    assert_eq!(first.report.events_inserted, 2);
    assert_eq!(first.report.trait_updates, 1);
    assert_eq!(f.cursor(), Some((cursor(2), false)));
    let seen = f.api.seen();
    assert_eq!(
        seen,
        vec![Seen {
            cursor: None,
            limit: Some(PAGE_SIZE.to_string()),
            authorized: true
        }]
    );

    // The rest: from the stored cursor to the end, each cursor reaching the
    // API as it was given (percent-encoded on the way).
    let rest = f.pull(None).unwrap();
    assert_eq!(f.api.cursors(), vec![cursor(2), cursor(3), cursor(4)]);
    assert_eq!(rest.status, ImportStatus::Completed);
    let pull = rest.pull.as_ref().unwrap();
    assert_eq!(
        (pull.from.clone(), pull.pages, pull.exhausted),
        (cursor(2), 3, true)
    );
    let r = &rest.report;
    assert_eq!((r.chunks, r.chunks_failed), (3, 0));
    assert_eq!(r.rows_read, 8, "items read");
    assert_eq!((r.records, r.events, r.identity_links), (7, 6, 1));
    assert_eq!(
        (r.rows_rejected, r.records_refused, r.dead_letters),
        (1, 1, 2)
    );
    assert_eq!(r.accepted, 6);
    assert_eq!(r.rejected.get("invalid_field:at"), Some(&1));
    assert_eq!(r.rejected.get("unknown_identity_kind"), Some(&1));
    assert_eq!(
        first.report.events_inserted + r.events_inserted,
        GOOD_EVENTS,
        "every good event stored"
    );
    assert_eq!(first.report.duplicates + r.duplicates, 0, "none twice");
    assert!(r.connector.calls == 3 && r.bytes > 0, "{r:?}");

    // The last page's cursor is kept: the next pull fetches that page
    // again, for anything added to it since.
    assert_eq!(f.cursor(), Some((cursor(4), true)));

    // The bad item: a dead letter at its position in its page, naming the
    // item and the field, with the page and its cursor.
    let letters = f.importer.dead_letters(TENANT, &rest.id, None, 10).unwrap();
    assert_eq!(letters.len(), 2);
    let rejected = letters
        .iter()
        .find(|l| l.origin == LetterOrigin::Rejected)
        .unwrap();
    assert_eq!(rejected.row, Some(2));
    assert_eq!(rejected.field.as_deref(), Some("at"));
    assert_eq!(rejected.code, "invalid_field:at");
    assert!(
        rejected
            .reason
            .starts_with("item 2 (id `evt-1005`): `at` is not an RFC 3339 time"),
        "{}",
        rejected.reason
    );
    let page = rejected.page.as_ref().unwrap();
    assert_eq!((page.number, page.cursor.clone()), (1, cursor(2)));
    assert!(
        !rejected.has_content,
        "the connector returns no bytes for an item"
    );
    // The item the host could not store keeps the connector's record.
    let refused = letters
        .iter()
        .find(|l| l.origin == LetterOrigin::Refused)
        .unwrap();
    assert_eq!(refused.code, "unknown_identity_kind");
    assert_eq!(refused.page.as_ref().unwrap().cursor, cursor(3));
    let letter = f
        .importer
        .dead_letter(TENANT, &rest.id, &refused.id, &operator())
        .unwrap();
    let LetterContent::Item { item } = letter.content else {
        panic!("{letter:?}")
    };
    assert_eq!(item.source_id(), "shop:evt-1008");

    // The bad item is fixed as a record (it has no bytes) and replayed.
    assert!(matches!(
        f.importer.fix_dead_letter(
            TENANT,
            &rest.id,
            &rejected.id,
            Fix::Raw(b"{}".to_vec()),
            &operator()
        ),
        Err(ImportError::BadFix { .. })
    ));
    let fixed: ImportItem = serde_json::from_value(json!({
        "record": "event", "source_id": "shop:evt-1005", "type": "purchase",
        "at_ms": 1_777_680_000_000_i64, "identities": [{"kind": "email", "value": "bo@example.com"}],
        "properties": {"amount": 20}
    }))
    .unwrap();
    f.importer
        .fix_dead_letter(
            TENANT,
            &rest.id,
            &rejected.id,
            Fix::Item(fixed),
            &operator(),
        )
        .unwrap();
    let replayed = f
        .importer
        .replay(
            TENANT,
            &rest.id,
            std::slice::from_ref(&rejected.id),
            &operator(),
        )
        .unwrap();
    assert_eq!((replayed.replayed, replayed.events_inserted), (1, 1));
    let after = f.importer.dead_letters(TENANT, &rest.id, None, 10).unwrap();
    assert!(after.iter().any(|l| l.state == LetterState::Replayed));

    // Pulled again, the exhausted source gives its last page once more and
    // adds nothing.
    let again = f.pull(None).unwrap();
    assert_eq!(f.api.cursors(), vec![cursor(4)]);
    assert_eq!(again.report.events_inserted, 0);
    assert_eq!(again.report.duplicates, 2);
    assert_eq!(f.cursor(), Some((cursor(4), true)));

    // Reset, the source is pulled from its start: every event is already
    // stored, exactly once.
    assert!(
        f.importer
            .reset_pull_cursor(TENANT, "rest-pull", SOURCE, &operator())
            .unwrap()
    );
    assert_eq!(f.cursor(), None);
    let whole = f.pull(None).unwrap();
    assert_eq!(f.api.cursors(), vec![None, cursor(2), cursor(3), cursor(4)]);
    assert_eq!(whole.report.events_inserted, 0);
    assert_eq!(whole.report.duplicates, GOOD_EVENTS);

    let listed = f.importer.imports(TENANT).unwrap();
    assert_eq!(listed.len(), 4);
    assert!(
        listed
            .iter()
            .all(|i| i.chunking == Chunking::Pages && i.pull.is_some())
    );
}

#[test]
fn a_page_that_fails_stops_the_pull_and_the_next_pull_resumes_at_its_cursor() {
    // The third page answers 500 the first time it is asked for.
    let f = Fixture::new(&[2]);
    let failed = f.pull(None).unwrap_err();
    assert_eq!(f.api.cursors(), vec![None, cursor(2), cursor(3)]);
    let ImportError::Failed { import, error } = &failed else {
        panic!("{failed}")
    };
    let ImportError::PageFailed { page, .. } = error.as_ref() else {
        panic!("{error}")
    };
    assert_eq!(*page, 3);
    let message = failed.to_string();
    let url = format!("http://api.shop.test:{}/v1/events", f.api.port);
    for expected in ["page 3", "HTTP 500", url.as_str(), CURSORS[1]] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let record = f.importer.import(TENANT, import).unwrap();
    assert_eq!(record.status, ImportStatus::Failed);
    assert!(record.error.as_deref().unwrap().contains("HTTP 500"));
    let pull = record.pull.as_ref().unwrap();
    assert_eq!((pull.pages, pull.exhausted), (2, false));
    assert_eq!(record.report.chunks_failed, 1);
    assert_eq!(record.report.connector.failed_calls, 1);
    assert_eq!(record.report.events_inserted, 4, "pages 1 and 2 are stored");
    // The cursor stays at the failed page.
    assert_eq!(f.cursor(), Some((cursor(3), false)));

    // The next pull starts at the failed page, not at the source's start.
    let resumed = f.pull(None).unwrap();
    assert_eq!(f.api.cursors(), vec![cursor(3), cursor(4)]);
    assert_eq!(resumed.status, ImportStatus::Completed);
    assert_eq!(resumed.pull.as_ref().unwrap().from, cursor(3));
    assert_eq!(
        resumed.report.duplicates, 0,
        "no stored page was fetched again"
    );
    assert_eq!(
        record.report.events_inserted + resumed.report.events_inserted,
        GOOD_EVENTS
    );
    assert_eq!(f.cursor(), Some((cursor(4), true)));

    // The cursor (stored for the source, and in the failed import's error)
    // and the API token (a parameter of every import) are sealed at rest.
    for needle in [CURSORS[1], TOKEN] {
        let found = files_containing(f.dir.path(), needle.as_bytes());
        assert!(found.is_empty(), "{needle:?} is in clear in {found:?}");
    }
}

fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_host_that_was_not_granted_is_refused_before_any_request_leaves() {
    let f = Fixture::new(&[]);
    // `evil.shop.test` resolves to the same server: only the grant stops it.
    let refused = f
        .importer
        .pull(TENANT, f.spec("evil.shop.test", None), &operator(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(refused.contains("outbound request refused"), "{refused}");
    assert!(
        refused.contains("evil.shop.test is not granted"),
        "{refused}"
    );
    assert!(f.api.seen().is_empty(), "the request reached the server");
    assert_eq!(f.cursor(), None, "nothing was stored for the source");

    // The connector still serves the host it was granted.
    let honest = f.pull(Some(1)).unwrap();
    assert_eq!(honest.report.events_inserted, 2);
    assert_eq!(f.api.cursors(), vec![None]);
}

#[test]
fn pulls_are_refused_for_connectors_that_do_not_pull_bad_parameters_and_a_source_being_pulled() {
    let f = Fixture::new(&[]);
    let mut csv = f.spec("api.shop.test", None);
    csv.connector = "csv".into();
    assert!(matches!(
        f.importer.pull(TENANT, csv, &operator(), |_| {}),
        Err(ImportError::NotAPullSource { why, .. }) if why.contains("does not declare `pull`")
    ));
    let mut no_url = f.spec("api.shop.test", None);
    no_url.params.retain(|p| p.name != "url");
    assert!(matches!(
        f.importer.pull(TENANT, no_url, &operator(), |_| {}),
        Err(ImportError::Params(why)) if why.contains("`url` is required")
    ));
    let mut unnamed = f.spec("api.shop.test", None);
    unnamed.source = " ".into();
    assert!(matches!(
        f.importer.pull(TENANT, unnamed, &operator(), |_| {}),
        Err(ImportError::BadSource(_))
    ));

    // One pull of a source at a time; a reset waits for it too.
    let running = f
        .importer
        .start_pull(TENANT, f.spec("api.shop.test", Some(1)), &operator())
        .unwrap();
    assert!(matches!(
        f.importer
            .start_pull(TENANT, f.spec("api.shop.test", None), &operator()),
        Err(ImportError::PullRunning { .. })
    ));
    assert!(matches!(
        f.importer
            .reset_pull_cursor(TENANT, "rest-pull", SOURCE, &operator()),
        Err(ImportError::PullRunning { .. })
    ));
    running.run(|_| {}).unwrap();
    assert_eq!(f.cursor(), Some((cursor(2), false)));
    assert!(f.pull(Some(1)).is_ok(), "the source is free again");
    assert!(f.api.seen().iter().all(|s| s.authorized));
}

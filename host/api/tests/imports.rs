//! Imports over HTTP: an import created, its data streamed in many pieces,
//! the quality report; a second import of the same file adds nothing; an
//! upload cut off or too large fails the import and keeps what was stored;
//! dead letters listed, read, fixed and replayed exactly once; imports whose
//! data never comes, and imports a stopped server left running, end failed.

mod common;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use common::{ACME, Answer, Fixture, GLOBEX};
use serde_json::{Value, json};
use tessera_api::{AppState, Config, Registry, Role, app};
use tessera_bundle::Kind;
use tessera_imports::{Importer, ImporterConfig};
use tessera_runtime::{Runtime, RuntimeConfig};
use tessera_vault::IdentityKind;

const MAPPING: &str = r#"{
    "source": "pos-test",
    "timezone": "+01:00",
    "identities": {"member_no": "member_id", "email": "email"},
    "event": {
        "type": "purchase",
        "time": {"column": "at", "format": "%Y-%m-%d %H:%M"},
        "properties": {"amount": "number"}
    },
    "source_id": {"column": "receipt"}
}"#;

/// Five rows: three good, one with a bad date (row 4), one with no
/// identity (row 6). Row numbers are file lines; the header is line 1.
const FILE: &str = "receipt,member_no,email,at,amount\n\
r1,M-1,ann@example.com,2026-03-01 10:00,12.50\n\
r2,M-2,,2026-03-01 11:00,3\n\
r3,M-1,,2026-13-01 12:00,7\n\
r4,M-3,bo@example.com,2026-03-02 09:30,99.95\n\
r5,,,2026-03-02 10:00,1\n";

/// The fixture with the CSV connector installed for ACME, and imports
/// that cut their input into small chunks (so a file is many chunks).
fn fixture(config: Config) -> Fixture {
    let mut f = Fixture::with_config(config);
    let runtime = Runtime::new(RuntimeConfig {
        concurrent_calls: 4,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let registry = Registry::new(runtime, f.state.vault.clone(), false);
    let importer =
        Importer::new(registry.clone(), f.state.vault.clone()).with_config(ImporterConfig {
            chunk_bytes: 64,
            ..ImporterConfig::default()
        });
    f.state = f
        .state
        .clone()
        .with_plugins(registry.clone())
        .with_importer(importer);
    f.app = app(f.state.clone());
    std::thread::spawn(move || {
        registry
            .install_builtin(ACME, tessera_guests::plugins::CSV, Kind::Connector, 0)
            .expect("install");
        registry
            .install_builtin(ACME, tessera_guests::plugins::NDJSON, Kind::Connector, 0)
            .expect("install");
    })
    .join()
    .expect("installed");
    f
}

fn spec() -> Value {
    json!({
        "connector": "csv",
        "params": {"mapping": serde_json::from_str::<Value>(MAPPING).unwrap()},
        "chunking": "csv",
        "source": "receipts.csv",
    })
}

async fn create(f: &Fixture, role: Role) -> String {
    let answer = f
        .call(
            Method::POST,
            "/v1/imports",
            Some(f.token(ACME, role)),
            Some(spec()),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(answer.body["status"], "running");
    assert_eq!(answer.body["awaiting_data"], true);
    assert_eq!(answer.body["source"], "receipts.csv");
    answer.body["id"].as_str().unwrap().to_owned()
}

/// Streams `pieces` as the upload of import `id`; `cut` ends the body with
/// an error instead of its end, as a dropped connection does.
async fn upload(f: &Fixture, id: &str, role: Role, pieces: &[&[u8]], cut: bool) -> Answer {
    let (mut sender, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(2);
    let request = Request::builder()
        .method(Method::PUT)
        .uri(format!("/v1/imports/{id}/data"))
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", f.token(ACME, role)),
        )
        .header(header::CONTENT_TYPE, "text/csv")
        .body(Body::new(body))
        .unwrap();
    let owned: Vec<Bytes> = pieces.iter().map(|p| Bytes::copy_from_slice(p)).collect();
    let feeder = tokio::spawn(async move {
        for piece in owned {
            if sender.send_data(piece).await.is_err() {
                return;
            }
        }
        if cut {
            sender.abort(std::io::Error::other("connection reset"));
        }
    });
    let answer = f.send(request).await;
    feeder.await.unwrap();
    answer
}

/// The file in pieces of `size` bytes (cutting records and characters).
fn pieces(text: &str, size: usize) -> Vec<&[u8]> {
    text.as_bytes().chunks(size).collect()
}

fn events_of(f: &Fixture, member: &str) -> usize {
    let subject = f
        .vault()
        .find_subject(ACME, &IdentityKind::MemberId, member, &common::operator())
        .unwrap()
        .unwrap_or_else(|| panic!("{member} is stored"));
    f.vault()
        .access(ACME, &subject, &common::operator())
        .unwrap()
        .events
        .len()
}

#[tokio::test]
async fn an_upload_streams_through_the_connector_and_a_second_adds_nothing() {
    let f = fixture(Config::default());
    let id = create(&f, Role::Marketer).await;
    let answer = upload(&f, &id, Role::Marketer, &pieces(FILE, 7), false)
        .await
        .expect(StatusCode::OK);
    let view = &answer.body;
    assert_eq!(view["status"], "completed", "{view}");
    assert_eq!(view["awaiting_data"], false);
    let r = &view["report"];
    assert_eq!(r["bytes"], FILE.len());
    assert_eq!(r["rows_read"], 5);
    assert!(r["chunks"].as_u64().unwrap() >= 2, "small chunks: {r}");
    assert_eq!(r["events_inserted"], 3);
    assert_eq!(r["duplicates"], 0);
    assert_eq!(r["subjects_new"], 3);
    assert_eq!(r["rejected"]["invalid_field:at"], 1, "{r}");
    assert_eq!(r["dead_letters"], 2);
    let rows: Vec<u64> = r["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [4, 6], "{r}");
    assert_eq!(events_of(&f, "M-1"), 1);
    assert_eq!(events_of(&f, "M-3"), 1);

    // The same file again, in other pieces: nothing new.
    let again = create(&f, Role::Marketer).await;
    let answer = upload(&f, &again, Role::Marketer, &pieces(FILE, 100), false)
        .await
        .expect(StatusCode::OK);
    let r = &answer.body["report"];
    assert_eq!(r["events_inserted"], 0, "{r}");
    assert_eq!(r["duplicates"], 3);
    assert_eq!(r["subjects_new"], 0);
    assert_eq!(r["subjects_matched"], 3);
    assert_eq!(events_of(&f, "M-1"), 1);

    // The list: newest first, with a status filter.
    let list = f
        .call(
            Method::GET,
            "/v1/imports",
            Some(f.token(ACME, Role::Operator)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let ids: Vec<&str> = list.body["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [again.as_str(), id.as_str()]);
    let failed = f
        .call(
            Method::GET,
            "/v1/imports?status=failed",
            Some(f.token(ACME, Role::Operator)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(failed.body["imports"], json!([]));

    // Only the token that created an import sends its data.
    let mine = create(&f, Role::Marketer).await;
    let hijack = upload(&f, &mine, Role::Operator, &[FILE.as_bytes()], false).await;
    assert_eq!(hijack.status, StatusCode::CONFLICT, "{}", hijack.body);
    assert_eq!(hijack.code(), "import_not_waiting");
    upload(&f, &mine, Role::Marketer, &[FILE.as_bytes()], false)
        .await
        .expect(StatusCode::OK);

    // Its data cannot be sent twice, and another tenant does not see it.
    let twice = upload(&f, &id, Role::Marketer, &[FILE.as_bytes()], false).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);
    assert_eq!(twice.code(), "import_not_waiting");
    let other = f
        .call(
            Method::GET,
            &format!("/v1/imports/{id}"),
            Some(f.token(GLOBEX, Role::Operator)),
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.body);
    assert_eq!(other.code(), "unknown_import");
}

#[tokio::test]
async fn a_cut_off_upload_fails_the_import_and_keeps_what_was_stored() {
    let f = fixture(Config::default());
    let id = create(&f, Role::Marketer).await;
    // The first three records, then the connection drops.
    let head = FILE.split_inclusive('\n').take(4).collect::<String>();
    let answer = upload(&f, &id, Role::Marketer, &pieces(&head, 5), true).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "import_failed");
    assert_eq!(answer.body["error"]["details"]["import"], id.as_str());
    let view = import_view(&f, &id).await;
    assert_eq!(view["status"], "failed");
    let error = view["error"].as_str().unwrap();
    assert!(error.contains("connection reset"), "{error}");
    // The chunks read before the cut are stored (chunks of 64 bytes).
    assert_eq!(events_of(&f, "M-1"), 1);

    // The whole file again: only what is missing is added.
    let again = create(&f, Role::Marketer).await;
    let answer = upload(&f, &again, Role::Marketer, &[FILE.as_bytes()], false)
        .await
        .expect(StatusCode::OK);
    let r = &answer.body["report"];
    assert_eq!(
        r["events_inserted"].as_u64().unwrap() + r["duplicates"].as_u64().unwrap(),
        3,
        "{r}"
    );
    assert!(r["duplicates"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(events_of(&f, "M-1"), 1);
    assert_eq!(events_of(&f, "M-3"), 1);
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_and_fails_the_import() {
    let mut config = Config::default();
    config.limits.max_import_bytes = 100;
    let f = fixture(config);
    let id = create(&f, Role::Operator).await;
    let answer = upload(&f, &id, Role::Operator, &pieces(FILE, 30), false).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "import_too_large");
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_import_bytes"), "{message}");
    let view = import_view(&f, &id).await;
    assert_eq!(view["status"], "failed");
    assert!(view["report"]["bytes"].as_u64().unwrap() <= 100);
}

#[tokio::test]
async fn bad_specs_are_refused_with_the_reason() {
    let f = fixture(Config::default());
    let token = Some(f.token(ACME, Role::Operator));
    let cases = [
        (
            json!({"connector": "nope", "chunking": "csv"}),
            "unknown_connector",
        ),
        (
            json!({"connector": "csv", "chunking": "csv", "params": {"mapping": "{"}}),
            "invalid_params",
        ),
        (
            json!({"connector": "csv", "chunking": "csv", "params": {"mapping": MAPPING}, "source": ""}),
            "invalid_source",
        ),
    ];
    for (body, code) in cases {
        let answer = f
            .call(Method::POST, "/v1/imports", token, Some(body.clone()))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.body
        );
        assert_eq!(answer.code(), code, "{body}");
    }
    let answer = f
        .call(
            Method::POST,
            "/v1/imports",
            token,
            Some(json!({"connector": "csv", "chunking": "sideways"})),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    let imports = f
        .call(Method::GET, "/v1/imports", token, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(imports.body["imports"], json!([]), "nothing recorded");
}

#[tokio::test]
async fn dead_letters_are_listed_read_fixed_and_replayed_once() {
    let f = fixture(Config::default());
    let id = create(&f, Role::Marketer).await;
    upload(&f, &id, Role::Marketer, &[FILE.as_bytes()], false)
        .await
        .expect(StatusCode::OK);
    let operator = Some(f.token(ACME, Role::Operator));
    let marketer = Some(f.token(ACME, Role::Marketer));

    let page = f
        .call(
            Method::GET,
            &format!("/v1/imports/{id}/dead-letters?limit=1"),
            marketer,
            None,
        )
        .await
        .expect(StatusCode::OK);
    let first = page.body["letters"][0].clone();
    assert_eq!(first["row"], 4);
    assert_eq!(first["field"], "at");
    assert_eq!(first["state"], "open");
    assert!(first.get("raw").is_none(), "lists never show content");
    let next = page.body["next"].as_str().unwrap().to_owned();
    let rest = f
        .call(
            Method::GET,
            &format!("/v1/imports/{id}/dead-letters?limit=10&after={next}"),
            marketer,
            None,
        )
        .await
        .expect(StatusCode::OK);
    let second = rest.body["letters"][0].clone();
    assert_eq!(second["row"], 6);
    assert!(rest.body.get("next").is_none());

    // The content is for operators, and reading it is audited.
    let letter = first["id"].as_str().unwrap();
    let path = format!("/v1/imports/{id}/dead-letters/{letter}");
    let shown = f
        .call(Method::GET, &path, operator, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown.body["raw"], "r3,M-1,,2026-13-01 12:00,7\n");
    assert_eq!(shown.body["header"], "receipt,member_no,email,at,amount\n");
    let audit = f
        .call(Method::GET, "/v1/audit?from=1&limit=1000", operator, None)
        .await
        .expect(StatusCode::OK);
    assert!(
        audit.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "import.dead_letter.read"),
        "{}",
        audit.body
    );

    // Fix the date; replay everything not replayed: the fixed row is
    // stored, the row without identity fails again.
    f.call(
        Method::PUT,
        &path,
        operator,
        Some(json!({"raw": "r3,M-1,,2026-03-01 12:00,7\n"})),
    )
    .await
    .expect(StatusCode::OK);
    let replay = f
        .call(
            Method::POST,
            &format!("/v1/imports/{id}/replay"),
            marketer,
            Some(json!({})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(replay.body["replayed"], 1, "{}", replay.body);
    assert_eq!(replay.body["failed"], 1);
    assert_eq!(replay.body["events_inserted"], 1);
    assert_eq!(events_of(&f, "M-1"), 2);

    // Again: nothing is stored twice; a replayed letter cannot be changed.
    let replay = f
        .call(
            Method::POST,
            &format!("/v1/imports/{id}/replay"),
            operator,
            Some(json!({"letters": [letter]})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(replay.body["replayed"], 0);
    assert_eq!(replay.body["already_replayed"], 1);
    assert_eq!(events_of(&f, "M-1"), 2);
    let refix = f
        .call(Method::PUT, &path, operator, Some(json!({"raw": "x\n"})))
        .await;
    assert_eq!(refix.status, StatusCode::CONFLICT, "{}", refix.body);
    assert_eq!(refix.code(), "bad_fix");
    let both = f
        .call(
            Method::PUT,
            &path,
            operator,
            Some(json!({"raw": "x", "raw_base64": "eA=="})),
        )
        .await;
    assert_eq!(both.code(), "invalid_fix");
}

#[tokio::test]
async fn imports_whose_data_never_comes_and_interrupted_imports_end_failed() {
    let f = fixture(Config::default());
    let waiting = create(&f, Role::Marketer).await;
    let desk = f.state.imports.clone().unwrap();
    let expired = tokio::task::spawn_blocking(move || desk.expire_waiting(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(expired, 1);
    let view = import_view(&f, &waiting).await;
    assert_eq!(view["status"], "failed");
    assert!(
        view["error"]
            .as_str()
            .unwrap()
            .contains("no data was uploaded"),
        "{}",
        view
    );
    let late = upload(&f, &waiting, Role::Marketer, &[FILE.as_bytes()], false).await;
    assert_eq!(late.code(), "import_not_waiting");

    // A server that stopped while an import waited: the next start marks
    // it failed.
    let cut = create(&f, Role::Marketer).await;
    let restarted = AppState::new(f.state.vault.clone(), Config::default())
        .with_plugins(f.state.plugins.clone().unwrap());
    let importer = restarted.imports.clone().unwrap();
    let failed = tokio::task::spawn_blocking(move || importer.importer().fail_interrupted(ACME))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed, 1);
    let view = import_view(&f, &cut).await;
    assert_eq!(view["status"], "failed");
    assert!(
        view["error"].as_str().unwrap().contains("server stopped"),
        "{}",
        view
    );
}

#[tokio::test]
async fn a_webhook_source_takes_posts_through_its_connector() {
    let f = fixture(Config::default());
    let operator = Some(f.token(ACME, Role::Operator));
    let saved = f
        .call(
            Method::PUT,
            "/v1/sources/shop-events",
            operator,
            Some(json!({"connector": "ndjson", "chunking": "lines"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(saved.body["push_url"], "/v1/sources/shop-events/push");
    assert_eq!(saved.body["chunking"], "lines");
    let listed = f
        .call(
            Method::GET,
            "/v1/sources",
            Some(f.token(ACME, Role::Marketer)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.body["sources"][0]["name"], "shop-events");

    let post = concat!(
        r#"{"id":"w-1","type":"track","event":"purchase","at":"2026-03-01T10:00:00Z","identities":{"member_id":"M-7"},"properties":{"amount":20}}"#,
        "\n",
        r#"{"id":"w-2","type":"track","event":"purchase","at":"not a time","identities":{"member_id":"M-7"}}"#,
        "\n",
    );
    let push = |body: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/sources/shop-events/push")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", f.token(ACME, Role::Ingest)),
            )
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .body(Body::from(body))
            .unwrap()
    };
    let first = f.send(push(post)).await.expect(StatusCode::OK);
    assert_eq!(first.body["status"], "completed");
    assert_eq!(first.body["source"], "webhook:shop-events");
    let r = &first.body["report"];
    assert_eq!(r["rows_read"], 2, "{r}");
    assert_eq!(r["events_inserted"], 1, "{r}");
    assert_eq!(r["dead_letters"], 1, "{r}");
    assert_eq!(events_of(&f, "M-7"), 1);
    let again = f.send(push(post)).await.expect(StatusCode::OK);
    assert_eq!(again.body["report"]["events_inserted"], 0);
    assert_eq!(again.body["report"]["duplicates"], 1);
    assert_eq!(events_of(&f, "M-7"), 1);

    let bad = f
        .call(
            Method::PUT,
            "/v1/sources/Shop",
            operator,
            Some(json!({"connector": "ndjson"})),
        )
        .await;
    assert_eq!(bad.code(), "invalid_source_name");
    let not_a_connector = f
        .call(
            Method::PUT,
            "/v1/sources/x",
            operator,
            Some(json!({"connector": "nope"})),
        )
        .await;
    assert_eq!(not_a_connector.code(), "unknown_connector");

    f.call(Method::DELETE, "/v1/sources/shop-events", operator, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let gone = f.send(push(post)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
    assert_eq!(gone.code(), "unknown_source");
}

/// The shop's API on 127.0.0.1: two pages of purchases, the second the last.
fn shop_api() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let items = axum::routing::get(
                |query: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                    let purchase = |id: &str, day: u32| {
                        json!({"id": id, "event": "purchase", "at": format!("2026-05-0{day}T10:00:00Z"),
                               "identities": {"member_id": "M-42"}, "properties": {"amount": 10}})
                    };
                    axum::Json(match query.get("cursor").map(String::as_str) {
                        None => json!({"data": [purchase("p-1", 1), purchase("p-2", 2)], "next_cursor": "page 2"}),
                        Some("page 2") => json!({"data": [purchase("p-3", 3)], "next_cursor": null}),
                        Some(_) => json!({"data": []}),
                    })
                },
            );
            let app = axum::Router::new().route("/items", items);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    port
}

#[tokio::test]
async fn a_source_is_pulled_in_the_background_and_the_next_pull_continues_from_its_cursor() {
    let port = shop_api();
    let host = format!("http://127.0.0.1:{port}");
    let mut f = Fixture::with_config(Config::default());
    let runtime = Runtime::new(RuntimeConfig {
        concurrent_calls: 4,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let registry = Registry::new(runtime, f.state.vault.clone(), false)
        .with_outbound_allowance(vec!["127.0.0.1/32".parse().unwrap()]);
    f.state = f.state.clone().with_plugins(registry.clone());
    f.app = app(f.state.clone());
    let granted = host.clone();
    std::thread::spawn(move || {
        let key = tessera_bundle::PublisherKey::generate().unwrap();
        registry
            .trust(ACME, &key.public().to_string(), "Shop", &common::operator())
            .unwrap();
        let manifest: tessera_bundle::SourceManifest = serde_json::from_value(json!({
            "publisher": "Shop", "version": "0.1.0",
            "plugins": [{"name": "rest-pull", "kind": "connector", "wit_version": "0.1.0",
                         "component": "rest-pull.wasm",
                         "permissions": {"outbound_hosts": [granted]}}]
        }))
        .unwrap();
        let mut bundle = tessera_bundle::Bundle::build(
            manifest,
            vec![tessera_guests::plugins::REST_PULL.to_vec()],
        )
        .unwrap();
        bundle.sign(&key);
        registry
            .install(ACME, &bundle.to_bytes(), false, &common::operator())
            .unwrap();
        registry
            .approve(ACME, "rest-pull", None, None, &common::operator())
            .unwrap();
    })
    .join()
    .expect("installed");

    let operator = Some(f.token(ACME, Role::Operator));
    f.call(
        Method::PUT,
        "/v1/sources/shop-api",
        operator,
        Some(json!({"connector": "rest-pull", "params": {
            "url": format!("{host}/items"), "auth_header": "Bearer shop-secret-1"}})),
    )
    .await
    .expect(StatusCode::OK);
    let sources = f
        .call(
            Method::GET,
            "/v1/sources",
            Some(f.token(ACME, Role::Marketer)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        sources.body["sources"][0]["params"]["auth_header"],
        "(hidden)"
    );
    assert!(!sources.body.to_string().contains("shop-secret-1"));
    let started = pull(&f).await.expect(StatusCode::ACCEPTED);
    assert_eq!(started.body["status"], "running");
    assert_eq!(started.body["chunking"], "pages");
    assert!(!started.body.to_string().contains("shop-secret-1"));
    let first = finished(&f, started.body["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(first["report"]["events_inserted"], 3, "{first}");
    assert_eq!(events_of(&f, "M-42"), 3);

    // The next pull starts at the last page's cursor: nothing new.
    let again = pull(&f).await.expect(StatusCode::ACCEPTED);
    let second = finished(&f, again.body["id"].as_str().unwrap()).await;
    assert_eq!(second["status"], "completed", "{second}");
    assert_eq!(second["report"]["events_inserted"], 0, "{second}");
    assert_eq!(second["report"]["duplicates"], 1, "{second}");
    assert_eq!(events_of(&f, "M-42"), 3);

    // Reset: the next pull starts from the source's start again.
    let reset = f
        .call(
            Method::DELETE,
            "/v1/sources/shop-api/cursor",
            operator,
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(reset.body["reset"], true);
    let third = pull(&f).await.expect(StatusCode::ACCEPTED);
    let third = finished(&f, third.body["id"].as_str().unwrap()).await;
    assert_eq!(third["report"]["events_inserted"], 0, "{third}");
    assert_eq!(third["report"]["duplicates"], 3, "{third}");
}

async fn pull(f: &Fixture) -> Answer {
    f.call(
        Method::POST,
        "/v1/sources/shop-api/pull",
        Some(f.token(ACME, Role::Marketer)),
        Some(json!({})),
    )
    .await
}

/// An import as a marketer sees it.
async fn import_view(f: &Fixture, id: &str) -> Value {
    f.call(
        Method::GET,
        &format!("/v1/imports/{id}"),
        Some(f.token(ACME, Role::Marketer)),
        None,
    )
    .await
    .expect(StatusCode::OK)
    .body
}

/// Follows an import until it ends (at most 20 s).
async fn finished(f: &Fixture, id: &str) -> Value {
    for _ in 0..400 {
        let view = import_view(f, id).await;
        if view["status"] != "running" {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import {id} did not end within 20 s");
}

#[tokio::test]
async fn uploads_are_capped_and_a_silent_upload_is_cut_off() {
    let mut config = Config::default();
    config.limits.max_concurrent_uploads = 1;
    config.limits.import_idle_ms = 1000;
    let f = fixture(config);
    let silent = create(&f, Role::Marketer).await;
    let other = create(&f, Role::Marketer).await;
    // An upload that sends a header line and then nothing.
    let (mut sender, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(1);
    let request = Request::builder()
        .method(Method::PUT)
        .uri(format!("/v1/imports/{silent}/data"))
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", f.token(ACME, Role::Marketer)),
        )
        .body(Body::new(body))
        .unwrap();
    sender
        .send_data(Bytes::from_static(b"receipt,member_no,email,at,amount\n"))
        .await
        .unwrap();
    let app = f.app.clone();
    let stalled = tokio::spawn(async move {
        use tower::ServiceExt as _;
        app.oneshot(request).await.unwrap().status()
    });
    // Wait until the silent upload holds the only slot.
    for _ in 0..200 {
        if import_view(&f, &silent).await["awaiting_data"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = upload(&f, &other, Role::Marketer, &[FILE.as_bytes()], false).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "too_many_uploads");
    // The refused import still waits for its data.
    let waiting = import_view(&f, &other).await;
    assert_eq!(waiting["awaiting_data"], true);

    // A second without data: the silent upload is cut off, its import
    // fails, and the slot is free again.
    assert_eq!(stalled.await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY);
    drop(sender);
    let view = finished(&f, &silent).await;
    assert_eq!(view["status"], "failed");
    let error = view["error"].as_str().unwrap();
    assert!(error.contains("no data arrived"), "{error}");
    upload(&f, &other, Role::Marketer, &[FILE.as_bytes()], false)
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn a_push_with_an_ingest_token_is_an_untrusted_source() {
    let f = fixture(Config::default());
    // Two people: one known by email, one by member id.
    for (kind, value) in [
        (IdentityKind::Email, "eve@example.com"),
        (IdentityKind::MemberId, "M-EVE"),
    ] {
        let item = tessera_vault::Incoming {
            identities: vec![(kind, value.to_owned())],
            ..tessera_vault::Incoming::default()
        };
        f.vault().ingest(ACME, &item, &common::operator()).unwrap();
    }
    f.call(
        Method::PUT,
        "/v1/sources/links",
        Some(f.token(ACME, Role::Operator)),
        Some(json!({"connector": "ndjson", "chunking": "lines"})),
    )
    .await
    .expect(StatusCode::OK);
    let link = r#"{"id":"link-1","type":"alias","identities":{"email":"eve@example.com","member_id":"M-EVE"}}"#;
    let push = |role: Role, body: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/sources/links/push")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", f.token(ACME, role)),
            )
            .body(Body::from(body))
            .unwrap()
    };
    let from_ingest = f
        .send(push(Role::Ingest, link))
        .await
        .expect(StatusCode::OK);
    let r = &from_ingest.body["report"];
    assert_eq!(r["identities_merged"], 0, "{r}");
    assert_eq!(r["rejected"]["untrusted_merge"], 1, "{r}");
    let subject = |kind: IdentityKind, value: &str| {
        f.vault()
            .find_subject(ACME, &kind, value, &common::operator())
            .unwrap()
            .unwrap()
    };
    assert_ne!(
        subject(IdentityKind::Email, "eve@example.com"),
        subject(IdentityKind::MemberId, "M-EVE")
    );
    // The same record from an operator is staff work: trusted, merged.
    let link2 = r#"{"id":"link-2","type":"alias","identities":{"email":"eve@example.com","member_id":"M-EVE"}}"#;
    let from_operator = f
        .send(push(Role::Operator, link2))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        from_operator.body["report"]["identities_merged"], 1,
        "{}",
        from_operator.body
    );
    assert_eq!(
        subject(IdentityKind::Email, "eve@example.com"),
        subject(IdentityKind::MemberId, "M-EVE")
    );
}

//! Handler tests of the admin and data endpoints through `app(state)` and
//! `oneshot`: subject lookup, rectification and export, the deletion list,
//! the tenant, the trait schema, plugins and their metrics.

mod common;

use axum::http::{Method, StatusCode, header};
use common::{ACME, Fixture, GLOBEX};
use serde_json::{Value, json};
use tessera_api::{Registry, Role, app};
use tessera_bundle::Kind;
use tessera_plugins::RegistryError;
use tessera_runtime::api::types::{Column, ColumnData, FieldValue, ProfileBatch, Value as Cell};
use tessera_runtime::{Limits, Plugin, Runtime, RuntimeConfig};
use tessera_vault::{IdentityKind, Incoming, TenantSettings};

/// A subject of `tenant` with these identities and traits.
fn person(f: &Fixture, tenant: &str, identities: &[(IdentityKind, &str)], traits: Value) -> String {
    let item = Incoming {
        identities: identities
            .iter()
            .map(|(kind, value)| (kind.clone(), (*value).to_owned()))
            .collect(),
        traits: serde_json::from_value(traits).unwrap(),
        ..Incoming::default()
    };
    f.vault()
        .ingest(tenant, &item, &common::operator())
        .expect("ingest")
        .subject
        .expect("a subject")
}

/// The tenant's audit entries, all of them.
fn audit(f: &Fixture, tenant: &str) -> Vec<Value> {
    f.vault()
        .audit_entries(tenant, 1, 100_000)
        .unwrap()
        .into_iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

fn head(f: &Fixture, tenant: &str) -> u64 {
    f.vault().store().audit_head(tenant).unwrap()
}

#[tokio::test]
async fn lookup_finds_a_person_by_a_normalised_identity_and_audits_it() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let ann = person(
        &f,
        ACME,
        &[
            (IdentityKind::Email, "annlee@gmail.com"),
            (IdentityKind::MemberId, "m-1"),
        ],
        json!({}),
    );
    let lookup = |kind: &str, value: Value| {
        f.call(
            Method::POST,
            "/v1/subjects/lookup",
            Some(&operator),
            Some(json!({"kind": kind, "value": value})),
        )
    };
    let found = lookup("email", json!("annlee@gmail.com"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(found.body, json!({"subject": ann}));
    // Written another way, the same address after normalisation.
    let variant = lookup("email", json!("  Ann.Lee+News@GMAIL.com "))
        .await
        .expect(StatusCode::OK);
    assert_eq!(variant.body["subject"], ann.as_str());
    lookup("member_id", json!("m-1"))
        .await
        .expect(StatusCode::OK);

    let unknown = lookup("email", json!("bob@example.com"))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "unknown_subject");
    // Another tenant's token finds no one.
    let theirs = f
        .call(
            Method::POST,
            "/v1/subjects/lookup",
            Some(f.token(GLOBEX, Role::Operator)),
            Some(json!({"kind": "email", "value": "annlee@gmail.com"})),
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(theirs.code(), "unknown_subject");

    // A malformed value: 422 naming the kind, never the value.
    let head_before = head(&f, ACME);
    let malformed = lookup("email", json!("secret-no-at-sign"))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(malformed.code(), "invalid_identity");
    assert_eq!(malformed.body["error"]["details"]["field"], "value");
    assert_eq!(malformed.body["error"]["details"]["kind"], "email");
    assert!(!malformed.body.to_string().contains("secret-no-at-sign"));
    let phone = lookup("phone", json!("12"))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(phone.body["error"]["details"]["kind"], "phone");
    let kind = lookup("passport", json!("X123"))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (kind.code(), &kind.body["error"]["details"]["field"]),
        ("invalid_identity", &json!("kind"))
    );
    // A body of the wrong shape is refused without quoting it.
    let shape = lookup("phone", json!(4_915_112_345_678_u64))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(shape.code(), "invalid_body");
    assert!(!shape.body.to_string().contains("4915112345678"));
    assert_eq!(
        head(&f, ACME),
        head_before,
        "refused lookups looked nothing up"
    );

    // Every lookup is audited with the kind, and the subject when found;
    // the trail never holds the value.
    let entries = audit(&f, ACME);
    let lookups: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "subject.lookup")
        .collect();
    assert_eq!(lookups.len(), 4, "{lookups:?}");
    assert_eq!(lookups[0]["subject"], ann.as_str());
    assert_eq!(lookups[0]["detail"], "email");
    assert_eq!(lookups[0]["actor"]["role"], "operator");
    assert_eq!(lookups[2]["detail"], "member_id");
    assert!(lookups[3].get("subject").is_none(), "not found: no subject");
    let trail = serde_json::to_string(&entries).unwrap();
    assert!(
        !trail.contains("annlee") && !trail.contains("bob@"),
        "{trail}"
    );

    // Identity values never travel in a URL: there is no GET form.
    let get = f
        .call(Method::GET, "/v1/subjects/lookup", Some(&operator), None)
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.code(), "method_not_allowed");
}

#[tokio::test]
async fn rectification_changes_and_removes_traits_and_audits_names_only() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let subject = person(
        &f,
        ACME,
        &[(IdentityKind::MemberId, "m-1")],
        json!({"tier": "gold", "city": "Berlin"}),
    );
    let uri = format!("/v1/subjects/{subject}");
    let patch = |body: Value| f.call(Method::PATCH, &uri, Some(&operator), Some(body));
    let changed = patch(json!({"traits": {"tier": "platinum", "city": null}}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        changed.body,
        json!({"subject": subject, "set": ["tier"], "removed": ["city"]})
    );
    let view = f
        .vault()
        .access(ACME, &subject, &common::operator())
        .unwrap();
    assert_eq!(view.traits["tier"].0, json!("platinum"));
    assert!(!view.traits.contains_key("city"));

    // An unknown trait is named; nothing changes.
    let before = head(&f, ACME);
    let unknown = patch(json!({"traits": {"shoe_size": 42, "tier": "silver"}}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.code(), "unknown_trait");
    assert_eq!(
        unknown.body["error"]["details"]["field"],
        "traits.shoe_size"
    );
    // A value of the wrong type is named, not quoted.
    let wrong = patch(json!({"traits": {"lifetime_value": "secret-amount"}}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.code(), "invalid_trait");
    assert_eq!(
        wrong.body["error"]["details"]["field"],
        "traits.lifetime_value"
    );
    assert!(!wrong.body.to_string().contains("secret-amount"));
    for body in [
        json!({"traits": {}}),
        json!({"traits": ["tier"]}),
        json!({"tier": "x"}),
        json!({"traits": {"Bad Name": 1}}),
    ] {
        let answer = patch(body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    assert_eq!(
        head(&f, ACME),
        before,
        "refused rectifications changed nothing"
    );
    let view = f
        .vault()
        .access(ACME, &subject, &common::operator())
        .unwrap();
    assert_eq!(view.traits["tier"].0, json!("platinum"));

    // Unknown and foreign subjects: 404.
    let missing = f
        .call(
            Method::PATCH,
            "/v1/subjects/00000000000000000000000000000000",
            Some(&operator),
            Some(json!({"traits": {"tier": "x"}})),
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "unknown_subject");
    f.call(
        Method::PATCH,
        &uri,
        Some(f.token(GLOBEX, Role::Operator)),
        Some(json!({"traits": {"tier": "x"}})),
    )
    .await
    .expect(StatusCode::NOT_FOUND);

    // The audit names the fields, never the values.
    let entries = audit(&f, ACME);
    let rectify: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "subject.rectify")
        .collect();
    assert_eq!(rectify.len(), 1);
    assert_eq!(rectify[0]["fields"], json!(["city", "tier"]));
    assert_eq!(rectify[0]["subject"], subject.as_str());
    let trail = serde_json::to_string(&entries).unwrap();
    assert!(!trail.contains("platinum") && !trail.contains("Berlin"));
}

#[tokio::test]
async fn an_export_downloads_everything_as_json_or_as_csv_tables() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let subject = person(
        &f,
        ACME,
        &[(IdentityKind::Email, "ann@example.com")],
        json!({"tier": "gold", "first_name": "Ann"}),
    );
    let json_export = f
        .call(
            Method::GET,
            &format!("/v1/subjects/{subject}/export?format=json"),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        json_export.headers[header::CONTENT_TYPE],
        "application/json"
    );
    assert_eq!(
        json_export.headers[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"subject-{subject}.json\"").as_str()
    );
    assert_eq!(json_export.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(json_export.body["subject"], subject.as_str());
    assert_eq!(
        json_export.body["traits"]["tier"],
        json!(["gold", "standard"])
    );
    assert_eq!(
        json_export.body["identities"],
        json!([["email", "ann@example.com"]])
    );
    // JSON is the default.
    f.call(
        Method::GET,
        &format!("/v1/subjects/{subject}/export"),
        Some(&operator),
        None,
    )
    .await
    .expect(StatusCode::OK);

    let csv = f
        .call(
            Method::GET,
            &format!("/v1/subjects/{subject}/export?format=csv"),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "application/zip");
    assert_eq!(
        csv.headers[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"subject-{subject}.csv.zip\"").as_str()
    );
    let bytes = csv.body.as_str().expect("not JSON");
    assert!(bytes.starts_with("PK\u{3}\u{4}"));
    for table in [
        "traits.csv",
        "events.csv",
        "identities.csv",
        "access_log.csv",
    ] {
        assert!(bytes.contains(table), "{table}");
    }
    // Files are stored uncompressed: their text is in the archive.
    assert!(bytes.contains("name,value,class\r\nfirst_name,Ann,pii\r\ntier,gold,standard\r\n"));

    for (query, status, code) in [
        ("format=xml", StatusCode::BAD_REQUEST, "invalid_query"),
        ("as=csv", StatusCode::BAD_REQUEST, "invalid_query"),
    ] {
        let answer = f
            .call(
                Method::GET,
                &format!("/v1/subjects/{subject}/export?{query}"),
                Some(&operator),
                None,
            )
            .await;
        assert_eq!((answer.status, answer.code()), (status, code), "{query}");
    }
    let missing = f
        .call(
            Method::GET,
            "/v1/subjects/ffffffffffffffffffffffffffffffff/export",
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "unknown_subject");

    let exports: Vec<Value> = audit(&f, ACME)
        .into_iter()
        .filter(|e| e["action"] == "subject.export")
        .collect();
    let details: Vec<&Value> = exports.iter().map(|e| &e["detail"]).collect();
    assert_eq!(details, [&json!("json"), &json!("json"), &json!("csv")]);
    assert!(exports.iter().all(|e| e["subject"] == subject.as_str()));
}

#[tokio::test]
async fn deletion_requests_are_listed_newest_first_by_page_and_status() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let mut requests = Vec::new();
    for n in 0..3 {
        let subject = f.subject(ACME, &format!("gone-{n}"));
        let request = f
            .vault()
            .request_deletion(ACME, &subject, "test", &common::operator())
            .unwrap();
        requests.push(request.id);
        if n == 1 {
            f.vault().run_jobs("test").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    let (fx, token) = (&f, &operator);
    let list = |query: &str| {
        let uri = format!("/v1/deletions{query}");
        async move { fx.call(Method::GET, &uri, Some(token), None).await }
    };
    let ids = |body: &Value| -> Vec<String> {
        body["deletions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = list("").await.expect(StatusCode::OK);
    let newest_first: Vec<String> = requests.iter().rev().cloned().collect();
    assert_eq!(ids(&all.body), newest_first);
    assert!(all.body["next"].is_null());

    let first = list("?limit=2").await.expect(StatusCode::OK);
    assert_eq!(ids(&first.body), newest_first[..2]);
    let next = first.body["next"].as_str().expect("a next page").to_owned();
    let second = list(&format!("?limit=2&after={next}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(ids(&second.body), newest_first[2..]);
    assert!(second.body["next"].is_null());

    let completed = list("?status=completed").await.expect(StatusCode::OK);
    assert_eq!(
        ids(&completed.body),
        [requests[1].clone(), requests[0].clone()]
    );
    assert!(
        completed.body["deletions"][0]["receipt"]["mac"].is_string(),
        "completed requests carry their receipt"
    );
    let open = list("?status=keys_destroyed").await.expect(StatusCode::OK);
    assert_eq!(ids(&open.body), [requests[2].clone()]);

    for query in [
        "?limit=0",
        "?limit=1001",
        "?after=nonsense",
        "?status=lost",
        "?x=1",
    ] {
        let answer = list(query).await.expect(StatusCode::BAD_REQUEST);
        assert_eq!(answer.code(), "invalid_query", "{query}");
    }
    let theirs = f
        .call(
            Method::GET,
            "/v1/deletions",
            Some(f.token(GLOBEX, Role::Operator)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(theirs.body["deletions"], json!([]));
}

#[tokio::test]
async fn the_tenant_view_shows_its_settings_and_counts() {
    let f = Fixture::new();
    let view = f
        .call(
            Method::GET,
            "/v1/tenant",
            Some(f.token(ACME, Role::Analyst)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let defaults = TenantSettings::default();
    let body = &view.body;
    assert_eq!(body["id"], ACME);
    assert_eq!(body["settings"]["purposes"], json!(defaults.purposes));
    assert_eq!(
        body["settings"]["retention"],
        json!({"min_days": 30, "max_days": 1095, "default_days": 730})
    );
    assert_eq!(body["settings"]["deletion_deadline_days"], 30);
    assert_eq!(
        body["settings"]["identity_rules"],
        json!({"default_country_code": null, "canonical_gmail": true, "locked": false})
    );
    assert_eq!(body["settings"]["traits"], defaults.schema.len());
    assert_eq!(body["counts"]["active_tokens"], Role::ALL.len());
    assert_eq!(body["counts"]["deletion_requests"], 0);

    let subject = f.subject(ACME, "m-1");
    f.vault()
        .request_deletion(ACME, &subject, "test", &common::operator())
        .unwrap();
    let view = f
        .call(
            Method::GET,
            "/v1/tenant",
            Some(f.token(ACME, Role::Marketer)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(view.body["settings"]["identity_rules"]["locked"], true);
    assert_eq!(view.body["counts"]["deletion_requests"], 1);
    assert_eq!(view.body["counts"]["open_deletion_requests"], 1);
    assert_eq!(view.body["counts"]["suppressed_identities"], 1);
    assert_eq!(
        view.body["counts"]["audit_entries"],
        head(&f, ACME),
        "the audit head"
    );
    // The token's own tenant, whoever asks.
    let theirs = f
        .call(
            Method::GET,
            "/v1/tenant",
            Some(f.token(GLOBEX, Role::Operator)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(theirs.body["id"], GLOBEX);
    assert_eq!(theirs.body["counts"]["deletion_requests"], 0);
}

#[tokio::test]
async fn the_schema_grows_tightens_and_refuses_to_loosen_or_drop_held_traits() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let schema = f
        .call(
            Method::GET,
            "/v1/schema",
            Some(f.token(ACME, Role::Marketer)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let traits = schema.body["traits"].as_array().unwrap();
    assert!(traits.contains(
        &json!({"name": "email", "class": "pii", "type": "string", "pii_class": "email"})
    ));
    assert!(
        traits.contains(&json!({"name": "lifetime_value", "class": "standard", "type": "number"}))
    );

    let (fx, token) = (&f, &operator);
    let put = |name: &str, class: &str, kind: &str| {
        let uri = format!("/v1/schema/traits/{name}");
        let body = json!({"class": class, "type": kind});
        async move { fx.call(Method::PUT, &uri, Some(token), Some(body)).await }
    };
    let added = put("shoe_size", "standard", "number")
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(added.body["change"], "added");
    assert_eq!(
        added.body["trait"],
        json!({"name": "shoe_size", "class": "standard", "type": "number"})
    );
    assert!(added.body["previous"].is_null());
    let before = head(&f, ACME);
    let same = put("shoe_size", "standard", "number")
        .await
        .expect(StatusCode::OK);
    assert_eq!(same.body["change"], "unchanged");
    assert_eq!(head(&f, ACME), before, "no change, no audit entry");

    // Someone holds a value now.
    let subject = person(
        &f,
        ACME,
        &[(IdentityKind::MemberId, "m-1")],
        json!({"shoe_size": 42}),
    );
    // Stricter is always allowed.
    let stricter = put("shoe_size", "sensitive", "number")
        .await
        .expect(StatusCode::OK);
    assert_eq!(stricter.body["change"], "changed");
    assert_eq!(stricter.body["previous"]["class"], "standard");

    // Looser, retyped or removed while held: refused with the reason, and
    // nothing changes.
    let settings = f.vault().settings(ACME).unwrap();
    let before = head(&f, ACME);
    let refusals = [
        put("shoe_size", "standard", "number").await,
        put("shoe_size", "sensitive", "string").await,
        f.call(
            Method::DELETE,
            "/v1/schema/traits/shoe_size",
            Some(&operator),
            None,
        )
        .await,
    ];
    for refused in refusals {
        let refused = refused.expect(StatusCode::CONFLICT);
        assert_eq!(refused.code(), "trait_in_use");
        assert_eq!(refused.body["error"]["details"]["held_by"], 1);
        assert_eq!(refused.body["error"]["details"]["field"], "name");
        assert!(
            refused.body["error"]["details"]["reason"]
                .as_str()
                .unwrap()
                .contains("remove the values first")
        );
    }
    assert_eq!(f.vault().settings(ACME).unwrap(), settings);
    assert_eq!(head(&f, ACME), before);

    // Any type takes every value, so it is allowed while held.
    put("shoe_size", "sensitive", "any")
        .await
        .expect(StatusCode::OK);

    // Once no one holds a value, the trait can be loosened and removed.
    f.call(
        Method::PATCH,
        &format!("/v1/subjects/{subject}"),
        Some(&operator),
        Some(json!({"traits": {"shoe_size": null}})),
    )
    .await
    .expect(StatusCode::OK);
    put("shoe_size", "standard", "number")
        .await
        .expect(StatusCode::OK);
    let removed = f
        .call(
            Method::DELETE,
            "/v1/schema/traits/shoe_size",
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(removed.body["change"], "removed");
    assert!(removed.body["trait"].is_null());
    assert!(
        !f.vault()
            .settings(ACME)
            .unwrap()
            .schema
            .contains_key("shoe_size")
    );
    let again = f
        .call(
            Method::DELETE,
            "/v1/schema/traits/shoe_size",
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(again.code(), "unknown_trait");

    // Bad names and bodies.
    let bad = put("Shoe-Size", "standard", "number")
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.code(), "invalid_trait_name");
    let bad = put("shoe_size", "secret", "number")
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.code(), "invalid_body");

    // Each change is audited with the trait and what changed.
    let changes: Vec<String> = audit(&f, ACME)
        .into_iter()
        .filter(|e| e["action"] == "schema.trait")
        .inspect(|e| assert_eq!(e["fields"], json!(["shoe_size"])))
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        changes,
        [
            "added: standard number",
            "changed: standard number -> sensitive number",
            "changed: sensitive number -> sensitive any",
            "changed: sensitive any -> standard number",
            "removed: standard number",
        ]
    );
    // Another tenant's schema is its own.
    assert!(
        !f.vault()
            .settings(GLOBEX)
            .unwrap()
            .schema
            .contains_key("shoe_size")
    );
}

/// A runtime sized for tests.
fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        concurrent_calls: 8,
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// A fixture whose server has a plugin runtime.
fn with_runtime() -> Fixture {
    let mut f = Fixture::new();
    let registry = Registry::new(runtime(), f.state.vault.clone(), false);
    f.state = f.state.clone().with_plugins(registry);
    f.app = app(f.state.clone());
    f
}

/// Runs plugin work on a thread of its own: plugin calls block (WASI's
/// synchronous bindings refuse to run on an async runtime's thread), so the
/// server makes them on its blocking pool.
fn blocking<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(work).join().expect("no panic"))
}

/// Installs a segment plugin as the server installs its own (built in).
fn install(f: &Fixture, tenant: &str, bytes: &[u8]) -> Plugin {
    let registry = f.state.plugins.as_ref().expect("a runtime");
    blocking(|| registry.install_builtin(tenant, bytes, Kind::Segment, 0))
        .unwrap_or_else(|e| panic!("install: {e}"))
        .plugin
}

fn spend(values: &[f64]) -> ProfileBatch {
    ProfileBatch {
        rows: values.len() as u32,
        keys: (0..values.len() as u64).collect(),
        fields: vec![Column {
            data: ColumnData::Number(values.to_vec()),
            present: Vec::new(),
        }],
        aggregates: Vec::new(),
        now: 1_780_000_000_000,
    }
}

#[tokio::test]
async fn plugins_show_their_status_and_real_counters() {
    let f = with_runtime();
    let threshold = install(&f, ACME, tessera_guests::plugins::THRESHOLD);
    let analyst = f.token(ACME, Role::Analyst).to_owned();
    let list = f
        .call(Method::GET, "/v1/plugins", Some(&analyst), None)
        .await
        .expect(StatusCode::OK);
    let plugins = list.body["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 1);
    let listed = &plugins[0];
    assert_eq!(listed["name"], "threshold");
    assert_eq!(listed["kind"], "segment");
    assert_eq!(listed["installation"], "builtin-threshold");
    assert_eq!(listed["signature"], "built_in");
    assert_eq!(listed["status"], "active");
    assert_eq!(listed["wit_version"], "0.1.0");
    assert_eq!(listed["limits"]["fuel_base"], Limits::default().fuel_base);
    assert_eq!(
        listed["limits"]["memory_bytes"],
        Limits::default().memory_bytes
    );
    assert_eq!(listed["grants"]["state_quota_bytes"], 0);
    assert_eq!(listed["usage"]["traps"], 0);
    let calls = listed["usage"]["calls"].as_u64().unwrap();
    let fuel = listed["usage"]["fuel"].as_u64().unwrap();

    // A call through the runtime shows in the counters.
    let params = [FieldValue {
        name: "threshold".into(),
        value: Cell::Number(500.0),
    }];
    blocking(|| threshold.evaluate(&params, &spend(&[100.0, 900.0]))).expect("the call");
    let status = f
        .call(
            Method::GET,
            "/v1/plugins/threshold",
            Some(f.token(ACME, Role::Marketer)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(status.body["usage"]["calls"], calls + 1);
    assert!(status.body["usage"]["fuel"].as_u64().unwrap() > fuel);

    // A plugin that traps until it is quarantined.
    let panic = std::fs::read(tessera_guests::test_programs::PANIC).unwrap();
    let hostile = install(&f, ACME, &panic);
    for _ in 0..3 {
        assert!(blocking(|| hostile.evaluate(&[], &spend(&[1.0]))).is_err());
    }
    let status = f
        .call(Method::GET, "/v1/plugins/panic", Some(&analyst), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(status.body["status"], "quarantined");
    assert_eq!(status.body["usage"]["traps"], 3);
    let names: Vec<Value> = f
        .call(Method::GET, "/v1/plugins", Some(&analyst), None)
        .await
        .expect(StatusCode::OK)
        .body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("panic"), json!("threshold")]);

    // One name per tenant; tenants are apart.
    let registry = f.state.plugins.as_ref().unwrap();
    let taken = blocking(|| {
        registry.install_builtin(ACME, tessera_guests::plugins::THRESHOLD, Kind::Segment, 0)
    })
    .unwrap_err();
    assert!(matches!(taken, RegistryError::Taken { .. }), "{taken}");
    let theirs = f.token(GLOBEX, Role::Operator).to_owned();
    let empty = f
        .call(Method::GET, "/v1/plugins", Some(&theirs), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(empty.body["plugins"], json!([]));
    let unknown = f
        .call(Method::GET, "/v1/plugins/threshold", Some(&theirs), None)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "unknown_plugin");
    install(&f, GLOBEX, tessera_guests::plugins::THRESHOLD);

    // The metrics: every tenant's installations together, no tenant label.
    let metrics = f
        .call(Method::GET, "/metrics", None, None)
        .await
        .expect(StatusCode::OK);
    let text = metrics.body.as_str().unwrap();
    let calls_now = threshold.stats().calls
        + f.state
            .plugins
            .as_ref()
            .unwrap()
            .callable(GLOBEX, "threshold")
            .unwrap()
            .plugin
            .stats()
            .calls;
    for line in [
        format!("tessera_plugin_calls_total{{plugin=\"threshold\",version=\"0.1.0\"}} {calls_now}"),
        "tessera_plugin_traps_total{plugin=\"panic\",version=\"0.1.0\"} 3".to_owned(),
        "tessera_plugin_traps_total{plugin=\"threshold\",version=\"0.1.0\"} 0".to_owned(),
        "tessera_plugin_quarantined{plugin=\"panic\",version=\"0.1.0\"} 1".to_owned(),
        "tessera_plugin_quarantined{plugin=\"threshold\",version=\"0.1.0\"} 0".to_owned(),
        "# TYPE tessera_plugin_fuel_total counter".to_owned(),
    ] {
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    let fuel_line = text
        .lines()
        .find(|l| l.starts_with("tessera_plugin_fuel_total{plugin=\"threshold\""))
        .expect("fuel of threshold");
    let fuel: u64 = fuel_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(fuel >= threshold.stats().fuel);
    assert!(!text.contains(ACME) && !text.contains(GLOBEX));
}

#[tokio::test]
async fn without_a_runtime_there_are_no_plugins() {
    let f = Fixture::new();
    let list = f
        .call(
            Method::GET,
            "/v1/plugins",
            Some(f.token(ACME, Role::Operator)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(list.body, json!({"plugins": []}));
    f.call(
        Method::GET,
        "/v1/plugins/threshold",
        Some(f.token(ACME, Role::Operator)),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    let metrics = f.call(Method::GET, "/metrics", None, None).await;
    assert!(!metrics.body.as_str().unwrap().contains("tessera_plugin_"));
}

#[tokio::test]
async fn an_erased_person_is_gone_from_lookup_rectification_and_export() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let subject = person(
        &f,
        ACME,
        &[(IdentityKind::Email, "gone@example.com")],
        json!({"tier": "gold"}),
    );
    f.vault()
        .request_deletion(ACME, &subject, "test", &common::operator())
        .unwrap();
    for purged in [false, true] {
        if purged {
            f.vault().run_jobs("test").unwrap();
        }
        let lookup = f
            .call(
                Method::POST,
                "/v1/subjects/lookup",
                Some(&operator),
                Some(json!({"kind": "email", "value": "gone@example.com"})),
            )
            .await
            .expect(StatusCode::NOT_FOUND);
        assert_eq!(lookup.code(), "unknown_subject");
        let answers = [
            f.call(
                Method::PATCH,
                &format!("/v1/subjects/{subject}"),
                Some(&operator),
                Some(json!({"traits": {"tier": "silver"}})),
            )
            .await,
            f.call(
                Method::GET,
                &format!("/v1/subjects/{subject}/export?format=csv"),
                Some(&operator),
                None,
            )
            .await,
        ];
        for answer in answers {
            // Erased (keys destroyed) or, once purged, unknown: never a 500.
            assert!(
                matches!(
                    (answer.status, answer.code()),
                    (StatusCode::GONE, "subject_erased")
                        | (StatusCode::NOT_FOUND, "unknown_subject")
                ),
                "purged {purged}: {} {}",
                answer.status,
                answer.body
            );
        }
    }
}

#[tokio::test]
async fn event_types_are_added_changed_and_removed_and_classes_only_tighten_while_held() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let schema = f
        .call(
            Method::GET,
            "/v1/schema",
            Some(f.token(ACME, Role::Analyst)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let purchase = schema.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "purchase")
        .expect("the default purchase event")
        .clone();
    assert_eq!(
        purchase["properties"]["amount"],
        json!({"type": "number", "required": true, "class": "standard"})
    );
    assert_eq!(schema.body["events_strict"], false);

    let (fx, token) = (&f, &operator);
    let put = |name: &str, body: Value| {
        let uri = format!("/v1/schema/events/{name}");
        async move { fx.call(Method::PUT, &uri, Some(token), Some(body)).await }
    };
    let visit = json!({"properties": {
        "shop": {"type": "string", "allowed": ["north", "south"]},
        "latitude": {"type": "number", "class": "pii", "pii_class": "location"}
    }});
    let added = put("store_visit", visit.clone())
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(added.body["change"], "added");
    assert_eq!(added.body["event"]["type"], "store_visit");
    assert!(added.body["previous"].is_null());
    let same = put("store_visit", visit.clone())
        .await
        .expect(StatusCode::OK);
    assert_eq!(same.body["change"], "unchanged");

    // Refused: a bad name, a bad schema, an unknown field.
    let bad = put("StoreVisit", visit.clone())
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.code(), "invalid_event_type");
    let bad = put(
        "store_visit",
        json!({"properties": {"shop": {"type": "string", "allowed": [7]}}}),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.code(), "invalid_settings");
    let bad = put("store_visit", json!({"properties": {}, "stric": true}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.code(), "invalid_body");

    // Someone holds a visit now: the latitude may not become standard, nor
    // may the schema that classes it be removed.
    let item = Incoming {
        identities: vec![(IdentityKind::MemberId, "m-1".to_owned())],
        events: vec![tessera_vault::NewEvent {
            source_id: None,
            event_type: "store_visit".into(),
            at_ms: i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis(),
            )
            .unwrap(),
            channel: tessera_vault::Channel::Offline,
            properties: serde_json::from_value(json!({"shop": "north", "latitude": 31.2})).unwrap(),
        }],
        ..Incoming::default()
    };
    f.vault()
        .ingest(ACME, &item, &common::operator())
        .expect("a visit");
    let before = head(&f, ACME);
    let looser = put(
        "store_visit",
        json!({"properties": {"shop": {"type": "string"}, "latitude": {"type": "number"}}}),
    )
    .await
    .expect(StatusCode::CONFLICT);
    assert_eq!(looser.code(), "event_type_in_use");
    assert_eq!(looser.body["error"]["details"]["held_by"], 1);
    let removal = f
        .call(
            Method::DELETE,
            "/v1/schema/events/store_visit",
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(removal.code(), "event_type_in_use");
    assert_eq!(head(&f, ACME), before, "refusals change nothing");
    // Other changes are fine: a strict schema with the latitude kept pii.
    let stricter = put(
        "store_visit",
        json!({"strict": true, "properties": {
            "shop": {"type": "string"},
            "latitude": {"type": "number", "class": "pii", "pii_class": "location"}
        }}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(stricter.body["change"], "changed");
    assert_eq!(
        stricter.body["previous"]["properties"]["shop"]["allowed"],
        json!(["north", "south"])
    );

    // An event type whose schema classes nothing can be removed while held.
    f.call(
        Method::DELETE,
        "/v1/schema/events/page_view",
        Some(&operator),
        None,
    )
    .await
    .expect(StatusCode::OK);
    let again = f
        .call(
            Method::DELETE,
            "/v1/schema/events/page_view",
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(again.code(), "unknown_event_type");

    let changes: Vec<String> = audit(&f, ACME)
        .into_iter()
        .filter(|e| e["action"] == "schema.event")
        .map(|e| {
            format!(
                "{} {}",
                e["fields"][0].as_str().unwrap(),
                e["detail"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            "store_visit added: 2 properties (0 required, 1 pii or sensitive)",
            "store_visit changed: 2 properties (0 required, 1 pii or sensitive) -> 2 properties \
             (0 required, 1 pii or sensitive), strict",
            "page_view removed: 2 properties (0 required, 0 pii or sensitive)",
        ]
    );
    assert!(
        !f.vault()
            .settings(GLOBEX)
            .unwrap()
            .events
            .contains_key("store_visit")
    );
}

#[tokio::test]
async fn a_traits_allowed_values_only_grow_while_people_hold_a_value() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let (fx, token) = (&f, &operator);
    let put = |allowed: Value| {
        let body = json!({"class": "standard", "type": "string", "allowed": allowed});
        async move {
            fx.call(
                Method::PUT,
                "/v1/schema/traits/shoe_width",
                Some(token),
                Some(body),
            )
            .await
        }
    };
    let added = put(json!(["narrow", "regular"]))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(added.body["trait"]["allowed"], json!(["narrow", "regular"]));
    let bad = put(json!([7]))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.code(), "invalid_settings");
    person(
        &f,
        ACME,
        &[(IdentityKind::MemberId, "m-1")],
        json!({"shoe_width": "narrow"}),
    );
    let narrowed = put(json!(["regular", "wide"]))
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(narrowed.code(), "trait_in_use");
    put(json!(["narrow", "regular", "wide"]))
        .await
        .expect(StatusCode::OK);
    put(json!([])).await.expect(StatusCode::OK);
}

//! The subject's own API, `/v1/me`, with subject tokens: issued by the
//! portal or for a one-time code, short-lived, MAC'd, revocable; and a
//! subject who can never see or touch another subject.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{ACME, Answer, Fixture, GLOBEX};
use serde_json::{Value, json};
use tessera_api::{
    CodeSenderKind, Config, EXPORT_TABLES, REVOKED_SUBJECT_TOKEN_DOC, ROLE_MATRIX, Role,
    SubjectLoginConfig,
};
use tessera_vault::{
    Actor, Channel, ConsentChange, IdentityKind, Incoming, LinkedApp, NewEvent, SubjectView,
};

const MINUTE_MS: i64 = 60 * 1000;

fn operator() -> Actor {
    common::operator()
}

/// A person of `tenant` with an email, a member id, traits, an event and a
/// granted purpose; returns the subject id.
fn person(f: &Fixture, tenant: &str, email: &str, member: &str) -> String {
    let mut traits = BTreeMap::new();
    traits.insert("first_name".to_owned(), json!("Ana"));
    traits.insert("city".to_owned(), json!("Porto"));
    traits.insert("tier".to_owned(), json!("gold"));
    let item = Incoming {
        identities: vec![
            (IdentityKind::Email, email.to_owned()),
            (IdentityKind::MemberId, member.to_owned()),
        ],
        traits,
        events: vec![NewEvent {
            source_id: Some(format!("order-{member}")),
            event_type: "purchase".into(),
            at_ms: f.vault().now_ms() - 1000,
            channel: Channel::Offline,
            properties: BTreeMap::from([("amount".to_owned(), json!(42.5))]),
        }],
        consents: vec![ConsentChange {
            purpose: "email_marketing".into(),
            granted: true,
            method: "store_signup".into(),
            given_at_ms: None,
        }],
    };
    f.vault()
        .ingest(tenant, &item, &operator())
        .expect("ingest")
        .subject
        .expect("a subject")
}

fn link(f: &Fixture, tenant: &str, subject: &str, app: &str) {
    let linked = LinkedApp {
        app: app.into(),
        name: format!("App {app}"),
        scopes: vec!["purchases:read".into()],
        granted_at_ms: 0,
    };
    f.vault()
        .link_app(tenant, subject, &linked, &operator())
        .expect("link app");
}

async fn me(f: &Fixture, method: Method, uri: &str, token: &str, body: Option<Value>) -> Answer {
    f.call(method, uri, Some(token), body).await
}

fn audit(f: &Fixture, tenant: &str) -> Vec<tessera_vault::AuditEntry> {
    f.vault().audit_entries(tenant, 1, 100_000).expect("audit")
}

#[tokio::test]
async fn the_portal_issues_a_token_and_the_subject_sees_edits_exports_and_erases_their_data() {
    let f = Fixture::new();
    let ana = person(&f, ACME, "ana@example.com", "m-ana");
    link(&f, ACME, &ana, "fitness-sync");
    let portal = f.token(ACME, Role::Portal).to_owned();

    // The portal signs the person in by an identity (normalised as ingest
    // does) or by subject id; the token is shown once and never cached.
    let issued = f
        .call(
            Method::POST,
            "/v1/subject-tokens",
            Some(&portal),
            Some(json!({"identity": {"kind": "email", "value": " Ana@Example.com "}})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(issued.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(issued.body["subject"], ana.as_str());
    let token = issued.body["token"].as_str().unwrap().to_owned();
    assert!(
        token.starts_with(&format!("tst_{}_", hex::encode(ACME))),
        "{token}"
    );
    let ttl = issued.body["expires_at_ms"].as_i64().unwrap() - f.vault().now_ms();
    assert!((14 * MINUTE_MS..=15 * MINUTE_MS).contains(&ttl), "{ttl}");
    let by_id = f
        .call(
            Method::POST,
            "/v1/subject-tokens",
            Some(&portal),
            Some(json!({"subject": ana})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(by_id.body["subject"], ana.as_str());
    let issue = audit(&f, ACME)
        .into_iter()
        .find(|e| e.action == "subject_token.issue")
        .expect("issuance is audited");
    assert_eq!(issue.subject.as_deref(), Some(ana.as_str()));
    assert_eq!(issue.actor.role, "portal");

    // View: everything held, audited with the subject as actor.
    let view = me(&f, Method::GET, "/v1/me", &token, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(view.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(view.body["subject"], ana.as_str());
    assert_eq!(view.body["traits"]["city"][0], "Porto");
    assert_eq!(view.body["events"].as_array().unwrap().len(), 1);
    let access = audit(&f, ACME)
        .into_iter()
        .rfind(|e| e.action == "subject.access")
        .expect("the read is audited");
    assert_eq!(access.actor.role, "subject");
    assert!(access.actor.id.starts_with("subject-token:"));
    assert_eq!(access.subject.as_deref(), Some(ana.as_str()));

    // Edit: set and remove; unknown, tenant-kept and mistyped traits are
    // refused with the field named.
    let edited = me(
        &f,
        Method::PATCH,
        "/v1/me/traits",
        &token,
        Some(json!({"traits": {"city": "Lyon", "first_name": null}})),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        edited.body,
        json!({"set": ["city"], "removed": ["first_name"]})
    );
    let view = me(&f, Method::GET, "/v1/me", &token, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(view.body["traits"]["city"][0], "Lyon");
    assert!(view.body["traits"].get("first_name").is_none());
    for (traits, code, field) in [
        (
            json!({"shoe_size": 42}),
            "unknown_trait",
            "traits.shoe_size",
        ),
        (
            json!({"tier": "platinum"}),
            "trait_not_editable",
            "traits.tier",
        ),
        (json!({"city": 5}), "invalid_trait", "traits.city"),
    ] {
        let refused = me(
            &f,
            Method::PATCH,
            "/v1/me/traits",
            &token,
            Some(json!({ "traits": traits })),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused.code(), code);
        assert_eq!(refused.body["error"]["details"]["field"], field);
    }
    me(
        &f,
        Method::PATCH,
        "/v1/me/traits",
        &token,
        Some(json!({"traits": {}})),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);

    // Consents: grant, revoke, and the history says who and how.
    for granted in [true, false] {
        let set = me(
            &f,
            Method::PUT,
            "/v1/me/consents/analytics",
            &token,
            Some(json!({ "granted": granted })),
        )
        .await
        .expect(StatusCode::OK);
        assert_eq!(
            set.body,
            json!({"purpose": "analytics", "granted": granted, "method": "portal"})
        );
    }
    let consents = me(&f, Method::GET, "/v1/me/consents", &token, None)
        .await
        .expect(StatusCode::OK);
    let state = |purpose: &str| {
        consents.body["consents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["purpose"] == purpose)
            .cloned()
            .unwrap()
    };
    assert_eq!(state("analytics")["granted"], false);
    assert_eq!(state("email_marketing")["granted"], true);
    let history = consents.body["history"].as_array().unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!(history[1]["purpose"], "analytics");
    assert_eq!(history[1]["granted"], true);
    assert_eq!(history[1]["method"], "portal");
    assert_eq!(history[1]["actor"]["role"], "subject");
    assert_eq!(history[2]["granted"], false);
    let unknown = me(
        &f,
        Method::PUT,
        "/v1/me/consents/telepathy",
        &token,
        Some(json!({"granted": true})),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.code(), "unknown_purpose");

    // Linked apps: list and revoke; revoking what is not linked is 404.
    let apps = me(&f, Method::GET, "/v1/me/apps", &token, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(apps.body["apps"][0]["app"], "fitness-sync");
    me(&f, Method::DELETE, "/v1/me/apps/fitness-sync", &token, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let apps = me(&f, Method::GET, "/v1/me/apps", &token, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(apps.body["apps"], json!([]));
    let again = me(&f, Method::DELETE, "/v1/me/apps/fitness-sync", &token, None)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(again.code(), "unknown_app");

    // Retention: the default within bounds, a choice, a choice out of bounds.
    let retention = me(&f, Method::GET, "/v1/me/retention", &token, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        retention.body,
        json!({"days": 730, "chosen": null, "default_days": 730, "min_days": 30, "max_days": 1095})
    );
    let chosen = me(
        &f,
        Method::PUT,
        "/v1/me/retention",
        &token,
        Some(json!({"days": 90})),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(chosen.body["days"], 90);
    assert_eq!(chosen.body["chosen"], 90);
    for days in [5, 5000] {
        let out = me(
            &f,
            Method::PUT,
            "/v1/me/retention",
            &token,
            Some(json!({ "days": days })),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(out.code(), "retention_out_of_bounds");
        let details = &out.body["error"]["details"];
        assert_eq!(
            (
                &details["field"],
                &details["min_days"],
                &details["max_days"]
            ),
            (&json!("days"), &json!(30), &json!(1095))
        );
    }
    let retention = me(&f, Method::GET, "/v1/me/retention", &token, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(retention.body["days"], 90);

    // Export: JSON and each CSV table, as downloads.
    let json_export = me(&f, Method::GET, "/v1/me/export?format=json", &token, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        json_export.headers[header::CONTENT_TYPE],
        "application/json"
    );
    assert_eq!(
        json_export.headers[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"tessera-export-{ana}.json\"").as_str()
    );
    assert_eq!(json_export.body["subject"], ana.as_str());
    assert_eq!(json_export.body["traits"]["city"][0], "Lyon");
    let tables: Vec<String> = f
        .vault()
        .export_csv(ACME, &ana, &operator())
        .unwrap()
        .into_keys()
        .map(|name| name.trim_end_matches(".csv").to_owned())
        .collect();
    assert_eq!(
        tables, EXPORT_TABLES,
        "the documented tables are the vault's"
    );
    let csv = me(
        &f,
        Method::GET,
        "/v1/me/export?format=csv&table=traits",
        &token,
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(
        csv.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .ends_with("-traits.csv\"")
    );
    let text = csv.body.as_str().unwrap();
    assert!(text.starts_with("name,value,class"), "{text}");
    assert!(text.contains("city,Lyon,standard"), "{text}");
    for query in [
        "format=csv",
        "format=csv&table=secrets",
        "format=xml",
        "colour=red",
    ] {
        let bad = me(
            &f,
            Method::GET,
            &format!("/v1/me/export?{query}"),
            &token,
            None,
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
        assert_eq!(bad.code(), "invalid_query", "{query}");
    }
    let exports = audit(&f, ACME)
        .into_iter()
        .filter(|e| e.action == "subject.export" && e.actor.role == "subject")
        .count();
    assert_eq!(exports, 2);

    // Deletion: 202 with the request; then only its status is readable.
    let requested = me(&f, Method::POST, "/v1/me/deletion", &token, None)
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(requested.body["status"], "keys_destroyed");
    assert_eq!(requested.body["reason"], "subject_request");
    assert_eq!(requested.body["actor"]["role"], "subject");
    let id = requested.body["id"].as_str().unwrap().to_owned();
    let status = me(
        &f,
        Method::GET,
        &format!("/v1/me/deletions/{id}"),
        &token,
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(status.body["status"], "keys_destroyed");
    for (method, uri, body) in [
        (Method::GET, "/v1/me", None),
        (Method::GET, "/v1/me/consents", None),
        (Method::GET, "/v1/me/retention", None),
        (Method::GET, "/v1/me/export", None),
        (
            Method::PATCH,
            "/v1/me/traits",
            Some(json!({"traits": {"city": "Faro"}})),
        ),
        (Method::POST, "/v1/me/deletion", None),
    ] {
        let gone = me(&f, method, uri, &token, body).await;
        assert_eq!(
            (gone.status, gone.code()),
            (StatusCode::GONE, "subject_erased"),
            "{uri}"
        );
    }
    f.vault().run_jobs("test").unwrap();
    let done = me(
        &f,
        Method::GET,
        &format!("/v1/me/deletions/{id}"),
        &token,
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(done.body["status"], "completed");
    let receipt: tessera_vault::Receipt =
        serde_json::from_value(done.body["receipt"].clone()).unwrap();
    assert!(f.vault().verify_receipt(&receipt).unwrap());
    let gone = me(&f, Method::GET, "/v1/me", &token, None)
        .await
        .expect(StatusCode::GONE);
    assert_eq!(gone.code(), "subject_erased");
    // The erased person can no longer be signed in.
    let refused = f
        .call(
            Method::POST,
            "/v1/subject-tokens",
            Some(&portal),
            Some(json!({"subject": ana})),
        )
        .await;
    assert!(
        refused.status == StatusCode::GONE || refused.status == StatusCode::NOT_FOUND,
        "{}",
        refused.body
    );
    me(&f, Method::DELETE, "/v1/me/session", &token, None)
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn issuing_checks_who_is_asked_for() {
    let f = Fixture::new();
    let ana = person(&f, ACME, "ana@example.com", "m-ana");
    let portal = f.token(ACME, Role::Portal).to_owned();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let cases = [
        (
            json!({"identity": {"kind": "email", "value": "nobody@example.com"}}),
            StatusCode::NOT_FOUND,
            "unknown_subject",
        ),
        (
            json!({"subject": "00000000000000000000000000000000"}),
            StatusCode::NOT_FOUND,
            "unknown_subject",
        ),
        (
            json!({"subject": "../../etc"}),
            StatusCode::NOT_FOUND,
            "unknown_subject",
        ),
        (
            json!({"identity": {"kind": "device_id", "value": "d-1"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_identity",
        ),
        (
            json!({"identity": {"kind": "shoe", "value": "42"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_identity",
        ),
        (
            json!({"identity": {"kind": "email", "value": "not an address"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_identity",
        ),
        (
            json!({"subject": ana, "identity": {"kind": "email", "value": "ana@example.com"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            json!({"subject": ana, "ttl_s": 99999}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let answer = f
            .call(
                Method::POST,
                "/v1/subject-tokens",
                Some(&portal),
                Some(body.clone()),
            )
            .await;
        assert_eq!((answer.status, answer.code()), (status, code), "{body}");
    }
    // Operators may issue too; a member id works.
    f.call(
        Method::POST,
        "/v1/subject-tokens",
        Some(&operator),
        Some(json!({"identity": {"kind": "member_id", "value": "m-ana"}})),
    )
    .await
    .expect(StatusCode::CREATED);
    // Another tenant's portal finds nobody.
    f.call(
        Method::POST,
        "/v1/subject-tokens",
        Some(f.token(GLOBEX, Role::Portal)),
        Some(json!({ "subject": ana })),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    // A subject token is never an API token.
    let refused = f
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&operator),
            Some(json!({"role": "subject", "name": "sneaky"})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.code(), "invalid_body");
    assert_eq!(refused.body["error"]["details"]["field"], "role");
}

/// Changes the character at `index` to another one of the same alphabet.
fn flip(token: &str, index: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[index] = match bytes[index] {
        b'a' => b'b',
        b'0' => b'1',
        b'A' => b'B',
        _ => b'a',
    };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn subject_tokens_expire_resist_tampering_stay_in_their_tenant_and_end_at_logout() {
    let f = Fixture::with_clock(Config::default());
    let ana = person(&f, ACME, "ana@example.com", "m-ana");
    let gus = person(&f, GLOBEX, "gus@example.com", "m-gus");
    let token = f.subject_token(ACME, &ana);
    me(&f, Method::GET, "/v1/me", &token, None)
        .await
        .expect(StatusCode::OK);

    // One character changed anywhere (tenant, claims, tag) → 401.
    let tenant_end = "tst_".len() + 2 * ACME.len();
    let tag_start = token.rfind('_').unwrap() + 1;
    for index in [
        4,
        tenant_end + 3,
        (tenant_end + tag_start) / 2,
        tag_start - 2,
        tag_start,
        token.len() - 1,
    ] {
        let forged = flip(&token, index);
        assert_ne!(forged, token);
        let answer = me(&f, Method::GET, "/v1/me", &forged, None)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(answer.code(), "unauthorized", "{index}");
    }
    for bad in ["tst_", "tst_zz_abc_def", &token[..token.len() - 2]] {
        me(&f, Method::GET, "/v1/me", bad, None)
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }

    // Another tenant's subject token acts on its own person only, and
    // relabelled with this tenant it does not verify.
    let theirs = f.subject_token(GLOBEX, &gus);
    let view = me(&f, Method::GET, "/v1/me", &theirs, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (view.body["tenant"].as_str(), view.body["subject"].as_str()),
        (Some(GLOBEX), Some(gus.as_str()))
    );
    let relabelled = theirs.replacen(
        &format!("tst_{}_", hex::encode(GLOBEX)),
        &format!("tst_{}_", hex::encode(ACME)),
        1,
    );
    me(&f, Method::GET, "/v1/me", &relabelled, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    // Claims of one token with the tag of another do not verify either.
    let other = f.subject_token(ACME, &ana);
    let spliced = format!(
        "{}{}",
        &token[..tag_start],
        &other[other.rfind('_').unwrap() + 1..]
    );
    me(&f, Method::GET, "/v1/me", &spliced, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);

    // Expiry follows the vault's clock.
    f.advance(15 * MINUTE_MS - 1000);
    me(&f, Method::GET, "/v1/me/retention", &token, None)
        .await
        .expect(StatusCode::OK);
    f.advance(1000);
    let expired = me(&f, Method::GET, "/v1/me", &token, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(
        expired.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    // Logout ends a token at once; the entry is pruned after its expiry.
    let first = f.subject_token(ACME, &ana);
    me(&f, Method::DELETE, "/v1/me/session", &first, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let ended = me(&f, Method::GET, "/v1/me", &first, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(
        ended.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("logged out")
    );
    let revoked = || {
        f.vault()
            .store()
            .documents(ACME, REVOKED_SUBJECT_TOKEN_DOC, None, 100)
            .unwrap()
            .len()
    };
    assert_eq!(revoked(), 1);
    let second = f.subject_token(ACME, &ana);
    me(&f, Method::GET, "/v1/me", &second, None)
        .await
        .expect(StatusCode::OK);
    f.advance(16 * MINUTE_MS);
    let third = f.subject_token(ACME, &ana);
    me(&f, Method::DELETE, "/v1/me/session", &third, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        revoked(),
        1,
        "the expired entry is pruned, the new one kept"
    );
    let logout = audit(&f, ACME)
        .into_iter()
        .rfind(|e| e.action == "subject_token.revoke")
        .expect("audited");
    assert_eq!(logout.subject.as_deref(), Some(ana.as_str()));

    // A subject token reaches nothing but /v1/me.
    let fourth = f.subject_token(ACME, &ana);
    for (method, uri) in [
        (Method::GET, "/v1/tokens".to_owned()),
        (Method::GET, format!("/v1/subjects/{ana}")),
        (Method::GET, "/v1/audit".to_owned()),
        (Method::POST, "/v1/subject-tokens".to_owned()),
    ] {
        let answer = me(&f, method, &uri, &fourth, Some(json!({"subject": ana}))).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{uri}"
        );
    }
}

/// The `/v1/me` route `rule_path` with `ids` put in for its parameters.
fn uri_of(rule_path: &str, deletion: &str, app: &str) -> String {
    rule_path
        .replace(
            "/v1/me/deletions/{id}",
            &format!("/v1/me/deletions/{deletion}"),
        )
        .replace("/v1/me/apps/{id}", &format!("/v1/me/apps/{app}"))
        .replace("{purpose}", "analytics")
        .replace("/v1/deletions/{id}", &format!("/v1/deletions/{deletion}"))
        .replace("{id}", "0123456789abcdef")
}

/// What of a person must not change: everything in the access view but the
/// log of who read it.
fn held(f: &Fixture, subject: &str) -> SubjectView {
    let mut view = f
        .vault()
        .access(ACME, subject, &operator())
        .expect("access");
    view.access_log.clear();
    view
}

#[tokio::test]
async fn subject_a_cannot_read_export_edit_or_delete_subject_b_by_any_route_or_id() {
    let f = Fixture::new();
    let a = person(&f, ACME, "a@example.com", "m-a");
    let b = person(&f, ACME, "b@example.com", "m-b");
    link(&f, ACME, &b, "b-only-app");
    f.vault()
        .set_retention(ACME, &b, 365, &operator())
        .expect("retention");
    // B's deletion request: B had an earlier account, erased on request.
    let b_old = person(&f, ACME, "b.old@example.com", "m-b-old");
    let b_deletion = f
        .vault()
        .request_deletion(ACME, &b_old, "subject_request", &operator())
        .expect("erase")
        .id;
    let b_before = held(&f, &b);
    let b_deletion_before = f.vault().deletion_request(ACME, &b_deletion).unwrap();
    let token = f.subject_token(ACME, &a);

    // A's token rewritten to name B keeps A's tag, which no longer verifies.
    {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = format!("tst_{}_", hex::encode(ACME));
        let (claims, tag) = token[head.len()..].rsplit_once('_').unwrap();
        let text = String::from_utf8(engine.decode(claims).unwrap()).unwrap();
        assert!(text.contains(&a), "{text}");
        let forged = format!(
            "{head}{}_{tag}",
            engine.encode(text.replace(&a, &b).as_bytes())
        );
        me(&f, Method::GET, "/v1/me", &forged, None)
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }

    let body_for = |path: &str| match path {
        "/v1/me/traits" => Some(json!({"traits": {"city": "Braga"}})),
        "/v1/me/consents/{purpose}" => Some(json!({"granted": true})),
        "/v1/me/retention" => Some(json!({"days": 60})),
        "/v1/subject-tokens" => Some(json!({ "subject": b })),
        "/v1/tokens" => Some(json!({"role": "operator", "name": "x"})),
        _ if path.starts_with("/v1/me") => None,
        _ => Some(json!({"type": "track", "userId": "m-b", "event": "Hijack"})),
    };
    // Every route, with B's ids wherever a route takes one; logout and
    // erasure last, as they end A's access.
    let mut rules: Vec<_> = ROLE_MATRIX.iter().collect();
    rules.sort_by_key(|r| matches!(r.path, "/v1/me/session" | "/v1/me/deletion"));
    for rule in rules {
        let method = Method::from_bytes(rule.method.as_bytes()).unwrap();
        let uri = uri_of(rule.path, &b_deletion, "b-only-app").replace(
            "/v1/subjects/0123456789abcdef",
            &format!("/v1/subjects/{b}"),
        );
        let answer = me(&f, method, &uri, &token, body_for(rule.path)).await;
        let what = format!("{} {uri}: {} {}", rule.method, answer.status, answer.body);
        if rule.roles.contains(&Role::Subject) {
            if rule.path.contains('{') && rule.path != "/v1/me/consents/{purpose}" {
                assert_eq!(answer.status, StatusCode::NOT_FOUND, "{what}");
            } else {
                assert!(answer.status.is_success(), "{what}");
                // Whatever it answers is A's, never B's.
                assert!(!answer.body.to_string().contains(&b), "{what}");
            }
        } else {
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}");
        }
    }
    // Guessed ids, and a subject named in the query or body, reach nothing.
    let token = f.subject_token(ACME, &person(&f, ACME, "c@example.com", "m-c"));
    let view = me(
        &f,
        Method::GET,
        &format!("/v1/me?subject={b}"),
        &token,
        None,
    )
    .await
    .expect(StatusCode::OK);
    assert_ne!(view.body["subject"], b.as_str());
    for (method, uri, body) in [
        (
            Method::PATCH,
            "/v1/me/traits".to_owned(),
            json!({"subject": b, "traits": {"city": "Braga"}}),
        ),
        (
            Method::PUT,
            "/v1/me/consents/analytics".to_owned(),
            json!({"subject": b, "granted": true}),
        ),
        (
            Method::PUT,
            "/v1/me/retention".to_owned(),
            json!({"subject": b, "days": 60}),
        ),
    ] {
        let answer = me(&f, method, &uri, &token, Some(body)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            "{uri}"
        );
    }
    for id in [
        "00000000000000000000000000000000".to_owned(),
        b.clone(),
        format!("{b_deletion}x"),
        "..%2F..".to_owned(),
    ] {
        me(
            &f,
            Method::GET,
            &format!("/v1/me/deletions/{id}"),
            &token,
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    }
    me(
        &f,
        Method::GET,
        &format!("/v1/me/export?format=json&subject={b}"),
        &token,
        None,
    )
    .await
    .expect(StatusCode::BAD_REQUEST);

    // B is exactly as before, and nothing was done to B by A's tokens.
    assert_eq!(held(&f, &b), b_before);
    assert_eq!(
        f.vault().deletion_request(ACME, &b_deletion).unwrap(),
        b_deletion_before
    );
    for entry in audit(&f, ACME) {
        if entry.subject.as_deref() == Some(b.as_str()) {
            assert_ne!(entry.actor.role, "subject", "{entry:?}");
        }
    }
}

// ---- login with a one-time code -------------------------------------------

fn code_config(file: &Path) -> Config {
    Config {
        subject_login: SubjectLoginConfig {
            sender: CodeSenderKind::File,
            file: Some(file.to_owned()),
            requests_per_second: 1000,
            burst: 1000,
        },
        ..Config::default()
    }
}

fn sent(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Waits until the sender has written `n` codes; returns the last.
async fn nth_code(file: &Path, n: usize) -> Value {
    for _ in 0..400 {
        let lines = sent(file);
        if lines.len() >= n {
            return lines[n - 1].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no code number {n} in {}", file.display());
}

async fn ask(f: &Fixture, body: Value) -> Answer {
    f.call(Method::POST, "/v1/login/code", None, Some(body))
        .await
}

async fn trade(f: &Fixture, email: &str, code: &str) -> Answer {
    f.call(
        Method::POST,
        "/v1/login/token",
        None,
        Some(json!({"tenant": ACME, "email": email, "code": code})),
    )
    .await
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[tokio::test]
async fn a_code_sent_to_a_known_address_buys_a_subject_token_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("codes.jsonl");
    let f = Fixture::with_clock(code_config(&file));
    let ana = person(&f, ACME, "ana@example.com", "m-ana");

    // Known, unknown, unknown tenant: one answer.
    let known = ask(&f, json!({"tenant": ACME, "email": "Ana@Example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let unknown = ask(&f, json!({"tenant": ACME, "email": "nobody@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let nowhere = ask(&f, json!({"tenant": "nowhere", "email": "ana@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(known.body, unknown.body);
    assert_eq!(known.body, nowhere.body);
    assert_eq!(known.headers[header::CACHE_CONTROL], "no-store");
    let line = nth_code(&file, 1).await;
    records(&f, ACME, 2).await;
    assert_eq!(
        sent(&file).len(),
        1,
        "nothing is sent to an unknown address"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "codes are readable by their owner only"
        );
    }
    assert_eq!(line["tenant"], ACME);
    assert_eq!(line["channel"], "email");
    assert_eq!(line["to"], "ana@example.com");
    assert!(line["at_ms"].is_i64());
    let code = line["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 6);
    // Stored only as keyed hashes.
    let stored = f
        .vault()
        .store()
        .documents(ACME, tessera_api::LOGIN_CODE_DOC, None, 10)
        .unwrap();
    assert_eq!(stored.len(), 2, "a record for every address asked for");
    for (id, bytes) in &stored {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(&code) && !id.contains("ana"), "{text}");
    }

    // A wrong code, then the right one: a token for the person, once.
    let refused = trade(&f, "ana@example.com", &wrong(&code))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(refused.code(), "invalid_code");
    let issued = trade(&f, "ana@example.com", &code)
        .await
        .expect(StatusCode::OK);
    assert_eq!(issued.body["subject"], ana.as_str());
    assert_eq!(issued.headers[header::CACHE_CONTROL], "no-store");
    let token = issued.body["token"].as_str().unwrap().to_owned();
    let view = me(&f, Method::GET, "/v1/me", &token, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(view.body["subject"], ana.as_str());
    let used = trade(&f, "ana@example.com", &code)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(used.body, refused.body, "one answer for every failure");

    // Expired after ten minutes by the vault's clock.
    ask(&f, json!({"tenant": ACME, "email": "ana@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let code = nth_code(&file, 2).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    f.advance(10 * MINUTE_MS);
    let expired = trade(&f, "ana@example.com", &code)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(expired.body, refused.body);

    // Five tries per code; after them the right code no longer works.
    ask(&f, json!({"tenant": ACME, "email": "ana@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let code = nth_code(&file, 3).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..tessera_api::MAX_ATTEMPTS {
        trade(&f, "ana@example.com", &wrong(&code))
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    let exhausted = trade(&f, "ana@example.com", &code)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(exhausted.body, refused.body);

    // A new code replaces the old one.
    ask(&f, json!({"tenant": ACME, "email": "ana@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let old = nth_code(&file, 4).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    ask(&f, json!({"tenant": ACME, "email": "ana@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let new = nth_code(&file, 5).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    if old != new {
        trade(&f, "ana@example.com", &old)
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    trade(&f, "ana@example.com", &new)
        .await
        .expect(StatusCode::OK);

    // Five codes a day per address: the sixth is not sent, the next day is.
    let before = audit(&f, ACME).len();
    ask(&f, json!({"tenant": ACME, "email": "ana@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sent(&file).len(), 5);
    assert_eq!(audit(&f, ACME).len(), before, "not even looked up");
    f.advance(24 * 60 * MINUTE_MS);
    ask(&f, json!({"tenant": ACME, "email": "ana@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    nth_code(&file, 6).await;

    // An unknown address never gets a token, whatever the code.
    for code in ["000000", "123456", "999999"] {
        let answer = trade(&f, "nobody@example.com", code)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(answer.body, refused.body);
    }
    let answer = f
        .call(
            Method::POST,
            "/v1/login/token",
            None,
            Some(json!({"tenant": "nowhere", "email": "ana@example.com", "code": "123456"})),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body, refused.body);
}

#[tokio::test]
async fn a_code_goes_to_a_phone_too_and_malformed_requests_are_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("codes.jsonl");
    let f = Fixture::with_config(code_config(&file));
    let item = Incoming {
        identities: vec![(IdentityKind::Phone, "+33 6 12 34 56 78".into())],
        ..Incoming::default()
    };
    let subject = f
        .vault()
        .ingest(ACME, &item, &operator())
        .unwrap()
        .subject
        .unwrap();
    ask(&f, json!({"tenant": ACME, "phone": "+33612345678"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let line = nth_code(&file, 1).await;
    assert_eq!(
        (&line["channel"], &line["to"]),
        (&json!("phone"), &json!("+33612345678"))
    );
    let issued = f
        .call(
            Method::POST,
            "/v1/login/token",
            None,
            Some(json!({"tenant": ACME, "phone": "+33 6 12 34 56 78", "code": line["code"]})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(issued.body["subject"], subject.as_str());

    for (body, status, code) in [
        (
            json!({"tenant": ACME, "email": "a@example.com", "phone": "+33612345678"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"tenant": ACME}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"tenant": ACME, "email": "not an address"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_identity",
        ),
        (
            json!({"tenant": ACME, "email": "a@example.com", "subject": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ] {
        let answer = ask(&f, body.clone()).await;
        assert_eq!((answer.status, answer.code()), (status, code), "{body}");
    }
}

#[tokio::test]
async fn code_login_is_off_unless_a_sender_is_configured_and_is_rate_limited() {
    let f = Fixture::new();
    person(&f, ACME, "ana@example.com", "m-ana");
    let off = ask(&f, json!({"tenant": ACME, "email": "ana@example.com"}))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(off.code(), "code_login_disabled");
    let off = trade(&f, "ana@example.com", "123456")
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(off.code(), "code_login_disabled");

    let dir = tempfile::tempdir().unwrap();
    let mut config = code_config(&dir.path().join("codes.jsonl"));
    config.subject_login.requests_per_second = 1;
    config.subject_login.burst = 2;
    let f = Fixture::with_config(config);
    for _ in 0..2 {
        ask(&f, json!({"tenant": ACME, "email": "x@example.com"}))
            .await
            .expect(StatusCode::ACCEPTED);
    }
    let limited = trade(&f, "x@example.com", "123456")
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    // Another tenant has its own budget.
    ask(&f, json!({"tenant": GLOBEX, "email": "x@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn the_login_routes_need_no_token_and_ignore_one() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::with_config(code_config(&dir.path().join("codes.jsonl")));
    let request = Request::post("/v1/login/code")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer nonsense")
        .body(Body::from(
            json!({"tenant": ACME, "email": "x@example.com"}).to_string(),
        ))
        .unwrap();
    f.send(request).await.expect(StatusCode::ACCEPTED);
}

#[test]
fn subject_settings_are_checked_and_unknown_keys_refused_by_name() {
    assert_eq!(Config::default().check(), Ok(()));
    let refused = |change: &dyn Fn(&mut Config), name: &str| {
        let mut config = Config::default();
        change(&mut config);
        let reason = config.check().expect_err(name);
        assert!(reason.contains(name), "{reason}");
    };
    refused(&|c| c.subject_tokens.ttl_s = 10, "subject_tokens.ttl_s");
    refused(&|c| c.subject_tokens.ttl_s = 86_400, "subject_tokens.ttl_s");
    refused(
        &|c| c.subject_login.sender = CodeSenderKind::File,
        "subject_login.file",
    );
    refused(
        &|c| c.subject_login.requests_per_second = 0,
        "subject_login.requests_per_second",
    );
    refused(&|c| c.subject_login.burst = 0, "subject_login.burst");
    for bad in [
        json!({"subject_login": {"sender": "smtp"}}),
        json!({"subject_login": {"senders": "file"}}),
        json!({"subject_tokens": {"ttl": 60}}),
    ] {
        assert!(
            serde_json::from_value::<Config>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    let file: Config =
        serde_json::from_value(json!({"subject_login": {"sender": "file", "file": "codes.jsonl"}}))
            .unwrap();
    assert_eq!(file.check(), Ok(()));
}

#[tokio::test]
async fn a_token_follows_its_person_through_a_merge() {
    let f = Fixture::with_clock(Config::default());
    let web = person(&f, ACME, "rui@example.com", "m-rui-web");
    // Created later, so the web record is the older one.
    f.advance(1);
    let shop = f.subject(ACME, "m-rui-shop");
    let token = f.subject_token(ACME, &shop);
    // The shop's member id and the web email turn out to be one person;
    // the older record (web) absorbs the shop's.
    let join = Incoming {
        identities: vec![
            (IdentityKind::MemberId, "m-rui-shop".into()),
            (IdentityKind::Email, "rui@example.com".into()),
        ],
        ..Incoming::default()
    };
    f.vault().ingest(ACME, &join, &operator()).unwrap();
    let view = me(&f, Method::GET, "/v1/me", &token, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(view.body["subject"], web.as_str());
    assert_eq!(view.body["merged_subjects"], json!([shop]));
    let erased = me(&f, Method::POST, "/v1/me/deletion", &token, None)
        .await
        .expect(StatusCode::ACCEPTED);
    let id = erased.body["id"].as_str().unwrap();
    assert_eq!(erased.body["subjects"], json!([web, shop]));
    me(
        &f,
        Method::GET,
        &format!("/v1/me/deletions/{id}"),
        &token,
        None,
    )
    .await
    .expect(StatusCode::OK);
}

// ---- review findings: limits, enumeration, echoes, traces ------------------

#[tokio::test]
async fn a_person_over_their_own_limit_gets_429_while_the_tenant_and_other_people_go_on() {
    let mut config = Config::default();
    config.subject_tokens.requests_per_second = 1;
    config.subject_tokens.burst = 3;
    let f = Fixture::with_config(config);
    let ana = person(&f, ACME, "ana@example.com", "m-ana");
    let bea = person(&f, ACME, "bea@example.com", "m-bea");
    let (ana_token, bea_token) = (f.subject_token(ACME, &ana), f.subject_token(ACME, &bea));
    for _ in 0..3 {
        me(&f, Method::GET, "/v1/me", &ana_token, None)
            .await
            .expect(StatusCode::OK);
    }
    let limited = me(&f, Method::GET, "/v1/me", &ana_token, None)
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    let retry: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // The tenant's operators and ingest, and other people, are not starved.
    f.call(
        Method::GET,
        "/v1/tokens",
        Some(f.token(ACME, Role::Operator)),
        None,
    )
    .await
    .expect(StatusCode::OK);
    f.call(
        Method::POST,
        "/v1/track",
        Some(f.token(ACME, Role::Ingest)),
        Some(json!({"userId": "u-1", "event": "Signed Up"})),
    )
    .await
    .expect(StatusCode::OK);
    me(&f, Method::GET, "/v1/me", &bea_token, None)
        .await
        .expect(StatusCode::OK);
    // A new token for the same person does not reset their budget.
    let again = f.subject_token(ACME, &ana);
    me(&f, Method::GET, "/v1/me", &again, None)
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn the_subject_token_limit_is_checked() {
    let refused = |change: &dyn Fn(&mut Config), name: &str| {
        let mut config = Config::default();
        change(&mut config);
        let reason = config.check().expect_err(name);
        assert!(reason.contains(name), "{reason}");
    };
    refused(
        &|c| c.subject_tokens.requests_per_second = 0,
        "subject_tokens.requests_per_second",
    );
    refused(&|c| c.subject_tokens.burst = 0, "subject_tokens.burst");
    let set: Config = serde_json::from_value(
        json!({"subject_tokens": {"ttl_s": 600, "requests_per_second": 3, "burst": 6}}),
    )
    .unwrap();
    assert_eq!(set.check(), Ok(()));
    assert_eq!(
        (
            set.subject_tokens.requests_per_second,
            set.subject_tokens.burst
        ),
        (3, 6)
    );
}

/// Status and body of a login call, without the request id.
async fn login_answer(
    f: &Fixture,
    route: &str,
    body: Value,
) -> (StatusCode, Value, Option<String>) {
    let answer = f.call(Method::POST, route, None, Some(body)).await;
    let retry = answer
        .headers
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    (answer.status, answer.body, retry)
}

#[tokio::test]
async fn the_login_routes_answer_alike_for_a_known_and_an_unknown_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::with_config(code_config(&dir.path().join("codes.jsonl")));
    person(&f, ACME, "ana@example.com", "m-ana");
    let inputs = [
        json!({"email": "not an address"}),
        json!({"email": "ana@"}),
        json!({"phone": "12"}),
        json!({"phone": "+33 6 12 34 56 78 x9"}),
        json!({"email": "ana@example.com"}),
        json!({"email": "nobody@example.com"}),
        json!({"phone": "+33612345678"}),
        // Valid only where a tenant sets a default country code.
        json!({"phone": "06 12 34 56 78"}),
        json!({"email": "a@example.com", "phone": "+33612345678"}),
    ];
    for input in inputs {
        for route in ["/v1/login/code", "/v1/login/token"] {
            let mut answers = Vec::new();
            for tenant in [ACME, "nowhere", ""] {
                let mut body = input.clone();
                body["tenant"] = json!(tenant);
                if route == "/v1/login/token" {
                    body["code"] = json!("123456");
                }
                answers.push(login_answer(&f, route, body).await);
            }
            assert_eq!(answers[0], answers[1], "{route} {input}");
            assert_eq!(answers[0], answers[2], "{route} {input}");
        }
    }

    // Under the login limit: the same answers too, per name asked for.
    let mut config = code_config(&dir.path().join("limited.jsonl"));
    config.subject_login.requests_per_second = 1;
    config.subject_login.burst = 3;
    let f = Fixture::with_config(config);
    person(&f, ACME, "ana@example.com", "m-ana");
    let mut per_tenant = Vec::new();
    for tenant in [ACME, "nowhere"] {
        let mut answers = Vec::new();
        for body in [
            json!({"tenant": tenant, "email": "ana@example.com"}),
            json!({"tenant": tenant, "email": "not an address"}),
            json!({"tenant": tenant, "email": "nobody@example.com"}),
            json!({"tenant": tenant, "email": "ana@example.com"}),
            json!({"tenant": tenant, "email": "not an address"}),
        ] {
            answers.push(login_answer(&f, "/v1/login/code", body).await);
        }
        let statuses: Vec<StatusCode> = answers.iter().map(|a| a.0).collect();
        assert_eq!(
            statuses,
            [
                StatusCode::ACCEPTED,
                StatusCode::UNPROCESSABLE_ENTITY,
                StatusCode::ACCEPTED,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::TOO_MANY_REQUESTS,
            ],
            "{tenant}"
        );
        per_tenant.push(answers);
    }
    assert_eq!(per_tenant[0], per_tenant[1]);
}

#[tokio::test]
async fn bodies_of_the_wrong_shape_are_refused_without_repeating_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::with_config(code_config(&dir.path().join("codes.jsonl")));
    let ana = person(&f, ACME, "ana@example.com", "m-ana");
    let token = f.subject_token(ACME, &ana);
    let portal = f.token(ACME, Role::Portal).to_owned();
    let cases: [(&str, Method, Option<&str>, Value, &str); 7] = [
        (
            "/v1/login/code",
            Method::POST,
            None,
            json!({"tenant": ACME, "phone": 33_612_345_678_u64}),
            "33612345678",
        ),
        (
            "/v1/login/token",
            Method::POST,
            None,
            json!({"tenant": ACME, "phone": 33_612_345_679_u64, "code": "123456"}),
            "33612345679",
        ),
        (
            "/v1/login/code",
            Method::POST,
            None,
            json!({"tenant": ACME, "email": "ana@example.com", "ana.secret@example.com": 1}),
            "secret",
        ),
        (
            "/v1/subject-tokens",
            Method::POST,
            Some(&portal),
            json!({"identity": {"kind": "phone", "value": 33_612_345_677_u64}}),
            "33612345677",
        ),
        (
            "/v1/subject-tokens",
            Method::POST,
            Some(&portal),
            json!({"identity": {"kind": "member_id", "value": 904_411_337}}),
            "904411337",
        ),
        (
            "/v1/me/traits",
            Method::PATCH,
            Some(&token),
            json!({"traits": 612_345_670}),
            "612345670",
        ),
        (
            "/v1/me/retention",
            Method::PUT,
            Some(&token),
            json!({"days": "612345671"}),
            "612345671",
        ),
    ];
    for (route, method, auth, body, secret) in cases {
        let answer = f.call(method, route, auth, Some(body.clone())).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            "{route} {body}"
        );
        let text = answer.body.to_string();
        assert!(!text.contains(secret), "{route} echoes {secret}: {text}");
        assert!(answer.body["error"]["details"]["field"] == "body", "{text}");
    }
}

/// Waits until the login has stored records for `n` addresses of `tenant`
/// (it does so for every address asked for, known or not).
async fn records(f: &Fixture, tenant: &str, n: usize) {
    for _ in 0..400 {
        let stored = f
            .vault()
            .store()
            .documents(tenant, tessera_api::LOGIN_CODE_DOC, None, 1000)
            .unwrap()
            .len();
        if stored >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} login records");
}

#[tokio::test]
async fn only_codes_sent_to_known_people_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("codes.jsonl");
    let f = Fixture::with_config(code_config(&file));
    let ana = person(&f, ACME, "ana@example.com", "m-ana");
    let before = audit(&f, ACME).len();
    for n in 0..20 {
        ask(
            &f,
            json!({"tenant": ACME, "email": format!("nobody-{n}@example.com")}),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    }
    ask(&f, json!({"tenant": ACME, "phone": "+33612345678"}))
        .await
        .expect(StatusCode::ACCEPTED);
    records(&f, ACME, 21).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        audit(&f, ACME).len(),
        before,
        "unknown addresses leave no entry"
    );

    ask(&f, json!({"tenant": ACME, "email": "ana@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    nth_code(&file, 1).await;
    let added: Vec<_> = audit(&f, ACME).into_iter().skip(before).collect();
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0].action, "subject.login_code");
    assert_eq!(added[0].actor.id, "subject-login");
    assert_eq!(added[0].subject.as_deref(), Some(ana.as_str()));
    let text = format!("{:?}", added[0]);
    assert!(!text.contains("ana@"), "{text}");
}

#[tokio::test]
async fn a_code_used_up_by_wrong_guesses_is_audited_for_a_known_person() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("codes.jsonl");
    let f = Fixture::with_config(code_config(&file));
    let ana = person(&f, ACME, "ana@example.com", "m-ana");
    ask(&f, json!({"tenant": ACME, "email": "ana@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let code = nth_code(&file, 1).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    ask(&f, json!({"tenant": ACME, "email": "nobody@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    records(&f, ACME, 2).await;
    let failed = |f: &Fixture| {
        audit(f, ACME)
            .into_iter()
            .filter(|e| e.action == "subject.login_failed")
            .collect::<Vec<_>>()
    };

    // An unknown address's code used up: no entry (a warning in the log).
    let guess = wrong(&code);
    for _ in 0..tessera_api::MAX_ATTEMPTS + 1 {
        trade(&f, "nobody@example.com", &guess)
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    // Tries short of the last one: no entry either.
    for _ in 1..tessera_api::MAX_ATTEMPTS {
        trade(&f, "ana@example.com", &guess)
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(failed(&f).is_empty());
    let last = trade(&f, "ana@example.com", &guess)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(last.code(), "invalid_code");
    let mut entries = Vec::new();
    for _ in 0..400 {
        entries = failed(&f);
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].subject.as_deref(), Some(ana.as_str()));
    assert_eq!(entries[0].actor.id, "subject-login");
    let text = format!("{:?}", entries[0]);
    assert!(
        !text.contains(&code) && !text.contains(&guess) && !text.contains("ana@"),
        "{text}"
    );
    // Further tries of the used-up code add nothing.
    trade(&f, "ana@example.com", &code)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(failed(&f).len(), 1);
}

#[tokio::test]
async fn a_wrong_guess_is_durable_before_its_401() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("codes.jsonl");
    let (f, store) = Fixture::watching(code_config(&file), tessera_api::LOGIN_CODE_DOC);
    person(&f, ACME, "ana@example.com", "m-ana");
    ask(&f, json!({"tenant": ACME, "email": "ana@example.com"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let code = nth_code(&file, 1).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!store.unflushed());
    trade(&f, "ana@example.com", &wrong(&code))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(
        !store.unflushed(),
        "the try a wrong guess used must survive a crash"
    );
}

#[tokio::test]
async fn a_logout_holds_even_when_the_audit_trail_refuses_its_entry() {
    let f = Fixture::new();
    let ana = person(&f, ACME, "ana@example.com", "m-ana");
    let token = f.subject_token(ACME, &ana);
    // Damage the newest audit entry: audited changes are refused.
    let store = f.vault().store();
    let head = store.audit_head(ACME).unwrap();
    store.append_audit(ACME, head + 1, b"damaged").unwrap();
    me(&f, Method::DELETE, "/v1/me/session", &token, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(matches!(
        f.state.subject_tokens.verify(&token),
        Ok(Err(tessera_api::SubjectRejected::Revoked))
    ));
    me(&f, Method::GET, "/v1/me/apps", &token, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

//! A write key (the `ingest` role) may sit in a web page, so anyone can
//! send any identity with it. What it says still resolves records, but it
//! can never make someone able to sign in as another person, nor join two
//! people the tenant knows.

mod common;

use std::path::Path;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{ACME, Fixture, operator};
use serde_json::{Value, json};
use tessera_api::{CodeSenderKind, Config, Role, SubjectLoginConfig};
use tessera_vault::{IdentityKind, Incoming};

fn sent(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// A person the tenant's own systems know by `email`.
fn known(f: &Fixture, email: &str) -> String {
    let item = Incoming {
        identities: vec![(IdentityKind::Email, email.to_owned())],
        ..Incoming::default()
    };
    f.vault()
        .ingest(ACME, &item, &operator())
        .expect("ingest")
        .subject
        .expect("a subject")
}

#[tokio::test]
async fn a_write_key_cannot_route_a_persons_login_code_or_portal_token_to_an_attacker() {
    let dir = tempfile::tempdir().unwrap();
    let codes = dir.path().join("codes.jsonl");
    let f = Fixture::with_config(Config {
        subject_login: SubjectLoginConfig {
            sender: CodeSenderKind::File,
            file: Some(codes.clone()),
            requests_per_second: 1000,
            burst: 1000,
        },
        ..Config::default()
    });
    let victim = known(&f, "victim@example.com");
    let bystander = known(&f, "bystander@example.com");
    let write_key = f.token(ACME, Role::Ingest).to_owned();

    // The attacker claims the victim's address together with their phone.
    let claim = json!({"anonymousId": "attacker-device", "messageId": "claim-1",
                       "traits": {"email": "victim@example.com", "phone": "+33 6 12 34 56 78"}});
    f.call(Method::POST, "/v1/identify", Some(&write_key), Some(claim))
        .await
        .expect(StatusCode::OK);
    // The operator sees the phone on the victim (it resolves records) ...
    let found = f
        .call(
            Method::POST,
            "/v1/subjects/lookup",
            Some(f.token(ACME, Role::Operator)),
            Some(json!({"kind": "phone", "value": "+33 6 12 34 56 78"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(found.body["subject"], victim.as_str());

    // ... but no code goes to it, and no portal token comes from it.
    f.call(
        Method::POST,
        "/v1/login/code",
        None,
        Some(json!({"tenant": ACME, "phone": "+33 6 12 34 56 78"})),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    // A code for a trusted address, asked afterwards, arrives; the
    // attacker's request had all that time and sent nothing.
    f.call(
        Method::POST,
        "/v1/login/code",
        None,
        Some(json!({"tenant": ACME, "email": "bystander@example.com"})),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    let mut lines = Vec::new();
    for _ in 0..400 {
        lines = sent(&codes);
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines_after = sent(&codes);
    assert_eq!(lines_after.len(), 1, "{lines_after:?}");
    assert_eq!(lines[0]["to"], "bystander@example.com", "{lines:?}");
    let exchange = f
        .call(
            Method::POST,
            "/v1/login/token",
            None,
            Some(json!({"tenant": ACME, "phone": "+33 6 12 34 56 78", "code": "000000"})),
        )
        .await;
    assert_eq!(
        exchange.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        exchange.body
    );
    let portal = f
        .call(
            Method::POST,
            "/v1/subject-tokens",
            Some(f.token(ACME, Role::Portal)),
            Some(json!({"identity": {"kind": "phone", "value": "+33 6 12 34 56 78"}})),
        )
        .await;
    assert_eq!(portal.status, StatusCode::NOT_FOUND, "{}", portal.body);
    // Nor by the victim's own address, now that an untrusted source linked
    // an identity to them (docs/privacy.md); a person no untrusted source
    // touched still gets one.
    let own = f
        .call(
            Method::POST,
            "/v1/subject-tokens",
            Some(f.token(ACME, Role::Portal)),
            Some(json!({"identity": {"kind": "email", "value": "victim@example.com"}})),
        )
        .await;
    assert_eq!(own.status, StatusCode::NOT_FOUND, "{}", own.body);
    let bystanders = f
        .call(
            Method::POST,
            "/v1/subject-tokens",
            Some(f.token(ACME, Role::Portal)),
            Some(json!({"identity": {"kind": "email", "value": "bystander@example.com"}})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(bystanders.body["subject"], bystander.as_str());
    assert_ne!(victim, bystander);
}

#[tokio::test]
async fn a_write_key_cannot_join_two_known_people_and_a_server_token_can() {
    let f = Fixture::with_clock(Config::default());
    let ann = known(&f, "ann@example.com");
    // Created later: Ann's record is the older and survives a merge.
    f.advance(1);
    let bo = known(&f, "bo@example.com");
    let write_key = f.token(ACME, Role::Ingest).to_owned();
    // Bo also has a member id; a message with Bo's member id and Ann's
    // email names both people.
    f.call(
        Method::POST,
        "/v1/identify",
        Some(f.token(ACME, Role::Operator)),
        Some(json!({"userId": "bo-member", "messageId": "link-bo",
                    "traits": {"email": "bo@example.com"}})),
    )
    .await
    .expect(StatusCode::OK);
    let join = json!({"userId": "bo-member", "messageId": "join-1",
                      "traits": {"email": "ann@example.com"}});
    let batch = f
        .call(
            Method::POST,
            "/v1/batch",
            Some(&write_key),
            Some(json!({"batch": [
                {"type": "identify", "userId": "bo-member", "messageId": "join-1",
                 "traits": {"email": "ann@example.com"}},
                {"type": "track", "userId": "bo-member", "event": "Still Stored",
                 "messageId": "other-1"}
            ]})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(batch.body["accepted"], 1, "{}", batch.body);
    assert_eq!(batch.body["errors"][0]["index"], 0, "{}", batch.body);
    assert_eq!(
        batch.body["errors"][0]["code"], "untrusted_merge",
        "{}",
        batch.body
    );
    let single = f
        .call(
            Method::POST,
            "/v1/identify",
            Some(&write_key),
            Some(join.clone()),
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(single.code(), "untrusted_merge");
    for person in [&ann, &bo] {
        let view = f.vault().access(ACME, person, &operator()).expect("view");
        assert!(view.merged_subjects.is_empty(), "{view:?}");
    }

    // The tenant's own server, with a marketer token, may say they are one.
    let joined = f
        .call(
            Method::POST,
            "/v1/identify",
            Some(f.token(ACME, Role::Marketer)),
            Some(json!({"userId": "bo-member", "messageId": "join-2",
                        "traits": {"email": "ann@example.com"}})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(joined.body["accepted"], 1, "{}", joined.body);
    let view = f.vault().access(ACME, &ann, &operator()).expect("view");
    assert_eq!(view.merged_subjects, vec![bo.clone()], "{view:?}");
}

#[tokio::test]
async fn an_operator_confirms_an_identity_a_write_key_linked_and_the_person_signs_in_again() {
    let f = Fixture::new();
    let person = known(&f, "lin@example.com");
    let portal = |value: &'static str| json!({"identity": {"kind": "email", "value": value}});
    f.call(
        Method::POST,
        "/v1/subject-tokens",
        Some(f.token(ACME, Role::Portal)),
        Some(portal("lin@example.com")),
    )
    .await
    .expect(StatusCode::CREATED);
    // On the web site, Lin adds a second address: the page sends it with
    // the write key, which marks it untrusted and locks Lin's sign-in.
    let web = json!({"anonymousId": "lin-browser", "messageId": "web-1",
                     "traits": {"email": "lin@example.com", "phone": "+44 20 7946 0958"}});
    f.call(
        Method::POST,
        "/v1/identify",
        Some(f.token(ACME, Role::Ingest)),
        Some(web),
    )
    .await
    .expect(StatusCode::OK);
    let locked = f
        .call(
            Method::POST,
            "/v1/subject-tokens",
            Some(f.token(ACME, Role::Portal)),
            Some(portal("lin@example.com")),
        )
        .await;
    assert_eq!(locked.status, StatusCode::NOT_FOUND, "{}", locked.body);

    let operator_token = f.token(ACME, Role::Operator).to_owned();
    let confirm = |subject: &str, value: &str| {
        (
            format!("/v1/subjects/{subject}/identities/confirm"),
            json!({"kind": "phone", "value": value}),
        )
    };
    // An identity that is not this person's is refused, naming no value.
    let other = known(&f, "someone@example.com");
    let (uri, body) = confirm(&other, "+44 20 7946 0958");
    let refused = f
        .call(Method::POST, &uri, Some(&operator_token), Some(body))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(refused.code(), "identity_not_linked");
    assert!(
        !refused.body.to_string().contains("7946"),
        "{}",
        refused.body
    );

    // The operator, having checked with Lin, confirms the phone.
    let (uri, body) = confirm(&person, "+44 20 7946 0958");
    let confirmed = f
        .call(Method::POST, &uri, Some(&operator_token), Some(body))
        .await
        .expect(StatusCode::OK);
    assert_eq!(confirmed.body["was_untrusted"], true);
    let issued = f
        .call(
            Method::POST,
            "/v1/subject-tokens",
            Some(f.token(ACME, Role::Portal)),
            Some(portal("lin@example.com")),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(issued.body["subject"], person.as_str());
    let audit = f.vault().audit_entries(ACME, 1, 1_000).expect("audit");
    let entry = audit
        .iter()
        .find(|e| e.action == "identity.confirm")
        .expect("audited");
    assert_eq!(entry.subject.as_deref(), Some(person.as_str()));
    assert_eq!(entry.detail.as_deref(), Some("phone"));
}

//! Handler tests through `app(state)` and `oneshot`: health, tokens,
//! subjects, deletions, audit, the error shape and the rate limit.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{ACME, Fixture, GLOBEX};
use serde_json::json;
use tessera_api::{Config, RateLimit, Role, TOKEN_DOC};

#[tokio::test]
async fn health_readiness_and_metrics_need_no_token() {
    let f = Fixture::new();
    let health = f
        .call(Method::GET, "/healthz", None, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    assert!(health.headers.contains_key("x-request-id"));
    let ready = f
        .call(Method::GET, "/readyz", None, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");
    f.call(Method::GET, "/v1/tokens", None, None).await;
    let metrics = f
        .call(Method::GET, "/metrics", None, None)
        .await
        .expect(StatusCode::OK);
    let text = metrics.body.as_str().expect("text");
    assert!(
        text.contains(
            r#"tessera_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"tessera_http_requests_total{method="GET",route="/v1/tokens",status="401"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"tessera_http_request_duration_seconds_count{route="/readyz"} 1"#));
    assert!(text.contains(r#"tessera_ingest_events_total{outcome="inserted"} 0"#));
}

#[tokio::test]
async fn a_request_id_from_the_caller_is_kept_and_a_bad_one_replaced() {
    let f = Fixture::new();
    let request = |id: &str| {
        Request::get("/healthz")
            .header("x-request-id", id)
            .body(Body::empty())
            .unwrap()
    };
    let kept = f.send(request("abc-123")).await;
    assert_eq!(kept.headers["x-request-id"], "abc-123");
    let replaced = f.send(request("no spaces allowed")).await;
    assert_ne!(replaced.headers["x-request-id"], "no spaces allowed");
}

#[tokio::test]
async fn tokens_are_shown_once_stored_as_hashes_listed_and_revoked() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let created = f
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&operator),
            Some(json!({"role": "analyst", "name": "dashboards"})),
        )
        .await
        .expect(StatusCode::CREATED);
    let token = created.body["token"].as_str().expect("token").to_owned();
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert!(token.starts_with(&format!("tsk_{}_{id}_", hex::encode(ACME))));
    assert_eq!(created.body["role"], "analyst");

    // Stored: the hash, never the token or its secret.
    let stored = f
        .vault()
        .store()
        .document(ACME, TOKEN_DOC, &id)
        .unwrap()
        .expect("stored");
    let stored = String::from_utf8(stored).unwrap();
    let secret = token.rsplit('_').next().unwrap();
    assert!(!stored.contains(secret), "{stored}");
    assert!(stored.contains("\"hash\""));

    // Listed without secrets or hashes.
    let list = f
        .call(Method::GET, "/v1/tokens", Some(&operator), None)
        .await
        .expect(StatusCode::OK);
    let listed = list.body["tokens"].as_array().unwrap();
    assert_eq!(listed.len(), Role::ALL.len() + 1);
    let text = list.body.to_string();
    assert!(!text.contains(secret) && !text.contains("hash"), "{text}");

    // The new token works for what its role allows.
    f.call(Method::GET, "/v1/audit", Some(&token), None)
        .await
        .expect(StatusCode::OK);

    // Revoked: refused at once, though it was just cached.
    let revoked = f
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(revoked.body["revoked"], true);
    let refused = f
        .call(Method::GET, "/v1/audit", Some(&token), None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(refused.code(), "unauthorized");
    assert_eq!(
        refused.body["error"]["message"],
        "the token has been revoked"
    );

    // Both actions are in the audit trail, without the secret.
    let audit = f
        .call(Method::GET, "/v1/audit?limit=1000", Some(&operator), None)
        .await
        .expect(StatusCode::OK);
    let actions: Vec<&str> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"token.create") && actions.contains(&"token.revoke"));
    assert!(!audit.body.to_string().contains(secret));

    // A revoked token stays listed as revoked; revoking again changes nothing.
    f.call(
        Method::DELETE,
        &format!("/v1/tokens/{id}"),
        Some(&operator),
        None,
    )
    .await
    .expect(StatusCode::OK);
    let unknown = f
        .call(
            Method::DELETE,
            "/v1/tokens/0000000000000000",
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "unknown_token");
    let odd = f
        .call(Method::DELETE, "/v1/tokens/..%2F..", Some(&operator), None)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(odd.code(), "unknown_token");
}

#[tokio::test]
async fn a_token_with_a_wrong_secret_or_from_nowhere_is_refused() {
    let f = Fixture::new();
    let good = f.token(ACME, Role::Operator);
    // Same tenant and id, another secret.
    let (head, _) = good.rsplit_once('_').unwrap();
    let forged = format!("{head}_{}", "0".repeat(64));
    for token in [forged.as_str(), "tsk_zz", "hello", ""] {
        let answer = f
            .call(Method::GET, "/v1/tokens", Some(token), None)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(answer.code(), "unauthorized");
        assert!(answer.headers.contains_key(header::WWW_AUTHENTICATE));
    }
    // A token naming a tenant that does not exist.
    let nowhere = format!(
        "tsk_{}_{}_{}",
        hex::encode("nowhere"),
        "a".repeat(16),
        "b".repeat(64)
    );
    f.call(Method::GET, "/v1/tokens", Some(&nowhere), None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    // No credentials; an unknown scheme.
    f.call(Method::GET, "/v1/tokens", None, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let digest = Request::get("/v1/tokens")
        .header(header::AUTHORIZATION, "Digest abc")
        .body(Body::empty())
        .unwrap();
    assert_eq!(f.send(digest).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_creation_checks_its_body() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator);
    let cases = [
        (
            json!({"role": "king", "name": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"role": "analyst"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"role": "analyst", "name": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"role": "analyst", "name": "x", "tenant": "globex"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!("role"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let answer = f
            .call(
                Method::POST,
                "/v1/tokens",
                Some(operator),
                Some(body.clone()),
            )
            .await;
        assert_eq!((answer.status, answer.code()), (status, code), "{body}");
    }
}

#[tokio::test]
async fn an_operator_reads_and_erases_a_subject_and_follows_the_deletion() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let subject = f.subject(ACME, "m-1");
    let view = f
        .call(
            Method::GET,
            &format!("/v1/subjects/{subject}"),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(view.body["subject"], subject.as_str());
    assert_eq!(view.body["tenant"], ACME);
    assert_eq!(view.body["identities"][0], json!(["member_id", "m-1"]));

    let deletion = f
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{subject}?reason=subject_request"),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(deletion.body["status"], "keys_destroyed");
    assert_eq!(deletion.body["reason"], "subject_request");
    assert_eq!(deletion.body["actor"]["role"], "operator");
    let id = deletion.body["id"].as_str().unwrap().to_owned();

    let status = f
        .call(
            Method::GET,
            &format!("/v1/deletions/{id}"),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(status.body["status"], "keys_destroyed");
    assert!(status.body["receipt"].is_null());
    f.vault().run_jobs("test").unwrap();
    let done = f
        .call(
            Method::GET,
            &format!("/v1/deletions/{id}"),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(done.body["status"], "completed");
    assert_eq!(done.body["receipt"]["request"], id.as_str());

    let gone = f
        .call(
            Method::GET,
            &format!("/v1/subjects/{subject}"),
            Some(&operator),
            None,
        )
        .await;
    assert!(
        gone.status == StatusCode::NOT_FOUND || gone.status == StatusCode::GONE,
        "{}",
        gone.body
    );

    let unknown = f
        .call(
            Method::GET,
            "/v1/subjects/00000000000000000000000000000000",
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "unknown_subject");
    let odd = f
        .call(
            Method::GET,
            &format!("/v1/subjects/{}", "x".repeat(500)),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(odd.code(), "unknown_subject");
    let bad_reason = f
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{subject}?reason=Because!"),
            Some(&operator),
            None,
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(bad_reason.code(), "invalid_query");
    let unknown = f
        .call(Method::GET, "/v1/deletions/ffff", Some(&operator), None)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "unknown_deletion_request");
}

#[tokio::test]
async fn the_audit_trail_pages_and_records_who_read_a_subject() {
    let f = Fixture::new();
    let operator = f.token(ACME, Role::Operator).to_owned();
    let analyst = f.token(ACME, Role::Analyst).to_owned();
    let subject = f.subject(ACME, "m-2");
    f.call(
        Method::GET,
        &format!("/v1/subjects/{subject}"),
        Some(&operator),
        None,
    )
    .await
    .expect(StatusCode::OK);
    let first = f
        .call(
            Method::GET,
            "/v1/audit?from=1&limit=2",
            Some(&analyst),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(first.body["entries"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["next"], 3);
    let all = f
        .call(Method::GET, "/v1/audit?limit=1000", Some(&analyst), None)
        .await
        .expect(StatusCode::OK);
    assert!(all.body["next"].is_null());
    let access = all.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "subject.access")
        .expect("the read is audited");
    assert_eq!(access["subject"], subject.as_str());
    assert_eq!(access["actor"]["role"], "operator");
    assert!(
        access["actor"]["id"]
            .as_str()
            .unwrap()
            .starts_with("token:")
    );
    for query in ["limit=0", "limit=5000", "from=-1", "limit=x", "colour=red"] {
        let answer = f
            .call(
                Method::GET,
                &format!("/v1/audit?{query}"),
                Some(&analyst),
                None,
            )
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert_eq!(answer.code(), "invalid_query", "{query}");
    }
}

#[tokio::test]
async fn a_token_reaches_only_its_own_tenant() {
    let f = Fixture::new();
    let subject = f.subject(ACME, "m-3");
    let theirs = f.token(GLOBEX, Role::Operator);
    let answer = f
        .call(
            Method::GET,
            &format!("/v1/subjects/{subject}"),
            Some(theirs),
            None,
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "unknown_subject");
    // The tenant comes from the token: a tenant in the query changes nothing.
    let answer = f
        .call(
            Method::GET,
            &format!("/v1/subjects/{subject}?tenant=acme"),
            Some(theirs),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let tokens = f
        .call(Method::GET, "/v1/tokens", Some(theirs), None)
        .await
        .expect(StatusCode::OK);
    let ours: Vec<String> = f
        .state
        .tokens
        .list(ACME)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    for token in tokens.body["tokens"].as_array().unwrap() {
        assert!(!ours.contains(&token["id"].as_str().unwrap().to_owned()));
    }
    let acme_token = &ours[0];
    f.call(
        Method::DELETE,
        &format!("/v1/tokens/{acme_token}"),
        Some(theirs),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    assert!(
        f.state
            .tokens
            .list(ACME)
            .unwrap()
            .iter()
            .all(|t| !t.revoked)
    );
}

#[tokio::test]
async fn every_error_has_one_shape() {
    let f = Fixture::new();
    let ingest = f.token(ACME, Role::Ingest).to_owned();
    let post = |uri: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut request =
            Request::post(uri).header(header::AUTHORIZATION, format!("Bearer {ingest}"));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.body(Body::from(body)).unwrap()
    };
    let cases = [
        (
            post("/v1/batch", Some("application/json"), b"{not json".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            post(
                "/v1/batch",
                Some("application/json"),
                b"{\"batch\": 3}".to_vec(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            post("/v1/batch", None, b"{\"batch\": []}".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post("/v1/batch", Some("application/xml"), b"<batch/>".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post(
                "/v1/batch",
                Some("application/json"),
                vec![b' '; 600 * 1024],
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            post(
                "/v1/track",
                Some("application/json"),
                b"{\"event\": 5}".to_vec(),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
        ),
        (
            post("/v1/track", Some("application/json"), b"[".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            post("/v1/nowhere", Some("application/json"), b"{}".to_vec()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            post("/healthz", None, Vec::new()),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let uri = request.uri().clone();
        let answer = f.send(request).await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{uri}: {}",
            answer.body
        );
    }
    let operator = f.token(ACME, Role::Operator);
    let answer = f
        .call(Method::PUT, "/v1/tokens", Some(operator), Some(json!({})))
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.code(), "method_not_allowed");
    let answer = f
        .call(Method::GET, "/v1", None, None)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "not_found");
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after() {
    let f = Fixture::with_config(Config {
        rate_limit: RateLimit {
            requests_per_second: 1,
            burst: 2,
        },
        ..Config::default()
    });
    let analyst = f.token(ACME, Role::Analyst).to_owned();
    for _ in 0..2 {
        f.call(Method::GET, "/v1/audit", Some(&analyst), None)
            .await
            .expect(StatusCode::OK);
    }
    let limited = f
        .call(Method::GET, "/v1/audit", Some(&analyst), None)
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(limited.headers[header::RETRY_AFTER], "1");
    // Another tenant is not held back; health is never limited.
    f.call(
        Method::GET,
        "/v1/audit",
        Some(f.token(GLOBEX, Role::Analyst)),
        None,
    )
    .await
    .expect(StatusCode::OK);
    f.call(Method::GET, "/healthz", None, None)
        .await
        .expect(StatusCode::OK);
}

//! The console, `/console/`, through the same HTTP requests its page
//! makes: signing in with an API token for a session cookie that holds no
//! API token, the cookie's flags, the refusal of cross-site requests and
//! of requests without the CSRF token, sessions that end with their API
//! token, at sign-out and at expiry, and the two session cookies (portal
//! and console) kept apart.

mod common;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use common::{ACME, Answer, Fixture};
use serde_json::{Value, json};
use tessera_api::{CONTENT_SECURITY_POLICY, Config, Role, TlsConfig, csrf_token};

const HOST: &str = "console.test:8080";
const ORIGIN: &str = "http://console.test:8080";
const EIGHT_HOURS_MS: i64 = 8 * 60 * 60 * 1000;

/// A browser on the console's page: it sends what the page's scripts send
/// (same origin, the session cookie, the CSRF token on changes).
struct Browser<'a> {
    f: &'a Fixture,
    cookie: Option<String>,
    csrf: Option<String>,
    https: bool,
}

impl<'a> Browser<'a> {
    fn new(f: &'a Fixture) -> Self {
        Self {
            f,
            cookie: None,
            csrf: None,
            https: false,
        }
    }

    fn request(&self, method: Method, uri: &str, body: Option<Value>) -> Request<Body> {
        let safe = method == Method::GET || method == Method::HEAD;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, HOST)
            .header("sec-fetch-site", "same-origin");
        if self.https {
            request = request.header("x-forwarded-proto", "https");
        }
        if !safe {
            request = request.header(header::ORIGIN, ORIGIN);
            if let Some(csrf) = &self.csrf {
                request = request.header("x-csrf-token", csrf);
            }
        }
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request")
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.f.send(self.request(method, uri, body)).await
    }

    /// Signs in with `token` as the page does; returns the answer.
    async fn sign_in(&mut self, token: &str) -> Answer {
        let answer = self
            .call(
                Method::POST,
                "/console/api/session",
                Some(json!({ "token": token })),
            )
            .await
            .expect(StatusCode::OK);
        let set = cookie_of(&answer);
        self.cookie = Some(set.split(';').next().expect("name=value").to_owned());
        self.csrf = Some(answer.body["csrf_token"].as_str().expect("csrf").to_owned());
        answer
    }
}

/// The one `Set-Cookie` of an answer.
fn cookie_of(answer: &Answer) -> String {
    let cookies: Vec<&HeaderValue> = answer.headers.get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(cookies.len(), 1, "{:?}", answer.headers);
    cookies[0].to_str().expect("ascii").to_owned()
}

fn assert_secured(answer: &Answer, what: &str) {
    let h = &answer.headers;
    assert_eq!(
        h.get("content-security-policy")
            .map(|v| v.to_str().unwrap()),
        Some(CONTENT_SECURITY_POLICY),
        "{what}: {h:?}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
}

/// A new API token of ACME with `role`, made through the token store.
fn new_token(f: &Fixture, role: Role) -> (String, String) {
    let made = f
        .state
        .tokens
        .create(ACME, role, "console test", &common::operator())
        .expect("create a token");
    (made.token, made.info.id)
}

fn actions_of(f: &Fixture) -> Vec<(String, String, Option<String>)> {
    f.vault()
        .audit_entries(ACME, 1, 10_000)
        .expect("audit")
        .into_iter()
        .map(|e| (e.action, e.actor.id, e.detail))
        .collect()
}

#[tokio::test]
async fn the_page_carries_the_csp_and_names_only_files_of_this_server() {
    let f = Fixture::new();
    let browser = Browser::new(&f);
    let moved = browser.call(Method::GET, "/console", None).await;
    assert_eq!(moved.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(moved.headers[header::LOCATION], "/console/");

    let page = browser
        .call(Method::GET, "/console/", None)
        .await
        .expect(StatusCode::OK);
    assert_secured(&page, "the page");
    let html = page.body.as_str().expect("html").to_owned();
    assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
    assert!(!html.contains("<script>") && !html.contains(" style="));
    // The token field is never remembered by the browser.
    assert!(
        html.contains(r#"id="token" name="token" type="password" autocomplete="off""#),
        "{html}"
    );
    let mut request = browser.request(Method::GET, "/console/", None);
    request.headers_mut().insert(
        header::ACCEPT_LANGUAGE,
        HeaderValue::from_static("zh-CN,zh;q=0.9"),
    );
    let zh = f.send(request).await.expect(StatusCode::OK);
    assert!(zh.body.as_str().unwrap().contains("<html lang=\"zh-CN\">"));

    let mut files = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in html.split(attribute).skip(1) {
            let target = piece.split('"').next().unwrap();
            if target.starts_with('#') {
                continue;
            }
            assert!(target.starts_with('/'), "{target} is not this server's");
            files.push(target.to_owned());
        }
    }
    files.extend(
        [
            "/ui/console/strings.js",
            "/ui/console/operator.js",
            "/ui/console/marketer.js",
            "/ui/shared/api.js",
        ]
        .map(String::from),
    );
    assert!(files.iter().any(|f| f == "/ui/console/app.js"), "{files:?}");
    for file in &files {
        let answer = browser
            .call(Method::GET, file, None)
            .await
            .expect(StatusCode::OK);
        assert_secured(&answer, file);
        let body = answer.body.as_str().expect("text");
        // Every module the console imports is one of these files.
        for line in body.lines().filter(|l| l.starts_with("import ")) {
            let target = line.split('\'').nth(1).expect("a module path");
            assert!(target.starts_with("/ui/"), "{file} imports {target}");
            browser
                .call(Method::GET, target, None)
                .await
                .expect(StatusCode::OK);
        }
    }
}

#[tokio::test]
async fn operators_marketers_and_analysts_sign_in_and_act_as_their_token() {
    let f = Fixture::new();
    for role in [Role::Operator, Role::Marketer, Role::Analyst] {
        let (token, id) = new_token(&f, role);
        let mut browser = Browser::new(&f);
        let signed = browser.sign_in(&token).await;
        assert_secured(&signed, "sign-in");
        assert_eq!(signed.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(signed.body["tenant"], ACME);
        assert_eq!(signed.body["role"], role.as_str());
        assert_eq!(signed.body["token_id"], id.as_str());
        // Neither the page nor the cookie holds the API token.
        assert!(!signed.body.to_string().contains(&token));
        let cookie = browser.cookie.clone().expect("a cookie");
        assert!(cookie.starts_with("tessera_console=tcs_"), "{cookie}");
        assert!(
            !cookie.contains(&token) && !cookie.contains("tsk_"),
            "{cookie}"
        );
        let session = browser
            .call(Method::GET, "/console/api/session", None)
            .await
            .expect(StatusCode::OK);
        assert_eq!(session.body, signed.body);

        // The cookie admits what the token's role may call, and no more.
        let tenant = browser.call(Method::GET, "/v1/tenant", None).await;
        assert_eq!(tenant.status, StatusCode::OK, "{role}: {}", tenant.body);
        let tokens = browser.call(Method::GET, "/v1/tokens", None).await;
        if role == Role::Operator {
            assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
        } else {
            assert_eq!(tokens.status, StatusCode::FORBIDDEN, "{role}");
            assert_eq!(tokens.code(), "forbidden");
        }
    }

    // What an operator does through the console, the audit trail names
    // the API token for: sign-in, the change, sign-out.
    let (token, id) = new_token(&f, Role::Operator);
    let mut browser = Browser::new(&f);
    browser.sign_in(&token).await;
    let made = browser
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"role": "ingest", "name": "from the console"})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(made.body["created_by"], format!("token:{id}"));
    browser
        .call(Method::DELETE, "/console/api/session", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let actor = format!("token:{id}");
    let mine: Vec<String> = actions_of(&f)
        .into_iter()
        .filter(|(_, who, _)| *who == actor)
        .map(|(action, _, _)| action)
        .collect();
    assert_eq!(
        mine,
        ["console.sign_in", "token.create", "console.sign_out"],
        "{mine:?}"
    );
}

#[tokio::test]
async fn ingest_and_portal_tokens_and_bad_tokens_are_refused_with_the_reason() {
    let f = Fixture::new();
    let browser = Browser::new(&f);
    for role in [Role::Ingest, Role::Portal] {
        let answer = browser
            .call(
                Method::POST,
                "/console/api/session",
                Some(json!({ "token": f.token(ACME, role) })),
            )
            .await
            .expect(StatusCode::FORBIDDEN);
        assert_eq!(answer.code(), "console_role_refused");
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(role.as_str()) && message.contains("operator, marketer and analyst"),
            "{message}"
        );
        assert!(answer.headers.get(header::SET_COOKIE).is_none());
    }
    let (revoked, id) = new_token(&f, Role::Operator);
    f.state
        .tokens
        .revoke(ACME, &id, &common::operator())
        .expect("revoke");
    let subject = f.subject(ACME, "m-console");
    let subject_token = f.subject_token(ACME, &subject);
    for (token, says) in [
        (revoked.as_str(), "revoked"),
        ("tsk_nonsense", "not a Tessera API token"),
        (subject_token.as_str(), "session token"),
    ] {
        let answer = browser
            .call(
                Method::POST,
                "/console/api/session",
                Some(json!({ "token": token })),
            )
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert_eq!(answer.code(), "unauthorized");
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert!(answer.headers.get(header::SET_COOKIE).is_none());
        // No password dialog for a page's own request.
        assert!(
            answer
                .headers
                .get(header::WWW_AUTHENTICATE)
                .is_none_or(|v| !v.to_str().unwrap().contains("Basic")),
            "{:?}",
            answer.headers
        );
    }
    let shapeless = browser
        .call(
            Method::POST,
            "/console/api/session",
            Some(json!({ "tokn": "x" })),
        )
        .await;
    assert_eq!(shapeless.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_cookie_is_http_only_strict_for_eight_hours_and_secure_over_https() {
    let f = Fixture::new();
    let (token, _) = new_token(&f, Role::Operator);
    let mut browser = Browser::new(&f);
    let signed = browser.sign_in(&token).await;
    let cookie = cookie_of(&signed);
    let attributes: Vec<&str> = cookie.split("; ").collect();
    let session = attributes[0]
        .strip_prefix("tessera_console=")
        .expect("the console cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(&flag), "{flag} missing: {cookie}");
    }
    assert!(!attributes.contains(&"Secure"), "{cookie}");
    let max_age: i64 = attributes
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .unwrap();
    assert!(
        (EIGHT_HOURS_MS / 1000 - 5..=EIGHT_HOURS_MS / 1000).contains(&max_age),
        "{max_age}"
    );
    let expires = signed.body["expires_at_ms"].as_i64().unwrap();
    assert!((expires - f.vault().now_ms() - EIGHT_HOURS_MS).abs() < 5_000);
    assert_eq!(signed.body["csrf_token"], csrf_token(session).as_str());

    // Behind a proxy that says the browser used HTTPS…
    let mut browser = Browser::new(&f);
    browser.https = true;
    let cookie = cookie_of(&browser.sign_in(&token).await);
    assert!(
        cookie.starts_with("__Host-tessera_console=tcs_"),
        "{cookie}"
    );
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(cookie.split("; ").any(|a| a == flag), "{flag}: {cookie}");
    }
    // …and with TLS on: `Secure`, under the `__Host-` prefix.
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        tls: TlsConfig {
            cert_file: Some(dir.path().join("cert.pem")),
            key_file: Some(dir.path().join("key.pem")),
            ..TlsConfig::default()
        },
        ..Config::default()
    };
    let tls = Fixture::with_config(config);
    let mut browser = Browser::new(&tls);
    let cookie = cookie_of(&browser.sign_in(tls.token(ACME, Role::Operator)).await);
    assert!(
        cookie.starts_with("__Host-tessera_console=tcs_"),
        "{cookie}"
    );
    assert!(cookie.split("; ").any(|a| a == "Secure"), "{cookie}");
    browser
        .call(Method::GET, "/v1/tenant", None)
        .await
        .expect(StatusCode::OK);

    // Signing out clears the cookie under both names.
    let out = browser
        .call(Method::DELETE, "/console/api/session", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let cleared: Vec<&str> = out
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    for name in ["__Host-tessera_console=;", "tessera_console=;"] {
        assert!(
            cleared
                .iter()
                .any(|c| c.starts_with(name) && c.contains("Max-Age=0")),
            "{cleared:?}"
        );
    }
}

#[tokio::test]
async fn a_cross_site_or_tokenless_change_with_the_cookie_is_refused_and_changes_nothing() {
    let f = Fixture::new();
    let (token, _) = new_token(&f, Role::Operator);
    let mut browser = Browser::new(&f);
    browser.sign_in(&token).await;
    let count = |f: &Fixture| f.state.tokens.list(ACME).expect("tokens").len();
    let before = count(&f);
    let body = json!({"role": "operator", "name": "smuggled"});
    type Tamper = fn(&mut Request<Body>);
    let cases: [(&str, &str, Tamper); 5] = [
        ("a foreign Origin", "cross_site_request", |r| {
            r.headers_mut().insert(
                header::ORIGIN,
                HeaderValue::from_static("http://evil.example"),
            );
        }),
        ("no Origin", "cross_site_request", |r| {
            r.headers_mut().remove(header::ORIGIN);
        }),
        ("Sec-Fetch-Site: cross-site", "cross_site_request", |r| {
            r.headers_mut()
                .insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        }),
        ("no CSRF token", "csrf_token_missing", |r| {
            r.headers_mut().remove("x-csrf-token");
        }),
        ("a wrong CSRF token", "csrf_token_invalid", |r| {
            r.headers_mut()
                .insert("x-csrf-token", HeaderValue::from_static("00ff"));
        }),
    ];
    for (what, code, tamper) in cases {
        let mut request = browser.request(Method::POST, "/v1/tokens", Some(body.clone()));
        tamper(&mut request);
        let answer = f.send(request).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            answer.body
        );
        assert_eq!(answer.code(), code, "{what}");
        assert_eq!(count(&f), before, "{what} created a token");
    }
    // A cross-site sign-in is refused too (no signing a browser into
    // someone else's session), and so is a cross-site sign-out.
    for path_method in [Method::POST, Method::DELETE] {
        let mut request = Browser::new(&f).request(
            path_method.clone(),
            "/console/api/session",
            Some(json!({ "token": token })),
        );
        request.headers_mut().insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        let answer = f.send(request).await.expect(StatusCode::FORBIDDEN);
        assert_eq!(answer.code(), "cross_site_request", "{path_method}");
    }
    // The honest request still works.
    browser
        .call(Method::POST, "/v1/tokens", Some(body))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(count(&f), before + 1);
}

#[tokio::test]
async fn revoking_the_api_token_ends_its_console_sessions_at_once() {
    let f = Fixture::new();
    let (token, id) = new_token(&f, Role::Operator);
    let mut browser = Browser::new(&f);
    browser.sign_in(&token).await;
    browser
        .call(Method::GET, "/v1/tenant", None)
        .await
        .expect(StatusCode::OK);
    f.call(
        Method::DELETE,
        &format!("/v1/tokens/{id}"),
        Some(f.token(ACME, Role::Operator)),
        None,
    )
    .await
    .expect(StatusCode::OK);
    for uri in ["/console/api/session", "/v1/tenant"] {
        let answer = browser
            .call(Method::GET, uri, None)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("revoked"), "{uri}: {message}");
    }
}

#[tokio::test]
async fn after_sign_out_the_old_cookie_is_refused() {
    let f = Fixture::new();
    let (token, _) = new_token(&f, Role::Marketer);
    let mut browser = Browser::new(&f);
    browser.sign_in(&token).await;
    let old = Browser {
        f: &f,
        cookie: browser.cookie.clone(),
        csrf: browser.csrf.clone(),
        https: false,
    };
    browser
        .call(Method::DELETE, "/console/api/session", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    for uri in ["/console/api/session", "/v1/segments"] {
        let answer = old
            .call(Method::GET, uri, None)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("signed out"), "{uri}: {message}");
    }
    // The API token itself is untouched: it signs in again.
    Browser::new(&f).sign_in(&token).await;
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let f = Fixture::with_clock(Config::default());
    let (token, _) = new_token(&f, Role::Analyst);
    let mut browser = Browser::new(&f);
    browser.sign_in(&token).await;
    f.advance(EIGHT_HOURS_MS - 60_000);
    browser
        .call(Method::GET, "/v1/audit", None)
        .await
        .expect(StatusCode::OK);
    f.advance(60_000);
    for uri in ["/console/api/session", "/v1/audit"] {
        let answer = browser
            .call(Method::GET, uri, None)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("expired"), "{uri}: {message}");
    }
}

#[tokio::test]
async fn console_and_portal_sessions_reach_only_their_own_routes() {
    let f = Fixture::new();
    let subject = f.subject(ACME, "m-both");
    let subject_token = f.subject_token(ACME, &subject);
    let (token, _) = new_token(&f, Role::Operator);
    let mut console = Browser::new(&f);
    console.sign_in(&token).await;
    let console_cookie = console.cookie.clone().expect("cookie");

    // A console session cannot act as a person.
    let me = console.call(Method::GET, "/v1/me", None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.body);

    // A portal session cannot call operator routes.
    let portal = Browser {
        f: &f,
        cookie: Some(format!("tessera_session={subject_token}")),
        csrf: Some(csrf_token(&subject_token)),
        https: false,
    };
    let tokens = portal
        .call(Method::GET, "/v1/tokens", None)
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(tokens.code(), "forbidden");
    let session = portal.call(Method::GET, "/console/api/session", None).await;
    assert_eq!(session.status, StatusCode::UNAUTHORIZED);

    // One browser holding both: `/v1/me` is the person's, the rest the
    // console's; each change needs its own session's CSRF token.
    let both = Browser {
        f: &f,
        cookie: Some(format!("tessera_session={subject_token}; {console_cookie}")),
        csrf: console.csrf.clone(),
        https: false,
    };
    let me = both
        .call(Method::GET, "/v1/me", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.body["subject"], subject.as_str());
    both.call(Method::GET, "/v1/tokens", None)
        .await
        .expect(StatusCode::OK);
    let wrong = both
        .call(
            Method::PUT,
            "/v1/me/consents/analytics",
            Some(json!({"granted": false})),
        )
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(wrong.code(), "csrf_token_invalid");

    // A cookie that holds anything but a console session is no session.
    let forged = Browser {
        f: &f,
        cookie: Some(format!("tessera_console={token}")),
        csrf: Some(csrf_token(&token)),
        https: false,
    };
    let answer = forged
        .call(Method::GET, "/v1/tenant", None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no session"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn the_audit_search_keeps_entries_matching_every_filter_and_pages_on() {
    let f = Fixture::with_clock(Config::default());
    let analyst = f.token(ACME, Role::Analyst).to_owned();
    let subject = f.subject(ACME, "m-audited");
    let start = f.vault().now_ms();
    f.advance(1_000);
    for n in 0..5 {
        f.state
            .tokens
            .create(
                ACME,
                Role::Ingest,
                &format!("feed {n}"),
                &tessera_vault::Actor::new("operator", "token:feeder"),
            )
            .expect("create");
        f.advance(1_000);
    }
    f.vault()
        .access(
            ACME,
            &subject,
            &tessera_vault::Actor::new("operator", "token:abc"),
        )
        .expect("access");
    let search = |query: &str| {
        let uri = format!("/v1/audit?{query}");
        let f = &f;
        let analyst = analyst.clone();
        async move {
            f.call(Method::GET, &uri, Some(&analyst), None)
                .await
                .expect(StatusCode::OK)
                .body
        }
    };
    let actions = |page: &Value| -> Vec<String> {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };

    let created = search("action=token.create&actor=operator:token:feeder").await;
    assert_eq!(actions(&created).len(), 5, "{created}");
    assert_eq!(created["next"], Value::Null);
    // A prefix ending in a dot, paged two at a time.
    let first = search("action=token.&limit=2").await;
    assert_eq!(actions(&first), ["token.create", "token.create"]);
    let next = first["next"].as_u64().expect("a next page");
    let second = search(&format!("action=token.&limit=2&from={next}")).await;
    assert_eq!(actions(&second).len(), 2);
    assert!(second["entries"][0]["seq"].as_u64().unwrap() >= next);
    // By subject, and by actor id.
    let about = search(&format!("subject={subject}")).await;
    assert!(
        actions(&about).contains(&"subject.access".to_owned()),
        "{about}"
    );
    assert!(
        about["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["subject"] == subject.as_str())
    );
    let by_id = search("actor=token:abc").await;
    assert_eq!(actions(&by_id), ["subject.access"]);
    // A time range: the second and third tokens only.
    let window = search(&format!(
        "action=token.create&actor=token:feeder&since_ms={}&until_ms={}",
        start + 2_000,
        start + 4_000
    ))
    .await;
    assert_eq!(actions(&window).len(), 2, "{window}");
    // Nothing matches: an empty page with no next.
    let none = search("action=no.such.action").await;
    assert!(actions(&none).is_empty());
    assert_eq!(none["next"], Value::Null);
    // A range that is backwards is refused, naming the parameter.
    let backwards = f
        .call(
            Method::GET,
            "/v1/audit?since_ms=10&until_ms=5",
            Some(&analyst),
            None,
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(backwards.code(), "invalid_query");
    assert!(backwards.body.to_string().contains("since_ms"));
}

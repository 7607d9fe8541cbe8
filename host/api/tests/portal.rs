//! The subject portal, `/portal/`, through the same HTTP requests its page
//! makes: its security headers, the session cookie and its flags, the
//! refusal of cross-site requests, one person's session never reaching
//! another's data, and the whole flow from a one-time code to the deletion
//! receipt.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use common::{ACME, Answer, Fixture};
use serde_json::{Value, json};
use tessera_api::{
    CONTENT_SECURITY_POLICY, CodeSenderKind, Config, ROLE_MATRIX, Role, SubjectLoginConfig,
    TlsConfig, csrf_token,
};
use tessera_vault::{Actor, Channel, ConsentChange, IdentityKind, Incoming, LinkedApp, NewEvent};

const HOST: &str = "portal.test:8080";
const ORIGIN: &str = "http://portal.test:8080";

fn operator() -> Actor {
    common::operator()
}

/// A person of ACME with an email, traits, a purchase, a page view and a
/// granted purpose; returns the subject id.
fn person(f: &Fixture, email: &str, member: &str) -> String {
    let now = f.vault().now_ms();
    let item = Incoming {
        identities: vec![
            (IdentityKind::Email, email.to_owned()),
            (IdentityKind::MemberId, member.to_owned()),
        ],
        traits: BTreeMap::from([
            ("first_name".to_owned(), json!("Ana")),
            ("city".to_owned(), json!("Porto")),
            ("tier".to_owned(), json!("gold")),
        ]),
        events: vec![
            NewEvent {
                source_id: Some(format!("order-{member}")),
                event_type: "purchase".into(),
                at_ms: now - 2000,
                channel: Channel::Offline,
                properties: BTreeMap::from([
                    ("amount".to_owned(), json!(42.5)),
                    ("currency".to_owned(), json!("EUR")),
                ]),
            },
            NewEvent {
                source_id: Some(format!("view-{member}")),
                event_type: "page_view".into(),
                at_ms: now - 1000,
                channel: Channel::Online,
                properties: BTreeMap::from([("path".to_owned(), json!("/shoes"))]),
            },
        ],
        consents: vec![ConsentChange {
            purpose: "email_marketing".into(),
            granted: true,
            method: "store_signup".into(),
            given_at_ms: None,
        }],
    };
    f.vault()
        .ingest(ACME, &item, &operator())
        .expect("ingest")
        .subject
        .expect("a subject")
}

fn link(f: &Fixture, subject: &str, app: &str) {
    let linked = LinkedApp {
        app: app.into(),
        name: format!("App {app}"),
        scopes: vec!["purchases:read".into()],
        granted_at_ms: 0,
    };
    f.vault()
        .link_app(ACME, subject, &linked, &operator())
        .expect("link app");
}

fn code_config(file: &Path) -> Config {
    let mut config = Config {
        subject_login: SubjectLoginConfig {
            sender: CodeSenderKind::File,
            file: Some(file.to_owned()),
            requests_per_second: 1000,
            burst: 1000,
        },
        ..Config::default()
    };
    config.subject_tokens.requests_per_second = 1000;
    config.subject_tokens.burst = 1000;
    config
}

/// Waits until the file sender has written `n` codes; returns the last.
async fn nth_code(file: &Path, n: usize) -> String {
    for _ in 0..400 {
        let lines: Vec<Value> = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        if lines.len() >= n {
            return lines[n - 1]["code"].as_str().expect("a code").to_owned();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no code number {n} in {}", file.display());
}

/// A browser on the portal's page: it sends what the page's scripts send
/// (same origin, the session cookie, the CSRF token on changes).
struct Browser<'a> {
    f: &'a Fixture,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(f: &'a Fixture) -> Self {
        Self {
            f,
            cookie: None,
            csrf: None,
        }
    }

    /// A browser signed in with `token` (as if by the portal's sign-in).
    fn with_token(f: &'a Fixture, token: &str) -> Self {
        Self {
            f,
            cookie: Some(format!("tessera_session={token}")),
            csrf: Some(csrf_token(token)),
        }
    }

    fn request(&self, method: Method, uri: &str, body: Option<Value>) -> Request<Body> {
        let safe = method == Method::GET || method == Method::HEAD;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, HOST)
            .header("sec-fetch-site", "same-origin");
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

    /// Asks for a code for `email` and signs in with it, as the page does;
    /// returns the answer of the sign-in.
    async fn sign_in(&mut self, file: &Path, n: usize, email: &str) -> Answer {
        self.call(
            Method::POST,
            "/v1/login/code",
            Some(json!({"tenant": ACME, "email": email})),
        )
        .await
        .expect(StatusCode::ACCEPTED);
        let code = nth_code(file, n).await;
        let answer = self
            .call(
                Method::POST,
                "/portal/api/session",
                Some(json!({"tenant": ACME, "email": email, "code": code})),
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
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
}

/// What of a person must not change: everything but the log of who read it.
fn held(f: &Fixture, subject: &str) -> tessera_vault::SubjectView {
    let mut view = f
        .vault()
        .access(ACME, subject, &operator())
        .expect("access");
    view.access_log.clear();
    view
}

#[tokio::test]
async fn every_portal_answer_carries_the_csp_and_the_page_loads_nothing_from_elsewhere() {
    let f = Fixture::new();
    let browser = Browser::new(&f);
    let page = browser
        .call(Method::GET, "/portal/", None)
        .await
        .expect(StatusCode::OK);
    assert_secured(&page, "the page");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
    }
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    assert_eq!(
        page.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let html = page.body.as_str().expect("html").to_owned();
    assert!(
        html.starts_with("<!doctype html>\n<html lang=\"en\">"),
        "{html}"
    );

    // Chinese for a browser that prefers it.
    let mut request = browser.request(Method::GET, "/portal/", None);
    request.headers_mut().insert(
        header::ACCEPT_LANGUAGE,
        HeaderValue::from_static("zh-CN,zh;q=0.9,en;q=0.8"),
    );
    let zh = f.send(request).await.expect(StatusCode::OK);
    assert!(zh.body.as_str().unwrap().contains("<html lang=\"zh-CN\">"));
    assert_eq!(zh.headers[header::VARY], "Accept-Language");

    // No inline script or style, and every file the page names is served
    // by Tessera, with the same headers.
    assert!(!html.contains("<script>") && !html.contains(" style="));
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
    assert!(files.iter().any(|f| f == "/ui/portal/app.js"), "{files:?}");
    let mut scripts = vec![
        "/ui/shared/api.js",
        "/ui/shared/dom.js",
        "/ui/shared/i18n.js",
        "/ui/portal/strings.js",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    scripts.extend(files.iter().filter(|f| f.starts_with("/ui/")).cloned());
    for file in &scripts {
        let answer = browser
            .call(Method::GET, file, None)
            .await
            .expect(StatusCode::OK);
        assert_secured(&answer, file);
        let text = answer.body.as_str().unwrap_or_default();
        for scheme in ["http://", "https://", "//cdn"] {
            // The SVG's XML namespace is a name, not something loaded.
            let loads = text.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            assert!(!loads.contains(scheme), "{file} refers to {scheme}");
        }
        if file.ends_with(".js") {
            assert_eq!(
                answer.headers[header::CONTENT_TYPE],
                "text/javascript; charset=utf-8"
            );
            assert!(!text.contains("innerHTML"), "{file} parses data as HTML");
        }
    }

    // Files are revalidated by their ETag.
    let app = browser
        .call(Method::GET, "/ui/portal/app.js", None)
        .await
        .expect(StatusCode::OK);
    let etag = app.headers[header::ETAG].clone();
    let mut again = browser.request(Method::GET, "/ui/portal/app.js", None);
    again.headers_mut().insert(header::IF_NONE_MATCH, etag);
    let not_modified = f.send(again).await.expect(StatusCode::NOT_MODIFIED);
    assert_secured(&not_modified, "304");

    // Unknown files, a bare /portal and the API without a session.
    let missing = browser.call(Method::GET, "/ui/../Cargo.toml", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let missing = browser
        .call(Method::GET, "/ui/portal/secret.js", None)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_secured(&missing, "a missing file");
    assert_eq!(missing.code(), "not_found");
    let redirect = browser
        .call(Method::GET, "/portal?tenant=acme", None)
        .await
        .expect(StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers[header::LOCATION], "/portal/?tenant=acme");
    let anonymous = browser
        .call(Method::GET, "/portal/api/session", None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_secured(&anonymous, "401");
    // A Basic challenge would open a password dialog over the page.
    assert_eq!(
        anonymous.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"tessera\""
    );
    assert_eq!(anonymous.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(anonymous.code(), "unauthorized");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_for_the_token_lifetime_and_secure_with_tls() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("codes.jsonl");
    let f = Fixture::with_config(code_config(&file));
    person(&f, "ana@example.com", "m-ana");
    let mut browser = Browser::new(&f);
    let signed = browser.sign_in(&file, 1, "ana@example.com").await;
    assert_secured(&signed, "sign-in");
    assert_eq!(signed.headers[header::CACHE_CONTROL], "no-store");
    let cookie = cookie_of(&signed);
    let attributes: Vec<&str> = cookie.split("; ").collect();
    let token = attributes[0]
        .strip_prefix("tessera_session=")
        .expect("the session cookie");
    assert!(token.starts_with("tst_"), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(&flag), "{flag} missing: {cookie}");
    }
    assert!(
        !attributes.contains(&"Secure"),
        "plain HTTP (development): no Secure flag, or the browser would drop the cookie"
    );
    let max_age: i64 = attributes
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .unwrap();
    let lifetime_s = (signed.body["expires_at_ms"].as_i64().unwrap() - f.vault().now_ms()) / 1000;
    assert!(
        (lifetime_s - 5..=lifetime_s + 1).contains(&max_age) && max_age <= 900,
        "{max_age} vs {lifetime_s}"
    );
    // The page gets the CSRF token, never the session token.
    assert_eq!(signed.body["csrf_token"], csrf_token(token).as_str());
    assert_eq!(signed.body["tenant"], ACME);
    assert!(!signed.body.to_string().contains(token));
    let session = browser
        .call(Method::GET, "/portal/api/session", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(session.body, signed.body);

    // With TLS on, the cookie is Secure, under the __Host- prefix; so it is
    // behind a proxy that says the browser used HTTPS.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("codes.jsonl");
    let mut config = code_config(&file);
    config.tls = TlsConfig {
        cert_file: Some(dir.path().join("cert.pem")),
        key_file: Some(dir.path().join("key.pem")),
        ..TlsConfig::default()
    };
    let tls = Fixture::with_config(config);
    person(&tls, "ana@example.com", "m-ana");
    let mut browser = Browser::new(&tls);
    let signed = browser.sign_in(&file, 1, "ana@example.com").await;
    let cookie = cookie_of(&signed);
    assert!(
        cookie.starts_with("__Host-tessera_session=tst_"),
        "{cookie}"
    );
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(cookie.split("; ").any(|a| a == flag), "{flag}: {cookie}");
    }
    browser
        .call(Method::GET, "/portal/api/me", None)
        .await
        .expect(StatusCode::OK);
    let proxied_dir = tempfile::tempdir().unwrap();
    let proxied_file = proxied_dir.path().join("codes.jsonl");
    let proxied = Fixture::with_config(code_config(&proxied_file));
    person(&proxied, "ana@example.com", "m-ana");
    let browser = Browser::new(&proxied);
    browser
        .call(
            Method::POST,
            "/v1/login/code",
            Some(json!({"tenant": ACME, "email": "ana@example.com"})),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    let code = nth_code(&proxied_file, 1).await;
    let mut request = browser.request(
        Method::POST,
        "/portal/api/session",
        Some(json!({"tenant": ACME, "email": "ana@example.com", "code": code})),
    );
    request
        .headers_mut()
        .insert("x-forwarded-proto", HeaderValue::from_static("https"));
    let signed = proxied.send(request).await.expect(StatusCode::OK);
    assert!(cookie_of(&signed).ends_with("; Secure"));

    // Signing out revokes the token and removes the cookie.
    let f_browser = Browser::with_token(&f, token);
    let out = f_browser
        .call(Method::DELETE, "/portal/api/session", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let cleared: Vec<&str> = out
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("tessera_session=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let after = f_browser
        .call(Method::GET, "/v1/me", None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(
        after.body.to_string().contains("logged out"),
        "{}",
        after.body
    );
    assert_eq!(
        after.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"tessera\"",
        "no password dialog over the page when its session ends"
    );
    // A client with no cookie still hears of both schemes.
    let plain = f
        .call(Method::GET, "/v1/me", None, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert!(
        plain.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("Basic")
    );
}

#[tokio::test]
async fn a_cross_site_request_with_the_cookie_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("codes.jsonl");
    let f = Fixture::with_config(code_config(&file));
    let ana = person(&f, "ana@example.com", "m-ana");
    link(&f, &ana, "fitness-sync");
    let mut browser = Browser::new(&f);
    browser.sign_in(&file, 1, "ana@example.com").await;
    let other_session = f.subject_token(ACME, &person(&f, "bo@example.com", "m-bo"));
    let before = held(&f, &ana);
    let footprint = f.footprint(ACME);

    let changes = [
        (
            Method::PATCH,
            "/v1/me/traits",
            Some(json!({"traits": {"city": "Evil"}})),
        ),
        (
            Method::PUT,
            "/v1/me/consents/email_marketing",
            Some(json!({"granted": false})),
        ),
        (Method::DELETE, "/v1/me/apps/fitness-sync", None),
        (Method::PUT, "/v1/me/retention", Some(json!({"days": 31}))),
        (Method::POST, "/v1/me/deletion", None),
        (Method::DELETE, "/v1/me/session", None),
        (Method::DELETE, "/portal/api/session", None),
    ];
    type Attack = (&'static str, &'static str, fn(&mut Request<Body>));
    let attacks: [Attack; 6] = [
        ("a foreign Origin", "cross_site_request", |r| {
            r.headers_mut().insert(
                header::ORIGIN,
                HeaderValue::from_static("https://evil.example"),
            );
        }),
        ("no Origin", "cross_site_request", |r| {
            r.headers_mut().remove(header::ORIGIN);
        }),
        ("a look-alike Origin", "cross_site_request", |r| {
            r.headers_mut().insert(
                header::ORIGIN,
                HeaderValue::from_static("http://portal.test:8080.evil.example"),
            );
        }),
        ("Sec-Fetch-Site: cross-site", "cross_site_request", |r| {
            r.headers_mut()
                .insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        }),
        ("no CSRF token", "csrf_token_missing", |r| {
            r.headers_mut().remove("x-csrf-token");
        }),
        (
            "a CSRF token of another session",
            "csrf_token_invalid",
            |r| {
                r.headers_mut().insert(
                    "x-csrf-token",
                    HeaderValue::from_static(
                        "0000000000000000000000000000000000000000000000000000000000000000",
                    ),
                );
            },
        ),
    ];
    for (method, uri, body) in &changes {
        for (what, code, attack) in &attacks {
            let mut request = browser.request(method.clone(), uri, body.clone());
            attack(&mut request);
            let refused = f.send(request).await;
            assert_eq!(
                refused.status,
                StatusCode::FORBIDDEN,
                "{method} {uri} with {what}: {}",
                refused.body
            );
            assert_eq!(refused.code(), *code, "{method} {uri} with {what}");
            assert_eq!(
                refused.headers[header::CONTENT_TYPE],
                "application/json",
                "a clear JSON error"
            );
        }
    }
    // The CSRF token of another (real) session does not fit this one.
    let mut request = browser.request(Method::PUT, "/v1/me/retention", Some(json!({"days": 31})));
    request.headers_mut().insert(
        "x-csrf-token",
        HeaderValue::from_str(&csrf_token(&other_session)).unwrap(),
    );
    assert_eq!(f.send(request).await.code(), "csrf_token_invalid");
    // Signing a browser into a session from another site is refused too.
    let mut request = browser.request(
        Method::POST,
        "/portal/api/session",
        Some(json!({"tenant": ACME, "email": "ana@example.com", "code": "123456"})),
    );
    request.headers_mut().insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evil.example"),
    );
    let refused = f.send(request).await.expect(StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "cross_site_request");
    assert!(refused.headers.get(header::SET_COOKIE).is_none());

    // Nothing was even recorded, and nothing changed.
    assert_eq!(f.footprint(ACME), footprint);
    assert_eq!(held(&f, &ana), before);
    // The same requests from the page itself go through.
    browser
        .call(
            Method::PATCH,
            "/v1/me/traits",
            Some(json!({"traits": {"city": "Lyon"}})),
        )
        .await
        .expect(StatusCode::OK);
    browser
        .call(Method::DELETE, "/v1/me/apps/fitness-sync", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(held(&f, &ana).traits["city"].0, json!("Lyon"));
    // A bearer token needs neither (no browser sends it by itself).
    let token = f.subject_token(ACME, &ana);
    f.call(
        Method::PUT,
        "/v1/me/retention",
        Some(&token),
        Some(json!({"days": 60})),
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test]
async fn subject_a_session_cannot_reach_subject_b_by_url_or_id() {
    let f = Fixture::new();
    let a = person(&f, "a@example.com", "m-a");
    let b = person(&f, "b@example.com", "m-b");
    link(&f, &b, "b-only-app");
    f.vault()
        .set_retention(ACME, &b, 365, &operator())
        .expect("retention");
    f.vault()
        .apply_memberships(ACME, "b-only-segment", &[(b.clone(), true)])
        .expect("membership");
    let b_old = person(&f, "b.old@example.com", "m-b-old");
    let b_deletion = f
        .vault()
        .request_deletion(ACME, &b_old, "subject_request", &operator())
        .expect("erase")
        .id;
    let b_before = held(&f, &b);
    let b_deletion_before = f.vault().deletion_request(ACME, &b_deletion).unwrap();
    let a_token = f.subject_token(ACME, &a);
    let browser = Browser::with_token(&f, &a_token);

    // A's cookie rewritten to name B no longer verifies.
    {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = format!("tst_{}_", hex::encode(ACME));
        let (claims, tag) = a_token[head.len()..].rsplit_once('_').unwrap();
        let text = String::from_utf8(engine.decode(claims).unwrap()).unwrap();
        let forged = format!(
            "{head}{}_{tag}",
            engine.encode(text.replace(&a, &b).as_bytes())
        );
        let forger = Browser::with_token(&f, &forged);
        for uri in ["/portal/api/me", "/v1/me", "/portal/api/session"] {
            forger
                .call(Method::GET, uri, None)
                .await
                .expect(StatusCode::UNAUTHORIZED);
        }
        // A cookie holding an API token is no session at all.
        let api_token = Browser::with_token(&f, f.token(ACME, Role::Operator));
        let refused = api_token
            .call(Method::GET, "/v1/tokens", None)
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert!(refused.body.to_string().contains("no session"));
    }

    // The portal's own read, with B named every way a URL can.
    for uri in [
        "/portal/api/me".to_owned(),
        format!("/portal/api/me?subject={b}"),
        format!("/portal/api/me/{b}"),
        format!("/portal/api/session?subject={b}"),
    ] {
        let answer = browser.call(Method::GET, &uri, None).await;
        let body = answer.body.to_string();
        assert!(!body.contains(&b), "{uri}: {body}");
        assert!(!body.contains("b-only"), "{uri}: {body}");
        if answer.status == StatusCode::OK && uri.starts_with("/portal/api/me") {
            assert_eq!(answer.body["data"]["subject"], a.as_str(), "{uri}");
        }
    }

    // Every API route with the cookie, B's ids wherever a route takes one.
    let body_for = |path: &str| match path {
        "/v1/me/traits" => Some(json!({"traits": {"city": "Braga"}})),
        "/v1/me/consents/{purpose}" => Some(json!({"granted": true})),
        "/v1/me/retention" => Some(json!({"days": 60})),
        "/v1/subject-tokens" => Some(json!({ "subject": b })),
        "/v1/tokens" => Some(json!({"role": "operator", "name": "x"})),
        _ if path.starts_with("/v1/me") => None,
        _ => Some(json!({"type": "track", "userId": "m-b", "event": "Hijack"})),
    };
    let mut rules: Vec<_> = ROLE_MATRIX.iter().collect();
    rules.sort_by_key(|r| matches!(r.path, "/v1/me/session" | "/v1/me/deletion"));
    for rule in rules {
        let method = Method::from_bytes(rule.method.as_bytes()).unwrap();
        let uri = rule
            .path
            .replace(
                "/v1/me/deletions/{id}",
                &format!("/v1/me/deletions/{b_deletion}"),
            )
            .replace("/v1/me/apps/{id}", "/v1/me/apps/b-only-app")
            .replace("{purpose}", "analytics")
            .replace("/v1/deletions/{id}", &format!("/v1/deletions/{b_deletion}"))
            .replace("/v1/subjects/{id}", &format!("/v1/subjects/{b}"))
            .replace("/v1/profiles/{id}", &format!("/v1/profiles/{b}"))
            .replace("{id}", "0123456789abcdef")
            .replace("{name}", "b-only-segment");
        let answer = browser.call(method, &uri, body_for(rule.path)).await;
        let what = format!("{} {uri}: {} {}", rule.method, answer.status, answer.body);
        if rule.roles.contains(&Role::Subject) {
            if rule.path.contains('{') && rule.path != "/v1/me/consents/{purpose}" {
                assert_eq!(answer.status, StatusCode::NOT_FOUND, "{what}");
            } else {
                assert!(answer.status.is_success(), "{what}");
                assert!(!answer.body.to_string().contains(&b), "{what}");
            }
        } else {
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}");
        }
    }

    // B is exactly as before, and nothing was done to B by A's session.
    assert_eq!(held(&f, &b), b_before);
    assert_eq!(
        f.vault().deletion_request(ACME, &b_deletion).unwrap(),
        b_deletion_before
    );
    for entry in f.vault().audit_entries(ACME, 1, 100_000).unwrap() {
        if entry.subject.as_deref() == Some(b.as_str()) {
            assert_ne!(entry.actor.role, "subject", "{entry:?}");
        }
    }
}

#[tokio::test]
async fn a_person_signs_in_with_a_code_and_uses_every_page_of_the_portal() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("codes.jsonl");
    let f = Fixture::with_config(code_config(&file));
    let ana = person(&f, "ana@example.com", "m-ana");
    link(&f, &ana, "fitness-sync");
    f.vault()
        .apply_memberships(ACME, "frequent-buyers", &[(ana.clone(), true)])
        .expect("membership");
    let mut browser = Browser::new(&f);

    // The page loads, asks for a code, and signs in with it.
    browser
        .call(Method::GET, "/portal/?tenant=acme", None)
        .await
        .expect(StatusCode::OK);
    browser
        .call(Method::GET, "/portal/api/session", None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    browser.sign_in(&file, 1, "Ana@Example.com").await;
    let session = browser
        .call(Method::GET, "/portal/api/session", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(session.body["tenant"], ACME);

    // My data: traits, what may be edited, history, segments.
    let me = browser
        .call(Method::GET, "/portal/api/me", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.headers[header::CACHE_CONTROL], "no-store");
    let data = &me.body["data"];
    assert_eq!(data["subject"], ana.as_str());
    assert_eq!(data["traits"]["city"][0], "Porto");
    let types: Vec<&str> = data["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"purchase") && types.contains(&"page_view"),
        "{types:?}"
    );
    let editable: BTreeMap<&str, &str> = me.body["editable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(editable.get("city"), Some(&"string"));
    assert_eq!(editable.get("birthday"), Some(&"date"));
    assert!(!editable.contains_key("tier"), "tier is the tenant's");
    assert_eq!(me.body["segments"][0]["segment"], "frequent-buyers");
    let access = f
        .vault()
        .audit_entries(ACME, 1, 100_000)
        .unwrap()
        .into_iter()
        .rfind(|e| e.action == "subject.access")
        .expect("the read is audited");
    assert_eq!(access.actor.role, "subject");
    for uri in ["/v1/me/consents", "/v1/me/apps", "/v1/me/retention"] {
        browser
            .call(Method::GET, uri, None)
            .await
            .expect(StatusCode::OK);
    }

    // Edit a trait.
    let edited = browser
        .call(
            Method::PATCH,
            "/v1/me/traits",
            Some(json!({"traits": {"city": "Lyon"}})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(edited.body, json!({"set": ["city"], "removed": []}));
    let refused = browser
        .call(
            Method::PATCH,
            "/v1/me/traits",
            Some(json!({"traits": {"tier": "platinum"}})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.code(), "trait_not_editable");
    let me = browser
        .call(Method::GET, "/portal/api/me", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(me.body["data"]["traits"]["city"][0], "Lyon");

    // Revoke a consent: off now, and in the history as the person's own act.
    browser
        .call(
            Method::PUT,
            "/v1/me/consents/email_marketing",
            Some(json!({"granted": false})),
        )
        .await
        .expect(StatusCode::OK);
    let consents = browser
        .call(Method::GET, "/v1/me/consents", None)
        .await
        .expect(StatusCode::OK);
    let email = consents.body["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "email_marketing")
        .unwrap()
        .clone();
    assert_eq!(email["granted"], false);
    let last = consents.body["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (&last["purpose"], &last["granted"], &last["actor"]["role"]),
        (&json!("email_marketing"), &json!(false), &json!("subject"))
    );
    assert!(
        !f.vault()
            .has_consent(ACME, &ana, "email_marketing")
            .unwrap()
    );

    // Revoke the linked app; choose a retention period.
    browser
        .call(Method::DELETE, "/v1/me/apps/fitness-sync", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let apps = browser
        .call(Method::GET, "/v1/me/apps", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(apps.body["apps"], json!([]));
    let retention = browser
        .call(Method::PUT, "/v1/me/retention", Some(json!({"days": 90})))
        .await
        .expect(StatusCode::OK);
    assert_eq!(retention.body["chosen"], 90);

    // Export: the page's download links, with the cookie alone.
    let export = browser
        .call(Method::GET, "/v1/me/export?format=json", None)
        .await
        .expect(StatusCode::OK);
    assert!(
        export.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(export.body["traits"]["city"][0], "Lyon");
    let csv = browser
        .call(Method::GET, "/v1/me/export?format=csv&table=events", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(csv.body.as_str().unwrap().contains("purchase"));

    // Delete my data: the request with its deadline, then the receipt.
    let requested = browser
        .call(Method::POST, "/v1/me/deletion", None)
        .await
        .expect(StatusCode::ACCEPTED);
    let id = requested.body["id"].as_str().unwrap().to_owned();
    assert!(
        requested.body["deadline_ms"].as_i64().unwrap()
            > requested.body["requested_at_ms"].as_i64().unwrap()
    );
    assert_eq!(requested.body["status"], "keys_destroyed");
    let gone = browser
        .call(Method::GET, "/portal/api/me", None)
        .await
        .expect(StatusCode::GONE);
    assert_eq!(gone.code(), "subject_erased");
    f.vault().run_jobs("test").unwrap();
    let done = browser
        .call(Method::GET, &format!("/v1/me/deletions/{id}"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(done.body["status"], "completed");
    let receipt: tessera_vault::Receipt =
        serde_json::from_value(done.body["receipt"].clone()).expect("a receipt");
    assert_eq!(receipt.request, id);
    assert!(receipt.met_deadline);
    assert!(receipt.removed.events >= 2, "{:?}", receipt.removed);
    assert!(f.vault().verify_receipt(&receipt).unwrap());

    // Sign out: the cookie goes and the session no longer works.
    browser
        .call(Method::DELETE, "/portal/api/session", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    browser
        .call(Method::GET, &format!("/v1/me/deletions/{id}"), None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

//! The OpenAPI document: served at `/openapi.json` (3.1), with Swagger UI
//! at `/docs`; it lists exactly the routes the server has, and each `/v1`
//! operation names its roles, its security schemes and the error answers of
//! the layers in front of it; the subject portal's and the console's own
//! routes are there too, with their session cookies and CSRF refusals. (Schemathesis, run
//! by `.ci/run`, checks real answers against it.)

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::Fixture;
use serde_json::Value;
use tessera_api::{ROLE_MATRIX, Role};

/// The routes outside the role matrix, which need no token.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/v1/login/code"),
    ("POST", "/v1/login/token"),
];

/// The subject portal's own routes, which take its session cookie.
const PORTAL: &[(&str, &str)] = &[
    ("GET", "/portal/api/session"),
    ("POST", "/portal/api/session"),
    ("DELETE", "/portal/api/session"),
    ("GET", "/portal/api/me"),
];

/// The console's own routes, which take its session cookie.
const CONSOLE: &[(&str, &str)] = &[
    ("GET", "/console/api/session"),
    ("POST", "/console/api/session"),
    ("DELETE", "/console/api/session"),
];

fn in_portal(method: &str, path: &str) -> bool {
    PORTAL.iter().any(|(m, p)| *m == method && *p == path)
}

fn in_console(method: &str, path: &str) -> bool {
    CONSOLE.iter().any(|(m, p)| *m == method && *p == path)
}

fn in_matrix(method: &str, path: &str) -> bool {
    ROLE_MATRIX
        .iter()
        .any(|rule| rule.method == method && rule.path == path)
}

async fn spec(fixture: &Fixture) -> Value {
    let answer = fixture
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        answer.headers["content-type"], "application/json",
        "{:?}",
        answer.headers
    );
    answer.body
}

fn operations(spec: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                found.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    found
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_exactly_the_routes_of_the_server() {
    let fixture = Fixture::new();
    let spec = spec(&fixture).await;
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        spec["openapi"]
    );
    assert_eq!(spec["info"]["title"], "Tessera API");
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));

    let documented: BTreeSet<(String, String)> = operations(&spec)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let served: BTreeSet<(String, String)> = ROLE_MATRIX
        .iter()
        .map(|rule| (rule.method.to_owned(), rule.path.to_owned()))
        .chain(
            PUBLIC
                .iter()
                .chain(PORTAL)
                .chain(CONSOLE)
                .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document (annotate them and list them in openapi.rs): {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "the document describes routes the role matrix does not have: {unserved:?}"
    );
}

/// Every `$ref` in `value`.
fn references<'a>(value: &'a Value, found: &mut BTreeSet<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => {
                        found.insert(target.as_str());
                    }
                    _ => references(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn every_reference_resolves_to_a_schema_of_the_document() {
    let fixture = Fixture::new();
    let spec = spec(&fixture).await;
    let mut found = BTreeSet::new();
    references(&spec, &mut found);
    assert!(
        found.contains("#/components/schemas/ErrorBody"),
        "{found:?}"
    );
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    let dangling: Vec<_> = found
        .iter()
        .filter(|target| {
            target
                .strip_prefix("#/components/schemas/")
                .is_none_or(|name| !schemas.contains_key(name))
        })
        .collect();
    assert!(
        dangling.is_empty(),
        "references to schemas the document lacks (list them in openapi.rs components): {dangling:?}"
    );
}

#[tokio::test]
async fn every_documented_route_answers_as_documented_without_a_token() {
    // The document and the router agree: a public route answers 200, a
    // `/v1` route 401 (it exists, and it is behind the authorization layer).
    let fixture = Fixture::new();
    let spec = spec(&fixture).await;
    for (method, path, _) in operations(&spec) {
        let uri = path
            .replace("{id}", "0123456789abcdef")
            .replace("{name}", "threshold")
            .replace("{purpose}", "analytics");
        let matrix = in_matrix(&method, &path);
        let page = in_portal(&method, &path) || in_console(&method, &path);
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let answer = fixture.call(method.clone(), &uri, None, None).await;
        if page {
            // Without the cookie: the reads say so; signing out from
            // elsewhere is refused before anything else; signing in reads
            // its body first.
            let (status, code) = match method.as_str() {
                "GET" => (StatusCode::UNAUTHORIZED, "unauthorized"),
                "DELETE" => (StatusCode::FORBIDDEN, "cross_site_request"),
                _ => (StatusCode::UNSUPPORTED_MEDIA_TYPE, ""),
            };
            assert_eq!(answer.status, status, "{method} {uri}: {}", answer.body);
            if !code.is_empty() {
                assert_eq!(answer.body["error"]["code"], code, "{method} {uri}");
            }
        } else if matrix {
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri}: {}",
                answer.body
            );
        } else if method == Method::GET {
            assert_eq!(answer.status, StatusCode::OK, "{method} {uri}");
        } else {
            // The login routes take no token: without a body they refuse
            // the request itself, never the caller.
            assert_eq!(
                answer.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {uri}: {}",
                answer.body
            );
        }
    }
}

#[tokio::test]
async fn v1_operations_name_their_roles_security_and_error_answers() {
    let fixture = Fixture::new();
    let spec = spec(&fixture).await;
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["token"]["scheme"], "bearer");
    assert_eq!(schemes["writeKey"]["scheme"], "basic");
    assert_eq!(schemes["subjectToken"]["scheme"], "bearer");
    for (scheme, cookie) in [
        ("portalCookie", "__Host-tessera_session"),
        ("portalCookieHttp", "tessera_session"),
        ("consoleCookie", "__Host-tessera_console"),
        ("consoleCookieHttp", "tessera_console"),
    ] {
        assert_eq!(schemes[scheme]["type"], "apiKey", "{scheme}");
        assert_eq!(schemes[scheme]["in"], "cookie", "{scheme}");
        assert_eq!(schemes[scheme]["name"], cookie, "{scheme}");
    }
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());

    for (method, path, operation) in operations(&spec) {
        let responses = operation["responses"].as_object().expect("responses");
        // Every error answer has the one error shape.
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
        for status in ["500", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path}: no {status}"
            );
        }
        if operation.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
        }
        let security: Vec<&str> = operation["security"]
            .as_array()
            .map(|requirements| {
                requirements
                    .iter()
                    .map(|requirement| {
                        let names = requirement.as_object().expect("requirement");
                        names.keys().next().map_or("", String::as_str)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let description = |status: &str| {
            responses
                .get(status)
                .and_then(|r| r["description"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        // A change made with the session cookie can be refused as
        // cross-site or for its CSRF token, and the document says so.
        if method != "GET"
            && (security.contains(&"portalCookie") || security.contains(&"consoleCookie"))
        {
            let refused = description("403");
            for code in [
                "cross_site_request",
                "csrf_token_missing",
                "csrf_token_invalid",
            ] {
                assert!(refused.contains(code), "{method} {path}: 403 {refused}");
            }
        }
        let page_cookies = if in_portal(&method, &path) {
            Some(["portalCookie", "portalCookieHttp"])
        } else if in_console(&method, &path) {
            Some(["consoleCookie", "consoleCookieHttp"])
        } else {
            None
        };
        if let Some([cookie, cookie_http]) = page_cookies {
            let expected: &[&str] = match method.as_str() {
                "POST" => &[],
                // Signing out works with or without a session.
                "DELETE" => &[cookie, cookie_http, ""],
                _ => &[cookie, cookie_http],
            };
            assert_eq!(security, expected, "{method} {path}");
            // The portal's routes have the person's own rate limit.
            let statuses: &[&str] = match (method.as_str(), cookie) {
                ("GET", "portalCookie") => &["200", "401", "429"],
                ("POST", "portalCookie") => &["200", "401", "403", "429"],
                ("GET", _) => &["200", "401"],
                ("POST", _) => &["200", "401", "403"],
                _ => &["204", "403"],
            };
            for status in statuses {
                assert!(
                    responses.contains_key(*status),
                    "{method} {path}: no {status}"
                );
            }
            assert!(
                description("403").contains("cross_site_request") || method == "GET",
                "{method} {path}"
            );
            continue;
        }
        if !in_matrix(&method, &path) {
            assert!(operation.get("security").is_none(), "{method} {path}");
            continue;
        }
        let rule = ROLE_MATRIX
            .iter()
            .find(|r| r.method == method && r.path == path)
            .expect("in the matrix");
        for status in ["401", "403", "429"] {
            assert!(
                responses.contains_key(status),
                "{method} {path}: no {status}"
            );
        }
        let mut expected = vec!["token"];
        if rule.roles.contains(&Role::Ingest) {
            expected.push("writeKey");
        }
        if rule
            .roles
            .iter()
            .any(|r| [Role::Operator, Role::Marketer, Role::Analyst].contains(r))
        {
            // The console's page calls `/v1` with its cookie.
            expected.extend(["consoleCookie", "consoleCookieHttp"]);
        }
        if rule.roles == [Role::Subject] {
            // The portal's page calls `/v1/me` with its cookie.
            expected = vec!["subjectToken", "portalCookie", "portalCookieHttp"];
        }
        assert_eq!(security, expected, "{method} {path}");
        let description = operation["description"].as_str().unwrap_or_default();
        let roles: Vec<&str> = rule.roles.iter().map(|r| r.as_str()).collect();
        assert!(
            description.ends_with(&format!("Roles: {}.", roles.join(", "))),
            "{method} {path}: {description}"
        );
    }
}

#[tokio::test]
async fn the_docs_page_is_swagger_ui_served_without_a_cdn() {
    let fixture = Fixture::new();
    let page = fixture
        .call(Method::GET, "/docs/", None, None)
        .await
        .expect(StatusCode::OK);
    let html = page.body.as_str().expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("cdn"), "the page must work offline: {html}");
    let config = fixture
        .call(Method::GET, "/docs/swagger-initializer.js", None, None)
        .await
        .expect(StatusCode::OK);
    assert!(
        config.body.as_str().expect("js").contains("/openapi.json"),
        "{}",
        config.body
    );
}

//! The role matrix: every `/v1` route × every role × a token of the
//! route's own tenant and of another tenant. Allowed calls succeed;
//! forbidden ones get 403 and change nothing; another tenant's token never
//! reaches this tenant's data.

mod common;

use axum::http::{Method, StatusCode};
use common::{ACME, Fixture, GLOBEX};
use serde_json::{Value, json};
use tessera_api::{ROLE_MATRIX, Role, RouteRule};

/// A valid request for `rule` on ACME's resources: the URI and the body.
fn request_for(f: &Fixture, rule: &RouteRule, n: usize) -> (String, Option<Value>) {
    let member = format!("matrix-{n}");
    let message = |kind: &str| {
        let mut m = json!({"type": kind, "userId": member, "messageId": format!("mx-{n}")});
        match kind {
            "track" => m["event"] = json!("Matrix Test"),
            "identify" => m["traits"] = json!({"tier": "gold"}),
            "alias" => m["previousId"] = json!(format!("matrix-prev-{n}")),
            "group" => m["groupId"] = json!("g"),
            _ => {}
        }
        m
    };
    match rule.path {
        "/v1/tokens" if rule.method == "POST" => (
            rule.path.into(),
            Some(json!({"role": "analyst", "name": format!("matrix {n}")})),
        ),
        "/v1/tokens" => (rule.path.into(), None),
        "/v1/tokens/{id}" => {
            let created = f
                .state
                .tokens
                .create(ACME, Role::Analyst, "victim", &common::operator())
                .unwrap();
            (format!("/v1/tokens/{}", created.info.id), None)
        }
        "/v1/subjects/{id}" => (format!("/v1/subjects/{}", f.subject(ACME, &member)), None),
        "/v1/deletions/{id}" => {
            let subject = f.subject(ACME, &member);
            let request = f
                .vault()
                .request_deletion(ACME, &subject, "test", &common::operator())
                .unwrap();
            (format!("/v1/deletions/{}", request.id), None)
        }
        "/v1/audit" => ("/v1/audit?from=1&limit=10".into(), None),
        "/v1/batch" => (rule.path.into(), Some(json!({"batch": [message("track")]}))),
        "/v1/events" => (rule.path.into(), Some(message("track"))),
        path => {
            let kind = path.trim_start_matches("/v1/");
            (path.into(), Some(message(kind)))
        }
    }
}

#[tokio::test]
async fn every_route_every_role_own_and_other_tenant() {
    let f = Fixture::new();
    let mut n = 0;
    let mut checked = 0;
    for rule in ROLE_MATRIX {
        let method = Method::from_bytes(rule.method.as_bytes()).unwrap();
        for role in Role::ALL {
            for tenant in [ACME, GLOBEX] {
                n += 1;
                let (uri, body) = request_for(&f, rule, n);
                let before = f.footprint(ACME);
                let token = f.token(tenant, role).to_owned();
                let answer = f.call(method.clone(), &uri, Some(&token), body).await;
                let what = format!(
                    "{} {uri} as {role} of {tenant}: {} {}",
                    rule.method, answer.status, answer.body
                );
                let allowed = rule.roles.contains(&role);
                if !allowed {
                    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}");
                    assert_eq!(answer.code(), "forbidden", "{what}");
                    assert_eq!(
                        f.footprint(ACME),
                        before,
                        "a forbidden call changed acme: {what}"
                    );
                } else if tenant == ACME {
                    assert!(answer.status.is_success(), "{what}");
                } else {
                    // Another tenant's token acts on its own tenant only:
                    // ACME's ids name nothing there, and ACME is unchanged
                    // (its ingest calls land in GLOBEX).
                    assert!(
                        answer.status.is_success() || answer.status == StatusCode::NOT_FOUND,
                        "{what}"
                    );
                    let has_id = rule.path.contains('{');
                    if has_id {
                        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{what}");
                    }
                    assert_eq!(
                        f.footprint(ACME),
                        before,
                        "another tenant changed acme: {what}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, ROLE_MATRIX.len() * Role::ALL.len() * 2);
}

#[tokio::test]
async fn every_route_of_the_matrix_is_registered_and_behind_the_layer() {
    let f = Fixture::new();
    for rule in ROLE_MATRIX {
        let method = Method::from_bytes(rule.method.as_bytes()).unwrap();
        let uri = rule.path.replace("{id}", "0123456789abcdef");
        let answer = f.call(method, &uri, None, None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{} {}",
            rule.method,
            rule.path
        );
    }
    // Each (method, path) once.
    let mut seen = std::collections::BTreeSet::new();
    for rule in ROLE_MATRIX {
        assert!(
            seen.insert((rule.method, rule.path)),
            "{} {} twice",
            rule.method,
            rule.path
        );
        assert!(!rule.roles.is_empty());
    }
}

#[tokio::test]
async fn the_portal_and_analyst_roles_change_nothing_anywhere() {
    // The two roles with no write access in this increment.
    for rule in ROLE_MATRIX {
        if rule.method != "GET" {
            assert!(
                !rule.roles.contains(&Role::Analyst),
                "{} {}",
                rule.method,
                rule.path
            );
        }
        assert!(
            !rule.roles.contains(&Role::Portal),
            "{} {}",
            rule.method,
            rule.path
        );
    }
}

#[test]
fn the_matrix_in_docs_api_md_is_the_one_enforced() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
        .expect("docs/api.md");
    let header = "| method | route | operator | marketer | ingest | analyst | portal |";
    let start = doc.find(header).expect("the matrix table");
    let mut documented = std::collections::BTreeSet::new();
    for line in doc[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // ["", method, routes, operator, marketer, ingest, analyst, portal, ""]
        let roles: Vec<Role> = Role::ALL
            .into_iter()
            .zip(&cells[3..8])
            .filter(|(_, cell)| **cell == "✓")
            .map(|(role, _)| role)
            .collect();
        for route in cells[2].split(", ") {
            documented.insert((
                cells[1].to_owned(),
                route.trim_matches('`').to_owned(),
                roles.clone(),
            ));
        }
    }
    let enforced: std::collections::BTreeSet<_> = ROLE_MATRIX
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned(), r.roles.to_vec()))
        .collect();
    assert_eq!(documented, enforced);
}

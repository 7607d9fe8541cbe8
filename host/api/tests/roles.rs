//! The role matrix: every `/v1` route × every role × a token of the
//! route's own tenant and of another tenant. Allowed calls succeed;
//! forbidden ones get 403 and change nothing; another tenant's token never
//! reaches this tenant's data.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::{ACME, Fixture, GLOBEX};
use serde_json::{Value, json};
use tessera_api::{ROLE_MATRIX, Role, RouteRule, app};
use tessera_runtime::{
    Grants, InstallRequest, Limits, MemoryState, PluginKind, Runtime, RuntimeConfig,
};
use tessera_vault::{IdentityKind, Incoming, TraitClass, TraitSpec, TraitType};

/// The fixture with a plugin runtime and the threshold plugin installed
/// in ACME only.
fn fixture() -> Fixture {
    let mut f = Fixture::new();
    let runtime = Runtime::new(RuntimeConfig {
        concurrent_calls: 4,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    f.state = f.state.clone().with_runtime(runtime);
    f.app = app(f.state.clone());
    let host = f.state.plugins.clone().expect("a runtime");
    // Plugin calls block: off the async runtime's thread.
    std::thread::spawn(move || {
        host.install(
            tessera_guests::plugins::THRESHOLD,
            InstallRequest {
                kind: PluginKind::Segment,
                grants: Grants::default(),
                limits: Limits::default(),
                tenant: ACME.into(),
                installation: "threshold".into(),
                state: Arc::new(MemoryState::new()),
            },
        )
        .expect("install");
    })
    .join()
    .expect("installed");
    f
}

/// What a refused call must not change in ACME besides the footprint: its
/// settings (trait schema) and, for rectification, its people's traits.
fn acme_state(f: &Fixture, rule: &RouteRule) -> (String, Vec<(String, String)>) {
    let settings = serde_json::to_string(&f.vault().settings(ACME).unwrap()).unwrap();
    let mut traits = Vec::new();
    if rule.method == "PATCH" {
        let (people, _) = f.vault().people(ACME, None, 100_000).unwrap();
        for person in people {
            traits.push((
                person.subject,
                serde_json::to_string(&person.traits).unwrap(),
            ));
        }
    }
    (settings, traits)
}

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
        "/v1/subjects/lookup" => {
            f.subject(ACME, &member);
            (
                rule.path.into(),
                Some(json!({"kind": "member_id", "value": member})),
            )
        }
        "/v1/subjects/{id}" if rule.method == "PATCH" => {
            let item = Incoming {
                identities: vec![(IdentityKind::MemberId, member.clone())],
                traits: [("tier".to_owned(), json!("gold"))].into(),
                ..Incoming::default()
            };
            let subject = f
                .vault()
                .ingest(ACME, &item, &common::operator())
                .unwrap()
                .subject
                .unwrap();
            (
                format!("/v1/subjects/{subject}"),
                Some(json!({"traits": {"tier": "silver", "city": "Oslo"}})),
            )
        }
        "/v1/subjects/{id}/export" => (
            format!(
                "/v1/subjects/{}/export?format=csv",
                f.subject(ACME, &member)
            ),
            None,
        ),
        "/v1/deletions" => ("/v1/deletions?limit=5".into(), None),
        "/v1/tenant" | "/v1/schema" | "/v1/plugins" => (rule.path.into(), None),
        "/v1/plugins/{name}" => ("/v1/plugins/threshold".into(), None),
        "/v1/schema/traits/{name}" if rule.method == "PUT" => (
            format!("/v1/schema/traits/matrix_{n}"),
            Some(json!({"class": "sensitive", "type": "string"})),
        ),
        "/v1/schema/traits/{name}" => {
            let mut settings = f.vault().settings(ACME).unwrap();
            settings.schema.insert(
                format!("matrix_{n}"),
                TraitSpec {
                    class: TraitClass::Standard,
                    kind: TraitType::Number,
                },
            );
            f.vault()
                .update_settings(ACME, settings, &common::operator())
                .unwrap();
            (format!("/v1/schema/traits/matrix_{n}"), None)
        }
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
    let f = fixture();
    let mut n = 0;
    let mut checked = 0;
    for rule in ROLE_MATRIX {
        let method = Method::from_bytes(rule.method.as_bytes()).unwrap();
        for role in Role::ALL {
            for tenant in [ACME, GLOBEX] {
                n += 1;
                let (uri, body) = request_for(&f, rule, n);
                let before = f.footprint(ACME);
                let state_before = acme_state(&f, rule);
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
                    assert_eq!(
                        acme_state(&f, rule),
                        state_before,
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
                    // A path naming one of ACME's resources names nothing
                    // there (adding a trait to its own schema is fine).
                    let has_id = rule.path.contains('{')
                        && !(rule.method == "PUT" && rule.path == "/v1/schema/traits/{name}");
                    if has_id {
                        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{what}");
                    }
                    assert_eq!(
                        f.footprint(ACME),
                        before,
                        "another tenant changed acme: {what}"
                    );
                    assert_eq!(
                        acme_state(&f, rule),
                        state_before,
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
        let uri = rule
            .path
            .replace("{id}", "0123456789abcdef")
            .replace("{name}", "threshold");
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

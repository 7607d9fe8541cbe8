//! The role matrix: every `/v1` route × every role × a token of the
//! route's own tenant and of another tenant. Allowed calls succeed;
//! forbidden ones get 403 and change nothing; another tenant's token never
//! reaches this tenant's data.

mod common;

use axum::http::{Method, StatusCode};
use common::{ACME, Fixture, GLOBEX};
use serde_json::{Value, json};
use tessera_api::Registry;
use tessera_api::{ROLE_MATRIX, Role, RouteRule};
use tessera_bundle::{Bundle, Kind, PublisherKey, SourceManifest};
use tessera_imports::{Chunking, ImportSpec, ImportStatus, SourceSpec};
use tessera_runtime::RuntimeConfig;
use tessera_runtime::api::types::{FieldValue, Value as PluginValue};
use tessera_segments::{ExportSpec, SegmentSpec};
use tessera_strategies::SendSpec;
use tessera_vault::{EventSpec, IdentityKind, Incoming, TraitClass, TraitSpec, TraitType};

/// The fixture with the plugin registry: the threshold plugin built in for
/// ACME only, and a publisher key both tenants trust.
fn fixture() -> Fixture {
    let (f, registry) = Fixture::with_registry(RuntimeConfig {
        concurrent_calls: 4,
        ..RuntimeConfig::default()
    });
    f.install_campaign_plugins();
    // Plugin calls block: off the async runtime's thread.
    std::thread::spawn(move || {
        // A destination for segment exports and campaign sends, granted
        // their purposes and no receiver: its deliveries become dead
        // letters.
        registry
            .install_builtin_granted(
                ACME,
                tessera_guests::plugins::WEBHOOK_OUT,
                Kind::Connector,
                tessera_plugins::Permissions {
                    purposes: vec!["email_marketing".into(), "personalization".into()],
                    outbound_hosts: vec!["audiences.partner.test".into()],
                    ..tessera_plugins::Permissions::default()
                },
            )
            .expect("install");
        for tenant in [ACME, GLOBEX] {
            registry
                .install_builtin(tenant, tessera_guests::plugins::CSV, Kind::Connector, 0)
                .expect("install");
            registry
                .trust(
                    tenant,
                    &publisher().public().to_string(),
                    "Matrix",
                    &common::operator(),
                )
                .expect("trust");
        }
        // A pull source's connector, granted a host nothing answers on:
        // its pulls start and fail.
        registry
            .install(ACME, &rest_pull_bundle(), false, &common::operator())
            .expect("install rest-pull");
        registry
            .approve(ACME, "rest-pull", None, None, &common::operator())
            .expect("approve rest-pull");
    })
    .join()
    .expect("installed");
    f
}

/// The rest-pull connector, signed, asking for a host nothing answers on.
fn rest_pull_bundle() -> Vec<u8> {
    let source: SourceManifest = serde_json::from_value(json!({
        "publisher": "Matrix",
        "version": "0.1.0",
        "plugins": [{
            "name": "rest-pull",
            "kind": "connector",
            "wit_version": "0.1.0",
            "component": "rest-pull.wasm",
            "permissions": {"outbound_hosts": ["http://127.0.0.1:9"]},
        }]
    }))
    .expect("manifest");
    let mut bundle =
        Bundle::build(source, vec![tessera_guests::plugins::REST_PULL.to_vec()]).expect("bundle");
    bundle.sign(publisher());
    bundle.to_bytes()
}

/// Waits until no pull of ACME runs (a pull runs in the background after
/// its call answers, and writes to the audit trail when it ends).
fn settle_pulls(f: &Fixture) {
    let desk = f.state.imports.clone().expect("imports");
    for _ in 0..400 {
        let running = std::thread::scope(|s| {
            s.spawn(|| {
                desk.importer()
                    .imports(ACME)
                    .expect("imports")
                    .iter()
                    .any(|r| r.chunking == Chunking::Pages && r.status == ImportStatus::Running)
            })
            .join()
            .expect("no panic")
        });
        if !running {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("a pull of the matrix did not end within 10 s");
}

fn publisher() -> &'static PublisherKey {
    static KEY: std::sync::OnceLock<PublisherKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| PublisherKey::generate().expect("key"))
}

/// A signed bundle of the `versioned` test plugin: version 1 or 2.
fn versioned_bundle(v2: bool, version: &str) -> Vec<u8> {
    let (path, traits): (&str, &[&str]) = if v2 {
        (
            tessera_guests::test_programs::VERSIONED_V2,
            &["country", "email"],
        )
    } else {
        (tessera_guests::test_programs::VERSIONED, &["country"])
    };
    let source: SourceManifest = serde_json::from_value(json!({
        "publisher": "Matrix",
        "version": version,
        "plugins": [{
            "name": "versioned",
            "kind": "segment",
            "wit_version": "0.1.0",
            "component": "versioned.wasm",
            "permissions": { "traits": traits, "pii": ["email"], "purposes": ["analytics"] },
        }]
    }))
    .expect("manifest");
    let mut bundle =
        Bundle::build(source, vec![std::fs::read(path).expect("component")]).expect("bundle");
    bundle.sign(publisher());
    bundle.to_bytes()
}

/// Registry work from a test: on a thread of its own (plugin work blocks).
fn with_registry<T: Send>(f: &Fixture, work: impl FnOnce(&Registry) -> T + Send) -> T {
    let registry = f.state.plugins.clone().expect("a registry");
    std::thread::scope(|s| s.spawn(move || work(&registry)).join().expect("no panic"))
}

/// Puts the `versioned` plugin of ACME in the state a lifecycle route
/// needs, and makes sure GLOBEX has none (so that ACME's names name nothing
/// there).
fn versioned(f: &Fixture, rule: &RouteRule) {
    let operator = common::operator();
    with_registry(f, |registry| {
        for tenant in [ACME, GLOBEX] {
            if registry.entry(tenant, "versioned").is_ok() {
                registry
                    .remove(tenant, "versioned", &operator)
                    .expect("remove");
            }
        }
        if rule.path == "/v1/plugins" {
            return;
        }
        registry
            .install(ACME, &versioned_bundle(false, "1.0.0"), false, &operator)
            .expect("install");
        if rule.path.ends_with("/approve") {
            return;
        }
        registry
            .approve(ACME, "versioned", None, None, &operator)
            .expect("approve");
        if rule.path.ends_with("/rollback") {
            registry
                .upgrade(
                    ACME,
                    "versioned",
                    &versioned_bundle(false, "1.1.0"),
                    false,
                    &operator,
                )
                .expect("upgrade");
        }
        if rule.path.ends_with("/reject") {
            // An upgrade that asks for more waits, to be rejected.
            registry
                .upgrade(
                    ACME,
                    "versioned",
                    &versioned_bundle(true, "2.0.0"),
                    false,
                    &operator,
                )
                .expect("upgrade");
        }
        if rule.path.ends_with("/release") {
            registry
                .quarantine(ACME, "versioned", "matrix", &operator)
                .expect("quarantine");
        }
    });
}

/// A CSV import spec for the matrix: one good row and one with a bad date.
fn import_spec() -> ImportSpec {
    let mapping = r#"{"source": "matrix", "timezone": "+00:00", "identities": {"member": "member_id"},
        "event": {"type": "purchase", "time": {"column": "at", "format": "%Y-%m-%d"}},
        "source_id": {"column": "receipt"}}"#;
    ImportSpec {
        connector: "csv".into(),
        params: vec![FieldValue {
            name: "mapping".into(),
            value: PluginValue::Text(mapping.into()),
        }],
        chunking: Chunking::Csv,
        source: "matrix.csv".into(),
        channel: None,
    }
}

const IMPORT_FILE: &str =
    "receipt,member,at\nm1,matrix-import,2026-03-01\nm2,matrix-import,2026-13-01\n";

/// An import of ACME waiting for its data from the ACME token of `waiting`
/// (a role that has no API token: an operator), or (`None`) imported with
/// one dead letter: its id and the letter's.
fn acme_import(f: &Fixture, waiting: Option<Role>) -> (String, String) {
    let desk = f.state.imports.clone().expect("imports");
    let creator = waiting.map(|role| {
        let role = if role == Role::Subject {
            Role::Operator
        } else {
            role
        };
        f.state
            .tokens
            .verify(f.token(ACME, role))
            .expect("store")
            .expect("a valid token")
            .actor()
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(creator) = &creator {
                let record = desk.create(ACME, import_spec(), creator).expect("create");
                return (record.id, String::new());
            }
            let record = desk
                .importer()
                .run(
                    ACME,
                    import_spec(),
                    IMPORT_FILE.as_bytes(),
                    &common::operator(),
                    |_| {},
                )
                .expect("import");
            let letters = desk
                .importer()
                .dead_letters(ACME, &record.id, None, 10)
                .expect("letters");
            (record.id, letters[0].id.clone())
        })
        .join()
        .expect("no panic")
    })
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

/// A valid request for `rule` on ACME's resources.
struct Call {
    uri: String,
    body: Option<Value>,
    /// A bundle, sent as `application/octet-stream` instead of `body`.
    bundle: Option<Vec<u8>>,
    /// For `/v1/me` routes: a subject token of the ACME person whose
    /// resources the URI names (issued before any erasure).
    subject_token: Option<String>,
}

fn request_for(f: &Fixture, rule: &RouteRule, role: Role, n: usize) -> Call {
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
    let call = |uri: String, body: Option<Value>| Call {
        uri,
        body,
        bundle: None,
        subject_token: None,
    };
    if rule.path.starts_with("/v1/me") {
        let subject = f.subject(ACME, &member);
        let subject_token = Some(f.subject_token(ACME, &subject));
        let (uri, body) = match rule.path {
            "/v1/me/traits" => (
                rule.path.into(),
                Some(json!({"traits": {"city": "Matrix"}})),
            ),
            "/v1/me/export" => ("/v1/me/export?format=json".into(), None),
            "/v1/me/deletions/{id}" => {
                let request = f
                    .vault()
                    .request_deletion(ACME, &subject, "test", &common::operator())
                    .unwrap();
                (format!("/v1/me/deletions/{}", request.id), None)
            }
            "/v1/me/consents/{purpose}" => (
                "/v1/me/consents/analytics".into(),
                Some(json!({"granted": true})),
            ),
            "/v1/me/apps/{id}" => {
                let app = tessera_vault::LinkedApp {
                    app: format!("matrix-app-{n}"),
                    name: "Matrix".into(),
                    scopes: Vec::new(),
                    granted_at_ms: 0,
                };
                f.vault()
                    .link_app(ACME, &subject, &app, &common::operator())
                    .unwrap();
                (format!("/v1/me/apps/{}", app.app), None)
            }
            "/v1/me/retention" if rule.method == "PUT" => {
                (rule.path.into(), Some(json!({"days": 100})))
            }
            path => (path.into(), None),
        };
        return Call {
            uri,
            body,
            bundle: None,
            subject_token,
        };
    }
    match rule.path {
        "/v1/subjects/lookup" => {
            f.subject(ACME, &member);
            call(
                rule.path.into(),
                Some(json!({"kind": "member_id", "value": member})),
            )
        }
        "/v1/subjects/{id}/identities/confirm" => call(
            format!(
                "/v1/subjects/{}/identities/confirm",
                f.subject(ACME, &member)
            ),
            Some(json!({"kind": "member_id", "value": member})),
        ),
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
            call(
                format!("/v1/subjects/{subject}"),
                Some(json!({"traits": {"tier": "silver", "city": "Oslo"}})),
            )
        }
        "/v1/subjects/{id}/export" => call(
            format!(
                "/v1/subjects/{}/export?format=csv",
                f.subject(ACME, &member)
            ),
            None,
        ),
        "/v1/deletions" => call("/v1/deletions?limit=5".into(), None),
        "/v1/tenant" | "/v1/schema" => call(rule.path.into(), None),
        "/v1/plugins" if rule.method == "GET" => call(rule.path.into(), None),
        "/v1/plugins/{name}" if rule.method == "GET" => call("/v1/plugins/threshold".into(), None),
        "/v1/plugins" if rule.method == "POST" => {
            versioned(f, rule);
            Call {
                bundle: Some(versioned_bundle(false, "1.0.0")),
                ..call(rule.path.into(), None)
            }
        }
        "/v1/plugins/{name}/upgrade" => {
            versioned(f, rule);
            Call {
                bundle: Some(versioned_bundle(true, "2.0.0")),
                ..call("/v1/plugins/versioned/upgrade".into(), None)
            }
        }
        path if path.starts_with("/v1/plugins/{name}") => {
            versioned(f, rule);
            let uri = path.replace("{name}", "versioned");
            let body = match path {
                "/v1/plugins/{name}/approve" => Some(json!({})),
                "/v1/plugins/{name}/reject" => Some(json!({"reason": "matrix"})),
                "/v1/plugins/{name}/quarantine" => Some(json!({"reason": "matrix"})),
                _ => None,
            };
            call(uri, body)
        }
        "/v1/publishers" if rule.method == "POST" => call(
            rule.path.into(),
            Some(json!({
                "public_key": PublisherKey::generate().unwrap().public().to_string(),
                "name": format!("Publisher {n}"),
            })),
        ),
        "/v1/publishers" => call(rule.path.into(), None),
        "/v1/publishers/{key_id}" => {
            let key = PublisherKey::generate().unwrap().public().to_string();
            let record = with_registry(f, |r| {
                r.trust(ACME, &key, "Doomed", &common::operator())
                    .expect("trust")
            });
            call(format!("/v1/publishers/{}", record.key_id), None)
        }
        "/v1/schema/traits/{name}" if rule.method == "PUT" => call(
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
                    pii_class: None,
                    allowed: Vec::new(),
                },
            );
            f.vault()
                .update_settings(ACME, settings, &common::operator())
                .unwrap();
            call(format!("/v1/schema/traits/matrix_{n}"), None)
        }
        "/v1/schema/events/{type}" if rule.method == "PUT" => call(
            format!("/v1/schema/events/matrix_{n}"),
            Some(json!({"properties": {"amount": {"type": "number", "required": true}}})),
        ),
        "/v1/schema/events/{type}" => {
            let mut settings = f.vault().settings(ACME).unwrap();
            settings
                .events
                .insert(format!("matrix_{n}"), EventSpec::default());
            f.vault()
                .update_settings(ACME, settings, &common::operator())
                .unwrap();
            call(format!("/v1/schema/events/matrix_{n}"), None)
        }
        "/v1/tokens" if rule.method == "POST" => call(
            rule.path.into(),
            Some(json!({"role": "analyst", "name": format!("matrix {n}")})),
        ),
        "/v1/tokens" => call(rule.path.into(), None),
        "/v1/tokens/{id}" => {
            let created = f
                .state
                .tokens
                .create(ACME, Role::Analyst, "victim", &common::operator())
                .unwrap();
            call(format!("/v1/tokens/{}", created.info.id), None)
        }
        "/v1/subjects/{id}" => call(format!("/v1/subjects/{}", f.subject(ACME, &member)), None),
        "/v1/deletions/{id}" => {
            let subject = f.subject(ACME, &member);
            let request = f
                .vault()
                .request_deletion(ACME, &subject, "test", &common::operator())
                .unwrap();
            call(format!("/v1/deletions/{}", request.id), None)
        }
        "/v1/subject-tokens" => call(
            rule.path.into(),
            Some(json!({"subject": f.subject(ACME, &member)})),
        ),
        "/v1/audit" => call("/v1/audit?from=1&limit=10".into(), None),
        "/v1/rules/check" => call(
            rule.path.into(),
            Some(json!({"rule": "trait.city = \"Oslo\" and trait.tier in [\"gold\"]"})),
        ),
        "/v1/profiles/{id}" => call(format!("/v1/profiles/{}", f.subject(ACME, &member)), None),
        "/v1/segments" => call(rule.path.into(), None),
        "/v1/segments/preview" => call(
            rule.path.into(),
            Some(json!({"plugin": "threshold", "params": {"threshold": 100}})),
        ),
        "/v1/segments/{name}" if rule.method == "PUT" => call(
            format!("/v1/segments/matrix-{n}"),
            Some(json!({"plugin": "threshold", "params": {"threshold": 100}})),
        ),
        "/v1/catalog" | "/v1/campaigns" => call(rule.path.into(), None),
        "/v1/campaigns/{name}" if rule.method == "PUT" => {
            matrix_segment(f);
            call(format!("/v1/campaigns/matrix-{n}"), Some(matrix_spec()))
        }
        "/v1/simulate" => {
            matrix_segment(f);
            call(rule.path.into(), Some(matrix_spec()))
        }
        path if path.starts_with("/v1/campaigns/{name}/sends") => {
            let name = format!("matrix-{n}");
            matrix_campaign(f, &name, true, n);
            let uri = path.replace("{name}", &name);
            if rule.method == "POST" {
                return call(uri, Some(export_body()));
            }
            if path.ends_with("/{id}") {
                let strategies = f.state.strategies.clone().expect("strategies");
                let deliverer = f.state.deliverer.clone().expect("deliverer");
                let id = std::thread::spawn(move || {
                    let spec = SendSpec {
                        connector: "webhook-out".into(),
                        params: vec![FieldValue {
                            name: "url".into(),
                            value: PluginValue::Text("http://127.0.0.1:9/audience".into()),
                        }],
                        recipient: IdentityKind::MemberId,
                        channel: "email".into(),
                    };
                    let (send, _) = strategies
                        .start_send(&deliverer, ACME, &name, spec, &common::operator())
                        .expect("send");
                    send.id
                })
                .join()
                .expect("no panic");
                return call(uri.replace("{id}", &id), None);
            }
            call(uri, None)
        }
        path if path.starts_with("/v1/campaigns/{name}") => {
            let name = format!("matrix-{n}");
            let shadow = path.ends_with("/shadow");
            let running = path.ends_with("/status") || shadow;
            let subject = matrix_campaign(f, &name, running, n);
            if shadow {
                // Two decisions to weigh the shadow on.
                let strategies = f.state.strategies.clone().expect("strategies");
                let campaign = name.clone();
                std::thread::spawn(move || {
                    for _ in 0..2 {
                        strategies
                            .decide(
                                ACME,
                                &tessera_strategies::DecideRequest {
                                    campaign: campaign.clone(),
                                    subject: subject.clone(),
                                    channel: "web".into(),
                                    attributes: Vec::new(),
                                },
                            )
                            .expect("decide");
                    }
                })
                .join()
                .expect("no panic");
            }
            // Paused from running: a transition every staff role may ask.
            let body = running.then(|| json!({"status": "paused"}));
            call(path.replace("{name}", &name), body)
        }
        "/v1/decide" | "/v1/feedback" => {
            let name = format!("matrix-{n}");
            let subject = matrix_campaign(f, &name, true, n);
            let strategies = f.state.strategies.clone().expect("strategies");
            let (campaign, person) = (name.clone(), subject.clone());
            let decision = std::thread::spawn(move || {
                match strategies
                    .decide(
                        ACME,
                        &tessera_strategies::DecideRequest {
                            campaign,
                            subject: person,
                            channel: "web".into(),
                            attributes: Vec::new(),
                        },
                    )
                    .expect("decide")
                {
                    tessera_strategies::DecisionOutcome::Logged(record) => record.id,
                    other => panic!("no decision: {other:?}"),
                }
            })
            .join()
            .expect("no panic");
            if rule.path == "/v1/decide" {
                call(
                    rule.path.into(),
                    Some(json!({"campaign": name, "subject": subject})),
                )
            } else {
                call(
                    rule.path.into(),
                    Some(json!({"decision": decision, "kind": "impression"})),
                )
            }
        }
        path if path.starts_with("/v1/segments/{name}") => {
            let name = format!("matrix-{n}");
            let segments = f.state.segments.clone().expect("segments");
            let saved = name.clone();
            std::thread::spawn(move || {
                segments
                    .put(
                        ACME,
                        &saved,
                        SegmentSpec {
                            plugin: "threshold".into(),
                            params: vec![FieldValue {
                                name: "threshold".into(),
                                value: PluginValue::Number(100.0),
                            }],
                            ..SegmentSpec::default()
                        },
                        &common::operator(),
                    )
                    .expect("segment")
            })
            .join()
            .expect("no panic");
            let uri = path.replace("{name}", &name);
            if path.ends_with("/exports") && rule.method == "POST" {
                return call(uri, Some(export_body()));
            }
            if path.ends_with("/exports/{id}") {
                let segments = f.state.segments.clone().expect("segments");
                let deliverer = f.state.deliverer.clone().expect("deliverer");
                let id = std::thread::spawn(move || {
                    let spec = ExportSpec {
                        connector: "webhook-out".into(),
                        params: vec![FieldValue {
                            name: "url".into(),
                            value: PluginValue::Text("http://127.0.0.1:9/audience".into()),
                        }],
                        recipient: IdentityKind::MemberId,
                    };
                    let (export, _) = segments
                        .start_export(&deliverer, ACME, &name, spec, &common::operator())
                        .expect("export");
                    export.id
                })
                .join()
                .expect("no panic");
                return call(uri.replace("{id}", &id), None);
            }
            call(uri, None)
        }
        "/v1/imports" if rule.method == "POST" => call(
            rule.path.into(),
            Some(json!({
                "connector": "csv",
                "chunking": "csv",
                "params": {"mapping": {"source": "matrix", "timezone": "+00:00", "identities": {"member": "member_id"},
                    "event": {"type": "purchase", "time": {"column": "at", "format": "%Y-%m-%d"}}}},
            })),
        ),
        "/v1/imports" => call(rule.path.into(), None),
        "/v1/imports/{id}/data" => {
            // Created by the caller's ACME token: only it sends the data.
            let (id, _) = acme_import(f, Some(role));
            Call {
                bundle: Some(IMPORT_FILE.as_bytes().to_vec()),
                ..call(format!("/v1/imports/{id}/data"), None)
            }
        }
        "/v1/sources" => call(rule.path.into(), None),
        "/v1/sources/{name}" if rule.method == "PUT" => call(
            format!("/v1/sources/matrix-{n}"),
            Some(
                json!({"connector": "csv", "chunking": "csv", "params": {"mapping": {
                "source": "matrix", "timezone": "+00:00", "identities": {"member": "member_id"},
                "event": {"type": "purchase", "time": {"column": "at", "format": "%Y-%m-%d"}}}}}),
            ),
        ),
        path if path.starts_with("/v1/sources/{name}") => {
            let name = format!("matrix-{n}");
            let pull = path.ends_with("/pull") || path.ends_with("/cursor");
            if pull {
                settle_pulls(f);
            }
            let desk = f.state.imports.clone().expect("imports");
            std::thread::scope(|s| {
                s.spawn(|| {
                    let spec = if pull {
                        SourceSpec {
                            connector: "rest-pull".into(),
                            params: vec![FieldValue {
                                name: "url".into(),
                                value: PluginValue::Text("http://127.0.0.1:9/items".into()),
                            }],
                            chunking: Chunking::Whole,
                            channel: None,
                        }
                    } else {
                        let spec = import_spec();
                        SourceSpec {
                            connector: spec.connector,
                            params: spec.params,
                            chunking: spec.chunking,
                            channel: None,
                        }
                    };
                    desk.importer()
                        .put_source(ACME, &name, spec, &common::operator())
                        .expect("source")
                })
                .join()
                .expect("no panic")
            });
            let uri = path.replace("{name}", &name);
            if path.ends_with("/push") {
                Call {
                    bundle: Some(IMPORT_FILE.as_bytes().to_vec()),
                    ..call(uri, None)
                }
            } else if pull {
                call(uri, Some(json!({"max_pages": 1})))
            } else {
                call(uri, None)
            }
        }
        path if path.starts_with("/v1/imports/{id}") => {
            let (id, letter) = acme_import(f, None);
            let uri = path.replace("{id}", &id).replace("{letter}", &letter);
            let body = match (rule.method, path) {
                ("PUT", _) => Some(json!({"raw": "m2,matrix-import,2026-12-01\n"})),
                ("POST", _) => Some(json!({})),
                _ => None,
            };
            call(uri, body)
        }
        "/v1/batch" => call(rule.path.into(), Some(json!({"batch": [message("track")]}))),
        "/v1/events" => call(rule.path.into(), Some(message("track"))),
        path => {
            let kind = path.trim_start_matches("/v1/");
            call(path.into(), Some(message(kind)))
        }
    }
}

/// The segment campaigns target: people who spent 100 or more.
const MATRIX_SEGMENT: &str = "matrix-campaigns";

/// A campaign of epsilon-greedy on [`MATRIX_SEGMENT`], as the API takes it.
fn matrix_spec() -> Value {
    json!({"strategy": "epsilon-greedy", "segment": MATRIX_SEGMENT, "goal": {"event": "purchase"}})
}

/// Saves [`MATRIX_SEGMENT`] (once).
fn matrix_segment(f: &Fixture) {
    let segments = f.state.segments.clone().expect("segments");
    std::thread::spawn(move || {
        if segments.get(ACME, MATRIX_SEGMENT).is_err() {
            segments
                .put(
                    ACME,
                    MATRIX_SEGMENT,
                    SegmentSpec {
                        plugin: "threshold".into(),
                        params: vec![FieldValue {
                            name: "threshold".into(),
                            value: PluginValue::Number(100.0),
                        }],
                        purpose: Some("personalization".into()),
                        ..SegmentSpec::default()
                    },
                    &common::operator(),
                )
                .expect("segment");
        }
    })
    .join()
    .expect("no panic");
}

/// A campaign `name` of epsilon-greedy on [`MATRIX_SEGMENT`], simulated
/// (and running with `running`), with a person of the segment who
/// consents; returns the person's subject id.
fn matrix_campaign(f: &Fixture, name: &str, running: bool, n: usize) -> String {
    matrix_segment(f);
    let strategies = f.state.strategies.clone().expect("strategies");
    let segments = f.state.segments.clone().expect("segments");
    let vault = f.state.vault.clone();
    let name = name.to_owned();
    std::thread::spawn(move || {
        let (_, outcomes) = vault
            .ingest_batch(
                ACME,
                &[Incoming {
                    identities: vec![(IdentityKind::MemberId, format!("matrix-buyer-{n}"))],
                    traits: std::collections::BTreeMap::from([(
                        "total_spend".to_owned(),
                        json!(500),
                    )]),
                    events: Vec::new(),
                    consents: vec![tessera_vault::ConsentChange {
                        purpose: "personalization".into(),
                        granted: true,
                        method: "web_form".into(),
                        given_at_ms: None,
                    }],
                }],
                &common::operator(),
            )
            .expect("person");
        let subject = outcomes[0].subject.clone().expect("subject");
        segments.recompute(ACME, MATRIX_SEGMENT).expect("recompute");
        strategies
            .put(
                ACME,
                &name,
                tessera_strategies::CampaignSpec {
                    strategy: "epsilon-greedy".into(),
                    params: Vec::new(),
                    segment: MATRIX_SEGMENT.into(),
                    purpose: None,
                    holdout: 0.0,
                    frequency_cap: None,
                    budget: None,
                    starts_at_ms: None,
                    ends_at_ms: None,
                    goal: tessera_strategies::Goal {
                        event: "purchase".into(),
                        value: None,
                        window_days: 7,
                        source: tessera_strategies::GoalSource::Events,
                    },
                    fallback: None,
                    shadow: Some(("epsilon-greedy".into(), Vec::new())),
                    description: String::new(),
                },
                &common::operator(),
            )
            .expect("campaign");
        if running {
            strategies
                .simulate(ACME, &name, None, &common::operator())
                .expect("simulate");
            strategies
                .transition(
                    ACME,
                    &name,
                    tessera_strategies::CampaignStatus::Running,
                    &common::operator(),
                )
                .expect("running");
        }
        subject
    })
    .join()
    .expect("no panic")
}

/// Waits until no export of ACME runs.
fn settle_exports(f: &Fixture) {
    let segments = f.state.segments.clone().expect("segments");
    for _ in 0..500 {
        let running = std::thread::scope(|s| {
            s.spawn(|| segments.exports(ACME, None).expect("exports"))
                .join()
                .expect("no panic")
        })
        .iter()
        .any(|e| e.status == tessera_segments::ExportStatus::Running);
        if !running {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("an export still runs after 5 s");
}

/// Waits until the send an answer shows has ended (it runs in the
/// background and writes to ACME when it ends).
fn settle_send(f: &Fixture, answer: &Value) {
    let strategies = f.state.strategies.clone().expect("strategies");
    let campaign = answer["campaign"].as_str().expect("a send").to_owned();
    let id = answer["id"].as_str().expect("a send").to_owned();
    for _ in 0..500 {
        let status = std::thread::scope(|s| {
            s.spawn(|| strategies.send(ACME, &campaign, &id).expect("send"))
                .join()
                .expect("no panic")
        })
        .status;
        if status != tessera_strategies::SendStatus::Running {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("send {id} still runs after 5 s");
}

/// A segment export to the fixture's destination, which reaches no one
/// (also the body of a campaign send).
fn export_body() -> Value {
    json!({"connector": "webhook-out", "recipient": "member_id",
           "params": {"url": "http://127.0.0.1:9/audience"}})
}

/// The token a caller of `role` in `tenant` presents: the fixture's API
/// token, or for a subject a token of the person the call is about (ACME)
/// or of a person of their own (another tenant).
fn token_for(f: &Fixture, call: &Call, role: Role, tenant: &str, n: usize) -> String {
    if role != Role::Subject {
        return f.token(tenant, role).to_owned();
    }
    if tenant == ACME
        && let Some(token) = &call.subject_token
    {
        return token.clone();
    }
    let subject = f.subject(tenant, &format!("matrix-caller-{n}"));
    f.subject_token(tenant, &subject)
}

#[tokio::test]
async fn every_route_every_role_own_and_other_tenant() {
    let f = fixture();
    let mut n = 0;
    let mut checked = 0;
    for rule in ROLE_MATRIX {
        let method = Method::from_bytes(rule.method.as_bytes()).unwrap();
        for role in Role::CALLERS {
            for tenant in [ACME, GLOBEX] {
                n += 1;
                let call = request_for(&f, rule, role, n);
                let token = token_for(&f, &call, role, tenant, n);
                let before = f.footprint(ACME);
                let state_before = acme_state(&f, rule);
                let uri = call.uri;
                let answer = match call.bundle {
                    Some(bundle) => f.send_bundle(method.clone(), &uri, &token, bundle).await,
                    None => f.call(method.clone(), &uri, Some(&token), call.body).await,
                };
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
                    if rule.path.ends_with("/exports") && rule.method == "POST" {
                        // Its run writes to ACME in the background: done
                        // before the next call compares ACME's footprint.
                        settle_exports(&f);
                    }
                    if rule.path.ends_with("/sends") && rule.method == "POST" {
                        settle_send(&f, &answer.body);
                    }
                } else {
                    // Another tenant's token acts on its own tenant only:
                    // ACME's ids name nothing there, and ACME is unchanged
                    // (its ingest calls land in GLOBEX, its subject's
                    // `/v1/me` calls on that subject).
                    assert!(
                        answer.status.is_success() || answer.status == StatusCode::NOT_FOUND,
                        "{what}"
                    );
                    // A path naming one of ACME's resources names nothing
                    // there (adding a trait or an event type to its own
                    // schema, or a webhook source of its own, is fine, and
                    // a purpose is the same word in every tenant).
                    let has_id = rule.path.contains('{')
                        && !(rule.method == "PUT"
                            && (rule.path.starts_with("/v1/schema/")
                                || rule.path.starts_with("/v1/sources/")))
                        && !rule.path.contains("{purpose}");
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
    assert_eq!(checked, ROLE_MATRIX.len() * Role::CALLERS.len() * 2);
}

#[tokio::test]
async fn every_route_of_the_matrix_is_registered_and_behind_the_layer() {
    let f = Fixture::new();
    for rule in ROLE_MATRIX {
        let method = Method::from_bytes(rule.method.as_bytes()).unwrap();
        let uri = rule
            .path
            .replace("{id}", "0123456789abcdef")
            .replace("{name}", "threshold")
            .replace("{purpose}", "analytics")
            .replace("{letter}", "0123456789abcdef:1");
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
async fn the_portal_only_issues_subject_tokens_and_subjects_reach_only_v1_me() {
    for rule in ROLE_MATRIX {
        let what = format!("{} {}", rule.method, rule.path);
        if rule.method != "GET" {
            assert!(!rule.roles.contains(&Role::Analyst), "{what}");
        }
        assert_eq!(
            rule.roles.contains(&Role::Portal),
            rule.path == "/v1/subject-tokens",
            "{what}"
        );
        // `/v1/me` is the subject's alone, and the subject has nothing else.
        let me = rule.path == "/v1/me" || rule.path.starts_with("/v1/me/");
        assert_eq!(rule.roles.contains(&Role::Subject), me, "{what}");
        if me {
            assert_eq!(rule.roles, [Role::Subject], "{what}");
        }
    }
    assert!(
        !Role::ALL.contains(&Role::Subject),
        "no API token is a subject's"
    );
    assert_eq!(Role::parse("subject"), None);
}

#[test]
fn the_matrix_in_docs_api_md_is_the_one_enforced() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
        .expect("docs/api.md");
    let header = "| method | route | operator | marketer | ingest | analyst | portal | subject |";
    let start = doc.find(header).expect("the matrix table");
    let mut documented = std::collections::BTreeSet::new();
    for line in doc[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // ["", method, routes, operator, marketer, ingest, analyst, portal, subject, ""]
        let roles: Vec<Role> = Role::CALLERS
            .into_iter()
            .zip(&cells[3..cells.len().min(9)])
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

//! Parameter-dependent columns (`tessera:plan`): a segment that plans its
//! columns from its parameters gets exactly those, granted column by column
//! as declared ones are; a v0.1 segment without the export is served from
//! its manifest; a plan that reads what is not granted is reported before a
//! segment is saved; malformed and trapping plans are refused by the host.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use tessera_bundle::{Bundle, Permissions, PublisherKey, SourceManifest};
use tessera_guests::test_programs::{PLAIN_SEGMENT, PLAN_PROBE, QUERY_PROBE};
use tessera_plugins::{NeedKind, Registry, RegistryError, Subjects, Ungranted};
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{AggregateFn, AggregateSpec, ColumnData, FieldValue, Value};
use tessera_runtime::{CallError, Needs, Runtime, RuntimeConfig, TrapReason};
use tessera_store::SledStore;
use tessera_vault::{
    Actor, Channel, ConsentChange, IdentityKind, Incoming, NewEvent, TenantSettings, Vault,
};

const TENANT: &str = "acme";
/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000_000;
const DAY_MS: i64 = 86_400_000;

fn operator() -> Actor {
    Actor::new("operator", "ops@acme")
}

struct Fixture {
    _dir: tempfile::TempDir,
    vault: Arc<Vault>,
    registry: Registry,
    key: PublisherKey,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SledStore::open(dir.path().join("data")).expect("store"));
        let vault = Vault::new(
            store,
            dir.path().join("keys"),
            MasterKey::generate().expect("master key"),
        )
        .expect("vault")
        .with_clock(Arc::new(|| NOW));
        vault
            .create_tenant(TENANT, TenantSettings::default(), &operator())
            .expect("tenant");
        let vault = Arc::new(vault);
        let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
        let registry = Registry::new(runtime, vault.clone(), false);
        let key = PublisherKey::generate().expect("publisher key");
        registry
            .trust(
                TENANT,
                &key.public().to_string(),
                "Acme Analytics",
                &operator(),
            )
            .expect("trust");
        Fixture {
            _dir: dir,
            vault,
            registry,
            key,
        }
    }

    /// Installs the guest at `path` as segment plugin `name`, asking for
    /// these traits and events for analytics, and approves `granted` of it
    /// (`None`: all).
    fn install(
        &self,
        path: &str,
        name: &str,
        traits: &[&str],
        events: &[&str],
        granted: Option<Permissions>,
    ) {
        let source: SourceManifest = serde_json::from_value(json!({
            "publisher": "Acme Analytics",
            "version": "1.0.0",
            "plugins": [{
                "name": name,
                "kind": "segment",
                "wit_version": "0.1.0",
                "description": "plan fixture",
                "component": format!("{name}.wasm"),
                "permissions": {
                    "traits": traits,
                    "events": events,
                    "purposes": ["analytics"],
                },
            }]
        }))
        .expect("bundle manifest");
        let component = std::fs::read(path).expect("guest component");
        let mut bundle = Bundle::build(source, vec![component]).expect("bundle");
        bundle.sign(&self.key);
        self.registry
            .install(TENANT, &bundle.to_bytes(), false, &operator())
            .expect("install");
        self.registry
            .approve(TENANT, name, granted, None, &operator())
            .expect("approve");
    }

    /// A consenting person from `city` in `country` with a purchase this
    /// many days ago for each entry of `purchases`.
    fn person(&self, member: &str, city: &str, country: &str, purchases: &[i64]) -> String {
        let events = purchases
            .iter()
            .map(|days| NewEvent {
                source_id: Some(format!("{member}-{days}")),
                event_type: "purchase".into(),
                at_ms: NOW - days * DAY_MS,
                channel: Channel::Online,
                properties: BTreeMap::from([("amount".to_owned(), json!(10.0))]),
            })
            .collect();
        let item = Incoming {
            identities: vec![(IdentityKind::MemberId, member.to_owned())],
            traits: BTreeMap::from([
                ("city".to_owned(), json!(city)),
                ("country".to_owned(), json!(country)),
            ]),
            events,
            consents: vec![ConsentChange {
                purpose: "analytics".into(),
                granted: true,
                method: "portal".into(),
                given_at_ms: None,
            }],
        };
        self.vault
            .ingest(TENANT, &item, &Actor::new("ingest", "pipeline"))
            .expect("ingest")
            .subject
            .expect("a subject")
    }

    /// Three people: Ada bought 3, 10 and 40 days ago; Bob 5 days ago;
    /// Cy 50 and 60 days ago.
    fn people(&self) -> Vec<String> {
        vec![
            self.person("ada", "Oslo", "NO", &[3, 10, 40]),
            self.person("bob", "Paris", "FR", &[5]),
            self.person("cy", "Oslo", "NO", &[50, 60]),
        ]
    }

    /// The `plugin.read` audit entry's fields of a view.
    fn audited_fields(&self, seq: u64) -> Vec<String> {
        let entries = self
            .vault
            .audit_entries(TENANT, seq, 1)
            .expect("audit entries");
        assert_eq!(entries[0].action, "plugin.read");
        entries[0].fields.clone()
    }
}

fn param(name: &str, value: Value) -> FieldValue {
    FieldValue {
        name: name.into(),
        value,
    }
}

/// `plan-probe`'s parameters: count `event`, within `window` days if given,
/// members from `at_least`, and more (`trait`, `plan`).
fn probe(
    event: &str,
    window: Option<i64>,
    at_least: i64,
    more: &[(&str, &str)],
) -> Vec<FieldValue> {
    let mut params = vec![
        param("event", Value::Text(event.into())),
        param("at-least", Value::Integer(at_least)),
    ];
    if let Some(days) = window {
        params.push(param("window", Value::Integer(days)));
    }
    for (name, text) in more {
        params.push(param(name, Value::Text((*text).into())));
    }
    params
}

fn count(name: &str, window_days: Option<u32>) -> AggregateSpec {
    AggregateSpec {
        name: name.into(),
        event_type: "purchase".into(),
        function: AggregateFn::Count,
        property: None,
        window_days,
    }
}

/// The integers of a column, `None` where missing.
fn integers(column: &tessera_runtime::api::types::Column) -> Vec<Option<i64>> {
    let ColumnData::Integer(values) = &column.data else {
        panic!("an integer column, got {:?}", column.data)
    };
    values
        .iter()
        .enumerate()
        .map(|(row, v)| (column.present.is_empty() || column.present[row] == 1).then_some(*v))
        .collect()
}

fn members(out: &[(String, bool)]) -> Vec<&str> {
    out.iter()
        .filter(|(_, member)| *member)
        .map(|(subject, _)| subject.as_str())
        .collect()
}

#[test]
fn a_planned_segment_gets_exactly_the_columns_it_plans_for_its_parameters() {
    let f = Fixture::new();
    f.install(PLAN_PROBE, "plan-probe", &[], &["purchase"], None);
    let people = f.people();
    let all = Subjects::Ids(&people);
    let live = f.registry.callable(TENANT, "plan-probe").expect("live");
    let info = live.plugin.info();
    assert!(info.plans, "the SDK exports the plan interface");
    assert!(info.manifest.fields.is_empty() && info.manifest.aggregates.is_empty());

    // The plan, straight from the plugin, for validated parameters.
    let params = live
        .plugin
        .validate(&probe("purchase", Some(30), 2, &[]))
        .expect("valid parameters");
    let planned = live.plugin.plan(&params).expect("plan");
    assert!(planned.cost.fuel > 0, "the plan ran in the sandbox");
    let last_30d = AggregateSpec {
        name: "last".into(),
        function: AggregateFn::LastAt,
        ..count("last", Some(30))
    };
    assert_eq!(
        planned.value,
        Needs {
            fields: Vec::new(),
            aggregates: vec![last_30d.clone(), count("count", Some(30))],
            queries: Vec::new(),
            segments: Vec::new(),
        }
    );

    // The view carries those two columns, in the planned order, and
    // nothing else; the counts are the window's.
    let (_, view) = f
        .registry
        .view(TENANT, "plan-probe", &params, "analytics", all)
        .expect("view");
    assert!(view.batch.fields.is_empty());
    assert_eq!(view.batch.aggregates.len(), 2);
    assert!(matches!(
        &view.batch.aggregates[0].data,
        ColumnData::Timestamp(_)
    ));
    assert_eq!(
        integers(&view.batch.aggregates[1]),
        [Some(2), Some(1), Some(0)]
    );
    assert_eq!(
        f.audited_fields(view.audit_seq().unwrap()),
        ["event:purchase"]
    );
    let out = live
        .plugin
        .evaluate_with(&params, &view.batch, &view.scope())
        .expect("evaluate")
        .value;
    assert_eq!(
        out.scores,
        [2.0, 1.0, 0.0],
        "the plugin read `count` by name"
    );

    // Through the registry: at least 2 in 30 days is Ada; at least 2 ever
    // is Ada and Cy; at least 1 in 7 days is Ada and Bob.
    let evaluate = |params: Vec<FieldValue>| {
        f.registry
            .evaluate(TENANT, "plan-probe", &params, "analytics", all)
            .expect("evaluate")
    };
    assert_eq!(
        members(&evaluate(probe("purchase", Some(30), 2, &[]))),
        [&people[0]]
    );
    assert_eq!(
        members(&evaluate(probe("purchase", None, 2, &[]))),
        [&people[0], &people[2]]
    );
    assert_eq!(
        members(&evaluate(probe("purchase", Some(7), 1, &[]))),
        [&people[0], &people[1]]
    );

    // Registry::plan: validated parameters (defaults filled), the plan, all
    // of it granted.
    let plan = f
        .registry
        .plan(TENANT, "plan-probe", &probe("purchase", None, 2, &[]))
        .expect("plan");
    assert!(plan.is_granted(), "{:?}", plan.ungranted);
    assert!(
        plan.params
            .contains(&param("plan", Value::Text("honest".into())))
    );
    assert_eq!(plan.needs.aggregates[1], count("count", None));
    plan.require_granted().expect("granted");
}

#[test]
fn a_segment_without_the_plan_export_is_served_from_its_manifest() {
    let f = Fixture::new();
    f.install(
        PLAIN_SEGMENT,
        "plain-segment",
        &["country"],
        &["purchase"],
        None,
    );
    let people = f.people();
    let live = f.registry.callable(TENANT, "plain-segment").expect("live");
    assert!(!live.plugin.info().plans);

    // No call: the manifest's own fields and aggregates.
    let planned = live.plugin.plan(&[]).expect("plan");
    assert_eq!(planned.value, Needs::declared(&live.plugin.info().manifest));
    assert_eq!(planned.cost.fuel, 0, "nothing ran");
    let calls = live.plugin.stats().calls;
    live.plugin.plan(&[]).expect("plan");
    assert_eq!(live.plugin.stats().calls, calls);

    let out = f
        .registry
        .evaluate(
            TENANT,
            "plain-segment",
            &[],
            "analytics",
            Subjects::Ids(&people),
        )
        .expect("evaluate");
    assert_eq!(
        members(&out),
        [&people[0], &people[2]],
        "2 purchases or more"
    );
    let (_, view) = f
        .registry
        .view(
            TENANT,
            "plain-segment",
            &[],
            "analytics",
            Subjects::Ids(&people),
        )
        .expect("view");
    assert_eq!(
        (view.batch.fields.len(), view.batch.aggregates.len()),
        (1, 1)
    );
    assert_eq!(
        f.audited_fields(view.audit_seq().unwrap()),
        ["country", "event:purchase"]
    );
    let plan = f.registry.plan(TENANT, "plain-segment", &[]).expect("plan");
    assert!(plan.is_granted());
}

#[test]
fn a_plan_reading_what_is_not_granted_is_reported_and_served_empty() {
    let f = Fixture::new();
    // Asks for `country` and `city`; the operator grants `country` only.
    let granted = Permissions {
        traits: vec!["country".into()],
        events: vec!["purchase".into()],
        purposes: vec!["analytics".into()],
        ..Permissions::default()
    };
    f.install(
        PLAN_PROBE,
        "plan-probe",
        &["country", "city"],
        &["purchase"],
        Some(granted),
    );
    let people = f.people();
    let all = Subjects::Ids(&people);

    let with_country = probe("purchase", None, 1, &[("trait", "country")]);
    let plan = f
        .registry
        .plan(TENANT, "plan-probe", &with_country)
        .expect("plan");
    assert!(plan.is_granted());
    assert_eq!(plan.needs.fields[0].name, "country");

    let with_city = probe("purchase", None, 1, &[("trait", "city")]);
    let plan = f
        .registry
        .plan(TENANT, "plan-probe", &with_city)
        .expect("plan");
    assert_eq!(
        plan.ungranted,
        [Ungranted {
            kind: NeedKind::Field,
            name: "city".into(),
            reason: "trait `city` is not granted".into(),
        }]
    );
    let refused = plan.require_granted().expect_err("not granted").to_string();
    assert!(
        refused.contains("plugin `plan-probe` may not read what these parameters need: trait `city` is not granted"),
        "{refused}"
    );

    // An event type that is not granted: both planned aggregates.
    let plan = f
        .registry
        .plan(TENANT, "plan-probe", &probe("page_view", Some(7), 1, &[]))
        .expect("plan");
    let reasons: Vec<String> = plan.ungranted.iter().map(ToString::to_string).collect();
    assert_eq!(
        reasons,
        [
            "aggregate `last`: event type `page_view` is not granted",
            "aggregate `count`: event type `page_view` is not granted",
        ]
    );

    // Evaluated anyway, the ungranted field's column is there, with every
    // row missing, and the audit does not name it.
    let params = f
        .registry
        .plan(TENANT, "plan-probe", &with_city)
        .expect("plan")
        .params;
    let (live, view) = f
        .registry
        .view(TENANT, "plan-probe", &params, "analytics", all)
        .expect("view");
    assert_eq!(view.batch.fields.len(), 1, "columns stay positional");
    assert_eq!(view.batch.fields[0].present, [0, 0, 0]);
    let ColumnData::Text(cities) = &view.batch.fields[0].data else {
        panic!("a text column")
    };
    assert!(
        cities.dictionary.is_empty(),
        "no city anywhere in the batch"
    );
    assert!(view.fields().is_empty());
    assert_eq!(
        f.audited_fields(view.audit_seq().unwrap()),
        ["event:purchase"]
    );
    let out = live
        .plugin
        .evaluate_with(&params, &view.batch, &view.scope())
        .expect("evaluate")
        .value;
    let tiers = out.tiers.expect("tiers");
    assert_eq!(tiers.dictionary, [""], "the plugin saw no city");

    // The granted trait carries values, and is audited.
    let params = f
        .registry
        .plan(TENANT, "plan-probe", &with_country)
        .expect("plan")
        .params;
    let (_, view) = f
        .registry
        .view(TENANT, "plan-probe", &params, "analytics", all)
        .expect("view");
    assert!(
        view.batch.fields[0].present.is_empty(),
        "every row has a country"
    );
    assert_eq!(
        f.audited_fields(view.audit_seq().unwrap()),
        ["country", "event:purchase"]
    );
}

/// The call error of evaluating `plan-probe` with `plan` set to `how`.
fn broken(f: &Fixture, how: &str, people: &[String]) -> CallError {
    let params = probe("purchase", None, 1, &[("plan", how)]);
    match f.registry.evaluate(
        TENANT,
        "plan-probe",
        &params,
        "analytics",
        Subjects::Ids(people),
    ) {
        Err(RegistryError::Call(error)) => error,
        other => panic!("expected the plan to be refused, got {other:?}"),
    }
}

#[test]
fn malformed_and_trapping_plans_are_refused_by_the_host_and_read_nothing() {
    let f = Fixture::new();
    f.install(PLAN_PROBE, "plan-probe", &[], &["purchase"], None);
    let people = f.people();
    let audited = || {
        f.vault
            .audit_entries(TENANT, 1, 10_000)
            .expect("audit")
            .iter()
            .filter(|e| e.action == "plugin.read")
            .count()
    };

    match broken(&f, "duplicate", &people) {
        CallError::InvalidOutput { plugin, detail } => {
            assert_eq!(plugin, "plan-probe@0.1.0");
            assert_eq!(detail, "planned aggregate `count` is named twice");
        }
        other => panic!("expected an invalid output, got {other}"),
    }
    // The same through Registry::plan, before a segment is saved.
    let refused = f
        .registry
        .plan(
            TENANT,
            "plan-probe",
            &probe("purchase", None, 1, &[("plan", "sum-without-property")]),
        )
        .expect_err("refused");
    assert!(
        matches!(
            &refused,
            RegistryError::Call(CallError::InvalidOutput { .. })
        ),
        "{refused}"
    );
    assert!(
        refused.to_string().contains(
            "plugin plan-probe@0.1.0 returned an invalid result: planned aggregate `spend` is a \
             sum but names no property to read"
        ),
        "{refused}"
    );
    assert_eq!(audited(), 0, "no view was built for a refused plan");

    // The third: a trap, a host-side error; the plugin is then quarantined
    // (3 failures in a minute) and an operator's release lets it run again.
    assert_eq!(
        broken(&f, "trap", &people).trap_reason(),
        Some(&TrapReason::Panic)
    );
    assert!(matches!(
        f.registry.evaluate(
            TENANT,
            "plan-probe",
            &probe("purchase", None, 1, &[]),
            "analytics",
            Subjects::Ids(&people)
        ),
        Err(RegistryError::Quarantined { .. })
    ));
    f.registry
        .release(TENANT, "plan-probe", &operator())
        .expect("release");
    let out = f
        .registry
        .evaluate(
            TENANT,
            "plan-probe",
            &probe("purchase", None, 2, &[]),
            "analytics",
            Subjects::Ids(&people),
        )
        .expect("an honest plan after the trap");
    assert_eq!(members(&out), [&people[0], &people[2]]);
}

// ---- event queries, other segments and the schema (query-probe) ----------

const HOUR_MS: i64 = 3_600_000;

/// A consenting person `member` with these `(event type, ms before now,
/// properties)` events.
fn person_with(f: &Fixture, member: &str, events: &[(&str, i64, serde_json::Value)]) -> String {
    let events = events
        .iter()
        .enumerate()
        .map(|(i, (event_type, ago, properties))| NewEvent {
            source_id: Some(format!("{member}-{i}")),
            event_type: (*event_type).into(),
            at_ms: NOW - ago,
            channel: Channel::Online,
            properties: serde_json::from_value(properties.clone()).expect("properties"),
        })
        .collect();
    let item = Incoming {
        identities: vec![(IdentityKind::MemberId, member.to_owned())],
        traits: BTreeMap::from([("city".to_owned(), json!("Oslo"))]),
        events,
        consents: vec![ConsentChange {
            purpose: "analytics".into(),
            granted: true,
            method: "portal".into(),
            given_at_ms: None,
        }],
    };
    f.vault
        .ingest(TENANT, &item, &Actor::new("ingest", "pipeline"))
        .expect("ingest")
        .subject
        .expect("a subject")
}

fn texts(name: &str, values: &[&str]) -> FieldValue {
    param(
        name,
        Value::TextList(values.iter().map(|v| (*v).to_owned()).collect()),
    )
}

/// What query-probe reported for each row (its tier), by subject.
fn reported(f: &Fixture, params: &[FieldValue], people: &[String]) -> Vec<String> {
    let (live, view) = f
        .registry
        .view(
            TENANT,
            "query-probe",
            params,
            "analytics",
            Subjects::Ids(people),
        )
        .expect("view");
    let out = live
        .plugin
        .evaluate_with(params, &view.batch, &view.scope())
        .expect("evaluate")
        .value;
    let tiers = out.tiers.expect("tiers");
    people
        .iter()
        .map(|subject| {
            let row = view
                .subjects()
                .iter()
                .position(|s| s == subject)
                .expect("row");
            tiers.dictionary[tiers.codes[row] as usize].clone()
        })
        .collect()
}

#[test]
fn a_filtered_hour_windowed_query_counts_dates_and_sums_each_persons_events() {
    let f = Fixture::new();
    f.install(QUERY_PROBE, "query-probe", &[], &["purchase"], None);
    let ada = person_with(
        &f,
        "ada",
        &[
            // A millisecond before the window: left out.
            (
                "purchase",
                HOUR_MS + 1,
                json!({"category": "shoes", "amount": 100, "items": 9}),
            ),
            // Exactly at its start: counted.
            (
                "purchase",
                HOUR_MS,
                json!({"category": "shoes", "amount": 10, "items": 2}),
            ),
            // Not shoes.
            (
                "purchase",
                60_000,
                json!({"category": "hats", "amount": 5, "items": 1}),
            ),
            // Shoes without `items`: counted, adds nothing to its sum.
            (
                "purchase",
                1_000,
                json!({"category": "shoes", "amount": 7.5}),
            ),
        ],
    );
    let bob = person_with(
        &f,
        "bob",
        &[(
            "purchase",
            2 * HOUR_MS,
            json!({"category": "shoes", "amount": 3}),
        )],
    );
    let cy = person_with(
        &f,
        "cy",
        &[("purchase", 0, json!({"amount": 1, "items": 4}))],
    );
    let params = [texts(
        "queries",
        &[
            r#"shoes 1h|purchase|category = "shoes"|3600000|amount,items"#,
            "all|purchase|||amount",
        ],
    )];
    let plan = f
        .registry
        .plan(TENANT, "query-probe", &params)
        .expect("plan");
    assert!(plan.is_granted(), "{:?}", plan.ungranted);
    assert_eq!(plan.needs.queries.len(), 2);
    assert_eq!(plan.needs.queries[0].window_ms, Some(HOUR_MS));

    let people = [ada.clone(), bob, cy];
    let first = NOW - HOUR_MS;
    assert_eq!(
        reported(&f, &params, &people),
        [
            format!(
                "shoes 1h:count=2,first={first},last={},amount=17.5,items=2;\
                 all:count=4,first={},last={},amount=122.5",
                NOW - 1_000,
                NOW - HOUR_MS - 1,
                NOW - 1_000
            ),
            format!(
                "shoes 1h:count=0,first=-,last=-,amount=0,items=0;\
                 all:count=1,first={0},last={0},amount=3",
                NOW - 2 * HOUR_MS
            ),
            format!(
                "shoes 1h:count=0,first=-,last=-,amount=0,items=0;\
                 all:count=1,first={NOW},last={NOW},amount=1"
            ),
        ]
    );

    // The batch layout: the queries' columns after the (no) aggregates,
    // count, first, last, then the sums; the audit names the event type and
    // each property the filter or the sums read, never values.
    let (_, view) = f
        .registry
        .view(
            TENANT,
            "query-probe",
            &params,
            "analytics",
            Subjects::Ids(&[ada]),
        )
        .expect("view");
    assert_eq!(view.batch.aggregates.len(), 5 + 4);
    assert_eq!(integers(&view.batch.aggregates[0]), [Some(2)]);
    assert!(matches!(&view.batch.aggregates[1].data, ColumnData::Timestamp(t) if t == &[first]));
    assert!(matches!(&view.batch.aggregates[4].data, ColumnData::Number(n) if n == &[2.0]));
    assert_eq!(view.event_types(), ["purchase"]);
    assert_eq!(
        f.audited_fields(view.audit_seq().unwrap()),
        [
            "event:purchase",
            "event:purchase.amount",
            "event:purchase.category",
            "event:purchase.items",
        ]
    );
}

#[test]
fn an_ungranted_query_is_reported_and_arrives_missing() {
    use tessera_vault::{PiiClass as SchemaClass, TraitClass};
    let f = Fixture::new();
    // The store a purchase was made in locates the customer.
    let mut settings = f.vault.settings(TENANT).expect("settings");
    let store = settings
        .events
        .get_mut("purchase")
        .expect("purchase")
        .properties
        .get_mut("store")
        .expect("store");
    store.class = TraitClass::Pii;
    store.pii_class = Some(SchemaClass::Location);
    f.vault
        .update_settings(TENANT, settings, &operator())
        .expect("settings");
    f.install(
        QUERY_PROBE,
        "query-probe",
        &[],
        &["purchase", "page_view"],
        Some(Permissions {
            events: vec!["purchase".into()],
            purposes: vec!["analytics".into()],
            ..Permissions::default()
        }),
    );
    let ada = person_with(
        &f,
        "ada",
        &[
            ("purchase", 1_000, json!({"amount": 10, "store": "oslo-1"})),
            ("page_view", 1_000, json!({"path": "/shoes"})),
        ],
    );
    let params = [texts(
        "queries",
        &[
            "views|page_view|||",
            r#"oslo|purchase|store = "oslo-1"||"#,
            "spend|purchase|||amount",
        ],
    )];
    let plan = f
        .registry
        .plan(TENANT, "query-probe", &params)
        .expect("plan");
    assert_eq!(
        plan.ungranted,
        [
            Ungranted {
                kind: NeedKind::Query,
                name: "views".into(),
                reason: "event type `page_view` is not granted".into(),
            },
            Ungranted {
                kind: NeedKind::Query,
                name: "oslo".into(),
                reason: "property `store` of event type `purchase` is pii, and its PII class \
                         `location` is not granted"
                    .into(),
            },
        ]
    );
    let refused = plan.require_granted().expect_err("not granted").to_string();
    assert!(
        refused.contains("query `views`: event type `page_view` is not granted"),
        "{refused}"
    );

    assert_eq!(
        reported(&f, &params, std::slice::from_ref(&ada)),
        [format!(
            "views:missing;oslo:missing;spend:count=1,first={0},last={0},amount=10",
            NOW - 1_000
        )]
    );
    let (_, view) = f
        .registry
        .view(
            TENANT,
            "query-probe",
            &params,
            "analytics",
            Subjects::Ids(&[ada]),
        )
        .expect("view");
    assert_eq!(
        integers(&view.batch.aggregates[0]),
        [None],
        "count missing too"
    );
    assert_eq!(
        f.audited_fields(view.audit_seq().unwrap()),
        ["event:purchase", "event:purchase.amount"],
        "nothing of what was not read"
    );
}

#[test]
fn a_planned_segment_is_read_from_the_membership_index_and_an_unknown_one_is_reported() {
    let f = Fixture::new();
    f.install(QUERY_PROBE, "query-probe", &[], &["purchase"], None);
    let ada = person_with(&f, "ada", &[]);
    let bob = person_with(&f, "bob", &[]);
    f.vault
        .put_sealed_document(TENANT, tessera_plugins::SEGMENT_DOCUMENT_KIND, "vip", b"{}")
        .expect("segment definition");
    f.vault
        .apply_memberships(TENANT, "vip", &[(ada.clone(), true), (bob.clone(), false)])
        .expect("memberships");

    let params = [texts("segments", &["vip", "ghost"])];
    let plan = f
        .registry
        .plan(TENANT, "query-probe", &params)
        .expect("plan");
    assert_eq!(plan.needs.segments, ["vip", "ghost"]);
    assert_eq!(
        plan.ungranted,
        [Ungranted {
            kind: NeedKind::Segment,
            name: "ghost".into(),
            reason: "segment `ghost` does not exist".into(),
        }]
    );
    assert_eq!(
        reported(&f, &params, &[ada.clone(), bob]),
        ["seg:vip=1;seg:ghost=-", "seg:vip=0;seg:ghost=-"]
    );
    let (_, view) = f
        .registry
        .view(
            TENANT,
            "query-probe",
            &params,
            "analytics",
            Subjects::Ids(&[ada]),
        )
        .expect("view");
    assert_eq!(view.batch.fields.len(), 2, "after the (no) fields");
    assert!(matches!(&view.batch.fields[0].data, ColumnData::Boolean(b) if b == &[1]));
    assert_eq!(view.batch.fields[1].present, [0]);
    assert_eq!(f.audited_fields(view.audit_seq().unwrap()), ["segment:vip"]);
}

#[test]
fn trait_kind_answers_the_schema_kind_of_a_granted_trait_and_none_otherwise() {
    let f = Fixture::new();
    f.install(
        QUERY_PROBE,
        "query-probe",
        &[
            "city",
            "lifetime_value",
            "member_since",
            "email",
            "language",
        ],
        &["purchase"],
        Some(Permissions {
            // `language` is not granted; `email` is, but not its PII class.
            traits: vec![
                "city".into(),
                "lifetime_value".into(),
                "member_since".into(),
                "email".into(),
            ],
            events: vec!["purchase".into()],
            purposes: vec!["analytics".into()],
            ..Permissions::default()
        }),
    );
    let ada = person_with(&f, "ada", &[]);
    let params = [texts(
        "kinds-of",
        &[
            "city",
            "lifetime_value",
            "member_since",
            "email",
            "language",
            "shoe_size",
        ],
    )];
    let plan = f
        .registry
        .plan(TENANT, "query-probe", &params)
        .expect("plan");
    use tessera_runtime::api::types::ValueKind;
    let kinds: Vec<(&str, ValueKind)> = plan
        .needs
        .fields
        .iter()
        .map(|field| (field.name.as_str(), field.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("city", ValueKind::Text),
            ("lifetime_value", ValueKind::Number),
            ("member_since", ValueKind::Timestamp),
        ]
    );
    assert!(plan.is_granted(), "{:?}", plan.ungranted);
    // Evaluating plans again with the same answers, so the columns line up.
    let out = f
        .registry
        .evaluate(
            TENANT,
            "query-probe",
            &params,
            "analytics",
            Subjects::Ids(&[ada]),
        )
        .expect("evaluate");
    assert_eq!(out.len(), 1);
    // Without the tenant's schema in scope (a bare call), it answers none.
    let live = f.registry.callable(TENANT, "query-probe").expect("live");
    assert!(
        live.plugin
            .plan(&params)
            .expect("plan")
            .value
            .fields
            .is_empty()
    );
}

#[test]
fn a_plan_with_an_unparsable_filter_or_a_query_named_twice_is_refused_naming_it() {
    // Each on a fresh installation: invalid plans count towards quarantine.
    let refused = |queries: &[&str]| -> String {
        let f = Fixture::new();
        f.install(QUERY_PROBE, "query-probe", &[], &["purchase"], None);
        match f
            .registry
            .plan(TENANT, "query-probe", &[texts("queries", queries)])
            .expect_err("refused")
        {
            RegistryError::Call(CallError::InvalidOutput { plugin, detail }) => {
                assert_eq!(plugin, "query-probe@0.1.0");
                detail
            }
            other => panic!("expected an invalid output, got {other}"),
        }
    };
    let detail = refused(&["big|purchase|amount >||"]);
    assert!(
        detail.starts_with("planned query `big` has a filter that does not parse: 1:"),
        "{detail}"
    );
    let detail = refused(&[r#"vip|purchase|trait.tier = "gold"||"#]);
    assert!(
        detail.contains("`vip` has a filter that does not parse"),
        "{detail}"
    );
    assert_eq!(
        refused(&["q|purchase|||", "q|page_view|||"]),
        "planned query `q` is named twice"
    );
    assert!(refused(&["q|purchase||0|"]).contains("a window of 0 ms"));
}

//! Segments of the first-party `rules` plugin over a real vault: rules on
//! traits, counted and summed events within windows, filters on event
//! properties, and other segments; the rule checked when it is saved (with
//! positions, against the schema and the grant); cycles refused; streaming
//! carrying a change through a segment built on another.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::json;
use tessera_bundle::Kind;
use tessera_plugins::{Permissions, Registry};
use tessera_privacy::MasterKey;
use tessera_runtime::api::types::{FieldValue, Value};
use tessera_runtime::{Runtime, RuntimeConfig};
use tessera_segments::{SegmentError, SegmentSpec, Segments};
use tessera_vault::{
    Actor, Channel, ConsentChange, EventSpec, IdentityKind, Incoming, NewEvent, PropertySpec,
    TenantSettings, TraitType, Vault,
};

const TENANT: &str = "acme";
/// 2026-06-01T00:00:00Z.
const NOW: i64 = 1_780_272_000_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

struct World {
    _dir: tempfile::TempDir,
    vault: Arc<Vault>,
    segments: Segments,
    clock: Arc<AtomicI64>,
}

fn operator() -> Actor {
    Actor::new("operator", "ops@acme")
}

fn rule(text: &str) -> SegmentSpec {
    SegmentSpec {
        plugin: "rules".into(),
        params: vec![FieldValue {
            name: "rule".into(),
            value: Value::Text(text.into()),
        }],
        purpose: None,
        description: String::new(),
    }
}

fn event(kind: &str, days_ago: f64, properties: serde_json::Value) -> NewEvent {
    NewEvent {
        source_id: None,
        event_type: kind.into(),
        at_ms: NOW - (days_ago * DAY_MS as f64) as i64,
        channel: Channel::Online,
        properties: serde_json::from_value(properties).unwrap(),
    }
}

impl World {
    /// The rules plugin granted every standard trait and the event types
    /// `purchase` and `page_view` (not `support_call`).
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(AtomicI64::new(NOW));
        let time = clock.clone();
        let vault = Arc::new(
            Vault::open(
                dir.path().join("data"),
                dir.path().join("keys"),
                MasterKey::generate().expect("master key"),
            )
            .expect("vault")
            .with_clock(Arc::new(move || time.load(Ordering::SeqCst))),
        );
        let mut settings = TenantSettings::default();
        let mut purchase = EventSpec::default();
        purchase
            .properties
            .insert("amount".into(), PropertySpec::new(TraitType::Number));
        purchase
            .properties
            .insert("category".into(), PropertySpec::new(TraitType::String));
        settings.events.insert("purchase".into(), purchase);
        let mut view = EventSpec::default();
        view.properties
            .insert("path".into(), PropertySpec::new(TraitType::String));
        settings.events.insert("page_view".into(), view);
        settings
            .events
            .insert("support_call".into(), EventSpec::default());
        vault
            .create_tenant(TENANT, settings, &operator())
            .expect("tenant");
        let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
        let registry = Registry::new(runtime, vault.clone(), false);
        registry
            .install_builtin_granted(
                TENANT,
                tessera_guests::plugins::RULES,
                Kind::Segment,
                Permissions {
                    traits: vec!["*".into()],
                    events: vec!["purchase".into(), "page_view".into()],
                    purposes: vec!["email_marketing".into()],
                    ..Permissions::default()
                },
            )
            .expect("rules plugin");
        let segments = Segments::new(vault.clone(), registry);
        World {
            _dir: dir,
            vault,
            segments,
            clock,
        }
    }

    fn person(&self, email: &str, traits: serde_json::Value, events: Vec<NewEvent>) -> String {
        let item = Incoming {
            identities: vec![(IdentityKind::Email, email.to_owned())],
            traits: serde_json::from_value(traits).unwrap(),
            events,
            consents: vec![ConsentChange {
                purpose: "email_marketing".into(),
                granted: true,
                method: "web_form".into(),
                given_at_ms: None,
            }],
        };
        self.vault
            .ingest(TENANT, &item, &operator())
            .expect("ingest")
            .subject
            .expect("a subject")
    }

    fn add_events(&self, email: &str, events: Vec<NewEvent>) {
        let item = Incoming {
            identities: vec![(IdentityKind::Email, email.to_owned())],
            events,
            ..Incoming::default()
        };
        self.vault
            .ingest(TENANT, &item, &operator())
            .expect("ingest");
    }

    fn save(&self, name: &str, text: &str) -> Result<(), SegmentError> {
        self.segments
            .put(TENANT, name, rule(text), &operator())
            .map(|_| ())
    }

    fn members(&self, segment: &str) -> BTreeSet<String> {
        self.vault
            .segment_members(TENANT, segment, None, 10_000)
            .expect("members")
            .into_iter()
            .map(|m| m.subject)
            .collect()
    }

    fn computed(&self, name: &str, text: &str) -> BTreeSet<String> {
        self.save(name, text).expect("save");
        self.segments.recompute(TENANT, name).expect("recompute");
        self.members(name)
    }
}

#[test]
fn each_construct_of_the_language_decides_membership() {
    let world = World::new();
    let ann = world.person(
        "ann@example.com",
        json!({"city": "Oslo", "tier": "gold"}),
        vec![
            event("purchase", 1.0, json!({"amount": 300, "category": "shoes"})),
            event("purchase", 20.0, json!({"amount": 250, "category": "bags"})),
            event("purchase", 89.9, json!({"amount": 10})),
            event("page_view", 0.1, json!({"path": "/women/shoes"})),
        ],
    );
    let bob = world.person(
        "bob@example.com",
        json!({"city": "Bergen", "tier": "blue"}),
        vec![
            event(
                "purchase",
                95.0,
                json!({"amount": 900, "category": "shoes"}),
            ),
            event("page_view", 2.0, json!({"path": "/men/shoes"})),
            event("page_view", 3.0, json!({"path": "/men/bags"})),
        ],
    );
    let cat = world.person("cat@example.com", json!({"city": "Oslo"}), Vec::new());

    let set = |people: &[&String]| people.iter().map(|s| (*s).clone()).collect::<BTreeSet<_>>();
    // Traits.
    assert_eq!(
        world.computed("oslo", r#"trait.city = "Oslo""#),
        set(&[&ann, &cat])
    );
    assert_eq!(
        world.computed("tiers", r#"trait.tier in ["gold", "black"]"#),
        set(&[&ann])
    );
    assert_eq!(
        world.computed("no-tier", "trait.tier is not set"),
        set(&[&cat])
    );
    // Counts within a window: the 89.9-day-old purchase is inside 90 days,
    // Bob's 95-day-old one is not.
    assert_eq!(
        world.computed("regulars", "count(purchase, last 90 days) >= 3"),
        set(&[&ann])
    );
    assert_eq!(
        world.computed("buyers", "did(purchase)"),
        set(&[&ann, &bob])
    );
    // Sums and averages over a window.
    assert_eq!(
        world.computed("spenders", "sum(purchase.amount, last 30 days) > 500"),
        set(&[&ann])
    );
    assert_eq!(
        world.computed("big-baskets", "avg(purchase.amount) > 800"),
        set(&[&bob])
    );
    // Filters on event properties, and "viewed but did not buy".
    assert_eq!(
        world.computed(
            "shoe-browsers",
            r#"did(page_view where path contains "shoes", last 7 days) and not did(purchase where category = "shoes", last 7 days)"#,
        ),
        set(&[&bob])
    );
    // Times: the last purchase within a day, in hours.
    assert_eq!(
        world.computed("recent", "last_seen(purchase) >= now - 36 hours"),
        set(&[&ann])
    );
    // Another segment.
    assert_eq!(
        world.computed(
            "oslo-buyers",
            r#"in segment "buyers" and in segment "oslo""#
        ),
        set(&[&ann])
    );
}

#[test]
fn window_boundaries_count_to_the_millisecond() {
    let world = World::new();
    let edge = world.person(
        "edge@example.com",
        json!({}),
        vec![NewEvent {
            at_ms: NOW - 7 * DAY_MS,
            ..event("purchase", 0.0, json!({"amount": 1}))
        }],
    );
    let outside = world.person(
        "outside@example.com",
        json!({}),
        vec![NewEvent {
            at_ms: NOW - 7 * DAY_MS - 1,
            ..event("purchase", 0.0, json!({"amount": 1}))
        }],
    );
    let members = world.computed("week", "did(purchase, last 7 days)");
    assert!(
        members.contains(&edge),
        "an event exactly 7 days ago counts"
    );
    assert!(
        !members.contains(&outside),
        "one a millisecond earlier does not"
    );
    // As time passes, a recompute lets the edge go.
    world.clock.fetch_add(1, Ordering::SeqCst);
    world.segments.recompute(TENANT, "week").expect("recompute");
    assert!(world.members("week").is_empty());
}

#[test]
fn rules_are_checked_when_saved_with_their_positions() {
    let world = World::new();
    let refusal = |name: &str, text: &str| -> String {
        match world.save(name, text) {
            Err(error @ SegmentError::Rule { .. }) => error.to_string(),
            other => panic!("{text}: expected a rule error, got {other:?}"),
        }
    };
    let parse = refusal("bad", "trait.city >= and");
    assert!(parse.contains("1:15: expected"), "{parse}");
    let types = refusal("bad", r#"trait.city > 3 and count(purchse) > 1"#);
    assert!(types.contains("1:1"), "{types}");
    assert!(types.contains("unknown event type \"purchse\""), "{types}");
    let ungranted = refusal("bad", "did(support_call)");
    assert!(ungranted.contains("not granted"), "{ungranted}");
    let unknown = refusal("bad", r#"in segment "nobody""#);
    assert!(unknown.contains("unknown segment \"nobody\""), "{unknown}");
    assert!(world.segments.list(TENANT).expect("list").is_empty());
}

#[test]
fn segments_cannot_refer_to_each_other_in_a_cycle_or_be_removed_while_used() {
    let world = World::new();
    world.save("a", "did(purchase)").expect("a");
    world.save("b", r#"in segment "a""#).expect("b");
    world.save("c", r#"in segment "b""#).expect("c");
    match world.save("a", r#"in segment "c""#) {
        Err(SegmentError::Cycle { path }) => assert_eq!(path, ["a", "c", "b", "a"]),
        other => panic!("expected a cycle, got {other:?}"),
    }
    assert!(matches!(
        world.save("d", r#"in segment "d""#),
        Err(SegmentError::Rule { .. } | SegmentError::Cycle { .. })
    ));
    match world.segments.delete(TENANT, "b", &operator()) {
        Err(SegmentError::InUse { by, .. }) => assert_eq!(by, ["c"]),
        other => panic!("expected in use, got {other:?}"),
    }
    let order: Vec<String> = world
        .segments
        .in_order(TENANT)
        .expect("order")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(order, ["a", "b", "c"]);
}

#[test]
fn a_change_flows_through_a_segment_built_on_another_by_streaming() {
    let world = World::new();
    world.segments.watch();
    let ann = world.person("ann@example.com", json!({"tier": "gold"}), Vec::new());
    world.save("buyers", "count(purchase) >= 2").expect("save");
    world
        .save(
            "gold-buyers",
            r#"in segment "buyers" and trait.tier = "gold""#,
        )
        .expect("save");
    world.segments.recompute_all(TENANT).expect("recompute");
    world.segments.process_pending().expect("stream");
    assert!(world.members("gold-buyers").is_empty());

    world.add_events(
        "ann@example.com",
        vec![
            event("purchase", 1.0, json!({"amount": 5})),
            event("purchase", 2.0, json!({"amount": 5})),
        ],
    );
    world.segments.process_pending().expect("stream");
    assert_eq!(world.members("buyers"), BTreeSet::from([ann.clone()]));
    assert_eq!(world.members("gold-buyers"), BTreeSet::from([ann.clone()]));

    // A batch recompute of the base segment queues who changed, so the
    // segment on top follows too.
    world
        .vault
        .rectify(
            TENANT,
            &ann,
            &BTreeMap::from([("tier".to_owned(), Some(json!("blue")))]),
            &operator(),
        )
        .expect("rectify");
    world.segments.process_pending().expect("stream");
    assert!(world.members("gold-buyers").is_empty());
}

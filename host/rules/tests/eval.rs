//! Evaluation: each construct against hand-built profiles, window
//! boundaries, missing values and time zones.

use std::collections::{BTreeMap, BTreeSet};

use tessera_rules::*;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// 2024-06-15T12:00:00Z.
const NOW: i64 = 1_718_452_800_000;

fn clock() -> Clock {
    Clock {
        now_ms: NOW,
        utc_offset_minutes: 0,
    }
}

fn schema() -> Schema {
    Schema::new()
        .with_trait("city", Type::String)
        .with_trait("age", Type::Number)
        .with_trait("newsletter", Type::Boolean)
        .with_trait("signup", Type::Date)
        .with_trait("tags", Type::List(&Type::String))
        .with_trait("extra", Type::Any)
        .with_event(
            "purchase",
            [("amount", Type::Number), ("category", Type::String)],
        )
        .with_event("product_view", [("category", Type::String)])
        .with_event("page_view", [])
        .with_segment("vip")
}

fn event(event_type: &str, ago_ms: i64, properties: &[(&str, Value)]) -> Event {
    Event {
        event_type: event_type.to_owned(),
        at_ms: NOW - ago_ms,
        properties: properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

fn purchase(ago_ms: i64, amount: f64, category: &str) -> Event {
    event(
        "purchase",
        ago_ms,
        &[
            ("amount", Value::Number(amount)),
            ("category", Value::String(category.into())),
        ],
    )
}

struct Person {
    traits: BTreeMap<String, Value>,
    events: Vec<Event>,
    segments: BTreeSet<String>,
}

fn alice() -> Person {
    Person {
        traits: [
            ("city", Value::String("Oslo".into())),
            ("age", Value::Number(34.0)),
            ("newsletter", Value::Boolean(true)),
            ("signup", Value::String("2024-01-10".into())),
            (
                "tags",
                Value::List(vec![
                    Value::String("vip".into()),
                    Value::String("b2b".into()),
                ]),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        events: vec![
            purchase(2 * DAY, 300.0, "shoes"),
            purchase(20 * DAY, 250.0, "bags"),
            purchase(60 * DAY, 100.0, "shoes"),
            purchase(200 * DAY, 1000.0, "coats"),
            event(
                "product_view",
                DAY,
                &[("category", Value::String("shoes".into()))],
            ),
            event("page_view", 45 * DAY, &[]),
        ],
        segments: ["vip".to_owned()].into(),
    }
}

fn holds_at(text: &str, person: &Person, clock: &Clock) -> bool {
    let rule = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    let checked = check(&rule, &schema()).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
    let profile = Profile::from_events(
        person.traits.clone(),
        &person.events,
        person.segments.clone(),
        &rule,
        clock,
    );
    checked.evaluate(&profile, clock)
}

fn holds(text: &str, person: &Person) -> bool {
    holds_at(text, person, &clock())
}

#[test]
fn every_construct_against_a_profile() {
    let alice = alice();
    let table = [
        (r#"trait.city = "Oslo""#, true),
        (r#"trait.city = "oslo""#, false),
        (r#"trait.city != "Bergen""#, true),
        (
            "trait.age >= 34 and trait.age < 35 and trait.age > 33.5 and trait.age <= 34",
            true,
        ),
        ("trait.age > 34", false),
        ("trait.newsletter = true", true),
        (r#"trait.city in ["Bergen", "Oslo"]"#, true),
        (r#"trait.city not in ["Bergen", "Oslo"]"#, false),
        ("trait.age in [1, 34]", true),
        (r#"trait.tags contains "vip""#, true),
        (r#"trait.tags contains "retail""#, false),
        (r#"trait.city contains "sl""#, true),
        ("trait.city is set and trait.extra is not set", true),
        (
            r#"trait.signup < date "2024-01-11" and trait.signup >= date "2024-01-10""#,
            true,
        ),
        ("trait.signup < now - 150 days", true),
        ("trait.signup < now - 160 days", false),
        ("count(purchase) = 4", true),
        ("count(purchase, last 90 days) >= 3", true),
        ("count(purchase, last 30 days) >= 3", false),
        ("sum(purchase.amount, last 30 days) = 550", true),
        ("sum(purchase.amount) > 1600", true),
        ("avg(purchase.amount, last 3 weeks) = 275", true),
        (r#"count(purchase where category = "shoes") = 2"#, true),
        (
            r#"sum(purchase.amount where category = "shoes" and amount > 150) = 300"#,
            true,
        ),
        (
            r#"count(purchase where category in ["bags", "coats"], last 30 days) = 1"#,
            true,
        ),
        ("first_seen(page_view) < now - 30 days", true),
        ("first_seen(page_view) < now - 50 days", false),
        ("last_seen(purchase) >= now - 48 hours", true),
        ("last_seen(purchase) >= now - 47 hours", false),
        (
            r#"did(product_view where category = "shoes", last 7 days)"#,
            true,
        ),
        (
            r#"did(product_view where category = "shoes", last 7 days) and not did(purchase, last 7 days)"#,
            false,
        ),
        (
            r#"last_seen(purchase) < last_seen(product_view where category = "shoes")"#,
            true,
        ),
        (r#"in segment "vip""#, true),
        (r#"not in segment "vip""#, false),
        (
            r#"(trait.city = "Bergen" or trait.age = 34) and not trait.newsletter = false"#,
            true,
        ),
    ];
    for (text, expected) in table {
        assert_eq!(holds(text, &alice), expected, "{text}");
    }
}

#[test]
fn missing_values_make_comparisons_false() {
    let nobody = Person {
        traits: BTreeMap::new(),
        events: Vec::new(),
        segments: BTreeSet::new(),
    };
    let table = [
        (r#"trait.city = "Oslo""#, false),
        (r#"trait.city != "Oslo""#, false),
        (r#"not trait.city = "Oslo""#, true),
        (r#"trait.city not in ["Oslo"]"#, false),
        (r#"trait.tags contains "vip""#, false),
        ("trait.city is not set", true),
        ("count(purchase) = 0 and sum(purchase.amount) = 0", true),
        (
            "count(purchase) is set and sum(purchase.amount) is set",
            true,
        ),
        ("avg(purchase.amount) is set", false),
        ("avg(purchase.amount) >= 0", false),
        ("first_seen(page_view) < now", false),
        ("last_seen(page_view) is not set", true),
        ("not did(purchase)", true),
        (r#"in segment "vip""#, false),
    ];
    for (text, expected) in table {
        assert_eq!(holds(text, &nobody), expected, "{text}");
    }
}

#[test]
fn windows_include_both_ends_and_exclude_the_future() {
    let at = |ago: i64| Person {
        traits: BTreeMap::new(),
        events: vec![purchase(ago, 10.0, "x")],
        segments: BTreeSet::new(),
    };
    let rule = "did(purchase, last 7 days)";
    assert!(holds(rule, &at(7 * DAY)), "exactly 7 days ago");
    assert!(!holds(rule, &at(7 * DAY + 1)), "a millisecond earlier");
    assert!(holds(rule, &at(0)), "now");
    assert!(!holds(rule, &at(-1)), "a millisecond in the future");
    assert!(holds("did(purchase, last 1 week)", &at(7 * DAY)));
    assert!(holds("did(purchase, last 168 hours)", &at(7 * DAY)));
    assert!(!holds("did(purchase, last 167 hours)", &at(7 * DAY)));
    // `now - N` compares to the millisecond as well.
    assert!(holds("last_seen(purchase) <= now - 7 days", &at(7 * DAY)));
    assert!(!holds("last_seen(purchase) < now - 7 days", &at(7 * DAY)));
}

#[test]
fn dates_without_a_time_begin_at_midnight_in_the_tenant_zone() {
    // Signed up at 2024-03-01T23:30:00Z: still the 1st in UTC, already the
    // 2nd in Oslo (UTC+1 in March).
    let person = Person {
        traits: [(
            "signup".to_owned(),
            Value::String("2024-03-01T23:30:00Z".into()),
        )]
        .into(),
        events: Vec::new(),
        segments: BTreeSet::new(),
    };
    let rule = r#"trait.signup < date "2024-03-02""#;
    let utc = clock();
    let oslo = Clock {
        utc_offset_minutes: 60,
        ..clock()
    };
    assert!(holds_at(rule, &person, &utc));
    assert!(!holds_at(rule, &person, &oslo));
    // A date-time literal with its own zone ignores the tenant's.
    let rule = r#"trait.signup = date "2024-03-02T00:30:00+01:00""#;
    assert!(holds_at(rule, &person, &utc));
    assert!(holds_at(rule, &person, &oslo));
    // Date traits may be held as milliseconds too.
    let person = Person {
        traits: [("signup".to_owned(), Value::Date(NOW - 10 * DAY - HOUR))].into(),
        ..person
    };
    assert!(holds("trait.signup < now - 10 days", &person));
    assert!(!holds("trait.signup < now - 11 days", &person));
}

#[test]
fn a_rule_lists_its_queries_once_with_their_sums() {
    let rule = parse(
        r#"count(purchase, last 30 days) > 1 and sum(purchase.amount, last 30 days) > 5
           and did(product_view where category = "shoes") and not did(purchase, last 30 days)"#,
    )
    .unwrap();
    let queries = rule.queries();
    assert_eq!(
        queries.iter().map(|q| q.key.as_str()).collect::<Vec<_>>(),
        [
            "purchase, last 30 days",
            r#"product_view where category = "shoes""#
        ]
    );
    assert_eq!(queries[0].sums.iter().collect::<Vec<_>>(), ["amount"]);
    assert_eq!(
        queries[0].window,
        Some(Duration {
            amount: 30,
            unit: Unit::Days
        })
    );
}

#[test]
fn facts_supplied_by_the_caller() {
    // The host computes facts itself (from running aggregates or columns)
    // and hands them over by query key.
    let rule =
        parse("sum(purchase.amount, last 30 days) > 500 and count(purchase, last 30 days) >= 2")
            .unwrap();
    let checked = check(&rule, &schema()).unwrap();
    let mut profile = Profile::default();
    profile.facts.insert(
        "purchase, last 30 days".into(),
        Facts {
            count: 2,
            sums: [("amount".to_owned(), 501.0)].into(),
            first_ms: Some(NOW - DAY),
            last_ms: Some(NOW),
        },
    );
    assert!(checked.evaluate(&profile, &clock()));
    profile.facts.clear();
    assert!(!checked.evaluate(&profile, &clock()));
}

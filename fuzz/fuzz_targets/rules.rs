//! The rules language on any text: parsing never panics; a parsed rule
//! prints (`Display`, its canonical text) to text that parses to a rule
//! printing the same; it explains itself; and once type-checked, its
//! compiled program agrees with the interpreter on a sample profile.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tessera_rules::{Clock, Facts, Profile, Rule, Schema, Type, Value, check, parse};

/// 2026-01-01T00:00:00Z, in a tenant eight hours east of UTC.
const CLOCK: Clock = Clock {
    now_ms: 1_767_225_600_000,
    utc_offset_minutes: 480,
};

/// The schema of docs/rules.md's examples.
fn schema() -> Schema {
    Schema::new()
        .with_trait("city", Type::String)
        .with_trait("country", Type::String)
        .with_trait("tier", Type::String)
        .with_trait("email", Type::String)
        .with_trait("phone", Type::String)
        .with_trait("name", Type::String)
        .with_trait("age", Type::Number)
        .with_trait("total_spend", Type::Number)
        .with_trait("opted_in", Type::Boolean)
        .with_trait("signup", Type::Date)
        .with_trait("renewal", Type::Date)
        .with_trait("tags", Type::List(&Type::String))
        .with_trait("extra", Type::Any)
        .with_event(
            "purchase",
            [
                ("amount", Type::Number),
                ("category", Type::String),
                ("store", Type::String),
            ],
        )
        .with_event(
            "product_view",
            [("category", Type::String), ("price", Type::Number)],
        )
        .with_event("page_view", [("path", Type::String)])
        .with_event("app_open", [])
        .with_event("support_call", [])
        .with_segment("vip")
        .with_segment("staff")
        .with_segment("gold")
}

/// A person with the schema's traits, and events for every query of the
/// rule (facts differ by query, so that a wrong slot shows).
fn profile(rule: &Rule) -> Profile {
    let traits = BTreeMap::from([
        ("city".to_owned(), Value::String("Oslo".into())),
        ("country".to_owned(), Value::String("NO".into())),
        ("tier".to_owned(), Value::String("gold".into())),
        ("email".to_owned(), Value::String("ann@example.com".into())),
        ("age".to_owned(), Value::Number(34.0)),
        ("total_spend".to_owned(), Value::Number(1234.5)),
        ("opted_in".to_owned(), Value::Boolean(true)),
        ("signup".to_owned(), Value::Date(1_700_000_000_000)),
        ("renewal".to_owned(), Value::Date(1_767_400_000_000)),
        (
            "tags".to_owned(),
            Value::List(vec![Value::String("new".into())]),
        ),
    ]);
    let facts = rule
        .queries()
        .into_iter()
        .enumerate()
        .map(|(i, query)| {
            let n = i as i64 + 1;
            let facts = Facts {
                count: n as u64 * 2,
                sums: query
                    .sums
                    .iter()
                    .enumerate()
                    .map(|(j, sum)| (sum.clone(), 10.5 * (n + j as i64) as f64))
                    .collect(),
                first_ms: Some(CLOCK.now_ms - n * 86_400_000 * 40),
                last_ms: Some(CLOCK.now_ms - n * 86_400_000),
            };
            (query.key, facts)
        })
        .collect();
    Profile {
        traits,
        facts,
        segments: ["vip".to_owned()].into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rule) = parse(text) else {
        return;
    };
    let printed = rule.to_string();
    let reparsed = parse(&printed)
        .unwrap_or_else(|e| panic!("canonical text {printed:?} of {text:?} does not parse: {e}"));
    assert_eq!(
        reparsed.to_string(),
        printed,
        "canonical text is a fixed point"
    );
    assert!(!rule.explain().is_empty());
    if let Ok(checked) = check(&rule, &schema()) {
        let profile = profile(&rule);
        let interpreted = checked.evaluate(&profile, &CLOCK);
        let program = checked.compile(&CLOCK);
        let compiled = program.evaluate(&program.profile_row(&profile));
        assert_eq!(
            interpreted, compiled,
            "interpreter and compiled program disagree on {printed:?}"
        );
    }
});

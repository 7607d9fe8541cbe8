//! The type checker: every kind of error, with its exact message and the
//! position it points at, and what a rule that fits needs from a profile.

use tessera_rules::{Grants, Schema, Type, check, parse};

fn schema() -> Schema {
    Schema::new()
        .with_trait("city", Type::String)
        .with_trait("age", Type::Number)
        .with_trait("newsletter", Type::Boolean)
        .with_trait("signup", Type::Date)
        .with_trait("tags", Type::List(&Type::String))
        .with_trait("scores", Type::List(&Type::Number))
        .with_trait("extra", Type::Any)
        .with_trait("email", Type::String)
        .with_event(
            "purchase",
            [
                ("amount", Type::Number),
                ("category", Type::String),
                ("coupon", Type::String),
                ("card", Type::String),
            ],
        )
        .with_event("product_view", [("category", Type::String)])
        .with_event("login", [])
        .with_event("support_call", [])
        .with_segment("vip")
        .with_grants(
            Grants::new()
                .with_trait("city")
                .with_trait("age")
                .with_trait("newsletter")
                .with_trait("signup")
                .with_trait("tags")
                .with_trait("scores")
                .with_trait("extra")
                .with_property("purchase", "amount")
                .with_property("purchase", "category")
                .with_property("purchase", "coupon")
                .with_property("product_view", "category")
                .with_event("login"),
        )
}

/// The messages of every error the rule has.
fn errors(text: &str) -> Vec<String> {
    let rule = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    match check(&rule, &schema()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn rules_that_fit_the_schema() {
    for text in [
        r#"trait.city = "Oslo" and trait.age >= 30"#,
        "trait.newsletter = true",
        r#"trait.signup < date "2024-01-01" or trait.signup >= now - 4 weeks"#,
        r#"trait.city in ["Oslo", "Bergen"] and trait.age not in [1, 2]"#,
        r#"trait.tags contains "vip" and trait.city contains "sl" and trait.scores contains 3"#,
        "trait.city is set and trait.age is not set",
        "trait.extra = 3 and trait.extra contains 4 and trait.extra > now",
        "count(purchase, last 90 days) >= 3",
        "sum(purchase.amount, last 30 days) > 500 and avg(purchase.amount) < 80",
        "first_seen(login) < now - 30 days and last_seen(purchase) is set",
        r#"did(product_view where category = "shoes", last 7 days) and not did(purchase, last 7 days)"#,
        r#"last_seen(purchase) < last_seen(product_view where category = "shoes")"#,
        r#"count(purchase where category in ["a", "b"] and amount >= 10 and coupon is set) > 0"#,
        r#"in segment "vip""#,
        "count(login) > trait.age",
    ] {
        assert_eq!(errors(text), Vec::<String>::new(), "{text}");
    }
}

#[test]
fn a_checked_rule_lists_what_it_needs() {
    let rule = parse(
        r#"trait.city = "Oslo" and sum(purchase.amount where category = "shoes", last 30 days) > 5
           and did(login) and in segment "vip""#,
    )
    .unwrap();
    let checked = check(&rule, &schema()).unwrap();
    assert_eq!(checked.rule(), &rule);
    assert_eq!(checked.traits().iter().collect::<Vec<_>>(), ["city"]);
    assert_eq!(
        checked.events().iter().collect::<Vec<_>>(),
        ["login", "purchase"]
    );
    assert_eq!(
        checked.properties().iter().cloned().collect::<Vec<_>>(),
        [
            ("purchase".to_owned(), "amount".to_owned()),
            ("purchase".to_owned(), "category".to_owned())
        ]
    );
    assert_eq!(checked.segments().iter().collect::<Vec<_>>(), ["vip"]);
}

#[test]
fn every_kind_of_error() {
    let table: &[(&str, &[&str])] = &[
        // a string compared with a number, and other mismatches
        (
            r#"trait.age = "30""#,
            &["1:1: cannot compare a number with a string"],
        ),
        (
            "trait.city > 3",
            &["1:1: cannot compare a string with a number"],
        ),
        (
            r#"trait.signup < "2024-01-01""#,
            &[r#"1:1: cannot compare a date with a string (write date "2024-01-01" for a date)"#],
        ),
        (
            r#"trait.signup < "soon""#,
            &["1:1: cannot compare a date with a string"],
        ),
        (
            "count(purchase) = now",
            &["1:1: cannot compare a number with a date"],
        ),
        (
            "trait.tags = 1",
            &["1:1: cannot compare a list of strings with a number"],
        ),
        // ordering what has no order
        (
            r#"trait.city < "M""#,
            &[r#"1:1: "<" compares numbers or dates, not a string"#],
        ),
        (
            "trait.newsletter >= true",
            &[r#"1:1: ">=" compares numbers or dates, not a boolean"#],
        ),
        // set membership
        (
            r#"trait.age in [1, "2"]"#,
            &["1:1: the list holds a string, but trait.age is a number"],
        ),
        (
            "trait.city not in [true]",
            &["1:1: the list holds a boolean, but trait.city is a string"],
        ),
        // contains
        (
            "trait.age contains 3",
            &[r#"1:1: "contains" needs a string or a list on its left, not a number"#],
        ),
        (
            "trait.tags contains 3",
            &["1:1: a list of strings cannot contain a number"],
        ),
        (
            "trait.city contains 3",
            &["1:1: a string cannot contain a number"],
        ),
        // is set on a constant
        (
            "3 is set",
            &[r#"1:1: "is set" applies to fields and aggregates, not to a constant"#],
        ),
        (
            "trait.age = 1 or now is not set",
            &[r#"1:18: "is set" applies to fields and aggregates, not to a constant"#],
        ),
        // unknown and ungranted fields
        (r#"trait.town = "Oslo""#, &[r#"1:1: unknown trait "town""#]),
        (
            r#"trait.email = "a@b.c""#,
            &[r#"1:1: trait "email" is not granted to this plugin"#],
        ),
        (
            "count(purchse) > 1",
            &[r#"1:7: unknown event type "purchse""#],
        ),
        (
            "did(support_call)",
            &[r#"1:5: event type "support_call" is not granted to this plugin"#],
        ),
        (
            r#"did(purchase where colour = "red")"#,
            &[r#"1:20: event type "purchase" has no property "colour""#],
        ),
        (
            r#"did(purchase where card = "visa")"#,
            &[r#"1:20: property "purchase.card" is not granted to this plugin"#],
        ),
        (
            "sum(purchase.price) > 1",
            &[r#"1:14: event type "purchase" has no property "price""#],
        ),
        (
            "avg(purchase.card) > 1",
            &[r#"1:14: property "purchase.card" is not granted to this plugin"#],
        ),
        // aggregates over non-numeric properties
        (
            "sum(purchase.category, last 7 days) > 1",
            &[r#"1:14: sum needs a numeric property, but "purchase.category" is a string"#],
        ),
        (
            "avg(product_view.category) > 1",
            &[r#"1:18: avg needs a numeric property, but "product_view.category" is a string"#],
        ),
        // segments
        (r#"in segment "gold""#, &[r#"1:12: unknown segment "gold""#]),
        // inside a where clause
        (
            r#"did(purchase where amount = "big")"#,
            &["1:20: cannot compare a number with a string"],
        ),
    ];
    for (text, expected) in table {
        assert_eq!(errors(text), *expected, "{text}");
    }
}

#[test]
fn all_errors_are_reported_not_only_the_first() {
    let text =
        "trait.town = 1 and\n  count(purchse) > 1 and trait.age = \"x\"\n  and in segment \"gold\"";
    assert_eq!(
        errors(text),
        [
            r#"1:1: unknown trait "town""#,
            r#"2:9: unknown event type "purchse""#,
            "2:26: cannot compare a number with a string",
            r#"3:18: unknown segment "gold""#,
        ]
    );
}

#[test]
fn one_mistake_is_reported_once() {
    // The unknown trait is not reported again as a mismatch, nor the
    // properties of an unknown event type as unknown properties.
    assert_eq!(errors("trait.town > 3"), [r#"1:1: unknown trait "town""#]);
    assert_eq!(
        errors(r#"sum(purchse.amount where colour = "red") > 1"#),
        [r#"1:5: unknown event type "purchse""#]
    );
}

#[test]
fn errors_carry_spans() {
    let rule = parse(r#"trait.age >= 3 and trait.email = "x""#).unwrap();
    let errors = check(&rule, &schema()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].span.start, errors[0].span.end), (19, 30));
    assert_eq!(
        errors[0].kind,
        tessera_rules::TypeErrorKind::TraitNotGranted("email".into())
    );
}

#[test]
fn without_grants_the_whole_schema_is_usable() {
    let mut schema = schema();
    schema.grants = None;
    let rule =
        parse(r#"trait.email is set and did(support_call) and did(purchase where card = "visa")"#)
            .unwrap();
    assert!(check(&rule, &schema).is_ok());
}

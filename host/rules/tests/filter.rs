//! The filter API a host uses to evaluate the `where` of an event query on
//! events it reads itself.

use std::collections::{BTreeMap, BTreeSet};

use tessera_rules::{Clock, Value, filter_matches, filter_properties, parse_filter};

fn props(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

const CLOCK: Clock = Clock {
    now_ms: 1_700_000_000_000,
    utc_offset_minutes: 0,
};

#[test]
fn a_filter_tests_the_properties_of_one_event() {
    let filter = parse_filter(r#"category = "shoes" and amount >= 100"#).unwrap();
    let shoes = |amount: f64| {
        props(&[
            ("category", Value::String("shoes".into())),
            ("amount", Value::Number(amount)),
        ])
    };
    assert!(filter_matches(&filter, &shoes(100.0), &CLOCK));
    assert!(!filter_matches(&filter, &shoes(99.5), &CLOCK));
    // A missing property makes a comparison false, so the filter too.
    let no_amount = props(&[("category", Value::String("shoes".into()))]);
    assert!(!filter_matches(&filter, &no_amount, &CLOCK));
    assert!(!filter_matches(&filter, &BTreeMap::new(), &CLOCK));

    let listed = parse_filter(r#"tags contains "sale" or sku in ["a", "b"]"#).unwrap();
    let tagged = props(&[("tags", Value::List(vec![Value::String("sale".into())]))]);
    assert!(filter_matches(&listed, &tagged, &CLOCK));
    assert!(filter_matches(
        &listed,
        &props(&[("sku", Value::String("b".into()))]),
        &CLOCK
    ));
    let unset = parse_filter("coupon is not set").unwrap();
    assert!(filter_matches(&unset, &tagged, &CLOCK));
    let recent = parse_filter("shipped_at > now - 2 days").unwrap();
    assert!(filter_matches(
        &recent,
        &props(&[("shipped_at", Value::Date(CLOCK.now_ms - 86_400_000))]),
        &CLOCK
    ));
}

#[test]
fn a_filter_prints_canonically_and_names_the_properties_it_reads() {
    let filter =
        parse_filter(r#"category = "shoes"  and not (amount < 5 or coupon is set)"#).unwrap();
    let again = parse_filter(&filter.to_string()).unwrap();
    assert_eq!(again.to_string(), filter.to_string());
    assert_eq!(
        filter_properties(&filter),
        ["amount", "category", "coupon"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn a_filter_refuses_what_a_where_clause_refuses() {
    for bad in [
        r#"trait.city = "Oslo""#,
        "count(purchase) > 1",
        "did(purchase)",
        r#"in segment "vip""#,
        r#"category = "shoes", last 7 days"#,
        "amount >",
        "",
    ] {
        assert!(parse_filter(bad).is_err(), "{bad:?} parsed");
    }
    let error = parse_filter(r#"category = "shoes" amount"#).unwrap_err();
    assert!(
        error.to_string().contains("the end of the filter"),
        "{error}"
    );
}

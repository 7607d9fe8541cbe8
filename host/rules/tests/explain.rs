//! Rules in plain English.

use tessera_rules::parse;

#[test]
fn every_construct_in_plain_english() {
    let table = [
        (r#"trait.city = "Oslo""#, r#"city is "Oslo""#),
        ("trait.age != 3", "age is not 3"),
        (
            "trait.age < 3 and trait.age <= 4",
            "age is less than 3 and age is at most 4",
        ),
        (
            "trait.age > 3 or trait.age >= 4",
            "age is more than 3 or age is at least 4",
        ),
        (
            r#"trait.signup < date "2024-01-01" and trait.signup >= now - 30 days"#,
            "signup is before 2024-01-01 and signup is on or after 30 days ago",
        ),
        (
            "trait.renewal <= now + 1 week",
            "renewal is on or before 1 week from now",
        ),
        ("trait.renewal > now", "renewal is after now"),
        (
            r#"trait.city in ["Oslo", "Bergen"]"#,
            r#"city is one of "Oslo", "Bergen""#,
        ),
        ("trait.tier not in [1, 2]", "tier is none of 1, 2"),
        (r#"trait.tags contains "vip""#, r#"tags contains "vip""#),
        ("trait.email is set", "email is set"),
        ("not trait.email is set", "email is not set"),
        ("trait.email is not set", "email is not set"),
        ("trait.ok = true", "ok is true"),
        (
            "count(purchase, last 90 days) >= 3",
            "the number of purchase events in the last 90 days is at least 3",
        ),
        (
            "sum(purchase.amount, last 30 days) > 500",
            "the total amount of purchase events in the last 30 days is more than 500",
        ),
        (
            "avg(purchase.amount) < 20",
            "the average amount of purchase events is less than 20",
        ),
        (
            "first_seen(page_view) < now - 30 days",
            "the time of the first page_view event is before 30 days ago",
        ),
        (
            "last_seen(login) >= now - 12 hours",
            "the time of the last login event is on or after 12 hours ago",
        ),
        (
            r#"did(product_view where category = "shoes", last 7 days) and not did(purchase, last 7 days)"#,
            r#"had a product_view event in the last 7 days where category is "shoes" and had no purchase event in the last 7 days"#,
        ),
        (r#"in segment "vip""#, r#"is in segment "vip""#),
        (r#"not in segment "vip""#, r#"is not in segment "vip""#),
        ("not trait.a = 1", "not (a is 1)"),
        ("not not trait.a = 1", "a is 1"),
        (
            "(trait.a = 1 or trait.b = 2) and trait.c = 3",
            "(a is 1 or b is 2) and c is 3",
        ),
        (
            "trait.a = 1 and trait.b = 2 or trait.c = 3",
            "(a is 1 and b is 2) or c is 3",
        ),
        (
            "trait.a = 1 and trait.b = 2 and trait.c = 3",
            "a is 1 and b is 2 and c is 3",
        ),
    ];
    for (text, english) in table {
        assert_eq!(parse(text).unwrap().explain(), english, "{text}");
    }
}

//! The parser against a table of rules: each valid one with its canonical
//! text (which must parse back to the same tree), each invalid one with its
//! exact message (position, what was expected, what was found).

use tessera_rules::parse;

/// `Ok(canonical text)` or `Err(message)`.
const TABLE: &[(&str, Result<&str, &str>)] = &[
    // ---- comparisons on traits ----
    (r#"trait.city = "Oslo""#, Ok(r#"trait.city = "Oslo""#)),
    (r#"trait.city != "Oslo""#, Ok(r#"trait.city != "Oslo""#)),
    ("trait.age >= 30", Ok("trait.age >= 30")),
    ("trait.age>30", Ok("trait.age > 30")),
    ("trait.age < 30.50", Ok("trait.age < 30.5")),
    ("trait.age <= -1", Ok("trait.age <= -1")),
    ("trait.newsletter = true", Ok("trait.newsletter = true")),
    ("trait.churned != false", Ok("trait.churned != false")),
    (
        r#"trait.signup >= date "2024-03-01""#,
        Ok(r#"trait.signup >= date "2024-03-01""#),
    ),
    (
        r#"trait.signup < date "2024-03-01T12:00:00Z""#,
        Ok(r#"trait.signup < date "2024-03-01T12:00:00Z""#),
    ),
    (
        r#"trait.note = "say \"hi\"\n""#,
        Ok(r#"trait.note = "say \"hi\"\n""#),
    ),
    ("trait.and = 1", Ok("trait.and = 1")),
    // ---- set membership, contains, is set ----
    (
        r#"trait.city in ["Oslo", "Bergen"]"#,
        Ok(r#"trait.city in ["Oslo", "Bergen"]"#),
    ),
    (
        "trait.tier not in [1,2,3]",
        Ok("trait.tier not in [1, 2, 3]"),
    ),
    (
        r#"trait.tags contains "vip""#,
        Ok(r#"trait.tags contains "vip""#),
    ),
    ("trait.email is set", Ok("trait.email is set")),
    ("trait.email is not set", Ok("trait.email is not set")),
    // ---- boolean logic ----
    (
        "trait.a = 1 and trait.b = 2 or trait.c = 3",
        Ok("trait.a = 1 and trait.b = 2 or trait.c = 3"),
    ),
    (
        "trait.a = 1 and (trait.b = 2 or trait.c = 3)",
        Ok("trait.a = 1 and (trait.b = 2 or trait.c = 3)"),
    ),
    ("((trait.a = 1))", Ok("trait.a = 1")),
    ("not trait.a = 1", Ok("not trait.a = 1")),
    ("not not trait.a = 1", Ok("not not trait.a = 1")),
    (
        "not (trait.a = 1 or trait.b = 2)",
        Ok("not (trait.a = 1 or trait.b = 2)"),
    ),
    (
        "trait.a = 1 or (trait.b = 2 or trait.c = 3)",
        Ok("trait.a = 1 or (trait.b = 2 or trait.c = 3)"),
    ),
    (
        "# people in Oslo\ntrait.a = 1 # and nothing else",
        Ok("trait.a = 1"),
    ),
    // ---- events, windows, aggregates ----
    (
        "count(purchase, last 90 days) >= 3",
        Ok("count(purchase, last 90 days) >= 3"),
    ),
    ("count(purchase) > 0", Ok("count(purchase) > 0")),
    (
        "sum(purchase.amount, last 30 days) > 500",
        Ok("sum(purchase.amount, last 30 days) > 500"),
    ),
    (
        "avg(purchase.amount, last 1 week) > 20",
        Ok("avg(purchase.amount, last 1 week) > 20"),
    ),
    (
        "count(login, last 1 days) = 0",
        Ok("count(login, last 1 day) = 0"),
    ),
    (
        "count(login, last 36 hours) = 0",
        Ok("count(login, last 36 hours) = 0"),
    ),
    (
        "first_seen(page_view) < now - 30 days",
        Ok("first_seen(page_view) < now - 30 days"),
    ),
    (
        "last_seen(page_view) >= now-2 weeks",
        Ok("last_seen(page_view) >= now - 2 weeks"),
    ),
    (
        "last_seen(page_view) is set",
        Ok("last_seen(page_view) is set"),
    ),
    (
        "trait.renewal <= now + 7 days",
        Ok("trait.renewal <= now + 7 days"),
    ),
    (
        r#"count(purchase where category = "shoes" and amount > 100, last 30 days) >= 2"#,
        Ok(r#"count(purchase where category = "shoes" and amount > 100, last 30 days) >= 2"#),
    ),
    (
        r#"sum(purchase.amount where store in ["web", "app"]) > 1000"#,
        Ok(r#"sum(purchase.amount where store in ["web", "app"]) > 1000"#),
    ),
    (
        r#"did(product_view where category = "shoes", last 7 days) and not did(purchase, last 7 days)"#,
        Ok(
            r#"did(product_view where category = "shoes", last 7 days) and not did(purchase, last 7 days)"#,
        ),
    ),
    (
        r#"last_seen(purchase) < last_seen(product_view where category = "shoes")"#,
        Ok(r#"last_seen(purchase) < last_seen(product_view where category = "shoes")"#),
    ),
    (
        "did(purchase where coupon is set)",
        Ok("did(purchase where coupon is set)"),
    ),
    // ---- segments ----
    (r#"in segment "vip""#, Ok(r#"in segment "vip""#)),
    (
        r#"in segment "vip" and not in segment "churned""#,
        Ok(r#"in segment "vip" and not in segment "churned""#),
    ),
    // ---- errors ----
    (
        "trait.age >= and count(purchase) > 1",
        Err(r#"1:14: expected a number, a date, a field or an aggregate after ">=", found "and""#),
    ),
    (
        r#"trait.city = "Oslo" and trait.age >= and"#,
        Err(r#"1:38: expected a number, a date, a field or an aggregate after ">=", found "and""#),
    ),
    (
        "trait.city = ",
        Err(r#"1:14: expected a value, a field or an aggregate after "=", found end of input"#),
    ),
    (
        "trait.age >= 30 and",
        Err(
            r#"1:20: expected a condition: a field (trait.<name>), an aggregate, "did", "in segment", "not" or "(", found end of input"#,
        ),
    ),
    (
        "",
        Err(
            r#"1:1: expected a condition: a field (trait.<name>), an aggregate, "did", "in segment", "not" or "(", found end of input"#,
        ),
    ),
    (
        r#"city = "Oslo""#,
        Err(
            r#"1:1: expected a condition: a field (trait.<name>), an aggregate, "did", "in segment", "not" or "(", found "city" (a trait is written trait.city)"#,
        ),
    ),
    (
        "(trait.a = 1 or trait.b = 2",
        Err(r#"1:28: expected "and", "or" or ")" to close the "(" at 1:1, found end of input"#),
    ),
    (
        "trait.a = 1)",
        Err(r#"1:12: expected "and", "or" or the end of the rule, found ")""#),
    ),
    (
        "trait.a = 1 trait.b = 2",
        Err(r#"1:13: expected "and", "or" or the end of the rule, found "trait""#),
    ),
    (
        "trait.city",
        Err(
            r#"1:11: expected a comparison (=, !=, <, <=, >, >=), "in", "not in", "contains" or "is set" after trait.city, found end of input"#,
        ),
    ),
    (
        "trait.b @ 3",
        Err(
            r#"1:9: expected a comparison (=, !=, <, <=, >, >=), "in", "not in", "contains" or "is set" after trait.b, found "@""#,
        ),
    ),
    (
        "trait.b == 3",
        Err(
            r#"1:10: expected a value, a field or an aggregate after "=", found "=" (equality is written with one "=")"#,
        ),
    ),
    (
        "trait = 3",
        Err(r#"1:7: expected "." and a trait name after "trait", found "=""#),
    ),
    (
        "trait. = 3",
        Err(r#"1:8: expected a trait name after "trait.", found "=""#),
    ),
    (
        r#"trait.b = "abc"#,
        Err(
            r#"1:11: expected a value, a field or an aggregate after "=", found a string without its closing quote"#,
        ),
    ),
    (
        r#"trait.b = "a\qc""#,
        Err(
            r#"1:11: expected a value, a field or an aggregate after "=", found an unknown escape "\q" in a string"#,
        ),
    ),
    (
        r#"trait.b = date "2024-13-01""#,
        Err(
            r#"1:16: expected a date as "YYYY-MM-DD" or "YYYY-MM-DDThh:mm:ssZ" after "date", found the string "2024-13-01""#,
        ),
    ),
    (
        "trait.b = date 2024",
        Err(r#"1:16: expected a date in quotes after "date", as "2024-03-01", found "2024""#),
    ),
    (
        "sum(purchase, last 30 days) > 500",
        Err(
            r#"1:13: expected "." and a numeric property after "purchase" (sum takes event.property), found ",""#,
        ),
    ),
    (
        "count(purchase.amount) > 1",
        Err(r#"1:15: expected "where", "," or ")" after the event, found ".""#),
    ),
    (
        "count() > 1",
        Err(r#"1:7: expected an event type after "count(", found ")""#),
    ),
    (
        "avg(.amount) > 1",
        Err(r#"1:5: expected an event type and property (event.property) after "avg(", found ".""#),
    ),
    (
        "count(purchase, last 1.5 days) > 1",
        Err(
            r#"1:22: expected a whole number from 1 to 1000000 of hours, days or weeks after "last", found "1.5""#,
        ),
    ),
    (
        "count(purchase, last 0 days) > 1",
        Err(
            r#"1:22: expected a whole number from 1 to 1000000 of hours, days or weeks after "last", found "0""#,
        ),
    ),
    (
        "count(purchase, last 3 months) > 1",
        Err(r#"1:24: expected "hours", "days" or "weeks" after "3", found "months""#),
    ),
    (
        "count(purchase, 3 days) > 1",
        Err(r#"1:17: expected "last" and a duration after "," (as in "last 30 days"), found "3""#),
    ),
    (
        "count(purchase, last days) > 1",
        Err(r#"1:22: expected a duration (as "30 days") after "last", found "days""#),
    ),
    (
        "trait.b > now - days",
        Err(r#"1:17: expected a duration (as "30 days") after "-", found "days""#),
    ),
    (
        "trait.city in []",
        Err(
            r#"1:16: expected a value (a string, a number, true, false or a date) in the list, found "]""#,
        ),
    ),
    (
        r#"trait.city in ["a" "b"]"#,
        Err(r#"1:20: expected "," or "]" in the list, found the string "b""#),
    ),
    (
        r#"trait.city in ["a",]"#,
        Err(r#"1:20: expected a value after ",", found "]""#),
    ),
    (
        r#"trait.city in "a""#,
        Err(r#"1:15: expected "[" after "in", found the string "a""#),
    ),
    (
        r#"trait.city in [trait.town]"#,
        Err(
            r#"1:16: expected a value (a string, a number, true, false or a date) in the list, found "trait""#,
        ),
    ),
    (
        "trait.city is",
        Err(r#"1:14: expected "set" or "not set" after "is", found end of input"#),
    ),
    (
        "trait.city is not",
        Err(r#"1:18: expected "set" after "is not", found end of input"#),
    ),
    (
        "in segment vip",
        Err(r#"1:12: expected a segment name in quotes after "in segment", found "vip""#),
    ),
    (
        r#"in "vip""#,
        Err(r#"1:4: expected "segment" after "in", found the string "vip""#),
    ),
    (
        "did(purchase",
        Err(r#"1:13: expected "where", "," or ")" after the event, found end of input"#),
    ),
    (
        "did(product_view where trait.x = 1)",
        Err(r#"1:24: expected a condition on the event: a property, "not" or "(", found "trait""#),
    ),
    (
        "did(a where did(b))",
        Err(r#"1:13: expected a condition on the event: a property, "not" or "(", found "did""#),
    ),
    (
        "count(a where x = count(b)) > 1",
        Err(r#"1:19: expected a value or a property after "=", found "count""#),
    ),
    (
        "trait.a = 1 and\n  trait.b >= \"x\" and\n  trait.c <",
        Err(
            r#"3:12: expected a number, a date, a field or an aggregate after "<", found end of input"#,
        ),
    ),
    (
        "trait.näme = 1 ö",
        Err(r#"1:16: expected "and", "or" or the end of the rule, found "ö""#),
    ),
    (
        "trait.a = 1e5",
        Err(r#"1:12: expected "and", "or" or the end of the rule, found "e5""#),
    ),
];

#[test]
fn the_table() {
    assert!(TABLE.len() >= 40, "the table has {} rows", TABLE.len());
    let mut failures = Vec::new();
    for (input, expected) in TABLE {
        let got = parse(input)
            .map(|rule| rule.to_string())
            .map_err(|e| e.to_string());
        let expected = expected.map(str::to_owned).map_err(str::to_owned);
        if got != expected {
            failures.push(format!(
                "{input:?}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
        if let Ok(text) = &got {
            let first = parse(input).unwrap().without_spans();
            let again = parse(text).unwrap_or_else(|e| panic!("{text:?} does not parse back: {e}"));
            assert_eq!(
                again.without_spans(),
                first,
                "{input:?} printed as {text:?}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_carry_the_byte_position_line_and_column() {
    let error = parse("trait.a = 1 and\n  ö >= 2").unwrap_err();
    assert_eq!((error.span.line, error.span.column), (2, 3));
    assert_eq!(error.span.start, 18);
    assert_eq!(error.span.end, 20);
    assert_eq!(error.found, "\"ö\"");
    assert_eq!(
        error.expected,
        r#"a condition: a field (trait.<name>), an aggregate, "did", "in segment", "not" or "(""#
    );
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}trait.a = 1{}", "(".repeat(100), ")".repeat(100));
    let error = parse(&deep).unwrap_err();
    assert_eq!(error.expected, "at most 64 levels of nesting");
    let nots = format!("{}trait.a = 1", "not ".repeat(100));
    assert_eq!(
        parse(&nots).unwrap_err().expected,
        "at most 64 levels of nesting"
    );
    let fine = format!("{}trait.a = 1{}", "(".repeat(30), ")".repeat(30));
    assert!(parse(&fine).is_ok());
}

#[test]
fn and_binds_tighter_than_or_and_chains_group_to_the_left() {
    use tessera_rules::{ExprKind, OperandKind};
    let rule = parse("trait.a = 1 or trait.b = 2 and trait.c = 3 or trait.d = 4").unwrap();
    let ExprKind::Or(left, d) = &rule.expr.kind else {
        panic!("{rule:?}")
    };
    assert_eq!(d.to_string(), "trait.d = 4");
    let ExprKind::Or(a, bc) = &left.kind else {
        panic!("{left:?}")
    };
    assert_eq!(a.to_string(), "trait.a = 1");
    assert!(matches!(bc.kind, ExprKind::And(..)));
    // Spans cover what they stand for.
    assert_eq!((bc.span.start, bc.span.end, bc.span.column), (15, 42, 16));
    let ExprKind::Compare { left, .. } = &a.kind else {
        panic!()
    };
    assert_eq!(left.kind, OperandKind::Trait("a".into()));
    assert_eq!((left.span.start, left.span.end), (0, 7));
}

#[test]
fn parentheses_span_the_whole_group() {
    let rule = parse("not (trait.a = 1)").unwrap();
    let tessera_rules::ExprKind::Not(inner) = &rule.expr.kind else {
        panic!()
    };
    assert_eq!((inner.span.start, inner.span.end), (4, 17));
    assert_eq!((rule.expr.span.start, rule.expr.span.end), (0, 17));
}

#[test]
fn the_number_of_conditions_is_bounded() {
    let long = vec!["trait.a = 1"; 600].join(" and ");
    let error = parse(&long).unwrap_err();
    assert_eq!(error.expected, "at most 512 conditions in a rule");
    assert_eq!(error.found, "\"and\"");
    let fine = vec!["trait.a = 1"; 500].join(" or ");
    assert!(parse(&fine).is_ok());
}

//! Printing a rule and parsing the text gives the same tree back, for rules
//! generated at random.

use proptest::prelude::*;
use tessera_rules::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,8}".prop_filter("not a keyword", |n| !KEYWORDS.contains(&n.as_str()))
}

fn duration() -> impl Strategy<Value = Duration> {
    (
        1..=MAX_DURATION,
        prop_oneof![Just(Unit::Hours), Just(Unit::Days), Just(Unit::Weeks)],
    )
        .prop_map(|(amount, unit)| Duration { amount, unit })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<String>().prop_map(Literal::String),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Literal::Number),
        (0u32..1_000_000).prop_map(|n| Literal::Number(f64::from(n))),
        any::<bool>().prop_map(Literal::Bool),
        (1000u32..9999, 1u32..=12, 1u32..=31, any::<bool>()).prop_map(|(y, m, d, time)| {
            Literal::Date(if time {
                format!("{y:04}-{m:02}-{d:02}T10:20:30Z")
            } else {
                format!("{y:04}-{m:02}-{d:02}")
            })
        }),
    ]
}

fn operand(filter: bool) -> BoxedStrategy<Operand> {
    let span = Span::default();
    let mut choices = vec![
        literal().prop_map(OperandKind::Literal).boxed(),
        prop::option::of(
            (any::<bool>(), duration()).prop_map(|(minus, duration)| Offset { minus, duration }),
        )
        .prop_map(OperandKind::Now)
        .boxed(),
    ];
    if filter {
        choices.push(name().prop_map(OperandKind::Property).boxed());
    } else {
        choices.push(name().prop_map(OperandKind::Trait).boxed());
        choices.push(
            (
                prop_oneof![
                    Just(AggFunc::Count),
                    Just(AggFunc::Sum),
                    Just(AggFunc::Avg),
                    Just(AggFunc::FirstSeen),
                    Just(AggFunc::LastSeen)
                ],
                query(),
                name(),
            )
                .prop_map(|(func, query, property)| {
                    OperandKind::Aggregate(Aggregate {
                        func,
                        query,
                        property: func.takes_property().then(|| (property, Span::default())),
                    })
                })
                .boxed(),
        );
    }
    prop::strategy::Union::new(choices)
        .prop_map(move |kind| Operand { kind, span })
        .boxed()
}

fn query() -> BoxedStrategy<EventQuery> {
    (
        name(),
        prop::option::of(expr(true)),
        prop::option::of(duration()),
    )
        .prop_map(|(event, filter, window)| EventQuery {
            event,
            event_span: Span::default(),
            filter: filter.map(Box::new),
            window,
        })
        .boxed()
}

fn leaf(filter: bool) -> BoxedStrategy<ExprKind> {
    let op = prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge)
    ];
    let mut choices = vec![
        (operand(filter), op, operand(filter))
            .prop_map(|(left, op, right)| ExprKind::Compare { left, op, right })
            .boxed(),
        (
            operand(filter),
            prop::collection::vec(literal(), 1..4),
            any::<bool>(),
        )
            .prop_map(|(operand, values, negated)| ExprKind::In {
                operand,
                values,
                negated,
            })
            .boxed(),
        (operand(filter), operand(filter))
            .prop_map(|(operand, value)| ExprKind::Contains { operand, value })
            .boxed(),
        (operand(filter), any::<bool>())
            .prop_map(|(operand, negated)| ExprKind::IsSet { operand, negated })
            .boxed(),
    ];
    if !filter {
        choices.push(query().prop_map(ExprKind::Did).boxed());
        choices.push(
            any::<String>()
                .prop_map(|name| ExprKind::InSegment {
                    name,
                    span: Span::default(),
                })
                .boxed(),
        );
    }
    prop::strategy::Union::new(choices).boxed()
}

/// Conditions; inside a where clause (`filter`) without nested events, so
/// the depth stays small.
fn expr(filter: bool) -> BoxedStrategy<Expr> {
    let leaf = if filter {
        leaf(true)
    } else {
        // Leaves outside a filter may hold queries with filters.
        leaf(false)
    };
    leaf.prop_map(|kind| Expr {
        kind,
        span: Span::default(),
    })
    .prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| ExprKind::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| ExprKind::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|e| ExprKind::Not(Box::new(e))),
        ]
        .prop_map(|kind| Expr {
            kind,
            span: Span::default(),
        })
    })
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn print_then_parse_gives_the_same_tree(expr in expr(false)) {
        let rule = Rule { expr };
        let text = rule.to_string();
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(parsed.without_spans(), rule, "{}", text);
        // And the canonical text is a fixed point.
        prop_assert_eq!(parsed.to_string(), text);
    }
}

proptest! {
    #[test]
    fn any_text_parses_or_fails_without_panicking(text in any::<String>()) {
        if let Ok(rule) = parse(&text) {
            let _ = rule.explain();
            prop_assert_eq!(parse(&rule.to_string()).map(|r| r.without_spans()), Ok(rule.without_spans()));
        }
    }

    #[test]
    fn near_misses_fail_without_panicking(
        words in prop::collection::vec(prop_oneof![
            Just("trait.a"), Just("="), Just(">="), Just("and"), Just("or"), Just("not"),
            Just("("), Just(")"), Just("count(purchase"), Just(", last 3 days"), Just("where"),
            Just("x"), Just("3"), Just("\"s\""), Just("in"), Just("["), Just("]"), Just(","),
            Just("did(view"), Just("segment"), Just("is"), Just("set"), Just("now"), Just("-"),
            Just("date"), Just("\"2024-01-01\""), Just("sum(purchase.amount"), Just("contains"),
        ], 0..24)
    ) {
        let text = words.join(" ");
        match parse(&text) {
            Ok(rule) => {
                let reparsed = parse(&rule.to_string()).map(|r| r.without_spans());
                prop_assert_eq!(reparsed, Ok(rule.without_spans()), "{}", text);
            }
            Err(error) => {
                prop_assert!(error.span.start <= text.len());
                prop_assert!(text.is_char_boundary(error.span.start));
            }
        }
    }
}

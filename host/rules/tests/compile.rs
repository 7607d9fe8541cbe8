//! A compiled rule ([`CheckedRule::compile`]) answers what the tree
//! evaluator ([`CheckedRule::evaluate`]) answers: for generated rules over
//! generated profiles, for generated batches of columns read as the rules
//! plugin used to read them, and for the edge cases by hand.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tessera_rules::*;

const DAY: i64 = 86_400_000;
/// 2024-03-01T12:00:00Z.
const NOW: i64 = 1_709_294_400_000;

const TRAITS: &[&str] = &["a", "b", "c"];
const EVENTS: &[&str] = &["purchase", "view"];
const FILTERS: &[&str] = &["amount > 10", r#"category = "shoes""#];
const PROPERTIES: &[&str] = &["amount", "price"];
const SEGMENTS: &[&str] = &["vip", "staff"];
const TEXTS: &[&str] = &[
    "",
    "Oslo",
    "sl",
    "2024-03-01",
    "2024-02-29T23:30:00Z",
    "2024-03-01T00:30:00+01:00",
    "2024-04-31",
];

/// Every trait and property of any type, so that generated rules check;
/// the amounts and prices are numbers, as sums need.
fn schema() -> Schema {
    let mut schema = Schema::new();
    for name in TRAITS {
        schema = schema.with_trait(name, Type::Any);
    }
    for event in EVENTS {
        schema = schema.with_event(
            event,
            [
                ("amount", Type::Number),
                ("price", Type::Number),
                ("category", Type::Any),
            ],
        );
    }
    for segment in SEGMENTS {
        schema = schema.with_segment(segment);
    }
    schema
}

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> BoxedStrategy<T> {
    prop::sample::select(items).boxed()
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![pick(TEXTS).prop_map(str::to_owned), "[a-z]{0,3}"].boxed()
}

fn number() -> BoxedStrategy<f64> {
    prop_oneof![
        (-3i32..8).prop_map(f64::from),
        Just(0.5),
        Just(-0.0),
        Just(f64::NAN),
    ]
    .boxed()
}

/// Around now, and on day boundaries in a few zones.
fn instant() -> BoxedStrategy<i64> {
    prop_oneof![
        (-40i64..5).prop_map(|d| NOW + d * DAY),
        (-3i64..3).prop_map(|ms| NOW - 7 * DAY + ms),
        Just(1_709_251_200_000), // 2024-03-01T00:00:00Z
        Just(1_709_247_600_000), // 2024-03-01T00:00:00+01:00
        Just(1_709_269_200_000), // 2024-03-01T00:00:00-06:00
    ]
    .boxed()
}

fn duration() -> BoxedStrategy<Duration> {
    (
        1u64..10,
        prop_oneof![Just(Unit::Hours), Just(Unit::Days), Just(Unit::Weeks)],
    )
        .prop_map(|(amount, unit)| Duration { amount, unit })
        .boxed()
}

fn lit(literal: Literal) -> Operand {
    Operand {
        kind: OperandKind::Literal(literal),
        span: Span::default(),
    }
}

fn operand(kind: OperandKind) -> Operand {
    Operand {
        kind,
        span: Span::default(),
    }
}

fn query() -> BoxedStrategy<EventQuery> {
    (
        pick(EVENTS),
        prop::option::of(pick(FILTERS)),
        prop::option::of(prop_oneof![
            Just(Duration {
                amount: 7,
                unit: Unit::Days
            }),
            Just(Duration {
                amount: 2,
                unit: Unit::Weeks
            }),
        ]),
    )
        .prop_map(|(event, filter, window)| EventQuery {
            event: event.to_owned(),
            event_span: Span::default(),
            filter: filter.map(|f| Box::new(parse_filter(f).expect("filter"))),
            window,
        })
        .boxed()
}

fn trait_operand() -> BoxedStrategy<Operand> {
    pick(TRAITS)
        .prop_map(|name| operand(OperandKind::Trait(name.to_owned())))
        .boxed()
}

fn aggregate(funcs: &'static [AggFunc]) -> BoxedStrategy<Operand> {
    (pick(funcs), query(), pick(PROPERTIES))
        .prop_map(|(func, query, property)| {
            operand(OperandKind::Aggregate(Aggregate {
                func,
                query,
                property: func
                    .takes_property()
                    .then(|| (property.to_owned(), Span::default())),
            }))
        })
        .boxed()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Number,
    Date,
    String,
    Boolean,
}

fn kind() -> BoxedStrategy<Kind> {
    prop_oneof![
        Just(Kind::Number),
        Just(Kind::Date),
        Just(Kind::String),
        Just(Kind::Boolean)
    ]
    .boxed()
}

fn literal_of(kind: Kind) -> BoxedStrategy<Literal> {
    match kind {
        Kind::Number => number()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Literal::Number)
            .boxed(),
        Kind::Date => pick(TEXTS)
            .prop_filter("date-shaped", |t| t.len() >= 10)
            .prop_map(|t| Literal::Date(t.to_owned()))
            .boxed(),
        Kind::String => text().prop_map(Literal::String).boxed(),
        Kind::Boolean => any::<bool>().prop_map(Literal::Bool).boxed(),
    }
}

/// An operand of `kind`, or a trait (of any type).
fn operand_of(kind: Kind) -> BoxedStrategy<Operand> {
    let typed = match kind {
        Kind::Number => prop_oneof![
            literal_of(kind).prop_map(lit),
            aggregate(&[AggFunc::Count, AggFunc::Sum, AggFunc::Avg]),
        ]
        .boxed(),
        Kind::Date => prop_oneof![
            literal_of(kind).prop_map(lit),
            prop::option::of(
                (any::<bool>(), duration())
                    .prop_map(|(minus, duration)| Offset { minus, duration })
            )
            .prop_map(|offset| operand(OperandKind::Now(offset))),
            aggregate(&[AggFunc::FirstSeen, AggFunc::LastSeen]),
        ]
        .boxed(),
        Kind::String | Kind::Boolean => literal_of(kind).prop_map(lit).boxed(),
    };
    prop_oneof![trait_operand(), typed].boxed()
}

fn cmp_op(kind: Kind) -> BoxedStrategy<CmpOp> {
    match kind {
        Kind::Number | Kind::Date => pick(&[
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ]),
        Kind::String | Kind::Boolean => pick(&[CmpOp::Eq, CmpOp::Ne]),
    }
}

fn any_literal() -> BoxedStrategy<Literal> {
    kind().prop_flat_map(literal_of).boxed()
}

fn leaf() -> BoxedStrategy<ExprKind> {
    prop_oneof![
        4 => kind().prop_flat_map(|k| (operand_of(k), cmp_op(k), operand_of(k)))
            .prop_map(|(left, op, right)| ExprKind::Compare { left, op, right }),
        // A trait compared with anything (the checker lets `any` through;
        // it orders only numbers and dates).
        2 => (trait_operand(), pick(&[CmpOp::Eq, CmpOp::Ne]), any_literal())
            .prop_map(|(left, op, right)| ExprKind::Compare { left, op, right: lit(right) }),
        1 => (trait_operand(), trait_operand(), pick(&[CmpOp::Eq, CmpOp::Ne, CmpOp::Le]))
            .prop_map(|(left, right, op)| ExprKind::Compare { left, op, right }),
        2 => (trait_operand(), prop::collection::vec(any_literal(), 1..4), any::<bool>())
            .prop_map(|(operand, values, negated)| ExprKind::In { operand, values, negated }),
        1 => kind().prop_flat_map(|k| (operand_of(k), prop::collection::vec(literal_of(k), 1..3), any::<bool>()))
            .prop_map(|(operand, values, negated)| ExprKind::In { operand, values, negated }),
        2 => (trait_operand(), prop_oneof![trait_operand(), any_literal().prop_map(lit)])
            .prop_map(|(operand, value)| ExprKind::Contains { operand, value }),
        1 => (literal_of(Kind::String).prop_map(lit), operand_of(Kind::String))
            .prop_map(|(operand, value)| ExprKind::Contains { operand, value }),
        1 => (prop_oneof![trait_operand(), aggregate(&[AggFunc::Avg, AggFunc::FirstSeen, AggFunc::LastSeen, AggFunc::Sum])], any::<bool>())
            .prop_map(|(operand, negated)| ExprKind::IsSet { operand, negated }),
        1 => query().prop_map(ExprKind::Did),
        1 => pick(SEGMENTS).prop_map(|name| ExprKind::InSegment { name: name.to_owned(), span: Span::default() }),
    ]
    .boxed()
}

fn expr() -> BoxedStrategy<Expr> {
    leaf()
        .prop_map(|kind| Expr {
            kind,
            span: Span::default(),
        })
        .prop_recursive(4, 12, 2, |inner| {
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

fn value() -> BoxedStrategy<Value> {
    let scalar = prop_oneof![
        text().prop_map(Value::String),
        number().prop_map(Value::Number),
        any::<bool>().prop_map(Value::Boolean),
        instant().prop_map(Value::Date),
    ];
    prop_oneof![
        4 => scalar.clone(),
        1 => prop::collection::vec(scalar.clone(), 0..3).prop_map(Value::List),
        1 => prop::collection::vec(prop::collection::vec(scalar, 0..2).prop_map(Value::List), 0..2)
            .prop_map(Value::List),
    ]
    .boxed()
}

fn facts() -> BoxedStrategy<Facts> {
    (
        prop_oneof![Just(0u64), 1u64..6],
        prop::collection::btree_map(pick(PROPERTIES).prop_map(str::to_owned), number(), 0..3),
        prop::option::of(instant()),
        prop::option::of(instant()),
    )
        .prop_map(|(count, sums, first_ms, last_ms)| Facts {
            count,
            sums,
            first_ms,
            last_ms,
        })
        .boxed()
}

/// The traits, segments and, by position of the rule's queries, their
/// facts (`None`: no facts for that query).
type Person = (
    BTreeMap<String, Value>,
    BTreeSet<String>,
    Vec<Option<Facts>>,
);

fn person() -> BoxedStrategy<Person> {
    (
        prop::collection::btree_map(pick(TRAITS).prop_map(str::to_owned), value(), 0..4),
        prop::collection::btree_set(pick(SEGMENTS).prop_map(str::to_owned), 0..3),
        prop::collection::vec(prop::option::of(facts()), 8),
    )
        .boxed()
}

fn clock() -> BoxedStrategy<Clock> {
    (
        prop_oneof![Just(NOW), Just(NOW - 7 * DAY + 1), Just(NOW + 3 * DAY)],
        pick(&[0, 60, -360, 330]),
    )
        .prop_map(|(now_ms, utc_offset_minutes)| Clock {
            now_ms,
            utc_offset_minutes,
        })
        .boxed()
}

fn profile_of(rule: &Rule, (traits, segments, facts): &Person) -> Profile {
    Profile {
        traits: traits.clone(),
        facts: rule
            .queries()
            .into_iter()
            .zip(facts)
            .filter_map(|(q, f)| Some((q.key, f.clone()?)))
            .collect(),
        segments: segments.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn a_compiled_rule_answers_as_the_tree_evaluator(
        expr in expr(),
        people in prop::collection::vec(person(), 1..6),
        clock in clock(),
    ) {
        let rule = Rule { expr };
        let text = rule.to_string();
        let checked = check(&rule, &schema())
            .map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?;
        let program = checked.compile(&clock);
        for person in &people {
            let profile = profile_of(&rule, person);
            prop_assert_eq!(
                program.evaluate(&program.profile_row(&profile)),
                checked.evaluate(&profile, &clock),
                "{} over {:?}", text, profile
            );
        }
    }
}

// ---- batches of columns ----

/// The columns of a batch of `rows` rows for a program's slots, as the host
/// lays them out.
#[derive(Debug, Clone)]
struct Batch {
    rows: usize,
    traits: Vec<OwnedColumn>,
    /// count, first, last, sums.
    queries: Vec<(OwnedColumn, OwnedColumn, OwnedColumn, Vec<OwnedColumn>)>,
    segments: Vec<OwnedColumn>,
}

#[derive(Debug, Clone)]
struct OwnedColumn {
    data: OwnedData,
    present: Vec<u8>,
}

#[derive(Debug, Clone)]
enum OwnedData {
    Boolean(Vec<u8>),
    Integer(Vec<i64>),
    Number(Vec<f64>),
    Timestamp(Vec<i64>),
    Text(Vec<String>, Vec<u32>),
    TextList(Vec<String>, Vec<u32>, Vec<u32>),
}

impl OwnedColumn {
    fn view(&self) -> Column<'_> {
        Column {
            data: match &self.data {
                OwnedData::Boolean(v) => ColumnData::Boolean(v),
                OwnedData::Integer(v) => ColumnData::Integer(v),
                OwnedData::Number(v) => ColumnData::Number(v),
                OwnedData::Timestamp(v) => ColumnData::Timestamp(v),
                OwnedData::Text(dictionary, codes) => ColumnData::Text { dictionary, codes },
                OwnedData::TextList(dictionary, offsets, codes) => ColumnData::TextList {
                    dictionary,
                    offsets,
                    codes,
                },
            },
            present: &self.present,
        }
    }

    fn is_present(&self, row: usize) -> bool {
        self.present.is_empty() || self.present[row] != 0
    }

    /// The row's value, as the rules plugin read a trait cell before it
    /// evaluated compiled rules.
    fn cell(&self, row: usize) -> Option<Value> {
        if !self.is_present(row) {
            return None;
        }
        match &self.data {
            OwnedData::Boolean(v) => Some(Value::Boolean(v[row] != 0)),
            OwnedData::Integer(v) => Some(Value::Number(v[row] as f64)),
            OwnedData::Number(v) => Some(Value::Number(v[row])),
            OwnedData::Timestamp(v) => Some(Value::Date(v[row])),
            OwnedData::Text(dictionary, codes) => dictionary
                .get(codes[row] as usize)
                .map(|s| Value::String(s.clone())),
            OwnedData::TextList(dictionary, offsets, codes) => {
                let items = codes.get(offsets[row] as usize..offsets[row + 1] as usize)?;
                Some(Value::List(
                    items
                        .iter()
                        .filter_map(|c| dictionary.get(*c as usize))
                        .map(|s| Value::String(s.clone()))
                        .collect(),
                ))
            }
        }
    }

    fn integer(&self, row: usize) -> Option<i64> {
        match &self.data {
            OwnedData::Integer(v) | OwnedData::Timestamp(v) if self.is_present(row) => Some(v[row]),
            _ => None,
        }
    }

    fn number(&self, row: usize) -> Option<f64> {
        if !self.is_present(row) {
            return None;
        }
        match &self.data {
            OwnedData::Number(v) => Some(v[row]),
            OwnedData::Integer(v) | OwnedData::Timestamp(v) => Some(v[row] as f64),
            OwnedData::Boolean(v) => Some(if v[row] != 0 { 1.0 } else { 0.0 }),
            _ => None,
        }
    }
}

fn present(rows: usize) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(
            prop_oneof![3 => Just(1u8), 1 => Just(0u8), 1 => Just(7u8)],
            rows
        ),
    ]
    .boxed()
}

fn dictionary() -> BoxedStrategy<Vec<String>> {
    prop::collection::vec(text(), 0..4).boxed()
}

/// Any kind of column; codes may point past their dictionary.
fn column(rows: usize) -> BoxedStrategy<OwnedColumn> {
    let data = prop_oneof![
        prop::collection::vec(0u8..3, rows).prop_map(OwnedData::Boolean),
        prop::collection::vec(-2i64..6, rows).prop_map(OwnedData::Integer),
        prop::collection::vec(number(), rows).prop_map(OwnedData::Number),
        prop::collection::vec(instant(), rows).prop_map(OwnedData::Timestamp),
        (dictionary(), prop::collection::vec(0u32..5, rows))
            .prop_map(|(d, codes)| OwnedData::Text(d, codes)),
        (dictionary(), prop::collection::vec(0u32..3, rows)).prop_flat_map(move |(d, lens)| {
            let mut offsets = vec![0u32];
            for len in &lens {
                offsets.push(offsets.last().unwrap() + len);
            }
            let total = *offsets.last().unwrap() as usize;
            prop::collection::vec(0u32..5, total)
                .prop_map(move |codes| OwnedData::TextList(d.clone(), offsets.clone(), codes))
        }),
    ];
    (data, present(rows))
        .prop_map(|(data, present)| OwnedColumn { data, present })
        .boxed()
}

/// Query columns as the host sends them: integer counts, timestamps.
fn query_columns(
    rows: usize,
    sums: usize,
) -> BoxedStrategy<(OwnedColumn, OwnedColumn, OwnedColumn, Vec<OwnedColumn>)> {
    let times = move || {
        (prop::collection::vec(instant(), rows), present(rows))
            .prop_map(|(v, present)| OwnedColumn {
                data: OwnedData::Timestamp(v),
                present,
            })
            .boxed()
    };
    (
        (prop::collection::vec(-1i64..5, rows), present(rows)).prop_map(|(v, present)| {
            OwnedColumn {
                data: OwnedData::Integer(v),
                present,
            }
        }),
        times(),
        times(),
        prop::collection::vec(column(rows), sums),
    )
        .boxed()
}

fn batch(program: &Program) -> BoxedStrategy<Batch> {
    let traits = program.traits().len();
    let sums: Vec<usize> = program.queries().iter().map(|q| q.sums.len()).collect();
    let segments = program.segments().len();
    (1usize..6)
        .prop_flat_map(move |rows| {
            (
                Just(rows),
                prop::collection::vec(column(rows), traits),
                sums.iter()
                    .map(|s| query_columns(rows, *s))
                    .collect::<Vec<_>>(),
                prop::collection::vec(column(rows), segments),
            )
        })
        .prop_map(|(rows, traits, queries, segments)| Batch {
            rows,
            traits,
            queries,
            segments,
        })
        .boxed()
}

/// Row `row` of the batch as the rules plugin built it before it evaluated
/// compiled rules: a query without events has no facts.
fn profile_of_row(program: &Program, batch: &Batch, row: usize) -> Profile {
    let mut profile = Profile::default();
    for (name, column) in program.traits().iter().zip(&batch.traits) {
        if let Some(value) = column.cell(row) {
            profile.traits.insert(name.clone(), value);
        }
    }
    for (query, (count, first, last, sums)) in program.queries().iter().zip(&batch.queries) {
        let count = count
            .integer(row)
            .map_or(0, |n| u64::try_from(n).unwrap_or(0));
        if count == 0 {
            continue;
        }
        profile.facts.insert(
            query.key.clone(),
            Facts {
                count,
                sums: query
                    .sums
                    .iter()
                    .zip(sums)
                    .map(|(p, column)| (p.clone(), column.number(row).unwrap_or(0.0)))
                    .collect(),
                first_ms: first.integer(row),
                last_ms: last.integer(row),
            },
        );
    }
    for (name, column) in program.segments().iter().zip(&batch.segments) {
        if matches!(&column.data, OwnedData::Boolean(v) if column.is_present(row) && v[row] != 0) {
            profile.segments.insert(name.clone());
        }
    }
    profile
}

fn columns_of<'a>(program: &Program, batch: &'a Batch) -> Columns<'a> {
    Columns::new(
        program,
        batch.rows,
        batch.traits.iter().map(OwnedColumn::view).collect(),
        batch
            .queries
            .iter()
            .map(|(count, first, last, sums)| QueryColumns {
                count: count.view(),
                first: first.view(),
                last: last.view(),
                sums: sums.iter().map(OwnedColumn::view).collect(),
            })
            .collect(),
        batch.segments.iter().map(OwnedColumn::view).collect(),
    )
    .expect("the columns fit")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn a_compiled_rule_over_columns_answers_as_the_tree_evaluator_over_profiles(
        (expr, clock, batch) in (expr(), clock()).prop_flat_map(|(expr, clock)| {
            let checked = check(&Rule { expr: expr.clone() }, &schema()).expect("checks");
            let program = checked.compile(&clock);
            (Just(expr), Just(clock), batch(&program))
        })
    ) {
        let rule = Rule { expr };
        let text = rule.to_string();
        let checked = check(&rule, &schema()).expect("checks");
        let program = checked.compile(&clock);
        let columns = columns_of(&program, &batch);
        for row in 0..batch.rows {
            let profile = profile_of_row(&program, &batch, row);
            prop_assert_eq!(
                program.evaluate(&columns.row(row)),
                checked.evaluate(&profile, &clock),
                "{} over row {} of {:?}", text, row, batch
            );
        }
    }
}

// ---- by hand ----

fn compiled(text: &str, schema: &Schema) -> (CheckedRule, Rule) {
    let rule = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    (
        check(&rule, schema).unwrap_or_else(|e| panic!("{text}: {e:?}")),
        rule,
    )
}

/// Both evaluators on one profile; they must agree, and the answer is
/// returned.
fn both(text: &str, profile: &Profile, clock: &Clock) -> bool {
    let schema = Schema::new()
        .with_trait("signup", Type::Date)
        .with_trait("city", Type::String)
        .with_trait("tags", Type::List(&Type::String))
        .with_trait("any", Type::Any)
        .with_event("purchase", [("amount", Type::Number)])
        .with_segment("vip");
    let (checked, _) = compiled(text, &schema);
    let tree = checked.evaluate(profile, clock);
    let program = checked.compile(clock);
    assert_eq!(
        program.evaluate(&program.profile_row(profile)),
        tree,
        "{text} over {profile:?} at {clock:?}"
    );
    tree
}

fn utc() -> Clock {
    Clock {
        now_ms: NOW,
        utc_offset_minutes: 0,
    }
}

fn with_trait(name: &str, value: Value) -> Profile {
    Profile {
        traits: [(name.to_owned(), value)].into(),
        ..Profile::default()
    }
}

fn with_purchases(key: &str, count: u64, amount: f64, first_ms: i64, last_ms: i64) -> Profile {
    Profile {
        facts: [(
            key.to_owned(),
            Facts {
                count,
                sums: [("amount".to_owned(), amount)].into(),
                first_ms: Some(first_ms),
                last_ms: Some(last_ms),
            },
        )]
        .into(),
        ..Profile::default()
    }
}

#[test]
fn now_and_its_offsets_are_fixed_at_compile_time_to_the_millisecond() {
    let key = "purchase, last 7 days";
    let at = |ms| with_purchases(key, 1, 0.0, ms, ms);
    let rule = "last_seen(purchase, last 7 days) >= now - 7 days";
    assert!(both(rule, &at(NOW - 7 * DAY), &utc()));
    assert!(!both(rule, &at(NOW - 7 * DAY - 1), &utc()));
    assert!(both(
        "last_seen(purchase, last 7 days) <= now",
        &at(NOW),
        &utc()
    ));
    assert!(!both(
        "last_seen(purchase, last 7 days) < now",
        &at(NOW),
        &utc()
    ));
    assert!(both(
        "first_seen(purchase, last 7 days) < now + 1 hours",
        &at(NOW + 3_599_999),
        &utc()
    ));
}

#[test]
fn missing_facts_count_zero_sum_zero_and_have_no_average_nor_times() {
    let nobody = Profile::default();
    for (rule, expected) in [
        ("count(purchase) = 0", true),
        ("sum(purchase.amount) = 0", true),
        ("avg(purchase.amount) is set", false),
        ("avg(purchase.amount) = 0", false),
        ("first_seen(purchase) is set", false),
        ("last_seen(purchase) < now", false),
        ("not did(purchase)", true),
        (r#"trait.city != "Oslo""#, false),
        (r#"trait.tags contains "a""#, false),
        (r#"trait.city not in ["Oslo"]"#, false),
        (r#"in segment "vip""#, false),
    ] {
        assert_eq!(both(rule, &nobody, &utc()), expected, "{rule}");
    }
    // Facts without the summed property: a sum of 0.
    let mut profile = with_purchases("purchase", 2, 0.0, NOW, NOW);
    profile.facts.get_mut("purchase").unwrap().sums.clear();
    assert!(both("avg(purchase.amount) = 0", &profile, &utc()));
}

#[test]
fn date_strings_compare_with_dates_in_the_tenant_zone() {
    // 2024-03-01T23:30:00Z: the 1st in UTC, the 2nd in Oslo.
    let signup = with_trait("signup", Value::String("2024-03-01T23:30:00Z".into()));
    let oslo = Clock {
        utc_offset_minutes: 60,
        ..utc()
    };
    let rule = r#"trait.signup < date "2024-03-02""#;
    assert!(both(rule, &signup, &utc()));
    assert!(!both(rule, &signup, &oslo));
    let rule = r#"trait.signup = date "2024-03-02T00:30:00+01:00""#;
    assert!(both(rule, &signup, &utc()));
    assert!(both(rule, &signup, &oslo));
    // A date trait held as milliseconds against a string constant that
    // reads as a date (a trait of any type passes the checker).
    let midnight = with_trait("any", Value::Date(1_709_251_200_000));
    assert!(both(r#"trait.any = "2024-03-01""#, &midnight, &utc()));
    assert!(!both(r#"trait.any = "2024-03-01""#, &midnight, &oslo));
    assert!(!both(r#"trait.any = "Oslo""#, &midnight, &utc()));
    // An impossible day is a string: never a date.
    assert!(!both(
        r#"trait.signup < date "2024-04-31""#,
        &signup,
        &utc()
    ));
    // …and compares with a string as strings do.
    assert!(both(
        r#"trait.signup != date "2024-04-31""#,
        &signup,
        &utc()
    ));
    let text = with_trait("any", Value::String("2024-04-31".into()));
    assert!(both(r#"trait.any = date "2024-04-31""#, &text, &utc()));
}

#[test]
fn type_mismatches_are_false_both_ways() {
    let number = with_trait("any", Value::Number(3.0));
    for rule in [
        r#"trait.any = "3""#,
        r#"trait.any != "3""#,
        "trait.any = true",
        "trait.any < now",
        r#"trait.any contains "3""#,
    ] {
        assert!(!both(rule, &number, &utc()), "{rule}");
    }
    assert!(both("trait.any in [true, 3]", &number, &utc()));
    assert!(both("trait.any not in [true, 4]", &number, &utc()));
    let nan = with_trait("any", Value::Number(f64::NAN));
    assert!(!both("trait.any = trait.any", &nan, &utc()));
    assert!(!both("trait.any != 1", &nan, &utc()));
}

#[test]
fn lists_contain_and_equal_element_by_element() {
    let tags = with_trait(
        "any",
        Value::List(vec![
            Value::String("a".into()),
            Value::List(vec![Value::Number(1.0)]),
        ]),
    );
    assert!(both(r#"trait.any contains "a""#, &tags, &utc()));
    assert!(!both(r#"trait.any contains "b""#, &tags, &utc()));
    assert!(both("trait.any = trait.any", &tags, &utc()));
    assert!(!both("trait.any != trait.any", &tags, &utc()));
    assert!(both(r#"trait.any contains "a""#, &tags, &utc()));
    let city = with_trait("city", Value::String("Oslo".into()));
    assert!(both(r#"trait.city contains "sl""#, &city, &utc()));
    assert!(both(r#""Oslo" contains trait.city"#, &city, &utc()));
}

#[test]
fn a_query_written_twice_reads_one_slot() {
    let (checked, rule) = compiled(
        "count(purchase, last 7 days) > 1 and sum(purchase.amount, last 7 days) > 5 \
         and not did(purchase, last 7 days)",
        &Schema::new().with_event("purchase", [("amount", Type::Number)]),
    );
    let program = checked.compile(&utc());
    assert_eq!(program.queries(), rule.queries());
    assert_eq!(program.queries().len(), 1);
    assert_eq!(
        program.queries()[0].sums.iter().collect::<Vec<_>>(),
        ["amount"]
    );
}

#[test]
fn slots_follow_the_checked_rule_order() {
    let (checked, _) = compiled(
        r#"trait.b = 1 and trait.a = 2 and in segment "y" and in segment "x""#,
        &Schema::new()
            .with_trait("a", Type::Number)
            .with_trait("b", Type::Number)
            .with_segment("x")
            .with_segment("y"),
    );
    let program = checked.compile(&utc());
    assert!(program.traits().iter().eq(checked.traits()));
    assert!(program.segments().iter().eq(checked.segments()));
}

#[test]
fn columns_that_do_not_fit_the_program_are_refused() {
    let (checked, _) = compiled(
        "count(purchase) > 1",
        &Schema::new().with_event("purchase", []),
    );
    let program = checked.compile(&utc());
    let counts = [1i64, 2];
    let times = [0i64, 0];
    let column = |v| Column {
        data: ColumnData::Integer(v),
        present: &[],
    };
    let query = |count| QueryColumns {
        count,
        first: column(&times),
        last: column(&times),
        sums: Vec::new(),
    };
    assert!(Columns::new(&program, 2, vec![], vec![query(column(&counts))], vec![]).is_ok());
    assert!(matches!(
        Columns::new(&program, 3, vec![], vec![query(column(&counts))], vec![]),
        Err(ColumnsError::Length { .. })
    ));
    assert!(matches!(
        Columns::new(&program, 2, vec![], vec![], vec![]),
        Err(ColumnsError::Count { .. })
    ));
    let short_present = Column {
        data: ColumnData::Integer(&counts),
        present: &[1],
    };
    assert!(matches!(
        Columns::new(&program, 2, vec![], vec![query(short_present)], vec![]),
        Err(ColumnsError::Length { .. })
    ));
}

//! `rules`: subjects who meet a rule written in Tessera's rules language
//! (`docs/rules.md`), e.g. `count(purchase, last 90 days) >= 3 and not in
//! segment "staff"`.
//!
//! The plugin embeds `tessera-rules`, the parser, checker and evaluator the
//! host itself checks rules with. It plans its columns from the rule
//! (`tessera:plan`): one column per trait the rule reads, in the kind the
//! tenant's schema gives it; one event query per distinct
//! `event where …, last …` of the rule, with the sums it adds up; one
//! membership column per segment it refers to. It never sees an event, only
//! the facts the host computed from the events it was granted. A batch is
//! evaluated by the rule compiled for the batch's clock, reading the
//! columns in place: nothing is allocated per row.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use tessera_rules::{CheckedRule, Clock, Columns, Program, Rule, Schema, Type, TypeErrorKind};
use tessera_sdk::prelude::*;
use tessera_sdk::{ColumnData, EventQuery, schema};

struct Rules;

/// The longest rule text taken, in bytes.
const MAX_RULE_BYTES: usize = 10_000;
/// How many times [`check`] widens its schema before giving up: each round
/// names what the rule refers to that the previous one lacked.
const CHECK_ROUNDS: usize = 4;

impl Segment for Rules {
    fn describe() -> Manifest {
        Manifest::new(
            "rules",
            "0.1.0",
            "Subjects who meet a rule in Tessera's rules language: traits, event counts, sums, \
             averages and times over windows, filters on event properties, other segments.",
        )
        .param(
            ParamSpec::text(
                "rule",
                "The rule, e.g. count(purchase, last 90 days) >= 3 (docs/rules.md)",
            )
            .required(),
        )
        .param(
            ParamSpec::integer(
                "utc_offset_minutes",
                "The tenant's offset from UTC in minutes: where a day without a time begins",
            )
            .range(-1_080.0, 1_080.0)
            .default(Value::Integer(0)),
        )
        .purpose("email_marketing")
        .purpose("personalization")
        .purpose("analytics")
    }

    fn validate(params: &Params) -> Result<(), Error> {
        parse(params).map(|_| ())
    }

    fn plan(params: &Params) -> Result<Needs, Error> {
        let checked = checked(params)?;
        let mut needs = Needs::new();
        for name in checked.traits() {
            // `check` only accepts traits the schema gave a kind.
            let kind = schema::trait_kind(name).unwrap_or(ValueKind::Text);
            needs = needs.field(name, kind, FieldClass::Standard);
        }
        for query in checked.queries() {
            needs = needs.query(EventQuery {
                name: query.key.clone(),
                event_type: query.event.clone(),
                filter: query.filter.as_ref().map(ToString::to_string),
                window_ms: query.window.map(|w| w.millis()),
                sums: query.sums.iter().cloned().collect(),
            });
        }
        for segment in checked.segments() {
            needs = needs.segment(segment);
        }
        Ok(needs)
    }

    fn evaluate(params: &Params, batch: &Batch) -> Result<Memberships, Error> {
        let checked = checked(params)?;
        let clock = Clock {
            now_ms: batch.now(),
            utc_offset_minutes: i32::try_from(params.integer("utc_offset_minutes")?)
                .map_err(|_| Error::config("`utc_offset_minutes` is out of range"))?,
        };
        let program = checked.compile(&clock);
        let columns = columns(&program, batch)?;
        let member = (0..batch.rows())
            .map(|row| u8::from(program.evaluate(&columns.row(row))))
            .collect();
        Ok(Memberships {
            member,
            scores: Vec::new(),
            tiers: None,
        })
    }
}

thread_local! {
    /// The last rule checked in this instance, with its text. The SDK plans
    /// a batch's columns before it evaluates the batch, and both need the
    /// checked rule: this parses and checks it once. An instance serves one
    /// call, or the batches of one job, so the trait kinds it was checked
    /// with cannot change under it.
    static CHECKED: RefCell<Option<(String, Rc<CheckedRule>)>> = const { RefCell::new(None) };
}

/// The rule parameter, parsed and checked ([`parse`], [`check`]), or the
/// same rule as checked last in this instance.
fn checked(params: &Params) -> Result<Rc<CheckedRule>, Error> {
    let text = params.text("rule")?;
    let last = CHECKED.with_borrow(|last| {
        last.as_ref()
            .filter(|(checked_text, _)| checked_text == text)
            .map(|(_, rule)| rule.clone())
    });
    if let Some(rule) = last {
        return Ok(rule);
    }
    let rule = Rc::new(check(&parse(params)?)?);
    CHECKED.set(Some((text.to_owned(), rule.clone())));
    Ok(rule)
}

/// The rule parameter, parsed; a parse error names its line and column.
fn parse(params: &Params) -> Result<Rule, Error> {
    let text = params.text("rule")?;
    if text.len() > MAX_RULE_BYTES {
        return Err(Error::config(format!(
            "the rule is {} bytes; at most {MAX_RULE_BYTES}",
            text.len()
        )));
    }
    tessera_rules::parse(text).map_err(|e| Error::config(format!("rule: {e}")))
}

/// Type-checks the rule against what the host says of the tenant's traits
/// (their kinds, for those granted) and what the rule itself names of
/// events and segments: the host checks events, properties and segments
/// against the tenant's schema when the segment is saved, and serves only
/// what is granted; traits need their kinds here, to read the columns.
fn check(rule: &Rule) -> Result<CheckedRule, Error> {
    // The events the rule queries, and the properties it sums as numbers,
    // are known from the rule itself: seeding them saves the rounds that
    // would find them one error at a time.
    let mut schema = Schema::new();
    for query in rule.queries() {
        let properties = schema.events.entry(query.event).or_default();
        for property in query.sums {
            properties.insert(property, Type::Number);
        }
    }
    let mut unknown_traits = BTreeSet::new();
    for _ in 0..CHECK_ROUNDS {
        let errors = match tessera_rules::check(rule, &schema) {
            Ok(checked) => return Ok(checked),
            Err(errors) => errors,
        };
        let mut widened = false;
        for error in &errors {
            match &error.kind {
                TypeErrorKind::UnknownTrait(name) if !unknown_traits.contains(name) => {
                    match schema::trait_kind(name) {
                        Some(kind) => {
                            schema.traits.insert(name.clone(), rule_type(kind));
                        }
                        None => {
                            unknown_traits.insert(name.clone());
                        }
                    }
                    widened = true;
                }
                TypeErrorKind::UnknownEvent(event) => {
                    schema.events.entry(event.clone()).or_default();
                    widened = true;
                }
                TypeErrorKind::UnknownProperty { event, property } => {
                    schema
                        .events
                        .entry(event.clone())
                        .or_default()
                        .insert(property.clone(), Type::Any);
                    widened = true;
                }
                // A property the rule sums is a number: the host checked
                // that against the event schema when the rule was saved.
                TypeErrorKind::NotNumeric {
                    event, property, ..
                } if schema.events.get(event).and_then(|p| p.get(property)) == Some(&Type::Any) => {
                    schema
                        .events
                        .entry(event.clone())
                        .or_default()
                        .insert(property.clone(), Type::Number);
                    widened = true;
                }
                TypeErrorKind::UnknownSegment(segment) => {
                    schema.segments.insert(segment.clone());
                    widened = true;
                }
                _ => {}
            }
        }
        if !widened {
            return Err(refusal(&errors));
        }
    }
    tessera_rules::check(rule, &schema).map_err(|errors| refusal(&errors))
}

fn refusal(errors: &[tessera_rules::TypeError]) -> Error {
    let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Error::config(format!("rule: {}", listed.join("; ")))
}

fn rule_type(kind: ValueKind) -> Type {
    match kind {
        ValueKind::Boolean => Type::Boolean,
        ValueKind::Integer | ValueKind::Number => Type::Number,
        ValueKind::Timestamp => Type::Date,
        ValueKind::TextList => Type::List(&Type::String),
        // A trait of type `any` arrives as its JSON text.
        ValueKind::Text => Type::String,
    }
}

/// The batch's columns in the slots of `program`, borrowed.
fn columns<'a>(program: &Program, batch: &'a Batch) -> Result<Columns<'a>, Error> {
    let traits = program
        .traits()
        .iter()
        .map(|name| Ok(view(batch.field(name)?)))
        .collect::<Result<_, Error>>()?;
    let queries = program
        .queries()
        .iter()
        .map(|q| {
            let columns = batch.query(&q.key)?;
            Ok(tessera_rules::QueryColumns {
                count: view(columns.count_column()),
                first: view(columns.first_column()),
                last: view(columns.last_column()),
                sums: q
                    .sums
                    .iter()
                    .map(|p| {
                        columns.sum_column(p).map(view).ok_or_else(|| {
                            Error::internal(format!("query `{}` has no sum of `{p}`", q.key))
                        })
                    })
                    .collect::<Result<_, Error>>()?,
            })
        })
        .collect::<Result<_, Error>>()?;
    let segments = program
        .segments()
        .iter()
        .map(|name| Ok(view(batch.segment(name)?)))
        .collect::<Result<_, Error>>()?;
    Columns::new(program, batch.rows(), traits, queries, segments)
        .map_err(|e| Error::input(e.to_string()))
}

/// A column as the rules evaluator reads it.
fn view(column: ColumnRef<'_>) -> tessera_rules::Column<'_> {
    use tessera_rules::ColumnData as Data;
    let raw = column.raw();
    tessera_rules::Column {
        data: match &raw.data {
            ColumnData::Boolean(v) => Data::Boolean(v),
            ColumnData::Integer(v) => Data::Integer(v),
            ColumnData::Number(v) => Data::Number(v),
            ColumnData::Timestamp(v) => Data::Timestamp(v),
            ColumnData::Text(t) => Data::Text {
                dictionary: &t.dictionary,
                codes: &t.codes,
            },
            ColumnData::TextList(t) => Data::TextList {
                dictionary: &t.dictionary,
                offsets: &t.offsets,
                codes: &t.codes,
            },
        },
        present: &raw.present,
    }
}

tessera_sdk::export_segment!(Rules);

//! Evaluation of a checked rule against one profile.
//!
//! The caller supplies the profile's traits, its segment memberships and,
//! for each event query of the rule ([`Rule::queries`]), the facts about the
//! matching events ([`Facts`]): the host computes them from its running
//! aggregates or its event log, the rules plugin receives them as columns.
//! [`Facts::from_events`] computes them from a list of events, for tests and
//! small profiles.

use std::collections::{BTreeMap, BTreeSet};

use crate::ast::*;
use crate::calendar::{days_from_civil, days_in_month};
use crate::check::CheckedRule;

/// A trait or event property value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Number(f64),
    Boolean(bool),
    /// Milliseconds since the Unix epoch.
    Date(i64),
    List(Vec<Value>),
}

/// One event, for [`Facts::from_events`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: String,
    pub at_ms: i64,
    pub properties: BTreeMap<String, Value>,
}

/// What a profile's events say for one query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub count: u64,
    /// Property → sum over the matching events (a property without a sum
    /// counts as 0).
    pub sums: BTreeMap<String, f64>,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
}

/// The events an aggregate or `did` needs facts about, as the caller
/// provides them.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The key of [`Profile::facts`]: the query's canonical text, as
    /// `purchase where category = "shoes", last 7 days`.
    pub key: String,
    pub event: String,
    pub filter: Option<Expr>,
    pub window: Option<Duration>,
    /// The properties whose sums the rule uses.
    pub sums: BTreeSet<String>,
}

/// What a rule is evaluated against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub traits: BTreeMap<String, Value>,
    /// [`Query::key`] → facts; a query without facts has no events.
    pub facts: BTreeMap<String, Facts>,
    pub segments: BTreeSet<String>,
}

/// When the rule is evaluated, and the tenant's time zone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    pub now_ms: i64,
    /// The tenant's offset from UTC in minutes (east positive): the day of
    /// a date without a time (`date "2024-03-01"`, a date trait
    /// `"2024-03-01"`) begins at midnight there, as does a date-time
    /// without a zone.
    pub utc_offset_minutes: i32,
}

impl Rule {
    /// The event queries of the rule, once each, in order of appearance.
    pub fn queries(&self) -> Vec<Query> {
        let mut queries: Vec<Query> = Vec::new();
        let mut add = |query: &EventQuery, sum: Option<&str>| {
            let key = query_key(query);
            let index = match queries.iter().position(|q| q.key == key) {
                Some(index) => index,
                None => {
                    queries.push(Query {
                        key,
                        event: query.event.clone(),
                        filter: query.filter.as_deref().cloned(),
                        window: query.window,
                        sums: BTreeSet::new(),
                    });
                    queries.len() - 1
                }
            };
            if let Some(sum) = sum {
                queries[index].sums.insert(sum.to_owned());
            }
        };
        walk(&self.expr, &mut add);
        queries
    }
}

fn walk(expr: &Expr, add: &mut impl FnMut(&EventQuery, Option<&str>)) {
    let operand = |o: &Operand, add: &mut dyn FnMut(&EventQuery, Option<&str>)| {
        if let OperandKind::Aggregate(a) = &o.kind {
            add(&a.query, a.property.as_ref().map(|(p, _)| p.as_str()));
        }
    };
    match &expr.kind {
        ExprKind::And(a, b) | ExprKind::Or(a, b) => {
            walk(a, add);
            walk(b, add);
        }
        ExprKind::Not(e) => walk(e, add),
        ExprKind::Compare { left, right, .. }
        | ExprKind::Contains {
            operand: left,
            value: right,
        } => {
            operand(left, add);
            operand(right, add);
        }
        ExprKind::In { operand: o, .. } | ExprKind::IsSet { operand: o, .. } => operand(o, add),
        ExprKind::Did(query) => add(query, None),
        ExprKind::InSegment { .. } => {}
    }
}

pub(crate) fn query_key(query: &EventQuery) -> String {
    let mut key = query.event.clone();
    if let Some(filter) = &query.filter {
        key.push_str(&format!(" where {filter}"));
    }
    if let Some(window) = &query.window {
        key.push_str(&format!(", last {window}"));
    }
    key
}

/// Whether an event at `at_ms` is inside `window` ending at `now_ms`: from
/// `now - window` to `now`, both included. Without a window, every event
/// up to now.
pub fn in_window(window: Option<Duration>, at_ms: i64, now_ms: i64) -> bool {
    let from = window.map_or(i64::MIN, |w| now_ms.saturating_sub(w.millis()));
    at_ms >= from && at_ms <= now_ms
}

impl Facts {
    /// The facts of `query` over `events` at `clock`.
    pub fn from_events<'a>(
        events: impl IntoIterator<Item = &'a Event>,
        query: &Query,
        clock: &Clock,
    ) -> Facts {
        let mut facts = Facts::default();
        for event in events {
            if event.event_type != query.event
                || !in_window(query.window, event.at_ms, clock.now_ms)
                || !query
                    .filter
                    .as_ref()
                    .is_none_or(|f| eval(f, &Env::Event(&event.properties), clock))
            {
                continue;
            }
            facts.count += 1;
            facts.first_ms = Some(facts.first_ms.map_or(event.at_ms, |t| t.min(event.at_ms)));
            facts.last_ms = Some(facts.last_ms.map_or(event.at_ms, |t| t.max(event.at_ms)));
            for property in &query.sums {
                if let Some(Value::Number(n)) = event.properties.get(property) {
                    *facts.sums.entry(property.clone()).or_default() += n;
                }
            }
        }
        facts
    }
}

impl Profile {
    /// A profile with the facts of every query of `rule` computed from
    /// `events`.
    pub fn from_events(
        traits: BTreeMap<String, Value>,
        events: &[Event],
        segments: BTreeSet<String>,
        rule: &Rule,
        clock: &Clock,
    ) -> Profile {
        let facts = rule
            .queries()
            .into_iter()
            .map(|q| {
                let facts = Facts::from_events(events, &q, clock);
                (q.key, facts)
            })
            .collect();
        Profile {
            traits,
            facts,
            segments,
        }
    }
}

impl CheckedRule {
    /// Whether `profile` meets the rule at `clock`.
    pub fn evaluate(&self, profile: &Profile, clock: &Clock) -> bool {
        eval(&self.rule().expr, &Env::Profile(profile), clock)
    }
}

enum Env<'a> {
    Profile(&'a Profile),
    /// Inside a `where` clause: the event's properties.
    Event(&'a BTreeMap<String, Value>),
}

/// Whether an event with these `properties` meets `filter` (a condition
/// after `where`, as [`crate::parse_filter`] returns it) at `clock`: the
/// test [`Facts::from_events`] applies to each event, for hosts that read
/// the events themselves.
pub fn filter_matches(filter: &Expr, properties: &BTreeMap<String, Value>, clock: &Clock) -> bool {
    eval(filter, &Env::Event(properties), clock)
}

/// The event properties `filter` reads, once each, in name order.
pub fn filter_properties(filter: &Expr) -> BTreeSet<String> {
    fn operand(o: &Operand, into: &mut BTreeSet<String>) {
        if let OperandKind::Property(name) = &o.kind {
            into.insert(name.clone());
        }
    }
    fn walk(expr: &Expr, into: &mut BTreeSet<String>) {
        match &expr.kind {
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                walk(a, into);
                walk(b, into);
            }
            ExprKind::Not(e) => walk(e, into),
            ExprKind::Compare { left, right, .. }
            | ExprKind::Contains {
                operand: left,
                value: right,
            } => {
                operand(left, into);
                operand(right, into);
            }
            ExprKind::In { operand: o, .. } | ExprKind::IsSet { operand: o, .. } => {
                operand(o, into)
            }
            ExprKind::Did(_) | ExprKind::InSegment { .. } => {}
        }
    }
    let mut into = BTreeSet::new();
    walk(filter, &mut into);
    into
}

/// A value while evaluating: borrowed where it can be.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Date(i64),
    List(&'a [Value]),
}

fn eval(expr: &Expr, env: &Env<'_>, clock: &Clock) -> bool {
    match &expr.kind {
        ExprKind::And(a, b) => eval(a, env, clock) && eval(b, env, clock),
        ExprKind::Or(a, b) => eval(a, env, clock) || eval(b, env, clock),
        ExprKind::Not(e) => !eval(e, env, clock),
        ExprKind::Compare { left, op, right } => {
            match (value(left, env, clock), value(right, env, clock)) {
                (Some(l), Some(r)) => compare(&l, *op, &r, clock),
                _ => false,
            }
        }
        ExprKind::In {
            operand,
            values,
            negated,
        } => {
            let Some(v) = value(operand, env, clock) else {
                return false;
            };
            let found = values
                .iter()
                .any(|l| compare(&v, CmpOp::Eq, &literal(l, clock), clock));
            found != *negated
        }
        ExprKind::Contains { operand, value: v } => {
            match (value(operand, env, clock), value(v, env, clock)) {
                (Some(Val::Str(s)), Some(Val::Str(part))) => s.contains(part),
                (Some(Val::List(items)), Some(v)) => items
                    .iter()
                    .any(|item| compare(&borrow(item), CmpOp::Eq, &v, clock)),
                _ => false,
            }
        }
        ExprKind::IsSet { operand, negated } => value(operand, env, clock).is_some() != *negated,
        ExprKind::Did(query) => facts(query, env).count > 0,
        ExprKind::InSegment { name, .. } => match env {
            Env::Profile(p) => p.segments.contains(name),
            Env::Event(_) => false,
        },
    }
}

fn facts<'a>(query: &EventQuery, env: &Env<'a>) -> &'a Facts {
    static NONE: Facts = Facts {
        count: 0,
        sums: BTreeMap::new(),
        first_ms: None,
        last_ms: None,
    };
    match env {
        Env::Profile(p) => p.facts.get(&query_key(query)).unwrap_or(&NONE),
        Env::Event(_) => &NONE,
    }
}

fn value<'a>(operand: &'a Operand, env: &Env<'a>, clock: &Clock) -> Option<Val<'a>> {
    match &operand.kind {
        OperandKind::Trait(name) => match env {
            Env::Profile(p) => p.traits.get(name).map(borrow),
            Env::Event(_) => None,
        },
        OperandKind::Property(name) => match env {
            Env::Event(properties) => properties.get(name).map(borrow),
            Env::Profile(_) => None,
        },
        OperandKind::Literal(l) => Some(literal(l, clock)),
        OperandKind::Now(offset) => Some(Val::Date(match offset {
            None => clock.now_ms,
            Some(o) if o.minus => clock.now_ms.saturating_sub(o.duration.millis()),
            Some(o) => clock.now_ms.saturating_add(o.duration.millis()),
        })),
        OperandKind::Aggregate(a) => {
            let facts = facts(&a.query, env);
            let sum = || {
                a.property
                    .as_ref()
                    .and_then(|(p, _)| facts.sums.get(p))
                    .copied()
                    .unwrap_or(0.0)
            };
            match a.func {
                AggFunc::Count => Some(Val::Num(facts.count as f64)),
                AggFunc::Sum => Some(Val::Num(sum())),
                AggFunc::Avg => (facts.count > 0).then(|| Val::Num(sum() / facts.count as f64)),
                AggFunc::FirstSeen => facts.first_ms.map(Val::Date),
                AggFunc::LastSeen => facts.last_ms.map(Val::Date),
            }
        }
    }
}

fn borrow(value: &Value) -> Val<'_> {
    match value {
        Value::String(s) => Val::Str(s),
        Value::Number(n) => Val::Num(*n),
        Value::Boolean(b) => Val::Bool(*b),
        Value::Date(d) => Val::Date(*d),
        Value::List(items) => Val::List(items),
    }
}

fn literal<'a>(literal: &'a Literal, clock: &Clock) -> Val<'a> {
    match literal {
        Literal::String(s) => Val::Str(s),
        Literal::Number(n) => Val::Num(*n),
        Literal::Bool(b) => Val::Bool(*b),
        // The parser admits only date-shaped text; an impossible day (the
        // 31st of April) compares as a string, so never with a date.
        Literal::Date(d) => parse_date(d, clock.utc_offset_minutes).map_or(Val::Str(d), Val::Date),
    }
}

/// Compares two values; values of different types are never equal nor
/// ordered (a string that is a date compares with a date as that date).
fn compare(l: &Val<'_>, op: CmpOp, r: &Val<'_>, clock: &Clock) -> bool {
    use std::cmp::Ordering;
    let ordering = match (l, r) {
        (Val::Num(a), Val::Num(b)) => a.partial_cmp(b),
        (Val::Date(a), Val::Date(b)) => Some(a.cmp(b)),
        (Val::Date(a), Val::Str(s)) => parse_date(s, clock.utc_offset_minutes).map(|b| a.cmp(&b)),
        (Val::Str(s), Val::Date(b)) => parse_date(s, clock.utc_offset_minutes).map(|a| a.cmp(b)),
        (Val::Str(a), Val::Str(b)) if !op.is_ordering() => Some(a.cmp(b)),
        (Val::Bool(a), Val::Bool(b)) if !op.is_ordering() => Some(a.cmp(b)),
        (Val::List(a), Val::List(b)) if !op.is_ordering() => {
            let equal = a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| compare(&borrow(x), CmpOp::Eq, &borrow(y), clock));
            Some(if equal {
                Ordering::Equal
            } else {
                Ordering::Less
            })
        }
        _ => None,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Ne => ordering != Ordering::Equal,
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Le => ordering != Ordering::Greater,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
    }
}

/// Milliseconds since the epoch of `YYYY-MM-DD` (midnight at the offset),
/// `YYYY-MM-DDThh:mm[:ss[.fff]]` (at the offset) or the same followed by
/// `Z` or `±hh:mm`.
pub fn parse_date(text: &str, utc_offset_minutes: i32) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let mut offset = i64::from(utc_offset_minutes);
    let rest = &text[10..];
    if let Some(time) = rest.strip_prefix('T') {
        let t = time.as_bytes();
        let (hour, minute) = (digits(11..13)?, digits(14..16)?);
        if t.get(2) != Some(&b':') || hour > 23 || minute > 59 {
            return None;
        }
        let mut i = 5;
        let mut second_ms = 0;
        if t.get(i) == Some(&b':') {
            let second = digits(17..19)?;
            if second > 60 {
                return None;
            }
            second_ms = second * 1000;
            i = 8;
            if t.get(i) == Some(&b'.') {
                i += 1;
                let start = i;
                while t.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let fraction = &time[start..i];
                if fraction.is_empty() {
                    return None;
                }
                let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
                second_ms += millis.parse::<i64>().ok()?;
            }
        }
        ms += hour * 3_600_000 + minute * 60_000 + second_ms;
        match &time[i..] {
            "" => {}
            "Z" | "z" => offset = 0,
            zone => {
                let z = zone.as_bytes();
                let sign = match z.first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return None,
                };
                let digit = |k: usize| {
                    z.get(k)
                        .filter(|d| d.is_ascii_digit())
                        .map(|d| i64::from(d - b'0'))
                };
                if z.len() != 6 || z[3] != b':' {
                    return None;
                }
                let hours = digit(1)? * 10 + digit(2)?;
                let minutes = digit(4)? * 10 + digit(5)?;
                offset = sign * (hours * 60 + minutes);
            }
        }
    } else if !rest.is_empty() {
        return None;
    }
    Some(ms - offset * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01", 0), Some(0));
        assert_eq!(parse_date("1970-01-02", 0), Some(86_400_000));
        assert_eq!(parse_date("2000-03-01", 0), Some(951_868_800_000));
        assert_eq!(parse_date("2024-02-29", 0), Some(1_709_164_800_000));
        assert_eq!(parse_date("2023-02-29", 0), None);
        assert_eq!(parse_date("2024-04-31", 0), None);
        // Midnight in Oslo in winter is 23:00 UTC the day before.
        assert_eq!(parse_date("1970-01-02", 60), Some(86_400_000 - 3_600_000));
        assert_eq!(parse_date("1970-01-01T01:02:03Z", 60), Some(3_723_000));
        assert_eq!(parse_date("1970-01-01T01:02:03.5Z", 0), Some(3_723_500));
        assert_eq!(
            parse_date("1970-01-01T01:02:03.123456Z", 0),
            Some(3_723_123)
        );
        assert_eq!(parse_date("1970-01-01T01:02", 0), Some(3_720_000));
        assert_eq!(parse_date("1970-01-01T01:00:00+01:00", -300), Some(0));
        assert_eq!(parse_date("1970-01-01T00:00:00-05:30", 0), Some(19_800_000));
        for bad in [
            "1970-01-01T",
            "1970-01-01T25:00",
            "1970-01-01T01:00:00+1",
            "1970-01-01 01:00",
            "1970-1-01",
            "1970-01-01T01:00:00.Z",
        ] {
            assert_eq!(parse_date(bad, 0), None, "{bad}");
        }
    }
}

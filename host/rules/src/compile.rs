//! A checked rule compiled for one clock: traits, event queries (with their
//! sums) and segments resolved to slots, constants and `now ± …` computed
//! once, so that evaluating a row allocates nothing and looks nothing up by
//! name. It must mean exactly what [`CheckedRule::evaluate`] means.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::ast::*;
use crate::check::CheckedRule;
use crate::eval::{Clock, Profile, Query, Value, parse_date, query_key};

/// A trait value as a [`Row`] lends it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    String(&'a str),
    Number(f64),
    Boolean(bool),
    /// Milliseconds since the Unix epoch.
    Date(i64),
    List(ListRef<'a>),
}

/// A list value as a [`Row`] lends it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ListRef<'a> {
    Values(&'a [Value]),
    /// Strings as indices into a dictionary, as a batch's columns carry
    /// them; an index past the dictionary's end is no element.
    Coded {
        dictionary: &'a [String],
        codes: &'a [u32],
    },
}

impl<'a> ListRef<'a> {
    /// The elements, in order.
    pub fn iter(self) -> impl Iterator<Item = ValueRef<'a>> {
        let (values, dictionary, codes) = match self {
            ListRef::Values(values) => (values, &[][..], &[][..]),
            ListRef::Coded { dictionary, codes } => (&[][..], dictionary, codes),
        };
        values.iter().map(Value::borrowed).chain(
            codes
                .iter()
                .filter_map(|code| dictionary.get(*code as usize))
                .map(|s| ValueRef::String(s)),
        )
    }
}

impl Value {
    /// The value, borrowed.
    pub fn borrowed(&self) -> ValueRef<'_> {
        match self {
            Value::String(s) => ValueRef::String(s),
            Value::Number(n) => ValueRef::Number(*n),
            Value::Boolean(b) => ValueRef::Boolean(*b),
            Value::Date(d) => ValueRef::Date(*d),
            Value::List(items) => ValueRef::List(ListRef::Values(items)),
        }
    }
}

/// What a [`Program`] reads of one profile, by slot: the positions of
/// [`Program::traits`], [`Program::queries`] (and of each query's
/// [`Query::sums`]) and [`Program::segments`].
pub trait Row {
    /// The trait's value; `None`: not set.
    fn trait_value(&self, slot: usize) -> Option<ValueRef<'_>>;
    /// How many events match the query (0 without facts).
    fn count(&self, query: usize) -> u64;
    /// The sum of the query's `sum`-th property (0 without facts).
    fn sum(&self, query: usize, sum: usize) -> f64;
    /// When the first matching event happened.
    fn first_ms(&self, query: usize) -> Option<i64>;
    /// When the last matching event happened.
    fn last_ms(&self, query: usize) -> Option<i64>;
    /// Whether the profile is a member of the segment.
    fn in_segment(&self, segment: usize) -> bool;
}

/// A rule ready to evaluate rows at one clock ([`CheckedRule::compile`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// The rule as a graph of tests: each evaluates one condition and
    /// names the step to take next, or the answer, for either outcome;
    /// `and`, `or` and `not` are only where the arrows point. Evaluating a
    /// row is a loop over the conditions it needs and nothing more: no
    /// recursion (in a plugin every call costs a fuel and an epoch check),
    /// no step for the connectives.
    steps: Vec<Step>,
    /// The first step (every rule has at least one condition).
    entry: usize,
    utc_offset_minutes: i32,
    traits: Vec<String>,
    queries: Vec<Query>,
    segments: Vec<String>,
}

/// Where a step leads when the row meets the rule.
const MEETS: usize = usize::MAX;
/// Where a step leads when the row fails the rule.
const FAILS: usize = usize::MAX - 1;

#[derive(Debug, Clone, PartialEq)]
struct Step {
    cond: Cond,
    /// The next step (or [`MEETS`], [`FAILS`]) when the condition holds.
    then: usize,
    /// The next step when it does not.
    otherwise: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Compare(Src, CmpOp, Src),
    /// A comparison whose sides are numbers whatever the row (counts, sums,
    /// averages, number constants): compared without a detour through
    /// values of any type.
    Numbers(Num, CmpOp, Num),
    /// The same for times (first and last times, `now`, date constants).
    Dates(Time, CmpOp, Time),
    In {
        operand: Src,
        values: Vec<Const>,
        negated: bool,
    },
    Contains(Src, Src),
    IsSet(Src, bool),
    Did(usize),
    InSegment(usize),
}

/// Where an operand's value comes from.
#[derive(Debug, Clone, PartialEq)]
enum Src {
    Trait(usize),
    /// An event property outside a `where` clause: never set.
    Missing,
    Const(Const),
    Count(usize),
    /// The query and the slot of the property among its sums (none: a sum
    /// of nothing, 0).
    Sum(usize, Option<usize>),
    Avg(usize, Option<usize>),
    First(usize),
    Last(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Const(f64),
    Count(usize),
    Sum(usize, Option<usize>),
    Avg(usize, Option<usize>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Time {
    Const(i64),
    First(usize),
    Last(usize),
}

impl Src {
    fn num(&self) -> Option<Num> {
        Some(match *self {
            Src::Const(Const::Number(n)) => Num::Const(n),
            Src::Count(q) => Num::Count(q),
            Src::Sum(q, s) => Num::Sum(q, s),
            Src::Avg(q, s) => Num::Avg(q, s),
            _ => return None,
        })
    }

    fn time(&self) -> Option<Time> {
        Some(match *self {
            Src::Const(Const::Date(ms)) => Time::Const(ms),
            Src::First(q) => Time::First(q),
            Src::Last(q) => Time::Last(q),
            _ => return None,
        })
    }
}

/// A constant, computed at compile time.
#[derive(Debug, Clone, PartialEq)]
enum Const {
    /// With the date the text reads as, if it does: a string compares with
    /// a date as that date.
    String(String, Option<i64>),
    Number(f64),
    Boolean(bool),
    Date(i64),
}

impl CheckedRule {
    /// The rule compiled for `clock`: evaluate rows with
    /// [`Program::evaluate`]; a row read through [`Program::profile_row`]
    /// gives what [`CheckedRule::evaluate`] gives.
    pub fn compile(&self, clock: &Clock) -> Program {
        let queries = self.queries().to_vec();
        let mut traits = BTreeSet::new();
        let mut segments = BTreeSet::new();
        names(&self.rule().expr, &mut traits, &mut segments);
        let mut compiler = Compiler {
            program: Program {
                steps: Vec::new(),
                entry: FAILS,
                utc_offset_minutes: clock.utc_offset_minutes,
                traits: traits.into_iter().collect(),
                queries,
                segments: segments.into_iter().collect(),
            },
            clock: *clock,
            keys: BTreeMap::new(),
        };
        compiler.keys = compiler
            .program
            .queries
            .iter()
            .enumerate()
            .map(|(i, q)| (q.key.clone(), i))
            .collect();
        compiler.program.entry = compiler.expr(&self.rule().expr, MEETS, FAILS);
        compiler.program
    }
}

/// The traits and segments outside `where` clauses: those are what a
/// profile lends (inside, traits and segments are never set).
fn names(expr: &Expr, traits: &mut BTreeSet<String>, segments: &mut BTreeSet<String>) {
    let mut operand = |o: &Operand| {
        if let OperandKind::Trait(name) = &o.kind {
            traits.insert(name.clone());
        }
    };
    match &expr.kind {
        ExprKind::And(a, b) | ExprKind::Or(a, b) => {
            names(a, traits, segments);
            names(b, traits, segments);
        }
        ExprKind::Not(e) => names(e, traits, segments),
        ExprKind::Compare { left, right, .. }
        | ExprKind::Contains {
            operand: left,
            value: right,
        } => {
            operand(left);
            operand(right);
        }
        ExprKind::In { operand: o, .. } | ExprKind::IsSet { operand: o, .. } => operand(o),
        ExprKind::Did(_) => {}
        ExprKind::InSegment { name, .. } => {
            segments.insert(name.clone());
        }
    }
}

struct Compiler {
    program: Program,
    clock: Clock,
    /// Query key → slot.
    keys: BTreeMap<String, usize>,
}

impl Compiler {
    /// The steps of `expr`, leading to `then` when it holds and to
    /// `otherwise` when not; returns its first step. The right side of an
    /// `and` or an `or` is laid out first, so that the left one, evaluated
    /// first, knows where to go.
    fn expr(&mut self, expr: &Expr, then: usize, otherwise: usize) -> usize {
        match &expr.kind {
            ExprKind::And(a, b) => {
                let b = self.expr(b, then, otherwise);
                self.expr(a, b, otherwise)
            }
            ExprKind::Or(a, b) => {
                let b = self.expr(b, then, otherwise);
                self.expr(a, then, b)
            }
            ExprKind::Not(e) => self.expr(e, otherwise, then),
            _ => {
                let cond = self.cond(expr);
                self.program.steps.push(Step {
                    cond,
                    then,
                    otherwise,
                });
                self.program.steps.len() - 1
            }
        }
    }

    /// The condition of a leaf of the rule (not `and`, `or` nor `not`).
    fn cond(&mut self, expr: &Expr) -> Cond {
        match &expr.kind {
            ExprKind::And(..) | ExprKind::Or(..) | ExprKind::Not(_) => {
                unreachable!("`and`, `or` and `not` are arrows between steps, not conditions")
            }
            ExprKind::Compare { left, op, right } => {
                let (left, right) = (self.operand(left), self.operand(right));
                if let (Some(l), Some(r)) = (left.num(), right.num()) {
                    Cond::Numbers(l, *op, r)
                } else if let (Some(l), Some(r)) = (left.time(), right.time()) {
                    Cond::Dates(l, *op, r)
                } else {
                    Cond::Compare(left, *op, right)
                }
            }
            ExprKind::In {
                operand,
                values,
                negated,
            } => Cond::In {
                operand: self.operand(operand),
                values: values.iter().map(|l| self.literal(l)).collect(),
                negated: *negated,
            },
            ExprKind::Contains { operand, value } => {
                Cond::Contains(self.operand(operand), self.operand(value))
            }
            ExprKind::IsSet { operand, negated } => Cond::IsSet(self.operand(operand), *negated),
            ExprKind::Did(query) => Cond::Did(self.query(query)),
            ExprKind::InSegment { name, .. } => Cond::InSegment(slot(&self.program.segments, name)),
        }
    }

    fn query(&self, query: &EventQuery) -> usize {
        // `Rule::queries` listed every query of the rule under its key.
        self.keys[&query_key(query)]
    }

    fn operand(&self, operand: &Operand) -> Src {
        match &operand.kind {
            OperandKind::Trait(name) => Src::Trait(slot(&self.program.traits, name)),
            OperandKind::Property(_) => Src::Missing,
            OperandKind::Literal(l) => Src::Const(self.literal(l)),
            OperandKind::Now(offset) => Src::Const(Const::Date(match offset {
                None => self.clock.now_ms,
                Some(o) if o.minus => self.clock.now_ms.saturating_sub(o.duration.millis()),
                Some(o) => self.clock.now_ms.saturating_add(o.duration.millis()),
            })),
            OperandKind::Aggregate(a) => {
                let query = self.query(&a.query);
                let sum = a.property.as_ref().and_then(|(p, _)| {
                    self.program.queries[query].sums.iter().position(|s| s == p)
                });
                match a.func {
                    AggFunc::Count => Src::Count(query),
                    AggFunc::Sum => Src::Sum(query, sum),
                    AggFunc::Avg => Src::Avg(query, sum),
                    AggFunc::FirstSeen => Src::First(query),
                    AggFunc::LastSeen => Src::Last(query),
                }
            }
        }
    }

    fn literal(&self, literal: &Literal) -> Const {
        let offset = self.clock.utc_offset_minutes;
        match literal {
            Literal::String(s) => Const::String(s.clone(), parse_date(s, offset)),
            Literal::Number(n) => Const::Number(*n),
            Literal::Bool(b) => Const::Boolean(*b),
            // An impossible day (the 31st of April) compares as a string,
            // so never with a date.
            Literal::Date(d) => match parse_date(d, offset) {
                Some(ms) => Const::Date(ms),
                None => Const::String(d.clone(), None),
            },
        }
    }
}

/// The position of `name` in the sorted `names`, which holds it.
fn slot(names: &[String], name: &str) -> usize {
    names
        .binary_search_by(|n| n.as_str().cmp(name))
        .expect("every name was collected")
}

/// A value while evaluating.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    /// A string, with the date it reads as when that is known already (a
    /// constant's); `None`: parse it if it meets a date.
    Str(&'a str, Option<Option<i64>>),
    Num(f64),
    Bool(bool),
    Date(i64),
    List(ListRef<'a>),
}

impl<'a> From<ValueRef<'a>> for Val<'a> {
    fn from(value: ValueRef<'a>) -> Self {
        match value {
            ValueRef::String(s) => Val::Str(s, None),
            ValueRef::Number(n) => Val::Num(n),
            ValueRef::Boolean(b) => Val::Bool(b),
            ValueRef::Date(d) => Val::Date(d),
            ValueRef::List(l) => Val::List(l),
        }
    }
}

impl Const {
    fn val(&self) -> Val<'_> {
        match self {
            Const::String(s, date) => Val::Str(s, Some(*date)),
            Const::Number(n) => Val::Num(*n),
            Const::Boolean(b) => Val::Bool(*b),
            Const::Date(d) => Val::Date(*d),
        }
    }
}

impl Program {
    /// The traits the program reads: slot `i` of [`Row::trait_value`] is
    /// `traits()[i]` (in name order, as [`CheckedRule::traits`]).
    pub fn traits(&self) -> &[String] {
        &self.traits
    }

    /// The event queries: slot `i` of [`Row::count`] and the others is
    /// `queries()[i]` (in the order of [`Rule::queries`]); sum slot `j` of
    /// query `i` is the `j`-th property of its `sums`, in name order.
    pub fn queries(&self) -> &[Query] {
        &self.queries
    }

    /// The segments: slot `i` of [`Row::in_segment`] is `segments()[i]` (in
    /// name order, as [`CheckedRule::segments`]).
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether `row` meets the rule.
    pub fn evaluate(&self, row: &impl Row) -> bool {
        let mut at = self.entry;
        // Every index but the two answers is a step's.
        while let Some(step) = self.steps.get(at) {
            at = if self.test(&step.cond, row) {
                step.then
            } else {
                step.otherwise
            };
        }
        at == MEETS
    }

    /// `profile` as a row of this program, for hosts that hold profiles.
    pub fn profile_row<'a>(&'a self, profile: &'a Profile) -> ProfileRow<'a> {
        ProfileRow {
            program: self,
            profile,
        }
    }

    #[inline(always)]
    fn test(&self, cond: &Cond, row: &impl Row) -> bool {
        match cond {
            Cond::Compare(left, op, right) => match (self.value(left, row), self.value(right, row))
            {
                (Some(l), Some(r)) => self.compare(l, *op, r),
                _ => false,
            },
            Cond::Numbers(left, op, right) => match (number(*left, row), number(*right, row)) {
                (Some(l), Some(r)) => holds(l.partial_cmp(&r), *op),
                _ => false,
            },
            Cond::Dates(left, op, right) => match (time(*left, row), time(*right, row)) {
                (Some(l), Some(r)) => holds(Some(l.cmp(&r)), *op),
                _ => false,
            },
            Cond::In {
                operand,
                values,
                negated,
            } => {
                let Some(v) = self.value(operand, row) else {
                    return false;
                };
                let found = values.iter().any(|c| self.compare(v, CmpOp::Eq, c.val()));
                found != *negated
            }
            Cond::Contains(operand, value) => {
                match (self.value(operand, row), self.value(value, row)) {
                    (Some(Val::Str(s, _)), Some(Val::Str(part, _))) => s.contains(part),
                    (Some(Val::List(items)), Some(v)) => items
                        .iter()
                        .any(|item| self.compare(item.into(), CmpOp::Eq, v)),
                    _ => false,
                }
            }
            Cond::IsSet(operand, negated) => self.value(operand, row).is_some() != *negated,
            Cond::Did(query) => row.count(*query) > 0,
            Cond::InSegment(segment) => row.in_segment(*segment),
        }
    }

    fn value<'a>(&'a self, src: &'a Src, row: &'a impl Row) -> Option<Val<'a>> {
        match src {
            Src::Trait(slot) => row.trait_value(*slot).map(Val::from),
            Src::Missing => None,
            Src::Const(c) => Some(c.val()),
            Src::Count(q) => number(Num::Count(*q), row).map(Val::Num),
            Src::Sum(q, sum) => number(Num::Sum(*q, *sum), row).map(Val::Num),
            Src::Avg(q, sum) => number(Num::Avg(*q, *sum), row).map(Val::Num),
            Src::First(q) => row.first_ms(*q).map(Val::Date),
            Src::Last(q) => row.last_ms(*q).map(Val::Date),
        }
    }

    /// As the tree evaluator compares: values of different types are never
    /// equal nor ordered, and a string that is a date compares with a date
    /// as that date.
    fn compare(&self, l: Val<'_>, op: CmpOp, r: Val<'_>) -> bool {
        let date = |s: &str, known: Option<Option<i64>>| {
            known.unwrap_or_else(|| parse_date(s, self.utc_offset_minutes))
        };
        let ordering = match (l, r) {
            (Val::Num(a), Val::Num(b)) => a.partial_cmp(&b),
            (Val::Date(a), Val::Date(b)) => Some(a.cmp(&b)),
            (Val::Date(a), Val::Str(s, known)) => date(s, known).map(|b| a.cmp(&b)),
            (Val::Str(s, known), Val::Date(b)) => date(s, known).map(|a| a.cmp(&b)),
            (Val::Str(a, _), Val::Str(b, _)) if !op.is_ordering() => Some(a.cmp(b)),
            (Val::Bool(a), Val::Bool(b)) if !op.is_ordering() => Some(a.cmp(&b)),
            (Val::List(a), Val::List(b)) if !op.is_ordering() => {
                let (mut a, mut b) = (a.iter(), b.iter());
                let equal = loop {
                    match (a.next(), b.next()) {
                        (None, None) => break true,
                        (Some(x), Some(y)) if self.compare(x.into(), CmpOp::Eq, y.into()) => {}
                        _ => break false,
                    }
                };
                Some(if equal {
                    Ordering::Equal
                } else {
                    Ordering::Less
                })
            }
            _ => None,
        };
        holds(ordering, op)
    }
}

/// Whether two values so ordered meet `op` (unordered: never).
#[inline(always)]
fn holds(ordering: Option<Ordering>, op: CmpOp) -> bool {
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

#[inline(always)]
fn number(num: Num, row: &impl Row) -> Option<f64> {
    match num {
        Num::Const(n) => Some(n),
        Num::Count(q) => Some(row.count(q) as f64),
        Num::Sum(q, sum) => Some(sum.map_or(0.0, |s| row.sum(q, s))),
        Num::Avg(q, sum) => {
            let count = row.count(q);
            (count > 0).then(|| sum.map_or(0.0, |s| row.sum(q, s)) / count as f64)
        }
    }
}

#[inline(always)]
fn time(time: Time, row: &impl Row) -> Option<i64> {
    match time {
        Time::Const(ms) => Some(ms),
        Time::First(q) => row.first_ms(q),
        Time::Last(q) => row.last_ms(q),
    }
}

/// A [`Profile`] read as a row of a [`Program`] ([`Program::profile_row`]):
/// by name, as [`CheckedRule::evaluate`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct ProfileRow<'a> {
    program: &'a Program,
    profile: &'a Profile,
}

impl ProfileRow<'_> {
    fn facts(&self, query: usize) -> Option<&crate::eval::Facts> {
        self.profile.facts.get(&self.program.queries[query].key)
    }
}

impl Row for ProfileRow<'_> {
    fn trait_value(&self, slot: usize) -> Option<ValueRef<'_>> {
        self.profile
            .traits
            .get(&self.program.traits[slot])
            .map(Value::borrowed)
    }

    fn count(&self, query: usize) -> u64 {
        self.facts(query).map_or(0, |f| f.count)
    }

    fn sum(&self, query: usize, sum: usize) -> f64 {
        let Some(property) = self.program.queries[query].sums.iter().nth(sum) else {
            return 0.0;
        };
        self.facts(query)
            .and_then(|f| f.sums.get(property))
            .copied()
            .unwrap_or(0.0)
    }

    fn first_ms(&self, query: usize) -> Option<i64> {
        self.facts(query).and_then(|f| f.first_ms)
    }

    fn last_ms(&self, query: usize) -> Option<i64> {
        self.facts(query).and_then(|f| f.last_ms)
    }

    fn in_segment(&self, segment: usize) -> bool {
        self.profile
            .segments
            .contains(&self.program.segments[segment])
    }
}

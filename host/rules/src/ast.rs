//! The syntax tree of a rule, and its canonical text (`Display`): printing a
//! rule and parsing the text gives the same tree back, spans aside.

use std::fmt;

use crate::Span;

/// A parsed rule: one condition that a profile meets or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub expr: Expr,
}

/// A condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `left op right`.
    Compare {
        left: Operand,
        op: CmpOp,
        right: Operand,
    },
    /// `operand in [v, …]` or `operand not in [v, …]`.
    In {
        operand: Operand,
        values: Vec<Literal>,
        negated: bool,
    },
    /// `operand contains value`: a list holds the value, or a string holds it
    /// as a substring.
    Contains {
        operand: Operand,
        value: Operand,
    },
    /// `operand is set` / `operand is not set`.
    IsSet {
        operand: Operand,
        negated: bool,
    },
    /// `did(event where …, last N unit)`: at least one such event.
    Did(EventQuery),
    /// `in segment "name"`.
    InSegment {
        name: String,
        span: Span,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether the operator orders its operands (only numbers and dates are
    /// ordered).
    pub fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// A value in a condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Operand {
    pub kind: OperandKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OperandKind {
    /// `trait.name`.
    Trait(String),
    /// A bare name inside a `where` clause: a property of the event.
    Property(String),
    Literal(Literal),
    /// `now`, `now - 30 days`, `now + 2 hours`.
    Now(Option<Offset>),
    Aggregate(Aggregate),
}

/// A signed duration added to `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    /// `true` for `now - …`.
    pub minus: bool,
    pub duration: Duration,
}

/// A constant.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    /// Finite; written without exponent.
    Number(f64),
    Bool(bool),
    /// `date "2024-03-01"` or `date "2024-03-01T12:00:00Z"`, as written.
    Date(String),
}

/// A measure of a subject's events: `count(…)`, `sum(event.property …)`, …
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub func: AggFunc,
    pub query: EventQuery,
    /// For `sum` and `avg`: the numeric property, with its span.
    pub property: Option<(String, Span)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AggFunc {
    /// How many events.
    Count,
    /// The sum of a numeric property.
    Sum,
    /// The mean of a numeric property (not set without events).
    Avg,
    /// When the first event happened (not set without events).
    FirstSeen,
    /// When the last event happened (not set without events).
    LastSeen,
}

impl AggFunc {
    pub fn as_str(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::FirstSeen => "first_seen",
            AggFunc::LastSeen => "last_seen",
        }
    }

    /// Whether the function takes `event.property` rather than `event`.
    pub fn takes_property(self) -> bool {
        matches!(self, AggFunc::Sum | AggFunc::Avg)
    }
}

/// The events an aggregate or `did` looks at: one type, optionally filtered
/// on its properties, optionally within a window ending now.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    pub event: String,
    pub event_span: Span,
    /// A condition on the event's properties (`where …`).
    pub filter: Option<Box<Expr>>,
    /// `last N unit`; none: all the events the profile holds.
    pub window: Option<Duration>,
}

/// A length of time: a whole number of units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duration {
    pub amount: u64,
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Hours,
    Days,
    Weeks,
}

impl Unit {
    /// The unit's name for an amount (`1 day`, `2 days`).
    pub fn name(self, amount: u64) -> &'static str {
        match (self, amount == 1) {
            (Unit::Hours, true) => "hour",
            (Unit::Hours, false) => "hours",
            (Unit::Days, true) => "day",
            (Unit::Days, false) => "days",
            (Unit::Weeks, true) => "week",
            (Unit::Weeks, false) => "weeks",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Unit::Hours => 3_600_000,
            Unit::Days => 86_400_000,
            Unit::Weeks => 7 * 86_400_000,
        }
    }
}

impl Duration {
    /// The duration in milliseconds, saturating.
    pub fn millis(self) -> i64 {
        i64::try_from(self.amount)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.unit.millis())
    }
}

impl Rule {
    /// The rule with every span set to [`Span::default`], to compare trees
    /// parsed from different texts.
    pub fn without_spans(&self) -> Rule {
        let mut rule = self.clone();
        clear_expr(&mut rule.expr);
        rule
    }
}

fn clear_expr(expr: &mut Expr) {
    expr.span = Span::default();
    match &mut expr.kind {
        ExprKind::And(a, b) | ExprKind::Or(a, b) => {
            clear_expr(a);
            clear_expr(b);
        }
        ExprKind::Not(e) => clear_expr(e),
        ExprKind::Compare { left, right, .. } => {
            clear_operand(left);
            clear_operand(right);
        }
        ExprKind::In { operand, .. } | ExprKind::IsSet { operand, .. } => clear_operand(operand),
        ExprKind::Contains { operand, value } => {
            clear_operand(operand);
            clear_operand(value);
        }
        ExprKind::Did(query) => clear_query(query),
        ExprKind::InSegment { span, .. } => *span = Span::default(),
    }
}

fn clear_operand(operand: &mut Operand) {
    operand.span = Span::default();
    if let OperandKind::Aggregate(aggregate) = &mut operand.kind {
        clear_query(&mut aggregate.query);
        if let Some((_, span)) = &mut aggregate.property {
            *span = Span::default();
        }
    }
}

fn clear_query(query: &mut EventQuery) {
    query.event_span = Span::default();
    if let Some(filter) = &mut query.filter {
        clear_expr(filter);
    }
}

// ---- canonical text ----

/// Binding strength: `or` < `and` < `not` < everything else.
fn precedence(kind: &ExprKind) -> u8 {
    match kind {
        ExprKind::Or(..) => 1,
        ExprKind::And(..) => 2,
        ExprKind::Not(..) => 3,
        _ => 4,
    }
}

struct Wrapped<'a>(&'a Expr, u8);

impl fmt::Display for Wrapped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if precedence(&self.0.kind) < self.1 {
            write!(f, "({})", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            // Left-associative: a right operand of the same operator needs
            // parentheses to keep its grouping.
            ExprKind::Or(a, b) => write!(f, "{} or {}", Wrapped(a, 1), Wrapped(b, 2)),
            ExprKind::And(a, b) => write!(f, "{} and {}", Wrapped(a, 2), Wrapped(b, 3)),
            ExprKind::Not(e) => write!(f, "not {}", Wrapped(e, 3)),
            ExprKind::Compare { left, op, right } => {
                write!(f, "{left} {} {right}", op.as_str())
            }
            ExprKind::In {
                operand,
                values,
                negated,
            } => {
                write!(f, "{operand} {}in [", if *negated { "not " } else { "" })?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str("]")
            }
            ExprKind::Contains { operand, value } => write!(f, "{operand} contains {value}"),
            ExprKind::IsSet { operand, negated } => {
                write!(f, "{operand} is {}set", if *negated { "not " } else { "" })
            }
            ExprKind::Did(query) => {
                f.write_str("did(")?;
                write_query(f, query, None)?;
                f.write_str(")")
            }
            ExprKind::InSegment { name, .. } => {
                f.write_str("in segment ")?;
                write_string(f, name)
            }
        }
    }
}

fn write_query(
    f: &mut fmt::Formatter<'_>,
    query: &EventQuery,
    property: Option<&str>,
) -> fmt::Result {
    f.write_str(&query.event)?;
    if let Some(property) = property {
        write!(f, ".{property}")?;
    }
    if let Some(filter) = &query.filter {
        write!(f, " where {filter}")?;
    }
    if let Some(window) = &query.window {
        write!(f, ", last {window}")?;
    }
    Ok(())
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            OperandKind::Trait(name) => write!(f, "trait.{name}"),
            OperandKind::Property(name) => f.write_str(name),
            OperandKind::Literal(literal) => literal.fmt(f),
            OperandKind::Now(None) => f.write_str("now"),
            OperandKind::Now(Some(offset)) => write!(
                f,
                "now {} {}",
                if offset.minus { "-" } else { "+" },
                offset.duration
            ),
            OperandKind::Aggregate(aggregate) => {
                write!(f, "{}(", aggregate.func.as_str())?;
                write_query(
                    f,
                    &aggregate.query,
                    aggregate.property.as_ref().map(|(p, _)| p.as_str()),
                )?;
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write_string(f, s),
            // `Display` of f64 is the shortest text that parses back to the
            // same number, and never uses an exponent.
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Date(d) => {
                f.write_str("date ")?;
                write_string(f, d)
            }
        }
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.unit.name(self.amount))
    }
}

fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

//! A rule in plain English, for the console and the CLI to show beside the
//! rule text ("what does this segment hold?").

use crate::ast::*;

impl Rule {
    /// The rule in plain English.
    pub fn explain(&self) -> String {
        expr(&self.expr)
    }
}

fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::And(a, b) => format!("{} and {}", grouped(a, "or"), grouped(b, "or")),
        ExprKind::Or(a, b) => format!("{} or {}", grouped(a, "and"), grouped(b, "and")),
        ExprKind::Not(inner) => negated(inner),
        ExprKind::Compare { left, op, right } => {
            let dates = is_date(left) || is_date(right);
            let phrase = match (op, dates) {
                (CmpOp::Eq, _) => "is",
                (CmpOp::Ne, _) => "is not",
                (CmpOp::Lt, false) => "is less than",
                (CmpOp::Le, false) => "is at most",
                (CmpOp::Gt, false) => "is more than",
                (CmpOp::Ge, false) => "is at least",
                (CmpOp::Lt, true) => "is before",
                (CmpOp::Le, true) => "is on or before",
                (CmpOp::Gt, true) => "is after",
                (CmpOp::Ge, true) => "is on or after",
            };
            format!("{} {phrase} {}", operand(left), operand(right))
        }
        ExprKind::In {
            operand: o,
            values,
            negated,
        } => format!(
            "{} is {} {}",
            operand(o),
            if *negated { "none of" } else { "one of" },
            values.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Contains { operand: o, value } => {
            format!("{} contains {}", operand(o), operand(value))
        }
        ExprKind::IsSet {
            operand: o,
            negated,
        } => format!(
            "{} is {}",
            operand(o),
            if *negated { "not set" } else { "set" }
        ),
        ExprKind::Did(query) => format!("had {}", events(query, "a", "event")),
        ExprKind::InSegment { name, .. } => format!("is in segment {}", quoted(name)),
    }
}

/// `e`, in parentheses if it is an `and`/`or` chain of the other kind.
fn grouped(e: &Expr, other: &str) -> String {
    let wrap = match &e.kind {
        ExprKind::Or(..) => other == "or",
        ExprKind::And(..) => other == "and",
        _ => false,
    };
    if wrap {
        format!("({})", expr(e))
    } else {
        expr(e)
    }
}

fn negated(inner: &Expr) -> String {
    match &inner.kind {
        ExprKind::Did(query) => format!("had no {}", events(query, "", "event")),
        ExprKind::InSegment { name, .. } => format!("is not in segment {}", quoted(name)),
        ExprKind::IsSet {
            operand: o,
            negated,
        } => format!(
            "{} is {}",
            operand(o),
            if *negated { "set" } else { "not set" }
        ),
        ExprKind::Not(e) => expr(e),
        _ => format!("not ({})", expr(inner)),
    }
}

/// "a purchase event in the last 7 days where …".
fn events(query: &EventQuery, article: &str, noun: &str) -> String {
    let mut text = if article.is_empty() {
        format!("{} {noun}", query.event)
    } else {
        format!("{article} {} {noun}", query.event)
    };
    if let Some(window) = &query.window {
        text.push_str(&format!(" in the last {window}"));
    }
    if let Some(filter) = &query.filter {
        text.push_str(" where ");
        text.push_str(&expr(filter));
    }
    text
}

fn is_date(o: &Operand) -> bool {
    match &o.kind {
        OperandKind::Now(_) | OperandKind::Literal(Literal::Date(_)) => true,
        OperandKind::Aggregate(a) => matches!(a.func, AggFunc::FirstSeen | AggFunc::LastSeen),
        _ => false,
    }
}

fn operand(o: &Operand) -> String {
    match &o.kind {
        OperandKind::Trait(name) | OperandKind::Property(name) => name.clone(),
        OperandKind::Literal(l) => literal(l),
        OperandKind::Now(None) => "now".to_owned(),
        OperandKind::Now(Some(offset)) if offset.minus => format!("{} ago", offset.duration),
        OperandKind::Now(Some(offset)) => format!("{} from now", offset.duration),
        OperandKind::Aggregate(a) => {
            let property = a.property.as_ref().map_or("", |(p, _)| p.as_str());
            match a.func {
                AggFunc::Count => format!("the number of {}", events(&a.query, "", "events")),
                AggFunc::Sum => {
                    format!("the total {property} of {}", events(&a.query, "", "events"))
                }
                AggFunc::Avg => format!(
                    "the average {property} of {}",
                    events(&a.query, "", "events")
                ),
                AggFunc::FirstSeen => {
                    format!("the time of the first {}", events(&a.query, "", "event"))
                }
                AggFunc::LastSeen => {
                    format!("the time of the last {}", events(&a.query, "", "event"))
                }
            }
        }
    }
}

fn literal(l: &Literal) -> String {
    match l {
        Literal::String(s) => quoted(s),
        Literal::Number(n) => n.to_string(),
        Literal::Bool(b) => b.to_string(),
        Literal::Date(d) => d.clone(),
    }
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

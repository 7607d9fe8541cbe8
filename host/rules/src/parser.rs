//! A recursive-descent parser over the lexer's tokens.
//!
//! ```text
//! rule      = or EOF
//! or        = and { "or" and }
//! and       = unary { "and" unary }
//! unary     = "not" unary | primary
//! primary   = "(" or ")" | "in" "segment" STRING | "did" "(" query ")"
//!           | operand predicate
//! predicate = ("=" | "!=" | "<" | "<=" | ">" | ">=") operand
//!           | ["not"] "in" "[" literal { "," literal } "]"
//!           | "contains" operand | "is" ["not"] "set"
//! operand   = literal | "now" [("-" | "+") duration] | "trait" "." NAME
//!           | aggfunc "(" query ")" | NAME            (NAME: only in a where clause)
//! query     = EVENT ["." PROPERTY] ["where" or] ["," "last" duration]
//! literal   = STRING | ["-"] NUMBER | "true" | "false" | "date" STRING
//! duration  = INTEGER ("hour" | "hours" | "day" | "days" | "week" | "weeks")
//! ```

use crate::Span;
use crate::ast::*;
use crate::lexer::{Tok, Token, lex};

/// Deeper nesting than this is refused rather than risking the stack of a
/// small (wasm) thread.
pub const MAX_DEPTH: usize = 64;

/// The most conditions a rule may join with `and` and `or`: chains do not
/// nest in the parser, but they do in the tree that checking, printing and
/// evaluating walk.
pub const MAX_CONDITIONS: usize = 512;

/// The largest amount a duration may have.
pub const MAX_DURATION: u64 = 1_000_000;

/// Words with a meaning of their own, which cannot name an event property
/// in a `where` clause.
pub const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "segment",
    "did",
    "count",
    "sum",
    "avg",
    "first_seen",
    "last_seen",
    "where",
    "last",
    "now",
    "date",
    "is",
    "set",
    "contains",
    "trait",
    "true",
    "false",
];

/// Why a text is not a rule: where, what was expected there, and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: expected {expected}, found {found}{}", span.line, span.column, hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
pub struct ParseError {
    /// The offending token (empty at the end of the input).
    pub span: Span,
    pub expected: String,
    pub found: String,
    /// A likely fix, when there is one.
    pub hint: Option<String>,
}

/// Parses rule text into its syntax tree.
pub fn parse(source: &str) -> Result<Rule, ParseError> {
    let mut parser = Parser {
        tokens: lex(source),
        pos: 0,
        prev_end: (0, 1, 1),
        in_filter: false,
        depth: 0,
        joins: 0,
    };
    let expr = parser.or()?;
    if !matches!(parser.peek().tok, Tok::Eof) {
        return Err(parser.error("\"and\", \"or\" or the end of the rule"));
    }
    Ok(Rule { expr })
}

/// Parses the condition of an event query, as it follows `where` inside a
/// query (`category = "shoes" and amount >= 100`): bare names are the
/// event's properties; traits, aggregates, `did` and `in segment` are
/// refused, as inside a query. A host evaluates it on one event with
/// [`crate::filter_matches`].
pub fn parse_filter(source: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser {
        tokens: lex(source),
        pos: 0,
        prev_end: (0, 1, 1),
        in_filter: true,
        depth: 0,
        joins: 0,
    };
    let expr = parser.or()?;
    if !matches!(parser.peek().tok, Tok::Eof) {
        return Err(parser.error("\"and\", \"or\" or the end of the filter"));
    }
    Ok(expr)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Where the last consumed token ended: byte, line, column.
    prev_end: (usize, u32, u32),
    /// Inside a `where` clause: bare names are event properties, and traits,
    /// aggregates, `did` and segments are not allowed.
    in_filter: bool,
    depth: usize,
    /// How many `and`/`or` the rule has so far.
    joins: usize,
}

fn join(start: Span, end: Span) -> Span {
    Span {
        start: start.start,
        end: end.end.max(start.start),
        line: start.line,
        column: start.column,
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.pos + ahead).min(last)]
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        self.prev_end = (token.span.end, token.span.line, token.span.column);
        token
    }

    /// The span from `start` to the end of the last consumed token.
    fn span_from(&self, start: Span) -> Span {
        Span {
            start: start.start,
            end: self.prev_end.0.max(start.start),
            line: start.line,
            column: start.column,
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(w) if w == word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        if found {
            self.next();
        }
        found
    }

    fn error(&self, expected: impl Into<String>) -> ParseError {
        let token = self.peek();
        ParseError {
            span: token.span,
            expected: expected.into(),
            found: token.describe(),
            hint: None,
        }
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<Token, ParseError> {
        if self.peek().tok == tok {
            Ok(self.next())
        } else {
            Err(self.error(expected))
        }
    }

    fn expect_word(&mut self, word: &str, expected: &str) -> Result<Token, ParseError> {
        if self.is_word(word) {
            Ok(self.next())
        } else {
            Err(self.error(expected))
        }
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("at most {MAX_DEPTH} levels of nesting")));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    /// Consumes an `and`/`or`, counting it against [`MAX_CONDITIONS`].
    fn join(&mut self) -> Result<(), ParseError> {
        self.joins += 1;
        if self.joins >= MAX_CONDITIONS {
            return Err(self.error(format!("at most {MAX_CONDITIONS} conditions in a rule")));
        }
        self.next();
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.join()?;
            let right = self.and()?;
            let span = join(left.span, right.span);
            left = Expr {
                kind: ExprKind::Or(Box::new(left), Box::new(right)),
                span,
            };
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.is_word("and") {
            self.join()?;
            let right = self.unary()?;
            let span = join(left.span, right.span);
            left = Expr {
                kind: ExprKind::And(Box::new(left), Box::new(right)),
                span,
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.is_word("not") {
            let start = self.next().span;
            let inner = self.nested(Self::unary)?;
            return Ok(Expr {
                span: join(start, inner.span),
                kind: ExprKind::Not(Box::new(inner)),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let start = self.peek().span;
        if matches!(self.peek().tok, Tok::LParen) {
            let open = self.next();
            let inner = self.nested(Self::or)?;
            if !matches!(self.peek().tok, Tok::RParen) {
                return Err(self.error(format!(
                    "\"and\", \"or\" or \")\" to close the \"(\" at {}:{}",
                    open.span.line, open.span.column
                )));
            }
            self.next();
            // Parentheses only group: the tree keeps the inner condition,
            // with the span of the whole.
            return Ok(Expr {
                kind: inner.kind,
                span: self.span_from(start),
            });
        }
        if !self.in_filter && self.is_word("in") {
            self.next();
            self.expect_word("segment", "\"segment\" after \"in\"")?;
            let token = self.peek().clone();
            let Tok::Str(name) = token.tok else {
                return Err(self.error("a segment name in quotes after \"in segment\""));
            };
            self.next();
            return Ok(Expr {
                kind: ExprKind::InSegment {
                    name,
                    span: token.span,
                },
                span: self.span_from(start),
            });
        }
        if !self.in_filter && self.is_word("did") && matches!(self.peek_at(1).tok, Tok::LParen) {
            self.next();
            self.next();
            let query = self.nested(|p| p.query(None))?;
            self.expect(Tok::RParen, "\"where\", \",\" or \")\" after the event")?;
            return Ok(Expr {
                kind: ExprKind::Did(query.0),
                span: self.span_from(start),
            });
        }
        let operand = self.operand(None)?;
        self.predicate(operand, start)
    }

    fn predicate(&mut self, operand: Operand, start: Span) -> Result<Expr, ParseError> {
        let op = match self.peek().tok {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        let kind = if let Some(op) = op {
            self.next();
            let right = self.operand(Some(op))?;
            ExprKind::Compare {
                left: operand,
                op,
                right,
            }
        } else if self.is_word("in")
            || (self.is_word("not") && matches!(&self.peek_at(1).tok, Tok::Ident(w) if w == "in"))
        {
            let negated = self.eat_word("not");
            self.next();
            let values = self.list(negated)?;
            ExprKind::In {
                operand,
                values,
                negated,
            }
        } else if self.eat_word("contains") {
            let value =
                self.nested(|p| p.operand_expecting("a value or a field after \"contains\""))?;
            ExprKind::Contains { operand, value }
        } else if self.eat_word("is") {
            let negated = self.eat_word("not");
            let after = if negated { "\"is not\"" } else { "\"is\"" };
            let expected = if negated {
                format!("\"set\" after {after}")
            } else {
                format!("\"set\" or \"not set\" after {after}")
            };
            self.expect_word("set", &expected)?;
            ExprKind::IsSet { operand, negated }
        } else {
            return Err(self.error(format!(
                "a comparison (=, !=, <, <=, >, >=), \"in\", \"not in\", \"contains\" or \"is set\" after {operand}"
            )));
        };
        Ok(Expr {
            kind,
            span: self.span_from(start),
        })
    }

    fn list(&mut self, negated: bool) -> Result<Vec<Literal>, ParseError> {
        let after = if negated { "\"not in\"" } else { "\"in\"" };
        self.expect(Tok::LBracket, &format!("\"[\" after {after}"))?;
        let mut values = Vec::new();
        loop {
            match self.literal()? {
                Some(value) => values.push(value),
                None => {
                    return Err(self.error(if values.is_empty() {
                        "a value (a string, a number, true, false or a date) in the list"
                    } else {
                        "a value after \",\""
                    }));
                }
            }
            match self.peek().tok {
                Tok::Comma => {
                    self.next();
                }
                Tok::RBracket => {
                    self.next();
                    return Ok(values);
                }
                _ => return Err(self.error("\",\" or \"]\" in the list")),
            }
        }
    }

    /// A literal if one starts here; errors only inside a literal that began.
    fn literal(&mut self) -> Result<Option<Literal>, ParseError> {
        let literal = match self.peek().tok.clone() {
            Tok::Str(s) => Literal::String(s),
            Tok::Number(n) => Literal::Number(self.finite(n)?),
            Tok::Bool(b) => Literal::Bool(b),
            Tok::Minus if matches!(self.peek_at(1).tok, Tok::Number(_)) => {
                self.next();
                let Tok::Number(n) = self.peek().tok else {
                    unreachable!("checked above")
                };
                Literal::Number(-self.finite(n)?)
            }
            Tok::Ident(w) if w == "date" => {
                self.next();
                let Tok::Str(text) = self.peek().tok.clone() else {
                    return Err(self.error("a date in quotes after \"date\", as \"2024-03-01\""));
                };
                if !looks_like_date(&text) {
                    return Err(self.error(
                        "a date as \"YYYY-MM-DD\" or \"YYYY-MM-DDThh:mm:ssZ\" after \"date\"",
                    ));
                }
                self.next();
                return Ok(Some(Literal::Date(text)));
            }
            _ => return Ok(None),
        };
        self.next();
        Ok(Some(literal))
    }

    fn finite(&self, n: f64) -> Result<f64, ParseError> {
        if n.is_finite() {
            Ok(n)
        } else {
            Err(self.error("a number of at most 308 digits"))
        }
    }

    /// An operand; `after` is the comparison it follows, to say what was
    /// expected.
    fn operand(&mut self, after: Option<CmpOp>) -> Result<Operand, ParseError> {
        let expected = match (after, self.in_filter) {
            (None, false) => "a condition: a field (trait.<name>), an aggregate, \"did\", \"in segment\", \"not\" or \"(\"".to_owned(),
            (None, true) => "a condition on the event: a property, \"not\" or \"(\"".to_owned(),
            (Some(op), false) if op.is_ordering() => format!("a number, a date, a field or an aggregate after \"{}\"", op.as_str()),
            (Some(op), true) if op.is_ordering() => format!("a number, a date or a property after \"{}\"", op.as_str()),
            (Some(op), false) => format!("a value, a field or an aggregate after \"{}\"", op.as_str()),
            (Some(op), true) => format!("a value or a property after \"{}\"", op.as_str()),
        };
        let mut result = self.nested(|p| p.operand_expecting(&expected));
        if let (Err(error), Some(CmpOp::Eq), Tok::Eq) = (&mut result, after, &self.peek().tok) {
            error.hint = Some("equality is written with one \"=\"".to_owned());
        }
        result
    }

    fn operand_expecting(&mut self, expected: &str) -> Result<Operand, ParseError> {
        let start = self.peek().span;
        if let Some(literal) = self.literal()? {
            return Ok(Operand {
                kind: OperandKind::Literal(literal),
                span: self.span_from(start),
            });
        }
        let Tok::Ident(word) = self.peek().tok.clone() else {
            return Err(self.error(expected));
        };
        let kind = match word.as_str() {
            "now" => {
                self.next();
                let minus = match self.peek().tok {
                    Tok::Minus => true,
                    Tok::Plus => false,
                    _ => {
                        return Ok(Operand {
                            kind: OperandKind::Now(None),
                            span: self.span_from(start),
                        });
                    }
                };
                let sign = self.next();
                let duration = self.duration(&format!("\"{}\"", sign.text))?;
                OperandKind::Now(Some(Offset { minus, duration }))
            }
            "trait" if !self.in_filter => {
                self.next();
                self.expect(Tok::Dot, "\".\" and a trait name after \"trait\"")?;
                let Tok::Ident(name) = self.peek().tok.clone() else {
                    return Err(self.error("a trait name after \"trait.\""));
                };
                self.next();
                OperandKind::Trait(name)
            }
            "count" | "sum" | "avg" | "first_seen" | "last_seen"
                if !self.in_filter && matches!(self.peek_at(1).tok, Tok::LParen) =>
            {
                let func = match word.as_str() {
                    "count" => AggFunc::Count,
                    "sum" => AggFunc::Sum,
                    "avg" => AggFunc::Avg,
                    "first_seen" => AggFunc::FirstSeen,
                    _ => AggFunc::LastSeen,
                };
                self.next();
                self.next();
                let (query, property) = self.query(Some(func))?;
                self.expect(Tok::RParen, "\"where\", \",\" or \")\" after the event")?;
                OperandKind::Aggregate(Aggregate {
                    func,
                    query,
                    property,
                })
            }
            _ if self.in_filter && !KEYWORDS.contains(&word.as_str()) => {
                self.next();
                OperandKind::Property(word)
            }
            _ => {
                let mut error = self.error(expected);
                if !self.in_filter && !KEYWORDS.contains(&word.as_str()) {
                    error.hint = Some(format!("a trait is written trait.{word}"));
                }
                return Err(error);
            }
        };
        Ok(Operand {
            kind,
            span: self.span_from(start),
        })
    }

    /// `EVENT[.PROPERTY] [where …] [, last N unit]`, after the "(".
    #[allow(clippy::type_complexity)]
    fn query(
        &mut self,
        func: Option<AggFunc>,
    ) -> Result<(EventQuery, Option<(String, Span)>), ParseError> {
        let name = func.map_or("did", AggFunc::as_str);
        let takes_property = func.is_some_and(AggFunc::takes_property);
        let Tok::Ident(event) = self.peek().tok.clone() else {
            return Err(self.error(if takes_property {
                format!("an event type and property (event.property) after \"{name}(\"")
            } else {
                format!("an event type after \"{name}(\"")
            }));
        };
        let event_span = self.next().span;
        let property = if takes_property {
            self.expect(
                Tok::Dot,
                &format!(
                    "\".\" and a numeric property after \"{event}\" ({name} takes event.property)"
                ),
            )?;
            let Tok::Ident(property) = self.peek().tok.clone() else {
                return Err(self.error(format!("a property name after \"{event}.\"")));
            };
            Some((property, self.next().span))
        } else {
            None
        };
        let filter = if self.eat_word("where") {
            let outer = self.in_filter;
            self.in_filter = true;
            let filter = self.nested(Self::or);
            self.in_filter = outer;
            Some(Box::new(filter?))
        } else {
            None
        };
        let window = if matches!(self.peek().tok, Tok::Comma) {
            self.next();
            self.expect_word(
                "last",
                "\"last\" and a duration after \",\" (as in \"last 30 days\")",
            )?;
            Some(self.duration("\"last\"")?)
        } else {
            None
        };
        Ok((
            EventQuery {
                event,
                event_span,
                filter,
                window,
            },
            property,
        ))
    }

    fn duration(&mut self, after: &str) -> Result<Duration, ParseError> {
        let Tok::Number(n) = self.peek().tok else {
            return Err(self.error(format!("a duration (as \"30 days\") after {after}")));
        };
        if n.fract() != 0.0 || n < 1.0 || n > MAX_DURATION as f64 {
            return Err(self.error(format!(
                "a whole number from 1 to {MAX_DURATION} of hours, days or weeks after {after}"
            )));
        }
        let amount = n as u64;
        self.next();
        let unit = match &self.peek().tok {
            Tok::Ident(w) if w == "hour" || w == "hours" => Unit::Hours,
            Tok::Ident(w) if w == "day" || w == "days" => Unit::Days,
            Tok::Ident(w) if w == "week" || w == "weeks" => Unit::Weeks,
            _ => {
                return Err(self.error(format!(
                    "\"hours\", \"days\" or \"weeks\" after \"{amount}\""
                )));
            }
        };
        self.next();
        Ok(Duration { amount, unit })
    }
}

/// `YYYY-MM-DD` with a month of 01 to 12 and a day of 01 to 31, optionally
/// followed by `T` and a time (as the tenant schema's date traits).
pub(crate) fn looks_like_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .filter(|b| b.iter().all(u8::is_ascii_digit))
            .map(|b| b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
    };
    bytes.len() >= 10
        && number(0..4).is_some()
        && bytes[4] == b'-'
        && number(5..7).is_some_and(|month| (1..=12).contains(&month))
        && bytes[7] == b'-'
        && number(8..10).is_some_and(|day| (1..=31).contains(&day))
        && (bytes.len() == 10 || bytes[10] == b'T')
}

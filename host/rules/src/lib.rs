//! Tessera's rules language: the text a marketer writes to define a segment.
//!
//! ```
//! let rule = tessera_rules::parse(
//!     r#"trait.city = "Oslo" and count(purchase, last 90 days) >= 3"#,
//! ).unwrap();
//! assert_eq!(
//!     rule.explain(),
//!     "city is \"Oslo\" and the number of purchase events in the last 90 days is at least 3",
//! );
//! ```
//!
//! [`parse`] turns text into a [`Rule`] (or a [`ParseError`] with a position
//! and what was expected); [`check`] types it against the tenant's schema and
//! the plugin's grants (collecting every [`TypeError`]); [`Rule::explain`]
//! says it in plain English; `Display` prints its canonical text;
//! [`CheckedRule::evaluate`] tells whether a [`Profile`] meets it.
//! [`CheckedRule::compile`] turns it into a [`Program`] for one clock, which
//! evaluates rows ([`Row`], e.g. a batch's [`Columns`]) by slot, without
//! allocating or looking names up: the same answers, for large batches. The
//! language is described in `docs/rules.md`.
//!
//! The crate depends on no other Tessera crate and builds for
//! `wasm32-wasip2`, so the rules segment plugin embeds the same parser the
//! host uses to validate rules before saving them.

mod ast;
pub mod calendar;
mod check;
mod columns;
mod compile;
mod eval;
mod explain;
mod lexer;
mod parser;

pub use ast::*;
pub use check::{CheckedRule, Grants, Schema, Type, TypeError, TypeErrorKind, check};
pub use columns::{Column, ColumnData, ColumnRow, Columns, ColumnsError, QueryColumns};
pub use compile::{ListRef, ProfileRow, Program, Row, ValueRef};
pub use eval::{
    Clock, Event, Facts, Profile, Query, Value, filter_matches, filter_properties, in_window,
    parse_date,
};
pub use parser::{
    KEYWORDS, MAX_CONDITIONS, MAX_DEPTH, MAX_DURATION, ParseError, parse, parse_filter,
};

/// Where something is in the rule text: byte offsets (`start..end`) and the
/// line and column (1-based, in characters) where it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub line: u32,
    pub column: u32,
}

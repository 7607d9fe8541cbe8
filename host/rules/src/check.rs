//! The type checker: a parsed rule against the tenant's schema (traits with
//! their types, event types with their properties, the segments that exist)
//! and the fields a plugin was granted. It reports every error it finds, not
//! only the first, each with the span it is about.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::Span;
use crate::ast::*;

/// The type of a trait, an event property or an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Number,
    Boolean,
    /// A date or date-time (ISO 8601 in the profile).
    Date,
    /// A list whose elements have the given type (`Type::List(&Type::String)`).
    List(&'static Type),
    /// Any value: checked when the rule is evaluated, not before.
    Any,
}

impl Type {
    /// Whether values of the two types can be compared for equality.
    fn matches(self, other: Type) -> bool {
        match (self, other) {
            (Type::Any, _) | (_, Type::Any) => true,
            (Type::List(a), Type::List(b)) => a.matches(*b),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for Type {
    /// With its article: "a string", "a list of numbers".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::String => f.write_str("a string"),
            Type::Number => f.write_str("a number"),
            Type::Boolean => f.write_str("a boolean"),
            Type::Date => f.write_str("a date"),
            Type::Any => f.write_str("a value of any type"),
            Type::List(element) => match element {
                Type::String => f.write_str("a list of strings"),
                Type::Number => f.write_str("a list of numbers"),
                Type::Boolean => f.write_str("a list of booleans"),
                Type::Date => f.write_str("a list of dates"),
                Type::Any => f.write_str("a list"),
                Type::List(_) => f.write_str("a list of lists"),
            },
        }
    }
}

/// What a rule may refer to: the tenant's schema and, for a plugin, its grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Trait name → type.
    pub traits: BTreeMap<String, Type>,
    /// Event type → property name → type.
    pub events: BTreeMap<String, BTreeMap<String, Type>>,
    /// The names of the segments a rule may refer to.
    pub segments: BTreeSet<String>,
    /// What the plugin that evaluates the rule was granted; `None`: all of
    /// the schema (the host checking a rule for itself).
    pub grants: Option<Grants>,
}

/// The fields an operator granted a plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub traits: BTreeSet<String>,
    /// Event types whose counts and times the plugin may see.
    pub events: BTreeSet<String>,
    /// (event type, property) pairs the plugin may filter on and aggregate.
    pub properties: BTreeSet<(String, String)>,
}

impl Schema {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a trait.
    pub fn with_trait(mut self, name: &str, ty: Type) -> Self {
        self.traits.insert(name.to_owned(), ty);
        self
    }

    /// Adds an event type with its properties.
    pub fn with_event<'a>(
        mut self,
        name: &str,
        properties: impl IntoIterator<Item = (&'a str, Type)>,
    ) -> Self {
        self.events.insert(
            name.to_owned(),
            properties
                .into_iter()
                .map(|(p, t)| (p.to_owned(), t))
                .collect(),
        );
        self
    }

    /// Adds a segment a rule may refer to.
    pub fn with_segment(mut self, name: &str) -> Self {
        self.segments.insert(name.to_owned());
        self
    }

    /// Restricts the rule to what a plugin was granted.
    pub fn with_grants(mut self, grants: Grants) -> Self {
        self.grants = Some(grants);
        self
    }

    fn trait_granted(&self, name: &str) -> bool {
        self.grants.as_ref().is_none_or(|g| g.traits.contains(name))
    }

    fn event_granted(&self, event: &str) -> bool {
        self.grants
            .as_ref()
            .is_none_or(|g| g.events.contains(event))
    }

    fn property_granted(&self, event: &str, property: &str) -> bool {
        self.grants.as_ref().is_none_or(|g| {
            g.properties
                .contains(&(event.to_owned(), property.to_owned()))
        })
    }
}

impl Grants {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_trait(mut self, name: &str) -> Self {
        self.traits.insert(name.to_owned());
        self
    }

    pub fn with_event(mut self, name: &str) -> Self {
        self.events.insert(name.to_owned());
        self
    }

    /// Grants a property of an event type (and the event type itself).
    pub fn with_property(mut self, event: &str, property: &str) -> Self {
        self.events.insert(event.to_owned());
        self.properties
            .insert((event.to_owned(), property.to_owned()));
        self
    }
}

/// A rule that fits its schema, with what it needs from a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRule {
    rule: Rule,
    /// [`Rule::queries`], listed once: planning and compiling read them
    /// for every batch.
    queries: Vec<crate::Query>,
    traits: BTreeSet<String>,
    events: BTreeSet<String>,
    properties: BTreeSet<(String, String)>,
    segments: BTreeSet<String>,
}

impl CheckedRule {
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The rule's event queries, once each, in order of appearance
    /// ([`Rule::queries`]).
    pub fn queries(&self) -> &[crate::Query] {
        &self.queries
    }

    /// The traits the rule reads.
    pub fn traits(&self) -> &BTreeSet<String> {
        &self.traits
    }

    /// The event types the rule looks at.
    pub fn events(&self) -> &BTreeSet<String> {
        &self.events
    }

    /// The (event type, property) pairs it filters on or aggregates.
    pub fn properties(&self) -> &BTreeSet<(String, String)> {
        &self.properties
    }

    /// The segments it refers to.
    pub fn segments(&self) -> &BTreeSet<String> {
        &self.segments
    }
}

/// Why a rule does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: {kind}", span.line, span.column)]
pub struct TypeError {
    pub span: Span,
    pub kind: TypeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeErrorKind {
    #[error("unknown trait \"{0}\"")]
    UnknownTrait(String),
    #[error("trait \"{0}\" is not granted to this plugin")]
    TraitNotGranted(String),
    #[error("unknown event type \"{0}\"")]
    UnknownEvent(String),
    #[error("event type \"{0}\" is not granted to this plugin")]
    EventNotGranted(String),
    #[error("event type \"{event}\" has no property \"{property}\"")]
    UnknownProperty { event: String, property: String },
    #[error("property \"{event}.{property}\" is not granted to this plugin")]
    PropertyNotGranted { event: String, property: String },
    #[error("{func} needs a numeric property, but \"{event}.{property}\" is {found}")]
    NotNumeric {
        func: &'static str,
        event: String,
        property: String,
        found: Type,
    },
    /// A date compared with a string constant that looks like a date.
    #[error("cannot compare a date with a string (write date \"{text}\" for a date)")]
    DateAsString { text: String },
    #[error("unknown segment \"{0}\"")]
    UnknownSegment(String),
    #[error("cannot compare {left} with {right}")]
    Mismatch { left: Type, right: Type },
    #[error("\"{op}\" compares numbers or dates, not {found}")]
    NotOrdered { op: &'static str, found: Type },
    #[error("the list holds {value}, but {operand} is {found}")]
    ListMismatch {
        operand: String,
        found: Type,
        value: Type,
    },
    #[error("\"contains\" needs a string or a list on its left, not {found}")]
    NotAContainer { found: Type },
    #[error("{container} cannot contain {found}")]
    ContainsMismatch { container: Type, found: Type },
    #[error("\"is set\" applies to fields and aggregates, not to a constant")]
    ConstantIsSet,
}

/// Types `rule` against `schema`, returning every error found.
pub fn check(rule: &Rule, schema: &Schema) -> Result<CheckedRule, Vec<TypeError>> {
    let mut checker = Checker {
        schema,
        errors: Vec::new(),
        traits: BTreeSet::new(),
        events: BTreeSet::new(),
        properties: BTreeSet::new(),
        segments: BTreeSet::new(),
    };
    checker.expr(&rule.expr, None);
    if checker.errors.is_empty() {
        Ok(CheckedRule {
            rule: rule.clone(),
            queries: rule.queries(),
            traits: checker.traits,
            events: checker.events,
            properties: checker.properties,
            segments: checker.segments,
        })
    } else {
        Err(checker.errors)
    }
}

struct Checker<'a> {
    schema: &'a Schema,
    errors: Vec<TypeError>,
    traits: BTreeSet<String>,
    events: BTreeSet<String>,
    properties: BTreeSet<(String, String)>,
    segments: BTreeSet<String>,
}

impl Checker<'_> {
    fn error(&mut self, span: Span, kind: TypeErrorKind) {
        self.errors.push(TypeError { span, kind });
    }

    /// `event`: inside a `where` clause, the event type whose properties bare
    /// names refer to (`None` if that type is itself unknown).
    fn expr(&mut self, expr: &Expr, event: Option<&str>) {
        match &expr.kind {
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                self.expr(a, event);
                self.expr(b, event);
            }
            ExprKind::Not(e) => self.expr(e, event),
            ExprKind::Compare { left, op, right } => {
                let l = self.operand(left, event);
                let r = self.operand(right, event);
                let (Some(l), Some(r)) = (l, r) else { return };
                if !l.matches(r) {
                    let kind = match (l, r, date_text(left), date_text(right)) {
                        (Type::Date, Type::String, _, Some(text))
                        | (Type::String, Type::Date, Some(text), _) => {
                            TypeErrorKind::DateAsString { text }
                        }
                        _ => TypeErrorKind::Mismatch { left: l, right: r },
                    };
                    self.error(expr.span, kind);
                } else if op.is_ordering() {
                    for ty in [l, r] {
                        if !matches!(ty, Type::Number | Type::Date | Type::Any) {
                            self.error(
                                expr.span,
                                TypeErrorKind::NotOrdered {
                                    op: op.as_str(),
                                    found: ty,
                                },
                            );
                            break;
                        }
                    }
                }
            }
            ExprKind::In {
                operand, values, ..
            } => {
                let Some(ty) = self.operand(operand, event) else {
                    return;
                };
                for value in values {
                    let value_ty = literal_type(value);
                    if !ty.matches(value_ty) {
                        self.error(
                            expr.span,
                            TypeErrorKind::ListMismatch {
                                operand: operand.to_string(),
                                found: ty,
                                value: value_ty,
                            },
                        );
                        break;
                    }
                }
            }
            ExprKind::Contains { operand, value } => {
                let container = self.operand(operand, event);
                let element = self.operand(value, event);
                let (Some(container), Some(element)) = (container, element) else {
                    return;
                };
                let ok = match container {
                    Type::Any => true,
                    Type::String => element.matches(Type::String),
                    Type::List(inner) => inner.matches(element),
                    found => {
                        self.error(expr.span, TypeErrorKind::NotAContainer { found });
                        return;
                    }
                };
                if !ok {
                    self.error(
                        expr.span,
                        TypeErrorKind::ContainsMismatch {
                            container,
                            found: element,
                        },
                    );
                }
            }
            ExprKind::IsSet { operand, .. } => {
                if matches!(operand.kind, OperandKind::Literal(_) | OperandKind::Now(_)) {
                    self.error(operand.span, TypeErrorKind::ConstantIsSet);
                } else {
                    self.operand(operand, event);
                }
            }
            ExprKind::Did(query) => {
                self.query(query);
            }
            ExprKind::InSegment { name, span } => {
                if self.schema.segments.contains(name) {
                    self.segments.insert(name.clone());
                } else {
                    self.error(*span, TypeErrorKind::UnknownSegment(name.clone()));
                }
            }
        }
    }

    /// The operand's type, or `None` after an error about it (so that one
    /// mistake is not reported again as a mismatch).
    fn operand(&mut self, operand: &Operand, event: Option<&str>) -> Option<Type> {
        match &operand.kind {
            OperandKind::Trait(name) => {
                let Some(ty) = self.schema.traits.get(name).copied() else {
                    self.error(operand.span, TypeErrorKind::UnknownTrait(name.clone()));
                    return None;
                };
                if !self.schema.trait_granted(name) {
                    self.error(operand.span, TypeErrorKind::TraitNotGranted(name.clone()));
                    return None;
                }
                self.traits.insert(name.clone());
                Some(ty)
            }
            OperandKind::Property(property) => {
                let event = event?;
                self.property(event, property, operand.span)
            }
            OperandKind::Literal(literal) => Some(literal_type(literal)),
            OperandKind::Now(_) => Some(Type::Date),
            OperandKind::Aggregate(aggregate) => {
                let known = self.query(&aggregate.query);
                if let (true, Some((property, span))) = (known, &aggregate.property) {
                    let event = aggregate.query.event.as_str();
                    if let Some(found) = self.property(event, property, *span)
                        && !matches!(found, Type::Number)
                    {
                        self.error(
                            *span,
                            TypeErrorKind::NotNumeric {
                                func: aggregate.func.as_str(),
                                event: event.to_owned(),
                                property: property.clone(),
                                found,
                            },
                        );
                    }
                }
                Some(match aggregate.func {
                    AggFunc::Count | AggFunc::Sum | AggFunc::Avg => Type::Number,
                    AggFunc::FirstSeen | AggFunc::LastSeen => Type::Date,
                })
            }
        }
    }

    fn property(&mut self, event: &str, property: &str, span: Span) -> Option<Type> {
        let ty = self.schema.events.get(event)?.get(property).copied();
        let Some(ty) = ty else {
            self.error(
                span,
                TypeErrorKind::UnknownProperty {
                    event: event.to_owned(),
                    property: property.to_owned(),
                },
            );
            return None;
        };
        if !self.schema.property_granted(event, property) {
            self.error(
                span,
                TypeErrorKind::PropertyNotGranted {
                    event: event.to_owned(),
                    property: property.to_owned(),
                },
            );
            return None;
        }
        self.properties
            .insert((event.to_owned(), property.to_owned()));
        Some(ty)
    }

    /// Checks the event type and the filter; whether the type is usable.
    fn query(&mut self, query: &EventQuery) -> bool {
        let event = query.event.as_str();
        let usable = if !self.schema.events.contains_key(event) {
            self.error(
                query.event_span,
                TypeErrorKind::UnknownEvent(event.to_owned()),
            );
            false
        } else if !self.schema.event_granted(event) {
            self.error(
                query.event_span,
                TypeErrorKind::EventNotGranted(event.to_owned()),
            );
            false
        } else {
            self.events.insert(event.to_owned());
            true
        };
        if let Some(filter) = &query.filter {
            // Under an unusable type, property names are not checked: the
            // error about the type says all there is to say.
            self.expr(filter, usable.then_some(event));
        }
        usable
    }
}

/// The text of a string constant that looks like a date.
fn date_text(operand: &Operand) -> Option<String> {
    match &operand.kind {
        OperandKind::Literal(Literal::String(text)) if crate::parser::looks_like_date(text) => {
            Some(text.clone())
        }
        _ => None,
    }
}

fn literal_type(literal: &Literal) -> Type {
    match literal {
        Literal::String(_) => Type::String,
        Literal::Number(_) => Type::Number,
        Literal::Bool(_) => Type::Boolean,
        Literal::Date(_) => Type::Date,
    }
}

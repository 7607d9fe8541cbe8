//! Event aggregates of a view: from the vault's running totals when they
//! answer the question (all-time count, sum, first and last), else from the
//! person's events, read and decrypted for the view.

use tessera_runtime::EventQuery;
use tessera_runtime::api::types::{AggregateFn, AggregateSpec};

use super::queries;
use tessera_vault::{Aggregate, Event, EventReads};

pub(crate) const DAY_MS: i64 = 86_400_000;

/// What an aggregate of one person came to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome {
    Integer(i64),
    Number(f64),
    Timestamp(i64),
    /// No value (no matching event for min, max, first-at, last-at).
    Missing,
    /// The running totals cannot answer: the events must be read.
    NeedsEvents,
}

/// Whether an aggregate can only be computed from the events themselves.
pub(crate) fn needs_events(spec: &AggregateSpec) -> bool {
    spec.window_days.is_some() || matches!(spec.function, AggregateFn::Min | AggregateFn::Max)
}

/// The events to read for these (granted) aggregates and event queries, or
/// none.
pub(crate) fn reads_for<'a>(
    specs: impl IntoIterator<Item = &'a AggregateSpec>,
    queries: impl IntoIterator<Item = &'a EventQuery>,
    now_ms: i64,
) -> EventReads {
    let mut reads = EventReads {
        since_ms: i64::MAX,
        ..EventReads::default()
    };
    for spec in specs {
        reads.types.insert(spec.event_type.clone());
        reads.since_ms = reads.since_ms.min(window_start(spec, now_ms));
    }
    for query in queries {
        reads.types.insert(query.event_type.clone());
        reads.since_ms = reads.since_ms.min(queries::window_start(query, now_ms));
    }
    reads
}

/// The earliest event time an aggregate counts.
fn window_start(spec: &AggregateSpec, now_ms: i64) -> i64 {
    match spec.window_days {
        Some(days) => now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS)),
        None => i64::MIN,
    }
}

/// An aggregate from the vault's running totals of its event type.
pub(crate) fn from_totals(spec: &AggregateSpec, totals: Option<&Aggregate>) -> Outcome {
    if needs_events(spec) {
        return Outcome::NeedsEvents;
    }
    let count = totals.map_or(0, |t| t.count);
    match spec.function {
        AggregateFn::Count => Outcome::Integer(i64::try_from(count).unwrap_or(i64::MAX)),
        AggregateFn::Sum => {
            let Some(property) = &spec.property else {
                return Outcome::Missing;
            };
            match totals.map_or(Some(0.0), |t| t.sum_of(property)) {
                Some(sum) => Outcome::Number(sum),
                None => Outcome::NeedsEvents,
            }
        }
        AggregateFn::FirstAt if count > 0 => Outcome::Timestamp(totals.map_or(0, |t| t.first_ms)),
        AggregateFn::LastAt if count > 0 => Outcome::Timestamp(totals.map_or(0, |t| t.last_ms)),
        _ => Outcome::Missing,
    }
}

/// An aggregate from the person's events (of every type the view read,
/// oldest first): those of its type within its window, up to `now_ms`.
pub(crate) fn from_events(spec: &AggregateSpec, events: &[Event], now_ms: i64) -> Outcome {
    let start = window_start(spec, now_ms);
    let bounded = spec.window_days.is_some();
    let mut matching = events.iter().filter(|e| {
        e.event_type == spec.event_type && e.at_ms >= start && (!bounded || e.at_ms <= now_ms)
    });
    let values = |events: &mut dyn Iterator<Item = &Event>| -> Vec<f64> {
        let Some(property) = &spec.property else {
            return Vec::new();
        };
        events
            .filter_map(|e| e.properties.get(property).and_then(|v| v.as_f64()))
            .filter(|v| v.is_finite())
            .collect()
    };
    match spec.function {
        AggregateFn::Count => Outcome::Integer(i64::try_from(matching.count()).unwrap_or(i64::MAX)),
        AggregateFn::Sum if spec.property.is_none() => Outcome::Missing,
        AggregateFn::Sum => {
            let sum: f64 = values(&mut matching).iter().sum();
            Outcome::Number(if sum.is_finite() {
                sum
            } else {
                f64::MAX.copysign(sum)
            })
        }
        AggregateFn::Min => values(&mut matching)
            .into_iter()
            .reduce(f64::min)
            .map_or(Outcome::Missing, Outcome::Number),
        AggregateFn::Max => values(&mut matching)
            .into_iter()
            .reduce(f64::max)
            .map_or(Outcome::Missing, Outcome::Number),
        AggregateFn::FirstAt => matching
            .map(|e| e.at_ms)
            .min()
            .map_or(Outcome::Missing, Outcome::Timestamp),
        AggregateFn::LastAt => matching
            .map(|e| e.at_ms)
            .max()
            .map_or(Outcome::Missing, Outcome::Timestamp),
    }
}

//! Planned event queries (`tessera:plan`'s `event-query`): per person, the
//! events of one type within a window ending now that meet a filter written
//! in the rules language, counted, dated and summed. The filter is parsed
//! and evaluated by `tessera-rules`, the crate the rules plugin embeds, so
//! the host and the plugin agree on what it means.

use std::collections::BTreeMap;

use tessera_rules::{Clock, Expr};
use tessera_runtime::EventQuery;
use tessera_vault::Event;

/// A granted query, its filter parsed.
#[derive(Debug, Clone)]
pub(crate) struct Prepared<'a> {
    pub query: &'a EventQuery,
    pub filter: Option<Expr>,
}

/// What one person's events say for one query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facts {
    pub count: u64,
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// One per entry of the query's `sums`, in order.
    pub sums: Vec<f64>,
}

/// The earliest event time a query counts.
pub(crate) fn window_start(query: &EventQuery, now_ms: i64) -> i64 {
    match query.window_ms {
        Some(ms) => now_ms.saturating_sub(ms),
        None => i64::MIN,
    }
}

/// The query's facts over the person's events (of every type the view
/// read): those of its type, within its window (`now - window` to `now`,
/// both included; without a window, every event up to now: as the rules
/// language counts, an event dated after now is never counted), that meet
/// its filter.
pub(crate) fn facts(prepared: &Prepared<'_>, events: &[Event], now_ms: i64) -> Facts {
    let query = prepared.query;
    let start = window_start(query, now_ms);
    let clock = Clock {
        now_ms,
        utc_offset_minutes: 0,
    };
    let mut facts = Facts {
        count: 0,
        first_ms: None,
        last_ms: None,
        sums: vec![0.0; query.sums.len()],
    };
    for event in events {
        if event.event_type != query.event_type || event.at_ms < start || event.at_ms > now_ms {
            continue;
        }
        if let Some(filter) = &prepared.filter
            && !tessera_rules::filter_matches(filter, &properties(event), &clock)
        {
            continue;
        }
        facts.count += 1;
        facts.first_ms = Some(facts.first_ms.map_or(event.at_ms, |t| t.min(event.at_ms)));
        facts.last_ms = Some(facts.last_ms.map_or(event.at_ms, |t| t.max(event.at_ms)));
        for (sum, property) in facts.sums.iter_mut().zip(&query.sums) {
            if let Some(n) = event
                .properties
                .get(property)
                .and_then(serde_json::Value::as_f64)
                .filter(|n| n.is_finite())
            {
                *sum += n;
            }
        }
    }
    for sum in &mut facts.sums {
        if !sum.is_finite() {
            *sum = f64::MAX.copysign(*sum);
        }
    }
    facts
}

/// An event's properties as the rules language sees them; JSON `null` and
/// objects have no value there, so they read as unset.
fn properties(event: &Event) -> BTreeMap<String, tessera_rules::Value> {
    event
        .properties
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), rules_value(value)?)))
        .collect()
}

fn rules_value(value: &serde_json::Value) -> Option<tessera_rules::Value> {
    use serde_json::Value as Json;
    use tessera_rules::Value;
    match value {
        Json::String(s) => Some(Value::String(s.clone())),
        Json::Number(n) => n.as_f64().filter(|n| n.is_finite()).map(Value::Number),
        Json::Bool(b) => Some(Value::Boolean(*b)),
        Json::Array(items) => Some(Value::List(items.iter().filter_map(rules_value).collect())),
        Json::Null | Json::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tessera_vault::Channel;

    fn event(event_type: &str, at_ms: i64, properties: serde_json::Value) -> Event {
        Event {
            subject: "s".into(),
            event_type: event_type.into(),
            at_ms,
            channel: Channel::Online,
            properties: serde_json::from_value(properties).unwrap(),
        }
    }

    #[test]
    fn a_query_counts_dates_and_sums_the_matching_events_of_its_window() {
        let query = EventQuery {
            name: "q".into(),
            event_type: "purchase".into(),
            filter: Some(r#"category = "shoes""#.into()),
            window_ms: Some(3_600_000),
            sums: vec!["amount".into(), "items".into()],
        };
        let prepared = Prepared {
            query: &query,
            filter: Some(tessera_rules::parse_filter(r#"category = "shoes""#).unwrap()),
        };
        let now = 10_000_000;
        let events = [
            // A millisecond before the window: out.
            event(
                "purchase",
                now - 3_600_001,
                json!({"category": "shoes", "amount": 1}),
            ),
            // Exactly at its start: in.
            event(
                "purchase",
                now - 3_600_000,
                json!({"category": "shoes", "amount": 2, "items": 3}),
            ),
            event(
                "purchase",
                now - 10,
                json!({"category": "hats", "amount": 40}),
            ),
            event(
                "product_view",
                now - 5,
                json!({"category": "shoes", "amount": 50}),
            ),
            event(
                "purchase",
                now,
                json!({"category": "shoes", "amount": null, "items": 1}),
            ),
            event(
                "purchase",
                now + 1,
                json!({"category": "shoes", "amount": 7}),
            ),
        ];
        assert_eq!(
            facts(&prepared, &events, now),
            Facts {
                count: 2,
                first_ms: Some(now - 3_600_000),
                last_ms: Some(now),
                sums: vec![2.0, 4.0],
            }
        );
        let none = facts(&prepared, &events[2..4], now);
        assert_eq!(
            (none.count, none.first_ms, none.sums),
            (0, None, vec![0.0, 0.0])
        );
    }
}

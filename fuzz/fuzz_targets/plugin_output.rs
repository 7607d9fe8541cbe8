//! The host's checks of what a plugin returns (host/runtime/src/output.rs
//! and the manifest check at install), on outputs built from the fuzzer's
//! bytes: the values a hostile guest could hand back through the canonical
//! ABI. A check never panics, and what it accepts is safe for the host to
//! use as it does: tier codes and action indices index their lists, plan
//! filters parse, parameters resolve against an accepted manifest.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use tessera_runtime::api::segments::Memberships;
use tessera_runtime::api::strategies::{
    ActionForecast, ActionSpec, Decision, Forecast, RankedAction,
};
use tessera_runtime::api::types::{
    AggregateFn, AggregateSpec, FieldClass, FieldSpec, FieldValue, Manifest, ParamSpec, TextColumn,
    Value, ValueKind,
};
use tessera_runtime::fuzzing as checks;
use tessera_runtime::{EventQuery, Needs, resolve_params};

/// A short string, its length from one byte, so that lists of names stay
/// cheap; bytes that are not UTF-8 give "x".
fn text(u: &mut Unstructured<'_>) -> Result<String> {
    let len = usize::from(u.arbitrary::<u8>()? % 24).min(u.len());
    Ok(std::str::from_utf8(u.bytes(len)?).unwrap_or("x").to_owned())
}

/// Up to `max` items (the checks' limits are a little below each `max`).
fn list<T>(
    u: &mut Unstructured<'_>,
    max: usize,
    mut item: impl FnMut(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(0..=max)?;
    (0..n).map(|_| item(u)).collect()
}

fn float(u: &mut Unstructured<'_>) -> Result<f64> {
    Ok(match u.arbitrary::<u8>()? % 8 {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => -1.0,
        3 => 0.0,
        4 => 1.0,
        5 => 0.5,
        _ => u.arbitrary()?,
    })
}

fn kind(u: &mut Unstructured<'_>) -> Result<ValueKind> {
    Ok(*u.choose(&[
        ValueKind::Boolean,
        ValueKind::Integer,
        ValueKind::Number,
        ValueKind::Text,
        ValueKind::Timestamp,
        ValueKind::TextList,
    ])?)
}

fn value(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=6)? {
        0 => Value::Null,
        1 => Value::Boolean(u.arbitrary()?),
        2 => Value::Integer(u.arbitrary()?),
        3 => Value::Number(float(u)?),
        4 => Value::Text(text(u)?),
        5 => Value::Timestamp(u.arbitrary()?),
        _ => Value::TextList(list(u, 4, text)?),
    })
}

fn field_spec(u: &mut Unstructured<'_>) -> Result<FieldSpec> {
    Ok(FieldSpec {
        name: text(u)?,
        kind: kind(u)?,
        class: *u.choose(&[FieldClass::Standard, FieldClass::Sensitive, FieldClass::Pii])?,
    })
}

fn aggregate(u: &mut Unstructured<'_>) -> Result<AggregateSpec> {
    Ok(AggregateSpec {
        name: text(u)?,
        event_type: text(u)?,
        function: *u.choose(&[
            AggregateFn::Count,
            AggregateFn::Sum,
            AggregateFn::Min,
            AggregateFn::Max,
            AggregateFn::FirstAt,
            AggregateFn::LastAt,
        ])?,
        property: u.arbitrary::<bool>()?.then(|| text(u)).transpose()?,
        window_days: u.arbitrary()?,
    })
}

fn param_spec(u: &mut Unstructured<'_>) -> Result<ParamSpec> {
    Ok(ParamSpec {
        name: text(u)?,
        kind: kind(u)?,
        description: text(u)?,
        required: u.arbitrary()?,
        default: u.arbitrary::<bool>()?.then(|| value(u)).transpose()?,
        min: u.arbitrary::<bool>()?.then(|| float(u)).transpose()?,
        max: u.arbitrary::<bool>()?.then(|| float(u)).transpose()?,
        choices: list(u, 4, text)?,
    })
}

fn manifest(u: &mut Unstructured<'_>) -> Result<()> {
    let manifest = Manifest {
        name: text(u)?,
        version: text(u)?,
        description: text(u)?,
        parameters: list(u, 6, param_spec)?,
        fields: list(u, 6, field_spec)?,
        aggregates: list(u, 6, aggregate)?,
        purposes: list(u, 4, text)?,
    };
    checks::manifest_size(&manifest);
    if checks::check_manifest(&manifest).is_err() {
        return Ok(());
    }
    let given = list(u, 6, |u| {
        Ok(FieldValue {
            name: text(u)?,
            value: value(u)?,
        })
    })?;
    if let Ok(resolved) = resolve_params(&manifest.parameters, &given) {
        for param in &resolved {
            assert!(
                manifest.parameters.iter().any(|p| p.name == param.name),
                "resolved a parameter the manifest does not declare: {}",
                param.name
            );
        }
        for spec in manifest.parameters.iter().filter(|p| p.required) {
            assert!(
                resolved.iter().any(|p| p.name == spec.name),
                "required parameter {} missing after resolving",
                spec.name
            );
        }
    }
    Ok(())
}

fn needs(u: &mut Unstructured<'_>) -> Result<()> {
    let needs = Needs {
        fields: list(u, 260, field_spec)?,
        aggregates: list(u, 8, aggregate)?,
        queries: list(u, 8, |u| {
            Ok(EventQuery {
                name: text(u)?,
                event_type: text(u)?,
                filter: u.arbitrary::<bool>()?.then(|| text(u)).transpose()?,
                window_ms: u.arbitrary()?,
                sums: list(u, 18, text)?,
            })
        })?,
        segments: list(u, 8, text)?,
    };
    checks::needs_size(&needs);
    if checks::check_needs(&needs).is_ok() {
        for query in &needs.queries {
            if let Some(filter) = &query.filter {
                assert!(tessera_rules::parse_filter(filter).is_ok());
            }
        }
    }
    Ok(())
}

fn memberships(u: &mut Unstructured<'_>) -> Result<()> {
    let rows = u.int_in_range(0..=16)?;
    let out = Memberships {
        member: list(u, 18, |u| Ok(u.int_in_range(0..=2)?))?,
        scores: list(u, 18, float)?,
        tiers: if u.arbitrary()? {
            Some(TextColumn {
                dictionary: list(u, 4, text)?,
                codes: list(u, 18, |u| Ok(u.int_in_range(0..=5)?))?,
            })
        } else {
            None
        },
    };
    checks::memberships_size(&out);
    if checks::check_memberships(&out, rows).is_ok() {
        for row in 0..rows as usize {
            assert!(out.member[row] <= 1);
            if !out.scores.is_empty() {
                assert!(out.scores[row].is_finite());
            }
            if let Some(tiers) = &out.tiers {
                let _tier = &tiers.dictionary[tiers.codes[row] as usize];
            }
        }
    }
    Ok(())
}

fn strategy(u: &mut Unstructured<'_>) -> Result<()> {
    let actions = list(u, 6, |u| {
        Ok(ActionSpec {
            name: text(u)?,
            description: text(u)?,
        })
    })?;
    if checks::check_actions(&actions).is_err() {
        return Ok(());
    }
    let n = actions.len();
    let rows = u.int_in_range(0..=6)?;
    let decisions = list(u, 8, |u| {
        Ok(Decision {
            ranked: list(u, 8, |u| {
                Ok(RankedAction {
                    action: u.int_in_range(0..=7)?,
                    score: float(u)?,
                    propensity: float(u)?,
                })
            })?,
            explanation: text(u)?,
        })
    })?;
    if checks::check_decisions(&decisions, rows, n).is_ok() {
        for decision in &decisions {
            assert!(!decision.ranked.is_empty());
            for ranked in &decision.ranked {
                let _action = &actions[ranked.action as usize];
                assert!((0.0..=1.0).contains(&ranked.propensity));
            }
        }
    }
    let forecast = Forecast {
        actions: list(u, 8, |u| {
            Ok(ActionForecast {
                action: u.int_in_range(0..=7)?,
                share: float(u)?,
                expected_reward: float(u)?,
            })
        })?,
        expected_reward: float(u)?,
        notes: text(u)?,
    };
    checks::forecast_size(&forecast);
    if checks::check_forecast(&forecast, n).is_ok() {
        for f in &forecast.actions {
            let _action = &actions[f.action as usize];
        }
    }
    Ok(())
}

// The first byte picks the output: a manifest (and parameters against
// it), a plan, a segment's memberships, or a strategy's actions, decisions
// and forecast.
fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = match u.arbitrary::<u8>().unwrap_or(0) % 4 {
        0 => manifest(&mut u),
        1 => needs(&mut u),
        2 => memberships(&mut u),
        _ => strategy(&mut u),
    };
});

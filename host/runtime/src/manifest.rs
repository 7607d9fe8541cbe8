//! Checks of what plugins declare: a manifest must be well formed before a
//! plugin is installed, and parameters must match its schema before they are
//! saved (never at call time).

use std::collections::HashSet;

use crate::api::types::{FieldValue, Manifest, ParamSpec, Value, ValueKind};

/// Parameters that do not match a plugin's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

/// A lowercase identifier: 1-64 characters of a-z, 0-9, `_` or `-`.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_semver(s: &str) -> bool {
    let core = s.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<_> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn kind_of(value: &Value) -> Option<ValueKind> {
    Some(match value {
        Value::Null => return None,
        Value::Boolean(_) => ValueKind::Boolean,
        Value::Integer(_) => ValueKind::Integer,
        Value::Number(_) => ValueKind::Number,
        Value::Text(_) => ValueKind::Text,
        Value::Timestamp(_) => ValueKind::Timestamp,
        Value::TextList(_) => ValueKind::TextList,
    })
}

/// The WIT name of a value kind (`number`, `text-list`, …).
pub fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Boolean => "boolean",
        ValueKind::Integer => "integer",
        ValueKind::Number => "number",
        ValueKind::Text => "text",
        ValueKind::Timestamp => "timestamp",
        ValueKind::TextList => "text-list",
    }
}

/// Checks a manifest: names are lowercase identifiers, the version is semver,
/// nothing is declared twice, defaults and choices fit their parameters.
pub(crate) fn check_manifest(m: &Manifest) -> Result<(), String> {
    if !is_name(&m.name) {
        return Err(format!(
            "name `{}` must be 1-64 characters of a-z, 0-9, `_` or `-`",
            m.name
        ));
    }
    if !is_semver(&m.version) {
        return Err(format!(
            "version `{}` is not a semantic version (MAJOR.MINOR.PATCH)",
            m.version
        ));
    }
    let mut seen = HashSet::new();
    for p in &m.parameters {
        if !is_name(&p.name) || !seen.insert(("param", p.name.as_str())) {
            return Err(format!(
                "parameter `{}` is badly named or declared twice",
                p.name
            ));
        }
        if let Some(default) = &p.default {
            check_value(p, default).map_err(|e| format!("default of {e}"))?;
        }
        if let (Some(min), Some(max)) = (p.min, p.max)
            && min.partial_cmp(&max).is_none_or(|o| o.is_gt())
        {
            return Err(format!(
                "parameter `{}` has min {min} above max {max}",
                p.name
            ));
        }
    }
    for f in &m.fields {
        if f.name.is_empty() || !seen.insert(("field", f.name.as_str())) {
            return Err(format!("field `{}` is empty or declared twice", f.name));
        }
    }
    for a in &m.aggregates {
        if !is_name(&a.name) || !seen.insert(("aggregate", a.name.as_str())) {
            return Err(format!(
                "aggregate `{}` is badly named or declared twice",
                a.name
            ));
        }
        if a.event_type.is_empty() {
            return Err(format!("aggregate `{}` names no event type", a.name));
        }
    }
    for purpose in &m.purposes {
        if !is_name(purpose) {
            return Err(format!(
                "purpose `{purpose}` must be a lowercase identifier"
            ));
        }
    }
    Ok(())
}

fn check_value(spec: &ParamSpec, value: &Value) -> Result<(), String> {
    let name = &spec.name;
    let kind = kind_of(value);
    let fits = match (spec.kind, kind) {
        (_, None) => true,
        (ValueKind::Number, Some(ValueKind::Integer)) => true,
        (want, Some(got)) => want == got,
    };
    if !fits {
        return Err(format!(
            "parameter `{name}`: expected {}, got {}",
            kind_name(spec.kind),
            kind.map(kind_name).unwrap_or("null")
        ));
    }
    let number = match value {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    };
    if let Some(n) = number {
        if !n.is_finite() {
            return Err(format!("parameter `{name}`: {n} is not a finite number"));
        }
        if spec.min.is_some_and(|min| n < min) || spec.max.is_some_and(|max| n > max) {
            return Err(format!(
                "parameter `{name}`: {n} is outside {}..={}",
                spec.min.map_or("-inf".into(), |v| v.to_string()),
                spec.max.map_or("inf".into(), |v| v.to_string())
            ));
        }
    }
    if let Value::Text(s) = value
        && !spec.choices.is_empty()
        && !spec.choices.contains(s)
    {
        return Err(format!(
            "parameter `{name}`: `{s}` is not one of {}",
            spec.choices.join(", ")
        ));
    }
    Ok(())
}

/// Checks parameters against a plugin's schema and fills in defaults: unknown
/// names, missing required parameters, wrong kinds, values out of bounds or
/// outside the choices are refused with a message naming the parameter.
pub fn resolve_params(
    spec: &[ParamSpec],
    given: &[FieldValue],
) -> Result<Vec<FieldValue>, ParamError> {
    let mut seen = HashSet::new();
    for param in given {
        if !seen.insert(param.name.as_str()) {
            return Err(ParamError(format!(
                "parameter `{}` is given twice",
                param.name
            )));
        }
        let Some(s) = spec.iter().find(|s| s.name == param.name) else {
            let known: Vec<_> = spec.iter().map(|s| s.name.as_str()).collect();
            return Err(ParamError(format!(
                "unknown parameter `{}`; this plugin takes: {}",
                param.name,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        };
        check_value(s, &param.value).map_err(ParamError)?;
    }
    let mut resolved = Vec::with_capacity(spec.len());
    for s in spec {
        let given = given
            .iter()
            .find(|p| p.name == s.name)
            .filter(|p| !matches!(p.value, Value::Null));
        match (given, &s.default) {
            (Some(p), _) => resolved.push(p.clone()),
            (None, Some(default)) => resolved.push(FieldValue {
                name: s.name.clone(),
                value: default.clone(),
            }),
            (None, None) if s.required => {
                return Err(ParamError(format!(
                    "parameter `{}` is required: {}",
                    s.name, s.description
                )));
            }
            (None, None) => {}
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: ValueKind) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            kind,
            description: format!("the {name}"),
            required: false,
            default: None,
            min: None,
            max: None,
            choices: Vec::new(),
        }
    }

    fn given(name: &str, value: Value) -> FieldValue {
        FieldValue {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn defaults_are_filled_and_integers_widen_to_numbers() {
        let specs = [
            ParamSpec {
                default: Some(Value::Number(0.1)),
                ..spec("epsilon", ValueKind::Number)
            },
            ParamSpec {
                required: true,
                ..spec("threshold", ValueKind::Number)
            },
        ];
        let resolved = resolve_params(&specs, &[given("threshold", Value::Integer(500))]).unwrap();
        assert_eq!(
            resolved,
            vec![
                given("epsilon", Value::Number(0.1)),
                given("threshold", Value::Integer(500))
            ]
        );
    }

    #[test]
    fn bad_parameters_are_refused_with_the_parameter_named() {
        let specs = [
            ParamSpec {
                required: true,
                min: Some(0.0),
                max: Some(1.0),
                ..spec("epsilon", ValueKind::Number)
            },
            ParamSpec {
                choices: vec!["a".into(), "b".into()],
                ..spec("mode", ValueKind::Text)
            },
        ];
        let err = |given: &[FieldValue]| resolve_params(&specs, given).unwrap_err().0;
        assert!(err(&[]).contains("`epsilon` is required: the epsilon"));
        assert!(err(&[given("epsilon", Value::Number(1.5))]).contains("1.5 is outside 0..=1"));
        assert!(
            err(&[given("epsilon", Value::Text("x".into()))]).contains("expected number, got text")
        );
        assert!(err(&[given("epsilon", Value::Number(f64::NAN))]).contains("not a finite number"));
        assert!(
            err(&[
                given("epsilon", Value::Number(0.5)),
                given("mode", Value::Text("c".into()))
            ])
            .contains("not one of a, b")
        );
        assert!(
            err(&[
                given("epsilon", Value::Number(0.5)),
                given("speed", Value::Integer(1))
            ])
            .contains("unknown parameter `speed`; this plugin takes: epsilon, mode")
        );
        assert!(
            err(&[
                given("epsilon", Value::Number(0.5)),
                given("epsilon", Value::Number(0.5))
            ])
            .contains("given twice")
        );
    }

    #[test]
    fn manifests_with_bad_names_versions_or_duplicates_are_refused() {
        let ok = Manifest {
            name: "rfm".into(),
            version: "1.2.3-beta.1".into(),
            description: String::new(),
            parameters: vec![spec("tiers", ValueKind::Integer)],
            fields: Vec::new(),
            aggregates: Vec::new(),
            purposes: vec!["marketing".into()],
        };
        assert_eq!(check_manifest(&ok), Ok(()));
        let bad = |f: fn(&mut Manifest)| {
            let mut m = ok.clone();
            f(&mut m);
            check_manifest(&m).unwrap_err()
        };
        assert!(bad(|m| m.name = "My Plugin".into()).contains("name `My Plugin`"));
        assert!(bad(|m| m.version = "1.2".into()).contains("not a semantic version"));
        assert!(bad(|m| m.parameters.push(m.parameters[0].clone())).contains("declared twice"));
        assert!(
            bad(|m| m.parameters[0].default = Some(Value::Text("x".into())))
                .contains("default of parameter `tiers`")
        );
        assert!(bad(|m| m.purposes.push("Ads!".into())).contains("purpose `Ads!`"));
    }
}

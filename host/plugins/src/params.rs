//! Plugin parameters at rest.

use serde::{Deserialize, Serialize};
use tessera_runtime::api::types::{FieldValue, Value};

/// A plugin parameter's value as Tessera stores it (with an import, a
/// source, a segment): the WIT `value` in a serde shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ParamValue {
    Null,
    Boolean(bool),
    Integer(i64),
    Number(f64),
    Text(String),
    Timestamp(i64),
    TextList(Vec<String>),
}

impl From<&Value> for ParamValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => ParamValue::Null,
            Value::Boolean(b) => ParamValue::Boolean(*b),
            Value::Integer(i) => ParamValue::Integer(*i),
            Value::Number(n) => ParamValue::Number(*n),
            Value::Text(t) => ParamValue::Text(t.clone()),
            Value::Timestamp(t) => ParamValue::Timestamp(*t),
            Value::TextList(l) => ParamValue::TextList(l.clone()),
        }
    }
}

impl From<&ParamValue> for Value {
    fn from(value: &ParamValue) -> Self {
        match value {
            ParamValue::Null => Value::Null,
            ParamValue::Boolean(b) => Value::Boolean(*b),
            ParamValue::Integer(i) => Value::Integer(*i),
            ParamValue::Number(n) => Value::Number(*n),
            ParamValue::Text(t) => Value::Text(t.clone()),
            ParamValue::Timestamp(t) => Value::Timestamp(*t),
            ParamValue::TextList(l) => Value::TextList(l.clone()),
        }
    }
}

/// Parameters as stored, from the values a plugin validated.
pub fn stored_params(params: &[FieldValue]) -> Vec<(String, ParamValue)> {
    params
        .iter()
        .map(|p| (p.name.clone(), ParamValue::from(&p.value)))
        .collect()
}

/// Stored parameters as a plugin takes them.
pub fn field_values(params: &[(String, ParamValue)]) -> Vec<FieldValue> {
    params
        .iter()
        .map(|(name, value)| FieldValue {
            name: name.clone(),
            value: Value::from(value),
        })
        .collect()
}

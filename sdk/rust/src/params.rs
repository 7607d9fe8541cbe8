//! Typed access to the parameters the host passes to every call. The host has
//! already checked them against the manifest's schema and filled in defaults.

use crate::{Error, FieldValue, Value};

/// The parameters of one call, by name.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: Vec<FieldValue>,
}

impl Params {
    /// Wraps the parameters the host sent.
    pub fn new(values: Vec<FieldValue>) -> Self {
        Params { values }
    }

    /// The raw value of a parameter, if present and not null.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.value)
            .filter(|v| !matches!(v, Value::Null))
    }

    fn required<'a, T>(
        &'a self,
        name: &str,
        expected: &str,
        pick: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<T, Error> {
        let value = self
            .get(name)
            .ok_or_else(|| Error::config(format!("parameter `{name}` is required")))?;
        pick(value).ok_or_else(|| Error::config(format!("parameter `{name}` must be {expected}")))
    }

    /// A number (integers are widened).
    pub fn number(&self, name: &str) -> Result<f64, Error> {
        self.required(name, "a number", |v| match v {
            Value::Number(n) => Some(*n),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        })
    }

    /// An integer.
    pub fn integer(&self, name: &str) -> Result<i64, Error> {
        self.required(name, "an integer", |v| match v {
            Value::Integer(i) => Some(*i),
            _ => None,
        })
    }

    /// A boolean.
    pub fn boolean(&self, name: &str) -> Result<bool, Error> {
        self.required(name, "a boolean", |v| match v {
            Value::Boolean(b) => Some(*b),
            _ => None,
        })
    }

    /// A text.
    pub fn text(&self, name: &str) -> Result<&str, Error> {
        self.required(name, "a text", |v| match v {
            Value::Text(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// A list of texts.
    pub fn text_list(&self, name: &str) -> Result<&[String], Error> {
        self.required(name, "a list of texts", |v| match v {
            Value::TextList(l) => Some(l.as_slice()),
            _ => None,
        })
    }

    /// Every parameter, in the order the host sent them.
    pub fn iter(&self) -> impl Iterator<Item = &FieldValue> {
        self.values.iter()
    }
}

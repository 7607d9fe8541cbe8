//! Stored trait values (JSON) to the kind of column a plugin declared. A
//! value that does not convert is missing, never an error: a plugin sees
//! what the data says, and the data does not fail a call.

use serde_json::Value;
use tessera_rules::calendar::{days_from_civil, days_in_month};
use tessera_runtime::api::types::ValueKind;

/// One converted value, ready for a column of its kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Boolean(bool),
    Integer(i64),
    Number(f64),
    Timestamp(i64),
    Text(String),
    TextList(Vec<String>),
}

/// `value` as a value of `kind`, if it is one.
pub(crate) fn convert(value: &Value, kind: ValueKind) -> Option<Cell> {
    match kind {
        ValueKind::Number => number(value).map(Cell::Number),
        ValueKind::Integer => integer(value).map(Cell::Integer),
        ValueKind::Boolean => boolean(value).map(Cell::Boolean),
        ValueKind::Text => scalar_text(value).map(Cell::Text),
        ValueKind::Timestamp => timestamp(value).map(Cell::Timestamp),
        ValueKind::TextList => text_list(value).map(Cell::TextList),
    }
}

fn number(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    number.is_finite().then_some(number)
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            // Whole numbers only, within i64 (2^63 is not).
            (f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63)).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => items.iter().map(scalar_text).collect(),
        Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

/// Milliseconds since the epoch from an integer (already milliseconds) or
/// an ISO 8601 date (`2024-05-01`, midnight UTC) or date-time
/// (`2024-05-01T12:30:00Z`, `…T12:30:00.250+02:00`; no offset means UTC).
fn timestamp(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_iso(s.trim()),
        _ => None,
    }
}

const DAY_MS: i64 = 86_400_000;

pub(crate) fn parse_iso(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = bytes.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let year = digits(0, 4)?;
    let month = digits(5, 2)?;
    let day = digits(8, 2)?;
    if bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * DAY_MS;
    if bytes.len() == 10 {
        return Some(date_ms);
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let hour = digits(11, 2)?;
    let minute = digits(14, 2)?;
    if bytes.get(13) != Some(&b':') || hour > 23 || minute > 59 {
        return None;
    }
    let mut at = 16;
    let mut second = 0;
    let mut millis = 0;
    if bytes.get(at) == Some(&b':') {
        second = digits(17, 2)?;
        if second > 60 {
            return None;
        }
        at = 19;
        if bytes.get(at) == Some(&b'.') {
            let start = at + 1;
            let mut end = start;
            while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            if end == start {
                return None;
            }
            // Milliseconds: the first three digits, the rest dropped.
            let fraction = &text[start..end.min(start + 3)];
            millis = fraction.parse::<i64>().ok()? * 10i64.pow(3 - fraction.len() as u32);
            at = end;
        }
    }
    let offset_ms = match &text[at..] {
        "" | "Z" | "z" => 0,
        zone => {
            let zone = zone.as_bytes();
            let sign = match zone.first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            if zone.len() != 6 || zone[3] != b':' {
                return None;
            }
            let hours = digits(at + 1, 2)?;
            let minutes = digits(at + 4, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes) * 60_000
        }
    };
    Some(date_ms + ((hour * 60 + minute) * 60 + second) * 1000 + millis - offset_ms)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn iso_dates_and_times_become_epoch_milliseconds() {
        assert_eq!(parse_iso("1970-01-01"), Some(0));
        assert_eq!(parse_iso("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(parse_iso("2024-02-29T00:00:01Z"), Some(1_709_164_801_000));
        assert_eq!(
            parse_iso("2024-02-29T02:00:00.250+02:00"),
            Some(1_709_164_800_250)
        );
        assert_eq!(parse_iso("1969-12-31T23:59"), Some(-60_000));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "2024-01-01T25:00",
            "01/02/2024",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_that_do_not_convert_are_missing() {
        assert_eq!(
            convert(&json!(3), ValueKind::Number),
            Some(Cell::Number(3.0))
        );
        assert_eq!(
            convert(&json!("2.5"), ValueKind::Number),
            Some(Cell::Number(2.5))
        );
        assert_eq!(
            convert(&json!(4.0), ValueKind::Integer),
            Some(Cell::Integer(4))
        );
        assert_eq!(convert(&json!(4.5), ValueKind::Integer), None);
        assert_eq!(convert(&json!("yes"), ValueKind::Boolean), None);
        assert_eq!(
            convert(&json!(true), ValueKind::Boolean),
            Some(Cell::Boolean(true))
        );
        assert_eq!(convert(&json!({"a": 1}), ValueKind::Text), None);
        assert_eq!(
            convert(&json!(12), ValueKind::Text),
            Some(Cell::Text("12".into()))
        );
        assert_eq!(
            convert(&json!(["a", 1]), ValueKind::TextList),
            Some(Cell::TextList(vec!["a".into(), "1".into()]))
        );
        assert_eq!(convert(&json!([["a"]]), ValueKind::TextList), None);
        assert_eq!(convert(&json!("soon"), ValueKind::Timestamp), None);
        assert_eq!(
            convert(&json!("1970-01-02"), ValueKind::Timestamp),
            Some(Cell::Timestamp(DAY_MS))
        );
    }
}

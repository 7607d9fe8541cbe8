//! `pos-receipts`: a push connector for the receipt export of a store's
//! point-of-sale tills: tab-separated, one receipt a line, a header first.
//!
//! ```text
//! store   register  receipt  type    at                member  phone            total   items
//! S014    2         88120    SALE    2026-03-01 10:42  M-1001  +44 7700 900123  59,90   3
//! ```
//!
//! - `type` is `SALE` (a `purchase` event) or `REFUND` (a `refund` event);
//! - `at` is the till's local time, `YYYY-MM-DD HH:MM[:SS]`, at the
//!   `utc_offset` the connector is given (`+01:00`; tills do not write one);
//! - `member` (the loyalty card) and `phone` name the customer: at least one,
//!   and a receipt with both links the card to the phone;
//! - `total` is in the currency's units, with a decimal point or comma (tills
//!   write either) and no thousands separator; `items` a count.
//!
//! A receipt is identified by its store, register and number: that is the
//! event's source id, so a receipt is stored once however often the export is
//! imported. A bad line is rejected with its line number and the field at
//! fault, and the good lines of the file are kept. Rows are the file's line
//! numbers: the host passes `first_row` when it cuts a file into chunks.

use tessera_sdk::prelude::*;

struct PosReceipts;

/// The columns of the export, in order.
pub const COLUMNS: [&str; 9] = [
    "store", "register", "receipt", "type", "at", "member", "phone", "total", "items",
];

impl Connector for PosReceipts {
    fn describe() -> Manifest {
        Manifest::new(
            "pos-receipts",
            "1.0.0",
            "Point-of-sale receipt exports (tab-separated) as purchase and refund events",
        )
        .param(
            ParamSpec::text(
                "utc_offset",
                "The tills' offset from UTC, as +HH:MM or -HH:MM (they write local time)",
            )
            .default(Value::Text("+00:00".into())),
        )
        .param(
            ParamSpec::integer(
                "first_row",
                "File line number of the chunk's first line (set by the host)",
            )
            .range(1.0, f64::from(u32::MAX))
            .default(Value::Integer(1)),
        )
    }

    fn modes() -> Modes {
        Modes::PUSH
    }

    fn validate(params: &Params) -> Result<(), Error> {
        utc_offset_ms(params.text("utc_offset")?).map(|_| ())
    }

    fn parse(params: &Params, data: &[u8]) -> Result<ParseOutput, Error> {
        let offset_ms = utc_offset_ms(params.text("utc_offset")?)?;
        // Absent when the whole file is one call.
        let first_row = match params.get("first_row") {
            Some(Value::Integer(row)) => *row,
            _ => 1,
        };
        Ok(parse_export(data, first_row, offset_ms))
    }
}

/// Parses a chunk of the export whose first line is file line `first_row`.
pub fn parse_export(data: &[u8], first_row: i64, offset_ms: i64) -> ParseOutput {
    let mut out = ParseOutput {
        records: Vec::new(),
        rejections: Vec::new(),
    };
    // Lines are split on bytes, so one line that is not UTF-8 is rejected
    // alone instead of failing the chunk.
    for (index, line) in data.split(|b| *b == b'\n').enumerate() {
        let row = u32::try_from(first_row.saturating_add(index as i64)).unwrap_or(u32::MAX);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            out.rejections
                .push(Rejection::new(row, None, "the line is not UTF-8 text"));
            continue;
        };
        if line.trim().is_empty() || line.starts_with("store\t") {
            continue;
        }
        match receipt(line, offset_ms) {
            Ok(event) => out.records.push(Record::Event(event)),
            Err((field, reason)) => out.rejections.push(Rejection::new(row, field, reason)),
        }
    }
    out
}

/// Why a line was rejected: the field at fault (if one) and the reason.
type Rejected = (Option<&'static str>, String);

/// One receipt line as an event.
fn receipt(line: &str, offset_ms: i64) -> Result<Event, Rejected> {
    let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
    let Ok(
        [
            store,
            register,
            number,
            kind,
            at,
            member,
            phone,
            total,
            items,
        ],
    ) = <[&str; 9]>::try_from(fields.as_slice())
    else {
        return Err((
            None,
            format!(
                "expected {} tab-separated fields ({}), found {}",
                COLUMNS.len(),
                COLUMNS.join(", "),
                fields.len()
            ),
        ));
    };
    for (name, value) in [
        ("store", store),
        ("register", register),
        ("receipt", number),
    ] {
        if value.is_empty() {
            return Err((
                Some(name),
                "is empty: a receipt is identified by store, register and number".into(),
            ));
        }
    }
    let event_type = match kind.to_ascii_uppercase().as_str() {
        "SALE" => "purchase",
        "REFUND" => "refund",
        _ => {
            return Err((Some("type"), format!("`{kind}` is neither SALE nor REFUND")));
        }
    };
    let at = local_time_ms(at)
        .map(|local| local - offset_ms)
        .ok_or_else(|| {
            (
                Some("at"),
                format!("`{at}` is not a time like 2026-03-01 10:42"),
            )
        })?;
    let mut identities = Vec::new();
    if !member.is_empty() {
        identities.push(Identity::new("member_id", member));
    }
    if !phone.is_empty() {
        identities.push(Identity::new("phone", phone));
    }
    if identities.is_empty() {
        return Err((
            Some("member"),
            "no loyalty card and no phone: the receipt names no customer".into(),
        ));
    }
    let total = amount(total).ok_or_else(|| {
        (
            Some("total"),
            format!("`{total}` is not an amount like 59.90 or 59,90"),
        )
    })?;
    let items: i64 = items
        .parse()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| (Some("items"), format!("`{items}` is not a count of items")))?;
    Ok(Event {
        source_id: format!("pos:{store}:{register}:{number}"),
        event_type: event_type.into(),
        at,
        identities,
        properties: vec![
            FieldValue {
                name: "amount".into(),
                value: Value::Number(total),
            },
            FieldValue {
                name: "items".into(),
                value: Value::Integer(items),
            },
            FieldValue {
                name: "store".into(),
                value: Value::Text(store.into()),
            },
        ],
    })
}

/// `59.90`, `59,90`, `59`: a non-negative amount with at most one decimal
/// separator and two decimals.
pub fn amount(text: &str) -> Option<f64> {
    let (units, cents) = match text.find(['.', ',']) {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if units.is_empty() || !digits(units) || !digits(cents) || cents.len() > 2 {
        return None;
    }
    format!("{units}.{cents}0")
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
}

/// `+01:00`, `-05:30`, `+00:00`: the offset in milliseconds.
pub fn utc_offset_ms(text: &str) -> Result<i64, Error> {
    let bad = || {
        Error::config(format!(
            "parameter `utc_offset`: `{text}` is not an offset like +01:00 or -05:30"
        ))
    };
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(bad)?;
    if hours.len() != 2 || minutes.len() != 2 {
        return Err(bad());
    }
    let hours: i64 = hours.parse().map_err(|_| bad())?;
    let minutes: i64 = minutes.parse().map_err(|_| bad())?;
    if hours > 14 || minutes > 59 {
        return Err(bad());
    }
    Ok(sign * (hours * 60 + minutes) * 60_000)
}

/// `YYYY-MM-DD HH:MM[:SS]` as milliseconds since the epoch, as if UTC.
pub fn local_time_ms(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(' ')?;
    let mut date = date.split('-');
    let (year, month, day) = (date.next()?, date.next()?, date.next()?);
    if date.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let number = |s: &str| -> Option<i64> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (number(year)?, number(month)?, number(day)?);
    let mut time = time.split(':');
    let (hour, minute) = (time.next()?, time.next()?);
    let second = time.next().unwrap_or("00");
    if time.next().is_some() || [hour, minute, second].iter().any(|p| p.len() != 2) {
        return None;
    }
    let (hour, minute, second) = (number(hour)?, number(minute)?, number(second)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

tessera_sdk::export_connector!(PosReceipts);

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../sample.tsv");

    fn events(out: &ParseOutput) -> Vec<&Event> {
        out.records
            .iter()
            .filter_map(|r| match r {
                Record::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_sample_export_becomes_events_and_named_rejections() {
        let out = parse_export(SAMPLE.as_bytes(), 1, 3_600_000);
        let events = events(&out);
        let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            kinds,
            ["purchase", "purchase", "purchase", "refund", "purchase"]
        );
        let first = events[0];
        assert_eq!(first.source_id, "pos:S014:2:88120");
        // 2026-01-05 10:42 at +01:00 is 09:42 UTC.
        assert_eq!(first.at, local_time_ms("2026-01-05 09:42").unwrap());
        assert!(
            matches!(first.properties[0].value, Value::Number(n) if n == 59.9),
            "a decimal comma: {:?}",
            first.properties
        );
        // The card and the phone of one receipt, to be linked.
        let kinds: Vec<&str> = events[1]
            .identities
            .iter()
            .map(|i| i.kind.as_str())
            .collect();
        assert_eq!(kinds, ["member_id", "phone"]);
        let rejected: Vec<(u32, Option<&str>)> = out
            .rejections
            .iter()
            .map(|r| (r.row, r.field.as_deref()))
            .collect();
        assert_eq!(
            rejected,
            [
                (7, Some("at")),
                (8, Some("member")),
                (9, Some("total")),
                (10, None)
            ],
            "{:?}",
            out.rejections
        );
    }

    #[test]
    fn a_later_chunk_keeps_the_file_line_numbers() {
        let chunk = "S014\t2\t1\tSALE\t2026-01-05 10:42\tM-1\t\t1.00\t1\nbroken\n";
        let out = parse_export(chunk.as_bytes(), 40, 0);
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.rejections[0].row, 41);
        assert!(
            out.rejections[0].reason.contains("found 1"),
            "{:?}",
            out.rejections
        );
    }

    #[test]
    fn amounts_take_a_point_or_a_comma_and_nothing_else() {
        assert_eq!(amount("59,90"), Some(59.9));
        assert_eq!(amount("59.9"), Some(59.9));
        assert_eq!(amount("12"), Some(12.0));
        for bad in ["", "1.234,50", "12.345", "-3", "abc", ",5", "1e3"] {
            assert_eq!(amount(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_and_offsets_are_checked() {
        assert_eq!(local_time_ms("1970-01-01 00:00"), Some(0));
        assert_eq!(
            local_time_ms("2024-02-29 23:59:59"),
            Some(1_709_251_199_000)
        );
        for bad in [
            "2025-02-29 10:00",
            "2026-13-01 10:00",
            "2026-01-01T10:00",
            "2026-01-01 24:00",
            "01/05/2026 10:42",
        ] {
            assert_eq!(local_time_ms(bad), None, "{bad}");
        }
        assert_eq!(utc_offset_ms("+01:00").unwrap(), 3_600_000);
        assert_eq!(utc_offset_ms("-05:30").unwrap(), -19_800_000);
        let Err(Error::InvalidConfig(message)) = utc_offset_ms("CET") else {
            panic!("CET was taken for an offset");
        };
        assert!(message.contains("utc_offset"), "{message}");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_rejected_alone() {
        let mut data = b"S014\t2\t7\tSALE\t2026-01-05 10:42\tM-1\t\t1.00\t1\n".to_vec();
        data.extend_from_slice(b"S014\t2\t8\tSALE\t2026-01-05 10:42\tM-\xff\t\t1.00\t1\n");
        let out = parse_export(&data, 1, 0);
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.rejections[0].row, 2);
    }
}

//! Cell text to typed values: numbers with a chosen decimal and thousands
//! separator, booleans, and times in a declared format and offset.
//! Pure functions of their input; nothing here allocates on success.

/// How numbers are written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberStyle {
    pub decimal: u8,
    /// The thousands separator, if the file groups digits.
    pub thousands: Option<u8>,
}

/// Why a cell is not a number; the text is completed by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    Malformed,
    /// Digits are grouped but the file declares no thousands separator.
    Grouped,
    /// A fraction in an integer column.
    Fraction,
    OutOfRange,
}

/// Longest number text accepted (digits, separators, sign, exponent).
const MAX_NUMBER: usize = 64;

/// Normalises `text` into `buf` as `[-]digits[.digits][e[-]digits]`.
fn normalise<'b>(
    text: &str,
    style: NumberStyle,
    integer: bool,
    buf: &'b mut [u8; MAX_NUMBER],
) -> Result<&'b str, NumberError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NUMBER {
        return Err(NumberError::Malformed);
    }
    let mut n = 0;
    let mut i = 0;
    if matches!(bytes[0], b'+' | b'-') {
        if bytes[0] == b'-' {
            buf[0] = b'-';
            n = 1;
        }
        i = 1;
    }
    // Integer part, with groups of three after a separator.
    let mut digits = 0;
    let mut group: Option<usize> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() {
            buf[n] = b;
            n += 1;
            digits += 1;
            if let Some(g) = group.as_mut() {
                *g += 1;
            }
        } else if Some(b) == style.thousands {
            let first = group.is_none() && (1..=3).contains(&digits);
            if !(first || group == Some(3)) {
                return Err(NumberError::Malformed);
            }
            group = Some(0);
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 || group.is_some_and(|g| g != 3) {
        return Err(NumberError::Malformed);
    }
    if i < bytes.len() && bytes[i] == style.decimal {
        if integer {
            return Err(NumberError::Fraction);
        }
        buf[n] = b'.';
        n += 1;
        i += 1;
        let from = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            buf[n] = bytes[i];
            n += 1;
            i += 1;
        }
        if i == from {
            return Err(NumberError::Malformed);
        }
    }
    if !integer && i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        buf[n] = b'e';
        n += 1;
        i += 1;
        if i < bytes.len() && matches!(bytes[i], b'+' | b'-') {
            buf[n] = bytes[i];
            n += 1;
            i += 1;
        }
        let from = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            buf[n] = bytes[i];
            n += 1;
            i += 1;
        }
        if i == from {
            return Err(NumberError::Malformed);
        }
    }
    if i != bytes.len() {
        let grouped = style.thousands.is_none()
            && matches!(bytes[i], b',' | b'.' | b' ' | b'\'')
            && bytes[i] != style.decimal;
        return Err(if grouped {
            NumberError::Grouped
        } else {
            NumberError::Malformed
        });
    }
    std::str::from_utf8(&buf[..n]).map_err(|_| NumberError::Malformed)
}

/// A finite number.
pub fn number(text: &str, style: NumberStyle) -> Result<f64, NumberError> {
    let mut buf = [0; MAX_NUMBER];
    let normal = normalise(text, style, false, &mut buf)?;
    let value: f64 = normal.parse().map_err(|_| NumberError::Malformed)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(NumberError::OutOfRange)
    }
}

/// A whole number that fits in 64 bits.
pub fn integer(text: &str, style: NumberStyle) -> Result<i64, NumberError> {
    let mut buf = [0; MAX_NUMBER];
    let normal = normalise(text, style, true, &mut buf)?;
    normal.parse().map_err(|_| NumberError::OutOfRange)
}

/// `true`/`false`, `yes`/`no`, `y`/`n`, `t`/`f`, `1`/`0` (any case), `是`/`否`.
pub fn boolean(text: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["true", "yes", "y", "t", "1"];
    const FALSE: [&str; 5] = ["false", "no", "n", "f", "0"];
    if TRUE.iter().any(|t| text.eq_ignore_ascii_case(t)) || text == "是" {
        Some(true)
    } else if FALSE.iter().any(|f| text.eq_ignore_ascii_case(f)) || text == "否" {
        Some(false)
    } else {
        None
    }
}

/// One piece of a time pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Year,
    ShortYear,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Fraction,
    Offset,
    Literal(u8),
}

/// How a time is written in a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// A strftime-style pattern (the supported subset is in the crate docs).
    Pattern(Vec<Item>),
    /// RFC 3339, with its own offset.
    Rfc3339,
    /// Whole seconds since the Unix epoch.
    EpochSeconds,
    /// Whole milliseconds since the Unix epoch.
    EpochMillis,
}

impl TimeFormat {
    /// Parses a format: `rfc3339`, `epoch_s`, `epoch_ms` or a pattern.
    pub fn parse(format: &str) -> Result<Self, String> {
        match format {
            "rfc3339" => return Ok(TimeFormat::Rfc3339),
            "epoch_s" => return Ok(TimeFormat::EpochSeconds),
            "epoch_ms" => return Ok(TimeFormat::EpochMillis),
            _ => {}
        }
        let mut items = Vec::new();
        let mut bytes = format.bytes();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                items.push(Item::Literal(b));
                continue;
            }
            items.push(match bytes.next() {
                Some(b'Y') => Item::Year,
                Some(b'y') => Item::ShortYear,
                Some(b'm') => Item::Month,
                Some(b'd') => Item::Day,
                Some(b'H') => Item::Hour,
                Some(b'M') => Item::Minute,
                Some(b'S') => Item::Second,
                Some(b'f') => Item::Fraction,
                Some(b'z') => Item::Offset,
                Some(b'%') => Item::Literal(b'%'),
                Some(other) => {
                    return Err(format!(
                        "%{} is not supported (use %Y %y %m %d %H %M %S %f %z %%, or rfc3339, \
                         epoch_s, epoch_ms)",
                        char::from(other)
                    ));
                }
                None => return Err("ends with a lone %".into()),
            });
        }
        let has = |item| items.contains(&item);
        if !(has(Item::Year) || has(Item::ShortYear)) || !has(Item::Month) || !has(Item::Day) {
            return Err("a pattern needs a year (%Y or %y), a month (%m) and a day (%d)".into());
        }
        for item in [
            Item::Year,
            Item::ShortYear,
            Item::Month,
            Item::Day,
            Item::Hour,
            Item::Minute,
            Item::Second,
            Item::Fraction,
            Item::Offset,
        ] {
            if items.iter().filter(|i| **i == item).count() > 1 {
                return Err("a field appears twice".into());
            }
        }
        if has(Item::Year) && has(Item::ShortYear) {
            return Err("use %Y or %y, not both".into());
        }
        Ok(TimeFormat::Pattern(items))
    }

    /// Whether the text carries its own offset, so no time zone is needed.
    pub fn has_offset(&self) -> bool {
        match self {
            TimeFormat::Pattern(items) => items.contains(&Item::Offset),
            _ => true,
        }
    }

    /// Milliseconds since the epoch; `offset` (seconds east of UTC) applies
    /// when the text has no offset of its own.
    pub fn timestamp(&self, text: &str, offset: i32) -> Option<i64> {
        match self {
            TimeFormat::EpochSeconds => epoch(text)?.checked_mul(1000),
            TimeFormat::EpochMillis => epoch(text),
            TimeFormat::Rfc3339 => rfc3339(text),
            TimeFormat::Pattern(items) => pattern(items, text.as_bytes(), offset),
        }
    }
}

fn epoch(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A calendar time; validated by [`Civil::millis`].
#[derive(Debug, Default)]
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
    /// Seconds east of UTC.
    offset: i64,
}

impl Civil {
    fn millis(&self) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || self.day < 1
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let seconds = days * 86_400 + self.hour * 3600 + self.minute * 60 + self.second;
        Some((seconds - self.offset) * 1000 + self.millis)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Reads between `min` and `max` digits at `*at`.
fn digits(text: &[u8], at: &mut usize, min: usize, max: usize) -> Option<i64> {
    let mut value = 0i64;
    let mut count = 0;
    while count < max && *at < text.len() && text[*at].is_ascii_digit() {
        value = value * 10 + i64::from(text[*at] - b'0');
        *at += 1;
        count += 1;
    }
    (count >= min).then_some(value)
}

/// Reads a fraction of a second at `*at` as milliseconds (extra digits are cut).
fn fraction(text: &[u8], at: &mut usize) -> Option<i64> {
    let from = *at;
    let mut millis = 0;
    while *at < text.len() && text[*at].is_ascii_digit() && *at - from < 9 {
        if *at - from < 3 {
            millis = millis * 10 + i64::from(text[*at] - b'0');
        }
        *at += 1;
    }
    let count = *at - from;
    if count == 0 {
        return None;
    }
    for _ in count..3 {
        millis *= 10;
    }
    Some(millis)
}

/// Reads `Z`, `±HH:MM`, `±HHMM` or `±HH` at `*at`, as seconds east of UTC.
fn offset(text: &[u8], at: &mut usize) -> Option<i64> {
    match text.get(*at)? {
        b'Z' | b'z' => {
            *at += 1;
            Some(0)
        }
        sign @ (b'+' | b'-') => {
            let sign = if *sign == b'-' { -1 } else { 1 };
            *at += 1;
            let hours = digits(text, at, 2, 2)?;
            if text.get(*at) == Some(&b':') {
                *at += 1;
            }
            let minutes = if text.get(*at).is_some_and(u8::is_ascii_digit) {
                digits(text, at, 2, 2)?
            } else {
                0
            };
            (hours <= 18 && minutes <= 59).then_some(sign * (hours * 3600 + minutes * 60))
        }
        _ => None,
    }
}

fn pattern(items: &[Item], text: &[u8], zone: i32) -> Option<i64> {
    let mut civil = Civil {
        offset: i64::from(zone),
        ..Civil::default()
    };
    let mut at = 0;
    for item in items {
        match item {
            Item::Year => civil.year = digits(text, &mut at, 4, 4)?,
            Item::ShortYear => civil.year = 2000 + digits(text, &mut at, 2, 2)?,
            Item::Month => civil.month = digits(text, &mut at, 1, 2)?,
            Item::Day => civil.day = digits(text, &mut at, 1, 2)?,
            Item::Hour => civil.hour = digits(text, &mut at, 1, 2)?,
            Item::Minute => civil.minute = digits(text, &mut at, 1, 2)?,
            Item::Second => civil.second = digits(text, &mut at, 1, 2)?,
            Item::Fraction => civil.millis = fraction(text, &mut at)?,
            Item::Offset => civil.offset = offset(text, &mut at)?,
            Item::Literal(b) => {
                if text.get(at) != Some(b) {
                    return None;
                }
                at += 1;
            }
        }
    }
    if at != text.len() {
        return None;
    }
    civil.millis()
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t` or a space may stand for `T`.
fn rfc3339(text: &str) -> Option<i64> {
    let text = text.as_bytes();
    let mut at = 0;
    let mut civil = Civil::default();
    let expect = |at: &mut usize, allowed: &[u8]| -> Option<()> {
        let b = text.get(*at)?;
        *at += 1;
        allowed.contains(b).then_some(())
    };
    civil.year = digits(text, &mut at, 4, 4)?;
    expect(&mut at, b"-")?;
    civil.month = digits(text, &mut at, 2, 2)?;
    expect(&mut at, b"-")?;
    civil.day = digits(text, &mut at, 2, 2)?;
    expect(&mut at, b"Tt ")?;
    civil.hour = digits(text, &mut at, 2, 2)?;
    expect(&mut at, b":")?;
    civil.minute = digits(text, &mut at, 2, 2)?;
    expect(&mut at, b":")?;
    civil.second = digits(text, &mut at, 2, 2)?;
    if text.get(at) == Some(&b'.') {
        at += 1;
        civil.millis = fraction(text, &mut at)?;
    }
    civil.offset = offset(text, &mut at)?;
    if at != text.len() {
        return None;
    }
    civil.millis()
}

/// A fixed offset: `UTC`, `Z`, `+08:00`, `+0800` or `+08`; seconds east of UTC.
pub fn zone(text: &str) -> Result<i32, String> {
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Ok(0);
    }
    if text.contains('/') {
        return Err(format!(
            "time zone names such as \"{text}\" are not supported (the plugin carries no time \
             zone database); give the fixed offset of the file's times, e.g. \"+08:00\""
        ));
    }
    let bytes = text.as_bytes();
    let mut at = 0;
    match offset(bytes, &mut at) {
        Some(seconds) if at == bytes.len() && matches!(bytes.first(), Some(b'+' | b'-')) => {
            Ok(seconds as i32)
        }
        _ => Err(format!(
            "\"{text}\" is not a fixed offset such as \"+08:00\", \"-05:00\" or \"UTC\""
        )),
    }
}

//! ISO 8601 / RFC 3339 timestamps, as Segment messages carry them.

use tessera_rules::calendar::{days_from_civil, days_in_month};

/// Milliseconds since the Unix epoch of `YYYY-MM-DD`, optionally followed by
/// `T` (or a space) and `hh:mm[:ss[.fraction]]` and an offset (`Z`, `±hh:mm`,
/// `±hhmm`, `±hh`); no offset means UTC. None if it is not such a time.
pub fn parse_ms(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits.iter().try_fold(0i64, |acc, d| {
            acc.checked_mul(10)?.checked_add(i64::from(d - b'0'))
        })
    };
    let year = num(0..4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (month, day) = (num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let mut i = 10;
    if i == b.len() {
        return Some(ms);
    }
    if !matches!(b[i], b'T' | b't' | b' ') {
        return None;
    }
    i += 1;
    let hour = num(i..i + 2)?;
    if b.get(i + 2) != Some(&b':') {
        return None;
    }
    let minute = num(i + 3..i + 5)?;
    i += 5;
    let mut second = 0;
    if b.get(i) == Some(&b':') {
        second = num(i + 1..i + 3)?;
        i += 3;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    ms += ((hour * 60 + minute) * 60 + second) * 1000;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let mut frac = 0;
        for (n, d) in b[start..i.min(start + 3)].iter().enumerate() {
            frac += i64::from(d - b'0') * [100, 10, 1][n];
        }
        ms += frac;
    }
    match b.get(i) {
        None => Some(ms),
        Some(b'Z' | b'z') if i + 1 == b.len() => Some(ms),
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &b[i + 1..];
            let (h, m) = match rest.len() {
                2 => (num(i + 1..i + 3)?, 0),
                4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                5 if rest[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let offset = (h * 60 + m) * 60_000;
            Some(if sign == b'+' {
                ms - offset
            } else {
                ms + offset
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ms;

    #[test]
    fn parses_the_forms_segment_clients_send() {
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_ms("1970-01-01"), Some(0));
        assert_eq!(
            parse_ms("2026-06-01T00:00:00.000Z"),
            Some(1_780_272_000_000)
        );
        assert_eq!(
            parse_ms("2026-06-01T00:00:00.1234Z"),
            Some(1_780_272_000_123)
        );
        assert_eq!(
            parse_ms("2026-06-01T08:00:00+08:00"),
            Some(1_780_272_000_000)
        );
        assert_eq!(
            parse_ms("2026-05-31T19:00:00-0500"),
            Some(1_780_272_000_000)
        );
        assert_eq!(parse_ms("2026-06-01 00:00"), Some(1_780_272_000_000));
        assert_eq!(parse_ms("2000-02-29T23:59:59Z"), Some(951_868_799_000));
        assert_eq!(parse_ms("1969-12-31T23:59:59Z"), Some(-1000));
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-06-01T25:00:00Z",
            "2026-06-01T00:00:00Q",
            "2026-06-01T00:00:00.Z",
            "2026-06-01T00:00:00+8",
            "2026-06-01Z",
            "2026-06-01T00:00:00Zjunk",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad}");
        }
    }
}

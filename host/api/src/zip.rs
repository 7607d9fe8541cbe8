//! A ZIP archive of stored (uncompressed) files: how a CSV export of
//! several tables travels as one download that every operating system
//! opens without extra software.

use std::fmt;

/// An archive too large for a ZIP without the ZIP64 extensions.
#[derive(Debug)]
pub struct TooLarge;

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the archive would exceed 4 GiB or 65,535 files")
    }
}

/// The archive of `files` (name, content), each dated `at_ms`.
pub(crate) fn stored<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    at_ms: i64,
) -> Result<Vec<u8>, TooLarge> {
    let (time, date) = dos_time(at_ms);
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut count: u16 = 0;
    for (name, data) in files {
        let offset = u32::try_from(out.len()).map_err(|_| TooLarge)?;
        let size = u32::try_from(data.len()).map_err(|_| TooLarge)?;
        let name_len = u16::try_from(name.len()).map_err(|_| TooLarge)?;
        let crc = crc32(data);
        // Version 2.0, no flags (names are ASCII), method 0 (stored).
        let common = |buf: &mut Vec<u8>| {
            for v in [20u16, 0, 0, time, date] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            for v in [crc, size, size] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            buf.extend_from_slice(&name_len.to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // extra field
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // made by: version 2.0
        common(&mut central);
        for v in [0u16, 0, 0] {
            // comment length, disk number, internal attributes
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        count = count.checked_add(1).ok_or(TooLarge)?;
    }
    let central_offset = u32::try_from(out.len()).map_err(|_| TooLarge)?;
    let central_size = u32::try_from(central.len()).map_err(|_| TooLarge)?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, count, count] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    u32::try_from(out.len()).map_err(|_| TooLarge)?;
    Ok(out)
}

/// CRC-32 (IEEE 802.3, reflected), as ZIP uses it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// MS-DOS (time, date) of a UTC instant; 1980-01-01 for anything earlier.
fn dos_time(at_ms: i64) -> (u16, u16) {
    let seconds = at_ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(1980..=2107).contains(&year) {
        return (0, (1 << 5) | 1);
    }
    let time = ((of_day / 3600) << 11) | ((of_day % 3600 / 60) << 5) | ((of_day % 60) / 2);
    let date = ((year - 1980) << 9) | (month << 5) | day;
    (time as u16, date as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_dates_are_the_ones_zip_tools_expect() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // 2026-06-01T12:34:56Z
        let (time, date) = dos_time(1_780_317_296_000);
        assert_eq!(date, (46 << 9) | (6 << 5) | 1);
        assert_eq!(time, (12 << 11) | (34 << 5) | 28);
        assert_eq!(dos_time(0), (0, (1 << 5) | 1));
    }

    #[test]
    fn an_archive_lists_its_files_in_the_central_directory() {
        let zip = stored([("a.csv", &b"x,y\r\n"[..]), ("b.csv", &b""[..])], 0).unwrap();
        assert!(zip.starts_with(b"PK\x03\x04"));
        let end = &zip[zip.len() - 22..];
        assert_eq!(&end[..4], b"PK\x05\x06");
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 2);
        let offset = u32::from_le_bytes(end[16..20].try_into().unwrap()) as usize;
        assert_eq!(&zip[offset..offset + 4], b"PK\x01\x02");
    }
}

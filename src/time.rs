//! Time: UTC milliseconds inside, Asia/Shanghai for calendar days and display.

use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;

/// UTC milliseconds since the Unix epoch.
pub type Millis = i64;

/// Parses RFC 3339 with an offset (`2026-11-11T10:00:00.250+08:00`, `…Z`) to UTC milliseconds.
///
/// Hand-written because replay parses a million timestamps a second; digits past the
/// millisecond are truncated. Returns `None` for anything else.
pub fn parse_rfc3339_ms(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            ms *= 10;
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60;
    Some(secs * 1000 + ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const SHANGHAI_OFFSET_MS: i64 = 8 * 3600 * 1000;

/// The Asia/Shanghai calendar day of an instant.
///
/// China has kept UTC+8 without daylight saving since 1991, so a fixed offset is exact
/// for every time kefu sees and avoids a tz lookup per event.
pub fn shanghai_day(ms: Millis) -> NaiveDate {
    let days = (ms + SHANGHAI_OFFSET_MS).div_euclid(86_400_000);
    NaiveDate::from_num_days_from_ce_opt((days + 719_163) as i32).unwrap_or(NaiveDate::MIN)
}

/// Milliseconds since Shanghai midnight of the instant's day.
pub fn shanghai_ms_of_day(ms: Millis) -> i64 {
    (ms + SHANGHAI_OFFSET_MS).rem_euclid(86_400_000)
}

/// UTC milliseconds of Shanghai midnight starting `day`.
pub fn shanghai_midnight(day: NaiveDate) -> Millis {
    let days = i64::from(chrono::Datelike::num_days_from_ce(&day)) - 719_163;
    days * 86_400_000 - SHANGHAI_OFFSET_MS
}

/// `2026-11-11T10:00:00.250+08:00`: the wire form kefu writes.
pub fn format_rfc3339_shanghai(ms: Millis) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.with_timezone(&Shanghai).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        None => ms.to_string(),
    }
}

/// `11-11 10:00:05`: short Shanghai time for alerts and tables.
pub fn display_shanghai(ms: Millis) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.with_timezone(&Shanghai).format("%m-%d %H:%M:%S").to_string(),
        None => ms.to_string(),
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// The current wall-clock time. Only effects at the edges call this; the engine never does.
pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

/// Converts milliseconds to seconds with millisecond precision, for reports.
pub fn ms_to_s(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Chrono's parser, kept as the reference the hand-written one is tested against.
#[cfg(test)]
fn reference(s: &str) -> Option<Millis> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_agrees_with_chrono() {
        let cases = [
            "2026-11-11T10:00:00.250+08:00",
            "2026-11-11T02:00:00.250Z",
            "2026-11-11T02:00:00Z",
            "2026-11-10T23:59:59.999-05:30",
            "2024-02-29T12:00:00.1+00:00",
            "1999-12-31T23:59:59.123456+08:00",
            "2026-01-01T00:00:00.000+14:00",
        ];
        for c in cases {
            assert_eq!(parse_rfc3339_ms(c), reference(c).map(|v| v - v.rem_euclid(1)), "{c}");
        }
        assert_eq!(parse_rfc3339_ms("1999-12-31T23:59:59.123456+08:00"), Some(946_655_999_123));
    }

    #[test]
    fn parser_rejects_malformed() {
        for c in [
            "",
            "2026-11-11",
            "2026-11-11T10:00:00",
            "2026-13-11T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-11-11T25:00:00Z",
            "2026-11-11T10:00:00.Z",
            "2026-11-11T10:00:00+0800",
            "2026-11-11T10:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339_ms(c), None, "{c}");
        }
    }

    #[test]
    fn shanghai_day_turns_at_16_utc() {
        let before = parse_rfc3339_ms("2026-11-11T15:59:59.999Z").unwrap();
        let after = parse_rfc3339_ms("2026-11-11T16:00:00.000Z").unwrap();
        assert_eq!(shanghai_day(before).to_string(), "2026-11-11");
        assert_eq!(shanghai_day(after).to_string(), "2026-11-12");
        assert_eq!(shanghai_midnight(shanghai_day(after)), after);
        assert_eq!(shanghai_ms_of_day(after), 0);
        assert_eq!(format_rfc3339_shanghai(after), "2026-11-12T00:00:00.000+08:00");
    }
}

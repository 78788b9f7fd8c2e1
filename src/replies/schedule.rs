//! Time windows for rules and shifts: optional start and end (a date, or a date and a
//! time), weekdays and daily hours, all in Asia/Shanghai. A 聚划算 answer dated
//! 11-01..11-03 stops on 11-04 by itself; a weekend-only shift is off on Monday.

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use toml::Spanned;

use crate::rules::{DataError, line_of};
use crate::time::{Millis, shanghai_day, shanghai_midnight, shanghai_ms_of_day};

const DAY_MS: i64 = 86_400_000;

/// A window as written, flattened into a rule or a shift; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// `YYYY-MM-DD` (from that day's 00:00) or `YYYY-MM-DD HH:MM`, inclusive.
    pub start: Option<Spanned<String>>,
    /// `YYYY-MM-DD` (through the end of that day) or `YYYY-MM-DD HH:MM`, exclusive.
    pub end: Option<Spanned<String>>,
    /// Days of the week it applies on, 1 = Monday … 7 = Sunday; absent = every day.
    pub weekdays: Option<Spanned<Vec<u8>>>,
    /// Daily hours `HH:MM-HH:MM` (an end before the start runs past midnight).
    pub hours: Option<Spanned<String>>,
}

/// A compiled window. The default is always open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    start: Option<Millis>,
    end: Option<Millis>,
    /// Bit `d` set: open on weekday `d` (1 = Monday); 0 = every day.
    weekdays: u8,
    hours: Option<Span>,
}

/// A daily span in ms since Shanghai midnight; `end < start` runs past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start, inclusive.
    pub start_ms: i64,
    /// End, exclusive.
    pub end_ms: i64,
}

impl Span {
    /// Whether the time of day `ms` (since Shanghai midnight) falls in the span.
    pub fn covers(&self, ms: i64) -> bool {
        if self.start_ms <= self.end_ms {
            (self.start_ms..self.end_ms).contains(&ms)
        } else {
            ms >= self.start_ms || ms < self.end_ms
        }
    }

    /// Whether `ts` falls in the span on its Shanghai day.
    pub fn covers_at(&self, ts: Millis) -> bool {
        self.covers(shanghai_ms_of_day(ts))
    }
}

impl Window {
    /// Whether the window is open at `ts`.
    pub fn contains(&self, ts: Millis) -> bool {
        self.start.is_none_or(|s| ts >= s)
            && self.end.is_none_or(|e| ts < e)
            && (self.weekdays == 0 || self.weekdays & (1 << weekday(ts)) != 0)
            && self.hours.is_none_or(|h| h.covers_at(ts))
    }

    /// Whether the window is always open.
    pub fn is_always(&self) -> bool {
        *self == Self::default()
    }

    /// Compiles a written window; errors name the file and line of the bad field.
    pub fn build(file: &std::path::Path, text: &str, raw: RawWindow) -> Result<Self, DataError> {
        let at = |s: &Spanned<String>, what: &str| {
            DataError::at(
                file,
                Some(line_of(text, s.span().start)),
                format!("`{}` is not {what}", s.get_ref()),
            )
        };
        let moment = |s: &Spanned<String>, end: bool| -> Result<Millis, DataError> {
            let v = s.get_ref().trim();
            let (date, time) = match v.split_once(' ') {
                Some((d, t)) => (d, Some(t.trim())),
                None => (v, None),
            };
            let day = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| at(s, "a date: expected YYYY-MM-DD or YYYY-MM-DD HH:MM"))?;
            let base = shanghai_midnight(day);
            match time {
                None => Ok(if end { base + DAY_MS } else { base }),
                Some(t) => clock(t)
                    .map(|ms| base + ms)
                    .ok_or_else(|| at(s, "a date and time: expected YYYY-MM-DD HH:MM")),
            }
        };
        let start = raw.start.as_ref().map(|s| moment(s, false)).transpose()?;
        let end = raw.end.as_ref().map(|s| moment(s, true)).transpose()?;
        if let (Some(s), Some(e), Some(raw_end)) = (start, end, &raw.end)
            && e <= s
        {
            return Err(at(raw_end, "after `start`"));
        }
        let weekdays = weekday_mask(raw.weekdays.as_ref(), file, text)?;
        let hours = raw
            .hours
            .as_ref()
            .map(|h| span(h.get_ref()).ok_or_else(|| at(h, "hours: expected HH:MM-HH:MM")))
            .transpose()?;
        Ok(Self { start, end, weekdays, hours })
    }
}

/// A rule file's `weekdays = [1, …, 7]` as a bit set (bit d for weekday d), each day
/// checked; shared by rule windows and shifts so both read and report it alike.
pub fn weekday_mask(
    weekdays: Option<&Spanned<Vec<u8>>>,
    file: &std::path::Path,
    text: &str,
) -> Result<u8, DataError> {
    let mut mask = 0u8;
    let Some(w) = weekdays else { return Ok(mask) };
    for &d in w.get_ref() {
        if !(1..=7).contains(&d) {
            return Err(DataError::at(
                file,
                Some(line_of(text, w.span().start)),
                format!("weekday {d}: expected 1 (Monday) to 7 (Sunday)"),
            ));
        }
        mask |= 1 << d;
    }
    Ok(mask)
}

/// The Shanghai weekday of `ts`, 1 = Monday … 7 = Sunday.
pub fn weekday(ts: Millis) -> u32 {
    shanghai_day(ts).weekday().number_from_monday()
}

/// Parses `HH:MM` (00:00–24:00) to milliseconds since midnight.
pub fn clock(s: &str) -> Option<i64> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    let ok = (h < 24 && m < 60) || (h == 24 && m == 0);
    ok.then_some((h * 60 + m) * 60_000)
}

/// Parses `HH:MM-HH:MM`; equal ends are refused (an empty or a whole day is ambiguous).
pub fn span(s: &str) -> Option<Span> {
    let (a, b) = s.split_once('-')?;
    let (start_ms, end_ms) = (clock(a)?, clock(b)?);
    (start_ms != end_ms).then_some(Span { start_ms, end_ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339_ms;
    use std::path::Path;

    fn window(toml_text: &str) -> Result<Window, DataError> {
        let raw: RawWindow = toml::from_str(toml_text).unwrap();
        Window::build(Path::new("auto.toml"), toml_text, raw)
    }

    fn at(s: &str) -> Millis {
        parse_rfc3339_ms(s).unwrap()
    }

    #[test]
    fn dates_weekdays_and_hours() {
        let w = window("start = \"2026-11-01\"\nend = \"2026-11-03\"\n").unwrap();
        let cases = [
            ("2026-10-31T23:59:59+08:00", false),
            ("2026-11-01T00:00:00+08:00", true),
            ("2026-11-02T12:00:00+08:00", true),
            ("2026-11-03T23:59:59+08:00", true),
            ("2026-11-04T00:00:00+08:00", false),
        ];
        for (t, want) in cases {
            assert_eq!(w.contains(at(t)), want, "{t}");
        }
        // 2026-11-07 is a Saturday.
        let w = window("weekdays = [6, 7]\nhours = \"22:00-02:00\"\n").unwrap();
        let cases = [
            ("2026-11-07T23:00:00+08:00", true),
            ("2026-11-07T01:00:00+08:00", true),
            ("2026-11-07T12:00:00+08:00", false),
            ("2026-11-09T23:00:00+08:00", false),
        ];
        for (t, want) in cases {
            assert_eq!(w.contains(at(t)), want, "{t}");
        }
        let w = window("start = \"2026-11-11 20:00\"\nend = \"2026-11-12 01:30\"\n").unwrap();
        assert!(w.contains(at("2026-11-12T01:29:00+08:00")) && !w.contains(at("2026-11-11T19:59:00+08:00")));
    }

    #[test]
    fn bad_windows_name_the_line() {
        let cases = [
            ("start = \"2026-11-01\"\nend = \"2026-13-03\"\n", 2, "not a date"),
            ("start = \"2026-11-03\"\nend = \"2026-11-01\"\n", 2, "after `start`"),
            ("weekdays = [0]\n", 1, "weekday 0"),
            ("hours = \"9-18\"\n", 1, "hours"),
        ];
        for (text, line, want) in cases {
            let e = window(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.message.contains(want), "{e}");
        }
    }
}

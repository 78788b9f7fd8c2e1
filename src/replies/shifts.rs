//! `rules/shifts.toml`: who works when (排班), in Asia/Shanghai wall-clock time.
//!
//! The robot's away mode answers for an agent outside their shifts. An agent the file
//! does not list is treated as always on shift, so a shop without a schedule loses nothing.
//! A shift may hold only on some weekdays; a dated roster (`[roster."2026-11-11"]`, a 双11
//! roster) replaces the weekly shifts of the agents it lists on that Shanghai date.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use chrono::NaiveDate;

use super::schedule::{clock, weekday, weekday_mask};
use crate::rules::{DataError, line_of, parse_toml, read_or_default};
use crate::time::{Millis, shanghai_day, shanghai_ms_of_day};

/// File name inside the rules folder.
pub const FILE: &str = "shifts.toml";
const DEFAULT: &str = include_str!("../../rules/shifts.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    shift: Vec<RawShift>,
    #[serde(default)]
    agents: HashMap<String, Spanned<Vec<String>>>,
    /// Dated rosters: date → agent → shifts that day (an empty list: off that day).
    #[serde(default)]
    roster: HashMap<Spanned<String>, HashMap<String, Spanned<Vec<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShift {
    name: Spanned<String>,
    /// `HH:MM`, Asia/Shanghai.
    start: Spanned<String>,
    /// `HH:MM`; `24:00` is midnight at the end of the day; before `start` means overnight.
    end: Spanned<String>,
    /// Weekdays the shift holds on (1 = Monday … 7 = Sunday); absent = every day.
    weekdays: Option<Spanned<Vec<u8>>>,
}

/// A named daily time span, in milliseconds since Shanghai midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    /// Name, e.g. 白班.
    pub name: String,
    /// Start, inclusive.
    pub start_ms: i64,
    /// End, exclusive; below `start_ms` for an overnight shift.
    pub end_ms: i64,
    /// Bit `d` set: holds on weekday `d` (1 = Monday); 0 = every day. Rosters ignore it.
    pub weekdays: u8,
}

impl Shift {
    fn covers(&self, ms_of_day: i64) -> bool {
        if self.start_ms <= self.end_ms {
            (self.start_ms..self.end_ms).contains(&ms_of_day)
        } else {
            ms_of_day >= self.start_ms || ms_of_day < self.end_ms
        }
    }
}

/// The schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shifts {
    /// Every shift defined.
    pub shifts: Vec<Shift>,
    /// Each listed agent's shifts, as indexes into `shifts`.
    agents: HashMap<String, Vec<usize>>,
    /// Dated rosters: on that Shanghai date, the agents listed work these shifts instead.
    roster: HashMap<NaiveDate, HashMap<String, Vec<usize>>>,
}

impl Shifts {
    /// Whether `agent` is on shift at `now` (by the Shanghai date and time of `now`): the
    /// date's roster if it lists the agent, else their weekly shifts held that weekday;
    /// agents listed nowhere always are.
    pub fn on_shift(&self, agent: &str, now: Millis) -> bool {
        let t = shanghai_ms_of_day(now);
        if let Some(list) = self.roster.get(&shanghai_day(now)).and_then(|r| r.get(agent)) {
            return list.iter().any(|&i| self.shifts[i].covers(t));
        }
        let Some(list) = self.agents.get(agent) else { return true };
        let day = weekday(now);
        list.iter().any(|&i| {
            let s = &self.shifts[i];
            (s.weekdays == 0 || s.weekdays & (1 << day) != 0) && s.covers(t)
        })
    }
}

/// Reads `shifts.toml` from the rules folder, or the embedded default.
pub fn load(dir: Option<&Path>) -> Result<Shifts, DataError> {
    let (path, text) = read_or_default(dir, FILE, DEFAULT)?;
    parse(&path, &text)
}

/// Parses and validates the schedule; `file` is used in error messages.
pub fn parse(file: &Path, text: &str) -> Result<Shifts, DataError> {
    let raw: Raw = parse_toml(file, text)?;
    let mut shifts: Vec<Shift> = Vec::new();
    for s in &raw.shift {
        let line = line_of(text, s.name.span().start);
        if shifts.iter().any(|x| x.name == *s.name.get_ref()) {
            return Err(DataError::at(file, Some(line), format!("duplicate shift `{}`", s.name.get_ref())));
        }
        let time = |v: &Spanned<String>| {
            clock(v.get_ref()).ok_or_else(|| {
                DataError::at(
                    file,
                    Some(line_of(text, v.span().start)),
                    format!("`{}` is not a time: expected HH:MM from 00:00 to 24:00", v.get_ref()),
                )
            })
        };
        let (start_ms, end_ms) = (time(&s.start)?, time(&s.end)?);
        if start_ms == end_ms {
            return Err(DataError::at(file, Some(line), "shift starts and ends at the same time"));
        }
        let weekdays = weekday_mask(s.weekdays.as_ref(), file, text)?;
        shifts.push(Shift { name: s.name.get_ref().clone(), start_ms, end_ms, weekdays });
    }
    let lookup = |agent: &str, names: &Spanned<Vec<String>>| -> Result<Vec<usize>, DataError> {
        names
            .get_ref()
            .iter()
            .map(|n| {
                shifts.iter().position(|s| s.name == *n).ok_or_else(|| {
                    DataError::at(
                        file,
                        Some(line_of(text, names.span().start)),
                        format!("agent `{agent}`: no shift named `{n}`"),
                    )
                })
            })
            .collect()
    };
    let mut agents = HashMap::new();
    for (agent, names) in &raw.agents {
        agents.insert(agent.clone(), lookup(agent, names)?);
    }
    let mut roster = HashMap::new();
    for (date, list) in &raw.roster {
        let day = NaiveDate::parse_from_str(date.get_ref(), "%Y-%m-%d").map_err(|_| {
            DataError::at(
                file,
                Some(line_of(text, date.span().start)),
                format!("roster `{}`: expected a date YYYY-MM-DD", date.get_ref()),
            )
        })?;
        let mut day_list = HashMap::new();
        for (agent, names) in list {
            day_list.insert(agent.clone(), lookup(agent, names)?);
        }
        roster.insert(day, day_list);
    }
    Ok(Shifts { shifts, agents, roster })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339_ms;

    #[test]
    fn seed_003_shifts_by_shanghai_clock() {
        let s = load(None).unwrap();
        let at = |t: &str| parse_rfc3339_ms(&format!("2026-11-11T{t}+08:00")).unwrap();
        let cases = [
            ("小美", "08:29:59", false),
            ("小美", "08:30:00", true),
            ("小美", "16:29:59", true),
            ("小美", "16:30:00", false),
            ("阿强", "15:59:59", false),
            ("阿强", "16:00:00", true),
            ("阿强", "23:59:59", true),
            ("阿强", "00:00:00", false),
            ("没排班的人", "03:00:00", true),
        ];
        for (agent, t, want) in cases {
            assert_eq!(s.on_shift(agent, at(t)), want, "{agent} {t}");
        }
    }

    /// Issue 15: the 双11 roster overrides the weekly shift for that date only; a weekday
    /// shift is off at the weekend.
    #[test]
    fn a_dated_roster_overrides_the_weekly_shift() {
        let text = r#"
[[shift]]
name = "白班"
start = "08:30"
end = "16:30"

[[shift]]
name = "双11通宵"
start = "00:00"
end = "24:00"

[[shift]]
name = "工作日晚班"
start = "16:00"
end = "24:00"
weekdays = [1, 2, 3, 4, 5]

[agents]
"小美" = ["白班"]
"阿强" = ["工作日晚班"]

[roster."2026-11-11"]
"小美" = ["双11通宵"]
"阿强" = []
"#;
        let s = parse(Path::new("rules/shifts.toml"), text).unwrap();
        let at = |t: &str| parse_rfc3339_ms(t).unwrap();
        let cases = [
            ("小美", "2026-11-10T22:00:00+08:00", false),
            ("小美", "2026-11-11T22:00:00+08:00", true),
            ("小美", "2026-11-12T22:00:00+08:00", false),
            ("小美", "2026-11-12T09:00:00+08:00", true),
            ("阿强", "2026-11-10T20:00:00+08:00", true),
            ("阿强", "2026-11-11T20:00:00+08:00", false),
            // 2026-11-14 is a Saturday.
            ("阿强", "2026-11-14T20:00:00+08:00", false),
        ];
        for (agent, t, want) in cases {
            assert_eq!(s.on_shift(agent, at(t)), want, "{agent} {t}");
        }
        let e = parse(Path::new("rules/shifts.toml"), "[roster.\"11-11\"]\n\"小美\" = []\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn overnight_and_errors() {
        let p = Path::new("rules/shifts.toml");
        let s = parse(p, "[[shift]]\nname=\"夜\"\nstart=\"22:00\"\nend=\"06:00\"\n[agents]\na=[\"夜\"]\n")
            .unwrap();
        let at = |t: &str| parse_rfc3339_ms(&format!("2026-11-11T{t}+08:00")).unwrap();
        assert!(s.on_shift("a", at("23:00:00")) && s.on_shift("a", at("05:59:00")));
        assert!(!s.on_shift("a", at("12:00:00")));
        let e = parse(p, "[[shift]]\nname=\"夜\"\nstart=\"22:00\"\nend=\"25:00\"\n").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        let e = parse(p, "[[shift]]\nname=\"夜\"\nstart=\"22:00\"\nend=\"06:00\"\n[agents]\na=[\"白\"]\n")
            .unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (Some(6), "agent `a`: no shift named `白`"));
    }
}

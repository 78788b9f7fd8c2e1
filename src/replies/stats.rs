//! Hit counts and unanswered buyer questions in the store (`migrations/003_replies.sql`).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rusqlite::params;

use crate::store::{Store, StoreError};
use crate::time::{Millis, shanghai_day};

use super::robot::RobotAction;

/// One unanswered question, as `kefu replies misses` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissRow {
    /// When the buyer asked, UTC ms.
    pub ts: Millis,
    /// Shop.
    pub shop: String,
    /// Conversation.
    pub conversation: String,
    /// The question as the buyer wrote it.
    pub text: String,
}

/// Records the bookkeeping actions (hits, misses) of a batch in one transaction; other
/// actions are ignored. Each is dated by its own event time (Asia/Shanghai day), never by
/// the wall clock, so the counts are a function of the events.
pub fn record(store: &mut Store, actions: &[RobotAction]) -> Result<(), StoreError> {
    let tx = store.conn_mut().transaction()?;
    record_on(&tx, actions)?;
    tx.commit()?;
    Ok(())
}

/// [`record`] on `conn`, inside the caller's transaction (the live runtime records a
/// batch's hits in the transaction that stores its events).
pub fn record_on(tx: &rusqlite::Connection, actions: &[RobotAction]) -> Result<(), StoreError> {
    // Counts summed per key first: a batch of robot answers bumps a few rules many times,
    // one upsert each is enough. The statements are looked up once and the day named once
    // per day, not per row: the live runtime stores tens of thousands of these a second.
    let mut counts: BTreeMap<(String, &str, &str, String), i64> = BTreeMap::new();
    let mut days = DayNames::default();
    let (mut misses, mut figures) = (None, None);
    for a in actions {
        match a {
            RobotAction::Hit { shop, rule, ts } => {
                *counts.entry((days.of(*ts).to_string(), "rule", shop, rule.clone())).or_default() += 1
            }
            RobotAction::PhraseUsed { shop, owner, code, ts } => {
                let key = format!("{}/{code}", owner.as_deref().unwrap_or(""));
                *counts.entry((days.of(*ts).to_string(), "phrase", shop, key)).or_default() += 1;
            }
            RobotAction::Miss { shop, conversation, ts, text } => {
                let stmt = match &mut misses {
                    Some(s) => s,
                    None => misses.insert(tx.prepare_cached(
                        "INSERT INTO reply_misses (ts, day, shop, conversation, text) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?),
                };
                stmt.execute(params![ts, days.of(*ts), shop, conversation, text])?;
            }
            RobotAction::Figure { shop, conversation, ts, kind } => {
                let stmt = match &mut figures {
                    Some(s) => s,
                    None => figures.insert(tx.prepare_cached(
                        "INSERT INTO robot_figures (ts, day, shop, conversation, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?),
                };
                stmt.execute(params![ts, days.of(*ts), shop, conversation, kind.name()])?;
            }
            _ => {}
        }
    }
    for ((day, kind, shop, key), n) in counts {
        bump(tx, &day, shop, kind, &key, n)?;
    }
    Ok(())
}

/// The Asia/Shanghai day of a time, as stored (`YYYY-MM-DD`), kept for the day last asked
/// about: the actions of a batch are nearly all of one day.
#[derive(Default)]
struct DayNames {
    /// The day's first and next day's first millisecond, and its name.
    last: Option<(Millis, Millis, String)>,
}

impl DayNames {
    fn of(&mut self, ts: Millis) -> &str {
        if !self.last.as_ref().is_some_and(|(from, to, _)| (*from..*to).contains(&ts)) {
            let day = shanghai_day(ts);
            let to = day.succ_opt().map_or(Millis::MAX, crate::time::shanghai_midnight);
            self.last = Some((crate::time::shanghai_midnight(day), to, day.to_string()));
        }
        self.last.as_ref().map_or("", |(_, _, name)| name.as_str())
    }
}

fn bump(
    conn: &rusqlite::Connection,
    day: &str,
    shop: &str,
    kind: &str,
    key: &str,
    n: i64,
) -> Result<(), StoreError> {
    // Cached: the live runtime records counts with every batch it stores.
    conn.prepare_cached(
        "INSERT INTO reply_hits (day, shop, kind, key, hits) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (day, shop, kind, key) DO UPDATE SET hits = hits + excluded.hits",
    )?
    .execute(params![day, shop, kind, key, n])?;
    Ok(())
}

/// Hit counts of `kind` (`rule` or `phrase`) on `day`, most used first.
pub fn hits(store: &Store, day: NaiveDate, kind: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
    let mut stmt = store.conn().prepare(
        "SELECT shop, key, hits FROM reply_hits WHERE day = ?1 AND kind = ?2 ORDER BY hits DESC, shop, key",
    )?;
    let rows = stmt.query_map(params![day.to_string(), kind], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The unanswered questions of a Shanghai day, in time order.
pub fn misses(store: &Store, day: NaiveDate) -> Result<Vec<MissRow>, StoreError> {
    misses_on(store.conn(), day)
}

/// [`misses`] on a connection (the console has its own).
pub fn misses_on(conn: &rusqlite::Connection, day: NaiveDate) -> Result<Vec<MissRow>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT ts, shop, conversation, text FROM reply_misses WHERE day = ?1 ORDER BY ts, rowid")?;
    let rows = stmt.query_map([day.to_string()], |r| {
        Ok(MissRow { ts: r.get(0)?, shop: r.get(1)?, conversation: r.get(2)?, text: r.get(3)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The day's unanswered questions grouped as `kefu replies misses --grouped` and the
/// console show them: same or similar questions together (the rules' similarity index,
/// [`super::similar::MISS_GROUP_THRESHOLD`]), most frequent first.
pub fn grouped_misses(
    conn: &rusqlite::Connection,
    rules: &super::auto::AutoRules,
    day: NaiveDate,
) -> Result<Vec<super::similar::MissGroup>, StoreError> {
    let rows = misses_on(conn, day)?;
    Ok(super::similar::group_misses(
        rules.similar(),
        rows.iter().map(|r| r.text.as_str()),
        super::similar::MISS_GROUP_THRESHOLD,
    ))
}

/// A shop's robot figures for one Shanghai day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    /// Shop.
    pub shop: String,
    /// Questions the robot answered with a rule.
    pub answered: i64,
    /// Requests for a human (转人工).
    pub handoffs: i64,
    /// Answers not followed by a request for a human in the same conversation within
    /// `resolved_after_ms` (解决率 = resolved / answered).
    pub resolved: i64,
    /// 催付 reminders.
    pub reminders: i64,
}

/// The robot figures of `day`, per shop. An answer late on the day looks for handoffs past
/// midnight too: the window follows the answer, not the calendar.
pub fn figures(store: &Store, day: NaiveDate, resolved_after_ms: i64) -> Result<Vec<Figures>, StoreError> {
    let mut stmt = store.conn().prepare(
        "SELECT f.shop,
                SUM(f.kind = 'answered'),
                SUM(f.kind = 'handoff'),
                SUM(f.kind = 'answered' AND NOT EXISTS (
                    SELECT 1 FROM robot_figures h WHERE h.conversation = f.conversation AND h.shop = f.shop
                      AND h.kind = 'handoff' AND h.ts > f.ts AND h.ts <= f.ts + ?2)),
                SUM(f.kind = 'reminder')
         FROM robot_figures f WHERE f.day = ?1 GROUP BY f.shop ORDER BY f.shop",
    )?;
    let rows = stmt.query_map(params![day.to_string(), resolved_after_ms], |r| {
        Ok(Figures {
            shop: r.get(0)?,
            answered: r.get(1)?,
            handoffs: r.get(2)?,
            resolved: r.get(3)?,
            reminders: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Masks mainland mobile numbers inside free text (buyers type them into questions), so
/// the misses list can be read by anyone; the raw text stays in the database.
pub fn mask_phones_in_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if run == 0 {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let digits: String = chars[i..i + run].iter().collect();
        if run == 11 && digits.starts_with('1') {
            out.push_str(&crate::privacy::mask_phone(&digits));
        } else {
            out.push_str(&digits);
        }
        i += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_named_by_its_shanghai_midnights_in_any_order() {
        let at = |s: &str| crate::time::parse_rfc3339_ms(s).unwrap();
        let mut days = DayNames::default();
        let table = [
            ("2026-11-11T23:59:59.999+08:00", "2026-11-11"),
            ("2026-11-12T00:00:00+08:00", "2026-11-12"),
            ("2026-11-11T00:00:00+08:00", "2026-11-11"),
            ("2026-11-10T23:59:59.999+08:00", "2026-11-10"),
            ("2026-11-12T23:59:59.999+08:00", "2026-11-12"),
            ("2026-11-13T00:00:00.001+08:00", "2026-11-13"),
        ];
        for (ts, day) in table {
            assert_eq!(days.of(at(ts)), day, "{ts}");
        }
    }

    #[test]
    fn records_hits_and_misses_by_shanghai_day() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("k.db")).unwrap();
        // 2026-11-11 23:30 Shanghai is 15:30 UTC; 00:30 the next day is 16:30 UTC.
        let late = crate::time::parse_rfc3339_ms("2026-11-11T23:30:00+08:00").unwrap();
        let next = late + 3_600_000;
        let hit = RobotAction::Hit { shop: "s".into(), rule: "express".into(), ts: late };
        let miss = |ts, t: &str| RobotAction::Miss {
            shop: "s".into(),
            conversation: "c".into(),
            ts,
            text: t.into(),
        };
        record(&mut store, &[hit.clone(), hit, miss(late, "能开发票吗")]).unwrap();
        let used = RobotAction::PhraseUsed {
            shop: "s".into(),
            owner: Some("小美".into()),
            code: "mfh".into(),
            ts: late,
        };
        record(&mut store, &[miss(next, "电话13812345678")]).unwrap();
        record(&mut store, &[used]).unwrap();
        let day = crate::time::parse_day("2026-11-11").unwrap();
        assert_eq!(hits(&store, day, "rule").unwrap(), vec![("s".into(), "express".into(), 2)]);
        assert_eq!(hits(&store, day, "phrase").unwrap(), vec![("s".into(), "小美/mfh".into(), 1)]);
        let m = misses(&store, day).unwrap();
        assert_eq!(m.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["能开发票吗"]);
        let m = misses(&store, day.succ_opt().unwrap()).unwrap();
        assert_eq!(mask_phones_in_text(&m[0].text), "电话138****5678");
    }
}

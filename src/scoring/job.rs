//! The nightly job: compute days, store them (a rerun replaces), score the months they
//! touch, record the run; plus the schedule and catch-up after downtime.
//!
//! Which days are due is pure ([`due_days`]: last scored day, now, cron); `kefu run`
//! calls [`run_due`] on each tick, `kefu score` calls [`score_range`] by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{Datelike, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use rusqlite::{Connection, Transaction, params};
use rust_decimal::Decimal;
use thiserror::Error;

use super::ledger;
use super::metrics::{self, Day};
use super::score::{self, AgentMonth, AgentScore, MonthFigures};
use super::sheet::Sheet;
use crate::rules::DataError;
use crate::store::{Store, StoreError};
use crate::time::Millis;

/// Job failures.
#[derive(Debug, Error)]
pub enum JobError {
    /// SQLite failed.
    #[error("database")]
    Sql(#[from] rusqlite::Error),
    /// Opening the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sheet is invalid.
    #[error(transparent)]
    Sheet(#[from] DataError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    /// Writing a report failed.
    #[error("writing report {path}")]
    Report {
        /// File.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A bad day range.
    #[error("--from {from} is after --to {to}")]
    Range {
        /// Start.
        from: NaiveDate,
        /// End.
        to: NaiveDate,
    },
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Days computed.
    pub days: Vec<NaiveDate>,
    /// Months scored (`YYYY-MM`).
    pub months: Vec<String>,
    /// Events streamed.
    pub events: i64,
    /// Files written under the reports folder.
    pub reports: Vec<PathBuf>,
    /// Short text for the supervisors' alert sink (empty when nothing ran).
    pub summary: String,
    /// Days due by the schedule but left for later: event time has not yet passed their
    /// end by the session idle time, so sessions of theirs may still close ([`settled_days`]).
    pub deferred: Vec<NaiveDate>,
}

/// `YYYY-MM` of a day.
pub fn month_of(day: NaiveDate) -> String {
    day.format("%Y-%m").to_string()
}

/// First and last day of a `YYYY-MM` month.
pub fn month_bounds(month: &str) -> Option<(NaiveDate, NaiveDate)> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    Some((first, next.pred_opt()?))
}

/// Computes and stores days `[from, to]`, then rescored every month they touch.
/// Idempotent: a day's rows are replaced in one transaction, and months are recomputed
/// from the stored days, so reruns and restarts give the same rows.
pub fn score_range(
    store: &mut Store,
    sheet: &Sheet,
    from: NaiveDate,
    to: NaiveDate,
    now: Millis,
) -> Result<Outcome, JobError> {
    if from > to {
        return Err(JobError::Range { from, to });
    }
    // The phrase guard's findings become 日常考核 entries before the days are computed.
    ledger::import_flags(
        store.conn(),
        crate::time::shanghai_midnight(from),
        crate::time::shanghai_midnight(to + Days::new(1)),
    )?;
    let (days, events) =
        metrics::compute(store.conn(), from, to, sheet.attribution_window_ms, sheet.follow_window_ms)?;
    let tx = store.conn_mut().transaction()?;
    for (day, d) in &days {
        store_day(&tx, *day, d)?;
        tx.execute(
            "INSERT INTO job_runs (day, ran_at, events) VALUES (?1, ?2, ?3)
             ON CONFLICT(day) DO UPDATE SET ran_at = excluded.ran_at, events = excluded.events",
            params![day.to_string(), now, events],
        )?;
    }
    tx.commit()?;
    let mut months: BTreeSet<String> = days.keys().map(|d| month_of(*d)).collect();
    // A later month's "below the line" streak builds on this one: rescore those too, in order.
    if let Some(first) = months.first().cloned() {
        let mut stmt = store.conn().prepare("SELECT DISTINCT month FROM scores WHERE month > ?1")?;
        let later =
            stmt.query_map([&first], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        months.extend(later);
    }
    for m in &months {
        score_month(store.conn_mut(), sheet, m)?;
    }
    Ok(Outcome {
        days: days.keys().copied().collect(),
        months: months.into_iter().collect(),
        events,
        ..Default::default()
    })
}

fn store_day(tx: &Transaction<'_>, day: NaiveDate, d: &Day) -> rusqlite::Result<()> {
    let ds = day.to_string();
    for table in ["daily_metrics", "daily_breaches", "daily_response_hist", "daily_shop"] {
        tx.execute(&format!("DELETE FROM {table} WHERE day = ?1"), [&ds])?;
    }
    let mut ins = tx.prepare_cached(
        "INSERT INTO daily_metrics (day, agent, received, consulted, replied, unreplied, ordered, paid, sales,
             assist_orders, assist_follow, assist_follow_amount, agent_msgs, buyer_msgs, waits, answered,
             unanswered, transferred, response_ms, breaches, robot_answered, platform_waits, platform_ms,
             platform_within_3min, findings, assisted, ratings, satisfied)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28)",
    )?;
    for (agent, m) in &d.agents {
        let findings = serde_json::to_string(&m.findings).unwrap_or_else(|_| "{}".into());
        ins.execute(params![
            ds,
            agent,
            m.received,
            m.consulted,
            m.replied,
            m.unreplied,
            m.ordered,
            m.paid,
            m.sales.to_string(),
            m.assist_orders,
            m.assist_follow,
            m.assist_follow_amount.to_string(),
            m.agent_msgs,
            m.buyer_msgs,
            m.waits,
            m.answered,
            m.unanswered,
            m.transferred,
            m.response_ms,
            m.breaches,
            m.robot_answered,
            m.platform_waits,
            m.platform_ms,
            m.platform_within_3min,
            findings,
            m.assisted,
            m.ratings,
            m.satisfied
        ])?;
    }
    let mut ins = tx.prepare_cached("INSERT INTO daily_breaches VALUES (?1, ?2, ?3, ?4)")?;
    for ((agent, hour), n) in &d.breaches_by_hour {
        ins.execute(params![ds, agent, hour, n])?;
    }
    let mut ins = tx.prepare_cached("INSERT INTO daily_response_hist VALUES (?1, ?2, ?3, ?4)")?;
    for ((agent, bucket), n) in &d.response_hist {
        ins.execute(params![ds, agent, bucket, n])?;
    }
    tx.execute(
        "INSERT INTO daily_shop VALUES (?1, ?2, ?3)",
        params![ds, d.silent_orders, d.unattended_sales.to_string()],
    )?;
    Ok(())
}

fn dec(s: String) -> Decimal {
    s.parse().unwrap_or_default()
}

/// Recomputes a month's scores (month to date: every stored day of it) and replaces its rows.
pub fn score_month(conn: &mut Connection, sheet: &Sheet, month: &str) -> Result<Vec<AgentScore>, JobError> {
    let Some((first, last)) = month_bounds(month) else { return Ok(vec![]) };
    let (f, l) = (first.to_string(), last.to_string());
    let mut months: BTreeMap<String, AgentMonth> = BTreeMap::new();
    let through: Option<String> = {
        let mut stmt = conn.prepare(
            "SELECT agent, consulted, replied, ordered, paid, sales, answered, response_ms, platform_waits,
                    platform_ms, platform_within_3min, assist_follow_amount, assist_orders, agent_msgs, buyer_msgs,
                    received, ratings, satisfied
             FROM daily_metrics WHERE day BETWEEN ?1 AND ?2",
        )?;
        let mut rows = stmt.query(params![f, l])?;
        while let Some(r) = rows.next()? {
            let agent: String = r.get(0)?;
            let day = MonthFigures {
                consulted: r.get(1)?,
                replied: r.get(2)?,
                ordered: r.get(3)?,
                paid: r.get(4)?,
                sales: dec(r.get(5)?),
                answered: r.get(6)?,
                response_ms: r.get(7)?,
                platform_waits: r.get(8)?,
                platform_ms: r.get(9)?,
                platform_within_3min: r.get(10)?,
                assist_follow_amount: dec(r.get(11)?),
                assist_orders: r.get(12)?,
                agent_msgs: r.get(13)?,
                buyer_msgs: r.get(14)?,
                received: r.get(15)?,
                ratings: r.get(16)?,
                satisfied: r.get(17)?,
            };
            months
                .entry(agent.clone())
                .or_insert_with(|| AgentMonth { agent, ..Default::default() })
                .figures
                .add(&day);
        }
        conn.query_row("SELECT MAX(day) FROM daily_shop WHERE day BETWEEN ?1 AND ?2", params![f, l], |r| {
            r.get(0)
        })?
    };
    let Some(through) = through else { return Ok(vec![]) };
    let entries = ledger::entries(conn, first, last)?;
    let ledger_scores =
        ledger::month_scores(&entries, &sheet.ledger_rules, sheet.ledger_base, sheet.ledger_cap);
    for a in ledger_scores.keys().chain(sheet.agents.iter().map(|a| &a.id)) {
        months.entry(a.clone()).or_insert_with(|| AgentMonth { agent: a.clone(), ..Default::default() });
    }
    // With a roster only its agents are scored (robot and helper accounts are not 客服).
    if sheet.has_roster() {
        months.retain(|a, _| sheet.agents.iter().any(|r| &r.id == a));
    }
    {
        let mut stmt = conn.prepare("SELECT agent, indicator, value FROM score_inputs WHERE month = ?1")?;
        let mut rows = stmt.query([month])?;
        while let Some(r) = rows.next()? {
            let agent: String = r.get(0)?;
            if let Some(m) = months.get_mut(&agent) {
                m.inputs.insert(r.get(1)?, dec(r.get(2)?));
            }
        }
    }
    for m in months.values_mut() {
        let l = ledger_scores.get(&m.agent).copied().unwrap_or_default();
        m.ledger_points = ledger_scores.get(&m.agent).map_or(sheet.ledger_base, |l| l.score);
        m.ledger_money = l.money;
    }
    let unattended: Decimal = {
        let mut stmt = conn.prepare("SELECT unattended_sales FROM daily_shop WHERE day BETWEEN ?1 AND ?2")?;
        stmt.query_map(params![f, l], |r| r.get::<_, String>(0))?
            .map(|v| v.map(dec))
            .sum::<rusqlite::Result<Decimal>>()?
    };
    let headcount = if sheet.has_roster() { sheet.agents.len() } else { months.len() };
    let share = if headcount == 0 { Decimal::ZERO } else { unattended / Decimal::from(headcount) };
    let prev_month = month_of(first.pred_opt().unwrap_or(first));
    let all: Vec<AgentMonth> = months.into_values().collect();
    let mut scores: Vec<AgentScore> = score::score_all(sheet, &all, share, last);
    for s in &mut scores {
        let prev: u32 = conn
            .query_row(
                "SELECT below_streak FROM scores WHERE month = ?1 AND agent = ?2",
                params![prev_month, s.agent],
                |r| r.get(0),
            )
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(0) } else { Err(e) })?;
        score::mark_review(sheet, s, prev);
    }
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM scores WHERE month = ?1", [month])?;
    tx.execute("DELETE FROM score_lines WHERE month = ?1", [month])?;
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO scores (month, agent, through, total, grade, rank, ledger_points, base_salary, seniority,
                 bonus, commission_rate, personal_commission, public_commission, commission_paid, salary,
                 below_streak, review, ledger_pay, pay_levels, grade_bonus, ranked_bonus, missing)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22)",
        )?;
        let mut line = tx.prepare_cached(
            "INSERT INTO score_lines (month, agent, indicator, position, value, tier, points, weighted, missing)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
        )?;
        for s in &scores {
            let p = &s.pay;
            let ledger_points = s.ledger_points;
            ins.execute(params![
                month,
                s.agent,
                through,
                s.total.normalize().to_string(),
                s.grade,
                s.rank as i64,
                ledger_points.normalize().to_string(),
                p.base_salary.to_string(),
                p.seniority.to_string(),
                p.bonus.to_string(),
                p.commission_rate.normalize().to_string(),
                p.personal_commission.to_string(),
                p.public_commission.to_string(),
                p.commission_paid.to_string(),
                p.salary.to_string(),
                s.below_streak,
                s.review,
                p.ledger_pay.to_string(),
                p.pay_levels,
                p.grade_bonus.to_string(),
                p.ranked_bonus.to_string(),
                s.missing.join(",")
            ])?;
            for (i, l) in s.lines.iter().enumerate() {
                line.execute(params![
                    month,
                    s.agent,
                    l.key,
                    i as i64,
                    l.value.map(|v| v.normalize().to_string()),
                    l.tier.map(|t| t as i64),
                    l.points.normalize().to_string(),
                    l.weighted.normalize().to_string(),
                    l.missing
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(scores)
}

/// Parses a cron expression (seconds first, evaluated in Asia/Shanghai).
pub fn schedule(expr: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(expr).map_err(|e| format!("cron `{expr}`: {e}"))
}

/// The latest scheduled fire at or before `now`, looking back at most 40 days.
pub fn last_fire(s: &cron::Schedule, now: Millis) -> Option<Millis> {
    let now_t = Utc.timestamp_millis_opt(now).single()?.with_timezone(&Shanghai);
    let start = now_t - chrono::Duration::days(40);
    s.after(&start).take_while(|t| *t <= now_t).last().map(|t| t.timestamp_millis())
}

/// The next scheduled fire after `now` (for the runtime's sleep).
pub fn next_fire(s: &cron::Schedule, now: Millis) -> Option<Millis> {
    let now_t = Utc.timestamp_millis_opt(now).single()?.with_timezone(&Shanghai);
    s.after(&now_t).next().map(|t| t.timestamp_millis())
}

/// Most days one catch-up computes; older missed days need `kefu score --from/--to`.
pub const MAX_CATCH_UP_DAYS: u64 = 62;

/// The days due at `now`: each fire scores the Shanghai day before it. After downtime,
/// every day after `last_done` up to the latest fire's day is due (at most
/// [`MAX_CATCH_UP_DAYS`], the most recent ones). Pure.
pub fn due_days(s: &cron::Schedule, last_done: Option<NaiveDate>, now: Millis) -> Vec<NaiveDate> {
    let Some(fire) = last_fire(s, now) else { return vec![] };
    let Some(target) = crate::time::shanghai_day(fire).pred_opt() else { return vec![] };
    let earliest = target.checked_sub_days(Days::new(MAX_CATCH_UP_DAYS - 1)).unwrap_or(target);
    let first = match last_done {
        Some(d) if d >= target => return vec![],
        Some(d) => d.succ_opt().unwrap_or(target).max(earliest),
        None => target,
    };
    first.iter_days().take_while(|d| *d <= target).collect()
}

/// Splits `due` into the days whose figures are final and the days left for later: a day
/// is final once event time (`settled` = the watermark − the session idle time) has reached
/// its end — only then has every session of it closed by event time and every wait of it
/// been stored. Days are in order, so the final ones are a prefix. Pure.
#[must_use]
pub fn settled_days(mut due: Vec<NaiveDate>, settled: Millis) -> (Vec<NaiveDate>, Vec<NaiveDate>) {
    let end = |d: &NaiveDate| d.succ_opt().map_or(Millis::MAX, crate::time::shanghai_midnight);
    let n = due.iter().take_while(|d| end(d) <= settled).count();
    let later = due.split_off(n);
    (due, later)
}

/// The first day the job scored.
fn first_scored(conn: &Connection) -> rusqlite::Result<Option<NaiveDate>> {
    let d: Option<String> = conn.query_row("SELECT MIN(day) FROM job_runs", [], |r| r.get(0))?;
    Ok(d.and_then(|d| crate::time::parse_day(&d)))
}

/// The last day the job scored.
pub fn last_done(conn: &Connection) -> rusqlite::Result<Option<NaiveDate>> {
    let d: Option<String> = conn.query_row("SELECT MAX(day) FROM job_runs", [], |r| r.get(0))?;
    Ok(d.and_then(|d| crate::time::parse_day(&d)))
}

/// Runs whatever is due at `now` with `sheet`, writing reports to `reports` when given
/// (every due day: for `kefu score`-like use on a database no longer written to).
pub fn run_due_with(
    store: &mut Store,
    sheet: &Sheet,
    reports: Option<&Path>,
    now: Millis,
) -> Result<Outcome, JobError> {
    run_due_settled(store, sheet, reports, now, Millis::MAX)
}

/// [`run_due_with`] for the live runtime: only the days final by event time `settled`
/// ([`settled_days`]) are scored; the others wait for a later run (`Outcome::deferred`).
pub fn run_due_settled(
    store: &mut Store,
    sheet: &Sheet,
    reports: Option<&Path>,
    now: Millis,
    settled: Millis,
) -> Result<Outcome, JobError> {
    let s = schedule(&sheet.cron).map_err(|m| DataError::at("scoring.toml", None, m))?;
    let (due, deferred) = settled_days(due_days(&s, last_done(store.conn())?, now), settled);
    let (Some(&first), Some(&to)) = (due.first(), due.last()) else {
        return Ok(Outcome { deferred, ..Outcome::default() });
    };
    // The days an order today can still reach back to (its 协助下单 buyers leave the
    // assistants' 咨询人数) are rescored with it; only days already scored are revisited.
    let revisit = Days::new(((sheet.attribution_window_ms.max(0) + 86_399_999) / 86_400_000) as u64);
    let from = match (first.checked_sub_days(revisit), first_scored(store.conn())?) {
        (Some(back), Some(earliest)) => back.max(earliest).min(first),
        _ => first,
    };
    let mut out = score_range(store, sheet, from, to, now)?;
    if let Some(dir) = reports {
        out.reports = super::report::write_all(store.conn(), sheet, dir, &out.days, &out.months)?;
    }
    out.summary = super::report::summary(store.conn(), sheet, to)?;
    out.deferred = deferred;
    Ok(out)
}

/// The live runtime's entry: loads `rules/scoring.toml` (or the default), runs what is
/// due at `now`, writes `reports/`. Returns an empty outcome when nothing was due.
pub fn run_due(store: &mut Store, now: Millis) -> Result<Outcome, JobError> {
    let rules = Path::new("rules");
    let sheet = super::sheet::load(rules.is_dir().then_some(rules))?;
    run_due_with(store, &sheet, Some(Path::new("reports")), now)
}

/// Months `[from, to]` cover, as `YYYY-MM`.
pub fn months_between(from: NaiveDate, to: NaiveDate) -> Vec<String> {
    let mut out = Vec::new();
    let mut d = NaiveDate::from_ymd_opt(from.year(), from.month(), 1).unwrap_or(from);
    while d <= to {
        out.push(month_of(d));
        d = d.checked_add_months(chrono::Months::new(1)).unwrap_or(NaiveDate::MAX);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(s: &str) -> Millis {
        crate::time::parse_rfc3339_ms(s).unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        crate::time::parse_day(s).unwrap()
    }

    #[test]
    fn a_day_is_final_once_event_time_passes_its_end_by_the_idle_time() {
        let idle = 1_800_000;
        let days = || vec![d("2026-11-11"), d("2026-11-12")];
        let at = |s: &str| sh(s) - idle;
        let cases: [(&str, usize); 4] = [
            // The shop went quiet at 23:50 on the 11th: its last sessions are still open.
            ("2026-11-11T23:50:00+08:00", 0),
            ("2026-11-12T00:29:59+08:00", 0),
            // The first event at or after 00:30 closes them all: the 11th is final.
            ("2026-11-12T00:30:00+08:00", 1),
            ("2026-11-13T08:30:00+08:00", 2),
        ];
        for (watermark, n) in cases {
            let (now, later) = settled_days(days(), at(watermark));
            assert_eq!((now.len(), later.len()), (n, 2 - n), "{watermark}");
        }
    }

    #[test]
    fn due_days_catch_up_from_last_run_and_now() {
        let s = schedule(super::super::sheet::DEFAULT_CRON).unwrap();
        let cases: &[(Option<&str>, &str, &[&str])] = &[
            // First run ever, after 00:30: yesterday only.
            (None, "2026-11-12T00:30:00+08:00", &["2026-11-11"]),
            // Before 00:30 the latest fire was the previous night.
            (None, "2026-11-12T00:29:59+08:00", &["2026-11-10"]),
            // Already done.
            (Some("2026-11-11"), "2026-11-12T09:00:00+08:00", &[]),
            // Down for three nights: three days caught up, in order.
            (Some("2026-11-08"), "2026-11-12T00:31:00+08:00", &["2026-11-09", "2026-11-10", "2026-11-11"]),
            // Across a month end.
            (Some("2026-11-29"), "2026-12-02T01:00:00+08:00", &["2026-11-30", "2026-12-01"]),
            // 16:30 UTC is 00:30 Shanghai.
            (Some("2026-11-10"), "2026-11-11T16:30:00Z", &["2026-11-11"]),
        ];
        for (last, now, want) in cases {
            let got = due_days(&s, last.map(d), sh(now));
            let want: Vec<_> = want.iter().map(|w| d(w)).collect();
            assert_eq!(got, want, "last {last:?} now {now}");
        }
        let long = due_days(&s, Some(d("2025-01-01")), sh("2026-11-12T01:00:00+08:00"));
        assert_eq!(long.len() as u64, MAX_CATCH_UP_DAYS);
        assert_eq!(long.last(), Some(&d("2026-11-11")));
    }

    #[test]
    fn next_fire_is_00_30_shanghai() {
        let s = schedule("0 30 0 * * *").unwrap();
        assert_eq!(next_fire(&s, sh("2026-11-11T12:00:00+08:00")), Some(sh("2026-11-12T00:30:00+08:00")));
        assert!(schedule("every night").is_err());
    }

    #[test]
    fn months_and_bounds() {
        assert_eq!(month_bounds("2026-02"), Some((d("2026-02-01"), d("2026-02-28"))));
        assert_eq!(month_bounds("2026-13"), None);
        assert_eq!(months_between(d("2026-11-30"), d("2027-01-01")), ["2026-11", "2026-12", "2027-01"]);
    }
}

//! Reports served live from the database: an agent's day ("my day") — waits with their
//! outcome and deadline, breaches linking to the conversation, phrase-guard findings, and
//! the day's 日常考核 points. The first of issue 14's report pages.

use chrono::{Days, NaiveDate};
use rusqlite::{Connection, params};

use crate::time::{Millis, shanghai_midnight};

/// One wait of the agent's day.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitRow {
    /// Conversation.
    pub conversation: String,
    /// Shop.
    pub shop: String,
    /// Start.
    pub start: Millis,
    /// End.
    pub end: Millis,
    /// answered / unanswered / transferred.
    pub outcome: String,
    /// Deadline, ms.
    pub deadline_ms: i64,
    /// Load at the start.
    pub load: u32,
}

impl WaitRow {
    /// Waited longer than the deadline.
    pub fn breached(&self) -> bool {
        self.end - self.start > self.deadline_ms
    }
}

/// One finding of the day (matched text as stored masked).
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    /// Message time.
    pub ts: Millis,
    /// Conversation.
    pub conversation: String,
    /// Category.
    pub category: String,
    /// Severity.
    pub severity: String,
    /// Points.
    pub points: i32,
    /// The matched text, personal data masked.
    pub shown: String,
    /// A supervisor dismissed it (its points do not count).
    pub dismissed: bool,
}

/// One 日常考核 entry of the day.
#[derive(Debug, Clone, PartialEq)]
pub struct PointsRow {
    /// Points, exact decimal as stored.
    pub points: String,
    /// guard / supervisor / import.
    pub source: String,
    /// Category, if any.
    pub category: Option<String>,
    /// Reason.
    pub reason: String,
}

/// An agent's day.
#[derive(Debug, Clone, Default)]
pub struct AgentDay {
    /// Agent id.
    pub agent: String,
    /// The day.
    pub day: Option<NaiveDate>,
    /// Waits by start.
    pub waits: Vec<WaitRow>,
    /// Findings by time.
    pub findings: Vec<FindingRow>,
    /// Points entries other than the guard's (those are the findings above); entries that
    /// do not count are left out.
    pub points: Vec<PointsRow>,
}

impl AgentDay {
    /// The shops the agent worked in that day.
    pub fn shops(&self) -> Vec<String> {
        let mut s: Vec<String> = self.waits.iter().map(|w| w.shop.clone()).collect();
        s.sort();
        s.dedup();
        s
    }

    /// Answered waits and their average response, ms.
    pub fn answered(&self) -> (usize, Option<i64>) {
        let answered: Vec<i64> =
            self.waits.iter().filter(|w| w.outcome == "answered").map(|w| w.end - w.start).collect();
        let n = answered.len();
        (n, (n > 0).then(|| answered.iter().sum::<i64>() / n as i64))
    }

    /// The day's points: every finding not dismissed, and every other entry that counts.
    pub fn day_points(&self) -> rust_decimal::Decimal {
        let findings: i64 = self.findings.iter().filter(|f| !f.dismissed).map(|f| i64::from(f.points)).sum();
        let entries: rust_decimal::Decimal =
            self.points.iter().map(|p| p.points.parse::<rust_decimal::Decimal>().unwrap_or_default()).sum();
        rust_decimal::Decimal::from(findings) + entries
    }
}

/// Reads an agent's Asia/Shanghai day.
pub fn agent_day(conn: &Connection, agent: &str, day: NaiveDate) -> rusqlite::Result<AgentDay> {
    let from = shanghai_midnight(day);
    let to = day.checked_add_days(Days::new(1)).map_or(Millis::MAX, shanghai_midnight);
    let mut stmt = conn.prepare_cached(
        "SELECT conversation, shop, start, end, outcome, deadline_ms, load FROM waits \
         WHERE start >= ?2 AND start < ?3 AND agent = ?1 ORDER BY start",
    )?;
    let waits = stmt
        .query_map(params![agent, from, to], |r| {
            Ok(WaitRow {
                conversation: r.get(0)?,
                shop: r.get(1)?,
                start: r.get(2)?,
                end: r.get(3)?,
                outcome: r.get(4)?,
                deadline_ms: r.get(5)?,
                load: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT f.ts, f.conversation, f.category, f.severity, f.points, f.shown, \
                EXISTS (SELECT 1 FROM finding_reviews r WHERE r.message_id = f.message_id \
                        AND r.category = f.category AND r.start = f.start AND r.status = 'dismissed') \
         FROM flags f WHERE f.agent = ?1 AND f.ts >= ?2 AND f.ts < ?3 ORDER BY f.ts",
    )?;
    let findings = stmt
        .query_map(params![agent, from, to], |r| {
            Ok(FindingRow {
                ts: r.get(0)?,
                conversation: r.get(1)?,
                category: r.get(2)?,
                severity: r.get(3)?,
                points: r.get(4)?,
                shown: r.get(5)?,
                dismissed: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT points, source, category, reason FROM ledger \
         WHERE agent = ?1 AND day = ?2 AND voided = 0 AND source != 'guard' ORDER BY id",
    )?;
    let points = stmt
        .query_map(params![agent, day.to_string()], |r| {
            Ok(PointsRow { points: r.get(0)?, source: r.get(1)?, category: r.get(2)?, reason: r.get(3)? })
        })?
        .collect::<Result<_, _>>()?;
    Ok(AgentDay { agent: agent.into(), day: Some(day), waits, findings, points })
}

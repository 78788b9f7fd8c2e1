//! Reports served live from the database: an agent's day ("my day") — waits with their
//! outcome and deadline, breaches linking to the conversation, phrase-guard findings, and
//! the day's 日常考核 points; and an agent's month ("my month"): the score so far and, per
//! indicator, what the next tier asks. The shop's day and month reports are
//! `scoring::report`'s own templates, served by `server`.

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

/// One indicator of an agent's month: what it measured, what it earned, what the next tier asks.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorRow {
    /// Indicator key.
    pub key: String,
    /// Its name on the sheet.
    pub name: String,
    /// Weight, percent.
    pub weight: String,
    /// The value measured or entered (none: not entered).
    pub value: Option<String>,
    /// Points earned (0–100).
    pub points: String,
    /// Points × weight.
    pub weighted: String,
    /// What the next tier asks, in words.
    pub next: String,
}

/// A breach of the month, linking to its conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct BreachRow {
    /// Conversation.
    pub conversation: String,
    /// Start.
    pub start: Millis,
    /// How long the buyer waited, ms.
    pub waited_ms: i64,
    /// Deadline, ms.
    pub deadline_ms: i64,
}

/// An agent's month so far ("my month"): the score as last computed, each indicator with
/// what the next tier asks, breaches linking to their conversations, findings and points.
/// No pay: the owner reads it on the pay page.
#[derive(Debug, Clone, Default)]
pub struct AgentMonth {
    /// Agent.
    pub agent: String,
    /// YYYY-MM.
    pub month: String,
    /// Through which day the score is computed (none: the month is not scored yet).
    pub through: Option<String>,
    /// Score, grade, rank.
    pub total: Option<String>,
    /// Grade.
    pub grade: Option<String>,
    /// Rank in the month.
    pub rank: Option<i64>,
    /// Input indicators not entered yet.
    pub missing: String,
    /// Indicators.
    pub indicators: Vec<IndicatorRow>,
    /// Waits, answered, breaches of the month's stored days.
    pub waits: (i64, i64, i64),
    /// Breaches, newest first (at most 200).
    pub breaches: Vec<BreachRow>,
    /// Findings of the month not dismissed, and their points.
    pub findings: (i64, i64),
    /// The ledger score (base + counted entries) and the entries' sum.
    pub ledger: Option<String>,
}

/// What the next tier of `rule` asks, in words, for an indicator earning `points` now.
pub fn next_words(rule: &crate::scoring::sheet::Rule, points: rust_decimal::Decimal) -> String {
    use crate::scoring::sheet::NextTier;
    match rule.next_tier(points) {
        NextTier::Top => "已是最高档 top tier".into(),
        NextTier::Reach { cmp, threshold, points } => {
            format!("{} {} → {} 分", cmp.symbol(), threshold.normalize(), points.normalize())
        }
        NextTier::Slope { step, per_step, max } => {
            format!("每 {} +{} 分 (最高 {})", step.normalize(), per_step.normalize(), max.normalize())
        }
    }
}

/// Reads an agent's month.
pub fn agent_month(
    conn: &Connection,
    sheet: &crate::scoring::sheet::Sheet,
    agent: &str,
    month: &str,
) -> rusqlite::Result<AgentMonth> {
    use rusqlite::OptionalExtension;
    let Some((first, last)) = crate::scoring::job::month_bounds(month) else {
        return Ok(AgentMonth { agent: agent.into(), month: month.into(), ..AgentMonth::default() });
    };
    let mut m = AgentMonth { agent: agent.into(), month: month.into(), ..AgentMonth::default() };
    let row: Option<(String, String, Option<String>, i64, String, String)> = conn
        .query_row(
            "SELECT through, total, grade, rank, missing, ledger_points FROM scores WHERE month = ?1 AND agent = ?2",
            params![month, agent],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    if let Some((through, total, grade, rank, missing, ledger)) = row {
        let t: rust_decimal::Decimal = total.parse().unwrap_or_default();
        m.through = Some(through);
        m.total = Some(t.round_dp(2).normalize().to_string());
        m.grade = grade;
        m.rank = Some(rank);
        m.missing = missing.replace(',', ", ");
        m.ledger = Some(ledger);
    }
    let mut lines: std::collections::HashMap<String, (Option<String>, String, String)> =
        std::collections::HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT indicator, value, points, weighted FROM score_lines WHERE month = ?1 AND agent = ?2",
    )?;
    let mut rows = stmt.query(params![month, agent])?;
    while let Some(r) = rows.next()? {
        lines.insert(r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?));
    }
    for ind in &sheet.indicators {
        let (value, points, weighted) =
            lines.get(&ind.key).cloned().unwrap_or((None, "0".into(), "0".into()));
        let p: rust_decimal::Decimal = points.parse().unwrap_or_default();
        m.indicators.push(IndicatorRow {
            key: ind.key.clone(),
            name: ind.name.clone(),
            weight: ind.weight.normalize().to_string(),
            value,
            points: p.round_dp(2).normalize().to_string(),
            weighted: weighted
                .parse::<rust_decimal::Decimal>()
                .unwrap_or_default()
                .round_dp(2)
                .normalize()
                .to_string(),
            next: next_words(&ind.rule, p),
        });
    }
    let (f, l) = (first.to_string(), last.to_string());
    m.waits = conn.query_row(
        "SELECT COALESCE(SUM(waits),0), COALESCE(SUM(answered),0), COALESCE(SUM(breaches),0) FROM daily_metrics
         WHERE agent = ?1 AND day BETWEEN ?2 AND ?3",
        params![agent, f, l],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let from = shanghai_midnight(first);
    let to = last.checked_add_days(Days::new(1)).map_or(Millis::MAX, shanghai_midnight);
    let mut stmt = conn.prepare_cached(
        "SELECT conversation, start, end - start, deadline_ms FROM waits
         WHERE agent = ?1 AND start >= ?2 AND start < ?3 AND end - start > deadline_ms ORDER BY start DESC LIMIT 200",
    )?;
    m.breaches = stmt
        .query_map(params![agent, from, to], |r| {
            Ok(BreachRow {
                conversation: r.get(0)?,
                start: r.get(1)?,
                waited_ms: r.get(2)?,
                deadline_ms: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    m.findings = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(points),0) FROM flags f WHERE agent = ?1 AND ts >= ?2 AND ts < ?3
           AND NOT EXISTS (SELECT 1 FROM finding_reviews r WHERE r.message_id = f.message_id
                           AND r.category = f.category AND r.start = f.start AND r.status = 'dismissed')",
        params![agent, from, to],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(m)
}

/// The agents who worked in `shops` from Shanghai day `from` to `to` (inclusive): those with
/// an event of theirs in one of the shops. Agents carry no shop of their own (the scoring
/// sheet's `[[agent]]` roster has none, and a sub-account may serve several shops); the
/// events are where the platform states which shop an agent served.
pub fn agents_in_shops(
    conn: &Connection,
    shops: &[String],
    from: NaiveDate,
    to: NaiveDate,
) -> rusqlite::Result<std::collections::BTreeSet<String>> {
    let start = shanghai_midnight(from);
    let end = to.checked_add_days(Days::new(1)).map_or(Millis::MAX, shanghai_midnight);
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT agent FROM events \
         WHERE ts >= ?1 AND ts < ?2 AND shop = ?3 AND agent IS NOT NULL AND agent <> ''",
    )?;
    let mut agents = std::collections::BTreeSet::new();
    for shop in shops {
        for a in stmt.query_map(params![start, end, shop], |r| r.get::<_, String>(0))? {
            agents.insert(a?);
        }
    }
    Ok(agents)
}

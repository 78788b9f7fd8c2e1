//! The 日常考核 points ledger: entries from the phrase guard's findings and from
//! supervisors, a monthly base with a range cap, and appeals (复核).
//!
//! The phrase guard plugs in through [`add_finding`] — one call per finding with its
//! category, points and a reference that makes a repeated call a no-op.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;
use thiserror::Error;

use super::sheet::LedgerRule;
use crate::textio::csv::{Column, Others};
use crate::time::Millis;

/// Ledger failures.
#[derive(Debug, Error)]
pub enum LedgerError {
    /// SQLite failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// No entry with that id.
    #[error("no ledger entry #{0}")]
    NoEntry(i64),
    /// No dispute with that id, or it is already resolved.
    #[error("no open dispute #{0}")]
    NoOpenDispute(i64),
    /// The entry is already disputed.
    #[error("entry #{0} already has an open dispute")]
    AlreadyDisputed(i64),
    /// The appeal window has passed.
    #[error("entry #{entry} was published {published}; appeals closed {closed} ({hours} h window)")]
    AppealClosed {
        /// Entry id.
        entry: i64,
        /// Publication time (Shanghai).
        published: String,
        /// When the window closed (Shanghai).
        closed: String,
        /// Window length.
        hours: i64,
    },
    /// Bad lines of an imported CSV (each with its file and line); nothing was recorded.
    #[error("{}; nothing was recorded", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Lines(Vec<crate::rules::DataError>),
}

/// The most points one entry may carry either way (no seed's scheme comes near it).
pub const MAX_POINTS: i64 = 1000;

/// Where an entry came from.
pub const SOURCES: [&str; 3] = ["guard", "supervisor", "import"];

/// A ledger entry to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Agent id.
    pub agent: String,
    /// Shanghai day the entry counts on.
    pub day: NaiveDate,
    /// Points (negative = deduction).
    pub points: Decimal,
    /// One of [`SOURCES`].
    pub source: &'static str,
    /// Finding category (guard) or deduction class.
    pub category: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// Reference (finding id, import row) making the entry idempotent.
    pub reference: Option<String>,
    /// Minutes late, for a lateness entry (a rule may count it as 旷工).
    pub minutes: Option<i64>,
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Row id (the anchor reports link to: `#L{id}`).
    pub id: i64,
    /// Agent id.
    pub agent: String,
    /// Day.
    pub day: String,
    /// Points.
    pub points: Decimal,
    /// Source.
    pub source: String,
    /// Category.
    pub category: Option<String>,
    /// Reason.
    pub reason: String,
    /// Reference.
    pub reference: Option<String>,
    /// When published (UTC ms).
    pub published_at: Millis,
    /// Overturned on appeal.
    pub voided: bool,
    /// Minutes late, when given.
    pub minutes: Option<i64>,
}

/// A 复核 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    /// Row id.
    pub id: i64,
    /// Disputed entry.
    pub entry: i64,
    /// When opened.
    pub opened_at: Millis,
    /// Why.
    pub reason: String,
    /// `open`, `upheld`, `overturned`.
    pub status: String,
}

/// Records an entry; returns its id (the existing id when `reference` was seen before).
pub fn add(conn: &Connection, e: &NewEntry, published_at: Millis) -> Result<i64, LedgerError> {
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO ledger (agent, day, points, source, category, reason, ref, published_at, minutes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            e.agent,
            e.day.to_string(),
            e.points.to_string(),
            e.source,
            e.category,
            e.reason,
            e.reference,
            published_at,
            e.minutes
        ],
    )?;
    if inserted == 0 {
        let id = conn.query_row(
            "SELECT id FROM ledger WHERE source = ?1 AND ref = ?2",
            params![e.source, e.reference],
            |r| r.get(0),
        )?;
        return Ok(id);
    }
    Ok(conn.last_insert_rowid())
}

/// The phrase guard's entry point: one finding → one ledger entry (idempotent on `reference`).
pub fn add_finding(
    conn: &Connection,
    agent: &str,
    day: NaiveDate,
    category: &str,
    points: Decimal,
    reference: &str,
    published_at: Millis,
) -> Result<i64, LedgerError> {
    let e = NewEntry {
        agent: agent.to_string(),
        day,
        points,
        source: "guard",
        category: Some(category.to_string()),
        reason: format!("phrase guard: {category}"),
        reference: Some(reference.to_string()),
        minutes: None,
    };
    add(conn, &e, published_at)
}

/// Whether the phrase guard's `flags` table (migration 002) is in this database.
pub fn has_flags(conn: &Connection) -> Result<bool, LedgerError> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'flags'",
        [],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Turns the guard's findings with `ts` in `[from, to)` and non-zero points into ledger
/// entries (one per finding, idempotent; published when found). Returns entries added.
pub fn import_flags(conn: &Connection, from: Millis, to: Millis) -> Result<usize, LedgerError> {
    if !has_flags(conn)? {
        return Ok(0);
    }
    let mut stmt = conn.prepare(
        // A finding a supervisor dismissed in the console (migration 011) earns no entry.
        "SELECT message_id, ts, agent, category, points, start FROM flags f WHERE ts >= ?1 AND ts < ?2 AND points != 0
           AND NOT EXISTS (SELECT 1 FROM finding_reviews r WHERE r.message_id = f.message_id
                           AND r.category = f.category AND r.start = f.start AND r.status = 'dismissed')",
    )?;
    let rows = stmt
        .query_map(params![from, to], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Millis>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let before: i64 =
        conn.query_row("SELECT COUNT(*) FROM ledger WHERE source = 'guard'", [], |r| r.get(0))?;
    for (message, ts, agent, category, points, start) in &rows {
        let reference = format!("flag:{message}:{category}:{start}");
        add_finding(
            conn,
            agent,
            crate::time::shanghai_day(*ts),
            category,
            Decimal::from(*points),
            &reference,
            *ts,
        )?;
    }
    let after: i64 =
        conn.query_row("SELECT COUNT(*) FROM ledger WHERE source = 'guard'", [], |r| r.get(0))?;
    Ok((after - before) as usize)
}

const COLUMNS: [Column; 6] = [
    Column::required("agent", &["客服", "客服名", "旺旺"]),
    Column::required("date", &["日期"]),
    Column::required("points", &["分", "分数", "扣分"]),
    Column::required("reason", &["原因", "事由"]),
    Column::optional("category", &["类别", "分类"]),
    Column::optional("minutes", &["分钟", "迟到分钟"]),
];

/// Parses a supervisor CSV (UTF-8 or GBK): a header naming `agent,date,points,reason`
/// and optionally `category`, `minutes` (or their Chinese names), any order. Quoted cells
/// may hold commas (`"迟到,早退"` is one reason). A file without that header is refused
/// rather than losing its first row. Points are plain decimals within ±[`MAX_POINTS`]; they
/// may be left empty for a category (its sheet rule decides). Every row is checked before
/// any is returned; every bad line is named.
pub fn parse_csv(file: &std::path::Path, bytes: &[u8]) -> Result<Vec<NewEntry>, LedgerError> {
    use crate::rules::DataError;
    let table =
        crate::textio::csv::read(file, bytes, &COLUMNS, Others::Refuse).map_err(LedgerError::Lines)?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for row in &table.rows {
        let cell = |c: usize| row.get(c).trim();
        let category = Some(cell(4)).filter(|c| !c.is_empty()).map(str::to_string);
        let entry = (|| -> Result<NewEntry, String> {
            let agent = cell(0);
            if agent.is_empty() {
                return Err("agent is empty".into());
            }
            let day = crate::time::parse_day(cell(1))
                .ok_or_else(|| format!("date `{}` is not YYYY-MM-DD", cell(1)))?;
            let points = match (cell(2), &category) {
                ("", Some(_)) => Decimal::ZERO,
                (p, _) => super::sheet::plain_decimal(p)
                    .filter(|d| d.abs() <= Decimal::from(MAX_POINTS))
                    .ok_or_else(|| {
                        format!("points `{p}` is not a number from -{MAX_POINTS} to {MAX_POINTS}")
                    })?,
            };
            let minutes = match cell(5) {
                "" => None,
                m => Some(
                    m.parse::<u32>()
                        .map_err(|_| format!("minutes `{m}` is not a whole number of minutes"))?,
                ),
            };
            Ok(NewEntry {
                agent: agent.to_string(),
                day,
                points,
                source: "import",
                category: category.clone(),
                reason: cell(3).to_string(),
                reference: Some(format!("{}:{}:{agent}:{day}:{}", file.display(), row.line, cell(3))),
                minutes: minutes.map(i64::from),
            })
        })();
        match entry {
            Ok(e) => out.push(e),
            Err(m) => errors.push(DataError::at(file, Some(row.line), m)),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(LedgerError::Lines(errors)) }
}

/// Entries whose day lies in `[from, to]`, oldest first.
pub fn entries(conn: &Connection, from: NaiveDate, to: NaiveDate) -> Result<Vec<Entry>, LedgerError> {
    let mut stmt = conn.prepare(
        "SELECT id, agent, day, points, source, category, reason, ref, published_at, voided, minutes
         FROM ledger WHERE day BETWEEN ?1 AND ?2 ORDER BY day, id",
    )?;
    let rows = stmt.query_map(params![from.to_string(), to.to_string()], row_entry)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What one entry counts in its month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counted {
    /// Points (the rule's for a ruled category, else the entry's own; 0 when voided).
    pub points: Decimal,
    /// Money from a rule (元, negative = deducted).
    pub money: Decimal,
}

/// What each of a month's entries counts, in the order given (which must be the month's
/// order: day, then id). An entry whose category has a rule is one occurrence of it in
/// the agent's month — or of the rule's `counts_as` category when it is more than
/// `over_minutes` late — and counts that occurrence's points (seed 000: 迟到早退每次 1 分,
/// 超过 4 次每次 3 分, 迟到 30 分钟以上按旷工计算); its own points are not used. Other
/// entries count their own points. Voided (overturned) entries count nothing and are not
/// occurrences; disputed but open ones count.
pub fn counted(entries: &[Entry], rules: &[LedgerRule]) -> Vec<Counted> {
    let mut seen: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    entries
        .iter()
        .map(|e| {
            if e.voided {
                return Counted::default();
            }
            let Some(mut rule) = e.category.as_deref().and_then(|c| rules.iter().find(|r| r.category == c))
            else {
                return Counted { points: e.points, money: Decimal::ZERO };
            };
            if let (Some((limit, other)), Some(m)) = (&rule.over, e.minutes)
                && m > *limit
                && let Some(r) = rules.iter().find(|r| &r.category == other)
            {
                rule = r;
            }
            let n = seen.entry((e.agent.as_str(), rule.category.as_str())).or_default();
            *n += 1;
            Counted { points: rule.points(*n), money: rule.money }
        })
        .collect()
}

/// An agent's ledger month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Month {
    /// `base + clamp(Σ points, −cap, +cap)`.
    pub score: Decimal,
    /// Σ rule money (元).
    pub money: Decimal,
}

/// The month's ledger for each agent with entries (see [`counted`]).
pub fn month_scores(
    entries: &[Entry],
    rules: &[LedgerRule],
    base: Decimal,
    cap: Option<Decimal>,
) -> BTreeMap<String, Month> {
    let mut sums: BTreeMap<String, Month> = BTreeMap::new();
    for (e, c) in entries.iter().zip(counted(entries, rules)) {
        let m = sums.entry(e.agent.clone()).or_default();
        m.score += c.points;
        m.money += c.money;
    }
    for m in sums.values_mut() {
        m.score = capped(base, cap, m.score);
    }
    sums
}

/// `base + clamp(sum, −cap, +cap)` (seed 003: 80 ± 20); no cap = `base + sum`.
pub fn capped(base: Decimal, cap: Option<Decimal>, sum: Decimal) -> Decimal {
    match cap {
        Some(cap) => base + sum.clamp(-cap, cap),
        None => base + sum,
    }
}

/// Whether an entry published at `published_at` may still be disputed at `now`.
pub fn appeal_open(published_at: Millis, now: Millis, window_ms: i64) -> bool {
    now >= published_at && now - published_at <= window_ms
}

/// Opens a 复核 on an entry, if its window is open; returns the dispute id.
pub fn open_dispute(
    conn: &Connection,
    entry: i64,
    reason: &str,
    now: Millis,
    window_ms: i64,
) -> Result<i64, LedgerError> {
    let published: Millis = conn
        .query_row("SELECT published_at FROM ledger WHERE id = ?1", [entry], |r| r.get(0))
        .optional()?
        .ok_or(LedgerError::NoEntry(entry))?;
    if !appeal_open(published, now, window_ms) {
        return Err(LedgerError::AppealClosed {
            entry,
            published: crate::time::display_shanghai(published),
            closed: crate::time::display_shanghai(published + window_ms),
            hours: window_ms / 3_600_000,
        });
    }
    let open: i64 =
        conn.query_row("SELECT COUNT(*) FROM disputes WHERE entry = ?1 AND status = 'open'", [entry], |r| {
            r.get(0)
        })?;
    if open > 0 {
        return Err(LedgerError::AlreadyDisputed(entry));
    }
    conn.execute(
        "INSERT INTO disputes (entry, opened_at, reason) VALUES (?1, ?2, ?3)",
        params![entry, now, reason],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Resolves a dispute: `overturn` voids the entry, otherwise it stands.
pub fn resolve(
    conn: &mut Connection,
    dispute: i64,
    overturn: bool,
    by: &str,
    note: &str,
    now: Millis,
) -> Result<(), LedgerError> {
    let tx = conn.transaction()?;
    let entry: i64 = tx
        .query_row("SELECT entry FROM disputes WHERE id = ?1 AND status = 'open'", [dispute], |r| r.get(0))
        .optional()?
        .ok_or(LedgerError::NoOpenDispute(dispute))?;
    let status = if overturn { "overturned" } else { "upheld" };
    tx.execute(
        "UPDATE disputes SET status = ?2, resolved_at = ?3, resolved_by = ?4, note = ?5 WHERE id = ?1",
        params![dispute, status, now, by, note],
    )?;
    if overturn {
        tx.execute("UPDATE ledger SET voided = 1 WHERE id = ?1", [entry])?;
    }
    tx.commit()?;
    Ok(())
}

/// `ledger.voided` codes (migration 011): the entry counts.
pub const COUNTS: i64 = 0;
/// Overturned on appeal (复核).
pub const OVERTURNED: i64 = 1;
/// Removed by a supervisor (kept, with its audit line, rather than deleted: a guard
/// entry deleted would come back with the next import of its finding).
pub const REMOVED: i64 = 2;
/// Its phrase-guard finding was dismissed.
pub const DISMISSED: i64 = 3;

/// Changes an entry's points, category and reason; returns the entry as it was. Only an
/// entry that still counts may change.
pub fn update(
    conn: &Connection,
    id: i64,
    points: Decimal,
    category: Option<&str>,
    reason: &str,
) -> Result<Entry, LedgerError> {
    let before = entry(conn, id)?.ok_or(LedgerError::NoEntry(id))?;
    if before.voided {
        return Err(LedgerError::NoEntry(id));
    }
    conn.execute(
        "UPDATE ledger SET points = ?2, category = ?3, reason = ?4 WHERE id = ?1",
        params![id, points.to_string(), category, reason],
    )?;
    Ok(before)
}

/// Voids an entry that still counts with `code` ([`REMOVED`], [`DISMISSED`]); returns it as it was.
pub fn void(conn: &Connection, id: i64, code: i64) -> Result<Entry, LedgerError> {
    let before = entry(conn, id)?.ok_or(LedgerError::NoEntry(id))?;
    if before.voided {
        return Err(LedgerError::NoEntry(id));
    }
    conn.execute("UPDATE ledger SET voided = ?2 WHERE id = ?1", params![id, code])?;
    Ok(before)
}

/// The `voided` code of each entry of days `[from, to]` that does not count.
pub fn void_codes(
    conn: &Connection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<std::collections::HashMap<i64, i64>, LedgerError> {
    let mut stmt =
        conn.prepare("SELECT id, voided FROM ledger WHERE voided != 0 AND day BETWEEN ?1 AND ?2")?;
    let rows = stmt.query_map(params![from.to_string(), to.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One entry by id.
pub fn entry(conn: &Connection, id: i64) -> Result<Option<Entry>, LedgerError> {
    Ok(conn
        .query_row(
            "SELECT id, agent, day, points, source, category, reason, ref, published_at, voided, minutes
             FROM ledger WHERE id = ?1",
            [id],
            row_entry,
        )
        .optional()?)
}

fn row_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        id: r.get(0)?,
        agent: r.get(1)?,
        day: r.get(2)?,
        points: r.get::<_, String>(3)?.parse().unwrap_or_default(),
        source: r.get(4)?,
        category: r.get(5)?,
        reason: r.get(6)?,
        reference: r.get(7)?,
        published_at: r.get(8)?,
        voided: r.get::<_, i64>(9)? != 0,
        minutes: r.get(10)?,
    })
}

/// Open disputes with their entries, oldest first.
pub fn open_disputes(conn: &Connection) -> Result<Vec<(Dispute, Entry)>, LedgerError> {
    let mut stmt = conn.prepare(
        "SELECT d.id, d.entry, d.opened_at, d.reason, d.status,
                l.id, l.agent, l.day, l.points, l.source, l.category, l.reason, l.ref, l.published_at, l.voided,
                l.minutes
         FROM disputes d JOIN ledger l ON l.id = d.entry WHERE d.status = 'open' ORDER BY d.opened_at, d.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            Dispute {
                id: r.get(0)?,
                entry: r.get(1)?,
                opened_at: r.get(2)?,
                reason: r.get(3)?,
                status: r.get(4)?,
            },
            Entry {
                id: r.get(5)?,
                agent: r.get(6)?,
                day: r.get(7)?,
                points: r.get::<_, String>(8)?.parse().unwrap_or_default(),
                source: r.get(9)?,
                category: r.get(10)?,
                reason: r.get(11)?,
                reference: r.get(12)?,
                published_at: r.get(13)?,
                voided: r.get::<_, i64>(14)? != 0,
                minutes: r.get(15)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn capped_keeps_within_plus_minus_cap() {
        let cases = [
            (dec!(0), dec!(80)),
            (dec!(-5), dec!(75)),
            (dec!(-20), dec!(60)),
            (dec!(-35), dec!(60)),
            (dec!(20), dec!(100)),
            (dec!(27), dec!(100)),
            (dec!(19.5), dec!(99.5)),
        ];
        for (sum, want) in cases {
            assert_eq!(capped(dec!(80), Some(dec!(20)), sum), want, "{sum}");
        }
    }

    fn e(id: i64, agent: &str, category: &str, minutes: Option<i64>, voided: bool) -> Entry {
        Entry {
            id,
            agent: agent.into(),
            day: format!("2026-11-{:02}", id),
            points: dec!(-99),
            source: "supervisor".into(),
            category: Some(category.into()),
            reason: String::new(),
            reference: None,
            published_at: 0,
            voided,
            minutes,
        }
    }

    /// Seed 000: 迟到早退每次 1 分，超过 4 次每次 3 分；旷工一次 10 分；迟到 30 分钟以上按旷工计算.
    #[test]
    fn occurrences_count_by_the_rule_in_order() {
        let rules = [
            LedgerRule {
                category: "迟到早退".into(),
                steps: vec![(1, dec!(-1)), (5, dec!(-3))],
                money: Decimal::ZERO,
                over: Some((30, "旷工".into())),
            },
            LedgerRule {
                category: "旷工".into(), steps: vec![(1, dec!(-10))], money: dec!(-50), over: None
            },
        ];
        let entries = [
            e(1, "a", "迟到早退", Some(5), false),
            e(2, "a", "迟到早退", None, false),
            e(3, "b", "迟到早退", Some(10), false),
            e(4, "a", "迟到早退", Some(30), false),
            e(5, "a", "迟到早退", Some(31), false),
            e(6, "a", "迟到早退", Some(2), true),
            e(7, "a", "迟到早退", Some(2), false),
            e(8, "a", "迟到早退", Some(2), false),
            e(9, "a", "其他", None, false),
        ];
        let got: Vec<_> = counted(&entries, &rules).iter().map(|c| (c.points, c.money)).collect();
        let z = Decimal::ZERO;
        assert_eq!(
            got,
            [
                (dec!(-1), z),
                (dec!(-1), z),
                (dec!(-1), z),          // b's first
                (dec!(-1), z),          // 30 minutes is not more than 30
                (dec!(-10), dec!(-50)), // 31 minutes: 旷工
                (z, z),                 // voided: no occurrence
                (dec!(-1), z),          // a's 4th lateness
                (dec!(-3), z),          // a's 5th
                (dec!(-99), z),         // no rule: its own points
            ]
        );
        let m = month_scores(&entries, &rules, dec!(20), None);
        assert_eq!(m["a"], Month { score: dec!(20) - dec!(116), money: dec!(-50) });
    }

    #[test]
    fn appeal_window_is_inclusive_of_its_last_millisecond() {
        let h = 3_600_000;
        assert!(appeal_open(1000, 1000, 24 * h));
        assert!(appeal_open(1000, 1000 + 24 * h, 24 * h));
        assert!(!appeal_open(1000, 1001 + 24 * h, 24 * h));
        assert!(!appeal_open(1000, 999, 24 * h));
    }

    #[test]
    fn csv_rows_are_checked_with_lines() {
        let f = std::path::Path::new("d.csv");
        let p = |t: &str| parse_csv(f, t.as_bytes());
        let ok =
            p("agent,date,points,reason,category\nA,2026-11-02,-2,\"迟到,早退\",A\nB,2026-11-03,5,顶班,\n")
                .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].points, dec!(-2));
        assert_eq!(ok[0].reason, "迟到,早退", "a quoted comma stays in its cell");
        assert_eq!(ok[0].category.as_deref(), Some("A"));
        assert_eq!(ok[1].category, None);
        let e = p("agent,date,points,reason\nA,2026-11-02,-2,迟到\nB,11/03,5,x\n").unwrap_err();
        assert_eq!(e.to_string(), "d.csv:3: date `11/03` is not YYYY-MM-DD; nothing was recorded");
        // Headerless: refused, the first row is not silently lost.
        let e = p("A,2026-11-02,-2,迟到\n").unwrap_err().to_string();
        assert!(e.starts_with("d.csv:1:") && e.contains("agent"), "{e}");
        let e = p("agent,date,points,reason\nA,2026-11-02,99999999999999999999999,x\nA,2026-11-02,1e5,x\nA,2026-11-02,minus two,x\n")
            .unwrap_err()
            .to_string();
        for line in [2, 3, 4] {
            assert!(e.contains(&format!("d.csv:{line}: points")), "{e}");
        }
        let ok = p("客服,日期,分,原因,类别,分钟\nA,2026-11-02,,迟到,迟到早退,45\n").unwrap();
        assert_eq!((ok[0].points, ok[0].minutes), (Decimal::ZERO, Some(45)));
    }
}

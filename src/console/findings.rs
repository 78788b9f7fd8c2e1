//! Findings review (违规复核): a supervisor confirms or dismisses a phrase-guard finding.
//! A dismissed finding takes its points back — its guard ledger entry is voided
//! (`ledger::DISMISSED`) and the nightly import skips it — and its message around the match
//! becomes a candidate exception for `rules/guard.toml` (a phrase the guard should not
//! flag in that wording). Reviews live in `finding_reviews` (migration 011), each change in
//! the audit trail.

use chrono::{Days, NaiveDate};
use rusqlite::{Connection, OptionalExtension, params};

use crate::alerts::notice::mask_text;
use crate::guard::store::{FLAG_COLUMNS, StoredFlag, flag_row};
use crate::scoring::ledger;
use crate::time::{Millis, shanghai_midnight};

/// A finding as the review page lists it: the stored flag (matched text masked) and its review.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The finding as the guard stored it.
    pub flag: StoredFlag,
    /// The review, if any: (`confirmed` | `dismissed`, who, note).
    pub review: Option<(String, String, String)>,
}

impl Finding {
    /// Dismissed by a supervisor.
    pub fn dismissed(&self) -> bool {
        self.review.as_ref().is_some_and(|r| r.0 == "dismissed")
    }
}

/// The findings of a Shanghai day, newest first; `agent` narrows to one agent.
pub fn day(conn: &Connection, day: NaiveDate, agent: Option<&str>) -> rusqlite::Result<Vec<Finding>> {
    let from = shanghai_midnight(day);
    let to = day.checked_add_days(Days::new(1)).map_or(Millis::MAX, shanghai_midnight);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FLAG_COLUMNS}, r.status, r.user, r.note
         FROM flags LEFT JOIN finding_reviews r
           ON r.message_id = flags.message_id AND r.category = flags.category AND r.start = flags.start
         WHERE flags.ts >= ?1 AND flags.ts < ?2 AND (?3 IS NULL OR flags.agent = ?3)
         ORDER BY flags.ts DESC, flags.message_id, flags.start"
    ))?;
    let rows = stmt.query_map(params![from, to, agent], |r| {
        let status: Option<String> = r.get(12)?;
        Ok(Finding {
            flag: flag_row(r)?,
            review: match status {
                Some(s) => Some((s, r.get(13)?, r.get(14)?)),
                None => None,
            },
        })
    })?;
    rows.collect()
}

/// The key of a finding as a form carries it: `message`, `category`, `start`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Default)]
pub struct Key {
    /// Message id.
    #[serde(default)]
    pub message: String,
    /// Category.
    #[serde(default)]
    pub category: String,
    /// Start of the match, as text (checked here).
    #[serde(default)]
    pub start: String,
}

/// Why a review was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The form names no stored finding.
    #[error("finding: no phrase-guard finding {message} / {category} at {start}")]
    NoFinding {
        /// Message id (cut).
        message: String,
        /// Category (cut).
        category: String,
        /// Start.
        start: String,
    },
    /// SQLite failed.
    #[error("database")]
    Sql(#[from] rusqlite::Error),
}

fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The ledger reference the scoring import gives a finding's entry (`ledger::import_flags`).
fn reference(message: &str, category: &str, start: i64) -> String {
    format!("flag:{message}:{category}:{start}")
}

/// Confirms or dismisses a finding (a later review replaces an earlier one). Dismissing
/// voids its guard ledger entry when the import already made one; confirming a dismissed
/// finding makes it count again. Returns the finding's agent and day (for rescoring).
pub fn review(
    conn: &mut Connection,
    key: &Key,
    dismiss: bool,
    note: &str,
    user: &str,
    now: Millis,
) -> Result<(String, NaiveDate), ReviewError> {
    let missing = || ReviewError::NoFinding {
        message: cut(&key.message),
        category: cut(&key.category),
        start: cut(&key.start),
    };
    let start: i64 = key.start.trim().parse().map_err(|_| missing())?;
    let tx = conn.transaction()?;
    let found: Option<(String, Millis, i32, String, String, String)> = tx
        .query_row(
            "SELECT agent, ts, points, shown, conversation, shop FROM flags WHERE message_id = ?1 AND category = ?2 AND start = ?3",
            params![key.message, key.category, start],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let Some((agent, ts, points, shown, conversation, shop)) = found else { return Err(missing()) };
    let status = if dismiss { "dismissed" } else { "confirmed" };
    tx.execute(
        "INSERT INTO finding_reviews (message_id, category, start, status, at, user, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(message_id, category, start) DO UPDATE SET status = excluded.status, at = excluded.at,
             user = excluded.user, note = excluded.note",
        params![key.message, key.category, start, status, now, user, note],
    )?;
    let r = reference(&key.message, &key.category, start);
    let (from, to) =
        if dismiss { (ledger::COUNTS, ledger::DISMISSED) } else { (ledger::DISMISSED, ledger::COUNTS) };
    tx.execute(
        "UPDATE ledger SET voided = ?3 WHERE source = 'guard' AND ref = ?1 AND voided = ?2",
        params![r, from, to],
    )?;
    let action = if dismiss { "finding.dismiss" } else { "finding.confirm" };
    let detail = format!(
        "{agent} {} {points} in {conversation}: {shown}{}",
        key.category,
        if note.is_empty() { String::new() } else { format!(" — {note}") }
    );
    let about = super::points::About { shop: Some(&shop), agents: vec![&agent] };
    super::points::audit_about(&tx, now, user, action, None, &detail, &about)?;
    tx.commit()?;
    Ok((agent, crate::time::shanghai_day(ts)))
}

/// A dismissed finding as a candidate exception for `rules/guard.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The guard category whose `exceptions` it would join.
    pub category: String,
    /// The words around the match in the message (up to 6 characters either side),
    /// personal data masked: an exception must contain the match to cancel it.
    pub text: String,
    /// The match itself.
    pub shown: String,
    /// Who dismissed it, when, and why.
    pub user: String,
    /// When.
    pub at: Millis,
    /// Why.
    pub note: String,
    /// The shop of the finding (a shop-limited supervisor sees their shops' only).
    pub shop: String,
}

/// Characters of context either side of a match in a candidate exception.
pub const CONTEXT: usize = 6;

/// Every dismissed finding, newest first, with the text around its match.
pub fn candidates(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Candidate>> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.category, f.shown, f.start, f.end, r.user, r.at, r.note, e.body, f.shop
         FROM finding_reviews r
         JOIN flags f ON f.message_id = r.message_id AND f.category = r.category AND f.start = r.start
         LEFT JOIN events e ON e.id = r.message_id
         WHERE r.status = 'dismissed' ORDER BY r.at DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        let (start, end): (i64, i64) = (r.get(2)?, r.get(3)?);
        let body: Option<String> = r.get(7)?;
        let shown: String = r.get(1)?;
        let text = body
            .and_then(|b| crate::event::parse(&b).ok())
            .and_then(|e| match e.kind {
                crate::event::EventKind::Message { text, .. } => Some(text),
                _ => None,
            })
            .map(|t| context(&t, start.max(0) as usize, end.max(0) as usize))
            .unwrap_or_else(|| shown.clone());
        Ok(Candidate {
            category: r.get(0)?,
            text,
            shown,
            user: r.get(4)?,
            at: r.get(5)?,
            note: r.get(6)?,
            shop: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// The characters `[start − CONTEXT, end + CONTEXT)` of `text`, masked. The window is
/// widened to whole runs of letters and digits first: a phone number cut in two would not
/// be recognised, and half of it would show unmasked.
fn context(text: &str, start: usize, end: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut from = start.saturating_sub(CONTEXT).min(chars.len());
    let mut to = end.saturating_add(CONTEXT).min(chars.len()).max(from);
    while from > 0
        && from < chars.len()
        && chars[from].is_ascii_alphanumeric()
        && chars[from - 1].is_ascii_alphanumeric()
    {
        from -= 1;
    }
    while to < chars.len()
        && to > 0
        && chars[to - 1].is_ascii_alphanumeric()
        && chars[to].is_ascii_alphanumeric()
    {
        to += 1;
    }
    mask_text(&chars[from..to].iter().collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_six_characters_either_side_within_the_text() {
        assert_eq!(context("亲，爱买不买哦", 2, 6), "亲，爱买不买哦");
        assert_eq!(
            context("我们这边今天真的很忙爱买不买你自己看着办吧", 10, 14),
            "今天真的很忙爱买不买你自己看着办"
        );
        assert_eq!(
            context("打我电话13812345678", 0, 2),
            "打我电话138****5678",
            "a number is never cut, and masked"
        );
        assert_eq!(context("13812345678我不管", 11, 14), "138****5678我不管");
        assert_eq!(context("短", 5, 9), "短", "a span past the end keeps what there is");
        assert_eq!(context("短", 50, 90), "", "a span far past the end: nothing, no panic");
    }
}

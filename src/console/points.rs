//! Points and appeals (日常考核 / 复核) in the console: a supervisor adds an entry, an agent
//! appeals it, the supervisor accepts (the entry is voided) or rejects with a reason.
//! The ledger's own rules (`scoring::ledger`) do the work; this module validates the forms
//! and keeps the audit trail (`console_audit`, migration 009): who did what, when.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use rusqlite::{Connection, params};
use rust_decimal::Decimal;

use crate::scoring::ledger::{self, Entry, LedgerError, NewEntry};
use crate::time::Millis;

/// The largest number of points one entry may add or take.
pub const MAX_POINTS: i64 = 100;
/// The longest reason kept.
pub const MAX_REASON: usize = 200;

/// The points forms as posted: add uses `agent`, `day`, `points`, `category` and `reason`;
/// edit `entry`, `points`, `category` and `reason`; remove `entry` and `reason` (why it is
/// removed). One shape, so every form's fields are read and checked the same way.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct EntryForm {
    /// Agent id (add).
    #[serde(default)]
    pub agent: String,
    /// YYYY-MM-DD (add).
    #[serde(default)]
    pub day: String,
    /// The ledger entry's id (edit, remove).
    #[serde(default)]
    pub entry: String,
    /// A decimal, e.g. -2 or 1.5.
    #[serde(default)]
    pub points: String,
    /// Deduction class or category (optional).
    #[serde(default)]
    pub category: String,
    /// Why (for a removal: why it is removed).
    #[serde(default)]
    pub reason: String,
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// Checks the add form; the error names the field and what it needs.
pub fn validate(form: &EntryForm) -> Result<NewEntry, String> {
    let agent = form.agent.trim();
    if agent.is_empty() || agent.chars().count() > 64 || agent.chars().any(char::is_control) {
        return Err("agent: give the agent's id (1 to 64 characters)".into());
    }
    let day = crate::time::parse_day(form.day.trim())
        .ok_or_else(|| format!("day `{}`: expected YYYY-MM-DD", cut(&form.day)))?;
    let (points, category, reason) = fields(&form.points, &form.category, &form.reason)?;
    Ok(NewEntry {
        agent: agent.into(),
        day,
        points,
        source: "supervisor",
        category,
        reason,
        reference: None,
        minutes: None,
    })
}

/// Points, category and reason as the add and edit forms take them.
fn fields(points: &str, category: &str, reason: &str) -> Result<(Decimal, Option<String>, String), String> {
    // Plain decimals only, as the ledger import takes them (no `1e9`, no `NaN`).
    let points = crate::scoring::sheet::plain_decimal(points.trim().trim_start_matches('+'))
        .ok_or_else(|| format!("points `{}`: expected a number such as -2 or 1.5", cut(points)))?;
    if points.is_zero() || points.abs() > Decimal::from(MAX_POINTS) {
        return Err(format!(
            "points {points}: expected a non-zero number between -{MAX_POINTS} and {MAX_POINTS}"
        ));
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(format!("reason: say why, in 1 to {MAX_REASON} characters"));
    }
    let category = category.trim();
    if category.chars().count() > 40 || category.chars().any(char::is_control) {
        return Err("category: at most 40 characters".into());
    }
    let category = Some(category).filter(|c| !c.is_empty()).map(str::to_string);
    Ok((points.normalize(), category, reason.to_string()))
}

/// The entry id of a form, or the error naming it.
pub fn entry_id(text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| format!("entry `{}`: expected an entry number", cut(text)))
}

/// What an edit sets, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// The entry.
    pub entry: i64,
    /// Points.
    pub points: Decimal,
    /// Category.
    pub category: Option<String>,
    /// Reason.
    pub reason: String,
}

/// Checks the edit form; the error names the field.
pub fn validate_edit(form: &EntryForm) -> Result<Edit, String> {
    let entry = entry_id(&form.entry)?;
    let (points, category, reason) = fields(&form.points, &form.category, &form.reason)?;
    Ok(Edit { entry, points, category, reason })
}

fn show(e: &Entry) -> String {
    format!("{} {} ({}): {}", e.points.normalize(), e.category.as_deref().unwrap_or("—"), e.day, e.reason)
}

/// Edits an entry; the audit line keeps it before and after. Returns the entry as it was.
pub fn edit(conn: &mut Connection, e: &Edit, user: &str, now: Millis) -> Result<Entry, LedgerError> {
    let tx = conn.transaction()?;
    let before = ledger::update(&tx, e.entry, e.points, e.category.as_deref(), &e.reason)?;
    let after =
        Entry { points: e.points, category: e.category.clone(), reason: e.reason.clone(), ..before.clone() };
    let detail = format!("{}: {} → {}", before.agent, show(&before), show(&after));
    audit(&tx, now, user, "points.edit", e.entry, &detail)?;
    tx.commit()?;
    Ok(before)
}

/// Removes an entry (it stops counting and is kept, marked removed); an open appeal on it
/// is closed as overturned. The audit line keeps what it was and why it went.
pub fn remove(
    conn: &mut Connection,
    entry: i64,
    why: &str,
    user: &str,
    now: Millis,
) -> Result<Entry, LedgerError> {
    let tx = conn.transaction()?;
    let before = ledger::void(&tx, entry, ledger::REMOVED)?;
    tx.execute(
        "UPDATE disputes SET status = 'overturned', resolved_at = ?2, resolved_by = ?3, note = 'entry removed' \
         WHERE entry = ?1 AND status = 'open'",
        params![entry, now, user],
    )?;
    let detail = format!("{}: {} — removed: {why}", before.agent, show(&before));
    audit(&tx, now, user, "points.remove", entry, &detail)?;
    tx.commit()?;
    Ok(before)
}

fn cut(s: &str) -> String {
    s.chars().take(20).collect()
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    /// When.
    pub at: Millis,
    /// Login name.
    pub user: String,
    /// `points.add`, `points.edit`, `points.remove`, `points.appeal`, `points.accept`,
    /// `points.reject`, `finding.confirm`, `finding.dismiss`, `inputs.set`, `inputs.import`,
    /// `rules.auto_add`.
    pub action: String,
    /// The ledger entry, when the change is about one.
    pub entry: Option<i64>,
    /// What, in words.
    pub detail: String,
}

pub(crate) fn audit(
    conn: &Connection,
    at: Millis,
    user: &str,
    action: &str,
    entry: impl Into<Option<i64>>,
    detail: &str,
) -> rusqlite::Result<()> {
    audit_about(conn, at, user, action, entry, detail, &About::default())
}

/// What an audit line is about, for showing it only to those who may see that.
#[derive(Debug, Clone, Default)]
pub(crate) struct About<'a> {
    /// The shop (a finding's).
    pub shop: Option<&'a str>,
    /// The agents whose figures the change touched (score inputs).
    pub agents: Vec<&'a str>,
}

/// [`audit`] with what the line is about.
pub(crate) fn audit_about(
    conn: &Connection,
    at: Millis,
    user: &str,
    action: &str,
    entry: impl Into<Option<i64>>,
    detail: &str,
    about: &About<'_>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO console_audit (at, user, action, entry, detail, shop) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![at, user, action, entry.into(), detail, about.shop],
    )?;
    let id = conn.last_insert_rowid();
    let mut stmt = conn.prepare_cached("INSERT INTO console_audit_agents (audit, agent) VALUES (?1, ?2)")?;
    let agents: BTreeSet<&str> = about.agents.iter().copied().collect();
    for a in agents {
        stmt.execute(params![id, a])?;
    }
    Ok(())
}

/// Adds an entry and its audit line in one transaction; returns the entry id.
pub fn add(conn: &mut Connection, e: &NewEntry, user: &str, now: Millis) -> Result<i64, LedgerError> {
    let tx = conn.transaction()?;
    let id = ledger::add(&tx, e, now)?;
    let detail = format!("{} {} on {}: {}", e.agent, e.points, e.day, e.reason);
    audit(&tx, now, user, "points.add", id, &detail)?;
    tx.commit()?;
    Ok(id)
}

/// An agent appeals their own entry (within the sheet's window).
pub fn appeal(
    conn: &mut Connection,
    entry: i64,
    agent: &str,
    reason: &str,
    user: &str,
    now: Millis,
    window_ms: i64,
) -> Result<i64, LedgerError> {
    let tx = conn.transaction()?;
    let owner: Option<String> =
        tx.query_row("SELECT agent FROM ledger WHERE id = ?1", [entry], |r| r.get(0)).ok();
    if owner.as_deref() != Some(agent) {
        return Err(LedgerError::NoEntry(entry));
    }
    let id = ledger::open_dispute(&tx, entry, reason, now, window_ms)?;
    audit(&tx, now, user, "points.appeal", entry, reason)?;
    tx.commit()?;
    Ok(id)
}

/// A supervisor accepts (the entry is voided) or rejects an appeal, with a note.
pub fn resolve(
    conn: &mut Connection,
    dispute: i64,
    accept: bool,
    note: &str,
    user: &str,
    now: Millis,
) -> Result<i64, LedgerError> {
    let entry: i64 = conn
        .query_row("SELECT entry FROM disputes WHERE id = ?1", [dispute], |r| r.get(0))
        .map_err(|_| LedgerError::NoOpenDispute(dispute))?;
    ledger::resolve(conn, dispute, accept, user, note, now)?;
    let action = if accept { "points.accept" } else { "points.reject" };
    audit(conn, now, user, action, entry, note)?;
    Ok(entry)
}

/// The open appeal of each entry that has one: entry id → (dispute id, reason).
pub fn open_appeals(conn: &Connection) -> Result<HashMap<i64, (i64, String)>, LedgerError> {
    Ok(ledger::open_disputes(conn)?.into_iter().map(|(d, e)| (e.id, (d.id, d.reason))).collect())
}

/// A month's entries (every agent's, or one agent's) and their audit lines.
pub fn month(
    conn: &Connection,
    from: NaiveDate,
    to: NaiveDate,
    agent: Option<&str>,
) -> Result<(Vec<Entry>, Vec<Audit>), LedgerError> {
    let entries: Vec<Entry> =
        ledger::entries(conn, from, to)?.into_iter().filter(|e| agent.is_none_or(|a| e.agent == a)).collect();
    let mut stmt = conn.prepare_cached(
        "SELECT at, user, action, entry, detail FROM console_audit WHERE entry = ?1 ORDER BY at, id",
    )?;
    let mut trail = Vec::new();
    for e in &entries {
        let rows = stmt.query_map([e.id], |r| {
            Ok(Audit {
                at: r.get(0)?,
                user: r.get(1)?,
                action: r.get(2)?,
                entry: r.get(3)?,
                detail: r.get(4)?,
            })
        })?;
        for r in rows {
            trail.push(r?);
        }
    }
    trail.sort_by_key(|a| a.at);
    Ok((entries, trail))
}

/// Which audit lines a reader may see.
#[derive(Debug, Clone, Copy)]
pub enum Within<'a> {
    /// Every line (the owner, a supervisor of every shop).
    All,
    /// Lines about one of these shops.
    Shops(&'a [String]),
    /// Lines whose every agent is one of these (a line about nobody is not shown).
    Agents(&'a BTreeSet<String>),
}

impl Within<'_> {
    fn shows(&self, shop: Option<&str>, agents: &[String]) -> bool {
        match self {
            Self::All => true,
            Self::Shops(mine) => shop.is_some_and(|s| mine.iter().any(|m| m == s)),
            Self::Agents(mine) => !agents.is_empty() && agents.iter().all(|a| mine.contains(a)),
        }
    }
}

/// The latest `limit` audit lines whose action starts with `prefix` (`finding.`,
/// `inputs.`, `rules.`) that `within` lets the reader see, oldest first.
pub fn trail(
    conn: &Connection,
    prefix: &str,
    limit: usize,
    within: Within<'_>,
) -> rusqlite::Result<Vec<Audit>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, user, action, entry, detail, shop, \
                (SELECT json_group_array(agent) FROM console_audit_agents WHERE audit = console_audit.id) \
         FROM console_audit WHERE substr(action, 1, length(?1)) = ?1 ORDER BY at DESC, id DESC",
    )?;
    let mut rows = stmt.query(params![prefix])?;
    let mut kept = Vec::new();
    while kept.len() < limit {
        let Some(r) = rows.next()? else { break };
        let shop: Option<String> = r.get(5)?;
        // A JSON array keeps any character an agent's name may hold.
        let agents: String = r.get(6)?;
        let agents: Vec<String> = serde_json::from_str(&agents).unwrap_or_default();
        if within.shows(shop.as_deref(), &agents) {
            kept.push(Audit {
                at: r.get(0)?,
                user: r.get(1)?,
                action: r.get(2)?,
                entry: r.get(3)?,
                detail: r.get(4)?,
            });
        }
    }
    kept.reverse();
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limited_reader_sees_only_lines_about_their_shops_or_agents() {
        let shops = ["tmall-a".to_string()];
        let agents: BTreeSet<String> = ["a1".to_string(), "a2".to_string()].into();
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases: [(Within<'_>, Option<&str>, Vec<String>, bool); 9] = [
            (Within::All, None, v(&[]), true),
            (Within::All, Some("tmall-b"), v(&["b1"]), true),
            (Within::Shops(&shops), Some("tmall-a"), v(&["a1"]), true),
            (Within::Shops(&shops), Some("tmall-b"), v(&["a1"]), false),
            (Within::Shops(&shops), None, v(&["a1"]), false),
            (Within::Agents(&agents), None, v(&["a1", "a2"]), true),
            (Within::Agents(&agents), None, v(&["a1", "b1"]), false),
            (Within::Agents(&agents), None, v(&[]), false),
            (Within::Agents(&agents), Some("tmall-a"), v(&["b1"]), false),
        ];
        for (i, (within, shop, lines_agents, shown)) in cases.iter().enumerate() {
            assert_eq!(within.shows(*shop, lines_agents), *shown, "case {i}");
        }
    }

    fn form(agent: &str, day: &str, points: &str, reason: &str) -> EntryForm {
        EntryForm {
            agent: agent.into(),
            day: day.into(),
            points: points.into(),
            reason: reason.into(),
            ..EntryForm::default()
        }
    }

    #[test]
    fn the_add_form_names_the_field_that_is_wrong() {
        let cases = [
            (form("agent01", "2026-11-11", "-2", "迟到"), None),
            (form("", "2026-11-11", "-2", "迟到"), Some("agent:")),
            (form("agent01", "11/11", "-2", "迟到"), Some("day `11/11`")),
            (form("agent01", "2026-11-11", "two", "迟到"), Some("points `two`")),
            (form("agent01", "2026-11-11", "0", "迟到"), Some("non-zero")),
            (form("agent01", "2026-11-11", "-500", "迟到"), Some("between -100 and 100")),
            (form("agent01", "2026-11-11", "-2", "  "), Some("reason:")),
        ];
        for (f, want) in cases {
            match (validate(&f), want) {
                (Ok(e), None) => assert_eq!((e.points, e.source), (Decimal::from(-2), "supervisor")),
                (Err(e), Some(w)) => assert!(e.contains(w), "{e} should name {w}"),
                (got, want) => panic!("{f:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn add_appeal_accept_void_the_entry_and_leave_three_audit_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::Store::open(&dir.path().join("k.db")).unwrap();
        let conn = store.conn_mut();
        let e = validate(&form("agent01", "2026-11-11", "-2", "迟到")).unwrap();
        let id = add(conn, &e, "wang", 1_000).unwrap();
        assert!(matches!(
            appeal(conn, id, "agent02", "not me", "zhao", 2_000, 86_400_000),
            Err(LedgerError::NoEntry(_))
        ));
        let dispute = appeal(conn, id, "agent01", "堵车", "li", 2_000, 86_400_000).unwrap();
        assert_eq!(open_appeals(conn).unwrap().get(&id).map(|a| a.0), Some(dispute));
        resolve(conn, dispute, true, "ok", "wang", 3_000).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 11).unwrap();
        let (entries, trail) = month(conn, day, day, Some("agent01")).unwrap();
        assert!(entries[0].voided);
        let actions: Vec<(&str, &str)> = trail.iter().map(|a| (a.user.as_str(), a.action.as_str())).collect();
        assert_eq!(actions, [("wang", "points.add"), ("li", "points.appeal"), ("wang", "points.accept")]);
    }

    #[test]
    fn edit_and_remove_keep_before_and_after_and_stop_counting() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::Store::open(&dir.path().join("k.db")).unwrap();
        let conn = store.conn_mut();
        let id = add(conn, &validate(&form("agent01", "2026-11-11", "-2", "迟到")).unwrap(), "wang", 1_000)
            .unwrap();
        let bad =
            EntryForm { entry: "x".into(), points: "-1".into(), reason: "r".into(), ..EntryForm::default() };
        assert!(validate_edit(&bad).unwrap_err().starts_with("entry `x`"));
        let bad = EntryForm {
            entry: id.to_string(),
            points: "".into(),
            reason: "r".into(),
            ..EntryForm::default()
        };
        assert!(validate_edit(&bad).unwrap_err().starts_with("points ``"));
        let ok = EntryForm {
            entry: id.to_string(),
            points: "-1.50".into(),
            category: "态度".into(),
            reason: "改".into(),
            ..EntryForm::default()
        };
        let e = validate_edit(&ok).unwrap();
        edit(conn, &e, "wang", 2_000).unwrap();
        remove(conn, id, "录错", "wang", 3_000).unwrap();
        assert!(matches!(remove(conn, id, "again", "wang", 4_000), Err(LedgerError::NoEntry(_))), "once");
        assert!(
            matches!(edit(conn, &e, "wang", 4_000), Err(LedgerError::NoEntry(_))),
            "a removed entry stays"
        );
        let day = NaiveDate::from_ymd_opt(2026, 11, 11).unwrap();
        let (entries, trail) = month(conn, day, day, None).unwrap();
        assert!(entries[0].voided);
        assert_eq!(entries[0].points, Decimal::new(-15, 1));
        assert_eq!(ledger::void_codes(conn, day, day).unwrap().get(&id), Some(&ledger::REMOVED));
        let details: Vec<&str> = trail.iter().map(|a| a.detail.as_str()).collect();
        assert_eq!(
            details,
            [
                "agent01 -2 on 2026-11-11: 迟到",
                "agent01: -2 — (2026-11-11): 迟到 → -1.5 态度 (2026-11-11): 改",
                "agent01: -1.5 态度 (2026-11-11): 改 — removed: 录错"
            ]
        );
    }
}

//! The `flags` table (migration 002): storing a message's flags and listing them.
//!
//! The raw matched text is stored for audit and never read back by kefu; listings read
//! the masked form stored beside it.

use chrono::{Days, NaiveDate};
use rusqlite::{Connection, params};
use serde::Serialize;

use super::Flag;
use super::pii::PiiKind;
use crate::event::{Event, EventKind};
use crate::store::{Store, StoreError};
use crate::time::{Millis, shanghai_midnight};

/// A stored finding as listings show it: personal data masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFlag {
    /// Message event id.
    pub message_id: String,
    /// Message time, UTC milliseconds.
    pub ts: Millis,
    /// Shop.
    pub shop: String,
    /// Agent.
    pub agent: String,
    /// Conversation.
    pub conversation: String,
    /// Category name.
    pub category: String,
    /// `info` | `warn` | `critical`.
    pub severity: String,
    /// Points (0 or negative).
    pub points: i32,
    /// Matched text, personal data masked.
    pub matched: String,
    /// Personal-data kind, when the match is personal data.
    pub pii: Option<PiiKind>,
    /// First character of the span.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
}

const INSERT: &str = "INSERT OR IGNORE INTO flags (message_id, ts, shop, agent, conversation, category, severity, \
     points, matched, shown, pii, start, end) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// Stores the flags `Guard::check_event(event)` returned; returns how many were new.
///
/// Idempotent on `(message_id, category, start)`, so a replay over stored days adds nothing.
/// The raw matched text is cut from the message here, the only place it is kept.
pub fn save_flags(store: &Store, event: &Event, flags: &[Flag]) -> Result<usize, StoreError> {
    if flags.is_empty() {
        return Ok(0);
    }
    let rows: Vec<(Flag, String)> = flags.iter().map(|f| (f.clone(), raw_matched(event, f))).collect();
    let tx = store.conn().unchecked_transaction()?;
    let added = insert_flags(&tx, &rows)?;
    tx.commit()?;
    Ok(added)
}

/// The raw (unmasked) text a flag covers in its message: for the database only.
pub fn raw_matched(event: &Event, flag: &Flag) -> String {
    match &event.kind {
        EventKind::Message { text, .. } => {
            text.chars().skip(flag.start).take(flag.end.saturating_sub(flag.start)).collect()
        }
        _ => String::new(),
    }
}

/// Inserts `(flag, raw matched text)` rows on `conn` (inside the caller's transaction, if
/// any); returns how many were new.
pub fn insert_flags(conn: &Connection, rows: &[(Flag, String)]) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(INSERT)?;
    let mut added = 0;
    for (f, raw) in rows {
        added += stmt.execute(params![
            f.message_id,
            f.ts,
            f.shop,
            f.agent,
            f.conversation,
            f.category,
            f.severity.as_str(),
            f.points,
            raw,
            f.matched,
            f.pii.map(PiiKind::as_str),
            f.start as i64,
            f.end as i64,
        ])?;
    }
    Ok(added)
}

/// The `flags` columns [`flag_row`] reads, in its order (a query may follow them with its own).
pub const FLAG_COLUMNS: &str = "flags.message_id, flags.ts, flags.shop, flags.agent, flags.conversation, flags.category, \
     flags.severity, flags.points, flags.shown, flags.pii, flags.start, flags.end";

/// A stored flag from a row that starts with [`FLAG_COLUMNS`] (every listing of findings
/// reads them the same way: the console's review page and `kefu guard flags`).
pub fn flag_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredFlag> {
    let pii: Option<String> = r.get(9)?;
    Ok(StoredFlag {
        message_id: r.get(0)?,
        ts: r.get(1)?,
        shop: r.get(2)?,
        agent: r.get(3)?,
        conversation: r.get(4)?,
        category: r.get(5)?,
        severity: r.get(6)?,
        points: r.get(7)?,
        matched: r.get(8)?,
        pii: pii.as_deref().and_then(PiiKind::parse),
        start: r.get::<_, i64>(10)?.max(0) as usize,
        end: r.get::<_, i64>(11)?.max(0) as usize,
    })
}

/// Stored flags, oldest first, of one Shanghai day and/or one agent when given.
pub fn query(
    store: &Store,
    date: Option<NaiveDate>,
    agent: Option<&str>,
) -> Result<Vec<StoredFlag>, StoreError> {
    let (from, to) = match date {
        Some(d) => {
            let next = d.checked_add_days(Days::new(1)).unwrap_or(d);
            (shanghai_midnight(d), shanghai_midnight(next))
        }
        None => (Millis::MIN, Millis::MAX),
    };
    let mut stmt = store.conn().prepare(&format!(
        "SELECT {FLAG_COLUMNS} FROM flags \
         WHERE ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR agent = ?3) ORDER BY ts, message_id, start"
    ))?;
    let rows = stmt.query_map(params![from, to, agent], flag_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

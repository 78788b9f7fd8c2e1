//! The one writer of a batch: every statement `kefu replay --db` and `kefu run` use to
//! store what a batch of events brought — the events, the waits they ended, the alerts
//! they raised, the guard's flags, the robot's stats, the rejected input and the resume
//! point — always inside the caller's transaction, so a batch is stored whole or not at all.
//!
//! Replay and live call the same functions with the same rows, which is what makes a
//! replayed database equal to a live one.

use rusqlite::{CachedStatement, Connection, params};

use super::{INSERT_EVENT, StoreError};
use crate::alerts::Notice;
use crate::engine::Wait;
use crate::event::Event;
use crate::guard::Flag;
use crate::replies::robot::RobotAction;
use crate::time::Millis;

const INSERT_WAIT: &str = "INSERT OR REPLACE INTO waits \
     (conversation, start, end, shop, customer, agent, outcome, deadline_ms, load, first, robot) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const INSERT_ALERT: &str = "INSERT OR IGNORE INTO alerts (conversation, wait_start, kind, agent, due_at, deadline_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const INSERT_REJECTED: &str =
    "INSERT INTO rejected (received_at, source, position, reason, raw) VALUES (?1, ?2, ?3, ?4, ?5)";
const SET_META: &str =
    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value";

/// Events per transaction at most, for `kefu replay --db` and `kefu run` alike: large
/// enough that commits do not dominate (a commit writes out every page its batch touched,
/// and new ids land all over the `events.id` index), small enough to keep the writer busy while
/// the clock works and to ack a live backlog every few tens of milliseconds.
pub const BATCH: usize = 8192;

/// The `meta` key holding the last seq committed (the resume point).
pub const LAST_SEQ_KEY: &str = "gateway.last_seq";

/// Input that was not a valid event, as the `rejected` table keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// When kefu received it (UTC ms, wall clock).
    pub received_at: Millis,
    /// `websocket`, or the file's name.
    pub source: String,
    /// `seq N`, `seq ?` or `line N`.
    pub position: String,
    /// What was wrong.
    pub reason: String,
    /// The frame or line (truncated by the caller).
    pub raw: String,
}

/// The statements of one transaction, prepared once (SQLite caches them per connection).
pub struct BatchWriter<'c> {
    conn: &'c Connection,
    event: CachedStatement<'c>,
}

impl<'c> BatchWriter<'c> {
    /// Writes through `conn`, normally an open transaction.
    pub fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(Self { conn, event: conn.prepare_cached(INSERT_EVENT)? })
    }

    /// Stores an event; false when its id was already stored (a duplicate, to go no further).
    pub fn event(&mut self, e: &Event, body: &str) -> Result<bool, StoreError> {
        Ok(super::insert_event(&mut self.event, e, body)? == 1)
    }

    /// Upserts finished waits (storing the same wait twice writes the same row).
    pub fn waits(&self, waits: &[Wait]) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(INSERT_WAIT)?;
        for w in waits {
            stmt.execute(params![
                &*w.conversation,
                w.start,
                w.end,
                &*w.shop,
                &*w.customer,
                &*w.agent,
                w.outcome.as_str(),
                w.deadline_ms,
                w.load,
                w.first,
                w.robot
            ])?;
        }
        Ok(())
    }

    /// Records alerts once per (conversation, wait start, kind); returns those that were
    /// new — an alert recorded before (a redelivery, a restart) is not to be sent again.
    pub fn alerts(&self, notices: Vec<Notice>) -> Result<Vec<Notice>, StoreError> {
        let mut stmt = self.conn.prepare_cached(INSERT_ALERT)?;
        let mut new = Vec::new();
        for n in notices {
            let added = stmt.execute(params![
                n.conversation,
                n.wait_start,
                n.kind.as_str(),
                n.agent,
                n.due_at,
                n.deadline_ms
            ])?;
            if added == 1 {
                new.push(n);
            }
        }
        Ok(new)
    }

    /// Keeps input that was not a valid event.
    pub fn rejected(&self, row: &RejectedRow) -> Result<(), StoreError> {
        self.conn.prepare_cached(INSERT_REJECTED)?.execute(params![
            row.received_at,
            row.source,
            row.position,
            row.reason,
            row.raw
        ])?;
        Ok(())
    }

    /// Stores the phrase guard's findings (with their raw matched text); returns how many were new.
    pub fn flags(&self, flags: &[(Flag, String)]) -> Result<usize, StoreError> {
        crate::guard::store::insert_flags(self.conn, flags)
    }

    /// Counts the robot's actions into its daily stats (each on its own event's day).
    pub fn robot_stats(&self, actions: &[RobotAction]) -> Result<(), StoreError> {
        if actions.is_empty() {
            return Ok(());
        }
        crate::replies::stats::record_on(self.conn, actions)
    }

    /// Moves the resume point: every frame up to `seq` is in this transaction or before.
    pub fn resume_point(&self, seq: u64) -> Result<(), StoreError> {
        self.conn.prepare_cached(SET_META)?.execute(params![LAST_SEQ_KEY, seq.to_string()])?;
        Ok(())
    }
}

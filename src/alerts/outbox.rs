//! The SQLite outbox (`migrations/005_alerts.sql`): one row per alert and sink.
//!
//! The row's unique key `(conversation, wait_start, kind, sink)` is what makes an alert
//! impossible to queue twice, whatever the runtime resubmits after a reconnect or restart.
//! A row is `pending` until delivered (`sent`, or `digested` inside a digest), given up on
//! (`failed`), or recorded without sending (`stale`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use rusqlite::{OptionalExtension, params};

use crate::store::{Store, StoreError};
use crate::time::Millis;

use super::notice::Notice;
use super::pace::Backoff;

/// Where a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Waiting to be sent (possibly after a failed try).
    Pending,
    /// Delivered as its own message.
    Sent,
    /// Given up on after the sink's tries, or refused for good.
    Failed,
    /// Too old when it fell due: recorded, never sent.
    Stale,
    /// Delivered inside a digest message.
    Digested,
}

impl Status {
    /// The name stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Stale => "stale",
            Status::Digested => "digested",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            "stale" => Status::Stale,
            "digested" => Status::Digested,
            _ => Status::Pending,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Row id.
    pub id: i64,
    /// The sink's name.
    pub sink: String,
    /// The alert (raw ids).
    pub notice: Notice,
    /// Where it stands.
    pub status: Status,
    /// Tries so far.
    pub attempts: u32,
    /// Not to be tried before this.
    pub next_attempt_at: Millis,
    /// Why the last try failed.
    pub last_error: Option<String>,
}

/// The outbox: a [`Store`] connection used for the alert tables only.
pub struct Outbox {
    store: Store,
}

impl Outbox {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self { store: Store::open(path)? })
    }

    /// Opens the outbox for the sender, whose connection never checkpoints the WAL on
    /// commit: a checkpoint syncs the database file, and the sender must not stall an alert
    /// for that. [`checkpoint`] does it from a blocking thread instead.
    pub fn open_for_sender(path: &Path) -> Result<Self, StoreError> {
        let outbox = Self::open(path)?;
        outbox.store.conn().execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        Ok(outbox)
    }

    /// Queues notices in one transaction: for each, a row per `(sink, status)` given
    /// (`Pending` or `Stale`), and its record in the `alerts` table. Rows whose key is
    /// already there are left alone. Returns how many rows were new.
    pub fn enqueue(
        &mut self,
        items: &[(Notice, Vec<(String, Status)>)],
        now: Millis,
    ) -> Result<usize, StoreError> {
        let tx = self.store.conn_mut().transaction()?;
        let mut added = 0;
        {
            let mut record = tx.prepare_cached(
                "INSERT OR IGNORE INTO alerts (conversation, wait_start, kind, agent, due_at, deadline_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut queue = tx.prepare_cached(
                "INSERT OR IGNORE INTO alert_outbox
                 (conversation, wait_start, kind, sink, notice, status, next_attempt_at, due_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (n, targets) in items {
                let kind = n.kind.as_str();
                record.execute(params![
                    n.conversation,
                    n.wait_start,
                    kind,
                    n.agent,
                    n.due_at,
                    n.deadline_ms
                ])?;
                let json = serde_json::to_string(n).unwrap_or_default();
                for (sink, status) in targets {
                    added += queue.execute(params![
                        n.conversation,
                        n.wait_start,
                        kind,
                        sink,
                        json,
                        status.as_str(),
                        now,
                        n.due_at,
                        now
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Pending rows of a sink that may be tried at `now`, oldest alert first, at most `limit`.
    /// A row whose notice no longer parses is marked failed and skipped.
    pub fn due(&mut self, sink: &str, now: Millis, limit: usize) -> Result<Vec<Row>, StoreError> {
        let rows = self.select(
            "WHERE sink = ?1 AND status = 'pending' AND next_attempt_at <= ?2 ORDER BY due_at, id LIMIT ?3",
            params![sink, now, limit as i64],
        )?;
        Ok(rows)
    }

    /// Every row, in id order (for inspection and tests).
    pub fn rows(&mut self) -> Result<Vec<Row>, StoreError> {
        self.select("ORDER BY id", params![])
    }

    fn select(&mut self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<Row>, StoreError> {
        let sql = format!(
            "SELECT id, sink, notice, status, attempts, next_attempt_at, last_error FROM alert_outbox {tail}"
        );
        let mut out = Vec::new();
        let mut broken = Vec::new();
        {
            let mut stmt = self.store.conn().prepare_cached(&sql)?;
            let mut rows = stmt.query(args)?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let json: String = r.get(2)?;
                let Ok(notice) = serde_json::from_str::<Notice>(&json) else {
                    broken.push(id);
                    continue;
                };
                let status: String = r.get(3)?;
                out.push(Row {
                    id,
                    sink: r.get(1)?,
                    notice,
                    status: Status::parse(&status),
                    attempts: r.get(4)?,
                    next_attempt_at: r.get(5)?,
                    last_error: r.get(6)?,
                });
            }
        }
        for id in broken {
            tracing::error!(row = id, "alert outbox row holds an unreadable notice; marked failed");
            self.store.conn().execute(
                "UPDATE alert_outbox SET status = 'failed', last_error = 'unreadable notice' WHERE id = ?1",
                [id],
            )?;
        }
        Ok(out)
    }

    /// When the sink's next pending row not yet due at `now` may be tried, if it has any.
    pub fn next_attempt_after(&self, sink: &str, now: Millis) -> Result<Option<Millis>, StoreError> {
        Ok(self
            .store
            .conn()
            .query_row(
                "SELECT MIN(next_attempt_at) FROM alert_outbox \
                 WHERE sink = ?1 AND status = 'pending' AND next_attempt_at > ?2",
                params![sink, now],
                |r| r.get::<_, Option<Millis>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Marks pending rows of a sink whose alert fell due before `cutoff` as stale, except
    /// the rows in `spare` (in flight: their answer decides); returns how many.
    pub fn expire(&mut self, sink: &str, cutoff: Millis, spare: &HashSet<i64>) -> Result<usize, StoreError> {
        let tx = self.store.conn_mut().transaction()?;
        let mut n = 0;
        {
            let mut find = tx.prepare_cached(
                "SELECT id FROM alert_outbox WHERE sink = ?1 AND status = 'pending' AND due_at < ?2",
            )?;
            let ids = find
                .query_map(params![sink, cutoff], |r| r.get::<_, i64>(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            let mut mark = tx.prepare_cached(
                "UPDATE alert_outbox SET status = 'stale', last_error = 'stale before delivery' WHERE id = ?1",
            )?;
            for id in ids.into_iter().filter(|id| !spare.contains(id)) {
                n += mark.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Marks rows delivered, each `(id, Sent or Digested, when)`, in one transaction.
    pub fn mark_delivered(&mut self, rows: &[(i64, Status, Millis)]) -> Result<(), StoreError> {
        let tx = self.store.conn_mut().transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE alert_outbox SET status = ?2, attempts = attempts + 1, sent_at = ?3, last_error = NULL WHERE id = ?1",
            )?;
            for (id, status, at) in rows {
                stmt.execute(params![id, status.as_str(), at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a failed try of `rows`: each is retried after the backoff, or marked failed
    /// once its tries are spent (or at once when `retry` is false). Returns the rows given up on.
    pub fn mark_failed_try(
        &mut self,
        rows: &[Row],
        backoff: &Backoff,
        retry: bool,
        error: &str,
        now: Millis,
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self.store.conn_mut().transaction()?;
        let mut given_up = Vec::new();
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE alert_outbox SET status = ?2, attempts = ?3, next_attempt_at = ?4, last_error = ?5 WHERE id = ?1",
            )?;
            for row in rows {
                let attempts = row.attempts + 1;
                let (status, next) = match backoff.after(attempts).filter(|_| retry) {
                    Some(delay) => (Status::Pending, now + delay),
                    None => {
                        given_up.push(row.id);
                        (Status::Failed, row.next_attempt_at)
                    }
                };
                stmt.execute(params![row.id, status.as_str(), attempts, next, error])?;
            }
        }
        tx.commit()?;
        Ok(given_up)
    }

    /// Deletes finished rows (not `pending`) whose alert fell due before `before`; returns
    /// how many. Safe for "never twice": an alert that old is stale if it is ever submitted again.
    pub fn prune(&mut self, before: Millis) -> Result<usize, StoreError> {
        Ok(self
            .store
            .conn()
            .execute("DELETE FROM alert_outbox WHERE status != 'pending' AND due_at < ?1", [before])?)
    }

    /// Rows by sink and status.
    pub fn counts(&self) -> Result<BTreeMap<(String, Status), i64>, StoreError> {
        let mut stmt = self
            .store
            .conn()
            .prepare("SELECT sink, status, COUNT(*) FROM alert_outbox GROUP BY sink, status")?;
        let mut rows = stmt.query([])?;
        let mut out = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let status: String = r.get(1)?;
            out.insert((r.get(0)?, Status::parse(&status)), r.get(2)?);
        }
        Ok(out)
    }

    /// Pending rows across all sinks.
    pub fn pending(&self) -> Result<i64, StoreError> {
        Ok(self.store.conn().query_row(
            "SELECT COUNT(*) FROM alert_outbox WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }
}

/// Copies the WAL into the database file without waiting for readers or writers
/// (`PASSIVE`); for a blocking thread, on its own connection.
pub fn checkpoint(path: &Path) -> Result<(), StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(1))?;
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::notice::Kind;

    fn notice(conv: &str, kind: Kind) -> Notice {
        Notice {
            kind,
            shop: "s".into(),
            agent: "a".into(),
            agent_group: None,
            conversation: conv.into(),
            customer: "buyer1".into(),
            wait_start: 1_000,
            due_at: 21_000,
            waited_ms: 20_000,
            deadline_ms: 20_000,
            load: 1,
            preview: "hi".into(),
            detail: None,
        }
    }

    #[test]
    fn an_alert_is_queued_once_per_sink_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let items = vec![(
            notice("c1", Kind::Breach),
            vec![("t".to_string(), Status::Pending), ("d".into(), Status::Pending)],
        )];
        {
            let mut o = Outbox::open(&path).unwrap();
            assert_eq!(o.enqueue(&items, 5).unwrap(), 2);
            assert_eq!(o.enqueue(&items, 6).unwrap(), 0);
        }
        let mut o = Outbox::open(&path).unwrap();
        assert_eq!(o.enqueue(&items, 7).unwrap(), 0);
        let esc = vec![(notice("c1", Kind::Escalation), vec![("t".to_string(), Status::Stale)])];
        assert_eq!(o.enqueue(&esc, 7).unwrap(), 1);
        assert_eq!(o.pending().unwrap(), 2);
        let alerts: i64 = o.store.conn().query_row("SELECT COUNT(*) FROM alerts", [], |r| r.get(0)).unwrap();
        assert_eq!(alerts, 2, "one record per wait and kind");
        assert_eq!(o.due("t", 5, 10).unwrap().len(), 1);
        assert_eq!(o.due("t", 4, 10).unwrap().len(), 0, "not before next_attempt_at");
    }

    #[test]
    fn prune_keeps_pending_and_recent_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&dir.path().join("k.db")).unwrap();
        let t = |s: &str| vec![("t".to_string(), if s == "p" { Status::Pending } else { Status::Stale })];
        let mut old_pending = notice("a", Kind::Breach);
        old_pending.due_at = 100;
        let mut old_done = notice("b", Kind::Breach);
        old_done.due_at = 100;
        let mut recent_done = notice("c", Kind::Breach);
        recent_done.due_at = 10_000;
        o.enqueue(&[(old_pending, t("p")), (old_done.clone(), t("s")), (recent_done, t("s"))], 0).unwrap();
        assert_eq!(o.prune(5_000).unwrap(), 1);
        let left: Vec<String> = o.rows().unwrap().into_iter().map(|r| r.notice.conversation).collect();
        assert_eq!(left, ["a", "c"]);
        // Submitted again after pruning, it comes back stale (the sender's staleness rule),
        // never as a second delivery.
        assert_eq!(o.enqueue(&[(old_done, t("s"))], 20_000).unwrap(), 1);
    }

    #[test]
    fn failed_tries_back_off_then_give_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&dir.path().join("k.db")).unwrap();
        o.enqueue(&[(notice("c1", Kind::Breach), vec![("t".to_string(), Status::Pending)])], 0).unwrap();
        let backoff = Backoff { base_ms: 100, max_ms: 1_000, max_attempts: 3 };
        // (now, next_attempt_at after the failure, status)
        let steps = [(0, 100, Status::Pending), (100, 300, Status::Pending), (300, 300, Status::Failed)];
        for (now, next, status) in steps {
            let rows = o.rows().unwrap();
            o.mark_failed_try(&rows, &backoff, true, "HTTP 500", now).unwrap();
            let row = &o.rows().unwrap()[0];
            assert_eq!((row.next_attempt_at, row.status), (next, status), "at {now}");
        }
        assert_eq!(o.rows().unwrap()[0].attempts, 3);
    }
}

//! The SQLite store: events (idempotent on `id`), waits, alerts, rejected input.
//!
//! - [`writer`]: the one writer of a batch (events, waits, alerts, flags, robot stats,
//!   rejected input, resume point) for `kefu replay --db` and `kefu run` alike.
//! - [`snapshots`]: the engine's state as of an event, for restarts.
//!
//! WAL mode, numbered migrations applied in one transaction with their versions (a file
//! that fails them is left as it was).
//! Other modules add their tables as further migrations in [`MIGRATIONS`].

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

use crate::event::Event;
use crate::time::Millis;

pub mod snapshots;
pub mod writer;

pub use writer::{BatchWriter, LAST_SEQ_KEY, RejectedRow};

/// The numbered migrations, in order. A module that needs tables appends one here.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/001_init.sql")),
    (2, include_str!("../../migrations/002_guard.sql")),
    (3, include_str!("../../migrations/003_replies.sql")),
    (4, include_str!("../../migrations/004_scoring.sql")),
    (5, include_str!("../../migrations/005_alerts.sql")),
    (6, include_str!("../../migrations/006_scoring_seeds.sql")),
    (7, include_str!("../../migrations/007_console.sql")),
    (8, include_str!("../../migrations/008_engine.sql")),
    (9, include_str!("../../migrations/009_console_audit.sql")),
    (10, include_str!("../../migrations/010_robot_figures.sql")),
    (11, include_str!("../../migrations/011_console_reviews.sql")),
    (12, include_str!("../../migrations/012_snapshots.sql")),
    (13, include_str!("../../migrations/013_console_audit_scope.sql")),
];

/// Store failures.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Opening the database file failed.
    #[error("cannot open database {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A migration failed to apply (nothing of it, nor of the others, was kept).
    #[error("applying migration {version} to {path}: is it another program's database?")]
    Migrate {
        /// The file.
        path: PathBuf,
        /// Migration number.
        version: i64,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer kefu.
    #[error("{path} has schema version {found}, newer than this kefu knows ({known})")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Highest version this build knows.
        known: i64,
    },
    /// Writing a snapshot's bytes into its row failed (or they came out another length
    /// than counted).
    #[error("writing the snapshot at position {position}")]
    Snapshot {
        /// The snapshot's position.
        position: i64,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Any other SQLite failure.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// An open database.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date. Every
    /// error names the file; a file whose migrations fail (another program's database) is
    /// left exactly as it was: no table added, journal mode unchanged.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let at = |source| StoreError::Open { path: path.into(), source };
        let conn = Connection::open(path).map_err(at)?;
        // NORMAL sync is durable across process crashes, which is what the ack protocol
        // relies on. A 64 MiB page cache keeps the id and buyer indexes in memory: they are
        // inserted in random order. (Per connection: nothing is written to the file.)
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -65536;",
        )
        .map_err(at)?;
        let mut store = Self { conn };
        store.migrate(path)?;
        // WAL lets reports read while the bot writes. It is recorded in the file, so it is
        // set only once the file is known to be ours (migrated), and outside a transaction.
        store.conn.execute_batch("PRAGMA journal_mode = WAL").map_err(at)?;
        Ok(store)
    }

    /// Applies the missing migrations and records them in `schema_version`, all in one
    /// transaction: a failure rolls everything back, `schema_version` included.
    fn migrate(&mut self, path: &Path) -> Result<(), StoreError> {
        let at = |source| StoreError::Open { path: path.into(), source };
        let tx = self.conn.transaction().map_err(at)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(at)?;
        let applied: Vec<i64> = {
            let mut stmt = tx.prepare("SELECT version FROM schema_version").map_err(at)?;
            stmt.query_map([], |r| r.get(0)).map_err(at)?.collect::<Result<_, _>>().map_err(at)?
        };
        let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
        if let Some(&found) = applied.iter().find(|&&v| v > known) {
            return Err(StoreError::TooNew { path: path.into(), found, known });
        }
        // Each migration is applied unless recorded, so a table added under a lower number
        // by another module still reaches databases created before it.
        for &(version, sql) in MIGRATIONS.iter().filter(|m| !applied.contains(&m.0)) {
            let failed = |source| StoreError::Migrate { path: path.into(), version, source };
            tx.execute_batch(sql).map_err(failed)?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [version]).map_err(failed)?;
        }
        tx.commit().map_err(at)
    }

    /// The underlying connection, for modules that own their tables.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The connection itself, for a component that keeps its own (the console).
    pub fn into_conn(self) -> Connection {
        self.conn
    }

    /// Mutable access to the connection, for transactions.
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Stores events in one transaction; returns how many were new (duplicates are skipped).
    pub fn insert_events<'a>(
        &mut self,
        events: impl IntoIterator<Item = (&'a Event, &'a str)>,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(INSERT_EVENT)?;
            for (e, body) in events {
                added += insert_event(&mut stmt, e, body)?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Calls `f` with every stored event in the order it was first stored.
    pub fn for_each_event(&self, f: impl FnMut(Event)) -> Result<usize, StoreError> {
        self.for_each_event_after(i64::MIN, f)
    }

    /// Calls `f` with every stored event after `position` (`events.seq`), in stored order.
    pub fn for_each_event_after(&self, position: i64, mut f: impl FnMut(Event)) -> Result<usize, StoreError> {
        let mut stmt = self.conn.prepare("SELECT body FROM events WHERE seq > ?1 ORDER BY seq")?;
        let mut rows = stmt.query([position])?;
        let mut bad = 0;
        while let Some(row) = rows.next()? {
            let body: String = row.get(0)?;
            match crate::event::parse(&body) {
                Ok(e) => f(e),
                Err(_) => bad += 1,
            }
        }
        Ok(bad)
    }

    /// Number of stored events.
    pub fn event_count(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?)
    }

    /// Keeps a line or frame that was not a valid event.
    pub fn insert_rejected(
        &self,
        received_at: Millis,
        source: &str,
        position: &str,
        reason: &str,
        raw: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO rejected (received_at, source, position, reason, raw) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![received_at, source, position, reason, raw],
        )?;
        Ok(())
    }

    /// Reads a value from the key/value table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    /// Writes a value to the key/value table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

/// Runs [`INSERT_EVENT`] for one event; returns 1 when it was new, 0 for a duplicate.
pub fn insert_event(stmt: &mut rusqlite::Statement<'_>, e: &Event, body: &str) -> rusqlite::Result<usize> {
    stmt.execute(params![e.id, e.ts, e.shop, e.type_name(), e.conversation(), e.agent(), e.customer(), body])
}

/// The one statement that stores an event; the benchmark's bare insert uses it too.
pub const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events (id, ts, shop, type, conversation, agent, customer, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_keeps_schema_and_events_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let line = r#"{"type":"close","id":"x1","ts":"2026-11-11T10:00:00Z","shop":"s","conversation":"c"}"#;
        let e = crate::event::parse(line).unwrap();
        {
            let mut s = Store::open(&path).unwrap();
            assert_eq!(s.insert_events([(&e, line)]).unwrap(), 1);
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.insert_events([(&e, line), (&e, line)]).unwrap(), 0);
        assert_eq!(s.event_count().unwrap(), 1);
        let mut seen = vec![];
        s.for_each_event(|e| seen.push(e.id)).unwrap();
        assert_eq!(seen, ["x1"]);
    }
}

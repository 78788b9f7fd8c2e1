//! The `snapshots` table: the engine's state as of an event (`events.seq`), written in
//! the batch's own transaction so a snapshot never covers an event that is not stored, and
//! never misses one that is. The bytes are [`crate::engine::snapshot`]'s; this module only
//! stores them, keeps the latest few and reads the newest back.

use rusqlite::blob::ZeroBlob;
use rusqlite::{Connection, DatabaseName, OptionalExtension, params};

use super::StoreError;
use crate::time::Millis;

/// Snapshots kept: the newest, and one before it in case the newest cannot be read.
pub const KEEP: usize = 2;

/// A stored snapshot, undecoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The last `events.seq` it covers.
    pub position: i64,
    /// The bytes ([`crate::engine::snapshot::decode`]).
    pub bytes: Vec<u8>,
}

/// Stores a snapshot covering events up to `position` and drops all but the newest
/// [`KEEP`]; `conn` is normally the batch's transaction.
pub fn save(
    conn: &Connection,
    position: i64,
    version: u32,
    taken_at: Millis,
    watermark: Millis,
    bytes: &[u8],
) -> Result<(), StoreError> {
    save_streamed(conn, position, version, taken_at, watermark, bytes.len(), |w| w.write_all(bytes))
}

/// Stores a snapshot of `len` bytes that `write` writes, covering events up to
/// `position`, and drops all but the newest [`KEEP`]. The bytes go straight into the row
/// (a zeroblob of `len` written through a blob handle), so they are never held whole in
/// memory: with 100,000 conversations open they are tens of MB. `write` must write exactly
/// `len` bytes (the caller counts them with a first pass); anything else is an error and
/// the caller's transaction is not to be committed.
pub fn save_streamed(
    conn: &Connection,
    position: i64,
    version: u32,
    taken_at: Millis,
    watermark: Millis,
    len: usize,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let fail = |source| StoreError::Snapshot { position, source };
    let size = i32::try_from(len).map_err(|_| {
        fail(std::io::Error::new(std::io::ErrorKind::InvalidInput, "larger than a blob can be"))
    })?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO snapshots (position, version, taken_at, watermark, bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![position, version, taken_at, watermark, ZeroBlob(size)])?;
    let blob = conn.blob_open(DatabaseName::Main, "snapshots", "bytes", position, false)?;
    let mut out = Exact { inner: std::io::BufWriter::with_capacity(64 * 1024, blob), left: len };
    write(&mut out).map_err(fail)?;
    std::io::Write::flush(&mut out).map_err(fail)?;
    if out.left != 0 {
        return Err(fail(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "fewer bytes than counted")));
    }
    drop_older(conn)
}

/// A writer that refuses to write more than `left` bytes.
struct Exact<W> {
    inner: W,
    left: usize,
}

impl<W: std::io::Write> std::io::Write for Exact<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "more bytes than counted"));
        }
        self.inner.write_all(buf)?;
        self.left -= buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Keeps the newest [`KEEP`] snapshots.
fn drop_older(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM snapshots WHERE position < \
         (SELECT MIN(position) FROM (SELECT position FROM snapshots ORDER BY position DESC LIMIT ?1))",
    )?
    .execute([KEEP as i64])?;
    Ok(())
}

/// The stored snapshots, newest first.
pub fn newest_first(conn: &Connection) -> Result<Vec<Stored>, StoreError> {
    let mut stmt = conn.prepare("SELECT position, bytes FROM snapshots ORDER BY position DESC")?;
    let rows = stmt.query_map([], |r| Ok(Stored { position: r.get(0)?, bytes: r.get(1)? }))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last event stored (`events.seq`), 0 when there is none.
pub fn last_position(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row("SELECT MAX(seq) FROM events", [], |r| r.get::<_, Option<i64>>(0))
        .optional()?
        .flatten()
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_two() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("k.db")).unwrap();
        for p in [10, 20, 30, 40] {
            save(store.conn(), p, 1, 0, 0, &[p as u8]).unwrap();
        }
        let kept: Vec<i64> = newest_first(store.conn()).unwrap().iter().map(|s| s.position).collect();
        assert_eq!(kept, [40, 30]);
        assert_eq!(last_position(store.conn()).unwrap(), 0);
    }
}

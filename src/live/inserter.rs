//! The insert-ahead thread: while the runtime task runs the engine, the phrase guard and
//! the robot over a batch, a second thread stores the batch's events in the batch's open
//! transaction, on the runtime's own connection, and says for each whether it was new.
//!
//! The runtime needs that answer before it may process an event (a duplicate goes no
//! further), and only the store knows it; inserting a whole batch first and processing it
//! after would leave one core idle at a time. So the thread runs ahead of the runtime
//! chunk by chunk and hands over [`Verdict`]s, and the runtime processes each chunk once
//! its verdicts are in, while the thread inserts the next. The transaction stays open:
//! the runtime stores what the batch decided in it and commits (and only then acks), so
//! a batch is still stored whole or not at all.
//!
//! The thread also judges each event's time ([`TimeLimits::admit`]), as the runtime used
//! to: it depends on the watermark, which moves with each new event, and an event whose
//! time is rejected must not be inserted. The watermark is the latest time of a new
//! event (`Engine::watermark`), so the thread follows it from the batch's start exactly.
//!
//! Once the batch's events are in, the thread stores what the runtime decided so far
//! ([`Rows`]: waits, alerts, flags, the robot's bookkeeping), handed over chunk by chunk
//! as the runtime goes, until the runtime is through the batch. The runtime used to write
//! all of them itself after processing the batch, while the thread, done with its events,
//! sat idle: the connection's work (events, then rows, then commit) is what a batch costs,
//! and now it goes on while the runtime processes the batch's last chunks. The runtime
//! writes what the batch's end decides (alert timers fired by the wall clock, rescues,
//! the resume point) and commits (docs/benchmarks.md).

use std::sync::mpsc::{Receiver, Sender};

use rusqlite::Connection;

use crate::alerts::Notice;
use crate::engine::{Admission, TimeLimits, Wait};
use crate::gateway::Incoming;
use crate::guard::Flag;
use crate::replies::robot::RobotAction;
use crate::store::{BatchWriter, StoreError};
use crate::time::Millis;

/// Events per chunk handed over: small enough that the runtime starts soon after the
/// thread, large enough that the hand-over costs nothing per event.
pub(crate) const CHUNK: usize = 256;

/// What the thread found for one event frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Stored now: process it.
    New,
    /// Its id was stored before: go no further.
    Duplicate,
    /// Its time is not believable (the reason): not stored, to be kept as rejected input.
    Rejected(String),
}

/// The verdicts of one chunk of event frames, in order, or the store's failure (then the
/// thread stops and the batch is rolled back).
pub(crate) type Chunk = Result<Vec<Verdict>, StoreError>;

/// What the runtime knows when a batch begins: the clock to judge times by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Judge {
    /// The limits on an event's time.
    pub limits: TimeLimits,
    /// The wall clock for the batch.
    pub now: Millis,
    /// The engine's watermark before the batch.
    pub watermark: Millis,
}

/// What the runtime decided over a stretch of the batch, to be stored in it.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    /// Waits that ended.
    pub waits: Vec<Wait>,
    /// Alerts decided (stored once: one already recorded is not new).
    pub notices: Vec<Notice>,
    /// The phrase guard's findings, with their raw matched text.
    pub flags: Vec<(Flag, String)>,
    /// The robot's bookkeeping: hits, misses, figures, phrases used.
    pub robot: Vec<RobotAction>,
}

/// What storing [`Rows`] found new.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    /// Alerts recorded for the first time, in order: the ones to send.
    pub alerts: Vec<Notice>,
    /// Flags stored for the first time.
    pub flags: u64,
}

impl Stored {
    /// Stores `rows` through `w` and adds what was new.
    pub(crate) fn store(&mut self, w: &BatchWriter<'_>, rows: Rows) -> Result<(), StoreError> {
        w.waits(&rows.waits)?;
        self.alerts.extend(w.alerts(rows.notices)?);
        self.flags += w.flags(&rows.flags)? as u64;
        w.robot_stats(&rows.robot)
    }
}

/// Inserts the events of `items` (other frames are skipped) into the transaction open on
/// `conn`, sending the verdicts of each [`CHUNK`] of events down `out`; then stores the
/// [`Rows`] coming from `rows` until the runtime closes it. A store error in the events
/// ends the verdicts (it is the last chunk); one in the rows is returned. Stops early when
/// the runtime stops listening.
pub(crate) fn insert_ahead(
    conn: &mut Connection,
    items: &[Incoming],
    judge: &Judge,
    out: &Sender<Chunk>,
    rows: &Receiver<Rows>,
) -> Result<Stored, StoreError> {
    let mut stored = Stored::default();
    if let Err(e) = insert_all(conn, items, judge, out) {
        let _ = out.send(Err(e));
        return Ok(stored);
    }
    let w = BatchWriter::new(conn)?;
    while let Ok(r) = rows.recv() {
        stored.store(&w, r)?;
    }
    Ok(stored)
}

fn insert_all(
    conn: &Connection,
    items: &[Incoming],
    judge: &Judge,
    out: &Sender<Chunk>,
) -> Result<(), StoreError> {
    let mut w = BatchWriter::new(conn)?;
    let mut watermark = judge.watermark;
    let mut chunk = Vec::with_capacity(CHUNK);
    for item in items {
        let Incoming::Event { event, body, .. } = item else { continue };
        let verdict = match judge.limits.admit(event.ts, judge.now, watermark) {
            Admission::Reject(reason) => Verdict::Rejected(reason),
            Admission::Accept if w.event(event, body)? => {
                watermark = watermark.max(event.ts);
                Verdict::New
            }
            Admission::Accept => Verdict::Duplicate,
        };
        chunk.push(verdict);
        if chunk.len() == CHUNK
            && out.send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))).is_err()
        {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        let _ = out.send(Ok(chunk));
    }
    Ok(())
}

/// The runtime's end: the verdicts one event at a time, in the frames' order.
pub(crate) struct Verdicts {
    rx: Receiver<Chunk>,
    chunk: std::vec::IntoIter<Verdict>,
}

impl Verdicts {
    pub(crate) fn new(rx: Receiver<Chunk>) -> Self {
        Self { rx, chunk: Vec::new().into_iter() }
    }

    /// The next event's verdict, waiting for the thread if it is not ahead; `Err(None)`
    /// when the thread stopped without one (it panicked: the caller reports it when joining).
    pub(crate) fn next(&mut self) -> Result<Verdict, Option<StoreError>> {
        loop {
            if let Some(v) = self.chunk.next() {
                return Ok(v);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => self.chunk = chunk.into_iter(),
                Ok(Err(e)) => return Err(Some(e)),
                Err(_) => return Err(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Sender as From};
    use crate::store::Store;

    fn message(id: &str, ts: Millis) -> Incoming {
        let event = Event {
            id: id.into(),
            ts,
            shop: "s".into(),
            kind: EventKind::Message {
                conversation: "c1".into(),
                customer: "b1".into(),
                agent: "a1".into(),
                from: From::Customer,
                text: "在吗".into(),
            },
        };
        Incoming::Event { seq: 1, body: event.to_json(), event }
    }

    fn run(store: &mut Store, items: &[Incoming], judge: &Judge) -> Vec<Result<Verdict, Option<String>>> {
        let (tx, rx) = std::sync::mpsc::channel();
        store.conn().execute_batch("BEGIN").unwrap();
        let (_, no_rows) = std::sync::mpsc::channel();
        insert_ahead(store.conn_mut(), items, judge, &tx, &no_rows).unwrap();
        drop(tx);
        let mut verdicts = Verdicts::new(rx);
        let got = items.iter().map(|_| verdicts.next().map_err(|e| e.map(|e| e.to_string()))).collect();
        store.conn().execute_batch("COMMIT").unwrap();
        got
    }

    const DAY: Millis = 86_400_000;

    /// A new store and the judge of a batch at 2027-01-15 with nothing stored before.
    fn open() -> (tempfile::TempDir, Store, Judge) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.db")).unwrap();
        let judge = Judge { limits: TimeLimits::default(), now: 1_800_000_000_000, watermark: Millis::MIN };
        (dir, store, judge)
    }

    #[test]
    fn judges_time_by_the_watermark_of_the_new_events_before_it() {
        let (_dir, mut store, judge) = open();
        let now = judge.now;
        let items = vec![
            message("e1", now - 20 * DAY),
            // A duplicate dated later does not move the watermark …
            message("e1", now),
            // … so an event 8 days after the first is still believable;
            message("e2", now - 12 * DAY),
            // a new one dated now moves it, and 8 days before that is too old.
            message("e3", now),
            message("e4", now - 8 * DAY),
            message("e5", now + 60_000),
        ];
        let got = run(&mut store, &items, &judge);
        assert_eq!(got[0], Ok(Verdict::New));
        assert_eq!(got[1], Ok(Verdict::Duplicate));
        assert_eq!(got[2], Ok(Verdict::New));
        assert_eq!(got[3], Ok(Verdict::New));
        assert!(
            matches!(&got[4], Ok(Verdict::Rejected(r)) if r.contains("before the latest event")),
            "{:?}",
            got[4]
        );
        assert!(
            matches!(&got[5], Ok(Verdict::Rejected(r)) if r.contains("ahead of the clock")),
            "{:?}",
            got[5]
        );
        let stored: i64 = store.conn().query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, 3, "rejected events and duplicates are not stored");
    }

    #[test]
    fn hands_over_in_chunks_and_a_store_error_ends_the_verdicts() {
        let (_dir, mut store, judge) = open();
        let now = judge.now;
        let items: Vec<Incoming> =
            (0..CHUNK * 2 + 3).map(|i| message(&format!("e{i}"), now - 1000)).collect();
        let got = run(&mut store, &items, &judge);
        assert!(got.iter().all(|v| *v == Ok(Verdict::New)));
        // Stored already: every one a duplicate now.
        let again = run(&mut store, &items, &judge);
        assert!(again.iter().all(|v| *v == Ok(Verdict::Duplicate)));

        // The events table gone: the first insert fails, and that is the only answer.
        store.conn().execute_batch("DROP TABLE events").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (_, no_rows) = std::sync::mpsc::channel();
        insert_ahead(store.conn_mut(), &items, &judge, &tx, &no_rows).unwrap();
        drop(tx);
        let mut verdicts = Verdicts::new(rx);
        assert!(matches!(verdicts.next(), Err(Some(_))));
        assert!(matches!(verdicts.next(), Err(None)));
    }

    #[test]
    fn stores_the_runtimes_rows_after_the_events_and_says_which_alerts_are_new() {
        let (_dir, mut store, judge) = open();
        let now = judge.now;
        let items = vec![message("e1", now - 1000)];
        // The alerts key is (conversation, wait start, kind): a summary's subject is its conversation.
        let alert = |subject: &str| Notice::summary(subject, now, "scored");
        let batch = |store: &mut Store, rows: Vec<Rows>| {
            let (tx, _verdicts) = std::sync::mpsc::channel();
            let (rows_tx, rows_rx) = std::sync::mpsc::channel();
            // Handed over before the thread is through the events: stored after them.
            rows.into_iter().for_each(|r| rows_tx.send(r).unwrap());
            drop(rows_tx);
            store.conn().execute_batch("BEGIN").unwrap();
            let stored = insert_ahead(store.conn_mut(), &items, &judge, &tx, &rows_rx).unwrap();
            store.conn().execute_batch("COMMIT").unwrap();
            stored.alerts.len()
        };
        let rows = |n: Vec<Notice>| Rows { notices: n, ..Rows::default() };
        // The same alert twice across two hand-overs of one batch: recorded once, new once.
        assert_eq!(batch(&mut store, vec![rows(vec![alert("a")]), rows(vec![alert("a"), alert("b")])]), 2);
        // Recorded before (a redelivered batch): nothing new.
        assert_eq!(batch(&mut store, vec![rows(vec![alert("b")])]), 0);
        let count = |sql: &str| -> i64 { store.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM alerts"), 2);
        assert_eq!(count("SELECT count(*) FROM events"), 1);
    }
}

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
//! It does nothing else: the store's connection is the one part of a batch that cannot be
//! shared, so this thread (inserting) and the runtime task (writing what the batch decided,
//! then committing) hold it in turn, and the batch goes no faster than that chain. Work
//! that needs no connection (the phrase guard, freeing the last batch's frames) is the
//! runtime task's, which waits for this thread's verdicts meanwhile (docs/benchmarks.md).

use std::sync::mpsc::{Receiver, Sender};

use rusqlite::Connection;

use crate::engine::{Admission, TimeLimits};
use crate::gateway::Incoming;
use crate::store::{BatchWriter, StoreError};
use crate::time::Millis;

/// Events per chunk handed over: small enough that the runtime starts soon after the
/// thread, large enough that the hand-over costs nothing per event.
const CHUNK: usize = 256;

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

/// Inserts the events of `items` (other frames are skipped) into the transaction open on
/// `conn`, sending the verdicts of each [`CHUNK`] of events down `out`. Stops at the first
/// store error (sent as the last chunk) or when the runtime stops listening.
pub(crate) fn insert_ahead(conn: &mut Connection, items: &[Incoming], judge: &Judge, out: &Sender<Chunk>) {
    if let Err(e) = insert_all(conn, items, judge, out) {
        let _ = out.send(Err(e));
    }
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
        insert_ahead(store.conn_mut(), items, judge, &tx);
        drop(tx);
        let mut verdicts = Verdicts::new(rx);
        let got = items.iter().map(|_| verdicts.next().map_err(|e| e.map(|e| e.to_string()))).collect();
        store.conn().execute_batch("COMMIT").unwrap();
        got
    }

    const DAY: Millis = 86_400_000;

    #[test]
    fn judges_time_by_the_watermark_of_the_new_events_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("k.db")).unwrap();
        let now = 1_800_000_000_000; // 2027-01-15
        let judge = Judge { limits: TimeLimits::default(), now, watermark: Millis::MIN };
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
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("k.db")).unwrap();
        let now = 1_800_000_000_000; // 2027-01-15
        let judge = Judge { limits: TimeLimits::default(), now, watermark: Millis::MIN };
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
        insert_ahead(store.conn_mut(), &items, &judge, &tx);
        drop(tx);
        let mut verdicts = Verdicts::new(rx);
        assert!(matches!(verdicts.next(), Err(Some(_))));
        assert!(matches!(verdicts.next(), Err(None)));
    }
}

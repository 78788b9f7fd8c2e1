//! `kefu replay` and `kefu report`: the clock over a JSONL file or over the stored events.
//!
//! One [`Pipeline`] (dedup → clock → report) serves both, so a file, the database and the
//! live bot produce the same report. With a database, a writer thread stores events, waits
//! and alerts while the main thread runs the clock: SQLite, not the clock, sets the pace.

use hashbrown::HashTable;
use std::borrow::Cow;
use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use thiserror::Error;

use crate::alerts::{Notice, Plan};
use crate::engine::{Admission, Engine, Output, TimeLimits, Wait};
use crate::event::{self, Event};
use crate::guard::{Flag, Guard};
use crate::report::{Report, ReportBuilder};
use crate::rules::response_time::ResponseRules;
use crate::store::{BatchWriter, RejectedRow, Store, StoreError};
use crate::time::{Millis, now_ms};

/// Replay failures (bad lines are not failures: they are reported and skipped).
#[derive(Debug, Error)]
pub enum ReplayError {
    /// The input could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The writer thread died.
    #[error("database writer stopped: {0}")]
    Writer(String),
}

/// A line that was not a valid event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

/// What the input held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputStats {
    /// Non-blank lines read.
    pub lines: usize,
    /// Valid, new events processed.
    pub events: usize,
    /// Valid events whose id had been seen before.
    pub duplicates: usize,
    /// Lines that were not valid events.
    pub rejected: Vec<Rejected>,
    /// Events the database did not have yet (with `--db`).
    pub stored: usize,
}

/// The dedup set's hash of an event id: one function for the parser threads, which
/// compute it beside parsing, and for [`Pipeline::push`].
fn id_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(id)
}

/// How often (in event time) the dedup set drops ids too old to matter.
const SWEEP_EVERY_MS: i64 = 86_400_000;

/// Dedup → engine (and phrase guard) → report, fed one event at a time.
pub struct Pipeline {
    /// Ids seen, with their event time, back to the oldest time still admitted (the
    /// watermark − [`TimeLimits::behind_ms`]) plus at most a day: a redelivered event has
    /// its original's time, so an older one is rejected before it gets here, and the set
    /// does not grow with the history (see `docs/protocol.md`, "Duplicates"). Keyed by
    /// [`id_hash`], which replay's parser threads compute off the main thread.
    seen: HashTable<(Box<str>, Millis)>,
    swept_at: Millis,
    engine: Engine,
    limits: TimeLimits,
    /// The wall clock when the replay started: events dated after it (+ the tolerance)
    /// are rejected, as live rejects them.
    wall: Millis,
    guard: Option<Guard>,
    report: ReportBuilder,
    out: Vec<Output>,
    notices: Vec<Notice>,
    flags: Vec<Flag>,
}

impl Pipeline {
    /// A pipeline on these rules, with the default alert plan.
    pub fn new(rules: ResponseRules) -> Self {
        Self::with_plan(rules, Plan::default())
    }

    /// A pipeline on these rules whose alert timers follow `plan` (as `kefu run`'s do).
    pub fn with_plan(rules: ResponseRules, plan: Plan) -> Self {
        Self {
            seen: HashTable::new(),
            swept_at: Millis::MIN,
            engine: Engine::new(rules, plan),
            limits: TimeLimits::default(),
            wall: now_ms(),
            guard: None,
            report: ReportBuilder::new(),
            out: Vec::new(),
            notices: Vec::new(),
            flags: Vec::new(),
        }
    }

    /// Keeps only the per-agent days and counts, not every wait (the table, not `--json`).
    pub fn streaming(mut self) -> Self {
        self.report = ReportBuilder::streaming();
        self
    }

    /// Whether the engine believes the event's time (see [`crate::engine::admit`]).
    pub fn admit(&self, event: &Event) -> Admission {
        self.limits.admit(event.ts, self.wall, self.engine.watermark())
    }

    /// Also checks every message with the phrase guard; findings go to the report's `flags`.
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Processes one event unless its id was seen; returns whether it was new. The
    /// clock's outputs for it are left in [`Pipeline::outputs`] until the next call.
    pub fn push(&mut self, event: &Event) -> bool {
        let flags = self.guard.as_ref().map(|g| g.check_event(event));
        self.push_checked(event, flags)
    }

    /// [`Pipeline::push`] with the guard's findings already computed (replay checks text on
    /// its reader thread, so the guard runs beside the clock rather than before it).
    pub fn push_checked(&mut self, event: &Event, flags: Option<Vec<Flag>>) -> bool {
        let hash = id_hash(&event.id);
        let Some(watermark) = self.process(event, hash, flags) else { return false };
        self.remember(hash, event.id.as_str().into(), event.ts, watermark);
        true
    }

    /// [`Pipeline::push_checked`] with the id's [`id_hash`] already computed (by replay's
    /// parser threads). With `give_id`, the event's id moves into the dedup set once the
    /// engine and the report have seen it (leaving `event.id` empty), saving a copy: for a
    /// caller with no further use for it.
    fn push_hashed(&mut self, event: &mut Event, hash: u64, flags: Option<Vec<Flag>>, give_id: bool) -> bool {
        let Some(watermark) = self.process(event, hash, flags) else { return false };
        let id =
            if give_id { std::mem::take(&mut event.id).into_boxed_str() } else { event.id.as_str().into() };
        self.remember(hash, id, event.ts, watermark);
        true
    }

    /// The engine and the report take the event unless its id was seen; `None` for a
    /// duplicate, else the watermark before it (for [`Pipeline::remember`]'s sweep).
    fn process(&mut self, event: &Event, hash: u64, flags: Option<Vec<Flag>>) -> Option<Millis> {
        self.out.clear();
        self.notices.clear();
        self.flags.clear();
        if self.seen.find(hash, |(id, _)| **id == *event.id).is_some() {
            return None;
        }
        // The watermark before this event, as the sweep below has always used it.
        let watermark = self.engine.watermark().max(event.ts);
        self.engine.handle(event, &mut self.out, &mut self.notices);
        self.report.add_event(event);
        self.report.add_outputs(&self.out);
        self.report.add_notices(&self.notices);
        if let Some(flags) = flags {
            self.flags = flags;
            self.report.add_flags(&self.flags);
        }
        Some(watermark)
    }

    /// Records a new event's id. Once a day of event time, ids older than anything still
    /// admitted are dropped.
    fn remember(&mut self, hash: u64, id: Box<str>, ts: Millis, watermark: Millis) {
        self.seen.insert_unique(hash, (id, ts), |(id, _)| id_hash(id));
        if watermark.saturating_sub(self.swept_at) >= SWEEP_EVERY_MS {
            let oldest = watermark.saturating_sub(self.limits.behind_ms);
            self.seen.retain(|(_, ts)| *ts >= oldest);
            self.seen.shrink_to(self.seen.len() * 2, |(id, _)| id_hash(id));
            self.swept_at = watermark;
        }
    }

    /// Ids the dedup set holds now (bounded by event time, not by the history).
    pub fn remembered_ids(&self) -> usize {
        self.seen.len()
    }

    /// The phrase guard's findings for the last event.
    pub fn flags(&self) -> &[Flag] {
        &self.flags
    }

    /// The engine's outputs from the last call.
    pub fn outputs(&self) -> &[Output] {
        &self.out
    }

    /// The alerts that fell due with the last call (every kind the plan has).
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// Ends input: the engine runs on until every session has closed.
    pub fn finish(self) -> (Report, Vec<Output>) {
        let (report, out, _) = self.finish_with_notices();
        (report, out)
    }

    /// [`Pipeline::finish`], also returning the alerts that fell due meanwhile.
    pub fn finish_with_notices(mut self) -> (Report, Vec<Output>, Vec<Notice>) {
        self.out.clear();
        self.notices.clear();
        self.engine.finish(&mut self.out, &mut self.notices);
        self.report.add_outputs(&self.out);
        self.report.add_notices(&self.notices);
        (self.report.build(), self.out, self.notices)
    }
}

/// One line after parsing, as the reader thread hands it over.
struct Parsed {
    /// 1-based line number (within its block, until the main thread adds the block's start).
    number: usize,
    event: Result<Event, event::EventError>,
    /// The event id's [`id_hash`] for the dedup set (0 for a bad line).
    id_hash: u64,
    /// The line itself, kept only when it must be stored (with `--db`, or rejected).
    raw: Option<String>,
    /// The phrase guard's findings, when replay runs with a guard.
    flags: Option<Vec<Flag>>,
}

/// One line's bytes as text: UTF-8, with a BOM on the input's first line taken off
/// (editors on Windows write one).
fn decode_line(bytes: &[u8], first: bool) -> Result<&str, event::EventError> {
    let bytes = if first { bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes) } else { bytes };
    // simdutf8 checks valid text several times faster; std's check names the column of a
    // bad line (and stays the judge should the two ever disagree).
    match simdutf8::basic::from_utf8(bytes) {
        Ok(line) => Ok(line),
        Err(_) => {
            std::str::from_utf8(bytes).map_err(|e| event::EventError::NotUtf8 { column: e.valid_up_to() + 1 })
        }
    }
}

/// Bytes per hand-over from the reader thread (about 4,800 simulated lines), cut after
/// a newline; a longer line makes a longer block.
const BLOCK: usize = 1 << 20;

/// Threads parsing lines (and running the guard) beside the reader and the engine:
/// parsing is most of a replay's work, and two of them keep both cores busy while the
/// main thread runs the engine.
const PARSERS: usize = 2;

/// Whole lines as read, one block of [`BLOCK`] bytes or so: the parser splits them, so
/// the reader thread only copies bytes.
struct Lines {
    data: Vec<u8>,
    /// Whether the block starts the input (its line 1 may begin with a BOM).
    first: bool,
}

/// A block's lines after parsing; each [`Parsed::number`] counts from the block's start.
struct Done {
    /// Lines in the block, blank ones included (where the next block's numbers start).
    lines: usize,
    /// Its non-blank lines.
    parsed: Vec<Parsed>,
}

/// Splits a block into lines (each with its newline; the last one may have none) and
/// parses them, numbered from 1 within the block.
fn parse_block(block: &Lines, keep_raw: bool, guard: Option<&Guard>) -> Done {
    let data = &block.data;
    let mut ends: Vec<usize> = memchr::memchr_iter(b'\n', data).map(|i| i + 1).collect();
    if ends.last().copied().unwrap_or(0) < data.len() {
        ends.push(data.len());
    }
    let mut parsed = Vec::with_capacity(ends.len());
    let mut start = 0;
    for (i, &end) in ends.iter().enumerate() {
        let first = block.first && i == 0;
        if let Some(p) = parse_line(&data[start..end], i + 1, first, keep_raw, guard) {
            parsed.push(p);
        }
        start = end;
    }
    Done { lines: ends.len(), parsed }
}

/// The parsed chunks, in input order: chunk `k` went to parser `k % PARSERS`, so taking
/// one from each parser in turn gives them back in order. Ends when the parser whose
/// turn it is has no more (every later chunk would have been its own or after it).
struct Chunks {
    parsed: Vec<Receiver<Done>>,
    /// Chunks the main thread is done with go back to the parser that made them, to be
    /// dropped there: freeing a few strings per event on the thread that allocated them
    /// is cheaper, and it takes that work off the main thread, the replay's critical path.
    spent: Vec<Sender<Done>>,
    next: usize,
    /// Lines in the blocks already taken: where the next block's line numbers start.
    before: usize,
}

impl Chunks {
    /// The next chunk in input order, with the parser it came from; its line numbers
    /// counted from the start of the input.
    fn next(&mut self) -> Option<(usize, Done)> {
        let parser = self.next % self.parsed.len();
        let mut chunk = self.parsed[parser].recv().ok()?;
        self.next += 1;
        for p in &mut chunk.parsed {
            p.number += self.before;
        }
        self.before += chunk.lines;
        Some((parser, chunk))
    }

    /// Hands a processed chunk back to its parser (or drops it here if that one has ended).
    fn give_back(&self, parser: usize, chunk: Done) {
        let _ = self.spent[parser].send(chunk);
    }
}

/// The reader thread and the parsers, to join after the last chunk.
struct Threads {
    reader: JoinHandle<std::io::Result<()>>,
    parsers: Vec<JoinHandle<()>>,
}

impl Threads {
    /// Waits for every thread: a read error or a panic is the replay's failure (the chunks
    /// stopped early, so the report would be missing lines).
    fn join(self, source: &str) -> Result<(), ReplayError> {
        let parsers_ok = self.parsers.into_iter().map(JoinHandle::join).fold(true, |ok, j| ok & j.is_ok());
        match self.reader.join() {
            Ok(Ok(())) if parsers_ok => Ok(()),
            Ok(Ok(())) => Err(ReplayError::Writer("parser thread panicked".into())),
            Ok(Err(e)) => Err(ReplayError::Read { path: source.into(), source: e }),
            Err(_) => Err(ReplayError::Writer("reader thread panicked".into())),
        }
    }
}

/// One line: decoded, parsed and checked by the guard; `None` for a blank line.
fn parse_line(
    bytes: &[u8],
    number: usize,
    first: bool,
    keep_raw: bool,
    guard: Option<&Guard>,
) -> Option<Parsed> {
    let (line, event) = match decode_line(bytes, first) {
        Ok(line) => (Cow::Borrowed(line), None),
        // Not UTF-8: a bad line like any other, reported with its number and kept
        // (lossily) among the rejected, never the end of the replay.
        Err(e) => (String::from_utf8_lossy(bytes), Some(Err(e))),
    };
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return None;
    }
    let event = event.unwrap_or_else(|| event::parse(line));
    let raw = (keep_raw || event.is_err()).then(|| line.to_string());
    let flags = match (guard, &event) {
        (Some(g), Ok(e)) => Some(g.check_event(e)),
        _ => None,
    };
    let id_hash = event.as_ref().map_or(0, |e| id_hash(&e.id));
    Some(Parsed { number, event, id_hash, raw, flags })
}

/// Reads lines on a thread of its own and parses them on [`PARSERS`] others, so reading,
/// parsing and the engine overlap.
fn spawn_reader(
    mut input: impl BufRead + Send + 'static,
    keep_raw: bool,
    guard: Option<Guard>,
) -> (Chunks, Threads) {
    let guard = guard.map(std::sync::Arc::new);
    let mut to_parsers = Vec::with_capacity(PARSERS);
    let mut parsed = Vec::with_capacity(PARSERS);
    let mut spent = Vec::with_capacity(PARSERS);
    let mut parsers = Vec::with_capacity(PARSERS);
    for _ in 0..PARSERS {
        let (tx, rx) = sync_channel::<Lines>(2);
        let (out, back) = sync_channel::<Done>(2);
        // Unbounded: the main thread must never wait on it (the parser may be waiting for
        // the main thread to take a chunk); each parser drops what came back before each
        // new chunk, so it holds a chunk or two at most.
        let (done_tx, done_rx) = channel::<Done>();
        let guard = guard.clone();
        parsers.push(std::thread::spawn(move || {
            for chunk in rx {
                while let Ok(spent) = done_rx.try_recv() {
                    drop(spent);
                }
                if out.send(parse_block(&chunk, keep_raw, guard.as_deref())).is_err() {
                    return;
                }
            }
            // Input has ended: the main thread learns it (from `out` closing), then drop
            // the last chunks as it finishes them.
            drop(out);
            for spent in done_rx {
                drop(spent);
            }
        }));
        to_parsers.push(tx);
        parsed.push(back);
        spent.push(done_tx);
    }
    let reader = std::thread::spawn(move || {
        // The part line at the end of the last block, which starts the next one.
        let mut carry = Vec::new();
        for k in 0.. {
            let mut data = Vec::with_capacity(carry.len() + BLOCK);
            data.append(&mut carry);
            let mut end = false;
            loop {
                // Fewer bytes than asked for: the input has ended.
                if (&mut input).take(BLOCK as u64).read_to_end(&mut data)? < BLOCK {
                    end = true;
                    break;
                }
                if memchr::memrchr(b'\n', &data).is_some() {
                    break;
                }
            }
            if !end {
                let cut = memchr::memrchr(b'\n', &data).map_or(data.len(), |i| i + 1);
                carry = data.split_off(cut);
            }
            if !data.is_empty() && to_parsers[k % PARSERS].send(Lines { data, first: k == 0 }).is_err() {
                break;
            }
            if end {
                break;
            }
        }
        Ok(())
    });
    (Chunks { parsed, spent, next: 0, before: 0 }, Threads { reader, parsers })
}

/// Runs the clock over JSONL from `input`; `source` names it in messages.
pub fn replay(
    input: impl BufRead + Send + 'static,
    source: &str,
    rules: ResponseRules,
    db: Option<&Path>,
) -> Result<(Report, InputStats), ReplayError> {
    replay_with_guard(input, source, rules, None, db)
}

/// [`replay`], also checking every message with the phrase guard when one is given
/// (findings in the report's `flags`, and in the `flags` table with `db`).
pub fn replay_with_guard(
    input: impl BufRead + Send + 'static,
    source: &str,
    rules: ResponseRules,
    guard: Option<Guard>,
    db: Option<&Path>,
) -> Result<(Report, InputStats), ReplayError> {
    replay_with(input, source, rules, Plan::default(), guard, db, true)
}

/// [`replay_with_guard`] with the alert plan `kefu run` uses (`rules/alerts.toml`), so the
/// `alerts` table gets the same warnings, breaches, escalations and resolved notices.
/// Without `keep_waits` the report holds the per-agent days and counts only
/// ([`ReportBuilder::streaming`]): what the table shows, in memory that does not grow
/// with the number of waits; `--json` needs every wait and keeps them.
pub fn replay_with(
    input: impl BufRead + Send + 'static,
    source: &str,
    rules: ResponseRules,
    plan: Plan,
    guard: Option<Guard>,
    db: Option<&Path>,
    keep_waits: bool,
) -> Result<(Report, InputStats), ReplayError> {
    let mut stats = InputStats::default();
    let mut pipeline = Pipeline::with_plan(rules, plan);
    if !keep_waits {
        pipeline = pipeline.streaming();
    }
    let mut writer = db.map(Writer::start).transpose()?;
    let mut batch = Batch::default();
    let (mut chunks, threads) = spawn_reader(input, db.is_some(), guard);
    while let Some((parser, mut chunk)) = chunks.next() {
        for p in &mut chunk.parsed {
            stats.lines += 1;
            let admitted = match &p.event {
                Ok(e) => match pipeline.admit(e) {
                    Admission::Accept => Ok(()),
                    Admission::Reject(reason) => Err(reason),
                },
                Err(e) => Err(e.to_string()),
            };
            if let Err(reason) = admitted {
                let number = p.number;
                stats.rejected.push(Rejected { line: number, reason: reason.clone() });
                if writer.is_some() {
                    batch.rejected.push(RejectedRow {
                        received_at: now_ms(),
                        source: source.to_string(),
                        position: format!("line {number}"),
                        reason,
                        raw: p.raw.take().unwrap_or_default(),
                    });
                }
                continue;
            }
            let Ok(event) = &mut p.event else { continue };
            // Without a database nothing needs the id afterwards: it becomes the dedup
            // set's key as it is.
            if !pipeline.push_hashed(event, p.id_hash, p.flags.take(), writer.is_none()) {
                stats.duplicates += 1;
                continue;
            }
            stats.events += 1;
            if let Some(w) = writer.as_mut() {
                batch.take_outputs(pipeline.outputs(), pipeline.notices());
                let flags =
                    pipeline.flags().iter().map(|f| (f.clone(), crate::guard::store::raw_matched(event, f)));
                batch.flags.extend(flags);
                // Moved out of the chunk (which goes back to its parser to be dropped);
                // the slot left behind is never looked at again.
                let taken = std::mem::replace(&mut p.event, Err(event::EventError::Empty("id")));
                if let Ok(event) = taken {
                    batch.events.push((event, p.raw.take().unwrap_or_default()));
                }
                if batch.events.len() >= BATCH {
                    w.send(std::mem::take(&mut batch))?;
                }
            }
        }
        chunks.give_back(parser, chunk);
    }
    drop(chunks);
    threads.join(source)?;
    let (report, tail, notices) = pipeline.finish_with_notices();
    if let Some(mut w) = writer {
        batch.take_outputs(&tail, &notices);
        w.send(batch)?;
        stats.stored = w.finish()?;
    }
    Ok((report, stats))
}

/// Recomputes the report from every event stored in the database, in stored order.
pub fn report_from_db(store: &Store, rules: ResponseRules) -> Result<Report, ReplayError> {
    report_from_db_with_guard(store, rules, None)
}

/// [`report_from_db`], with the phrase guard's findings when a guard is given.
pub fn report_from_db_with_guard(
    store: &Store,
    rules: ResponseRules,
    guard: Option<Guard>,
) -> Result<Report, ReplayError> {
    let mut pipeline = Pipeline::new(rules);
    if let Some(g) = guard {
        pipeline = pipeline.with_guard(g);
    }
    store.for_each_event(|e| {
        pipeline.push(&e);
    })?;
    Ok(pipeline.finish().0)
}

pub use crate::store::writer::BATCH;

#[derive(Default)]
struct Batch {
    events: Vec<(Event, String)>,
    waits: Vec<Wait>,
    notices: Vec<Notice>,
    rejected: Vec<RejectedRow>,
    /// Guard findings with their raw matched text (kept in the database only).
    flags: Vec<(Flag, String)>,
}

impl Batch {
    fn take_outputs(&mut self, outputs: &[Output], notices: &[Notice]) {
        for o in outputs {
            if let Output::WaitEnded(w) = o {
                self.waits.push(w.clone());
            }
        }
        self.notices.extend_from_slice(notices);
    }
}

struct Writer {
    tx: Option<SyncSender<Batch>>,
    handle: Option<JoinHandle<Result<usize, StoreError>>>,
}

impl Writer {
    fn start(path: &Path) -> Result<Self, ReplayError> {
        let store = Store::open(path)?;
        let (tx, rx) = sync_channel::<Batch>(4);
        let handle = std::thread::spawn(move || write_all(store, rx));
        Ok(Self { tx: Some(tx), handle: Some(handle) })
    }

    fn send(&mut self, batch: Batch) -> Result<(), ReplayError> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        if sent { Ok(()) } else { Err(self.failure()) }
    }

    fn finish(mut self) -> Result<usize, ReplayError> {
        self.tx.take();
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(r)) => Ok(r?),
            _ => Err(ReplayError::Writer("writer thread panicked".into())),
        }
    }

    fn failure(&mut self) -> ReplayError {
        self.tx.take();
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => ReplayError::Store(e),
            _ => ReplayError::Writer("writer thread ended early".into()),
        }
    }
}

fn write_all(mut store: Store, rx: Receiver<Batch>) -> Result<usize, StoreError> {
    let mut stored = 0;
    for batch in rx {
        let tx = store.conn_mut().transaction()?;
        {
            let mut w = BatchWriter::new(&tx)?;
            for (e, body) in &batch.events {
                stored += usize::from(w.event(e, body)?);
            }
            w.waits(&batch.waits)?;
            w.alerts(batch.notices)?;
            w.flags(&batch.flags)?;
            for r in &batch.rejected {
                w.rejected(r)?;
            }
        }
        tx.commit()?;
    }
    Ok(stored)
}

/// Upserts finished waits (a replay of the same events writes the same rows).
pub fn save_waits(conn: &rusqlite::Connection, waits: &[Wait]) -> Result<(), StoreError> {
    BatchWriter::new(conn)?.waits(waits)
}

//! The runtime task: it alone owns the response clock and the store. Each batch of frames
//! goes dedup → clock → persist (events, waits, alerts, rejected frames and the seq, in
//! one transaction) → commit point (the gateway acks it) → alerts handed to the seam.
//! Between frames it sleeps until the clock's next deadline, so a breach fires with no
//! further event. A batch's events are inserted (and their time judged) by the
//! insert-ahead thread ([`super::inserter`]) on the same connection and transaction,
//! while this task processes the ones it has already found new.
//!
//! With the assist parts on ([`super::assist`]) every new message also goes through the
//! phrase guard (flags stored in the same transaction, a critical one alerted through the
//! same path) and the robot (its hits and misses stored in the same transaction, its
//! frames sent after the commit); the wakeup is the earliest of the clock's deadline, the
//! robot's next rescue and the nightly job's next fire.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use super::alert::AlertSeam;
use super::assist::{Assistant, NightlyJob, Sets};
use super::inserter::{self, Judge, Rows, Stored, Verdict, Verdicts};
use super::{LiveConfig, LiveCounters};
use crate::alerts::plan::Disposition;
use crate::alerts::{Kind, Notice, Plan};
use crate::engine::snapshot::{self, Snapshot};
use crate::engine::{Engine, Output, TimeLimits, Wait};
use crate::event::Event;
use crate::gateway::{Incoming, SendHandle};
use crate::privacy::mask_id;
use crate::replies::ops;
use crate::replies::robot::RobotAction;
use crate::rules::response_time::ResponseRules;
use crate::scoring::job::{self as scoring_job, JobError};
use crate::scoring::sheet::Sheet;
use crate::store::{BatchWriter, RejectedRow, Store, StoreError, snapshots};
use crate::time::Millis;

/// The `meta` key holding the last seq committed (the resume point).
pub use crate::store::LAST_SEQ_KEY;

/// Frames per transaction at most: replay's batch, so a backlog after an outage is stored
/// as fast as a replay stores it (the batch used to be half of replay's, and its commits
/// cost a live backlog twice what they cost replay; docs/benchmarks.md).
pub use crate::store::writer::BATCH;

/// The live writer's SQLite page cache, KiB (see [`Runtime::open`]).
pub const LIVE_CACHE_KIB: u32 = 8 * 1024;

/// Bytes of a rejected frame kept in the `rejected` table (as the gateway keeps).
const REJECTED_RAW_BYTES: usize = 4096;

/// Runtime failures: only the database can fail; bad frames are data, not errors.
#[derive(Debug, Error)]
pub enum LiveError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An SQLite statement failed.
    #[error("database")]
    Sql(#[from] rusqlite::Error),
    /// The commit hook refused the batch (cluster mode: another worker owns the partition,
    /// or the results log cannot be written); nothing of the batch is committed.
    #[error("committing the batch to the shared results")]
    Hook(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The insert-ahead thread could not be started.
    #[error("starting the insert thread")]
    Thread(#[source] std::io::Error),
    /// The insert-ahead thread stopped without a verdict for every event (it panicked);
    /// nothing of the batch is committed.
    #[error("the insert thread stopped in the middle of a batch")]
    Inserter,
}

/// What a batch's frames brought, before the rows the engine and the robot decided.
#[derive(Default)]
struct Ingested {
    /// The highest seq that may be acked.
    max_seq: Option<u64>,
    /// At least one new event was processed.
    accepted: bool,
    /// Answers to `replies.*` requests, sent after the commit.
    answers: Vec<serde_json::Value>,
    /// Frames and events kept as rejected input, in order.
    rejected: Vec<RejectedRow>,
    /// What the insert thread stored of the runtime's rows (the rest is stored after).
    stored: Stored,
}

impl Ingested {
    /// Keeps a frame or event of the websocket as rejected input, and counts it.
    fn reject(
        &mut self,
        received_at: Millis,
        position: String,
        reason: String,
        raw: String,
        c: &LiveCounters,
    ) {
        self.rejected.push(RejectedRow { received_at, source: "websocket".into(), position, reason, raw });
        c.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// A committed batch: what to publish and send now.
struct Done {
    /// The new resume point, when the batch moved it.
    advanced: Option<u64>,
    /// The new alerts to send.
    send: Vec<Notice>,
    /// The robot's actions (its frames are spoken now).
    actions: Vec<RobotAction>,
    /// Answers to `replies.*` requests.
    answers: Vec<serde_json::Value>,
}

/// What one transaction stores, handed to a [`CommitHook`] before the commit.
#[derive(Debug, Default)]
pub struct Committed {
    /// The highest seq of the batch, when it moves the resume point.
    pub seq: Option<u64>,
    /// The JSON of each new event (duplicates left out), in order.
    pub events: Vec<String>,
    /// The waits that ended.
    pub waits: Vec<Wait>,
    /// The alerts recorded for the first time (stale ones included).
    pub alerts: Vec<Notice>,
    /// Input that was not a valid event.
    pub rejected: Vec<RejectedRow>,
    /// The snapshot stored in this transaction, if one was due (its `position` is the
    /// local store's; the cluster stores it at the batch's `seq` instead).
    pub snapshot: Option<Snapshot>,
}

/// Called with what a transaction stores, after the writer's statements and before the
/// commit: an error rolls the batch back and stops the runtime. The cluster mode appends
/// the batch to the shared results log here, fenced (`crate::cluster::results`), so a
/// batch is acked, and its alerts sent, only once it is in the log.
pub trait CommitHook: Send {
    /// Stores `batch` elsewhere, or refuses it.
    fn before_commit(&mut self, batch: &Committed) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// The engine and what it decided since the last persist, apart from the store so a
/// transaction on the store and the engine can be used together.
struct State {
    engine: Engine,
    limits: TimeLimits,
    out: Vec<Output>,
    waits: Vec<Wait>,
    notices: Vec<Notice>,
    /// The console's board: told every event and output, handed them after each commit.
    board: Option<crate::console::BoardFeed>,
}

impl State {
    fn new(rules: ResponseRules, plan: Plan, limits: TimeLimits) -> Self {
        Self {
            engine: Engine::new(rules, plan),
            limits,
            out: Vec::new(),
            waits: Vec::new(),
            notices: Vec::new(),
            board: None,
        }
    }

    /// Processes one accepted event by its own time; the sessions it closed or opened are
    /// left in `out` for the robot until [`State::settle`].
    fn handle(&mut self, event: &Event) {
        let from = self.out.len();
        self.engine.handle(event, &mut self.out, &mut self.notices);
        if let Some(b) = self.board.as_mut() {
            b.event(event);
            self.out[from..].iter().for_each(|o| b.output(o));
        }
    }

    /// Moves the finished waits out of the engine's outputs (for the store).
    fn settle(&mut self) {
        for o in self.out.drain(..) {
            if let Output::WaitEnded(w) = o {
                self.waits.push(w);
            }
        }
    }

    /// The wall clock says `now` and no frame is waiting: alert timers due before it
    /// fire. Nothing stored changes (see `docs/protocol.md`, "Time").
    fn alert_until(&mut self, now: Millis) {
        let from = self.out.len();
        self.engine.alert_until(now, &mut self.out, &mut self.notices);
        if let Some(b) = self.board.as_mut() {
            self.out[from..].iter().for_each(|o| b.output(o));
        }
        self.settle();
    }

    /// When the next alert timer falls due (it fires strictly after this instant).
    fn next_due(&self) -> Option<Millis> {
        self.engine.next_alert_due()
    }
}

/// The nightly job's schedule and the run in flight.
struct Nightly {
    job: NightlyJob,
    schedule: cron::Schedule,
    /// When it next runs (at start: at once, to catch up).
    next: Millis,
    /// The run in flight: the instant it is for, and its result to come.
    running: Option<(Millis, oneshot::Receiver<Result<scoring_job::Outcome, JobError>>)>,
    /// A due day was left for later: run again once the watermark reaches this instant
    /// (the day's end + the session idle time).
    settle_at: Option<Millis>,
}

impl Nightly {
    /// Scores with `sheet` from the next run on (a run in flight keeps its own); a new
    /// `cron` moves the next fire.
    fn set_sheet(&mut self, sheet: Sheet, now: Millis) {
        if sheet.cron != self.job.sheet.cron {
            match scoring_job::schedule(&sheet.cron) {
                Ok(schedule) => {
                    // A run already due (the catch-up at start) still runs.
                    if self.next > now {
                        self.next = scoring_job::next_fire(&schedule, now).unwrap_or(Millis::MAX);
                    }
                    self.schedule = schedule;
                    info!(cron = %sheet.cron, next = %crate::time::display_shanghai(self.next), "nightly scoring: new schedule");
                }
                Err(e) => {
                    warn!(error = %e, "nightly scoring: new cron refused, the old schedule stays");
                    return;
                }
            }
        }
        self.job.sheet = sheet;
    }
}

/// The live runtime (see the module doc).
pub struct Runtime {
    store: Store,
    state: State,
    assistant: Assistant,
    sends: Option<SendHandle>,
    updates: Option<watch::Receiver<Sets>>,
    nightly: Option<Nightly>,
    config: LiveConfig,
    seam: Box<dyn AlertSeam>,
    counters: Arc<LiveCounters>,
    committed: watch::Sender<Option<u64>>,
    last_seq: Option<u64>,
    gauges_at: Option<Instant>,
    /// The stream is live (its newest event was recent when it arrived): the wall clock
    /// may make alerts fall due. While catching up, only event times count.
    live: bool,
    /// The gateway's counters: a disconnect since the stream was found live ends it (what
    /// was in flight is unknown until the resumed stream shows it).
    gateway: Option<Arc<crate::gateway::GatewayCounters>>,
    /// Disconnects counted when `live` was last set.
    live_disconnects: u64,
    /// When the last snapshot was stored (engine time), and events stored since.
    snapshot_at: Millis,
    since_snapshot: u64,
    /// Sees every transaction before its commit (cluster mode).
    hook: Option<Box<dyn CommitHook>>,
    /// What the hook is shown (filled only with a hook).
    batch: Committed,
    /// The last batch's frames, freed while the next batch's events are inserted.
    spent: Vec<Incoming>,
}

impl Runtime {
    /// Rebuilds the clock from the stored events (no alert is re-sent: the ones already
    /// due are in the `alerts` table) and returns the runtime with the commit point the
    /// gateway resumes after and acks.
    pub fn open(
        store: Store,
        mut config: LiveConfig,
        seam: Box<dyn AlertSeam>,
        counters: Arc<LiveCounters>,
    ) -> Result<(Self, watch::Receiver<Option<u64>>), LiveError> {
        // The store opens with replay's 64 MiB page cache (its bulk insert of ids in random
        // order needs it); the live writer commits small batches and keeps a smaller one,
        // which is most of its memory with many conversations open (docs/benchmarks.md).
        store.conn().execute_batch(&format!("PRAGMA cache_size = -{LIVE_CACHE_KIB}"))?;
        let mut state = State::new(config.rules.clone(), config.plan, config.limits);
        state.board = config.board.take();
        // The runtime keeps what it built from these, not the sets themselves: a reload
        // must not leave the first set alive.
        let assist = std::mem::take(&mut config.assist);
        let mut assistant = Assistant::new(&assist);
        let started = std::time::Instant::now();
        let from = restore(&store, &config, &mut state, &mut assistant)?;
        let restored = started.elapsed();
        let mut tail = 0u64;
        let bad = store.for_each_event_after(from, |e| {
            tail += 1;
            state.handle(&e);
            assistant.rebuild(&e, &state.out);
            // Everything these decided is stored already: the waits, the alerts.
            state.out.clear();
            state.notices.clear();
        })?;
        let processed = started.elapsed();
        let now = config.time.now_ms();
        if tail >= config.snapshots.every_events.saturating_mul(2) {
            // A long rebuild (an upgrade, no readable snapshot): the next restart need not
            // do this again, whenever it comes. Not for a tail the regular policy leaves
            // (about `every_events`, the batch that reached it included): storing it would
            // hold up the first ack longer than the restart itself, and the policy stores
            // the next one within `every_ms` or `every_events` anyway.
            let tx = store.conn().unchecked_transaction()?;
            take_snapshot(&tx, &state, &assistant, now, false)?;
            tx.commit()?;
        }
        let snapshotted = started.elapsed();
        assistant.skip_to(config.time.now_ms());
        if let Some(b) = state.board.as_mut() {
            b.commit(config.time.now_ms());
        }
        let nightly = match &assist.nightly {
            None => None,
            Some(job) => match scoring_job::schedule(&job.sheet.cron) {
                Ok(schedule) => Some(Nightly {
                    job: job.clone(),
                    schedule,
                    next: config.time.now_ms(),
                    running: None,
                    settle_at: None,
                }),
                Err(e) => {
                    warn!(error = %e, "nightly scoring off: bad schedule");
                    None
                }
            },
        };
        let updates = assist.updates;
        // Everything these outputs say is already stored; what falls due from now on is
        // decided by the first tick.
        state.waits.clear();
        state.notices.clear();
        // A resume point outside the seq rule (stored by an older kefu that took any seq) would
        // make a compliant platform send nothing: start over instead, duplicates are harmless.
        let last_seq = store
            .meta(LAST_SEQ_KEY)?
            .and_then(|s| s.parse().ok())
            .filter(|&s| crate::gateway::protocol::check_seq(s, None).is_ok());
        if bad > 0 {
            warn!(bad, "stored events that no longer parse were skipped");
        }
        info!(
            last_seq = ?last_seq,
            after_snapshot = tail,
            pending = state.engine.clock().pending_waits(),
            restore_ms = restored.as_millis() as u64,
            tail_ms = (processed - restored).as_millis() as u64,
            snapshot_ms = (snapshotted - processed).as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "runtime rebuilt from the store"
        );
        let (committed, rx) = watch::channel(last_seq);
        if let Some(seq) = last_seq {
            counters.last_seq.store(seq, Ordering::Relaxed);
        }
        let runtime = Self {
            store,
            state,
            assistant,
            sends: None,
            updates,
            nightly,
            config,
            seam,
            counters,
            committed,
            last_seq,
            gauges_at: None,
            live: false,
            gateway: None,
            live_disconnects: 0,
            snapshot_at: now,
            since_snapshot: 0,
            hook: None,
            batch: Committed::default(),
            spent: Vec::new(),
        };
        Ok((runtime, rx))
    }

    /// What a snapshot taken now would hold (the engine's and the robot's state, covering
    /// every event stored): what a restart must reproduce.
    pub fn snapshot(&self) -> Result<Snapshot, LiveError> {
        let position = snapshots::last_position(self.store.conn())?;
        Ok(Snapshot {
            position: u64::try_from(position).unwrap_or(0),
            engine: self.state.engine.state(),
            robot: self.assistant.robot_state(),
        })
    }

    /// Reads the gateway's connection counters: the wall clock alerts only while connected
    /// since the stream was found live.
    pub fn with_gateway(mut self, counters: Arc<crate::gateway::GatewayCounters>) -> Self {
        self.gateway = Some(counters);
        self
    }

    fn disconnects(&self) -> u64 {
        self.gateway.as_ref().map_or(0, |g| g.disconnects.load(Ordering::Relaxed))
    }

    /// Whether the wall clock may make alerts fall due now (see `docs/protocol.md`, "Time").
    fn wall_alerts(&self) -> bool {
        self.live && self.disconnects() == self.live_disconnects
    }

    /// Shows every transaction to `hook` before its commit (see [`CommitHook`]).
    pub fn with_hook(mut self, hook: Box<dyn CommitHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Sends the robot's frames and the answers to `replies.*` requests through `sends`
    /// (without it, the robot decides and records but nothing is sent).
    pub fn with_sends(mut self, sends: SendHandle) -> Self {
        self.sends = Some(sends);
        self
    }

    /// When something is next due: the next alert timer while the stream is live (it
    /// fires strictly after its instant), the robot's next rescue, the nightly job.
    fn next_due(&self) -> Option<Millis> {
        let nightly = self.nightly.as_ref().filter(|n| n.running.is_none()).map(|n| n.next);
        let alert = self.state.next_due().filter(|_| self.wall_alerts()).map(|d| d.saturating_add(1));
        [alert, self.assistant.next_due(), nightly].into_iter().flatten().min()
    }

    /// Runs until the frame channel closes (the gateway stopped), then returns.
    pub async fn run(mut self, mut frames: mpsc::Receiver<Incoming>) -> Result<(), LiveError> {
        let mut buf = Vec::with_capacity(BATCH);
        let mut updates = self.updates.take();
        loop {
            let due = self.next_due();
            let wake = due.map(|d| self.config.time.instant_at(d));
            let job = self.nightly.as_mut().and_then(|n| n.running.as_mut().map(|r| &mut r.1));
            tokio::select! {
                biased;
                // A reloaded rule set first: frames already queued when it was published are
                // handled under it (the console's auto-answer serves the next buyer, even
                // when the runtime was busy while the set was loaded). Sets are rare.
                changed = async { match updates.as_mut() { Some(u) => u.changed().await, None => std::future::pending().await } } => {
                    match (changed, updates.as_mut()) {
                        (Ok(()), Some(u)) => {
                            let sets = u.borrow_and_update().clone();
                            self.assistant.set(&sets);
                            if *self.state.engine.clock().rules() != sets.response {
                                info!(tiers = sets.response.tiers.len(), "response-time rule reloaded: new waits use it");
                                self.state.engine.set_rules(sets.response.clone());
                            }
                            let now = self.config.time.now_ms();
                            if let Some(n) = self.nightly.as_mut() {
                                n.set_sheet(sets.scoring.clone(), now);
                            }
                        }
                        _ => updates = None,
                    }
                }
                n = frames.recv_many(&mut buf, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.process(&mut buf, frames.is_empty())?;
                }
                result = async { match job { Some(rx) => rx.await, None => std::future::pending().await } } => {
                    let result = result.unwrap_or_else(|_| {
                        Err(JobError::Sheet(crate::rules::DataError::at("scoring", None, "the job's thread stopped")))
                    });
                    self.nightly_finished(result)?;
                }
                () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                    let now = self.config.time.now_ms().max(due.unwrap_or(Millis::MIN));
                    self.tick(now)?;
                }
            }
        }
        self.gauges(true);
        Ok(())
    }

    /// Starts the nightly job if it is due, on its own connection off the runtime's
    /// thread: scoring a day reads every event of it, which must not hold up frames.
    fn start_nightly(&mut self, now: Millis) {
        let Some(n) = self.nightly.as_mut().filter(|n| n.running.is_none() && n.next <= now) else { return };
        n.next = scoring_job::next_fire(&n.schedule, now).unwrap_or(Millis::MAX);
        let job = n.job.clone();
        // Only days every session of which has closed by event time are scored (see
        // `scoring::job::settled_days`); the rest wait for a later run.
        let settled =
            self.state.engine.watermark().saturating_sub(self.state.engine.clock().rules().idle_close_ms);
        let (tx, rx) = oneshot::channel();
        n.running = Some((now, rx));
        info!(next = %crate::time::display_shanghai(n.next), "nightly scoring: running what is due");
        tokio::task::spawn_blocking(move || {
            let result = Store::open(&job.db).map_err(JobError::from).and_then(|mut store| {
                scoring_job::run_due_settled(&mut store, &job.sheet, job.reports.as_deref(), now, settled)
            });
            let _ = tx.send(result);
        });
    }

    /// The nightly job finished: its summary becomes a `summary` alert.
    fn nightly_finished(&mut self, result: Result<scoring_job::Outcome, JobError>) -> Result<(), LiveError> {
        let Some((at, _)) = self.nightly.as_mut().and_then(|n| n.running.take()) else { return Ok(()) };
        if let (Ok(out), Some(n)) = (&result, self.nightly.as_mut())
            && let Some(first) = out.deferred.first()
        {
            // Run again as soon as event time has passed the day's end by the idle time.
            let end = first.succ_opt().map_or(Millis::MAX, crate::time::shanghai_midnight);
            let settle_at = end.saturating_add(self.state.engine.clock().rules().idle_close_ms);
            if self.state.engine.watermark() >= settle_at {
                // Events that settle it arrived while the job ran.
                n.next = n.next.min(self.config.time.now_ms());
            } else {
                n.settle_at = Some(settle_at);
            }
            info!(day = %first, days = out.deferred.len(), "nightly scoring: a day's last sessions are still open by event time; scored once they close");
        }
        match result {
            Err(e) => warn!(error = %e, "nightly scoring failed; it runs again at the next fire"),
            Ok(out) if out.days.is_empty() => info!("nightly scoring: nothing due"),
            Ok(out) => {
                info!(days = out.days.len(), months = ?out.months, events = out.events, "nightly scoring done");
                if !out.summary.is_empty() {
                    self.state.notices.push(Notice::summary("scoring", at, &out.summary));
                    let now = self.config.time.now_ms();
                    let tx = self.store.conn_mut().transaction()?;
                    let batch = self.hook.is_some().then_some(&mut self.batch);
                    let w = BatchWriter::new(&tx)?;
                    let (send, _) =
                        persist(&w, Stored::default(), &mut self.state, None, &self.counters, now, batch)?;
                    drop(w);
                    run_hook(&mut self.hook, &mut self.batch, None)?;
                    tx.commit()?;
                    self.deliver(send);
                }
            }
        }
        Ok(())
    }

    /// Processes a batch of frames in one transaction, then publishes the commit point
    /// and hands the new alerts over. `quiet`: no further frame is waiting, so the wall
    /// clock may make alerts fall due (while frames wait, only their times count).
    ///
    /// The transaction is begun by hand, not as rusqlite's `Transaction`: the insert-ahead
    /// thread ([`super::inserter`]) writes the events into it on this connection, which a
    /// borrowed `Transaction` cannot lend to another thread. A failure rolls it back.
    fn process(&mut self, items: &mut Vec<Incoming>, quiet: bool) -> Result<(), LiveError> {
        self.store.conn().execute_batch("BEGIN")?;
        let done = match self.process_in_tx(items, quiet) {
            Ok(done) => done,
            Err(e) => {
                // Nothing of the batch stays (and nothing is acked); the runtime stops.
                let _ = self.store.conn().execute_batch("ROLLBACK");
                return Err(e);
            }
        };
        if let Some(seq) = done.advanced {
            self.last_seq = Some(seq);
            self.counters.last_seq.store(seq, Ordering::Relaxed);
            self.committed.send_replace(self.last_seq);
        }
        self.deliver(done.send);
        self.speak(&done.actions);
        for a in done.answers {
            self.send_frame(a.to_string());
        }
        self.gauges(false);
        Ok(())
    }

    /// [`Runtime::process`] inside its transaction, up to and including the commit.
    fn process_in_tx(&mut self, items: &mut Vec<Incoming>, quiet: bool) -> Result<Done, LiveError> {
        let now = self.config.time.now_ms();
        let disconnects = self.disconnects();
        let Ingested { max_seq, accepted, answers, rejected, stored } = self.ingest(items, now)?;
        let conn = self.store.conn();
        let w = BatchWriter::new(conn)?;
        for row in &rejected {
            w.rejected(row)?;
        }
        if self.hook.is_some() {
            self.batch.rejected.extend(rejected);
        }
        if accepted {
            self.live = self.state.limits.is_live(self.state.engine.watermark(), now);
            self.live_disconnects = disconnects;
            let watermark = self.state.engine.watermark();
            if let Some(n) = self.nightly.as_mut().filter(|n| n.settle_at.is_some_and(|t| watermark >= t)) {
                n.settle_at = None;
                n.next = n.next.min(now);
            }
        }
        if quiet && self.live && disconnects == self.live_disconnects {
            self.state.alert_until(now);
        }
        self.assistant.advance(now);
        let batch = self.hook.is_some().then_some(&mut self.batch);
        let (send, actions) =
            persist(&w, stored, &mut self.state, Some(&mut self.assistant), &self.counters, now, batch)?;
        let advanced = max_seq.filter(|&s| Some(s) > self.last_seq);
        if let Some(seq) = advanced {
            w.resume_point(seq)?;
        }
        drop(w);
        let policy = self.config.snapshots;
        if accepted
            && (self.since_snapshot >= policy.every_events || now - self.snapshot_at >= policy.every_ms)
        {
            // In the batch's transaction: the snapshot covers exactly the events stored.
            let owned = self.hook.is_some();
            let snap = take_snapshot(conn, &self.state, &self.assistant, now, owned)?;
            if owned {
                self.batch.snapshot = snap;
            }
            self.snapshot_at = now;
            self.since_snapshot = 0;
        }
        run_hook(&mut self.hook, &mut self.batch, advanced)?;
        conn.execute_batch("COMMIT")?;
        Ok(Done { advanced, send, actions, answers })
    }

    /// Takes the batch's frames in order: the insert-ahead thread stores the events (and
    /// judges their time) on the store's connection while this thread runs the engine,
    /// the guard and the robot over each event it has found new (see [`super::inserter`]).
    fn ingest(&mut self, items: &mut Vec<Incoming>, now: Millis) -> Result<Ingested, LiveError> {
        let received_at = crate::time::now_ms();
        let judge = Judge { limits: self.state.limits, now, watermark: self.state.engine.watermark() };
        let hooked = self.hook.is_some();
        let mut got = Ingested::default();
        // The new events' places, so the hook can take their bodies afterwards.
        let mut new = Vec::new();
        let Self { store, state, assistant, counters: c, since_snapshot, spent, batch, .. } = self;
        let conn = store.conn_mut();
        let frames: &[Incoming] = items;
        let (tx, rx) = std::sync::mpsc::channel();
        let (rows_tx, rows_rx) = std::sync::mpsc::channel();
        got.stored = std::thread::scope(|s| {
            let thread = std::thread::Builder::new()
                .name("kefu-insert".into())
                .spawn_scoped(s, move || inserter::insert_ahead(conn, frames, &judge, &tx, &rows_rx))
                .map_err(LiveError::Thread)?;
            let mut verdicts = Verdicts::new(rx);
            // The last batch's frames are freed here, while the thread inserts: not
            // between batches, when the store's connection would wait for it.
            spent.clear();
            let mut failed = None;
            let mut unsent = 0;
            for (i, item) in frames.iter().enumerate() {
                match item {
                    Incoming::Event { seq, event, body } => {
                        got.max_seq = got.max_seq.max(Some(*seq));
                        let verdict = match verdicts.next() {
                            Ok(v) => v,
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        };
                        match verdict {
                            Verdict::Rejected(reason) => {
                                warn!(seq, reason = %reason, "event rejected: its time is not believable");
                                let raw =
                                    crate::gateway::protocol::truncate(body, REJECTED_RAW_BYTES).to_string();
                                got.reject(received_at, format!("seq {seq}"), reason, raw, c);
                            }
                            Verdict::Duplicate => {
                                c.duplicates.fetch_add(1, Ordering::Relaxed);
                            }
                            Verdict::New => {
                                c.events.fetch_add(1, Ordering::Relaxed);
                                *since_snapshot += 1;
                                if hooked {
                                    new.push(i);
                                }
                                got.accepted = true;
                                let from = state.out.len();
                                state.handle(event);
                                assistant.event(event, &state.out[from..], now);
                                state.settle();
                                unsent += 1;
                                if unsent == inserter::CHUNK {
                                    // To the insert thread, which stores them once the
                                    // batch's events are in (if it stopped, the join says why).
                                    let rows =
                                        take_rows(state, Some(assistant), c, hooked.then_some(&mut *batch));
                                    let _ = rows_tx.send(rows);
                                    unsent = 0;
                                }
                            }
                        }
                    }
                    Incoming::Rejected(r) => {
                        // A seq that broke the seq rule is kept, never acked.
                        got.max_seq = got.max_seq.max(r.ack_seq());
                        let position = r.seq.map_or_else(|| "seq ?".to_string(), |s| format!("seq {s}"));
                        got.reject(received_at, position, r.reason.clone(), r.raw.clone(), c);
                    }
                    Incoming::Other(request) => {
                        if let Some(replies) = assistant.replies() {
                            got.answers.extend(ops::handle_op(replies, request));
                        }
                    }
                }
            }
            // Stops the thread at its next chunk if this side gave up early, and ends its
            // rows: what the batch's end decides, the runtime stores itself.
            drop(verdicts);
            drop(rows_tx);
            let joined = thread.join();
            match (failed, joined) {
                (None, Ok(Ok(stored))) => Ok(stored),
                (Some(Some(e)), _) | (None, Ok(Err(e))) => Err(LiveError::Store(e)),
                (_, Err(_)) | (Some(None), Ok(_)) => Err(LiveError::Inserter),
            }
        })?;
        if hooked {
            for i in new {
                if let Incoming::Event { body, .. } = &mut items[i] {
                    self.batch.events.push(std::mem::take(body));
                }
            }
        }
        // Freed at the next batch (above); `items` takes the empty buffer.
        std::mem::swap(items, &mut self.spent);
        Ok(got)
    }

    /// Sends the robot's frames (after the commit that recorded them).
    fn speak(&self, actions: &[RobotAction]) {
        let Some(sends) = &self.sends else { return };
        for a in actions.iter().filter(|a| a.is_said()) {
            if let Some(frame) = ops::action_frame(a, &sends.next_id()) {
                self.send_frame(frame.to_string());
            }
        }
    }

    fn send_frame(&self, frame: String) {
        let Some(sends) = &self.sends else { return };
        if let Err(e) = sends.send_frame(frame) {
            // The queue holds 1024 frames; full means the platform is gone for a while,
            // and a robot answer that late would be wrong anyway.
            warn!(error = %e, "robot frame dropped");
        }
    }

    /// Lets time pass with no frame: deadlines fire, idle sessions close.
    fn tick(&mut self, now: Millis) -> Result<(), LiveError> {
        self.start_nightly(now);
        if self.wall_alerts() {
            self.state.alert_until(now);
        }
        self.assistant.advance(now);
        if self.state.waits.is_empty() && self.state.notices.is_empty() && self.assistant.actions.is_empty() {
            return Ok(());
        }
        let tx = self.store.conn_mut().transaction()?;
        let w = BatchWriter::new(&tx)?;
        let batch = self.hook.is_some().then_some(&mut self.batch);
        let (send, actions) = persist(
            &w,
            Stored::default(),
            &mut self.state,
            Some(&mut self.assistant),
            &self.counters,
            now,
            batch,
        )?;
        drop(w);
        run_hook(&mut self.hook, &mut self.batch, None)?;
        tx.commit()?;
        self.deliver(send);
        self.speak(&actions);
        self.gauges(false);
        Ok(())
    }

    /// After a commit: the new alerts go to the seam, and the board gets the batch.
    fn deliver(&mut self, notices: Vec<Notice>) {
        if let Some(b) = self.state.board.as_mut() {
            notices.iter().for_each(|n| b.notice(n));
            b.commit(self.config.time.now_ms());
        }
        for n in notices {
            self.counters.alerts_sent.fetch_add(1, Ordering::Relaxed);
            info!(
                agent = %n.agent,
                conversation = %n.conversation,
                buyer = %mask_id(&n.customer),
                wait_ms = n.waited_ms,
                deadline_ms = n.deadline_ms,
                kind = n.kind.as_str(),
                "alert"
            );
            self.seam.submit(n);
        }
    }

    /// Refreshes the open-conversation and waiting gauges, at most twice a second
    /// (counting them walks every conversation).
    fn gauges(&mut self, force: bool) {
        let now = Instant::now();
        if !force && self.gauges_at.is_some_and(|t| now.duration_since(t) < Duration::from_millis(500)) {
            return;
        }
        self.gauges_at = Some(now);
        let clock = self.state.engine.clock();
        self.counters.open.store(clock.open_sessions() as u64, Ordering::Relaxed);
        self.counters.waiting.store(clock.pending_waits() as u64, Ordering::Relaxed);
    }
}

/// Loads the newest snapshot that can be read into `state` and `assistant`; returns the
/// last event it covers (`i64::MIN` when none could be used: rebuild from every event).
/// An unreadable snapshot (another kefu version, corrupt) costs a log line, never the
/// start: the events are the truth, a snapshot only a shortcut.
fn restore(
    store: &Store,
    config: &LiveConfig,
    state: &mut State,
    assistant: &mut Assistant,
) -> Result<i64, LiveError> {
    if !config.snapshots.load {
        return Ok(i64::MIN);
    }
    let started = std::time::Instant::now();
    for stored in snapshots::newest_first(store.conn())? {
        let read_ms = started.elapsed().as_millis() as u64;
        let snap = match snapshot::decode(&stored.bytes) {
            Ok(s) => s,
            Err(e) => {
                warn!(position = stored.position, error = %chain(&e), "snapshot ignored: rebuilding from the events");
                continue;
            }
        };
        if i64::try_from(snap.position).ok() != Some(stored.position)
            || !assistant.accepts(snap.robot.is_some())
        {
            warn!(
                position = stored.position,
                "snapshot ignored: it does not match this store or this configuration"
            );
            continue;
        }
        state.engine = Engine::restore(config.rules.clone(), config.plan, snap.engine);
        assistant.restore(snap.robot);
        if let Some(b) = state.board.as_mut() {
            // The board learns who waits now; the events after the snapshot follow.
            for w in state.engine.pending_waits() {
                b.output(&Output::WaitStarted(w.clone()));
            }
        }
        info!(
            position = stored.position,
            bytes = stored.bytes.len(),
            read_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "engine restored from a snapshot"
        );
        return Ok(stored.position);
    }
    Ok(i64::MIN)
}

/// An error with its causes, `a: b: c`, for one log line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Stores a snapshot of the engine and the robot covering every event stored so far, in
/// `tx` (the batch's transaction), and drops the older ones. With `owned` (a commit hook
/// wants the [`Snapshot`] value) the state is copied out first; otherwise it is encoded
/// straight from the engine and the robot (the same bytes) in two passes, one counting the
/// bytes and one writing them into their row: neither a copy of the state nor the bytes
/// are held in memory (with 100,000 conversations open, both were tens of MB).
fn take_snapshot(
    tx: &rusqlite::Connection,
    state: &State,
    assistant: &Assistant,
    now: Millis,
    owned: bool,
) -> Result<Option<Snapshot>, LiveError> {
    let position = snapshots::last_position(tx)?;
    let at = u64::try_from(position).unwrap_or(0);
    let watermark = state.engine.watermark();
    if owned {
        let snap = Snapshot { position: at, engine: state.engine.state(), robot: assistant.robot_state() };
        let bytes = snapshot::encode(&snap);
        snapshots::save(tx, position, snapshot::VERSION, now, watermark, &bytes)?;
        info!(position, bytes = bytes.len(), "snapshot stored");
        return Ok(Some(snap));
    }
    let (engine, robot) = (&state.engine, assistant.robot());
    let len = snapshot::encoded_len(at, engine, robot);
    snapshots::save_streamed(tx, position, snapshot::VERSION, now, watermark, len, |w| {
        snapshot::write_ref(at, engine, robot, w)
    })?;
    info!(position, bytes = len, "snapshot stored");
    Ok(None)
}

/// Runs the hook on the batch gathered since the last commit, then forgets the batch.
fn run_hook(
    hook: &mut Option<Box<dyn CommitHook>>,
    batch: &mut Committed,
    seq: Option<u64>,
) -> Result<(), LiveError> {
    let Some(hook) = hook.as_mut() else { return Ok(()) };
    batch.seq = seq;
    let result = hook.before_commit(batch).map_err(LiveError::Hook);
    *batch = Committed::default();
    result
}

/// Stores what was decided and is not stored yet (a batch's end, a tick, the nightly
/// summary; `assistant` is `None` where only the engine's part can be pending) after what
/// the insert thread `stored`, in the caller's transaction, then accounts for all of it.
/// Returns the alerts to send (new and not stale) and the robot's actions to send, both
/// once the transaction commits.
fn persist(
    w: &BatchWriter<'_>,
    mut stored: Stored,
    state: &mut State,
    mut assistant: Option<&mut Assistant>,
    c: &LiveCounters,
    now: Millis,
    mut batch: Option<&mut Committed>,
) -> Result<(Vec<Notice>, Vec<RobotAction>), LiveError> {
    stored.store(w, take_rows(state, assistant.as_deref_mut(), c, batch.as_deref_mut()))?;
    let actions = match assistant {
        Some(a) => {
            let (actions, n) = a.take_sends();
            c.robot_sent.fetch_add(n.robot_sent, Ordering::Relaxed);
            c.robot_other.fetch_add(n.robot_other, Ordering::Relaxed);
            actions
        }
        None => Vec::new(),
    };
    Ok((account(stored, state, c, now, batch), actions))
}

/// Takes what is to be stored off the state (and the assistant's part: the guard's alerts
/// join the clock's, same dedup, same staleness rule). The board is told the findings, the
/// hook's batch gets the waits, the robot's hits and misses are counted.
fn take_rows(
    state: &mut State,
    assistant: Option<&mut Assistant>,
    c: &LiveCounters,
    batch: Option<&mut Committed>,
) -> Rows {
    let mut rows = Rows::default();
    if let Some(a) = assistant {
        state.notices.append(&mut a.notices);
        let (flags, robot, n) = a.take_rows();
        if let Some(b) = state.board.as_mut() {
            b.findings(flags.iter().map(|(f, _)| f));
        }
        c.robot_hits.fetch_add(n.robot_hits, Ordering::Relaxed);
        c.robot_misses.fetch_add(n.robot_misses, Ordering::Relaxed);
        (rows.flags, rows.robot) = (flags, robot);
    }
    if let Some(b) = batch {
        b.waits.extend(state.waits.iter().cloned());
    }
    rows.waits = std::mem::take(&mut state.waits);
    rows.notices = std::mem::take(&mut state.notices);
    rows
}

/// Counts what was stored and returns the alerts to send: the new ones that are not stale.
/// The `alerts` key (conversation, wait_start, kind) makes an alert that was already
/// recorded — before a reconnect, a restart or a redelivery — not new.
fn account(
    stored: Stored,
    state: &State,
    counters: &LiveCounters,
    now: Millis,
    batch: Option<&mut Committed>,
) -> Vec<Notice> {
    counters.flags.fetch_add(stored.flags, Ordering::Relaxed);
    if let Some(b) = batch {
        b.alerts.extend(stored.alerts.iter().cloned());
    }
    let mut send = Vec::new();
    for n in stored.alerts {
        counters.alerts.fetch_add(1, Ordering::Relaxed);
        if n.kind == Kind::Breach {
            counters.breaches.fetch_add(1, Ordering::Relaxed);
        }
        if state.engine.plan().disposition(n.due_at, now) == Disposition::Stale {
            counters.alerts_stale.fetch_add(1, Ordering::Relaxed);
            warn!(
                agent = %n.agent,
                conversation = %n.conversation,
                kind = n.kind.as_str(),
                late_ms = now - n.due_at,
                "alert recorded but not sent: older than the staleness limit"
            );
            continue;
        }
        send.push(n);
    }
    send
}

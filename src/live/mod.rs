//! The live bot: the gateway feeds the runtime, the runtime fires deadlines on the wall
//! clock and hands alerts to a seam; `kefu run` and `kefu demo` start it.
//!
//! - [`runtime`]: the task that owns the clock and the store (dedup → clock → persist → ack).
//! - `inserter`: the thread that stores a batch's events ahead of the runtime processing them.
//! - [`alert`]: the alert value and the seam alerts leave kefu through.
//! - [`assist`]: the phrase guard, the robot, hot reload and the nightly job in the runtime.
//! - [`time`]: engine time from tokio's clock (wall, scaled for the demo, paused in tests).
//! - [`cli`]: `kefu run` and `kefu demo`.

pub mod alert;
pub mod assist;
pub mod cli;
mod inserter;
pub mod runtime;
pub mod time;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use alert::{AlertSeam, ChannelSeam, TerminalSeam};
pub use assist::{AssistConfig, NightlyJob, Reloader, Sets};
pub use runtime::{CommitHook, Committed, LiveError, Runtime};
pub use time::TimeSource;

use crate::alerts::Plan;
use crate::engine::TimeLimits;
use crate::gateway::{self, GatewayConfig, GatewayCounters, GatewayError, Link, SendHandle};
use crate::rules::response_time::ResponseRules;
use crate::store::Store;

/// What the runtime needs besides the store.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The response-time rule.
    pub rules: ResponseRules,
    /// Which alerts a wait brings and when they are stale (`rules/alerts.toml`).
    pub plan: Plan,
    /// Engine time.
    pub time: TimeSource,
    /// The phrase guard, the robot, hot reload and the nightly job (all off by default).
    pub assist: AssistConfig,
    /// The console's live board, fed after each commit (none: no console).
    pub board: Option<crate::console::BoardFeed>,
    /// Which event times are believed (ahead of the wall clock, absurdly old).
    pub limits: TimeLimits,
    /// How often the engine's state is stored for restarts.
    pub snapshots: SnapshotPolicy,
}

/// When the runtime stores a snapshot of the engine (and the robot): with the first batch
/// after `every_ms` of engine time or `every_events` new events since the last one,
/// whichever comes first. A restart then processes at most about `every_events` events
/// (or `every_ms` worth) after the snapshot, whatever the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Milliseconds (engine time: the wall clock live) between snapshots.
    pub every_ms: i64,
    /// New events between snapshots.
    pub every_events: u64,
    /// Start from the latest stored snapshot (false: rebuild from every event, as
    /// `kefu snapshot --verify` does to check one).
    pub load: bool,
}

impl Default for SnapshotPolicy {
    /// Every minute or 200,000 events: a restart processes at most that many stored events
    /// after the snapshot (about a quarter of a second, `docs/benchmarks.md`), and the
    /// encode (a few ms per thousand open conversations, in the batch's transaction) is
    /// rare. Live traffic reaches the minute first; a backlog after an outage, stored at
    /// 150,000–250,000 events a second, is snapshotted about once a second, not four times.
    fn default() -> Self {
        Self { every_ms: 60_000, every_events: 200_000, load: true }
    }
}

impl LiveConfig {
    /// Wall-clock time and the default alert plan (breach, escalation at 3×, stale after 10 min).
    pub fn new(rules: ResponseRules) -> Self {
        Self {
            rules,
            plan: Plan::default(),
            time: TimeSource::wall(),
            assist: AssistConfig::default(),
            board: None,
            limits: TimeLimits::default(),
            snapshots: SnapshotPolicy::default(),
        }
    }
}

/// Live counters, shared with the status line, tests and benchmarks.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// New events stored.
    pub events: AtomicU64,
    /// Events already stored (redelivered), counted once.
    pub duplicates: AtomicU64,
    /// Frames rejected (bad JSON, oversized, invalid event).
    pub rejected: AtomicU64,
    /// Alerts recorded (new rows in `alerts`), every kind.
    pub alerts: AtomicU64,
    /// Breach alerts recorded.
    pub breaches: AtomicU64,
    /// Alerts handed to the seam.
    pub alerts_sent: AtomicU64,
    /// Alerts recorded but too old to send.
    pub alerts_stale: AtomicU64,
    /// Open conversations (refreshed twice a second).
    pub open: AtomicU64,
    /// Buyers waiting for an answer (refreshed twice a second).
    pub waiting: AtomicU64,
    /// Last seq committed (0 before the first).
    pub last_seq: AtomicU64,
    /// Robot messages to buyers (greetings, away answers, rescues).
    pub robot_sent: AtomicU64,
    /// Robot suggestions to agents and transfers.
    pub robot_other: AtomicU64,
    /// Auto-answer rule hits.
    pub robot_hits: AtomicU64,
    /// Buyer questions the robot had no rule for.
    pub robot_misses: AtomicU64,
    /// Phrase-guard flags stored.
    pub flags: AtomicU64,
}

impl LiveCounters {
    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The one-line status: events, open conversations, waiting buyers, breaches, robot
    /// replies, guard flags.
    pub fn status_line(&self) -> String {
        let g = Self::get;
        format!(
            "events {} · open conversations {} · waiting buyers {} · breaches {} · robot replies {} · guard flags {} · duplicates {} · rejected {}",
            g(&self.events),
            g(&self.open),
            g(&self.waiting),
            g(&self.breaches),
            g(&self.robot_sent),
            g(&self.flags),
            g(&self.duplicates),
            g(&self.rejected)
        )
    }
}

/// Everything needed to start the live bot.
pub struct LiveOptions {
    /// SQLite file.
    pub db: PathBuf,
    /// Platform connection.
    pub gateway: GatewayConfig,
    /// Runtime settings.
    pub live: LiveConfig,
}

/// A running live bot: the runtime and gateway tasks.
pub struct Live {
    /// Runtime counters.
    pub counters: Arc<LiveCounters>,
    /// Gateway counters.
    pub gateway: Arc<GatewayCounters>,
    /// Frames to the platform (the runtime's robot sends through a clone).
    pub sends: SendHandle,
    shutdown: watch::Sender<bool>,
    runtime: JoinHandle<Result<(), LiveError>>,
    gateway_task: JoinHandle<Result<(), GatewayError>>,
    gateway_result: Option<Result<Result<(), GatewayError>, tokio::task::JoinError>>,
    checkpointer: Checkpointer,
}

/// Why the live bot stopped.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] LiveError),
    /// The gateway stopped for good.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// A task panicked.
    #[error("live task failed: {0}")]
    Join(String),
}

impl Live {
    /// Opens the store, rebuilds the clock and spawns the runtime and the gateway.
    /// Call from inside a tokio runtime.
    pub fn start(options: LiveOptions, seam: Box<dyn AlertSeam>) -> Result<Self, LiveError> {
        let store = Store::open(&options.db)?;
        // Checkpoints copy the WAL into the database file, at times for tens of
        // milliseconds; the checkpointer thread does it so a commit never stalls a deadline.
        store.conn().execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        let checkpointer = Checkpointer::start(&options.db)?;
        let counters = Arc::new(LiveCounters::default());
        let (runtime, committed) = Runtime::open(store, options.live, seam, counters.clone())?;
        let gw_counters = Arc::new(GatewayCounters::default());
        let runtime = runtime.with_gateway(gw_counters.clone());
        let (frames_tx, frames_rx) = mpsc::channel(runtime::BATCH * 2);
        let (sends, sends_rx) = SendHandle::channel(1024);
        let runtime = runtime.with_sends(sends.clone());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let link = Link { frames: frames_tx, committed, sends: sends_rx };
        let runtime = tokio::spawn(runtime.run(frames_rx));
        let gateway_task =
            tokio::spawn(gateway::run(options.gateway, link, gw_counters.clone(), shutdown_rx));
        Ok(Self {
            counters,
            gateway: gw_counters,
            sends,
            shutdown,
            runtime,
            gateway_task,
            gateway_result: None,
            checkpointer,
        })
    }

    /// Asks for a clean stop: stop reading, persist, ack, close.
    pub fn request_stop(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once the gateway has stopped (after a stop request or a fatal error).
    pub async fn finished(&mut self) {
        if self.gateway_result.is_none() {
            self.gateway_result = Some((&mut self.gateway_task).await);
        }
    }

    /// Requests a stop and waits for both tasks.
    pub async fn stop(self) -> Result<(), StopError> {
        self.request_stop();
        self.join().await
    }

    /// Waits for both tasks (the gateway ends on a stop request or a fatal error).
    pub async fn join(mut self) -> Result<(), StopError> {
        self.finished().await;
        let gw = self.gateway_result.take().map_or(Ok(Ok(())), |r| r);
        let gw = gw.map_err(|e| StopError::Join(e.to_string()))?;
        let rt = self.runtime.await.map_err(|e| StopError::Join(e.to_string()))?;
        self.checkpointer.stop();
        rt?;
        gw?;
        Ok(())
    }
}

/// A thread that checkpoints the WAL once a second on its own connection, off the
/// runtime's path (PASSIVE: it never waits for, nor blocks, the writer).
struct Checkpointer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(db: &std::path::Path) -> Result<Self, LiveError> {
        let store = Store::open(db)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(std::time::Duration::from_secs(1));
                if let Err(e) = store.conn().execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        });
        Ok(Self { stop, thread: Some(thread) })
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

//! The effect: one task that writes submitted notices to the outbox and delivers them.
//!
//! [`AlertHandle::submit`] only puts the notice on an unbounded channel, so event ingestion
//! never waits for SQLite or a webhook. The task drains the channel into the outbox in one
//! transaction, then, per sink with a free request slot (`concurrency`), asks the token
//! bucket how many messages may go — never more than the free slots — and [`Batch::plan`]
//! how to spend them (singles, then one digest of the rest). Each message is its own
//! spawned request, so a slow webhook delivers in parallel, a hanging one holds up only its
//! own slots, and what falls due while every slot is busy is folded into one digest when a
//! slot frees. Each message's rows are marked in the outbox as soon as its answer arrives:
//! delivery is at-least-once, and a crash can resend only a message whose answer came in
//! the moment before.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::privacy::Secret;
use crate::store::StoreError;
use crate::time::Millis;

use super::config::{AlertConfig, Sink};
use super::format::{self, Message, Outcome, Vendor};
use super::notice::Notice;
use super::outbox::{self, Outbox, Row, Status};
use super::pace::{Batch, TokenBucket};
use super::plan::Disposition;

/// Most pending rows of one sink taken in one round (a digest carries at most this many).
const ROUND_LIMIT: usize = 500;
/// Most notices written to the outbox in one transaction (the rest wait a loop turn).
const ACCEPT_BATCH: usize = 10_000;
/// The task looks at the outbox at least this often even with nothing scheduled.
const IDLE_WAKE_MS: i64 = 60_000;
/// Finished outbox rows are kept at least this long (30 days, and a day longer than the
/// staleness limit), then pruned at start.
const RETENTION_MS: i64 = 30 * 86_400_000;
/// How often undelivered alerts are checked for staleness.
const EXPIRY_EVERY_MS: i64 = 1_000;
/// How often the outbox's WAL is checkpointed (from a blocking thread) while the sender works.
const CHECKPOINT_EVERY_MS: i64 = 1_000;

/// Failures starting the alert service.
#[derive(Debug, Error)]
pub enum AlertError {
    /// The outbox database could not be opened.
    #[error("cannot open the alert outbox")]
    Outbox(#[source] StoreError),
    /// `start` was called outside a tokio runtime.
    #[error("the alert service needs a tokio runtime")]
    NoRuntime,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for alert sinks")]
    Http(#[source] reqwest::Error),
}

/// Starts the alert sender.
pub struct AlertService;

/// What became of one alert at one sink (see [`AlertService::start_with_receipts`]).
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The alert.
    pub notice: Notice,
    /// The sink accepted it (false: its tries are spent, it is not sent).
    pub delivered: bool,
}

impl AlertService {
    /// Opens the outbox at `db_path` and spawns the sender task on the current tokio runtime.
    /// Pending alerts left by a previous run are delivered.
    pub fn start(config: AlertConfig, db_path: &Path) -> Result<AlertHandle, AlertError> {
        Self::spawn(config, db_path, None)
    }

    /// As [`AlertService::start`], and every alert whose fate is settled — a sink accepted
    /// it, or its tries are spent — is also sent down `receipts` once the outbox says so
    /// (the cluster mode records it for the other workers: `crate::cluster::worker`).
    pub fn start_with_receipts(
        config: AlertConfig,
        db_path: &Path,
        receipts: mpsc::UnboundedSender<Receipt>,
    ) -> Result<AlertHandle, AlertError> {
        Self::spawn(config, db_path, Some(receipts))
    }

    fn spawn(
        config: AlertConfig,
        db_path: &Path,
        receipts: Option<mpsc::UnboundedSender<Receipt>>,
    ) -> Result<AlertHandle, AlertError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AlertError::NoRuntime)?;
        let mut outbox = Outbox::open_for_sender(db_path).map_err(AlertError::Outbox)?;
        let clock = Clock::start();
        // Only rows that would be stale if submitted again may go: that keeps "never twice".
        let keep = RETENTION_MS.max(config.plan.stale_after_ms.saturating_add(86_400_000));
        match outbox.prune(clock.now().saturating_sub(keep)) {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned old alert outbox rows"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the alert outbox"),
        }
        // No redirect is followed: a redirect would post the alert, and the URL's token in
        // `Referer`, to another host. It comes back as a 3xx and counts as a failure.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(AlertError::Http)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let sinks = config
            .sinks
            .iter()
            .map(|s| SinkState {
                sink: Arc::new(s.clone()),
                bucket: s.rate.map(|(per_minute, burst)| TokenBucket::new(per_minute, burst, clock.now())),
                in_flight: HashSet::new(),
                requests: 0,
                hold_until: Millis::MIN,
            })
            .collect();
        let runner = Runner {
            config,
            outbox,
            db_path: db_path.to_path_buf(),
            client,
            clock,
            sinks,
            inflight: JoinSet::new(),
            next_expiry: 0,
            next_checkpoint: 0,
            checkpointing: Arc::new(AtomicBool::new(false)),
            receipts,
        };
        let task = runtime.spawn(runner.run(rx));
        Ok(AlertHandle { tx, task })
    }
}

/// What [`AlertHandle::shutdown`] managed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Alerts still pending in the outbox (delivered by the next run).
    pub pending: i64,
}

/// The caller's side of the alert service.
pub struct AlertHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

/// A cheap, clonable way to submit notices from other components (phrase guard, summaries).
/// The service keeps running while any submitter is alive, until [`AlertHandle::shutdown`].
#[derive(Clone)]
pub struct Submitter {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Submitter {
    /// Queues a notice; see [`AlertHandle::submit`].
    pub fn submit(&self, notice: Notice) {
        submit(&self.tx, notice);
    }
}

fn submit(tx: &mpsc::UnboundedSender<Cmd>, notice: Notice) {
    if tx.send(Cmd::Submit(Box::new(notice))).is_err() {
        tracing::error!("alert sender has stopped; notice not queued");
    }
}

enum Cmd {
    Submit(Box<Notice>),
    Shutdown(Duration, oneshot::Sender<ShutdownReport>),
}

impl AlertHandle {
    /// Queues a notice. Never blocks and never waits for the outbox or a webhook; a notice
    /// whose key was queued before is ignored by the outbox.
    pub fn submit(&self, notice: Notice) {
        submit(&self.tx, notice);
    }

    /// A clonable submitter for other components.
    pub fn submitter(&self) -> Submitter {
        Submitter { tx: self.tx.clone() }
    }

    /// Stops taking notices, keeps delivering what is due for at most `within`, then stops.
    /// What is left stays pending in the outbox.
    pub async fn shutdown(self, within: Duration) -> ShutdownReport {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(within, done_tx)).is_err() {
            return ShutdownReport { pending: -1 };
        }
        let report = done_rx.await.unwrap_or(ShutdownReport { pending: -1 });
        let _ = self.task.await;
        report
    }
}

/// Wall-clock milliseconds that advance with tokio's clock, so paused test time and the
/// outbox's `next_attempt_at` agree.
#[derive(Debug, Clone, Copy)]
struct Clock {
    wall0: Millis,
    inst0: Instant,
}

impl Clock {
    fn start() -> Self {
        Self { wall0: crate::time::now_ms(), inst0: Instant::now() }
    }

    fn now(&self) -> Millis {
        self.wall0 + i64::try_from(self.inst0.elapsed().as_millis()).unwrap_or(i64::MAX / 2)
    }

    fn instant(&self, at: Millis) -> Instant {
        self.inst0 + Duration::from_millis(u64::try_from(at - self.wall0).unwrap_or(0))
    }
}

struct SinkState {
    sink: Arc<Sink>,
    bucket: Option<TokenBucket>,
    /// Outbox rows whose message is in flight (still `pending` in the outbox).
    in_flight: HashSet<i64>,
    /// Requests in flight, at most `sink.concurrency`.
    requests: u32,
    /// After a failed message no new one starts before this (the failed rows' backoff).
    hold_until: Millis,
}

/// One message, and the rows it carries.
struct Outgoing {
    rows: Vec<Row>,
    /// Sent as one digest message (else `rows` holds exactly one alert).
    digest: bool,
}

/// What one message to one sink came to.
struct Sent {
    sink: usize,
    out: Outgoing,
    outcome: Outcome,
    at: Millis,
}

struct Runner {
    config: AlertConfig,
    outbox: Outbox,
    client: reqwest::Client,
    clock: Clock,
    sinks: Vec<SinkState>,
    inflight: JoinSet<Sent>,
    next_expiry: Millis,
    db_path: PathBuf,
    next_checkpoint: Millis,
    checkpointing: Arc<AtomicBool>,
    /// Told every alert a sink accepted or that was given up on, after it is marked.
    receipts: Option<mpsc::UnboundedSender<Receipt>>,
}

impl Runner {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut open = true;
        let mut closing: Option<(Millis, oneshot::Sender<ShutdownReport>)> = None;
        loop {
            if !open && closing.is_none() {
                // Every handle was dropped without shutdown: what came in is persisted; stop
                // without starting deliveries that would only be cut off.
                break;
            }
            let wake = self.dispatch();
            let now = self.clock.now();
            self.maybe_checkpoint(now);
            if let Some((deadline, _)) = &closing {
                let nothing_left = self.inflight.is_empty() && wake.is_none_or(|w| w > *deadline);
                if nothing_left || now >= *deadline {
                    break;
                }
            }
            let mut wake_at = wake.unwrap_or(now + IDLE_WAKE_MS).min(now + IDLE_WAKE_MS);
            if let Some((deadline, _)) = &closing {
                wake_at = wake_at.min(*deadline);
            }
            tokio::select! {
                cmd = rx.recv(), if open => {
                    let mut notices = Vec::new();
                    let mut next = cmd;
                    loop {
                        match next {
                            Some(Cmd::Submit(n)) => notices.push(*n),
                            Some(Cmd::Shutdown(within, done)) => {
                                let ms = i64::try_from(within.as_millis()).unwrap_or(i64::MAX / 4);
                                closing = Some((self.clock.now() + ms, done));
                                open = false;
                                break;
                            }
                            None => {
                                open = false;
                                break;
                            }
                        }
                        if notices.len() >= ACCEPT_BATCH {
                            break;
                        }
                        next = match rx.try_recv() {
                            Ok(c) => Some(c),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => None,
                        };
                    }
                    self.accept(notices);
                }
                Some(done) = self.inflight.join_next(), if !self.inflight.is_empty() => {
                    match done {
                        Ok(result) => self.record(result),
                        Err(e) => tracing::error!(error = %e, "alert delivery task failed"),
                    }
                }
                () = tokio::time::sleep_until(self.clock.instant(wake_at)) => {}
            }
        }
        self.inflight.abort_all();
        let path = self.db_path.clone();
        let _ = tokio::task::spawn_blocking(move || outbox::checkpoint(&path)).await;
        let pending = self.outbox.pending().unwrap_or(-1);
        if let Some((_, done)) = closing {
            let _ = done.send(ShutdownReport { pending });
        }
    }

    /// Starts a WAL checkpoint on a blocking thread, at most once a [`CHECKPOINT_EVERY_MS`]
    /// and never two at once.
    fn maybe_checkpoint(&mut self, now: Millis) {
        if now < self.next_checkpoint || self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.next_checkpoint = now + CHECKPOINT_EVERY_MS;
        let (path, flag) = (self.db_path.clone(), Arc::clone(&self.checkpointing));
        tokio::task::spawn_blocking(move || {
            if let Err(e) = outbox::checkpoint(&path) {
                tracing::warn!(error = %e, "outbox checkpoint failed");
            }
            flag.store(false, Ordering::Release);
        });
    }

    /// Writes notices to the outbox: one row per routed sink, stale ones recorded only.
    fn accept(&mut self, notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        let now = self.clock.now();
        let items: Vec<(Notice, Vec<(String, Status)>)> = notices
            .into_iter()
            .map(|mut n| {
                if n.agent_group.is_none() {
                    n.agent_group = self.config.group_of(&n.agent).map(String::from);
                }
                let status = match self.config.plan.disposition(n.due_at, now) {
                    Disposition::Send => Status::Pending,
                    Disposition::Stale => {
                        tracing::info!(conversation = %n.conversation, kind = %n.kind, due_at = n.due_at, "stale alert recorded, not sent");
                        Status::Stale
                    }
                };
                let targets = self.config.route(&n).map(|s| (s.name.clone(), status)).collect();
                (n, targets)
            })
            .collect();
        if let Err(e) = self.outbox.enqueue(&items, now) {
            tracing::error!(error = %e, alerts = items.len(), "cannot write alerts to the outbox");
        }
    }

    /// Starts messages for every sink with due alerts and a free request slot; returns
    /// when to look again (a finishing request wakes the loop anyway).
    fn dispatch(&mut self) -> Option<Millis> {
        let now = self.clock.now();
        let stale_cutoff = now - self.config.plan.stale_after_ms;
        // Expiring is a write: once a second is plenty, and keeps the event writer's lock free.
        let expire = now >= self.next_expiry;
        if expire {
            self.next_expiry = now + EXPIRY_EVERY_MS;
        }
        let mut wake: Option<Millis> = None;
        let mut earliest = |t: Millis| wake = Some(wake.map_or(t, |w: Millis| w.min(t)));
        for i in 0..self.sinks.len() {
            let name = self.sinks[i].sink.name.clone();
            if expire {
                // Rows in flight are spared: their answer decides.
                match self.outbox.expire(&name, stale_cutoff, &self.sinks[i].in_flight) {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(sink = %name, alerts = n, "alerts went stale before delivery"),
                    Err(e) => tracing::error!(sink = %name, error = %e, "outbox"),
                }
            }
            let state = &self.sinks[i];
            let free = state.sink.concurrency.saturating_sub(state.requests);
            if free == 0 {
                continue;
            }
            if state.hold_until > now {
                earliest(state.hold_until);
                continue;
            }
            let due = match self.outbox.due(&name, now, ROUND_LIMIT + state.in_flight.len()) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(sink = %name, error = %e, "cannot read the outbox");
                    earliest(now + 1_000);
                    continue;
                }
            };
            let mut due: Vec<Row> = due.into_iter().filter(|r| !state.in_flight.contains(&r.id)).collect();
            due.truncate(ROUND_LIMIT);
            if due.is_empty() {
                if let Ok(Some(t)) = self.outbox.next_attempt_after(&name, now) {
                    earliest(t);
                }
                continue;
            }
            let state = &mut self.sinks[i];
            let tokens = state.bucket.as_mut().map_or(u32::MAX, |b| b.available(now));
            // Never more messages than free slots: what does not fit goes as one digest now
            // rather than waiting for a slow sink to take it one by one.
            let batch = Batch::plan(due.len(), tokens.min(free));
            if batch.messages() == 0 {
                if let Some(b) = state.bucket.as_mut() {
                    earliest(b.next_token_at(now));
                }
                continue;
            }
            if let Some(b) = state.bucket.as_mut() {
                b.take(batch.messages(), now);
            }
            let mut rows = due.into_iter();
            let mut messages: Vec<Outgoing> = rows
                .by_ref()
                .take(batch.singles)
                .map(|r| Outgoing { rows: vec![r], digest: false })
                .collect();
            if batch.digested > 0 {
                messages.push(Outgoing { rows: rows.collect(), digest: true });
            }
            for out in messages {
                state.in_flight.extend(out.rows.iter().map(|r| r.id));
                state.requests += 1;
                let (sink, client, clock) = (Arc::clone(&state.sink), self.client.clone(), self.clock);
                self.inflight.spawn(deliver(i, sink, client, clock, out));
            }
        }
        wake
    }

    /// Writes one message's result to the outbox at once: its alerts are `sent` (or
    /// `digested`) the moment its answer is in, whatever else is in flight.
    fn record(&mut self, result: Sent) {
        let Sent { sink: index, out, outcome, at } = result;
        let Some(state) = self.sinks.get_mut(index) else {
            return;
        };
        state.requests = state.requests.saturating_sub(1);
        for r in &out.rows {
            state.in_flight.remove(&r.id);
        }
        let sink = Arc::clone(&state.sink);
        let (retry, error) = match outcome {
            Outcome::Delivered => {
                let status = if out.digest { Status::Digested } else { Status::Sent };
                let rows: Vec<(i64, Status, Millis)> = out.rows.iter().map(|r| (r.id, status, at)).collect();
                if let Err(e) = self.outbox.mark_delivered(&rows) {
                    tracing::error!(sink = %sink.name, error = %e, "cannot mark alerts delivered");
                }
                if let Some(tx) = &self.receipts {
                    for r in &out.rows {
                        let _ = tx.send(Receipt { notice: r.notice.clone(), delivered: true });
                    }
                }
                return;
            }
            Outcome::Retry(e) => (true, e),
            Outcome::Refused(e) => (false, e),
        };
        match self.outbox.mark_failed_try(&out.rows, &sink.retry, retry, &error, at) {
            Ok(given_up) if !given_up.is_empty() => {
                tracing::error!(sink = %sink.name, alerts = given_up.len(), error = %error, "alert delivery failed for good");
                if let Some(tx) = &self.receipts {
                    for r in out.rows.iter().filter(|r| given_up.contains(&r.id)) {
                        let _ = tx.send(Receipt { notice: r.notice.clone(), delivered: false });
                    }
                }
            }
            Ok(_) => {
                tracing::warn!(sink = %sink.name, alerts = out.rows.len(), error = %error, "alert delivery failed; will retry")
            }
            Err(e) => tracing::error!(sink = %sink.name, error = %e, "cannot record a failed delivery"),
        }
        // The sink starts nothing new while the failed message waits for its retry.
        let delay = sink.retry.after(out.rows.first().map_or(1, |r| r.attempts + 1)).unwrap_or(0);
        state.hold_until = state.hold_until.max(at + delay);
    }
}

/// Sends one message.
async fn deliver(
    index: usize,
    sink: Arc<Sink>,
    client: reqwest::Client,
    clock: Clock,
    out: Outgoing,
) -> Sent {
    let notices: Vec<Notice> = out.rows.iter().map(|r| r.notice.clone()).collect();
    let msg = match notices.as_slice() {
        [one] if !out.digest => Message::One(one),
        all => Message::Digest(all),
    };
    let outcome = send(&sink, &client, msg, clock.now()).await;
    let at = clock.now();
    Sent { sink: index, out, outcome, at }
}

/// Delivers one message to one sink.
async fn send(sink: &Sink, client: &reqwest::Client, msg: Message<'_>, now: Millis) -> Outcome {
    if sink.vendor == Vendor::Log {
        log(msg);
        return Outcome::Delivered;
    }
    let Some(url) = sink.url.as_ref().map(Secret::expose).filter(|_| sink.vendor != Vendor::Terminal) else {
        // A closed stdout must not panic the sender; the alert is in the outbox either way.
        let mut out = std::io::stdout().lock();
        return match writeln!(out, "{}", format::terminal_line(msg)) {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Retry(format!("cannot write to the terminal: {e}")),
        };
    };
    let req = format::request(sink.vendor, url, sink.secret.as_ref().map(Secret::expose), msg, now);
    let sent = client
        .post(&req.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(req.body)
        .timeout(Duration::from_millis(u64::from(sink.timeout_ms)))
        .send()
        .await;
    match sent {
        Ok(resp) if resp.status().is_redirection() => {
            let location = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
            format::redirected(resp.status().as_u16(), url, location)
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            format::outcome(sink.vendor, status, &body)
        }
        Err(e) if e.is_timeout() => Outcome::Retry(format!("timed out after {} ms", sink.timeout_ms)),
        // Without the URL: a robot URL carries its access token, and errors reach logs.
        Err(e) => Outcome::Retry(format!("request failed: {}", error_chain(&e.without_url()))),
    }
}

/// One structured event per alert (a digest: one per alert in it), buyer masked.
fn log(msg: Message<'_>) {
    let notices = match msg {
        Message::One(n) => std::slice::from_ref(n),
        Message::Digest(ns) => ns,
    };
    for n in notices {
        tracing::warn!(
            target: "kefu::alerts",
            kind = %n.kind,
            shop = %n.shop,
            agent = %n.agent,
            buyer = %n.masked_customer(),
            conversation = %n.conversation,
            waited_ms = n.waited_ms,
            deadline_ms = n.deadline_ms,
            load = n.load,
            due_at = %crate::time::format_rfc3339_shanghai(n.due_at),
            preview = %n.masked_preview(),
            "{}",
            n.kind.label()
        );
    }
}

/// An error and its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

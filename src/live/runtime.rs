//! The runtime task: it alone owns the response clock and the store. Each batch of frames
//! goes dedup → clock → persist (events, waits, alerts, rejected frames and the seq, in
//! one transaction) → commit point (the gateway acks it) → alerts handed to the seam.
//! Between frames it sleeps until the clock's next deadline, so a breach fires with no
//! further event.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::{Transaction, params};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use super::alert::{Alert, AlertKind, AlertSeam};
use super::time::TimeSource;
use super::{LiveCounters, LiveConfig};
use crate::engine::{Clock, Outcome, Output, Wait};
use crate::event::{Event, EventKind, Sender};
use crate::gateway::Incoming;
use crate::privacy::mask_id;
use crate::replay::save_waits;
use crate::store::{INSERT_EVENT, Store, StoreError};
use crate::time::Millis;

/// The `meta` key holding the last seq committed (the resume point).
pub const LAST_SEQ_KEY: &str = "gateway.last_seq";

/// Frames per transaction at most: commits stay cheap and acks stay frequent.
pub const BATCH: usize = 4096;

/// Characters of the buyer's last message an alert shows.
const PREVIEW_CHARS: usize = 30;

const INSERT_ALERT: &str = "INSERT OR IGNORE INTO alerts (conversation, wait_start, kind, agent, due_at, deadline_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const INSERT_REJECTED: &str =
    "INSERT INTO rejected (received_at, source, position, reason, raw) VALUES (?1, ?2, ?3, ?4, ?5)";

/// Runtime failures: only the database can fail; bad frames are data, not errors.
#[derive(Debug, Error)]
pub enum LiveError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An SQLite statement failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The clock and everything derived from its outputs, apart from the store so a
/// transaction on the store and the clock can be used together.
struct State {
    clock: Clock,
    out: Vec<Output>,
    /// The last buyer message per conversation with a wait, for alert previews.
    previews: HashMap<Arc<str>, Arc<str>>,
    waits: Vec<Wait>,
    alerts: Vec<Alert>,
}

impl State {
    fn handle(&mut self, event: &Event) {
        self.clock.handle(event, &mut self.out);
        self.take_outputs();
        if let EventKind::Message { conversation, from: Sender::Customer, text, .. } = &event.kind {
            self.previews.insert(conversation.as_str().into(), preview(text).into());
        }
    }

    fn advance(&mut self, now: Millis) {
        self.clock.advance(now, &mut self.out);
        self.take_outputs();
    }

    fn take_outputs(&mut self) {
        for o in self.out.drain(..) {
            match o {
                Output::WaitStarted(_) => {}
                Output::WaitEnded(w) => {
                    if w.outcome != Outcome::Transferred {
                        self.previews.remove(&w.conversation);
                    }
                    self.waits.push(w);
                }
                Output::Breach(b) => {
                    let preview = self.previews.get(&b.conversation).cloned();
                    self.alerts.push(Alert {
                        kind: AlertKind::Breach,
                        shop: b.shop,
                        conversation: b.conversation,
                        customer: b.customer,
                        agent: b.agent,
                        wait_start: b.wait_start,
                        due_at: b.due_at,
                        deadline_ms: b.deadline_ms,
                        load: b.load,
                        preview,
                    });
                }
            }
        }
    }
}

fn preview(text: &str) -> String {
    let mut p: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().nth(PREVIEW_CHARS).is_some() {
        p.push('…');
    }
    p
}

/// The live runtime (see the module doc).
pub struct Runtime {
    store: Store,
    state: State,
    config: LiveConfig,
    seam: Box<dyn AlertSeam>,
    counters: Arc<LiveCounters>,
    committed: watch::Sender<Option<u64>>,
    last_seq: Option<u64>,
    gauges_at: Option<Instant>,
}

impl Runtime {
    /// Rebuilds the clock from the stored events (no alert is re-sent: the ones already
    /// due are in the `alerts` table) and returns the runtime with the commit point the
    /// gateway resumes after and acks.
    pub fn open(
        store: Store,
        config: LiveConfig,
        seam: Box<dyn AlertSeam>,
        counters: Arc<LiveCounters>,
    ) -> Result<(Self, watch::Receiver<Option<u64>>), LiveError> {
        let mut state = State {
            clock: Clock::new(config.rules.clone()),
            out: Vec::new(),
            previews: HashMap::new(),
            waits: Vec::new(),
            alerts: Vec::new(),
        };
        let bad = store.for_each_event(|e| state.handle(&e))?;
        // Everything these outputs say is already stored; what falls due from now on is
        // decided by the first tick.
        state.waits.clear();
        state.alerts.clear();
        let last_seq = store.meta(LAST_SEQ_KEY)?.and_then(|s| s.parse().ok());
        if bad > 0 {
            warn!(bad, "stored events that no longer parse were skipped");
        }
        info!(last_seq = ?last_seq, pending = state.clock.pending_waits(), "runtime rebuilt from the store");
        let (committed, rx) = watch::channel(last_seq);
        if let Some(seq) = last_seq {
            counters.last_seq.store(seq, Ordering::Relaxed);
        }
        let runtime =
            Self { store, state, config, seam, counters, committed, last_seq, gauges_at: None };
        Ok((runtime, rx))
    }

    /// Runs until the frame channel closes (the gateway stopped), then returns.
    pub async fn run(mut self, mut frames: mpsc::Receiver<Incoming>) -> Result<(), LiveError> {
        let mut buf = Vec::with_capacity(BATCH);
        loop {
            let due = self.state.clock.next_due().map(|d| d.saturating_add(1));
            let wake = due.map(|d| self.config.time.instant_at(d));
            tokio::select! {
                biased;
                n = frames.recv_many(&mut buf, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.process(&mut buf)?;
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

    /// Processes a batch of frames in one transaction, then publishes the commit point
    /// and hands the new alerts over.
    fn process(&mut self, items: &mut Vec<Incoming>) -> Result<(), LiveError> {
        let c = &self.counters;
        let received_at = crate::time::now_ms();
        let mut max_seq = None;
        let tx = self.store.conn_mut().transaction()?;
        {
            let mut ins = tx.prepare_cached(INSERT_EVENT)?;
            let mut rej = tx.prepare_cached(INSERT_REJECTED)?;
            for item in items.drain(..) {
                match item {
                    Incoming::Event { seq, event, body } => {
                        max_seq = max_seq.max(Some(seq));
                        let e = &event;
                        let new = ins.execute(params![
                            e.id,
                            e.ts,
                            e.shop,
                            e.type_name(),
                            e.conversation(),
                            e.agent(),
                            e.customer(),
                            body
                        ])?;
                        if new == 0 {
                            c.duplicates.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        c.events.fetch_add(1, Ordering::Relaxed);
                        self.state.handle(e);
                    }
                    Incoming::Rejected(r) => {
                        max_seq = max_seq.max(r.seq);
                        let position = r.seq.map_or_else(|| "seq ?".to_string(), |s| format!("seq {s}"));
                        rej.execute(params![received_at, "websocket", position, r.reason, r.raw])?;
                        c.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    Incoming::Other(_) => {}
                }
            }
        }
        let now = self.config.time.now_ms();
        self.state.advance(now);
        let send = persist_outputs(&tx, &mut self.state, &self.config, c, now)?;
        let advanced = max_seq.filter(|&s| Some(s) > self.last_seq);
        if let Some(seq) = advanced {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![LAST_SEQ_KEY, seq.to_string()],
            )?;
        }
        tx.commit()?;
        if let Some(seq) = advanced {
            self.last_seq = Some(seq);
            self.counters.last_seq.store(seq, Ordering::Relaxed);
            self.committed.send_replace(self.last_seq);
        }
        self.deliver(send, now);
        self.gauges(false);
        Ok(())
    }

    /// Lets time pass with no frame: deadlines fire, idle sessions close.
    fn tick(&mut self, now: Millis) -> Result<(), LiveError> {
        self.state.advance(now);
        if self.state.waits.is_empty() && self.state.alerts.is_empty() {
            return Ok(());
        }
        let tx = self.store.conn_mut().transaction()?;
        let send = persist_outputs(&tx, &mut self.state, &self.config, &self.counters, now)?;
        tx.commit()?;
        self.deliver(send, now);
        self.gauges(false);
        Ok(())
    }

    fn deliver(&mut self, alerts: Vec<Alert>, now: Millis) {
        for a in alerts {
            self.counters.alerts_sent.fetch_add(1, Ordering::Relaxed);
            info!(
                agent = %a.agent,
                conversation = %a.conversation,
                buyer = %mask_id(&a.customer),
                wait_ms = now - a.wait_start,
                deadline_ms = a.deadline_ms,
                kind = a.kind.as_str(),
                "alert"
            );
            self.seam.submit(a, now);
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
        let clock = &self.state.clock;
        self.counters.open.store(clock.open_sessions() as u64, Ordering::Relaxed);
        self.counters.waiting.store(clock.pending_waits() as u64, Ordering::Relaxed);
    }

    /// The time source the runtime runs on.
    pub fn time(&self) -> TimeSource {
        self.config.time
    }
}

/// Saves the finished waits and records new alerts; returns the alerts to send (new and
/// not stale). The `alerts` key (conversation, wait_start, kind) makes an alert that was
/// already recorded — before a reconnect, a restart or a redelivery — a no-op.
fn persist_outputs(
    tx: &Transaction<'_>,
    state: &mut State,
    config: &LiveConfig,
    counters: &LiveCounters,
    now: Millis,
) -> Result<Vec<Alert>, LiveError> {
    save_waits(tx, &state.waits)?;
    state.waits.clear();
    let mut send = Vec::new();
    let mut stmt = tx.prepare_cached(INSERT_ALERT)?;
    for a in state.alerts.drain(..) {
        let new = stmt.execute(params![
            &*a.conversation,
            a.wait_start,
            a.kind.as_str(),
            &*a.agent,
            a.due_at,
            a.deadline_ms
        ])?;
        if new == 0 {
            continue;
        }
        counters.breaches.fetch_add(1, Ordering::Relaxed);
        if now - a.due_at > config.staleness_ms {
            counters.alerts_stale.fetch_add(1, Ordering::Relaxed);
            warn!(
                agent = %a.agent,
                conversation = %a.conversation,
                late_ms = now - a.due_at,
                "alert recorded but not sent: older than the staleness limit"
            );
            continue;
        }
        send.push(a);
    }
    Ok(send)
}

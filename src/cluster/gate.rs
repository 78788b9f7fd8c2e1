//! The alert gate: how an alert leaves a worker once, whichever worker owns its partition.
//!
//! Before an alert goes to the worker's alert service (outbox, sinks, retries), the worker
//! claims its id ([`alert_id`]: the same whoever computes it) in the bucket `kefu_alerts`
//! with `create` (one claimant), valued `<worker>/<instance>`; when a sink has answered,
//! the claim becomes `sent` (`failed` when its tries are spent). An alert already claimed:
//!
//! - `sent` / `failed`: final, nothing to do;
//! - by this instance: handed to its alert service once (a claim whose answer was lost
//!   while a server failed over reads as this instance's on the retry: it is sent then);
//! - by an instance that is still alive (a previous owner delivering from its outbox): the
//!   gate keeps watching it until it is final, or its holder dies, or it is stale;
//! - by an instance that is no longer alive: the gate takes the claim over and sends it.
//!
//! [`Outstanding`] keeps every alert of this worker's partitions whose fate is not final
//! yet, with the results-log record that recorded it: a partition's snapshot says up to
//! where every recorded alert is final (`settled`), so a takeover hands the gate again
//! every alert recorded after that — including those a dead worker claimed and never sent.
//!
//! The one window left is a worker killed between a sink's answer and the `sent` mark (the
//! answer is read, the mark is one KV round trip away): that alert is sent again by the new
//! owner — at least once, never lost. No protocol can close it against a sink that does
//! not deduplicate (the sink acted; the worker died before it could say so).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use tokio::sync::{Semaphore, mpsc};
use tracing::warn;

use super::lease;
use crate::alerts::{Notice, Receipt, Submitter};
use crate::live::AlertSeam;
use crate::time::Millis;

/// The id under which an alert's sender is recorded in `kefu_alerts`: a hash of its key
/// (shop, conversation, wait start, kind), the same whichever worker sends it.
pub fn alert_id(n: &Notice) -> String {
    alert_id_of(&n.shop, &n.conversation, n.wait_start, n.kind.as_str())
}

/// [`alert_id`] from the key's parts.
pub fn alert_id_of(shop: &str, conversation: &str, wait_start: Millis, kind: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [shop.as_bytes(), conversation.as_bytes(), &wait_start.to_le_bytes(), kind.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The alerts of a worker's partitions whose fate is not final yet (not marked `sent` or
/// `failed`, not stale), each with its partition and the results-log record that recorded
/// it. Shared by the partitions' seams and appenders and the gate.
#[derive(Debug, Default)]
pub struct Outstanding {
    alerts: Mutex<HashMap<String, Pending>>,
    /// Alerts this instance handed to its alert service and not yet marked.
    submitted: Mutex<std::collections::HashSet<String>>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    partition: u32,
    record: u64,
    due_at: Millis,
}

impl Outstanding {
    /// Alert `id` of `partition`, recorded by results record `record`, is not final yet.
    pub fn add(&self, id: String, partition: u32, record: u64, due_at: Millis) {
        let mut m = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(id).and_modify(|p| p.record = p.record.min(record)).or_insert(Pending {
            partition,
            record,
            due_at,
        });
    }

    /// Alert `id` is final (sent, given up, or someone else's to send and sent).
    pub fn done(&self, id: &str) {
        self.alerts.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        self.submitted.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// True the first time for `id` until it is [`done`](Self::done): this instance hands
    /// it to its alert service once.
    pub fn submit_once(&self, id: &str) -> bool {
        self.submitted.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string())
    }

    /// Up to which results sequence every alert partition `n` recorded is final: just
    /// before its first outstanding alert's record, else `last` (the partition's last
    /// record). Alerts due before `stale_before` are forgotten: nobody sends them any more.
    pub fn settled(&self, n: u32, last: u64, stale_before: Millis) -> u64 {
        let mut m = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, p| p.due_at >= stale_before);
        m.values()
            .filter(|p| p.partition == n)
            .map(|p| p.record.saturating_sub(1))
            .min()
            .map_or(last, |s| s.min(last))
    }

    /// How many alerts are not final.
    pub fn len(&self) -> usize {
        self.alerts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether every alert is final.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Partition `partition`'s alert seam: each alert is registered as outstanding with the
/// results record its batch was appended as (`record`, set by the partition's appender
/// before the commit), then handed to the [`gate`].
#[derive(Clone)]
pub struct GateSeam {
    tx: mpsc::UnboundedSender<Notice>,
    outstanding: Arc<Outstanding>,
    partition: u32,
    record: Arc<AtomicU64>,
}

impl GateSeam {
    /// A seam for `partition` into the gate behind `tx`; `record` is shared with the
    /// partition's appender.
    pub fn new(
        tx: mpsc::UnboundedSender<Notice>,
        outstanding: Arc<Outstanding>,
        partition: u32,
        record: Arc<AtomicU64>,
    ) -> Self {
        Self { tx, outstanding, partition, record }
    }

    /// Hands over an alert recorded by results record `record` (a takeover's).
    pub fn submit_recorded(&self, notice: Notice, record: u64) {
        self.outstanding.add(alert_id(&notice), self.partition, record, notice.due_at);
        if self.tx.send(notice).is_err() {
            warn!("alert gate stopped; alert not sent");
        }
    }
}

impl AlertSeam for GateSeam {
    fn submit(&mut self, notice: Notice) {
        let record = self.record.load(Ordering::SeqCst);
        self.submit_recorded(notice, record);
    }
}

/// How long the gate keeps trying to claim an alert while the bucket does not answer
/// (a server failing over) before it sends it anyway: late or twice beats never.
const CLAIM_PATIENCE: Duration = Duration::from_secs(60);

/// How often an alert claimed by another live instance is looked at again.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// KV requests of the gate (claims) and of the marker (marks) in flight at once, each.
const IN_FLIGHT: usize = 64;

/// What a worker's gate needs.
pub struct Gate {
    /// The bucket `kefu_alerts`.
    pub alerts: kv::Store,
    /// The bucket `kefu_leases` (who is alive).
    pub leases: kv::Store,
    /// This instance: `<worker>/<instance>`.
    pub me: String,
    /// The worker's alert service.
    pub service: Submitter,
    /// The worker's outstanding alerts.
    pub outstanding: Arc<Outstanding>,
    /// Alerts older than this are stale: never sent (the alert plan's limit).
    pub stale_after_ms: i64,
    /// A worker whose liveness entry is older than this is dead (the lease TTL).
    pub lease_ttl_ms: i64,
    /// How long this worker has been writing the lease bucket without an outage: a
    /// liveness entry's age counts no further back (right after a server failed over,
    /// every other worker's entry looks old until it writes again).
    pub health: super::keeper::Health,
}

/// Sends each alert to the worker's alert service once this instance holds its claim;
/// claims run concurrently, so the gate keeps up with the runtimes.
pub async fn gate(g: Gate, mut rx: mpsc::UnboundedReceiver<Notice>) {
    let g = Arc::new(g);
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut claims = tokio::task::JoinSet::new();
    while let Some(n) = rx.recv().await {
        while claims.try_join_next().is_some() {}
        let (g, permits) = (g.clone(), permits.clone());
        claims.spawn(async move {
            let id = alert_id(&n);
            loop {
                let verdict = {
                    let _permit = permits.acquire().await;
                    let healthy_ms = i64::try_from(g.health.healthy_for().as_millis()).unwrap_or(i64::MAX);
                    claim(&g.alerts, &g.leases, &id, &g.me, g.lease_ttl_ms, healthy_ms).await
                };
                match verdict {
                    // Held by this instance: submitted once, whichever task got here first.
                    // (A claim whose answer was lost — a server failing over — reads as
                    // this instance's on the retry, though nothing was submitted yet.)
                    Claim::Mine | Claim::Ours => {
                        if g.outstanding.submit_once(&id) {
                            g.service.submit(n);
                        }
                        return;
                    }
                    Claim::Final => break,
                    Claim::Held if crate::time::now_ms() - n.due_at > g.stale_after_ms => break,
                    Claim::Held => tokio::time::sleep(WATCH_EVERY).await,
                }
            }
            g.outstanding.done(&id);
        });
    }
    while claims.join_next().await.is_some() {}
}

/// What a claim attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// This instance is to send it (it was free, its holder died, or the bucket did not
    /// answer for [`CLAIM_PATIENCE`]).
    Mine,
    /// This instance holds the claim (an earlier try, maybe one whose answer was lost).
    Ours,
    /// Sent, or given up on.
    Final,
    /// Another live instance holds it.
    Held,
}

/// Tries to claim alert `id` for `me` (`<worker>/<instance>`).
async fn claim(
    alerts: &kv::Store,
    leases: &kv::Store,
    id: &str,
    me: &str,
    ttl_ms: i64,
    healthy_ms: i64,
) -> Claim {
    use async_nats::jetstream::kv::CreateErrorKind;
    let started = tokio::time::Instant::now();
    loop {
        let error = match alerts.create(id, me.to_string().into()).await {
            Ok(_) => return Claim::Mine,
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => match alerts.entry(id).await {
                Ok(Some(entry)) => {
                    let holder = String::from_utf8_lossy(&entry.value).to_string();
                    if holder == SENT || holder == FAILED {
                        return Claim::Final;
                    }
                    if holder == me {
                        return Claim::Ours;
                    }
                    match alive(leases, &holder, me, ttl_ms, healthy_ms).await {
                        Some(true) => return Claim::Held,
                        // Claimed by an instance that died before the sink answered.
                        Some(false) => match alerts.update(id, me.to_string().into(), entry.revision).await {
                            Ok(_) => return Claim::Mine,
                            Err(e) => e.to_string(),
                        },
                        None => "the claimant's liveness is unknown".to_string(),
                    }
                }
                Ok(None) => continue,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if started.elapsed() > CLAIM_PATIENCE {
            warn!(alert = id, error = %error, "alert claim not possible; sending it");
            return Claim::Mine;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The mark of an alert a sink accepted.
pub const SENT: &str = "sent";
/// The mark of an alert whose tries are spent.
pub const FAILED: &str = "failed";

/// Whether the instance `holder` (`worker/instance`) still says it is alive (`None`: the
/// bucket did not answer): its liveness entry names it and is at most `ttl_ms` older than
/// this instance's own (`me`), by the server's times, counted no further back than
/// `healthy_ms` (this worker's time writing the bucket without an outage), as
/// [`lease::classify`] judges.
async fn alive(leases: &kv::Store, holder: &str, me: &str, ttl_ms: i64, healthy_ms: i64) -> Option<bool> {
    let Some((worker, instance)) = holder.split_once('/') else { return Some(false) };
    let theirs = match leases.entry(lease::worker_key(worker)).await {
        Ok(Some(e)) if e.operation == kv::Operation::Put && e.value.as_ref() == instance.as_bytes() => e,
        Ok(_) => return Some(false),
        Err(_) => return None,
    };
    let my_worker = me.split_once('/').map_or(me, |(w, _)| w);
    let mine = match leases.entry(lease::worker_key(my_worker)).await {
        Ok(Some(e)) => e,
        // Without a reference for "now" it counts as alive: watched, not sent twice.
        Ok(None) => return Some(true),
        Err(_) => return None,
    };
    let ms = |e: &kv::Entry| (e.created.unix_timestamp_nanos() / 1_000_000) as i64;
    Some((ms(&mine) - ms(&theirs)).min(healthy_ms) <= ttl_ms)
}

/// How long a mark is retried while the bucket does not answer.
const MARK_PATIENCE: Duration = Duration::from_secs(60);

/// Marks each alert whose fate the alert service settled `sent` (or `failed`) in
/// `kefu_alerts`, then forgets it as outstanding: nobody sends it again. The marks are
/// written concurrently, so they keep up with the sinks and the window between an answer
/// and its mark stays one round trip.
pub async fn mark(
    alerts: kv::Store,
    outstanding: Arc<Outstanding>,
    mut rx: mpsc::UnboundedReceiver<Receipt>,
) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut puts = tokio::task::JoinSet::new();
    while let Some(r) = rx.recv().await {
        while puts.try_join_next().is_some() {}
        let (alerts, outstanding, permits) = (alerts.clone(), outstanding.clone(), permits.clone());
        puts.spawn(async move {
            let _permit = permits.acquire().await;
            let id = alert_id(&r.notice);
            let value = if r.delivered { SENT } else { FAILED };
            let started = tokio::time::Instant::now();
            loop {
                match alerts.put(&id, value.into()).await {
                    Ok(_) => {
                        outstanding.done(&id);
                        return;
                    }
                    Err(e) if started.elapsed() > MARK_PATIENCE => {
                        warn!(alert = %id, error = %e, "alert delivery not recorded in the cluster");
                        return;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
    }
    while puts.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_stable_and_distinct() {
        let mut n = Notice::summary("s", 1, "x");
        n.shop = "shop-1".into();
        n.conversation = "c1".into();
        let a = alert_id(&n);
        assert_eq!(a.len(), 32);
        assert_eq!(a, alert_id(&n.clone()));
        let mut m = n.clone();
        m.wait_start += 1;
        assert_ne!(alert_id(&m), a);
        let mut m = n.clone();
        m.shop = "shop-2".into();
        assert_ne!(alert_id(&m), a);
    }

    #[test]
    fn settled_stops_before_the_first_alert_not_final() {
        let o = Outstanding::default();
        // Nothing outstanding: everything up to the last record.
        assert_eq!(o.settled(0, 40, 0), 40);
        o.add("a".into(), 0, 12, 1_000);
        o.add("b".into(), 0, 9, 1_000);
        o.add("c".into(), 1, 3, 1_000);
        // Partition 0: before record 9; partition 1: before record 3; others: the last.
        assert_eq!(o.settled(0, 40, 0), 8);
        assert_eq!(o.settled(1, 40, 0), 2);
        assert_eq!(o.settled(2, 40, 0), 40);
        // The same alert registered again keeps its earliest record.
        o.add("a".into(), 0, 30, 1_000);
        o.done("b");
        assert_eq!(o.settled(0, 40, 0), 11);
        o.done("a");
        assert_eq!(o.settled(0, 40, 0), 40);
        // Handed to the alert service once until final, whoever asks.
        assert!(o.submit_once("c") && !o.submit_once("c"));
        // A stale alert is nobody's to send: it no longer holds the partition back.
        assert_eq!(o.settled(1, 40, 1_001), 40);
        assert!(o.is_empty());
    }
}

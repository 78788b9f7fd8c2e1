//! `kefu run --nats`: one worker of the cluster. Every [`lease::RENEW_EVERY`] it says it
//! is alive, renews the leases it holds, and takes or gives back partitions towards its
//! fair share ([`lease::plan`]). Each owned partition runs the single-process pipeline —
//! [`source`] → the live [`Runtime`] → the store writer — on a local SQLite file, with the
//! [`results::Appender`] as the runtime's commit hook: a batch is committed when it is in
//! the results log, and only then acked and its alerts sent.
//!
//! **Takeover** of partition N: claim it in the results log (the fence); restore the
//! latest snapshot from the object store (none: start from the partition's first event);
//! read the log's records since the snapshot before it and seed the new local store's
//! `alerts` table with the alerts they recorded, so the runtime, processing those events
//! again, never records an alert twice; hand the recorded alerts to the alert gate, which
//! sends the ones no live worker has claimed; consume the stream after the snapshot.
//!
//! **Alerts** leave through a gate: before an alert goes to the sinks, the worker claims
//! its id in the bucket `kefu_alerts` (`create`: one claimant), as `<worker>/<instance>`;
//! the sink's answer turns the claim into `sent`. An alert claimed by an instance that is
//! no longer alive and never marked sent is taken over by the partition's new owner. So
//! a takeover, a lease lost to a slow network or a worker that restarts never sends an
//! alert twice; the one window left is a worker killed between a sink's answer and the
//! `sent` mark (milliseconds), where the alert is sent again: at least once, never lost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::results::{self, Appender, Record};
use super::setup::{self, Handles};
use super::{ClusterConfig, ClusterError, lease, source};
use crate::alerts::plan::Disposition;
use crate::alerts::{AlertConfig, AlertService, Notice};
use crate::engine::snapshot::{self, Snapshot};
use crate::live::{AlertSeam, LiveConfig, LiveCounters, Runtime};
use crate::store::{BatchWriter, Store};

/// Everything a worker needs.
#[derive(Clone)]
pub struct WorkerOptions {
    /// The cluster.
    pub cluster: ClusterConfig,
    /// This worker's id (unique among the workers; letters, digits, `-`, `_`).
    pub id: String,
    /// A folder of its own for the partitions' local databases and the alert outbox.
    pub state: PathBuf,
    /// The runtime's settings (rules, alert plan, time).
    pub live: LiveConfig,
    /// Alert sinks.
    pub alerts: AlertConfig,
}

/// A worker's counters (the runtimes' own are summed in `live`).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// The runtimes' counters, summed over the partitions.
    pub live: Arc<LiveCounters>,
    /// Partitions owned now.
    pub owned: std::sync::atomic::AtomicU64,
    /// Partitions taken since start.
    pub taken: std::sync::atomic::AtomicU64,
    /// Partitions lost to another worker (fenced or lease lost).
    pub lost: std::sync::atomic::AtomicU64,
}

/// The id under which an alert's sender is recorded in `kefu_alerts`: a hash of its key
/// (shop, conversation, wait start, kind), the same whichever worker sends it.
pub fn alert_id(n: &Notice) -> String {
    alert_id_of(&n.shop, &n.conversation, n.wait_start, n.kind.as_str())
}

/// [`alert_id`] from the key's parts.
pub fn alert_id_of(shop: &str, conversation: &str, wait_start: crate::time::Millis, kind: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [shop.as_bytes(), conversation.as_bytes(), &wait_start.to_le_bytes(), kind.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

struct Owned {
    revision: u64,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ClusterError>>,
}

/// Runs the worker until `shutdown` turns true, then gives its partitions back cleanly.
pub async fn run(
    opts: WorkerOptions,
    counters: Arc<WorkerCounters>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ClusterError> {
    std::fs::create_dir_all(&opts.state)
        .map_err(|source| ClusterError::Read { path: opts.state.display().to_string(), source })?;
    let client = super::connect(&opts.cluster.servers).await?;
    let h = setup::ensure(client, &opts.cluster).await?;
    // The outbox starts empty: what this worker left unsent before a crash belongs to the
    // partitions' new owners, who send it again (see the module doc).
    let outbox = opts.state.join("alerts.db");
    remove_db(&outbox);
    let (delivered_tx, delivered_rx) = mpsc::unbounded_channel();
    let service = AlertService::start_with_receipts(opts.alerts.clone(), &outbox, delivered_tx)?;
    let marker = tokio::spawn(mark_delivered(h.alerts.clone(), delivered_rx));
    let instance = format!("{:016x}", rand::random::<u64>());
    let (gate_tx, gate_rx) = mpsc::unbounded_channel();
    let claimant = format!("{}/{instance}", opts.id);
    let pending = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let gate_task = tokio::spawn(gate(
        h.alerts.clone(),
        h.leases.clone(),
        claimant,
        gate_rx,
        service.submitter(),
        pending.clone(),
    ));
    let seam = GateSeam { tx: gate_tx, pending };
    let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
    let mut tick = tokio::time::interval(lease::RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(worker = %opts.id, partitions = h.partitions, "worker started");
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            _ = tick.tick() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        round(&h, &opts, &instance, &counters, &seam, &mut owned).await;
    }
    info!(worker = %opts.id, owned = owned.len(), "stopping: committing and giving the partitions back");
    for (n, o) in std::mem::take(&mut owned) {
        give_back(&h, n, o).await;
    }
    let _ = lease_gone(&h, &opts.id).await;
    drop(seam);
    let _ = tokio::time::timeout(Duration::from_secs(5), gate_task).await;
    let report = service.shutdown(Duration::from_secs(5)).await;
    marker.abort();
    info!(pending_alerts = report.pending, "worker stopped");
    Ok(())
}

async fn lease_gone(h: &Handles, id: &str) -> Result<(), ClusterError> {
    h.leases
        .delete(lease::worker_key(id))
        .await
        .map_err(|e| ClusterError::js("removing the worker's liveness entry")(e.into()))
}

/// One round: alive, renew, drop what ended, take or give back towards the fair share.
async fn round(
    h: &Handles,
    opts: &WorkerOptions,
    instance: &str,
    counters: &Arc<WorkerCounters>,
    seam: &GateSeam,
    owned: &mut BTreeMap<u32, Owned>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    if let Err(e) = lease::heartbeat(&h.leases, &opts.id, instance).await {
        warn!(error = %e, "liveness entry not written");
    }
    let ended: Vec<u32> = owned.iter().filter(|(_, o)| o.task.is_finished()).map(|(n, _)| *n).collect();
    for n in ended {
        let Some(o) = owned.remove(&n) else { continue };
        match o.task.await {
            Ok(Err(ClusterError::Fenced { .. })) | Ok(Err(ClusterError::Live(_))) => {
                counters.lost.fetch_add(1, Relaxed);
                warn!(partition = n, "partition lost: another worker writes its results now");
            }
            Ok(Err(e)) => {
                warn!(partition = n, error = %format!("{e:#}"), "partition stopped; it is taken again")
            }
            Ok(Ok(())) => {}
            Err(e) => warn!(partition = n, error = %e, "partition task failed"),
        }
        lease::release(&h.leases, n, o.revision).await;
    }
    let mut lost = Vec::new();
    for (n, o) in owned.iter_mut() {
        match lease::renew(&h.leases, *n, &opts.id, o.revision).await {
            Ok(r) => o.revision = r,
            Err(lease::Renewal::Lost) => lost.push(*n),
            Err(lease::Renewal::Unknown(e)) => {
                warn!(partition = n, error = %e, "lease not renewed; trying again")
            }
        }
    }
    for n in lost {
        if let Some(o) = owned.remove(&n) {
            // The fence refuses its writes already; stop reading at once.
            o.task.abort();
            counters.lost.fetch_add(1, Relaxed);
            warn!(partition = n, "lease lost: partition dropped");
        }
    }
    let view = match lease::view(&h.leases).await {
        Ok(v) => v,
        Err(e) => {
            warn!(error = %e, "leases not read");
            return;
        }
    };
    let mine: BTreeSet<u32> = owned.keys().copied().collect();
    let free: BTreeSet<u32> = (0..h.partitions).filter(|p| !view.owned.contains(p)).collect();
    let workers = view.workers.len().max(1);
    let plan = lease::plan(&opts.id, h.partitions, workers, &mine, &free);
    for n in plan.take {
        let Some(revision) = lease::take(&h.leases, n, &opts.id).await else { continue };
        info!(partition = n, lease = revision, "partition taken");
        counters.taken.fetch_add(1, Relaxed);
        let (stop, stop_rx) = watch::channel(false);
        let task =
            tokio::spawn(own(h.clone(), opts.clone(), n, revision, seam.clone(), counters.clone(), stop_rx));
        owned.insert(n, Owned { revision, stop, task });
    }
    for n in plan.release {
        if let Some(o) = owned.remove(&n) {
            info!(partition = n, "giving a partition back (fair share)");
            give_back(h, n, o).await;
        }
    }
    counters.owned.store(owned.len() as u64, Relaxed);
}

/// Stops a partition cleanly (what it holds is committed and acked), then frees its lease.
async fn give_back(h: &Handles, n: u32, o: Owned) {
    o.stop.send_replace(true);
    match tokio::time::timeout(Duration::from_secs(30), o.task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(partition = n, error = %format!("{e:#}"), "partition stopped with an error"),
        Ok(Err(e)) => warn!(partition = n, error = %e, "partition task failed"),
        Err(_) => warn!(partition = n, "partition did not stop within 30 s"),
    }
    lease::release(&h.leases, n, o.revision).await;
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Owns partition `n` until `stop`, a fence or an error.
async fn own(
    h: Handles,
    opts: WorkerOptions,
    n: u32,
    revision: u64,
    seam: GateSeam,
    counters: Arc<WorkerCounters>,
    stop: watch::Receiver<bool>,
) -> Result<(), ClusterError> {
    let (appender, claim) = Appender::claim(h.js.clone(), h.results.clone(), n, &opts.id, revision).await?;
    let restored = super::snapshots::latest(&h.snapshots, n).await;
    let (position, settled) = restored.as_ref().map_or((0, 0), |(hd, _)| (hd.position, hd.settled));
    // What earlier owners recorded since every alert was claimed: their alerts must not be
    // recorded again, and the gate sends those nobody claimed (or a dead worker did).
    let mut recorded: Vec<Notice> = Vec::new();
    results::for_each(&h.results, Some(n), settled + 1, claim.saturating_sub(1), |_, r| {
        if let Record::Batch(b) = r {
            recorded.extend(b.alerts);
        }
        Ok(())
    })
    .await?;
    let db = opts.state.join(format!("p{n}.db"));
    remove_db(&db);
    let mut store = Store::open(&db)?;
    {
        let tx = store.conn_mut().transaction().map_err(crate::store::StoreError::from)?;
        BatchWriter::new(&tx)?.alerts(recorded.clone())?;
        if let Some((_, snap)) = restored {
            // The local store starts empty: the state stands before its first event.
            let local = Snapshot { position: 0, ..snap };
            crate::store::snapshots::save(&tx, 0, snapshot::VERSION, 0, 0, &snapshot::encode(&local))?;
        }
        tx.commit().map_err(crate::store::StoreError::from)?;
    }
    info!(partition = n, snapshot_position = position, records = recorded.len(), "partition restored");
    let now = opts.live.time.now_ms();
    let mut seam_now = seam.clone();
    for a in recorded {
        if opts.live.plan.disposition(a.due_at, now) != Disposition::Stale {
            seam_now.submit(a);
        }
    }
    let gate = seam.pending.clone();
    let (runtime, committed) =
        Runtime::open(store, opts.live.clone(), Box::new(seam), counters.live.clone())?;
    let runtime =
        runtime.with_hook(Box::new(appender.with_snapshots(h.snapshots.clone(), settled, position, gate)));
    let consumer = source::open(&h.events, n, position).await?;
    let (frames_tx, frames_rx) = mpsc::channel(crate::live::runtime::BATCH * 4);
    let mut runtime = tokio::spawn(runtime.run(frames_rx));
    let feed = source::run(consumer, n, frames_tx, committed, stop);
    tokio::pin!(feed);
    let fed = tokio::select! {
        r = &mut feed => r,
        r = &mut runtime => return ended(n, r),
    };
    // The feed stopped (stop asked): the runtime commits what it holds and ends.
    let r = runtime.await;
    fed?;
    ended(n, r)
}

fn ended(
    n: u32,
    r: Result<Result<(), crate::live::LiveError>, tokio::task::JoinError>,
) -> Result<(), ClusterError> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(crate::live::LiveError::Hook(e))) => {
            warn!(partition = n, error = %e, "results not written");
            Err(ClusterError::Fenced { partition: n })
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(ClusterError::Read {
            path: format!("partition {n}"),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// The runtime's alert seam in cluster mode: alerts go to the [`gate`]; `pending` counts
/// those not yet claimed (a snapshot's `settled` moves only when none are).
#[derive(Clone)]
struct GateSeam {
    tx: mpsc::UnboundedSender<Notice>,
    pending: Arc<std::sync::atomic::AtomicU64>,
}

impl AlertSeam for GateSeam {
    fn submit(&mut self, notice: Notice) {
        self.pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.tx.send(notice).is_err() {
            warn!("alert gate stopped; alert not sent");
        }
    }
}

/// How long the gate keeps trying to claim an alert while the bucket does not answer
/// (a server failing over) before it sends it anyway: late or twice beats never.
const CLAIM_PATIENCE: Duration = Duration::from_secs(60);

/// Sends each alert to the sinks once this worker instance holds its claim; claims are
/// made concurrently (at most [`MARKS_IN_FLIGHT`]), so the gate keeps up with the runtime.
async fn gate(
    alerts: async_nats::jetstream::kv::Store,
    leases: async_nats::jetstream::kv::Store,
    me: String,
    mut rx: mpsc::UnboundedReceiver<Notice>,
    service: crate::alerts::Submitter,
    pending: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut claims = tokio::task::JoinSet::new();
    while let Some(n) = rx.recv().await {
        while claims.len() >= MARKS_IN_FLIGHT {
            claims.join_next().await;
        }
        let (alerts, leases, me, service, pending) =
            (alerts.clone(), leases.clone(), me.clone(), service.clone(), pending.clone());
        claims.spawn(async move {
            if claim(&alerts, &leases, &alert_id(&n), &me).await {
                service.submit(n);
            }
            pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
    while claims.join_next().await.is_some() {}
}

/// Claims alert `id` for `me` (`<worker>/<instance>`): true when this instance is to send
/// it — nobody claimed it, or its claimant died without marking it sent.
async fn claim(
    alerts: &async_nats::jetstream::kv::Store,
    leases: &async_nats::jetstream::kv::Store,
    id: &str,
    me: &str,
) -> bool {
    use async_nats::jetstream::kv::CreateErrorKind;
    let started = tokio::time::Instant::now();
    loop {
        let error = match alerts.create(id, me.to_string().into()).await {
            Ok(_) => return true,
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => match alerts.entry(id).await {
                Ok(Some(entry)) => {
                    let holder = String::from_utf8_lossy(&entry.value).to_string();
                    if holder == "sent" || holder == me {
                        return false;
                    }
                    match alive(leases, &holder).await {
                        Some(true) => return false,
                        // Claimed by an instance that died before the sink answered.
                        Some(false) => match alerts.update(id, me.to_string().into(), entry.revision).await {
                            Ok(_) => return true,
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
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the instance `worker/instance` still says it is alive (`None`: the bucket
/// did not answer).
async fn alive(leases: &async_nats::jetstream::kv::Store, holder: &str) -> Option<bool> {
    let Some((worker, instance)) = holder.split_once('/') else { return Some(false) };
    match leases.get(lease::worker_key(worker)).await {
        Ok(Some(v)) => Some(v.as_ref() == instance.as_bytes()),
        Ok(None) => Some(false),
        Err(_) => None,
    }
}

/// Marks each alert a sink accepted `sent` in `kefu_alerts`: nobody sends it again. The
/// marks are written concurrently (at most [`MARKS_IN_FLIGHT`]), so they keep up with the
/// sinks and the window between an answer and its mark stays a round trip.
async fn mark_delivered(alerts: async_nats::jetstream::kv::Store, mut rx: mpsc::UnboundedReceiver<Notice>) {
    let mut puts = tokio::task::JoinSet::new();
    while let Some(n) = rx.recv().await {
        while puts.len() >= MARKS_IN_FLIGHT {
            puts.join_next().await;
        }
        let alerts = alerts.clone();
        puts.spawn(async move {
            if let Err(e) = alerts.put(alert_id(&n), "sent".into()).await {
                warn!(error = %e, "alert delivery not recorded in the cluster");
            }
        });
    }
    while puts.join_next().await.is_some() {}
}

/// `sent` marks written at once at most.
const MARKS_IN_FLIGHT: usize = 64;

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
}

//! `kefu run --nats`: one worker of the cluster. Its lease keeper ([`super::keeper`], a
//! thread of its own) says every [`lease::RENEW_EVERY`] that it is alive, renews the
//! leases it holds, and takes or gives back partitions towards its fair share
//! ([`lease::plan`]); the worker starts and stops the ownerships it is told of. Each owned partition runs the single-process pipeline —
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
//! **Alerts** leave through the [`gate`](super::gate): claimed by alert id in
//! `kefu_alerts` before they go to the sinks, marked `sent` after; a takeover hands the gate
//! every alert recorded since the snapshot's `settled` point, and the gate sends those no
//! live worker holds. See the gate's module doc for what is guaranteed and the one window.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::gate::{self, GateSeam, Outstanding};
use super::keeper::{Keeper, Note, Releaser};
use super::results::{self, Appender, Record};
use super::setup::{self, Handles};
use super::{ClusterConfig, ClusterError, lease, source};
use crate::alerts::plan::Disposition;
use crate::alerts::{AlertConfig, AlertService, Notice};
use crate::engine::snapshot::{self, Snapshot};
use crate::live::{LiveConfig, LiveCounters, Runtime};
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

pub use super::gate::{alert_id, alert_id_of};

struct Owned {
    /// The ownership's lease revision (when taken).
    lease: u64,
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
    // The partitions' databases are scratch too (rebuilt at each takeover).
    if let Ok(dir) = std::fs::read_dir(&opts.state) {
        for f in dir.flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if name.starts_with('p') && name.contains(".db") {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
    let (receipts_tx, receipts_rx) = mpsc::unbounded_channel();
    let service = AlertService::start_with_receipts(opts.alerts.clone(), &outbox, receipts_tx)?;
    let outstanding = Arc::new(Outstanding::default());
    let marker = tokio::spawn(gate::mark(h.alerts.clone(), outstanding.clone(), receipts_rx));
    let instance = format!("{:016x}", rand::random::<u64>());
    // Membership and leases on a thread of their own (see the keeper's module doc).
    let (keeper, mut notes) = Keeper::start(&opts.cluster, &opts.id, &instance).await?;
    let releaser = keeper.releaser();
    let (gate_tx, gate_rx) = mpsc::unbounded_channel();
    let gate_task = tokio::spawn(gate::gate(
        gate::Gate {
            alerts: h.alerts.clone(),
            leases: h.leases.clone(),
            me: format!("{}/{instance}", opts.id),
            service: service.submitter(),
            outstanding: outstanding.clone(),
            stale_after_ms: opts.live.plan.stale_after_ms,
            lease_ttl_ms: i64::try_from(opts.cluster.lease_ttl.as_millis()).unwrap_or(i64::MAX),
            health: keeper.health(),
        },
        gate_rx,
    ));
    let seam = Seams { tx: gate_tx, outstanding };
    let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
    let mut tick = tokio::time::interval(lease::RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(worker = %opts.id, partitions = h.partitions, "worker started");
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {}
            note = notes.recv() => match note {
                Some(note) => on_note(note, &h, &opts, &counters, &seam, &releaser, &mut owned),
                None => warn!("the lease keeper stopped"),
            },
            _ = tick.tick() => reap(&releaser, &counters, &mut owned).await,
        }
        if *shutdown.borrow() {
            break;
        }
        counters.owned.store(owned.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    info!(worker = %opts.id, owned = owned.len(), "stopping: committing and giving the partitions back");
    // All at once: each waits up to 30 s for its partition to commit and stop (longer when
    // no server answers), so one after the other a worker whose servers are gone would
    // take that many times longer to stop.
    futures_util::future::join_all(
        std::mem::take(&mut owned).into_iter().map(|(n, o)| give_back(releaser.clone(), n, o)),
    )
    .await;
    keeper.stop().await;
    drop(seam);
    let _ = tokio::time::timeout(Duration::from_secs(5), gate_task).await;
    let report = service.shutdown(Duration::from_secs(5)).await;
    marker.abort();
    info!(pending_alerts = report.pending, "worker stopped");
    Ok(())
}

/// What the lease keeper said: start, stop or give back an ownership.
fn on_note(
    note: Note,
    h: &Handles,
    opts: &WorkerOptions,
    counters: &Arc<WorkerCounters>,
    seam: &Seams,
    releaser: &Releaser,
    owned: &mut BTreeMap<u32, Owned>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    match note {
        Note::Took { n, lease } => {
            counters.taken.fetch_add(1, Relaxed);
            let (stop, stop_rx) = watch::channel(false);
            let task =
                tokio::spawn(own(h.clone(), opts.clone(), n, lease, seam.clone(), counters.clone(), stop_rx));
            if let Some(old) = owned.insert(n, Owned { lease, stop, task }) {
                old.task.abort();
            }
        }
        Note::Lost { n, lease } => {
            if owned.get(&n).is_some_and(|o| o.lease == lease)
                && let Some(o) = owned.remove(&n)
            {
                // The fence refuses its writes already; stop reading at once.
                o.task.abort();
                counters.lost.fetch_add(1, Relaxed);
                warn!(partition = n, "lease lost: partition dropped");
            }
        }
        Note::GiveBack { n, lease } => {
            if owned.get(&n).is_some_and(|o| o.lease == lease)
                && let Some(o) = owned.remove(&n)
            {
                info!(partition = n, "giving a partition back (fair share)");
                // Off the loop: stopping commits what the partition holds.
                tokio::spawn(give_back(releaser.clone(), n, o));
            }
        }
    }
}

/// Ownerships whose task ended (fenced, failed): their leases are given back, so the
/// partition is taken again (by whoever's share it is).
async fn reap(releaser: &Releaser, counters: &Arc<WorkerCounters>, owned: &mut BTreeMap<u32, Owned>) {
    use std::sync::atomic::Ordering::Relaxed;
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
        releaser.release(n, o.lease).await;
    }
}

/// Stops a partition cleanly (what it holds is committed and acked), then frees its lease.
async fn give_back(releaser: Releaser, n: u32, o: Owned) {
    o.stop.send_replace(true);
    match tokio::time::timeout(Duration::from_secs(30), o.task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(partition = n, error = %format!("{e:#}"), "partition stopped with an error"),
        Ok(Err(e)) => warn!(partition = n, error = %e, "partition task failed"),
        Err(_) => warn!(partition = n, "partition did not stop within 30 s"),
    }
    releaser.release(n, o.lease).await;
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
    seam: Seams,
    counters: Arc<WorkerCounters>,
    stop: watch::Receiver<bool>,
) -> Result<(), ClusterError> {
    let (appender, claim) = Appender::claim(h.js.clone(), h.results.clone(), n, &opts.id, revision).await?;
    let restored = super::snapshots::latest(&h.snapshots, n).await;
    let (position, settled) = restored.as_ref().map_or((0, 0), |(hd, _)| (hd.position, hd.settled));
    // What earlier owners recorded since every recorded alert was final: their alerts must
    // not be recorded again, and the gate sends those nobody sent (or a dead worker held).
    let mut recorded: Vec<(u64, Notice)> = Vec::new();
    results::for_each(&h.results, Some(n), settled + 1, claim.saturating_sub(1), |seq, r| {
        if let Record::Batch(b) = r {
            recorded.extend(b.alerts.into_iter().map(|a| (seq, a)));
        }
        Ok(())
    })
    .await?;
    // A file of its own per ownership: a runtime of an earlier ownership of the same
    // partition (a lease lost and taken again) never shares files with this one.
    let db = opts.state.join(format!("p{n}-{revision}.db"));
    remove_db(&db);
    let mut store = Store::open(&db)?;
    {
        let tx = store.conn_mut().transaction().map_err(crate::store::StoreError::from)?;
        BatchWriter::new(&tx)?.alerts(recorded.iter().map(|(_, a)| a.clone()).collect())?;
        if let Some((_, snap)) = restored {
            // The local store starts empty: the state stands before its first event.
            let local = Snapshot { position: 0, ..snap };
            crate::store::snapshots::save(&tx, 0, snapshot::VERSION, 0, 0, &snapshot::encode(&local))?;
        }
        tx.commit().map_err(crate::store::StoreError::from)?;
    }
    info!(partition = n, snapshot_position = position, records = recorded.len(), "partition restored");
    let record = Arc::new(std::sync::atomic::AtomicU64::new(claim));
    let outstanding = seam.outstanding.clone();
    let seam = GateSeam::new(seam.tx, seam.outstanding, n, record.clone());
    let now = opts.live.time.now_ms();
    for (seq, a) in recorded {
        if opts.live.plan.disposition(a.due_at, now) != Disposition::Stale {
            seam.submit_recorded(a, seq);
        }
    }
    let tracking = results::Tracking { outstanding, record, stale_after_ms: opts.live.plan.stale_after_ms };
    let (runtime, committed) =
        Runtime::open(store, opts.live.clone(), Box::new(seam), counters.live.clone())?;
    let runtime = runtime.with_hook(Box::new(appender.with_snapshots(
        h.snapshots.clone(),
        settled,
        position,
        tracking,
    )));
    let consumer = source::open(&h.events, n, revision, position).await?;
    let (frames_tx, frames_rx) = mpsc::channel(crate::live::runtime::BATCH * 2);
    // Ends with this task, however it ends (a lost lease aborts it): no runtime of an
    // ownership that is over goes on committing next to the new one.
    let mut runtime = AbortOnDrop(tokio::spawn(runtime.run(frames_rx)));
    let feed = source::run(consumer, n, frames_tx, committed, stop);
    tokio::pin!(feed);
    let fed = tokio::select! {
        r = &mut feed => r,
        r = &mut runtime.0 => return ended(n, r),
    };
    // The feed stopped (stop asked): the runtime commits what it holds and ends.
    let r = (&mut runtime.0).await;
    fed?;
    ended(n, r)
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
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

/// What each owned partition's [`GateSeam`] is made from: the way into the worker's gate
/// and its outstanding alerts.
#[derive(Clone)]
struct Seams {
    tx: mpsc::UnboundedSender<Notice>,
    outstanding: Arc<Outstanding>,
}

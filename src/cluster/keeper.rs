//! The lease keeper: a worker's membership and leases on a thread of their own, with a
//! NATS connection of their own, so neither a busy worker nor a slow request delays them.
//!
//! Why a thread: each owned partition's runtime processes its batches synchronously on
//! the worker's async threads (engine work, the SQLite commit, a snapshot's encoding,
//! a takeover's restore). On a busy machine these held every async thread — and the
//! connection's own I/O task — long enough that a holder missed its renewals and lost
//! its partitions while alive. The keeper's thread only ever waits on the network.
//!
//! Two loops run on it, each every [`lease::RENEW_EVERY`]:
//!
//! - **renewal**: writes the liveness entry, then renews every held lease at once
//!   (concurrently, each bounded by one round), so one slow answer never holds up the
//!   others and a round never outlasts the next;
//! - **planning**: reads the bucket ([`lease::view`]), takes free or expired partitions
//!   towards the fair share and asks the worker to give back what is beyond it
//!   ([`lease::plan`]). A slow read (a server failing over) delays only this loop.
//!
//! The worker hears [`Note::Took`], [`Note::Lost`] and [`Note::GiveBack`]; it answers
//! [`Keeper::release`] once a partition's runtime has stopped.
//!
//! **After an outage of the bucket** (its stream leader lost, a new one elected: seconds)
//! no worker could renew, and every lease looks older than the TTL to whoever reads the
//! bucket first. A lease therefore expires only by time during which this worker has
//! been writing the bucket without a failure ([`lease::classify`]'s `healthy_ms`): its
//! holder gets a full TTL after the bucket's return to renew. A dead worker's partitions
//! are free one TTL after its last renewal as before, when the bucket was not down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use tokio::sync::{Mutex, mpsc};
use tracing::{debug, info, warn};

use super::{ClusterConfig, ClusterError, lease, setup};

/// What the keeper tells the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Partition `n` is this worker's now, under lease `lease` (its revision when taken:
    /// the ownership's id, which the fencing claim quotes).
    Took {
        /// The partition.
        n: u32,
        /// The ownership's lease revision.
        lease: u64,
    },
    /// The lease of this ownership was taken by another worker: stop at once.
    Lost {
        /// The partition.
        n: u32,
        /// The ownership's lease revision.
        lease: u64,
    },
    /// More than the fair share: stop this ownership cleanly, then [`Keeper::release`].
    GiveBack {
        /// The partition.
        n: u32,
        /// The ownership's lease revision.
        lease: u64,
    },
}

/// A held lease: the ownership's id (revision when taken) and the revision last written.
#[derive(Debug, Clone, Copy)]
struct Held {
    lease: u64,
    revision: u64,
    /// Asked to be given back: not counted again for a give-back.
    leaving: bool,
}

#[derive(Default)]
struct Writes {
    /// The first liveness write after the last outage (none yet: no write succeeded).
    since: Option<Instant>,
    /// The last liveness write that succeeded.
    last_ok: Option<Instant>,
}

struct Shared {
    held: Mutex<BTreeMap<u32, Held>>,
    /// Since when the liveness writes have succeeded without an outage.
    health: StdMutex<Writes>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// The handle the worker keeps; the keeper's thread ends with [`Keeper::stop`] (or when
/// the handle is dropped: a worker that ends stops renewing, and its leases expire).
pub struct Keeper {
    releaser: Releaser,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Gives back the leases of stopped ownerships (cloneable, for tasks that stop them).
#[derive(Clone)]
pub struct Releaser {
    shared: Arc<Shared>,
    leases: kv::Store,
    rt: tokio::runtime::Handle,
}

/// How long giving a lease back or removing the liveness entry may take at the end.
const PATIENCE: Duration = Duration::from_secs(5);

/// No liveness write succeeded for longer than this: the bucket was out (a stream leader
/// lost, an election), and no holder could renew either. A single slow write is not one.
const OUTAGE: Duration = Duration::from_secs(3);

impl Keeper {
    /// Starts the keeper's thread for worker `me` (process instance `instance`); its notes
    /// arrive on the returned receiver. Returns once its connection is up.
    pub async fn start(
        config: &ClusterConfig,
        me: &str,
        instance: &str,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Note>), ClusterError> {
        let (notes_tx, notes_rx) = mpsc::unbounded_channel();
        let (stop, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            held: Mutex::new(BTreeMap::new()),
            health: StdMutex::new(Writes::default()),
            stop,
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("kefu-leases")
            .build()
            .map_err(|source| ClusterError::Read { path: "the lease keeper's runtime".into(), source })?;
        let handle = rt.handle().clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (servers, shared2) = (config.servers.clone(), shared.clone());
        let (me, instance, partitions, ttl) =
            (me.to_string(), instance.to_string(), config.partitions, config.lease_ttl);
        let thread = std::thread::Builder::new()
            .name("kefu-leases".into())
            .spawn(move || {
                rt.block_on(async move {
                    // The connection is made on the keeper's runtime, so its I/O runs here.
                    let opened = async {
                        let client = super::connect(&servers).await?;
                        async_nats::jetstream::new(client)
                            .get_key_value(setup::LEASES)
                            .await
                            .map_err(|e| ClusterError::js("opening the lease bucket")(e.into()))
                    };
                    let leases = match opened.await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(leases.clone()));
                    let ctx = Ctx { shared: shared2, leases, me, instance, partitions, ttl, notes: notes_tx };
                    let renewing = tokio::spawn(renewal(ctx.clone()));
                    let planning = tokio::spawn(planning(ctx.clone()));
                    let mut stop = ctx.shared.stop.subscribe();
                    let _ = stop.wait_for(|s| *s).await;
                    planning.abort();
                    let _ = planning.await;
                    renewing.abort();
                    let _ = renewing.await;
                    // Whatever is still held is given back; then the worker is gone.
                    let held = std::mem::take(&mut *ctx.shared.held.lock().await);
                    for (n, h) in held {
                        let _ =
                            tokio::time::timeout(PATIENCE, lease::release(&ctx.leases, n, h.revision)).await;
                    }
                    let gone = ctx.leases.delete(lease::worker_key(&ctx.me));
                    let _ = tokio::time::timeout(PATIENCE, gone).await;
                });
            })
            .map_err(|source| ClusterError::Read { path: "the lease keeper's thread".into(), source })?;
        let leases = match ready_rx.await {
            Ok(r) => r?,
            Err(_) => return Err(ClusterError::js("starting the lease keeper")("its thread ended".into())),
        };
        Ok((Self { releaser: Releaser { shared, leases, rt: handle }, thread: Some(thread) }, notes_rx))
    }

    /// How long this worker has been writing the lease bucket without an outage.
    pub fn health(&self) -> Health {
        Health(self.releaser.shared.clone())
    }

    /// A handle that gives back leases.
    pub fn releaser(&self) -> Releaser {
        self.releaser.clone()
    }

    /// Stops renewing, gives back what is still held, removes the liveness entry and ends
    /// the thread.
    pub async fn stop(mut self) {
        self.releaser.shared.stop.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.releaser.shared.stop.send_replace(true);
    }
}

impl Releaser {
    /// Partition `n`'s ownership `lease` has stopped (cleanly, fenced or failed): its
    /// lease is given back at the revision last written, and no longer renewed.
    pub async fn release(&self, n: u32, lease: u64) {
        let revision = {
            let mut held = self.shared.held.lock().await;
            match held.get(&n) {
                Some(h) if h.lease == lease => held.remove(&n).map(|h| h.revision),
                _ => None,
            }
        };
        if let Some(revision) = revision {
            let leases = self.leases.clone();
            // On the keeper's runtime: its connection's I/O runs there.
            let _ = self.rt.spawn(async move { lease::release(&leases, n, revision).await }).await;
        }
    }
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    leases: kv::Store,
    me: String,
    instance: String,
    partitions: u32,
    ttl: Duration,
    notes: mpsc::UnboundedSender<Note>,
}

impl Ctx {
    fn healthy_for(&self) -> Duration {
        self.shared.healthy_for()
    }
}

/// How long this worker has been writing the lease bucket without an outage: how far
/// back the age of a lease or a liveness entry counts (see the module doc). Cloneable, for
/// the alert gate, which judges other instances' liveness the same way.
#[derive(Clone)]
pub struct Health(Arc<Shared>);

impl Health {
    /// The time written without an outage (zero: not writing now).
    pub fn healthy_for(&self) -> Duration {
        self.0.healthy_for()
    }
}

impl Shared {
    fn healthy_for(&self) -> Duration {
        let now = Instant::now();
        match self.health.lock() {
            // Writing now, or failing for no longer than an outage: the count goes on.
            Ok(h) => match (h.since, h.last_ok) {
                (Some(since), Some(last)) if now.duration_since(last) <= OUTAGE => now.duration_since(since),
                _ => Duration::ZERO,
            },
            Err(_) => Duration::ZERO,
        }
    }
}

/// Liveness and renewals, every round, each write bounded by one round.
async fn renewal(ctx: Ctx) {
    let mut tick = tokio::time::interval(lease::RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let beat =
            tokio::time::timeout(lease::RENEW_EVERY, lease::heartbeat(&ctx.leases, &ctx.me, &ctx.instance));
        let ok = matches!(beat.await, Ok(Ok(())));
        if ok {
            let now = Instant::now();
            if let Ok(mut h) = ctx.shared.health.lock() {
                // The first write after an outage (or the first at all) starts the count.
                if h.last_ok.is_none_or(|t| now.duration_since(t) > OUTAGE) {
                    h.since = Some(now);
                }
                h.last_ok = Some(now);
            }
        }
        if !ok {
            warn!("liveness entry not written");
        }
        let mut held = ctx.shared.held.lock().await;
        let renewals = held.iter().map(|(&n, h)| {
            let (leases, me, revision) = (&ctx.leases, &ctx.me, h.revision);
            async move {
                let r = tokio::time::timeout(lease::RENEW_EVERY, lease::renew(leases, n, me, revision)).await;
                (n, r.unwrap_or_else(|_| Err(lease::Renewal::Unknown("no answer within a round".into()))))
            }
        });
        for (n, r) in futures_util::future::join_all(renewals).await {
            match r {
                Ok(revision) => {
                    if let Some(h) = held.get_mut(&n) {
                        h.revision = revision;
                    }
                }
                Err(lease::Renewal::Lost) => {
                    if let Some(h) = held.remove(&n) {
                        let _ = ctx.notes.send(Note::Lost { n, lease: h.lease });
                    }
                }
                Err(lease::Renewal::Unknown(e)) => {
                    warn!(partition = n, error = %e, "lease not renewed; trying again")
                }
            }
        }
    }
}

/// Reading the bucket, taking towards the fair share, asking for give-backs.
async fn planning(ctx: Ctx) {
    let mut tick = tokio::time::interval(lease::RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ttl_ms = i64::try_from(ctx.ttl.as_millis()).unwrap_or(i64::MAX);
    loop {
        tick.tick().await;
        let healthy_ms = i64::try_from(ctx.healthy_for().as_millis()).unwrap_or(i64::MAX);
        let view = match lease::entries(&ctx.leases).await {
            Ok(e) => lease::classify(&e, ttl_ms, healthy_ms),
            Err(e) => {
                warn!(error = %e, "leases not read");
                continue;
            }
        };
        let mine: std::collections::BTreeSet<u32> = {
            let held = ctx.shared.held.lock().await;
            held.iter().filter(|(_, h)| !h.leaving).map(|(n, _)| *n).collect()
        };
        let free = (0..ctx.partitions).filter(|p| !view.owned.contains(p) && !mine.contains(p)).collect();
        let workers = view.workers.len().max(1);
        let plan = lease::plan(&ctx.me, ctx.partitions, workers, &mine, &free);
        debug!(?mine, ?free, workers = ?view.workers, ?plan, "round");
        for n in plan.take {
            let expired = view.expired.get(&n).copied();
            let Some(revision) = lease::take(&ctx.leases, n, &ctx.me, expired).await else { continue };
            ctx.shared.held.lock().await.insert(n, Held { lease: revision, revision, leaving: false });
            info!(partition = n, lease = revision, "partition taken");
            let _ = ctx.notes.send(Note::Took { n, lease: revision });
        }
        for n in plan.release {
            let mut held = ctx.shared.held.lock().await;
            if let Some(h) = held.get_mut(&n) {
                h.leaving = true;
                let _ = ctx.notes.send(Note::GiveBack { n, lease: h.lease });
            }
        }
    }
}

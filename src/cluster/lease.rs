//! Who owns which partition. Leases live in the KV bucket `kefu_leases`; an entry counts
//! as expired [`super::ClusterConfig::lease_ttl`] after its last write ([`classify`]; the
//! server itself keeps entries for an hour, [`super::setup::LEASES_MAX_AGE`]):
//!
//! - `worker.<id>`: the worker is alive, and which process instance it is (written every
//!   [`RENEW_EVERY`]);
//! - `part.<N>`: the partition's owner. Taken with `create` (only when absent), renewed
//!   with `update` at the revision last written (refused once another worker has taken
//!   it), given back with a delete at that revision.
//!
//! A worker that dies stops renewing: one TTL after its last write its entries count as
//! expired ([`classify`], by the server's own timestamps) and the others take its
//! partitions over at the expired revision.
//! The loops that do this run on the worker's lease keeper ([`super::keeper`]), a thread
//! of their own. Which ones a worker wants is decided here, purely ([`plan`]): each
//! alive worker's fair share, partitions ranked by a rendezvous hash of (worker,
//! partition) so the same worker tends to get the same partitions back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::kv;

use super::ClusterError;

/// How often a worker renews its entries and looks for free partitions.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

/// The key of partition `n`'s lease.
pub fn part_key(n: u32) -> String {
    format!("part.{n}")
}

/// The key of a worker's liveness entry.
pub fn worker_key(id: &str) -> String {
    format!("worker.{id}")
}

/// A worker id usable in a key: letters, digits, `-` and `_`.
pub fn valid_worker_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a worker should do this round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Free partitions to try to take, best first.
    pub take: Vec<u32>,
    /// Owned partitions to give back (more than the fair share: a new worker came).
    pub release: Vec<u32>,
}

/// The fair share: `partitions` over `workers`, rounded up (so all partitions are owned).
pub fn share(partitions: u32, workers: usize) -> u32 {
    let w = workers.max(1) as u32;
    partitions.div_ceil(w)
}

/// Rendezvous rank of `partition` for `worker` (higher is preferred).
pub fn rank(worker: &str, partition: u32) -> u64 {
    // FNV-1a 64 over the worker id and the partition: stable across versions and machines.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in worker.bytes().chain(partition.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The round's plan for `me`: owning `mine`, seeing `free` partitions unowned, with
/// `workers` alive (me included). Takes free partitions, best ranked first, up to the
/// fair share; gives back the worst ranked beyond it, one a round (the newcomer takes it
/// before the next is given, so a partition is never left without an owner for long).
pub fn plan(me: &str, partitions: u32, workers: usize, mine: &BTreeSet<u32>, free: &BTreeSet<u32>) -> Plan {
    let target = share(partitions, workers) as usize;
    let by_rank = |set: &BTreeSet<u32>| {
        let mut v: Vec<u32> = set.iter().copied().collect();
        v.sort_by_key(|&p| std::cmp::Reverse(rank(me, p)));
        v
    };
    let mut out = Plan::default();
    if mine.len() < target {
        out.take = by_rank(free).into_iter().take(target - mine.len()).collect();
    } else if mine.len() > target && free.is_empty() {
        out.release = by_rank(mine).into_iter().rev().take(1).collect();
    }
    out
}

/// What the bucket says: the alive workers, the partitions with a live lease, and those
/// whose lease has outlived the TTL without renewal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Alive workers.
    pub workers: BTreeSet<String>,
    /// Partitions with a live lease.
    pub owned: BTreeSet<u32>,
    /// Partitions whose lease expired (its holder stopped renewing) but is still in the
    /// bucket: the revision to take it over at.
    pub expired: BTreeMap<u32, u64>,
}

/// One key's latest entry: its value, revision and when the server stored it (UTC ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Its revision.
    pub revision: u64,
    /// When the server stored it, UTC ms (the stream leader's clock).
    pub at: i64,
}

/// Which entries are alive, purely: an entry is alive while it is at most `ttl_ms` older
/// than the newest entry of the bucket. The newest entry is a worker's liveness, written
/// at most a round ago (every worker writes its own each round), so "now" is the
/// server's clock, not the worker's: a worker whose clock is off judges leases the same
/// as the others.
///
/// `healthy_ms`: how long this worker has been writing the bucket without an outage. An
/// entry's age counts no further back than that: after the bucket was out (its stream
/// leader lost and a new one elected — seconds in which nobody could renew), every lease
/// would look expired to whoever reads first; instead each holder gets a full TTL from
/// the bucket's return to renew. A worker that started less than a TTL ago likewise
/// takes no expired lease yet.
///
pub fn classify(entries: &[Seen], ttl_ms: i64, healthy_ms: i64) -> View {
    let now = entries.iter().map(|e| e.at).max().unwrap_or(0);
    let mut v = View::default();
    for e in entries {
        let alive = (now - e.at).min(healthy_ms) <= ttl_ms;
        if let Some(w) = e.key.strip_prefix("worker.") {
            if alive {
                v.workers.insert(w.to_string());
            }
        } else if let Some(p) = e.key.strip_prefix("part.").and_then(|p| p.parse().ok()) {
            if alive {
                v.owned.insert(p);
            } else {
                v.expired.insert(p, e.revision);
            }
        }
    }
    v
}

/// How long reading the bucket may take before the round gives up on it.
const VIEW_PATIENCE: Duration = Duration::from_secs(10);

/// Reads the latest entry of every key (deleted ones left out): the keys, then each
/// key's entry (a watch of the bucket's history is no complete listing: while the workers
/// write, it can end before every key was delivered).
pub async fn entries(leases: &kv::Store) -> Result<Vec<Seen>, ClusterError> {
    use futures_util::TryStreamExt;
    let err = || ClusterError::js("reading the leases");
    let read = async {
        let keys: Vec<String> = leases
            .keys()
            .await
            .map_err(|e| err()(e.into()))?
            .try_collect()
            .await
            .map_err(|e| err()(e.into()))?;
        let got = futures_util::future::try_join_all(keys.iter().map(|k| leases.entry(k)))
            .await
            .map_err(|e| err()(e.into()))?;
        Ok(got
            .into_iter()
            .flatten()
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| Seen {
                key: e.key,
                value: String::from_utf8_lossy(&e.value).to_string(),
                revision: e.revision,
                at: (e.created.unix_timestamp_nanos() / 1_000_000) as i64,
            })
            .collect())
    };
    match tokio::time::timeout(VIEW_PATIENCE, read).await {
        Ok(r) => r,
        Err(_) => Err(ClusterError::js("reading the leases")("timed out".into())),
    }
}

/// Takes partition `n`: with `create` if nobody holds it, or at `expired` (the revision of
/// a lease that outlived the TTL) with `update`, so only one worker wins either way. Its
/// new revision (the fencing claim quotes it).
pub async fn take(leases: &kv::Store, n: u32, me: &str, expired: Option<u64>) -> Option<u64> {
    match expired {
        None => leases.create(part_key(n), me.to_string().into()).await.ok(),
        Some(revision) => leases.update(part_key(n), me.to_string().into(), revision).await.ok(),
    }
}

/// Renews a lease held at `revision`; the new revision, or why not.
pub async fn renew(leases: &kv::Store, n: u32, me: &str, revision: u64) -> Result<u64, Renewal> {
    use async_nats::jetstream::kv::UpdateErrorKind;
    match leases.update(part_key(n), me.to_string().into(), revision).await {
        Ok(r) => Ok(r),
        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
            // An earlier renewal whose answer was lost (a server failing over) may have
            // moved the revision: the entry still naming this worker is still its lease.
            match leases.entry(part_key(n)).await {
                Ok(Some(entry))
                    if entry.operation == kv::Operation::Put && entry.value.as_ref() == me.as_bytes() =>
                {
                    Ok(entry.revision)
                }
                // Gone and taken by nobody (the server dropped it by age while renewals
                // could not reach it, a node failing over): the holder takes it again. If
                // another worker took it meanwhile and claimed the partition, the results
                // log fences this one off all the same.
                Ok(None) => match leases.create(part_key(n), me.to_string().into()).await {
                    Ok(r) => Ok(r),
                    Err(_) => Err(Renewal::Lost),
                },
                Ok(Some(entry)) if entry.operation != kv::Operation::Put => {
                    match leases.create(part_key(n), me.to_string().into()).await {
                        Ok(r) => Ok(r),
                        Err(_) => Err(Renewal::Lost),
                    }
                }
                Ok(_) => Err(Renewal::Lost),
                Err(e) => Err(Renewal::Unknown(e.to_string())),
            }
        }
        Err(e) => Err(Renewal::Unknown(e.to_string())),
    }
}

/// Why a lease was not renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// Another worker holds it (or it expired and was taken): stop at once.
    Lost,
    /// The servers did not answer (a node failing over): try again; the fence still holds.
    Unknown(String),
}

/// Gives a lease back (a clean stop, or more than the fair share).
pub async fn release(leases: &kv::Store, n: u32, revision: u64) {
    if let Err(e) = leases.delete_expect_revision(part_key(n), Some(revision)).await {
        tracing::debug!(partition = n, error = %e, "lease not given back (already gone)");
    }
}

/// Says the worker is alive; the value is its process instance (a restarted worker with
/// the same id is another instance: what the dead one claimed is not the new one's).
pub async fn heartbeat(leases: &kv::Store, me: &str, instance: &str) -> Result<(), ClusterError> {
    leases
        .put(worker_key(me), instance.to_string().into())
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::js("writing the worker's liveness entry")(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }

    #[test]
    fn shares() {
        let cases = [(8, 1, 8), (8, 2, 4), (8, 3, 3), (8, 0, 8), (1, 3, 1), (1000, 7, 143)];
        for (p, w, want) in cases {
            assert_eq!(share(p, w), want, "{p} partitions over {w}");
        }
    }

    #[test]
    fn plans() {
        // Alone: take everything free, best first.
        let p = plan("a", 4, 1, &set(&[]), &set(&[0, 1, 2, 3]));
        assert_eq!(p.take.len(), 4);
        assert!(p.release.is_empty());
        // A second worker came: the first gives back one partition a round, only while
        // nothing is free (the newcomer takes what is free first).
        let p = plan("a", 4, 2, &set(&[0, 1, 2, 3]), &set(&[]));
        assert_eq!((p.take.len(), p.release.len()), (0, 1));
        let p = plan("a", 4, 2, &set(&[0, 1, 2]), &set(&[3]));
        assert_eq!(p, Plan::default());
        // A worker died: the survivors' share grows and they take its partitions.
        let p = plan("b", 8, 2, &set(&[0, 1, 2]), &set(&[5, 6, 7]));
        assert_eq!(p.take.len(), 1);
        // The newcomer takes up to its share.
        let p = plan("c", 8, 3, &set(&[]), &set(&[3, 4, 5, 6]));
        assert_eq!(p.take.len(), 3);
    }

    fn seen(key: &str, revision: u64, at: i64) -> Seen {
        Seen { key: key.into(), value: "x".into(), revision, at }
    }

    #[test]
    fn leases_are_judged_by_the_servers_times() {
        let ttl = 5_000;
        // The newest entry (this worker's liveness, just written) says what "now" is.
        let entries = [
            seen("worker.a", 40, 100_000),
            seen("worker.b", 30, 95_000), // exactly the TTL old: alive
            seen("worker.c", 20, 94_999), // older: dead
            seen("part.0", 41, 99_500),
            seen("part.1", 21, 94_000),  // its holder stopped renewing
            seen("part.x", 22, 100_000), // not a partition
            seen("other", 23, 100_000),
        ];
        let long = i64::MAX;
        let v = classify(&entries, ttl, long);
        assert_eq!(v.workers, ["a", "b"].iter().map(|s| s.to_string()).collect());
        assert_eq!(v.owned, set(&[0]));
        assert_eq!(v.expired, [(1, 21)].into_iter().collect());
        assert_eq!(classify(&[], ttl, long), View::default());
        // The bucket came back 3 s ago after an outage: nothing has expired yet, however
        // old; once this worker has written it for longer than the TTL, it has.
        let v = classify(&entries, ttl, 3_000);
        assert_eq!(v.workers, ["a", "b", "c"].iter().map(|s| s.to_string()).collect());
        assert_eq!(v.owned, set(&[0, 1]));
        assert!(v.expired.is_empty());
        assert_eq!(classify(&entries, ttl, 5_000).owned, set(&[0, 1]));
        assert_eq!(classify(&entries, ttl, 5_001).expired, [(1, 21)].into_iter().collect());
    }

    #[test]
    fn ranks_are_stable_and_spread() {
        assert_eq!(rank("w1", 3), rank("w1", 3));
        let firsts: BTreeSet<u32> =
            ["w1", "w2", "w3", "w4"].iter().map(|w| (0..8).max_by_key(|&p| rank(w, p)).unwrap()).collect();
        assert!(firsts.len() >= 2, "{firsts:?}");
        assert!(valid_worker_id("w-1_a") && !valid_worker_id("w.1") && !valid_worker_id(""));
    }
}

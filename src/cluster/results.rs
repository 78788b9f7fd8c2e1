//! The results log: what each partition committed, in the stream `KEFU_RESULTS`, one
//! subject per partition (`kefu.results.<N>`). It is the shared copy of the figures —
//! `kefu collect` builds one database for every shop from it — and the fence that keeps
//! a partition's writer unique.
//!
//! **Fencing.** Every append carries `Nats-Expected-Last-Subject-Sequence`: the stream
//! sequence of the last record on the partition's subject as this writer knows it. The
//! stream (one Raft group, replicated) refuses an append whose expectation is not the
//! subject's last sequence. A worker that takes a partition appends a [`Record::Claim`];
//! from then on every append of the previous owner — a worker that lost its lease while
//! paused, cut off or slow — is refused, its batch rolled back, never acked, its alerts
//! never sent, and it drops the partition. The lease decides who *should* own a partition;
//! the expected sequence guarantees that only one *can* write.

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage as Publish;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::ClusterError;
use crate::alerts::Notice;
use crate::engine::Wait;
use crate::live::{CommitHook, Committed};
use crate::store::RejectedRow;
use crate::time::Millis;

/// The subject of partition `n`'s results.
pub fn subject(n: u32) -> String {
    format!("kefu.results.{n}")
}

/// Bytes of events in one record at most (the server refuses messages above 1 MiB by
/// default): a large batch is appended as several records, each fenced.
const RECORD_BYTES: usize = 512 * 1024;

/// How long an append keeps trying while the stream has no leader (a node failed).
const APPEND_PATIENCE: Duration = Duration::from_secs(60);

/// One record of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A worker took the partition; appends of earlier owners are refused from here on.
    Claim {
        /// The worker.
        worker: String,
        /// Its lease's revision.
        lease: u64,
    },
    /// (Part of) a committed batch.
    Batch(Batch),
}

/// What a batch committed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Batch {
    /// The worker.
    pub worker: String,
    /// Its lease's revision.
    pub lease: u64,
    /// Its count of appends under this lease (tells its own append from another's after a
    /// timeout).
    pub n: u64,
    /// The event stream's sequence every event up to which is committed (last part only).
    pub seq: Option<u64>,
    /// The new events' JSON.
    pub events: Vec<String>,
    /// The waits that ended.
    pub waits: Vec<Wait>,
    /// Alerts recorded for the first time.
    pub alerts: Vec<Notice>,
    /// Input that was not a valid event.
    pub rejected: Vec<RejectedRec>,
}

/// A rejected input as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRec {
    /// When it was received.
    pub received_at: Millis,
    /// Where it came from.
    pub source: String,
    /// Its position.
    pub position: String,
    /// Why it was rejected.
    pub reason: String,
    /// The input, cut.
    pub raw: String,
}

impl From<&RejectedRow> for RejectedRec {
    fn from(r: &RejectedRow) -> Self {
        Self {
            received_at: r.received_at,
            source: r.source.clone(),
            position: r.position.clone(),
            reason: r.reason.clone(),
            raw: r.raw.clone(),
        }
    }
}

impl From<&RejectedRec> for RejectedRow {
    fn from(r: &RejectedRec) -> Self {
        Self {
            received_at: r.received_at,
            source: r.source.clone(),
            position: r.position.clone(),
            reason: r.reason.clone(),
            raw: r.raw.clone(),
        }
    }
}

/// Splits a committed batch into records of at most [`RECORD_BYTES`] of events; the
/// resume point goes on the last.
pub fn split(c: &Committed, worker: &str, lease: u64) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut cur = Batch { worker: worker.into(), lease, ..Batch::default() };
    let mut bytes = 0;
    for e in &c.events {
        if bytes + e.len() > RECORD_BYTES && !cur.events.is_empty() {
            out.push(std::mem::replace(&mut cur, Batch { worker: worker.into(), lease, ..Batch::default() }));
            bytes = 0;
        }
        bytes += e.len();
        cur.events.push(e.clone());
    }
    // Waits and alerts are small (a few hundred bytes) and a batch ends few of them per
    // event; they go with the last part, and are split by count when very many.
    for chunk in c.waits.chunks(1000) {
        if !cur.waits.is_empty() {
            out.push(std::mem::replace(&mut cur, Batch { worker: worker.into(), lease, ..Batch::default() }));
        }
        cur.waits = chunk.to_vec();
    }
    for chunk in c.alerts.chunks(500) {
        if !cur.alerts.is_empty() {
            out.push(std::mem::replace(&mut cur, Batch { worker: worker.into(), lease, ..Batch::default() }));
        }
        cur.alerts = chunk.to_vec();
    }
    cur.rejected = c.rejected.iter().map(RejectedRec::from).collect();
    cur.seq = c.seq;
    out.push(cur);
    out
}

/// How a partition's appender learns which recorded alerts are final (see
/// [`super::gate::Outstanding`]).
pub struct Tracking {
    /// The worker's alerts not final yet.
    pub outstanding: std::sync::Arc<super::gate::Outstanding>,
    /// Set to the first record of each batch appended: the partition's seam registers the
    /// batch's alerts under it.
    pub record: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Alerts due longer ago than this are stale (never sent): they hold nothing back.
    pub stale_after_ms: i64,
}

/// The partition's writer: appends records fenced by the last sequence it knows.
pub struct Appender {
    js: async_nats::jetstream::Context,
    stream: async_nats::jetstream::stream::Stream,
    partition: u32,
    worker: String,
    lease: u64,
    /// The sequence of the last record on the subject, as this writer knows it.
    last: u64,
    /// Appends under this lease so far.
    n: u64,
    rt: tokio::runtime::Handle,
    /// Where snapshots go.
    snapshots: Option<async_nats::jetstream::object_store::ObjectStore>,
    /// The worker's alerts not final yet, and where this partition's batch went.
    tracking: Option<Tracking>,
    /// Every alert recorded up to this results sequence is final (sent, given up, stale).
    settled: u64,
    /// The event-stream sequence committed last.
    position: u64,
}

impl Appender {
    /// Claims partition `partition` for `worker` holding lease revision `lease`: appends a
    /// [`Record::Claim`] after the subject's last record. Returns the writer and the claim's
    /// sequence (the records before it are the previous owners').
    pub async fn claim(
        js: async_nats::jetstream::Context,
        stream: async_nats::jetstream::stream::Stream,
        partition: u32,
        worker: &str,
        lease: u64,
    ) -> Result<(Self, u64), ClusterError> {
        let last = last_seq(&stream, partition).await?;
        let mut me = Self {
            js,
            stream,
            partition,
            worker: worker.into(),
            lease,
            last,
            n: 0,
            rt: tokio::runtime::Handle::current(),
            snapshots: None,
            tracking: None,
            settled: 0,
            position: 0,
        };
        let claim = Record::Claim { worker: worker.into(), lease };
        let seq = me.append(&claim).await?;
        Ok((me, seq))
    }

    /// Appends one record; [`ClusterError::Fenced`] when another writer appended since.
    pub async fn append(&mut self, record: &Record) -> Result<u64, ClusterError> {
        if let Record::Batch(b) = record {
            debug_assert_eq!(b.n, self.n + 1);
        }
        let body = serde_json::to_vec(record)
            .map_err(|e| ClusterError::BadRecord { seq: 0, reason: e.to_string() })?;
        let started = tokio::time::Instant::now();
        loop {
            let msg = Publish::build().payload(body.clone().into()).expected_last_subject_sequence(self.last);
            let sent = match self.js.send_publish(subject(self.partition), msg).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(ack) => {
                    self.last = ack.sequence;
                    if matches!(record, Record::Batch(_)) {
                        self.n += 1;
                    }
                    return Ok(ack.sequence);
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    // Either another writer appended (fenced), or our own earlier try
                    // was stored though its ack was lost.
                    match self.stored_already(record).await? {
                        Some(seq) => return Ok(seq),
                        None => return Err(ClusterError::Fenced { partition: self.partition }),
                    }
                }
                Err(e) if started.elapsed() < APPEND_PATIENCE => {
                    tracing::warn!(partition = self.partition, error = %e, "results log append failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    return Err(ClusterError::js(format!(
                        "appending to the results of partition {}",
                        self.partition
                    ))(e.into()));
                }
            }
        }
    }

    /// After a refused append: whether the subject's last record is this very record
    /// (stored by a try whose ack was lost); then it is the new last.
    async fn stored_already(&mut self, record: &Record) -> Result<Option<u64>, ClusterError> {
        let Some((seq, last)) = last_record(&self.stream, self.partition).await? else { return Ok(None) };
        let mine = match (&last, record) {
            (Record::Claim { worker, lease }, Record::Claim { .. }) => {
                *worker == self.worker && *lease == self.lease
            }
            (Record::Batch(a), Record::Batch(b)) => {
                a.worker == self.worker && a.lease == self.lease && a.n == b.n
            }
            _ => false,
        };
        if !mine {
            return Ok(None);
        }
        self.last = seq;
        if matches!(record, Record::Batch(_)) {
            self.n += 1;
        }
        Ok(Some(seq))
    }

    /// Stores the runtime's snapshots in `store` (a takeover restores them). `settled`:
    /// every alert recorded up to this results sequence is final (from the restored
    /// snapshot); `position`: the event-stream sequence the restored state covers;
    /// `tracking`: the alerts not final yet.
    pub fn with_snapshots(
        mut self,
        store: async_nats::jetstream::object_store::ObjectStore,
        settled: u64,
        position: u64,
        tracking: Tracking,
    ) -> Self {
        self.snapshots = Some(store);
        self.settled = settled;
        self.position = position;
        self.tracking = Some(tracking);
        self
    }

    /// Appends a committed batch (in parts when large), then stores its snapshot if the
    /// runtime took one: only a batch that is in the log may have its state restored.
    pub async fn append_batch(&mut self, c: &Committed) -> Result<(), ClusterError> {
        // Every earlier batch's alerts went to the gate at its commit, registered as
        // outstanding until final: the snapshot's `settled` stops before the first of them.
        if let Some(t) = &self.tracking {
            let stale_before = crate::time::now_ms().saturating_sub(t.stale_after_ms);
            self.settled = t.outstanding.settled(self.partition, self.last, stale_before);
        }
        let (mut first, mut last) = (None, 0);
        for mut b in split(c, &self.worker, self.lease) {
            b.n = self.n + 1;
            last = self.append(&Record::Batch(b)).await?;
            first.get_or_insert(last);
        }
        if let (Some(t), Some(first)) = (&self.tracking, first) {
            // This batch's alerts are submitted after the commit: recorded from here on.
            t.record.store(first, std::sync::atomic::Ordering::SeqCst);
        }
        self.position = c.seq.unwrap_or(self.position).max(self.position);
        if let (Some(snap), Some(store)) = (&c.snapshot, self.snapshots.as_ref()) {
            let header =
                super::snapshots::Header { position: self.position, results: last, settled: self.settled };
            let snap = crate::engine::snapshot::Snapshot { position: self.position, ..snap.clone() };
            if let Err(e) =
                super::snapshots::put(store, self.partition, &super::snapshots::pack(&header, &snap)).await
            {
                // Only a shortcut: a takeover without it reads more of the stream.
                tracing::warn!(partition = self.partition, error = %format!("{e:#}"), "snapshot not stored");
            }
        }
        Ok(())
    }
}

impl CommitHook for Appender {
    fn before_commit(&mut self, batch: &Committed) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if batch.seq.is_none()
            && batch.events.is_empty()
            && batch.waits.is_empty()
            && batch.alerts.is_empty()
            && batch.snapshot.is_none()
        {
            return Ok(());
        }
        // The runtime's commit is synchronous; the append is the commit's first half.
        let rt = self.rt.clone();
        tokio::task::block_in_place(|| rt.block_on(self.append_batch(batch))).map_err(Into::into)
    }
}

/// The sequence of the last record of partition `n` (0: none yet).
pub async fn last_seq(stream: &async_nats::jetstream::stream::Stream, n: u32) -> Result<u64, ClusterError> {
    Ok(last_record(stream, n).await?.map_or(0, |(seq, _)| seq))
}

async fn last_record(
    stream: &async_nats::jetstream::stream::Stream,
    n: u32,
) -> Result<Option<(u64, Record)>, ClusterError> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    match stream.get_last_raw_message_by_subject(&subject(n)).await {
        Ok(m) => {
            let r = serde_json::from_slice(&m.payload)
                .map_err(|e| ClusterError::BadRecord { seq: m.sequence, reason: e.to_string() })?;
            Ok(Some((m.sequence, r)))
        }
        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
        Err(e) => Err(ClusterError::js(format!("reading the last result of partition {n}"))(e.into())),
    }
}

/// Reads the records of partition `n` (every partition with `None`) with sequences in
/// `from..=to`, in order.
pub async fn read(
    stream: &async_nats::jetstream::stream::Stream,
    n: Option<u32>,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, Record)>, ClusterError> {
    let mut out = Vec::new();
    for_each(stream, n, from, to, |seq, r| {
        out.push((seq, r));
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Calls `f` with each record of partition `n` (every partition with `None`) with a
/// sequence in `from..=to`, in order, without holding them all; stops at the log's end as
/// of the call when `to` is beyond it.
pub async fn for_each(
    stream: &async_nats::jetstream::stream::Stream,
    n: Option<u32>,
    from: u64,
    to: u64,
    mut f: impl FnMut(u64, Record) -> Result<(), ClusterError>,
) -> Result<(), ClusterError> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
    if from > to {
        return Ok(());
    }
    let err = || ClusterError::js("reading the results log");
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: n.map(subject).unwrap_or_default(),
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from.max(1) },
            ..Default::default()
        })
        .await
        .map_err(|e| err()(e.into()))?;
    // Nothing to read at all: the consumer would wait for the next append.
    if consumer.cached_info().num_pending == 0 {
        return Ok(());
    }
    let mut messages = consumer.messages().await.map_err(|e| err()(e.into()))?;
    while let Some(m) = messages.next().await {
        let m = m.map_err(|e| err()(e.into()))?;
        let info = m.info().map_err(err())?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        if seq > to {
            break;
        }
        let r = serde_json::from_slice(&m.payload)
            .map_err(|e| ClusterError::BadRecord { seq, reason: e.to_string() })?;
        f(seq, r)?;
        // `pending`: records after this one when it was delivered — none: the end as of now.
        if seq == to || pending == 0 {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_batch_is_split_and_the_resume_point_goes_last() {
        let c = Committed {
            seq: Some(42),
            events: (0..3000)
                .map(|i| format!("{{\"id\":\"{i}\",\"pad\":\"{}\"}}", "x".repeat(400)))
                .collect(),
            ..Committed::default()
        };
        let parts = split(&c, "w1", 7);
        assert!(parts.len() >= 3, "{}", parts.len());
        assert_eq!(parts.iter().map(|b| b.events.len()).sum::<usize>(), 3000);
        assert!(parts.iter().all(|b| b.events.iter().map(String::len).sum::<usize>() <= RECORD_BYTES));
        assert!(parts[..parts.len() - 1].iter().all(|b| b.seq.is_none()));
        assert_eq!(parts.last().unwrap().seq, Some(42));
        assert!(parts.iter().all(|b| b.worker == "w1" && b.lease == 7));
        let one = split(&Committed { seq: Some(1), ..Committed::default() }, "w1", 7);
        assert_eq!(one.len(), 1);
    }
}

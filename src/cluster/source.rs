//! One partition's event source: a durable pull consumer on the partition's subjects,
//! turning each message into the same [`Incoming`] the websocket gateway makes, and acking
//! (ack-all, up to a stream sequence) only what the runtime reports committed.
//!
//! The stream sequence plays the websocket's `seq`: it increases along the partition, the
//! runtime stores the highest committed one as its resume point, and a takeover starts
//! the consumer after the position of the state it restored.

use std::collections::VecDeque;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::ClusterError;
use super::subject::partition_filter;
use crate::gateway::Incoming;
use crate::gateway::protocol::{KEEP_REJECTED_BYTES, RejectedFrame, truncate};

/// Messages delivered and not yet acked at most (the runtime's channel holds a few batches).
pub const MAX_ACK_PENDING: i64 = 32_768;

/// The consumer's name for partition `n`.
pub fn consumer_name(n: u32) -> String {
    format!("kefu-p{n}")
}

/// (Re)creates partition `n`'s consumer to deliver from stream sequence `after + 1`
/// (`after` = 0: from the start). The previous owner's consumer is deleted first: its
/// acks and pulls fail from then on.
pub async fn open(events: &Stream, n: u32, after: u64) -> Result<PullConsumer, ClusterError> {
    let name = consumer_name(n);
    let _ = events.delete_consumer(&name).await;
    let deliver_policy = if after == 0 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence { start_sequence: after + 1 }
    };
    events
        .create_consumer(pull::Config {
            durable_name: Some(name),
            filter_subject: partition_filter(n),
            deliver_policy,
            ack_policy: AckPolicy::All,
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::js(format!("creating the consumer of partition {n}"))(e.into()))
}

/// Turns a message into what the runtime takes: an event, or a rejected input (not UTF-8,
/// not a valid event) that is stored, counted and acked like the gateway's.
pub fn incoming(seq: u64, payload: &[u8]) -> Incoming {
    let rejected = |reason: String, raw: &str| {
        Incoming::Rejected(RejectedFrame {
            seq: Some(seq),
            ackable: true,
            reason,
            raw: truncate(raw, KEEP_REJECTED_BYTES).to_string(),
        })
    };
    let body = match std::str::from_utf8(payload) {
        Ok(b) => b,
        Err(_) => return rejected("not UTF-8".into(), &String::from_utf8_lossy(payload)),
    };
    match crate::event::parse(body) {
        Ok(event) => Incoming::Event { seq, event, body: body.to_string() },
        Err(e) => rejected(e.to_string(), body),
    }
}

/// Feeds the runtime until `stop` (or the runtime goes away); acks what is committed.
pub async fn run(
    consumer: PullConsumer,
    n: u32,
    frames: mpsc::Sender<Incoming>,
    mut committed: watch::Receiver<Option<u64>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ClusterError> {
    let what = || format!("reading partition {n}");
    let mut messages = consumer.messages().await.map_err(|e| ClusterError::js(what())(e.into()))?;
    let mut pending: VecDeque<(u64, async_nats::jetstream::Message)> = VecDeque::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            changed = committed.changed() => {
                if changed.is_err() {
                    break;
                }
                let upto = (*committed.borrow_and_update()).unwrap_or(0);
                let mut last = None;
                while pending.front().is_some_and(|(s, _)| *s <= upto) {
                    last = pending.pop_front();
                }
                if let Some((seq, m)) = last
                    && let Err(e) = m.ack().await
                {
                    tracing::warn!(partition = n, seq, error = %e, "ack failed (the stream redelivers; duplicates are dropped)");
                }
            }
            m = messages.next() => {
                let Some(m) = m else { break };
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(partition = n, error = %e, "consumer error; going on");
                        continue;
                    }
                };
                let seq = m.info().map_err(ClusterError::js(what()))?.stream_sequence;
                let item = incoming(seq, &m.payload);
                pending.push_back((seq, m));
                if frames.send(item).await.is_err() {
                    break;
                }
            }
        }
    }
    Ok(())
}

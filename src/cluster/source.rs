//! One partition's event source: a durable pull consumer on the partition's subjects,
//! turning each message into the same [`Incoming`] the websocket gateway makes, and acking
//! (ack-all, up to a stream sequence) only what the runtime reports committed.
//!
//! The stream sequence plays the websocket's `seq`: it increases along the partition, the
//! runtime stores the highest committed one as its resume point, and a takeover starts
//! the consumer after the position of the state it restored.

use std::collections::VecDeque;

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
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

/// The consumer of partition `n` under the lease revision `lease`: one per ownership, so
/// an old owner still pulling (before it notices its lease is gone) pulls from its own,
/// deleted consumer — never from the new owner's, which it would steal messages from.
pub fn consumer_name(n: u32, lease: u64) -> String {
    format!("kefu-p{n}-{lease}")
}

/// (partition, lease) of a consumer name made by [`consumer_name`].
pub fn parse_consumer_name(name: &str) -> Option<(u32, u64)> {
    let (n, lease) = name.strip_prefix("kefu-p")?.split_once('-')?;
    Some((n.parse().ok()?, lease.parse().ok()?))
}

/// How long a consumer nobody pulls from is kept by the server (an owner that died).
const INACTIVE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Creates partition `n`'s consumer for the ownership under lease `lease`, delivering from
/// stream sequence `after + 1` (`after` = 0: from the start). Earlier owners' consumers of
/// the partition are deleted first: their acks and pulls fail from then on.
pub async fn open(events: &Stream, n: u32, lease: u64, after: u64) -> Result<PullConsumer, ClusterError> {
    use futures_util::TryStreamExt;
    let name = consumer_name(n, lease);
    let names: Vec<String> = match events.consumer_names().try_collect().await {
        Ok(names) => names,
        Err(e) => return Err(ClusterError::js(format!("listing the consumers of partition {n}"))(e.into())),
    };
    for old in names.iter().filter(|c| parse_consumer_name(c).is_some_and(|(p, _)| p == n) && **c != name) {
        let _ = events.delete_consumer(old).await;
    }
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
            inactive_threshold: INACTIVE,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::js(format!("creating the consumer of partition {n}"))(e.into()))
}

/// Partition `n`'s current consumer (the newest ownership's), if any.
pub async fn current(
    events: &Stream,
    n: u32,
) -> Result<Option<async_nats::jetstream::consumer::Info>, ClusterError> {
    use futures_util::TryStreamExt;
    let all: Vec<async_nats::jetstream::consumer::Info> = events
        .consumers()
        .try_collect()
        .await
        .map_err(|e| ClusterError::js(format!("listing the consumers of partition {n}"))(e.into()))?;
    Ok(all
        .into_iter()
        .filter_map(|i| parse_consumer_name(&i.name).filter(|(p, _)| *p == n).map(|(_, l)| (l, i)))
        .max_by_key(|(l, _)| *l)
        .map(|(_, i)| i))
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

/// Checks that a delivery follows the one before it: the consumer numbers its deliveries
/// 1, 2, 3 … (a redelivery gets a new number too), so any other number means deliveries
/// were lost on the way — NATS itself delivers at most once when a server dies between
/// the consumer and this client, and the consumer does not redeliver what a later ack-all
/// covers. `last` is the number of the delivery before (0 before the first).
pub fn next_delivery(n: u32, last: u64, got: u64) -> Result<u64, ClusterError> {
    if got == last + 1 {
        Ok(got)
    } else {
        Err(ClusterError::DeliveryGap { partition: n, expected: last + 1, got })
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
    let mut delivered = 0;
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
                    // The server holding this pull request went away (a node killed): the
                    // client does not pull again by itself, and nothing more arrives. Pulling
                    // anew could skip what the lost request had delivered, and ack-all would
                    // then ack it unseen; so the ownership ends, and the partition is taken
                    // again the takeover's way (from its snapshot, nothing lost or doubled).
                    Err(e) if e.kind() == MessagesErrorKind::MissingHeartbeat => {
                        tracing::warn!(partition = n, "consumer stalled (missed heartbeats): the partition is taken again");
                        return Err(ClusterError::js(what())(e.into()));
                    }
                    Err(e) => {
                        tracing::warn!(partition = n, error = %e, "consumer error; going on");
                        continue;
                    }
                };
                let info = m.info().map_err(ClusterError::js(what()))?;
                let seq = info.stream_sequence;
                // A lost delivery ends the ownership before anything after it reaches the
                // runtime: what came before is committed, the takeover starts from there.
                delivered = next_delivery(n, delivered, info.consumer_sequence).inspect_err(|e| {
                    tracing::warn!(partition = n, error = %e, "deliveries lost: the partition is taken again");
                })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_must_follow_the_one_before_it() {
        // (delivery before, delivery that came, accepted)
        let cases = [
            (0, 1, true),    // the consumer's first
            (41, 42, true),  // the next
            (0, 2, false),   // the first never arrived
            (41, 45, false), // three lost in transit
            (41, 41, false), // the same again
            (41, 7, false),  // going back
        ];
        for (last, got, ok) in cases {
            match next_delivery(3, last, got) {
                Ok(next) => {
                    assert!(ok, "{last} → {got} was accepted");
                    assert_eq!(next, got);
                }
                Err(ClusterError::DeliveryGap { partition, expected, got: g }) => {
                    assert!(!ok, "{last} → {got} was refused");
                    assert_eq!((partition, expected, g), (3, last + 1, got));
                }
                Err(e) => panic!("{last} → {got}: {e}"),
            }
        }
    }
}

//! `kefu publish`: events into the event stream, as a platform bridge would send them.
//!
//! Each event goes to `kefu.events.<shop>` with its id as `Nats-Msg-Id`, so the stream
//! itself drops a re-publish of the same event within [`super::setup::DUPLICATE_WINDOW`]
//! (a bridge retrying after a lost ack); the JSON is sent as given, byte for byte the
//! object the websocket would carry. Publishes are pipelined, at most [`WINDOW`] waiting
//! for their acks: the command ends only when the stream has stored every event.

use std::path::Path;

use async_nats::jetstream::message::PublishMessage as Publish;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use super::ClusterError;
use super::setup::Handles;
use super::subject::event_subject;
use crate::event::Event;

/// Publishes waiting for their acks at most.
pub const WINDOW: usize = 1024;

/// One event to publish: its JSON and what the subject and dedup need.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The event's JSON, sent as is.
    pub body: String,
    /// Its shop (the subject).
    pub shop: String,
    /// Its id (`Nats-Msg-Id`).
    pub id: String,
}

impl Outgoing {
    /// From an event.
    pub fn of(e: &Event) -> Self {
        Self { body: e.to_json(), shop: e.shop.clone(), id: e.id.clone() }
    }
}

/// What a publish did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    /// Events the stream stored.
    pub stored: u64,
    /// Events the stream already had (same id within the duplicate window).
    pub duplicates: u64,
    /// The stream sequence of the last event stored.
    pub last_seq: u64,
}

/// Reads a JSONL file: every valid event, and one message per bad line (`line N: why`),
/// which is skipped — the events around it are still published.
pub fn read_file(path: &Path) -> Result<(Vec<Outgoing>, Vec<String>), ClusterError> {
    let bytes = std::fs::read(path)
        .map_err(|source| ClusterError::Read { path: path.display().to_string(), source })?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            bad.push(format!("line {}: not UTF-8", i + 1));
            continue;
        };
        match crate::event::parse(line) {
            Ok(e) => good.push(Outgoing { body: line.to_string(), shop: e.shop, id: e.id }),
            Err(e) => bad.push(format!("line {}: {e}", i + 1)),
        }
    }
    Ok((good, bad))
}

/// Publishes `events` in order and waits until the stream has acked every one.
pub async fn publish(
    h: &Handles,
    events: impl IntoIterator<Item = Outgoing>,
) -> Result<Published, ClusterError> {
    let mut out = Published::default();
    let mut acks = FuturesOrdered::new();
    for e in events {
        if acks.len() >= WINDOW {
            settle(acks.next().await, &mut out)?;
        }
        let msg = Publish::build().payload(e.body.into()).message_id(&e.id);
        let ack =
            h.js.send_publish(event_subject(&e.shop), msg)
                .await
                .map_err(|err| ClusterError::js(format!("publishing event {}", e.id))(err.into()))?;
        let id = e.id;
        acks.push_back(async move { (id, ack.await) });
    }
    while let Some(r) = acks.next().await {
        settle(Some(r), &mut out)?;
    }
    Ok(out)
}

type Acked = (
    String,
    Result<async_nats::jetstream::publish::PublishAck, async_nats::jetstream::context::PublishError>,
);

fn settle(r: Option<Acked>, out: &mut Published) -> Result<(), ClusterError> {
    let Some((id, ack)) = r else { return Ok(()) };
    let ack = ack.map_err(|e| ClusterError::js(format!("storing event {id}"))(e.into()))?;
    if ack.duplicate {
        out.duplicates += 1;
    } else {
        out.stored += 1;
        out.last_seq = out.last_seq.max(ack.sequence);
    }
    Ok(())
}

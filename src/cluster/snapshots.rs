//! Partition snapshots where every worker can read them: the object store
//! `kefu_snapshots`, one object per partition (`p<N>`), replaced by each new snapshot.
//!
//! The bytes are the engine's own ([`crate::engine::snapshot::encode`]) after one JSON
//! line saying where they stand: the event-stream sequence they cover (`position`) and the
//! results-log sequence of the batch they were taken with (`results`), and up to where
//! every recorded alert had been claimed (`settled`). A snapshot is stored only after its batch is in the results log
//! (so a fenced-off writer stores none); a takeover restores it, seeds its alert records
//! from the log after `settled`, and consumes the stream after `position`.

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::ClusterError;
use crate::engine::snapshot::{self, Snapshot};

/// Where a stored snapshot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The last event-stream sequence the state covers.
    pub position: u64,
    /// The results-log sequence of the batch it was taken with.
    pub results: u64,
    /// Every alert recorded in the results log up to this sequence was claimed by a worker
    /// when the snapshot was stored: a takeover hands the alerts recorded after it to its
    /// alert gate again (0: from the start).
    pub settled: u64,
}

/// The object's name for partition `n`.
pub fn name(n: u32) -> String {
    format!("p{n}")
}

/// Header line, then the engine's bytes.
pub fn pack(header: &Header, snap: &Snapshot) -> Vec<u8> {
    let mut out = serde_json::to_vec(header).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(&snapshot::encode(snap));
    out
}

/// Reads what [`pack`] wrote; why not, when it cannot (then the state is rebuilt).
pub fn unpack(bytes: &[u8]) -> Result<(Header, Snapshot), String> {
    let cut = bytes.iter().position(|&b| b == b'\n').ok_or("no header line")?;
    let header: Header = serde_json::from_slice(&bytes[..cut]).map_err(|e| format!("header: {e}"))?;
    let snap = snapshot::decode(&bytes[cut + 1..]).map_err(|e| format!("{e}"))?;
    Ok((header, snap))
}

/// Stores partition `n`'s snapshot (replacing the one before).
pub async fn put(
    store: &async_nats::jetstream::object_store::ObjectStore,
    n: u32,
    bytes: &[u8],
) -> Result<(), ClusterError> {
    let mut reader = bytes;
    store
        .put(name(n).as_str(), &mut reader)
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::js(format!("storing the snapshot of partition {n}"))(e.into()))
}

/// Partition `n`'s latest snapshot, if there is one that can be read; an unreadable one
/// is one warning and `None` (the partition is rebuilt from its events).
pub async fn latest(
    store: &async_nats::jetstream::object_store::ObjectStore,
    n: u32,
) -> Option<(Header, Snapshot)> {
    use async_nats::jetstream::object_store::GetErrorKind;
    let mut object = match store.get(name(n)).await {
        Ok(o) => o,
        Err(e) if e.kind() == GetErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(partition = n, error = %e, "snapshot not read: rebuilding from the events");
            return None;
        }
    };
    let mut bytes = Vec::new();
    if let Err(e) = object.read_to_end(&mut bytes).await {
        tracing::warn!(partition = n, error = %e, "snapshot not read: rebuilding from the events");
        return None;
    }
    match unpack(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(partition = n, error = %e, "snapshot ignored: rebuilding from the events");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Plan;
    use crate::engine::Engine;
    use crate::rules::response_time::ResponseRules;

    #[test]
    fn round_trip_and_refusals() {
        let engine = Engine::new(ResponseRules::default(), Plan::default());
        let snap = Snapshot { position: 9, engine: engine.state(), robot: None };
        let h = Header { position: 41, results: 7, settled: 3 };
        let bytes = pack(&h, &snap);
        let (h2, s2) = unpack(&bytes).unwrap();
        assert_eq!((h2, s2), (h, snap));
        assert!(unpack(b"no header").is_err());
        assert!(
            unpack(b"{\"position\":1,\"results\":1,\"settled\":0}\nKEFUSNAP\x63\0\0\0{}")
                .unwrap_err()
                .contains("format")
        );
    }
}

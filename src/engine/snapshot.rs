//! Snapshots: the engine's state (and the robot's) as bytes, with the position in the
//! event stream they cover, so a restart loads the latest snapshot and processes only the
//! events after it instead of the whole history.
//!
//! The bytes are `KEFUSNAP`, the format version (u32, little endian), then the state as
//! JSON. [`decode`] refuses anything else — another version, a cut or corrupt payload —
//! with a [`SnapshotError`]; the caller then rebuilds from the events (a snapshot is only
//! ever a shortcut: never a crash, never a wrong number). The state is canonical (sorted
//! by conversation), so an engine restored from a snapshot and one rebuilt from every
//! event encode to the same bytes.
//!
//! `kefu run` keeps them in the `snapshots` table ([`crate::store::snapshots`]), written in
//! the transaction of the batch whose last event they cover; the cluster keeps the same
//! bytes in its own store. Both use only [`encode`], [`decode`] and [`Snapshot`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use super::clock::ClockState;
use super::notices::NoticesState;
use crate::replies::robot::RobotState;

/// The first bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"KEFUSNAP";

/// The format this kefu writes and reads. Bump it whenever a state type changes shape:
/// an older snapshot is then refused and the state rebuilt from the events.
pub const VERSION: u32 = 3;

/// The engine's state: the response clock and the alert timers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineState {
    pub(crate) clock: ClockState,
    pub(crate) notices: NoticesState,
}

impl EngineState {
    /// The response clock's part (pending waits, open sessions, deadlines).
    pub fn clock(&self) -> &ClockState {
        &self.clock
    }
}

/// Everything a restart needs besides the events after `position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last event the state covers: the store's `events.seq` for `kefu run`, the
    /// stream's sequence for the cluster. Processing resumes with the event after it.
    pub position: u64,
    /// The engine's state.
    pub engine: EngineState,
    /// The robot's state, when the robot runs.
    pub robot: Option<RobotState>,
}

/// Why a snapshot cannot be used.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// The bytes do not start with [`MAGIC`] and a version.
    #[error("not a kefu snapshot (no KEFUSNAP header)")]
    NotASnapshot,
    /// Written by a kefu with another format.
    #[error("snapshot format {found}, this kefu reads {VERSION}")]
    Version {
        /// The version in the header.
        found: u32,
    },
    /// The payload does not decode (cut short, corrupted).
    #[error("decoding the snapshot")]
    Corrupt {
        /// What the decoder found.
        #[source]
        source: serde_json::Error,
    },
}

/// The snapshot as bytes, version header first.
#[must_use]
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4096);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    // Serialising these plain structs into a Vec cannot fail (no maps with non-string keys:
    // those go through `pairs`).
    serde_json::to_writer(&mut bytes, snapshot).expect("snapshot state serialises");
    bytes
}

/// A snapshot by reference: the engine's and the robot's live state, serialised by
/// [`encode_ref`] / [`write_ref`] to the very bytes [`encode`] gives for the [`Snapshot`]
/// of the same state, without first copying that state (with 100,000 conversations open
/// the copy and the bytes were both alive at once, tens of MB on top of the engine).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    position: u64,
    engine: EngineStateRef<'a>,
    robot: Option<crate::replies::robot::RobotStateRef<'a>>,
}

/// [`EngineState`]'s fields by reference, in its order.
#[derive(Serialize)]
struct EngineStateRef<'a> {
    clock: super::clock::ClockStateRef<'a>,
    notices: super::notices::NoticesStateRef<'a>,
}

/// Writes the snapshot of `engine` (and `robot`) covering `position` to `w`, header first:
/// the bytes [`encode`] gives for `Snapshot { position, engine: engine.state(), robot:
/// robot.map(Robot::state) }`.
pub fn write_ref(
    position: u64,
    engine: &super::Engine,
    robot: Option<&crate::replies::robot::Robot>,
    mut w: impl std::io::Write,
) -> std::io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    let snap = SnapshotRef {
        position,
        engine: EngineStateRef { clock: engine.clock().state_ref(), notices: engine.notices_state_ref() },
        robot: robot.map(crate::replies::robot::Robot::state_ref),
    };
    serde_json::to_writer(w, &snap).map_err(std::io::Error::from)
}

/// How many bytes [`write_ref`] writes for this state (a first pass that keeps none of
/// them, so the second can stream them into their place).
#[must_use]
pub fn encoded_len(
    position: u64,
    engine: &super::Engine,
    robot: Option<&crate::replies::robot::Robot>,
) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    // Counting cannot fail, nor can serialising these plain structs (see `encode`).
    write_ref(position, engine, robot, &mut n).expect("snapshot state serialises");
    n.0
}

/// [`write_ref`] into a new buffer (the runtime streams into the store instead; this is
/// for callers that want the bytes).
#[must_use]
pub fn encode_ref(
    position: u64,
    engine: &super::Engine,
    robot: Option<&crate::replies::robot::Robot>,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4096);
    // Writing into a Vec cannot fail, nor can serialising these plain structs (see `encode`).
    write_ref(position, engine, robot, &mut bytes).expect("snapshot state serialises");
    bytes
}

/// Reads bytes written by [`encode`] of this version.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let version = version(bytes)?;
    if version != VERSION {
        return Err(SnapshotError::Version { found: version });
    }
    serde_json::from_slice(&bytes[MAGIC.len() + 4..]).map_err(|source| SnapshotError::Corrupt { source })
}

/// The format version in a snapshot's header, without decoding the rest.
pub fn version(bytes: &[u8]) -> Result<u32, SnapshotError> {
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(SnapshotError::NotASnapshot)?;
    let v: [u8; 4] = rest.get(..4).and_then(|v| v.try_into().ok()).ok_or(SnapshotError::NotASnapshot)?;
    Ok(u32::from_le_bytes(v))
}

/// Serde for a map as a sorted list of pairs: keys need not be strings (JSON's rule), and
/// equal maps give equal bytes.
pub(crate) mod pairs {
    use super::*;

    pub(crate) fn serialize<K, V, H, S>(map: &HashMap<K, V, H>, s: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Ord,
        V: Serialize,
        S: Serializer,
    {
        let mut v: Vec<(&K, &V)> = map.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        s.collect_seq(v)
    }

    /// [`serialize`] for a field that holds the map by reference.
    pub(crate) fn serialize_ref<K, V, H, S>(map: &&HashMap<K, V, H>, s: S) -> Result<S::Ok, S::Error>
    where
        K: Serialize + Ord,
        V: Serialize,
        S: Serializer,
    {
        serialize(*map, s)
    }

    pub(crate) fn deserialize<'de, K, V, H, D>(d: D) -> Result<HashMap<K, V, H>, D::Error>
    where
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
        H: BuildHasher + Default,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Plan;
    use crate::engine::Engine;
    use crate::rules::response_time::ResponseRules;

    fn engine_with_a_wait() -> Engine {
        let line = r#"{"type":"message","id":"1","ts":"2026-11-11T10:00:00+08:00","shop":"s","conversation":"c","customer":"b","agent":"a","from":"customer","text":"在吗"}"#;
        let mut e = Engine::new(ResponseRules::default(), Plan::default());
        e.handle(&crate::event::parse(line).unwrap(), &mut vec![], &mut vec![]);
        e
    }

    #[test]
    fn round_trips_and_refuses_other_versions_and_corrupt_bytes() {
        let e = engine_with_a_wait();
        let snap = Snapshot { position: 7, engine: e.state(), robot: None };
        let bytes = encode(&snap);
        assert_eq!(decode(&bytes).unwrap(), snap);
        assert_eq!(version(&bytes).unwrap(), VERSION);

        let mut older = bytes.clone();
        older[8..12].copy_from_slice(&(VERSION - 1).to_le_bytes());
        assert!(matches!(decode(&older), Err(SnapshotError::Version { found }) if found == VERSION - 1));
        assert!(matches!(decode(&bytes[..bytes.len() - 3]), Err(SnapshotError::Corrupt { .. })));
        assert!(matches!(decode(b"KEFU"), Err(SnapshotError::NotASnapshot)));
        assert!(matches!(decode(b"{\"position\":1}"), Err(SnapshotError::NotASnapshot)));
        let mut flipped = bytes.clone();
        let i = flipped.len() / 2;
        flipped[i] = b'\xff';
        assert!(decode(&flipped).is_err(), "a corrupt byte is refused, not misread");
    }

    #[test]
    fn encoding_by_reference_gives_the_bytes_of_the_copied_state() {
        use crate::replies::robot::Robot;
        let lines = [
            r#"{"type":"message","id":"1","ts":"2026-11-11T10:00:00+08:00","shop":"s","conversation":"c2","customer":"b2","agent":"a","from":"customer","text":"在吗"}"#,
            r#"{"type":"message","id":"2","ts":"2026-11-11T10:00:01+08:00","shop":"s","conversation":"c1","customer":"b1","agent":"a","from":"customer","text":"有M码吗"}"#,
            r#"{"type":"message","id":"3","ts":"2026-11-11T10:00:05+08:00","shop":"s","conversation":"c2","customer":"b2","agent":"a","from":"agent","text":"在的亲"}"#,
            r#"{"type":"order","id":"4","ts":"2026-11-11T10:00:06+08:00","shop":"s","customer":"b1","order":"T1","status":"created","amount":"99.00"}"#,
            r#"{"type":"message","id":"5","ts":"2026-11-11T10:20:00+08:00","shop":"s","conversation":"c3","customer":"b3","agent":"b","from":"customer","text":"发货了吗"}"#,
        ];
        let mut engine = Engine::new(ResponseRules::default(), Plan::default());
        let mut robot = Robot::new(std::sync::Arc::new(crate::replies::load(None, None).unwrap()));
        for line in lines {
            let event = crate::event::parse(line).unwrap();
            let mut out = vec![];
            engine.handle(&event, &mut out, &mut vec![]);
            robot.handle(&event, &out, event.ts);
        }
        assert!(engine.clock().pending_waits() >= 2, "the state holds waits to encode");
        let owned = Snapshot { position: 9, engine: engine.state(), robot: Some(robot.state()) };
        assert_eq!(encode_ref(9, &engine, Some(&robot)), encode(&owned));
        assert_eq!(encoded_len(9, &engine, Some(&robot)), encode(&owned).len());
        let without = Snapshot { robot: None, ..owned };
        assert_eq!(encode_ref(9, &engine, None), encode(&without));
    }

    #[test]
    fn a_restored_engine_encodes_like_the_original() {
        let e = engine_with_a_wait();
        let state = e.state();
        let restored = Engine::restore(ResponseRules::default(), Plan::default(), state.clone());
        assert_eq!(restored.state(), state);
        assert_eq!(restored.clock().pending_waits(), 1);
        assert_eq!(restored.next_alert_due(), e.next_alert_due());
    }
}

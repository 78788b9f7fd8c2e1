//! Restart is independent of history (issue 10): `kefu run` stores snapshots of the
//! engine's and the robot's state and a restart loads the latest and processes only the
//! events after it. Real SQLite files in a temp dir; events generated in-process and
//! inserted in bulk (as `kefu run` would have stored them before a kill).
//!
//! The size is `KEFU_RESTART_EVENTS` (default 100,000: the debug build processes about
//! 20,000 events a second here, and the test processes them about twice). The million-event
//! case runs against the release build in `tests/durability.rs`
//! (`a_million_events_restart_from_a_snapshot_equal_to_a_full_rebuild`).

use std::sync::Arc;

use kefu::alerts::{Notice, Plan};
use kefu::engine::{Engine, Output, snapshot};
use kefu::event::Event;
use kefu::live::{AssistConfig, ChannelSeam, LiveConfig, LiveCounters, Runtime, SnapshotPolicy, TimeSource};
use kefu::rules::response_time::ResponseRules;
use kefu::simulate::{SimConfig, generate};
use kefu::store::{Store, snapshots};

fn events(n: usize, seed: u64) -> Vec<(Event, String)> {
    generate(&SimConfig { events: n, seed, agents: 40, ..SimConfig::default() })
        .into_iter()
        .map(|e| {
            let body = e.to_json();
            (e, body)
        })
        .collect()
}

fn store_events(store: &mut Store, events: &[(Event, String)]) {
    for chunk in events.chunks(50_000) {
        store.insert_events(chunk.iter().map(|(e, b)| (e, b.as_str()))).unwrap();
    }
}

/// A restart 30 days after the simulated traffic, with tokio's clock paused (the robot
/// drops idle conversations by it: both restarts must see the same time).
const RESTART_AT: i64 = 1_794_360_600_000 + 30 * 86_400_000;

/// `kefu run`'s configuration with the robot on (as it runs by default), snapshots every
/// `every` events.
fn config(every: u64) -> LiveConfig {
    let sets = kefu::live::Sets::load(None, None).unwrap();
    LiveConfig {
        time: TimeSource::scaled(RESTART_AT, tokio::time::Instant::now(), 1.0),
        assist: AssistConfig { replies: Some(sets.replies.clone()), ..AssistConfig::default() },
        snapshots: SnapshotPolicy { every_ms: i64::MAX, every_events: every, load: true },
        ..LiveConfig::new(ResponseRules::default())
    }
}

fn open(path: &std::path::Path, every: u64) -> Runtime {
    let (seam, _rx) = ChannelSeam::new();
    let (rt, _) = Runtime::open(
        Store::open(path).unwrap(),
        config(every),
        Box::new(seam),
        Arc::new(LiveCounters::default()),
    )
    .unwrap();
    rt
}

/// Outputs and notices of an engine fed `events` and then run to the end.
fn future(mut engine: Engine, events: &[(Event, String)]) -> (Vec<Output>, Vec<Notice>) {
    let (mut out, mut notices) = (Vec::new(), Vec::new());
    for (e, _) in events {
        engine.handle(e, &mut out, &mut notices);
    }
    engine.finish(&mut out, &mut notices);
    (out, notices)
}

#[tokio::test(start_paused = true)]
async fn a_restart_from_a_snapshot_equals_a_full_rebuild_and_decides_the_same_afterwards() {
    let n: usize = std::env::var("KEFU_RESTART_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let all = events(n + 20_000, 5);
    let (stored, later) = all.split_at(n);
    let cut = n * 9 / 10;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");

    // kefu ran through the first 90 % and stored a snapshot there (a restart after a long
    // rebuild stores one at once), then stored the rest and was killed before the next one.
    store_events(&mut Store::open(&db).unwrap(), &stored[..cut]);
    drop(open(&db, 1));
    store_events(&mut Store::open(&db).unwrap(), &stored[cut..]);
    {
        let s = Store::open(&db).unwrap();
        let kept = snapshots::newest_first(s.conn()).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].position, cut as i64, "the snapshot covers the events stored before it");
    }

    // The restart: snapshot + the 10 % after it. The rebuild: every event, no snapshot (a
    // copy of the database without its snapshots).
    let restored = open(&db, u64::MAX).snapshot().unwrap();
    let bare = dir.path().join("bare.db");
    std::fs::copy(&db, &bare).unwrap();
    Store::open(&bare).unwrap().conn().execute("DELETE FROM snapshots", []).unwrap();
    let rebuilt = open(&bare, u64::MAX).snapshot().unwrap();

    assert_eq!(restored.position, n as u64);
    let pending: Vec<_> = restored.engine.clock().pending().collect();
    assert!(!pending.is_empty(), "the stream stops with buyers waiting");
    assert_eq!(pending, rebuilt.engine.clock().pending().collect::<Vec<_>>(), "same pending waits");
    assert!(restored.engine == rebuilt.engine, "same engine state: sessions, waits, deadlines, timers");
    assert!(restored.robot == rebuilt.robot, "same robot state");
    assert!(restored.robot.is_some());
    assert_eq!(snapshot::encode(&restored), snapshot::encode(&rebuilt), "byte for byte");

    // Afterwards both decide the same: the next deadlines, every output and alert.
    let plan = Plan::default();
    let a = Engine::restore(ResponseRules::default(), plan, restored.engine);
    let b = Engine::restore(ResponseRules::default(), plan, rebuilt.engine);
    assert_eq!(a.next_alert_due(), b.next_alert_due());
    assert_eq!(a.clock().next_due(), b.clock().next_due());
    let (fa, fb) = (future(a, later), future(b, later));
    assert!(fa.0.iter().any(|o| matches!(o, Output::WaitEnded(_))));
    assert_eq!(fa, fb, "same outputs and alerts after the restart");
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_snapshot_is_ignored_and_the_state_rebuilt_from_the_events() {
    let all = events(30_000, 9);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    store_events(&mut Store::open(&db).unwrap(), &all);
    let truth = open(&db, u64::MAX).snapshot().unwrap();
    let good = snapshot::encode(&truth);
    let mut older = good.clone();
    older[8..12].copy_from_slice(&0u32.to_le_bytes());
    let mut cut = good.clone();
    cut.truncate(good.len() / 2);
    // An older format, a torn write, garbage, and a snapshot claiming a wrong position.
    let wrong_position = {
        let mut s = truth.clone();
        s.position += 1;
        snapshot::encode(&s)
    };
    for (what, bytes) in [
        ("older version", older),
        ("cut", cut),
        ("garbage", b"KEFUSNAPxx".to_vec()),
        ("position", wrong_position),
    ] {
        let s = Store::open(&db).unwrap();
        s.conn().execute("DELETE FROM snapshots", []).unwrap();
        snapshots::save(s.conn(), all.len() as i64, snapshot::VERSION, 0, 0, &bytes).unwrap();
        drop(s);
        let got = open(&db, u64::MAX).snapshot().unwrap();
        assert!(got == truth, "{what}: rebuilt from the events, the same state");
    }
}

//! Restart to first ack (issue 10), measured side by side in one run: `kefu run`'s runtime
//! and gateway opening a database holding 1 M and 10 M stored events — the newest snapshot
//! 50,000 events before the end (the most a restart processes with the default
//! `[snapshots] every_events`) — and, for comparison, the same 1 M database with no snapshot
//! (a rebuild from every event). The guard and the robot are on, as `kefu run` runs.
//!
//! The clock starts when `Live::start` is called on the closed database (the process is up,
//! the files read) and stops when the simulator has the first ack of a new event.
//!
//! `cargo bench --bench restart` (`KEFU_BENCH_RESTART`: sizes in millions, default `1,10`).

use std::path::Path;
use std::time::{Duration, Instant};

use kefu::event::Event;
use kefu::gateway::GatewayConfig;
use kefu::live::{AssistConfig, ChannelSeam, Live, LiveConfig, LiveOptions, Sets, SnapshotPolicy};
use kefu::rules::response_time::ResponseRules;
use kefu::simulate::{Item, ServerConfig, SimConfig, SimServer, generate};
use kefu::store::Store;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // `RUST_LOG=kefu=info` shows where a restart's time goes (read, decode, tail, snapshot).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let sizes: Vec<usize> = std::env::var("KEFU_BENCH_RESTART")
        .unwrap_or_else(|_| "1,10".into())
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
        .map(|m| m * 1_000_000)
        .collect();
    let base = generate(&SimConfig { events: 1_000_000, seed: 42, agents: 40, ..SimConfig::default() });
    let span = base.last().map_or(0, |e| e.ts) - base.first().map_or(0, |e| e.ts) + 86_400_000;
    let sets = Sets::load(None, None).map_err(|e| anyhow::anyhow!("embedded rules: {e:?}"))?;
    let rt = tokio::runtime::Runtime::new()?;
    println!("load before: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    let dir = tempfile::tempdir()?;
    // Events after the newest snapshot: the most the default policy leaves a restart.
    let after_snapshot = kefu::live::SnapshotPolicy::default().every_events as usize;
    let mut lines = Vec::new();
    for &n in &sizes {
        let db = dir.path().join(format!("{n}.db"));
        let t = Instant::now();
        fill(&db, &base, span, 0, n - after_snapshot, n)?;
        let filled = t.elapsed().as_secs_f64();
        // A first start rebuilds from every event and stores a snapshot at once.
        let (first, _) = rt.block_on(first_ack(&db, &sets, n as u64))?;
        let rebuild = first.as_secs_f64();
        fill(&db, &base, span, n - after_snapshot, n, n)?;
        println!(
            "{n} events stored ({filled:.1} s); first start (rebuild from {} events + snapshot) {rebuild:.2} s",
            n - after_snapshot
        );
        let (ack, tail) = rt.block_on(first_ack(&db, &sets, n as u64 + 1))?;
        lines.push(format!(
            "restart to first ack, {n} events stored, snapshot + {tail} events after it: {:.3} s",
            ack.as_secs_f64()
        ));
        if n == sizes[0] {
            let bare = dir.path().join("bare.db");
            std::fs::copy(&db, &bare)?;
            Store::open(&bare)?.conn().execute("DELETE FROM snapshots", [])?;
            let policy = SnapshotPolicy { load: false, ..SnapshotPolicy::default() };
            let (ack, _) = rt.block_on(first_ack_with(&bare, &sets, n as u64 + 2, policy))?;
            lines.push(format!(
                "restart to first ack, {n} events stored, no snapshot (rebuild from every event): {:.3} s",
                ack.as_secs_f64()
            ));
            remove_db(&bare);
        }
        // The next size needs the disk more than this one does.
        remove_db(&db);
    }
    println!("load: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

fn remove_db(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// Stores events `from..to` of `total`: copies of the base traffic, each a span of days
/// before the next, with new ids, the newest ending an hour before now.
fn fill(db: &Path, base: &[Event], span: i64, from: usize, to: usize, total: usize) -> anyhow::Result<()> {
    let copies = total.div_ceil(base.len()) as i64;
    let end = base.last().map_or(0, |e| e.ts);
    let shift = kefu::time::now_ms() - 3_600_000 - end - (copies - 1) * span;
    let mut store = Store::open(db)?;
    let mut rows: Vec<(Event, String)> = Vec::with_capacity(100_000);
    for i in from..to {
        let (copy, k) = (i / base.len(), i % base.len());
        let mut e = base[k].clone();
        e.id = format!("{}-{copy}", e.id);
        e.ts += shift + copy as i64 * span;
        let body = e.to_json();
        rows.push((e, body));
        if rows.len() == rows.capacity() || i + 1 == to {
            store.insert_events(rows.iter().map(|(e, b)| (e, b.as_str())))?;
            rows.clear();
        }
    }
    Ok(())
}

async fn first_ack(db: &Path, sets: &Sets, id: u64) -> anyhow::Result<(Duration, u64)> {
    first_ack_with(db, sets, id, SnapshotPolicy::default()).await
}

/// Starts the live bot on `db` against a simulator holding one new event; returns the time
/// to its ack and how many stored events the restart processed after its snapshot.
async fn first_ack_with(
    db: &Path,
    sets: &Sets,
    id: u64,
    snapshots: SnapshotPolicy,
) -> anyhow::Result<(Duration, u64)> {
    let line = format!(
        r#"{{"type":"presence","id":"restart-{id}","ts":"{}","shop":"tmall-demo","agent":"agent01","status":"online"}}"#,
        kefu::time::format_rfc3339_shanghai(kefu::time::now_ms() - 1_000)
    );
    let event = kefu::event::parse(&line).map_err(|e| anyhow::anyhow!("{e}"))?;
    let srv =
        SimServer::start("127.0.0.1:0".parse()?, vec![Item::Event(event)], ServerConfig::default()).await?;
    let (seam, _alerts) = ChannelSeam::new();
    let options = LiveOptions {
        db: db.into(),
        gateway: GatewayConfig::new(srv.url(), None),
        live: LiveConfig {
            assist: AssistConfig::with_sets(sets),
            snapshots,
            ..LiveConfig::new(ResponseRules::default())
        },
    };
    let after = tail_after_snapshot(db)?;
    let t = Instant::now();
    let live = Live::start(options, Box::new(seam))?;
    while srv.acked().is_none() {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(600), "no ack");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let elapsed = t.elapsed();
    live.stop().await?;
    Ok((elapsed, after))
}

fn tail_after_snapshot(db: &Path) -> anyhow::Result<u64> {
    let store = Store::open(db)?;
    let last = kefu::store::snapshots::last_position(store.conn())?;
    let snap = kefu::store::snapshots::newest_first(store.conn())?.first().map_or(0, |s| s.position);
    Ok((last - snap) as u64)
}

//! Live figures, all measured in one run:
//! 1. events/s sustained from the simulator over loopback websocket into SQLite (the whole
//!    path: frames → decode → dedup → clock → commit → ack) against a bare batched rusqlite
//!    insert of the same events into the same schema with the same statement;
//! 2. breach-alert lateness (deadline → alert handed to the alert seam) with 10,000 buyers
//!    waiting at once;
//!    and the same path with the phrase guard and the robot on, as `kefu run` runs it;
//! 3. peak memory (VmHWM) of the runtime holding 100,000 open conversations, measured in a
//!    child process so nothing else counts.
//!
//! `cargo bench --bench live` (events for 1: KEFU_BENCH_EVENTS, default 200,000;
//! KEFU_BENCH_LIVE_PARTS: some of `throughput,lateness,memory`, default all).

use std::sync::Arc;
use std::time::Duration;

use kefu::alerts::Plan;
use kefu::event::{Event, EventKind, Sender};
use kefu::gateway::{GatewayConfig, Incoming};
use kefu::live::{
    AssistConfig, ChannelSeam, Live, LiveConfig, LiveCounters, LiveOptions, Runtime, Sets, TimeSource,
};
use kefu::replay::BATCH;
use kefu::rules::response_time::ResponseRules;
use kefu::simulate::server::rebase;
use kefu::simulate::{Item, ServerConfig, SimConfig, SimServer, generate};
use kefu::store::Store;
use tokio::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHILD: &str = "KEFU_BENCH_LIVE_CHILD";

fn main() -> anyhow::Result<()> {
    if std::env::var(CHILD).is_ok() {
        return memory_child();
    }
    // KEFU_BENCH_LIVE_PARTS picks some of `throughput,lateness,memory` (default all).
    let parts =
        std::env::var("KEFU_BENCH_LIVE_PARTS").unwrap_or_else(|_| "throughput,lateness,memory".into());
    let rt = tokio::runtime::Runtime::new()?;
    if parts.contains("throughput") {
        rt.block_on(throughput())?;
    }
    if parts.contains("lateness") {
        rt.block_on(lateness())?;
    }
    if parts.contains("memory") {
        memory()?;
    }
    Ok(())
}

async fn throughput() -> anyhow::Result<()> {
    let n: usize = std::env::var("KEFU_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let mut events = generate(&SimConfig { events: n, seed: 42, ..SimConfig::default() });
    // Dated in the past (ending now): a backlog, as an event dated ahead of the clock is rejected.
    let span = events.last().map_or(0, |e| e.ts) - events.first().map_or(0, |e| e.ts);
    rebase(&mut events, kefu::time::now_ms() - span);
    println!("throughput: {n} simulated events");
    let (mut bare_best, mut live_best, mut assist_best) = (f64::MAX, f64::MAX, f64::MAX);
    let sets = Sets::load(None, None).map_err(|e| anyhow::anyhow!("embedded rules: {e:?}"))?;
    for round in 0..3 {
        let dir = tempfile::tempdir()?;
        let bare = bare_insert(&events, &dir.path().join("bare.db"))?;
        let live = live_ingest(&events, &dir.path().join("live.db"), AssistConfig::default()).await?;
        let assist =
            live_ingest(&events, &dir.path().join("assist.db"), AssistConfig::with_sets(&sets)).await?;
        println!(
            "  round {}: bare insert {:>9.0} rows/s · live {:>9.0} events/s ({:.0}%) · with guard and robot {:>9.0} events/s ({:.0}%)",
            round + 1,
            n as f64 / bare,
            n as f64 / live,
            100.0 * bare / live,
            n as f64 / assist,
            100.0 * bare / assist
        );
        bare_best = bare_best.min(bare);
        live_best = live_best.min(live);
        assist_best = assist_best.min(assist);
    }
    println!("  bare batched rusqlite insert: {:>9.0} rows/s (best of 3)", n as f64 / bare_best);
    println!("  live from the simulator:      {:>9.0} events/s (best of 3)", n as f64 / live_best);
    println!("  live / bare: {:.0}%", 100.0 * bare_best / live_best);
    println!("  live with guard and robot:    {:>9.0} events/s (best of 3)", n as f64 / assist_best);
    println!("  live with guard and robot / bare: {:.0}% (target >= 70%)", 100.0 * bare_best / assist_best);
    Ok(())
}

/// The floor SQLite sets: the same rows, schema and statement, already parsed and
/// serialised, in transactions of the replay batch size.
fn bare_insert(events: &[Event], db: &std::path::Path) -> anyhow::Result<f64> {
    let rows: Vec<(&Event, String)> = events.iter().map(|e| (e, e.to_json())).collect();
    let mut store = Store::open(db)?;
    let t = std::time::Instant::now();
    for chunk in rows.chunks(BATCH) {
        // One transaction per chunk, the statement replay and live use.
        store.insert_events(chunk.iter().map(|(e, body)| (*e, body.as_str())))?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// From connecting to the last generated seq acked: the simulator sends as fast as kefu
/// takes (with the robot on, its echoed replies follow and are not waited for).
async fn live_ingest(events: &[Event], db: &std::path::Path, assist: AssistConfig) -> anyhow::Result<f64> {
    let items = events.iter().cloned().map(Item::Event).collect();
    let srv = SimServer::start("127.0.0.1:0".parse()?, items, ServerConfig::default()).await?;
    let last = srv.last_seq();
    let (seam, _alerts) = ChannelSeam::new();
    let t = Instant::now();
    let options = LiveOptions {
        db: db.into(),
        gateway: GatewayConfig::new(srv.url(), None),
        live: LiveConfig { assist, ..LiveConfig::new(ResponseRules::default()) },
    };
    let live = Live::start(options, Box::new(seam))?;
    while srv.acked() < Some(last) {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(300), "live ingest did not finish");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = t.elapsed().as_secs_f64();
    anyhow::ensure!(LiveCounters::get(&live.counters.events) >= events.len() as u64);
    live.stop().await?;
    Ok(elapsed)
}

fn waiting_buyer(i: usize, ts: i64) -> Event {
    Event {
        id: format!("w{i}"),
        ts,
        shop: "bench".into(),
        kind: EventKind::Message {
            conversation: format!("c{i:06}"),
            customer: format!("tb{:09}", 100_000_000 + i),
            agent: format!("agent{:03}", i % 1000),
            from: Sender::Customer,
            text: "在吗?这件有M码吗".into(),
        },
    }
}

/// 10,000 buyers start waiting within one second, over the websocket in real time; each
/// is due 2 s later. Lateness = the instant the alert reached the seam − the deadline.
async fn lateness() -> anyhow::Result<()> {
    const BUYERS: usize = 10_000;
    let dir = tempfile::tempdir()?;
    let start = kefu::time::now_ms() + 200;
    let events: Vec<Event> =
        (0..BUYERS).map(|i| waiting_buyer(i, start + (i as i64 * 1000 / BUYERS as i64))).collect();
    let items = events.into_iter().map(Item::Event).collect();
    let srv =
        SimServer::start("127.0.0.1:0".parse()?, items, ServerConfig { speed: 1.0, ..Default::default() })
            .await?;
    // The simulator plays the first event at its start, so its ts maps to that instant.
    let time = TimeSource::scaled(start, srv.origin(), 1.0);
    let rules = ResponseRules { tiers: vec![(u32::MAX, 2_000)], ..ResponseRules::default() };
    let plan = Plan { escalation_permille: None, ..Plan::default() };
    let (seam, mut alerts) = ChannelSeam::new();
    let options = LiveOptions {
        db: dir.path().join("late.db"),
        gateway: GatewayConfig::new(srv.url(), None),
        live: LiveConfig { plan, time, ..LiveConfig::new(rules) },
    };
    let live = Live::start(options, Box::new(seam))?;
    let mut late_us = Vec::with_capacity(BUYERS);
    let mut peak_waiting = 0;
    while late_us.len() < BUYERS {
        let got = tokio::time::timeout(Duration::from_secs(30), alerts.recv()).await?;
        let Some((notice, at)) = got else { anyhow::bail!("alert channel closed") };
        peak_waiting = peak_waiting.max(LiveCounters::get(&live.counters.waiting));
        let due = time.instant_at(notice.due_at);
        late_us.push(at.saturating_duration_since(due).as_micros() as u64);
    }
    live.stop().await?;
    late_us.sort_unstable();
    let pct = |p: f64| late_us[((late_us.len() as f64 * p) as usize).min(late_us.len() - 1)] as f64 / 1000.0;
    println!(
        "breach lateness, {BUYERS} buyers waiting at once (deadline → alert at the seam; includes the 1 ms a breach needs to be *past* its deadline):"
    );
    println!("  p50 {:.2} ms · p99 {:.2} ms · max {:.2} ms", pct(0.50), pct(0.99), pct(1.0));
    println!(
        "  buyers waiting when the first alerts fired: {peak_waiting} (gauge, refreshed twice a second)"
    );
    Ok(())
}

fn memory() -> anyhow::Result<()> {
    let out = std::process::Command::new(std::env::current_exe()?).env(CHILD, "1").output()?;
    anyhow::ensure!(out.status.success(), "memory child failed: {}", String::from_utf8_lossy(&out.stderr));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The runtime alone (no simulator in the process): 100,000 conversations, each with a
/// buyer waiting, fed through its frame channel and committed.
fn memory_child() -> anyhow::Result<()> {
    const CONVERSATIONS: usize = 100_000;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let before = status_kb("VmRSS:");
        let counters = Arc::new(LiveCounters::default());
        let (seam, _alerts) = ChannelSeam::new();
        let config = LiveConfig::new(ResponseRules::default());
        let now = kefu::time::now_ms();
        let (runtime, mut committed) =
            Runtime::open(Store::open(&dir.path().join("mem.db"))?, config, Box::new(seam), counters.clone())?;
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let task = tokio::spawn(runtime.run(rx));
        for i in 0..CONVERSATIONS {
            let e = waiting_buyer(i, now);
            tx.send(Incoming::Event { seq: i as u64 + 1, body: e.to_json(), event: e }).await?;
        }
        while *committed.borrow_and_update() != Some(CONVERSATIONS as u64) {
            committed.changed().await?;
        }
        drop(tx);
        task.await??;
        println!(
            "memory: {} open conversations, {} buyers waiting: VmHWM {:.1} MB (target <= 100 MB; RSS before the runtime {:.1} MB)",
            LiveCounters::get(&counters.open),
            LiveCounters::get(&counters.waiting),
            status_kb("VmHWM:") as f64 / 1024.0,
            before as f64 / 1024.0
        );
        Ok(())
    })
}

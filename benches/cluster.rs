//! Cluster figures (issue 16), all printed by one run:
//!
//! 1. events/s through one worker from JetStream against the websocket, in the same run,
//!    the same events (many shops, dated in the past: a backlog) and the same runtime
//!    settings (no guard, no robot, as a worker runs): the websocket path is the
//!    single-process `Live` against the simulator; the JetStream path is one
//!    `kefu::cluster::worker` owning every partition of a one-node nats-server, the events
//!    published beforehand. Each with the process CPU time it took (the nats-server's
//!    separately), so the rate per CPU second shows what a worker costs whatever the load;
//! 2. per-worker efficiency on this machine: the same events through two workers at once
//!    against one;
//! 3. takeover after SIGKILL: three `kefu run --nats` processes, one killed ten times in
//!    turn (and started again); each time, from the kill to the last of its partitions'
//!    leases being taken by a survivor (the lease entries' server timestamps). p50 and max.
//!
//! `cargo bench --bench cluster` (KEFU_BENCH_EVENTS, default 200,000;
//! KEFU_BENCH_CLUSTER_PARTS: some of `throughput,takeover`, default both). Needs
//! nats-server (`scripts/install-test-deps.sh`).

#[path = "../tests/util/nats.rs"]
#[allow(dead_code)]
mod nats;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kefu::alerts::AlertConfig;
use kefu::cluster::setup::{self, Handles};
use kefu::cluster::worker::{self, WorkerCounters, WorkerOptions};
use kefu::cluster::{ClusterConfig, lease, publish, source};
use kefu::event::Event;
use kefu::gateway::GatewayConfig;
use kefu::live::{ChannelSeam, Live, LiveConfig, LiveCounters, LiveOptions, SnapshotPolicy};
use kefu::rules::response_time::ResponseRules;
use kefu::simulate::server::rebase;
use kefu::simulate::{Item, ServerConfig, SimConfig, SimServer};
use tokio::sync::watch;
use tokio::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Partitions of the throughput stream: one worker owns them all (one runtime each).
const PARTITIONS: u32 = 4;
/// Generous bound on anything waited for.
const PATIENCE: Duration = Duration::from_secs(600);

fn main() -> anyhow::Result<()> {
    let parts = std::env::var("KEFU_BENCH_CLUSTER_PARTS").unwrap_or_else(|_| "throughput,takeover".into());
    let uptime = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", uptime.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    let rt = tokio::runtime::Runtime::new()?;
    if parts.contains("throughput") {
        rt.block_on(throughput())?;
    }
    if parts.contains("takeover") {
        rt.block_on(takeover())?;
    }
    let uptime = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", uptime.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    Ok(())
}

/// User + system CPU seconds of this process so far.
fn self_cpu() -> f64 {
    proc_cpu("self")
}

/// User + system CPU seconds of process `pid` so far (`/proc/<pid>/stat`, in clock ticks
/// of 1/100 s: Linux's USER_HZ).
fn proc_cpu(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) follow its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, fields 14 and 15 of the line: 12th and 13th after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn events(n: usize) -> Vec<Event> {
    let shops = 64;
    let sim = SimConfig { seed: 42, events: n / shops, agents: 4, ..SimConfig::default() };
    let mut events = kefu::simulate::many_shops(&sim, shops);
    // Dated in the past, ending now: a backlog (an event dated ahead of the clock is rejected).
    let span = events.last().map_or(0, |e| e.ts) - events.first().map_or(0, |e| e.ts);
    rebase(&mut events, kefu::time::now_ms() - span);
    events
}

fn quiet_alerts() -> AlertConfig {
    let mut a = AlertConfig::default();
    a.sinks.clear();
    a
}

async fn throughput() -> anyhow::Result<()> {
    let n: usize = std::env::var("KEFU_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let events = events(n);
    let n = events.len();
    println!(
        "throughput: {n} simulated events of 64 shops; JetStream: {PARTITIONS} partitions, one nats-server"
    );
    let mut rows = Vec::new();
    for round in 1..=2 {
        let ws = websocket(&events).await?;
        let one = jetstream(&events, 1).await?;
        let two = jetstream(&events, 2).await?;
        println!(
            "  round {round}: websocket {:>7.0} ev/s ({:>7.0} per kefu CPU s) · JetStream, 1 worker {:>7.0} ev/s ({:>7.0} per worker CPU s, nats-server {:.1} CPU s) · 2 workers {:>7.0} ev/s",
            n as f64 / ws.wall,
            n as f64 / ws.cpu,
            n as f64 / one.wall,
            n as f64 / one.cpu,
            one.server_cpu,
            n as f64 / two.wall,
        );
        rows.push((ws, one, two));
    }
    let best = |f: &dyn Fn(&(Run, Run, Run)) -> &Run| {
        rows.iter().map(f).min_by(|a, b| a.wall.total_cmp(&b.wall)).cloned().unwrap_or_default()
    };
    let (ws, one, two) = (best(&|r| &r.0), best(&|r| &r.1), best(&|r| &r.2));
    let rate = |r: &Run| n as f64 / r.wall;
    println!(
        "  websocket (kefu run, single process): {:>8.0} events/s (best of 2), {:>8.0} per kefu CPU second",
        rate(&ws),
        n as f64 / ws.cpu
    );
    println!(
        "  JetStream, one worker:                {:>8.0} events/s (best of 2), {:>8.0} per worker CPU second; nats-server {:.1} CPU s",
        rate(&one),
        n as f64 / one.cpu,
        one.server_cpu
    );
    println!(
        "  JetStream / websocket: {:.0}% (wall), {:.0}% (per CPU second)",
        100.0 * ws.wall / one.wall,
        100.0 * ws.cpu / one.cpu
    );
    println!(
        "  JetStream, two workers at once:       {:>8.0} events/s (best of 2) = {:.0}% of twice one worker ({:.0} per worker); worker CPU {:.1} s, nats-server {:.1} CPU s",
        rate(&two),
        100.0 * one.wall / (2.0 * two.wall),
        rate(&two) / 2.0,
        two.cpu,
        two.server_cpu
    );
    Ok(())
}

#[derive(Debug, Clone, Default)]
struct Run {
    /// Wall seconds.
    wall: f64,
    /// CPU seconds of kefu (the bench process: the runtime, and for the websocket the
    /// simulator feeding it).
    cpu: f64,
    /// CPU seconds of the nats-server.
    server_cpu: f64,
}

/// From connecting to the last seq acked, as `benches/live.rs` measures it.
async fn websocket(events: &[Event]) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let items = events.iter().cloned().map(Item::Event).collect();
    let srv = SimServer::start("127.0.0.1:0".parse()?, items, ServerConfig::default()).await?;
    let last = srv.last_seq();
    let (seam, _alerts) = ChannelSeam::new();
    let (t, cpu) = (Instant::now(), self_cpu());
    let options = LiveOptions {
        db: dir.path().join("ws.db"),
        gateway: GatewayConfig::new(srv.url(), None),
        live: LiveConfig { snapshots: worker_snapshots(), ..LiveConfig::new(ResponseRules::default()) },
    };
    let live = Live::start(options, Box::new(seam))?;
    while srv.acked() < Some(last) {
        anyhow::ensure!(t.elapsed() < PATIENCE, "websocket ingest did not finish");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let run = Run { wall: t.elapsed().as_secs_f64(), cpu: self_cpu() - cpu, server_cpu: 0.0 };
    anyhow::ensure!(LiveCounters::get(&live.counters.events) >= events.len() as u64);
    live.stop().await?;
    Ok(run)
}

/// What `kefu run --nats` uses.
fn worker_snapshots() -> SnapshotPolicy {
    SnapshotPolicy { every_ms: 10_000, every_events: 20_000, load: true }
}

/// Publishes the events to a fresh one-node server (not timed), then times `workers`
/// in-process workers from their start until every partition's consumer has had all its
/// events delivered and acked (committed and in the results log).
async fn jetstream(events: &[Event], workers: usize) -> anyhow::Result<Run> {
    let server = nats::Cluster::start(1).await;
    let c = ClusterConfig { replicas: 1, ..ClusterConfig::new(server.urls(), PARTITIONS) };
    let h = setup::ensure(kefu::cluster::connect(&c.servers).await?, &c).await?;
    publish::publish(&h, events.iter().map(publish::Outgoing::of)).await?;
    let dir = tempfile::tempdir()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let server_pid = server.pids()[0].to_string();
    let (t, cpu, server_cpu) = (Instant::now(), self_cpu(), proc_cpu(&server_pid));
    let mut tasks = Vec::new();
    for i in 0..workers {
        let opts = WorkerOptions {
            cluster: c.clone(),
            id: format!("b{i}"),
            state: dir.path().join(format!("b{i}")),
            live: LiveConfig { snapshots: worker_snapshots(), ..LiveConfig::new(ResponseRules::default()) },
            alerts: quiet_alerts(),
        };
        tasks.push(tokio::spawn(worker::run(opts, Arc::new(WorkerCounters::default()), stop_rx.clone())));
    }
    while !drained(&h).await {
        anyhow::ensure!(t.elapsed() < PATIENCE, "JetStream ingest did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let run = Run {
        wall: t.elapsed().as_secs_f64(),
        cpu: self_cpu() - cpu,
        server_cpu: proc_cpu(&server_pid) - server_cpu,
    };
    stop_tx.send_replace(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
    }
    Ok(run)
}

async fn drained(h: &Handles) -> bool {
    for n in 0..h.partitions {
        match source::current(&h.events, n).await {
            Ok(Some(i))
                if i.num_pending == 0 && i.num_ack_pending == 0 && i.delivered.stream_sequence > 0 => {}
            _ => return false,
        }
    }
    true
}

/// A `kefu run --nats` process.
fn start_worker(dir: &Path, urls: &str, id: &str) -> anyhow::Result<std::process::Child> {
    Ok(nats::worker_command(dir, urls, 8, 1, id, "log = \"warn\"\n")?.spawn()?)
}

/// Each partition's lease: owner and when the server stored it (UTC ms).
async fn leases(h: &Handles) -> BTreeMap<u32, (String, i64)> {
    let mut out = BTreeMap::new();
    for n in 0..h.partitions {
        if let Ok(Some(e)) = h.leases.entry(lease::part_key(n)).await
            && e.operation == async_nats::jetstream::kv::Operation::Put
        {
            let at = (e.created.unix_timestamp_nanos() / 1_000_000) as i64;
            out.insert(n, (String::from_utf8_lossy(&e.value).to_string(), at));
        }
    }
    out
}

/// Ten SIGKILLs, one worker of three each time; the takeover is the time from the kill to
/// the last of its partitions' leases being written by a survivor.
async fn takeover() -> anyhow::Result<()> {
    const KILLS: usize = 10;
    let server = nats::Cluster::start(1).await;
    let urls = server.urls();
    let c = ClusterConfig { replicas: 1, ..ClusterConfig::new(urls.clone(), 8) };
    let h = setup::ensure(kefu::cluster::connect(&urls).await?, &c).await?;
    // A little traffic, so a partition is taken with a snapshot and results to restore.
    let traffic = events(20_000);
    publish::publish(&h, traffic.iter().map(publish::Outgoing::of)).await?;
    let dir = tempfile::tempdir()?;
    let ids = ["k1", "k2", "k3"];
    let mut procs: Vec<std::process::Child> =
        ids.iter().map(|id| start_worker(dir.path(), &urls, id)).collect::<Result<_, _>>()?;
    println!("takeover after SIGKILL: 3 worker processes, 8 partitions, lease TTL 5 s, renewal every 1 s");
    let mut times = Vec::new();
    for k in 0..KILLS {
        let victim = k % ids.len();
        // Settled: every partition owned, by all three, none above its share.
        let t = Instant::now();
        let owned = loop {
            let l = leases(&h).await;
            let mut per: BTreeMap<&str, usize> = BTreeMap::new();
            l.values().for_each(|(w, _)| *per.entry(w.as_str()).or_default() += 1);
            if l.len() == 8 && per.len() == 3 && per.values().all(|&c| c <= 3) {
                break l;
            }
            anyhow::ensure!(t.elapsed() < PATIENCE, "workers did not share the partitions: {per:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let orphans: BTreeSet<u32> =
            owned.iter().filter(|(_, (w, _))| w == ids[victim]).map(|(p, _)| *p).collect();
        let killed_at = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_millis() as i64;
        procs[victim].kill()?;
        procs[victim].wait()?;
        let t = Instant::now();
        let taken = loop {
            let l = leases(&h).await;
            let done: Vec<i64> = orphans
                .iter()
                .filter_map(|p| l.get(p).filter(|(w, at)| w != ids[victim] && *at >= killed_at))
                .map(|(_, at)| at - killed_at)
                .collect();
            if done.len() == orphans.len() {
                break done.into_iter().max().unwrap_or(0);
            }
            anyhow::ensure!(t.elapsed() < PATIENCE, "partitions of a killed worker not taken over");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!(
            "  kill {:>2}: {} ({} partitions) taken over in {:>5} ms",
            k + 1,
            ids[victim],
            orphans.len(),
            taken
        );
        times.push(taken);
        procs[victim] = start_worker(dir.path(), &urls, ids[victim])?;
    }
    for p in &mut procs {
        let _ = p.kill();
        let _ = p.wait();
    }
    times.sort_unstable();
    let p50 = (times[KILLS / 2 - 1] + times[KILLS / 2]) / 2;
    println!("  takeover over {KILLS} kills: p50 {p50} ms, max {} ms, min {} ms", times[KILLS - 1], times[0]);
    Ok(())
}

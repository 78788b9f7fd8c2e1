//! Console figures, measured in one run:
//! 1. ingestion from the simulator with the phrase guard and the robot on (as `kefu run`
//!    runs it), with no console and with the console serving 50 connected boards (server-sent
//!    event streams read to the end), side by side, best of 3 rounds each;
//! 2. board update latency with 10,000 buyers waiting on 200 agents: 200 more buyers arrive
//!    one every 50 ms over the websocket; latency = the instant the simulator sent the frame
//!    → the instant a connected board's stream delivered a state counting that buyer
//!    (an upper bound of commit → board);
//! 3. memory per connected board: the bytes live on the server process's heap (counted by
//!    the allocator) before and after 200 more boards connect (the boards themselves run in
//!    a child process), divided by 200; kernel socket buffers are not counted.
//!
//! `cargo bench --bench console` (events for 1: KEFU_BENCH_EVENTS, default 100,000).

use std::alloc::{GlobalAlloc, Layout};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use kefu::console::auth;
use kefu::console::users::{self, Role, User};
use kefu::console::{Console, ConsoleConfig};
use kefu::event::{Event, EventKind, Sender};
use kefu::gateway::GatewayConfig;
use kefu::live::{AssistConfig, ChannelSeam, Live, LiveConfig, LiveCounters, LiveOptions, Sets, TimeSource};
use kefu::rules::response_time::ResponseRules;
use kefu::simulate::server::rebase;
use kefu::simulate::{Item, ServerConfig, SimConfig, SimServer, generate};
use kefu::store::Store;
use tokio::time::Instant;

/// kefu's allocator, counting the bytes live on the heap (for the memory per board).
struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call goes straight to mimalloc with the caller's arguments; the counter
// only adds and subtracts the sizes of blocks handed out and returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CHILD: &str = "KEFU_BENCH_CONSOLE_BOARDS";
const BOARDS: usize = 50;

fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var(CHILD) {
        return boards_child(&spec);
    }
    let rt = tokio::runtime::Runtime::new()?;
    // KEFU_BENCH_SKIP_INGESTION=1 runs parts 2 and 3 only.
    if std::env::var_os("KEFU_BENCH_SKIP_INGESTION").is_none() {
        rt.block_on(ingestion())?;
    }
    rt.block_on(latency_and_memory())?;
    Ok(())
}

/// An owner login and a session cookie for it, straight in the database.
fn session(db: &Path) -> anyhow::Result<String> {
    let store = Store::open(db)?;
    let user = User { name: "bench".into(), role: Role::Owner, agent: None, shops: vec![] };
    users::add(store.conn(), &user, "bench password", kefu::time::now_ms())?;
    let (token, _) = auth::create(store.conn(), "bench", kefu::time::now_ms())?;
    Ok(format!("{}={token}", auth::SESSION_COOKIE))
}

/// One board: reads the stream to the end, calling `seen` with each state's text.
async fn board(url: String, cookie: String, mut seen: impl FnMut(&str) + Send) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut res = client.get(url).header("cookie", cookie).send().await?;
    anyhow::ensure!(res.status() == 200, "stream answered {}", res.status());
    let mut buf = String::new();
    while let Some(chunk) = res.chunk().await? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let msg: String = buf.drain(..end + 2).collect();
            if let Some(data) = msg.lines().find_map(|l| l.strip_prefix("data:")) {
                seen(data);
            }
        }
    }
    Ok(())
}

async fn ingestion() -> anyhow::Result<()> {
    let n: usize = std::env::var("KEFU_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let mut events = generate(&SimConfig { events: n, seed: 42, ..SimConfig::default() });
    rebase(&mut events, kefu::time::now_ms());
    let sets = Sets::load(None, None).map_err(|e| anyhow::anyhow!("embedded rules: {e:?}"))?;
    println!("ingestion with guard and robot: {n} simulated events, {BOARDS} boards");
    let (mut none_best, mut boards_best) = (f64::MAX, f64::MAX);
    for round in 0..3 {
        let dir = tempfile::tempdir()?;
        let none = ingest(&events, &dir.path().join("none.db"), &sets, 0).await?;
        let with = ingest(&events, &dir.path().join("boards.db"), &sets, BOARDS).await?;
        println!(
            "  round {}: no console {:>8.0} events/s · {BOARDS} boards {:>8.0} events/s ({:.0}%)",
            round + 1,
            n as f64 / none,
            n as f64 / with,
            100.0 * none / with
        );
        none_best = none_best.min(none);
        boards_best = boards_best.min(with);
    }
    println!("  no console:   {:>8.0} events/s (best of 3)", n as f64 / none_best);
    println!("  {BOARDS} boards:    {:>8.0} events/s (best of 3)", n as f64 / boards_best);
    println!("  {BOARDS} boards / none: {:.1}%", 100.0 * none_best / boards_best);
    Ok(())
}

/// From connecting to the last seq acked; with `boards` > 0 the console serves that many
/// connected streams, each reading every state.
async fn ingest(events: &[Event], db: &Path, sets: &Sets, boards: usize) -> anyhow::Result<f64> {
    let items = events.iter().cloned().map(Item::Event).collect();
    let srv = SimServer::start("127.0.0.1:0".parse()?, items, ServerConfig::default()).await?;
    let last = srv.last_seq();
    let (seam, _alerts) = ChannelSeam::new();
    let mut live =
        LiveConfig { assist: AssistConfig::with_sets(sets), ..LiveConfig::new(ResponseRules::default()) };
    let mut console = None;
    let mut readers = Vec::new();
    let states = Arc::new(std::sync::atomic::AtomicU64::new(0));
    if boards > 0 {
        let cookie = session(db)?;
        let (feed, shared) = Console::board(live.plan, 1.0);
        live.board = Some(feed);
        let config = ConsoleConfig {
            addr: "127.0.0.1:0".parse()?,
            db: db.into(),
            secure_cookies: false,
            rules: None,
            replies: None,
            reload: None,
        };
        let c = Console::start(&config, shared).await?;
        for _ in 0..boards {
            let (url, cookie, states) = (format!("{}board/stream", c.url()), cookie.clone(), states.clone());
            readers.push(tokio::spawn(board(url, cookie, move |_| {
                states.fetch_add(1, Ordering::Relaxed);
            })));
        }
        console = Some(c);
    }
    let t = Instant::now();
    let options = LiveOptions { db: db.into(), gateway: GatewayConfig::new(srv.url(), None), live };
    let live = Live::start(options, Box::new(seam))?;
    while srv.acked() < Some(last) {
        anyhow::ensure!(t.elapsed() < Duration::from_secs(300), "ingest did not finish");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = t.elapsed().as_secs_f64();
    anyhow::ensure!(LiveCounters::get(&live.counters.events) >= events.len() as u64);
    if boards > 0 {
        let s = states.load(Ordering::Relaxed);
        anyhow::ensure!(s >= boards as u64, "the boards received {s} states");
    }
    live.stop().await?;
    if let Some(c) = console {
        c.stop();
    }
    for r in readers {
        r.abort();
    }
    Ok(elapsed)
}

fn buyer(i: usize, ts: i64, agents: usize) -> Event {
    Event {
        id: format!("w{i}"),
        ts,
        shop: "bench".into(),
        kind: EventKind::Message {
            conversation: format!("c{i:06}"),
            customer: format!("tb{:09}", 100_000_000 + i),
            agent: format!("agent{:03}", i % agents),
            from: Sender::Customer,
            text: "在吗?这件有M码吗".into(),
        },
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn latency_and_memory() -> anyhow::Result<()> {
    const WAITING: usize = 10_000;
    const AGENTS: usize = 200;
    const PROBES: usize = 200;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("latency.db");
    let cookie = session(&db)?;
    let start = kefu::time::now_ms() + 200;
    // 10,000 buyers within the first second; from 5 s on, one more every 50 ms.
    let mut events: Vec<Event> =
        (0..WAITING).map(|i| buyer(i, start + (i as i64 * 1000 / WAITING as i64), AGENTS)).collect();
    let probe_at = |k: usize| 5_000 + k as i64 * 50;
    events.extend((0..PROBES).map(|k| buyer(WAITING + k, start + probe_at(k), AGENTS)));
    let items = events.into_iter().map(Item::Event).collect();
    let srv =
        SimServer::start("127.0.0.1:0".parse()?, items, ServerConfig { speed: 1.0, ..Default::default() })
            .await?;
    let (seam, _alerts) = ChannelSeam::new();
    let (feed, shared) = Console::board(kefu::alerts::Plan::default(), 1.0);
    let live = LiveConfig {
        time: TimeSource::wall(),
        board: Some(feed),
        ..LiveConfig::new(ResponseRules::default())
    };
    let live = Live::start(
        LiveOptions { db: db.clone(), gateway: GatewayConfig::new(srv.url(), None), live },
        Box::new(seam),
    )?;
    let config = ConsoleConfig {
        addr: "127.0.0.1:0".parse()?,
        db: db.clone(),
        secure_cookies: false,
        rules: None,
        replies: None,
        reload: None,
    };
    let console = Console::start(&config, shared).await?;
    let url = format!("{}board/stream", console.url());
    // A board that notes when each waiting count first shows.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let reader = tokio::spawn(board(url.clone(), cookie.clone(), move |data| {
        let total = data
            .split("\"waiting_total\":")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let _ = tx.send((total, Instant::now()));
    }));
    let origin = srv.origin();
    let mut seen_at: Vec<Option<Instant>> = vec![None; PROBES];
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen_at.iter().any(Option::is_none) {
        let Ok(Some((total, at))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            anyhow::bail!("the board never showed every probe");
        };
        for (k, s) in seen_at.iter_mut().enumerate() {
            if s.is_none() && total > WAITING + k {
                *s = Some(at);
            }
        }
    }
    let mut lat: Vec<Duration> = seen_at
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let sent = origin + Duration::from_millis(u64::try_from(probe_at(k)).unwrap_or(0));
            s.map_or(Duration::MAX, |t| t.saturating_duration_since(sent))
        })
        .collect();
    lat.sort();
    println!(
        "board update latency, {WAITING} buyers waiting on {AGENTS} agents, {PROBES} new buyers (send → board): p50 {:?} · p99 {:?} · max {:?}",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );

    // Memory: 200 more boards from a child process; this process's RSS before and after.
    const MORE: usize = 200;
    let (before, heap_before) = (rss_kib(), LIVE_BYTES.load(Ordering::Relaxed));
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .env(CHILD, format!("{MORE} {url} {cookie}"))
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    // The child prints a line once every board has its first state.
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let mut out = std::io::BufReader::new(out);
        tokio::task::spawn_blocking(move || std::io::BufRead::read_line(&mut out, &mut line).map(|_| line))
            .await??;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, heap_after) = (rss_kib(), LIVE_BYTES.load(Ordering::Relaxed));
    println!(
        "memory per connected board ({MORE} boards, {WAITING} buyers waiting, server side): heap {:.1} KiB a board ({:.1} → {:.1} MiB live); resident {} → {} KiB",
        (heap_after - heap_before) as f64 / 1024.0 / MORE as f64,
        heap_before as f64 / 1048576.0,
        heap_after as f64 / 1048576.0,
        before,
        after
    );
    let _ = child.kill();
    let _ = child.wait();
    reader.abort();
    console.stop();
    live.stop().await?;
    Ok(())
}

/// The child: `count url cookie`; opens that many boards, says so once each has a state, then reads on.
fn boards_child(spec: &str) -> anyhow::Result<()> {
    let mut parts = spec.splitn(3, ' ');
    let count: usize = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let url = parts.next().unwrap_or_default().to_string();
    let cookie = parts.next().unwrap_or_default().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..count {
            let (url, cookie, ready) = (url.clone(), cookie.clone(), ready.clone());
            let first = Arc::new(AtomicBool::new(true));
            tokio::spawn(board(url, cookie, move |_| {
                if first.swap(false, Ordering::Relaxed) {
                    ready.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        while ready.load(Ordering::Relaxed) < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!("ready");
        std::future::pending::<()>().await;
    });
    Ok(())
}

//! Cluster mode (issue 16) against real nats-server processes on loopback, real kefu
//! worker processes, a real HTTP endpoint as the alert sink and real SQLite files.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use kefu::cluster::results::{self, Record};
use kefu::cluster::setup::{self, Handles};
use kefu::cluster::{ClusterConfig, collect, lease, publish, subject};
use kefu::event::Event;
use util::http::{HttpServer, Reply};
use util::nats::Cluster;

/// Generous bound for anything that waits on real servers (slow, busy CI machines).
const PATIENCE: Duration = Duration::from_secs(300);

fn traffic(shops: usize, events: usize, seed: u64) -> Vec<Event> {
    let sim = kefu::simulate::SimConfig { seed, events, agents: 3, ..kefu::simulate::SimConfig::default() };
    kefu::simulate::many_shops(&sim, shops)
}

async fn handles(urls: &str, partitions: u32, replicas: usize) -> Handles {
    let c = ClusterConfig { replicas, ..ClusterConfig::new(urls, partitions) };
    let client = kefu::cluster::connect(urls).await.unwrap();
    setup::ensure(client, &c).await.unwrap()
}

/// A `kefu run --nats` worker process; its alerts go to `{hook}/alerts/{id}`.
struct Worker {
    id: String,
    child: tokio::process::Child,
}

fn start_worker(
    dir: &Path,
    urls: &str,
    partitions: u32,
    replicas: usize,
    id: &str,
    hook: &HttpServer,
) -> Worker {
    let config = format!(
        "log = \"warn,kefu::cluster=info\"\n[alerts]\nstale_after_s = 100000000\n\
         [[alerts.sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nconcurrency = 1\n",
        hook.url(&format!("/alerts/{id}"))
    );
    let command = util::nats::worker_command(dir, urls, partitions, replicas, id, &config).unwrap();
    let child = tokio::process::Command::from(command).kill_on_drop(true).spawn().unwrap();
    Worker { id: id.into(), child }
}

impl Worker {
    async fn sigkill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    async fn sigterm(&mut self) {
        let pid = self.child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = tokio::time::timeout(PATIENCE, self.child.wait()).await.expect("worker stops").unwrap();
        assert!(status.success(), "worker {} stopped with {status}", self.id);
    }
}

/// The last lines of each worker's log, for a failure's message.
fn logs(dir: &Path) -> String {
    ["w1", "w2", "w3"]
        .iter()
        .map(|w| {
            let text = std::fs::read_to_string(dir.join(format!("{w}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            format!("--- {w}\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
        })
        .collect()
}

/// Collects the results log into `db` until it holds `events` events (bounded).
async fn collect_until(h: &Handles, db: &Path, events: i64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        // A server failing over may time a pass out: the next one goes on from its position.
        if let Err(e) = collect::collect_once(h, db).await {
            assert!(tokio::time::Instant::now() < deadline, "collecting failed for good: {e:#}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let have = kefu::store::Store::open(db).unwrap().event_count().unwrap();
        if have >= events {
            assert_eq!(have, events, "more events collected than published");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {have} of {events} events committed in time\n{}",
            logs(db.parent().unwrap())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn kefu(args: &[&str], dir: &Path) -> String {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_kefu")).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "kefu {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn rows(db: &Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            let mut s = Vec::new();
            for i in 0..n {
                let v: rusqlite::types::Value = r.get(i)?;
                s.push(format!("{v:?}"));
            }
            Ok(s.join("|"))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

const WAITS: &str = "SELECT conversation, start, end, shop, customer, agent, outcome, deadline_ms, load, first, robot \
                     FROM waits ORDER BY conversation, start";
const ALERTS: &str = "SELECT conversation, wait_start, kind, agent, due_at, deadline_ms FROM alerts \
                      ORDER BY conversation, wait_start, kind";

/// The figures of the collected database equal `kefu replay` of the same events: the
/// stored waits and alerts row for row, and the report.
fn assert_equals_replay(dir: &Path, file: &Path, collected: &Path, urls: &str) {
    let replayed = dir.join("replay.db");
    let file_s = file.to_str().unwrap();
    kefu(&["replay", file_s, "--db", replayed.to_str().unwrap()], dir);
    let (w1, w2) = (rows(collected, WAITS), rows(&replayed, WAITS));
    assert!(!w2.is_empty());
    assert_eq!(w1.len(), w2.len(), "waits stored by the workers vs replay");
    assert!(w1 == w2, "waits differ from replay");
    let (a1, a2) = (rows(collected, ALERTS), rows(&replayed, ALERTS));
    assert!(!a2.is_empty());
    assert!(a1 == a2, "alerts differ from replay: {} vs {}", a1.len(), a2.len());
    // The report for all shops (the workers' stored figures) and replay's, part by part:
    // the guard's findings are listed in input order, which for the cluster is the
    // database's (partitions interleaved), so they are compared as sets.
    let db = collected.to_str().unwrap();
    let report =
        kefu(&["collect", "--nats", urls, "--partitions", "12", "--db", db, "--report", "--json"], dir);
    let replay = kefu(&["replay", file_s, "--json"], dir);
    let (mut a, mut b): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&report).unwrap(), serde_json::from_str(&replay).unwrap());
    for part in ["waits", "agents", "alerts"] {
        assert!(!b[part].as_array().unwrap().is_empty(), "{part}");
        assert!(a[part] == b[part], "the report's {part} differ from kefu replay's");
    }
    let sorted = |v: &mut serde_json::Value| {
        let mut f: Vec<String> = v["flags"].as_array().unwrap().iter().map(|x| x.to_string()).collect();
        f.sort();
        f
    };
    assert_eq!(sorted(&mut a), sorted(&mut b), "the guard's findings differ");
}

/// (shop, conversation, wait start, kind) of each alert in a webhook body.
fn alert_parts(body: &str) -> Vec<(String, String, i64, String)> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let one = |n: &serde_json::Value| {
        let s = |k: &str| n[k].as_str().unwrap().to_string();
        (s("shop"), s("conversation"), n["wait_start"].as_i64().unwrap(), s("kind"))
    };
    match v["notices"].as_array() {
        Some(all) => all.iter().map(one).collect(),
        None => vec![one(&v)],
    }
}

/// Every alert the sinks answered, with how many times.
fn answered(hooks: &[&HttpServer]) -> BTreeMap<(String, i64, String), usize> {
    let mut seen = BTreeMap::new();
    for r in hooks.iter().flat_map(|h| h.answered()) {
        for k in util::http::alert_keys(&r.body) {
            *seen.entry(k).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn the_servers_partition_function_is_the_documented_hash() {
    // Checked against a real server in `events_land_in_their_shops_partition`; here the
    // pure function's spread over many shops.
    let mut counts = [0u32; 8];
    for i in 0..8000 {
        counts[subject::partition_of(&format!("shop-{i}"), 8) as usize] += 1;
    }
    assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_in_their_shops_partition_once() {
    let nats = Cluster::start(1).await;
    let h = handles(&nats.urls(), 4, 1).await;
    let events = traffic(12, 40, 3);
    let sent = publish::publish(&h, events.iter().map(publish::Outgoing::of)).await.unwrap();
    assert_eq!(sent.stored as usize, events.len());
    // The same events again: the stream drops them by id (Nats-Msg-Id).
    let again = publish::publish(&h, events.iter().take(50).map(publish::Outgoing::of)).await.unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 50));
    for (i, e) in events.iter().enumerate().step_by(37) {
        let m = h.events.get_raw_message((i + 1) as u64).await.unwrap();
        let want = subject::partition_of(&e.shop, 4);
        assert_eq!(subject::partition_in(&m.subject), Some(want), "{} in {}", e.shop, m.subject);
        assert_eq!(std::str::from_utf8(&m.payload).unwrap(), e.to_json());
    }
    // Another partition count on the same stream is refused, by name.
    let c = ClusterConfig { replicas: 1, ..ClusterConfig::new(nats.urls(), 8) };
    let err = setup::ensure(kefu::cluster::connect(&nats.urls()).await.unwrap(), &c).await.err().unwrap();
    assert!(err.to_string().contains("has 4 partitions, not 8"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_is_fenced_off() {
    let nats = Cluster::start(1).await;
    let h = handles(&nats.urls(), 2, 1).await;
    let (mut old, _) = results::Appender::claim(h.js.clone(), h.results.clone(), 0, "old", 1).await.unwrap();
    let batch = kefu::live::Committed { seq: Some(5), events: vec!["{}".into()], ..Default::default() };
    old.append_batch(&batch).await.unwrap();
    // A new owner claims the partition: from now on the old writer's appends are refused.
    let (mut new, claim) =
        results::Appender::claim(h.js.clone(), h.results.clone(), 0, "new", 2).await.unwrap();
    let err = old.append_batch(&batch).await.expect_err("the old owner is fenced");
    assert!(matches!(err, kefu::cluster::ClusterError::Fenced { partition: 0 }), "{err}");
    new.append_batch(&batch).await.unwrap();
    // Another partition is not affected.
    let (mut other, _) =
        results::Appender::claim(h.js.clone(), h.results.clone(), 1, "old", 3).await.unwrap();
    other.append_batch(&batch).await.unwrap();
    let log = results::read(&h.results, Some(0), 1, u64::MAX).await.unwrap();
    let writers: Vec<String> = log
        .iter()
        .map(|(_, r)| match r {
            Record::Claim { worker, .. } => format!("claim {worker}"),
            Record::Batch(b) => format!("batch {}", b.worker),
        })
        .collect();
    assert_eq!(writers, ["claim old", "batch old", "claim new", "batch new"]);
    assert!(log.iter().any(|(s, _)| *s == claim));
    // Leases: only one worker can take a partition; a renewal at a stale revision is refused.
    let a = lease::take(&h.leases, 0, "a", None).await.expect("free");
    assert!(lease::take(&h.leases, 0, "b", None).await.is_none());
    let a2 = lease::renew(&h.leases, 0, "a", a).await.unwrap();
    assert_eq!(lease::renew(&h.leases, 0, "b", a).await, Err(lease::Renewal::Lost));
    // A renewal whose answer was lost: the holder renews at the old revision and keeps it.
    assert_eq!(lease::renew(&h.leases, 0, "a", a).await, Ok(a2));
    lease::release(&h.leases, 0, a2).await;
    assert!(lease::take(&h.leases, 0, "b", None).await.is_some());
}

/// The events as the stream holds them, in its order: a publish retried after a server
/// failed may store some events after later ones (what a platform bridge's retries do
/// too); `kefu replay` of the same events is replay of this order.
async fn stream_order(h: &Handles) -> Vec<String> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    use futures_util::StreamExt;
    let consumer = h.events.create_consumer(OrderedConfig::default()).await.unwrap();
    let mut out = Vec::new();
    let mut messages = consumer.messages().await.unwrap();
    while let Some(m) = messages.next().await {
        let m = m.unwrap();
        out.push(String::from_utf8(m.payload.to_vec()).unwrap());
        if m.info().unwrap().pending == 0 {
            break;
        }
    }
    out
}

/// Publishes `items`, publishing again after an error (a server failing over): what the
/// stream already has is dropped by id, as a platform bridge retrying would rely on.
async fn publish_retrying(h: &Handles, items: &[publish::Outgoing]) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match publish::publish(h, items.iter().cloned()).await {
            Ok(_) => return,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "publishing failed for good: {e:#}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Waits (bounded) until `cond`; a timeout's message has the workers' logs from `dir`.
async fn wait_for(what: &str, dir: &Path, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}\n{}", logs(dir));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn owners(h: &Handles, partitions: u32) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for n in 0..partitions {
        if let Ok(Some(v)) = h.leases.get(lease::part_key(n)).await {
            out.insert(n, String::from_utf8_lossy(&v).to_string());
        }
    }
    out
}

fn unix_ms(t: SystemTime) -> i128 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i128
}

/// Whether every partition's consumer has delivered everything and had it acked (each
/// owner committed all its events; their alerts were handed to its gate).
async fn drained(h: &Handles, partitions: u32) -> bool {
    for n in 0..partitions {
        match kefu::cluster::source::current(&h.events, n).await {
            Ok(Some(i)) if i.num_pending == 0 && i.num_ack_pending == 0 => {}
            _ => return false,
        }
    }
    true
}

/// The events to publish, with a bad input (not an event) after every 400th in the first
/// three quarters: each must be stored once in the collected database's `rejected`, even
/// when a takeover processes it again.
fn with_bad_inputs(events: &[Event]) -> (Vec<publish::Outgoing>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for (i, e) in events.iter().enumerate() {
        out.push(publish::Outgoing::of(e));
        if i % 400 == 399 && i < 3 * events.len() / 4 {
            bad += 1;
            out.push(publish::Outgoing {
                body: format!("{{\"id\": \"bad-{bad}\", \"broken\": "),
                shop: e.shop.clone(),
                id: format!("bad-{bad}"),
            });
        }
    }
    (out, bad)
}

/// Issue 16, done when: a 3-node nats-server cluster on loopback, 200 shops of simulated
/// traffic through 3 kefu workers, one worker killed with SIGKILL mid-stream and one
/// server node killed: every event exactly once into the figures, every breach alerted
/// exactly once, the dead worker's partitions taken over within 10 s, and the figures
/// for all shops equal to `kefu replay` of the same events.
///
/// When the node dies: first, mid-stream, and it is the node leading the lease bucket
/// (the worst one for leases: no worker can renew until the others elect a new leader,
/// 4.6–10 s here). No live worker may lose its partitions to that. The worker is killed
/// later, with the node still down, and its partitions must be taken over within 10 s of
/// the kill: a survivor claims an expired lease promptly while a node is down. Killing
/// both at once would make the takeover time the election's plus the lease TTL — the
/// server's election time, which kefu does not control, would decide the 10 s; the issue
/// asks it of a worker that stops or dies ("another takes them within 10 s").
///
/// The takeover time is measured from the kill (taken just before SIGKILL) to each
/// partition's claim in the results log, by the claim's server timestamp (same machine's
/// clock). The product's figure is 4–6 s (TTL 5 s, rounds of 1 s), so 10 s leaves ~4 s
/// for a loaded machine.
///
/// The killed worker's sink answers its first request and then never again: at the kill,
/// the answered alerts are marked sent (they must not go again) and what it claimed after
/// hangs or waits in its outbox (it must go again, once, from the new owners). The one
/// window no protocol closes — killed between a sink's answer and its `sent` mark — is
/// thereby not where the kill lands (see `docs/cluster.md`, Alerts).
///
/// A worker connected to the killed node loses what was in transit to it (NATS delivers
/// at most once); each partition with a delivery missing must end its ownership and be
/// taken again (`deliveries lost` in its log), or those events are never committed.
/// Which node a worker connects to is the client's random pick, so some runs meet this
/// and some do not.
///
/// `KEFU_TEST_KEEP=1` keeps the test's folder (the workers' logs) and prints where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_three_workers_a_worker_and_a_server_killed_nothing_lost_or_doubled() {
    const P: u32 = 12;
    let mut nats = Cluster::start(3).await;
    let urls = nats.urls();
    let h = handles(&urls, P, 3).await;
    let mut dir = tempfile::tempdir().unwrap();
    if std::env::var_os("KEFU_TEST_KEEP").is_some() {
        dir.disable_cleanup(true);
        println!("keeping {}", dir.path().display());
    }
    let events = traffic(200, 60, 11);
    let n = events.len();
    let (items, bad) = with_bad_inputs(&events);
    let m = items.len();
    let slow = HttpServer::start(vec![Reply::ok()], Reply::Hang).await;
    let fast = HttpServer::start(vec![], Reply::ok()).await;
    let mut workers: Vec<Worker> = vec![
        start_worker(dir.path(), &urls, P, 3, "w1", &slow),
        start_worker(dir.path(), &urls, P, 3, "w2", &fast),
        start_worker(dir.path(), &urls, P, 3, "w3", &fast),
    ];
    wait_for("the three workers to share the partitions", dir.path(), async || {
        let o = owners(&h, P).await;
        o.len() == P as usize && o.values().collect::<BTreeSet<_>>().len() == 3
    })
    .await;

    // A quarter of the traffic, then the server node leading the lease bucket dies
    // mid-stream: its streams elect new leaders (seconds in which no lease is renewed),
    // the workers' connections to it move to the others. Nothing may be lost, no live
    // worker's partitions taken, and the rest of the test runs with that node down.
    publish_retrying(&h, &items[..m / 4]).await;
    let mut leaders = BTreeMap::new();
    for s in ["KV_kefu_leases", "KEFU_EVENTS", "KEFU_RESULTS", "KV_kefu_alerts", "OBJ_kefu_snapshots"] {
        let leader = h.js.get_stream(s).await.unwrap().info().await.unwrap().cluster.clone().unwrap().leader;
        leaders.insert(s, leader.unwrap_or_default());
    }
    let down = nats.nodes.iter().position(|x| x.name == leaders["KV_kefu_leases"]).expect("a leader");
    println!("stream leaders {leaders:?}: killing {}", nats.nodes[down].name);
    nats.nodes[down].kill();
    let up: Vec<String> =
        nats.nodes.iter().enumerate().filter(|(i, _)| *i != down).map(|(_, x)| x.url()).collect();
    let h = handles(&up.join(","), P, 3).await;
    publish_retrying(&h, &items[m / 4..m / 2]).await;

    // w1 is killed, with the node still down, once it has committed its share of the
    // first half and the one answer its sink gives is marked sent.
    let marked = async || {
        let answered = slow.answered();
        if answered.is_empty() {
            return false;
        }
        for r in &answered {
            for (shop, conversation, start, kind) in alert_parts(&r.body) {
                let id = kefu::cluster::gate::alert_id_of(&shop, &conversation, start, &kind);
                if h.alerts.get(id).await.ok().flatten().is_none_or(|v| v.as_ref() != b"sent") {
                    return false;
                }
            }
        }
        drained(&h, P).await
    };
    wait_for("w1 to commit the first half and its first alert to be marked sent", dir.path(), marked).await;
    let before = owners(&h, P).await;
    let killed_at = SystemTime::now();
    workers[0].sigkill().await;
    let orphans: Vec<u32> = before.iter().filter(|(_, w)| *w == "w1").map(|(p, _)| *p).collect();
    assert!(!orphans.is_empty(), "w1 owned partitions: {before:?}");
    let unanswered_at_kill = slow.requests().iter().filter(|r| !r.answered).count();
    println!("w1 killed: {} request answered, {unanswered_at_kill} unanswered", slow.answered().len());

    // More traffic while the survivors take w1's partitions over, then the rest.
    publish_retrying(&h, &items[m / 2..3 * m / 4]).await;
    wait_for("w1's partitions to be taken over", dir.path(), async || {
        let now = owners(&h, P).await;
        orphans.iter().all(|p| now.get(p).is_some_and(|w| w != "w1"))
    })
    .await;
    publish_retrying(&h, &items[3 * m / 4..]).await;

    let all = dir.path().join("all.db");
    collect_until(&h, &all, n as i64).await;
    let stored = stream_order(&h).await;
    assert_eq!(stored.len(), m, "every input stored once in the stream");
    let file = dir.path().join("stream.jsonl");
    std::fs::write(&file, stored.join("\n") + "\n").unwrap();
    // Every alert the events bring (replay's) answered by a sink.
    let replayed = dir.path().join("replay.db");
    kefu(&["replay", file.to_str().unwrap(), "--db", replayed.to_str().unwrap()], dir.path());
    let expected: BTreeSet<(String, i64, String)> =
        rows(&replayed, "SELECT conversation, wait_start, kind FROM alerts")
            .iter()
            .map(|r| {
                let v: Vec<&str> = r.split('|').collect();
                let text = |s: &str| s.trim_start_matches("Text(\"").trim_end_matches("\")").to_string();
                (
                    text(v[0]),
                    v[1].trim_start_matches("Integer(").trim_end_matches(')').parse().unwrap(),
                    text(v[2]),
                )
            })
            .collect();
    assert!(expected.len() > 50, "{} alerts", expected.len());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = answered(&[&slow, &fast]);
        let missing: Vec<_> = expected.iter().filter(|k| !seen.contains_key(*k)).collect();
        if missing.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let mut claims = Vec::new();
            for (c, start, kind) in missing.iter().take(5) {
                let shop = c.split('/').next().unwrap();
                let id = kefu::cluster::gate::alert_id_of(shop, c, *start, kind);
                let v =
                    h.alerts.get(id).await.ok().flatten().map(|v| String::from_utf8_lossy(&v).to_string());
                claims.push(v);
            }
            panic!(
                "{} of {} alerts never answered (first: {:?}, claims {claims:?}); {} answered in all\n{}",
                missing.len(),
                expected.len(),
                &missing[..missing.len().min(5)],
                seen.len(),
                logs(dir.path())
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for w in &mut workers[1..] {
        w.sigterm().await;
    }

    // Exactly once at the sinks: nothing answered twice, nothing replay does not have.
    let seen = answered(&[&slow, &fast]);
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    if !twice.is_empty() {
        let detail: Vec<String> = twice
            .iter()
            .take(8)
            .map(|(k, _)| {
                let by: Vec<String> = [&slow, &fast]
                    .iter()
                    .flat_map(|h| h.answered())
                    .filter(|r| util::http::alert_keys(&r.body).contains(k))
                    .map(|r| format!("{} {:?} ago", r.target, r.received.elapsed()))
                    .collect();
                format!("{k:?}: {by:?}")
            })
            .collect();
        panic!(
            "{} alerts answered more than once (of {}), killed {:?} ago: {detail:#?}",
            twice.len(),
            seen.len(),
            killed_at.elapsed()
        );
    }
    let extra: Vec<_> = seen.keys().filter(|k| !expected.contains(*k)).collect();
    assert!(extra.is_empty(), "alerts replay does not have: {extra:?}");
    let by_w1 = answered(&[&slow]).len();
    assert!(by_w1 >= 1 && seen.len() > by_w1, "deliveries on both sides of the kill");

    // Each of w1's partitions claimed by another worker within 10 s of the kill, by the
    // claim's time in the results log (the server's clock, the same machine's).
    let log = results::read(&h.results, None, 1, u64::MAX).await.unwrap();
    let mut taken = BTreeMap::new();
    for (seq, r) in &log {
        if let Record::Claim { worker, .. } = r {
            let m = h.results.get_raw_message(*seq).await.unwrap();
            let at = m.time.unix_timestamp_nanos() / 1_000_000;
            let p = subject_partition(&m.subject);
            if worker != "w1" && at >= unix_ms(killed_at) && orphans.contains(&p) {
                taken.entry(p).or_insert(at - unix_ms(killed_at));
            }
        }
    }
    assert_eq!(taken.keys().copied().collect::<Vec<_>>(), orphans, "every partition of w1 taken over");
    let slowest = taken.values().max().copied().unwrap_or_default();
    println!("takeover after SIGKILL: {taken:?} ms (slowest {slowest} ms)");
    assert!(slowest <= 10_000, "a partition of the killed worker was taken after {slowest} ms");

    // Every bad input stored once, though the new owners processed some of them again.
    let rejected = rows(&all, "SELECT position FROM rejected");
    assert_eq!(rejected.len(), bad, "rejected inputs in the collected database: {rejected:?}");
    assert_equals_replay(dir.path(), &file, &all, &up[0]);
}

fn subject_partition(subject: &str) -> u32 {
    subject.rsplit('.').next().unwrap().parse().unwrap()
}

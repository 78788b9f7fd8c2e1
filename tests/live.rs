//! The live bot against the real simulator server on loopback and a real SQLite file.

mod util;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kefu::alerts::format::{Message, terminal_line};
use kefu::alerts::{Kind, Notice};
use kefu::event::Event;
use kefu::gateway::Incoming;
use kefu::live::{ChannelSeam, LiveConfig, LiveCounters, Runtime, TimeSource};
use kefu::replay::{replay, report_from_db};
use kefu::rules::response_time::ResponseRules;
use kefu::simulate::{Item, ServerConfig, SimServer};
use kefu::store::Store;
use tokio::time::timeout;
use util::ws::{any_port, drain, server, speed_for, start_bot, start_bot_with, traffic, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

fn count(store: &Store, sql: &str) -> i64 {
    store.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

type AlertKey = (String, i64, &'static str);

fn key(a: &Notice) -> AlertKey {
    (a.conversation.clone(), a.wait_start, a.kind.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_and_restarts_of_both_sides_lose_nothing_and_send_no_alert_twice() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        let events = traffic(3_000, 11);
        let config = ServerConfig {
            speed: speed_for(&events, 3.0),
            drop_every: Some(700),
            duplicate_every: Some(97),
            ..ServerConfig::default()
        };
        let mut srv = server(&events, config).await;
        let last = srv.last_seq();
        // The backlog is hours old: alerts are kept fresh enough to send, so every recorded
        // alert must also have been sent exactly once (staleness is tested on its own).
        let config = || LiveConfig {
            plan: kefu::alerts::Plan { stale_after_ms: 30 * 86_400_000, ..Default::default() },
            ..LiveConfig::new(ResponseRules::default())
        };
        let mut bot = start_bot_with(&srv.url(), &db, None, config());

        wait_for("a third of the stream acked", LIMIT, || srv.stats().acked >= Some(last / 3)).await;
        srv.restart().await.unwrap();
        wait_for("two thirds acked", LIMIT, || srv.stats().acked >= Some(2 * last / 3)).await;
        // kefu restarts too: a new process would rebuild the clock from the same database.
        let first = bot.live.counters.clone();
        bot.live.stop().await.unwrap();
        let mut sent: Vec<AlertKey> = drain(&mut bot.alerts).iter().map(|(a, _)| key(a)).collect();
        let mut again = start_bot_with(&srv.url(), &db, None, config());
        wait_for("the whole stream acked", LIMIT, || srv.stats().acked == Some(last)).await;
        let second = again.live.counters.clone();
        again.live.stop().await.unwrap();
        let first_run = sent.len();
        sent.extend(drain(&mut again.alerts).iter().map(|(a, _)| key(a)));

        let stats = srv.stats();
        assert!(stats.drops >= 3, "the server cut {} times", stats.drops);
        assert!(stats.connections >= 6, "{} connections", stats.connections);
        assert_eq!(stats.acked, Some(last));
        let resumed: Vec<Option<u64>> = stats.hellos.clone();
        assert_eq!(resumed[0], None, "a fresh database resumes from the start");
        assert!(resumed[1..].iter().all(|r| r.is_some()), "every later hello resumes: {resumed:?}");
        let g = LiveCounters::get;
        assert!(g(&first.duplicates) + g(&second.duplicates) > 0, "redelivered events were seen");
        assert_eq!(g(&first.events) + g(&second.events), events.len() as u64, "each event counted once");

        let store = Store::open(&db).unwrap();
        assert_eq!(store.event_count().unwrap(), events.len() as i64);
        let mut stored = Vec::new();
        store.for_each_event(|e| stored.push(e.id)).unwrap();
        let want: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(stored, want, "every event stored exactly once, in stream order");
        assert_eq!(store.meta("gateway.last_seq").unwrap(), Some(last.to_string()));

        assert!(first_run > 0 && sent.len() > first_run, "both runs raised alerts");
        let unique: HashSet<&AlertKey> = sent.iter().collect();
        assert_eq!(unique.len(), sent.len(), "an alert was sent twice");
        let rows = count(&store, "SELECT COUNT(*) FROM alerts");
        assert_eq!(rows as usize, sent.len(), "every recorded alert was sent, once");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_never_answers_does_not_slow_ingestion() {
    use kefu::alerts::config::parse as alerts_config;
    use util::http::{HttpServer, Reply};
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        let hook = HttpServer::start(vec![], Reply::Hang).await;
        let toml = format!(
            "escalation_at = 0\nstale_after_s = 2592000\n[[sink]]\nname = \"dead\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            hook.url("/")
        );
        let alerts = alerts_config(std::path::Path::new("alerts.toml"), &toml, &|_| None).unwrap();
        let service = kefu::alerts::AlertService::start(alerts.clone(), &db).unwrap();
        let events = traffic(3_000, 4);
        let srv = server(&events, ServerConfig::default()).await;
        let last = srv.last_seq();
        let options = kefu::live::LiveOptions {
            db: db.clone(),
            gateway: util::ws::quick_gateway(&srv.url(), None),
            live: LiveConfig { plan: alerts.plan, ..LiveConfig::new(ResponseRules::default()) },
        };
        let started = tokio::time::Instant::now();
        let live = kefu::live::Live::start(options, Box::new(service.submitter())).unwrap();
        wait_for("the stream acked", LIMIT, || srv.stats().acked == Some(last)).await;
        let took = started.elapsed();
        let sent = LiveCounters::get(&live.counters.alerts_sent);
        live.stop().await.unwrap();
        service.shutdown(Duration::from_millis(200)).await;
        assert!(sent > 10, "alerts were handed over: {sent}");
        assert!(!hook.requests().is_empty(), "the webhook was called (and hung)");
        // A sink timeout is 5 s; one alert waiting on it would already take longer.
        assert!(took < Duration::from_secs(5), "ingestion took {took:?}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_counted_stored_and_acked_and_the_connection_stays_up() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        let events = traffic(40, 3);
        let mut items: Vec<Item> = events.iter().cloned().map(Item::Event).collect();
        let oversized = format!(
            r#"{{"op":"event","seq":{{seq}},"event":{{"type":"close","id":"big","pad":"{}"}}}}"#,
            "x".repeat(2 << 20)
        );
        let invalid = r#"{"op":"event","seq":{seq},"event":{"type":"message","id":"bad","ts":"2026-11-11T10:00:00Z","shop":"s"}}"#;
        items.insert(10, Item::Text(r#"{"op":"event","seq":{seq},"event": not json"#.into()));
        items.insert(20, Item::Text(oversized));
        items.insert(30, Item::Text(invalid.into()));
        let config = ServerConfig { garbage_every: Some(25), ..ServerConfig::default() };
        let srv = SimServer::start(any_port(), items, config).await.unwrap();
        let last = srv.last_seq();
        let bot = start_bot(&srv.url(), &db, None);
        wait_for("the whole stream acked", LIMIT, || srv.stats().acked == Some(last)).await;
        let counters = bot.live.counters.clone();
        bot.live.stop().await.unwrap();

        assert_eq!(srv.stats().connections, 1, "the connection stayed up");
        assert_eq!(last, 43 + 1, "40 events, 3 bad frames and one injected garbage frame");
        assert_eq!(LiveCounters::get(&counters.rejected), 4);
        let store = Store::open(&db).unwrap();
        assert_eq!(store.event_count().unwrap(), 40);
        let mut stmt = store.conn().prepare("SELECT position, reason FROM rejected ORDER BY rowid").unwrap();
        let rows: Vec<(String, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        let reasons: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert!(rows.iter().all(|r| r.0.starts_with("seq ") && r.0 != "seq ?"), "{rows:?}");
        assert!(reasons.iter().filter(|r| r.starts_with("not JSON")).count() == 2, "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("byte limit")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("missing field `conversation`")), "{reasons:?}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_equals_replay_of_the_same_events() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        let events = traffic(4_000, 5);
        let srv = server(&events, ServerConfig::default()).await;
        let last = srv.last_seq();
        let bot = start_bot(&srv.url(), &db, None);
        wait_for("the whole stream acked", LIMIT, || srv.stats().acked == Some(last)).await;
        bot.live.stop().await.unwrap();

        let jsonl: String = events.iter().map(|e| e.to_json() + "\n").collect();
        let input = std::io::Cursor::new(jsonl.into_bytes());
        let (want, _) = replay(input, "events.jsonl", ResponseRules::default(), None).unwrap();
        let store = Store::open(&db).unwrap();
        let got = report_from_db(&store, ResponseRules::default()).unwrap();
        assert_eq!(got, want);

        // The alerts fired live are the replay's, up to the last event's time (after it,
        // live fires on the wall clock while replay runs on to the end of every session).
        let last_ts = events.last().unwrap().ts;
        let mut stmt = store
            .conn()
            .prepare(
                "SELECT conversation, wait_start, due_at FROM alerts WHERE kind = 'breach' AND due_at < ?1",
            )
            .unwrap();
        let mut live: Vec<(String, i64, i64)> = stmt
            .query_map([last_ts], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        live.sort();
        let mut expected: Vec<(String, i64, i64)> = want
            .alerts
            .iter()
            .filter(|a| a.fired_at < last_ts)
            .map(|a| (a.conversation.clone(), a.wait_start, a.fired_at))
            .collect();
        expected.sort();
        assert!(!expected.is_empty());
        assert!(live == expected, "live breaches {} != replay breaches {}", live.len(), expected.len());
    })
    .await
    .expect("test timed out");
}

fn customer_message(id: &str, ts: i64, conversation: &str) -> Event {
    kefu::event::parse(&format!(
        r#"{{"type":"message","id":"{id}","ts":"{}","shop":"s","conversation":"{conversation}","customer":"tb_buyer_8842","agent":"xiaomei","from":"customer","text":"在吗?这件有M码吗"}}"#,
        kefu::time::format_rfc3339_shanghai(ts)
    ))
    .unwrap()
}

fn incoming(seq: u64, e: Event) -> Incoming {
    Incoming::Event { seq, body: e.to_json(), event: e }
}

#[tokio::test(start_paused = true)]
async fn a_breach_fires_on_the_clock_with_no_further_event_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let t0 = 1_794_362_400_000; // 2026-11-11 10:00 Shanghai
    let open = |seam: ChannelSeam| {
        let time = TimeSource::scaled(t0, tokio::time::Instant::now(), 1.0);
        let config = LiveConfig { time, ..LiveConfig::new(ResponseRules::default()) };
        Runtime::open(Store::open(&db).unwrap(), config, Box::new(seam), Arc::new(LiveCounters::default()))
            .unwrap()
    };
    let (seam, mut alerts) = ChannelSeam::new();
    let (runtime, committed) = open(seam);
    let start = tokio::time::Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(runtime.run(rx));
    tx.send(incoming(1, customer_message("m1", t0, "c1"))).await.unwrap();
    // An answered buyer raises nothing.
    tx.send(incoming(2, customer_message("m2", t0, "c2"))).await.unwrap();
    // The answer arrives when it is written (an event dated ahead of the clock is rejected).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let answer = kefu::event::parse(&format!(
        r#"{{"type":"message","id":"m3","ts":"{}","shop":"s","conversation":"c2","customer":"tb_buyer_8842","agent":"xiaomei","from":"agent","text":"亲,在的"}}"#,
        kefu::time::format_rfc3339_shanghai(t0 + 5_000)
    ))
    .unwrap();
    tx.send(incoming(3, answer)).await.unwrap();

    tokio::time::sleep(Duration::from_millis(14_990)).await;
    assert!(alerts.try_recv().is_err(), "no alert before the deadline");
    assert_eq!(*committed.borrow(), Some(3), "the commit point follows the stored frames");
    let (alert, at) = timeout(Duration::from_secs(1), alerts.recv()).await.unwrap().unwrap();
    assert_eq!((alert.kind, alert.conversation.as_str()), (Kind::Breach, "c1"));
    assert_eq!((alert.due_at, alert.deadline_ms, alert.load), (t0 + 20_000, 20_000, 1));
    assert_eq!(alert.preview, "在吗?这件有M码吗");
    let late = at.duration_since(start);
    assert!(late >= Duration::from_millis(20_000) && late <= Duration::from_millis(20_002), "{late:?}");
    let line = terminal_line(Message::One(&alert));
    assert!(line.contains("t***2") && !line.contains("tb_buyer_8842"), "buyer masked: {line}");

    // Escalation at 3× the deadline (the default plan), then nothing more for this wait.
    let (alert, at) = timeout(Duration::from_secs(60), alerts.recv()).await.unwrap().unwrap();
    assert_eq!((alert.kind, alert.due_at), (Kind::Escalation, t0 + 60_000));
    assert!(at.duration_since(start) <= Duration::from_millis(60_002));
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(alerts.try_recv().is_err(), "one alert per wait and kind");
    drop(tx);
    task.await.unwrap().unwrap();

    // A restart on the same database rebuilds the pending wait but does not re-send.
    let (seam, mut alerts) = ChannelSeam::new();
    let (runtime, committed) = open(seam);
    assert_eq!(*committed.borrow(), Some(3));
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(runtime.run(rx));
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(tx);
    task.await.unwrap().unwrap();
    assert!(alerts.try_recv().is_err(), "no alert re-sent after a restart");
}

#[tokio::test(start_paused = true)]
async fn an_alert_older_than_the_staleness_limit_is_recorded_but_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let t0 = 1_794_362_400_000;
    let time = TimeSource::scaled(t0, tokio::time::Instant::now(), 1.0);
    let config = LiveConfig { time, ..LiveConfig::new(ResponseRules::default()) };
    let counters = Arc::new(LiveCounters::default());
    let (seam, mut alerts) = ChannelSeam::new();
    let (runtime, _) =
        Runtime::open(Store::open(&db).unwrap(), config, Box::new(seam), counters.clone()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(runtime.run(rx));
    // Redelivered after an outage: breach due 11 minutes ago → stale (and its escalation,
    // 40 s later); due 9 minutes ago → sent.
    tx.send(incoming(1, customer_message("old", t0 - 11 * 60_000 - 20_000, "c-old"))).await.unwrap();
    tx.send(incoming(2, customer_message("recent", t0 - 9 * 60_000 - 20_000, "c-recent"))).await.unwrap();
    // Then the stream is live again: an event of now moves event time past both deadlines.
    tx.send(incoming(3, customer_message("now", t0, "c-now"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(tx);
    task.await.unwrap().unwrap();
    let sent: Vec<AlertKey> = drain(&mut alerts).iter().map(|(a, _)| key(a)).collect();
    let recent = t0 - 9 * 60_000 - 20_000;
    assert_eq!(sent, [("c-recent".into(), recent, "breach"), ("c-recent".into(), recent, "escalation")]);
    assert_eq!(LiveCounters::get(&counters.alerts_stale), 2, "the old wait's breach and escalation");
    let store = Store::open(&db).unwrap();
    assert_eq!(count(&store, "SELECT COUNT(*) FROM alerts"), 4, "all recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robot_replies_go_out_and_come_back_as_bot_messages() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        let events = traffic(20, 9);
        let srv =
            server(&events, ServerConfig { token: Some("s3cret".into()), ..ServerConfig::default() }).await;
        let bot = start_bot(&srv.url(), &db, Some("s3cret"));
        wait_for("the stream acked", LIMIT, || srv.stats().acked == Some(20)).await;
        let conversation = events.iter().find_map(|e| e.conversation()).unwrap().to_string();
        let id = bot.live.sends.send(&conversation, "亲,在的哦").unwrap();
        wait_for("the echo acked", LIMIT, || srv.stats().acked == Some(21)).await;
        bot.live.stop().await.unwrap();
        let sends = srv.stats().sends;
        assert_eq!(sends.len(), 1);
        assert_eq!((sends[0].id.as_str(), sends[0].text.as_str()), (id.as_str(), "亲,在的哦"));
        let store = Store::open(&db).unwrap();
        let from: String = store
            .conn()
            .query_row(
                "SELECT json_extract(body, '$.from') FROM events WHERE id = ?1",
                [format!("echo-{id}")],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(from, "bot");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_stops_the_gateway_instead_of_retrying() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let srv =
            server(&traffic(5, 1), ServerConfig { token: Some("right".into()), ..ServerConfig::default() })
                .await;
        let bot = start_bot(&srv.url(), &dir.path().join("k.db"), Some("wrong"));
        let err = bot.live.join().await.unwrap_err();
        assert!(err.to_string().contains("HTTP 401"), "{err}");
        assert_eq!(srv.stats().unauthorized, 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_abandoned_after_the_silence_limit() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (addr, hellos) = util::ws::silent_server().await;
        let mut gateway = util::ws::quick_gateway(&format!("ws://{addr}"), None);
        // Scaled down from 15 s / 45 s so the test takes a second, not a minute.
        gateway.ping_every = Duration::from_millis(100);
        gateway.silence_limit = Duration::from_millis(300);
        let (seam, _alerts) = ChannelSeam::new();
        let options = kefu::live::LiveOptions {
            db: dir.path().join("k.db"),
            gateway,
            live: LiveConfig::new(ResponseRules::default()),
        };
        let started = tokio::time::Instant::now();
        let live = kefu::live::Live::start(options, Box::new(seam)).unwrap();
        wait_for("a reconnect after silence", LIMIT, || hellos.lock().unwrap().len() >= 2).await;
        assert!(started.elapsed() >= Duration::from_millis(300), "not before the silence limit");
        assert!(LiveCounters::get(&live.gateway.disconnects) >= 1);
        assert!(hellos.lock().unwrap()[0].contains(r#""op":"hello""#));
        live.stop().await.unwrap();
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kefu_run_with_a_config_file_alerts_a_webhook_and_stops_cleanly_on_sigterm() {
    use util::http::{HttpServer, Reply};
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut events = traffic(400, 21);
        // The traffic is a backlog the robot records but does not answer (too old to speak
        // to); a buyer writing now is answered.
        events.push(customer_message("fresh", kefu::time::now_ms(), "c-fresh"));
        let srv = server(&events, ServerConfig { token: Some("tok".into()), ..ServerConfig::default() }).await;
        let last = srv.last_seq();
        let hook = HttpServer::start(vec![], Reply::ok()).await;
        let db = dir.path().join("kefu.db");
        let config = dir.path().join("kefu.toml");
        std::fs::write(
            &config,
            format!(
                "log = \"warn\"\ndb = {db:?}\n[platform]\nurl = \"{}\"\ntoken_env = \"KEFU_TEST_TOKEN\"\n\
                 [alerts]\nescalation_at = 0\nstale_after_s = 2592000\n[[alerts.sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
                srv.url(),
                hook.url("/alerts")
            ),
        )
        .unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["run", "--config"])
            .arg(&config)
            .env("KEFU_TEST_TOKEN", "tok")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // The robot is on: its replies come back as more events after `last`.
        wait_for("the stream acked", LIMIT, || srv.stats().acked >= Some(last)).await;
        wait_for("an alert at the webhook", LIMIT, || !hook.accepted().is_empty()).await;
        // The robot's reply to the fresh buyer comes back as an event after `last`: wait
        // until one is stored and acked (it raced the alert before, and lost on a busy box).
        wait_for("the robot's reply stored", LIMIT, || srv.stats().acked > Some(last)).await;
        let pid = child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = child.wait().await.unwrap();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");

        let store = Store::open(&db).unwrap();
        assert_eq!(count(&store, "SELECT COUNT(*) FROM events WHERE id NOT LIKE 'echo-%'"), events.len() as i64);
        let echoes = count(&store, "SELECT COUNT(*) FROM events WHERE id LIKE 'echo-%'");
        assert!(echoes > 0, "the robot spoke");
        let stored: u64 = store.meta("gateway.last_seq").unwrap().unwrap().parse().unwrap();
        assert_eq!(stored, last + echoes as u64, "every frame up to the last stored one acked");
        assert!(count(&store, "SELECT COUNT(*) FROM alerts WHERE kind = 'breach'") > 0);
        let queued = count(&store, "SELECT COUNT(*) FROM alert_outbox WHERE sink = 'hook'");
        let breaches = count(&store, "SELECT COUNT(*) FROM alerts");
        assert_eq!(queued, breaches, "every recorded alert queued once for the sink");
        let raw_buyers: HashSet<&str> = events.iter().filter_map(|e| e.customer()).collect();
        for r in hook.requests() {
            assert!(raw_buyers.iter().all(|b| !r.body.contains(b)), "raw buyer id in a webhook body");
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kefu_demo_runs_offline_shows_alerts_and_ends_with_the_per_agent_report() {
    timeout(LIMIT, async {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["demo", "--duration", "3", "--speed", "120"])
            .env_remove("RUST_LOG")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("[breach]"), "live alerts shown: {stdout}");
        assert!(stdout.contains("agent        date"), "the per-agent report: {stdout}");
        assert!(stderr.contains("open conversations") && stderr.contains("waiting buyers"), "{stderr}");
        assert!(stderr.contains("robot replies"), "robot replies counted in the status line: {stderr}");
        assert!(stdout.contains("\nrobot: "), "the robot's counts: {stdout}");
        assert!(stdout.contains("\nphrase guard: "), "the guard summary: {stdout}");
        assert!(!stdout.contains("tb1"), "buyer ids are masked");
    })
    .await
    .expect("test timed out");
}

fn agent_answer(id: &str, ts: i64, conversation: &str) -> Event {
    kefu::event::parse(&format!(
        r#"{{"type":"message","id":"{id}","ts":"{}","shop":"s","conversation":"{conversation}","customer":"tb_buyer_8842","agent":"xiaomei","from":"agent","text":"亲,在的"}}"#,
        kefu::time::format_rfc3339_shanghai(ts)
    ))
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn warnings_fire_before_the_deadline_and_resolved_follows_a_late_answer() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_794_362_400_000;
    let time = TimeSource::scaled(t0, tokio::time::Instant::now(), 1.0);
    let plan = kefu::alerts::Plan {
        warning_permille: Some(750),
        escalation_permille: None,
        resolved: true,
        ..kefu::alerts::Plan::default()
    };
    let config = LiveConfig { time, plan, ..LiveConfig::new(ResponseRules::default()) };
    let store = Store::open(&dir.path().join("k.db")).unwrap();
    let (seam, mut alerts) = ChannelSeam::new();
    let (runtime, _) =
        Runtime::open(store, config, Box::new(seam), Arc::new(LiveCounters::default())).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(runtime.run(rx));
    // c1 is answered at 18 s (warned, on time); c2 at 25 s (warned, breached, resolved).
    tx.send(incoming(1, customer_message("a", t0, "c1"))).await.unwrap();
    tx.send(incoming(2, customer_message("b", t0, "c2"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(18_000)).await;
    tx.send(incoming(3, agent_answer("c", t0 + 18_000, "c1"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(7_000)).await;
    tx.send(incoming(4, agent_answer("d", t0 + 25_000, "c2"))).await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    drop(tx);
    task.await.unwrap().unwrap();
    let got: Vec<(String, Kind, i64)> =
        drain(&mut alerts).into_iter().map(|(n, _)| (n.conversation, n.kind, n.due_at - t0)).collect();
    let want = [
        ("c1".to_string(), Kind::Warning, 15_000),
        ("c2".to_string(), Kind::Warning, 15_000),
        ("c2".to_string(), Kind::Breach, 20_000),
        ("c2".to_string(), Kind::Resolved, 25_000),
    ];
    assert_eq!(got, want);
}

/// A batch's events are inserted on the runtime's insert-ahead thread: a store failure
/// there (SQLite refusing a row, here by a trigger, as a full disk would) stops the
/// runtime with the store's error — no hang, no panic — and nothing of that batch is
/// committed or acked, the events before it stay.
#[tokio::test(start_paused = true)]
async fn a_failing_insert_stops_the_runtime_with_the_store_error_and_commits_nothing_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let t0 = 1_794_362_400_000; // 2026-11-11 10:00 Shanghai
    let store = Store::open(&db).unwrap();
    store
        .conn()
        .execute_batch(
            "CREATE TRIGGER full BEFORE INSERT ON events WHEN NEW.id = 'm3' \
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
        )
        .unwrap();
    let time = TimeSource::scaled(t0, tokio::time::Instant::now(), 1.0);
    let config = LiveConfig { time, ..LiveConfig::new(ResponseRules::default()) };
    let (seam, _alerts) = ChannelSeam::new();
    let (runtime, mut committed) =
        Runtime::open(store, config, Box::new(seam), Arc::new(LiveCounters::default())).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(runtime.run(rx));
    tx.send(incoming(1, customer_message("m1", t0, "c1"))).await.unwrap();
    timeout(LIMIT, committed.wait_for(|c| *c == Some(1))).await.unwrap().unwrap();
    // One batch: m2 goes in, m3 fails, m4 is never reached.
    for (seq, id) in [(2, "m2"), (3, "m3"), (4, "m4")] {
        tx.send(incoming(seq, customer_message(id, t0 + 1_000, "c2"))).await.unwrap();
    }
    let result = timeout(LIMIT, task).await.expect("the runtime stops, it does not hang").unwrap();
    let err = result.expect_err("a failed insert is the runtime's error");
    assert!(matches!(err, kefu::live::LiveError::Store(_)), "{err:?}");
    let mut chain = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        chain.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(chain.contains("database or disk is full"), "{chain}");
    assert_eq!(*committed.borrow(), Some(1), "nothing of the failed batch is acked");
    let store = Store::open(&db).unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM events"), 1, "nothing of the failed batch is stored");
    assert_eq!(store.meta(kefu::live::runtime::LAST_SEQ_KEY).unwrap().as_deref(), Some("1"));
}

//! Event time decides: what `kefu run` stores is a function of the events alone, whatever
//! the delivery timing — as it happens, in one burst after an outage, with cuts and a
//! restart — and equals `kefu replay --db` of the same events; the wall clock only alerts.

mod util;

use std::path::Path;
use std::time::Duration;

use kefu::alerts::{Kind, Plan};
use kefu::event::Event;
use kefu::live::{LiveConfig, TimeSource};
use kefu::rules::response_time::ResponseRules;
use kefu::simulate::{Item, ServerConfig, SimConfig, SimServer, generate};
use kefu::store::Store;
use kefu::time::{Millis, format_rfc3339_shanghai, shanghai_day};
use tokio::time::timeout;
use util::ws::{any_port, drain, server, speed_for, start_bot_with, wait_for};

const LIMIT: Duration = Duration::from_secs(90);

/// A simulated day of one shop, then one `presence` event two hours after the last
/// message (the next morning's first event): it moves event time past every idle close,
/// so live has ended every session that replay ends at the end of its input.
fn day(seed: u64) -> Vec<Event> {
    let mut events = generate(&SimConfig { events: 3_000, seed, ..SimConfig::default() });
    let last = events.last().unwrap().ts;
    events.push(
        kefu::event::parse(&format!(
            r#"{{"type":"presence","id":"next-morning","ts":"{}","shop":"tmall-demo","agent":"agent01","status":"online"}}"#,
            format_rfc3339_shanghai(last + 2 * 3_600_000)
        ))
        .unwrap(),
    );
    events
}

/// Every kind of wait alert: warning at 75 %, breach, escalation at 3×, resolved.
fn plan() -> Plan {
    Plan { warning_permille: Some(750), escalation_permille: Some(3000), resolved: true, ..Plan::default() }
}

/// The bot's engine time runs with the server's play clock: events arrive as they happen.
fn as_it_happens(events: &[Event], srv: &SimServer, speed: f64) -> LiveConfig {
    let time = TimeSource::scaled(events[0].ts, srv.origin(), speed);
    LiveConfig { time, plan: plan(), ..LiveConfig::new(ResponseRules::default()) }
}

/// Every recorded alert: kind, conversation, wait start, agent, due, deadline.
fn alerts(db: &Path) -> Vec<(String, String, i64, String, i64, i64)> {
    let store = Store::open(db).unwrap();
    let mut stmt = store
        .conn()
        .prepare(
            "SELECT kind, conversation, wait_start, agent, due_at, deadline_ms FROM alerts \
             ORDER BY kind, conversation, wait_start",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A `waits` row: conversation, start, end, agent, outcome, deadline, load, first, robot.
type WaitRow = (String, i64, i64, String, String, i64, i64, bool, bool);

/// Every stored wait, in key order.
fn waits(db: &Path) -> Vec<WaitRow> {
    let store = Store::open(db).unwrap();
    let mut stmt = store
        .conn()
        .prepare(
            "SELECT conversation, start, end, agent, outcome, deadline_ms, load, first, robot FROM waits \
             ORDER BY conversation, start",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// `kefu score` over the days of `events`, as a person runs it.
fn score(db: &Path, events: &[Event]) -> String {
    let from = shanghai_day(events.first().unwrap().ts).to_string();
    let to = shanghai_day(events.last().unwrap().ts).to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["score", "--no-reports", "--from", &from, "--to", &to, "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success(), "kefu score: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.replace(&db.display().to_string(), "DB")
}

/// `kefu replay --db` of the same events into a fresh database.
fn replayed(dir: &Path, events: &[Event]) -> std::path::PathBuf {
    let db = dir.join("replayed.db");
    let jsonl: String = events.iter().map(|e| e.to_json() + "\n").collect();
    let input = std::io::Cursor::new(jsonl.into_bytes());
    kefu::replay::replay_with(input, "events.jsonl", ResponseRules::default(), plan(), None, Some(&db), true)
        .unwrap();
    db
}

/// How the live alerts must compare with the replayed ones.
#[derive(PartialEq)]
enum Alerts {
    /// The same rows.
    Same,
    /// Every replayed alert, plus wall-clock alerts sent during the connection's gaps
    /// (a 100 ms reconnect is 12 minutes of shop time at this speed).
    AtLeast,
}

fn assert_same_as_replay(dir: &Path, live_db: &Path, events: &[Event], compare: Alerts) {
    let want_db = replayed(dir, events);
    let (got, want) = (waits(live_db), waits(&want_db));
    assert!(want.len() > 500, "a real day: {} waits", want.len());
    let unanswered = want.iter().filter(|w| w.4 == "unanswered").count();
    assert!(unanswered > 0, "the day has idle closes");
    if got != want {
        let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        panic!("stored waits differ from replay: {} vs {} rows, {differ} differ", got.len(), want.len());
    }
    // The same warnings, breaches, escalations and resolved notices as `kefu run` recorded.
    let (got, want) = (alerts(live_db), alerts(&want_db));
    for kind in ["warning", "breach", "escalation", "resolved"] {
        assert!(want.iter().any(|a| a.0 == kind), "replay recorded no {kind}");
    }
    if compare == Alerts::AtLeast {
        let missing: Vec<_> = want.iter().filter(|a| got.binary_search(a).is_err()).collect();
        assert!(missing.is_empty(), "alerts replay records but live did not: {missing:?}");
    } else if got != want {
        let count =
            |v: &[(String, String, i64, String, i64, i64)], k: &str| v.iter().filter(|a| a.0 == k).count();
        let by_kind: Vec<(&str, usize, usize)> = ["warning", "breach", "escalation", "resolved"]
            .map(|k| (k, count(&got, k), count(&want, k)))
            .to_vec();
        panic!("live alerts differ from replay (kind, live, replay): {by_kind:?}");
    }
    let (got, want) = (score(live_db, events), score(&want_db, events));
    assert!(want.contains("scored 2 day(s)"), "{want}");
    assert_eq!(got, want, "kefu score differs from the replayed database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_played_as_it_happens_stores_what_replay_stores() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        let events = day(31);
        let speed = speed_for(&events, 3.0);
        let srv = server(&events, ServerConfig { speed, ..ServerConfig::default() }).await;
        let last = srv.last_seq();
        let bot = start_bot_with(&srv.url(), &db, None, as_it_happens(&events, &srv, speed));
        wait_for("the day acked", LIMIT, || srv.stats().acked == Some(last)).await;
        bot.live.stop().await.unwrap();
        // Played at many times real speed, a scheduling pause of a few ms is minutes of shop
        // time: the wall clock may add a live alert (seen in CI); waits and scores stay equal.
        assert_same_as_replay(dir.path(), &db, &events, Alerts::AtLeast);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_delivered_in_one_burst_after_an_outage_stores_what_replay_stores() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        // The day is weeks old on the wall clock: all of it arrives at once, as fast as
        // the socket takes it, hours after the events happened.
        let events = day(32);
        let srv = server(&events, ServerConfig::default()).await;
        let last = srv.last_seq();
        let live = LiveConfig {
            time: TimeSource::wall(),
            plan: plan(),
            ..LiveConfig::new(ResponseRules::default())
        };
        let mut bot = start_bot_with(&srv.url(), &db, None, live);
        wait_for("the day acked", LIMIT, || srv.stats().acked == Some(last)).await;
        bot.live.stop().await.unwrap();
        let sent = drain(&mut bot.alerts);
        assert!(sent.is_empty(), "alerts weeks old are recorded, not sent: {}", sent.len());
        assert_same_as_replay(dir.path(), &db, &events, Alerts::Same);
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_with_three_cuts_and_a_kefu_restart_stores_what_replay_stores() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        let events = day(33);
        let speed = speed_for(&events, 4.0);
        let cut = events.len() as u64 / 4 + 1;
        let config = ServerConfig { speed, drop_every: Some(cut), ..ServerConfig::default() };
        let srv = server(&events, config).await;
        let last = srv.last_seq();
        let bot = start_bot_with(&srv.url(), &db, None, as_it_happens(&events, &srv, speed));
        // Between the first and the second cut.
        wait_for("a third of the day acked", LIMIT, || srv.stats().acked >= Some(last / 3)).await;
        bot.live.stop().await.unwrap();
        let again = start_bot_with(&srv.url(), &db, None, as_it_happens(&events, &srv, speed));
        wait_for("the day acked", LIMIT, || srv.stats().acked == Some(last)).await;
        again.live.stop().await.unwrap();
        let stats = srv.stats();
        assert!(stats.drops >= 3, "the server cut {} times", stats.drops);
        assert!(stats.hellos.len() >= 5, "three cuts and a restart: {:?}", stats.hellos);
        assert_same_as_replay(dir.path(), &db, &events, Alerts::AtLeast);
    })
    .await
    .expect("test timed out");
}

fn message(id: &str, ts: Millis, conversation: &str, from: &str) -> Event {
    kefu::event::parse(&format!(
        r#"{{"type":"message","id":"{id}","ts":"{}","shop":"s","conversation":"{conversation}","customer":"tb-{conversation}","agent":"agent-{conversation}","from":"{from}","text":"在吗"}}"#,
        format_rfc3339_shanghai(ts)
    ))
    .unwrap()
}

fn presence_frame(id: &str, ts: &str) -> Item {
    Item::Text(format!(
        r#"{{"op":"event","seq":{{seq}},"event":{{"type":"presence","id":"{id}","ts":"{ts}","shop":"s","agent":"xiaomei","status":"busy"}}}}"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_dated_ahead_while_buyers_wait_is_rejected_and_changes_no_wait_nor_alert() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        let t0: Millis = 1_794_362_400_000; // 2026-11-11 10:00 Shanghai
        // Five buyers answered within 3 s; a sixth is never answered (its breach shows the
        // wall clock does alert while the stream is live). While they wait, three events
        // of another agent arrive dated 60 s ahead, 1 h ahead and in year 9999.
        let mut items: Vec<Item> = (0..6)
            .map(|i| Item::Event(message(&format!("q{i}"), t0, &format!("c{i}"), "customer")))
            .collect();
        items.push(presence_frame("ahead-60s", &format_rfc3339_shanghai(t0 + 60_000)));
        items.push(presence_frame("ahead-1h", &format_rfc3339_shanghai(t0 + 3_600_000)));
        items.push(presence_frame("year-9999", "9999-12-31T23:59:59Z"));
        items.extend(
            (0..5).map(|i| Item::Event(message(&format!("a{i}"), t0 + 3_000, &format!("c{i}"), "agent"))),
        );
        let speed = 20.0;
        let srv = SimServer::start(any_port(), items, ServerConfig { speed, ..ServerConfig::default() })
            .await
            .unwrap();
        let last = srv.last_seq();
        let time = TimeSource::scaled(t0, srv.origin(), speed);
        let live = LiveConfig { time, ..LiveConfig::new(ResponseRules::default()) };
        let mut bot = start_bot_with(&srv.url(), &db, None, live);
        wait_for("the stream acked", LIMIT, || srv.stats().acked == Some(last)).await;
        // Engine time 70 s: past the deadlines (20 s) and the escalation (60 s) of every wait.
        wait_for("the escalation of the unanswered buyer", LIMIT, || time.now_ms() > t0 + 70_000).await;
        bot.live.stop().await.unwrap();
        let sent: Vec<(Kind, String)> =
            drain(&mut bot.alerts).into_iter().map(|(n, _)| (n.kind, n.conversation)).collect();
        assert_eq!(sent, [(Kind::Breach, "c5".to_string()), (Kind::Escalation, "c5".to_string())]);

        let store = Store::open(&db).unwrap();
        let mut stmt = store.conn().prepare("SELECT position, reason FROM rejected ORDER BY rowid").unwrap();
        let rejected: Vec<(String, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        assert_eq!(rejected.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["seq 7", "seq 8", "seq 9"]);
        assert!(rejected.iter().all(|r| r.1.contains("ahead of the clock")), "{rejected:?}");
        let n: i64 = store.conn().query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 11, "the rejected events are not stored");
        let waits = waits(&db);
        let answered: Vec<i64> = waits.iter().filter(|w| w.4 == "answered").map(|w| w.2 - w.1).collect();
        assert_eq!(answered, [3_000; 5], "five waits answered in 3 s: {waits:?}");
        assert_eq!(waits.len(), 5, "the sixth buyer still waits: its session has not closed");
    })
    .await
    .expect("test timed out");
}

//! The gateway against a hostile platform on loopback (the real simulator server, a real
//! SQLite file): seqs that break the seq rule.

mod util;

use std::time::Duration;

use kefu::simulate::{Item, ServerConfig, SimServer};
use kefu::store::Store;
use tokio::time::timeout;
use util::ws::{any_port, speed_for, start_bot, traffic, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

fn count(store: &Store, sql: &str) -> i64 {
    store.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_of_u64_max_is_rejected_and_later_frames_are_acked_and_resumed_across_a_restart() {
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        let events = traffic(600, 5);
        // Frame 100 is a valid event whose seq is u64::MAX; every other frame carries its
        // position as its seq.
        let huge = u64::MAX;
        let odd = &events[99];
        let mut items: Vec<Item> = events.iter().cloned().map(Item::Event).collect();
        items[99] = Item::Text(format!(r#"{{"op":"event","seq":{huge},"event":{}}}"#, odd.to_json()));
        // Played over about three seconds, so the first bot stops in the middle.
        let config = ServerConfig { speed: speed_for(&events, 3.0), ..ServerConfig::default() };
        let mut srv = SimServer::start(any_port(), items, config).await.unwrap();
        let last = srv.last_seq();

        let first = start_bot(&srv.url(), &db, None);
        wait_for("frames past the huge seq acked", LIMIT, || srv.acked() >= Some(300)).await;
        first.live.stop().await.unwrap();
        let acked = srv.acked();
        assert!(acked >= Some(300) && acked <= Some(last), "acked {acked:?} is a real seq of the stream");

        // A restart resumes after a real seq, and the rest of the stream still arrives.
        srv.restart().await.unwrap();
        let before = srv.stats().hellos.len();
        let second = start_bot(&srv.url(), &db, None);
        wait_for("the second bot's hello", LIMIT, || srv.stats().hellos.len() > before).await;
        wait_for("the whole stream acked", LIMIT, || srv.acked() == Some(last)).await;
        second.live.stop().await.unwrap();

        let stats = srv.stats();
        assert_eq!(stats.acked, Some(last), "the huge seq was never acked");
        let resumed = stats.hellos[before];
        // A real seq of the stream; on a slow machine the first bot may already have it all.
        assert!(resumed.is_some_and(|r| r >= 300 && r <= last), "resumed after {resumed:?}");
        assert!(stats.hellos.iter().all(|h| h.is_none_or(|r| r <= last)), "{:?}", stats.hellos);

        let store = Store::open(&db).unwrap();
        assert_eq!(store.meta("gateway.last_seq").unwrap(), Some(last.to_string()));
        assert_eq!(store.event_count().unwrap(), events.len() as i64 - 1, "every other event stored once");
        let id = odd.id.replace('\'', "''");
        assert_eq!(count(&store, &format!("SELECT COUNT(*) FROM events WHERE id = '{id}'")), 0);
        let (position, reason): (String, String) = store
            .conn()
            .query_row("SELECT position, reason FROM rejected", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(position, format!("seq {huge}"));
        assert!(reason.contains("above the largest seq"), "{reason}");
    })
    .await
    .expect("test timed out");
}

/// Reads a child's stderr into a shared string, line by line, as it comes.
fn collect(stderr: tokio::process::ChildStderr) -> std::sync::Arc<std::sync::Mutex<String>> {
    use tokio::io::AsyncBufReadExt;
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let out = text.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut t = out.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    text
}

fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_trace_level_no_token_and_no_raw_personal_data_reach_the_log() {
    use util::http::{HttpServer, Reply};
    timeout(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (phone, id_card) = ("13812345678", "110101199003074518");
        let mut items: Vec<Item> = traffic(200, 9).into_iter().map(Item::Event).collect();
        let t = kefu::time::format_rfc3339_shanghai(kefu::time::now_ms());
        let personal = format!(
            r#"{{"type":"message","id":"pii-1","ts":"{t}","shop":"s","conversation":"pii","customer":"tb_pii_buyer","agent":"a1","from":"customer","text":"电话{phone} 身份证{id_card}"}}"#
        );
        items.insert(10, Item::Text(format!(r#"{{"op":"event","seq":{{seq}},"event":{personal}}}"#)));
        // An invalid event (a number where text belongs) and a frame of another op, both
        // with personal data: rejected and ignored frames are logged.
        items.insert(20, Item::Text(format!(r#"{{"op":"event","seq":{{seq}},"event":{{"type":"message","id":{phone}}}}}"#)));
        items.insert(30, Item::Text(format!(r#"{{"op":"note{phone}","text":"{id_card}"}}"#)));
        let config = ServerConfig { speed: 0.0, token: Some("BEARERSECRET".into()), ..ServerConfig::default() };
        let srv = SimServer::start(any_port(), items, config).await.unwrap();
        let last = srv.last_seq();
        let hook = HttpServer::start(vec![], Reply::ok()).await;
        let db = dir.path().join("kefu.db");
        let config = dir.path().join("kefu.toml");
        std::fs::write(
            &config,
            format!(
                "db = {db:?}\n[platform]\nurl = \"{}/kefu/v1?token=QUERYSECRET\"\ntoken_env = \"KEFU_TEST_TOKEN\"\n\
                 [alerts]\nescalation_at = 0\n[[alerts.sink]]\nname = \"hook\"\ntype = \"dingtalk\"\nurl = \"{}\"\n",
                srv.url(),
                hook.url("/robot/send?access_token=HOOKSECRET")
            ),
        )
        .unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["run", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .env("KEFU_TEST_TOKEN", "BEARERSECRET")
            .env("RUST_LOG", "trace")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = collect(child.stderr.take().unwrap());
        wait_for("the stream acked", LIMIT, || srv.acked() >= Some(last)).await;
        wait_for("an alert at the webhook", LIMIT, || !hook.accepted().is_empty()).await;
        sigterm(&child);
        assert!(child.wait().await.unwrap().success());
        let log = log.lock().unwrap().clone();
        assert!(log.contains("ignored frame") && log.contains("rejected frame"), "{log}");
        for secret in ["QUERYSECRET", "BEARERSECRET", "HOOKSECRET", phone, id_card, "tb_pii_buyer"] {
            let at = log.find(secret).map(|i| &log[i.saturating_sub(300)..(i + 100).min(log.len())]);
            assert!(at.is_none(), "{secret} in the log: {at:?}");
        }
        assert!(log.contains("token=***"), "the URL is logged with its query masked");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_startup_rebuild_stops_cleanly_and_keeps_the_database() {
    timeout(LIMIT * 2, async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kefu.db");
        // A database big enough that rebuilding the clock from it takes a while.
        let events = traffic(100_000, 3);
        {
            let mut store = Store::open(&db).unwrap();
            let tx = store.conn_mut().transaction().unwrap();
            {
                let mut ins = tx.prepare_cached(kefu::store::INSERT_EVENT).unwrap();
                for e in &events {
                    kefu::store::insert_event(&mut ins, e, &e.to_json()).unwrap();
                }
            }
            tx.execute("INSERT INTO meta (key, value) VALUES ('gateway.last_seq', '100000')", []).unwrap();
            tx.commit().unwrap();
        }
        let (addr, hellos) = util::ws::silent_server().await;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["run", "--url", &format!("ws://{addr}"), "--db"])
            .arg(&db)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = collect(child.stderr.take().unwrap());
        // The WAL file appears when kefu opens the database (the test's own connection
        // removed it on close); the rebuild follows at once and lasts seconds.
        let wal = dir.path().join("kefu.db-wal");
        assert!(!wal.exists());
        wait_for("kefu to open the database", LIMIT, || wal.exists()).await;
        sigterm(&child);
        let during = log.lock().unwrap().clone();
        assert!(!during.contains("runtime rebuilt"), "the signal came during the rebuild: {during}");
        let status = child.wait().await.unwrap();
        let log = log.lock().unwrap().clone();
        assert!(status.success(), "clean exit on SIGTERM during the rebuild: {status:?}\n{log}");
        assert!(log.contains("stopping"), "a clean stop, not a kill: {log}");
        // The gateway may have said hello before the stop reached it; it resumed where the
        // database said and committed nothing new.
        assert!(hellos.lock().unwrap().iter().all(|h| h.contains(r#""resume_after":100000"#)));
        let store = Store::open(&db).unwrap();
        assert_eq!(store.event_count().unwrap(), events.len() as i64, "committed work kept");
        assert_eq!(store.meta("gateway.last_seq").unwrap().as_deref(), Some("100000"));
    })
    .await
    .expect("test timed out");
}

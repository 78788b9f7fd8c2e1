//! Hostile and slow webhook sinks, as real HTTP endpoints on 127.0.0.1, with a real SQLite
//! outbox, in virtual time (`start_paused`): redirects are never followed, a slow sink
//! delivers in parallel and folds its backlog into digests before alerts go stale.

mod util;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kefu::alerts::outbox::{Outbox, Status};
use kefu::alerts::{AlertConfig, AlertService, Kind, Notice};
use util::http::{HttpServer, Reply};
use util::wait_until;

fn breach(conversation: &str, due_at: i64) -> Notice {
    Notice {
        kind: Kind::Breach,
        shop: "旗舰店".into(),
        agent: "小王".into(),
        agent_group: None,
        conversation: conversation.into(),
        customer: "tb_buyer_8842".into(),
        wait_start: due_at - 20_000,
        due_at,
        waited_ms: 20_000,
        deadline_ms: 20_000,
        load: 3,
        preview: "在吗".into(),
        detail: None,
    }
}

fn config(text: &str) -> AlertConfig {
    kefu::alerts::config::parse(Path::new("test/alerts.toml"), text, &|_| None).expect("valid test config")
}

fn statuses(db: &Path) -> Vec<(String, Status, Option<String>)> {
    let mut o = Outbox::open(db).unwrap();
    o.rows().unwrap().into_iter().map(|r| (r.sink, r.status, r.last_error)).collect()
}

fn count(db: &Path, status: Status) -> usize {
    statuses(db).into_iter().filter(|r| r.1 == status).count()
}

/// Log lines written while the guard lives (this thread only).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let w = self.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::set_default(sub)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(start_paused = true)]
async fn a_sink_answering_307_or_302_is_a_failure_named_by_host_and_the_other_host_gets_nothing() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let elsewhere = HttpServer::start(vec![], Reply::ok()).await;
    let target = elsewhere.url("/steal?access_token=LEAKED");
    let hook = HttpServer::start(vec![], Reply::Redirect(307, target.clone())).await;
    let wecom = HttpServer::start(vec![], Reply::Redirect(302, target)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n\
         [[sink]]\nname = \"wecom\"\ntype = \"wecom\"\nurl = \"{}\"\n",
        hook.url("/robot/send?access_token=SECRET307"),
        wecom.url("/cgi-bin/webhook/send?key=SECRET302"),
    ));
    let alerts = AlertService::start(cfg, &db).unwrap();
    let now = kefu::time::now_ms();
    for i in 0..6 {
        alerts.submit(breach(&format!("c{i}"), now));
    }
    assert!(
        wait_until(Duration::from_secs(60), || count(&db, Status::Failed) == 12).await,
        "{:?}",
        statuses(&db)
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    alerts.shutdown(Duration::from_millis(100)).await;

    assert!(elsewhere.requests().is_empty(), "the redirect target got {:?}", elsewhere.requests());
    assert!(!hook.requests().is_empty() && !wecom.requests().is_empty());
    assert!(hook.requests().iter().chain(&wecom.requests()).all(|r| r.method == "POST"));
    let host = format!("host {}", elsewhere.addr);
    for (sink, status, error) in statuses(&db) {
        let error = error.unwrap_or_default();
        assert_eq!(status, Status::Failed, "{sink}: a redirect is not a delivery");
        assert!(error.contains("redirect") && error.contains(&host), "{sink}: {error}");
    }
    let logs = logs.text();
    assert!(logs.contains(&host), "the failure is logged with the target host: {logs}");
    for secret in ["SECRET307", "SECRET302", "LEAKED", "/steal"] {
        assert!(!logs.contains(secret), "{secret} in the log: {logs}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_sink_taking_3_s_a_request_delivers_in_parallel_and_digests_its_backlog_before_it_goes_stale() {
    let slow = HttpServer::start(vec![], Reply::After(Duration::from_secs(3), 200, "{}".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        "stale_after_s = 30\n[[sink]]\nname = \"slow\"\ntype = \"webhook\"\nurl = \"{}\"\n",
        slow.url("/a")
    ));
    let alerts = AlertService::start(cfg, &db).unwrap();
    // 2,400 alerts over four minutes, 20 every 2 s, each submitted when it falls due (on
    // the sender's clock: the wall clock at start plus virtual time).
    let (t0, start) = (kefu::time::now_ms(), tokio::time::Instant::now());
    let total = 2_400;
    for i in 0..total {
        if i % 20 == 0 && i > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let now = t0 + start.elapsed().as_millis() as i64;
        alerts.submit(breach(&format!("c{i}"), now));
    }
    let delivered = |db: &Path| count(db, Status::Sent) + count(db, Status::Digested);
    assert!(
        wait_until(Duration::from_secs(30), || delivered(&db) == total).await,
        "delivered {} of {total}, stale {}, pending {}",
        delivered(&db),
        count(&db, Status::Stale),
        count(&db, Status::Pending)
    );
    alerts.shutdown(Duration::from_millis(100)).await;
    assert_eq!(count(&db, Status::Stale), 0, "nothing went stale");
    assert!(slow.max_open() > 1, "requests in parallel: at most {} at once", slow.max_open());
    assert!(slow.max_open() <= 4, "no more than the sink's concurrency: {}", slow.max_open());
    assert!(count(&db, Status::Digested) > 0, "the backlog went in digests");
    // The rate limit holds: 60 a minute + a burst of 10, over four minutes and a half.
    assert!(slow.requests().len() <= 10 + 60 * 5, "{} requests", slow.requests().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_while_a_slow_sink_delivers_sends_no_alert_twice() {
    use kefu::simulate::ServerConfig;
    let limit = Duration::from_secs(60);
    let events = util::ws::traffic(400, 21);
    // Played over 20 s, so breaches keep falling due while the sink works.
    let speed = util::ws::speed_for(&events, 20.0);
    let srv = util::ws::server(&events, ServerConfig { speed, ..ServerConfig::default() }).await;
    let last = srv.last_seq();
    // 1.5 s an answer, one request at a time: a kill can land while an alert waits for its
    // answer with others already answered.
    let hook = HttpServer::start(vec![], Reply::After(Duration::from_millis(1_500), 200, "{}".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let config = dir.path().join("kefu.toml");
    std::fs::write(
        &config,
        format!(
            "log = \"warn\"\ndb = {db:?}\n[platform]\nurl = \"{}\"\n\
             [alerts]\nescalation_at = 0\nstale_after_s = 100000\n\
             [[alerts.sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nconcurrency = 1\n",
            srv.url(),
            hook.url("/alerts")
        ),
    )
    .unwrap();
    let start = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["run", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut first = start();
    // Kill when two answers are in and the request now in flight is half-way: far from
    // any answer, so what was answered had time to be recorded.
    let half_way = || {
        let reqs = hook.requests();
        let answered = reqs.iter().filter(|r| r.answered).count();
        let newest = reqs.last().filter(|r| !r.answered).map(|r| r.received.elapsed());
        answered >= 2 && newest.is_some_and(|age| (500..1_000).contains(&age.as_millis()))
    };
    tokio::time::timeout(limit, async {
        while !half_way() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("two answers, then a request in flight");
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let before = hook.answered().len();
    // What was answered before the kill is already marked in the outbox, message by
    // message — not at the end of a round the kill cut short.
    let marked: std::collections::HashSet<(String, i64, String)> = Outbox::open(&db)
        .unwrap()
        .rows()
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.status, Status::Sent | Status::Digested))
        .map(|r| (r.notice.conversation, r.notice.wait_start, r.notice.kind.as_str().to_string()))
        .collect();
    for r in hook.answered() {
        for k in util::http::alert_keys(&r.body) {
            assert!(marked.contains(&k), "{k:?} was answered before the kill but is not marked delivered");
        }
    }

    let mut second = start();
    let settled = || {
        let mut o = Outbox::open(&db).unwrap();
        let rows = o.rows().unwrap();
        !rows.is_empty() && rows.iter().all(|r| matches!(r.status, Status::Sent | Status::Digested))
    };
    let done = tokio::time::timeout(limit, async {
        while srv.acked() < Some(last) || !settled() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let pid = second.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(second.wait().await.unwrap().success());
    assert!(done.is_ok(), "every alert delivered after the restart: {:?}", statuses(&db));

    let mut seen = std::collections::HashMap::new();
    for (i, r) in hook.answered().iter().enumerate() {
        for k in util::http::alert_keys(&r.body) {
            if let Some(j) = seen.insert(k.clone(), i) {
                panic!("{k:?} answered twice (requests {j} and {i}; {before} answered before the kill)");
            }
        }
    }
    let delivered =
        statuses(&db).into_iter().filter(|r| matches!(r.1, Status::Sent | Status::Digested)).count();
    assert!(
        delivered > 0 && seen.len() >= delivered,
        "every delivered alert was answered: {delivered} > {}",
        seen.len()
    );
    assert!(before >= 2 && hook.answered().len() > before, "deliveries on both sides of the kill");
}

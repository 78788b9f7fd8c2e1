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

/// Lets virtual time run in 50 ms steps until `cond` holds (at most `max` virtual time).
async fn wait_until(max: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let step = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    while !cond() {
        if waited >= max {
            return false;
        }
        tokio::time::sleep(step).await;
        waited += step;
    }
    true
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

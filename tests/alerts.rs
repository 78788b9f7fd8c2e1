//! Alerts against a real HTTP endpoint on 127.0.0.1 and a real SQLite outbox, in virtual
//! time (`start_paused`): exact vendor bodies and signatures, retries, a hanging webhook,
//! rate limit → digest, restart without duplicates, staleness.

mod util;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use kefu::alerts::outbox::{Outbox, Status};
use kefu::alerts::{AlertConfig, AlertService, Kind, Notice};
use sha2::Sha256;
use util::http::{HttpServer, Reply};
use util::wait_until;

/// 2025-11-11 10:00:00 +08:00.
const WAIT_START: i64 = 1_762_826_400_000;

fn breach(conversation: &str) -> Notice {
    Notice {
        kind: Kind::Breach,
        shop: "旗舰店".into(),
        agent: "小王".into(),
        agent_group: None,
        conversation: conversation.into(),
        customer: "tb_buyer_8842".into(),
        wait_start: WAIT_START,
        due_at: WAIT_START + 20_000,
        waited_ms: 20_000,
        deadline_ms: 20_000,
        load: 3,
        preview: "在吗?我的电话是13812345678".into(),
        detail: None,
    }
}

/// A config from TOML text; `stale_after_s` is huge unless the text sets it, so the fixed
/// 2025 timestamps of [`breach`] are never stale (nor pruned).
fn config(text: &str) -> AlertConfig {
    let text = if text.contains("stale_after_s") {
        text.to_string()
    } else {
        format!("stale_after_s = 2000000000\n{text}")
    };
    kefu::alerts::config::parse(Path::new("test/alerts.toml"), &text, &|_| None).expect("valid test config")
}

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    target.split_once('?')?.1.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn outbox_statuses(db: &Path) -> Vec<(String, String, Status)> {
    let mut o = Outbox::open(db).unwrap();
    o.rows().unwrap().into_iter().map(|r| (r.sink, r.notice.conversation, r.status)).collect()
}

fn count(db: &Path, status: Status) -> usize {
    outbox_statuses(db).into_iter().filter(|r| r.2 == status).count()
}

const MARKDOWN: &str = r"### 响应超时 · 小王\n- 店铺: 旗舰店\n- 客服: 小王 (售前)\n- 买家: t***2\n- 已等待: 20 秒 (时限 20 秒, 接待 3 人)\n- 买家最后消息: 在吗?我的电话是138****5678\n- 时间: 11-11 10:00:20 (北京时间)";

#[tokio::test(start_paused = true)]
async fn dingtalk_wecom_and_feishu_get_exact_bodies_and_valid_signatures() {
    let server = HttpServer::start(vec![], Reply::ok()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        r#"
[agent_groups]
"售前" = ["小王"]
[[sink]]
name = "ding"
type = "dingtalk"
url = "{ding}"
secret = "SEC0123456789abcdef"
[[sink]]
name = "wecom"
type = "wecom"
url = "{wecom}"
[[sink]]
name = "feishu"
type = "feishu"
style = "text"
url = "{feishu}"
secret = "fs-secret"
"#,
        ding = server.url("/robot/send?access_token=TOKEN"),
        wecom = server.url("/cgi-bin/webhook/send?key=KEY"),
        feishu = server.url("/open-apis/bot/v2/hook/HOOK"),
    ));
    let before = kefu::time::now_ms();
    let alerts = AlertService::start(cfg, &db).unwrap();
    alerts.submit(breach("c1"));
    assert!(
        wait_until(Duration::from_secs(10), || server.requests().len() == 3).await,
        "{:?}",
        server.requests()
    );
    let reqs = server.requests();
    let by_path =
        |p: &str| reqs.iter().find(|r| r.target.starts_with(p)).unwrap_or_else(|| panic!("no {p}: {reqs:?}"));

    let ding = by_path("/robot/send?access_token=TOKEN&timestamp=");
    assert_eq!(ding.method, "POST");
    assert!(ding.header("content-type").unwrap().starts_with("application/json"));
    assert_eq!(
        ding.body,
        format!(r#"{{"msgtype":"markdown","markdown":{{"title":"响应超时 · 小王","text":"{MARKDOWN}"}}}}"#)
    );
    let ts: i64 = query_param(&ding.target, "timestamp").unwrap().parse().unwrap();
    assert!((ts - before).abs() < 3_600_000, "DingTalk rejects timestamps more than an hour off");
    let sign = query_param(&ding.target, "sign").unwrap();
    let expected = hmac_b64(b"SEC0123456789abcdef", format!("{ts}\nSEC0123456789abcdef").as_bytes());
    let decoded: String =
        url::form_urlencoded::parse(format!("s={sign}").as_bytes()).next().unwrap().1.into_owned();
    assert_eq!(decoded, expected, "signature as DingTalk computes it");
    assert!(!sign.contains('+') && !sign.contains('/') && !sign.contains('='), "URL-encoded: {sign}");

    let wecom = by_path("/cgi-bin/webhook/send?key=KEY");
    assert_eq!(wecom.body, format!(r#"{{"msgtype":"markdown","markdown":{{"content":"{MARKDOWN}"}}}}"#));

    let feishu = by_path("/open-apis/bot/v2/hook/HOOK");
    let json: serde_json::Value = serde_json::from_str(&feishu.body).unwrap();
    let ts = json["timestamp"].as_str().unwrap();
    let secs: i64 = ts.parse().unwrap();
    assert!((secs * 1000 - before).abs() < 3_600_000);
    let sign = hmac_b64(format!("{ts}\nfs-secret").as_bytes(), b"");
    let text = r"响应超时 · 小王\n店铺: 旗舰店\n客服: 小王 (售前)\n买家: t***2\n已等待: 20 秒 (时限 20 秒, 接待 3 人)\n买家最后消息: 在吗?我的电话是138****5678\n时间: 11-11 10:00:20 (北京时间)";
    assert_eq!(
        feishu.body,
        format!(r#"{{"timestamp":"{ts}","sign":"{sign}","msg_type":"text","content":{{"text":"{text}"}}}}"#)
    );

    for r in &reqs {
        assert!(
            !r.body.contains("tb_buyer_8842") && !r.body.contains("13812345678"),
            "raw buyer data: {}",
            r.body
        );
    }
    alerts.shutdown(Duration::from_secs(1)).await;
    assert_eq!(count(&db, Status::Sent), 3);
}

#[tokio::test(start_paused = true)]
async fn a_webhook_that_answers_500_twice_then_200_gets_the_alert_exactly_once() {
    let server = HttpServer::start(
        vec![Reply::Status(500, "boom".into()), Reply::Status(500, "boom".into())],
        Reply::Status(200, "{}".into()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
        server.url("/alerts")
    ));
    let alerts = AlertService::start(cfg, &db).unwrap();
    alerts.submit(breach("c1"));
    assert!(wait_until(Duration::from_secs(60), || count(&db, Status::Sent) == 1).await);
    // Long after: no further request.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let reqs = server.requests();
    assert_eq!(reqs.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 500, 200]);
    assert!(reqs.iter().all(|r| r.body == reqs[0].body), "the same alert each time");
    let sent: serde_json::Value = serde_json::from_str(&server.accepted()[0].body).unwrap();
    assert_eq!(sent["kind"], "breach");
    assert_eq!(sent["conversation"], "c1");
    assert_eq!(sent["customer"], "t***2", "masked");
    let rows = Outbox::open(&db).unwrap().rows().unwrap();
    assert_eq!(rows[0].attempts, 3);
    alerts.shutdown(Duration::from_millis(100)).await;
}

#[tokio::test(start_paused = true)]
async fn a_webhook_that_never_answers_does_not_hold_up_submit() {
    let server = HttpServer::start(vec![], Reply::Hang).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        "[[sink]]\nname = \"dead\"\ntype = \"webhook\"\nurl = \"{}\"\ntimeout_ms = 600000\nconcurrency = 2\n",
        server.url("/dead")
    ));
    let alerts = AlertService::start(cfg, &db).unwrap();
    alerts.submit(breach("first"));
    assert!(wait_until(Duration::from_secs(5), || server.requests().len() == 1).await);
    // The endpoint now holds a request open. `submit` is a plain function: it cannot await the
    // webhook; the notices must still all reach the outbox while that request hangs.
    for i in 0..2_000 {
        alerts.submit(breach(&format!("c{i}")));
    }
    assert!(wait_until(Duration::from_secs(5), || outbox_statuses(&db).len() == 2_001).await);
    // The second slot took what was due as one digest (500 alerts at most); then both hang.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(server.requests().len(), 2, "no more requests in flight than the sink's concurrency");
    assert!(
        server.requests()[1].body.contains(r#"{"count":500,"kind":"digest""#),
        "{}",
        server.requests()[1].body
    );
    assert!(server.accepted().is_empty(), "the endpoint never answered");
    assert_eq!(count(&db, Status::Pending), 2_001);
    let report = alerts.shutdown(Duration::from_millis(100)).await;
    assert_eq!(report.pending, 2_001, "undelivered alerts stay in the outbox");
}

#[tokio::test(start_paused = true)]
async fn above_the_rate_limit_alerts_are_merged_into_a_digest_never_dropped() {
    let server = HttpServer::start(vec![], Reply::ok()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        "[[sink]]\nname = \"ding\"\ntype = \"dingtalk\"\nurl = \"{}\"\nper_minute = 2\nburst = 2\n",
        server.url("/robot/send?access_token=T")
    ));
    let alerts = AlertService::start(cfg, &db).unwrap();
    for i in 0..10 {
        alerts.submit(breach(&format!("c{i}")));
    }
    let delivered = |db: &Path| count(db, Status::Sent) + count(db, Status::Digested);
    assert!(wait_until(Duration::from_secs(5), || delivered(&db) == 10).await);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "two tokens: one single message, then one digest");
    assert!(reqs[0].body.contains(r#""title":"响应超时 · 小王""#), "{}", reqs[0].body);
    assert!(reqs[1].body.contains(r#""title":"告警汇总 · 9 条""#), "{}", reqs[1].body);
    assert_eq!(reqs[1].body.matches("响应超时 · 小王 · 买家 t***2").count(), 9);
    assert_eq!((count(&db, Status::Sent), count(&db, Status::Digested)), (1, 9));

    // The bucket is empty: the next alerts wait for a token (30 s at 2/min), then go together.
    for i in 10..15 {
        alerts.submit(breach(&format!("c{i}")));
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(server.requests().len(), 2, "no token yet");
    assert_eq!(count(&db, Status::Pending), 5, "waiting, not dropped");
    assert!(wait_until(Duration::from_secs(15), || delivered(&db) == 15).await);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs[2].body.contains(r#""title":"告警汇总 · 5 条""#), "{}", reqs[2].body);
    assert_eq!((count(&db, Status::Sent), count(&db, Status::Digested)), (1, 14));
    alerts.shutdown(Duration::from_millis(100)).await;
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_pending_alerts_are_delivered_and_none_is_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let sink =
        |url: String| config(&format!("[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\n"));

    // First run: c1 is delivered, then the endpoint dies and c2, c3 stay pending.
    let first = HttpServer::start(vec![Reply::Status(200, "{}".into())], Reply::Hang).await;
    let alerts = AlertService::start(sink(first.url("/a")), &db).unwrap();
    alerts.submit(breach("c1"));
    assert!(wait_until(Duration::from_secs(5), || count(&db, Status::Sent) == 1).await);
    alerts.submit(breach("c2"));
    alerts.submit(breach("c3"));
    // c2 and c3 each hold a request slot of the four.
    assert!(wait_until(Duration::from_secs(5), || first.requests().len() == 3).await);
    let report = alerts.shutdown(Duration::from_millis(100)).await;
    assert_eq!(report.pending, 2);

    // Second run on the same database: the runtime resubmits everything it replays.
    let second = HttpServer::start(vec![], Reply::Status(200, "{}".into())).await;
    let alerts = AlertService::start(sink(second.url("/a")), &db).unwrap();
    for c in ["c1", "c2", "c3", "c4"] {
        alerts.submit(breach(c));
    }
    assert!(wait_until(Duration::from_secs(30), || count(&db, Status::Sent) == 4).await);
    alerts.shutdown(Duration::from_millis(100)).await;

    // Third run: everything again; nothing new to send.
    let alerts = AlertService::start(sink(second.url("/a")), &db).unwrap();
    for c in ["c1", "c2", "c3", "c4"] {
        alerts.submit(breach(c));
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    alerts.shutdown(Duration::from_millis(100)).await;

    let conversations = |s: &HttpServer| {
        let mut v: Vec<String> = s
            .accepted()
            .iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["conversation"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(conversations(&first), ["c1"]);
    assert_eq!(conversations(&second), ["c2", "c3", "c4"], "each pending one once, c1 not again");
    assert_eq!(count(&db, Status::Sent), 4);
}

#[tokio::test(start_paused = true)]
async fn a_stale_alert_is_recorded_but_not_sent() {
    let server = HttpServer::start(vec![], Reply::Status(200, "{}".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        "stale_after_s = 600\n[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
        server.url("/a")
    ));
    let now = kefu::time::now_ms();
    let alerts = AlertService::start(cfg, &db).unwrap();
    let mut old = breach("old");
    old.due_at = now - 11 * 60_000;
    let mut fresh = breach("fresh");
    fresh.due_at = now - 60_000;
    alerts.submit(old);
    alerts.submit(fresh);
    assert!(wait_until(Duration::from_secs(5), || count(&db, Status::Sent) == 1).await);
    alerts.shutdown(Duration::from_millis(100)).await;
    let rows = outbox_statuses(&db);
    assert!(rows.contains(&("hook".into(), "old".into(), Status::Stale)), "{rows:?}");
    assert_eq!(server.requests().len(), 1);
    assert!(server.requests()[0].body.contains(r#""conversation":"fresh""#));
}

#[tokio::test(start_paused = true)]
async fn a_webhook_that_keeps_failing_is_given_up_after_max_attempts() {
    let server = HttpServer::start(vec![], Reply::Status(503, "busy".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nmax_attempts = 3\n",
        server.url("/a")
    ));
    let alerts = AlertService::start(cfg, &db).unwrap();
    alerts.submit(breach("c1"));
    assert!(wait_until(Duration::from_secs(60), || count(&db, Status::Failed) == 1).await);
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(server.requests().len(), 3, "three tries, then no more");
    let report = alerts.shutdown(Duration::from_millis(100)).await;
    assert_eq!(report.pending, 0);
}

// Real time: paused time would jump to the shutdown deadline whenever the runtime waits on
// the loopback socket; the generous deadline is never reached, shutdown returns when done.
#[tokio::test]
async fn shutdown_flushes_what_was_just_submitted() {
    let server = HttpServer::start(vec![], Reply::Status(200, "{}".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg =
        config(&format!("[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n", server.url("/a")));
    let alerts = AlertService::start(cfg, &db).unwrap();
    for c in ["c1", "c2", "c3"] {
        alerts.submit(breach(c));
    }
    let report = alerts.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.pending, 0);
    assert_eq!(server.accepted().len(), 3);
    assert_eq!(count(&db, Status::Sent), 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_a_hanging_webhook_at_its_deadline() {
    let server = HttpServer::start(vec![], Reply::Hang).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\ntimeout_ms = 600000\n",
        server.url("/a")
    ));
    let alerts = AlertService::start(cfg, &db).unwrap();
    alerts.submit(breach("c1"));
    let started = tokio::time::Instant::now();
    let report = alerts.shutdown(Duration::from_secs(2)).await;
    assert_eq!(report.pending, 1, "kept for the next run");
    assert!(started.elapsed() <= Duration::from_secs(3), "stopped at the deadline, not the 10 min timeout");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_logged_without_the_robot_token() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        "[[sink]]\nname = \"ding\"\ntype = \"dingtalk\"\nurl = \"http://127.0.0.1:{port}/robot/send?access_token=TOPSECRET\"\nmax_attempts = 1\n"
    ));
    let alerts = AlertService::start(cfg, &db).unwrap();
    alerts.submit(breach("c1"));
    assert!(wait_until(Duration::from_secs(10), || count(&db, Status::Failed) == 1).await);
    alerts.shutdown(Duration::from_millis(100)).await;
    let row = &Outbox::open(&db).unwrap().rows().unwrap()[0];
    let error = row.last_error.as_deref().unwrap();
    assert!(error.starts_with("request failed"), "{error}");
    assert!(!error.contains("TOPSECRET"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn an_alert_still_undelivered_past_the_staleness_limit_is_not_sent_late() {
    let server = HttpServer::start(vec![], Reply::Status(500, "down".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg = config(&format!(
        "stale_after_s = 120\n[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nmax_attempts = 100\nretry_base_ms = 50000\nretry_max_ms = 50000\n",
        server.url("/a")
    ));
    let alerts = AlertService::start(cfg, &db).unwrap();
    let mut n = breach("c1");
    n.due_at = kefu::time::now_ms();
    alerts.submit(n);
    assert!(wait_until(Duration::from_secs(5), || server.requests().len() == 1).await);
    // Tries at 0 s, 50 s, 100 s; at 150 s the alert is older than 120 s.
    assert!(wait_until(Duration::from_secs(300), || count(&db, Status::Stale) == 1).await);
    server.set_default(Reply::Status(200, "{}".into()));
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(
        server.requests().len(),
        3,
        "{:?}",
        server.requests().iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(server.accepted().is_empty(), "never delivered late");
    alerts.shutdown(Duration::from_millis(100)).await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_keeps_what_was_submitted_for_the_next_run() {
    let server = HttpServer::start(vec![], Reply::Status(200, "{}".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let cfg =
        config(&format!("[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n", server.url("/a")));
    let alerts = AlertService::start(cfg.clone(), &db).unwrap();
    alerts.submit(breach("c1"));
    alerts.submit(breach("c2"));
    drop(alerts);
    assert!(wait_until(Duration::from_secs(5), || count(&db, Status::Pending) == 2).await);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(server.requests().is_empty(), "no delivery started after the drop");

    let alerts = AlertService::start(cfg, &db).unwrap();
    assert!(wait_until(Duration::from_secs(5), || count(&db, Status::Sent) == 2).await);
    alerts.shutdown(Duration::from_millis(100)).await;
    assert_eq!(server.accepted().len(), 2);
}

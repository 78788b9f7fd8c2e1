//! Alert sender figures, all in one run on loopback:
//! - the cost of `submit` on the caller (event ingestion) while the only webhook hangs;
//! - how fast submitted alerts reach the SQLite outbox;
//! - lateness from `submit` to the request arriving at a loopback webhook, p50/p99, with
//!   alerts submitted at a steady rate (KEFU_BENCH_RATE per second, default 2,000).
//!
//! `cargo bench --bench alerts` (alerts: KEFU_BENCH_ALERTS, default 100,000 / 10,000).

#[allow(dead_code)]
#[path = "../tests/util/http.rs"]
mod http;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use http::{HttpServer, Reply};
use kefu::alerts::outbox::Outbox;
use kefu::alerts::{AlertConfig, AlertService, Kind, Notice};

fn notice(conversation: String, now: i64) -> Notice {
    Notice {
        kind: Kind::Breach,
        shop: "旗舰店".into(),
        agent: "小王".into(),
        agent_group: None,
        conversation,
        customer: "tb_buyer_8842".into(),
        wait_start: now - 20_000,
        due_at: now,
        waited_ms: 20_000,
        deadline_ms: 20_000,
        load: 3,
        preview: "在吗?我的电话是13812345678".into(),
        detail: None,
    }
}

fn config(url: &str, extra: &str) -> anyhow::Result<AlertConfig> {
    let text = format!("[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\n{extra}");
    Ok(kefu::alerts::config::parse(Path::new("bench/alerts.toml"), &text, &|_| None)?)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (bulk, paced, rate) =
        (env("KEFU_BENCH_ALERTS", 100_000), env("KEFU_BENCH_PACED", 10_000), env("KEFU_BENCH_RATE", 2_000));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        // 1. submit cost and outbox throughput, webhook hanging.
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("kefu.db");
        let dead = HttpServer::start(vec![], Reply::Hang).await;
        let alerts = AlertService::start(config(&dead.url("/dead"), "timeout_ms = 600000\n")?, &db)?;
        let now = kefu::time::now_ms();
        let notices: Vec<Notice> = (0..bulk).map(|i| notice(format!("c{i}"), now)).collect();
        let t = Instant::now();
        for n in notices {
            alerts.submit(n);
        }
        let submit = t.elapsed();
        let outbox = Outbox::open(&db)?;
        while outbox.pending()? < bulk as i64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stored = t.elapsed();
        println!(
            "submit, webhook hanging: {bulk} alerts in {:.1} ms = {:.0} ns/submit",
            submit.as_secs_f64() * 1e3,
            submit.as_nanos() as f64 / bulk as f64
        );
        println!(
            "outbox: all {bulk} stored after {:.0} ms = {:.0} alerts/s",
            stored.as_secs_f64() * 1e3,
            bulk as f64 / stored.as_secs_f64()
        );
        alerts.shutdown(Duration::from_millis(100)).await;

        // 2. lateness at a steady rate, webhook answering at once, no rate limit.
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("kefu.db");
        let ok = HttpServer::start(vec![], Reply::Status(200, "{}".into())).await;
        let alerts =
            AlertService::start(config(&ok.url("/ok"), "per_minute = 100000000\nburst = 100000\n")?, &db)?;
        let mut sent_at = HashMap::with_capacity(paced);
        let gap = Duration::from_secs_f64(1.0 / rate as f64);
        let start = Instant::now();
        for i in 0..paced {
            let due = start + gap * i as u32;
            tokio::time::sleep_until(due.into()).await;
            let conversation = format!("p{i}");
            sent_at.insert(conversation.clone(), Instant::now());
            alerts.submit(notice(conversation, kefu::time::now_ms()));
        }
        while ok.requests().len() < paced {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut late: Vec<Duration> = ok
            .requests()
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
                let c = v["conversation"].as_str().unwrap_or_default();
                sent_at.get(c).map_or(Duration::ZERO, |s| r.received.saturating_duration_since(*s))
            })
            .collect();
        late.sort();
        println!(
            "lateness submit → webhook, {paced} alerts at {rate}/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&late, 0.5).as_secs_f64() * 1e3,
            percentile(&late, 0.99).as_secs_f64() * 1e3,
            late.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        alerts.shutdown(Duration::from_secs(1)).await;
        anyhow::Ok(())
    })
}

//! Scoring against a real SQLite file: the nightly job's idempotence across reruns and
//! restarts, the ledger cap over a month, appeals, order import and attribution, exact
//! pay through the whole path, reports and catch-up.

use std::path::Path;

use chrono::NaiveDate;
use kefu::event::{self, Event};
use kefu::scoring::{job, ledger, orders, sheet};
use kefu::store::Store;
use kefu::time::{Millis, parse_rfc3339_ms};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn d(s: &str) -> NaiveDate {
    kefu::time::parse_day(s).unwrap()
}

fn t(s: &str) -> Millis {
    parse_rfc3339_ms(s).unwrap()
}

fn store_lines(store: &mut Store, lines: &[String]) {
    let events: Vec<Event> = lines.iter().map(|l| event::parse(l).unwrap()).collect();
    store.insert_events(events.iter().zip(lines.iter().map(String::as_str))).unwrap();
}

fn msg(id: &str, ts: &str, customer: &str, agent: &str, from: &str) -> String {
    format!(
        r#"{{"type":"message","id":"{id}","ts":"{ts}","shop":"s","conversation":"c-{customer}","customer":"{customer}","agent":"{agent}","from":"{from}","text":"在吗"}}"#
    )
}

fn order(id: &str, ts: &str, customer: &str, order: &str, status: &str, amount: &str) -> String {
    format!(
        r#"{{"type":"order","id":"{id}","ts":"{ts}","shop":"s","customer":"{customer}","order":"{order}","status":"{status}","amount":"{amount}","shipping":"10"}}"#
    )
}

fn wait(store: &Store, conv: &str, start: &str, secs: i64, agent: &str, outcome: &str) {
    let s = t(start);
    store
        .conn()
        .execute(
            "INSERT INTO waits (conversation, start, end, shop, customer, agent, outcome, deadline_ms, load, first) \
             VALUES (?1, ?2, ?3, 's', 'b', ?4, ?5, 20000, 1, 0)",
            rusqlite::params![conv, s, s + secs * 1000, agent, outcome],
        )
        .unwrap();
}

/// A day of two agents: A closes b1 (B assisted), b2 is unanswered, b3 buys silently.
fn seed_day(store: &mut Store) {
    let lines = vec![
        msg("1", "2026-11-11T09:00:00+08:00", "b1", "B", "customer"),
        msg("2", "2026-11-11T09:00:15+08:00", "b1", "B", "agent"),
        msg("3", "2026-11-11T09:10:00+08:00", "b1", "A", "customer"),
        msg("4", "2026-11-11T09:10:30+08:00", "b1", "A", "agent"),
        msg("5", "2026-11-11T10:00:00+08:00", "b2", "A", "customer"),
        order("6", "2026-11-11T11:00:00+08:00", "b1", "o1", "created", "310"),
        order("7", "2026-11-11T11:02:00+08:00", "b1", "o1", "paid", "310"),
        msg("8", "2026-11-11T12:00:00+08:00", "b1", "B", "agent"),
        order("9", "2026-11-11T13:00:00+08:00", "b3", "o3", "created", "110"),
        order("10", "2026-11-11T13:01:00+08:00", "b3", "o3", "paid", "110"),
        msg("11", "2026-11-12T09:00:00+08:00", "b4", "A", "customer"),
        msg("12", "2026-11-12T09:00:10+08:00", "b4", "A", "agent"),
    ];
    store_lines(store, &lines);
    wait(store, "c-b1", "2026-11-11T09:00:00+08:00", 15, "B", "answered");
    wait(store, "c-b1", "2026-11-11T09:10:00+08:00", 30, "A", "answered");
    wait(store, "c-b2", "2026-11-11T10:00:00+08:00", 900, "A", "unanswered");
    wait(store, "c-b4", "2026-11-12T09:00:00+08:00", 10, "A", "answered");
}

/// Every row the job writes (job_runs aside: it records when the job ran).
fn dump(store: &Store) -> Vec<String> {
    let mut out = vec![];
    for (table, order) in [
        ("daily_metrics", "day, agent"),
        ("daily_breaches", "day, agent, hour"),
        ("daily_response_hist", "day, agent, bucket"),
        ("daily_shop", "day"),
        ("scores", "month, agent"),
        ("score_lines", "month, agent, position"),
    ] {
        out.push(format!("== {table}"));
        out.extend(
            kefu::scoring::report::table_csv(store.conn(), table, order).unwrap().lines().map(String::from),
        );
    }
    out
}

#[test]
fn job_twice_or_after_reopen_gives_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let sheet = sheet::Sheet::default();
    let first = {
        let mut s = Store::open(&path).unwrap();
        seed_day(&mut s);
        job::score_range(&mut s, &sheet, d("2026-11-11"), d("2026-11-11"), 1).unwrap();
        dump(&s)
    };
    // Same process, same day again.
    let mut s = Store::open(&path).unwrap();
    job::score_range(&mut s, &sheet, d("2026-11-11"), d("2026-11-11"), 2).unwrap();
    assert_eq!(dump(&s), first);
    drop(s);
    // After a restart (reopen), the day once more, and then as part of a range that is cut back.
    let mut s = Store::open(&path).unwrap();
    job::score_range(&mut s, &sheet, d("2026-11-11"), d("2026-11-11"), 3).unwrap();
    assert_eq!(dump(&s), first);
    let daily: i64 = s.conn().query_row("SELECT COUNT(*) FROM daily_metrics", [], |r| r.get(0)).unwrap();
    assert_eq!(daily, 2, "A and B, one row each: rerunning replaced, never added");

    // The figures themselves.
    let row = |agent: &str| -> (i64, i64, i64, i64, i64, String, i64, i64) {
        s.conn()
            .query_row(
                "SELECT consulted, replied, unreplied, ordered, paid, sales, assist_orders, breaches FROM daily_metrics WHERE day = '2026-11-11' AND agent = ?1",
                [agent],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
            )
            .unwrap()
    };
    assert_eq!(row("A"), (2, 1, 1, 1, 1, "300".into(), 0, 2));
    // B only assisted b1's order (A closed it): b1 is out of B's 咨询人数 (seed 000).
    assert_eq!(row("B"), (0, 0, 0, 0, 0, "0".into(), 1, 0));
    let follow: (i64, String) = s
        .conn()
        .query_row(
            "SELECT assist_follow, assist_follow_amount FROM daily_metrics WHERE agent = 'B'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(follow, (1, "310".into()));
    let shop: (i64, String) = s
        .conn()
        .query_row(
            "SELECT silent_orders, unattended_sales FROM daily_shop WHERE day = '2026-11-11'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(shop, (1, "100".into()));
}

#[test]
fn a_month_of_ledger_entries_is_held_within_plus_minus_20() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let sheet = sheet::Sheet::default();
    let c = s.conn();
    // 低分: 迟到 −2 on ten days and an argument (−10): −30 → held at −20 → 60.
    for day in 1..=10 {
        let e = ledger::NewEntry {
            agent: "低分".into(),
            day: NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
            points: dec!(-2),
            source: "supervisor",
            category: Some("A".into()),
            reason: "迟到".into(),
            reference: None,
            minutes: None,
        };
        ledger::add(c, &e, 0).unwrap();
    }
    ledger::add_finding(c, "低分", d("2026-11-20"), "conflict", dec!(-10), "finding-1", 0).unwrap();
    // A repeated finding is not counted twice.
    ledger::add_finding(c, "低分", d("2026-11-20"), "conflict", dec!(-10), "finding-1", 0).unwrap();
    // 高分: +5 six times = +30 → held at +20 → 100.
    for day in [3, 6, 9, 12, 15, 18] {
        let e = ledger::NewEntry {
            agent: "高分".into(),
            day: NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
            points: dec!(5),
            source: "supervisor",
            category: None,
            reason: "顶班".into(),
            reference: None,
            minutes: None,
        };
        ledger::add(c, &e, 0).unwrap();
    }
    // 中: −3 and +1 → 78; a December entry does not count in November.
    for (day, p) in [("2026-11-05", dec!(-3)), ("2026-11-30", dec!(1)), ("2026-12-01", dec!(-9))] {
        let e = ledger::NewEntry {
            agent: "中".into(),
            day: d(day),
            points: p,
            source: "supervisor",
            category: None,
            reason: "x".into(),
            reference: None,
            minutes: None,
        };
        ledger::add(c, &e, 0).unwrap();
    }
    // Some activity so the month has a stored day.
    store_lines(&mut s, &[msg("m", "2026-11-02T10:00:00+08:00", "b", "中", "customer")]);
    job::score_range(&mut s, &sheet, d("2026-11-01"), d("2026-11-30"), 0).unwrap();
    let points = |agent: &str| -> (String, String) {
        s.conn()
            .query_row(
                "SELECT s.ledger_points, l.points FROM scores s JOIN score_lines l ON l.month = s.month AND l.agent = s.agent AND l.indicator = 'execution' WHERE s.month = '2026-11' AND s.agent = ?1",
                [agent],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    assert_eq!(points("低分"), ("60".into(), "60".into()));
    assert_eq!(points("高分"), ("100".into(), "100".into()));
    assert_eq!(points("中"), ("78".into(), "60".into()));
}

#[test]
fn appeals_open_within_the_window_and_an_overturn_voids_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let sheet = sheet::Sheet::default();
    let published = t("2026-11-05T18:00:00+08:00");
    let e = ledger::NewEntry {
        agent: "A".into(),
        day: d("2026-11-05"),
        points: dec!(-10),
        source: "supervisor",
        category: Some("C".into()),
        reason: "与客户发生争执".into(),
        reference: None,
        minutes: None,
    };
    let id = ledger::add(s.conn(), &e, published).unwrap();
    let late = published + sheet.appeal_window_ms + 1;
    let err = ledger::open_dispute(s.conn(), id, "客户先骂人", late, sheet.appeal_window_ms).unwrap_err();
    assert!(err.to_string().contains("appeals closed 11-06 18:00:00 (24 h window)"), "{err}");
    let dispute =
        ledger::open_dispute(s.conn(), id, "客户先骂人", published + 3_600_000, sheet.appeal_window_ms)
            .unwrap();
    assert!(matches!(
        ledger::open_dispute(s.conn(), id, "again", published + 3_600_000, sheet.appeal_window_ms),
        Err(ledger::LedgerError::AlreadyDisputed(_))
    ));
    assert_eq!(ledger::open_disputes(s.conn()).unwrap().len(), 1);
    store_lines(&mut s, &[msg("m", "2026-11-05T10:00:00+08:00", "b", "A", "customer")]);
    job::score_range(&mut s, &sheet, d("2026-11-05"), d("2026-11-05"), 0).unwrap();
    let lp = |s: &Store| -> String {
        s.conn().query_row("SELECT ledger_points FROM scores WHERE agent = 'A'", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(lp(&s), "70", "an open dispute still counts");
    let html = kefu::scoring::report::month_page(s.conn(), &sheet, "2026-11").unwrap();
    assert!(
        html.contains(&format!("id=\"L{id}\""))
            && html.contains("复核中")
            && html.contains(&format!("D{dispute}"))
    );
    ledger::resolve(s.conn_mut(), dispute, true, "主管", "聊天记录核实", published + 7_200_000).unwrap();
    assert!(ledger::open_disputes(s.conn()).unwrap().is_empty());
    assert!(ledger::resolve(s.conn_mut(), dispute, false, "主管", "", 0).is_err());
    job::score_range(&mut s, &sheet, d("2026-11-05"), d("2026-11-05"), 0).unwrap();
    assert_eq!(lp(&s), "80");
}

/// Seed 000's scheme end to end: orders imported from a GBK export, a silent order's sales
/// shared as 公共销售提成, salary = 底薪 + 提成 × 得分% + 工龄, to the fen.
#[test]
fn seed_000_pay_parts_sum_to_a_known_figure_to_the_fen() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let mut text = std::fs::read_to_string("rules/examples/scoring_seed000.toml").unwrap();
    text += "\n[[agent]]\nid = \"A\"\nbase_salary = \"2800\"\nhired = \"2023-11-01\"\n\n[[agent]]\nid = \"B\"\n\n[[agent]]\nid = \"C\"\n";
    let sheet = sheet::parse(Path::new("scoring.toml"), &text).unwrap();
    store_lines(
        &mut s,
        &[
            msg("1", "2026-11-03T09:00:00+08:00", "b1", "A", "customer"),
            msg("2", "2026-11-03T09:00:05+08:00", "b1", "A", "agent"),
            msg("3", "2026-11-03T09:00:00+08:00", "b2", "B", "customer"),
            // b1 rates A 非常满意: 满意率 100 % for 客户满意度.
            r#"{"type":"evaluation","id":"4","ts":"2026-11-03T09:30:00+08:00","shop":"s","agent":"A","customer":"b1","conversation":"c-b1","score":"非常满意"}"#.to_string(),
        ],
    );
    let csv = "订单编号,买家会员名,买家实际支付金额,邮费,订单创建时间,订单付款时间\n\
               o1,b1,52355.67,10,2026-11-03 10:00:00,2026-11-03 10:01:00\n\
               o2,silent,40010.00,10,2026-11-04 10:00:00,2026-11-04 10:01:00\n";
    let file = dir.path().join("orders.csv");
    std::fs::write(&file, encoding_rs::GBK.encode(csv).0).unwrap();
    assert_eq!(orders::import(&mut s, &file, "s").unwrap(), (4, 4));
    assert_eq!(orders::import(&mut s, &file, "s").unwrap(), (4, 0), "importing twice adds nothing");
    for (ind, v) in [
        ("service_rating", "80"),
        ("resolution_rate", "90%"),
        ("efficiency", "90%"),
        ("teamwork", "80%"),
        ("growth", "90%"),
    ] {
        s.conn()
            .execute(
                "INSERT INTO score_inputs VALUES ('2026-11', 'A', ?1, ?2)",
                [ind, &sheet::parse_number(v).unwrap().to_string()],
            )
            .unwrap();
    }
    job::score_range(&mut s, &sheet, d("2026-11-01"), d("2026-11-30"), 0).unwrap();
    let row: Vec<String> = s
        .conn()
        .query_row(
            "SELECT total, base_salary, seniority, commission_rate, personal_commission, public_commission, commission_paid, salary FROM scores WHERE month = '2026-11' AND agent = 'A'",
            [],
            |r| (0..8).map(|i| r.get::<_, String>(i)).collect(),
        )
        .unwrap();
    // The worked example's inputs + 销售额 52345.67 (> 50000: 80 × 20% = 16) + 客户满意度
    // 100 % (10) + 咨询转化率 1/1 = 100% (capped 100 × 10% = 10) → 16+9+16+10+9+8+9+10 = 87.
    assert_eq!(row[0], "87");
    assert_eq!(row[1], "2800.00");
    assert_eq!(row[2], "300.00");
    assert_eq!(row[3], "0.012");
    assert_eq!(row[4], "628.15"); // 52345.67 × 1.2% = 628.14804
    // 无人接待 40000 ÷ 3 agents × 0.5% = 66.666…
    assert_eq!(row[5], "66.67");
    // (628.14804 + 66.6666…) × 87% = 604.4887… → 604.49
    assert_eq!(row[6], "604.49");
    assert_eq!(row[7], "3704.49");
    let parts: Decimal = [&row[1], &row[2], &row[6]].iter().map(|v| v.parse::<Decimal>().unwrap()).sum();
    assert_eq!(parts.to_string(), row[7]);
}

#[test]
fn catch_up_runs_missed_days_and_writes_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    seed_day(&mut s);
    let sheet = sheet::Sheet::default();
    let reports = dir.path().join("reports");
    // First ever run at 00:31 on the 12th: the 11th.
    let out = job::run_due_with(&mut s, &sheet, Some(&reports), t("2026-11-12T00:31:00+08:00")).unwrap();
    assert_eq!(out.days, [d("2026-11-11")]);
    assert!(
        out.summary.contains("2026-11-11") && out.summary.contains("慢响应 2 次 (最多 A: 2)"),
        "{}",
        out.summary
    );
    // Again the same night: nothing due.
    assert_eq!(
        job::run_due_with(&mut s, &sheet, Some(&reports), t("2026-11-12T08:00:00+08:00")).unwrap().days,
        []
    );
    // Down until the 14th 09:00: the 12th and 13th are due; the 11th, scored before and
    // inside the attribution window, is revisited (an order since may make assists of it).
    let out = job::run_due_with(&mut s, &sheet, Some(&reports), t("2026-11-14T09:00:00+08:00")).unwrap();
    assert_eq!(out.days, [d("2026-11-11"), d("2026-11-12"), d("2026-11-13")]);
    for f in [
        "day-2026-11-11.html",
        "day-2026-11-13.html",
        "month-2026-11.html",
        "scores.csv",
        "daily_metrics.csv",
    ] {
        assert!(reports.join(f).exists(), "{f}");
    }
    let day = std::fs::read_to_string(reports.join("day-2026-11-11.html")).unwrap();
    assert!(!day.contains("http://") && !day.contains("https://") && !day.contains("src="), "self-contained");
    assert!(!day.contains(">b1<") && !day.contains("c-b1"), "buyers are not shown");
    let csv = std::fs::read_to_string(reports.join("scores.csv")).unwrap();
    assert!(csv.starts_with("\u{feff}month,agent,through,total"), "UTF-8 BOM for Excel: {csv}");
    assert!(csv.contains("2026-11,A,2026-11-13,"), "{csv}");
}

/// The clock-derived metrics agree with the clock's own report on every clock fixture:
/// the events go through the engine, its waits into the `waits` table (as replay stores
/// them), and scoring's daily figures must match the report's per agent and day.
#[test]
fn clock_metrics_match_the_engine_report_on_its_fixtures() {
    use kefu::engine::Output;
    let mut compared = 0;
    for entry in std::fs::read_dir("tests/data/clock").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| event::parse(l).is_ok()).collect();
        if lines.is_empty() {
            continue;
        }
        let mut pipeline = kefu::replay::Pipeline::new(Default::default());
        let mut waits = vec![];
        for l in &lines {
            pipeline.push(&event::parse(l).unwrap());
            waits.extend(pipeline.outputs().iter().filter_map(|o| match o {
                Output::WaitEnded(w) => Some(w.clone()),
                _ => None,
            }));
        }
        let (report, rest) = pipeline.finish();
        waits.extend(rest.iter().filter_map(|o| match o {
            Output::WaitEnded(w) => Some(w.clone()),
            _ => None,
        }));
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("k.db")).unwrap();
        let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        store_lines(&mut s, &owned);
        kefu::replay::save_waits(s.conn(), &waits).unwrap();
        let Some(first) = report.agents.iter().map(|a| d(&a.date)).min() else { continue };
        let last = report.agents.iter().map(|a| d(&a.date)).max().unwrap();
        job::score_range(&mut s, &sheet::Sheet::default(), first, last, 0).unwrap();
        for a in &report.agents {
            let got: (i64, i64, i64, i64, i64, i64, i64, i64) = s
                .conn()
                .query_row(
                    "SELECT consulted, replied, waits, answered, unanswered, transferred, breaches, response_ms FROM daily_metrics WHERE day = ?1 AND agent = ?2",
                    [&a.date, &a.agent],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
                )
                .unwrap_or_else(|e| panic!("{}: {} {}: {e}", path.display(), a.agent, a.date));
            let want = (
                i64::from(a.customers),
                i64::from(a.replied_customers),
                i64::from(a.waits),
                i64::from(a.answered),
                i64::from(a.unanswered),
                i64::from(a.transferred),
                i64::from(a.breaches),
            );
            assert_eq!(
                (got.0, got.1, got.2, got.3, got.4, got.5, got.6),
                want,
                "{} {} {}",
                path.display(),
                a.agent,
                a.date
            );
            let avg = (got.3 > 0).then(|| got.7 as f64 / got.3 as f64 / 1000.0);
            match (avg, a.avg_response_s) {
                (Some(x), Some(y)) => assert!((x - y).abs() < 0.001, "{}: {x} vs {y}", path.display()),
                (x, y) => assert_eq!(x.is_some(), y.is_some(), "{}", path.display()),
            }
            compared += 1;
        }
    }
    assert!(compared >= 5, "compared only {compared} agent-days");
}

fn kefu(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kefu")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn cli_ledger_score_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let db = db.to_str().unwrap();
    {
        let mut s = Store::open(Path::new(db)).unwrap();
        seed_day(&mut s);
    }
    let (ok, out) = kefu(&[
        "ledger",
        "add",
        "--agent",
        "A",
        "--points",
        "-5",
        "--reason",
        "迟到",
        "--date",
        "2026-11-11",
        "--db",
        db,
    ]);
    assert!(ok && out.starts_with("L1: A -5 迟到 on 2026-11-11"), "{out}");
    let (ok, out) = kefu(&["ledger", "add", "--agent", "A", "--points", "five", "--reason", "x", "--db", db]);
    assert!(!ok && out.contains("--points `five`: expected a number"), "{out}");
    let (ok, out) = kefu(&["ledger", "dispute", "--entry", "1", "--reason", "打卡机故障", "--db", db]);
    assert!(ok && out.contains("D1: dispute of L1 opened"), "{out}");
    let (ok, out) = kefu(&["ledger", "disputes", "--db", db]);
    assert!(ok && out.contains("D1 L1") && out.contains("打卡机故障"), "{out}");
    let reports = dir.path().join("reports");
    let (ok, out) =
        kefu(&["score", "--db", db, "--date", "2026-11-11", "--reports", reports.to_str().unwrap()]);
    assert!(
        ok && out.contains("scored 1 day(s) 2026-11-11…2026-11-11") && out.contains("待复核 1 条"),
        "{out}"
    );
    assert!(reports.join("day-2026-11-11.html").exists());
    let (ok, out) = kefu(&["ledger", "resolve", "--dispute", "1", "--overturn", "--by", "主管", "--db", db]);
    assert!(ok && out.contains("overturned"), "{out}");
    let (ok, out) = kefu(&["score", "--db", db, "--date", "2026-11-31"]);
    assert!(!ok && out.contains("--date `2026-11-31`: expected YYYY-MM-DD"), "{out}");

    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let bad =
        std::fs::read_to_string("rules/scoring.toml").unwrap().replacen("weight = 22", "weight = 21", 1);
    std::fs::write(rules.join("scoring.toml"), bad).unwrap();
    let (ok, out) = kefu(&["check", "--rules", rules.to_str().unwrap()]);
    assert!(
        !ok && out.contains("scoring.toml:") && out.contains("indicator weights sum to 99, expected 100"),
        "{out}"
    );
}

/// Three months below 70 flag 淘汰 review; rescoring an earlier month carries into later ones.
#[test]
fn three_months_below_70_in_a_row_are_flagged_for_review() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let sheet = sheet::Sheet::default();
    // One buyer question a month for A, never answered: A scores low every month.
    for (i, day) in ["2026-09-10", "2026-10-10", "2026-11-10"].iter().enumerate() {
        store_lines(&mut s, &[msg(&format!("q{i}"), &format!("{day}T10:00:00+08:00"), "b", "A", "customer")]);
    }
    for day in ["2026-10-10", "2026-11-10", "2026-09-10"] {
        job::score_range(&mut s, &sheet, d(day), d(day), 0).unwrap();
    }
    let flags: Vec<(String, i64, i64)> = {
        let mut st = s
            .conn()
            .prepare("SELECT month, below_streak, review FROM scores WHERE agent = 'A' ORDER BY month")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(flags, [("2026-09".into(), 1, 0), ("2026-10".into(), 2, 0), ("2026-11".into(), 3, 1)]);
}

fn transfer(id: &str, ts: &str, customer: &str, from: &str, to: &str) -> String {
    format!(
        r#"{{"type":"transfer","id":"{id}","ts":"{ts}","shop":"s","conversation":"c-{customer}","from_agent":"{from}","to_agent":"{to}"}}"#
    )
}

/// Seed 000: 谁落实算谁的, 其他客服便计入协助服务, 不影响他们的转化率统计; 协助跟进…不会计入
/// 客服的正常绩效中. x answers buyer `b` and transfers to y, who closes the order; z later
/// answers b about shipping. x and z each have two buyers of their own, one ordering:
/// 1/2 = 50 % with or without b (1/3 would fall below the 40 % tier).
#[test]
fn assisted_and_followed_up_buyers_leave_the_assistants_conversion_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let day = "2026-11-11T";
    let mut lines = vec![];
    // x's and z's own buyers: one of two orders with each.
    for (agent, h) in [("x", 9), ("z", 10)] {
        for (i, buyer) in [format!("{agent}1"), format!("{agent}2")].iter().enumerate() {
            let at = |m: u32| format!("{day}{h:02}:{:02}:00+08:00", i as u32 * 20 + m);
            lines.push(msg(&format!("{buyer}q"), &at(0), buyer, agent, "customer"));
            lines.push(msg(&format!("{buyer}a"), &at(1), buyer, agent, "agent"));
            if i == 0 {
                lines.push(order(
                    &format!("{buyer}o"),
                    &at(5),
                    buyer,
                    &format!("o-{buyer}"),
                    "created",
                    "100",
                ));
            }
        }
    }
    // The shared buyer: x answers, transfers to y, y closes; z answers after the order.
    lines.extend([
        msg("b1", &format!("{day}11:00:00+08:00"), "b", "x", "customer"),
        msg("b2", &format!("{day}11:00:20+08:00"), "b", "x", "agent"),
        transfer("b3", &format!("{day}11:01:00+08:00"), "b", "x", "y"),
        msg("b4", &format!("{day}11:01:30+08:00"), "b", "y", "customer"),
        msg("b5", &format!("{day}11:01:40+08:00"), "b", "y", "agent"),
        order("b6", &format!("{day}11:10:00+08:00"), "b", "o-b", "created", "300"),
        order("b7", &format!("{day}11:11:00+08:00"), "b", "o-b", "paid", "300"),
        msg("b8", &format!("{day}15:00:00+08:00"), "b", "z", "customer"),
        msg("b9", &format!("{day}15:00:30+08:00"), "b", "z", "agent"),
    ]);
    store_lines(&mut s, &lines);
    job::score_range(&mut s, &sheet::Sheet::default(), d("2026-11-11"), d("2026-11-11"), 0).unwrap();
    let row = |agent: &str| -> (i64, i64, i64, i64, i64, i64) {
        s.conn()
            .query_row(
                "SELECT consulted, replied, ordered, assisted, assist_orders, assist_follow FROM daily_metrics WHERE agent = ?1",
                [agent],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap()
    };
    // (咨询, 回复, 下单, 协助 buyers left out, 协助下单, 协助跟进)
    assert_eq!(row("x"), (2, 2, 1, 1, 1, 0), "x assisted b before the order");
    assert_eq!(row("y"), (1, 1, 1, 0, 0, 0), "y closed b: the closer's counts are unchanged");
    assert_eq!(row("z"), (2, 2, 1, 1, 0, 1), "z followed b up after the order");
    let conversion = |agent: &str| -> (Option<String>, String) {
        s.conn()
            .query_row(
                "SELECT value, points FROM score_lines WHERE month = '2026-11' AND agent = ?1 AND indicator = 'consult_conversion'",
                [agent],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    assert_eq!(conversion("x"), (Some("0.5".into()), "100".into()));
    assert_eq!(conversion("z"), (Some("0.5".into()), "100".into()));
    assert_eq!(conversion("y"), (Some("1".into()), "100".into()));
}

/// The order comes on the day after x's only contact: rescoring x's day (as the nightly job's
/// revisit does) takes b out of x's 咨询人数 once the order exists.
#[test]
fn an_order_the_next_day_makes_the_earlier_contact_an_assist() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    store_lines(
        &mut s,
        &[
            msg("1", "2026-11-11T22:00:00+08:00", "b", "x", "customer"),
            msg("2", "2026-11-11T22:00:10+08:00", "b", "x", "agent"),
            msg("3", "2026-11-12T09:00:00+08:00", "b", "y", "customer"),
            msg("4", "2026-11-12T09:00:10+08:00", "b", "y", "agent"),
            order("5", "2026-11-12T09:30:00+08:00", "b", "o", "created", "50"),
        ],
    );
    job::score_range(&mut s, &sheet::Sheet::default(), d("2026-11-11"), d("2026-11-11"), 0).unwrap();
    let x: (i64, i64) = s
        .conn()
        .query_row(
            "SELECT consulted, assisted FROM daily_metrics WHERE day = '2026-11-11' AND agent = 'x'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(x, (0, 1));
}

// ---- The seeds' schemes, each from its shipped example sheet (rules/examples/) ----

fn example(name: &str, extra: &str) -> sheet::Sheet {
    let path = format!("rules/examples/{name}");
    let text = std::fs::read_to_string(&path).unwrap() + extra;
    sheet::parse(Path::new(&path), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn entry(s: &Store, agent: &str, day: &str, category: &str, points: Decimal, minutes: Option<i64>) -> i64 {
    let e = ledger::NewEntry {
        agent: agent.into(),
        day: d(day),
        points,
        source: "supervisor",
        category: Some(category.into()),
        reason: category.into(),
        reference: None,
        minutes,
    };
    ledger::add(s.conn(), &e, 0).unwrap()
}

fn input(s: &Store, agent: &str, key: &str, value: &str) {
    s.conn()
        .execute(
            "INSERT INTO score_inputs VALUES ('2026-11', ?1, ?2, ?3)",
            rusqlite::params![agent, key, value],
        )
        .unwrap();
}

/// Named columns of an agent's November score row.
fn score_cols(s: &Store, agent: &str, cols: &str) -> Vec<String> {
    let n = cols.split(',').count();
    s.conn()
        .query_row(
            &format!("SELECT {cols} FROM scores WHERE month = '2026-11' AND agent = ?1"),
            [agent],
            |r| {
                (0..n)
                    .map(|i| match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Ok(String::from("NULL")),
                        rusqlite::types::ValueRef::Integer(v) => Ok(v.to_string()),
                        v => Ok(v.as_str().unwrap_or("?").to_string()),
                    })
                    .collect()
            },
        )
        .unwrap_or_else(|e| panic!("{agent}: {e}"))
}

/// One buyer for each agent on the 2nd so the month has a stored day.
fn touch(s: &mut Store, agents: &[&str]) {
    let lines: Vec<String> = agents
        .iter()
        .map(|a| msg(&format!("t-{a}"), "2026-11-02T10:00:00+08:00", &format!("tb-{a}"), a, "customer"))
        .collect();
    store_lines(s, &lines);
}

/// Seed 000 淘宝客服绩效考核表: 迟到早退每次 1 分，超过 4 次每次 3 分，旷工一次 10 分，迟到 30
/// 分钟以上按旷工计算; 游戏 −20; 表扬 +1, 投诉 −2 — counted in the month by the sheet's rules.
#[test]
fn seed_000_ledger_counts_occurrences_in_the_month() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let sheet = example("scoring_seed000.toml", "");
    // A: late on six days, the 4th of them 45 minutes (= one 旷工, not a lateness), one
    // absence; the five short ones cost 1, 1, 1, 1, 3.
    for (day, minutes) in [(3, 5), (4, 10), (5, 20), (6, 45), (9, 30), (10, 8)] {
        entry(&s, "A", &format!("2026-11-{day:02}"), "迟到早退", dec!(0), Some(minutes));
    }
    entry(&s, "A", "2026-11-20", "旷工", dec!(0), None);
    // B: one lateness later overturned on appeal (not an occurrence), a game (−20), two
    // praises (+1 each), one complaint (−2), and one unruled entry with its own points.
    let overturned = entry(&s, "B", "2026-11-03", "迟到早退", dec!(0), Some(3));
    entry(&s, "B", "2026-11-04", "游戏影视", dec!(0), None);
    entry(&s, "B", "2026-11-05", "表扬", dec!(0), None);
    entry(&s, "B", "2026-11-06", "表扬", dec!(0), None);
    entry(&s, "B", "2026-11-07", "投诉", dec!(0), None);
    entry(&s, "B", "2026-11-08", "其他", dec!(-1.5), None);
    let dispute = ledger::open_dispute(s.conn(), overturned, "打卡机故障", 1, i64::MAX).unwrap();
    ledger::resolve(s.conn_mut(), dispute, true, "主管", "", 2).unwrap();
    touch(&mut s, &["A", "B"]);
    job::score_range(&mut s, &sheet, d("2026-11-01"), d("2026-11-30"), 0).unwrap();
    // 20 − (1+1+1+1+3) − 10 (45 min) − 10 (旷工) = −7: no cap (上不封顶).
    assert_eq!(score_cols(&s, "A", "ledger_points"), ["-7"]);
    // 20 − 20 + 1 + 1 − 2 − 1.5 = −1.5
    assert_eq!(score_cols(&s, "B", "ledger_points"), ["-1.5"]);
}

/// Seed 000 §三's worked example (68) from the shipped sheet: the six supervisor rows entered,
/// 客户满意度 from 20 buyers' ratings (17 satisfied = 85 %), 其他 from 咨询转化率 39 %.
#[test]
fn seed_000_worked_example_scores_68_from_inputs_and_ratings() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let sheet = example("scoring_seed000.toml", "");
    let mut lines = vec![];
    for i in 0..100 {
        let b = format!("b{i:03}");
        let ts = |m: u32| format!("2026-11-05T{:02}:{:02}:{m:02}+08:00", 8 + i / 60, i % 60);
        lines.push(msg(&format!("{b}q"), &ts(0), &b, "A", "customer"));
        lines.push(msg(&format!("{b}a"), &ts(5), &b, "A", "agent"));
        if i < 39 {
            lines.push(order(&format!("{b}o"), &ts(30), &b, &format!("o{b}"), "created", "20"));
        }
        if i < 20 {
            let score = if i < 17 { 5 - i % 2 } else { 3 - i % 2 };
            lines.push(format!(
                r#"{{"type":"evaluation","id":"{b}v","ts":"{}","shop":"s","agent":"A","customer":"{b}","conversation":"c-{b}","score":{score}}}"#,
                ts(50)
            ));
        }
    }
    store_lines(&mut s, &lines);
    for (key, v) in [
        ("service_rating", "80"),
        ("resolution_rate", "0.9"),
        ("efficiency", "0.9"),
        ("teamwork", "0.8"),
        ("growth", "0.9"),
    ] {
        input(&s, "A", key, v);
    }
    job::score_range(&mut s, &sheet, d("2026-11-01"), d("2026-11-30"), 0).unwrap();
    let (ratings, satisfied): (i64, i64) = s
        .conn()
        .query_row("SELECT ratings, satisfied FROM daily_metrics WHERE agent = 'A'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((ratings, satisfied), (20, 17));
    let weighted: Vec<(String, String)> = {
        let mut st = s
            .conn()
            .prepare("SELECT indicator, weighted FROM score_lines WHERE agent = 'A' ORDER BY position")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    let want = [
        ("service_rating", "16"),
        ("resolution_rate", "9"),
        ("sales", "0"),
        ("satisfaction", "8.5"),
        ("efficiency", "9"),
        ("teamwork", "8"),
        ("growth", "9"),
        ("conversion", "8.5"),
    ];
    assert_eq!(weighted, want.map(|(k, v)| (k.to_string(), v.to_string())));
    assert_eq!(score_cols(&s, "A", "total, missing"), ["68", ""]);
}

/// Seed 003 第三条: 80 ± 20 points; 每扣 1 分等于 10 元, 每增加 5 分薪资增加一级; the month an
/// agent joins scores without floating pay.
#[test]
fn seed_003_ledger_points_become_money_and_levels_from_the_second_month() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let roster = "\n[[agent]]\nid = \"A\"\n[[agent]]\nid = \"B\"\n[[agent]]\nid = \"C\"\nhired = \"2026-11-09\"\n\
                  [[agent]]\nid = \"D\"\nhired = \"2026-10-31\"\n[[agent]]\nid = \"E\"\n";
    let sheet = example("scoring_seed003.toml", roster);
    let default =
        sheet::Sheet { agents: sheet.agents.clone(), name: sheet.name.clone(), ..Default::default() };
    assert_eq!(sheet, default, "the example is the shipped default sheet");
    entry(&s, "A", "2026-11-03", "A", dec!(-3), None); // A class, 3 points
    entry(&s, "A", "2026-11-04", "旷工", dec!(0), None); // C class by the rule: 10
    for day in ["2026-11-05", "2026-11-06", "2026-11-07"] {
        entry(&s, "B", day, "加分", dec!(4), None);
    }
    entry(&s, "C", "2026-11-10", "A", dec!(-5), None);
    entry(&s, "C", "2026-11-11", "加分", dec!(5), None);
    entry(&s, "C", "2026-11-12", "加分", dec!(5), None);
    entry(&s, "D", "2026-11-12", "加分", dec!(25), None);
    entry(&s, "E", "2026-11-12", "C", dec!(-30), None);
    touch(&mut s, &["A", "B", "C", "D", "E"]);
    job::score_range(&mut s, &sheet, d("2026-11-01"), d("2026-11-30"), 0).unwrap();
    let row = |a: &str| score_cols(&s, a, "ledger_points, ledger_pay, pay_levels");
    assert_eq!(row("A"), ["67", "-130.00", "0"], "13 points below 80 × 10 元");
    assert_eq!(row("B"), ["92", "100.00", "2"], "+12: two full steps of 5 (50 元 a level)");
    assert_eq!(row("C"), ["85", "0.00", "0"], "joined this month: scored, pay does not float");
    assert_eq!(row("D"), ["100", "200.00", "4"], "+25 held at +20: four levels");
    assert_eq!(row("E"), ["60", "-200.00", "0"], "−30 held at −20");
}

fn seed_002_month(s: &mut Store, tie: bool) {
    // (agent, four areas entered — 考勤 is left to its default 20 — and ledger cases)
    let r = if tie { "12" } else { "15" };
    let agents: [(&str, [&str; 4], &[&str]); 5] = [
        ("P", ["20", "20", "20", "20"], &["电话表扬", "电话表扬", "好评点名", "好评点名", "表现突出"]),
        ("Q", ["18", "18", "18", "16"], &["表现突出"]),
        ("R", [r, r, r, r], &[]),
        ("S", ["10", "10", "10", "10"], &[]),
        ("T", ["5", "5", "5", "5"], &["无关网页"]),
    ];
    for (a, areas, cases) in agents {
        for (key, v) in ["quality", "execution", "complaints", "typing"].iter().zip(areas) {
            input(s, a, key, v);
        }
        for (i, c) in cases.iter().enumerate() {
            entry(s, a, &format!("2026-11-{:02}", 3 + i), c, dec!(0), None);
        }
    }
    if tie {
        // R: 12 × 4 + 20 = 68, + 10 + 10 + 5 + 5 + 1 + 1 = 100, level with Q.
        for (day, c) in [
            (20, "表现突出"),
            (21, "表现突出"),
            (22, "电话表扬"),
            (23, "电话表扬"),
            (24, "好评点名"),
            (25, "好评点名"),
        ] {
            entry(s, "R", &format!("2026-11-{day}"), c, dec!(0), None);
        }
    }
    touch(s, &["P", "Q", "R", "S", "T"]);
}

/// Seed 002: five 20-point areas plus 加分/扣分, levels 底级 40 / 初级 60 / 中级 80 / 高级 100 /
/// 特级 120 with 300 / 400 / 500 / 800 / 1000 元; 浏览无关网页 also costs 100 元 of the bonus.
#[test]
fn seed_002_levels_by_total_pay_their_bonus() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    seed_002_month(&mut s, false);
    let sheet = example("scoring_seed002.toml", "");
    job::score_range(&mut s, &sheet, d("2026-11-01"), d("2026-11-30"), 0).unwrap();
    let cols = "total, grade, grade_bonus, ledger_pay, salary";
    // P: 100 + 5 + 5 + 1 + 1 + 10 = 122
    assert_eq!(score_cols(&s, "P", cols), ["122", "特级客服", "1000.00", "0.00", "1000.00"]);
    // Q: 18 × 3 + 16 + 20 (考勤 default) + 10 = 100
    assert_eq!(score_cols(&s, "Q", cols), ["100", "高级客服", "800.00", "0.00", "800.00"]);
    assert_eq!(score_cols(&s, "R", cols), ["80", "中级客服", "500.00", "0.00", "500.00"]);
    assert_eq!(score_cols(&s, "S", cols), ["60", "初级客服", "400.00", "0.00", "400.00"]);
    // T: 40 − 20 = 20, below 40 still 底级; the case costs 100 元.
    assert_eq!(score_cols(&s, "T", cols), ["20", "底级客服", "300.00", "-100.00", "200.00"]);
}

/// Seed 002 排序工资法: 1000, 800, 600 … by total, ties sharing the better position, never
/// below 300, and 300 for a total below 50.
#[test]
fn seed_002_ranked_bonus_by_position_with_ties_and_a_floor() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    seed_002_month(&mut s, true);
    let sheet = example("scoring_seed002_ranked.toml", "");
    job::score_range(&mut s, &sheet, d("2026-11-01"), d("2026-11-30"), 0).unwrap();
    let cols = "total, rank, ranked_bonus, grade_bonus";
    assert_eq!(score_cols(&s, "P", cols), ["122", "1", "1000.00", "0.00"]);
    // Q and R tie at 100: both second (800); S is fourth, not third.
    assert_eq!(score_cols(&s, "Q", cols), ["100", "2", "800.00", "0.00"]);
    assert_eq!(score_cols(&s, "R", cols), ["100", "2", "800.00", "0.00"]);
    assert_eq!(score_cols(&s, "S", cols), ["60", "4", "400.00", "0.00"]);
    assert_eq!(score_cols(&s, "T", cols), ["20", "5", "300.00", "0.00"]);
}

/// Seed 004: 30 points a month; the top three get +5/+3/+1; below 25 the bonus loses 10 %,
/// below 20 30 %, below 15 all of it.
#[test]
fn seed_004_top_three_points_and_the_bonus_by_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let sheet = example("scoring_seed004.toml", "");
    let mut lines = vec![];
    // Each agent: one buyer, answered, who orders and pays (100 % conversion and reply rate);
    // sales decide the ranking: 12000 (100), 9000 (80), 7000 (60), 1000 (0 points).
    for (i, (a, sales)) in [("A", 12010), ("B", 9010), ("C", 7010), ("D", 1010)].iter().enumerate() {
        let b = format!("buyer-{a}");
        let at = |m: u32| format!("2026-11-0{}T10:{m:02}:00+08:00", i + 2);
        lines.push(msg(&format!("{a}1"), &at(0), &b, a, "customer"));
        lines.push(msg(&format!("{a}2"), &at(1), &b, a, "agent"));
        lines.push(order(&format!("{a}3"), &at(5), &b, &format!("o{a}"), "created", &sales.to_string()));
        lines.push(order(&format!("{a}4"), &at(6), &b, &format!("o{a}"), "paid", &sales.to_string()));
    }
    store_lines(&mut s, &lines);
    // A: two price cuts — a warning, then −2; B: one serious loss (−10); C: a serious loss and
    // shirking three times (0, −1, −1); D: two serious losses.
    entry(&s, "A", "2026-11-10", "私自降价", dec!(0), None);
    entry(&s, "A", "2026-11-11", "私自降价", dec!(0), None);
    entry(&s, "B", "2026-11-10", "重大错误", dec!(0), None);
    entry(&s, "C", "2026-11-10", "重大错误", dec!(0), None);
    for day in ["2026-11-11", "2026-11-12", "2026-11-13"] {
        entry(&s, "C", day, "推卸责任", dec!(0), None);
    }
    entry(&s, "D", "2026-11-10", "重大错误", dec!(0), None);
    entry(&s, "D", "2026-11-11", "重大错误", dec!(0), None);
    job::score_range(&mut s, &sheet, d("2026-11-01"), d("2026-11-30"), 0).unwrap();
    let cols = "total, rank, ledger_points, bonus";
    // 30 − 2 + 5 = 33: full bonus 1000 × 100 %.
    assert_eq!(score_cols(&s, "A", cols), ["100", "1", "33", "1000.00"]);
    // 30 − 10 + 3 = 23 (< 25): 1000 × 92 % × 90 %.
    assert_eq!(score_cols(&s, "B", cols), ["92", "2", "23", "828.00"]);
    // 30 − 12 + 1 = 19 (< 20): 1000 × 84 % × 70 %.
    assert_eq!(score_cols(&s, "C", cols), ["84", "3", "19", "588.00"]);
    // 30 − 20 = 10 (< 15): no bonus.
    assert_eq!(score_cols(&s, "D", cols), ["60", "4", "10", "0.00"]);
}

/// Every shipped example sheet passes `kefu check`; a broken one is named with its line.
#[test]
fn kefu_check_validates_every_example_sheet() {
    let (ok, out) = kefu(&["check", "--rules", "rules"]);
    assert!(ok, "{out}");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("examples")).unwrap();
    for f in std::fs::read_dir("rules/examples").unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, rules.join("examples").join(f.file_name().unwrap())).unwrap();
    }
    let bad = std::fs::read_to_string("rules/examples/scoring_seed002.toml").unwrap().replacen(
        "{ from = 1, points = -5 }",
        "{ from = 0, points = -5 }",
        1,
    );
    std::fs::write(rules.join("examples/scoring_seed002.toml"), bad).unwrap();
    let (ok, out) = kefu(&["check", "--rules", rules.to_str().unwrap()]);
    assert!(!ok && out.contains("scoring_seed002.toml:") && out.contains("ledger rule `投诉`"), "{out}");
}

// ---- Supervisor inputs through the binary: nothing silent, nothing half-stored ----

/// A shop with agents A and B in November's events, and the seed 000 sheet in `rules/`.
fn input_shop() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let mut s = Store::open(&db).unwrap();
    store_lines(
        &mut s,
        &[
            msg("1", "2026-11-03T09:00:00+08:00", "b1", "A", "customer"),
            msg("2", "2026-11-03T09:00:05+08:00", "b1", "A", "agent"),
            msg("3", "2026-11-03T09:10:00+08:00", "b2", "B", "customer"),
            msg("4", "2026-11-03T09:10:05+08:00", "b2", "B", "agent"),
        ],
    );
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::copy("rules/examples/scoring_seed000.toml", rules.join("scoring.toml")).unwrap();
    let (db, rules) = (db.to_str().unwrap().to_string(), rules.to_str().unwrap().to_string());
    (dir, db, rules)
}

fn inputs_of(db: &str) -> Vec<(String, String, String)> {
    let s = Store::open(Path::new(db)).unwrap();
    let mut st = s
        .conn()
        .prepare("SELECT agent, indicator, value FROM score_inputs ORDER BY agent, indicator")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn score_input_refuses_out_of_range_percent_unknown_agents_and_bad_lines() {
    let (dir, db, rules) = input_shop();
    let one = |agent: &str, ind: &str, v: &str| {
        kefu(&[
            "score-input",
            "--db",
            &db,
            "--rules",
            &rules,
            "--month",
            "2026-11",
            "--agent",
            agent,
            "--indicator",
            ind,
            "--value",
            v,
        ])
    };
    // Percent rows take 0–100: 90 is 90 %, stored as 0.9.
    let (ok, out) = one("A", "resolution_rate", "90");
    assert!(ok, "{out}");
    assert_eq!(inputs_of(&db), [("A".into(), "resolution_rate".into(), "0.9".into())]);
    for (agent, ind, v, want) in [
        ("A", "teamwork", "900", "out of range: this row takes a percentage from 0 to 100"),
        ("A", "teamwork", "-5", "out of range"),
        ("A", "service_rating", "120", "points from 0 to 100"),
        ("A", "teamwork", "1e2", "is not a number"),
        ("A", "teamwork", "99999999999999999999999", "is not a number"),
        ("Z", "teamwork", "80", "`Z` is not an agent of this shop"),
        ("A", "sales", "80", "`sales` is not an input indicator"),
    ] {
        let (ok, out) = one(agent, ind, v);
        assert!(!ok && out.contains(want), "{agent} {ind} {v}: {out}");
    }
    assert_eq!(inputs_of(&db).len(), 1, "nothing changed");

    // A grid as Excel saves it (GBK, Chinese headers); line 3 is bad: nothing is stored.
    let grid = "客服,综合服务评分,问题解决率,teamwork\nA,80,90%,80\nB,85,190,\nZ,70,,\n";
    let file = dir.path().join("inputs.csv");
    std::fs::write(&file, encoding_rs::GBK.encode(grid).0).unwrap();
    let import = |f: &std::path::Path| {
        kefu(&[
            "score-input",
            "import",
            f.to_str().unwrap(),
            "--month",
            "2026-11",
            "--db",
            &db,
            "--rules",
            &rules,
        ])
    };
    let (ok, out) = import(&file);
    assert!(!ok, "{out}");
    assert!(out.contains("inputs.csv:3: resolution_rate") && out.contains("`190` is out of range"), "{out}");
    assert!(out.contains("inputs.csv:4: `Z` is not an agent"), "{out}");
    assert!(out.contains("nothing was recorded"), "{out}");
    assert_eq!(inputs_of(&db).len(), 1, "all or nothing");
    // A malformed line (a cell too many) is named too.
    std::fs::write(&file, "agent,teamwork\nA,80\nB,70,60\n").unwrap();
    let (ok, out) = import(&file);
    assert!(!ok && out.contains("inputs.csv:3:") && out.contains("3 cells, expected 2"), "{out}");
    // An unknown column is refused, not ignored.
    std::fs::write(&file, "agent,teamwrok\nA,80\n").unwrap();
    let (ok, out) = import(&file);
    assert!(!ok && out.contains("teamwrok"), "{out}");
    assert_eq!(inputs_of(&db).len(), 1);
    // The good grid goes in whole.
    std::fs::write(
        &file,
        encoding_rs::GBK.encode("客服,综合服务评分,问题解决率,teamwork\nA,80,90%,80\nB,85,95,\n").0,
    )
    .unwrap();
    let (ok, out) = import(&file);
    assert!(ok && out.contains("5 value(s) for 2 agent(s)"), "{out}");
    assert_eq!(
        inputs_of(&db),
        [
            ("A".into(), "resolution_rate".into(), "0.9".into()),
            ("A".into(), "service_rating".into(), "80".into()),
            ("A".into(), "teamwork".into(), "0.8".into()),
            ("B".into(), "resolution_rate".into(), "0.95".into()),
            ("B".into(), "service_rating".into(), "85".into()),
        ]
    );
}

/// A value never entered is reported per agent and indicator and the score is marked
/// incomplete in the CSV, the month page and the summary — never a silent 0.
#[test]
fn missing_inputs_mark_the_score_incomplete_everywhere() {
    let (dir, db, rules) = input_shop();
    let file = dir.path().join("inputs.csv");
    std::fs::write(
        &file,
        "agent,service_rating,resolution_rate,efficiency,teamwork,growth\nA,80,90,90,80,90\nB,85,,90,,\n",
    )
    .unwrap();
    let (ok, out) = kefu(&[
        "score-input",
        "import",
        file.to_str().unwrap(),
        "--month",
        "2026-11",
        "--db",
        &db,
        "--rules",
        &rules,
    ]);
    assert!(ok, "{out}");
    let reports = dir.path().join("reports");
    let (ok, out) = kefu(&[
        "score",
        "--db",
        &db,
        "--rules",
        &rules,
        "--month",
        "2026-11",
        "--reports",
        reports.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("未完成 1 人") && out.contains("B (resolution_rate, teamwork, growth)"), "{out}");
    assert!(
        out.contains("【seed 000 薪酬考核制度】2026-11 (through 2026-11-"),
        "the month, not its last day: {out}"
    );
    let csv = std::fs::read_to_string(reports.join("scores.csv")).unwrap();
    let b_row = csv.lines().find(|l| l.starts_with("2026-11,B,")).unwrap();
    assert!(b_row.ends_with("\"resolution_rate,teamwork,growth\""), "{b_row}");
    let a_row = csv.lines().find(|l| l.starts_with("2026-11,A,")).unwrap();
    assert!(a_row.ends_with(','), "A complete: {a_row}");
    let lines = std::fs::read_to_string(reports.join("score_lines.csv")).unwrap();
    assert!(lines.lines().any(|l| l.starts_with("2026-11,B,teamwork,") && l.ends_with(",1")), "{lines}");
    let html = std::fs::read_to_string(reports.join("month-2026-11.html")).unwrap();
    assert!(html.contains("未完成 · 缺 resolution_rate, teamwork, growth"), "month page flags B");
}

/// Report CSVs are for people: decimals rounded (the database keeps them exact), a BOM,
/// and an agent id that looks like a formula shown as text.
#[test]
fn report_csvs_round_decimals_carry_a_bom_and_neutralise_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("k.db")).unwrap();
    let evil = "=HYPERLINK(\\\"http://x\\\")";
    let mut lines = vec![];
    for (i, buyer) in ["b1", "b2", "b3"].iter().enumerate() {
        let ts = format!("2026-11-03T09:0{i}:00+08:00");
        lines.push(msg(&format!("q{i}"), &ts, buyer, evil, "customer"));
        if i == 0 {
            lines.push(msg(&format!("a{i}"), &format!("2026-11-03T09:0{i}:05+08:00"), buyer, evil, "agent"));
        }
    }
    store_lines(&mut s, &lines);
    job::score_range(&mut s, &sheet::Sheet::default(), d("2026-11-03"), d("2026-11-03"), 0).unwrap();
    let exact: String = s
        .conn()
        .query_row("SELECT value FROM score_lines WHERE indicator = 'reply_rate'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(exact, "0.3333333333333333333333333333", "exact in the database");
    let reports = dir.path().join("reports");
    kefu::scoring::report::write_all(s.conn(), &sheet::Sheet::default(), &reports, &[], &["2026-11".into()])
        .unwrap();
    let bytes = std::fs::read(reports.join("score_lines.csv")).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "BOM");
    let text = String::from_utf8(bytes).unwrap();
    let row = text.lines().find(|l| l.contains("reply_rate")).unwrap();
    assert!(row.contains(",0.3333,"), "rounded for people: {row}");
    assert!(row.starts_with("2026-11,\"'=HYPERLINK("), "formula neutralised: {row}");
}

/// Buyers' ratings from the platform's export (GBK, as 千牛 saves it) reach the daily
/// metrics and the sheet's 客户满意度 row; importing twice adds nothing.
#[test]
fn ratings_imported_from_a_file_reach_daily_metrics_and_the_sheet() {
    let (dir, db, rules) = input_shop();
    let csv = "评价时间,客服昵称,买家昵称,评价结果,评价标签\n\
               2026-11-03 09:30:00,A,b1,非常满意,回复及时\n\
               2026-11-03 09:40:00,A,b3,满意,\n\
               2026-11-03 09:50:00,A,b4,一般,\n\
               2026-11-03 09:55:00,A,b5,5,\n";
    let file = dir.path().join("ratings.csv");
    std::fs::write(&file, encoding_rs::GBK.encode(csv).0).unwrap();
    let (ok, out) = kefu(&["ratings", "import", file.to_str().unwrap(), "--db", &db, "--shop", "s"]);
    assert!(ok && out.contains("4 rating(s), 4 new"), "{out}");
    let (ok, out) = kefu(&["ratings", "import", file.to_str().unwrap(), "--db", &db, "--shop", "s"]);
    assert!(ok && out.contains("4 rating(s), 0 new"), "{out}");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "time,agent,customer,score\n2026-11-03 10:00:00,A,b9,6\n").unwrap();
    let (ok, out) = kefu(&["ratings", "import", bad.to_str().unwrap(), "--db", &db]);
    assert!(!ok && out.contains("bad.csv:2: `score` value `6` is not a rating"), "{out}");
    let (ok, out) = kefu(&["score", "--db", &db, "--rules", &rules, "--date", "2026-11-03", "--no-reports"]);
    assert!(ok, "{out}");
    let s = Store::open(Path::new(&db)).unwrap();
    let (ratings, satisfied): (i64, i64) = s
        .conn()
        .query_row("SELECT ratings, satisfied FROM daily_metrics WHERE agent = 'A'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((ratings, satisfied), (4, 3));
    let line: (String, String) = s
        .conn()
        .query_row(
            "SELECT value, weighted FROM score_lines WHERE agent = 'A' AND indicator = 'satisfaction'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(line, ("0.75".into(), "7.5".into()), "满意率 3/4 → 75 points × 10 %");
}

/// Issue 11 item 5, through the binary: orders and ledger files read as Excel writes them.
#[test]
fn order_and_ledger_imports_read_csv_as_excel_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let db = db.to_str().unwrap();
    let f = dir.path().join("orders.csv");
    let run = |args: &[&str]| kefu(args);
    // A 买家留言 with a quoted line break: accepted, one order.
    std::fs::write(&f, "订单编号,买家会员名,买家留言,买家实际支付金额,订单创建时间\nT1,tb_a,\"请发顺丰\n谢谢\",99.00,2026-11-11 10:00:00\n").unwrap();
    let (ok, out) = run(&["orders", "import", f.to_str().unwrap(), "--db", db]);
    assert!(ok && out.contains("1 order event(s), 1 new"), "{out}");
    // -50.00 and 1e5 refused, each with its line; nothing imported.
    std::fs::write(
        &f,
        "order,customer,amount,created\nT2,b,-50.00,2026-11-11 10:00:00\nT3,b,1e5,2026-11-11 10:00:00\n",
    )
    .unwrap();
    let (ok, out) = run(&["orders", "import", f.to_str().unwrap(), "--db", db]);
    assert!(
        !ok && out.contains("orders.csv:2: `amount` `-50.00` is negative") && out.contains("orders.csv:3:"),
        "{out}"
    );
    let events = Store::open(Path::new(db)).unwrap().event_count().unwrap();
    assert_eq!(events, 1);

    let l = dir.path().join("ledger.csv");
    std::fs::write(&l, "agent,date,points,reason,category\nA,2026-11-02,-2,\"迟到,早退\",A\n").unwrap();
    let (ok, out) = run(&["ledger", "import", l.to_str().unwrap(), "--db", db]);
    assert!(ok && out.contains("1 entr(ies)"), "{out}");
    let (ok, out) = run(&["ledger", "list", "--month", "2026-11", "--db", db]);
    assert!(ok && out.contains("迟到,早退") && out.contains(" A "), "one reason, category A: {out}");
    for (body, want) in [
        ("A,2026-11-02,-2,迟到\n", "ledger.csv:1:"),
        ("agent,date,points,reason\nA,2026-11-02,99999999999999999999999,x\n", "ledger.csv:2: points"),
    ] {
        std::fs::write(&l, body).unwrap();
        let (ok, out) = run(&["ledger", "import", l.to_str().unwrap(), "--db", db]);
        assert!(!ok && out.contains(want) && out.contains("nothing was recorded"), "{body}: {out}");
    }
    let (_, out) = run(&["ledger", "list", "--month", "2026-11", "--db", db]);
    assert_eq!(out.lines().count(), 1, "{out}");
}

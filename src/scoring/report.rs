//! Reports in a `reports/` folder: one CSV per table, and one self-contained HTML page
//! per day and per month (inline CSS and SVG, no external assets), plus a short text
//! summary for the supervisors' alert sink.
//!
//! The pages are maud templates ([`day_report`], [`month_report`]): the same bodies are
//! written to the files and served live by the console inside its layout, so the two
//! cannot drift. Every value is escaped by the template engine.
//!
//! Buyers never appear by id: pages show agents and counts; ledger references are
//! finding or import ids.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use rusqlite::Connection;
use rust_decimal::Decimal;

use super::job::{JobError, month_bounds};
use super::ledger;
use super::metrics::{HIST_BOUNDS, HIST_OVER};
use super::sheet::Sheet;

fn write(path: &Path, bytes: &[u8]) -> Result<(), JobError> {
    std::fs::write(path, bytes).map_err(|source| JobError::Report { path: path.to_path_buf(), source })
}

/// Decimal places shown for people in a report CSV: ratios and rates 4, points and scores
/// 2, money 2 (the database keeps the exact values; see `docs/metrics.md`).
fn places(table: &str, column: &str) -> Option<u32> {
    match (table, column) {
        ("score_lines", "value") | ("scores", "commission_rate") | ("score_inputs", "value") => Some(4),
        ("score_lines", "points" | "weighted") | ("scores", "total" | "ledger_points") => Some(2),
        (_, "sales" | "assist_follow_amount" | "unattended_sales") => Some(2),
        ("ledger", "points") => Some(2),
        _ => None,
    }
}

/// One cell of a table as people read it: decimals rounded (half away from zero) and
/// trailing zeros dropped where [`places`] says so, everything else as stored.
fn people_cell(table: &str, column: &str, v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(v) => v.to_string(),
        ValueRef::Real(v) => v.to_string(),
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t);
            match (places(table, column), text.parse::<Decimal>()) {
                (Some(dp), Ok(d)) => d
                    .round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                    .normalize()
                    .to_string(),
                _ => text.into_owned(),
            }
        }
        ValueRef::Blob(_) => String::new(),
    }
}

/// Dumps a table (whole) as text CSV with a header row, decimals rounded for people
/// (no BOM; [`write_all`] writes the files through [`crate::textio::PeopleCsv`]).
pub fn table_csv(conn: &Connection, table: &str, order: &str) -> rusqlite::Result<String> {
    Ok(table_people_csv(conn, table, order)?.into_text())
}

/// A table as a CSV for people: every cell neutralised against formulas, decimals rounded.
pub fn table_people_csv(
    conn: &Connection,
    table: &str,
    order: &str,
) -> rusqlite::Result<crate::textio::PeopleCsv> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut out = crate::textio::PeopleCsv::new(&names);
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let mut cells = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            cells.push(people_cell(table, name, r.get_ref(i)?));
        }
        out.row(cells);
    }
    Ok(out)
}

/// The tables written as CSV, with their sort order.
pub const CSV_TABLES: [(&str, &str); 9] = [
    ("daily_metrics", "day, agent"),
    ("daily_breaches", "day, agent, hour"),
    ("daily_response_hist", "day, agent, bucket"),
    ("daily_shop", "day"),
    ("scores", "month, rank, agent"),
    ("score_lines", "month, agent, position"),
    ("score_inputs", "month, agent, indicator"),
    ("ledger", "day, id"),
    ("disputes", "id"),
];

/// Writes every CSV, a page per day in `days` and a page per month in `months`.
pub fn write_all(
    conn: &Connection,
    sheet: &Sheet,
    dir: &Path,
    days: &[NaiveDate],
    months: &[String],
) -> Result<Vec<PathBuf>, JobError> {
    std::fs::create_dir_all(dir).map_err(|source| JobError::Report { path: dir.to_path_buf(), source })?;
    let mut written = Vec::new();
    for (table, order) in CSV_TABLES {
        let p = dir.join(format!("{table}.csv"));
        write(&p, &table_people_csv(conn, table, order)?.into_utf8_with_bom())?;
        written.push(p);
    }
    for d in days {
        let p = dir.join(format!("day-{d}.html"));
        write(&p, day_page(conn, sheet, *d)?.as_bytes())?;
        written.push(p);
    }
    for m in months {
        let p = dir.join(format!("month-{m}.html"));
        write(&p, month_page(conn, sheet, m)?.as_bytes())?;
        written.push(p);
    }
    Ok(written)
}

const CSS: &str = include_str!("report.css");

/// The style sheet of the report pages: inline in the written files (self-contained),
/// served as `/assets/report.css` by the console (whose CSP allows no inline style).
pub fn css() -> &'static str {
    CSS
}

/// A self-contained report file: the body with the style sheet inline.
fn page(title: &str, sub: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head { meta charset="utf-8"; title { (title) } style { (PreEscaped(CSS)) } }
            body.report { h1 { (title) } div.sub { (sub) } (body) }
        }
    }
    .into_string()
        + "\n"
}

/// A report page's title, subtitle and body, for a file ([`day_page`], [`month_page`]) or
/// for the console, which serves the same body inside its own layout.
#[derive(Debug, Clone)]
pub struct Report {
    /// Title.
    pub title: String,
    /// The line under it.
    pub sub: String,
    /// The page's content.
    pub body: Markup,
}

fn card(label: &str, value: &str) -> Markup {
    html! { div.card { b { (value) } span { (label) } } }
}

fn pct(n: i64, d: i64) -> String {
    if d == 0 { "–".into() } else { format!("{:.1}%", n as f64 * 100.0 / d as f64) }
}

fn secs(ms: i64, n: i64) -> String {
    if n == 0 { "–".into() } else { format!("{:.1}", ms as f64 / 1000.0 / n as f64) }
}

fn money(d: Decimal) -> String {
    format!("{:.2}", super::score::fen(d))
}

const HIST_COLORS: [&str; 8] =
    ["#2b8a3e", "#5c940d", "#94d82d", "#fab005", "#fd7e14", "#e8590c", "#c92a2a", "#868e96"];

fn hist_label(i: usize) -> String {
    match i {
        0 => format!("≤{}s", HIST_BOUNDS[0]),
        i if i < HIST_BOUNDS.len() => format!("{}–{}s", HIST_BOUNDS[i - 1], HIST_BOUNDS[i]),
        i if i == HIST_BOUNDS.len() => format!(">{}s", HIST_BOUNDS[HIST_BOUNDS.len() - 1]),
        _ => "未回复".into(),
    }
}

fn bucket_index(b: i64) -> usize {
    if b == 0 {
        return HIST_BOUNDS.len() + 1;
    }
    if b == HIST_OVER {
        return HIST_BOUNDS.len();
    }
    HIST_BOUNDS.iter().position(|x| *x == b).unwrap_or(HIST_BOUNDS.len())
}

/// A colour swatch for a legend (an SVG fill: no inline style, which the console's CSP refuses).
fn swatch(color: &str) -> Markup {
    html! { svg.swatch width="10" height="10" { rect width="10" height="10" rx="2" fill=(color) {} } }
}

/// A horizontal stacked bar (SVG) of counts with their colours.
fn stacked_bar(parts: &[(i64, &str, String)], width: f64) -> Markup {
    let total: i64 = parts.iter().map(|p| p.0).sum();
    let mut x = 0.0;
    let rects: Vec<(f64, f64, &str, &str)> = parts
        .iter()
        .filter(|p| p.0 > 0 && total > 0)
        .map(|(n, color, title)| {
            let w = *n as f64 / total as f64 * width;
            let r = (x, w, *color, title.as_str());
            x += w;
            r
        })
        .collect();
    html! {
        svg width=(width) height="14" role="img" {
            @for (x, w, color, title) in rects {
                rect x=(format!("{x:.1}")) y="0" width=(format!("{w:.1}")) height="14" fill=(color) { title { (title) } }
            }
        }
    }
}

struct AgentDay {
    agent: String,
    v: Vec<i64>,
    sales: Decimal,
    findings: String,
}

/// The day page as a self-contained file (pay figures are not on it).
pub fn day_page(conn: &Connection, sheet: &Sheet, day: NaiveDate) -> Result<String, JobError> {
    let r = day_report(conn, sheet, day, &|month, agent| format!("month-{month}.html#A-{agent}"))?;
    Ok(page(&r.title, &r.sub, r.body))
}

/// The day page: shop figures, per-agent table with response-time distribution,
/// breaches by hour, and the day's ledger entries. `month_link(month, agent)` is where an
/// agent's month score is (the file beside it, or the console's route).
pub fn day_report(
    conn: &Connection,
    sheet: &Sheet,
    day: NaiveDate,
    month_link: &dyn Fn(&str, &str) -> String,
) -> Result<Report, JobError> {
    let ds = day.to_string();
    let mut stmt = conn.prepare(
        "SELECT agent, consulted, replied, unreplied, ordered, paid, waits, answered, unanswered, response_ms,
                breaches, robot_answered, platform_waits, platform_ms, platform_within_3min, assist_orders,
                assist_follow, received, sales, findings
         FROM daily_metrics WHERE day = ?1 ORDER BY agent",
    )?;
    let agents: Vec<AgentDay> = stmt
        .query_map([&ds], |r| {
            Ok(AgentDay {
                agent: r.get(0)?,
                v: (1..18).map(|i| r.get::<_, i64>(i)).collect::<rusqlite::Result<_>>()?,
                sales: r.get::<_, String>(18)?.parse().unwrap_or_default(),
                findings: r.get(19)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut hist: BTreeMap<String, [i64; 8]> = BTreeMap::new();
    {
        let mut stmt = conn.prepare("SELECT agent, bucket, count FROM daily_response_hist WHERE day = ?1")?;
        let mut rows = stmt.query([&ds])?;
        while let Some(r) = rows.next()? {
            let b: i64 = r.get(1)?;
            hist.entry(r.get(0)?).or_default()[bucket_index(b)] += r.get::<_, i64>(2)?;
        }
    }
    let mut by_hour = [0i64; 24];
    let mut by_agent_hour: BTreeMap<String, [i64; 24]> = BTreeMap::new();
    {
        let mut stmt = conn.prepare("SELECT agent, hour, count FROM daily_breaches WHERE day = ?1")?;
        let mut rows = stmt.query([&ds])?;
        while let Some(r) = rows.next()? {
            let h = (r.get::<_, i64>(1)?).clamp(0, 23) as usize;
            let n: i64 = r.get(2)?;
            by_hour[h] += n;
            by_agent_hour.entry(r.get(0)?).or_insert([0; 24])[h] += n;
        }
    }
    let (silent, unattended): (i64, Decimal) = conn
        .query_row("SELECT silent_orders, unattended_sales FROM daily_shop WHERE day = ?1", [&ds], |r| {
            Ok((r.get(0)?, r.get::<_, String>(1)?.parse().unwrap_or_default()))
        })
        .unwrap_or_default();
    let sum = |i: usize| agents.iter().map(|a| a.v[i]).sum::<i64>();
    let total_sales: Decimal = agents.iter().map(|a| a.sales).sum();
    let month = super::job::month_of(day);
    let max_heat = by_agent_hour.values().flat_map(|v| v.iter()).copied().max().unwrap_or(1).max(1);
    let entries = counted_entries(conn, sheet, day, day)?;
    let ledger =
        ledger_section("日常考核 entries this day (who gained and lost points, and why)", &entries, conn)?;
    let body = html! {
        div.cards {
            (card("客服", &agents.len().to_string()))
            (card("咨询人数", &sum(0).to_string()))
            (card("回复率", &pct(sum(1), sum(0))))
            (card("等待次数", &sum(5).to_string()))
            (card("平均响应 (秒)", &secs(sum(8), sum(6))))
            (card("慢响应", &sum(9).to_string()))
            (card("平台响应 (秒)", &secs(sum(12), sum(11))))
            (card("3 分钟响应率", &pct(sum(13), sum(11))))
            (card("销售额 (元)", &money(total_sales)))
            (card("静默下单 / 无人接待 (元)", &format!("{silent} / {}", money(unattended))))
        }
        h2 { "慢响应 by hour (shop)" }
        (hour_bars(&by_hour))
        h2 { "客服 (per agent)" }
        div.legend { @for (i, c) in HIST_COLORS.iter().enumerate() { span { (swatch(c)) (hist_label(i)) } } }
        table {
            tr {
                th.l { "客服" } th.l { "响应时间分布" } th { "咨询" } th { "接待" } th { "未回复" } th { "回复率" } th { "等待" }
                th { "平均响应 s" } th { "平台 s" } th { "3 分钟" } th { "慢响应" } th { "机器人" } th { "下单" } th { "付款" }
                th { "销售额" } th { "协助下单" } th { "协助跟进" } th.l { "违规 (类别)" }
            }
            @for a in &agents {
                @let h = hist.get(&a.agent).copied().unwrap_or_default();
                @let parts: Vec<(i64, &str, String)> = h.iter().enumerate().map(|(i, n)| (*n, HIST_COLORS[i], format!("{}: {n}", hist_label(i)))).collect();
                @let findings: BTreeMap<String, i64> = serde_json::from_str(&a.findings).unwrap_or_default();
                @let f: Vec<String> = findings.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
                tr {
                    td.l { a href=(month_link(&month, &a.agent)) title="month score" { (a.agent) } }
                    td.l { (stacked_bar(&parts, 220.0)) }
                    td { (a.v[0]) } td { (a.v[16]) } td { (a.v[2]) } td { (pct(a.v[1], a.v[0])) } td { (a.v[5]) }
                    td { (secs(a.v[8], a.v[6])) } td { (secs(a.v[12], a.v[11])) } td { (pct(a.v[13], a.v[11])) }
                    td class=[(a.v[9] > 0).then_some("neg")] { (a.v[9]) }
                    td { (a.v[10]) } td { (a.v[3]) } td { (a.v[4]) } td { (money(a.sales)) } td { (a.v[14]) } td { (a.v[15]) }
                    td.l { (f.join(", ")) }
                }
            }
        }
        @if !by_agent_hour.is_empty() {
            h2 { "慢响应 by agent and hour" }
            table {
                tr { th.l { "客服" } @for h in 0..24 { th { (format!("{h:02}")) } } }
                @for (agent, hours) in &by_agent_hour {
                    tr {
                        td.l { (agent) }
                        @for n in hours {
                            // Ten shades by share of the busiest cell (classes: no inline style).
                            td class=(format!("heat heat{}", if *n == 0 { 0 } else { 1 + (*n * 9 / max_heat).min(9) })) {
                                @if *n > 0 { (n) }
                            }
                        }
                    }
                }
            }
        }
        (ledger)
    };
    Ok(Report {
        title: format!("{} — {ds}", sheet.name),
        sub: "kefu daily report · Asia/Shanghai day · buyers are not shown".into(),
        body,
    })
}

fn hour_bars(by_hour: &[i64; 24]) -> Markup {
    let max = by_hour.iter().copied().max().unwrap_or(0).max(1);
    let (w, h, bw) = (24.0 * 28.0 + 40.0, 140.0, 22.0);
    html! {
        svg.bars width=(w) height=(h + 24.0) role="img" {
            @for (i, n) in by_hour.iter().enumerate() {
                @let bh = *n as f64 / max as f64 * (h - 20.0);
                @let x = 30.0 + i as f64 * 28.0;
                rect x=(x) y=(format!("{:.1}", h - bh)) width=(bw) height=(format!("{bh:.1}")) fill="#e8590c" {
                    title { (format!("{i:02}:00 — {n}")) }
                }
                text x=(format!("{:.1}", x + bw / 2.0)) y=(h + 14.0) font-size="10" text-anchor="middle" fill="#616e7c" { (format!("{i:02}")) }
                @if *n > 0 {
                    text x=(format!("{:.1}", x + bw / 2.0)) y=(format!("{:.1}", h - bh - 3.0)) font-size="10" text-anchor="middle" { (n) }
                }
            }
        }
    }
}

/// The entries of days `[from, to]` (within one month) with the points the month counts
/// for each (a ruled category's occurrence points; overturned entries keep theirs, shown
/// as overturned).
fn counted_entries(
    conn: &Connection,
    sheet: &Sheet,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ledger::Entry>, JobError> {
    let (first, last) = month_bounds(&super::job::month_of(from)).unwrap_or((from, to));
    let mut month = ledger::entries(conn, first, last)?;
    let counted = ledger::counted(&month, &sheet.ledger_rules);
    for (e, c) in month.iter_mut().zip(counted) {
        if !e.voided {
            e.points = c.points;
        }
    }
    let (f, t) = (from.to_string(), to.to_string());
    month.retain(|e| e.day >= f && e.day <= t);
    Ok(month)
}

fn ledger_section(title: &str, entries: &[ledger::Entry], conn: &Connection) -> Result<Markup, JobError> {
    let open: Vec<i64> = ledger::open_disputes(conn)?.iter().map(|(_, e)| e.id).collect();
    Ok(html! {
        h2 { (title) }
        @if entries.is_empty() {
            p.muted { "No entries." }
        } @else {
            table {
                tr { th.l { "#" } th.l { "日期" } th.l { "客服" } th { "分" } th.l { "来源" } th.l { "类别" } th.l { "原因" } th.l { "ref" } th.l { "状态" } }
                @for e in entries {
                    tr id=(format!("L{}", e.id)) {
                        td.l { a href=(format!("#L{}", e.id)) { "L" (e.id) } }
                        td.l { (e.day) } td.l { (e.agent) }
                        td class=(if e.points < Decimal::ZERO { "neg" } else { "pos" }) {
                            @if e.points > Decimal::ZERO { "+" } (e.points.normalize())
                        }
                        td.l { (e.source) } td.l { (e.category.as_deref().unwrap_or("")) } td.l { (e.reason) }
                        td.l { (e.reference.as_deref().unwrap_or("")) }
                        td.l {
                            @if e.voided { "复核撤销" } @else if open.contains(&e.id) { span.flag { "复核中" } }
                        }
                    }
                }
            }
        }
    })
}

/// A score line as read back: (indicator, value, tier, points, weighted).
type LineRow = (String, Option<String>, Option<i64>, String, String);

const LINE_COLORS: [&str; 10] = [
    "#2f6fde", "#12b886", "#fab005", "#7950f2", "#e64980", "#15aabf", "#fd7e14", "#495057", "#82c91e",
    "#be4bdb",
];

/// One agent's row of the month, as stored by the scoring job.
struct MonthRow {
    agent: String,
    through: String,
    total: String,
    grade: Option<String>,
    rank: i64,
    ledger_points: String,
    bonus: String,
    commission_paid: String,
    salary: String,
    review: bool,
    below_streak: i64,
    personal_commission: String,
    public_commission: String,
    base_salary: String,
    seniority: String,
    missing: String,
    ledger_pay: String,
    grade_bonus: String,
    ranked_bonus: String,
}

/// The month page as a self-contained file, pay included (the reports folder is the
/// owner's; the console serves the page without pay to everyone else).
pub fn month_page(conn: &Connection, sheet: &Sheet, month: &str) -> Result<String, JobError> {
    let r = month_report(conn, sheet, month, true)?;
    Ok(page(&r.title, &r.sub, r.body))
}

/// The month page: ranking with per-indicator points, a stacked breakdown, pay when `pay`,
/// review flags, and the month's ledger with open disputes.
pub fn month_report(conn: &Connection, sheet: &Sheet, month: &str, pay: bool) -> Result<Report, JobError> {
    let mut stmt = conn.prepare(
        "SELECT agent, through, total, grade, rank, ledger_points, bonus, commission_paid, salary, review, below_streak,
                personal_commission, public_commission, base_salary, seniority, missing,
                ledger_pay, grade_bonus, ranked_bonus
         FROM scores WHERE month = ?1 ORDER BY rank, agent",
    )?;
    let rows: Vec<MonthRow> = stmt
        .query_map([month], |r| {
            Ok(MonthRow {
                agent: r.get(0)?,
                through: r.get(1)?,
                total: r.get(2)?,
                grade: r.get(3)?,
                rank: r.get(4)?,
                ledger_points: r.get(5)?,
                bonus: r.get(6)?,
                commission_paid: r.get(7)?,
                salary: r.get(8)?,
                review: r.get(9)?,
                below_streak: r.get(10)?,
                personal_commission: r.get(11)?,
                public_commission: r.get(12)?,
                base_salary: r.get(13)?,
                seniority: r.get(14)?,
                missing: r.get(15)?,
                ledger_pay: r.get(16)?,
                grade_bonus: r.get(17)?,
                ranked_bonus: r.get(18)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut lines: BTreeMap<String, Vec<LineRow>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT agent, indicator, value, tier, points, weighted FROM score_lines WHERE month = ?1 ORDER BY agent, position",
        )?;
        let mut rs = stmt.query([month])?;
        while let Some(r) = rs.next()? {
            lines.entry(r.get(0)?).or_default().push((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?));
        }
    }
    let through = rows.first().map(|r| r.through.clone()).unwrap_or_default();
    let payroll: Decimal = rows.iter().map(|r| r.salary.parse::<Decimal>().unwrap_or_default()).sum();
    let (first, last) = month_bounds(month).unwrap_or((NaiveDate::MIN, NaiveDate::MIN));
    let entries = counted_entries(conn, sheet, first, last)?;
    let mut per_agent: BTreeMap<&str, (Decimal, Decimal, Vec<i64>)> = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.voided) {
        let s = per_agent.entry(e.agent.as_str()).or_default();
        if e.points >= Decimal::ZERO {
            s.0 += e.points;
        } else {
            s.1 += e.points;
        }
        s.2.push(e.id);
    }
    let ledger = ledger_section("Entries", &entries, conn)?;
    let open = ledger::open_disputes(conn)?;
    let body = html! {
        div.cards {
            (card("客服", &rows.len().to_string()))
            (card("through", &through))
            (card("连续低于线 (淘汰复核)", &rows.iter().filter(|r| r.review).count().to_string()))
            (card("未完成 (缺少录入)", &rows.iter().filter(|r| !r.missing.is_empty()).count().to_string()))
            @if pay { (card("工资合计 (元)", &money(payroll))) }
        }
        h2 { "排名 and score breakdown per indicator" }
        div.legend {
            @for (i, ind) in sheet.indicators.iter().enumerate() {
                span { (swatch(LINE_COLORS[i % LINE_COLORS.len()])) (ind.name) " (" (ind.weight.normalize()) "%)" }
            }
        }
        table {
            tr {
                th { "名次" } th.l { "客服" } th.l { "得分构成 (0–100)" } th { "得分" } th.l { "等级" }
                @for ind in &sheet.indicators { th title=(ind.key) { (ind.name) } }
                th { "日常考核" }
                @if pay { th { "奖金" } th { "提成" } th { "月薪" } }
                th.l { "标记" }
            }
            @for r in &rows {
                @let ls = lines.get(&r.agent).cloned().unwrap_or_default();
                @let total: Decimal = r.total.parse().unwrap_or_default();
                tr id=(format!("A-{}", r.agent)) {
                    td { (r.rank) }
                    td.l { a href=(format!("#LA-{}", r.agent)) { (r.agent) } }
                    td.l { (score_bar(&ls)) }
                    td { b { (format!("{:.2}", total.round_dp(2))) } }
                    td.l { (r.grade.as_deref().unwrap_or("—")) }
                    @for l in &ls {
                        @let tier = match l.2 { Some(0) => " (else)".to_string(), Some(t) => format!(" (tier {t})"), None => String::new() };
                        td title=(format!("value {}{tier}", l.1.as_deref().unwrap_or("–"))) { (l.3) }
                    }
                    td { (r.ledger_points) }
                    @if pay {
                        td { (r.bonus) }
                        td title=(format!("个人 {} + 公共 {}", r.personal_commission, r.public_commission)) { (r.commission_paid) }
                        td title=(format!("底薪 {} + 工龄 {} + 奖金 + 提成 + 考核积分 {} + 等级奖金 {} + 排名奖金 {}", r.base_salary, r.seniority, r.ledger_pay, r.grade_bonus, r.ranked_bonus)) { b { (r.salary) } }
                    }
                    td.l {
                        @if !r.missing.is_empty() {
                            span.flag title="never entered: score and pay are not final" { "未完成 · 缺 " (r.missing.replace(',', ", ")) } " "
                        }
                        @if r.review { span.flag { (r.below_streak) " 个月低于线" } }
                        @else if r.below_streak > 0 { span.muted { "低于线 " (r.below_streak) " 个月" } }
                    }
                }
            }
        }
        h2 { "日常考核: who gained and lost points" }
        @if per_agent.is_empty() {
            p.muted { "No entries this month." }
        } @else {
            p.sub {
                "Score = base " (sheet.ledger_base.normalize()) " + entries"
                @if let Some(c) = sheet.ledger_cap { ", held within ±" (c.normalize()) } "."
            }
            table {
                tr { th.l { "客服" } th { "加分" } th { "扣分" } th.l { "entries" } }
                @for (agent, (plus, minus, ids)) in &per_agent {
                    tr id=(format!("LA-{agent}")) {
                        td.l { (agent) } td.pos { "+" (plus.normalize()) } td.neg { (minus.normalize()) }
                        td.l { @for (i, id) in ids.iter().enumerate() { @if i > 0 { " " } a href=(format!("#L{id}")) { "L" (id) } } }
                    }
                }
            }
        }
        (ledger)
        h2 { "Open disputes (复核)" }
        @if open.is_empty() {
            p.muted { "None." }
        } @else {
            table {
                tr { th.l { "#" } th.l { "entry" } th.l { "客服" } th { "分" } th.l { "opened" } th.l { "reason" } }
                @for (d, e) in &open {
                    tr {
                        td.l { "D" (d.id) } td.l { a href=(format!("#L{}", e.id)) { "L" (e.id) } } td.l { (e.agent) }
                        td { (e.points.normalize()) } td.l { (crate::time::display_shanghai(d.opened_at)) } td.l { (d.reason) }
                    }
                }
            }
        }
    };
    Ok(Report {
        title: format!("{} — {month}", sheet.name),
        sub: format!(
            "kefu monthly scores · month to date through {through}{}",
            if pay {
                " · money rounded once per figure, half up, to the fen"
            } else {
                " · pay is shown to the owner only"
            }
        ),
        body,
    })
}

/// The stacked breakdown of a score (0–100) by indicator, as an SVG bar.
fn score_bar(lines: &[LineRow]) -> Markup {
    let mut x = 0.0;
    let rects: Vec<(f64, f64, &str, String)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let w: f64 = l.4.parse::<f64>().unwrap_or(0.0) * 2.0;
            let r = (x, w, LINE_COLORS[i % LINE_COLORS.len()], format!("{}: {}", l.0, l.4));
            x += w;
            (w > 0.0).then_some(r)
        })
        .collect();
    html! {
        svg.score width="200" height="14" {
            rect width="200" height="14" fill="#eef2f7" {}
            @for (x, w, color, title) in rects {
                rect x=(format!("{x:.1}")) width=(format!("{w:.1}")) height="14" fill=(color) { title { (title) } }
            }
        }
    }
}

/// A short text for the supervisors' alert sink about `day` and its month to date.
pub fn summary(conn: &Connection, sheet: &Sheet, day: NaiveDate) -> Result<String, JobError> {
    let ds = day.to_string();
    let (agents, waits, breaches, unreplied): (i64, i64, i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(waits),0), COALESCE(SUM(breaches),0), COALESCE(SUM(unreplied),0) FROM daily_metrics WHERE day = ?1",
        [&ds],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let worst: Option<(String, i64)> = conn
        .query_row(
            "SELECT agent, breaches FROM daily_metrics WHERE day = ?1 AND breaches > 0 ORDER BY breaches DESC, agent LIMIT 1",
            [&ds],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok();
    let sales: Decimal = {
        let mut stmt = conn.prepare("SELECT sales FROM daily_metrics WHERE day = ?1")?;
        stmt.query_map([&ds], |r| r.get::<_, String>(0))?
            .filter_map(|v| v.ok()?.parse::<Decimal>().ok())
            .sum()
    };
    let month = super::job::month_of(day);
    let top: Vec<String> = {
        let mut stmt =
            conn.prepare("SELECT agent, total FROM scores WHERE month = ?1 ORDER BY rank, agent LIMIT 3")?;
        stmt.query_map([&month], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .filter_map(Result::ok)
            .map(|(a, t)| format!("{a} {}", t.parse::<Decimal>().unwrap_or_default().round_dp(2)))
            .collect()
    };
    let review: i64 =
        conn.query_row("SELECT COUNT(*) FROM scores WHERE month = ?1 AND review = 1", [&month], |r| {
            r.get(0)
        })?;
    let disputes = ledger::open_disputes(conn)?.len();
    let incomplete = incomplete_note(conn, &month)?;
    let mut s = format!("【{}】{ds}: {agents} 客服, {waits} 次等待, 慢响应 {breaches} 次", sheet.name);
    if let Some((a, n)) = worst {
        let _ = write!(s, " (最多 {a}: {n})");
    }
    let _ = write!(s, ", 未回复 {unreplied} 人, 销售额 {} 元.", money(sales));
    if !top.is_empty() {
        let _ = write!(s, " {month} 至今前三: {}.", top.join(", "));
    }
    if review > 0 {
        let _ = write!(
            s,
            " 连续 {} 个月低于 {}: {review} 人.",
            sheet.review_months,
            sheet.review_below.normalize()
        );
    }
    if disputes > 0 {
        let _ = write!(s, " 待复核 {disputes} 条.");
    }
    s += &incomplete;
    Ok(s)
}

/// " 未完成 N 人 (缺少录入): A (k1, k2); …" for a month's incomplete scores, or "".
fn incomplete_note(conn: &Connection, month: &str) -> Result<String, JobError> {
    let mut stmt =
        conn.prepare("SELECT agent, missing FROM scores WHERE month = ?1 AND missing != '' ORDER BY agent")?;
    let rows: Vec<(String, String)> =
        stmt.query_map([month], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    if rows.is_empty() {
        return Ok(String::new());
    }
    let list: Vec<String> = rows
        .iter()
        .map(|(a, m)| format!("{} ({})", crate::textio::escape_for_terminal(a), m.replace(',', ", ")))
        .collect();
    Ok(format!(" 未完成 {} 人 (缺少录入, 得分未定): {}.", rows.len(), list.join("; ")))
}

/// A short text about a whole month (`kefu score --month`): figures summed over its stored
/// days, the ranking, incomplete scores, review flags and open disputes.
pub fn month_summary(conn: &Connection, sheet: &Sheet, month: &str) -> Result<String, JobError> {
    let Some((first, last)) = month_bounds(month) else { return Ok(String::new()) };
    let (f, l) = (first.to_string(), last.to_string());
    let (days, agents, waits, breaches, unreplied, through): (i64, i64, i64, i64, i64, Option<String>) = conn
        .query_row(
            "SELECT COUNT(DISTINCT day), COUNT(DISTINCT agent), COALESCE(SUM(waits),0), COALESCE(SUM(breaches),0),
                    COALESCE(SUM(unreplied),0), MAX(day)
             FROM daily_metrics WHERE day BETWEEN ?1 AND ?2",
            [&f, &l],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )?;
    let sales: Decimal = {
        let mut stmt = conn.prepare("SELECT sales FROM daily_metrics WHERE day BETWEEN ?1 AND ?2")?;
        stmt.query_map([&f, &l], |r| r.get::<_, String>(0))?
            .filter_map(|v| v.ok()?.parse::<Decimal>().ok())
            .sum()
    };
    let top: Vec<String> = {
        let mut stmt =
            conn.prepare("SELECT agent, total FROM scores WHERE month = ?1 ORDER BY rank, agent LIMIT 3")?;
        stmt.query_map([month], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .filter_map(Result::ok)
            .map(|(a, t)| {
                format!(
                    "{} {}",
                    crate::textio::escape_for_terminal(&a),
                    t.parse::<Decimal>().unwrap_or_default().round_dp(2)
                )
            })
            .collect()
    };
    let scored: i64 =
        conn.query_row("SELECT COUNT(*) FROM scores WHERE month = ?1", [month], |r| r.get(0))?;
    let review: i64 =
        conn.query_row("SELECT COUNT(*) FROM scores WHERE month = ?1 AND review = 1", [month], |r| r.get(0))?;
    let mut s = format!(
        "【{}】{month} (through {}, {days} day(s)): {agents} 客服, {waits} 次等待, 慢响应 {breaches} 次, 未回复 {unreplied} 人, 销售额 {} 元; {scored} 人得分.",
        sheet.name,
        through.as_deref().unwrap_or("no day scored"),
        money(sales)
    );
    if !top.is_empty() {
        let _ = write!(s, " 前三: {}.", top.join(", "));
    }
    if review > 0 {
        let _ = write!(
            s,
            " 连续 {} 个月低于 {}: {review} 人.",
            sheet.review_months,
            sheet.review_below.normalize()
        );
    }
    let disputes = ledger::open_disputes(conn)?.len();
    if disputes > 0 {
        let _ = write!(s, " 待复核 {disputes} 条.");
    }
    s += &incomplete_note(conn, month)?;
    Ok(s)
}

/// Writes the reports for `[from, to]` (used by `kefu score`).
pub fn write_range(
    conn: &Connection,
    sheet: &Sheet,
    dir: &Path,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<PathBuf>, JobError> {
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let months = super::job::months_between(from, to);
    write_all(conn, sheet, dir, &days, &months)
}

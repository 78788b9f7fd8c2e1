//! Reports in a `reports/` folder: one CSV per table, and one self-contained HTML page
//! per day and per month (inline CSS and SVG, no external assets), plus a short text
//! summary for the supervisors' alert sink.
//!
//! Buyers never appear by id: pages show agents and counts; ledger references are
//! finding or import ids.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use rusqlite::Connection;
use rust_decimal::Decimal;

use super::job::{JobError, month_bounds};
use super::ledger;
use super::metrics::{HIST_BOUNDS, HIST_OVER};
use super::sheet::Sheet;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

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

const CSS: &str = r#"
body{font-family:-apple-system,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:24px;color:#1f2933;background:#f7f8fa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-left:4px solid #2f6fde;padding-left:8px}
.sub{color:#616e7c;font-size:13px;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border-radius:8px;padding:10px 16px;box-shadow:0 1px 2px #0001;min-width:120px}
.card b{display:block;font-size:20px}.card span{font-size:12px;color:#616e7c}
table{border-collapse:collapse;background:#fff;font-size:13px;box-shadow:0 1px 2px #0001}
th,td{padding:5px 9px;border-bottom:1px solid #e4e7eb;text-align:right;white-space:nowrap}
th{background:#eef2f7;position:sticky;top:0}td.l,th.l{text-align:left}
tr:target{background:#fff3bf}.neg{color:#c92a2a}.pos{color:#2b8a3e}.muted{color:#9aa5b1}
.flag{background:#ffe3e3;color:#c92a2a;border-radius:4px;padding:1px 6px;font-size:12px}
.legend span{display:inline-block;margin-right:12px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
a{color:#2f6fde;text-decoration:none}
"#;

fn page(title: &str, sub: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{CSS}</style></head><body><h1>{t}</h1><div class=\"sub\">{s}</div>{body}</body></html>\n",
        t = esc(title),
        s = esc(sub)
    )
}

fn card(label: &str, value: &str) -> String {
    format!("<div class=\"card\"><b>{}</b><span>{}</span></div>", esc(value), esc(label))
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

/// A horizontal stacked bar (SVG) of counts with their colours.
fn stacked_bar(parts: &[(i64, &str, String)], width: f64) -> String {
    let total: i64 = parts.iter().map(|p| p.0).sum();
    let mut svg = format!("<svg width=\"{width}\" height=\"14\" role=\"img\">");
    if total > 0 {
        let mut x = 0.0;
        for (n, color, title) in parts {
            if *n == 0 {
                continue;
            }
            let w = *n as f64 / total as f64 * width;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"0\" width=\"{w:.1}\" height=\"14\" fill=\"{color}\"><title>{}</title></rect>",
                esc(title)
            );
            x += w;
        }
    }
    svg.push_str("</svg>");
    svg
}

struct AgentDay {
    agent: String,
    v: Vec<i64>,
    sales: Decimal,
    findings: String,
}

/// The day page: shop figures, per-agent table with response-time distribution,
/// breaches by hour, and the day's ledger entries.
pub fn day_page(conn: &Connection, sheet: &Sheet, day: NaiveDate) -> Result<String, JobError> {
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
    let mut b = String::from("<div class=\"cards\">");
    b += &card("客服", &agents.len().to_string());
    b += &card("咨询人数", &sum(0).to_string());
    b += &card("回复率", &pct(sum(1), sum(0)));
    b += &card("等待次数", &sum(5).to_string());
    b += &card("平均响应 (秒)", &secs(sum(8), sum(6)));
    b += &card("慢响应", &sum(9).to_string());
    b += &card("平台响应 (秒)", &secs(sum(12), sum(11)));
    b += &card("3 分钟响应率", &pct(sum(13), sum(11)));
    b += &card("销售额 (元)", &money(total_sales));
    b += &card("静默下单 / 无人接待 (元)", &format!("{silent} / {}", money(unattended)));
    b += "</div>";

    b += "<h2>慢响应 by hour (shop)</h2>";
    b += &hour_bars(&by_hour);

    b += "<h2>客服 (per agent)</h2><div class=\"legend\">";
    for (i, c) in HIST_COLORS.iter().enumerate() {
        let _ = write!(b, "<span><i style=\"background:{c}\"></i>{}</span>", esc(&hist_label(i)));
    }
    b += "</div><table><tr><th class=\"l\">客服</th><th class=\"l\">响应时间分布</th><th>咨询</th><th>接待</th><th>未回复</th><th>回复率</th><th>等待</th><th>平均响应 s</th><th>平台 s</th><th>3 分钟</th><th>慢响应</th><th>机器人</th><th>下单</th><th>付款</th><th>销售额</th><th>协助下单</th><th>协助跟进</th><th class=\"l\">违规 (类别)</th></tr>";
    for a in &agents {
        let h = hist.get(&a.agent).copied().unwrap_or_default();
        let parts: Vec<(i64, &str, String)> = h
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, HIST_COLORS[i], format!("{}: {n}", hist_label(i))))
            .collect();
        let findings: BTreeMap<String, i64> = serde_json::from_str(&a.findings).unwrap_or_default();
        let f: Vec<String> = findings.iter().map(|(k, n)| format!("{} ×{n}", esc(k))).collect();
        let _ = write!(
            b,
            "<tr><td class=\"l\"><a href=\"month-{month}.html#A-{id}\" title=\"month score\">{id}</a></td><td class=\"l\">{bar}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            a.v[0],
            a.v[16],
            a.v[2],
            pct(a.v[1], a.v[0]),
            a.v[5],
            secs(a.v[8], a.v[6]),
            secs(a.v[12], a.v[11]),
            pct(a.v[13], a.v[11]),
            if a.v[9] > 0 { " class=\"neg\"" } else { "" },
            a.v[9],
            a.v[10],
            a.v[3],
            a.v[4],
            money(a.sales),
            a.v[14],
            a.v[15],
            f.join(", "),
            id = esc(&a.agent),
            month = super::job::month_of(day),
            bar = stacked_bar(&parts, 220.0),
        );
    }
    b += "</table>";

    if !by_agent_hour.is_empty() {
        b += "<h2>慢响应 by agent and hour</h2><table><tr><th class=\"l\">客服</th>";
        for h in 0..24 {
            let _ = write!(b, "<th>{h:02}</th>");
        }
        b += "</tr>";
        let max = by_agent_hour.values().flat_map(|v| v.iter()).copied().max().unwrap_or(1).max(1);
        for (agent, hours) in &by_agent_hour {
            let _ = write!(b, "<tr><td class=\"l\">{}</td>", esc(agent));
            for n in hours {
                let alpha = if *n == 0 { 0.0 } else { 0.15 + 0.85 * *n as f64 / max as f64 };
                let _ = write!(
                    b,
                    "<td style=\"background:rgba(201,42,42,{alpha:.2});text-align:center\">{}</td>",
                    if *n == 0 { String::new() } else { n.to_string() }
                );
            }
            b += "</tr>";
        }
        b += "</table>";
    }

    let entries = counted_entries(conn, sheet, day, day)?;
    b += &ledger_section("日常考核 entries this day (who gained and lost points, and why)", &entries, conn)?;
    Ok(page(
        &format!("{} — {ds}", sheet.name),
        "kefu daily report · Asia/Shanghai day · buyers are not shown",
        &b,
    ))
}

fn hour_bars(by_hour: &[i64; 24]) -> String {
    let max = by_hour.iter().copied().max().unwrap_or(0).max(1);
    let (w, h, bw) = (24.0 * 28.0 + 40.0, 140.0, 22.0);
    let mut s = format!(
        "<svg width=\"{w}\" height=\"{}\" role=\"img\" style=\"background:#fff;border-radius:8px\">",
        h + 24.0
    );
    for (i, n) in by_hour.iter().enumerate() {
        let bh = *n as f64 / max as f64 * (h - 20.0);
        let x = 30.0 + i as f64 * 28.0;
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"{bw}\" height=\"{bh:.1}\" fill=\"#e8590c\"><title>{i:02}:00 — {n}</title></rect><text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#616e7c\">{i:02}</text>",
            h - bh,
            x + bw / 2.0,
            h + 14.0
        );
        if *n > 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{n}</text>",
                x + bw / 2.0,
                h - bh - 3.0
            );
        }
    }
    s.push_str("</svg>");
    s
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

fn ledger_section(title: &str, entries: &[ledger::Entry], conn: &Connection) -> Result<String, JobError> {
    let open: Vec<i64> = ledger::open_disputes(conn)?.iter().map(|(_, e)| e.id).collect();
    let mut b = format!("<h2>{}</h2>", esc(title));
    if entries.is_empty() {
        b += "<p class=\"muted\">No entries.</p>";
        return Ok(b);
    }
    b += "<table><tr><th class=\"l\">#</th><th class=\"l\">日期</th><th class=\"l\">客服</th><th>分</th><th class=\"l\">来源</th><th class=\"l\">类别</th><th class=\"l\">原因</th><th class=\"l\">ref</th><th class=\"l\">状态</th></tr>";
    for e in entries {
        let cls = if e.points < Decimal::ZERO { "neg" } else { "pos" };
        let status = if e.voided {
            "复核撤销".to_string()
        } else if open.contains(&e.id) {
            "<span class=\"flag\">复核中</span>".to_string()
        } else {
            String::new()
        };
        let _ = write!(
            b,
            "<tr id=\"L{id}\"><td class=\"l\"><a href=\"#L{id}\">L{id}</a></td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"{cls}\">{}{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{status}</td></tr>",
            esc(&e.day),
            esc(&e.agent),
            if e.points > Decimal::ZERO { "+" } else { "" },
            e.points.normalize(),
            esc(&e.source),
            esc(e.category.as_deref().unwrap_or("")),
            esc(&e.reason),
            esc(e.reference.as_deref().unwrap_or("")),
            id = e.id,
        );
    }
    b += "</table>";
    Ok(b)
}

/// A score line as read back: (indicator, value, tier, points, weighted).
type LineRow = (String, Option<String>, Option<i64>, String, String);

const LINE_COLORS: [&str; 10] = [
    "#2f6fde", "#12b886", "#fab005", "#7950f2", "#e64980", "#15aabf", "#fd7e14", "#495057", "#82c91e",
    "#be4bdb",
];

/// The month page: ranking with per-indicator points, a stacked breakdown, pay, review
/// flags, and the month's ledger with open disputes.
pub fn month_page(conn: &Connection, sheet: &Sheet, month: &str) -> Result<String, JobError> {
    let mut stmt = conn.prepare(
        "SELECT agent, through, total, grade, rank, ledger_points, bonus, commission_paid, salary, review, below_streak,
                personal_commission, public_commission, base_salary, seniority, missing,
                ledger_pay, grade_bonus, ranked_bonus
         FROM scores WHERE month = ?1 ORDER BY rank, agent",
    )?;
    type Row = (
        String,
        String,
        String,
        Option<String>,
        i64,
        String,
        String,
        String,
        String,
        bool,
        i64,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    );
    let rows: Vec<Row> = stmt
        .query_map([month], |r| {
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
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
                r.get(13)?,
                r.get(14)?,
                r.get(15)?,
                r.get(16)?,
                r.get(17)?,
                r.get(18)?,
            ))
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
    let through = rows.first().map(|r| r.1.clone()).unwrap_or_default();
    let mut b = String::from("<div class=\"cards\">");
    b += &card("客服", &rows.len().to_string());
    b += &card("through", &through);
    let review_n = rows.iter().filter(|r| r.9).count();
    b += &card("连续低于线 (淘汰复核)", &review_n.to_string());
    let incomplete = rows.iter().filter(|r| !r.15.is_empty()).count();
    b += &card("未完成 (缺少录入)", &incomplete.to_string());
    let payroll: Decimal = rows.iter().map(|r| r.8.parse::<Decimal>().unwrap_or_default()).sum();
    b += &card("工资合计 (元)", &money(payroll));
    b += "</div>";

    b += "<h2>排名 and score breakdown per indicator</h2><div class=\"legend\">";
    for (i, ind) in sheet.indicators.iter().enumerate() {
        let _ = write!(
            b,
            "<span><i style=\"background:{}\"></i>{} ({}%)</span>",
            LINE_COLORS[i % LINE_COLORS.len()],
            esc(&ind.name),
            ind.weight.normalize()
        );
    }
    b += "</div><table><tr><th>名次</th><th class=\"l\">客服</th><th class=\"l\">得分构成 (0–100)</th><th>得分</th><th class=\"l\">等级</th>";
    for ind in &sheet.indicators {
        let _ = write!(b, "<th title=\"{}\">{}</th>", esc(&ind.key), esc(&ind.name));
    }
    b += "<th>日常考核</th><th>奖金</th><th>提成</th><th>月薪</th><th class=\"l\">标记</th></tr>";
    for r in &rows {
        let ls = lines.get(&r.0).cloned().unwrap_or_default();
        let mut svg = String::from("<svg width=\"200\" height=\"14\" style=\"background:#eef2f7\">");
        let mut x = 0.0;
        for (i, l) in ls.iter().enumerate() {
            let w: f64 = l.4.parse::<f64>().unwrap_or(0.0) * 2.0;
            if w > 0.0 {
                let _ = write!(
                    svg,
                    "<rect x=\"{x:.1}\" width=\"{w:.1}\" height=\"14\" fill=\"{}\"><title>{}: {}</title></rect>",
                    LINE_COLORS[i % LINE_COLORS.len()],
                    esc(&l.0),
                    esc(&l.4)
                );
            }
            x += w;
        }
        svg += "</svg>";
        let total: Decimal = r.2.parse().unwrap_or_default();
        let _ = write!(
            b,
            "<tr id=\"A-{a}\"><td>{}</td><td class=\"l\"><a href=\"#LA-{a}\">{a}</a></td><td class=\"l\">{svg}</td><td><b>{}</b></td><td class=\"l\">{}</td>",
            r.4,
            format_args!("{:.2}", total.round_dp(2)),
            esc(r.3.as_deref().unwrap_or("—")),
            a = esc(&r.0),
        );
        for l in &ls {
            let tier = match l.2 {
                Some(0) => " (else)".to_string(),
                Some(t) => format!(" (tier {t})"),
                None => String::new(),
            };
            let _ = write!(
                b,
                "<td title=\"value {}{}\">{}</td>",
                esc(l.1.as_deref().unwrap_or("–")),
                esc(&tier),
                esc(&l.3)
            );
        }
        let mut flag = if r.15.is_empty() {
            String::new()
        } else {
            format!(
                "<span class=\"flag\" title=\"never entered: score and pay are not final\">未完成 · 缺 {}</span> ",
                esc(&r.15.replace(',', ", "))
            )
        };
        flag += &if r.9 {
            format!("<span class=\"flag\">{} 个月低于线</span>", r.10)
        } else if r.10 > 0 {
            format!("<span class=\"muted\">低于线 {} 个月</span>", r.10)
        } else {
            String::new()
        };
        let _ = write!(
            b,
            "<td>{}</td><td>{}</td><td title=\"个人 {} + 公共 {}\">{}</td><td title=\"底薪 {} + 工龄 {} + 奖金 + 提成 + 考核积分 {} + 等级奖金 {} + 排名奖金 {}\"><b>{}</b></td><td class=\"l\">{flag}</td></tr>",
            esc(&r.5),
            esc(&r.6),
            esc(&r.11),
            esc(&r.12),
            esc(&r.7),
            esc(&r.13),
            esc(&r.14),
            esc(&r.16),
            esc(&r.17),
            esc(&r.18),
            esc(&r.8)
        );
    }
    b += "</table>";

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
    b += "<h2>日常考核: who gained and lost points</h2>";
    if per_agent.is_empty() {
        b += "<p class=\"muted\">No entries this month.</p>";
    } else {
        let _ = write!(
            b,
            "<p class=\"sub\">Score = base {} + entries{}.</p><table><tr><th class=\"l\">客服</th><th>加分</th><th>扣分</th><th class=\"l\">entries</th></tr>",
            sheet.ledger_base.normalize(),
            sheet.ledger_cap.map(|c| format!(", held within ±{}", c.normalize())).unwrap_or_default()
        );
        for (agent, (plus, minus, ids)) in &per_agent {
            let links: Vec<String> = ids.iter().map(|i| format!("<a href=\"#L{i}\">L{i}</a>")).collect();
            let _ = write!(
                b,
                "<tr id=\"LA-{a}\"><td class=\"l\">{a}</td><td class=\"pos\">+{}</td><td class=\"neg\">{}</td><td class=\"l\">{}</td></tr>",
                plus.normalize(),
                minus.normalize(),
                links.join(" "),
                a = esc(agent)
            );
        }
        b += "</table>";
    }
    b += &ledger_section("Entries", &entries, conn)?;
    let open = ledger::open_disputes(conn)?;
    b += "<h2>Open disputes (复核)</h2>";
    if open.is_empty() {
        b += "<p class=\"muted\">None.</p>";
    } else {
        b += "<table><tr><th class=\"l\">#</th><th class=\"l\">entry</th><th class=\"l\">客服</th><th>分</th><th class=\"l\">opened</th><th class=\"l\">reason</th></tr>";
        for (d, e) in &open {
            let _ = write!(
                b,
                "<tr><td class=\"l\">D{}</td><td class=\"l\"><a href=\"#L{eid}\">L{eid}</a></td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                d.id,
                esc(&e.agent),
                e.points.normalize(),
                esc(&crate::time::display_shanghai(d.opened_at)),
                esc(&d.reason),
                eid = e.id
            );
        }
        b += "</table>";
    }
    Ok(page(
        &format!("{} — {month}", sheet.name),
        &format!(
            "kefu monthly scores · month to date through {through} · money rounded once per figure, half up, to the fen"
        ),
        &b,
    ))
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

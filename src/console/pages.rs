//! The console's HTML, as maud templates: every value is escaped by the template engine.
//! One layout (header, navigation, sign-out form) serves every page; a page adds its
//! navigation entry in [`NAV`].

use maud::{DOCTYPE, Markup, html};

use super::reports::AgentDay;
use super::transcript::{Transcript, WaitMark};
use super::users::{Role, User};
use crate::alerts::format::duration;
use crate::time::{Millis, display_shanghai};

/// A navigation entry: path, label, and who sees it.
struct Nav {
    path: &'static str,
    label: &'static str,
    shown: fn(&User) -> bool,
}

/// The pages in the header, in order (the further report and points pages of issue 14 join here).
const NAV: &[Nav] = &[
    Nav { path: "/", label: "看板 Board", shown: |_| true },
    Nav { path: "/me", label: "我的一天 My day", shown: |u| u.role == Role::Agent },
    Nav { path: "/me/month", label: "本月 My month", shown: |u| u.role == Role::Agent },
    Nav { path: "/reports/day", label: "日报 Day", shown: |u| u.role != Role::Agent },
    Nav { path: "/reports/month", label: "月报 Month", shown: |u| u.role != Role::Agent },
    Nav { path: "/points", label: "日常考核 Points", shown: |_| true },
    Nav { path: "/inputs", label: "考核录入 Inputs", shown: |u| u.role != Role::Agent },
    Nav { path: "/findings", label: "违规复核 Findings", shown: |u| u.role != Role::Agent },
    Nav { path: "/answers", label: "自动回复 Auto-answers", shown: |u| u.role != Role::Agent },
    Nav { path: "/pay", label: "薪酬 Pay", shown: User::sees_pay },
];

fn layout(title: &str, user: Option<(&User, &str)>, current: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · kefu" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                header {
                    span.brand { "kefu 客服" }
                    @if let Some((u, csrf)) = user {
                        nav {
                            @for n in NAV.iter().filter(|n| (n.shown)(u)) {
                                a href=(n.path) class=[(n.path == current).then_some("current")] { (n.label) }
                            }
                        }
                        span.who { (u.name) " · " (u.role.as_str()) @if let Some(a) = &u.agent { " · " (a) } }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "退出 Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The login page; `error` is shown above the form.
pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    let body = html! {
        form.login method="post" action="/login" {
            h1 { "登录 Sign in" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            input type="hidden" name="csrf" value=(csrf);
            label { "用户名 User" input name="name" autocomplete="username" required autofocus; }
            label { "密码 Password" input name="password" type="password" autocomplete="current-password" required; }
            button type="submit" { "登录 Sign in" }
        }
    };
    layout("Sign in", None, "/login", body)
}

/// The live board's shell: the script fills it from the event stream.
pub fn board(user: &User, csrf: &str) -> Markup {
    let agent_view = user.agent.is_some() && user.role == Role::Agent;
    let body = html! {
        div #status.status data-connected="false" { "连接中 connecting…" }
        @if !agent_view {
            section #shops { h2 { "店铺今日 Shops today" } div.cards {} }
        }
        section {
            h2 { "等待中的买家 Waiting buyers " span #waiting-total {} }
            table #waiting {
                thead { tr {
                    th { "剩余 Time left" } th { "买家 Buyer" } th { "客服 Agent" } th { "接待 Load" }
                    th { "时限 Deadline" } th { "问题 Question" } th { "店铺 Shop" }
                } }
                tbody {}
            }
        }
        section {
            h2 { "客服 Agents" }
            table #agents {
                thead { tr {
                    th { "客服 Agent" } th { "状态 Status" } th { "接待 Load" } th { "时限 Tier" } th { "等待 Waiting" }
                    th { "接待人数 Served" } th { "已回复 Answered" } th { "超时 Breaches" } th { "平均响应 Avg" }
                    th { "首响 First" } th { "3分钟 3-min" } th { "距上次回复 Since reply" } th { "违规 Findings" }
                } }
                tbody {}
            }
        }
        section.feeds {
            div {
                h2 { "提醒 Alerts" }
                ol #alerts {}
            }
            div {
                h2 { "今日违规 Findings today" }
                ol #findings {}
            }
        }
        script src="/assets/board.js" {}
    };
    layout("Board", Some((user, csrf)), "/", body)
}

fn wait_text(w: &WaitMark, now: Millis) -> String {
    let deadline = duration(w.deadline_ms);
    match w.end {
        Some(end) => format!(
            "{} · {} · waited {} of {} (load {}){}",
            w.agent,
            w.outcome,
            duration(end - w.start),
            deadline,
            w.load,
            if w.breached(now) { " · 超时 BREACH" } else { "" }
        ),
        None => format!("{} · waiting now · deadline {} (load {})", w.agent, deadline, w.load),
    }
}

/// The conversation view: the day's lines with each wait marked and findings highlighted.
pub fn conversation(user: &User, csrf: &str, t: &Transcript, now: Millis) -> Markup {
    // Waits are placed before the first line at or after their start.
    let mut waits = t.waits.iter().peekable();
    let body = html! {
        h1 { "会话 Conversation " code { (t.conversation) } }
        p.meta {
            "店铺 Shop " (t.shop) " · " @if let Some(d) = t.day { (d.to_string()) }
            " · 客服 " (t.agents.join(", ")) " · " (t.waits.len()) " waits · " (t.findings) " findings"
        }
        ol.transcript {
            @for line in &t.lines {
                @while let Some(w) = waits.next_if(|w| w.start <= line.ts) {
                    li class={ "wait" @if w.breached(now) { " breach" } } {
                        span.ts { (display_shanghai(w.start)) } " ⏱ " (wait_text(w, now))
                    }
                }
                li class=(line.who.as_str()) {
                    span.ts { (display_shanghai(line.ts)) }
                    span.name { (line.name) }
                    span.text {
                        @for s in &line.segments {
                            @match &s.finding {
                                Some((category, severity, points)) => {
                                    mark class=(format!("finding {severity}")) title=(format!("{category} ({severity}, {points})")) { (s.text) }
                                }
                                None => { (s.text) }
                            }
                        }
                    }
                }
            }
            @for w in waits {
                li class={ "wait" @if w.breached(now) { " breach" } } {
                    span.ts { (display_shanghai(w.start)) } " ⏱ " (wait_text(w, now))
                }
            }
        }
        @if t.lines.is_empty() { p { "No message that day." } }
    };
    layout("Conversation", Some((user, csrf)), "", body)
}

/// One agent's pay for a month, as the scoring job stored it (money as stored: exact decimals).
#[derive(Debug, Clone)]
pub struct PayRow {
    /// Agent.
    pub agent: String,
    /// Score.
    pub total: String,
    /// Grade.
    pub grade: Option<String>,
    /// Bonus.
    pub bonus: String,
    /// Commission paid.
    pub commission: String,
    /// Salary.
    pub salary: String,
}

/// The owner's pay page.
pub fn pay(user: &User, csrf: &str, month: &str, rows: &[PayRow]) -> Markup {
    let body = html! {
        h1 { "薪酬 Pay · " (month) }
        form.month method="get" action="/pay" {
            input name="month" value=(month) pattern="[0-9]{4}-[0-9]{2}";
            button type="submit" { "Show" }
        }
        p { a.download href=(format!("/pay.csv?month={month}")) { "导出 CSV (Excel)" } }
        @if rows.is_empty() {
            p { "No scores for this month yet (the nightly job or `kefu score` writes them)." }
        } @else {
            table {
                thead { tr { th { "客服 Agent" } th { "得分 Score" } th { "等级 Grade" } th { "奖金 Bonus" } th { "提成 Commission" } th { "月薪 Salary" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { (r.agent) } td.num { (r.total) } td { (r.grade.as_deref().unwrap_or("—")) }
                            td.num { (r.bonus) } td.num { (r.commission) } td.num { (r.salary) }
                        }
                    }
                }
            }
        }
    };
    layout("Pay", Some((user, csrf)), "/pay", body)
}

/// An error page (403, 404, 400 …) with a plain message.
pub fn error(user: Option<(&User, &str)>, status: u16, message: &str) -> Markup {
    let body = html! {
        h1 { (status) }
        p.error { (message) }
        p { a href="/" { "看板 Board" } }
    };
    layout(&status.to_string(), user, "", body)
}

/// The script and style sheet, embedded in the binary.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "board.js" => Some(("text/javascript; charset=utf-8", include_str!("assets/board.js"))),
        "console.css" => Some(("text/css; charset=utf-8", include_str!("assets/console.css"))),
        "report.css" => Some(("text/css; charset=utf-8", crate::scoring::report::css())),
        _ => None,
    }
}

/// An agent's day ("my day"): waits, breaches linking to their conversation, findings, points.
pub fn agent_day(user: &User, csrf: &str, d: &AgentDay) -> Markup {
    let day = d.day.map(|x| x.to_string()).unwrap_or_default();
    let link = |conversation: &str| format!("/c/{}?day={day}", url_path(conversation));
    let shift = |n: i64| {
        d.day
            .and_then(|x| x.checked_add_signed(chrono::Duration::days(n)))
            .map(|x| x.to_string())
            .unwrap_or_default()
    };
    let (answered, avg) = d.answered();
    let breaches = d.waits.iter().filter(|w| w.breached()).count();
    let body = html! {
        h1 { "客服 " (d.agent) " · " (day) }
        p.meta {
            a href=(format!("?day={}", shift(-1))) { "← 前一天" } " · "
            a href=(format!("?day={}", shift(1))) { "后一天 →" }
        }
        p.meta {
            (d.waits.len()) " waits · " (answered) " answered · average " (avg.map_or("—".to_string(), duration))
            " · " (breaches) " breaches · " (d.findings.len()) " findings · " (d.points.len()) " points entries"
        }
        p.meta { "今日分数变动 Points today: " b #day-points { (d.day_points().normalize().to_string()) }
            " (findings not dismissed, and the day's 日常考核 entries that count)" }
        h2 { "等待 Waits" }
        table {
            thead { tr { th { "开始 Start" } th { "会话 Conversation" } th { "结果 Outcome" } th { "等待 Waited" } th { "时限 Deadline" } th { "接待 Load" } } }
            tbody {
                @for w in &d.waits {
                    tr class=[w.breached().then_some("breach")] {
                        td { (display_shanghai(w.start)) }
                        td { a href=(link(&w.conversation)) { (w.conversation) } }
                        td { (w.outcome) @if w.breached() { " · 超时 BREACH" } }
                        td.num { (duration(w.end - w.start)) }
                        td.num { (duration(w.deadline_ms)) }
                        td.num { (w.load) }
                    }
                }
            }
        }
        h2 { "违规 Findings" }
        table {
            thead { tr { th { "时间 Time" } th { "类别 Category" } th { "级别 Severity" } th { "扣分 Points" } th { "内容 Matched" } th { "会话 Conversation" } } }
            tbody {
                @for f in &d.findings {
                    tr class=[f.dismissed.then_some("voided")] {
                        td { (display_shanghai(f.ts)) } td { (f.category) @if f.dismissed { " · 已驳回 dismissed" } } td { (f.severity) } td.num { (f.points) }
                        td { mark class=(format!("finding {}", f.severity)) { (f.shown) } }
                        td { a href=(link(&f.conversation)) { (f.conversation) } }
                    }
                }
            }
        }
        h2 { "日常考核 Points" }
        table {
            thead { tr { th { "分 Points" } th { "来源 Source" } th { "类别 Category" } th { "原因 Reason" } } }
            tbody {
                @for p in &d.points {
                    tr { td.num { (p.points) } td { (p.source) } td { (p.category.as_deref().unwrap_or("—")) } td { (p.reason) } }
                }
            }
        }
    };
    layout("My day", Some((user, csrf)), "/me", body)
}

/// Percent-encodes a path segment (conversation ids come from the platform).
fn url_path(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// The points page (日常考核 / 复核): the month's entries with their appeals and the audit
/// trail; a supervisor adds entries and decides appeals, an agent appeals their own.
pub fn points(user: &User, csrf: &str, p: &PointsPage) -> Markup {
    let supervises = user.role != Role::Agent;
    let body = html! {
        h1 { "日常考核 Points · " (p.month) }
        form.month method="get" action="/points" {
            input name="month" value=(p.month) pattern="[0-9]{4}-[0-9]{2}";
            button type="submit" { "Show" }
        }
        @if let Some(msg) = &p.message { p.error role="alert" { (msg) } }
        @if supervises {
            h2 { "添加 Add an entry" }
            form.points-add method="post" action="/points/add" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="month" value=(p.month);
                label { "客服 Agent " input name="agent" required; }
                label { "日期 Day " input name="day" placeholder="YYYY-MM-DD" required; }
                label { "分 Points " input name="points" placeholder="-2" required; }
                label { "类别 Category " input name="category"; }
                label { "原因 Reason " input name="reason" required; }
                button type="submit" { "添加 Add" }
            }
        }
        h2 { "本月 Entries" }
        table #points {
            thead { tr { th { "#" } th { "客服 Agent" } th { "日期 Day" } th { "分 Points" } th { "来源 Source" } th { "原因 Reason" } th { "复核 Appeal" } @if supervises { th { "修改 Change" } } } }
            tbody {
                @for e in &p.entries {
                    tr id=(format!("L{}", e.id)) class=[e.voided.then_some("voided")] data-entry=(e.id) {
                        td { (e.id) } td { (e.agent) } td { (e.day) } td.num { (e.points.normalize().to_string()) } td { (e.source) }
                        td { (e.reason) @if let Some(c) = &e.category { " (" (c) ")" } }
                        td {
                            @if e.voided { (void_text(p.codes.get(&e.id).copied())) }
                            @else if let Some((dispute, reason)) = p.appeals.get(&e.id) {
                                "申诉中 appealed: " q { (reason) }
                                @if supervises {
                                    form.resolve method="post" action="/points/resolve" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="month" value=(p.month);
                                        input type="hidden" name="dispute" value=(dispute);
                                        input name="note" placeholder="说明 note" required;
                                        button type="submit" name="decision" value="accept" { "接受 Accept" }
                                        button type="submit" name="decision" value="reject" { "驳回 Reject" }
                                    }
                                }
                            } @else if !supervises {
                                form.appeal method="post" action="/points/appeal" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="month" value=(p.month);
                                    input type="hidden" name="entry" value=(e.id);
                                    input name="reason" placeholder="申诉理由 why" required;
                                    button type="submit" { "申诉 Appeal" }
                                }
                            }
                        }
                        @if supervises {
                            td {
                                @if !e.voided {
                                    details {
                                        summary { "修改 Edit / 删除 Remove" }
                                        form.points-edit method="post" action="/points/edit" {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="month" value=(p.month);
                                            input type="hidden" name="entry" value=(e.id);
                                            label { "分 " input name="points" value=(e.points.normalize().to_string()) size="5" required; }
                                            label { "类别 " input name="category" value=(e.category.as_deref().unwrap_or("")) size="8"; }
                                            label { "原因 " input name="reason" value=(e.reason) required; }
                                            button type="submit" { "保存 Save" }
                                        }
                                        form.points-remove method="post" action="/points/remove" {
                                            input type="hidden" name="csrf" value=(csrf);
                                            input type="hidden" name="month" value=(p.month);
                                            input type="hidden" name="entry" value=(e.id);
                                            input name="reason" placeholder="删除原因 why" required;
                                            button type="submit" { "删除 Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "合计 This month" }
        p.meta { "日常考核分 = base " (p.base.normalize().to_string()) " + the counted entries"
            @if let Some(c) = p.cap { ", held within ±" (c.normalize().to_string()) }
            ". 月得分 is the month's score as last computed from the stored days (recomputed after every change here)." }
        table #sums {
            thead { tr { th { "客服 Agent" } th { "分 Σ entries" } th { "日常考核分 Ledger score" } th { "月得分 Month score" } } }
            tbody {
                @for r in &p.sums {
                    tr data-agent=(r.agent) {
                        td { (r.agent) } td.num { (r.sum.normalize().to_string()) }
                        td.num.ledger { (r.ledger.normalize().to_string()) }
                        td.num.score { (r.score.as_deref().unwrap_or("—")) }
                    }
                }
            }
        }
        h2 { "记录 Audit trail" }
        (audit_list(&p.trail))
    };
    layout("Points", Some((user, csrf)), "/points", body)
}

/// The audit lines, oldest first.
pub fn audit_list(trail: &[super::points::Audit]) -> Markup {
    html! {
        ol #audit {
            @for a in trail {
                li data-action=(a.action) {
                    span.ts { (display_shanghai(a.at)) } (a.user) " · " (a.action)
                    @if let Some(e) = a.entry { " · #" (e) } " · " (a.detail)
                }
            }
        }
    }
}

fn void_text(code: Option<i64>) -> &'static str {
    match code {
        Some(crate::scoring::ledger::REMOVED) => "已删除 removed",
        Some(crate::scoring::ledger::DISMISSED) => "违规已驳回 finding dismissed",
        _ => "已撤销 overturned",
    }
}

/// One agent's month on the points page.
#[derive(Debug, Clone, Default)]
pub struct SumRow {
    /// Agent.
    pub agent: String,
    /// Σ points of the entries that count.
    pub sum: rust_decimal::Decimal,
    /// The ledger score (base + counted entries, capped), computed now.
    pub ledger: rust_decimal::Decimal,
    /// The month's total as stored by the last scoring (none: not scored).
    pub score: Option<String>,
}

/// What the points page shows.
#[derive(Debug, Clone, Default)]
pub struct PointsPage {
    /// YYYY-MM.
    pub month: String,
    /// Entries of the month (the agent's own for an agent).
    pub entries: Vec<crate::scoring::ledger::Entry>,
    /// Open appeals by entry: (dispute id, reason).
    pub appeals: std::collections::HashMap<i64, (i64, String)>,
    /// Per agent: the sum, the ledger score, the month score.
    pub sums: Vec<SumRow>,
    /// `voided` codes of the entries that do not count.
    pub codes: std::collections::HashMap<i64, i64>,
    /// The sheet's ledger base and cap.
    pub base: rust_decimal::Decimal,
    /// Cap (±).
    pub cap: Option<rust_decimal::Decimal>,
    /// The audit trail of those entries.
    pub trail: Vec<super::points::Audit>,
    /// A refusal to show above the page (a bad form, a closed window).
    pub message: Option<String>,
}

/// The score-input grid page: a month of agents × input indicators, missing cells marked,
/// cells editable, a CSV upload, the month score per agent and the audit trail.
pub fn inputs(user: &User, csrf: &str, p: &InputsPage) -> Markup {
    let g = &p.grid;
    let body = html! {
        h1 { "考核录入 Score inputs · " (p.month) }
        form.month method="get" action="/inputs" {
            input name="month" value=(p.month) pattern="[0-9]{4}-[0-9]{2}";
            button type="submit" { "Show" }
        }
        @if let Some(msg) = &p.message { div.error role="alert" { @for line in msg.lines() { p { (line) } } } }
        @if g.columns.is_empty() {
            p { "The scoring sheet (rules/scoring.toml) has no supervisor-scored indicator (metric = \"input\")." }
        } @else {
            p.meta { "Empty cells (marked) are not entered yet: the month's score stays unfinished until they are, unless the row has a default. Percent rows take 0–100. Emptying a cell removes its value." }
            form.grid method="post" action="/inputs" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="month" value=(p.month);
                @for c in &g.columns { input type="hidden" name="key" value=(c.key); }
                @for r in &g.rows { input type="hidden" name="agent" value=(r.agent); }
                table #grid {
                    thead { tr {
                        th { "客服 Agent" }
                        @for c in &g.columns { th title=(c.key) { (c.name) br; small { (c.takes) @if let Some(d) = &c.default { " · default " (d) } } } }
                        th { "月得分 Month score" }
                    } }
                    tbody {
                        @for (i, r) in g.rows.iter().enumerate() {
                            tr data-agent=(r.agent) {
                                td { (r.agent) }
                                @for (j, cell) in r.cells.iter().enumerate() {
                                    td class=[cell.is_none().then_some("missing")] data-key=(g.columns[j].key) {
                                        input name=(format!("v{i}_{j}")) value=(cell.as_deref().unwrap_or("")) size="6" inputmode="decimal";
                                    }
                                }
                                td.num.score { (r.score.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
                button type="submit" { "保存 Save" }
            }
            h2 { "上传 Upload a CSV" }
            p.meta {
                "The same file as " code { "kefu score-input import" } " takes: a header " code { "agent" } " (or 客服) and one column per indicator, by key or name ("
                @for (j, c) in g.columns.iter().enumerate() { @if j > 0 { ", " } code { (c.key) } " / " (c.name) }
                "); UTF-8 or GBK as Excel saves it. Every line is checked first: one bad line and nothing is stored."
            }
            form.upload method="post" action="/inputs/import" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="month" value=(p.month);
                input type="file" name="file" accept=".csv,text/csv" required;
                button type="submit" { "上传 Upload" }
            }
        }
        h2 { "记录 Audit trail" }
        (audit_list(&p.trail))
    };
    layout("Score inputs", Some((user, csrf)), "/inputs", body)
}

/// What the score-input page shows.
#[derive(Debug, Clone, Default)]
pub struct InputsPage {
    /// YYYY-MM.
    pub month: String,
    /// The grid.
    pub grid: super::inputs::Grid,
    /// The latest changes to score inputs.
    pub trail: Vec<super::points::Audit>,
    /// A refusal (every bad cell or line, one per line).
    pub message: Option<String>,
}

/// The findings review page: the day's phrase-guard findings with confirm / dismiss, the
/// candidate exceptions from dismissed findings, and the review trail.
pub fn findings(user: &User, csrf: &str, p: &FindingsPage) -> Markup {
    let link = |conversation: &str| format!("/c/{}?day={}", url_path(conversation), p.day);
    let body = html! {
        h1 { "违规复核 Findings review · " (p.day) }
        form.month method="get" action="/findings" {
            input name="day" value=(p.day) pattern="[0-9]{4}-[0-9]{2}-[0-9]{2}";
            button type="submit" { "Show" }
        }
        @if let Some(msg) = &p.message { p.error role="alert" { (msg) } }
        p.meta { "Confirm a finding to keep its points; dismiss it (a false alarm) to take its points back from the agent's day and month. A dismissed finding's wording is kept below as a candidate exception for rules/guard.toml." }
        table #findings-review {
            thead { tr { th { "时间 Time" } th { "客服 Agent" } th { "店铺 Shop" } th { "类别 Category" } th { "扣分 Points" } th { "内容 Matched" } th { "会话 Conversation" } th { "复核 Review" } } }
            tbody {
                @for f in &p.findings {
                    tr class=[f.dismissed().then_some("voided")] data-message=(f.flag.message_id) data-category=(f.flag.category) {
                        td { (display_shanghai(f.flag.ts)) } td { (f.flag.agent) } td { (f.flag.shop) } td { (f.flag.category) " (" (f.flag.severity) ")" } td.num { (f.flag.points) }
                        td { mark class=(format!("finding {}", f.flag.severity)) { (f.flag.matched) } }
                        td { a href=(link(&f.flag.conversation)) { (f.flag.conversation) } }
                        td {
                            @if let Some((status, by, note)) = &f.review {
                                span.review data-status=(status) {
                                    @if status == "dismissed" { "已驳回 dismissed" } @else { "已确认 confirmed" }
                                    " · " (by) @if !note.is_empty() { " · " (note) }
                                }
                            }
                            form.review method="post" action="/findings/review" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="day" value=(p.day);
                                input type="hidden" name="message" value=(f.flag.message_id);
                                input type="hidden" name="category" value=(f.flag.category);
                                input type="hidden" name="start" value=(f.flag.start);
                                input name="note" placeholder="说明 note";
                                @if !matches!(&f.review, Some((s, _, _)) if s == "confirmed") {
                                    button type="submit" name="decision" value="confirm" { "确认 Confirm" }
                                }
                                @if !f.dismissed() {
                                    button type="submit" name="decision" value="dismiss" { "驳回 Dismiss" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if p.findings.is_empty() { p { "No phrase-guard finding that day." } }
        h2 { "候选例外 Candidate exceptions for rules/guard.toml" }
        p.meta {
            "Each dismissed finding's words around the match (masked). To stop the guard flagging that wording, add it to the category's "
            code { "exceptions = [...]" } " in " code { "rules/guard.toml" } " (a hit lying inside an exception is not a finding), run "
            code { "kefu check" } ", and the running service picks it up at its next reload (every 2 s, or at once on SIGHUP). "
            "The console does not edit guard.toml itself: an exception silences the phrase for every agent, which is the shop's decision."
        }
        table #candidates {
            thead { tr { th { "类别 Category" } th { "例外 Exception text" } th { "匹配 Match" } th { "驳回 Dismissed by" } th { "说明 Note" } } }
            tbody {
                @for c in &p.candidates {
                    tr { td { (c.category) } td { code { (c.text) } } td { (c.shown) } td { (c.user) " · " (display_shanghai(c.at)) } td { (c.note) } }
                }
            }
        }
        h2 { "记录 Audit trail" }
        (audit_list(&p.trail))
    };
    layout("Findings", Some((user, csrf)), "/findings", body)
}

/// What the findings review page shows.
#[derive(Debug, Clone, Default)]
pub struct FindingsPage {
    /// YYYY-MM-DD.
    pub day: String,
    /// The day's findings in the login's shops.
    pub findings: Vec<super::findings::Finding>,
    /// Dismissed findings as candidate exceptions.
    pub candidates: Vec<super::findings::Candidate>,
    /// Review changes.
    pub trail: Vec<super::points::Audit>,
    /// A refusal.
    pub message: Option<String>,
}

/// The auto-answers page: the day's unanswered questions grouped, most frequent first, each
/// with a form that adds a keyword rule to `replies/auto.toml`.
pub fn answers(user: &User, csrf: &str, p: &AnswersPage) -> Markup {
    let body = html! {
        h1 { "自动回复 Auto-answers from misses · " (p.day) }
        form.month method="get" action="/answers" {
            input name="day" value=(p.day) pattern="[0-9]{4}-[0-9]{2}-[0-9]{2}";
            button type="submit" { "Show" }
        }
        @if let Some(msg) = &p.message { div.error role="alert" { @for line in msg.lines() { p { (line) } } } }
        p.meta {
            "Buyers' questions no rule answered that day, same or similar ones together, most frequent first (as "
            code { "kefu replies misses --grouped" } "). Add a keyword rule from a group: it is checked as "
            code { "kefu check" } " checks " code { "replies/auto.toml" } ", written to the file (its comments kept) only when valid, and the running robot serves it at once."
        }
        @if !p.writable {
            p.error { "kefu runs without a replies folder (--replies DIR): rules cannot be added here." }
        }
        @if p.groups.is_empty() { p { "No unanswered question that day." } }
        ol #miss-groups {
            @for g in &p.groups {
                li.group data-count=(g.count) {
                    div { b.count { (g.count) "×" } " " q.question { (g.question) }
                        @if !g.others.is_empty() { span.meta { " also: " (g.others.join(" / ")) } } }
                    @if p.writable {
                        form.auto-add method="post" action="/answers/add" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="day" value=(p.day);
                            input type="hidden" name="question" value=(g.question);
                            label { "名称 id " input name="id" required size="12"; }
                            label { "类别 " select name="category" {
                                @for c in super::answers::CATEGORIES { option value=(c) { (c) } }
                            } }
                            label { "关键词 keywords " input name="keywords" placeholder="花呗, 分期" required size="16"; }
                            label { "回复 answer " input name="answer" required size="40"; }
                            button type="submit" { "添加 Add" }
                        }
                    }
                }
            }
        }
        h2 { "记录 Audit trail" }
        (audit_list(&p.trail))
    };
    layout("Auto-answers", Some((user, csrf)), "/answers", body)
}

/// What the auto-answers page shows.
#[derive(Debug, Clone, Default)]
pub struct AnswersPage {
    /// YYYY-MM-DD.
    pub day: String,
    /// The day's misses, grouped, most frequent first (masked).
    pub groups: Vec<crate::replies::similar::MissGroup>,
    /// A replies folder to write to.
    pub writable: bool,
    /// Rule changes made in the console.
    pub trail: Vec<super::points::Audit>,
    /// A refusal (the field, or the check's reason with file and line).
    pub message: Option<String>,
}

/// "My month": an agent's score so far, per indicator what the next tier asks, breaches
/// linking to their conversations, findings and 日常考核. No pay figures.
pub fn agent_month(user: &User, csrf: &str, m: &super::reports::AgentMonth) -> Markup {
    let link = |conversation: &str, start: Millis| {
        format!("/c/{}?day={}", url_path(conversation), crate::time::shanghai_day(start))
    };
    let body = html! {
        h1 { "客服 " (m.agent) " · " (m.month) " 本月 My month" }
        form.month method="get" {
            input name="month" value=(m.month) pattern="[0-9]{4}-[0-9]{2}";
            button type="submit" { "Show" }
        }
        @match &m.through {
            None => p.meta { "This month is not scored yet (the nightly job scores each day after it ends)." },
            Some(t) => div.cards {
                div.card { h3 { "得分 Score" } dl {
                    dt { "至 through" } dd { (t) }
                    dt { "得分 score" } dd #month-score { (m.total.as_deref().unwrap_or("—")) }
                    dt { "等级 grade" } dd { (m.grade.as_deref().unwrap_or("—")) }
                    dt { "名次 rank" } dd { (m.rank.map(|r| r.to_string()).unwrap_or_default()) }
                    dt { "日常考核 ledger" } dd { (m.ledger.as_deref().unwrap_or("—")) }
                } }
                div.card { h3 { "本月 This month" } dl {
                    dt { "等待 waits" } dd { (m.waits.0) }
                    dt { "已回复 answered" } dd { (m.waits.1) }
                    dt { "超时 breaches" } dd { (m.waits.2) }
                    dt { "违规 findings" } dd { (m.findings.0) " (" (m.findings.1) " 分)" }
                } }
            },
        }
        @if !m.missing.is_empty() { p.error { "未完成 not final: " (m.missing) " not entered yet" } }
        h2 { "指标 Indicators: what the next tier asks" }
        table #indicators {
            thead { tr { th { "指标 Indicator" } th { "权重 Weight" } th { "数值 Value" } th { "得分 Points" } th { "加权 Weighted" } th { "下一档 Next tier" } } }
            tbody {
                @for i in &m.indicators {
                    tr data-key=(i.key) {
                        td { (i.name) } td.num { (i.weight) "%" } td.num { (i.value.as_deref().unwrap_or("—")) }
                        td.num { (i.points) } td.num { (i.weighted) } td.next { (i.next) }
                    }
                }
            }
        }
        h2 { "超时 Breaches" }
        table #breaches {
            thead { tr { th { "开始 Start" } th { "会话 Conversation" } th { "等待 Waited" } th { "时限 Deadline" } } }
            tbody {
                @for b in &m.breaches {
                    tr { td { (display_shanghai(b.start)) } td { a href=(link(&b.conversation, b.start)) { (b.conversation) } }
                         td.num { (duration(b.waited_ms)) } td.num { (duration(b.deadline_ms)) } }
                }
            }
        }
        p.meta { "Findings and 日常考核 entries, each with its points: " a href="/points" { "日常考核 Points" } "; each day: the day pages." }
    };
    layout("My month", Some((user, csrf)), "/me/month", body)
}

/// A report page (day or month) served from the database: the nightly job's own template
/// body (`scoring::report`) inside the console's layout, with the report style sheet.
pub fn report(user: &User, csrf: &str, current: &str, r: &crate::scoring::report::Report) -> Markup {
    let body = html! {
        link rel="stylesheet" href="/assets/report.css";
        div.report { h1 { (r.title) } div.sub { (r.sub) } (r.body) }
    };
    layout(&r.title, Some((user, csrf)), current, body)
}

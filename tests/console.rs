//! The console in a real browser: a headless Chromium (WebDriver, chromedriver) opens the
//! board of a running kefu fed by the simulator over a real websocket, with a real SQLite
//! file. Waits are bounded; nothing is mocked.

mod util;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fantoccini::Locator;
use kefu::alerts::Plan;
use kefu::console::users::{self, Role, User};
use kefu::console::{Console, ConsoleConfig};
use kefu::event::Event;
use kefu::live::{AssistConfig, ChannelSeam, Live, LiveConfig, LiveOptions, Sets, TimeSource};
use kefu::rules::response_time::ResponseRules;
use kefu::simulate::server::rebase;
use kefu::simulate::{ServerConfig, SimConfig, generate};
use kefu::store::Store;
use kefu::time::{Millis, format_rfc3339_shanghai, now_ms, shanghai_day};
use tokio::time::Instant;
use util::browser::Browser;
use util::ws::{quick_gateway, server};

const PASSWORD: &str = "correct horse battery";

fn message(id: &str, ts: Millis, conversation: &str, agent: &str, from: &str, text: &str) -> Event {
    message_in("tmall-test", id, ts, conversation, agent, from, text)
}

fn message_in(
    shop: &str,
    id: &str,
    ts: Millis,
    conversation: &str,
    agent: &str,
    from: &str,
    text: &str,
) -> Event {
    let line = serde_json::json!({
        "type": "message", "id": id, "ts": format_rfc3339_shanghai(ts), "shop": shop,
        "conversation": conversation, "customer": format!("tb_buyer_{conversation}"), "agent": agent,
        "from": from, "text": text,
    });
    kefu::event::parse(&line.to_string()).expect("valid event")
}

fn add_users(db: &Path) {
    let store = Store::open(db).expect("open db");
    let users = [
        User { name: "boss".into(), role: Role::Owner, agent: None, shops: vec![] },
        User { name: "wang".into(), role: Role::Supervisor, agent: None, shops: vec![] },
        User { name: "li".into(), role: Role::Agent, agent: Some("a1".into()), shops: vec![] },
    ];
    for u in &users {
        users::add(store.conn(), u, PASSWORD, now_ms()).expect("add user");
    }
}

/// A console over `db` on a free loopback port: no rules folder, no replies, plain cookies.
fn config(db: &Path) -> ConsoleConfig {
    ConsoleConfig {
        addr: util::ws::any_port(),
        db: db.to_path_buf(),
        secure_cookies: false,
        rules: None,
        replies: None,
        reload: None,
    }
}

/// The console started with `config` and an empty board, and the board's feed (keep it:
/// the board's publisher lives as long as it does).
async fn start(config: ConsoleConfig) -> (kefu::console::BoardFeed, Console) {
    let (feed, board) = Console::board(Plan::default(), 1.0);
    (feed, Console::start(&config, board).await.expect("console starts"))
}

/// Short deadlines so a breach comes within the test: 3 s under 4 buyers, 6 s above.
fn quick_rules() -> ResponseRules {
    ResponseRules {
        idle_close_ms: 1_800_000,
        active_window_ms: 300_000,
        tiers: vec![(3, 3_000), (u32::MAX, 6_000)],
    }
}

/// The browser tests of this file take turns: one Chromium at a time on CI's two cores,
/// so none of their bounded waits (a buyer on the board, an auto-answer served) competes
/// with three other browsers for the CPU.
async fn one_browser_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

fn screenshot_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("KEFU_SCREENSHOTS").map(Into::into)
}

async fn screenshot(b: &Browser, name: &str) {
    let png = b.client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if let Some(dir) = screenshot_dir() {
        std::fs::write(dir.join(name), png).expect("write screenshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_in_a_browser_shows_waits_live_turns_red_and_keeps_agents_to_their_own() {
    let _turn = one_browser_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    add_users(&db);

    // The console first, with the board the runtime will feed.
    let plan = Plan::default();
    let (feed, board) = Console::board(plan, 1.0);
    let console = Console::start(&config(&db), board).await.expect("console starts");
    let base = console.url();

    // Nothing but the login page without a session.
    let anon = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in ["", "board/stream", "c/t-c1", "pay", "assets/board.js", "nope"] {
        let r = anon.get(format!("{base}{path}")).send().await.unwrap();
        assert!(matches!(r.status().as_u16(), 303 | 401), "/{path} without login: {}", r.status());
    }
    assert_eq!(anon.get(format!("{base}login")).send().await.unwrap().status(), 200);

    let browser = Browser::start().await;
    browser.sign_in(&base, "wang", PASSWORD).await;
    browser.wait_css("#status[data-connected=true]", Duration::from_secs(10)).await;
    assert_eq!(browser.status_of("/pay").await, 403, "a supervisor does not see pay");

    // The shop's traffic: the simulator's generated day plus a scripted part.
    let t0 = now_ms() + 500;
    let mut events =
        generate(&SimConfig { events: 3_000, agents: 4, seed: 11, violations: 0.05, ..SimConfig::default() });
    rebase(&mut events, t0);
    let scripted = [
        message("t1", t0 + 1_000, "t-c1", "a1", "customer", "你好，请问有货吗？我的电话13812345678"),
        message("t2", t0 + 1_500, "t-c1", "a1", "agent", "亲，爱买不买哦"),
        message("t3", t0 + 2_500, "t-c2", "a2", "customer", "请问发货了吗"),
        message("t4", t0 + 3_000, "t-c3", "a1", "customer", "在吗"),
    ];
    events.extend(scripted);
    events.sort_by_key(|e| e.ts);
    let seq_of = |id: &str| events.iter().position(|e| e.id == id).expect("scripted event") as u64 + 1;
    let c2_seq = seq_of("t3");
    let srv = server(&events, ServerConfig { speed: 1.0, ..ServerConfig::default() }).await;
    let sets = Sets::load(None, None).expect("embedded sets");
    let (seam, _alerts) = ChannelSeam::new();
    let live = LiveConfig {
        time: TimeSource::wall(),
        plan,
        assist: AssistConfig::with_sets(&sets),
        board: Some(feed),
        ..LiveConfig::new(quick_rules())
    };
    let options = LiveOptions { db: db.clone(), gateway: quick_gateway(&srv.url(), None), live };
    let live = Live::start(options, Box::new(seam)).expect("live starts");

    // When the buyer's message of t-c2 is committed, the board must show it within 1 s.
    let counters = live.counters.clone();
    let committed = tokio::spawn(async move {
        let end = Instant::now() + Duration::from_secs(20);
        while counters.last_seq.load(Ordering::Relaxed) < c2_seq {
            assert!(Instant::now() < end, "seq {c2_seq} never committed");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Instant::now()
    });
    let row = "#waiting tr[data-conversation='t-c2']";
    browser.wait_css(row, Duration::from_secs(20)).await;
    let seen = Instant::now();
    let committed = committed.await.expect("commit watcher");
    let latency = seen.saturating_duration_since(committed);
    // Pushed, not polled: the page shows the buyer without a reload. The bound is loose for a
    // busy CI machine; the update latency itself is a benchmark (`cargo bench --bench
    // console`, docs/benchmarks.md: p99 291 ms with 10,000 waiting).
    eprintln!("the buyer appeared {latency:?} after the commit");
    assert!(latency <= Duration::from_secs(10), "the buyer appeared {latency:?} after the commit");
    let class = browser.client.find(Locator::Css(row)).await.unwrap().attr("class").await.unwrap();
    assert!(!class.unwrap_or_default().contains("breach"), "not red before its deadline");
    let text = browser.text(row).await.unwrap_or_default();
    assert!(text.contains("a2") && text.contains("请问发货了吗"), "agent and question shown: {text}");
    assert!(!browser.source().await.contains("tb_buyer_"), "buyer ids are masked on the board");

    // Its 3 s deadline passes with no answer: the countdown turns red.
    browser.wait_css("#waiting tr.breach[data-conversation='t-c2']", Duration::from_secs(6)).await;
    assert!(now_ms() >= t0 + 2_500 + 3_000, "red only once the deadline passed");
    screenshot(&browser, "console-board.png").await;

    // The conversation view: the banned phrase highlighted at its span, the phone masked.
    let day = shanghai_day(t0);
    browser.client.goto(&format!("{base}c/t-c1?day={day}")).await.unwrap();
    browser.wait_css("mark.finding", Duration::from_secs(5)).await;
    assert_eq!(browser.text("mark.finding").await.as_deref(), Some("爱买不买"));
    let page = browser.source().await;
    assert!(page.contains("138****5678") && !page.contains("13812345678"), "phone masked");
    assert!(!page.contains("tb_buyer_t-c1"), "buyer id masked");
    assert!(browser.has("li.wait").await, "the wait is marked");
    screenshot(&browser, "console-conversation.png").await;

    // An agent sees only their own buyers; another agent's conversation and pay are 403.
    browser.client.goto(&base).await.unwrap();
    browser.sign_out().await;
    browser.sign_in(&base, "li", PASSWORD).await;
    browser.wait_css("#waiting tr[data-conversation='t-c3']", Duration::from_secs(10)).await;
    let rows = browser.client.find_all(Locator::Css("#waiting tbody tr")).await.unwrap();
    let mut convs = Vec::new();
    for r in rows {
        convs.push(r.attr("data-conversation").await.unwrap().unwrap_or_default());
    }
    assert_eq!(convs, ["t-c3"], "only a1's waiting buyer");
    assert!(!browser.has("#shops").await, "no shop totals for an agent");
    let agents = browser.client.find_all(Locator::Css("#agents tbody tr")).await.unwrap();
    assert_eq!(agents.len(), 1, "only their own row");
    assert_eq!(browser.status_of(&format!("/c/t-c2?day={day}")).await, 403, "another agent's conversation");
    assert_eq!(browser.status_of(&format!("/c/t-c1?day={day}")).await, 200, "their own conversation");
    assert_eq!(browser.status_of("/pay").await, 403, "pay");
    browser.client.goto(&format!("{base}pay")).await.unwrap();
    assert!(browser.source().await.contains("403"));
    assert_eq!(browser.status_of(&format!("/agent/a2?day={day}")).await, 403, "another agent's day");

    // "My day": their waits and the finding, linking to the conversation.
    browser.client.goto(&format!("{base}me?day={day}")).await.unwrap();
    browser.wait_css("mark.finding", Duration::from_secs(5)).await;
    assert_eq!(browser.text("mark.finding").await.as_deref(), Some("爱买不买"));
    assert!(browser.has("a[href^='/c/t-c1']").await, "the wait links to its conversation");

    // A wrong password is refused; after three failures even the right one must wait.
    browser.client.goto(&base).await.unwrap();
    browser.sign_out().await;
    for _ in 0..3 {
        browser.sign_in(&base, "li", "not the password").await;
        browser.wait_css("p.error", Duration::from_secs(5)).await;
        let e = browser.text("p.error").await.unwrap_or_default();
        assert!(e.contains("Wrong user name or password"), "{e}");
    }
    browser.sign_in(&base, "li", PASSWORD).await;
    browser.wait_css("p.error", Duration::from_secs(5)).await;
    let e = browser.text("p.error").await.unwrap_or_default();
    assert!(e.contains("Too many failed attempts"), "slowed: {e}");
    assert!(!browser.has("form.logout").await, "not signed in while locked");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    browser.sign_in(&base, "li", PASSWORD).await;
    browser.wait_css("form.logout", Duration::from_secs(5)).await;

    // The owner sees pay.
    browser.sign_out().await;
    browser.sign_in(&base, "boss", PASSWORD).await;
    browser.wait_css("form.logout", Duration::from_secs(5)).await;
    assert_eq!(browser.status_of("/pay").await, 200);

    browser.close().await;
    console.stop();
    let _ = tokio::time::timeout(Duration::from_secs(10), live.stop()).await;
}

/// A client that keeps cookies by hand and follows no redirect, to see each answer.
struct Http {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Http {
    fn new(base: &str) -> Http {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Http { client, base: base.to_string(), cookies: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let Some((k, rest)) = v.to_str().unwrap().split_once('=') else { continue };
            let value = rest.split(';').next().unwrap_or_default().to_string();
            self.cookies.retain(|(n, _)| n != k);
            if !value.is_empty() {
                self.cookies.push((k.to_string(), value));
            }
        }
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&res);
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&res);
        (res.status().as_u16(), res.text().await.unwrap())
    }
}

impl Http {
    /// Opens the board's event stream with this client's cookies.
    async fn stream(&self) -> reqwest::Response {
        self.client
            .get(format!("{}board/stream", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap()
    }
}

/// Reads the stream until the server ends it (bounded: a real server on a busy machine);
/// returns everything it sent.
async fn until_closed(mut res: reqwest::Response) -> String {
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = res.chunk().await.expect("the stream reads") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read).await.expect("the server ends the stream");
    text
}

/// The first chunk that holds a board state.
async fn first_state(res: &mut reqwest::Response) -> String {
    let read = async {
        let mut text = String::new();
        while !text.contains("event: board") {
            let chunk = res.chunk().await.unwrap().expect("the stream is open");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    };
    tokio::time::timeout(Duration::from_secs(120), read).await.expect("a first state")
}

#[tokio::test]
async fn the_board_stream_ends_when_its_session_is_signed_out_or_expires() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    add_users(&db);
    let (mut feed, console) = start(config(&db)).await;

    // Signed out while the board is open: the next published state is not sent, the stream ends.
    let mut http = Http::new(&console.url());
    let csrf = http.sign_in("wang").await;
    let mut stream = http.stream().await;
    assert_eq!(stream.status().as_u16(), 200);
    let before = first_state(&mut stream).await;
    assert!(!before.contains("agent-after-logout"));
    let (status, _) = http.post("logout", &[("csrf", csrf.as_str())]).await;
    assert_eq!(status, 303, "signed out");
    let ts = now_ms();
    feed.event(&message("m-after", ts, "c-after", "agent-after-logout", "agent", "在的"));
    feed.commit(ts);
    let after = until_closed(stream).await;
    assert!(!after.contains("agent-after-logout"), "a signed-out session got a state: {after}");
    assert_eq!(http.stream().await.status().as_u16(), 401, "and cannot reconnect");

    // A session that expires while the board is open and nothing is published: the stream
    // ends at the expiry, by its timer.
    let mut http = Http::new(&console.url());
    http.sign_in("wang").await;
    let store = Store::open(&db).unwrap();
    store.conn().execute("UPDATE console_sessions SET expires_at = ?1", [now_ms() + 10_000]).unwrap();
    let mut stream = http.stream().await;
    assert_eq!(stream.status().as_u16(), 200);
    let state = first_state(&mut stream).await;
    assert!(state.contains("agent-after-logout"), "the live session sees the board");
    let rest = until_closed(stream).await;
    assert!(!rest.contains("event: board"), "no state after the first: {rest}");
    assert_eq!(http.stream().await.status().as_u16(), 401);

    // Expired while states keep coming: checked before each one.
    let mut http = Http::new(&console.url());
    http.sign_in("wang").await;
    let mut stream = http.stream().await;
    first_state(&mut stream).await;
    store.conn().execute("UPDATE console_sessions SET expires_at = ?1", [now_ms() - 1]).unwrap();
    let ts = now_ms();
    feed.event(&message("m-expired", ts, "c-expired", "agent-after-expiry", "agent", "在的"));
    feed.commit(ts);
    let after = until_closed(stream).await;
    assert!(!after.contains("agent-after-expiry"), "an expired session got a state: {after}");
}

fn csrf_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused_and_bad_parameters_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    add_users(&db);
    let (_feed, console) = start(ConsoleConfig { secure_cookies: true, ..config(&db) }).await;
    let mut http = Http::new(&console.url());

    // The login form's token must come back with it.
    let (_, page) = http.get("login").await;
    let token = csrf_in(&page);
    let (status, _) =
        http.post("login", &[("name", "boss"), ("password", PASSWORD), ("csrf", "forged")]).await;
    assert_eq!(status, 403, "login with a wrong form token");
    let (status, _) = http.post("login", &[("name", "boss"), ("password", PASSWORD), ("csrf", &token)]).await;
    assert_eq!(status, 303, "login with the form's token");
    let session = http.cookies.iter().find(|(k, _)| k == "kefu_session").map(|(_, v)| v.clone());
    assert!(session.is_some(), "a session cookie");

    let (status, page) = http.get("").await;
    assert_eq!(status, 200);
    let csrf = csrf_in(&page);
    let (status, _) = http.post("logout", &[("csrf", "forged")]).await;
    assert_eq!(status, 403, "sign-out without the session's token");
    assert_eq!(http.get("").await.0, 200, "still signed in");

    // Bad parameters: a clear 400 naming what was wrong, escaped.
    let (status, page) = http.get("c/x?day=<script>").await;
    assert_eq!(status, 400);
    assert!(
        page.contains("expected YYYY-MM-DD") && page.contains("&lt;script&gt;") && !page.contains("<script>")
    );
    let (status, page) = http.get("pay?month=2026-13").await;
    assert_eq!(status, 400);
    assert!(page.contains("expected YYYY-MM"));
    assert_eq!(http.get("c/nothing-here?day=2026-11-11").await.0, 404);

    let (status, _) = http.post("logout", &[("csrf", csrf.as_str())]).await;
    assert_eq!(status, 303);
    let (status, _) = http.get("").await;
    assert_eq!(status, 303, "signed out");
    // The stored session is gone, not only the cookie.
    let store = Store::open(&db).unwrap();
    let n: i64 = store.conn().query_row("SELECT COUNT(*) FROM console_sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0);
    console.stop();
}

#[test]
fn kefu_users_adds_lists_changes_and_removes_logins_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let db = db.to_str().unwrap();
    let kefu = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) =
        kefu(&["users", "add", "li", "--role", "agent", "--agent", "agent01", "--db", db], "long password\n");
    assert!(ok, "{out}");
    let (ok, out) = kefu(&["users", "add", "zhao", "--role", "agent", "--db", db], "long password\n");
    assert!(!ok && out.contains("role agent needs --agent"), "{out}");
    let (ok, out) = kefu(&["users", "add", "wang", "--role", "supervisor", "--db", db], "short\n");
    assert!(!ok && out.contains("at least 8 characters"), "{out}");
    let (ok, out) = kefu(&["users", "add", "li", "--role", "owner", "--db", db], "long password\n");
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = kefu(&["users", "list", "--db", db], "");
    assert!(
        ok && out.contains("li\tagent\tagent01") && !out.contains("long password") && !out.contains("argon2"),
        "{out}"
    );
    let (ok, out) = kefu(&["users", "passwd", "li", "--db", db], "another long one\n");
    assert!(ok, "{out}");
    let store = Store::open(Path::new(db)).unwrap();
    assert!(users::verify(store.conn(), "li", "another long one").unwrap().is_some());
    drop(store);
    let (ok, out) = kefu(&["users", "remove", "nobody", "--db", db], "");
    assert!(!ok && out.contains("no user `nobody`"), "{out}");
    let (ok, _) = kefu(&["users", "remove", "li", "--db", db], "");
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_added_appealed_accepted_edited_and_removed_in_the_browser_move_the_month_score_and_leave_an_audit_trail()
 {
    let _turn = one_browser_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    add_users(&db);
    // A scored month for a1 to come back to: +1 on the 2nd, the month scored by the job.
    {
        let mut store = Store::open(&db).unwrap();
        let day = kefu::time::parse_day("2026-11-02").unwrap();
        let bonus = kefu::scoring::ledger::NewEntry {
            agent: "a1".into(),
            day,
            points: 1.into(),
            source: "supervisor",
            category: None,
            reason: "顶班".into(),
            reference: None,
            minutes: None,
        };
        kefu::scoring::ledger::add(store.conn(), &bonus, now_ms()).unwrap();
        let sheet = kefu::scoring::sheet::load(None).unwrap();
        kefu::scoring::job::score_range(&mut store, &sheet, day, day, now_ms()).unwrap();
    }
    let (_feed, console) = start(config(&db)).await;
    let base = console.url();
    let b = Browser::start().await;
    let fill = |css: &'static str, text: &'static str| {
        let c = b.client.clone();
        async move { c.find(Locator::Css(css)).await.expect(css).send_keys(text).await.expect("type") }
    };

    // The supervisor deducts 2 points.
    b.sign_in(&base, "wang", PASSWORD).await;
    b.wait_css("form.logout", Duration::from_secs(10)).await;
    b.client.goto(&format!("{base}points?month=2026-11")).await.unwrap();
    let score = "#sums tr[data-agent=a1] td.score";
    let before = b.text(score).await.expect("a1's month score");
    assert_ne!(before, "—", "a1's month was scored");
    fill("form.points-add input[name=agent]", "a1").await;
    fill("form.points-add input[name=day]", "2026-11-11").await;
    fill("form.points-add input[name=points]", "-2").await;
    fill("form.points-add input[name=reason]", "迟到").await;
    b.client.find(Locator::Css("form.points-add button")).await.unwrap().click().await.unwrap();
    b.wait_css("#points tr[data-entry='2']", Duration::from_secs(5)).await;
    assert_eq!(b.text("#sums tr[data-agent=a1] td.num").await.as_deref(), Some("-1"), "+1 − 2");
    let lowered = b.text(score).await.unwrap_or_default();
    assert_ne!(lowered, before, "the month score follows the deduction");
    b.sign_out().await;

    // The agent appeals.
    b.sign_in(&base, "li", PASSWORD).await;
    b.wait_css("form.logout", Duration::from_secs(10)).await;
    b.client.goto(&format!("{base}points?month=2026-11")).await.unwrap();
    fill("#points tr[data-entry='2'] form.appeal input[name=reason]", "堵车，有证明").await;
    b.client
        .find(Locator::Css("#points tr[data-entry='2'] form.appeal button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_css("#points q", Duration::from_secs(5)).await;
    assert!(
        !b.has("form.points-add").await && !b.has("form.resolve").await,
        "an agent neither adds nor decides"
    );
    b.sign_out().await;

    // The supervisor accepts: the entry is voided and the month's points are back.
    b.sign_in(&base, "wang", PASSWORD).await;
    b.wait_css("form.logout", Duration::from_secs(10)).await;
    b.client.goto(&format!("{base}points?month=2026-11")).await.unwrap();
    fill("form.resolve input[name=note]", "情况属实").await;
    b.client.find(Locator::Css("form.resolve button[value=accept]")).await.unwrap().click().await.unwrap();
    b.wait_css("#points tr.voided", Duration::from_secs(5)).await;
    assert_eq!(b.text("#sums tr[data-agent=a1] td.num").await.as_deref(), Some("1"), "only the +1 left");
    assert_eq!(b.text(score).await, Some(before.clone()), "the month score is back to its earlier value");
    let audit_actions = |b: &Browser| {
        let c = b.client.clone();
        async move {
            let mut actions = Vec::new();
            for li in c.find_all(Locator::Css("#audit li")).await.unwrap() {
                actions.push(li.attr("data-action").await.unwrap().unwrap_or_default());
            }
            actions
        }
    };
    assert_eq!(audit_actions(&b).await, ["points.add", "points.appeal", "points.accept"]);
    let trail = b.text("#audit").await.unwrap_or_default();
    assert!(trail.contains("wang") && trail.contains("li") && trail.contains("堵车"), "{trail}");
    screenshot(&b, "console-points.png").await;

    // Edit the +1 to -3 (category and reason too): the trail keeps before and after, the score follows.
    let edit = "#points tr[data-entry='1'] form.points-edit";
    b.client.find(Locator::Css("#points tr[data-entry='1'] summary")).await.unwrap().click().await.unwrap();
    for (field, text) in [("points", "-3"), ("category", "服务态度"), ("reason", "<b>顶撞</b>")] {
        let input = b.client.find(Locator::Css(&format!("{edit} input[name={field}]"))).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }
    b.client.find(Locator::Css(&format!("{edit} button"))).await.unwrap().click().await.unwrap();
    b.wait_css("#audit li[data-action='points.edit']", Duration::from_secs(5)).await;
    assert_eq!(b.text("#sums tr[data-agent=a1] td.num").await.as_deref(), Some("-3"));
    assert_ne!(b.text(score).await, Some(before.clone()), "the score follows the edit");
    let edited = b.text("#audit li[data-action='points.edit']").await.unwrap_or_default();
    assert!(edited.contains("1 — (2026-11-02): 顶班 → -3 服务态度 (2026-11-02): <b>顶撞</b>"), "{edited}");

    // Remove it: nothing counts for a1 any more; the row stays, marked removed.
    b.client.find(Locator::Css("#points tr[data-entry='1'] summary")).await.unwrap().click().await.unwrap();
    let remove = "#points tr[data-entry='1'] form.points-remove";
    b.client
        .find(Locator::Css(&format!("{remove} input[name=reason]")))
        .await
        .unwrap()
        .send_keys("录错了")
        .await
        .unwrap();
    b.client.find(Locator::Css(&format!("{remove} button"))).await.unwrap().click().await.unwrap();
    b.wait_css("#points tr.voided[data-entry='1']", Duration::from_secs(5)).await;
    assert!(b.text("#points tr[data-entry='1']").await.unwrap_or_default().contains("removed"));
    assert_eq!(b.text("#sums tr[data-agent=a1] td.num").await.as_deref(), Some("0"));
    assert_eq!(
        audit_actions(&b).await,
        ["points.add", "points.appeal", "points.accept", "points.edit", "points.remove"]
    );
    b.close().await;
    console.stop();
}

impl Http {
    /// Posts a multipart form with the session's token, month 2026-11 and `csv` as the file.
    async fn upload(&mut self, path: &str, csrf: &str, csv: &str) -> (u16, String) {
        let b = "kefu-test-boundary";
        let body = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"month\"\r\n\r\n2026-11\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"g.csv\"\r\nContent-Type: text/csv\r\n\r\n{csv}\r\n\
             --{b}--\r\n"
        );
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep(&res);
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// Signs in through the form; returns the session's CSRF token (from the board page).
    async fn sign_in(&mut self, name: &str) -> String {
        let (_, page) = self.get("login").await;
        let token = csrf_in(&page);
        let (status, _) =
            self.post("login", &[("name", name), ("password", PASSWORD), ("csrf", &token)]).await;
        assert_eq!(status, 303, "{name} signs in");
        let (_, page) = self.get("").await;
        csrf_in(&page)
    }
}

/// A form's fields.
type Fields<'a> = &'a [(&'a str, &'a str)];

#[tokio::test]
async fn agents_cannot_reach_supervisor_or_owner_routes_and_bad_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    add_users(&db);
    let (_feed, console) = start(config(&db)).await;

    // The agent: every supervisor or owner form and page is 403, whatever it carries.
    let mut agent = Http::new(&console.url());
    let csrf = agent.sign_in("li").await;
    let posts: &[(&str, Fields)] = &[
        ("points/add", &[("agent", "a1"), ("day", "2026-11-11"), ("points", "-2"), ("reason", "x")]),
        ("points/edit", &[("entry", "1"), ("points", "-2"), ("reason", "x")]),
        ("points/remove", &[("entry", "1"), ("reason", "x")]),
        ("points/resolve", &[("dispute", "1"), ("decision", "accept"), ("note", "x")]),
        ("inputs", &[("month", "2026-11"), ("agent", "a1"), ("key", "service_rating"), ("v0_0", "90")]),
        ("findings/review", &[("message", "s2"), ("category", "x"), ("start", "3"), ("decision", "dismiss")]),
        (
            "answers/add",
            &[("id", "x"), ("category", "售后"), ("question", "q"), ("keywords", "k"), ("answer", "a")],
        ),
    ];
    for (path, fields) in posts {
        let mut form = fields.to_vec();
        form.push(("csrf", &csrf));
        let (status, _) = agent.post(path, &form).await;
        assert_eq!(status, 403, "an agent posting /{path}");
    }
    for path in [
        "pay?month=2026-11",
        "pay.csv?month=2026-11",
        "agent/a2?day=2026-11-11",
        "inputs?month=2026-11",
        "findings",
        "answers",
    ] {
        assert_eq!(agent.get(path).await.0, 403, "an agent reading /{path}");
    }
    let (status, page) = agent
        .post("points/appeal", &[("entry", "abc"), ("reason", "x"), ("month", "2026-11"), ("csrf", &csrf)])
        .await;
    assert_eq!(status, 400, "an appeal of no entry");
    assert!(page.contains("entry `abc`: expected an entry number"), "the field is named");
    let (status, _) = agent.upload("inputs/import", &csrf, "agent,service_rating\na1,90\n").await;
    assert_eq!(status, 403, "an agent uploading score inputs");

    // The supervisor: bad fields are refused naming the field, escaped, nothing stored.
    let mut sup = Http::new(&console.url());
    let csrf = sup.sign_in("wang").await;
    let (status, _) = sup.post("points/edit", &[("entry", "1"), ("points", "-1"), ("reason", "x")]).await;
    assert_eq!(status, 403, "no CSRF token");
    let cases: &[(&str, Fields, &str)] = &[
        (
            "points/add",
            &[("agent", "a1"), ("day", "<script>"), ("points", "-2"), ("reason", "x")],
            "day `&lt;script&gt;`",
        ),
        (
            "points/add",
            &[("agent", "a1"), ("day", "2026-11-11"), ("points", "1e9"), ("reason", "x")],
            "points `1e9`",
        ),
        ("points/edit", &[("entry", "abc"), ("points", "-2"), ("reason", "x")], "entry `abc`"),
        ("points/edit", &[("entry", "99"), ("points", "-2"), ("reason", "x")], "no ledger entry #99"),
        ("points/edit", &[("entry", "1"), ("points", "-2"), ("reason", " ")], "reason:"),
        ("points/remove", &[("entry", "1"), ("reason", "")], "reason:"),
        ("points/remove", &[("entry", "-4"), ("reason", "x")], "entry `-4`"),
    ];
    for (path, fields, want) in cases {
        let mut form = fields.to_vec();
        form.push(("csrf", &csrf));
        form.push(("month", "2026-11"));
        let (status, page) = sup.post(path, &form).await;
        assert_eq!(status, 400, "/{path} {fields:?}");
        assert!(page.contains(want), "/{path} {fields:?} should say {want}");
        assert!(!page.contains("<script>"), "escaped");
    }
    let more: &[(&str, Fields, &str)] = &[
        (
            "findings/review",
            &[("message", "m"), ("category", "c"), ("start", "1"), ("decision", "drop")],
            "decision:",
        ),
        (
            "findings/review",
            &[("message", "<i>"), ("category", "c"), ("start", "x"), ("decision", "dismiss")],
            "finding: no phrase-guard finding &lt;i&gt;",
        ),
        ("inputs", &[("month", "2026-11"), ("v9_9", "1")], "not a cell of the grid"),
        ("points/resolve", &[("dispute", "one"), ("decision", "accept"), ("note", "x")], "dispute `one`"),
        (
            "points/resolve",
            &[("dispute", "7"), ("decision", "maybe"), ("note", "x")],
            "decision: expected accept or reject",
        ),
        (
            "answers/add",
            &[("id", "x"), ("keywords", "k"), ("answer", "a")],
            "replies: kefu runs without a replies folder",
        ),
    ];
    for (path, fields, want) in more {
        let mut form = fields.to_vec();
        form.push(("csrf", &csrf));
        let (status, page) = sup.post(path, &form).await;
        assert_eq!(status, 400, "/{path} {fields:?}");
        assert!(page.contains(want), "/{path} {fields:?} should say {want}");
    }
    for (path, want) in [
        ("answers?day=2026-13-01", "day `2026-13-01`"),
        ("findings?day=x", "day `x`"),
        ("reports/day?day=11/11", "day `11/11`"),
        ("inputs?month=2026", "month `2026`: expected YYYY-MM"),
    ] {
        let (status, page) = sup.get(path).await;
        assert_eq!(status, 400, "/{path}");
        assert!(page.contains(want), "/{path} should say {want}");
    }
    let (status, page) = sup.upload("inputs/import", &csrf, "").await;
    assert_eq!(status, 400);
    assert!(page.contains("file: choose a CSV file"), "an empty upload is named");
    let store = Store::open(&db).unwrap();
    let n: i64 = store.conn().query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "nothing stored from a bad form");
    for path in ["pay?month=2026-11", "pay.csv?month=2026-11"] {
        assert_eq!(sup.get(path).await.0, 403, "a supervisor reading /{path}");
    }

    // The owner's payroll CSV: a BOM for Excel, a formula-looking agent id neutralised.
    {
        let mut store = Store::open(&db).unwrap();
        let day = kefu::time::parse_day("2026-11-02").unwrap();
        let e = kefu::scoring::ledger::NewEntry {
            agent: "=HYPERLINK(\"http://x\")".into(),
            day,
            points: (-1).into(),
            source: "supervisor",
            category: None,
            reason: "x".into(),
            reference: None,
            minutes: None,
        };
        kefu::scoring::ledger::add(store.conn(), &e, now_ms()).unwrap();
        let sheet = kefu::scoring::sheet::load(None).unwrap();
        kefu::scoring::job::score_range(&mut store, &sheet, day, day, now_ms()).unwrap();
    }
    let mut owner = Http::new(&console.url());
    owner.sign_in("boss").await;
    let res = owner
        .client
        .get(format!("{}pay.csv?month=2026-11", owner.base))
        .header("cookie", owner.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with BOM for Excel");
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("客服 agent,名次 rank,得分 score"), "{text}");
    let row = lines.next().expect("one agent's row");
    assert!(row.starts_with("\"'=HYPERLINK("), "the formula is neutralised: {row}");
    assert_eq!(owner.get("pay.csv?month=13").await.0, 400);
    console.stop();
}

/// A rules folder with seed 000's sheet (five supervisor-scored indicators), a day of
/// events for a1 and a2 with one banned phrase by a1, the guard's finding stored and the
/// day scored: what the grid and the findings review work on.
fn seeded_month(dir: &Path, db: &Path) -> (std::path::PathBuf, String) {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("scoring.toml"), include_str!("../rules/examples/scoring_seed000.toml"))
        .unwrap();
    let t0 = kefu::time::parse_rfc3339_ms("2026-11-11T10:00:00+08:00").unwrap();
    let events = [
        message("s1", t0, "s-c1", "a1", "customer", "这件有M码吗"),
        message("s2", t0 + 5_000, "s-c1", "a1", "agent", "亲，爱买不买哦"),
        message("s3", t0 + 9_000, "s-c2", "a2", "customer", "发什么快递"),
        message("s4", t0 + 12_000, "s-c2", "a2", "agent", "中通快递哦"),
    ];
    let mut store = Store::open(db).unwrap();
    let bodies: Vec<String> = events.iter().map(|e| e.to_json()).collect();
    store.insert_events(events.iter().zip(bodies.iter().map(String::as_str))).unwrap();
    let guard = kefu::guard::Guard::load(None).unwrap();
    let flags = guard.check_event(&events[1]);
    assert_eq!(flags.len(), 1, "the seeded phrase is a finding");
    kefu::guard::store::save_flags(&store, &events[1], &flags).unwrap();
    let sheet = kefu::scoring::sheet::load(Some(&rules)).unwrap();
    let day = kefu::time::parse_day("2026-11-11").unwrap();
    kefu::scoring::job::score_range(&mut store, &sheet, day, day, now_ms()).unwrap();
    (rules, "2026-11-11".to_string())
}

async fn count(b: &Browser, css: &str) -> usize {
    b.client.find_all(Locator::Css(css)).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_fills_the_score_grid_by_upload_and_by_hand_and_dismisses_a_finding_in_the_browser() {
    let _turn = one_browser_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    add_users(&db);
    let (rules, day) = seeded_month(dir.path(), &db);
    let (_feed, console) = start(ConsoleConfig { rules: Some(rules), ..config(&db) }).await;
    let base = console.url();
    let b = Browser::start().await;
    b.sign_in(&base, "wang", PASSWORD).await;
    b.wait_css("form.logout", Duration::from_secs(10)).await;

    // The grid: a1 and a2 × five indicators, every cell missing.
    b.client.goto(&format!("{base}inputs?month=2026-11")).await.unwrap();
    b.wait_css("#grid", Duration::from_secs(5)).await;
    assert_eq!(count(&b, "#grid tbody tr").await, 2);
    assert_eq!(count(&b, "#grid td.missing").await, 10, "nothing entered yet");
    let score = |agent: &'static str| format!("#grid tr[data-agent={agent}] td.score");
    let unfinished = b.text(&score("a1")).await.unwrap_or_default();

    // An upload with one bad line: refused whole, the line and the column named.
    let upload = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let c = b.client.clone();
        async move {
            let input = c.find(Locator::Css("form.upload input[type=file]")).await.unwrap();
            input.send_keys(path.to_str().unwrap()).await.unwrap();
            c.find(Locator::Css("form.upload button")).await.unwrap().click().await.unwrap();
        }
    };
    let header = "客服,service_rating,问题解决率,efficiency,teamwork,growth\n";
    upload("bad.csv", &format!("{header}a1,90,95,80,85,70\na2,88,九十,80,85,70\n")).await;
    b.wait_css("div.error", Duration::from_secs(5)).await;
    let error = b.text("div.error").await.unwrap_or_default();
    assert!(error.contains("bad.csv:3") && error.contains("resolution_rate"), "{error}");
    assert!(error.contains("nothing was recorded"), "{error}");
    assert_eq!(count(&b, "#grid td.missing").await, 10, "a bad line changes nothing");

    // A good one fills the grid and the score.
    upload("good.csv", &format!("{header}a1,90,95,80,85,70\na2,88,90,80,85,70\n")).await;
    b.wait_css("#audit li[data-action='inputs.import']", Duration::from_secs(5)).await;
    assert_eq!(count(&b, "#grid td.missing").await, 0, "every cell entered");
    let value = |agent: &str, key: &str| {
        let c = b.client.clone();
        let css = format!("#grid tr[data-agent={agent}] td[data-key={key}] input");
        async move { c.find(Locator::Css(&css)).await.unwrap().prop("value").await.unwrap().unwrap_or_default() }
    };
    assert_eq!(value("a2", "resolution_rate").await, "90", "a percent row shows as typed");
    let filled = b.text(&score("a1")).await.unwrap_or_default();
    assert_ne!(filled, unfinished, "the month score follows the inputs");
    screenshot(&b, "console-inputs.png").await;

    // By hand: a bad cell is named with its agent and indicator; a good one is saved.
    let cell = b
        .client
        .find(Locator::Css("#grid tr[data-agent=a1] td[data-key=service_rating] input"))
        .await
        .unwrap();
    cell.clear().await.unwrap();
    cell.send_keys("120").await.unwrap();
    b.client.find(Locator::Css("form.grid button")).await.unwrap().click().await.unwrap();
    b.wait_css("div.error", Duration::from_secs(5)).await;
    let error = b.text("div.error").await.unwrap_or_default();
    assert!(
        error.contains("agent a1") && error.contains("service_rating") && error.contains("0–100"),
        "{error}"
    );
    assert_eq!(value("a1", "service_rating").await, "90", "nothing stored");
    let cell = b
        .client
        .find(Locator::Css("#grid tr[data-agent=a1] td[data-key=service_rating] input"))
        .await
        .unwrap();
    cell.clear().await.unwrap();
    cell.send_keys("60").await.unwrap();
    b.client.find(Locator::Css("form.grid button")).await.unwrap().click().await.unwrap();
    b.wait_css("#audit li[data-action='inputs.set']", Duration::from_secs(5)).await;
    assert_eq!(value("a1", "service_rating").await, "60");
    assert_ne!(b.text(&score("a1")).await.unwrap_or_default(), filled, "the score follows the edit");

    // Findings review: a1's day counts −1 for the finding until it is dismissed.
    b.client.goto(&format!("{base}agent/a1?day={day}")).await.unwrap();
    b.wait_css("#day-points", Duration::from_secs(5)).await;
    assert_eq!(b.text("#day-points").await.as_deref(), Some("-1"));
    b.client.goto(&format!("{base}findings?day={day}")).await.unwrap();
    b.wait_css("#findings-review form.review", Duration::from_secs(5)).await;
    assert_eq!(b.text("#findings-review mark.finding").await.as_deref(), Some("爱买不买"));
    b.client
        .find(Locator::Css("#findings-review form.review input[name=note]"))
        .await
        .unwrap()
        .send_keys("买家先骂人，玩笑话")
        .await
        .unwrap();
    b.client
        .find(Locator::Css("#findings-review button[value=dismiss]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_css("#findings-review tr.voided", Duration::from_secs(5)).await;
    assert_eq!(
        b.text("#candidates code").await.as_deref(),
        Some("亲，爱买不买哦"),
        "kept as a candidate exception"
    );
    assert!(b.text("#audit").await.unwrap_or_default().contains("finding.dismiss"));
    screenshot(&b, "console-findings.png").await;
    b.client.goto(&format!("{base}agent/a1?day={day}")).await.unwrap();
    b.wait_css("#day-points", Duration::from_secs(5)).await;
    assert_eq!(b.text("#day-points").await.as_deref(), Some("0"), "the dismissed finding's points are back");
    // The guard's ledger entry no longer counts, and a rescore does not bring it back.
    let store = Store::open(&db).unwrap();
    let counting: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM ledger WHERE source = 'guard' AND voided = 0", [], |r| r.get(0))
        .unwrap();
    assert_eq!(counting, 0);

    // The shop's day and month, served from the database with the nightly job's templates.
    b.client.goto(&format!("{base}reports/day?day={day}")).await.unwrap();
    b.wait_css(".report table", Duration::from_secs(5)).await;
    screenshot(&b, "console-report-day.png").await;
    b.client.goto(&format!("{base}reports/month?month=2026-11")).await.unwrap();
    b.wait_css(".report tr#A-a1", Duration::from_secs(5)).await;
    screenshot(&b, "console-report-month.png").await;

    // The agent's own day and month.
    b.sign_out().await;
    b.sign_in(&base, "li", PASSWORD).await;
    b.wait_css("form.logout", Duration::from_secs(10)).await;
    b.client.goto(&format!("{base}me?day={day}")).await.unwrap();
    b.wait_css("#day-points", Duration::from_secs(5)).await;
    screenshot(&b, "console-my-day.png").await;
    b.client.goto(&format!("{base}me/month?month=2026-11")).await.unwrap();
    b.wait_css("#indicators td.next", Duration::from_secs(5)).await;
    screenshot(&b, "console-my-month.png").await;

    // The owner's pay page.
    b.sign_out().await;
    b.sign_in(&base, "boss", PASSWORD).await;
    b.wait_css("form.logout", Duration::from_secs(10)).await;
    b.client.goto(&format!("{base}pay?month=2026-11")).await.unwrap();
    b.wait_css("a.download", Duration::from_secs(5)).await;
    screenshot(&b, "console-pay.png").await;
    b.close().await;
    console.stop();
}

/// A platform on loopback that the test drives frame by frame: it takes kefu's hello, sends
/// the events it is handed (with increasing seqs) and hands back every frame kefu sends.
async fn platform() -> (
    String,
    tokio::sync::mpsc::UnboundedSender<serde_json::Value>,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let (frames_tx, frames_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
        let mut seq = 0u64;
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Ok(v) = serde_json::from_str(&text) {
                            let _ = frames_tx.send(v);
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                event = events_rx.recv() => {
                    let Some(event) = event else { return };
                    seq += 1;
                    let frame = serde_json::json!({"op": "event", "seq": seq, "event": event});
                    if ws.send(Message::Text(frame.to_string())).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    (url, events_tx, frames_rx)
}

/// How long the running bot may take to serve a rule added in the console, as a bound
/// for the test only: far above the second it takes, so a busy CI machine cannot fail it.
const PICKUP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_answer_added_from_a_miss_group_answers_the_next_buyer_without_a_restart() {
    let _turn = one_browser_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    add_users(&db);
    let replies = dir.path().join("replies");
    std::fs::create_dir_all(&replies).unwrap();
    let shipped = include_str!("../replies/auto.toml");
    std::fs::write(replies.join("auto.toml"), shipped).unwrap();

    // The running bot: the robot on the replies folder, reloaded only when nudged (its
    // poll is an hour), so an answer within the second is the console's nudge at work.
    let sets = Sets::load(None, Some(&replies)).expect("shipped replies");
    let (updates_tx, updates) = tokio::sync::watch::channel(sets.clone());
    let mut published = updates.clone();
    let nudge = std::sync::Arc::new(tokio::sync::Notify::new());
    tokio::spawn(
        kefu::live::Reloader::new(None, Some(replies.clone()))
            .nudged_by(nudge.clone())
            .run(Duration::from_secs(3_600), updates_tx),
    );
    let (url, events, mut frames) = platform().await;
    let (seam, _alerts) = ChannelSeam::new();
    let live = LiveConfig {
        time: TimeSource::wall(),
        assist: AssistConfig { updates: Some(updates), ..AssistConfig::with_sets(&sets) },
        ..LiveConfig::new(quick_rules())
    };
    let live =
        Live::start(LiveOptions { db: db.clone(), gateway: quick_gateway(&url, None), live }, Box::new(seam))
            .expect("live starts");
    let (_feed, console) =
        start(ConsoleConfig { replies: Some(replies.clone()), reload: Some(nudge), ..config(&db) }).await;
    let base = console.url();

    // The agent is away; two buyers ask what no rule answers.
    let t0 = now_ms();
    let ask = |id: &str, conversation: &str, text: &str| {
        let e = message(id, now_ms(), conversation, "a1", "customer", text);
        serde_json::from_str::<serde_json::Value>(&e.to_json()).unwrap()
    };
    let presence = serde_json::json!({"type": "presence", "id": "p1", "ts": format_rfc3339_shanghai(t0),
        "shop": "tmall-test", "agent": "a1", "status": "away"});
    events.send(presence).unwrap();
    events.send(ask("q1", "m-c1", "你们家能用花呗分期付款吗")).unwrap();
    events.send(ask("q2", "m-c2", "你们家能用花呗分期付款吗")).unwrap();
    let store = Store::open(&db).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = store.conn().query_row("SELECT COUNT(*) FROM reply_misses", [], |r| r.get(0)).unwrap();
        if n >= 2 {
            break;
        }
        assert!(Instant::now() < end, "the two misses were never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let b = Browser::start().await;
    b.sign_in(&base, "wang", PASSWORD).await;
    b.wait_css("form.logout", Duration::from_secs(10)).await;
    let day = shanghai_day(t0);
    b.client.goto(&format!("{base}answers?day={day}")).await.unwrap();
    b.wait_css("#miss-groups li.group", Duration::from_secs(5)).await;
    assert_eq!(b.text("#miss-groups li.group .count").await.as_deref(), Some("2×"), "one group of two");
    let fill = |css: &'static str, text: &'static str| {
        let c = b.client.clone();
        async move {
            let input = c.find(Locator::Css(css)).await.expect(css);
            input.clear().await.unwrap();
            input.send_keys(text).await.expect("type");
        }
    };

    // An invalid rule (its id is taken) is refused with the check's reason; the file is untouched.
    fill("form.auto-add input[name=id]", "greet-hello").await;
    fill("form.auto-add input[name=keywords]", "花呗, 分期").await;
    fill("form.auto-add input[name=answer]", "亲，支持花呗分期付款哦").await;
    b.client.find(Locator::Css("form.auto-add button")).await.unwrap().click().await.unwrap();
    b.wait_css("div.error", Duration::from_secs(5)).await;
    let error = b.text("div.error").await.unwrap_or_default();
    assert!(error.contains("auto.toml") && error.contains("duplicate rule id `greet-hello`"), "{error}");
    assert_eq!(std::fs::read_to_string(replies.join("auto.toml")).unwrap(), shipped, "nothing written");

    // A valid one is written (the file's comments kept) and the robot serves it at once.
    fill("form.auto-add input[name=id]", "huabei").await;
    fill("form.auto-add input[name=keywords]", "花呗, 分期").await;
    fill("form.auto-add input[name=answer]", "亲，支持花呗分期付款哦").await;
    b.client.find(Locator::Css("form.auto-add button")).await.unwrap().click().await.unwrap();
    b.wait_css("#audit li[data-action='rules.auto_add']", Duration::from_secs(5)).await;
    let written = std::fs::read_to_string(replies.join("auto.toml")).unwrap();
    assert!(written.starts_with(shipped), "the file before the new rule is unchanged, comments and all");
    assert!(written.contains("id = \"huabei\""), "{written}");
    screenshot(&b, "console-answers.png").await;

    // The reload comes from the console's nudge: the poll is an hour away. The bounds are
    // generous for a loaded CI machine; the latencies are printed (issue 14 asks ≤ 1 s,
    // measured on a quiet machine, not asserted as a timing here).
    let submitted = Instant::now();
    tokio::time::timeout(PICKUP, published.changed())
        .await
        .expect("the robot's rules reloaded after the form, without a restart")
        .unwrap();
    eprintln!("rules reloaded {:?} after the form", submitted.elapsed());
    assert!(
        published.borrow().replies.auto.rules().iter().any(|r| r.id == "huabei"),
        "the new rule is served"
    );
    while frames.try_recv().is_ok() {}
    let asked = Instant::now();
    events.send(ask("q3", "m-c3", "花呗分期可以吗")).unwrap();
    let answer = loop {
        let left = PICKUP.saturating_sub(asked.elapsed());
        let frame =
            tokio::time::timeout(left, frames.recv()).await.expect("the new rule answers the next buyer");
        let frame = frame.expect("the platform is up");
        if frame["op"] == "send"
            && frame["conversation"] == "m-c3"
            && frame["text"].as_str().is_some_and(|t| t.contains("花呗分期"))
        {
            break frame;
        }
    };
    assert_eq!(answer["as"], "bot");
    eprintln!("the next buyer answered {:?} after asking", asked.elapsed());
    b.close().await;
    console.stop();
    let _ = tokio::time::timeout(Duration::from_secs(10), live.stop()).await;
}

#[tokio::test]
async fn reports_are_served_from_the_database_with_pay_for_the_owner_only_and_agents_reach_only_their_month()
{
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    add_users(&db);
    let (rules, day) = seeded_month(dir.path(), &db);
    let (_feed, console) = start(ConsoleConfig { rules: Some(rules.clone()), ..config(&db) }).await;

    // One template: the owner's served month page holds the very body the nightly file holds.
    let store = Store::open(&db).unwrap();
    let sheet = kefu::scoring::sheet::load(Some(&rules)).unwrap();
    let body = kefu::scoring::report::month_report(store.conn(), &sheet, "2026-11", true)
        .unwrap()
        .body
        .into_string();
    let file = kefu::scoring::report::month_page(store.conn(), &sheet, "2026-11").unwrap();
    assert!(file.contains(&body), "the file is the template's body in a page");
    let mut owner = Http::new(&console.url());
    owner.sign_in("boss").await;
    let (status, page) = owner.get("reports/month?month=2026-11").await;
    assert_eq!(status, 200);
    assert!(page.contains(&body), "the served page is the same body");
    assert!(page.contains("月薪") && page.contains("工资合计"), "the owner sees pay");
    let (status, page) = owner.get(&format!("reports/day?day={day}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("/reports/month?month=2026-11#A-a1"), "an agent links to their month score");

    // A supervisor gets the same report without any pay figure (left out on the server).
    let mut sup = Http::new(&console.url());
    sup.sign_in("wang").await;
    let (status, page) = sup.get("reports/month?month=2026-11").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"A-a1\""), "the ranking is there");
    for pay in ["月薪", "工资合计", "奖金", "提成", "底薪"] {
        assert!(!page.contains(pay), "a supervisor must not get {pay}");
    }
    let (status, page) = sup.get("agent/a1/month?month=2026-11").await;
    assert_eq!(status, 200);
    assert!(page.contains("下一档 Next tier"), "per indicator, what the next tier asks");

    // An agent: no shop report, their own month only, no pay on it.
    let mut agent = Http::new(&console.url());
    agent.sign_in("li").await;
    for path in
        ["reports/month?month=2026-11", &format!("reports/day?day={day}"), "agent/a2/month?month=2026-11"]
    {
        assert_eq!(agent.get(path).await.0, 403, "an agent reading /{path}");
    }
    let (status, _) = agent.get("me/month?month=2026-11").await;
    assert_eq!(status, 303);
    let (status, page) = agent.get("agent/a1/month?month=2026-11").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"month-score\"") && page.contains("tr data-key=\"service_rating\""),
        "score and indicators"
    );
    assert!(page.contains("≥") || page.contains("每"), "the next tier is said");
    for pay in ["月薪", "奖金", "提成", "底薪"] {
        assert!(!page.contains(pay), "an agent must not get {pay}");
    }
    console.stop();
}

#[tokio::test]
async fn a_shop_limited_supervisor_sees_and_changes_only_the_points_and_inputs_of_agents_in_their_shops() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    add_users(&db);
    // a1 and a2 worked in tmall-test on 2026-11-11; b1 works in tmall-other on 2026-11-12.
    let (rules, _) = seeded_month(dir.path(), &db);
    {
        let mut store = Store::open(&db).unwrap();
        let t = kefu::time::parse_rfc3339_ms("2026-11-12T10:00:00+08:00").unwrap();
        let e = message_in("tmall-other", "o1", t, "o-c1", "b1", "agent", "在的");
        let body = e.to_json();
        store.insert_events([(&e, body.as_str())]).unwrap();
        let zhou = User {
            name: "zhou".into(),
            role: Role::Supervisor,
            agent: None,
            shops: vec!["tmall-other".into()],
        };
        users::add(store.conn(), &zhou, PASSWORD, now_ms()).unwrap();
    }
    let (_feed, console) = start(ConsoleConfig { rules: Some(rules), ..config(&db) }).await;
    let mut wang = Http::new(&console.url());
    let wang_csrf = wang.sign_in("wang").await;
    let add = |agent: &'static str, day: &'static str, reason: &'static str| {
        vec![("agent", agent), ("day", day), ("points", "-2"), ("reason", reason), ("month", "2026-11")]
    };
    let mut form = add("a1", "2026-11-11", "a1-entry");
    form.push(("csrf", &wang_csrf));
    assert_eq!(wang.post("points/add", &form).await.0, 303, "a supervisor of all shops adds for a1");
    let a1_entry: i64 = Store::open(&db)
        .unwrap()
        .conn()
        .query_row("SELECT id FROM ledger WHERE agent = 'a1' AND reason = 'a1-entry'", [], |r| r.get(0))
        .unwrap();
    let a1_entry = a1_entry.to_string();

    // zhou supervises tmall-other only.
    let mut zhou = Http::new(&console.url());
    let csrf = zhou.sign_in("zhou").await;
    let mut form = add("a1", "2026-11-11", "zhou-on-a1");
    form.push(("csrf", &csrf));
    let (status, page) = zhou.post("points/add", &form).await;
    assert_eq!(status, 403, "no points for an agent outside zhou's shops: {page}");
    assert!(page.contains("did not work in your shops"));
    let mut form = add("b1", "2026-11-12", "zhou-on-b1");
    form.push(("csrf", &csrf));
    assert_eq!(zhou.post("points/add", &form).await.0, 303, "points for b1, who worked in tmall-other");
    for path in ["points/edit", "points/remove"] {
        let form = [
            ("entry", a1_entry.as_str()),
            ("points", "-1"),
            ("reason", "x"),
            ("month", "2026-11"),
            ("csrf", &csrf),
        ];
        assert_eq!(zhou.post(path, &form).await.0, 403, "{path} on a1's entry");
    }
    // a1 appeals wang's entry; deciding that appeal is not zhou's.
    let dispute = kefu::console::points::appeal(
        Store::open(&db).unwrap().conn_mut(),
        a1_entry.parse().unwrap(),
        "a1",
        "a1-appeal",
        "a1",
        now_ms(),
        i64::MAX / 2,
    )
    .unwrap()
    .to_string();
    let form = [("dispute", dispute.as_str()), ("decision", "accept"), ("month", "2026-11"), ("csrf", &csrf)];
    let (status, page) = zhou.post("points/resolve", &form).await;
    assert_eq!(status, 403, "zhou decides no appeal of a1's: {page}");
    let open: i64 = Store::open(&db)
        .unwrap()
        .conn()
        .query_row("SELECT COUNT(*) FROM ledger WHERE id = ?1 AND voided = 0", [&a1_entry], |r| r.get(0))
        .unwrap();
    assert_eq!(open, 1, "a1's entry still counts after zhou's refused accept");
    let (status, page) = zhou.get("points?month=2026-11").await;
    assert_eq!(status, 200);
    assert!(page.contains("zhou-on-b1") && !page.contains("a1-entry"), "zhou's points page lists b1 only");
    let (_, page) = wang.get("points?month=2026-11").await;
    assert!(page.contains("zhou-on-b1") && page.contains("a1-entry"), "wang's lists both");

    // Score inputs: the grid's rows, a cell by hand, an upload.
    let (status, page) = zhou.get("inputs?month=2026-11").await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"agent\" value=\"b1\""), "b1's row");
    assert!(!page.contains("name=\"agent\" value=\"a1\"") && !page.contains("name=\"agent\" value=\"a2\""));
    let (_, wang_grid) = wang.get("inputs?month=2026-11").await;
    assert!(wang_grid.contains("name=\"agent\" value=\"a1\""), "a1's row for wang");
    let form = [("month", "2026-11"), ("agent", "a1"), ("key", "quality"), ("v0_0", "90"), ("csrf", &csrf)];
    assert_eq!(zhou.post("inputs", &form).await.0, 403, "a cell of a1's");
    let key = page
        .split("name=\"key\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("an input column")
        .to_string();
    let (status, _) = zhou.upload("inputs/import", &csrf, &format!("agent,{key}\na1,90\n")).await;
    assert_eq!(status, 403, "an upload with a1's row");
    let stored: i64 = Store::open(&db)
        .unwrap()
        .conn()
        .query_row("SELECT COUNT(*) FROM score_inputs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 0, "nothing stored from the refused forms");
    let (status, _) = zhou.upload("inputs/import", &csrf, &format!("agent,{key}\nb1,90\n")).await;
    assert_eq!(status, 303, "b1's row is zhou's to enter");

    // The audit trails: wang's change to a1's inputs and wang's dismissal of a1's finding
    // (tmall-test) are not zhou's to read; zhou's own upload for b1 is.
    let form =
        [("month", "2026-11"), ("agent", "a1"), ("key", key.as_str()), ("v0_0", "77"), ("csrf", &wang_csrf)];
    let (status, page) = wang.post("inputs", &form).await;
    assert!(status == 303 || status == 200, "wang sets a1's input: {status} {page}");
    let (_, wang_inputs) = wang.get("inputs?month=2026-11").await;
    assert!(wang_inputs.contains(&format!("a1 {key} = 77")), "wang's trail has the change to a1");
    assert!(wang_inputs.contains("inputs.import"), "and zhou's upload");
    let (_, zhou_inputs) = zhou.get("inputs?month=2026-11").await;
    assert!(!zhou_inputs.contains(&format!("a1 {key}")), "zhou's trail leaves out a1's change");
    assert!(zhou_inputs.contains("inputs.import"), "zhou's trail keeps zhou's upload for b1");
    let (category, start): (String, i64) = Store::open(&db)
        .unwrap()
        .conn()
        .query_row("SELECT category, start FROM flags WHERE message_id = 's2'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let start = start.to_string();
    let form = [
        ("message", "s2"),
        ("category", category.as_str()),
        ("start", start.as_str()),
        ("decision", "dismiss"),
        ("note", "wang-dismissal-note"),
        ("day", "2026-11-11"),
        ("csrf", &wang_csrf),
    ];
    let mut zhou_form = form;
    zhou_form[6] = ("csrf", &csrf);
    let (status, page) = zhou.post("findings/review", &zhou_form).await;
    assert_eq!(status, 403, "a1's finding in tmall-test is not zhou's to review: {page}");
    let reviews: i64 = Store::open(&db)
        .unwrap()
        .conn()
        .query_row("SELECT COUNT(*) FROM finding_reviews", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reviews, 0, "nothing stored from zhou's refused review");
    assert_eq!(wang.post("findings/review", &form).await.0, 303, "wang dismisses a1's finding");
    let (_, wang_findings) = wang.get("findings?day=2026-11-11").await;
    assert!(wang_findings.contains("finding.dismiss") && wang_findings.contains("wang-dismissal-note"));
    let (status, zhou_findings) = zhou.get("findings?day=2026-11-11").await;
    assert_eq!(status, 200);
    assert!(
        !zhou_findings.contains("finding.dismiss") && !zhou_findings.contains("wang-dismissal-note"),
        "neither the trail line nor the candidate exception from tmall-test reach zhou"
    );
}

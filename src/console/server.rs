//! The HTTP side (axum): routes, the login check on every route but the login page, CSRF
//! on every form, the board's event stream, the conversation and pay pages.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use maud::Markup;
use rusqlite::Connection;
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{info, warn};

use super::answers;
use super::auth::{self, LOGIN_COOKIE, Limiter, SESSION_COOKIE, Session};
use super::board::BoardState;
use super::findings;
use super::inputs;
use super::pages::{self, PayRow};
use super::points;
use super::reports;
use super::transcript;
use super::users;
use crate::scoring::sheet::Sheet;
use crate::textio::escape::escape_for_log;
use crate::time::{Millis, now_ms, shanghai_day};

/// What every handler shares.
pub struct App {
    db: Mutex<Connection>,
    board: watch::Receiver<Arc<BoardState>>,
    limiter: Mutex<Limiter>,
    secure_cookies: bool,
    rules: Option<PathBuf>,
    replies: Option<PathBuf>,
    reload: Option<Arc<tokio::sync::Notify>>,
}

type Shared = Arc<App>;

impl App {
    /// `db` is the console's own connection (reads, sessions, users, points); `rules` the
    /// rules folder (the scoring sheet: 复核 window, indicators; none: the embedded sheet).
    pub fn new(
        db: Connection,
        board: watch::Receiver<Arc<BoardState>>,
        secure_cookies: bool,
        rules: Option<PathBuf>,
    ) -> Self {
        Self {
            db: Mutex::new(db),
            board,
            limiter: Mutex::new(Limiter::default()),
            secure_cookies,
            rules,
            replies: None,
            reload: None,
        }
    }

    /// The replies folder the console may add auto-answers to, and the reloader to nudge.
    pub fn with_replies(
        mut self,
        replies: Option<PathBuf>,
        reload: Option<Arc<tokio::sync::Notify>>,
    ) -> Self {
        self.replies = replies;
        self.reload = reload;
        self
    }

    /// The scoring sheet as the rules folder holds it now (read on each use, so an edit
    /// of `scoring.toml` shows without a restart).
    fn sheet(&self) -> Result<Sheet, String> {
        crate::scoring::sheet::load(self.rules.as_deref()).map_err(|e| format!("rules/scoring.toml: {e}"))
    }

    /// The 复核 window (24 h when the sheet does not load).
    fn appeal_window_ms(&self) -> i64 {
        self.sheet().map_or(24 * 3_600_000, |s| s.appeal_window_ms)
    }

    fn limiter(&self) -> MutexGuard<'_, Limiter> {
        self.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `f` on the console's connection off the async threads.
async fn with_db<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&Connection) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    let app = app.clone();
    let result = tokio::task::spawn_blocking(move || {
        let conn = app.db.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    })
    .await;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            warn!(error = %e, "console: database");
            Err(page(
                StatusCode::INTERNAL_SERVER_ERROR,
                pages::error(None, 500, "database error (see the log)"),
            ))
        }
        Err(e) => {
            warn!(error = %e, "console: task failed");
            Err(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")))])
        .into_response()
}

/// The router.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(board_page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/board/stream", get(board_stream))
        .route("/c/{conversation}", get(conversation_page))
        .route("/pay", get(pay_page))
        .route("/pay.csv", get(pay_csv))
        .route("/me", get(my_day))
        .route("/points", get(points_page))
        .route("/points/add", post(points_add))
        .route("/points/appeal", post(points_appeal))
        .route("/points/resolve", post(points_resolve))
        .route("/points/edit", post(points_edit))
        .route("/inputs", get(inputs_page).post(inputs_set))
        .route("/inputs/import", post(inputs_import))
        .route("/findings", get(findings_page))
        .route("/findings/review", post(findings_review))
        .route("/reports/day", get(report_day))
        .route("/reports/month", get(report_month))
        .route("/me/month", get(my_month))
        .route("/agent/{agent}/month", get(agent_month_page))
        .route("/answers", get(answers_page))
        .route("/answers/add", post(answers_add))
        .route("/points/remove", post(points_remove))
        .route("/agent/{agent}", get(agent_page))
        .route("/assets/{name}", get(asset))
        .fallback(not_found)
        .layer(middleware::map_response(security_headers))
        .with_state(app)
}

/// Headers on every answer: no framing, no sniffing, scripts and styles from kefu only,
/// nothing cached (pages hold people's work data).
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, name).map(str::to_string))
}

/// The session of the request, or the answer to send instead (sign-in page for a page,
/// 401 for the stream).
async fn session(app: &Shared, headers: &HeaderMap) -> Result<Session, Response> {
    let Some(token) = cookie_value(headers, SESSION_COOKIE) else { return Err(redirect("/login")) };
    let found = with_db(app, move |c| auth::lookup(c, &token, now_ms()).map_err(|e| e.to_string())).await?;
    found.ok_or_else(|| redirect("/login"))
}

fn forbidden(s: &Session, why: &str) -> Response {
    page(StatusCode::FORBIDDEN, pages::error(Some((&s.user, &s.csrf)), 403, why))
}

/// A page refusing the request: `status` and why, in the login's layout.
fn refuse(s: &Session, status: StatusCode, why: &str) -> Response {
    page(status, pages::error(Some((&s.user, &s.csrf)), status.as_u16(), why))
}

/// The day asked for (none or blank: `default`), or a 400 naming what was given.
#[allow(clippy::result_large_err)] // the refusal is the page to send, built only on that path
fn day_or(s: &Session, day: Option<&str>, default: chrono::NaiveDate) -> Result<chrono::NaiveDate, Response> {
    match day.map(str::trim).filter(|d| !d.is_empty()) {
        None => Ok(default),
        Some(d) => crate::time::parse_day(d).ok_or_else(|| {
            let msg = format!("day `{}`: expected YYYY-MM-DD", d.chars().take(20).collect::<String>());
            refuse(s, StatusCode::BAD_REQUEST, &msg)
        }),
    }
}

/// The month asked for (none or blank: the current one) with its first and last day, or a
/// 400 naming what was given.
#[allow(clippy::result_large_err)] // the refusal is the page to send, built only on that path
fn month_for(
    s: &Session,
    month: Option<String>,
) -> Result<(String, chrono::NaiveDate, chrono::NaiveDate), Response> {
    let given = month.clone().unwrap_or_default();
    month_or_now(month).ok_or_else(|| {
        let msg = format!("month `{}`: expected YYYY-MM", given.chars().take(20).collect::<String>());
        refuse(s, StatusCode::BAD_REQUEST, &msg)
    })
}

/// The scoring sheet, or a 500 saying what is wrong with `rules/scoring.toml`.
#[allow(clippy::result_large_err)] // the refusal is the page to send, built only on that path
fn sheet_for(app: &App, s: &Session) -> Result<Sheet, Response> {
    app.sheet().map_err(|e| refuse(s, StatusCode::INTERNAL_SERVER_ERROR, &e))
}

/// The session of a supervisor or the owner, or the answer to send instead (403 with `why`
/// for an agent).
async fn staff_session(app: &Shared, headers: &HeaderMap, why: &str) -> Result<Session, Response> {
    staff(session(app, headers).await?, why)
}

/// `s` when it is a supervisor's or the owner's, else a 403 with `why`.
#[allow(clippy::result_large_err)] // the refusal is the page to send, built only on that path
fn staff(s: Session, why: &str) -> Result<Session, Response> {
    if s.user.role == users::Role::Agent {
        return Err(forbidden(&s, why));
    }
    Ok(s)
}

/// The owner's session (pay), or the answer to send instead.
async fn owner_session(app: &Shared, headers: &HeaderMap) -> Result<Session, Response> {
    let s = session(app, headers).await?;
    if !s.user.sees_pay() {
        return Err(forbidden(&s, "pay is for the owner only"));
    }
    Ok(s)
}

async fn not_found(State(app): State<Shared>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    // Browsers ask for it on their own; a redirect to the login page would be noise.
    if uri.path() == "/favicon.ico" {
        return StatusCode::NOT_FOUND.into_response();
    }
    match session(&app, &headers).await {
        Ok(s) => page(StatusCode::NOT_FOUND, pages::error(Some((&s.user, &s.csrf)), 404, "no such page")),
        Err(r) => r,
    }
}

async fn asset(State(app): State<Shared>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    // The style sheet dresses the login page; the script is for signed-in pages only.
    if name != "console.css"
        && let Err(r) = session(&app, &headers).await
    {
        return r;
    }
    match pages::asset(&name) {
        Some((mime, body)) => ([(CONTENT_TYPE, mime), (CACHE_CONTROL, "no-cache")], body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn board_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    match session(&app, &headers).await {
        Ok(s) => page(StatusCode::OK, pages::board(&s.user, &s.csrf)),
        Err(r) => r,
    }
}

/// How often an open stream with nothing to publish asks whether its session still holds
/// (a sign-out in another tab or `kefu users passwd` ends it without a publish).
const STREAM_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// The board as server-sent events: the whole (scoped) state at once on every
/// (re)connect, then after every published change. The stream ends with its session: the
/// session is looked up again before every state sent, at the session's expiry and every
/// [`STREAM_RECHECK`] while nothing is published, so an expired, signed-out or revoked
/// login stops receiving the board (the browser's reconnect then gets 401).
async fn board_stream(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let Some(token) = cookie_value(&headers, SESSION_COOKIE) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let watch =
        StreamWatch { rx: app.board.clone(), scope: s.user.scope(), expires_at: s.expires_at, app, token };
    let stream = futures_util::stream::unfold((watch, true), |(mut w, first)| async move {
        if !first && !w.next_change().await {
            return None;
        }
        if !w.session_holds().await {
            return None;
        }
        let state = w.rx.borrow_and_update().clone();
        let json = state.json(&w.scope);
        Some((Ok::<_, Infallible>(SseEvent::default().event("board").data(&*json)), (w, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// One browser's board stream: what it watches and whose session it serves.
struct StreamWatch {
    app: Shared,
    token: String,
    rx: watch::Receiver<Arc<BoardState>>,
    scope: super::board::Scope,
    expires_at: Millis,
}

impl StreamWatch {
    /// Waits for the next published state; false when the stream must end (the board is
    /// gone, or the session no longer holds at its expiry or a recheck).
    async fn next_change(&mut self) -> bool {
        loop {
            let to_expiry = u64::try_from(self.expires_at.saturating_sub(now_ms())).unwrap_or(0);
            let wait = STREAM_RECHECK.min(std::time::Duration::from_millis(to_expiry));
            tokio::select! {
                changed = self.rx.changed() => return changed.is_ok(),
                () = tokio::time::sleep(wait) => {
                    if !self.session_holds().await {
                        return false;
                    }
                }
            }
        }
    }

    /// Whether the session is still there and unexpired (a database failure ends the stream:
    /// the board is not served on a session that cannot be checked).
    async fn session_holds(&mut self) -> bool {
        let token = self.token.clone();
        let found =
            with_db(&self.app, move |c| auth::lookup(c, &token, now_ms()).map_err(|e| e.to_string())).await;
        match found {
            Ok(Some(s)) => {
                // A changed role or shop list applies from the next state on.
                self.expires_at = s.expires_at;
                self.scope = s.user.scope();
                true
            }
            _ => false,
        }
    }
}

async fn login_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    login_form(&headers, StatusCode::OK, None, app.secure_cookies)
}

/// The sign-in form with its CSRF token in a cookie and in the form (double submit). A
/// token the browser already holds is kept: a second tab or a redirected favicon request
/// must not invalidate the form on screen.
fn login_form(headers: &HeaderMap, status: StatusCode, error: Option<&str>, secure: bool) -> Response {
    let held = cookie_value(headers, LOGIN_COOKIE).filter(|t| t.len() == 43 && t.bytes().all(is_token_byte));
    let csrf = held.unwrap_or_else(auth::random_token);
    let cookie = auth::set_cookie(LOGIN_COOKIE, &csrf, 3600, secure);
    let mut res = page(status, pages::login(&csrf, error));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The sign-in form's fields.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let secure = app.secure_cookies;
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::same_token(&expected, &form.csrf) {
        return login_form(
            &headers,
            StatusCode::FORBIDDEN,
            Some("表单已过期，请重试 The form expired; try again."),
            secure,
        );
    }
    let now = now_ms();
    let keys = [format!("user:{}", form.name), format!("addr:{}", peer.ip())];
    let wait = keys.iter().filter_map(|k| app.limiter().check(k, now).err()).max();
    if let Some(ms) = wait {
        let msg = format!("尝试次数过多 Too many failed attempts: wait {} s.", (ms + 999) / 1000);
        return login_form(&headers, StatusCode::TOO_MANY_REQUESTS, Some(&msg), secure);
    }
    let name = form.name.clone();
    let password = form.password;
    let verified = with_db(&app, move |c| {
        let user = users::verify(c, &name, &password).map_err(|e| e.to_string())?;
        match user {
            Some(u) => auth::create(c, &u.name, now).map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    })
    .await;
    match verified {
        Ok(Some((token, _csrf))) => {
            for k in &keys {
                app.limiter().succeeded(k);
            }
            info!(user = %escape_for_log(&form.name), "console: signed in");
            let mut res = redirect("/");
            let session = auth::set_cookie(SESSION_COOKIE, &token, auth::SESSION_MS / 1000, secure);
            let clear = auth::set_cookie(LOGIN_COOKIE, "", 0, secure);
            for c in [session, clear] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    res.headers_mut().append(SET_COOKIE, v);
                }
            }
            res
        }
        Ok(None) => {
            for k in &keys {
                app.limiter().failed(k, now);
            }
            warn!(user = %escape_for_log(&form.name), addr = %peer.ip(), "console: failed sign-in");
            login_form(
                &headers,
                StatusCode::UNAUTHORIZED,
                Some("用户名或密码错误 Wrong user name or password."),
                secure,
            )
        }
        Err(r) => r,
    }
}

/// A form that carries only its CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(app): State<Shared>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !auth::same_token(&s.csrf, &form.csrf) {
        return forbidden(&s, "CSRF token missing or wrong");
    }
    if let Some(token) = cookie_value(&headers, SESSION_COOKIE)
        && let Err(r) = with_db(&app, move |c| auth::delete(c, &token).map_err(|e| e.to_string())).await
    {
        return r;
    }
    let mut res = redirect("/login");
    if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(SESSION_COOKIE, "", 0, app.secure_cookies)) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}

/// `?day=YYYY-MM-DD`.
#[derive(Deserialize)]
struct DayQuery {
    day: Option<String>,
}

async fn conversation_page(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(conversation): Path<String>,
    Query(q): Query<DayQuery>,
) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let board_now = app.board.borrow().now;
    let now: Millis = if board_now > 0 { board_now } else { now_ms() };
    let day = match day_or(&s, q.day.as_deref(), shanghai_day(now)) {
        Ok(day) => day,
        Err(r) => return r,
    };
    let conv = conversation.clone();
    let t = match with_db(&app, move |c| transcript::read(c, &conv, day).map_err(|e| e.to_string())).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if t.lines.is_empty() {
        return page(
            StatusCode::NOT_FOUND,
            pages::error(Some((&s.user, &s.csrf)), 404, "no message in this conversation that day"),
        );
    }
    if !s.user.may_read(&t.shop, &t.agents) {
        return forbidden(&s, "this conversation is not yours to read");
    }
    let mut t = t;
    // The wait running now is on the board, not yet in the database.
    if let Some(w) = app.board.borrow().waiting.iter().find(|w| *w.conversation == *conversation)
        && shanghai_day(w.start) == day
    {
        t.waits.push(transcript::WaitMark {
            start: w.start,
            end: None,
            outcome: "waiting".into(),
            deadline_ms: w.deadline_ms,
            load: w.load,
            agent: w.agent.to_string(),
        });
    }
    page(StatusCode::OK, pages::conversation(&s.user, &s.csrf, &t, now))
}

/// `?month=YYYY-MM`.
#[derive(Deserialize)]
struct MonthQuery {
    month: Option<String>,
}

async fn pay_page(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<MonthQuery>) -> Response {
    let s = match owner_session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (month, _, _) = match month_for(&s, q.month) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let m = month.clone();
    let rows = with_db(&app, move |c| {
        let mut stmt = c
            .prepare(
                "SELECT agent, total, grade, bonus, commission_paid, salary FROM scores \
                 WHERE month = ?1 ORDER BY rank, agent",
            )
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([&m], |r| {
                Ok(PayRow {
                    agent: r.get(0)?,
                    total: r.get(1)?,
                    grade: r.get(2)?,
                    bonus: r.get(3)?,
                    commission: r.get(4)?,
                    salary: r.get(5)?,
                })
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| e.to_string())?;
        Ok(rows)
    })
    .await;
    match rows {
        Ok(rows) => page(StatusCode::OK, pages::pay(&s.user, &s.csrf, &month, &rows)),
        Err(r) => r,
    }
}

/// The payroll columns of the export: (header, `scores` column). Money as stored (exact, to the fen).
const PAYROLL: [(&str, &str); 14] = [
    ("客服 agent", "agent"),
    ("名次 rank", "rank"),
    ("得分 score", "total"),
    ("等级 grade", "grade"),
    ("日常考核 ledger", "ledger_points"),
    ("底薪 base salary", "base_salary"),
    ("工龄 seniority", "seniority"),
    ("奖金 bonus", "bonus"),
    ("提成比例 commission rate", "commission_rate"),
    ("个人提成 personal commission", "personal_commission"),
    ("公共提成 public commission", "public_commission"),
    ("提成 commission paid", "commission_paid"),
    ("月薪 salary", "salary"),
    ("缺少录入 missing inputs", "missing"),
];

/// The month's payroll as CSV for Excel (owner only): UTF-8 with a BOM, every cell
/// neutralised against formulas (`textio::PeopleCsv`, the reports' own writer).
async fn pay_csv(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<MonthQuery>) -> Response {
    let s = match owner_session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (month, _, _) = match month_for(&s, q.month) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let m = month.clone();
    let bytes = with_db(&app, move |c| {
        let columns: Vec<&str> = PAYROLL.iter().map(|(_, c)| *c).collect();
        let sql = format!("SELECT {} FROM scores WHERE month = ?1 ORDER BY rank, agent", columns.join(", "));
        let mut stmt = c.prepare(&sql).map_err(|e| e.to_string())?;
        let mut csv = crate::textio::PeopleCsv::new(PAYROLL.iter().map(|(h, _)| *h));
        let mut rows = stmt.query([&m]).map_err(|e| e.to_string())?;
        while let Some(r) = rows.next().map_err(|e| e.to_string())? {
            let mut cells = Vec::with_capacity(PAYROLL.len());
            for i in 0..PAYROLL.len() {
                let cell = match r.get_ref(i).map_err(|e| e.to_string())? {
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    _ => String::new(),
                };
                cells.push(cell);
            }
            csv.row(cells);
        }
        Ok(csv.into_utf8_with_bom())
    })
    .await;
    match bytes {
        Ok(bytes) => {
            let disposition = format!("attachment; filename=\"payroll-{month}.csv\"");
            (
                [
                    (CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(r) => r,
    }
}

/// "My day": an agent's own day page; others go to the board (they open an agent from it).
async fn my_day(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<DayQuery>) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match (&s.user.agent, s.user.role) {
        (Some(a), users::Role::Agent) => {
            let day = q.day.map(|d| {
                format!("?day={}", url::form_urlencoded::byte_serialize(d.as_bytes()).collect::<String>())
            });
            let path: String = url::form_urlencoded::byte_serialize(a.as_bytes()).collect();
            redirect(&format!("/agent/{}{}", path.replace('+', "%20"), day.unwrap_or_default()))
        }
        _ => redirect("/"),
    }
}

async fn agent_page(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(agent): Path<String>,
    Query(q): Query<DayQuery>,
) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let day = match day_or(&s, q.day.as_deref(), shanghai_day(now_ms())) {
        Ok(day) => day,
        Err(r) => return r,
    };
    if let super::board::Scope::Agent(me) = s.user.scope()
        && me != agent
    {
        return forbidden(&s, "another agent's page is not yours to read");
    }
    let a = agent.clone();
    let d = match with_db(&app, move |c| reports::agent_day(c, &a, day).map_err(|e| e.to_string())).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if let super::board::Scope::Shops(mine) = s.user.scope()
        && !d.shops().iter().any(|x| mine.contains(x))
    {
        return forbidden(&s, "this agent did not work in your shops that day");
    }
    page(StatusCode::OK, pages::agent_day(&s.user, &s.csrf, &d))
}

/// `?month=YYYY-MM` for the points page, and the month the forms come back to.
#[derive(Deserialize)]
struct PointsQuery {
    month: Option<String>,
}

/// The month asked for (none or empty: the current one), with its first and last day.
fn month_or_now(m: Option<String>) -> Option<(String, chrono::NaiveDate, chrono::NaiveDate)> {
    let m = m.map(|m| m.trim().to_string()).filter(|m| !m.is_empty());
    let month = m.unwrap_or_else(|| shanghai_day(now_ms()).format("%Y-%m").to_string());
    let (from, to) = crate::scoring::job::month_bounds(&month)?;
    Some((month, from, to))
}

async fn points_view(
    app: &Shared,
    s: &Session,
    month: Option<String>,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let (month, from, to) = match month_for(s, month) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let agent = match s.user.scope() {
        super::board::Scope::Agent(a) => Some(a),
        _ => None,
    };
    let sheet = app.sheet().ok();
    let (base, cap, rules) = sheet.as_ref().map_or((rust_decimal::Decimal::ZERO, None, vec![]), |s| {
        (s.ledger_base, s.ledger_cap, s.ledger_rules.clone())
    });
    let m = month.clone();
    let data = with_db(app, move |c| {
        let err = |e: crate::scoring::ledger::LedgerError| e.to_string();
        let (entries, trail) = points::month(c, from, to, agent.as_deref()).map_err(err)?;
        let appeals = points::open_appeals(c).map_err(err)?;
        let codes = crate::scoring::ledger::void_codes(c, from, to).map_err(err)?;
        let all = crate::scoring::ledger::entries(c, from, to).map_err(err)?;
        let ledger = crate::scoring::ledger::month_scores(&all, &rules, base, cap);
        let mut stmt =
            c.prepare("SELECT agent, total FROM scores WHERE month = ?1").map_err(|e| e.to_string())?;
        let scores: std::collections::HashMap<String, String> = stmt
            .query_map([&m], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(|e| e.to_string())?;
        Ok((entries, trail, appeals, codes, ledger, scores))
    })
    .await;
    let (mut entries, mut trail, mut appeals, codes, ledger, scores) = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    // A shop-limited supervisor sees the entries of the agents who worked in their shops.
    match agents_of(app, s, from, to).await {
        Ok(Some(mine)) => {
            entries.retain(|e| mine.contains(&e.agent));
            let kept: std::collections::HashSet<i64> = entries.iter().map(|e| e.id).collect();
            trail.retain(|a| a.entry.is_some_and(|id| kept.contains(&id)));
            appeals.retain(|id, _| kept.contains(id));
        }
        Ok(None) => {}
        Err(r) => return r,
    }
    let mut sums: std::collections::BTreeMap<String, pages::SumRow> = std::collections::BTreeMap::new();
    for e in &entries {
        let row = sums.entry(e.agent.clone()).or_insert_with(|| pages::SumRow {
            agent: e.agent.clone(),
            ledger: ledger.get(&e.agent).map_or(base, |l| l.score),
            score: scores.get(&e.agent).cloned(),
            ..Default::default()
        });
        if !e.voided {
            row.sum += e.points;
        }
    }
    let p = pages::PointsPage {
        month: month.clone(),
        entries,
        appeals,
        sums: sums.into_values().collect(),
        codes,
        base,
        cap,
        trail,
        message,
    };
    page(status, pages::points(&s.user, &s.csrf, &p))
}

/// Recomputes the month of `day` from its stored days after a change (the scoring job's own
/// `score_month`; a month with no stored day has no score to follow). A failure is logged:
/// the change itself is stored, and the nightly job scores the month again.
fn rescore(conn: &mut Connection, sheet: Option<&Sheet>, day: &str) {
    let Some(sheet) = sheet else { return };
    let month: String = day.chars().take(7).collect();
    if let Err(e) = crate::scoring::job::score_month(conn, sheet, &month) {
        warn!(error = %e, month = %month, "console: rescoring the month after a change");
    }
}

async fn points_page(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<PointsQuery>,
) -> Response {
    match session(&app, &headers).await {
        Ok(s) => points_view(&app, &s, q.month, None, StatusCode::OK).await,
        Err(r) => r,
    }
}

/// After a form: back to the month's page (a redirect, so a reload does not post again).
fn back_to(month: &str) -> Response {
    let m: String = url::form_urlencoded::byte_serialize(month.as_bytes()).collect();
    redirect(&format!("/points?month={m}"))
}

/// The agents whose points and score inputs `s` may see and change in the month
/// `from..=to`: `None` for every agent (the owner, a supervisor of all shops), else the
/// agents who worked in the supervisor's shops that month (`reports::agents_in_shops`).
async fn agents_of(
    app: &Shared,
    s: &Session,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<Option<std::collections::BTreeSet<String>>, Response> {
    let super::board::Scope::Shops(shops) = s.user.scope() else { return Ok(None) };
    with_db(app, move |c| reports::agents_in_shops(c, &shops, from, to).map(Some).map_err(|e| e.to_string()))
        .await
}

/// A 403 when a shop-limited supervisor's form is about an agent who did not work in
/// their shops in the month of `day`.
async fn check_agent(app: &Shared, s: &Session, agent: &str, day: &str) -> Result<(), Response> {
    let month: String = day.chars().take(7).collect();
    let Some((month, from, to)) = month_or_now(Some(month)) else { return Ok(()) };
    match agents_of(app, s, from, to).await? {
        Some(mine) if !mine.contains(agent) => {
            let agent: String = agent.chars().take(40).collect();
            Err(forbidden(s, &format!("agent `{agent}` did not work in your shops in {month}")))
        }
        _ => Ok(()),
    }
}

/// [`check_agent`] for a stored ledger entry (an unknown entry passes: the change itself
/// refuses it by name).
async fn check_entry(app: &Shared, s: &Session, entry: i64) -> Result<(), Response> {
    if s.user.scope() == super::board::Scope::All {
        return Ok(());
    }
    let found =
        with_db(app, move |c| crate::scoring::ledger::entry(c, entry).map_err(|e| e.to_string())).await?;
    match found {
        Some(e) => check_agent(app, s, &e.agent, &e.day).await,
        None => Ok(()),
    }
}

/// After a points form's change: back to the month's page, or the page with the refusal.
async fn points_done<T>(
    app: &Shared,
    s: &Session,
    month: String,
    r: Result<Result<T, String>, Response>,
) -> Response {
    match r {
        Ok(Ok(_)) => back_to(&month),
        Ok(Err(msg)) => points_view(app, s, Some(month), Some(msg), StatusCode::BAD_REQUEST).await,
        Err(r) => r,
    }
}

/// A points form (add, edit, remove), plus the month to return to.
#[derive(Deserialize)]
struct PointsForm {
    #[serde(flatten)]
    form: points::EntryForm,
    #[serde(default)]
    month: String,
}

async fn points_add(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<PointsForm>) -> Response {
    let s = match supervisor_form(&app, &headers, &f.form.csrf, "agents do not add points").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let entry = match points::validate(&f.form) {
        Ok(e) => e,
        Err(msg) => return points_view(&app, &s, Some(f.month), Some(msg), StatusCode::BAD_REQUEST).await,
    };
    if let Err(r) = check_agent(&app, &s, &entry.agent, &entry.day.to_string()).await {
        return r;
    }
    let (user, sheet) = (s.user.name.clone(), app.sheet().ok());
    let r = with_db_mut(&app, move |c| {
        let id = points::add(c, &entry, &user, now_ms()).map_err(|e| e.to_string())?;
        rescore(c, sheet.as_ref(), &entry.day.to_string());
        Ok(id)
    })
    .await;
    points_done(&app, &s, f.month, r).await
}

/// The appeal form.
#[derive(Deserialize)]
struct AppealForm {
    #[serde(default)]
    entry: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    month: String,
    #[serde(default)]
    csrf: String,
}

async fn points_appeal(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<AppealForm>) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !auth::same_token(&s.csrf, &f.csrf) {
        return forbidden(&s, "CSRF token missing or wrong");
    }
    let (Some(agent), users::Role::Agent) = (s.user.agent.clone(), s.user.role) else {
        return forbidden(&s, "only the agent an entry is about appeals it");
    };
    let reason = f.reason.trim().chars().take(points::MAX_REASON).collect::<String>();
    if reason.is_empty() {
        return points_view(&app, &s, Some(f.month), Some("reason: say why".into()), StatusCode::BAD_REQUEST)
            .await;
    }
    let (user, window) = (s.user.name.clone(), app.appeal_window_ms());
    let entry = match points::entry_id(&f.entry) {
        Ok(e) => e,
        Err(msg) => return points_view(&app, &s, Some(f.month), Some(msg), StatusCode::BAD_REQUEST).await,
    };
    let r = with_db_mut(&app, move |c| {
        points::appeal(c, entry, &agent, &reason, &user, now_ms(), window).map_err(|e| e.to_string())
    })
    .await;
    points_done(&app, &s, f.month, r).await
}

/// A supervisor's two-way decision (`yes` → true, `no` → false) and its note, cut to the
/// length the ledger keeps; anything else is refused naming both choices.
fn decision(value: &str, yes: &str, no: &str, note: &str) -> Result<(bool, String), String> {
    let note = note.trim().chars().take(points::MAX_REASON).collect();
    match value {
        v if v == yes => Ok((true, note)),
        v if v == no => Ok((false, note)),
        _ => Err(format!("decision: expected {yes} or {no}")),
    }
}

/// The accept / reject form.
#[derive(Deserialize)]
struct ResolveForm {
    #[serde(default)]
    dispute: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    month: String,
    #[serde(default)]
    csrf: String,
}

async fn points_resolve(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<ResolveForm>,
) -> Response {
    let s = match supervisor_form(&app, &headers, &f.csrf, "agents do not decide appeals").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (accept, note) = match decision(&f.decision, "accept", "reject", &f.note) {
        Ok(d) => d,
        Err(msg) => return points_view(&app, &s, Some(f.month), Some(msg), StatusCode::BAD_REQUEST).await,
    };
    let Some(dispute) = f.dispute.trim().parse::<i64>().ok().filter(|d| *d > 0) else {
        let msg = format!(
            "dispute `{}`: expected an appeal number",
            f.dispute.chars().take(20).collect::<String>()
        );
        return points_view(&app, &s, Some(f.month), Some(msg), StatusCode::BAD_REQUEST).await;
    };
    let appealed = with_db(&app, move |c| {
        let open = crate::scoring::ledger::open_disputes(c).map_err(|e| e.to_string())?;
        Ok(open.into_iter().find(|(d, _)| d.id == dispute).map(|(_, e)| e.id))
    })
    .await;
    match appealed {
        Ok(Some(entry)) => {
            if let Err(r) = check_entry(&app, &s, entry).await {
                return r;
            }
        }
        Ok(None) => {}
        Err(r) => return r,
    }
    let (user, sheet) = (s.user.name.clone(), app.sheet().ok());
    let r = with_db_mut(&app, move |c| {
        let entry = points::resolve(c, dispute, accept, &note, &user, now_ms()).map_err(|e| e.to_string())?;
        if let Ok(Some(e)) = crate::scoring::ledger::entry(c, entry) {
            rescore(c, sheet.as_ref(), &e.day);
        }
        Ok(())
    })
    .await;
    points_done(&app, &s, f.month, r).await
}

/// A supervisor changes an entry's points, category or reason.
async fn points_edit(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<PointsForm>) -> Response {
    let s = match supervisor_form(&app, &headers, &f.form.csrf, "agents do not change points").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let edit = match points::validate_edit(&f.form) {
        Ok(e) => e,
        Err(msg) => return points_view(&app, &s, Some(f.month), Some(msg), StatusCode::BAD_REQUEST).await,
    };
    if let Err(r) = check_entry(&app, &s, edit.entry).await {
        return r;
    }
    let (user, sheet) = (s.user.name.clone(), app.sheet().ok());
    let r = with_db_mut(&app, move |c| {
        let before = points::edit(c, &edit, &user, now_ms()).map_err(|e| e.to_string())?;
        rescore(c, sheet.as_ref(), &before.day);
        Ok(())
    })
    .await;
    points_done(&app, &s, f.month, r).await
}

/// A supervisor removes an entry, saying why.
async fn points_remove(State(app): State<Shared>, headers: HeaderMap, Form(f): Form<PointsForm>) -> Response {
    let s = match supervisor_form(&app, &headers, &f.form.csrf, "agents do not remove points").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let entry = match points::entry_id(&f.form.entry) {
        Ok(e) => e,
        Err(msg) => return points_view(&app, &s, Some(f.month), Some(msg), StatusCode::BAD_REQUEST).await,
    };
    if let Err(r) = check_entry(&app, &s, entry).await {
        return r;
    }
    let why = f.form.reason.trim().chars().take(points::MAX_REASON).collect::<String>();
    if why.is_empty() {
        let msg = "reason: say why the entry is removed".to_string();
        return points_view(&app, &s, Some(f.month), Some(msg), StatusCode::BAD_REQUEST).await;
    }
    let (user, sheet) = (s.user.name.clone(), app.sheet().ok());
    let r = with_db_mut(&app, move |c| {
        let before = points::remove(c, entry, &why, &user, now_ms()).map_err(|e| e.to_string())?;
        rescore(c, sheet.as_ref(), &before.day);
        Ok(())
    })
    .await;
    points_done(&app, &s, f.month, r).await
}

/// The session of a supervisor's or the owner's form with its CSRF token checked, or the
/// answer to send instead (403 for a wrong token or an agent, with `why`).
async fn supervisor_form(
    app: &Shared,
    headers: &HeaderMap,
    csrf: &str,
    why: &str,
) -> Result<Session, Response> {
    let s = session(app, headers).await?;
    if !auth::same_token(&s.csrf, csrf) {
        return Err(forbidden(&s, "CSRF token missing or wrong"));
    }
    staff(s, why)
}

/// The score-input grid of a month (supervisors and the owner).
async fn inputs_page(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<MonthQuery>) -> Response {
    let s = match staff_session(&app, &headers, "score inputs are entered by supervisors").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    inputs_view(&app, &s, q.month, None, StatusCode::OK).await
}

async fn inputs_view(
    app: &Shared,
    s: &Session,
    month: Option<String>,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let (month, from, to) = match month_for(s, month) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let sheet = match sheet_for(app, s) {
        Ok(sheet) => sheet,
        Err(r) => return r,
    };
    // A shop-limited supervisor enters, and sees the trail of, the inputs of the agents
    // who worked in their shops.
    let mine = match agents_of(app, s, from, to).await {
        Ok(mine) => mine,
        Err(r) => return r,
    };
    let m = month.clone();
    let data = with_db(app, move |c| {
        let mut grid =
            inputs::read(c, &sheet, &m, &from.to_string(), &to.to_string()).map_err(|e| e.to_string())?;
        let within = match &mine {
            Some(mine) => {
                grid.rows.retain(|r| mine.contains(&r.agent));
                points::Within::Agents(mine)
            }
            None => points::Within::All,
        };
        let trail = points::trail(c, "inputs.", 50, within).map_err(|e| e.to_string())?;
        Ok((grid, trail))
    })
    .await;
    let (grid, trail) = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    let p = pages::InputsPage { month, grid, trail, message };
    page(status, pages::inputs(&s.user, &s.csrf, &p))
}

/// After a change to score inputs: back to the month's grid, or the grid with the refusal.
async fn inputs_done(
    app: &Shared,
    s: &Session,
    month: String,
    r: Result<Result<(), String>, Response>,
) -> Response {
    match r {
        Ok(Ok(())) => {
            let m: String = url::form_urlencoded::byte_serialize(month.as_bytes()).collect();
            redirect(&format!("/inputs?month={m}"))
        }
        Ok(Err(msg)) => inputs_view(app, s, Some(month), Some(msg), StatusCode::BAD_REQUEST).await,
        Err(r) => r,
    }
}

/// The grid form: every cell checked by the sheet's own rule, all stored or none.
async fn inputs_set(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let field =
        |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let s = match supervisor_form(&app, &headers, &field("csrf"), "score inputs are entered by supervisors")
        .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (month, from, to) = match month_for(&s, Some(field("month"))) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let sheet = match sheet_for(&app, &s) {
        Ok(sheet) => sheet,
        Err(r) => return r,
    };
    match agents_of(&app, &s, from, to).await {
        Ok(Some(mine)) => {
            if let Some((_, a)) = fields.iter().find(|(k, v)| k == "agent" && !mine.contains(v)) {
                let a: String = a.chars().take(40).collect();
                return forbidden(&s, &format!("agent `{a}` did not work in your shops in {month}"));
            }
        }
        Ok(None) => {}
        Err(r) => return r,
    }
    let (m, user) = (month.clone(), s.user.name.clone());
    let r = with_db_mut(&app, move |c| {
        let grid =
            inputs::read(c, &sheet, &m, &from.to_string(), &to.to_string()).map_err(|e| e.to_string())?;
        let changes = inputs::changes(&sheet, &grid, &fields).map_err(|e| e.join("\n"))?;
        if changes.is_empty() {
            return Ok(());
        }
        let detail = inputs::apply(c, &m, &changes).map_err(|e| e.to_string())?;
        let about = points::About { shop: None, agents: changes.iter().map(inputs::Change::agent).collect() };
        points::audit_about(c, now_ms(), &user, "inputs.set", None, &detail, &about)
            .map_err(|e| e.to_string())?;
        if let Err(e) = crate::scoring::job::score_month(c, &sheet, &m) {
            warn!(error = %e, month = %m, "console: rescoring the month after score inputs");
        }
        Ok(())
    })
    .await;
    inputs_done(&app, &s, month, r).await
}

/// The findings review page (supervisors and the owner; a supervisor sees their shops).
async fn findings_page(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<DayQuery>) -> Response {
    let s = match staff_session(&app, &headers, "findings are reviewed by supervisors").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    findings_view(&app, &s, q.day, None, StatusCode::OK).await
}

async fn findings_view(
    app: &Shared,
    s: &Session,
    day: Option<String>,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let day = match day_or(s, day.as_deref(), shanghai_day(now_ms())) {
        Ok(day) => day,
        Err(r) => return r,
    };
    let scope = s.user.scope();
    let data = with_db(app, move |c| {
        let mut list = findings::day(c, day, None).map_err(|e| e.to_string())?;
        let mut candidates = findings::candidates(c, 100).map_err(|e| e.to_string())?;
        // A supervisor limited to some shops sees their findings, the candidate exceptions
        // from them and the trail about them.
        let within = match &scope {
            super::board::Scope::Shops(mine) => {
                list.retain(|f| mine.contains(&f.flag.shop));
                candidates.retain(|c| mine.contains(&c.shop));
                points::Within::Shops(mine)
            }
            _ => points::Within::All,
        };
        let trail = points::trail(c, "finding.", 50, within).map_err(|e| e.to_string())?;
        Ok((list, candidates, trail))
    })
    .await;
    let (list, candidates, trail) = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    let p = pages::FindingsPage { day: day.to_string(), findings: list, candidates, trail, message };
    page(status, pages::findings(&s.user, &s.csrf, &p))
}

/// The largest grid file taken (a month's grid for a few hundred agents is a few kB).
const MAX_UPLOAD: usize = 1 << 20;

/// A grid CSV uploaded: the file is checked by `scoring::cli::check_input_grid`, the one
/// path with `kefu score-input import` (every line first; one bad line and nothing is stored).
async fn inputs_import(
    State(app): State<Shared>,
    headers: HeaderMap,
    mut form: axum::extract::Multipart,
) -> Response {
    let (mut csrf, mut month, mut file) = (String::new(), String::new(), None::<(String, Vec<u8>)>);
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                let filename = field.file_name().unwrap_or("upload.csv").chars().take(80).collect::<String>();
                let bytes = match field.bytes().await {
                    Ok(b) => b,
                    Err(e) => return StatusCode::BAD_REQUEST.into_response_with(&format!("upload: {e}")),
                };
                match name.as_str() {
                    "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
                    "month" => month = String::from_utf8_lossy(&bytes).into_owned(),
                    "file" if bytes.len() > MAX_UPLOAD => {
                        return StatusCode::PAYLOAD_TOO_LARGE.into_response_with("file: larger than 1 MB");
                    }
                    "file" => file = Some((filename, bytes.to_vec())),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return StatusCode::BAD_REQUEST.into_response_with(&format!("upload: {e}")),
        }
    }
    let s = match supervisor_form(&app, &headers, &csrf, "score inputs are entered by supervisors").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some((month_ok, ok_from, ok_to)) = month_or_now(Some(month.clone())) else {
        return inputs_view(&app, &s, None, Some("month: expected YYYY-MM".into()), StatusCode::BAD_REQUEST)
            .await;
    };
    let Some((name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        let msg = "file: choose a CSV file (agent, then one column per indicator)".to_string();
        return inputs_view(&app, &s, Some(month_ok), Some(msg), StatusCode::BAD_REQUEST).await;
    };
    let sheet = match app.sheet() {
        Ok(sheet) => sheet,
        Err(e) => {
            return inputs_view(&app, &s, Some(month_ok), Some(e), StatusCode::INTERNAL_SERVER_ERROR).await;
        }
    };
    let (sh, n) = (sheet.clone(), name.clone());
    let checked = with_db(&app, move |c| {
        Ok(crate::scoring::cli::check_input_grid(c, &sh, std::path::Path::new(&n), &bytes)
            .map_err(|e| e.to_string()))
    })
    .await;
    let grid = match checked {
        Ok(Ok(grid)) => grid,
        Ok(Err(msg)) => {
            return inputs_view(&app, &s, Some(month_ok), Some(msg), StatusCode::BAD_REQUEST).await;
        }
        Err(r) => return r,
    };
    match agents_of(&app, &s, ok_from, ok_to).await {
        Ok(Some(mine)) => {
            if let Some((a, _, _)) = grid.values.iter().find(|(a, _, _)| !mine.contains(a)) {
                let a: String = a.chars().take(40).collect();
                return forbidden(
                    &s,
                    &format!("agent `{a}` did not work in your shops in {month_ok}; nothing stored"),
                );
            }
        }
        Ok(None) => {}
        Err(r) => return r,
    }
    let (m, user) = (month_ok.clone(), s.user.name.clone());
    let r = with_db_mut(&app, move |c| {
        crate::scoring::cli::store_inputs(c, &m, &grid.values).map_err(|e| e.to_string())?;
        let detail = format!("{m}: {name}: {} value(s) for {} agent(s)", grid.values.len(), grid.agents);
        let about =
            points::About { shop: None, agents: grid.values.iter().map(|(a, _, _)| a.as_str()).collect() };
        points::audit_about(c, now_ms(), &user, "inputs.import", None, &detail, &about)
            .map_err(|e| e.to_string())?;
        if let Err(e) = crate::scoring::job::score_month(c, &sheet, &m) {
            warn!(error = %e, month = %m, "console: rescoring the month after an upload");
        }
        Ok(())
    })
    .await;
    inputs_done(&app, &s, month_ok, r).await
}

/// A plain-text refusal for a request too broken to show a page for.
trait PlainRefusal {
    fn into_response_with(self, message: &str) -> Response;
}

impl PlainRefusal for StatusCode {
    fn into_response_with(self, message: &str) -> Response {
        (self, [(CONTENT_TYPE, "text/plain; charset=utf-8")], message.to_string()).into_response()
    }
}

/// The auto-answers page: the day's unanswered questions grouped, each with an add form.
async fn answers_page(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<DayQuery>) -> Response {
    let s = match staff_session(&app, &headers, "auto-answers are set up by supervisors").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    answers_view(&app, &s, q.day, None, StatusCode::OK).await
}

async fn answers_view(
    app: &Shared,
    s: &Session,
    day: Option<String>,
    message: Option<String>,
    status: StatusCode,
) -> Response {
    let day = match day_or(s, day.as_deref(), shanghai_day(app_now(app))) {
        Ok(day) => day,
        Err(r) => return r,
    };
    let replies = app.replies.clone();
    let data = with_db(app, move |c| {
        let groups = answers::groups(c, replies.as_deref(), day)?;
        let trail = points::trail(c, "rules.", 50, points::Within::All).map_err(|e| e.to_string())?;
        Ok((groups, trail))
    })
    .await;
    match data {
        Ok((groups, trail)) => {
            let p = pages::AnswersPage {
                day: day.to_string(),
                groups,
                writable: app.replies.is_some(),
                trail,
                message,
            };
            page(status, pages::answers(&s.user, &s.csrf, &p))
        }
        Err(r) => r,
    }
}

/// Engine time when the board has it (the demo runs faster than the wall), else the wall clock.
fn app_now(app: &Shared) -> Millis {
    let board_now = app.board.borrow().now;
    if board_now > 0 { board_now } else { now_ms() }
}

/// Adds a keyword auto-answer to `replies/auto.toml` (checked as `kefu check` checks it;
/// nothing written when it fails) and nudges the running robot to reload.
async fn answers_add(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<answers::AddForm>,
) -> Response {
    let s = match supervisor_form(&app, &headers, &f.csrf, "auto-answers are set up by supervisors").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(dir) = app.replies.clone() else {
        let msg = "replies: kefu runs without a replies folder (--replies DIR); the console has no auto.toml to add to".to_string();
        return answers_view(&app, &s, Some(f.day), Some(msg), StatusCode::BAD_REQUEST).await;
    };
    let (user, today) = (s.user.name.clone(), shanghai_day(app_now(&app)));
    let form = f.clone();
    let written = tokio::task::spawn_blocking(move || answers::add(&dir, &form, &user, today)).await;
    let path = match written {
        Ok(Ok(path)) => path,
        Ok(Err(msg)) => return answers_view(&app, &s, Some(f.day), Some(msg), StatusCode::BAD_REQUEST).await,
        Err(e) => {
            warn!(error = %e, "console: task failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if let Some(n) = &app.reload {
        n.notify_one();
    }
    let detail = format!(
        "{}: rule `{}` ({}) any [{}] → {}",
        path.display(),
        f.id.trim(),
        f.category.trim(),
        answers::keywords(&f.keywords).join(", "),
        f.answer.trim()
    );
    let user = s.user.name.clone();
    let r = with_db(&app, move |c| {
        points::audit(c, now_ms(), &user, "rules.auto_add", None, &detail).map_err(|e| e.to_string())
    })
    .await;
    if let Err(r) = r {
        return r;
    }
    let d: String = url::form_urlencoded::byte_serialize(f.day.as_bytes()).collect();
    redirect(&format!("/answers?day={d}"))
}

/// The day report served live (supervisors and the owner): the nightly job's day page.
async fn report_day(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<DayQuery>) -> Response {
    let s = match staff_session(
        &app,
        &headers,
        "the shop's reports are for supervisors; yours is 我的一天 / 本月",
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let day = match day_or(
        &s,
        q.day.as_deref(),
        shanghai_day(app_now(&app)).pred_opt().unwrap_or(shanghai_day(app_now(&app))),
    ) {
        Ok(day) => day,
        Err(r) => return r,
    };
    let sheet = match sheet_for(&app, &s) {
        Ok(sheet) => sheet,
        Err(r) => return r,
    };
    let link =
        |month: &str, agent: &str| format!("/reports/month?month={month}#A-{}", url_path_segment(agent));
    let r = with_db(&app, move |c| {
        crate::scoring::report::day_report(c, &sheet, day, &link).map_err(|e| format!("{e:#}"))
    })
    .await;
    match r {
        Ok(r) => page(StatusCode::OK, pages::report(&s.user, &s.csrf, "/reports/day", &r)),
        Err(r) => r,
    }
}

/// The month report served live; pay columns only for the owner (left out on the server).
async fn report_month(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<MonthQuery>,
) -> Response {
    let s = match staff_session(
        &app,
        &headers,
        "the shop's reports are for supervisors; yours is 我的一天 / 本月",
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (month, _, _) = match month_for(&s, q.month) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let sheet = match sheet_for(&app, &s) {
        Ok(sheet) => sheet,
        Err(r) => return r,
    };
    let pay = s.user.sees_pay();
    let r = with_db(&app, move |c| {
        crate::scoring::report::month_report(c, &sheet, &month, pay).map_err(|e| format!("{e:#}"))
    })
    .await;
    match r {
        Ok(r) => page(StatusCode::OK, pages::report(&s.user, &s.csrf, "/reports/month", &r)),
        Err(r) => r,
    }
}

fn url_path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// "My month" for an agent login (others go to the month report).
async fn my_month(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<MonthQuery>) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match (&s.user.agent, s.user.role) {
        (Some(a), users::Role::Agent) => {
            let month = q.month.map(|m| format!("?month={}", url_path_segment(&m))).unwrap_or_default();
            redirect(&format!("/agent/{}/month{month}", url_path_segment(a)))
        }
        _ => redirect("/reports/month"),
    }
}

/// An agent's month: their own for an agent, any agent's for a supervisor or the owner.
async fn agent_month_page(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(agent): Path<String>,
    Query(q): Query<MonthQuery>,
) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let super::board::Scope::Agent(me) = s.user.scope()
        && me != agent
    {
        return forbidden(&s, "another agent's page is not yours to read");
    }
    let (month, _, _) = match month_for(&s, q.month) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let sheet = match sheet_for(&app, &s) {
        Ok(sheet) => sheet,
        Err(r) => return r,
    };
    let m =
        with_db(&app, move |c| reports::agent_month(c, &sheet, &agent, &month).map_err(|e| e.to_string()))
            .await;
    match m {
        Ok(m) => page(StatusCode::OK, pages::agent_month(&s.user, &s.csrf, &m)),
        Err(r) => r,
    }
}

/// The confirm / dismiss form.
#[derive(Deserialize)]
struct ReviewForm {
    #[serde(flatten)]
    key: findings::Key,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    day: String,
    #[serde(default)]
    csrf: String,
}

/// A supervisor confirms or dismisses a finding; a dismissal takes its points back and the
/// month is rescored.
async fn findings_review(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<ReviewForm>,
) -> Response {
    let s = match supervisor_form(&app, &headers, &f.csrf, "findings are reviewed by supervisors").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (dismiss, note) = match decision(&f.decision, "dismiss", "confirm", &f.note) {
        Ok(d) => d,
        Err(msg) => return findings_view(&app, &s, Some(f.day), Some(msg), StatusCode::BAD_REQUEST).await,
    };
    // A supervisor reviews the findings of their shops only.
    if let super::board::Scope::Shops(mine) = s.user.scope() {
        let key = f.key.clone();
        let shop = with_db(&app, move |c| {
            Ok(c.query_row(
                "SELECT shop FROM flags WHERE message_id = ?1 AND category = ?2",
                rusqlite::params![key.message, key.category],
                |r| r.get::<_, String>(0),
            )
            .ok())
        })
        .await;
        match shop {
            Ok(Some(shop)) if !mine.contains(&shop) => {
                return forbidden(&s, "this finding is not in your shops");
            }
            Ok(_) => {}
            Err(r) => return r,
        }
    }
    let (user, sheet, key) = (s.user.name.clone(), app.sheet().ok(), f.key.clone());
    let r = with_db_mut(&app, move |c| {
        let (_, day) =
            findings::review(c, &key, dismiss, &note, &user, now_ms()).map_err(|e| e.to_string())?;
        rescore(c, sheet.as_ref(), &day.to_string());
        Ok(())
    })
    .await;
    match r {
        Ok(Ok(())) => {
            let d: String = url::form_urlencoded::byte_serialize(f.day.as_bytes()).collect();
            redirect(&format!("/findings?day={d}"))
        }
        Ok(Err(msg)) => findings_view(&app, &s, Some(f.day), Some(msg), StatusCode::BAD_REQUEST).await,
        Err(r) => r,
    }
}

/// Runs `f` on the console's connection (mutable, for transactions); the inner result is the
/// operation's own refusal, shown in the page.
async fn with_db_mut<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&mut Connection) -> Result<T, String> + Send + 'static,
) -> Result<Result<T, String>, Response> {
    let app = app.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut conn = app.db.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    })
    .await;
    result.map_err(|e| {
        warn!(error = %e, "console: task failed");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    })
}

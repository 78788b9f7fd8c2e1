//! `kefu run`, `kefu demo` and `kefu simulate --listen`: argument values in, effects out.
//! `main.rs` only parses and dispatches here.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use thiserror::Error;
use tokio::sync::watch;
use tokio::time::{Instant, interval, sleep_until};
use tracing::info;

use super::{
    AssistConfig, ChannelSeam, Live, LiveConfig, LiveCounters, LiveError, LiveOptions, NightlyJob, Reloader,
    Sets, StopError, TimeSource,
};
use crate::alerts::format::{Message, terminal_line};
use crate::alerts::{AlertError, AlertService, Plan};
use crate::config::{self, Overrides};
use crate::console::{Console, ConsoleConfig, ConsoleError};
use crate::event::Event;
use crate::gateway::GatewayConfig;
use crate::privacy::Secret;
use crate::replay::{ReplayError, report_from_db};
use crate::rules::DataError;
use crate::rules::response_time;
use crate::simulate::server::rebase;
use crate::simulate::{Item, ServerConfig, SimConfig, SimServer, generate};
use crate::store::{Store, StoreError};
use crate::time::{display_shanghai, now_ms};

/// `println!` for the commands' stdout: a closed pipe (`kefu demo | head`) ends kefu
/// quietly instead of a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        crate::textio::out::print_line_or_exit(&format!($($arg)*))
    };
}

/// `kefu run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (see kefu.toml.example); flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Platform websocket URL, e.g. ws://127.0.0.1:9000.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token (prefer `token_env` in the config file).
    #[arg(long)]
    pub token: Option<Secret>,
    /// SQLite database file.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Rules folder (default: `rules` in the config file, else ./rules when present, else
    /// the embedded rules).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Replies folder (default: `replies` in the config file, else ./replies when present,
    /// else the embedded replies).
    #[arg(long)]
    pub replies: Option<PathBuf>,
    /// Serve the console on this address (default: `[console] http`, else 127.0.0.1:8080).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Cluster mode (`--nats`): see `docs/cluster.md`.
    #[command(flatten)]
    pub cluster: crate::cluster::cli::ClusterArgs,
    /// The worker's id and folder in cluster mode.
    #[command(flatten)]
    pub worker: crate::cluster::cli::WorkerArgs,
}

/// `kefu demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long to run, in seconds (Ctrl-C stops earlier).
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Times faster than real time: 30 plays half an hour of a shop's day (one rush
    /// included) in a minute, with a 20 s deadline lasting two thirds of a second.
    #[arg(long, default_value_t = 30.0)]
    pub speed: f64,
    /// Random seed of the simulated traffic.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Number of agents.
    #[arg(long, default_value_t = 6)]
    pub agents: usize,
    /// Rules folder (default: the embedded rules).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Serve the console on this address (default: 127.0.0.1:8080, or any free port when taken).
    #[arg(long)]
    pub http: Option<SocketAddr>,
}

/// The `--listen` part of `kefu simulate`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Serve the traffic over the websocket protocol on this address (e.g. 127.0.0.1:9000)
    /// instead of writing a file.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Serve the events of this JSONL file instead of generated traffic.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Times faster than real time; 0 sends as fast as the client takes them.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Require this bearer token.
    #[arg(long)]
    pub token: Option<String>,
    /// Cut the connection after every N frames.
    #[arg(long)]
    pub drop_every: Option<u64>,
    /// Make every N-th frame garbage (not JSON).
    #[arg(long)]
    pub garbage_every: Option<u64>,
    /// Send every N-th frame twice.
    #[arg(long)]
    pub duplicate_every: Option<u64>,
    /// Keep the events' own timestamps (default: move them to start now).
    #[arg(long)]
    pub keep_time: bool,
}

/// Failures of the live commands.
#[derive(Debug, Error)]
pub enum LiveCliError {
    /// A configuration or rule file is wrong.
    #[error(transparent)]
    Data(#[from] DataError),
    /// An argument is out of range.
    #[error("{0}")]
    Usage(String),
    /// A file or socket failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The runtime failed to start.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The bot stopped with an error.
    #[error(transparent)]
    Stop(#[from] StopError),
    /// The alert service failed to start.
    #[error(transparent)]
    Alerts(#[from] AlertError),
    /// The console failed to start.
    #[error(transparent)]
    Console(#[from] ConsoleError),
    /// The demo's login could not be made.
    #[error("creating the demo login")]
    Users(#[source] crate::console::users::UserError),
    /// The final report failed.
    #[error(transparent)]
    Report(#[from] ReplayError),
    /// Rule or reply files are wrong (every error, one per line).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Files(Vec<DataError>),
}

/// How often `kefu run` looks at the rules and replies folders (SIGHUP: at once).
const RELOAD_EVERY: Duration = Duration::from_secs(2);

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LiveCliError {
    let what = what.into();
    move |source| LiveCliError::Io { what, source }
}

fn runtime() -> Result<tokio::runtime::Runtime, LiveCliError> {
    tokio::runtime::Runtime::new().map_err(io("cannot start the async runtime"))
}

/// Sets up `tracing` on stderr; `RUST_LOG` wins over `filter`.
pub fn init_logging(filter: &str) -> Result<(), LiveCliError> {
    use tracing_subscriber::EnvFilter;
    let filter = match EnvFilter::try_from_default_env() {
        Ok(f) => f,
        Err(_) => EnvFilter::try_new(filter)
            .map_err(|e| LiveCliError::Usage(format!("log level `{filter}`: {e}")))?,
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Outside text in any field is escaped and cut: no forged lines, no 300 KB values.
        .fmt_fields(crate::textio::LogFields)
        // Colours only on a terminal: a log file or journal gets no escape sequences.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(|m| quiet_dependencies(m.target(), *m.level())))
        .try_init();
    Ok(())
}

/// Whether an event may be logged whatever `RUST_LOG` says: kefu's own at any level, the
/// libraries' at INFO and above only. Their DEBUG and TRACE output carries what must never
/// reach a log: the websocket upgrade request with its `Authorization: Bearer` token, every
/// frame with the buyers' phone and ID-card numbers (tungstenite), webhook URLs with their
/// `access_token` (reqwest).
fn quiet_dependencies(target: &str, level: tracing::Level) -> bool {
    let ours = target == "kefu" || target.starts_with("kefu::");
    ours || level <= tracing::Level::INFO
}

/// Ctrl-C and SIGTERM, listened for from the moment this value is made: a signal that
/// comes before anyone awaits it — during the startup rebuild, between two turns of a
/// loop — is kept for [`StopSignals::recv`], and never ends the process by the default
/// action (exit 143) with work half done.
pub struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Starts listening; call inside a tokio runtime (or with its context entered).
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves when Ctrl-C or SIGTERM has arrived (at once if one came already).
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
                match s.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = one(&mut self.term) => {}
                () = one(&mut self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Resolves when Ctrl-C or SIGTERM arrives.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn existing(name: &str) -> Option<PathBuf> {
    Some(PathBuf::from(name)).filter(|p| p.is_dir())
}

/// `kefu run`: connects to the platform and runs until Ctrl-C / SIGTERM or a fatal error.
pub fn run(args: RunArgs) -> Result<(), LiveCliError> {
    if args.cluster.nats.is_some() {
        return crate::cluster::cli::run_worker(
            &args.cluster,
            &args.worker,
            args.config.as_deref(),
            args.rules,
        );
    }
    // Signals first: from here on a SIGTERM is a clean stop, whatever kefu is doing.
    let rt = runtime()?;
    let mut signals = {
        let _entered = rt.enter();
        StopSignals::install()
    };
    let overrides =
        Overrides { url: args.url, token: args.token, db: args.db, rules: args.rules, replies: args.replies };
    let config = config::load(args.config.as_deref(), overrides, &|v| std::env::var(v).ok())?;
    init_logging(&config.log)?;
    let rules_dir = config.rules.clone().or_else(|| existing("rules"));
    let rules = response_time::load(rules_dir.as_deref())?;
    let alerts = match config.alerts.clone() {
        Some(a) => a,
        None => crate::alerts::config::load(rules_dir.as_deref())?,
    };
    let replies_dir = config.replies.clone().or_else(|| existing("replies"));
    let sets = Sets::load(rules_dir.as_deref(), replies_dir.as_deref()).map_err(LiveCliError::Files)?;
    let sheet = crate::scoring::sheet::load(rules_dir.as_deref())?;
    rt.block_on(async move {
        let service = AlertService::start(alerts.clone(), &config.db)?;
        let (updates_tx, updates) = watch::channel(sets.clone());
        // The console nudges the reloader after it wrote a rule file.
        let nudge = std::sync::Arc::new(tokio::sync::Notify::new());
        let reloader = Reloader::new(rules_dir.clone(), replies_dir.clone()).nudged_by(nudge.clone());
        tokio::spawn(reloader.run(RELOAD_EVERY, updates_tx));
        // Report files go next to the database, whatever the working directory.
        let reports = config.db.parent().unwrap_or(Path::new(".")).join("reports");
        let nightly = NightlyJob { db: config.db.clone(), sheet, reports: Some(reports) };
        let assist =
            AssistConfig { updates: Some(updates), nightly: Some(nightly), ..AssistConfig::with_sets(&sets) };
        let http = args.http.or(config.console_http);
        let (feed, board) = Console::board(alerts.plan, 1.0);
        let options = LiveOptions {
            db: config.db.clone(),
            gateway: GatewayConfig::new(
                config.url.clone(),
                config.token.as_ref().map(|t| t.expose().to_string()),
            ),
            live: LiveConfig {
                plan: alerts.plan,
                time: TimeSource::wall(),
                assist,
                board: http.map(|_| feed),
                snapshots: config.snapshots,
                ..LiveConfig::new(rules)
            },
        };
        info!(db = %config.db.display(), "opening the database: rebuilding the clock from its events");
        let mut live = Live::start(options, Box::new(service.submitter()))?;
        let url = crate::gateway::redact_url(&config.url);
        info!(url = %url, db = %config.db.display(), "kefu running; Ctrl-C to stop");
        let console = match http {
            None => None,
            Some(addr) => {
                let c = ConsoleConfig {
                    addr,
                    db: config.db.clone(),
                    secure_cookies: config.secure_cookies,
                    rules: rules_dir.clone(),
                    replies: replies_dir.clone(),
                    reload: Some(nudge.clone()),
                };
                match Console::start(&c, board).await {
                    Ok(console) => {
                        info!(url = %console.url(), "console serving (users: kefu users add)");
                        Some(console)
                    }
                    // The bot matters more than its screen: it keeps running without one.
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "console not served");
                        None
                    }
                }
            }
        };
        let mut status = interval(Duration::from_secs(60));
        status.tick().await;
        loop {
            tokio::select! {
                // First: a signal that came during the rebuild stops kefu before anything else.
                biased;
                () = signals.recv() => break,
                () = live.finished() => break,
                _ = status.tick() => info!(status = %live.counters.status_line(), "status"),
            }
        }
        info!("stopping: finishing the batch, acking, flushing alerts");
        if let Some(c) = console {
            c.stop();
        }
        let stopped = live.stop().await;
        let report = service.shutdown(Duration::from_secs(5)).await;
        info!(pending_alerts = report.pending, "stopped");
        Ok(stopped?)
    })
}

/// `kefu simulate --listen ADDR`: serves traffic until Ctrl-C.
pub fn simulate_listen(addr: SocketAddr, args: &ListenArgs, sim: &SimConfig) -> Result<(), LiveCliError> {
    if !(args.speed.is_finite() && args.speed >= 0.0) {
        return Err(LiveCliError::Usage(format!("--speed {}: expected 0 (no pacing) or more", args.speed)));
    }
    init_logging("warn")?;
    let mut events = match &args.file {
        Some(f) => read_jsonl(f)?,
        None => generate(sim),
    };
    if !args.keep_time {
        rebase(&mut events, now_ms());
    }
    let config = ServerConfig {
        token: args.token.clone(),
        speed: args.speed,
        drop_every: args.drop_every,
        duplicate_every: args.duplicate_every,
        garbage_every: args.garbage_every,
    };
    runtime()?.block_on(async move {
        let items = events.into_iter().map(Item::Event).collect();
        let mut srv =
            SimServer::start(addr, items, config).await.map_err(io(format!("cannot listen on {addr}")))?;
        say!(
            "simulator on {} — {} frames at speed {}; Ctrl-C to stop",
            srv.url(),
            srv.last_seq(),
            args.speed
        );
        shutdown_signal().await;
        let s = srv.stats();
        say!(
            "acked {:?} of {} · {} connections · {} drops · {} replies received",
            s.acked,
            srv.last_seq(),
            s.connections,
            s.drops,
            s.sends.len()
        );
        srv.stop().await;
        Ok(())
    })
}

fn read_jsonl(file: &Path) -> Result<Vec<Event>, LiveCliError> {
    let text = std::fs::read_to_string(file).map_err(io(format!("cannot read {}", file.display())))?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let e = crate::event::parse(line).map_err(|e| DataError::at(file, Some(i + 1), e.to_string()))?;
        events.push(e);
    }
    Ok(events)
}

/// A temporary folder removed on drop (the demo's database lives there).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, LiveCliError> {
        let path = std::env::temp_dir().join(format!("kefu-demo-{}-{}", std::process::id(), now_ms()));
        std::fs::create_dir_all(&path).map_err(io(format!("cannot create {}", path.display())))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `kefu demo`: the simulator and kefu together on loopback with a temporary database;
/// live alerts and counts in the terminal, then the per-agent report.
pub fn demo(args: DemoArgs) -> Result<(), LiveCliError> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(LiveCliError::Usage(format!("--speed {}: expected a number above 0", args.speed)));
    }
    if args.agents == 0 || args.duration == 0 {
        return Err(LiveCliError::Usage("--agents and --duration must be above 0".into()));
    }
    init_logging("warn")?;
    let rules = response_time::load(args.rules.as_deref())?;
    let sets = Sets::load(args.rules.as_deref(), None).map_err(LiveCliError::Files)?;
    let dir = TempDir::new()?;
    let db = dir.0.join("kefu-demo.db");
    // Enough traffic for the whole run: about 20 conversations (≈ 150 events) per agent-hour.
    let sim_hours = args.duration as f64 * args.speed / 3600.0;
    let events = ((sim_hours * 200.0 * args.agents as f64) as usize).clamp(2_000, 2_000_000);
    // More violations than a real shop (1 %), so a one-minute demo shows the phrase guard.
    let sim =
        SimConfig { seed: args.seed, events, agents: args.agents, violations: 0.05, ..SimConfig::default() };
    let mut traffic = generate(&sim);
    rebase(&mut traffic, now_ms());
    let first_ts = traffic.first().map_or_else(now_ms, |e| e.ts);
    runtime()?.block_on(async {
        let items = traffic.into_iter().map(Item::Event).collect();
        let config = ServerConfig { speed: args.speed, ..ServerConfig::default() };
        let mut srv = SimServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), items, config)
            .await
            .map_err(io("cannot listen on 127.0.0.1"))?;
        // kefu's clock runs at the simulator's speed, so deadlines fire on simulated time.
        let time = TimeSource::scaled(first_ts, srv.origin(), args.speed);
        let (seam, mut alerts) = ChannelSeam::new();
        let (feed, board) = Console::board(Plan::default(), args.speed);
        let options = LiveOptions {
            db: db.clone(),
            gateway: GatewayConfig::new(srv.url(), None),
            live: LiveConfig {
                time,
                assist: AssistConfig::with_sets(&sets),
                board: Some(feed),
                ..LiveConfig::new(rules.clone())
            },
        };
        let mut live = Live::start(options, Box::new(seam))?;
        let (console, login) = demo_console(args.http, &db, board).await?;
        say!(
            "kefu demo: a simulated Tmall shop, {} agents, {}× real time ({:.0} s of shop time a second), {} s — Ctrl-C stops early",
            args.agents, args.speed, args.speed, args.duration
        );
        say!("console {} — sign in as `demo` with password {login} (this run only)", console.url());
        say!("simulator {} → kefu → alerts below (buyers masked)\n", srv.url());
        let counters = live.counters.clone();
        let status = Status::new(&counters, time);
        let end = Instant::now() + Duration::from_secs(args.duration);
        let mut tick = interval(Duration::from_millis(250));
        let mut signals = StopSignals::install();
        loop {
            tokio::select! {
                () = sleep_until(end) => break,
                () = signals.recv() => break,
                () = live.finished() => break,
                Some((notice, _)) = alerts.recv() => status.above(&terminal_line(Message::One(&notice))),
                _ = tick.tick() => status.draw(),
            }
        }
        status.done();
        console.stop();
        live.stop().await?;
        srv.stop().await;
        let store = Store::open(&db)?;
        let report = report_from_db(&store, rules)?;
        let g = LiveCounters::get;
        say!(
            "\n{} events stored, {} alerts sent ({} breaches); per agent (open conversations closed at their idle time):\n",
            g(&counters.events),
            g(&counters.alerts_sent),
            g(&counters.breaches)
        );
        say!("{}", report.to_table().trim_end());
        say!(
            "\nrobot: {} replies to buyers, {} suggestions/transfers, {} rule hits, {} questions without a rule",
            g(&counters.robot_sent),
            g(&counters.robot_other),
            g(&counters.robot_hits),
            g(&counters.robot_misses)
        );
        say!("{}", guard_summary(&store)?);
        Ok(())
    })
}

/// The demo's console: on `--http`, else 127.0.0.1:8080, else any free port; with a
/// one-time owner login `demo` (the database is temporary).
async fn demo_console(
    http: Option<SocketAddr>,
    db: &Path,
    board: crate::console::BoardView,
) -> Result<(Console, String), LiveCliError> {
    use crate::console::users::{self, Role, User};
    let password = crate::console::auth::random_token()[..16].to_string();
    let store = Store::open(db)?;
    let user = User { name: "demo".into(), role: Role::Owner, agent: None, shops: vec![] };
    users::add(store.conn(), &user, &password, now_ms()).map_err(LiveCliError::Users)?;
    drop(store);
    let default: SocketAddr = config::DEFAULT_HTTP.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
    let config = ConsoleConfig {
        addr: http.unwrap_or(default),
        db: db.to_path_buf(),
        secure_cookies: false,
        rules: None,
        replies: None,
        reload: None,
    };
    let listener = match Console::bind(config.addr).await {
        Ok(l) => l,
        Err(ConsoleError::Bind { .. }) if http.is_none() => {
            Console::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?
        }
        Err(e) => return Err(e.into()),
    };
    Ok((Console::serve(listener, &config, board)?, password))
}

/// Phrase-guard findings by category and severity, for the demo's final report.
fn guard_summary(store: &Store) -> Result<String, LiveCliError> {
    let mut stmt = store
        .conn()
        .prepare(
            "SELECT category, severity, COUNT(*) FROM flags GROUP BY category, severity \
             ORDER BY COUNT(*) DESC, category",
        )
        .map_err(StoreError::from)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(StoreError::from)?;
    if rows.is_empty() {
        return Ok("phrase guard: no findings".into());
    }
    let total: i64 = rows.iter().map(|r| r.2).sum();
    let parts: Vec<String> = rows.iter().map(|(c, s, n)| format!("{c} ({s}) {n}")).collect();
    Ok(format!("phrase guard: {total} findings — {}", parts.join(" · ")))
}

/// The demo's line of live counts: redrawn in place on a terminal, else every 5 s.
struct Status<'a> {
    counters: &'a LiveCounters,
    time: TimeSource,
    tty: bool,
    last: std::cell::Cell<Option<Instant>>,
}

impl<'a> Status<'a> {
    fn new(counters: &'a LiveCounters, time: TimeSource) -> Self {
        Self { counters, time, tty: std::io::stderr().is_terminal(), last: std::cell::Cell::new(None) }
    }

    fn line(&self) -> String {
        format!(
            "[shop time {}] events {} · open conversations {} · waiting buyers {} · breaches {} · robot replies {} · guard flags {}",
            display_shanghai(self.time.now_ms()),
            self.counters.events.load(Ordering::Relaxed),
            self.counters.open.load(Ordering::Relaxed),
            self.counters.waiting.load(Ordering::Relaxed),
            self.counters.breaches.load(Ordering::Relaxed),
            self.counters.robot_sent.load(Ordering::Relaxed),
            self.counters.flags.load(Ordering::Relaxed)
        )
    }

    fn draw(&self) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}", self.line());
        } else if self.last.get().is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            self.last.set(Some(Instant::now()));
            let _ = writeln!(err, "{}", self.line());
        }
        let _ = err.flush();
    }

    /// Prints a line above the status line.
    fn above(&self, text: &str) {
        if self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
        say!("{text}");
        self.draw();
    }

    fn done(&self) {
        if self.tty {
            let _ = writeln!(std::io::stderr());
        }
        let _ = writeln!(std::io::stderr(), "{}", self.line());
    }
}

//! The `kefu` command: parses arguments and dispatches to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// glibc malloc spends a fifth of replay time consolidating freed chunks; mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kefu",
    version,
    about = "Response clock, live alerts, phrase guard, replies and KPI scoring for Taobao/Tmall customer service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the response clock over a JSONL file of events and print the report.
    Replay {
        /// Events, one JSON object per line.
        file: PathBuf,
        /// Rules folder (default: ./rules when present, else the embedded defaults).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Also store events, waits and alerts in this SQLite file.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Print the report recomputed from the events stored in a database.
    Report {
        /// The SQLite file.
        #[arg(long)]
        db: PathBuf,
        /// Rules folder (default: ./rules when present, else the embedded defaults).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Store a snapshot of the engine's and the robot's state as `kefu run` would, or with
    /// --verify check that the latest one plus the events after it equals a rebuild from every event.
    Snapshot {
        /// The SQLite file.
        #[arg(long)]
        db: PathBuf,
        /// Rules folder (default: ./rules when present, else the embedded defaults).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Replies folder, for the robot (default: ./replies when present, else the embedded defaults).
        #[arg(long)]
        replies: Option<PathBuf>,
        /// Compare instead of storing; exit status 1 when they differ.
        #[arg(long)]
        verify: bool,
    },
    /// Realistic simulated shop traffic: written as JSONL (--out) or served over the websocket protocol (--listen).
    Simulate {
        /// Output file (or serve the traffic with --listen).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        serve: kefu::live::cli::ListenArgs,
        /// Number of events.
        #[arg(long, default_value_t = 5_000)]
        events: usize,
        /// Number of agents.
        #[arg(long, default_value_t = 6)]
        agents: usize,
        /// Random seed (same seed, same traffic).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Shop id.
        #[arg(long, default_value = "tmall-demo")]
        shop: String,
        /// First day, YYYY-MM-DD (traffic starts 08:30 Asia/Shanghai).
        #[arg(long, default_value = "2026-11-11", value_parser = parse_day)]
        date: chrono::NaiveDate,
        /// Share of agent messages that break a phrase-guard rule, 0 to 1.
        #[arg(long, default_value_t = 0.01)]
        violations: f64,
    },
    /// Connect to the chat platform and run live: response clock, alerts (see kefu.toml.example).
    Run(kefu::live::cli::RunArgs),
    /// Publishes events (a JSONL file, or simulated shops) to the cluster's event stream.
    Publish(kefu::cluster::cli::PublishArgs),
    /// Builds one database of every shop's figures from the cluster's results log.
    Collect(kefu::cluster::cli::CollectArgs),
    /// Simulator and kefu together on loopback: live alerts, then the per-agent report.
    Demo(kefu::live::cli::DemoArgs),
    /// Validate every file in the rules and replies folders.
    Check {
        /// Rules folder (default: ./rules when present, else the embedded defaults).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Replies folder (default: ./replies when present, else the embedded defaults).
        #[arg(long)]
        replies: Option<PathBuf>,
    },
    /// Quick replies (快捷短语): Qianniu CSV import/export, lookup, unanswered questions.
    #[command(subcommand)]
    Replies(kefu::replies::cli::Command),
    /// Compute daily metrics and month-to-date scores (--date, --month or --from/--to) and write reports.
    Score(kefu::scoring::cli::ScoreArgs),
    /// Enter a supervisor-scored indicator value for an agent and month.
    ScoreInput(kefu::scoring::cli::InputArgs),
    /// Order data: import a shop's order export.
    #[command(subcommand)]
    Orders(kefu::scoring::cli::OrdersCmd),
    /// Buyers' ratings of agents (千牛 客服评价): import an export.
    #[command(subcommand)]
    Ratings(kefu::scoring::cli::RatingsCmd),
    /// The 日常考核 points ledger: add, import, list, dispute, resolve.
    #[command(subcommand)]
    Ledger(kefu::scoring::cli::LedgerCmd),
    /// Console logins: add, list, passwd, remove.
    #[command(subcommand)]
    Users(kefu::console::cli::UsersCmd),
    /// Show what a text would trigger in the phrase guard, and why.
    CheckText {
        /// The message text.
        text: String,
        /// Rules folder (default: ./rules when present, else the embedded defaults).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the phrase guard's stored findings (personal data masked).
    Flags {
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Only this Asia/Shanghai day (YYYY-MM-DD).
        #[arg(long)]
        date: Option<String>,
        /// Only this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // The reader went away (`kefu … | head`): what it wanted is printed; end quietly.
        Err(e) if kefu::textio::out::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kefu: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The folder given, else `./name` when it exists, else none (embedded defaults).
fn folder(given: Option<PathBuf>, name: &str) -> Option<PathBuf> {
    given.or_else(|| Some(PathBuf::from(name)).filter(|p| p.is_dir()))
}

fn parse_day(s: &str) -> Result<chrono::NaiveDate, String> {
    kefu::time::parse_day(s).ok_or_else(|| format!("`{s}` is not a date: expected YYYY-MM-DD"))
}

fn print(mut text: String) -> anyhow::Result<ExitCode> {
    text.push('\n');
    kefu::textio::out::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay { file, rules, db, json } => {
            kefu::cmd::replay_file(&file, folder(rules, "rules").as_deref(), db.as_deref(), json)?;
        }
        Command::Report { db, rules, json } => {
            kefu::cmd::report_db(&db, folder(rules, "rules").as_deref(), json)?;
        }
        Command::Snapshot { db, rules, replies, verify } => {
            let (text, same) = kefu::cmd::snapshot(
                &db,
                folder(rules, "rules").as_deref(),
                folder(replies, "replies").as_deref(),
                verify,
            )?;
            kefu::textio::out::print(&text)?;
            if !same {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Simulate { out, serve, events, agents, seed, shop, date, violations } => {
            if !(0.0..=1.0).contains(&violations) {
                anyhow::bail!("--violations {violations}: expected a share between 0 and 1");
            }
            let start = kefu::time::shanghai_midnight(date) + 8 * 3_600_000 + 30 * 60_000;
            let config = kefu::simulate::SimConfig { seed, events, agents, shop, start, violations };
            match (serve.listen, out) {
                (Some(addr), _) => kefu::live::cli::simulate_listen(addr, &serve, &config)?,
                (None, Some(out)) => kefu::cmd::simulate(&config, &out)?,
                (None, None) => anyhow::bail!("kefu simulate: give --out FILE or --listen ADDR"),
            }
        }
        Command::Check { rules, replies } => {
            let rules = folder(rules, "rules");
            let replies = folder(replies, "replies");
            let errors = kefu::check::check_all(rules.as_deref(), replies.as_deref());
            for e in &errors {
                eprintln!("{e}");
            }
            if errors.is_empty() {
                kefu::textio::out::print("all rule and reply files are valid\n")?;
            } else {
                eprintln!("{} problem(s) found", errors.len());
                return Ok(ExitCode::from(1));
            }
        }
        Command::Run(args) => kefu::live::cli::run(args)?,
        Command::Publish(args) => return print(kefu::cluster::cli::publish(&args)?),
        Command::Collect(args) => return print(kefu::cluster::cli::collect(&args)?),
        Command::Demo(args) => kefu::live::cli::demo(args)?,
        Command::Replies(cmd) => return Ok(kefu::replies::cli::run(cmd)?),
        Command::Score(a) => return print(kefu::scoring::cli::score(a)?),
        Command::ScoreInput(a) => return print(kefu::scoring::cli::input(a)?),
        Command::Orders(c) => return print(kefu::scoring::cli::orders(c)?),
        Command::Ledger(c) => return print(kefu::scoring::cli::ledger_cmd(c)?),
        Command::Ratings(c) => return print(kefu::scoring::cli::ratings(c)?),
        Command::Users(c) => return print(kefu::console::cli::run(c)?),
        Command::CheckText { text, rules, json } => {
            let rules = folder(rules, "rules");
            kefu::textio::out::print(&kefu::guard::cli::check_text(&text, rules.as_deref(), json)?)?;
        }
        Command::Flags { db, date, agent, json } => {
            kefu::textio::out::print(&kefu::guard::cli::flags(
                &db,
                date.as_deref(),
                agent.as_deref(),
                json,
            )?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

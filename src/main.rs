//! The `kefu` command: parses arguments and dispatches to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Validate every file in the rules and replies folders.
    Check {
        /// Rules folder (default: ./rules when present, else the embedded defaults).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Replies folder (default: ./replies when present, else the embedded defaults).
        #[arg(long)]
        replies: Option<PathBuf>,
    },
    /// Compute daily metrics and month-to-date scores (--date, --month or --from/--to) and write reports.
    Score(kefu::scoring::cli::ScoreArgs),
    /// Enter a supervisor-scored indicator value for an agent and month.
    ScoreInput(kefu::scoring::cli::InputArgs),
    /// Order data: import a shop's order export.
    #[command(subcommand)]
    Orders(kefu::scoring::cli::OrdersCmd),
    /// The 日常考核 points ledger: add, import, list, dispute, resolve.
    #[command(subcommand)]
    Ledger(kefu::scoring::cli::LedgerCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
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

fn print(text: String) -> anyhow::Result<ExitCode> {
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { rules, replies } => {
            let rules = folder(rules, "rules");
            let replies = folder(replies, "replies");
            let errors = kefu::check::check_all(rules.as_deref(), replies.as_deref());
            for e in &errors {
                eprintln!("{e}");
            }
            if errors.is_empty() {
                println!("all rule and reply files are valid");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} problem(s) found", errors.len());
                Ok(ExitCode::from(1))
            }
        }
        Command::Score(a) => print(kefu::scoring::cli::score(a)?),
        Command::ScoreInput(a) => print(kefu::scoring::cli::input(a)?),
        Command::Orders(c) => print(kefu::scoring::cli::orders(c)?),
        Command::Ledger(c) => print(kefu::scoring::cli::ledger_cmd(c)?),
    }
}

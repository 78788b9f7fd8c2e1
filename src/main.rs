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
        Command::CheckText { text, rules, json } => {
            let rules = folder(rules, "rules");
            print!("{}", kefu::guard::cli::check_text(&text, rules.as_deref(), json)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Flags { db, date, agent, json } => {
            print!("{}", kefu::guard::cli::flags(&db, date.as_deref(), agent.as_deref(), json)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

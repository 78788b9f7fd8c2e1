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
    /// Quick replies (快捷短语): Qianniu CSV import/export, lookup, unanswered questions.
    #[command(subcommand)]
    Replies(kefu::replies::cli::Command),
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
        Command::Replies(cmd) => Ok(kefu::replies::cli::run(cmd)?),
    }
}

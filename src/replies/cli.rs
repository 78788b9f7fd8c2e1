//! `kefu replies …`: import, export, find, hits and misses. Parsing lives here (clap derive) so
//! `main.rs` only dispatches.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use thiserror::Error;

use super::qianniu_csv::{self, Encoding};
use super::quick::{self, QuickBook};
use crate::rules::DataError;
use crate::store::{Store, StoreError};

/// `kefu replies` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import a Qianniu quick-phrase CSV (GBK or UTF-8) into replies/quick.toml, replacing
    /// the team set (or one agent's personal set with --agent). A bad file imports nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Replies folder to write into (default ./replies, created if absent).
        #[arg(long)]
        replies: Option<PathBuf>,
        /// Import as this agent's personal phrases instead of the team set.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Export the team set (or an agent's personal set) as a Qianniu CSV.
    Export {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// gbk (default, what Qianniu reads) or utf-8.
        #[arg(long, default_value = "gbk")]
        encoding: String,
        /// Replies folder (default ./replies when present, else the embedded defaults).
        #[arg(long)]
        replies: Option<PathBuf>,
        /// Export this agent's personal set instead of the team set.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Look up quick phrases by code, code prefix or words, best first.
    Find {
        /// What to look for, e.g. `fh` or `发货`.
        query: String,
        /// Show what this agent sees (team + personal); default: every phrase.
        #[arg(long)]
        agent: Option<String>,
        /// Most results.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Replies folder (default ./replies when present, else the embedded defaults).
        #[arg(long)]
        replies: Option<PathBuf>,
    },
    /// How often each auto-answer rule answered and each quick phrase was sent, for one
    /// Shanghai day, most used first.
    Hits {
        /// Day, YYYY-MM-DD (Asia/Shanghai).
        #[arg(long)]
        date: String,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
    },
    /// Buyer questions the robot answered that matched no rule, for one Shanghai day.
    Misses {
        /// Day, YYYY-MM-DD (Asia/Shanghai).
        #[arg(long)]
        date: String,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Group similar questions and count them, most asked first.
        #[arg(long)]
        grouped: bool,
        /// Replies folder whose examples weigh the similarity (default ./replies when
        /// present, else the embedded defaults).
        #[arg(long)]
        replies: Option<PathBuf>,
    },
    /// The robot's figures for one Shanghai day, per shop: answered, 转人工, resolved, 催付.
    Figures {
        /// Day, YYYY-MM-DD (Asia/Shanghai).
        #[arg(long)]
        date: String,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Replies folder (for `resolved_after_min`; default ./replies when present, else
        /// the embedded defaults).
        #[arg(long)]
        replies: Option<PathBuf>,
    },
}

/// Why a `kefu replies` command failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// One or more located problems in a file.
    #[error("{}", join_errors(.0))]
    Data(Vec<DataError>),
    /// Reading or writing a file failed.
    #[error("file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the result to stdout failed (a closed pipe ends `kefu` quietly in `main`).
    #[error("writing to standard output")]
    Stdout(#[source] std::io::Error),
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
}

fn join_errors(errors: &[DataError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// Runs one subcommand, printing its result.
pub fn run(cmd: Command) -> Result<ExitCode, CliError> {
    use crate::textio::escape_for_terminal as t;
    let mut stdout = String::new();
    let out = &mut stdout;
    match cmd {
        Command::Import { file, replies, agent } => {
            let dir = replies.unwrap_or_else(|| PathBuf::from("replies"));
            let report = import(&file, &dir, agent.as_deref())?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            let _ = writeln!(
                out,
                "imported {} phrase(s) ({}) into {} as {}",
                report.imported,
                report.encoding.name(),
                dir.join(quick::FILE).display(),
                agent.map_or("the team set".to_string(), |a| format!("{a}'s personal set")),
            );
        }
        Command::Export { out: file, encoding, replies, agent } => {
            let enc = Encoding::parse(&encoding)
                .ok_or_else(|| CliError::Usage(format!("--encoding `{encoding}`: expected gbk or utf-8")))?;
            let (n, warnings) = export(&file, enc, existing(replies).as_deref(), agent.as_deref())?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            let _ = writeln!(out, "exported {n} phrase(s) to {} ({})", file.display(), enc.name());
        }
        Command::Find { query, agent, limit, replies } => {
            let book = quick::load(existing(replies).as_deref()).map_err(|e| CliError::Data(vec![e]))?;
            let hits = book.find(agent.as_deref(), &query, limit);
            if hits.is_empty() {
                let _ = writeln!(out, "no phrase matches `{}`", t(&query));
            }
            for h in hits {
                let scope = h.phrase.agent.as_deref().unwrap_or("团队");
                let text = h.phrase.text.replace('\n', " ⏎ ");
                let (code, group) = (t(&h.phrase.code), t(&h.phrase.group));
                let _ = writeln!(out, "{code:<6} [{group}] {} ({:?}, {})", t(&text), h.rank, t(scope));
            }
        }
        Command::Hits { date, db } => {
            let day = parse_date(&date)?;
            let store = Store::open(&db)?;
            for (kind, title) in
                [("rule", "auto-answer rules"), ("phrase", "quick phrases (agent/code, team: /code)")]
            {
                let rows = super::stats::hits(&store, day, kind)?;
                let none = if rows.is_empty() { " none" } else { "" };
                let _ = writeln!(out, "{title} on {day}:{none}");
                for (shop, key, hits) in rows {
                    let _ = writeln!(out, "  {hits:>6}  {}  {}", t(&shop), t(&key));
                }
            }
        }
        Command::Misses { date, db, grouped: true, replies } => {
            let day = parse_date(&date)?;
            let store = Store::open(&db)?;
            let auto =
                super::auto::load(existing(replies).as_deref()).map_err(|e| CliError::Data(vec![e]))?;
            let groups = super::stats::grouped_misses(store.conn(), &auto, day)?;
            if groups.is_empty() {
                println!("no unanswered questions on {day}");
            }
            let show = |t: &str| {
                crate::textio::escape::escape_for_terminal(&super::stats::mask_phones_in_text(t)).into_owned()
            };
            for g in groups {
                let others: Vec<String> = g.others.iter().map(|o| show(o)).collect();
                let also = if others.is_empty() {
                    String::new()
                } else {
                    format!("  (also: {})", others.join(" / "))
                };
                println!("{:>5}  {}{also}", g.count, show(&g.question));
            }
        }
        Command::Figures { date, db, replies } => {
            let day = parse_date(&date)?;
            let settings =
                super::settings::load(existing(replies).as_deref()).map_err(|e| CliError::Data(vec![e]))?;
            let store = Store::open(&db)?;
            let rows = super::stats::figures(&store, day, settings.resolved_after_ms())?;
            if rows.is_empty() {
                println!("no robot figures on {day}");
            }
            let pct = |n: i64, d: i64| {
                if d == 0 { "-".to_string() } else { format!("{:.1}%", n as f64 * 100.0 / d as f64) }
            };
            for f in rows {
                println!(
                    "{}  answered {}  转人工 {} ({})  resolved {} ({})  催付 {}",
                    crate::textio::escape::escape_for_terminal(&f.shop),
                    f.answered,
                    f.handoffs,
                    pct(f.handoffs, f.answered),
                    f.resolved,
                    pct(f.resolved, f.answered),
                    f.reminders
                );
            }
        }
        Command::Misses { date, db, .. } => {
            let day = parse_date(&date)?;
            let store = Store::open(&db)?;
            let rows = super::stats::misses(&store, day)?;
            if rows.is_empty() {
                let _ = writeln!(out, "no unanswered questions on {day}");
            }
            for r in rows {
                let _ = writeln!(
                    out,
                    "{}  {}  {}  {}",
                    crate::time::display_shanghai(r.ts),
                    t(&r.shop),
                    t(&r.conversation),
                    t(&super::stats::mask_phones_in_text(&r.text))
                );
            }
        }
    }
    crate::textio::out::print(&stdout).map_err(CliError::Stdout)?;
    Ok(ExitCode::SUCCESS)
}

/// A `--date` argument as a day.
fn parse_date(date: &str) -> Result<chrono::NaiveDate, CliError> {
    crate::time::parse_day(date)
        .ok_or_else(|| CliError::Usage(format!("--date `{date}`: expected YYYY-MM-DD")))
}

/// The folder given, else `./replies` when it exists, else none (embedded defaults).
fn existing(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| Some(PathBuf::from("replies")).filter(|p| p.is_dir()))
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    /// Phrases now in the set.
    pub imported: usize,
    /// The file's encoding.
    pub encoding: Encoding,
    /// Duplicates and over-long codes, imported unchanged.
    pub warnings: Vec<DataError>,
}

/// Imports `file` into `dir/quick.toml`, replacing the team set or `agent`'s set. Writes
/// nothing unless the whole file is valid; the new book is written to a temporary file and
/// renamed over the old one, so a reader never sees half a file.
pub fn import(file: &Path, dir: &Path, agent: Option<&str>) -> Result<ImportReport, CliError> {
    let bytes = std::fs::read(file).map_err(|source| CliError::Io { path: file.into(), source })?;
    let imp = qianniu_csv::import(file, &bytes).map_err(CliError::Data)?;
    let target = dir.join(quick::FILE);
    // Into a folder without a book, the file becomes the book: the embedded example
    // phrases are not mixed in.
    let book = if target.exists() {
        quick::load(Some(dir)).map_err(|e| CliError::Data(vec![e]))?
    } else {
        QuickBook::default()
    };
    let imported = imp.rows.len();
    if agent.is_some_and(|a| a.trim().is_empty()) {
        return Err(CliError::Usage("--agent is empty: omit it to import the team set".into()));
    }
    let set = imp.rows.into_iter().map(|r| r.into_phrase(agent)).collect();
    // Every text was checked non-empty by the import; the book is written as the TOML
    // library serialises it, so it reads back as written (tests/replies.rs round-trips it).
    let phrases = book.phrases_with_set_replaced(agent, set);
    let text = quick::book_toml(&phrases)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", target.display())))?;
    std::fs::create_dir_all(dir).map_err(|source| CliError::Io { path: dir.into(), source })?;
    let tmp = dir.join(format!(".{}.tmp", quick::FILE));
    std::fs::write(&tmp, text).map_err(|source| CliError::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, &target).map_err(|source| CliError::Io { path: target.clone(), source })?;
    Ok(ImportReport { imported, encoding: imp.encoding, warnings: imp.warnings })
}

/// Exports the team set (or `agent`'s) to `out`; returns the count and warnings about
/// codes Qianniu will not accept.
pub fn export(
    out: &Path,
    encoding: Encoding,
    dir: Option<&Path>,
    agent: Option<&str>,
) -> Result<(usize, Vec<String>), CliError> {
    let book = quick::load(dir).map_err(|e| CliError::Data(vec![e]))?;
    let set = book.set(agent);
    let warnings = set
        .iter()
        .filter(|p| p.code.chars().count() > quick::MAX_CODE_CHARS)
        .map(|p| format!("code `{}` is longer than Qianniu's {} characters", p.code, quick::MAX_CODE_CHARS))
        .collect();
    let bytes = qianniu_csv::export(&set, encoding).map_err(CliError::Usage)?;
    std::fs::write(out, bytes).map_err(|source| CliError::Io { path: out.into(), source })?;
    Ok((set.len(), warnings))
}

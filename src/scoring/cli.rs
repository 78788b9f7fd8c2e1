//! The scoring subcommands (`kefu score`, `kefu score-input`, `kefu orders`, `kefu ledger`):
//! argument shapes and the effects they run. `main.rs` only dispatches here.

use std::path::PathBuf;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use thiserror::Error;

use super::job::{self, JobError, month_bounds};
use super::ledger::{self, LedgerError, NewEntry};
use super::orders::{self, OrdersError};
use super::sheet;
use crate::rules::DataError;
use crate::store::{Store, StoreError};
use crate::time::{now_ms, parse_day, shanghai_day};

/// Failures of a scoring command.
#[derive(Debug, Error)]
pub enum CliError {
    /// A bad argument.
    #[error("{0}")]
    Arg(String),
    /// The sheet is invalid.
    #[error("{0}")]
    Sheet(#[from] DataError),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SQLite failure.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// Job failure.
    #[error(transparent)]
    Job(#[from] JobError),
    /// Ledger failure.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Import failure.
    #[error(transparent)]
    Orders(#[from] OrdersError),
}

fn day_arg(s: &str, flag: &str) -> Result<NaiveDate, CliError> {
    parse_day(s).ok_or_else(|| CliError::Arg(format!("{flag} `{s}`: expected YYYY-MM-DD")))
}

fn rules_dir(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| Some(PathBuf::from("rules")).filter(|p| p.is_dir()))
}

/// `kefu score`: compute days and month-to-date scores by hand, and write reports.
#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Database file.
    #[arg(long)]
    pub db: PathBuf,
    /// One Shanghai day (YYYY-MM-DD).
    #[arg(long, conflicts_with_all = ["month", "from", "to"])]
    pub date: Option<String>,
    /// A whole month (YYYY-MM): every day of it up to yesterday.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub month: Option<String>,
    /// Backfill from this day …
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// … to this day (inclusive).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Rules folder (default ./rules when present, else the embedded sheet).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Reports folder.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// Do not write reports.
    #[arg(long)]
    pub no_reports: bool,
}

/// Runs `kefu score`; returns what to print.
pub fn score(a: ScoreArgs) -> Result<String, CliError> {
    let sheet = sheet::load(rules_dir(a.rules).as_deref())?;
    let (from, to) = match (&a.date, &a.month, &a.from, &a.to) {
        (Some(d), ..) => {
            let d = day_arg(d, "--date")?;
            (d, d)
        }
        (None, Some(m), ..) => {
            let (f, l) =
                month_bounds(m).ok_or_else(|| CliError::Arg(format!("--month `{m}`: expected YYYY-MM")))?;
            let yesterday = shanghai_day(now_ms()).pred_opt().unwrap_or(l);
            (f, l.min(yesterday).max(f))
        }
        (None, None, Some(f), Some(t)) => (day_arg(f, "--from")?, day_arg(t, "--to")?),
        _ => return Err(CliError::Arg("give --date D, --month YYYY-MM, or --from D --to D".into())),
    };
    let mut store = Store::open(&a.db)?;
    let out = job::score_range(&mut store, &sheet, from, to, now_ms())?;
    let mut msg = format!(
        "scored {} day(s) {from}…{to} from {} events; months {}",
        out.days.len(),
        out.events,
        out.months.join(", ")
    );
    if !a.no_reports {
        let files = super::report::write_all(store.conn(), &sheet, &a.reports, &out.days, &out.months)?;
        msg += &format!("\nwrote {} report file(s) to {}", files.len(), a.reports.display());
    }
    msg += &format!("\n{}", super::report::summary(store.conn(), &sheet, to)?);
    Ok(msg)
}

/// `kefu score-input`: a supervisor-entered indicator value (metric "input").
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// Database file.
    #[arg(long)]
    pub db: PathBuf,
    /// Agent id.
    #[arg(long)]
    pub agent: String,
    /// Month (YYYY-MM).
    #[arg(long)]
    pub month: String,
    /// Indicator key from the sheet.
    #[arg(long)]
    pub indicator: String,
    /// Value (e.g. 80, 0.9 or 90%).
    #[arg(long)]
    pub value: String,
    /// Rules folder.
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

/// Runs `kefu score-input`.
pub fn input(a: InputArgs) -> Result<String, CliError> {
    let sheet = sheet::load(rules_dir(a.rules).as_deref())?;
    if !sheet.indicators.iter().any(|i| i.key == a.indicator && i.metric == sheet::Metric::Input) {
        let keys: Vec<_> = sheet
            .indicators
            .iter()
            .filter(|i| i.metric == sheet::Metric::Input)
            .map(|i| i.key.as_str())
            .collect();
        return Err(CliError::Arg(format!(
            "--indicator `{}` is not an input indicator of the sheet (inputs: {})",
            a.indicator,
            if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
        )));
    }
    month_bounds(&a.month)
        .ok_or_else(|| CliError::Arg(format!("--month `{}`: expected YYYY-MM", a.month)))?;
    let value = sheet::parse_number(&a.value).map_err(|m| CliError::Arg(format!("--value: {m}")))?;
    let store = Store::open(&a.db)?;
    store.conn().execute(
        "INSERT INTO score_inputs VALUES (?1, ?2, ?3, ?4) ON CONFLICT(month, agent, indicator) DO UPDATE SET value = excluded.value",
        rusqlite::params![a.month, a.agent, a.indicator, value.to_string()],
    )?;
    Ok(format!(
        "{} {} {} = {value} (rerun `kefu score --month {}` to rescore)",
        a.month, a.agent, a.indicator, a.month
    ))
}

/// `kefu orders …`.
#[derive(Debug, clap::Subcommand)]
pub enum OrdersCmd {
    /// Import a shop's order export (CSV, UTF-8 or GBK) as order events.
    Import {
        /// The CSV file (columns: see docs/metrics.md, "Order import").
        file: PathBuf,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Shop for rows without a shop column.
        #[arg(long, default_value = "shop")]
        shop: String,
    },
}

/// Runs `kefu orders …`.
pub fn orders(cmd: OrdersCmd) -> Result<String, CliError> {
    match cmd {
        OrdersCmd::Import { file, db, shop } => {
            let mut store = Store::open(&db)?;
            let (n, added) = orders::import(&mut store, &file, &shop)?;
            Ok(format!("{}: {n} order event(s), {added} new", file.display()))
        }
    }
}

/// `kefu ledger …`: the 日常考核 points.
#[derive(Debug, clap::Subcommand)]
pub enum LedgerCmd {
    /// Add an entry (negative points = deduction).
    Add {
        /// Agent id.
        #[arg(long)]
        agent: String,
        /// Points, e.g. -5 or 2.
        #[arg(long, allow_hyphen_values = true)]
        points: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Day it counts on (default: today, Shanghai).
        #[arg(long)]
        date: Option<String>,
        /// Deduction class or category (a category with a rule in the sheet counts by the rule).
        #[arg(long)]
        category: Option<String>,
        /// Minutes late, for a lateness entry (the sheet may count a long one as 旷工).
        #[arg(long)]
        minutes: Option<u32>,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
    },
    /// Import entries from CSV: agent,date,points,reason[,category].
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
    },
    /// List a month's entries.
    List {
        /// Month (YYYY-MM).
        #[arg(long)]
        month: String,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
    },
    /// Dispute an entry (复核), within the sheet's appeal window.
    Dispute {
        /// Entry id.
        #[arg(long)]
        entry: i64,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Rules folder.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Resolve a dispute: the entry stands (--uphold) or is voided (--overturn).
    Resolve {
        /// Dispute id.
        #[arg(long)]
        dispute: i64,
        /// Void the entry.
        #[arg(long, conflicts_with = "uphold")]
        overturn: bool,
        /// Keep the entry.
        #[arg(long)]
        uphold: bool,
        /// Supervisor name.
        #[arg(long)]
        by: String,
        /// Note.
        #[arg(long, default_value = "")]
        note: String,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
    },
    /// List open disputes.
    Disputes {
        /// Database file.
        #[arg(long)]
        db: PathBuf,
    },
}

fn show(e: &ledger::Entry) -> String {
    format!(
        "L{:<5} {} {:<12} {:>6} {:<10} {} {}{}",
        e.id,
        e.day,
        e.agent,
        e.points.normalize(),
        e.source,
        e.category.as_deref().unwrap_or("-"),
        e.reason,
        if e.voided { " (voided)" } else { "" }
    )
}

/// Runs `kefu ledger …`.
pub fn ledger_cmd(cmd: LedgerCmd) -> Result<String, CliError> {
    match cmd {
        LedgerCmd::Add { agent, points, reason, date, category, minutes, db } => {
            let points: Decimal = points
                .parse()
                .map_err(|_| CliError::Arg(format!("--points `{points}`: expected a number, e.g. -5")))?;
            let day = match date {
                Some(d) => day_arg(&d, "--date")?,
                None => shanghai_day(now_ms()),
            };
            if agent.trim().is_empty() {
                return Err(CliError::Arg("--agent is empty".into()));
            }
            let store = Store::open(&db)?;
            let e = NewEntry {
                agent,
                day,
                points,
                source: "supervisor",
                category,
                reason,
                reference: None,
                minutes: minutes.map(i64::from),
            };
            let id = ledger::add(store.conn(), &e, now_ms())?;
            Ok(format!("L{id}: {} {} {} on {day}", e.agent, points.normalize(), e.reason))
        }
        LedgerCmd::Import { file, db } => {
            let name = file.display().to_string();
            let bytes =
                std::fs::read(&file).map_err(|e| CliError::Arg(format!("cannot read {name}: {e}")))?;
            let rows = ledger::parse_csv(&name, &orders::decode(&bytes))?;
            let mut store = Store::open(&db)?;
            let now = now_ms();
            let tx = store.conn_mut().transaction()?;
            for r in &rows {
                ledger::add(&tx, r, now)?;
            }
            tx.commit()?;
            Ok(format!("{name}: {} entr(ies) recorded", rows.len()))
        }
        LedgerCmd::List { month, db } => {
            let (f, l) = month_bounds(&month)
                .ok_or_else(|| CliError::Arg(format!("--month `{month}`: expected YYYY-MM")))?;
            let store = Store::open(&db)?;
            Ok(ledger::entries(store.conn(), f, l)?.iter().map(show).collect::<Vec<_>>().join("\n"))
        }
        LedgerCmd::Dispute { entry, reason, db, rules } => {
            let sheet = sheet::load(rules_dir(rules).as_deref())?;
            let store = Store::open(&db)?;
            let id = ledger::open_dispute(store.conn(), entry, &reason, now_ms(), sheet.appeal_window_ms)?;
            Ok(format!("D{id}: dispute of L{entry} opened"))
        }
        LedgerCmd::Resolve { dispute, overturn, uphold, by, note, db } => {
            if overturn == uphold {
                return Err(CliError::Arg("give exactly one of --overturn or --uphold".into()));
            }
            let mut store = Store::open(&db)?;
            ledger::resolve(store.conn_mut(), dispute, overturn, &by, &note, now_ms())?;
            Ok(format!("D{dispute}: {}", if overturn { "overturned, entry voided" } else { "upheld" }))
        }
        LedgerCmd::Disputes { db } => {
            let store = Store::open(&db)?;
            let open = ledger::open_disputes(store.conn())?;
            if open.is_empty() {
                return Ok("no open disputes".into());
            }
            Ok(open
                .iter()
                .map(|(d, e)| format!("D{} {} — {}", d.id, show(e), d.reason))
                .collect::<Vec<_>>()
                .join("\n"))
        }
    }
}

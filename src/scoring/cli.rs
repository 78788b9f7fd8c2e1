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
    #[error(transparent)]
    Sheet(#[from] DataError),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SQLite failure.
    #[error("database")]
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
    /// A file's bad lines, each with its file and line; nothing was recorded.
    #[error("{}; nothing was recorded", lines(.0))]
    File(Vec<DataError>),
}

fn lines(errors: &[DataError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
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
    let summary = match &a.month {
        Some(m) => super::report::month_summary(store.conn(), &sheet, m)?,
        None if from == to => super::report::summary(store.conn(), &sheet, to)?,
        None => out
            .months
            .iter()
            .map(|m| super::report::month_summary(store.conn(), &sheet, m))
            .collect::<Result<Vec<_>, _>>()?
            .join("\n"),
    };
    msg += &format!("\n{summary}");
    Ok(msg)
}

/// `kefu score-input`: a supervisor-entered indicator value (metric "input"), or a month's
/// grid of them from a CSV (`kefu score-input import FILE`).
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct InputArgs {
    /// Import a month's grid instead of one value.
    #[command(subcommand)]
    pub cmd: Option<InputCmd>,
    /// Database file.
    #[arg(long, required = true)]
    pub db: Option<PathBuf>,
    /// Agent id (on the sheet's roster, or seen in the events).
    #[arg(long, required = true)]
    pub agent: Option<String>,
    /// Month (YYYY-MM).
    #[arg(long, required = true)]
    pub month: Option<String>,
    /// Indicator key from the sheet.
    #[arg(long, required = true)]
    pub indicator: Option<String>,
    /// Value in the row's unit: percent rows take 0–100 (`90` or `90%`), points rows 0–max.
    #[arg(long, required = true, allow_hyphen_values = true)]
    pub value: Option<String>,
    /// Rules folder.
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

/// `kefu score-input import`.
#[derive(Debug, clap::Subcommand)]
pub enum InputCmd {
    /// A month's values from a CSV (UTF-8 or GBK, as Excel saves it): a header `agent`
    /// (or 客服) then one column per input indicator (its key or its name), one row per
    /// agent; an empty cell is not entered. All rows are checked before any is stored.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Month (YYYY-MM).
        #[arg(long)]
        month: String,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Rules folder.
        #[arg(long)]
        rules: Option<PathBuf>,
    },
}

/// Runs `kefu score-input` (one value, or `import`).
pub fn input(a: InputArgs) -> Result<String, CliError> {
    if let Some(InputCmd::Import { file, month, db, rules }) = a.cmd {
        return import_inputs(&file, &month, &db, rules);
    }
    let need = |v: Option<String>, flag: &str| v.ok_or_else(|| CliError::Arg(format!("{flag} is required")));
    let (agent, month) = (need(a.agent, "--agent")?, need(a.month, "--month")?);
    let (key, text) = (need(a.indicator, "--indicator")?, need(a.value, "--value")?);
    let db = a.db.ok_or_else(|| CliError::Arg("--db is required".into()))?;
    let sheet = sheet::load(rules_dir(a.rules).as_deref())?;
    let ind = input_indicator(&sheet, &key).map_err(|m| CliError::Arg(format!("--indicator {m}")))?;
    let value = ind
        .input
        .as_ref()
        .map(|i| i.accept(&text))
        .transpose()
        .map_err(|m| CliError::Arg(format!("--value {m} (indicator `{key}`)")))?
        .unwrap_or_default();
    month_bounds(&month).ok_or_else(|| CliError::Arg(format!("--month `{month}`: expected YYYY-MM")))?;
    let store = Store::open(&db)?;
    if let Some(m) = unknown_agents(store.conn(), &sheet, &[agent.as_str()])?.first() {
        return Err(CliError::Arg(format!("--agent {m}")));
    }
    store.conn().execute(
        "INSERT INTO score_inputs VALUES (?1, ?2, ?3, ?4) ON CONFLICT(month, agent, indicator) DO UPDATE SET value = excluded.value",
        rusqlite::params![month, agent, key, value.normalize().to_string()],
    )?;
    Ok(format!("{month} {agent} {key} = {text} (rerun `kefu score --month {month}` to rescore)"))
}

/// The sheet's input row `key`, or why not.
pub fn input_indicator<'a>(sheet: &'a sheet::Sheet, key: &str) -> Result<&'a sheet::Indicator, String> {
    let inputs: Vec<&sheet::Indicator> =
        sheet.indicators.iter().filter(|i| i.metric == sheet::Metric::Input).collect();
    inputs.iter().find(|i| i.key == key || i.name == key).copied().ok_or_else(|| {
        let keys: Vec<_> = inputs.iter().map(|i| format!("{} ({})", i.key, i.name)).collect();
        format!(
            "`{key}` is not an input indicator of the sheet (inputs: {})",
            if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
        )
    })
}

/// Of `agents`, those the shop does not have, each with the reason: not on the sheet's
/// roster, or (without a roster) never seen in the events, metrics or ledger.
pub fn unknown_agents(
    conn: &rusqlite::Connection,
    sheet: &sheet::Sheet,
    agents: &[&str],
) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    for a in agents {
        if sheet.has_roster() {
            if !sheet.agents.iter().any(|r| r.id == *a) {
                out.push(format!(
                    "`{}` is not on the sheet's roster ([[agent]] in scoring.toml)",
                    crate::textio::escape_for_terminal(a)
                ));
            }
            continue;
        }
        let known: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM daily_metrics WHERE agent = ?1)
                 OR EXISTS (SELECT 1 FROM ledger WHERE agent = ?1)
                 OR EXISTS (SELECT 1 FROM events WHERE agent = ?1)",
            [a],
            |r| r.get(0),
        )?;
        if !known {
            out.push(format!(
                "`{}` is not an agent of this shop: never seen in the events (list agents as [[agent]] in scoring.toml to enter values before they work)",
                crate::textio::escape_for_terminal(a)
            ));
        }
    }
    Ok(out)
}

/// `kefu score-input import FILE --month M`: all rows checked, then stored in one transaction.
fn import_inputs(
    file: &std::path::Path,
    month: &str,
    db: &std::path::Path,
    rules: Option<PathBuf>,
) -> Result<String, CliError> {
    let sheet = sheet::load(rules_dir(rules).as_deref())?;
    month_bounds(month).ok_or_else(|| CliError::Arg(format!("--month `{month}`: expected YYYY-MM")))?;
    let bytes = std::fs::read(file)
        .map_err(|e| CliError::File(vec![DataError::at(file, None, format!("cannot read: {e}"))]))?;
    let mut store = Store::open(db)?;
    let grid = check_input_grid(store.conn(), &sheet, file, &bytes)?;
    store_inputs(store.conn_mut(), month, &grid.values)?;
    Ok(format!(
        "{}: {} value(s) for {} agent(s) recorded for {month} (rerun `kefu score --month {month}` to rescore)",
        file.display(),
        grid.values.len(),
        grid.agents
    ))
}

/// A checked grid of supervisor-entered values: `(agent, indicator key, stored value)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InputGrid {
    /// Every non-empty cell, as stored (a percent row's value as a ratio).
    pub values: Vec<(String, String, Decimal)>,
    /// Agents (rows) in the file.
    pub agents: usize,
}

/// Checks a month's grid CSV (UTF-8 or GBK, as Excel saves it) against the sheet's input
/// indicators: a header `agent` (or 客服) then one column per input indicator (its key or
/// its name), one row per agent; an empty cell is not entered. Every row is checked; any
/// bad line makes the whole file refused, each bad line named with its column. The one
/// path for `kefu score-input import` and the console's upload.
pub fn check_input_grid(
    conn: &rusqlite::Connection,
    sheet: &sheet::Sheet,
    file: &std::path::Path,
    bytes: &[u8],
) -> Result<InputGrid, CliError> {
    use crate::textio::csv::{Column, Others, read};
    let inputs: Vec<&sheet::Indicator> =
        sheet.indicators.iter().filter(|i| i.metric == sheet::Metric::Input).collect();
    if inputs.is_empty() {
        return Err(CliError::Arg(format!("the sheet `{}` has no input indicators", sheet.name)));
    }
    // The grid's columns come from the sheet; the names live as long as this call.
    let names: Vec<(String, [&str; 1])> = inputs.iter().map(|i| (i.key.clone(), [i.name.as_str()])).collect();
    let mut columns = vec![Column::required("agent", &["客服", "客服名", "旺旺", "子账号"])];
    for (key, alias) in &names {
        columns.push(Column::optional(key, alias));
    }
    let table = read(file, bytes, &columns, Others::Refuse).map_err(CliError::File)?;
    if !table.present.iter().skip(1).any(|p| *p) {
        return Err(CliError::File(vec![DataError::at(
            file,
            Some(1),
            format!(
                "no indicator column: expected some of {}",
                inputs.iter().map(|i| i.key.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )]));
    }
    let mut errors = Vec::new();
    let mut values = Vec::new();
    let mut agents_seen: Vec<(String, usize)> = Vec::new();
    for row in &table.rows {
        let agent = row.get(0).trim();
        if agent.is_empty() {
            errors.push(DataError::at(file, Some(row.line), "agent is empty"));
            continue;
        }
        if let Some((_, first)) = agents_seen.iter().find(|(a, _)| a == agent) {
            errors.push(DataError::at(
                file,
                Some(row.line),
                format!(
                    "agent `{}` already has a row (line {first})",
                    crate::textio::escape_for_terminal(agent)
                ),
            ));
            continue;
        }
        agents_seen.push((agent.to_string(), row.line));
        if let Some(m) = unknown_agents(conn, sheet, &[agent])?.first() {
            errors.push(DataError::at(file, Some(row.line), m.clone()));
            continue;
        }
        for (c, ind) in inputs.iter().enumerate() {
            let cell = row.get(c + 1).trim();
            if cell.is_empty() {
                continue;
            }
            match ind.input.as_ref().map(|i| i.accept(cell)) {
                Some(Ok(v)) => values.push((agent.to_string(), ind.key.clone(), v)),
                Some(Err(m)) => errors.push(DataError::at(
                    file,
                    Some(row.line),
                    format!(
                        "{} ({}): {m}",
                        ind.key,
                        ind.input.as_ref().map(|i| i.describe()).unwrap_or_default()
                    ),
                )),
                None => {}
            }
        }
    }
    if !errors.is_empty() {
        return Err(CliError::File(errors));
    }
    Ok(InputGrid { values, agents: agents_seen.len() })
}

/// Stores checked values for `month` in one transaction (a value entered again replaces it).
pub fn store_inputs(
    conn: &mut rusqlite::Connection,
    month: &str,
    values: &[(String, String, Decimal)],
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for (agent, key, v) in values {
        tx.execute(
            "INSERT INTO score_inputs VALUES (?1, ?2, ?3, ?4) ON CONFLICT(month, agent, indicator) DO UPDATE SET value = excluded.value",
            rusqlite::params![month, agent, key, v.normalize().to_string()],
        )?;
    }
    tx.commit()
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

/// `kefu ratings …`.
#[derive(Debug, clap::Subcommand)]
pub enum RatingsCmd {
    /// Import buyers' ratings of agents (千牛 客服评价 export, CSV, UTF-8 or GBK) as
    /// evaluation events (columns: see `kefu::scoring::ratings`).
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Database file.
        #[arg(long)]
        db: PathBuf,
        /// Shop for rows without a shop column.
        #[arg(long, default_value = "shop")]
        shop: String,
    },
}

/// Runs `kefu ratings …`.
pub fn ratings(cmd: RatingsCmd) -> Result<String, CliError> {
    match cmd {
        RatingsCmd::Import { file, db, shop } => {
            let mut store = Store::open(&db)?;
            let (n, added) = super::ratings::import(&mut store, &file, &shop)?;
            Ok(format!("{}: {n} rating(s), {added} new (rerun `kefu score` for their days)", file.display()))
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
            let rows = ledger::parse_csv(&file, &bytes)?;
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

//! The score-input grid (考核录入): a month of agents × the sheet's supervisor-scored
//! indicators (`metric = "input"`), missing cells marked, cells edited in place or a whole
//! grid uploaded as CSV. Checking and storing are the scoring module's own
//! (`scoring::cli::check_input_grid`, `store_inputs`, `Input::accept`): one code path
//! with `kefu score-input`.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{Connection, params};
use rust_decimal::Decimal;

use crate::scoring::sheet::{Indicator, Metric, Sheet, Unit};

/// One supervisor-scored indicator, as the grid heads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Indicator key.
    pub key: String,
    /// Its name on the sheet.
    pub name: String,
    /// What the cell takes (`percent 0–100`, `points 0–20`).
    pub takes: String,
    /// A percent row (stored as a ratio, shown as a percentage).
    pub percent: bool,
    /// The value used when none is entered (none: a missing cell leaves the score unfinished).
    pub default: Option<String>,
}

/// One agent's row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// Agent id.
    pub agent: String,
    /// The entered value per column, as people type it (none: missing).
    pub cells: Vec<Option<String>>,
    /// The month's score as last computed (none: not scored).
    pub score: Option<String>,
}

/// The grid of a month.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grid {
    /// The sheet's input indicators.
    pub columns: Vec<Column>,
    /// The roster's agents (or, without one, those who worked that month, have a value or a
    /// 日常考核 entry).
    pub rows: Vec<Row>,
}

fn inputs(sheet: &Sheet) -> Vec<&Indicator> {
    sheet.indicators.iter().filter(|i| i.metric == Metric::Input).collect()
}

fn is_percent(i: &Indicator) -> bool {
    matches!(i.input.as_ref().map(|x| x.unit), Some(Unit::Percent))
}

/// A stored value as people type it (a percent row's ratio 0.9 shows as 90).
pub fn shown(value: Decimal, percent: bool) -> String {
    let v = if percent { value * Decimal::ONE_HUNDRED } else { value };
    v.normalize().to_string()
}

/// Reads a month's grid.
pub fn read(conn: &Connection, sheet: &Sheet, month: &str, from: &str, to: &str) -> rusqlite::Result<Grid> {
    let inds = inputs(sheet);
    let columns = inds
        .iter()
        .map(|i| Column {
            key: i.key.clone(),
            name: i.name.clone(),
            takes: i.input.as_ref().map(|x| x.describe()).unwrap_or_default(),
            percent: is_percent(i),
            default: i.input.as_ref().and_then(|x| x.default).map(|d| shown(d, is_percent(i))),
        })
        .collect::<Vec<_>>();
    let mut values: HashMap<(String, String), Decimal> = HashMap::new();
    let mut stmt =
        conn.prepare_cached("SELECT agent, indicator, value FROM score_inputs WHERE month = ?1")?;
    let mut rows = stmt.query([month])?;
    while let Some(r) = rows.next()? {
        let v: String = r.get(2)?;
        values.insert((r.get(0)?, r.get(1)?), v.parse().unwrap_or_default());
    }
    let agents: BTreeSet<String> = if sheet.has_roster() {
        sheet.agents.iter().map(|a| a.id.clone()).collect()
    } else {
        let mut stmt = conn.prepare_cached(
            "SELECT agent FROM daily_metrics WHERE day BETWEEN ?1 AND ?2 UNION SELECT agent FROM score_inputs WHERE month = ?3 \
             UNION SELECT agent FROM ledger WHERE day BETWEEN ?1 AND ?2",
        )?;
        stmt.query_map(params![from, to, month], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    let mut stmt = conn.prepare_cached("SELECT agent, total FROM scores WHERE month = ?1")?;
    let scores: HashMap<String, String> =
        stmt.query_map([month], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    let rows = agents
        .into_iter()
        .map(|agent| Row {
            cells: columns
                .iter()
                .map(|c| values.get(&(agent.clone(), c.key.clone())).map(|v| shown(*v, c.percent)))
                .collect(),
            score: scores.get(&agent).cloned(),
            agent,
        })
        .collect();
    Ok(Grid { columns, rows })
}

/// A change the grid form asks for: set a value, or clear one that was entered.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `(agent, key, stored value)`.
    Set(String, String, Decimal),
    /// `(agent, key)`: the cell was emptied.
    Clear(String, String),
}

impl Change {
    /// The agent whose input changes.
    pub fn agent(&self) -> &str {
        match self {
            Self::Set(agent, _, _) | Self::Clear(agent, _) => agent,
        }
    }
}

/// The grid form's cells: `agent` fields list the rows in order, `key` the columns,
/// `v{row}_{col}` each cell. Every cell is checked with the sheet's own `Input::accept`;
/// the errors name the agent and the indicator. Cells equal to `grid` are left out.
pub fn changes(sheet: &Sheet, grid: &Grid, fields: &[(String, String)]) -> Result<Vec<Change>, Vec<String>> {
    let agents: Vec<&str> = fields.iter().filter(|(k, _)| k == "agent").map(|(_, v)| v.as_str()).collect();
    let keys: Vec<&str> = fields.iter().filter(|(k, _)| k == "key").map(|(_, v)| v.as_str()).collect();
    let inds = inputs(sheet);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in fields {
        let Some(rc) = name.strip_prefix('v') else { continue };
        let parsed =
            rc.split_once('_').and_then(|(r, c)| Some((r.parse::<usize>().ok()?, c.parse::<usize>().ok()?)));
        let Some((r, c)) = parsed else {
            errors.push(format!("field `{}`: not a cell of the grid", cut(name)));
            continue;
        };
        let (Some(agent), Some(key)) = (agents.get(r), keys.get(c)) else {
            errors.push(format!("field `{}`: not a cell of the grid", cut(name)));
            continue;
        };
        let Some(row) = grid.rows.iter().find(|x| x.agent == *agent) else {
            errors.push(format!("agent `{}`: not a row of this month's grid", cut(agent)));
            continue;
        };
        let Some((col, ind)) = grid
            .columns
            .iter()
            .position(|x| x.key == *key)
            .and_then(|i| inds.iter().find(|d| d.key == *key).map(|d| (i, *d)))
        else {
            errors.push(format!("indicator `{}`: not an input indicator of the sheet", cut(key)));
            continue;
        };
        let text = text.trim();
        let old = row.cells.get(col).cloned().flatten();
        match (text.is_empty(), old) {
            (true, None) => {}
            (true, Some(_)) => out.push(Change::Clear(agent.to_string(), key.to_string())),
            (false, old) => match ind.input.as_ref().map(|i| i.accept(text)) {
                Some(Ok(v)) if old.as_deref() != Some(shown(v, is_percent(ind)).as_str()) => {
                    out.push(Change::Set(agent.to_string(), key.to_string(), v))
                }
                Some(Ok(_)) | None => {}
                Some(Err(m)) => errors.push(format!(
                    "agent {}, {} ({}, {}): {m}",
                    agent,
                    ind.name,
                    ind.key,
                    ind.input.as_ref().map(|i| i.describe()).unwrap_or_default()
                )),
            },
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Applies the changes in one transaction; returns the audit detail (`a1 quality = 90`).
pub fn apply(conn: &mut Connection, month: &str, changes: &[Change]) -> rusqlite::Result<String> {
    let tx = conn.transaction()?;
    let mut detail = Vec::new();
    for c in changes {
        match c {
            Change::Set(agent, key, v) => {
                tx.execute(
                    "INSERT INTO score_inputs VALUES (?1, ?2, ?3, ?4) ON CONFLICT(month, agent, indicator) DO UPDATE SET value = excluded.value",
                    params![month, agent, key, v.normalize().to_string()],
                )?;
                detail.push(format!("{agent} {key} = {}", v.normalize()));
            }
            Change::Clear(agent, key) => {
                tx.execute(
                    "DELETE FROM score_inputs WHERE month = ?1 AND agent = ?2 AND indicator = ?3",
                    params![month, agent, key],
                )?;
                detail.push(format!("{agent} {key} cleared"));
            }
        }
    }
    tx.commit()?;
    Ok(format!("{month}: {}", detail.join("; ")))
}

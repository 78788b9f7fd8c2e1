//! `kefu check-text` and `kefu flags`: what a text triggers and why; what was stored.
//!
//! Both print personal data masked; the raw text stays in the database.

use std::fmt::Write as _;
use std::path::Path;

use thiserror::Error;

use super::Guard;
use super::store::{StoredFlag, query};
use crate::rules::DataError;
use crate::store::{Store, StoreError};
use crate::time::{display_shanghai, parse_day};

/// Failures of the guard commands.
#[derive(Debug, Error)]
pub enum CliError {
    /// The rule files are invalid.
    #[error("invalid guard rules:\n{}", list(.0))]
    Rules(Vec<DataError>),
    /// `--date` is not a day.
    #[error("--date '{0}' is not a day (expected YYYY-MM-DD)")]
    BadDate(String),
    /// The database failed.
    #[error("database")]
    Store(#[from] StoreError),
    /// Writing JSON failed.
    #[error("cannot write JSON")]
    Json(#[from] serde_json::Error),
}

fn list(errors: &[DataError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// The report of `kefu check-text`: the masked text, its normalised form, each finding.
pub fn check_text(text: &str, rules: Option<&Path>, json: bool) -> Result<String, CliError> {
    let guard = Guard::load(rules).map_err(CliError::Rules)?;
    let findings = guard.check_text(text);
    if json {
        let v = serde_json::json!({
            "text": guard.mask(text),
            "normalized": guard.normalized(text),
            "findings": findings,
        });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut out = String::new();
    // The text is the caller's own, but may have been pasted from a buyer's message.
    let t = |s: &str| crate::textio::escape_cut(s, usize::MAX).into_owned();
    let _ = writeln!(out, "text:       {}", t(&guard.mask(text)));
    let _ = writeln!(out, "normalised: {}", t(&guard.normalized(text)));
    if findings.is_empty() {
        out.push_str("no findings\n");
    }
    for f in &findings {
        let senders: Vec<_> = f.senders.iter().map(|s| format!("{s:?}").to_lowercase()).collect();
        let _ = writeln!(
            out,
            "[{}] {} ({} points) chars {}..{} \"{}\" <- {} (normalised \"{}\"; watches {})",
            f.severity.as_str(),
            f.category,
            f.points,
            f.start,
            f.end,
            t(&f.matched),
            f.rule,
            t(&f.normalized),
            senders.join(", ")
        );
    }
    Ok(out)
}

/// The listing of `kefu flags`: stored findings of a day and/or agent, masked.
pub fn flags(db: &Path, date: Option<&str>, agent: Option<&str>, json: bool) -> Result<String, CliError> {
    let day = date.map(|d| parse_day(d).ok_or_else(|| CliError::BadDate(d.to_string()))).transpose()?;
    let store = Store::open(db)?;
    let rows = query(&store, day, agent)?;
    if json {
        return Ok(serde_json::to_string_pretty(&rows)? + "\n");
    }
    Ok(render(&rows))
}

/// One line per finding; every stored value came from the platform, so each is escaped
/// for the terminal.
fn render(rows: &[StoredFlag]) -> String {
    use crate::textio::escape_for_terminal as t;
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(
            out,
            "{}  {}  {}  {}  [{}] {} ({}) chars {}..{} \"{}\"",
            display_shanghai(r.ts),
            t(&r.agent),
            t(&r.conversation),
            t(&r.message_id),
            t(&r.severity),
            t(&r.category),
            r.points,
            r.start,
            r.end,
            t(&r.matched)
        );
    }
    let points: i64 = rows.iter().map(|r| i64::from(r.points)).sum();
    let _ = writeln!(out, "{} finding(s), {} points", rows.len(), points);
    out
}

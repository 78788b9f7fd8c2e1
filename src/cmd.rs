//! The foundation's commands (`replay`, `report`, `simulate`): argument values in, text out.
//! `main.rs` only parses and dispatches here.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::guard::Guard;
use crate::replay::{InputStats, replay_with, report_from_db_with_guard};
use crate::report::Report;
use crate::rules::response_time;
use crate::simulate::{SimConfig, generate, write_jsonl};
use crate::store::Store;

/// `kefu replay FILE`: prints the report; bad lines go to stderr with their numbers.
pub fn replay_file(file: &Path, rules: Option<&Path>, db: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let rules_dir = rules;
    let rules = response_time::load(rules)?;
    let name = file.display().to_string();
    let f = File::open(file).with_context(|| format!("cannot open {name}"))?;
    let guard = load_guard(rules_dir)?;
    // The alert plan `kefu run` would use, so `--db` records the alerts it would record.
    // A sink whose secret is not in this environment must not stop a replay: say so, and
    // replay on the default plan.
    let plan = match crate::alerts::config::load(rules_dir) {
        Ok(c) => c.plan,
        Err(e) => {
            eprintln!("warning: {e}: replaying with the default alert plan");
            crate::alerts::Plan::default()
        }
    };
    let (report, stats) =
        replay_with(BufReader::with_capacity(1 << 20, f), &name, rules, plan, Some(guard), db, json)?;
    report_input(&name, &stats);
    print_report(&report, json)
}

/// `kefu report --db FILE`: the same report, recomputed from the stored events.
pub fn report_db(db: &Path, rules: Option<&Path>, json: bool) -> anyhow::Result<()> {
    if !db.exists() {
        anyhow::bail!("no database at {}", db.display());
    }
    let rules_dir = rules;
    let rules = response_time::load(rules)?;
    let store = Store::open(db)?;
    let guard = load_guard(rules_dir)?;
    let report = report_from_db_with_guard(&store, rules, Some(guard))?;
    print_report(&report, json)
}

/// `kefu simulate --out FILE`.
pub fn simulate(config: &SimConfig, out: &Path) -> anyhow::Result<()> {
    let events = generate(config);
    let f = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_jsonl(&events, BufWriter::with_capacity(1 << 20, f))?;
    eprintln!("wrote {} events to {}", events.len(), out.display());
    Ok(())
}

/// The phrase guard from the rules folder, its errors listed with file and line.
fn load_guard(rules: Option<&Path>) -> anyhow::Result<Guard> {
    Guard::load(rules).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid guard rules:\n{}", list.join("\n"))
    })
}

fn report_input(name: &str, stats: &InputStats) {
    for r in &stats.rejected {
        eprintln!("{name}:{}: skipped: {}", r.line, r.reason);
    }
    eprintln!(
        "{name}: {} lines, {} events, {} duplicates, {} rejected{}",
        stats.lines,
        stats.events,
        stats.duplicates,
        stats.rejected.len(),
        if stats.stored > 0 { format!(", {} newly stored", stats.stored) } else { String::new() }
    );
}

fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if json {
        serde_json::to_writer(&mut out, report)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(report.to_table().as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// Default path helper for commands that take an optional output file.
pub fn default_path(given: Option<PathBuf>, name: &str) -> PathBuf {
    given.unwrap_or_else(|| PathBuf::from(name))
}

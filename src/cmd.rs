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

/// `kefu snapshot --db FILE [--verify]`: opens the engine (and the robot, as `kefu run`
/// runs it) the way a restart does, then either stores a snapshot covering every stored
/// event, or (`--verify`) also rebuilds from every event and compares the two states.
/// Returns the text to print and whether they were equal (always true without `--verify`).
pub fn snapshot(
    db: &Path,
    rules: Option<&Path>,
    replies: Option<&Path>,
    verify: bool,
) -> anyhow::Result<(String, bool)> {
    use crate::live::{
        AssistConfig, ChannelSeam, LiveConfig, LiveCounters, Runtime, Sets, SnapshotPolicy, TimeSource,
    };
    if !db.exists() {
        anyhow::bail!("no database at {}", db.display());
    }
    let sets = Sets::load(rules, replies).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid rules or replies:\n{}", list.join("\n"))
    })?;
    let plan = crate::alerts::config::load(rules).map(|c| c.plan).unwrap_or_default();
    // One instant for both opens: the robot drops idle conversations by it.
    let now = crate::time::now_ms();
    let open = |policy: SnapshotPolicy| -> anyhow::Result<(crate::engine::Snapshot, f64)> {
        let config = LiveConfig {
            plan,
            time: TimeSource::frozen(now),
            assist: AssistConfig { replies: Some(sets.replies.clone()), ..AssistConfig::default() },
            snapshots: policy,
            ..LiveConfig::new(sets.response.clone())
        };
        let started = std::time::Instant::now();
        let (seam, _alerts) = ChannelSeam::new();
        let (runtime, _) = Runtime::open(
            Store::open(db)?,
            config,
            Box::new(seam),
            std::sync::Arc::new(LiveCounters::default()),
        )?;
        let secs = started.elapsed().as_secs_f64();
        Ok((runtime.snapshot()?, secs))
    };
    let stored = crate::store::snapshots::newest_first(Store::open(db)?.conn())?.first().map(|s| s.position);
    let quiet = SnapshotPolicy { every_ms: i64::MAX, every_events: u64::MAX, load: true };
    let summary = |s: &crate::engine::Snapshot| {
        let pending = s.engine.clock().pending().count();
        format!("{} events, {pending} buyers waiting", s.position)
    };
    if !verify {
        // Opening stores one at once (before the restart's own catch-up of overdue timers,
        // which a snapshot must not hold).
        let (taken, _) = open(SnapshotPolicy { every_events: 0, ..quiet })?;
        return Ok((format!("snapshot stored: {}", summary(&taken)), true));
    }
    let (restored, restore_s) = open(quiet)?;
    let (rebuilt, rebuild_s) = open(SnapshotPolicy { load: false, ..quiet })?;
    let from = stored.map_or_else(|| "no snapshot".to_string(), |p| format!("snapshot at {p}"));
    let same = restored == rebuilt;
    let verdict = match (restored.engine == rebuilt.engine, restored.robot == rebuilt.robot) {
        _ if same => "equal",
        (false, true) => "DIFFERENT (engine)",
        (true, false) => "DIFFERENT (robot)",
        _ => "DIFFERENT (engine and robot)",
    };
    Ok((
        format!(
            "{from} + later events ({restore_s:.2} s) vs rebuild from every event ({rebuild_s:.2} s): {verdict}; {}",
            summary(&rebuilt)
        ),
        same,
    ))
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

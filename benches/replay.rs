//! Replay throughput: 1,000,000 simulated events through the clock without a database,
//! and with one, against a bare batched rusqlite insert of the same events into the same
//! schema, all measured in one run.
//!
//! `cargo bench --bench replay` (events: KEFU_BENCH_EVENTS, default 1,000,000). The guard
//! runs as `kefu replay` runs it; the clock-only line shows what the guard costs.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::Instant;

use kefu::event::parse;
use kefu::guard::Guard;
use kefu::replay::{BATCH, replay_with_guard};
use kefu::rules::response_time::ResponseRules;
use kefu::simulate::{SimConfig, generate, write_jsonl};
use kefu::store::Store;

// The same allocator as the `kefu` binary, so the figures are the command's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("KEFU_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("events.jsonl");
    {
        let events = generate(&SimConfig { events: n, seed: 42, ..SimConfig::default() });
        write_jsonl(&events, BufWriter::new(File::create(&file)?))?;
    }
    let size = std::fs::metadata(&file)?.len();
    println!("input: {n} events, {:.1} MB", size as f64 / 1e6);

    let guard = || Guard::load(None).map_err(|e| anyhow::anyhow!("shipped guard rules: {e:?}"));
    for (label, with_guard) in [("clock only", false), ("clock + guard (kefu replay)", true)] {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let g = if with_guard { Some(guard()?) } else { None };
            let t = Instant::now();
            let (report, stats) =
                replay_with_guard(open(&file)?, "bench", ResponseRules::default(), g, None)?;
            best = best.min(t.elapsed().as_secs_f64());
            assert_eq!(stats.events, n);
            assert!(!report.waits.is_empty());
        }
        println!("replay, no db, {label}: {:>10.0} events/s ({best:.3} s, best of 3)", n as f64 / best);
    }

    let bare = bare_insert(&file, &dir.path().join("bare.db"))?;
    println!("bare rusqlite insert:{:>10.0} rows/s ({bare:.3} s)", n as f64 / bare);

    let db = dir.path().join("replay.db");
    let g = Some(guard()?);
    let t = Instant::now();
    let (_, stats) = replay_with_guard(open(&file)?, "bench", ResponseRules::default(), g, Some(&db))?;
    let with_db = t.elapsed().as_secs_f64();
    assert_eq!(stats.stored, n);
    println!("replay --db (with guard): {:>10.0} events/s ({with_db:.3} s)", n as f64 / with_db);
    println!("replay --db / bare insert: {:.0}%", 100.0 * bare / with_db);
    Ok(())
}

fn open(path: &Path) -> std::io::Result<BufReader<File>> {
    Ok(BufReader::with_capacity(1 << 20, File::open(path)?))
}

/// The floor SQLite sets: the same rows, the same schema and statement, already parsed,
/// inserted in transactions of the same size replay uses.
fn bare_insert(file: &Path, db: &Path) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(file)?;
    let rows: Vec<_> = text.lines().map(|l| (parse(l).expect("simulated events are valid"), l)).collect();
    let mut store = Store::open(db)?;
    let t = Instant::now();
    for chunk in rows.chunks(BATCH) {
        // One transaction per chunk, the statement replay and live use.
        store.insert_events(chunk.iter().map(|(e, body)| (e, *body)))?;
    }
    Ok(t.elapsed().as_secs_f64())
}

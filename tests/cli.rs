//! The `kefu` binary end to end: the same report by every path, bad input survived,
//! rule files checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kefu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kefu")).args(args).output().expect("kefu runs")
}

fn ok(args: &[&str]) -> String {
    let out = kefu(args);
    assert!(out.status.success(), "kefu {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

#[test]
fn report_is_identical_from_file_database_and_a_second_replay() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("day.jsonl");
    let db = dir.path().join("k.db");
    ok(&["simulate", "--out", s(&events), "--events", "4000", "--seed", "3"]);

    let plain = ok(&["replay", s(&events), "--json"]);
    let stored = ok(&["replay", s(&events), "--db", s(&db), "--json"]);
    let from_db = ok(&["report", "--db", s(&db), "--json"]);
    let again = ok(&["replay", s(&events), "--db", s(&db), "--json"]);
    let from_db_again = ok(&["report", "--db", s(&db), "--json"]);

    let report: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert!(report["waits"].as_array().unwrap().len() > 500, "the simulation should produce waits");
    assert!(!report["alerts"].as_array().unwrap().is_empty(), "the simulation should produce breaches");
    assert_eq!(plain, stored);
    assert_eq!(plain, from_db);
    assert_eq!(plain, again);
    assert_eq!(plain, from_db_again);

    let conn = rusqlite::Connection::open(&db).unwrap();
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 4000, "a second replay stores no duplicates");
    let waits: i64 = conn.query_row("SELECT COUNT(*) FROM waits", [], |r| r.get(0)).unwrap();
    assert_eq!(waits as usize, report["waits"].as_array().unwrap().len());
    // The report lists the breaches; the table also holds the plan's escalations, as `kefu run` records them.
    let alerts: i64 =
        conn.query_row("SELECT COUNT(*) FROM alerts WHERE kind = 'breach'", [], |r| r.get(0)).unwrap();
    assert_eq!(alerts as usize, report["alerts"].as_array().unwrap().len());
}

#[test]
fn bad_lines_are_reported_with_numbers_and_exit_status_is_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let file = fixture("clock/bad.jsonl");
    let out = kefu(&["replay", s(&file), "--db", s(&db)]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [2, 3, 6, 7, 11] {
        assert!(err.contains(&format!("bad.jsonl:{line}: skipped")), "line {line} not reported in:\n{err}");
    }
    assert!(err.contains("11 lines, 4 events, 2 duplicates, 5 rejected"), "{err}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rejected: i64 = conn.query_row("SELECT COUNT(*) FROM rejected", [], |r| r.get(0)).unwrap();
    assert_eq!(rejected, 5);
    let events: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(events, 4);
}

#[test]
fn check_names_file_and_line_of_a_bad_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("response_time.toml"),
        "idle_close_s = 1800\nactive_window_s = 300\n[[tier]]\nmax_load = \"three\"\ndeadline_s = 20\n",
    )
    .unwrap();
    let out = kefu(&["check", "--rules", s(dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("response_time.toml:4:"), "{err}");
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out =
        kefu(&["check", "--rules", s(&shipped.join("rules")), "--replies", s(&shipped.join("replies"))]);
    assert!(out.status.success(), "shipped files must pass: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_arguments_get_a_clear_error_not_a_panic() {
    let out = kefu(&["replay", "/no/such/file.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /no/such/file.jsonl"));
    let out = kefu(&["simulate", "--out", "/tmp/x.jsonl", "--date", "2026-13-01"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a date"));
    let out = kefu(&["report", "--db", "/no/such.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
}

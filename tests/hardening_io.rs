//! Issue 11, files and text: what a bad file, hostile platform text or a closed pipe broke,
//! each through the `kefu` binary. Tests are named after what broke.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kefu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kefu")).args(args).output().expect("kefu runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A replies folder holding a team set of two phrases; returns the folder and its book.
fn replies_with_team_set(dir: &Path) -> (PathBuf, Vec<u8>) {
    let replies = dir.join("replies");
    std::fs::create_dir_all(&replies).unwrap();
    let book = "[[phrase]]\ncode = \"hy\"\ntext = \"亲，您好\"\n\n[[phrase]]\ncode = \"fh\"\ntext = \"48小时内发货\"\n";
    std::fs::write(replies.join("quick.toml"), book).unwrap();
    (replies.clone(), book.as_bytes().to_vec())
}

#[test]
fn qianniu_import_of_a_file_with_nul_bytes_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let (replies, before) = replies_with_team_set(dir.path());
    let csv = dir.path().join("nul.csv");
    std::fs::write(&csv, "快捷短语编码,快捷短语,快捷短语分组\nok,好的,\nbad,a\0b,\n").unwrap();
    let out = kefu(&["replies", "import", s(&csv), "--replies", s(&replies)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nul.csv:3: a NUL byte"), "{}", stderr(&out));
    assert_eq!(std::fs::read(replies.join("quick.toml")).unwrap(), before, "the team set is untouched");
}

#[test]
fn qianniu_header_only_file_does_not_empty_the_team_set() {
    let dir = tempfile::tempdir().unwrap();
    let (replies, before) = replies_with_team_set(dir.path());
    let csv = dir.path().join("empty.csv");
    std::fs::write(&csv, "\u{feff}快捷短语编码,快捷短语,快捷短语分组\r\n\r\n").unwrap();
    let out = kefu(&["replies", "import", s(&csv), "--replies", s(&replies)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("empty.csv: no phrase after the header"), "{}", stderr(&out));
    assert_eq!(std::fs::read(replies.join("quick.toml")).unwrap(), before, "the team set is untouched");
}

#[test]
fn qianniu_utf8_export_has_a_bom_and_no_live_formula() {
    let dir = tempfile::tempdir().unwrap();
    let replies = dir.path().join("replies");
    std::fs::create_dir_all(&replies).unwrap();
    let book = "[[phrase]]\ncode = \"=x\"\ntext = '=HYPERLINK(\"http://evil.example/\",\"点我领券\")'\n\n[[phrase]]\ncode = \"at\"\ntext = \"@SUM(1+1)*cmd|' /C calc'!A0\"\n";
    std::fs::write(replies.join("quick.toml"), book).unwrap();
    let csv = dir.path().join("out.csv");
    let out = kefu(&["replies", "export", "--out", s(&csv), "--encoding", "utf-8", "--replies", s(&replies)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&csv).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with BOM, so Excel shows Chinese");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    let cells: Vec<&str> = text.lines().skip(1).flat_map(|l| l.split(',')).collect();
    for c in &cells {
        let c = c.trim_start_matches('"');
        assert!(!c.starts_with(['=', '+', '-', '@']), "a cell a spreadsheet would run: {c:?} in {text}");
    }
    // Re-imported, the phrases are what they were.
    let again = dir.path().join("again");
    let out = kefu(&["replies", "import", s(&csv), "--replies", s(&again)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reread = std::fs::read_to_string(again.join("quick.toml")).unwrap();
    assert!(reread.contains("code = \"=x\""), "{reread}");
    assert!(reread.contains("@SUM(1+1)*cmd|' /C calc'!A0"), "{reread}");
}

/// Events whose ids carry ESC sequences (clear screen, set the window title, red) and a
/// line break, with agent messages the phrase guard flags.
fn hostile_events(dir: &Path) -> PathBuf {
    let agent = "a1\u{1b}[2J\u{1b}]0;pwned\u{7}";
    let conv = "c1\u{1b}[31m";
    let lines = [
        serde_json::json!({"type":"message","id":"m1\u{1b}[1A","ts":"2026-11-11T10:00:00+08:00","shop":"s1\u{1b}[5m","conversation":conv,"customer":"tb_buyer\u{1b}[8m_1","agent":agent,"from":"customer","text":"有优惠吗"}),
        serde_json::json!({"type":"message","id":"m2\nINFO forged","ts":"2026-11-11T10:01:05+08:00","shop":"s1\u{1b}[5m","conversation":conv,"customer":"tb_buyer\u{1b}[8m_1","agent":agent,"from":"agent","text":"亲，这款是全网最低价\u{1b}[0m哦"}),
    ];
    let file = dir.join("hostile.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).unwrap();
    file
}

fn assert_no_raw_controls(what: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{what}: {}", stderr(out));
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{what} printed a raw ESC/BEL: {stdout:?}"
    );
    assert!(!stdout.lines().any(|l| l.starts_with("INFO forged")), "{what}: a value broke a line: {stdout}");
}

#[test]
fn esc_sequences_in_platform_ids_never_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let events = hostile_events(dir.path());
    let db = dir.path().join("k.db");
    let replay = kefu(&["replay", s(&events), "--db", s(&db)]);
    assert_no_raw_controls("replay", &replay);
    let table = String::from_utf8_lossy(&replay.stdout);
    assert!(table.contains("a1\\u{1b}[2J\\u{1b}]0;pwned\\u{7}"), "the agent is shown escaped: {table}");
    assert_no_raw_controls("report", &kefu(&["report", "--db", s(&db)]));
    let flags = kefu(&["flags", "--db", s(&db)]);
    assert_no_raw_controls("flags", &flags);
    let flags = String::from_utf8_lossy(&flags.stdout);
    assert!(flags.contains("m2\\nINFO forged") && flags.contains("c1\\u{1b}[31m"), "{flags}");
}

/// Runs kefu with its stdout a pipe whose reading end is already closed (`kefu … | head`
/// after head has gone).
fn kefu_into_closed_pipe(args: &[&str]) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kefu runs");
    drop(child.stdout.take());
    child.wait_with_output().expect("kefu ends")
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let events = hostile_events(dir.path());
    let cases: Vec<Vec<&str>> = vec![
        vec!["check-text", "亲，这款是全网最低价，加微信私聊"],
        vec!["replay", s(&events)],
        vec!["replies", "find", "发货"],
        vec!["demo", "--duration", "2", "--speed", "120"],
    ];
    for args in cases {
        let out = kefu_into_closed_pipe(&args);
        assert_eq!(out.status.code(), Some(0), "kefu {args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "kefu {args:?}: {err}");
    }
}

#[test]
fn replay_skips_an_invalid_utf8_line_with_its_number_and_accepts_a_bom_on_line_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bom.jsonl");
    let ev = |id: &str, ts: &str, from: &str| {
        format!(
            r#"{{"type":"message","id":"{id}","ts":"2026-11-11T10:00:{ts}+08:00","shop":"s1","conversation":"c1","customer":"tb_1","agent":"a1","from":"{from}","text":"在吗"}}"#
        )
    };
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(ev("m1", "00", "customer").as_bytes());
    bytes.extend_from_slice(b"\n{\"type\":\"message\",\"id\":\"m2\",\"text\":\"\xC0\xFF\"}\n");
    bytes.extend_from_slice(ev("m3", "05", "agent").as_bytes());
    bytes.push(b'\n');
    std::fs::write(&file, bytes).unwrap();
    let out = kefu(&["replay", s(&file), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bom.jsonl:2: skipped: not UTF-8 text: an invalid byte at byte 37 of the line"),
        "{err}"
    );
    assert!(err.contains("3 lines, 2 events, 0 duplicates, 1 rejected"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["waits"].as_array().map(Vec::len), Some(1), "line 1 (BOM) and line 3 made one wait");
}

#[test]
fn a_failed_migration_leaves_a_foreign_sqlite_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other-app.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE events (x TEXT); INSERT INTO events VALUES ('theirs');").unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let out = kefu(&["report", "--db", s(&db)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("applying migration 1 to ") && err.contains("other-app.db"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file is byte for byte as it was");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, vec!["events".to_string()], "no schema_version left behind");
    assert!(!dir.path().join("other-app.db-wal").exists(), "journal mode unchanged");
}

#[test]
fn database_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.db");
    std::fs::write(&db, "not a database, just notes\n".repeat(100)).unwrap();
    for args in [vec!["report", "--db", s(&db)], vec!["flags", "--db", s(&db)]] {
        let out = kefu(&args);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains(&format!("cannot open database {}", db.display())), "kefu {args:?}: {err}");
    }
}

#[test]
fn errors_print_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let sheet =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/scoring.toml")).unwrap();
    std::fs::write(
        rules.join("scoring.toml"),
        sheet.replacen("plan = 10000", "plan = 10000\nbogus_key = 1", 1),
    )
    .unwrap();
    let db = dir.path().join("k.db");
    let out = kefu(&["score", "--rules", s(&rules), "--db", s(&db), "--date", "2026-11-11", "--no-reports"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.matches("unknown field `bogus_key`").count(), 1, "{err}");
    assert!(err.contains("scoring.toml:"), "names the sheet: {err}");

    let missing = dir.path().join("missing.csv");
    let out = kefu(&["replies", "import", s(&missing), "--replies", s(&dir.path().join("r"))]);
    let err = stderr(&out);
    assert_eq!(err.matches("missing.csv").count(), 1, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

/// `kefu run` against a platform whose frames carry a line break meant to forge a log line
/// and a 300 KB value: the log has one line per record and the long value cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_values_cannot_forge_or_flood_log_lines() {
    use kefu::simulate::{Item, ServerConfig, SimServer};
    let frame = |id: &str, ts: &str, conversation: &str, from: &str| {
        let event = serde_json::json!({"type":"message","id":id,"ts":ts,"shop":"s","conversation":conversation,"customer":"tb_1","agent":"a","from":from,"text":"在吗"});
        Item::Text(format!(r#"{{"op":"event","seq":{{seq}},"event":{event}}}"#))
    };
    // A bad `from` is logged in the gateway's "rejected frame" line; the conversation id in
    // the "alert" lines of a breach (stale: the traffic is weeks old).
    let forged = "agent\nWARN kefu: forged line";
    let long_conversation = format!("c1\nWARN kefu: forged alert {}", "x".repeat(300_000));
    let items = vec![
        frame("f1", "2026-11-11T10:00:00+08:00", "c0", forged),
        frame("m1", "2026-11-11T10:00:00+08:00", &long_conversation, "customer"),
        frame("m2", "2026-11-11T10:05:00+08:00", "c2", "customer"),
    ];
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let srv = SimServer::start(addr, items, ServerConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kefu.toml");
    let db = dir.path().join("kefu.db");
    std::fs::write(&config, format!("log = \"info\"\ndb = {db:?}\n[platform]\nurl = \"{}\"\n", srv.url()))
        .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["run", "--config", s(&config)])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Read the log as it comes, so a long line cannot stall kefu on a full pipe.
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stderr_pipe, &mut buf).await.map(|_| buf)
    });
    let last = srv.last_seq();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while srv.acked() < Some(last) {
        assert!(std::time::Instant::now() < deadline, "kefu never acked the frames");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(child.wait().await.unwrap().success(), "clean exit on SIGTERM");
    let log = reader.await.unwrap().unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("rejected frame"), "{log:.2000}");
    assert!(!log.lines().any(|l| l.starts_with("WARN kefu: forged")), "a forged line: {log:.3000}");
    assert!(log.contains("agent\\nWARN kefu: forged line"), "shown escaped: {log:.3000}");
    assert!(log.contains("c1\\nWARN kefu: forged alert xxx"), "shown escaped: {log:.3000}");
    assert!(
        log.contains(&format!("…[{} bytes in all]", long_conversation.len())),
        "the 300 KB id is cut with its length: {log:.3000}"
    );
    assert!(log.lines().all(|l| l.len() < 4_000), "no line carries the 300 KB value");
}

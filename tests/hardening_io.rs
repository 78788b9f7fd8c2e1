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

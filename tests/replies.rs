//! Replies end to end through real files: Qianniu CSV import/export, hot reload of a real
//! folder, `kefu check` on the replies folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kefu::event::{Event, EventKind, Presence, Sender};
use kefu::replies::cli::{CliError, export, import};
use kefu::replies::qianniu_csv::{self, Encoding};
use kefu::replies::reload::{Reload, Watcher};
use kefu::replies::robot::{Reason, Robot, RobotAction};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// Copies the shipped `rules/` and `replies/` into a temp folder.
fn copy_shipped(root: &Path) -> (PathBuf, PathBuf) {
    let (rules, replies) = (root.join("rules"), root.join("replies"));
    for (from, to) in [(shipped("rules"), &rules), (shipped("replies"), &replies)] {
        std::fs::create_dir_all(to).unwrap();
        for f in std::fs::read_dir(from).unwrap() {
            let f = f.unwrap().path();
            if f.is_dir() {
                continue;
            }
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    (rules, replies)
}

fn rows(bytes: &[u8]) -> Vec<(String, String, String)> {
    let imp = qianniu_csv::import(Path::new("x.csv"), bytes).unwrap();
    imp.rows.into_iter().map(|r| (r.code, r.text, r.group)).collect()
}

#[test]
fn gbk_import_export_import_gives_identical_rows() {
    let original = std::fs::read(data("qianniu_gbk.csv")).unwrap();
    assert!(std::str::from_utf8(&original).is_err(), "the fixture is GBK, not UTF-8");
    let first = rows(&original);
    assert_eq!(first.len(), 6);
    assert_eq!(first[0].1, "亲,您好!欢迎光临毛菇小象~\n我是客服{客服},很高兴为您服务");
    assert_eq!(first[3].2, "", "a blank group stays ungrouped");

    let dir = tempfile::tempdir().unwrap();
    let replies = dir.path().join("replies");
    let report = import(&data("qianniu_gbk.csv"), &replies, None).unwrap();
    assert_eq!((report.imported, report.encoding), (6, Encoding::Gbk));

    for enc in [Encoding::Gbk, Encoding::Utf8] {
        let out = dir.path().join(format!("export-{}.csv", enc.name()));
        let (n, _) = export(&out, enc, Some(&replies), None).unwrap();
        assert_eq!(n, 6);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(std::str::from_utf8(&bytes).is_ok(), enc == Encoding::Utf8, "{}", enc.name());
        assert_eq!(rows(&bytes), first, "{}", enc.name());
        let again = dir.path().join(format!("again-{}", enc.name()));
        import(&out, &again, None).unwrap();
        let book = kefu::replies::quick::load(Some(&again)).unwrap();
        let got: Vec<_> =
            book.phrases().iter().map(|p| (p.code.clone(), p.text.clone(), p.group.clone())).collect();
        assert_eq!(got, first, "{}", enc.name());
    }
    assert_eq!(
        std::fs::read(dir.path().join("export-GBK.csv")).unwrap(),
        original,
        "GBK export is byte-identical"
    );
}

#[test]
fn malformed_file_names_bad_lines_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let replies = dir.path().join("replies");
    import(&data("qianniu_gbk.csv"), &replies, None).unwrap();
    let before = std::fs::read(replies.join("quick.toml")).unwrap();

    let err = import(&data("qianniu_malformed.csv"), &replies, None).unwrap_err();
    let CliError::Data(errors) = err else { panic!("expected located errors, got {err}") };
    let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![Some(3), Some(4)]);
    assert!(errors.iter().all(|e| e.file.ends_with("qianniu_malformed.csv")));
    assert!(errors[0].message.contains("4 cells, expected 3"), "{}", errors[0]);
    assert_eq!(std::fs::read(replies.join("quick.toml")).unwrap(), before, "nothing imported");
}

#[test]
fn personal_import_replaces_only_that_agents_set() {
    let dir = tempfile::tempdir().unwrap();
    let (_, replies) = copy_shipped(dir.path());
    let team_before = kefu::replies::quick::load(Some(&replies)).unwrap().set(None).len();
    import(&data("qianniu_gbk.csv"), &replies, Some("小美")).unwrap();
    let book = kefu::replies::quick::load(Some(&replies)).unwrap();
    assert_eq!(book.set(None).len(), team_before);
    assert_eq!(book.set(Some("小美")).len(), 6);
    assert!(book.set(Some("小美")).iter().any(|p| p.code == "镕"));
    assert!(!book.set(Some("阿珍")).is_empty());
}

fn away_event(ts: i64) -> Event {
    Event {
        id: "p".into(),
        ts,
        shop: "毛菇小象".into(),
        kind: EventKind::Presence { agent: "小美".into(), status: Presence::Away },
    }
}

fn buyer(ts: i64, text: &str) -> Event {
    Event {
        id: format!("m{ts}"),
        ts,
        shop: "毛菇小象".into(),
        kind: EventKind::Message {
            conversation: "c1".into(),
            customer: "tb_buyer_1".into(),
            agent: "小美".into(),
            from: Sender::Customer,
            text: text.into(),
        },
    }
}

fn away_answer(robot: &mut Robot, ts: i64, text: &str) -> Option<(Option<String>, String)> {
    // One conversation, no session closing between these messages: no engine outputs.
    robot.handle(&buyer(ts, text), &[], ts).into_iter().find_map(|a| match a {
        RobotAction::Send { reason: Reason::Away, rule, text, .. } => Some((rule, text)),
        _ => None,
    })
}

#[test]
fn reload_swaps_in_valid_edits_and_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let (rules, replies) = copy_shipped(dir.path());
    let current = Arc::new(kefu::replies::load(Some(&rules), Some(&replies)).unwrap());
    let mut robot = Robot::new(current);
    let mut watcher = Watcher::new(Some(rules.clone()), Some(replies.clone()));
    assert!(matches!(watcher.poll(), Reload::Unchanged));
    let t = kefu::time::parse_rfc3339_ms("2026-11-11T10:00:00+08:00").unwrap();
    robot.handle(&away_event(t), &[], t);
    assert_eq!(away_answer(&mut robot, t, "可以用花呗吗").map(|a| a.0), Some(None), "no rule yet");

    let auto = replies.join("auto.toml");
    let mut text = std::fs::read_to_string(&auto).unwrap();
    text.push_str("\n[[rule]]\nid = \"huabei\"\ncategory = \"自定义问题\"\nquestion = \"能用花呗吗\"\nany = [\"花呗\"]\nanswers = [\"亲,支持花呗分期哦~\"]\n");
    std::fs::write(&auto, &text).unwrap();
    let Reload::Loaded(new) = watcher.poll() else { panic!("a valid edit loads") };
    robot.set_replies(Arc::new(*new));
    assert_eq!(away_answer(&mut robot, t + 1, "可以用花呗吗").map(|a| a.0), Some(Some("huabei".into())));

    let lines = text.lines().count();
    std::fs::write(&auto, format!("{text}\n[[rule]]\nid = \"broken\"\ncategory = \"售后\"\nquestion = \"q\"\nregex = \"(\"\nanswers = [\"x\"]\n")).unwrap();
    let Reload::Rejected(errors) = watcher.poll() else { panic!("an invalid edit is rejected") };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, auto);
    assert_eq!(errors[0].line, Some(lines + 6), "{}", errors[0]);
    assert!(errors[0].message.contains("bad regex"), "{}", errors[0]);
    assert!(matches!(watcher.poll(), Reload::Unchanged), "a rejected edit is reported once");
    assert_eq!(
        away_answer(&mut robot, t + 2, "可以用花呗吗").map(|a| a.0),
        Some(Some("huabei".into())),
        "the previous set keeps serving"
    );

    std::fs::write(replies.join("robot.toml"), "[defaults]\naway = true\n").unwrap();
    std::fs::write(&auto, &text).unwrap();
    let Reload::Rejected(errors) = watcher.poll() else { panic!("robot.toml is now invalid") };
    assert!(errors[0].to_string().contains("robot.toml:1: [defaults] must set `greeting`"), "{}", errors[0]);
    std::fs::copy(shipped("replies/robot.toml"), replies.join("robot.toml")).unwrap();
    assert!(matches!(watcher.poll(), Reload::Loaded(_)));

    std::fs::write(rules.join("shifts.toml"), "[agents]\n\"小美\" = [\"夜班\"]\n").unwrap();
    let Reload::Rejected(errors) = watcher.poll() else { panic!("rules/ is watched too") };
    assert!(errors[0].file.ends_with("rules/shifts.toml"), "{}", errors[0]);
}

#[tokio::test]
async fn reload_task_publishes_a_valid_edit() {
    let dir = tempfile::tempdir().unwrap();
    let (rules, replies) = copy_shipped(dir.path());
    let first = Arc::new(kefu::replies::load(Some(&rules), Some(&replies)).unwrap());
    let (tx, mut rx) = tokio::sync::watch::channel(first);
    let watcher = Watcher::new(Some(rules), Some(replies.clone()));
    let task = tokio::spawn(watcher.run(std::time::Duration::from_millis(20), tx));
    let book = "[[phrase]]\ncode = \"new\"\ntext = \"新短语\"\n";
    std::fs::write(replies.join("quick.toml"), book).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.changed()).await.unwrap().unwrap();
    assert_eq!(rx.borrow().quick.phrases().len(), 1);
    drop(rx);
    tokio::time::timeout(std::time::Duration::from_secs(10), task).await.unwrap().unwrap();
}

#[test]
fn check_names_file_line_and_reason_in_replies() {
    let dir = tempfile::tempdir().unwrap();
    let (rules, replies) = copy_shipped(dir.path());
    assert!(kefu::check::check_all(Some(&rules), Some(&replies)).is_empty());
    std::fs::write(replies.join("quick.toml"), "[[phrase]]\ncode = \"a\"\n\ntext = \"\"\n").unwrap();
    std::fs::write(
        replies.join("auto.toml"),
        "[[rule]]\nid = \"x\"\ncategory = \"售后\"\nquestion = \"q\"\nany = [\"x\"]\nanswers = [\"{颜色}\"]\n",
    )
    .unwrap();
    let errors: Vec<String> =
        kefu::check::check_all(Some(&rules), Some(&replies)).iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].ends_with("quick.toml:4: phrase text is empty"), "{}", errors[0]);
    assert!(errors[1].contains("auto.toml:6: rule `x`: unknown variable `{颜色}`"), "{}", errors[1]);
}

/// Runs events through the response clock and the robot in time order. With `echo`, each
/// robot send comes back 50 ms later as a `from: bot` message (as the platform echoes it)
/// and goes to both.
fn clock_with_robot(events: &[Event], echo: bool) -> (Vec<kefu::engine::Output>, Vec<RobotAction>) {
    use kefu::engine::Clock;
    let mut clock = Clock::new(kefu::rules::response_time::ResponseRules::default());
    let mut robot = Robot::new(Arc::new(kefu::replies::load(None, None).unwrap()));
    let mut outputs = Vec::new();
    let mut actions = Vec::new();
    let mut queue: std::collections::VecDeque<Event> = events.iter().cloned().collect();
    loop {
        let next_event = queue.front().map(|e| e.ts);
        let (now, batch) = match (robot.next_due(), next_event) {
            (Some(due), Some(ts)) if due < ts => (due, robot.advance(due)),
            (Some(due), None) => (due, robot.advance(due)),
            (_, Some(ts)) => {
                let Some(ev) = queue.pop_front() else { break };
                let from = outputs.len();
                clock.handle(&ev, &mut outputs);
                (ts, robot.handle(&ev, &outputs[from..], ts))
            }
            (None, None) => break,
        };
        for a in &batch {
            if let (true, RobotAction::Send { conversation, text, .. }) = (echo, a) {
                let at = now + 50;
                let bot = Event {
                    id: format!("echo-{at}-{}", actions.len()),
                    ts: at,
                    shop: "毛菇小象".into(),
                    kind: EventKind::Message {
                        conversation: conversation.clone(),
                        customer: "tb_buyer_1".into(),
                        agent: "小美".into(),
                        from: Sender::Bot,
                        text: text.clone(),
                    },
                };
                let pos = queue.iter().position(|e| e.ts > at).unwrap_or(queue.len());
                queue.insert(pos, bot);
            }
        }
        actions.extend(batch);
    }
    clock.finish(&mut outputs);
    (outputs, actions)
}

#[test]
fn robot_replies_do_not_change_the_buyers_wait() {
    let t = kefu::time::parse_rfc3339_ms("2026-11-11T10:00:00+08:00").unwrap();
    let agent = |ts: i64, text: &str| Event {
        kind: EventKind::Message {
            conversation: "c1".into(),
            customer: "tb_buyer_1".into(),
            agent: "小美".into(),
            from: Sender::Agent,
            text: text.into(),
        },
        ..buyer(ts, "")
    };
    // The buyer asks; the robot greets at once and rescues at 15 s; the agent answers at 18 s.
    let events = vec![buyer(t, "你们老板是谁"), agent(t + 18_000, "亲,在的")];
    let (with_echo, actions) = clock_with_robot(&events, true);
    let (without, _) = clock_with_robot(&events, false);
    let reasons: Vec<Reason> = actions
        .iter()
        .filter_map(|a| match a {
            RobotAction::Send { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [Reason::Greeting, Reason::Rescue], "the robot spoke twice during the wait");
    // The engine notes that the robot wrote during the wait (`robot`), and nothing else changes.
    let unflagged = |out: &[kefu::engine::Output]| -> Vec<kefu::engine::Output> {
        out.iter()
            .cloned()
            .map(|o| match o {
                kefu::engine::Output::WaitEnded(w) => {
                    kefu::engine::Output::WaitEnded(kefu::engine::Wait { robot: false, ..w })
                }
                o => o,
            })
            .collect()
    };
    assert_eq!(
        unflagged(&with_echo),
        unflagged(&without),
        "robot messages change nothing in the response clock"
    );
    let flagged = |out: &[kefu::engine::Output]| {
        out.iter().any(|o| matches!(o, kefu::engine::Output::WaitEnded(w) if w.robot))
    };
    assert!(flagged(&with_echo) && !flagged(&without), "the wait records that the robot wrote");
    let ended: Vec<_> = with_echo
        .iter()
        .filter_map(|o| match o {
            kefu::engine::Output::WaitEnded(w) => Some((w.start, w.end, w.outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(ended[0], (t, t + 18_000, kefu::engine::Outcome::Answered), "the agent's reply ends the wait");
}

/// `kefu replies hits`: a day's rule hits and quick-phrase uses from a real database,
/// most used first; another day has none; a bad date is a usage error naming the argument.
#[test]
fn replies_hits_lists_a_days_counts_most_used_first() {
    use kefu::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kefu.db");
    let mut store = Store::open(&db).unwrap();
    // 2026-11-11 12:00 Shanghai.
    let now = kefu::time::parse_rfc3339_ms("2026-11-11T12:00:00+08:00").unwrap();
    let hit = |rule: &str| RobotAction::Hit { shop: "毛菇小象".into(), rule: rule.into(), ts: now };
    let used = |owner: Option<&str>, code: &str| RobotAction::PhraseUsed {
        shop: "毛菇小象".into(),
        owner: owner.map(String::from),
        code: code.into(),
        ts: now,
    };
    let actions = [
        hit("size"),
        hit("express"),
        hit("express"),
        hit("express"),
        used(Some("阿强"), "fh"),
        used(None, "hi"),
    ];
    kefu::replies::stats::record(&mut store, &actions).unwrap();
    kefu::replies::stats::record(&mut store, &[used(Some("阿强"), "fh")]).unwrap();
    drop(store);

    let run = |date: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["replies", "hits", "--date", date, "--db"])
            .arg(&db)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, _) = run("2026-11-11");
    assert_eq!(code, Some(0));
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        vec![
            vec!["auto-answer", "rules", "on", "2026-11-11:"],
            vec!["3", "毛菇小象", "express"],
            vec!["1", "毛菇小象", "size"],
            vec!["quick", "phrases", "(agent/code,", "team:", "/code)", "on", "2026-11-11:"],
            vec!["2", "毛菇小象", "阿强/fh"],
            vec!["1", "毛菇小象", "/hi"],
        ],
        "{stdout}"
    );
    let (code, stdout, _) = run("2026-11-12");
    assert_eq!(code, Some(0));
    assert!(stdout.contains("auto-answer rules on 2026-11-12: none"), "{stdout}");
    let (code, _, stderr) = run("11/11");
    assert_ne!(code, Some(0));
    assert!(stderr.contains("--date `11/11`"), "{stderr}");
}

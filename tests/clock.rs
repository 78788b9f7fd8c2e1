//! The response clock's contract, fixture by fixture, with exact expected numbers.
//! Fixtures are hand-written JSONL under `tests/data/clock/`; times are relative to
//! T = 2026-11-11T10:00:00+08:00.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use kefu::replay::{InputStats, replay};
use kefu::rules::response_time::ResponseRules;
use serde_json::{Value, json};

const T: i64 = 1_794_362_400_000;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/clock").join(name)
}

fn run(name: &str) -> (Value, InputStats) {
    let f = BufReader::new(File::open(fixture(name)).unwrap());
    let (report, stats) = replay(f, name, ResponseRules::default(), None).unwrap();
    (serde_json::to_value(report).unwrap(), stats)
}

/// The waits as (agent, start − T in ms, end − T in ms, outcome, response_s, deadline_s, load, first, breached).
fn waits(r: &Value) -> Vec<Value> {
    r["waits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            json!([
                w["agent"],
                w["start"].as_i64().unwrap() - T,
                w["end"].as_i64().unwrap() - T,
                w["outcome"],
                w["response_s"],
                w["deadline_s"],
                w["load"],
                w["first"],
                w["breached"]
            ])
        })
        .collect()
}

/// The alerts as (agent, wait_start − T, fired_at − T, deadline_s).
fn alerts(r: &Value) -> Vec<Value> {
    r["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            json!([
                a["agent"],
                a["wait_start"].as_i64().unwrap() - T,
                a["fired_at"].as_i64().unwrap() - T,
                a["deadline_s"]
            ])
        })
        .collect()
}

#[test]
fn merged_customer_messages_make_one_wait() {
    let (r, _) = run("merged.jsonl");
    assert_eq!(
        waits(&r),
        [
            json!(["a1", 0, 12_000, "answered", 12.0, 20.0, 1, true, false]),
            json!(["a1", 60_000, 90_000, "answered", 30.0, 20.0, 1, false, true]),
        ]
    );
    assert_eq!(alerts(&r), [json!(["a1", 60_000, 80_000, 20.0])]);
    assert_eq!(
        r["agents"],
        json!([{"agent":"a1","date":"2026-11-11","customers":1,"replied_customers":1,"reply_rate":1.0,
            "waits":2,"answered":2,"unanswered":0,"transferred":0,"breaches":1,
            "avg_response_s":21.0,"avg_first_response_s":12.0,"max_response_s":30.0}])
    );
    assert_eq!(r["waits"][0]["waited_s"], json!(12.0));
    assert_eq!(r["waits"][0]["customer"], json!("buyer-c1"));
    assert_eq!(r["waits"][0]["conversation"], json!("c1"));
}

#[test]
fn bot_and_system_messages_do_not_end_a_wait() {
    let (r, _) = run("bot.jsonl");
    assert_eq!(waits(&r), [json!(["a1", 0, 25_000, "answered", 25.0, 20.0, 1, true, true])]);
    assert_eq!(alerts(&r), [json!(["a1", 0, 20_000, 20.0])]);
}

#[test]
fn transfer_mid_wait_ends_it_and_starts_one_for_the_new_agent() {
    let (r, _) = run("transfer.jsonl");
    assert_eq!(
        waits(&r),
        [
            json!(["a1", 0, 10_000, "transferred", null, 20.0, 1, true, false]),
            json!(["a2", 10_000, 35_000, "answered", 25.0, 20.0, 1, true, true]),
        ]
    );
    assert_eq!(r["waits"][0]["waited_s"], json!(10.0));
    assert_eq!(alerts(&r), [json!(["a2", 10_000, 30_000, 20.0])]);
    let agents = &r["agents"];
    assert_eq!(agents[0]["agent"], "a1");
    assert_eq!((agents[0]["customers"].clone(), agents[0]["transferred"].clone()), (json!(1), json!(1)));
    assert_eq!(agents[0]["reply_rate"], json!(0.0));
    assert_eq!(agents[0]["avg_response_s"], Value::Null);
    assert_eq!(agents[1]["agent"], "a2");
    assert_eq!(agents[1]["customers"], json!(0));
    assert_eq!(agents[1]["reply_rate"], Value::Null);
    assert_eq!(agents[1]["avg_response_s"], json!(25.0));
}

#[test]
fn idle_close_ends_the_wait_at_last_message_plus_1800_s() {
    let (r, _) = run("idle.jsonl");
    // A message exactly 1800 s after the last one finds the session already closed.
    assert_eq!(
        waits(&r),
        [
            json!(["a1", 0, 1_800_000, "unanswered", null, 20.0, 1, true, true]),
            json!(["a1", 1_800_000, 1_805_000, "answered", 5.0, 20.0, 1, true, false]),
            json!(["a1", 3_605_000, 3_609_000, "answered", 4.0, 20.0, 1, true, false]),
        ]
    );
    assert_eq!(r["waits"][0]["waited_s"], json!(1800.0));
    assert_eq!(alerts(&r), [json!(["a1", 0, 20_000, 20.0])]);
    let a = &r["agents"][0];
    assert_eq!(
        [&a["waits"], &a["answered"], &a["unanswered"], &a["breaches"]],
        [&json!(3), &json!(2), &json!(1), &json!(1)]
    );
    assert_eq!(
        [&a["avg_response_s"], &a["avg_first_response_s"], &a["max_response_s"]],
        [&json!(4.5), &json!(4.5), &json!(5.0)]
    );
}

#[test]
fn close_event_ends_the_wait_unanswered() {
    let (r, _) = run("close.jsonl");
    assert_eq!(
        waits(&r),
        [
            json!(["a1", 0, 15_000, "unanswered", null, 20.0, 1, true, false]),
            json!(["a1", 100_000, 130_000, "unanswered", null, 20.0, 1, true, true]),
        ]
    );
    assert_eq!(alerts(&r), [json!(["a1", 100_000, 120_000, 20.0])]);
}

#[test]
fn a_reply_exactly_on_the_deadline_is_on_time() {
    let (r, _) = run("deadline.jsonl");
    assert_eq!(
        waits(&r),
        [
            json!(["a1", 0, 20_000, "answered", 20.0, 20.0, 1, true, false]),
            json!(["a1", 0, 20_001, "answered", 20.001, 20.0, 2, true, true]),
        ]
    );
    assert_eq!(r["waits"][1]["conversation"], "c2");
    assert_eq!(alerts(&r), [json!(["a1", 0, 20_000, 20.0])]);
    assert_eq!(r["alerts"][0]["conversation"], "c2");
}

#[test]
fn load_tiers_choose_20_or_60_seconds() {
    let (r, _) = run("load.jsonl");
    let by_conv: Vec<(String, i64, f64)> = r["waits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["conversation"].as_str().unwrap().to_string(),
                w["load"].as_i64().unwrap(),
                w["deadline_s"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_conv,
        [
            ("c1".into(), 1, 20.0),
            ("c2".into(), 2, 20.0),
            ("c3".into(), 3, 20.0),
            ("c4".into(), 4, 60.0),
            // c1's last message is older than the 300 s window at 10:05:01: it is not counted.
            ("c5".into(), 4, 60.0),
        ]
    );
    let c4 = &r["waits"][3];
    assert_eq!((c4["response_s"].clone(), c4["breached"].clone()), (json!(50.0), json!(false)));
    let c5 = &r["waits"][4];
    assert_eq!((c5["response_s"].clone(), c5["breached"].clone()), (json!(29.0), json!(false)));
    assert_eq!(
        alerts(&r),
        [
            json!(["a1", 0, 20_000, 20.0]),
            json!(["a1", 10_000, 30_000, 20.0]),
            json!(["a1", 20_000, 40_000, 20.0])
        ]
    );
}

#[test]
fn a_session_across_midnight_counts_waits_by_start_day_and_messages_by_their_day() {
    let (r, _) = run("midnight.jsonl");
    assert_eq!(
        r["agents"],
        json!([
            {"agent":"a1","date":"2026-11-11","customers":1,"replied_customers":0,"reply_rate":0.0,
             "waits":1,"answered":1,"unanswered":0,"transferred":0,"breaches":1,
             "avg_response_s":25.0,"avg_first_response_s":25.0,"max_response_s":25.0},
            {"agent":"a1","date":"2026-11-12","customers":1,"replied_customers":1,"reply_rate":1.0,
             "waits":1,"answered":1,"unanswered":0,"transferred":0,"breaches":0,
             "avg_response_s":4.0,"avg_first_response_s":null,"max_response_s":4.0}
        ])
    );
}

#[test]
fn offset_and_z_timestamps_are_the_same_clock() {
    let (r, _) = run("zones.jsonl");
    assert_eq!(
        waits(&r),
        [
            json!(["a1", 0, 7_250, "answered", 7.25, 20.0, 1, true, false]),
            json!(["a1", 30_500, 33_000, "answered", 2.5, 20.0, 1, false, false]),
        ]
    );
}

#[test]
fn bad_lines_are_reported_by_number_and_valid_events_kept() {
    let (r, stats) = run("bad.jsonl");
    let lines: Vec<usize> = stats.rejected.iter().map(|x| x.line).collect();
    assert_eq!(lines, [2, 3, 6, 7, 11]);
    assert!(stats.rejected[1].reason.contains("unknown event type `wave`"), "{:?}", stats.rejected[1]);
    assert!(stats.rejected[2].reason.contains("missing field `customer`"), "{:?}", stats.rejected[2]);
    assert!(stats.rejected[3].reason.contains("bad ts `yesterday`"), "{:?}", stats.rejected[3]);
    assert_eq!((stats.lines, stats.events, stats.duplicates), (11, 4, 2));
    assert_eq!(waits(&r), [json!(["a1", 0, 5_000, "answered", 5.0, 20.0, 1, true, false])]);
}

#[test]
fn the_table_without_json_keeps_no_wait_yet_reads_the_same() {
    use kefu::simulate::{SimConfig, generate};
    let events = generate(&SimConfig { events: 4_000, seed: 7, ..SimConfig::default() });
    let jsonl: String = events.iter().map(|e| e.to_json() + "\n").collect();
    let run = |keep: bool| {
        let input = std::io::Cursor::new(jsonl.clone().into_bytes());
        let guard = kefu::guard::Guard::load(None).ok();
        kefu::replay::replay_with(
            input,
            "e.jsonl",
            ResponseRules::default(),
            Default::default(),
            guard,
            None,
            keep,
        )
        .unwrap()
        .0
    };
    let (full, streamed) = (run(true), run(false));
    assert!(full.waits.len() > 1_000 && full.flags.len() > 5, "{} waits", full.waits.len());
    assert_eq!(streamed.agents, full.agents, "the per-agent days are the same");
    assert_eq!(streamed.to_table(), full.to_table(), "the table reads the same");
    assert!(streamed.waits.len() <= 5 && streamed.alerts.is_empty() && streamed.flags.len() <= 5);
}

//! Scoring benchmark: one month of a 200-agent shop (about 6 million events — messages,
//! orders, buyers' ratings — and the clock's waits in the database), scored from scratch.
//!
//! `cargo bench --bench scoring` (use `/usr/bin/time -v` around the bench binary for peak
//! memory). The database is generated on first run with the store and reused after:
//! `$KEFU_BENCH_DB` or `/tmp/kefu-bench-scoring.db`.

use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDate;
use kefu::event::{Event, EventKind, OrderStatus, Sender};
use kefu::scoring::{job, ledger, report, sheet::Sheet};
use kefu::store::Store;
use kefu::time::{Millis, shanghai_midnight};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

const AGENTS: usize = 200;
const DAYS: u32 = 30;
/// Conversations per agent per day; ~11 events each gives ~6 M events a month.
const CONVERSATIONS: usize = 90;

fn generate(store: &mut Store) {
    let mut rng = SmallRng::seed_from_u64(6);
    let start = NaiveDate::from_ymd_opt(2026, 11, 1).expect("valid date");
    let mut seq = 0u64;
    let mut buyer_no = 0u64;
    for day in 0..DAYS {
        let midnight = shanghai_midnight(start + chrono::Days::new(u64::from(day)));
        let mut events: Vec<Event> = Vec::with_capacity(AGENTS * CONVERSATIONS * 12);
        let mut waits: Vec<(String, Millis, Millis, String, String, &str, i64)> = Vec::new();
        for a in 0..AGENTS {
            let agent = format!("店铺:客服{a:03}");
            for _ in 0..CONVERSATIONS {
                buyer_no += 1;
                // Some buyers come back to a second agent: assists and follow-ups.
                let customer = if rng.gen_bool(0.1) && buyer_no > 1000 {
                    format!("tb{:08}", buyer_no - rng.gen_range(1..1000))
                } else {
                    format!("tb{buyer_no:08}")
                };
                let conversation = format!("c{buyer_no}");
                let mut ts = midnight + rng.gen_range(8 * 3_600_000..23 * 3_600_000);
                let mut id = || {
                    seq += 1;
                    format!("e{seq}")
                };
                let turns = rng.gen_range(3..=7);
                for _ in 0..turns {
                    let text = "在吗,这款有货吗?".to_string();
                    events.push(Event {
                        id: id(),
                        ts,
                        shop: "s".into(),
                        kind: EventKind::Message {
                            conversation: conversation.clone(),
                            customer: customer.clone(),
                            agent: agent.clone(),
                            from: Sender::Customer,
                            text,
                        },
                    });
                    let answered = rng.gen_bool(0.97);
                    let delay = if rng.gen_bool(0.9) {
                        rng.gen_range(2_000..25_000)
                    } else {
                        rng.gen_range(25_000..400_000)
                    };
                    if rng.gen_bool(0.03) {
                        events.push(Event {
                            id: id(),
                            ts: ts + 1_000,
                            shop: "s".into(),
                            kind: EventKind::Message {
                                conversation: conversation.clone(),
                                customer: customer.clone(),
                                agent: agent.clone(),
                                from: Sender::Bot,
                                text: "亲,客服马上来".into(),
                            },
                        });
                    }
                    if answered {
                        events.push(Event {
                            id: id(),
                            ts: ts + delay,
                            shop: "s".into(),
                            kind: EventKind::Message {
                                conversation: conversation.clone(),
                                customer: customer.clone(),
                                agent: agent.clone(),
                                from: Sender::Agent,
                                text: "亲,有货的哦".into(),
                            },
                        });
                    }
                    let outcome = if answered { "answered" } else { "unanswered" };
                    let end = if answered { ts + delay } else { ts + 1_800_000 };
                    waits.push((
                        conversation.clone(),
                        ts,
                        end,
                        customer.clone(),
                        agent.clone(),
                        outcome,
                        20_000,
                    ));
                    ts += delay + rng.gen_range(5_000..120_000);
                }
                // One buyer in five rates the agent (千牛 客服评价).
                if rng.gen_bool(0.2) {
                    events.push(Event {
                        id: id(),
                        ts: ts + 30_000,
                        shop: "s".into(),
                        kind: EventKind::Evaluation {
                            agent: agent.clone(),
                            customer: customer.clone(),
                            conversation: conversation.clone(),
                            score: rng.gen_range(1..=5),
                            tag: None,
                        },
                    });
                }
                if rng.gen_bool(0.3) {
                    let order = format!("o{buyer_no}");
                    let amount = Decimal::new(rng.gen_range(3_000..60_000), 2);
                    let shipping = Some(Decimal::new(1000, 2));
                    for (status, dt) in [(OrderStatus::Created, 60_000), (OrderStatus::Paid, 120_000)] {
                        events.push(Event {
                            id: id(),
                            ts: ts + dt,
                            shop: "s".into(),
                            kind: EventKind::Order {
                                customer: customer.clone(),
                                order: order.clone(),
                                status,
                                amount,
                                shipping,
                                shipment: None,
                            },
                        });
                    }
                }
            }
        }
        // A few silent orders a day.
        for _ in 0..200 {
            buyer_no += 1;
            let ts = midnight + rng.gen_range(0..86_400_000);
            for (status, dt) in [(OrderStatus::Created, 0), (OrderStatus::Paid, 60_000)] {
                seq += 1;
                events.push(Event {
                    id: format!("e{seq}"),
                    ts: ts + dt,
                    shop: "s".into(),
                    kind: EventKind::Order {
                        customer: format!("tb{buyer_no:08}"),
                        order: format!("o{buyer_no}"),
                        status,
                        amount: Decimal::new(9_900, 2),
                        shipping: None,
                        shipment: None,
                    },
                });
            }
        }
        events.sort_by_key(|e| e.ts);
        let bodies: Vec<String> = events.iter().map(Event::to_json).collect();
        store.insert_events(events.iter().zip(bodies.iter().map(String::as_str))).expect("insert events");
        let tx = store.conn_mut().transaction().expect("tx");
        {
            let mut st = tx
                .prepare("INSERT OR IGNORE INTO waits (conversation, start, end, shop, customer, agent, outcome, deadline_ms, load, first)
                 VALUES (?1, ?2, ?3, 's', ?4, ?5, ?6, ?7, 1, 0)")
                .expect("prepare");
            for w in &waits {
                st.execute(rusqlite::params![w.0, w.1, w.2, w.3, w.4, w.5, w.6]).expect("insert wait");
            }
        }
        tx.commit().expect("commit");
        // A handful of ledger entries per day.
        for a in (0..AGENTS).step_by(20) {
            let e = ledger::NewEntry {
                agent: format!("店铺:客服{a:03}"),
                day: start + chrono::Days::new(u64::from(day)),
                points: Decimal::from(-2),
                source: "guard",
                category: Some("不够耐心".into()),
                reason: "phrase guard".into(),
                reference: Some(format!("f{day}-{a}")),
                minutes: None,
            };
            ledger::add(store.conn(), &e, midnight).expect("ledger");
        }
        eprintln!("generated day {} ({} events so far)", day + 1, seq);
    }
}

fn main() {
    let path = std::env::var_os("KEFU_BENCH_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/kefu-bench-scoring.db"));
    let fresh = !path.exists();
    let mut store = Store::open(&path).expect("open bench db");
    if fresh || store.event_count().expect("count") == 0 {
        let t = Instant::now();
        generate(&mut store);
        eprintln!("generated in {:.1} s", t.elapsed().as_secs_f64());
    }
    let events = store.event_count().expect("count");
    let waits: i64 = store.conn().query_row("SELECT COUNT(*) FROM waits", [], |r| r.get(0)).expect("waits");
    let sheet = Sheet::default();
    let from = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
    let to = NaiveDate::from_ymd_opt(2026, 11, 30).expect("date");
    let t = Instant::now();
    let out = job::score_range(&mut store, &sheet, from, to, 0).expect("score");
    let scored = t.elapsed();
    let dir = std::env::temp_dir().join("kefu-bench-reports");
    let t = Instant::now();
    let files = report::write_all(store.conn(), &sheet, &dir, &out.days, &out.months).expect("reports");
    let reports = t.elapsed();
    let agents: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM scores WHERE month = '2026-11'", [], |r| r.get(0))
        .expect("n");
    println!(
        "scoring: {events} events, {waits} waits in db; scored {} days ({} events streamed incl. look-back), {agents} agents in {:.2} s ({:.0} events/s); {} report files in {:.2} s",
        out.days.len(),
        out.events,
        scored.as_secs_f64(),
        out.events as f64 / scored.as_secs_f64(),
        files.len(),
        reports.as_secs_f64()
    );
}

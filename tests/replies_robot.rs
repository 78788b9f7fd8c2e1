//! The robot in virtual time (issue 15): rules and shifts with dates, a 双11 roster, two
//! shops on one kefu, a busy agent under load, 催付. The robot takes time as an argument;
//! every test passes event times and never sleeps.

use std::path::Path;
use std::sync::Arc;

use kefu::engine::Engine;
use kefu::event::{Event, EventKind, OrderStatus, Presence, Sender};
use kefu::replies::robot::{Reason, RobotAction};
use kefu::replies::{Replies, auto, settings, shifts};
use kefu::time::{Millis, parse_rfc3339_ms};
use rust_decimal::Decimal;

const SHOP: &str = "毛菇小象";

/// The robot beside the engine whose session and wait outputs it takes, as the runtime
/// runs them.
struct Robot {
    robot: kefu::replies::robot::Robot,
    engine: Engine,
}

impl Robot {
    fn new(replies: Arc<Replies>) -> Self {
        let rules = kefu::rules::response_time::ResponseRules::default();
        Self {
            robot: kefu::replies::robot::Robot::new(replies),
            engine: Engine::new(rules, kefu::alerts::Plan::default()),
        }
    }

    fn handle(&mut self, ev: &Event, now: Millis) -> Vec<RobotAction> {
        let mut out = Vec::new();
        self.engine.handle(ev, &mut out, &mut Vec::new());
        self.robot.handle(ev, &out, now)
    }

    fn advance(&mut self, now: Millis) -> Vec<RobotAction> {
        self.robot.advance(now)
    }
}

fn at(s: &str) -> Millis {
    parse_rfc3339_ms(s).unwrap()
}

fn shipped(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap()
}

/// The shipped set with `auto.toml` rules appended, `robot.toml` lines replaced and
/// `shifts.toml` replaced, each when given.
fn replies(extra_rules: &str, robot_edits: &[(&str, &str)], shifts_text: Option<&str>) -> Arc<Replies> {
    let mut r = kefu::replies::load(None, None).unwrap();
    if !extra_rules.is_empty() {
        let text = format!("{}\n{extra_rules}", shipped("replies/auto.toml"));
        r.auto = auto::parse(Path::new("auto.toml"), &text).unwrap();
    }
    let mut robot = shipped("replies/robot.toml");
    for (from, to) in robot_edits {
        assert!(robot.contains(from), "robot.toml has no `{from}`");
        robot = robot.replacen(from, to, 1);
    }
    r.robot = settings::parse(Path::new("robot.toml"), &robot).unwrap();
    if let Some(s) = shifts_text {
        r.shifts = shifts::parse(Path::new("shifts.toml"), s).unwrap();
    }
    Arc::new(r)
}

fn ev(ts: Millis, shop: &str, kind: EventKind) -> Event {
    Event { id: format!("e{ts}"), ts, shop: shop.into(), kind }
}

fn msg(ts: Millis, shop: &str, conv: &str, agent: &str, from: Sender, text: &str) -> Event {
    let kind = EventKind::Message {
        conversation: conv.into(),
        customer: format!("tb_{conv}"),
        agent: agent.into(),
        from,
        text: text.into(),
    };
    ev(ts, shop, kind)
}

fn presence(ts: Millis, agent: &str, status: Presence) -> Event {
    ev(ts, SHOP, EventKind::Presence { agent: agent.into(), status })
}

fn order(ts: Millis, conv: &str, id: &str, status: OrderStatus) -> Event {
    let kind = EventKind::Order {
        customer: format!("tb_{conv}"),
        order: id.into(),
        status,
        amount: Decimal::new(19900, 2),
        shipping: None,
        shipment: None,
    };
    ev(ts, SHOP, kind)
}

/// The robot's sends as (conversation, reason, rule, text).
fn sends(out: &[RobotAction]) -> Vec<(String, Reason, Option<String>, String)> {
    out.iter()
        .filter_map(|a| match a {
            RobotAction::Send { conversation, text, reason, rule, .. } => {
                Some((conversation.clone(), *reason, rule.clone(), text.clone()))
            }
            _ => None,
        })
        .collect()
}

fn answer_rule(out: &[RobotAction], reason: Reason) -> Option<String> {
    sends(out).into_iter().find(|s| s.1 == reason).and_then(|s| s.2)
}

#[test]
fn a_rule_dated_11_01_to_11_03_answers_on_11_02_and_not_on_11_04() {
    let rule = r#"
[[rule]]
id = "jhs-red-packet"
category = "活动优惠"
question = "聚划算红包怎么领"
any = ["红包"]
start = "2026-11-01"
end = "2026-11-03"
answers = ["亲,聚划算红包在活动页面顶部领取哦~"]
priority = 20
"#;
    let r = replies(rule, &[], None);
    for (day, want) in [("2026-11-02", Some("jhs-red-packet")), ("2026-11-04", None)] {
        let mut robot = Robot::new(r.clone());
        let t = at(&format!("{day}T10:00:00+08:00"));
        robot.handle(&presence(t - 1_000, "小美", Presence::Away), t);
        let out = robot.handle(&msg(t, SHOP, "c1", "小美", Sender::Customer, "聚划算红包怎么领"), t);
        assert_eq!(answer_rule(&out, Reason::Away).as_deref(), want, "{day}: {out:?}");
    }
}

#[test]
fn the_11_11_roster_overrides_the_weekly_shift() {
    let shifts_text = r#"
[[shift]]
name = "白班"
start = "08:30"
end = "16:30"

[[shift]]
name = "晚班"
start = "16:00"
end = "24:00"

[agents]
"小美" = ["白班"]

[roster."2026-11-11"]
"小美" = ["晚班"]
"#;
    let r = replies("", &[], Some(shifts_text));
    // 10:00: on the weekly 白班 on 11-10 and 11-12, off on 11-11 (the roster says 晚班).
    for (day, away) in [("2026-11-10", false), ("2026-11-11", true), ("2026-11-12", false)] {
        let mut robot = Robot::new(r.clone());
        let t = at(&format!("{day}T10:00:00+08:00"));
        robot.handle(&presence(t - 1_000, "小美", Presence::Online), t);
        let out = robot.handle(&msg(t, SHOP, "c1", "小美", Sender::Customer, "发什么快递"), t);
        assert_eq!(answer_rule(&out, Reason::Away).is_some(), away, "{day}: {out:?}");
    }
    let mut robot = Robot::new(r);
    let t = at("2026-11-11T20:00:00+08:00");
    robot.handle(&presence(t - 1_000, "小美", Presence::Online), t);
    let out = robot.handle(&msg(t, SHOP, "c1", "小美", Sender::Customer, "发什么快递"), t);
    assert_eq!(answer_rule(&out, Reason::Away), None, "on the roster's 晚班 at 20:00");
}

#[test]
fn two_shops_on_one_kefu_get_their_own_answers() {
    let rules = r#"
[[rule]]
id = "express"
category = "发货查件"
question = "发什么快递"
shop = "茶小铺"
any = ["快递"]
answers = ["亲,茶叶默认发顺丰,保证新鲜~"]

[[rule]]
id = "express"
category = "发货查件"
question = "发什么快递"
shop = "茶小铺"
agent = "阿茶"
any = ["快递"]
answers = ["亲,阿茶的客户都发京东哦~"]
"#;
    let r = replies(rules, &[], None);
    let mut robot = Robot::new(r);
    let t = at("2026-11-11T10:00:00+08:00");
    for a in ["小美", "阿茶", "阿叶"] {
        robot.handle(&presence(t, a, Presence::Away), t);
    }
    let cases = [
        (SHOP, "c1", "小美", "中通"),
        ("茶小铺", "c2", "阿叶", "顺丰,保证新鲜"),
        ("茶小铺", "c3", "阿茶", "京东"),
    ];
    for (shop, conv, agent, want) in cases {
        let out = robot.handle(&msg(t, shop, conv, agent, Sender::Customer, "发什么快递"), t);
        let s = sends(&out).into_iter().find(|s| s.1 == Reason::Away).expect("an answer");
        assert!(s.3.contains(want), "{shop}/{agent}: {}", s.3);
        assert!(
            out.iter().any(
                |a| matches!(a, RobotAction::Hit { shop: s, rule, .. } if s == shop && rule == "express")
            ),
            "the hit is the shop's"
        );
    }
}

#[test]
fn a_busy_agent_with_4_buyers_waiting_has_known_questions_answered_at_once() {
    let r = replies("", &[("load_answer_above = 0", "load_answer_above = 3")], None);
    let mut robot = Robot::new(r);
    let t = at("2026-11-11T10:00:00+08:00");
    robot.handle(&presence(t, "小美", Presence::Busy), t);
    for i in 0..3 {
        let out = robot
            .handle(&msg(t + i, SHOP, &format!("w{i}"), "小美", Sender::Customer, "你们老板是谁"), t + i);
        assert!(sends(&out).iter().all(|s| s.1 == Reason::Greeting), "{out:?}");
    }
    // The fourth waiting buyer asks a known question: answered at once.
    let out = robot.handle(&msg(t + 10, SHOP, "w3", "小美", Sender::Customer, "发什么快递"), t + 10);
    assert_eq!(answer_rule(&out, Reason::Load).as_deref(), Some("express"), "{out:?}");
    // A fifth asks what no rule knows: left to the agent (the rescue still stands).
    let out =
        robot.handle(&msg(t + 20, SHOP, "w4", "小美", Sender::Customer, "这条裙子和那条哪个好"), t + 20);
    assert!(sends(&out).iter().all(|s| s.1 == Reason::Greeting), "{out:?}");
    // The agent answers three of the waits: two left waiting, no more 人工优先.
    for i in 0..3 {
        robot.handle(&msg(t + 30 + i, SHOP, &format!("w{i}"), "小美", Sender::Agent, "在的"), t + 30 + i);
    }
    let out = robot.handle(&msg(t + 40, SHOP, "w5", "小美", Sender::Customer, "发什么快递"), t + 40);
    assert_eq!(answer_rule(&out, Reason::Load), None, "{out:?}");
    // `busy` is not away unless the shop says so.
    assert_eq!(answer_rule(&out, Reason::Away), None);
    let r = replies("", &[("busy_is_away = false", "busy_is_away = true")], None);
    let mut robot = Robot::new(r);
    robot.handle(&presence(t, "小美", Presence::Busy), t);
    let out = robot.handle(&msg(t, SHOP, "c1", "小美", Sender::Customer, "发什么快递"), t);
    assert_eq!(answer_rule(&out, Reason::Away).as_deref(), Some("express"));
}

/// Runs an order's life through a robot: events at their times, then the clock to `until`;
/// returns the 催付 sends and the reminder figures.
fn reminders(events: &[Event], until: Millis) -> (usize, usize) {
    let mut robot = Robot::new(replies("", &[], None));
    let mut out = Vec::new();
    // The clock ticks every minute between events, as the live runtime's wakeups would.
    let mut t = events.first().map_or(until, |e| e.ts);
    for e in events {
        while t + 60_000 < e.ts {
            t += 60_000;
            out.extend(robot.advance(t));
        }
        out.extend(robot.handle(e, e.ts));
        t = e.ts;
    }
    while t < until {
        t += 60_000;
        out.extend(robot.advance(t));
    }
    let sent = sends(&out).iter().filter(|s| s.1 == Reason::PaymentReminder).count();
    let figures = out
        .iter()
        .filter(|a| {
            matches!(a, RobotAction::Figure { kind: kefu::replies::robot::FigureKind::Reminder, shop, .. } if shop == SHOP)
        })
        .count();
    (sent, figures)
}

#[test]
fn a_created_order_gets_one_reminder_after_the_set_time() {
    let t = at("2026-11-11T10:00:00+08:00");
    let half_hour = 30 * 60_000;
    let chat = msg(t - 60_000, SHOP, "c1", "小美", Sender::Customer, "这件有M码吗");
    let created = order(t, "c1", "T1", OrderStatus::Created);
    // Unpaid: one reminder at exactly 30 min, in the buyer's conversation, counted for the shop.
    let mut robot = Robot::new(replies("", &[], None));
    robot.handle(&chat, chat.ts);
    robot.handle(&created, t);
    assert!(sends(&robot.advance(t + half_hour - 1)).is_empty());
    let out = robot.advance(t + half_hour);
    let s = sends(&out);
    assert_eq!(s.len(), 1, "{out:?}");
    assert_eq!((s[0].0.as_str(), s[0].1), ("c1", Reason::PaymentReminder));
    assert!(s[0].3.contains("T1"), "{}", s[0].3);
    assert_eq!(reminders(&[chat.clone(), created.clone()], t + 3 * half_hour), (1, 1));
    // Paid before the time: none.
    let paid = order(t + 10 * 60_000, "c1", "T1", OrderStatus::Paid);
    assert_eq!(reminders(&[chat.clone(), created.clone(), paid], t + 3 * half_hour), (0, 0));
    // Closed before the time: none.
    let closed = order(t + 10 * 60_000, "c1", "T1", OrderStatus::Closed);
    assert_eq!(reminders(&[chat.clone(), created.clone(), closed], t + 3 * half_hour), (0, 0));
    // Never twice, even if the platform repeats the created event.
    let again = order(t + 40 * 60_000, "c1", "T1", OrderStatus::Created);
    assert_eq!(reminders(&[chat.clone(), created, again], t + 6 * half_hour), (1, 1));
    // Created at 21:50, due 22:20: quiet hours (22:00-08:00), none — not the next morning either.
    let late = at("2026-11-11T21:50:00+08:00");
    let chat = msg(late - 60_000, SHOP, "c1", "小美", Sender::Customer, "在吗");
    let created = order(late, "c1", "T2", OrderStatus::Created);
    assert_eq!(reminders(&[chat, created], late + 24 * 3_600_000), (0, 0));
}

//! The clock's report: every wait, per-agent daily figures and the breach alerts.
//!
//! Built from the event stream and the clock's outputs by [`ReportBuilder`], the same way
//! in replay, from the database and live, so the three agree to the millisecond.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;

use crate::alerts::{Kind, Notice};
use crate::engine::{Outcome, Output, Wait};
use crate::event::{Event, EventKind, Sender};
use crate::privacy::mask_id;
use crate::time::{Millis, display_shanghai, shanghai_day};

/// One finished wait, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitRow {
    /// Conversation id.
    pub conversation: String,
    /// Buyer id (raw in JSON, which is data; masked in the readable table).
    pub customer: String,
    /// The agent the wait belonged to.
    pub agent: String,
    /// Start, UTC ms.
    pub start: Millis,
    /// End, UTC ms.
    pub end: Millis,
    /// `answered`, `unanswered` or `transferred`.
    pub outcome: Outcome,
    /// end − start, seconds.
    pub waited_s: f64,
    /// waited_s for answered waits, else null.
    pub response_s: Option<f64>,
    /// Deadline, seconds.
    pub deadline_s: f64,
    /// The agent's load at the start.
    pub load: u32,
    /// First wait of the session.
    pub first: bool,
    /// waited > deadline.
    pub breached: bool,
}

/// One agent's figures for one Asia/Shanghai day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentDay {
    /// Agent id.
    pub agent: String,
    /// `YYYY-MM-DD`, Asia/Shanghai.
    pub date: String,
    /// Distinct buyers who wrote in a conversation assigned to the agent that day.
    pub customers: u32,
    /// Of those, the ones the agent wrote to that day.
    pub replied_customers: u32,
    /// replied_customers / customers (4 decimals), null with no customers.
    pub reply_rate: Option<f64>,
    /// Waits that started that day.
    pub waits: u32,
    /// Of those, answered.
    pub answered: u32,
    /// Of those, unanswered.
    pub unanswered: u32,
    /// Of those, transferred.
    pub transferred: u32,
    /// Of those, breached.
    pub breaches: u32,
    /// Mean response over answered waits, seconds.
    pub avg_response_s: Option<f64>,
    /// Mean response over answered first waits, seconds.
    pub avg_first_response_s: Option<f64>,
    /// Longest response over answered waits, seconds.
    pub max_response_s: Option<f64>,
}

/// A breach alert the clock raised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    /// Conversation id.
    pub conversation: String,
    /// The agent who owed the answer.
    pub agent: String,
    /// When the wait started, UTC ms.
    pub wait_start: Millis,
    /// When the alert was due (start + deadline), UTC ms.
    pub fired_at: Millis,
    /// Deadline, seconds.
    pub deadline_s: f64,
}

/// The whole report (the `--json` output).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Report {
    /// Every wait, by start then conversation.
    pub waits: Vec<WaitRow>,
    /// Per agent and day, by agent then date.
    pub agents: Vec<AgentDay>,
    /// Breach alerts, by due time then conversation.
    pub alerts: Vec<AlertRow>,
    /// Phrase-guard findings in input order, personal data masked.
    pub flags: Vec<crate::guard::Flag>,
    /// Set by a streaming build ([`ReportBuilder::streaming`]): the counts of what was not
    /// kept. `waits`, `alerts` and `flags` then hold only the last few, for the table.
    #[serde(skip)]
    pub totals: Option<Totals>,
}

/// Counts a streaming report keeps instead of the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Waits ended.
    pub waits: usize,
    /// Of them breached.
    pub breached: usize,
    /// Breach alerts.
    pub alerts: usize,
    /// Guard findings.
    pub flags: usize,
    /// Of them critical.
    pub critical: usize,
}

/// Rows of each kind a streaming report keeps for the table.
const KEEP_LAST: usize = 5;

#[derive(Default)]
struct DayAcc {
    customers: HashSet<u32>,
    replied: HashSet<u32>,
    waits: u32,
    answered: u32,
    unanswered: u32,
    transferred: u32,
    breaches: u32,
    response_sum: i64,
    first_sum: i64,
    first_count: u32,
    max_response: Option<i64>,
}

/// Accumulates a [`Report`] from events and clock outputs.
#[derive(Default)]
pub struct ReportBuilder {
    agents: HashMap<Arc<str>, u32>,
    agent_names: Vec<Arc<str>>,
    customers: HashMap<Box<str>, u32>,
    days: HashMap<(u32, NaiveDate), DayAcc>,
    waits: Vec<Wait>,
    breaches: Vec<Notice>,
    flags: Vec<crate::guard::Flag>,
    /// Streaming: only the per-agent days are accumulated; rows are counted, and the last
    /// few breached waits (by start, conversation, end) and flags kept for the table.
    streaming: Option<Totals>,
}

impl ReportBuilder {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty report that keeps only the per-agent days and counts (memory independent
    /// of how many waits there are): for the table, not for `--json`.
    pub fn streaming() -> Self {
        Self { streaming: Some(Totals::default()), ..Self::default() }
    }

    fn agent(&mut self, name: &str) -> u32 {
        if let Some(&a) = self.agents.get(name) {
            return a;
        }
        let id = self.agent_names.len() as u32;
        let name: Arc<str> = name.into();
        self.agent_names.push(name.clone());
        self.agents.insert(name, id);
        id
    }

    fn customer(&mut self, name: &str) -> u32 {
        if let Some(&c) = self.customers.get(name) {
            return c;
        }
        let id = self.customers.len() as u32;
        self.customers.insert(name.into(), id);
        id
    }

    /// Counts a message toward customers / replied customers.
    pub fn add_event(&mut self, event: &Event) {
        let EventKind::Message { customer, agent, from, .. } = &event.kind else { return };
        if !matches!(from, Sender::Customer | Sender::Agent) {
            return;
        }
        let key = (self.agent(agent), shanghai_day(event.ts));
        let cust = self.customer(customer);
        let acc = self.days.entry(key).or_default();
        if *from == Sender::Customer {
            acc.customers.insert(cust);
        } else {
            acc.replied.insert(cust);
        }
    }

    /// Takes the engine's outputs (the finished waits).
    pub fn add_outputs(&mut self, outputs: &[Output]) {
        for o in outputs {
            if let Output::WaitEnded(w) = o {
                self.add_wait(w.clone());
            }
        }
    }

    /// Takes the engine's notices; the report lists the breaches.
    pub fn add_notices(&mut self, notices: &[Notice]) {
        let breaches = notices.iter().filter(|n| n.kind == Kind::Breach);
        match self.streaming.as_mut() {
            Some(t) => t.alerts += breaches.count(),
            None => self.breaches.extend(breaches.cloned()),
        }
    }

    /// Takes one finished wait.
    pub fn add_wait(&mut self, w: Wait) {
        let key = (self.agent(&w.agent), shanghai_day(w.start));
        let acc = self.days.entry(key).or_default();
        acc.waits += 1;
        match w.outcome {
            Outcome::Answered => {
                let r = w.waited_ms();
                acc.answered += 1;
                acc.response_sum += r;
                acc.max_response = Some(acc.max_response.map_or(r, |m| m.max(r)));
                if w.first {
                    acc.first_sum += r;
                    acc.first_count += 1;
                }
            }
            Outcome::Unanswered => acc.unanswered += 1,
            Outcome::Transferred => acc.transferred += 1,
        }
        let breached = w.breached();
        if breached {
            acc.breaches += 1;
        }
        let Some(totals) = self.streaming.as_mut() else {
            self.waits.push(w);
            return;
        };
        totals.waits += 1;
        if !breached {
            return;
        }
        totals.breached += 1;
        // Keep the KEEP_LAST greatest by the report's order; waits end roughly in order.
        let key = |w: &Wait| (w.start, w.conversation.clone(), w.end);
        let pos = self.waits.iter().position(|k| key(k) > key(&w)).unwrap_or(self.waits.len());
        self.waits.insert(pos, w);
        if self.waits.len() > KEEP_LAST {
            self.waits.remove(0);
        }
    }

    /// Adds a message's phrase-guard findings.
    pub fn add_flags(&mut self, flags: &[crate::guard::Flag]) {
        self.flags.extend_from_slice(flags);
        if let Some(t) = self.streaming.as_mut() {
            t.flags += flags.len();
            t.critical += flags.iter().filter(|f| f.severity == crate::guard::Severity::Critical).count();
            let extra = self.flags.len().saturating_sub(KEEP_LAST);
            self.flags.drain(..extra);
        }
    }

    /// The finished report.
    pub fn build(self) -> Report {
        let mut waits: Vec<WaitRow> = self
            .waits
            .into_iter()
            .map(|w| WaitRow {
                waited_s: secs(w.waited_ms()),
                response_s: w.response_ms().map(secs),
                deadline_s: secs(w.deadline_ms),
                breached: w.breached(),
                conversation: w.conversation.to_string(),
                customer: w.customer.to_string(),
                agent: w.agent.to_string(),
                start: w.start,
                end: w.end,
                outcome: w.outcome,
                load: w.load,
                first: w.first,
            })
            .collect();
        waits.sort_by(|a, b| (a.start, &a.conversation, a.end).cmp(&(b.start, &b.conversation, b.end)));
        let mut agents: Vec<AgentDay> = self
            .days
            .into_iter()
            .map(|((a, day), acc)| {
                let replied = acc.customers.intersection(&acc.replied).count() as u32;
                let customers = acc.customers.len() as u32;
                AgentDay {
                    agent: self.agent_names[a as usize].to_string(),
                    date: day.format("%Y-%m-%d").to_string(),
                    customers,
                    replied_customers: replied,
                    reply_rate: ratio(replied, customers),
                    waits: acc.waits,
                    answered: acc.answered,
                    unanswered: acc.unanswered,
                    transferred: acc.transferred,
                    breaches: acc.breaches,
                    avg_response_s: mean_s(acc.response_sum, acc.answered),
                    avg_first_response_s: mean_s(acc.first_sum, acc.first_count),
                    max_response_s: acc.max_response.map(secs),
                }
            })
            .filter(|d| d.customers > 0 || d.waits > 0)
            .collect();
        agents.sort_by(|a, b| (&a.agent, &a.date).cmp(&(&b.agent, &b.date)));
        let mut alerts: Vec<AlertRow> = self
            .breaches
            .into_iter()
            .map(|b| AlertRow {
                conversation: b.conversation,
                agent: b.agent,
                wait_start: b.wait_start,
                fired_at: b.due_at,
                deadline_s: secs(b.deadline_ms),
            })
            .collect();
        alerts.sort_by(|a, b| (a.fired_at, &a.conversation).cmp(&(b.fired_at, &b.conversation)));
        Report { waits, agents, alerts, flags: self.flags, totals: self.streaming }
    }
}

/// Milliseconds as seconds with millisecond precision.
fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Mean of `count` millisecond values, rounded half-up to the millisecond, in seconds.
fn mean_s(sum: i64, count: u32) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let n = i64::from(count);
    Some(secs((2 * sum + n).div_euclid(2 * n)))
}

/// num / den rounded half-up to 4 decimals.
fn ratio(num: u32, den: u32) -> Option<f64> {
    if den == 0 {
        return None;
    }
    let (n, d) = (u64::from(num), u64::from(den));
    Some(((20_000 * n + d) / (2 * d)) as f64 / 10_000.0)
}

impl Report {
    /// The readable per-agent table (buyer ids masked; platform text escaped, so an ESC
    /// sequence or a line break in an id or a message is shown, never obeyed).
    pub fn to_table(&self) -> String {
        use crate::textio::escape_for_terminal as t;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<12} {:<10} {:>5} {:>7} {:>6} {:>5} {:>5} {:>5} {:>5} {:>6} {:>8} {:>8} {:>8}",
            "agent",
            "date",
            "buyers",
            "replied",
            "rate",
            "waits",
            "ans",
            "unans",
            "xfer",
            "breach",
            "avg_s",
            "first_s",
            "max_s"
        );
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        for a in &self.agents {
            let _ = writeln!(
                s,
                "{:<12} {:<10} {:>5} {:>7} {:>6} {:>5} {:>5} {:>5} {:>5} {:>6} {:>8} {:>8} {:>8}",
                t(&a.agent),
                t(&a.date),
                a.customers,
                a.replied_customers,
                a.reply_rate.map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
                a.waits,
                a.answered,
                a.unanswered,
                a.transferred,
                a.breaches,
                opt(a.avg_response_s),
                opt(a.avg_first_response_s),
                opt(a.max_response_s),
            );
        }
        let breached: Vec<&WaitRow> = self.waits.iter().filter(|w| w.breached).collect();
        let critical =
            || self.flags.iter().filter(|f| f.severity == crate::guard::Severity::Critical).count();
        let totals = self.totals.unwrap_or_else(|| Totals {
            waits: self.waits.len(),
            breached: breached.len(),
            alerts: self.alerts.len(),
            flags: self.flags.len(),
            critical: critical(),
        });
        let _ =
            writeln!(s, "\n{} waits, {} breached, {} alerts", totals.waits, totals.breached, totals.alerts);
        if totals.flags > 0 {
            let _ = writeln!(s, "{} guard flags, {} critical", totals.flags, totals.critical);
            for f in self.flags.iter().rev().take(5).rev() {
                let _ = writeln!(
                    s,
                    "  flag: {} [{}] {} \"{}\" ({} chars {}..{}, {} points)",
                    t(&f.agent),
                    f.severity.as_str(),
                    t(&f.category),
                    t(&f.matched),
                    t(&f.message_id),
                    f.start,
                    f.end,
                    f.points
                );
            }
        }
        for w in breached.iter().rev().take(5).rev() {
            let _ = writeln!(
                s,
                "  breach: {} buyer {} waited {:.1}s (deadline {}s, load {}) from {} [{}]",
                t(&w.agent),
                t(&mask_id(&w.customer)),
                w.waited_s,
                w.deadline_s,
                w.load,
                display_shanghai(w.start),
                w.outcome.as_str()
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_up() {
        assert_eq!(mean_s(3, 2), Some(0.002));
        assert_eq!(mean_s(20_001, 2), Some(10.001));
        assert_eq!(ratio(2, 3), Some(0.6667));
        assert_eq!(ratio(1, 8), Some(0.125));
        assert_eq!(ratio(0, 0), None);
    }
}

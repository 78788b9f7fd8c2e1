//! The conversation view's data: one conversation's day read from the database on request
//! (events, ended waits, phrase-guard findings with their spans), masked for people.

use std::collections::HashMap;

use chrono::{Days, NaiveDate};
use rusqlite::{Connection, params};

use crate::alerts::notice::mask_text;
use crate::event::{EventKind, Sender};
use crate::privacy::mask_id;
use crate::time::{Millis, shanghai_midnight};

/// A piece of a message: plain, or covered by a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The text, personal data masked.
    pub text: String,
    /// The finding covering it: category, severity, points.
    pub finding: Option<(String, String, i32)>,
}

/// Who a line is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The buyer.
    Buyer,
    /// A human agent.
    Agent,
    /// The robot.
    Robot,
    /// The platform.
    System,
    /// A transfer, close or other happening.
    Note,
}

impl Who {
    /// CSS class and label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buyer => "buyer",
            Self::Agent => "agent",
            Self::Robot => "robot",
            Self::System => "system",
            Self::Note => "note",
        }
    }
}

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// When.
    pub ts: Millis,
    /// From whom.
    pub who: Who,
    /// Name shown: the masked buyer, the agent id, or what happened.
    pub name: String,
    /// The text in pieces.
    pub segments: Vec<Segment>,
}

/// A wait of the conversation, as the clock ended it (or running now).
#[derive(Debug, Clone, PartialEq)]
pub struct WaitMark {
    /// Start.
    pub start: Millis,
    /// End; none while it runs.
    pub end: Option<Millis>,
    /// answered / unanswered / transferred / waiting.
    pub outcome: String,
    /// Deadline, ms.
    pub deadline_ms: i64,
    /// The agent's load at the start.
    pub load: u32,
    /// The agent who owed the answer.
    pub agent: String,
}

impl WaitMark {
    /// Waited longer than its deadline (at `now` for a running wait).
    pub fn breached(&self, now: Millis) -> bool {
        self.end.unwrap_or(now) - self.start > self.deadline_ms
    }
}

/// A conversation's day.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// Conversation id.
    pub conversation: String,
    /// The day.
    pub day: Option<NaiveDate>,
    /// Shop (of its first event that day).
    pub shop: String,
    /// Every agent named in it that day.
    pub agents: Vec<String>,
    /// Lines in event order.
    pub lines: Vec<Line>,
    /// Its waits that day, by start.
    pub waits: Vec<WaitMark>,
    /// Findings that day.
    pub findings: usize,
}

struct StoredFinding {
    category: String,
    severity: String,
    points: i32,
    start: usize,
    end: usize,
}

/// Reads a conversation's Asia/Shanghai day. An empty transcript means no event that day.
pub fn read(conn: &Connection, conversation: &str, day: NaiveDate) -> rusqlite::Result<Transcript> {
    let from = shanghai_midnight(day);
    let to = day.checked_add_days(Days::new(1)).map_or(Millis::MAX, shanghai_midnight);
    let mut t = Transcript { conversation: conversation.into(), day: Some(day), ..Transcript::default() };
    let mut findings: HashMap<String, Vec<StoredFinding>> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT message_id, category, severity, points, start, end FROM flags \
         WHERE conversation = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY start",
    )?;
    let rows = stmt.query_map(params![conversation, from, to], |r| {
        let f = StoredFinding {
            category: r.get(1)?,
            severity: r.get(2)?,
            points: r.get(3)?,
            start: r.get::<_, i64>(4)?.max(0) as usize,
            end: r.get::<_, i64>(5)?.max(0) as usize,
        };
        Ok((r.get::<_, String>(0)?, f))
    })?;
    for r in rows {
        let (id, f) = r?;
        t.findings += 1;
        findings.entry(id).or_default().push(f);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT body FROM events WHERE ts >= ?2 AND ts < ?3 AND conversation = ?1 ORDER BY ts, seq",
    )?;
    let bodies = stmt.query_map(params![conversation, from, to], |r| r.get::<_, String>(0))?;
    for body in bodies {
        let Ok(e) = crate::event::parse(&body?) else { continue };
        if t.shop.is_empty() {
            t.shop.clone_from(&e.shop);
        }
        if let Some(a) = e.agent().filter(|a| !t.agents.iter().any(|x| x == a)) {
            t.agents.push(a.to_string());
        }
        let (who, name, text) = match &e.kind {
            EventKind::Message { customer, agent, from, text, .. } => match from {
                Sender::Customer => (Who::Buyer, mask_id(customer), text.as_str()),
                Sender::Agent => (Who::Agent, agent.clone(), text.as_str()),
                Sender::Bot => (Who::Robot, "robot".into(), text.as_str()),
                Sender::System => (Who::System, "system".into(), text.as_str()),
            },
            EventKind::Transfer { from_agent, to_agent, .. } => {
                (Who::Note, format!("transfer {from_agent} → {to_agent}"), "")
            }
            EventKind::Close { .. } => (Who::Note, "closed".into(), ""),
            _ => continue,
        };
        let segments = segments(text, findings.get(&e.id).map_or(&[][..], Vec::as_slice));
        t.lines.push(Line { ts: e.ts, who, name, segments });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT start, end, outcome, deadline_ms, load, agent FROM waits \
         WHERE conversation = ?1 AND start >= ?2 AND start < ?3 ORDER BY start",
    )?;
    let waits = stmt.query_map(params![conversation, from, to], |r| {
        Ok(WaitMark {
            start: r.get(0)?,
            end: Some(r.get(1)?),
            outcome: r.get(2)?,
            deadline_ms: r.get(3)?,
            load: r.get(4)?,
            agent: r.get(5)?,
        })
    })?;
    t.waits = waits.collect::<Result<_, _>>()?;
    Ok(t)
}

/// Cuts `text` at the findings' character spans; each piece is masked on its own, so a
/// highlighted phone number shows masked and still highlighted.
fn segments(text: &str, findings: &[StoredFinding]) -> Vec<Segment> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut cuts: Vec<usize> = vec![0, n];
    for f in findings {
        cuts.push(f.start.min(n));
        cuts.push(f.end.min(n));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<Segment> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a == b {
            continue;
        }
        let piece: String = chars[a..b].iter().collect();
        let finding = findings
            .iter()
            .find(|f| f.start <= a && b <= f.end)
            .map(|f| (f.category.clone(), f.severity.clone(), f.points));
        match out.last_mut() {
            Some(last) if last.finding.is_none() && finding.is_none() => last.text.push_str(&piece),
            _ => out.push(Segment { text: piece, finding }),
        }
    }
    for s in &mut out {
        s.text = mask_text(&s.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(start: usize, end: usize) -> StoredFinding {
        StoredFinding { category: "c".into(), severity: "warn".into(), points: -1, start, end }
    }

    #[test]
    fn findings_cut_the_text_at_character_spans_and_pieces_are_masked() {
        type Case = (&'static str, Vec<StoredFinding>, Vec<(&'static str, bool)>);
        let cases: Vec<Case> = vec![
            ("你好", vec![], vec![("你好", false)]),
            ("亲，加我微信吧", vec![f(2, 5)], vec![("亲，", false), ("加我微", true), ("信吧", false)]),
            (
                "电话13812345678好",
                vec![f(2, 13)],
                vec![("电话", false), ("138****5678", true), ("好", false)],
            ),
            // A span past the end (text edited since) is cut to the text.
            ("短", vec![f(0, 9)], vec![("短", true)]),
        ];
        for (text, findings, want) in cases {
            let got: Vec<(String, bool)> =
                segments(text, &findings).into_iter().map(|s| (s.text, s.finding.is_some())).collect();
            let want: Vec<(String, bool)> = want.into_iter().map(|(t, f)| (t.to_string(), f)).collect();
            assert_eq!(got, want, "{text}");
        }
    }
}

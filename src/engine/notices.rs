//! The alert timers of a wait — warning, breach, escalation — and the `resolved` notice,
//! as pure decisions: fed the clock's outputs and a time, they say which notices are due.
//!
//! The same code runs in `kefu replay` (time = event time) and in `kefu run` (event time,
//! and the wall clock while the platform is quiet), so both decide the same notices on the
//! same events. A timer fires once time has passed its due instant strictly, with the wait
//! still pending: an answer exactly at the deadline is on time. Which notices a wait brings
//! and when is [`Plan`]'s; this module only keeps the timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::clock::{Clock, Outcome, Output, WAIT_NO_BITS, WaitStart};
use crate::alerts::{Kind, Notice, Plan};
use crate::event::{Event, EventKind, Sender};
use crate::time::Millis;

/// Bytes of the buyer's last message kept for previews: a notice shows 30 characters
/// after masking, which never needs more than this.
pub(crate) const PREVIEW_BYTES: usize = 512;

/// A wait's next alert timer: due at `due`, for the wait numbered `tag >> 2` in the clock's
/// `slot`, step `tag & 3` of its schedule ([`Notices::steps`]). One timer per pending wait
/// (16 bytes): when it fires the next step is armed, so a wait never has more than one
/// entry in the heap, and none repeats the wait's names or times — the slot has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    due: Millis,
    slot: u32,
    tag: u32,
}

impl Timer {
    fn new(due: Millis, slot: u32, wait_no: u32, step: usize) -> Self {
        let mask = (1u32 << WAIT_NO_BITS) - 1;
        Self { due, slot, tag: (wait_no & mask) << 2 | step as u32 }
    }

    fn wait_no(self) -> u32 {
        self.tag >> 2
    }

    fn step(self) -> usize {
        (self.tag & 3) as usize
    }
}

/// The alert timers' state: only the previews of open sessions, in conversation order. The
/// waits pending are the clock's, and their timers follow from them and the plan
/// ([`Notices::restore`]); the plan is configuration, not state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoticesState {
    pub(crate) previews: Vec<(Arc<str>, Box<str>)>,
}

/// A [`NoticesState`] by reference ([`Notices::state_ref`]): serialises to the same bytes,
/// each preview read from the clock's slots while it is written.
pub(crate) struct NoticesStateRef<'a> {
    clock: &'a Clock,
}

impl serde::Serialize for NoticesStateRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        /// The previews, in conversation order.
        struct Previews<'a>(&'a Clock);
        impl serde::Serialize for Previews<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.previews())
            }
        }
        // The fields of `NoticesState`, in its order.
        let mut st = s.serialize_struct("NoticesState", 1)?;
        st.serialize_field("previews", &Previews(self.clock))?;
        st.end()
    }
}

/// The pending waits' alert timers. The waits themselves, and the previews of their
/// notices, are the clock's (one slot per conversation): every call takes the clock.
pub struct Notices {
    plan: Plan,
    /// Earliest first; an entry whose wait has ended is skipped when it falls due.
    timers: BinaryHeap<Reverse<Timer>>,
}

impl Notices {
    /// No waits yet, alerting by `plan`.
    pub fn new(plan: Plan) -> Self {
        Self { plan, timers: BinaryHeap::new() }
    }

    /// The timers' state, for a snapshot ([`super::snapshot`]).
    #[must_use]
    pub fn state(clock: &Clock) -> NoticesState {
        NoticesState { previews: clock.previews().map(|(c, p)| (c.clone(), p.into())).collect() }
    }

    /// The same state as [`Notices::state`] for serialising, borrowing the previews
    /// instead of copying them (same bytes).
    pub(crate) fn state_ref(clock: &Clock) -> NoticesStateRef<'_> {
        NoticesStateRef { clock }
    }

    /// The timers of the waits pending in `clock` at its event time (the watermark),
    /// alerting by `plan`: every alert the plan schedules at or after the watermark (the
    /// earlier ones fell due while event time passed them). A live alert the wall clock
    /// already fired comes back due again; the `alerts` table's key records it once and it
    /// is not sent twice. The previews go into the clock ([`Clock::set_preview`]) first.
    #[must_use]
    pub fn restore(plan: Plan, clock: &Clock) -> Self {
        let watermark = clock.now();
        let mut notices = Self::new(plan);
        for (slot, wait_no, start, deadline_ms) in clock.pending_slots() {
            let steps = notices.steps(start, deadline_ms);
            if let Some(step) = steps.iter().position(|&(_, due)| due >= watermark) {
                notices.timers.push(Reverse(Timer::new(steps[step].1, slot, wait_no, step)));
            }
        }
        notices
    }

    /// The plan in force.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// When the next timer falls due (it fires strictly after this instant).
    #[must_use]
    pub fn next_due(&self) -> Option<Millis> {
        self.timers.peek().map(|Reverse(t)| t.due)
    }

    /// The alerts a wait brings, in the order they fall due (the plan's, ordered by due
    /// time then kind, as the timers fire them).
    fn steps(&self, start: Millis, deadline_ms: i64) -> Vec<(Kind, Millis)> {
        let mut steps = self.plan.schedule(start, deadline_ms);
        steps.sort_by_key(|&(kind, due)| (due, kind));
        steps
    }

    /// Remembers a buyer's message text (in the clock's slot, after the clock has taken
    /// the message) for the previews of the notices that follow.
    pub fn observe(event: &Event, clock: &mut Clock) {
        if let EventKind::Message { conversation, from: Sender::Customer, text, .. } = &event.kind {
            clock.set_preview(conversation, crate::gateway::protocol::truncate(text, PREVIEW_BYTES));
        }
    }

    /// Takes the clock's outputs (of one call): arms the timers of new waits, and pushes a
    /// `resolved` notice when the plan wants one. An ended wait's timer is left to be
    /// skipped when it falls due.
    pub fn take(&mut self, outputs: &[Output], clock: &Clock, notices: &mut Vec<Notice>) {
        for o in outputs {
            match o {
                Output::WaitStarted(w) => {
                    // Still the clock's pending wait unless it ended in the same call (then
                    // its timers would never fire anyway).
                    let Some((slot, wait_no, start)) = clock.current_wait(&w.conversation) else { continue };
                    if start != w.start {
                        continue;
                    }
                    if let Some(&(_, due)) = self.steps(w.start, w.deadline_ms).first() {
                        self.timers.push(Reverse(Timer::new(due, slot, wait_no, 0)));
                    }
                }
                Output::WaitEnded(w) => {
                    if w.outcome == Outcome::Answered
                        && self.plan.resolved(w.start, w.deadline_ms, w.end).is_some()
                    {
                        notices.push(Notice::for_resolved(w, clock.preview(&w.conversation)));
                    }
                }
                Output::SessionClosed { .. } | Output::SessionOpened { .. } | Output::Breach(_) => {}
            }
        }
    }

    /// Lets time run to `now`: every timer due strictly before it whose wait is still
    /// pending becomes a notice. Does not change any wait. Timers due at the same instant
    /// fire in the order (kind, conversation, wait start), whatever slots they name.
    pub fn advance(&mut self, now: Millis, clock: &Clock, notices: &mut Vec<Notice>) {
        let mut group: Vec<(Kind, WaitStart, u32)> = Vec::new();
        while let Some(&Reverse(first)) = self.timers.peek() {
            if first.due >= now {
                break;
            }
            let due = first.due;
            while let Some(&Reverse(t)) = self.timers.peek().filter(|Reverse(t)| t.due == due) {
                self.timers.pop();
                let Some(wait) = clock.wait_numbered(t.slot, t.wait_no()) else { continue };
                let steps = self.steps(wait.start, wait.deadline_ms);
                let Some(&(kind, _)) = steps.get(t.step()) else { continue };
                if let Some(&(_, next)) = steps.get(t.step() + 1) {
                    // Due at or after this one (a step due at the same instant joins this group).
                    self.timers.push(Reverse(Timer::new(next, t.slot, t.wait_no(), t.step() + 1)));
                }
                group.push((kind, wait, t.slot));
            }
            group.sort_unstable_by(|a, b| {
                (a.0, &a.1.conversation, a.1.start).cmp(&(b.0, &b.1.conversation, b.1.start))
            });
            for (kind, wait, slot) in group.drain(..) {
                notices.push(Notice::for_wait(kind, &wait, due, clock.preview_at(slot)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::engine::Engine;
    use crate::rules::response_time::ResponseRules;

    fn run(engine: &mut Engine, events: &[Event]) -> (Vec<Output>, Vec<Notice>) {
        let (mut out, mut notices) = (vec![], vec![]);
        for e in events {
            engine.handle(e, &mut out, &mut notices);
        }
        engine.finish(&mut out, &mut notices);
        (out, notices)
    }

    fn msg(id: &str, ms: i64, conv: &str, from: &str) -> Event {
        let line = format!(
            r#"{{"type":"message","id":"{id}","ts":"2026-11-11T10:00:00+08:00","shop":"s","conversation":"{conv}","customer":"b-{conv}","agent":"a","from":"{from}","text":"text {id}"}}"#
        );
        let mut e = crate::event::parse(&line).unwrap();
        e.ts += ms;
        e
    }

    /// Every alert timer, checked against the rule itself over a simulated day: a wait
    /// brings exactly the plan's alerts due strictly before it ended, in due-time order
    /// (then kind, conversation, start), each with the buyer's latest message as preview.
    #[test]
    fn timers_fire_exactly_the_plan_before_each_wait_ends() {
        let plan = Plan { warning_permille: Some(500), escalation_permille: Some(2000), ..Plan::default() };
        let sim = crate::simulate::SimConfig { events: 20_000, seed: 11, ..Default::default() };
        let events = crate::simulate::generate(&sim);
        assert!(events.windows(2).all(|w| w[0].ts <= w[1].ts), "the model reads previews by time");
        let mut engine = Engine::new(ResponseRules::default(), plan);
        let (out, notices) = run(&mut engine, &events);
        let mut expected = vec![];
        for o in &out {
            if let Output::WaitEnded(w) = o {
                for (kind, due) in plan.schedule(w.start, w.deadline_ms) {
                    if due < w.end {
                        expected.push((due, kind, w.conversation.to_string(), w.start));
                    }
                }
            }
        }
        expected.sort();
        let fired: Vec<_> = notices
            .iter()
            .filter(|n| n.kind != Kind::Resolved)
            .map(|n| (n.due_at, n.kind, n.conversation.clone(), n.wait_start))
            .collect();
        assert!(expected.len() > 100, "the day has alerts to compare ({})", expected.len());
        assert!(
            expected.iter().any(|e| e.1 == Kind::Warning) && expected.iter().any(|e| e.1 == Kind::Escalation)
        );
        assert_eq!(fired, expected);

        let mut texts: HashMap<&str, Vec<(Millis, &str)>> = HashMap::new();
        for e in &events {
            if let EventKind::Message { conversation, from: Sender::Customer, text, .. } = &e.kind {
                texts.entry(conversation).or_default().push((e.ts, text));
            }
        }
        for n in notices.iter().filter(|n| n.kind != Kind::Resolved) {
            let latest = texts[n.conversation.as_str()].iter().rev().find(|(t, _)| *t <= n.due_at);
            assert_eq!(Some(n.preview.as_str()), latest.map(|(_, t)| *t), "{n:?}");
        }
    }

    #[test]
    fn timers_at_one_instant_fire_in_conversation_order_whatever_the_slots() {
        // c2 takes the first slot, c1 the second; both wait from the same instant.
        let events = [msg("1", 0, "c2", "customer"), msg("2", 0, "c1", "customer")];
        let mut engine = Engine::new(ResponseRules::default(), Plan::default());
        let (_, notices) = run(&mut engine, &events);
        let order: Vec<(Kind, &str)> = notices.iter().map(|n| (n.kind, n.conversation.as_str())).collect();
        assert_eq!(
            order,
            [(Kind::Breach, "c1"), (Kind::Breach, "c2"), (Kind::Escalation, "c1"), (Kind::Escalation, "c2")]
        );
    }

    #[test]
    fn a_reused_slot_does_not_inherit_the_last_waits_timers() {
        // Sessions close after 1 s idle, so c1's slot is free again before its wait's
        // breach (20 s) would fall due; c2 takes the slot with a wait of its own.
        let rules = ResponseRules { idle_close_ms: 1_000, ..ResponseRules::default() };
        let mut engine = Engine::new(rules, Plan::default());
        let events = [msg("1", 0, "c1", "customer"), msg("2", 5_000, "c2", "customer")];
        let (mut out, mut notices) = (vec![], vec![]);
        engine.handle(&events[0], &mut out, &mut notices);
        engine.handle(&events[1], &mut out, &mut notices);
        assert_eq!(engine.clock().held_conversations(), 1, "c1's slot was released and taken by c2");
        engine.alert_until(events[1].ts + 60_000, &mut out, &mut notices);
        let fired: Vec<(Kind, &str, Millis)> =
            notices.iter().map(|n| (n.kind, n.conversation.as_str(), n.due_at - n.wait_start)).collect();
        assert_eq!(fired, [(Kind::Breach, "c2", 20_000)], "c1's wait ended unanswered at 1 s");
    }
}

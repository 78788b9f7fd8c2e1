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

use rustc_hash::FxHashMap as HashMap;

use super::clock::{Outcome, Output, WaitStart};
use crate::alerts::{Kind, Notice, Plan};
use crate::event::{Event, EventKind, Sender};
use crate::time::Millis;

/// Bytes of the buyer's last message kept for previews: a notice shows 30 characters
/// after masking, which never needs more than this.
const PREVIEW_BYTES: usize = 512;

/// A timer: `(due_at, kind, conversation, wait_start)`, ordered by due time.
type Timer = (Millis, Kind, Arc<str>, Millis);

/// The alert timers' state: only the previews of open sessions, in conversation order. The
/// waits pending are the clock's, and their timers follow from them and the plan
/// ([`Notices::restore`]); the plan is configuration, not state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoticesState {
    previews: Vec<(Arc<str>, Box<str>)>,
}

/// A [`NoticesState`] by reference ([`Notices::state_ref`]): serialises to the same bytes.
#[derive(serde::Serialize)]
pub(crate) struct NoticesStateRef<'a> {
    previews: Vec<(&'a Arc<str>, &'a str)>,
}

/// The pending waits' alert timers.
pub struct Notices {
    plan: Plan,
    /// Waits pending now, by conversation.
    pending: HashMap<Arc<str>, WaitStart>,
    /// Earliest first; an entry whose wait has ended is skipped when it falls due.
    timers: BinaryHeap<Reverse<Timer>>,
    /// The last buyer message per conversation with a wait, raw (masked when rendered).
    previews: HashMap<Arc<str>, Box<str>>,
}

impl Notices {
    /// No waits yet, alerting by `plan`.
    pub fn new(plan: Plan) -> Self {
        Self { plan, pending: HashMap::default(), timers: BinaryHeap::new(), previews: HashMap::default() }
    }

    /// The timers' state, for a snapshot ([`super::snapshot`]).
    #[must_use]
    pub fn state(&self) -> NoticesState {
        let mut previews: Vec<(Arc<str>, Box<str>)> =
            self.previews.iter().map(|(c, p)| (c.clone(), p.clone())).collect();
        previews.sort_unstable();
        NoticesState { previews }
    }

    /// The same state as [`Notices::state`] for serialising, borrowing the previews
    /// instead of copying them (same bytes).
    pub(crate) fn state_ref(&self) -> NoticesStateRef<'_> {
        let mut previews: Vec<(&Arc<str>, &str)> = self.previews.iter().map(|(c, p)| (c, &**p)).collect();
        previews.sort_unstable();
        NoticesStateRef { previews }
    }

    /// The timers of the waits `pending` at event time `watermark`, alerting by `plan`:
    /// every alert the plan schedules at or after the watermark (the earlier ones fell due
    /// while event time passed them). A live alert the wall clock already fired comes back
    /// due again; the `alerts` table's key records it once and it is not sent twice.
    #[must_use]
    pub fn restore(plan: Plan, state: NoticesState, pending: Vec<WaitStart>, watermark: Millis) -> Self {
        let mut timers = BinaryHeap::new();
        for w in &pending {
            for (kind, due) in plan.schedule(w.start, w.deadline_ms) {
                if due >= watermark {
                    timers.push(Reverse((due, kind, w.conversation.clone(), w.start)));
                }
            }
        }
        Self {
            plan,
            pending: pending.into_iter().map(|w| (w.conversation.clone(), w)).collect(),
            timers,
            previews: state.previews.into_iter().collect(),
        }
    }

    /// The plan in force.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Serves `plan` for waits that start from now on (a hot reload).
    pub fn set_plan(&mut self, plan: Plan) {
        self.plan = plan;
    }

    /// When the next timer falls due (it fires strictly after this instant).
    #[must_use]
    pub fn next_due(&self) -> Option<Millis> {
        self.timers.peek().map(|Reverse((t, ..))| *t)
    }

    /// Waits pending now.
    pub fn pending(&self) -> impl Iterator<Item = &WaitStart> {
        self.pending.values()
    }

    /// Remembers a buyer's message text for the previews of the notices that follow.
    pub fn observe(&mut self, event: &Event) {
        if let EventKind::Message { conversation, from: Sender::Customer, text, .. } = &event.kind {
            let raw = crate::gateway::protocol::truncate(text, PREVIEW_BYTES);
            match self.previews.get_mut(conversation.as_str()) {
                Some(p) => *p = raw.into(),
                None => {
                    self.previews.insert(conversation.as_str().into(), raw.into());
                }
            }
        }
    }

    /// Takes the clock's outputs: arms the timers of new waits, disarms ended ones, and
    /// pushes a `resolved` notice when the plan wants one.
    pub fn take(&mut self, outputs: &[Output], notices: &mut Vec<Notice>) {
        for o in outputs {
            match o {
                Output::WaitStarted(w) => {
                    for (kind, due) in self.plan.schedule(w.start, w.deadline_ms) {
                        self.timers.push(Reverse((due, kind, w.conversation.clone(), w.start)));
                    }
                    self.pending.insert(w.conversation.clone(), w.clone());
                }
                Output::WaitEnded(w) => {
                    if self.pending.get(&w.conversation).is_some_and(|p| p.start == w.start) {
                        self.pending.remove(&w.conversation);
                    }
                    if w.outcome == Outcome::Answered
                        && self.plan.resolved(w.start, w.deadline_ms, w.end).is_some()
                    {
                        notices.push(Notice::for_resolved(w, self.preview(&w.conversation)));
                    }
                }
                Output::SessionClosed { conversation, .. } => {
                    self.previews.remove(conversation);
                }
                Output::SessionOpened { .. } | Output::Breach(_) => {}
            }
        }
    }

    /// Lets time run to `now`: every timer due strictly before it whose wait is still
    /// pending becomes a notice. Does not change any wait.
    pub fn advance(&mut self, now: Millis, notices: &mut Vec<Notice>) {
        while let Some(Reverse((due, ..))) = self.timers.peek() {
            if *due >= now {
                break;
            }
            let Some(Reverse((due, kind, conversation, start))) = self.timers.pop() else { break };
            let Some(wait) = self.pending.get(&conversation).filter(|w| w.start == start) else { continue };
            notices.push(Notice::for_wait(kind, wait, due, self.preview(&conversation)));
        }
    }

    fn preview(&self, conversation: &str) -> &str {
        self.previews.get(conversation).map_or("", |p| p)
    }
}

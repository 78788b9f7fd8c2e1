//! The engine: pure decisions over the event stream. It takes an event and the time and
//! says what happened; it never reads the clock, sleeps or touches a socket or file, so
//! the same code runs live, in replay and in tests.
//!
//! - [`clock`]: the response clock — sessions, waits, loads, deadlines (the only copy of
//!   that rule: everything else consumes its [`Output`]s).
//! - [`notices`]: the alert timers of a wait (warning, breach, escalation, resolved).
//! - [`admit`]: which event times are believable (not ahead of the wall clock, not absurd).
//! - [`snapshot`]: the engine's (and the robot's) state as versioned bytes with the event
//!   position they cover, so a restart need not process the whole history.
//!
//! [`Engine`] puts them together: event time (the watermark, the latest `ts` seen) decides
//! everything that is stored; the wall clock may only make alerts fall due early, through
//! [`Engine::alert_until`], and never closes a session or ends a wait.

pub mod admit;
pub mod clock;
pub mod notices;
pub mod snapshot;

pub use admit::{Admission, TimeLimits};
pub use clock::{Breach, Clock, CloseReason, Outcome, Output, Wait, WaitStart};
pub use notices::Notices;
pub use snapshot::{EngineState, Snapshot, SnapshotError};

use std::sync::Arc;

use crate::alerts::{Kind, Notice, Plan};
use crate::event::Event;
use crate::rules::response_time::ResponseRules;
use crate::time::Millis;

/// The response clock and the alert timers over one stream of events.
pub struct Engine {
    clock: Clock,
    notices: Notices,
}

impl Engine {
    /// An engine with no conversations.
    pub fn new(rules: ResponseRules, plan: Plan) -> Self {
        Self { clock: Clock::new(rules), notices: Notices::new(plan) }
    }

    /// The engine's state, for a snapshot (see [`snapshot`]).
    #[must_use]
    pub fn state(&self) -> EngineState {
        EngineState { clock: self.clock.state(), notices: Notices::state(&self.clock) }
    }

    /// The alert timers' state by reference, for [`snapshot::write_ref`].
    pub(crate) fn notices_state_ref(&self) -> notices::NoticesStateRef<'_> {
        Notices::state_ref(&self.clock)
    }

    /// An engine in `state`, on these rules and plan: it goes on exactly as the engine the
    /// state was taken from would.
    #[must_use]
    pub fn restore(rules: ResponseRules, plan: Plan, state: EngineState) -> Self {
        let mut clock = Clock::restore(rules, state.clock);
        for (conversation, preview) in &state.notices.previews {
            clock.set_preview(conversation, preview);
        }
        let notices = Notices::restore(plan, &clock);
        Self { clock, notices }
    }

    /// The waits pending now, with their deadlines (in no particular order).
    pub fn pending_waits(&self) -> impl Iterator<Item = WaitStart> + '_ {
        self.clock.waits()
    }

    /// The response clock (read-only: only events move it).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Serves new response-time rules (see [`Clock::set_rules`]).
    pub fn set_rules(&mut self, rules: ResponseRules) {
        self.clock.set_rules(rules);
    }

    /// The alert plan in force.
    pub fn plan(&self) -> &Plan {
        self.notices.plan()
    }

    /// The watermark: the latest event time seen. Everything stored is decided up to it.
    pub fn watermark(&self) -> Millis {
        self.clock.now()
    }

    /// Processes one event at its own time: first what fell due before it (session idle
    /// closes, alert timers), then the event. Clock outputs go to `out`, notices to `notices`.
    pub fn handle(&mut self, event: &Event, out: &mut Vec<Output>, notices: &mut Vec<Notice>) {
        self.run_to(event.ts, out, notices);
        let from = out.len();
        self.clock.handle(event, out);
        // After the clock, which gives the conversation its slot (where the preview is kept).
        Notices::observe(event, &mut self.clock);
        self.notices.take(&out[from..], &self.clock, notices);
    }

    /// The wall clock says it is `now`: alert timers due strictly before it fire for waits
    /// still pending (a breach also as [`Output::Breach`]). No session closes and no wait
    /// ends — only events decide those.
    pub fn alert_until(&mut self, now: Millis, out: &mut Vec<Output>, notices: &mut Vec<Notice>) {
        self.fire(now, out, notices);
    }

    /// Fires the alert timers due strictly before `upto`; breaches also go to `out`.
    fn fire(&mut self, upto: Millis, out: &mut Vec<Output>, notices: &mut Vec<Notice>) {
        let from = notices.len();
        self.notices.advance(upto, &self.clock, notices);
        for n in notices[from..].iter().filter(|n| n.kind == Kind::Breach) {
            out.push(Output::Breach(Breach {
                conversation: Arc::from(n.conversation.as_str()),
                shop: Arc::from(n.shop.as_str()),
                customer: Arc::from(n.customer.as_str()),
                agent: Arc::from(n.agent.as_str()),
                wait_start: n.wait_start,
                due_at: n.due_at,
                deadline_ms: n.deadline_ms,
                load: n.load,
            }));
        }
    }

    /// When the next alert timer falls due (it fires strictly after this instant).
    #[must_use]
    pub fn next_alert_due(&self) -> Option<Millis> {
        self.notices.next_due()
    }

    /// Input has ended (`kefu replay`): time runs on until every session has closed.
    pub fn finish(&mut self, out: &mut Vec<Output>, notices: &mut Vec<Notice>) {
        self.run_to(Millis::MAX, out, notices);
    }

    /// Lets event time run to `t`, idle closes and alert timers in time order: a timer due
    /// before a session's idle close fires while its wait is still pending, and a close at
    /// the very instant of a timer's due time comes first (the timer fires strictly after).
    fn run_to(&mut self, t: Millis, out: &mut Vec<Output>, notices: &mut Vec<Notice>) {
        loop {
            let close = self.clock.next_due().filter(|&c| c <= t);
            let timer = self.notices.next_due().filter(|&n| n < t);
            match (close, timer) {
                (None, None) => break,
                (Some(c), Some(n)) if n < c => self.fire(n.saturating_add(1), out, notices),
                (Some(c), _) => {
                    let from = out.len();
                    self.clock.advance(c, out);
                    self.notices.take(&out[from..], &self.clock, notices);
                }
                (None, Some(_)) => self.fire(t, out, notices),
            }
        }
        self.clock.advance(t, out);
    }
}

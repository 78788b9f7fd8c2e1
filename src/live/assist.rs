//! What the live runtime does besides the response clock: the phrase guard on every new
//! message, the robot (greetings, away answers, rescues, transfers), hot reload of the
//! files both serve from, and the nightly scoring job.
//!
//! [`Assistant`] is the decision part (pure: events and time in; flags, alerts and robot
//! actions out); the runtime persists what it decides in the batch's transaction and sends
//! the robot's frames after the commit. [`Reloader`] and [`NightlyJob`] are the effects.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::info;

use crate::alerts::Notice;
use crate::engine::Output;
use crate::event::{Event, EventKind};
use crate::guard::store::raw_matched;
use crate::guard::{Flag, Guard};
use crate::replies::Replies;
use crate::replies::reload::{Reload, Trigger, Watcher, log_rejected};
use crate::replies::robot::{Robot, RobotAction};
use crate::rules::DataError;
use crate::rules::response_time::{self, ResponseRules};
use crate::scoring::sheet::Sheet;
use crate::time::Millis;

/// The files the live runtime serves from and reloads while running, loaded and validated
/// together: a reload swaps all or none.
#[derive(Debug, Clone)]
pub struct Sets {
    /// Quick phrases, auto-answers, robot settings, shifts.
    pub replies: Arc<Replies>,
    /// The compiled phrase guard.
    pub guard: Arc<Guard>,
    /// The response-time rule (`rules/response_time.toml`).
    pub response: ResponseRules,
    /// The KPI sheet (`rules/scoring.toml`) the nightly job scores with, and its `cron`.
    pub scoring: Sheet,
}

impl Sets {
    /// Loads both from the folders (embedded defaults for absent ones); every error is
    /// returned, not just the first.
    pub fn load(
        rules: Option<&std::path::Path>,
        replies: Option<&std::path::Path>,
    ) -> Result<Self, Vec<DataError>> {
        let r = crate::replies::load(rules, replies);
        let g = Guard::load(rules);
        let t = response_time::load(rules);
        let s = crate::scoring::sheet::load(rules);
        match (r, g, t, s) {
            (Ok(r), Ok(g), Ok(t), Ok(s)) => {
                Ok(Self { replies: Arc::new(r), guard: Arc::new(g), response: t, scoring: s })
            }
            (r, g, t, s) => Err(r
                .err()
                .into_iter()
                .flatten()
                .chain(g.err().into_iter().flatten())
                .chain(t.err())
                .chain(s.err())
                .collect()),
        }
    }
}

/// The optional parts of the runtime. All off by default (the response clock alone).
#[derive(Debug, Clone, Default)]
pub struct AssistConfig {
    /// Check every new message with this guard; flags are stored, critical ones alerted.
    pub guard: Option<Arc<Guard>>,
    /// Run the robot on these replies.
    pub replies: Option<Arc<Replies>>,
    /// New sets from hot reload ([`Reloader::run`]); each replaces the guard and the robot's
    /// replies (for whichever of the two is on).
    pub updates: Option<watch::Receiver<Sets>>,
    /// The nightly scoring job.
    pub nightly: Option<NightlyJob>,
}

impl AssistConfig {
    /// The guard and the robot on, serving `sets`.
    pub fn with_sets(sets: &Sets) -> Self {
        Self { guard: Some(sets.guard.clone()), replies: Some(sets.replies.clone()), ..Self::default() }
    }
}

/// The nightly scoring job as the runtime runs it: on its own connection to `db`, off the
/// runtime's thread, at the sheet's cron times and once at start (catch-up).
#[derive(Debug, Clone)]
pub struct NightlyJob {
    /// The database (a second connection; WAL lets it read while the runtime writes).
    pub db: PathBuf,
    /// The KPI sheet (`rules/scoring.toml`): its `cron` says when.
    pub sheet: Sheet,
    /// Where report files go; `None` writes none.
    pub reports: Option<PathBuf>,
}

/// Live counts of the assist parts (shared through [`super::LiveCounters`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AssistCounts {
    /// Robot messages sent to buyers.
    pub robot_sent: u64,
    /// Suggestions and transfers sent.
    pub robot_other: u64,
    /// Rule hits.
    pub robot_hits: u64,
    /// Unanswered questions (misses).
    pub robot_misses: u64,
    /// Flags stored.
    pub flags: u64,
}

/// The guard and the robot, driven by the runtime (pure).
pub(crate) struct Assistant {
    robot: Option<Robot>,
    guard: Option<Arc<Guard>>,
    /// Robot actions decided since the last persist.
    pub(crate) actions: Vec<RobotAction>,
    /// Flags (with their raw matched text, for the store only) since the last persist.
    pub(crate) flags: Vec<(Flag, String)>,
    /// Guard alerts since the last persist.
    pub(crate) notices: Vec<Notice>,
}

impl Assistant {
    pub(crate) fn new(config: &AssistConfig) -> Self {
        Self {
            robot: config.replies.clone().map(Robot::new),
            guard: config.guard.clone(),
            actions: Vec::new(),
            flags: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// The robot's state for a snapshot (`None` when the robot is off).
    pub(crate) fn robot_state(&self) -> Option<crate::replies::robot::RobotState> {
        self.robot.as_ref().map(Robot::state)
    }

    /// The robot, when it is on (a snapshot encodes its state by reference).
    pub(crate) fn robot(&self) -> Option<&Robot> {
        self.robot.as_ref()
    }

    /// Whether a snapshot with (`true`) or without a robot state can restore this assistant:
    /// a robot that is on needs its state; one that is off ignores it.
    pub(crate) fn accepts(&self, has_robot: bool) -> bool {
        self.robot.is_none() || has_robot
    }

    /// Puts the robot in a snapshot's state (it keeps the replies it serves).
    pub(crate) fn restore(&mut self, state: Option<crate::replies::robot::RobotState>) {
        if let (Some(r), Some(state)) = (self.robot.as_mut(), state) {
            *r = Robot::restore(r.replies().clone(), state);
        }
    }

    /// Replays a stored event (with the engine's outputs for it) into the robot's state
    /// (nothing is said: it was answered, or not, before the restart). The guard's flags
    /// for it are already stored.
    pub(crate) fn rebuild(&mut self, event: &Event, outputs: &[Output]) {
        if let Some(r) = &mut self.robot {
            r.handle(event, outputs, event.ts);
        }
    }

    /// A restart: what fell due while kefu was down is left to event time or dropped
    /// unsaid ([`Robot::skip_to`]), so old rescues do not flood out.
    pub(crate) fn skip_to(&mut self, now: Millis) {
        if let Some(r) = &mut self.robot {
            r.skip_to(now);
        }
    }

    /// A new event, with the engine's outputs for it: the robot's answer to it, the
    /// guard's flags and alerts.
    pub(crate) fn event(&mut self, event: &Event, outputs: &[Output], now: Millis) {
        if let Some(r) = &mut self.robot {
            self.actions.extend(r.handle(event, outputs, now));
        }
        let Some(guard) = &self.guard else { return };
        let flags = guard.check_event(event);
        if flags.is_empty() {
            return;
        }
        if let (Some(alert), EventKind::Message { customer, text, .. }) =
            (flags.iter().find_map(Flag::alert), &event.kind)
        {
            // One alert per message, whatever number of critical findings it holds; the
            // preview is masked by the guard's own scanner (WeChat ids, ID cards …) too.
            self.notices.push(Notice::for_guard(&alert, customer, &guard.mask(text)));
        }
        for f in flags {
            let raw = raw_matched(event, &f);
            self.flags.push((f, raw));
        }
    }

    /// Time passes: rescues due at or before `now`.
    pub(crate) fn advance(&mut self, now: Millis) {
        if let Some(r) = &mut self.robot {
            self.actions.extend(r.advance(now));
        }
    }

    /// When [`Assistant::advance`] next has something to do.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.robot.as_ref().and_then(Robot::next_due)
    }

    /// The replies `replies.*` requests are answered from (the robot's, or `fallback`).
    pub(crate) fn replies(&self) -> Option<&Arc<Replies>> {
        self.robot.as_ref().map(Robot::replies)
    }

    /// Serves a reloaded set from now on; conversation state is kept.
    pub(crate) fn set(&mut self, sets: &Sets) {
        if let Some(r) = &mut self.robot {
            r.set_replies(sets.replies.clone());
        }
        if self.guard.is_some() {
            self.guard = Some(sets.guard.clone());
        }
    }

    /// Takes what is to be stored of what was decided since the last take: the flags and
    /// the robot's bookkeeping (hits, misses, figures, phrases used), counted. What is to
    /// be said stays for [`Assistant::take_sends`]: it may go out only after the commit.
    pub(crate) fn take_rows(&mut self) -> (Vec<(Flag, String)>, Vec<RobotAction>, AssistCounts) {
        let mut counts = AssistCounts::default();
        let (say, book): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.actions).into_iter().partition(RobotAction::is_said);
        self.actions = say;
        for a in &book {
            match a {
                RobotAction::Hit { .. } => counts.robot_hits += 1,
                RobotAction::Miss { .. } => counts.robot_misses += 1,
                _ => {}
            }
        }
        (std::mem::take(&mut self.flags), book, counts)
    }

    /// Takes the robot's messages, suggestions and transfers decided since the last take,
    /// counted: to be sent once the transaction that recorded their bookkeeping commits.
    pub(crate) fn take_sends(&mut self) -> (Vec<RobotAction>, AssistCounts) {
        let mut counts = AssistCounts::default();
        for a in &self.actions {
            match a {
                RobotAction::Send { .. } => counts.robot_sent += 1,
                RobotAction::Suggest { .. } | RobotAction::Transfer { .. } => counts.robot_other += 1,
                _ => {}
            }
        }
        (std::mem::take(&mut self.actions), counts)
    }
}

/// Hot reload of the rules and replies folders for the live runtime: the replies (as
/// [`Watcher`] does) and the phrase guard, swapped together when every file validates.
#[derive(Debug)]
pub struct Reloader {
    watcher: Watcher,
    rules: Option<PathBuf>,
    replies: Option<PathBuf>,
    nudge: Option<Arc<tokio::sync::Notify>>,
}

impl Reloader {
    /// Starts watching; the current contents count as seen (the caller loaded them).
    pub fn new(rules: Option<PathBuf>, replies: Option<PathBuf>) -> Self {
        Self { watcher: Watcher::new(rules.clone(), replies.clone()), rules, replies, nudge: None }
    }

    /// Also looks at once whenever `nudge` is notified: the console nudges it after writing
    /// a rule file, so the robot serves the new rule within the second, not at the next poll.
    pub fn nudged_by(mut self, nudge: Arc<tokio::sync::Notify>) -> Self {
        self.nudge = Some(nudge);
        self
    }

    /// Looks once: `None` when nothing changed, else the new sets or every error.
    pub fn poll(&mut self) -> Option<Result<Sets, Vec<DataError>>> {
        match self.watcher.poll() {
            Reload::Unchanged => None,
            Reload::Loaded(_) | Reload::Rejected(_) => {
                Some(Sets::load(self.rules.as_deref(), self.replies.as_deref()))
            }
        }
    }

    /// Polls every `every` and on SIGHUP until every receiver of `tx` is gone; publishes
    /// each valid new set and logs each error of an invalid one (file, line, reason) once.
    pub async fn run(mut self, every: Duration, tx: watch::Sender<Sets>) {
        let mut trigger = Trigger::new(every);
        if let Some(n) = self.nudge.take() {
            trigger = trigger.nudged_by(n);
        }
        while trigger.next(tx.closed()).await {
            match self.poll() {
                None => {}
                Some(Ok(sets)) => {
                    info!(
                        rules = sets.replies.auto.rules().len(),
                        phrases = sets.replies.quick.phrases().len(),
                        "rules and replies reloaded"
                    );
                    tx.send_replace(sets);
                }
                Some(Err(errors)) => log_rejected(&errors, "the previous rules and replies keep serving"),
            }
        }
    }
}

//! The robot (智能机器人), pure: it takes events, the engine's outputs for them and the
//! current time, and returns what to say; the gateway sends it. Sessions and waits are the
//! engine's: a conversation's state lives from the first message of a session to the
//! engine's `SessionClosed`, a buyer's wait ends at the engine's `WaitEnded` (answered);
//! the robot keeps only what it adds to them (greeted, rescue timer, rate limit, offers).
//!
//! - greeting (进门问好): a session's first buyer message gets the greeting, once.
//! - away: the assigned agent is away/offline or off shift → a keyword answer, or the away
//!   message; and an offer to transfer (转接) to the least-loaded online agent of the shop.
//! - rescue: a buyer who has waited `rescue_after_s` with no agent reply gets a matching
//!   answer or a holding one; an agent reply before the deadline cancels it.
//! - suggest (半自动): a present agent gets the matching answer as a suggestion.
//!
//! Robot messages go out `as: bot`. They come back as `from: bot` events, which end no
//! wait here or in the response clock: only an agent's message does.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use chrono::NaiveDate;

use crate::engine::{Outcome, Output};
use crate::event::{Event, EventKind, Presence, Sender};
use crate::time::{Millis, shanghai_day};

use super::Replies;
use super::auto::{Ask, How};
use super::orders::{OrderBook, status_words};
use super::settings::Settings;
use super::similar::Scratch;
use super::vars::{Template, Vars};

const HOUR_MS: i64 = 3_600_000;

/// Why the robot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Session greeting.
    Greeting,
    /// The agent is away, offline or off shift.
    Away,
    /// The buyer waited too long.
    Rescue,
    /// Offer of a transfer to another agent.
    TransferOffer,
    /// 人工优先: the agent has too many buyers waiting; a known question is answered.
    Load,
    /// 催付: an order created and not paid.
    PaymentReminder,
}

/// What a robot figure counts (`kefu replies figures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FigureKind {
    /// The robot answered a buyer's question with a rule.
    Answered,
    /// The buyer asked for a human (转人工).
    Handoff,
    /// A 催付 reminder, the shop's work rather than an agent's.
    Reminder,
}

impl FigureKind {
    /// The name stored.
    pub fn name(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Handoff => "handoff",
            Self::Reminder => "reminder",
        }
    }
}

/// What the robot wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RobotAction {
    /// Say `text` to the buyer; `as_bot` is always true for the robot, so the platform
    /// and the response clock never take it for an agent's reply.
    Send {
        /// Conversation.
        conversation: String,
        /// Text, variables filled in.
        text: String,
        /// Sent as the robot.
        as_bot: bool,
        /// Why.
        reason: Reason,
        /// The auto-answer rule used, if any.
        rule: Option<String>,
    },
    /// Show the agent a suggested answer (半自动) instead of answering the buyer.
    Suggest {
        /// The agent.
        agent: String,
        /// Conversation.
        conversation: String,
        /// Suggested text.
        text: String,
        /// The rule it came from.
        rule: String,
    },
    /// Move the conversation to another agent: the buyer accepted the offer.
    Transfer {
        /// Conversation.
        conversation: String,
        /// Current agent.
        from_agent: String,
        /// Agent taking over.
        to_agent: String,
    },
    /// A rule answered the buyer or was suggested to the agent; for hit counts.
    Hit {
        /// Shop.
        shop: String,
        /// Rule id.
        rule: String,
        /// Event time of the decision (the buyer's message, or the rescue deadline): the
        /// day it is counted on, so counts are a function of the events.
        ts: Millis,
    },
    /// An agent sent one of their quick phrases; for hit counts.
    PhraseUsed {
        /// Shop.
        shop: String,
        /// The phrase's owner; `None` for a team phrase.
        owner: Option<String>,
        /// The phrase's code.
        code: String,
        /// When the agent sent it.
        ts: Millis,
    },
    /// Something the robot figures count, at event time; stored as decided (a backlog's
    /// answers count though the wall clock kept them from being sent).
    Figure {
        /// Shop.
        shop: String,
        /// Conversation.
        conversation: String,
        /// Event time.
        ts: Millis,
        /// What.
        kind: FigureKind,
    },
    /// A buyer question the robot had to answer matched no rule; for `replies misses`.
    Miss {
        /// Shop.
        shop: String,
        /// Conversation.
        conversation: String,
        /// When the buyer asked.
        ts: Millis,
        /// The question.
        text: String,
    },
}

impl RobotAction {
    /// Whether it goes out to the platform (a message, a suggestion, a transfer), as
    /// against bookkeeping the store keeps (hits, phrases used, figures, misses).
    pub fn is_said(&self) -> bool {
        matches!(self, Self::Send { .. } | Self::Suggest { .. } | Self::Transfer { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Conv {
    shop: String,
    customer: String,
    agent: String,
    greeted: bool,
    /// The agent a transfer was offered to in this session, awaiting the buyer's yes.
    offered_to: Option<String>,
    wait: Option<Wait>,
    /// When the robot spoke in the last hour, for the rate limit.
    sent: VecDeque<Millis>,
}

/// The buyer's current wait: from their first unanswered message to an agent's reply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Wait {
    last_text: String,
    last_ts: Millis,
    rescue_due: Option<Millis>,
    rescued: bool,
    away_text_sent: bool,
}

/// A timer: a conversation's rescue or an order's 催付.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
enum Due {
    Rescue(String),
    Reminder(String),
}

/// The robot's state as a snapshot keeps it ([`crate::engine::snapshot`]): everything but
/// the replies it serves (configuration) and its scratch space; the per-agent load is
/// recounted from the conversations.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RobotState {
    #[serde(with = "crate::engine::snapshot::pairs")]
    convs: HashMap<String, Conv>,
    #[serde(with = "crate::engine::snapshot::pairs")]
    presence: HashMap<String, (String, Presence)>,
    orders: OrderBook,
    #[serde(with = "crate::engine::snapshot::pairs")]
    greeted: HashMap<(String, String), NaiveDate>,
    #[serde(with = "crate::engine::snapshot::pairs")]
    rotation: HashMap<String, usize>,
    due: BTreeSet<(Millis, Due)>,
    parked: BTreeSet<(Millis, Due)>,
    next_prune: Millis,
}

/// A [`RobotState`] by reference ([`Robot::state_ref`]): the same fields in the same
/// order, so it serialises to the same bytes without copying the robot's maps.
#[derive(serde::Serialize)]
pub(crate) struct RobotStateRef<'a> {
    #[serde(serialize_with = "crate::engine::snapshot::pairs::serialize_ref")]
    convs: &'a HashMap<String, Conv>,
    #[serde(serialize_with = "crate::engine::snapshot::pairs::serialize_ref")]
    presence: &'a HashMap<String, (String, Presence)>,
    orders: &'a OrderBook,
    #[serde(serialize_with = "crate::engine::snapshot::pairs::serialize_ref")]
    greeted: &'a HashMap<(String, String), NaiveDate>,
    #[serde(serialize_with = "crate::engine::snapshot::pairs::serialize_ref")]
    rotation: &'a HashMap<String, usize>,
    due: &'a BTreeSet<(Millis, Due)>,
    parked: &'a BTreeSet<(Millis, Due)>,
    next_prune: Millis,
}

/// The robot's state. One per process; events for every shop go through it.
#[derive(Debug)]
pub struct Robot {
    replies: Arc<Replies>,
    convs: HashMap<String, Conv>,
    /// Conversations in `convs` per agent, kept with every change to `convs`, so choosing
    /// the least-loaded agent for a transfer does not walk every conversation (with
    /// thousands open, that walk was most of the live runtime's time).
    load: HashMap<String, usize>,
    presence: HashMap<String, (String, Presence)>,
    orders: OrderBook,
    /// The Shanghai day each (shop, buyer) was last greeted, for `greeting_per_day`.
    greeted: HashMap<(String, String), NaiveDate>,
    /// No day in `greeted` is before this (`None`: unknown, after a restore), so a prune
    /// that would keep every entry skips its walk. Derived, not in snapshots.
    greeted_floor: Option<NaiveDate>,
    scratch: Scratch,
    rotation: HashMap<String, usize>,
    due: BTreeSet<(Millis, Due)>,
    /// Rescues whose deadline was already stale when the wall clock passed it (a backlog
    /// being caught up): decided by event time instead, when an event after the deadline
    /// arrives, so an agent reply further on in the backlog still cancels them and the
    /// recorded hits and misses do not depend on how the backlog was batched.
    parked: BTreeSet<(Millis, Due)>,
    /// When old orders and greetings are next dropped.
    next_prune: Millis,
}

impl Robot {
    /// A robot serving `replies`.
    pub fn new(replies: Arc<Replies>) -> Self {
        Self {
            replies,
            convs: HashMap::new(),
            load: HashMap::new(),
            presence: HashMap::new(),
            orders: OrderBook::default(),
            greeted: HashMap::new(),
            greeted_floor: None,
            scratch: Scratch::default(),
            rotation: HashMap::new(),
            due: BTreeSet::new(),
            parked: BTreeSet::new(),
            next_prune: Millis::MIN,
        }
    }

    /// The robot's state, for a snapshot.
    #[must_use]
    pub fn state(&self) -> RobotState {
        RobotState {
            convs: self.convs.clone(),
            presence: self.presence.clone(),
            orders: self.orders.clone(),
            greeted: self.greeted.clone(),
            rotation: self.rotation.clone(),
            due: self.due.clone(),
            parked: self.parked.clone(),
            next_prune: self.next_prune,
        }
    }

    /// The same state as [`Robot::state`] for serialising, by reference (no copy).
    pub(crate) fn state_ref(&self) -> RobotStateRef<'_> {
        RobotStateRef {
            convs: &self.convs,
            presence: &self.presence,
            orders: &self.orders,
            greeted: &self.greeted,
            rotation: &self.rotation,
            due: &self.due,
            parked: &self.parked,
            next_prune: self.next_prune,
        }
    }

    /// A robot in `state`, serving `replies`: it goes on as the robot the state was taken
    /// from would.
    #[must_use]
    pub fn restore(replies: Arc<Replies>, state: RobotState) -> Self {
        let mut load: HashMap<String, usize> = HashMap::new();
        for c in state.convs.values() {
            *load.entry(c.agent.clone()).or_default() += 1;
        }
        Self {
            replies,
            convs: state.convs,
            load,
            presence: state.presence,
            orders: state.orders,
            greeted: state.greeted,
            greeted_floor: None,
            scratch: Scratch::default(),
            rotation: state.rotation,
            due: state.due,
            parked: state.parked,
            next_prune: state.next_prune,
        }
    }

    /// Serves a newly loaded set from now on (hot reload); conversation state is kept.
    pub fn set_replies(&mut self, replies: Arc<Replies>) {
        self.replies = replies;
    }

    /// The set being served.
    pub fn replies(&self) -> &Arc<Replies> {
        &self.replies
    }

    /// When [`Robot::advance`] next has something to do.
    pub fn next_due(&self) -> Option<Millis> {
        self.due.first().map(|d| d.0)
    }

    /// Fires every rescue due at or before `now` (the wall clock live, virtual time in
    /// tests); one whose deadline is more than `stale_after_s` behind `now` is decided (hit
    /// or miss) but not said.
    pub fn advance(&mut self, now: Millis) -> Vec<RobotAction> {
        let mut out = Vec::new();
        self.park_stale(now);
        // Parked rescues are left to event time.
        self.fire_due(now, true, false, now, &mut out);
        out
    }

    /// Drops old orders and greetings, once an hour of event time (they are kept for days).
    /// Conversations need no pass: each goes with its session's close, which the engine says.
    fn prune(&mut self, now: Millis) {
        if now < self.next_prune {
            return;
        }
        self.next_prune = now.saturating_add(HOUR_MS);
        self.orders.prune(now - 7 * 86_400_000);
        let yesterday = shanghai_day(now).pred_opt();
        // Hourly, but the days change once a day: most prunes would walk and keep all.
        if self.greeted_floor.is_none_or(|f| Some(f) < yesterday) {
            let mut floor = None;
            self.greeted.retain(|_, d| {
                let kept = Some(*d) >= yesterday;
                if kept {
                    floor = Some(floor.map_or(*d, |f: NaiveDate| f.min(*d)));
                }
                kept
            });
            // Empty: any day greeted next is the floor.
            self.greeted_floor = floor.or(Some(NaiveDate::MAX));
        }
    }

    /// Takes what the engine decided: a closed session's conversation is forgotten (its
    /// rescue cancelled), an answered wait ends the buyer's wait here too. A transfer keeps
    /// the wait (the buyer still waits; the new agent owes the answer).
    fn observe(&mut self, outputs: &[Output]) {
        for o in outputs {
            match o {
                Output::SessionClosed { conversation, .. } => {
                    if let Some(c) = self.convs.remove(&**conversation) {
                        unload(&mut self.load, &c.agent);
                        self.cancel_rescue(conversation, c.wait.as_ref());
                    }
                }
                Output::WaitEnded(w) if w.outcome == Outcome::Answered => {
                    let wait = self.convs.get_mut(&*w.conversation).and_then(|c| c.wait.take());
                    self.cancel_rescue(&w.conversation, wait.as_ref());
                }
                _ => {}
            }
        }
    }

    /// Takes one event, with the engine's `outputs` for it (`Engine::handle`'s: the sessions
    /// it closed and opened, the waits it ended and started), at wall-clock `now`. What the
    /// robot decides is a function of the events alone (shifts, rate limits and rescues go
    /// by event time); `now` only gates speaking: nothing is said to a message more than
    /// `stale_after_s` older than `now`, so a backlog caught up after an outage is recorded
    /// but not answered.
    /// Rescues due strictly before the event's time fire first, then the outputs are taken,
    /// so an agent reply at the very millisecond of the deadline still cancels it, and a
    /// backlog's waits answered within it are never rescued.
    pub fn handle(&mut self, ev: &Event, outputs: &[Output], now: Millis) -> Vec<RobotAction> {
        let mut out = Vec::new();
        self.fire_due(ev.ts, false, true, now, &mut out);
        // By event time, so what the robot keeps is a function of the events.
        self.prune(ev.ts);
        self.observe(outputs);
        match &ev.kind {
            EventKind::Presence { agent, status } => {
                self.presence.insert(agent.clone(), (ev.shop.clone(), *status));
            }
            EventKind::Order { customer, order, status, shipment, .. } => {
                let created = self.orders.apply(&ev.shop, customer, order, *status, shipment.as_ref(), ev.ts);
                let set = self.replies.robot.resolve(&ev.shop, "");
                if created && set.payment_reminder_after_ms > 0 && !set.payment_reminder_text.is_empty() {
                    self.due.insert((ev.ts + set.payment_reminder_after_ms, Due::Reminder(order.clone())));
                }
            }
            // A buyer's rating is for scoring; the robot neither answers nor counts it.
            EventKind::Evaluation { .. } => {}
            EventKind::Transfer { conversation, to_agent, .. } => {
                if let Some(c) = self.convs.get_mut(conversation) {
                    unload(&mut self.load, &c.agent);
                    *self.load.entry(to_agent.clone()).or_default() += 1;
                    c.agent = to_agent.clone();
                    c.offered_to = None;
                }
            }
            // The session's close comes as the engine's output.
            EventKind::Close { .. } => {}
            EventKind::Message { conversation, customer, agent, from, text } => match from {
                // Never answered, and never the end of a wait (the engine's rule).
                Sender::Bot | Sender::System => {}
                Sender::Agent => {
                    // The wait it answers has ended through the engine's output.
                    self.session(ev, conversation, "", agent);
                    if let Some(p) = self.replies.quick.sent_by(agent, text) {
                        out.push(RobotAction::PhraseUsed {
                            shop: ev.shop.clone(),
                            owner: p.agent.clone(),
                            code: p.code.clone(),
                            ts: ev.ts,
                        });
                    }
                }
                Sender::Customer => {
                    let mut said = Vec::new();
                    self.buyer_message(ev, conversation, customer, agent, text, &mut said);
                    let stale = self.replies.robot.resolve(&ev.shop, agent).stale_after_ms;
                    out.extend(gate(said, now - ev.ts, stale));
                }
            },
        }
        out
    }

    /// A restart at wall-clock `now`: timers that fell due more than `stale_after_s` ago are
    /// left to event time, as a stale one always is (decided by the first event after their
    /// deadline, never said), so what is decided does not depend on when kefu restarted;
    /// fresher ones may have fired before the restart and are dropped unsaid, so nothing is
    /// said or counted twice.
    pub fn skip_to(&mut self, now: Millis) {
        self.park_stale(now);
        let mut gone = Vec::new();
        self.fire_due(now, true, false, now, &mut gone);
    }

    /// Moves the timers due more than `stale_after_s` before `now` to `parked`.
    fn park_stale(&mut self, now: Millis) {
        // The shortest limit of any shop decides what is parked; a timer parked early is
        // still fired by the next event after it, silently only if it is stale for its own.
        let stale = self.replies.robot.min_stale_after_ms();
        while let Some((at, d)) = self.due.first().cloned() {
            if now - at <= stale {
                break;
            }
            self.due.pop_first();
            self.parked.insert((at, d));
        }
    }

    /// Fires rescues due (and parked ones with `parked`) before `until` (at it too when
    /// `inclusive`), in deadline order; `now` is the wall clock that gates speaking.
    fn fire_due(
        &mut self,
        until: Millis,
        inclusive: bool,
        parked: bool,
        now: Millis,
        out: &mut Vec<RobotAction>,
    ) {
        loop {
            // Looked at in place and taken only when due: this runs with every event, and
            // most find nothing due (a clone of the first timer was an allocation each).
            let from_due = match (self.due.first(), self.parked.first().filter(|_| parked)) {
                (Some(d), Some(p)) => d <= p,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let first = if from_due { self.due.first() } else { self.parked.first() };
            if first.is_none_or(|(at, _)| *at > until || (*at == until && !inclusive)) {
                break;
            }
            let taken = if from_due { self.due.pop_first() } else { self.parked.pop_first() };
            let Some((at, d)) = taken else { break };
            match d {
                Due::Rescue(conv) => self.rescue(&conv, at, now, out),
                Due::Reminder(order) => self.remind(&order, at, now, out),
            }
        }
    }

    /// 催付: one reminder for an order still unpaid at its deadline, outside quiet hours,
    /// in the buyer's latest conversation; counted for the shop.
    fn remind(&mut self, order: &str, at: Millis, now: Millis, out: &mut Vec<RobotAction>) {
        let Some((shop, customer, conv)) = self.orders.claim_reminder(order, at) else { return };
        let replies = Arc::clone(&self.replies);
        let set = replies.robot.resolve(&shop, "");
        if set.quiet_hours.is_some_and(|q| q.covers_at(at)) {
            return;
        }
        let Some(conversation) = conv else { return };
        let info = self.orders.latest(&shop, &customer);
        let vars = Vars {
            buyer: Some(&customer),
            shop: Some(&shop),
            order: Some(order),
            order_status: info.map(|o| status_words(o.status)),
            ..Vars::default()
        };
        let Some(text) = set.payment_reminder_text.render(&vars).filter(|t| !t.trim().is_empty()) else {
            return;
        };
        out.push(RobotAction::Figure {
            shop: shop.clone(),
            conversation: conversation.clone(),
            ts: at,
            kind: FigureKind::Reminder,
        });
        let said = vec![RobotAction::Send {
            conversation,
            text,
            as_bot: true,
            reason: Reason::PaymentReminder,
            rule: None,
        }];
        out.extend(gate(said, now - at, set.stale_after_ms));
    }

    fn cancel_rescue(&mut self, conversation: &str, wait: Option<&Wait>) {
        if let Some(due) = wait.and_then(|w| w.rescue_due) {
            let key = (due, Due::Rescue(conversation.to_string()));
            if !self.due.remove(&key) {
                self.parked.remove(&key);
            }
        }
    }

    /// The conversation's state in its session (the first message of a session starts it
    /// afresh: the engine's close removed the last one), assigned to `agent`. Looked up
    /// before it is inserted: a key is allocated only for a new session, not per message.
    fn session(&mut self, ev: &Event, conversation: &str, customer: &str, agent: &str) -> Option<&mut Conv> {
        if !self.convs.contains_key(conversation) {
            *self.load.entry(agent.to_string()).or_default() += 1;
            let conv = Conv {
                shop: ev.shop.clone(),
                customer: customer.to_string(),
                agent: agent.to_string(),
                greeted: false,
                offered_to: None,
                wait: None,
                sent: VecDeque::new(),
            };
            self.convs.insert(conversation.to_string(), conv);
        }
        let c = self.convs.get_mut(conversation)?;
        if c.agent != agent {
            unload(&mut self.load, &c.agent);
            *self.load.entry(agent.to_string()).or_default() += 1;
            c.agent = agent.to_string();
        }
        Some(c)
    }

    fn buyer_message(
        &mut self,
        ev: &Event,
        conversation: &str,
        customer: &str,
        agent: &str,
        text: &str,
        out: &mut Vec<RobotAction>,
    ) {
        let now = ev.ts;
        let replies = Arc::clone(&self.replies);
        let set = replies.robot.resolve(&ev.shop, agent);
        let away = set.away && self.is_away(agent, now, set.busy_is_away);
        let transfer_to = if away { self.least_loaded(&ev.shop, agent, now) } else { None };
        self.orders.saw_buyer(&ev.shop, customer, conversation, now);
        if set.transfer_keywords.iter().any(|k| text.contains(k.as_str())) {
            out.push(RobotAction::Figure {
                shop: ev.shop.clone(),
                conversation: conversation.to_string(),
                ts: now,
                kind: FigureKind::Handoff,
            });
        }

        let Some(c) = self.session(ev, conversation, customer, agent) else { return };
        // Assigned only when it changed, and the wait's text copied into its buffer: these
        // ran on every buyer message, and the allocations showed in the live profile.
        if c.customer != customer {
            c.customer = customer.to_string();
        }
        let wait = c.wait.get_or_insert(Wait {
            last_text: String::new(),
            last_ts: ev.ts,
            rescue_due: None,
            rescued: false,
            away_text_sent: false,
        });
        wait.last_text.clear();
        wait.last_text.push_str(text);
        wait.last_ts = ev.ts;

        if c.offered_to.is_some() && set.transfer_keywords.iter().any(|k| text.contains(k.as_str())) {
            if let Some(to) = c.offered_to.take() {
                out.push(RobotAction::Transfer {
                    conversation: conversation.to_string(),
                    from_agent: agent.to_string(),
                    to_agent: to,
                });
            }
            return;
        }
        if !c.greeted {
            c.greeted = true;
            // Once per buyer per Shanghai day (or per session, if the shop says so).
            let today = shanghai_day(now);
            let key = (ev.shop.clone(), customer.to_string());
            let again = set.greeting_per_day && self.greeted.get(&key) == Some(&today);
            self.greeted.insert(key, today);
            self.greeted_floor = self.greeted_floor.map(|f| f.min(today));
            if !again {
                self.say(conversation, now, &set, set.greeting, Reason::Greeting, out);
            }
        }

        let rule = self.answer(conversation, text, now, &set);
        if away {
            match rule {
                Some((rule_id, answer)) => {
                    self.send(conversation, now, &set, answer, Reason::Away, Some(rule_id), out);
                }
                None => {
                    self.miss(conversation, ev.ts, text, out);
                    let first = self
                        .convs
                        .get(conversation)
                        .and_then(|c| c.wait.as_ref())
                        .is_some_and(|w| !w.away_text_sent);
                    if first {
                        self.say(conversation, now, &set, set.away_text, Reason::Away, out);
                        if let Some(w) = self.convs.get_mut(conversation).and_then(|c| c.wait.as_mut()) {
                            w.away_text_sent = true;
                        }
                    }
                }
            }
            let offered = self.convs.get(conversation).is_some_and(|c| c.offered_to.is_some());
            if let (Some(to), false, false) = (transfer_to, offered, set.transfer_offer.is_empty()) {
                let vars = Vars { transfer_agent: Some(&to), ..self.vars(conversation) };
                if let Some(text) = set.transfer_offer.render(&vars)
                    && self.send(conversation, now, &set, text, Reason::TransferOffer, None, out)
                    && let Some(c) = self.convs.get_mut(conversation)
                {
                    c.offered_to = Some(to);
                }
            }
            return;
        }

        // 人工优先: an agent with more than `load_answer_above` buyers waiting has the
        // questions the robot knows answered at once; the rest stay theirs (and the rescue).
        if let (true, Some((rule_id, answer))) = (set.load_answer_above > 0, &rule)
            && self.waiting(agent) > set.load_answer_above as usize
        {
            self.send(conversation, now, &set, answer.clone(), Reason::Load, Some(rule_id.clone()), out);
            return;
        }
        if let (true, Some((rule_id, answer))) = (set.suggest, rule) {
            out.push(RobotAction::Hit { shop: ev.shop.clone(), rule: rule_id.clone(), ts: ev.ts });
            out.push(RobotAction::Suggest {
                agent: agent.to_string(),
                conversation: conversation.to_string(),
                text: answer,
                rule: rule_id,
            });
        }
        let Some(c) = self.convs.get_mut(conversation) else { return };
        let Some(w) = c.wait.as_mut() else { return };
        if set.rescue_after_ms > 0 && w.rescue_due.is_none() && !w.rescued {
            // Armed by the wait's first buyer message the robot did not already answer
            // in away mode: usually the wait's start, as the response clock counts it.
            let due = ev.ts + set.rescue_after_ms;
            w.rescue_due = Some(due);
            self.due.insert((due, Due::Rescue(conversation.to_string())));
        }
    }

    fn rescue(&mut self, conversation: &str, at: Millis, now: Millis, out: &mut Vec<RobotAction>) {
        let Some(c) = self.convs.get_mut(conversation) else { return };
        let Some(w) = c.wait.as_mut() else { return };
        if w.rescue_due != Some(at) {
            return;
        }
        w.rescue_due = None;
        w.rescued = true;
        let (text, ts) = (w.last_text.clone(), w.last_ts);
        let replies = Arc::clone(&self.replies);
        let set = replies.robot.resolve(&c.shop, &c.agent);
        let mut said = Vec::new();
        match self.answer(conversation, &text, at, &set) {
            Some((rule, answer)) => {
                self.send(conversation, at, &set, answer, Reason::Rescue, Some(rule), &mut said);
            }
            None => {
                self.miss(conversation, ts, &text, &mut said);
                self.say(conversation, at, &set, set.rescue_text, Reason::Rescue, &mut said);
            }
        }
        out.extend(gate(said, now - at, set.stale_after_ms));
    }

    /// The next answer variant of the rule that answers `text` at `ts` (keywords, then
    /// similar questions; the conversation's shop, agent and order decide which rules may),
    /// rendered; `None` when no rule answers or no variant can be filled in.
    fn answer(
        &mut self,
        conversation: &str,
        text: &str,
        ts: Millis,
        set: &Settings<'_>,
    ) -> Option<(String, String)> {
        let replies = Arc::clone(&self.replies);
        let c = self.convs.get(conversation)?;
        let ask = Ask {
            shop: &c.shop,
            agent: &c.agent,
            ts,
            order: self.orders.latest(&c.shop, &c.customer).map(|o| o.status),
        };
        let (r, _how): (usize, How) =
            replies.auto.find(text, &ask, set.similar_threshold, &mut self.scratch)?;
        let rule = &replies.auto.rules()[r];
        let vars = self.vars(conversation);
        let n = rule.answers.len();
        let turn = self.rotation.get(&rule.id).copied().unwrap_or(0);
        let (k, text) = (0..n).find_map(|k| rule.answers[(turn + k) % n].render(&vars).map(|s| (k, s)))?;
        self.rotation.insert(rule.id.clone(), (turn + k + 1) % n);
        Some((rule.id.clone(), text))
    }

    fn vars(&self, conversation: &str) -> Vars<'_> {
        let Some(c) = self.convs.get(conversation) else { return Vars::default() };
        let order = self.orders.latest(&c.shop, &c.customer);
        let shipment = order.and_then(|o| o.shipment.as_ref());
        Vars {
            buyer: Some(&c.customer),
            agent: Some(&c.agent),
            shop: Some(&c.shop),
            order: order.map(|o| o.order.as_str()),
            transfer_agent: None,
            order_status: order.map(|o| status_words(o.status)),
            courier: shipment.map(|s| s.courier.as_str()),
            tracking: shipment.map(|s| s.tracking.as_str()),
        }
    }

    /// Sends a settings text (greeting, away, rescue), variables filled in.
    fn say(
        &mut self,
        conversation: &str,
        now: Millis,
        set: &Settings<'_>,
        template: &Template,
        reason: Reason,
        out: &mut Vec<RobotAction>,
    ) {
        // An empty text turns the message off: silence, not an empty message.
        if template.is_empty() {
            return;
        }
        if let Some(text) = template.render(&self.vars(conversation)) {
            self.send(conversation, now, set, text, reason, None, out);
        }
    }

    /// Sends unless the conversation has had `max_per_hour` robot messages in the last hour.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        conversation: &str,
        now: Millis,
        set: &Settings<'_>,
        text: String,
        reason: Reason,
        rule: Option<String>,
        out: &mut Vec<RobotAction>,
    ) -> bool {
        if text.trim().is_empty() {
            return false;
        }
        let Some(c) = self.convs.get_mut(conversation) else { return false };
        while c.sent.front().is_some_and(|&t| t <= now - HOUR_MS) {
            c.sent.pop_front();
        }
        if c.sent.len() >= set.max_per_hour as usize {
            return false;
        }
        c.sent.push_back(now);
        if let Some(r) = &rule {
            out.push(RobotAction::Hit { shop: c.shop.clone(), rule: r.clone(), ts: now });
            out.push(RobotAction::Figure {
                shop: c.shop.clone(),
                conversation: conversation.to_string(),
                ts: now,
                kind: FigureKind::Answered,
            });
        }
        out.push(RobotAction::Send {
            conversation: conversation.to_string(),
            text,
            as_bot: true,
            reason,
            rule,
        });
        true
    }

    fn miss(&self, conversation: &str, ts: Millis, text: &str, out: &mut Vec<RobotAction>) {
        let shop = self.convs.get(conversation).map(|c| c.shop.clone()).unwrap_or_default();
        out.push(RobotAction::Miss {
            shop,
            conversation: conversation.to_string(),
            ts,
            text: text.to_string(),
        });
    }

    fn is_away(&self, agent: &str, now: Millis, busy_is_away: bool) -> bool {
        let status = self.presence.get(agent).map(|p| p.1);
        matches!(status, Some(Presence::Away | Presence::Offline))
            || (busy_is_away && status == Some(Presence::Busy))
            || !self.replies.shifts.on_shift(agent, now)
    }

    /// How many of `agent`'s buyers are waiting for a reply (a walk over the open
    /// conversations, done only when a load trigger is set and a rule would answer).
    fn waiting(&self, agent: &str) -> usize {
        self.convs.values().filter(|c| c.agent == agent && c.wait.is_some()).count()
    }

    /// The online, on-shift agent of `shop` (other than `except`) with the fewest open
    /// conversations; ties go to the name first in order, so the choice is reproducible.
    fn least_loaded(&self, shop: &str, except: &str, now: Millis) -> Option<String> {
        self.presence
            .iter()
            .filter(|(a, (s, p))| {
                s == shop
                    && *p == Presence::Online
                    && a.as_str() != except
                    && self.replies.shifts.on_shift(a, now)
            })
            .map(|(a, _)| (self.load.get(a).copied().unwrap_or(0), a))
            .min()
            .map(|(_, a)| a.clone())
    }
}

/// The actions decided for a moment `late_ms` behind the wall clock: all of them when it
/// is at most `stale_ms`, else only the bookkeeping (hits, misses), which stays a function
/// of the events; greetings, answers, suggestions and transfers to a stale message would
/// reach a buyer who asked long ago (or was answered meanwhile).
#[must_use]
fn gate(actions: Vec<RobotAction>, late_ms: i64, stale_ms: i64) -> Vec<RobotAction> {
    if late_ms <= stale_ms {
        return actions;
    }
    actions.into_iter().filter(|a| !a.is_said()).collect()
}

/// One conversation fewer for `agent`.
fn unload(load: &mut HashMap<String, usize>, agent: &str) {
    if let Some(n) = load.get_mut(agent) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            load.remove(agent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339_ms;

    const SHOP: &str = "毛菇小象";

    /// 2026-11-11 10:00:00 Shanghai: inside 小美's 白班, outside 阿强's 晚班.
    fn t0() -> Millis {
        parse_rfc3339_ms("2026-11-11T10:00:00+08:00").unwrap()
    }

    /// The robot beside the engine whose outputs it takes, as the runtime runs them.
    struct Bot {
        robot: Robot,
        engine: crate::engine::Engine,
    }

    impl Bot {
        fn new(robot: Robot) -> Self {
            let rules = crate::rules::response_time::ResponseRules::default();
            Self { robot, engine: crate::engine::Engine::new(rules, crate::alerts::Plan::default()) }
        }

        /// The engine, then the robot, on one event.
        fn handle(&mut self, ev: &Event, now: Millis) -> Vec<RobotAction> {
            let mut out = Vec::new();
            self.engine.handle(ev, &mut out, &mut Vec::new());
            self.robot.handle(ev, &out, now)
        }
    }

    impl std::ops::Deref for Bot {
        type Target = Robot;
        fn deref(&self) -> &Robot {
            &self.robot
        }
    }

    impl std::ops::DerefMut for Bot {
        fn deref_mut(&mut self) -> &mut Robot {
            &mut self.robot
        }
    }

    /// The session's idle time, the engine's rule.
    fn idle_close_ms() -> Millis {
        crate::rules::response_time::ResponseRules::default().idle_close_ms
    }

    fn robot() -> Bot {
        Bot::new(Robot::new(Arc::new(crate::replies::load(None, None).unwrap())))
    }

    fn ev(ts: Millis, kind: EventKind) -> Event {
        Event { id: format!("e{ts}"), ts, shop: SHOP.into(), kind }
    }

    fn msg(ts: Millis, conv: &str, agent: &str, from: Sender, text: &str) -> Event {
        ev(
            ts,
            EventKind::Message {
                conversation: conv.into(),
                // One buyer per conversation.
                customer: format!("tb_buyer_{conv}"),
                agent: agent.into(),
                from,
                text: text.into(),
            },
        )
    }

    fn presence(ts: Millis, agent: &str, status: Presence) -> Event {
        ev(ts, EventKind::Presence { agent: agent.into(), status })
    }

    /// The robot's sends as (reason, rule, text).
    fn sends(actions: &[RobotAction]) -> Vec<(Reason, Option<String>, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                RobotAction::Send { text, reason, rule, as_bot, .. } => {
                    assert!(as_bot, "robot messages always go out as the bot");
                    Some((*reason, rule.clone(), text.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn reasons(actions: &[RobotAction]) -> Vec<Reason> {
        sends(actions).into_iter().map(|s| s.0).collect()
    }

    #[test]
    fn away_agent_buyer_asking_express_gets_the_shipping_answer() {
        let mut r = robot();
        let t = t0();
        r.handle(&presence(t - 60_000, "小美", Presence::Away), t - 60_000);
        let out = r.handle(&msg(t, "c1", "小美", Sender::Customer, "发什么快递"), t);
        let s = sends(&out);
        assert_eq!(s[0].0, Reason::Greeting);
        assert_eq!(s[1].0, Reason::Away);
        assert_eq!(s[1].1.as_deref(), Some("express"));
        let rules = r.replies().auto.rules();
        let express = rules.iter().find(|x| x.id == "express").unwrap();
        assert_eq!(express.category, crate::replies::auto::Category::Shipping);
        assert!(s[1].2.contains("中通"), "{}", s[1].2);
        assert!(out.contains(&RobotAction::Hit { shop: SHOP.into(), rule: "express".into(), ts: t }));
        assert_eq!(r.next_due(), None, "no rescue is armed for a buyer the robot already answered");
    }

    #[test]
    fn agent_answering_within_rescue_time_leaves_the_robot_silent() {
        let mut r = robot();
        let t = t0();
        r.handle(&presence(t - 60_000, "小美", Presence::Online), t - 60_000);
        let first = r.handle(&msg(t, "c1", "小美", Sender::Customer, "在吗"), t);
        assert_eq!(reasons(&first), vec![Reason::Greeting]);
        assert!(r.handle(&msg(t + 5_000, "c1", "小美", Sender::Agent, "在的亲"), t + 5_000).is_empty());
        let q = t + 20_000;
        let out = r.handle(&msg(q, "c1", "小美", Sender::Customer, "发什么快递"), q);
        assert!(sends(&out).is_empty(), "{out:?}");
        assert!(out.iter().any(
            |a| matches!(a, RobotAction::Suggest { agent, rule, .. } if agent == "小美" && rule == "express")
        ));
        assert!(out.contains(&RobotAction::Hit { shop: SHOP.into(), rule: "express".into(), ts: q }));
        assert!(r.handle(&msg(q + 9_000, "c1", "小美", Sender::Agent, "默认中通哦"), q + 9_000).is_empty());
        assert_eq!(r.next_due(), None);
        assert!(r.advance(q + 3_600_000).is_empty());
    }

    #[test]
    fn rescue_is_cancelled_by_an_agent_reply_at_14_9_s_and_sent_at_15_s() {
        for (agent_reply_at, want_rescue) in [(Some(14_900), false), (Some(15_000), false), (None, true)] {
            let mut r = robot();
            let t = t0();
            r.handle(&msg(t, "c1", "小美", Sender::Customer, "这个能开发票吗,我要报销"), t);
            assert_eq!(r.next_due(), Some(t + 15_000));
            if let Some(at) = agent_reply_at {
                assert!(r.advance(t + at - 1).is_empty());
                r.handle(&msg(t + at, "c1", "小美", Sender::Agent, "可以的亲"), t + at);
            }
            assert!(r.advance(t + 14_999).is_empty());
            let out = r.advance(t + 15_000);
            let got = sends(&out);
            assert_eq!(!got.is_empty(), want_rescue, "agent at {agent_reply_at:?}: {out:?}");
            if want_rescue {
                assert_eq!(got[0].0, Reason::Rescue);
                assert_eq!(got[0].1.as_deref(), Some("invoice"));
                assert!(r.advance(t + 100_000).is_empty(), "a rescue fires once per wait");
            }
        }
    }

    #[test]
    fn rescue_without_a_matching_rule_holds_and_records_the_miss() {
        let mut r = robot();
        let t = t0();
        r.handle(&msg(t, "c1", "小美", Sender::Customer, "你们老板是谁"), t);
        // The robot's own greeting coming back as a bot message must not end the wait.
        r.handle(&msg(t + 100, "c1", "小美", Sender::Bot, "亲,您好!"), t + 100);
        r.handle(&msg(t + 200, "c1", "小美", Sender::System, "买家已进店"), t + 200);
        let out = r.advance(t + 15_000);
        let s = sends(&out);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].0, s[0].1.clone()), (Reason::Rescue, None));
        assert!(s[0].2.contains("请稍等"), "{}", s[0].2);
        assert!(
            out.iter().any(
                |a| matches!(a, RobotAction::Miss { text, ts, .. } if text == "你们老板是谁" && *ts == t)
            )
        );
    }

    #[test]
    fn greeting_once_per_session_when_the_shop_says_so() {
        let text = include_str!("../../replies/robot.toml")
            .replace("greeting_per_day = true", "greeting_per_day = false");
        assert!(text.contains("greeting_per_day = false"));
        let mut replies = crate::replies::load(None, None).unwrap();
        replies.robot = crate::replies::settings::parse(std::path::Path::new("robot.toml"), &text).unwrap();
        let mut r = Bot::new(Robot::new(Arc::new(replies)));
        let t = t0();
        let greets = |out: Vec<RobotAction>| reasons(&out).iter().filter(|x| **x == Reason::Greeting).count();
        let steps = [
            (0, Sender::Customer, "在吗", 1),
            (1_000, Sender::Customer, "有人吗", 0),
            (2_000, Sender::Agent, "在的", 0),
            (3_000, Sender::Customer, "好的", 0),
        ];
        for (dt, from, text, want) in steps {
            assert_eq!(greets(r.handle(&msg(t + dt, "c1", "小美", from, text), t + dt)), want, "{text}");
        }
        r.handle(&ev(t + 4_000, EventKind::Close { conversation: "c1".into() }), t + 4_000);
        let out = r.handle(&msg(t + 5_000, "c1", "小美", Sender::Customer, "又来了"), t + 5_000);
        assert_eq!(greets(out), 1, "a closed conversation's next message opens a new session");
        let later = t + 5_000 + idle_close_ms();
        let out = r.handle(&msg(later, "c1", "小美", Sender::Customer, "在吗"), later);
        assert_eq!(greets(out), 1, "a long silence opens a new session");
    }

    /// Issue 15: by default a buyer is greeted at most once per Shanghai day, however many
    /// sessions (a close, 30 idle minutes) they open.
    #[test]
    fn greeting_once_per_buyer_per_day() {
        let mut r = robot();
        let t = t0();
        let greets = |out: Vec<RobotAction>| reasons(&out).iter().filter(|x| **x == Reason::Greeting).count();
        assert_eq!(greets(r.handle(&msg(t, "c1", "小美", Sender::Customer, "在吗"), t)), 1);
        r.handle(&ev(t + 4_000, EventKind::Close { conversation: "c1".into() }), t + 4_000);
        let out = r.handle(&msg(t + 5_000, "c1", "小美", Sender::Customer, "又来了"), t + 5_000);
        assert_eq!(greets(out), 0, "same day, new session: no second greeting");
        let later = t + 2 * 3_600_000;
        assert_eq!(greets(r.handle(&msg(later, "c1", "小美", Sender::Customer, "在吗"), later)), 0);
        let next_day = parse_rfc3339_ms("2026-11-12T09:00:00+08:00").unwrap();
        assert_eq!(greets(r.handle(&msg(next_day, "c1", "小美", Sender::Customer, "在吗"), next_day)), 1);
    }

    #[test]
    fn never_answers_bot_or_system_messages() {
        let mut r = robot();
        let t = t0();
        r.handle(&presence(t, "小美", Presence::Offline), t);
        for from in [Sender::Bot, Sender::System] {
            assert!(r.handle(&msg(t + 1, "c1", "小美", from, "发什么快递"), t + 1).is_empty());
        }
        assert_eq!(r.next_due(), None);
    }

    #[test]
    fn at_most_max_per_hour_robot_messages_per_conversation() {
        let mut r = robot();
        let t = t0();
        r.handle(&presence(t, "小美", Presence::Away), t);
        let mut sent = 0;
        for i in 0..10 {
            let at = t + i * 60_000;
            sent += sends(&r.handle(&msg(at, "c1", "小美", Sender::Customer, "发什么快递"), at)).len();
        }
        assert_eq!(sent, 6, "robot.toml: max_per_hour = 6");
        // Keep the session open (idle_close 30 min) until the first two sends, at t, leave the hour.
        for at in [t + 25 * 60_000, t + 50 * 60_000] {
            assert!(sends(&r.handle(&msg(at, "c1", "小美", Sender::Customer, "发什么快递"), at)).is_empty());
        }
        let at = t + 3_600_000 + 1;
        assert_eq!(sends(&r.handle(&msg(at, "c1", "小美", Sender::Customer, "发什么快递"), at)).len(), 1);
    }

    #[test]
    fn off_shift_agent_is_away_and_transfer_goes_to_least_loaded_online_agent() {
        let mut r = robot();
        // 20:00 Shanghai: 小美 (白班) is off shift; 阿强 and 阿珍 (晚班) are on.
        let t = parse_rfc3339_ms("2026-11-11T20:00:00+08:00").unwrap();
        r.handle(&presence(t, "阿强", Presence::Online), t);
        r.handle(&presence(t, "阿珍", Presence::Online), t);
        r.handle(&presence(t, "小雪", Presence::Online), t);
        r.handle(&msg(t, "busy", "阿珍", Sender::Customer, "在吗"), t);
        let out = r.handle(&msg(t + 10, "c1", "小美", Sender::Customer, "衣服什么面料"), t + 10);
        let s = sends(&out);
        assert_eq!(
            s.iter().map(|x| x.0).collect::<Vec<_>>(),
            [Reason::Greeting, Reason::Away, Reason::TransferOffer]
        );
        assert!(s[2].2.contains("阿强"), "阿强 is on shift with no conversation: {}", s[2].2);
        let out = r.handle(&msg(t + 20, "c1", "小美", Sender::Customer, "转人工"), t + 20);
        assert_eq!(
            out,
            vec![
                RobotAction::Figure {
                    shop: SHOP.into(),
                    conversation: "c1".into(),
                    ts: t + 20,
                    kind: FigureKind::Handoff
                },
                RobotAction::Transfer {
                    conversation: "c1".into(),
                    from_agent: "小美".into(),
                    to_agent: "阿强".into()
                }
            ]
        );
    }

    #[test]
    fn away_message_without_a_rule_is_said_once_per_wait() {
        let mut r = robot();
        let t = t0();
        r.handle(&presence(t, "小美", Presence::Away), t);
        let a = r.handle(&msg(t, "c1", "小美", Sender::Customer, "你们老板是谁"), t);
        let b = r.handle(&msg(t + 1_000, "c1", "小美", Sender::Customer, "老板是哪里人"), t + 1_000);
        assert_eq!(reasons(&a), [Reason::Greeting, Reason::Away]);
        assert!(reasons(&b).is_empty(), "{b:?}");
        assert_eq!(b.iter().filter(|x| matches!(x, RobotAction::Miss { .. })).count(), 1);
    }

    #[test]
    fn answer_variants_rotate_and_order_variable_fills_in() {
        let mut r = robot();
        let t = t0();
        r.handle(&presence(t, "小美", Presence::Away), t);
        let order = EventKind::Order {
            customer: "tb_buyer_c1".into(),
            order: "T2026111100042".into(),
            status: crate::event::OrderStatus::Paid,
            amount: rust_decimal::Decimal::new(19900, 2),
            shipping: None,
            shipment: None,
        };
        r.handle(&ev(t, order), t);
        let texts: Vec<String> = (0..3)
            .map(|i| {
                let at = t + i * 1000;
                let out = r.handle(&msg(at, "c1", "小美", Sender::Customer, "物流到哪了"), at);
                sends(&out).into_iter().find(|s| s.0 == Reason::Away).unwrap().2
            })
            .collect();
        assert!(texts[0].contains("T2026111100042"), "{}", texts[0]);
        assert_ne!(texts[0], texts[1]);
        assert_eq!(texts[0], texts[2]);
    }

    #[test]
    fn idle_conversations_are_dropped_and_do_not_count_as_load() {
        let mut r = robot();
        let t = parse_rfc3339_ms("2026-11-11T20:00:00+08:00").unwrap();
        r.handle(&presence(t, "阿强", Presence::Online), t);
        r.handle(&presence(t, "阿珍", Presence::Online), t);
        for i in 0..3 {
            r.handle(&msg(t, &format!("old{i}"), "阿强", Sender::Customer, "在吗"), t);
        }
        r.handle(&msg(t, "busy", "阿珍", Sender::Customer, "在吗"), t);
        r.advance(t + 20_000);
        assert_eq!(r.convs.len(), 4);
        // 阿强's three conversations go quiet; 阿珍's stays active. Their sessions close when
        // event time passes their idle close (the engine's rule; the wall clock closes none).
        let later = t + idle_close_ms();
        r.handle(&msg(later - 1, "busy", "阿珍", Sender::Customer, "还在吗"), later - 1);
        r.advance(later + 60_000);
        assert_eq!(r.convs.len(), 4, "no event has passed their idle close yet");
        let out = r.handle(&msg(later + 60_001, "c1", "小美", Sender::Customer, "面料"), later + 60_001);
        assert_eq!(r.convs.len(), 2, "busy and c1: the three idle ones were dropped");
        let offer = sends(&out).into_iter().find(|s| s.0 == Reason::TransferOffer).unwrap();
        assert!(offer.2.contains("阿强"), "阿强 has no open conversation left: {}", offer.2);
    }

    /// The per-agent load kept with every change equals a count over the conversations,
    /// through messages, transfers, closes, idle sessions and pruning in random order.
    #[test]
    fn the_kept_load_equals_a_recount() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};

        let mut r = robot();
        let agents = ["阿强", "阿珍", "小美"];
        let mut rng = SmallRng::seed_from_u64(3);
        let mut t = t0();
        for a in agents {
            r.handle(&presence(t, a, Presence::Online), t);
        }
        for step in 0..5_000 {
            t += rng.gen_range(0..120_000);
            let conv = format!("c{}", rng.gen_range(0..40));
            let agent = agents[rng.gen_range(0..agents.len())];
            let e = match rng.gen_range(0..10) {
                0 => ev(t, EventKind::Close { conversation: conv }),
                1 => ev(
                    t,
                    EventKind::Transfer {
                        conversation: conv,
                        from_agent: agent.into(),
                        to_agent: "阿珍".into(),
                    },
                ),
                2 => msg(t, &conv, agent, Sender::Agent, "好的"),
                _ => msg(t, &conv, agent, Sender::Customer, "在吗"),
            };
            r.handle(&e, t);
            r.advance(t);
            let mut recount: HashMap<String, usize> = HashMap::new();
            for c in r.convs.values() {
                *recount.entry(c.agent.clone()).or_default() += 1;
            }
            assert_eq!(r.load, recount, "step {step}");
        }
    }

    /// Issue 11: a backlog (events hours behind the wall clock) is decided — hits and
    /// misses exactly as live — but nothing is said; a wait answered within the backlog is
    /// never rescued.
    #[test]
    fn a_backlog_is_recorded_but_never_answered() {
        let t = t0();
        let wall = t + 3 * HOUR_MS;
        let feed = |r: &mut Bot, now: &dyn Fn(Millis) -> Millis| {
            let mut out = Vec::new();
            out.extend(r.handle(&presence(t, "小美", Presence::Away), now(t)));
            out.extend(r.handle(&msg(t + 1, "c1", "小美", Sender::Customer, "发什么快递"), now(t + 1)));
            out.extend(r.handle(&presence(t + 10, "小美", Presence::Online), now(t + 10)));
            out.extend(r.handle(&msg(t + 20, "c2", "小美", Sender::Customer, "你们老板是谁"), now(t + 20)));
            out.extend(r.handle(&msg(t + 9_000, "c2", "小美", Sender::Agent, "我就是"), now(t + 9_000)));
            out.extend(r.handle(&msg(t + 30, "c3", "小美", Sender::Customer, "能开发票吗"), now(t + 30)));
            out.extend(r.handle(&msg(t + 60_000, "c4", "小美", Sender::Customer, "在吗"), now(t + 60_000)));
            out.extend(r.advance(wall));
            // c4's rescue (due t + 75 s) is stale at `wall` in both runs: it waits for an
            // event after its deadline, which may be the agent's reply.
            out.extend(r.handle(&msg(t + 70_000, "c4", "小美", Sender::Agent, "在的"), now(t + 70_000)));
            out.extend(r.handle(&msg(t + 80_000, "c5", "小美", Sender::Customer, "在吗"), now(t + 80_000)));
            out
        };
        let live = feed(&mut robot(), &|ts| ts);
        let late = feed(&mut robot(), &|_| wall);
        let book = |v: &[RobotAction]| -> Vec<RobotAction> {
            v.iter()
                .filter(|a| matches!(a, RobotAction::Hit { .. } | RobotAction::Miss { .. }))
                .cloned()
                .collect()
        };
        assert!(!sends(&live).is_empty());
        assert!(sends(&late).is_empty(), "nothing said to a three-hour-old backlog: {late:?}");
        assert_eq!(book(&late), book(&live), "what is recorded does not depend on the wall clock");
        // c3 (never answered) was rescued at t + 15.03 s; c2, answered 9 s into its wait,
        // and c4, answered by an event later in the backlog than the wall clock's pass,
        // never were.
        let bk = book(&late);
        assert!(bk.contains(&RobotAction::Hit { shop: SHOP.into(), rule: "invoice".into(), ts: t + 15_030 }));
        assert!(
            !bk.iter().any(|a| matches!(a, RobotAction::Miss { conversation, .. } if conversation == "c2"))
        );
        assert!(!bk.iter().any(|a| matches!(a, RobotAction::Hit { ts, .. } if *ts == t + 75_000)), "{bk:?}");
    }

    #[test]
    fn a_message_just_inside_the_limit_is_answered_and_just_outside_is_not() {
        let limit = crate::replies::settings::DEFAULT_STALE_AFTER_MS;
        for (late, want) in [(limit, true), (limit + 1, false)] {
            let mut r = robot();
            let t = t0();
            r.handle(&presence(t, "小美", Presence::Away), t);
            let out = r.handle(&msg(t, "c1", "小美", Sender::Customer, "发什么快递"), t + late);
            assert_eq!(!sends(&out).is_empty(), want, "{late} ms late");
            // A rescue is said only within the limit after its deadline.
            let mut r = robot();
            r.handle(&msg(t, "c1", "小美", Sender::Customer, "能开发票吗"), t);
            let mut out = r.advance(t + 15_000 + late);
            assert_eq!(!sends(&out).is_empty(), want, "rescue {late} ms late");
            // A stale rescue is decided by the next event after its deadline.
            out.extend(r.handle(&presence(t + 15_001, "阿强", Presence::Online), t + 15_000 + late));
            assert!(out.iter().any(|a| matches!(a, RobotAction::Hit { .. })), "the hit counts either way");
        }
    }

    #[test]
    fn empty_away_and_rescue_texts_mean_silence() {
        let text = include_str!("../../replies/robot.toml")
            .replace("away_text = \"亲,客服{客服}", "away_text = \"\"\n# \"")
            .replace("rescue_text = \"亲,", "rescue_text = \"\"\n# \"");
        let settings = crate::replies::settings::parse(std::path::Path::new("robot.toml"), &text).unwrap();
        let mut replies = crate::replies::load(None, None).unwrap();
        replies.robot = settings;
        let mut r = Bot::new(Robot::new(Arc::new(replies)));
        let t = t0();
        r.handle(&presence(t, "小美", Presence::Away), t);
        let out = r.handle(&msg(t, "c1", "小美", Sender::Customer, "你们老板是谁"), t);
        assert_eq!(reasons(&out), [Reason::Greeting], "no away text: {out:?}");
        assert!(out.iter().any(|a| matches!(a, RobotAction::Miss { .. })));
        r.handle(&presence(t, "小美", Presence::Online), t);
        r.handle(&msg(t + 1_000, "c2", "小美", Sender::Customer, "你们老板是谁"), t + 1_000);
        let out = r.advance(t + 16_000);
        assert!(sends(&out).is_empty(), "no rescue text: {out:?}");
        assert!(out.iter().any(|a| matches!(a, RobotAction::Miss { .. })));
        assert!(sends(&out).iter().all(|s| !s.2.is_empty()));
    }

    #[test]
    fn an_agent_sending_a_quick_phrase_is_counted() {
        let mut r = robot();
        let t = t0();
        r.handle(&msg(t, "c1", "小美", Sender::Customer, "多久发货"), t);
        let text = "亲,聚划算订单按付款顺序发货,付款后48小时内发出,默认中通快递~";
        let out = r.handle(&msg(t + 3_000, "c1", "小美", Sender::Agent, text), t + 3_000);
        assert_eq!(
            out,
            vec![RobotAction::PhraseUsed {
                shop: SHOP.into(),
                owner: None,
                code: "fh".into(),
                ts: t + 3_000
            }]
        );
        let out = r.handle(&msg(t + 4_000, "c1", "小美", Sender::Agent, "我自己写的话"), t + 4_000);
        assert!(out.is_empty());
    }
}

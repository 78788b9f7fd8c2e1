//! The response clock: turns conversation events into buyers' waits, each measured
//! against the deadline the agent's load gives (seed 003: fewer than 4 buyers → 20 s,
//! busy → 60 s).
//!
//! The contract (see `docs/protocol.md`):
//! - a session opens with a conversation's first message and closes on `close`, or at
//!   last message + `idle_close_s`;
//! - a wait starts at a buyer message when none is pending (later buyer messages join it),
//!   ends `answered` at an agent message, `transferred` at a transfer (which starts a new
//!   wait for the new agent, keeping `first`), `unanswered` when the session closes;
//! - bot and system messages never end a wait;
//! - the deadline is chosen from the agent's load when the wait starts; a breach is
//!   waited > deadline (its alert, due at start + deadline, is [`super::Notices`]' timer).
//!
//! It emits what happened, in order ([`Output`]): sessions opened and closed, waits started
//! and ended; the robot, the report, the metrics and the alert timers consume that instead
//! of re-deriving it. Time only moves forward by [`Clock::advance`], and only event time
//! moves it; idle closes are an ordered heap, so nothing scans all conversations.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use crate::event::{Event, EventKind, Sender};
use crate::rules::response_time::ResponseRules;
use crate::time::Millis;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// An agent wrote.
    Answered,
    /// The session closed first.
    Unanswered,
    /// The conversation moved to another agent; a new wait started for them.
    Transferred,
}

impl Outcome {
    /// The name used in JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Unanswered => "unanswered",
            Self::Transferred => "transferred",
        }
    }

    /// Parses the database name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "answered" => Some(Self::Answered),
            "unanswered" => Some(Self::Unanswered),
            "transferred" => Some(Self::Transferred),
            _ => None,
        }
    }
}

/// A wait that just started.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WaitStart {
    /// Conversation id.
    pub conversation: Arc<str>,
    /// Shop id.
    pub shop: Arc<str>,
    /// Buyer id.
    pub customer: Arc<str>,
    /// The agent who owes the answer.
    pub agent: Arc<str>,
    /// When the buyer started waiting.
    pub start: Millis,
    /// Milliseconds allowed.
    pub deadline_ms: i64,
    /// The agent's load when the wait started.
    pub load: u32,
    /// First wait of the session.
    pub first: bool,
}

/// A finished wait. Serialised as is into the cluster's results log (`cluster::results`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Wait {
    /// Conversation id.
    pub conversation: Arc<str>,
    /// Shop id.
    pub shop: Arc<str>,
    /// Buyer id.
    pub customer: Arc<str>,
    /// The agent the wait belonged to.
    pub agent: Arc<str>,
    /// When the buyer started waiting.
    pub start: Millis,
    /// When the wait ended.
    pub end: Millis,
    /// How it ended.
    pub outcome: Outcome,
    /// Milliseconds allowed.
    pub deadline_ms: i64,
    /// The agent's load when the wait started.
    pub load: u32,
    /// First wait of the session.
    pub first: bool,
    /// The robot (a `bot` message) wrote while the buyer waited, before any agent did.
    pub robot: bool,
}

impl Wait {
    /// End − start.
    pub fn waited_ms(&self) -> i64 {
        self.end - self.start
    }

    /// The response time, for answered waits only.
    pub fn response_ms(&self) -> Option<i64> {
        (self.outcome == Outcome::Answered).then(|| self.waited_ms())
    }

    /// Waited longer than the deadline (a reply exactly at the deadline is on time).
    pub fn breached(&self) -> bool {
        breached(self.waited_ms(), self.deadline_ms)
    }
}

/// The breach rule, for consumers that hold a wait as figures (the `waits` table): waited
/// longer than the deadline, whatever the outcome; a reply exactly at the deadline is on time.
#[must_use]
pub fn breached(waited_ms: i64, deadline_ms: i64) -> bool {
    waited_ms > deadline_ms
}

/// When a session whose last message was at `last_message` closes by idleness.
#[must_use]
pub fn idle_close_at(last_message: Millis, idle_close_ms: i64) -> Millis {
    last_message.saturating_add(idle_close_ms)
}

/// The session rule: a session whose last message was at `last_message` has closed by
/// time `t` — a message exactly `idle_close_ms` later finds it closed and opens a new one.
/// Only the clock decides sessions with it; everything else takes its outputs.
#[must_use]
fn session_closed_by(last_message: Millis, t: Millis, idle_close_ms: i64) -> bool {
    t >= idle_close_at(last_message, idle_close_ms)
}

/// A wait passed its deadline still pending: the moment a breach alert is due. The
/// engine's alert timers ([`super::Notices`]) decide when; this is the data of one.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// Conversation id.
    pub conversation: Arc<str>,
    /// Shop id.
    pub shop: Arc<str>,
    /// Buyer id.
    pub customer: Arc<str>,
    /// The agent who owes the answer.
    pub agent: Arc<str>,
    /// When the buyer started waiting.
    pub wait_start: Millis,
    /// start + deadline.
    pub due_at: Millis,
    /// Milliseconds allowed.
    pub deadline_ms: i64,
    /// The agent's load when the wait started.
    pub load: u32,
}

/// Why a session closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A `close` event.
    Closed,
    /// No message for `idle_close_s` (decided by event time, see `docs/protocol.md`).
    Idle,
}

/// What the clock decided, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A conversation's session opened (its first message, or the first after a close).
    SessionOpened {
        /// Conversation id.
        conversation: Arc<str>,
        /// The agent it is assigned to.
        agent: Arc<str>,
        /// The opening message's time.
        at: Millis,
    },
    /// A session closed; a pending wait ended `unanswered` just before this output.
    SessionClosed {
        /// Conversation id.
        conversation: Arc<str>,
        /// The agent it was assigned to, if any.
        agent: Option<Arc<str>>,
        /// When it closed (the `close` event's time, or last message + idle).
        at: Millis,
        /// Why.
        reason: CloseReason,
    },
    /// A buyer started waiting (deadline armed).
    WaitStarted(WaitStart),
    /// A wait ended.
    WaitEnded(Wait),
    /// A pending wait passed its deadline (emitted by [`super::Engine`], whose alert
    /// timers decide it; the clock itself never does).
    Breach(Breach),
}

/// A wait still pending, as a snapshot keeps it (short names: a snapshot holds one per
/// buyer waiting).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingState {
    #[serde(rename = "t")]
    start: Millis,
    #[serde(rename = "a")]
    agent: Arc<str>,
    #[serde(rename = "b")]
    customer: Arc<str>,
    #[serde(rename = "d")]
    deadline_ms: i64,
    #[serde(rename = "n")]
    load: u32,
    #[serde(rename = "f")]
    first: bool,
    #[serde(rename = "r")]
    robot: bool,
}

/// A conversation the clock still holds (an open session, or a closed one whose idle
/// close is still queued), as a snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvState {
    #[serde(rename = "c")]
    name: Arc<str>,
    #[serde(rename = "s")]
    shop: Arc<str>,
    #[serde(rename = "a")]
    agent: Option<Arc<str>>,
    #[serde(rename = "o")]
    open: bool,
    #[serde(rename = "l")]
    last_msg: Millis,
    /// The queued idle close, if any.
    #[serde(rename = "q")]
    close_due: Option<Millis>,
    #[serde(rename = "h")]
    had_wait: bool,
    #[serde(rename = "p")]
    pending: Option<PendingState>,
}

/// The clock's whole state, in conversation order (so equal clocks give equal states,
/// whatever slots their histories used). The rules are configuration, not state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockState {
    now: Millis,
    convs: Vec<ConvState>,
}

/// A [`ClockState`] by reference ([`Clock::state_ref`]): serialises to the same bytes.
pub(crate) struct ClockStateRef<'a> {
    clock: &'a Clock,
}

impl serde::Serialize for ClockStateRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        /// The conversations, each built only while it is written.
        struct Convs<'a>(&'a Clock, Vec<u32>);
        impl serde::Serialize for Convs<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.1.iter().map(|&c| self.0.conv_state(c)))
            }
        }
        let clock = self.clock;
        // The fields of `ClockState`, in its order.
        let mut st = s.serialize_struct("ClockState", 2)?;
        st.serialize_field("now", &clock.now)?;
        st.serialize_field("convs", &Convs(clock, clock.sorted_slots()))?;
        st.end()
    }
}

impl ClockState {
    /// The waits pending, as `(conversation, agent, start, deadline_ms)`, in conversation order.
    pub fn pending(&self) -> impl Iterator<Item = (&str, &str, Millis, i64)> {
        self.convs
            .iter()
            .filter_map(|c| c.pending.as_ref().map(|p| (&*c.name, &*p.agent, p.start, p.deadline_ms)))
    }
}

/// A queued idle close: `(due, conversation)`, earliest first.
type Entry = Reverse<(Millis, u32)>;

struct Pending {
    start: Millis,
    deadline_ms: i64,
    customer: Arc<str>,
    agent: u32,
    load: u32,
    first: bool,
    robot: bool,
}

/// One conversation slot: everything the engine keeps per conversation lives here, so a
/// conversation costs one entry (the alert timers name a slot and a wait number instead of
/// keeping their own map of waits, and the preview of the buyer's last message is here too).
struct Conv {
    /// Empty while the slot is free (see [`Clock::release`]).
    name: Arc<str>,
    /// The buyer's last message, raw (at most [`super::notices::PREVIEW_BYTES`]), for
    /// the previews of its alerts; kept while the session is open.
    preview: Option<Box<str>>,
    pending: Option<Pending>,
    last_msg: Millis,
    /// The queued idle close, if any (at most one per slot is queued).
    close_due: Option<Millis>,
    /// Index into the clock's shop names.
    shop: u32,
    agent: Option<u32>,
    /// Waits started in this slot (wrapping, never reset when the slot is reused): with
    /// the slot it names one wait, so a timer of a wait that ended finds it gone.
    wait_no: u32,
    open: bool,
    had_wait: bool,
}

/// Bits of [`Conv::wait_no`] a timer keeps (see [`super::notices`]).
pub(crate) const WAIT_NO_BITS: u32 = 30;

/// Conversation slots in pages of [`PAGE`]: growing never moves the slots already there
/// and leaves at most one page unused (a `Vec` doubled to 131,072 slots for 100,000
/// conversations, and held the old half beside the new while it moved).
#[derive(Default)]
struct Slots {
    pages: Vec<Vec<Conv>>,
}

const PAGE_SHIFT: usize = 10;
const PAGE: usize = 1 << PAGE_SHIFT;

impl Slots {
    fn len(&self) -> usize {
        self.pages.last().map_or(0, |p| (self.pages.len() - 1) * PAGE + p.len())
    }

    /// Adds a slot at the end; its index.
    fn push(&mut self, conv: Conv) -> u32 {
        let id = self.len() as u32;
        match self.pages.last_mut() {
            Some(page) if page.len() < PAGE => page.push(conv),
            _ => {
                let mut page = Vec::with_capacity(PAGE);
                page.push(conv);
                self.pages.push(page);
            }
        }
        id
    }

    fn iter(&self) -> impl Iterator<Item = &Conv> {
        self.pages.iter().flatten()
    }
}

impl std::ops::Index<usize> for Slots {
    type Output = Conv;
    fn index(&self, i: usize) -> &Conv {
        &self.pages[i >> PAGE_SHIFT][i & (PAGE - 1)]
    }
}

impl std::ops::IndexMut<usize> for Slots {
    fn index_mut(&mut self, i: usize) -> &mut Conv {
        &mut self.pages[i >> PAGE_SHIFT][i & (PAGE - 1)]
    }
}

/// Names interned once (agents, shops): slots keep a `u32`, not a copy of the name.
#[derive(Default)]
struct Names {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Names {
    /// The index of `name`, added if new.
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        let name: Arc<str> = name.into();
        self.names.push(name.clone());
        self.ids.insert(name, i);
        i
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

impl std::ops::Index<u32> for Names {
    type Output = Arc<str>;
    fn index(&self, i: u32) -> &Arc<str> {
        &self.names[i as usize]
    }
}

/// The response clock. Feed it events in input order with [`Clock::handle`]; call
/// [`Clock::advance`] to let time pass without events and [`Clock::finish`] at the end.
pub struct Clock {
    rules: ResponseRules,
    conv_ids: HashMap<Arc<str>, u32>,
    convs: Slots,
    agents: Names,
    shops: Names,
    /// Per agent: its open conversations keyed by last message time, for load.
    active: Vec<BTreeSet<(Millis, u32)>>,
    queue: BinaryHeap<Entry>,
    /// Slots of `convs` released by closed conversations, reused by new ones: memory
    /// follows the conversations open now, not every conversation ever seen.
    free: Vec<u32>,
    now: Millis,
    open_count: usize,
    pending_count: usize,
}

impl Clock {
    /// A clock with no conversations.
    pub fn new(rules: ResponseRules) -> Self {
        Self {
            rules,
            conv_ids: HashMap::default(),
            convs: Slots::default(),
            agents: Names::default(),
            shops: Names::default(),
            active: Vec::new(),
            queue: BinaryHeap::new(),
            free: Vec::new(),
            now: Millis::MIN,
            open_count: 0,
            pending_count: 0,
        }
    }

    /// Serves `rules` from now on (a hot reload of `rules/response_time.toml`): waits that
    /// start from now get their deadline and load from them; a wait already running keeps
    /// the deadline it started with, and an open session closes after the new idle time.
    pub fn set_rules(&mut self, rules: ResponseRules) {
        self.rules = rules;
    }

    /// The rules in force.
    pub fn rules(&self) -> &ResponseRules {
        &self.rules
    }

    /// The engine's time: the latest instant it has been advanced to.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// When the next idle close may fall due (at or after this instant), if any.
    pub fn next_due(&self) -> Option<Millis> {
        self.queue.peek().map(|Reverse((t, _))| *t)
    }

    /// Number of conversations with an open session.
    pub fn open_sessions(&self) -> usize {
        self.open_count
    }

    /// Number of waits still pending.
    pub fn pending_waits(&self) -> usize {
        self.pending_count
    }

    /// Processes one event at its own time, after letting time run up to it.
    pub fn handle(&mut self, event: &Event, out: &mut Vec<Output>) {
        let t = event.ts;
        self.advance(t, out);
        match &event.kind {
            EventKind::Message { conversation, customer, agent, from, .. } => {
                let c = self.conv(conversation, &event.shop);
                let a = self.agent(agent);
                self.on_message(c, a, customer, *from, t, out);
            }
            EventKind::Transfer { conversation, to_agent, .. } => {
                // A transfer outside a session changes nothing: the next message names
                // the agent of the session it opens.
                if let Some(&c) = self.conv_ids.get(conversation.as_str()) {
                    let a = self.agent(to_agent);
                    self.on_transfer(c, a, t, out);
                }
            }
            EventKind::Close { conversation } => {
                if let Some(&c) = self.conv_ids.get(conversation.as_str()) {
                    self.close_session(c, t, CloseReason::Closed, out);
                }
            }
            EventKind::Presence { .. } | EventKind::Order { .. } | EventKind::Evaluation { .. } => {}
        }
    }

    /// Lets event time run to `now`: sessions idle until then close (a pending wait ends
    /// `unanswered`). Only event time may call this: see `docs/protocol.md`.
    pub fn advance(&mut self, now: Millis, out: &mut Vec<Output>) {
        let mut same = Vec::new();
        while let Some(&Reverse((t, _))) = self.queue.peek() {
            if t > now {
                break;
            }
            // Closes due at the same instant go in conversation order, not slot order, so
            // the outputs do not depend on which slots a history left free (a restored
            // snapshot and a full rebuild emit the same sequence).
            while let Some(&Reverse((u, c))) = self.queue.peek().filter(|Reverse((u, _))| *u == t) {
                self.queue.pop();
                same.push((self.convs[c as usize].name.clone(), u, c));
            }
            same.sort_unstable();
            for (_, u, c) in same.drain(..) {
                self.on_close_due(c, u, out);
            }
        }
        self.now = self.now.max(now);
    }

    /// Runs time on until every session has closed, so every wait ends.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        self.advance(Millis::MAX, out);
    }

    /// The clock's state, for a snapshot ([`super::snapshot`]).
    #[must_use]
    pub fn state(&self) -> ClockState {
        ClockState {
            now: self.now,
            convs: self.sorted_slots().into_iter().map(|c| self.conv_state(c)).collect(),
        }
    }

    /// The same state as [`Clock::state`] for serialising, without building it: each
    /// conversation's [`ConvState`] is made only while it is written, so a snapshot of a
    /// clock with 100,000 conversations does not hold a second copy of them.
    pub(crate) fn state_ref(&self) -> ClockStateRef<'_> {
        ClockStateRef { clock: self }
    }

    /// The slots in use, in conversation order.
    pub(crate) fn sorted_slots(&self) -> Vec<u32> {
        let mut slots: Vec<u32> = self.conv_ids.values().copied().collect();
        slots.sort_unstable_by(|a, b| self.convs[*a as usize].name.cmp(&self.convs[*b as usize].name));
        slots
    }

    /// One conversation as a snapshot keeps it.
    fn conv_state(&self, c: u32) -> ConvState {
        let name = |a: u32| self.agents[a].clone();
        let conv = &self.convs[c as usize];
        ConvState {
            name: conv.name.clone(),
            shop: self.shops[conv.shop].clone(),
            agent: conv.agent.map(name),
            open: conv.open,
            last_msg: conv.last_msg,
            close_due: conv.close_due,
            had_wait: conv.had_wait,
            pending: conv.pending.as_ref().map(|p| PendingState {
                start: p.start,
                agent: name(p.agent),
                customer: p.customer.clone(),
                deadline_ms: p.deadline_ms,
                load: p.load,
                first: p.first,
                robot: p.robot,
            }),
        }
    }

    /// A clock in `state`, serving `rules`: it goes on exactly as the clock the state was
    /// taken from would.
    #[must_use]
    pub fn restore(rules: ResponseRules, state: ClockState) -> Self {
        let mut clock = Self::new(rules);
        clock.now = state.now;
        for s in state.convs {
            let c = clock.conv(&s.name, &s.shop);
            let agent = s.agent.map(|a| clock.agent(&a));
            let pending = s.pending.map(|p| Pending {
                start: p.start,
                agent: clock.agent(&p.agent),
                customer: p.customer,
                deadline_ms: p.deadline_ms,
                load: p.load,
                first: p.first,
                robot: p.robot,
            });
            if s.open {
                clock.open_count += 1;
                if let Some(a) = agent {
                    clock.active[a as usize].insert((s.last_msg, c));
                }
            }
            clock.pending_count += usize::from(pending.is_some());
            if let Some(t) = s.close_due {
                clock.queue.push(Reverse((t, c)));
            }
            let conv = &mut clock.convs[c as usize];
            conv.agent = agent;
            conv.open = s.open;
            conv.last_msg = s.last_msg;
            conv.close_due = s.close_due;
            conv.had_wait = s.had_wait;
            conv.pending = pending;
        }
        clock
    }

    /// Conversation slots in use (open sessions and closed ones awaiting their queued
    /// close); the rest were released.
    pub fn held_conversations(&self) -> usize {
        self.conv_ids.len()
    }

    /// The waits pending now, as they started (in slot order).
    pub(crate) fn waits(&self) -> impl Iterator<Item = WaitStart> + '_ {
        self.convs.iter().filter_map(|c| self.wait_start(c))
    }

    /// The slots with a wait pending, with its number (see [`Conv::wait_no`]).
    pub(crate) fn pending_slots(&self) -> impl Iterator<Item = (u32, u32, Millis, i64)> + '_ {
        self.convs
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.pending.as_ref().map(|p| (i as u32, c.wait_no, p.start, p.deadline_ms)))
    }

    /// The slot of a conversation the clock holds.
    pub(crate) fn slot(&self, conversation: &str) -> Option<u32> {
        self.conv_ids.get(conversation).copied()
    }

    /// The wait pending in `slot`, if it is wait number `wait_no` (its low
    /// [`WAIT_NO_BITS`] bits) — that is, still the same wait.
    pub(crate) fn wait_numbered(&self, slot: u32, wait_no: u32) -> Option<WaitStart> {
        let conv = &self.convs[slot as usize];
        let mask = (1u32 << WAIT_NO_BITS) - 1;
        (conv.wait_no & mask == wait_no & mask).then(|| self.wait_start(conv)).flatten()
    }

    /// The slot of a conversation with a wait pending, the wait's number and start.
    pub(crate) fn current_wait(&self, conversation: &str) -> Option<(u32, u32, Millis)> {
        let c = self.slot(conversation)?;
        let conv = &self.convs[c as usize];
        conv.pending.as_ref().map(|p| (c, conv.wait_no, p.start))
    }

    fn wait_start(&self, conv: &Conv) -> Option<WaitStart> {
        conv.pending.as_ref().map(|p| WaitStart {
            conversation: conv.name.clone(),
            shop: self.shops[conv.shop].clone(),
            customer: p.customer.clone(),
            agent: self.agents[p.agent].clone(),
            start: p.start,
            deadline_ms: p.deadline_ms,
            load: p.load,
            first: p.first,
        })
    }

    /// Keeps `text` as the preview of an open conversation's alerts (the alert timers'
    /// data, kept in the conversation's slot; dropped when the session closes).
    pub(crate) fn set_preview(&mut self, conversation: &str, text: &str) {
        if let Some(&c) = self.conv_ids.get(conversation) {
            let conv = &mut self.convs[c as usize];
            if conv.open {
                conv.preview = Some(text.into());
            }
        }
    }

    /// The preview kept for a conversation ("" if none).
    pub(crate) fn preview(&self, conversation: &str) -> &str {
        self.slot(conversation).map_or("", |c| self.preview_at(c))
    }

    /// The preview kept in `slot` ("" if none).
    pub(crate) fn preview_at(&self, slot: u32) -> &str {
        self.convs[slot as usize].preview.as_deref().unwrap_or("")
    }

    /// The previews of open sessions, in conversation order.
    pub(crate) fn previews(&self) -> impl Iterator<Item = (&Arc<str>, &str)> + '_ {
        self.sorted_slots().into_iter().filter_map(move |c| {
            let conv = &self.convs[c as usize];
            conv.preview.as_deref().map(|p| (&conv.name, p))
        })
    }

    fn conv(&mut self, name: &str, shop: &str) -> u32 {
        if let Some(&c) = self.conv_ids.get(name) {
            return c;
        }
        let name: Arc<str> = name.into();
        let mut conv = Conv {
            name: name.clone(),
            preview: None,
            pending: None,
            last_msg: Millis::MIN,
            close_due: None,
            shop: self.shops.id(shop),
            agent: None,
            wait_no: 0,
            open: false,
            had_wait: false,
        };
        let id = match self.free.pop() {
            Some(id) => {
                // The wait numbers go on, so a timer of the slot's last wait stays stale.
                conv.wait_no = self.convs[id as usize].wait_no;
                self.convs[id as usize] = conv;
                id
            }
            None => self.convs.push(conv),
        };
        self.conv_ids.insert(name, id);
        id
    }

    /// Frees a closed conversation's slot once no idle close is queued for it: what a
    /// closed session leaves behind decides nothing (its next message opens a new one).
    fn release(&mut self, c: u32) {
        let conv = &mut self.convs[c as usize];
        if conv.open || conv.close_due.is_some() || conv.name.is_empty() {
            return;
        }
        self.conv_ids.remove(&conv.name);
        conv.name = Arc::from("");
        conv.agent = None;
        conv.preview = None;
        self.free.push(c);
    }

    fn agent(&mut self, name: &str) -> u32 {
        let id = self.agents.id(name);
        if self.active.len() < self.agents.len() {
            self.active.push(BTreeSet::new());
        }
        id
    }

    fn on_message(&mut self, c: u32, a: u32, customer: &str, from: Sender, t: Millis, out: &mut Vec<Output>) {
        let idle = self.rules.idle_close_ms;
        let conv = &mut self.convs[c as usize];
        if conv.open {
            if let Some(old) = conv.agent {
                self.active[old as usize].remove(&(conv.last_msg, c));
            }
        } else {
            conv.open = true;
            conv.had_wait = false;
            // A session starts at its first message, whatever came before it.
            conv.last_msg = t;
            self.open_count += 1;
            if conv.close_due.is_none() {
                let at = idle_close_at(t, idle);
                conv.close_due = Some(at);
                self.queue.push(Reverse((at, c)));
            }
            out.push(Output::SessionOpened {
                conversation: conv.name.clone(),
                agent: self.agents[a].clone(),
                at: t,
            });
        }
        conv.last_msg = conv.last_msg.max(t);
        conv.agent = Some(a);
        self.active[a as usize].insert((conv.last_msg, c));
        match from {
            Sender::Customer if conv.pending.is_none() => {
                let first = !conv.had_wait;
                self.start_wait(c, a, customer.into(), t, first, out);
            }
            Sender::Agent => self.end_wait(c, t, Outcome::Answered, out),
            Sender::Bot => {
                if let Some(p) = conv.pending.as_mut() {
                    p.robot = true;
                }
            }
            Sender::Customer | Sender::System => {}
        }
    }

    fn on_transfer(&mut self, c: u32, to: u32, t: Millis, out: &mut Vec<Output>) {
        let conv = &mut self.convs[c as usize];
        if !conv.open {
            conv.agent = Some(to);
            return;
        }
        if let Some(old) = conv.agent {
            self.active[old as usize].remove(&(conv.last_msg, c));
        }
        conv.agent = Some(to);
        self.active[to as usize].insert((conv.last_msg, c));
        let Some(p) = &conv.pending else { return };
        let (customer, first) = (p.customer.clone(), p.first);
        self.end_wait(c, t, Outcome::Transferred, out);
        self.start_wait(c, to, customer, t, first, out);
    }

    /// Load of agent `a` at `t`: its open conversations with a message at or after
    /// t − active window, always counting conversation `c` (the one starting the wait).
    fn load(&self, a: u32, c: u32, t: Millis) -> u32 {
        let from = t.saturating_sub(self.rules.active_window_ms);
        let set = &self.active[a as usize];
        let in_window = set.range((from, 0)..).count() as u32;
        let conv = &self.convs[c as usize];
        let counted = conv.last_msg >= from && conv.agent == Some(a);
        in_window + u32::from(!counted)
    }

    fn start_wait(
        &mut self,
        c: u32,
        a: u32,
        customer: Arc<str>,
        t: Millis,
        first: bool,
        out: &mut Vec<Output>,
    ) {
        let load = self.load(a, c, t);
        let deadline_ms = self.rules.deadline_ms(load);
        let conv = &mut self.convs[c as usize];
        conv.had_wait = true;
        conv.wait_no = conv.wait_no.wrapping_add(1);
        out.push(Output::WaitStarted(WaitStart {
            conversation: conv.name.clone(),
            shop: self.shops[conv.shop].clone(),
            customer: customer.clone(),
            agent: self.agents[a].clone(),
            start: t,
            deadline_ms,
            load,
            first,
        }));
        conv.pending = Some(Pending { start: t, agent: a, customer, deadline_ms, load, first, robot: false });
        self.pending_count += 1;
    }

    fn end_wait(&mut self, c: u32, t: Millis, outcome: Outcome, out: &mut Vec<Output>) {
        let conv = &mut self.convs[c as usize];
        let Some(p) = conv.pending.take() else { return };
        self.pending_count -= 1;
        out.push(Output::WaitEnded(Wait {
            conversation: conv.name.clone(),
            shop: self.shops[conv.shop].clone(),
            customer: p.customer,
            agent: self.agents[p.agent].clone(),
            start: p.start,
            end: t.max(p.start),
            outcome,
            deadline_ms: p.deadline_ms,
            load: p.load,
            first: p.first,
            robot: p.robot,
        }));
    }

    fn close_session(&mut self, c: u32, t: Millis, reason: CloseReason, out: &mut Vec<Output>) {
        if !self.convs[c as usize].open {
            return;
        }
        self.end_wait(c, t, Outcome::Unanswered, out);
        let conv = &mut self.convs[c as usize];
        conv.open = false;
        conv.preview = None;
        self.open_count -= 1;
        if let Some(a) = conv.agent {
            self.active[a as usize].remove(&(conv.last_msg, c));
        }
        out.push(Output::SessionClosed {
            conversation: conv.name.clone(),
            agent: conv.agent.map(|a| self.agents[a].clone()),
            at: t,
            reason,
        });
        self.release(c);
    }

    fn on_close_due(&mut self, c: u32, t: Millis, out: &mut Vec<Output>) {
        let idle = self.rules.idle_close_ms;
        let conv = &mut self.convs[c as usize];
        conv.close_due = None;
        if !conv.open {
            self.release(c);
            return;
        }
        let at = idle_close_at(conv.last_msg, idle);
        if !session_closed_by(conv.last_msg, t, idle) {
            // The session saw messages since this entry was queued: look again later.
            conv.close_due = Some(at);
            self.queue.push(Reverse((at, c)));
            return;
        }
        self.close_session(c, at, CloseReason::Idle, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse;

    const T0: &str = "2026-11-11T10:00:";

    fn msg(id: &str, sec: &str, conv: &str, agent: &str, from: &str) -> Event {
        parse(&format!(
            r#"{{"type":"message","id":"{id}","ts":"{T0}{sec}+08:00","shop":"s","conversation":"{conv}","customer":"b-{conv}","agent":"{agent}","from":"{from}","text":"x"}}"#
        ))
        .unwrap()
    }

    /// Waits and breach notices (the breach timer is the engine's, beside the clock).
    fn run(events: &[Event]) -> (Vec<Wait>, Vec<crate::alerts::Notice>) {
        let mut engine = super::super::Engine::new(ResponseRules::default(), crate::alerts::Plan::default());
        let (mut out, mut notices) = (vec![], vec![]);
        for e in events {
            engine.handle(e, &mut out, &mut notices);
        }
        engine.finish(&mut out, &mut notices);
        let waits =
            out.iter().filter_map(|o| if let Output::WaitEnded(w) = o { Some(w.clone()) } else { None });
        let breaches = notices.into_iter().filter(|n| n.kind == crate::alerts::Kind::Breach);
        (waits.collect(), breaches.collect())
    }

    #[test]
    fn reply_exactly_at_deadline_is_on_time_and_raises_no_alert() {
        let (w, b) = run(&[msg("1", "00.000", "c", "a", "customer"), msg("2", "20.000", "c", "a", "agent")]);
        assert_eq!(w[0].response_ms(), Some(20_000));
        assert!(!w[0].breached());
        assert!(b.is_empty());
        let (w, b) = run(&[msg("1", "00.000", "c", "a", "customer"), msg("2", "20.001", "c", "a", "agent")]);
        assert!(w[0].breached());
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].due_at - b[0].wait_start, 20_000);
    }

    #[test]
    fn sessions_open_and_close_in_order_with_their_reason() {
        let mut clock = Clock::new(ResponseRules::default());
        let mut out = vec![];
        clock.handle(&msg("1", "00.000", "c", "a", "customer"), &mut out);
        clock.finish(&mut out);
        let kinds: Vec<String> = out
            .iter()
            .map(|o| match o {
                Output::SessionOpened { at, .. } => format!("open {at}"),
                Output::WaitStarted(w) => format!("start {}", w.start),
                Output::WaitEnded(w) => format!("end {} {}", w.end, w.outcome.as_str()),
                Output::SessionClosed { at, reason, .. } => format!("close {at} {reason:?}"),
                Output::Breach(b) => format!("breach {}", b.due_at),
            })
            .collect();
        let t = msg("x", "00.000", "c", "a", "customer").ts;
        let idle = t + 1_800_000;
        assert_eq!(
            kinds,
            [
                format!("open {t}"),
                format!("start {t}"),
                format!("end {idle} unanswered"),
                format!("close {idle} Idle")
            ]
        );
    }

    #[test]
    fn bot_messages_do_not_end_a_wait() {
        let (w, _) = run(&[
            msg("1", "00.000", "c", "a", "customer"),
            msg("2", "01.000", "c", "a", "bot"),
            msg("3", "05.000", "c", "a", "customer"),
            msg("4", "30.000", "c", "a", "agent"),
        ]);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].response_ms(), Some(30_000));
        assert!(w[0].robot, "the robot wrote while the buyer waited");
    }

    #[test]
    fn counts_of_open_sessions_and_pending_waits_follow_the_events() {
        let mut clock = Clock::new(ResponseRules::default());
        let mut out = vec![];
        clock.handle(&msg("1", "00.000", "c1", "a", "customer"), &mut out);
        clock.handle(&msg("2", "01.000", "c2", "a", "customer"), &mut out);
        clock.handle(&msg("3", "02.000", "c1", "a", "agent"), &mut out);
        assert_eq!((clock.open_sessions(), clock.pending_waits()), (2, 1));
        clock.finish(&mut out);
        assert_eq!((clock.open_sessions(), clock.pending_waits()), (0, 0));
    }

    #[test]
    fn closed_conversations_release_their_slots_for_new_ones() {
        let mut clock = Clock::new(ResponseRules::default());
        let mut out = vec![];
        let at = |mut e: Event, ms: i64| {
            e.ts += ms;
            e
        };
        // 1,000 conversations one after another, 10 s apart, each answered and closed. A
        // closed one keeps its slot until its queued idle close (30 min), then frees it.
        for i in 0..1000i64 {
            let c = format!("c{i}");
            clock.handle(&at(msg(&format!("q{i}"), "00.000", &c, "a", "customer"), i * 10_000), &mut out);
            clock.handle(&at(msg(&format!("r{i}"), "01.000", &c, "a", "agent"), i * 10_000), &mut out);
            let close = format!(
                r#"{{"type":"close","id":"x{i}","ts":"{T0}02.000+08:00","shop":"s","conversation":"{c}"}}"#
            );
            clock.handle(&at(parse(&close).unwrap(), i * 10_000), &mut out);
        }
        assert_eq!(clock.open_sessions(), 0);
        assert!(clock.held_conversations() <= 181, "held {}", clock.held_conversations());
        assert!(clock.convs.len() <= 182, "slots are reused: {} for 1,000 conversations", clock.convs.len());
        clock.finish(&mut out);
        assert_eq!(clock.held_conversations(), 0, "every slot is released once time passes the closes");
    }

    #[test]
    fn load_counts_recent_open_conversations_and_picks_the_tier() {
        let mut ev = vec![];
        for (i, c) in ["c1", "c2", "c3", "c4"].iter().enumerate() {
            ev.push(msg(&format!("m{i}"), &format!("0{i}.000"), c, "a", "customer"));
        }
        let (w, _) = run(&ev);
        let mut loads: Vec<(String, u32, i64)> =
            w.iter().map(|w| (w.conversation.to_string(), w.load, w.deadline_ms)).collect();
        loads.sort();
        assert_eq!(
            loads,
            [
                ("c1".into(), 1, 20_000),
                ("c2".into(), 2, 20_000),
                ("c3".into(), 3, 20_000),
                ("c4".into(), 4, 60_000)
            ]
        );
    }
}

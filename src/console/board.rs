//! The live board: a pure consumer of what the runtime already decided.
//!
//! [`Board`] is fed the events, the engine's [`Output`]s, the alerts handed to the sinks and
//! the guard's findings, each at its own time, and keeps what the supervisor's screen shows:
//! who waits (against which deadline), each agent's day, each shop's day, the alert feed.
//! It never reads the clock or the database and decides no rule: a wait, a deadline or a
//! breach is whatever the engine said it is (one owner per rule).
//!
//! The runtime owns a [`BoardFeed`]: per event it only appends a small [`Change`] to a
//! buffer; after each commit it hands the buffer to the shared [`Board`] under one lock.
//! The console's publisher turns the board into an immutable [`BoardState`] at most ten
//! times a second and sends it over a `watch` channel to every connected browser, so
//! neither the number of boards nor their speed reaches ingestion.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

use chrono::{NaiveDate, Timelike};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::alerts::format::{Message, plain, title};
use crate::alerts::notice::{mask_text, preview};
use crate::alerts::{Kind, Notice, Plan};
use crate::engine::{Outcome, Output};
use crate::event::{Event, EventKind, Presence, Sender};
use crate::guard::Flag;
use crate::privacy::mask_id;
use crate::time::{Millis, shanghai_day};

/// Alerts kept in the feed (newest first).
pub const ALERT_FEED: usize = 100;
/// Findings kept in the feed (newest first).
pub const FINDING_FEED: usize = 100;
/// Waiting buyers sent to a browser: the ones closest to their deadline; the rest are counted.
pub const WAITING_ROWS: usize = 300;
/// Bytes of a buyer's message kept for the board's preview (it shows 30 characters).
const QUESTION_BYTES: usize = 512;
/// Changes the feed gathers before handing them over even without a commit.
const FLUSH_AT: usize = 8192;
/// A reply within this counts for the 3-minute rate (三分钟回复率).
const THREE_MINUTES_MS: i64 = 180_000;
/// The board shows amber at this share of the deadline when the alert plan has no warning.
const DEFAULT_WARNING_PERMILLE: u32 = 750;

/// One thing the board learns, with the time it happened (event time, or the engine's
/// time for deadlines and alerts).
#[derive(Debug, Clone)]
pub enum Change {
    /// A buyer wrote: the question, raw (cut to [`QUESTION_BYTES`]); masked when applied,
    /// off the runtime's thread.
    Question {
        /// Conversation.
        conversation: Arc<str>,
        /// The start of the text, raw.
        text: String,
    },
    /// An agent wrote (time since last reply).
    Reply {
        /// Agent.
        agent: Arc<str>,
        /// Shop.
        shop: Arc<str>,
        /// When.
        at: Millis,
    },
    /// A robot wrote to a buyer.
    Robot {
        /// Shop.
        shop: Arc<str>,
        /// When.
        at: Millis,
    },
    /// An agent's presence changed.
    Presence {
        /// Agent.
        agent: Arc<str>,
        /// Shop.
        shop: Arc<str>,
        /// New status.
        status: Presence,
        /// When.
        at: Millis,
    },
    /// What the engine decided.
    Engine(Output),
    /// An alert handed to the sinks, already masked and rendered.
    Alert(AlertRow),
    /// A phrase-guard finding.
    Finding(FindingRow),
    /// The engine's time after a commit.
    Now(Millis),
}

impl Change {
    /// The change an event brings, if the board cares about it.
    pub fn from_event(event: &Event) -> Option<Self> {
        let at = event.ts;
        match &event.kind {
            EventKind::Message { conversation, from: Sender::Customer, text, .. } => {
                let text = crate::gateway::protocol::truncate(text, QUESTION_BYTES).to_string();
                Some(Self::Question { conversation: conversation.as_str().into(), text })
            }
            EventKind::Message { agent, from: Sender::Agent, .. } => {
                Some(Self::Reply { agent: agent.as_str().into(), shop: event.shop.as_str().into(), at })
            }
            EventKind::Message { from: Sender::Bot, .. } => {
                Some(Self::Robot { shop: event.shop.as_str().into(), at })
            }
            EventKind::Presence { agent, status } => Some(Self::Presence {
                agent: agent.as_str().into(),
                shop: event.shop.as_str().into(),
                status: *status,
                at,
            }),
            _ => None,
        }
    }

    /// The change a finding brings (the matched text masked here, once).
    pub fn from_flag(flag: &Flag) -> Self {
        Self::Finding(FindingRow {
            at: flag.ts,
            shop: flag.shop.as_str().into(),
            agent: flag.agent.as_str().into(),
            conversation: flag.conversation.clone(),
            category: flag.category.clone(),
            severity: flag.severity.as_str(),
            points: flag.points,
            matched: mask_text(&flag.matched),
        })
    }

    /// The change an alert brings: masked and rendered once, here.
    pub fn from_notice(notice: &Notice) -> Self {
        let masked = notice.masked();
        Self::Alert(AlertRow {
            kind: notice.kind.as_str(),
            at: notice.due_at,
            shop: notice.shop.clone(),
            agent: notice.agent.clone(),
            conversation: notice.conversation.clone(),
            title: title(Message::One(&masked)),
            text: plain(Message::One(&masked)),
        })
    }

    /// When it happened, for the day it counts in (`None`: not a day figure).
    fn at(&self) -> Option<Millis> {
        match self {
            Self::Question { .. } => None,
            Self::Reply { at, .. } | Self::Robot { at, .. } | Self::Presence { at, .. } => Some(*at),
            Self::Finding(f) => Some(f.at),
            Self::Now(_) => None,
            Self::Alert(a) => Some(a.at),
            Self::Engine(Output::WaitStarted(w)) => Some(w.start),
            Self::Engine(Output::WaitEnded(w)) => Some(w.end),
            Self::Engine(Output::Breach(b)) => Some(b.due_at),
            Self::Engine(Output::SessionOpened { at, .. } | Output::SessionClosed { at, .. }) => Some(*at),
        }
    }
}

/// A buyer waiting now, as every browser sees it (buyer masked).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WaitingRow {
    /// Conversation id (links to the conversation view).
    pub conversation: Arc<str>,
    /// Shop.
    pub shop: Arc<str>,
    /// Buyer id, masked.
    pub buyer: String,
    /// The agent who owes the answer.
    pub agent: Arc<str>,
    /// The agent's load when the wait started.
    pub load: u32,
    /// The deadline the load gave, ms.
    pub deadline_ms: i64,
    /// When the buyer started waiting.
    pub start: Millis,
    /// start + deadline: the countdown's zero.
    pub due_at: Millis,
    /// When the countdown turns amber.
    pub warn_at: Millis,
    /// When the wait escalates to the supervisors, if the plan escalates.
    pub escalate_at: Option<Millis>,
    /// The engine reported the breach.
    pub breached: bool,
    /// The escalation alert went out.
    pub escalated: bool,
    /// The buyer's last message, masked and shortened.
    pub preview: String,
    /// First wait of the session.
    pub first: bool,
}

/// An agent's row: presence, load and the day's figures.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct AgentRow {
    /// Agent id.
    pub agent: Arc<str>,
    /// The shop it was last seen in.
    pub shop: Arc<str>,
    /// online / busy / away / offline.
    pub status: &'static str,
    /// Load at its latest wait (buyers in conversation at once), as the engine measured it.
    pub load: u32,
    /// The deadline that load gives, ms (its tier).
    pub deadline_ms: i64,
    /// Buyers waiting for it now.
    pub waiting: u32,
    /// Distinct buyers who waited for it today.
    pub served: u32,
    /// Waits it answered today.
    pub answered: u32,
    /// Waits of its that ended unanswered today.
    pub unanswered: u32,
    /// Breaches today.
    pub breaches: u32,
    /// Average response of answered waits, ms.
    pub avg_response_ms: Option<i64>,
    /// Average response of first waits of a session, ms.
    pub avg_first_ms: Option<i64>,
    /// Share of ended waits answered within 3 minutes, percent.
    pub within_3min_pct: Option<f64>,
    /// Its last message to a buyer.
    pub last_reply: Option<Millis>,
    /// Phrase-guard findings today.
    pub findings: u32,
}

/// A shop's day.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ShopRow {
    /// Shop id.
    pub shop: Arc<str>,
    /// Buyers waiting now.
    pub waiting: u32,
    /// Start of the longest wait running now.
    pub longest_since: Option<Millis>,
    /// Waits ended today (answered or unanswered; transfers go on as a new wait).
    pub ended: u32,
    /// Share of ended waits answered within their deadline, percent.
    pub on_time_pct: Option<f64>,
    /// Breaches today.
    pub breaches: u32,
    /// Waits that ended unanswered today.
    pub unanswered: u32,
    /// Robot messages to buyers today.
    pub robot: u32,
    /// Phrase-guard findings today.
    pub findings: u32,
    /// Breaches by Asia/Shanghai hour, 0–23.
    pub breaches_by_hour: [u32; 24],
    /// Waits answered within their deadline today (the numerator of `on_time_pct`).
    #[serde(skip)]
    answered_on_time: u32,
}

/// One alert of the feed, masked and rendered as the group robots get it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertRow {
    /// warning / breach / escalation / resolved / guard / summary.
    pub kind: &'static str,
    /// When it was due.
    pub at: Millis,
    /// Shop.
    pub shop: String,
    /// Agent.
    pub agent: String,
    /// Conversation (links to the conversation view).
    pub conversation: String,
    /// Title line.
    pub title: String,
    /// The whole message.
    pub text: String,
}

/// A phrase-guard finding of the feed (matched text masked).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FindingRow {
    /// Message time.
    pub at: Millis,
    /// Shop.
    pub shop: Arc<str>,
    /// Agent.
    pub agent: Arc<str>,
    /// Conversation (links to the conversation view).
    pub conversation: String,
    /// Category.
    pub category: String,
    /// info / warn / critical.
    pub severity: &'static str,
    /// Points (0 or negative).
    pub points: i32,
    /// The matched text, personal data masked.
    pub matched: String,
}

/// What one browser is allowed to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    All,
    /// These shops only.
    Shops(Vec<String>),
    /// One agent's own waits, row and alerts; no shop totals, no other agent.
    Agent(String),
}

impl Scope {
    fn shop(&self, shop: &str) -> bool {
        match self {
            Self::All => true,
            Self::Shops(s) => s.iter().any(|x| x == shop),
            Self::Agent(_) => false,
        }
    }

    fn agent(&self, shop: &str, agent: &str) -> bool {
        match self {
            Self::Agent(a) => a == agent,
            _ => self.shop(shop),
        }
    }
}

/// The board at one instant, immutable; what the publisher sends.
#[derive(Debug, Serialize)]
pub struct BoardState {
    /// Engine time when it was built.
    pub now: Millis,
    /// How many times faster than real time engine time runs (the demo plays fast), so
    /// the browser's countdown runs at the engine's pace between updates.
    pub speed: f64,
    /// The Asia/Shanghai day the figures are for.
    pub day: Option<NaiveDate>,
    /// Buyers waiting, closest to their deadline first.
    pub waiting: Vec<WaitingRow>,
    /// Agents, by id.
    pub agents: Vec<AgentRow>,
    /// Shops, by id.
    pub shops: Vec<ShopRow>,
    /// Alerts, newest first.
    pub alerts: Vec<AlertRow>,
    /// Phrase-guard findings today, newest first.
    pub findings: Vec<FindingRow>,
    /// Counter bumped on every build: browsers and tests tell updates apart by it.
    pub version: u64,
    #[serde(skip)]
    full_json: OnceLock<Arc<str>>,
}

/// The JSON a browser gets: the state cut to a scope.
#[derive(Serialize)]
struct View<'a> {
    now: Millis,
    speed: f64,
    day: Option<NaiveDate>,
    version: u64,
    waiting_total: usize,
    waiting: Vec<&'a WaitingRow>,
    agents: Vec<&'a AgentRow>,
    shops: Vec<&'a ShopRow>,
    alerts: Vec<&'a AlertRow>,
    findings: Vec<&'a FindingRow>,
}

impl BoardState {
    /// An empty board (before the runtime's first commit).
    pub fn empty(speed: f64) -> Self {
        Self {
            now: 0,
            speed,
            day: None,
            waiting: Vec::new(),
            agents: Vec::new(),
            shops: Vec::new(),
            alerts: Vec::new(),
            findings: Vec::new(),
            version: 0,
            full_json: OnceLock::new(),
        }
    }

    /// The JSON for a browser with this scope. The unrestricted view is built once per
    /// state and shared by every supervisor's and owner's browser.
    pub fn json(&self, scope: &Scope) -> Arc<str> {
        if *scope == Scope::All {
            return self.full_json.get_or_init(|| self.view_json(scope)).clone();
        }
        self.view_json(scope)
    }

    fn view_json(&self, scope: &Scope) -> Arc<str> {
        let waiting: Vec<&WaitingRow> =
            self.waiting.iter().filter(|w| scope.agent(&w.shop, &w.agent)).collect();
        let view = View {
            now: self.now,
            speed: self.speed,
            day: self.day,
            version: self.version,
            waiting_total: waiting.len(),
            waiting: waiting.into_iter().take(WAITING_ROWS).collect(),
            agents: self.agents.iter().filter(|a| scope.agent(&a.shop, &a.agent)).collect(),
            shops: self.shops.iter().filter(|s| scope.shop(&s.shop)).collect(),
            alerts: self.alerts.iter().filter(|a| scope.agent(&a.shop, &a.agent)).collect(),
            findings: self.findings.iter().filter(|f| scope.agent(&f.shop, &f.agent)).collect(),
        };
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_string(&view).unwrap_or_else(|_| "{}".into()).into()
    }
}

/// Per agent: presence, load and the day's sums.
#[derive(Debug, Default, Clone)]
struct AgentDay {
    shop: Arc<str>,
    status: Option<Presence>,
    load: u32,
    deadline_ms: i64,
    buyers: HashSet<Arc<str>>,
    answered: u32,
    unanswered: u32,
    breaches: u32,
    response_ms: i64,
    first_answered: u32,
    first_ms: i64,
    within_3min: u32,
    last_reply: Option<Millis>,
    findings: u32,
}

impl AgentDay {
    fn reset_day(&mut self) {
        *self = Self {
            shop: self.shop.clone(),
            status: self.status,
            load: self.load,
            deadline_ms: self.deadline_ms,
            last_reply: self.last_reply,
            ..Self::default()
        };
    }
}

/// A wait running now.
#[derive(Debug, Clone)]
struct Pending {
    row: WaitingRow,
    customer: Arc<str>,
}

/// The board's mutable state (see the module doc). Pure: time comes with each change.
#[derive(Debug)]
pub struct Board {
    plan: Plan,
    speed: f64,
    now: Millis,
    day: Option<NaiveDate>,
    waiting: HashMap<Arc<str>, Pending>,
    previews: HashMap<Arc<str>, String>,
    agents: BTreeMap<Arc<str>, AgentDay>,
    shops: BTreeMap<Arc<str>, ShopRow>,
    alerts: VecDeque<AlertRow>,
    findings: VecDeque<FindingRow>,
    version: u64,
}

impl Board {
    /// An empty board; `plan` places the amber and escalation marks, `speed` is engine
    /// time's pace (1 live, more in the demo).
    pub fn new(plan: Plan, speed: f64) -> Self {
        Self {
            plan,
            speed,
            now: Millis::MIN,
            day: None,
            waiting: HashMap::new(),
            previews: HashMap::new(),
            agents: BTreeMap::new(),
            shops: BTreeMap::new(),
            alerts: VecDeque::new(),
            findings: VecDeque::new(),
            version: 0,
        }
    }

    /// Applies one change. Figures count in the Asia/Shanghai day they happened in: a
    /// change from a later day starts a new day, one from an earlier day (catching up
    /// after a restart) only moves the live state (who waits, presence).
    pub fn apply(&mut self, change: Change) {
        let today = match change.at() {
            Some(at) => self.roll(at),
            None => true,
        };
        match change {
            Change::Question { conversation, text } => {
                let preview = preview(&text);
                if let Some(p) = self.waiting.get_mut(&conversation) {
                    p.row.preview.clone_from(&preview);
                }
                self.previews.insert(conversation, preview);
            }
            Change::Reply { agent, shop, at } => {
                let a = self.agent(&agent, &shop);
                a.last_reply = Some(a.last_reply.map_or(at, |l| l.max(at)));
            }
            Change::Robot { shop, .. } => {
                if today {
                    self.shop(&shop).robot += 1;
                }
            }
            Change::Presence { agent, shop, status, .. } => self.agent(&agent, &shop).status = Some(status),
            Change::Finding(f) => {
                if today {
                    self.agent(&f.agent, &f.shop).findings += 1;
                    self.shop(&f.shop).findings += 1;
                    self.findings.push_front(f);
                    self.findings.truncate(FINDING_FEED);
                }
            }
            Change::Alert(row) => {
                if row.kind == Kind::Escalation.as_str()
                    && let Some(p) = self.waiting.get_mut(row.conversation.as_str())
                {
                    p.row.escalated = true;
                }
                self.alerts.push_front(row);
                self.alerts.truncate(ALERT_FEED);
            }
            Change::Engine(output) => self.engine(output, today),
            Change::Now(now) => self.set_now(now),
        }
    }

    /// Applies a batch in order.
    pub fn apply_all(&mut self, changes: Vec<Change>) {
        for c in changes {
            self.apply(c);
        }
    }

    fn engine(&mut self, output: Output, today: bool) {
        match output {
            Output::SessionOpened { .. } | Output::SessionClosed { .. } => {}
            Output::WaitStarted(w) => {
                let schedule = self.plan.schedule(w.start, w.deadline_ms);
                let warn_permille = self.plan.warning_permille.unwrap_or(DEFAULT_WARNING_PERMILLE);
                let escalate_at = schedule.iter().find(|(k, _)| *k == Kind::Escalation).map(|(_, t)| *t);
                let row = WaitingRow {
                    conversation: w.conversation.clone(),
                    shop: w.shop.clone(),
                    buyer: mask_id(&w.customer),
                    agent: w.agent.clone(),
                    load: w.load,
                    deadline_ms: w.deadline_ms,
                    start: w.start,
                    due_at: w.start + w.deadline_ms,
                    warn_at: w.start + w.deadline_ms * i64::from(warn_permille) / 1000,
                    escalate_at,
                    breached: false,
                    escalated: false,
                    preview: self.previews.get(&w.conversation).cloned().unwrap_or_default(),
                    first: w.first,
                };
                let a = self.agent(&w.agent, &w.shop);
                a.load = w.load;
                a.deadline_ms = w.deadline_ms;
                if today {
                    a.buyers.insert(w.customer.clone());
                }
                self.waiting.insert(w.conversation.clone(), Pending { row, customer: w.customer });
            }
            Output::WaitEnded(w) => {
                if self.waiting.get(&w.conversation).is_some_and(|p| p.row.start == w.start) {
                    self.waiting.remove(&w.conversation);
                }
                if w.outcome != Outcome::Transferred {
                    self.previews.remove(&w.conversation);
                }
                if !today || w.outcome == Outcome::Transferred {
                    return;
                }
                let on_time = !w.breached();
                let a = self.agent(&w.agent, &w.shop);
                match w.response_ms() {
                    Some(ms) => {
                        a.answered += 1;
                        a.response_ms += ms;
                        if w.first {
                            a.first_answered += 1;
                            a.first_ms += ms;
                        }
                        if ms <= THREE_MINUTES_MS {
                            a.within_3min += 1;
                        }
                    }
                    None => a.unanswered += 1,
                }
                let s = self.shop(&w.shop);
                s.ended += 1;
                if w.outcome == Outcome::Unanswered {
                    s.unanswered += 1;
                }
                s.answered_on_time += u32::from(on_time && w.outcome == Outcome::Answered);
            }
            Output::Breach(b) => {
                if let Some(p) = self.waiting.get_mut(&b.conversation).filter(|p| p.row.start == b.wait_start)
                {
                    p.row.breached = true;
                }
                if today {
                    self.agent(&b.agent, &b.shop).breaches += 1;
                    let s = self.shop(&b.shop);
                    s.breaches += 1;
                    s.breaches_by_hour[shanghai_hour(b.due_at)] += 1;
                }
            }
        }
    }

    /// Moves the board's day forward to `at`'s; true when `at` is in the board's day.
    fn roll(&mut self, at: Millis) -> bool {
        let day = shanghai_day(at);
        match self.day {
            Some(d) if d == day => true,
            Some(d) if d > day => false,
            _ => {
                self.day = Some(day);
                for a in self.agents.values_mut() {
                    a.reset_day();
                }
                for s in self.shops.values_mut() {
                    *s = ShopRow { shop: s.shop.clone(), ..ShopRow::default() };
                }
                self.findings.clear();
                true
            }
        }
    }

    /// The engine's time after a commit: a day that ended with no event still rolls.
    pub fn set_now(&mut self, now: Millis) {
        self.now = self.now.max(now);
        self.roll(now);
    }

    fn agent(&mut self, agent: &Arc<str>, shop: &Arc<str>) -> &mut AgentDay {
        let a = self.agents.entry(agent.clone()).or_default();
        if a.shop != *shop {
            a.shop = shop.clone();
        }
        a
    }

    fn shop(&mut self, shop: &Arc<str>) -> &mut ShopRow {
        self.shops.entry(shop.clone()).or_insert_with(|| ShopRow { shop: shop.clone(), ..ShopRow::default() })
    }

    /// The immutable state browsers get.
    pub fn snapshot(&mut self) -> BoardState {
        self.version += 1;
        let mut waiting: Vec<WaitingRow> = self.waiting.values().map(|p| p.row.clone()).collect();
        waiting.sort_unstable_by(|a, b| (a.due_at, &a.conversation).cmp(&(b.due_at, &b.conversation)));
        let mut per_agent: HashMap<&str, u32> = HashMap::new();
        let mut per_shop: HashMap<&str, (u32, Millis)> = HashMap::new();
        for w in &waiting {
            *per_agent.entry(&w.agent).or_default() += 1;
            let s = per_shop.entry(&w.shop).or_insert((0, w.start));
            s.0 += 1;
            s.1 = s.1.min(w.start);
        }
        let agents = self
            .agents
            .iter()
            .map(|(name, a)| agent_row(name, a, per_agent.get(name.as_ref()).copied().unwrap_or(0)))
            .collect();
        let shops = self
            .shops
            .values()
            .map(|s| {
                let (n, since) =
                    per_shop.get(s.shop.as_ref()).copied().map_or((0, None), |(n, t)| (n, Some(t)));
                ShopRow {
                    waiting: n,
                    longest_since: since,
                    on_time_pct: (s.ended > 0).then(|| pct(f64::from(s.answered_on_time), s.ended)),
                    ..s.clone()
                }
            })
            .collect();
        BoardState {
            now: self.now,
            speed: self.speed,
            day: self.day,
            waiting,
            agents,
            shops,
            alerts: self.alerts.iter().cloned().collect(),
            findings: self.findings.iter().cloned().collect(),
            version: self.version,
            full_json: OnceLock::new(),
        }
    }

    /// Buyers waiting now.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// The raw buyer id of a waiting conversation (for the engine's own checks in tests).
    pub fn waiting_customer(&self, conversation: &str) -> Option<&str> {
        self.waiting.get(conversation).map(|p| p.customer.as_ref())
    }
}

fn pct(part: f64, whole: u32) -> f64 {
    (part * 1000.0 / f64::from(whole)).round() / 10.0
}

fn shanghai_hour(ms: Millis) -> usize {
    let local = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&chrono_tz::Asia::Shanghai).hour())
        .unwrap_or(0);
    (local as usize).min(23)
}

fn agent_row(name: &Arc<str>, a: &AgentDay, waiting: u32) -> AgentRow {
    let avg = |sum: i64, n: u32| (n > 0).then(|| sum / i64::from(n));
    let ended = a.answered + a.unanswered;
    let status = match a.status {
        Some(Presence::Online) => "online",
        Some(Presence::Busy) => "busy",
        Some(Presence::Away) => "away",
        Some(Presence::Offline) => "offline",
        // No presence event yet: an agent who has replied is at work.
        None if a.last_reply.is_some() => "online",
        None => "offline",
    };
    AgentRow {
        agent: name.clone(),
        shop: a.shop.clone(),
        status,
        load: a.load,
        deadline_ms: a.deadline_ms,
        waiting,
        served: a.buyers.len() as u32,
        answered: a.answered,
        unanswered: a.unanswered,
        breaches: a.breaches,
        avg_response_ms: avg(a.response_ms, a.answered),
        avg_first_ms: avg(a.first_ms, a.first_answered),
        within_3min_pct: (ended > 0).then(|| pct(f64::from(a.within_3min), ended)),
        last_reply: a.last_reply,
        findings: a.findings,
    }
}

/// The runtime's end of the board: a cheap append per event, one channel send per commit.
/// Applying, masking and building states all happen on the publisher's task.
#[derive(Clone)]
pub struct BoardFeed {
    pending: Vec<Change>,
    tx: mpsc::UnboundedSender<Vec<Change>>,
}

impl std::fmt::Debug for BoardFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardFeed").field("pending", &self.pending.len()).finish()
    }
}

impl BoardFeed {
    /// A new event (stored, not a duplicate).
    pub fn event(&mut self, event: &Event) {
        if let Some(c) = Change::from_event(event) {
            self.pending.push(c);
        }
        // Rebuilding from a long history must not hold it all here.
        if self.pending.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// An engine output.
    pub fn output(&mut self, output: &Output) {
        self.pending.push(Change::Engine(output.clone()));
    }

    /// An alert handed to the sinks.
    pub fn notice(&mut self, notice: &Notice) {
        self.pending.push(Change::from_notice(notice));
    }

    /// Phrase-guard findings about to be stored.
    pub fn findings<'a>(&mut self, flags: impl IntoIterator<Item = &'a Flag>) {
        self.pending.extend(flags.into_iter().map(Change::from_flag));
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            // No console any more: nothing to tell.
            let _ = self.tx.send(std::mem::take(&mut self.pending));
        }
    }

    /// After a commit: hands what was gathered (and the engine's time) to the publisher.
    pub fn commit(&mut self, now: Millis) {
        self.pending.push(Change::Now(now));
        self.flush();
    }
}

/// The browsers' end of the board: the latest state, and the task that makes it.
pub struct BoardView {
    /// The latest state.
    pub rx: watch::Receiver<Arc<BoardState>>,
    /// The publisher task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Creates the board and starts its publisher (call inside a tokio runtime): the feed goes
/// to the runtime, the view to the console. States are published at most every `gap`.
pub fn channel(plan: Plan, speed: f64, gap: std::time::Duration) -> (BoardFeed, BoardView) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (state_tx, state_rx) = watch::channel(Arc::new(BoardState::empty(speed)));
    let task = tokio::spawn(publish(Board::new(plan, speed), rx, state_tx, gap));
    (BoardFeed { pending: Vec::new(), tx }, BoardView { rx: state_rx, task })
}

/// Applies batches as they come and publishes a state after them, at most every `gap`;
/// ends when the runtime's feed is gone.
async fn publish(
    mut board: Board,
    mut rx: mpsc::UnboundedReceiver<Vec<Change>>,
    tx: watch::Sender<Arc<BoardState>>,
    gap: std::time::Duration,
) {
    while let Some(batch) = rx.recv().await {
        board.apply_all(batch);
        while let Ok(batch) = rx.try_recv() {
            board.apply_all(batch);
        }
        tx.send_replace(Arc::new(board.snapshot()));
        tokio::time::sleep(gap).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Breach, Wait, WaitStart};

    const T: Millis = 1_762_826_400_000; // 2025-11-11 10:00 Asia/Shanghai

    fn start(conv: &str, agent: &str, at: Millis, deadline: i64, load: u32) -> Change {
        Change::Engine(Output::WaitStarted(WaitStart {
            conversation: conv.into(),
            shop: "s".into(),
            customer: format!("buyer-{conv}").into(),
            agent: agent.into(),
            start: at,
            deadline_ms: deadline,
            load,
            first: true,
        }))
    }

    fn end(conv: &str, agent: &str, at: Millis, end: Millis, outcome: Outcome) -> Change {
        Change::Engine(Output::WaitEnded(Wait {
            conversation: conv.into(),
            shop: "s".into(),
            customer: format!("buyer-{conv}").into(),
            agent: agent.into(),
            start: at,
            end,
            outcome,
            deadline_ms: 20_000,
            load: 1,
            first: true,
            robot: false,
        }))
    }

    fn breach(conv: &str, agent: &str, at: Millis) -> Change {
        Change::Engine(Output::Breach(Breach {
            conversation: conv.into(),
            shop: "s".into(),
            customer: format!("buyer-{conv}").into(),
            agent: agent.into(),
            wait_start: at,
            due_at: at + 20_000,
            deadline_ms: 20_000,
            load: 1,
        }))
    }

    fn finding(agent: &str, at: Millis, matched: &str) -> Change {
        Change::Finding(FindingRow {
            at,
            shop: "s".into(),
            agent: agent.into(),
            conversation: "c1".into(),
            category: "privacy".into(),
            severity: "critical",
            points: -5,
            matched: mask_text(matched),
        })
    }

    fn board(changes: Vec<Change>) -> BoardState {
        let mut b = Board::new(Plan::default(), 1.0);
        for c in changes {
            b.apply(c);
        }
        b.snapshot()
    }

    #[test]
    fn waiting_buyers_sorted_by_their_own_deadline_with_masked_buyer_and_preview() {
        let s = board(vec![
            Change::Question { conversation: "c1".into(), text: "在吗 13812345678".into() },
            start("c1", "a", T, 60_000, 5),
            start("c2", "b", T + 5_000, 20_000, 1),
        ]);
        let order: Vec<&str> = s.waiting.iter().map(|w| w.conversation.as_ref()).collect();
        // c2 started later but its 20 s deadline falls before c1's 60 s one.
        assert_eq!(order, ["c2", "c1"]);
        let c1 = &s.waiting[1];
        assert_eq!((c1.buyer.as_str(), c1.due_at, c1.load), ("b***1", T + 60_000, 5));
        assert_eq!(c1.preview, "在吗 138****5678");
        assert_eq!(c1.warn_at, T + 45_000, "amber at 75 % when the plan has no warning");
        assert_eq!(c1.escalate_at, Some(T + 180_000));
    }

    #[test]
    fn a_wait_leaves_the_board_when_it_ends_and_a_breach_marks_it_red() {
        let cases: Vec<(Vec<Change>, usize, bool)> = vec![
            (vec![start("c", "a", T, 20_000, 1)], 1, false),
            (vec![start("c", "a", T, 20_000, 1), breach("c", "a", T)], 1, true),
            (vec![start("c", "a", T, 20_000, 1), end("c", "a", T, T + 3_000, Outcome::Answered)], 0, false),
            // An end for an older wait of the conversation leaves the new one in place.
            (
                vec![start("c", "a", T + 9, 20_000, 1), end("c", "a", T, T + 3_000, Outcome::Answered)],
                1,
                false,
            ),
        ];
        for (i, (changes, n, red)) in cases.into_iter().enumerate() {
            let s = board(changes);
            assert_eq!(s.waiting.len(), n, "case {i}");
            assert_eq!(s.waiting.first().is_some_and(|w| w.breached), red, "case {i}");
        }
    }

    #[test]
    fn agent_and_shop_figures_of_the_day() {
        let s = board(vec![
            start("c1", "a", T, 20_000, 1),
            end("c1", "a", T, T + 10_000, Outcome::Answered),
            start("c2", "a", T, 20_000, 2),
            breach("c2", "a", T),
            end("c2", "a", T, T + 200_000, Outcome::Answered),
            start("c3", "a", T, 20_000, 3),
            end("c3", "a", T, T + 30_000, Outcome::Unanswered),
            start("c4", "a", T, 20_000, 3),
            Change::Reply { agent: "a".into(), shop: "s".into(), at: T + 200_000 },
            Change::Robot { shop: "s".into(), at: T + 1 },
            finding("a", T + 2, "13812345678"),
        ]);
        let a = &s.agents[0];
        assert_eq!((a.served, a.answered, a.unanswered, a.breaches, a.waiting), (4, 2, 1, 1, 1));
        assert_eq!(a.avg_response_ms, Some(105_000));
        assert_eq!(a.avg_first_ms, Some(105_000));
        assert_eq!(a.within_3min_pct, Some(33.3), "one of three ended waits within 3 min");
        assert_eq!((a.status, a.load, a.last_reply, a.findings), ("online", 3, Some(T + 200_000), 1));
        let shop = &s.shops[0];
        assert_eq!((shop.waiting, shop.ended, shop.breaches, shop.unanswered), (1, 3, 1, 1));
        assert_eq!(shop.on_time_pct, Some(33.3), "c1 only");
        assert_eq!((shop.robot, shop.findings, shop.longest_since), (1, 1, Some(T)));
        assert_eq!(shop.breaches_by_hour[10], 1);
        assert_eq!(s.findings.len(), 1);
        assert_eq!(
            (s.findings[0].matched.as_str(), s.findings[0].conversation.as_str()),
            ("138****5678", "c1")
        );
    }

    #[test]
    fn a_new_day_starts_the_figures_again_and_an_old_day_changes_only_who_waits() {
        let day = 86_400_000;
        let mut b = Board::new(Plan::default(), 1.0);
        b.apply(start("c1", "a", T, 20_000, 1));
        b.apply(breach("c1", "a", T));
        b.apply(start("c2", "a", T + day, 20_000, 1));
        b.apply(breach("c2", "a", T + day));
        // Late news from yesterday: the wait goes, the figures stay today's.
        b.apply(end("c1", "a", T, T + 30_000, Outcome::Answered));
        let s = b.snapshot();
        assert_eq!(s.agents[0].breaches, 1);
        assert_eq!(s.agents[0].answered, 0);
        assert_eq!(s.waiting.len(), 1);
        b.set_now(T + 2 * day);
        let s = b.snapshot();
        assert_eq!((s.agents[0].breaches, s.shops[0].breaches), (0, 0));
    }

    #[test]
    fn an_agent_sees_only_its_own_buyers_and_no_shop_totals() {
        let mut s = board(vec![start("c1", "a", T, 20_000, 1), start("c2", "b", T, 20_000, 1)]);
        s.alerts.push(AlertRow {
            kind: "breach",
            at: T,
            shop: "s".into(),
            agent: "b".into(),
            conversation: "c2".into(),
            title: String::new(),
            text: String::new(),
        });
        let v: serde_json::Value = serde_json::from_str(&s.json(&Scope::Agent("a".into()))).unwrap();
        assert_eq!(v["waiting"].as_array().unwrap().len(), 1);
        assert_eq!(v["waiting"][0]["agent"], "a");
        assert_eq!(v["agents"].as_array().unwrap().len(), 1);
        assert!(v["shops"].as_array().unwrap().is_empty());
        assert!(v["alerts"].as_array().unwrap().is_empty());
        let all: serde_json::Value = serde_json::from_str(&s.json(&Scope::All)).unwrap();
        assert_eq!(all["waiting_total"], 2);
        let other: serde_json::Value =
            serde_json::from_str(&s.json(&Scope::Shops(vec!["t".into()]))).unwrap();
        assert_eq!(other["waiting_total"], 0);
        assert!(!s.json(&Scope::All).contains("buyer-c1"), "raw buyer ids never leave the board");
    }

    #[test]
    fn an_escalation_alert_marks_the_wait() {
        let notice = Notice {
            kind: Kind::Escalation,
            shop: "s".into(),
            agent: "a".into(),
            agent_group: None,
            conversation: "c".into(),
            customer: "tb_buyer_1".into(),
            wait_start: T,
            due_at: T + 60_000,
            waited_ms: 60_000,
            deadline_ms: 20_000,
            load: 1,
            preview: "电话 13812345678".into(),
            detail: None,
        };
        let s = board(vec![start("c", "a", T, 20_000, 1), Change::from_notice(&notice)]);
        assert!(s.waiting[0].escalated);
        assert!(!s.alerts[0].text.contains("13812345678") && !s.alerts[0].text.contains("tb_buyer_1"));
    }
}

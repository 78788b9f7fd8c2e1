//! Daily metrics per agent (Asia/Shanghai day), from stored events and the `waits` table
//! the response clock writes. Definitions: `docs/metrics.md`.
//!
//! [`Builder`] is pure: it is fed events in time order and waits, and returns the days.
//! [`compute`] streams them from the store and resolves payments of orders created
//! before the streamed range by looking the order up in the stored events.

use std::collections::BTreeMap;

use super::fasthash::FastMap;

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;

use super::attribution::{Attributor, Credit, Owner, credit_of};
use super::score::MonthFigures;
use crate::event::{Event, EventKind, Sender};
use crate::time::{Millis, shanghai_day, shanghai_midnight, shanghai_ms_of_day};

/// Platform-style response time: waits starting in [08:00, 23:00) Shanghai.
pub const PLATFORM_FROM_MS: i64 = 8 * 3_600_000;
/// End (exclusive) of the platform-style window.
pub const PLATFORM_TO_MS: i64 = 23 * 3_600_000;
/// Platform cap per wait, also the value of an unanswered wait.
pub const PLATFORM_CAP_MS: i64 = 600_000;
/// "Answered within 3 minutes".
pub const THREE_MIN_MS: i64 = 180_000;
/// Histogram upper bounds in seconds; a longer answer goes to `HIST_OVER`, unanswered to 0.
pub const HIST_BOUNDS: [i64; 6] = [10, 20, 30, 60, 120, 300];
/// Histogram bucket for answers slower than the last bound.
pub const HIST_OVER: i64 = 9999;

/// One agent's day. Counts of buyers are distinct within the day. A buyer the agent only
/// assisted (协助下单) or followed up (协助跟进) is left out of `received`, `consulted`,
/// `replied` and `unreplied` and counted in `assisted` instead (seed 000: 谁落实算谁的,
/// 其他客服便计入协助服务, 不影响他们的转化率统计).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayMetrics {
    /// 接待人数: buyers where both the buyer and the agent wrote.
    pub received: i64,
    /// 咨询人数: buyers who wrote to the agent (not those only assisted).
    pub consulted: i64,
    /// Buyers who wrote to the agent but whom the agent only assisted or followed up.
    pub assisted: i64,
    /// 回复过的客户数: buyers who wrote and to whom the agent wrote that day (as the clock's report).
    pub replied: i64,
    /// 未回复人数 = consulted − replied.
    pub unreplied: i64,
    /// 下单人数 (credited orders created this day).
    pub ordered: i64,
    /// 付款人数 (credited orders paid this day).
    pub paid: i64,
    /// 销售额 = paid − shipping − refunds.
    pub sales: Decimal,
    /// 协助下单.
    pub assist_orders: i64,
    /// 协助跟进 orders.
    pub assist_follow: i64,
    /// 协助跟进 amount.
    pub assist_follow_amount: Decimal,
    /// Agent messages sent.
    pub agent_msgs: i64,
    /// Buyer messages received.
    pub buyer_msgs: i64,
    /// Waits that started this day.
    pub waits: i64,
    /// … answered by the agent.
    pub answered: i64,
    /// … never answered.
    pub unanswered: i64,
    /// … handed to another agent.
    pub transferred: i64,
    /// Sum of answer times of answered waits (ms).
    pub response_ms: i64,
    /// 慢响应: waits that lasted past their deadline.
    pub breaches: i64,
    /// Waits in which a robot wrote before the agent.
    pub robot_answered: i64,
    /// Platform-style waits.
    pub platform_waits: i64,
    /// Their capped time (ms).
    pub platform_ms: i64,
    /// Of them answered within 3 minutes.
    pub platform_within_3min: i64,
    /// Buyers' ratings of the agent received this day (evaluation events).
    pub ratings: i64,
    /// Of them 满意 or 非常满意 (score ≥ [`crate::event::RATING_SATISFIED`]).
    pub satisfied: i64,
    /// Phrase-guard findings by category.
    pub findings: BTreeMap<String, i64>,
}

impl DayMetrics {
    /// The part the monthly score sums.
    pub fn figures(&self) -> MonthFigures {
        MonthFigures {
            consulted: self.consulted,
            replied: self.replied,
            ordered: self.ordered,
            paid: self.paid,
            sales: self.sales,
            answered: self.answered,
            response_ms: self.response_ms,
            platform_waits: self.platform_waits,
            platform_ms: self.platform_ms,
            platform_within_3min: self.platform_within_3min,
            assist_follow_amount: self.assist_follow_amount,
            assist_orders: self.assist_orders,
            agent_msgs: self.agent_msgs,
            buyer_msgs: self.buyer_msgs,
            received: self.received,
            ratings: self.ratings,
            satisfied: self.satisfied,
        }
    }
}

/// A wait as the `waits` table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitRow {
    /// Agent.
    pub agent: String,
    /// Start (UTC ms).
    pub start: Millis,
    /// End (UTC ms).
    pub end: Millis,
    /// `answered`, `unanswered`, `transferred`.
    pub outcome: String,
    /// Deadline it was held to.
    pub deadline_ms: i64,
    /// The robot wrote while the buyer waited, before any agent (the engine's `Wait::robot`).
    pub robot: bool,
}

/// Everything computed for one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Day {
    /// Per agent.
    pub agents: BTreeMap<String, DayMetrics>,
    /// (agent, Shanghai hour) → breaches.
    pub breaches_by_hour: BTreeMap<(String, u32), i64>,
    /// (agent, bucket) → waits; see [`HIST_BOUNDS`].
    pub response_hist: BTreeMap<(String, i64), i64>,
    /// 静默下单 count.
    pub silent_orders: i64,
    /// 无人接待销售额.
    pub unattended_sales: Decimal,
}

const CUST: u8 = 1;
const AGENT: u8 = 2;
const ORDERED: u8 = 8;
const PAID: u8 = 16;
/// The agent assisted this buyer's order or followed it up (not the credited agent).
const ASSIST: u8 = 32;

const DAY_MS: i64 = 86_400_000;

/// Per (agent, buyer) flags of one day, by interned id.
type Seen = FastMap<(u32, u32), u8>;

/// Builds days `[from, to]` from events fed in time order (earlier events only feed attribution).
pub struct Builder {
    from: NaiveDate,
    to: NaiveDate,
    attributor: Attributor,
    days: BTreeMap<NaiveDate, Day>,
    /// Per (agent, buyer) flags of the day being streamed, by interned id.
    seen: Seen,
    /// Earlier days' flags, oldest first, kept until no order can still make one of
    /// their buyers an assist (the attribution window has passed).
    pending: std::collections::VecDeque<(NaiveDate, Seen)>,
    /// Whole days the attribution window reaches back.
    window_days: u64,
    /// Interned agent and buyer names (ids index `names`).
    ids: FastMap<String, u32>,
    names: Vec<String>,
    seen_day: Option<NaiveDate>,
    credits: Vec<Credit>,
}

impl Builder {
    /// A builder for days `[from, to]` with the sheet's attribution windows.
    pub fn new(from: NaiveDate, to: NaiveDate, window_ms: i64, follow_ms: i64) -> Self {
        let days = from.iter_days().take_while(|d| *d <= to).map(|d| (d, Day::default())).collect();
        Self {
            from,
            to,
            attributor: Attributor::new(window_ms, follow_ms),
            days,
            seen: FastMap::default(),
            pending: std::collections::VecDeque::new(),
            window_days: ((window_ms.max(0) + DAY_MS - 1) / DAY_MS) as u64,
            ids: FastMap::default(),
            names: Vec::new(),
            seen_day: None,
            credits: Vec::new(),
        }
    }

    fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), i);
        i
    }

    fn in_range(&self, day: NaiveDate) -> bool {
        day >= self.from && day <= self.to
    }

    fn agent_day(&mut self, day: NaiveDate, agent: &str) -> Option<&mut DayMetrics> {
        let d = self.days.get_mut(&day)?;
        if !d.agents.contains_key(agent) {
            d.agents.insert(agent.to_string(), DayMetrics::default());
        }
        d.agents.get_mut(agent)
    }

    /// Feeds one event; `lookup` resolves the owner of an order created before the stream.
    pub fn event(&mut self, e: &Event, lookup: &mut dyn FnMut(&str) -> Owner) {
        let day = shanghai_day(e.ts);
        if self.seen_day != Some(day) {
            self.next_day(day);
        }
        let counted = self.in_range(day);
        if let EventKind::Message { customer, agent, from, .. } = &e.kind
            && counted
            && matches!(from, Sender::Customer | Sender::Agent)
        {
            let key = (self.id(agent), self.id(customer));
            let flags = self.seen.entry(key).or_default();
            *flags |= if *from == Sender::Customer { CUST } else { AGENT };
            if let Some(m) = self.agent_day(day, agent) {
                if *from == Sender::Customer {
                    m.buyer_msgs += 1;
                } else {
                    m.agent_msgs += 1;
                }
            }
        }
        if let EventKind::Evaluation { agent, score, .. } = &e.kind
            && counted
            && let Some(m) = self.agent_day(day, agent)
        {
            m.ratings += 1;
            m.satisfied += i64::from(*score >= crate::event::RATING_SATISFIED);
        }
        let mut credits = std::mem::take(&mut self.credits);
        self.attributor.handle(e, &mut credits);
        for c in credits.drain(..) {
            self.credit(c, lookup);
        }
        self.credits = credits;
    }

    fn credit(&mut self, c: Credit, lookup: &mut dyn FnMut(&str) -> Owner) {
        let ts = match &c {
            Credit::Created { ts, .. }
            | Credit::AssistOrder { ts, .. }
            | Credit::AssistFollow { ts, .. }
            | Credit::Paid { ts, .. }
            | Credit::Refunded { ts, .. } => *ts,
        };
        let day = shanghai_day(ts);
        // An order after the range still makes its assistants' earlier contacts assists.
        if let Credit::AssistOrder { ts, agent, customer, .. } = &c {
            let since = shanghai_day(ts - self.window_days as i64 * DAY_MS);
            let key = (self.id(agent), self.id(customer));
            for (d, seen) in self.flags_mut() {
                if d >= since
                    && d <= day
                    && let Some(f) = seen.get_mut(&key)
                {
                    *f |= ASSIST;
                }
            }
        }
        if !self.in_range(day) {
            return;
        }
        match c {
            Credit::Created { customer, owner: Some(agent), .. } => {
                let key = (self.id(&agent), self.id(&customer));
                let f = self.seen.entry(key).or_default();
                if *f & ORDERED == 0 {
                    *f |= ORDERED;
                    if let Some(m) = self.agent_day(day, &agent) {
                        m.ordered += 1;
                    }
                }
            }
            Credit::Created { owner: None, .. } => {
                if let Some(d) = self.days.get_mut(&day) {
                    d.silent_orders += 1;
                }
            }
            Credit::AssistOrder { agent, .. } => {
                if let Some(m) = self.agent_day(day, &agent) {
                    m.assist_orders += 1;
                }
            }
            Credit::AssistFollow { agent, customer, amount, .. } => {
                let key = (self.id(&agent), self.id(&customer));
                *self.seen.entry(key).or_default() |= ASSIST;
                if let Some(m) = self.agent_day(day, &agent) {
                    m.assist_follow += 1;
                    m.assist_follow_amount += amount;
                }
            }
            Credit::Paid { customer, order, credited, net, .. } => {
                match credited.unwrap_or_else(|| lookup(&order)) {
                    Some(agent) => {
                        let key = (self.id(&agent), self.id(&customer));
                        let f = self.seen.entry(key).or_default();
                        let first = *f & PAID == 0;
                        *f |= PAID;
                        if let Some(m) = self.agent_day(day, &agent) {
                            m.sales += net;
                            m.paid += i64::from(first);
                        }
                    }
                    None => {
                        if let Some(d) = self.days.get_mut(&day) {
                            d.unattended_sales += net;
                        }
                    }
                }
            }
            Credit::Refunded { order, credited, amount, .. } => {
                match credited.unwrap_or_else(|| lookup(&order)) {
                    Some(agent) => {
                        if let Some(m) = self.agent_day(day, &agent) {
                            m.sales -= amount;
                        }
                    }
                    None => {
                        if let Some(d) = self.days.get_mut(&day) {
                            d.unattended_sales -= amount;
                        }
                    }
                }
            }
        }
    }

    /// Every day's flags still held, the streamed day last.
    fn flags_mut(&mut self) -> impl Iterator<Item = (NaiveDate, &mut Seen)> {
        let current = self.seen_day.map(|d| (d, &mut self.seen));
        self.pending.iter_mut().map(|(d, s)| (*d, s)).chain(current)
    }

    /// Moves on to `day`: the streamed day's flags wait while an order may still come for
    /// one of its buyers; days the attribution window has passed are counted.
    fn next_day(&mut self, day: NaiveDate) {
        if let Some(prev) = self.seen_day {
            self.pending.push_back((prev, std::mem::take(&mut self.seen)));
        }
        self.seen_day = Some(day);
        while let Some((d, _)) = self.pending.front() {
            if d.checked_add_days(chrono::Days::new(self.window_days)).is_some_and(|last| last >= day) {
                break;
            }
            if let Some((d, seen)) = self.pending.pop_front() {
                self.count_day(d, seen);
            }
        }
    }

    /// Turns one day's per-buyer flags into counts.
    fn count_day(&mut self, day: NaiveDate, seen: Seen) {
        let Some(d) = self.days.get_mut(&day) else { return };
        for ((agent, _), f) in seen {
            let Some(m) = self.names.get(agent as usize).and_then(|a| d.agents.get_mut(a)) else { continue };
            // Only assisted or followed up (and not converted by this agent that day):
            // outside the agent's own figures.
            if f & CUST != 0 && f & ASSIST != 0 && f & ORDERED == 0 {
                m.assisted += 1;
                continue;
            }
            // As the clock's report (`crate::report`) counts them: a buyer who wrote is
            // replied to when the agent wrote to them the same day.
            if f & CUST != 0 {
                m.consulted += 1;
                if f & AGENT != 0 {
                    m.replied += 1;
                    m.received += 1;
                } else {
                    m.unreplied += 1;
                }
            }
        }
    }

    /// Adds a wait from the clock (any order).
    pub fn wait(&mut self, w: &WaitRow) {
        let day = shanghai_day(w.start);
        if !self.in_range(day) {
            return;
        }
        let dur = (w.end - w.start).max(0);
        // The engine's rule, not a copy of it.
        let breach = crate::engine::clock::breached(dur, w.deadline_ms);
        let of_day = shanghai_ms_of_day(w.start);
        let Some(m) = self.agent_day(day, &w.agent) else { return };
        m.waits += 1;
        m.robot_answered += i64::from(w.robot);
        let bucket = match w.outcome.as_str() {
            "answered" => {
                m.answered += 1;
                m.response_ms += dur;
                Some(HIST_BOUNDS.iter().copied().find(|b| dur <= b * 1000).unwrap_or(HIST_OVER))
            }
            "unanswered" => {
                m.unanswered += 1;
                Some(0)
            }
            _ => {
                m.transferred += 1;
                None
            }
        };
        if breach {
            m.breaches += 1;
        }
        if (PLATFORM_FROM_MS..PLATFORM_TO_MS).contains(&of_day) && w.outcome != "transferred" {
            m.platform_waits += 1;
            let capped = if w.outcome == "answered" { dur.min(PLATFORM_CAP_MS) } else { PLATFORM_CAP_MS };
            m.platform_ms += capped;
            if w.outcome == "answered" && dur <= THREE_MIN_MS {
                m.platform_within_3min += 1;
            }
        }
        let Some(d) = self.days.get_mut(&day) else { return };
        if breach {
            *d.breaches_by_hour.entry((w.agent.clone(), (of_day / 3_600_000) as u32)).or_default() += 1;
        }
        if let Some(b) = bucket {
            *d.response_hist.entry((w.agent.clone(), b)).or_default() += 1;
        }
    }

    /// Adds a phrase-guard finding counted on `day`.
    pub fn finding(&mut self, day: NaiveDate, agent: &str, category: &str) {
        if let Some(m) = self.agent_day(day, agent) {
            *m.findings.entry(category.to_string()).or_default() += 1;
        }
    }

    /// The finished days.
    pub fn finish(mut self) -> BTreeMap<NaiveDate, Day> {
        if let Some(d) = self.seen_day.take() {
            self.pending.push_back((d, std::mem::take(&mut self.seen)));
        }
        while let Some((d, seen)) = self.pending.pop_front() {
            self.count_day(d, seen);
        }
        self.days
    }
}

/// How far before `from` events are streamed: two attribution windows, so orders created
/// up to one window before `from` are credited from complete contact history.
pub fn lookback_ms(window_ms: i64) -> i64 {
    2 * window_ms
}

/// Computes days `[from, to]` from the store.
pub fn compute(
    conn: &Connection,
    from: NaiveDate,
    to: NaiveDate,
    window_ms: i64,
    follow_ms: i64,
) -> rusqlite::Result<(BTreeMap<NaiveDate, Day>, i64)> {
    let start = shanghai_midnight(from);
    let end = shanghai_midnight(to + chrono::Days::new(1));
    let mut b = Builder::new(from, to, window_ms, follow_ms);
    // Orders up to one window after the range still decide which of its buyers an agent
    // only assisted; later events feed nothing else.
    let range = (start - lookback_ms(window_ms), end.saturating_add(window_ms.max(0)));
    let mut count = 0i64;
    let mut lookup_err = None;
    let mut lookup = |order: &str| match lookup_owner(conn, order, window_ms) {
        Ok(o) => o,
        Err(e) => {
            lookup_err = Some(e);
            None
        }
    };
    // Reading rows and building days each take about half the time, so on a file
    // database a second connection streams events from another thread (WAL lets it
    // read alongside); an in-memory database is read inline.
    match conn.path().filter(|p| !p.is_empty()).map(std::path::Path::new) {
        Some(path) => {
            let reader = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(8);
            std::thread::scope(|scope| -> rusqlite::Result<()> {
                let handle =
                    scope.spawn(move || stream_events(&reader, range, |batch| tx.send(batch).is_ok()));
                for batch in rx {
                    for e in &batch {
                        count += 1;
                        b.event(e, &mut lookup);
                    }
                }
                handle.join().unwrap_or(Err(rusqlite::Error::InvalidQuery))
            })?;
        }
        None => {
            stream_events(conn, range, |batch| {
                for e in &batch {
                    count += 1;
                    b.event(e, &mut lookup);
                }
                true
            })?;
        }
    }
    if let Some(e) = lookup_err {
        return Err(e);
    }
    let mut stmt = conn.prepare(
        "SELECT agent, start, end, outcome, deadline_ms, robot FROM waits WHERE start >= ?1 AND start < ?2",
    )?;
    let mut rows = stmt.query(params![start, end])?;
    while let Some(r) = rows.next()? {
        b.wait(&WaitRow {
            agent: r.get(0)?,
            start: r.get(1)?,
            end: r.get(2)?,
            outcome: r.get(3)?,
            deadline_ms: r.get(4)?,
            robot: r.get(5)?,
        });
    }
    // Findings by category: every guard finding (also those worth no points) when the
    // guard's table is here, else the guard's ledger entries.
    if super::ledger::has_flags(conn).unwrap_or(false) {
        let mut stmt = conn.prepare("SELECT ts, agent, category FROM flags WHERE ts >= ?1 AND ts < ?2")?;
        let mut rows = stmt.query(params![start, end])?;
        while let Some(r) = rows.next()? {
            b.finding(shanghai_day(r.get(0)?), &r.get::<_, String>(1)?, &r.get::<_, String>(2)?);
        }
    } else {
        let mut stmt = conn.prepare(
            "SELECT day, agent, COALESCE(category, '?') FROM ledger WHERE source = 'guard' AND voided = 0 AND day BETWEEN ?1 AND ?2",
        )?;
        let mut rows = stmt.query(params![from.to_string(), to.to_string()])?;
        while let Some(r) = rows.next()? {
            let day: String = r.get(0)?;
            if let Some(d) = crate::time::parse_day(&day) {
                b.finding(d, &r.get::<_, String>(1)?, &r.get::<_, String>(2)?);
            }
        }
    }
    Ok((b.finish(), count))
}

/// Streams events with `ts` in `[range.0, range.1)` in time order, in batches, until
/// `sink` returns false.
fn stream_events(
    conn: &Connection,
    range: (Millis, Millis),
    mut sink: impl FnMut(Vec<Event>) -> bool,
) -> rusqlite::Result<()> {
    // Messages and closes are rebuilt from the indexed columns (only `from` is read out of
    // the JSON, by SQLite); other events are parsed whole.
    let mut stmt = conn.prepare(
        "SELECT ts, type, conversation, agent, customer,
                CASE WHEN type = 'message' THEN json_extract(body, '$.from') END,
                CASE WHEN type NOT IN ('message', 'close') THEN body END
         FROM events WHERE ts >= ?1 AND ts < ?2 ORDER BY ts, seq",
    )?;
    let mut rows = stmt.query(params![range.0, range.1])?;
    let mut batch = Vec::with_capacity(4096);
    while let Some(row) = rows.next()? {
        // Stored events were validated on the way in; a row that no longer reads is skipped.
        if let Some(e) = row_event(row)? {
            batch.push(e);
        }
        if batch.len() == 4096 && !sink(std::mem::replace(&mut batch, Vec::with_capacity(4096))) {
            return Ok(());
        }
    }
    if !batch.is_empty() {
        sink(batch);
    }
    Ok(())
}

/// An event from a row of the streaming query, without parsing message bodies.
fn row_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Event>> {
    let ts: Millis = row.get(0)?;
    let kind: String = row.get(1)?;
    let text =
        |i: usize| -> rusqlite::Result<String> { Ok(row.get::<_, Option<String>>(i)?.unwrap_or_default()) };
    let kind = match kind.as_str() {
        "message" => {
            let from = match row.get::<_, Option<String>>(5)?.as_deref() {
                Some("customer") => Sender::Customer,
                Some("agent") => Sender::Agent,
                Some("bot") => Sender::Bot,
                Some("system") => Sender::System,
                _ => return Ok(None),
            };
            EventKind::Message {
                conversation: text(2)?,
                customer: text(4)?,
                agent: text(3)?,
                from,
                text: String::new(),
            }
        }
        "close" => EventKind::Close { conversation: text(2)? },
        _ => return Ok(crate::event::parse(&text(6)?).ok()),
    };
    Ok(Some(Event { id: String::new(), ts, shop: String::new(), kind }))
}

/// The owner of an order created outside the streamed range, from the stored events.
fn lookup_owner(conn: &Connection, order: &str, window_ms: i64) -> rusqlite::Result<Owner> {
    let created: Option<(Millis, String)> = conn
        .query_row(
            "SELECT ts, customer FROM events WHERE type = 'order' AND json_extract(body, '$.order') = ?1
             AND json_extract(body, '$.status') = 'created' ORDER BY ts LIMIT 1",
            [order],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((ts, customer)) = created else { return Ok(None) };
    let mut stmt = conn.prepare_cached(
        "SELECT agent, ts FROM events WHERE customer = ?1 AND ts >= ?2 AND ts <= ?3 AND type = 'message'
         AND json_extract(body, '$.from') = 'agent' ORDER BY ts, seq",
    )?;
    let msgs = stmt
        .query_map(params![customer, ts - window_ms, ts], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Millis>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(credit_of(&msgs, ts, window_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::OrderStatus;
    use rust_decimal_macros::dec;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 11).unwrap()
    }

    fn at(h: i64, m: i64, s: i64) -> Millis {
        shanghai_midnight(day()) + (h * 3600 + m * 60 + s) * 1000
    }

    use crate::event::fixtures::message as msg;

    fn ord(
        ts: Millis,
        customer: &str,
        id: &str,
        status: OrderStatus,
        amount: Decimal,
        ship: Option<Decimal>,
    ) -> Event {
        Event {
            id: format!("{ts}{id}{status:?}"),
            ts,
            shop: "s".into(),
            kind: EventKind::Order {
                customer: customer.into(),
                order: id.into(),
                status,
                amount,
                shipping: ship,
                shipment: None,
            },
        }
    }

    #[test]
    fn buyers_orders_and_sales_per_agent() {
        let mut b = Builder::new(day(), day(), 72 * 3_600_000, 72 * 3_600_000);
        let evs = [
            msg(at(9, 0, 0), "b1", "A", Sender::Customer),
            msg(at(9, 0, 5), "b1", "A", Sender::Agent),
            msg(at(9, 1, 0), "b2", "A", Sender::Customer),
            msg(at(9, 1, 3), "b2", "A", Sender::Bot),
            msg(at(9, 2, 0), "b3", "A", Sender::Agent), // A writes first, buyer never answers
            ord(at(10, 0, 0), "b1", "o1", OrderStatus::Created, dec!(210), None),
            ord(at(10, 1, 0), "b1", "o1", OrderStatus::Paid, dec!(210), Some(dec!(10))),
            ord(at(11, 0, 0), "b1", "o2", OrderStatus::Created, dec!(50), None),
            ord(at(11, 1, 0), "b1", "o2", OrderStatus::Paid, dec!(50), None),
            ord(at(12, 0, 0), "b1", "o2", OrderStatus::Refunded, dec!(20), None),
            ord(at(13, 0, 0), "b9", "o9", OrderStatus::Created, dec!(80), None),
            ord(at(13, 1, 0), "b9", "o9", OrderStatus::Paid, dec!(80), Some(dec!(8))),
            ord(at(14, 0, 0), "b8", "old", OrderStatus::Paid, dec!(99), None),
        ];
        let mut asked = vec![];
        for e in &evs {
            b.event(e, &mut |o| {
                asked.push(o.to_string());
                Some("B".into())
            });
        }
        let days = b.finish();
        let d = &days[&day()];
        let a = &d.agents["A"];
        assert_eq!((a.consulted, a.replied, a.unreplied, a.received), (2, 1, 1, 1));
        assert_eq!((a.ordered, a.paid), (1, 1)); // one buyer, two orders
        assert_eq!(a.sales, dec!(230)); // 200 + 50 − 20
        assert_eq!((a.agent_msgs, a.buyer_msgs), (2, 2));
        assert_eq!(d.silent_orders, 1);
        assert_eq!(d.unattended_sales, dec!(72));
        assert_eq!(asked, ["old"]);
        assert_eq!(d.agents["B"].sales, dec!(99));
        let f = a.figures();
        assert_eq!(f.metric(crate::scoring::sheet::Metric::AvgOrderValue), Some(dec!(230)));
        assert_eq!(f.metric(crate::scoring::sheet::Metric::ConsultConversion), Some(dec!(0.5)));
    }

    fn rating(ts: Millis, customer: &str, agent: &str, score: u8) -> Event {
        Event {
            id: format!("v{ts}{customer}"),
            ts,
            shop: "s".into(),
            kind: EventKind::Evaluation {
                agent: agent.into(),
                customer: customer.into(),
                conversation: format!("c-{customer}"),
                score,
                tag: None,
            },
        }
    }

    #[test]
    fn ratings_give_satisfaction_and_invite_rates() {
        use crate::scoring::sheet::Metric;
        let mut b = Builder::new(day(), day(), 72 * 3_600_000, 72 * 3_600_000);
        let mut evs = vec![];
        for (i, score) in [5u8, 4, 3, 1].iter().enumerate() {
            let buyer = format!("b{i}");
            evs.push(msg(at(9, i as i64, 0), &buyer, "A", Sender::Customer));
            evs.push(msg(at(9, i as i64, 5), &buyer, "A", Sender::Agent));
            evs.push(rating(at(10, i as i64, 0), &buyer, "A", *score));
        }
        // Four more buyers served, who did not rate.
        for i in 4..8 {
            let buyer = format!("b{i}");
            evs.push(msg(at(11, i, 0), &buyer, "A", Sender::Customer));
            evs.push(msg(at(11, i, 5), &buyer, "A", Sender::Agent));
        }
        evs.sort_by_key(|e| e.ts);
        for e in &evs {
            b.event(e, &mut |_| None);
        }
        let days = b.finish();
        let a = &days[&day()].agents["A"];
        assert_eq!((a.ratings, a.satisfied, a.received), (4, 2, 8));
        let f = a.figures();
        assert_eq!(f.metric(Metric::SatisfactionRate), Some(dec!(0.5)));
        assert_eq!(f.metric(Metric::RatingInviteRate), Some(dec!(0.5)));
        assert_eq!(f.metric(Metric::Ratings), Some(dec!(4)));
    }

    #[test]
    fn waits_give_response_breaches_and_platform_time() {
        let mut b = Builder::new(day(), day(), 1, 1);
        let w = |h: i64, m: i64, dur_s: i64, outcome: &str| WaitRow {
            agent: "A".into(),
            start: at(h, m, 0),
            end: at(h, m, 0) + dur_s * 1000,
            outcome: outcome.into(),
            deadline_ms: 20_000,
            robot: dur_s == 900,
        };
        b.wait(&w(7, 59, 30, "answered")); // before 08:00: not platform; breach
        b.wait(&w(8, 0, 10, "answered")); // platform, within 3 min
        b.wait(&w(12, 0, 900, "answered")); // capped at 600
        b.wait(&w(22, 59, 40, "unanswered")); // platform, counted as 600
        b.wait(&w(23, 0, 5, "answered")); // 23:00 is outside
        b.wait(&w(15, 0, 100, "transferred")); // a breach as the clock counts it, not platform
        let days = b.finish();
        let d = &days[&day()];
        let a = &d.agents["A"];
        assert_eq!((a.waits, a.answered, a.unanswered, a.transferred), (6, 4, 1, 1));
        assert_eq!(a.response_ms, (30 + 10 + 900 + 5) * 1000);
        assert_eq!(a.breaches, 4);
        assert_eq!(a.robot_answered, 1, "the one wait the engine says the robot wrote in");
        assert_eq!(
            (a.platform_waits, a.platform_ms, a.platform_within_3min),
            (3, (10 + 600 + 600) * 1000, 1)
        );
        assert_eq!(d.breaches_by_hour.get(&("A".to_string(), 22)), Some(&1));
        assert_eq!(d.response_hist.get(&("A".to_string(), 10)), Some(&2));
        assert_eq!(d.response_hist.get(&("A".to_string(), HIST_OVER)), Some(&1));
        assert_eq!(d.response_hist.get(&("A".to_string(), 0)), Some(&1));
    }
}

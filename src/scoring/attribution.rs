//! Order attribution (谁落实算谁的), pure over events in time order.
//!
//! - An order is credited to the agent who last sent the buyer a message within the
//!   window (72 h by default) before the order was created.
//! - Every other agent who wrote to the buyer in that window counts one 协助下单.
//! - An agent other than the credited one who writes to the buyer within the follow
//!   window after the order counts 协助跟进 with the order's amount, once per order.
//! - An order with no agent in the window is 静默下单; its sales go to the shop's
//!   无人接待销售额.
//!
//! Payments and refunds are credited like their order. When the order was created before
//! the events this attributor saw, [`Credit::Paid`]/[`Credit::Refunded`] carry
//! `credited: None` and the caller resolves it with [`credit_of`] over stored events.

use super::fasthash::FastMap;

use rust_decimal::Decimal;

use crate::event::{Event, EventKind, OrderStatus, Sender};
use crate::time::Millis;

/// Who an order belongs to: `Some(agent)` or `None` for 静默下单.
pub type Owner = Option<String>;

/// What attribution concluded from one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credit {
    /// An order was created (下单).
    Created {
        /// Event time.
        ts: Millis,
        /// Buyer.
        customer: String,
        /// Order id.
        order: String,
        /// Credited agent (`None` = 静默下单).
        owner: Owner,
        /// Order amount.
        amount: Decimal,
    },
    /// Another agent served the buyer before the order (协助下单).
    AssistOrder {
        /// Order time.
        ts: Millis,
        /// The assisting agent.
        agent: String,
        /// The buyer.
        customer: String,
        /// Order id.
        order: String,
    },
    /// An agent served the buyer after the order (协助跟进).
    AssistFollow {
        /// Time of the serving message.
        ts: Millis,
        /// The agent.
        agent: String,
        /// The buyer.
        customer: String,
        /// Order id.
        order: String,
        /// The order's amount.
        amount: Decimal,
    },
    /// The buyer paid (付款): `net` = amount − shipping.
    Paid {
        /// Event time.
        ts: Millis,
        /// Buyer.
        customer: String,
        /// Order id.
        order: String,
        /// `Some(owner)` when known from the stream, `None` when the caller must look it up.
        credited: Option<Owner>,
        /// Amount minus shipping.
        net: Decimal,
    },
    /// Money went back (退款).
    Refunded {
        /// Event time.
        ts: Millis,
        /// Buyer.
        customer: String,
        /// Order id.
        order: String,
        /// As for `Paid`.
        credited: Option<Owner>,
        /// Refunded amount.
        amount: Decimal,
    },
}

struct OrderState {
    customer: String,
    created: Millis,
    owner: Owner,
    amount: Decimal,
    followers: Vec<String>,
}

/// The attributor's memory: who wrote to each buyer recently, and recent orders.
pub struct Attributor {
    window_ms: i64,
    follow_ms: i64,
    /// Per buyer: (agent, last message time), most recent last.
    contacts: FastMap<String, Vec<(String, Millis)>>,
    orders: FastMap<String, OrderState>,
    /// Per buyer: their orders still inside the follow window.
    open: FastMap<String, Vec<String>>,
    last_sweep: Millis,
}

/// How long an order stays in memory for its payment and refunds (unpaid orders close after 72 h;
/// later refunds are looked up).
const KEEP_ORDER_MS: i64 = 7 * 86_400_000;

impl Attributor {
    /// A fresh attributor with the sheet's windows.
    pub fn new(window_ms: i64, follow_ms: i64) -> Self {
        Self {
            window_ms,
            follow_ms,
            contacts: FastMap::default(),
            orders: FastMap::default(),
            open: FastMap::default(),
            last_sweep: Millis::MIN,
        }
    }

    /// Feeds one event (in time order); pushes what it implies.
    pub fn handle(&mut self, e: &Event, out: &mut Vec<Credit>) {
        self.sweep(e.ts);
        match &e.kind {
            EventKind::Message { customer, agent, from: Sender::Agent, .. } => {
                self.follow(e.ts, customer, agent, out);
                let list = match self.contacts.get_mut(customer) {
                    Some(l) => l,
                    None => self.contacts.entry(customer.clone()).or_default(),
                };
                match list.last_mut() {
                    // The usual case, an agent writing again: no allocation.
                    Some((a, t)) if a == agent => *t = e.ts,
                    _ => {
                        list.retain(|(a, _)| a != agent);
                        list.push((agent.clone(), e.ts));
                    }
                }
            }
            EventKind::Order { customer, order, status, amount, shipping, .. } => match status {
                OrderStatus::Created => {
                    if self.orders.contains_key(order) {
                        return;
                    }
                    let since = e.ts - self.window_ms;
                    let recent: Vec<&(String, Millis)> = self
                        .contacts
                        .get(customer)
                        .map(|l| l.iter().filter(|(_, t)| *t >= since && *t <= e.ts).collect())
                        .unwrap_or_default();
                    let owner = recent.last().map(|(a, _)| a.clone());
                    for (a, _) in &recent[..recent.len().saturating_sub(1)] {
                        out.push(Credit::AssistOrder {
                            ts: e.ts,
                            agent: a.clone(),
                            customer: customer.clone(),
                            order: order.clone(),
                        });
                    }
                    out.push(Credit::Created {
                        ts: e.ts,
                        customer: customer.clone(),
                        order: order.clone(),
                        owner: owner.clone(),
                        amount: *amount,
                    });
                    self.orders.insert(
                        order.clone(),
                        OrderState {
                            customer: customer.clone(),
                            created: e.ts,
                            owner,
                            amount: *amount,
                            followers: Vec::new(),
                        },
                    );
                    self.open.entry(customer.clone()).or_default().push(order.clone());
                }
                OrderStatus::Paid => out.push(Credit::Paid {
                    ts: e.ts,
                    customer: customer.clone(),
                    order: order.clone(),
                    credited: self.orders.get(order).map(|o| o.owner.clone()),
                    net: *amount - shipping.unwrap_or_default(),
                }),
                OrderStatus::Refunded => out.push(Credit::Refunded {
                    ts: e.ts,
                    customer: customer.clone(),
                    order: order.clone(),
                    credited: self.orders.get(order).map(|o| o.owner.clone()),
                    amount: *amount,
                }),
                // Shipping moves no money and credits no one.
                OrderStatus::Shipped | OrderStatus::Closed => {}
            },
            _ => {}
        }
    }

    fn follow(&mut self, ts: Millis, customer: &str, agent: &str, out: &mut Vec<Credit>) {
        let Some(list) = self.open.get(customer) else { return };
        for id in list {
            let Some(o) = self.orders.get_mut(id) else { continue };
            let inside = ts > o.created && ts - o.created <= self.follow_ms;
            if inside && o.owner.as_deref() != Some(agent) && !o.followers.iter().any(|f| f == agent) {
                o.followers.push(agent.to_string());
                out.push(Credit::AssistFollow {
                    ts,
                    agent: agent.to_string(),
                    customer: customer.to_string(),
                    order: id.clone(),
                    amount: o.amount,
                });
            }
        }
    }

    /// Drops memory no later event can use; runs at most once per stream day (hourly
    /// sweeps cost a third of the scoring time on a 200-agent month).
    fn sweep(&mut self, now: Millis) {
        if now.saturating_sub(self.last_sweep) < 86_400_000 {
            return;
        }
        self.last_sweep = now;
        let since = now - self.window_ms;
        self.contacts.retain(|_, l| {
            l.retain(|(_, t)| *t >= since);
            !l.is_empty()
        });
        let follow = self.follow_ms;
        let orders = &self.orders;
        self.open.retain(|_, l| {
            l.retain(|id| orders.get(id).is_some_and(|o| now - o.created <= follow));
            !l.is_empty()
        });
        self.orders.retain(|_, o| now - o.created <= KEEP_ORDER_MS.max(follow));
    }

    /// The owner of an order this attributor saw created.
    pub fn owner(&self, order: &str) -> Option<&Owner> {
        self.orders.get(order).map(|o| &o.owner)
    }

    /// The buyer of an order this attributor saw created.
    pub fn customer(&self, order: &str) -> Option<&str> {
        self.orders.get(order).map(|o| o.customer.as_str())
    }
}

/// The owner of an order created at `created`, given the agents' messages to its buyer
/// as `(agent, ts)` in time order: the last within `window_ms` before the order.
pub fn credit_of(agent_messages: &[(String, Millis)], created: Millis, window_ms: i64) -> Owner {
    agent_messages
        .iter()
        .rev()
        .find(|(_, t)| *t <= created && created - *t <= window_ms)
        .map(|(a, _)| a.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const H: i64 = 3_600_000;

    use crate::event::fixtures::message as msg;

    fn order(ts: Millis, customer: &str, id: &str, status: OrderStatus, amount: Decimal) -> Event {
        Event {
            id: format!("o{ts}{id}"),
            ts,
            shop: "s".into(),
            kind: EventKind::Order {
                customer: customer.into(),
                order: id.into(),
                status,
                amount,
                shipping: Some(dec!(10)),
                shipment: None,
            },
        }
    }

    fn run(events: &[Event]) -> Vec<Credit> {
        let mut a = Attributor::new(72 * H, 72 * H);
        let mut out = vec![];
        for e in events {
            a.handle(e, &mut out);
        }
        out
    }

    #[test]
    fn last_agent_before_the_order_gets_it_others_assist() {
        let out = run(&[
            msg(0, "b", "A", Sender::Customer),
            msg(H, "b", "A", Sender::Agent),
            msg(2 * H, "b", "B", Sender::Agent),
            msg(3 * H, "b", "X", Sender::Bot),
            order(4 * H, "b", "o1", OrderStatus::Created, dec!(100)),
            order(5 * H, "b", "o1", OrderStatus::Paid, dec!(100)),
            msg(6 * H, "b", "C", Sender::Agent),
            msg(7 * H, "b", "C", Sender::Agent),
            msg(8 * H, "b", "B", Sender::Agent),
            order(9 * H, "b", "o1", OrderStatus::Refunded, dec!(30)),
        ]);
        let b = Some(Some("B".to_string()));
        assert_eq!(
            out,
            [
                Credit::AssistOrder {
                    ts: 4 * H,
                    agent: "A".into(),
                    customer: "b".into(),
                    order: "o1".into()
                },
                Credit::Created {
                    ts: 4 * H,
                    customer: "b".into(),
                    order: "o1".into(),
                    owner: Some("B".into()),
                    amount: dec!(100)
                },
                Credit::Paid {
                    ts: 5 * H,
                    customer: "b".into(),
                    order: "o1".into(),
                    credited: b.clone(),
                    net: dec!(90)
                },
                Credit::AssistFollow {
                    ts: 6 * H,
                    agent: "C".into(),
                    customer: "b".into(),
                    order: "o1".into(),
                    amount: dec!(100)
                },
                Credit::Refunded {
                    ts: 9 * H,
                    customer: "b".into(),
                    order: "o1".into(),
                    credited: b,
                    amount: dec!(30)
                },
            ]
        );
    }

    #[test]
    fn window_edges_and_silent_orders() {
        // Exactly 72 h before still counts; one millisecond more is 静默下单.
        let at =
            run(&[msg(0, "b", "A", Sender::Agent), order(72 * H, "b", "o", OrderStatus::Created, dec!(5))]);
        assert!(matches!(&at[0], Credit::Created { owner: Some(a), .. } if a == "A"));
        let past = run(&[
            msg(0, "b", "A", Sender::Agent),
            order(72 * H + 1, "b", "o", OrderStatus::Created, dec!(5)),
        ]);
        assert!(matches!(&past[0], Credit::Created { owner: None, .. }));
        // A buyer who only met the robot: silent.
        let bot = run(&[msg(0, "b", "A", Sender::Bot), order(H, "b", "o", OrderStatus::Created, dec!(5))]);
        assert!(matches!(&bot[0], Credit::Created { owner: None, .. }));
        // Follow-up after the follow window does not count.
        let late = run(&[
            order(0, "b", "o", OrderStatus::Created, dec!(5)),
            msg(72 * H + 1, "b", "A", Sender::Agent),
        ]);
        assert_eq!(late.len(), 1);
    }

    #[test]
    fn payment_for_an_unseen_order_asks_for_a_lookup() {
        let out = run(&[order(H, "b", "old", OrderStatus::Paid, dec!(50))]);
        assert!(matches!(&out[0], Credit::Paid { credited: None, .. }));
        let msgs = vec![("A".to_string(), 0), ("B".to_string(), 2 * H), ("C".to_string(), 5 * H)];
        assert_eq!(credit_of(&msgs, 3 * H, 72 * H), Some("B".into()));
        assert_eq!(credit_of(&msgs, 80 * H, 72 * H), None);
    }
}

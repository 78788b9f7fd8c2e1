//! What the robot knows of buyers' orders: the latest order of each buyer per shop (its
//! state, courier and tracking number, for rule conditions and `{订单状态}` `{快递}`
//! `{运单号}`), the buyer's latest conversation (where a 催付 reminder goes), and whether an
//! order was already reminded. Fed by order and message events only.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::event::{OrderStatus, Shipment};
use crate::time::Millis;

/// One buyer's latest order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderInfo {
    /// Order id.
    pub order: String,
    /// Its state.
    pub status: OrderStatus,
    /// Courier and tracking number, once shipped.
    pub shipment: Option<Shipment>,
    /// When it was created (or first seen).
    pub created: Millis,
}

/// The order state in the words a buyer reads (`{订单状态}`).
pub fn status_words(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Created => "待付款",
        OrderStatus::Paid => "已付款",
        OrderStatus::Shipped => "已发货",
        OrderStatus::Refunded => "已退款",
        OrderStatus::Closed => "已关闭",
    }
}

/// A buyer in a shop: (shop, customer); stored as the pair it was before (same snapshot
/// bytes). Looked up by a pair of `&str` through [`BuyerKey`]: the robot looks a buyer up
/// on every message, and building an owned key allocated two strings each time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct Buyer(String, String);

/// The (shop, customer) of a buyer, owned or borrowed, for allocation-free lookups.
trait BuyerKey {
    fn parts(&self) -> (&str, &str);
}

impl BuyerKey for Buyer {
    fn parts(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl BuyerKey for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        *self
    }
}

impl<'a> Borrow<dyn BuyerKey + 'a> for Buyer {
    fn borrow(&self) -> &(dyn BuyerKey + 'a) {
        self
    }
}

// `Borrow` requires the owned key and the borrowed one to hash and compare alike: both
// are the pair of strings.
impl Hash for Buyer {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl Hash for dyn BuyerKey + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl PartialEq for dyn BuyerKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn BuyerKey + '_ {}

/// The lookup key of a buyer, borrowed.
fn key<'a>(shop: &'a str, customer: &'a str) -> (&'a str, &'a str) {
    (shop, customer)
}

/// Orders and buyers' conversations, per shop (kept in the robot's snapshot).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct OrderBook {
    #[serde(with = "crate::engine::snapshot::pairs")]
    latest: HashMap<Buyer, OrderInfo>,
    /// Each order's buyer, its state (an order may not be the buyer's latest) and when it
    /// last changed.
    #[serde(with = "crate::engine::snapshot::pairs")]
    orders: HashMap<String, (Buyer, OrderStatus, Millis)>,
    /// Orders already reminded (or whose reminder was skipped), with when: at most one per
    /// order.
    #[serde(with = "crate::engine::snapshot::pairs")]
    reminded: HashMap<String, Millis>,
    /// Each buyer's latest conversation and when they last wrote in it.
    #[serde(with = "crate::engine::snapshot::pairs")]
    conversation: HashMap<Buyer, (String, Millis)>,
    /// No entry of the four maps is dated before this (`None`: unknown, e.g. after a
    /// restore), so a prune to an earlier instant has nothing to drop and skips its walk.
    /// Not part of the state: derived, and not in snapshots.
    #[serde(skip)]
    floor: Option<Millis>,
}

// The maps are the state; `floor` is only a shortcut derived from them.
impl PartialEq for OrderBook {
    fn eq(&self, other: &Self) -> bool {
        self.latest == other.latest
            && self.orders == other.orders
            && self.reminded == other.reminded
            && self.conversation == other.conversation
    }
}

impl Eq for OrderBook {}

impl OrderBook {
    /// Takes an order event; returns true when it is a newly created order (a 催付
    /// candidate).
    pub fn apply(
        &mut self,
        shop: &str,
        customer: &str,
        order: &str,
        status: OrderStatus,
        shipment: Option<&Shipment>,
        ts: Millis,
    ) -> bool {
        self.lower_floor(ts);
        let buyer = Buyer(shop.to_string(), customer.to_string());
        let new = !self.orders.contains_key(order);
        self.orders.insert(order.to_string(), (buyer.clone(), status, ts));
        let info = self.latest.entry(buyer).or_insert_with(|| OrderInfo {
            order: order.to_string(),
            status,
            shipment: None,
            created: ts,
        });
        if info.order != order {
            *info = OrderInfo { order: order.to_string(), status, shipment: None, created: ts };
        }
        info.status = status;
        if let Some(s) = shipment {
            info.shipment = Some(s.clone());
        }
        new && status == OrderStatus::Created
    }

    /// Notes the buyer's conversation (from their messages).
    pub fn saw_buyer(&mut self, shop: &str, customer: &str, conversation: &str, ts: Millis) {
        self.lower_floor(ts);
        match self.conversation.get_mut(&key(shop, customer) as &dyn BuyerKey) {
            Some(c) if c.0 == conversation => c.1 = ts,
            Some(c) => *c = (conversation.to_string(), ts),
            None => {
                let buyer = Buyer(shop.to_string(), customer.to_string());
                self.conversation.insert(buyer, (conversation.to_string(), ts));
            }
        }
    }

    /// The buyer's latest order in `shop`.
    pub fn latest(&self, shop: &str, customer: &str) -> Option<&OrderInfo> {
        self.latest.get(&key(shop, customer) as &dyn BuyerKey)
    }

    /// Claims the one reminder of `order`: its shop, buyer and the buyer's conversation
    /// when the order is still unpaid and was never reminded; `None` otherwise. A claim
    /// counts even when the caller then stays silent (quiet hours), so it is never retried.
    pub fn claim_reminder(&mut self, order: &str, at: Millis) -> Option<(String, String, Option<String>)> {
        let (Buyer(shop, customer), status, _) = self.orders.get(order)?;
        self.floor = self.floor.map(|f| f.min(at));
        if *status != OrderStatus::Created || self.reminded.insert(order.to_string(), at).is_some() {
            return None;
        }
        let conv = self.conversation.get(&key(shop, customer) as &dyn BuyerKey).map(|c| c.0.clone());
        Some((shop.clone(), customer.clone(), conv))
    }

    /// Forgets buyers whose conversation and order are both older than `before`, so a
    /// long-running robot does not grow.
    /// (One pass over each map, unless nothing in them is that old: the caller does this
    /// rarely, e.g. hourly.)
    pub fn prune(&mut self, before: Millis) {
        if self.floor.is_some_and(|f| f >= before) {
            return;
        }
        // The walk finds the oldest entry kept, so the next prunes before it need no walk.
        let mut floor = Millis::MAX;
        let mut keep = |ts: Millis| {
            let kept = ts >= before;
            if kept {
                floor = floor.min(ts);
            }
            kept
        };
        self.conversation.retain(|_, c| keep(c.1));
        self.latest.retain(|_, o| keep(o.created));
        self.orders.retain(|_, o| keep(o.2));
        self.reminded.retain(|_, at| keep(*at));
        self.floor = Some(floor);
    }

    /// An entry dated `ts` is stored: nothing older than it may be assumed absent.
    fn lower_floor(&mut self, ts: Millis) {
        self.floor = self.floor.map(|f| f.min(ts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reminder_per_unpaid_order() {
        let mut b = OrderBook::default();
        assert!(b.apply("s", "b1", "T1", OrderStatus::Created, None, 0));
        assert!(!b.apply("s", "b1", "T1", OrderStatus::Created, None, 1), "seen before");
        b.saw_buyer("s", "b1", "c1", 2);
        assert_eq!(b.claim_reminder("T1", 10), Some(("s".into(), "b1".into(), Some("c1".into()))));
        assert_eq!(b.claim_reminder("T1", 10), None, "at most once");
        b.apply("s", "b2", "T2", OrderStatus::Created, None, 0);
        b.apply("s", "b2", "T2", OrderStatus::Paid, None, 5);
        assert_eq!(b.claim_reminder("T2", 10), None, "paid meanwhile");
        let ship = Shipment { courier: "中通快递".into(), tracking: "73".into() };
        b.apply("s", "b2", "T2", OrderStatus::Shipped, Some(&ship), 6);
        let o = b.latest("s", "b2").unwrap();
        assert_eq!((o.status, o.shipment.as_ref()), (OrderStatus::Shipped, Some(&ship)));
        assert!(b.latest("other shop", "b2").is_none());
    }

    #[test]
    fn a_prune_that_skips_its_walk_keeps_exactly_what_a_full_walk_keeps() {
        // Entries written out of time order, updated, reminded; pruned at cutoffs before,
        // between and after them. The book that may skip must equal one that always walks.
        const H: Millis = 3_600_000;
        let mut book = OrderBook::default();
        let mut walked = OrderBook::default();
        let steps: [fn(&mut OrderBook); 9] = [
            |b| b.saw_buyer("s", "b1", "c1", 10 * H),
            |b| _ = b.apply("s", "b1", "T1", OrderStatus::Created, None, 10 * H),
            |b| b.saw_buyer("s", "b2", "c2", 4 * H),
            |b| _ = b.apply("s", "b2", "T2", OrderStatus::Created, None, 5 * H),
            |b| _ = b.claim_reminder("T2", 6 * H),
            |b| b.saw_buyer("s", "b1", "c1", 12 * H),
            |b| _ = b.apply("s", "b3", "T3", OrderStatus::Paid, None, 2 * H),
            |b| _ = b.claim_reminder("T1", 3 * H),
            |b| _ = b.apply("s", "b1", "T4", OrderStatus::Created, None, 20 * H),
        ];
        for (i, step) in steps.iter().enumerate() {
            step(&mut book);
            step(&mut walked);
            for cutoff in [H, 3 * H, 5 * H, 7 * H, 11 * H, 13 * H, 30 * H] {
                let (mut b, mut w) = (book.clone(), walked.clone());
                b.prune(cutoff);
                w.floor = None;
                w.prune(cutoff);
                assert_eq!(b, w, "after step {i}, pruned before {cutoff}");
            }
            // Pruned in place as the robot does, hourly and rising.
            book.prune(i as Millis * H);
            walked.floor = None;
            walked.prune(i as Millis * H);
            assert_eq!(book, walked, "after step {i}");
        }
        assert!(book.latest("s", "b1").is_some() && book.latest("s", "b3").is_none());
    }

    #[test]
    fn a_buyer_is_stored_as_the_pair_it_was_and_found_by_borrowed_strings() {
        // Snapshots written before the key became a type must still read (same bytes).
        let pair = serde_json::to_string(&("s".to_string(), "b1".to_string())).unwrap();
        assert_eq!(serde_json::to_string(&Buyer("s".into(), "b1".into())).unwrap(), pair);
        assert_eq!(serde_json::from_str::<Buyer>(&pair).unwrap(), Buyer("s".into(), "b1".into()));

        let mut b = OrderBook::default();
        b.saw_buyer("s", "b1", "c1", 1);
        b.saw_buyer("s", "b1", "c2", 2);
        b.saw_buyer("s2", "b1", "c3", 3);
        b.apply("s", "b1", "T1", OrderStatus::Created, None, 4);
        assert_eq!(b.conversation.len(), 2);
        assert_eq!(b.claim_reminder("T1", 5), Some(("s".into(), "b1".into(), Some("c2".into()))));
        assert_eq!(b.latest("s", "b1").map(|o| o.order.as_str()), Some("T1"));
        // ("s", "b1") and ("sb", "1") are different buyers, though their strings join alike.
        assert!(b.latest("sb", "1").is_none());
    }
}

//! Traffic of many shops at once, for the cluster mode's tests, benchmark and demo: each
//! shop's day as [`generate`] makes it (its own seed), its ids made unique across shops,
//! merged by time, and closed by one event the next morning per shop.
//!
//! In one kefu engine (a cluster partition holds many shops) conversations and agents are
//! keyed by their ids alone, so ids must not repeat across shops — as on the platform,
//! where a conversation id is global and an agent is a sub-account `店铺:客服`.

use super::traffic::{SimConfig, generate};
use crate::event::{Event, EventKind, Presence};

/// `shops` shops (`<config.shop>-000` …), `config.events` events each, ids made unique:
/// event `<shop>/<id>`, conversation `<shop>/<id>`, agent `<shop>:<agent>`, order
/// `<shop>/<order>`. After each shop's traffic, its first agent goes offline a day after
/// the start, which closes every session of the day (what the next morning's first event
/// does live), so a day's waits are all final.
pub fn many_shops(config: &SimConfig, shops: usize) -> Vec<Event> {
    let mut all = Vec::new();
    for i in 0..shops {
        let shop = format!("{}-{i:03}", config.shop);
        let one = SimConfig {
            shop: shop.clone(),
            seed: config.seed.wrapping_add(i as u64 * 7919),
            ..config.clone()
        };
        let mut events = generate(&one);
        events.iter_mut().for_each(|e| rename(e, &shop));
        events.push(Event {
            id: format!("{shop}/night"),
            ts: config.start + 86_400_000,
            shop: shop.clone(),
            kind: EventKind::Presence { agent: format!("{shop}:agent01"), status: Presence::Offline },
        });
        all.extend(events.into_iter().enumerate().map(|(n, e)| (e.ts, i, n, e)));
    }
    // By time; within one instant, shop by shop in each shop's own order.
    all.sort_by_key(|(ts, i, n, _)| (*ts, *i, *n));
    all.into_iter().map(|(_, _, _, e)| e).collect()
}

fn rename(e: &mut Event, shop: &str) {
    let conv = |c: &mut String| *c = format!("{shop}/{c}");
    let agent = |a: &mut String| *a = format!("{shop}:{a}");
    e.id = format!("{shop}/{}", e.id);
    match &mut e.kind {
        EventKind::Message { conversation, agent: a, .. } => {
            conv(conversation);
            agent(a);
        }
        EventKind::Transfer { conversation, from_agent, to_agent } => {
            conv(conversation);
            agent(from_agent);
            agent(to_agent);
        }
        EventKind::Close { conversation } => conv(conversation),
        EventKind::Presence { agent: a, .. } => agent(a),
        EventKind::Order { order, .. } => *order = format!("{shop}/{order}"),
        EventKind::Evaluation { agent: a, conversation, .. } => {
            agent(a);
            conv(conversation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_shops_and_time_is_ordered() {
        let config = SimConfig { events: 300, ..SimConfig::default() };
        let events = many_shops(&config, 5);
        assert_eq!(events.len(), 5 * 301);
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), events.len());
        assert!(events.windows(2).all(|w| w[0].ts <= w[1].ts));
        for e in &events {
            if let EventKind::Message { conversation, agent, .. } = &e.kind {
                assert!(conversation.starts_with(&format!("{}/", e.shop)), "{conversation}");
                assert!(agent.starts_with(&format!("{}:", e.shop)), "{agent}");
            }
        }
        assert_eq!(events.iter().filter(|e| e.id.ends_with("/night")).count(), 5);
    }
}

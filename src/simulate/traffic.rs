//! Seeded traffic: buyers arrive (in bursts at times), agents answer fast, slowly or not at
//! all, robots greet, conversations move between agents, close or go idle, and some end in
//! orders. The same seed gives the same events, byte for byte.

use std::io::Write;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

use crate::event::{Event, EventKind, OrderStatus, Presence, Sender};
use crate::time::Millis;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Random seed.
    pub seed: u64,
    /// How many events to produce.
    pub events: usize,
    /// Number of agents.
    pub agents: usize,
    /// Shop id.
    pub shop: String,
    /// When traffic starts, UTC ms.
    pub start: Millis,
    /// Share of agent messages that break a phrase-guard rule (0.0–1.0).
    pub violations: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            events: 5_000,
            agents: 6,
            shop: "tmall-demo".into(),
            // 2026-11-11 08:30 Asia/Shanghai, the start of the day shift (白班).
            start: 1_794_360_600_000,
            violations: 0.01,
        }
    }
}

const QUESTIONS: &[&str] = &[
    "在吗?",
    "你好,这件连衣裙有M码吗",
    "发什么快递?",
    "今天下单什么时候发货",
    "能便宜点吗,我买两件",
    "有优惠券吗",
    "身高165体重52kg穿什么码",
    "这个颜色会不会褪色",
    "聚划算的价格什么时候结束",
    "我的快递怎么还没到,单号查不到",
    "收到的衣服有线头,可以退换吗",
    "退货运费谁出",
    "亲,这款还有货吗",
    "面料是纯棉的吗",
    "可以开发票吗",
    "地址填错了能改吗",
];

const FOLLOW_UPS: &[&str] = &["好的", "那我拍了", "嗯嗯", "还有别的颜色吗", "多久能到", "谢谢", "?", "人呢"];

const ANSWERS: &[&str] = &[
    "亲,在的呢,请问有什么可以帮您?",
    "有的亲,M码现货,今天下单48小时内发货哦",
    "默认中通快递,偏远地区顺丰需补差价的亲",
    "亲,聚划算活动价已经是最低了,两件可以送运费险哦",
    "可以领店铺首页的满199减20券呢",
    "根据您的身高体重建议选M码,宽松一点可以选L",
    "亲,面料是95%棉,正常洗涤不会褪色的",
    "亲,帮您查一下物流,请稍等",
    "非常抱歉给您带来不便,支持7天无理由退换,运费险会赔付运费",
    "亲,可以的,下单时备注开票信息即可",
    "好的亲,已经帮您备注修改地址了",
    "感谢您的支持,期待再次光临~",
];

/// Agent lines a shop's rules forbid, seeded so the phrase guard has something to find.
const VIOLATIONS: &[&str] = &[
    "加我微信吧,私下给你便宜",
    "说了多少遍了,你自己看详情页",
    "这个不归我管,你找快递去",
    "爱买不买",
    "我们家是全网最好的,第一品牌",
    "可以支付宝转账给我,便宜20",
    "给个好评返现5元哦",
    "我的手机号13812345678,直接打给我",
];

const GREETING: &str = "欢迎光临本店,聚划算活动进行中,有什么可以帮您的吗?";

struct Builder {
    rng: SmallRng,
    events: Vec<(Millis, u32, EventKind)>,
    order: u32,
}

impl Builder {
    fn push(&mut self, ts: Millis, kind: EventKind) {
        // The tie-break keeps events of one instant in the order they were generated.
        self.order += 1;
        self.events.push((ts, self.order, kind));
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.rng.gen_range(0..list.len())]
    }

    /// Agent reply delay: mostly quick, a fifth slow, a few very slow, some never.
    fn reply_delay(&mut self) -> Option<Millis> {
        let r: f64 = self.rng.r#gen();
        let ms = |lo: i64, hi: i64, rng: &mut SmallRng| rng.gen_range(lo..hi);
        match r {
            r if r < 0.70 => Some(ms(2_000, 18_000, &mut self.rng)),
            r if r < 0.90 => Some(ms(18_000, 60_000, &mut self.rng)),
            r if r < 0.96 => Some(ms(60_000, 150_000, &mut self.rng)),
            _ => None,
        }
    }
}

/// Generates `config.events` events, sorted by time, with ids unique within the shop.
pub fn generate(config: &SimConfig) -> Vec<Event> {
    let mut b = Builder { rng: SmallRng::seed_from_u64(config.seed), events: Vec::new(), order: 0 };
    let agents: Vec<String> = (1..=config.agents.max(1)).map(|i| format!("agent{i:02}")).collect();
    for a in &agents {
        b.push(config.start, EventKind::Presence { agent: a.clone(), status: Presence::Online });
    }
    // About a dozen conversations per agent-hour, with a burst of five times that rate
    // for 5 minutes in every 30, when agents pass 4 buyers and the 60 s tier applies.
    let per_hour = 12.0 * agents.len() as f64;
    let mut t = config.start;
    let mut n = 0u64;
    while b.events.len() < config.events {
        let in_burst = (t - config.start).rem_euclid(1_800_000) < 300_000;
        let rate = if in_burst { per_hour * 5.0 } else { per_hour };
        let gap: f64 = -(1.0 - b.rng.r#gen::<f64>()).ln() * 3_600_000.0 / rate;
        t += gap as Millis + 1;
        n += 1;
        conversation(&mut b, config, &agents, n, t);
        if n.is_multiple_of(97) {
            let a = agents[b.rng.gen_range(0..agents.len())].clone();
            b.push(t, EventKind::Presence { agent: a.clone(), status: Presence::Away });
            b.push(t + 600_000, EventKind::Presence { agent: a, status: Presence::Online });
        }
    }
    b.events.sort_by_key(|(ts, order, _)| (*ts, *order));
    b.events.truncate(config.events);
    b.events
        .into_iter()
        .enumerate()
        .map(|(i, (ts, _, kind))| Event {
            id: format!("{}-{:08}", config.shop, i + 1),
            ts,
            shop: config.shop.clone(),
            kind,
        })
        .collect()
}

fn conversation(b: &mut Builder, config: &SimConfig, agents: &[String], n: u64, start: Millis) {
    let conversation = format!("c{n:07}");
    let customer = format!("tb{:09}", 100_000_000 + n * 7919 % 900_000_000);
    let mut agent = agents[b.rng.gen_range(0..agents.len())].clone();
    let msg = |b: &mut Builder, ts: Millis, agent: &str, from: Sender, text: &str| {
        b.push(
            ts,
            EventKind::Message {
                conversation: conversation.clone(),
                customer: customer.clone(),
                agent: agent.to_string(),
                from,
                text: text.to_string(),
            },
        );
    };
    let mut t = start;
    let q = b.pick(QUESTIONS);
    msg(b, t, &agent, Sender::Customer, q);
    if b.rng.gen_bool(0.5) {
        msg(b, t + 500, &agent, Sender::Bot, GREETING);
    }
    let rounds = b.rng.gen_range(1..=4);
    for round in 0..rounds {
        if b.rng.gen_bool(0.25) {
            let extra = b.pick(FOLLOW_UPS);
            t += b.rng.gen_range(1_000..8_000);
            msg(b, t, &agent, Sender::Customer, extra);
        }
        if b.rng.gen_bool(0.04) {
            let to = agents[b.rng.gen_range(0..agents.len())].clone();
            if to != agent {
                t += b.rng.gen_range(5_000..40_000);
                b.push(
                    t,
                    EventKind::Transfer {
                        conversation: conversation.clone(),
                        from_agent: agent.clone(),
                        to_agent: to.clone(),
                    },
                );
                agent = to;
            }
        }
        let Some(delay) = b.reply_delay() else { break };
        t += delay;
        let text = if b.rng.gen_bool(config.violations.clamp(0.0, 1.0)) {
            b.pick(VIOLATIONS)
        } else {
            b.pick(ANSWERS)
        };
        msg(b, t, &agent, Sender::Agent, text);
        if round + 1 < rounds {
            t += b.rng.gen_range(5_000..90_000);
            let f = b.pick(FOLLOW_UPS);
            msg(b, t, &agent, Sender::Customer, f);
        }
    }
    if b.rng.gen_bool(0.6) {
        t += b.rng.gen_range(30_000..120_000);
        b.push(t, EventKind::Close { conversation: conversation.clone() });
    }
    if b.rng.gen_bool(0.3) {
        let amount = Decimal::new(b.rng.gen_range(59..400) * 100 + [0, 90, 50][b.rng.gen_range(0..3)], 2);
        let shipping = b.rng.gen_bool(0.3).then(|| Decimal::new(1000, 2));
        let order = format!("T{}{:07}", 2026, n);
        let mut ot = t + b.rng.gen_range(60_000..1_200_000);
        let step = |b: &mut Builder, ts: Millis, status: OrderStatus| {
            b.push(
                ts,
                EventKind::Order {
                    customer: customer.clone(),
                    order: order.clone(),
                    status,
                    amount,
                    shipping,
                    shipment: None,
                },
            );
        };
        step(b, ot, OrderStatus::Created);
        if b.rng.gen_bool(0.85) {
            ot += b.rng.gen_range(30_000..600_000);
            step(b, ot, OrderStatus::Paid);
            if b.rng.gen_bool(0.05) {
                step(b, ot + 86_400_000, OrderStatus::Refunded);
            }
        } else {
            step(b, ot + 1_800_000, OrderStatus::Closed);
        }
    }
}

/// Writes events as JSONL.
pub fn write_jsonl(events: &[Event], mut out: impl Write) -> std::io::Result<()> {
    for e in events {
        out.write_all(e.to_json().as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events_and_all_kinds_present() {
        let cfg = SimConfig { events: 3_000, ..SimConfig::default() };
        let a = generate(&cfg);
        assert_eq!(a.len(), 3_000);
        assert_eq!(a, generate(&cfg));
        assert!(a.windows(2).all(|w| w[0].ts <= w[1].ts));
        for kind in ["message", "transfer", "close", "presence", "order"] {
            assert!(a.iter().any(|e| e.type_name() == kind), "no {kind}");
        }
        let bot = a.iter().any(|e| matches!(&e.kind, EventKind::Message { from: Sender::Bot, .. }));
        assert!(bot);
        let other = generate(&SimConfig { seed: 8, ..cfg });
        assert_ne!(a, other);
    }
}

//! The event model: one JSON object per event, the same on the wire and in JSONL files.
//!
//! Parsing borrows from the input line where it can, because replay must parse about a
//! million events a second; [`Event`] owns its strings and is what the rest of kefu uses.

use std::borrow::Cow;

use rust_decimal::Decimal;
use serde::Deserialize;
use thiserror::Error;

use crate::time::{Millis, parse_rfc3339_ms};

mod fast;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sender {
    /// The buyer.
    Customer,
    /// A human agent (客服).
    Agent,
    /// A robot: auto-greeting, auto-answer, rescue reply. Never ends a wait.
    Bot,
    /// The platform itself. Never ends a wait.
    System,
}

/// An agent's presence as the platform reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// Online and taking buyers.
    Online,
    /// Online but marked busy.
    Busy,
    /// Away for a short time (挂起).
    Away,
    /// Logged off.
    Offline,
}

/// Lifecycle step of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// 下单: the buyer placed the order.
    Created,
    /// 付款: the buyer paid.
    Paid,
    /// 发货: the parcel left; the event carries the courier and the tracking number.
    Shipped,
    /// 退款: the money went back.
    Refunded,
    /// 关闭: closed unpaid.
    Closed,
}

/// One conversation event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id; a second event with the same id is a duplicate.
    pub id: String,
    /// Event time, UTC milliseconds.
    pub ts: Millis,
    /// Shop the event belongs to.
    pub shop: String,
    /// What happened.
    pub kind: EventKind,
}

/// The type-specific part of an [`Event`].
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A chat message.
    Message {
        /// Conversation id.
        conversation: String,
        /// Buyer id.
        customer: String,
        /// The agent the conversation is assigned to; for an agent message, the sender.
        agent: String,
        /// Who wrote it.
        from: Sender,
        /// Message text.
        text: String,
    },
    /// The conversation moves to another agent (转接).
    Transfer {
        /// Conversation id.
        conversation: String,
        /// Agent handing over.
        from_agent: String,
        /// Agent taking over.
        to_agent: String,
    },
    /// The conversation ends.
    Close {
        /// Conversation id.
        conversation: String,
    },
    /// An agent's presence changed.
    Presence {
        /// Agent id.
        agent: String,
        /// New status.
        status: Presence,
    },
    /// An order changed state.
    Order {
        /// Buyer id.
        customer: String,
        /// Order id (订单号).
        order: String,
        /// New state.
        status: OrderStatus,
        /// Order amount in 元.
        amount: Decimal,
        /// Shipping included in `amount`, in 元, when known.
        shipping: Option<Decimal>,
        /// Courier and tracking number; present exactly when `status` is `shipped`.
        shipment: Option<Shipment>,
    },
    /// A buyer rated the agent who served them (千牛 客服评价).
    Evaluation {
        /// The agent rated.
        agent: String,
        /// The buyer who rated.
        customer: String,
        /// The conversation rated.
        conversation: String,
        /// The platform's scale, [`RATING_MIN`]..=[`RATING_MAX`]: 5 非常满意, 4 满意, 3 一般,
        /// 2 不满意, 1 非常不满意.
        score: u8,
        /// The buyer's tag (e.g. 回复及时, 态度差), when given.
        tag: Option<String>,
    },
}

/// Lowest rating on the platform's scale (非常不满意).
pub const RATING_MIN: u8 = 1;
/// Highest rating on the platform's scale (非常满意).
pub const RATING_MAX: u8 = 5;
/// A rating at or above this counts as satisfied (满意 or 非常满意) for 满意率.
pub const RATING_SATISFIED: u8 = 4;

/// The platform's words for each rating, lowest first (index = score − 1).
pub const RATING_LABELS: [&str; 5] = ["非常不满意", "不满意", "一般", "满意", "非常满意"];

/// A rating from its number (`1`…`5`) or the platform's word (`非常满意` …).
pub fn rating_score(text: &str) -> Option<u8> {
    let t = text.trim();
    if let Some(i) = RATING_LABELS.iter().position(|l| *l == t) {
        return Some(i as u8 + 1);
    }
    t.parse::<u8>().ok().filter(|s| (RATING_MIN..=RATING_MAX).contains(s))
}

/// Where a shipped order went: what a buyer asking 发货了吗 wants to hear.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Shipment {
    /// 快递公司, e.g. 中通快递.
    pub courier: String,
    /// 运单号.
    pub tracking: String,
}

impl Event {
    /// The event's `type` as written on the wire.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            EventKind::Message { .. } => "message",
            EventKind::Transfer { .. } => "transfer",
            EventKind::Close { .. } => "close",
            EventKind::Presence { .. } => "presence",
            EventKind::Order { .. } => "order",
            EventKind::Evaluation { .. } => "evaluation",
        }
    }

    /// The conversation the event belongs to, if any.
    pub fn conversation(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Message { conversation, .. }
            | EventKind::Transfer { conversation, .. }
            | EventKind::Close { conversation }
            | EventKind::Evaluation { conversation, .. } => Some(conversation),
            _ => None,
        }
    }

    /// The agent the event names (assigned agent, receiving agent or presence subject).
    pub fn agent(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Message { agent, .. } => Some(agent),
            EventKind::Transfer { to_agent, .. } => Some(to_agent),
            EventKind::Presence { agent, .. } | EventKind::Evaluation { agent, .. } => Some(agent),
            _ => None,
        }
    }

    /// The buyer the event names, if any.
    pub fn customer(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Message { customer, .. }
            | EventKind::Order { customer, .. }
            | EventKind::Evaluation { customer, .. } => Some(customer),
            _ => None,
        }
    }

    /// Serialises the event back to its wire JSON (one line, no trailing newline).
    pub fn to_json(&self) -> String {
        let ts = crate::time::format_rfc3339_shanghai(self.ts);
        let mut v = serde_json::json!({"type": self.type_name(), "id": self.id, "ts": ts, "shop": self.shop});
        let o = v.as_object_mut().expect("json! object literal is an object");
        match &self.kind {
            EventKind::Message { conversation, customer, agent, from, text } => {
                o.insert("conversation".into(), conversation.as_str().into());
                o.insert("customer".into(), customer.as_str().into());
                o.insert("agent".into(), agent.as_str().into());
                o.insert("from".into(), serde_json::to_value(from).unwrap_or_default());
                o.insert("text".into(), text.as_str().into());
            }
            EventKind::Transfer { conversation, from_agent, to_agent } => {
                o.insert("conversation".into(), conversation.as_str().into());
                o.insert("from_agent".into(), from_agent.as_str().into());
                o.insert("to_agent".into(), to_agent.as_str().into());
            }
            EventKind::Close { conversation } => {
                o.insert("conversation".into(), conversation.as_str().into());
            }
            EventKind::Presence { agent, status } => {
                o.insert("agent".into(), agent.as_str().into());
                o.insert("status".into(), serde_json::to_value(status).unwrap_or_default());
            }
            EventKind::Order { customer, order, status, amount, shipping, shipment } => {
                if let Some(s) = shipment {
                    o.insert("courier".into(), s.courier.as_str().into());
                    o.insert("tracking".into(), s.tracking.as_str().into());
                }
                o.insert("customer".into(), customer.as_str().into());
                o.insert("order".into(), order.as_str().into());
                o.insert("status".into(), serde_json::to_value(status).unwrap_or_default());
                o.insert("amount".into(), amount.to_string().into());
                if let Some(s) = shipping {
                    o.insert("shipping".into(), s.to_string().into());
                }
            }
            EventKind::Evaluation { agent, customer, conversation, score, tag } => {
                o.insert("agent".into(), agent.as_str().into());
                o.insert("customer".into(), customer.as_str().into());
                o.insert("conversation".into(), conversation.as_str().into());
                o.insert("score".into(), (*score).into());
                if let Some(t) = tag {
                    o.insert("tag".into(), t.as_str().into());
                }
            }
        }
        v.to_string()
    }
}

/// Why a line or frame is not a valid event.
#[derive(Debug, Error, PartialEq)]
pub enum EventError {
    /// Not JSON, or a field of the wrong JSON type.
    #[error("not a valid event object: {0}")]
    Json(String),
    /// A field the event type requires is absent.
    #[error("missing field `{field}` for type `{kind}`")]
    Missing {
        /// Event type.
        kind: String,
        /// Absent field.
        field: &'static str,
    },
    /// The line is not UTF-8 text.
    #[error("not UTF-8 text: an invalid byte at byte {column} of the line")]
    NotUtf8 {
        /// 1-based byte position of the first invalid byte.
        column: usize,
    },
    /// `type` is not one kefu knows.
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    /// `ts` is not RFC 3339 with an offset.
    #[error("bad ts `{0}`: expected RFC 3339 with offset, e.g. 2026-11-11T10:00:00.250+08:00")]
    Time(String),
    /// `amount` or `shipping` is not a decimal.
    #[error("bad {field} `{value}`: expected a decimal string in 元, e.g. \"199.00\"")]
    Money {
        /// Field name.
        field: &'static str,
        /// What was there.
        value: String,
    },
    /// A string field that must not be empty is empty.
    #[error("field `{0}` is empty")]
    Empty(&'static str),
    /// An evaluation's `score` is off the platform's scale.
    #[error("bad score `{0}`: expected 1 (非常不满意) … 5 (非常满意)")]
    Score(String),
}

/// The wire shape, with every field optional so a missing one is reported by name.
#[derive(Default, Deserialize)]
struct Raw<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow)]
    shop: Option<Cow<'a, str>>,
    #[serde(borrow)]
    conversation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    customer: Option<Cow<'a, str>>,
    #[serde(borrow)]
    agent: Option<Cow<'a, str>>,
    from: Option<Sender>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    from_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    to_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    order: Option<Cow<'a, str>>,
    amount: Option<MoneyField<'a>>,
    shipping: Option<MoneyField<'a>>,
    #[serde(borrow)]
    courier: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tracking: Option<Cow<'a, str>>,
    /// An evaluation's rating: a JSON number, or a string holding the number or the platform's word.
    score: Option<MoneyField<'a>>,
    #[serde(borrow)]
    tag: Option<Cow<'a, str>>,
}

/// Money may arrive as a decimal string (the contract) or a bare JSON number.
#[derive(Deserialize)]
#[serde(untagged)]
enum MoneyField<'a> {
    Str(#[serde(borrow)] Cow<'a, str>),
    Num(serde_json::Number),
}

impl MoneyField<'_> {
    fn text(&self) -> String {
        match self {
            MoneyField::Str(s) => s.to_string(),
            MoneyField::Num(n) => n.to_string(),
        }
    }
}

/// Parses one event from its JSON text.
///
/// A flat line without escapes (what the platform and `kefu simulate` write) takes a
/// single-scan fast path ([`fast`]); anything else — and every line the fast path is not
/// sure of — goes through serde, so what is accepted and every error text are serde's.
pub fn parse(line: &str) -> Result<Event, EventError> {
    match fast::raw(line) {
        Some(raw) => from_raw(raw),
        None => parse_serde(line),
    }
}

/// [`parse`] through serde only: the reference the fast path is tested against.
fn parse_serde(line: &str) -> Result<Event, EventError> {
    let raw: Raw = serde_json::from_str(line).map_err(|e| EventError::Json(e.to_string()))?;
    from_raw(raw)
}

/// Parses one event from an already-decoded JSON value (used by the websocket gateway).
pub fn from_value(value: &serde_json::Value) -> Result<Event, EventError> {
    let raw = Raw::deserialize(value).map_err(|e| EventError::Json(e.to_string()))?;
    from_raw(raw)
}

fn from_raw(raw: Raw<'_>) -> Result<Event, EventError> {
    let kind_name = raw.kind.ok_or(EventError::Missing { kind: "?".into(), field: "type" })?;
    let k = kind_name.as_ref();
    if !matches!(k, "message" | "transfer" | "close" | "presence" | "order" | "evaluation") {
        return Err(EventError::UnknownType(k.to_string()));
    }
    let need = |v: Option<Cow<'_, str>>, field: &'static str| -> Result<String, EventError> {
        match v {
            None => Err(EventError::Missing { kind: k.to_string(), field }),
            Some(s) if s.is_empty() => Err(EventError::Empty(field)),
            Some(s) => Ok(s.into_owned()),
        }
    };
    let id = need(raw.id, "id")?;
    let ts_text = raw.ts.ok_or(EventError::Missing { kind: k.to_string(), field: "ts" })?;
    let ts = parse_rfc3339_ms(&ts_text).ok_or_else(|| EventError::Time(ts_text.to_string()))?;
    let shop = need(raw.shop, "shop")?;
    let kind = match k {
        "message" => EventKind::Message {
            conversation: need(raw.conversation, "conversation")?,
            customer: need(raw.customer, "customer")?,
            agent: need(raw.agent, "agent")?,
            from: raw.from.ok_or(EventError::Missing { kind: k.into(), field: "from" })?,
            text: raw.text.ok_or(EventError::Missing { kind: k.into(), field: "text" })?.into_owned(),
        },
        "transfer" => EventKind::Transfer {
            conversation: need(raw.conversation, "conversation")?,
            from_agent: need(raw.from_agent, "from_agent")?,
            to_agent: need(raw.to_agent, "to_agent")?,
        },
        "close" => EventKind::Close { conversation: need(raw.conversation, "conversation")? },
        "presence" => {
            let s = need(raw.status, "status")?;
            let status = match s.as_str() {
                "online" => Presence::Online,
                "busy" => Presence::Busy,
                "away" => Presence::Away,
                "offline" => Presence::Offline,
                _ => {
                    return Err(EventError::Json(format!(
                        "presence status `{s}`: expected online, busy, away or offline"
                    )));
                }
            };
            EventKind::Presence { agent: need(raw.agent, "agent")?, status }
        }
        "evaluation" => {
            let score = raw.score.ok_or(EventError::Missing { kind: k.into(), field: "score" })?.text();
            EventKind::Evaluation {
                agent: need(raw.agent, "agent")?,
                customer: need(raw.customer, "customer")?,
                conversation: need(raw.conversation, "conversation")?,
                score: rating_score(&score).ok_or(EventError::Score(score))?,
                tag: raw.tag.map(Cow::into_owned).filter(|t| !t.is_empty()),
            }
        }
        _ => {
            let s = need(raw.status, "status")?;
            let status = match s.as_str() {
                "created" => OrderStatus::Created,
                "paid" => OrderStatus::Paid,
                "shipped" => OrderStatus::Shipped,
                "refunded" => OrderStatus::Refunded,
                "closed" => OrderStatus::Closed,
                _ => {
                    return Err(EventError::Json(format!(
                        "order status `{s}`: expected created, paid, shipped, refunded or closed"
                    )));
                }
            };
            let amount = raw.amount.ok_or(EventError::Missing { kind: k.into(), field: "amount" })?;
            let shipment = match status {
                OrderStatus::Shipped => Some(Shipment {
                    courier: need(raw.courier, "courier")?,
                    tracking: need(raw.tracking, "tracking")?,
                }),
                _ => None,
            };
            EventKind::Order {
                customer: need(raw.customer, "customer")?,
                order: need(raw.order, "order")?,
                status,
                amount: money("amount", &amount.text())?,
                shipping: raw.shipping.map(|s| money("shipping", &s.text())).transpose()?,
                shipment,
            }
        }
    };
    Ok(Event { id, ts, shop, kind })
}

fn money(field: &'static str, value: &str) -> Result<Decimal, EventError> {
    value.trim().parse::<Decimal>().map_err(|_| EventError::Money { field, value: value.to_string() })
}

/// Events for unit tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{Event, EventKind, Sender};
    use crate::time::Millis;

    /// A message in shop `s`, conversation `c-{customer}`, with an id unique per time,
    /// buyer, agent and sender.
    pub(crate) fn message(ts: Millis, customer: &str, agent: &str, from: Sender) -> Event {
        Event {
            id: format!("{ts}-{customer}-{agent}-{from:?}"),
            ts,
            shop: "s".into(),
            kind: EventKind::Message {
                conversation: format!("c-{customer}"),
                customer: customer.into(),
                agent: agent.into(),
                from,
                text: "x".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_with_offset_and_z_give_the_same_instant() {
        let a = parse(r#"{"type":"message","id":"1","ts":"2026-11-11T10:00:00.250+08:00","shop":"s","conversation":"c","customer":"b","agent":"a","from":"customer","text":"在吗","extra":1}"#).unwrap();
        let b = parse(
            r#"{"type":"close","id":"2","ts":"2026-11-11T02:00:00.250Z","shop":"s","conversation":"c"}"#,
        )
        .unwrap();
        assert_eq!(a.ts, b.ts);
        assert_eq!(a.ts, 1_794_362_400_250);
    }

    #[test]
    fn bad_events_name_what_is_wrong() {
        let cases = [
            ("not json", "not a valid event"),
            (
                r#"{"type":"wave","id":"1","ts":"2026-11-11T10:00:00Z","shop":"s"}"#,
                "unknown event type `wave`",
            ),
            (
                r#"{"type":"close","id":"1","ts":"2026-11-11T10:00:00Z","shop":"s"}"#,
                "missing field `conversation`",
            ),
            (
                r#"{"type":"close","id":"1","ts":"yesterday","shop":"s","conversation":"c"}"#,
                "bad ts `yesterday`",
            ),
            (
                r#"{"type":"order","id":"1","ts":"2026-11-11T10:00:00Z","shop":"s","customer":"b","order":"o","status":"paid","amount":"12,5"}"#,
                "bad amount",
            ),
            (r#"{"id":"1"}"#, "missing field `type`"),
        ];
        for (line, want) in cases {
            let err = parse(line).unwrap_err().to_string();
            assert!(err.contains(want), "{line}: got {err}");
        }
    }

    #[test]
    fn order_amount_is_exact() {
        let e = parse(r#"{"type":"order","id":"o1","ts":"2026-11-11T10:00:00Z","shop":"s","customer":"b","order":"T1","status":"paid","amount":"199.90","shipping":"10"}"#).unwrap();
        let EventKind::Order { amount, shipping, .. } = e.kind else { panic!("not an order") };
        assert_eq!(amount.to_string(), "199.90");
        assert_eq!(shipping.map(|s| s.to_string()), Some("10".into()));
    }

    #[test]
    fn a_shipped_order_carries_courier_and_tracking() {
        let line = r#"{"type":"order","id":"o2","ts":"2026-11-11T18:00:00+08:00","shop":"s","customer":"b","order":"T1","status":"shipped","amount":"199.90","courier":"中通快递","tracking":"7300012345678"}"#;
        let e = parse(line).unwrap();
        let EventKind::Order { status, shipment: Some(s), .. } = &e.kind else {
            panic!("no shipment: {e:?}")
        };
        assert_eq!(
            (*status, s.courier.as_str(), s.tracking.as_str()),
            (OrderStatus::Shipped, "中通快递", "7300012345678")
        );
        assert_eq!(parse(&e.to_json()).unwrap(), e);
        let err = parse(&line.replace(r#","tracking":"7300012345678""#, "")).unwrap_err().to_string();
        assert!(err.contains("tracking"), "{err}");
        let paid = parse(&line.replace("shipped", "paid")).unwrap();
        assert!(matches!(paid.kind, EventKind::Order { shipment: None, .. }), "courier only with shipped");
    }

    #[test]
    fn evaluation_takes_the_platform_scale_by_number_or_word() {
        let base = r#"{"type":"evaluation","id":"v1","ts":"2026-11-11T10:30:00+08:00","shop":"s","agent":"a","customer":"b","conversation":"c","#;
        for (score, want) in [(r#""score":5"#, 5), (r#""score":"4""#, 4), (r#""score":"非常不满意""#, 1)]
        {
            let e = parse(&format!("{base}{score}}}")).unwrap();
            assert!(matches!(e.kind, EventKind::Evaluation { score, .. } if score == want), "{score}");
            assert_eq!(parse(&e.to_json()).unwrap(), e);
        }
        let e = parse(&format!(r#"{base}"score":3,"tag":"回复及时"}}"#)).unwrap();
        assert!(matches!(&e.kind, EventKind::Evaluation { tag: Some(t), .. } if t == "回复及时"));
        assert_eq!((e.agent(), e.customer(), e.conversation()), (Some("a"), Some("b"), Some("c")));
        for bad in [r#""score":0"#, r#""score":6"#, r#""score":"很好""#, r#""score":4.5"#] {
            let err = parse(&format!("{base}{bad}}}")).unwrap_err().to_string();
            assert!(err.contains("bad score") && err.contains("5 (非常满意)"), "{bad}: {err}");
        }
        let err = parse(&format!("{}}}", base.trim_end_matches(','))).unwrap_err().to_string();
        assert!(err.contains("missing field `score` for type `evaluation`"), "{err}");
    }

    #[test]
    fn to_json_round_trips() {
        let line = r#"{"type":"message","id":"m1","ts":"2026-11-11T10:00:00.250+08:00","shop":"s","conversation":"c","customer":"b","agent":"a","from":"agent","text":"亲,在的"}"#;
        let e = parse(line).unwrap();
        assert_eq!(parse(&e.to_json()).unwrap(), e);
    }
}

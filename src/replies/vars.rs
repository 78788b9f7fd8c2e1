//! Variables in reply text: `{买家}`, `{客服}`, `{店铺}`, `{订单号}`, `{转接客服}`, and the
//! buyer's latest order's `{订单状态}` (待付款, 已付款, 已发货, 已退款, 已关闭), `{快递}` and
//! `{运单号}` (known once it shipped).
//!
//! Templates are parsed once when a file loads, so an unknown variable is a file error
//! rather than a surprise in front of a buyer.

/// A variable a reply may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// `{买家}`: the buyer's id as the platform shows it to the buyer.
    Buyer,
    /// `{客服}`: the assigned agent.
    Agent,
    /// `{店铺}`: the shop.
    Shop,
    /// `{订单号}`: the buyer's latest order, when one is known.
    Order,
    /// `{转接客服}`: the agent a transfer is offered to.
    TransferAgent,
    /// `{订单状态}`: the latest order's state in words.
    OrderStatus,
    /// `{快递}`: the courier of the latest order, once shipped.
    Courier,
    /// `{运单号}`: its tracking number.
    Tracking,
}

/// Every variable name, as written between braces.
pub const NAMES: &[(&str, Var)] = &[
    ("买家", Var::Buyer),
    ("客服", Var::Agent),
    ("店铺", Var::Shop),
    ("订单号", Var::Order),
    ("转接客服", Var::TransferAgent),
    ("订单状态", Var::OrderStatus),
    ("快递", Var::Courier),
    ("运单号", Var::Tracking),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// Reply text split into literal text and variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The values a template is rendered with; `None` means not known for this conversation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    /// Buyer id.
    pub buyer: Option<&'a str>,
    /// Assigned agent.
    pub agent: Option<&'a str>,
    /// Shop.
    pub shop: Option<&'a str>,
    /// Latest order id of the buyer.
    pub order: Option<&'a str>,
    /// Agent a transfer is offered to.
    pub transfer_agent: Option<&'a str>,
    /// The latest order's state in words.
    pub order_status: Option<&'a str>,
    /// Courier of the latest order.
    pub courier: Option<&'a str>,
    /// Tracking number of the latest order.
    pub tracking: Option<&'a str>,
}

impl Template {
    /// Parses text; an unknown `{name}` or an unclosed `{` is an error naming it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let Some(len) = rest[open..].find('}') else {
                return Err(format!("unclosed `{{` in `{text}`"));
            };
            let name = &rest[open + 1..open + len];
            let Some(&(_, var)) = NAMES.iter().find(|(n, _)| *n == name) else {
                let known: Vec<String> = NAMES.iter().map(|(n, _)| format!("{{{n}}}")).collect();
                return Err(format!("unknown variable `{{{name}}}`; known: {}", known.join(" ")));
            };
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            parts.push(Part::Var(var));
            rest = &rest[open + len + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Whether the template is empty text (a setting turned off by `""`).
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The text with variables filled in; `None` when a variable it uses has no value,
    /// because a reply with a hole in it reads worse than no reply.
    pub fn render(&self, vars: &Vars<'_>) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(vars.get(*v)?),
            }
        }
        Some(out)
    }
}

impl<'a> Vars<'a> {
    fn get(&self, v: Var) -> Option<&'a str> {
        match v {
            Var::Buyer => self.buyer,
            Var::Agent => self.agent,
            Var::Shop => self.shop,
            Var::Order => self.order,
            Var::TransferAgent => self.transfer_agent,
            Var::OrderStatus => self.order_status,
            Var::Courier => self.courier,
            Var::Tracking => self.tracking,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_and_refuses_missing() {
        let t = Template::parse("亲爱的{买家},{店铺}的{客服}为您服务").unwrap();
        let v =
            Vars { buyer: Some("tb1"), agent: Some("小美"), shop: Some("毛菇小象"), ..Vars::default() };
        assert_eq!(t.render(&v).as_deref(), Some("亲爱的tb1,毛菇小象的小美为您服务"));
        let t = Template::parse("订单{订单号}已发出").unwrap();
        assert_eq!(t.render(&v), None);
    }

    #[test]
    fn bad_templates_name_the_problem() {
        assert!(Template::parse("你好{颜色}").unwrap_err().contains("unknown variable `{颜色}`"));
        assert!(Template::parse("你好{买家").unwrap_err().contains("unclosed"));
    }
}

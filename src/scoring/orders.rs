//! `kefu orders import FILE.csv`: a shop's order export turned into `order` events.
//!
//! # Columns (header row required, any order; English or the Taobao export's Chinese names)
//! | column | aliases | required | meaning |
//! |---|---|---|---|
//! | `order` | 订单编号 | yes | order id |
//! | `customer` | 买家会员名 | yes | buyer id |
//! | `created` | 订单创建时间 | yes | creation time |
//! | `amount` | 买家实际支付金额, 总金额 | yes | amount in 元 (shipping included) |
//! | `paid` | 订单付款时间 | no | payment time; empty = unpaid |
//! | `shipping` | 邮费 | no | shipping in 元 |
//! | `refund` | 退款金额 | no | refunded amount in 元 |
//! | `refunded` | 退款时间 | no | refund time (defaults to the payment time) |
//! | `shop` | 店铺名称 | no | shop (defaults to `--shop`) |
//!
//! Times are `YYYY-MM-DD HH:MM:SS` (or with `/`) in Asia/Shanghai, or RFC 3339 with an
//! offset. The file may be UTF-8 (with or without BOM) or GBK, as 千牛 exports it; Excel's
//! `="…"` quoting of long numbers is unwrapped. Each row gives a `created` event and, when
//! filled in, `paid` and `refunded` events, with ids `csv:<order>:<status>` so importing
//! the same file twice adds nothing.

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use thiserror::Error;

use crate::event::{Event, EventKind, OrderStatus};
use crate::store::{Store, StoreError};
use crate::time::Millis;

/// Import failures.
#[derive(Debug, Error)]
pub enum OrdersError {
    /// A bad row or header.
    #[error("{file}:{line}: {message}")]
    Csv {
        /// File.
        file: String,
        /// 1-based line.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// Reading the file failed.
    #[error("cannot read {file}")]
    Io {
        /// File.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Storing failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Decodes UTF-8 (BOM stripped) or, when that fails, GBK.
pub fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::GBK.decode(bytes).0.into_owned(),
    }
}

/// Splits one CSV line, honouring double quotes.
fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|f| {
            let f = f.trim();
            // Excel keeps long numbers as ="123…", which arrives as =123… after unquoting.
            f.strip_prefix('=').unwrap_or(f).trim_matches('"').trim().to_string()
        })
        .collect()
}

fn time(s: &str) -> Option<Millis> {
    if let Some(ms) = crate::time::parse_rfc3339_ms(s) {
        return Some(ms);
    }
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y/%m/%d %H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y/%m/%d %H:%M"))
        .ok()?;
    Some(t.and_utc().timestamp_millis() - 8 * 3_600_000)
}

const COLUMNS: [(&str, &[&str]); 9] = [
    ("order", &["订单编号"]),
    ("customer", &["买家会员名"]),
    ("created", &["订单创建时间"]),
    ("amount", &["买家实际支付金额", "总金额"]),
    ("paid", &["订单付款时间"]),
    ("shipping", &["邮费"]),
    ("refund", &["退款金额"]),
    ("refunded", &["退款时间"]),
    ("shop", &["店铺名称"]),
];

/// Parses the export into events; every row is checked before any is returned.
pub fn parse(file: &str, text: &str, default_shop: &str) -> Result<Vec<Event>, OrdersError> {
    let bad = |line: usize, message: String| OrdersError::Csv { file: file.to_string(), line, message };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(bad(1, "empty file: expected a header row".into()));
    };
    let names = split(header);
    let col: Vec<Option<usize>> = COLUMNS
        .iter()
        .map(|(k, aliases)| names.iter().position(|n| n == k || aliases.contains(&n.as_str())))
        .collect();
    for (i, (k, aliases)) in COLUMNS.iter().enumerate().take(4) {
        if col[i].is_none() {
            return Err(bad(1, format!("missing column `{k}` (or {})", aliases.join(" / "))));
        }
    }
    let mut out = Vec::new();
    for (i, l) in lines {
        let line = i + 1;
        let f = split(l);
        let get = |c: usize| col[c].and_then(|i| f.get(i)).map(String::as_str).filter(|s| !s.is_empty());
        let need = |c: usize| get(c).ok_or_else(|| bad(line, format!("`{}` is empty", COLUMNS[c].0)));
        let money = |c: usize| -> Result<Option<Decimal>, OrdersError> {
            get(c)
                .map(|s| {
                    s.trim_start_matches(['¥', '￥']).parse::<Decimal>().map_err(|_| {
                        bad(line, format!("`{}` value `{s}` is not an amount in 元", COLUMNS[c].0))
                    })
                })
                .transpose()
        };
        let when = |c: usize| -> Result<Option<Millis>, OrdersError> {
            get(c)
                .map(|s| {
                    time(s).ok_or_else(|| {
                        bad(
                            line,
                            format!("`{}` value `{s}` is not a time (YYYY-MM-DD HH:MM:SS)", COLUMNS[c].0),
                        )
                    })
                })
                .transpose()
        };
        let order = need(0)?.to_string();
        let customer = need(1)?.to_string();
        let created = when(2)?.ok_or_else(|| bad(line, "`created` is empty".into()))?;
        let amount = money(3)?.ok_or_else(|| bad(line, "`amount` is empty".into()))?;
        let paid = when(4)?;
        let shipping = money(5)?;
        let refund = money(6)?.filter(|r| !r.is_zero());
        let refunded = when(7)?.or(paid);
        let shop = get(8).unwrap_or(default_shop).to_string();
        let ev =
            |ts: Millis, status: OrderStatus, amount: Decimal, shipping: Option<Decimal>, tag: &str| Event {
                id: format!("csv:{order}:{tag}"),
                ts,
                shop: shop.clone(),
                kind: EventKind::Order {
                    customer: customer.clone(),
                    order: order.clone(),
                    status,
                    amount,
                    shipping,
                    shipment: None,
                },
            };
        out.push(ev(created, OrderStatus::Created, amount, shipping, "created"));
        if let Some(p) = paid {
            out.push(ev(p, OrderStatus::Paid, amount, shipping, "paid"));
        }
        if let Some(r) = refund {
            let at = refunded
                .ok_or_else(|| bad(line, "`refund` given without `refunded` or `paid` time".into()))?;
            out.push(ev(at, OrderStatus::Refunded, r, None, "refunded"));
        }
    }
    Ok(out)
}

/// Reads, parses and stores an export; returns (events in file, newly stored).
pub fn import(
    store: &mut Store,
    path: &std::path::Path,
    default_shop: &str,
) -> Result<(usize, usize), OrdersError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| OrdersError::Io { file: file.clone(), source })?;
    let events = parse(&file, &decode(&bytes), default_shop)?;
    let bodies: Vec<String> = events.iter().map(Event::to_json).collect();
    let added = store.insert_events(events.iter().zip(bodies.iter().map(String::as_str)))?;
    Ok((events.len(), added))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn taobao_export_in_gbk_with_excel_quoting() {
        let text = "订单编号,买家会员名,买家实际支付金额,邮费,订单创建时间,订单付款时间,退款金额\n=\"3012345678901\",tb_buyer,210.00,10,2026-11-11 10:00:00,2026-11-11 10:05:00,20\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let decoded = decode(&gbk);
        assert_eq!(decoded, text);
        let evs = parse("o.csv", &decoded, "s").unwrap();
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].id, "csv:3012345678901:created");
        assert_eq!(evs[0].ts, crate::time::parse_rfc3339_ms("2026-11-11T10:00:00+08:00").unwrap());
        assert!(
            matches!(&evs[1].kind, EventKind::Order { status: OrderStatus::Paid, shipping: Some(s), .. } if *s == dec!(10))
        );
        assert!(
            matches!(&evs[2].kind, EventKind::Order { status: OrderStatus::Refunded, amount, .. } if *amount == dec!(20))
        );
    }

    #[test]
    fn bad_rows_name_file_line_and_column() {
        let e = parse("o.csv", "order,customer,amount\n", "s").unwrap_err();
        assert_eq!(e.to_string(), "o.csv:1: missing column `created` (or 订单创建时间)");
        let e = parse(
            "o.csv",
            "order,customer,amount,created\n1,b,9.5,2026-11-11 10:00:00\n2,b,abc,2026-11-11 10:00:00\n",
            "s",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "o.csv:3: `amount` value `abc` is not an amount in 元");
        let e = parse("o.csv", "order,customer,amount,created\n1,b,9.5,yesterday\n", "s").unwrap_err();
        assert!(e.to_string().starts_with("o.csv:2: `created` value `yesterday`"), "{e}");
    }
}

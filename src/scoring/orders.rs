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
//! offset. The file is read by [`crate::textio::csv`]: UTF-8 (with or without BOM) or GBK,
//! as 千牛 exports it, quoted cells with commas or line breaks (a 买家留言 over two lines)
//! as one cell, other columns ignored. Excel's `="…"` quoting of long numbers is unwrapped.
//! Amounts are plain non-negative decimals (`-50.00`, `1e5` are refused); shipping and
//! refund are at most the amount. Every bad line is named; a file with one is not imported. Each row gives a `created` event and, when
//! filled in, `paid` and `refunded` events, with ids `csv:<order>:<status>` so importing
//! the same file twice adds nothing.

use std::path::Path;

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use thiserror::Error;

use crate::event::{Event, EventKind, OrderStatus};
use crate::rules::DataError;
use crate::store::{Store, StoreError};
use crate::textio::csv::{Column, Others, Row, Table};
use crate::time::Millis;

/// Import failures.
#[derive(Debug, Error)]
pub enum OrdersError {
    /// Bad lines of the file (each with its file and line); nothing was imported.
    #[error("{}; nothing was imported", lines(.0))]
    Lines(Vec<DataError>),
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
    #[error("storing the imported orders")]
    Store(#[source] StoreError),
}

fn lines(errors: &[DataError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// Excel keeps long numbers as `="123…"`: the cell's text, unwrapped and trimmed.
fn cell(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix("=\"").and_then(|r| r.strip_suffix('"')).unwrap_or(t).trim()
}

/// A time as exports write it: `YYYY-MM-DD HH:MM:SS` (or with `/`) in Asia/Shanghai, or RFC 3339.
pub fn time(s: &str) -> Option<Millis> {
    if let Some(ms) = crate::time::parse_rfc3339_ms(s) {
        return Some(ms);
    }
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y/%m/%d %H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y/%m/%d %H:%M"))
        .ok()?;
    Some(t.and_utc().timestamp_millis() - 8 * 3_600_000)
}

/// An amount in 元 as a shop export writes it: a plain, non-negative decimal (an optional
/// ¥ sign; no exponent, no thousands separators, at most 12 integer digits).
pub fn amount(s: &str) -> Result<Decimal, String> {
    let t = s.trim().trim_start_matches(['¥', '￥']).trim();
    match super::sheet::plain_decimal(t) {
        Some(d) if d < Decimal::ZERO => Err(format!("`{s}` is negative: an amount in 元 is 0 or more")),
        Some(d) => Ok(d),
        None => Err(format!("`{s}` is not an amount in 元 (a plain decimal such as 199.00)")),
    }
}

const COLUMNS: [Column; 9] = [
    Column::required("order", &["订单编号"]),
    Column::required("customer", &["买家会员名"]),
    Column::required("created", &["订单创建时间"]),
    Column::required("amount", &["买家实际支付金额", "总金额"]),
    Column::optional("paid", &["订单付款时间"]),
    Column::optional("shipping", &["邮费"]),
    Column::optional("refund", &["退款金额"]),
    Column::optional("refunded", &["退款时间"]),
    Column::optional("shop", &["店铺名称"]),
];

/// Parses the export's bytes (UTF-8 or GBK) into events; every row is checked before any
/// is returned, and every bad line is named.
pub fn parse_bytes(file: &Path, bytes: &[u8], default_shop: &str) -> Result<Vec<Event>, OrdersError> {
    let table =
        crate::textio::csv::read(file, bytes, &COLUMNS, Others::Ignore).map_err(OrdersError::Lines)?;
    events(file, &table, default_shop)
}

/// [`parse_bytes`] over decoded text.
pub fn parse(file: &Path, text: &str, default_shop: &str) -> Result<Vec<Event>, OrdersError> {
    let table =
        crate::textio::csv::read_text(file, text, &COLUMNS, Others::Ignore).map_err(OrdersError::Lines)?;
    events(file, &table, default_shop)
}

fn events(file: &Path, table: &Table, default_shop: &str) -> Result<Vec<Event>, OrdersError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for row in &table.rows {
        match row_events(row, default_shop) {
            Ok(mut evs) => out.append(&mut evs),
            Err(m) => errors.push(DataError::at(file, Some(row.line), m)),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(OrdersError::Lines(errors)) }
}

/// One row's `created` (+ `paid`, + `refunded`) events, or what is wrong with it.
fn row_events(row: &Row, default_shop: &str) -> Result<Vec<Event>, String> {
    let get = |c: usize| Some(cell(row.get(c))).filter(|s| !s.is_empty());
    let need = |c: usize| get(c).ok_or_else(|| format!("`{}` is empty", COLUMNS[c].name));
    let money =
        |c: usize| get(c).map(|s| amount(s).map_err(|m| format!("`{}` {m}", COLUMNS[c].name))).transpose();
    let when = |c: usize| {
        get(c)
            .map(|s| {
                time(s).ok_or_else(|| {
                    format!("`{}` value `{s}` is not a time (YYYY-MM-DD HH:MM:SS)", COLUMNS[c].name)
                })
            })
            .transpose()
    };
    let order = need(0)?.to_string();
    let customer = need(1)?.to_string();
    let created = when(2)?.ok_or("`created` is empty")?;
    let amount = money(3)?.ok_or("`amount` is empty")?;
    let paid = when(4)?;
    let shipping = money(5)?;
    if shipping.is_some_and(|s| s > amount) {
        return Err(format!("`shipping` is more than `amount` ({amount})"));
    }
    let refund = money(6)?.filter(|r| !r.is_zero());
    if refund.is_some_and(|r| r > amount) {
        return Err(format!("`refund` is more than `amount` ({amount})"));
    }
    let refunded = when(7)?.or(paid);
    let shop = get(8).unwrap_or(default_shop).to_string();
    let ev = |ts: Millis, status: OrderStatus, amount: Decimal, shipping: Option<Decimal>, tag: &str| Event {
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
    let mut out = vec![ev(created, OrderStatus::Created, amount, shipping, "created")];
    if let Some(p) = paid {
        out.push(ev(p, OrderStatus::Paid, amount, shipping, "paid"));
    }
    if let Some(r) = refund {
        let at = refunded.ok_or("`refund` given without `refunded` or `paid` time")?;
        out.push(ev(at, OrderStatus::Refunded, r, None, "refunded"));
    }
    Ok(out)
}

/// Reads, parses and stores an export; returns (events in file, newly stored).
pub fn import(store: &mut Store, path: &Path, default_shop: &str) -> Result<(usize, usize), OrdersError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| OrdersError::Io { file: file.clone(), source })?;
    let events = parse_bytes(path, &bytes, default_shop)?;
    let bodies: Vec<String> = events.iter().map(Event::to_json).collect();
    let added = store
        .insert_events(events.iter().zip(bodies.iter().map(String::as_str)))
        .map_err(OrdersError::Store)?;
    Ok((events.len(), added))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn p(text: &str) -> Result<Vec<Event>, OrdersError> {
        parse(Path::new("o.csv"), text, "s")
    }

    #[test]
    fn taobao_export_in_gbk_with_excel_quoting() {
        let text = "订单编号,买家会员名,买家实际支付金额,邮费,订单创建时间,订单付款时间,退款金额\n=\"3012345678901\",tb_buyer,210.00,10,2026-11-11 10:00:00,2026-11-11 10:05:00,20\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let evs = parse_bytes(Path::new("o.csv"), &gbk, "s").unwrap();
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

    /// Issue 11: a 买家留言 with a quoted line break is one cell, not a broken row.
    #[test]
    fn a_quoted_line_break_in_a_message_column_is_one_cell() {
        let text = "订单编号,买家会员名,买家留言,买家实际支付金额,订单创建时间\n\
                    T1,tb_a,\"请发顺丰\n谢谢\",99.00,2026-11-11 10:00:00\n\
                    T2,tb_b,,10,2026-11-11 11:00:00\n";
        let evs = p(text).unwrap();
        assert_eq!(evs.len(), 2);
        assert!(matches!(&evs[1].kind, EventKind::Order { customer, .. } if customer == "tb_b"));
    }

    #[test]
    fn bad_rows_name_file_line_and_column() {
        let e = p("order,customer,amount\n").unwrap_err().to_string();
        assert!(e.contains("o.csv:1:") && e.contains("created"), "{e}");
        let e =
            p("order,customer,amount,created\n1,b,9.5,2026-11-11 10:00:00\n2,b,abc,2026-11-11 10:00:00\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("o.csv:3: `amount` `abc` is not an amount"), "{e}");
        let e = p("order,customer,amount,created\n1,b,9.5,yesterday\n").unwrap_err().to_string();
        assert!(e.contains("o.csv:2: `created` value `yesterday`"), "{e}");
        // Issue 11: negative amounts, exponents and absurd sizes are refused; every bad line named.
        let e = p("order,customer,amount,created\n1,b,-50.00,2026-11-11 10:00:00\n2,b,1e5,2026-11-11 10:00:00\n3,b,99999999999999999999999,2026-11-11 10:00:00\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("o.csv:2: `amount` `-50.00` is negative"), "{e}");
        assert!(e.contains("o.csv:3: `amount` `1e5` is not an amount"), "{e}");
        assert!(e.contains("o.csv:4: `amount` `99999999999999999999999` is not an amount"), "{e}");
        assert!(e.ends_with("nothing was imported"), "{e}");
        // A file without a header: its first row is not taken for one.
        let e = p("1,b,9.5,2026-11-11 10:00:00\n").unwrap_err().to_string();
        assert!(e.contains("o.csv:1:"), "{e}");
    }
}

//! `kefu ratings import FILE.csv`: the platform's export of buyers' ratings of agents
//! (千牛 客服评价) turned into `evaluation` events, for shops whose platform does not send
//! them live.
//!
//! # Columns (header row required, any order; English or the export's Chinese names)
//! | column | aliases | required | meaning |
//! |---|---|---|---|
//! | `agent` | 客服, 客服昵称, 被评价客服 | yes | the agent rated |
//! | `customer` | 买家, 买家昵称, 买家会员名 | yes | the buyer who rated |
//! | `time` | 评价时间 | yes | when (`YYYY-MM-DD HH:MM:SS` Shanghai, or RFC 3339) |
//! | `score` | 评价, 评价结果, 满意度 | yes | `1`…`5` or the platform's word (非常满意 … 非常不满意) |
//! | `conversation` | 会话, 会话ID | no | the conversation rated (default `rating:<buyer>`) |
//! | `tag` | 标签, 评价标签 | no | the buyer's tag |
//! | `shop` | 店铺名称 | no | shop (defaults to `--shop`) |
//!
//! The file is read by [`crate::textio::csv`] (UTF-8 or GBK, quoted cells, other columns
//! ignored). Every row is checked before any is stored; each bad line is named. Event ids
//! are `csv-rating:<agent>:<buyer>:<time ms>`, so importing a file twice adds nothing.

use std::path::Path;

use crate::event::{Event, EventKind, rating_score};
use crate::rules::DataError;
use crate::store::Store;
use crate::textio::csv::{Column, Others, Row};

const COLUMNS: [Column; 7] = [
    Column::required("agent", &["客服", "客服昵称", "被评价客服"]),
    Column::required("customer", &["买家", "买家昵称", "买家会员名"]),
    Column::required("time", &["评价时间"]),
    Column::required("score", &["评价", "评价结果", "满意度"]),
    Column::optional("conversation", &["会话", "会话ID"]),
    Column::optional("tag", &["标签", "评价标签"]),
    Column::optional("shop", &["店铺名称"]),
];

/// Parses an export's bytes into evaluation events, all rows or none (every bad line named).
pub fn parse(file: &Path, bytes: &[u8], default_shop: &str) -> Result<Vec<Event>, Vec<DataError>> {
    let table = crate::textio::csv::read(file, bytes, &COLUMNS, Others::Ignore)?;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for row in &table.rows {
        match event(row, default_shop) {
            Ok(e) => out.push(e),
            Err(m) => errors.push(DataError::at(file, Some(row.line), m)),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn event(row: &Row, default_shop: &str) -> Result<Event, String> {
    let cell = |c: usize| row.get(c).trim();
    let need =
        |c: usize| Some(cell(c)).filter(|s| !s.is_empty()).ok_or(format!("`{}` is empty", COLUMNS[c].name));
    let agent = need(0)?.to_string();
    let customer = need(1)?.to_string();
    let t = need(2)?;
    let ts = super::orders::time(t)
        .ok_or_else(|| format!("`time` value `{t}` is not a time (YYYY-MM-DD HH:MM:SS)"))?;
    let s = need(3)?;
    let score = rating_score(s)
        .ok_or_else(|| format!("`score` value `{s}` is not a rating: 1 (非常不满意) … 5 (非常满意)"))?;
    let conversation =
        Some(cell(4)).filter(|c| !c.is_empty()).map_or(format!("rating:{customer}"), str::to_string);
    let tag = Some(cell(5)).filter(|c| !c.is_empty()).map(str::to_string);
    let shop = Some(cell(6)).filter(|c| !c.is_empty()).unwrap_or(default_shop).to_string();
    Ok(Event {
        id: format!("csv-rating:{agent}:{customer}:{ts}"),
        ts,
        shop,
        kind: EventKind::Evaluation { agent, customer, conversation, score, tag },
    })
}

/// Reads, parses and stores an export; returns (ratings in the file, newly stored).
pub fn import(
    store: &mut Store,
    path: &Path,
    default_shop: &str,
) -> Result<(usize, usize), super::cli::CliError> {
    let bytes = std::fs::read(path).map_err(|e| {
        super::cli::CliError::File(vec![DataError::at(path, None, format!("cannot read: {e}"))])
    })?;
    let events = parse(path, &bytes, default_shop).map_err(super::cli::CliError::File)?;
    let bodies: Vec<String> = events.iter().map(Event::to_json).collect();
    let added = store.insert_events(events.iter().zip(bodies.iter().map(String::as_str)))?;
    Ok((events.len(), added))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_rows_become_evaluations_and_bad_lines_are_named() {
        let text = "评价时间,客服昵称,买家昵称,评价结果,评价标签\n2026-11-11 10:00:00,店铺:小美,tb1,非常满意,回复及时\n2026-11-11 11:00:00,店铺:小美,tb2,2,\n";
        let gbk = encoding_rs::GBK.encode(text).0;
        let evs = parse(Path::new("r.csv"), &gbk, "s").unwrap();
        assert_eq!(evs.len(), 2);
        assert!(
            matches!(&evs[0].kind, EventKind::Evaluation { score: 5, tag: Some(t), .. } if t == "回复及时")
        );
        assert!(matches!(&evs[1].kind, EventKind::Evaluation { score: 2, tag: None, .. }));
        let bad =
            "time,agent,customer,score\n2026-11-11 10:00:00,a,b,很好\n2026-11-11 10:00:00,a,,5\nsoon,a,b,5\n";
        let errs = parse(Path::new("r.csv"), bad.as_bytes(), "s").unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].starts_with("r.csv:2: `score` value `很好`"), "{text:?}");
        assert!(text[1].starts_with("r.csv:3: `customer` is empty"), "{text:?}");
        assert!(text[2].starts_with("r.csv:4: `time` value `soon`"), "{text:?}");
    }
}

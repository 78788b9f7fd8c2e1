//! kefu: a bot beside a Taobao/Tmall shop's chat platform for its customer-service team (客服).
//!
//! # Layout
//! Events flow gateway → engine → effects; scoring reads the store.
//!
//! - [`event`]: the event model, one JSON object per event on the wire and in JSONL files.
//! - [`check`]: `kefu check`, validating every data file the way the service loads it.
//! - [`cmd`]: the foundation commands (`replay`, `report`, `simulate`) behind `main.rs`.
//! - [`engine`]: pure decisions: the response clock (waits, deadlines, breaches).
//! - [`time`]: UTC milliseconds inside; Asia/Shanghai days and display.
//! - [`privacy`]: masking buyers' ids and phone numbers for alerts, logs and reports.
//! - [`replay`]: `kefu replay` / `kefu report`: dedup → clock → report over a file or the store.
//! - [`report`]: the clock report (waits, per-agent days, alerts) as JSON or a table.
//! - [`rules`]: the rule files a shop edits (`rules/`), with embedded defaults and located errors.
//! - [`simulate`]: seeded realistic shop traffic (JSONL) for demos, tests and benchmarks.
//! - [`store`]: SQLite (WAL, numbered migrations): events, waits, alerts, rejected input.
pub mod check;
pub mod cmd;
pub mod engine;
pub mod event;
pub mod privacy;
pub mod replay;
pub mod report;
pub mod rules;
pub mod simulate;
pub mod store;
pub mod time;
pub mod gateway;
pub mod live;

//! kefu: a bot beside a Taobao/Tmall shop's chat platform for its customer-service team (客服).
//!
//! # Layout
//! Events flow gateway → engine → effects; scoring reads the store.
//!
//! - [`event`]: the event model, one JSON object per event on the wire and in JSONL files.
//! - [`guard`]: the phrase guard: banned phrases, evasions and personal data in messages.
//! - [`check`]: `kefu check`, validating every data file the way the service loads it.
//! - [`time`]: UTC milliseconds inside; Asia/Shanghai days and display.
//! - [`privacy`]: masking buyers' ids and phone numbers for alerts, logs and reports.
//! - [`rules`]: the rule files a shop edits (`rules/`), with embedded defaults and located errors.
//! - [`store`]: SQLite (WAL, numbered migrations): events, waits, alerts, rejected input.
pub mod check;
pub mod event;
pub mod guard;
pub mod privacy;
pub mod rules;
pub mod store;
pub mod time;

//! kefu: a bot beside a Taobao/Tmall shop's chat platform for its customer-service team (客服).
//!
//! # Layout
//! Events flow gateway → engine → effects; scoring reads the store.
//!
//! - [`alerts`]: live alerts to supervisors (DingTalk, WeCom, Feishu, webhooks) via a SQLite outbox.
//! - [`check`]: `kefu check`, validating every data file the way the service loads it.
//! - [`cluster`]: many shops on many machines: workers sharing a NATS JetStream event stream's
//!   partitions by leases, a fenced results log, `kefu publish` and `kefu collect`.
//! - [`cmd`]: the foundation commands (`replay`, `report`, `simulate`, `snapshot`) behind `main.rs`.
//! - [`config`]: `kefu.toml` for `kefu run` (platform, database, folders, alert sinks), flags override it.
//! - [`console`]: the web console: live board, conversation view, logins and roles, reports,
//!   points and appeals, score inputs, findings review, auto-answers from misses (axum, maud).
//! - [`engine`]: pure decisions: sessions, waits, loads, deadlines and their alert timers, by event
//!   time; which event times are believable; snapshots of its state (and the robot's) for
//!   restarts. The only owner of the session/wait rule.
//! - [`event`]: the event model, one JSON object per event on the wire and in JSONL files.
//! - [`gateway`]: the websocket client to the chat platform (resume, ack after commit, heartbeat).
//! - [`guard`]: the phrase guard: banned phrases, evasions and personal data in messages.
//! - [`live`]: `kefu run` / `kefu demo`: the runtime that fires deadlines on the wall clock and alerts,
//!   with the phrase guard, the robot, hot reload and the nightly scoring job wired in.
//! - [`privacy`]: masking buyers' ids and phone numbers for alerts, logs and reports.
//! - [`replay`]: `kefu replay` / `kefu report`: dedup → clock → report over a file or the store.
//! - [`replies`]: quick phrases, keyword and similar-question auto-answers and the robot (greeting, away, rescue, suggest, 人工优先, 催付, figures).
//! - [`report`]: the clock report (waits, per-agent days, alerts) as JSON or a table.
//! - [`rules`]: the rule files a shop edits (`rules/`), with embedded defaults and located errors.
//! - [`scoring`]: nightly job — daily metrics, order attribution, KPI sheet, points ledger, pay, reports.
//! - [`simulate`]: seeded shop traffic (JSONL) and a websocket server playing it, with faults.
//! - [`store`]: SQLite (WAL, numbered migrations): events, waits, alerts, rejected input, engine
//!   snapshots; the one batch writer replay and live share.
//! - [`textio`]: one path for outside text: GBK/UTF-8 decoding, CSV read (`csv` crate) and CSV for
//!   people (BOM, formulas neutralised), escaping for terminals and logs.
//! - [`time`]: UTC milliseconds inside; Asia/Shanghai days and display.
pub mod alerts;
pub mod check;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod console;
pub mod engine;
pub mod event;
pub mod gateway;
pub mod guard;
pub mod live;
pub mod privacy;
pub mod replay;
pub mod replies;
pub mod report;
pub mod rules;
pub mod scoring;
pub mod simulate;
pub mod store;
pub mod textio;
pub mod time;

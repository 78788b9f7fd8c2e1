//! Live alerts to supervisors: what is due when, what each sink receives, and delivering it.
//!
//! - [`notice`]: the [`Notice`] an alert is about, its key, and masking of buyer data.
//! - [`plan`]: pure timing — warning, breach, escalation, resolved; staleness.
//! - [`format`]: pure renderers — exact DingTalk / WeCom / Feishu / Slack / webhook bodies,
//!   signatures, terminal lines, reading the vendors' answers.
//! - [`pace`]: pure token bucket, retry backoff and digest decision.
//! - [`config`]: `rules/alerts.toml` — timing, agent groups, sinks and their routes.
//! - [`outbox`]: the SQLite outbox, one row per alert and sink, never queued twice.
//! - [`sender`]: the effect — [`AlertService::start`], [`AlertHandle::submit`] (never blocks).

pub mod config;
pub mod format;
pub mod notice;
pub mod outbox;
pub mod pace;
pub mod plan;
pub mod sender;

pub use config::AlertConfig;
pub use notice::{Kind, Notice, NoticeKey};
pub use plan::Plan;
pub use sender::{AlertError, AlertHandle, AlertService, Receipt, ShutdownReport, Submitter};

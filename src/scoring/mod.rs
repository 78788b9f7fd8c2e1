//! Nightly scoring: daily metrics, order attribution, the KPI sheet, the points ledger,
//! exact pay, and reports. Pure decisions (`sheet`, `score`, `attribution`, the metrics
//! `Builder`, `job::due_days`) are separate from the store and file effects.
//!
//! - [`sheet`]: `rules/scoring.toml`, the shop's KPI sheet, validated by `kefu check`.
//! - [`score`]: pure monthly scores, grades, bonus, commission and salary (rounding rule there).
//! - [`ledger`]: 日常考核 points — guard findings, supervisor entries, ±cap, appeals (复核).
//! - [`attribution`]: pure order attribution (谁落实算谁的, 协助下单/跟进, 静默下单).
//! - [`orders`]: `kefu orders import` — a shop's CSV export (UTF-8 or GBK) as order events.
//! - [`ratings`]: `kefu ratings import` — buyers' ratings of agents (千牛 客服评价) as evaluation events.
//! - [`metrics`]: daily metrics per agent from events and waits (`docs/metrics.md`).
//! - [`job`]: the nightly job — idempotent day rows, month-to-date scores, cron catch-up, [`job::run_due`].
//! - [`report`]: `reports/` — CSV per table, HTML per day and month, the supervisors' summary.
//! - [`cli`]: the `score`, `score-input`, `orders`, `ratings` and `ledger` subcommands.

pub mod attribution;
pub mod cli;
pub(crate) mod fasthash;
pub mod job;
pub mod ledger;
pub mod metrics;
pub mod orders;
pub mod ratings;
pub mod report;
pub mod score;
pub mod sheet;

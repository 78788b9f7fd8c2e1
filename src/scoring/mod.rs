//! Nightly scoring: daily metrics, order attribution, the KPI sheet, the points ledger,
//! exact pay, and reports.
//!
//! - [`sheet`]: `rules/scoring.toml`, the shop's KPI sheet, validated by `kefu check`.
//! - [`score`]: pure monthly scores, grades, bonus, commission and salary (rounding rule there).
pub mod attribution;
pub mod job;
pub mod ledger;
pub mod metrics;
pub mod report;
pub mod score;
pub mod sheet;

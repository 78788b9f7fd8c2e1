//! Replies: quick phrases (快捷短语), keyword auto-answers (配置回复) and the robot that
//! greets, answers for away agents and rescues waiting buyers.
//!
//! - [`quick`]: the quick-reply book and its ranked lookup.
//! - [`qianniu_csv`]: Qianniu CSV import/export (GBK or UTF-8, `&#13;`/`&#44;` escapes).
//! - [`auto`]: keyword auto-answer rules, compiled once into one automaton.
//! - [`settings`]: `robot.toml`, per shop and per agent.
//! - [`shifts`]: `rules/shifts.toml`, who is on shift when (weekly, and dated rosters).
//! - [`schedule`]: time windows (dates, weekdays, hours) for rules and shifts.
//! - [`similar`]: similar questions, by character n-grams; misses grouped alike.
//! - [`vars`]: `{买家}`-style variables in reply text.
//! - [`orders`]: buyers' latest orders and conversations, for order-aware answers and 催付.
//! - [`robot`]: the pure robot: events and time in, actions out.
//! - [`ops`]: websocket frames for the robot's actions and the `replies.find` op.
//! - [`reload`]: hot reload of `replies/` and `rules/`, keeping the last valid set.
//! - [`stats`]: hit counts and unanswered questions in the store.
//! - [`cli`]: `kefu replies …`.

pub mod auto;
pub mod cli;
pub mod ops;
pub mod orders;
pub mod qianniu_csv;
pub mod quick;
pub mod reload;
pub mod robot;
pub mod schedule;
pub mod settings;
pub mod shifts;
pub mod similar;
pub mod stats;
pub mod vars;

use std::path::Path;

use crate::rules::DataError;

/// Everything the robot and the lookup serve from, loaded and validated together so a
/// reload swaps all of it or none.
#[derive(Debug, Clone)]
pub struct Replies {
    /// Quick phrases.
    pub quick: quick::QuickBook,
    /// Keyword auto-answers.
    pub auto: auto::AutoRules,
    /// Robot settings.
    pub robot: settings::RobotSettings,
    /// Agents' shifts.
    pub shifts: shifts::Shifts,
}

/// Loads every file the replies need; all problems are returned, not just the first.
pub fn load(rules: Option<&Path>, replies: Option<&Path>) -> Result<Replies, Vec<DataError>> {
    let quick = quick::load(replies);
    let auto = auto::load(replies);
    let robot = settings::load(replies);
    let shifts = shifts::load(rules);
    match (quick, auto, robot, shifts) {
        (Ok(quick), Ok(auto), Ok(robot), Ok(shifts)) => Ok(Replies { quick, auto, robot, shifts }),
        (q, a, r, s) => Err([q.err(), a.err(), r.err(), s.err()].into_iter().flatten().collect()),
    }
}

/// The checks `kefu check` runs for this module (response_time is checked by its owner).
pub fn check(rules: Option<&Path>, replies: Option<&Path>) -> Vec<DataError> {
    [
        quick::load(replies).err(),
        auto::load(replies).err(),
        settings::load(replies).err(),
        shifts::load(rules).err(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

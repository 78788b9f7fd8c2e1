//! `rules/scoring.toml`: the shop's KPI sheet (绩效考核表) — indicators, weights, grades,
//! bonus pool, commission, pay parts, the daily-points ledger and order attribution.
//!
//! Two stages, as every rule file: a serde shape ([`Raw`]) checked line by line, compiled
//! into [`Sheet`], which the pure scorer in [`super::score`] runs on. Every number is a
//! [`Decimal`]; the file writes them as integers or strings (`"0.5"`, `"50%"`), never as
//! TOML floats, so no value passes through binary floating point.

use std::path::Path;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::rules::{DataError, line_containing, parse_toml, read_or_default};

/// File name inside the rules folder.
pub const FILE: &str = "scoring.toml";
const DEFAULT: &str = include_str!("../../rules/scoring.toml");

/// A number as the file writes it: an integer, or a string holding a decimal, optionally
/// with a trailing `%` (divided by 100).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Num {
    Int(i64),
    Text(String),
    Float(f64),
}

impl Num {
    fn value(&self) -> Result<Decimal, String> {
        match self {
            Num::Int(i) => Ok(Decimal::from(*i)),
            Num::Text(s) => parse_number(s),
            Num::Float(f) => {
                Err(format!("{f} is a TOML float: write decimals as strings (\"{f}\") so they stay exact"))
            }
        }
    }
}

/// Parses `"12.5"` or `"45%"` (= 0.45) exactly.
pub fn parse_number(s: &str) -> Result<Decimal, String> {
    let t = s.trim();
    let (body, pct) = match t.strip_suffix('%') {
        Some(b) => (b.trim(), true),
        None => (t, false),
    };
    let d = body
        .parse::<Decimal>()
        .map_err(|_| format!("`{s}` is not a number: expected e.g. \"12.5\" or \"45%\""))?;
    Ok(if pct { d / Decimal::ONE_HUNDRED } else { d })
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    /// Title shown on reports.
    name: String,
    /// Rows of the sheet.
    indicator: Vec<RawIndicator>,
    /// Grades (客服等级), highest first.
    #[serde(default)]
    grade: Vec<RawGrade>,
    /// The KPI bonus (绩效奖金).
    bonus: Option<RawBonus>,
    /// Commission on personal sales (提成).
    commission: Option<RawCommission>,
    /// Pay parts.
    pay: Option<RawPay>,
    /// Per-agent pay facts (底薪, hire date).
    #[serde(default)]
    agent: Vec<RawAgent>,
    /// The daily points ledger (日常考核); a sheet without one scores no ledger.
    ledger: Option<RawLedger>,
    /// Money by position in the month's ranking (seed 002 排序工资法).
    ranked_bonus: Option<RawRanked>,
    /// Ledger points by position in the month's ranking (seed 004: +5/+3/+1).
    ranked_points: Option<RawRanked>,
    /// Order attribution windows.
    attribution: Option<RawAttribution>,
    /// Dismissal review flag (淘汰).
    review: Option<RawReview>,
    /// When the nightly job runs.
    schedule: Option<RawSchedule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    /// Cron expression with seconds, in Asia/Shanghai time (`0 30 0 * * *` = 00:30 daily).
    cron: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndicator {
    key: String,
    name: String,
    metric: String,
    /// Divides the metric (指标完成率 = 销售额 / 计划).
    plan: Option<Num>,
    weight: Num,
    tiers: Option<Vec<RawStep>>,
    otherwise: Option<Num>,
    linear: Option<RawLinear>,
    direct: Option<RawDirect>,
    /// For `metric = "input"`: the unit values are entered in.
    input: Option<RawInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    /// `percent` (0–100, `90` or `90%` = 90 %) or `points` (0–`max`).
    unit: String,
    /// Highest value for `points`.
    max: Option<Num>,
    /// Value used when the supervisor entered none; without it a missing value marks the
    /// agent's score incomplete.
    default: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRanked {
    /// Amounts for rank 1, 2, 3 … (元 or ledger points).
    amounts: Vec<Num>,
    /// After the list, each further rank gets this much less …
    step: Option<Num>,
    /// … but never less than this (also for a total below `floor_below`).
    floor: Option<Num>,
    /// A total below this gets `floor` whatever the rank (seed 002: 低于总分 50%).
    floor_below: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at_least: Option<Num>,
    more_than: Option<Num>,
    at_most: Option<Num>,
    less_than: Option<Num>,
    points: Option<Num>,
    rate: Option<Num>,
    factor: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinear {
    base: Num,
    base_points: Num,
    step: Num,
    points_per_step: Num,
    /// Below `base` a different slope may apply (seed 000 下单成功率: +1 above 95%, −1 below 90%).
    below_base: Option<Num>,
    below_points_per_step: Option<Num>,
    min_points: Num,
    max_points: Num,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirect {
    /// Points = value × scale (a 0–1 ratio × 100 → points out of 100).
    scale: Num,
    max_points: Num,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrade {
    name: String,
    at_least: Num,
    /// Money for reaching this grade (seed 002: 底级 300 … 特级 1000 元).
    bonus: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBonus {
    pool: Num,
    min_score: Num,
    /// Seed 004: the bonus shrinks with the month's ledger score (`less_than`, `factor`).
    ledger_factor: Option<Vec<RawStep>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommission {
    basis: String,
    tiers: Vec<RawStep>,
    public_rate: Option<Num>,
    times_score: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPay {
    base_salary: Num,
    seniority_per_year: Num,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: String,
    /// Name shown beside the id.
    name: Option<String>,
    base_salary: Option<Num>,
    hired: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    base: Num,
    /// Range (± around the base); none = unbounded.
    cap: Option<Num>,
    appeal_window_hours: Option<i64>,
    /// The ledger score minus its base is added to the weighted total (seed 002: 加分/扣分).
    #[serde(default)]
    adds_to_total: bool,
    /// Points counted per occurrence in the month, by category.
    #[serde(default)]
    rule: Vec<RawLedgerRule>,
    /// Money from the ledger score (seed 003).
    pay: Option<RawLedgerPay>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedgerRule {
    category: String,
    /// `{ from = n, points = p }`: the n-th occurrence of the month on counts p (until the next `from`).
    points: Vec<RawOccurrence>,
    /// Money per occurrence (seed 002: 每次扣除当月奖金 100 元).
    money: Option<Num>,
    /// An entry of this category more than this many minutes counts as `counts_as` instead.
    over_minutes: Option<i64>,
    counts_as: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOccurrence {
    from: u32,
    points: Num,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedgerPay {
    /// 元 per point below the base (每扣 1 分等于 10 元).
    per_point: Option<Num>,
    /// Points above the base per pay level (每增加 5 分薪资增加一级).
    level_every: Option<Num>,
    /// 元 a level.
    level_amount: Option<Num>,
    /// `"score_only"`: in the month an agent joined, no ledger money (前一个月只评考核分，不浮动工资).
    first_month: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttribution {
    window_hours: i64,
    follow_hours: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReview {
    below: Num,
    months: u32,
}

/// What an indicator measures; see `docs/metrics.md` for each definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// 销售额 (元).
    Sales,
    /// 咨询转化率 = 下单人数 / 咨询人数.
    ConsultConversion,
    /// 下单成功率 = 付款人数 / 下单人数.
    OrderSuccess,
    /// 客单价 = 销售额 / 付款人数.
    AvgOrderValue,
    /// IM 回复率 = 回复过的客户数 / 咨询人数.
    ReplyRate,
    /// IM 响应时间: mean seconds to answer, over answered waits.
    ResponseSeconds,
    /// Platform-style mean response seconds (08:00–23:00, capped 600 s, unanswered = 600 s).
    PlatformResponseSeconds,
    /// Share of platform-style waits answered within 3 minutes.
    PlatformThreeMinuteRate,
    /// 协助跟进 amount (元).
    AssistFollowAmount,
    /// 协助下单 count.
    AssistOrders,
    /// 答问比 = agent messages / buyer messages.
    AnswerRatio,
    /// Buyers' ratings received (evaluation events).
    Ratings,
    /// 满意率 = ratings of 满意 or 非常满意 / ratings.
    SatisfactionRate,
    /// 邀评率 = ratings / 接待人数 (buyers served).
    RatingInviteRate,
    /// The 日常考核 ledger score (base ± capped entries).
    LedgerPoints,
    /// A value the supervisor enters per agent and month (`score_inputs` table).
    Input,
}

impl Metric {
    /// Every metric key the sheet may name.
    pub const ALL: [(&'static str, Metric); 16] = [
        ("sales", Metric::Sales),
        ("consult_conversion", Metric::ConsultConversion),
        ("order_success", Metric::OrderSuccess),
        ("avg_order_value", Metric::AvgOrderValue),
        ("reply_rate", Metric::ReplyRate),
        ("response_seconds", Metric::ResponseSeconds),
        ("platform_response_seconds", Metric::PlatformResponseSeconds),
        ("platform_3min_rate", Metric::PlatformThreeMinuteRate),
        ("assist_follow_amount", Metric::AssistFollowAmount),
        ("assist_orders", Metric::AssistOrders),
        ("answer_ratio", Metric::AnswerRatio),
        ("ratings", Metric::Ratings),
        ("satisfaction_rate", Metric::SatisfactionRate),
        ("rating_invite_rate", Metric::RatingInviteRate),
        ("ledger_points", Metric::LedgerPoints),
        ("input", Metric::Input),
    ];

    /// The key as written in the sheet.
    pub fn key(self) -> &'static str {
        Self::ALL.iter().find(|(_, m)| *m == self).map_or("?", |(k, _)| k)
    }

    fn from_key(k: &str) -> Option<Self> {
        Self::ALL.iter().find(|(key, _)| *key == k).map(|(_, m)| *m)
    }
}

/// How a tier compares the value with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// value ≥ threshold
    AtLeast,
    /// value > threshold
    MoreThan,
    /// value ≤ threshold
    AtMost,
    /// value < threshold
    LessThan,
}

impl Cmp {
    /// Whether `value` falls in this tier.
    pub fn holds(self, value: Decimal, threshold: Decimal) -> bool {
        match self {
            Cmp::AtLeast => value >= threshold,
            Cmp::MoreThan => value > threshold,
            Cmp::AtMost => value <= threshold,
            Cmp::LessThan => value < threshold,
        }
    }

    fn ascending(self) -> bool {
        matches!(self, Cmp::AtMost | Cmp::LessThan)
    }

    /// `≥ 95%` style label for reports.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::AtLeast => "≥",
            Cmp::MoreThan => ">",
            Cmp::AtMost => "≤",
            Cmp::LessThan => "<",
        }
    }
}

/// One row of a tier table: when `cmp(value, threshold)` holds, `value` applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Comparison.
    pub cmp: Cmp,
    /// Threshold.
    pub threshold: Decimal,
    /// Points (indicators) or rate (commission).
    pub value: Decimal,
}

/// First matching step wins; `None` when none matches.
pub fn first_match(steps: &[Step], value: Decimal) -> Option<(usize, &Step)> {
    steps.iter().enumerate().find(|(_, s)| s.cmp.holds(value, s.threshold))
}

/// How an indicator's value turns into points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A tier table, first match wins, else `otherwise`.
    Tiers {
        /// Rows in order.
        steps: Vec<Step>,
        /// Points when no row matches.
        otherwise: Decimal,
    },
    /// `base_points + (value − base) / step × points_per_step`, clamped.
    Linear {
        /// Value at which `base_points` are earned.
        base: Decimal,
        /// Points at `base`.
        base_points: Decimal,
        /// Unit of value per slope step (0.01 = one percentage point).
        step: Decimal,
        /// Points per step above `base`.
        per_step: Decimal,
        /// Where the downward slope starts (defaults to `base`); between it and `base`, `base_points`.
        below_base: Decimal,
        /// Points per step below `below_base`.
        below_per_step: Decimal,
        /// Lower cap.
        min: Decimal,
        /// Upper cap.
        max: Decimal,
    },
    /// Points = value × scale, capped to `[0, max]` (seed 000: "80/100 × 20%").
    Direct {
        /// Multiplier.
        scale: Decimal,
        /// Upper cap.
        max: Decimal,
    },
}

/// What an agent needs for more points on one indicator, read from its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextTier {
    /// The tier that pays the fewest points above `points`: reach `cmp threshold` for `points`.
    Reach {
        /// How the value must compare.
        cmp: Cmp,
        /// The threshold.
        threshold: Decimal,
        /// The points that tier pays.
        points: Decimal,
    },
    /// A sloped rule: each `step` of the value adds `per_step` points, up to `max`.
    Slope {
        /// Value per step.
        step: Decimal,
        /// Points per step.
        per_step: Decimal,
        /// Highest points.
        max: Decimal,
    },
    /// Already at the rule's highest points.
    Top,
}

impl Rule {
    /// What the next tier above `points` (the points the indicator earns now) asks for.
    #[must_use]
    pub fn next_tier(&self, points: Decimal) -> NextTier {
        match self {
            Rule::Tiers { steps, .. } => {
                steps.iter().filter(|s| s.value > points).min_by_key(|s| s.value).map_or(NextTier::Top, |s| {
                    NextTier::Reach { cmp: s.cmp, threshold: s.threshold, points: s.value }
                })
            }
            Rule::Linear { step, per_step, max, .. } if points < *max => {
                NextTier::Slope { step: *step, per_step: *per_step, max: *max }
            }
            Rule::Direct { scale, max, .. } if points < *max => {
                NextTier::Slope { step: Decimal::ONE, per_step: *scale, max: *max }
            }
            _ => NextTier::Top,
        }
    }
}

/// How a supervisor enters an input indicator's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Percent, 0–100 (`90` and `90%` both mean 90 %), stored as a ratio (0.9).
    Percent,
    /// Points from 0 to the maximum.
    Points(Decimal),
}

/// An input indicator's entry rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Unit of the entered value.
    pub unit: Unit,
    /// Value when none is entered; `None` = missing values mark the score incomplete.
    pub default: Option<Decimal>,
}

impl Input {
    /// Checks an entered value and turns it into the stored value (a ratio for percent).
    pub fn accept(&self, text: &str) -> Result<Decimal, String> {
        let t = text.trim();
        let body = t.strip_suffix('%').map(str::trim);
        if let (Unit::Points(_), Some(_)) = (self.unit, body) {
            return Err(format!("`{text}`: this row takes points, not a percentage"));
        }
        let v = plain_decimal(body.unwrap_or(t))
            .ok_or_else(|| format!("`{text}` is not a number: expected e.g. 90 or 87.5"))?;
        match self.unit {
            Unit::Percent if v < Decimal::ZERO || v > Decimal::ONE_HUNDRED => Err(format!(
                "`{text}` is out of range: this row takes a percentage from 0 to 100 (90 = 90 %)"
            )),
            Unit::Percent => Ok(v / Decimal::ONE_HUNDRED),
            Unit::Points(max) if v < Decimal::ZERO || v > max => {
                Err(format!("`{text}` is out of range: this row takes points from 0 to {}", max.normalize()))
            }
            Unit::Points(_) => Ok(v),
        }
    }

    /// The unit in words, for messages and pages.
    pub fn describe(&self) -> String {
        match self.unit {
            Unit::Percent => "percent 0–100".into(),
            Unit::Points(max) => format!("points 0–{}", max.normalize()),
        }
    }
}

/// A plain decimal (`-12.50`, `87`): no exponent, no sign-only, no thousands separators,
/// at most 12 integer digits (no amount or score in a shop is larger).
pub fn plain_decimal(s: &str) -> Option<Decimal> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !int.is_empty()
        && int.len() <= 12
        && frac.len() <= 8
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    t.parse().ok()
}

/// One row of the KPI sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    /// Stable key (used in `score_inputs` and reports).
    pub key: String,
    /// Name shown on reports.
    pub name: String,
    /// What it measures.
    pub metric: Metric,
    /// Divisor applied to the metric (sales plan), when given.
    pub plan: Option<Decimal>,
    /// Weight in percent; all weights sum to 100.
    pub weight: Decimal,
    /// Value → points.
    pub rule: Rule,
    /// Entry rules, for `metric = "input"` rows.
    pub input: Option<Input>,
}

/// Commission basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Rate chosen by the weighted score (seed 003).
    Score,
    /// Rate chosen by the month's personal sales (seed 000).
    Sales,
}

/// Commission (提成) rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commission {
    /// What picks the rate.
    pub basis: Basis,
    /// Rate tiers, first match wins; no match = no commission.
    pub steps: Vec<Step>,
    /// 公共销售提成 rate on 无人接待销售额, shared equally by the agents.
    pub public_rate: Option<Decimal>,
    /// Seed 000: 提成 × 考核得分%; seed 003: paid as is.
    pub times_score: bool,
}

/// Per-agent pay facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPay {
    /// Agent id.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// 底薪 overriding the sheet's default.
    pub base_salary: Option<Decimal>,
    /// Hire date, for 工龄工资 (whole years at the month's last day).
    pub hired: Option<NaiveDate>,
}

/// Points counted per occurrence of a ledger category in the month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRule {
    /// The entries' category.
    pub category: String,
    /// `(from, points)`, `from` rising: the n-th occurrence counts the points of the last `from ≤ n`.
    pub steps: Vec<(u32, Decimal)>,
    /// Money per occurrence (negative = deducted).
    pub money: Decimal,
    /// `(minutes, category)`: an entry more than `minutes` late counts as `category` instead.
    pub over: Option<(i64, String)>,
}

impl LedgerRule {
    /// Points of the n-th occurrence (1-based).
    pub fn points(&self, n: u32) -> Decimal {
        self.steps.iter().rev().find(|(from, _)| *from <= n).map_or(Decimal::ZERO, |(_, p)| *p)
    }
}

/// Money from the ledger score (seed 003).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerPay {
    /// 元 per point below the base.
    pub per_point: Decimal,
    /// Points above the base per level (`None` = no levels).
    pub level_every: Option<Decimal>,
    /// 元 a level.
    pub level_amount: Decimal,
    /// In the month an agent joined (`hired`), no ledger money.
    pub first_month_score_only: bool,
}

/// Amounts by position in the month's ranking.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ranked {
    /// Rank 1, 2, 3 …
    pub amounts: Vec<Decimal>,
    /// Decrease per rank after the list.
    pub step: Option<Decimal>,
    /// Lowest amount (after the list, and for a total below `floor_below`).
    pub floor: Decimal,
    /// A total below this gets `floor`.
    pub floor_below: Option<Decimal>,
}

impl Ranked {
    /// The amount for a rank (1-based; tied agents share the better rank) and total.
    pub fn amount(&self, rank: usize, total: Decimal) -> Decimal {
        if self.floor_below.is_some_and(|b| total < b) {
            return self.floor;
        }
        if let Some(a) = rank.checked_sub(1).and_then(|i| self.amounts.get(i)) {
            return *a;
        }
        match (self.step, self.amounts.last()) {
            (Some(step), Some(last)) => {
                let beyond = Decimal::from(rank.saturating_sub(self.amounts.len()));
                (*last - step * beyond).max(self.floor)
            }
            _ => self.floor,
        }
    }
}

/// The compiled KPI sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sheet {
    /// Title.
    pub name: String,
    /// Rows.
    pub indicators: Vec<Indicator>,
    /// `(name, minimum score)`, highest first.
    pub grades: Vec<(String, Decimal)>,
    /// Money for each grade, same order (0 when the grade names none).
    pub grade_bonus: Vec<Decimal>,
    /// 绩效奖金总额, and the score below which no bonus is paid.
    pub bonus: Option<(Decimal, Decimal)>,
    /// Bonus multipliers by the month's ledger score, first match wins (seed 004).
    pub bonus_ledger_factor: Vec<Step>,
    /// 提成.
    pub commission: Option<Commission>,
    /// 底薪 default.
    pub base_salary: Decimal,
    /// 工龄工资 per full year.
    pub seniority_per_year: Decimal,
    /// Per-agent pay facts.
    pub agents: Vec<AgentPay>,
    /// Ledger base points per month.
    pub ledger_base: Decimal,
    /// Ledger range cap (± this many points around the base); `None` = unbounded.
    pub ledger_cap: Option<Decimal>,
    /// The sheet has a `[ledger]`.
    pub has_ledger: bool,
    /// Ledger score − base is added to the total.
    pub ledger_adds_to_total: bool,
    /// Occurrence rules by category.
    pub ledger_rules: Vec<LedgerRule>,
    /// Money from the ledger score.
    pub ledger_pay: LedgerPay,
    /// Money by rank.
    pub ranked_bonus: Option<Ranked>,
    /// Ledger points by rank.
    pub ranked_points: Option<Ranked>,
    /// Hours after publication during which an entry may be disputed.
    pub appeal_window_ms: i64,
    /// Contacts within this many ms before an order credit it.
    pub attribution_window_ms: i64,
    /// Service within this many ms after an order counts 协助跟进.
    pub follow_window_ms: i64,
    /// Dismissal review: below this score …
    pub review_below: Decimal,
    /// … for this many months in a row.
    pub review_months: u32,
    /// Cron expression (with seconds, Asia/Shanghai) of the nightly job.
    pub cron: String,
}

/// The nightly job's default schedule: 00:30 every day, Asia/Shanghai.
pub const DEFAULT_CRON: &str = "0 30 0 * * *";

impl Default for Sheet {
    fn default() -> Self {
        parse(Path::new("<embedded>/scoring.toml"), DEFAULT)
            .expect("the embedded scoring.toml is valid (tested)")
    }
}

impl Sheet {
    /// Whether the sheet lists its agents (`[[agent]]`): then only they are scored and
    /// share the public commission, and inputs for anyone else are refused.
    pub fn has_roster(&self) -> bool {
        !self.agents.is_empty()
    }

    /// The pay facts for `agent` (defaults when the sheet does not list it).
    pub fn agent_pay(&self, agent: &str) -> AgentPay {
        self.agents.iter().find(|a| a.id == agent).cloned().unwrap_or(AgentPay {
            id: agent.to_string(),
            name: None,
            base_salary: None,
            hired: None,
        })
    }
}

/// Reads the sheet from `dir`, or the embedded default when the folder has no such file.
pub fn load(dir: Option<&Path>) -> Result<Sheet, DataError> {
    let (path, text) = read_or_default(dir, FILE, DEFAULT)?;
    parse(&path, &text)
}

/// Every example sheet (`examples/scoring*.toml` in the rules folder), each parsed as
/// `kefu run` would parse it were it `scoring.toml`; errors name the example's file.
pub fn check_examples(dir: &Path) -> Vec<DataError> {
    let Ok(list) = std::fs::read_dir(dir.join("examples")) else { return vec![] };
    let mut paths: Vec<_> = list
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("scoring"))
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| match std::fs::read_to_string(p) {
            Ok(text) => parse(p, &text).err(),
            Err(e) => Some(DataError::at(p, None, format!("cannot read: {e}"))),
        })
        .collect()
}

/// Parses and validates the sheet text; `file` is used in error messages.
pub fn parse(file: &Path, text: &str) -> Result<Sheet, DataError> {
    let raw: Raw = parse_toml(file, text)?;
    let err = |needle: &str, msg: String| DataError::at(file, line_containing(text, needle), msg);
    let num = |n: &Num, needle: &str, what: &str| n.value().map_err(|m| err(needle, format!("{what}: {m}")));

    let mut indicators = Vec::new();
    let mut weight_sum = Decimal::ZERO;
    for ri in &raw.indicator {
        let at = format!("\"{}\"", ri.key);
        if indicators.iter().any(|i: &Indicator| i.key == ri.key) {
            return Err(err(&at, format!("indicator key `{}` appears twice", ri.key)));
        }
        let metric = Metric::from_key(&ri.metric).ok_or_else(|| {
            let known: Vec<_> = Metric::ALL.iter().map(|(k, _)| *k).collect();
            err(
                &format!("\"{}\"", ri.metric),
                format!("unknown metric `{}`: expected one of {}", ri.metric, known.join(", ")),
            )
        })?;
        let weight = num(&ri.weight, &at, &format!("indicator `{}` weight", ri.key))?;
        if weight < Decimal::ZERO {
            return Err(err(&at, format!("indicator `{}`: weight must not be negative", ri.key)));
        }
        weight_sum += weight;
        let plan = ri.plan.as_ref().map(|p| num(p, &at, "plan")).transpose()?;
        if plan.is_some_and(|p| p <= Decimal::ZERO) {
            return Err(err(&at, format!("indicator `{}`: plan must be above 0", ri.key)));
        }
        let input = match (&ri.input, metric) {
            (Some(i), Metric::Input) => {
                let unit = match (i.unit.as_str(), &i.max) {
                    ("percent", None) => Unit::Percent,
                    ("percent", Some(_)) => {
                        return Err(err(
                            &at,
                            format!("indicator `{}`: a percent input has no `max` (it is 100)", ri.key),
                        ));
                    }
                    ("points", Some(m)) => {
                        let m = num(m, &at, &format!("indicator `{}` input.max", ri.key))?;
                        if m <= Decimal::ZERO {
                            return Err(err(
                                &at,
                                format!("indicator `{}`: input.max must be above 0", ri.key),
                            ));
                        }
                        Unit::Points(m)
                    }
                    ("points", None) => {
                        return Err(err(&at, format!("indicator `{}`: a points input needs `max`", ri.key)));
                    }
                    (other, _) => {
                        return Err(err(
                            &at,
                            format!(
                                "indicator `{}`: input.unit `{other}`: expected \"percent\" or \"points\"",
                                ri.key
                            ),
                        ));
                    }
                };
                let mut input = Input { unit, default: None };
                if let Some(d) = &i.default {
                    let text = match d {
                        Num::Int(v) => v.to_string(),
                        Num::Text(t) => t.clone(),
                        Num::Float(f) => f.to_string(),
                    };
                    input.default = Some(
                        input
                            .accept(&text)
                            .map_err(|m| err(&at, format!("indicator `{}` input.default {m}", ri.key)))?,
                    );
                }
                Some(input)
            }
            (None, Metric::Input) => {
                return Err(err(
                    &at,
                    format!(
                        "indicator `{}`: an input row needs `input = {{ unit = \"percent\" }}` or `{{ unit = \"points\", max = 100 }}`",
                        ri.key
                    ),
                ));
            }
            (Some(_), _) => {
                return Err(err(
                    &at,
                    format!("indicator `{}`: `input` is only for metric \"input\"", ri.key),
                ));
            }
            (None, _) => None,
        };
        let rules = usize::from(ri.tiers.is_some())
            + usize::from(ri.linear.is_some())
            + usize::from(ri.direct.is_some());
        if rules != 1 {
            return Err(err(
                &at,
                format!("indicator `{}` needs exactly one of `tiers`, `linear`, `direct`", ri.key),
            ));
        }
        let rule = if let Some(t) = &ri.tiers {
            let steps = steps(t, "points", &|n, what| num(n, &at, &format!("indicator `{}` {what}", ri.key)))
                .map_err(|m| err(&at, format!("indicator `{}`: {m}", ri.key)))?;
            let otherwise =
                ri.otherwise.as_ref().map(|o| num(o, &at, "otherwise")).transpose()?.unwrap_or_default();
            Rule::Tiers { steps, otherwise }
        } else if let Some(l) = &ri.linear {
            let n = |v: &Num, what: &str| num(v, &at, &format!("indicator `{}` linear.{what}", ri.key));
            let base = n(&l.base, "base")?;
            let step = n(&l.step, "step")?;
            let per_step = n(&l.points_per_step, "points_per_step")?;
            let below_base = l.below_base.as_ref().map(|v| n(v, "below_base")).transpose()?.unwrap_or(base);
            let below_per_step = l
                .below_points_per_step
                .as_ref()
                .map(|v| n(v, "below_points_per_step"))
                .transpose()?
                .unwrap_or(per_step);
            let (min, max) = (n(&l.min_points, "min_points")?, n(&l.max_points, "max_points")?);
            if step <= Decimal::ZERO {
                return Err(err(&at, format!("indicator `{}`: linear.step must be above 0", ri.key)));
            }
            if min > max {
                return Err(err(
                    &at,
                    format!("indicator `{}`: linear.min_points is above max_points", ri.key),
                ));
            }
            if below_base > base {
                return Err(err(
                    &at,
                    format!("indicator `{}`: linear.below_base must not be above base", ri.key),
                ));
            }
            Rule::Linear {
                base,
                base_points: n(&l.base_points, "base_points")?,
                step,
                per_step,
                below_base,
                below_per_step,
                min,
                max,
            }
        } else if let Some(d) = &ri.direct {
            let scale = num(&d.scale, &at, "direct.scale")?;
            let max = num(&d.max_points, &at, "direct.max_points")?;
            Rule::Direct { scale, max }
        } else {
            unreachable!("exactly one rule was checked above")
        };
        indicators.push(Indicator {
            key: ri.key.clone(),
            name: ri.name.clone(),
            metric,
            plan,
            weight,
            rule,
            input,
        });
    }
    if indicators.is_empty() {
        return Err(DataError::at(file, None, "at least one [[indicator]] is required"));
    }
    if weight_sum != Decimal::ONE_HUNDRED {
        return Err(err("weight", format!("indicator weights sum to {weight_sum}, expected 100")));
    }

    let mut grades = Vec::new();
    let mut grade_bonus = Vec::new();
    for g in &raw.grade {
        let at = format!("\"{}\"", g.name);
        let min = num(&g.at_least, &at, &format!("grade `{}`", g.name))?;
        grade_bonus.push(
            g.bonus
                .as_ref()
                .map(|b| num(b, &at, &format!("grade `{}` bonus", g.name)))
                .transpose()?
                .unwrap_or_default(),
        );
        if grades.last().is_some_and(|(_, prev): &(String, Decimal)| min >= *prev) {
            return Err(err(
                &at,
                format!("grade `{}`: list grades highest first (at_least must fall)", g.name),
            ));
        }
        grades.push((g.name.clone(), min));
    }

    let bonus = raw
        .bonus
        .as_ref()
        .map(|b| {
            Ok::<_, DataError>((
                num(&b.pool, "pool", "bonus.pool")?,
                num(&b.min_score, "min_score", "bonus.min_score")?,
            ))
        })
        .transpose()?;

    let bonus_ledger_factor = match raw.bonus.as_ref().and_then(|b| b.ledger_factor.as_ref()) {
        None => Vec::new(),
        Some(t) => {
            let steps = steps(t, "factor", &|n, what| {
                num(n, "ledger_factor", &format!("bonus.ledger_factor {what}"))
            })
            .map_err(|m| err("ledger_factor", format!("bonus.ledger_factor: {m}")))?;
            if steps.iter().any(|s| s.value < Decimal::ZERO) {
                return Err(err(
                    "ledger_factor",
                    "bonus.ledger_factor factors must not be negative".to_string(),
                ));
            }
            steps
        }
    };
    let commission = match &raw.commission {
        None => None,
        Some(c) => {
            let basis = match c.basis.as_str() {
                "score" => Basis::Score,
                "sales" => Basis::Sales,
                other => {
                    return Err(err(
                        "basis",
                        format!("commission.basis `{other}`: expected \"score\" or \"sales\""),
                    ));
                }
            };
            let steps =
                steps(&c.tiers, "rate", &|n, what| num(n, "[commission]", &format!("commission {what}")))
                    .map_err(|m| err("[commission]", format!("commission: {m}")))?;
            if steps.iter().any(|s| s.value < Decimal::ZERO || s.value > Decimal::ONE) {
                return Err(err("rate", "commission rates must lie between 0% and 100%".to_string()));
            }
            let public_rate = c
                .public_rate
                .as_ref()
                .map(|r| num(r, "public_rate", "commission.public_rate"))
                .transpose()?;
            Some(Commission { basis, steps, public_rate, times_score: c.times_score })
        }
    };

    let (base_salary, seniority_per_year) = match &raw.pay {
        Some(p) => (
            num(&p.base_salary, "base_salary", "pay.base_salary")?,
            num(&p.seniority_per_year, "seniority_per_year", "pay.seniority_per_year")?,
        ),
        None => (Decimal::ZERO, Decimal::ZERO),
    };
    let mut agents = Vec::new();
    for a in &raw.agent {
        let at = format!("\"{}\"", a.id);
        let base_salary = a.base_salary.as_ref().map(|b| num(b, &at, "agent base_salary")).transpose()?;
        let hired = match &a.hired {
            Some(h) => Some(
                crate::time::parse_day(h)
                    .ok_or_else(|| err(&at, format!("agent `{}`: hired `{h}` is not YYYY-MM-DD", a.id)))?,
            ),
            None => None,
        };
        if agents.iter().any(|x: &AgentPay| x.id == a.id) {
            return Err(err(&at, format!("agent `{}` is listed twice", a.id)));
        }
        agents.push(AgentPay { id: a.id.clone(), name: a.name.clone(), base_salary, hired });
    }

    let ledger = ledger_section(raw.ledger.as_ref(), &num, &err)?;
    if raw.ledger.is_none()
        && let Some(i) = indicators.iter().find(|i| i.metric == Metric::LedgerPoints)
    {
        return Err(err(
            &format!("\"{}\"", i.key),
            format!("indicator `{}` scores the ledger (ledger_points) but the sheet has no [ledger]", i.key),
        ));
    }
    let ranked = |r: Option<&RawRanked>, what: &str| -> Result<Option<Ranked>, DataError> {
        let Some(r) = r else { return Ok(None) };
        let n = |v: &Num, f: &str| num(v, &format!("[{what}]"), &format!("{what}.{f}"));
        let amounts = r.amounts.iter().map(|a| n(a, "amounts")).collect::<Result<Vec<_>, _>>()?;
        if amounts.is_empty() {
            return Err(err(&format!("[{what}]"), format!("{what}.amounts is empty")));
        }
        if amounts.windows(2).any(|w| w[1] > w[0]) {
            return Err(err(&format!("[{what}]"), format!("{what}.amounts must not rise (rank 1 first)")));
        }
        Ok(Some(Ranked {
            amounts,
            step: r.step.as_ref().map(|v| n(v, "step")).transpose()?,
            floor: r.floor.as_ref().map(|v| n(v, "floor")).transpose()?.unwrap_or_default(),
            floor_below: r.floor_below.as_ref().map(|v| n(v, "floor_below")).transpose()?,
        }))
    };
    let ranked_bonus = ranked(raw.ranked_bonus.as_ref(), "ranked_bonus")?;
    let ranked_points = ranked(raw.ranked_points.as_ref(), "ranked_points")?;
    if ranked_points.is_some() && raw.ledger.is_none() {
        return Err(err(
            "[ranked_points]",
            "ranked_points adds ledger points: the sheet needs a [ledger]".into(),
        ));
    }
    let (window_h, follow_h) =
        raw.attribution.as_ref().map_or((72, 72), |a| (a.window_hours, a.follow_hours));
    if window_h <= 0 || follow_h < 0 {
        return Err(err(
            "[attribution]",
            "attribution.window_hours must be above 0 and follow_hours not negative".to_string(),
        ));
    }
    let (review_below, review_months) = match &raw.review {
        Some(r) => (num(&r.below, "below", "review.below")?, r.months),
        None => (Decimal::from(70), 3),
    };

    let cron = raw.schedule.as_ref().map_or(DEFAULT_CRON, |s| s.cron.as_str()).to_string();
    if let Err(e) = cron.parse::<cron::Schedule>() {
        return Err(err(
            "cron",
            format!(
                "schedule.cron `{cron}`: {e} (expected e.g. \"0 30 0 * * *\": sec min hour day month weekday)"
            ),
        ));
    }
    Ok(Sheet {
        name: raw.name,
        indicators,
        grades,
        grade_bonus,
        bonus,
        bonus_ledger_factor,
        commission,
        base_salary,
        seniority_per_year,
        agents,
        ledger_base: ledger.base,
        ledger_cap: ledger.cap,
        has_ledger: raw.ledger.is_some(),
        ledger_adds_to_total: ledger.adds_to_total,
        ledger_rules: ledger.rules,
        ledger_pay: ledger.pay,
        ranked_bonus,
        ranked_points,
        appeal_window_ms: ledger.appeal_hours * 3_600_000,
        attribution_window_ms: window_h * 3_600_000,
        follow_window_ms: follow_h * 3_600_000,
        review_below,
        review_months,
        cron,
    })
}

type NumFn<'a> = dyn Fn(&Num, &str) -> Result<Decimal, DataError> + 'a;

struct LedgerSection {
    base: Decimal,
    cap: Option<Decimal>,
    appeal_hours: i64,
    adds_to_total: bool,
    rules: Vec<LedgerRule>,
    pay: LedgerPay,
}

/// Compiles `[ledger]` (or the empty ledger of a sheet without one).
fn ledger_section(
    raw: Option<&RawLedger>,
    num: &dyn Fn(&Num, &str, &str) -> Result<Decimal, DataError>,
    err: &dyn Fn(&str, String) -> DataError,
) -> Result<LedgerSection, DataError> {
    let Some(l) = raw else {
        return Ok(LedgerSection {
            base: Decimal::ZERO,
            cap: None,
            appeal_hours: 24,
            adds_to_total: false,
            rules: vec![],
            pay: LedgerPay::default(),
        });
    };
    let base = num(&l.base, "[ledger]", "ledger.base")?;
    let cap = l.cap.as_ref().map(|c| num(c, "cap", "ledger.cap")).transpose()?;
    if cap.is_some_and(|c| c < Decimal::ZERO) {
        return Err(err("cap", "ledger.cap must not be negative".to_string()));
    }
    let appeal_hours = l.appeal_window_hours.unwrap_or(24);
    if appeal_hours < 0 {
        return Err(err(
            "appeal_window_hours",
            "ledger.appeal_window_hours must not be negative".to_string(),
        ));
    }
    let mut rules: Vec<LedgerRule> = Vec::new();
    for r in &l.rule {
        let at = format!("\"{}\"", r.category);
        if rules.iter().any(|x| x.category == r.category) {
            return Err(err(&at, format!("ledger rule for `{}` appears twice", r.category)));
        }
        let mut steps = Vec::new();
        for o in &r.points {
            let p = num(&o.points, &at, &format!("ledger rule `{}` points", r.category))?;
            if o.from == 0 || steps.last().is_some_and(|(f, _): &(u32, Decimal)| o.from <= *f) {
                return Err(err(
                    &at,
                    format!("ledger rule `{}`: `from` counts occurrences 1, 2, … and must rise", r.category),
                ));
            }
            steps.push((o.from, p));
        }
        if steps.first().is_none_or(|(f, _)| *f != 1) {
            return Err(err(&at, format!("ledger rule `{}`: the first step needs from = 1", r.category)));
        }
        let over = match (r.over_minutes, &r.counts_as) {
            (Some(m), Some(c)) if m >= 0 => Some((m, c.clone())),
            (None, None) => None,
            _ => {
                return Err(err(
                    &at,
                    format!("ledger rule `{}`: over_minutes (≥ 0) and counts_as go together", r.category),
                ));
            }
        };
        let money = r
            .money
            .as_ref()
            .map(|m| num(m, &at, &format!("ledger rule `{}` money", r.category)))
            .transpose()?;
        rules.push(LedgerRule {
            category: r.category.clone(),
            steps,
            money: money.unwrap_or_default(),
            over,
        });
    }
    for r in &rules {
        if let Some((_, c)) = &r.over
            && !rules.iter().any(|x| &x.category == c)
        {
            return Err(err(
                &format!("\"{c}\""),
                format!("ledger rule `{}`: counts_as `{c}` has no rule of its own", r.category),
            ));
        }
    }
    let pay = match &l.pay {
        None => LedgerPay::default(),
        Some(p) => {
            let n = |v: &Option<Num>, f: &str| {
                v.as_ref().map(|v| num(v, "[ledger.pay]", &format!("ledger.pay.{f}"))).transpose()
            };
            let level_every = n(&p.level_every, "level_every")?;
            if level_every.is_some_and(|e| e <= Decimal::ZERO) {
                return Err(err("level_every", "ledger.pay.level_every must be above 0".into()));
            }
            let first_month_score_only = match p.first_month.as_deref() {
                None => false,
                Some("score_only") => true,
                Some(other) => {
                    return Err(err(
                        "first_month",
                        format!("ledger.pay.first_month `{other}`: expected \"score_only\""),
                    ));
                }
            };
            LedgerPay {
                per_point: n(&p.per_point, "per_point")?.unwrap_or_default(),
                level_every,
                level_amount: n(&p.level_amount, "level_amount")?.unwrap_or_default(),
                first_month_score_only,
            }
        }
    };
    Ok(LedgerSection { base, cap, appeal_hours, adds_to_total: l.adds_to_total, rules, pay })
}

/// Compiles a tier list; thresholds must run in one direction so first-match is unambiguous.
fn steps(raw: &[RawStep], value_name: &str, num: &NumFn<'_>) -> Result<Vec<Step>, String> {
    if raw.is_empty() {
        return Err("the tier list is empty".into());
    }
    let mut out: Vec<Step> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let given: Vec<(Cmp, &Num)> = [
            (Cmp::AtLeast, &r.at_least),
            (Cmp::MoreThan, &r.more_than),
            (Cmp::AtMost, &r.at_most),
            (Cmp::LessThan, &r.less_than),
        ]
        .into_iter()
        .filter_map(|(c, n)| n.as_ref().map(|n| (c, n)))
        .collect();
        let [(cmp, t)] = given.as_slice() else {
            return Err(format!(
                "tier {} needs exactly one of at_least, more_than, at_most, less_than",
                i + 1
            ));
        };
        let value = match value_name {
            "points" => r.points.as_ref(),
            "factor" => r.factor.as_ref(),
            _ => r.rate.as_ref(),
        }
        .ok_or_else(|| format!("tier {} has no `{value_name}`", i + 1))?;
        let threshold = num(t, "threshold").map_err(|e| e.message)?;
        let value = num(value, value_name).map_err(|e| e.message)?;
        if value_name == "points" && value < Decimal::ZERO {
            return Err(format!("tier {}: points must not be negative", i + 1));
        }
        if let Some(prev) = out.last() {
            if prev.cmp.ascending() != cmp.ascending() {
                return Err(format!("tier {}: mixes ≥/> with ≤/< tiers; use one direction", i + 1));
            }
            let ordered =
                if cmp.ascending() { threshold >= prev.threshold } else { threshold <= prev.threshold };
            if !ordered {
                return Err(format!(
                    "tier {}: threshold {threshold} is out of order (≥/> tiers fall, ≤/< tiers rise)",
                    i + 1
                ));
            }
        }
        out.push(Step { cmp: *cmp, threshold, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn next_tier_is_the_nearest_better_tier() {
        let step = |cmp, threshold, value| Step { cmp, threshold, value };
        // 执行力 (seed 003): ledger score ≥ 100 → 100, ≥ 80 → 80, ≥ 60 → 60, else 0.
        let tiers = Rule::Tiers {
            steps: vec![
                step(Cmp::AtLeast, dec!(100), dec!(100)),
                step(Cmp::AtLeast, dec!(80), dec!(80)),
                step(Cmp::AtLeast, dec!(60), dec!(60)),
            ],
            otherwise: dec!(0),
        };
        let reach = |t, p| NextTier::Reach { cmp: Cmp::AtLeast, threshold: t, points: p };
        let cases = [
            (dec!(0), reach(dec!(60), dec!(60))),
            (dec!(60), reach(dec!(80), dec!(80))),
            (dec!(80), reach(dec!(100), dec!(100))),
            (dec!(100), NextTier::Top),
        ];
        for (points, want) in cases {
            assert_eq!(tiers.next_tier(points), want, "at {points}");
        }
        // Response time: lower is better (≤ 30 s → 100, ≤ 60 s → 50).
        let faster = Rule::Tiers {
            steps: vec![step(Cmp::AtMost, dec!(30), dec!(100)), step(Cmp::AtMost, dec!(60), dec!(50))],
            otherwise: dec!(0),
        };
        assert_eq!(
            faster.next_tier(dec!(50)),
            NextTier::Reach { cmp: Cmp::AtMost, threshold: dec!(30), points: dec!(100) }
        );
        let direct = Rule::Direct { scale: dec!(100), max: dec!(100) };
        assert_eq!(
            direct.next_tier(dec!(90)),
            NextTier::Slope { step: dec!(1), per_step: dec!(100), max: dec!(100) }
        );
        assert_eq!(direct.next_tier(dec!(100)), NextTier::Top);
    }

    #[test]
    fn default_is_seed_003_with_stated_weights() {
        let s = Sheet::default();
        let w: Vec<_> = s.indicators.iter().map(|i| (i.key.as_str(), i.weight)).collect();
        assert_eq!(
            w,
            [
                ("target_completion", dec!(22)),
                ("consult_conversion", dec!(22)),
                ("order_success", dec!(5)),
                ("avg_order_value", dec!(5)),
                ("reply_rate", dec!(8)),
                ("response_time", dec!(4)),
                ("assist_follow", dec!(4)),
                ("execution", dec!(30)),
            ]
        );
        assert_eq!(s.ledger_base, dec!(80));
        assert_eq!(s.ledger_cap, Some(dec!(20)));
        assert_eq!(s.bonus, Some((dec!(300), dec!(70))));
        assert_eq!(s.appeal_window_ms, 24 * 3_600_000);
    }

    #[test]
    fn seed_000_example_file_is_valid() {
        let text = include_str!("../../rules/examples/scoring_seed000.toml");
        let s = parse(Path::new("rules/examples/scoring_seed000.toml"), text).unwrap();
        assert_eq!(s.commission.as_ref().map(|c| c.basis), Some(Basis::Sales));
        assert_eq!(s.commission.as_ref().and_then(|c| c.public_rate), Some(dec!(0.005)));
        assert_eq!(s.seniority_per_year, dec!(100));
    }

    /// Seed 002 排序工资法: 1000, 800, 600 … never below 300, and 300 below a total of 50.
    #[test]
    fn ranked_amounts_step_down_to_the_floor() {
        let r = Ranked {
            amounts: vec![dec!(1000)],
            step: Some(dec!(200)),
            floor: dec!(300),
            floor_below: Some(dec!(50)),
        };
        let cases = [
            (1, dec!(90), dec!(1000)),
            (2, dec!(80), dec!(800)),
            (3, dec!(70), dec!(600)),
            (4, dec!(60), dec!(400)),
            (5, dec!(55), dec!(300)),
            (9, dec!(50), dec!(300)),
            (1, dec!(49.99), dec!(300)),
        ];
        for (rank, total, want) in cases {
            assert_eq!(r.amount(rank, total), want, "rank {rank} total {total}");
        }
        let top3 = Ranked { amounts: vec![dec!(5), dec!(3), dec!(1)], ..Default::default() };
        let got: Vec<_> = (1..=5).map(|r| top3.amount(r, dec!(0))).collect();
        assert_eq!(got, [dec!(5), dec!(3), dec!(1), dec!(0), dec!(0)]);
    }

    #[test]
    fn input_units_are_unambiguous_and_bounded() {
        let pct = Input { unit: Unit::Percent, default: None };
        assert_eq!(pct.accept("90"), Ok(dec!(0.9)));
        assert_eq!(pct.accept("90%"), Ok(dec!(0.9)));
        assert_eq!(pct.accept("87.5 %"), Ok(dec!(0.875)));
        for bad in ["900", "-1", "101%", "1e2", "九十", "", "99999999999999999999999"] {
            assert!(pct.accept(bad).is_err(), "{bad}");
        }
        let pts = Input { unit: Unit::Points(dec!(20)), default: None };
        assert_eq!(pts.accept("18.5"), Ok(dec!(18.5)));
        assert!(pts.accept("21").unwrap_err().contains("from 0 to 20"));
        assert!(pts.accept("18%").unwrap_err().contains("not a percentage"));
    }

    #[test]
    fn numbers_are_exact_and_percentages_divide() {
        assert_eq!(parse_number("45%"), Ok(dec!(0.45)));
        assert_eq!(parse_number(" 0.1 "), Ok(dec!(0.1)));
        assert!(parse_number("abc").is_err());
    }

    const OK: &str = r#"name = "t"
[ledger]
base = 80
cap = 20
appeal_window_hours = 24
[[indicator]]
key = "a"
name = "A"
metric = "reply_rate"
weight = 100
tiers = [ { at_least = "98%", points = 100 }, { at_least = "95%", points = 80 } ]
"#;

    #[test]
    fn errors_name_file_and_line() {
        let p = Path::new("rules/scoring.toml");
        assert!(parse(p, OK).is_ok());
        let cases: [(&str, &str, &str, Option<usize>); 7] = [
            ("weight = 100", "weight = 90", "sum to 90, expected 100", Some(10)),
            ("metric = \"reply_rate\"", "metric = \"smiles\"", "unknown metric `smiles`", Some(9)),
            ("weight = 100", "weight = 100.0", "TOML float", Some(7)),
            ("\"95%\"", "\"99%\"", "out of order", Some(7)),
            ("{ at_least = \"95%\"", "{ at_most = \"95%\"", "mixes", Some(7)),
            ("cap = 20", "cap = 20\nsize = 3", "unknown field `size`", Some(5)),
            ("points = 80", "rate = 80", "has no `points`", Some(7)),
        ];
        for (from, to, want, line) in cases {
            let e = parse(p, &OK.replacen(from, to, 1)).unwrap_err();
            assert!(e.to_string().contains(want), "{from} → {to}: {e}");
            assert_eq!(e.line, line, "{from} → {to}: {e}");
            assert!(e.to_string().starts_with("rules/scoring.toml:"), "{e}");
        }
    }
}

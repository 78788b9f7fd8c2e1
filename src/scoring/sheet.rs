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
    /// The daily points ledger (日常考核).
    ledger: RawLedger,
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
    base_salary: Option<Num>,
    hired: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    base: Num,
    cap: Num,
    appeal_window_hours: i64,
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
    /// The 日常考核 ledger score (base ± capped entries).
    LedgerPoints,
    /// A value the supervisor enters per agent and month (`score_inputs` table).
    Input,
}

impl Metric {
    /// Every metric key the sheet may name.
    pub const ALL: [(&'static str, Metric); 13] = [
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
    /// 底薪 overriding the sheet's default.
    pub base_salary: Option<Decimal>,
    /// Hire date, for 工龄工资 (whole years at the month's last day).
    pub hired: Option<NaiveDate>,
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
    /// Ledger range cap (± this many points around the base).
    pub ledger_cap: Decimal,
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
    /// The pay facts for `agent` (defaults when the sheet does not list it).
    pub fn agent_pay(&self, agent: &str) -> AgentPay {
        self.agents.iter().find(|a| a.id == agent).cloned().unwrap_or(AgentPay {
            id: agent.to_string(),
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
        indicators.push(Indicator { key: ri.key.clone(), name: ri.name.clone(), metric, plan, weight, rule });
    }
    if indicators.is_empty() {
        return Err(DataError::at(file, None, "at least one [[indicator]] is required"));
    }
    if weight_sum != Decimal::ONE_HUNDRED {
        return Err(err("weight", format!("indicator weights sum to {weight_sum}, expected 100")));
    }

    let mut grades = Vec::new();
    for g in &raw.grade {
        let at = format!("\"{}\"", g.name);
        let min = num(&g.at_least, &at, &format!("grade `{}`", g.name))?;
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
        agents.push(AgentPay { id: a.id.clone(), base_salary, hired });
    }

    let ledger_base = num(&raw.ledger.base, "[ledger]", "ledger.base")?;
    let ledger_cap = num(&raw.ledger.cap, "[ledger]", "ledger.cap")?;
    if ledger_cap < Decimal::ZERO {
        return Err(err("cap", "ledger.cap must not be negative".to_string()));
    }
    if raw.ledger.appeal_window_hours < 0 {
        return Err(err(
            "appeal_window_hours",
            "ledger.appeal_window_hours must not be negative".to_string(),
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
        bonus,
        bonus_ledger_factor,
        commission,
        base_salary,
        seniority_per_year,
        agents,
        ledger_base,
        ledger_cap,
        appeal_window_ms: raw.ledger.appeal_window_hours * 3_600_000,
        attribution_window_ms: window_h * 3_600_000,
        follow_window_ms: follow_h * 3_600_000,
        review_below,
        review_months,
        cron,
    })
}

type NumFn<'a> = dyn Fn(&Num, &str) -> Result<Decimal, DataError> + 'a;

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
        assert_eq!(s.ledger_cap, dec!(20));
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

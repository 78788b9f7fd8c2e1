//! Monthly (and month-to-date) scores: pure arithmetic from a month's figures and the sheet.
//!
//! # Rounding rule
//! Scores and every intermediate are exact [`Decimal`]s. Each money figure shown on the
//! payslip — bonus, personal commission, public commission, commission paid, 工龄工资,
//! 底薪 — is computed exactly from unrounded inputs and rounded **once**, half away from
//! zero (ROUND_HALF_UP) to 0.01 元 ([`fen`]). The salary is the exact sum of those
//! rounded parts, so a payslip always adds up to the fen. Scores are shown to 0.01 but
//! grades, tiers and bands compare the exact value.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

use super::sheet::{Basis, Indicator, Metric, Rule, Sheet, first_match};

/// Rounds a money figure to the fen, half away from zero (the one rounding rule).
pub fn fen(d: Decimal) -> Decimal {
    let mut r = d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    // Always two decimals, so stored and printed money reads `2800.00`.
    r.rescale(2);
    r
}

/// What one agent did in a month (or month to date): sums of daily figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthFigures {
    /// 咨询人数 (sum over days).
    pub consulted: i64,
    /// 回复过的客户数.
    pub replied: i64,
    /// 下单人数.
    pub ordered: i64,
    /// 付款人数.
    pub paid: i64,
    /// 销售额 (元).
    pub sales: Decimal,
    /// Answered waits and their summed response time.
    pub answered: i64,
    /// Sum of response milliseconds over answered waits.
    pub response_ms: i64,
    /// Platform-style waits, their capped seconds sum (ms) and those answered within 3 min.
    pub platform_waits: i64,
    /// Capped milliseconds summed over platform-style waits.
    pub platform_ms: i64,
    /// Platform-style waits answered within 180 s.
    pub platform_within_3min: i64,
    /// 协助跟进 amount.
    pub assist_follow_amount: Decimal,
    /// 协助下单 count.
    pub assist_orders: i64,
    /// Agent and buyer message counts (答问比).
    pub agent_msgs: i64,
    /// Buyer messages.
    pub buyer_msgs: i64,
    /// 接待人数 (buyers served: both sides wrote), the base of 邀评率.
    pub received: i64,
    /// Buyers' ratings received.
    pub ratings: i64,
    /// Of them 满意 or 非常满意.
    pub satisfied: i64,
}

fn ratio(n: impl Into<Decimal>, d: impl Into<Decimal>) -> Option<Decimal> {
    let d = d.into();
    (!d.is_zero()).then(|| n.into() / d)
}

impl MonthFigures {
    /// Adds another day's figures.
    pub fn add(&mut self, o: &MonthFigures) {
        self.consulted += o.consulted;
        self.replied += o.replied;
        self.ordered += o.ordered;
        self.paid += o.paid;
        self.sales += o.sales;
        self.answered += o.answered;
        self.response_ms += o.response_ms;
        self.platform_waits += o.platform_waits;
        self.platform_ms += o.platform_ms;
        self.platform_within_3min += o.platform_within_3min;
        self.assist_follow_amount += o.assist_follow_amount;
        self.assist_orders += o.assist_orders;
        self.agent_msgs += o.agent_msgs;
        self.buyer_msgs += o.buyer_msgs;
        self.received += o.received;
        self.ratings += o.ratings;
        self.satisfied += o.satisfied;
    }

    /// The value a metric takes; `None` when its denominator is zero.
    pub fn metric(&self, m: Metric) -> Option<Decimal> {
        match m {
            Metric::Sales => Some(self.sales),
            Metric::ConsultConversion => ratio(self.ordered, self.consulted),
            Metric::OrderSuccess => ratio(self.paid, self.ordered),
            Metric::AvgOrderValue => ratio(self.sales, self.paid),
            Metric::ReplyRate => ratio(self.replied, self.consulted),
            Metric::ResponseSeconds => ratio(self.response_ms, self.answered * 1000),
            Metric::PlatformResponseSeconds => ratio(self.platform_ms, self.platform_waits * 1000),
            Metric::PlatformThreeMinuteRate => ratio(self.platform_within_3min, self.platform_waits),
            Metric::AssistFollowAmount => Some(self.assist_follow_amount),
            Metric::AssistOrders => Some(Decimal::from(self.assist_orders)),
            Metric::AnswerRatio => ratio(self.agent_msgs, self.buyer_msgs),
            Metric::Ratings => Some(Decimal::from(self.ratings)),
            Metric::SatisfactionRate => ratio(self.satisfied, self.ratings),
            Metric::RatingInviteRate => ratio(self.ratings, self.received),
            Metric::LedgerPoints | Metric::Input => None,
        }
    }
}

/// Everything the scorer needs about one agent's month.
#[derive(Debug, Clone, Default)]
pub struct AgentMonth {
    /// Agent id.
    pub agent: String,
    /// Figures from the daily metrics.
    pub figures: MonthFigures,
    /// The 日常考核 score (base ± capped entries).
    pub ledger_points: Decimal,
    /// Money the ledger's rules count (元, e.g. seed 002's −100 a case).
    pub ledger_money: Decimal,
    /// Supervisor-entered values by indicator key.
    pub inputs: BTreeMap<String, Decimal>,
}

/// One indicator's line on the score sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Indicator key.
    pub key: String,
    /// Indicator value (after dividing by the plan), `None` when undefined.
    pub value: Option<Decimal>,
    /// 1-based tier that matched (0 = `otherwise`), for tier rules.
    pub tier: Option<usize>,
    /// Points earned.
    pub points: Decimal,
    /// points × weight / 100.
    pub weighted: Decimal,
    /// An input row the supervisor never entered (and the sheet gives no default): its
    /// points are 0 and the agent's score is incomplete.
    pub missing: bool,
}

/// An agent's monthly result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentScore {
    /// Agent id.
    pub agent: String,
    /// Per-indicator lines, in sheet order.
    pub lines: Vec<Line>,
    /// Weighted total (exact), plus the ledger score − base when the sheet adds it.
    pub total: Decimal,
    /// The month's ledger score (after any ranked points).
    pub ledger_points: Decimal,
    /// Keys of input rows never entered: non-empty = incomplete.
    pub missing: Vec<String>,
    /// Grade name, if any.
    pub grade: Option<String>,
    /// Pay.
    pub pay: Pay,
    /// 1 = best total in the month.
    pub rank: usize,
    /// Consecutive months (ending with this one) below the review line.
    pub below_streak: u32,
    /// `below_streak` reached the sheet's `review.months`.
    pub review: bool,
}

/// The payslip figures, each rounded once to the fen (see the module's rounding rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pay {
    /// 底薪.
    pub base_salary: Decimal,
    /// 工龄工资.
    pub seniority: Decimal,
    /// 绩效奖金.
    pub bonus: Decimal,
    /// Rate applied to personal sales.
    pub commission_rate: Decimal,
    /// 个人销售提成 (before any × score%).
    pub personal_commission: Decimal,
    /// 公共销售提成 (before any × score%).
    pub public_commission: Decimal,
    /// 提成 actually paid (× score% when the sheet says so).
    pub commission_paid: Decimal,
    /// Money from the ledger: points below the base × per point, levels × level amount,
    /// rule money (seed 003: 每扣 1 分 10 元, 每增加 5 分一级; seed 002: 每次 −100 元).
    pub ledger_pay: Decimal,
    /// Pay levels gained above the ledger base (seed 003).
    pub pay_levels: i64,
    /// The grade's bonus (seed 002: 底级 300 … 特级 1000).
    pub grade_bonus: Decimal,
    /// Money by rank (seed 002 排序工资法).
    pub ranked_bonus: Decimal,
    /// 月薪 = 底薪 + 工龄 + 奖金 + 提成 paid + ledger pay + grade bonus + ranked bonus.
    pub salary: Decimal,
}

/// Points an indicator earns for a value, with the matched tier.
pub fn points(ind: &Indicator, value: Option<Decimal>) -> (Option<usize>, Decimal) {
    match (&ind.rule, value) {
        (Rule::Tiers { steps, otherwise }, v) => match v.and_then(|v| first_match(steps, v)) {
            Some((i, s)) => (Some(i + 1), s.value),
            None => (Some(0), *otherwise),
        },
        (Rule::Linear { min, .. }, None) => (None, *min),
        (
            Rule::Linear { base, base_points, step, per_step, below_base, below_per_step, min, max },
            Some(v),
        ) => {
            let p = if v >= *base {
                *base_points + (v - base) / step * per_step
            } else if v >= *below_base {
                *base_points
            } else {
                *base_points - (below_base - v) / step * below_per_step
            };
            (None, p.clamp(*min, *max))
        }
        (Rule::Direct { .. }, None) => (None, Decimal::ZERO),
        (Rule::Direct { scale, max }, Some(v)) => (None, (v * scale).clamp(Decimal::ZERO, *max)),
    }
}

/// The grade a total earns.
pub fn grade(sheet: &Sheet, total: Decimal) -> Option<String> {
    sheet.grades.iter().find(|(_, min)| total >= *min).map(|(n, _)| n.clone())
}

/// Whole years from `hired` to `at` (工龄).
pub fn years_between(hired: NaiveDate, at: NaiveDate) -> i64 {
    let mut y = i64::from(at.year() - hired.year());
    if (at.month(), at.day()) < (hired.month(), hired.day()) {
        y -= 1;
    }
    y.max(0)
}

/// Scores one agent's month (its rank unknown: no ranked bonus or points; see
/// [`score_all`]). `unattended_share` is the 无人接待销售额 ÷ agents (exact), `month_end`
/// dates the 工龄 and the first month.
pub fn score_agent(
    sheet: &Sheet,
    m: &AgentMonth,
    unattended_share: Decimal,
    month_end: NaiveDate,
) -> AgentScore {
    let mut lines = Vec::with_capacity(sheet.indicators.len());
    let mut total = Decimal::ZERO;
    let mut missing = Vec::new();
    for ind in &sheet.indicators {
        let mut absent = false;
        let raw = match ind.metric {
            Metric::LedgerPoints => Some(m.ledger_points),
            Metric::Input => {
                let v = m.inputs.get(&ind.key).copied().or(ind.input.as_ref().and_then(|i| i.default));
                absent = v.is_none();
                v
            }
            other => m.figures.metric(other),
        };
        if absent {
            missing.push(ind.key.clone());
        }
        let value = match ind.plan {
            Some(plan) => raw.map(|v| v / plan),
            None => raw,
        };
        let (tier, pts) = points(ind, value);
        let weighted = pts * ind.weight / Decimal::ONE_HUNDRED;
        total += weighted;
        lines.push(Line { key: ind.key.clone(), value, tier, points: pts, weighted, missing: absent });
    }
    if sheet.ledger_adds_to_total {
        total += m.ledger_points - sheet.ledger_base;
    }
    let mut s = AgentScore {
        agent: m.agent.clone(),
        lines,
        total,
        ledger_points: m.ledger_points,
        missing,
        grade: grade(sheet, total),
        pay: Pay::default(),
        rank: 0,
        below_streak: 0,
        review: false,
    };
    settle(sheet, &mut s, m, unattended_share, month_end);
    s
}

/// Scores every agent of a month: each agent's lines and total, the ranking (ties share a
/// rank), ranked ledger points (seed 004: +5/+3/+1, added after ranking so they never
/// change it; held in the ledger's range), then the payslips with the ranked bonus.
pub fn score_all(
    sheet: &Sheet,
    months: &[AgentMonth],
    unattended_share: Decimal,
    month_end: NaiveDate,
) -> Vec<AgentScore> {
    let mut scores: Vec<AgentScore> =
        months.iter().map(|m| score_agent(sheet, m, unattended_share, month_end)).collect();
    rank(&mut scores);
    if sheet.ranked_points.is_none() && sheet.ranked_bonus.is_none() {
        return scores;
    }
    let by_agent: BTreeMap<&str, &AgentMonth> = months.iter().map(|m| (m.agent.as_str(), m)).collect();
    for s in &mut scores {
        let Some(m) = by_agent.get(s.agent.as_str()) else { continue };
        let mut m = (*m).clone();
        if let Some(r) = &sheet.ranked_points {
            let extra = r.amount(s.rank, s.total);
            let sum = m.ledger_points - sheet.ledger_base + extra;
            m.ledger_points = super::ledger::capped(sheet.ledger_base, sheet.ledger_cap, sum);
            s.ledger_points = m.ledger_points;
        }
        settle(sheet, s, &m, unattended_share, month_end);
    }
    scores
}

/// Fills in the payslip of a scored agent (its rank set or 0).
fn settle(
    sheet: &Sheet,
    s: &mut AgentScore,
    m: &AgentMonth,
    unattended_share: Decimal,
    month_end: NaiveDate,
) {
    let mut pay = pay_with_ledger(
        sheet,
        &m.agent,
        s.total,
        m.figures.sales,
        unattended_share,
        month_end,
        s.ledger_points,
    );
    let (ledger_money, levels) = ledger_pay(sheet, &m.agent, s.ledger_points, m.ledger_money, month_end);
    pay.ledger_pay = ledger_money;
    pay.pay_levels = levels;
    pay.grade_bonus = fen(sheet
        .grades
        .iter()
        .zip(&sheet.grade_bonus)
        .find(|((_, min), _)| s.total >= *min)
        .map_or(Decimal::ZERO, |(_, b)| *b));
    pay.ranked_bonus = fen(match (&sheet.ranked_bonus, s.rank) {
        (Some(r), rank) if rank > 0 => r.amount(rank, s.total),
        _ => Decimal::ZERO,
    });
    pay.salary += pay.ledger_pay + pay.grade_bonus + pay.ranked_bonus;
    s.pay = pay;
}

/// Whether `month_end`'s month is the month the agent joined (`hired`).
pub fn first_month(sheet: &Sheet, agent: &str, month_end: NaiveDate) -> bool {
    sheet
        .agent_pay(agent)
        .hired
        .is_some_and(|h| (h.year(), h.month()) == (month_end.year(), month_end.month()))
}

/// Money from the ledger score and the levels gained (seed 003: each point below the base
/// costs `per_point`, each full `level_every` points above it is one level of
/// `level_amount`), plus the rules' money. None in the month the agent joined when the sheet
/// says `first_month = "score_only"`. Rounded once to the fen.
pub fn ledger_pay(
    sheet: &Sheet,
    agent: &str,
    ledger_points: Decimal,
    rule_money: Decimal,
    month_end: NaiveDate,
) -> (Decimal, i64) {
    let lp = &sheet.ledger_pay;
    if lp.first_month_score_only && first_month(sheet, agent, month_end) {
        return (fen(Decimal::ZERO), 0);
    }
    let diff = ledger_points - sheet.ledger_base;
    let below = diff.min(Decimal::ZERO) * lp.per_point;
    let levels = match lp.level_every {
        Some(every) if diff > Decimal::ZERO => (diff / every).floor(),
        _ => Decimal::ZERO,
    };
    let levels_n = i64::try_from(levels).unwrap_or(0);
    (fen(below + levels * lp.level_amount + rule_money), levels_n)
}

/// The payslip for a total, personal sales and the agent's share of unattended sales,
/// with the ledger at its base (no `bonus.ledger_factor` reduction).
pub fn pay(
    sheet: &Sheet,
    agent: &str,
    total: Decimal,
    sales: Decimal,
    unattended_share: Decimal,
    month_end: NaiveDate,
) -> Pay {
    pay_with_ledger(sheet, agent, total, sales, unattended_share, month_end, sheet.ledger_base)
}

/// The multiplier `bonus.ledger_factor` gives a ledger score (1 when none matches).
pub fn bonus_factor(sheet: &Sheet, ledger_points: Decimal) -> Decimal {
    first_match(&sheet.bonus_ledger_factor, ledger_points).map_or(Decimal::ONE, |(_, s)| s.value)
}

/// [`pay`] with the month's ledger score, which may shrink the bonus (seed 004).
pub fn pay_with_ledger(
    sheet: &Sheet,
    agent: &str,
    total: Decimal,
    sales: Decimal,
    unattended_share: Decimal,
    month_end: NaiveDate,
    ledger_points: Decimal,
) -> Pay {
    let facts = sheet.agent_pay(agent);
    let base_salary = fen(facts.base_salary.unwrap_or(sheet.base_salary));
    let years = facts.hired.map_or(0, |h| years_between(h, month_end));
    let seniority = fen(sheet.seniority_per_year * Decimal::from(years));
    let bonus = match sheet.bonus {
        Some((pool, min)) if total >= min => {
            fen(pool * total / Decimal::ONE_HUNDRED * bonus_factor(sheet, ledger_points))
        }
        _ => fen(Decimal::ZERO),
    };
    let (mut rate, mut personal_exact, mut public_exact, mut paid_exact) = Default::default();
    if let Some(c) = &sheet.commission {
        let basis = match c.basis {
            Basis::Score => total,
            Basis::Sales => sales,
        };
        rate = first_match(&c.steps, basis).map_or(Decimal::ZERO, |(_, s)| s.value);
        personal_exact = sales.max(Decimal::ZERO) * rate;
        public_exact = c.public_rate.map_or(Decimal::ZERO, |r| unattended_share * r);
        let sum: Decimal = personal_exact + public_exact;
        paid_exact = if c.times_score { sum * total / Decimal::ONE_HUNDRED } else { sum };
    }
    let commission_paid = fen(paid_exact);
    Pay {
        base_salary,
        seniority,
        bonus,
        commission_rate: rate,
        personal_commission: fen(personal_exact),
        public_commission: fen(public_exact),
        commission_paid,
        ledger_pay: fen(Decimal::ZERO),
        pay_levels: 0,
        grade_bonus: fen(Decimal::ZERO),
        ranked_bonus: fen(Decimal::ZERO),
        salary: base_salary + seniority + bonus + commission_paid,
    }
}

/// Ranks scores in place (1 = highest total; ties share a rank) and sorts them by rank.
pub fn rank(scores: &mut [AgentScore]) {
    scores.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.agent.cmp(&b.agent)));
    let mut prev: Option<(Decimal, usize)> = None;
    for (i, s) in scores.iter_mut().enumerate() {
        s.rank = match prev {
            Some((t, r)) if t == s.total => r,
            _ => i + 1,
        };
        prev = Some((s.total, s.rank));
    }
}

/// Sets the below-the-line streak: `previous` is the streak after last month.
pub fn mark_review(sheet: &Sheet, s: &mut AgentScore, previous: u32) {
    s.below_streak = if s.total < sheet.review_below { previous + 1 } else { 0 };
    s.review = s.below_streak >= sheet.review_months;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;
    use std::path::Path;

    fn seed000() -> Sheet {
        super::super::sheet::parse(
            Path::new("scoring_seed000.toml"),
            include_str!("../../rules/examples/scoring_seed000.toml"),
        )
        .unwrap()
    }

    fn ind<'a>(s: &'a Sheet, key: &str) -> &'a Indicator {
        s.indicators.iter().find(|i| i.key == key).unwrap()
    }

    /// Seed 003 附件 2: every tier boundary, just below and just above.
    #[test]
    fn seed_003_tiers_at_and_around_boundaries() {
        let s = Sheet::default();
        let cases: &[(&str, Decimal, Decimal)] = &[
            ("target_completion", dec!(1.00), dec!(100)),
            ("target_completion", dec!(1.50), dec!(100)),
            ("target_completion", dec!(0.9999), dec!(85)),
            ("target_completion", dec!(0.90), dec!(85)),
            ("target_completion", dec!(0.8999), dec!(70)),
            ("target_completion", dec!(0.80), dec!(70)),
            ("target_completion", dec!(0.7999), dec!(55)),
            ("target_completion", dec!(0.70), dec!(55)),
            ("target_completion", dec!(0.6999), dec!(40)),
            ("target_completion", dec!(0.60), dec!(40)),
            ("target_completion", dec!(0.5999), dec!(25)),
            ("target_completion", dec!(0.50), dec!(25)),
            ("target_completion", dec!(0.4999), dec!(10)),
            ("target_completion", dec!(0.40), dec!(10)),
            ("target_completion", dec!(0.3999), dec!(0)),
            ("target_completion", dec!(0), dec!(0)),
            ("consult_conversion", dec!(0.50), dec!(100)),
            ("consult_conversion", dec!(0.4999), dec!(80)),
            ("consult_conversion", dec!(0.45), dec!(80)),
            ("consult_conversion", dec!(0.4499), dec!(60)),
            ("consult_conversion", dec!(0.40), dec!(60)),
            ("consult_conversion", dec!(0.3999), dec!(0)),
            ("order_success", dec!(0.95), dec!(100)),
            ("order_success", dec!(0.9499), dec!(80)),
            ("order_success", dec!(0.90), dec!(80)),
            ("order_success", dec!(0.8999), dec!(60)),
            ("order_success", dec!(0.85), dec!(60)),
            ("order_success", dec!(0.8499), dec!(0)),
            ("avg_order_value", dec!(200), dec!(100)),
            ("avg_order_value", dec!(199.99), dec!(80)),
            ("avg_order_value", dec!(180), dec!(80)),
            ("avg_order_value", dec!(179.99), dec!(60)),
            ("avg_order_value", dec!(160), dec!(60)),
            ("avg_order_value", dec!(159.99), dec!(0)),
            ("reply_rate", dec!(0.98), dec!(100)),
            ("reply_rate", dec!(0.9799), dec!(80)),
            ("reply_rate", dec!(0.95), dec!(80)),
            ("reply_rate", dec!(0.9499), dec!(60)),
            ("reply_rate", dec!(0.92), dec!(60)),
            ("reply_rate", dec!(0.9199), dec!(0)),
            ("response_time", dec!(25), dec!(100)),
            ("response_time", dec!(25.001), dec!(80)),
            ("response_time", dec!(30), dec!(80)),
            ("response_time", dec!(30.001), dec!(60)),
            ("response_time", dec!(40), dec!(60)),
            ("response_time", dec!(40.001), dec!(0)),
            ("response_time", dec!(0), dec!(100)),
            ("assist_follow", dec!(300), dec!(100)),
            ("assist_follow", dec!(299.99), dec!(80)),
            ("assist_follow", dec!(200), dec!(80)),
            ("assist_follow", dec!(199.99), dec!(60)),
            ("assist_follow", dec!(100), dec!(60)),
            ("assist_follow", dec!(99.99), dec!(0)),
            ("execution", dec!(100), dec!(100)),
            ("execution", dec!(99), dec!(80)),
            ("execution", dec!(80), dec!(80)),
            ("execution", dec!(79), dec!(60)),
            ("execution", dec!(60), dec!(60)),
            ("execution", dec!(59), dec!(0)),
        ];
        for &(key, value, want) in cases {
            assert_eq!(points(ind(&s, key), Some(value)).1, want, "{key} at {value}");
        }
        // No buyers asked: the ratio is undefined and earns the `otherwise` points.
        assert_eq!(points(ind(&s, "consult_conversion"), None), (Some(0), dec!(0)));
    }

    #[test]
    fn plan_divides_sales_for_target_completion() {
        let s = Sheet::default();
        let m = AgentMonth {
            agent: "a".into(),
            figures: MonthFigures { sales: dec!(9000), ..Default::default() },
            ledger_points: dec!(80),
            ..Default::default()
        };
        let r = score_agent(&s, &m, Decimal::ZERO, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
        assert_eq!(r.lines[0].value, Some(dec!(0.9)));
        assert_eq!(r.lines[0].points, dec!(85));
        // 85 × 22% + 执行力 80 × 30% = 18.7 + 24
        assert_eq!(r.total, dec!(42.7));
    }

    /// Seed 003: >95 → 3%, 85–95 → 2%, 70–85 → 1%, <70 → none, bonus 300 × score / 100.
    #[test]
    fn seed_003_commission_and_bonus_at_95_85_70() {
        let s = Sheet::default();
        let end = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let cases = [
            (dec!(100), dec!(0.03), dec!(300.00), dec!(300.00)),
            (dec!(95.01), dec!(0.03), dec!(300.00), dec!(285.03)),
            (dec!(95), dec!(0.02), dec!(200.00), dec!(285.00)),
            (dec!(85.5), dec!(0.02), dec!(200.00), dec!(256.50)),
            (dec!(85), dec!(0.02), dec!(200.00), dec!(255.00)),
            (dec!(84.99), dec!(0.01), dec!(100.00), dec!(254.97)),
            (dec!(70), dec!(0.01), dec!(100.00), dec!(210.00)),
            (dec!(69.99), dec!(0), dec!(0), dec!(0)),
            (dec!(0), dec!(0), dec!(0), dec!(0)),
        ];
        for (total, rate, commission, bonus) in cases {
            let p = pay(&s, "a", total, dec!(10000), Decimal::ZERO, end);
            assert_eq!(p.commission_rate, rate, "score {total}");
            assert_eq!(p.commission_paid, commission, "score {total}");
            assert_eq!(p.bonus, bonus, "score {total}");
            assert_eq!(p.salary, commission + bonus, "score {total}");
        }
    }

    #[test]
    fn grades_at_90_80_70() {
        let s = Sheet::default();
        let cases = [
            (dec!(100), Some("高级客服")),
            (dec!(90), Some("高级客服")),
            (dec!(89.99), Some("中级客服")),
            (dec!(80), Some("中级客服")),
            (dec!(79.99), Some("初级客服")),
            (dec!(70), Some("初级客服")),
            (dec!(69.99), None),
        ];
        for (t, want) in cases {
            assert_eq!(grade(&s, t).as_deref(), want, "{t}");
        }
    }

    /// Seed 000 §三: 80/100×20%=16, 90%×10%=9, 85%×10%=8.5, 90%×10%=9, 80%×10%=8,
    /// 90%×10%=9, 85%×10%=8.5 — 68 in all, the 销售额 row (20%) being the rest.
    #[test]
    fn seed_000_worked_example_totals() {
        let s = seed000();
        let inputs = [
            ("service_rating", dec!(80)),
            ("resolution_rate", dec!(0.90)),
            ("efficiency", dec!(0.90)),
            ("teamwork", dec!(0.80)),
            ("growth", dec!(0.90)),
        ];
        let mut m = AgentMonth {
            agent: "a".into(),
            inputs: inputs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            // 其他可衡量的行业标准 85%: conversion 39% = 34% base (60) + 5 points × 5 = 85.
            // 客户满意度 85%: 17 of 20 buyers' ratings 满意 or 非常满意.
            figures: MonthFigures {
                consulted: 100,
                ordered: 39,
                ratings: 20,
                satisfied: 17,
                ..Default::default()
            },
            ..Default::default()
        };
        let end = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let r = score_agent(&s, &m, Decimal::ZERO, end);
        let weighted: Vec<_> = r.lines.iter().map(|l| (l.key.as_str(), l.weighted)).collect();
        assert_eq!(
            weighted,
            [
                ("service_rating", dec!(16)),
                ("resolution_rate", dec!(9)),
                ("sales", dec!(0)),
                ("satisfaction", dec!(8.5)),
                ("efficiency", dec!(9)),
                ("teamwork", dec!(8)),
                ("growth", dec!(9)),
                ("conversion", dec!(8.5)),
            ]
        );
        assert_eq!(r.total, dec!(68));
        m.figures.sales = dec!(60001);
        assert_eq!(score_agent(&s, &m, Decimal::ZERO, end).total, dec!(88));
    }

    /// Seed 000 咨询转化率: base 34%, ±5 points per percentage point, capped 0…100.
    #[test]
    fn seed_000_linear_conversion_rule() {
        let s = seed000();
        let i = ind(&s, "conversion");
        let cases = [
            (dec!(0.34), dec!(60)),
            (dec!(0.35), dec!(65)),
            (dec!(0.345), dec!(62.5)),
            (dec!(0.33), dec!(55)),
            (dec!(0.42), dec!(100)),
            (dec!(0.60), dec!(100)),
            (dec!(0.22), dec!(0)),
            (dec!(0.10), dec!(0)),
        ];
        for (v, want) in cases {
            assert_eq!(points(i, Some(v)).1, want, "{v}");
        }
    }

    /// Seed 000 提成 by monthly sales: >30000 1%, >50000 1.2%, >60000 1.3%, of the whole amount.
    #[test]
    fn seed_000_commission_by_sales() {
        let s = seed000();
        let end = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let cases = [
            (dec!(30000), dec!(0), dec!(0)),
            (dec!(30001), dec!(0.01), dec!(300.01)),
            (dec!(50000), dec!(0.01), dec!(500.00)),
            (dec!(50001), dec!(0.012), dec!(600.01)),
            (dec!(60000), dec!(0.012), dec!(720.00)),
            (dec!(60001), dec!(0.013), dec!(780.01)),
            (dec!(80000), dec!(0.013), dec!(1040.00)),
        ];
        for (sales, rate, personal) in cases {
            let p = pay(&s, "a", dec!(100), sales, Decimal::ZERO, end);
            assert_eq!(p.commission_rate, rate, "{sales}");
            assert_eq!(p.personal_commission, personal, "{sales}");
        }
    }

    /// 公共销售提成 = 无人接待销售额 × 0.5% ÷ 客服人数; 月薪 = 底薪 + 提成 × 得分% + 工龄.
    #[test]
    fn seed_000_public_commission_and_salary_to_the_fen() {
        let mut s = seed000();
        s.agents.push(crate::scoring::sheet::AgentPay {
            id: "小美".into(),
            name: None,
            base_salary: Some(dec!(2800)),
            hired: NaiveDate::from_ymd_opt(2023, 11, 30),
        });
        let end = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        // 无人接待 40 000 shared by 3 agents: 13 333.33… each, × 0.5% = 66.666… → 66.67.
        let share = dec!(40000) / dec!(3);
        let p = pay(&s, "小美", dec!(88.5), dec!(52345.67), share, end);
        assert_eq!(p.base_salary, dec!(2800.00));
        assert_eq!(p.seniority, dec!(300.00)); // three full years on 2026-11-30
        assert_eq!(p.commission_rate, dec!(0.012));
        assert_eq!(p.personal_commission, dec!(628.15)); // 628.14804
        assert_eq!(p.public_commission, dec!(66.67));
        // (628.14804 + 66.6666…) × 88.5% = 614.9110… → 614.91 (rounded once, not from 628.15 + 66.67)
        assert_eq!(p.commission_paid, dec!(614.91));
        assert_eq!(p.salary, dec!(3714.91));
        assert_eq!(p.salary, p.base_salary + p.seniority + p.bonus + p.commission_paid);
        // one day short of three years: two years of 工龄
        assert_eq!(years_between(NaiveDate::from_ymd_opt(2023, 12, 1).unwrap(), end), 2);
    }

    /// Seed 004: 30 points a month; below 25 → −10% bonus, below 20 → −30%, below 15 → none.
    #[test]
    fn seed_004_bonus_shrinks_with_the_ledger() {
        let s = super::super::sheet::parse(
            Path::new("scoring_seed004.toml"),
            include_str!("../../rules/examples/scoring_seed004.toml"),
        )
        .unwrap();
        assert_eq!(s.ledger_base, dec!(30));
        let end = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let cases = [
            (dec!(30), dec!(900.00)),
            (dec!(25), dec!(900.00)),
            (dec!(24), dec!(810.00)),
            (dec!(20), dec!(810.00)),
            (dec!(19.5), dec!(630.00)),
            (dec!(15), dec!(630.00)),
            (dec!(14), dec!(0.00)),
        ];
        for (ledger, bonus) in cases {
            let p = pay_with_ledger(&s, "a", dec!(90), Decimal::ZERO, Decimal::ZERO, end, ledger);
            assert_eq!(p.bonus, bonus, "ledger {ledger}");
        }
    }

    #[test]
    fn fen_rounds_half_up_once() {
        assert_eq!(fen(dec!(0.005)), dec!(0.01));
        assert_eq!(fen(dec!(0.0049999)), dec!(0.00));
        assert_eq!(fen(dec!(-0.005)), dec!(-0.01));
        assert_eq!(fen(dec!(2.675)), dec!(2.68));
    }

    #[test]
    fn ranks_share_ties_and_review_needs_three_months() {
        let s = Sheet::default();
        let mk = |a: &str, t: Decimal| AgentScore {
            agent: a.into(),
            lines: vec![],
            total: t,
            ledger_points: Decimal::ZERO,
            missing: vec![],
            grade: None,
            pay: Pay::default(),
            rank: 0,
            below_streak: 0,
            review: false,
        };
        let mut v = vec![mk("c", dec!(70)), mk("a", dec!(90)), mk("b", dec!(90))];
        rank(&mut v);
        let got: Vec<_> = v.iter().map(|s| (s.agent.as_str(), s.rank)).collect();
        assert_eq!(got, [("a", 1), ("b", 1), ("c", 3)]);
        let mut low = mk("d", dec!(69.99));
        mark_review(&s, &mut low, 1);
        assert_eq!((low.below_streak, low.review), (2, false));
        mark_review(&s, &mut low, 2);
        assert_eq!((low.below_streak, low.review), (3, true));
        let mut ok = mk("e", dec!(70));
        mark_review(&s, &mut ok, 2);
        assert_eq!((ok.below_streak, ok.review), (0, false));
    }
}

//! Keyword auto-answers (千牛 配置回复) in `replies/auto.toml`.
//!
//! Each rule has a Qianniu category, triggers (any/all keywords, a regex, exclusions),
//! one or more answer variants and a priority. The file is compiled once: every keyword
//! of every rule goes into one Aho-Corasick automaton, and only the rules whose keywords
//! occur (or whose regex-only trigger matches, through one `RegexSet`) are looked at, so
//! a message costs one scan however many rules there are.

use std::collections::HashMap;
use std::path::Path;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexSet};
use serde::Deserialize;
use toml::Spanned;

use super::schedule::{RawWindow, Window};
use super::similar::{Scratch, SimilarIndex};
use super::vars::Template;
use crate::event::OrderStatus;
use crate::rules::{DataError, line_of, parse_toml, read_or_default};
use crate::time::Millis;

/// File name inside the replies folder.
pub const FILE: &str = "auto.toml";
/// The shipped rules, served when the replies folder has no `auto.toml`.
pub const DEFAULT: &str = include_str!("../../replies/auto.toml");

/// Qianniu's 配置回复 categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum Category {
    /// 自定义问题: the shop's own questions.
    #[serde(rename = "自定义问题")]
    Custom,
    /// 店铺数字问题: questions answered by number (the buyer sends `1`, `2` …).
    #[serde(rename = "店铺数字问题")]
    Numbered,
    /// 问候语: greetings.
    #[serde(rename = "问候语")]
    Greeting,
    /// 导购: sizing, products, recommendations.
    #[serde(rename = "导购")]
    Guide,
    /// 活动优惠: promotions, coupons, the current event.
    #[serde(rename = "活动优惠")]
    Promotion,
    /// 发货查件: shipping and tracking.
    #[serde(rename = "发货查件")]
    Shipping,
    /// 售后: returns, exchanges, complaints.
    #[serde(rename = "售后")]
    AfterSale,
}

impl Category {
    /// The Qianniu name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Custom => "自定义问题",
            Self::Numbered => "店铺数字问题",
            Self::Greeting => "问候语",
            Self::Guide => "导购",
            Self::Promotion => "活动优惠",
            Self::Shipping => "发货查件",
            Self::AfterSale => "售后",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// Stable name, used for hit counts.
    id: Spanned<String>,
    category: Category,
    /// The buyer question this rule answers, as the shop would list it.
    question: String,
    /// Matches when any of these occurs.
    #[serde(default)]
    any: Vec<String>,
    /// Matches only when all of these occur.
    #[serde(default)]
    all: Vec<String>,
    /// Matches only when this regex matches.
    regex: Option<Spanned<String>>,
    /// Never matches when one of these occurs.
    #[serde(default)]
    not: Vec<String>,
    /// Answer variants, used in turn.
    answers: Spanned<Vec<Spanned<String>>>,
    /// Higher wins when several rules match; ties go to the earlier rule.
    #[serde(default)]
    priority: i32,
    /// Example questions (相似问法): a question no keyword rule catches is answered by the
    /// rule whose example it is closest to, when close enough.
    #[serde(default)]
    examples: Vec<String>,
    /// Only for this shop; absent = every shop.
    shop: Option<String>,
    /// Only for this agent's buyers; absent = every agent.
    agent: Option<String>,
    /// From (inclusive), `YYYY-MM-DD` or `YYYY-MM-DD HH:MM`, Asia/Shanghai.
    start: Option<Spanned<String>>,
    /// Until (a date alone: through that day), same forms.
    end: Option<Spanned<String>>,
    /// Only on these weekdays, 1 = Monday … 7 = Sunday.
    weekdays: Option<Spanned<Vec<u8>>>,
    /// Only at these daily hours, `HH:MM-HH:MM`.
    hours: Option<Spanned<String>>,
    /// Only when the buyer's latest order is in one of these states: `created`, `paid`,
    /// `shipped`, `refunded`, `closed`, or `none` (no order seen).
    order: Option<Spanned<Vec<String>>>,
}

/// The states a rule's `order` condition admits, as bits (see [`order_bit`]).
fn order_bits(file: &Path, text: &str, raw: &Spanned<Vec<String>>) -> Result<u8, DataError> {
    let mut bits = 0;
    for s in raw.get_ref() {
        bits |= match s.as_str() {
            "created" => order_bit(Some(OrderStatus::Created)),
            "paid" => order_bit(Some(OrderStatus::Paid)),
            "shipped" => order_bit(Some(OrderStatus::Shipped)),
            "refunded" => order_bit(Some(OrderStatus::Refunded)),
            "closed" => order_bit(Some(OrderStatus::Closed)),
            "none" => order_bit(None),
            other => {
                return Err(DataError::at(
                    file,
                    Some(line_of(text, raw.span().start)),
                    format!(
                        "order state `{other}`: expected created, paid, shipped, refunded, closed or none"
                    ),
                ));
            }
        };
    }
    Ok(bits)
}

/// One bit per order state, and one for "no order".
fn order_bit(status: Option<OrderStatus>) -> u8 {
    match status {
        Some(OrderStatus::Created) => 1,
        Some(OrderStatus::Paid) => 2,
        Some(OrderStatus::Shipped) => 4,
        Some(OrderStatus::Refunded) => 8,
        Some(OrderStatus::Closed) => 16,
        None => 32,
    }
}

/// Who asks, when, and about which order: what decides whether a rule may answer.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The shop.
    pub shop: &'a str,
    /// The conversation's agent.
    pub agent: &'a str,
    /// Event time of the question.
    pub ts: Millis,
    /// State of the buyer's latest order, `None` when no order was seen.
    pub order: Option<OrderStatus>,
}

/// How a rule was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum How {
    /// Its keywords or regex matched.
    Keyword,
    /// The question is this similar (0 to 1) to one of its examples.
    Similar(f32),
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable name.
    pub id: String,
    /// Qianniu category.
    pub category: Category,
    /// The question as listed.
    pub question: String,
    /// Answer variants.
    pub answers: Vec<Template>,
    /// Priority.
    pub priority: i32,
    /// Only for this shop (`None`: every shop).
    pub shop: Option<String>,
    /// Only for this agent (`None`: every agent).
    pub agent: Option<String>,
    /// When the rule answers.
    pub window: Window,
    /// Order states admitted (bits of [`order_bit`]); 0 = any.
    order: u8,
    /// Example questions.
    pub examples: Vec<String>,
    any: Vec<u32>,
    all: Vec<u32>,
    not: Vec<u32>,
    regex: Option<Regex>,
}

/// The compiled rule set.
#[derive(Debug, Clone, Default)]
pub struct AutoRules {
    rules: Vec<Rule>,
    keywords: Option<AhoCorasick>,
    /// For each keyword, the rules that use it in `any` or `all`.
    postings: Vec<Vec<u32>>,
    /// Regexes of rules with no keyword trigger, and which rule each belongs to.
    regex_only: Option<RegexSet>,
    regex_only_rule: Vec<u32>,
    similar: SimilarIndex,
}

impl AutoRules {
    /// Every rule, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether rule `r` may answer `ask`: its shop, agent, window and order condition.
    pub fn allowed(&self, r: usize, ask: &Ask<'_>) -> bool {
        let rule = &self.rules[r];
        rule.shop.as_deref().is_none_or(|s| s == ask.shop)
            && rule.agent.as_deref().is_none_or(|a| a == ask.agent)
            && rule.window.contains(ask.ts)
            && (rule.order == 0 || rule.order & order_bit(ask.order) != 0)
    }

    /// The rule that answers `text` for `ask`: among keyword rules allowed for it, the most
    /// specific (an agent's own rule, then the shop's, then everyone's), then the highest
    /// priority, then the earliest; else, when none matches, the allowed rule with the
    /// example most similar to `text`, if at least `threshold` similar.
    pub fn find(
        &self,
        text: &str,
        ask: &Ask<'_>,
        threshold: f32,
        scratch: &mut Scratch,
    ) -> Option<(usize, How)> {
        if let Some(r) = self.best_where(text, |r| self.allowed(r, ask)) {
            return Some((r, How::Keyword));
        }
        let m = self.similar.best(text, scratch, threshold, |r| self.allowed(r as usize, ask))?;
        Some((m.rule as usize, How::Similar(m.score)))
    }

    /// The similarity index of every rule's examples.
    pub fn similar(&self) -> &SimilarIndex {
        &self.similar
    }

    /// The index of the best keyword rule, ignoring shop, agent, window and order
    /// conditions: highest priority, then earliest.
    pub fn best(&self, text: &str) -> Option<usize> {
        self.best_where(text, |_| true)
    }

    fn best_where(&self, text: &str, allowed: impl Fn(usize) -> bool) -> Option<usize> {
        let mut hits: Vec<u32> = Vec::new();
        let mut candidates: Vec<u32> = Vec::new();
        if let Some(ac) = &self.keywords {
            for m in ac.find_overlapping_iter(text) {
                let k = m.pattern().as_u32();
                if !hits.contains(&k) {
                    hits.push(k);
                    candidates.extend_from_slice(&self.postings[k as usize]);
                }
            }
        }
        if let Some(set) = &self.regex_only {
            candidates.extend(set.matches(text).iter().map(|i| self.regex_only_rule[i]));
        }
        let mut best: Option<u32> = None;
        for &c in &candidates {
            if best.is_some_and(|b| !self.beats(c, b))
                || !self.matches(c, &hits, text)
                || !allowed(c as usize)
            {
                continue;
            }
            best = Some(c);
        }
        best.map(|b| b as usize)
    }

    fn beats(&self, a: u32, b: u32) -> bool {
        let (ra, rb) = (&self.rules[a as usize], &self.rules[b as usize]);
        let key = |r: &Rule| (r.agent.is_some(), r.shop.is_some(), r.priority);
        key(ra) > key(rb) || (key(ra) == key(rb) && a < b)
    }

    fn matches(&self, r: u32, hits: &[u32], text: &str) -> bool {
        let r = &self.rules[r as usize];
        (r.any.is_empty() || r.any.iter().any(|k| hits.contains(k)))
            && r.all.iter().all(|k| hits.contains(k))
            && !r.not.iter().any(|k| hits.contains(k))
            && r.regex.as_ref().is_none_or(|re| re.is_match(text))
    }
}

/// Reads `auto.toml` from `dir`, or the embedded default.
pub fn load(dir: Option<&Path>) -> Result<AutoRules, DataError> {
    let (path, text) = read_or_default(dir, FILE, DEFAULT)?;
    parse(&path, &text)
}

/// Parses, validates and compiles the rules; `file` is used in error messages.
pub fn parse(file: &Path, text: &str) -> Result<AutoRules, DataError> {
    let raw: RawFile = parse_toml(file, text)?;
    let mut keyword_ids: HashMap<String, u32> = HashMap::new();
    let mut keywords: Vec<String> = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut rules = Vec::with_capacity(raw.rule.len());
    for r in raw.rule {
        let line = line_of(text, r.id.span().start);
        let err = |line: usize, msg: String| DataError::at(file, Some(line), msg);
        let id = r.id.into_inner();
        if id.trim().is_empty() {
            return Err(err(line, "rule id is empty".into()));
        }
        // The same id may serve several shops or agents (each its own answer).
        let scope_key =
            format!("{id}\u{0}{}\u{0}{}", r.shop.as_deref().unwrap_or(""), r.agent.as_deref().unwrap_or(""));
        if let Some(first) = ids.insert(scope_key, line) {
            return Err(err(line, format!("duplicate rule id `{id}` (first on line {first})")));
        }
        let window = Window::build(
            file,
            text,
            RawWindow { start: r.start, end: r.end, weekdays: r.weekdays, hours: r.hours },
        )?;
        let order = r.order.as_ref().map(|o| order_bits(file, text, o)).transpose()?.unwrap_or(0);
        let examples: Vec<String> =
            r.examples.iter().map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect();
        let mut intern = |words: &[String], field: &str| -> Result<Vec<u32>, DataError> {
            let mut out = Vec::new();
            for w in words {
                let w = w.trim().to_lowercase();
                if w.is_empty() {
                    return Err(err(line, format!("rule `{id}`: empty keyword in `{field}`")));
                }
                let next = keywords.len() as u32;
                let k = *keyword_ids.entry(w.clone()).or_insert_with(|| {
                    keywords.push(w);
                    next
                });
                if !out.contains(&k) {
                    out.push(k);
                }
            }
            Ok(out)
        };
        let any = intern(&r.any, "any")?;
        let all = intern(&r.all, "all")?;
        let not = intern(&r.not, "not")?;
        let regex = match r.regex {
            None => None,
            Some(re) => {
                let at = line_of(text, re.span().start);
                Some(Regex::new(re.get_ref()).map_err(|e| err(at, format!("rule `{id}`: bad regex: {e}")))?)
            }
        };
        if any.is_empty() && all.is_empty() && regex.is_none() && examples.is_empty() {
            return Err(err(
                line,
                format!("rule `{id}` has no trigger: give `any`, `all`, `regex` or `examples`"),
            ));
        }
        let answers_line = line_of(text, r.answers.span().start);
        if r.answers.get_ref().is_empty() {
            return Err(err(answers_line, format!("rule `{id}` has no answers")));
        }
        let mut answers = Vec::new();
        for a in r.answers.into_inner() {
            let at = line_of(text, a.span().start);
            if a.get_ref().trim().is_empty() {
                return Err(err(at, format!("rule `{id}`: empty answer")));
            }
            answers.push(Template::parse(a.get_ref()).map_err(|m| err(at, format!("rule `{id}`: {m}")))?);
        }
        rules.push(Rule {
            id,
            category: r.category,
            question: r.question,
            answers,
            priority: r.priority,
            shop: r.shop,
            agent: r.agent,
            window,
            order,
            examples,
            any,
            all,
            not,
            regex,
        });
    }
    compile(file, rules, keywords)
}

fn compile(file: &Path, rules: Vec<Rule>, keywords: Vec<String>) -> Result<AutoRules, DataError> {
    let mut postings = vec![Vec::new(); keywords.len()];
    let mut regex_only = Vec::new();
    let mut regex_only_rule = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        for &k in r.any.iter().chain(&r.all) {
            postings[k as usize].push(i as u32);
        }
        if let (true, true, Some(re)) = (r.any.is_empty(), r.all.is_empty(), &r.regex) {
            regex_only.push(re.as_str().to_string());
            regex_only_rule.push(i as u32);
        }
    }
    let keywords = if keywords.is_empty() {
        None
    } else {
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(true)
            .build(&keywords)
            .map_err(|e| DataError::at(file, None, format!("cannot compile keywords: {e}")))?;
        Some(ac)
    };
    let regex_only = if regex_only.is_empty() {
        None
    } else {
        Some(
            RegexSet::new(&regex_only)
                .map_err(|e| DataError::at(file, None, format!("cannot compile regexes: {e}")))?,
        )
    };
    let similar = SimilarIndex::build(
        rules.iter().enumerate().flat_map(|(i, r)| r.examples.iter().map(move |e| (i as u32, e.as_str()))),
    );
    Ok(AutoRules { rules, keywords, postings, regex_only, regex_only_rule, similar })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[[rule]]
id = "express"
category = "发货查件"
question = "发什么快递"
any = ["快递", "物流"]
not = ["退货"]
answers = ["默认中通快递", "中通,可补差价发顺丰"]

[[rule]]
id = "sf"
category = "发货查件"
question = "能发顺丰吗"
all = ["顺丰", "快递"]
priority = 5
answers = ["顺丰需补差价10元"]

[[rule]]
id = "return-express"
category = "售后"
question = "退货用什么快递"
all = ["退货"]
answers = ["退货请用中通,运费险会自动理赔"]

[[rule]]
id = "menu-1"
category = "店铺数字问题"
question = "1"
regex = "^\\s*1\\s*$"
answers = ["1. 聚划算活动时间:11月1日0点至3日24点"]

[[rule]]
id = "size"
category = "导购"
question = "尺码怎么选"
any = ["尺码", "SIZE"]
regex = "\\d+"
answers = ["身高{买家}"]
"#;

    #[test]
    fn picks_by_trigger_priority_and_exclusion() {
        let r = parse(Path::new("auto.toml"), RULES).unwrap();
        let best = |t: &str| r.best(t).map(|i| r.rules()[i].id.as_str());
        let cases = [
            ("亲 发什么快递呀", Some("express")),
            ("物流到哪了", Some("express")),
            ("能发顺丰快递吗", Some("sf")),
            ("顺丰可以吗", None),
            ("退货用什么快递", Some("return-express")),
            (" 1 ", Some("menu-1")),
            ("12", None),
            ("size 多大", None),
            ("SiZe 160 选哪个", Some("size")),
            ("你好", None),
        ];
        for (text, want) in cases {
            assert_eq!(best(text), want, "{text}");
        }
    }

    #[test]
    fn errors_name_file_line_and_reason() {
        let p = Path::new("replies/auto.toml");
        let cases = [
            (
                "[[rule]]\nid=\"a\"\ncategory=\"闲聊\"\nquestion=\"q\"\nany=[\"x\"]\nanswers=[\"y\"]\n",
                3,
                "unknown variant",
            ),
            ("[[rule]]\nid=\"a\"\ncategory=\"售后\"\nquestion=\"q\"\nanswers=[\"y\"]\n", 2, "no trigger"),
            (
                "[[rule]]\nid=\"a\"\ncategory=\"售后\"\nquestion=\"q\"\nany=[\"x\"]\nanswers=[\n\"ok\",\n\"{颜色}\"]\n",
                8,
                "unknown variable",
            ),
            (
                "[[rule]]\nid=\"a\"\ncategory=\"售后\"\nquestion=\"q\"\nregex=\"(\"\nanswers=[\"y\"]\n",
                5,
                "bad regex",
            ),
            (
                "[[rule]]\nid=\"a\"\ncategory=\"售后\"\nquestion=\"q\"\nany=[\"x\"]\nanswers=[\"y\"]\n[[rule]]\nid=\"a\"\ncategory=\"售后\"\nquestion=\"q\"\nany=[\"x\"]\nanswers=[\"y\"]\n",
                8,
                "duplicate rule id",
            ),
            (
                "[[rule]]\nid=\"a\"\ncategory=\"售后\"\nquestion=\"q\"\nany=[\"x\"]\nanswers=[]\n",
                6,
                "no answers",
            ),
        ];
        for (text, line, want) in cases {
            let e = parse(p, text).unwrap_err();
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.message.contains(want), "{e}");
        }
    }

    #[test]
    fn shipped_rules_cover_every_category_and_thirty_questions() {
        let r = load(None).unwrap();
        assert!(r.rules().len() >= 30, "{} rules", r.rules().len());
        for c in [
            Category::Custom,
            Category::Numbered,
            Category::Greeting,
            Category::Guide,
            Category::Promotion,
            Category::Shipping,
            Category::AfterSale,
        ] {
            assert!(r.rules().iter().any(|x| x.category == c), "no {}", c.name());
        }
        let i = r.best("发什么快递").unwrap();
        assert_eq!(r.rules()[i].category, Category::Shipping);
    }
}

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

use super::vars::Template;
use crate::rules::{DataError, line_of, parse_toml, read_or_default};

/// File name inside the replies folder.
pub const FILE: &str = "auto.toml";
const DEFAULT: &str = include_str!("../../replies/auto.toml");

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
}

impl AutoRules {
    /// Every rule, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The index of the best matching rule: highest priority, then earliest.
    pub fn best(&self, text: &str) -> Option<usize> {
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
            if best.is_some_and(|b| !self.beats(c, b)) || !self.matches(c, &hits, text) {
                continue;
            }
            best = Some(c);
        }
        best.map(|b| b as usize)
    }

    fn beats(&self, a: u32, b: u32) -> bool {
        let (ra, rb) = (&self.rules[a as usize], &self.rules[b as usize]);
        ra.priority > rb.priority || (ra.priority == rb.priority && a < b)
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
        if let Some(first) = ids.insert(id.clone(), line) {
            return Err(err(line, format!("duplicate rule id `{id}` (first on line {first})")));
        }
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
        if any.is_empty() && all.is_empty() && regex.is_none() {
            return Err(err(line, format!("rule `{id}` has no trigger: give `any`, `all` or `regex`")));
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
    Ok(AutoRules { rules, keywords, postings, regex_only, regex_only_rule })
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

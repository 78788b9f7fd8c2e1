//! The quick-reply book (快捷短语): team phrases and each agent's personal phrases, with
//! groups and shortcut codes, in `replies/quick.toml`.
//!
//! Lookup is ranked: code prefix, then code contains, then text contains. The book is
//! indexed once when it loads (lower-cased codes sorted for prefix search, all codes and
//! all texts each joined into one string searched in a single pass), so a lookup over
//! thousands of phrases stays far below a millisecond.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::rules::{DataError, line_of, parse_toml, read_or_default};

/// File name inside the replies folder.
pub const FILE: &str = "quick.toml";
const DEFAULT: &str = include_str!("../../replies/quick.toml");

/// Qianniu accepts shortcut codes of at most this many characters.
pub const MAX_CODE_CHARS: usize = 4;

/// Separates entries in the joined search strings; never part of a query.
const SEP: char = '\u{0}';

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBook {
    #[serde(default)]
    phrase: Vec<RawPhrase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhrase {
    /// The agent whose personal phrase this is; absent for a team phrase.
    agent: Option<String>,
    /// Shortcut code (快捷编码); may be empty.
    #[serde(default)]
    code: String,
    /// The phrase; may contain line breaks and variables.
    text: Spanned<String>,
    /// Group (分组); empty means ungrouped.
    #[serde(default)]
    group: String,
}

/// The shape written back by an import.
#[derive(Serialize)]
struct OutBook<'a> {
    phrase: Vec<OutPhrase<'a>>,
}

#[derive(Serialize)]
struct OutPhrase<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    code: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    text: &'a str,
}

/// One quick phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// Owner of a personal phrase; `None` for the team set.
    pub agent: Option<String>,
    /// Shortcut code, possibly empty.
    pub code: String,
    /// Phrase text, kept verbatim (variables are filled in by the agent's client).
    pub text: String,
    /// Group; empty means ungrouped.
    pub group: String,
}

/// How a phrase matched a query; lower ranks sort first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rank {
    /// The code starts with the query.
    CodePrefix,
    /// The code contains the query elsewhere.
    CodeContains,
    /// The text contains the query.
    TextContains,
}

/// One lookup result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit<'a> {
    /// The phrase.
    pub phrase: &'a Phrase,
    /// Why it matched.
    pub rank: Rank,
}

/// The loaded, indexed book.
///
/// Within a rank, results come personal first, then shorter codes, then file order. That
/// order does not depend on the query (an agent sees only their own personal phrases), so
/// the joined search strings are laid out in it: a scan yields results already sorted and
/// stops as soon as it has enough.
#[derive(Debug, Clone, Default)]
pub struct QuickBook {
    phrases: Vec<Phrase>,
    /// Phrase indexes in result order.
    order: Vec<u32>,
    /// Positions in `order`, sorted by lower-cased code, for prefix search.
    by_code: Vec<u32>,
    /// Lower-cased codes, by position in `order`.
    codes_lower: Vec<String>,
    /// All lower-cased codes joined by [`SEP`] in result order, and where each starts.
    codes_joined: String,
    code_starts: Vec<usize>,
    /// All lower-cased texts joined by [`SEP`] in result order, and where each starts.
    texts_joined: String,
    text_starts: Vec<usize>,
    /// Phrases without variables by exact text, to recognise an agent sending one.
    exact: HashMap<String, Vec<u32>>,
    /// Phrases with variables, as the literal pieces around them.
    templated: Vec<(u32, Vec<String>)>,
}

impl QuickBook {
    /// Builds the book and its index.
    pub fn new(phrases: Vec<Phrase>) -> Self {
        let mut order: Vec<u32> = (0..phrases.len() as u32).collect();
        order.sort_by_key(|&i| {
            let p = &phrases[i as usize];
            (p.agent.is_none(), p.code.chars().count(), i)
        });
        let codes_lower: Vec<String> =
            order.iter().map(|&i| phrases[i as usize].code.to_lowercase()).collect();
        let mut by_code: Vec<u32> = (0..order.len() as u32).collect();
        by_code.sort_by(|&a, &b| codes_lower[a as usize].cmp(&codes_lower[b as usize]).then(a.cmp(&b)));
        let (codes_joined, code_starts) = join(codes_lower.iter().map(String::as_str));
        let texts_lower: Vec<String> =
            order.iter().map(|&i| phrases[i as usize].text.to_lowercase()).collect();
        let (texts_joined, text_starts) = join(texts_lower.iter().map(String::as_str));
        let mut exact: HashMap<String, Vec<u32>> = HashMap::new();
        let mut templated = Vec::new();
        for (i, p) in phrases.iter().enumerate() {
            let pieces = literal_pieces(&p.text);
            if pieces.len() == 1 {
                exact.entry(p.text.clone()).or_default().push(i as u32);
            } else {
                templated.push((i as u32, pieces));
            }
        }
        Self {
            phrases,
            order,
            by_code,
            codes_lower,
            codes_joined,
            code_starts,
            texts_joined,
            text_starts,
            exact,
            templated,
        }
    }

    /// Every phrase, in file order.
    pub fn phrases(&self) -> &[Phrase] {
        &self.phrases
    }

    /// The team set (`agent == None`) or one agent's personal set, in file order.
    pub fn set(&self, agent: Option<&str>) -> Vec<&Phrase> {
        self.phrases.iter().filter(|p| p.agent.as_deref() == agent).collect()
    }

    /// A new book with one set (team or an agent's) replaced, the others kept in order.
    pub fn with_set_replaced(&self, agent: Option<&str>, set: Vec<Phrase>) -> Self {
        Self::new(self.phrases_with_set_replaced(agent, set))
    }

    /// The phrases of [`Self::with_set_replaced`], without building its index (an import
    /// only writes them out).
    pub fn phrases_with_set_replaced(&self, agent: Option<&str>, set: Vec<Phrase>) -> Vec<Phrase> {
        let mut all: Vec<Phrase> =
            self.phrases.iter().filter(|p| p.agent.as_deref() != agent).cloned().collect();
        all.extend(set.into_iter().map(|p| Phrase { agent: agent.map(str::to_string), ..p }));
        all
    }

    /// Ranked lookup. `agent: Some(a)` sees the team set and `a`'s personal set;
    /// `None` sees every phrase (the supervisor's view). At most `limit` results.
    pub fn find(&self, agent: Option<&str>, query: &str, limit: usize) -> Vec<Hit<'_>> {
        let q = query.trim().to_lowercase().replace(SEP, "");
        if q.is_empty() || limit == 0 {
            return Vec::new();
        }
        let phrase = |pos: usize| &self.phrases[self.order[pos] as usize];
        let visible = |pos: usize| match (agent, &phrase(pos).agent) {
            (None, _) | (_, None) => true,
            (Some(a), Some(owner)) => a == owner,
        };
        let first = self.by_code.partition_point(|&i| self.codes_lower[i as usize].as_str() < q.as_str());
        let mut prefix: Vec<usize> = self.by_code[first..]
            .iter()
            .map(|&i| i as usize)
            .take_while(|&i| self.codes_lower[i].starts_with(&q))
            .filter(|&i| visible(i))
            .collect();
        prefix.sort_unstable();
        prefix.truncate(limit);
        let mut found: Vec<(Rank, usize)> = prefix.iter().map(|&i| (Rank::CodePrefix, i)).collect();
        // One-pattern Aho-Corasick searches with a SIMD prefilter, several times faster
        // than `str::match_indices` on a string of a few hundred kilobytes.
        let searcher =
            (found.len() < limit).then(|| aho_corasick::AhoCorasick::new([q.as_str()]).ok()).flatten();
        if let Some(ac) = searcher {
            for (joined, starts, rank) in [
                (&self.codes_joined, &self.code_starts, Rank::CodeContains),
                (&self.texts_joined, &self.text_starts, Rank::TextContains),
            ] {
                let mut last = usize::MAX;
                for m in ac.find_iter(joined.as_str()) {
                    if found.len() >= limit {
                        break;
                    }
                    let pos = starts.partition_point(|&s| s <= m.start()) - 1;
                    if pos == last || !visible(pos) || found.iter().any(|&(_, p)| p == pos) {
                        continue;
                    }
                    last = pos;
                    found.push((rank, pos));
                }
            }
        }
        found.into_iter().map(|(rank, pos)| Hit { phrase: phrase(pos), rank }).collect()
    }

    /// The phrase `agent` just sent, if their message is one of their visible phrases
    /// (variables filled in any way), for the per-phrase hit counts.
    pub fn sent_by(&self, agent: &str, text: &str) -> Option<&Phrase> {
        let visible = |p: &&Phrase| p.agent.as_deref().is_none_or(|a| a == agent);
        let mut exact = self.exact.get(text).into_iter().flatten().map(|&i| &self.phrases[i as usize]);
        if let Some(p) = exact.find(visible) {
            return Some(p);
        }
        self.templated
            .iter()
            .filter(|(_, pieces)| fits(text, pieces))
            .map(|&(i, _)| &self.phrases[i as usize])
            .find(visible)
    }

    /// The book as `quick.toml` text, for writing back after an import.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        book_toml(&self.phrases)
    }
}

/// Phrases as `quick.toml` text. Each `[[phrase]]` is serialised on its own by `toml` (one
/// document of 100,000 tables costs several times more), then the pieces are joined.
pub fn book_toml(phrases: &[Phrase]) -> Result<String, toml::ser::Error> {
    let mut out = format!(
        "# Quick replies (快捷短语). A [[phrase]] without `agent` is a team phrase; with `agent`,\n\
         # that agent's personal phrase. `code` is the shortcut (Qianniu allows {MAX_CODE_CHARS} characters),\n\
         # `group` the group (empty: ungrouped). Written by `kefu replies import`.\n"
    );
    for p in phrases {
        let one = OutBook {
            phrase: vec![OutPhrase {
                agent: p.agent.as_deref(),
                code: &p.code,
                group: &p.group,
                text: &p.text,
            }],
        };
        out.push('\n');
        out.push_str(&toml::to_string(&one)?);
    }
    Ok(out)
}

/// The text split around its variables: `["亲", "您好"]` for `亲{买家}您好`; one piece
/// when it has none.
fn literal_pieces(text: &str) -> Vec<String> {
    let mut pieces = vec![text.to_string()];
    for (name, _) in super::vars::NAMES {
        let var = format!("{{{name}}}");
        pieces = pieces.iter().flat_map(|p| p.split(var.as_str()).map(str::to_string)).collect();
    }
    pieces
}

/// Whether `text` is the pieces with something non-empty between each two.
fn fits(text: &str, pieces: &[String]) -> bool {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else { return false };
    let Some(mut rest) = text.strip_prefix(first.as_str()) else { return false };
    let Some(body) = rest.strip_suffix(last.as_str()) else { return false };
    rest = body;
    for p in &pieces[1..pieces.len() - 1] {
        // Each variable stands for at least one character.
        let Some(c) = rest.chars().next() else { return false };
        let Some(at) = rest[c.len_utf8()..].find(p.as_str()) else { return false };
        rest = &rest[c.len_utf8() + at + p.len()..];
    }
    !rest.is_empty()
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> (String, Vec<usize>) {
    let mut joined = String::new();
    let mut starts = Vec::new();
    for s in items {
        starts.push(joined.len());
        joined.push_str(s);
        joined.push(SEP);
    }
    (joined, starts)
}

/// Reads `quick.toml` from `dir`, or the embedded default.
pub fn load(dir: Option<&Path>) -> Result<QuickBook, DataError> {
    let (path, text) = read_or_default(dir, FILE, DEFAULT)?;
    parse(&path, &text)
}

/// Parses and validates the book; `file` is used in error messages.
pub fn parse(file: &Path, text: &str) -> Result<QuickBook, DataError> {
    let raw: RawBook = parse_toml(file, text)?;
    let mut phrases = Vec::with_capacity(raw.phrase.len());
    // Phrases come in file order: count lines forward from the last one, not from the
    // top each time (that made importing 100,000 phrases quadratic).
    let (mut at, mut line) = (0, 1);
    for p in raw.phrase {
        let start = p.text.span().start.min(text.len());
        if start >= at {
            line += text.as_bytes()[at..start].iter().filter(|&&b| b == b'\n').count();
            at = start;
        } else {
            (at, line) = (start, line_of(text, start));
        }
        if p.text.get_ref().trim().is_empty() {
            return Err(DataError::at(file, Some(line), "phrase text is empty"));
        }
        if p.agent.as_deref().is_some_and(|a| a.trim().is_empty()) {
            return Err(DataError::at(file, Some(line), "`agent` is empty: omit it for a team phrase"));
        }
        phrases.push(Phrase { agent: p.agent, code: p.code, text: p.text.into_inner(), group: p.group });
    }
    Ok(QuickBook::new(phrases))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(agent: Option<&str>, code: &str, text: &str) -> Phrase {
        Phrase { agent: agent.map(Into::into), code: code.into(), text: text.into(), group: String::new() }
    }

    #[test]
    fn ranks_code_prefix_then_code_contains_then_text() {
        let book = QuickBook::new(vec![
            p(None, "xfh", "现货48小时内发出"),
            p(None, "fhsj", "发货时间:付款后48小时内"),
            p(None, "kd", "默认中通快递,可补差价发顺丰"),
            p(Some("小美"), "fh", "亲,小美帮您催发货"),
            p(Some("阿强"), "fh2", "阿强的发货话术"),
        ]);
        let codes = |agent, q| -> Vec<(String, Rank)> {
            book.find(agent, q, 10).iter().map(|h| (h.phrase.code.clone(), h.rank)).collect()
        };
        assert_eq!(
            codes(Some("小美"), "FH"),
            vec![
                ("fh".into(), Rank::CodePrefix),
                ("fhsj".into(), Rank::CodePrefix),
                ("xfh".into(), Rank::CodeContains)
            ]
        );
        assert_eq!(
            codes(Some("阿强"), "发"),
            vec![
                ("fh2".into(), Rank::TextContains),
                ("kd".into(), Rank::TextContains),
                ("xfh".into(), Rank::TextContains),
                ("fhsj".into(), Rank::TextContains),
            ]
        );
        assert_eq!(codes(None, "fh").len(), 4);
        assert!(codes(Some("小美"), "  ").is_empty());
        assert_eq!(book.find(None, "发", 2).len(), 2);
    }

    #[test]
    fn shipped_book_has_team_and_personal_sets() {
        let book = load(None).unwrap();
        assert!(book.set(None).len() >= 5, "team phrases");
        let personal = book.phrases().iter().filter(|p| p.agent.is_some()).count();
        assert!(personal >= 10, "personal phrases: {personal}");
        assert!(!book.find(Some("小美"), "发货", 5).is_empty());
    }

    #[test]
    fn recognises_a_sent_phrase_with_variables_filled() {
        let book = QuickBook::new(vec![
            p(None, "hy", "亲,{客服}为您服务"),
            p(Some("小美"), "mq", "订单{订单号}已备注,{买家}请放心"),
            p(Some("阿珍"), "zh", "好的"),
        ]);
        let code = |agent, text| book.sent_by(agent, text).map(|p| p.code.as_str());
        let cases = [
            ("小美", "亲,小美为您服务", Some("hy")),
            ("小美", "亲,为您服务", None),
            ("小美", "订单T1已备注,tb1请放心", Some("mq")),
            ("小美", "订单已备注,tb1请放心", None),
            ("阿强", "订单T1已备注,tb1请放心", None),
            ("阿珍", "好的", Some("zh")),
            ("小美", "好的", None),
        ];
        for (agent, text, want) in cases {
            assert_eq!(code(agent, text), want, "{agent}: {text}");
        }
    }

    #[test]
    fn to_toml_round_trips() {
        let book = QuickBook::new(vec![p(None, "a,b", "第一行\n第二行,有逗号"), p(Some("小美"), "", "x")]);
        let again = parse(Path::new("q.toml"), &book.to_toml().unwrap()).unwrap();
        assert_eq!(again.phrases(), book.phrases());
    }

    #[test]
    fn errors_name_the_line() {
        let e =
            parse(Path::new("replies/quick.toml"), "[[phrase]]\ncode = \"a\"\ntext = \"  \"\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (Some(3), "phrase text is empty"));
        let e =
            parse(Path::new("replies/quick.toml"), "[[phrase]]\ncode = \"a\"\ntxt = \"x\"\n").unwrap_err();
        assert!(e.to_string().starts_with("replies/quick.toml:"), "{e}");
    }
}

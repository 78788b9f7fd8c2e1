//! Phrase and regex matching over normalised text, with per-category exceptions.
//!
//! All phrases and exceptions of all categories share one Aho–Corasick automaton searched
//! with overlapping matches, so one pass finds `第一` and the `第一次` around it; regexes are
//! tried only when a [`RegexSet`] says one of them matches. A hit inside an exception of
//! its own category is dropped, and overlapping hits of one category merge into one
//! finding over their union, reported with the rule of the leftmost, longest hit.

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexSet};

use super::rules::CategoryRule;

/// What one automaton pattern is.
#[derive(Debug, Clone, Copy)]
struct Pattern {
    category: usize,
    /// Index into the category's phrases, or `None` for an exception.
    phrase: Option<usize>,
}

/// The rule that produced a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleRef {
    /// The category's phrase with this index.
    Phrase(usize),
    /// The category's regex with this index.
    Regex(usize),
}

/// A hit in normalised text (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Index of the category.
    pub category: usize,
    /// What matched.
    pub rule: RuleRef,
    /// Start byte in the normalised text.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
}

/// The compiled matcher for a set of categories.
#[derive(Debug, Clone)]
pub struct Matcher {
    ac: Option<AhoCorasick>,
    patterns: Vec<Pattern>,
    /// `(category, index in category, regex)`, in the order of `set`.
    regexes: Vec<(usize, usize, Regex)>,
    set: Option<RegexSet>,
}

/// Building the automaton failed (only possible with absurdly large rule sets).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the phrase matcher: {0}")]
pub struct BuildError(String);

impl Matcher {
    /// Compiles the phrases, exceptions and regexes of `categories`.
    pub fn new(categories: &[CategoryRule]) -> Result<Self, BuildError> {
        let mut texts: Vec<&str> = Vec::new();
        let mut patterns = Vec::new();
        let mut regexes = Vec::new();
        for (ci, c) in categories.iter().enumerate() {
            for (pi, (_, norm)) in c.phrases.iter().enumerate() {
                texts.push(norm);
                patterns.push(Pattern { category: ci, phrase: Some(pi) });
            }
            for x in &c.exceptions {
                texts.push(x);
                patterns.push(Pattern { category: ci, phrase: None });
            }
            for (ri, r) in c.regexes.iter().enumerate() {
                regexes.push((ci, ri, r.clone()));
            }
        }
        let ac = if texts.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&texts)
                    .map_err(|e| BuildError(e.to_string()))?,
            )
        };
        let set = if regexes.is_empty() {
            None
        } else {
            Some(RegexSet::new(regexes.iter().map(|r| r.2.as_str())).map_err(|e| BuildError(e.to_string()))?)
        };
        Ok(Self { ac, patterns, regexes, set })
    }

    /// Every hit in `text` (normalised) of the categories `enabled` accepts, by start.
    pub fn find(&self, text: &str, enabled: impl Fn(usize) -> bool) -> Vec<Hit> {
        let mut hits = Vec::new();
        let mut allowed: Vec<(usize, usize, usize)> = Vec::new();
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(text) {
                let p = self.patterns[m.pattern().as_usize()];
                if !enabled(p.category) {
                    continue;
                }
                match p.phrase {
                    Some(pi) => hits.push(Hit {
                        category: p.category,
                        rule: RuleRef::Phrase(pi),
                        start: m.start(),
                        end: m.end(),
                    }),
                    None => allowed.push((p.category, m.start(), m.end())),
                }
            }
        }
        if let Some(set) = &self.set {
            for i in set.matches(text).iter() {
                let (ci, ri, re) = &self.regexes[i];
                if !enabled(*ci) {
                    continue;
                }
                for m in re.find_iter(text).filter(|m| !m.is_empty()) {
                    hits.push(Hit {
                        category: *ci,
                        rule: RuleRef::Regex(*ri),
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        if hits.is_empty() {
            return hits;
        }
        hits.retain(|h| !allowed.iter().any(|&(c, s, e)| c == h.category && s <= h.start && h.end <= e));
        // Overlapping hits of one category are one finding over their union: `给个五星好评`
        // is one request for a good review, not two deductions.
        hits.sort_by_key(|h| (h.category, h.start, std::cmp::Reverse(h.end)));
        let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
        for h in hits {
            match kept.last_mut() {
                Some(k) if k.category == h.category && h.start < k.end => k.end = k.end.max(h.end),
                _ => kept.push(h),
            }
        }
        kept.sort_by_key(|h| (h.start, h.category));
        kept
    }
}

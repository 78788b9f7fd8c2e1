//! Phrase and regex matching over normalised text, with per-category exceptions.
//!
//! All phrases and exceptions of all categories share one Aho–Corasick automaton searched
//! with overlapping matches, so one pass finds `第一` and the `第一次` around it; regexes are
//! tried only when a [`RegexSet`] says one of them matches. A hit inside an exception of
//! its own category is dropped, and overlapping hits of one category merge into one
//! finding over their union, reported with the rule of the leftmost, longest hit.

use aho_corasick::automaton::{Automaton, OverlappingState};
use aho_corasick::{Input, Match, MatchKind, dfa, nfa};
use regex::{Regex, RegexSet};

use super::rules::CategoryRule;

/// Up to this many phrases the automaton is a full DFA (one table lookup per byte); above
/// it, a contiguous NFA, whose memory stays small. The prefilter is off either way: on
/// 20–60 character messages starting a vectorised prefilter costs more than the scan.
const DFA_MAX_PATTERNS: usize = 20_000;

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

/// The phrase automaton, as a concrete type so the per-byte step is inlined (the
/// `AhoCorasick` wrapper calls through a trait object on every byte).
#[derive(Debug, Clone)]
enum Phrases {
    Dfa(dfa::DFA),
    Nfa(nfa::contiguous::NFA),
}

/// Calls `f` with every (overlapping) match of `aut` in `text`.
fn each_match<A: Automaton>(aut: &A, text: &str, mut f: impl FnMut(Match)) {
    let input = Input::new(text);
    let mut state = OverlappingState::start();
    while aut.try_find_overlapping(&input, &mut state).is_ok() {
        let Some(m) = state.get_match() else { break };
        f(m);
    }
}

/// The compiled matcher for a set of categories.
#[derive(Debug, Clone)]
pub struct Matcher {
    ac: Option<Phrases>,
    patterns: Vec<Pattern>,
    /// `(category, index in category, regex)`, in the order of `set`.
    regexes: Vec<(usize, usize, Regex)>,
    set: Option<RegexSet>,
    /// All regexes as one alternation: its literal prefilters rule most texts out faster
    /// than the set's automaton can (the set has none).
    any: Option<Regex>,
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
        let err = |e: aho_corasick::BuildError| BuildError(e.to_string());
        let ac = if texts.is_empty() {
            None
        } else if texts.len() <= DFA_MAX_PATTERNS {
            let b = dfa::DFA::builder().match_kind(MatchKind::Standard).prefilter(false).build(&texts);
            Some(Phrases::Dfa(b.map_err(err)?))
        } else {
            let b = nfa::contiguous::NFA::builder()
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(&texts);
            Some(Phrases::Nfa(b.map_err(err)?))
        };
        let set = if regexes.is_empty() {
            None
        } else {
            Some(RegexSet::new(regexes.iter().map(|r| r.2.as_str())).map_err(|e| BuildError(e.to_string()))?)
        };
        let any = if regexes.is_empty() {
            None
        } else {
            let alt: Vec<String> = regexes.iter().map(|r| format!("(?:{})", r.2.as_str())).collect();
            Regex::new(&alt.join("|")).ok()
        };
        Ok(Self { ac, patterns, regexes, set, any })
    }

    /// Every hit in `text` (normalised) of the categories `enabled` accepts, by start.
    pub fn find(&self, text: &str, enabled: impl Fn(usize) -> bool) -> Vec<Hit> {
        let mut hits = Vec::new();
        let mut allowed: Vec<(usize, usize, usize)> = Vec::new();
        let mut on_match = |m: Match| {
            let p = self.patterns[m.pattern().as_usize()];
            if !enabled(p.category) {
                return;
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
        };
        match &self.ac {
            Some(Phrases::Dfa(a)) => each_match(a, text, &mut on_match),
            Some(Phrases::Nfa(a)) => each_match(a, text, &mut on_match),
            None => {}
        }
        if let Some(set) = self.set.as_ref().filter(|_| self.any.as_ref().is_none_or(|a| a.is_match(text))) {
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

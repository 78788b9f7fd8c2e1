//! Phrase and regex matching over normalised text, with per-category exceptions.
//!
//! All phrases and exceptions of all categories are found in one pass reporting every
//! occurrence (overlapping ones too), so it finds `第一` and the `第一次` around it. The pass
//! is a [`PairIndex`] (patterns by their first two characters); an Aho–Corasick automaton over
//! the same patterns is kept as the reference it is tested against. The same pass finds each
//! regex's *required literals* (every match of the regex starts or ends with one of them,
//! from `regex-syntax`'s literal extraction): a regex runs only on texts where one of its
//! literals occurs, so most messages run no regex at all; a regex whose literals cannot be
//! listed (`\d{11}`) runs on every text. A hit inside an exception of its own category is
//! dropped, and overlapping hits of one category merge into one finding over their union,
//! reported with the rule of the leftmost, longest hit.

use aho_corasick::automaton::Automaton;
use aho_corasick::{Anchored, MatchKind, dfa, nfa};
use regex::Regex;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use rustc_hash::FxHashMap;

use super::rules::CategoryRule;

/// Up to this many phrases the automaton is a full DFA (one table lookup per byte); above
/// it, a contiguous NFA, whose memory stays small. The prefilter is off either way: on
/// 20–60 character messages starting a vectorised prefilter costs more than the scan.
const DFA_MAX_PATTERNS: usize = 20_000;

/// What one automaton pattern is.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// The category's phrase with this index.
    Phrase { category: usize, phrase: usize },
    /// One of the category's exceptions.
    Exception { category: usize },
    /// A required literal of the regex with this index in [`Matcher::regexes`].
    Gate { regex: usize },
    /// A cue word the caller asked about ([`Matcher::with_cues`]).
    Cue,
}

/// One compiled regex of a category.
#[derive(Debug, Clone)]
struct CategoryRegex {
    category: usize,
    /// Index in the category's regexes.
    index: usize,
    regex: Regex,
    /// Whether the regex runs only when one of its required literals occurs.
    gated: bool,
}

/// The rule that produced a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// Calls `f` with every (overlapping) match of `aut` in `text`, by end.
///
/// The automaton is stepped here byte by byte rather than through `try_find_overlapping`,
/// whose set-up per call (once per match and once more at the end) costs as much as the
/// scan on a 100-byte message. With `MatchKind::Standard` each state lists every pattern
/// ending there (those of its failure chain included), which is what overlapping search
/// reports, in the same order.
fn each_match<A: Automaton>(aut: &A, text: &str, mut f: impl FnMut(usize, usize, usize)) {
    let Ok(mut sid) = aut.start_state(Anchored::No) else { return };
    for (i, &b) in text.as_bytes().iter().enumerate() {
        sid = aut.next_state(Anchored::No, sid, b);
        if aut.is_special(sid) && aut.is_match(sid) {
            for k in 0..aut.match_len(sid) {
                let pid = aut.match_pattern(sid, k);
                let end = i + 1;
                f(pid.as_usize(), end - aut.pattern_len(pid), end);
            }
        }
    }
}

/// Bits of the hash of a character pair in [`PairIndex::bits`] (16 KiB, in L1 cache).
const PAIR_BITS: u32 = 17;

/// Patterns indexed by their first two characters: what the matcher searches.
///
/// At each character of the text the pair it starts is hashed into a bit set; only where
/// the bit is set (a phrase may start there) is the pair looked up and its few patterns
/// compared with the text. Every match is found: a pattern of two or more characters is
/// listed under its first pair, a one-character pattern (a regex literal) under its
/// character. Per message this touches a 16 KiB bit set and a few hash entries, where the
/// automaton of 10,000 phrases touches a cold 50 MB table at every byte.
#[derive(Debug, Clone)]
struct PairIndex {
    bits: Vec<u64>,
    /// First-pair key → the range of `entries` of the patterns starting with that pair.
    pairs: FxHashMap<u64, (u32, u32)>,
    /// One-character patterns → their range of `entries`.
    singles: FxHashMap<char, (u32, u32)>,
    /// `(pattern, start in arena, length)`, grouped by key; flat, so a lookup touches the
    /// map entry, these few entries and the pattern bytes, no per-list allocation.
    entries: Vec<(u32, u32, u32)>,
    /// All pattern texts, one after the other.
    arena: Vec<u8>,
}

fn pair_key(a: char, b: char) -> u64 {
    (u64::from(u32::from(a)) << 32) | u64::from(u32::from(b))
}

fn pair_slot(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - PAIR_BITS)) as usize
}

impl PairIndex {
    /// The index of `texts`, or `None` when one is not UTF-8 or empty (the automaton then
    /// stays in use).
    fn new(texts: &[Vec<u8>]) -> Option<Self> {
        let mut bits = vec![0u64; 1 << (PAIR_BITS - 6)];
        let mut by_pair: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
        let mut by_char: FxHashMap<char, Vec<u32>> = FxHashMap::default();
        for (i, t) in texts.iter().enumerate() {
            let s = std::str::from_utf8(t).ok()?;
            let id = u32::try_from(i).ok()?;
            let mut cs = s.chars();
            match (cs.next(), cs.next()) {
                (Some(a), Some(b)) => {
                    let key = pair_key(a, b);
                    let slot = pair_slot(key);
                    bits[slot / 64] |= 1 << (slot % 64);
                    by_pair.entry(key).or_default().push(id);
                }
                (Some(a), None) => by_char.entry(a).or_default().push(id),
                (None, _) => return None,
            }
        }
        let (mut entries, mut arena) = (Vec::new(), Vec::new());
        let mut flatten = |ids: Vec<u32>| -> Option<(u32, u32)> {
            let first = u32::try_from(entries.len()).ok()?;
            for id in &ids {
                let t = &texts[*id as usize];
                entries.push((*id, u32::try_from(arena.len()).ok()?, u32::try_from(t.len()).ok()?));
                arena.extend_from_slice(t);
            }
            Some((first, u32::try_from(ids.len()).ok()?))
        };
        let mut pairs = FxHashMap::default();
        for (k, ids) in by_pair {
            pairs.insert(k, flatten(ids)?);
        }
        let mut singles = FxHashMap::default();
        for (c, ids) in by_char {
            singles.insert(c, flatten(ids)?);
        }
        Some(Self { bits, pairs, singles, entries, arena })
    }

    /// Calls `f(pattern, start, end)` for every occurrence of every pattern, by start.
    fn each_match(&self, text: &str, mut f: impl FnMut(usize, usize, usize)) {
        let mut prev: Option<(usize, char)> = None;
        for (b, c) in text.char_indices() {
            if let Some((pb, pc)) = prev {
                let key = pair_key(pc, c);
                let slot = pair_slot(key);
                if self.bits[slot / 64] & (1 << (slot % 64)) != 0
                    && let Some(&range) = self.pairs.get(&key)
                {
                    self.verify(text, pb, range, &mut f);
                }
            }
            if !self.singles.is_empty()
                && let Some(&range) = self.singles.get(&c)
            {
                self.verify(text, b, range, &mut f);
            }
            prev = Some((b, c));
        }
    }

    fn verify(&self, text: &str, at: usize, (first, n): (u32, u32), f: &mut impl FnMut(usize, usize, usize)) {
        let rest = &text.as_bytes()[at..];
        let entries = self.entries.get(first as usize..(first + n) as usize).unwrap_or_default();
        for &(id, start, len) in entries {
            let t = self.arena.get(start as usize..(start + len) as usize).unwrap_or_default();
            if rest.starts_with(t) {
                f(id as usize, at, at + t.len());
            }
        }
    }
}

/// The compiled matcher for a set of categories.
#[derive(Debug, Clone)]
pub struct Matcher {
    ac: Option<Phrases>,
    /// The same patterns indexed by their first two characters, searched instead of `ac`
    /// (the automaton stays as the reference the index is tested against).
    index: Option<PairIndex>,
    patterns: Vec<Pattern>,
    /// Every category's regexes, in category order.
    regexes: Vec<CategoryRegex>,
    /// Whether gated regexes wait for their literals; off only to check that the gates
    /// change no result ([`Self::without_gates`]).
    gates: bool,
}

/// Literals one of which every match of `pattern` starts (or else ends) with, or `None`
/// when they cannot be listed (a leading and trailing `\d+`, a large class, no literal).
fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    [ExtractKind::Prefix, ExtractKind::Suffix].into_iter().find_map(|kind| {
        let mut extractor = Extractor::new();
        extractor.kind(kind);
        let seq = extractor.extract(&hir);
        let lits = seq.literals()?;
        // An empty literal is in every text: no gate.
        if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
            return None;
        }
        // A literal containing another one adds nothing to the gate (`qq号` after `qq`).
        let mut lits: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
        lits.sort_by_key(Vec::len);
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for l in lits {
            if !kept.iter().any(|k| l.windows(k.len()).any(|w| w == k.as_slice())) {
                kept.push(l);
            }
        }
        Some(kept)
    })
}

/// Building the automaton failed (only possible with absurdly large rule sets).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the phrase matcher: {0}")]
pub struct BuildError(String);

impl Matcher {
    /// Compiles the phrases, exceptions and regexes of `categories`.
    pub fn new(categories: &[CategoryRule]) -> Result<Self, BuildError> {
        Self::with_cues(categories, &[])
    }

    /// [`Self::new`], also telling from the same pass whether one of `cues` (normalised
    /// words, e.g. the WeChat cues before an id) occurs: [`Self::find_with_cue`].
    pub fn with_cues(categories: &[CategoryRule], cues: &[String]) -> Result<Self, BuildError> {
        let mut texts: Vec<Vec<u8>> = Vec::new();
        let mut patterns = Vec::new();
        let mut regexes = Vec::new();
        for (ci, c) in categories.iter().enumerate() {
            for (pi, (_, norm)) in c.phrases.iter().enumerate() {
                texts.push(norm.as_bytes().to_vec());
                patterns.push(Pattern::Phrase { category: ci, phrase: pi });
            }
            for x in &c.exceptions {
                texts.push(x.as_bytes().to_vec());
                patterns.push(Pattern::Exception { category: ci });
            }
            for (ri, r) in c.regexes.iter().enumerate() {
                let literals = required_literals(r.as_str());
                for lit in literals.iter().flatten() {
                    texts.push(lit.clone());
                    patterns.push(Pattern::Gate { regex: regexes.len() });
                }
                regexes.push(CategoryRegex {
                    category: ci,
                    index: ri,
                    regex: r.clone(),
                    gated: literals.is_some(),
                });
            }
        }
        for cue in cues.iter().filter(|c| !c.is_empty()) {
            texts.push(cue.as_bytes().to_vec());
            patterns.push(Pattern::Cue);
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
        let index = if texts.is_empty() { None } else { PairIndex::new(&texts) };
        Ok(Self { ac, index, patterns, regexes, gates: true })
    }

    /// The same matcher without shortcuts — every regex on every text, as before the
    /// literal gates, and the automaton even where the pair index would be searched: the
    /// reference the tests compare the fast matcher with.
    pub fn without_gates(mut self) -> Self {
        self.gates = false;
        self.index = None;
        self
    }

    /// Whether the pair index replaces the automaton (all rule sets whose patterns are
    /// UTF-8, which every phrase and almost every regex literal is).
    pub fn uses_pair_index(&self) -> bool {
        self.index.is_some()
    }

    /// Every hit in `text` (normalised) of the categories `enabled` accepts, by start.
    pub fn find(&self, text: &str, enabled: impl Fn(usize) -> bool) -> Vec<Hit> {
        self.find_with_cue(text, enabled).0
    }

    /// [`Self::find`], and whether one of the cue words occurs in `text`.
    pub fn find_with_cue(&self, text: &str, enabled: impl Fn(usize) -> bool) -> (Vec<Hit>, bool) {
        let mut cue = false;
        let mut hits = Vec::new();
        let mut allowed: Vec<(usize, usize, usize)> = Vec::new();
        // Regexes whose required literal occurs (no allocation unless one does).
        let mut triggered: Vec<usize> = Vec::new();
        let mut on_match = |pid: usize, start: usize, end: usize| match self.patterns[pid] {
            Pattern::Phrase { category, phrase } if enabled(category) => {
                hits.push(Hit { category, rule: RuleRef::Phrase(phrase), start, end })
            }
            Pattern::Exception { category } if enabled(category) => allowed.push((category, start, end)),
            Pattern::Gate { regex } => triggered.push(regex),
            Pattern::Cue => cue = true,
            _ => {}
        };
        match (&self.index, &self.ac) {
            (Some(index), _) => index.each_match(text, &mut on_match),
            (None, Some(Phrases::Dfa(a))) => each_match(a, text, &mut on_match),
            (None, Some(Phrases::Nfa(a))) => each_match(a, text, &mut on_match),
            (None, None) => {}
        }
        for (i, r) in self.regexes.iter().enumerate() {
            if !enabled(r.category) || (self.gates && r.gated && !triggered.contains(&i)) {
                continue;
            }
            for m in r.regex.find_iter(text).filter(|m| !m.is_empty()) {
                hits.push(Hit {
                    category: r.category,
                    rule: RuleRef::Regex(r.index),
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
        if hits.is_empty() {
            return (hits, cue);
        }
        hits.retain(|h| !allowed.iter().any(|&(c, s, e)| c == h.category && s <= h.start && h.end <= e));
        // Overlapping hits of one category are one finding over their union: `给个五星好评`
        // is one request for a good review, not two deductions.
        // The rule breaks ties, so the order matches were reported in does not matter.
        hits.sort_by_key(|h| (h.category, h.start, std::cmp::Reverse(h.end), h.rule));
        let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
        for h in hits {
            match kept.last_mut() {
                Some(k) if k.category == h.category && h.start < k.end => k.end = k.end.max(h.end),
                _ => kept.push(h),
            }
        }
        kept.sort_by_key(|h| (h.start, h.category));
        (kept, cue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every overlapping match as the crate's own overlapping search reports it.
    fn overlapping<A: Automaton>(aut: &A, text: &str) -> Vec<(usize, usize, usize)> {
        let input = aho_corasick::Input::new(text);
        let mut state = aho_corasick::automaton::OverlappingState::start();
        let mut out = Vec::new();
        while aut.try_find_overlapping(&input, &mut state).is_ok() {
            let Some(m) = state.get_match() else { break };
            out.push((m.pattern().as_usize(), m.start(), m.end()));
        }
        out
    }

    #[test]
    fn stepping_the_automaton_finds_what_overlapping_search_finds() {
        let rules = crate::guard::rules::load(None).unwrap_or_else(|e| panic!("{e:?}"));
        let m = Matcher::new(&rules.categories).unwrap_or_else(|e| panic!("{e}"));
        let Some(Phrases::Dfa(dfa)) = &m.ac else { panic!("the shipped rules make a DFA") };
        let nfa = nfa::contiguous::NFA::new(["第一", "第一次", "一次", "次购", "qq", "qq号", "加微信"])
            .unwrap_or_else(|e| panic!("{e}"));
        for text in
            ["第一次购买", "销量第一|第一次", "加微信qq号12345678好评给5元", "", "a", "全网最好的办法最好"]
        {
            let mut got = Vec::new();
            each_match(dfa, text, |p, s, e| got.push((p, s, e)));
            assert_eq!(got, overlapping(dfa, text), "{text}");
            let mut got = Vec::new();
            each_match(&nfa, text, |p, s, e| got.push((p, s, e)));
            assert_eq!(got, overlapping(&nfa, text), "{text}");
        }
    }

    #[test]
    fn required_literals_are_listed_where_they_exist() {
        let lits = |p: &str| {
            required_literals(p).map(|v| {
                let mut v: Vec<String> =
                    v.into_iter().map(|l| String::from_utf8_lossy(&l).into_owned()).collect();
                v.sort();
                v
            })
        };
        assert_eq!(lits(r"qq号?(是|为)?\d{5,11}"), Some(vec!["qq".to_string()]));
        // A leading `\d+` has no prefix: the suffix literals gate it.
        assert_eq!(lits(r"\d+(元|块)?(给你|卖你)"), Some(vec!["卖你".to_string(), "给你".to_string()]));
        assert_eq!(lits(r"好评.{0,6}(返现|\d+元)"), Some(vec!["好评".to_string()]));
        // Nothing to require: the regex runs on every text.
        assert_eq!(lits(r"\d{11}"), None);
        assert_eq!(lits(r"(返现)?"), None);
        assert_eq!(lits(r"\w+|元"), None);
    }

    #[test]
    fn every_shipped_regex_is_gated() {
        let rules = crate::guard::rules::load(None).unwrap_or_else(|e| panic!("{e:?}"));
        let m = Matcher::new(&rules.categories).unwrap_or_else(|e| panic!("{e}"));
        assert!(!m.regexes.is_empty());
        for r in &m.regexes {
            assert!(r.gated, "{} runs on every message", r.regex.as_str());
        }
    }

    #[test]
    fn a_gated_regex_runs_only_where_its_literal_occurs_and_finds_the_same() {
        let rules = crate::guard::rules::load(None).unwrap_or_else(|e| panic!("{e:?}"));
        let gated = Matcher::new(&rules.categories).unwrap_or_else(|e| panic!("{e}"));
        let all = gated.clone().without_gates();
        for text in
            ["qq号12345678", "好评给5元", "99元卖给你", "算你88", "给你改成50", "加微信abc12345", "您好"]
        {
            assert_eq!(gated.find(text, |_| true), all.find(text, |_| true), "{text}");
            assert!(!gated.find(text, |_| true).is_empty() || text == "您好", "{text}");
        }
    }

    /// The pair index finds what the automaton finds, on a large random phrase list with
    /// overlapping phrases, exceptions and one-character regex literals, over random texts
    /// drawn from the same characters (so most positions start some phrase).
    #[test]
    fn the_pair_index_finds_what_the_automaton_finds() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};

        let pool: Vec<char> = "加微信第一次最好的办法全网低价qq号12元给你算|".chars().collect();
        let mut rng = SmallRng::seed_from_u64(11);
        let word = |rng: &mut SmallRng, lo: usize, hi: usize| -> String {
            let n = rng.gen_range(lo..=hi);
            (0..n).map(|_| pool[rng.gen_range(0..pool.len())]).filter(|&c| c != '|').collect()
        };
        let mut categories = Vec::new();
        for ci in 0..3 {
            let mut phrases: Vec<String> =
                (0..3_000).map(|_| word(&mut rng, 2, 6)).filter(|p| p.chars().count() >= 2).collect();
            phrases.sort();
            phrases.dedup();
            categories.push(CategoryRule {
                name: format!("c{ci}"),
                severity: crate::guard::Severity::Warn,
                points: -1,
                senders: vec![crate::event::Sender::Agent],
                phrases: phrases.into_iter().map(|p| (p.clone(), p)).collect(),
                regexes: [r"\d+元", r"给你\d+", r"(算你|qq)\d"]
                    .iter()
                    .map(|r| Regex::new(r).unwrap())
                    .collect(),
                exceptions: (0..50).map(|_| word(&mut rng, 3, 7)).collect(),
                pii: None,
            });
        }
        let fast = Matcher::new(&categories).unwrap_or_else(|e| panic!("{e}"));
        assert!(fast.uses_pair_index());
        let slow = fast.clone().without_gates();
        assert!(!slow.uses_pair_index());
        let mut found = 0;
        for _ in 0..3_000 {
            let text = word(&mut rng, 0, 60);
            let got = fast.find(&text, |c| c != 1);
            assert_eq!(got, slow.find(&text, |c| c != 1), "{text}");
            found += got.len();
        }
        assert!(found > 3_000, "only {found} hits: the comparison saw too few matches");
    }
}

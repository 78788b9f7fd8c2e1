//! Phrase and regex matching over normalised text (characters; offsets are character
//! indices), with per-category exceptions.
//!
//! All phrases and exceptions of all categories are found in one pass reporting every
//! occurrence (overlapping ones too), so it finds `第一` and the `第一次` around it. The pass
//! is a [`PairIndex`] (long patterns by their first three characters, two-character ones by
//! the pair); an Aho–Corasick automaton over the same patterns is kept as the reference it is
//! tested against. A regex every match of which holds a digit also waits for a digit. The same pass finds each
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
use regex_syntax::hir::{Class, Hir, HirKind};
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
    /// Whether every match holds a digit ([`needs_digit`]): then a text without one is
    /// skipped even when a literal occurs (`给您` is common, `99元给您` is not).
    needs_digit: bool,
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

/// Bits of the hash of a pattern's first three characters in [`PairIndex::threes`]
/// (32 KiB; a message touches a few dozen of its words).
const TRIPLE_BITS: u32 = 18;
/// Bits of the hash of a two-character pattern in [`PairIndex::twos`] (2 KiB: two-character
/// patterns are few, short claims like `第一` and regex literals like `好评`).
const PAIR_BITS: u32 = 14;

/// Patterns indexed by their first characters: what the matcher searches.
///
/// At each position of the text, the pair and the triple of characters starting there are
/// hashed into two bit sets, one for two-character patterns and one for longer ones by
/// their first three characters; only where a bit is set (a pattern may start there) are
/// the few patterns of that slot compared with the text. Every match is found: a pattern is
/// listed under its first three characters, or its two, or (a one-character regex literal)
/// its one. Keying the long patterns on three characters rather than two matters with
/// large phrase lists: ordinary text starts some phrase's first pair at one position in
/// five, and each such candidate is an unpredictable branch and a few loads, while a
/// triple almost never starts one. Per message this touches a few words of the bit sets,
/// where the automaton of 10,000 phrases touches a cold 50 MB table at every byte.
#[derive(Debug, Clone)]
struct PairIndex {
    /// Two-character patterns by the pair.
    twos: SlotTable,
    /// Longer patterns by their first three characters.
    threes: SlotTable,
    /// One-character patterns → their range of `single_ids`, looked up only when there
    /// are any (no shipped rule has one).
    singles: FxHashMap<char, (u32, u32)>,
    single_ids: Vec<u32>,
    /// The characters of every long pattern after its first three, one after the other.
    arena: Vec<char>,
}

/// Keys in a bit set of hashed slots; the keys of a set bit are found by counting the set
/// bits before it (a rank table beside the bit set) rather than through a hash map.
#[derive(Debug, Clone)]
struct SlotTable {
    shift: u32,
    bits: Vec<u64>,
    /// Set bits in `bits` before each word.
    rank: Vec<u32>,
    /// For the n-th set bit, its entries are `entries[starts[n]..starts[n + 1]]`.
    starts: Vec<u32>,
    /// Entries grouped by slot, each with its full key (slots are shared).
    entries: Vec<SlotEntry>,
}

/// A pattern under its key: the characters after the key that the text must continue
/// with are `arena[rest_start..rest_start + rest_len]`.
#[derive(Debug, Clone, Copy)]
struct SlotEntry {
    key: u64,
    pattern: u32,
    rest_start: u32,
    rest_len: u32,
}

/// A character pair as one number (code points have 21 bits).
#[inline(always)]
fn key2(a: char, b: char) -> u64 {
    (u64::from(u32::from(a)) << 21) | u64::from(u32::from(b))
}

/// A character triple as one number, from its first pair's key.
#[inline(always)]
fn key3(pair: u64, c: char) -> u64 {
    (pair << 21) | u64::from(u32::from(c))
}

impl SlotTable {
    fn new(bits_log2: u32, mut items: Vec<SlotEntry>) -> Option<Self> {
        let mut t = Self {
            shift: 64 - bits_log2,
            bits: vec![0u64; 1 << (bits_log2 - 6)],
            rank: Vec::new(),
            starts: Vec::new(),
            entries: Vec::with_capacity(items.len()),
        };
        items.sort_by_key(|e| (t.slot(e.key), e.pattern));
        for e in items {
            let slot = t.slot(e.key);
            if !t.test(slot) {
                t.bits[slot / 64] |= 1 << (slot % 64);
                t.starts.push(u32::try_from(t.entries.len()).ok()?);
            }
            t.entries.push(e);
        }
        t.starts.push(u32::try_from(t.entries.len()).ok()?);
        let mut before = 0u32;
        for w in &t.bits {
            t.rank.push(before);
            before += w.count_ones();
        }
        Some(t)
    }

    #[inline(always)]
    fn slot(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline(always)]
    fn test(&self, slot: usize) -> bool {
        self.bits.get(slot / 64).is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    /// The entries of a slot whose bit is set.
    #[inline(always)]
    fn entries(&self, slot: usize) -> &[SlotEntry] {
        let word = self.bits.get(slot / 64).copied().unwrap_or(0);
        let below = word & ((1u64 << (slot % 64)) - 1);
        let n = self.rank.get(slot / 64).copied().unwrap_or(0) + below.count_ones();
        match (self.starts.get(n as usize), self.starts.get(n as usize + 1)) {
            (Some(&a), Some(&b)) => self.entries.get(a as usize..b as usize).unwrap_or_default(),
            _ => &[],
        }
    }
}

impl PairIndex {
    /// The index of `texts`, or `None` when one is empty or the index would not fit its
    /// 32-bit offsets (the automaton then stays in use).
    fn new(texts: &[Vec<char>]) -> Option<Self> {
        let (mut twos, mut threes) = (Vec::new(), Vec::new());
        let mut by_char: FxHashMap<char, Vec<u32>> = FxHashMap::default();
        let mut arena = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let pattern = u32::try_from(i).ok()?;
            match t.as_slice() {
                [a, b, c, rest @ ..] => {
                    threes.push(SlotEntry {
                        key: key3(key2(*a, *b), *c),
                        pattern,
                        rest_start: u32::try_from(arena.len()).ok()?,
                        rest_len: u32::try_from(rest.len()).ok()?,
                    });
                    arena.extend_from_slice(rest);
                }
                [a, b] => twos.push(SlotEntry { key: key2(*a, *b), pattern, rest_start: 0, rest_len: 0 }),
                [a] => by_char.entry(*a).or_default().push(pattern),
                [] => return None,
            }
        }
        let mut singles = FxHashMap::default();
        let mut single_ids = Vec::new();
        for (c, ids) in by_char {
            let first = u32::try_from(single_ids.len()).ok()?;
            single_ids.extend_from_slice(&ids);
            singles.insert(c, (first, u32::try_from(ids.len()).ok()?));
        }
        Some(Self {
            twos: SlotTable::new(PAIR_BITS, twos)?,
            threes: SlotTable::new(TRIPLE_BITS, threes)?,
            singles,
            single_ids,
            arena,
        })
    }

    /// Calls `f(pattern, start, end)` for every occurrence of every pattern (character
    /// offsets).
    fn each_match(&self, text: &[char], mut f: impl FnMut(usize, usize, usize)) {
        for (i, w) in text.windows(3).enumerate() {
            let k2 = key2(w[0], w[1]);
            let k3 = key3(k2, w[2]);
            let (s2, s3) = (self.twos.slot(k2), self.threes.slot(k3));
            // `|`, not `||`: one rarely taken branch for both tests.
            if self.twos.test(s2) | self.threes.test(s3) {
                self.verify(text, i, k2, s2, k3, s3, &mut f);
            }
        }
        // The last pair has no third character.
        if let [.., a, b] = text {
            let (i, k2) = (text.len() - 2, key2(*a, *b));
            let s2 = self.twos.slot(k2);
            if self.twos.test(s2) {
                self.verify(text, i, k2, s2, u64::MAX, usize::MAX, &mut f);
            }
        }
        if self.singles.is_empty() {
            return;
        }
        for (i, c) in text.iter().enumerate() {
            if let Some(&(first, n)) = self.singles.get(c) {
                for &id in self.single_ids.get(first as usize..(first + n) as usize).unwrap_or_default() {
                    f(id as usize, i, i + 1);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn verify(
        &self,
        text: &[char],
        at: usize,
        k2: u64,
        s2: usize,
        k3: u64,
        s3: usize,
        f: &mut impl FnMut(usize, usize, usize),
    ) {
        if self.twos.test(s2) {
            for e in self.twos.entries(s2).iter().filter(|e| e.key == k2) {
                f(e.pattern as usize, at, at + 2);
            }
        }
        if self.threes.test(s3) {
            for e in self.threes.entries(s3).iter().filter(|e| e.key == k3) {
                let (from, end) = (at + 3, at + 3 + e.rest_len as usize);
                let rest = self.arena.get(e.rest_start as usize..e.rest_start as usize + e.rest_len as usize);
                if let (Some(hay), Some(rest)) = (text.get(from..end), rest)
                    && hay == rest
                {
                    f(e.pattern as usize, at, end);
                }
            }
        }
    }
}

/// `text` as characters, with the character index at each byte offset of a character start
/// (and at the end), to turn the byte offsets of automata and regexes into character ones.
struct CharText {
    text: String,
    char_at: Vec<u32>,
}

impl CharText {
    fn new(chars: &[char]) -> Self {
        let text: String = chars.iter().collect();
        let mut char_at = vec![0u32; text.len() + 1];
        for (ci, (b, _)) in text.char_indices().enumerate() {
            char_at[b] = ci as u32;
        }
        char_at[text.len()] = chars.len() as u32;
        Self { text, char_at }
    }

    fn char_index(&self, byte: usize) -> usize {
        self.char_at.get(byte).map_or(0, |&c| c as usize)
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

/// Whether every match of `hir` contains a numeric character (`\\d`, `[0-9]`, a digit in a
/// literal): a concatenation needs one if a part does, an alternation if every branch does,
/// a repetition if it repeats at least once something that does.
fn needs_digit(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Literal(l) => String::from_utf8_lossy(&l.0).chars().any(char::is_numeric),
        HirKind::Class(Class::Unicode(c)) => {
            // Only small classes are walked; a large one is taken to hold non-digits.
            let size: u32 = c.ranges().iter().map(|r| u32::from(r.end()) - u32::from(r.start()) + 1).sum();
            !c.ranges().is_empty()
                && size <= 4_096
                && c.ranges().iter().all(|r| (r.start()..=r.end()).all(char::is_numeric))
        }
        HirKind::Class(Class::Bytes(c)) => {
            !c.ranges().is_empty()
                && c.ranges().iter().all(|r| r.start().is_ascii_digit() && r.end().is_ascii_digit())
        }
        HirKind::Repetition(r) => r.min >= 1 && needs_digit(&r.sub),
        HirKind::Capture(c) => needs_digit(&c.sub),
        HirKind::Concat(parts) => parts.iter().any(needs_digit),
        HirKind::Alternation(branches) => branches.iter().all(needs_digit),
        HirKind::Empty | HirKind::Look(_) => false,
    }
}

/// Whether `text` holds a numeric character, the test [`needs_digit`] regexes wait for.
fn has_digit(text: &[char]) -> bool {
    // CJK unified ideographs are all letters (`Lo`): most characters skip the Unicode table.
    text.iter().any(|&c| {
        c.is_ascii_digit() || (!c.is_ascii() && !('\u{4E00}'..='\u{9FFF}').contains(&c) && c.is_numeric())
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
                // A literal cut inside a character cannot be looked for by characters: such
                // a regex runs on every text.
                let literals = required_literals(r.as_str()).and_then(|lits| {
                    lits.into_iter()
                        .map(|l| String::from_utf8(l).ok().map(String::into_bytes))
                        .collect::<Option<Vec<_>>>()
                });
                for lit in literals.iter().flatten() {
                    texts.push(lit.clone());
                    patterns.push(Pattern::Gate { regex: regexes.len() });
                }
                regexes.push(CategoryRegex {
                    category: ci,
                    index: ri,
                    regex: r.clone(),
                    gated: literals.is_some(),
                    needs_digit: regex_syntax::Parser::new().parse(r.as_str()).is_ok_and(|h| needs_digit(&h)),
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
        // Every pattern is UTF-8: phrases, exceptions and cues are strings, literals checked above.
        let chars: Vec<Vec<char>> =
            texts.iter().map(|t| String::from_utf8_lossy(t).chars().collect()).collect();
        let index = if texts.is_empty() { None } else { PairIndex::new(&chars) };
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

    /// Whether the pair index replaces the automaton (every rule set of a sane size).
    pub fn uses_pair_index(&self) -> bool {
        self.index.is_some()
    }

    /// Every hit in `text` (normalised characters) of the categories `enabled` accepts, by
    /// start; offsets are character indices.
    pub fn find(&self, text: &[char], enabled: impl Fn(usize) -> bool) -> Vec<Hit> {
        self.find_with_cue(text, enabled).0
    }

    /// [`Self::find`], and whether one of the cue words occurs in `text`.
    pub fn find_with_cue(&self, text: &[char], enabled: impl Fn(usize) -> bool) -> (Vec<Hit>, bool) {
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
        // The string form, built only when an automaton or a regex needs it.
        let mut as_string: Option<CharText> = None;
        match (&self.index, &self.ac) {
            (Some(index), _) => index.each_match(text, &mut on_match),
            (None, Some(ac)) => {
                let t = as_string.get_or_insert_with(|| CharText::new(text));
                let mut by_char = |p, s, e| on_match(p, t.char_index(s), t.char_index(e));
                match ac {
                    Phrases::Dfa(a) => each_match(a, &t.text, &mut by_char),
                    Phrases::Nfa(a) => each_match(a, &t.text, &mut by_char),
                }
            }
            (None, None) => {}
        }
        let mut digit: Option<bool> = None;
        for (i, r) in self.regexes.iter().enumerate() {
            if !enabled(r.category) || (self.gates && r.gated && !triggered.contains(&i)) {
                continue;
            }
            if self.gates && r.needs_digit && !*digit.get_or_insert_with(|| has_digit(text)) {
                continue;
            }
            let t = as_string.get_or_insert_with(|| CharText::new(text));
            for m in r.regex.find_iter(&t.text).filter(|m| !m.is_empty()) {
                hits.push(Hit {
                    category: r.category,
                    rule: RuleRef::Regex(r.index),
                    start: t.char_index(m.start()),
                    end: t.char_index(m.end()),
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

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

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
    fn regexes_that_need_a_digit_are_told_apart() {
        let needs = |p: &str| needs_digit(&regex_syntax::Parser::new().parse(p).unwrap());
        for p in [
            r"\d+(元|块)?(给你|给您)",
            r"(算你|算您)\d+",
            r"qq号?(是|为)?\d{5,11}",
            r"[0-9]{3}",
            "满199",
            r"(\d|[0-9])元",
        ] {
            assert!(needs(p), "{p}");
        }
        for p in [r"\d*元", r"好评.{0,6}(返现|\d+元)", r"[a-z0-9_]{5,}", r"(\d)?给你", r"\w+", "给你"]
        {
            assert!(!needs(p), "{p}");
        }
        assert!(has_digit(&chars("给您99元")));
        assert!(has_digit(&chars("给您٣元")), "Arabic-Indic digits are digits to \\d");
        assert!(!has_digit(&chars("已经给您申请了补发")));
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
            let text_chars = chars(text);
            assert_eq!(gated.find(&text_chars, |_| true), all.find(&text_chars, |_| true), "{text}");
            assert!(!gated.find(&text_chars, |_| true).is_empty() || text == "您好", "{text}");
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
            let got = fast.find(&chars(&text), |c| c != 1);
            assert_eq!(got, slow.find(&chars(&text), |c| c != 1), "{text}");
            found += got.len();
        }
        assert!(found > 3_000, "only {found} hits: the comparison saw too few matches");
    }
}

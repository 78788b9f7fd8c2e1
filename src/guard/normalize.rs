//! Normalisation of a message before matching, keeping the way back to the original text.
//!
//! Agents who know a phrase is watched write around it: `加 微 信`, `加-V-信`, `支*付*寶`,
//! `ＶＸ`, `加加微微信信`. Every such form is folded onto one canonical string:
//!
//! 1. full-width forms become half-width (`ＶＸ１２` → `VX12`), then case is folded;
//! 2. traditional characters become simplified through the editable table;
//! 3. everything that is not a letter or digit (spaces, symbols, emoji) is dropped, except
//!    `%` (part of claims like `100%`) and `+` (read as `加`, as in `+V`); clause punctuation
//!    (`，。！？；：、`) is dropped after a single character (`加，微，信`) and otherwise kept as
//!    a boundary `|` that no phrase spans, so `爱买，不买了` is not `爱买不买`;
//! 4. a run of the same non-Latin character counts once (`加加微微信信`); Latin letters and
//!    digits are kept as they are, since they spell words (`qq`) and numbers;
//! 5. variants from the editable table are replaced by their canonical form (`v信` → `微信`).
//!
//! Phrases go through the same steps, so a phrase and its evasions meet in the middle.
//! For every byte of the normalised text the original character span it came from is kept,
//! so a match reports the span in the original message, in characters.

use std::collections::HashMap;

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Input, Match, MatchKind};

/// First code point of the dense traditional→simplified table (CJK Extension A).
const DENSE_LO: u32 = 0x3400;
/// One past the last code point of the dense table (end of the CJK Unified block).
const DENSE_HI: u32 = 0xA000;

/// The half- and full-width forms block, also folded by table.
const WIDE_LO: u32 = 0xFF00;
/// One past its end.
const WIDE_HI: u32 = 0xFFF0;

/// Table entry of a character dropped as noise.
const NOISE: u32 = u32::MAX;
/// Table entry of clause punctuation.
const CLAUSE: u32 = u32::MAX - 1;

/// Folds text onto its canonical form; built once from the t2s and variant tables.
#[derive(Debug, Clone)]
pub struct Normalizer {
    /// What each code point below `DENSE_HI` folds to (ASCII, punctuation, CJK with its
    /// simplified form): the folded character, [`NOISE`] or [`CLAUSE`]. Almost every
    /// character of a Chinese message is one lookup here; the table is filled by
    /// [`fold_uncached`], the rules for every other character, so both agree.
    table: Vec<u32>,
    /// Bit per code point in `DENSE_LO..DENSE_HI`: its table entry is not itself (a
    /// traditional character). Chinese text spreads over this 160 KiB stretch of the table;
    /// the 3 KiB bit set stays in the L1 cache and spares the table read for almost every
    /// character, which is already simplified.
    changed: Vec<u64>,
    /// The same for the half- and full-width forms block (`，！？：０-９Ａ-Ｚ`), as common in
    /// Chinese text as ASCII.
    wide: Vec<u32>,
    /// Traditional→simplified pairs at or above `DENSE_HI` (compatibility ideographs).
    sparse: HashMap<char, char>,
    /// Variant forms (already folded by steps 1–4), leftmost-longest.
    variants: Option<DFA>,
    /// Canonical replacement for each variant pattern.
    targets: Vec<String>,
    /// The first two characters of every variant form, sorted: a text with none of these
    /// pairs has no variant, and the variant search is skipped (most messages).
    pairs: Vec<(char, char)>,
    /// Bit per code point below `DENSE_HI`: the first character of some variant form.
    firsts: Vec<u64>,
    /// Some variant form has one character or starts above `DENSE_HI`: never skip the search.
    always_search: bool,
}

/// A normalised text with, for each byte, the original character span it stands for.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    /// The canonical text that phrases and regular expressions run over.
    pub text: String,
    /// Per byte: the original character span `[start, end)` of the character holding it;
    /// empty when the text was normalised without spans.
    spans: Vec<(u32, u32)>,
    /// Whether `spans` is kept.
    track: bool,
}

impl Normalized {
    /// The original character span `[start, end)` of the normalised bytes `[bs, be)`.
    ///
    /// `bs < be` must hold and both must lie on character boundaries of [`Self::text`],
    /// which every match of a UTF-8 pattern does.
    /// Text normalised with [`Normalizer::normalize_text`] has no spans and gives `(0, 0)`.
    pub fn original_span(&self, bs: usize, be: usize) -> (usize, usize) {
        match (self.spans.get(bs), be.checked_sub(1).and_then(|e| self.spans.get(e))) {
            (Some(s), Some(e)) => (s.0 as usize, e.1 as usize),
            _ => (0, 0),
        }
    }

    /// The original character offset where the normalised character at byte `b` starts.
    pub fn origin_of(&self, b: usize) -> usize {
        self.spans.get(b).map_or(0, |s| s.0 as usize)
    }

    fn with_capacity(bytes: usize, track: bool) -> Self {
        let spans = if track { Vec::with_capacity(bytes) } else { Vec::new() };
        Self { text: String::with_capacity(bytes), spans, track }
    }

    #[inline]
    fn push(&mut self, c: char, start: u32, end: u32) {
        if self.track { self.push_as::<true>(c, start, end) } else { self.push_as::<false>(c, start, end) }
    }

    #[inline(always)]
    fn push_as<const TRACK: bool>(&mut self, c: char, start: u32, end: u32) {
        self.text.push(c);
        if TRACK {
            for _ in 0..c.len_utf8() {
                self.spans.push((start, end));
            }
        }
    }

    /// Extends the last character's original span to `end` (a dropped repeat).
    fn extend_last(&mut self, end: u32) {
        if let Some(e) = self.spans.last_mut() {
            e.1 = end;
        }
    }

    fn last_char(&self) -> Option<char> {
        self.text.chars().next_back()
    }
}

/// Stands for a clause boundary in normalised text; no phrase can contain it.
pub const BOUNDARY: char = '|';

/// What one original character becomes.
enum Folded {
    /// Dropped: spacing, symbols, emoji.
    Noise,
    /// Clause punctuation (`，。！？；：、` and ASCII `,.!?;:`, line breaks).
    Boundary,
    /// Kept as this character.
    Char(char),
}

impl Normalizer {
    /// Builds the normaliser from traditional→simplified pairs and `(variant, canonical)` pairs.
    ///
    /// Variant forms and targets are folded here (steps 1–4), so the tables may be written
    /// in any width or case.
    pub fn new(t2s: &[(char, char)], variants: &[(String, String)]) -> Self {
        let all: HashMap<char, char> = t2s.iter().copied().collect();
        let entry = |cp: u32| match char::from_u32(cp).map(|c| fold_uncached(c, &all)) {
            Some(Folded::Char(f)) => f as u32,
            Some(Folded::Boundary) => CLAUSE,
            Some(Folded::Noise) | None => NOISE,
        };
        let table: Vec<u32> = (0..DENSE_HI).map(entry).collect();
        let mut changed = vec![0u64; (DENSE_HI - DENSE_LO).div_ceil(64) as usize];
        for cp in DENSE_LO..DENSE_HI {
            if table[cp as usize] != cp {
                let i = (cp - DENSE_LO) as usize;
                changed[i / 64] |= 1 << (i % 64);
            }
        }
        let wide = (WIDE_LO..WIDE_HI).map(entry).collect();
        let sparse = all.into_iter().filter(|&(t, _)| t as u32 >= DENSE_HI).collect();
        let mut n = Self {
            table,
            changed,
            wide,
            sparse,
            variants: None,
            targets: Vec::new(),
            pairs: Vec::new(),
            firsts: vec![0; (DENSE_HI / 64) as usize],
            always_search: false,
        };
        let mut forms = Vec::new();
        for (form, target) in variants {
            let f = n.fold_only(form);
            let mut chars = f.chars();
            match (chars.next(), chars.next()) {
                (None, _) => continue,
                (Some(a), Some(b)) if (a as u32) < DENSE_HI => {
                    n.firsts[a as usize / 64] |= 1 << (a as usize % 64);
                    n.pairs.push((a, b));
                }
                _ => n.always_search = true,
            }
            forms.push(f);
            n.targets.push(n.fold_only(target));
        }
        n.pairs.sort_unstable();
        n.pairs.dedup();
        if !forms.is_empty() {
            // Leftmost-longest so `v信` wins over a shorter `v` form at the same place.
            // A DFA without prefilter: on 20–60 character messages a vectorised prefilter
            // costs more to start than the whole scan.
            // The concrete DFA type (not `AhoCorasick`) so the per-byte step is inlined.
            n.variants =
                DFA::builder().match_kind(MatchKind::LeftmostLongest).prefilter(false).build(&forms).ok();
        }
        n
    }

    /// The full canonical form of `text` with its map back to original characters.
    pub fn normalize(&self, text: &str) -> Normalized {
        let mut out = Normalized::with_capacity(text.len(), true);
        self.run(text, &mut out);
        out
    }

    /// The canonical form only, without the map: about half the work, for the first look
    /// at a message (most have no finding and never need a span).
    pub fn normalize_text(&self, text: &str) -> Normalized {
        let mut out = Normalized::with_capacity(text.len(), false);
        self.run(text, &mut out);
        out
    }

    /// [`Self::normalize_text`] into `out`, reusing its buffer: no allocation per message
    /// once the buffer has grown to the longest message.
    pub fn normalize_text_into(&self, text: &str, out: &mut Normalized) {
        out.text.clear();
        out.spans.clear();
        out.track = false;
        self.run(text, out);
    }

    fn run(&self, text: &str, out: &mut Normalized) {
        let may_have_variant =
            if out.track { self.fold_chars::<true>(text, out) } else { self.fold_chars::<false>(text, out) };
        if let Some(dfa) = &self.variants
            && may_have_variant
            && first_match(dfa, &out.text, 0).is_some()
        {
            *out = self.replace_variants(dfa, out);
        }
    }

    /// Steps 1–4 only, without the map (variant forms and targets when the tables load).
    fn fold_only(&self, text: &str) -> String {
        let mut out = Normalized::with_capacity(text.len(), false);
        self.fold_chars::<false>(text, &mut out);
        out.text
    }

    fn starts_variant(&self, c: char) -> bool {
        let cp = c as usize;
        cp < DENSE_HI as usize && self.firsts[cp / 64] & (1 << (cp % 64)) != 0
    }

    /// Steps 1–4: per-character folding, noise removal and repeat collapsing, appended to
    /// `out` (`TRACK` = `out.track`, as a constant so the loop without the map has no
    /// span code); tells whether the result may hold a variant form.
    fn fold_chars<const TRACK: bool>(&self, text: &str, out: &mut Normalized) -> bool {
        let mut may_have_variant = self.always_search;
        let mut last: Option<char> = None;
        // Characters since the last clause punctuation, and that punctuation's position.
        let mut segment = 0usize;
        let mut pending: Option<u32> = None;
        for (i, c) in text.chars().enumerate() {
            let i = i as u32;
            let f = match self.fold(c) {
                Folded::Char(f) => f,
                Folded::Noise => continue,
                Folded::Boundary => {
                    if segment > 0 && pending.is_none() {
                        pending = Some(i);
                    }
                    continue;
                }
            };
            if let Some(p) = pending.take() {
                // Punctuation after a single character is an insertion (`加，微，信`);
                // after a longer run it ends a clause, and no phrase may span it.
                if segment >= 2 {
                    out.push_as::<TRACK>(BOUNDARY, p, p + 1);
                    last = Some(BOUNDARY);
                }
                segment = 0;
            }
            if last == Some(f) && !f.is_ascii() {
                if TRACK {
                    out.extend_last(i + 1);
                }
                continue;
            }
            if let Some(l) = last.filter(|&l| self.starts_variant(l)) {
                may_have_variant |= self.pairs.binary_search(&(l, f)).is_ok();
            }
            out.push_as::<TRACK>(f, i, i + 1);
            last = Some(f);
            segment += 1;
        }
        may_have_variant
    }

    /// Step 5: replaces variant forms, keeping each replacement's original span.
    fn replace_variants(&self, dfa: &DFA, from: &Normalized) -> Normalized {
        let mut out = Normalized::with_capacity(from.text.len() + 8, from.track);
        let span = |b: usize, c: char| from.original_span(b, b + c.len_utf8());
        let mut at = 0;
        let push_collapsing = |out: &mut Normalized, c: char, s: u32, e: u32| {
            if out.last_char() == Some(c) && !c.is_ascii() {
                out.extend_last(e);
            } else {
                out.push(c, s, e);
            }
        };
        while let Some(m) = first_match(dfa, &from.text, at) {
            for (off, c) in from.text[at..m.start()].char_indices() {
                let (s, e) = span(at + off, c);
                push_collapsing(&mut out, c, s as u32, e as u32);
            }
            let (s, e) = from.original_span(m.start(), m.end());
            for c in self.targets[m.pattern().as_usize()].chars() {
                push_collapsing(&mut out, c, s as u32, e as u32);
            }
            at = m.end();
        }
        for (off, c) in from.text[at..].char_indices() {
            let (s, e) = span(at + off, c);
            push_collapsing(&mut out, c, s as u32, e as u32);
        }
        out
    }

    #[inline(always)]
    fn fold(&self, c: char) -> Folded {
        let cp = c as u32;
        if (DENSE_LO..DENSE_HI).contains(&cp) {
            let i = (cp - DENSE_LO) as usize;
            if self.changed[i / 64] & (1 << (i % 64)) == 0 {
                return Folded::Char(c);
            }
        }
        let entry = if cp < DENSE_HI {
            self.table.get(cp as usize)
        } else if (WIDE_LO..WIDE_HI).contains(&cp) {
            self.wide.get((cp - WIDE_LO) as usize)
        } else {
            None
        };
        match entry {
            Some(&NOISE) => Folded::Noise,
            Some(&CLAUSE) => Folded::Boundary,
            // Entries are characters by construction.
            Some(&f) => Folded::Char(char::from_u32(f).unwrap_or(c)),
            None => fold_uncached(c, &self.sparse),
        }
    }
}

/// What `c` folds to, by the rules (the table caches this below `DENSE_HI`).
fn fold_uncached(c: char, t2s: &HashMap<char, char>) -> Folded {
    let cp = c as u32;
    if cp < 0x80 {
        return fold_ascii(c);
    }
    // Full-width ASCII forms (！ to ～) sit at a fixed distance from ASCII.
    if (0xFF01..=0xFF5E).contains(&cp) {
        return char::from_u32(cp - 0xFEE0).map_or(Folded::Noise, fold_ascii);
    }
    if (DENSE_LO..DENSE_HI).contains(&cp) {
        return Folded::Char(t2s.get(&c).copied().unwrap_or(c));
    }
    if let Some(&s) = t2s.get(&c) {
        return Folded::Char(s);
    }
    if c == '➕' {
        return Folded::Char('加');
    }
    if matches!(c, '。' | '、' | '…') {
        return Folded::Boundary;
    }
    if !c.is_alphanumeric() {
        return Folded::Noise;
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => Folded::Char(l),
        _ => Folded::Char(c),
    }
}

/// The leftmost-longest variant at or after byte `at`.
fn first_match(dfa: &DFA, text: &str, at: usize) -> Option<Match> {
    dfa.try_find(&Input::new(text).range(at..)).ok().flatten()
}

fn fold_ascii(c: char) -> Folded {
    match c {
        'A'..='Z' => Folded::Char(c.to_ascii_lowercase()),
        'a'..='z' | '0'..='9' | '%' => Folded::Char(c),
        '+' => Folded::Char('加'),
        ',' | '.' | '!' | '?' | ';' | ':' | '\n' | '\r' => Folded::Boundary,
        _ => Folded::Noise,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalizer() -> Normalizer {
        let t2s = [('說', '说'), ('遍', '遍'), ('寶', '宝'), ('國', '国'), ('級', '级')];
        let variants = [("VX", "微信"), ("V信", "微信"), ("薇信", "微信"), ("扣扣号", "QQ号")]
            .map(|(a, b)| (a.to_string(), b.to_string()));
        Normalizer::new(&t2s, &variants)
    }

    #[test]
    fn folds_evasions_onto_one_form() {
        let n = normalizer();
        let cases = [
            ("加微信", "加微信"),
            ("加 微 信", "加微信"),
            ("加-V-信", "加微信"),
            ("加ＶＸ", "加微信"),
            ("加vx", "加微信"),
            ("加薇信", "加微信"),
            ("支*付*寶", "支付宝"),
            ("說了多少遍了！！", "说了多少遍了"),
            ("說了多少遍了！！你看", "说了多少遍了|你看"),
            ("加加微微信信", "加微信"),
            ("國家級", "国家级"),
            ("+v信", "加微信"),
            ("加扣扣号", "加qq号"),
            ("打折扣", "打折扣"),
            ("100%正品", "100%正品"),
            ("１３８ 0000 1111", "13800001111"),
            ("😊🌹", ""),
            ("加，微，信", "加微信"),
            ("亲，加微信。好的", "亲加微信|好的"),
            ("我爱买，不买了", "我爱买|不买了"),
        ];
        for (input, want) in cases {
            assert_eq!(n.normalize(input).text, want, "{input}");
        }
    }

    #[test]
    fn spans_point_at_original_characters() {
        let n = normalizer();
        // "亲，加 -V- 信吧" : 亲0 ，1 加2 空3 -4 V5 -6 空7 信8 吧9
        let norm = n.normalize("亲，加 -V- 信吧");
        assert_eq!(norm.text, "亲加微信吧");
        let b = norm.text.find("加微信").unwrap();
        assert_eq!(norm.original_span(b, b + "加微信".len()), (2, 9));
        // A dropped repeat widens the span of the character it repeats.
        let norm = n.normalize("加加微信信好");
        let b = norm.text.find("加微信").unwrap();
        assert_eq!(norm.original_span(b, b + "加微信".len()), (0, 5));
    }

    #[test]
    fn the_table_folds_as_the_rules_do() {
        let n = normalizer();
        let t2s: HashMap<char, char> =
            [('說', '说'), ('遍', '遍'), ('寶', '宝'), ('國', '国'), ('級', '级')].into_iter().collect();
        for cp in 0..0x11000u32 {
            let Some(c) = char::from_u32(cp) else { continue };
            let (a, b) = (n.fold(c), fold_uncached(c, &t2s));
            let same =
                matches!((&a, &b), (Folded::Noise, Folded::Noise) | (Folded::Boundary, Folded::Boundary))
                    || matches!((&a, &b), (Folded::Char(x), Folded::Char(y)) if x == y);
            assert!(same, "U+{cp:04X}");
        }
    }

    #[test]
    fn a_reused_buffer_gives_what_a_fresh_one_gives() {
        let n = normalizer();
        let mut buf = Normalized::default();
        for text in ["亲，加 -V- 信吧，说了多少遍了！！你看", "加vx", "", "好", "國家級 100% 正品"]
        {
            n.normalize_text_into(text, &mut buf);
            assert_eq!(buf.text, n.normalize_text(text).text, "{text}");
            assert_eq!(buf.text, n.normalize(text).text, "{text}");
        }
    }
}

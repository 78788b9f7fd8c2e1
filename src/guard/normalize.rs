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
//! For every character of the normalised text the original character span it came from is
//! kept, so a match reports the span in the original message, in characters.

use std::collections::HashMap;

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Input, Match, MatchKind};

/// Size of the folding table: the Basic Multilingual Plane, where all but emoji and rare
/// ideographs of a Chinese message live.
const BMP: usize = 0x10000;

/// Table entry of a character dropped as noise (no character folds to U+0000).
const NOISE: u16 = 0;
/// Table entry of clause punctuation.
const CLAUSE: u16 = 1;
/// Table entry of a character whose fold lies outside the plane: folded by the rules.
const ELSEWHERE: u16 = 2;

/// Folds text onto its canonical form; built once from the t2s and variant tables.
#[derive(Debug, Clone)]
pub struct Normalizer {
    /// What each code point of the plane folds to: the folded character, [`NOISE`],
    /// [`CLAUSE`] or [`ELSEWHERE`]. Every character of a Chinese message but emoji is one
    /// lookup here (128 KiB, of which a message touches a few dozen lines); the table is
    /// filled by [`fold_uncached`], the rules for every other character, so both agree.
    table: Vec<u16>,
    /// Bit per code point of the plane: the character is kept as it is (it folds to itself),
    /// is not a digit and starts no variant form — most characters of a message, which
    /// take the short way through the folding loop on this 8 KiB set alone.
    plain: Vec<u64>,
    /// All traditional→simplified pairs, for characters outside the table.
    t2s: HashMap<char, char>,
    /// Variant forms (already folded by steps 1–4), leftmost-longest.
    variants: Option<DFA>,
    /// Canonical replacement for each variant pattern.
    targets: Vec<String>,
    /// The first two characters of every variant form, sorted: a text with none of these
    /// pairs has no variant, and the variant search is skipped (most messages).
    pairs: Vec<(char, char)>,
    /// Bit per code point of the plane: the first character of some variant form.
    firsts: Vec<u64>,
    /// Some variant form has one character or starts outside the plane: never skip the search.
    always_search: bool,
}

/// A normalised text as characters, with, for each, the original character span it stands for.
///
/// Characters rather than UTF-8: the matcher reads character pairs, and decoding the text
/// a second time cost as much as folding it. Offsets into a normalised text are character
/// indices; [`Normalized::text`] builds the string where one is needed (regexes, display).
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    /// The canonical characters that phrases and regular expressions run over.
    pub chars: Vec<char>,
    /// Per character: the original character span `[start, end)` it stands for; empty
    /// when the text was normalised without spans.
    spans: Vec<(u32, u32)>,
    /// Whether `spans` is kept.
    track: bool,
    /// Digits in the original text (ASCII and full width), counted in the same pass for
    /// the personal-data scan, which needs several before a number can be one.
    pub digits: u32,
    /// Whether the original text has an `@` (ASCII or full width): the e-mail scan's cue.
    pub at_sign: bool,
}

impl Normalized {
    /// The canonical text as a string.
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// The original character span `[start, end)` of the normalised characters `[cs, ce)`
    /// (`cs < ce`). Text normalised with [`Normalizer::normalize_text`] has no spans and
    /// gives `(0, 0)`.
    pub fn original_span(&self, cs: usize, ce: usize) -> (usize, usize) {
        match (self.spans.get(cs), ce.checked_sub(1).and_then(|e| self.spans.get(e))) {
            (Some(s), Some(e)) => (s.0 as usize, e.1 as usize),
            _ => (0, 0),
        }
    }

    /// The original character offset where the normalised character `i` starts.
    pub fn origin_of(&self, i: usize) -> usize {
        self.spans.get(i).map_or(0, |s| s.0 as usize)
    }

    /// Empty, keeping the buffers' capacity, with or without spans from now on.
    fn reset(&mut self, track: bool) {
        self.chars.clear();
        self.spans.clear();
        self.track = track;
        self.digits = 0;
        self.at_sign = false;
    }

    fn with_capacity(chars: usize, track: bool) -> Self {
        let spans = if track { Vec::with_capacity(chars) } else { Vec::new() };
        Self { chars: Vec::with_capacity(chars), spans, track, digits: 0, at_sign: false }
    }

    #[inline]
    fn push(&mut self, c: char, start: u32, end: u32) {
        self.chars.push(c);
        if self.track {
            self.spans.push((start, end));
        }
    }

    /// Extends the last character's original span to `end` (a dropped repeat).
    fn extend_last(&mut self, end: u32) {
        if let Some(e) = self.spans.last_mut() {
            e.1 = end;
        }
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
            Some(Folded::Char(f)) => {
                u16::try_from(u32::from(f)).ok().filter(|&f| f > ELSEWHERE).unwrap_or(ELSEWHERE)
            }
            Some(Folded::Boundary) => CLAUSE,
            Some(Folded::Noise) | None => NOISE,
        };
        let table: Vec<u16> = (0..BMP as u32).map(entry).collect();
        let mut n = Self {
            table,
            plain: Vec::new(),
            t2s: all,
            variants: None,
            targets: Vec::new(),
            pairs: Vec::new(),
            firsts: vec![0; BMP / 64],
            always_search: false,
        };
        let mut forms = Vec::new();
        for (form, target) in variants {
            let f = n.fold_only(form);
            let mut chars = f.chars();
            match (chars.next(), chars.next()) {
                (None, _) => continue,
                (Some(a), Some(b)) if (a as usize) < BMP => {
                    n.firsts[a as usize / 64] |= 1 << (a as usize % 64);
                    n.pairs.push((a, b));
                }
                _ => n.always_search = true,
            }
            forms.push(f);
            n.targets.push(n.fold_only(target));
        }
        n.plain = vec![0; BMP / 64];
        for (cp, &e) in n.table.iter().enumerate() {
            let kept = usize::from(e) == cp && e > ELSEWHERE;
            let digit = u8::try_from(cp).is_ok_and(|b| b.is_ascii_digit());
            let starts = n.firsts[cp / 64] & (1 << (cp % 64)) != 0;
            if kept && !digit && !starts {
                n.plain[cp / 64] |= 1 << (cp % 64);
            }
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

    /// [`Self::normalize`] into `out`, reusing its buffers.
    pub fn normalize_into(&self, text: &str, out: &mut Normalized) {
        out.reset(true);
        self.run(text, out);
    }

    /// [`Self::normalize_text`] into `out`, reusing its buffer: no allocation per message
    /// once the buffer has grown to the longest message.
    pub fn normalize_text_into(&self, text: &str, out: &mut Normalized) {
        out.reset(false);
        self.run(text, out);
    }

    /// The canonical form of `text` as a string (phrases, cue words, display).
    pub fn canonical(&self, text: &str) -> String {
        self.normalize_text(text).text()
    }

    fn run(&self, text: &str, out: &mut Normalized) {
        // Every original character gives at most one normalised character (a clause
        // boundary stands in for a dropped one), so pushing never reallocates.
        out.chars.reserve(text.len());
        if out.track {
            out.spans.reserve(text.len());
        }
        let may_have_variant =
            if out.track { self.fold_chars::<true>(text, out) } else { self.fold_chars::<false>(text, out) };
        if let Some(dfa) = &self.variants
            && may_have_variant
        {
            let s = out.text();
            if first_match(dfa, &s, 0).is_some() {
                let (digits, at_sign) = (out.digits, out.at_sign);
                *out = self.replace_variants(dfa, out, &s);
                (out.digits, out.at_sign) = (digits, at_sign);
            }
        }
    }

    /// Steps 1–4 only, without the map (variant forms and targets when the tables load).
    fn fold_only(&self, text: &str) -> String {
        let mut out = Normalized::with_capacity(text.len(), false);
        self.fold_chars::<false>(text, &mut out);
        out.text()
    }

    /// Whether some variant form starts with `a b` (out of line, like [`fold_uncached`]).
    #[inline(never)]
    fn is_variant_pair(&self, a: char, b: char) -> bool {
        self.pairs.binary_search(&(a, b)).is_ok()
    }

    fn starts_variant(&self, c: char) -> bool {
        let cp = c as usize;
        self.firsts.get(cp / 64).is_some_and(|w| w & (1 << (cp % 64)) != 0)
    }

    /// Steps 1–4: per-character folding, noise removal and repeat collapsing, appended to
    /// `out` (`TRACK` = `out.track`, as a constant so the loop without the map has no
    /// span code); tells whether the result may hold a variant form.
    fn fold_chars<const TRACK: bool>(&self, text: &str, out: &mut Normalized) -> bool {
        // The output and the counts as locals for the loop, so their lengths and sums stay
        // in registers instead of being written back to `out` at every character.
        let mut chars = std::mem::take(&mut out.chars);
        let mut spans = std::mem::take(&mut out.spans);
        let (mut digits, mut at_sign) = (0u32, false);
        let mut may_have_variant = self.always_search;
        // The last character pushed (`'\0'` for none: no folded character is NUL) and
        // whether it starts a variant form.
        let mut last = '\0';
        let mut last_starts_variant = false;
        // Characters since the last clause punctuation, and that punctuation's position.
        let mut segment = 0usize;
        let mut pending: Option<u32> = None;
        for (i, c) in text.chars().enumerate() {
            let i = i as u32;
            let cp = c as usize;
            if self.plain.get(cp / 64).is_some_and(|w| w & (1 << (cp % 64)) != 0)
                && c != last
                && pending.is_none()
                && !last_starts_variant
            {
                // The short way: kept as it is, no repeat, no boundary or variant to settle.
                chars.push(c);
                if TRACK {
                    spans.push((i, i + 1));
                }
                last = c;
                segment += 1;
                continue;
            }
            let f = match self.fold(c) {
                Folded::Char(f) => f,
                Folded::Noise => {
                    at_sign |= c == '@' || c == '＠';
                    continue;
                }
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
                    chars.push(BOUNDARY);
                    if TRACK {
                        spans.push((p, p + 1));
                    }
                    last = BOUNDARY;
                    last_starts_variant = false;
                }
                segment = 0;
            }
            digits += u32::from(f.is_ascii_digit());
            if last == f && !f.is_ascii() {
                // A dropped repeat widens the span of the character it repeats.
                if let Some(e) = spans.last_mut().filter(|_| TRACK) {
                    e.1 = i + 1;
                }
                continue;
            }
            if last_starts_variant {
                may_have_variant |= self.is_variant_pair(last, f);
            }
            chars.push(f);
            if TRACK {
                spans.push((i, i + 1));
            }
            last = f;
            last_starts_variant = self.starts_variant(f);
            segment += 1;
        }
        out.chars = chars;
        out.spans = spans;
        out.digits += digits;
        out.at_sign |= at_sign;
        may_have_variant
    }

    /// Step 5: replaces variant forms, keeping each replacement's original span.
    /// `text` is `from` as a string (the automaton runs over bytes).
    fn replace_variants(&self, dfa: &DFA, from: &Normalized, text: &str) -> Normalized {
        let mut out = Normalized::with_capacity(from.chars.len() + 8, from.track);
        // Byte offset → character index, for the automaton's match bounds.
        let mut char_at = vec![0usize; text.len() + 1];
        for (ci, (b, _)) in text.char_indices().enumerate() {
            char_at[b] = ci;
        }
        char_at[text.len()] = from.chars.len();
        let span = |i: usize| from.spans.get(i).map_or((0, 0), |s| *s);
        let push_collapsing = |out: &mut Normalized, c: char, (s, e): (u32, u32)| {
            if out.chars.last() == Some(&c) && !c.is_ascii() {
                out.extend_last(e);
            } else {
                out.push(c, s, e);
            }
        };
        let mut at = 0;
        while let Some(m) = first_match(dfa, text, at) {
            let (ms, me) = (char_at[m.start()], char_at[m.end()]);
            for i in char_at[at]..ms {
                push_collapsing(&mut out, from.chars[i], span(i));
            }
            let (s, e) = from.original_span(ms, me);
            for c in self.targets[m.pattern().as_usize()].chars() {
                push_collapsing(&mut out, c, (s as u32, e as u32));
            }
            at = m.end();
        }
        for i in char_at[at]..from.chars.len() {
            push_collapsing(&mut out, from.chars[i], span(i));
        }
        out
    }

    #[inline(always)]
    fn fold(&self, c: char) -> Folded {
        match self.table.get(c as usize) {
            Some(&NOISE) => Folded::Noise,
            Some(&CLAUSE) => Folded::Boundary,
            Some(&ELSEWHERE) | None => fold_uncached(c, &self.t2s),
            // Entries are characters by construction.
            Some(&f) => Folded::Char(char::from_u32(u32::from(f)).unwrap_or(c)),
        }
    }
}

/// What `c` folds to, by the rules (the table caches this for the plane).
///
/// Kept out of line: inlined into the folding loop it costs registers the common path needs.
#[cold]
#[inline(never)]
fn fold_uncached(c: char, t2s: &HashMap<char, char>) -> Folded {
    let cp = c as u32;
    if cp < 0x80 {
        return fold_ascii(c);
    }
    // Full-width ASCII forms (！ to ～) sit at a fixed distance from ASCII.
    if (0xFF01..=0xFF5E).contains(&cp) {
        return char::from_u32(cp - 0xFEE0).map_or(Folded::Noise, fold_ascii);
    }
    if ('\u{3400}'..'\u{A000}').contains(&c) {
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
            assert_eq!(n.normalize(input).text(), want, "{input}");
        }
    }

    #[test]
    fn spans_point_at_original_characters() {
        let n = normalizer();
        // "亲，加 -V- 信吧" : 亲0 ，1 加2 空3 -4 V5 -6 空7 信8 吧9
        let norm = n.normalize("亲，加 -V- 信吧");
        assert_eq!(norm.text(), "亲加微信吧");
        // 加微信 is normalised characters 1..4.
        assert_eq!(norm.original_span(1, 4), (2, 9));
        // A dropped repeat widens the span of the character it repeats.
        let norm = n.normalize("加加微信信好");
        assert_eq!(norm.text(), "加微信好");
        assert_eq!(norm.original_span(0, 3), (0, 5));
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
            // The short way through the loop is only for characters the rules keep as
            // they are and that neither count as digits nor start a variant.
            let plain = n.plain.get(cp as usize / 64).is_some_and(|w| w & (1 << (cp % 64)) != 0);
            if plain {
                assert!(matches!(b, Folded::Char(x) if x == c), "U+{cp:04X} is changed but marked plain");
                assert!(!c.is_ascii_digit() && !n.starts_variant(c), "U+{cp:04X}");
            }
        }
        // Most characters of a Chinese message take the short way.
        assert!(
            "欢迎光临本店纯棉面料abc"
                .chars()
                .all(|c| n.plain[c as usize / 64] & (1 << (c as usize % 64)) != 0)
        );
    }

    /// Steps 1–4 as the module documentation states them, one character at a time through
    /// the rules, with none of the loop's shortcuts.
    fn reference_fold(t2s: &HashMap<char, char>, text: &str) -> String {
        let mut out: Vec<char> = Vec::new();
        let (mut segment, mut pending) = (0, false);
        for c in text.chars() {
            match fold_uncached(c, t2s) {
                Folded::Noise => {}
                Folded::Boundary => pending |= segment > 0,
                Folded::Char(f) => {
                    if pending && segment >= 2 {
                        out.push(BOUNDARY);
                    }
                    if pending {
                        (segment, pending) = (0, false);
                    }
                    if out.last() != Some(&f) || f.is_ascii() {
                        out.push(f);
                        segment += 1;
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    #[test]
    fn the_folding_loop_agrees_with_the_rules_on_random_text() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};

        let n = normalizer();
        let t2s: HashMap<char, char> =
            [('說', '说'), ('遍', '遍'), ('寶', '宝'), ('國', '国'), ('級', '级')].into_iter().collect();
        let pool: Vec<char> =
            "加微信说說遍寶國級 ，。！!?,.VvXx１３８05的亲😊-*+＠@ＡaＺ扣号%\n".chars().collect();
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..24);
            let text: String = (0..len).map(|_| pool[rng.gen_range(0..pool.len())]).collect();
            assert_eq!(n.fold_only(&text), reference_fold(&t2s, &text), "{text:?}");
            let digits = text.chars().filter(|c| c.is_ascii_digit() || ('０'..='９').contains(c)).count();
            let counted = n.normalize_text(&text);
            assert_eq!(counted.digits as usize, digits, "{text:?}");
            assert_eq!(counted.at_sign, text.contains(['@', '＠']), "{text:?}");
        }
    }

    #[test]
    fn a_reused_buffer_gives_what_a_fresh_one_gives() {
        let n = normalizer();
        let mut buf = Normalized::default();
        for text in ["亲，加 -V- 信吧，说了多少遍了！！你看", "加vx", "", "好", "國家級 100% 正品"]
        {
            n.normalize_text_into(text, &mut buf);
            assert_eq!(buf.chars, n.normalize_text(text).chars, "{text}");
            assert_eq!(buf.chars, n.normalize(text).chars, "{text}");
        }
    }
}

//! Normalisation of a message before matching, keeping the way back to the original text.
//!
//! Agents who know a phrase is watched write around it: `加 微 信`, `加-V-信`, `支*付*寶`,
//! `ＶＸ`, `加加微微信信`. Every such form is folded onto one canonical string:
//!
//! 1. full-width forms become half-width (`ＶＸ１２` → `VX12`), then case is folded;
//! 2. traditional characters become simplified through the editable table;
//! 3. everything that is not a letter or digit (spaces, punctuation, symbols, emoji) is
//!    dropped, except `%` (part of claims like `100%`) and `+` (read as `加`, as in `+V`);
//! 4. a run of the same non-Latin character counts once (`加加微微信信`); Latin letters and
//!    digits are kept as they are, since they spell words (`qq`) and numbers;
//! 5. variants from the editable table are replaced by their canonical form (`v信` → `微信`).
//!
//! Phrases go through the same steps, so a phrase and its evasions meet in the middle.
//! For every byte of the normalised text the original character span it came from is kept,
//! so a match reports the span in the original message, in characters.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};

/// First code point of the dense traditional→simplified table (CJK Extension A).
const DENSE_LO: u32 = 0x3400;
/// One past the last code point of the dense table (end of the CJK Unified block).
const DENSE_HI: u32 = 0xA000;

/// Folds text onto its canonical form; built once from the t2s and variant tables.
#[derive(Debug, Clone)]
pub struct Normalizer {
    /// Simplified form per code point in `DENSE_LO..DENSE_HI`; `'\0'` where unchanged.
    dense: Vec<char>,
    /// Pairs outside the dense range (compatibility ideographs and the like).
    sparse: HashMap<char, char>,
    /// Variant forms (already folded by steps 1–4), longest first.
    variants: Option<AhoCorasick>,
    /// Canonical replacement for each variant pattern.
    targets: Vec<String>,
}

/// A normalised text with, for each byte, the original character span it stands for.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    /// The canonical text that phrases and regular expressions run over.
    pub text: String,
    /// Original character offset where the character holding this byte starts.
    starts: Vec<u32>,
    /// Original character offset (exclusive) where the character holding this byte ends.
    ends: Vec<u32>,
}

impl Normalized {
    /// The original character span `[start, end)` of the normalised bytes `[bs, be)`.
    ///
    /// `bs < be` must hold and both must lie on character boundaries of [`Self::text`],
    /// which every match of a UTF-8 pattern does.
    pub fn original_span(&self, bs: usize, be: usize) -> (usize, usize) {
        (self.starts[bs] as usize, self.ends[be - 1] as usize)
    }

    /// The original character offset where the normalised character at byte `b` starts.
    pub fn origin_of(&self, b: usize) -> usize {
        self.starts[b] as usize
    }

    fn push(&mut self, c: char, start: u32, end: u32) {
        self.text.push(c);
        for _ in 0..c.len_utf8() {
            self.starts.push(start);
            self.ends.push(end);
        }
    }

    /// Extends the last character's original span to `end` (a dropped repeat).
    fn extend_last(&mut self, end: u32) {
        if let Some(e) = self.ends.last_mut() {
            *e = end;
        }
    }

    fn last_char(&self) -> Option<char> {
        self.text.chars().next_back()
    }
}

/// What one original character becomes.
enum Folded {
    /// Dropped: spacing, punctuation, symbols.
    Noise,
    /// Kept as this character.
    Char(char),
}

impl Normalizer {
    /// Builds the normaliser from traditional→simplified pairs and `(variant, canonical)` pairs.
    ///
    /// Variant forms and targets are folded here (steps 1–4), so the tables may be written
    /// in any width or case.
    pub fn new(t2s: &[(char, char)], variants: &[(String, String)]) -> Self {
        let mut dense = vec!['\0'; (DENSE_HI - DENSE_LO) as usize];
        let mut sparse = HashMap::new();
        for &(t, s) in t2s {
            let cp = t as u32;
            if (DENSE_LO..DENSE_HI).contains(&cp) {
                dense[(cp - DENSE_LO) as usize] = s;
            } else {
                sparse.insert(t, s);
            }
        }
        let mut n = Self { dense, sparse, variants: None, targets: Vec::new() };
        let mut forms = Vec::new();
        for (form, target) in variants {
            let f = n.fold_chars(form).text;
            if f.is_empty() {
                continue;
            }
            forms.push(f);
            n.targets.push(n.fold_chars(target).text);
        }
        if !forms.is_empty() {
            // Leftmost-longest so `v信` wins over a shorter `v` form at the same place.
            n.variants = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&forms).ok();
        }
        n
    }

    /// The full canonical form of `text` with its map back to original characters.
    pub fn normalize(&self, text: &str) -> Normalized {
        let folded = self.fold_chars(text);
        match &self.variants {
            Some(ac) if ac.is_match(&folded.text) => self.replace_variants(ac, &folded),
            _ => folded,
        }
    }

    /// Steps 1–4: per-character folding, noise removal and repeat collapsing.
    fn fold_chars(&self, text: &str) -> Normalized {
        let mut out = Normalized {
            text: String::with_capacity(text.len()),
            starts: Vec::with_capacity(text.len()),
            ends: Vec::with_capacity(text.len()),
        };
        let mut last: Option<char> = None;
        for (i, c) in text.chars().enumerate() {
            let i = i as u32;
            let Folded::Char(f) = self.fold(c) else { continue };
            if last == Some(f) && !f.is_ascii() {
                out.extend_last(i + 1);
                continue;
            }
            out.push(f, i, i + 1);
            last = Some(f);
        }
        out
    }

    /// Step 5: replaces variant forms, keeping each replacement's original span.
    fn replace_variants(&self, ac: &AhoCorasick, from: &Normalized) -> Normalized {
        let mut out = Normalized {
            text: String::with_capacity(from.text.len() + 8),
            starts: Vec::with_capacity(from.starts.len() + 8),
            ends: Vec::with_capacity(from.ends.len() + 8),
        };
        let mut at = 0;
        let push_collapsing = |out: &mut Normalized, c: char, s: u32, e: u32| {
            if out.last_char() == Some(c) && !c.is_ascii() {
                out.extend_last(e);
            } else {
                out.push(c, s, e);
            }
        };
        for m in ac.find_iter(&from.text) {
            for (off, c) in from.text[at..m.start()].char_indices() {
                let b = at + off;
                push_collapsing(&mut out, c, from.starts[b], from.ends[b + c.len_utf8() - 1]);
            }
            let (s, e) = from.original_span(m.start(), m.end());
            for c in self.targets[m.pattern().as_usize()].chars() {
                push_collapsing(&mut out, c, s as u32, e as u32);
            }
            at = m.end();
        }
        for (off, c) in from.text[at..].char_indices() {
            let b = at + off;
            push_collapsing(&mut out, c, from.starts[b], from.ends[b + c.len_utf8() - 1]);
        }
        out
    }

    fn fold(&self, c: char) -> Folded {
        let cp = c as u32;
        if cp < 0x80 {
            return fold_ascii(c);
        }
        // Full-width ASCII forms (！ to ～) sit at a fixed distance from ASCII.
        if (0xFF01..=0xFF5E).contains(&cp) {
            return char::from_u32(cp - 0xFEE0).map_or(Folded::Noise, fold_ascii);
        }
        if (DENSE_LO..DENSE_HI).contains(&cp) {
            let s = self.dense[(cp - DENSE_LO) as usize];
            return Folded::Char(if s == '\0' { c } else { s });
        }
        if let Some(&s) = self.sparse.get(&c) {
            return Folded::Char(s);
        }
        if c == '➕' {
            return Folded::Char('加');
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
}

fn fold_ascii(c: char) -> Folded {
    match c {
        'A'..='Z' => Folded::Char(c.to_ascii_lowercase()),
        'a'..='z' | '0'..='9' | '%' => Folded::Char(c),
        '+' => Folded::Char('加'),
        _ => Folded::Noise,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalizer() -> Normalizer {
        let t2s = [('說', '说'), ('遍', '遍'), ('寶', '宝'), ('國', '国'), ('級', '级')];
        let variants = [("VX", "微信"), ("V信", "微信"), ("薇信", "微信"), ("扣扣", "QQ")]
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
            ("加加微微信信", "加微信"),
            ("國家級", "国家级"),
            ("+v信", "加微信"),
            ("加扣扣", "加qq"),
            ("100%正品", "100%正品"),
            ("１３８ 0000 1111", "13800001111"),
            ("😊🌹", ""),
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
}

//! Personal data in a message: mainland mobile numbers, ID card numbers (check digit),
//! bank card numbers (Luhn), e-mail addresses and a WeChat id after a cue word — found in
//! the original text, with the masked form every human-facing output shows.
//!
//! Numbers are read across single spaces or hyphens (`138 1234 5678`, `138-1234-5678`) and
//! in full-width digits; a `+86`/`86` prefix is part of the mobile number.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::privacy::{mask_id, mask_phone};

/// The kind of personal data found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// Mainland mobile number (11 digits, `1[3-9]…`).
    Mobile,
    /// Resident ID card number (18 characters, GB 11643 check digit).
    IdCard,
    /// Bank card number (16–19 digits, Luhn).
    BankCard,
    /// E-mail address.
    Email,
    /// WeChat id written after a cue word (`微信号: abc_123`).
    Wechat,
}

impl PiiKind {
    /// Every kind, in the order the rule file lists them.
    pub const ALL: [Self; 5] = [Self::Mobile, Self::IdCard, Self::BankCard, Self::Email, Self::Wechat];

    /// The name used in rule files and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::IdCard => "id_card",
            Self::BankCard => "bank_card",
            Self::Email => "email",
            Self::Wechat => "wechat",
        }
    }

    /// The kind named `s` (as written by [`Self::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The masked form of `raw`, a value of this kind as it appeared in the text.
    ///
    /// Star counts are fixed so the mask does not tell the value's length.
    pub fn mask(self, raw: &str) -> String {
        let digits: String = raw.chars().filter_map(ascii_digit).collect();
        match self {
            Self::Mobile => mask_phone(&digits[digits.len().saturating_sub(11)..]),
            Self::IdCard => {
                let all: Vec<char> = raw.chars().filter_map(id_char).collect();
                let head: String = all.iter().take(3).collect();
                let tail: String = all.iter().skip(all.len().saturating_sub(4)).collect();
                format!("{head}***********{tail}")
            }
            Self::BankCard => {
                let tail = &digits[digits.len().saturating_sub(4)..];
                format!("{}********{tail}", &digits[..4.min(digits.len())])
            }
            Self::Email => match raw.split_once('@') {
                Some((local, domain)) => {
                    format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
                }
                None => mask_id(raw),
            },
            Self::Wechat => mask_id(raw),
        }
    }
}

/// One piece of personal data: where it is (original characters) and how it is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiHit {
    /// What it is.
    pub kind: PiiKind,
    /// First character, in characters of the original text.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// The masked form, safe for alerts, logs and reports.
    pub masked: String,
}

/// Finds personal data; built from the cue words in the rule file.
#[derive(Debug, Clone)]
pub struct PiiScanner {
    email: Regex,
    wechat: Option<Regex>,
    /// Words right before a long number that make it an order or waybill number.
    number_cues: Vec<Vec<char>>,
}

/// The fewest digits of any number kind (a mobile number).
const MIN_DIGITS: usize = 11;

/// How far back (in characters) a cue word before a number is looked for.
const CUE_WINDOW: usize = 8;

impl PiiScanner {
    /// A scanner whose WeChat pattern starts at `wechat_cues` and whose card/ID detection
    /// skips numbers preceded by one of `number_cues` (订单号, 运单号 …).
    pub fn new(wechat_cues: &[String], number_cues: &[String]) -> Result<Self, regex::Error> {
        let email = Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")?;
        let wechat = if wechat_cues.is_empty() {
            None
        } else {
            let cues: Vec<String> = wechat_cues.iter().map(|c| regex::escape(c)).collect();
            Some(Regex::new(&format!(
                r"(?i)(?:{})\s*(?:号码|号|id)?\s*[:：]?\s*(?:是|为)?\s*[:：]?\s*([a-z][-_a-z0-9]{{5,19}})",
                cues.join("|")
            ))?)
        };
        let number_cues = number_cues.iter().map(|c| c.chars().collect()).collect();
        Ok(Self { email, wechat, number_cues })
    }

    /// Every piece of personal data in `text`, by start; a hit inside another is dropped.
    pub fn scan(&self, text: &str) -> Vec<PiiHit> {
        self.scan_gated(text, true)
    }

    /// [`Self::scan`], skipping the WeChat pattern when `may_have_cue` is false — the guard
    /// knows from the normalised text (where every cue variant reads `微信`) that no cue is
    /// there, which is much cheaper than the case-insensitive pattern on every message.
    pub fn scan_gated(&self, text: &str, may_have_cue: bool) -> Vec<PiiHit> {
        let email = text.as_bytes().contains(&b'@') || text.contains('＠');
        self.scan_with(text, may_have_digits(text.as_bytes()), email, may_have_cue)
    }

    /// [`Self::scan_gated`] with the pre-checks' counts taken by the caller's own pass over
    /// the text (the normaliser counts digits and `@` as it folds): `digits` ASCII and
    /// full-width digits, whether an `@` or `＠` occurs.
    pub fn scan_counted(&self, text: &str, digits: u32, at_sign: bool, may_have_cue: bool) -> Vec<PiiHit> {
        self.scan_with(text, digits as usize >= MIN_DIGITS, at_sign, may_have_cue)
    }

    /// [`Self::scan`] without any pre-check: every pattern runs on the whole text. The
    /// reference the pre-checks are tested against.
    pub fn scan_all(&self, text: &str) -> Vec<PiiHit> {
        self.scan_with(text, true, true, true)
    }

    /// The scan, with the pre-checks' answers: whether there may be a long number, an
    /// e-mail address, a WeChat cue.
    fn scan_with(&self, text: &str, numbers: bool, email: bool, may_have_cue: bool) -> Vec<PiiHit> {
        let mut hits = Vec::new();
        if numbers {
            let chars: Vec<char> = text.chars().collect();
            self.scan_numbers(&chars, &mut hits);
        }
        if !email && !may_have_cue {
            return hits;
        }
        // Full-width forms fold one character to one, so offsets found in `folded` hold in `text`.
        let folded = fold_width(text);
        let text = folded.as_ref();
        if email {
            for m in self.email.find_iter(text) {
                let (start, end) = (char_offset(text, m.start()), char_offset(text, m.end()));
                hits.push(PiiHit {
                    kind: PiiKind::Email,
                    start,
                    end,
                    masked: PiiKind::Email.mask(m.as_str()),
                });
            }
        }
        if let Some(re) = self.wechat.as_ref().filter(|_| may_have_cue) {
            for c in re.captures_iter(text) {
                let Some(id) = c.get(1) else { continue };
                // An id runs to the end of its letters; a longer run is something else.
                if text[id.end()..].chars().next().is_some_and(|n| n.is_ascii_alphanumeric() || n == '_') {
                    continue;
                }
                let (start, end) = (char_offset(text, id.start()), char_offset(text, id.end()));
                hits.push(PiiHit {
                    kind: PiiKind::Wechat,
                    start,
                    end,
                    masked: PiiKind::Wechat.mask(id.as_str()),
                });
            }
        }
        hits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
        let mut kept: Vec<PiiHit> = Vec::with_capacity(hits.len());
        for h in hits {
            if kept.last().is_some_and(|k| h.end <= k.end) {
                continue;
            }
            kept.push(h);
        }
        kept
    }

    /// `text` with every piece of personal data replaced by its masked form.
    pub fn mask_text(&self, text: &str) -> String {
        mask_with(text, &self.scan(text))
    }

    fn scan_numbers(&self, chars: &[char], hits: &mut Vec<PiiHit>) {
        let mut i = 0;
        while i < chars.len() {
            if ascii_digit(chars[i]).is_none() {
                i += 1;
                continue;
            }
            let run = digit_run(chars, i);
            i = run.end;
            if run.digits.len() < MIN_DIGITS {
                continue;
            }
            if let Some(hit) = self.classify(chars, &run.digits, run.start, run.end) {
                hits.push(hit);
                continue;
            }
            // Separators may have joined two numbers: try each piece alone.
            if run.pieces.len() > 1 {
                for (digits, s, e) in &run.pieces {
                    if let Some(hit) = self.classify(chars, digits, *s, *e) {
                        hits.push(hit);
                    }
                }
            }
        }
    }

    fn classify(&self, chars: &[char], digits: &str, start: usize, end: usize) -> Option<PiiHit> {
        let raw: String = chars[start..end].iter().collect();
        let kind = if is_mobile(digits) {
            PiiKind::Mobile
        } else if is_id_card(digits) && !self.after_number_cue(chars, start) {
            PiiKind::IdCard
        } else if is_bank_card(digits) && !self.after_number_cue(chars, start) {
            PiiKind::BankCard
        } else {
            return None;
        };
        Some(PiiHit { kind, start, end, masked: kind.mask(&raw) })
    }

    fn after_number_cue(&self, chars: &[char], start: usize) -> bool {
        let before = &chars[start.saturating_sub(CUE_WINDOW)..start];
        self.number_cues
            .iter()
            .any(|cue| !cue.is_empty() && before.windows(cue.len()).any(|w| w == cue.as_slice()))
    }
}

/// Whether `b` may hold the digits of a number kind, counting over-generously: no number
/// kind has fewer than [`MIN_DIGITS`] digits, and a full-width digit (`EF BC 90`–`99`) is
/// first counted by its `BC` byte alone (which full-width punctuation and a few CJK
/// characters share), then, only if that reaches the bound, by its last two bytes. Most
/// messages are skipped here without decoding.
fn may_have_digits(b: &[u8]) -> bool {
    let ascii = count_bytes(b, |c| c.is_ascii_digit());
    if ascii >= MIN_DIGITS {
        return true;
    }
    if ascii + count_bytes(b, |c| c == 0xBC) < MIN_DIGITS {
        return false;
    }
    let pairs = b.iter().zip(b.get(1..).unwrap_or_default());
    let wide = pairs.filter(|&(&x, &y)| x == 0xBC && (0x90..=0x99).contains(&y)).count();
    ascii + wide >= MIN_DIGITS
}

/// How many bytes of `b` satisfy `f`, summed in byte-wide lanes per 255-byte chunk so the
/// compiler vectorises it 16 or 32 bytes a step (a `usize` sum runs 4 bytes a step).
fn count_bytes(b: &[u8], f: impl Fn(u8) -> bool) -> usize {
    b.chunks(255).map(|c| usize::from(c.iter().fold(0u8, |n, &x| n + u8::from(f(x))))).sum()
}

/// `text` with full-width ASCII forms (`ＶＸ：ａｂｃ`) as ASCII, character for character.
fn fold_width(text: &str) -> std::borrow::Cow<'_, str> {
    let wide = |c: char| ('\u{FF01}'..='\u{FF5E}').contains(&c);
    if !text.chars().any(wide) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars().map(|c| if wide(c) { char::from_u32(c as u32 - 0xFEE0).unwrap_or(c) } else { c }).collect()
}

/// `text` with the characters of each hit replaced by its masked form (hits by start, disjoint).
pub fn mask_with(text: &str, hits: &[PiiHit]) -> String {
    if hits.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut next = hits.iter().peekable();
    let mut skip_to = 0;
    for (i, c) in text.chars().enumerate() {
        if i < skip_to {
            continue;
        }
        if let Some(h) = next.next_if(|h| h.start == i) {
            out.push_str(&h.masked);
            skip_to = h.end;
            continue;
        }
        out.push(c);
    }
    out
}

struct DigitRun {
    digits: String,
    start: usize,
    end: usize,
    /// The digits between separators, each with its own span.
    pieces: Vec<(String, usize, usize)>,
}

/// The number starting at `start`: digits, single spaces/hyphens between digits, and a
/// trailing `X` when it ends an ID-card-length number.
fn digit_run(chars: &[char], start: usize) -> DigitRun {
    let mut digits = String::new();
    let mut pieces = vec![(String::new(), start, start)];
    let mut i = start;
    while i < chars.len() {
        if let Some(d) = ascii_digit(chars[i]) {
            digits.push(d);
            if let Some(p) = pieces.last_mut() {
                p.0.push(d);
                p.2 = i + 1;
            }
            i += 1;
        } else if matches!(chars[i], ' ' | '-' | '－' | '\u{3000}')
            && chars.get(i + 1).and_then(|&c| ascii_digit(c)).is_some()
        {
            pieces.push((String::new(), i + 1, i + 1));
            i += 1;
        } else if matches!(chars[i], 'x' | 'X' | 'ｘ' | 'Ｘ') && digits.len() == 17 {
            digits.push('X');
            if let Some(p) = pieces.last_mut() {
                p.0.push('X');
                p.2 = i + 1;
            }
            i += 1;
            break;
        } else {
            break;
        }
    }
    // Letters or digits glued to the end make it a code, not a number (e.g. a SKU).
    DigitRun { digits, start, end: i, pieces }
}

fn ascii_digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        '０'..='９' => char::from_u32(c as u32 - 0xFEE0),
        _ => None,
    }
}

fn id_char(c: char) -> Option<char> {
    match c {
        'x' | 'X' | 'ｘ' | 'Ｘ' => Some('X'),
        _ => ascii_digit(c),
    }
}

fn is_mobile(d: &str) -> bool {
    let d = if d.len() == 13 && d.starts_with("86") { &d[2..] } else { d };
    let b = d.as_bytes();
    b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && b.iter().all(u8::is_ascii_digit)
}

/// 18 characters, a plausible birth date, and the GB 11643 check character.
fn is_id_card(d: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = d.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| d[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if !(1900..=2099).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let sum: u32 = b[..17].iter().zip(WEIGHTS).map(|(c, w)| u32::from(c - b'0') * w).sum();
    b[17] == CHECK[(sum % 11) as usize]
}

/// 16–19 digits of a major card network (3 Amex/JCB, 4 Visa, 5 Mastercard, 6 UnionPay), Luhn.
fn is_bank_card(d: &str) -> bool {
    let b = d.as_bytes();
    if !(16..=19).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) || !(b'3'..=b'6').contains(&b[0]) {
        return false;
    }
    let sum: u32 = b
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let v = u32::from(c - b'0');
            if i % 2 == 1 {
                let dbl = v * 2;
                if dbl > 9 { dbl - 9 } else { dbl }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The character offset of byte offset `byte` in `text`.
pub(crate) fn char_offset(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner() -> PiiScanner {
        let cues = ["微信", "vx", "v信", "wx"].map(String::from);
        PiiScanner::new(&cues, &["订单".to_string(), "单号".to_string()]).unwrap()
    }

    #[test]
    fn finds_and_masks_each_kind() {
        let s = scanner();
        let cases: &[(&str, PiiKind, &str, &str)] = &[
            ("电话13812345678谢谢", PiiKind::Mobile, "13812345678", "138****5678"),
            ("打 138 1234 5678", PiiKind::Mobile, "138 1234 5678", "138****5678"),
            ("号码１３８１２３４５６７８", PiiKind::Mobile, "１３８１２３４５６７８", "138****5678"),
            ("+86-138-1234-5678", PiiKind::Mobile, "86-138-1234-5678", "138****5678"),
            ("身份证11010519491231002X", PiiKind::IdCard, "11010519491231002X", "110***********002X"),
            ("卡号6222020200112233446", PiiKind::BankCard, "6222020200112233446", "6222********3446"),
            ("卡 4111 1111 1111 1111", PiiKind::BankCard, "4111 1111 1111 1111", "4111********1111"),
            ("邮箱zhang.san@163.com收", PiiKind::Email, "zhang.san@163.com", "z***@163.com"),
            ("我微信号: kefu_2024a 加一下", PiiKind::Wechat, "kefu_2024a", "k***a"),
            ("VX是abc123456", PiiKind::Wechat, "abc123456", "a***6"),
            ("ＶＸ：ａｂｃ１２３４５", PiiKind::Wechat, "ａｂｃ１２３４５", "a***5"),
        ];
        for &(text, kind, raw, masked) in cases {
            let hits = s.scan(text);
            assert_eq!(hits.len(), 1, "{text}: {hits:?}");
            let h = &hits[0];
            assert_eq!(h.kind, kind, "{text}");
            let got: String = text.chars().skip(h.start).take(h.end - h.start).collect();
            assert_eq!(got, raw, "{text}");
            assert_eq!(h.masked, masked, "{text}");
            assert!(!s.mask_text(text).contains(raw), "{text}");
        }
    }

    #[test]
    fn near_misses_are_not_personal_data() {
        let s = scanner();
        let cases = [
            "订单号6222020200112233446请查收", // an order number that happens to pass Luhn
            "11010519491231002Y",              // wrong check character
            "11010519491231003X",              // check digit off by one
            "6222020200112233445",             // Luhn fails
            "12812345678",                     // 12x is no mobile prefix
            "138123456789",                    // 12 digits
            "微信支付可以的",                  // cue without an id
            "vx: abc",                         // too short for a WeChat id
            "满300减30,限时3天",
        ];
        for text in cases {
            assert!(s.scan(text).is_empty(), "{text}: {:?}", s.scan(text));
        }
    }

    #[test]
    fn separators_joining_two_numbers_fall_back_to_pieces() {
        let s = scanner();
        let hits = s.scan("编号 12 13812345678");
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!((hits[0].kind, hits[0].start, hits[0].end), (PiiKind::Mobile, 6, 17));
    }
}

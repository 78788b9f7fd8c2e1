//! The fast path of [`super::parse`]: a single scan of a flat event line, borrowing every
//! string, for the shape the platform and `kefu simulate` write — one object whose values
//! are strings without escapes, small whole numbers, `true`, `false` or `null`.
//!
//! It answers only when it is sure serde would read the line into the same [`Raw`]; on
//! anything else (an escape or a control character anywhere, a nested value, a duplicate
//! field, a wrong type, a syntax error, …) it answers `None` and the caller takes the
//! serde path, so the accepted events and the error texts are serde's by construction.
//! Replay spends much of its time reading lines: serde's field-by-field visitor cost
//! about 6,600 instructions per simulated event, this scan about a third of that.

use std::borrow::Cow;

use super::{MoneyField, Raw, Sender};

/// A value as the scan found it.
#[derive(Clone, Copy)]
enum Value<'a> {
    /// A string with no escape and no control character: its text as written.
    Str(&'a str),
    /// A whole number `0` or `[1-9][0-9]{0,18}` (fits u64, prints back the same).
    Int(u64),
    /// `true`, `false` or `null`.
    Literal,
}

/// The line read into the wire shape, or `None` when only serde can say (see the module).
pub(super) fn raw(line: &str) -> Option<Raw<'_>> {
    let b = line.as_bytes();
    if !plain(b) {
        return None;
    }
    let mut raw = Raw::default();
    let mut i = expect(b, 0, b'{')?;
    loop {
        i = expect(b, i, b'"')?;
        let end = quote(b, i)?;
        let key = &b[i..end];
        i = expect(b, end + 1, b':')?;
        let (value, next) = value(line, skip_ws(b, i))?;
        set(&mut raw, key, value)?;
        i = skip_ws(b, next);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => break,
            _ => return None,
        }
    }
    // serde refuses trailing characters; only JSON whitespace may follow.
    (skip_ws(b, i + 1) == b.len()).then_some(raw)
}

/// Puts a known field's value in its slot; unknown fields are skipped, as serde skips them.
/// `None` for a duplicate known field or a value of a type serde might read otherwise.
fn set<'a>(raw: &mut Raw<'a>, key: &[u8], value: Value<'a>) -> Option<()> {
    let slot = match key {
        b"type" => &mut raw.kind,
        b"id" => &mut raw.id,
        b"ts" => &mut raw.ts,
        b"shop" => &mut raw.shop,
        b"conversation" => &mut raw.conversation,
        b"customer" => &mut raw.customer,
        b"agent" => &mut raw.agent,
        b"text" => &mut raw.text,
        b"from_agent" => &mut raw.from_agent,
        b"to_agent" => &mut raw.to_agent,
        b"status" => &mut raw.status,
        b"order" => &mut raw.order,
        b"courier" => &mut raw.courier,
        b"tracking" => &mut raw.tracking,
        b"tag" => &mut raw.tag,
        b"amount" | b"shipping" | b"score" => return money(raw, key, value),
        b"from" => return from(raw, value),
        _ => return Some(()),
    };
    match (&slot, value) {
        (None, Value::Str(s)) => {
            *slot = Some(Cow::Borrowed(s));
            Some(())
        }
        _ => None,
    }
}

/// `amount`, `shipping` or `score`: a string or a whole number, as [`MoneyField`] reads it.
fn money<'a>(raw: &mut Raw<'a>, key: &[u8], value: Value<'a>) -> Option<()> {
    let slot = match key {
        b"amount" => &mut raw.amount,
        b"shipping" => &mut raw.shipping,
        _ => &mut raw.score,
    };
    if slot.is_some() {
        return None;
    }
    *slot = Some(match value {
        Value::Str(s) => MoneyField::Str(Cow::Borrowed(s)),
        Value::Int(n) => MoneyField::Num(n.into()),
        Value::Literal => return None,
    });
    Some(())
}

/// `from`: one of [`Sender`]'s names exactly, as serde reads it.
fn from<'a>(raw: &mut Raw<'a>, value: Value<'a>) -> Option<()> {
    let from = match (&raw.from, value) {
        (None, Value::Str("customer")) => Sender::Customer,
        (None, Value::Str("agent")) => Sender::Agent,
        (None, Value::Str("bot")) => Sender::Bot,
        (None, Value::Str("system")) => Sender::System,
        _ => return None,
    };
    raw.from = Some(from);
    Some(())
}

/// The value starting at `i` and the index after it.
fn value(line: &str, i: usize) -> Option<(Value<'_>, usize)> {
    let b = line.as_bytes();
    match *b.get(i)? {
        b'"' => {
            let end = quote(b, i + 1)?;
            // Both quotes are ASCII, so `i + 1..end` lies on character boundaries.
            Some((Value::Str(line.get(i + 1..end)?), end + 1))
        }
        b'0'..=b'9' => int(b, i),
        b't' if b[i..].starts_with(b"true") => Some((Value::Literal, i + 4)),
        b'f' if b[i..].starts_with(b"false") => Some((Value::Literal, i + 5)),
        b'n' if b[i..].starts_with(b"null") => Some((Value::Literal, i + 4)),
        _ => None,
    }
}

/// A whole number at `i`: `0` or up to 19 digits without a leading zero, not followed by
/// a fraction or an exponent (those, and longer numbers, are serde's to read).
fn int(b: &[u8], i: usize) -> Option<(Value<'static>, usize)> {
    let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let end = i + digits;
    if digits > 19 || (digits > 1 && b[i] == b'0') || matches!(b.get(end), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    let n = b[i..end].iter().fold(0u64, |n, c| n * 10 + u64::from(c - b'0'));
    Some((Value::Int(n), end))
}

/// The index of the next `"` at or after `i`, eight bytes at a time. [`raw`] has made
/// sure the line holds no escape, so the next quote ends the string.
fn quote(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const QUOTES: u64 = ONES * b'"' as u64;
    while let Some(word) = b.get(i..i + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let v = u64::from_le_bytes(bytes) ^ QUOTES;
        // The high bit of each zero byte of `v`, i.e. of each quote (the lowest one is
        // exact; bits above it may be borrows and are not looked at).
        let hits = v.wrapping_sub(ONES) & !v & (ONES << 7);
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&c| c == b'"').map(|p| i + p)
}

/// Whether the line holds no backslash (an escape) and no control character (below 0x20:
/// serde refuses one inside a string; between tokens only a tab, CR or LF may stand, and
/// those lines are rare enough to leave to serde). Eight bytes at a time.
fn plain(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const SLASHES: u64 = ONES * b'\\' as u64;
    let bad = |c: &u8| *c == b'\\' || *c < 0x20;
    let mut words = b.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let v = u64::from_le_bytes(bytes);
        let s = v ^ SLASHES;
        // Non-zero exactly when a byte of `s` is zero (a backslash) or a byte of `v` is
        // below 0x20.
        if (s.wrapping_sub(ONES) & !s | v.wrapping_sub(ONES * 0x20) & !v) & (ONES << 7) != 0 {
            return false;
        }
    }
    !words.remainder().iter().any(bad)
}

/// `i` past any whitespace if `want` is there, and the index after it.
fn expect(b: &[u8], i: usize, want: u8) -> Option<usize> {
    let i = skip_ws(b, i);
    (b.get(i) == Some(&want)).then_some(i + 1)
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::super::{parse, parse_serde};

    const MESSAGE: &str = r#"{"agent":"agent01","conversation":"c0000001","customer":"tb100007919","from":"customer","id":"tmall-demo-00000007","shop":"tmall-demo","text":"有优惠券吗","ts":"2026-05-01T08:30:12.496+08:00","type":"message"}"#;
    const ORDER: &str = r#"{"type":"order","id":"o2","ts":"2026-11-11T18:00:00+08:00","shop":"s","customer":"b","order":"T1","status":"shipped","amount":"199.90","shipping":10,"courier":"中通快递","tracking":"7300012345678"}"#;
    const EVALUATION: &str = r#"{"type":"evaluation","id":"v1","ts":"2026-11-11T10:30:00+08:00","shop":"s","agent":"a","customer":"b","conversation":"c","score":5,"tag":"回复及时"}"#;

    /// Both paths give the same answer; `fast` says whether the fast path must take it.
    fn same(line: &str, fast: bool) {
        assert_eq!(parse(line), parse_serde(line), "{line}");
        assert_eq!(super::raw(line).is_some(), fast, "fast path taken? {line}");
    }

    #[test]
    fn the_fast_path_reads_what_serde_reads() {
        let cases: &[(&str, bool)] = &[
            (MESSAGE, true),
            (ORDER, true),
            (EVALUATION, true),
            // Field order, whitespace around every token, and unknown fields of every
            // scalar kind are the fast path's; so are type errors found after parsing.
            (
                r#" { "type" : "close" , "id":"1","ts":"2026-11-11T02:00:00.250Z","shop":"s","conversation":"c" } "#,
                true,
            ),
            (
                r#"{"conversation":"c","shop":"s","ts":"2026-11-11T02:00:00Z","id":"1","type":"close","x":true,"y":false,"z":null,"n":0,"m":12}"#,
                true,
            ),
            (r#"{"type":"close","id":"1","ts":"2026-11-11T10:00:00Z","shop":"s"}"#, true),
            (r#"{"type":"wave","id":"1","ts":"2026-11-11T10:00:00Z","shop":"s"}"#, true),
            (r#"{"type":"close","id":"","ts":"2026-11-11T10:00:00Z","shop":"s","conversation":"c"}"#, true),
            (r#"{"type":"close","id":"1","ts":"yesterday","shop":"s","conversation":"c"}"#, true),
            (r#"{"id":"1"}"#, true),
            (&MESSAGE.replace("customer\",\"id", "Customer\",\"id"), false),
            // Numbers at the limits: 19 digits fit, 20 go to serde (as a float there).
            (&EVALUATION.replace("\"score\":5", "\"score\":9999999999999999999"), true),
            (&EVALUATION.replace("\"score\":5", "\"score\":18446744073709551616"), false),
            (&EVALUATION.replace("\"score\":5", "\"score\":0"), true),
            (&EVALUATION.replace("\"score\":5", "\"score\":05"), false),
            (&EVALUATION.replace("\"score\":5", "\"score\":4.0"), false),
            (&EVALUATION.replace("\"score\":5", "\"score\":5e0"), false),
            (&EVALUATION.replace("\"score\":5", "\"score\":-5"), false),
            (&EVALUATION.replace("\"score\":5", "\"score\":\"非常满意\""), true),
            (&EVALUATION.replace("\"score\":5", "\"score\":null"), false),
            (&EVALUATION.replace("\"score\":5", "\"score\":true"), false),
            (&ORDER.replace("\"shipping\":10", "\"shipping\":1e400"), false),
            // Escapes, control characters and unicode: serde's.
            (&MESSAGE.replace("有优惠券吗", r#"say \"hi\"\n"#), false),
            (&MESSAGE.replace("有优惠券吗", r"\u6709\ud83d\ude00"), false),
            (&MESSAGE.replace("有优惠券吗", r"\ud800"), false),
            (&MESSAGE.replace("有优惠券吗", "tab\there"), false),
            (&MESSAGE.replace("有优惠券吗", "😀 \u{7f} é"), true),
            (&MESSAGE.replace("\"agent\":", r#""\u0061gent":"#), false),
            (&MESSAGE.replace(",\"id\"", ",\t\"id\""), false),
            (&MESSAGE.replace(",\"id\"", ",\r\n\"id\""), false),
            // Duplicates, wrong types, nesting, syntax.
            (&MESSAGE.replace("\"shop\":", "\"id\":\"again\",\"shop\":"), false),
            (&MESSAGE.replace("\"shop\":", "\"x\":1,\"x\":2,\"shop\":"), true),
            (&MESSAGE.replace("\"tmall-demo\",\"text\"", "7,\"text\""), false),
            (&MESSAGE.replace("\"tmall-demo\",\"text\"", "null,\"text\""), false),
            (&MESSAGE.replace("\"shop\":", "\"x\":{\"a\":1},\"shop\":"), false),
            (&MESSAGE.replace("\"shop\":", "\"x\":[1],\"shop\":"), false),
            (&MESSAGE.replace("\"shop\":", "\"x\":tru,\"shop\":"), false),
            (&MESSAGE.replace("\"shop\":", "\"x\":1a,\"shop\":"), false),
            (&MESSAGE.replace("}", ",}"), false),
            (&MESSAGE.replace("}", "} x"), false),
            (&MESSAGE.replace("}", "}}"), false),
            (&MESSAGE.replace("}", ""), false),
            (&MESSAGE.replace(":\"agent01\"", "\"agent01\""), false),
            (&MESSAGE[..MESSAGE.len() - 10], false),
            ("\u{feff}{\"id\":\"1\"}", false),
            ("{}", false),
            ("[]", false),
            ("", false),
            ("not json", false),
        ];
        for (line, fast) in cases {
            same(line, *fast);
        }
    }

    /// Every one-byte change of a few lines (cut, insert or replace with JSON's special
    /// bytes) gives the same event or the same error either way.
    #[test]
    fn every_small_corruption_reads_the_same_both_ways() {
        let specials =
            [b'"', b'\\', b',', b':', b'{', b'}', b'[', b' ', b'\t', b'0', b'1', b'-', b'.', b'e', b'n', 1];
        for line in [MESSAGE, ORDER, EVALUATION] {
            let bytes = line.as_bytes();
            for i in 0..bytes.len() {
                let mut variants = vec![[&bytes[..i], &bytes[i + 1..]].concat()];
                for &c in &specials {
                    variants.push([&bytes[..i], &[c], &bytes[i..]].concat());
                    variants.push([&bytes[..i], &[c], &bytes[i + 1..]].concat());
                }
                for v in variants {
                    if let Ok(text) = std::str::from_utf8(&v) {
                        assert_eq!(parse(text), parse_serde(text), "{text}");
                    }
                }
            }
        }
    }

    #[test]
    fn simulated_traffic_takes_the_fast_path_and_reads_the_same() {
        let events = crate::simulate::generate(&crate::simulate::SimConfig {
            events: 5_000,
            seed: 7,
            ..Default::default()
        });
        for e in events {
            let line = e.to_json();
            assert!(super::raw(&line).is_some(), "{line}");
            assert_eq!(parse(&line).as_ref(), Ok(&e), "{line}");
            assert_eq!(parse(&line), parse_serde(&line), "{line}");
        }
    }
}

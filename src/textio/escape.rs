//! Outside text made safe for a terminal or a log line.
//!
//! A platform value may hold an ESC sequence (which a terminal obeys: colours, cursor
//! moves, a changed window title), a line break (which forges a log line), bidi overrides
//! (which reorder what is shown) or 300 KB. Before such text is printed or logged, control
//! and format characters are shown escaped (`\n`, `\u{1b}`) and a long value is cut, its
//! length shown, so what is on screen is what the value holds and no more.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Characters of a value shown in a terminal table or line before it is cut.
pub const TERMINAL_MAX_CHARS: usize = 200;
/// Characters of a log field's value before it is cut.
pub const LOG_MAX_CHARS: usize = 256;
/// Characters of a log message before it is cut (messages carry error chains).
pub const LOG_MESSAGE_MAX_CHARS: usize = 2_000;

/// `s` for a terminal: control characters escaped, cut after [`TERMINAL_MAX_CHARS`].
pub fn escape_for_terminal(s: &str) -> Cow<'_, str> {
    escape_cut(s, TERMINAL_MAX_CHARS)
}

/// `s` for a log line: control characters escaped, cut after [`LOG_MAX_CHARS`].
pub fn escape_for_log(s: &str) -> Cow<'_, str> {
    escape_cut(s, LOG_MAX_CHARS)
}

/// `s` with control and format characters escaped and, past `max_chars` characters, cut
/// with `…[N bytes in all]`. Borrowed when nothing needed changing.
pub fn escape_cut(s: &str, max_chars: usize) -> Cow<'_, str> {
    let long = s.len() > max_chars && s.chars().nth(max_chars).is_some();
    if !long && !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max_chars * 4) + 24);
    for (n, c) in s.chars().enumerate() {
        if n == max_chars {
            let _ = write!(out, "…[{} bytes in all]", s.len());
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// C0/C1 controls and DEL, bidi embeddings/overrides/isolates and marks, and the Unicode
/// line and paragraph separators (some viewers break lines on them).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// A `tracing_subscriber` field formatter that escapes and cuts every field of every log
/// line (`fmt().fmt_fields(LogFields)`), so a value logged anywhere cannot forge a line
/// or flood the log, whoever wrote the `tracing` call.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFields;

impl<'writer> FormatFields<'writer> for LogFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = FieldVisitor { writer: &mut writer, first: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct FieldVisitor<'a, 'writer> {
    writer: &'a mut Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl FieldVisitor<'_, '_> {
    fn write(&mut self, field: &Field, value: &str) {
        let value = if field.name() == "message" {
            escape_cut(value, LOG_MESSAGE_MAX_CHARS)
        } else {
            escape_for_log(value)
        };
        self.write_raw(field, &value);
    }

    fn write_raw(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{sep}{value}")
        } else {
            write!(self.writer, "{sep}{}={value}", field.name())
        };
    }
}

impl Visit for FieldVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Quoted like the default formatter does (`Debug` escapes `"` and `\`); cut first so
        // the length shown is the value's own.
        let end = value.char_indices().nth(LOG_MAX_CHARS).map_or(value.len(), |(i, _)| i);
        let mut shown = escape_cut(&format!("{:?}", &value[..end]), usize::MAX).into_owned();
        if end < value.len() {
            let _ = write!(shown, "…[{} bytes in all]", value.len());
        }
        self.write_raw(field, &shown);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_cuts_long_values() {
        let cases: Vec<(String, usize, String)> = vec![
            ("客服 A".into(), 10, "客服 A".into()),
            ("\u{1b}[31mred\u{1b}[0m".into(), 50, "\\u{1b}[31mred\\u{1b}[0m".into()),
            ("a\nINFO forged\r\tb".into(), 50, "a\\nINFO forged\\r\\tb".into()),
            ("x\u{7f}\u{9b}y\u{202e}z\u{2028}".into(), 50, "x\\u{7f}\\u{9b}y\\u{202e}z\\u{2028}".into()),
            ("abcdef".into(), 3, "abc…[6 bytes in all]".into()),
            ("一二三四".into(), 4, "一二三四".into()),
            ("一二三四".into(), 2, "一二…[12 bytes in all]".into()),
            ("\n\n\n".into(), 2, "\\n\\n…[3 bytes in all]".into()),
        ];
        for (input, max, want) in cases {
            assert_eq!(escape_cut(&input, max), want, "{input:?}");
        }
        let id = "9".repeat(300_000);
        let shown = escape_for_log(&id);
        assert_eq!(shown.len(), LOG_MAX_CHARS + "…[300000 bytes in all]".len());
        assert!(shown.ends_with("…[300000 bytes in all]"));
        assert!(matches!(escape_for_terminal("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn log_fields_escape_every_field_and_the_message() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(LogFields)
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        let from = "agent\n2026-12-01T00:00:00Z  INFO forged line";
        let id = "7".repeat(300_000);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(from, id = %id, "bad frame from {from}\u{1b}[2J");
            tracing::warn!(conversation = id.as_str(), "long id");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
        assert!(out.contains("from=\"agent\\n2026-12-01T00:00:00Z  INFO forged line\""), "{out}");
        assert!(out.contains("bad frame from agent\\n2026"), "{out}");
        assert_eq!(out.matches("…[300000 bytes in all]").count(), 2, "{out}");
        assert!(out.len() < 2_000, "{}", out.len());
    }
}

//! Bytes of a data file → text. A UTF-8 BOM means UTF-8; valid UTF-8 is UTF-8; anything
//! else must be GBK/GB18030 (what Windows Excel and 千牛 write). Nothing is guessed past
//! that: a byte neither reading accepts is an error naming its line, never a `�`.

use std::path::Path;

use crate::rules::DataError;

/// A text encoding of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GBK, or GB18030 which is its superset.
    Gbk,
    /// UTF-8, with or without a BOM.
    Utf8,
}

impl Encoding {
    /// Parses `gbk`, `gb18030`, `gb2312` or `utf-8`/`utf8` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "gbk" | "gb18030" | "gb2312" => Some(Self::Gbk),
            "utf-8" | "utf8" => Some(Self::Utf8),
            _ => None,
        }
    }

    /// The name shown to people.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gbk => "GBK",
            Self::Utf8 => "UTF-8",
        }
    }
}

/// A decoded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text, without a BOM.
    pub text: String,
    /// The encoding the file was found to be in.
    pub encoding: Encoding,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes a data file's bytes (see the module doc). Errors name `file` and the line of
/// the first bad byte; a NUL byte is refused too (a UTF-16 file or a binary is not CSV).
pub fn decode(file: &Path, bytes: &[u8]) -> Result<Decoded, DataError> {
    let decoded = if let Some(rest) = bytes.strip_prefix(BOM) {
        match std::str::from_utf8(rest) {
            Ok(s) => Decoded { text: s.to_string(), encoding: Encoding::Utf8 },
            Err(e) => {
                let at = BOM.len() + e.valid_up_to();
                return Err(bad_bytes(file, bytes, at, "starts with a UTF-8 BOM but is not UTF-8"));
            }
        }
    } else {
        match std::str::from_utf8(bytes) {
            Ok(s) => Decoded { text: s.to_string(), encoding: Encoding::Utf8 },
            Err(utf8) => match gb18030(bytes) {
                Ok(text) => Decoded { text, encoding: Encoding::Gbk },
                // The reading that got further is the likelier one: name the byte it stopped at.
                Err(gbk_at) => {
                    let at = gbk_at.max(utf8.valid_up_to());
                    return Err(bad_bytes(file, bytes, at, "neither UTF-8 nor GBK/GB18030 text"));
                }
            },
        }
    };
    if let Some(at) = decoded.text.find('\0') {
        let line = crate::rules::line_of(&decoded.text, at);
        return Err(DataError::at(
            file,
            Some(line),
            "a NUL byte: not a text file (a UTF-16 export? save it as CSV in UTF-8 or GBK)",
        ));
    }
    Ok(decoded)
}

/// Strict GB18030; on failure, the byte offset of the first malformed sequence.
fn gb18030(bytes: &[u8]) -> Result<String, usize> {
    let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
    let cap = decoder.max_utf8_buffer_length_without_replacement(bytes.len()).unwrap_or(bytes.len() * 3);
    let mut out = String::with_capacity(cap);
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    match result {
        encoding_rs::DecoderResult::InputEmpty => Ok(out),
        // `read` counts the malformed bytes and `after` bytes consumed past them.
        encoding_rs::DecoderResult::Malformed(bad, after) => {
            Err(read.saturating_sub(bad as usize + after as usize))
        }
        // Capacity was computed for the worst case; treat a short buffer as a failure at the end.
        encoding_rs::DecoderResult::OutputFull => Err(read),
    }
}

/// ASCII `\n` is the same byte in UTF-8 and GBK (trail bytes are ≥ 0x40), so lines are
/// counted on the raw bytes.
fn bad_bytes(file: &Path, bytes: &[u8], at: usize, what: &str) -> DataError {
    let at = at.min(bytes.len());
    let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    let shown: Vec<String> = bytes[at..].iter().take(4).map(|b| format!("{b:02X}")).collect();
    DataError::at(file, Some(line), format!("{what}: bytes {} cannot be read", shown.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbk(s: &str) -> Vec<u8> {
        encoding_rs::GBK.encode(s).0.into_owned()
    }

    #[test]
    fn decodes_utf8_bom_and_gbk() {
        let cases: Vec<(Vec<u8>, &str, Encoding)> = vec![
            (b"a,b\n".to_vec(), "a,b\n", Encoding::Utf8),
            ([BOM, "客服,b\n".as_bytes()].concat(), "客服,b\n", Encoding::Utf8),
            (gbk("快捷短语,分组\r\n亲,好\r\n"), "快捷短语,分组\r\n亲,好\r\n", Encoding::Gbk),
            (Vec::new(), "", Encoding::Utf8),
        ];
        for (bytes, text, encoding) in cases {
            let d = decode(Path::new("f.csv"), &bytes).unwrap();
            assert_eq!((d.text.as_str(), d.encoding), (text, encoding));
        }
    }

    #[test]
    fn refuses_bad_bytes_and_nul_naming_file_and_line() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            // UTF-8 after a BOM, broken on line 3.
            ([BOM, "a\nb\n".as_bytes(), b"\xFF\xFE\n"].concat(), "f.csv:3: starts with a UTF-8 BOM"),
            // GBK text with a byte neither reading accepts on line 2.
            ([gbk("编码,短语\n"), b"x,\x81\x20\n".to_vec()].concat(), "f.csv:2: neither UTF-8 nor GBK"),
            // UTF-8 with one stray byte on line 4.
            ("客服\n客服\n客服\n".bytes().chain(*b"\xFF\n").collect(), "f.csv:4: neither UTF-8 nor GBK"),
            (b"a,b\nc,\0\n".to_vec(), "f.csv:2: a NUL byte"),
            (b"\xFF\xFEa\0,\0".to_vec(), "f.csv:1: "),
        ];
        for (bytes, want) in cases {
            let e = decode(Path::new("f.csv"), &bytes).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e:?} should start with {want:?}");
        }
    }
}
